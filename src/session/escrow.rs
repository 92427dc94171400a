//! Break-glass: splitting the store's keys among emergency custodians, and
//! combining their shares to export one patient's records or to re-key the
//! store — recorded, told to physician and patient, and the set retired.

use std::path::Path;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::protocol::audit::{SealingKey, VerifyReport};
use crate::protocol::codes::RecoveryCode;
use crate::protocol::epoch::{Epoch, format_utc};
use crate::protocol::shares::{SHARE_PREFIX, ShareText};
use crate::protocol::wire::{Payload, WireMessage};
use crate::qr;
use crate::store::{OutboxKind, PairingInfo, Protocol, Store};

use super::{Clock, Error, Result, Session};

/// Shortest passphrase accepted for a store.
pub(super) const MIN_PASSPHRASE_CHARS: usize = 8;

/// A new share set.
#[derive(Debug)]
pub struct SplitOutcome {
    /// One share per custodian, to print and hand out.
    pub shares: Vec<ShareText>,
    /// The set's id, in hex (named on every page).
    pub set_id: String,
}

/// What the custodians open the store for.
#[derive(Debug, Clone, Copy)]
pub enum CombineAction<'a> {
    /// Write one patient's decrypted messages and files into a new directory.
    Export {
        /// The new, empty directory.
        dir: &'a Path,
        /// The patient's pairing.
        alias: &'a str,
    },
    /// Re-key the whole store under a new passphrase.
    Rekey {
        /// The new passphrase.
        passphrase: &'a SecretString,
    },
}

/// What a combine did.
#[derive(Debug)]
pub struct CombineOutcome {
    /// The custodians, joined for display ("A and B").
    pub custodians: String,
    /// Items exported (for an export).
    pub exported: Option<usize>,
    /// The new recovery code (for a re-key), to show once.
    pub recovery: Option<RecoveryCode>,
    /// The audit log verified with the escrowed verification key, if the
    /// split carried it: its report or its fault.
    pub audit: Option<std::result::Result<VerifyReport, String>>,
}

/// Reads one share from a share page (its `MEDCRYPT-SHARE:` line) or from a
/// PNG or JPEG of its QR code; `position` (from 1) names it in errors.
///
/// # Errors
/// An unreadable image, not a share, a checksum mismatch.
pub fn read_share(bytes: &[u8], position: usize) -> Result<ShareText> {
    let text = if bytes.starts_with(b"\x89PNG") || bytes.starts_with(&[0xFF, 0xD8]) {
        Zeroizing::new(qr::decode_image(bytes)?)
    } else {
        let text = String::from_utf8_lossy(bytes);
        Zeroizing::new(
            text.lines()
                .find(|l| l.trim_start().starts_with(SHARE_PREFIX))
                .unwrap_or_default()
                .to_owned(),
        )
    };
    Ok(ShareText::parse(&text, position)?)
}

/// The printable page of one share: who holds it, what it opens, how to use
/// it, and the share text.
pub fn share_page(
    share: &ShareText,
    practice: &str,
    store_path: &str,
    made: DateTime<Utc>,
) -> String {
    let text = share.to_text();
    format!(
        "MEDCRYPT EMERGENCY ACCESS SHARE\n\
         ================================\n\n\
         Custodian:  {custodian}\n\
         For:        {practice}\n\
         Share:      {index} of {count}; any {threshold} custodians together can open the records\n\
         Set:        {set}\n\
         Made on:    {date}\n\n\
         Keep this page private and safe, like a house key. Alone it opens nothing.\n\n\
         In an emergency ({threshold} custodians together, each with their page):\n\n    \
         medcrypt --store {store_path} escrow combine \\\n        \
         --share share-A.txt --share share-B.txt --reason \"why\" \\\n        \
         --export DIR --patient ALIAS      (or --new-passphrase-file FILE)\n\n\
         The access is recorded with your names and the reason, and the physician and\n\
         the patient are told. Afterwards these shares open nothing; a new split is needed.\n\n\
         Your share (the QR code beside this page holds the same text):\n\n{text}\n",
        custodian = share.custodian,
        index = share.index,
        count = share.count,
        threshold = share.threshold,
        set = hex::encode(share.set_id),
        date = format_utc(made),
        text = text.as_str(),
    )
}

impl Session {
    /// Splits the store's escrow key (and the audit verification key, when
    /// given and correct) among `custodians`; earlier sets are retired.
    ///
    /// # Errors
    /// A verification key that does not verify this log, a bad threshold,
    /// database errors.
    pub fn escrow_split(
        &self,
        custodians: &[String],
        threshold: usize,
        audit_key: Option<SealingKey>,
    ) -> Result<SplitOutcome> {
        if let Some(key) = &audit_key
            && self.store.audit_verify(Some(key), None)?.is_err()
        {
            return Err(Error::refused(
                "this audit verification code does not verify this store's audit log",
                "give the code shown when this store was created, or leave --audit-code out",
            ));
        }
        let shares = self
            .store
            .escrow_split(custodians, threshold, audit_key, self.now())
            .map_err(|e| {
                Error::refused(
                    e.to_string(),
                    "use 2 to 10 custodians and a threshold between 2 and their number",
                )
            })?;
        let set_id = shares
            .first()
            .map(|s| hex::encode(s.set_id))
            .unwrap_or_default();
        Ok(SplitOutcome { shares, set_id })
    }

    /// Break-glass: opens the store at `path` with `shares` (no passphrase),
    /// records the access with the custodians and the `reason`, tells the
    /// physician (and, for an export, the patient), carries out `action`
    /// and retires the set.
    ///
    /// # Errors
    /// No reason, a non-empty export directory, a short passphrase, shares
    /// that do not open this store, an unknown patient, I/O and database
    /// errors.
    pub fn escrow_combine(
        path: &Path,
        clock: Clock,
        shares: &[ShareText],
        reason: &str,
        action: CombineAction<'_>,
    ) -> Result<CombineOutcome> {
        if reason.trim().is_empty() {
            return Err(Error::refused(
                "an emergency access needs a reason",
                "say why, e.g. --reason \"patient in ICU, physician unreachable\"",
            ));
        }
        if let CombineAction::Export { dir, .. } = action
            && dir_has_entries(dir)?
        {
            return Err(Error::refused(
                format!("{} is not empty", dir.display()),
                "export into a new, empty directory; the shares were not used",
            ));
        }
        let (store, secret) = Store::open_with_escrow(path, shares, clock.now())?;
        store.integrity()?;
        let mut session = Session::from_store(store, clock);
        let now = session.now();
        let custodians: Vec<String> = shares.iter().map(|s| s.custodian.clone()).collect();
        let names = custodians.join(" and ");
        let date = format_utc(now);
        let action_name = match action {
            CombineAction::Export { .. } => "export",
            CombineAction::Rekey { .. } => "new passphrase",
        };
        let subject = match action {
            CombineAction::Export { alias, .. } => alias,
            CombineAction::Rekey { .. } => "",
        };
        session.store.audit(
            now,
            "escrow_combine",
            subject,
            "ok",
            &[
                ("custodians", names.clone()),
                ("reason", reason.to_owned()),
                ("action", action_name.to_owned()),
                (
                    "set",
                    shares
                        .first()
                        .map(|s| hex::encode(s.set_id))
                        .unwrap_or_default(),
                ),
            ],
        )?;
        session.store.set_agent_value(
            "owner_notice",
            &format!(
                "⚠ Emergency access to your MedCrypt store on {date} by {names} ({action_name}). \
                 See `medcrypt audit show --action escrow_combine`."
            ),
        )?;
        let mut outcome = CombineOutcome {
            custodians: names.clone(),
            exported: None,
            recovery: None,
            audit: None,
        };
        match action {
            CombineAction::Export { dir, alias } => {
                let pairing = session.store.pairing(alias)?;
                let written = session.export_history(Some(&pairing), dir)?;
                session.store.audit(
                    now,
                    "escrow_export",
                    alias,
                    "ok",
                    &[("items", written.to_string())],
                )?;
                let notice = format!(
                    "MedCrypt notice: emergency access to your records on {date} by {names}; reason: {reason}."
                );
                session.notify_patient(&pairing, &notice)?;
                session.store.escrow_retire(now)?;
                outcome.exported = Some(written);
            }
            CombineAction::Rekey { passphrase } => {
                if passphrase.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
                    return Err(Error::refused(
                        "the new passphrase is too short",
                        "choose a longer passphrase",
                    ));
                }
                outcome.recovery = Some(session.store.rotate_master_key(passphrase, now)?);
            }
        }
        if let Some(key) = &secret.audit_key {
            outcome.audit = Some(
                session
                    .store
                    .audit_verify(Some(key), None)?
                    .map_err(|fault| fault.to_string()),
            );
        }
        Ok(outcome)
    }

    /// Queues a notice for the patient of `pairing`, encrypted like any
    /// message, if this month's key is there.
    fn notify_patient(&self, pairing: &PairingInfo, notice: &str) -> Result<()> {
        if pairing.protocol != Protocol::V2 {
            return Ok(());
        }
        let now = self.now();
        let epoch = Epoch::containing(now);
        let chain = self.store.chain(pairing)?;
        if let Some(key) = chain.key_for(epoch) {
            let direction = pairing.role.outbound();
            let sequence = self.store.next_sequence(pairing, epoch, direction, now)?;
            let wire =
                WireMessage::seal(&key, direction, sequence, &Payload::Text(notice.to_owned()))?;
            self.store
                .outbox_queue(pairing, OutboxKind::Text, wire.to_text().as_bytes(), now)?;
        }
        Ok(())
    }
}

/// Whether `dir` exists and holds anything.
pub(super) fn dir_has_entries(dir: &Path) -> Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    let mut entries =
        std::fs::read_dir(dir).map_err(Error::io(format!("cannot read {}", dir.display())))?;
    Ok(entries.next().is_some())
}

/// Creates a directory readable only by its owner.
///
/// # Errors
/// The directory cannot be created.
pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
    let context = format!("cannot create {}", dir.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io(context))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(Error::io(context))
    }
}

//! Break-glass: splitting the store's keys among emergency custodians, and
//! combining their shares to export one patient's records or to re-key the
//! store — recorded, told to physician and patient, and the set retired.

use std::path::Path;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::protocol::audit::VerifyReport;
use crate::protocol::codes::RecoveryCode;
use crate::protocol::epoch::format_utc;
use crate::protocol::shares::{SHARE_PREFIX, ShareText};
use crate::protocol::wire::{Payload, WireMessage};
use crate::qr;
use crate::store::{OutboxKind, PairingInfo, Protocol, Rotated, Store};

use super::{Clock, Error, ErrorKind, Result, Session};

/// Refuses a split before anything changes: 2 to 10 distinct, non-empty
/// custodian names and a threshold between 2 and their number.
fn check_custodians(custodians: &[String], threshold: usize) -> Result<()> {
    let usage = |message: String| Error::Refused {
        message,
        hint: "give each custodian once, by a name they will recognise on their page \
               (--custodian \"Dr. Rosa Díaz\"); nothing was written"
            .into(),
        kind: ErrorKind::Usage,
    };
    let mut seen = std::collections::BTreeSet::new();
    for name in custodians {
        let key = name.trim().to_lowercase();
        if key.is_empty() {
            return Err(usage("a custodian's name is empty".into()));
        }
        if !seen.insert(key) {
            return Err(usage(format!("custodian {:?} is named twice", name.trim())));
        }
    }
    if !(2..=10).contains(&custodians.len()) || !(2..=custodians.len()).contains(&threshold) {
        return Err(Error::Refused {
            message: format!(
                "{} custodians with a threshold of {threshold} cannot make a share set",
                custodians.len()
            ),
            hint: "use 2 to 10 custodians and a threshold between 2 and their number; nothing was written".into(),
            kind: ErrorKind::Usage,
        });
    }
    Ok(())
}

/// The error that lists the pairings for custodians to choose from.
fn choose_patient(alias: Option<&str>, pairings: &[PairingInfo]) -> Error {
    let list: Vec<String> = pairings
        .iter()
        .map(|p| {
            format!(
                "  {:20} {}, paired {}",
                p.alias,
                p.peer_name,
                p.created_at.get(..10).unwrap_or(&p.created_at)
            )
        })
        .collect();
    let head = match alias {
        Some(alias) => format!("this store has no patient {alias:?}"),
        None => "choose the patient to export".to_owned(),
    };
    Error::Refused {
        message: if list.is_empty() {
            format!("{head}: this store has no pairings")
        } else {
            format!("{head}. The store's pairings:\n{}", list.join("\n"))
        },
        hint: "run the same command again with --patient ALIAS; the share set was NOT used up and \
               nothing was exported (the opening is recorded and the physician is told)"
            .into(),
        kind: ErrorKind::Usage,
    }
}

/// Shortest passphrase accepted for a store.
pub(super) const MIN_PASSPHRASE_CHARS: usize = 8;

/// A new share set.
#[derive(Debug)]
pub struct SplitOutcome {
    /// One share per custodian, to print and hand out.
    pub shares: Vec<ShareText>,
    /// The set's id, in hex (named on every page).
    pub set_id: String,
    /// The set this one retired (id, made on), if any.
    pub retired: Option<(String, String)>,
    /// What replacing the master key did.
    pub rotated: Rotated,
}

/// What the custodians open the store for.
#[derive(Debug, Clone, Copy)]
pub enum CombineAction<'a> {
    /// Write one patient's decrypted messages and files into a new directory.
    Export {
        /// The new, empty directory.
        dir: &'a Path,
        /// The patient's pairing; `None` lists the pairings to choose from.
        alias: Option<&'a str>,
    },
    /// Only list the store's pairings for the custodians to choose from:
    /// the opening is recorded and told, nothing is exported and the set
    /// is not used up (the app's first step).
    ListPatients,
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
    /// The audit log checked from the store's current key (custodians hold
    /// no audit key): its report or its fault.
    pub audit: std::result::Result<VerifyReport, String>,
    /// What replacing the master key did.
    pub rotated: Rotated,
    /// Whether the physician's notice was delivered at once (else it waits
    /// for the agent).
    pub owner_told: bool,
    /// The store's pairings (for [`CombineAction::ListPatients`]).
    pub patients: Vec<PairingInfo>,
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

/// One opening of the store by custodians: who, when, why, which set, and
/// how to tell the physician at once.
struct Access<'a> {
    names: String,
    date: String,
    reason: &'a str,
    set: String,
    now: DateTime<Utc>,
    deliver: &'a dyn Fn(&Session) -> bool,
}

impl Access<'_> {
    /// The audit details every `escrow_combine` entry carries.
    fn details(&self, action: &str) -> Vec<(&'static str, String)> {
        vec![
            ("custodians", self.names.clone()),
            ("reason", self.reason.to_owned()),
            ("action", action.to_owned()),
            ("set", self.set.clone()),
        ]
    }

    /// Records an opening that did not go on to its action (the audit
    /// entry with its outcome, and a notice for the physician, delivered at
    /// once when possible). The set is not used up.
    fn not_carried_out(
        &self,
        session: &Session,
        subject: &str,
        outcome: &str,
        why: &str,
    ) -> Result<bool> {
        let action = if why == "patient list" {
            "patient list"
        } else {
            "export"
        };
        let mut details = self.details(action);
        details.push(("why", why.to_owned()));
        session.store.transaction(|| {
            session
                .store
                .audit(self.now, "escrow_combine", subject, outcome, &details)?;
            session.store.queue_notice(
                &format!(
                    "⚠ Your MedCrypt store was opened with emergency shares on {} by {} ({why}); \
                     nothing was exported. See `medcrypt audit show --action escrow_combine`.",
                    self.date, self.names
                ),
                self.now,
            )
        })?;
        Ok((self.deliver)(session))
    }
}

impl Session {
    /// Splits a new escrow key among `custodians` (the store's master key
    /// is replaced first; earlier sets are retired).
    ///
    /// # Errors
    /// Duplicate or empty names, a bad threshold, database errors.
    pub fn escrow_split(
        &mut self,
        custodians: &[String],
        threshold: usize,
    ) -> Result<SplitOutcome> {
        check_custodians(custodians, threshold)?;
        let retired = self.store.active_escrow_set()?;
        let now = self.now();
        let (shares, rotated) = self
            .store
            .escrow_split(custodians, threshold, now)
            .map_err(|e| match e {
                crate::store::StoreError::Escrow(why) => Error::Refused {
                    message: why,
                    hint: "use 2 to 10 custodians and a threshold between 2 and their number"
                        .into(),
                    kind: ErrorKind::Usage,
                },
                other => other.into(),
            })?;
        let set_id = shares
            .first()
            .map(|s| hex::encode(s.set_id))
            .unwrap_or_default();
        Ok(SplitOutcome {
            shares,
            set_id,
            retired,
            rotated,
        })
    }

    /// Break-glass: opens the store at `path` with `shares` (no passphrase),
    /// records the access with the custodians and the `reason`, tells the
    /// physician (durably, and at once when the agent's bot is configured)
    /// and, for an export, the patient; carries out `action`, then replaces
    /// the master key and retires the set. `deliver` tries to deliver the
    /// physician's queued notices at once (the front end knows how).
    ///
    /// Everything that can be checked without the key is checked before the
    /// shares are used. An export without a known patient, or of a patient
    /// with nothing to export, lists or says so without retiring the set
    /// (the opening is still recorded and told).
    ///
    /// # Errors
    /// No reason, a non-empty export directory, a short passphrase, shares
    /// that do not open this store, an unknown patient, nothing to export,
    /// I/O and database errors.
    pub fn escrow_combine(
        path: &Path,
        clock: Clock,
        shares: &[ShareText],
        reason: &str,
        action: CombineAction<'_>,
        deliver: &dyn Fn(&Session) -> bool,
    ) -> Result<CombineOutcome> {
        if reason.trim().is_empty() {
            return Err(Error::Refused {
                message: "an emergency access needs a reason".into(),
                hint: "say why, e.g. --reason \"patient in ICU, physician unreachable\"; the shares were not used".into(),
                kind: ErrorKind::Usage,
            });
        }
        match action {
            CombineAction::Export { dir, .. } if dir_has_entries(dir)? => {
                return Err(Error::Refused {
                    message: format!("{} is not empty", dir.display()),
                    hint: "export into a new, empty directory; the shares were not used".into(),
                    kind: ErrorKind::Usage,
                });
            }
            CombineAction::Rekey { passphrase }
                if passphrase.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS =>
            {
                return Err(Error::Refused {
                    message: format!(
                        "the new passphrase is too short (at least {MIN_PASSPHRASE_CHARS} characters)"
                    ),
                    hint: "choose a longer passphrase; the shares were not used".into(),
                    kind: ErrorKind::Usage,
                });
            }
            _ => {}
        }
        let mut indices = std::collections::BTreeSet::new();
        for share in shares {
            if !indices.insert(share.index) {
                return Err(Error::Refused {
                    message: format!(
                        "share {} of {} was given twice",
                        share.index, share.custodian
                    ),
                    hint: "each custodian gives their own share; the shares were not used".into(),
                    kind: ErrorKind::Escrow,
                });
            }
        }
        let store = Store::open_with_escrow(path, shares, clock.now())?;
        store.integrity()?;
        let mut session = Session::from_store(store, clock);
        let now = session.now();
        let access = Access {
            names: shares
                .iter()
                .map(|s| s.custodian.clone())
                .collect::<Vec<_>>()
                .join(" and "),
            date: format_utc(now),
            reason,
            set: shares
                .first()
                .map(|s| hex::encode(s.set_id))
                .unwrap_or_default(),
            now,
            deliver,
        };
        // An export needs a patient the custodians can name: the list.
        if let CombineAction::Export { alias, .. } = action {
            let pairings = session.store.pairings()?;
            let found = alias.and_then(|a| pairings.iter().find(|p| p.alias == a).cloned());
            let Some(pairing) = found else {
                let why = if alias.is_some() {
                    "unknown patient"
                } else {
                    "patient list"
                };
                access.not_carried_out(&session, alias.unwrap_or(""), "rejected", why)?;
                return Err(choose_patient(alias, &pairings));
            };
            if session.store.history(Some(&pairing), 0)?.is_empty() {
                access.not_carried_out(
                    &session,
                    &pairing.alias,
                    "rejected",
                    "nothing to export",
                )?;
                return Err(Error::Refused {
                    message: format!(
                        "there is nothing to export for {:?}: this store keeps no received messages of that pairing \
                         (copy-and-paste pairings keep only what was decrypted here, under the retention policy)",
                        pairing.alias
                    ),
                    hint: "the share set was NOT used up and nothing was exported; the opening is recorded \
                           and the physician is told. Choose another patient, or re-key the store instead \
                           (--new-passphrase-file)"
                        .into(),
                    kind: ErrorKind::Escrow,
                });
            }
        }
        let audit = session
            .store
            .audit_verify(None, None)?
            .map_err(|fault| fault.to_string());
        if let CombineAction::ListPatients = action {
            let patients = session.store.pairings()?;
            let owner_told = access.not_carried_out(&session, "", "rejected", "patient list")?;
            return Ok(CombineOutcome {
                custodians: access.names.clone(),
                exported: None,
                recovery: None,
                audit,
                rotated: Rotated::default(),
                owner_told,
                patients,
            });
        }
        // The physician's notice names who and when, never the patient or
        // the reason: it crosses the messenger in clear.
        let (names, date) = (&access.names, &access.date);
        let mut outcome = match action {
            CombineAction::Export { dir, alias } => {
                let pairing = session.store.pairing(alias.unwrap_or_default())?;
                let written = match session.export_history(Some(&pairing), dir) {
                    Ok(written) => written,
                    Err(err) => {
                        access.not_carried_out(
                            &session,
                            &pairing.alias,
                            "failed",
                            "export failed",
                        )?;
                        return Err(err);
                    }
                };
                let owner_text = format!(
                    "⚠ Emergency access to your MedCrypt store on {date} by {names} (one patient's records exported). \
                     The store's key was replaced and the share set retired. See `medcrypt audit show --action escrow_combine`."
                );
                let mut details = access.details("export");
                details.push(("items", written.to_string()));
                let recorded =
                    session
                        .store
                        .rotate_master_key_for_owner(now, "emergency access", |store| {
                            store.audit(now, "escrow_combine", &pairing.alias, "ok", &details)?;
                            store.audit(
                                now,
                                "escrow_export",
                                &pairing.alias,
                                "ok",
                                &[("items", written.to_string())],
                            )?;
                            store.queue_notice(&owner_text, now)?;
                            store.audit(
                                now,
                                "escrow_retire",
                                "",
                                "ok",
                                &[("set", access.set.clone())],
                            )
                        });
                let ((), rotated) = match recorded {
                    Ok(done) => done,
                    Err(err) => {
                        // Not recorded, so not kept: no plaintext without its entry.
                        let _ = std::fs::remove_dir_all(dir);
                        return Err(err.into());
                    }
                };
                session.notify_patient(
                    &pairing,
                    &format!(
                        "MedCrypt notice: emergency access to your records on {date} by {names}; reason: {reason}."
                    ),
                )?;
                CombineOutcome {
                    custodians: names.clone(),
                    exported: Some(written),
                    recovery: None,
                    audit,
                    rotated,
                    owner_told: false,
                    patients: Vec::new(),
                }
            }
            CombineAction::ListPatients => {
                return Err(Error::usage(
                    "nothing to do",
                    "choose a patient to export, or a new passphrase",
                ));
            }
            CombineAction::Rekey { passphrase } => {
                let owner_text = format!(
                    "⚠ Emergency access to your MedCrypt store on {date} by {names} (new passphrase). \
                     The old passphrase and recovery code no longer open it; the custodians hold the new ones."
                );
                let details = access.details("new passphrase");
                let ((), recovery) = session.store.rotate_master_key(
                    passphrase,
                    now,
                    "emergency access",
                    |store| {
                        store.audit(now, "escrow_combine", "", "ok", &details)?;
                        store.queue_notice(&owner_text, now)?;
                        store.audit(
                            now,
                            "escrow_retire",
                            "",
                            "ok",
                            &[("set", access.set.clone())],
                        )
                    },
                )?;
                CombineOutcome {
                    custodians: names.clone(),
                    exported: None,
                    recovery: Some(recovery),
                    audit,
                    rotated: Rotated::default(),
                    owner_told: false,
                    patients: Vec::new(),
                }
            }
        };
        outcome.owner_told = deliver(&session);
        Ok(outcome)
    }

    /// Queues a notice for the patient of `pairing`, encrypted like any
    /// message, if this month's key is there.
    fn notify_patient(&self, pairing: &PairingInfo, notice: &str) -> Result<()> {
        if pairing.protocol != Protocol::V2 {
            return Ok(());
        }
        let now = self.now();
        let chain = self.store.chain(pairing)?;
        let epoch = chain.sending_epoch(now);
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

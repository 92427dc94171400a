//! Break-glass escrow sets: the wraps of the master key under escrow keys,
//! the digests of their shares, retirement, and opening with shares.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::sealing::WRAP_LABEL;
use super::{MasterKey, Result, Store, StoreError, aead_open, aead_seal, now_text, random_bytes};

impl Store {
    /// Makes a new escrow set, replacing the master key first (so that an
    /// earlier set's shares with an old copy of the store open nothing
    /// current): a random escrow key wraps the new master key and is split
    /// into shares. Earlier sets are retired. The shares carry no audit key
    /// (custodians must not be able to rewrite the log that audits them).
    /// The shares are returned once and never stored; only their digests
    /// are.
    ///
    /// # Errors
    /// [`StoreError::Escrow`] for a bad threshold; database errors.
    pub fn escrow_split(
        &mut self,
        custodians: &[String],
        threshold: usize,
        now: DateTime<Utc>,
    ) -> Result<(Vec<crate::protocol::shares::ShareText>, super::Rotated)> {
        let secret = crate::protocol::shares::EscrowSecret {
            escrow_key: Zeroizing::new(random_bytes()),
            audit_key: None,
        };
        // Checked before anything changes.
        let shares = crate::protocol::shares::split(&secret, threshold, custodians)
            .map_err(|e| StoreError::Escrow(e.to_string()))?;
        let set_id = shares
            .first()
            .map(|s| hex::encode(s.set_id))
            .unwrap_or_default();
        let ((), rotated) = self.rotate_master_key_for_owner(now, "new escrow split", |store| {
            store.retire_escrow_sets(now)?;
            let wrapped = aead_seal(&secret.escrow_key, &format!("{WRAP_LABEL}:escrow:{set_id}"), store.master.0.expose_secret());
            store.conn.execute(
                "INSERT INTO unlock (method, kdf, iterations, salt, wrapped_key) VALUES (?1, 'shamir-blahaj', 1, X'', ?2)",
                params![format!("escrow:{set_id}"), wrapped],
            )?;
            let names = serde_json::to_string(custodians).unwrap_or_default();
            let digests: Vec<String> = shares.iter().map(crate::protocol::shares::ShareText::digest).collect();
            store.conn.execute(
                "INSERT INTO escrow_sets (set_id, threshold, custodians, digests, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![set_id, threshold, names, serde_json::to_string(&digests).unwrap_or_default(), now_text(now)],
            )?;
            store.audit(
                now,
                "escrow_split",
                "",
                "ok",
                &[
                    ("set", set_id.clone()),
                    ("threshold", format!("{threshold} of {}", custodians.len())),
                    ("custodians", custodians.join(", ")),
                ],
            )
        })?;
        Ok((shares, rotated))
    }

    /// The active escrow set, if any: its id and when it was made.
    ///
    /// # Errors
    /// Database errors.
    pub fn active_escrow_set(&self) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT set_id, created_at FROM escrow_sets WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Retires every active escrow set: their wraps of the master key are
    /// destroyed, so their shares open nothing any more.
    pub(super) fn retire_escrow_sets(&self, now: DateTime<Utc>) -> Result<()> {
        self.conn
            .execute("DELETE FROM unlock WHERE method LIKE 'escrow:%'", [])?;
        self.conn.execute(
            "UPDATE escrow_sets SET retired_at = ?1 WHERE retired_at IS NULL",
            [now_text(now)],
        )?;
        self.wal_checkpoint_due.set(true);
        Ok(())
    }

    /// Opens the store with custodians' shares (break-glass). Each share is
    /// checked against the split's digests before combining, and the
    /// recovered key must unwrap the master key.
    ///
    /// # Errors
    /// [`StoreError::Escrow`] naming a damaged share, a foreign or retired
    /// set, or too few shares; [`StoreError::NotFound`]; database errors.
    pub fn open_with_escrow(
        path: &Path,
        shares: &[crate::protocol::shares::ShareText],
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let conn = Self::connect(path)?;
        let first = shares
            .first()
            .ok_or_else(|| StoreError::Escrow("no shares given".into()))?;
        let set_id = hex::encode(first.set_id);
        let row: Option<(String, String, Option<String>)> = conn
            .query_row(
                "SELECT custodians, digests, retired_at FROM escrow_sets WHERE set_id = ?1",
                [&set_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((_, digests, retired)) = row else {
            if shares.iter().any(|s| s.set_id != first.set_id) {
                return Err(StoreError::Escrow(
                    crate::protocol::shares::ShareError::DifferentSets.to_string(),
                ));
            }
            return Err(StoreError::Escrow(
                "these shares are not from a split of this store".into(),
            ));
        };
        if let Some(at) = retired {
            return Err(StoreError::Escrow(format!(
                "this share set was retired on {at} (after an emergency access or a new split): its shares open nothing any more"
            )));
        }
        let digests: Vec<String> = serde_json::from_str(&digests).unwrap_or_default();
        for (i, share) in shares.iter().enumerate() {
            if share.set_id != first.set_id {
                return Err(StoreError::Escrow(
                    crate::protocol::shares::ShareError::DifferentSets.to_string(),
                ));
            }
            let expected = usize::from(share.index)
                .checked_sub(1)
                .and_then(|k| digests.get(k));
            if expected != Some(&share.digest()) {
                return Err(StoreError::Escrow(format!(
                    "share {} (custodian {}) is damaged: it does not match the split it claims to be from",
                    i + 1,
                    share.custodian
                )));
            }
        }
        let secret = crate::protocol::shares::combine(shares)
            .map_err(|e| StoreError::Escrow(e.to_string()))?;
        let wrapped: Vec<u8> = conn
            .query_row(
                "SELECT wrapped_key FROM unlock WHERE method = ?1",
                [format!("escrow:{set_id}")],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::Escrow(
                    "this share set was retired: its shares open nothing any more".into(),
                )
            })?;
        let plain = aead_open(
            &secret.escrow_key,
            &format!("{WRAP_LABEL}:escrow:{set_id}"),
            &wrapped,
        )
        .ok_or_else(|| {
            StoreError::Escrow("the shares do not combine to this store's key".into())
        })?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("escrowed key of wrong length"))?;
        // An audit key in shares of earlier releases is never used: the
        // custodians hold no power over the log that audits them.
        let mut store = Self::assemble(conn, MasterKey::from_bytes(bytes), path)?;
        // A wrap planted back from an old copy yields a replaced key.
        if store.audit_enc_key().is_err() {
            return Err(StoreError::Escrow(
                "these shares unwrap a key this store no longer uses (a share set retired when the \
                 store's key was replaced): they open nothing current"
                    .into(),
            ));
        }
        store.prepare(now)?;
        Ok(store)
    }
}

//! Audit rows: the audit state (encryption key, current sealing key, head)
//! and the log's records, appended in the caller's transaction.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use crate::protocol::audit::{
    AuditEvent, AuditFault, Checkpoint, Record, RecordKind, Sealer, SealingKey, Trust,
    VerifyReport, day_of,
};

use super::{Result, Store, StoreError, now_text, random_bytes};

/// Associated data of the sealed audit encryption key. The `v2` label also
/// tells that a store's rows are in their current form (see `data`).
pub(super) const AUDIT_ENC_KEY_AAD: &str = "medcrypt/store/v2/audit-enc-key";
/// The same key as sealed by stores of schema 4.
pub(super) const LEGACY_AUDIT_ENC_KEY_AAD: &str = "medcrypt/store/v1/audit-enc-key";

pub(super) fn sealing_key_aad(day: u32) -> String {
    format!("medcrypt/store/v1/audit-sealing-key:{day}")
}

impl Store {
    pub(super) fn audit_enc_key(&self) -> Result<Zeroizing<Vec<u8>>> {
        let blob: Vec<u8> = self
            .conn
            .query_row("SELECT enc_key FROM audit_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(StoreError::Corrupt("the audit log has no state"))?;
        self.unseal(AUDIT_ENC_KEY_AAD, &blob)
    }

    /// Creates the audit state: a random encryption key and a random first
    /// sealing key for today, which is returned as the verification key.
    pub(super) fn start_audit(&self, now: DateTime<Utc>) -> Result<SealingKey> {
        let enc: [u8; 32] = random_bytes();
        let verification = SealingKey::generate(day_of(now));
        self.conn.execute(
            "INSERT INTO audit_state (id, enc_key, sealing_key, day, start_day, last_seq, last_mac)
             VALUES (1, ?1, ?2, ?3, ?3, 0, ?4)",
            params![
                self.seal(AUDIT_ENC_KEY_AAD, &enc),
                self.seal(
                    &sealing_key_aad(verification.day()),
                    verification.expose_bytes()
                ),
                verification.day(),
                vec![0u8; 32]
            ],
        )?;
        Ok(verification)
    }

    pub(super) fn load_sealer(&self) -> Result<Sealer> {
        let (sealing, day, last_seq, last_mac): (Vec<u8>, u32, u64, Vec<u8>) = self
            .conn
            .query_row(
                "SELECT sealing_key, day, last_seq, last_mac FROM audit_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?
            .ok_or(StoreError::Corrupt("the audit log has no state"))?;
        let key = self.unseal(&sealing_key_aad(day), &sealing)?;
        let key: &[u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit sealing key of wrong length"))?;
        let enc = self.audit_enc_key()?;
        let enc: &[u8; 32] = enc
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit key of wrong length"))?;
        let last_mac: [u8; 32] = last_mac
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit head of wrong length"))?;
        Ok(Sealer::new(
            enc,
            SealingKey::from_bytes(day, key),
            last_seq,
            last_mac,
        ))
    }

    /// Appends an audit entry, in the caller's transaction if there is one.
    /// If it cannot be written, the whole operation fails (fail closed).
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`].
    pub fn audit(
        &self,
        now: DateTime<Utc>,
        action: &str,
        subject: &str,
        outcome: &str,
        details: &[(&str, String)],
    ) -> Result<()> {
        debug_assert!(
            crate::protocol::audit::is_action(action),
            "audit action {action:?} is not in protocol::audit::ACTIONS"
        );
        self.in_transaction(|| {
            let mut sealer = self.load_sealer()?;
            let beyond_head: bool = self.conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM audit_log WHERE seq > ?1)",
                [sealer.last_seq()],
                |r| r.get(0),
            )?;
            if beyond_head {
                return Err(StoreError::Corrupt(
                    "the audit log does not end where this store left it: it was altered \
                     (run `medcrypt audit verify --code CODE`)",
                ));
            }
            let day_before = sealer.key().day();
            let event = AuditEvent {
                time: now_text(now),
                actor: self.actor.clone(),
                action: action.to_owned(),
                subject: subject.to_owned(),
                outcome: outcome.to_owned(),
                details: details
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            };
            for record in sealer.append(&event, now) {
                self.conn.execute(
                    "INSERT INTO audit_log (seq, day, kind, body, mac) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        record.seq,
                        record.day,
                        record.kind.code(),
                        record.body,
                        record.mac.to_vec()
                    ],
                )?;
            }
            let key = sealer.key();
            self.conn.execute(
                "UPDATE audit_state SET sealing_key = ?1, day = ?2, last_seq = ?3, last_mac = ?4 WHERE id = 1",
                params![
                    self.seal(&sealing_key_aad(key.day()), key.expose_bytes()),
                    key.day(),
                    sealer.last_seq(),
                    sealer.last_mac().to_vec()
                ],
            )?;
            if key.day() != day_before {
                // Yesterday's key was overwritten: clear it from the WAL too.
                self.wal_checkpoint_due.set(true);
            }
            Ok(())
        })
    }

    /// Every record of the log, in order.
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`] for a malformed row.
    pub fn audit_records(&self) -> Result<Vec<Record>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, day, kind, body, mac FROM audit_log ORDER BY seq")?;
        // Body and MAC are read as bytes whatever their SQL type: a value
        // edited into TEXT is tampering for `verify` to name, not a crash.
        let bytes = |value: rusqlite::types::ValueRef<'_>| match value {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            _ => Vec::new(),
        };
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u64>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u8>(2)?,
                bytes(r.get_ref(3)?),
                bytes(r.get_ref(4)?),
            ))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (seq, day, kind, body, mac) = row?;
            records.push(Record {
                seq,
                day,
                kind: RecordKind::from_code(kind)
                    .ok_or(StoreError::Corrupt("audit record of unknown kind"))?,
                body,
                // A MAC of the wrong length cannot verify: zeros stand in,
                // and verification names the record.
                mac: mac.try_into().unwrap_or([0u8; 32]),
            });
        }
        Ok(records)
    }

    /// The log's records with their decrypted events (`None` for a record
    /// whose body fails authentication).
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_events(&self) -> Result<Vec<(Record, Option<AuditEvent>)>> {
        let enc = self.audit_enc_key()?;
        let enc: &[u8; 32] = enc
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit key of wrong length"))?;
        Ok(self
            .audit_records()?
            .into_iter()
            .map(|record| {
                let event = crate::protocol::audit::open_body(enc, &record);
                (record, event)
            })
            .collect())
    }

    /// Verifies the log: from the verification key when given (every MAC),
    /// else from the current sealing key (today's MACs, the structure and
    /// every body). The head the store itself recorded must be reached.
    ///
    /// # Errors
    /// Database errors; the verdict is the inner result.
    pub fn audit_verify(
        &self,
        verification: Option<&SealingKey>,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<std::result::Result<VerifyReport, AuditFault>> {
        let records = self.audit_records()?;
        let sealer = self.load_sealer()?;
        let enc = self.audit_enc_key()?;
        let enc: &[u8; 32] = enc
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit key of wrong length"))?;
        let trust = match verification {
            Some(key) => Trust::VerificationKey(key),
            None => Trust::CurrentKey(sealer.key()),
        };
        Ok(crate::protocol::audit::verify(
            &records,
            trust,
            Some(enc),
            sealer.last_seq(),
            checkpoint,
        ))
    }

    /// The log's head: sequence number and MAC of the last record.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_head(&self) -> Result<(u64, [u8; 32])> {
        let sealer = self.load_sealer()?;
        Ok((sealer.last_seq(), *sealer.last_mac()))
    }
}

//! Audit rows: the audit state (encryption key, current sealing key, head)
//! and the log's records, appended in the caller's transaction.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use crate::protocol::audit::{
    AuditEvent, AuditFault, Checkpoint, Head, Record, RecordKind, Sealer, SealingKey, Trust,
    VerifyReport, day_of,
};

use super::{Result, Store, StoreError, now_text, random_bytes};

/// Associated data of the sealed audit encryption key. The `v2` label also
/// tells that a store's rows are in their current form (see `data`).
pub(super) const AUDIT_ENC_KEY_AAD: &str = "medcrypt/store/v2/audit-enc-key";
/// The same key as sealed by stores of schema 4.
pub(super) const LEGACY_AUDIT_ENC_KEY_AAD: &str = "medcrypt/store/v1/audit-enc-key";

/// The setting that says the audit head is bound by a head MAC: from then
/// on a missing head MAC means it was removed.
const HEAD_BOUND_SETTING: &str = "audit_head_bound";
/// The setting holding the store's id.
pub(super) const STORE_ID_SETTING: &str = "store_id";

/// What `audit repair` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The sequence number the store's head named.
    pub head_was: u64,
    /// The last record at or before it that was still there.
    pub log_end: u64,
    /// Records past the head, moved to the quarantine table.
    pub set_aside: Vec<u64>,
    /// The `audit_repair` entry.
    pub repair_seq: u64,
}

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
        Ok(self.load_head()?.0)
    }

    /// The sealer and the stored head MAC (`None`: not yet bound).
    fn load_head(&self) -> Result<(Sealer, Option<[u8; 32]>)> {
        let (sealing, day, last_seq, last_mac, head_mac): (
            Vec<u8>,
            u32,
            u64,
            Vec<u8>,
            Option<Vec<u8>>,
        ) = self
            .conn
            .query_row(
                "SELECT sealing_key, day, last_seq, last_mac, head_mac FROM audit_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
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
        // A head MAC of the wrong length cannot verify: zeros stand in.
        let head_mac = match head_mac {
            Some(h) => Some(h.try_into().unwrap_or([0u8; 32])),
            // Once bound, a missing head MAC was removed.
            None if self.setting(HEAD_BOUND_SETTING)?.is_some() => Some([0u8; 32]),
            None => None,
        };
        Ok((
            Sealer::new(enc, SealingKey::from_bytes(day, key), last_seq, last_mac),
            head_mac,
        ))
    }

    /// The sealer, once the log is checked to end where the store sealed it:
    /// nothing past the head, the head's record present and unchanged, the
    /// head MAC valid under the current key. Anything else fails closed
    /// until `audit repair`.
    fn sealer_at_head(&self) -> Result<Sealer> {
        let (sealer, head_mac) = self.load_head()?;
        let beyond_head: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM audit_log WHERE seq > ?1)",
            [sealer.last_seq()],
            |r| r.get(0),
        )?;
        let at_head: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT mac FROM audit_log WHERE seq = ?1",
                [sealer.last_seq()],
                |r| r.get(0),
            )
            .optional()?;
        let head_present = match at_head {
            Some(mac) => mac.as_slice() == sealer.last_mac().as_slice(),
            None => sealer.last_seq() == 0,
        };
        let head_ok = head_mac.is_none_or(|h| {
            sealer
                .key()
                .head_ok(sealer.last_seq(), sealer.last_mac(), &h)
        });
        if beyond_head || !head_present || !head_ok {
            return Err(StoreError::AuditAltered);
        }
        Ok(sealer)
    }

    /// Writes `records` and the sealer's new head (with its head MAC).
    fn persist_append(&self, sealer: &Sealer, records: &[Record], day_before: u32) -> Result<()> {
        for record in records {
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
            "UPDATE audit_state SET sealing_key = ?1, day = ?2, last_seq = ?3, last_mac = ?4,
                 head_mac = ?5 WHERE id = 1",
            params![
                self.seal(&sealing_key_aad(key.day()), key.expose_bytes()),
                key.day(),
                sealer.last_seq(),
                sealer.last_mac().to_vec(),
                sealer.head_mac().to_vec()
            ],
        )?;
        if self.setting(HEAD_BOUND_SETTING)?.is_none() {
            self.set_meta(HEAD_BOUND_SETTING, "1")?;
        }
        if key.day() != day_before {
            // Yesterday's key was overwritten: clear it from the WAL too.
            self.wal_checkpoint_due.set(true);
        }
        Ok(())
    }

    fn event(
        &self,
        now: DateTime<Utc>,
        action: &str,
        subject: &str,
        outcome: &str,
        details: &[(&str, String)],
    ) -> AuditEvent {
        AuditEvent {
            time: now_text(now),
            actor: self.actor.clone(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            outcome: outcome.to_owned(),
            details: details
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    /// Appends an audit entry, in the caller's transaction if there is one.
    /// If it cannot be written, the whole operation fails (fail closed).
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`] (a log altered outside
    /// MedCrypt).
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
            let mut sealer = self.sealer_at_head()?;
            let day_before = sealer.key().day();
            let event = self.event(now, action, subject, outcome, details);
            let records = sealer.append(&event, now);
            self.persist_append(&sealer, &records, day_before)
        })
    }

    /// Sets right a log that no longer ends where the store sealed it,
    /// keeping the evidence: records past the head are moved to
    /// `audit_quarantine`, a head that names a record no longer there (or
    /// whose head MAC fails) is moved back to the log's actual end, and an
    /// `audit_repair` entry records what was found. Nothing is deleted
    /// without a trace; verification then names the repair.
    ///
    /// # Errors
    /// Database errors. A log that needs no repair gives `Ok(None)`.
    pub fn audit_repair(&self, now: DateTime<Utc>) -> Result<Option<RepairReport>> {
        self.in_transaction(|| {
            let (sealer, head_mac) = self.load_head()?;
            let head_seq = sealer.last_seq();
            let moved: Vec<u64> = {
                let mut stmt = self
                    .conn
                    .prepare("SELECT seq FROM audit_log WHERE seq > ?1 ORDER BY seq")?;
                let rows = stmt.query_map([head_seq], |r| r.get(0))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            let end: Option<(u64, Vec<u8>)> = self
                .conn
                .query_row(
                    "SELECT seq, mac FROM audit_log WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1",
                    [head_seq],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (end_seq, end_mac) = match end {
                Some((seq, mac)) => (seq, mac.try_into().unwrap_or([0u8; 32])),
                None => (0, [0u8; 32]),
            };
            let head_ok =
                head_mac.is_none_or(|h| sealer.key().head_ok(head_seq, sealer.last_mac(), &h));
            let head_moved = end_seq != head_seq || &end_mac != sealer.last_mac() || !head_ok;
            if moved.is_empty() && !head_moved {
                return Ok(None);
            }
            // The repair entry's own position: right after the log's end.
            let repair_seq = end_seq + 1;
            self.conn.execute(
                "INSERT INTO audit_quarantine (seq, day, kind, body, mac, moved_at, repair_seq)
                 SELECT seq, day, kind, body, mac, ?2, ?3 FROM audit_log WHERE seq > ?1",
                params![head_seq, now_text(now), repair_seq],
            )?;
            self.conn
                .execute("DELETE FROM audit_log WHERE seq > ?1", [head_seq])?;
            let day_before = sealer.key().day();
            let mut sealer = Sealer::new(
                &self.audit_enc_array()?,
                SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes()),
                end_seq,
                end_mac,
            );
            let mut details = vec![
                ("head_was", format!("#{head_seq}")),
                ("log_end", format!("#{end_seq}")),
            ];
            if let (Some(first), Some(last)) = (moved.first(), moved.last()) {
                details.push(("set_aside", format!("#{first}-#{last}")));
                details.push(("set_aside_count", moved.len().to_string()));
            }
            if head_moved {
                details.push(("head_reset", "true".to_owned()));
            }
            let event = self.event(now, "audit_repair", "", "ok", &details);
            // No seals: the keys of any days cut out are gone. Verification
            // accepts the day jump at this entry and names it.
            let records = vec![sealer.push_entry(&event)];
            self.persist_append(&sealer, &records, day_before)?;
            Ok(Some(RepairReport {
                head_was: head_seq,
                log_end: end_seq,
                set_aside: moved,
                repair_seq: records[0].seq,
            }))
        })
    }

    fn audit_enc_array(&self) -> Result<[u8; 32]> {
        let enc = self.audit_enc_key()?;
        enc.as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit key of wrong length"))
    }

    /// Records set aside by repairs: (seq, day, moved at, repair entry).
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_quarantined(&self) -> Result<Vec<(u64, u32, String, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, day, moved_at, repair_seq FROM audit_quarantine ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
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
        let (sealer, head_mac) = self.load_head()?;
        let enc = self.audit_enc_array()?;
        let trust = match verification {
            Some(key) => Trust::VerificationKey(key),
            None => Trust::CurrentKey(sealer.key()),
        };
        let head = Head {
            key: sealer.key(),
            last_seq: sealer.last_seq(),
            last_mac: *sealer.last_mac(),
            head_mac,
        };
        Ok(crate::protocol::audit::verify(
            &records,
            trust,
            Some(&enc),
            &head,
            checkpoint,
        ))
    }

    /// The whole log as an export file (wire-spec 9.7): every record with
    /// its body and MAC, the head the store sealed, the store's day and the
    /// audit encryption key, so that an auditor verifies it with the
    /// verification code alone.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_export(&self) -> Result<String> {
        // Records and head read in one transaction: an agent appending in
        // between would leave the export's head past its last record.
        let (records, (sealer, head_mac), enc, store_id) = self.transaction(|| {
            Ok((
                self.audit_records()?,
                self.load_head()?,
                zeroize::Zeroizing::new(self.audit_enc_array()?),
                self.store_id()?,
            ))
        })?;
        Ok(crate::protocol::audit::export_json(
            &crate::protocol::audit::ExportHead {
                store_id: store_id.as_deref(),
                day: sealer.key().day(),
                last_seq: sealer.last_seq(),
                last_mac: *sealer.last_mac(),
                head_mac,
            },
            &enc,
            &records,
        ))
    }

    /// This store's id (10 hex digits), committed in its audit verification
    /// code and checkpoints; `None` for a store made before store ids.
    ///
    /// # Errors
    /// Database errors, or a changed setting.
    pub fn store_id(&self) -> Result<Option<String>> {
        self.setting(STORE_ID_SETTING)
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

//! The audit log as its owner and an auditor use it: reading entries,
//! verifying the chain (with the verification code, and against a
//! checkpoint), taking checkpoints, exporting.

use chrono::{DateTime, Utc};

use crate::protocol::audit::{
    AuditEvent, AuditFault, Checkpoint, Record, RecordKind, VerifyReport,
};
use crate::protocol::codes::VerificationCode;
use crate::protocol::epoch::parse_utc;
use crate::store::RepairReport;

use super::{Error, ErrorKind, Result, Session};

/// A verification code that is not this store's: a usage error.
fn wrong_code(code_store: Option<String>) -> Error {
    Error::Refused {
        message: match code_store {
            Some(id) => format!(
                "this audit verification code belongs to another store (its store id is {id})"
            ),
            None => "this audit verification code does not belong to this store: it verifies                      neither the log's first entry nor its current key"
                .to_owned(),
        },
        hint: "give the code shown when this store was created (--store chooses the store);                nothing was checked or changed"
            .into(),
        kind: ErrorKind::Usage,
    }
}

/// Which entries to show.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only entries of this action (`seal_day` shows the day seals).
    pub action: Option<String>,
}

impl Session {
    /// The entries that pass `filter`, decrypted; `None` stands for a record
    /// whose body cannot be decrypted (damaged).
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<(Record, Option<AuditEvent>)>> {
        let mut out = Vec::new();
        for (record, event) in self.store.audit_events()? {
            let Some(event) = event else {
                out.push((record, None));
                continue;
            };
            if record.kind == RecordKind::Seal && filter.action.as_deref() != Some("seal_day") {
                continue;
            }
            if filter.action.as_deref().is_some_and(|a| a != event.action) {
                continue;
            }
            let at = parse_utc(&event.time);
            if filter.since.is_some_and(|s| at.is_some_and(|at| at < s)) {
                continue;
            }
            out.push((record, Some(event)));
        }
        Ok(out)
    }

    /// Verifies the log (every entry with the verification code, else
    /// today's), that it ends where the store sealed it, and that it reaches
    /// `checkpoint`; the verification itself is audited. A code of another
    /// store is a usage error, not tampering.
    ///
    /// # Errors
    /// [`Error::AuditFailed`] naming the first bad record; a foreign code or
    /// checkpoint; database errors.
    pub fn audit_verify(
        &self,
        code: Option<&VerificationCode>,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<VerifyReport> {
        let store_id = self.store.store_id()?;
        if let Some(code) = code {
            let foreign = match (&code.store_id, &store_id) {
                (Some(given), Some(ours)) => hex::encode(given) != *ours,
                // A store without an id only ever had a first-release code.
                (Some(_), None) => true,
                (None, _) => false,
            };
            if foreign {
                return Err(wrong_code(code.store_id.map(hex::encode)));
            }
        }
        if let (Some(cp), Some(ours)) = (checkpoint, &store_id)
            && cp.store_id.as_ref().is_some_and(|id| id != ours)
        {
            return Err(Error::Refused {
                message: format!(
                    "this checkpoint belongs to another store (store id {}; this store's is {ours})",
                    cp.store_id.as_deref().unwrap_or_default()
                ),
                hint: "give a checkpoint taken of this store (--store chooses the store)".into(),
                kind: ErrorKind::Usage,
            });
        }
        let verdict = self.store.audit_verify(code.map(|c| &c.key), checkpoint)?;
        let mut details = vec![("with_code", code.is_some().to_string())];
        match verdict {
            Ok(report) => {
                self.store
                    .audit(self.now(), "audit_verify", "", "ok", &details)?;
                Ok(report)
            }
            Err(AuditFault::ForeignCode) => Err(wrong_code(None)),
            Err(fault) => {
                details.push(("fault", fault.kind().to_owned()));
                // The verdict matters more than its own entry, which a
                // tampered log may refuse.
                let logged = self
                    .store
                    .audit(self.now(), "audit_verify", "", "failed", &details)
                    .is_ok();
                Err(Error::AuditFailed { fault, logged })
            }
        }
    }

    /// Sets right a log that no longer ends where the store sealed it (see
    /// [`crate::store::Store::audit_repair`]); `None` when nothing needed it.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_repair(&self) -> Result<Option<RepairReport>> {
        Ok(self.store.audit_repair(self.now())?)
    }

    /// A checkpoint of the log's head, to keep somewhere else.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_checkpoint(&self) -> Result<Checkpoint> {
        self.store
            .audit(self.now(), "audit_checkpoint", "", "ok", &[])?;
        let (seq, mac) = self.store.audit_head()?;
        Ok(Checkpoint::new(
            self.store.store_id()?.as_deref(),
            seq,
            &mac,
            self.now(),
        ))
    }

    /// The log as an export file that `audit verify --export` checks with
    /// the verification code alone (wire-spec 9.7); the export is audited
    /// with its `destination` first, so the file includes its own entry.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_export(&self, destination: &str) -> Result<String> {
        self.store.audit(
            self.now(),
            "audit_export",
            "",
            "ok",
            &[
                ("to", destination.to_owned()),
                ("format", "json".to_owned()),
            ],
        )?;
        Ok(self.store.audit_export()?)
    }

    /// Every record as one JSON object per line, decrypted, with its MAC;
    /// the export is audited with its `destination`.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_export_jsonl(&self, destination: &str) -> Result<String> {
        self.store.audit(
            self.now(),
            "audit_export",
            "",
            "ok",
            &[("to", destination.to_owned())],
        )?;
        let mut text = String::new();
        for (record, event) in self.store.audit_events()? {
            let mut value = match &event {
                Some(event) => serde_json::to_value(event),
                None => Ok(serde_json::json!({ "undecryptable": true })),
            }
            .map_err(|e| Error::refused(format!("cannot export: {e}"), "report this"))?;
            value["seq"] = record.seq.into();
            value["day"] = record.day.into();
            value["kind"] = match record.kind {
                RecordKind::Entry => "entry",
                RecordKind::Seal => "seal",
            }
            .into();
            value["mac"] = hex::encode(record.mac).into();
            text.push_str(&value.to_string());
            text.push('\n');
        }
        Ok(text)
    }
}

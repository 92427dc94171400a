//! The audit log as its owner and an auditor use it: reading entries,
//! verifying the chain (with the verification code, and against a
//! checkpoint), taking checkpoints, exporting.

use chrono::{DateTime, Utc};

use crate::protocol::audit::{
    AuditEvent, Checkpoint, Record, RecordKind, SealingKey, VerifyReport,
};
use crate::protocol::epoch::parse_utc;

use super::{Error, Result, Session};

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

    /// Verifies the log (every entry with the verification key, else
    /// today's seals), and that it reaches `checkpoint`; the verification
    /// itself is audited.
    ///
    /// # Errors
    /// [`Error::AuditFailed`] naming the first bad record; database errors.
    pub fn audit_verify(
        &self,
        key: Option<&SealingKey>,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<VerifyReport> {
        let verdict = self.store.audit_verify(key, checkpoint)?;
        let mut details = vec![("with_code", key.is_some().to_string())];
        match verdict {
            Ok(report) => {
                self.store
                    .audit(self.now(), "audit_verify", "", "ok", &details)?;
                Ok(report)
            }
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

    /// A checkpoint of the log's head, to keep somewhere else.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_checkpoint(&self) -> Result<Checkpoint> {
        self.store
            .audit(self.now(), "audit_checkpoint", "", "ok", &[])?;
        let (seq, mac) = self.store.audit_head()?;
        Ok(Checkpoint::new(seq, &mac, self.now()))
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

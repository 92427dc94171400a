//! `medcrypt audit show|verify|checkpoint|export`.

use std::io::Write;

use anyhow::Result;
use medcrypt::audit::Checkpoint;
use medcrypt::codes::parse_verification_code;
use medcrypt::session::{AuditFilter, Error as SessionError, Session};

use super::args::AuditCommand;
use super::io::{note, out, parse_since};
use super::report::hinted;

/// Runs an `audit` subcommand.
pub(super) fn run(session: &Session, action: AuditCommand) -> Result<()> {
    match action {
        AuditCommand::Show {
            since,
            action,
            json,
        } => {
            let filter = AuditFilter {
                since: since.as_deref().map(parse_since).transpose()?,
                action,
            };
            for (record, event) in session.audit_entries(&filter)? {
                let Some(event) = event else {
                    out(format_args!(
                        "#{}: cannot be decrypted (damaged: run `medcrypt audit verify`)",
                        record.seq
                    ))?;
                    continue;
                };
                if json {
                    let mut value = serde_json::to_value(&event)?;
                    value["seq"] = record.seq.into();
                    out(format_args!("{value}"))?;
                } else {
                    let details: Vec<String> = event
                        .details
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    out(format_args!(
                        "{:>6}  {}  {:18} {:16} {:8} {}",
                        record.seq,
                        event.time,
                        event.action,
                        event.subject,
                        event.outcome,
                        details.join(" ")
                    ))?;
                }
            }
            Ok(())
        }
        AuditCommand::Verify { code, checkpoint } => {
            let code = code
                .as_deref()
                .map(|code| super::io::secret_input(code, "Audit verification code: "))
                .transpose()?;
            let key = code
                .as_deref()
                .map(|code| parse_verification_code(code))
                .transpose()
                .map_err(SessionError::from)?;
            let checkpoint = checkpoint
                .as_deref()
                .map(|c| {
                    Checkpoint::parse(c).map_err(|why| {
                        hinted(
                            format!("not a checkpoint: {why}"),
                            "give the whole line printed by `medcrypt audit checkpoint`",
                        )
                    })
                })
                .transpose()?;
            match session.audit_verify(key.as_ref(), checkpoint.as_ref()) {
                Ok(report) => {
                    let scope = if report.full {
                        "every entry checked from the audit verification code"
                    } else {
                        "structure and encryption checked, today's seals verified; \
                         give --code to verify every earlier entry"
                    };
                    out(format_args!(
                        "OK: {} records ({} entries, {} day seals) over {} days; {scope}.{}",
                        report.records,
                        report.entries,
                        report.seals,
                        report.days,
                        checkpoint
                            .map(|c| format!(" The log reaches checkpoint #{} unchanged.", c.seq))
                            .unwrap_or_default()
                    ))
                }
                Err(err) => {
                    if let SessionError::AuditFailed { logged: false, .. } = &err {
                        note(format_args!(
                            "note: this verification could not be logged: the log refuses appends"
                        ));
                    }
                    Err(err.into())
                }
            }
        }
        AuditCommand::Checkpoint => {
            let checkpoint = session.audit_checkpoint()?;
            out(format_args!("{}", checkpoint.to_text()))
        }
        AuditCommand::Export { format, output } => {
            if format != "jsonl" {
                return Err(hinted(
                    format!("unknown export format {format:?}"),
                    "use --format jsonl",
                ));
            }
            let destination = output
                .as_ref()
                .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
            let text = session.audit_export_jsonl(&destination)?;
            match output {
                Some(path) => Ok(session.write_file(&path, text.as_bytes())?),
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes())?;
                    Ok(stdout.flush()?)
                }
            }
        }
    }
}

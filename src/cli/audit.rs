//! `medcrypt audit show|verify|checkpoint|export`.

use std::io::Write;

use anyhow::Result;
use medcrypt::audit::Checkpoint;
use medcrypt::codes::parse_verification_code;
use medcrypt::session::{AuditFilter, Error as SessionError, Session};

use super::args::AuditCommand;
use super::io::{note, out, parse_since};
use super::report::{hinted, usage};

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
        AuditCommand::Verify {
            code, checkpoint, ..
        } => {
            let code = code
                .as_deref()
                .map(|code| super::io::secret_input(code, "Audit verification code: "))
                .transpose()?;
            let code = code
                .as_deref()
                .map(|code| parse_verification_code(code))
                .transpose()
                .map_err(|why| {
                    usage(
                        format!("this audit verification code cannot be read: {why}"),
                        "type the code again from the paper it was printed on; nothing was checked",
                    )
                })?;
            let checkpoint = checkpoint.as_deref().map(read_checkpoint).transpose()?;
            match session.audit_verify(code.as_ref(), checkpoint.as_ref()) {
                Ok(report) => {
                    out(format_args!(
                        "OK: {} records ({} entries, {} day seals) over {} days.",
                        report.records, report.entries, report.seals, report.days,
                    ))?;
                    for line in proven(&report, checkpoint.as_ref(), false) {
                        out(format_args!("  {line}"))?;
                    }
                    Ok(())
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
        AuditCommand::Repair => match session.audit_repair()? {
            None => out(format_args!(
                "Nothing to repair: the log ends where the store sealed it. \
                 (`medcrypt audit verify --code CODE` checks every entry.)"
            )),
            Some(report) => {
                if !report.set_aside.is_empty() {
                    out(format_args!(
                        "Set aside {} record(s) found past the log's sealed end (#{}..#{}); \
                         they are kept in the store as evidence.",
                        report.set_aside.len(),
                        report.set_aside.first().copied().unwrap_or_default(),
                        report.set_aside.last().copied().unwrap_or_default(),
                    ))?;
                }
                if report.log_end != report.head_was {
                    out(format_args!(
                        "The store had sealed the log's end at #{}, but it ended at #{}: \
                         entries #{}..#{} are gone.",
                        report.head_was,
                        report.log_end,
                        report.log_end + 1,
                        report.head_was
                    ))?;
                }
                out(format_args!(
                    "Recorded as audit entry #{} (audit_repair); every later verification names it. \
                     Audited operations work again. Tell whoever audits this store.",
                    report.repair_seq
                ))
            }
        },
        AuditCommand::Export { format, output } => {
            let destination = output
                .as_ref()
                .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
            let text = match format.as_str() {
                "json" => {
                    note(format_args!(
                        "note: a verifiable export holds the audit log's encryption key: with a later \
                         copy of the store file it opens later audit entries too (names of pairings, \
                         times, break-glass reasons; never a message). Keep it like the log itself."
                    ));
                    session.audit_export(&destination)?
                }
                "jsonl" => session.audit_export_jsonl(&destination)?,
                _ => {
                    return Err(hinted(
                        format!("unknown export format {format:?}"),
                        "use --format json (verifiable) or --format jsonl (readable)",
                    ));
                }
            };
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

/// What a successful verification proves, and what it does not.
fn proven(
    report: &medcrypt::audit::VerifyReport,
    checkpoint: Option<&Checkpoint>,
    export: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    if export {
        lines.push(
            "Proven from the verification code: no entry of an earlier day was altered, removed, \
             reordered or inserted, and the export ends where the store had sealed the log on \
             the export's day; every entry shown is the one its record holds."
                .to_owned(),
        );
    } else if report.full {
        lines.push(
            "Proven from the verification code: no entry of an earlier day was altered, removed, \
             reordered or inserted; the store's key is the one the code derives for today; the \
             log ends where the store sealed it."
                .to_owned(),
        );
    } else {
        lines.push(
            "Checked without the code: the structure, every entry's encryption and today's \
             entries. Entries of earlier days could have been rewritten by someone holding \
             this store's keys: give --code to prove them."
                .to_owned(),
        );
    }
    if !report.head_bound {
        lines.push(
            "This store's head is not bound yet (made before MedCrypt bound it): its next audited \
             operation binds it."
                .to_owned(),
        );
    }
    match checkpoint {
        Some(cp) => lines.push(format!(
            "The log reaches checkpoint #{} ({}) unchanged.",
            cp.seq, cp.time
        )),
        None => lines.push(
            "Not proven without a checkpoint kept elsewhere: that nothing was cut from the \
             current day by someone holding the passphrase, and that the store was not rolled \
             back to an older copy. Give --checkpoint with the latest line from \
             `medcrypt audit checkpoint` or your notice chat."
                .to_owned(),
        ),
    }
    for seq in &report.repairs {
        lines.push(format!(
            "WARNING: entry #{seq} records a repair (`medcrypt audit show --action audit_repair`): \
             the log had been altered before it, and what was found is recorded there."
        ));
    }
    lines
}

/// A checkpoint line given on the command line, or a usage error.
fn read_checkpoint(line: &str) -> Result<Checkpoint> {
    Checkpoint::parse(line).map_err(|why| {
        usage(
            format!("this checkpoint line cannot be read: {why}"),
            "copy the whole line printed by `medcrypt audit checkpoint` again; \
             nothing was checked",
        )
    })
}

/// The largest export file `audit verify --export` reads (256 MiB).
const MAX_EXPORT_FILE: u64 = 256 * 1024 * 1024;

/// `audit verify --export FILE --code CODE`: checks an export file with the
/// verification code alone, without a store.
pub(super) fn verify_export(
    path: &std::path::Path,
    code: &str,
    checkpoint: Option<&str>,
) -> Result<()> {
    use medcrypt::audit::{ExportError, verify_export};
    let code = super::io::secret_input(code, "Audit verification code: ")?;
    let code = parse_verification_code(&code).map_err(|why| {
        usage(
            format!("this audit verification code cannot be read: {why}"),
            "type the code again from the paper it was printed on; nothing was checked",
        )
    })?;
    let checkpoint = checkpoint.map(read_checkpoint).transpose()?;
    // An export of years of entries is a few megabytes; refuse what no
    // store writes before reading it.
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_EXPORT_FILE) {
        return Err(usage(
            format!("{} is larger than any audit export", path.display()),
            "give the file written by `medcrypt audit export --format json`",
        ));
    }
    let data = std::fs::read(path).map_err(|e| {
        usage(
            format!("cannot read the export {}: {e}", path.display()),
            "give the file written by `medcrypt audit export --format json`",
        )
    })?;
    match verify_export(&data, &code, checkpoint.as_ref()) {
        Ok(verified) => {
            let report = &verified.report;
            out(format_args!(
                "OK: {} records ({} entries, {} day seals) over {} days, store {}.",
                report.records,
                report.entries,
                report.seals,
                report.days,
                verified.store_id.as_deref().unwrap_or("without an id"),
            ))?;
            // How recent the export is: what it cannot show is after this.
            if let Some(last) = verified.events.iter().rev().find_map(|(_, e)| e.as_ref()) {
                out(format_args!(
                    "  The export's last entry: {} {} at {}.",
                    last.action, last.subject, last.time
                ))?;
            }
            for line in proven(report, checkpoint.as_ref(), true) {
                out(format_args!("  {line}"))?;
            }
            Ok(())
        }
        Err(ExportError::Fault(fault)) => Err(SessionError::AuditFailed {
            fault,
            logged: true,
        }
        .into()),
        Err(err @ ExportError::Unreadable(_)) => Err(usage(
            err.to_string(),
            "give the file written by `medcrypt audit export --format json`, unchanged",
        )),
        Err(err) => Err(usage(
            err.to_string(),
            "give the code (and checkpoint) of the store this export was taken from",
        )),
    }
}

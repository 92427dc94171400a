//! Command-line interface: arguments, the commands, and error reporting.

mod attach;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use medcrypt::audit::{AuditFault, Checkpoint, RecordKind};
use medcrypt::codes::{
    CodeError, PairingInvite, RecoveryCode, pairing_code, parse_pairing_code,
    parse_verification_code, verification_code,
};
use medcrypt::store::{PairingInfo, Protocol, Rotation, Store, StoreError};
use medcrypt::{
    DecryptError, Epoch, LegacyMessage, PairingSecret, Payload, Role, SealError, V1_PREFIX,
    WireMessage, check_window, format_utc, qr, strip_whitespace,
};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Exit code: the command line was invalid (clap's convention).
pub(crate) const EXIT_USAGE: u8 = 2;
const EXIT_OTHER: u8 = 1;
const EXIT_AUTHENTICATION: u8 = 3;
const EXIT_EXPIRED: u8 = 4;
const EXIT_REPLAYED: u8 = 5;
const EXIT_REFLECTED: u8 = 6;
const EXIT_DAMAGED: u8 = 7;
const EXIT_UNKNOWN_PAIRING: u8 = 8;
const EXIT_LOCKED: u8 = 9;
const EXIT_AUDIT_FAILED: u8 = 10;

/// Shortest passphrase accepted for a new store or a passphrase change.
const MIN_PASSPHRASE_CHARS: usize = 8;

/// End-to-end encryption for physician–patient messages over any messenger.
#[derive(Parser)]
#[command(name = "medcrypt", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The store file [default: MEDCRYPT_STORE, else the platform data directory].
    #[arg(long, global = true, value_name = "PATH", env = "MEDCRYPT_STORE")]
    store: Option<PathBuf>,
    /// Read the store passphrase from this file (else MEDCRYPT_PASSPHRASE, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new store (asks for a passphrase twice; shows a recovery code once).
    Init {
        /// Your display name, carried in pairing QR codes (e.g. "Dr. Ana Silva").
        #[arg(long)]
        name: Option<String>,
    },
    /// Manage the store passphrase.
    Passphrase {
        #[command(subcommand)]
        action: PassphraseCommand,
    },
    /// Open the store with the recovery code and set a new passphrase.
    Recover {
        /// The recovery code shown at init (`-` reads it from standard input).
        #[arg(long, value_name = "CODE")]
        recovery_code: String,
        /// Read the new passphrase from this file (else MEDCRYPT_NEW_PASSPHRASE, else a prompt).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Show or change settings (name, telegram-bot, whatsapp-number).
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Pair with a patient or a physician.
    Pair {
        #[command(subcommand)]
        action: PairCommand,
    },
    /// Encrypt a text for a pairing; prints one line to paste into the chat.
    Encrypt {
        /// The pairing to send to.
        #[arg(long, value_name = "ALIAS")]
        to: String,
        /// Write the legacy v1 format for old clients (shows the patient id to the messenger).
        #[arg(long)]
        legacy_v1: bool,
        /// The text; standard input when absent or `-`.
        text: Option<String>,
    },
    /// Decrypt a message copied from the chat; prints the text.
    Decrypt {
        /// The pairing it came from (found by its key hint when absent).
        #[arg(long, value_name = "ALIAS")]
        from: Option<String>,
        /// A file holding the message; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Show and destroy epoch keys.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Run the physician's bot-side agent.
    Agent {
        #[command(subcommand)]
        transport: AgentCommand,
    },
    /// Queue an encrypted text or file for the agent to deliver.
    Send {
        /// The pairing to send to.
        #[arg(long, value_name = "ALIAS")]
        to: String,
        /// A file to send instead of text.
        #[arg(long, value_name = "FILE", conflicts_with = "text")]
        file: Option<PathBuf>,
        /// The text; standard input when absent or `-`.
        text: Option<String>,
    },
    /// Show what is queued for delivery, and its state.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxCommand>,
    },
    /// Show the decrypted messages the agent received.
    Inbox {
        /// Only from this pairing.
        #[arg(long, value_name = "ALIAS")]
        from: Option<String>,
        /// Keep showing new messages as they arrive (Ctrl-C stops).
        #[arg(long)]
        follow: bool,
        /// Write received files into this directory.
        #[arg(long, value_name = "DIR")]
        save_attachments: Option<PathBuf>,
    },
    /// Encrypt and decrypt files (lab PDFs, photos, imaging) as attachments.
    Attach {
        #[command(subcommand)]
        action: AttachCommand,
    },
    /// Break-glass: split the store's keys among custodians, or combine
    /// their shares in an emergency.
    Escrow {
        #[command(subcommand)]
        action: EscrowCommand,
    },
    /// Read, verify and export the encrypted, tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
}

#[derive(Subcommand)]
enum EscrowCommand {
    /// Split the store's keys into shares, one printable page and QR code per custodian.
    Split {
        /// A custodian's name (repeat: 2 to 10 custodians).
        #[arg(long = "custodian", value_name = "NAME", required = true)]
        custodians: Vec<String>,
        /// How many custodians together can open the store.
        #[arg(long, default_value_t = 2)]
        threshold: usize,
        /// Where to write the share files [default: escrow-shares-DATE].
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// The audit verification code from init, so custodians can verify the log too.
        #[arg(long, value_name = "CODE")]
        audit_code: Option<String>,
    },
    /// Emergency access: combine shares, then export or re-key. Everyone is told.
    Combine {
        /// A share file (the text page or its QR PNG); repeat.
        #[arg(long = "share", value_name = "FILE")]
        share_files: Vec<PathBuf>,
        /// A share typed in (MEDCRYPT-SHARE:v1:…); repeat.
        #[arg(long = "share-text", value_name = "TEXT")]
        share_texts: Vec<String>,
        /// Why the records are opened (recorded and sent to physician and patient).
        #[arg(long, required = true)]
        reason: String,
        /// Write decrypted copies of one patient's messages and files here.
        #[arg(
            long,
            value_name = "DIR",
            requires = "patient",
            conflicts_with = "new_passphrase_file",
            required_unless_present = "new_passphrase_file"
        )]
        export: Option<PathBuf>,
        /// The patient whose records to export.
        #[arg(long, value_name = "ALIAS")]
        patient: Option<String>,
        /// Re-key the store under a new passphrase read from this file.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Telegram, by long polling. Token from TELOXIDE_TOKEN or --token-file;
    /// API URL from TELOXIDE_API_URL (a self-hosted Bot API server), else Telegram's.
    Telegram {
        /// A file holding the bot token from @BotFather.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Warn about plaintext messages but do not delete them.
        #[arg(long)]
        keep_plaintext: bool,
        /// Long-polling timeout in seconds.
        #[arg(long, default_value_t = 25, hide = true)]
        poll_timeout: u32,
        /// Seconds between rotation/shredding ticks.
        #[arg(long, default_value_t = 60, hide = true)]
        tick_seconds: u64,
        /// Stop after this many seconds (for demonstrations and tests).
        #[arg(long, hide = true)]
        run_for: Option<u64>,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Queue an uncertain or failed item again.
    Retry {
        /// The item's number.
        id: i64,
    },
}

#[derive(Subcommand)]
enum AttachCommand {
    /// Encrypt a file for one or more pairings; prints the file(s) written.
    Encrypt {
        /// A pairing to send to (repeat for several recipients).
        #[arg(long = "to", value_name = "ALIAS", required = true)]
        to: Vec<String>,
        /// The file to encrypt.
        file: PathBuf,
        /// The encrypted file [default: a neutral name in the current directory].
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Split into numbered parts of at most this size (e.g. 19M for a
        /// Telegram bot's 20 MB download limit).
        #[arg(long, value_name = "SIZE")]
        part_size: Option<String>,
    },
    /// Decrypt an attachment (or all parts of one, in any order).
    Decrypt {
        /// The .medcrypt file, or every part of a split one.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write here [default: the original name, in the current directory].
        #[arg(short, long, value_name = "OUT", conflicts_with = "out_dir")]
        output: Option<PathBuf>,
        /// Write the original name into this directory.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show the entries.
    Show {
        /// Only entries from this date (YYYY-MM-DD) or instant (RFC 3339) on.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only entries of this action (e.g. decrypt_failed).
        #[arg(long, value_name = "ACTION")]
        action: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Check that no entry was altered, removed, reordered or inserted.
    Verify {
        /// The audit verification code shown at init: checks every entry
        /// (without it, only today's seals can be checked).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
        /// A checkpoint printed by `audit checkpoint`: proves the log still
        /// reaches it, unchanged.
        #[arg(long, value_name = "CHECKPOINT")]
        checkpoint: Option<String>,
    },
    /// Print a short checkpoint of the log's head, to keep somewhere else.
    Checkpoint,
    /// Export every record, decrypted, with its MAC, as JSON lines.
    Export {
        /// The format (only jsonl).
        #[arg(long, value_name = "FORMAT", default_value = "jsonl")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PassphraseCommand {
    /// Re-wrap the store under a new passphrase.
    Change {
        /// Read the new passphrase from this file (else MEDCRYPT_NEW_PASSPHRASE, else a prompt).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Show the settings.
    Show,
    /// Change a setting; an empty value removes it.
    Set {
        /// One of: name, telegram-bot, whatsapp-number.
        key: String,
        /// The new value.
        value: String,
    },
}

#[derive(Subcommand)]
enum PairCommand {
    /// (Physician) Start a pairing: shows a QR code, a typed code and the safety number.
    New {
        /// Your name for this patient.
        #[arg(long, value_name = "ALIAS")]
        patient: String,
        /// Also write the QR code as a PNG image.
        #[arg(long, value_name = "FILE")]
        qr_png: Option<PathBuf>,
        /// Also write the QR code as an SVG image.
        #[arg(long, value_name = "FILE")]
        qr_svg: Option<PathBuf>,
    },
    /// (Patient) Accept a pairing from a photo or screenshot of the QR code, or the typed code.
    Accept {
        /// A PNG or JPEG image of the QR code.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "code",
            required_unless_present = "code"
        )]
        qr_image: Option<PathBuf>,
        /// The typed code shown under the QR code.
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
        /// Your name for this physician [default: the name in the QR code; required with --code].
        #[arg(long, value_name = "ALIAS")]
        physician: Option<String>,
    },
    /// List pairings.
    List,
    /// Remove a pairing and destroy all of its keys.
    Remove {
        /// The pairing to remove.
        alias: String,
    },
    /// Import a legacy v1 pairing from its shared secret, so old messages still decrypt.
    ImportLegacy {
        /// Your name for this pairing.
        #[arg(long)]
        alias: String,
        /// A file holding the v1 shared secret.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        /// The v1 patient id.
        #[arg(long, value_name = "ID")]
        patient_id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Per pairing, the live epoch keys and when each will be destroyed.
    List,
    /// Destroy every key past its acceptance window now.
    Shred,
}

/// An error that is not a library error but still has its own exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{message}")]
    WithHint {
        message: String,
        hint: &'static str,
        code: u8,
    },
}

fn hinted(message: impl Into<String>, hint: &'static str) -> anyhow::Error {
    CliError::WithHint {
        message: message.into(),
        hint,
        code: EXIT_OTHER,
    }
    .into()
}

/// Prints the error with a hint and returns its exit code. A broken pipe is
/// not an error.
pub(crate) fn report(err: &anyhow::Error) -> u8 {
    if err
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return 0;
    }
    let (code, hint) = classify(err);
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err:#}");
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    code
}

fn classify(err: &anyhow::Error) -> (u8, Option<&'static str>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::cli::attach::AttachFailure>() {
            return (e.code, Some(e.hint));
        }
        if let Some(e) = cause.downcast_ref::<medcrypt::attachment::AttachmentError>() {
            match e {
                medcrypt::attachment::AttachmentError::Header(inner) => {
                    return classify(&anyhow::Error::new(inner.clone()));
                }
                other => {
                    if let Some((code, hint)) = crate::cli::attach::classify(other) {
                        return (code, Some(hint));
                    }
                }
            }
        }
        if let Some(e) = cause.downcast_ref::<DecryptError>() {
            return match e {
                DecryptError::Malformed(_) => (
                    EXIT_DAMAGED,
                    Some(
                        "copy the whole message, from MEDCRYPT: to its last character, and try again",
                    ),
                ),
                DecryptError::Damaged(_) => (
                    EXIT_DAMAGED,
                    Some(
                        "the text changed on its way (often in copy and paste): copy the whole message again, or ask the sender to send it again",
                    ),
                ),
                DecryptError::UnsupportedVersion(_) | DecryptError::UnsupportedPayload(_) => (
                    EXIT_DAMAGED,
                    Some("the sender uses a newer MedCrypt: update this one"),
                ),
                DecryptError::UnknownKeyHint => (
                    EXIT_UNKNOWN_PAIRING,
                    Some(
                        "it was encrypted for another pairing or another store: check --from and --store (`medcrypt pair list`)",
                    ),
                ),
                DecryptError::Expired { .. } => (
                    EXIT_EXPIRED,
                    Some(
                        "keys are destroyed 7 days after their month ends, so this message can no longer be read: ask the sender to send it again",
                    ),
                ),
                DecryptError::NotYetValid { .. } => (
                    EXIT_EXPIRED,
                    Some(
                        "check the clock of this computer and of the sender (and MEDCRYPT_NOW, if set)",
                    ),
                ),
                DecryptError::AuthenticationFailed => (
                    EXIT_AUTHENTICATION,
                    Some(
                        "the message was altered, or encrypted with a key this store does not hold: do not trust it; ask the sender to send it again",
                    ),
                ),
                DecryptError::Reflected => (
                    EXIT_REFLECTED,
                    Some("this is a message you sent; only the other side can decrypt it"),
                ),
            };
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::NotFound(_) => (
                    EXIT_OTHER,
                    Some("create one with `medcrypt init`, or point to yours with --store PATH"),
                ),
                StoreError::AlreadyExists(_) => (
                    EXIT_OTHER,
                    Some("use another --store path; nothing was changed"),
                ),
                StoreError::WrongPassphrase => (
                    EXIT_LOCKED,
                    Some(
                        "nothing was changed; try again, or if the passphrase is lost use `medcrypt recover --recovery-code CODE`",
                    ),
                ),
                StoreError::WrongRecoveryCode => (
                    EXIT_LOCKED,
                    Some(
                        "nothing was changed; use the recovery code shown when this store was created",
                    ),
                ),
                StoreError::UnknownPairing(_) => (
                    EXIT_UNKNOWN_PAIRING,
                    Some("`medcrypt pair list` shows the pairings of this store"),
                ),
                StoreError::DuplicateAlias(_) => (EXIT_OTHER, Some("choose another alias")),
                StoreError::Replayed { .. } => (
                    EXIT_REPLAYED,
                    Some(
                        "this message was already decrypted once; a message sent again must be encrypted anew",
                    ),
                ),
                StoreError::NewerSchema(_) => (EXIT_OTHER, Some("update MedCrypt")),
                StoreError::Corrupt(_) => (
                    EXIT_OTHER,
                    Some("restore the store from a backup, or use `medcrypt recover`"),
                ),
                StoreError::Escrow(_) => (
                    EXIT_LOCKED,
                    Some(
                        "nothing was opened; use shares of this store's current split (each page names its set) from enough different custodians",
                    ),
                ),
                StoreError::Sqlite(_) | StoreError::Io { .. } => (
                    EXIT_OTHER,
                    Some("check the disk and the store's permissions"),
                ),
            };
        }
        if let Some(e) = cause.downcast_ref::<CodeError>() {
            return match e {
                CodeError::Checksum
                | CodeError::BadCharacter(_)
                | CodeError::WrongLength { .. } => (
                    EXIT_OTHER,
                    Some(
                        "compare the code group by group with the one on the other screen; nothing was stored",
                    ),
                ),
                CodeError::NotPairing(_) => (
                    EXIT_OTHER,
                    Some("scan the QR code shown by `medcrypt pair new`; nothing was stored"),
                ),
            };
        }
        if cause.downcast_ref::<AuditFault>().is_some() {
            return (
                EXIT_AUDIT_FAILED,
                Some(
                    "the audit log was tampered with: keep this store as evidence and tell whoever audits it",
                ),
            );
        }
        if let Some(e) = cause.downcast_ref::<medcrypt::agent::telegram::AgentError>() {
            return match e {
                medcrypt::agent::telegram::AgentError::Store(_) => {
                    (EXIT_OTHER, Some("check the store"))
                }
                medcrypt::agent::telegram::AgentError::Telegram(_) => (
                    EXIT_OTHER,
                    Some("check the token (TELOXIDE_TOKEN), TELOXIDE_API_URL and the network"),
                ),
                medcrypt::agent::telegram::AgentError::Config(_) => {
                    (EXIT_USAGE, Some("fix the setting and start again"))
                }
            };
        }
        if let Some(SealError::TooLong { .. }) = cause.downcast_ref::<SealError>() {
            return (
                EXIT_OTHER,
                Some("shorten the text, or send it as an encrypted attachment"),
            );
        }
        if let Some(CliError::WithHint { hint, code, .. }) = cause.downcast_ref::<CliError>() {
            return (*code, Some(hint));
        }
    }
    (EXIT_OTHER, None)
}

/// Validated settings shared by every command.
struct Settings {
    store_path: PathBuf,
    passphrase_file: Option<PathBuf>,
    now: DateTime<Utc>,
}

fn default_store_path() -> Result<PathBuf> {
    let dir = dirs::data_dir().ok_or_else(|| {
        hinted(
            "cannot find the platform data directory",
            "pass --store PATH or set MEDCRYPT_STORE",
        )
    })?;
    Ok(dir.join("medcrypt").join("store.sqlite"))
}

fn clock() -> Result<DateTime<Utc>> {
    match std::env::var("MEDCRYPT_NOW") {
        Ok(text) if !text.is_empty() => medcrypt::parse_utc(&text).ok_or_else(|| {
            hinted(
                format!("MEDCRYPT_NOW is not an RFC 3339 time: {text:?}"),
                "use a form like 2026-12-05T09:00:00Z, or unset MEDCRYPT_NOW to use the clock",
            )
        }),
        _ => Ok(Utc::now()),
    }
}

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> Result<()> {
    let ctx = Settings {
        store_path: match cli.store {
            Some(path) => path,
            None => default_store_path()?,
        },
        passphrase_file: cli.passphrase_file,
        now: clock()?,
    };
    match cli.command {
        Command::Init { name } => init(&ctx, name),
        Command::Escrow {
            action:
                EscrowCommand::Combine {
                    share_files,
                    share_texts,
                    reason,
                    export,
                    patient,
                    new_passphrase_file,
                },
        } => escrow_combine(
            &ctx,
            &share_files,
            &share_texts,
            &reason,
            export.as_deref().zip(patient.as_deref()),
            new_passphrase_file.as_deref(),
        ),
        Command::Recover {
            recovery_code,
            new_passphrase_file,
        } => recover(&ctx, &recovery_code, new_passphrase_file.as_deref()),
        command => {
            let mut store = unlock(&ctx)?;
            if let Some(key) = store.take_new_verification_key() {
                let _ = writeln!(
                    std::io::stderr(),
                    "note: this store's audit log starts now. Audit verification code (shown once; \
                     give it to whoever audits this store):\n    {}",
                    verification_code(&key).as_str()
                );
            }
            // Audit commands read a log that may be tampered with; they must
            // not fail on appending rotation entries to it. Rotation runs at
            // the next other command.
            let rotations = if matches!(command, Command::Audit { .. }) {
                Vec::new()
            } else {
                store.rotate(ctx.now)?
            };
            report_shredding(&rotations);
            dispatch(&ctx, &mut store, command, &rotations)
        }
    }
}

fn dispatch(
    ctx: &Settings,
    store: &mut Store,
    command: Command,
    rotations: &[Rotation],
) -> Result<()> {
    match command {
        Command::Init { .. } | Command::Recover { .. } => Ok(()),
        Command::Audit { action } => audit(ctx, store, action),
        Command::Escrow {
            action:
                EscrowCommand::Split {
                    custodians,
                    threshold,
                    out_dir,
                    audit_code,
                },
        } => escrow_split(
            ctx,
            store,
            &custodians,
            threshold,
            out_dir,
            audit_code.as_deref(),
        ),
        Command::Escrow { .. } => Ok(()),
        Command::Agent {
            transport:
                AgentCommand::Telegram {
                    token_file,
                    keep_plaintext,
                    poll_timeout,
                    tick_seconds,
                    run_for,
                },
        } => {
            let token = match token_file {
                Some(path) => read_secret_file(&path, "token")?.expose_secret().to_owned(),
                None => std::env::var("TELOXIDE_TOKEN").map_err(|_| {
                    hinted(
                        "no bot token",
                        "set TELOXIDE_TOKEN or pass --token-file FILE (the token @BotFather gave you)",
                    )
                })?,
            };
            init_logging();
            let options = medcrypt::agent::telegram::Options {
                token,
                api_url: std::env::var("TELOXIDE_API_URL")
                    .ok()
                    .filter(|u| !u.is_empty()),
                poll_timeout,
                keep_plaintext,
                tick: std::time::Duration::from_secs(tick_seconds.max(1)),
                run_for: run_for.map(std::time::Duration::from_secs),
                clock: clock_or_now,
            };
            Ok(medcrypt::agent::telegram::run(store, &options)?)
        }
        Command::Send { to, file, text } => send(ctx, store, &to, file.as_deref(), text),
        Command::Outbox { action } => match action {
            None => outbox_list(store),
            Some(OutboxCommand::Retry { id }) => {
                store.outbox_retry(id, ctx.now)?;
                out(format_args!("Outbox item #{id} is queued again."))
            }
        },
        Command::Inbox {
            from,
            follow,
            save_attachments,
        } => inbox(
            ctx,
            store,
            from.as_deref(),
            follow,
            save_attachments.as_deref(),
        ),
        Command::Attach { action } => match action {
            AttachCommand::Encrypt {
                to,
                file,
                output,
                part_size,
            } => crate::cli::attach::encrypt(
                store,
                ctx.now,
                &to,
                &file,
                output.as_deref(),
                part_size.as_deref(),
            ),
            AttachCommand::Decrypt {
                files,
                output,
                out_dir,
                force,
            } => crate::cli::attach::decrypt(
                store,
                ctx.now,
                &files,
                output.as_deref(),
                out_dir.as_deref(),
                force,
            ),
        },
        Command::Passphrase {
            action: PassphraseCommand::Change {
                new_passphrase_file,
            },
        } => {
            let new = new_passphrase(new_passphrase_file.as_deref())?;
            store.change_passphrase(&new, ctx.now)?;
            out(format_args!(
                "Passphrase changed. The recovery code is unchanged."
            ))
        }
        Command::Config { action } => config(ctx, store, action),
        Command::Pair { action } => match action {
            PairCommand::New {
                patient,
                qr_png,
                qr_svg,
            } => pair_new(ctx, store, &patient, qr_png.as_deref(), qr_svg.as_deref()),
            PairCommand::Accept {
                qr_image,
                code,
                physician,
            } => pair_accept(ctx, store, qr_image.as_deref(), code.as_deref(), physician),
            PairCommand::List => pair_list(store),
            PairCommand::Remove { alias } => {
                store.remove_pairing(&alias, ctx.now)?;
                out(format_args!(
                    "Removed pairing {alias:?}: all of its keys are destroyed."
                ))
            }
            PairCommand::ImportLegacy {
                alias,
                secret_file,
                patient_id,
            } => import_legacy(ctx, store, &alias, &secret_file, &patient_id),
        },
        Command::Encrypt {
            to,
            legacy_v1,
            text,
        } => encrypt(ctx, store, &to, legacy_v1, text),
        Command::Decrypt { from, file } => decrypt(ctx, store, from.as_deref(), file.as_deref()),
        Command::Keys { action } => match action {
            KeysCommand::List => keys_list(ctx, store),
            KeysCommand::Shred => {
                if rotations.iter().all(|r| r.advance.destroyed.is_empty()) {
                    out(format_args!(
                        "No key is past its acceptance window; nothing destroyed."
                    ))
                } else {
                    out(format_args!("Done."))
                }
            }
        },
    }
}

/// Writes one line to standard output.
fn out(line: std::fmt::Arguments<'_>) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

fn report_shredding(rotations: &[Rotation]) {
    let mut stderr = std::io::stderr().lock();
    for rotation in rotations {
        for epoch in &rotation.advance.destroyed {
            let _ = writeln!(
                stderr,
                "note: destroyed the {epoch} key of {:?} (its 7-day grace period ended {})",
                rotation.alias,
                format_utc(epoch.destruction_time())
            );
        }
    }
}

fn read_secret_file(path: &Path, what: &str) -> Result<SecretString> {
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read the {what} file {}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow!("the {what} file {} is not UTF-8 text", path.display()))?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// Asks on the controlling terminal (not stdin, which may carry a message),
/// without echo.
fn prompt(label: &str) -> Result<SecretString> {
    match rpassword::prompt_password(label) {
        Ok(text) => Ok(SecretString::from(text)),
        Err(_) => Err(hinted(
            "no passphrase given and no terminal to ask for one",
            "set MEDCRYPT_PASSPHRASE or pass --passphrase-file FILE",
        )),
    }
}

fn passphrase(ctx: &Settings) -> Result<SecretString> {
    if let Some(file) = &ctx.passphrase_file {
        return read_secret_file(file, "passphrase");
    }
    if let Ok(text) = std::env::var("MEDCRYPT_PASSPHRASE") {
        return Ok(SecretString::from(text));
    }
    prompt("Store passphrase: ")
}

/// A new passphrase: from a file, MEDCRYPT_NEW_PASSPHRASE, or asked twice.
fn new_passphrase_from(file: Option<&Path>, env: &str) -> Result<SecretString> {
    let pass = if let Some(file) = file {
        read_secret_file(file, "new passphrase")?
    } else if let Ok(text) = std::env::var(env) {
        SecretString::from(text)
    } else {
        let first = prompt("New passphrase: ")?;
        let second = prompt("Repeat the new passphrase: ")?;
        if first.expose_secret() != second.expose_secret() {
            return Err(hinted(
                "the two passphrases differ",
                "type the same passphrase twice",
            ));
        }
        first
    };
    if pass.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(hinted(
            format!("the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters"),
            "choose a longer passphrase: a few unrelated words work well",
        ));
    }
    Ok(pass)
}

fn new_passphrase(file: Option<&Path>) -> Result<SecretString> {
    new_passphrase_from(file, "MEDCRYPT_NEW_PASSPHRASE")
}

fn unlock(ctx: &Settings) -> Result<Store> {
    if !ctx.store_path.is_file() {
        return Err(StoreError::NotFound(ctx.store_path.clone()).into());
    }
    let pass = passphrase(ctx)?;
    Ok(Store::open(&ctx.store_path, &pass, ctx.now)?)
}

fn init(ctx: &Settings, name: Option<String>) -> Result<()> {
    if ctx.store_path.exists() {
        return Err(StoreError::AlreadyExists(ctx.store_path.clone()).into());
    }
    let pass = if ctx.passphrase_file.is_some() {
        passphrase(ctx)?
    } else {
        new_passphrase_from(None, "MEDCRYPT_PASSPHRASE")?
    };
    if pass.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(hinted(
            format!("the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters"),
            "choose a longer passphrase: a few unrelated words work well",
        ));
    }
    let name = name.unwrap_or_default();
    let (_store, recovery, verification) = Store::create(&ctx.store_path, &pass, &name, ctx.now)?;
    out(format_args!(
        "Created the MedCrypt store {}.\n\n\
         Recovery code (shown only now; write it down and keep it away from this computer):\n\n    {}\n\n\
         If the passphrase is ever lost, `medcrypt recover --recovery-code CODE` opens the store with it.\n\n\
         Audit verification code (shown only now; give it to whoever audits this store):\n\n    {}\n\n\
         With it, `medcrypt audit verify --code CODE` proves that no audit entry was altered or removed,\n\
         even by someone who later holds this computer and its passphrase.",
        ctx.store_path.display(),
        recovery.to_text().as_str(),
        verification_code(&verification).as_str()
    ))
}

fn recover(ctx: &Settings, code: &str, new_file: Option<&Path>) -> Result<()> {
    let code = if code == "-" {
        let mut text = Zeroizing::new(String::new());
        std::io::stdin().read_to_string(&mut text)?;
        RecoveryCode::parse(text.trim())?
    } else {
        RecoveryCode::parse(code)?
    };
    let store = Store::open_with_recovery(&ctx.store_path, &code, ctx.now)?;
    let new = new_passphrase(new_file)?;
    store.change_passphrase(&new, ctx.now)?;
    out(format_args!(
        "Store opened with the recovery code; the new passphrase is set. The recovery code stays valid."
    ))
}

const SETTINGS: [(&str, &str); 3] = [
    ("name", "name"),
    ("telegram-bot", "telegram_bot"),
    ("whatsapp-number", "whatsapp_number"),
];

fn config(ctx: &Settings, store: &Store, action: ConfigCommand) -> Result<()> {
    match action {
        ConfigCommand::Show => {
            for (shown, key) in SETTINGS {
                let value = store.setting(key)?.unwrap_or_default();
                out(format_args!("{shown:16} {value}"))?;
            }
            Ok(())
        }
        ConfigCommand::Set { key, value } => {
            let Some((_, stored)) = SETTINGS.iter().find(|(shown, _)| *shown == key) else {
                return Err(hinted(
                    format!("unknown setting {key:?}"),
                    "settings are: name, telegram-bot, whatsapp-number",
                ));
            };
            let value = value.trim().trim_start_matches('@');
            store.set_setting(stored, value, ctx.now)?;
            out(format_args!("{key} = {value}"))
        }
    }
}

fn check_alias(alias: &str) -> Result<()> {
    if alias.trim().is_empty() || alias.chars().any(char::is_control) {
        return Err(hinted(
            format!("{alias:?} cannot be an alias"),
            "use a short name without control characters, e.g. the patient's initials",
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so `path` is either complete or absent. `private` files
/// (they hold secrets) get mode 0600.
fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

fn pair_new(
    ctx: &Settings,
    store: &mut Store,
    alias: &str,
    png: Option<&Path>,
    svg: Option<&Path>,
) -> Result<()> {
    check_alias(alias)?;
    let start = Epoch::containing(ctx.now);
    let invite = PairingInvite {
        secret: PairingSecret::generate(),
        start,
        physician_name: store.setting("name")?.unwrap_or_default(),
        telegram_bot: store.setting("telegram_bot")?,
        whatsapp_number: store.setting("whatsapp_number")?,
    };
    let uri = invite.to_uri();
    let terminal = qr::render_terminal(&uri)?;
    let png_bytes = png.map(|_| qr::render_png(&uri)).transpose()?;
    let svg_text = svg.map(|_| qr::render_svg(&uri)).transpose()?;
    let safety = invite.secret.safety_number(start);
    let code = Zeroizing::new(pairing_code(&invite.secret, start));
    store.add_pairing(
        alias,
        Role::Physician,
        "",
        &invite.secret.first_epoch_key(start),
        &invite.secret.pairing_token(),
        &safety,
        ctx.now,
    )?;
    let written = (|| -> Result<()> {
        if let (Some(path), Some(bytes)) = (png, &png_bytes) {
            write_atomically(path, bytes, true)?;
        }
        if let (Some(path), Some(text)) = (svg, &svg_text) {
            write_atomically(path, text.as_bytes(), true)?;
        }
        Ok(())
    })();
    if let Err(err) = written {
        // Without its QR code the pairing cannot be completed: undo it.
        let _ = store.remove_pairing(alias, ctx.now);
        return Err(err.context("the pairing was not created"));
    }
    out(format_args!(
        "New pairing {alias:?}. Let the patient scan this QR code now; it is shown only once.\n\n{terminal}\n\
         Typed code, if the QR code cannot be scanned:\n    {}\n\n\
         Safety number (the patient's screen must show the same):\n    {safety}",
        code.as_str()
    ))?;
    for path in png.iter().chain(svg.iter()) {
        out(format_args!(
            "QR code written to {}: delete it once the patient has scanned it (it holds the pairing secret).",
            path.display()
        ))?;
    }
    Ok(())
}

fn pair_accept(
    ctx: &Settings,
    store: &mut Store,
    image: Option<&Path>,
    code: Option<&str>,
    alias: Option<String>,
) -> Result<()> {
    let invite = match (image, code) {
        (Some(path), _) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let text = Zeroizing::new(qr::decode_image(&bytes).map_err(|e| {
                hinted(
                    format!("{e} in {}", path.display()),
                    "take a sharper, well-lit picture of the whole QR code, or use --code with the typed code",
                )
            })?);
            PairingInvite::from_uri(&text)?
        }
        (None, Some(code)) => {
            let (secret, start) = parse_pairing_code(code)?;
            PairingInvite {
                secret,
                start,
                physician_name: String::new(),
                telegram_bot: None,
                whatsapp_number: None,
            }
        }
        (None, None) => bail!("give --qr-image FILE or --code CODE"),
    };
    let alias =
        match alias.or_else(|| Some(invite.physician_name.clone()).filter(|n| !n.is_empty())) {
            Some(alias) => alias,
            None => {
                return Err(hinted(
                    "no name for this pairing",
                    "pass --physician ALIAS (the typed code does not carry the physician's name)",
                ));
            }
        };
    check_alias(&alias)?;
    let safety = invite.secret.safety_number(invite.start);
    let token = invite.secret.pairing_token();
    store.add_pairing(
        &alias,
        Role::Patient,
        &invite.physician_name,
        &invite.secret.first_epoch_key(invite.start),
        &token,
        &safety,
        ctx.now,
    )?;
    drop(invite.secret);
    out(format_args!(
        "Paired with {alias:?}.\n\nSafety number (the physician's screen must show the same):\n    {safety}"
    ))?;
    if let Some(bot) = &invite.telegram_bot {
        out(format_args!(
            "\nOpen this link to connect your Telegram chat:\n    https://t.me/{bot}?start={token}"
        ))?;
    }
    if let Some(number) = &invite.whatsapp_number {
        out(format_args!("\nWhatsApp number of the practice: {number}"))?;
    }
    Ok(())
}

fn pair_list(store: &Store) -> Result<()> {
    let pairings = store.pairings()?;
    if pairings.is_empty() {
        return out(format_args!(
            "No pairings yet: `medcrypt pair new --patient ALIAS` (physician) or `medcrypt pair accept` (patient)."
        ));
    }
    out(format_args!(
        "{:20} {:10} {:9} {:20} SAFETY NUMBER",
        "ALIAS", "ROLE", "PROTOCOL", "CREATED"
    ))?;
    for p in pairings {
        let protocol = match p.protocol {
            Protocol::V2 => "v2",
            Protocol::V1 => "legacy v1",
        };
        out(format_args!(
            "{:20} {:10} {:9} {:20} {}",
            p.alias,
            if p.protocol == Protocol::V1 {
                "-"
            } else {
                p.role.name()
            },
            protocol,
            p.created_at,
            p.safety_number.unwrap_or_default()
        ))?;
    }
    Ok(())
}

fn import_legacy(
    ctx: &Settings,
    store: &mut Store,
    alias: &str,
    file: &Path,
    patient_id: &str,
) -> Result<()> {
    check_alias(alias)?;
    let secret = read_secret_file(file, "shared secret")?;
    if secret.expose_secret().is_empty() {
        return Err(hinted(
            format!("the secret file {} is empty", file.display()),
            "give the file holding the v1 shared secret",
        ));
    }
    store.add_legacy_pairing(alias, &secret, patient_id, ctx.now)?;
    out(format_args!(
        "Imported legacy v1 pairing {alias:?}. Its messages decrypt as before; \
         pair anew with `medcrypt pair new` to gain monthly key destruction."
    ))
}

fn read_input(path: Option<&Path>) -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(Vec::new());
    match path {
        Some(path) if path != Path::new("-") => {
            *bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
        }
    }
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(_) => Err(DecryptError::Malformed("the input is not text").into()),
    }
}

fn encrypt(
    ctx: &Settings,
    store: &mut Store,
    alias: &str,
    legacy_v1: bool,
    text: Option<String>,
) -> Result<()> {
    let text = Zeroizing::new(match text {
        Some(text) if text != "-" => text,
        _ => {
            let input = read_input(None)?;
            input
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&input)
                .to_owned()
        }
    });
    let pairing = store.pairing(alias)?;
    match (pairing.protocol, legacy_v1) {
        (Protocol::V1, true) => {
            let mut legacy = store.legacy(&pairing)?;
            store.audit(
                ctx.now,
                "encrypt",
                alias,
                "ok",
                &[("protocol", "v1".to_owned())],
            )?;
            let _ = writeln!(
                std::io::stderr(),
                "warning: legacy v1 shows the patient id to the messenger and its keys are never destroyed"
            );
            out(format_args!("{}", legacy.encrypt(&text, ctx.now).to_text()))
        }
        (Protocol::V1, false) => Err(hinted(
            format!("{alias:?} is a legacy v1 pairing"),
            "add --legacy-v1 to write v1 for an old client, or pair anew with `medcrypt pair new`",
        )),
        (Protocol::V2, true) => Err(hinted(
            format!("{alias:?} is a v2 pairing; v1 is only for imported legacy pairings"),
            "drop --legacy-v1",
        )),
        (Protocol::V2, false) => {
            let payload = Payload::Text(text.to_string());
            if text.len() > medcrypt::MAX_TEXT_BYTES {
                return Err(SealError::TooLong {
                    len: text.len(),
                    max: medcrypt::MAX_TEXT_BYTES,
                }
                .into());
            }
            let epoch = Epoch::containing(ctx.now);
            let chain = store.chain(&pairing)?;
            let key = chain
                .key_for(epoch)
                .ok_or(SealError::NoKeyForEpoch(epoch))?;
            let direction = pairing.role.outbound();
            let sequence = store.next_sequence(&pairing, epoch, direction, ctx.now)?;
            let message = WireMessage::seal(&key, direction, sequence, &payload)?;
            out(format_args!("{}", message.to_text()))
        }
    }
}

/// Decrypts, and records a failure in the audit log with its kind (the
/// replay case is recorded by the store itself).
fn decrypt(
    ctx: &Settings,
    store: &mut Store,
    from: Option<&str>,
    file: Option<&Path>,
) -> Result<()> {
    let result = decrypt_message(ctx, store, from, file);
    let failed_kind = result
        .as_ref()
        .err()
        .and_then(|err| err.downcast_ref::<DecryptError>())
        .map(DecryptError::kind);
    if let Some(kind) = failed_kind {
        store.audit(
            ctx.now,
            "decrypt_failed",
            from.unwrap_or_default(),
            "rejected",
            &[("kind", kind.to_owned())],
        )?;
    }
    result
}

fn decrypt_message(
    ctx: &Settings,
    store: &mut Store,
    from: Option<&str>,
    file: Option<&Path>,
) -> Result<()> {
    let input = read_input(file)?;
    let compact = Zeroizing::new(strip_whitespace(&input));
    if compact.is_empty() {
        return Err(DecryptError::Malformed("the input is empty").into());
    }
    if compact.starts_with(V1_PREFIX) {
        return decrypt_legacy(ctx, store, from, &compact);
    }
    let message = WireMessage::parse(&compact)?;
    let epoch = message.header().epoch;
    let candidates: Vec<PairingInfo> = match from {
        Some(alias) => {
            let pairing = store.pairing(alias)?;
            if pairing.protocol == Protocol::V1 {
                return Err(hinted(
                    format!("{alias:?} is a legacy v1 pairing, but this is a v2 message"),
                    "choose the v2 pairing with --from, or leave --from out",
                ));
            }
            vec![pairing]
        }
        None => store
            .pairings()?
            .into_iter()
            .filter(|p| p.protocol == Protocol::V2)
            .collect(),
    };
    if let Err(violation) = check_window(epoch, ctx.now) {
        return Err(DecryptError::from(violation).into());
    }
    let mut last_error = DecryptError::UnknownKeyHint;
    for pairing in candidates {
        let chain = store.chain(&pairing)?;
        if chain.key_for(epoch).is_none() {
            if let Some(at) = store.shredded_at(&pairing, epoch)? {
                last_error = DecryptError::Expired {
                    epoch,
                    destroyed_at: at,
                };
            }
            continue;
        }
        match message.open(&chain, pairing.role, ctx.now) {
            Ok(opened) => {
                store.record_received(&pairing, &opened.replay_id, ctx.now)?;
                let Payload::Text(text) = &opened.payload;
                let text = Zeroizing::new(text.clone());
                return out(format_args!("{}", text.as_str()));
            }
            // Another pairing's hint (or a hint collision): keep looking.
            Err(DecryptError::UnknownKeyHint) => {}
            Err(DecryptError::AuthenticationFailed) if from.is_none() => {
                last_error = DecryptError::AuthenticationFailed;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(last_error.into())
}

fn decrypt_legacy(ctx: &Settings, store: &Store, from: Option<&str>, text: &str) -> Result<()> {
    let message = LegacyMessage::parse(text)?;
    let pairings: Vec<PairingInfo> = match from {
        Some(alias) => vec![store.pairing(alias)?],
        None => store.pairings()?,
    };
    for pairing in pairings.into_iter().filter(|p| p.protocol == Protocol::V1) {
        let mut legacy = store.legacy(&pairing)?;
        if legacy.patient_id() != message.patient_id() {
            continue;
        }
        let plain = Zeroizing::new(legacy.decrypt(&message, ctx.now)?);
        store.audit(
            ctx.now,
            "decrypt",
            &pairing.alias,
            "ok",
            &[("protocol", "v1".to_owned())],
        )?;
        return out(format_args!("{}", plain.as_str()));
    }
    Err(DecryptError::UnknownKeyHint.into())
}

fn keys_list(ctx: &Settings, store: &Store) -> Result<()> {
    let pairings = store.pairings()?;
    if pairings.is_empty() {
        return out(format_args!("No pairings, so no keys."));
    }
    let current = Epoch::containing(ctx.now);
    for pairing in pairings {
        out(format_args!("{}:", pairing.alias))?;
        if pairing.protocol == Protocol::V1 {
            out(format_args!(
                "  legacy v1: month keys are derived from a long-lived secret and cannot be destroyed"
            ))?;
            continue;
        }
        let chain = store.chain(&pairing)?;
        for key in chain.keys() {
            let state = if key.epoch() == current {
                "current"
            } else {
                "grace period"
            };
            out(format_args!(
                "  {}  {:12}  destroyed at {}",
                key.epoch(),
                state,
                format_utc(key.epoch().destruction_time())
            ))?;
        }
    }
    Ok(())
}

/// The agent's clock: with `MEDCRYPT_NOW`, time starts there and runs on
/// (a long-running process needs retries and ticks to come due).
fn clock_or_now() -> DateTime<Utc> {
    static START: std::sync::OnceLock<(DateTime<Utc>, std::time::Instant)> =
        std::sync::OnceLock::new();
    let (at, since) = START.get_or_init(|| {
        (
            clock().unwrap_or_else(|_| Utc::now()),
            std::time::Instant::now(),
        )
    });
    *at + since.elapsed()
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("medcrypt=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Telegram bots may upload documents up to 50 MB.
const UPLOAD_LIMIT: u64 = 50 * 1000 * 1000;

fn send(
    ctx: &Settings,
    store: &mut Store,
    alias: &str,
    file: Option<&Path>,
    text: Option<String>,
) -> Result<()> {
    use medcrypt::attachment::{Metadata, Recipient, Sealing, guess_mime};
    use medcrypt::store::OutboxKind;
    let pairing = store.pairing(alias)?;
    let epoch = Epoch::containing(ctx.now);
    let seal_document = |metadata: Metadata, content: &mut (dyn Read + Send)| -> Result<Vec<u8>> {
        let chain = store.chain(&pairing)?;
        let key = chain
            .key_for(epoch)
            .ok_or(SealError::NoKeyForEpoch(epoch))?
            .into_owned();
        let sealing = Sealing::new(
            &metadata,
            &[Recipient {
                key,
                direction: pairing.role.outbound(),
            }],
        )?;
        if sealing.total_len() > UPLOAD_LIMIT {
            return Err(hinted(
                "this file is larger than the 50 MB a bot may upload",
                "use `medcrypt attach encrypt --part-size 19M` and send the parts yourself",
            ));
        }
        let mut bytes = Vec::new();
        let mut reader = std::io::BufReader::new(content);
        sealing.write(&mut reader, &mut bytes, &mut |_| {})?;
        Ok(bytes)
    };
    let (kind, payload) = match (file, pairing.protocol) {
        (Some(_), Protocol::V1) => {
            return Err(hinted(
                "a legacy v1 pairing cannot receive files",
                "pair anew with `medcrypt pair new`",
            ));
        }
        (Some(path), _) => {
            let mut f = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let size = f.metadata()?.len();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let metadata = Metadata {
                mime: guess_mime(&name).to_owned(),
                name,
                size,
            };
            (OutboxKind::Document, seal_document(metadata, &mut f)?)
        }
        (None, protocol) => {
            let text = Zeroizing::new(match text {
                Some(text) if text != "-" => text,
                _ => {
                    let input = read_input(None)?;
                    input.strip_suffix('\n').unwrap_or(&input).to_owned()
                }
            });
            if protocol == Protocol::V1 {
                let mut legacy = store.legacy(&pairing)?;
                store.audit(
                    ctx.now,
                    "encrypt",
                    alias,
                    "ok",
                    &[("protocol", "v1".to_owned())],
                )?;
                (
                    OutboxKind::Text,
                    legacy.encrypt(&text, ctx.now).to_text().into_bytes(),
                )
            } else if text.len() <= medcrypt::MAX_TEXT_BYTES {
                let chain = store.chain(&pairing)?;
                let key = chain
                    .key_for(epoch)
                    .ok_or(SealError::NoKeyForEpoch(epoch))?;
                let direction = pairing.role.outbound();
                let sequence = store.next_sequence(&pairing, epoch, direction, ctx.now)?;
                let wire =
                    WireMessage::seal(&key, direction, sequence, &Payload::Text(text.to_string()))?;
                (OutboxKind::Text, wire.to_text().into_bytes())
            } else {
                // Too long for one chat message: an encrypted document.
                let metadata = Metadata {
                    name: "message.txt".into(),
                    mime: "text/plain".into(),
                    size: text.len() as u64,
                };
                (
                    OutboxKind::Document,
                    seal_document(metadata, &mut text.as_bytes())?,
                )
            }
        }
    };
    let id = store.outbox_queue(&pairing, kind, &payload, ctx.now)?;
    let bound = store.chat_for_pairing(pairing.id)?.is_some();
    out(format_args!(
        "Queued #{id} for {alias} ({}). {}",
        kind.name(),
        if bound {
            "The agent delivers it; `medcrypt outbox` shows its state."
        } else {
            "It will be delivered once the patient has connected their chat (the deep link)."
        }
    ))
}

fn outbox_list(store: &Store) -> Result<()> {
    let items = store.outbox(None)?;
    if items.is_empty() {
        return out(format_args!("The outbox is empty."));
    }
    out(format_args!(
        "{:>5}  {:16} {:9} {:10} {:>8}  {:20}  LAST ERROR",
        "#", "TO", "KIND", "STATE", "ATTEMPTS", "QUEUED"
    ))?;
    for item in items {
        out(format_args!(
            "{:>5}  {:16} {:9} {:10} {:>8}  {:20}  {}",
            item.id,
            item.alias,
            item.kind.name(),
            item.state,
            item.attempts,
            item.created_at,
            item.last_error.unwrap_or_default()
        ))?;
    }
    Ok(())
}

/// A path in `dir` for `name` that does not exist yet: "name", "name (2)", …
fn free_path(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
        _ => (name.to_owned(), String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(candidate)
}

fn inbox(
    ctx: &Settings,
    store: &mut Store,
    from: Option<&str>,
    follow: bool,
    save: Option<&Path>,
) -> Result<()> {
    use medcrypt::store::InboxContent;
    let pairing = from.map(|alias| store.pairing(alias)).transpose()?;
    let mut last = 0;
    let mut shown = 0;
    loop {
        for item in store.inbox(pairing.as_ref(), last)? {
            last = item.id;
            shown += 1;
            match &item.content {
                InboxContent::Text(text) => {
                    out(format_args!(
                        "#{} {} {}:\n{}\n",
                        item.id, item.received_at, item.alias, text
                    ))?;
                }
                InboxContent::File(meta) => {
                    let saved = match save {
                        Some(dir) => {
                            std::fs::create_dir_all(dir)
                                .with_context(|| format!("cannot create {}", dir.display()))?;
                            let path = free_path(
                                dir,
                                &medcrypt::attachment::sanitize_file_name(&meta.name),
                            );
                            let mut bytes = Vec::new();
                            store.inbox_file_content(item.id, &mut bytes)?;
                            write_atomically(&path, &bytes, true)?;
                            store.audit(
                                ctx.now,
                                "inbox_export",
                                &item.alias,
                                "ok",
                                &[("item", item.id.to_string())],
                            )?;
                            format!(" → saved as {}", path.display())
                        }
                        None => " (save it with --save-attachments DIR)".to_owned(),
                    };
                    out(format_args!(
                        "#{} {} {}: [file {}, {} bytes, {}]{saved}\n",
                        item.id, item.received_at, item.alias, meta.name, meta.size, meta.mime
                    ))?;
                }
            }
        }
        if !follow {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    if shown == 0 && !follow {
        out(format_args!("No messages yet."))?;
    }
    Ok(())
}

fn parse_since(text: &str) -> Result<DateTime<Utc>> {
    if let Some(at) = medcrypt::parse_utc(text) {
        return Ok(at);
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| {
            hinted(
                format!("{text:?} is not a date"),
                "use YYYY-MM-DD, or an RFC 3339 time such as 2026-11-20T09:00:00Z",
            )
        })
}

fn audit(ctx: &Settings, store: &mut Store, action: AuditCommand) -> Result<()> {
    match action {
        AuditCommand::Show {
            since,
            action,
            json,
        } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            for (record, event) in store.audit_events()? {
                let Some(event) = event else {
                    out(format_args!(
                        "#{}: cannot be decrypted (damaged: run `medcrypt audit verify`)",
                        record.seq
                    ))?;
                    continue;
                };
                if record.kind == RecordKind::Seal && action.as_deref() != Some("seal_day") {
                    continue;
                }
                if action.as_deref().is_some_and(|a| a != event.action) {
                    continue;
                }
                let at = medcrypt::parse_utc(&event.time);
                if since.is_some_and(|s| at.is_some_and(|at| at < s)) {
                    continue;
                }
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
            let key = code.as_deref().map(parse_verification_code).transpose()?;
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
            let verdict = store.audit_verify(key.as_ref(), checkpoint.as_ref())?;
            let mut details = vec![("with_code", key.is_some().to_string())];
            match verdict {
                Ok(report) => {
                    store.audit(ctx.now, "audit_verify", "", "ok", &details)?;
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
                Err(fault) => {
                    details.push(("fault", fault.kind().to_owned()));
                    // The verdict matters more than its own entry, which a
                    // tampered log may refuse.
                    if let Err(err) = store.audit(ctx.now, "audit_verify", "", "failed", &details) {
                        let _ = writeln!(
                            std::io::stderr(),
                            "note: this verification could not be logged: {err}"
                        );
                    }
                    Err(anyhow::Error::new(fault).context("audit log verification failed"))
                }
            }
        }
        AuditCommand::Checkpoint => {
            store.audit(ctx.now, "audit_checkpoint", "", "ok", &[])?;
            let (seq, mac) = store.audit_head()?;
            out(format_args!(
                "{}",
                Checkpoint::new(seq, &mac, ctx.now).to_text()
            ))
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
            store.audit(ctx.now, "audit_export", "", "ok", &[("to", destination)])?;
            let mut text = String::new();
            for (record, event) in store.audit_events()? {
                let mut value = match &event {
                    Some(event) => serde_json::to_value(event)?,
                    None => serde_json::json!({ "undecryptable": true }),
                };
                value["seq"] = record.seq.into();
                value["day"] = record.day.into();
                value["kind"] = serde_json::to_value(record.kind)?;
                value["mac"] = hex::encode(record.mac).into();
                text.push_str(&value.to_string());
                text.push('\n');
            }
            match output {
                Some(path) => write_atomically(&path, text.as_bytes(), true),
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes())?;
                    Ok(stdout.flush()?)
                }
            }
        }
    }
}

fn escrow_split(
    ctx: &Settings,
    store: &mut Store,
    custodians: &[String],
    threshold: usize,
    out_dir: Option<PathBuf>,
    audit_code: Option<&str>,
) -> Result<()> {
    let audit_key = audit_code.map(parse_verification_code).transpose()?;
    if let Some(key) = &audit_key
        && store.audit_verify(Some(key), None)?.is_err()
    {
        return Err(hinted(
            "this audit verification code does not verify this store's audit log",
            "give the code shown when this store was created, or leave --audit-code out",
        ));
    }
    if audit_key.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "note: without --audit-code the custodians cannot verify the audit log on their own"
        );
    }
    let dir = out_dir
        .unwrap_or_else(|| PathBuf::from(format!("escrow-shares-{}", ctx.now.format("%Y%m%d"))));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let shares = store
        .escrow_split(custodians, threshold, audit_key, ctx.now)
        .map_err(|e| {
            hinted(
                e.to_string(),
                "use 2 to 10 custodians and a threshold between 2 and their number",
            )
        })?;
    let practice = store
        .setting("name")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "this MedCrypt store".into());
    let store_path = ctx.store_path.display().to_string();
    for share in &shares {
        let slug: String = share
            .custodian
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let base = dir.join(format!("share-{}-{}", share.index, slug.trim_matches('-')));
        let text = share.to_text();
        let page = format!(
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
            date = medcrypt::format_utc(ctx.now),
            text = text.as_str(),
        );
        write_atomically(&base.with_extension("txt"), page.as_bytes(), true)?;
        write_atomically(&base.with_extension("png"), &qr::render_png(&text)?, true)?;
        out(format_args!(
            "{}: {} (.txt and .png)",
            share.custodian,
            base.display()
        ))?;
    }
    out(format_args!(
        "\nEscrow set {} made: any {threshold} of {} custodians can open this store. \
         Print each page, give it to its custodian, and delete the files.",
        shares
            .first()
            .map(|s| hex::encode(s.set_id))
            .unwrap_or_default(),
        shares.len()
    ))
}

fn read_share(path: &Path, position: usize) -> Result<medcrypt::shares::ShareText> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = if bytes.starts_with(b"\x89PNG") || bytes.starts_with(&[0xFF, 0xD8]) {
        Zeroizing::new(qr::decode_image(&bytes)?)
    } else {
        let text = String::from_utf8_lossy(&bytes);
        Zeroizing::new(
            text.lines()
                .find(|l| l.trim_start().starts_with(medcrypt::shares::SHARE_PREFIX))
                .unwrap_or_default()
                .to_owned(),
        )
    };
    medcrypt::shares::ShareText::parse(&text, position).map_err(|e| {
        hinted(
            e.to_string(),
            "check the share page; the typed text must match it exactly",
        )
    })
}

fn escrow_combine(
    ctx: &Settings,
    files: &[PathBuf],
    texts: &[String],
    reason: &str,
    export: Option<(&Path, &str)>,
    new_passphrase_file: Option<&Path>,
) -> Result<()> {
    let mut shares = Vec::new();
    for path in files {
        shares.push(read_share(path, shares.len() + 1)?);
    }
    for text in texts {
        shares.push(
            medcrypt::shares::ShareText::parse(text, shares.len() + 1).map_err(|e| {
                hinted(
                    e.to_string(),
                    "check the share page; the typed text must match it exactly",
                )
            })?,
        );
    }
    if reason.trim().is_empty() {
        return Err(hinted(
            "an emergency access needs a reason",
            "say why, e.g. --reason \"patient in ICU, physician unreachable\"",
        ));
    }
    if let Some((dir, _)) = export
        && dir.exists()
        && std::fs::read_dir(dir)?.next().is_some()
    {
        return Err(hinted(
            format!("{} is not empty", dir.display()),
            "export into a new, empty directory; the shares were not used",
        ));
    }
    let (mut store, secret) = Store::open_with_escrow(&ctx.store_path, &shares)?;
    let custodians: Vec<String> = shares.iter().map(|s| s.custodian.clone()).collect();
    let names = custodians.join(" and ");
    let date = medcrypt::format_utc(ctx.now);
    let action = if export.is_some() {
        "export"
    } else {
        "new passphrase"
    };
    store.audit(
        ctx.now,
        "escrow_combine",
        export.map(|(_, alias)| alias).unwrap_or_default(),
        "ok",
        &[
            ("custodians", names.clone()),
            ("reason", reason.to_owned()),
            ("action", action.to_owned()),
            ("set", hex::encode(shares[0].set_id)),
        ],
    )?;
    let notice = format!(
        "MedCrypt notice: emergency access to your records on {date} by {names}; reason: {reason}."
    );
    store.set_agent_value(
        "owner_notice",
        &format!("⚠ Emergency access to your MedCrypt store on {date} by {names} ({action}). See `medcrypt audit show --action escrow_combine`."),
    )?;
    match (export, new_passphrase_file) {
        (Some((dir, alias)), _) => {
            let pairing = store.pairing(alias)?;
            let written = export_patient(&store, &pairing, dir)?;
            store.audit(
                ctx.now,
                "escrow_export",
                alias,
                "ok",
                &[("items", written.to_string())],
            )?;
            // The patient is told, encrypted for them like any message.
            if pairing.protocol == Protocol::V2 {
                let epoch = Epoch::containing(ctx.now);
                let chain = store.chain(&pairing)?;
                if let Some(key) = chain.key_for(epoch) {
                    let sequence =
                        store.next_sequence(&pairing, epoch, pairing.role.outbound(), ctx.now)?;
                    let wire = WireMessage::seal(
                        &key,
                        pairing.role.outbound(),
                        sequence,
                        &Payload::Text(notice),
                    )?;
                    store.outbox_queue(
                        &pairing,
                        medcrypt::store::OutboxKind::Text,
                        wire.to_text().as_bytes(),
                        ctx.now,
                    )?;
                }
            }
            store.escrow_retire(ctx.now)?;
            out(format_args!(
                "Exported {written} item(s) of {alias:?} to {}.",
                dir.display()
            ))?;
        }
        (None, Some(file)) => {
            let pass = read_secret_file(file, "new passphrase")?;
            if pass.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
                return Err(hinted(
                    "the new passphrase is too short",
                    "choose a longer passphrase",
                ));
            }
            let recovery = store.rotate_master_key(&pass, ctx.now)?;
            out(format_args!(
                "The store has a new master key and passphrase. New recovery code (shown only now):\n\n    {}\n",
                recovery.to_text().as_str()
            ))?;
        }
        (None, None) => {
            return Err(hinted(
                "nothing to do",
                "give --export DIR --patient ALIAS or --new-passphrase-file FILE",
            ));
        }
    }
    if let Some(key) = &secret.audit_key {
        match store.audit_verify(Some(key), None)? {
            Ok(report) => out(format_args!(
                "Audit log verified from the escrowed verification code: {} records intact.",
                report.records
            ))?,
            Err(fault) => out(format_args!(
                "WARNING: the audit log failed verification: {fault}"
            ))?,
        }
    }
    out(format_args!(
        "Recorded in the audit log with the custodians ({names}) and the reason; the physician \
         and the patient are notified through the agent.\n\
         The share set is retired: these shares open nothing any more. Run `medcrypt escrow split` for a new set."
    ))
}

/// Writes one patient's decrypted inbox, `messages.txt` and the files,
/// into a private staging directory beside `dir` that becomes `dir` only
/// once everything is written: a failure leaves no decrypted file behind.
fn export_patient(
    store: &Store,
    pairing: &medcrypt::store::PairingInfo,
    dir: &Path,
) -> Result<usize> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(hinted(
            format!("{} is not empty", dir.display()),
            "export into a new, empty directory",
        ));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut suffix = [0u8; 4];
    aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut suffix);
    let staging = parent.join(format!(".medcrypt-export-{}", hex::encode(suffix)));
    create_export_dir(&staging)?;
    let written = write_export(store, pairing, &staging).and_then(|count| {
        std::fs::rename(&staging, dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(count)
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

fn write_export(
    store: &Store,
    pairing: &medcrypt::store::PairingInfo,
    dir: &Path,
) -> Result<usize> {
    use medcrypt::store::InboxContent;
    let mut messages = String::new();
    let mut count = 0;
    for item in store.inbox(Some(pairing), 0)? {
        count += 1;
        let entry = match item.content {
            InboxContent::Text(text) => text,
            InboxContent::File(meta) => {
                let path = free_path(dir, &medcrypt::attachment::sanitize_file_name(&meta.name));
                let mut bytes = Vec::new();
                store.inbox_file_content(item.id, &mut bytes)?;
                write_atomically(&path, &bytes, true)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("file {name} ({} bytes)", meta.size)
            }
        };
        messages.push_str(&format!(
            "#{} {} from {}:\n{entry}\n\n",
            item.id, item.received_at, item.alias
        ));
    }
    write_atomically(&dir.join("messages.txt"), messages.as_bytes(), true)?;
    Ok(count)
}

fn create_export_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
    }
}

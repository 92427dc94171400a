//! The command line's definitions (clap): every command, flag and help
//! text. Parsing only; `super::run` acts on the result.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// What `--version` prints: the release, the commit, the formats spoken.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MEDCRYPT_GIT_COMMIT"),
    ")\nwire: v2 messages (legacy v1 read and written for imported pairings); \
     attachments: format 3 (format 2 read), part header 02; \
     pairing: QR medcrypt://pair/v2, typed code 03 (02 read)"
);

/// The release and commit alone (the manual page's header).
pub(super) const SHORT_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MEDCRYPT_GIT_COMMIT"),
    ")"
);

/// After the top-level help: exit codes, environment, where the rest is.
const EPILOGUE: &str = "\
Exit codes:
  0 success                       6 reflected: a message this side sent
  1 other error                   7 damaged, not MedCrypt, or a newer version
  2 usage error                   8 unknown pairing (another pairing or store)
  3 authentication failed         9 wrong passphrase, recovery code or shares
  4 expired or not yet valid     10 tampering (audit log or store file)
  5 replayed                     11 break-glass refused (shares) or nothing to export

Environment:
  MEDCRYPT_STORE           the store file (like --store)
  MEDCRYPT_PASSPHRASE      the store passphrase (empty counts as unset)
  MEDCRYPT_NEW_PASSPHRASE  a new passphrase (init, passphrase change, recover)
  MEDCRYPT_NOW             a fixed clock (RFC 3339), for tests and demos on a copy of a store
  MEDCRYPT_WAIT            seconds to wait for a store another command holds (default 30)
  TELOXIDE_TOKEN           the Telegram bot token (like agent telegram --token-file)
  TELOXIDE_API_URL         a self-hosted Telegram Bot API server
  WHATSAPP_TOKEN           the WhatsApp Cloud API access token (like agent whatsapp --token-file)
  WHATSAPP_APP_SECRET      the Meta app secret that signs webhooks (like --app-secret-file)
  WHATSAPP_VERIFY_TOKEN    the webhook's verify token (like --verify-token-file)
  WHATSAPP_PHONE_NUMBER_ID the business phone number's id (like --phone-number-id)
  WHATSAPP_API_URL         the Graph API base URL with version (default https://graph.facebook.com/v25.0)

Audit actions: `medcrypt audit show --help`. Every error ends with a `hint:` line.";

/// End-to-end encryption for physician–patient messages over any messenger.
#[derive(Parser)]
#[command(
    name = "medcrypt",
    version = VERSION,
    about,
    long_about = None,
    after_help = EPILOGUE
)]
pub(crate) struct Cli {
    /// The store file [default: MEDCRYPT_STORE, else the platform data directory].
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "MEDCRYPT_STORE",
        hide_env = true,
        help_heading = "Global options"
    )]
    pub(super) store: Option<PathBuf>,
    /// Read the store passphrase from this file (else MEDCRYPT_PASSPHRASE, else a prompt).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub(super) passphrase_file: Option<PathBuf>,
    /// Answer yes to MedCrypt's questions (a clock that jumped, removing a
    /// pairing) instead of asking.
    #[arg(long, short = 'y', global = true, help_heading = "Global options")]
    pub(super) yes: bool,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// The MedCrypt app: a page in your browser, served on this computer only
    /// (for patients, physicians and emergency custodians).
    App {
        /// Where to serve it: a loopback address (port 0: any free port).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Print the address but do not open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Seconds without use before the store is locked again.
        #[arg(long, default_value_t = 15 * 60, hide = true)]
        idle_seconds: u64,
    },
    /// Create a new store (asks for a passphrase twice; shows a recovery code once).
    Init {
        /// Your display name, carried in pairing QR codes (e.g. "Dr. Ana Silva").
        #[arg(long)]
        name: Option<String>,
        /// How long decrypted messages and files are kept: key-lifetime
        /// (until their month key is destroyed), a number of days (30d), or
        /// forever.
        #[arg(long, value_name = "POLICY", default_value = "key-lifetime")]
        retention: String,
        /// Install the daily shredder (`keys schedule`) without asking.
        #[arg(long)]
        schedule_shredder: bool,
    },
    /// Manage the store passphrase.
    Passphrase {
        #[command(subcommand)]
        action: PassphraseCommand,
    },
    /// Open the store with the recovery code and set a new passphrase.
    Recover {
        /// The recovery code shown at init; without a value (or `-`, or
        /// without the flag) it is asked for without echo, or read from
        /// standard input.
        #[arg(long, value_name = "CODE", num_args = 0..=1, default_missing_value = "-")]
        recovery_code: Option<String>,
        /// Read the new passphrase from this file (else MEDCRYPT_NEW_PASSPHRASE, else a prompt).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Copy the store to FILE while it is in use (the agent may keep running).
    ///
    /// The copy is encrypted like the store and opens with the same
    /// passphrase and recovery code. It keeps every month key it holds until
    /// the copy itself is destroyed: store it as carefully as the computer,
    /// and delete old copies. To restore, stop MedCrypt and copy FILE over
    /// the store.
    Backup {
        /// The copy to write (mode 0600).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Show or change settings (name, telegram-bot, whatsapp-number, whatsapp-template).
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
        #[arg(long, conflicts_with = "as_attachment")]
        legacy_v1: bool,
        /// Encrypt the text as an attachment (`note.txt`) instead of one
        /// line: for notes longer than one chat message. Prints the file written.
        #[arg(long)]
        as_attachment: bool,
        /// With --as-attachment: the encrypted file [default: a neutral name
        /// in the current directory].
        #[arg(short, long, value_name = "OUT", requires = "as_attachment")]
        output: Option<PathBuf>,
        /// The text; standard input when absent or `-` (a text starting with
        /// `-` goes after `--`: `encrypt --to alice -- "-5 mg"`).
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
        #[command(subcommand)]
        action: Option<InboxCommand>,
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `medcrypt man > medcrypt.1`.
    Man,
}

#[derive(Subcommand)]
pub(super) enum EscrowCommand {
    /// Split the store's keys into shares, one printable page and QR code per custodian.
    Split(SplitArgs),
    /// Emergency access: combine shares, then export or re-key. Everyone is told.
    ///
    /// `--export DIR` without `--patient` (or with an unknown one) lists the
    /// store's patients and stops without using up the shares. A successful
    /// export or re-key replaces the store's master key and retires the set.
    /// Exit code 11: the shares were refused (damaged, too few, of another
    /// store or of a retired set); nothing was opened.
    Combine(CombineArgs),
}

#[derive(Subcommand)]
pub(super) enum AgentCommand {
    /// Telegram, by long polling. Token from TELOXIDE_TOKEN or --token-file;
    /// API URL from TELOXIDE_API_URL (a self-hosted Bot API server), else Telegram's.
    Telegram(TelegramArgs),
    /// WhatsApp Cloud API, by webhook: an HTTP(S) server for Meta to call.
    /// Its first output line is the URL it listens on; put a TLS reverse
    /// proxy or tunnel in front of it (see the README).
    #[command(name = "whatsapp")]
    WhatsApp(WhatsAppArgs),
}

#[derive(Subcommand)]
pub(super) enum OutboxCommand {
    /// Queue an uncertain or failed item again.
    Retry {
        /// The item's number.
        id: i64,
    },
}

#[derive(Subcommand)]
pub(super) enum AttachCommand {
    /// Encrypt a file for one or more pairings; prints the file(s) written.
    Encrypt {
        /// A pairing to send to (repeat for several recipients).
        #[arg(long = "to", value_name = "ALIAS", required = true)]
        to: Vec<String>,
        /// The file to encrypt; `-` reads standard input (nothing is
        /// written in plaintext), named by --name.
        file: PathBuf,
        /// The name the recipient sees for standard input [default: note.txt].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// The encrypted file [default: a neutral name in the current directory].
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Split into numbered parts of at most this size (e.g. 19M for a
        /// Telegram bot's 20 MB download limit).
        #[arg(long, value_name = "SIZE", value_parser = checked(super::attach::parse_size))]
        part_size: Option<String>,
        /// Write ASCII armour (base64 lines between BEGIN/END lines, a
        /// `.medcrypt.txt` file) for messengers that accept only text
        /// documents, such as WhatsApp; `attach decrypt` reads both forms.
        #[arg(long)]
        armor: bool,
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
pub(super) enum AuditCommand {
    /// Show the entries.
    #[command(after_long_help = audit_actions_help())]
    Show {
        /// Only entries from this date (YYYY-MM-DD) or instant (RFC 3339) on.
        #[arg(long, value_name = "DATE", value_parser = checked(super::io::parse_since))]
        since: Option<String>,
        /// Only entries of this action (e.g. decrypt_failed; the list is
        /// below in --help).
        #[arg(long, value_name = "ACTION", value_parser = audit_action)]
        action: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Check that no entry was altered, removed, reordered or inserted.
    ///
    /// With the code: every entry of every earlier day, that the store's
    /// current key is the one the code derives, and that the log ends where
    /// the store sealed it. A cut within the current day by someone holding
    /// the passphrase, or a roll-back of the whole store to an older copy,
    /// can only be seen against a checkpoint kept elsewhere (--checkpoint).
    Verify {
        /// The audit verification code shown at init: checks every entry
        /// (without it, only today's seals can be checked). Without a value
        /// (or `-`) it is asked for without echo, or read from standard input.
        #[arg(long, value_name = "CODE", num_args = 0..=1, default_missing_value = "-")]
        code: Option<String>,
        /// A checkpoint printed by `audit checkpoint` (or sent by the agent
        /// to your notice chat): proves the log still reaches it, unchanged.
        #[arg(long, value_name = "CHECKPOINT")]
        checkpoint: Option<String>,
        /// Verify an export file (`audit export --format json`) instead of
        /// the store: needs --code, not the store or its passphrase.
        #[arg(long, value_name = "FILE", requires = "code")]
        export: Option<PathBuf>,
    },
    /// Print a short checkpoint of the log's head, to keep somewhere else
    /// (a line with check digits: a typo reads as a typo).
    Checkpoint,
    /// Set right a log that no longer ends where the store sealed it (records
    /// written past its end outside MedCrypt, or its end cut), so audited
    /// operations work again. Records past the end are kept aside as
    /// evidence, and the repair itself is an audit entry that verification
    /// names from then on. Run `audit verify` first and keep a backup.
    Repair,
    /// Export the log: `json` (default) is everything verification needs
    /// (every record with its body and MAC, the sealed head, the audit
    /// encryption key), for `audit verify --export FILE --code CODE` on any
    /// machine; `jsonl` is one decrypted entry per line, to read.
    Export {
        /// `json` (verifiable) or `jsonl` (readable).
        #[arg(long, value_name = "FORMAT", default_value = "json")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(super) enum PassphraseCommand {
    /// Re-wrap the store under a new passphrase.
    Change {
        /// Read the new passphrase from this file (else MEDCRYPT_NEW_PASSPHRASE, else a prompt).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(super) enum ConfigCommand {
    /// Show the settings.
    Show,
    /// Change a setting; an empty value removes it.
    Set {
        /// One of: name, telegram-bot, whatsapp-number, whatsapp-template, retention.
        key: String,
        /// The new value.
        value: String,
    },
}

#[derive(Subcommand)]
pub(super) enum PairCommand {
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
        /// How long the patient has to accept it: minutes, hours or days
        /// (90m, 24h, 3d; at most 30d).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = validity)]
        valid: chrono::Duration,
    },
    /// (Patient) Accept a pairing from a photo or screenshot of the QR code, or the typed code.
    #[command(group(clap::ArgGroup::new("invite").required(true).args(["qr_image", "code"])))]
    Accept {
        /// A PNG or JPEG image of the QR code.
        #[arg(long, value_name = "FILE")]
        qr_image: Option<PathBuf>,
        /// The typed code shown under the QR code; without a value (or `-`)
        /// it is asked for without echo, or read from standard input.
        #[arg(long, value_name = "CODE", num_args = 0..=1, default_missing_value = "-")]
        code: Option<String>,
        /// Your name for this physician [default: the name in the QR code; required with --code].
        #[arg(long, value_name = "ALIAS")]
        physician: Option<String>,
        /// Delete the QR image once the pairing is made (asked on a terminal).
        #[arg(long, requires = "qr_image")]
        delete_image: bool,
    },
    /// List pairings.
    List,
    /// Remove a pairing and destroy all of its keys (asks first; --yes does not).
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
pub(super) enum KeysCommand {
    /// Per pairing, the live epoch keys and when each will be destroyed,
    /// the keys destroyed and when; the retention policy.
    List,
    /// Destroy every key past its destruction time now, without the
    /// passphrase (what the daily timer runs).
    Shred,
    /// Install a daily timer that runs `keys shred` (a systemd user timer,
    /// or a crontab line to install), so keys die on time even while no
    /// command runs.
    Schedule {
        /// Remove the timer instead.
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum InboxCommand {
    /// Write what the history keeps (messages.txt and the files) into a new
    /// directory, to file into a medical record before it expires.
    Export {
        /// The new directory.
        dir: PathBuf,
    },
}

/// `escrow split`.
#[derive(Args)]
pub(super) struct SplitArgs {
    /// A custodian's name (repeat: 2 to 10 custodians).
    #[arg(long = "custodian", value_name = "NAME", required = true)]
    pub(super) custodians: Vec<String>,
    /// How many custodians together can open the store.
    #[arg(long, default_value_t = 2)]
    pub(super) threshold: usize,
    /// Where to write the share files [default: escrow-shares-DATE]; a new
    /// directory, or an empty one.
    #[arg(long, value_name = "DIR")]
    pub(super) out_dir: Option<PathBuf>,
}

/// `escrow combine`.
#[derive(Args)]
pub(super) struct CombineArgs {
    /// A share file (the text page or its QR PNG); repeat.
    #[arg(long = "share", value_name = "FILE")]
    pub(super) share_files: Vec<PathBuf>,
    /// A share typed in (MEDCRYPT-SHARE:v1:…); repeat.
    #[arg(long = "share-text", value_name = "TEXT")]
    pub(super) share_texts: Vec<String>,
    /// Why the records are opened (recorded and sent to physician and patient).
    #[arg(long, required = true)]
    pub(super) reason: String,
    /// Write decrypted copies of one patient's messages and files here.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "new_passphrase_file",
        required_unless_present = "new_passphrase_file"
    )]
    pub(super) export: Option<PathBuf>,
    /// The patient whose records to export (without it, the store's
    /// patients are listed once the shares open it).
    #[arg(long, value_name = "ALIAS", requires = "export")]
    pub(super) patient: Option<String>,
    /// Re-key the store under a new passphrase read from this file.
    #[arg(long, value_name = "FILE")]
    pub(super) new_passphrase_file: Option<PathBuf>,
}

/// `agent telegram`.
#[derive(Args)]
pub(super) struct TelegramArgs {
    /// A file holding the bot token from @BotFather.
    #[arg(long, value_name = "FILE")]
    pub(super) token_file: Option<PathBuf>,
    /// Warn about plaintext messages but do not delete them.
    #[arg(long)]
    pub(super) keep_plaintext: bool,
    /// Print the one-time link to your notice chat even when the output is
    /// not a terminal (it is shown once; never under a service manager,
    /// whose log would keep it).
    #[arg(long)]
    pub(super) show_owner_link: bool,
    /// Long-polling timeout in seconds.
    #[arg(long, default_value_t = 25, hide = true)]
    pub(super) poll_timeout: u32,
    /// Seconds between rotation/shredding ticks.
    #[arg(long, default_value_t = 60, hide = true)]
    pub(super) tick_seconds: u64,
    /// Stop after this many seconds (for demonstrations and tests).
    #[arg(long, hide = true)]
    pub(super) run_for: Option<u64>,
}

/// `agent whatsapp`.
#[derive(Args)]
pub(super) struct WhatsAppArgs {
    /// Where the webhook server listens (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub(super) listen: std::net::SocketAddr,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(super) tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(super) tls_key: Option<PathBuf>,
    /// A file holding the access token (else WHATSAPP_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub(super) token_file: Option<PathBuf>,
    /// A file holding the Meta app secret (else WHATSAPP_APP_SECRET).
    #[arg(long, value_name = "FILE")]
    pub(super) app_secret_file: Option<PathBuf>,
    /// A file holding the webhook verify token (else WHATSAPP_VERIFY_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub(super) verify_token_file: Option<PathBuf>,
    /// The business phone number's id (else WHATSAPP_PHONE_NUMBER_ID).
    #[arg(
        long,
        value_name = "ID",
        env = "WHATSAPP_PHONE_NUMBER_ID",
        hide_env = true
    )]
    pub(super) phone_number_id: Option<String>,
    /// The Graph API base URL with its version (else WHATSAPP_API_URL).
    #[arg(long, value_name = "URL", env = "WHATSAPP_API_URL", hide_env = true)]
    pub(super) api_url: Option<String>,
    /// Milliseconds between looks at the outbox when nothing happens.
    #[arg(long, default_value_t = 2000, hide = true)]
    pub(super) poll_millis: u64,
    /// Seconds between rotation/shredding ticks.
    #[arg(long, default_value_t = 60, hide = true)]
    pub(super) tick_seconds: u64,
    /// Stop after this many seconds (for demonstrations and tests).
    #[arg(long, hide = true)]
    pub(super) run_for: Option<u64>,
}

/// Checks `--action` against the actions MedCrypt writes.
fn audit_action(value: &str) -> Result<String, String> {
    if medcrypt::audit::is_action(value) {
        Ok(value.to_owned())
    } else {
        let names: Vec<&str> = medcrypt::audit::ACTIONS.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "no audit entry has the action {value:?}; actions are: {}",
            names.join(", ")
        ))
    }
}

/// The audit actions and their meanings, for `audit show --help`.
fn audit_actions_help() -> String {
    let mut help = String::from("Actions:\n");
    for (name, meaning) in medcrypt::audit::ACTIONS {
        help.push_str(&format!("  {name:22} {meaning}\n"));
    }
    help
}

/// `--valid`: `90m`, `24h`, `3d`.
fn validity(value: &str) -> Result<chrono::Duration, String> {
    let bad =
        || format!("{value:?} is not a duration: use minutes, hours or days, e.g. 90m, 24h, 3d");
    let split = value.char_indices().last().map_or(0, |(i, _)| i);
    let (number, unit) = value.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "m" => chrono::Duration::minutes(number),
        "h" => chrono::Duration::hours(number),
        "d" => chrono::Duration::days(number),
        _ => return Err(bad()),
    };
    if duration <= chrono::Duration::zero() || duration > medcrypt::session::MAX_INVITE_VALIDITY {
        return Err(format!(
            "{value} is out of range: an invitation is valid for 1m to 30d"
        ));
    }
    Ok(duration)
}

/// A value checked by `parse` when the command line is read (before any
/// passphrase is asked for), kept as text for the command to parse again.
fn checked<T>(
    parse: fn(&str) -> anyhow::Result<T>,
) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static
where
    T: 'static,
{
    move |value: &str| {
        parse(value)
            .map(|_| value.to_owned())
            .map_err(|e| e.to_string())
    }
}

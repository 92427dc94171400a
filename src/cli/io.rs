//! What every command shares: writing to standard output, reading input
//! and secret files, asking for passphrases on the terminal, the clock.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use medcrypt::DecryptError;
use medcrypt::session::Clock;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::report::hinted;

/// Asks a yes-or-no question on the terminal; `yes` (from `--yes`) answers
/// it. Without a terminal, and without `--yes`, the answer is no.
pub(super) fn confirm(question: &str, yes: bool) -> Result<bool> {
    use std::io::IsTerminal;
    if yes {
        return Ok(true);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Ok(false);
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// Shortest passphrase accepted for a new store or a passphrase change.
pub(super) const MIN_PASSPHRASE_CHARS: usize = 8;

/// Writes bytes to standard output (a closed pipe is not an error).
pub(super) fn out_bytes(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Writes one line to standard output.
pub(super) fn out(line: std::fmt::Arguments<'_>) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

/// The width of the terminal standard output is, or `None` when it is not
/// a terminal.
pub(super) fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    if !term.is_term() {
        return None;
    }
    Some(
        term.size_checked()
            .map_or(80, |(_, cols)| usize::from(cols)),
    )
}

/// Writes one line to standard error (notes and warnings).
pub(super) fn note(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// "Now": `MEDCRYPT_NOW` (RFC 3339) when set, running on from there (and
/// said so on every command), else the system clock.
pub(super) fn clock() -> Result<Clock> {
    match std::env::var("MEDCRYPT_NOW") {
        Ok(text) if !text.is_empty() => medcrypt::parse_utc(&text)
            .map(|at| {
                note(format_args!(
                    "note: MEDCRYPT_NOW is set: this command's clock reads {} (use it only on a copy of a store)",
                    medcrypt::format_utc(at)
                ));
                Clock::starting_at(at)
            })
            .ok_or_else(|| {
                hinted(
                    format!("MEDCRYPT_NOW is not an RFC 3339 time: {text:?}"),
                    "use a form like 2026-12-05T09:00:00Z, or unset MEDCRYPT_NOW to use the clock",
                )
            }),
        _ => Ok(Clock::system()),
    }
}

/// An instant given on the command line: RFC 3339, or a date (midnight UTC).
pub(super) fn parse_since(text: &str) -> Result<DateTime<Utc>> {
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

/// Warns when a file holding a secret can be read by other users.
pub(super) fn warn_if_readable_by_others(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            note(format_args!(
                "warning: the {what} file {} can be read by other users of this computer; \
                 make it private: chmod 600 {}",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

/// A secret from a file, without its final line break.
pub(super) fn read_secret_file(path: &Path, what: &str) -> Result<SecretString> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        let hint = if path.is_dir() {
            format!(
                "{} is a directory: give the file that holds the {what}",
                path.display()
            )
        } else {
            format!("check the file name; the file holds only the {what}, on one line")
        };
        hinted(
            format!("cannot read the {what} file {}: {e}", path.display()),
            hint,
        )
    })?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow!("the {what} file {} is not UTF-8 text", path.display()))?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// Asks on the controlling terminal (not stdin, which may carry a message),
/// without echo.
pub(super) fn prompt(label: &str) -> Result<SecretString> {
    match rpassword::prompt_password(label) {
        Ok(text) => Ok(SecretString::from(text)),
        Err(_) => Err(hinted(
            "no passphrase given and no terminal to ask for one",
            "set MEDCRYPT_PASSPHRASE or pass --passphrase-file FILE",
        )),
    }
}

/// A code or share given as `-` (or as a flag without a value): asked on
/// the terminal without echo, else read from standard input; given as a
/// value, taken as is.
pub(super) fn secret_input(value: &str, label: &str) -> Result<Zeroizing<String>> {
    use std::io::IsTerminal;
    if value != "-" {
        return Ok(Zeroizing::new(value.to_owned()));
    }
    if std::io::stdin().is_terminal() {
        return match rpassword::prompt_password(label) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(e) => Err(anyhow!("cannot read from the terminal: {e}")),
        };
    }
    let text = read_input(None)?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// The store passphrase: from `--passphrase-file`, `MEDCRYPT_PASSPHRASE`,
/// or asked on the terminal.
pub(super) fn passphrase(file: Option<&Path>) -> Result<SecretString> {
    if let Some(file) = file {
        return read_secret_file(file, "passphrase");
    }
    if let Ok(text) = std::env::var("MEDCRYPT_PASSPHRASE")
        && !text.is_empty()
    {
        return Ok(SecretString::from(text));
    }
    prompt("Store passphrase: ")
}

/// Refuses a passphrase that is too short.
pub(super) fn check_passphrase_length(pass: &SecretString) -> Result<()> {
    if pass.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(hinted(
            format!("the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters"),
            "choose a longer passphrase: a few unrelated words work well",
        ));
    }
    Ok(())
}

/// A new passphrase: from a file, the environment variable `env`, or asked
/// twice.
pub(super) fn new_passphrase_from(file: Option<&Path>, env: &str) -> Result<SecretString> {
    let pass = if let Some(file) = file {
        read_secret_file(file, "new passphrase")?
    } else if let Some(text) = std::env::var(env).ok().filter(|t| !t.is_empty()) {
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
    check_passphrase_length(&pass)?;
    Ok(pass)
}

/// A new passphrase from `--new-passphrase-file`, `MEDCRYPT_NEW_PASSPHRASE`
/// or the terminal.
pub(super) fn new_passphrase(file: Option<&Path>) -> Result<SecretString> {
    new_passphrase_from(file, "MEDCRYPT_NEW_PASSPHRASE")
}

/// On a terminal, says how to end the input (`what`, then Ctrl-D) on
/// standard error; piped input needs no prompt.
pub(super) fn paste_prompt(what: &str) {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        note(format_args!("{what} (Ctrl-Z then Enter on Windows):"));
    }
}

/// Standard input as text for `encrypt`: not UTF-8 is a usage error.
pub(super) fn read_text_to_encrypt() -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("cannot read standard input")?;
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(_) => Err(super::report::usage(
            "the text is not UTF-8",
            "give text (UTF-8); to send any other file, use `medcrypt attach encrypt`",
        )),
    }
}

/// The text of a file, or of standard input when `path` is absent or `-`.
pub(super) fn read_input(path: Option<&Path>) -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(Vec::new());
    match path {
        Some(path) if path != Path::new("-") => {
            *bytes = std::fs::read(path).map_err(|e| {
                let hint = if path.is_dir() {
                    "that is a directory: give the file that holds the message"
                } else {
                    "check the file name, or leave it out and paste the message instead"
                };
                hinted(format!("cannot read {}: {e}", path.display()), hint)
            })?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
        }
    }
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(_) => Err(medcrypt::session::Error::from(DecryptError::Malformed(
            "the input is not text",
        ))
        .into()),
    }
}

/// A text argument, or standard input (without its final line break) when
/// it is absent or `-`.
pub(super) fn text_or_stdin(text: Option<String>) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(match text {
        Some(text) if text != "-" => text,
        _ => {
            let input = read_text_to_encrypt()?;
            input
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&input)
                .to_owned()
        }
    }))
}

/// Logs of long-running commands (the agent) go to standard error.
pub(super) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("medcrypt=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

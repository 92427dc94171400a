//! Errors as the user sees them: one line saying what happened, a `hint:`
//! line saying what to do, and the documented exit code.

use std::borrow::Cow;
use std::io::Write;

use medcrypt::agent::telegram::AgentError;
use medcrypt::session::{Error as SessionError, ErrorKind};

/// Exit code: the command line was invalid (clap's convention).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code of an error with no more specific kind.
pub(super) const EXIT_OTHER: u8 = 1;

/// An error of the command line itself (not of a use case), with its hint
/// and exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct CliError {
    message: String,
    hint: Cow<'static, str>,
    code: u8,
}

/// A command-line error with a hint (exit code 1).
pub(super) fn hinted(
    message: impl Into<String>,
    hint: impl Into<Cow<'static, str>>,
) -> anyhow::Error {
    CliError {
        message: message.into(),
        hint: hint.into(),
        code: EXIT_OTHER,
    }
    .into()
}

/// A usage error with a hint (exit code 2).
pub(super) fn usage(
    message: impl Into<String>,
    hint: impl Into<Cow<'static, str>>,
) -> anyhow::Error {
    CliError {
        message: message.into(),
        hint: hint.into(),
        code: EXIT_USAGE,
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

fn classify(err: &anyhow::Error) -> (u8, Option<Cow<'static, str>>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return (e.code, Some(e.hint.clone()));
        }
        if let Some(e) = cause.downcast_ref::<SessionError>() {
            return (e.kind().exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<AgentError>() {
            return match e {
                AgentError::Session(inner) => (inner.kind().exit_code(), inner.hint()),
                AgentError::Telegram(_) => (
                    EXIT_OTHER,
                    Some(Cow::Borrowed(
                        "check the token (TELOXIDE_TOKEN), TELOXIDE_API_URL and the network",
                    )),
                ),
                AgentError::Config(_) => (
                    ErrorKind::Usage.exit_code(),
                    Some(Cow::Borrowed("fix the setting and start again")),
                ),
            };
        }
    }
    (EXIT_OTHER, None)
}

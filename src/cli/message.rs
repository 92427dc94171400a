//! `medcrypt encrypt` and `medcrypt decrypt`: one message as wire text.

use std::path::Path;

use anyhow::Result;
use medcrypt::session::Session;

use super::io::{note, out, read_input, text_or_stdin};

/// `medcrypt encrypt`.
pub(super) fn encrypt(
    session: &Session,
    alias: &str,
    legacy_v1: bool,
    text: Option<String>,
) -> Result<()> {
    let text = text_or_stdin(text)?;
    let encrypted = session.encrypt_text(alias, &text, legacy_v1)?;
    if encrypted.legacy_v1 {
        note(format_args!(
            "warning: legacy v1 shows the patient id to the messenger and its keys are never destroyed"
        ));
    }
    out(format_args!("{}", encrypted.wire))
}

/// `medcrypt decrypt`.
pub(super) fn decrypt(session: &Session, from: Option<&str>, file: Option<&Path>) -> Result<()> {
    let input = read_input(file)?;
    let decrypted = session.decrypt_text(&input, from)?;
    out(format_args!("{}", decrypted.text.as_str()))
}

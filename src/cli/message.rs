//! `medcrypt encrypt` and `medcrypt decrypt`: one message as wire text.

use std::path::Path;

use anyhow::Result;
use medcrypt::Role;
use medcrypt::session::{Session, framed, printable, printable_line};

use super::io::{self, note, out, read_input, text_or_stdin};

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

/// `medcrypt decrypt`: the verified sender on standard error, then the
/// text (made printable) on standard output.
pub(super) fn decrypt(session: &Session, from: Option<&str>, file: Option<&Path>) -> Result<()> {
    let input = read_input(file)?;
    let decrypted = session.decrypt_text(&input, from)?;
    note(format_args!(
        "{}",
        sender_line(
            &decrypted.alias,
            &decrypted.peer_name,
            decrypted.sender_role
        )
    ));
    if let Some(at) = &decrypted.read_before {
        note(format_args!(
            "note: already read on {at}; shown again from the history"
        ));
    }
    // On a terminal, the body sits behind a margin so that nothing in it
    // can pass for the `From:` line; piped, it is the text itself.
    match io::terminal_width() {
        Some(width) => out(format_args!("{}", framed(&decrypted.text, width))),
        None => out(format_args!("{}", printable(&decrypted.text))),
    }
}

/// "From: dr-silva — Dr. Ana Silva (physician), verified": who the key
/// that opened it belongs to, never a name the message claims.
pub(super) fn sender_line(alias: &str, peer_name: &str, role: Role) -> String {
    let name = if peer_name.is_empty() || peer_name == alias {
        String::new()
    } else {
        format!(" — {}", printable_line(peer_name))
    };
    format!(
        "From: {}{name} ({}), verified by this pairing's key",
        printable_line(alias),
        role.name()
    )
}

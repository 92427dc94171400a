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
    if text.as_deref().is_none_or(|t| t == "-") {
        io::paste_prompt("Type or paste the text, then press Ctrl-D");
    }
    let text = text_or_stdin(text)?;
    let encrypted = session.encrypt_text(alias, &text, legacy_v1)?;
    if encrypted.legacy_v1 {
        note(format_args!(
            "warning: legacy v1 shows the patient id to the messenger and its keys are never destroyed"
        ));
    }
    out(format_args!("{}", encrypted.wire))
}

/// `medcrypt encrypt --as-attachment`: the text as `note.txt` in an
/// encrypted file, never on disk in plaintext.
pub(super) fn encrypt_as_attachment(
    session: &Session,
    alias: &str,
    output: Option<&Path>,
    text: Option<String>,
) -> Result<()> {
    if text.as_deref().is_none_or(|t| t == "-") {
        io::paste_prompt("Type or paste the text, then press Ctrl-D");
    }
    let text = text_or_stdin(text)?;
    let written = session.encrypt_bytes(
        &[alias.to_owned()],
        "note.txt",
        text.as_bytes(),
        output,
        medcrypt::session::Layout::Whole,
        &mut |_, _| {},
    )?;
    for path in written {
        out(format_args!("{}", path.display()))?;
    }
    Ok(())
}

/// `medcrypt decrypt`: every MedCrypt message in the input (a pasted chat
/// excerpt may hold several, with names and times around them), in order:
/// the verified sender on standard error, then the text (made printable) on
/// standard output. Stops at the first that fails.
pub(super) fn decrypt(session: &Session, from: Option<&str>, file: Option<&Path>) -> Result<()> {
    if file.is_none() {
        io::paste_prompt("Paste the message (or a whole chat excerpt), then press Ctrl-D");
    }
    let input = read_input(file)?;
    let excerpt = medcrypt::find_messages(&input);
    if excerpt.found.is_empty() {
        // Nothing that starts like a message: said by the decryption.
        return decrypt_one(session, from, &input);
    }
    if excerpt.ignored > 0 {
        note(format_args!(
            "note: ignored {} characters of text around the message{} (names, times, quotes)",
            excerpt.ignored,
            if excerpt.found.len() > 1 { "s" } else { "" }
        ));
    }
    let count = excerpt.found.len();
    for (n, found) in excerpt.found.iter().enumerate() {
        if count > 1 {
            note(format_args!("\nmessage {} of {count}:", n + 1));
        }
        for removed in &found.removed {
            note(format_args!(
                "note: removed U+{:04X} ({}) at character {} of the message; a copy or a messenger put it there",
                u32::from(removed.ch),
                medcrypt::invisible_name(removed.ch),
                removed.position
            ));
        }
        decrypt_one(session, from, &found.token)?;
    }
    Ok(())
}

fn decrypt_one(session: &Session, from: Option<&str>, input: &str) -> Result<()> {
    let decrypted = session.decrypt_text(input, from)?;
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

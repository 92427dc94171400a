//! `medcrypt pair new|accept|list|remove|import-legacy`.

use std::path::Path;

use anyhow::{Context as _, Result};
use medcrypt::Role;
use medcrypt::qr;
use medcrypt::session::{Error as SessionError, InviteSource, Session, printable_line};
use medcrypt::store::Protocol;
use zeroize::Zeroizing;

use super::args::PairCommand;
use super::io::{confirm, note, out, read_secret_file, secret_input};
use super::report::hinted;

/// Runs a `pair` subcommand; `yes` answers its questions.
pub(super) fn run(session: &Session, action: PairCommand, yes: bool) -> Result<()> {
    match action {
        PairCommand::New {
            patient,
            qr_png,
            qr_svg,
            valid,
        } => new(
            session,
            &patient,
            qr_png.as_deref(),
            qr_svg.as_deref(),
            valid,
        ),
        PairCommand::Accept {
            qr_image,
            code,
            physician,
            delete_image,
        } => accept(
            session,
            qr_image.as_deref(),
            code.as_deref(),
            physician,
            delete_image,
        ),
        PairCommand::List => list(session),
        PairCommand::Remove { alias } => remove(session, &alias, yes),
        PairCommand::ImportLegacy {
            alias,
            secret_file,
            patient_id,
        } => import_legacy(session, &alias, &secret_file, &patient_id),
    }
}

fn remove(session: &Session, alias: &str, yes: bool) -> Result<()> {
    // Named before asking, so a typo is not a question.
    if !session.pairings()?.iter().any(|p| p.alias == alias) {
        return Err(
            SessionError::from(medcrypt::store::StoreError::UnknownPairing(
                alias.to_owned(),
            ))
            .into(),
        );
    }
    let question = format!(
        "Remove the pairing {:?} and destroy all of its keys? Its messages can never be read again",
        printable_line(alias)
    );
    if !confirm(&question, yes)? {
        return Err(SessionError::refused(
            format!("the pairing {:?} was not removed", printable_line(alias)),
            "confirm on a terminal, or add --yes",
        )
        .into());
    }
    session.pair_remove(alias)?;
    out(format_args!(
        "Removed pairing {:?}: all of its keys are destroyed.",
        printable_line(alias)
    ))
}

fn new(
    session: &Session,
    alias: &str,
    png: Option<&Path>,
    svg: Option<&Path>,
    valid: chrono::Duration,
) -> Result<()> {
    let pairing = session.pair_new(alias, valid, |invite| {
        if let Some(path) = png {
            session.write_file(path, &qr::render_png(&invite.uri)?)?;
        }
        if let Some(path) = svg {
            session.write_file(path, qr::render_svg(&invite.uri)?.as_bytes())?;
        }
        Ok::<(), SessionError>(())
    });
    let pairing = pairing.context_if_io("the pairing was not created")?;
    let terminal = qr::render_terminal(&pairing.uri)?;
    out(format_args!(
        "New pairing {alias:?}. Let the patient scan this QR code now; it is shown only once.\n\n{terminal}\n\
         Typed code, if the QR code cannot be scanned:\n    {}\n\n\
         Safety number (the patient's screen must show the same):\n    {}\n\n\
         The invitation expires on {}; whoever scans it or types the code before then can read \
         this conversation, so show it only to the patient.",
        pairing.code.as_str(),
        pairing.safety,
        when(pairing.expires)
    ))?;
    for path in png.iter().chain(svg.iter()) {
        out(format_args!(
            "QR code written to {} (readable only by you): delete it after the visit, once the \
             patient has scanned it (it holds the pairing secret).",
            path.display()
        ))?;
    }
    Ok(())
}

/// Adds a context line to I/O failures only.
trait ContextIfIo<T> {
    fn context_if_io(self, context: &'static str) -> Result<T>;
}

impl<T> ContextIfIo<T> for std::result::Result<T, SessionError> {
    fn context_if_io(self, context: &'static str) -> Result<T> {
        match self {
            Err(err @ SessionError::Io { .. }) => Err(anyhow::Error::new(err).context(context)),
            other => Ok(other?),
        }
    }
}

fn accept(
    session: &Session,
    image: Option<&Path>,
    code: Option<&str>,
    alias: Option<String>,
    delete_image: bool,
) -> Result<()> {
    let uri;
    let typed;
    let source = match (image, code) {
        (Some(path), _) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            // Decoded here to name the file in the error.
            uri = Zeroizing::new(qr::decode_image(&bytes).map_err(|e| {
                hinted(
                    format!("{e} in {}", path.display()),
                    "take a sharper, well-lit picture of the whole QR code, or use --code with the typed code",
                )
            })?);
            InviteSource::Uri(&uri)
        }
        (None, Some(code)) => {
            typed = secret_input(code, "Typed pairing code: ")?;
            InviteSource::Code(&typed)
        }
        (None, None) => return Err(hinted("give --qr-image FILE or --code CODE", "see --help")),
    };
    let accepted = session.pair_accept(source, alias)?;
    out(format_args!(
        "Paired with {:?}.\n\nSafety number (the physician's screen must show the same):\n    {}",
        printable_line(&accepted.alias),
        accepted.safety
    ))?;
    if accepted.expires.is_none() {
        note(format_args!(
            "this invitation was made by an older MedCrypt and carries no expiry"
        ));
    }
    if let Some(path) = image {
        let question = format!(
            "Whoever holds {} can read this conversation. Delete it now?",
            path.display()
        );
        let asked = delete_image || confirm(&question, false)?;
        if asked {
            std::fs::remove_file(path).with_context(|| {
                format!(
                    "the pairing is made, but {} could not be deleted",
                    path.display()
                )
            })?;
            out(format_args!("Deleted {}.", path.display()))?;
        } else {
            note(format_args!(
                "whoever holds {} can read this conversation: delete it, and any copy or photo of it",
                path.display()
            ));
        }
    }
    // Checked when the QR was read; escaped again because it reaches a
    // terminal from someone else's code.
    if let Some(link) = &accepted.telegram_link {
        out(format_args!(
            "\nOpen this link to connect your Telegram chat:\n    {}",
            printable_line(link)
        ))?;
    }
    if let Some(number) = &accepted.whatsapp_number {
        out(format_args!(
            "\nWhatsApp number of the practice: {}",
            printable_line(number)
        ))?;
    }
    if let Some(link) = &accepted.whatsapp_link {
        out(format_args!(
            "\nTo connect your WhatsApp chat, open this link and send the message it prepares, once:\n    {}",
            printable_line(link)
        ))?;
    }
    Ok(())
}

/// A UTC time at minute precision, always 20 characters.
fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn list(session: &Session) -> Result<()> {
    let pairings = session.pairings_with_state()?;
    if pairings.is_empty() {
        return out(format_args!(
            "No pairings yet: `medcrypt pair new --patient ALIAS` (physician) or `medcrypt pair accept` (patient)."
        ));
    }
    let now = session.now();
    out(format_args!(
        "{:20} {:9} {:9} {:20} {:30} {:20} SAFETY NUMBER",
        "ALIAS", "IS A", "PROTOCOL", "PAIRED", "STATE", "LAST MESSAGE"
    ))?;
    for (p, state) in pairings {
        let protocol = match p.protocol {
            Protocol::V2 => "v2",
            Protocol::V1 => "legacy v1",
        };
        // The other side's role: a physician's store lists patients.
        let other = match (p.protocol, p.role) {
            (Protocol::V1, _) => "patient",
            (_, Role::Physician) => "patient",
            (_, Role::Patient) => "physician",
        };
        let paired = chrono::DateTime::parse_from_rfc3339(&p.created_at)
            .map(|t| when(t.with_timezone(&chrono::Utc)))
            .unwrap_or_else(|_| p.created_at.clone());
        let status = match (&state.chat, state.invite_expires, p.role) {
            // Which account: the messenger's chat (Telegram) or user
            // (WhatsApp) id, shown only here, on the owner's screen.
            (Some(chat), _, _) => format!("{} {}", chat.transport, printable_line(&chat.chat)),
            (None, _, _) if state.last_message.is_some() => "paired".to_owned(),
            (None, Some(expires), Role::Physician) if expires < now => {
                "invitation expired".to_owned()
            }
            (None, Some(expires), Role::Physician) => {
                format!("invited until {}", expires.format("%m-%d %H:%M"))
            }
            _ => "paired".to_owned(),
        };
        out(format_args!(
            "{:20} {:9} {:9} {:20} {:30} {:20} {}",
            printable_line(&p.alias),
            other,
            protocol,
            paired,
            status,
            state
                .last_message
                .map(when)
                .unwrap_or_else(|| "-".to_owned()),
            p.safety_number.unwrap_or_default()
        ))?;
    }
    Ok(())
}

fn import_legacy(session: &Session, alias: &str, file: &Path, patient_id: &str) -> Result<()> {
    medcrypt::session::check_alias(alias)?;
    let secret = read_secret_file(file, "shared secret")?;
    if secrecy::ExposeSecret::expose_secret(&secret).is_empty() {
        return Err(hinted(
            format!("the secret file {} is empty", file.display()),
            "give the file holding the v1 shared secret",
        ));
    }
    session.import_legacy(alias, &secret, patient_id)?;
    out(format_args!(
        "Imported legacy v1 pairing {alias:?}. Its messages decrypt as before; \
         pair anew with `medcrypt pair new` to gain monthly key destruction."
    ))
}

//! `medcrypt pair new|accept|list|remove|import-legacy`.

use std::path::Path;

use anyhow::{Context as _, Result};
use medcrypt::qr;
use medcrypt::session::{Error as SessionError, InviteSource, Session, printable_line};
use medcrypt::store::Protocol;
use zeroize::Zeroizing;

use super::args::PairCommand;
use super::io::{out, read_secret_file};
use super::report::hinted;

/// Runs a `pair` subcommand.
pub(super) fn run(session: &Session, action: PairCommand) -> Result<()> {
    match action {
        PairCommand::New {
            patient,
            qr_png,
            qr_svg,
        } => new(session, &patient, qr_png.as_deref(), qr_svg.as_deref()),
        PairCommand::Accept {
            qr_image,
            code,
            physician,
        } => accept(session, qr_image.as_deref(), code.as_deref(), physician),
        PairCommand::List => list(session),
        PairCommand::Remove { alias } => {
            session.pair_remove(&alias)?;
            out(format_args!(
                "Removed pairing {alias:?}: all of its keys are destroyed."
            ))
        }
        PairCommand::ImportLegacy {
            alias,
            secret_file,
            patient_id,
        } => import_legacy(session, &alias, &secret_file, &patient_id),
    }
}

fn new(session: &Session, alias: &str, png: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    let pairing = session.pair_new(alias, |invite| {
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
         Safety number (the patient's screen must show the same):\n    {}",
        pairing.code.as_str(),
        pairing.safety
    ))?;
    for path in png.iter().chain(svg.iter()) {
        out(format_args!(
            "QR code written to {}: delete it once the patient has scanned it (it holds the pairing secret).",
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
) -> Result<()> {
    let uri;
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
        (None, Some(code)) => InviteSource::Code(code),
        (None, None) => return Err(hinted("give --qr-image FILE or --code CODE", "see --help")),
    };
    let accepted = session.pair_accept(source, alias)?;
    out(format_args!(
        "Paired with {:?}.\n\nSafety number (the physician's screen must show the same):\n    {}",
        accepted.alias, accepted.safety
    ))?;
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
    Ok(())
}

fn list(session: &Session) -> Result<()> {
    let pairings = session.pairings()?;
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
            printable_line(&p.alias),
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

//! `medcrypt keys list|shred`, and the note every command prints when it
//! destroyed keys.

use anyhow::Result;
use medcrypt::format_utc;
use medcrypt::session::{KeyState, Session};
use medcrypt::store::Rotation;

use super::args::KeysCommand;
use super::io::{note, out};

/// Runs a `keys` subcommand. Rotation already ran before it (`rotations`).
pub(super) fn run(session: &Session, action: KeysCommand, rotations: &[Rotation]) -> Result<()> {
    match action {
        KeysCommand::List => list(session),
        KeysCommand::Shred => {
            if rotations.iter().all(|r| r.advance.destroyed.is_empty()) {
                out(format_args!(
                    "No key is past its acceptance window; nothing destroyed."
                ))
            } else {
                out(format_args!("Done."))
            }
        }
    }
}

fn list(session: &Session) -> Result<()> {
    let status = session.key_status()?;
    if status.is_empty() {
        return out(format_args!("No pairings, so no keys."));
    }
    for pairing in status {
        out(format_args!("{}:", pairing.alias))?;
        if pairing.legacy {
            out(format_args!(
                "  legacy v1: month keys are derived from a long-lived secret and cannot be destroyed"
            ))?;
            continue;
        }
        for (epoch, state, destroyed_at) in pairing.keys {
            let state = match state {
                KeyState::Current => "current",
                KeyState::GracePeriod => "grace period",
            };
            out(format_args!(
                "  {epoch}  {state:12}  destroyed at {}",
                format_utc(destroyed_at)
            ))?;
        }
    }
    Ok(())
}

/// Tells, on standard error, which keys this command destroyed.
pub(super) fn report_shredding(rotations: &[Rotation]) {
    for rotation in rotations {
        for epoch in &rotation.advance.destroyed {
            note(format_args!(
                "note: destroyed the {epoch} key of {:?} (its 7-day grace period ended {})",
                rotation.alias,
                format_utc(epoch.destruction_time())
            ));
        }
    }
}

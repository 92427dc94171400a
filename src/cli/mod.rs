//! The `medcrypt` command line: parsing (`args`, clap) is separate from
//! acting; each command group acts in its own file (`store` for init,
//! recovery, passphrase and settings; `pair`; `message` for encrypt and
//! decrypt; `attach`; `agent` for the agent, send, outbox and inbox;
//! `escrow`; `audit`; `keys`), calling the use cases in
//! [`medcrypt::session`] and presenting their results. Shared helpers live
//! in `io` (output, input, prompts, the clock) and `report` (errors, hints,
//! exit codes). Depends on the library's public API and clap only.

mod agent;
mod args;
mod attach;
mod audit;
mod escrow;
mod io;
mod keys;
mod message;
mod pair;
mod report;
mod signals;
mod store;

use std::path::{Path, PathBuf};

use anyhow::Result;
use medcrypt::session::{Clock, ClockJump, Session};

pub(crate) use args::Cli;
use args::Command;
use report::hinted;
pub(crate) use report::{EXIT_USAGE, report};

/// What every command knows: where the store is, how to get its
/// passphrase, and the clock.
pub(super) struct Context {
    store_path: PathBuf,
    passphrase_file: Option<PathBuf>,
    clock: Clock,
    /// `--yes`: confirm instead of asking.
    yes: bool,
}

impl Context {
    fn store_path(&self) -> &Path {
        &self.store_path
    }

    /// Checks, before any passphrase is asked for, that the store path holds
    /// a MedCrypt store.
    fn require_store(&self) -> Result<()> {
        use medcrypt::store::{StoreError, StoreFile, probe};
        match probe(&self.store_path).map_err(medcrypt::session::Error::from)? {
            StoreFile::Present => Ok(()),
            StoreFile::Missing => Err(medcrypt::session::Error::from(StoreError::NotFound(
                self.store_path.clone(),
            ))
            .into()),
        }
    }

    /// Unlocks the store with its passphrase; for the audit log's
    /// commands, even a store modified outside MedCrypt.
    fn unlock(&self, for_audit: bool) -> Result<Session> {
        self.require_store()?;
        let pass = io::passphrase(self.passphrase_file.as_deref())?;
        let open = if for_audit {
            Session::unlock_for_audit
        } else {
            Session::unlock
        };
        Ok(open(&self.store_path, &pass, self.clock.clone())?)
    }
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

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> Result<()> {
    medcrypt::store::on_wait(|| {
        io::note(format_args!(
            "waiting for another MedCrypt command to finish with the store…"
        ));
    });
    let ctx = Context {
        store_path: match cli.store {
            Some(path) => path,
            None => default_store_path()?,
        },
        passphrase_file: cli.passphrase_file,
        clock: io::clock()?,
        yes: cli.yes,
    };
    if !matches!(cli.command, Command::Agent { .. }) {
        // The agent stops gracefully on its own; every other command
        // removes its temporary files on Ctrl-C, SIGTERM or SIGHUP.
        signals::clean_up_on_signals();
    }
    match cli.command {
        // These open the store without its passphrase.
        Command::Init {
            name,
            retention,
            schedule_shredder,
        } => store::init(&ctx, name, &retention, schedule_shredder),
        Command::Keys {
            action: args::KeysCommand::Shred,
        } => keys::shred(&ctx),
        Command::Keys {
            action: args::KeysCommand::Schedule { remove },
        } => keys::schedule(&ctx, remove),
        Command::Recover {
            recovery_code,
            new_passphrase_file,
        } => store::recover(&ctx, &recovery_code, new_passphrase_file.as_deref()),
        Command::Escrow {
            action: args::EscrowCommand::Combine(combine),
        } => escrow::combine(&ctx, combine),
        command => {
            let audit = matches!(command, Command::Audit { .. });
            let mut session = ctx.unlock(audit)?;
            // Audit commands read a log (and a store) that may be tampered
            // with: they say what they find, then report the modification;
            // they do not rotate (rotation runs at the next other command).
            if audit {
                dispatch(&ctx, &mut session, command)?;
                return Ok(session.integrity()?);
            }
            check_clock(&ctx, &session)?;
            let rotations = session.rotate()?;
            session.note_time()?;
            keys::report_shredding(&rotations, session.now());
            dispatch(&ctx, &mut session, command)
        }
    }
}

/// Before anything is destroyed: a clock that jumped since the store was
/// last used is confirmed by its owner, or nothing happens.
fn check_clock(ctx: &Context, session: &Session) -> Result<()> {
    let Some(jump) = session.clock_jump()? else {
        return Ok(());
    };
    let now = medcrypt::format_utc(session.now());
    let (message, hint) = match jump {
        ClockJump::Ahead { latest } => (
            format!(
                "the clock reads {now}, {} days after this store was last used ({})",
                (session.now() - latest).num_days(),
                medcrypt::format_utc(latest)
            ),
            "if that date is right (the store was not used for a while), run again with --yes; \
             if it is wrong, fix the computer's clock first: keys of months that ended more than \
             7 days before it would be destroyed for good",
        ),
        ClockJump::Behind { latest } => (
            format!(
                "the clock reads {now}, earlier than {}, when this store was last used",
                medcrypt::format_utc(latest)
            ),
            "the computer's clock was probably set back: fix it and try again; if {now} is \
             really right, run again with --yes",
        ),
    };
    if io::confirm(&format!("{message}. Is the clock right?"), ctx.yes)? {
        session.accept_clock()?;
        Ok(())
    } else {
        Err(hinted(message, hint.replace("{now}", &now)))
    }
}

fn dispatch(ctx: &Context, session: &mut Session, command: Command) -> Result<()> {
    match command {
        Command::Init { .. } | Command::Recover { .. } => Ok(()),
        Command::Passphrase {
            action:
                args::PassphraseCommand::Change {
                    new_passphrase_file,
                },
        } => store::change_passphrase(session, new_passphrase_file.as_deref()),
        Command::Config { action } => store::config(session, action),
        Command::Backup { file, force } => store::backup(session, &file, force),
        Command::Pair { action } => pair::run(session, action, ctx.yes),
        Command::Encrypt {
            to,
            legacy_v1,
            text,
        } => message::encrypt(session, &to, legacy_v1, text),
        Command::Decrypt { from, file } => {
            message::decrypt(session, from.as_deref(), file.as_deref())
        }
        Command::Keys { .. } => keys::list(session),
        Command::Agent { transport } => agent::run(session, transport),
        Command::Send { to, file, text } => agent::send(session, &to, file.as_deref(), text),
        Command::Outbox { action } => agent::outbox(session, action),
        Command::Inbox {
            action: Some(args::InboxCommand::Export { dir }),
            from,
            ..
        } => agent::inbox_export(session, from.as_deref(), &dir),
        Command::Inbox {
            action: None,
            from,
            follow,
            save_attachments,
        } => agent::inbox(
            session,
            from.as_deref(),
            follow,
            save_attachments.as_deref(),
        ),
        Command::Attach { action } => attach::run(session, action),
        Command::Escrow {
            action: args::EscrowCommand::Split(split),
        } => escrow::split(ctx, session, split),
        Command::Escrow { .. } => Ok(()),
        Command::Audit { action } => audit::run(session, action),
    }
}

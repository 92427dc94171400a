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
    // These need no store.
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "medcrypt", &mut script);
            return io::out_bytes(&script);
        }
        Command::Man => {
            // The page's header holds one line: the release and commit.
            let command = <Cli as clap::CommandFactory>::command()
                .version(args::SHORT_VERSION)
                .long_version(args::SHORT_VERSION);
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            return io::out_bytes(&page);
        }
        _ => {}
    }
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
    if let Command::App {
        listen,
        no_browser,
        idle_seconds,
    } = cli.command
    {
        return app(&ctx, listen, no_browser, idle_seconds);
    }
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
        } => store::recover(
            &ctx,
            recovery_code.as_deref().unwrap_or("-"),
            new_passphrase_file.as_deref(),
        ),
        Command::Escrow {
            action: args::EscrowCommand::Combine(combine),
        } => escrow::combine(&ctx, combine),
        // An export is verified with the code alone, without a store.
        Command::Audit {
            action:
                args::AuditCommand::Verify {
                    export: Some(path),
                    code,
                    checkpoint,
                },
        } => audit::verify_export(&path, code.as_deref().unwrap_or("-"), checkpoint.as_deref()),
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
            // The agent checks the clock itself, against its messenger's.
            if !matches!(command, Command::Agent { .. }) {
                check_clock(&ctx, &session, None)?;
                start_using(&session)?;
            }
            dispatch(&ctx, &mut session, command)
        }
    }
}

/// Once the clock is accepted: every pairing into this month, due keys
/// destroyed, the time remembered.
fn start_using(session: &Session) -> Result<()> {
    let rotations = session.rotate()?;
    session.note_time()?;
    keys::report_shredding(&rotations, session.now());
    Ok(())
}

/// How far the messenger's server time may be from ours and still confirm it.
const SERVER_TIME_AGREES: chrono::Duration = chrono::Duration::minutes(10);

/// What an unattended agent does instead of asking: the messenger's server
/// time, or why it cannot be had.
type ServerTime<'a> = &'a dyn Fn() -> Result<chrono::DateTime<chrono::Utc>>;

/// Before anything is destroyed: a clock that jumped since the store was
/// last used is confirmed by its owner (or, for an agent, by the
/// messenger's server time), or nothing happens.
fn check_clock(ctx: &Context, session: &Session, server: Option<ServerTime<'_>>) -> Result<()> {
    let Some(jump) = session.clock_jump()? else {
        return Ok(());
    };
    if let Some(server) = server
        && !ctx.yes
    {
        let now = session.now();
        return match server() {
            Ok(theirs) if (theirs - now).abs() <= SERVER_TIME_AGREES => {
                io::note(format_args!(
                    "note: the clock moved since this store was last used; the messenger's server \
                     time ({}) agrees with it, so the agent goes on",
                    medcrypt::format_utc(theirs)
                ));
                session.accept_clock()?;
                Ok(())
            }
            Ok(theirs) => Err(hinted(
                format!(
                    "the clock reads {}, but the messenger's server says {}: the agent does not start, \
                     so that no key is destroyed on a wrong date",
                    medcrypt::format_utc(now),
                    medcrypt::format_utc(theirs)
                ),
                "fix this computer's clock (timedatectl / NTP), then start the agent again",
            )),
            Err(err) => Err(hinted(
                format!(
                    "the clock reads {}, far from {}, when this store was last used, and the \
                     messenger's server time cannot confirm it: {err}",
                    medcrypt::format_utc(now),
                    medcrypt::format_utc(match jump {
                        ClockJump::Ahead { latest } | ClockJump::Behind { latest } => latest,
                    })
                ),
                "check the network and the clock, then start again; or confirm the date with --yes",
            )),
        };
    }
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

/// `medcrypt app`: the first output line is the address with its one-time
/// secret; the default browser opens it unless `--no-browser`.
fn app(
    ctx: &Context,
    listen: std::net::SocketAddr,
    no_browser: bool,
    idle_seconds: u64,
) -> Result<()> {
    let options = medcrypt::app::Options {
        store: ctx.store_path().to_owned(),
        listen,
        idle_lock: std::time::Duration::from_secs(idle_seconds.max(1)),
    };
    let mut page = None;
    let ran = medcrypt::app::run(&options, ctx.clock.clone(), |url| {
        println!("{url}");
        println!(
            "MedCrypt is open at the address above (this computer only; the link works once). Stop it from the page or with Ctrl-C."
        );
        if !no_browser {
            page = open_browser(url);
        }
    });
    // The forwarding page goes with the app, if the browser was quicker
    // than its minute.
    if let Some(page) = page {
        let _ = std::fs::remove_dir_all(page);
    }
    ran.map_err(|e| hinted(e.to_string(), "medcrypt app --listen 127.0.0.1:0"))
}

/// Opens `url` in the default browser, best effort. The one-time secret
/// never goes on a command line (which every local user can read in the
/// process list): the browser is given a page in a private folder that
/// forwards to the address, removed once the browser had time to read it.
fn open_browser(url: &str) -> Option<std::path::PathBuf> {
    let opened = launch_page(url).and_then(|page| {
        let target = page.join("open.html");
        #[cfg(target_os = "macos")]
        let command = std::process::Command::new("open").arg(&target).spawn();
        #[cfg(target_os = "windows")]
        let command = std::process::Command::new("cmd")
            .args(["/C", "start", ""])
            .arg(&target)
            .spawn();
        #[cfg(not(any(target_os = "macos", target_os = "windows")))]
        let command = std::process::Command::new("xdg-open").arg(&target).spawn();
        let removed = page.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(60));
            let _ = std::fs::remove_dir_all(&removed);
        });
        command.map(|_| page)
    });
    match opened {
        Ok(page) => Some(page),
        Err(_) => {
            io::note(format_args!(
                "no browser could be opened: open the address above yourself"
            ));
            None
        }
    }
}

/// A private folder holding `open.html`, which forwards to `url`.
fn launch_page(url: &str) -> std::io::Result<std::path::PathBuf> {
    use aes_gcm::aead::rand_core::RngCore as _;
    let mut tag = [0u8; 8];
    aes_gcm::aead::OsRng.fill_bytes(&mut tag);
    let dir = std::env::temp_dir().join(format!("medcrypt-app-{}", hex::encode(tag)));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir)?;
    let page = format!(
        "<!doctype html><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>MedCrypt</title>\
         <p>Opening MedCrypt…</p>\n"
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(dir.join("open.html"))?, page.as_bytes())?;
    Ok(dir)
}

fn dispatch(ctx: &Context, session: &mut Session, command: Command) -> Result<()> {
    match command {
        Command::App { .. } => Ok(()),
        Command::Init { .. }
        | Command::Recover { .. }
        | Command::Completions { .. }
        | Command::Man => Ok(()),
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
            as_attachment: true,
            output,
            text,
            ..
        } => message::encrypt_as_attachment(session, &to, output.as_deref(), text),
        Command::Encrypt {
            to,
            legacy_v1,
            text,
            ..
        } => message::encrypt(session, &to, legacy_v1, text),
        Command::Decrypt { from, file } => {
            message::decrypt(session, from.as_deref(), file.as_deref())
        }
        Command::Keys { .. } => keys::list(session),
        Command::Agent { transport } => agent::run(ctx, session, transport),
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

#[cfg(test)]
mod tests {
    /// The page the browser is started on holds the one-time secret: only
    /// this user may read it, and it forwards to the address at once.
    #[test]
    fn the_launch_page_is_private_and_forwards_to_the_address() {
        let url = "http://127.0.0.1:4242/?s=ONE-TIME-SECRET";
        let dir = super::launch_page(url).unwrap();
        let page = dir.join("open.html");
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(text.contains(&format!("content=\"0;url={url}\"")), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode(&dir) & 0o777, 0o700);
            assert_eq!(mode(&page) & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

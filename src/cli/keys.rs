//! `medcrypt keys list|shred|schedule`, and the note every command prints
//! when it destroyed keys.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use medcrypt::format_utc;
use medcrypt::session::{KeyState, Session};
use medcrypt::store::{Destruction, Retention, Rotation};
use sha2::{Digest, Sha256};

use super::Context;
use super::io::{note, out};
use super::report::hinted;

/// `medcrypt keys list`.
pub(super) fn list(session: &Session) -> Result<()> {
    let retention = session.retention()?;
    out(format_args!(
        "retention: {retention} ({})",
        match retention {
            Retention::KeyLifetime =>
                "decrypted messages and files are kept as long as their month key, then destroyed with it",
            Retention::Days(_) =>
                "decrypted messages and files are kept under the store's key for that long",
            Retention::Forever =>
                "decrypted messages and files are kept under the store's key for ever",
        }
    ))?;
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
        for key in &pairing.keys {
            let line = match key.state {
                KeyState::Current => format!(
                    "current       will be destroyed on {}",
                    format_utc(key.due_at)
                ),
                KeyState::GracePeriod => format!(
                    "grace period  will be destroyed on {}",
                    format_utc(key.due_at)
                ),
                KeyState::Ahead => format!(
                    "next month    will be destroyed on {}",
                    format_utc(key.due_at)
                ),
                KeyState::DueKeptAsNewest => format!(
                    "due since {}, not yet destroyed: it is this pairing's newest key, \
                     kept to move forward",
                    format_utc(key.due_at)
                ),
            };
            out(format_args!("  {}  {line}", key.epoch))?;
        }
        for d in &pairing.destroyed {
            out(format_args!("  {}  {}", d.epoch, destroyed(d)))?;
        }
    }
    Ok(())
}

/// How a destroyed key went, with its lateness if it was late.
fn destroyed(d: &Destruction) -> String {
    let by = if d.by_shredder {
        "by the scheduled shredder"
    } else {
        "when the store was opened"
    };
    // The daily shredder runs within a day of a key's time.
    let late = (d.destroyed_at - d.due_at).num_days();
    if late >= 2 {
        format!(
            "destroyed on {} {by}, {late} days late (due since {}): schedule the shredder \
             (`medcrypt keys schedule`) so keys die on time",
            format_utc(d.destroyed_at),
            format_utc(d.due_at)
        )
    } else {
        format!(
            "destroyed on {} {by} (due {})",
            format_utc(d.destroyed_at),
            format_utc(d.due_at)
        )
    }
}

/// `medcrypt keys shred`: no passphrase, no prompt.
pub(super) fn shred(ctx: &Context) -> Result<()> {
    let done = medcrypt::session::shred_due(ctx.store_path(), ctx.clock.now())?;
    if done.is_empty() {
        return out(format_args!(
            "No key is past its destruction time; nothing destroyed."
        ));
    }
    for d in &done {
        out(format_args!(
            "Destroyed the {} key of {:?} (due {}).",
            d.epoch,
            d.alias,
            format_utc(d.due_at)
        ))?;
    }
    Ok(())
}

/// Tells, on standard error, which keys this command destroyed.
pub(super) fn report_shredding(rotations: &[Rotation], now: DateTime<Utc>) {
    for rotation in rotations {
        for epoch in &rotation.advance.destroyed {
            let due = epoch.destruction_time();
            let late = (now - due).num_days();
            note(format_args!(
                "note: destroyed the {epoch} key of {:?} (due {}{})",
                rotation.alias,
                format_utc(due),
                if late >= 2 {
                    format!(", {late} days late: `medcrypt keys schedule` destroys keys on time")
                } else {
                    String::new()
                }
            ));
        }
    }
}

/// The name of this store's timer: one per store, from its path.
fn unit_name(store: &Path) -> String {
    let digest = Sha256::digest(store.to_string_lossy().as_bytes());
    format!("medcrypt-shred-{}", &hex::encode(digest)[..8])
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// An argument quoted for a systemd `ExecStart=` line.
fn systemd_quote(arg: &str) -> String {
    let escaped = arg
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// An argument quoted for a POSIX shell in a crontab line.
fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''").replace('%', "\\%"))
}

fn systemctl(args: &[&str]) -> bool {
    Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn unit_dir() -> Result<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(dirs::config_dir)
        .ok_or_else(|| {
            hinted(
                "cannot find the user's configuration directory",
                "set XDG_CONFIG_HOME or HOME",
            )
        })?;
    Ok(config.join("systemd").join("user"))
}

/// `medcrypt keys schedule [--remove]`.
pub(super) fn schedule(ctx: &Context, remove: bool) -> Result<()> {
    ctx.require_store()?;
    let store = absolute(ctx.store_path())?;
    let exe = std::env::current_exe().context("cannot find the medcrypt program")?;
    let name = unit_name(&store);
    let has_systemd = systemctl(&["show-environment"]);
    if !has_systemd {
        let line = format!(
            "5 0 * * * {} --store {} keys shred >/dev/null",
            shell_quote(&exe.to_string_lossy()),
            shell_quote(&store.to_string_lossy())
        );
        return if remove {
            out(format_args!(
                "No systemd user session here. Remove this line with `crontab -e`, if you added it:\n\n    {line}"
            ))
        } else {
            out(format_args!(
                "No systemd user session here. Add this line with `crontab -e` (it needs no passphrase; \
                 it destroys month keys past their time every night at 00:05):\n\n    {line}"
            ))
        };
    }
    let dir = unit_dir()?;
    let service = dir.join(format!("{name}.service"));
    let timer = dir.join(format!("{name}.timer"));
    if remove {
        systemctl(&["disable", "--now", &format!("{name}.timer")]);
        for path in [&timer, &service] {
            if path.exists() {
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        systemctl(&["daemon-reload"]);
        return out(format_args!(
            "Removed the daily shredder of {}.",
            store.display()
        ));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        &service,
        format!(
            "[Unit]\nDescription=MedCrypt: destroy month keys past their time in {store}\n\n\
             [Service]\nType=oneshot\nExecStart={exe} --store {store_arg} keys shred\n",
            store = store.display(),
            exe = systemd_quote(&exe.to_string_lossy()),
            store_arg = systemd_quote(&store.to_string_lossy()),
        ),
    )
    .with_context(|| format!("cannot write {}", service.display()))?;
    std::fs::write(
        &timer,
        "[Unit]\nDescription=MedCrypt: destroy month keys on time\n\n\
         [Timer]\nOnCalendar=*-*-* 00:05:00 UTC\nPersistent=true\n\n\
         [Install]\nWantedBy=timers.target\n",
    )
    .with_context(|| format!("cannot write {}", timer.display()))?;
    if !(systemctl(&["daemon-reload"]) && systemctl(&["enable", "--now", &format!("{name}.timer")]))
    {
        return Err(hinted(
            format!("systemd could not start {}", timer.display()),
            "see `systemctl --user status` for why; or use cron instead",
        ));
    }
    out(format_args!(
        "Scheduled: every night at 00:05 UTC (and at the next start if missed), `medcrypt keys shred` \
         destroys this store's month keys past their time — no passphrase needed.\n\
         Timer: {}\n\
         To keep it running while you are logged out: loginctl enable-linger $USER",
        timer.display()
    ))
}

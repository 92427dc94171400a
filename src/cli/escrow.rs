//! `medcrypt escrow split|combine`: break-glass shares for custodians.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use medcrypt::qr;
use medcrypt::session::{CombineAction, Session, read_share, share_page};
use medcrypt::shares::ShareText;

use super::Context;
use super::args::{CombineArgs, SplitArgs};
use super::io::{self, note, out};

/// `medcrypt escrow split`.
pub(super) fn split(ctx: &Context, session: &mut Session, args: SplitArgs) -> Result<()> {
    let now = session.now();
    let dir = args
        .out_dir
        .unwrap_or_else(|| PathBuf::from(format!("escrow-shares-{}", now.format("%Y%m%d"))));
    if dir.exists() && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(super::report::usage(
            format!("{} is not empty", dir.display()),
            "give --out-dir a new or empty directory; nothing was written",
        ));
    }
    let created_dir = !dir.exists();
    let outcome = session.escrow_split(&args.custodians, args.threshold)?;
    // From here the new set is live: its pages must all be written, or
    // none (a failed write removes what it made).
    let written = write_pages(ctx, session, &dir, &outcome, now);
    if let Err(err) = written {
        if created_dir {
            let _ = std::fs::remove_dir_all(&dir);
        } else if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        return Err(err.context(
            "the new share set was made but its pages could not be written: run `medcrypt escrow split` again \
             (the set is replaced; no page of it was left behind)",
        ));
    }
    if let Some((set, made)) = &outcome.retired {
        out(format_args!(
            "The previous share set {set} (made {made}) is retired: its pages open nothing any more; \
             ask its custodians to destroy them."
        ))?;
    }
    if outcome.rotated.recovery_retired {
        note(format_args!(
            "note: the store's key was replaced and your recovery code (from an earlier MedCrypt) no longer \
             opens it: run `medcrypt passphrase change` to get a new one"
        ));
    }
    out(format_args!(
        "\nEscrow set {} made: any {} of {} custodians can open this store. The store's key was replaced, \
         so no earlier share opens any copy of it made from now on. Print each page, give it to its \
         custodian, and delete the files.",
        outcome.set_id,
        args.threshold,
        outcome.shares.len()
    ))
}

fn write_pages(
    ctx: &Context,
    session: &Session,
    dir: &std::path::Path,
    outcome: &medcrypt::session::SplitOutcome,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    {
        #[cfg(unix)]
        use std::os::unix::fs::DirBuilderExt;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let practice = session
        .display_name()?
        .unwrap_or_else(|| "this MedCrypt store".into());
    let store_path = ctx.store_path().display().to_string();
    for share in &outcome.shares {
        let slug: String = share
            .custodian
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let base = dir.join(format!("share-{}-{}", share.index, slug.trim_matches('-')));
        let page = share_page(share, &practice, &store_path, now);
        session.write_file(&base.with_extension("txt"), page.as_bytes())?;
        session.write_file(
            &base.with_extension("png"),
            &qr::render_png(&share.to_text())?,
        )?;
        out(format_args!(
            "{}: {} (.txt and .png)",
            share.custodian,
            base.display()
        ))?;
    }
    Ok(())
}

/// `medcrypt escrow combine` (no passphrase).
pub(super) fn combine(ctx: &Context, args: CombineArgs) -> Result<()> {
    let mut shares: Vec<ShareText> = Vec::new();
    for path in &args.share_files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        shares.push(read_share(&bytes, shares.len() + 1)?);
    }
    for text in &args.share_texts {
        shares.push(
            ShareText::parse(text, shares.len() + 1).map_err(medcrypt::session::Error::from)?,
        );
    }
    let passphrase = args
        .new_passphrase_file
        .as_deref()
        .map(|file| io::read_secret_file(file, "new passphrase"))
        .transpose()?;
    let action = match (&args.export, &args.patient, &passphrase) {
        (Some(dir), alias, _) => CombineAction::Export {
            dir,
            alias: alias.as_deref(),
        },
        (_, _, Some(passphrase)) => CombineAction::Rekey { passphrase },
        _ => {
            return Err(super::report::hinted(
                "nothing to do",
                "give --export DIR --patient ALIAS or --new-passphrase-file FILE",
            ));
        }
    };
    let outcome = Session::escrow_combine(
        ctx.store_path(),
        ctx.clock.clone(),
        &shares,
        &args.reason,
        action,
        &medcrypt::agent::telegram::deliver_notices_now,
    )?;
    if let (Some(count), CombineAction::Export { dir, alias }) = (outcome.exported, action) {
        out(format_args!(
            "Exported {count} item(s) of {:?} to {}.",
            alias.unwrap_or_default(),
            dir.display()
        ))?;
    }
    if let Some(recovery) = &outcome.recovery {
        out(format_args!(
            "The store has a new master key and passphrase. New recovery code (shown only now):\n\n    {}\n",
            recovery.to_text().as_str()
        ))?;
    }
    match &outcome.audit {
        Ok(report) => out(format_args!(
            "Audit log checked (structure, encryption and today's entries): {} records intact.",
            report.records
        ))?,
        Err(fault) => out(format_args!(
            "WARNING: the audit log failed its check: {fault}"
        ))?,
    }
    if outcome.rotated.recovery_retired {
        out(format_args!(
            "The physician's old recovery code no longer opens the store; they are told to make a new one."
        ))?;
    }
    out(format_args!(
        "Recorded in the audit log with the custodians ({}) and the reason. The physician {}; \
         the patient is sent a notice through the agent.\n\
         The store's key was replaced and the share set is retired: these shares open nothing any more, \
         not even with an older copy of the store. Run `medcrypt escrow split` for a new set.",
        outcome.custodians,
        if outcome.owner_told {
            "was told at once in their notice chat"
        } else {
            "is told by their agent (the notice waits in the store until delivered)"
        }
    ))
}

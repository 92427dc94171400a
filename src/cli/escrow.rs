//! `medcrypt escrow split|combine`: break-glass shares for custodians.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use medcrypt::codes::parse_verification_code;
use medcrypt::qr;
use medcrypt::session::{CombineAction, Session, read_share, share_page};
use medcrypt::shares::ShareText;

use super::Context;
use super::args::{CombineArgs, SplitArgs};
use super::io::{self, note, out};

/// `medcrypt escrow split`.
pub(super) fn split(ctx: &Context, session: &Session, args: SplitArgs) -> Result<()> {
    let audit_code = args
        .audit_code
        .as_deref()
        .map(|code| io::secret_input(code, "Audit verification code: "))
        .transpose()?;
    let audit_key = audit_code
        .as_deref()
        .map(|code| parse_verification_code(code))
        .transpose()
        .map_err(medcrypt::session::Error::from)?;
    if audit_key.is_none() {
        note(format_args!(
            "note: without --audit-code the custodians cannot verify the audit log on their own"
        ));
    }
    let now = session.now();
    let dir = args
        .out_dir
        .unwrap_or_else(|| PathBuf::from(format!("escrow-shares-{}", now.format("%Y%m%d"))));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let outcome = session.escrow_split(&args.custodians, args.threshold, audit_key)?;
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
    out(format_args!(
        "\nEscrow set {} made: any {} of {} custodians can open this store. \
         Print each page, give it to its custodian, and delete the files.",
        outcome.set_id,
        args.threshold,
        outcome.shares.len()
    ))
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
        (Some(dir), Some(alias), _) => CombineAction::Export { dir, alias },
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
    )?;
    if let (Some(count), CombineAction::Export { dir, alias }) = (outcome.exported, action) {
        out(format_args!(
            "Exported {count} item(s) of {alias:?} to {}.",
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
        Some(Ok(report)) => out(format_args!(
            "Audit log verified from the escrowed verification code: {} records intact.",
            report.records
        ))?,
        Some(Err(fault)) => out(format_args!(
            "WARNING: the audit log failed verification: {fault}"
        ))?,
        None => {}
    }
    out(format_args!(
        "Recorded in the audit log with the custodians ({}) and the reason; the physician \
         and the patient are notified through the agent.\n\
         The share set is retired: these shares open nothing any more. Run `medcrypt escrow split` for a new set.",
        outcome.custodians
    ))
}

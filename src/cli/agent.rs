//! `medcrypt agent telegram`, and what the physician does with the agent's
//! mailbox: `send`, `outbox`, `inbox`.

use std::path::Path;

use anyhow::{Context as _, Result};
use medcrypt::session::{SendContent, Session};
use medcrypt::session::{framed, printable_line};
use medcrypt::store::HistoryContent;
use secrecy::ExposeSecret;

use super::args::{AgentCommand, OutboxCommand};
use super::io::{self, out};
use super::report::hinted;

/// `medcrypt agent …`.
pub(super) fn run(ctx: &super::Context, session: &Session, transport: AgentCommand) -> Result<()> {
    match transport {
        AgentCommand::Telegram(args) => {
            let token = match args.token_file {
                Some(path) => {
                    io::warn_if_readable_by_others(&path, "token");
                    io::read_secret_file(&path, "token")?
                        .expose_secret()
                        .to_owned()
                }
                None => std::env::var("TELOXIDE_TOKEN").map_err(|_| {
                    hinted(
                        "no bot token",
                        "set TELOXIDE_TOKEN or pass --token-file FILE (the token @BotFather gave you)",
                    )
                })?,
            };
            io::init_logging();
            let options = medcrypt::agent::telegram::Options {
                token,
                api_url: std::env::var("TELOXIDE_API_URL")
                    .ok()
                    .filter(|u| !u.is_empty()),
                poll_timeout: args.poll_timeout,
                keep_plaintext: args.keep_plaintext,
                show_owner_link: args.show_owner_link,
                tick: std::time::Duration::from_secs(args.tick_seconds.max(1)),
                run_for: args.run_for.map(std::time::Duration::from_secs),
            };
            let probe = || Ok(medcrypt::agent::telegram::server_time(&options)?);
            if let Err(err) = super::check_clock(ctx, session, Some(&probe)) {
                // Unattended: the physician hears of it in their notice chat.
                if let Ok(Some(chat)) = medcrypt::agent::owner_chat(session.store()) {
                    let text = format!(
                        "⚠ Your MedCrypt agent did not start: {err:#}. Fix the computer's clock, then start it again."
                    );
                    if medcrypt::agent::telegram::notify_owner_now(&options, chat, &text).is_ok() {
                        session.store().audit(
                            session.now(),
                            "owner_notice",
                            "",
                            "ok",
                            &[("reason", "clock disagrees with the server".to_owned())],
                        )?;
                    }
                }
                return Err(err);
            }
            super::start_using(session)?;
            medcrypt::agent::telegram::remember(session, &options)?;
            Ok(medcrypt::agent::telegram::run(session, &options)?)
        }
    }
}

/// `medcrypt send`.
pub(super) fn send(
    session: &Session,
    alias: &str,
    file: Option<&Path>,
    text: Option<String>,
) -> Result<()> {
    let input;
    let content = match file {
        Some(path) => SendContent::File(path),
        None => {
            input = io::text_or_stdin(text)?;
            SendContent::Text(&input)
        }
    };
    let queued = session.send(alias, content)?;
    out(format_args!(
        "Queued #{} for {alias} ({}). {}",
        queued.id,
        queued.kind.name(),
        if queued.bound {
            "The agent delivers it; `medcrypt outbox` shows its state."
        } else {
            "It will be delivered once the patient has connected their chat (the deep link)."
        }
    ))
}

/// `medcrypt outbox [retry ID]`.
pub(super) fn outbox(session: &Session, action: Option<OutboxCommand>) -> Result<()> {
    if let Some(OutboxCommand::Retry { id }) = action {
        session.outbox_retry(id)?;
        return out(format_args!("Outbox item #{id} is queued again."));
    }
    let items = session.outbox()?;
    if items.is_empty() {
        return out(format_args!("The outbox is empty."));
    }
    out(format_args!(
        "{:>5}  {:16} {:9} {:10} {:>8}  {:20}  LAST ERROR",
        "#", "TO", "KIND", "STATE", "ATTEMPTS", "QUEUED"
    ))?;
    for item in items {
        out(format_args!(
            "{:>5}  {:16} {:9} {:10} {:>8}  {:20}  {}",
            item.id,
            item.alias,
            item.kind.name(),
            item.state,
            item.attempts,
            item.created_at,
            item.last_error.unwrap_or_default()
        ))?;
    }
    Ok(())
}

/// `medcrypt inbox`: the history, each entry headed by its verified
/// sender and when it expires, each body indented and made printable so
/// that no message can pass for another entry.
pub(super) fn inbox(
    session: &Session,
    from: Option<&str>,
    follow: bool,
    save: Option<&Path>,
) -> Result<()> {
    let mut last = 0;
    let mut shown = 0;
    loop {
        for item in session.inbox(from, last)? {
            last = item.id;
            shown += 1;
            let expires = match item.expires_at {
                Some(at) => format!("expires on {}", medcrypt::format_utc(at)),
                None => "kept for ever".to_owned(),
            };
            out(format_args!(
                "#{} {} from {} · {expires}",
                item.id,
                item.received_at,
                printable_line(&item.alias)
            ))?;
            match &item.content {
                HistoryContent::Text(text) => {
                    let width = io::terminal_width().unwrap_or(80);
                    out(format_args!("{}\n", framed(text, width)))?;
                }
                HistoryContent::File {
                    metadata,
                    stored,
                    saved_as,
                } => {
                    let saved = match (save, stored, saved_as) {
                        (Some(dir), true, _) => {
                            std::fs::create_dir_all(dir)
                                .with_context(|| format!("cannot create {}", dir.display()))?;
                            let path = session.save_inbox_file(&item, metadata, dir)?;
                            format!(
                                " → saved as {}",
                                printable_line(&path.display().to_string())
                            )
                        }
                        (None, true, _) => " (save it with --save-attachments DIR)".to_owned(),
                        (_, false, Some(path)) => {
                            format!(" → decrypted to {}", printable_line(path))
                        }
                        (_, false, None) => String::new(),
                    };
                    out(format_args!(
                        "    [file {}, {} bytes, {}]{saved}\n",
                        printable_line(&metadata.name),
                        metadata.size,
                        printable_line(&metadata.mime)
                    ))?;
                }
            }
        }
        if !follow {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    if shown == 0 && !follow {
        out(format_args!("No messages kept."))?;
    }
    Ok(())
}

/// `medcrypt inbox export DIR`.
pub(super) fn inbox_export(session: &Session, from: Option<&str>, dir: &Path) -> Result<()> {
    let count = session.inbox_export(from, dir)?;
    out(format_args!(
        "Exported {count} item(s) to {}: messages.txt and the files kept. File them into the \
         medical record; the store keeps them only under its retention policy.",
        dir.display()
    ))
}

//! `medcrypt agent telegram`, and what the physician does with the agent's
//! mailbox: `send`, `outbox`, `inbox`.

use std::path::Path;

use anyhow::{Context as _, Result};
use medcrypt::session::{SendContent, Session};
use medcrypt::session::{framed, printable_line};
use medcrypt::store::HistoryContent;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

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
            stale_key_first(session, medcrypt::agent::telegram::run(session, &options))
        }
        AgentCommand::WhatsApp(args) => {
            let options = whatsapp_options(session, args)?;
            super::check_clock(ctx, session, None)?;
            io::init_logging();
            super::start_using(session)?;
            stale_key_first(session, medcrypt::agent::whatsapp::run(session, &options))
        }
    }
}

/// An agent that stopped on an error after another command replaced the
/// store's key under it (an escrow split, an emergency access) says that,
/// not what its old keys made of the rows: every row reads as altered.
fn stale_key_first<E>(session: &Session, ran: std::result::Result<(), E>) -> Result<()>
where
    anyhow::Error: From<E>,
{
    match ran {
        Ok(()) => Ok(()),
        Err(_) if session.store().key_replaced().unwrap_or(false) => {
            Err(medcrypt::session::Error::from(medcrypt::store::StoreError::KeyReplaced).into())
        }
        Err(err) => Err(err.into()),
    }
}

/// A secret from `--*-file` or the environment; `None` when neither is set.
fn secret_setting(file: Option<&Path>, env: &str, what: &str) -> Result<Option<Zeroizing<String>>> {
    match file {
        Some(path) => {
            io::warn_if_readable_by_others(path, what);
            let value = io::read_secret_file(path, what)?;
            let value = value.expose_secret().trim();
            if value.is_empty() {
                return Err(hinted(
                    format!("{} is empty", path.display()),
                    format!("put the {what} in it"),
                ));
            }
            Ok(Some(Zeroizing::new(value.to_owned())))
        }
        None => Ok(std::env::var(env)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| Zeroizing::new(v.trim().to_owned()))),
    }
}

/// The WhatsApp agent's settings, each missing one named.
fn whatsapp_options(
    session: &Session,
    args: super::args::WhatsAppArgs,
) -> Result<medcrypt::agent::whatsapp::Options> {
    use medcrypt::agent::whatsapp::{DEFAULT_API_URL, Options, parse_template};
    let token = secret_setting(args.token_file.as_deref(), "WHATSAPP_TOKEN", "access token")?;
    let app_secret = secret_setting(
        args.app_secret_file.as_deref(),
        "WHATSAPP_APP_SECRET",
        "app secret",
    )?;
    let verify_token = secret_setting(
        args.verify_token_file.as_deref(),
        "WHATSAPP_VERIFY_TOKEN",
        "verify token",
    )?;
    let phone_number_id = args
        .phone_number_id
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty());
    let mut missing = Vec::new();
    if token.is_none() {
        missing.push("the access token (WHATSAPP_TOKEN or --token-file)");
    }
    if app_secret.is_none() {
        missing.push("the app secret (WHATSAPP_APP_SECRET or --app-secret-file)");
    }
    if verify_token.is_none() {
        missing.push("the verify token (WHATSAPP_VERIFY_TOKEN or --verify-token-file)");
    }
    if phone_number_id.is_none() {
        missing.push("the phone number id (WHATSAPP_PHONE_NUMBER_ID or --phone-number-id)");
    }
    let (Some(token), Some(app_secret), Some(verify_token), Some(phone_number_id)) =
        (token, app_secret, verify_token, phone_number_id)
    else {
        return Err(hinted(
            format!("missing WhatsApp settings: {}", missing.join("; ")),
            "find them in Meta's app dashboard (WhatsApp > API Setup; App settings > Basic for the app secret); the verify token is any secret you choose and enter under Webhooks. See the README, \"WhatsApp\"",
        ));
    };
    if app_secret.len() < 16 {
        // Meta's app secrets are 32 hex digits; a short one is a mistake
        // that would let anyone sign webhooks.
        return Err(hinted(
            "the app secret is too short to be Meta's (it is 32 hex digits)",
            "copy it from the app dashboard, App settings > Basic > App secret",
        ));
    }
    if !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(hinted(
            format!(
                "{:?} is not a phone number id",
                printable_line(&phone_number_id)
            ),
            "the phone number id is the long number under WhatsApp > API Setup, not the phone number itself",
        ));
    }
    let api_url = args
        .api_url
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    let parsed = reqwest::Url::parse(api_url.trim_end_matches('/'));
    // The access token goes with every request: in clear only to this machine.
    let loopback =
        |u: &reqwest::Url| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if !parsed.is_ok_and(|u| u.scheme() == "https" || (u.scheme() == "http" && loopback(&u))) {
        return Err(hinted(
            format!(
                "WHATSAPP_API_URL must be an https URL (http only on this machine): {:?}",
                printable_line(&api_url)
            ),
            format!("leave it unset for {DEFAULT_API_URL}"),
        ));
    }
    let template = match session.setting("whatsapp_template")? {
        Some(value) if !value.is_empty() => Some(
            parse_template(&value)
                .map_err(|e| hinted(e, "medcrypt config set whatsapp-template NAME"))?,
        ),
        _ => None,
    };
    Ok(Options {
        listen: args.listen,
        tls: args.tls_cert.zip(args.tls_key),
        api_url,
        token,
        app_secret,
        verify_token,
        phone_number_id,
        template,
        poll: std::time::Duration::from_millis(args.poll_millis.max(50)),
        tick: std::time::Duration::from_secs(args.tick_seconds.max(1)),
        run_for: args.run_for.map(std::time::Duration::from_secs),
    })
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
    // Notices wait for the Telegram notice chat; whoever looks here sees
    // them too (a practice on WhatsApp alone has no other place).
    let notices = session.store().pending_notices()?;
    if !notices.is_empty() {
        out(format_args!("Notices for you ({}):", notices.len()))?;
        for notice in &notices {
            out(format_args!(
                "  {}  {}",
                notice.created_at,
                printable_line(&notice.text)
            ))?;
        }
        out(format_args!(""))?;
    }
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
        // Following for hours: another command may replace the store's key
        // meanwhile (an escrow split), and stale keys read rows as altered.
        if follow && session.store().key_replaced()? {
            return Err(
                medcrypt::session::Error::from(medcrypt::store::StoreError::KeyReplaced).into(),
            );
        }
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

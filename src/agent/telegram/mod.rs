//! The Telegram transport of the agent: long polling with teloxide (rustls,
//! Throttle for Telegram's rate limits, a client timeout long enough for
//! large uploads), graceful shutdown on SIGINT and SIGTERM, outbox delivery,
//! and a periodic tick for rotation, shredding and the daily checkpoint.
//!
//! Transports only move bytes: every decision is in [`crate::agent`], and
//! nothing here sees a key. Logs name update ids, chats and outbox numbers,
//! never content or the token.

use std::time::Duration;

use teloxide::adaptors::Throttle;
use teloxide::adaptors::throttle::Limits;
use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{ChatId, InputFile, MessageId, UpdateKind};
use teloxide::{ApiError, RequestError};

#[cfg(feature = "fake-telegram")]
pub mod fake;

use crate::agent::{Action, Agent, DOWNLOAD_LIMIT, next_update_id, owner_chat};
use crate::session::{Error as SessionError, Session};
use crate::store::{OutboxKind, StoreError};

/// How the agent runs. `Debug` never shows the token.
#[derive(Clone)]
pub struct Options {
    /// The bot token (from `TELOXIDE_TOKEN` or `--token-file`).
    pub token: String,
    /// The Bot API base URL (`TELOXIDE_API_URL`), or Telegram's.
    pub api_url: Option<String>,
    /// Long-polling timeout in seconds.
    pub poll_timeout: u32,
    /// Keep plaintext messages instead of deleting them.
    pub keep_plaintext: bool,
    /// Print the physician's one-time owner link even when standard output
    /// is not a terminal (a service manager's log would keep it).
    pub show_owner_link: bool,
    /// How often rotation, shredding and the checkpoint run.
    pub tick: Duration,
    /// Stop after this long (tests, the walkthrough); `None` runs until a signal.
    pub run_for: Option<Duration>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("token", &"[REDACTED]")
            .field("api_url", &self.api_url)
            .field("poll_timeout", &self.poll_timeout)
            .field("keep_plaintext", &self.keep_plaintext)
            .field("tick", &self.tick)
            .field("run_for", &self.run_for)
            .finish_non_exhaustive()
    }
}

/// The transport name chats are bound under.
const TRANSPORT_NAME: &str = "telegram";
/// How long one document download may take (20 MB at a slow 200 kB/s).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The store or a use case failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Telegram refused the token or could not be reached at start.
    #[error("cannot reach the Telegram Bot API: {0}")]
    Telegram(String),
    /// A bad setting.
    #[error("{0}")]
    Config(String),
}

type Result<T> = std::result::Result<T, AgentError>;

impl From<StoreError> for AgentError {
    fn from(err: StoreError) -> Self {
        Self::Session(err.into())
    }
}

/// Builds the bot: rustls client with a 10-minute timeout (teloxide's
/// default of 17 s would cut large uploads), the configured API URL.
fn bot(options: &Options) -> Result<Bot> {
    let client = teloxide::net::default_reqwest_settings()
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| AgentError::Config(format!("cannot build the HTTP client: {e}")))?;
    let bot = Bot::with_client(options.token.clone(), client);
    match &options.api_url {
        Some(url) => {
            let url = reqwest::Url::parse(url.trim_end_matches('/')).map_err(|_| {
                AgentError::Config(format!("TELOXIDE_API_URL is not a URL: {url:?}"))
            })?;
            Ok(bot.set_api_url(url))
        }
        None => Ok(bot),
    }
}

/// The Bot API server's clock: the HTTP `Date` of an answer from its base
/// URL (no token is sent), for an agent whose own clock jumped since the
/// store was last used.
///
/// # Errors
/// The server cannot be reached, or its answer has no readable `Date`.
pub fn server_time(options: &Options) -> Result<chrono::DateTime<chrono::Utc>> {
    let base = options
        .api_url
        .clone()
        .unwrap_or_else(|| "https://api.telegram.org".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Config(format!("cannot start the HTTP client: {e}")))?;
    runtime.block_on(async {
        let client = teloxide::net::default_reqwest_settings()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AgentError::Config(format!("cannot build the HTTP client: {e}")))?;
        let response = client
            .get(format!("{}/", base.trim_end_matches('/')))
            .send()
            .await
            .map_err(|e| AgentError::Telegram(e.without_url().to_string()))?;
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .ok_or_else(|| {
                AgentError::Telegram("its answer carries no readable Date".to_owned())
            })?;
        Ok(date.with_timezone(&chrono::Utc))
    })
}

/// Sends `text` to the physician's own notice chat now, outside a running
/// agent (an agent that refuses to start says why there).
///
/// # Errors
/// Telegram cannot be reached or refuses.
pub fn notify_owner_now(options: &Options, chat: i64, text: &str) -> Result<()> {
    let bot = bot(options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Config(format!("cannot start the HTTP client: {e}")))?;
    runtime.block_on(async {
        bot.send_message(ChatId(chat), text)
            .await
            .map(|_| ())
            .map_err(|e| AgentError::Telegram(e.to_string()))
    })
}

/// The secret under which the agent keeps its bot token in the store, so
/// that a command run while the agent is stopped (break-glass) can still
/// tell the physician at once.
pub const TOKEN_SECRET: &str = "telegram_token";
const API_URL_VALUE: &str = "telegram_api_url";

/// Keeps the agent's bot token (sealed) and API URL in the store.
///
/// # Errors
/// Database errors.
pub fn remember(session: &Session, options: &Options) -> Result<()> {
    let store = session.store();
    store.transaction(|| {
        store.set_secret(TOKEN_SECRET, Some(&options.token))?;
        store.set_agent_value(API_URL_VALUE, options.api_url.as_deref().unwrap_or(""))
    })?;
    Ok(())
}

/// Delivers the physician's queued notices now, through the bot the agent
/// last ran with, when an owner chat is bound. Returns whether every
/// pending notice was delivered (false: they wait for the agent).
pub fn deliver_notices_now(session: &Session) -> bool {
    let store = session.store();
    let Ok(Some(chat)) = owner_chat(store) else {
        return false;
    };
    let Ok(Some(token)) = store.secret(TOKEN_SECRET) else {
        return false;
    };
    let api_url = store
        .agent_value(API_URL_VALUE)
        .ok()
        .flatten()
        .filter(|u| !u.is_empty());
    let options = Options {
        token: token.to_string(),
        api_url,
        poll_timeout: 0,
        keep_plaintext: false,
        show_owner_link: false,
        tick: Duration::from_secs(60),
        run_for: None,
    };
    let Ok(notices) = store.pending_notices() else {
        return false;
    };
    let mut all = true;
    for notice in notices {
        match notify_owner_now(&options, chat, &notice.text) {
            Ok(()) => {
                let _ = store.notice_delivered(notice.id, session.now());
            }
            Err(_) => {
                let _ = store.notice_attempted(notice.id);
                all = false;
            }
        }
    }
    all
}

/// Runs the agent until SIGINT/SIGTERM (or `run_for`). Prints the bot's
/// username and, at first start, the owner's deep link.
///
/// # Errors
/// Store failures and an unreachable Bot API at start.
pub fn run(session: &Session, options: &Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Config(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_async(session, options))
}

async fn run_async(session: &Session, options: &Options) -> Result<()> {
    let store = session.store();
    // Signals are caught from here on, before anything is in flight.
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    let plain = bot(options)?;
    let bot = plain.clone().throttle(Limits::default());
    let me = bot
        .get_me()
        .await
        .map_err(|e| AgentError::Telegram(e.to_string()))?;
    let username = me.username().to_owned();
    let now = session.now();
    store.set_setting("telegram_bot", &username, now)?;
    store.audit(
        now,
        "agent_start",
        "",
        "ok",
        &[("transport", "telegram".to_owned())],
    )?;
    let recovered = store.outbox_recover(now)?;
    tracing::info!(bot = %username, recovered, "agent started");
    println!("MedCrypt agent running as @{username}. Stop with Ctrl-C.");
    // The owner link is a capability: shown once, on a terminal, never
    // in a service's log. It is made only when it can be shown.
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    if on_terminal || options.show_owner_link {
        if let Some(token) = crate::agent::owner_token(store)? {
            println!(
                "Physician: open https://t.me/{username}?start={token} once, to receive notices in your own chat."
            );
        }
    } else if crate::agent::owner_chat(store)?.is_none() {
        println!(
            "No notice chat is connected: run `medcrypt agent telegram` once in a terminal to get the link (it is never written to a log)."
        );
    }

    let deadline = options.run_for.map(|d| tokio::time::Instant::now() + d);
    // Replies go out in the background: Telegram allows about one message
    // per second per chat, and that must not hold up the next update.
    let mut replies = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(options.tick);
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
        if remaining == Some(Duration::ZERO) {
            break;
        }
        let offset = i32::try_from(next_update_id(store)?).unwrap_or(0);
        let poll = bot
            .get_updates()
            .offset(offset)
            .timeout(options.poll_timeout);
        let sleep = tokio::time::sleep(remaining.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
            _ = sleep => break,
            _ = tick.tick() => {
                periodic(session, &bot).await?;
            }
            updates = poll => match updates {
                Ok(updates) => {
                    // Handled to the end even if a signal arrives meanwhile.
                    for update in updates {
                        match handle_update(session, &bot, &plain, options, update).await? {
                            Step::Next(Some((chat, message, action))) => {
                                replies.spawn(perform(bot.clone(), chat, message, action));
                            }
                            Step::Next(None) => {}
                            Step::Retry(wait) => {
                                tokio::time::sleep(wait).await;
                                break;
                            }
                        }
                    }
                    while replies.try_join_next().is_some() {}
                }
                Err(err) => {
                    tracing::warn!(error = %err, "getUpdates failed; retrying");
                    let wait = match err {
                        RequestError::RetryAfter(s) => Duration::from_secs(u64::from(s.seconds())),
                        _ => Duration::from_secs(1),
                    };
                    tokio::time::sleep(wait).await;
                }
            },
        }
        deliver_outbox(session, &bot).await?;
    }
    // Finish the replies in flight, within reason.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while replies.join_next().await.is_some() {}
    })
    .await;
    store.audit(session.now(), "agent_stop", "", "ok", &[])?;
    println!("MedCrypt agent stopped.");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are registered when this is
/// called, not when the future is first polled.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| AgentError::Config(format!("cannot catch SIGTERM: {e}")))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| AgentError::Config(format!("cannot catch SIGINT: {e}")))?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Handles one update in the store; returns the chat action to perform.
async fn handle_update(
    session: &Session,
    bot: &Throttle<Bot>,
    plain: &Bot,
    options: &Options,
    update: Update,
) -> Result<Step> {
    let store = session.store();
    let update_id = i64::from(update.id.0);
    if update_id < next_update_id(store)? {
        // Delivered again (a retry after a crash or a duplicate): already handled.
        tracing::debug!(update_id, "duplicate update skipped");
        return Ok(Step::Next(None));
    }
    let agent = Agent::new(session, options.keep_plaintext)?;
    let now = session.now();
    let message = match update.kind {
        UpdateKind::Message(message) => message,
        // An edit would change what was received: refused like plaintext.
        UpdateKind::EditedMessage(message) => {
            let action = agent.on_other(
                update_id,
                &message.chat.id.0.to_string(),
                "edited message",
                now,
            )?;
            return Ok(Step::Next(Some((message.chat.id, message.id, action))));
        }
        _ => {
            agent.skip(update_id)?;
            return Ok(Step::Next(None));
        }
    };
    let chat = message.chat.id;
    let chat_key = chat.0.to_string();
    let action = if let Some(text) = message.text() {
        agent.on_text(update_id, &chat_key, text, message.date, now)?
    } else if let Some(document) = message.document() {
        let size = u64::from(document.file.size);
        let bound = store
            .pairing_for_chat(TRANSPORT_NAME, &chat.0.to_string())?
            .is_some();
        if !bound {
            // A stranger's document is not even downloaded.
            agent.on_other(update_id, &chat_key, "file", now)?
        } else if size > DOWNLOAD_LIMIT {
            agent.on_oversized_document(update_id, size)?
        } else {
            let fetched =
                tokio::time::timeout(DOWNLOAD_TIMEOUT, download(bot, plain, &document.file.id))
                    .await
                    .unwrap_or_else(|_| Err("the download timed out".to_owned()));
            match fetched {
                Ok(bytes) => {
                    let mut action = agent.on_document(update_id, &chat_key, &bytes, now)?;
                    // A caption is plaintext written with the file: it goes
                    // like any plaintext (the file was already received).
                    let captioned = message.caption().is_some_and(|c| !c.trim().is_empty());
                    if captioned && !options.keep_plaintext {
                        action.delete = true;
                        let warning = "⚠ The text written with the file was not encrypted, so the message was deleted. Send text as an encrypted MEDCRYPT line.";
                        action.reply = Some(match action.reply.take() {
                            Some(reply) => format!("{reply}\n{warning}"),
                            None => warning.to_owned(),
                        });
                    }
                    action
                }
                Err(err) => {
                    // Not marked handled, and nothing after it in this batch
                    // is: the offset stays here, so the update is fetched
                    // again (a later update marked done would move past it)
                    // — up to a bound, then the patient is asked to resend.
                    let failures = agent.download_failed(update_id)?;
                    if failures < crate::agent::MAX_DOWNLOAD_ATTEMPTS {
                        tracing::warn!(update_id, failures, error = %err, "download failed; will retry");
                        // 1, 2, 4, 8 s: a passing outage of Telegram's file
                        // servers is waited out.
                        return Ok(Step::Retry(Duration::from_secs(1 << (failures - 1).min(3))));
                    }
                    tracing::warn!(update_id, failures, error = %err, "download failed; given up");
                    agent.on_undownloadable(update_id, &chat_key, now)?
                }
            }
        }
    } else {
        // A photo, voice note, video, sticker…: never ciphertext.
        agent.on_other(update_id, &chat_key, "photo, voice or other media", now)?
    };
    tracing::info!(
        update_id,
        chat = chat.0,
        replied = action.reply.is_some(),
        deleted = action.delete,
        "update handled"
    );
    Ok(Step::Next(Some((chat, message.id, action))))
}

/// What to do after one update of a batch.
enum Step {
    /// Go on with the next update, after this reply (if any).
    Next(Option<(ChatId, MessageId, Action)>),
    /// Stop this batch and wait this long: the update must be fetched again.
    Retry(Duration),
}

async fn download(
    bot: &Throttle<Bot>,
    plain: &Bot,
    file_id: &teloxide::types::FileId,
) -> std::result::Result<Vec<u8>, String> {
    let file = bot
        .get_file(file_id.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    plain
        .download_file(&file.path, &mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Sends the reply and deletes the message, best effort: the store already
/// holds the outcome.
async fn perform(bot: Throttle<Bot>, chat: ChatId, message: MessageId, action: Action) {
    if action.delete
        && let Err(err) = bot.delete_message(chat, message).await
    {
        tracing::warn!(chat = chat.0, error = %err, "could not delete a plaintext message");
    }
    if let Some(reply) = action.reply
        && let Err(err) = bot.send_message(chat, reply).await
    {
        tracing::warn!(chat = chat.0, error = %err, "could not reply");
    }
}

/// Delivers queued outbox items: wire text as a message, documents with a
/// neutral name. A 429 waits `retry_after`; other failures back off; an item
/// is marked `sending` before the request so that a crash never sends it twice.
async fn deliver_outbox(session: &Session, bot: &Throttle<Bot>) -> Result<()> {
    let store = session.store();
    let now = session.now();
    for item in store.outbox(Some(now))? {
        let link = store.chat_for_pairing(item.pairing_id)?;
        if link
            .as_ref()
            .is_some_and(|link| link.transport != TRANSPORT_NAME)
        {
            // Bound on another messenger: its agent delivers it.
            continue;
        }
        let chat = link.and_then(|link| link.chat.parse::<i64>().ok());
        let Some(chat) = chat else {
            store.outbox_set_state(
                item.id,
                "queued",
                Some(now + chrono::TimeDelta::minutes(1)),
                Some("waiting for the patient to connect this chat"),
                now,
            )?;
            continue;
        };
        let payload = store.outbox_payload(item.id)?;
        store.outbox_set_state(item.id, "sending", None, None, now)?;
        let result = match item.kind {
            OutboxKind::Text => bot
                .send_message(ChatId(chat), String::from_utf8_lossy(&payload).into_owned())
                .await
                .map(|_| ()),
            OutboxKind::Document => {
                // A neutral name: no counter shared across chats.
                let name = format!("medcrypt-{}.medcrypt", neutral_suffix());
                bot.send_document(
                    ChatId(chat),
                    InputFile::memory(payload.to_vec()).file_name(name),
                )
                .await
                .map(|_| ())
            }
        };
        let now = session.now();
        match result {
            Ok(()) => {
                store.outbox_set_state(item.id, "sent", None, None, now)?;
                tracing::info!(outbox = item.id, "delivered");
            }
            Err(RequestError::RetryAfter(seconds)) => {
                let wait = chrono::TimeDelta::seconds(i64::from(seconds.seconds()));
                store.outbox_set_state(
                    item.id,
                    "queued",
                    Some(now + wait),
                    Some("rate limited by Telegram (429)"),
                    now,
                )?;
                tracing::info!(
                    outbox = item.id,
                    retry_after = seconds.seconds(),
                    "rate limited"
                );
                break;
            }
            // The request may have reached Telegram and the answer been
            // lost (a network error after sending, an unreadable answer): a
            // send that may have happened is never repeated automatically.
            // A connection that could not be made sent nothing: retried.
            Err(RequestError::Network(ref e)) if e.is_connect() || e.is_builder() => {
                let attempts = item.attempts + 1;
                let backoff = chrono::TimeDelta::seconds(
                    2i64.pow(u32::try_from(attempts).unwrap_or(8).min(11))
                        .min(3600),
                );
                store.outbox_set_state(
                    item.id,
                    "queued",
                    Some(now + backoff),
                    Some("Telegram could not be reached; nothing was sent"),
                    now,
                )?;
                tracing::warn!(
                    outbox = item.id,
                    attempts,
                    "Telegram unreachable; will retry"
                );
                break;
            }
            Err(
                err @ (RequestError::Network(_)
                | RequestError::InvalidJson { .. }
                | RequestError::Io(_)),
            ) => {
                store.outbox_set_state(
                    item.id,
                    "uncertain",
                    None,
                    Some(&format!(
                        "the answer was lost ({err}): check the chat, then `medcrypt outbox retry`"
                    )),
                    now,
                )?;
                tracing::warn!(outbox = item.id, error = %err, "delivery uncertain");
                // Queued durably: the network that lost the answer may
                // lose this notice too; the agent delivers it when it can.
                store.queue_notice(
                    "⚠ MedCrypt may or may not have delivered a message (the answer was lost). It will not be sent again by itself: run `medcrypt outbox` on your computer, check with the patient, and retry it if needed.",
                    now,
                )?;
            }
            Err(err) => {
                let attempts = item.attempts + 1;
                let permanent = matches!(
                    err,
                    RequestError::Api(ApiError::BotBlocked | ApiError::ChatNotFound)
                );
                if permanent || attempts >= 8 {
                    store.outbox_set_state(item.id, "failed", None, Some(&err.to_string()), now)?;
                    notify_owner(
                        session,
                        bot,
                        // Telegram reads this: no patient, no counter, no error text.
                        "⚠ MedCrypt could not deliver a message after several attempts. Run `medcrypt outbox` on your computer to see which, and retry it.",
                    )
                    .await?;
                } else {
                    let backoff = chrono::TimeDelta::seconds(
                        2i64.pow(u32::try_from(attempts).unwrap_or(8)).min(3600),
                    );
                    store.outbox_set_state(
                        item.id,
                        "queued",
                        Some(now + backoff),
                        Some(&err.to_string()),
                        now,
                    )?;
                }
                tracing::warn!(outbox = item.id, attempts, error = %err, "delivery failed");
            }
        }
    }
    Ok(())
}

/// Eight random hex digits for a document's name.
fn neutral_suffix() -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = [0u8; 4];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Sends `text` to the owner's chat; whether it was delivered.
async fn notify_owner(session: &Session, bot: &Throttle<Bot>, text: &str) -> Result<bool> {
    let store = session.store();
    let Some(chat) = owner_chat(store)? else {
        return Ok(false);
    };
    match bot.send_message(ChatId(chat), text.to_owned()).await {
        Ok(_) => Ok(true),
        Err(err) => {
            tracing::warn!(error = %err, "could not notify the owner");
            Ok(false)
        }
    }
}

/// Rotation and shredding while running, and once a day an audit
/// checkpoint to the owner's chat as an outside witness.
async fn periodic(session: &Session, bot: &Throttle<Bot>) -> Result<()> {
    let store = session.store();
    let now = session.now();
    let rotations = store.rotate(now)?;
    for rotation in &rotations {
        for epoch in &rotation.advance.destroyed {
            tracing::info!(pairing = %rotation.alias, %epoch, "key destroyed");
        }
    }
    let today = crate::protocol::audit::day_of(now).to_string();
    if owner_chat(store)?.is_some()
        && store.agent_value("checkpoint_day")?.as_deref() != Some(today.as_str())
    {
        store.audit(
            now,
            "audit_checkpoint",
            "",
            "ok",
            &[("to", "owner chat".to_owned())],
        )?;
        let (seq, mac) = store.audit_head()?;
        let checkpoint =
            crate::protocol::audit::Checkpoint::new(store.store_id()?.as_deref(), seq, &mac, now)
                .to_text();
        let text = format!(
            "MedCrypt audit checkpoint (keep it; `medcrypt audit verify --checkpoint LINE` checks it):\n{checkpoint}"
        );
        // Queued like every notice: delivered when the chat can be reached.
        store.transaction(|| {
            store.queue_notice(&text, now)?;
            store.set_agent_value("checkpoint_day", &today)
        })?;
    }
    // Notices stay queued until delivered (a failed send is tried again).
    if owner_chat(store)?.is_some() {
        for notice in store.pending_notices()? {
            if notify_owner(session, bot, &notice.text).await? {
                store.notice_delivered(notice.id, now)?;
            } else {
                store.notice_attempted(notice.id)?;
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let options = Options {
            token: "123456:SECRET-TOKEN".into(),
            api_url: None,
            poll_timeout: 25,
            keep_plaintext: false,
            show_owner_link: false,
            tick: Duration::from_secs(60),
            run_for: None,
        };
        let printed = format!("{options:?}");
        assert!(!printed.contains("SECRET-TOKEN"), "{printed}");
        assert!(printed.contains("[REDACTED]"));
    }
}

//! The WhatsApp Cloud API transport of the agent: a webhook server (axum;
//! rustls when a certificate is given) that checks each POST's signature
//! over the raw body, stores its events durably — deduplicated on their
//! `wamid` in the same transaction — answers 200, and only then processes
//! them from that queue (media download, decryption, the inbox), so that a
//! crash loses nothing and Meta's retries (for days, duplicated, in any
//! order) change nothing. Sending follows WhatsApp's rules: statuses move
//! the outbox states, the 24-hour window is kept (an approved template
//! outside it), errors are read from `error.code`, and a send whose answer
//! was lost is never repeated by itself.
//!
//! Only the main task touches the store: HTTP handlers verify and hand
//! the events over a channel, and wait for them to be stored. Facts about
//! the Cloud API are in `../shared/WHATSAPP_CLOUD_API.md`.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

#[cfg(feature = "fake-whatsapp")]
pub mod fake;
pub mod graph;
mod tls;
pub mod webhook;

use crate::agent::{Action, Agent, Transport};
use crate::session::{Error as SessionError, Session};
use crate::store::{OutboxItem, OutboxKind, StoreError};
use graph::{Graph, SendError};
use webhook::{Content, Event};

/// The Graph API base URL (with its pinned version) when none is set.
pub const DEFAULT_API_URL: &str = "https://graph.facebook.com/v25.0";
/// The largest document WhatsApp carries (decimal, as Meta counts), plus
/// room for the armour of a file that used all of it.
pub const DOWNLOAD_LIMIT: u64 = 140_000_000;
/// How long one media download may take (100 MB at a slow 400 kB/s).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// The customer-service window, less a margin for clocks and delays.
const WINDOW: TimeDelta = TimeDelta::seconds(24 * 3600 - 120);
/// Outbox items to the same user are spaced this far apart (WhatsApp's
/// pair rate limit is about one message per 6 s).
const PAIR_SPACING: Duration = Duration::from_secs(6);
/// The largest webhook body read (Meta's stay under 3 MB).
const BODY_LIMIT: usize = 4 * 1024 * 1024;
/// The setting that names the approved re-engagement template.
pub const TEMPLATE_SETTING: &str = "whatsapp_template";

/// How the agent runs. `Debug` never shows a secret.
#[derive(Clone)]
pub struct Options {
    /// Where the webhook server listens.
    pub listen: SocketAddr,
    /// A PEM certificate chain and key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The Graph base URL with its version.
    pub api_url: String,
    /// The access token (bearer).
    pub token: Zeroizing<String>,
    /// The app secret that signs each webhook.
    pub app_secret: Zeroizing<String>,
    /// The verify token of the GET handshake.
    pub verify_token: Zeroizing<String>,
    /// The business phone number's id.
    pub phone_number_id: String,
    /// The approved template (name, language) that invites a silent
    /// patient to write, outside the 24-hour window.
    pub template: Option<(String, String)>,
    /// How often the outbox is looked at when nothing else happens.
    pub poll: Duration,
    /// How often rotation, shredding and queue pruning run.
    pub tick: Duration,
    /// Stop after this long (tests, the walkthrough); `None` runs until a signal.
    pub run_for: Option<Duration>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("api_url", &self.api_url)
            .field("token", &"[REDACTED]")
            .field("app_secret", &"[REDACTED]")
            .field("verify_token", &"[REDACTED]")
            .field("phone_number_id", &self.phone_number_id)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// Reads `config set whatsapp-template NAME[:LANGUAGE]` (language `en` when
/// not given).
///
/// # Errors
/// A value that is not a template name (lower-case letters, digits and
/// underscores) with an optional language code.
pub fn parse_template(value: &str) -> std::result::Result<(String, String), String> {
    let (name, language) = value.split_once(':').unwrap_or((value, "en"));
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let language_ok = (2..=10).contains(&language.len())
        && language
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'_');
    if name_ok && language_ok {
        Ok((name.to_owned(), language.to_owned()))
    } else {
        Err(format!(
            "{value:?} is not a template name: lower-case letters, digits and underscores as approved in Meta's dashboard, optionally followed by :LANGUAGE (e.g. medcrypt_new_message:es)"
        ))
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The store or a use case failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A bad setting, or the server could not start.
    #[error("{0}")]
    Config(String),
}

type Result<T> = std::result::Result<T, AgentError>;

impl From<StoreError> for AgentError {
    fn from(err: StoreError) -> Self {
        Self::Session(err.into())
    }
}

/// Verified events handed from an HTTP handler to the main task, and
/// whether they were stored.
struct Inbound {
    events: Vec<Event>,
    stored: oneshot::Sender<bool>,
}

/// What the HTTP handlers share.
#[derive(Clone)]
struct Shared {
    app_secret: Arc<Zeroizing<String>>,
    verify_token: Arc<Zeroizing<String>>,
    inbound: mpsc::Sender<Inbound>,
    token_refused: Arc<AtomicBool>,
}

/// The webhook's routes: `GET /webhook` (handshake), `POST /webhook`
/// (events), `GET /healthz`.
fn router(shared: Shared) -> Router {
    Router::new()
        .route("/webhook", get(handshake).post(receive))
        .route("/healthz", get(health))
        // Meta's webhook payloads stay under 3 MB.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

async fn handshake(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    match webhook::handshake(
        query.get("hub.mode").map(String::as_str),
        query.get("hub.verify_token").map(String::as_str),
        query.get("hub.challenge").map(String::as_str),
        &shared.verify_token,
    ) {
        Some(challenge) => (StatusCode::OK, challenge),
        None => {
            tracing::warn!("webhook verification refused (wrong verify token or mode)");
            (StatusCode::FORBIDDEN, String::new())
        }
    }
}

async fn receive(State(shared): State<Shared>, request: axum::extract::Request) -> StatusCode {
    let headers: HeaderMap = request.headers().clone();
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if signature.is_none() {
        // Refused before its body is even read.
        tracing::debug!("unsigned webhook refused");
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), BODY_LIMIT).await else {
        return StatusCode::PAYLOAD_TOO_LARGE;
    };
    if let Err(err) = webhook::verify_signature(shared.app_secret.as_bytes(), &body, signature) {
        tracing::warn!(error = %err, "webhook refused");
        return match err {
            webhook::SignatureError::Missing => StatusCode::UNAUTHORIZED,
            webhook::SignatureError::Invalid => StatusCode::FORBIDDEN,
        };
    }
    let events = match webhook::parse(&body) {
        Ok(events) => events,
        Err(err) => {
            // Signed but not readable: a retry would not make it readable.
            tracing::warn!(error = %err, "webhook ignored");
            return StatusCode::OK;
        }
    };
    if events.is_empty() {
        return StatusCode::OK;
    }
    let (stored, answer) = oneshot::channel();
    if shared
        .inbound
        .send(Inbound { events, stored })
        .await
        .is_err()
    {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match answer.await {
        Ok(true) => StatusCode::OK,
        // Not stored: Meta delivers it again.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn health(State(shared): State<Shared>) -> impl IntoResponse {
    if shared.token_refused.load(Ordering::SeqCst) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "WhatsApp refused the access token: sending is stopped (see the agent's log)\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

/// What the main task keeps between rounds.
#[derive(Default)]
struct Pace {
    /// When each user may next get an outbox item.
    next_for_user: HashMap<String, tokio::time::Instant>,
    /// When rotation and pruning last ran.
    last_tick: Option<tokio::time::Instant>,
}

/// Runs the agent until SIGINT/SIGTERM (or `run_for`). The first line on
/// standard output is the URL it listens on.
///
/// # Errors
/// Store failures; an address that cannot be listened on; a certificate
/// that cannot be read.
pub fn run(session: &Session, options: &Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Config(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_async(session, options))
}

type Work<'a> = Pin<Box<dyn Future<Output = Result<Duration>> + 'a>>;

async fn run_async(session: &Session, options: &Options) -> Result<()> {
    let store = session.store();
    let shutdown =
        crate::agent::telegram::shutdown_signal().map_err(|e| AgentError::Config(e.to_string()))?;
    tokio::pin!(shutdown);
    let graph = Graph::new(
        &options.api_url,
        options.token.clone(),
        &options.phone_number_id,
    )
    .map_err(AgentError::Config)?;
    let acceptor = match &options.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key).map_err(AgentError::Config)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| AgentError::Config(format!("cannot listen on {}: {e}", options.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| AgentError::Config(format!("cannot listen on {}: {e}", options.listen)))?;
    let (inbound_tx, mut inbound) = mpsc::channel::<Inbound>(256);
    let token_refused = Arc::new(AtomicBool::new(false));
    let app = router(Shared {
        app_secret: Arc::new(options.app_secret.clone()),
        verify_token: Arc::new(options.verify_token.clone()),
        inbound: inbound_tx,
        token_refused: token_refused.clone(),
    });
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let stopping = async move {
        let _ = server_stopped.await;
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let server = match acceptor {
        Some(acceptor) => tokio::spawn(
            axum::serve(tls::TlsListener::new(listener, acceptor), app)
                .with_graceful_shutdown(stopping)
                .into_future(),
        ),
        None => tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stopping)
                .into_future(),
        ),
    };
    // The first line: what scripts and tests read.
    println!("{scheme}://{local}");
    let now = session.now();
    store.audit(
        now,
        "agent_start",
        "",
        "ok",
        &[("transport", "whatsapp".to_owned())],
    )?;
    let recovered = store.outbox_recover(now)?;
    tracing::info!(%local, recovered, "agent started");
    println!(
        "MedCrypt WhatsApp agent: webhook {scheme}://{local}/webhook, health {scheme}://{local}/healthz. Stop with Ctrl-C."
    );
    if options.template.is_none() {
        println!(
            "No re-engagement template is set: a message to a patient silent for 24 hours waits until they write (`medcrypt config set whatsapp-template NAME`)."
        );
    }

    let deadline = options.run_for.map(|d| tokio::time::Instant::now() + d);
    let (replies, replies_done) = reply_worker();
    let pace = std::cell::RefCell::new(Pace::default());
    let mut work: Option<Work<'_>> = None;
    let mut wake = true;
    let mut next_round = tokio::time::Instant::now();
    loop {
        if work.is_none() && (wake || tokio::time::Instant::now() >= next_round) {
            wake = false;
            work = Some(Box::pin(round(
                session,
                &graph,
                options,
                &pace,
                &token_refused,
                &replies,
            )));
        }
        let until_deadline = deadline.map_or(Duration::from_secs(u64::MAX / 4), |d| {
            d.saturating_duration_since(tokio::time::Instant::now())
        });
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
            _ = tokio::time::sleep(until_deadline) => break,
            received = inbound.recv() => {
                let Some(received) = received else { break };
                // Every POST waiting now is stored in one transaction (one
                // sync to disk for all), then each is answered.
                let mut batch = vec![received];
                while batch.len() < 256 {
                    match inbound.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let events: Vec<Event> = batch.iter().flat_map(|b| b.events.iter().cloned()).collect();
                let stored = persist(session, options, &events);
                let ok = stored.is_ok();
                for received in batch {
                    let _ = received.stored.send(ok);
                }
                if let Err(err) = stored {
                    tracing::error!(error = %err, "could not store webhook events; Meta will deliver them again");
                }
                wake = true;
            }
            done = poll_work(&mut work) => {
                work = None;
                let wait = done?;
                next_round = tokio::time::Instant::now() + wait;
            }
            _ = tokio::time::sleep_until(next_round), if work.is_none() => {}
        }
    }
    // Let the round in progress finish, within reason: what it has not
    // marked done is done again at the next start.
    if let Some(rest) = work.take() {
        let _ = tokio::time::timeout(Duration::from_secs(30), rest).await;
    }
    drop(work);
    let _ = stop_server.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    drop(replies);
    let _ = tokio::time::timeout(Duration::from_secs(30), replies_done).await;
    store.audit(session.now(), "agent_stop", "", "ok", &[])?;
    println!("MedCrypt agent stopped.");
    Ok(())
}

/// Replies leave in the background, each in its own task.
type Replies = mpsc::UnboundedSender<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// The task that runs replies; it ends (after the replies in flight) when
/// the sender is dropped.
fn reply_worker() -> (Replies, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Pin<Box<dyn Future<Output = ()> + Send>>>();
    let worker = tokio::spawn(async move {
        let mut running = tokio::task::JoinSet::new();
        while let Some(reply) = rx.recv().await {
            running.spawn(reply);
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    });
    (tx, worker)
}

async fn poll_work(work: &mut Option<Work<'_>>) -> Result<Duration> {
    match work.as_mut() {
        Some(running) => running.await,
        None => std::future::pending().await,
    }
}

/// Stores verified events (those of this phone number) in one transaction.
fn persist(session: &Session, options: &Options, events: &[Event]) -> Result<usize> {
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        if let Event::Message {
            phone_number_id, ..
        } = event
            && !phone_number_id.is_empty()
            && *phone_number_id != options.phone_number_id
        {
            tracing::debug!("an event for another phone number ignored");
            continue;
        }
        let body = serde_json::to_vec(event)
            .map_err(|e| AgentError::Config(format!("cannot store an event: {e}")))?;
        rows.push((event.key(), body));
    }
    let new = session.store().whatsapp_persist(&rows, session.now())?;
    tracing::debug!(events = rows.len(), new, "webhook stored");
    Ok(new)
}

/// One round of work: every queued event, then the outbox, then (now and
/// then) rotation and pruning. Returns how long to wait before the next
/// round when nothing wakes the agent earlier.
async fn round(
    session: &Session,
    graph: &Graph,
    options: &Options,
    pace: &std::cell::RefCell<Pace>,
    token_refused: &AtomicBool,
    replies: &Replies,
) -> Result<Duration> {
    let store = session.store();
    loop {
        let pending = store.whatsapp_pending(64)?;
        if pending.is_empty() {
            break;
        }
        for (id, body) in pending {
            let event: Event = match serde_json::from_slice(&body) {
                Ok(event) => event,
                Err(_) => {
                    store.transaction(|| store.whatsapp_event_done(id))?;
                    continue;
                }
            };
            drop(body);
            if let Some(wait) =
                handle_event(session, graph, options, token_refused, replies, id, event).await?
            {
                return Ok(wait);
            }
        }
    }
    if !token_refused.load(Ordering::SeqCst) {
        deliver_outbox(session, graph, options, pace, token_refused).await?;
    }
    let tick_due = pace
        .borrow()
        .last_tick
        .is_none_or(|at| at.elapsed() >= options.tick);
    if tick_due {
        pace.borrow_mut().last_tick = Some(tokio::time::Instant::now());
        let now = session.now();
        store.rotate(now)?;
        store.whatsapp_prune(now)?;
    }
    Ok(options.poll)
}

fn sent_at(timestamp: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(timestamp, 0)
        .filter(|_| timestamp > 0)
        .unwrap_or(now)
}

/// Handles one queued event; `Some(wait)` stops the round (a download to
/// try again after `wait`).
async fn handle_event(
    session: &Session,
    graph: &Graph,
    options: &Options,
    token_refused: &AtomicBool,
    replies: &Replies,
    id: i64,
    event: Event,
) -> Result<Option<Duration>> {
    let store = session.store();
    let now = session.now();
    let agent = Agent::for_transport(session, Transport::WhatsApp, false)?;
    match event {
        Event::Message {
            id: wamid,
            user,
            timestamp,
            content,
            ..
        } => {
            let sent = sent_at(timestamp, now);
            // The patient wrote: WhatsApp's window opens for 24 hours.
            store.whatsapp_user_wrote(&user, sent.timestamp())?;
            let bound = store.pairing_for_chat(Transport::WhatsApp.name(), &user)?;
            let action = match content {
                Content::Text(text) => agent.on_text(id, &user, &text, sent, now)?,
                Content::Document {
                    media_id, caption, ..
                } => {
                    if bound.is_none() {
                        // A stranger's document is not even downloaded.
                        agent.on_other(id, &user, "file", now)?
                    } else if token_refused.load(Ordering::SeqCst) {
                        return Ok(Some(Duration::from_secs(60)));
                    } else {
                        let fetched = tokio::time::timeout(
                            DOWNLOAD_TIMEOUT,
                            graph.download(&media_id, DOWNLOAD_LIMIT),
                        )
                        .await
                        .unwrap_or_else(|_| Err(SendError::Lost("the download timed out".into())));
                        match fetched {
                            Ok(bytes) => {
                                let mut action = agent.on_document(id, &user, &bytes, now)?;
                                if caption.is_some_and(|c| !c.trim().is_empty()) {
                                    let warning = "⚠ The text written with the file was not encrypted. MedCrypt cannot delete it here: please delete it from this chat yourself, and send text as an encrypted MEDCRYPT line.";
                                    action.received = false;
                                    action.reply = Some(match action.reply.take() {
                                        Some(reply) => format!("{reply}\n{warning}"),
                                        None => warning.to_owned(),
                                    });
                                }
                                action
                            }
                            Err(SendError::Api { code, .. }) if graph::is_auth_error(code) => {
                                refuse_token(session, token_refused, code)?;
                                return Ok(Some(Duration::from_secs(60)));
                            }
                            Err(SendError::Api { code: 131052, .. }) => {
                                agent.on_undownloadable(id, &user, now)?
                            }
                            Err(err) => {
                                // Not marked handled: tried again, up to a
                                // bound, then the patient is asked to resend.
                                let failures = agent.download_failed(id)?;
                                if failures < crate::agent::MAX_DOWNLOAD_ATTEMPTS {
                                    tracing::warn!(event = id, failures, error = %err, "download failed; will retry");
                                    return Ok(Some(Duration::from_secs(
                                        1 << (failures - 1).min(3),
                                    )));
                                }
                                tracing::warn!(event = id, failures, error = %err, "download failed; given up");
                                agent.on_undownloadable(id, &user, now)?
                            }
                        }
                    }
                }
                Content::Other(kind) => {
                    let what = match kind.as_str() {
                        "image" => "photo",
                        "audio" => "voice message",
                        "video" => "video",
                        "sticker" => "sticker",
                        "location" => "location",
                        "contacts" => "contact",
                        _ => "message",
                    };
                    if kind == "reaction" || kind == "unsupported" || kind == "system" {
                        agent.skip(id)?;
                        Action::default()
                    } else {
                        agent.on_other(id, &user, what, now)?
                    }
                }
            };
            // Whatever the patient wrote, items waiting for them go now.
            if let Some(pairing) = store.pairing_for_chat(Transport::WhatsApp.name(), &user)? {
                let woken = store.outbox_wake(pairing.id, now)?;
                if woken > 0 {
                    tracing::info!(woken, "the patient wrote: waiting items are due");
                }
            }
            tracing::info!(
                event = id,
                replied = action.reply.is_some(),
                received = action.received,
                "message handled"
            );
            if !token_refused.load(Ordering::SeqCst) {
                perform(graph, replies, user, wamid, action);
            }
            Ok(None)
        }
        Event::Status {
            id: wamid,
            status,
            errors,
            ..
        } => {
            on_status(session, graph, options, id, &wamid, &status, &errors).await?;
            Ok(None)
        }
    }
}

/// The reply to a message, in the background and best effort (the store
/// already holds the outcome): a receipt becomes read ticks.
fn perform(graph: &Graph, replies: &Replies, user: String, wamid: String, action: Action) {
    let graph = graph.clone();
    let _ = replies.send(Box::pin(async move {
        if action.received {
            if let Err(err) = graph.mark_read(&wamid).await {
                tracing::warn!(error = %err, "could not mark a message read");
            }
        } else if let Some(reply) = action.reply
            && let Err(err) = graph.send_text(&user, &reply).await
        {
            tracing::warn!(error = %err, "could not reply");
        }
    }));
}

/// The rank of a delivery state: statuses only move an item forward
/// (they arrive in any order).
fn rank(state: &str) -> Option<u8> {
    match state {
        "accepted" => Some(0),
        "sent" => Some(1),
        "delivered" => Some(2),
        "read" => Some(3),
        _ => None,
    }
}

async fn on_status(
    session: &Session,
    graph: &Graph,
    options: &Options,
    id: i64,
    wamid: &str,
    status: &str,
    errors: &[i64],
) -> Result<()> {
    let store = session.store();
    let now = session.now();
    let Some(item_id) = store.whatsapp_sent_item(wamid)? else {
        // A receipt, a template or a reply: not an outbox item.
        store.transaction(|| store.whatsapp_event_done(id))?;
        return Ok(());
    };
    let Some(item) = store.outbox_item(item_id)? else {
        store.transaction(|| store.whatsapp_event_done(id))?;
        return Ok(());
    };
    let current = rank(&item.state);
    match status {
        "sent" | "delivered" | "read" if current.is_some() && rank(status) > current => {
            store.transaction(|| {
                store.outbox_set_state(item.id, status, None, None, now)?;
                store.whatsapp_event_done(id)
            })?;
        }
        "failed" if current.is_some_and(|r| r < 2) => {
            let code = errors.first().copied().unwrap_or(0);
            if code == graph::OUTSIDE_WINDOW {
                store.transaction(|| {
                    store.outbox_set_state(item.id, "queued", None, None, now)?;
                    store.whatsapp_event_done(id)
                })?;
                if let Some(user) = whatsapp_user(session, &item)? {
                    reengage(session, graph, options, &item, &user).await?;
                }
            } else if graph::is_transient(&SendError::Api {
                http: 0,
                code,
                detail: String::new(),
            }) || code == graph::PAIR_RATE
            {
                store.transaction(|| {
                    store.outbox_set_state(
                        item.id,
                        "queued",
                        Some(now + TimeDelta::seconds(30)),
                        Some(&format!(
                            "WhatsApp did not deliver it (error {code}); trying again"
                        )),
                        now,
                    )?;
                    store.whatsapp_event_done(id)
                })?;
            } else {
                store.transaction(|| {
                    store.outbox_set_state(
                        item.id,
                        "failed",
                        None,
                        Some(&format!("WhatsApp could not deliver it (error {code})")),
                        now,
                    )?;
                    store.queue_notice(FAILED_NOTICE, now)?;
                    store.whatsapp_event_done(id)
                })?;
                tracing::warn!(outbox = item.id, code, "delivery failed");
            }
        }
        _ => store.transaction(|| store.whatsapp_event_done(id))?,
    }
    Ok(())
}

/// Names no patient, no counter and no error text.
const FAILED_NOTICE: &str = "⚠ MedCrypt could not deliver a message on WhatsApp. Run `medcrypt outbox` on your computer to see which, and retry it.";

fn whatsapp_user(session: &Session, item: &OutboxItem) -> Result<Option<String>> {
    Ok(session
        .store()
        .chat_for_pairing(item.pairing_id)?
        .filter(|link| link.transport == Transport::WhatsApp.name())
        .map(|link| link.chat))
}

/// The access token was refused: sending and downloading stop (webhooks
/// are still stored), the physician is told.
fn refuse_token(session: &Session, token_refused: &AtomicBool, code: i64) -> Result<()> {
    if !token_refused.swap(true, Ordering::SeqCst) {
        tracing::error!(
            code,
            "WhatsApp refused the access token (error {code}): sending has stopped. Create a new token (a system user's, with whatsapp_business_messaging) and restart the agent; incoming messages are kept meanwhile."
        );
        eprintln!(
            "medcrypt: WhatsApp refused the access token (error {code}): sending has stopped. Create a new token in Meta's dashboard (a system user's token with whatsapp_business_messaging), then restart the agent. Incoming messages are kept and handled after the restart."
        );
        let store = session.store();
        let now = session.now();
        store.transaction(|| {
            store.audit(now, "agent_token_refused", "", "failed", &[("code", code.to_string())])?;
            store.queue_notice(
                "⚠ WhatsApp refused MedCrypt's access token: nothing is being sent. Create a new token and restart the WhatsApp agent.",
                now,
            )
            .map(|_| ())
        })?;
    }
    Ok(())
}

/// Outside the 24-hour window: the template goes out once per silence (if
/// one is configured) and the item waits for the patient's reply.
async fn reengage(
    session: &Session,
    graph: &Graph,
    options: &Options,
    item: &OutboxItem,
    user: &str,
) -> Result<()> {
    let store = session.store();
    let now = session.now();
    let Some((name, language)) = &options.template else {
        store.outbox_set_state(
            item.id,
            "waiting-for-reply",
            None,
            Some("outside WhatsApp's 24-hour window and no template is set (`medcrypt config set whatsapp-template NAME`): it goes when the patient writes"),
            now,
        )?;
        return Ok(());
    };
    let (last, template_for) = store.whatsapp_user(user)?.unwrap_or((0, None));
    if template_for != Some(last) {
        // Noted before it leaves: a crash while sending must not send it
        // again (at most once); undone only when it surely did not leave.
        store.whatsapp_template_sent(user, last)?;
        match graph.send_template(user, name, language).await {
            // A lost answer counts as sent: at most once.
            Ok(_) | Err(SendError::Lost(_)) => {
                store.audit(now, "reengage_template", &item.alias, "ok", &[])?;
            }
            Err(err) if matches!(err, SendError::Unreachable(_)) || graph::is_transient(&err) => {
                store.whatsapp_template_unsent(user)?;
                store.outbox_set_state(
                    item.id,
                    "queued",
                    Some(now + TimeDelta::seconds(30)),
                    Some(&format!(
                        "the re-engagement template could not be sent: {err}"
                    )),
                    now,
                )?;
                return Ok(());
            }
            Err(err) => {
                store.transaction(|| {
                    store.outbox_set_state(
                        item.id,
                        "waiting-for-reply",
                        None,
                        Some(&format!(
                            "outside WhatsApp's 24-hour window, and the template {name:?} was refused: {err}"
                        )),
                        now,
                    )?;
                    store.queue_notice(
                        "⚠ WhatsApp refused MedCrypt's re-engagement template: a message waits until the patient writes. Check the template's name and approval in Meta's dashboard.",
                        now,
                    )
                    .map(|_| ())
                })?;
                return Ok(());
            }
        }
    }
    store.outbox_set_state(
        item.id,
        "waiting-for-reply",
        None,
        Some("outside WhatsApp's 24-hour window: the patient was invited to reply; it goes when they write"),
        now,
    )?;
    Ok(())
}

/// Eight random hex digits for a document's name.
fn neutral_suffix() -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = [0u8; 4];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// 1, 2, 4… seconds after the 1st, 2nd, 3rd… attempt, at most 5 minutes.
fn backoff(attempts: i64) -> TimeDelta {
    let exponent = u32::try_from(attempts.max(1) - 1).unwrap_or(9).min(9);
    TimeDelta::seconds(2i64.pow(exponent).min(300))
}

/// Delivers the due outbox items bound to WhatsApp users.
async fn deliver_outbox(
    session: &Session,
    graph: &Graph,
    options: &Options,
    pace: &std::cell::RefCell<Pace>,
    token_refused: &AtomicBool,
) -> Result<()> {
    let store = session.store();
    for item in store.outbox(Some(session.now()))? {
        let now = session.now();
        let user = match store.chat_for_pairing(item.pairing_id)? {
            Some(link) if link.transport == Transport::WhatsApp.name() => link.chat,
            // Another messenger's agent delivers it.
            Some(_) => continue,
            None => {
                store.outbox_set_state(
                    item.id,
                    "queued",
                    Some(now + TimeDelta::minutes(1)),
                    Some("waiting for the patient to connect this chat"),
                    now,
                )?;
                continue;
            }
        };
        let paced = pace
            .borrow()
            .next_for_user
            .get(&user)
            .is_some_and(|at| *at > tokio::time::Instant::now());
        if paced {
            continue;
        }
        let open = store
            .whatsapp_user(&user)?
            .is_some_and(|(last, _)| now.timestamp() - last < WINDOW.num_seconds());
        if !open {
            reengage(session, graph, options, &item, &user).await?;
            continue;
        }
        let payload = store.outbox_payload(item.id)?;
        // A document is uploaded first: an upload messages no one, so any
        // failure of it may simply be tried again.
        let media = match item.kind {
            OutboxKind::Text => None,
            OutboxKind::Document => {
                let name = format!("medcrypt-{}.medcrypt.txt", neutral_suffix());
                let armored = crate::protocol::attachment::armor(&payload);
                match graph.upload(armored, &name, "text/plain").await {
                    Ok(media_id) => Some((media_id, name)),
                    Err(SendError::Api { code, .. }) if graph::is_auth_error(code) => {
                        refuse_token(session, token_refused, code)?;
                        return Ok(());
                    }
                    Err(err @ SendError::Api { .. }) if !graph::is_transient(&err) => {
                        // Refused for good (type, size): nothing was sent.
                        store.transaction(|| {
                            store.outbox_set_state(
                                item.id,
                                "failed",
                                None,
                                Some(&format!(
                                    "WhatsApp refused the upload: {err}; nothing was sent"
                                )),
                                now,
                            )?;
                            store.queue_notice(FAILED_NOTICE, now).map(|_| ())
                        })?;
                        continue;
                    }
                    Err(err) => {
                        store.outbox_set_state(
                            item.id,
                            "queued",
                            Some(now + TimeDelta::seconds(60)),
                            Some(&format!(
                                "the upload did not complete ({err}); nothing was sent"
                            )),
                            now,
                        )?;
                        continue;
                    }
                }
            }
        };
        store.outbox_set_state(item.id, "sending", None, None, now)?;
        let result = match &media {
            None => {
                graph
                    .send_text(&user, &String::from_utf8_lossy(&payload))
                    .await
            }
            Some((media_id, name)) => graph.send_document(&user, media_id, name).await,
        };
        drop(payload);
        let now = session.now();
        let attempts = item.attempts + 1;
        match result {
            Ok(wamid) => {
                store.transaction(|| {
                    store.whatsapp_sent(&wamid, item.id)?;
                    store.outbox_set_state(item.id, "accepted", None, None, now)
                })?;
                pace.borrow_mut()
                    .next_for_user
                    .insert(user, tokio::time::Instant::now() + PAIR_SPACING);
                tracing::info!(outbox = item.id, "accepted by WhatsApp");
            }
            Err(SendError::Unreachable(reason)) => {
                store.outbox_set_state(
                    item.id,
                    "queued",
                    Some(now + backoff(attempts)),
                    Some(&format!(
                        "WhatsApp could not be reached ({reason}); nothing was sent"
                    )),
                    now,
                )?;
                tracing::warn!(
                    outbox = item.id,
                    attempts,
                    "WhatsApp unreachable; will retry"
                );
                break;
            }
            Err(err @ SendError::Lost(_)) => {
                store.transaction(|| {
                    store.outbox_set_state(
                        item.id,
                        "uncertain",
                        None,
                        Some(&format!("{err}: check the chat, then `medcrypt outbox retry`")),
                        now,
                    )?;
                    store.queue_notice(
                        "⚠ MedCrypt may or may not have delivered a message on WhatsApp (the answer was lost). It will not be sent again by itself: run `medcrypt outbox` on your computer, check with the patient, and retry it if needed.",
                        now,
                    ).map(|_| ())
                })?;
                tracing::warn!(outbox = item.id, "delivery uncertain");
            }
            Err(err) => {
                let code = err.code().unwrap_or(0);
                if code == graph::OUTSIDE_WINDOW {
                    store.outbox_set_state(item.id, "queued", None, None, now)?;
                    reengage(session, graph, options, &item, &user).await?;
                } else if graph::is_auth_error(code) {
                    store.outbox_set_state(
                        item.id,
                        "queued",
                        None,
                        Some(&format!("{err}; nothing was sent")),
                        now,
                    )?;
                    refuse_token(session, token_refused, code)?;
                    return Ok(());
                } else if code == graph::PAIR_RATE {
                    // 4^X seconds, X from 0: 1, 4, 16, 64…
                    let wait = 4i64.pow(u32::try_from(attempts - 1).unwrap_or(5).min(5));
                    store.outbox_set_state(
                        item.id,
                        "queued",
                        Some(now + TimeDelta::seconds(wait)),
                        Some("too many messages to this patient at once (131056); waiting"),
                        now,
                    )?;
                    pace.borrow_mut().next_for_user.insert(
                        user,
                        tokio::time::Instant::now() + Duration::from_secs(wait.unsigned_abs()),
                    );
                } else if graph::is_transient(&err) && attempts < 8 {
                    store.outbox_set_state(
                        item.id,
                        "queued",
                        Some(now + backoff(attempts)),
                        Some(&err.to_string()),
                        now,
                    )?;
                    tracing::warn!(outbox = item.id, attempts, error = %err, "will retry");
                    if code == graph::RATE_LIMIT || code == 4 || code == 80007 {
                        break;
                    }
                } else {
                    store.transaction(|| {
                        store.outbox_set_state(
                            item.id,
                            "failed",
                            None,
                            Some(&err.to_string()),
                            now,
                        )?;
                        store.queue_notice(FAILED_NOTICE, now).map(|_| ())
                    })?;
                    tracing::warn!(outbox = item.id, error = %err, "delivery failed");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_settings_are_checked() {
        assert_eq!(
            parse_template("medcrypt_new_message"),
            Ok(("medcrypt_new_message".into(), "en".into()))
        );
        assert_eq!(
            parse_template("medcrypt_new_message:es"),
            Ok(("medcrypt_new_message".into(), "es".into()))
        );
        assert!(parse_template("Hello World").is_err());
        assert!(parse_template("x:").is_err());
    }

    #[test]
    fn statuses_only_move_forward() {
        assert!(rank("read") > rank("delivered"));
        assert!(rank("delivered") > rank("accepted"));
        assert_eq!(rank("uncertain"), None);
    }
}

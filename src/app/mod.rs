//! `medcrypt app`: a local web page over the same store, for people who do
//! not use a terminal. All cryptography stays in Rust; the page only moves
//! text. Served on loopback only; the first URL carries a one-time secret
//! that is exchanged for an HttpOnly, SameSite=Strict session cookie. Every
//! request is checked for that cookie and for the `Host` header (DNS
//! rebinding); every state change also for its `Origin`; every answer
//! carries a strict Content-Security-Policy. The store is locked again
//! after an idle timeout, and the server stops when asked from the page or
//! on Ctrl-C.
//!
//! What the page can do: create or unlock a store; pair (a patient by a
//! photo of the QR code or the typed code; a physician making an
//! invitation, its QR code shown large); read messages pasted from a chat
//! (whole excerpts); write a reply; decrypt dropped files (binary,
//! armoured, all parts at once); the history and inbox with their files,
//! the patients, queueing for the agent and the outbox ([`practice`]); the
//! keys, audit verification and backup; the custodians' break-glass
//! ([`emergency`]). Heavy work runs on the blocking pool, one request at a
//! time on the store.

mod emergency;
mod practice;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::session::{Clock, Error as SessionError, ErrorKind, Session};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The policy every answer carries: nothing from elsewhere, no inline
/// script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const COOKIE: &str = "medcrypt_session";
/// Shortest passphrase the page accepts for a new store (as `init`).
const MIN_PASSPHRASE_CHARS: usize = 8;
/// The most the page uploads at once for decryption (every part of a file).
const FILE_LIMIT: usize = 512 * 1024 * 1024;

/// How the app runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The store file.
    pub store: PathBuf,
    /// Where to listen: a loopback address only.
    pub listen: SocketAddr,
    /// Lock the store after this long without a request.
    pub idle_lock: Duration,
}

/// Why the app could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Not a loopback address, or it cannot be listened on.
    #[error("{0}")]
    Listen(String),
}

struct Shared {
    store: PathBuf,
    clock: Clock,
    port: u16,
    /// The address bound (any loopback address may be chosen).
    bound: SocketAddr,
    /// The one-time secret of the first URL, until it is used.
    url_secret: Mutex<Option<Zeroizing<String>>>,
    /// The session cookie's value, once the secret was exchanged.
    cookie: Mutex<Option<Zeroizing<String>>>,
    /// The token every API call carries in `X-MedCrypt-Token`: cookies are
    /// shared by every port of 127.0.0.1, this is not (the page keeps it in
    /// its own origin's sessionStorage).
    api_token: Mutex<Option<Zeroizing<String>>>,
    session: Mutex<Option<Session>>,
    /// The page's last change, on the monotonic clock and on the wall
    /// clock (the monotonic one stands still while the computer sleeps).
    last_request: Mutex<(Instant, std::time::SystemTime)>,
    /// Wrong passphrases in a row: each answer waits longer.
    failed_unlocks: Mutex<u32>,
    /// Set once the app is asked to stop (from the page or by a signal).
    stop: tokio::sync::watch::Sender<bool>,
    /// How long without the page's changes before the store locks.
    idle: Duration,
}

/// The lock when free (a poisoned one too: a request that failed must not
/// stop the idle lock), `None` when busy.
fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Whether the page made no change for the idle time, on either clock (the
/// monotonic one stands still while the computer sleeps).
fn idle_passed(shared: &Shared) -> bool {
    let (monotonic, wall) = *lock(&shared.last_request);
    monotonic.elapsed().max(wall.elapsed().unwrap_or_default()) >= shared.idle
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn random_token() -> Zeroizing<String> {
    use aes_gcm::aead::rand_core::RngCore;
    let mut raw = Zeroizing::new([0u8; 32]);
    aes_gcm::aead::OsRng.fill_bytes(raw.as_mut());
    Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()))
}

/// Constant-time comparison of two secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Runs the app until it is asked to stop (from the page or by a signal).
/// `started` receives the URL with its one-time secret, once listening.
///
/// # Errors
/// [`AppError::Listen`].
pub fn run(options: &Options, clock: Clock, started: impl FnOnce(&str)) -> Result<(), AppError> {
    if !options.listen.ip().is_loopback() {
        return Err(AppError::Listen(format!(
            "{} is not a loopback address: the app serves this computer only (use 127.0.0.1)",
            options.listen
        )));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Listen(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| AppError::Listen(format!("cannot listen on {}: {e}", options.listen)))?;
        let local = listener
            .local_addr()
            .map_err(|e| AppError::Listen(e.to_string()))?;
        let secret = random_token();
        let shared = Arc::new(Shared {
            store: options.store.clone(),
            clock,
            port: local.port(),
            bound: local,
            url_secret: Mutex::new(Some(secret.clone())),
            cookie: Mutex::new(None),
            api_token: Mutex::new(None),
            session: Mutex::new(None),
            last_request: Mutex::new((Instant::now(), std::time::SystemTime::now())),
            failed_unlocks: Mutex::new(0),
            stop: tokio::sync::watch::Sender::new(false),
            idle: options.idle_lock,
        });
        let app = Router::new()
            .route("/", get(index))
            .route(
                "/app.js",
                get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
            )
            .route(
                "/app.css",
                get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
            )
            .route("/api/unlock", post(unlock))
            .route("/api/lock", post(lock_store))
            .route("/api/status", get(status))
            .route("/api/pairings", get(pairings))
            .route("/api/decrypt", post(decrypt))
            .route("/api/encrypt", post(encrypt))
            .route("/api/stop", post(stop))
            .route(
                "/api/pair",
                post(pair).layer(axum::extract::DefaultBodyLimit::max(24 * 1024 * 1024)),
            )
            .route("/api/invite", post(invite))
            .route("/api/create", post(create))
            .route("/api/overview", get(practice::overview))
            .route("/api/history", post(practice::history))
            .route("/api/history-file", post(practice::history_file))
            .route("/api/send", post(practice::send_text))
            .route(
                "/api/send-file",
                post(practice::send_file)
                    .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024)),
            )
            .route("/api/outbox", get(practice::outbox))
            .route("/api/outbox-retry", post(practice::outbox_retry))
            .route("/api/audit-verify", post(practice::audit_verify))
            .route("/api/checkpoint", post(practice::checkpoint))
            .route("/api/backup", post(practice::backup))
            .route(
                "/api/emergency",
                post(emergency::combine)
                    .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024)),
            )
            .route(
                "/api/file",
                post(decrypt_file).layer(axum::extract::DefaultBodyLimit::max(FILE_LIMIT)),
            )
            .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
            .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
            .with_state(shared.clone());
        // The address actually bound (127.0.0.1 or [::1]).
        started(&format!("http://{local}/?s={}", secret.as_str()));
        drop(secret);
        let watcher = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5).min(watcher.idle)).await;
                if !idle_passed(&watcher) {
                    continue;
                }
                // Busy with a request is not idle; the lock waits for it
                // on the blocking pool, never on this thread.
                let locking = watcher.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(mut session) = try_lock(&locking.session)
                        && session.take().is_some()
                    {
                        tracing::info!("idle: the store is locked again");
                    }
                });
            }
        });
        let signal = crate::agent::telegram::shutdown_signal()
            .map_err(|e| AppError::Listen(e.to_string()))?;
        let signalled = shared.clone();
        tokio::spawn(async move {
            signal.await;
            signalled.stop.send_replace(true);
        });
        let mut asked = shared.stop.subscribe();
        let mut deadline = shared.stop.subscribe();
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = asked.wait_for(|stop| *stop).await;
        });
        tokio::select! {
            done = served => done.map_err(|e| AppError::Listen(e.to_string()))?,
            // A connection that never finishes its request must not keep
            // the app (and its key) alive.
            _ = async move {
                let _ = deadline.wait_for(|stop| *stop).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            } => {}
        }
        // Locked: the key leaves memory with the session.
        let closing = shared.clone();
        let _ = tokio::task::spawn_blocking(move || lock(&closing.session).take()).await;
        Ok(())
    })
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// Every `medcrypt_session` cookie sent: another server on 127.0.0.1 may
/// plant one with a longer path, which the browser sends first.
fn cookies_of(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .collect()
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        why.to_owned(),
    )
        .into_response()
}

/// Host, session and origin checks, and the security headers.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let allowed_hosts = [
        format!("127.0.0.1:{}", shared.port),
        format!("localhost:{}", shared.port),
        format!("[::1]:{}", shared.port),
        shared.bound.to_string(),
    ];
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut response = if !allowed_hosts.contains(&host) {
        // Another name that resolves here (DNS rebinding): refused.
        refuse(StatusCode::FORBIDDEN, "wrong Host")
    } else if let Some(exchanged) = exchange_secret(&shared, &request) {
        exchanged
    } else {
        let valid = match lock(&shared.cookie).as_ref() {
            Some(expected) => cookies_of(request.headers())
                .iter()
                .any(|given| same(given, expected)),
            None => false,
        };
        let changes = request.method() != Method::GET && request.method() != Method::HEAD;
        let api = request.uri().path().starts_with("/api/");
        let token_ok = !api
            || match (
                request
                    .headers()
                    .get("x-medcrypt-token")
                    .and_then(|v| v.to_str().ok()),
                lock(&shared.api_token).as_ref(),
            ) {
                (Some(given), Some(expected)) => same(given, expected),
                _ => false,
            };
        let origin_ok = !changes
            || request
                .headers()
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|origin| {
                    allowed_hosts
                        .iter()
                        .any(|h| origin == format!("http://{h}"))
                });
        if !valid || !token_ok {
            refuse(
                StatusCode::FORBIDDEN,
                "no session: open the link `medcrypt app` printed (it works once)",
            )
        } else if !origin_ok {
            refuse(StatusCode::FORBIDDEN, "cross-origin request refused")
        } else {
            if changes {
                // Woken after the idle time (before the watcher looked):
                // locked first, then this change counts.
                if idle_passed(&shared) {
                    let locking = shared.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || lock(&locking.session).take()).await;
                }
                // Only what the page itself does keeps the store open.
                *lock(&shared.last_request) = (Instant::now(), std::time::SystemTime::now());
            }
            next.run(request).await
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /?s=SECRET` with the one-time secret: a session cookie, and the
/// page without the secret in its address.
fn exchange_secret(shared: &Shared, request: &Request) -> Option<Response> {
    if request.method() != Method::GET || request.uri().path() != "/" {
        return None;
    }
    let given = request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("s="))?;
    let mut secret = lock(&shared.url_secret);
    let matches = secret.as_ref().is_some_and(|s| same(given, s));
    if !matches {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "this link was already used or is not this app's: start `medcrypt app` again for a new one",
        ));
    }
    *secret = None;
    let cookie = random_token();
    let set = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        cookie.as_str()
    );
    *lock(&shared.cookie) = Some(cookie);
    // The API token travels in the fragment (never sent to a server, never
    // in a Referer); the page moves it to sessionStorage and out of the
    // address bar.
    let token = random_token();
    let location = format!("/#t={}", token.as_str());
    *lock(&shared.api_token) = Some(token);
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Ok(value) = HeaderValue::from_str(&set) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Some(response)
}

async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// The name the page keys its own words on, per kind of failure (so that
/// a Spanish page can say "tampered" in Spanish).
fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Other => "other",
        ErrorKind::Usage => "usage",
        ErrorKind::Authentication => "tampered",
        ErrorKind::Expired => "expired",
        ErrorKind::Replayed => "replayed",
        ErrorKind::Reflected => "reflected",
        ErrorKind::Damaged => "damaged",
        ErrorKind::UnknownPairing => "unknown-pairing",
        ErrorKind::Locked => "wrong-secret",
        ErrorKind::AuditFailed => "audit-failed",
        ErrorKind::Escrow => "escrow",
    }
}

/// Who a message is verified to come from, as the CLI says it: the name
/// this person gave the pairing first, then the name the other side chose
/// for itself (which anyone making an invitation can write).
fn sender(alias: &str, peer_name: &str) -> String {
    if peer_name.is_empty() || peer_name == alias {
        alias.to_owned()
    } else {
        format!("{alias} — {peer_name}")
    }
}

/// An error as JSON: the CLI's words and hint, and its kind.
fn error_json(err: &SessionError) -> Value {
    if matches!(
        err,
        SessionError::Store(crate::store::StoreError::KeyReplaced)
    ) {
        // The page locks itself: the passphrase opens the store again.
        return json!({
            "error": err.to_string(),
            "hint": "nothing was written; unlock again with your passphrase",
            "kind": "key-replaced",
        });
    }
    json!({
        "error": err.to_string(),
        "hint": err.hint().map(|h| h.into_owned()).unwrap_or_default(),
        "kind": kind_name(err.kind()),
    })
}

/// An error as the page shows it.
fn failure(err: &SessionError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(error_json(err)),
    )
        .into_response()
}

/// A request the page cannot carry out, in plain words with what to do.
fn unprocessable(error: &str, hint: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "error": error, "hint": hint, "kind": "usage" })),
    )
        .into_response()
}

/// A string field of a JSON body (empty when absent), kept out of memory
/// once dropped.
fn field(body: &Value, name: &str) -> Zeroizing<String> {
    Zeroizing::new(
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

fn locked() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({
            "error": "the store is locked",
            "hint": "enter your passphrase and choose Unlock",
            "kind": "locked",
        })),
    )
        .into_response()
}

/// Runs `work` on the unlocked session, on the blocking pool (the store's
/// work is file and database I/O and key derivation); "locked" otherwise.
async fn with_session<F>(shared: &Arc<Shared>, work: F) -> Response
where
    F: FnOnce(&Session) -> Response + Send + 'static,
{
    let shared = shared.clone();
    blocking(move || {
        let mut guard = lock(&shared.session);
        match guard.as_ref() {
            // Another command replaced the store's key (an emergency access,
            // a new escrow split): what this session reads would look
            // tampered. It is locked; the passphrase opens the store again.
            Some(session) if session.store().key_replaced().unwrap_or(false) => {
                guard.take();
                failure(&SessionError::Store(crate::store::StoreError::KeyReplaced))
            }
            Some(session) => work(session),
            None => locked(),
        }
    })
    .await
}

/// Runs `work` on the blocking pool.
async fn blocking<F>(work: F) -> Response
where
    F: FnOnce() -> Response + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({
                "error": "MedCrypt failed while doing this",
                "hint": "nothing was changed; try again, and report it if it happens again",
                "kind": "other",
            })),
        )
            .into_response()
    })
}

async fn unlock(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let passphrase = SecretString::from(field(&body, "passphrase").to_string());
    let opener = shared.clone();
    let unlocked = tokio::task::spawn_blocking(move || {
        let session = Session::unlock(&opener.store, &passphrase, opener.clock.clone())?;
        // Keys due are destroyed on opening, as every command does.
        let _ = session.rotate();
        *lock(&opener.session) = Some(session);
        Ok::<_, SessionError>(())
    })
    .await;
    match unlocked {
        Ok(Ok(())) => {
            *lock(&shared.failed_unlocks) = 0;
            axum::Json(json!({ "ok": true })).into_response()
        }
        Ok(Err(err)) => {
            // Guessing through the page gets slower with every miss.
            let failures = {
                let mut count = lock(&shared.failed_unlocks);
                *count = count.saturating_add(1);
                *count
            };
            tokio::time::sleep(Duration::from_millis(250 * u64::from(failures.min(20)))).await;
            failure(&err)
        }
        Err(_) => unprocessable("MedCrypt failed while unlocking", "try again"),
    }
}

/// Whether the store exists and is unlocked (the page clears itself when
/// it is not).
async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let exists = matches!(
        crate::store::probe(&shared.store),
        Ok(crate::store::StoreFile::Present) | Err(_)
    );
    // Busy with a request (a large file): unlocked, and never waited for.
    let unlocked = try_lock(&shared.session).is_none_or(|session| session.is_some());
    axum::Json(json!({
        "unlocked": unlocked,
        "store_exists": exists,
    }))
    .into_response()
}

/// A new store, made from the page: its recovery and audit verification
/// codes are answered once and never stored.
async fn create(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let passphrase = SecretString::from(field(&body, "passphrase").to_string());
    let name = field(&body, "name").trim().to_owned();
    let retention = field(&body, "retention");
    let maker = shared.clone();
    let made = tokio::task::spawn_blocking(move || {
        use secrecy::ExposeSecret as _;
        if passphrase.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(SessionError::usage(
                format!("the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters"),
                "choose a longer one: a few unrelated words are easy to remember",
            ));
        }
        let retention: crate::store::Retention = if retention.is_empty() {
            crate::store::Retention::KeyLifetime
        } else {
            retention
                .parse()
                .map_err(|e: crate::store::InvalidRetention| {
                    SessionError::usage(e.to_string(), "choose key-lifetime, 30d or forever")
                })?
        };
        if crate::store::probe(&maker.store)? == crate::store::StoreFile::Present {
            return Err(SessionError::from(crate::store::StoreError::AlreadyExists(
                maker.store.clone(),
            )));
        }
        let (session, credentials) = Session::create(
            &maker.store,
            &passphrase,
            &name,
            retention,
            maker.clock.clone(),
        )?;
        *lock(&maker.session) = Some(session);
        Ok(credentials)
    })
    .await;
    match made {
        Ok(Ok(credentials)) => {
            let answer = json!({
                "recovery": credentials.recovery.to_text().as_str(),
                "verification": credentials.verification_code().as_str(),
                "store": shared.store.display().to_string(),
            });
            axum::Json(answer).into_response()
        }
        Ok(Err(err)) => failure(&err),
        Err(_) => unprocessable("MedCrypt failed while creating the store", "try again"),
    }
}

async fn lock_store(State(shared): State<Arc<Shared>>) -> Response {
    let locking = shared.clone();
    // Waits for a request still running, on the blocking pool.
    let _ = tokio::task::spawn_blocking(move || lock(&locking.session).take()).await;
    axum::Json(json!({ "ok": true })).into_response()
}

async fn pairings(State(shared): State<Arc<Shared>>) -> Response {
    with_session(&shared, |session| match session.pairings() {
        Ok(list) => axum::Json(json!({
            "pairings": list.iter().map(|p| json!({
                "alias": p.alias,
                "safety_number": p.safety_number,
                "physician": p.role == crate::Role::Physician,
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(err) => failure(&err),
    })
    .await
}

/// Every MedCrypt message in a pasted text (a whole chat excerpt), each
/// opened with its verified sender, or its own error.
async fn decrypt(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let text = field(&body, "text");
    with_session(&shared, move |session| {
        let excerpt = crate::find_messages(&text);
        if excerpt.found.is_empty() {
            return unprocessable(
                "no MedCrypt message in this text",
                "copy the whole message from the chat: it starts with MEDCRYPT:",
            );
        }
        let results: Vec<Value> = excerpt
            .found
            .iter()
            .map(|found| match session.decrypt_text(&found.token, None) {
                Ok(opened) => json!({
                    "ok": true,
                    "from": sender(&opened.alias, &opened.peer_name),
                    "pairing": opened.alias,
                    "sender": format!("{:?}", opened.sender_role).to_lowercase(),
                    "text": opened.text.as_str(),
                    "read_before": opened.read_before,
                }),
                Err(err) => {
                    let mut answer = error_json(&err);
                    answer["ok"] = json!(false);
                    answer
                }
            })
            .collect();
        axum::Json(json!({ "messages": results })).into_response()
    })
    .await
}

async fn encrypt(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let to = field(&body, "to");
    let text = field(&body, "text");
    with_session(&shared, move |session| {
        match session.encrypt_text(&to, &text, false) {
            Ok(encrypted) => axum::Json(json!({ "wire": encrypted.wire })).into_response(),
            Err(err) => failure(&err),
        }
    })
    .await
}

async fn stop(State(shared): State<Arc<Shared>>) -> Response {
    // Locked first (after a request still running), then the server stops.
    let locking = shared.clone();
    let _ = tokio::task::spawn_blocking(move || lock(&locking.session).take()).await;
    shared.stop.send_replace(true);
    axum::Json(json!({ "ok": true, "message": "MedCrypt stopped. You can close this page." }))
        .into_response()
}

/// A patient pairs: a photo of the QR code (base64) or the typed code.
async fn pair(State(shared): State<Arc<Shared>>, axum::Json(body): axum::Json<Value>) -> Response {
    use crate::session::InviteSource;
    let alias = body
        .get("alias")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    let image = match body.get("image").and_then(Value::as_str) {
        Some(data) => {
            // A data URL from the page, or bare base64.
            let data = data.split_once(',').map_or(data, |(_, b)| b);
            match base64::engine::general_purpose::STANDARD.decode(data) {
                Ok(bytes) => Some(Zeroizing::new(bytes)),
                Err(_) => {
                    return unprocessable(
                        "the picture could not be read",
                        "choose the photo again",
                    );
                }
            }
        }
        None => None,
    };
    let code = field(&body, "code");
    with_session(&shared, move |session| {
        let source = match &image {
            Some(bytes) => InviteSource::QrImage(bytes),
            None if !code.trim().is_empty() => InviteSource::Code(&code),
            None => {
                return unprocessable(
                    "no QR code picture and no pairing code",
                    "take or choose a photo of the QR code, or type the code your physician shows",
                );
            }
        };
        match session.pair_accept(source, alias) {
            Ok(accepted) => axum::Json(json!({
                "alias": accepted.alias,
                "safety_number": accepted.safety.to_string(),
                "telegram_link": accepted.telegram_link,
                "whatsapp_link": accepted.whatsapp_link,
            }))
            .into_response(),
            Err(err) => failure(&err),
        }
    })
    .await
}

/// A physician makes an invitation: the QR code (SVG) to show, the typed
/// code and the safety number.
async fn invite(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let alias = field(&body, "patient").trim().to_owned();
    with_session(&shared, move |session| {
        let made = session.pair_new(&alias, crate::session::DEFAULT_INVITE_VALIDITY, |_| Ok(()));
        match made {
            Ok(pairing) => match crate::qr::render_svg(&pairing.uri) {
                Ok(svg) => axum::Json(json!({
                    "alias": pairing.alias,
                    "qr_svg": svg,
                    "code": pairing.code.as_str(),
                    "safety_number": pairing.safety.to_string(),
                    "expires": crate::format_utc(pairing.expires),
                }))
                .into_response(),
                Err(err) => failure(&SessionError::from(err)),
            },
            Err(err) => failure(&err),
        }
    })
    .await
}

/// Percent-encodes a file name for a header (RFC 5987).
fn header_name(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A decrypted file as a download the page saves: its name made safe as
/// the CLI does (no folders, no bidi or invisible characters), and who it
/// is verified to come from.
fn download(content: Vec<u8>, name: &str, from: &str) -> Response {
    let name = crate::protocol::attachment::sanitize_file_name(name);
    let disposition = format!(
        "attachment; filename=\"medcrypt-file\"; filename*=UTF-8''{}",
        header_name(&name)
    );
    let mut response = (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        content,
    )
        .into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-disposition", disposition),
        ("x-medcrypt-name", header_name(&name)),
        ("x-medcrypt-from", header_name(from)),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// The person's own name for an uploaded file (for messages), without
/// any folder or control character.
fn upload_name(given: Option<&str>, index: usize) -> String {
    let name: String = given
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("file-{index}.medcrypt")
    } else {
        name
    }
}

/// A multipart form as the page sends it: its files (at most 64, their
/// names made safe) and its text fields.
struct Upload {
    files: Vec<(String, Zeroizing<Vec<u8>>)>,
    fields: std::collections::HashMap<String, Zeroizing<String>>,
}

/// The page's multipart forms, read as one: a handler takes an `Upload`.
impl<S: Send + Sync> axum::extract::FromRequest<S> for Upload {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let form = axum::extract::Multipart::from_request(request, state)
            .await
            .map_err(|_| unprocessable("the files could not be received", "choose them again"))?;
        Self::read(form).await
    }
}

impl Upload {
    async fn read(mut form: axum::extract::Multipart) -> Result<Self, Response> {
        let mut upload = Self {
            files: Vec::new(),
            fields: std::collections::HashMap::new(),
        };
        loop {
            if upload.files.len() >= 64 {
                return Err(unprocessable(
                    "too many files at once (64 at most)",
                    "choose the file, or the parts of one file",
                ));
            }
            if upload.fields.len() >= 16 {
                return Err(unprocessable(
                    "this form has too many fields",
                    "reload the page and try again",
                ));
            }
            let field = match form.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(_) => {
                    return Err(unprocessable(
                        "the files could not be received",
                        "choose them again",
                    ));
                }
            };
            let file_name = field.file_name().map(str::to_owned);
            let name = field.name().unwrap_or_default().to_owned();
            let bytes = match field.bytes().await {
                Ok(bytes) => Zeroizing::new(bytes.to_vec()),
                Err(_) => {
                    return Err(unprocessable(
                        "the files are too large to open here (512 MB at most)",
                        "use the medcrypt command instead",
                    ));
                }
            };
            if file_name.is_some() {
                let safe = upload_name(file_name.as_deref(), upload.files.len());
                upload.files.push((safe, bytes));
            } else {
                let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
                upload.fields.insert(name, text);
            }
        }
        Ok(upload)
    }

    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", |v| v.as_str())
    }
}

/// Writes uploaded files into `folder` (a private temporary folder),
/// each under its own name.
fn write_uploads(
    session: &Session,
    folder: &std::path::Path,
    files: &[(String, Zeroizing<Vec<u8>>)],
) -> Result<Vec<PathBuf>, SessionError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let mut path = folder.join(name);
        if paths.contains(&path) {
            path = folder.join(format!("{i}-{name}"));
        }
        session.write_file(&path, bytes)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Decrypts dropped files (one file, or every part of one) in memory and
/// answers the content as a download. The encrypted uploads pass through
/// a private temporary folder beside the store (removed at once); no
/// plaintext is written anywhere.
async fn decrypt_file(State(shared): State<Arc<Shared>>, upload: Upload) -> Response {
    with_session(&shared, move |session| {
        if upload.files.is_empty() {
            return unprocessable("no file", "choose the .medcrypt file, or every part of it");
        }
        let mut folder_name = String::new();
        let mut attempt = || {
            // Only the encrypted uploads touch the disk; the plaintext
            // stays in memory.
            let folder = crate::session::TempFile::dir_beside(session, session.store().path())?;
            folder_name = format!("{}/", folder.path().display());
            let paths = write_uploads(session, folder.path(), &upload.files)?;
            session.decrypt_file_in_memory(&paths)
        };
        match attempt() {
            Ok((mut content, decrypted)) => {
                let from = sender(&decrypted.alias, &decrypted.peer_name);
                // Moved, not copied, into the answer.
                download(
                    std::mem::take(&mut *content),
                    &decrypted.metadata.name,
                    &from,
                )
            }
            Err(err) => {
                // Messages name the person's files, not the private folder.
                let mut answer = error_json(&err);
                for key in ["error", "hint"] {
                    if let Some(text) = answer[key].as_str() {
                        answer[key] = json!(text.replace(&folder_name, ""));
                    }
                }
                (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(answer)).into_response()
            }
        }
    })
    .await
}

//! A fake WhatsApp Cloud API on 127.0.0.1 (port 0), for the tests, the
//! benchmark and the walkthrough: `POST /{version}/{phone-number-id}/messages`
//! (text, document by id, template, read receipts), media upload
//! (multipart; `application/octet-stream` refused as Meta does), media
//! metadata and download (both with the bearer check), and signed webhook
//! delivery to the agent with Meta's habits: retries until a 200,
//! duplicates, status webhooks (sent, delivered, or failed). It keeps the
//! 24-hour window on a settable clock and injects faults (500, 130429,
//! 131056, 190, a lost answer). It records everything the agent sent, so a
//! test can check that only ciphertext and neutral text crossed it. Enabled
//! by the `fake-whatsapp` feature; it never leaves loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::agent::fake_server::FakeServer;

/// The API version in the fake's URLs.
pub const VERSION: &str = "v25.0";

/// Something the agent sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The user it went to (`to` or `recipient`); the message id for a read receipt.
    pub to: String,
    /// `text`, `document`, `template` or `read`.
    pub kind: String,
    /// The wamid the fake gave it (empty for a read receipt).
    pub wamid: String,
    /// Text of a message, the template's name, or the message marked read.
    pub text: Option<String>,
    /// File name, MIME type and bytes of a document.
    pub document: Option<(String, String, Vec<u8>)>,
}

/// Faults to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer this many sends with HTTP 500 (code 131000).
    pub fail_sends: u32,
    /// Answer this many sends with HTTP 429, code 130429.
    pub rate_limit_sends: u32,
    /// Answer this many sends with HTTP 400, code 131056 (pair rate).
    pub pair_rate_sends: u32,
    /// Accept this many sends, then lose the answer (a cut body).
    pub lose_answers: u32,
    /// Every request is refused with 190 (the token expired).
    pub token_expired: bool,
    /// Answer this many media downloads with HTTP 500.
    pub fail_downloads: u32,
    /// Hold every media download this long.
    pub download_delay: Duration,
    /// Deliver every webhook twice.
    pub duplicate_webhooks: bool,
    /// Send `sent` and `delivered` status webhooks for each accepted message.
    pub statuses: bool,
    /// Accept messages outside the window, then report them `failed`
    /// with 131047 by webhook (Meta does both).
    pub window_fails_later: bool,
}

#[derive(Default)]
struct Inner {
    token: String,
    app_secret: String,
    phone_number_id: String,
    webhook: Option<String>,
    clock_offset: i64,
    last_from_user: HashMap<String, i64>,
    sent: Vec<Sent>,
    media: HashMap<String, (Vec<u8>, String)>,
    next_id: u64,
    faults: Faults,
    requests: HashMap<String, u64>,
    deliveries: Vec<u16>,
}

struct Shared {
    inner: Mutex<Inner>,
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    addr: Mutex<Option<SocketAddr>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = self
            .runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(handle) = handle {
            handle.spawn(task);
        }
    }
}

/// A running fake Cloud API. Dropping it stops the server.
pub struct FakeWhatsApp {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl std::fmt::Debug for FakeWhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeWhatsApp")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"message": format!("(#{code}) {message}"), "type": "OAuthException",
            "code": code, "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AfakeTrace"}})
        .to_string(),
    )
        .into_response()
}

/// `None` when the bearer token is right, else the refusal.
fn refused(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let inner = shared.lock();
    let expected = format!("Bearer {}", inner.token);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if inner.faults.token_expired || given != Some(expected.as_str()) {
        return Some(graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Error validating access token: Session has expired",
        ));
    }
    None
}

/// `sha256=<hex HMAC-SHA256(app secret, body)>`.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl FakeWhatsApp {
    /// Starts the fake on 127.0.0.1 with a random free port, for `token`,
    /// webhooks signed with `app_secret`, and the business number
    /// `phone_number_id`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub fn start(token: &str, app_secret: &str, phone_number_id: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                token: token.to_owned(),
                app_secret: app_secret.to_owned(),
                phone_number_id: phone_number_id.to_owned(),
                next_id: 1,
                ..Inner::default()
            }),
            runtime: Mutex::new(None),
            addr: Mutex::new(None),
        });
        let app = Router::new()
            .route(&format!("/{VERSION}/{{pnid}}/messages"), post(messages))
            .route(&format!("/{VERSION}/{{pnid}}/media"), post(upload))
            .route(&format!("/{VERSION}/{{media}}"), get(media_url))
            .route("/download/{media}", get(download))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .with_state(shared.clone());
        let server = FakeServer::start(2, app)?;
        // Known only now, and needed only once a request arrives.
        *shared
            .addr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(server.addr());
        *shared
            .runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(server.handle().clone());
        Ok(Self { shared, server })
    }

    /// The base URL to put in `WHATSAPP_API_URL` (with the version).
    pub fn url(&self) -> String {
        format!("http://{}/{VERSION}", self.server.addr())
    }

    /// Where webhooks go: the agent's `…/webhook`.
    pub fn set_webhook(&self, url: &str) {
        self.shared.lock().webhook = Some(url.to_owned());
    }

    /// Sets the fake's clock (message timestamps, the 24-hour window).
    pub fn set_now(&self, now: chrono::DateTime<chrono::Utc>) {
        self.shared.lock().clock_offset = now.timestamp() - chrono::Utc::now().timestamp();
    }

    fn now(inner: &Inner) -> i64 {
        chrono::Utc::now().timestamp() + inner.clock_offset
    }

    /// Changes the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// Everything the agent sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.lock().sent.clone()
    }

    /// How many requests of a kind (`messages`, `upload`, `media`,
    /// `download`) arrived.
    pub fn requests(&self, kind: &str) -> u64 {
        self.shared.lock().requests.get(kind).copied().unwrap_or(0)
    }

    /// The HTTP status of every webhook delivery attempt so far (0: no
    /// connection).
    pub fn deliveries(&self) -> Vec<u16> {
        self.shared.lock().deliveries.clone()
    }

    fn next_id(inner: &mut Inner, prefix: &str) -> String {
        inner.next_id += 1;
        format!("{prefix}{}", inner.next_id)
    }

    /// The envelope of a webhook with one change `value`.
    fn envelope(value: Value) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA-1", "changes": [
            {"field": "messages", "value": value}]}]})
    }

    fn message_value(inner: &Inner, user: &str, message: Value) -> Value {
        json!({"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "34600000000", "phone_number_id": inner.phone_number_id},
            "contacts": [{"profile": {"name": "Maria Gonzalez"}, "wa_id": user}],
            "messages": [message]})
    }

    /// A user sends a message of `kind` with `fields`; returns its wamid.
    fn user_sends(&self, user: &str, kind: &str, fields: Value) -> String {
        let body = {
            let mut inner = self.shared.lock();
            let now = Self::now(&inner);
            inner.last_from_user.insert(user.to_owned(), now);
            let wamid = Self::next_id(&mut inner, "wamid.IN");
            let mut message =
                json!({"from": user, "id": wamid, "timestamp": now.to_string(), "type": kind});
            message[kind] = fields;
            let value = Self::message_value(&inner, user, message);
            (wamid, Self::envelope(value))
        };
        self.deliver(&body.1);
        body.0
    }

    /// A patient sends `text`; returns its wamid.
    pub fn user_sends_text(&self, user: &str, text: &str) -> String {
        self.user_sends(user, "text", json!({ "body": text }))
    }

    /// A patient sends a document (kept by the fake for download); returns
    /// its wamid.
    pub fn user_sends_document(
        &self,
        user: &str,
        filename: &str,
        mime: &str,
        bytes: &[u8],
        caption: Option<&str>,
    ) -> String {
        let media = {
            let mut inner = self.shared.lock();
            let id = Self::next_id(&mut inner, "7700");
            inner
                .media
                .insert(id.clone(), (bytes.to_vec(), mime.to_owned()));
            id
        };
        let mut document = json!({"filename": filename, "mime_type": mime, "id": media,
            "sha256": hex::encode(Sha256::digest(bytes))});
        if let Some(caption) = caption {
            document["caption"] = json!(caption);
        }
        self.user_sends(user, "document", document)
    }

    /// A patient sends a photo.
    pub fn user_sends_image(&self, user: &str) -> String {
        self.user_sends(
            user,
            "image",
            json!({"id": "55", "mime_type": "image/jpeg"}),
        )
    }

    /// Delivers a webhook body, signed, in the background: retried until
    /// the agent answers 200 (up to about a minute here; Meta goes on for
    /// 7 days), twice with `duplicate_webhooks`.
    pub fn deliver(&self, body: &Value) {
        let raw = body.to_string().replace('/', "\\/").into_bytes();
        self.deliver_raw(raw, None);
    }

    /// Delivers `raw` with `signature` (else the right one), once, and
    /// returns the HTTP status (for the tests of refusals).
    pub fn post_raw(&self, raw: &[u8], signature: Option<&str>) -> u16 {
        let (tx, rx) = std::sync::mpsc::channel();
        let (url, secret) = {
            let mut inner = self.shared.lock();
            // Whoever wrote, WhatsApp knows it: their window opens.
            let now = Self::now(&inner);
            if let Ok(value) = serde_json::from_slice::<Value>(raw) {
                for from in value
                    .pointer("/entry/0/changes/0/value/messages")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.get("from").and_then(Value::as_str))
                {
                    inner.last_from_user.insert(from.to_owned(), now);
                }
            }
            (
                inner.webhook.clone().unwrap_or_default(),
                inner.app_secret.clone(),
            )
        };
        let raw = raw.to_vec();
        let signature = signature.map(str::to_owned);
        self.shared.spawn(async move {
            let client = reqwest::Client::new();
            let mut request = client.post(url).body(raw.clone());
            match signature {
                // Given but empty: sent unsigned.
                Some(signature) if signature.is_empty() => {}
                Some(signature) => request = request.header("X-Hub-Signature-256", signature),
                None => request = request.header("X-Hub-Signature-256", sign(&secret, &raw)),
            }
            let status = request.send().await.map_or(0, |r| r.status().as_u16());
            let _ = tx.send(status);
        });
        rx.recv_timeout(Duration::from_secs(30)).unwrap_or(0)
    }

    fn deliver_raw(&self, raw: Vec<u8>, _key: Option<String>) {
        let shared = self.shared.clone();
        let times = if shared.lock().faults.duplicate_webhooks {
            2
        } else {
            1
        };
        self.shared.spawn(deliver_until_ok(shared, raw, times));
    }

    /// Status webhooks for `wamid`.
    fn statuses(shared: &Arc<Shared>, wamid: &str, to: &str, states: &[(&str, Option<i64>)]) {
        let bodies: Vec<Vec<u8>> = {
            let inner = shared.lock();
            let now = Self::now(&inner);
            states
                .iter()
                .map(|(state, error)| {
                    let mut status = json!({"id": wamid, "status": state, "timestamp": now.to_string(),
                        "recipient_id": to});
                    if let Some(code) = error {
                        status["errors"] = json!([{"code": code, "title": "Re-engagement message"}]);
                    }
                    let value = json!({"messaging_product": "whatsapp",
                        "metadata": {"phone_number_id": inner.phone_number_id}, "statuses": [status]});
                    Self::envelope(value).to_string().into_bytes()
                })
                .collect()
        };
        let shared2 = shared.clone();
        shared.spawn(async move {
            for body in bodies {
                deliver_until_ok(shared2.clone(), body, 1).await;
            }
        });
    }
}

async fn deliver_until_ok(shared: Arc<Shared>, raw: Vec<u8>, times: u32) {
    let client = reqwest::Client::new();
    for _ in 0..times {
        let mut wait = Duration::from_millis(100);
        for _ in 0..60 {
            let (url, secret) = {
                let inner = shared.lock();
                (inner.webhook.clone(), inner.app_secret.clone())
            };
            let Some(url) = url else {
                tokio::time::sleep(wait).await;
                continue;
            };
            let status = client
                .post(url)
                .header("Content-Type", "application/json")
                .header("X-Hub-Signature-256", sign(&secret, &raw))
                .body(raw.clone())
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            shared.lock().deliveries.push(status);
            if status == 200 {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

fn count(shared: &Shared, kind: &str) {
    *shared.lock().requests.entry(kind.to_owned()).or_default() += 1;
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(pnid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count(&shared, "messages");
    if let Some(refused) = refused(&shared, &headers) {
        return refused;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Invalid parameter");
    };
    let mut inner = shared.lock();
    if pnid != inner.phone_number_id {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Unsupported post request");
    }
    if request.get("status").and_then(Value::as_str) == Some("read") {
        let id = request
            .get("message_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        inner.sent.push(Sent {
            to: String::new(),
            kind: "read".into(),
            wamid: String::new(),
            text: Some(id.to_owned()),
            document: None,
        });
        return json_response(json!({"success": true}));
    }
    let to = request
        .get("to")
        .or_else(|| request.get("recipient"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = request
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if inner.faults.pair_rate_sends > 0 {
        inner.faults.pair_rate_sends -= 1;
        return graph_error(
            StatusCode::BAD_REQUEST,
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
        );
    }
    if inner.faults.rate_limit_sends > 0 {
        inner.faults.rate_limit_sends -= 1;
        return graph_error(StatusCode::TOO_MANY_REQUESTS, 130429, "Rate limit hit");
    }
    if inner.faults.fail_sends > 0 {
        inner.faults.fail_sends -= 1;
        return graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            131000,
            "Something went wrong",
        );
    }
    let now = FakeWhatsApp::now(&inner);
    let outside = kind != "template"
        && inner
            .last_from_user
            .get(&to)
            .is_none_or(|last| now - last > 24 * 3600);
    if outside && !inner.faults.window_fails_later {
        return graph_error(
            StatusCode::BAD_REQUEST,
            131047,
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        );
    }
    let text = match kind.as_str() {
        "text" => request
            .pointer("/text/body")
            .and_then(Value::as_str)
            .map(str::to_owned),
        "template" => request
            .pointer("/template/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    };
    let document = if kind == "document" {
        let id = request
            .pointer("/document/id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some((bytes, mime)) = inner.media.get(id).cloned() else {
            return graph_error(StatusCode::BAD_REQUEST, 100, "Invalid media id");
        };
        let name = request
            .pointer("/document/filename")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Some((name.to_owned(), mime, bytes))
    } else {
        None
    };
    let wamid = FakeWhatsApp::next_id(&mut inner, "wamid.OUT");
    inner.sent.push(Sent {
        to: to.clone(),
        kind,
        wamid: wamid.clone(),
        text,
        document,
    });
    let lose = inner.faults.lose_answers > 0;
    if lose {
        inner.faults.lose_answers -= 1;
    }
    let statuses = inner.faults.statuses;
    drop(inner);
    if outside {
        FakeWhatsApp::statuses(&shared, &wamid, &to, &[("failed", Some(131047))]);
    } else if statuses {
        FakeWhatsApp::statuses(&shared, &wamid, &to, &[("sent", None), ("delivered", None)]);
    }
    if lose {
        return (StatusCode::OK, "{\"messaging_product\":\"wha").into_response();
    }
    json_response(
        json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": wamid, "message_status": "accepted"}]}),
    )
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn upload(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    count(&shared, "upload");
    if let Some(refused) = refused(&shared, request.headers()) {
        return refused;
    }
    let Ok(mut form) = Multipart::from_request(request, &()).await else {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Param file must be a file");
    };
    let (mut declared, mut file, mut product) = (None, None, None);
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let content_type = field.content_type().map(str::to_owned);
        let Ok(data) = field.bytes().await else {
            return graph_error(StatusCode::BAD_REQUEST, 100, "Invalid upload");
        };
        match name.as_str() {
            "type" => declared = Some(String::from_utf8_lossy(&data).into_owned()),
            "messaging_product" => product = Some(String::from_utf8_lossy(&data).into_owned()),
            "file" => file = Some((data.to_vec(), content_type.unwrap_or_default())),
            _ => {}
        }
    }
    let (Some((bytes, content_type)), Some("whatsapp")) = (file, product.as_deref()) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "The parameter messaging_product and file are required",
        );
    };
    let mime = declared.unwrap_or(content_type.clone());
    if mime == "application/octet-stream" || content_type == "application/octet-stream" {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Param file must be a file with one of the following types: ... text/plain ... Received file of type 'application/octet-stream'.",
        );
    }
    // Meta looks at the content, not only the label.
    if mime == "text/plain"
        && !bytes
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return graph_error(
            StatusCode::BAD_REQUEST,
            131053,
            "Media upload error: the file is not text/plain",
        );
    }
    let mut inner = shared.lock();
    let id = FakeWhatsApp::next_id(&mut inner, "9900");
    inner.media.insert(id.clone(), (bytes, mime));
    json_response(json!({ "id": id }))
}

async fn media_url(
    State(shared): State<Arc<Shared>>,
    Path(media): Path<String>,
    headers: HeaderMap,
) -> Response {
    count(&shared, "media");
    if let Some(refused) = refused(&shared, &headers) {
        return refused;
    }
    let inner = shared.lock();
    let Some((bytes, mime)) = inner.media.get(&media) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Unsupported get request. Object does not exist",
        );
    };
    let addr = shared
        .addr
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    json_response(json!({"messaging_product": "whatsapp",
        "url": format!("http://{addr}/download/{media}?ext=1&hash=ATfake"),
        "mime_type": mime, "sha256": hex::encode(Sha256::digest(bytes)),
        "file_size": bytes.len().to_string(), "id": media}))
}

async fn download(
    State(shared): State<Arc<Shared>>,
    Path(media): Path<String>,
    headers: HeaderMap,
) -> Response {
    count(&shared, "download");
    if let Some(refused) = refused(&shared, &headers) {
        return refused;
    }
    let delay = shared.lock().faults.download_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut inner = shared.lock();
    if inner.faults.fail_downloads > 0 {
        inner.faults.fail_downloads -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    match inner.media.get(&media) {
        Some((bytes, mime)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

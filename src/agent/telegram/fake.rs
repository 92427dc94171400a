//! A fake Telegram Bot API on 127.0.0.1 (port 0), for the tests and the
//! walkthrough: getMe, getUpdates (offset and long-poll timeout), sendMessage,
//! sendDocument (multipart), getFile, file download and deleteMessage, with
//! fault injection (500s, 429 with `retry_after`, slow answers, duplicated
//! updates). It records everything the bot sent, so a test can check that
//! only ciphertext crossed it. Enabled by the `fake-telegram` feature; it
//! never touches the network beyond loopback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::agent::fake_server::FakeServer;

/// Something the bot sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The chat.
    pub chat_id: i64,
    /// The message id the fake gave it.
    pub message_id: i64,
    /// Text of a message.
    pub text: Option<String>,
    /// Name and bytes of a document.
    pub document: Option<(String, Vec<u8>)>,
}

/// Faults to inject into the next requests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer this many send requests with HTTP 500.
    pub fail_sends: u32,
    /// Answer this many send requests with 429 and this `retry_after`.
    pub rate_limit_sends: u32,
    /// The `retry_after` of those 429s, in seconds.
    pub retry_after: u32,
    /// Delay every answer by this much.
    pub delay: Duration,
    /// Deliver every update twice in one getUpdates answer.
    pub duplicate_updates: bool,
    /// The HTTP `Date` of every answer (else the real time).
    pub server_date: Option<chrono::DateTime<chrono::Utc>>,
    /// Answer this many file downloads with HTTP 500.
    pub fail_downloads: u32,
    /// Deliver this many sends, then lose the answer (an unreadable body,
    /// as when a connection breaks after the request was processed).
    pub lose_answers: u32,
}

#[derive(Default)]
struct Inner {
    token: String,
    username: String,
    updates: Vec<(i64, Value)>,
    next_update_id: i64,
    next_message_id: i64,
    sent: Vec<Sent>,
    deleted: Vec<(i64, i64)>,
    files: HashMap<String, Vec<u8>>,
    faults: Faults,
    requests: HashMap<String, u64>,
}

struct Shared {
    inner: Mutex<Inner>,
    new_update: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake Bot API. Dropping it stops the server.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl std::fmt::Debug for FakeTelegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTelegram")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Sets the `Date` of an answer to the configured server time.
async fn stamp_date(State(shared): State<Arc<Shared>>, mut response: Response) -> Response {
    let date = shared.lock().faults.server_date;
    if let Some(date) = date
        && let Ok(value) =
            header::HeaderValue::from_str(&date.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

fn user(chat_id: i64) -> Value {
    json!({ "id": chat_id, "is_bot": false, "first_name": "Patient" })
}

fn chat(chat_id: i64) -> Value {
    json!({ "id": chat_id, "type": "private", "first_name": "Patient" })
}

impl FakeTelegram {
    /// Starts the fake on 127.0.0.1 with a random free port, for `token`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub fn start(token: &str, username: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                token: token.to_owned(),
                username: username.to_owned(),
                next_update_id: 1000,
                next_message_id: 1,
                ..Inner::default()
            }),
            new_update: Notify::new(),
        });
        let app = Router::new()
            .route("/file/{bot}/{*path}", get(download))
            .route("/{bot}/{method}", any(method))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(axum::middleware::map_response_with_state(
                shared.clone(),
                stamp_date,
            ))
            .with_state(shared.clone());
        Ok(Self {
            server: FakeServer::start(1, app)?,
            shared,
        })
    }

    /// The base URL to put in `TELOXIDE_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// A patient (chat `chat_id`) sends `text`; returns the update id.
    pub fn user_sends_text(&self, chat_id: i64, text: &str) -> i64 {
        self.push_message(chat_id, |m| {
            m["text"] = json!(text);
        })
    }

    /// A patient sends a document; returns the update id.
    pub fn user_sends_document(&self, chat_id: i64, file_name: &str, bytes: &[u8]) -> i64 {
        self.push_document(chat_id, file_name, bytes, None)
    }

    /// A patient sends a document with a caption; returns the update id.
    pub fn user_sends_document_with_caption(
        &self,
        chat_id: i64,
        file_name: &str,
        bytes: &[u8],
        caption: &str,
    ) -> i64 {
        self.push_document(chat_id, file_name, bytes, Some(caption))
    }

    fn push_document(
        &self,
        chat_id: i64,
        file_name: &str,
        bytes: &[u8],
        caption: Option<&str>,
    ) -> i64 {
        let file_id = {
            let mut inner = self.shared.lock();
            let id = format!("F{}", inner.files.len() + 1);
            inner.files.insert(id.clone(), bytes.to_vec());
            id
        };
        let size = bytes.len();
        self.push_message(chat_id, |m| {
            m["document"] = json!({
                "file_id": file_id, "file_unique_id": format!("U{file_id}"),
                "file_size": size, "file_name": file_name,
            });
            if let Some(caption) = caption {
                m["caption"] = json!(caption);
            }
        })
    }

    /// A patient sends a photo (never ciphertext); returns the update id.
    pub fn user_sends_photo(&self, chat_id: i64) -> i64 {
        self.push_message(chat_id, |m| {
            m["photo"] = json!([{
                "file_id": "P1", "file_unique_id": "PU1", "width": 90, "height": 90, "file_size": 1000,
            }]);
        })
    }

    /// A patient edits an earlier message to `text`; returns the update id.
    pub fn user_edits_message(&self, chat_id: i64, text: &str) -> i64 {
        self.push_update(chat_id, "edited_message", |m| {
            m["text"] = json!(text);
            m["edit_date"] = json!(now_unix());
        })
    }

    fn push_message(&self, chat_id: i64, fill: impl FnOnce(&mut Value)) -> i64 {
        self.push_update(chat_id, "message", fill)
    }

    fn push_update(&self, chat_id: i64, kind: &str, fill: impl FnOnce(&mut Value)) -> i64 {
        let mut inner = self.shared.lock();
        let update_id = inner.next_update_id;
        inner.next_update_id += 1;
        let message_id = inner.next_message_id;
        inner.next_message_id += 1;
        let mut message = json!({
            "message_id": message_id, "date": now_unix(),
            "chat": chat(chat_id), "from": user(chat_id),
        });
        fill(&mut message);
        inner
            .updates
            .push((update_id, json!({ "update_id": update_id, kind: message })));
        drop(inner);
        self.shared.new_update.notify_waiters();
        update_id
    }

    /// Everything the bot sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.lock().sent.clone()
    }

    /// Messages the bot deleted: (chat, message id).
    pub fn deleted(&self) -> Vec<(i64, i64)> {
        self.shared.lock().deleted.clone()
    }

    /// Updates not yet confirmed by an offset.
    pub fn unconfirmed_updates(&self) -> usize {
        self.shared.lock().updates.len()
    }

    /// How many times a method was called (name in any case).
    pub fn requests(&self, method: &str) -> u64 {
        self.shared
            .lock()
            .requests
            .get(&method.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Sets the faults to inject.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }
}

fn ok(result: Value) -> Response {
    axum::Json(json!({ "ok": true, "result": result })).into_response()
}

fn api_error(code: u16, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({ "ok": false, "error_code": code, "description": description });
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// Parameters of a request, from JSON, a form, or multipart (files apart).
async fn params(request: Request) -> (HashMap<String, Value>, Option<(String, Vec<u8>)>) {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let query: HashMap<String, Value> = request
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        let mut fields = query;
        let mut file = None;
        if let Ok(mut multipart) = Multipart::from_request(request, &()).await {
            while let Ok(Some(field)) = multipart.next_field().await {
                let name = field.name().unwrap_or_default().to_owned();
                let file_name = field.file_name().map(str::to_owned);
                let Ok(data) = field.bytes().await else { break };
                match file_name {
                    Some(file_name) => file = Some((file_name, data.to_vec())),
                    None => {
                        let text = String::from_utf8_lossy(&data).into_owned();
                        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                        fields.insert(name, value);
                    }
                }
            }
        }
        return (fields, file);
    }
    let body = Bytes::from_request(request, &()).await.unwrap_or_default();
    let mut fields = query;
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
        fields.extend(map);
    }
    (fields, None)
}

fn int(fields: &HashMap<String, Value>, key: &str) -> i64 {
    match fields.get(key) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

async fn method(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    // Like the real Bot API, method names are case-insensitive.
    let method = method.to_ascii_lowercase();
    let (token_ok, delay) = {
        let mut inner = shared.lock();
        *inner.requests.entry(method.clone()).or_default() += 1;
        (bot == format!("bot{}", inner.token), inner.faults.delay)
    };
    if !token_ok {
        return api_error(401, "Unauthorized", None);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (fields, file) = params(request).await;
    match method.as_str() {
        "getme" => {
            let username = shared.lock().username.clone();
            ok(json!({
                "id": 4242, "is_bot": true, "first_name": "Clinic", "username": username,
                "can_join_groups": false, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "has_main_web_app": false,
            }))
        }
        "getupdates" => get_updates(&shared, &fields).await,
        "sendmessage" | "senddocument" => {
            let mut inner = shared.lock();
            if inner.faults.rate_limit_sends > 0 {
                inner.faults.rate_limit_sends -= 1;
                let after = inner.faults.retry_after;
                return api_error(
                    429,
                    &format!("Too Many Requests: retry after {after}"),
                    Some(json!({ "retry_after": after })),
                );
            }
            if inner.faults.fail_sends > 0 {
                inner.faults.fail_sends -= 1;
                return api_error(500, "Internal Server Error", None);
            }
            let chat_id = int(&fields, "chat_id");
            let message_id = inner.next_message_id;
            inner.next_message_id += 1;
            let mut message =
                json!({ "message_id": message_id, "date": now_unix(), "chat": chat(chat_id) });
            let mut sent = Sent {
                chat_id,
                message_id,
                text: None,
                document: None,
            };
            if method == "sendmessage" {
                let text = fields
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                message["text"] = json!(text);
                sent.text = Some(text);
            } else {
                let (name, bytes) = file.unwrap_or_default();
                message["document"] = json!({
                    "file_id": format!("S{message_id}"), "file_unique_id": format!("SU{message_id}"),
                    "file_size": bytes.len(), "file_name": name,
                });
                sent.document = Some((name, bytes));
            }
            inner.sent.push(sent);
            if inner.faults.lose_answers > 0 {
                inner.faults.lose_answers -= 1;
                return (StatusCode::OK, "{\"ok\":tr").into_response();
            }
            ok(message)
        }
        "getfile" => {
            let file_id = fields
                .get("file_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let inner = shared.lock();
            match inner.files.get(&file_id) {
                Some(bytes) => ok(json!({
                    "file_id": file_id, "file_unique_id": format!("U{file_id}"),
                    "file_size": bytes.len(), "file_path": format!("documents/{file_id}"),
                })),
                None => api_error(400, "Bad Request: invalid file_id", None),
            }
        }
        "deletemessage" => {
            let entry = (int(&fields, "chat_id"), int(&fields, "message_id"));
            shared.lock().deleted.push(entry);
            ok(json!(true))
        }
        _ => api_error(404, "Not Found: method not faked", None),
    }
}

async fn get_updates(shared: &Shared, fields: &HashMap<String, Value>) -> Response {
    let offset = int(fields, "offset");
    let timeout = Duration::from_secs(u64::try_from(int(fields, "timeout")).unwrap_or(0).min(50));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.new_update.notified();
        {
            let mut inner = shared.lock();
            // An offset confirms every earlier update.
            inner.updates.retain(|(id, _)| *id >= offset);
            if !inner.updates.is_empty() {
                let mut result: Vec<Value> = inner
                    .updates
                    .iter()
                    .take(100)
                    .map(|(_, u)| u.clone())
                    .collect();
                if inner.faults.duplicate_updates {
                    result = result.into_iter().flat_map(|u| [u.clone(), u]).collect();
                }
                return ok(Value::Array(result));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ok(json!([]));
        }
    }
}

async fn download(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    let mut inner = shared.lock();
    if bot != format!("bot{}", inner.token) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if inner.faults.fail_downloads > 0 {
        inner.faults.fail_downloads -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let file_id = path.rsplit('/').next().unwrap_or_default();
    match inner.files.get(file_id) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

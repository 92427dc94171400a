//! A small client of the Cloud API (Graph API) with a configurable base
//! URL: messages (text, document by media id, template), read receipts,
//! media upload, and the two authenticated steps of a media download.
//!
//! Errors are classified by what they mean for "at most once": a
//! connection never made sent nothing ([`SendError::Unreachable`]); a
//! request that left and whose answer was lost may have been delivered
//! ([`SendError::Lost`]); Graph's own refusals carry `error.code`
//! ([`SendError::Api`]), which is what the agent decides on — real
//! responses do not always follow Meta's table of HTTP statuses.

use std::time::Duration;

use serde_json::{Value, json};
use zeroize::Zeroizing;

/// What a request to the Cloud API came to, when not a success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: nothing was sent.
    #[error("WhatsApp could not be reached ({0}); nothing was sent")]
    Unreachable(String),
    /// The request may have reached WhatsApp, but its answer was lost.
    #[error("the answer from WhatsApp was lost ({0})")]
    Lost(String),
    /// Graph refused, with its error code (`0` when the body had none).
    #[error("WhatsApp refused (HTTP {http}, error {code}): {detail}")]
    Api {
        /// The HTTP status.
        http: u16,
        /// `error.code`.
        code: i64,
        /// `error.error_data.details`, else `error.message`.
        detail: String,
    },
}

impl SendError {
    /// Graph's error code, if Graph answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Error codes that mean the access token (or the app's permission) is no
/// longer good: stop sending and tell the physician. Only codes Graph
/// names: an answer without one (`0`: an HTML 502 from an edge, a media
/// URL's 404) is not a refused token.
pub fn is_auth_error(code: i64) -> bool {
    matches!(code, 3 | 10 | 190 | 200..=299 | 368 | 131031)
}

/// Error codes (and HTTP statuses) worth retrying later with backoff.
pub fn is_transient(err: &SendError) -> bool {
    match err {
        SendError::Api { http, code, .. } => {
            *http >= 500 || matches!(code, 2 | 4 | 80007 | 130429 | 131000 | 131016 | 131057)
        }
        _ => false,
    }
}

/// The re-engagement error: outside the 24-hour window.
pub const OUTSIDE_WINDOW: i64 = 131047;
/// The pair rate limit: too many messages to the same user.
pub const PAIR_RATE: i64 = 131056;
/// The throughput limit of the business number.
pub const RATE_LIMIT: i64 = 130429;
/// The message could not be delivered (not on WhatsApp, old client…).
pub const UNDELIVERABLE: i64 = 131026;

/// The client. `Debug` never shows the token.
#[derive(Clone)]
pub struct Graph {
    client: reqwest::Client,
    base: String,
    token: std::sync::Arc<Zeroizing<String>>,
    phone_number_id: String,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("base", &self.base)
            .field("token", &"[REDACTED]")
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}

/// The address of a user: a phone number (`wa_id`, digits) goes in `to`,
/// a business-scoped user id in `recipient`.
fn address(user: &str) -> (&'static str, &str) {
    if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) {
        ("to", user)
    } else {
        ("recipient", user)
    }
}

fn classify(err: &reqwest::Error) -> SendError {
    let text = err.without_url_ref();
    if err.is_connect() || err.is_builder() {
        SendError::Unreachable(text)
    } else {
        SendError::Lost(text)
    }
}

/// `reqwest::Error` without the URL (the media URL carries a signature).
trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "…");
        }
        text
    }
}

impl Graph {
    /// A client of `base` (the Graph base URL with its version) for
    /// `phone_number_id`, with `token` as bearer.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(
        base: &str,
        token: Zeroizing<String>,
        phone_number_id: &str,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("medcrypt/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token: std::sync::Arc::new(token),
            phone_number_id: phone_number_id.to_owned(),
        })
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token.as_str())
    }

    /// Reads a Graph answer: JSON on success, [`SendError::Api`] otherwise.
    async fn answer(response: reqwest::Response) -> Result<Value, SendError> {
        let http = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| SendError::Lost(e.without_url_ref()))?;
        let value: Option<Value> = serde_json::from_slice(&body).ok();
        if (200..300).contains(&http) {
            return value.ok_or_else(|| SendError::Lost("an unreadable answer".to_owned()));
        }
        let error = value.as_ref().and_then(|v| v.get("error"));
        let code = error
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let detail = error
            .and_then(|e| {
                e.get("error_data")
                    .and_then(|d| d.get("details"))
                    .or_else(|| e.get("message"))
            })
            .and_then(Value::as_str)
            .unwrap_or("no details")
            .chars()
            .take(300)
            .collect();
        Err(SendError::Api { http, code, detail })
    }

    /// `POST {base}/{phone-number-id}/messages`; the new message's wamid.
    async fn post_message(&self, body: Value) -> Result<String, SendError> {
        let response = self
            .client
            .post(format!("{}/{}/messages", self.base, self.phone_number_id))
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .json(&body)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let value = Self::answer(response).await?;
        value
            .get("messages")
            .and_then(|m| m.get(0))
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SendError::Lost("an answer without a message id".to_owned()))
    }

    fn envelope(user: &str, kind: &str) -> Value {
        let (field, value) = address(user);
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "type": kind,
        });
        body[field] = Value::String(value.to_owned());
        body
    }

    /// Sends text (never previewed: nothing in it is a link to follow).
    ///
    /// # Errors
    /// [`SendError`].
    pub async fn send_text(&self, user: &str, text: &str) -> Result<String, SendError> {
        let mut body = Self::envelope(user, "text");
        body["text"] = json!({ "preview_url": false, "body": text });
        self.post_message(body).await
    }

    /// Sends an uploaded document by its media id.
    ///
    /// # Errors
    /// [`SendError`].
    pub async fn send_document(
        &self,
        user: &str,
        media_id: &str,
        filename: &str,
    ) -> Result<String, SendError> {
        let mut body = Self::envelope(user, "document");
        body["document"] = json!({ "id": media_id, "filename": filename });
        self.post_message(body).await
    }

    /// Sends an approved template without parameters (its text is neutral).
    ///
    /// # Errors
    /// [`SendError`].
    pub async fn send_template(
        &self,
        user: &str,
        name: &str,
        language: &str,
    ) -> Result<String, SendError> {
        let mut body = Self::envelope(user, "template");
        body["template"] = json!({ "name": name, "language": { "code": language } });
        self.post_message(body).await
    }

    /// Marks a received message read: the patient sees the read ticks, the
    /// neutral receipt on WhatsApp (no message, no pair-rate cost).
    ///
    /// # Errors
    /// [`SendError`].
    pub async fn mark_read(&self, wamid: &str) -> Result<(), SendError> {
        let response = self
            .client
            .post(format!("{}/{}/messages", self.base, self.phone_number_id))
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .json(
                &json!({ "messaging_product": "whatsapp", "status": "read", "message_id": wamid }),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Self::answer(response).await.map(|_| ())
    }

    /// Uploads a file (multipart: `file`, `type`, `messaging_product`);
    /// its media id.
    ///
    /// # Errors
    /// [`SendError`] (an upload messages no one: any failure may be retried).
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        filename: &str,
        mime: &str,
    ) -> Result<String, SendError> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_owned())
            .mime_str(mime)
            .map_err(|e| SendError::Unreachable(e.to_string()))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime.to_owned())
            .part("file", part);
        let response = self
            .client
            .post(format!("{}/{}/media", self.base, self.phone_number_id))
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .multipart(form)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let value = Self::answer(response).await?;
        value
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SendError::Lost("an upload answer without an id".to_owned()))
    }

    /// Downloads a user's media: `GET {base}/{media-id}` gives a
    /// short-lived URL, which is fetched with the same bearer token. At most
    /// `limit` bytes are read.
    ///
    /// # Errors
    /// [`SendError`] (a download changes nothing: any failure may be retried).
    pub async fn download(&self, media_id: &str, limit: u64) -> Result<Vec<u8>, SendError> {
        if media_id.is_empty()
            || !media_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        {
            return Err(SendError::Api {
                http: 0,
                code: 100,
                detail: "not a media id".to_owned(),
            });
        }
        let response = self
            .client
            .get(format!("{}/{media_id}", self.base))
            .query(&[("phone_number_id", self.phone_number_id.as_str())])
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let meta = Self::answer(response).await?;
        let url = meta
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| SendError::Lost("media metadata without a URL".to_owned()))?;
        let declared = match meta.get("file_size") {
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        if declared.is_some_and(|size| size > limit) {
            return Err(SendError::Api {
                http: 0,
                code: 131052,
                detail: "the file is larger than the agent accepts".to_owned(),
            });
        }
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        if !response.status().is_success() {
            return Err(SendError::Api {
                http: response.status().as_u16(),
                code: 0,
                detail: "the media URL refused the download".to_owned(),
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SendError::Lost(e.without_url_ref()))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(SendError::Api {
                    http: 0,
                    code: 131052,
                    detail: "the file is larger than the agent accepts".to_owned(),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_go_in_to_and_user_ids_in_recipient() {
        assert_eq!(address("16505551234"), ("to", "16505551234"));
        assert_eq!(
            address("US.13491208655302741918"),
            ("recipient", "US.13491208655302741918")
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let graph = Graph::new(
            "http://127.0.0.1:9",
            Zeroizing::new("EAAG-SECRET".into()),
            "1",
        )
        .unwrap_or_else(|_| unreachable!());
        assert!(!format!("{graph:?}").contains("EAAG-SECRET"));
    }

    #[test]
    fn errors_are_classified_by_code() {
        let api = |http, code| SendError::Api {
            http,
            code,
            detail: String::new(),
        };
        assert!(is_transient(&api(500, 0)));
        assert!(is_transient(&api(400, RATE_LIMIT)));
        assert!(!is_transient(&api(400, UNDELIVERABLE)));
        assert!(is_auth_error(190));
        assert!(
            !is_auth_error(0),
            "an answer without a code is not a refused token"
        );
        assert!(!is_auth_error(OUTSIDE_WINDOW));
    }
}

//! The webhook's inputs, pure: the GET verification handshake, the
//! `X-Hub-Signature-256` check over the raw body, and the events a POST
//! carries (every `entry[]`, `changes[]`, `messages[]` and `statuses[]`).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Why a POST is refused before anything in it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header (answer 401).
    #[error("the request is not signed")]
    Missing,
    /// A header that is not `sha256=` and 64 hex digits, or a signature
    /// that does not verify (answer 403).
    #[error("the request's signature does not verify")]
    Invalid,
}

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`
/// over the raw bytes as received (Meta escapes non-ASCII, `/` and `@`, so
/// re-serialised JSON would never match), in constant time.
///
/// # Errors
/// [`SignatureError`].
pub fn verify_signature(
    app_secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if app_secret.is_empty() {
        // Anyone can compute an HMAC under an empty key.
        return Err(SignatureError::Invalid);
    }
    let hex_digest = header
        .trim()
        .strip_prefix("sha256=")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(SignatureError::Invalid)?;
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Invalid)?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(app_secret).map_err(|_| SignatureError::Invalid)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Invalid)
}

/// The GET verification handshake: `hub.mode=subscribe` and the right
/// `hub.verify_token` (compared in constant time) give the bare
/// `hub.challenge` to answer with 200; anything else `None` (answer 403).
pub fn handshake(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    verify_token: &str,
) -> Option<String> {
    let token = token?;
    let same = token.len() == verify_token.len()
        && token
            .bytes()
            .zip(verify_token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    let challenge = challenge.filter(|c| !c.is_empty() && c.len() <= 512)?;
    (mode == Some("subscribe") && same && !verify_token.is_empty()).then(|| challenge.to_owned())
}

/// What an inbound message carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Content {
    /// `type: text`.
    Text(String),
    /// `type: document`: fetched by media id (two authenticated steps).
    Document {
        /// The media id.
        media_id: String,
        /// The file name the sender's app gave, if any.
        filename: Option<String>,
        /// The MIME type WhatsApp reported.
        mime_type: Option<String>,
        /// A caption (plaintext) written with it.
        caption: Option<String>,
    },
    /// Anything else (image, audio, sticker, reaction, unsupported…):
    /// never ciphertext.
    Other(String),
}

/// One event of a webhook POST.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// A message from a user.
    Message {
        /// The business number it was sent to (`metadata.phone_number_id`).
        phone_number_id: String,
        /// `wamid.…`: what duplicates are recognised by.
        id: String,
        /// The sender's stable id: `contacts[].user_id` where present, else
        /// `wa_id` / `from` — never a display name.
        user: String,
        /// Unix seconds.
        timestamp: i64,
        /// What it carries.
        content: Content,
    },
    /// What became of a message the business sent.
    Status {
        /// The `wamid` of the message sent.
        id: String,
        /// `sent`, `delivered`, `read`, `failed`, …
        status: String,
        /// Unix seconds.
        timestamp: i64,
        /// Error codes of a `failed` status (131047 outside the window…).
        errors: Vec<i64>,
    },
}

impl Event {
    /// What duplicates of this event are recognised by: a message's
    /// `wamid`; a status's wamid and state.
    pub fn key(&self) -> String {
        match self {
            Self::Message { id, .. } => id.clone(),
            Self::Status { id, status, .. } => format!("status:{id}:{status}"),
        }
    }
}

/// Why a signed POST could not be read (answer 200 all the same: a retry
/// would not make it readable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable webhook payload: {0}")]
pub struct PayloadError(pub &'static str);

fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

fn seconds(value: &Value) -> i64 {
    // Meta sends timestamps as strings of Unix seconds.
    match value.get("timestamp") {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn list<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Reads every event of a (verified) webhook body.
///
/// # Errors
/// [`PayloadError`] when the body is not the Cloud API's envelope.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, PayloadError> {
    let root: Value = serde_json::from_slice(body).map_err(|_| PayloadError("not JSON"))?;
    if text(&root, "object") != Some("whatsapp_business_account") {
        return Err(PayloadError("not a WhatsApp Business Account event"));
    }
    let mut events = Vec::new();
    for entry in list(&root, "entry") {
        for change in list(entry, "changes") {
            let Some(value) = change.get("value") else {
                continue;
            };
            let phone_number_id = value
                .get("metadata")
                .and_then(|m| text(m, "phone_number_id"))
                .unwrap_or_default()
                .to_owned();
            let contacts = list(value, "contacts");
            for message in list(value, "messages") {
                let Some(id) = text(message, "id") else {
                    continue;
                };
                let from = text(message, "from").unwrap_or_default();
                // The contact of this sender: its business-scoped user id
                // is stable even when the phone number is hidden.
                let user = contacts
                    .iter()
                    .find(|c| match text(c, "wa_id") {
                        Some(wa_id) => wa_id == from,
                        // With usernames on, no wa_id: the one contact of
                        // this value is the sender.
                        None => contacts.len() == 1,
                    })
                    .and_then(|c| text(c, "user_id"))
                    .or_else(|| text(message, "from_user_id"))
                    .unwrap_or(from);
                if user.is_empty() {
                    continue;
                }
                let kind = text(message, "type").unwrap_or_default();
                let content = match kind {
                    "text" => Content::Text(
                        message
                            .get("text")
                            .and_then(|t| text(t, "body"))
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    "document" => {
                        let document = message.get("document").unwrap_or(&Value::Null);
                        match text(document, "id") {
                            Some(media_id) => Content::Document {
                                media_id: media_id.to_owned(),
                                filename: text(document, "filename").map(str::to_owned),
                                mime_type: text(document, "mime_type").map(str::to_owned),
                                caption: text(document, "caption").map(str::to_owned),
                            },
                            None => Content::Other("document".into()),
                        }
                    }
                    other => Content::Other(other.to_owned()),
                };
                events.push(Event::Message {
                    phone_number_id: phone_number_id.clone(),
                    id: id.to_owned(),
                    user: user.to_owned(),
                    timestamp: seconds(message),
                    content,
                });
            }
            for status in list(value, "statuses") {
                let (Some(id), Some(state)) = (text(status, "id"), text(status, "status")) else {
                    continue;
                };
                events.push(Event::Status {
                    id: id.to_owned(),
                    status: state.to_owned(),
                    timestamp: seconds(status),
                    errors: list(status, "errors")
                        .iter()
                        .filter_map(|e| e.get("code").and_then(Value::as_i64))
                        .collect(),
                });
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn the_signature_is_over_the_raw_bytes_as_received() {
        // Meta escapes non-ASCII, `/` and `@`: the raw body verifies, the
        // same JSON re-serialised would not.
        let raw = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"text":{"body":"mang\u00e9 \/ a\u0040b"}}]}}]}]}"#;
        let secret = b"app secret";
        let header = sign(secret, raw);
        assert_eq!(verify_signature(secret, raw, Some(&header)), Ok(()));
        let reserialised =
            serde_json::to_vec(&serde_json::from_slice::<Value>(raw).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(
            verify_signature(secret, &reserialised, Some(&header)),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify_signature(secret, raw, None),
            Err(SignatureError::Missing)
        );
        for bad in [
            "sha256=",
            "sha1=00",
            "sha256=zz",
            &header[..header.len() - 1],
        ] {
            assert_eq!(
                verify_signature(secret, raw, Some(bad)),
                Err(SignatureError::Invalid),
                "{bad}"
            );
        }
        assert_eq!(
            verify_signature(b"another secret", raw, Some(&header)),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn the_handshake_answers_the_bare_challenge_only_to_the_right_token() {
        let ok = handshake(
            Some("subscribe"),
            Some("vt-123"),
            Some("1158201444"),
            "vt-123",
        );
        assert_eq!(ok.as_deref(), Some("1158201444"));
        assert_eq!(
            handshake(Some("subscribe"), Some("vt-124"), Some("1"), "vt-123"),
            None
        );
        assert_eq!(
            handshake(Some("unsubscribe"), Some("vt-123"), Some("1"), "vt-123"),
            None
        );
        assert_eq!(
            handshake(Some("subscribe"), None, Some("1"), "vt-123"),
            None
        );
        assert_eq!(handshake(Some("subscribe"), Some(""), Some("1"), ""), None);
        assert_eq!(
            handshake(Some("subscribe"), Some("vt-123"), None, "vt-123"),
            None
        );
    }

    #[test]
    fn every_event_of_a_batch_is_read_and_users_are_ids_not_names() {
        let body = br#"{"object":"whatsapp_business_account","entry":[
          {"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
            "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
            "contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234","user_id":"US.123"}],
            "messages":[{"from":"16505551234","id":"wamid.A","timestamp":"1749416383","type":"text",
                         "text":{"body":"MEDCRYPT:v2:abc"}},
                        {"from":"16505551234","id":"wamid.B","timestamp":"1749416384","type":"document",
                         "document":{"filename":"lab.medcrypt.txt","mime_type":"text/plain","id":"987","caption":"hi"}}]}}]},
          {"id":"2","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"106540352242922"},
            "contacts":[{"profile":{"name":"X"},"wa_id":"34600000000"}],
            "messages":[{"from":"34600000000","id":"wamid.C","timestamp":"1749416385","type":"image","image":{"id":"5"}}],
            "statuses":[{"id":"wamid.S","status":"failed","timestamp":"1689380458","recipient_id":"34600000000",
                         "errors":[{"code":131047,"title":"Re-engagement message"}]}]}}]}]}"#;
        let events = parse(body).unwrap_or_default();
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(
            matches!(&events[0], Event::Message { id, user, content: Content::Text(t), .. }
            if id == "wamid.A" && user == "US.123" && t == "MEDCRYPT:v2:abc")
        );
        assert!(
            matches!(&events[1], Event::Message { content: Content::Document { media_id, caption, .. }, .. }
            if media_id == "987" && caption.as_deref() == Some("hi"))
        );
        assert!(
            matches!(&events[2], Event::Message { user, content: Content::Other(k), .. }
            if user == "34600000000" && k == "image")
        );
        assert!(
            matches!(&events[3], Event::Status { id, status, errors, .. }
            if id == "wamid.S" && status == "failed" && errors == &[131047])
        );
        for event in &events {
            assert!(
                !format!("{event:?}").contains("Sheena"),
                "a display name was kept"
            );
        }
        assert!(parse(b"{\"object\":\"page\"}").is_err());
        assert!(parse(b"not json").is_err());
    }
}

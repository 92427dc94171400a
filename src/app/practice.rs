//! The views over what the store keeps: the overview (pairings with their
//! chats and last message, the retention policy, every month key and when
//! it will be destroyed), the history and inbox with their files, queueing
//! texts and files for the agent, the outbox, audit verification, the
//! checkpoint and the backup. Every answer is built by the same use cases
//! as the CLI's commands, so the same checks and audit entries apply.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Shared, Upload, download, failure, field, unprocessable, with_session};
use crate::format_utc;
use crate::session::{Error as SessionError, KeyState, SendContent, Session};
use crate::store::{HistoryContent, Via};

fn state_name(state: KeyState) -> &'static str {
    match state {
        KeyState::Current => "current",
        KeyState::GracePeriod => "grace",
        KeyState::Ahead => "ahead",
        KeyState::DueKeptAsNewest => "kept-as-newest",
    }
}

/// Everything the patient, physician and security views show at a glance.
fn overview_of(session: &Session) -> Result<Value, SessionError> {
    let pairings: Vec<Value> = session
        .pairings_with_state()?
        .into_iter()
        .map(|(p, state)| {
            json!({
                "alias": p.alias,
                "physician": p.role == crate::Role::Physician,
                "peer_name": p.peer_name,
                "legacy": p.protocol == crate::store::Protocol::V1,
                "safety_number": p.safety_number,
                "created_at": p.created_at,
                "chat": state.chat.map(|c| json!({ "transport": c.transport, "bound_at": c.bound_at })),
                "last_message": state.last_message.map(format_utc),
                "invite_expires": state.invite_expires.map(format_utc),
            })
        })
        .collect();
    let keys: Vec<Value> = session
        .key_status()?
        .into_iter()
        .map(|k| {
            json!({
                "alias": k.alias,
                "legacy": k.legacy,
                "keys": k.keys.iter().map(|key| json!({
                    "epoch": key.epoch.to_string(),
                    "state": state_name(key.state),
                    "due_at": format_utc(key.due_at),
                })).collect::<Vec<_>>(),
                "destroyed": k.destroyed.iter().map(|d| json!({
                    "epoch": d.epoch.to_string(),
                    "due_at": format_utc(d.due_at),
                    "destroyed_at": format_utc(d.destroyed_at),
                    "by_shredder": d.by_shredder,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let store = session.store().path();
    let backup = store
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(format!(
            "medcrypt-backup-{}.sqlite",
            session.now().format("%Y-%m-%d")
        ));
    Ok(json!({
        "name": session.display_name()?.unwrap_or_default(),
        "store": store.display().to_string(),
        "retention": session.retention()?.to_string(),
        "pairings": pairings,
        "keys": keys,
        "notices": session.store().pending_notices()?.len(),
        "backup_suggestion": backup.display().to_string(),
    }))
}

/// `GET /api/overview`.
pub(super) async fn overview(State(shared): State<Arc<Shared>>) -> Response {
    with_session(&shared, |session| match overview_of(session) {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(err) => failure(&err),
    })
    .await
}

/// `POST /api/history {from}`: what the store keeps (of one pairing, or
/// all), newest first, each with when it will be deleted.
pub(super) async fn history(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let from = field(&body, "from");
    with_session(&shared, move |session| {
        let from = Some(from.as_str()).filter(|f| !f.is_empty());
        let items = match session.inbox(from, 0) {
            Ok(items) => items,
            Err(err) => return failure(&err),
        };
        let list: Vec<Value> = items
            .iter()
            .rev()
            .map(|item| {
                let via = match item.via {
                    Via::Agent => "agent",
                    Via::Paste => "paste",
                    Via::File => "file",
                };
                let mut entry = json!({
                    "id": item.id,
                    "alias": item.alias,
                    "received_at": item.received_at,
                    "expires_at": item.expires_at.map(format_utc),
                    "via": via,
                });
                match &item.content {
                    HistoryContent::Text(text) => entry["text"] = json!(text),
                    HistoryContent::File {
                        metadata, stored, ..
                    } => {
                        entry["file"] = json!({
                            "name": crate::protocol::attachment::sanitize_file_name(&metadata.name),
                            "size": metadata.size,
                            "mime": metadata.mime,
                            "stored": stored,
                        });
                    }
                }
                entry
            })
            .collect();
        axum::Json(json!({ "items": list })).into_response()
    })
    .await
}

/// `POST /api/history-file {id}`: a file the store keeps, decrypted in
/// memory and handed to the browser to save (audited as the CLI's
/// `inbox --save-attachments`).
pub(super) async fn history_file(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    // Ids start at 1 (and `id - 1` must not overflow).
    let Some(id) = body.get("id").and_then(Value::as_i64).filter(|id| *id > 0) else {
        return unprocessable("no such item", "choose the file in the history again");
    };
    with_session(&shared, move |session| {
        let attempt = || -> Result<Response, SessionError> {
            let item = session
                .inbox(None, id - 1)?
                .into_iter()
                .find(|i| i.id == id);
            let Some(item) = item else {
                return Ok(unprocessable(
                    "this item is no longer kept",
                    "it was deleted under the retention policy; ask for it again",
                ));
            };
            let HistoryContent::File {
                metadata,
                stored: true,
                ..
            } = &item.content
            else {
                return Ok(unprocessable(
                    "this item has no file kept in the store",
                    "open the .medcrypt file itself under Files",
                ));
            };
            let mut content = Zeroizing::new(Vec::new());
            session
                .store()
                .history_file_content(item.id, &mut *content)?;
            session.store().audit(
                session.now(),
                "inbox_export",
                &item.alias,
                "ok",
                &[
                    ("item", item.id.to_string()),
                    ("to", "app download".to_owned()),
                ],
            )?;
            Ok(download(
                std::mem::take(&mut *content),
                &metadata.name,
                &item.alias,
            ))
        };
        attempt().unwrap_or_else(|err| failure(&err))
    })
    .await
}

fn queued(queued: &crate::session::Queued) -> Response {
    axum::Json(json!({
        "id": queued.id,
        "kind": queued.kind.name(),
        "bound": queued.bound,
    }))
    .into_response()
}

/// `POST /api/send {to, text}`: encrypted and queued for the agent.
pub(super) async fn send_text(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let to = field(&body, "to");
    let text = field(&body, "text");
    with_session(&shared, move |session| {
        if text.trim().is_empty() {
            return unprocessable("the message is empty", "write the message first");
        }
        match session.send(&to, SendContent::Text(&text)) {
            Ok(done) => queued(&done),
            Err(err) => failure(&err),
        }
    })
    .await
}

/// `POST /api/send-file` (multipart: `to`, one file): encrypted from
/// memory and queued for the agent; the plaintext never touches the disk.
pub(super) async fn send_file(State(shared): State<Arc<Shared>>, upload: Upload) -> Response {
    with_session(&shared, move |session| {
        let [(name, bytes)] = upload.files.as_slice() else {
            return unprocessable("choose one file to send", "send several files one by one");
        };
        match session.send(upload.field("to"), SendContent::Data { name, bytes }) {
            Ok(done) => queued(&done),
            Err(err) => failure(&err),
        }
    })
    .await
}

/// `GET /api/outbox`: every item with its state, and the notices not yet
/// delivered.
pub(super) async fn outbox(State(shared): State<Arc<Shared>>) -> Response {
    with_session(&shared, |session| {
        let attempt = || -> Result<Value, SessionError> {
            let items: Vec<Value> = session
                .outbox()?
                .into_iter()
                .rev()
                .map(|item| {
                    json!({
                        "id": item.id,
                        "to": item.alias,
                        "kind": item.kind.name(),
                        "state": item.state,
                        "attempts": item.attempts,
                        "queued": item.created_at,
                        "last_error": item.last_error,
                        "retry": matches!(item.state.as_str(), "uncertain" | "failed"),
                    })
                })
                .collect();
            let notices: Vec<Value> = session
                .store()
                .pending_notices()?
                .into_iter()
                .map(|n| json!({ "created_at": n.created_at, "text": n.text }))
                .collect();
            Ok(json!({ "items": items, "notices": notices }))
        };
        match attempt() {
            Ok(answer) => axum::Json(answer).into_response(),
            Err(err) => failure(&err),
        }
    })
    .await
}

/// `POST /api/outbox-retry {id}`.
pub(super) async fn outbox_retry(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let id = body.get("id").and_then(Value::as_i64).unwrap_or_default();
    with_session(&shared, move |session| match session.outbox_retry(id) {
        Ok(()) => axum::Json(json!({ "ok": true })).into_response(),
        Err(err) => failure(&err),
    })
    .await
}

/// `POST /api/audit-verify {code, checkpoint}`: the CLI's `audit verify`,
/// with what it proved in plain words.
pub(super) async fn audit_verify(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let code = field(&body, "code");
    let checkpoint = field(&body, "checkpoint");
    with_session(&shared, move |session| {
        let attempt = || -> Result<Value, SessionError> {
            let code = Some(code.trim())
                .filter(|c| !c.is_empty())
                .map(|code| {
                    crate::codes::parse_verification_code(code).map_err(|why| {
                        SessionError::usage(
                            format!("this audit verification code cannot be read: {why}"),
                            "type the code again from the paper it was written on; nothing was checked",
                        )
                    })
                })
                .transpose()?;
            let checkpoint = Some(checkpoint.trim())
                .filter(|c| !c.is_empty())
                .map(|line| {
                    crate::audit::Checkpoint::parse(line).map_err(|why| {
                        SessionError::usage(
                            format!("this checkpoint line cannot be read: {why}"),
                            "copy the whole line of the latest checkpoint again; nothing was checked",
                        )
                    })
                })
                .transpose()?;
            let report = session.audit_verify(code.as_ref(), checkpoint.as_ref())?;
            let mut proven = vec![if report.full {
                "full".to_owned()
            } else {
                "today".to_owned()
            }];
            if let Some(cp) = &checkpoint {
                proven.push(format!("checkpoint:{}:{}", cp.seq, cp.time));
            }
            Ok(json!({
                "records": report.records,
                "entries": report.entries,
                "seals": report.seals,
                "days": report.days,
                "full": report.full,
                "checkpoint": checkpoint.as_ref().map(|cp| json!({ "seq": cp.seq, "time": cp.time })),
                "repairs": report.repairs,
                "proven": proven,
            }))
        };
        match attempt() {
            Ok(answer) => axum::Json(answer).into_response(),
            Err(err) => failure(&err),
        }
    })
    .await
}

/// `POST /api/checkpoint`: a checkpoint line to keep elsewhere.
pub(super) async fn checkpoint(State(shared): State<Arc<Shared>>) -> Response {
    with_session(&shared, |session| match session.audit_checkpoint() {
        Ok(cp) => axum::Json(json!({ "line": cp.to_text() })).into_response(),
        Err(err) => failure(&err),
    })
    .await
}

/// `POST /api/backup {file}`: the CLI's `backup FILE` (a relative name is
/// taken beside the store; an existing file is never replaced).
pub(super) async fn backup(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let file = field(&body, "file").trim().to_owned();
    with_session(&shared, move |session| {
        if file.is_empty() {
            return unprocessable(
                "no file name for the backup",
                "give a file name, e.g. on a USB stick",
            );
        }
        let given = PathBuf::from(&file);
        let path = if given.is_absolute() {
            given
        } else {
            session
                .store()
                .path()
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(given)
        };
        if path.exists() {
            return unprocessable(
                &format!("{} already exists", path.display()),
                "nothing was written; choose another file name (old backups are best deleted)",
            );
        }
        match session.backup(&path, false) {
            Ok(()) => axum::Json(json!({ "file": path.display().to_string() })).into_response(),
            Err(err) => failure(&err),
        }
    })
    .await
}

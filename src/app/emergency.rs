//! Break-glass from the page: two custodians give their shares (the share
//! pages' files, photos of their QR codes, or the typed lines) and the
//! reason. The first step opens the store only to list its patients (the
//! opening is recorded and the physician told; the set is not used up);
//! the second exports the chosen patient's records into a new folder
//! beside the store, or sets a new passphrase. Everything goes through
//! [`Session::escrow_combine`], as `medcrypt escrow combine` does: the
//! checks before the shares are used, the audit entries, the notices, the
//! new master key and the retired set.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{Shared, Upload, blocking, failure, lock, unprocessable};
use crate::session::{CombineAction, Error as SessionError, Session, read_share};
use crate::shares::ShareText;

/// The shares of an upload: each file (a share page or a photo of its QR
/// code), then each typed `MEDCRYPT-SHARE:` line.
fn shares_of(upload: &Upload) -> Result<Vec<ShareText>, SessionError> {
    let mut shares = Vec::new();
    for (_, bytes) in &upload.files {
        shares.push(read_share(bytes, shares.len() + 1)?);
    }
    for line in upload
        .field("share_text")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        shares.push(ShareText::parse(line.trim(), shares.len() + 1)?);
    }
    if shares.len() < 2 {
        return Err(SessionError::of_kind(
            crate::session::ErrorKind::Escrow,
            "at least two custodians' shares are needed",
            "each custodian adds their share page or a photo of its QR code; nothing was opened",
        ));
    }
    Ok(shares)
}

/// A new folder beside the store for one patient's exported records.
fn export_dir(
    store: &std::path::Path,
    alias: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> std::path::PathBuf {
    let name = crate::protocol::attachment::sanitize_file_name(alias).replace(' ', "-");
    store
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(format!(
            "medcrypt-emergency-export-{name}-{}",
            now.format("%Y%m%d-%H%M%S")
        ))
}

/// `POST /api/emergency` (multipart: share files, `share_text`,
/// `reason`, `mode` = patients | export | rekey, `patient`, `passphrase`).
pub(super) async fn combine(State(shared): State<Arc<Shared>>, upload: Upload) -> Response {
    let worker = shared.clone();
    blocking(move || {
        // No other request uses the store while the custodians open it
        // (a session unlocked here keeps its connection idle meanwhile).
        let mut open_here = lock(&worker.session);
        let shares = match shares_of(&upload) {
            Ok(shares) => shares,
            Err(err) => return failure(&err),
        };
        let reason = upload.field("reason").trim().to_owned();
        let passphrase = SecretString::from(upload.field("passphrase").to_owned());
        let patient = upload.field("patient").to_owned();
        let now = worker.clock.now();
        let dir = export_dir(&worker.store, &patient, now);
        let action = match upload.field("mode") {
            "patients" => CombineAction::ListPatients,
            "export" if !patient.is_empty() => CombineAction::Export {
                dir: &dir,
                alias: Some(&patient),
            },
            "rekey" => CombineAction::Rekey {
                passphrase: &passphrase,
            },
            _ => {
                return unprocessable(
                    "choose what to do: export one patient's records, or set a new passphrase",
                    "the shares were not used",
                );
            }
        };
        let outcome = Session::escrow_combine(
            &worker.store,
            worker.clock.clone(),
            &shares,
            &reason,
            action,
            &crate::agent::telegram::deliver_notices_now,
        );
        // The store's key was replaced (an export or a new passphrase):
        // whoever had it unlocked here opens it again with the new one.
        // A refusal replaced nothing and leaves it as it was.
        if open_here
            .as_ref()
            .is_some_and(|session| session.store().key_replaced().unwrap_or(true))
        {
            open_here.take();
        }
        match outcome {
            Ok(outcome) => {
                let audit = match &outcome.audit {
                    Ok(report) => json!({ "ok": true, "records": report.records }),
                    Err(fault) => json!({ "ok": false, "fault": fault }),
                };
                let mut answer = json!({
                    "custodians": outcome.custodians,
                    "audit": audit,
                    "owner_told": outcome.owner_told,
                    "recovery_retired": outcome.rotated.recovery_retired,
                    "patients": outcome.patients.iter().map(|p| json!({
                        "alias": p.alias,
                        "peer_name": p.peer_name,
                        "paired": p.created_at.get(..10).unwrap_or(&p.created_at),
                    })).collect::<Vec<Value>>(),
                });
                if let Some(count) = outcome.exported {
                    answer["exported"] = json!(count);
                    answer["folder"] = json!(dir.display().to_string());
                }
                if let Some(recovery) = &outcome.recovery {
                    answer["recovery"] = json!(recovery.to_text().as_str());
                }
                axum::Json(answer).into_response()
            }
            Err(err) => failure(&err),
        }
    })
    .await
}

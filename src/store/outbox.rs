//! The outbox: encrypted items queued for the agent to deliver, and their
//! delivery states: queued, sending, sent (Telegram) or accepted, sent,
//! delivered, read (WhatsApp's statuses), waiting-for-reply (outside
//! WhatsApp's 24-hour window), uncertain, failed.

use chrono::{DateTime, Utc};
use rusqlite::params;
use zeroize::Zeroizing;

use super::manifest::Family;
use super::{PairingInfo, Result, Store, StoreError, now_text, parse_time};

/// What an outbox item is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Wire text, one chat message.
    Text,
    /// A `.medcrypt` document.
    Document,
}

impl OutboxKind {
    /// `text` or `document`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Document => "document",
        }
    }
}

/// An item waiting for (or past) delivery by the agent.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Its number.
    pub id: i64,
    /// Row id of the pairing.
    pub pairing_id: i64,
    /// The pairing's alias.
    pub alias: String,
    /// When it was queued.
    pub created_at: String,
    /// Text or document.
    pub kind: OutboxKind,
    /// queued, sending, accepted, sent, delivered, read,
    /// waiting-for-reply, uncertain, failed.
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Not before this time.
    pub next_attempt_at: String,
    /// The last error, if any.
    pub last_error: Option<String>,
}

impl Store {
    /// Queues an encrypted item (wire text or `.medcrypt` bytes) for the agent.
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox_queue(
        &self,
        pairing: &PairingInfo,
        kind: OutboxKind,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT INTO outbox (pairing_id, created_at, kind, payload, state, next_attempt_at)
                 VALUES (?1, ?2, ?3, X'', 'queued', ?2)",
                params![pairing.id, now_text(now), kind.name()],
            )?;
            let id = self.conn.last_insert_rowid();
            self.touched(Family::Outbox)?;
            self.set_sealed(
                "outbox",
                "payload",
                id,
                &outbox_aad(id, pairing.id, kind.name()),
                payload,
            )?;
            self.refresh_outbox_mac(id)?;
            self.audit(
                now,
                "send_queued",
                &pairing.alias,
                "ok",
                &[("kind", kind.name().to_owned()), ("outbox", id.to_string())],
            )?;
            Ok(id)
        })
    }

    /// Outbox items, all or only those due for (re)delivery at `due_at`.
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox(&self, due_at: Option<DateTime<Utc>>) -> Result<Vec<OutboxItem>> {
        let aliases: std::collections::HashMap<i64, String> = self
            .pairings()?
            .into_iter()
            .map(|p| (p.id, p.alias))
            .collect();
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id"))?;
        let rows = stmt.query_map([], outbox_from_row)?;
        let mut items = Vec::new();
        for row in rows {
            let (mut item, mac) = row?;
            if !self.row_mac_ok(&outbox_mac_parts(&item).each(), mac.as_deref()) {
                return Err(StoreError::Modified(format!("outbox item #{}", item.id)));
            }
            item.alias = aliases.get(&item.pairing_id).cloned().unwrap_or_default();
            let due = due_at.is_none_or(|at| {
                item.state == "queued"
                    && parse_time(&item.next_attempt_at).is_none_or(|next| next <= at)
            });
            if due {
                items.push(item);
            }
        }
        Ok(items)
    }

    /// The payload of an outbox item.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`].
    pub fn outbox_payload(&self, id: i64) -> Result<Zeroizing<Vec<u8>>> {
        let (pairing_id, kind, blob): (i64, String, Vec<u8>) = self.conn.query_row(
            "SELECT pairing_id, kind, payload FROM outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        self.unseal(&outbox_aad(id, pairing_id, &kind), &blob)
            .map_err(|_| StoreError::Modified(format!("outbox item #{id}")))
    }

    /// An outbox row with its stored MAC.
    fn outbox_row(&self, id: i64) -> Result<(OutboxItem, Option<Vec<u8>>)> {
        Ok(self.conn.query_row(
            &format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1"),
            [id],
            outbox_from_row,
        )?)
    }

    /// Checks an outbox row's MAC before it is changed (and MAC'd again):
    /// a forged state must not be laundered by a retry.
    fn check_outbox_row(&self, id: i64) -> Result<()> {
        let Some((item, mac)) = self.outbox_row(id).map(Some).or_else(|e| match e {
            StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            e => Err(e),
        })?
        else {
            return Ok(());
        };
        if self.row_mac_ok(&outbox_mac_parts(&item).each(), mac.as_deref()) {
            Ok(())
        } else {
            Err(StoreError::Modified(format!("outbox item #{id}")))
        }
    }

    /// Recomputes the row MAC of an outbox item after a change.
    pub(super) fn refresh_outbox_mac(&self, id: i64) -> Result<()> {
        let (item, _) = self.outbox_row(id)?;
        let mac = self.row_mac(&outbox_mac_parts(&item).each());
        self.conn.execute(
            "UPDATE outbox SET mac = ?1 WHERE id = ?2",
            params![mac.to_vec(), id],
        )?;
        Ok(())
    }

    /// Moves an outbox item to `state` (`sending`, `sent`, `queued` for a
    /// retry at `next_attempt_at`, `uncertain`, `failed`).
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox_set_state(
        &self,
        id: i64,
        state: &str,
        next_attempt_at: Option<DateTime<Utc>>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.in_transaction(|| {
            self.check_outbox_row(id)?;
            let attempts_delta = i64::from(state == "sending");
            self.conn.execute(
                "UPDATE outbox SET state = ?1, attempts = attempts + ?2,
                   next_attempt_at = COALESCE(?3, next_attempt_at), last_error = ?4 WHERE id = ?5",
                params![state, attempts_delta, next_attempt_at.map(now_text), error, id],
            )?;
            self.refresh_outbox_mac(id)?;
            if matches!(state, "sent" | "accepted" | "failed" | "uncertain") {
                let alias: String = self.conn.query_row(
                    "SELECT p.alias FROM outbox o JOIN pairings p ON p.id = o.pairing_id WHERE o.id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                let outcome = if matches!(state, "sent" | "accepted") { "ok" } else { "failed" };
                self.audit(now, &format!("send_{state}"), &alias, outcome, &[("outbox", id.to_string())])?;
            }
            Ok(())
        })
    }

    /// After a crash, items caught in `sending` may or may not have reached
    /// Telegram: they become `uncertain` and are not sent again unless the
    /// owner asks (`medcrypt outbox retry ID`), so nothing is sent twice.
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox_recover(&self, now: DateTime<Utc>) -> Result<usize> {
        let stuck: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM outbox WHERE state = 'sending'")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for id in &stuck {
            self.outbox_set_state(
                *id,
                "uncertain",
                None,
                Some("interrupted while sending: check the chat, then `medcrypt outbox retry`"),
                now,
            )?;
        }
        Ok(stuck.len())
    }

    /// The patient wrote: their items waiting for a reply (outside
    /// WhatsApp's 24-hour window) are due now. Returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox_wake(&self, pairing_id: i64, now: DateTime<Utc>) -> Result<usize> {
        let waiting: Vec<i64> = {
            let mut stmt = self.conn.prepare(
                "SELECT id FROM outbox WHERE pairing_id = ?1 AND state = 'waiting-for-reply' ORDER BY id",
            )?;
            let rows = stmt.query_map([pairing_id], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for id in &waiting {
            self.outbox_set_state(*id, "queued", Some(now), None, now)?;
        }
        Ok(waiting.len())
    }

    /// The state of an outbox item.
    ///
    /// # Errors
    /// Database errors; [`StoreError::Modified`] for a forged row.
    pub fn outbox_item(&self, id: i64) -> Result<Option<OutboxItem>> {
        let Some((item, mac)) = self.outbox_row(id).map(Some).or_else(|e| match e {
            StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            e => Err(e),
        })?
        else {
            return Ok(None);
        };
        if self.row_mac_ok(&outbox_mac_parts(&item).each(), mac.as_deref()) {
            Ok(Some(item))
        } else {
            Err(StoreError::Modified(format!("outbox item #{id}")))
        }
    }

    /// Queues an uncertain or failed item again.
    ///
    /// # Errors
    /// Database errors; [`StoreError::Corrupt`] when there is no such item.
    pub fn outbox_retry(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.in_transaction(|| {
            self.check_outbox_row(id)?;
            let changed = self.conn.execute(
                "UPDATE outbox SET state = 'queued', next_attempt_at = ?1, last_error = NULL
                 WHERE id = ?2 AND state IN ('uncertain', 'failed')",
                params![now_text(now), id],
            )?;
            if changed == 0 {
                return Err(StoreError::Corrupt(
                    "no uncertain or failed outbox item with that number",
                ));
            }
            self.refresh_outbox_mac(id)
        })
    }
}

fn outbox_aad(id: i64, pairing_id: i64, kind: &str) -> String {
    format!("medcrypt/store/v2/outbox:{id}:{pairing_id}:{kind}")
}

/// The columns of an outbox row that decide who gets it and whether it is
/// sent, as bytes for its row MAC.
struct MacParts([Vec<u8>; 8]);

impl MacParts {
    fn each(&self) -> Vec<&[u8]> {
        self.0.iter().map(Vec::as_slice).collect()
    }
}

fn outbox_mac_parts(item: &OutboxItem) -> MacParts {
    MacParts([
        b"outbox".to_vec(),
        item.id.to_string().into_bytes(),
        item.pairing_id.to_string().into_bytes(),
        item.kind.name().as_bytes().to_vec(),
        item.state.as_bytes().to_vec(),
        item.attempts.to_string().into_bytes(),
        item.next_attempt_at.as_bytes().to_vec(),
        item.created_at.as_bytes().to_vec(),
    ])
}

/// The columns [`outbox_from_row`] reads, in its order.
const OUTBOX_COLUMNS: &str =
    "id, pairing_id, created_at, kind, state, attempts, next_attempt_at, last_error, mac";

/// An outbox row (without its alias) and its stored MAC.
fn outbox_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboxItem, Option<Vec<u8>>)> {
    Ok((
        OutboxItem {
            id: r.get(0)?,
            pairing_id: r.get(1)?,
            alias: String::new(),
            created_at: r.get(2)?,
            kind: if r.get::<_, String>(3)? == "document" {
                OutboxKind::Document
            } else {
                OutboxKind::Text
            },
            state: r.get(4)?,
            attempts: r.get(5)?,
            next_attempt_at: r.get(6)?,
            last_error: r.get(7)?,
        },
        r.get(8)?,
    ))
}

//! The history of received messages and files — from the agent, pasted, or
//! decrypted from a file — kept under the store's one retention policy.
//!
//! Under `key-lifetime` (the default) a row is sealed under a key derived
//! from the month key that opened it, and deleted with it: destroying the
//! key destroys the history. Under `<N>d` or `forever` rows are sealed under
//! the master key and kept that long, readable by whoever later holds the
//! store and its passphrase. Every row's associated data names its id and
//! its pairing, so a row moved to another pairing does not open.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{OptionalExtension, params};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::protocol::attachment::{Metadata, read_full};
use crate::protocol::epoch::Epoch;
use crate::protocol::keys::derive_key;
use crate::protocol::wire::ReplayId;

use super::data::identity_sha256;
use super::manifest::Family;
use super::sealing::{aead_open, aead_seal};
use super::{PairingInfo, Result, Store, StoreError, io_err, now_text, parse_time};

/// Bytes of file content per sealed row.
const CHUNK: usize = 1 << 20;
/// Label of the key that seals history under a month key.
const HISTORY_KEY_LABEL: &str = "medcrypt/store/v2/history-key";
/// Meta key of the retention policy.
const RETENTION_KEY: &str = "retention";

/// How long decrypted messages and files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// As long as the month key that opened them lives (the default):
    /// destroying the key destroys them.
    KeyLifetime,
    /// This many days after they were received, under the master key.
    Days(u32),
    /// For ever, under the master key.
    Forever,
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyLifetime => f.write_str("key-lifetime"),
            Self::Days(n) => write!(f, "{n}d"),
            Self::Forever => f.write_str("forever"),
        }
    }
}

/// A retention policy that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a retention policy: use key-lifetime, a number of days such as 30d, or forever"
)]
pub struct InvalidRetention(pub String);

impl FromStr for Retention {
    type Err = InvalidRetention;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let bad = || InvalidRetention(s.to_owned());
        match s.trim() {
            "key-lifetime" => Ok(Self::KeyLifetime),
            "forever" => Ok(Self::Forever),
            other => {
                let days = other.strip_suffix('d').ok_or_else(bad)?;
                match days.parse::<u32>() {
                    Ok(n) if (1..=36_500).contains(&n) => Ok(Self::Days(n)),
                    _ => Err(bad()),
                }
            }
        }
    }
}

/// How a history item arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Received by the agent from a chat.
    Agent,
    /// Pasted into `decrypt` (or the app).
    Paste,
    /// Decrypted from a `.medcrypt` file by `attach decrypt`.
    File,
}

/// What arrives, to be recorded.
pub struct Incoming<'a> {
    /// How it arrived.
    pub via: Via,
    /// Its replay id (v2 texts); `None` for files and v1.
    pub replay: Option<ReplayId>,
    /// The month of the key that opened it (`None` for v1).
    pub epoch: Option<Epoch>,
    /// What identifies this very message or file (the compact wire text,
    /// or `file:` and the file id): the same input again is "already
    /// received".
    pub identity: Vec<u8>,
    /// The content.
    pub content: IncomingContent<'a>,
}

impl<'a> Incoming<'a> {
    /// A file of format 3 (or 2) identified by its file id.
    pub fn file(
        via: Via,
        epoch: Epoch,
        file_id: &[u8; 16],
        metadata: &'a Metadata,
        saved_as: Option<&'a str>,
    ) -> Self {
        Self {
            via,
            replay: None,
            epoch: Some(epoch),
            identity: [b"file:".as_slice(), file_id].concat(),
            content: IncomingContent::File {
                metadata,
                content: None,
                saved_as,
            },
        }
    }
}

/// The content of what arrives.
pub enum IncomingContent<'a> {
    /// A text.
    Text(&'a str),
    /// A file: its metadata, its content when the store keeps it (the
    /// agent's), and where it was written (`attach decrypt`).
    File {
        /// Name, type, size.
        metadata: &'a Metadata,
        /// The content to keep, if any.
        content: Option<&'a mut dyn Read>,
        /// Where the file was written.
        saved_as: Option<&'a str>,
    },
}

/// What recording it did.
#[derive(Debug)]
pub enum Receipt {
    /// New: recorded as this history item.
    New {
        /// The item's number.
        id: i64,
    },
    /// Received before: here it is (when the history still holds it).
    Again(HistoryItem),
}

/// What a history item holds. `Debug` shows no medical content.
#[derive(Clone)]
pub enum HistoryContent {
    /// A decrypted text.
    Text(String),
    /// A decrypted file.
    File {
        /// Name, type, size from inside the encryption.
        metadata: Metadata,
        /// The content is kept in the store ([`Store::history_file_content`]).
        stored: bool,
        /// Where `attach decrypt` wrote it.
        saved_as: Option<String>,
    },
}

impl fmt::Debug for HistoryContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => write!(f, "Text({} bytes)", text.len()),
            Self::File { metadata, .. } => write!(f, "File({} bytes)", metadata.size),
        }
    }
}

/// A received, decrypted message or file.
#[derive(Debug, Clone)]
pub struct HistoryItem {
    /// Its number.
    pub id: i64,
    /// The pairing it authenticated as from.
    pub alias: String,
    /// When (RFC 3339).
    pub received_at: String,
    /// When it will be deleted (`None`: kept for ever).
    pub expires_at: Option<DateTime<Utc>>,
    /// How it arrived.
    pub via: Via,
    /// Text or file.
    pub content: HistoryContent,
}

#[derive(Serialize, Deserialize)]
struct HistoryBody {
    via: Via,
    /// SHA-256 of what identifies the message or file, hex: its keyed
    /// digest is made again from it when the master key changes.
    identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    #[serde(default)]
    stored: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saved_as: Option<String>,
}

fn row_aad(id: i64, pairing_id: i64, received_at: &str) -> String {
    format!("medcrypt/store/v2/history:{id}:{pairing_id}:{received_at}")
}

fn chunk_aad(id: i64, idx: u64) -> String {
    format!("medcrypt/store/v2/history-chunk:{id}:{idx}")
}

/// The key a history row is sealed under.
type RowKey = Zeroizing<[u8; 32]>;

impl Store {
    /// The store's retention policy.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Modified`].
    pub fn retention(&self) -> Result<Retention> {
        Ok(self
            .setting(RETENTION_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(Retention::KeyLifetime))
    }

    /// The key of a row of `pairing` with `scope` and `epoch`.
    fn row_key(&self, pairing_id: i64, scope: &str, epoch: Option<&str>) -> Result<RowKey> {
        match (scope, epoch) {
            ("master", _) => Ok(Zeroizing::new(*self.master.0.expose_secret())),
            ("epoch", Some(epoch)) => {
                let epoch: Epoch = epoch
                    .parse()
                    .map_err(|_| StoreError::Corrupt("bad epoch name"))?;
                let pairing = self.pairing_by_id(Some(pairing_id))?.ok_or_else(|| {
                    StoreError::Modified("a history row without its pairing".into())
                })?;
                let chain = self.chain(&pairing)?;
                let key = chain.key_for(epoch).ok_or_else(|| {
                    StoreError::Modified(format!(
                        "history of {epoch} whose key is gone for {:?}",
                        pairing.alias
                    ))
                })?;
                let derived = derive_key(key.expose_bytes(), HISTORY_KEY_LABEL, &epoch.to_string());
                Ok(Zeroizing::new(*derived.expose_secret()))
            }
            _ => Err(StoreError::Corrupt("a history row of unknown scope")),
        }
    }

    /// Where a new row of this epoch goes under the current policy: its
    /// scope and when it expires.
    fn placement(
        &self,
        pairing: &PairingInfo,
        epoch: Option<Epoch>,
        received: DateTime<Utc>,
    ) -> Result<(&'static str, Option<DateTime<Utc>>)> {
        Ok(match self.retention()? {
            Retention::KeyLifetime => match epoch {
                Some(e) if self.chain(pairing)?.key_for(e).is_some() => {
                    ("epoch", Some(e.destruction_time()))
                }
                Some(e) => ("master", Some(e.destruction_time())),
                None => (
                    "master",
                    Some(Epoch::containing(received).destruction_time()),
                ),
            },
            Retention::Days(n) => ("master", Some(received + TimeDelta::days(i64::from(n)))),
            Retention::Forever => ("master", None),
        })
    }

    /// Records what arrived: a new message or file becomes a history item
    /// (with its replay id marked seen, in the pairing's sealed record, and
    /// the audit entry, all in one transaction); the same message again is
    /// returned from the history.
    ///
    /// # Errors
    /// [`StoreError::Replayed`] for a different message with a sequence
    /// number already used (or one whose history is gone); database errors.
    pub fn receive(
        &self,
        pairing: &PairingInfo,
        incoming: Incoming<'_>,
        now: DateTime<Utc>,
    ) -> Result<Receipt> {
        let identity = identity_sha256(&incoming.identity);
        let digest = self.digest_of(&identity);
        self.in_transaction(|| {
            let earlier: Option<i64> = self
                .conn
                .query_row(
                    "SELECT id FROM history WHERE pairing_id = ?1 AND digest = ?2 ORDER BY id LIMIT 1",
                    params![pairing.id, digest.to_vec()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = earlier {
                let item = self.history_item(id)?;
                self.audit(
                    now,
                    if matches!(item.content, HistoryContent::File { .. }) {
                        "attach_decrypt_again"
                    } else {
                        "decrypt_again"
                    },
                    &pairing.alias,
                    "ok",
                    &[("item", id.to_string())],
                )?;
                return Ok(Receipt::Again(item));
            }
            let mut details = vec![("via", format!("{:?}", incoming.via).to_lowercase())];
            if let Some(replay) = &incoming.replay {
                let fresh = self.update_record(pairing.id, |record| {
                    if record.has_seen(replay) {
                        return Ok(false);
                    }
                    record.mark_seen(replay);
                    record.last_message = Some(now_text(now));
                    Ok(true)
                })?;
                if !fresh {
                    return Err(StoreError::Replayed {
                        epoch: replay.epoch,
                        direction: replay.direction.name(),
                        sequence: replay.sequence,
                    });
                }
                details.extend([
                    ("epoch", replay.epoch.to_string()),
                    ("direction", replay.direction.name().to_owned()),
                    ("sequence", replay.sequence.to_string()),
                ]);
            } else if incoming.epoch.is_none() {
                details.push(("protocol", "v1".to_owned()));
            }
            let id = self.insert_history(pairing, &incoming, &identity, now)?;
            let action = match incoming.content {
                IncomingContent::Text(_) => "decrypt",
                IncomingContent::File { metadata, .. } => {
                    details.push(("size", metadata.size.to_string()));
                    "attach_decrypt"
                }
            };
            self.audit(now, action, &pairing.alias, "ok", &details)?;
            Ok(Receipt::New { id })
        })
    }

    fn insert_history(
        &self,
        pairing: &PairingInfo,
        incoming: &Incoming<'_>,
        identity: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut body = HistoryBody {
            via: incoming.via,
            identity: hex::encode(identity),
            text: None,
            metadata: None,
            stored: false,
            saved_as: None,
        };
        match &incoming.content {
            IncomingContent::Text(text) => body.text = Some((*text).to_owned()),
            IncomingContent::File {
                metadata,
                content,
                saved_as,
            } => {
                body.metadata = Some((*metadata).clone());
                body.stored = content.is_some();
                body.saved_as = saved_as.map(str::to_owned);
            }
        }
        self.insert_body(pairing, now, incoming.epoch, &body, now)
    }

    /// Inserts a history row for `body`, received at `received`, placed by
    /// the current policy; returns its id.
    fn insert_body(
        &self,
        pairing: &PairingInfo,
        received: DateTime<Utc>,
        epoch: Option<Epoch>,
        body: &HistoryBody,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let (scope, expires) = self.placement(pairing, epoch, received)?;
        if expires.is_some_and(|at| at <= now) {
            return Err(StoreError::Corrupt("history that has already expired"));
        }
        let digest = self.digest_of(
            &hex::decode(&body.identity)
                .ok()
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0u8; 32]),
        );
        let received_at = now_text(received);
        let epoch = epoch.map(|e| e.to_string());
        self.conn.execute(
            "INSERT INTO history (pairing_id, received_at, epoch, scope, expires_at, digest, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, X'')",
            params![
                pairing.id,
                received_at,
                epoch,
                scope,
                expires.map(now_text),
                digest.to_vec()
            ],
        )?;
        let id = self.conn.last_insert_rowid();
        self.touched(Family::History)?;
        let key = self.row_key(pairing.id, scope, epoch.as_deref())?;
        let json = Zeroizing::new(
            serde_json::to_vec(body).map_err(|_| StoreError::Corrupt("history encoding"))?,
        );
        self.conn.execute(
            "UPDATE history SET body = ?1 WHERE id = ?2",
            params![
                aead_seal(&key, &row_aad(id, pairing.id, &received_at), &json),
                id
            ],
        )?;
        Ok(id)
    }

    /// Imports a history item made elsewhere (a schema 4 inbox row), with
    /// its original time, under the current policy; one already expired is
    /// dropped.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn import_history(
        &self,
        pairing: &PairingInfo,
        received: DateTime<Utc>,
        epoch: Epoch,
        identity: &[u8],
        text: Option<String>,
        metadata: Option<Metadata>,
        content: &[u8],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (_, expires) = self.placement(pairing, Some(epoch), received)?;
        if expires.is_some_and(|at| at <= now) {
            return Ok(());
        }
        let body = HistoryBody {
            via: Via::Agent,
            identity: hex::encode(identity_sha256(identity)),
            stored: metadata.is_some(),
            text,
            metadata,
            saved_as: None,
        };
        let id = self.insert_body(pairing, received, Some(epoch), &body, now)?;
        if body.stored {
            let (scope, epoch_name): (String, Option<String>) = self.conn.query_row(
                "SELECT scope, epoch FROM history WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let key = self.row_key(pairing.id, &scope, epoch_name.as_deref())?;
            self.store_content(id, &key, &mut &content[..])?;
        }
        Ok(())
    }

    /// The SHA-256 of what identifies history item `id` (from its sealed
    /// body).
    pub(super) fn history_identity(&self, id: i64) -> Result<[u8; 32]> {
        let (pairing_id, received_at, scope, epoch, blob): (
            i64,
            String,
            String,
            Option<String>,
            Vec<u8>,
        ) = self.conn.query_row(
            "SELECT pairing_id, received_at, scope, epoch, body FROM history WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        let key = self.row_key(pairing_id, &scope, epoch.as_deref())?;
        let modified = || StoreError::Modified(format!("history item #{id} does not open"));
        let plain =
            aead_open(&key, &row_aad(id, pairing_id, &received_at), &blob).ok_or_else(modified)?;
        let body: HistoryBody = serde_json::from_slice(&plain).map_err(|_| modified())?;
        hex::decode(&body.identity)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(modified)
    }

    /// Stores the content of a received file under history item `id`.
    fn store_content(&self, id: i64, key: &[u8; 32], content: &mut dyn Read) -> Result<()> {
        let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
        for idx in 0u64.. {
            let n = read_full(content, &mut buf)
                .map_err(io_err("cannot read the attachment".into()))?;
            if n == 0 {
                break;
            }
            self.conn.execute(
                "INSERT INTO history_chunks (history_id, idx, data) VALUES (?1, ?2, ?3)",
                params![id, idx, aead_seal(key, &chunk_aad(id, idx), &buf[..n])],
            )?;
            if n < buf.len() {
                break;
            }
        }
        Ok(())
    }

    /// Records a received file and keeps its content (the agent's inbox):
    /// `incoming` describes it, `content` is read into the store.
    ///
    /// # Errors
    /// As [`Store::receive`]; I/O errors reading `content`.
    pub fn receive_file(
        &self,
        pairing: &PairingInfo,
        incoming: Incoming<'_>,
        content: &mut dyn Read,
        now: DateTime<Utc>,
    ) -> Result<Receipt> {
        self.in_transaction(|| {
            let receipt = self.receive(pairing, incoming, now)?;
            if let Receipt::New { id } = receipt {
                let (scope, epoch_name): (String, Option<String>) = self.conn.query_row(
                    "SELECT scope, epoch FROM history WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let key = self.row_key(pairing.id, &scope, epoch_name.as_deref())?;
                self.store_content(id, &key, content)?;
                self.mark_stored(id, pairing.id, &key)?;
            }
            Ok(receipt)
        })
    }

    fn mark_stored(&self, id: i64, pairing_id: i64, key: &[u8; 32]) -> Result<()> {
        let (received_at, blob): (String, Vec<u8>) = self.conn.query_row(
            "SELECT received_at, body FROM history WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let aad = row_aad(id, pairing_id, &received_at);
        let plain = aead_open(key, &aad, &blob).ok_or(StoreError::Corrupt("history row"))?;
        let mut body: HistoryBody =
            serde_json::from_slice(&plain).map_err(|_| StoreError::Corrupt("history row"))?;
        body.stored = true;
        let json = Zeroizing::new(
            serde_json::to_vec(&body).map_err(|_| StoreError::Corrupt("history encoding"))?,
        );
        self.conn.execute(
            "UPDATE history SET body = ?1 WHERE id = ?2",
            params![aead_seal(key, &aad, &json), id],
        )?;
        Ok(())
    }

    /// One history item.
    ///
    /// # Errors
    /// [`StoreError::Modified`] when it does not open; database errors.
    pub fn history_item(&self, id: i64) -> Result<HistoryItem> {
        self.history_where("h.id = ?1", &[&id])?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("no such history item"))
    }

    /// History items after `after_id`, from one pairing or all, oldest
    /// first.
    ///
    /// # Errors
    /// [`StoreError::Modified`] when a row does not open for its pairing;
    /// database errors.
    pub fn history(&self, from: Option<&PairingInfo>, after_id: i64) -> Result<Vec<HistoryItem>> {
        match from {
            Some(p) => self.history_where("h.id > ?1 AND h.pairing_id = ?2", &[&after_id, &p.id]),
            None => self.history_where("h.id > ?1", &[&after_id]),
        }
    }

    fn history_where(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<HistoryItem>> {
        /// id, pairing, received at, epoch, scope, expires at, sealed body.
        type Row = (
            i64,
            i64,
            String,
            Option<String>,
            String,
            Option<String>,
            Vec<u8>,
        );
        let rows: Vec<Row> = {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT h.id, h.pairing_id, h.received_at, h.epoch, h.scope, h.expires_at, h.body
                 FROM history h WHERE {filter} ORDER BY h.id"
            ))?;
            let rows = stmt.query_map(args, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut items = Vec::with_capacity(rows.len());
        // Many rows share a pairing and a month: each is checked and each
        // key derived once.
        let mut pairings: HashMap<i64, PairingInfo> = HashMap::new();
        let mut keys: HashMap<(i64, String, Option<String>), RowKey> = HashMap::new();
        for (id, pairing_id, received_at, epoch, scope, expires_at, blob) in rows {
            if let std::collections::hash_map::Entry::Vacant(slot) = pairings.entry(pairing_id) {
                slot.insert(self.pairing_by_id(Some(pairing_id))?.ok_or_else(|| {
                    StoreError::Modified(format!("history item #{id} has no pairing"))
                })?);
            }
            let pairing = pairings[&pairing_id].clone();
            let slot = (pairing_id, scope.clone(), epoch.clone());
            if !keys.contains_key(&slot) {
                let key = self.row_key(pairing_id, &scope, epoch.as_deref())?;
                keys.insert(slot.clone(), key);
            }
            let key = &keys[&slot];
            let modified = || {
                StoreError::Modified(format!(
                    "history item #{id} does not belong to {:?}",
                    pairing.alias
                ))
            };
            let plain = aead_open(key, &row_aad(id, pairing_id, &received_at), &blob)
                .ok_or_else(modified)?;
            let body: HistoryBody = serde_json::from_slice(&plain).map_err(|_| modified())?;
            let content = match (body.text, body.metadata) {
                (Some(text), _) => HistoryContent::Text(text),
                (None, Some(metadata)) => HistoryContent::File {
                    metadata,
                    stored: body.stored,
                    saved_as: body.saved_as,
                },
                (None, None) => return Err(modified()),
            };
            items.push(HistoryItem {
                id,
                alias: pairing.alias,
                received_at,
                expires_at: expires_at.as_deref().and_then(parse_time),
                via: body.via,
                content,
            });
        }
        Ok(items)
    }

    /// Writes the content of a file kept in the history to `out`.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Modified`], I/O errors.
    pub fn history_file_content(&self, id: i64, out: &mut dyn std::io::Write) -> Result<()> {
        let (pairing_id, scope, epoch): (i64, String, Option<String>) = self.conn.query_row(
            "SELECT pairing_id, scope, epoch FROM history WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let key = self.row_key(pairing_id, &scope, epoch.as_deref())?;
        let mut stmt = self
            .conn
            .prepare("SELECT idx, data FROM history_chunks WHERE history_id = ?1 ORDER BY idx")?;
        let rows = stmt.query_map([id], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        for (expected, row) in (0u64..).zip(rows) {
            let (idx, data) = row?;
            if idx != expected {
                return Err(StoreError::Modified(format!(
                    "history item #{id} has a missing part"
                )));
            }
            let plain = aead_open(&key, &chunk_aad(id, idx), &data).ok_or_else(|| {
                StoreError::Modified(format!("a part of history item #{id} does not open"))
            })?;
            out.write_all(&plain)
                .map_err(io_err("cannot write the attachment".into()))?;
        }
        Ok(())
    }

    /// Changes the retention policy and moves every kept row to it: rows
    /// whose month key is gone are deleted under `key-lifetime`, rows past
    /// their new expiry are deleted, the rest are re-sealed where the new
    /// policy keeps them.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Modified`].
    pub fn set_retention(&self, retention: Retention, now: DateTime<Utc>) -> Result<()> {
        self.in_transaction(|| {
            self.set_setting(RETENTION_KEY, &retention.to_string(), now)?;
            let rows: Vec<(i64, i64, String, Option<String>, String)> = {
                let mut stmt = self
                    .conn
                    .prepare("SELECT id, pairing_id, received_at, epoch, scope FROM history")?;
                let rows = stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            for (id, pairing_id, received_at, epoch, scope) in rows {
                let pairing = self.pairing_by_id(Some(pairing_id))?.ok_or_else(|| {
                    StoreError::Modified(format!("history item #{id} has no pairing"))
                })?;
                let received = parse_time(&received_at).unwrap_or(now);
                let month = epoch.as_deref().and_then(|e| e.parse::<Epoch>().ok());
                let (new_scope, expires) = self.placement(&pairing, month, received)?;
                if expires.is_some_and(|at| at <= now)
                    || (retention == Retention::KeyLifetime
                        && month.is_some()
                        && new_scope == "master")
                {
                    self.conn
                        .execute("DELETE FROM history WHERE id = ?1", [id])?;
                    self.touched(Family::History)?;
                    continue;
                }
                if new_scope != scope {
                    let old = self.row_key(pairing_id, &scope, epoch.as_deref())?;
                    let new = self.row_key(pairing_id, new_scope, epoch.as_deref())?;
                    self.reseal_row(id, pairing_id, &received_at, &old, &new)?;
                }
                self.conn.execute(
                    "UPDATE history SET scope = ?1, expires_at = ?2 WHERE id = ?3",
                    params![new_scope, expires.map(now_text), id],
                )?;
                self.touched(Family::History)?;
            }
            Ok(())
        })?;
        self.checkpoint()
    }

    fn reseal_row(
        &self,
        id: i64,
        pairing_id: i64,
        received_at: &str,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<()> {
        let modified = || StoreError::Modified(format!("history item #{id} does not open"));
        let aad = row_aad(id, pairing_id, received_at);
        let blob: Vec<u8> =
            self.conn
                .query_row("SELECT body FROM history WHERE id = ?1", [id], |r| r.get(0))?;
        let plain = aead_open(old, &aad, &blob).ok_or_else(modified)?;
        self.conn.execute(
            "UPDATE history SET body = ?1 WHERE id = ?2",
            params![aead_seal(new, &aad, &plain), id],
        )?;
        let chunks: Vec<(u64, Vec<u8>)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT idx, data FROM history_chunks WHERE history_id = ?1")?;
            let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (idx, data) in chunks {
            let plain = aead_open(old, &chunk_aad(id, idx), &data).ok_or_else(modified)?;
            self.conn.execute(
                "UPDATE history_chunks SET data = ?1 WHERE history_id = ?2 AND idx = ?3",
                params![aead_seal(new, &chunk_aad(id, idx), &plain), id, idx],
            )?;
        }
        Ok(())
    }
}

//! The sealed record of a pairing: everything that decides *who* or
//! *whether* — alias, role, protocol, peer name, token, chat link, the
//! sequence numbers sent and the messages seen — sealed under the master
//! key with the row id as associated data.
//!
//! The plain columns of `pairings` and `chat_links` stay for lookups, but
//! every load compares them with the record: an alias swapped, a chat moved
//! or a replay state deleted in the SQLite file is reported as a store
//! modified outside MedCrypt, never acted on. Only a rollback of the whole
//! record to an older copy of the same store cannot be seen locally.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::protocol::epoch::Epoch;
use crate::protocol::keys::{Direction, Role};
use crate::protocol::wire::ReplayId;

use super::{PairingInfo, Protocol, Result, Store, StoreError};

/// A chat of a messenger bound to a pairing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLink {
    /// `telegram` or `whatsapp`.
    pub transport: String,
    /// The messenger's id of the chat (Telegram) or user (WhatsApp).
    pub chat: String,
    /// When it was bound (RFC 3339).
    pub bound_at: String,
}

/// A pairing's life so far, for `pair list`.
#[derive(Debug, Clone)]
pub struct PairingState {
    /// When its invitation expires or expired.
    pub invite_expires: Option<DateTime<Utc>>,
    /// The chat bound to it.
    pub chat: Option<ChatLink>,
    /// When the last message was sent or received.
    pub last_message: Option<DateTime<Utc>>,
}

/// What is sealed for each pairing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct PairingRecord {
    pub(super) alias: String,
    pub(super) role: String,
    pub(super) protocol: String,
    pub(super) peer_name: String,
    pub(super) start_epoch: Option<String>,
    pub(super) safety_number: Option<String>,
    pub(super) token_hash: Option<String>,
    pub(super) created_at: String,
    #[serde(default)]
    pub(super) chat: Option<ChatLink>,
    /// Last sequence number sent, by `epoch:direction`.
    #[serde(default)]
    pub(super) sent: BTreeMap<String, u32>,
    /// Sequence numbers received, by `epoch:direction`, as sorted,
    /// disjoint, inclusive ranges.
    #[serde(default)]
    pub(super) seen: BTreeMap<String, Vec<(u32, u32)>>,
    /// When the invitation stops binding a chat (physician) or was due to
    /// expire (patient), RFC 3339; none for pairings of the first release.
    #[serde(default)]
    pub(super) invite_expires: Option<String>,
    /// When the last message was sent or received (RFC 3339).
    #[serde(default)]
    pub(super) last_message: Option<String>,
}

fn slot(epoch: Epoch, direction: Direction) -> String {
    format!("{epoch}:{}", direction.code())
}

fn record_aad(id: i64) -> String {
    format!("medcrypt/store/v2/pairing:{id}")
}

impl PairingRecord {
    /// Whether the replay id was seen.
    pub(super) fn has_seen(&self, id: &ReplayId) -> bool {
        self.seen
            .get(&slot(id.epoch, id.direction))
            .is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(a, b)| a <= id.sequence && id.sequence <= b)
            })
    }

    /// Records a replay id as seen (ranges stay sorted and merged).
    pub(super) fn mark_seen(&mut self, id: &ReplayId) {
        let ranges = self.seen.entry(slot(id.epoch, id.direction)).or_default();
        let n = id.sequence;
        ranges.push((n, n));
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for &(a, b) in ranges.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ranges = merged;
    }

    /// The last sequence number sent in (epoch, direction).
    pub(super) fn last_sent(&self, epoch: Epoch, direction: Direction) -> Option<u32> {
        self.sent.get(&slot(epoch, direction)).copied()
    }

    pub(super) fn set_sent(&mut self, epoch: Epoch, direction: Direction, sequence: u32) {
        self.sent.insert(slot(epoch, direction), sequence);
    }

    /// Forgets the replay state of a month whose key is destroyed: nothing
    /// of it can be opened any more.
    pub(super) fn forget_epoch(&mut self, epoch: Epoch) {
        let prefix = format!("{epoch}:");
        self.seen.retain(|k, _| !k.starts_with(&prefix));
        self.sent.retain(|k, _| !k.starts_with(&prefix));
    }

    /// The record of what the plain columns say, for a new pairing or an
    /// upgrade.
    pub(super) fn from_info(info: &PairingInfo, token_hash: Option<String>) -> Self {
        Self {
            alias: info.alias.clone(),
            role: info.role.name().to_owned(),
            protocol: protocol_name(info.protocol).to_owned(),
            peer_name: info.peer_name.clone(),
            start_epoch: info.start_epoch.map(|e| e.to_string()),
            safety_number: info.safety_number.clone(),
            token_hash,
            created_at: info.created_at.clone(),
            ..Self::default()
        }
    }
}

pub(super) fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::V2 => "v2",
        Protocol::V1 => "v1",
    }
}

pub(super) fn role_from_name(name: &str) -> Role {
    match name {
        "patient" => Role::Patient,
        _ => Role::Physician,
    }
}

/// The plain columns of a `pairings` row, as read.
pub(super) struct PlainPairing {
    pub(super) id: i64,
    pub(super) alias: String,
    pub(super) role: String,
    pub(super) protocol: String,
    pub(super) peer_name: String,
    pub(super) start_epoch: Option<String>,
    pub(super) safety_number: Option<String>,
    pub(super) token_hash: Option<String>,
    pub(super) created_at: String,
    pub(super) record: Option<Vec<u8>>,
}

impl PlainPairing {
    pub(super) const COLUMNS: &'static str = "id, alias, role, protocol, peer_name, start_epoch, \
         safety_number, token_hash, created_at, record";

    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            alias: r.get(1)?,
            role: r.get(2)?,
            protocol: r.get(3)?,
            peer_name: r.get(4)?,
            start_epoch: r.get(5)?,
            safety_number: r.get(6)?,
            token_hash: r.get(7)?,
            created_at: r.get(8)?,
            record: r.get(9)?,
        })
    }

    /// The pairing as the rest of the program sees it (from the plain
    /// columns, which the caller has checked against the record).
    pub(super) fn info(&self) -> PairingInfo {
        PairingInfo {
            id: self.id,
            alias: self.alias.clone(),
            role: role_from_name(&self.role),
            protocol: if self.protocol == "v1" {
                Protocol::V1
            } else {
                Protocol::V2
            },
            peer_name: self.peer_name.clone(),
            start_epoch: self.start_epoch.as_deref().and_then(|s| s.parse().ok()),
            safety_number: self.safety_number.clone(),
            created_at: self.created_at.clone(),
        }
    }

    fn matches(&self, record: &PairingRecord) -> bool {
        self.alias == record.alias
            && self.role == record.role
            && self.protocol == record.protocol
            && self.peer_name == record.peer_name
            && self.start_epoch == record.start_epoch
            && self.safety_number == record.safety_number
            && self.token_hash == record.token_hash
            && self.created_at == record.created_at
    }
}

impl Store {
    /// Opens and checks the record of a plain row.
    pub(super) fn open_record(&self, row: &PlainPairing) -> Result<PairingRecord> {
        let modified = || StoreError::Modified(format!("the record of pairing #{}", row.id));
        let blob = row.record.as_deref().ok_or_else(modified)?;
        let plain = self
            .unseal(&record_aad(row.id), blob)
            .map_err(|_| modified())?;
        let record: PairingRecord = serde_json::from_slice(&plain).map_err(|_| modified())?;
        if !row.matches(&record) {
            return Err(StoreError::Modified(format!(
                "pairing #{} ({:?}) does not match its sealed record",
                row.id, row.alias
            )));
        }
        Ok(record)
    }

    /// Seals and writes the record of pairing `id`.
    pub(super) fn save_record(&self, id: i64, record: &PairingRecord) -> Result<()> {
        let json = serde_json::to_vec(record)
            .map_err(|_| StoreError::Corrupt("a pairing record cannot be encoded"))?;
        self.conn.execute(
            "UPDATE pairings SET record = ?1 WHERE id = ?2",
            params![self.seal(&record_aad(id), &json), id],
        )?;
        Ok(())
    }

    /// The checked record of pairing `id`, read now (inside the caller's
    /// transaction, so that read-modify-write is atomic).
    pub(super) fn record(&self, id: i64) -> Result<PairingRecord> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {} FROM pairings WHERE id = ?1",
                    PlainPairing::COLUMNS
                ),
                [id],
                PlainPairing::from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::Modified(format!("pairing #{id} has disappeared")))?;
        self.open_record(&row)
    }

    /// Changes the record of pairing `id` with `change`, in one transaction.
    pub(super) fn update_record<T>(
        &self,
        id: i64,
        change: impl FnOnce(&mut PairingRecord) -> Result<T>,
    ) -> Result<T> {
        self.in_transaction(|| {
            let mut record = self.record(id)?;
            let out = change(&mut record)?;
            self.save_record(id, &record)?;
            Ok(out)
        })
    }

    /// What `pair list` shows of pairing `id` beyond its row: invitation,
    /// chat and last message, from its checked record.
    ///
    /// # Errors
    /// [`StoreError::Modified`]; database errors.
    pub fn pairing_state(&self, id: i64) -> Result<PairingState> {
        let record = self.record(id)?;
        let parse = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Ok(PairingState {
            invite_expires: parse(&record.invite_expires),
            chat: self.checked_chat(id)?,
            last_message: parse(&record.last_message),
        })
    }

    /// The chat link of pairing `id`, checked against its record.
    pub(super) fn checked_chat(&self, id: i64) -> Result<Option<ChatLink>> {
        let record = self.record(id)?;
        let plain: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT transport, chat FROM chat_links WHERE pairing_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let sealed = record
            .chat
            .as_ref()
            .map(|c| (c.transport.clone(), c.chat.clone()));
        if plain != sealed {
            return Err(StoreError::Modified(format!(
                "the chat bound to pairing #{id} does not match its sealed record"
            )));
        }
        Ok(record.chat)
    }
}

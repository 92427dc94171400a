//! What the agent keeps between runs: chat links (checked against each
//! pairing's sealed record), the deep-link tokens they use up, key-value
//! agent state (MAC'd like every setting), and parts of split attachments.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::record::ChatLink;
use super::{PairingInfo, Result, Store, StoreError, now_text};

impl Store {
    /// Binds a chat of `transport` to a pairing and uses up the pairing's
    /// token, in its record and its row.
    ///
    /// # Errors
    /// [`StoreError::Modified`]; database errors (a chat already bound to
    /// another pairing among them).
    pub fn bind_chat(
        &self,
        pairing: &PairingInfo,
        transport: &str,
        chat: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO chat_links (pairing_id, transport, chat) VALUES (?1, ?2, ?3)",
                params![pairing.id, transport, chat],
            )?;
            self.update_record(pairing.id, |record| {
                record.token_hash = None;
                record.chat = Some(ChatLink {
                    transport: transport.to_owned(),
                    chat: chat.to_owned(),
                    bound_at: now_text(now),
                });
                Ok(())
            })?;
            self.conn
                .execute("UPDATE pairings SET token_hash = NULL WHERE id = ?1", [pairing.id])?;
            self.audit(
                now,
                "chat_bind",
                &pairing.alias,
                "ok",
                &[("transport", transport.to_owned())],
            )
        })
    }

    /// The pairing bound to a chat of `transport`.
    ///
    /// # Errors
    /// [`StoreError::Modified`]; database errors.
    pub fn pairing_for_chat(&self, transport: &str, chat: &str) -> Result<Option<PairingInfo>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT pairing_id FROM chat_links WHERE transport = ?1 AND chat = ?2",
                params![transport, chat],
                |r| r.get(0),
            )
            .optional()?;
        let Some(pairing) = self.pairing_by_id(id)? else {
            return Ok(None);
        };
        match self.checked_chat(pairing.id)? {
            Some(link) if link.transport == transport && link.chat == chat => Ok(Some(pairing)),
            _ => Err(StoreError::Modified(format!(
                "the chat binding of {:?}",
                pairing.alias
            ))),
        }
    }

    /// The chat bound to a pairing, checked against its sealed record.
    ///
    /// # Errors
    /// [`StoreError::Modified`]; database errors.
    pub fn chat_for_pairing(&self, pairing_id: i64) -> Result<Option<ChatLink>> {
        self.checked_chat(pairing_id)
    }

    /// A value the agent keeps between runs (update offset, owner chat, …).
    ///
    /// # Errors
    /// [`StoreError::Modified`]; database errors.
    pub fn agent_value(&self, key: &str) -> Result<Option<String>> {
        self.setting(&format!("agent.{key}"))
    }

    /// Sets an agent value (inside the caller's transaction, if any).
    ///
    /// # Errors
    /// Database errors.
    pub fn set_agent_value(&self, key: &str, value: &str) -> Result<()> {
        self.set_meta(&format!("agent.{key}"), value)
    }

    /// Keeps one part of a split attachment received in a chat until all
    /// have arrived; returns every part once the set is complete. Unfinished
    /// sets expire after [`PART_SET_LIFETIME`]; a chat keeps at most
    /// [`PART_SETS_PER_CHAT`] of them and [`PART_BYTES_PER_CHAT`] bytes in
    /// all (the oldest other sets go first), so junk parts cannot fill the
    /// disk.
    ///
    /// # Errors
    /// Database errors.
    pub fn telegram_part(
        &self,
        header: &crate::protocol::attachment::PartHeader,
        chat_id: &str,
        data: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<PartSet> {
        self.in_transaction(|| {
            let expired = super::now_text(now - PART_SET_LIFETIME);
            self.conn.execute(
                "DELETE FROM telegram_parts WHERE received_at < ?1",
                [&expired],
            )?;
            self.conn.execute(
                "INSERT OR REPLACE INTO telegram_parts (file_id, idx, count, chat_id, data, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![header.file_id.to_vec(), header.index, header.count, chat_id, data, super::now_text(now)],
            )?;
            // This chat's other unfinished sets, oldest first.
            let others: Vec<(Vec<u8>, i64)> = {
                let mut stmt = self.conn.prepare(
                    "SELECT file_id, SUM(LENGTH(data)) FROM telegram_parts
                      WHERE chat_id = ?1 AND file_id != ?2
                      GROUP BY file_id ORDER BY MIN(received_at), MIN(rowid)",
                )?;
                stmt.query_map(params![chat_id, header.file_id.to_vec()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<std::result::Result<_, _>>()?
            };
            let current: i64 = self.conn.query_row(
                "SELECT SUM(LENGTH(data)) FROM telegram_parts WHERE chat_id = ?1 AND file_id = ?2",
                params![chat_id, header.file_id.to_vec()],
                |r| r.get(0),
            )?;
            let limit = i64::try_from(PART_BYTES_PER_CHAT).unwrap_or(i64::MAX);
            if current > limit {
                self.conn.execute(
                    "DELETE FROM telegram_parts WHERE file_id = ?1",
                    [header.file_id.to_vec()],
                )?;
                return Ok(PartSet::TooLarge);
            }
            let mut total: i64 = current + others.iter().map(|(_, n)| n).sum::<i64>();
            let mut sets = others.len() + 1;
            for (file_id, bytes) in &others {
                if sets <= PART_SETS_PER_CHAT && total <= limit {
                    break;
                }
                self.conn
                    .execute("DELETE FROM telegram_parts WHERE file_id = ?1", [file_id])?;
                sets -= 1;
                total -= bytes;
            }
            let have: i64 = self.conn.query_row(
                "SELECT COUNT(*) FROM telegram_parts WHERE file_id = ?1 AND count = ?2 AND chat_id = ?3",
                params![header.file_id.to_vec(), header.count, chat_id],
                |r| r.get(0),
            )?;
            if have == i64::from(header.count) {
                Ok(PartSet::Complete)
            } else {
                Ok(PartSet::Waiting)
            }
        })
    }
}

impl Store {
    /// Writes a complete set of parts, in index order and without their
    /// headers, to `sink`, one part at a time (never the whole file in
    /// memory). The set stays until [`Store::drop_part_set`].
    ///
    /// # Errors
    /// Database errors; the sink's errors as [`StoreError::Io`].
    pub fn write_part_set(
        &self,
        file_id: &[u8],
        chat_id: &str,
        sink: &mut dyn std::io::Write,
    ) -> Result<()> {
        let header_len = crate::protocol::attachment::PART_HEADER_LEN;
        let mut stmt = self.conn.prepare(
            "SELECT data FROM telegram_parts WHERE file_id = ?1 AND chat_id = ?2 ORDER BY idx",
        )?;
        let mut rows = stmt.query(params![file_id, chat_id])?;
        while let Some(row) = rows.next()? {
            let data: Vec<u8> = row.get(0)?;
            sink.write_all(&data[header_len.min(data.len())..])
                .map_err(super::io_err(
                    "cannot write the parts to a temporary file".to_owned(),
                ))?;
        }
        Ok(())
    }

    /// Forgets a set of parts (in the transaction that stored the file).
    ///
    /// # Errors
    /// Database errors.
    pub fn drop_part_set(&self, file_id: &[u8]) -> Result<()> {
        self.conn
            .execute("DELETE FROM telegram_parts WHERE file_id = ?1", [file_id])?;
        Ok(())
    }
}

/// Where a chat's set of parts stands after one more part.
#[derive(Debug)]
pub enum PartSet {
    /// More parts are to come.
    Waiting,
    /// Every part is there: [`Store::write_part_set`] reads them out.
    Complete,
    /// The set alone is over [`PART_BYTES_PER_CHAT`]: dropped.
    TooLarge,
}

/// How long an unfinished set of parts is kept.
pub const PART_SET_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// Unfinished sets kept per chat.
pub const PART_SETS_PER_CHAT: usize = 4;
/// Bytes of unfinished parts kept per chat.
pub const PART_BYTES_PER_CHAT: u64 = 200 * 1024 * 1024;

//! What the agent keeps between runs: chat bindings, the deep-link tokens
//! they use up, key-value agent state, and parts of split attachments.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{PairingInfo, Result, Store, now_text};

impl Store {
    /// The pairing whose deep-link token this is, if it is still unused.
    ///
    /// # Errors
    /// Database errors.
    pub fn pairing_by_token(&self, token: &str) -> Result<Option<PairingInfo>> {
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM pairings WHERE token_hash = ?1 AND role = 'physician'",
                [hash],
                |r| r.get(0),
            )
            .optional()?;
        self.pairing_by_id(id)
    }

    /// Binds a chat to a pairing and uses up the pairing's token.
    ///
    /// # Errors
    /// Database errors (a chat already bound to another pairing among them).
    pub fn bind_chat(&self, pairing: &PairingInfo, chat_id: i64, now: DateTime<Utc>) -> Result<()> {
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO chat_bindings (pairing_id, chat_id, bound_at) VALUES (?1, ?2, ?3)",
                params![pairing.id, chat_id, now_text(now)],
            )?;
            self.conn
                .execute("UPDATE pairings SET token_hash = NULL WHERE id = ?1", [pairing.id])?;
            self.audit(now, "chat_bind", &pairing.alias, "ok", &[])
        })
    }

    /// The pairing bound to a chat.
    ///
    /// # Errors
    /// Database errors.
    pub fn pairing_for_chat(&self, chat_id: i64) -> Result<Option<PairingInfo>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT pairing_id FROM chat_bindings WHERE chat_id = ?1",
                [chat_id],
                |r| r.get(0),
            )
            .optional()?;
        self.pairing_by_id(id)
    }

    /// The chat bound to a pairing.
    ///
    /// # Errors
    /// Database errors.
    pub fn chat_for_pairing(&self, pairing_id: i64) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT chat_id FROM chat_bindings WHERE pairing_id = ?1",
                [pairing_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A value the agent keeps between runs (update offset, owner chat, …).
    ///
    /// # Errors
    /// Database errors.
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
    /// have arrived; returns every part once the set is complete.
    ///
    /// # Errors
    /// Database errors.
    pub fn telegram_part(
        &self,
        header: &crate::protocol::attachment::PartHeader,
        chat_id: i64,
        data: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>> {
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO telegram_parts (file_id, idx, count, chat_id, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![header.file_id.to_vec(), header.index, header.count, chat_id, data],
            )?;
            let mut stmt = self.conn.prepare(
                "SELECT data FROM telegram_parts WHERE file_id = ?1 AND count = ?2 AND chat_id = ?3 ORDER BY idx",
            )?;
            let parts: Vec<Vec<u8>> = stmt
                .query_map(params![header.file_id.to_vec(), header.count, chat_id], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            if parts.len() == usize::from(header.count) {
                self.conn.execute(
                    "DELETE FROM telegram_parts WHERE file_id = ?1",
                    [header.file_id.to_vec()],
                )?;
                Ok(Some(parts))
            } else {
                Ok(None)
            }
        })
    }
}

//! The inbox: decrypted texts and files the agent received, each sealed
//! under the master key (files in 1 MiB rows).

use chrono::{DateTime, Utc};
use rusqlite::params;
use zeroize::Zeroizing;

use super::{PairingInfo, Result, Store, StoreError, io_err, now_text};

/// Bytes of attachment content per encrypted inbox row.
const INBOX_CHUNK: usize = 1 << 20;

/// What an inbox item holds. `Debug` shows no medical content.
#[derive(Clone)]
pub enum InboxContent {
    /// A decrypted text.
    Text(String),
    /// A decrypted file (content via [`Store::inbox_file_content`]).
    File(crate::protocol::attachment::Metadata),
}

impl std::fmt::Debug for InboxContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(text) => write!(f, "Text({} bytes)", text.len()),
            Self::File(meta) => write!(f, "File({} bytes)", meta.size),
        }
    }
}

/// A received, decrypted message.
#[derive(Debug, Clone)]
pub struct InboxItem {
    /// Its number (shown in acknowledgements: "Received ✓ #42").
    pub id: i64,
    /// From which pairing.
    pub alias: String,
    /// When (RFC 3339).
    pub received_at: String,
    /// Text or file.
    pub content: InboxContent,
}

impl Store {
    pub(super) fn inbox_insert(
        &self,
        pairing: &PairingInfo,
        kind: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO inbox (pairing_id, received_at, kind, body) VALUES (?1, ?2, ?3, X'')",
            params![pairing.id, now_text(now), kind],
        )?;
        let id = self.conn.last_insert_rowid();
        self.set_sealed(
            "inbox",
            "body",
            id,
            &format!("medcrypt/store/v1/inbox:{id}"),
            body,
        )?;
        Ok(id)
    }

    /// Stores a received text in the inbox (encrypted) and returns its number.
    ///
    /// # Errors
    /// Database errors.
    pub fn inbox_add_text(
        &self,
        pairing: &PairingInfo,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.in_transaction(|| self.inbox_insert(pairing, "text", text.as_bytes(), now))
    }

    /// Stores a received file in the inbox: its metadata and its content,
    /// read from `content` in 1 MiB encrypted rows.
    ///
    /// # Errors
    /// Database and I/O errors.
    pub fn inbox_add_file(
        &self,
        pairing: &PairingInfo,
        metadata: &crate::protocol::attachment::Metadata,
        content: &mut dyn std::io::Read,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.in_transaction(|| {
            let json = serde_json::to_vec(metadata).map_err(|_| StoreError::Corrupt("metadata"))?;
            let id = self.inbox_insert(pairing, "file", &json, now)?;
            let mut buf = Zeroizing::new(vec![0u8; INBOX_CHUNK]);
            for idx in 0u64.. {
                let n = crate::protocol::attachment::read_full(content, &mut buf)
                    .map_err(io_err("cannot read the attachment".into()))?;
                if n == 0 {
                    break;
                }
                let aad = format!("medcrypt/store/v1/inbox-chunk:{id}:{idx}");
                self.conn.execute(
                    "INSERT INTO inbox_chunks (inbox_id, idx, data) VALUES (?1, ?2, ?3)",
                    params![id, idx, self.seal(&aad, &buf[..n])],
                )?;
                if n < buf.len() {
                    break;
                }
            }
            Ok(id)
        })
    }

    /// Inbox items after `after_id`, optionally from one pairing, oldest first.
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`].
    pub fn inbox(&self, from: Option<&PairingInfo>, after_id: i64) -> Result<Vec<InboxItem>> {
        let aliases: std::collections::HashMap<i64, String> = self
            .pairings()?
            .into_iter()
            .map(|p| (p.id, p.alias))
            .collect();
        let mut stmt = self.conn.prepare(
            "SELECT id, pairing_id, received_at, kind, body FROM inbox
             WHERE id > ?1 AND (?2 IS NULL OR pairing_id = ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![after_id, from.map(|p| p.id)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let mut items = Vec::new();
        for row in rows {
            let (id, pairing_id, received_at, kind, body) = row?;
            let plain = self.unseal(&format!("medcrypt/store/v1/inbox:{id}"), &body)?;
            let content = if kind == "file" {
                InboxContent::File(
                    serde_json::from_slice(&plain)
                        .map_err(|_| StoreError::Corrupt("inbox metadata"))?,
                )
            } else {
                InboxContent::Text(
                    String::from_utf8(plain.to_vec())
                        .map_err(|_| StoreError::Corrupt("inbox text"))?,
                )
            };
            items.push(InboxItem {
                id,
                alias: aliases.get(&pairing_id).cloned().unwrap_or_default(),
                received_at,
                content,
            });
        }
        Ok(items)
    }

    /// Writes the content of a file in the inbox to `out`.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`], I/O errors.
    pub fn inbox_file_content(&self, id: i64, out: &mut dyn std::io::Write) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx, data FROM inbox_chunks WHERE inbox_id = ?1 ORDER BY idx")?;
        let rows = stmt.query_map([id], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        for (expected, row) in (0u64..).zip(rows) {
            let (idx, data) = row?;
            if idx != expected {
                return Err(StoreError::Corrupt(
                    "an inbox attachment has a missing part",
                ));
            }
            let plain = self.unseal(&format!("medcrypt/store/v1/inbox-chunk:{id}:{idx}"), &data)?;
            out.write_all(&plain)
                .map_err(io_err("cannot write the attachment".into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_medical_content() {
        let content = InboxContent::Text("HIV positive".into());
        assert_eq!(format!("{content:?}"), "Text(12 bytes)");
    }
}

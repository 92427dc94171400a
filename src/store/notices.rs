//! Notices for the physician, queued durably until delivered (emergency
//! access, a retired recovery code), and the few secrets an unattended
//! command needs to deliver them (the Telegram bot token), sealed.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, now_text};

fn notice_aad(id: i64) -> String {
    format!("medcrypt/store/v2/notice:{id}")
}

fn secret_aad(name: &str) -> String {
    format!("medcrypt/store/v2/secret:{name}")
}

/// A notice waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Its number.
    pub id: i64,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// Its text (no medical content: who, when, what kind of access).
    pub text: String,
}

impl Store {
    /// Queues a notice for the physician (in the caller's transaction).
    ///
    /// # Errors
    /// Database errors.
    pub fn queue_notice(&self, text: &str, now: DateTime<Utc>) -> Result<i64> {
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT INTO notices (created_at, body) VALUES (?1, X'')",
                [now_text(now)],
            )?;
            let id = self.conn.last_insert_rowid();
            self.set_sealed("notices", "body", id, &notice_aad(id), text.as_bytes())?;
            Ok(id)
        })
    }

    /// The notices not yet delivered, oldest first.
    ///
    /// # Errors
    /// Database errors; [`super::StoreError::Corrupt`] for a notice that
    /// fails authentication.
    pub fn pending_notices(&self) -> Result<Vec<Notice>> {
        let rows: Vec<(i64, String, Vec<u8>)> = {
            let mut stmt = self.conn.prepare(
                "SELECT id, created_at, body FROM notices WHERE delivered_at IS NULL ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        rows.into_iter()
            .map(|(id, created_at, body)| {
                let text = self.unseal(&notice_aad(id), &body)?;
                Ok(Notice {
                    id,
                    created_at,
                    text: String::from_utf8_lossy(&text).into_owned(),
                })
            })
            .collect()
    }

    /// Marks a notice delivered.
    ///
    /// # Errors
    /// Database errors.
    pub fn notice_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.conn.execute(
            "UPDATE notices SET delivered_at = ?1, attempts = attempts + 1 WHERE id = ?2",
            params![now_text(now), id],
        )?;
        Ok(())
    }

    /// Counts a failed delivery attempt; the notice stays queued.
    ///
    /// # Errors
    /// Database errors.
    pub fn notice_attempted(&self, id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE notices SET attempts = attempts + 1 WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Keeps a secret sealed under the master key (`None` removes it).
    ///
    /// # Errors
    /// Database errors.
    pub fn set_secret(&self, name: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(value) => {
                self.conn.execute(
                    "INSERT OR REPLACE INTO secrets (name, value) VALUES (?1, ?2)",
                    params![name, self.seal(&secret_aad(name), value.as_bytes())],
                )?;
            }
            None => {
                self.conn
                    .execute("DELETE FROM secrets WHERE name = ?1", [name])?;
            }
        }
        Ok(())
    }

    /// A secret kept with [`Store::set_secret`].
    ///
    /// # Errors
    /// Database errors; a secret that fails authentication.
    pub fn secret(&self, name: &str) -> Result<Option<zeroize::Zeroizing<String>>> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        blob.map(|blob| {
            let plain = self.unseal(&secret_aad(name), &blob)?;
            Ok(zeroize::Zeroizing::new(
                String::from_utf8_lossy(&plain).into_owned(),
            ))
        })
        .transpose()
    }
}

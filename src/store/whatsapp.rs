//! What the WhatsApp agent keeps: the durable queue of webhook events
//! (sealed, deduplicated on their key in the transaction that stores
//! them), which outbox item each sent `wamid` is, and when each user last
//! wrote — WhatsApp's 24-hour customer-service window.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::{Result, Store, StoreError, now_text};

/// Keys of handled events are kept this many days (Meta retries a webhook
/// for up to 7), so that a late duplicate is still recognised.
pub const WHATSAPP_DEDUP_DAYS: i64 = 8;

fn event_aad(id: i64) -> String {
    format!("medcrypt/store/v2/whatsapp-event:{id}")
}

impl Store {
    /// Stores webhook events durably, each under its key (the message's
    /// `wamid`…), in one transaction: an event whose key is already there —
    /// a retry or a duplicate, however late or out of order — is not
    /// stored again. Returns how many were new.
    ///
    /// # Errors
    /// Database errors (the webhook is then answered with an error, and
    /// Meta delivers it again).
    pub fn whatsapp_persist(
        &self,
        events: &[(String, Vec<u8>)],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        self.in_transaction(|| {
            let mut new = 0;
            for (key, body) in events {
                let inserted = self.conn.execute(
                    "INSERT OR IGNORE INTO whatsapp_events (key, received_at, body) VALUES (?1, ?2, X'')",
                    params![key, now_text(now)],
                )?;
                if inserted == 1 {
                    let id = self.conn.last_insert_rowid();
                    self.set_sealed("whatsapp_events", "body", id, &event_aad(id), body)?;
                    new += 1;
                }
            }
            Ok(new)
        })
    }

    /// Up to `limit` events not yet handled, oldest first, opened.
    ///
    /// # Errors
    /// Database errors; [`StoreError::Modified`] for an event that fails
    /// authentication.
    pub fn whatsapp_pending(&self, limit: usize) -> Result<Vec<(i64, Zeroizing<Vec<u8>>)>> {
        let rows: Vec<(i64, Vec<u8>)> = {
            let mut stmt = self.conn.prepare(
                "SELECT id, body FROM whatsapp_events WHERE done = 0 ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        rows.into_iter()
            .map(|(id, blob)| {
                self.unseal(&event_aad(id), &blob)
                    .map(|body| (id, body))
                    .map_err(|_| StoreError::Modified(format!("WhatsApp event #{id}")))
            })
            .collect()
    }

    /// Marks an event handled and forgets its content (inside the caller's
    /// transaction, with whatever handling it changed); its key stays for
    /// [`WHATSAPP_DEDUP_DAYS`].
    ///
    /// # Errors
    /// Database errors.
    pub fn whatsapp_event_done(&self, id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE whatsapp_events SET done = 1, body = X'' WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Forgets the keys of events handled more than
    /// [`WHATSAPP_DEDUP_DAYS`] ago; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub fn whatsapp_prune(&self, now: DateTime<Utc>) -> Result<usize> {
        let before = now_text(now - chrono::TimeDelta::days(WHATSAPP_DEDUP_DAYS));
        // Who wrote when matters for 24 hours; older rows only keep numbers.
        self.conn.execute(
            "DELETE FROM whatsapp_users WHERE last_inbound < ?1",
            [now.timestamp() - WHATSAPP_DEDUP_DAYS * 24 * 3600],
        )?;
        Ok(self.conn.execute(
            "DELETE FROM whatsapp_events WHERE done = 1 AND received_at < ?1",
            [before],
        )?)
    }

    /// Remembers that `wamid` is outbox item `outbox_id` (its status
    /// webhooks name only the wamid).
    ///
    /// # Errors
    /// Database errors.
    pub fn whatsapp_sent(&self, wamid: &str, outbox_id: i64) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO whatsapp_sent (wamid, outbox_id) VALUES (?1, ?2)",
            params![wamid, outbox_id],
        )?;
        Ok(())
    }

    /// The outbox item sent as `wamid`, if it was.
    ///
    /// # Errors
    /// Database errors.
    pub fn whatsapp_sent_item(&self, wamid: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT outbox_id FROM whatsapp_sent WHERE wamid = ?1",
                [wamid],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records a message from `user` sent at `at` (Unix seconds): the
    /// latest one opens WhatsApp's 24-hour window (webhooks may arrive late
    /// and out of order, so an older one changes nothing).
    ///
    /// # Errors
    /// Database errors.
    pub fn whatsapp_user_wrote(&self, user: &str, at: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO whatsapp_users (user, last_inbound) VALUES (?1, ?2)
             ON CONFLICT (user) DO UPDATE SET last_inbound = MAX(last_inbound, excluded.last_inbound)",
            params![user, at],
        )?;
        Ok(())
    }

    /// When `user` last wrote (Unix seconds), and the `last_inbound` for
    /// which the re-engagement template already went out, if it did.
    ///
    /// # Errors
    /// Database errors.
    pub fn whatsapp_user(&self, user: &str) -> Result<Option<(i64, Option<i64>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_inbound, template_for FROM whatsapp_users WHERE user = ?1",
                [user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Forgets that the template went out to `user` (it could not be sent).
    ///
    /// # Errors
    /// Database errors.
    pub fn whatsapp_template_unsent(&self, user: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE whatsapp_users SET template_for = NULL WHERE user = ?1",
            [user],
        )?;
        Ok(())
    }

    /// Records that the template went out to `user` since their message at
    /// `last_inbound` (so it goes out once per silence, not per item).
    ///
    /// # Errors
    /// Database errors.
    pub fn whatsapp_template_sent(&self, user: &str, last_inbound: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO whatsapp_users (user, last_inbound, template_for) VALUES (?1, ?2, ?2)
             ON CONFLICT (user) DO UPDATE SET template_for = ?2",
            params![user, last_inbound],
        )?;
        Ok(())
    }
}

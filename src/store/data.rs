//! Moving the data of a store made by an earlier MedCrypt into the current
//! form, at its first unlock (SQL migrations cannot: the rows must be
//! sealed under the master key). And recomputing what the store's derived
//! keys made — row MACs and history digests — when the master key changes.
//!
//! Whether a store still needs this is decided from sealed state, not from
//! a plain flag an attacker could set: the audit encryption key is sealed
//! under a new associated-data label at the end of the upgrade.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::protocol::epoch::Epoch;
use crate::protocol::keys::{Direction, EpochKey};
use crate::protocol::wire::ReplayId;

use super::audit::{AUDIT_ENC_KEY_AAD, LEGACY_AUDIT_ENC_KEY_AAD};
use super::manifest::PLAIN_SETTINGS;
use super::record::{ChatLink, PairingRecord, PlainPairing};
use super::{Result, Store, StoreError, parse_time};

/// Tables of schema 4 whose rows the upgrade moves, then drops.
const LEGACY_TABLES: [&str; 5] = [
    "seen",
    "send_sequence",
    "chat_bindings",
    "inbox_chunks",
    "inbox",
];

fn table_exists(store: &Store, name: &str) -> Result<bool> {
    Ok(store.conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )?)
}

impl Store {
    /// Whether this store's rows are still in the form of schema 4.
    pub(super) fn needs_data_upgrade(&self) -> Result<bool> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT enc_key FROM audit_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        match blob {
            // Every store since schema 2 has an audit log: its state was
            // deleted ([`Store::check_no_legacy_rows`] says so).
            None => Ok(false),
            Some(blob) => {
                if self.unseal(AUDIT_ENC_KEY_AAD, &blob).is_ok() {
                    Ok(false)
                } else if self.unseal(LEGACY_AUDIT_ENC_KEY_AAD, &blob).is_ok() {
                    Ok(true)
                } else {
                    Err(StoreError::Corrupt("the audit key fails authentication"))
                }
            }
        }
    }

    /// In a store of the current form: the audit state is there, no table
    /// of schema 4 came back and every pairing has its sealed record.
    /// Whether the old form's data is moved is decided by sealed state
    /// alone, so rows planted in the old form are never read.
    pub(super) fn check_no_legacy_rows(&self) -> Result<()> {
        let has_audit: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM audit_state WHERE id = 1)",
            [],
            |r| r.get(0),
        )?;
        if !has_audit {
            return Err(StoreError::Modified("the audit log's state".into()));
        }
        for table in LEGACY_TABLES {
            if table_exists(self, table)? {
                return Err(StoreError::Modified(format!(
                    "a table of an older store form ({table}) was added"
                )));
            }
        }
        let unsealed: i64 = self.conn.query_row(
            "SELECT count(*) FROM pairings WHERE record IS NULL",
            [],
            |r| r.get(0),
        )?;
        if unsealed > 0 {
            return Err(StoreError::Modified("a pairing's sealed record".into()));
        }
        Ok(())
    }

    /// Drops the tables of schema 4 (empty in a new store).
    pub(super) fn drop_legacy_tables(&self) -> Result<()> {
        for table in LEGACY_TABLES {
            self.conn
                .execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
        }
        Ok(())
    }

    /// Moves every row of a schema 4 store into the current form, in one
    /// transaction.
    pub(super) fn upgrade_data(&self, now: DateTime<Utc>) -> Result<()> {
        self.in_transaction(|| {
            // Settings first: everything after reads them through their MAC.
            let meta: Vec<(String, String)> = {
                let mut stmt = self.conn.prepare("SELECT key, value FROM meta")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            for (key, value) in meta {
                if !PLAIN_SETTINGS.contains(&key.as_str()) {
                    self.set_meta(&key, &value)?;
                }
            }
            self.upgrade_pairings()?;
            self.upgrade_epoch_keys()?;
            if table_exists(self, "inbox")? {
                self.upgrade_inbox(now)?;
            }
            self.upgrade_outbox()?;
            if let Some(blob) = self
                .conn
                .query_row("SELECT enc_key FROM audit_state WHERE id = 1", [], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
                .optional()?
            {
                let key = self.unseal(LEGACY_AUDIT_ENC_KEY_AAD, &blob)?;
                self.conn.execute(
                    "UPDATE audit_state SET enc_key = ?1 WHERE id = 1",
                    [self.seal(AUDIT_ENC_KEY_AAD, &key)],
                )?;
            }
            self.drop_legacy_tables()?;
            if self.setting("retention")?.is_none() {
                self.set_meta("retention", "key-lifetime")?;
            }
            self.seal_all_manifests()
        })?;
        self.checkpoint()
    }

    fn upgrade_pairings(&self) -> Result<()> {
        let rows: Vec<PlainPairing> = {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {} FROM pairings WHERE record IS NULL",
                PlainPairing::COLUMNS
            ))?;
            let rows = stmt.query_map([], PlainPairing::from_row)?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for row in rows {
            let mut record = PairingRecord::from_info(&row.info(), row.token_hash.clone());
            if table_exists(self, "seen")? {
                let seen: Vec<(String, u8, u32)> = {
                    let mut stmt = self.conn.prepare(
                        "SELECT epoch, direction, sequence FROM seen WHERE pairing_id = ?1",
                    )?;
                    let rows =
                        stmt.query_map([row.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect::<std::result::Result<_, _>>()?
                };
                for (epoch, direction, sequence) in seen {
                    if let (Ok(epoch), Some(direction)) =
                        (epoch.parse::<Epoch>(), Direction::from_code(direction))
                    {
                        record.mark_seen(&ReplayId {
                            epoch,
                            direction,
                            sequence,
                        });
                    }
                }
                let sent: Vec<(String, u8, u32)> = {
                    let mut stmt = self.conn.prepare(
                        "SELECT epoch, direction, last FROM send_sequence WHERE pairing_id = ?1",
                    )?;
                    let rows =
                        stmt.query_map([row.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect::<std::result::Result<_, _>>()?
                };
                for (epoch, direction, last) in sent {
                    if let (Ok(epoch), Some(direction)) =
                        (epoch.parse::<Epoch>(), Direction::from_code(direction))
                    {
                        record.set_sent(epoch, direction, last);
                    }
                }
                let chat: Option<(i64, String)> = self
                    .conn
                    .query_row(
                        "SELECT chat_id, bound_at FROM chat_bindings WHERE pairing_id = ?1",
                        [row.id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((chat, bound_at)) = chat {
                    record.chat = Some(ChatLink {
                        transport: "telegram".into(),
                        chat: chat.to_string(),
                        bound_at,
                    });
                    self.conn.execute(
                        "INSERT OR REPLACE INTO chat_links (pairing_id, transport, chat) VALUES (?1, 'telegram', ?2)",
                        params![row.id, chat.to_string()],
                    )?;
                }
            }
            self.save_record(row.id, &record)?;
        }
        Ok(())
    }

    fn upgrade_epoch_keys(&self) -> Result<()> {
        let rows: Vec<(i64, String, Vec<u8>)> = {
            let mut stmt = self.conn.prepare(
                "SELECT k.pairing_id, k.epoch, k.key FROM epoch_keys k
                 WHERE NOT EXISTS (SELECT 1 FROM shred_keys s
                                   WHERE s.pairing_id = k.pairing_id AND s.epoch = k.epoch)",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (pairing_id, epoch, blob) in rows {
            let epoch: Epoch = epoch
                .parse()
                .map_err(|_| StoreError::Corrupt("bad epoch name"))?;
            let plain = self.unseal(&Self::epoch_key_aad(pairing_id, epoch), &blob)?;
            let bytes: &[u8; 32] = plain
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("epoch key of wrong length"))?;
            self.insert_epoch_key(pairing_id, &EpochKey::from_bytes(epoch, bytes))?;
        }
        Ok(())
    }

    /// The agent's inbox of schema 4 becomes history, kept until the end of
    /// its month key (the default policy) or under the store's policy.
    fn upgrade_inbox(&self, now: DateTime<Utc>) -> Result<()> {
        let rows: Vec<(i64, i64, String, String, Vec<u8>)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, pairing_id, received_at, kind, body FROM inbox ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (old_id, pairing_id, received_at, kind, body) in rows {
            let plain = self.unseal(&format!("medcrypt/store/v1/inbox:{old_id}"), &body)?;
            let Some(pairing) = self.pairing_by_id(Some(pairing_id))? else {
                continue;
            };
            let received = parse_time(&received_at).unwrap_or(now);
            let epoch = Epoch::containing(received);
            let text = (kind != "file").then(|| String::from_utf8_lossy(&plain).into_owned());
            let metadata = if kind == "file" {
                serde_json::from_slice(&plain).ok()
            } else {
                None
            };
            let chunks: Vec<(u64, Vec<u8>)> = {
                let mut stmt = self.conn.prepare(
                    "SELECT idx, data FROM inbox_chunks WHERE inbox_id = ?1 ORDER BY idx",
                )?;
                let rows = stmt.query_map([old_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            let mut content = Vec::new();
            for (idx, data) in chunks {
                content.extend_from_slice(&self.unseal(
                    &format!("medcrypt/store/v1/inbox-chunk:{old_id}:{idx}"),
                    &data,
                )?);
            }
            let identity = format!("schema-4 inbox item {old_id}");
            self.import_history(
                &pairing,
                received,
                epoch,
                identity.as_bytes(),
                text,
                metadata,
                &content,
                now,
            )?;
        }
        Ok(())
    }

    fn upgrade_outbox(&self) -> Result<()> {
        let rows: Vec<(i64, i64, String, Vec<u8>)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, pairing_id, kind, payload FROM outbox WHERE mac IS NULL")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (id, pairing_id, kind, payload) in rows {
            let plain = self.unseal(&format!("medcrypt/store/v1/outbox:{id}"), &payload)?;
            self.conn.execute(
                "UPDATE outbox SET payload = ?1 WHERE id = ?2",
                params![
                    self.seal(
                        &format!("medcrypt/store/v2/outbox:{id}:{pairing_id}:{kind}"),
                        &plain
                    ),
                    id
                ],
            )?;
            self.refresh_outbox_mac(id)?;
        }
        Ok(())
    }

    /// After a new master key: the row MACs, manifests and history digests
    /// it keys are made again (the rows were checked under the old key).
    pub(super) fn remake_derived(&self) -> Result<()> {
        let meta: Vec<(String, String)> = {
            let mut stmt = self.conn.prepare("SELECT key, value FROM meta")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        // Checked under the old key before this call ([`Store::check_rows`]).
        for (key, value) in meta {
            if !PLAIN_SETTINGS.contains(&key.as_str()) {
                self.set_meta(&key, &value)?;
            }
        }
        let outbox: Vec<i64> = {
            let mut stmt = self.conn.prepare("SELECT id FROM outbox")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for id in outbox {
            self.refresh_outbox_mac(id)?;
        }
        let mut digests = BTreeMap::new();
        for id in self.history_ids()? {
            digests.insert(id, self.digest_of(&self.history_identity(id)?));
        }
        for (id, digest) in digests {
            self.conn.execute(
                "UPDATE history SET digest = ?1 WHERE id = ?2",
                params![digest.to_vec(), id],
            )?;
        }
        self.seal_all_manifests()
    }

    fn history_ids(&self) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare("SELECT id FROM history")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

/// The SHA-256 of what identifies a message or file.
pub(super) fn identity_sha256(identity: &[u8]) -> [u8; 32] {
    Sha256::digest(identity).into()
}

//! Month keys: stored in two layers, rotated forward, destroyed on time.
//!
//! Each epoch key is sealed under a random *shred key* of its own, and that
//! under the master key. The shred keys sit in clear in `shred_keys` with
//! the time they fall due: they add nothing an attacker with the file could
//! use without the master key, but deleting one destroys its epoch key for
//! good — and that needs no passphrase. So a shredder run daily by the
//! system (`medcrypt keys shred`) destroys every month key on time even in
//! a store nobody opens, together with the history sealed under it.
//!
//! The newest key of each pairing is kept past its time (it is the only way
//! forward), so at every rotation the next month's key is derived ahead:
//! then the current month's key is never the newest and always dies on time.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::protocol::epoch::Epoch;
use crate::protocol::keys::{Advance, EpochChain, EpochKey};

use super::manifest::Family;
use super::sealing::{aead_open, aead_seal};
use super::{PairingInfo, Protocol, Result, Store, StoreError, now_text, parse_time, random_bytes};

/// What rotation did to one pairing.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The pairing's alias.
    pub alias: String,
    /// Keys derived and destroyed.
    pub advance: Advance,
}

/// A month key that was destroyed: when it fell due and when it really
/// went, and who destroyed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destruction {
    /// The pairing's alias.
    pub alias: String,
    /// The month.
    pub epoch: Epoch,
    /// When it was due (7 × 24 h into the next month).
    pub due_at: DateTime<Utc>,
    /// When it was destroyed.
    pub destroyed_at: DateTime<Utc>,
    /// Destroyed by the scheduled shredder (without the passphrase), rather
    /// than by a command that unlocked the store.
    pub by_shredder: bool,
}

fn shred_layer_aad(pairing_id: i64, epoch: Epoch) -> String {
    format!("medcrypt/store/v2/shred-layer:{pairing_id}:{epoch}")
}

/// Deletes a month key of a pairing and what lives only as long as it: its
/// shred key, the history sealed under it. Works without the master key.
fn destroy_key(
    conn: &Connection,
    pairing_id: i64,
    epoch: Epoch,
    now: DateTime<Utc>,
    by_shredder: bool,
) -> Result<()> {
    let e = epoch.to_string();
    conn.execute(
        "DELETE FROM epoch_keys WHERE pairing_id = ?1 AND epoch = ?2",
        params![pairing_id, e],
    )?;
    conn.execute(
        "DELETE FROM shred_keys WHERE pairing_id = ?1 AND epoch = ?2",
        params![pairing_id, e],
    )?;
    let mine = "pairing_id = ?1 AND epoch = ?2 AND scope = 'epoch'";
    super::manifest::leave_tombstones(conn, mine, params![pairing_id, e])?;
    conn.execute(
        &format!("DELETE FROM history WHERE {mine}"),
        params![pairing_id, e],
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO shredded (pairing_id, epoch, destroyed_at, due_at, by_shredder, audited)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            pairing_id,
            e,
            now_text(now),
            now_text(epoch.destruction_time()),
            by_shredder,
            !by_shredder
        ],
    )?;
    Ok(())
}

/// History kept under the master key whose retention period is over.
fn expire_history(conn: &Connection, now: DateTime<Utc>) -> Result<usize> {
    let over = "scope = 'master' AND expires_at IS NOT NULL AND expires_at <= ?1";
    super::manifest::leave_tombstones(conn, over, [now_text(now)])?;
    Ok(conn.execute(
        &format!("DELETE FROM history WHERE {over}"),
        [now_text(now)],
    )?)
}

impl Store {
    pub(super) fn epoch_key_aad(pairing_id: i64, epoch: Epoch) -> String {
        format!("medcrypt/store/v1/epoch-key:{pairing_id}:{epoch}")
    }

    /// Stores an epoch key in its two layers, with a new shred key due at
    /// the month's destruction time.
    pub(super) fn insert_epoch_key(&self, pairing_id: i64, key: &EpochKey) -> Result<()> {
        let epoch = key.epoch();
        let shred_key: [u8; 32] = random_bytes();
        let inner = aead_seal(
            &shred_key,
            &shred_layer_aad(pairing_id, epoch),
            key.expose_bytes(),
        );
        let blob = self.seal(&Self::epoch_key_aad(pairing_id, epoch), &inner);
        self.conn.execute(
            "INSERT OR REPLACE INTO epoch_keys (pairing_id, epoch, key) VALUES (?1, ?2, ?3)",
            params![pairing_id, epoch.to_string(), blob],
        )?;
        self.conn.execute(
            "INSERT OR REPLACE INTO shred_keys (pairing_id, epoch, due_at, key) VALUES (?1, ?2, ?3, ?4)",
            params![
                pairing_id,
                epoch.to_string(),
                now_text(epoch.destruction_time()),
                shred_key.to_vec()
            ],
        )?;
        Ok(())
    }

    /// The live epoch keys of a v2 pairing.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a key fails authentication or the chain
    /// is broken; [`StoreError::Modified`] when a key lost its shred key;
    /// database errors.
    pub fn chain(&self, pairing: &PairingInfo) -> Result<EpochChain> {
        let mut stmt = self.conn.prepare(
            "SELECT k.epoch, k.key, s.key FROM epoch_keys k
             LEFT JOIN shred_keys s ON s.pairing_id = k.pairing_id AND s.epoch = k.epoch
             WHERE k.pairing_id = ?1",
        )?;
        let rows = stmt.query_map([pairing.id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (epoch, blob, shred_key) = row?;
            let epoch: Epoch = epoch
                .parse()
                .map_err(|_| StoreError::Corrupt("bad epoch name"))?;
            let inner = self.unseal(&Self::epoch_key_aad(pairing.id, epoch), &blob)?;
            let shred_key: [u8; 32] =
                shred_key.and_then(|k| k.try_into().ok()).ok_or_else(|| {
                    StoreError::Modified(format!(
                        "the {epoch} key of {:?} lost its shred key",
                        pairing.alias
                    ))
                })?;
            let plain = aead_open(&shred_key, &shred_layer_aad(pairing.id, epoch), &inner)
                .ok_or(StoreError::Corrupt("an epoch key fails authentication"))?;
            let bytes: &[u8; 32] = plain
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("epoch key of wrong length"))?;
            keys.push(EpochKey::from_bytes(epoch, bytes));
        }
        EpochChain::from_keys(keys)
            .map_err(|_| StoreError::Corrupt("epoch keys are not consecutive"))
    }

    /// Ratchets every v2 pairing to the epoch of `now` (and one month
    /// ahead), destroys keys past their window with the history sealed under
    /// them, drops expired history, in one transaction; then truncates the
    /// WAL if anything was destroyed.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`], [`StoreError::Modified`].
    pub fn rotate(&self, now: DateTime<Utc>) -> Result<Vec<Rotation>> {
        let mut report = Vec::new();
        let pairings = self.pairings()?;
        let expired = self.in_transaction(|| {
            for pairing in pairings.iter().filter(|p| p.protocol == Protocol::V2) {
                let mut chain = self.chain(pairing)?;
                let mut advance = chain.advance(now);
                advance.derived.extend(chain.look_ahead(now));
                if advance == Advance::default() {
                    continue;
                }
                for key in chain.keys() {
                    if advance.derived.contains(&key.epoch()) {
                        self.insert_epoch_key(pairing.id, key)?;
                    }
                }
                for epoch in &advance.derived {
                    let epoch = epoch.to_string();
                    self.audit(
                        now,
                        "epoch_advance",
                        &pairing.alias,
                        "ok",
                        &[("epoch", epoch)],
                    )?;
                }
                for &epoch in &advance.destroyed {
                    destroy_key(&self.conn, pairing.id, epoch, now, false)?;
                    self.update_record(pairing.id, |record| {
                        record.forget_epoch(epoch);
                        Ok(())
                    })?;
                    self.audit(
                        now,
                        "key_shred",
                        &pairing.alias,
                        "ok",
                        &[
                            ("epoch", epoch.to_string()),
                            ("due_at", now_text(epoch.destruction_time())),
                        ],
                    )?;
                }
                report.push(Rotation {
                    alias: pairing.alias.clone(),
                    advance,
                });
            }
            let expired = expire_history(&self.conn, now)?;
            self.touched(Family::History)?;
            Ok(expired)
        })?;
        if expired > 0 || report.iter().any(|r| !r.advance.destroyed.is_empty()) {
            self.checkpoint()?;
        }
        Ok(report)
    }

    /// How the key of `epoch` of this pairing was destroyed, if it was.
    ///
    /// # Errors
    /// Database errors.
    pub fn destruction(&self, pairing: &PairingInfo, epoch: Epoch) -> Result<Option<Destruction>> {
        let row: Option<(String, Option<String>, bool)> = self
            .conn
            .query_row(
                "SELECT destroyed_at, due_at, by_shredder FROM shredded WHERE pairing_id = ?1 AND epoch = ?2",
                params![pairing.id, epoch.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row.and_then(|(destroyed, due, by_shredder)| {
            Some(Destruction {
                alias: pairing.alias.clone(),
                epoch,
                due_at: due
                    .as_deref()
                    .and_then(parse_time)
                    .unwrap_or_else(|| epoch.destruction_time()),
                destroyed_at: parse_time(&destroyed)?,
                by_shredder,
            })
        }))
    }

    /// Every destroyed month key of this pairing, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn destructions(&self, pairing: &PairingInfo) -> Result<Vec<Destruction>> {
        let epochs: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT epoch FROM shredded WHERE pairing_id = ?1 ORDER BY epoch")?;
            let rows = stmt.query_map([pairing.id], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut out = Vec::new();
        for epoch in epochs {
            if let Ok(epoch) = epoch.parse::<Epoch>()
                && let Some(d) = self.destruction(pairing, epoch)?
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// When the key of `epoch` of this pairing was destroyed, if it was.
    ///
    /// # Errors
    /// Database errors.
    pub fn shredded_at(
        &self,
        pairing: &PairingInfo,
        epoch: Epoch,
    ) -> Result<Option<DateTime<Utc>>> {
        Ok(self.destruction(pairing, epoch)?.map(|d| d.destroyed_at))
    }

    /// Checks that every destruction on record happened: its month was past
    /// its destruction time (by this clock or the shredder's) and its key
    /// is gone. A planted record would otherwise reopen the replay state
    /// and sending counters of a live month.
    ///
    /// # Errors
    /// [`StoreError::Modified`]; database errors.
    pub(super) fn check_destructions(&self, now: DateTime<Utc>) -> Result<()> {
        let shredder = super::clock::plain_time(&self.conn, super::clock::SHREDDER_KEY);
        let at = shredder.map_or(now, |s| s.max(now));
        let rows: Vec<(i64, String, bool)> = {
            let mut stmt = self.conn.prepare(
                "SELECT s.pairing_id, s.epoch,
                        EXISTS(SELECT 1 FROM epoch_keys k
                               WHERE k.pairing_id = s.pairing_id AND k.epoch = s.epoch)
                 FROM shredded s",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (_, epoch, key_still_there) in rows {
            let due = epoch
                .parse::<Epoch>()
                .is_ok_and(|e| e.destruction_time() <= at);
            if !due || key_still_there {
                return Err(StoreError::Modified(format!(
                    "a record of the {epoch} key's destruction (the key was not destroyed)"
                )));
            }
        }
        Ok(())
    }

    /// Writes the audit entries of destructions the keyless shredder did
    /// since the last unlock.
    pub(super) fn audit_shredder_work(&self, now: DateTime<Utc>) -> Result<()> {
        let rows: Vec<(i64, String, String, Option<String>)> = {
            let mut stmt = self.conn.prepare(
                "SELECT s.pairing_id, s.epoch, s.destroyed_at, p.alias FROM shredded s
                 LEFT JOIN pairings p ON p.id = s.pairing_id WHERE s.audited = 0",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        self.in_transaction(|| {
            for (pairing_id, epoch, destroyed_at, alias) in &rows {
                self.audit(
                    now,
                    "key_shred",
                    alias.as_deref().unwrap_or_default(),
                    "ok",
                    &[
                        ("epoch", epoch.clone()),
                        ("destroyed_at", destroyed_at.clone()),
                        ("by", "scheduled shredder".to_owned()),
                    ],
                )?;
                self.conn.execute(
                    "UPDATE shredded SET audited = 1 WHERE pairing_id = ?1 AND epoch = ?2",
                    params![pairing_id, epoch],
                )?;
                if let Ok(epoch) = epoch.parse::<Epoch>() {
                    self.update_record(*pairing_id, |record| {
                        record.forget_epoch(epoch);
                        Ok(())
                    })?;
                }
            }
            Ok(())
        })
    }

    /// The scheduled shredder: destroys, without the passphrase, every month
    /// key past its destruction time (but the newest of each pairing) and
    /// the history sealed under it, and drops history whose retention is
    /// over. Its "now" is the clock, but never more than two days past the
    /// latest time the store or the shredder trusted. The audit entries are
    /// written at the next unlock.
    ///
    /// # Errors
    /// No store, database errors.
    pub fn shred_due(path: &Path, now: DateTime<Utc>) -> Result<Vec<Destruction>> {
        let mut conn = Self::connect(path)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // A clock far ahead must not destroy keys early: the shredder moves
        // at most two days past the latest time it can trust.
        let now = super::clock::shredder_time(&tx, now)?;
        // Every month key but the newest of its pairing; when each is due
        // comes from its month (a plain column could be edited to delay it).
        let candidates: Vec<(i64, String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT s.pairing_id, s.epoch, p.alias FROM shred_keys s
                 JOIN pairings p ON p.id = s.pairing_id
                 WHERE s.epoch < (SELECT max(epoch) FROM epoch_keys k WHERE k.pairing_id = s.pairing_id)
                 ORDER BY p.alias, s.epoch",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut done = Vec::new();
        for (pairing_id, epoch, alias) in candidates {
            let Ok(epoch) = epoch.parse::<Epoch>() else {
                continue;
            };
            if epoch.destruction_time() > now {
                continue;
            }
            destroy_key(&tx, pairing_id, epoch, now, true)?;
            done.push(Destruction {
                alias,
                epoch,
                due_at: epoch.destruction_time(),
                destroyed_at: now,
                by_shredder: true,
            });
        }
        let expired = expire_history(&tx, now)?;
        tx.commit()?;
        if !done.is_empty() || expired > 0 {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(done)
    }
}

//! Manifests: one MAC per row family over the list of its rows, so that a
//! row deleted (or added) outside MedCrypt is caught, not only a row
//! changed. Each row's own MAC or seal covers what it says; the manifest
//! covers that it is there.
//!
//! The keyless shredder deletes history without the master key, so it
//! cannot update the history manifest: it leaves a tombstone with the
//! columns the manifest covers, and a tombstone counts only when its row
//! was due to go (retention over, or its month key past destruction). The
//! next unlocked command seals the manifest again and clears tombstones.
//!
//! What a manifest cannot catch: the whole store (rows and manifests
//! together) rolled back to an older copy of itself.

use std::cell::Cell;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::protocol::epoch::Epoch;

use super::{Result, Store, StoreError, parse_time};

/// A family of rows with a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// Authenticated settings (by key).
    Settings,
    /// Pairings (by id).
    Pairings,
    /// Outbox items (by id).
    Outbox,
    /// Received messages and files (by id, with when each may go).
    History,
}

impl Family {
    const ALL: [Self; 4] = [Self::Settings, Self::Pairings, Self::Outbox, Self::History];

    fn name(self) -> &'static str {
        match self {
            Self::Settings => "settings",
            Self::Pairings => "pairings",
            Self::Outbox => "outbox",
            Self::History => "history",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::Settings => 1,
            Self::Pairings => 2,
            Self::Outbox => 4,
            Self::History => 8,
        }
    }

    /// What the user reads when rows of this family went missing.
    fn described(self) -> &'static str {
        match self {
            Self::Settings => "the list of settings",
            Self::Pairings => "the list of pairings",
            Self::Outbox => "the list of outbox items",
            Self::History => "the list of received messages and files",
        }
    }
}

/// Settings written without the master key (by the keyless shredder),
/// which therefore carry no MAC and are not in the settings manifest.
pub(super) const PLAIN_SETTINGS: [&str; 1] = [super::clock::SHREDDER_KEY];

/// Families changed in the current transaction, sealed again at its commit.
#[derive(Debug, Default)]
pub(super) struct Dirty(Cell<u8>);

impl Dirty {
    fn mark(&self, family: Family) {
        self.0.set(self.0.get() | family.bit());
    }

    fn take(&self) -> u8 {
        self.0.replace(0)
    }

    pub(super) fn clear(&self) {
        self.0.set(0);
    }
}

/// A history row as its manifest entry covers it.
struct HistoryEntry {
    id: i64,
    pairing_id: i64,
    epoch: Option<String>,
    scope: String,
    expires_at: Option<String>,
}

impl HistoryEntry {
    fn encode(&self) -> Vec<u8> {
        format!(
            "{}|{}|{}|{}|{}",
            self.id,
            self.pairing_id,
            self.epoch.as_deref().unwrap_or("-"),
            self.scope,
            self.expires_at.as_deref().unwrap_or("-")
        )
        .into_bytes()
    }

    /// Whether a row like this may have been deleted by `now`: its
    /// retention is over, or it was sealed under a month key past its
    /// destruction time.
    fn was_due(&self, now: DateTime<Utc>) -> bool {
        let expired = self
            .expires_at
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|at| at <= now);
        let key_gone = self.scope == "epoch"
            && self
                .epoch
                .as_deref()
                .and_then(|e| e.parse::<Epoch>().ok())
                .is_some_and(|e| e.destruction_time() <= now);
        expired || key_gone
    }
}

const HISTORY_COLUMNS: &str = "id, pairing_id, epoch, scope, expires_at";

impl Store {
    /// Notes that rows of `family` were added, removed, or (history) moved
    /// to another retention: its manifest is sealed again at the end of
    /// the transaction, or now outside one.
    pub(super) fn touched(&self, family: Family) -> Result<()> {
        if self.depth.get() == 0 {
            self.seal_manifest(family)
        } else {
            self.dirty.mark(family);
            Ok(())
        }
    }

    /// Seals again the manifests of the families changed in the
    /// transaction about to commit.
    pub(super) fn seal_dirty(&self) -> Result<()> {
        let bits = self.dirty.take();
        for family in Family::ALL {
            if bits & family.bit() != 0 {
                self.seal_manifest(family)?;
            }
        }
        Ok(())
    }

    /// Seals every manifest (a new store, or one just upgraded).
    pub(super) fn seal_all_manifests(&self) -> Result<()> {
        for family in Family::ALL {
            self.seal_manifest(family)?;
        }
        Ok(())
    }

    fn seal_manifest(&self, family: Family) -> Result<()> {
        let entries = self.live_entries(family)?;
        let mac = self.manifest_mac(family, &entries);
        self.conn.execute(
            "INSERT OR REPLACE INTO manifests (family, mac) VALUES (?1, ?2)",
            params![family.name(), mac.to_vec()],
        )?;
        if family == Family::History {
            self.conn.execute("DELETE FROM history_gone", [])?;
        }
        Ok(())
    }

    fn manifest_mac(&self, family: Family, entries: &[Vec<u8>]) -> [u8; 32] {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(entries.len() + 2);
        parts.push(b"manifest");
        parts.push(family.name().as_bytes());
        parts.extend(entries.iter().map(Vec::as_slice));
        self.row_mac(&parts)
    }

    /// The entries of the rows there now, in a canonical order.
    fn live_entries(&self, family: Family) -> Result<Vec<Vec<u8>>> {
        let sql = match family {
            Family::Settings => "SELECT key FROM meta WHERE mac IS NOT NULL ORDER BY key",
            Family::Pairings => "SELECT CAST(id AS TEXT) FROM pairings ORDER BY id",
            Family::Outbox => "SELECT CAST(id AS TEXT) FROM outbox ORDER BY id",
            Family::History => {
                return Ok(self
                    .history_entries("history")?
                    .iter()
                    .map(HistoryEntry::encode)
                    .collect());
            }
        };
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows
            .map(|r| r.map(String::into_bytes))
            .collect::<std::result::Result<_, _>>()?)
    }

    fn history_entries(&self, table: &str) -> Result<Vec<HistoryEntry>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {HISTORY_COLUMNS} FROM {table} ORDER BY id"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(HistoryEntry {
                id: r.get(0)?,
                pairing_id: r.get(1)?,
                epoch: r.get(2)?,
                scope: r.get(3)?,
                expires_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Checks every manifest against the rows there, counting history the
    /// keyless shredder removed when it was due by `now`.
    ///
    /// # Errors
    /// [`StoreError::Modified`] naming the family whose rows were added or
    /// removed outside MedCrypt; database errors.
    pub(super) fn check_manifests(&self, now: DateTime<Utc>) -> Result<()> {
        for family in Family::ALL {
            let stored: Option<Vec<u8>> = self
                .conn
                .query_row(
                    "SELECT mac FROM manifests WHERE family = ?1",
                    [family.name()],
                    |r| r.get(0),
                )
                .optional()?;
            let entries = if family == Family::History {
                self.history_with_tombstones(now)?
            } else {
                self.live_entries(family)?
            };
            let mut parts: Vec<&[u8]> = Vec::with_capacity(entries.len() + 2);
            parts.push(b"manifest");
            parts.push(family.name().as_bytes());
            parts.extend(entries.iter().map(Vec::as_slice));
            if !self.row_mac_ok(&parts, stored.as_deref()) {
                return Err(StoreError::Modified(family.described().to_owned()));
            }
        }
        Ok(())
    }

    /// History rows and the tombstones the keyless shredder left, merged
    /// by id; a tombstone of a row that was not due is a modification.
    fn history_with_tombstones(&self, now: DateTime<Utc>) -> Result<Vec<Vec<u8>>> {
        // The shredder acted at its own trusted time, which may be a little
        // later than this command's clock.
        let shredder = super::clock::plain_time(&self.conn, super::clock::SHREDDER_KEY);
        let at = shredder.map_or(now, |s| s.max(now));
        let mut all = self.history_entries("history")?;
        let gone = self.history_entries("history_gone")?;
        for entry in gone {
            if !entry.was_due(at) || all.iter().any(|e| e.id == entry.id) {
                return Err(StoreError::Modified(format!(
                    "received item #{} (removed before it was due)",
                    entry.id
                )));
            }
            all.push(entry);
        }
        all.sort_by_key(|e| e.id);
        Ok(all.iter().map(HistoryEntry::encode).collect())
    }

    /// Checks every row-level MAC that guards a plain column, and every
    /// manifest: what a command relies on before it acts, and what must
    /// hold before the master key (which keys every MAC) is replaced.
    ///
    /// # Errors
    /// [`StoreError::Modified`]; database errors.
    pub(super) fn check_rows(&self, now: DateTime<Utc>) -> Result<()> {
        let settings: Vec<(String, String, Option<Vec<u8>>)> = {
            let mut stmt = self.conn.prepare("SELECT key, value, mac FROM meta")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (key, value, mac) in settings {
            let plain = PLAIN_SETTINGS.contains(&key.as_str()) && mac.is_none();
            if !plain
                && !self.row_mac_ok(&[b"meta", key.as_bytes(), value.as_bytes()], mac.as_deref())
            {
                return Err(StoreError::Modified(format!("the setting {key:?}")));
            }
        }
        self.outbox(None)?;
        self.check_manifests(now)
    }
}

/// Before the keyless shredder deletes history rows matching `filter`, it
/// leaves their tombstones.
pub(super) fn leave_tombstones(
    conn: &rusqlite::Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO history_gone ({HISTORY_COLUMNS})
             SELECT {HISTORY_COLUMNS} FROM history WHERE {filter}"
        ),
        args,
    )?;
    Ok(())
}

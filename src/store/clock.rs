//! The latest time this store has seen, so that a clock that jumps — a
//! wrong system date, or `MEDCRYPT_NOW` on a real store — is caught before
//! any key is destroyed.

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, now_text, parse_time};

/// Setting of the latest time a command that unlocked the store saw (MAC'd).
const LATEST_KEY: &str = "clock.latest";
/// The latest time the keyless shredder trusted (plain: it has no key).
pub(super) const SHREDDER_KEY: &str = "clock.shredder";
/// How far past the last time it trusts the keyless shredder may go in one
/// run: a clock set months ahead destroys nothing early by more than this.
pub(super) const SHREDDER_STEP: TimeDelta = TimeDelta::days(2);

impl Store {
    /// The latest time a command of this store has seen.
    ///
    /// # Errors
    /// [`super::StoreError::Modified`]; database errors.
    pub fn latest_seen(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.setting(LATEST_KEY)?.as_deref().and_then(parse_time))
    }

    /// Records `now` as seen, when it is later than anything before.
    ///
    /// # Errors
    /// Database errors.
    pub fn note_time(&self, now: DateTime<Utc>) -> Result<()> {
        if self.latest_seen()?.is_none_or(|latest| now > latest) {
            self.set_meta(LATEST_KEY, &now_text(now))?;
        }
        Ok(())
    }

    /// Takes `now` as the latest time seen even if it is earlier (the owner
    /// confirmed that the clock is right).
    ///
    /// # Errors
    /// Database errors.
    pub fn reset_time(&self, now: DateTime<Utc>) -> Result<()> {
        self.set_meta(LATEST_KEY, &now_text(now))
    }
}

pub(super) fn plain_time(conn: &Connection, key: &str) -> Option<DateTime<Utc>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .ok()
    .flatten()
    .as_deref()
    .and_then(parse_time)
}

/// The time the keyless shredder may act on: `now`, but never more than
/// [`SHREDDER_STEP`] past the latest time the store (or the shredder
/// itself) trusted; recorded for the next run.
pub(super) fn shredder_time(conn: &Connection, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let base = [plain_time(conn, LATEST_KEY), plain_time(conn, SHREDDER_KEY)]
        .into_iter()
        .flatten()
        .max();
    let trusted = match base {
        Some(base) if now > base + SHREDDER_STEP => base + SHREDDER_STEP,
        _ => now,
    };
    if base.is_none_or(|base| trusted > base) {
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value, mac) VALUES (?1, ?2, NULL)",
            params![SHREDDER_KEY, now_text(trusted)],
        )?;
    }
    Ok(trusted)
}

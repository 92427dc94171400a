//! Replay state: the sending sequence numbers this side has used and the
//! messages it has received, per (pairing, epoch, direction).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::protocol::epoch::Epoch;
use crate::protocol::keys::Direction;
use crate::protocol::wire::ReplayId;

use super::{PairingInfo, Result, Store, StoreError};

impl Store {
    /// Reserves the next sending sequence number of (pairing, epoch,
    /// direction) and commits it, with its audit entry, before returning, so
    /// a number is never used twice, even if the process dies right after.
    ///
    /// # Errors
    /// Database errors.
    pub fn next_sequence(
        &self,
        pairing: &PairingInfo,
        epoch: Epoch,
        direction: Direction,
        now: DateTime<Utc>,
    ) -> Result<u32> {
        self.in_transaction(|| {
            let last: Option<u32> = self
                .conn
                .query_row(
                    "SELECT last FROM send_sequence WHERE pairing_id = ?1 AND epoch = ?2 AND direction = ?3",
                    params![pairing.id, epoch.to_string(), direction.code()],
                    |r| r.get(0),
                )
                .optional()?;
            let next = last
                .unwrap_or(0)
                .checked_add(1)
                .ok_or(StoreError::Corrupt("sequence numbers exhausted"))?;
            self.conn.execute(
                "INSERT OR REPLACE INTO send_sequence (pairing_id, epoch, direction, last) VALUES (?1, ?2, ?3, ?4)",
                params![pairing.id, epoch.to_string(), direction.code(), next],
            )?;
            self.audit(
                now,
                "encrypt",
                &pairing.alias,
                "ok",
                &[("epoch", epoch.to_string()), ("sequence", next.to_string())],
            )?;
            Ok(next)
        })
    }

    /// Records a received message, with its audit entry; fails (and audits
    /// the rejection) if it was received before.
    ///
    /// # Errors
    /// [`StoreError::Replayed`], or database errors.
    pub fn record_received(
        &self,
        pairing: &PairingInfo,
        id: &ReplayId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let details = [
            ("epoch", id.epoch.to_string()),
            ("direction", id.direction.name().to_owned()),
            ("sequence", id.sequence.to_string()),
        ];
        let fresh = self.in_transaction(|| {
            let inserted = self.conn.execute(
                "INSERT OR IGNORE INTO seen (pairing_id, epoch, direction, sequence) VALUES (?1, ?2, ?3, ?4)",
                params![pairing.id, id.epoch.to_string(), id.direction.code(), id.sequence],
            )?;
            if inserted == 1 {
                self.audit(now, "decrypt", &pairing.alias, "ok", &details)?;
            }
            Ok(inserted == 1)
        })?;
        if !fresh {
            let mut details = details.to_vec();
            details.push(("kind", "replayed".to_owned()));
            self.audit(now, "decrypt_failed", &pairing.alias, "rejected", &details)?;
            return Err(StoreError::Replayed {
                epoch: id.epoch,
                direction: id.direction.name(),
                sequence: id.sequence,
            });
        }
        Ok(())
    }
}

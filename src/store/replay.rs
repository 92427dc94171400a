//! Sending sequence numbers, kept in each pairing's sealed record so that
//! a number is never used twice.

use chrono::{DateTime, Utc};

use crate::protocol::epoch::Epoch;
use crate::protocol::keys::Direction;

use super::{PairingInfo, Result, Store, StoreError};

impl Store {
    /// Reserves the next sending sequence number of (pairing, epoch,
    /// direction) and commits it, with its audit entry, before returning, so
    /// a number is never used twice, even if the process dies right after.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Modified`].
    pub fn next_sequence(
        &self,
        pairing: &PairingInfo,
        epoch: Epoch,
        direction: Direction,
        now: DateTime<Utc>,
    ) -> Result<u32> {
        self.in_transaction(|| {
            let next = self.update_record(pairing.id, |record| {
                let next = record
                    .last_sent(epoch, direction)
                    .unwrap_or(0)
                    .checked_add(1)
                    .ok_or(StoreError::Corrupt("sequence numbers exhausted"))?;
                record.set_sent(epoch, direction, next);
                Ok(next)
            })?;
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
}

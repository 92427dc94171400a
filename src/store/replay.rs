//! Sending sequence numbers, kept in each pairing's sealed record so that
//! a number is never used twice.
//!
//! A number is `max(last + 1, seconds since the month began × 1024)`: it
//! grows with the clock, so a store restored from a backup (or a VM
//! snapshot) sends numbers above any it sent before the restore, and the
//! other side does not reject its new messages as replays.

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
                let after_last = record
                    .last_sent(epoch, direction)
                    .unwrap_or(0)
                    .checked_add(1)
                    .ok_or(StoreError::Corrupt("sequence numbers exhausted"))?;
                let next = after_last.max(time_floor(epoch, now));
                record.set_sent(epoch, direction, next);
                record.last_message = Some(super::now_text(now));
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

/// Sequence numbers per second of a month: a month has at most 2,678,400
/// seconds, so `seconds × 1024` stays below 2^32.
const PER_SECOND: u32 = 1024;

/// The lowest sequence number a message of `epoch` sent at `now` may take.
pub(super) fn time_floor(epoch: Epoch, now: DateTime<Utc>) -> u32 {
    let seconds = (now - epoch.start()).num_seconds().max(0);
    u32::try_from(seconds)
        .ok()
        .and_then(|s| s.checked_mul(PER_SECOND))
        .unwrap_or(u32::MAX - 1)
}

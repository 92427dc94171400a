//! Key status and key destruction: per pairing, the live month keys and
//! when each will be destroyed, the keys already destroyed and when (and
//! whether on time), and the scheduled shredder that needs no passphrase.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::protocol::epoch::Epoch;
use crate::store::{Destruction, Protocol, Retention, Store};

use super::{Result, Session};

/// Where a live month key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The key of the current month: used to encrypt.
    Current,
    /// A past month within its grace period: still accepted.
    GracePeriod,
    /// Next month's key, derived ahead so that this month's can be
    /// destroyed on time by the scheduled shredder.
    Ahead,
    /// Past its destruction time but kept: the pairing's newest key, the
    /// only way forward (the store was not opened since).
    DueKeptAsNewest,
}

/// One live month key.
#[derive(Debug, Clone)]
pub struct LiveKey {
    /// The month.
    pub epoch: Epoch,
    /// Its state.
    pub state: KeyState,
    /// When it is due to be destroyed.
    pub due_at: DateTime<Utc>,
}

/// The keys of one pairing.
#[derive(Debug, Clone)]
pub struct PairingKeys {
    /// The pairing.
    pub alias: String,
    /// A legacy v1 pairing, whose keys cannot be destroyed.
    pub legacy: bool,
    /// Live keys, oldest first.
    pub keys: Vec<LiveKey>,
    /// Keys destroyed, oldest first, with when they really went.
    pub destroyed: Vec<Destruction>,
}

impl Session {
    /// The retention policy of the history.
    ///
    /// # Errors
    /// Database errors, a store modified outside MedCrypt.
    pub fn retention(&self) -> Result<Retention> {
        Ok(self.store.retention()?)
    }

    /// Changes the retention policy; the history already kept moves to it.
    ///
    /// # Errors
    /// Database errors, a store modified outside MedCrypt.
    pub fn set_retention(&self, retention: Retention) -> Result<()> {
        Ok(self.store.set_retention(retention, self.now())?)
    }

    /// The live and destroyed keys of every pairing.
    ///
    /// # Errors
    /// Database errors.
    pub fn key_status(&self) -> Result<Vec<PairingKeys>> {
        let now = self.now();
        let current = Epoch::containing(now);
        let mut out = Vec::new();
        for pairing in self.store.pairings()? {
            if pairing.protocol == Protocol::V1 {
                out.push(PairingKeys {
                    alias: pairing.alias,
                    legacy: true,
                    keys: Vec::new(),
                    destroyed: Vec::new(),
                });
                continue;
            }
            let chain = self.store.chain(&pairing)?;
            let keys = chain
                .keys()
                .iter()
                .map(|key| {
                    let epoch = key.epoch();
                    let due_at = epoch.destruction_time();
                    let state = if due_at <= now {
                        KeyState::DueKeptAsNewest
                    } else if epoch == current {
                        KeyState::Current
                    } else if epoch > current {
                        KeyState::Ahead
                    } else {
                        KeyState::GracePeriod
                    };
                    LiveKey {
                        epoch,
                        state,
                        due_at,
                    }
                })
                .collect();
            let destroyed = self.store.destructions(&pairing)?;
            out.push(PairingKeys {
                alias: pairing.alias,
                legacy: false,
                keys,
                destroyed,
            });
        }
        Ok(out)
    }
}

/// The scheduled shredder: destroys, without the passphrase, every month
/// key of the store at `path` past its time (but each pairing's newest) and
/// the history that lives only as long as it.
///
/// # Errors
/// No store, database errors.
pub fn shred_due(path: &Path, now: DateTime<Utc>) -> Result<Vec<Destruction>> {
    Ok(Store::shred_due(path, now)?)
}

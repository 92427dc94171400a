//! Key status: per pairing, the live month keys and when each is destroyed.

use chrono::{DateTime, Utc};

use crate::protocol::epoch::Epoch;
use crate::store::Protocol;

use super::{Result, Session};

/// Where a month key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The key of the current month: used to encrypt.
    Current,
    /// A past month within its grace period: still accepted.
    GracePeriod,
}

/// The keys of one pairing.
#[derive(Debug, Clone)]
pub struct PairingKeys {
    /// The pairing.
    pub alias: String,
    /// A legacy v1 pairing, whose keys cannot be destroyed.
    pub legacy: bool,
    /// Live keys, oldest first, with their state and destruction time.
    pub keys: Vec<(Epoch, KeyState, DateTime<Utc>)>,
}

impl Session {
    /// The live keys of every pairing.
    ///
    /// # Errors
    /// Database errors.
    pub fn key_status(&self) -> Result<Vec<PairingKeys>> {
        let current = Epoch::containing(self.now());
        let mut out = Vec::new();
        for pairing in self.store.pairings()? {
            if pairing.protocol == Protocol::V1 {
                out.push(PairingKeys {
                    alias: pairing.alias,
                    legacy: true,
                    keys: Vec::new(),
                });
                continue;
            }
            let chain = self.store.chain(&pairing)?;
            let keys = chain
                .keys()
                .iter()
                .map(|key| {
                    let state = if key.epoch() == current {
                        KeyState::Current
                    } else {
                        KeyState::GracePeriod
                    };
                    (key.epoch(), state, key.epoch().destruction_time())
                })
                .collect();
            out.push(PairingKeys {
                alias: pairing.alias,
                legacy: false,
                keys,
            });
        }
        Ok(out)
    }
}

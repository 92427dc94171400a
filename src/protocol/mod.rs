//! The protocol core: epochs, the key schedule, wire text v2, legacy v1, the
//! attachment format, escrow shares, the audit chain and the human-facing
//! codes.
//!
//! Pure: keys, bytes and a time value in, bytes and verdicts out. Nothing
//! here reads a clock, opens a file or touches the network, so every rule is
//! testable with vectors. May depend on the RustCrypto crates, `blahaj`,
//! `serde` and the date-time library only — never on the store, the agent,
//! tokio, rusqlite or clap.

pub mod attachment;
pub mod audit;
pub mod codes;
pub(crate) mod epoch;
pub(crate) mod excerpt;
pub(crate) mod keys;
pub(crate) mod legacy;
pub mod shares;
#[doc(hidden)]
pub mod vectors;
pub(crate) mod wire;

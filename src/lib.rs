//! MedCrypt: end-to-end encryption for physician–patient conversations over
//! messengers that carry only ciphertext.
//!
//! The folders are the layers, and dependencies point down only:
//!
//! - [`agent`]: the physician's bot-side agent, transport-neutral, with one
//!   folder per messenger (`agent::telegram`, and its fake Bot API for tests);
//! - [`session`]: the use cases every front end calls (encrypt and decrypt
//!   text and files, pair, send, audit, break-glass), with typed errors;
//! - [`store`]: the encrypted SQLite store, one file per table family;
//! - [`protocol`]: the pure protocol core — keys, bytes and a time value
//!   in, bytes out; no clock, no files, no network.
//!
//! The command line (`src/cli`, in the binary) sits on top of these. The
//! normative specification lives in `wire-spec/README.md`, with conformance
//! vectors in `wire-spec/vectors/`.
//!
//! - [`PairingSecret`] → first [`EpochKey`], [`PairingToken`], [`SafetyNumber`]
//! - [`EpochChain`]: the forward-only chain of monthly keys of one pairing
//! - [`WireMessage`]: the v2 one-line text format
//! - [`LegacyPairing`] / [`LegacyMessage`]: the deployed v1 format

pub mod agent;
pub mod app;
#[doc(hidden)]
pub mod fuzzing;
pub mod protocol;
pub mod qr;
pub mod session;
pub mod store;

pub use protocol::epoch::{
    CLOCK_SKEW_ALLOWANCE, Epoch, GRACE_PERIOD, InvalidEpoch, WindowViolation, check_window,
    format_utc, parse_utc,
};
pub use protocol::excerpt::{Excerpt, Found, Removed, find_messages, invisible_name, is_invisible};
pub use protocol::keys::{
    Advance, BrokenChain, Direction, EPOCH_RATCHET_LABEL, EpochChain, EpochKey,
    FILE_SENDER_KEY_LABEL, FILE_WRAP_KEY_LABEL, FIRST_EPOCH_KEY_LABEL, KEY_HINT_LABEL,
    KEY_HINT_LEN, KeyHint, MESSAGE_KEY_LABEL, MessageKey, PAIRING_TOKEN_LABEL, PairingSecret,
    PairingToken, Role, SAFETY_NUMBER_LABEL, SafetyNumber,
};
pub use protocol::legacy::{
    LegacyMessage, LegacyPairing, V1_PBKDF2_ITERATIONS, V1_PREFIX, derive_month_key,
};
pub use protocol::wire::{
    CHAT_MESSAGE_LIMIT, DecryptError, Header, MAX_TEXT_BYTES, Opened, Payload, ReplayId, SealError,
    V2_PREFIX, WireMessage, strip_whitespace, wire_text_len,
};
pub use protocol::{attachment, audit, codes, shares, vectors};

//! The audit log's protocol core: encrypted, chained, forward-secure records.
//! Pure: keys, records and times in; records and verdicts out.
//!
//! Each record is `(seq, day, kind, body, mac)`:
//!
//! - `body = nonce (12) || AES-256-GCM(audit encryption key, event JSON,
//!   aad = "medcrypt/audit/v1/body" || seq || day || kind)`;
//! - `mac = HMAC-SHA256(K(day), "medcrypt/audit/v1/mac" || seq (u64) || day
//!   (u32) || kind (u8) || len(body) (u32) || body || previous mac)`, the
//!   previous MAC of record 1 being 32 zero bytes.
//!
//! The sealing key evolves once per UTC day (`day` = days since 1970-01-01):
//! `K(d+1) = HKDF(K(d), "medcrypt/audit/v1/sealing-key-step", d+1)`. Before the
//! key of a day is destroyed, a *seal* record (kind 2) is written under it,
//! for every day, including days without entries (the lesson of journald's
//! CVE-2023-31438/31439). Whoever takes the machine on day `d` holds only
//! `K(d)` and cannot rewrite anything sealed before `d` undetected.
//!
//! `K(start day)` is the *verification key*, shown once at init as the audit
//! verification code; with it an auditor re-derives every later key.

mod actions;

pub use actions::{ACTIONS, is_action};

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Label of the daily sealing-key step.
pub const SEALING_KEY_STEP_LABEL: &str = "medcrypt/audit/v1/sealing-key-step";
const MAC_LABEL: &[u8] = b"medcrypt/audit/v1/mac";
const HEAD_LABEL: &[u8] = b"medcrypt/audit/v1/head";
const BODY_AAD_LABEL: &[u8] = b"medcrypt/audit/v1/body";
mod export;
#[cfg(test)]
mod tests;
mod verify;

pub use export::{
    EXPORT_FORMAT, ExportError, ExportHead, VerifiedExport, export_json, verify_export,
};
pub use verify::{AuditFault, Checkpoint, CheckpointError, Head, Trust, VerifyReport, verify};

const SECONDS_PER_DAY: i64 = 86_400;

/// The UTC day number of an instant (days since 1970-01-01).
pub fn day_of(at: DateTime<Utc>) -> u32 {
    u32::try_from(at.timestamp().div_euclid(SECONDS_PER_DAY)).unwrap_or(0)
}

/// The first instant of a day number.
pub fn day_start(day: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(day) * SECONDS_PER_DAY, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// An audit entry.
    Entry,
    /// The closing seal of a day: the last record under that day's key.
    Seal,
}

impl RecordKind {
    /// Wire code: 1 entry, 2 seal.
    pub fn code(self) -> u8 {
        match self {
            Self::Entry => 1,
            Self::Seal => 2,
        }
    }

    /// Decodes [`RecordKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Entry),
            2 => Some(Self::Seal),
            _ => None,
        }
    }
}

/// One stored record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// The UTC day whose sealing key made `mac`.
    pub day: u32,
    /// Entry or seal.
    pub kind: RecordKind,
    /// Encrypted event.
    pub body: Vec<u8>,
    /// Chained MAC.
    pub mac: [u8; 32],
}

/// What happened: the decrypted content of an entry. Never holds message
/// content or key material: subjects are pairing aliases, details are
/// small facts (epoch, sequence number, error kind).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When (UTC, RFC 3339).
    pub time: String,
    /// Who acted: the store's owner name.
    pub actor: String,
    /// What: `init`, `pair_new`, `encrypt`, `decrypt_failed`, …
    pub action: String,
    /// On what: a pairing alias, or empty.
    pub subject: String,
    /// `ok`, `failed` or `rejected`.
    pub outcome: String,
    /// Small structured facts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

/// A sealing key of one day. Zeroized on drop; `Debug` shows the day only.
pub struct SealingKey {
    day: u32,
    key: SecretBox<[u8; 32]>,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingKey(day {}, [REDACTED])", self.day)
    }
}

impl SealingKey {
    /// A fresh random verification key for `day` (at init).
    pub fn generate(day: u32) -> Self {
        let mut key = SecretBox::new(Box::new([0u8; 32]));
        OsRng.fill_bytes(key.expose_secret_mut());
        Self { day, key }
    }

    /// Rebuilds a key from stored bytes.
    pub fn from_bytes(day: u32, bytes: &[u8; 32]) -> Self {
        Self {
            day,
            key: SecretBox::new(Box::new(*bytes)),
        }
    }

    /// The raw key, to be stored encrypted (or shown as the verification code).
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }

    /// The day this key seals.
    pub fn day(&self) -> u32 {
        self.day
    }

    /// The next day's key; this one should then be dropped (destroyed).
    pub fn step(&self) -> Self {
        let next = self.day.saturating_add(1);
        let mut key = SecretBox::new(Box::new([0u8; 32]));
        let hk = Hkdf::<Sha256>::new(None, self.key.expose_secret());
        let next_name = next.to_string();
        let info = [
            SEALING_KEY_STEP_LABEL.as_bytes(),
            b":",
            next_name.as_bytes(),
        ];
        if hk
            .expand_multi_info(&info, key.expose_secret_mut())
            .is_err()
        {
            *key.expose_secret_mut() = [0u8; 32];
        }
        Self { day: next, key }
    }

    /// This key stepped forward to `day` (`None` for an earlier day: keys
    /// only move forward).
    pub fn step_to(&self, day: u32) -> Option<Self> {
        if day < self.day {
            return None;
        }
        let mut key = Self::from_bytes(self.day, self.expose_bytes());
        while key.day < day {
            key = key.step();
        }
        Some(key)
    }

    /// Whether `other` is the same key of the same day (constant time in
    /// the key bytes).
    pub fn same_as(&self, other: &Self) -> bool {
        self.day == other.day && macs_equal(self.expose_bytes(), other.expose_bytes())
    }

    /// The head MAC: binds the log's end (`seq` and the MAC of the record
    /// there) to this day's key, so that neither can be set back without it:
    /// `HMAC(K(day), "medcrypt/audit/v1/head" || seq (u64) || day (u32) || mac)`.
    pub fn head_mac(&self, seq: u64, mac: &[u8; 32]) -> [u8; 32] {
        let mut hmac = match <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret()) {
            Ok(hmac) => hmac,
            Err(_) => return [0u8; 32],
        };
        hmac.update(HEAD_LABEL);
        hmac.update(&seq.to_be_bytes());
        hmac.update(&self.day.to_be_bytes());
        hmac.update(mac);
        hmac.finalize().into_bytes().into()
    }

    /// Whether `head_mac` is this key's head MAC of (`seq`, `mac`).
    pub fn head_ok(&self, seq: u64, mac: &[u8; 32], head_mac: &[u8; 32]) -> bool {
        macs_equal(&self.head_mac(seq, mac), head_mac)
    }

    pub(crate) fn mac(&self, seq: u64, kind: RecordKind, body: &[u8], prev: &[u8; 32]) -> [u8; 32] {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret()) {
            Ok(mac) => mac,
            Err(_) => return [0u8; 32],
        };
        mac.update(MAC_LABEL);
        mac.update(&seq.to_be_bytes());
        mac.update(&self.day.to_be_bytes());
        mac.update(&[kind.code()]);
        mac.update(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
        mac.update(body);
        mac.update(prev);
        mac.finalize().into_bytes().into()
    }

    fn verifies(&self, record: &Record, seq: u64, prev: &[u8; 32]) -> bool {
        macs_equal(&self.mac(seq, record.kind, &record.body, prev), &record.mac)
    }
}

/// Compares two MACs without an early exit, so timing says nothing about
/// how many bytes matched.
fn macs_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn body_aad(seq: u64, day: u32, kind: RecordKind) -> Vec<u8> {
    let mut aad = BODY_AAD_LABEL.to_vec();
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.extend_from_slice(&day.to_be_bytes());
    aad.push(kind.code());
    aad
}

/// Decrypts a record's body under the audit encryption key.
///
/// # Errors
/// `None` when the body fails authentication (modified, moved, or another key).
pub fn open_body(enc_key: &[u8; 32], record: &Record) -> Option<AuditEvent> {
    if record.body.len() < 12 + 16 {
        return None;
    }
    let (nonce, sealed) = record.body.split_at(12);
    let aad = body_aad(record.seq, record.day, record.kind);
    let plain = Aes256Gcm::new(enc_key.into())
        .decrypt(
            Nonce::<U12>::from_slice(nonce),
            AeadPayload {
                msg: sealed,
                aad: &aad,
            },
        )
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

/// The writing side of the log: the encryption key, the current sealing key,
/// and the head of the chain. The store persists it after every append.
pub struct Sealer {
    enc_key: SecretBox<[u8; 32]>,
    key: SealingKey,
    last_seq: u64,
    last_mac: [u8; 32],
    /// Vectors only: body nonces derived from the sequence number, so the
    /// vector files are reproducible.
    vector_nonces: bool,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("day", &self.key.day)
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer resuming from stored state.
    pub fn new(enc_key: &[u8; 32], key: SealingKey, last_seq: u64, last_mac: [u8; 32]) -> Self {
        Self {
            enc_key: SecretBox::new(Box::new(*enc_key)),
            key,
            last_seq,
            last_mac,
            vector_nonces: false,
        }
    }

    /// [`Sealer::new`] with body nonces derived from the sequence number:
    /// for the vector files only, which must be reproducible.
    pub(crate) fn for_vectors(enc_key: &[u8; 32], key: SealingKey) -> Self {
        Self {
            vector_nonces: true,
            ..Self::new(enc_key, key, 0, [0; 32])
        }
    }

    /// The current sealing key (to persist, encrypted).
    pub fn key(&self) -> &SealingKey {
        &self.key
    }

    /// Sequence number of the last record.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// MAC of the last record.
    pub fn last_mac(&self) -> &[u8; 32] {
        &self.last_mac
    }

    /// The head MAC of the current end of the log (to persist with it).
    pub fn head_mac(&self) -> [u8; 32] {
        self.key.head_mac(self.last_seq, &self.last_mac)
    }

    /// The head as verification expects it.
    pub fn head(&self) -> Head<'_> {
        Head {
            key: &self.key,
            last_seq: self.last_seq,
            last_mac: self.last_mac,
            head_mac: Some(self.head_mac()),
        }
    }

    fn push(&mut self, kind: RecordKind, event: &AuditEvent) -> Record {
        let seq = self.last_seq + 1;
        let day = self.key.day;
        let plain = serde_json::to_vec(event).unwrap_or_default();
        let mut nonce = [0u8; 12];
        if self.vector_nonces {
            use sha2::Digest as _;
            let digest = Sha256::digest(format!("medcrypt test vector audit nonce:{seq}"));
            nonce.copy_from_slice(&digest[..12]);
        } else {
            OsRng.fill_bytes(&mut nonce);
        }
        let aad = body_aad(seq, day, kind);
        let sealed = Aes256Gcm::new(self.enc_key.expose_secret().into())
            .encrypt(
                Nonce::<U12>::from_slice(&nonce),
                AeadPayload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut body = nonce.to_vec();
        body.extend_from_slice(&sealed);
        let mac = self.key.mac(seq, kind, &body, &self.last_mac);
        self.last_seq = seq;
        self.last_mac = mac;
        Record {
            seq,
            day,
            kind,
            body,
            mac,
        }
    }

    /// Appends an entry under the current key without sealing any day
    /// first: only for an `audit_repair` entry, which may follow a cut
    /// across days whose keys are gone.
    pub fn push_entry(&mut self, event: &AuditEvent) -> Record {
        self.push(RecordKind::Entry, event)
    }

    /// Seals every day before `day` that is still open and steps the key to
    /// `day`, destroying each old key. Returns the seal records. A `day`
    /// earlier than the key's (a clock set back) changes nothing: keys only
    /// move forward.
    pub fn advance_to(&mut self, day: u32, actor: &str) -> Vec<Record> {
        let mut records = Vec::new();
        while self.key.day < day {
            let sealed_day = self.key.day;
            let event = AuditEvent {
                time: crate::protocol::epoch::format_utc(day_start(sealed_day + 1)),
                actor: actor.to_owned(),
                action: "seal_day".into(),
                subject: String::new(),
                outcome: "ok".into(),
                details: BTreeMap::from([("day".into(), sealed_day.to_string())]),
            };
            records.push(self.push(RecordKind::Seal, &event));
            self.key = self.key.step();
        }
        records
    }

    /// Appends an entry at `now`: first the seals of any days that ended
    /// since the last record, then the entry itself under today's key.
    pub fn append(&mut self, event: &AuditEvent, now: DateTime<Utc>) -> Vec<Record> {
        let mut records = self.advance_to(day_of(now), &event.actor);
        records.push(self.push(RecordKind::Entry, event));
        records
    }
}

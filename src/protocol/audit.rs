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

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

/// Label of the daily sealing-key step.
pub const SEALING_KEY_STEP_LABEL: &str = "medcrypt/audit/v1/sealing-key-step";
const MAC_LABEL: &[u8] = b"medcrypt/audit/v1/mac";
const BODY_AAD_LABEL: &[u8] = b"medcrypt/audit/v1/body";
const SECONDS_PER_DAY: i64 = 86_400;

/// The UTC day number of an instant (days since 1970-01-01).
pub fn day_of(at: OffsetDateTime) -> u32 {
    u32::try_from(at.unix_timestamp().div_euclid(SECONDS_PER_DAY)).unwrap_or(0)
}

/// The first instant of a day number.
pub fn day_start(day: u32) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(i64::from(day) * SECONDS_PER_DAY)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
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

    fn mac(&self, seq: u64, kind: RecordKind, body: &[u8], prev: &[u8; 32]) -> [u8; 32] {
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

    fn push(&mut self, kind: RecordKind, event: &AuditEvent) -> Record {
        let seq = self.last_seq + 1;
        let day = self.key.day;
        let plain = serde_json::to_vec(event).unwrap_or_default();
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
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
    pub fn append(&mut self, event: &AuditEvent, now: OffsetDateTime) -> Vec<Record> {
        let mut records = self.advance_to(day_of(now), &event.actor);
        records.push(self.push(RecordKind::Entry, event));
        records
    }
}

/// What is wrong with a log, at the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFault {
    /// A record's content or MAC was changed.
    #[error("entry #{seq} was modified")]
    Modified {
        /// Position of the record.
        seq: u64,
    },
    /// Records are missing: a gap in the sequence.
    #[error("entries #{first} to #{last} are missing (deleted)")]
    Missing {
        /// First missing position.
        first: u64,
        /// Last missing position.
        last: u64,
    },
    /// A record stands at another position than the one it was sealed at.
    #[error("entry #{seq} was reordered: it was sealed as entry #{sealed_as}")]
    Reordered {
        /// Where it stands now.
        seq: u64,
        /// Where it was sealed.
        sealed_as: u64,
    },
    /// A record that the log never contained.
    #[error("entry #{seq} was inserted: it is not part of the sealed log")]
    Inserted {
        /// Its position.
        seq: u64,
    },
    /// A record's MAC was made with another day's key.
    #[error(
        "entry #{seq} is dated day {day} but sealed under the key of {key_day} (rewritten later)"
    )]
    WrongDayKey {
        /// Its position.
        seq: u64,
        /// The day it claims.
        day: String,
        /// The day whose key made its MAC.
        key_day: String,
    },
    /// A day ended without its seal: records were cut out or forged across it.
    #[error("day {day} was never sealed before entry #{seq}: entries were removed or forged")]
    DayNotSealed {
        /// The unsealed day.
        day: String,
        /// The first record after it.
        seq: u64,
    },
    /// The log ends before a point it is known to have reached.
    #[error("the log was truncated: it ends at entry #{last} but reached #{expected}")]
    Truncated {
        /// The last record present.
        last: u64,
        /// The sequence number known to exist.
        expected: u64,
    },
    /// The record at a checkpoint is not the one the checkpoint saw.
    #[error("entry #{seq} differs from the checkpoint: the log was rewritten")]
    CheckpointMismatch {
        /// The checkpoint's position.
        seq: u64,
    },
}

impl AuditFault {
    /// A stable name, for the audit entry of a verification.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Modified { .. } => "modified",
            Self::Missing { .. } => "missing",
            Self::Reordered { .. } => "reordered",
            Self::Inserted { .. } => "inserted",
            Self::WrongDayKey { .. } => "wrong_day_key",
            Self::DayNotSealed { .. } => "day_not_sealed",
            Self::Truncated { .. } => "truncated",
            Self::CheckpointMismatch { .. } => "checkpoint_mismatch",
        }
    }
}

fn day_name(day: u32) -> String {
    day_start(day).date().to_string()
}

/// A point of the log kept elsewhere, proving later that everything up to it
/// is still there: `MEDCRYPT-AUDIT:v1:<seq>:<first 16 bytes of its MAC, hex>:<time>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Sequence number of the head record.
    pub seq: u64,
    /// First 16 bytes of its MAC.
    pub mac_prefix: [u8; 16],
    /// When the checkpoint was taken (RFC 3339).
    pub time: String,
}

const CHECKPOINT_PREFIX: &str = "MEDCRYPT-AUDIT:v1:";

impl Checkpoint {
    /// The checkpoint of the head record `seq` with MAC `mac`.
    pub fn new(seq: u64, mac: &[u8; 32], time: OffsetDateTime) -> Self {
        let mut mac_prefix = [0u8; 16];
        mac_prefix.copy_from_slice(&mac[..16]);
        Self {
            seq,
            mac_prefix,
            time: crate::protocol::epoch::format_utc(time),
        }
    }

    /// The one-line text form.
    pub fn to_text(&self) -> String {
        format!(
            "{CHECKPOINT_PREFIX}{}:{}:{}",
            self.seq,
            hex::encode(self.mac_prefix),
            self.time
        )
    }

    /// Parses [`Checkpoint::to_text`].
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let rest = text
            .trim()
            .strip_prefix(CHECKPOINT_PREFIX)
            .ok_or("a checkpoint starts with MEDCRYPT-AUDIT:v1:")?;
        let (seq, rest) = rest
            .split_once(':')
            .ok_or("a checkpoint has three fields")?;
        let (mac, time) = rest
            .split_once(':')
            .ok_or("a checkpoint has three fields")?;
        let seq = seq
            .parse()
            .map_err(|_| "the checkpoint's sequence number is not a number")?;
        let mac: [u8; 16] = hex::decode(mac)
            .ok()
            .and_then(|m| m.try_into().ok())
            .ok_or("the checkpoint's MAC must be 32 hex digits")?;
        Ok(Self {
            seq,
            mac_prefix: mac,
            time: time.to_owned(),
        })
    }
}

/// How far a verification could see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Of which entries.
    pub entries: u64,
    /// Of which day seals.
    pub seals: u64,
    /// Days covered (first to last).
    pub days: u64,
    /// Whether every MAC was checked from the verification key (`true`), or
    /// only the records of the current day (`false`, without the code).
    pub full: bool,
}

/// Where MAC verification starts.
pub enum Trust<'a> {
    /// From the verification key (the audit verification code): every MAC.
    VerificationKey(&'a SealingKey),
    /// From the store's current sealing key: only the current day's MACs.
    CurrentKey(&'a SealingKey),
}

/// How far from its position a moved record is still recognised as
/// "reordered" rather than "modified".
const REORDER_WINDOW: usize = 64;

/// Verifies a whole log, in order of `seq`.
///
/// Checks: sequence without gaps from 1; days never go back and each day
/// that ends is closed by its seal before the next day begins; every MAC
/// under its own day's key, chained to the previous record (all days with
/// [`Trust::VerificationKey`], the current day with [`Trust::CurrentKey`]);
/// every body decrypts when `enc_key` is given; the log reaches `known_last`
/// (the store's own head) and the checkpoint's record, if any, is present
/// and unchanged.
///
/// # Errors
/// The first [`AuditFault`], named.
pub fn verify(
    records: &[Record],
    trust: Trust<'_>,
    enc_key: Option<&[u8; 32]>,
    known_last: u64,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditFault> {
    let (mut key, full) = match trust {
        Trust::VerificationKey(k) => (SealingKey::from_bytes(k.day, k.expose_bytes()), true),
        Trust::CurrentKey(k) => (SealingKey::from_bytes(k.day, k.expose_bytes()), false),
    };
    let mut prev = [0u8; 32];
    let mut expected_seq = 1u64;
    let mut current_day: Option<u32> = None;
    let mut day_sealed = false;
    let (mut entries, mut seals) = (0u64, 0u64);
    for (index, record) in records.iter().enumerate() {
        let seq = record.seq;
        if seq > expected_seq {
            return Err(AuditFault::Missing {
                first: expected_seq,
                last: seq - 1,
            });
        }
        if seq < expected_seq {
            return Err(AuditFault::Inserted { seq });
        }
        // Day continuity: the same day until its seal, then the next day.
        match current_day {
            None if full && record.day > key.day => {
                return Err(AuditFault::DayNotSealed {
                    day: day_name(key.day),
                    seq,
                });
            }
            None if full && record.day < key.day => {
                return Err(diagnose(records, index, &key, &prev, enc_key));
            }
            None => current_day = Some(record.day),
            Some(day) if record.day == day && !day_sealed => {}
            Some(day) if record.day == day + 1 && day_sealed => {
                current_day = Some(record.day);
                day_sealed = false;
                if full {
                    key = key.step();
                }
            }
            Some(day) if record.day > day => {
                return Err(AuditFault::DayNotSealed {
                    day: day_name(if day_sealed { day + 1 } else { day }),
                    seq,
                });
            }
            Some(_) => return Err(diagnose(records, index, &key, &prev, enc_key)),
        }
        let check_mac = full || record.day == key.day;
        if check_mac && !key.verifies(record, seq, &prev) {
            return Err(diagnose(records, index, &key, &prev, enc_key));
        }
        if enc_key.is_some_and(|enc| open_body(enc, record).is_none()) {
            return Err(AuditFault::Modified { seq });
        }
        match record.kind {
            RecordKind::Entry => entries += 1,
            RecordKind::Seal => {
                seals += 1;
                day_sealed = true;
            }
        }
        if checkpoint.is_some_and(|cp| cp.seq == seq && record.mac[..16] != cp.mac_prefix) {
            return Err(AuditFault::CheckpointMismatch { seq });
        }
        prev = record.mac;
        expected_seq += 1;
    }
    let last = expected_seq - 1;
    let must_reach = checkpoint.map_or(known_last, |cp| cp.seq.max(known_last));
    if last < must_reach {
        return Err(AuditFault::Truncated {
            last,
            expected: must_reach,
        });
    }
    let first_day = records.first().map_or(0, |r| r.day);
    let last_day = records.last().map_or(0, |r| r.day);
    Ok(VerifyReport {
        records: last,
        entries,
        seals,
        days: if records.is_empty() {
            0
        } else {
            u64::from(last_day - first_day) + 1
        },
        full,
    })
}

/// Names a record at `index` that fails where `key` and `prev` were expected.
/// Only called on failure, so it may search.
fn diagnose(
    records: &[Record],
    index: usize,
    key: &SealingKey,
    prev: &[u8; 32],
    enc_key: Option<&[u8; 32]>,
) -> AuditFault {
    let record = &records[index];
    let seq = record.seq;
    // Reordered: its MAC is valid at another nearby position, chained to
    // the MAC of some nearby record (its original predecessor, also moved).
    let low = index.saturating_sub(REORDER_WINDOW);
    let high = (index + REORDER_WINDOW).min(records.len());
    if record.day == key.day {
        for position in &records[low..high] {
            if position.seq == seq {
                continue;
            }
            let zero = [0u8; 32];
            let candidates = records[low..high]
                .iter()
                .map(|r| &r.mac)
                .chain((position.seq == 1).then_some(&zero));
            for candidate in candidates {
                if key.verifies(record, position.seq, candidate) {
                    return AuditFault::Reordered {
                        seq,
                        sealed_as: position.seq,
                    };
                }
            }
        }
    }
    // Inserted: the next record is the one that was sealed at this position.
    if records
        .get(index + 1)
        .is_some_and(|next| next.day == key.day && key.verifies(next, seq, prev))
    {
        return AuditFault::Inserted { seq };
    }
    // Sealed under a later day's key: rewritten by someone who held it.
    let mut later = key.step();
    for _ in 0..3660 {
        if later.verifies(record, seq, prev) {
            return AuditFault::WrongDayKey {
                seq,
                day: day_name(record.day),
                key_day: day_name(later.day),
            };
        }
        later = later.step();
    }
    if enc_key.is_some_and(|enc| open_body(enc, record).is_none()) {
        return AuditFault::Modified { seq };
    }
    if enc_key.is_some() {
        // Its body is authentic, but no key and no position makes its MAC:
        // the chain around it was forged.
        return AuditFault::Inserted { seq };
    }
    AuditFault::Modified { seq }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn event(action: &str, at: OffsetDateTime) -> AuditEvent {
        AuditEvent {
            time: crate::protocol::epoch::format_utc(at),
            actor: "Dr. Test".into(),
            action: action.into(),
            subject: "alice".into(),
            outcome: "ok".into(),
            details: BTreeMap::new(),
        }
    }

    /// A log over three days with an empty day in the middle.
    fn log() -> (Vec<Record>, SealingKey, [u8; 32], Sealer) {
        let enc = [9u8; 32];
        let start = datetime!(2026-11-20 8:00 UTC);
        let verification = SealingKey::generate(day_of(start));
        let mut sealer = Sealer::new(
            &enc,
            SealingKey::from_bytes(verification.day(), verification.expose_bytes()),
            0,
            [0; 32],
        );
        let mut records = Vec::new();
        for (i, at) in [
            datetime!(2026-11-20 8:00 UTC),
            datetime!(2026-11-20 9:00 UTC),
            datetime!(2026-11-20 10:00 UTC),
            datetime!(2026-11-22 9:00 UTC),
            datetime!(2026-11-22 9:30 UTC),
            datetime!(2026-11-22 10:30 UTC),
        ]
        .into_iter()
        .enumerate()
        {
            records.extend(sealer.append(&event(&format!("act{i}"), at), at));
        }
        (records, verification, enc, sealer)
    }

    fn check(
        records: &[Record],
        verification: &SealingKey,
        enc: &[u8; 32],
    ) -> Result<VerifyReport, AuditFault> {
        verify(
            records,
            Trust::VerificationKey(verification),
            Some(enc),
            0,
            None,
        )
    }

    #[test]
    fn intact_log_verifies_and_seals_empty_days() {
        let (records, verification, enc, sealer) = log();
        let report = check(&records, &verification, &enc).unwrap();
        assert_eq!((report.entries, report.seals, report.days), (6, 2, 3));
        assert!(report.full);
        assert_eq!(
            records
                .iter()
                .filter(|r| r.kind == RecordKind::Seal)
                .count(),
            2
        );
        assert_eq!(open_body(&enc, &records[0]).unwrap().action, "act0");
        // Local verification from the current key checks today's records.
        let local = verify(
            &records,
            Trust::CurrentKey(sealer.key()),
            Some(&enc),
            sealer.last_seq(),
            None,
        )
        .unwrap();
        assert!(!local.full);
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let (records, verification, enc, sealer) = log();

        let mut modified = records.clone();
        modified[1].body[20] ^= 1;
        assert_eq!(
            check(&modified, &verification, &enc).unwrap_err(),
            AuditFault::Modified { seq: 2 }
        );

        let mut deleted = records.clone();
        deleted.remove(2);
        assert_eq!(
            check(&deleted, &verification, &enc).unwrap_err(),
            AuditFault::Missing { first: 3, last: 3 }
        );

        let mut swapped = records.clone();
        let (a, b) = (swapped[1].clone(), swapped[2].clone());
        swapped[1] = Record { seq: 2, ..b };
        swapped[2] = Record { seq: 3, ..a };
        assert_eq!(
            check(&swapped, &verification, &enc).unwrap_err(),
            AuditFault::Reordered {
                seq: 2,
                sealed_as: 3
            }
        );

        let mut inserted = records.clone();
        let forged = Record {
            seq: 2,
            day: records[1].day,
            kind: RecordKind::Entry,
            body: vec![0; 40],
            mac: [7; 32],
        };
        inserted.insert(1, forged);
        for (i, r) in inserted.iter_mut().enumerate().skip(2) {
            r.seq = i as u64 + 1;
        }
        assert_eq!(
            check(&inserted, &verification, &enc).unwrap_err(),
            AuditFault::Inserted { seq: 2 }
        );

        let cut: Vec<Record> = records[..3].to_vec();
        assert_eq!(
            verify(
                &cut,
                Trust::VerificationKey(&verification),
                Some(&enc),
                sealer.last_seq(),
                None
            )
            .unwrap_err(),
            AuditFault::Truncated {
                last: 3,
                expected: records.len() as u64
            }
        );
    }

    #[test]
    fn tail_rewritten_with_the_current_key_is_caught() {
        let (records, verification, enc, sealer) = log();
        // The thief holds only today's key: they cut everything after entry 2
        // (day one) and write their own story under today's key.
        let mut thief = Sealer::new(
            &enc,
            SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes()),
            2,
            records[1].mac,
        );
        let mut forged = records[..2].to_vec();
        forged.extend(thief.append(
            &event("nothing_happened", datetime!(2026-11-22 11:00 UTC)),
            datetime!(2026-11-22 11:00 UTC),
        ));
        let fault = check(&forged, &verification, &enc).unwrap_err();
        assert_eq!(fault.kind(), "day_not_sealed", "{fault}");

        // Forging the missing seals under today's key does not help.
        let mut relabelled = records[..2].to_vec();
        let mut body_source = Sealer::new(
            &enc,
            SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes()),
            2,
            records[1].mac,
        );
        let mut fake_seal = body_source
            .append(
                &event("x", datetime!(2026-11-22 11:00 UTC)),
                datetime!(2026-11-22 11:00 UTC),
            )
            .remove(0);
        fake_seal.day = records[0].day;
        fake_seal.kind = RecordKind::Seal;
        fake_seal.mac = SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes())
            .mac(3, RecordKind::Seal, &fake_seal.body, &records[1].mac);
        relabelled.push(fake_seal);
        let fault = check(&relabelled, &verification, &enc).unwrap_err();
        assert_eq!(fault.kind(), "wrong_day_key", "{fault}");
    }

    #[test]
    fn checkpoint_detects_truncation_and_rewrite() {
        let (records, verification, enc, _) = log();
        let cp = Checkpoint::new(
            records[5].seq,
            &records[5].mac,
            datetime!(2026-11-22 12:00 UTC),
        );
        let cp = Checkpoint::parse(&cp.to_text()).unwrap();
        assert!(
            verify(
                &records,
                Trust::VerificationKey(&verification),
                Some(&enc),
                0,
                Some(&cp)
            )
            .is_ok()
        );
        let cut = records[..5].to_vec();
        assert_eq!(
            verify(
                &cut,
                Trust::VerificationKey(&verification),
                Some(&enc),
                0,
                Some(&cp)
            )
            .unwrap_err()
            .kind(),
            "truncated"
        );
        let mut other = cp.clone();
        other.mac_prefix[0] ^= 1;
        assert_eq!(
            verify(
                &records,
                Trust::VerificationKey(&verification),
                Some(&enc),
                0,
                Some(&other)
            )
            .unwrap_err()
            .kind(),
            "checkpoint_mismatch"
        );
        assert!(Checkpoint::parse("MEDCRYPT-AUDIT:v1:x:00:t").is_err());
    }

    #[test]
    fn keys_step_forward_only_and_debug_is_redacted() {
        let k = SealingKey::from_bytes(100, &[1; 32]);
        let k1 = k.step();
        assert_eq!(k1.day(), 101);
        assert_ne!(k1.expose_bytes(), k.expose_bytes());
        assert_eq!(format!("{k:?}"), "SealingKey(day 100, [REDACTED])");
    }
}

//! Verification of a whole log, with a named diagnosis of the first bad
//! record, and checkpoints kept outside the store.

use super::*;

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
    /// The log has no records at all: every log begins with its store's
    /// `init` entry, so the whole log was deleted.
    #[error(
        "the audit log is empty: every store's log begins with its init entry, so the log was deleted"
    )]
    Empty,
    /// The verification code derives another key for the store's current
    /// day than the one the store holds, and does not verify the first
    /// record either: it is not this log's code.
    #[error(
        "this audit verification code does not belong to this store's log: it verifies neither its first entry nor its current key"
    )]
    ForeignCode,
    /// The store's current sealing key is not the one the verification code
    /// derives for its day: the audit state was replaced.
    #[error(
        "the store's sealing key for {day} is not the one the verification code derives: the audit state was replaced (rolled back or forged)"
    )]
    StateReplaced {
        /// The day the store claims.
        day: String,
    },
    /// The head the store sealed (sequence number, MAC and head MAC) does
    /// not match the log's last record.
    #[error(
        "the log ends at entry #{last} but the store sealed its end at entry #{head}: entries were cut or the head was altered"
    )]
    HeadMismatch {
        /// The sequence number the store's head names.
        head: u64,
        /// The last record present (up to the head).
        last: u64,
    },
    /// The store's head names the last record, but its head MAC fails: the
    /// head was set back by someone without the day's key.
    #[error(
        "the log ends at entry #{head}, but that is not the end the store sealed: entries after it were cut and the store's record of its end set back to match"
    )]
    HeadNotSealed {
        /// The sequence number the (altered) head names.
        head: u64,
    },
    /// The log ends on an earlier day than the store's current key.
    #[error(
        "the log ends on {last_day} but the store has sealed every day up to {day}: the records of the days between were cut"
    )]
    NotToDay {
        /// The store's current day.
        day: String,
        /// The day of the last record.
        last_day: String,
    },
    /// Records stand after the head the store sealed: written outside
    /// MedCrypt (or left by a write that was never completed).
    #[error(
        "entries #{first} to #{last} lie past the end the store sealed: they were written outside MedCrypt (`medcrypt audit repair` sets them aside, keeping them as evidence)"
    )]
    BeyondHead {
        /// The first record past the head.
        first: u64,
        /// The last record.
        last: u64,
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
            Self::Empty => "empty",
            Self::ForeignCode => "foreign_code",
            Self::StateReplaced { .. } => "state_replaced",
            Self::HeadMismatch { .. } | Self::HeadNotSealed { .. } => "head_mismatch",
            Self::NotToDay { .. } => "not_to_day",
            Self::BeyondHead { .. } => "beyond_head",
            Self::Truncated { .. } => "truncated",
            Self::CheckpointMismatch { .. } => "checkpoint_mismatch",
        }
    }
}

fn day_name(day: u32) -> String {
    day_start(day).date_naive().to_string()
}

/// A point of the log kept elsewhere, proving later that everything up to it
/// is still there:
/// `MEDCRYPT-AUDIT:v2:<store id>:<seq>:<first 16 bytes of its MAC, hex>:<time>:<check>`,
/// `check` being the first 4 bytes (hex) of SHA-256 of
/// `"medcrypt/audit/v2/checkpoint" || <the line up to its last colon, in
/// lower case>`, so
/// that a mistyped copy reads as a typo, not as tampering. Version 1 lines
/// (`MEDCRYPT-AUDIT:v1:<seq>:<mac>:<time>`, no store id, no check) are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The store's id (10 hex digits), when the store has one.
    pub store_id: Option<String>,
    /// Sequence number of the head record.
    pub seq: u64,
    /// First 16 bytes of its MAC.
    pub mac_prefix: [u8; 16],
    /// When the checkpoint was taken (RFC 3339).
    pub time: String,
}

const CHECKPOINT_V1: &str = "MEDCRYPT-AUDIT:v1:";
const CHECKPOINT_V2: &str = "MEDCRYPT-AUDIT:v2:";
const CHECKPOINT_CHECK_LABEL: &[u8] = b"medcrypt/audit/v2/checkpoint";

/// Why a checkpoint line cannot be read. None of these is tampering: the
/// line itself is not what `audit checkpoint` printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not a checkpoint line at all.
    #[error("a checkpoint starts with MEDCRYPT-AUDIT:v2: (or v1:)")]
    NotACheckpoint,
    /// A field is missing or malformed.
    #[error("the checkpoint's {0} is malformed")]
    Malformed(&'static str),
    /// The check digits do not match: a character was changed in copying.
    #[error("the checkpoint's check digits do not match: the line was mistyped or cut in copying")]
    Typo,
}

impl CheckpointError {
    /// A stable name, for the vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotACheckpoint => "not_a_checkpoint",
            Self::Malformed(_) => "malformed",
            Self::Typo => "typo",
        }
    }
}

/// The check digits of a line, case-insensitively (a line retyped in
/// capitals is the same line).
fn checkpoint_check(line: &str) -> String {
    use sha2::Digest;
    let digest = Sha256::new()
        .chain_update(CHECKPOINT_CHECK_LABEL)
        .chain_update(line.to_ascii_lowercase().as_bytes())
        .finalize();
    hex::encode(&digest[..4])
}

impl Checkpoint {
    /// The checkpoint of the head record `seq` with MAC `mac`.
    pub fn new(store_id: Option<&str>, seq: u64, mac: &[u8; 32], time: DateTime<Utc>) -> Self {
        let mut mac_prefix = [0u8; 16];
        mac_prefix.copy_from_slice(&mac[..16]);
        Self {
            store_id: store_id.map(str::to_owned),
            seq,
            mac_prefix,
            time: crate::protocol::epoch::format_utc(time),
        }
    }

    /// The one-line text form (version 2).
    pub fn to_text(&self) -> String {
        let body = format!(
            "{CHECKPOINT_V2}{}:{}:{}:{}",
            self.store_id.as_deref().unwrap_or("-"),
            self.seq,
            hex::encode(self.mac_prefix),
            self.time
        );
        let check = checkpoint_check(&body);
        format!("{body}:{check}")
    }

    /// Parses [`Checkpoint::to_text`] (and version 1 lines).
    ///
    /// # Errors
    /// [`CheckpointError`] saying what is wrong with the line.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let text = text.trim();
        let (store_id, fields) = if text.starts_with(CHECKPOINT_V2) {
            let (body, check) = text
                .rsplit_once(':')
                .ok_or(CheckpointError::Malformed("check digits"))?;
            if check.len() != 8 || !check.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(CheckpointError::Malformed("check digits"));
            }
            if !checkpoint_check(body).eq_ignore_ascii_case(check) {
                return Err(CheckpointError::Typo);
            }
            let (id, fields) = body
                .get(CHECKPOINT_V2.len()..)
                .and_then(|r| r.split_once(':'))
                .ok_or(CheckpointError::Malformed("store id"))?;
            let id = match id {
                "-" => None,
                id if id.len() == 10 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(id.to_ascii_lowercase())
                }
                _ => return Err(CheckpointError::Malformed("store id")),
            };
            (id, fields)
        } else if let Some(rest) = text.strip_prefix(CHECKPOINT_V1) {
            (None, rest)
        } else {
            return Err(CheckpointError::NotACheckpoint);
        };
        // seq : mac : time (the time itself contains colons).
        let (seq, rest) = fields
            .split_once(':')
            .ok_or(CheckpointError::Malformed("sequence number"))?;
        let (mac, time) = rest
            .split_once(':')
            .ok_or(CheckpointError::Malformed("MAC"))?;
        if seq.is_empty() || seq.len() > 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CheckpointError::Malformed("sequence number"));
        }
        let seq = seq
            .parse()
            .map_err(|_| CheckpointError::Malformed("sequence number"))?;
        let mac: [u8; 16] = hex::decode(mac)
            .ok()
            .and_then(|m| m.try_into().ok())
            .ok_or(CheckpointError::Malformed("MAC"))?;
        if crate::protocol::epoch::parse_utc(time).is_none() {
            return Err(CheckpointError::Malformed("time"));
        }
        Ok(Self {
            store_id,
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
    /// Whether the head was checked against its head MAC (stores made
    /// before head MACs have none until their next audited operation).
    pub head_bound: bool,
    /// Entries that record a repair of the log (`audit_repair`), where the
    /// log was found altered and set right, keeping the evidence.
    pub repairs: Vec<u64>,
}

/// Where MAC verification starts.
pub enum Trust<'a> {
    /// From the verification key (the audit verification code): every MAC.
    VerificationKey(&'a SealingKey),
    /// From the store's current sealing key: only the current day's MACs.
    CurrentKey(&'a SealingKey),
}

/// What the store recorded about the log's end: its current sealing key,
/// the last record's sequence number and MAC, and the head MAC binding the
/// two to the key.
pub struct Head<'a> {
    /// The store's current sealing key.
    pub key: &'a SealingKey,
    /// Sequence number of the last record.
    pub last_seq: u64,
    /// MAC of the last record.
    pub last_mac: [u8; 32],
    /// [`SealingKey::head_mac`] of the two; `None` for a store made before
    /// head MACs, which has not been written to since.
    pub head_mac: Option<[u8; 32]>,
}

/// How far from its position a moved record is still recognised as
/// "reordered" rather than "modified".
const REORDER_WINDOW: usize = 64;

/// Whether `record` is an authentic-looking `audit_repair` entry: its body
/// decrypts under the audit encryption key and names that action. (Its MAC
/// is checked like every other record's.)
fn is_repair(record: &Record, enc_key: Option<&[u8; 32]>) -> bool {
    record.kind == RecordKind::Entry
        && enc_key
            .and_then(|enc| open_body(enc, record))
            .is_some_and(|event| event.action == "audit_repair")
}

/// Verifies a whole log, in order of `seq`, against the head the store
/// recorded.
///
/// Checks: a log is never empty; with the verification key, the store's
/// current key is the one it derives for the current day (else the code is
/// foreign, or the audit state was replaced); sequence without gaps from 1;
/// days never go back and each day that ends is closed by its seal before
/// the next day begins (except at a recorded repair); every MAC under its
/// own day's key, chained to the previous record (all days with
/// [`Trust::VerificationKey`], the current day with [`Trust::CurrentKey`]);
/// every body decrypts when `enc_key` is given; the last record is the
/// store's head, its head MAC holds under the current key, and the log
/// reaches the current day; the checkpoint's record, if any, is present and
/// unchanged; nothing stands past the head.
///
/// # Errors
/// The first [`AuditFault`], named.
pub fn verify(
    records: &[Record],
    trust: Trust<'_>,
    enc_key: Option<&[u8; 32]>,
    head: &Head<'_>,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditFault> {
    let Some(first) = records.first() else {
        return Err(AuditFault::Empty);
    };
    let (mut key, full) = match trust {
        Trust::VerificationKey(k) => {
            let same = k
                .step_to(head.key.day())
                .is_some_and(|d| d.same_as(head.key));
            if !same {
                let first_ok =
                    first.seq == 1 && first.day == k.day() && k.verifies(first, 1, &[0u8; 32]);
                return Err(if first_ok {
                    AuditFault::StateReplaced {
                        day: day_name(head.key.day()),
                    }
                } else {
                    AuditFault::ForeignCode
                });
            }
            (SealingKey::from_bytes(k.day, k.expose_bytes()), true)
        }
        Trust::CurrentKey(k) => (SealingKey::from_bytes(k.day, k.expose_bytes()), false),
    };
    let within = records.partition_point(|r| r.seq <= head.last_seq);
    let (sealed, beyond) = records.split_at(within);
    let mut prev = [0u8; 32];
    let mut expected_seq = 1u64;
    let mut current_day: Option<u32> = None;
    let mut day_sealed = false;
    let (mut entries, mut seals) = (0u64, 0u64);
    let mut repairs = Vec::new();
    for (index, record) in sealed.iter().enumerate() {
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
                return Err(diagnose(sealed, index, &key, &prev, enc_key));
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
            // A repair entry may follow a cut across days: the seals of the
            // days between died with their keys. Its MAC is checked below.
            Some(day)
                if record.day > day
                    && record.day <= head.key.day()
                    && is_repair(record, enc_key) =>
            {
                current_day = Some(record.day);
                day_sealed = false;
                if full {
                    key = key.step_to(record.day).unwrap_or(key);
                }
                repairs.push(seq);
            }
            Some(day) if record.day > day => {
                return Err(AuditFault::DayNotSealed {
                    day: day_name(if day_sealed { day + 1 } else { day }),
                    seq,
                });
            }
            Some(_) => return Err(diagnose(sealed, index, &key, &prev, enc_key)),
        }
        let check_mac = full || record.day == key.day;
        if check_mac && !key.verifies(record, seq, &prev) {
            return Err(diagnose(sealed, index, &key, &prev, enc_key));
        }
        if enc_key.is_some_and(|enc| open_body(enc, record).is_none()) {
            return Err(AuditFault::Modified { seq });
        }
        match record.kind {
            RecordKind::Entry => {
                entries += 1;
                if is_repair(record, enc_key) && repairs.last() != Some(&seq) {
                    repairs.push(seq);
                }
            }
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
    // The end: the head the store sealed, under its current key, on its day.
    let Some(last_record) = sealed.last() else {
        return Err(beyond
            .last()
            .map_or(AuditFault::Empty, |end| AuditFault::BeyondHead {
                first: beyond[0].seq,
                last: end.seq,
            }));
    };
    if let Some(cp) = checkpoint
        && last < cp.seq
        && beyond.is_empty()
    {
        return Err(AuditFault::Truncated {
            last,
            expected: cp.seq,
        });
    }
    let head_ok = head
        .head_mac
        .is_none_or(|h| head.key.head_ok(head.last_seq, &head.last_mac, &h));
    if last != head.last_seq || !macs_equal(&last_record.mac, &head.last_mac) {
        return Err(AuditFault::HeadMismatch {
            head: head.last_seq,
            last,
        });
    }
    if !head_ok {
        return Err(AuditFault::HeadNotSealed { head: last });
    }
    let reaches = last_record.day == head.key.day()
        || (last_record.kind == RecordKind::Seal && last_record.day + 1 == head.key.day());
    if !reaches {
        return Err(AuditFault::NotToDay {
            day: day_name(head.key.day()),
            last_day: day_name(last_record.day),
        });
    }
    if let Some(end) = beyond.last() {
        return Err(AuditFault::BeyondHead {
            first: beyond[0].seq,
            last: end.seq,
        });
    }
    Ok(VerifyReport {
        records: last,
        entries,
        seals,
        days: u64::from(last_record.day.saturating_sub(first.day)) + 1,
        full,
        head_bound: head.head_mac.is_some(),
        repairs,
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

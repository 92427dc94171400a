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
    day_start(day).date_naive().to_string()
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
    pub fn new(seq: u64, mac: &[u8; 32], time: DateTime<Utc>) -> Self {
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

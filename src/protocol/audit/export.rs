//! The audit export: everything verification needs, in one JSON file, so
//! that an auditor checks a log with the file and the verification code
//! alone, without the store (wire-spec 9.7).

use serde_json::{Map, Value};

use super::*;
use crate::protocol::codes::VerificationCode;

/// The `format` of an export file.
pub const EXPORT_FORMAT: &str = "medcrypt-audit-export/v1";

/// How many days past the code's first day an export may claim: a bound on
/// the key derivation a hostile file can ask for (about 100 years).
const MAX_EXPORT_DAYS: u32 = 36_600;
/// The longest record body an export may carry (an event is a few hundred
/// bytes): a bound on the work a hostile file can ask for, since a failing
/// record is looked for under thousands of keys and positions.
const MAX_EXPORT_BODY: usize = 64 * 1024;

/// What an export carries about the store besides its records.
pub struct ExportHead<'a> {
    /// The store id (10 hex digits), if the store has one.
    pub store_id: Option<&'a str>,
    /// The store's current day (its sealing key's day).
    pub day: u32,
    /// Sequence number of the last record.
    pub last_seq: u64,
    /// MAC of the last record.
    pub last_mac: [u8; 32],
    /// The head MAC under the current day's key, if bound.
    pub head_mac: Option<[u8; 32]>,
}

/// Writes the export file (wire-spec 9.7): one JSON object, records in
/// order, with the audit encryption key so that every body is checked.
pub fn export_json(head: &ExportHead<'_>, enc_key: &[u8; 32], records: &[Record]) -> String {
    let records: Vec<Value> = records
        .iter()
        .map(|record| {
            let event = open_body(enc_key, record)
                .and_then(|e| serde_json::to_value(e).ok())
                .unwrap_or(Value::Null);
            let mut object = Map::new();
            object.insert("seq".into(), record.seq.into());
            object.insert("day".into(), record.day.into());
            object.insert("kind".into(), kind_name(record.kind).into());
            object.insert("body".into(), hex::encode(&record.body).into());
            object.insert("mac".into(), hex::encode(record.mac).into());
            object.insert("event".into(), event);
            Value::Object(object)
        })
        .collect();
    let mut object = Map::new();
    object.insert("format".into(), EXPORT_FORMAT.into());
    object.insert(
        "store_id".into(),
        head.store_id.map_or(Value::Null, Value::from),
    );
    object.insert("day".into(), head.day.into());
    object.insert("last_seq".into(), head.last_seq.into());
    object.insert("last_mac".into(), hex::encode(head.last_mac).into());
    object.insert(
        "head_mac".into(),
        head.head_mac.map_or(Value::Null, |m| hex::encode(m).into()),
    );
    object.insert("encryption_key".into(), hex::encode(enc_key).into());
    object.insert("records".into(), Value::Array(records));
    let mut text = Value::Object(object).to_string();
    text.push('\n');
    text
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Entry => "entry",
        RecordKind::Seal => "seal",
    }
}

/// Why an export could not be verified at all (as opposed to a fault in
/// the log it carries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// Not an export file, or a field is missing or invalid.
    #[error("this is not a readable MedCrypt audit export: {0}")]
    Unreadable(String),
    /// The code's store id is not the export's.
    #[error(
        "the verification code belongs to another store (store id {code}; the export's is {export})"
    )]
    ForeignCode {
        /// The code's store id.
        code: String,
        /// The export's store id.
        export: String,
    },
    /// The checkpoint's store id is not the export's.
    #[error("the checkpoint belongs to another store")]
    ForeignCheckpoint,
    /// The log it carries fails verification.
    #[error(transparent)]
    Fault(#[from] AuditFault),
}

impl ExportError {
    /// A stable name: `unreadable`, `foreign_code`, `foreign_checkpoint`,
    /// or the fault's.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreadable(_) => "unreadable",
            Self::ForeignCode { .. } => "foreign_code",
            Self::ForeignCheckpoint => "foreign_checkpoint",
            Self::Fault(fault) => fault.kind(),
        }
    }
}

/// A verified export: the report and every event, as decrypted.
#[derive(Debug)]
pub struct VerifiedExport {
    /// What was verified.
    pub report: VerifyReport,
    /// The store id the export names.
    pub store_id: Option<String>,
    /// Each record's sequence number and, for entries, its event.
    pub events: Vec<(u64, Option<AuditEvent>)>,
}

fn unreadable(why: impl Into<String>) -> ExportError {
    ExportError::Unreadable(why.into())
}

fn field<'v>(object: &'v Map<String, Value>, name: &str) -> Result<&'v Value, ExportError> {
    object
        .get(name)
        .ok_or_else(|| unreadable(format!("no \"{name}\"")))
}

fn hex_field<const N: usize>(value: &Value, name: &str) -> Result<[u8; N], ExportError> {
    value
        .as_str()
        .filter(|s| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(|s| hex::decode(s).ok())
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| unreadable(format!("\"{name}\" is not {N} bytes of lower-case hex")))
}

fn uint(value: &Value, name: &str) -> Result<u64, ExportError> {
    value
        .as_u64()
        .ok_or_else(|| unreadable(format!("\"{name}\" is not a whole number")))
}

fn record_of(value: &Value) -> Result<(Record, &Value), ExportError> {
    let object = value
        .as_object()
        .ok_or_else(|| unreadable("a record is not an object"))?;
    let seq = uint(field(object, "seq")?, "seq")?;
    let day = u32::try_from(uint(field(object, "day")?, "day")?)
        .map_err(|_| unreadable("\"day\" is out of range"))?;
    let kind = match field(object, "kind")?.as_str() {
        Some("entry") => RecordKind::Entry,
        Some("seal") => RecordKind::Seal,
        _ => return Err(unreadable("\"kind\" is neither \"entry\" nor \"seal\"")),
    };
    let body = field(object, "body")?
        .as_str()
        .filter(|s| s.len() <= 2 * MAX_EXPORT_BODY)
        .filter(|s| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| unreadable("\"body\" is not lower-case hex of at most 64 KiB"))?;
    let mac = hex_field::<32>(field(object, "mac")?, "mac")?;
    let event = object.get("event").unwrap_or(&Value::Null);
    Ok((
        Record {
            seq,
            day,
            kind,
            body,
            mac,
        },
        event,
    ))
}

/// Verifies an export file with the audit verification code (and
/// optionally the latest checkpoint), without the store: the file's head
/// is checked under the key the code derives for the file's day, every MAC
/// from the code, every body with the file's encryption key, and each
/// `event` shown must be what its body decrypts to.
///
/// # Errors
/// [`ExportError`]: unreadable, another store's code or checkpoint, or the
/// log's first fault.
pub fn verify_export(
    data: &[u8],
    code: &VerificationCode,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifiedExport, ExportError> {
    let value: Value =
        serde_json::from_slice(data).map_err(|e| unreadable(format!("not JSON ({e})")))?;
    if has_duplicate_keys(data) {
        return Err(unreadable("a key appears twice in one object"));
    }
    let object = value
        .as_object()
        .ok_or_else(|| unreadable("not a JSON object"))?;
    if field(object, "format")?.as_str() != Some(EXPORT_FORMAT) {
        return Err(unreadable(format!("\"format\" is not \"{EXPORT_FORMAT}\"")));
    }
    let store_id = match field(object, "store_id")? {
        Value::Null => None,
        Value::String(id)
            if id.len() == 10 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Some(id.clone())
        }
        _ => return Err(unreadable("\"store_id\" is not 10 lower-case hex digits")),
    };
    if let Some(given) = code.store_id.map(hex::encode)
        && store_id.as_ref() != Some(&given)
    {
        return Err(ExportError::ForeignCode {
            code: given,
            export: store_id.unwrap_or_else(|| "none".into()),
        });
    }
    if let Some(cp_id) = checkpoint.and_then(|cp| cp.store_id.as_ref())
        && store_id.as_ref() != Some(cp_id)
    {
        return Err(ExportError::ForeignCheckpoint);
    }
    let day = u32::try_from(uint(field(object, "day")?, "day")?)
        .map_err(|_| unreadable("\"day\" is out of range"))?;
    if day < code.key.day() || day - code.key.day() > MAX_EXPORT_DAYS {
        return Err(unreadable(
            "\"day\" is before the code's first day or implausibly far after it",
        ));
    }
    let last_seq = uint(field(object, "last_seq")?, "last_seq")?;
    let last_mac = hex_field::<32>(field(object, "last_mac")?, "last_mac")?;
    // Every export of this release has a head MAC: without one, anyone
    // could cut the records and set the head to match.
    let head_mac = match field(object, "head_mac")? {
        Value::Null => {
            return Err(AuditFault::HeadMismatch {
                head: last_seq,
                last: last_seq,
            }
            .into());
        }
        other => hex_field::<32>(other, "head_mac")?,
    };
    let enc_key = hex_field::<32>(field(object, "encryption_key")?, "encryption_key")?;
    let list = field(object, "records")?
        .as_array()
        .ok_or_else(|| unreadable("\"records\" is not a list"))?;
    let mut records = Vec::with_capacity(list.len());
    let mut shown = Vec::with_capacity(list.len());
    for item in list {
        let (record, event) = record_of(item)?;
        records.push(record);
        shown.push(event);
    }
    let Some(current) = code.key.step_to(day) else {
        return Err(unreadable("\"day\" is before the code's first day"));
    };
    // A first-release code names no store: one that verifies neither the
    // first record nor the head is another store's code (wire-spec 9.1),
    // not a fault of this log.
    if code.store_id.is_none()
        && !current.head_ok(last_seq, &last_mac, &head_mac)
        && records
            .first()
            .is_none_or(|r| r.seq != 1 || !code.key.verifies(r, 1, &[0u8; 32]))
    {
        return Err(ExportError::ForeignCode {
            code: "none (a first-release code)".into(),
            export: store_id.unwrap_or_else(|| "none".into()),
        });
    }
    let head = Head {
        key: &current,
        last_seq,
        last_mac,
        head_mac: Some(head_mac),
    };
    let report = verify(
        &records,
        Trust::VerificationKey(&code.key),
        Some(&enc_key),
        &head,
        checkpoint,
    )?;
    let mut events = Vec::with_capacity(records.len());
    for (record, shown) in records.iter().zip(shown) {
        let event = open_body(&enc_key, record);
        let decrypted = event
            .as_ref()
            .and_then(|e| serde_json::to_value(e).ok())
            .unwrap_or(Value::Null);
        if *shown != decrypted {
            return Err(AuditFault::Modified { seq: record.seq }.into());
        }
        events.push((
            record.seq,
            event.filter(|_| record.kind == RecordKind::Entry),
        ));
    }
    Ok(VerifiedExport {
        report,
        store_id,
        events,
    })
}

/// Whether any JSON object in `data` (valid JSON) has a key twice: a reader
/// that kept the first would see another file than this one.
fn has_duplicate_keys(data: &[u8]) -> bool {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    struct Check;
    impl<'de> Visitor<'de> for Check {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut keys = std::collections::HashSet::new();
            let mut duplicate = false;
            while let Some(key) = map.next_key::<String>()? {
                duplicate |= !keys.insert(key);
                duplicate |= map.next_value_seed(CheckSeed)?;
            }
            Ok(duplicate)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut duplicate = false;
            while let Some(d) = seq.next_element_seed(CheckSeed)? {
                duplicate |= d;
            }
            Ok(duplicate)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    struct CheckSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for CheckSeed {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(Check)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(data);
    serde::de::DeserializeSeed::deserialize(CheckSeed, &mut de).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert!(!has_duplicate_keys(br#"{"a":1,"b":[{"c":1,"d":2}]}"#));
        assert!(has_duplicate_keys(br#"{"a":1,"a":2}"#));
        assert!(has_duplicate_keys(
            br#"{"r":[{"event":{"x":1}},{"event":{"y":1,"y":2}}]}"#
        ));
    }
}

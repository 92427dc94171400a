//! Generation of the conformance vectors in `wire-spec/vectors/`.
//!
//! Run `cargo run --example generate_vectors` to rewrite them; the test
//! `tests/vectors.rs` fails when the code and the files disagree. Nonces are
//! fixed here (derived from each case's name) so the output is reproducible;
//! nothing outside this module can choose a nonce.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protocol::epoch::{Epoch, format_utc, utc};
use crate::protocol::keys::{Direction, EpochKey, PairingSecret};
use crate::protocol::legacy::{LegacyPairing, derive_month_key};
use crate::protocol::wire::{MAX_TEXT_BYTES, Payload, V2_PREFIX, WireMessage};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;

mod more;

/// `keys.json`: the key schedule for one pairing secret.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyScheduleFile {
    /// What the file holds.
    pub description: String,
    /// One case per pairing secret.
    pub cases: Vec<KeyScheduleCase>,
}

/// One pairing secret and everything derived from it.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyScheduleCase {
    /// Case name.
    pub name: String,
    /// 32 bytes, hex.
    pub pairing_secret: String,
    /// The pairing's first epoch, `YYYY-MM`.
    pub start_epoch: String,
    /// Expected deep-link token.
    pub pairing_token: String,
    /// Expected safety number.
    pub safety_number: String,
    /// Consecutive epochs from `start_epoch`, each ratcheted from the one before.
    pub epochs: Vec<EpochVector>,
}

/// The keys of one epoch.
#[derive(Debug, Serialize, Deserialize)]
pub struct EpochVector {
    /// `YYYY-MM`.
    pub epoch: String,
    /// Epoch key, hex.
    pub epoch_key: String,
    /// Key hint, hex.
    pub key_hint: String,
    /// Message key physician→patient, hex.
    pub message_key_physician_to_patient: String,
    /// Message key patient→physician, hex.
    pub message_key_patient_to_physician: String,
}

/// `v2.json`: wire messages and what a receiver must make of them.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireFile {
    /// What the file holds.
    pub description: String,
    /// The cases.
    pub cases: Vec<WireCase>,
}

/// One v2 wire message given to one receiver at one instant.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireCase {
    /// Case name.
    pub name: String,
    /// What the case shows.
    pub comment: String,
    /// The receiver's pairing secret, 32 bytes hex.
    pub pairing_secret: String,
    /// The receiver's pairing start epoch.
    pub start_epoch: String,
    /// `physician` or `patient`.
    pub receiver: String,
    /// The receiver's clock, RFC 3339.
    pub now: String,
    /// The exact text received.
    pub wire: String,
    /// `success` or the name of the error (see `DecryptError::kind`).
    pub expect: String,
    /// For success: the decrypted text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
    /// For success: the replay identity the receiver must record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_id: Option<ReplayIdVector>,
}

/// Replay identity of a successfully opened message.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplayIdVector {
    /// `YYYY-MM`.
    pub epoch: String,
    /// `physician-to-patient` or `patient-to-physician`.
    pub direction: String,
    /// Sender sequence number.
    pub sequence: u32,
}

/// `v1.json`: legacy messages.
#[derive(Debug, Serialize, Deserialize)]
pub struct LegacyFile {
    /// What the file holds.
    pub description: String,
    /// Month keys, for checking the derivation alone.
    pub month_keys: Vec<LegacyMonthKey>,
    /// The cases.
    pub cases: Vec<LegacyCase>,
}

/// One v1 month key.
#[derive(Debug, Serialize, Deserialize)]
pub struct LegacyMonthKey {
    /// Shared secret, as text.
    pub shared_secret: String,
    /// `YYYY-MM`.
    pub month: String,
    /// HMAC-derived salt, hex.
    pub salt: String,
    /// PBKDF2 output, hex.
    pub key: String,
}

/// One v1 message given to one receiver at one instant.
#[derive(Debug, Serialize, Deserialize)]
pub struct LegacyCase {
    /// Case name.
    pub name: String,
    /// What the case shows.
    pub comment: String,
    /// The receiver's shared secret, as text.
    pub shared_secret: String,
    /// The receiver's patient id.
    pub patient_id: String,
    /// The receiver's clock, RFC 3339.
    pub now: String,
    /// The exact text received.
    pub wire: String,
    /// `success` or the name of the error.
    pub expect: String,
    /// For success: the decrypted text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
}

const SECRET_A: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};
const SECRET_B: [u8; 32] = [0x5a; 32];
const LEGACY_SECRET: &str = "correct horse battery staple";
const LEGACY_PATIENT: &str = "P-1042";

fn vector_nonce(name: &str) -> [u8; 12] {
    let digest = Sha256::digest(format!("medcrypt test vector nonce:{name}").as_bytes());
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&digest[..12]);
    nonce
}

fn ep(s: &str) -> Epoch {
    s.parse()
        .unwrap_or_else(|_| Epoch::containing(DateTime::UNIX_EPOCH))
}

fn key_at(secret: &[u8; 32], start: &str, epoch: &str) -> EpochKey {
    let mut key = PairingSecret::from_bytes(secret).first_epoch_key(ep(start));
    while key.epoch() < ep(epoch) {
        match key.next() {
            Some(next) => key = next,
            None => break,
        }
    }
    key
}

fn seal(name: &str, key: &EpochKey, direction: Direction, sequence: u32, text: &str) -> String {
    WireMessage::seal_with_nonce(
        key,
        direction,
        sequence,
        &Payload::Text(text.to_owned()),
        vector_nonce(name),
    )
    .map(|m| m.to_text())
    .unwrap_or_default()
}

/// Decodes the body of a v2 text, lets `edit` change the bytes before the
/// checksum, and re-encodes with a correct checksum: a forgery that passes
/// transit checks and must fail later.
fn forge(wire: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let body = wire
        .strip_prefix(V2_PREFIX)
        .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
        .unwrap_or_default();
    let mut content = body[..body.len().saturating_sub(4)].to_vec();
    edit(&mut content);
    let sum = crate::protocol::wire::checksum(&content);
    content.extend_from_slice(&sum);
    format!("{V2_PREFIX}{}", URL_SAFE_NO_PAD.encode(content))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    format_utc(at)
}

struct CaseBuilder<'a> {
    name: &'a str,
    comment: &'a str,
    secret: [u8; 32],
    start: &'a str,
    receiver: &'a str,
    now: DateTime<Utc>,
}

impl CaseBuilder<'_> {
    fn expect(self, wire: String, expect: &str) -> WireCase {
        WireCase {
            name: self.name.into(),
            comment: self.comment.into(),
            pairing_secret: hex::encode(self.secret),
            start_epoch: self.start.into(),
            receiver: self.receiver.into(),
            now: rfc3339(self.now),
            wire,
            expect: expect.into(),
            plaintext: None,
            replay_id: None,
        }
    }

    fn success(
        self,
        wire: String,
        text: &str,
        epoch: &str,
        direction: Direction,
        seq: u32,
    ) -> WireCase {
        let mut case = self.expect(wire, "success");
        case.plaintext = Some(text.into());
        case.replay_id = Some(ReplayIdVector {
            epoch: epoch.into(),
            direction: direction.name().into(),
            sequence: seq,
        });
        case
    }
}

fn wire_cases() -> Vec<WireCase> {
    use Direction::{PatientToPhysician as P2D, PhysicianToPatient as D2P};
    let nov = key_at(&SECRET_A, "2026-11", "2026-11");
    let now = utc("2026-11-22T10:00:00Z");
    let case = |name, comment, receiver, now| CaseBuilder {
        name,
        comment,
        secret: SECRET_A,
        start: "2026-11",
        receiver,
        now,
    };
    let mut cases = Vec::new();

    let text = "Your lab results are normal. Next visit: 3 December.";
    let wire = seal("v2_physician_to_patient", &nov, D2P, 1, text);
    cases.push(
        case(
            "v2_physician_to_patient",
            "A note from the physician, opened by the patient.",
            "patient",
            now,
        )
        .success(wire.clone(), text, "2026-11", D2P, 1),
    );

    let reply = "Thank you, doctor. Should I keep taking 5 mg?";
    let wire_reply = seal("v2_patient_to_physician", &nov, P2D, 1, reply);
    cases.push(
        case(
            "v2_patient_to_physician",
            "A reply from the patient, opened by the physician.",
            "physician",
            now,
        )
        .success(wire_reply, reply, "2026-11", P2D, 1),
    );

    let unicode = "Température 38,5 °C — ибупрофен 400 мг 💊";
    cases.push(
        case(
            "v2_unicode_text",
            "UTF-8 text beyond ASCII.",
            "patient",
            now,
        )
        .success(
            seal("v2_unicode_text", &nov, D2P, 2, unicode),
            unicode,
            "2026-11",
            D2P,
            2,
        ),
    );

    cases.push(
        case(
            "v2_empty_text",
            "An empty text still pads to 32 bytes.",
            "patient",
            now,
        )
        .success(
            seal("v2_empty_text", &nov, D2P, 3, ""),
            "",
            "2026-11",
            D2P,
            3,
        ),
    );

    let longest: String = "0123456789abcdef"
        .chars()
        .cycle()
        .take(MAX_TEXT_BYTES)
        .collect();
    cases.push(
        case(
            "v2_maximum_length",
            "The longest text (3003 bytes) whose wire form fits one 4096-character chat message.",
            "patient",
            now,
        )
        .success(
            seal("v2_maximum_length", &nov, D2P, 4, &longest),
            &longest,
            "2026-11",
            D2P,
            4,
        ),
    );

    let mut wrapped = wire.clone();
    wrapped.insert(60, '\n');
    wrapped.insert(30, ' ');
    wrapped.push_str("\r\n");
    cases.push(
        case(
            "v2_whitespace_inserted",
            "Spaces and line breaks a messenger inserted are stripped before decoding.",
            "patient",
            now,
        )
        .success(wrapped, text, "2026-11", D2P, 1),
    );

    // Year boundary: a pairing that began in December 2026.
    let dec = key_at(&SECRET_A, "2026-12", "2026-12");
    let jan = key_at(&SECRET_A, "2026-12", "2027-01");
    let yb = |name, comment, now| CaseBuilder {
        name,
        comment,
        secret: SECRET_A,
        start: "2026-12",
        receiver: "patient",
        now,
    };
    let jan_text = "Happy new year. Your January appointment is confirmed.";
    cases.push(
        yb(
            "v2_year_boundary_ratcheted",
            "January's key is ratcheted from December's.",
            utc("2027-01-15T09:00:00Z"),
        )
        .success(
            seal("v2_year_boundary_ratcheted", &jan, D2P, 1, jan_text),
            jan_text,
            "2027-01",
            D2P,
            1,
        ),
    );
    let dec_text = "Results from 31 December.";
    let dec_wire = seal("v2_year_boundary_december", &dec, D2P, 9, dec_text);
    cases.push(
        yb(
            "v2_previous_month_in_grace",
            "A December message is still accepted on 7 January, 23:59:59.",
            utc("2027-01-07T23:59:59Z"),
        )
        .success(dec_wire.clone(), dec_text, "2026-12", D2P, 9),
    );
    cases.push(yb("v2_expired", "A December message on 8 January 00:00: the key was destroyed 7 x 24 h after January began.", utc("2027-01-08T00:00:00Z"))
        .expect(dec_wire, "expired"));
    let early = seal("v2_next_month_early", &jan, D2P, 1, jan_text);
    cases.push(
        yb(
            "v2_next_month_within_skew",
            "A January message 10 minutes before January (sender clock ahead).",
            utc("2026-12-31T23:50:00Z"),
        )
        .success(early.clone(), jan_text, "2027-01", D2P, 1),
    );
    cases.push(
        yb(
            "v2_not_yet_valid",
            "A January message 11 minutes before January: beyond the clock-skew allowance.",
            utc("2026-12-31T23:49:00Z"),
        )
        .expect(early, "not_yet_valid"),
    );

    // Errors, each with its own name.
    cases.push(
        case(
            "v2_malformed_plain_text",
            "Ordinary chat text is not a MedCrypt message.",
            "patient",
            now,
        )
        .expect("Hi doctor, see you on Tuesday".into(), "malformed"),
    );
    cases.push(
        case(
            "v2_malformed_direction",
            "Valid checksum but direction byte 3: the sender's encoder is broken.",
            "patient",
            now,
        )
        .expect(forge(&wire, |b| b[4] = 3), "malformed"),
    );
    let mut damaged: Vec<char> = wire.chars().collect();
    let pos = 40;
    damaged[pos] = if damaged[pos] == 'A' { 'B' } else { 'A' };
    cases.push(
        case(
            "v2_damaged_character",
            "One character changed in transit: the checksum fails.",
            "patient",
            now,
        )
        .expect(damaged.into_iter().collect(), "damaged"),
    );
    cases.push(
        case(
            "v2_damaged_truncated",
            "The end of the line was cut off.",
            "patient",
            now,
        )
        .expect(wire[..wire.len() - 5].into(), "damaged"),
    );
    cases.push(
        case(
            "v2_unsupported_version_prefix",
            "A future version prefix.",
            "patient",
            now,
        )
        .expect(
            wire.replacen("MEDCRYPT:v2:", "MEDCRYPT:v3:", 1),
            "unsupported_version",
        ),
    );
    cases.push(
        case(
            "v2_unsupported_version_header",
            "Valid checksum, version byte 3 in the header.",
            "patient",
            now,
        )
        .expect(forge(&wire, |b| b[0] = 3), "unsupported_version"),
    );
    let other = key_at(&SECRET_B, "2026-11", "2026-11");
    cases.push(
        case(
            "v2_unknown_key_hint",
            "A message of another pairing (another secret).",
            "patient",
            now,
        )
        .expect(
            seal("v2_unknown_key_hint", &other, D2P, 1, text),
            "unknown_key_hint",
        ),
    );
    cases.push(
        case(
            "v2_authentication_failed_ciphertext",
            "One ciphertext bit flipped and the checksum recomputed: a deliberate forgery.",
            "patient",
            now,
        )
        .expect(forge(&wire, |b| b[30] ^= 1), "authentication_failed"),
    );
    cases.push(
        case(
            "v2_authentication_failed_sequence",
            "The sequence number changed and the checksum recomputed: the header is authenticated.",
            "patient",
            now,
        )
        .expect(forge(&wire, |b| b[8] ^= 1), "authentication_failed"),
    );
    cases.push(
        case(
            "v2_reflected",
            "The physician's own message fed back to the physician.",
            "physician",
            now,
        )
        .expect(wire.clone(), "reflected"),
    );
    let unknown_kind = WireMessage::seal_raw_with_nonce(
        &nov,
        D2P,
        5,
        &[9, 0, 0, 0, 0],
        vector_nonce("v2_unsupported_payload"),
    )
    .map(|m| m.to_text())
    .unwrap_or_default();
    cases.push(
        case(
            "v2_unsupported_payload",
            "Authentic message with payload kind 9, unknown to this version.",
            "patient",
            now,
        )
        .expect(unknown_kind, "unsupported_payload"),
    );
    cases.extend(more_wire_cases(&wire, text, &nov));
    cases
}

/// Wire text of arbitrary body bytes with a correct checksum.
fn with_checksum(content: &[u8]) -> String {
    let mut body = content.to_vec();
    body.extend_from_slice(&crate::protocol::wire::checksum(content));
    format!("{V2_PREFIX}{}", URL_SAFE_NO_PAD.encode(body))
}

/// An authentic message of the November key around chosen plaintext bytes
/// (zero-padded to a multiple of 32).
fn sealed_raw(name: &str, key: &EpochKey, sequence: u32, plain: &[u8]) -> String {
    WireMessage::seal_raw_with_nonce(
        key,
        Direction::PhysicianToPatient,
        sequence,
        plain,
        vector_nonce(name),
    )
    .map(|m| m.to_text())
    .unwrap_or_default()
}

/// The prefix forms, the version token, whitespace, canonical base64, the
/// layout checks and the plaintext rules: one reason to fail per case.
fn more_wire_cases(wire: &str, text: &str, nov: &EpochKey) -> Vec<WireCase> {
    use Direction::PhysicianToPatient as D2P;
    let now = utc("2026-11-22T10:00:00Z");
    let case = |name, comment| CaseBuilder {
        name,
        comment,
        secret: SECRET_A,
        start: "2026-11",
        receiver: "patient",
        now,
    };
    let body = &wire[V2_PREFIX.len()..];
    let mut cases = Vec::new();
    let mut push = |name: &'static str, comment: &'static str, wire: String, expect: &str| {
        cases.push(case(name, comment).expect(wire, expect));
    };
    // Prefix forms (section 5, step 1).
    push(
        "v2_prefix_bracketed",
        "A v2 message in brackets, as v1 is written: v2 is never bracketed.",
        format!("[{wire}]"),
        "malformed",
    );
    push(
        "v2_prefix_v1_without_bracket",
        "MEDCRYPT:v1: without its opening bracket: v1 is always bracketed.",
        format!("MEDCRYPT:v1:{body}"),
        "malformed",
    );
    push(
        "v2_prefix_bracket_no_version",
        "[MEDCRYPT: and nothing readable after it: cut in transit.",
        "[MEDCRYPT:".into(),
        "damaged",
    );
    push(
        "v2_prefix_no_version",
        "MEDCRYPT: followed directly by the body: the version was lost.",
        format!("MEDCRYPT:{body}"),
        "damaged",
    );
    push(
        "v2_prefix_version_punctuation",
        "v! is not a version token (v then 1-4 digits, no leading zero).",
        format!("MEDCRYPT:v!:{body}"),
        "damaged",
    );
    push(
        "v2_prefix_version_non_ascii",
        "vé is not a version token.",
        format!("MEDCRYPT:vé:{body}"),
        "damaged",
    );
    push(
        "v2_prefix_version_trailing_letter",
        "v2x is not a version token.",
        format!("MEDCRYPT:v2x:{body}"),
        "damaged",
    );
    push(
        "v2_prefix_version_leading_zero",
        "v02 is not a version token (leading zero).",
        format!("MEDCRYPT:v02:{body}"),
        "damaged",
    );
    push(
        "v2_prefix_version_ten",
        "v10 is a version token of another version.",
        format!("MEDCRYPT:v10:{body}"),
        "unsupported_version",
    );
    push(
        "v2_prefix_bracketed_v3",
        "[MEDCRYPT:v3: is another version, bracketed or not.",
        format!("[MEDCRYPT:v3:{body}]"),
        "unsupported_version",
    );
    push(
        "v2_prefix_lower_case",
        "The prefix is case-sensitive.",
        format!("medcrypt:v2:{body}"),
        "malformed",
    );
    push(
        "v2_prefix_empty_input",
        "Nothing at all (or only white space).",
        " \n".into(),
        "malformed",
    );
    // White space: Unicode White_Space is removed, nothing else.
    let mut nbsp = wire.to_owned();
    nbsp.insert(50, '\u{00A0}');
    nbsp.insert(20, '\u{2028}');
    nbsp.insert(70, '\u{0085}');
    cases.push(
        case(
            "v2_whitespace_unicode",
            "No-break space, line separator and NEL (all Unicode White_Space) are removed.",
        )
        .success(nbsp, text, "2026-11", D2P, 1),
    );
    let mut push = |name: &'static str, comment: &'static str, wire: String, expect: &str| {
        cases.push(case(name, comment).expect(wire, expect));
    };
    let mut us = wire.to_owned();
    us.insert(50, '\u{001F}');
    push(
        "v2_not_whitespace_unit_separator",
        "U+001F is not Unicode White_Space (Python's isspace() says it is): it stays, and is not base64url.",
        us,
        "damaged",
    );
    let mut zw = wire.to_owned();
    zw.insert(50, '\u{200B}');
    push(
        "v2_not_whitespace_zero_width",
        "A zero-width space is not White_Space: it stays, and is not base64url.",
        zw,
        "damaged",
    );
    // Canonical base64url (section 1).
    push(
        "v2_base64_padding",
        "Padding '=' is not base64url without padding.",
        format!("{wire}="),
        "damaged",
    );
    let std_alphabet = if body.contains('-') {
        wire.replacen('-', "+", 1)
    } else {
        wire.replacen('_', "/", 1)
    };
    push(
        "v2_base64_standard_alphabet",
        "A character of standard base64 ('+' or '/') instead of base64url.",
        std_alphabet,
        "damaged",
    );
    push(
        "v2_base64_length_1_mod_4",
        "A length of 1 mod 4 cannot be base64.",
        format!("{wire}A"),
        "damaged",
    );
    let mut chars: Vec<char> = wire.chars().collect();
    if let Some(last) = chars.last_mut() {
        // The last character carries unused low bits (the body's length is
        // not a multiple of 3): set the lowest.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let value = alphabet.find(*last).unwrap_or(0);
        *last = alphabet.as_bytes()[value ^ 1].into();
    }
    push(
        "v2_base64_non_canonical",
        "The last character has non-zero unused bits: a non-canonical encoding of the same bytes.",
        chars.into_iter().collect(),
        "damaged",
    );
    push(
        "v2_empty_body",
        "Nothing after the prefix.",
        V2_PREFIX.into(),
        "damaged",
    );
    push(
        "v2_body_shorter_than_checksum",
        "Three bytes: less than a checksum.",
        format!("{V2_PREFIX}AAAA"),
        "damaged",
    );
    // Layout (steps 4-5), each with a correct checksum.
    push(
        "v2_malformed_short_header",
        "A correct checksum over 12 bytes: shorter than a header.",
        with_checksum(&[2; 12]),
        "malformed",
    );
    let header: Vec<u8> = URL_SAFE_NO_PAD.decode(body).unwrap_or_default()[..13].to_vec();
    let mut month13 = header.clone();
    month13[3] = 13;
    month13.extend_from_slice(&[0; 12 + 48]);
    push(
        "v2_malformed_month_13",
        "Month 13 in the header.",
        with_checksum(&month13),
        "malformed",
    );
    let mut month0 = header.clone();
    month0[3] = 0;
    month0.extend_from_slice(&[0; 12 + 48]);
    push(
        "v2_malformed_month_0",
        "Month 0 in the header.",
        with_checksum(&month0),
        "malformed",
    );
    let mut year = header.clone();
    year[1..3].copy_from_slice(&1999u16.to_be_bytes());
    year.extend_from_slice(&[0; 12 + 48]);
    push(
        "v2_malformed_year_1999",
        "Year 1999 in the header.",
        with_checksum(&year),
        "malformed",
    );
    let mut only_tag = header.clone();
    only_tag.extend_from_slice(&[0; 12 + 16]);
    push(
        "v2_malformed_no_ciphertext_block",
        "A tag but no 32-byte block (k = 0).",
        with_checksum(&only_tag),
        "malformed",
    );
    let mut odd = header.clone();
    odd.extend_from_slice(&[0; 12 + 33 + 16]);
    push(
        "v2_malformed_ciphertext_length",
        "Ciphertext of 33 bytes plus tag: not a multiple of 32.",
        with_checksum(&odd),
        "malformed",
    );
    let mut version_first = header;
    version_first[0] = 7;
    version_first[3] = 13;
    push(
        "v2_version_before_layout",
        "Version byte 7 and month 13: the version is checked first.",
        with_checksum(&version_first),
        "unsupported_version",
    );
    // Plaintext (step 10): authentic, so these are the sender's bugs.
    let mut plain = vec![1, 0, 0, 0, 2, b'h', b'i'];
    plain.resize(32, 0);
    plain[31] = 1;
    push(
        "v2_malformed_nonzero_padding",
        "Authentic, but a padding byte is not zero.",
        sealed_raw("v2_malformed_nonzero_padding", nov, 11, &plain),
        "malformed",
    );
    let mut long_len = vec![1, 0, 0, 0, 40];
    long_len.resize(32, b'a');
    push(
        "v2_malformed_length_past_end",
        "Authentic, but the length field runs past the plaintext.",
        sealed_raw("v2_malformed_length_past_end", nov, 12, &long_len),
        "malformed",
    );
    let mut extra_block = vec![1, 0, 0, 0, 2, b'h', b'i'];
    extra_block.resize(64, 0);
    push(
        "v2_malformed_extra_padding_block",
        "Authentic, but padded to 64 bytes where 32 suffice.",
        sealed_raw("v2_malformed_extra_padding_block", nov, 13, &extra_block),
        "malformed",
    );
    let bad_utf8 = [1, 0, 0, 0, 2, 0xC3, 0x28];
    push(
        "v2_malformed_invalid_utf8",
        "Authentic, but the text is not UTF-8.",
        sealed_raw("v2_malformed_invalid_utf8", nov, 14, &bad_utf8),
        "malformed",
    );
    let mut kind_and_layout = vec![9, 0, 0, 0, 40];
    kind_and_layout.resize(32, 0);
    push(
        "v2_layout_before_kind",
        "Authentic, unknown kind 9 and a bad length: the layout is checked before the kind.",
        sealed_raw("v2_layout_before_kind", nov, 15, &kind_and_layout),
        "malformed",
    );
    // Receivers accept what senders never make.
    let zero = seal("v2_sequence_zero", nov, D2P, 0, "seq 0");
    cases.push(
        case(
            "v2_sequence_zero",
            "Sequence 0: no MedCrypt sender uses it, a receiver accepts it like any other.",
        )
        .success(zero, "seq 0", "2026-11", D2P, 0),
    );
    let long: String = "x".repeat(4000);
    let mut over = vec![1];
    over.extend_from_slice(&4000u32.to_be_bytes());
    over.extend_from_slice(long.as_bytes());
    let over_wire = sealed_raw("v2_over_maximum_length", nov, 16, &over);
    cases.push(case("v2_over_maximum_length", "4000 bytes of text (over the 3003 a sender may put in one chat message): a receiver accepts it.").success(over_wire, &long, "2026-11", D2P, 16));
    cases
}

fn key_schedule() -> KeyScheduleFile {
    let mut cases = Vec::new();
    for (name, secret, start) in [
        (
            "sequential_secret_across_year_boundary",
            SECRET_A,
            "2026-11",
        ),
        ("constant_secret", SECRET_B, "2027-12"),
    ] {
        let pairing = PairingSecret::from_bytes(&secret);
        let mut key = pairing.first_epoch_key(ep(start));
        let mut epochs = Vec::new();
        for _ in 0..3 {
            epochs.push(EpochVector {
                epoch: key.epoch().to_string(),
                epoch_key: hex::encode(key.expose_bytes()),
                key_hint: hex::encode(key.key_hint().0),
                message_key_physician_to_patient: hex::encode(
                    key.message_key(Direction::PhysicianToPatient)
                        .expose_bytes(),
                ),
                message_key_patient_to_physician: hex::encode(
                    key.message_key(Direction::PatientToPhysician)
                        .expose_bytes(),
                ),
            });
            match key.next() {
                Some(next) => key = next,
                None => break,
            }
        }
        cases.push(KeyScheduleCase {
            name: name.into(),
            pairing_secret: hex::encode(secret),
            start_epoch: start.into(),
            pairing_token: pairing.pairing_token().to_string(),
            safety_number: pairing.safety_number(ep(start)).to_string(),
            epochs,
        });
    }
    KeyScheduleFile {
        description:
            "MedCrypt v2 key schedule: from a pairing secret and start epoch to the token, \
                      safety number, and three ratcheted epochs with their hints and message keys."
                .into(),
        cases,
    }
}

fn legacy() -> LegacyFile {
    let mut sender = LegacyPairing::new(SecretString::from(LEGACY_SECRET), LEGACY_PATIENT.into());
    let mut other = LegacyPairing::new(SecretString::from(LEGACY_SECRET), "P-2000".into());
    let case = |name: &str,
                comment: &str,
                now: DateTime<Utc>,
                wire: String,
                expect: &str,
                plaintext: Option<&str>| LegacyCase {
        name: name.into(),
        comment: comment.into(),
        shared_secret: LEGACY_SECRET.into(),
        patient_id: LEGACY_PATIENT.into(),
        now: rfc3339(now),
        wire,
        expect: expect.into(),
        plaintext: plaintext.map(str::to_owned),
    };
    let text = "Please fast for 12 hours before the blood test.";
    let nov = sender
        .encrypt_with_nonce(text, ep("2026-11"), vector_nonce("v1_current_month"))
        .to_text();
    let dec = sender
        .encrypt_with_nonce(
            "Happy holidays",
            ep("2026-12"),
            vector_nonce("v1_year_boundary"),
        )
        .to_text();
    let unicode = "Glycémie à jeun : 5,4 mmol/L ✓";
    let uni = sender
        .encrypt_with_nonce(unicode, ep("2026-11"), vector_nonce("v1_unicode"))
        .to_text();
    let foreign = other
        .encrypt_with_nonce(text, ep("2026-11"), vector_nonce("v1_other_patient"))
        .to_text();
    let mut tampered = crate::protocol::legacy::LegacyMessage::parse(&nov).ok();
    if let Some(msg) = tampered.as_mut() {
        msg.flip_ciphertext_bit();
    }
    let tampered = tampered.map(|m| m.to_text()).unwrap_or_default();

    let mut month_keys = Vec::new();
    for month in ["2026-11", "2026-12", "2027-01"] {
        month_keys.push(LegacyMonthKey {
            shared_secret: LEGACY_SECRET.into(),
            month: month.into(),
            salt: hex::encode(crate::protocol::legacy::month_salt(
                LEGACY_SECRET,
                ep(month),
            )),
            key: hex::encode(derive_month_key(LEGACY_SECRET, ep(month)).expose_secret()),
        });
    }
    LegacyFile {
        description:
            "MedCrypt legacy v1: month-key derivation and messages. A v1 receiver tries the month \
                      of `now` and, before the 8th 00:00 UTC, the previous month."
                .into(),
        month_keys,
        cases: vec![
            case(
                "v1_current_month",
                "Encrypted and read in November.",
                utc("2026-11-20T09:00:00Z"),
                nov.clone(),
                "success",
                Some(text),
            ),
            case(
                "v1_unicode",
                "UTF-8 text.",
                utc("2026-11-20T09:00:00Z"),
                uni,
                "success",
                Some(unicode),
            ),
            case(
                "v1_previous_month_in_grace",
                "A November message read on 7 December.",
                utc("2026-12-07T12:00:00Z"),
                nov.clone(),
                "success",
                Some(text),
            ),
            case(
                "v1_previous_month_after_grace",
                "A November message on 8 December: no key in the window opens it.",
                utc("2026-12-08T00:00:00Z"),
                nov.clone(),
                "authentication_failed",
                None,
            ),
            case(
                "v1_year_boundary",
                "A December message read on 2 January.",
                utc("2027-01-02T08:00:00Z"),
                dec,
                "success",
                Some("Happy holidays"),
            ),
            case(
                "v1_other_patient",
                "A message for patient P-2000 given to the P-1042 pairing.",
                utc("2026-11-20T09:00:00Z"),
                foreign,
                "unknown_key_hint",
                None,
            ),
            case(
                "v1_tampered",
                "One ciphertext bit flipped.",
                utc("2026-11-20T09:00:00Z"),
                tampered,
                "authentication_failed",
                None,
            ),
            case(
                "v1_damaged_base64",
                "An invalid base64 character in the nonce field.",
                utc("2026-11-20T09:00:00Z"),
                damage_v1_nonce(&nov),
                "damaged",
                None,
            ),
            case(
                "v1_malformed_missing_bracket",
                "The closing bracket is missing.",
                utc("2026-11-20T09:00:00Z"),
                nov.trim_end_matches(']').to_owned(),
                "malformed",
                None,
            ),
        ]
        .into_iter()
        .chain(
            more_v1_cases(&nov, text)
                .into_iter()
                .map(|(name, comment, wire, expect, plain)| {
                    case(
                        name,
                        comment,
                        utc("2026-11-20T09:00:00Z"),
                        wire,
                        expect,
                        plain,
                    )
                }),
        )
        .collect(),
    }
}

/// The v1 parse order of section 6, one reason to fail each.
fn more_v1_cases<'a>(
    wire: &str,
    text: &'a str,
) -> Vec<(
    &'static str,
    &'static str,
    String,
    &'static str,
    Option<&'a str>,
)> {
    use base64::engine::general_purpose::STANDARD;
    let inner = wire
        .trim_start_matches("[MEDCRYPT:v1:")
        .trim_end_matches(']');
    let fields: Vec<String> = inner.split(':').map(str::to_owned).collect();
    let with = |i: usize, value: String| {
        let mut f = fields.clone();
        f[i] = value;
        format!("[MEDCRYPT:v1:{}]", f.join(":"))
    };
    let unpadded = |field: &str| field.trim_end_matches('=').to_owned();
    let mut wrapped = wire.to_owned();
    wrapped.insert(30, '\n');
    wrapped.insert(20, ' ');
    let mut noncanonical = fields[3].clone();
    // The tag (16 bytes) ends "xx==": the last character carries 4 unused bits.
    let last = noncanonical.len() - 3;
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let value = alphabet.find(&noncanonical[last..=last]).unwrap_or(0);
    noncanonical.replace_range(last..=last, &alphabet[(value ^ 1)..=(value ^ 1)]);
    vec![
        (
            "v1_whitespace_inserted",
            "A space and a line break inside: removed before parsing.",
            wrapped,
            "success",
            Some(text),
        ),
        (
            "v1_three_fields",
            "Three fields instead of four.",
            format!("[MEDCRYPT:v1:{}:{}:{}]", fields[0], fields[1], fields[2]),
            "malformed",
            None,
        ),
        (
            "v1_missing_padding",
            "The tag without its padding: padding is required.",
            with(3, unpadded(&fields[3])),
            "damaged",
            None,
        ),
        (
            "v1_non_canonical_tag",
            "The tag's last character has a non-zero unused bit.",
            with(3, noncanonical),
            "damaged",
            None,
        ),
        (
            "v1_url_alphabet",
            "A base64url character ('-') in the ciphertext: standard base64 only.",
            with(2, format!("-{}", &fields[2][1..])),
            "damaged",
            None,
        ),
        (
            "v1_bad_base64_before_shape",
            "The tag is 15 bytes and the ciphertext has an invalid character: decoding comes first.",
            format!(
                "[MEDCRYPT:v1:{}:{}:!{}:{}]",
                fields[0],
                fields[1],
                &fields[2][1..],
                STANDARD.encode([0u8; 15])
            ),
            "damaged",
            None,
        ),
        (
            "v1_patient_id_not_utf8",
            "A patient id that is not UTF-8.",
            with(0, STANDARD.encode([0xff, 0xfe])),
            "malformed",
            None,
        ),
        (
            "v1_nonce_11_bytes",
            "An 11-byte nonce.",
            with(1, STANDARD.encode([7u8; 11])),
            "malformed",
            None,
        ),
        (
            "v1_tag_15_bytes",
            "A 15-byte tag.",
            with(3, STANDARD.encode([7u8; 15])),
            "malformed",
            None,
        ),
    ]
}

/// Puts a character outside the base64 alphabet at the start of the nonce field.
fn damage_v1_nonce(wire: &str) -> String {
    let mut fields: Vec<String> = wire.split(':').map(str::to_owned).collect();
    if let Some(nonce) = fields.get_mut(3) {
        nonce.insert(0, '!');
    }
    fields.join(":")
}

/// `attachment.json`: encrypted files and what a receiver must make of them.
#[derive(Debug, Serialize, Deserialize)]
pub struct AttachmentFile {
    /// What the file holds.
    pub description: String,
    /// The cases.
    pub cases: Vec<AttachmentCase>,
}

/// One encrypted file given to one receiver at one instant.
#[derive(Debug, Serialize, Deserialize)]
pub struct AttachmentCase {
    /// Case name.
    pub name: String,
    /// What the case shows.
    pub comment: String,
    /// The receiver's pairing secret, hex.
    pub pairing_secret: String,
    /// The receiver's pairing start epoch.
    pub start_epoch: String,
    /// `physician` or `patient`.
    pub receiver: String,
    /// The receiver's clock, RFC 3339.
    pub now: String,
    /// The encrypted file, hex; absent when `base` and `edit` give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Name of an earlier case whose file this one edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The edit, applied in this order: `truncate_to` n, `then_append_hex`
    /// / `append_hex`, `flip_bit` [offset, bit], `remove_range` [start, end],
    /// `copy_range` [start, end, at] (inserts a copy of bytes start..end of
    /// the file as it then is at offset `at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<serde_json::Value>,
    /// `success` or the name of the error.
    pub expect: String,
    /// For success: the metadata inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<crate::protocol::attachment::Metadata>,
    /// For success: the content, hex (small files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// For success: SHA-256 of the content, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
}

/// Content of the two-chunk vector: byte i = (i × 31) mod 251.
pub fn vector_content(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31) % 251) as u8).collect()
}

/// The file key of vector `name`.
fn vector_file_key(name: &str) -> [u8; 32] {
    let digest = Sha256::digest(format!("medcrypt test vector file key:{name}").as_bytes());
    let mut file_key = [0u8; 32];
    file_key.copy_from_slice(&digest);
    file_key
}

fn seal_file(name: &str, content: &[u8], file_name: &str, secrets: &[[u8; 32]]) -> Vec<u8> {
    seal_file_as(
        crate::protocol::attachment::Format::V3,
        name,
        content,
        file_name,
        secrets,
    )
}

fn seal_file_as(
    format: crate::protocol::attachment::Format,
    name: &str,
    content: &[u8],
    file_name: &str,
    secrets: &[[u8; 32]],
) -> Vec<u8> {
    use crate::protocol::attachment::{FileKey, Metadata, Recipient, Sealing};
    let recipients: Vec<Recipient> = secrets
        .iter()
        .map(|s| Recipient {
            key: key_at(s, "2026-11", "2026-11"),
            direction: Direction::PhysicianToPatient,
        })
        .collect();
    let metadata = Metadata {
        name: file_name.into(),
        mime: crate::protocol::attachment::guess_mime(file_name).into(),
        size: content.len() as u64,
    };
    let file_key = vector_file_key(name);
    let nonces: Vec<[u8; 12]> = (0..secrets.len())
        .map(|i| vector_nonce(&format!("{name}:{i}")))
        .collect();
    let mut out = Vec::new();
    let sealing = Sealing::with_key(
        format,
        &metadata,
        &recipients,
        FileKey::from_bytes(file_key),
        &nonces,
    );
    if let Ok(sealing) = sealing {
        let _ = sealing.write(content, &mut out, &mut |_| {});
    }
    out
}

fn attachment_cases() -> Vec<AttachmentCase> {
    let now = utc("2026-11-22T10:00:00Z");
    let small = b"Potassium 4.1 mmol/L. Sodium 139 mmol/L.\n".to_vec();
    let two = vector_content(70_000);
    let meta = |name: &str, content: &[u8]| crate::protocol::attachment::Metadata {
        name: name.into(),
        mime: crate::protocol::attachment::guess_mime(name).into(),
        size: content.len() as u64,
    };
    let case = |name: &str,
                comment: &str,
                secret: [u8; 32],
                receiver: &str,
                at: DateTime<Utc>,
                expect: &str| AttachmentCase {
        name: name.into(),
        comment: comment.into(),
        pairing_secret: hex::encode(secret),
        start_epoch: "2026-11".into(),
        receiver: receiver.into(),
        now: rfc3339(at),
        file: None,
        base: None,
        edit: None,
        expect: expect.into(),
        metadata: None,
        content: None,
        content_sha256: None,
    };
    let success =
        |mut c: AttachmentCase, file: Vec<u8>, name: &str, content: &[u8], inline: bool| {
            c.file = Some(hex::encode(file));
            c.metadata = Some(meta(name, content));
            c.content = inline.then(|| hex::encode(content));
            c.content_sha256 = Some(hex::encode(Sha256::digest(content)));
            c
        };
    let edited = |mut c: AttachmentCase, base: &str, edit: serde_json::Value| {
        c.base = Some(base.into());
        c.edit = Some(edit);
        c
    };
    let small_file = seal_file("attachment_one_chunk", &small, "labs.txt", &[SECRET_A]);
    let two_file = seal_file("attachment_two_chunks", &two, "scan.dcm", &[SECRET_A]);
    let both_file = seal_file(
        "attachment_two_recipients",
        &small,
        "labs.txt",
        &[SECRET_A, SECRET_B],
    );
    let header_len = 22 + 65 + 32;
    let mut cases = vec![
        success(
            case(
                "attachment_one_chunk",
                "A small lab result: one chunk, padded to 4 KiB.",
                SECRET_A,
                "patient",
                now,
                "success",
            ),
            small_file.clone(),
            "labs.txt",
            &small,
            true,
        ),
        success(
            case(
                "attachment_two_chunks",
                "70,000 bytes: content byte i = (i * 31) mod 251; two chunks, the last one partial.",
                SECRET_A,
                "patient",
                now,
                "success",
            ),
            two_file.clone(),
            "scan.dcm",
            &two,
            false,
        ),
        success(
            case(
                "attachment_second_recipient",
                "Addressed to two pairings; opened by the second.",
                SECRET_B,
                "patient",
                now,
                "success",
            ),
            both_file.clone(),
            "labs.txt",
            &small,
            true,
        ),
    ];
    let forged = crate::protocol::attachment::forge_same_size(
        &both_file,
        vector_file_key("attachment_two_recipients"),
        b"Potassium 6.9 mmol/L. Sodium 139 mmol/L.\n",
    );
    let mut c = case(
        "attachment_forged_by_co_recipient",
        "The two-recipient file as the second recipient can rewrite it: same header, new content \
         of the same size, every sender tag kept. The first recipient's tag no longer verifies.",
        SECRET_A,
        "patient",
        now,
        "sender_unverified",
    );
    c.file = Some(hex::encode(forged));
    cases.push(c);
    let v2 = crate::protocol::attachment::Format::V2;
    cases.push(success(
        case(
            "attachment_format2_one_recipient",
            "Format 2 (no sender tags), one recipient: still read.",
            SECRET_A,
            "patient",
            now,
            "success",
        ),
        seal_file_as(
            v2,
            "attachment_format2_one_recipient",
            &small,
            "labs.txt",
            &[SECRET_A],
        ),
        "labs.txt",
        &small,
        true,
    ));
    let mut c = case(
        "attachment_format2_two_recipients",
        "Format 2 with two recipients: either could have rewritten it, so it is refused.",
        SECRET_A,
        "patient",
        now,
        "sender_unprovable",
    );
    c.file = Some(hex::encode(seal_file_as(
        v2,
        "attachment_format2_two_recipients",
        &small,
        "labs.txt",
        &[SECRET_A, SECRET_B],
    )));
    cases.push(c);
    let mut c = case(
        "attachment_not_for_receiver",
        "Addressed only to another pairing.",
        SECRET_B,
        "patient",
        now,
        "unknown_key_hint",
    );
    c.file = Some(hex::encode(&small_file));
    cases.push(c);
    let mut c = case(
        "attachment_reflected",
        "The physician's own file, given back to the physician.",
        SECRET_A,
        "physician",
        now,
        "reflected",
    );
    c.file = Some(hex::encode(&small_file));
    cases.push(c);
    let mut c = case(
        "attachment_expired",
        "A November file on 8 December: the key was destroyed.",
        SECRET_A,
        "patient",
        utc("2026-12-08T00:00:00Z"),
        "expired",
    );
    c.file = Some(hex::encode(&small_file));
    cases.push(c);
    cases.push(edited(
        case(
            "attachment_header_altered",
            "One bit of the header MAC flipped.",
            SECRET_A,
            "patient",
            now,
            "authentication_failed",
        ),
        "attachment_one_chunk",
        serde_json::json!({ "flip_bit": [header_len - 1, 0] }),
    ));
    cases.push(edited(
        case(
            "attachment_truncated",
            "The last 100 bytes are missing.",
            SECRET_A,
            "patient",
            now,
            "truncated",
        ),
        "attachment_two_chunks",
        serde_json::json!({ "truncate_to": two_file.len() - 100 }),
    ));
    cases.push(edited(
        case(
            "attachment_small_truncated",
            "A one-chunk file cut short: the header announces the length, so it reads as truncated.",
            SECRET_A,
            "patient",
            now,
            "truncated",
        ),
        "attachment_one_chunk",
        serde_json::json!({ "truncate_to": small_file.len() - 300 }),
    ));
    cases.push(edited(
        case(
            "attachment_chunk_altered",
            "One bit of the first chunk flipped.",
            SECRET_A,
            "patient",
            now,
            "chunk_modified",
        ),
        "attachment_two_chunks",
        serde_json::json!({ "flip_bit": [header_len + 1000, 3] }),
    ));
    cases.push(edited(
        case(
            "attachment_appended",
            "Bytes appended after the last chunk.",
            SECRET_A,
            "patient",
            now,
            "appended_data",
        ),
        "attachment_two_chunks",
        serde_json::json!({ "append_hex": "00" }),
    ));
    cases.push(edited(case("attachment_empty_final_chunk", "Format 2: cut after the first chunk, then 16 bytes as an empty 'last' chunk.", SECRET_A, "patient", now, "empty_final_chunk"),
        "attachment_format2_two_chunks", serde_json::json!({ "truncate_to": 14 + 65 + 32 + 65_536 + 16, "then_append_hex": "00".repeat(16) })));
    let mut c = case(
        "attachment_format2_two_chunks",
        "Format 2, two chunks, one recipient.",
        SECRET_A,
        "patient",
        now,
        "success",
    );
    c = success(
        c,
        seal_file_as(
            v2,
            "attachment_format2_two_chunks",
            &two,
            "scan.dcm",
            &[SECRET_A],
        ),
        "scan.dcm",
        &two,
        false,
    );
    // Placed before the case that edits it.
    let at = cases
        .iter()
        .position(|c| c.name == "attachment_empty_final_chunk")
        .unwrap_or(cases.len());
    cases.insert(at, c);
    let mut c = case(
        "attachment_not_medcrypt",
        "A plain PDF.",
        SECRET_A,
        "patient",
        now,
        "not_attachment",
    );
    c.file = Some(hex::encode(b"%PDF-1.7 plain text"));
    cases.push(c);
    cases.extend(armor_cases(&small_file, &small, now));
    cases.extend(more_attachment_cases(&small_file, two_file.len()));
    cases
}

/// The ASCII armour of 10.7 around the one-chunk file.
fn armor_cases(file: &[u8], content: &[u8], now: DateTime<Utc>) -> Vec<AttachmentCase> {
    use crate::protocol::attachment::armor;
    let armored = String::from_utf8(armor(file)).unwrap_or_default();
    let case = |name: &str, comment: &str, expect: &str, text: String| {
        let success = expect == "success";
        AttachmentCase {
            name: name.into(),
            comment: comment.into(),
            pairing_secret: hex::encode(SECRET_A),
            start_epoch: "2026-11".into(),
            receiver: "patient".into(),
            now: rfc3339(now),
            file: Some(hex::encode(text.as_bytes())),
            base: None,
            edit: None,
            expect: expect.into(),
            metadata: success.then(|| crate::protocol::attachment::Metadata {
                name: "labs.txt".into(),
                mime: crate::protocol::attachment::guess_mime("labs.txt").into(),
                size: content.len() as u64,
            }),
            content: success.then(|| hex::encode(content)),
            content_sha256: success.then(|| hex::encode(Sha256::digest(content))),
        }
    };
    let lines: Vec<&str> = armored.lines().collect();
    let body = &lines[1..lines.len() - 1];
    let join = |lines: &[&str]| lines.join("\n") + "\n";
    let mut short_middle: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    short_middle[2].pop();
    let mut padded_middle: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let first = std::mem::take(&mut padded_middle[1]);
    padded_middle[1] = format!("{}==", &first[..62]);
    let mut noncanonical: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let last = noncanonical.len() - 2;
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let line = &mut noncanonical[last];
    let data_end = line.trim_end_matches('=').len();
    if data_end < line.len() {
        let at = data_end - 1;
        let value = alphabet.find(&line[at..=at]).unwrap_or(0);
        line.replace_range(at..=at, &alphabet[(value ^ 1)..=(value ^ 1)]);
    }
    let _ = body;
    vec![
        case(
            "armor_file",
            "The one-chunk file in ASCII armour: 64 characters a line, LF.",
            "success",
            armored.clone(),
        ),
        case(
            "armor_crlf_and_blank_lines",
            "CRLF line endings, blank lines and spaces before BEGIN, blank lines after END.",
            "success",
            format!(
                "\r\n  \n  {}\r\n\r\n",
                armored.trim_end().replace('\n', "\r\n")
            ),
        ),
        case(
            "armor_no_final_newline",
            "No line break after the END line.",
            "success",
            armored.trim_end().to_owned(),
        ),
        case(
            "armor_missing_end",
            "The END line missing: cut.",
            "truncated",
            join(&lines[..lines.len() - 1]),
        ),
        case(
            "armor_cut_mid_line",
            "Cut in the middle of a line.",
            "truncated",
            armored[..armored.len() / 2].to_owned(),
        ),
        case(
            "armor_short_middle_line",
            "A line of 63 characters before the last.",
            "malformed",
            short_middle.join("\n") + "\n",
        ),
        case(
            "armor_padding_in_middle",
            "Padding on a line that is not the last.",
            "malformed",
            padded_middle.join("\n") + "\n",
        ),
        case(
            "armor_non_canonical",
            "The last line's final character carries a non-zero unused bit.",
            "malformed",
            noncanonical.join("\n") + "\n",
        ),
        case(
            "armor_text_after_end",
            "Text after the END line.",
            "malformed",
            format!("{armored}thanks\n"),
        ),
        case(
            "armor_wrong_begin",
            "Another BEGIN line.",
            "not_attachment",
            armored.replacen("MEDCRYPT FILE", "MEDCRYPT MESSAGE", 1),
        ),
        case(
            "armor_begin_with_text",
            "The BEGIN line followed by more text on its line: not armour (plaintext that starts like it).",
            "not_attachment",
            armored.replacen("FILE-----", "FILE----- my lab results", 1),
        ),
        case(
            "armor_url_alphabet",
            "A base64url character in a line.",
            "malformed",
            {
                let mut l: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
                l[1].replace_range(0..1, "-");
                l.join("\n") + "\n"
            },
        ),
    ]
}

/// A file sealed for SECRET_A's patient around a chosen plaintext stream
/// (see [`crate::protocol::attachment::seal_stream`]).
fn sealed_stream(name: &str, stream: &crate::protocol::attachment::FuzzStream<'_>) -> Vec<u8> {
    let recipient = crate::protocol::attachment::Recipient {
        key: key_at(&SECRET_A, "2026-11", "2026-11"),
        direction: Direction::PhysicianToPatient,
    };
    crate::protocol::attachment::seal_stream(&recipient, vector_file_key(name), stream)
}

/// Header checks, the chunk failures in their order of detection, and the
/// rules for what is inside the authenticated stream.
fn more_attachment_cases(small_file: &[u8], two_len: usize) -> Vec<AttachmentCase> {
    use crate::protocol::attachment::FuzzStream;
    use serde_json::json;
    let now = utc("2026-11-22T10:00:00Z");
    let header_len = 22 + 65 + 32;
    let case = |name: &str, comment: &str, expect: &str| AttachmentCase {
        name: name.into(),
        comment: comment.into(),
        pairing_secret: hex::encode(SECRET_A),
        start_epoch: "2026-11".into(),
        receiver: "patient".into(),
        now: rfc3339(now),
        file: None,
        base: None,
        edit: None,
        expect: expect.into(),
        metadata: None,
        content: None,
        content_sha256: None,
    };
    let edit = |name: &str, comment: &str, expect: &str, base: &str, edit: serde_json::Value| {
        let mut c = case(name, comment, expect);
        c.base = Some(base.into());
        c.edit = Some(edit);
        c
    };
    let one = "attachment_one_chunk";
    let two = "attachment_two_chunks";
    let mut cases = vec![
        // The header, in the order it is read (10.2).
        edit(
            "attachment_header_short",
            "Cut inside the header (50 bytes).",
            "truncated",
            one,
            json!({ "truncate_to": 50 }),
        ),
        edit(
            "attachment_magic_only",
            "Only the first 9 bytes: too short to be an attachment.",
            "not_attachment",
            one,
            json!({ "truncate_to": 9 }),
        ),
        edit(
            "attachment_part_given_as_file",
            "Kind byte 'P' (a part's header) where a file's 'F' stands.",
            "not_attachment",
            one,
            json!({ "flip_bit": [8, 4] }),
        ),
        edit(
            "attachment_unsupported_version",
            "Version byte 7.",
            "unsupported_version",
            one,
            json!({ "flip_bit": [9, 2] }),
        ),
        edit(
            "attachment_bad_month",
            "Month 13 in the header's epoch.",
            "malformed",
            one,
            json!({ "flip_bit": [12, 4] }),
        ),
        edit(
            "attachment_stream_length_not_padme",
            "A stream length that is not a Padmé length: refused before any key is used.",
            "malformed",
            one,
            json!({ "flip_bit": [20, 0] }),
        ),
        edit(
            "attachment_zero_recipients",
            "Stanza count 0.",
            "malformed",
            one,
            json!({ "flip_bit": [21, 0] }),
        ),
        edit(
            "attachment_seventeen_recipients",
            "Stanza count 17.",
            "malformed",
            one,
            json!({ "flip_bit": [21, 4] }),
        ),
        edit(
            "attachment_stanza_altered",
            "One bit of the wrapped file key flipped: the stanza does not unwrap.",
            "authentication_failed",
            one,
            json!({ "flip_bit": [22 + 20, 0] }),
        ),
        // Chunks, in the order of detection (10.4).
        edit(
            "attachment_bare_tag_after_header",
            "The header, then 16 bytes where the first chunk should be: the header announces 4 KiB, so the input ends early.",
            "truncated",
            one,
            json!({ "truncate_to": header_len, "then_append_hex": "00".repeat(16) }),
        ),
        edit(
            "attachment_one_chunk_appended",
            "A one-chunk file with a byte appended: the header gives the chunk's length, so the extra byte is seen after it opens.",
            "appended_data",
            one,
            json!({ "append_hex": "00" }),
        ),
        edit(
            "attachment_first_chunk_cut_at_boundary",
            "A two-chunk file cut after its first chunk: the input ends before the announced length.",
            "truncated",
            two,
            json!({ "truncate_to": header_len + 65_536 + 16 }),
        ),
        edit(
            "attachment_last_chunk_altered",
            "One bit of the last chunk flipped.",
            "chunk_modified",
            two,
            json!({ "flip_bit": [two_len - 1, 7] }),
        ),
        edit(
            "attachment_chunk_duplicated",
            "The first chunk repeated in place of the second (the file keeps its length).",
            "duplicated",
            "attachment_three_chunks",
            json!({ "remove_range": [header_len + 65_552, header_len + 2 * 65_552], "copy_range": [header_len, header_len + 65_552, header_len + 65_552] }),
        ),
        edit(
            "attachment_middle_chunk_removed",
            "The middle of three full chunks removed: the last chunk stands at position 1.",
            "reordered",
            "attachment_three_chunks",
            json!({ "remove_range": [header_len + 65_552, header_len + 2 * 65_552] }),
        ),
    ];
    let mut part = small_file.to_vec();
    part[8] = b'P';
    let mut c = case(
        "attachment_part_given_alone",
        "Kind byte 'P' (a part's header) given where a whole file was expected: give all the parts.",
        "malformed",
    );
    c.file = Some(hex::encode(part));
    cases.push(c);
    // Three full chunks: a stream of exactly 3 × 65,536 bytes.
    let three = vector_content(196_608 - 4 - 44 - 32 - 32 - 200);
    let three_file = seal_file("attachment_three_chunks", &three, "ct.dcm", &[SECRET_A]);
    let mut c = case(
        "attachment_three_chunks",
        "Three full chunks (a stream of exactly 3 × 65,536 bytes); content byte i = (i × 31) mod 251.",
        "success",
    );
    c.file = Some(hex::encode(&three_file));
    c.metadata = Some(crate::protocol::attachment::Metadata {
        name: "ct.dcm".into(),
        mime: crate::protocol::attachment::guess_mime("ct.dcm").into(),
        size: three.len() as u64,
    });
    c.content_sha256 = Some(hex::encode(Sha256::digest(&three)));
    cases.insert(0, c);
    // Inside the authenticated stream (10.4): made with the file key, so
    // these are what a broken or hostile sender can make.
    let laid = |name: &str,
                comment: &str,
                expect: &str,
                metadata: &[u8],
                content: &[u8],
                padding: &[u8]| {
        let mut c = case(name, comment, expect);
        c.file = Some(hex::encode(sealed_stream(
            name,
            &FuzzStream::Laid {
                metadata,
                content,
                padding,
            },
        )));
        c
    };
    let content = b"Hb 13.9 g/dL";
    cases.push(laid(
        "attachment_metadata_duplicate_key",
        "Metadata with \"name\" twice: refused.",
        "malformed",
        br#"{"name":"a.txt","name":"b.txt","mime":"text/plain","size":12}"#,
        content,
        b"",
    ));
    let mut unknown = laid(
        "attachment_metadata_unknown_key",
        "Metadata with a key this version does not know: ignored.",
        "success",
        br#"{"name":"hb.txt","mime":"text/plain","size":12,"lang":"es"}"#,
        content,
        b"",
    );
    unknown.metadata = Some(crate::protocol::attachment::Metadata {
        name: "hb.txt".into(),
        mime: "text/plain".into(),
        size: 12,
    });
    unknown.content = Some(hex::encode(content));
    unknown.content_sha256 = Some(hex::encode(Sha256::digest(content)));
    cases.push(unknown);
    let mut spaced = laid(
        "attachment_metadata_not_canonical",
        "Metadata with spaces and another key order (not the canonical form a sender writes): read all the same.",
        "success",
        br#"{ "size": 12, "mime": "text/plain", "name": "hb.txt" }"#,
        content,
        b"",
    );
    spaced.metadata = Some(crate::protocol::attachment::Metadata {
        name: "hb.txt".into(),
        mime: "text/plain".into(),
        size: 12,
    });
    spaced.content = Some(hex::encode(content));
    spaced.content_sha256 = Some(hex::encode(Sha256::digest(content)));
    cases.push(spaced);
    cases.push(laid(
        "attachment_metadata_not_utf8",
        "Metadata whose name holds a byte that is not UTF-8.",
        "malformed",
        b"{\"name\":\"a\xff.txt\",\"mime\":\"text/plain\",\"size\":12}",
        content,
        b"",
    ));
    cases.push(laid(
        "attachment_metadata_missing_size",
        "Metadata without \"size\".",
        "malformed",
        br#"{"name":"a.txt","mime":"text/plain"}"#,
        content,
        b"",
    ));
    cases.push(laid(
        "attachment_metadata_size_mismatch",
        "Metadata announcing 13 bytes for 12: the hash is read one byte off.",
        "malformed",
        br#"{"name":"a.txt","mime":"text/plain","size":13}"#,
        content,
        b"",
    ));
    cases.push(laid(
        "attachment_nonzero_padding",
        "Valid content, hash and sender tag; a padding byte is 1.",
        "malformed",
        br#"{"name":"a.txt","mime":"text/plain","size":12}"#,
        content,
        &[0, 0, 1],
    ));
    let mut long_meta = b"{\"name\":\"".to_vec();
    long_meta.extend(std::iter::repeat_n(b'a', 4100));
    long_meta.extend_from_slice(br#"","mime":"text/plain","size":12}"#);
    cases.push(laid(
        "attachment_metadata_too_long",
        "Metadata of more than 4096 bytes.",
        "malformed",
        &long_meta,
        content,
        b"",
    ));
    let raw = |name: &str, comment: &str, expect: &str, declared: u64, stream: &[u8]| {
        let mut c = case(name, comment, expect);
        c.file = Some(hex::encode(sealed_stream(
            name,
            &FuzzStream::Raw { declared, stream },
        )));
        c
    };
    let mut wrong_hash = 44u32.to_be_bytes().to_vec();
    wrong_hash.extend_from_slice(br#"{"name":"a.txt","mime":"text/plain","size":12}"#);
    wrong_hash.truncate(4 + 44);
    wrong_hash.extend_from_slice(content);
    wrong_hash.extend_from_slice(&[0x55; 32]);
    wrong_hash.resize(4096, 0);
    cases.push(raw(
        "attachment_content_hash_mismatch",
        "The SHA-256 after the content is not the content's.",
        "malformed",
        4096,
        &wrong_hash,
    ));
    cases.push(raw("attachment_stream_longer_than_declared", "A stream of 8192 bytes where the header announces 4096: its first chunk is longer than announced.", "chunk_modified", 4096, &[0u8; 8192]));
    let _ = two_len;
    cases
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The vector files, by name within `wire-spec/vectors/`, with their contents.
pub fn generate() -> Vec<(&'static str, String)> {
    vec![
        ("keys.json", to_json(&key_schedule())),
        (
            "v2.json",
            to_json(&WireFile {
                description: "MedCrypt v2 wire messages. For each case, build the receiver's epoch chain \
                              from pairing_secret and start_epoch, advance it to `now`, parse `wire` and \
                              open it as `receiver`; expect `success` with `plaintext`, or the named error."
                    .into(),
                cases: wire_cases(),
            }),
        ),
        ("v1.json", to_json(&legacy())),
        (
            "attachment.json",
            to_json(&AttachmentFile {
                description: "MedCrypt attachments (format 3, and format 2 as still read). Build the receiver's epoch chain from pairing_secret \
                              and start_epoch, advance it to `now`; take `file` (hex), or the file of case \
                              `base` changed by `edit` (applied in this order: truncate_to, then_append_hex / append_hex, \
                              flip_bit [offset, bit], remove_range [start, end], copy_range [start, end, at]); read the header, unwrap the file key as `receiver`, decrypt; expect \
                              `success` with `metadata` and `content_sha256`, or the named error."
                    .into(),
                cases: attachment_cases(),
            }),
        ),
        ("codes.json", to_json(&more::codes())),
        ("shares.json", to_json(&more::shares())),
        ("parts.json", to_json(&more::parts())),
        ("audit.json", to_json(&more::audit())),
    ]
}

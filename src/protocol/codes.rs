//! Human-facing encodings of secrets: the pairing QR payload, the typed
//! pairing code, and the store's recovery code. Pure: text in, values out.
//!
//! Typed codes use Crockford base32 (no I/L/O/U, case-insensitive, `O`→0,
//! `I`/`L`→1 on input) in dash-separated groups of four, and end with a
//! 4-byte checksum, SHA-256 over a label and the payload, so a mistyped
//! character is rejected rather than taken for another secret.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::protocol::epoch::Epoch;
use crate::protocol::keys::PairingSecret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CHECKSUM_LEN: usize = 4;

/// Checksum label of the typed pairing code.
const PAIRING_CODE_LABEL: &str = "medcrypt/v2/pairing-code";
/// Checksum label of the recovery code.
const RECOVERY_CODE_LABEL: &str = "medcrypt/store/v1/recovery-code";
/// Version byte at the start of a typed pairing code (03 carries the
/// invitation's expiry; 02, without one, is still read).
const PAIRING_CODE_VERSION: u8 = 3;
/// The first release's typed pairing code, without an expiry.
const PAIRING_CODE_VERSION_2: u8 = 2;
/// Scheme and path of the QR payload.
pub const QR_URI_PREFIX: &str = "medcrypt://pair/v2?";
/// The latest expiry an invitation may carry: 9999-12-31T23:59:59Z.
const MAX_EXPIRY: i64 = 253_402_300_799;

/// A typed code or QR payload that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// A character outside the code's alphabet.
    #[error("the code contains {0:?}, which is not a code character: check for typos")]
    BadCharacter(char),
    /// Wrong number of characters.
    #[error("the code has the wrong length: {got} characters instead of {want}")]
    WrongLength {
        /// Characters given (without dashes and spaces).
        got: usize,
        /// Characters expected.
        want: usize,
    },
    /// The checksum does not match: a character was mistyped.
    #[error("the code's checksum does not match: a character was mistyped")]
    Checksum,
    /// A QR code that is not a MedCrypt pairing code, or an unknown version.
    #[error("this QR code is not a MedCrypt pairing code ({0})")]
    NotPairing(&'static str),
}

impl CodeError {
    /// A stable name, for the vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadCharacter(_) => "bad_character",
            Self::WrongLength { .. } => "wrong_length",
            Self::Checksum => "checksum",
            Self::NotPairing(_) => "invalid",
        }
    }
}

fn checksum(label: &str, payload: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(label.as_bytes())
        .chain_update(payload)
        .finalize()
        .into()
}

/// Crockford base32 of `bytes`, whose length must be a multiple of 5.
fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 8];
        buf[3..3 + chunk.len()].copy_from_slice(chunk);
        let mut word = u64::from_be_bytes(buf);
        let mut chars = [0u8; 8];
        for c in chars.iter_mut().rev() {
            *c = CROCKFORD[(word & 31) as usize];
            word >>= 5;
        }
        buf.zeroize();
        out.extend(chars.iter().map(|&c| char::from(c)));
    }
    out
}

fn base32_value(c: char) -> Option<u64> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    CROCKFORD
        .iter()
        .position(|&a| char::from(a) == c)
        .map(|p| p as u64)
}

/// Decodes [`base32_encode`], ignoring dashes and whitespace.
fn base32_decode(text: &str, want_bytes: usize) -> Result<Zeroizing<Vec<u8>>, CodeError> {
    let symbols: Vec<char> = text
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .collect();
    let want = want_bytes * 8 / 5;
    if symbols.len() != want {
        return Err(CodeError::WrongLength {
            got: symbols.len(),
            want,
        });
    }
    let mut out = Zeroizing::new(Vec::with_capacity(want_bytes));
    for group in symbols.chunks(8) {
        let mut word = 0u64;
        for &c in group {
            word = (word << 5) | base32_value(c).ok_or(CodeError::BadCharacter(c))?;
        }
        out.extend_from_slice(&word.to_be_bytes()[3..]);
    }
    Ok(out)
}

/// `payload || checksum(label, payload)` in grouped Crockford base32; the
/// total length must be a multiple of 5 bytes.
pub(crate) fn encode_checked(label: &str, payload: &[u8], checksum_len: usize) -> String {
    let mut bytes = Zeroizing::new(payload.to_vec());
    bytes.extend_from_slice(&checksum(label, payload)[..checksum_len]);
    group_by_four(&base32_encode(&bytes))
}

/// Decodes [`encode_checked`] and returns the payload.
pub(crate) fn decode_checked(
    label: &str,
    text: &str,
    payload_len: usize,
    checksum_len: usize,
) -> Result<Zeroizing<Vec<u8>>, CodeError> {
    let mut bytes = base32_decode(text, payload_len + checksum_len)?;
    if checksum(label, &bytes[..payload_len])[..checksum_len] != bytes[payload_len..] {
        return Err(CodeError::Checksum);
    }
    bytes.truncate(payload_len);
    Ok(bytes)
}

fn group_by_four(symbols: &str) -> String {
    symbols
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The typed fallback pairing code: version, start epoch, the invitation's
/// expiry and the secret, with a checksum, as 72 Crockford characters in 18
/// groups of four.
///
/// ```text
/// +---------+------------+-----------------+--------+----------+
/// | version | start epoch| expires         | secret | checksum |
/// | 1 (03)  | 3          | 4 (Unix minutes)| 32     | 5        |   = 45 bytes = 72 chars
/// +---------+------------+-----------------+--------+----------+
/// ```
///
/// Version 02 (the first release: no expiry field, a 4-byte checksum, 64
/// characters) is still read.
pub fn pairing_code(secret: &PairingSecret, start: Epoch, expires: DateTime<Utc>) -> String {
    let seconds = u64::try_from(expires.timestamp()).unwrap_or(0);
    let minutes = u32::try_from(seconds.div_ceil(60)).unwrap_or(u32::MAX);
    let mut payload = Zeroizing::new(Vec::with_capacity(40));
    payload.push(PAIRING_CODE_VERSION);
    payload.extend_from_slice(&start.to_bytes());
    payload.extend_from_slice(&minutes.to_be_bytes());
    payload.extend_from_slice(secret.expose_bytes());
    encode_checked(PAIRING_CODE_LABEL, &payload, PAIRING_CODE_CHECKSUM_LEN)
}

/// Checksum bytes of a version 03 typed pairing code.
const PAIRING_CODE_CHECKSUM_LEN: usize = 5;

/// A typed pairing code, read.
#[derive(Debug)]
pub struct TypedInvite {
    /// The pairing secret.
    pub secret: PairingSecret,
    /// The pairing's first epoch.
    pub start: Epoch,
    /// When the invitation stops being accepted (none in a version 02 code).
    pub expires: Option<DateTime<Utc>>,
}

/// Parses [`pairing_code`] (versions 03 and 02) into its secret and start
/// epoch; [`read_pairing_code`] gives the expiry too.
///
/// # Errors
/// [`CodeError`] for a wrong character, length, checksum or version.
pub fn parse_pairing_code(code: &str) -> Result<(PairingSecret, Epoch), CodeError> {
    let typed = read_pairing_code(code)?;
    Ok((typed.secret, typed.start))
}

/// Parses [`pairing_code`] (versions 03 and 02).
///
/// # Errors
/// [`CodeError`] for a wrong character, length, checksum or version.
pub fn read_pairing_code(code: &str) -> Result<TypedInvite, CodeError> {
    let symbols = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .count();
    let (payload, expiry_len) = if symbols == 64 {
        (
            decode_checked(PAIRING_CODE_LABEL, code, 36, CHECKSUM_LEN)?,
            0,
        )
    } else {
        let payload = decode_checked(PAIRING_CODE_LABEL, code, 40, PAIRING_CODE_CHECKSUM_LEN)?;
        (payload, 4)
    };
    let version = if expiry_len == 0 {
        PAIRING_CODE_VERSION_2
    } else {
        PAIRING_CODE_VERSION
    };
    if payload[0] != version {
        return Err(CodeError::NotPairing("unknown code version"));
    }
    let epoch = Epoch::from_bytes([payload[1], payload[2], payload[3]])
        .map_err(|_| CodeError::NotPairing("invalid month"))?;
    let expires = if expiry_len == 0 {
        None
    } else {
        let minutes = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
        Some(
            DateTime::from_timestamp(i64::from(minutes) * 60, 0)
                .ok_or(CodeError::NotPairing("invalid expiry"))?,
        )
    };
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&payload[4 + expiry_len..36 + expiry_len]);
    let pairing = PairingSecret::from_bytes(&secret);
    secret.zeroize();
    Ok(TypedInvite {
        secret: pairing,
        start: epoch,
        expires,
    })
}

/// A recovery code: 16 random bytes and a checksum, 32 characters in eight
/// groups of four. Zeroized on drop.
pub struct RecoveryCode(Zeroizing<[u8; 16]>);

impl RecoveryCode {
    /// Wraps 16 random bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The 128-bit secret.
    pub fn expose_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The grouped text shown once at init.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(encode_checked(
            RECOVERY_CODE_LABEL,
            &self.0[..],
            CHECKSUM_LEN,
        ))
    }

    /// Parses [`RecoveryCode::to_text`].
    ///
    /// # Errors
    /// [`CodeError`] for a wrong character, length or checksum.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let payload = decode_checked(RECOVERY_CODE_LABEL, text, 16, CHECKSUM_LEN)?;
        let mut out = [0u8; 16];
        out.copy_from_slice(&payload);
        Ok(Self(Zeroizing::new(out)))
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([REDACTED])")
    }
}

/// Checksum label of the audit verification code (version 2, with the
/// store id).
const VERIFICATION_CODE_LABEL: &str = "medcrypt/audit/v2/verification-code";
/// Checksum label of the first release's code (no store id), still read.
const LEGACY_VERIFICATION_CODE_LABEL: &str = "medcrypt/audit/v1/verification-code";

/// The audit verification code: the first day's sealing key, that day and
/// the store's id, with a 5-byte checksum, as 72 characters in 18 groups of
/// four.
///
/// ```text
/// +------------------+-----------+----------+----------+
/// | verification key | day (u24) | store id | checksum |
/// | 32               | 3         | 5        | 5        |   = 45 bytes = 72 chars
/// +------------------+-----------+----------+----------+
/// ```
///
/// The first release's code (64 characters: no store id, checksum label
/// `medcrypt/audit/v1/verification-code`) is still read.
pub fn verification_code(
    key: &crate::protocol::audit::SealingKey,
    store_id: &[u8; 5],
) -> Zeroizing<String> {
    let mut payload = Zeroizing::new(key.expose_bytes().to_vec());
    payload.extend_from_slice(&key.day().to_be_bytes()[1..]);
    payload.extend_from_slice(store_id);
    Zeroizing::new(encode_checked(VERIFICATION_CODE_LABEL, &payload, 5))
}

/// A parsed audit verification code.
#[derive(Debug)]
pub struct VerificationCode {
    /// The first day's sealing key.
    pub key: crate::protocol::audit::SealingKey,
    /// The store it belongs to (`None` for a first-release code).
    pub store_id: Option<[u8; 5]>,
}

/// Parses [`verification_code`] (and first-release codes).
///
/// # Errors
/// [`CodeError`] for a wrong character, length or checksum.
pub fn parse_verification_code(text: &str) -> Result<VerificationCode, CodeError> {
    let (payload, store_id) = match decode_checked(VERIFICATION_CODE_LABEL, text, 40, 5) {
        Ok(payload) => {
            let mut id = [0u8; 5];
            id.copy_from_slice(&payload[35..40]);
            (payload, Some(id))
        }
        Err(CodeError::WrongLength { got, .. }) => {
            match decode_checked(LEGACY_VERIFICATION_CODE_LABEL, text, 35, 5) {
                Ok(payload) => (payload, None),
                Err(CodeError::WrongLength { .. }) => {
                    return Err(CodeError::WrongLength { got, want: 72 });
                }
                Err(err) => return Err(err),
            }
        }
        Err(err) => return Err(err),
    };
    let mut key = [0u8; 32];
    key.copy_from_slice(&payload[..32]);
    let day = u32::from_be_bytes([0, payload[32], payload[33], payload[34]]);
    let sealing = crate::protocol::audit::SealingKey::from_bytes(day, &key);
    key.zeroize();
    Ok(VerificationCode {
        key: sealing,
        store_id,
    })
}

/// What the pairing QR code carries.
#[derive(Debug)]
pub struct PairingInvite {
    /// The secret (zeroized on drop).
    pub secret: PairingSecret,
    /// The pairing's first epoch.
    pub start: Epoch,
    /// The physician's display name.
    pub physician_name: String,
    /// The Telegram bot's username, when the physician runs one.
    pub telegram_bot: Option<String>,
    /// The WhatsApp number, when the physician runs the WhatsApp agent.
    pub whatsapp_number: Option<String>,
    /// When the invitation stops being accepted (none in a QR code of the
    /// first release).
    pub expires: Option<DateTime<Utc>>,
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn percent_decode(text: &str) -> Result<String, CodeError> {
    let bad = CodeError::NotPairing("bad percent-encoding");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(bad.clone())?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(bad);
                }
                let hex = std::str::from_utf8(hex).map_err(|_| bad.clone())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad.clone())?);
                i += 3;
            }
            // RFC 3986 query characters but `&`, `=`, `+` stand for
            // themselves; anything else must have been percent-encoded
            // (wire-spec 3.5).
            b if b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b','
                        | b';'
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                ) =>
            {
                out.push(b);
                i += 1;
            }
            _ => return Err(bad),
        }
    }
    String::from_utf8(out).map_err(|_| bad)
}

impl PairingInvite {
    /// The QR payload: `medcrypt://pair/v2?s=<secret>&e=<YYYY-MM>&n=<name>[&x=<expiry>][&tg=<bot>][&wa=<number>]`,
    /// the secret in base64url, the expiry in Unix seconds, the rest
    /// percent-encoded.
    pub fn to_uri(&self) -> Zeroizing<String> {
        let mut uri = format!(
            "{QR_URI_PREFIX}s={}&e={}&n={}",
            URL_SAFE_NO_PAD.encode(self.secret.expose_bytes()),
            self.start,
            percent_encode(&self.physician_name)
        );
        if let Some(expires) = self.expires {
            uri.push_str(&format!("&x={}", expires.timestamp()));
        }
        if let Some(bot) = &self.telegram_bot {
            uri.push_str(&format!("&tg={}", percent_encode(bot)));
        }
        if let Some(number) = &self.whatsapp_number {
            uri.push_str(&format!("&wa={}", percent_encode(number)));
        }
        Zeroizing::new(uri)
    }

    /// Parses [`PairingInvite::to_uri`].
    ///
    /// # Errors
    /// [`CodeError::NotPairing`] when it is not a v2 MedCrypt pairing URI.
    pub fn from_uri(uri: &str) -> Result<Self, CodeError> {
        let query = uri
            .trim()
            .strip_prefix(QR_URI_PREFIX)
            .ok_or(CodeError::NotPairing("no medcrypt://pair/v2 prefix"))?;
        let (mut secret, mut start, mut name, mut bot, mut wa) = (None, None, None, None, None);
        let mut expires = None;
        let mut seen: Vec<&str> = Vec::new();
        for field in query.split('&') {
            let (key, value) = field
                .split_once('=')
                .ok_or(CodeError::NotPairing("bad field"))?;
            if seen.contains(&key) {
                return Err(CodeError::NotPairing("a parameter appears twice"));
            }
            seen.push(key);
            match key {
                "s" => {
                    let mut raw = Zeroizing::new(
                        URL_SAFE_NO_PAD
                            .decode(value)
                            .map_err(|_| CodeError::NotPairing("bad secret encoding"))?,
                    );
                    let bytes: &mut [u8; 32] = raw
                        .as_mut_slice()
                        .try_into()
                        .map_err(|_| CodeError::NotPairing("secret must be 32 bytes"))?;
                    secret = Some(PairingSecret::from_bytes(bytes));
                }
                "e" => {
                    start = Some(
                        value
                            .parse::<Epoch>()
                            .map_err(|_| CodeError::NotPairing("bad start month"))?,
                    );
                }
                "n" => name = Some(checked(value, is_display_name, "bad physician name")?),
                "x" => {
                    expires = Some(
                        value
                            .parse::<i64>()
                            .ok()
                            .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                            .filter(|t| *t <= MAX_EXPIRY)
                            .and_then(|t| DateTime::from_timestamp(t, 0))
                            .ok_or(CodeError::NotPairing("bad expiry"))?,
                    );
                }
                "tg" => bot = Some(checked(value, is_telegram_bot, "bad Telegram bot name")?),
                "wa" => wa = Some(checked(value, is_phone_number, "bad WhatsApp number")?),
                _ => {} // Unknown fields are ignored: later versions may add some.
            }
        }
        Ok(Self {
            secret: secret.ok_or(CodeError::NotPairing("no secret"))?,
            start: start.ok_or(CodeError::NotPairing("no start month"))?,
            physician_name: name.unwrap_or_default(),
            telegram_bot: bot.filter(|b| !b.is_empty()),
            whatsapp_number: wa.filter(|w| !w.is_empty()),
            expires,
        })
    }
}

/// A percent-decoded field that must pass `valid` (empty is "absent").
fn checked(value: &str, valid: fn(&str) -> bool, what: &'static str) -> Result<String, CodeError> {
    let decoded = percent_decode(value)?;
    if decoded.is_empty() || valid(&decoded) {
        Ok(decoded)
    } else {
        Err(CodeError::NotPairing(what))
    }
}

/// A Telegram bot's username: 5 to 32 letters, digits or underscores.
pub fn is_telegram_bot(name: &str) -> bool {
    (5..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A phone number as people write it: an optional leading `+`, then
/// digits, spaces, dashes and parentheses, with 5 to 15 digits.
pub fn is_phone_number(number: &str) -> bool {
    let rest = number.strip_prefix('+').unwrap_or(number);
    let digits = rest.bytes().filter(u8::is_ascii_digit).count();
    number.len() <= 32
        && (5..=15).contains(&digits)
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'(' | b')'))
}

/// A name to show another person: at most 100 characters, none of them a
/// control or invisible formatting character (which could drive a
/// terminal, or show one thing and be another).
pub fn is_display_name(name: &str) -> bool {
    name.chars().count() <= 100
        && !name
            .chars()
            .any(|c| c.is_control() || crate::protocol::attachment::is_invisible_format(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_the_qr_that_reach_a_screen_are_checked() {
        let secret = PairingSecret::generate();
        let base = format!(
            "{QR_URI_PREFIX}s={}&e=2026-11",
            URL_SAFE_NO_PAD.encode(secret.expose_bytes())
        );
        for bad in [
            "&wa=%2B1%20555%200100%1B7%1B%5B2A",
            "&tg=silva%1B%5D8%3B%3Bhttp",
            "&tg=ab",
            "&n=Dr%20Ana%E2%80%AE",
            "&n=Dr%0AAna",
        ] {
            assert!(
                PairingInvite::from_uri(&format!("{base}{bad}")).is_err(),
                "{bad}"
            );
        }
        let good = PairingInvite::from_uri(&format!(
            "{base}&n=Dra.%20N%C3%BA%C3%B1ez&tg=silva_clinic_bot&wa=%2B34%20(600)%20123-456"
        ))
        .unwrap();
        assert_eq!(good.physician_name, "Dra. Núñez");
        assert_eq!(good.whatsapp_number.as_deref(), Some("+34 (600) 123-456"));
    }

    #[test]
    fn pairing_code_round_trips_and_is_grouped() {
        let secret = PairingSecret::generate();
        let start: Epoch = "2026-11".parse().unwrap();
        let expires = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let code = pairing_code(&secret, start, expires);
        assert_eq!(code.len(), 72 + 17);
        assert!(code.split('-').all(|g| g.len() == 4));
        let (back, epoch) = parse_pairing_code(&code.to_lowercase()).unwrap();
        assert_eq!(back.expose_bytes(), secret.expose_bytes());
        assert_eq!(epoch, start);
        let typed = read_pairing_code(&code).unwrap();
        // Rounded up to the minute.
        assert_eq!(typed.expires, DateTime::from_timestamp(1_795_000_020, 0));
    }

    #[test]
    fn a_first_release_code_is_still_read_without_an_expiry() {
        let secret = PairingSecret::from_bytes(&[9; 32]);
        let mut payload = vec![PAIRING_CODE_VERSION_2];
        payload.extend_from_slice(&"2026-11".parse::<Epoch>().unwrap().to_bytes());
        payload.extend_from_slice(secret.expose_bytes());
        let code = encode_checked(PAIRING_CODE_LABEL, &payload, CHECKSUM_LEN);
        let typed = read_pairing_code(&code).unwrap();
        assert_eq!(typed.secret.expose_bytes(), &[9; 32]);
        assert_eq!(typed.expires, None);
    }

    #[test]
    fn any_single_mistyped_character_is_rejected() {
        let secret = PairingSecret::from_bytes(&[0x42; 32]);
        let expires = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let code = pairing_code(&secret, "2026-11".parse().unwrap(), expires);
        for (i, original) in code.char_indices().filter(|(_, c)| *c != '-') {
            for &replacement in CROCKFORD {
                let replacement = char::from(replacement);
                if replacement == original {
                    continue;
                }
                let mut typo = code.clone();
                typo.replace_range(i..i + 1, &replacement.to_string());
                assert!(parse_pairing_code(&typo).is_err(), "typo at {i} accepted");
            }
        }
    }

    #[test]
    fn recovery_code_round_trips_and_rejects_typos() {
        let code = RecoveryCode::from_bytes([7; 16]);
        let text = code.to_text();
        assert_eq!(text.len(), 32 + 7);
        assert_eq!(RecoveryCode::parse(&text).unwrap().expose_bytes(), &[7; 16]);
        let mut typo = text.to_string();
        let c = if typo.starts_with('0') { "1" } else { "0" };
        typo.replace_range(0..1, c);
        assert_eq!(RecoveryCode::parse(&typo).unwrap_err(), CodeError::Checksum);
        assert!(matches!(
            RecoveryCode::parse("ABC").unwrap_err(),
            CodeError::WrongLength { .. }
        ));
        assert!(matches!(
            RecoveryCode::parse(&text.replace('-', "").replacen(|_| true, "U", 1)),
            Err(CodeError::BadCharacter('U'))
        ));
    }

    #[test]
    fn verification_code_round_trips() {
        let key = crate::protocol::audit::SealingKey::generate(20_412);
        let text = verification_code(&key, &[1, 2, 3, 4, 5]);
        assert_eq!(text.len(), 72 + 17);
        let back = parse_verification_code(&text).unwrap();
        assert_eq!(
            (back.key.day(), back.key.expose_bytes(), back.store_id),
            (20_412, key.expose_bytes(), Some([1, 2, 3, 4, 5]))
        );
        // A first-release code (no store id) is still read.
        let mut payload = key.expose_bytes().to_vec();
        payload.extend_from_slice(&20_412u32.to_be_bytes()[1..]);
        let legacy = encode_checked(LEGACY_VERIFICATION_CODE_LABEL, &payload, 5);
        let back = parse_verification_code(&legacy).unwrap();
        assert_eq!((back.key.day(), back.store_id), (20_412, None));
        let mut typo = text.to_string();
        typo.replace_range(3..4, if &typo[3..4] == "0" { "1" } else { "0" });
        assert!(parse_verification_code(&typo).is_err());
    }

    #[test]
    fn invite_uri_round_trips() {
        let invite = PairingInvite {
            secret: PairingSecret::generate(),
            start: "2026-12".parse().unwrap(),
            physician_name: "Dr. Ana Müller & Partner".into(),
            telegram_bot: Some("clinic_bot".into()),
            whatsapp_number: None,
            expires: DateTime::from_timestamp(1_795_000_000, 0),
        };
        let uri = invite.to_uri();
        assert!(uri.starts_with(QR_URI_PREFIX));
        let back = PairingInvite::from_uri(&uri).unwrap();
        assert_eq!(back.secret.expose_bytes(), invite.secret.expose_bytes());
        assert_eq!(back.physician_name, invite.physician_name);
        assert_eq!(back.telegram_bot.as_deref(), Some("clinic_bot"));
        assert_eq!(back.start, invite.start);
        assert_eq!(back.expires, invite.expires);
        assert!(PairingInvite::from_uri("https://example.org").is_err());
    }
}

//! Wire message v2: one line of ASCII text that carries an AES-256-GCM
//! encrypted payload through any messenger by copy and paste.
//!
//! Normative description: `wire-spec/README.md`, section "Wire message v2".

use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::protocol::epoch::{Epoch, WindowViolation, check_window, format_utc};
use crate::protocol::keys::{Direction, EpochChain, EpochKey, KEY_HINT_LEN, KeyHint, Role};

/// The text every v2 message starts with.
pub const V2_PREFIX: &str = "MEDCRYPT:v2:";
/// The version byte in the v2 header.
pub(crate) const V2_VERSION: u8 = 2;
/// Domain-separation label of the transit checksum.
pub(crate) const CHECKSUM_LABEL: &str = "medcrypt/v2/wire-checksum";
/// Length of the authenticated header.
pub(crate) const HEADER_LEN: usize = 13;
/// Length of the AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of the transit checksum.
pub(crate) const CHECKSUM_LEN: usize = 4;
/// Plaintext (payload header + content + padding) is padded to a multiple of this.
pub(crate) const PADDING_BLOCK: usize = 32;
/// Length of the payload header inside the plaintext: kind (1) + length (4).
pub(crate) const PAYLOAD_HEADER_LEN: usize = 5;
/// The longest message, in characters, that Telegram and WhatsApp carry.
pub const CHAT_MESSAGE_LIMIT: usize = 4096;
/// The largest text, in UTF-8 bytes, whose v2 wire form fits one chat
/// message of [`CHAT_MESSAGE_LIMIT`] characters. Longer text must travel as
/// an encrypted attachment.
pub const MAX_TEXT_BYTES: usize = max_text_bytes();

/// Length in characters of the wire text for a payload of `content_len` bytes.
pub const fn wire_text_len(content_len: usize) -> usize {
    let padded = padded_len(content_len);
    let body = HEADER_LEN + NONCE_LEN + padded + TAG_LEN + CHECKSUM_LEN;
    let b64 = body / 3 * 4
        + match body % 3 {
            0 => 0,
            rem => rem + 1,
        };
    V2_PREFIX.len() + b64
}

const fn padded_len(content_len: usize) -> usize {
    let unpadded = PAYLOAD_HEADER_LEN + content_len;
    unpadded.div_ceil(PADDING_BLOCK) * PADDING_BLOCK
}

const fn max_text_bytes() -> usize {
    let mut n = 0;
    while wire_text_len(n + 1) <= CHAT_MESSAGE_LIMIT {
        n += 1;
    }
    n
}

/// Why a message could not be decrypted. Each variant is a different story
/// for the user; none of them carries any plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The input is not a MedCrypt message, or its structure is invalid.
    #[error("not a valid MedCrypt message: {0}")]
    Malformed(&'static str),
    /// The text was changed in transit: bad encoding or checksum.
    #[error("the message was damaged in transit ({0})")]
    Damaged(&'static str),
    /// A MedCrypt version this program does not speak.
    #[error("unsupported MedCrypt message version {0:?}")]
    UnsupportedVersion(String),
    /// No key of this pairing matches the message's key hint (or, for v1,
    /// its patient id): it was encrypted for another pairing.
    #[error("the message was not encrypted for this pairing (unknown key hint)")]
    UnknownKeyHint,
    /// The message's month is past its grace period; its key is destroyed.
    #[error("expired: the key for {epoch} was destroyed on {}", format_utc(*.destroyed_at))]
    Expired {
        /// The month of the message.
        epoch: Epoch,
        /// When its key stopped being accepted.
        destroyed_at: DateTime<Utc>,
    },
    /// The message's month has not begun yet (beyond the clock-skew allowance).
    #[error("not yet valid: the message is dated {epoch}, which begins on {}", format_utc(*.begins_at))]
    NotYetValid {
        /// The month of the message.
        epoch: Epoch,
        /// When that month begins.
        begins_at: DateTime<Utc>,
    },
    /// The AEAD tag did not verify: tampered, or encrypted under another key.
    #[error("authentication failed: the message was altered or encrypted with a different key")]
    AuthenticationFailed,
    /// An authentic message of our own sending direction was fed back to us.
    #[error("reflected: this message was sent from this side, not to it")]
    Reflected,
    /// Authentic, but carries a payload kind this program does not know.
    #[error("unsupported payload kind {0} (a newer MedCrypt may read it)")]
    UnsupportedPayload(u8),
}

impl DecryptError {
    /// A stable, machine-readable name, used by the vectors and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Damaged(_) => "damaged",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::UnknownKeyHint => "unknown_key_hint",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::AuthenticationFailed => "authentication_failed",
            Self::Reflected => "reflected",
            Self::UnsupportedPayload(_) => "unsupported_payload",
        }
    }
}

impl From<WindowViolation> for DecryptError {
    fn from(v: WindowViolation) -> Self {
        match v {
            WindowViolation::Expired {
                epoch,
                destroyed_at,
            } => Self::Expired {
                epoch,
                destroyed_at,
            },
            WindowViolation::NotYetValid { epoch, begins_at } => {
                Self::NotYetValid { epoch, begins_at }
            }
        }
    }
}

/// Why a message could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The text does not fit one chat message.
    #[error(
        "the text is {len} bytes; one chat message holds at most {max} bytes of text: send it as an encrypted attachment"
    )]
    TooLong {
        /// Length of the text in bytes.
        len: usize,
        /// [`MAX_TEXT_BYTES`].
        max: usize,
    },
    /// No key for the month of "now" (the clock is before the pairing began).
    #[error("no key for {0}: the clock is earlier than this pairing's first month")]
    NoKeyForEpoch(Epoch),
}

/// The decrypted content of a message. The payload kind byte lets later
/// versions add kinds (attachment reference, edit of message N) without a
/// new wire version.
#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    /// Kind 1: UTF-8 text.
    Text(String),
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Medical content stays out of logs and panics.
        match self {
            Self::Text(text) => write!(f, "Text({} bytes)", text.len()),
        }
    }
}

/// Payload kind code of [`Payload::Text`].
pub(crate) const PAYLOAD_KIND_TEXT: u8 = 1;

impl Payload {
    fn kind(&self) -> u8 {
        match self {
            Self::Text(_) => PAYLOAD_KIND_TEXT,
        }
    }

    fn content(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
        }
    }

    /// Plaintext layout, before encryption:
    ///
    /// ```text
    /// +------+---------------+-----------------+------------------------+
    /// | kind | length (u32)  | content         | zero padding           |
    /// | 1 B  | 4 B, BE       | `length` bytes  | to a multiple of 32 B  |
    /// +------+---------------+-----------------+------------------------+
    /// ```
    fn to_padded_bytes(&self) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let content = self.content();
        if content.len() > MAX_TEXT_BYTES {
            return Err(SealError::TooLong {
                len: content.len(),
                max: MAX_TEXT_BYTES,
            });
        }
        let len = u32::try_from(content.len()).map_err(|_| SealError::TooLong {
            len: content.len(),
            max: MAX_TEXT_BYTES,
        })?;
        let mut out = Zeroizing::new(Vec::with_capacity(padded_len(content.len())));
        out.push(self.kind());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(content);
        out.resize(padded_len(content.len()), 0);
        Ok(out)
    }

    /// Parses [`Payload::to_padded_bytes`]; padding must be zero bytes.
    fn from_padded_bytes(bytes: &[u8]) -> Result<Self, DecryptError> {
        let bad = DecryptError::Malformed("invalid payload encoding");
        if bytes.len() < PAYLOAD_HEADER_LEN || !bytes.len().is_multiple_of(PADDING_BLOCK) {
            return Err(bad);
        }
        let kind = bytes[0];
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let len = usize::try_from(len).map_err(|_| bad.clone())?;
        let end = PAYLOAD_HEADER_LEN.checked_add(len).ok_or(bad.clone())?;
        if end > bytes.len() || padded_len(len) != bytes.len() {
            return Err(bad);
        }
        if bytes[end..].iter().any(|&b| b != 0) {
            return Err(bad);
        }
        match kind {
            PAYLOAD_KIND_TEXT => {
                let text = std::str::from_utf8(&bytes[PAYLOAD_HEADER_LEN..end])
                    .map_err(|_| DecryptError::Malformed("text payload is not UTF-8"))?;
                Ok(Self::Text(text.to_owned()))
            }
            other => Err(DecryptError::UnsupportedPayload(other)),
        }
    }
}

/// The authenticated header of a v2 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Month whose key encrypted the message.
    pub epoch: Epoch,
    /// Which way the message travels.
    pub direction: Direction,
    /// Sender's sequence number within (pairing, epoch, direction).
    pub sequence: u32,
    /// Identifies the pairing's epoch key to the receiver.
    pub key_hint: KeyHint,
}

impl Header {
    /// Header layout (13 bytes, all of it the AEAD's associated data):
    ///
    /// ```text
    /// offset 0    1        3      4          5             9          13
    ///        +----+--------+------+----------+-------------+----------+
    ///        | 02 | year   | month| direction| sequence    | key hint |
    ///        | u8 | u16 BE | u8   | u8 (1|2) | u32 BE      | 4 bytes  |
    ///        +----+--------+------+----------+-------------+----------+
    /// ```
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = V2_VERSION;
        out[1..4].copy_from_slice(&self.epoch.to_bytes());
        out[4] = self.direction.code();
        out[5..9].copy_from_slice(&self.sequence.to_be_bytes());
        out[9..13].copy_from_slice(&self.key_hint.0);
        out
    }

    /// Parses [`Header::to_bytes`].
    fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Result<Self, DecryptError> {
        if bytes[0] != V2_VERSION {
            return Err(DecryptError::UnsupportedVersion(format!(
                "header version byte {}",
                bytes[0]
            )));
        }
        let epoch = Epoch::from_bytes([bytes[1], bytes[2], bytes[3]])
            .map_err(|_| DecryptError::Malformed("invalid epoch in header"))?;
        let direction = Direction::from_code(bytes[4])
            .ok_or(DecryptError::Malformed("invalid direction in header"))?;
        let sequence = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        let mut hint = [0u8; KEY_HINT_LEN];
        hint.copy_from_slice(&bytes[9..13]);
        Ok(Self {
            epoch,
            direction,
            sequence,
            key_hint: KeyHint(hint),
        })
    }
}

/// What identifies a message for replay detection, together with the
/// pairing it was opened under. The store persists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayId {
    /// Month of the message.
    pub epoch: Epoch,
    /// Direction of the message.
    pub direction: Direction,
    /// Sender's sequence number.
    pub sequence: u32,
}

/// An authenticated, decrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The content.
    pub payload: Payload,
    /// What the store must check and record to reject replays.
    pub replay_id: ReplayId,
}

/// A parsed v2 wire message: header, nonce and ciphertext (with tag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireMessage {
    header: Header,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// Removes the whitespace (spaces, line breaks, non-breaking spaces) that a
/// messenger may insert when it wraps or forwards a long line.
pub fn strip_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

pub(crate) fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new()
        .chain_update(CHECKSUM_LABEL.as_bytes())
        .chain_update(V2_PREFIX.as_bytes())
        .chain_update(body)
        .finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

impl WireMessage {
    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The wire text: `MEDCRYPT:v2:` followed by base64url (no padding) of
    ///
    /// ```text
    /// +-----------+----------+--------------------------+-----------+
    /// | header    | nonce    | ciphertext ‖ GCM tag     | checksum  |
    /// | 13 bytes  | 12 bytes | 32·k bytes + 16 bytes    | 4 bytes   |
    /// +-----------+----------+--------------------------+-----------+
    /// checksum = SHA-256("medcrypt/v2/wire-checksum" ‖ "MEDCRYPT:v2:" ‖ preceding bytes)[0..4]
    /// ```
    pub fn to_text(&self) -> String {
        let mut body =
            Vec::with_capacity(HEADER_LEN + NONCE_LEN + self.ciphertext.len() + CHECKSUM_LEN);
        body.extend_from_slice(&self.header.to_bytes());
        body.extend_from_slice(&self.nonce);
        body.extend_from_slice(&self.ciphertext);
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        format!("{V2_PREFIX}{}", URL_SAFE_NO_PAD.encode(&body))
    }

    /// Parses wire text (see [`WireMessage::to_text`]) after stripping
    /// whitespace; anything else non-canonical is rejected.
    ///
    /// # Errors
    /// [`DecryptError::Malformed`] when it is not a MedCrypt message,
    /// [`DecryptError::UnsupportedVersion`] for another version,
    /// [`DecryptError::Damaged`] when the encoding or checksum is wrong.
    pub fn parse(text: &str) -> Result<Self, DecryptError> {
        let text = strip_whitespace(text);
        let body_text = match text.strip_prefix(V2_PREFIX) {
            Some(body) => body,
            None => return Err(classify_foreign(&text)),
        };
        if body_text.is_empty() {
            return Err(DecryptError::Damaged(
                "the message is empty after its prefix",
            ));
        }
        let body = URL_SAFE_NO_PAD
            .decode(body_text)
            .map_err(|_| DecryptError::Damaged("invalid characters or length"))?;
        if body.len() < CHECKSUM_LEN {
            return Err(DecryptError::Damaged("the message is cut short"));
        }
        let (content, sum) = body.split_at(body.len() - CHECKSUM_LEN);
        if checksum(content) != sum {
            return Err(DecryptError::Damaged("checksum mismatch"));
        }
        if content.len() < HEADER_LEN {
            return Err(DecryptError::Malformed("too short for a header"));
        }
        let (header, rest) = content.split_at(HEADER_LEN);
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(header);
        let header = Header::from_bytes(&header_bytes)?;
        if rest.len() < NONCE_LEN + PADDING_BLOCK + TAG_LEN
            || !(rest.len() - NONCE_LEN - TAG_LEN).is_multiple_of(PADDING_BLOCK)
        {
            return Err(DecryptError::Malformed("invalid ciphertext length"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(nonce);
        Ok(Self {
            header,
            nonce: nonce_bytes,
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// Encrypts `payload` under `key` with a fresh random nonce.
    ///
    /// The nonce is random (96 bits from the OS CSPRNG), not derived from
    /// the sequence number: a store restored from a backup or a VM snapshot
    /// would repeat sequence numbers, and a derived nonce would then repeat
    /// under the same key. Each key encrypts one month of one direction of
    /// one pairing, so the 2^-32 birthday bound of random nonces is never
    /// approached.
    ///
    /// # Errors
    /// [`SealError::TooLong`] when the text does not fit one chat message.
    pub fn seal(
        key: &EpochKey,
        direction: Direction,
        sequence: u32,
        payload: &Payload,
    ) -> Result<Self, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        Self::seal_with_nonce(key, direction, sequence, payload, nonce)
    }

    /// [`WireMessage::seal`] with a caller-chosen nonce: for test vectors only.
    pub(crate) fn seal_with_nonce(
        key: &EpochKey,
        direction: Direction,
        sequence: u32,
        payload: &Payload,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self, SealError> {
        let plaintext = payload.to_padded_bytes()?;
        Self::seal_raw_with_nonce(key, direction, sequence, &plaintext, nonce)
    }

    /// Encrypts already encoded plaintext bytes, padding them with zeros to a
    /// multiple of 32. Vectors use it to make payloads this version cannot.
    pub(crate) fn seal_raw_with_nonce(
        key: &EpochKey,
        direction: Direction,
        sequence: u32,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self, SealError> {
        let mut padded = Zeroizing::new(plaintext.to_vec());
        padded.resize(
            plaintext.len().div_ceil(PADDING_BLOCK).max(1) * PADDING_BLOCK,
            0,
        );
        let header = Header {
            epoch: key.epoch(),
            direction,
            sequence,
            key_hint: key.key_hint(),
        };
        let message_key = key.message_key(direction);
        let cipher = Aes256Gcm::new(message_key.expose_bytes().into());
        let aad = header.to_bytes();
        let ciphertext = cipher
            .encrypt(
                Nonce::<U12>::from_slice(&nonce),
                AeadPayload {
                    msg: &padded,
                    aad: &aad,
                },
            )
            // AES-GCM encryption fails only for inputs over 64 GiB.
            .map_err(|_| SealError::TooLong {
                len: padded.len(),
                max: MAX_TEXT_BYTES,
            })?;
        Ok(Self {
            header,
            nonce,
            ciphertext,
        })
    }

    /// Authenticates and decrypts this message for the side `receiver` of a
    /// pairing whose live keys are `chain`, at time `now`.
    ///
    /// Order of checks: the acceptance window (expired / not yet valid: the
    /// key is not, or no longer, available, so this verdict is necessarily
    /// given before authentication); the key hint; AEAD authentication under
    /// the key of the header's direction; the direction against the
    /// receiver's (an authentic message of our own direction is "reflected");
    /// the payload. No plaintext leaves this function unless all pass.
    ///
    /// # Errors
    /// See [`DecryptError`].
    pub fn open(
        &self,
        chain: &EpochChain,
        receiver: Role,
        now: DateTime<Utc>,
    ) -> Result<Opened, DecryptError> {
        check_window(self.header.epoch, now)?;
        let key = chain
            .key_for(self.header.epoch)
            .ok_or(DecryptError::UnknownKeyHint)?;
        self.open_with_key(&key, receiver)
    }

    /// [`WireMessage::open`] under one given epoch key, without the window
    /// check (the caller has done it).
    ///
    /// # Errors
    /// See [`DecryptError`].
    pub fn open_with_key(&self, key: &EpochKey, receiver: Role) -> Result<Opened, DecryptError> {
        if key.epoch() != self.header.epoch || key.key_hint() != self.header.key_hint {
            return Err(DecryptError::UnknownKeyHint);
        }
        let message_key = key.message_key(self.header.direction);
        let cipher = Aes256Gcm::new(message_key.expose_bytes().into());
        let aad = self.header.to_bytes();
        let mut plaintext = cipher
            .decrypt(
                Nonce::<U12>::from_slice(&self.nonce),
                AeadPayload {
                    msg: &self.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| DecryptError::AuthenticationFailed)?;
        let result = if self.header.direction != receiver.inbound() {
            Err(DecryptError::Reflected)
        } else {
            Payload::from_padded_bytes(&plaintext)
        };
        plaintext.zeroize();
        Ok(Opened {
            payload: result?,
            replay_id: ReplayId {
                epoch: self.header.epoch,
                direction: self.header.direction,
                sequence: self.header.sequence,
            },
        })
    }
}

/// Names what a text that does not start with the v2 prefix is.
/// Step 1 of wire-spec section 5 for a text that does not start with
/// `MEDCRYPT:v2:`: the prefix forms, decided in this order.
fn classify_foreign(text: &str) -> DecryptError {
    if text.starts_with("[MEDCRYPT:v2:") {
        return DecryptError::Malformed("a v2 message is written without brackets");
    }
    if text.starts_with("MEDCRYPT:v1:") {
        return DecryptError::Malformed("a v1 message is enclosed in brackets: [MEDCRYPT:v1:…]");
    }
    let unbracketed = text.strip_prefix('[').unwrap_or(text);
    let Some(rest) = unbracketed.strip_prefix("MEDCRYPT:") else {
        return DecryptError::Malformed("it does not start with MEDCRYPT:");
    };
    match version_token(rest) {
        Some(version) => DecryptError::UnsupportedVersion(version.to_owned()),
        None => DecryptError::Damaged("the version tag after MEDCRYPT: is unreadable"),
    }
}

/// A version token: `v`, then 1 to 4 decimal digits without a leading
/// zero, then `:`. Returns the token without its colon.
fn version_token(rest: &str) -> Option<&str> {
    let (token, _) = rest.split_once(':')?;
    let digits = token.strip_prefix('v')?;
    let ok = (1..=4).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::epoch::utc;
    use crate::protocol::keys::PairingSecret;

    fn chain() -> EpochChain {
        let secret = PairingSecret::from_bytes(&[9; 32]);
        EpochChain::new(secret.first_epoch_key("2026-11".parse().unwrap()))
    }

    fn now() -> DateTime<Utc> {
        utc("2026-11-22T10:00:00Z")
    }

    fn sealed(text: &str) -> WireMessage {
        let chain = chain();
        let key = chain.key_for("2026-11".parse().unwrap()).unwrap();
        WireMessage::seal(
            &key,
            Direction::PhysicianToPatient,
            7,
            &Payload::Text(text.into()),
        )
        .unwrap()
    }

    #[test]
    fn max_text_fits_exactly_one_chat_message() {
        assert_eq!(MAX_TEXT_BYTES, 3003);
        assert!(wire_text_len(MAX_TEXT_BYTES) <= CHAT_MESSAGE_LIMIT);
        assert!(wire_text_len(MAX_TEXT_BYTES + 1) > CHAT_MESSAGE_LIMIT);
        let text = "x".repeat(MAX_TEXT_BYTES);
        let wire = sealed(&text).to_text();
        assert_eq!(wire.len(), wire_text_len(MAX_TEXT_BYTES));
        assert!(wire.len() <= CHAT_MESSAGE_LIMIT);
        let chain = chain();
        let key = chain.key_for("2026-11".parse().unwrap()).unwrap();
        let too_long = Payload::Text("x".repeat(MAX_TEXT_BYTES + 1));
        assert!(matches!(
            WireMessage::seal(&key, Direction::PhysicianToPatient, 1, &too_long),
            Err(SealError::TooLong { .. })
        ));
    }

    #[test]
    fn padding_hides_exact_length() {
        assert_eq!(
            sealed("a").to_text().len(),
            sealed(&"a".repeat(27)).to_text().len()
        );
        assert_ne!(
            sealed("a").to_text().len(),
            sealed(&"a".repeat(28)).to_text().len()
        );
    }

    #[test]
    fn wire_text_uses_only_messenger_safe_characters() {
        let wire = sealed("Blood pressure 120/80 — all fine *bold* _it_ ~s~ `c`").to_text();
        assert!(
            wire.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b))
        );
        let body = wire.strip_prefix(V2_PREFIX).unwrap();
        assert!(!body.contains(['*', '~', '`', '=', '+', '/']));
    }

    #[test]
    fn inserted_whitespace_is_tolerated() {
        let wire = sealed("hello").to_text();
        let (a, b) = wire.split_at(40);
        let mangled = format!("  {a}\n{}\u{a0}{} \r\n", &b[..10], &b[10..]);
        let opened = WireMessage::parse(&mangled)
            .unwrap()
            .open(&chain(), Role::Patient, now())
            .unwrap();
        assert_eq!(opened.payload, Payload::Text("hello".into()));
        assert_eq!(opened.replay_id.sequence, 7);
    }

    #[test]
    fn padding_in_base64_is_rejected_as_damage() {
        let wire = sealed("hello").to_text();
        assert!(matches!(
            WireMessage::parse(&format!("{wire}=")),
            Err(DecryptError::Damaged(_))
        ));
    }

    #[test]
    fn foreign_inputs_are_classified() {
        assert_eq!(
            WireMessage::parse("hello doctor").unwrap_err().kind(),
            "malformed"
        );
        assert_eq!(
            WireMessage::parse("MEDCRYPT:v3:AAAA").unwrap_err().kind(),
            "unsupported_version"
        );
        assert_eq!(
            WireMessage::parse("MEDCRYPT:v2:").unwrap_err().kind(),
            "damaged"
        );
        assert_eq!(
            WireMessage::parse("MEDCRYPT:").unwrap_err().kind(),
            "damaged"
        );
    }

    #[test]
    fn payload_debug_hides_content() {
        assert_eq!(
            format!("{:?}", Payload::Text("HIV positive".into())),
            "Text(12 bytes)"
        );
    }

    #[test]
    fn nonzero_padding_is_rejected() {
        let mut bytes = Payload::Text("hi".into()).to_padded_bytes().unwrap();
        bytes[31] = 1;
        assert!(Payload::from_padded_bytes(&bytes).is_err());
    }
}

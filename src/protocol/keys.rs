//! The v2 key schedule: pairing secret, derived pairing values, and the
//! forward-only chain of monthly epoch keys.
//!
//! Every derivation is HKDF-SHA256 with an empty salt, the parent key as input
//! key material, and `info = LABEL || ":" || context`. The labels carry the
//! protocol version. The exact byte strings are normative: see
//! `wire-spec/README.md`, section "Key schedule".

use std::fmt;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::protocol::epoch::Epoch;

/// Label for the first epoch key, derived from the pairing secret.
pub const FIRST_EPOCH_KEY_LABEL: &str = "medcrypt/v2/first-epoch-key";
/// Label for the deep-link pairing token, derived from the pairing secret.
pub const PAIRING_TOKEN_LABEL: &str = "medcrypt/v2/pairing-token";
/// Label for the safety number, derived from the pairing secret.
pub const SAFETY_NUMBER_LABEL: &str = "medcrypt/v2/safety-number";
/// Label for the ratchet step from one month's key to the next.
pub const EPOCH_RATCHET_LABEL: &str = "medcrypt/v2/epoch-ratchet";
/// Label for a per-direction message key, derived from an epoch key.
pub const MESSAGE_KEY_LABEL: &str = "medcrypt/v2/message-key";
/// Label for the key hint, derived from an epoch key.
pub const KEY_HINT_LABEL: &str = "medcrypt/v2/key-hint";
/// Label for the per-direction key that wraps attachment file keys.
pub const FILE_WRAP_KEY_LABEL: &str = "medcrypt/v2/file-wrap-key";
/// Label for the per-direction key that authenticates an attachment's
/// sender to one recipient (attachment format 3).
pub const FILE_SENDER_KEY_LABEL: &str = "medcrypt/v2/file-sender-key";

/// Length in bytes of the pairing token before base64url encoding (32 chars).
const PAIRING_TOKEN_LEN: usize = 24;
/// Groups of digits in a safety number, and digits per group.
const SAFETY_GROUPS: usize = 6;
const SAFETY_GROUP_MODULUS: u64 = 100_000;
/// Length of the key hint on the wire.
pub const KEY_HINT_LEN: usize = 4;

/// HKDF-SHA256 with an empty salt: `OKM = HKDF(ikm, info = label ":" context)`.
fn derive(ikm: &[u8], label: &str, context: &str, out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    let info = [label.as_bytes(), b":", context.as_bytes()];
    // Lengths used here are ≤ 48 bytes, far below HKDF's 255 × 32 limit.
    if hk.expand_multi_info(&info, out).is_err() {
        out.zeroize();
    }
}

pub(crate) fn derive_key(ikm: &[u8], label: &str, context: &str) -> SecretBox<[u8; 32]> {
    let mut key = SecretBox::new(Box::new([0u8; 32]));
    derive(ikm, label, context, key.expose_secret_mut());
    key
}

/// Which way a message travels. Each direction of each epoch has its own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the physician (the agent's side) to the patient.
    PhysicianToPatient,
    /// From the patient to the physician.
    PatientToPhysician,
}

impl Direction {
    /// The one-byte wire code: 1 physician→patient, 2 patient→physician.
    pub fn code(self) -> u8 {
        match self {
            Self::PhysicianToPatient => 1,
            Self::PatientToPhysician => 2,
        }
    }

    /// Decodes [`Direction::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::PhysicianToPatient),
            2 => Some(Self::PatientToPhysician),
            _ => None,
        }
    }

    /// The name used in key derivation and in vectors.
    pub fn name(self) -> &'static str {
        match self {
            Self::PhysicianToPatient => "physician-to-patient",
            Self::PatientToPhysician => "patient-to-physician",
        }
    }

    /// The opposite direction.
    pub fn reverse(self) -> Self {
        match self {
            Self::PhysicianToPatient => Self::PatientToPhysician,
            Self::PatientToPhysician => Self::PhysicianToPatient,
        }
    }
}

/// Which side of a pairing a store is: it decides the direction of what it
/// sends and what it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The physician's side (the bot-side agent).
    Physician,
    /// The patient's side (the local client).
    Patient,
}

impl Role {
    /// The direction of messages this side sends.
    pub fn outbound(self) -> Direction {
        match self {
            Self::Physician => Direction::PhysicianToPatient,
            Self::Patient => Direction::PatientToPhysician,
        }
    }

    /// The direction of messages this side accepts.
    pub fn inbound(self) -> Direction {
        self.outbound().reverse()
    }

    /// `"physician"` or `"patient"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Physician => "physician",
            Self::Patient => "patient",
        }
    }
}

/// The 32-byte secret shared once, by QR code, at the first visit.
///
/// Zeroized on drop; its `Debug` output shows no bytes. It should live only
/// until the first epoch key has been derived and stored.
pub struct PairingSecret(SecretBox<[u8; 32]>);

impl PairingSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut secret = SecretBox::new(Box::new([0u8; 32]));
        OsRng.fill_bytes(secret.expose_secret_mut());
        Self(secret)
    }

    /// A secret received from the other side (QR code or typed code).
    /// The caller should zeroize its copy of `bytes`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(*bytes)))
    }

    /// The raw bytes, for encoding into the QR code and nothing else.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// The key of `start`, the pairing's first epoch. Both sides must use the
    /// same `start`: the QR code carries it.
    pub fn first_epoch_key(&self, start: Epoch) -> EpochKey {
        EpochKey {
            epoch: start,
            key: derive_key(
                self.0.expose_secret(),
                FIRST_EPOCH_KEY_LABEL,
                &start.to_string(),
            ),
        }
    }

    /// The one-way token carried in the Telegram deep link
    /// (`https://t.me/<bot>?start=<token>`): 32 characters of base64url.
    pub fn pairing_token(&self) -> PairingToken {
        let mut raw = [0u8; PAIRING_TOKEN_LEN];
        derive(self.0.expose_secret(), PAIRING_TOKEN_LABEL, "", &mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        raw.zeroize();
        PairingToken(token)
    }

    /// The number both people compare face to face: six groups of five
    /// digits, bound to the secret and the start epoch.
    pub fn safety_number(&self, start: Epoch) -> SafetyNumber {
        let mut raw = [0u8; SAFETY_GROUPS * 8];
        derive(
            self.0.expose_secret(),
            SAFETY_NUMBER_LABEL,
            &start.to_string(),
            &mut raw,
        );
        let mut groups = [0u32; SAFETY_GROUPS];
        for (group, chunk) in groups.iter_mut().zip(raw.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            // 2^64 mod 10^5 makes the bias below 10^-14: irrelevant.
            *group = u32::try_from(u64::from_be_bytes(word) % SAFETY_GROUP_MODULUS).unwrap_or(0);
            word.zeroize();
        }
        raw.zeroize();
        SafetyNumber(groups)
    }
}

impl fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingSecret([REDACTED])")
    }
}

/// The token in the deep link that lets the agent bind a chat to a pairing.
/// One-way: it reveals nothing about the pairing secret. Not zeroized (it is
/// shown to Telegram by design) but single-use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingToken(String);

impl PairingToken {
    /// The token text: `A-Za-z0-9_-`, 32 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text the patient sends once to the practice's WhatsApp number
    /// to bind that chat: `MEDCRYPT BIND ` and the token's 24 bytes in
    /// upper-case hex, in groups of four joined by `-` (WhatsApp renders
    /// `_x_` as italics; hex has no markup character).
    pub fn binding_text(&self) -> String {
        let raw = URL_SAFE_NO_PAD.decode(&self.0).unwrap_or_default();
        let hex = hex::encode_upper(raw);
        let groups: Vec<&str> = hex
            .as_bytes()
            .chunks(4)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        format!("{BINDING_PREFIX}{}", groups.join("-"))
    }

    /// The `https://wa.me/<digits>?text=<binding text>` link that opens a
    /// chat with the practice's `number` with the binding text prefilled.
    pub fn whatsapp_link(&self, number: &str) -> String {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        format!(
            "https://wa.me/{digits}?text={}",
            self.binding_text().replace(' ', "%20")
        )
    }
}

const BINDING_PREFIX: &str = "MEDCRYPT BIND ";

/// The pairing token in a WhatsApp binding text ([`PairingToken::binding_text`]),
/// read leniently: any case, white space and dashes anywhere in the hex
/// (phones' keyboards insert and change them). `None` when the text is not
/// a binding text at all.
pub(crate) fn token_from_binding_text(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    let (first, second) = (words.next()?, words.next()?);
    if !first.eq_ignore_ascii_case("MEDCRYPT") || !second.eq_ignore_ascii_case("BIND") {
        return None;
    }
    let hex: String = words
        .flat_map(|w| w.chars())
        .filter(|c| *c != '-')
        .collect();
    let raw = hex::decode(hex).ok()?;
    (raw.len() == PAIRING_TOKEN_LEN).then(|| URL_SAFE_NO_PAD.encode(raw))
}

impl fmt::Display for PairingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Six groups of five digits that both sides display after pairing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SafetyNumber([u32; SAFETY_GROUPS]);

impl SafetyNumber {
    /// The first group, used by the agent to confirm a deep-link binding.
    pub fn first_group(&self) -> String {
        format!("{:05}", self.0[0])
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{group:05}")?;
        }
        Ok(())
    }
}

/// The four-byte hint in a v2 header that tells a receiver which pairing and
/// epoch a message belongs to. It is derived from the epoch key, so it does
/// not identify the patient and changes every month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHint(pub [u8; KEY_HINT_LEN]);

/// The key of one epoch (calendar month) of one pairing. Zeroized on drop;
/// `Debug` shows the epoch only.
pub struct EpochKey {
    epoch: Epoch,
    key: SecretBox<[u8; 32]>,
}

impl EpochKey {
    /// Rebuilds an epoch key from stored bytes (the store decrypts them).
    pub fn from_bytes(epoch: Epoch, bytes: &[u8; 32]) -> Self {
        Self {
            epoch,
            key: SecretBox::new(Box::new(*bytes)),
        }
    }

    /// The raw key, for the store to encrypt at rest, and nothing else.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }

    /// The month this key belongs to.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The next month's key: `K(m+1) = HKDF(K(m), "medcrypt/v2/epoch-ratchet:" || m+1)`.
    /// One-way: no earlier key can be computed from a later one.
    /// `None` after 9999-12.
    pub fn next(&self) -> Option<Self> {
        let next = self.epoch.next()?;
        Some(Self {
            epoch: next,
            key: derive_key(
                self.key.expose_secret(),
                EPOCH_RATCHET_LABEL,
                &next.to_string(),
            ),
        })
    }

    /// The AES-256-GCM key for messages of `direction` in this epoch.
    pub fn message_key(&self, direction: Direction) -> MessageKey {
        let context = format!("{}:{}", self.epoch, direction.name());
        MessageKey(derive_key(
            self.key.expose_secret(),
            MESSAGE_KEY_LABEL,
            &context,
        ))
    }

    /// The key that wraps attachment file keys sent in `direction` this
    /// epoch (kept apart from the message key by its label).
    pub fn file_wrap_key(&self, direction: Direction) -> MessageKey {
        let context = format!("{}:{}", self.epoch, direction.name());
        MessageKey(derive_key(
            self.key.expose_secret(),
            FILE_WRAP_KEY_LABEL,
            &context,
        ))
    }

    /// The key that proves to the recipient of a pairing that a file sent in
    /// `direction` this epoch was made by someone holding this pairing's key
    /// (not by another recipient of the same file).
    pub fn file_sender_key(&self, direction: Direction) -> MessageKey {
        let context = format!("{}:{}", self.epoch, direction.name());
        MessageKey(derive_key(
            self.key.expose_secret(),
            FILE_SENDER_KEY_LABEL,
            &context,
        ))
    }

    /// The key hint of this epoch (the same for both directions, so that a
    /// reflected message is recognised as such rather than as unknown).
    pub fn key_hint(&self) -> KeyHint {
        let mut hint = [0u8; KEY_HINT_LEN];
        derive(
            self.key.expose_secret(),
            KEY_HINT_LABEL,
            &self.epoch.to_string(),
            &mut hint,
        );
        KeyHint(hint)
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EpochKey({}, [REDACTED])", self.epoch)
    }
}

/// The AES-256-GCM key of one direction of one epoch. Zeroized on drop.
pub struct MessageKey(SecretBox<[u8; 32]>);

impl MessageKey {
    /// The raw key, for conformance vectors and the AEAD, and nothing else.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageKey([REDACTED])")
    }
}

/// What [`EpochChain::advance`] did: which epoch keys it derived and which
/// it destroyed. The store persists both in one transaction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Advance {
    /// Epochs whose keys were derived (ratcheted forward) in this call.
    pub derived: Vec<Epoch>,
    /// Epochs whose keys passed their acceptance window and were destroyed.
    pub destroyed: Vec<Epoch>,
}

/// The live epoch keys of one pairing, oldest first, consecutive months.
///
/// Keys only move forward: [`EpochChain::advance`] derives the current month
/// from the newest key and destroys (zeroizes) keys whose grace period is
/// over. Nothing in the chain can recreate a destroyed key.
#[derive(Debug)]
pub struct EpochChain {
    keys: Vec<EpochKey>,
}

/// Stored epoch keys that do not form a chain of consecutive months.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored epoch keys are not consecutive months (store damaged?)")]
pub struct BrokenChain;

impl EpochChain {
    /// A chain holding only the pairing's first epoch key.
    pub fn new(first: EpochKey) -> Self {
        Self { keys: vec![first] }
    }

    /// Rebuilds a chain from stored keys.
    ///
    /// # Errors
    /// [`BrokenChain`] when `keys` is empty or not consecutive months.
    pub fn from_keys(mut keys: Vec<EpochKey>) -> Result<Self, BrokenChain> {
        keys.sort_by_key(EpochKey::epoch);
        let consecutive = keys
            .windows(2)
            .all(|pair| pair[0].epoch.next() == Some(pair[1].epoch));
        if keys.is_empty() || !consecutive {
            return Err(BrokenChain);
        }
        Ok(Self { keys })
    }

    /// The live keys, oldest first.
    pub fn keys(&self) -> &[EpochKey] {
        &self.keys
    }

    /// The newest stored epoch.
    pub fn newest_epoch(&self) -> Epoch {
        self.keys
            .last()
            .map_or_else(|| Epoch::containing(DateTime::UNIX_EPOCH), EpochKey::epoch)
    }

    /// The oldest stored epoch.
    pub fn oldest_epoch(&self) -> Epoch {
        self.keys
            .first()
            .map_or_else(|| Epoch::containing(DateTime::UNIX_EPOCH), EpochKey::epoch)
    }

    /// Ratchets forward to the epoch of `now` and destroys every key whose
    /// grace period has ended by `now`. The newest key is always kept: it is
    /// the only way forward.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Advance {
        let current = Epoch::containing(now);
        let mut report = Advance::default();
        while let Some(newest) = self.keys.last() {
            if newest.epoch >= current {
                break;
            }
            let Some(next) = newest.next() else { break };
            report.derived.push(next.epoch);
            self.keys.push(next);
        }
        while self.keys.len() > 1 && self.keys[0].epoch.destruction_time() <= now {
            // Dropping the key zeroizes it.
            let gone = self.keys.remove(0);
            report.destroyed.push(gone.epoch);
        }
        report
    }

    /// Derives and keeps the key of the month after `now`'s, when the
    /// newest key is `now`'s month: then the current month's key can be
    /// destroyed on time by someone who cannot ratchet (a scheduled
    /// shredder without the store's passphrase), because a later key is
    /// already there to move forward from. Returns the month derived.
    pub fn look_ahead(&mut self, now: DateTime<Utc>) -> Option<Epoch> {
        let newest = self.keys.last()?;
        if newest.epoch != Epoch::containing(now) {
            return None;
        }
        let next = newest.next()?;
        let epoch = next.epoch;
        self.keys.push(next);
        Some(epoch)
    }

    /// The epoch a sender uses at `now` (wire-spec 2): the month of its
    /// clock, except that a pairing whose first month begins within the
    /// clock-skew allowance after `now` (it was made by a clock a few
    /// minutes ahead) sends in that first month, which every receiver
    /// accepts by the same allowance.
    pub fn sending_epoch(&self, now: DateTime<Utc>) -> Epoch {
        let current = Epoch::containing(now);
        let first = self.oldest_epoch();
        if first > current && now >= first.start() - crate::protocol::epoch::CLOCK_SKEW_ALLOWANCE {
            first
        } else {
            current
        }
    }

    /// The key of `epoch` if it is stored, or derived on the fly when it is
    /// the month after the newest stored one (a sender whose clock is ahead).
    pub fn key_for(&self, epoch: Epoch) -> Option<std::borrow::Cow<'_, EpochKey>> {
        if let Some(key) = self.keys.iter().find(|k| k.epoch == epoch) {
            return Some(std::borrow::Cow::Borrowed(key));
        }
        let newest = self.keys.last()?;
        if newest.epoch.next() == Some(epoch) {
            return newest.next().map(std::borrow::Cow::Owned);
        }
        None
    }
}

impl Clone for EpochKey {
    fn clone(&self) -> Self {
        Self::from_bytes(self.epoch, self.key.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::epoch::utc;

    fn ep(s: &str) -> Epoch {
        s.parse().unwrap()
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let secret = PairingSecret::from_bytes(&[0xAB; 32]);
        let key = secret.first_epoch_key(ep("2026-11"));
        let msg_key = key.message_key(Direction::PatientToPhysician);
        let printed = format!(
            "{secret:?} {key:?} {msg_key:?} {:?}",
            EpochChain::new(key.clone())
        );
        assert_eq!(
            printed,
            "PairingSecret([REDACTED]) EpochKey(2026-11, [REDACTED]) MessageKey([REDACTED]) \
             EpochChain { keys: [EpochKey(2026-11, [REDACTED])] }"
        );
        assert!(!printed.to_lowercase().contains("ab, ab"));
        assert!(!printed.to_lowercase().contains("abab"));
    }

    #[test]
    fn generated_secrets_differ() {
        let a = PairingSecret::generate();
        let b = PairingSecret::generate();
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert_ne!(
            a.safety_number(ep("2026-11")),
            b.safety_number(ep("2026-11"))
        );
    }

    #[test]
    fn the_whatsapp_binding_text_round_trips_and_carries_no_markup() {
        let token = PairingSecret::from_bytes(&[7; 32]).pairing_token();
        let text = token.binding_text();
        assert!(text.starts_with("MEDCRYPT BIND "), "{text}");
        assert!(
            text[14..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase() || b == b'-'),
            "{text}"
        );
        assert_eq!(
            token_from_binding_text(&text).as_deref(),
            Some(token.as_str())
        );
        // A phone's keyboard may change case and spacing.
        let typed = text.to_lowercase().replace('-', " ");
        assert_eq!(
            token_from_binding_text(&typed).as_deref(),
            Some(token.as_str())
        );
        assert_eq!(token_from_binding_text("MEDCRYPT BIND 12"), None);
        assert_eq!(token_from_binding_text("hello"), None);
        assert_eq!(token_from_binding_text(""), None);
        let link = token.whatsapp_link("+34 (600) 123-456");
        assert!(
            link.starts_with("https://wa.me/34600123456?text=MEDCRYPT%20BIND%20"),
            "{link}"
        );
    }

    #[test]
    fn token_is_deep_link_safe() {
        let token = PairingSecret::generate().pairing_token();
        assert!(token.as_str().len() <= 64);
        assert!(
            token
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
    }

    #[test]
    fn safety_number_has_six_groups_of_five() {
        let number = PairingSecret::from_bytes(&[7; 32]).safety_number(ep("2026-11"));
        let text = number.to_string();
        let groups: Vec<&str> = text.split(' ').collect();
        assert_eq!(groups.len(), 6);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
        );
        assert_eq!(number.first_group(), groups[0]);
    }

    #[test]
    fn direction_keys_and_epochs_are_separated() {
        let secret = PairingSecret::from_bytes(&[1; 32]);
        let nov = secret.first_epoch_key(ep("2026-11"));
        let dec = nov.next().unwrap();
        let keys = [
            nov.message_key(Direction::PhysicianToPatient),
            nov.message_key(Direction::PatientToPhysician),
            dec.message_key(Direction::PhysicianToPatient),
            dec.message_key(Direction::PatientToPhysician),
        ];
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i].expose_bytes(), keys[j].expose_bytes());
            }
        }
        assert_ne!(nov.key_hint(), dec.key_hint());
        // The ratchet is deterministic: both sides derive the same next key.
        assert_eq!(nov.next().unwrap().expose_bytes(), dec.expose_bytes());
        // Starting in December directly is not the same as ratcheting to it.
        assert_ne!(
            secret.first_epoch_key(ep("2026-12")).expose_bytes(),
            dec.expose_bytes()
        );
    }

    #[test]
    fn chain_advances_and_destroys_after_grace() {
        let secret = PairingSecret::from_bytes(&[2; 32]);
        let mut chain = EpochChain::new(secret.first_epoch_key(ep("2026-11")));
        assert_eq!(
            chain.advance(utc("2026-11-20T00:00:00Z")),
            Advance::default()
        );

        let report = chain.advance(utc("2026-12-05T00:00:00Z"));
        assert_eq!(report.derived, vec![ep("2026-12")]);
        assert!(report.destroyed.is_empty());
        assert!(chain.key_for(ep("2026-11")).is_some());

        let report = chain.advance(utc("2026-12-08T00:00:00Z"));
        assert_eq!(report.destroyed, vec![ep("2026-11")]);
        assert!(chain.key_for(ep("2026-11")).is_none());
        // Next month is derivable on the fly (clock skew), the one after is not.
        assert!(chain.key_for(ep("2027-01")).is_some());
        assert!(chain.key_for(ep("2027-02")).is_none());
    }

    #[test]
    fn chain_skips_idle_months_and_keeps_newest() {
        let secret = PairingSecret::from_bytes(&[3; 32]);
        let mut chain = EpochChain::new(secret.first_epoch_key(ep("2026-08")));
        let report = chain.advance(utc("2026-11-03T00:00:00Z"));
        assert_eq!(
            report.derived,
            vec![ep("2026-09"), ep("2026-10"), ep("2026-11")]
        );
        assert_eq!(report.destroyed, vec![ep("2026-08"), ep("2026-09")]);
        assert_eq!(chain.oldest_epoch(), ep("2026-10"));
        assert_eq!(chain.newest_epoch(), ep("2026-11"));
    }

    #[test]
    fn from_keys_rejects_gaps() {
        let secret = PairingSecret::from_bytes(&[4; 32]);
        let nov = secret.first_epoch_key(ep("2026-11"));
        let jan = nov.next().unwrap().next().unwrap();
        assert_eq!(
            EpochChain::from_keys(vec![nov, jan]).unwrap_err(),
            BrokenChain
        );
        assert_eq!(EpochChain::from_keys(vec![]).unwrap_err(), BrokenChain);
    }
}

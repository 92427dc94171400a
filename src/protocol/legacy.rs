//! Legacy wire format v1, byte-compatible with the deployed Python client.
//!
//! `[MEDCRYPT:v1:<b64 patient_id>:<b64 nonce>:<b64 ciphertext>:<b64 tag>]`,
//! standard base64 with padding, AES-256-GCM with AAD = the UTF-8 patient id.
//! Month key: salt = HMAC-SHA256(secret, "YYYY-MM")[0..16],
//! key = PBKDF2-HMAC-SHA256(secret, salt, 600,000, 32).
//!
//! v1 is weaker than v2 (see `wire-spec/README.md`, "Legacy v1"): it shows
//! the patient id to the messenger, and its keys can be re-derived from the
//! long-lived secret forever. It is read for compatibility and written only
//! on explicit request.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::protocol::epoch::{Epoch, GRACE_PERIOD};
use crate::protocol::wire::{DecryptError, strip_whitespace};

/// PBKDF2 iteration count of v1 month keys (fixed by the deployed clients).
pub const V1_PBKDF2_ITERATIONS: u32 = 600_000;
/// Prefix of a v1 message.
pub const V1_PREFIX: &str = "[MEDCRYPT:v1:";

const V1_NONCE_LEN: usize = 12;
const V1_TAG_LEN: usize = 16;

/// A v1 pairing: the long-lived shared secret (text) and the patient id,
/// with a cache of derived month keys.
pub struct LegacyPairing {
    secret: SecretString,
    patient_id: String,
    month_keys: HashMap<Epoch, SecretBox<[u8; 32]>>,
    derivations: u64,
}

impl fmt::Debug for LegacyPairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyPairing")
            .field("secret", &"[REDACTED]")
            .field("cached_months", &self.month_keys.len())
            .finish_non_exhaustive()
    }
}

impl LegacyPairing {
    /// A v1 pairing from the shared secret and the patient id.
    pub fn new(secret: SecretString, patient_id: String) -> Self {
        Self {
            secret,
            patient_id,
            month_keys: HashMap::new(),
            derivations: 0,
        }
    }

    /// The patient id (visible on the wire in v1).
    pub fn patient_id(&self) -> &str {
        &self.patient_id
    }

    /// How many PBKDF2 derivations this pairing has run (each is 600,000
    /// iterations); derived keys are cached per month.
    #[cfg(test)]
    pub(crate) fn derivations(&self) -> u64 {
        self.derivations
    }

    /// The month key of `epoch`, from the cache or derived once.
    pub fn month_key(&mut self, epoch: Epoch) -> &[u8; 32] {
        let secret = &self.secret;
        let derivations = &mut self.derivations;
        self.month_keys
            .entry(epoch)
            .or_insert_with(|| {
                *derivations += 1;
                derive_month_key(secret.expose_secret(), epoch)
            })
            .expose_secret()
    }

    /// Encrypts `text` as a v1 message for the month of `now`.
    pub fn encrypt(&mut self, text: &str, now: DateTime<Utc>) -> LegacyMessage {
        let mut nonce = [0u8; V1_NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        self.encrypt_with_nonce(text, Epoch::containing(now), nonce)
    }

    /// [`LegacyPairing::encrypt`] with a chosen month and nonce: vectors only.
    pub(crate) fn encrypt_with_nonce(
        &mut self,
        text: &str,
        epoch: Epoch,
        nonce: [u8; V1_NONCE_LEN],
    ) -> LegacyMessage {
        let patient_id = self.patient_id.clone();
        let cipher = Aes256Gcm::new(self.month_key(epoch).into());
        let mut sealed = cipher
            .encrypt(
                Nonce::<U12>::from_slice(&nonce),
                AeadPayload {
                    msg: text.as_bytes(),
                    aad: patient_id.as_bytes(),
                },
            )
            .unwrap_or_default();
        let tag_start = sealed.len().saturating_sub(V1_TAG_LEN);
        let mut tag = [0u8; V1_TAG_LEN];
        tag.copy_from_slice(&sealed[tag_start..]);
        sealed.truncate(tag_start);
        LegacyMessage {
            patient_id,
            nonce,
            ciphertext: sealed,
            tag,
        }
    }

    /// Decrypts a v1 message: under the month of `now`, and within the first
    /// 7 days of a month also under the previous month.
    ///
    /// # Errors
    /// [`DecryptError::UnknownKeyHint`] when the patient id is another
    /// pairing's; [`DecryptError::AuthenticationFailed`] when no month key in
    /// the window opens it (v1 cannot tell an expired month from tampering).
    pub fn decrypt(
        &mut self,
        message: &LegacyMessage,
        now: DateTime<Utc>,
    ) -> Result<String, DecryptError> {
        if message.patient_id != self.patient_id {
            return Err(DecryptError::UnknownKeyHint);
        }
        let current = Epoch::containing(now);
        let mut months = vec![current];
        if now < current.start() + GRACE_PERIOD {
            months.extend(current.prev());
        }
        let mut sealed = message.ciphertext.clone();
        sealed.extend_from_slice(&message.tag);
        for month in months {
            let cipher = Aes256Gcm::new(self.month_key(month).into());
            if let Ok(mut plaintext) = cipher.decrypt(
                Nonce::<U12>::from_slice(&message.nonce),
                AeadPayload {
                    msg: &sealed,
                    aad: message.patient_id.as_bytes(),
                },
            ) {
                let text = String::from_utf8(plaintext.clone());
                plaintext.zeroize();
                return text.map_err(|_| DecryptError::Malformed("v1 plaintext is not UTF-8"));
            }
        }
        Err(DecryptError::AuthenticationFailed)
    }
}

/// The v1 salt of a month: the first 16 bytes of HMAC-SHA256(key = secret, message = "YYYY-MM").
pub(crate) fn month_salt(secret: &str, epoch: Epoch) -> [u8; 16] {
    let mut salt = [0u8; 16];
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        mac.update(epoch.to_string().as_bytes());
        salt.copy_from_slice(&mac.finalize().into_bytes()[..16]);
    }
    salt
}

/// The v1 month key: PBKDF2-HMAC-SHA256(secret, [`month_salt`], 600,000 iterations, 32 bytes).
pub fn derive_month_key(secret: &str, epoch: Epoch) -> SecretBox<[u8; 32]> {
    let salt = month_salt(secret, epoch);
    let mut key = SecretBox::new(Box::new([0u8; 32]));
    pbkdf2::pbkdf2_hmac::<Sha256>(
        secret.as_bytes(),
        &salt,
        V1_PBKDF2_ITERATIONS,
        key.expose_secret_mut(),
    );
    key
}

/// A parsed v1 wire message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyMessage {
    patient_id: String,
    nonce: [u8; V1_NONCE_LEN],
    ciphertext: Vec<u8>,
    tag: [u8; V1_TAG_LEN],
}

impl LegacyMessage {
    /// The patient id the message names (readable by the messenger).
    pub fn patient_id(&self) -> &str {
        &self.patient_id
    }

    /// Flips one ciphertext bit: for the tampering vectors.
    pub(crate) fn flip_ciphertext_bit(&mut self) {
        if let Some(byte) = self.ciphertext.first_mut() {
            *byte ^= 1;
        }
    }

    /// `[MEDCRYPT:v1:<b64 patient_id>:<b64 nonce>:<b64 ciphertext>:<b64 tag>]`.
    pub fn to_text(&self) -> String {
        format!(
            "{V1_PREFIX}{}:{}:{}:{}]",
            STANDARD.encode(self.patient_id.as_bytes()),
            STANDARD.encode(self.nonce),
            STANDARD.encode(&self.ciphertext),
            STANDARD.encode(self.tag)
        )
    }

    /// Parses v1 wire text (whitespace stripped first).
    ///
    /// # Errors
    /// [`DecryptError::Malformed`] for the wrong shape, [`DecryptError::Damaged`]
    /// for invalid base64.
    pub fn parse(text: &str) -> Result<Self, DecryptError> {
        let text = strip_whitespace(text);
        let inner = text
            .strip_prefix(V1_PREFIX)
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or(DecryptError::Malformed("not a v1 message [MEDCRYPT:v1:…]"))?;
        let fields: Vec<&str> = inner.split(':').collect();
        let [pid, nonce, ciphertext, tag] = fields.as_slice() else {
            return Err(DecryptError::Malformed("a v1 message has four fields"));
        };
        // Every field is decoded first, in order (invalid base64 is damage
        // in transit), then the shapes are checked (wire-spec 6).
        let decode = |field: &str| {
            STANDARD
                .decode(field)
                .map_err(|_| DecryptError::Damaged("invalid base64 in a v1 field"))
        };
        let (pid, nonce, ciphertext, tag) = (
            decode(pid)?,
            decode(nonce)?,
            decode(ciphertext)?,
            decode(tag)?,
        );
        let patient_id = String::from_utf8(pid)
            .map_err(|_| DecryptError::Malformed("v1 patient id is not UTF-8"))?;
        let nonce: [u8; V1_NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| DecryptError::Malformed("v1 nonce must be 12 bytes"))?;
        let tag: [u8; V1_TAG_LEN] = tag
            .try_into()
            .map_err(|_| DecryptError::Malformed("v1 tag must be 16 bytes"))?;
        Ok(Self {
            patient_id,
            nonce,
            ciphertext,
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::epoch::utc;

    fn pairing() -> LegacyPairing {
        LegacyPairing::new(
            SecretString::from("correct horse battery staple"),
            "P-1042".into(),
        )
    }

    #[test]
    fn thousand_messages_of_one_month_cost_one_derivation() {
        let mut sender = pairing();
        let mut receiver = pairing();
        let now = utc("2026-11-20T09:00:00Z");
        let messages: Vec<String> = (0..1000)
            .map(|i| sender.encrypt(&format!("note {i}"), now).to_text())
            .collect();
        for (i, wire) in messages.iter().enumerate() {
            let msg = LegacyMessage::parse(wire).unwrap();
            assert_eq!(receiver.decrypt(&msg, now).unwrap(), format!("note {i}"));
        }
        assert_eq!(sender.derivations(), 1);
        assert_eq!(receiver.derivations(), 1);
    }

    #[test]
    fn previous_month_accepted_for_seven_days_only() {
        let mut sender = pairing();
        let mut receiver = pairing();
        let msg = sender.encrypt("late result", utc("2026-11-30T23:00:00Z"));
        assert_eq!(
            receiver.decrypt(&msg, utc("2026-12-07T23:59:00Z")).unwrap(),
            "late result"
        );
        assert_eq!(
            receiver.decrypt(&msg, utc("2026-12-08T00:00:00Z")),
            Err(DecryptError::AuthenticationFailed)
        );
    }

    #[test]
    fn other_patient_id_is_not_this_pairing() {
        let mut other = LegacyPairing::new(SecretString::from("x"), "P-9".into());
        let msg = pairing().encrypt("hi", utc("2026-11-20T09:00:00Z"));
        assert_eq!(
            other.decrypt(&msg, utc("2026-11-20T09:00:00Z")),
            Err(DecryptError::UnknownKeyHint)
        );
    }

    #[test]
    fn debug_hides_secret() {
        let printed = format!("{:?}", pairing());
        assert!(!printed.contains("horse"), "{printed}");
    }
}

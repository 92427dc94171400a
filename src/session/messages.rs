//! Text messages: encrypting a text for a pairing, and decrypting wire text
//! pasted from a chat (v2, or v1 for imported legacy pairings) — finding its
//! pairing, checking the window and the replay state, and auditing the
//! outcome.

use zeroize::Zeroizing;

use crate::protocol::epoch::{Epoch, check_window};
use crate::protocol::legacy::{LegacyMessage, V1_PREFIX};
use crate::protocol::wire::{
    DecryptError, MAX_TEXT_BYTES, Payload, ReplayId, SealError, WireMessage, strip_whitespace,
};
use crate::store::{PairingInfo, Protocol};

use super::{Error, Result, Session};

/// A text encrypted for one chat message.
#[derive(Debug)]
pub struct EncryptedText {
    /// The one line to paste into the chat.
    pub wire: String,
    /// It is legacy v1: the messenger can read the patient id, and its keys
    /// are never destroyed.
    pub legacy_v1: bool,
}

/// A message that authenticated and was not a replay.
pub struct DecryptedText {
    /// The pairing that authenticated it.
    pub alias: String,
    /// The text.
    pub text: Zeroizing<String>,
}

impl std::fmt::Debug for DecryptedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedText")
            .field("alias", &self.alias)
            .field("text", &format_args!("{} bytes", self.text.len()))
            .finish()
    }
}

/// A message opened but not yet recorded: the caller records its replay id
/// (with anything else it stores) in one transaction.
pub struct Opened {
    /// The pairing that authenticated it.
    pub pairing: PairingInfo,
    /// The text.
    pub text: Zeroizing<String>,
    /// What to record against replays (`None` for v1, which has none).
    pub replay: Option<ReplayId>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("alias", &self.pairing.alias)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Encrypts `text` for the pairing `alias` as one line of wire text. The
    /// sequence number is committed (with its audit entry) before the line
    /// is returned.
    ///
    /// # Errors
    /// Unknown pairing, a text too long for one message, the wrong protocol
    /// for the pairing, no key for this month, database errors.
    pub fn encrypt_text(&self, alias: &str, text: &str, legacy_v1: bool) -> Result<EncryptedText> {
        let now = self.now();
        let pairing = self.store.pairing(alias)?;
        match (pairing.protocol, legacy_v1) {
            (Protocol::V1, true) => {
                let mut legacy = self.store.legacy(&pairing)?;
                self.store.audit(
                    now,
                    "encrypt",
                    alias,
                    "ok",
                    &[("protocol", "v1".to_owned())],
                )?;
                Ok(EncryptedText {
                    wire: legacy.encrypt(text, now).to_text(),
                    legacy_v1: true,
                })
            }
            (Protocol::V1, false) => Err(Error::refused(
                format!("{alias:?} is a legacy v1 pairing"),
                "add --legacy-v1 to write v1 for an old client, or pair anew with `medcrypt pair new`",
            )),
            (Protocol::V2, true) => Err(Error::refused(
                format!("{alias:?} is a v2 pairing; v1 is only for imported legacy pairings"),
                "drop --legacy-v1",
            )),
            (Protocol::V2, false) => Ok(EncryptedText {
                wire: self.seal_text(&pairing, text)?,
                legacy_v1: false,
            }),
        }
    }

    /// Seals `text` as v2 wire text for `pairing`, reserving its sequence
    /// number first.
    pub(super) fn seal_text(&self, pairing: &PairingInfo, text: &str) -> Result<String> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(SealError::TooLong {
                len: text.len(),
                max: MAX_TEXT_BYTES,
            }
            .into());
        }
        let now = self.now();
        let epoch = Epoch::containing(now);
        let chain = self.store.chain(pairing)?;
        let key = chain
            .key_for(epoch)
            .ok_or(SealError::NoKeyForEpoch(epoch))?;
        let direction = pairing.role.outbound();
        let sequence = self.store.next_sequence(pairing, epoch, direction, now)?;
        let payload = Payload::Text(text.to_owned());
        Ok(WireMessage::seal(&key, direction, sequence, &payload)?.to_text())
    }

    /// Decrypts wire text pasted from a chat, from the pairing `from` or any
    /// pairing of this store, records it against replays and audits the
    /// outcome (a failure with its kind).
    ///
    /// # Errors
    /// Every [`DecryptError`], a replay, an unknown `from`, database errors.
    pub fn decrypt_text(&self, input: &str, from: Option<&str>) -> Result<DecryptedText> {
        let result = self.decrypt_and_record(input, from);
        if let Err(Error::Decrypt(err)) = &result {
            self.store.audit(
                self.now(),
                "decrypt_failed",
                from.unwrap_or_default(),
                "rejected",
                &[("kind", err.kind().to_owned())],
            )?;
        }
        result
    }

    fn decrypt_and_record(&self, input: &str, from: Option<&str>) -> Result<DecryptedText> {
        let candidates = match from {
            Some(alias) => vec![self.store.pairing(alias)?],
            None => self.store.pairings()?,
        };
        let opened = self.open_text(input, &candidates, from.is_some())?;
        let now = self.now();
        match &opened.replay {
            Some(replay) => self.store.record_received(&opened.pairing, replay, now)?,
            None => self.store.audit(
                now,
                "decrypt",
                &opened.pairing.alias,
                "ok",
                &[("protocol", "v1".to_owned())],
            )?,
        }
        Ok(DecryptedText {
            alias: opened.pairing.alias,
            text: opened.text,
        })
    }

    /// Authenticates and decrypts wire text under one of `candidates`
    /// (found by key hint, or by patient id for v1), without recording it.
    /// With `explicit`, the candidates were named by the user: a wrong
    /// protocol is then said plainly, and a failed authentication is final.
    ///
    /// # Errors
    /// Every [`DecryptError`]; database errors.
    pub fn open_text(
        &self,
        input: &str,
        candidates: &[PairingInfo],
        explicit: bool,
    ) -> Result<Opened> {
        let compact = Zeroizing::new(strip_whitespace(input));
        if compact.is_empty() {
            return Err(DecryptError::Malformed("the input is empty").into());
        }
        if compact.starts_with(V1_PREFIX) {
            return self.open_legacy(&compact, candidates);
        }
        let message = WireMessage::parse(&compact)?;
        let epoch = message.header().epoch;
        if explicit && let Some(v1) = candidates.iter().find(|p| p.protocol == Protocol::V1) {
            return Err(Error::refused(
                format!(
                    "{:?} is a legacy v1 pairing, but this is a v2 message",
                    v1.alias
                ),
                "choose the v2 pairing with --from, or leave --from out",
            ));
        }
        let now = self.now();
        check_window(epoch, now).map_err(DecryptError::from)?;
        let mut last_error = DecryptError::UnknownKeyHint;
        for pairing in candidates.iter().filter(|p| p.protocol == Protocol::V2) {
            let chain = self.store.chain(pairing)?;
            if chain.key_for(epoch).is_none() {
                if let Some(at) = self.store.shredded_at(pairing, epoch)? {
                    last_error = DecryptError::Expired {
                        epoch,
                        destroyed_at: at,
                    };
                }
                continue;
            }
            match message.open(&chain, pairing.role, now) {
                Ok(opened) => {
                    let Payload::Text(text) = opened.payload;
                    return Ok(Opened {
                        pairing: pairing.clone(),
                        text: Zeroizing::new(text),
                        replay: Some(opened.replay_id),
                    });
                }
                // Another pairing's hint (or a hint collision): keep looking.
                Err(DecryptError::UnknownKeyHint) => {}
                Err(DecryptError::AuthenticationFailed) if !explicit => {
                    last_error = DecryptError::AuthenticationFailed;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(last_error.into())
    }

    fn open_legacy(&self, compact: &str, candidates: &[PairingInfo]) -> Result<Opened> {
        let message = LegacyMessage::parse(compact)?;
        for pairing in candidates.iter().filter(|p| p.protocol == Protocol::V1) {
            let mut legacy = self.store.legacy(pairing)?;
            if legacy.patient_id() != message.patient_id() {
                continue;
            }
            let text = Zeroizing::new(legacy.decrypt(&message, self.now())?);
            return Ok(Opened {
                pairing: pairing.clone(),
                text,
                replay: None,
            });
        }
        Err(DecryptError::UnknownKeyHint.into())
    }
}

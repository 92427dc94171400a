//! Text messages: encrypting a text for a pairing, and decrypting wire text
//! pasted from a chat (v2, or v1 for imported legacy pairings) — finding its
//! pairing, checking the window and the replay state, and auditing the
//! outcome.

use zeroize::Zeroizing;

use crate::protocol::epoch::check_window;
use crate::protocol::keys::Role;
use crate::protocol::legacy::{LegacyMessage, V1_PREFIX};
use crate::protocol::wire::{
    DecryptError, MAX_TEXT_BYTES, Payload, ReplayId, SealError, WireMessage, strip_whitespace,
};
use crate::store::{Incoming, IncomingContent, PairingInfo, Protocol, Receipt, StoreError, Via};

use super::{Error, ErrorKind, Result, Session};

/// A text encrypted for one chat message.
#[derive(Debug)]
pub struct EncryptedText {
    /// The one line to paste into the chat.
    pub wire: String,
    /// It is legacy v1: the messenger can read the patient id, and its keys
    /// are never destroyed.
    pub legacy_v1: bool,
}

/// A message that authenticated and was not a replay (or was read before,
/// and is shown again from the history).
pub struct DecryptedText {
    /// The pairing whose key proved who sent it.
    pub alias: String,
    /// That pairing's name for the other side (the physician's display
    /// name, on a patient's store), if known.
    pub peer_name: String,
    /// The role of the other side: who sent it.
    pub sender_role: Role,
    /// The text.
    pub text: Zeroizing<String>,
    /// This very message was read before, at this time (RFC 3339).
    pub read_before: Option<String>,
}

impl std::fmt::Debug for DecryptedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedText")
            .field("alias", &self.alias)
            .field("text", &format_args!("{} bytes", self.text.len()))
            .field("read_before", &self.read_before)
            .finish_non_exhaustive()
    }
}

/// A message opened but not yet recorded: the caller records it (with
/// anything else it stores) in one transaction.
pub struct Opened {
    /// The pairing that authenticated it.
    pub pairing: PairingInfo,
    /// The text.
    pub text: Zeroizing<String>,
    /// What to record against replays (`None` for v1, which has none).
    pub replay: Option<ReplayId>,
    /// The message as received, without whitespace: the same text again is
    /// the same message.
    pub identity: String,
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
        let chain = self.store.chain(pairing)?;
        let epoch = chain.sending_epoch(now);
        let key = chain
            .key_for(epoch)
            .ok_or(SealError::NoKeyForEpoch(epoch))?;
        let direction = pairing.role.outbound();
        let sequence = self.store.next_sequence(pairing, epoch, direction, now)?;
        let payload = Payload::Text(text.to_owned());
        Ok(WireMessage::seal(&key, direction, sequence, &payload)?.to_text())
    }

    /// Decrypts wire text pasted from a chat, records it in the history
    /// (or finds it there: a message read before is shown again) and audits
    /// the outcome (a failure with its kind). With `from`, the message must
    /// prove to be from that pairing.
    ///
    /// # Errors
    /// Every [`DecryptError`], a replay, a `from` that is unknown or not the
    /// sender, database errors.
    pub fn decrypt_text(&self, input: &str, from: Option<&str>) -> Result<DecryptedText> {
        let result = self.decrypt_and_record(input, from);
        let kind = match &result {
            Err(Error::Decrypt(err)) => Some(err.kind()),
            Err(Error::Store(StoreError::Replayed { .. })) => Some("replayed"),
            _ => None,
        };
        if let Some(kind) = kind {
            self.store.audit(
                self.now(),
                "decrypt_failed",
                from.unwrap_or_default(),
                "rejected",
                &[("kind", kind.to_owned())],
            )?;
        }
        result
    }

    fn decrypt_and_record(&self, input: &str, from: Option<&str>) -> Result<DecryptedText> {
        let expected = from.map(|alias| self.store.pairing(alias)).transpose()?;
        if let Some(v1) = expected.as_ref().filter(|p| p.protocol == Protocol::V1)
            && !strip_whitespace(input).starts_with(V1_PREFIX)
        {
            return Err(Error::refused(
                format!(
                    "{:?} is a legacy v1 pairing, but this is a v2 message",
                    v1.alias
                ),
                "choose the v2 pairing with --from, or leave --from out",
            ));
        }
        let opened = self.open_text(input, &self.store.pairings()?, false)?;
        if let Some(expected) = &expected
            && expected.id != opened.pairing.id
        {
            return Err(Error::of_kind(
                ErrorKind::UnknownPairing,
                format!(
                    "this message is from {:?}, not from {:?}",
                    opened.pairing.alias, expected.alias
                ),
                "nothing was recorded; check who sent it (`medcrypt pair list`)",
            ));
        }
        let receipt = self.store.receive(
            &opened.pairing,
            Incoming {
                via: Via::Paste,
                replay: opened.replay,
                epoch: opened.replay.map(|r| r.epoch),
                identity: opened.identity.as_bytes().to_vec(),
                content: IncomingContent::Text(&opened.text),
            },
            self.now(),
        )?;
        let read_before = match receipt {
            Receipt::New { .. } => None,
            Receipt::Again(item) => Some(item.received_at),
        };
        Ok(DecryptedText {
            sender_role: match opened.pairing.role {
                Role::Physician => Role::Patient,
                Role::Patient => Role::Physician,
            },
            alias: opened.pairing.alias,
            peer_name: opened.pairing.peer_name,
            text: opened.text,
            read_before,
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
        let compact = strip_whitespace(input);
        if compact.is_empty() {
            return Err(DecryptError::Malformed("the input is empty").into());
        }
        if compact.starts_with(V1_PREFIX) {
            return self.open_legacy(compact, candidates);
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
        if let Err(violation) = check_window(epoch, now) {
            return Err(self
                .when_destroyed(DecryptError::from(violation), candidates)?
                .into());
        }
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
                        identity: compact,
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

    /// An expired message names when its key was really destroyed (the
    /// store records it), when every candidate pairing agrees on it.
    fn when_destroyed(
        &self,
        err: DecryptError,
        candidates: &[PairingInfo],
    ) -> Result<DecryptError> {
        let DecryptError::Expired { epoch, .. } = err else {
            return Ok(err);
        };
        let mut times = Vec::new();
        for pairing in candidates.iter().filter(|p| p.protocol == Protocol::V2) {
            times.extend(self.store.shredded_at(pairing, epoch)?);
        }
        times.sort();
        times.dedup();
        Ok(match times.as_slice() {
            [at] => DecryptError::Expired {
                epoch,
                destroyed_at: *at,
            },
            _ => err,
        })
    }

    fn open_legacy(&self, compact: String, candidates: &[PairingInfo]) -> Result<Opened> {
        let message = LegacyMessage::parse(&compact)?;
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
                identity: compact,
            });
        }
        Err(DecryptError::UnknownKeyHint.into())
    }
}

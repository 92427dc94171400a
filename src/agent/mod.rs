//! The physician's agent, independent of any messenger: what an inbound
//! text or document means for the store, and what the chat is told.
//!
//! A transport (one folder per messenger: [`telegram`], [`whatsapp`]) turns updates into
//! calls here and carries out the returned [`Action`]; the fake servers the
//! tests use live beside the transport they imitate. Everything an update
//! changes in the store — the inbox row, the replay record, the audit entry
//! and the update offset — is written in one transaction, so a crash between
//! receiving and storing loses nothing and duplicates nothing.
//!
//! Depends on the use cases ([`crate::session`]) and the store; transports
//! only move bytes and never see a key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::protocol::attachment::{AttachmentError, Header, PartHeader, decrypt};
use crate::protocol::wire::{DecryptError, strip_whitespace};
use crate::session::{Error as SessionError, Opened, Session, TempFile};
use crate::store::{
    Incoming, IncomingContent, PairingInfo, PartSet, Receipt, Store, StoreError, Via,
};

/// The messenger an agent serves: chat links are made under its name, and
/// what "handled" means differs (Telegram: the update offset; WhatsApp:
/// the durable webhook queue's row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Telegram, by long polling.
    Telegram,
    /// The WhatsApp Cloud API, by webhook.
    WhatsApp,
}

impl Transport {
    /// `telegram` or `whatsapp`: the name chat links are made under.
    pub fn name(self) -> &'static str {
        match self {
            Self::Telegram => "telegram",
            Self::WhatsApp => "whatsapp",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Telegram => "Telegram",
            Self::WhatsApp => "WhatsApp",
        }
    }
}

/// A binding message older than this is refused: a backlog delivered days
/// late (WhatsApp retries webhooks for 7 days) must not bind a chat.
pub const BIND_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[cfg(any(feature = "fake-telegram", feature = "fake-whatsapp"))]
mod fake_server;
pub mod telegram;
pub mod whatsapp;

/// A bot can download at most this many bytes from the Telegram cloud API.
pub const DOWNLOAD_LIMIT: u64 = 20 * 1000 * 1000;
const OFFSET_KEY: &str = "telegram.offset";
const OWNER_TOKEN_KEY: &str = "owner_token_hash";
const OWNER_CHAT_KEY: &str = "owner_chat";
/// Today's count of messages from strangers: `YYYY-MM-DD:count`.
const STRANGERS_KEY: &str = "strangers_today";
/// Strangers are answered at most this many times a day, in all.
pub const STRANGER_REPLIES_PER_DAY: u64 = 50;
/// The update whose download keeps failing, and how many times it failed.
const DOWNLOAD_FAILURES_KEY: &str = "download_failures";
/// After this many failed downloads of one document, the patient is asked
/// to send it again and the agent goes on (a file Telegram will never serve
/// must not stop every later update).
pub const MAX_DOWNLOAD_ATTEMPTS: u32 = 5;

/// What the transport should do in the chat after an update.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Action {
    /// A reply to send to the chat (never any medical content).
    pub reply: Option<String>,
    /// Delete the inbound message (plaintext in an encrypted chat).
    pub delete: bool,
    /// The message was received and stored (the reply is a plain receipt,
    /// which WhatsApp shows as read ticks instead of a message).
    pub received: bool,
}

impl Action {
    fn reply(text: impl Into<String>) -> Self {
        Self {
            reply: Some(text.into()),
            ..Self::default()
        }
    }

    fn receipt(text: impl Into<String>) -> Self {
        Self {
            reply: Some(text.into()),
            received: true,
            ..Self::default()
        }
    }
}

/// Errors of the agent: only store failures; everything about a message is
/// answered in the chat instead.
pub type Result<T> = std::result::Result<T, SessionError>;

type StoreResult<T> = std::result::Result<T, StoreError>;

/// The agent's logic over one unlocked store.
#[derive(Debug)]
pub struct Agent<'a> {
    session: &'a Session,
    store: &'a Store,
    transport: Transport,
    keep_plaintext: bool,
}

/// The next update id to ask for (Telegram's `offset`).
///
/// # Errors
/// Database errors.
pub fn next_update_id(store: &Store) -> StoreResult<i64> {
    Ok(store
        .agent_value(OFFSET_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Creates the single-use owner token at first start (or returns `None` when
/// the owner's chat is already bound or a token is waiting).
///
/// # Errors
/// Database errors.
pub fn owner_token(store: &Store) -> StoreResult<Option<String>> {
    if store.agent_value(OWNER_CHAT_KEY)?.is_some() || store.agent_value(OWNER_TOKEN_KEY)?.is_some()
    {
        return Ok(None);
    }
    let mut raw = [0u8; 24];
    aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut raw);
    let token = format!("owner_{}", URL_SAFE_NO_PAD.encode(raw));
    store.set_agent_value(
        OWNER_TOKEN_KEY,
        &hex::encode(Sha256::digest(token.as_bytes())),
    )?;
    Ok(Some(token))
}

/// The physician's own chat, for notices and checkpoints.
///
/// # Errors
/// Database errors.
pub fn owner_chat(store: &Store) -> StoreResult<Option<i64>> {
    Ok(store
        .agent_value(OWNER_CHAT_KEY)?
        .and_then(|v| v.parse().ok()))
}

/// What a patient is told about a message that could not be read.
fn explain(err: &DecryptError) -> String {
    match err {
        DecryptError::Malformed(_) | DecryptError::Damaged(_) => {
            "⚠ This message was damaged on the way (often by copy and paste). Please copy the whole MEDCRYPT line again and send it once more.".into()
        }
        DecryptError::UnsupportedVersion(_) | DecryptError::UnsupportedPayload(_) => {
            "⚠ This message comes from a different MedCrypt version. Please update MedCrypt and send it again.".into()
        }
        DecryptError::UnknownKeyHint => {
            "⚠ This message was encrypted for someone else (another practice or another pairing). Please check whom you chose in MedCrypt.".into()
        }
        DecryptError::Expired { epoch, .. } => format!(
            "⚠ This message uses the key of {epoch}, which has expired and was destroyed. Please encrypt it again and send the new one."
        ),
        DecryptError::NotYetValid { .. } => {
            "⚠ This message is dated in the future: please check your computer's clock, then encrypt it again.".into()
        }
        DecryptError::AuthenticationFailed => {
            "⚠ This message could not be verified: it was changed or encrypted with another key. Please encrypt it again and send the new one.".into()
        }
        DecryptError::Reflected => "⚠ This message was sent by the practice; it is meant for you to read, not to send back.".into(),
    }
}

fn looks_encrypted(text: &str) -> bool {
    let compact = strip_whitespace(text);
    compact.starts_with("MEDCRYPT:") || compact.starts_with("[MEDCRYPT:")
}

impl<'a> Agent<'a> {
    /// The Telegram agent over `store`; with `keep_plaintext`, plaintext
    /// messages are warned about but not deleted.
    ///
    /// # Errors
    /// Database errors.
    pub fn new(session: &'a Session, keep_plaintext: bool) -> Result<Self> {
        Self::for_transport(session, Transport::Telegram, keep_plaintext)
    }

    /// The agent of `transport` over `store`. WhatsApp cannot delete a
    /// user's message: there plaintext is always warned about instead.
    ///
    /// # Errors
    /// Database errors.
    pub fn for_transport(
        session: &'a Session,
        transport: Transport,
        keep_plaintext: bool,
    ) -> Result<Self> {
        // Nothing the agent writes into a chat names anyone, so it does
        // not even load the physician's name.
        Ok(Self {
            session,
            store: session.store(),
            transport,
            keep_plaintext: keep_plaintext || transport == Transport::WhatsApp,
        })
    }

    /// Marks update (Telegram) or queued event (WhatsApp) `id` handled,
    /// inside the caller's transaction.
    fn done(&self, id: i64) -> StoreResult<()> {
        match self.transport {
            Transport::Telegram => {
                let next = next_update_id(self.store)?.max(id + 1);
                self.store.set_agent_value(OFFSET_KEY, &next.to_string())
            }
            Transport::WhatsApp => self.store.whatsapp_event_done(id),
        }
    }

    fn pairing_for_chat(&self, chat: &str) -> StoreResult<Option<PairingInfo>> {
        self.store.pairing_for_chat(self.transport.name(), chat)
    }

    /// Marks an update that needs no action as handled.
    ///
    /// # Errors
    /// Database errors.
    pub fn skip(&self, update_id: i64) -> Result<()> {
        Ok(self.store.transaction(|| self.done(update_id))?)
    }

    /// What a chat nobody bound is told — names no one — at most
    /// [`STRANGER_REPLIES_PER_DAY`] times a day in all, so that junk costs
    /// neither messages nor audit records without bound.
    fn instructions(&self, now: DateTime<Utc>) -> Result<Action> {
        if self.stranger(now)? > STRANGER_REPLIES_PER_DAY {
            return Ok(Action::default());
        }
        Ok(Action::reply(
            "Hello! This chat carries encrypted messages between a practice and its patients. \
             To connect, open the link MedCrypt showed you after scanning the QR code at your visit. \
             Nothing you write here is kept.",
        ))
    }

    /// Counts one more message from a stranger (an unbound chat, or a
    /// binding link that is not valid) today; returns today's count.
    fn stranger(&self, now: DateTime<Utc>) -> Result<u64> {
        let day = now.format("%Y-%m-%d").to_string();
        let count = self
            .store
            .agent_value(STRANGERS_KEY)?
            .and_then(|v| {
                let (d, c) = v.split_once(':')?;
                (d == day).then(|| c.parse::<u64>().ok())?
            })
            .unwrap_or(0)
            + 1;
        self.store
            .set_agent_value(STRANGERS_KEY, &format!("{day}:{count}"))?;
        Ok(count)
    }

    /// Records a rejected binding: counted every time, but an audit entry
    /// only for the 1st, 10th, 100th… of a day (with the count), so a flood
    /// of junk links cannot fill the log.
    fn reject_binding(
        &self,
        update_id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let count = self.stranger(now)?;
        let mut power = 1u64;
        while power < count {
            power = power.saturating_mul(10);
        }
        if power == count {
            self.handled(
                update_id,
                now,
                "chat_bind",
                "",
                "rejected",
                &[
                    ("reason", reason.to_owned()),
                    ("rejections_today", count.to_string()),
                ],
            )?;
        } else {
            self.skip(update_id)?;
        }
        Ok((count <= STRANGER_REPLIES_PER_DAY).then_some(count))
    }

    /// Records an update in the audit log and marks it handled, in one
    /// transaction.
    fn handled(
        &self,
        update_id: i64,
        now: DateTime<Utc>,
        action: &str,
        subject: &str,
        outcome: &str,
        details: &[(&str, String)],
    ) -> Result<()> {
        Ok(self.store.transaction(|| {
            self.store.audit(now, action, subject, outcome, details)?;
            self.done(update_id)
        })?)
    }

    /// Plaintext (a `what`: message or file) in an encrypted chat: warn,
    /// delete unless told to keep it, and store nothing of it.
    fn reject_plaintext(
        &self,
        update_id: i64,
        pairing: &PairingInfo,
        what: &str,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        let deleted = !self.keep_plaintext;
        let cannot_delete = self.transport == Transport::WhatsApp;
        self.handled(
            update_id,
            now,
            "plaintext_rejected",
            &pairing.alias,
            "rejected",
            &[("what", what.to_owned()), ("deleted", deleted.to_string())],
        )?;
        let how = if what == "file" {
            "Encrypt the file with `medcrypt attach encrypt` and send the .medcrypt file."
        } else {
            "Encrypt your message with MedCrypt and paste the MEDCRYPT line."
        };
        Ok(Action {
            received: false,
            reply: Some(format!(
                "⚠ Please do not send {} {what} in plain text here: this chat is for encrypted messages only. {how}{}",
                if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                },
                if deleted {
                    format!(" Your {what} was deleted.")
                } else if cannot_delete {
                    format!(
                        " MedCrypt cannot delete it here: please delete your {what} from this chat yourself (Delete for everyone)."
                    )
                } else {
                    String::new()
                }
            )),
            delete: deleted,
        })
    }

    /// Handles a text message.
    ///
    /// # Errors
    /// Database errors only.
    pub fn on_text(
        &self,
        update_id: i64,
        chat: &str,
        text: &str,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        match self.transport {
            Transport::Telegram => {
                if let Some(rest) = text.strip_prefix("/start") {
                    return self.on_start(update_id, chat, rest.trim(), sent_at, now);
                }
            }
            Transport::WhatsApp => {
                if let Some(token) = crate::protocol::keys::token_from_binding_text(text) {
                    return self.on_start(update_id, chat, &token, sent_at, now);
                }
            }
        }
        let Some(pairing) = self.pairing_for_chat(chat)? else {
            self.skip(update_id)?;
            return self.instructions(now);
        };
        if !looks_encrypted(text) {
            return self.reject_plaintext(update_id, &pairing, "message", now);
        }
        match self.open_text(&pairing, text)? {
            Ok(opened) => {
                let receipt = self.store.transaction(|| {
                    let receipt = self.store.receive(
                        &pairing,
                        Incoming {
                            via: Via::Agent,
                            replay: opened.replay,
                            epoch: opened.replay.map(|r| r.epoch),
                            identity: opened.identity.as_bytes().to_vec(),
                            content: IncomingContent::Text(&opened.text),
                        },
                        now,
                    )?;
                    self.done(update_id)?;
                    Ok(receipt)
                });
                match receipt {
                    // Neutral and per chat: no counter shared across chats.
                    Ok(Receipt::New { .. }) => Ok(Action::receipt("Received ✓")),
                    Ok(Receipt::Again(_)) => Ok(Action::receipt(
                        "This message was already received ✓ (sent twice?)",
                    )),
                    Err(StoreError::Replayed {
                        epoch,
                        direction,
                        sequence,
                    }) => {
                        // Rolled back with the transaction above: the
                        // rejection is recorded with marking the update
                        // handled.
                        self.handled(
                            update_id,
                            now,
                            "decrypt_failed",
                            &pairing.alias,
                            "rejected",
                            &[
                                ("kind", "replayed".to_owned()),
                                ("epoch", epoch.to_string()),
                                ("direction", direction.to_owned()),
                                ("sequence", sequence.to_string()),
                            ],
                        )?;
                        Ok(Action::reply(
                            "⚠ This message repeats the number of an earlier one and was not accepted. Please encrypt it again and send the new one.",
                        ))
                    }
                    Err(err) => Err(err.into()),
                }
            }
            Err(err) => {
                // Not well-formed ciphertext (text that merely starts with
                // MEDCRYPT:) may be plaintext: it goes like any plaintext.
                let delete = matches!(err, DecryptError::Malformed(_) | DecryptError::Damaged(_))
                    && !self.keep_plaintext;
                self.handled(
                    update_id,
                    now,
                    "decrypt_failed",
                    &pairing.alias,
                    "rejected",
                    &[
                        ("kind", err.kind().to_owned()),
                        ("deleted", delete.to_string()),
                    ],
                )?;
                Ok(Action {
                    reply: Some(explain(&err)),
                    delete,
                    received: false,
                })
            }
        }
    }

    /// Anything else in a chat — a photo, voice, video, sticker, an edited
    /// message: in a bound chat it is not ciphertext, so it is deleted
    /// (unless plaintext is kept) and the patient told; elsewhere ignored.
    ///
    /// # Errors
    /// Database errors.
    pub fn on_other(
        &self,
        update_id: i64,
        chat: &str,
        what: &str,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        let Some(pairing) = self.pairing_for_chat(chat)? else {
            self.skip(update_id)?;
            return Ok(Action::default());
        };
        self.reject_plaintext(update_id, &pairing, what, now)
    }

    /// Decrypts wire text from a bound chat (v2, or v1 for a legacy
    /// pairing); a message that does not open is told to the patient.
    fn open_text(
        &self,
        pairing: &PairingInfo,
        text: &str,
    ) -> Result<std::result::Result<Opened, DecryptError>> {
        match self
            .session
            .open_text(text, std::slice::from_ref(pairing), false)
        {
            Ok(opened) => Ok(Ok(opened)),
            Err(SessionError::Decrypt(err)) => Ok(Err(err)),
            Err(err) => Err(err),
        }
    }

    /// A binding: Telegram's `/start TOKEN`, or WhatsApp's prefilled
    /// `MEDCRYPT BIND …` text sent at `sent_at`.
    fn on_start(
        &self,
        update_id: i64,
        chat: &str,
        token: &str,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        if token.is_empty() {
            self.skip(update_id)?;
            return Ok(match self.pairing_for_chat(chat)? {
                Some(_) => Action::reply("This chat is connected ✓"),
                None => self.instructions(now)?,
            });
        }
        if now - sent_at > BIND_MAX_AGE {
            // A backlog delivered days late: whoever sent it then may not
            // hold the chat now, and the patient has long been told.
            let answer = self.reject_binding(update_id, "stale binding message", now)?;
            return Ok(answer.map_or_else(Action::default, |_| {
                Action::reply(
                    "Sorry, this connection message arrived too late to be accepted. Please open the link from MedCrypt again and send it once more.",
                )
            }));
        }
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        if self.transport == Transport::Telegram
            && self.store.agent_value(OWNER_TOKEN_KEY)?.as_deref() == Some(hash.as_str())
        {
            self.store.transaction(|| {
                self.store.set_agent_value(OWNER_CHAT_KEY, chat)?;
                self.store.set_agent_value(OWNER_TOKEN_KEY, "")?;
                self.store.audit(now, "owner_bind", "", "ok", &[])?;
                self.done(update_id)
            })?;
            return Ok(Action::reply(
                "This is now your MedCrypt notice chat ✓ Failed deliveries, emergency access and a daily audit checkpoint will appear here.",
            ));
        }
        let pairing = self.store.pairing_by_token(token)?;
        let bound_elsewhere = self.pairing_for_chat(chat)?;
        let expired = match &pairing {
            Some(p) => self
                .store
                .pairing_state(p.id)?
                .invite_expires
                .filter(|expires| now > *expires),
            None => None,
        };
        if let Some(expires) = expired {
            let answer = self.reject_binding(update_id, "invitation expired", now)?;
            return Ok(answer.map_or_else(Action::default, |_| {
                Action::reply(format!(
                    "Sorry, this invitation expired on {}. Please ask the practice for a new pairing.",
                    expires.format("%Y-%m-%d %H:%M UTC")
                ))
            }));
        }
        match (pairing, bound_elsewhere) {
            (Some(pairing), None) => {
                self.store.transaction(|| {
                    self.store
                        .bind_chat(&pairing, self.transport.name(), chat, now)?;
                    self.done(update_id)
                })?;
                // The messenger reads this: it names no one and gives no
                // part of the safety number.
                Ok(Action::reply(
                    "Connected ✓ You can now send encrypted messages in this chat. Compare the safety number on your screen with the one your physician shows you.",
                ))
            }
            (Some(_), Some(_)) => {
                self.skip(update_id)?;
                Ok(Action::reply(
                    "This chat is already connected to a pairing. Please use a new chat for another pairing.",
                ))
            }
            (None, _) => {
                let answer = self.reject_binding(update_id, "unknown or used token", now)?;
                Ok(answer.map_or_else(Action::default, |_| {
                    Action::reply(
                        "Sorry, this link is not valid or was already used. Please ask the practice for a new pairing.",
                    )
                }))
            }
        }
    }

    /// Handles a document already downloaded (at most the download limit).
    ///
    /// # Errors
    /// Database errors only.
    pub fn on_document(
        &self,
        update_id: i64,
        chat: &str,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Action> {
        let Some(pairing) = self.pairing_for_chat(chat)? else {
            self.skip(update_id)?;
            return self.instructions(now);
        };
        // An ASCII-armoured file (wire-spec 10.7) is read like a binary one.
        let dearmored;
        let bytes = if crate::protocol::attachment::is_armored(bytes) {
            match crate::protocol::attachment::dearmor(bytes) {
                Ok(binary) => {
                    dearmored = binary;
                    &dearmored[..]
                }
                Err(err) => {
                    return self.refuse_file(
                        update_id,
                        &pairing,
                        err.kind(),
                        "⚠ This file arrived damaged or incomplete. Please send it again.",
                        now,
                    );
                }
            }
        } else {
            bytes
        };
        let part = match PartHeader::read(bytes) {
            Ok(part) => part,
            Err(err) => {
                return self.refuse_file(
                    update_id,
                    &pairing,
                    err.kind(),
                    "⚠ This part of a file is damaged or of a newer MedCrypt. Please send the file again.",
                    now,
                );
            }
        };
        if let Some(part) = part {
            // Telegram chat ids and WhatsApp numbers may coincide.
            let set_owner = match self.transport {
                Transport::Telegram => chat.to_owned(),
                Transport::WhatsApp => format!("whatsapp:{chat}"),
            };
            return match self.store.telegram_part(&part, &set_owner, bytes, now)? {
                PartSet::Complete => {
                    // Assembled in a private temporary file beside the
                    // store, part by part, never whole in memory; the parts
                    // are forgotten with the file stored.
                    let mut assembled = TempFile::beside(self.session, self.store.path())?;
                    self.store
                        .write_part_set(&part.file_id, &set_owner, assembled.file()?)?;
                    // Written through a write-only handle: read back anew.
                    let file = std::fs::File::open(assembled.path()).map_err(SessionError::io(
                        "cannot read back the assembled parts".to_owned(),
                    ))?;
                    let input = std::io::BufReader::new(file);
                    self.open_file(update_id, &pairing, input, Some(&part.file_id), now)
                }
                PartSet::Waiting => {
                    self.skip(update_id)?;
                    Ok(Action::reply(format!(
                        "Part {} of {} received; waiting for the others.",
                        part.index, part.count
                    )))
                }
                PartSet::TooLarge => self.refuse_file(
                    update_id,
                    &pairing,
                    "parts_too_large",
                    "⚠ These parts add up to more than this chat can hold while they arrive. Please send a smaller file, or split it differently.",
                    now,
                ),
            };
        }
        self.open_file(
            update_id,
            &pairing,
            std::io::BufReader::new(bytes),
            None,
            now,
        )
    }

    /// Decrypts a whole `.medcrypt` file from `input` into a private
    /// temporary file beside the store, then stores it (and forgets the
    /// part set it was assembled from, in the same transaction).
    fn open_file(
        &self,
        update_id: i64,
        pairing: &PairingInfo,
        mut input: impl std::io::BufRead + Send,
        part_set: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        let chain = self.store.chain(pairing)?;
        let mut content = TempFile::beside(self.session, self.store.path())?;
        let outcome = (|| -> std::result::Result<_, AttachmentError> {
            let header = Header::read(&mut input)?;
            let key = header.unwrap(&chain, pairing.role, now)?;
            let sink = content.file().map_err(|_| {
                AttachmentError::Io(std::io::Error::other("the temporary file is closed"))
            })?;
            let mut sink = std::io::BufWriter::new(sink);
            let decrypted = decrypt(input, &key, &mut sink, &mut |_| {})?;
            std::io::Write::flush(&mut sink)?;
            Ok((header.epoch(), decrypted))
        })();
        match outcome {
            Ok((epoch, decrypted)) => {
                let file = std::fs::File::open(content.path()).map_err(SessionError::io(
                    "cannot read back the decrypted file".to_owned(),
                ))?;
                let mut reader = std::io::BufReader::new(file);
                let receipt = self.store.transaction(|| {
                    let receipt = self.store.receive_file(
                        pairing,
                        Incoming::file(
                            Via::Agent,
                            epoch,
                            &decrypted.file_id,
                            &decrypted.metadata,
                            None,
                        ),
                        &mut reader,
                        now,
                    )?;
                    if let Some(file_id) = part_set {
                        self.store.drop_part_set(file_id)?;
                    }
                    self.done(update_id)?;
                    Ok(receipt)
                })?;
                // Neither a counter nor the size (which would undo the padding).
                Ok(Action::receipt(match receipt {
                    Receipt::New { .. } => "Received ✓".to_owned(),
                    Receipt::Again(_) => {
                        "This file was already received ✓ (sent twice?)".to_owned()
                    }
                }))
            }
            Err(AttachmentError::NotAttachment) => {
                let action = self.reject_plaintext(update_id, pairing, "file", now)?;
                if let Some(file_id) = part_set {
                    self.store.drop_part_set(file_id)?;
                }
                Ok(action)
            }
            Err(err) => {
                let reply = match &err {
                    AttachmentError::Header(inner) => explain(inner),
                    AttachmentError::Truncated { .. } | AttachmentError::EmptyFinalChunk => {
                        "⚠ This file arrived incomplete. Please send it again.".to_owned()
                    }
                    _ => "⚠ This file could not be verified: it was changed or damaged. Please encrypt it again and send it.".to_owned(),
                };
                let action = self.refuse_file(update_id, pairing, err.kind(), &reply, now)?;
                if let Some(file_id) = part_set {
                    self.store.drop_part_set(file_id)?;
                }
                Ok(action)
            }
        }
    }

    /// A file refused: audited with its `kind`, and the
    /// patient told `reply`.
    fn refuse_file(
        &self,
        update_id: i64,
        pairing: &PairingInfo,
        kind: &str,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        self.handled(
            update_id,
            now,
            "attach_decrypt_failed",
            &pairing.alias,
            "rejected",
            &[("kind", kind.to_owned())],
        )?;
        Ok(Action::reply(reply))
    }

    /// Counts one more failed download of `update_id`'s document; returns
    /// how many times it failed in a row.
    ///
    /// # Errors
    /// Database errors.
    pub fn download_failed(&self, update_id: i64) -> Result<u32> {
        let previous = self
            .store
            .agent_value(&format!(
                "{}.{DOWNLOAD_FAILURES_KEY}",
                self.transport.name()
            ))?
            .and_then(|v| {
                let (id, count) = v.split_once(':')?;
                (id.parse::<i64>().ok()? == update_id).then(|| count.parse::<u32>().ok())?
            })
            .unwrap_or(0);
        let count = previous + 1;
        self.store.set_agent_value(
            &format!("{}.{DOWNLOAD_FAILURES_KEY}", self.transport.name()),
            &format!("{update_id}:{count}"),
        )?;
        Ok(count)
    }

    /// A document that could not be downloaded after
    /// [`MAX_DOWNLOAD_ATTEMPTS`]: recorded, and the patient asked to send
    /// it again; the agent goes on with later updates.
    ///
    /// # Errors
    /// Database errors.
    pub fn on_undownloadable(
        &self,
        update_id: i64,
        chat: &str,
        now: DateTime<Utc>,
    ) -> Result<Action> {
        let subject = self
            .pairing_for_chat(chat)?
            .map(|p| p.alias)
            .unwrap_or_default();
        self.handled(
            update_id,
            now,
            "attach_decrypt_failed",
            &subject,
            "failed",
            &[("kind", "download_failed".to_owned())],
        )?;
        Ok(Action::reply(format!(
            "⚠ This file could not be downloaded from {}. Please send it again.",
            self.transport.title()
        )))
    }

    /// The answer to a document too large for a bot to download.
    ///
    /// # Errors
    /// Database errors.
    pub fn on_oversized_document(&self, update_id: i64, size: u64) -> Result<Action> {
        self.skip(update_id)?;
        Ok(Action::reply(format!(
            "⚠ This file is {} MB; a bot can only download files up to 20 MB. Please split it: \
             `medcrypt attach encrypt --part-size 19M …` and send all the parts.",
            size / 1_000_000
        )))
    }
}

//! The agent's mailbox as the physician uses it: queueing encrypted texts
//! and files for the agent to deliver, the outbox and its states, and the
//! inbox of what the agent received.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::protocol::attachment::{Metadata, Sealing, guess_mime, sanitize_file_name};
use crate::protocol::wire::MAX_TEXT_BYTES;
use crate::store::{HistoryContent, HistoryItem, OutboxItem, OutboxKind, PairingInfo, Protocol};

use zeroize::Zeroizing;

use super::escrow::dir_has_entries;
use super::{Error, Result, Session, TempFile, free_path};
use crate::protocol::keys::Role;

/// Telegram bots may upload documents up to 50 MB.
const UPLOAD_LIMIT: u64 = 50 * 1000 * 1000;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub enum SendContent<'a> {
    /// A text (sent as a document if too long for one message).
    Text(&'a str),
    /// A file.
    File(&'a Path),
    /// A file's content, already in memory, and its name.
    Data {
        /// The file's name (the patient sees it).
        name: &'a str,
        /// Its content.
        bytes: &'a [u8],
    },
}

/// An item queued for the agent.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Its outbox number.
    pub id: i64,
    /// Sent as text or as a document.
    pub kind: OutboxKind,
    /// The patient's chat is already bound, so the agent can deliver it.
    pub bound: bool,
}

impl Session {
    /// Encrypts `content` for the pairing `alias` and queues it for the
    /// agent.
    ///
    /// # Errors
    /// Unknown pairing, files for legacy pairings, a file over the upload
    /// limit, I/O and database errors.
    pub fn send(&self, alias: &str, content: SendContent<'_>) -> Result<Queued> {
        let now = self.now();
        let pairing = self.store.pairing(alias)?;
        if pairing.role == Role::Patient {
            return Err(Error::refused(
                format!(
                    "{alias:?} is your physician: `send` queues messages for the physician's agent, and patients have none"
                ),
                "encrypt with `medcrypt encrypt --to ALIAS` (or `attach encrypt`) and paste or send the result in your chat",
            ));
        }
        let (kind, payload) = match (content, pairing.protocol) {
            (SendContent::File(_) | SendContent::Data { .. }, Protocol::V1) => {
                return Err(Error::refused(
                    "a legacy v1 pairing cannot receive files",
                    "pair anew with `medcrypt pair new`",
                ));
            }
            (SendContent::File(path), _) => {
                let read_err = Error::io(format!("cannot read {}", path.display()));
                let mut file = std::fs::File::open(path).map_err(read_err)?;
                let size = file
                    .metadata()
                    .map_err(Error::io(format!("cannot read {}", path.display())))?
                    .len();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let metadata = Metadata {
                    mime: guess_mime(&name).to_owned(),
                    name,
                    size,
                };
                (
                    OutboxKind::Document,
                    self.seal_document(&pairing, &metadata, &mut file)?,
                )
            }
            (SendContent::Data { name, bytes }, _) => {
                let metadata = Metadata {
                    mime: guess_mime(name).to_owned(),
                    name: name.to_owned(),
                    size: bytes.len() as u64,
                };
                (
                    OutboxKind::Document,
                    self.seal_document(&pairing, &metadata, &mut &bytes[..])?,
                )
            }
            (SendContent::Text(text), Protocol::V1) => {
                let mut legacy = self.store.legacy(&pairing)?;
                self.store.audit(
                    now,
                    "encrypt",
                    alias,
                    "ok",
                    &[("protocol", "v1".to_owned())],
                )?;
                (
                    OutboxKind::Text,
                    legacy.encrypt(text, now).to_text().into_bytes(),
                )
            }
            (SendContent::Text(text), Protocol::V2) if text.len() <= MAX_TEXT_BYTES => (
                OutboxKind::Text,
                self.seal_text(&pairing, text)?.into_bytes(),
            ),
            (SendContent::Text(text), Protocol::V2) => {
                // Too long for one chat message: an encrypted document.
                let metadata = Metadata {
                    name: "message.txt".into(),
                    mime: "text/plain".into(),
                    size: text.len() as u64,
                };
                (
                    OutboxKind::Document,
                    self.seal_document(&pairing, &metadata, &mut text.as_bytes())?,
                )
            }
        };
        let id = self.store.outbox_queue(&pairing, kind, &payload, now)?;
        let bound = self.store.chat_for_pairing(pairing.id)?.is_some();
        Ok(Queued { id, kind, bound })
    }

    fn seal_document(
        &self,
        pairing: &PairingInfo,
        metadata: &Metadata,
        content: &mut (dyn Read + Send),
    ) -> Result<Vec<u8>> {
        let recipients = self.recipients(std::slice::from_ref(&pairing.alias))?;
        let sealing = Sealing::new(metadata, &recipients)?;
        if sealing.total_len() > UPLOAD_LIMIT {
            return Err(Error::refused(
                "this file is larger than the 50 MB a bot may upload",
                "use `medcrypt attach encrypt --part-size 19M` and send the parts yourself",
            ));
        }
        let mut bytes = Vec::new();
        let mut reader = std::io::BufReader::new(content);
        sealing.write(&mut reader, &mut bytes, &mut |_| {})?;
        Ok(bytes)
    }

    /// Every outbox item.
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>> {
        Ok(self.store.outbox(None)?)
    }

    /// Queues an uncertain or failed outbox item again.
    ///
    /// # Errors
    /// No such item, database errors.
    pub fn outbox_retry(&self, id: i64) -> Result<()> {
        Ok(self.store.outbox_retry(id, self.now())?)
    }

    /// History items after `after_id`, from one pairing or all, oldest
    /// first.
    ///
    /// # Errors
    /// Unknown pairing, a store modified outside MedCrypt, database errors.
    pub fn inbox(&self, from: Option<&str>, after_id: i64) -> Result<Vec<HistoryItem>> {
        let pairing = from.map(|alias| self.store.pairing(alias)).transpose()?;
        Ok(self.store.history(pairing.as_ref(), after_id)?)
    }

    /// Writes the file of a history item kept in the store into `dir`
    /// under its (sanitised) name, never replacing a file, and audits it.
    ///
    /// # Errors
    /// I/O and database errors.
    pub fn save_inbox_file(
        &self,
        item: &HistoryItem,
        metadata: &Metadata,
        dir: &Path,
    ) -> Result<PathBuf> {
        let path = free_path(dir, &sanitize_file_name(&metadata.name));
        let mut bytes = Zeroizing::new(Vec::new());
        self.store.history_file_content(item.id, &mut *bytes)?;
        self.write_file(&path, &bytes)?;
        self.store.audit(
            self.now(),
            "inbox_export",
            &item.alias,
            "ok",
            &[("item", item.id.to_string())],
        )?;
        Ok(path)
    }

    /// `inbox export`: what the history keeps (of one pairing, or all), as
    /// `messages.txt` and the kept files, into the new directory `dir` — to
    /// file into a medical record before it expires. Audited.
    ///
    /// # Errors
    /// A non-empty `dir`, unknown pairing, I/O and database errors.
    pub fn inbox_export(&self, from: Option<&str>, dir: &Path) -> Result<usize> {
        let pairing = from.map(|alias| self.store.pairing(alias)).transpose()?;
        let count = self.export_history(pairing.as_ref(), dir)?;
        self.store.audit(
            self.now(),
            "history_export",
            from.unwrap_or_default(),
            "ok",
            &[("items", count.to_string())],
        )?;
        Ok(count)
    }

    /// Writes the history (of one pairing, or all) into a private staging
    /// directory beside `dir` that becomes `dir` only once everything is
    /// written: a failure or an interruption leaves no decrypted file.
    pub(super) fn export_history(
        &self,
        pairing: Option<&PairingInfo>,
        dir: &Path,
    ) -> Result<usize> {
        if dir_has_entries(dir)? {
            return Err(Error::refused(
                format!("{} is not empty", dir.display()),
                "export into a new, empty directory",
            ));
        }
        let staging = TempFile::dir_beside(self, dir)?;
        let count = self.write_history(pairing, staging.path())?;
        if dir.exists() {
            std::fs::remove_dir(dir)
                .map_err(Error::io(format!("cannot replace {}", dir.display())))?;
        }
        staging.persist(dir, false)?;
        Ok(count)
    }

    fn write_history(&self, pairing: Option<&PairingInfo>, dir: &Path) -> Result<usize> {
        let mut messages = String::new();
        let mut count = 0;
        for item in self.store.history(pairing, 0)? {
            count += 1;
            let entry = match &item.content {
                HistoryContent::Text(text) => text.clone(),
                HistoryContent::File {
                    metadata,
                    stored: true,
                    ..
                } => {
                    let path = free_path(dir, &sanitize_file_name(&metadata.name));
                    let mut bytes = Zeroizing::new(Vec::new());
                    self.store.history_file_content(item.id, &mut *bytes)?;
                    self.write_file(&path, &bytes)?;
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!("file {name} ({} bytes)", metadata.size)
                }
                HistoryContent::File {
                    metadata, saved_as, ..
                } => format!(
                    "file {} ({} bytes), decrypted to {} (not kept in the store)",
                    sanitize_file_name(&metadata.name),
                    metadata.size,
                    saved_as.as_deref().unwrap_or("a file")
                ),
            };
            messages.push_str(&format!(
                "#{} {} from {}:\n{entry}\n\n",
                item.id, item.received_at, item.alias
            ));
        }
        self.write_file(&dir.join("messages.txt"), messages.as_bytes())?;
        Ok(count)
    }
}

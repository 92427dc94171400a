//! Encrypted attachments: a streaming file format that any size of file
//! passes through in constant memory.
//!
//! Normative description: `wire-spec/README.md`, section 10. In short:
//!
//! ```text
//! header   "MEDCRYPT" 'F' 02 | epoch (3) | n (1) | n × stanza (65) | HMAC (32)
//! stanza   key hint (4) | direction (1) | nonce (12) | AES-GCM(wrap key, file key) (48)
//! payload  STREAM: 64 KiB chunks of AES-256-GCM, nonce = counter (11, BE) | last (1)
//! stream   u32 m | metadata JSON (m) | content | SHA-256(content) | zeros to Padmé length
//! ```
//!
//! The functions here read and write `std::io` streams; they open no file and
//! read no clock. Encryption and decryption run on two threads: one reads
//! (and hashes or decrypts), the other does the rest and writes.

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, OsRng, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::protocol::epoch::{Epoch, check_window};
use crate::protocol::keys::{
    Direction, EpochChain, EpochKey, KEY_HINT_LEN, KeyHint, Role, derive_key,
};
use crate::protocol::wire::DecryptError;

/// First bytes of every MedCrypt binary file and part.
pub const MAGIC: &[u8; 8] = b"MEDCRYPT";
const KIND_FILE: u8 = b'F';
const KIND_PART: u8 = b'P';
/// Format version of attachments (aligned with wire format v2).
pub const VERSION: u8 = 2;
/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
const TAG_LEN: usize = 16;
const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_LEN;
const FIXED_HEADER_LEN: usize = 14;
const STANZA_LEN: usize = KEY_HINT_LEN + 1 + 12 + 32 + TAG_LEN;
const HEADER_MAC_LEN: usize = 32;
/// At most this many recipients per file.
pub const MAX_RECIPIENTS: usize = 16;
const MAX_METADATA_LEN: usize = 4096;
/// The padded plaintext stream is never shorter than this.
const MIN_PADDED_LEN: u64 = 4096;
/// Length of a part's header.
pub const PART_HEADER_LEN: usize = 30;
const HEADER_MAC_LABEL: &str = "medcrypt/v2/file-header-mac";
const PAYLOAD_KEY_LABEL: &str = "medcrypt/v2/file-payload";
const WRAP_AAD_LABEL: &[u8] = b"medcrypt/v2/file-key";
/// Chunks handed between the two threads at a time (2 MiB).
const BATCH_CHUNKS: usize = 32;
/// How far (in chunks) a failing chunk is looked for elsewhere in the stream.
const DIAGNOSIS_WINDOW: u64 = 1024;

/// What is wrong with an attachment, or why it could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// Not a MedCrypt attachment or part at all.
    #[error("this is not a MedCrypt attachment")]
    NotAttachment,
    /// A version this program does not read.
    #[error("unsupported MedCrypt attachment version {0}")]
    UnsupportedVersion(u8),
    /// Structurally invalid.
    #[error("the attachment is malformed: {0}")]
    Malformed(&'static str),
    /// The header could not be opened: not for us, expired, altered, reflected.
    #[error(transparent)]
    Header(#[from] DecryptError),
    /// The encrypted data ends early.
    #[error("the attachment is truncated: it ends after chunk {chunks} of a longer file")]
    Truncated {
        /// Chunks present.
        chunks: u64,
    },
    /// Bytes follow the authenticated end.
    #[error("data was appended after the end of the attachment (after chunk {after_chunk})")]
    AppendedData {
        /// The real last chunk.
        after_chunk: u64,
    },
    /// A chunk stands at the wrong position.
    #[error("chunk {chunk} is out of order: it belongs at position {belongs_at}")]
    Reordered {
        /// Where it stands (1-based).
        chunk: u64,
        /// Where it belongs (1-based).
        belongs_at: u64,
    },
    /// A chunk appears twice.
    #[error("chunk {chunk} is a copy of chunk {copy_of} (duplicated)")]
    Duplicated {
        /// Where the copy stands (1-based).
        chunk: u64,
        /// The original (1-based).
        copy_of: u64,
    },
    /// A chunk fails authentication everywhere.
    #[error("chunk {chunk} was altered (authentication failed)")]
    ChunkModified {
        /// The chunk (1-based).
        chunk: u64,
    },
    /// The last chunk is empty although the payload is not.
    #[error("the last chunk is empty: the attachment was cut at a chunk boundary")]
    EmptyFinalChunk,
    /// The input file changed size while it was being encrypted.
    #[error("the file changed while it was being encrypted")]
    InputChanged,
    /// Too many or no recipients.
    #[error("an attachment needs 1 to {MAX_RECIPIENTS} recipients")]
    Recipients,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl AttachmentError {
    /// A stable name for the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotAttachment => "not_attachment",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::Malformed(_) => "malformed",
            Self::Header(e) => e.kind(),
            Self::Truncated { .. } => "truncated",
            Self::AppendedData { .. } => "appended_data",
            Self::Reordered { .. } => "reordered",
            Self::Duplicated { .. } => "duplicated",
            Self::ChunkModified { .. } => "chunk_modified",
            Self::EmptyFinalChunk => "empty_final_chunk",
            Self::InputChanged => "input_changed",
            Self::Recipients => "recipients",
            Self::Io(_) => "io",
        }
    }
}

type Result<T> = std::result::Result<T, AttachmentError>;

/// What travels inside the encryption about the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The original file name (sanitise before use: see [`sanitize_file_name`]).
    pub name: String,
    /// MIME type.
    pub mime: String,
    /// Size of the content in bytes.
    pub size: u64,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A file name can itself be medical information ("HIV-result.pdf").
        f.debug_struct("Metadata")
            .field("name", &"[REDACTED]")
            .field("mime", &self.mime)
            .field("size", &self.size)
            .finish()
    }
}

/// Result of a successful decryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// The metadata from inside the file.
    pub metadata: Metadata,
    /// SHA-256 of the content, verified.
    pub sha256: [u8; 32],
}

/// One recipient: a pairing's key of the current epoch and the direction
/// the file travels in that pairing.
#[derive(Debug)]
pub struct Recipient {
    /// The epoch key of the recipient's pairing.
    pub key: EpochKey,
    /// The sender's outbound direction in that pairing.
    pub direction: Direction,
}

/// A file key: random per file. Zeroized on drop.
pub struct FileKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey([REDACTED])")
    }
}

impl FileKey {
    /// A file key from bytes: vectors only.
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    fn payload_cipher(&self) -> Aes256Gcm {
        let key = derive_key(self.0.expose_secret(), PAYLOAD_KEY_LABEL, "");
        Aes256Gcm::new(key.expose_secret().into())
    }

    fn header_mac(&self, header: &[u8]) -> [u8; 32] {
        let key = derive_key(self.0.expose_secret(), HEADER_MAC_LABEL, "");
        match <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret()) {
            Ok(mut mac) => {
                mac.update(header);
                mac.finalize().into_bytes().into()
            }
            Err(_) => [0u8; 32],
        }
    }
}

/// Padmé (Nikitin et al., PETS 2019): rounds a length so that it leaks
/// O(log log L) bits, with at most 12 % overhead; never below 4 KiB.
pub fn padded_len(len: u64) -> u64 {
    let len = len.max(MIN_PADDED_LEN);
    let e = 63 - u64::from(len.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    (len + mask) & !mask
}

/// The STREAM nonce of chunk `counter` (0-based).
fn chunk_nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

fn stream_prefix(metadata: &Metadata) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(metadata).map_err(|_| AttachmentError::Malformed("metadata"))?;
    if json.len() > MAX_METADATA_LEN {
        return Err(AttachmentError::Malformed("the file name is too long"));
    }
    let mut prefix = u32::try_from(json.len())
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec();
    prefix.extend_from_slice(&json);
    Ok(prefix)
}

/// Length of the padded plaintext stream for a prefix and content size.
fn stream_len(prefix_len: usize, size: u64) -> u64 {
    padded_len(prefix_len as u64 + size + 32)
}

fn sealed_len(stream_len: u64) -> u64 {
    let chunks = stream_len.div_ceil(CHUNK_SIZE as u64);
    stream_len + chunks * TAG_LEN as u64
}

/// A file being encrypted: its header is made (and the file key wrapped for
/// each recipient) before any content is read, so the total length and the
/// file id are known up front, for splitting into parts.
pub struct Sealing {
    header: Vec<u8>,
    key: FileKey,
    prefix: Vec<u8>,
    size: u64,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Sealing {
    /// Prepares the encryption of a file described by `metadata` for
    /// `recipients` (all of the same epoch).
    ///
    /// # Errors
    /// [`AttachmentError::Recipients`] for no or too many recipients or mixed
    /// epochs; [`AttachmentError::Malformed`] for an over-long name.
    pub fn new(metadata: &Metadata, recipients: &[Recipient]) -> Result<Self> {
        let mut key = SecretBox::new(Box::new([0u8; 32]));
        OsRng.fill_bytes(key.expose_secret_mut());
        let nonces: Vec<[u8; 12]> = recipients
            .iter()
            .map(|_| {
                let mut nonce = [0u8; 12];
                OsRng.fill_bytes(&mut nonce);
                nonce
            })
            .collect();
        Self::with_key(metadata, recipients, FileKey(key), &nonces)
    }

    /// [`Sealing::new`] with a chosen file key and wrap nonces: vectors only.
    pub(crate) fn with_key(
        metadata: &Metadata,
        recipients: &[Recipient],
        key: FileKey,
        nonces: &[[u8; 12]],
    ) -> Result<Self> {
        let first = recipients.first().ok_or(AttachmentError::Recipients)?;
        let epoch = first.key.epoch();
        if recipients.len() > MAX_RECIPIENTS
            || nonces.len() != recipients.len()
            || recipients.iter().any(|r| r.key.epoch() != epoch)
        {
            return Err(AttachmentError::Recipients);
        }
        let mut header = Vec::with_capacity(FIXED_HEADER_LEN + recipients.len() * STANZA_LEN + 32);
        header.extend_from_slice(MAGIC);
        header.push(KIND_FILE);
        header.push(VERSION);
        header.extend_from_slice(&epoch.to_bytes());
        header.push(u8::try_from(recipients.len()).unwrap_or(0));
        let fixed: Vec<u8> = header.clone();
        for (recipient, &nonce) in recipients.iter().zip(nonces) {
            let hint = recipient.key.key_hint();
            let wrap = recipient.key.file_wrap_key(recipient.direction);
            let aad = wrap_aad(&fixed, &hint, recipient.direction);
            let wrapped = Aes256Gcm::new(wrap.expose_bytes().into())
                .encrypt(
                    Nonce::<U12>::from_slice(&nonce),
                    AeadPayload {
                        msg: key.0.expose_secret(),
                        aad: &aad,
                    },
                )
                .map_err(|_| AttachmentError::Malformed("key wrap"))?;
            header.extend_from_slice(&hint.0);
            header.push(recipient.direction.code());
            header.extend_from_slice(&nonce);
            header.extend_from_slice(&wrapped);
        }
        let mac = key.header_mac(&header);
        header.extend_from_slice(&mac);
        Ok(Self {
            header,
            key,
            prefix: stream_prefix(metadata)?,
            size: metadata.size,
        })
    }

    /// Total length of the encrypted file in bytes.
    pub fn total_len(&self) -> u64 {
        self.header.len() as u64 + sealed_len(stream_len(self.prefix.len(), self.size))
    }

    /// The file id that numbered parts carry: the first 16 bytes of the header MAC.
    pub fn file_id(&self) -> [u8; 16] {
        file_id_of(&self.header)
    }

    /// Writes the header and the encrypted content of `input` (exactly
    /// `metadata.size` bytes) to `output`. `progress` is told the number of
    /// content bytes done so far.
    ///
    /// # Errors
    /// [`AttachmentError::InputChanged`] if `input` is not exactly the
    /// announced size; I/O errors.
    pub fn write<R: Read + Send, W: Write>(
        self,
        input: R,
        mut output: W,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        output.write_all(&self.header)?;
        let total = stream_len(self.prefix.len(), self.size);
        let chunks = total.div_ceil(CHUNK_SIZE as u64);
        let cipher = self.key.payload_cipher();
        let pad_left = total - self.prefix.len() as u64 - self.size - 32;
        let mut source = PlainSource {
            prefix: self.prefix,
            prefix_pos: 0,
            reader: input,
            content_left: self.size,
            hasher: Sha256::new(),
            digest: None,
            digest_pos: 0,
            pad_left,
        };
        let (full_tx, full_rx) = mpsc::sync_channel::<Result<Batch>>(2);
        let (free_tx, free_rx) = mpsc::sync_channel::<Batch>(3);
        for _ in 0..3 {
            let _ = free_tx.send(Batch::new());
        }
        std::thread::scope(|scope| -> Result<()> {
            // Reader: fills batches from the plaintext stream, hashing content.
            scope.spawn(move || {
                let mut counter = 0u64;
                while counter < chunks {
                    let Ok(mut batch) = free_rx.recv() else {
                        return;
                    };
                    batch.lens.clear();
                    batch.first = counter;
                    let mut failed = None;
                    for slot in 0..BATCH_CHUNKS {
                        if counter >= chunks {
                            break;
                        }
                        let want = if counter + 1 == chunks {
                            usize::try_from(total - counter * CHUNK_SIZE as u64)
                                .unwrap_or(CHUNK_SIZE)
                        } else {
                            CHUNK_SIZE
                        };
                        let start = slot * SEALED_CHUNK;
                        match source.fill(&mut batch.buf[start..start + want]) {
                            Ok(n) if n == want => batch.lens.push(want),
                            Ok(_) => {
                                failed = Some(AttachmentError::InputChanged);
                                break;
                            }
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                        counter += 1;
                    }
                    let message = match failed {
                        Some(e) => Err(e),
                        None => Ok(batch),
                    };
                    let stop = message.is_err();
                    if full_tx.send(message).is_err() || stop {
                        return;
                    }
                }
            });
            // This thread: encrypts in place and writes.
            let mut done_chunks = 0u64;
            while done_chunks < chunks {
                let mut batch = full_rx
                    .recv()
                    .map_err(|_| AttachmentError::Io(io::Error::other("reader stopped")))??;
                for (slot, &len) in batch.lens.iter().enumerate() {
                    let counter = batch.first + slot as u64;
                    let start = slot * SEALED_CHUNK;
                    let (data, rest) = batch.buf[start..].split_at_mut(len);
                    let nonce = chunk_nonce(counter, counter + 1 == chunks);
                    let tag = cipher
                        .encrypt_in_place_detached(Nonce::<U12>::from_slice(&nonce), b"", data)
                        .map_err(|_| AttachmentError::Malformed("chunk too large"))?;
                    rest[..TAG_LEN].copy_from_slice(&tag);
                    output.write_all(&batch.buf[start..start + len + TAG_LEN])?;
                }
                done_chunks += batch.lens.len() as u64;
                progress((done_chunks * CHUNK_SIZE as u64).min(total));
                batch.wipe();
                let _ = free_tx.send(batch);
            }
            Ok(())
        })?;
        output.flush()?;
        Ok(())
    }
}

fn wrap_aad(fixed: &[u8], hint: &KeyHint, direction: Direction) -> Vec<u8> {
    let mut aad = WRAP_AAD_LABEL.to_vec();
    aad.extend_from_slice(fixed);
    aad.extend_from_slice(&hint.0);
    aad.push(direction.code());
    aad
}

fn file_id_of(header: &[u8]) -> [u8; 16] {
    let mut id = [0u8; 16];
    let mac = &header[header.len().saturating_sub(HEADER_MAC_LEN)..];
    id.copy_from_slice(&mac[..16.min(mac.len())]);
    id
}

/// A batch of chunk slots, each `CHUNK_SIZE + 16` bytes.
struct Batch {
    buf: Vec<u8>,
    lens: Vec<usize>,
    first: u64,
    last_in_stream: bool,
}

impl Batch {
    fn new() -> Self {
        Self {
            buf: vec![0u8; BATCH_CHUNKS * SEALED_CHUNK],
            lens: Vec::with_capacity(BATCH_CHUNKS),
            first: 0,
            last_in_stream: false,
        }
    }

    /// Clears plaintext left in the buffer before it is reused or dropped.
    fn wipe(&mut self) {
        use zeroize::Zeroize;
        let used = self.lens.len() * SEALED_CHUNK;
        self.buf[..used].zeroize();
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.buf.zeroize();
    }
}

/// The plaintext stream of the encryptor: prefix, content (hashed), digest,
/// padding.
struct PlainSource<R> {
    prefix: Vec<u8>,
    prefix_pos: usize,
    reader: R,
    content_left: u64,
    hasher: Sha256,
    digest: Option<[u8; 32]>,
    digest_pos: usize,
    pad_left: u64,
}

impl<R: Read> PlainSource<R> {
    /// Fills `buf` completely unless the stream ends.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.prefix_pos < self.prefix.len() {
                let take = (self.prefix.len() - self.prefix_pos).min(buf.len() - n);
                buf[n..n + take]
                    .copy_from_slice(&self.prefix[self.prefix_pos..self.prefix_pos + take]);
                self.prefix_pos += take;
                n += take;
            } else if self.content_left > 0 {
                let want = usize::try_from(self.content_left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - n);
                let got = match self.reader.read(&mut buf[n..n + want]) {
                    Ok(0) => return Err(AttachmentError::InputChanged),
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                self.hasher.update(&buf[n..n + got]);
                self.content_left -= got as u64;
                n += got;
            } else if self.digest.is_none() {
                // The input must end exactly here.
                let mut probe = [0u8; 1];
                if self.reader.read(&mut probe)? != 0 {
                    return Err(AttachmentError::InputChanged);
                }
                self.digest = Some(std::mem::take(&mut self.hasher).finalize().into());
            } else if let Some(digest) = self.digest.filter(|_| self.digest_pos < 32) {
                let take = (32 - self.digest_pos).min(buf.len() - n);
                buf[n..n + take].copy_from_slice(&digest[self.digest_pos..self.digest_pos + take]);
                self.digest_pos += take;
                n += take;
            } else if self.pad_left > 0 {
                let take = usize::try_from(self.pad_left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - n);
                buf[n..n + take].fill(0);
                self.pad_left -= take as u64;
                n += take;
            } else {
                break;
            }
        }
        Ok(n)
    }
}

/// A parsed attachment header.
#[derive(Debug, Clone)]
pub struct Header {
    raw: Vec<u8>,
    epoch: Epoch,
    stanzas: Vec<Stanza>,
}

#[derive(Debug, Clone)]
struct Stanza {
    hint: KeyHint,
    direction: Direction,
    nonce: [u8; 12],
    wrapped: [u8; 48],
}

impl Header {
    /// Reads and parses the header from the start of an attachment.
    ///
    /// # Errors
    /// [`AttachmentError::NotAttachment`], [`AttachmentError::UnsupportedVersion`],
    /// [`AttachmentError::Malformed`], [`AttachmentError::Truncated`].
    pub fn read<R: Read>(input: &mut R) -> Result<Self> {
        let mut fixed = [0u8; FIXED_HEADER_LEN];
        read_exact_or(input, &mut fixed, AttachmentError::NotAttachment)?;
        if &fixed[..8] != MAGIC || fixed[8] != KIND_FILE {
            if &fixed[..8] == MAGIC && fixed[8] == KIND_PART {
                return Err(AttachmentError::Malformed(
                    "this is one part of a multi-part attachment: give all parts",
                ));
            }
            return Err(AttachmentError::NotAttachment);
        }
        if fixed[9] != VERSION {
            return Err(AttachmentError::UnsupportedVersion(fixed[9]));
        }
        let epoch = Epoch::from_bytes([fixed[10], fixed[11], fixed[12]])
            .map_err(|_| AttachmentError::Malformed("invalid epoch"))?;
        let count = usize::from(fixed[13]);
        if count == 0 || count > MAX_RECIPIENTS {
            return Err(AttachmentError::Malformed("invalid recipient count"));
        }
        let mut raw = fixed.to_vec();
        let mut rest = vec![0u8; count * STANZA_LEN + HEADER_MAC_LEN];
        read_exact_or(input, &mut rest, AttachmentError::Truncated { chunks: 0 })?;
        let mut stanzas = Vec::with_capacity(count);
        for chunk in rest[..count * STANZA_LEN].chunks_exact(STANZA_LEN) {
            let mut hint = [0u8; KEY_HINT_LEN];
            hint.copy_from_slice(&chunk[..4]);
            let direction = Direction::from_code(chunk[4])
                .ok_or(AttachmentError::Malformed("invalid direction"))?;
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&chunk[5..17]);
            let mut wrapped = [0u8; 48];
            wrapped.copy_from_slice(&chunk[17..65]);
            stanzas.push(Stanza {
                hint: KeyHint(hint),
                direction,
                nonce,
                wrapped,
            });
        }
        raw.extend_from_slice(&rest);
        Ok(Self {
            raw,
            epoch,
            stanzas,
        })
    }

    /// The month whose keys wrap the file key.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The file id (first 16 bytes of the header MAC).
    pub fn file_id(&self) -> [u8; 16] {
        file_id_of(&self.raw)
    }

    /// Finds this side's stanza among the live keys of `chain` and unwraps
    /// the file key, then authenticates the whole header with it.
    ///
    /// # Errors
    /// [`DecryptError::Expired`] / [`DecryptError::NotYetValid`] for an epoch
    /// outside the window; [`DecryptError::UnknownKeyHint`] when no stanza is
    /// for this pairing; [`DecryptError::AuthenticationFailed`] when the
    /// header was altered; [`DecryptError::Reflected`] for a file this side sent.
    pub fn unwrap(
        &self,
        chain: &EpochChain,
        role: Role,
        now: OffsetDateTime,
    ) -> std::result::Result<FileKey, DecryptError> {
        check_window(self.epoch, now)?;
        let key = chain
            .key_for(self.epoch)
            .ok_or(DecryptError::UnknownKeyHint)?;
        let hint = key.key_hint();
        let fixed = &self.raw[..FIXED_HEADER_LEN];
        let mut result = Err(DecryptError::UnknownKeyHint);
        for stanza in self.stanzas.iter().filter(|s| s.hint == hint) {
            let wrap = key.file_wrap_key(stanza.direction);
            let aad = wrap_aad(fixed, &stanza.hint, stanza.direction);
            let Ok(plain) = Aes256Gcm::new(wrap.expose_bytes().into()).decrypt(
                Nonce::<U12>::from_slice(&stanza.nonce),
                AeadPayload {
                    msg: &stanza.wrapped,
                    aad: &aad,
                },
            ) else {
                result = Err(DecryptError::AuthenticationFailed);
                continue;
            };
            let plain = Zeroizing::new(plain);
            let Ok(bytes) = <&[u8; 32]>::try_from(plain.as_slice()) else {
                return Err(DecryptError::AuthenticationFailed);
            };
            let file_key = FileKey(SecretBox::new(Box::new(*bytes)));
            let (body, mac) = self.raw.split_at(self.raw.len() - HEADER_MAC_LEN);
            if !macs_equal(&file_key.header_mac(body), mac) {
                return Err(DecryptError::AuthenticationFailed);
            }
            if stanza.direction != role.inbound() {
                return Err(DecryptError::Reflected);
            }
            return Ok(file_key);
        }
        result
    }
}

fn macs_equal(a: &[u8; 32], b: &[u8]) -> bool {
    b.len() == 32 && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn read_exact_or<R: Read>(input: &mut R, buf: &mut [u8], short: AttachmentError) -> Result<()> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => return Err(short),
            Ok(got) => n += got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes; fewer only at the end of the input.
pub(crate) fn read_full<R: Read + ?Sized>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(got) => n += got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decrypts the payload that follows `header` in `input` into `output`.
/// `output` receives content as it is authenticated: write it to a temporary
/// file and keep it only if this returns `Ok`. `progress` is told the number
/// of encrypted bytes read.
///
/// # Errors
/// Every kind of damage has its own [`AttachmentError`]; I/O errors.
pub fn decrypt<R: BufRead + Send, W: Write>(
    mut input: R,
    key: &FileKey,
    output: W,
    progress: &mut dyn FnMut(u64),
) -> Result<Decrypted> {
    let cipher = key.payload_cipher();
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<Batch>>(2);
    let (free_tx, free_rx) = mpsc::sync_channel::<Batch>(3);
    for _ in 0..3 {
        let _ = free_tx.send(Batch::new());
    }
    let mut sink = PlainSink::new(output);
    std::thread::scope(|scope| -> Result<()> {
        let cipher = &cipher;
        // Reader: reads sealed chunks and decrypts them. Chunk 0 holds the
        // metadata, which fixes the stream's length: from then on the reader
        // knows how many chunks to expect and how long the last one is.
        scope.spawn(move || {
            let mut counter = 0u64;
            let mut layout: Option<(u64, usize)> = None; // (chunks, last chunk length)
            loop {
                let Ok(mut batch) = free_rx.recv() else {
                    return;
                };
                batch.lens.clear();
                batch.first = counter;
                batch.last_in_stream = false;
                let outcome = (|| -> Result<()> {
                    for slot in 0..BATCH_CHUNKS {
                        let start = slot * SEALED_CHUNK;
                        let (want, last) = match layout {
                            Some((chunks, last_len)) if counter + 1 == chunks => {
                                (last_len + TAG_LEN, true)
                            }
                            Some(_) => (SEALED_CHUNK, false),
                            None => (SEALED_CHUNK, false),
                        };
                        let got = read_full(&mut input, &mut batch.buf[start..start + want])?;
                        let at_end = got < want || input.fill_buf()?.is_empty();
                        if got == TAG_LEN && at_end && counter > 0 {
                            return Err(AttachmentError::EmptyFinalChunk);
                        }
                        if got < want && layout.is_some() || got <= TAG_LEN {
                            return Err(AttachmentError::Truncated { chunks: counter });
                        }
                        // Before the layout is known (chunk 0), the end of the
                        // input decides whether this is the last chunk.
                        let last = if layout.is_some() { last } else { at_end };
                        open_chunk(cipher, &mut batch.buf[start..start + got], counter, last)?;
                        let len = got - TAG_LEN;
                        if layout.is_none() {
                            let total =
                                stream_len_from_first_chunk(&batch.buf[start..start + len])?;
                            let chunks = total.div_ceil(CHUNK_SIZE as u64);
                            let last_len =
                                usize::try_from(total - (chunks - 1) * CHUNK_SIZE as u64)
                                    .map_err(|_| AttachmentError::Malformed("stream length"))?;
                            if (chunks == 1) != last || (chunks == 1 && last_len != len) {
                                return Err(AttachmentError::Malformed("wrong stream length"));
                            }
                            layout = Some((chunks, last_len));
                        }
                        batch.lens.push(len);
                        counter += 1;
                        if last {
                            if !input.fill_buf()?.is_empty() {
                                return Err(AttachmentError::AppendedData {
                                    after_chunk: counter,
                                });
                            }
                            batch.last_in_stream = true;
                            break;
                        }
                    }
                    Ok(())
                })();
                let stop = outcome.is_err() || batch.last_in_stream;
                let message = outcome.map(|()| batch);
                if full_tx.send(message).is_err() || stop {
                    return;
                }
            }
        });
        // This thread: parses, hashes and writes the plaintext.
        let mut read = 0u64;
        loop {
            let mut batch = full_rx
                .recv()
                .map_err(|_| AttachmentError::Io(io::Error::other("reader stopped")))??;
            for (slot, &len) in batch.lens.iter().enumerate() {
                let start = slot * SEALED_CHUNK;
                sink.push(&batch.buf[start..start + len])?;
                read += (len + TAG_LEN) as u64;
            }
            progress(read);
            let done = batch.last_in_stream;
            batch.wipe();
            let _ = free_tx.send(batch);
            if done {
                return Ok(());
            }
        }
    })?;
    sink.finish()
}

/// The padded stream length announced by the metadata at the start of the
/// (decrypted) first chunk.
fn stream_len_from_first_chunk(plain: &[u8]) -> Result<u64> {
    let bad = || AttachmentError::Malformed("invalid metadata");
    let len_bytes: [u8; 4] = plain
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    let m = u32::from_be_bytes(len_bytes) as usize;
    if m > MAX_METADATA_LEN {
        return Err(bad());
    }
    let json = plain.get(4..4 + m).ok_or_else(bad)?;
    let metadata: Metadata = serde_json::from_slice(json).map_err(|_| bad())?;
    Ok(stream_len(4 + m, metadata.size))
}

/// Opens one sealed chunk (data ‖ tag) in place at `counter`; on failure,
/// names what happened to it.
fn open_chunk(cipher: &Aes256Gcm, sealed: &mut [u8], counter: u64, last: bool) -> Result<()> {
    let (data, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
    let tag = *Tag::from_slice(tag);
    let try_open = |data: &mut [u8], at: u64, last: bool| {
        cipher
            .decrypt_in_place_detached(
                Nonce::<U12>::from_slice(&chunk_nonce(at, last)),
                b"",
                data,
                &tag,
            )
            .is_ok()
    };
    if try_open(data, counter, last) {
        return Ok(());
    }
    // A failed attempt leaves `data` untouched, so other positions can be tried.
    if last && try_open(data, counter, false) {
        return Err(AttachmentError::Truncated {
            chunks: counter + 1,
        });
    }
    if !last && try_open(data, counter, true) {
        return Err(AttachmentError::AppendedData {
            after_chunk: counter + 1,
        });
    }
    let low = counter.saturating_sub(DIAGNOSIS_WINDOW);
    for other in low..counter + DIAGNOSIS_WINDOW {
        if other == counter {
            continue;
        }
        if try_open(data, other, false) || try_open(data, other, true) {
            return Err(if other < counter {
                AttachmentError::Duplicated {
                    chunk: counter + 1,
                    copy_of: other + 1,
                }
            } else {
                AttachmentError::Reordered {
                    chunk: counter + 1,
                    belongs_at: other + 1,
                }
            });
        }
    }
    Err(AttachmentError::ChunkModified { chunk: counter + 1 })
}

enum SinkState {
    Prefix(Vec<u8>),
    Content { left: u64 },
    Digest(Vec<u8>),
    Padding,
}

/// The plaintext stream of the decryptor: checks the layout, writes the
/// content, verifies the digest and the padding.
struct PlainSink<W> {
    output: W,
    state: SinkState,
    metadata: Option<Metadata>,
    prefix_len: usize,
    hasher: Sha256,
    sha256: [u8; 32],
    total: u64,
}

impl<W: Write> PlainSink<W> {
    fn new(output: W) -> Self {
        Self {
            output,
            state: SinkState::Prefix(Vec::new()),
            metadata: None,
            prefix_len: 0,
            hasher: Sha256::new(),
            sha256: [0; 32],
            total: 0,
        }
    }

    fn push(&mut self, mut data: &[u8]) -> Result<()> {
        self.total += data.len() as u64;
        while !data.is_empty() {
            match &mut self.state {
                SinkState::Prefix(buf) => {
                    let need = if buf.len() < 4 {
                        4 - buf.len()
                    } else {
                        let m = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                        if m > MAX_METADATA_LEN {
                            return Err(AttachmentError::Malformed("metadata too long"));
                        }
                        4 + m - buf.len()
                    };
                    let take = need.min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if buf.len() >= 4 {
                        let m = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                        if m > MAX_METADATA_LEN {
                            return Err(AttachmentError::Malformed("metadata too long"));
                        }
                        if buf.len() == 4 + m {
                            let metadata: Metadata = serde_json::from_slice(&buf[4..])
                                .map_err(|_| AttachmentError::Malformed("invalid metadata"))?;
                            self.prefix_len = buf.len();
                            self.state = SinkState::Content {
                                left: metadata.size,
                            };
                            self.metadata = Some(metadata);
                        }
                    }
                }
                SinkState::Content { left } => {
                    if *left == 0 {
                        self.state = SinkState::Digest(Vec::new());
                        continue;
                    }
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    self.hasher.update(&data[..take]);
                    self.output.write_all(&data[..take])?;
                    *left -= take as u64;
                    data = &data[take..];
                    if *left == 0 {
                        self.state = SinkState::Digest(Vec::new());
                    }
                }
                SinkState::Digest(buf) => {
                    let take = (32 - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if buf.len() == 32 {
                        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                        if !macs_equal(&digest, buf) {
                            return Err(AttachmentError::Malformed(
                                "the content does not match its SHA-256",
                            ));
                        }
                        self.sha256 = digest;
                        self.state = SinkState::Padding;
                    }
                }
                SinkState::Padding => {
                    if data.iter().any(|&b| b != 0) {
                        return Err(AttachmentError::Malformed("non-zero padding"));
                    }
                    data = &[];
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Decrypted> {
        self.output.flush()?;
        let (SinkState::Padding, Some(metadata)) = (&self.state, self.metadata.take()) else {
            return Err(AttachmentError::Malformed(
                "the stream ends before its content",
            ));
        };
        if self.total != stream_len(self.prefix_len, metadata.size) {
            return Err(AttachmentError::Malformed("wrong padding length"));
        }
        Ok(Decrypted {
            metadata,
            sha256: self.sha256,
        })
    }
}

/// The header of one part of a split attachment:
///
/// ```text
/// "MEDCRYPT" | 'P' | 02 | file id (16) | index (u16, from 1) | count (u16)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartHeader {
    /// The id of the encrypted file this part belongs to.
    pub file_id: [u8; 16],
    /// Position, from 1.
    pub index: u16,
    /// Number of parts.
    pub count: u16,
}

impl PartHeader {
    /// The 30-byte encoding.
    pub fn to_bytes(&self) -> [u8; PART_HEADER_LEN] {
        let mut out = [0u8; PART_HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8] = KIND_PART;
        out[9] = VERSION;
        out[10..26].copy_from_slice(&self.file_id);
        out[26..28].copy_from_slice(&self.index.to_be_bytes());
        out[28..30].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    /// Parses [`PartHeader::to_bytes`]; `None` when the bytes are not a part header.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < PART_HEADER_LEN
            || &bytes[..8] != MAGIC
            || bytes[8] != KIND_PART
            || bytes[9] != VERSION
        {
            return None;
        }
        let mut file_id = [0u8; 16];
        file_id.copy_from_slice(&bytes[10..26]);
        let index = u16::from_be_bytes([bytes[26], bytes[27]]);
        let count = u16::from_be_bytes([bytes[28], bytes[29]]);
        (index >= 1 && index <= count).then_some(Self {
            file_id,
            index,
            count,
        })
    }

    /// How many parts a file of `total` bytes needs for parts of at most
    /// `part_size` bytes each (header included); `None` when impossible.
    pub fn count_for(total: u64, part_size: u64) -> Option<u16> {
        let payload = part_size
            .checked_sub(PART_HEADER_LEN as u64)
            .filter(|p| *p >= 1024)?;
        u16::try_from(total.div_ceil(payload))
            .ok()
            .filter(|c| *c >= 1)
    }
}

/// A file name from inside an attachment made safe to create in a
/// directory: no path, no `..`, no control characters, not empty.
pub fn sanitize_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    if cleaned.is_empty() {
        "attachment".to_owned()
    } else {
        cleaned.chars().take(200).collect()
    }
}

/// A MIME type from a file name's extension (the common medical ones).
pub fn guess_mime(name: &str) -> &'static str {
    let ext = name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "tif" | "tiff" => "image/tiff",
        "dcm" => "application/dicom",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::keys::PairingSecret;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

    fn chain(seed: u8) -> EpochChain {
        EpochChain::new(
            PairingSecret::from_bytes(&[seed; 32]).first_epoch_key("2026-11".parse().unwrap()),
        )
    }

    fn seal(content: &[u8], seeds: &[u8]) -> Vec<u8> {
        let recipients: Vec<Recipient> = seeds
            .iter()
            .map(|&s| Recipient {
                key: chain(s)
                    .key_for("2026-11".parse().unwrap())
                    .unwrap()
                    .into_owned(),
                direction: Direction::PhysicianToPatient,
            })
            .collect();
        let meta = Metadata {
            name: "labs.pdf".into(),
            mime: "application/pdf".into(),
            size: content.len() as u64,
        };
        let sealing = Sealing::new(&meta, &recipients).unwrap();
        let total = sealing.total_len();
        let mut out = Vec::new();
        sealing.write(content, &mut out, &mut |_| {}).unwrap();
        assert_eq!(out.len() as u64, total);
        out
    }

    fn open(file: &[u8], seed: u8) -> Result<(Vec<u8>, Decrypted)> {
        let mut input = io::BufReader::new(file);
        let header = Header::read(&mut input)?;
        let key = header.unwrap(&chain(seed), Role::Patient, NOW)?;
        let mut out = Vec::new();
        let decrypted = decrypt(input, &key, &mut out, &mut |_| {})?;
        Ok((out, decrypted))
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        // The plaintext stream adds the prefix and digest, so also test
        // content sizes that put the stream exactly on chunk boundaries.
        let prefix = stream_prefix(&Metadata {
            name: "labs.pdf".into(),
            mime: "application/pdf".into(),
            size: 0,
        })
        .unwrap()
        .len();
        for size in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE + 17,
            2 * CHUNK_SIZE - prefix - 32,
        ] {
            let content: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let file = seal(&content, &[1]);
            let (out, decrypted) = open(&file, 1).unwrap();
            assert_eq!(out, content, "size {size}");
            assert_eq!(decrypted.metadata.name, "labs.pdf");
            assert_eq!(decrypted.sha256, <[u8; 32]>::from(Sha256::digest(&content)));
        }
    }

    #[test]
    fn outside_shows_only_a_padded_size() {
        let a = seal(&[1u8; 4100], &[1]);
        let b = seal(&[1u8; 4150], &[1]);
        assert_eq!(a.len(), b.len());
        assert!(!a.windows(8).any(|w| w == b"labs.pdf"));
    }

    #[test]
    fn padme_bounds() {
        assert_eq!(padded_len(1), 4096);
        for len in [5000u64, 1 << 20, (1 << 30) + 123, 3_000_000_000] {
            let p = padded_len(len);
            assert!(
                p >= len && (p - len) as f64 / len as f64 <= 0.12,
                "{len} -> {p}"
            );
        }
    }

    #[test]
    fn multiple_recipients_each_open_it() {
        let file = seal(b"consult report", &[1, 2]);
        assert_eq!(open(&file, 1).unwrap().0, b"consult report");
        assert_eq!(open(&file, 2).unwrap().0, b"consult report");
        assert!(matches!(
            open(&file, 3),
            Err(AttachmentError::Header(DecryptError::UnknownKeyHint))
        ));
    }

    fn header_len(recipients: usize) -> usize {
        FIXED_HEADER_LEN + recipients * STANZA_LEN + HEADER_MAC_LEN
    }

    #[test]
    fn each_kind_of_damage_has_its_own_error() {
        let content: Vec<u8> = (0..5 * CHUNK_SIZE).map(|i| i as u8).collect();
        let file = seal(&content, &[1]);
        let h = header_len(1);
        let chunk = |i: usize| h + i * SEALED_CHUNK..h + (i + 1) * SEALED_CHUNK;

        let mut modified = file.clone();
        modified[chunk(2).start + 10] ^= 1;
        assert!(matches!(
            open(&modified, 1),
            Err(AttachmentError::ChunkModified { chunk: 3 })
        ));

        let truncated = file[..chunk(3).end].to_vec();
        assert!(
            matches!(open(&truncated, 1), Err(AttachmentError::Truncated { .. })),
            "{:?}",
            open(&truncated, 1).err()
        );

        let mut appended = file.clone();
        appended.extend_from_slice(&file[chunk(1)]);
        assert!(
            matches!(
                open(&appended, 1),
                Err(AttachmentError::AppendedData { .. })
            ),
            "{:?}",
            open(&appended, 1).err()
        );

        let mut swapped = file[..h].to_vec();
        for i in [0, 2, 1, 3, 4, 5] {
            let range = chunk(i);
            swapped.extend_from_slice(&file[range.start..range.end.min(file.len())]);
        }
        assert!(matches!(
            open(&swapped, 1),
            Err(AttachmentError::Reordered {
                chunk: 2,
                belongs_at: 3
            })
        ));

        let mut duplicated = file[..h].to_vec();
        for i in [0, 1, 1, 2, 3, 4, 5] {
            let range = chunk(i);
            duplicated.extend_from_slice(&file[range.start..range.end.min(file.len())]);
        }
        assert!(matches!(
            open(&duplicated, 1),
            Err(AttachmentError::Duplicated {
                chunk: 3,
                copy_of: 2
            })
        ));

        // Cut at a chunk boundary and followed by an empty "last" chunk.
        let mut empty_last = file[..chunk(2).end].to_vec();
        empty_last.extend_from_slice(&[0u8; TAG_LEN]);
        assert!(matches!(
            open(&empty_last, 1),
            Err(AttachmentError::EmptyFinalChunk)
        ));

        let mut header = file.clone();
        header[h - 1] ^= 1; // the header MAC
        assert!(matches!(
            open(&header, 1),
            Err(AttachmentError::Header(DecryptError::AuthenticationFailed))
        ));
        assert!(matches!(
            open(b"%PDF-1.7 not encrypted", 1),
            Err(AttachmentError::NotAttachment)
        ));
    }

    #[test]
    fn expired_and_reflected_headers() {
        let file = seal(b"x", &[1]);
        let mut input = io::BufReader::new(&file[..]);
        let header = Header::read(&mut input).unwrap();
        assert!(matches!(
            header.unwrap(&chain(1), Role::Physician, NOW),
            Err(DecryptError::Reflected)
        ));
        assert!(matches!(
            header.unwrap(&chain(1), Role::Patient, datetime!(2026-12-09 0:00 UTC)),
            Err(DecryptError::Expired { .. })
        ));
    }

    #[test]
    fn input_that_changes_size_is_refused() {
        let recipients = vec![Recipient {
            key: chain(1)
                .key_for("2026-11".parse().unwrap())
                .unwrap()
                .into_owned(),
            direction: Direction::PhysicianToPatient,
        }];
        let meta = Metadata {
            name: "a".into(),
            mime: "text/plain".into(),
            size: 10,
        };
        let sealing = Sealing::new(&meta, &recipients).unwrap();
        assert!(matches!(
            sealing.write(&b"short"[..], Vec::new(), &mut |_| {}),
            Err(AttachmentError::InputChanged)
        ));
        let sealing = Sealing::new(&meta, &recipients).unwrap();
        assert!(matches!(
            sealing.write(&b"much too long!"[..], Vec::new(), &mut |_| {}),
            Err(AttachmentError::InputChanged)
        ));
    }

    #[test]
    fn debug_shows_no_name_or_content() {
        let meta = Metadata {
            name: "HIV-result.pdf".into(),
            mime: "application/pdf".into(),
            size: 3,
        };
        assert!(!format!("{meta:?}").contains("HIV"));
        let content = crate::store::InboxContent::Text("HIV positive".into());
        assert_eq!(format!("{content:?}"), "Text(12 bytes)");
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\x\\scan.pdf"), "scan.pdf");
        assert_eq!(sanitize_file_name(".."), "attachment");
        assert_eq!(sanitize_file_name("..hidden"), "hidden");
        assert_eq!(sanitize_file_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(sanitize_file_name(""), "attachment");
    }

    #[test]
    fn part_headers() {
        let header = PartHeader {
            file_id: [3; 16],
            index: 2,
            count: 3,
        };
        assert_eq!(PartHeader::parse(&header.to_bytes()), Some(header));
        assert_eq!(PartHeader::count_for(100_000, 40_030), Some(3));
        assert_eq!(PartHeader::count_for(100, 10), None);
    }
}

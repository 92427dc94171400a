//! Encrypted attachments: a streaming file format that any size of file
//! passes through in constant memory.
//!
//! Normative description: `wire-spec/README.md`, section 10. In short
//! (format 3, the one written):
//!
//! ```text
//! header   "MEDCRYPT" 'F' 03 | epoch (3) | stream length (u64) | n (1) | n × stanza (65) | HMAC (32)
//! stanza   key hint (4) | direction (1) | nonce (12) | AES-GCM(wrap key, file key) (48)
//! payload  STREAM: 64 KiB chunks of AES-256-GCM, nonce = counter (11, BE) | last (1),
//!          associated data = the header MAC
//! stream   u32 m | metadata JSON (m) | content | SHA-256(content) | n × sender tag (32)
//!          | zeros to Padmé length
//! ```
//!
//! Each recipient's sender tag is an HMAC under a key of *that recipient's
//! pairing* over the header, the metadata and the content's hash: another
//! recipient of the same file, who also knows the file key, cannot make a
//! file that one accepts. Format 2 (no sender tags) is still read when it
//! has a single recipient, and refused with several.
//!
//! The functions here read and write `std::io` streams; they open no file and
//! read no clock. Encryption and decryption run on two threads: one reads
//! (and hashes or decrypts), the other does the rest and writes.

use std::io::{self, Read};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::protocol::keys::{Direction, EpochKey, KEY_HINT_LEN, KeyHint, MessageKey, derive_key};
use crate::protocol::wire::DecryptError;

mod armor;
mod open;
mod parts;
mod seal;
#[cfg(test)]
mod tests;

pub use armor::{
    ARMOR_BEGIN, ARMOR_END, ArmorReader, ArmorWriter, armor, armor_error, dearmor, is_armored,
};
pub use open::{Header, OpenKey, decrypt};
pub use parts::{Assembly, PartError, PartHeader, assemble};
pub use seal::Sealing;
pub(crate) use seal::forge_same_size;
pub(crate) use seal::{FuzzStream, seal_stream};

/// First bytes of every MedCrypt binary file and part.
pub const MAGIC: &[u8; 8] = b"MEDCRYPT";
const KIND_FILE: u8 = b'F';
const KIND_PART: u8 = b'P';
/// Format version of the attachments this program writes.
pub const VERSION: u8 = 3;
/// Format version of parts (independent of the attachment format).
pub const PART_VERSION: u8 = 2;
/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
const TAG_LEN: usize = 16;
const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_LEN;
const STANZA_LEN: usize = KEY_HINT_LEN + 1 + 12 + 32 + TAG_LEN;
const HEADER_MAC_LEN: usize = 32;
/// Length of one sender tag in the plaintext stream (format 3).
const SENDER_TAG_LEN: usize = 32;
/// At most this many recipients per file.
pub const MAX_RECIPIENTS: usize = 16;
const MAX_METADATA_LEN: usize = 4096;
/// The padded plaintext stream is never shorter than this.
const MIN_PADDED_LEN: u64 = 4096;
/// Length of a part's header.
pub const PART_HEADER_LEN: usize = 30;
const SENDER_TAG_LABEL: &[u8] = b"medcrypt/v3/file-sender-tag";
/// Chunks handed between the two threads at a time (2 MiB).
const BATCH_CHUNKS: usize = 32;

/// Chunks per batch for a stream of `chunks` chunks (`None`: not known yet).
fn batch_chunks(chunks: Option<u64>) -> usize {
    chunks.map_or(BATCH_CHUNKS, |c| {
        usize::try_from(c)
            .unwrap_or(BATCH_CHUNKS)
            .clamp(1, BATCH_CHUNKS)
    })
}
/// How far (in chunks) a failing chunk is looked for elsewhere in the stream.
const DIAGNOSIS_WINDOW: u64 = 1024;

/// The attachment formats this program reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Format 2: no sender tags, no length in the header, empty chunk AAD.
    V2,
    /// Format 3: stream length in the header, chunks bound to the header,
    /// a sender tag per recipient.
    V3,
}

impl Format {
    fn from_code(code: u8) -> Option<Self> {
        match code {
            2 => Some(Self::V2),
            3 => Some(Self::V3),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }

    /// Bytes before the first stanza: magic, kind, version, epoch,
    /// (format 3: stream length,) recipient count.
    fn fixed_len(self) -> usize {
        match self {
            Self::V2 => 14,
            Self::V3 => 22,
        }
    }

    fn wrap_aad_label(self) -> &'static [u8] {
        match self {
            Self::V2 => b"medcrypt/v2/file-key",
            Self::V3 => b"medcrypt/v3/file-key",
        }
    }

    fn header_mac_label(self) -> &'static str {
        match self {
            Self::V2 => "medcrypt/v2/file-header-mac",
            Self::V3 => "medcrypt/v3/file-header-mac",
        }
    }

    fn payload_label(self) -> &'static str {
        match self {
            Self::V2 => "medcrypt/v2/file-payload",
            Self::V3 => "medcrypt/v3/file-payload",
        }
    }

    /// Sender tags in the plaintext stream for `recipients`.
    fn tags(self, recipients: usize) -> usize {
        match self {
            Self::V2 => 0,
            Self::V3 => recipients,
        }
    }
}

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
    #[error("the attachment is truncated: it ends after {chunks} whole chunk(s) of a longer file")]
    Truncated {
        /// Whole chunks present.
        chunks: u64,
    },
    /// Bytes follow the authenticated end.
    #[error(
        "data was appended after the end of the attachment (after its last chunk, chunk {last_chunk} counting from 0)"
    )]
    AppendedData {
        /// The real last chunk (from 0).
        last_chunk: u64,
    },
    /// A chunk stands at the wrong position.
    #[error("chunk {chunk} (counting from 0) is out of order: it belongs at position {belongs_at}")]
    Reordered {
        /// Where it stands (from 0).
        chunk: u64,
        /// Where it belongs (from 0).
        belongs_at: u64,
    },
    /// A chunk appears twice.
    #[error("chunk {chunk} (counting from 0) is a copy of chunk {copy_of} (duplicated)")]
    Duplicated {
        /// Where the copy stands (from 0).
        chunk: u64,
        /// The original (from 0).
        copy_of: u64,
    },
    /// A chunk fails authentication everywhere.
    #[error("chunk {chunk} (counting from 0) was altered (authentication failed)")]
    ChunkModified {
        /// The chunk (from 0).
        chunk: u64,
    },
    /// The last chunk is empty although the payload is not.
    #[error("the last chunk is empty: the attachment was cut at a chunk boundary")]
    EmptyFinalChunk,
    /// Format 3: this recipient's sender tag does not verify, so the file
    /// was not made by someone holding this pairing's key — another
    /// recipient of it may have altered it.
    #[error(
        "the file's sender could not be verified: it was not made with this pairing's key (another recipient of the file may have altered it)"
    )]
    SenderUnverified,
    /// Format 2 with several recipients: any of them could have rewritten
    /// the content, so it cannot prove who made it.
    #[error(
        "this file was made by an older MedCrypt for several recipients, and that format cannot prove its sender"
    )]
    SenderUnprovable,
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
            Self::SenderUnverified => "sender_unverified",
            Self::SenderUnprovable => "sender_unprovable",
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
    /// The file id (first 16 bytes of the header MAC): the same file
    /// decrypted twice has the same id.
    pub file_id: [u8; 16],
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

    fn payload_cipher(&self, format: Format) -> Aes256Gcm {
        let key = derive_key(self.0.expose_secret(), format.payload_label(), "");
        Aes256Gcm::new(key.expose_secret().into())
    }

    fn header_mac(&self, format: Format, header: &[u8]) -> [u8; 32] {
        let key = derive_key(self.0.expose_secret(), format.header_mac_label(), "");
        hmac(key.expose_secret(), &[header])
    }
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

/// One recipient's sender tag (format 3): proves to that recipient that
/// the file was made by someone holding its pairing's key.
///
/// ```text
/// HMAC-SHA256(sender key, "medcrypt/v3/file-sender-tag" || header || u32 m || metadata || SHA-256(content))
/// ```
fn sender_tag(key: &MessageKey, header: &[u8], prefix: &[u8], digest: &[u8; 32]) -> [u8; 32] {
    hmac(
        key.expose_bytes(),
        &[SENDER_TAG_LABEL, header, prefix, digest],
    )
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

/// Length of the padded plaintext stream for a prefix, a content size and
/// a number of sender tags.
fn stream_len(prefix_len: usize, size: u64, tags: usize) -> u64 {
    padded_len(prefix_len as u64 + size + 32 + (tags * SENDER_TAG_LEN) as u64)
}

fn sealed_len(stream_len: u64) -> u64 {
    let chunks = stream_len.div_ceil(CHUNK_SIZE as u64);
    stream_len + chunks * TAG_LEN as u64
}

fn wrap_aad(format: Format, fixed: &[u8], hint: &KeyHint, direction: Direction) -> Vec<u8> {
    let mut aad = format.wrap_aad_label().to_vec();
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
    /// A batch of `chunks` sealed chunks (a small file needs no 2 MiB).
    fn new(chunks: usize) -> Self {
        Self {
            buf: vec![0u8; chunks * SEALED_CHUNK],
            lens: Vec::with_capacity(chunks),
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

/// Characters that change how text is shown without being visible: bidi
/// embeddings, overrides and isolates, marks, zero-width characters and the
/// byte order mark. A name holding them can show one thing and be another
/// (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`).
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// A file name from inside an attachment made safe to create in a
/// directory: no path, no `..`, no control or invisible formatting
/// characters, not empty.
pub fn sanitize_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control()
                && !is_invisible_format(*c)
                && !matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|')
        })
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

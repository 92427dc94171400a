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

use std::io::{self, Read};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::protocol::keys::{Direction, EpochKey, KEY_HINT_LEN, KeyHint, derive_key};
use crate::protocol::wire::DecryptError;

mod open;
mod parts;
mod seal;
#[cfg(test)]
mod tests;

pub use open::{Header, decrypt};
pub use parts::PartHeader;
pub use seal::Sealing;

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

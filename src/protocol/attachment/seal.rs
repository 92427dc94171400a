//! Encryption: the header with one stanza per recipient, then the plaintext
//! stream through STREAM on two threads.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, OsRng, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use sha2::{Digest, Sha256};

use super::*;

/// A file being encrypted: its header is made (and the file key wrapped for
/// each recipient) before any content is read, so the total length and the
/// file id are known up front, for splitting into parts.
pub struct Sealing {
    format: Format,
    header: Vec<u8>,
    key: FileKey,
    prefix: Vec<u8>,
    size: u64,
    /// Format 3: each recipient's sender key, in stanza order.
    sender_keys: Vec<MessageKey>,
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
        Self::with_key(Format::V3, metadata, recipients, FileKey(key), &nonces)
    }

    /// [`Sealing::new`] in a chosen format with a chosen file key and wrap
    /// nonces: vectors only.
    pub(crate) fn with_key(
        format: Format,
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
        let prefix = stream_prefix(metadata)?;
        let total = stream_len(prefix.len(), metadata.size, format.tags(recipients.len()));
        let header = build_header(format, total, recipients, &key, nonces)?;
        let sender_keys = match format {
            Format::V2 => Vec::new(),
            Format::V3 => recipients
                .iter()
                .map(|r| r.key.file_sender_key(r.direction))
                .collect(),
        };
        Ok(Self {
            format,
            header,
            key,
            prefix,
            size: metadata.size,
            sender_keys,
        })
    }

    fn stream_len(&self) -> u64 {
        stream_len(self.prefix.len(), self.size, self.sender_keys.len())
    }

    /// Total length of the encrypted file in bytes.
    pub fn total_len(&self) -> u64 {
        self.header.len() as u64 + sealed_len(self.stream_len())
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
        let total = self.stream_len();
        let chunks = total.div_ceil(CHUNK_SIZE as u64);
        let cipher = self.key.payload_cipher(self.format);
        let chunk_aad: &[u8] = match self.format {
            Format::V2 => b"",
            Format::V3 => &self.header[self.header.len() - HEADER_MAC_LEN..],
        };
        let tags_len = self.sender_keys.len() * SENDER_TAG_LEN;
        let pad_left = total - self.prefix.len() as u64 - self.size - 32 - tags_len as u64;
        let mut source = PlainSource {
            header: &self.header,
            sender_keys: &self.sender_keys,
            tags: Vec::new(),
            tags_pos: 0,
            prefix: self.prefix.clone(),
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
        let per_batch = batch_chunks(Some(chunks));
        for _ in 0..3 {
            let _ = free_tx.send(Batch::new(per_batch));
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
                    for slot in 0..per_batch {
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
                        .encrypt_in_place_detached(
                            Nonce::<U12>::from_slice(&nonce),
                            chunk_aad,
                            data,
                        )
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

/// The plaintext stream of the encryptor: prefix, content (hashed), digest,
/// sender tags (format 3), padding.
struct PlainSource<'a, R> {
    header: &'a [u8],
    sender_keys: &'a [MessageKey],
    tags: Vec<u8>,
    tags_pos: usize,
    prefix: Vec<u8>,
    prefix_pos: usize,
    reader: R,
    content_left: u64,
    hasher: Sha256,
    digest: Option<[u8; 32]>,
    digest_pos: usize,
    pad_left: u64,
}

impl<R: Read> PlainSource<'_, R> {
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
                let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                for key in self.sender_keys {
                    self.tags.extend_from_slice(&sender_tag(
                        key,
                        self.header,
                        &self.prefix,
                        &digest,
                    ));
                }
                self.digest = Some(digest);
            } else if let Some(digest) = self.digest.filter(|_| self.digest_pos < 32) {
                let take = (32 - self.digest_pos).min(buf.len() - n);
                buf[n..n + take].copy_from_slice(&digest[self.digest_pos..self.digest_pos + take]);
                self.digest_pos += take;
                n += take;
            } else if self.tags_pos < self.tags.len() {
                let take = (self.tags.len() - self.tags_pos).min(buf.len() - n);
                buf[n..n + take].copy_from_slice(&self.tags[self.tags_pos..self.tags_pos + take]);
                self.tags_pos += take;
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

/// The header: fixed part, one stanza per recipient (the file key wrapped
/// under that recipient's wrap key), then the header MAC.
fn build_header(
    format: Format,
    total: u64,
    recipients: &[Recipient],
    key: &FileKey,
    nonces: &[[u8; 12]],
) -> Result<Vec<u8>> {
    let first = recipients.first().ok_or(AttachmentError::Recipients)?;
    let epoch = first.key.epoch();
    let mut header =
        Vec::with_capacity(format.fixed_len() + recipients.len() * STANZA_LEN + HEADER_MAC_LEN);
    header.extend_from_slice(MAGIC);
    header.push(KIND_FILE);
    header.push(format.code());
    header.extend_from_slice(&epoch.to_bytes());
    if format == Format::V3 {
        header.extend_from_slice(&total.to_be_bytes());
    }
    header.push(u8::try_from(recipients.len()).unwrap_or(0));
    let fixed: Vec<u8> = header.clone();
    for (recipient, &nonce) in recipients.iter().zip(nonces) {
        let hint = recipient.key.key_hint();
        let wrap = recipient.key.file_wrap_key(recipient.direction);
        let aad = wrap_aad(format, &fixed, &hint, recipient.direction);
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
    let mac = key.header_mac(format, &header);
    header.extend_from_slice(&mac);
    Ok(header)
}

/// A plaintext stream for [`seal_stream`]: fuzzing and vectors only.
#[derive(Debug)]
pub(crate) enum FuzzStream<'a> {
    /// Any bytes as the stream, with any declared length.
    Raw {
        /// The stream length the header announces.
        declared: u64,
        /// The stream, chunked and sealed as it is.
        stream: &'a [u8],
    },
    /// A stream laid out as 10.4 says, with any metadata bytes, the
    /// content's real hash and a valid sender tag, and fuzzer-chosen
    /// padding bytes (zeros make a valid file).
    Laid {
        /// The metadata bytes (any, not necessarily JSON).
        metadata: &'a [u8],
        /// The content.
        content: &'a [u8],
        /// Padding, repeated or cut to the Padmé length.
        padding: &'a [u8],
    },
}

/// Seals a chosen plaintext stream as a format 3 file for one recipient,
/// so that a fuzzer reaches the parsers behind the AEAD (metadata JSON,
/// layout, padding, hash, sender tag). Fuzzing and tests only: it makes
/// files no honest sender makes, with a fixed wrap nonce: never reachable
/// from outside the crate.
pub(crate) fn seal_stream(
    recipient: &Recipient,
    file_key: [u8; 32],
    stream: &FuzzStream<'_>,
) -> Vec<u8> {
    let format = Format::V3;
    let key = FileKey::from_bytes(file_key);
    let recipients = std::slice::from_ref(recipient);
    let declared = match stream {
        FuzzStream::Raw { declared, .. } => *declared,
        FuzzStream::Laid {
            metadata, content, ..
        } => stream_len(4 + metadata.len(), content.len() as u64, 1),
    };
    let Ok(header) = build_header(format, declared, recipients, &key, &[[7u8; 12]]) else {
        return Vec::new();
    };
    let plain = match stream {
        FuzzStream::Raw { stream, .. } => stream.to_vec(),
        FuzzStream::Laid {
            metadata,
            content,
            padding,
        } => {
            let mut out = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
            out.extend_from_slice(
                &u32::try_from(metadata.len())
                    .unwrap_or(u32::MAX)
                    .to_be_bytes(),
            );
            out.extend_from_slice(metadata);
            out.extend_from_slice(content);
            let digest: [u8; 32] = Sha256::digest(content).into();
            out.extend_from_slice(&digest);
            let sender = recipient.key.file_sender_key(recipient.direction);
            out.extend_from_slice(&sender_tag(
                &sender,
                &header,
                &out[..4 + metadata.len()],
                &digest,
            ));
            let total = usize::try_from(declared).unwrap_or(0);
            let mut pad = padding.iter().copied().cycle();
            while out.len() < total {
                out.push(if padding.is_empty() {
                    0
                } else {
                    pad.next().unwrap_or(0)
                });
            }
            out
        }
    };
    let aad = &header[header.len() - HEADER_MAC_LEN..];
    let cipher = key.payload_cipher(format);
    let chunks = plain.len().div_ceil(CHUNK_SIZE).max(1) as u64;
    let mut out = header.clone();
    for i in 0..chunks {
        let start = usize::try_from(i).unwrap_or(0) * CHUNK_SIZE;
        let chunk = &plain[start.min(plain.len())..(start + CHUNK_SIZE).min(plain.len())];
        let nonce = chunk_nonce(i, i + 1 == chunks);
        let payload = AeadPayload { msg: chunk, aad };
        out.extend(
            cipher
                .encrypt(Nonce::<U12>::from_slice(&nonce), payload)
                .unwrap_or_default(),
        );
    }
    out
}

/// What another recipient of a format 3 file can make, knowing its file key
/// but not this recipient's pairing key: the same header, the content
/// replaced by `content` of the same size, every sender tag kept. For the
/// vector that shows such a file is refused; never used to make files.
pub(crate) fn forge_same_size(file: &[u8], file_key: [u8; 32], content: &[u8]) -> Vec<u8> {
    let format = Format::V3;
    let n = usize::from(file[format.fixed_len() - 1]);
    let header_len = format.fixed_len() + n * STANZA_LEN + HEADER_MAC_LEN;
    let (header, sealed) = file.split_at(header_len);
    let aad = &header[header_len - HEADER_MAC_LEN..];
    let cipher = FileKey::from_bytes(file_key).payload_cipher(format);
    let chunks = sealed.len().div_ceil(SEALED_CHUNK) as u64;
    let mut stream = Vec::new();
    for (i, chunk) in sealed.chunks(SEALED_CHUNK).enumerate() {
        let nonce = chunk_nonce(i as u64, i as u64 + 1 == chunks);
        let payload = AeadPayload { msg: chunk, aad };
        stream.extend(
            cipher
                .decrypt(Nonce::<U12>::from_slice(&nonce), payload)
                .unwrap_or_default(),
        );
    }
    let m = stream
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let start = 4 + m;
    if stream.len() >= start + content.len() + 32 {
        stream[start..start + content.len()].copy_from_slice(content);
        let digest = Sha256::digest(content);
        stream[start + content.len()..start + content.len() + 32].copy_from_slice(&digest);
    }
    let mut out = header.to_vec();
    for (i, chunk) in stream.chunks(CHUNK_SIZE).enumerate() {
        let nonce = chunk_nonce(i as u64, i as u64 + 1 == chunks);
        let payload = AeadPayload { msg: chunk, aad };
        out.extend(
            cipher
                .encrypt(Nonce::<U12>::from_slice(&nonce), payload)
                .unwrap_or_default(),
        );
    }
    out
}

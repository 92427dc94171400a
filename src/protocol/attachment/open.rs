//! Decryption: parsing and unwrapping the header, then opening STREAM
//! chunk by chunk, naming every kind of damage, and finally checking this
//! recipient's sender tag.

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::protocol::epoch::{Epoch, check_window};
use crate::protocol::keys::{Direction, EpochChain, KEY_HINT_LEN, KeyHint, Role};
use crate::protocol::wire::DecryptError;

use super::*;

/// A parsed attachment header.
#[derive(Debug, Clone)]
pub struct Header {
    raw: Vec<u8>,
    format: Format,
    epoch: Epoch,
    /// Format 3: the padded plaintext stream's length.
    stream_len: Option<u64>,
    stanzas: Vec<Stanza>,
}

#[derive(Debug, Clone)]
struct Stanza {
    hint: KeyHint,
    direction: Direction,
    nonce: [u8; 12],
    wrapped: [u8; 48],
}

/// What opening a file needs once its header was unwrapped for this side:
/// the file key, the header it authenticated, and (format 3) which sender
/// tag is this side's and the key that checks it. Zeroized on drop.
pub struct OpenKey {
    file_key: FileKey,
    format: Format,
    header: Vec<u8>,
    stream_len: Option<u64>,
    recipients: usize,
    /// Format 3: this side's stanza index and sender key.
    sender: Option<(usize, MessageKey)>,
}

impl std::fmt::Debug for OpenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenKey")
            .field("format", &self.format)
            .field("recipients", &self.recipients)
            .finish_non_exhaustive()
    }
}

impl Header {
    /// Reads and parses the header from the start of an attachment.
    ///
    /// # Errors
    /// [`AttachmentError::NotAttachment`], [`AttachmentError::UnsupportedVersion`],
    /// [`AttachmentError::Malformed`], [`AttachmentError::Truncated`].
    pub fn read<R: Read>(input: &mut R) -> Result<Self> {
        let mut lead = [0u8; 10];
        read_exact_or(input, &mut lead, AttachmentError::NotAttachment)?;
        if &lead[..8] != MAGIC || lead[8] != KIND_FILE {
            if &lead[..8] == MAGIC && lead[8] == KIND_PART {
                return Err(AttachmentError::Malformed(
                    "this is one part of a multi-part attachment: give all parts",
                ));
            }
            return Err(AttachmentError::NotAttachment);
        }
        let format =
            Format::from_code(lead[9]).ok_or(AttachmentError::UnsupportedVersion(lead[9]))?;
        let mut raw = lead.to_vec();
        raw.resize(format.fixed_len(), 0);
        read_exact_or(
            input,
            &mut raw[10..],
            AttachmentError::Truncated { chunks: 0 },
        )?;
        let epoch = Epoch::from_bytes([raw[10], raw[11], raw[12]])
            .map_err(|_| AttachmentError::Malformed("invalid epoch"))?;
        let stream_len = match format {
            Format::V2 => None,
            Format::V3 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&raw[13..21]);
                Some(u64::from_be_bytes(len))
            }
        };
        let count = usize::from(raw[format.fixed_len() - 1]);
        if count == 0 || count > MAX_RECIPIENTS {
            return Err(AttachmentError::Malformed("invalid recipient count"));
        }
        if let Some(len) = stream_len
            && (len < MIN_PADDED_LEN || padded_len(len) != len)
        {
            return Err(AttachmentError::Malformed("invalid stream length"));
        }
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
            format,
            epoch,
            stream_len,
            stanzas,
        })
    }

    /// The month whose keys wrap the file key.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u8 {
        self.format.code()
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
    /// header was altered; [`DecryptError::Reflected`] for a file this side
    /// sent (all as [`AttachmentError::Header`]);
    /// [`AttachmentError::SenderUnprovable`] for a format 2 file with several
    /// recipients.
    pub fn unwrap(&self, chain: &EpochChain, role: Role, now: DateTime<Utc>) -> Result<OpenKey> {
        check_window(self.epoch, now).map_err(DecryptError::from)?;
        let key = chain
            .key_for(self.epoch)
            .ok_or(DecryptError::UnknownKeyHint)?;
        let hint = key.key_hint();
        let fixed = &self.raw[..self.format.fixed_len()];
        let mut result = Err(DecryptError::UnknownKeyHint.into());
        for (index, stanza) in self.stanzas.iter().enumerate() {
            if stanza.hint != hint {
                continue;
            }
            let wrap = key.file_wrap_key(stanza.direction);
            let aad = wrap_aad(self.format, fixed, &stanza.hint, stanza.direction);
            let Ok(plain) = Aes256Gcm::new(wrap.expose_bytes().into()).decrypt(
                Nonce::<U12>::from_slice(&stanza.nonce),
                AeadPayload {
                    msg: &stanza.wrapped,
                    aad: &aad,
                },
            ) else {
                result = Err(DecryptError::AuthenticationFailed.into());
                continue;
            };
            let plain = Zeroizing::new(plain);
            let Ok(bytes) = <&[u8; 32]>::try_from(plain.as_slice()) else {
                return Err(DecryptError::AuthenticationFailed.into());
            };
            let file_key = FileKey(SecretBox::new(Box::new(*bytes)));
            let (body, mac) = self.raw.split_at(self.raw.len() - HEADER_MAC_LEN);
            if !macs_equal(&file_key.header_mac(self.format, body), mac) {
                return Err(DecryptError::AuthenticationFailed.into());
            }
            if stanza.direction != role.inbound() {
                return Err(DecryptError::Reflected.into());
            }
            let sender = match self.format {
                Format::V2 if self.stanzas.len() > 1 => {
                    return Err(AttachmentError::SenderUnprovable);
                }
                Format::V2 => None,
                Format::V3 => Some((index, key.file_sender_key(stanza.direction))),
            };
            return Ok(OpenKey {
                file_key,
                format: self.format,
                header: self.raw.clone(),
                stream_len: self.stream_len,
                recipients: self.stanzas.len(),
                sender,
            });
        }
        result
    }
}

/// Decrypts the payload that follows the header in `input` into `output`.
/// `output` receives content as it is authenticated: write it to a temporary
/// file and keep it only if this returns `Ok` (the sender tag, format 3, is
/// checked last). `progress` is told the number of encrypted bytes read.
///
/// # Errors
/// Every kind of damage has its own [`AttachmentError`]; I/O errors.
pub fn decrypt<R: BufRead + Send, W: Write>(
    mut input: R,
    key: &OpenKey,
    output: W,
    progress: &mut dyn FnMut(u64),
) -> Result<Decrypted> {
    let cipher = key.file_key.payload_cipher(key.format);
    let chunk_aad: &[u8] = match key.format {
        Format::V2 => b"",
        Format::V3 => &key.header[key.header.len() - HEADER_MAC_LEN..],
    };
    // Format 3 announces the stream's length in the header: the layout is
    // known before the first chunk, so a short input reads as truncated.
    let known_layout = key.stream_len.map(layout_of).transpose()?;
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<Batch>>(2);
    let (free_tx, free_rx) = mpsc::sync_channel::<Batch>(3);
    let per_batch = batch_chunks(known_layout.map(|(chunks, _)| chunks));
    for _ in 0..3 {
        let _ = free_tx.send(Batch::new(per_batch));
    }
    let mut sink = PlainSink::new(output, key);
    std::thread::scope(|scope| -> Result<()> {
        let cipher = &cipher;
        // Reader: reads sealed chunks and decrypts them. In format 2, chunk 0
        // holds the metadata, which fixes the stream's length: from then on
        // the reader knows how many chunks to expect and how long the last
        // one is.
        scope.spawn(move || {
            let mut counter = 0u64;
            let mut layout: Option<(u64, usize)> = known_layout;
            loop {
                let Ok(mut batch) = free_rx.recv() else {
                    return;
                };
                batch.lens.clear();
                batch.first = counter;
                batch.last_in_stream = false;
                let outcome = (|| -> Result<()> {
                    for slot in 0..per_batch {
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
                        if known_layout.is_some() && got < want {
                            return Err(AttachmentError::Truncated { chunks: counter });
                        }
                        if got == TAG_LEN && at_end && counter > 0 {
                            return Err(AttachmentError::EmptyFinalChunk);
                        }
                        if got < want && layout.is_some() || got <= TAG_LEN {
                            return Err(AttachmentError::Truncated { chunks: counter });
                        }
                        // Before the layout is known (format 2, chunk 0), the
                        // end of the input decides whether this is the last
                        // chunk.
                        let last = if layout.is_some() { last } else { at_end };
                        let opened = open_chunk(
                            cipher,
                            chunk_aad,
                            &mut batch.buf[start..start + got],
                            counter,
                            last,
                        );
                        if let Err(err) = opened {
                            // The smallest format 2 file has one chunk of 4 KiB:
                            // anything shorter was cut, not altered.
                            if layout.is_none() && got < MIN_PADDED_LEN as usize + TAG_LEN {
                                return Err(AttachmentError::Truncated { chunks: 0 });
                            }
                            return Err(err);
                        }
                        let len = got - TAG_LEN;
                        if layout.is_none() {
                            let total =
                                stream_len_from_first_chunk(&batch.buf[start..start + len], 0)?;
                            let (chunks, last_len) = layout_of(total)?;
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
                                    last_chunk: counter - 1,
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

/// Chunks of a stream of `total` bytes, and the length of the last one.
fn layout_of(total: u64) -> Result<(u64, usize)> {
    let chunks = total.div_ceil(CHUNK_SIZE as u64);
    let last_len = usize::try_from(total - chunks.saturating_sub(1) * CHUNK_SIZE as u64)
        .map_err(|_| AttachmentError::Malformed("stream length"))?;
    Ok((chunks, last_len))
}

/// The padded stream length announced by the metadata at the start of the
/// (decrypted) first chunk of a format 2 file.
fn stream_len_from_first_chunk(plain: &[u8], tags: usize) -> Result<u64> {
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
    Ok(stream_len(4 + m, metadata.size, tags))
}

/// Opens one sealed chunk (data ‖ tag) in place at `counter`; on failure,
/// names what happened to it.
fn open_chunk(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &mut [u8],
    counter: u64,
    last: bool,
) -> Result<()> {
    let (data, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
    let tag = *Tag::from_slice(tag);
    let try_open = |data: &mut [u8], at: u64, last: bool| {
        cipher
            .decrypt_in_place_detached(
                Nonce::<U12>::from_slice(&chunk_nonce(at, last)),
                aad,
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
            last_chunk: counter,
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
                    chunk: counter,
                    copy_of: other,
                }
            } else {
                AttachmentError::Reordered {
                    chunk: counter,
                    belongs_at: other,
                }
            });
        }
    }
    Err(AttachmentError::ChunkModified { chunk: counter })
}

enum SinkState {
    Prefix(Vec<u8>),
    Content { left: u64 },
    Digest(Vec<u8>),
    Tags(Vec<u8>),
    Padding,
}

/// The plaintext stream of the decryptor: checks the layout, writes the
/// content, verifies the digest, keeps the sender tags and checks the
/// padding; [`PlainSink::finish`] checks this side's sender tag.
struct PlainSink<'a, W> {
    output: W,
    key: &'a OpenKey,
    state: SinkState,
    metadata: Option<Metadata>,
    prefix: Vec<u8>,
    hasher: Sha256,
    sha256: [u8; 32],
    tags: Vec<u8>,
    total: u64,
}

impl<'a, W: Write> PlainSink<'a, W> {
    fn new(output: W, key: &'a OpenKey) -> Self {
        Self {
            output,
            key,
            state: SinkState::Prefix(Vec::new()),
            metadata: None,
            prefix: Vec::new(),
            hasher: Sha256::new(),
            sha256: [0; 32],
            tags: Vec::new(),
            total: 0,
        }
    }

    fn tags_len(&self) -> usize {
        self.key.format.tags(self.key.recipients) * SENDER_TAG_LEN
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
                            self.prefix = std::mem::take(buf);
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
                        self.state = SinkState::Tags(Vec::new());
                    }
                }
                SinkState::Tags(buf) => {
                    let want = self.key.format.tags(self.key.recipients) * SENDER_TAG_LEN;
                    let take = (want - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if buf.len() == want {
                        self.tags = std::mem::take(buf);
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
        // A stream with no sender tags goes straight from its digest to
        // its padding.
        if let SinkState::Tags(buf) = &self.state
            && self.tags_len() == 0
            && buf.is_empty()
        {
            self.state = SinkState::Padding;
        }
        let (SinkState::Padding, Some(metadata)) = (&self.state, self.metadata.take()) else {
            return Err(AttachmentError::Malformed(
                "the stream ends before its content",
            ));
        };
        let expected = stream_len(
            self.prefix.len(),
            metadata.size,
            self.key.format.tags(self.key.recipients),
        );
        if self.total != expected || self.key.stream_len.is_some_and(|len| len != expected) {
            return Err(AttachmentError::Malformed("wrong padding length"));
        }
        if let Some((index, sender_key)) = &self.key.sender {
            let mine = self
                .tags
                .get(index * SENDER_TAG_LEN..(index + 1) * SENDER_TAG_LEN)
                .ok_or(AttachmentError::SenderUnverified)?;
            let expected = sender_tag(sender_key, &self.key.header, &self.prefix, &self.sha256);
            if !macs_equal(&expected, mine) {
                return Err(AttachmentError::SenderUnverified);
            }
        }
        Ok(Decrypted {
            metadata,
            sha256: self.sha256,
            file_id: file_id_of(&self.key.header),
        })
    }
}

//! ASCII armour: an encrypted file (or part) as text, for messengers that
//! refuse binary documents (the WhatsApp Cloud API takes `text/plain`, not
//! `application/octet-stream`). Wire-spec 10.7:
//!
//! ```text
//! -----BEGIN MEDCRYPT FILE-----
//! <standard base64 with padding, 64 characters a line>
//! -----END MEDCRYPT FILE-----
//! ```
//!
//! Both directions stream: any size passes in constant memory.

use std::io::{self, BufRead, Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::AttachmentError;

/// The first line of an armoured file.
pub const ARMOR_BEGIN: &str = "-----BEGIN MEDCRYPT FILE-----";
/// The last line of an armoured file.
pub const ARMOR_END: &str = "-----END MEDCRYPT FILE-----";
/// Base64 characters per full line.
const LINE: usize = 64;
/// Bytes a full line carries.
const LINE_BYTES: usize = LINE / 4 * 3;

/// Whether `head` (the first bytes of an input, at least 29 where it has
/// them) starts an armoured file, after optional leading white space.
pub fn is_armored(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    head[start..].starts_with(ARMOR_BEGIN.as_bytes())
}

/// Writes `input`'s bytes as armour to `output`, line by line.
pub struct ArmorWriter<W: Write> {
    output: W,
    pending: Vec<u8>,
}

impl<W: Write> ArmorWriter<W> {
    /// Starts the armour (writes the BEGIN line).
    ///
    /// # Errors
    /// I/O errors.
    pub fn new(mut output: W) -> io::Result<Self> {
        output.write_all(ARMOR_BEGIN.as_bytes())?;
        output.write_all(b"\n")?;
        Ok(Self {
            output,
            pending: Vec::with_capacity(LINE_BYTES),
        })
    }

    /// Writes the last line and the END line; returns the output.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() {
            let line = STANDARD.encode(&self.pending);
            self.output.write_all(line.as_bytes())?;
            self.output.write_all(b"\n")?;
            self.pending.clear();
        }
        self.output.write_all(ARMOR_END.as_bytes())?;
        self.output.write_all(b"\n")?;
        self.output.flush()?;
        Ok(self.output)
    }
}

impl<W: Write> Write for ArmorWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let take = (LINE_BYTES - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == LINE_BYTES {
                let line = STANDARD.encode(&self.pending);
                self.output.write_all(line.as_bytes())?;
                self.output.write_all(b"\n")?;
                self.pending.clear();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// Reads armour and yields the bytes it carries, checking every line
/// (wire-spec 10.7): the BEGIN line (after optional white space), lines of
/// exactly 64 characters but the last (1 to 64), canonical base64 with
/// padding only at the very end, the END line, then only white space. A
/// deviation is an I/O error of kind `InvalidData` whose message names it;
/// [`armor_error`] turns it into an [`AttachmentError`].
pub struct ArmorReader<R: BufRead> {
    input: R,
    decoded: Vec<u8>,
    position: usize,
    state: State,
    line: Vec<u8>,
    /// Whether the last line read ended with a line break.
    complete: bool,
}

#[derive(PartialEq, Eq)]
enum State {
    Begin,
    Body,
    /// A line shorter than 64 characters (or with padding) was read: only
    /// the END line may follow.
    LastRead,
    Done,
}

/// The messages an [`ArmorReader`] fails with.
const CUT: &str = "the armoured file ends before its END line";
const BAD: &str = "the ASCII armour is damaged";
const NOT: &str = "not ASCII armour";

impl<R: BufRead> ArmorReader<R> {
    /// Reads armour from `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
            decoded: Vec::with_capacity(LINE_BYTES),
            position: 0,
            state: State::Begin,
            line: Vec::with_capacity(LINE + 2),
            complete: false,
        }
    }

    /// The next line without its line ending (LF or CRLF); `None` at the end.
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        self.line.clear();
        let limit = (LINE + 2) as u64;
        let got = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.line)?;
        if got == 0 {
            return Ok(None);
        }
        self.complete = self.line.last() == Some(&b'\n');
        if self.complete {
            self.line.pop();
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        } else if got as u64 == limit {
            return Err(invalid(BAD));
        }
        Ok(Some(&self.line))
    }

    fn fill(&mut self) -> io::Result<()> {
        loop {
            match self.state {
                State::Done => return Ok(()),
                State::Begin => {
                    // Leading white space (blank lines, indentation) is allowed.
                    let line = loop {
                        match self.next_line()? {
                            None => return Err(invalid(CUT)),
                            Some(l) if l.iter().all(u8::is_ascii_whitespace) => {}
                            Some(l) => break l.to_vec(),
                        }
                    };
                    let trimmed: &[u8] = line.trim_ascii_start();
                    if trimmed != ARMOR_BEGIN.as_bytes() {
                        // A text that merely starts like armour is not a
                        // MedCrypt file at all (plaintext, for an agent).
                        return Err(invalid(NOT));
                    }
                    self.state = State::Body;
                }
                State::Body | State::LastRead => {
                    let last_read = self.state == State::LastRead;
                    let Some(line) = self.next_line()?.map(<[u8]>::to_vec) else {
                        return Err(invalid(CUT));
                    };
                    if line == ARMOR_END.as_bytes() {
                        // Only white space may follow.
                        let mut tail = [0u8; 512];
                        loop {
                            let n = self.input.read(&mut tail)?;
                            if n == 0 {
                                break;
                            }
                            if !tail[..n].iter().all(u8::is_ascii_whitespace) {
                                return Err(invalid(BAD));
                            }
                        }
                        self.state = State::Done;
                        return Ok(());
                    }
                    if !self.complete {
                        // The input ends inside a line that is not END.
                        return Err(invalid(CUT));
                    }
                    if last_read || line.is_empty() || line.len() > LINE {
                        return Err(invalid(BAD));
                    }
                    let short = line.len() < LINE || line.ends_with(b"=");
                    let bytes = STANDARD.decode(&line).map_err(|_| invalid(BAD))?;
                    self.decoded = bytes;
                    self.position = 0;
                    if short {
                        self.state = State::LastRead;
                    }
                    return Ok(());
                }
            }
        }
    }
}

impl<R: BufRead> Read for ArmorReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.decoded.len() {
            if self.state == State::Done {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = (self.decoded.len() - self.position).min(buf.len());
        buf[..n].copy_from_slice(&self.decoded[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The attachment error an armour failure stands for: a cut armour is
/// `truncated`, any other deviation `malformed`; other I/O errors stay.
pub fn armor_error(err: io::Error) -> AttachmentError {
    if err.kind() == io::ErrorKind::InvalidData {
        match err.get_ref().map(ToString::to_string).as_deref() {
            Some(CUT) => return AttachmentError::Truncated { chunks: 0 },
            Some(BAD) => return AttachmentError::Malformed("the ASCII armour is damaged"),
            Some(NOT) => return AttachmentError::NotAttachment,
            _ => {}
        }
    }
    AttachmentError::Io(err)
}

/// Decodes a whole armoured text held in memory (an agent's download).
///
/// # Errors
/// [`AttachmentError::Truncated`] or [`AttachmentError::Malformed`].
pub fn dearmor(text: &[u8]) -> Result<Vec<u8>, AttachmentError> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    ArmorReader::new(text)
        .read_to_end(&mut out)
        .map_err(armor_error)?;
    Ok(out)
}

/// Armours bytes held in memory.
pub fn armor(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 3 * 4 + bytes.len() / 48 + 64);
    if let Ok(mut writer) = ArmorWriter::new(&mut out) {
        let _ = writer.write_all(bytes);
        let _ = writer.finish();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_every_line_boundary_and_streams() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 95, 96, 97, 1000, 70_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let text = armor(&bytes);
            let as_text = std::str::from_utf8(&text).unwrap();
            assert!(as_text.starts_with(ARMOR_BEGIN));
            assert!(as_text.ends_with(&format!("{ARMOR_END}\n")));
            assert!(
                as_text
                    .lines()
                    .all(|l| l.len() <= 64 || l.starts_with("-----"))
            );
            assert_eq!(dearmor(&text).unwrap(), bytes, "{len}");
            // Read a byte at a time: the reader never needs the whole text.
            let mut reader = ArmorReader::new(std::io::BufReader::with_capacity(7, &text[..]));
            let mut out = Vec::new();
            let mut byte = [0u8; 1];
            while reader.read(&mut byte).unwrap() == 1 {
                out.push(byte[0]);
            }
            assert_eq!(out, bytes, "{len}");
        }
    }

    #[test]
    fn a_line_too_long_is_refused_without_reading_it_all() {
        let mut text = format!("{ARMOR_BEGIN}\n").into_bytes();
        text.extend(std::iter::repeat_n(b'A', 10_000_000));
        assert!(matches!(dearmor(&text), Err(AttachmentError::Malformed(_))));
        assert!(is_armored(b"\n  -----BEGIN MEDCRYPT FILE-----\n"));
        assert!(!is_armored(b"MEDCRYPTF\x03"));
    }
}

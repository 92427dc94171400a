//! `medcrypt attach encrypt|decrypt`: files through the streaming format,
//! to temporary files that are renamed only once everything authenticated.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use medcrypt::attachment::{
    AttachmentError, Decrypted, Header, Metadata, PART_HEADER_LEN, PartHeader, Recipient, Sealing,
    guess_mime, sanitize_file_name,
};
use medcrypt::store::{Protocol, Store};
use medcrypt::{DecryptError, Epoch, check_window};

/// Files above this size get a progress bar on a terminal.
const PROGRESS_THRESHOLD: u64 = 4 * 1024 * 1024;
const READ_BUFFER: usize = 1024 * 1024;

/// An error with a hint and an exit code, for `cli::report`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct AttachFailure {
    pub(crate) message: String,
    pub(crate) hint: &'static str,
    pub(crate) code: u8,
}

fn failure(message: impl Into<String>, hint: &'static str, code: u8) -> anyhow::Error {
    AttachFailure {
        message: message.into(),
        hint,
        code,
    }
    .into()
}

/// Exit code and hint for an attachment error (header errors are mapped by
/// the caller like message errors).
pub(crate) fn classify(err: &AttachmentError) -> Option<(u8, &'static str)> {
    Some(match err {
        AttachmentError::Header(_) => return None,
        AttachmentError::Truncated { .. } | AttachmentError::EmptyFinalChunk => (
            7,
            "the file is incomplete (an interrupted download?): download it again; for a split attachment give every part",
        ),
        AttachmentError::AppendedData { .. }
        | AttachmentError::Reordered { .. }
        | AttachmentError::Duplicated { .. }
        | AttachmentError::ChunkModified { .. } => (
            3,
            "the file was altered after it was encrypted: do not trust it; ask the sender to send it again",
        ),
        AttachmentError::NotAttachment => (
            7,
            "give the .medcrypt file received in the chat (or all of its parts)",
        ),
        AttachmentError::UnsupportedVersion(_) => {
            (7, "the sender uses a newer MedCrypt: update this one")
        }
        AttachmentError::Malformed(_) => {
            (7, "the file is damaged: ask the sender to send it again")
        }
        AttachmentError::InputChanged => (
            1,
            "the file changed while it was read: wait until it is complete and try again",
        ),
        AttachmentError::Recipients => (1, "give between 1 and 16 --to pairings"),
        AttachmentError::Io(_) => (
            1,
            "check the disk space and the permissions of the output directory",
        ),
    })
}

/// Parses a size such as `19M`, `19MB`, `19MiB`, `500K`, `2G` or `1000000`.
fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits.parse().map_err(|_| {
        failure(
            format!("{text:?} is not a size"),
            "use a size such as 19M (megabytes) or 19MiB",
            2,
        )
    })?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(failure(
                format!("unknown size unit in {text:?}"),
                "use K, M or G (or KiB, MiB, GiB)",
                2,
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| failure(format!("{text:?} is too large"), "use a smaller size", 2))
}

fn progress_bar(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if total < PROGRESS_THRESHOLD || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    Some(bar)
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A temporary file beside `final_path` (so the rename stays on one file
/// system), private, removed on drop unless kept.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
    keep: bool,
}

impl TempFile {
    fn beside(final_path: &Path) -> Result<Self> {
        let dir = final_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let path = dir.join(format!(".medcrypt-{}.tmp", random_suffix()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        Ok(Self {
            path,
            file: Some(file),
            keep: false,
        })
    }

    fn file(&mut self) -> Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| anyhow!("temporary file already closed"))
    }

    /// Syncs and moves the file to `dest`. Without `overwrite`, an existing
    /// `dest` is an error (a hard link cannot replace a file).
    fn persist(mut self, dest: &Path, overwrite: bool) -> Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all().context("cannot write the output to disk")?;
        }
        if overwrite {
            std::fs::rename(&self.path, dest)
                .with_context(|| format!("cannot write {}", dest.display()))?;
        } else {
            match std::fs::hard_link(&self.path, dest) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(failure(
                        format!("{} already exists", dest.display()),
                        "nothing was written; add --force to replace it, or choose another name with -o",
                        1,
                    ));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot write {}", dest.display()));
                }
            }
        }
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes one encrypted file as numbered parts, each with its part header.
struct PartWriter {
    parts: Vec<TempFile>,
    finals: Vec<PathBuf>,
    file_id: [u8; 16],
    payload_per_part: u64,
    left_in_part: u64,
    count: u16,
    writer: Option<BufWriter<File>>,
}

impl PartWriter {
    fn start_part(&mut self) -> std::io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        let index = self.parts.len() + 1;
        let mut temp = TempFile::beside(&self.finals[index - 1]).map_err(std::io::Error::other)?;
        let file = temp.file().map_err(std::io::Error::other)?.try_clone()?;
        let mut writer = BufWriter::with_capacity(READ_BUFFER, file);
        let header = PartHeader {
            file_id: self.file_id,
            index: u16::try_from(index).unwrap_or(u16::MAX),
            count: self.count,
        };
        writer.write_all(&header.to_bytes())?;
        self.parts.push(temp);
        self.writer = Some(writer);
        self.left_in_part = self.payload_per_part;
        Ok(())
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.writer.is_none() || self.left_in_part == 0 {
            self.start_part()?;
        }
        let take = usize::try_from(self.left_in_part)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no part"))?;
        let n = writer.write(&buf[..take])?;
        self.left_in_part -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

fn default_output_name(now: DateTime<Utc>) -> PathBuf {
    // Neutral: the original name travels only inside the encryption.
    PathBuf::from(format!(
        "attachment-{}-{}.medcrypt",
        now.format("%Y%m%d"),
        random_suffix()
    ))
}

fn part_path(output: &Path, index: u16, count: u16) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".medcrypt").unwrap_or(&name);
    let width = count.to_string().len().max(2);
    output.with_file_name(format!(
        "{stem}.part{index:0width$}of{count:0width$}.medcrypt"
    ))
}

/// `medcrypt attach encrypt`.
pub(crate) fn encrypt(
    store: &Store,
    now: DateTime<Utc>,
    to: &[String],
    input: &Path,
    output: Option<&Path>,
    part_size: Option<&str>,
) -> Result<()> {
    let epoch = Epoch::containing(now);
    let mut recipients = Vec::new();
    for alias in to {
        let pairing = store.pairing(alias)?;
        if pairing.protocol != Protocol::V2 {
            return Err(failure(
                format!("{alias:?} is a legacy v1 pairing, which has no attachments"),
                "pair anew with `medcrypt pair new` to send encrypted files",
                1,
            ));
        }
        let chain = store.chain(&pairing)?;
        let key = chain
            .key_for(epoch)
            .ok_or(medcrypt::SealError::NoKeyForEpoch(epoch))?
            .into_owned();
        recipients.push(Recipient {
            key,
            direction: pairing.role.outbound(),
        });
    }
    let file = File::open(input).with_context(|| format!("cannot read {}", input.display()))?;
    let size = file.metadata()?.len();
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".to_owned());
    let metadata = Metadata {
        mime: guess_mime(&name).to_owned(),
        name,
        size,
    };
    let sealing = Sealing::new(&metadata, &recipients)?;
    let total = sealing.total_len();
    let output = output.map_or_else(|| default_output_name(now), Path::to_path_buf);
    let reader = BufReader::with_capacity(READ_BUFFER, file);
    let bar = progress_bar(size, "encrypting");
    let mut progress = |done: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done.min(size));
        }
    };

    let written: Vec<PathBuf> = match part_size.map(parse_size).transpose()? {
        None => {
            if output.exists() {
                return Err(failure(
                    format!("{} already exists", output.display()),
                    "choose another name with -o",
                    1,
                ));
            }
            let mut temp = TempFile::beside(&output)?;
            let writer = BufWriter::with_capacity(READ_BUFFER, temp.file()?.try_clone()?);
            sealing.write(reader, writer, &mut progress)?;
            audit_sent(store, now, to, total, 1)?;
            temp.persist(&output, false)?;
            vec![output]
        }
        Some(limit) => {
            let count = PartHeader::count_for(total, limit).ok_or_else(|| {
                failure(
                    format!("cannot split {total} bytes into parts of {limit} bytes"),
                    "use a part size of at least a few kilobytes, e.g. --part-size 19M",
                    2,
                )
            })?;
            let finals: Vec<PathBuf> = (1..=count).map(|i| part_path(&output, i, count)).collect();
            if let Some(existing) = finals.iter().find(|p| p.exists()) {
                return Err(failure(
                    format!("{} already exists", existing.display()),
                    "choose another name with -o",
                    1,
                ));
            }
            let mut parts = PartWriter {
                parts: Vec::new(),
                finals: finals.clone(),
                file_id: sealing.file_id(),
                payload_per_part: limit - PART_HEADER_LEN as u64,
                left_in_part: 0,
                count,
                writer: None,
            };
            sealing.write(reader, &mut parts, &mut progress)?;
            parts.flush()?;
            drop(parts.writer.take());
            audit_sent(store, now, to, total, count)?;
            for (temp, path) in parts.parts.drain(..).zip(&finals) {
                temp.persist(path, false)?;
            }
            finals
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut stdout = std::io::stdout().lock();
    for path in &written {
        writeln!(stdout, "{}", path.display())?;
    }
    Ok(())
}

fn audit_sent(
    store: &Store,
    now: DateTime<Utc>,
    to: &[String],
    total: u64,
    parts: u16,
) -> Result<()> {
    store.audit(
        now,
        "attach_encrypt",
        &to.join(","),
        "ok",
        &[
            ("encrypted_bytes", total.to_string()),
            ("parts", parts.to_string()),
        ],
    )?;
    Ok(())
}

/// The inputs as one readable stream: a whole attachment, or its parts in
/// order (checked complete and from one file).
fn open_inputs(files: &[PathBuf]) -> Result<(Box<dyn Read + Send>, u64)> {
    let mut headers = Vec::new();
    for path in files {
        let mut file =
            File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut head = [0u8; PART_HEADER_LEN];
        let got = file.read(&mut head)?;
        headers.push((path.clone(), PartHeader::parse(&head[..got]), file));
    }
    let part_count = headers.iter().filter(|(_, h, _)| h.is_some()).count();
    if part_count == 0 {
        let [(path, _, mut file)] = <[_; 1]>::try_from(headers).map_err(|_| {
            failure(
                "several attachments given at once",
                "decrypt one attachment at a time (or give all parts of one split attachment)",
                2,
            )
        })?;
        file.seek(SeekFrom::Start(0))?;
        let len = file.metadata()?.len();
        let _ = path;
        return Ok((Box::new(file), len));
    }
    if part_count != headers.len() {
        return Err(failure(
            "a whole attachment and parts were given together",
            "give either one .medcrypt file or all parts of one split attachment",
            2,
        ));
    }
    // All parts: one file id, one count, every index once.
    let first = headers
        .iter()
        .filter_map(|(_, h, _)| *h)
        .min_by_key(|h| h.index)
        .ok_or_else(|| anyhow!("no part"))?;
    let mut slots: Vec<Option<(PathBuf, File)>> = (0..first.count).map(|_| None).collect();
    for (path, header, file) in headers {
        let Some(header) = header else { continue };
        if header.file_id != first.file_id || header.count != first.count {
            return Err(failure(
                format!("{} is a part of another attachment", path.display()),
                "give only the parts of one attachment (they were sent together)",
                7,
            ));
        }
        slots[usize::from(header.index) - 1] = Some((path, file));
    }
    let missing: Vec<String> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if !missing.is_empty() {
        return Err(failure(
            format!("part {} of {} is missing", missing.join(", "), first.count),
            "download every part of the attachment and give them all",
            7,
        ));
    }
    let mut total = 0u64;
    let mut chained: Box<dyn Read + Send> = Box::new(std::io::empty());
    for (_, file) in slots.into_iter().flatten() {
        total += file.metadata()?.len() - PART_HEADER_LEN as u64;
        chained = Box::new(chained.chain(file)); // each file is positioned after its header
    }
    Ok((chained, total))
}

/// `medcrypt attach decrypt`.
pub(crate) fn decrypt(
    store: &Store,
    now: DateTime<Utc>,
    files: &[PathBuf],
    output: Option<&Path>,
    out_dir: Option<&Path>,
    force: bool,
) -> Result<()> {
    let result = decrypt_inner(store, now, files, output, out_dir, force);
    if let Err(err) = &result {
        let kind = err
            .downcast_ref::<AttachmentError>()
            .map(AttachmentError::kind)
            .or_else(|| err.downcast_ref::<DecryptError>().map(DecryptError::kind));
        if let Some(kind) = kind {
            store.audit(
                now,
                "attach_decrypt_failed",
                "",
                "rejected",
                &[("kind", kind.to_owned())],
            )?;
        }
    }
    result
}

fn decrypt_inner(
    store: &Store,
    now: DateTime<Utc>,
    files: &[PathBuf],
    output: Option<&Path>,
    out_dir: Option<&Path>,
    force: bool,
) -> Result<()> {
    let (input, encrypted_len) = open_inputs(files)?;
    let mut input = BufReader::with_capacity(READ_BUFFER, input);
    let header = Header::read(&mut input)?;
    check_window(header.epoch(), now).map_err(DecryptError::from)?;
    let mut found = None;
    let mut last_error = DecryptError::UnknownKeyHint;
    for pairing in store
        .pairings()?
        .into_iter()
        .filter(|p| p.protocol == Protocol::V2)
    {
        let chain = store.chain(&pairing)?;
        match header.unwrap(&chain, pairing.role, now) {
            Ok(key) => {
                found = Some((pairing, key));
                break;
            }
            Err(DecryptError::UnknownKeyHint) => {}
            Err(err) => last_error = err,
        }
    }
    let (pairing, key) = found.ok_or(AttachmentError::Header(last_error))?;

    let dir = match (output, out_dir) {
        (Some(path), _) => path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        (None, Some(dir)) => dir.to_path_buf(),
        (None, None) => PathBuf::from("."),
    };
    let mut temp = TempFile::beside(&dir.join("x"))?;
    let writer = BufWriter::with_capacity(READ_BUFFER, temp.file()?.try_clone()?);
    let bar = progress_bar(encrypted_len, "decrypting");
    let mut progress = |done: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done.min(encrypted_len));
        }
    };
    let Decrypted { metadata, sha256 } =
        medcrypt::attachment::decrypt(input, &key, writer, &mut progress)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let dest = match output {
        Some(path) => path.to_path_buf(),
        None => dir.join(sanitize_file_name(&metadata.name)),
    };
    store.audit(
        now,
        "attach_decrypt",
        &pairing.alias,
        "ok",
        &[("size", metadata.size.to_string())],
    )?;
    temp.persist(&dest, force)?;
    writeln!(
        std::io::stdout().lock(),
        "{} ({} bytes, {}) from {:?}\nSHA-256 {}",
        dest.display(),
        metadata.size,
        metadata.mime,
        pairing.alias,
        hex::encode(sha256)
    )?;
    Ok(())
}

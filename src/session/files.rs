//! Files in and out of the attachment format: encrypting a file for one or
//! more pairings (whole or in numbered parts), decrypting a file or all its
//! parts, and the file-system care both need — private temporary files
//! beside the destination, renamed into place only when complete.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use chrono::{DateTime, Utc};
use zeroize::{Zeroize as _, Zeroizing};

use crate::protocol::attachment::{
    self, ArmorReader, ArmorWriter, Assembly, AttachmentError, Decrypted, Header, Metadata,
    PART_HEADER_LEN, PartError, PartHeader, Recipient, Sealing, guess_mime, sanitize_file_name,
};
use crate::protocol::epoch::{Epoch, check_window};
use crate::protocol::wire::{DecryptError, SealError};
use crate::store::{Incoming, Protocol, Receipt, TEMPORARY_PREFIX, Via};

use super::{Error, ErrorKind, Result, Session};

const READ_BUFFER: usize = 1024 * 1024;

/// Where a decrypted file goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// Exactly this path.
    File(&'a Path),
    /// The original name, in this directory.
    Dir(&'a Path),
}

/// Where [`Session::decrypt_file_inner`] writes.
enum Output<'a> {
    /// A file.
    Disk {
        destination: Destination<'a>,
        force: bool,
    },
    /// Memory only.
    Memory(&'a mut Zeroizing<Vec<u8>>),
}

/// A decrypted file, written in place (or kept in memory: `path` empty).
#[derive(Debug)]
pub struct DecryptedFile {
    /// Where it was written.
    pub path: PathBuf,
    /// Name, type and size from inside the encryption.
    pub metadata: Metadata,
    /// SHA-256 of the content, verified.
    pub sha256: [u8; 32],
    /// The pairing whose key proved who made it.
    pub alias: String,
    /// That pairing's display name of the other side (the physician's
    /// name on a patient's store), if known.
    pub peer_name: String,
    /// Decrypted before, at this time (RFC 3339): the same file again.
    pub received_before: Option<String>,
}

impl DecryptedFile {
    fn new(
        path: PathBuf,
        metadata: Metadata,
        sha256: [u8; 32],
        pairing: crate::store::PairingInfo,
        receipt: Receipt,
    ) -> Self {
        Self {
            path,
            metadata,
            sha256,
            alias: pairing.alias,
            peer_name: pairing.peer_name,
            received_before: match receipt {
                Receipt::Again(item) => Some(item.received_at),
                Receipt::New { .. } => None,
            },
        }
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Temporaries of this process not yet renamed into place: what a signal
/// handler removes before the process exits.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes every temporary file and directory this process made and has
/// not yet renamed into place. For signal handlers (Ctrl-C, SIGTERM,
/// SIGHUP): nothing half-written, plaintext included, outlives the process.
pub fn remove_live_temporaries() {
    for path in live().drain(..) {
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A name for a new temporary in `dir`: recognisable as MedCrypt's (and
/// this process's), random, hidden.
/// A new temporary name in `dir`, absolute: the store notes it, and the
/// command that cleans up after a crash may run from another directory.
fn temporary_path(dir: &Path) -> PathBuf {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_owned())
    });
    dir.join(format!(
        "{TEMPORARY_PREFIX}{}-{}",
        std::process::id(),
        random_suffix()
    ))
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A private temporary file or directory beside a destination (so the
/// rename stays on one file system). Noted in the store before it exists,
/// so that the next command removes it after a crash; removed on drop and
/// on Ctrl-C unless persisted.
#[derive(Debug)]
pub struct TempFile<'a> {
    session: &'a Session,
    path: PathBuf,
    file: Option<File>,
    keep: bool,
}

impl<'a> TempFile<'a> {
    /// Creates a temporary file in the directory of `final_path`.
    ///
    /// # Errors
    /// The directory cannot be written; database errors.
    pub fn beside(session: &'a Session, final_path: &Path) -> Result<Self> {
        let dir = dir_of(final_path);
        let path = temporary_path(dir);
        session.store.register_temporary(&path, session.now())?;
        live().push(path.clone());
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        // Made first, so that a failure below still forgets the path.
        let mut temp = Self {
            session,
            path,
            file: None,
            keep: false,
        };
        let file = options.open(&temp.path).map_err(Error::io(format!(
            "cannot create a file in {}",
            dir.display()
        )))?;
        temp.file = Some(file);
        Ok(temp)
    }

    /// Creates a private temporary directory beside `final_path`.
    ///
    /// # Errors
    /// The directory cannot be created; database errors.
    pub fn dir_beside(session: &'a Session, final_path: &Path) -> Result<Self> {
        let path = temporary_path(dir_of(final_path));
        session.store.register_temporary(&path, session.now())?;
        live().push(path.clone());
        let temp = Self {
            session,
            path,
            file: None,
            keep: false,
        };
        super::escrow::create_private_dir(&temp.path)?;
        Ok(temp)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    ///
    /// # Errors
    /// After it was persisted, or for a directory.
    pub fn file(&mut self) -> Result<&mut File> {
        self.file.as_mut().ok_or_else(|| {
            Error::io("temporary file already closed")(std::io::Error::other("closed"))
        })
    }

    fn forget(&self) {
        live().retain(|p| p != &self.path);
        let _ = self.session.store.release_temporary(&self.path);
    }

    /// Syncs and moves it to `dest`. Without `overwrite`, an existing
    /// `dest` is an error (a hard link cannot replace a file; a directory is
    /// renamed only where nothing is).
    ///
    /// # Errors
    /// `dest` exists (without `overwrite`), or the disk failed.
    pub fn persist(mut self, dest: &Path, overwrite: bool) -> Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()
                .map_err(Error::io("cannot write the output to disk"))?;
        }
        let exists = || {
            Error::refused(
                format!("{} already exists", dest.display()),
                "nothing was written; add --force to replace it, or choose another name with -o",
            )
        };
        if self.path.is_dir() {
            if dest.exists() {
                return Err(exists());
            }
            std::fs::rename(&self.path, dest)
                .map_err(Error::io(format!("cannot create {}", dest.display())))?;
        } else if overwrite {
            std::fs::rename(&self.path, dest)
                .map_err(Error::io(format!("cannot write {}", dest.display())))?;
        } else {
            match std::fs::hard_link(&self.path, dest) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
                Err(e) => {
                    return Err(Error::io(format!("cannot write {}", dest.display()))(e));
                }
            }
        }
        self.keep = true;
        self.forget();
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.keep {
            drop(self.file.take());
            if self.path.is_dir() {
                let _ = std::fs::remove_dir_all(&self.path);
            } else {
                let _ = std::fs::remove_file(&self.path);
            }
            self.forget();
        }
    }
}

impl Session {
    /// Writes `bytes` to `path` (mode 0600: what MedCrypt writes holds
    /// secrets or health data) through a temporary file in the same
    /// directory, noted in the store, and a rename: `path` is either
    /// complete or absent, and a temporary left by a crash is removed by
    /// the next command.
    ///
    /// # Errors
    /// The file cannot be written; database errors.
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        if path.file_name().is_none() {
            return Err(Error::usage(
                format!("{} is not a file name", path.display()),
                "give a file path",
            ));
        }
        let mut temp = TempFile::beside(self, path)?;
        temp.file()?
            .write_all(bytes)
            .map_err(Error::io(format!("cannot write {}", path.display())))?;
        temp.persist(path, true)
    }
}

/// A path in `dir` for `name` that does not exist yet: "name", "name (2)", …
pub fn free_path(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
        _ => (name.to_owned(), String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(candidate)
}

/// Writes one encrypted file as numbered parts, each with its part header.
struct PartWriter<'a> {
    session: &'a Session,
    parts: Vec<TempFile<'a>>,
    finals: Vec<PathBuf>,
    file_id: [u8; 16],
    payload_per_part: u64,
    left_in_part: u64,
    count: u16,
    writer: Option<BufWriter<File>>,
}

impl PartWriter<'_> {
    fn start_part(&mut self) -> std::io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        let index = self.parts.len() + 1;
        let mut temp = TempFile::beside(self.session, &self.finals[index - 1])
            .map_err(std::io::Error::other)?;
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

impl Write for PartWriter<'_> {
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

fn default_output_name(now: DateTime<Utc>, armored: bool) -> PathBuf {
    // Neutral: the original name travels only inside the encryption.
    PathBuf::from(format!(
        "attachment-{}-{}.medcrypt{}",
        now.format("%Y%m%d"),
        random_suffix(),
        if armored { ".txt" } else { "" }
    ))
}

/// How an encrypted file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One binary `.medcrypt` file.
    Whole,
    /// One ASCII-armoured file (wire-spec 10.7), for messengers that take
    /// only text documents.
    Armored,
    /// Numbered parts of at most this many bytes, headers included.
    Parts(u64),
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

/// Progress of a long operation: bytes done of a known total.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

impl Session {
    /// The recipients of a file sent now to the pairings `to`.
    pub(super) fn recipients(&self, to: &[String]) -> Result<Vec<Recipient>> {
        let mut recipients = Vec::new();
        let mut epoch: Option<Epoch> = None;
        for alias in to {
            let pairing = self.store.pairing(alias)?;
            if pairing.protocol != Protocol::V2 {
                return Err(Error::refused(
                    format!("{alias:?} is a legacy v1 pairing, which has no attachments"),
                    "pair anew with `medcrypt pair new` to send encrypted files",
                ));
            }
            let chain = self.store.chain(&pairing)?;
            // Every recipient's own sending month (wire-spec 2); one file
            // has one month, so recipients whose months differ (a pairing
            // that begins next month, minutes before it does) are refused.
            let mine = chain.sending_epoch(self.now());
            if epoch.is_some_and(|e| e != mine) {
                return Err(Error::usage(
                    format!(
                        "{alias:?} begins in {mine}, the other recipients write in another month"
                    ),
                    "send the file to it separately, or wait until its month begins",
                ));
            }
            let epoch = *epoch.get_or_insert(mine);
            let key = chain
                .key_for(epoch)
                .ok_or(SealError::NoKeyForEpoch(epoch))?
                .into_owned();
            recipients.push(Recipient {
                key,
                direction: pairing.role.outbound(),
            });
        }
        Ok(recipients)
    }

    /// Encrypts the file `input` for the pairings `to` into `output` (a
    /// neutral name in the current directory by default), or into numbered
    /// parts of at most `part_size` bytes. Returns the files written.
    ///
    /// # Errors
    /// Unknown or legacy pairings, an output that exists, I/O errors.
    pub fn encrypt_file(
        &self,
        to: &[String],
        input: &Path,
        output: Option<&Path>,
        layout: Layout,
        progress: Progress<'_>,
    ) -> Result<Vec<PathBuf>> {
        if input.is_dir() {
            return Err(Error::usage(
                format!("{} is a directory", input.display()),
                "give a file (to send a folder, make an archive of it first, e.g. zip)",
            ));
        }
        let file =
            File::open(input).map_err(Error::io(format!("cannot read {}", input.display())))?;
        let size = file
            .metadata()
            .map_err(Error::io(format!("cannot read {}", input.display())))?
            .len();
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".to_owned());
        let reader = BufReader::with_capacity(READ_BUFFER, file);
        self.encrypt_from(to, &name, size, reader, output, layout, progress)
    }

    /// Encrypts `bytes` (a note typed or piped in, never written to disk in
    /// plaintext) as the attachment `name`, like [`Session::encrypt_file`].
    ///
    /// # Errors
    /// As [`Session::encrypt_file`].
    pub fn encrypt_bytes(
        &self,
        to: &[String],
        name: &str,
        bytes: &[u8],
        output: Option<&Path>,
        layout: Layout,
        progress: Progress<'_>,
    ) -> Result<Vec<PathBuf>> {
        let size = bytes.len() as u64;
        self.encrypt_from(to, name, size, bytes, output, layout, progress)
    }

    #[allow(clippy::too_many_arguments)]
    fn encrypt_from(
        &self,
        to: &[String],
        name: &str,
        size: u64,
        reader: impl Read + Send,
        output: Option<&Path>,
        layout: Layout,
        progress: Progress<'_>,
    ) -> Result<Vec<PathBuf>> {
        let now = self.now();
        let recipients = self.recipients(to)?;
        let metadata = Metadata {
            mime: guess_mime(name).to_owned(),
            name: name.to_owned(),
            size,
        };
        let sealing = Sealing::new(&metadata, &recipients)?;
        let total = sealing.total_len();
        let armored = matches!(layout, Layout::Armored);
        let output = output.map_or_else(|| default_output_name(now, armored), Path::to_path_buf);
        let mut progress = |done: u64| progress(done.min(size), size);
        let io = |what: &str| Error::io(format!("cannot write {what}"));

        let written = match layout {
            Layout::Armored => {
                if output.exists() {
                    return Err(Error::refused(
                        format!("{} already exists", output.display()),
                        "choose another name with -o",
                    ));
                }
                let mut temp = TempFile::beside(self, &output)?;
                let clone = temp.file()?.try_clone().map_err(io("the output"))?;
                let mut writer = ArmorWriter::new(BufWriter::with_capacity(READ_BUFFER, clone))
                    .map_err(io("the output"))?;
                sealing.write(reader, &mut writer, &mut progress)?;
                writer.finish().map_err(io("the output"))?;
                temp.persist(&output, false)?;
                vec![output]
            }
            Layout::Whole => {
                if output.exists() {
                    return Err(Error::refused(
                        format!("{} already exists", output.display()),
                        "choose another name with -o",
                    ));
                }
                let mut temp = TempFile::beside(self, &output)?;
                let clone = temp.file()?.try_clone().map_err(io("the output"))?;
                let writer = BufWriter::with_capacity(READ_BUFFER, clone);
                sealing.write(reader, writer, &mut progress)?;
                temp.persist(&output, false)?;
                vec![output]
            }
            Layout::Parts(limit) => {
                let count = PartHeader::count_for(total, limit).ok_or_else(|| {
                    Error::usage(
                        format!("cannot split {total} bytes into parts of {limit} bytes"),
                        "use a part size of at least a few kilobytes, e.g. --part-size 19M",
                    )
                })?;
                let finals: Vec<PathBuf> =
                    (1..=count).map(|i| part_path(&output, i, count)).collect();
                if let Some(existing) = finals.iter().find(|p| p.exists()) {
                    return Err(Error::refused(
                        format!("{} already exists", existing.display()),
                        "choose another name with -o",
                    ));
                }
                let mut parts = PartWriter {
                    session: self,
                    parts: Vec::new(),
                    finals: finals.clone(),
                    file_id: sealing.file_id(),
                    payload_per_part: limit - PART_HEADER_LEN as u64,
                    left_in_part: 0,
                    count,
                    writer: None,
                };
                sealing.write(reader, &mut parts, &mut progress)?;
                parts.flush().map_err(io("the parts"))?;
                drop(parts.writer.take());
                let mut persisted = Vec::new();
                for (temp, path) in parts.parts.drain(..).zip(&finals) {
                    if let Err(err) = temp.persist(path, false) {
                        remove_all(&persisted);
                        return Err(err);
                    }
                    persisted.push(path.clone());
                }
                finals
            }
        };
        // Audited once the output exists; if that cannot be recorded, the
        // output goes (fail closed).
        let parts = u16::try_from(written.len()).unwrap_or(u16::MAX);
        if let Err(err) = self.audit_sent(to, total, parts) {
            remove_all(&written);
            return Err(err);
        }
        Ok(written)
    }

    fn audit_sent(&self, to: &[String], total: u64, parts: u16) -> Result<()> {
        Ok(self.store.audit(
            self.now(),
            "attach_encrypt",
            &to.join(","),
            "ok",
            &[
                ("encrypted_bytes", total.to_string()),
                ("parts", parts.to_string()),
            ],
        )?)
    }

    /// Decrypts an attachment (or every part of one, in any order) into
    /// `destination`; nothing is written unless everything authenticated.
    /// A failure is audited with its kind.
    ///
    /// # Errors
    /// Every kind of damage, a file not for this store, an existing output
    /// (without `force`), I/O errors.
    pub fn decrypt_file(
        &self,
        files: &[PathBuf],
        destination: Destination<'_>,
        force: bool,
        progress: Progress<'_>,
    ) -> Result<DecryptedFile> {
        let result = self.decrypt_file_inner(files, Output::Disk { destination, force }, progress);
        self.audit_decrypt_failure(&result)?;
        result
    }

    /// Decrypts an attachment (or every part of one) into memory, for the
    /// app: no plaintext is written to disk, and what was decrypted before
    /// a failure is wiped. Recorded and audited as [`Session::decrypt_file`].
    ///
    /// # Errors
    /// As [`Session::decrypt_file`].
    pub fn decrypt_file_in_memory(
        &self,
        files: &[PathBuf],
    ) -> Result<(Zeroizing<Vec<u8>>, DecryptedFile)> {
        let mut content = Zeroizing::new(Vec::new());
        let result = self.decrypt_file_inner(files, Output::Memory(&mut content), &mut |_, _| {});
        self.audit_decrypt_failure(&result)?;
        result.map(|file| (content, file))
    }

    /// A failed decryption is audited with its kind.
    fn audit_decrypt_failure(&self, result: &Result<DecryptedFile>) -> Result<()> {
        let kind = match result {
            Err(Error::Attachment(e)) => Some(e.kind()),
            Err(Error::Decrypt(e)) => Some(e.kind()),
            _ => None,
        };
        if let Some(kind) = kind {
            self.store.audit(
                self.now(),
                "attach_decrypt_failed",
                "",
                "rejected",
                &[("kind", kind.to_owned())],
            )?;
        }
        Ok(())
    }

    fn decrypt_file_inner(
        &self,
        files: &[PathBuf],
        output: Output<'_>,
        progress: Progress<'_>,
    ) -> Result<DecryptedFile> {
        let now = self.now();
        let (input, encrypted_len) = open_inputs(files)?;
        let mut input = BufReader::with_capacity(READ_BUFFER, input);
        let header = Header::read(&mut input)?;
        check_window(header.epoch(), now).map_err(DecryptError::from)?;
        let mut found = None;
        let mut last_error = Error::Decrypt(DecryptError::UnknownKeyHint);
        for pairing in self
            .store
            .pairings()?
            .into_iter()
            .filter(|p| p.protocol == Protocol::V2)
        {
            let chain = self.store.chain(&pairing)?;
            match header.unwrap(&chain, pairing.role, now) {
                Ok(key) => {
                    found = Some((pairing, key));
                    break;
                }
                Err(AttachmentError::Header(DecryptError::UnknownKeyHint)) => {}
                Err(err) => last_error = err.into(),
            }
        }
        let (pairing, key) = found.ok_or(last_error)?;
        let (destination, force) = match output {
            Output::Disk { destination, force } => (destination, force),
            Output::Memory(buffer) => {
                // Room for all of it at once (never more than the encrypted
                // size): no reallocation leaves a copy behind.
                buffer.reserve_exact(usize::try_from(encrypted_len).unwrap_or(0));
                let epoch = header.epoch();
                let opened =
                    crate::protocol::attachment::decrypt(input, &key, &mut **buffer, &mut |_| {});
                let receipt = opened.map_err(Error::from).and_then(|d| {
                    let receipt = self.store.receive(
                        &pairing,
                        Incoming::file(Via::File, epoch, &d.file_id, &d.metadata, None),
                        now,
                    )?;
                    Ok((d, receipt))
                });
                let (
                    Decrypted {
                        metadata, sha256, ..
                    },
                    receipt,
                ) = match receipt {
                    Ok(done) => done,
                    Err(err) => {
                        buffer.zeroize();
                        return Err(err);
                    }
                };
                return Ok(DecryptedFile::new(
                    PathBuf::new(),
                    metadata,
                    sha256,
                    pairing,
                    receipt,
                ));
            }
        };

        // The output is checked now, before a large file is decrypted.
        match destination {
            Destination::File(path) if path.is_dir() => {
                return Err(Error::usage(
                    format!("{} is a directory", path.display()),
                    "give a file name with -o, or use --out-dir DIR to keep the original name",
                ));
            }
            Destination::File(path) if !force && path.exists() => {
                return Err(Error::refused(
                    format!("{} already exists", path.display()),
                    "nothing was written; add --force to replace it, or choose another name with -o",
                ));
            }
            Destination::Dir(dir) if dir.exists() && !dir.is_dir() => {
                return Err(Error::usage(
                    format!("{} is a file, not a directory", dir.display()),
                    "give a directory with --out-dir, or a file name with -o",
                ));
            }
            Destination::Dir(dir) if !dir.exists() => {
                super::escrow::create_private_dir(dir)?;
            }
            _ => {}
        }
        let dir = match destination {
            Destination::File(path) => path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            Destination::Dir(dir) => dir.to_path_buf(),
        };
        let mut temp = TempFile::beside(self, &dir.join("x"))?;
        let clone = temp
            .file()?
            .try_clone()
            .map_err(Error::io("cannot write the output"))?;
        let writer = BufWriter::with_capacity(READ_BUFFER, clone);
        let mut progress = |done: u64| progress(done.min(encrypted_len), encrypted_len);
        let epoch = header.epoch();
        let Decrypted {
            metadata,
            sha256,
            file_id,
        } = crate::protocol::attachment::decrypt(input, &key, writer, &mut progress)?;
        // A name the sender chose never replaces a file: "name (2)" instead.
        // Only a path the user gave may be replaced, and only with --force.
        let (dest, overwrite) = match destination {
            Destination::File(path) => (path.to_path_buf(), force),
            Destination::Dir(dir) => (free_path(dir, &sanitize_file_name(&metadata.name)), false),
        };
        temp.persist(&dest, overwrite)?;
        // Recorded (and audited) once the output exists; if that fails, the
        // output goes.
        let saved_as = dest.display().to_string();
        let receipt = self.store.receive(
            &pairing,
            Incoming::file(Via::File, epoch, &file_id, &metadata, Some(&saved_as)),
            now,
        );
        let receipt = match receipt {
            Ok(receipt) => receipt,
            Err(err) => {
                let _ = std::fs::remove_file(&dest);
                return Err(err.into());
            }
        };
        Ok(DecryptedFile::new(dest, metadata, sha256, pairing, receipt))
    }
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// A part error in the person's words, naming the file it is about.
fn part_error(err: &PartError, files: &[PathBuf]) -> Error {
    let name = |input: usize| {
        files.get(input).map_or_else(
            || format!("input {}", input + 1),
            |p| p.display().to_string(),
        )
    };
    let (message, hint, kind) = match err {
        PartError::SeveralFiles => (
            "several attachments given at once".to_owned(),
            "decrypt one attachment at a time (or give all parts of one split attachment)",
            ErrorKind::Usage,
        ),
        PartError::Mixed { input } => (
            format!(
                "{} is a whole attachment, but the other files given are parts",
                name(*input)
            ),
            "give either one .medcrypt file or all parts of one split attachment",
            ErrorKind::Usage,
        ),
        PartError::Foreign { input } => (
            format!("{} is a part of another attachment", name(*input)),
            "give only the parts of one attachment (they were sent together)",
            ErrorKind::Damaged,
        ),
        PartError::Missing { missing, count } => (
            format!(
                "part {} of {count} is missing",
                missing
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "download every part of the attachment and give them all",
            ErrorKind::Damaged,
        ),
        PartError::Duplicate { input, index } => (
            format!(
                "{} is part {index} again: that part was given twice",
                name(*input)
            ),
            "give each part once",
            ErrorKind::Usage,
        ),
        PartError::UnsupportedVersion { input, version } => (
            format!(
                "{} is a part of a newer kind (part version {version}) that this MedCrypt cannot read",
                name(*input)
            ),
            "update MedCrypt, or ask the sender to send the file again",
            ErrorKind::Damaged,
        ),
        PartError::Truncated { input } => (
            format!("{} is cut short inside its part header", name(*input)),
            "download the part again",
            ErrorKind::Damaged,
        ),
        PartError::BadIndex {
            input,
            index,
            count,
        } => (
            format!(
                "{} claims to be part {index} of {count}, which cannot be: it was damaged",
                name(*input)
            ),
            "download the part again, or ask the sender to send the file again",
            ErrorKind::Damaged,
        ),
        PartError::CountMismatch {
            input,
            count,
            expected,
        } => (
            format!(
                "{} says the attachment has {count} parts, but the first part said {expected}",
                name(*input)
            ),
            "download the parts again, or ask the sender to send the file again",
            ErrorKind::Damaged,
        ),
    };
    Error::of_kind(kind, format!("{message} ({})", err.kind()), hint)
}

/// The inputs as one readable stream: a whole attachment, or its parts in
/// order (checked complete and from one file).
fn open_inputs(files: &[PathBuf]) -> Result<(Box<dyn Read + Send>, u64)> {
    let read_err = |path: &Path| Error::io(format!("cannot read {}", path.display()));
    // Each input is read from the start once (it may be a pipe): the first
    // bytes that tell a part from a whole file are kept and put back.
    let mut headers = Vec::new();
    for path in files {
        let file = File::open(path).map_err(read_err(path))?;
        let len = file.metadata().map_err(read_err(path))?.len();
        // Binary or ASCII-armoured (wire-spec 10.7): the armour is taken
        // off as the file is read.
        let mut buffered = BufReader::with_capacity(READ_BUFFER, file);
        let peek = buffered.fill_buf().map_err(read_err(path))?;
        let mut reader: Box<dyn Read + Send> = if attachment::is_armored(peek) {
            Box::new(ArmorReader::new(buffered))
        } else {
            Box::new(buffered)
        };
        let mut head = vec![0u8; PART_HEADER_LEN];
        let got = crate::protocol::attachment::read_full(&mut reader, &mut head)
            .map_err(|e| Error::from(AttachmentError::Io(e)))?;
        head.truncate(got);
        let part = PartHeader::parse(&head);
        headers.push((path.clone(), part, head, (reader, len)));
    }
    let heads: Vec<&[u8]> = headers
        .iter()
        .map(|(_, _, head, _)| head.as_slice())
        .collect();
    let order = match attachment::assemble(&heads) {
        Ok(Assembly::Whole) => {
            // `assemble` says `Whole` of exactly one input.
            let Some((_, _, head, (reader, len))) = headers.into_iter().next() else {
                return Err(part_error(&PartError::SeveralFiles, files));
            };
            return Ok((Box::new(std::io::Cursor::new(head).chain(reader)), len));
        }
        Ok(Assembly::Parts(order)) => order,
        Err(err) => return Err(part_error(&err, files)),
    };
    let mut inputs: Vec<Option<(Box<dyn Read + Send>, u64)>> = headers
        .into_iter()
        .map(|(_, _, _, input)| Some(input))
        .collect();
    let mut total = 0u64;
    let mut chained: Box<dyn Read + Send> = Box::new(std::io::empty());
    for (reader, len) in order.iter().filter_map(|&i| inputs[i].take()) {
        total += len.saturating_sub(PART_HEADER_LEN as u64);
        chained = Box::new(chained.chain(reader)); // each input is positioned after its header
    }
    Ok((chained, total))
}

//! The local store: one SQLite file holding pairings, epoch keys, sequence
//! numbers and replay state, every secret column encrypted under a master key.
//!
//! The master key is random. It is wrapped (AES-256-GCM) twice: under a key
//! from the passphrase (PBKDF2-HMAC-SHA256, 600,000 iterations, random salt,
//! parameters stored so they can be raised later), and under a key from the
//! recovery code (HKDF: the code is 128 random bits, not a password).
//!
//! Each secret column is `nonce (12) || AES-256-GCM(master, value, aad)` with
//! the row's identity in the AAD (`medcrypt/store/v1/<column>:<row id>…`), so a
//! value copied into another row does not decrypt.
//!
//! One file per table family: `schema` (tables and migrations), `sealing`
//! (the master key, its wraps, column sealing), `pairings` (pairings, epoch
//! keys, rotation), `replay` (sequence numbers and seen messages), `inbox`,
//! `outbox`, `agent_state` (chat bindings and agent values), `escrow` and
//! `audit` (the log's rows). Each adds an `impl Store` block. The store
//! depends on the protocol core and rusqlite only; it knows nothing of the
//! use cases, the agent, or any front end.

mod agent_state;
pub use agent_state::{PART_BYTES_PER_CHAT, PART_SET_LIFETIME, PART_SETS_PER_CHAT, PartSet};
mod audit;
mod backup;
mod clock;
mod data;
mod epochs;
mod escrow;
mod history;
mod manifest;
mod notices;
mod outbox;
mod owner;
mod pairings;
mod record;
mod replay;
mod schema;
mod sealing;
mod temporaries;
mod whatsapp;

pub use audit::RepairReport;
pub use epochs::{Destruction, Rotation};
pub use history::{
    HistoryContent, HistoryItem, Incoming, IncomingContent, InvalidRetention, Receipt, Retention,
    Via,
};
pub use notices::Notice;
pub use outbox::{OutboxItem, OutboxKind};
pub use pairings::{PairingInfo, Protocol};
pub use record::{ChatLink, PairingState};
pub use sealing::Rotated;
pub use temporaries::TEMPORARY_PREFIX;
pub use whatsapp::WHATSAPP_DEDUP_DAYS;

use std::cell::Cell;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use secrecy::{ExposeSecret, SecretString};

use crate::protocol::audit::SealingKey;
use crate::protocol::codes::RecoveryCode;
use crate::protocol::epoch::{Epoch, format_utc};

pub use schema::on_wait;
use schema::{Found, migrate, open_connection};
use sealing::{MasterKey, StoreKeys, aead_open, aead_seal, passphrase_kek, recovery_kek};

/// PBKDF2 iterations for new passphrase wraps. Stored per wrap, so a later
/// version can raise it and re-wrap on the next unlock.
pub const PASSPHRASE_ITERATIONS: u32 = 600_000;

/// What can go wrong with the store. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No store file at the path.
    #[error("no MedCrypt store at {0}")]
    NotFound(PathBuf),
    /// `init` on a path that already holds a store.
    #[error("a MedCrypt store already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The passphrase does not unwrap the master key.
    #[error("wrong passphrase for this store")]
    WrongPassphrase,
    /// The audit log does not end where the store sealed it: every audited
    /// operation is refused until `audit repair`.
    #[error(
        "the audit log does not end where this store sealed it: it was altered outside MedCrypt"
    )]
    AuditAltered,
    /// Another command replaced the store's master key while this one held
    /// the old key (an emergency access or a new escrow split while the
    /// agent ran): nothing was written with the old key.
    #[error("the store's key was replaced by another MedCrypt command since this one opened it")]
    KeyReplaced,
    /// The store's recovery code was retired (see `Rotated`).
    #[error(
        "this store has no recovery code any more: it was retired when the store's key was replaced after an emergency access"
    )]
    NoRecoveryCode,
    /// The recovery code does not unwrap the master key.
    #[error("this recovery code does not belong to this store")]
    WrongRecoveryCode,
    /// The file was written by a newer MedCrypt.
    #[error("the store uses schema version {0}, newer than this program understands")]
    NewerSchema(u32),
    /// No pairing with this alias.
    #[error("no pairing named {0:?}")]
    UnknownPairing(String),
    /// `pair new`/`accept` with an alias already in use.
    #[error("a pairing named {0:?} already exists")]
    DuplicateAlias(String),
    /// `pair accept` of an invitation this store already holds.
    #[error("this invitation was already accepted here, as the pairing {0:?}")]
    DuplicatePairing(String),
    /// A message already received.
    #[error("replayed: message #{sequence} of {epoch} ({direction}) was already received")]
    Replayed {
        /// The message's month.
        epoch: Epoch,
        /// The message's direction name.
        direction: &'static str,
        /// Its sequence number.
        sequence: u32,
    },
    /// The store's contents fail authentication or are inconsistent.
    #[error("the store is damaged: {0}")]
    Corrupt(&'static str),
    /// A row that decides who or whether does not match what MedCrypt
    /// sealed: someone edited the SQLite file.
    #[error("the store was modified outside MedCrypt: {0}")]
    Modified(String),
    /// Escrow shares that do not open this store.
    #[error("{0}")]
    Escrow(String),
    /// The path is not a MedCrypt store (another program's database, or not
    /// a database at all); it was left as it was.
    #[error("{0} is not a MedCrypt store; it was left as it was")]
    NotAStore(PathBuf),
    /// The path is a directory.
    #[error("{0} is a directory, not a MedCrypt store")]
    IsDirectory(PathBuf),
    /// Another command held the store for too long.
    #[error("another MedCrypt command kept the store busy for {} seconds", schema::wait_limit().as_secs())]
    Locked,
    /// The disk is full.
    #[error("the disk is full")]
    DiskFull,
    /// The store (or its directory) cannot be written.
    #[error("the store cannot be written: the file or its directory is read-only")]
    ReadOnly,
    /// The store's file or directory cannot be opened.
    #[error("the store cannot be opened: its directory is missing or not accessible")]
    CannotOpen,
    /// SQLite found the file damaged.
    #[error("the store file is damaged (SQLite reports it malformed)")]
    Malformed,
    /// SQLite failed otherwise.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The file system failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Locked,
            Some(ErrorCode::DiskFull) => Self::DiskFull,
            Some(ErrorCode::ReadOnly) => Self::ReadOnly,
            Some(ErrorCode::CannotOpen) => Self::CannotOpen,
            Some(ErrorCode::DatabaseCorrupt) => Self::Malformed,
            _ => Self::Sqlite(err),
        }
    }
}

/// What is at a store path, recognised without writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFile {
    /// Nothing, or an empty file: `init` may make a store there.
    Missing,
    /// A MedCrypt store.
    Present,
}

/// Recognises what is at `path` before anything asks for a passphrase.
///
/// # Errors
/// [`StoreError::NotAStore`] for any other file (left untouched),
/// [`StoreError::IsDirectory`], I/O errors.
pub fn probe(path: &Path) -> Result<StoreFile> {
    match schema::inspect(path)? {
        Found::Absent | Found::Empty => Ok(StoreFile::Missing),
        Found::Store => Ok(StoreFile::Present),
        Found::Foreign => Err(StoreError::NotAStore(path.to_owned())),
    }
}

/// Reads up to `buf.len()` bytes; fewer only at the end of the input.
fn read_up_to(input: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(got) => n += got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

fn now_text(now: DateTime<Utc>) -> String {
    format_utc(now)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    crate::protocol::epoch::parse_utc(text)
}

/// An open, unlocked store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    master: MasterKey,
    /// The owner's private key, when unlocked by the passphrase or the
    /// recovery code (not by escrow shares).
    owner: Option<owner::OwnerKey>,
    /// Keys derived from the master key (row MACs, history digests).
    keys: StoreKeys,
    path: PathBuf,
    /// Who acts, in audit entries: the store's owner name.
    actor: String,
    /// Nesting depth of [`Store::in_transaction`].
    depth: Cell<u32>,
    /// An audit sealing key was destroyed: truncate the WAL after commit.
    wal_checkpoint_due: Cell<bool>,
    /// Row families changed in the open transaction.
    dirty: manifest::Dirty,
    /// What was found modified outside MedCrypt at unlock, if anything:
    /// every command but the audit log's refuses to act on such a store.
    modified: Option<String>,
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

impl Store {
    /// Creates a new store at `path` (mode 0600, directory created if needed)
    /// and returns it with the recovery code and the audit verification key,
    /// both to be shown once and never stored.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`], or I/O and database errors.
    pub fn create(
        path: &Path,
        passphrase: &SecretString,
        name: &str,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> Result<(Self, RecoveryCode, SealingKey)> {
        match schema::inspect(path)? {
            Found::Absent => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_private_dir(dir)?;
                }
                create_private_file(path)?;
            }
            // An empty file is as good as none: made private and used.
            Found::Empty => make_private(path)?,
            Found::Store => return Err(StoreError::AlreadyExists(path.to_owned())),
            Found::Foreign => return Err(StoreError::NotAStore(path.to_owned())),
        }
        let result = Self::initialise(path, passphrase, name, retention, now);
        if result.is_err() {
            // Leave nothing half-made behind.
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        result
    }

    fn initialise(
        path: &Path,
        passphrase: &SecretString,
        name: &str,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> Result<(Self, RecoveryCode, SealingKey)> {
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        let master = MasterKey::from_bytes(random_bytes());
        let recovery = RecoveryCode::from_bytes(random_bytes());
        let mut store = Self::assemble(conn, master, path)?;
        let owner = owner::OwnerKey::generate();
        let owner_public = owner.public();
        store.owner = Some(owner);
        store.actor = actor_name(name);
        let verification = store.in_transaction(|| {
            store.drop_legacy_tables()?;
            store.set_meta("name", name)?;
            store.set_meta("created_at", &now_text(now))?;
            store.set_meta(audit::STORE_ID_SETTING, &hex::encode(random_bytes::<5>()))?;
            store.set_meta("retention", &retention.to_string())?;
            store.note_time(now)?;
            store.write_owner_row(&owner_public)?;
            store.wrap_under_passphrase(passphrase)?;
            store.wrap_under_recovery(&recovery)?;
            let verification = store.start_audit(now)?;
            store.audit(now, "init", "", "ok", &[])?;
            store.seal_all_manifests()?;
            Ok(verification)
        })?;
        Ok((store, recovery, verification))
    }

    fn assemble(conn: Connection, master: MasterKey, path: &Path) -> Result<Self> {
        let name: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'name'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(Self {
            conn,
            keys: StoreKeys::derive(&master),
            master,
            owner: None,
            path: path.to_owned(),
            actor: actor_name(name.as_deref().unwrap_or_default()),
            depth: Cell::new(0),
            wal_checkpoint_due: Cell::new(false),
            dirty: manifest::Dirty::default(),
            modified: None,
        })
    }

    /// Once the master key is known: moves an older store's rows into the
    /// current form, and takes the owner's name from its checked setting.
    ///
    /// Then checks what no single row can vouch for: that no row of a
    /// family was added or removed, that no leftover of the old form came
    /// back, that every destruction on record happened. A store that fails
    /// is marked modified ([`Store::integrity`]).
    pub(super) fn prepare(&mut self, now: DateTime<Utc>) -> Result<()> {
        if self.needs_data_upgrade()? {
            self.upgrade_data(now)?;
        }
        self.modified = match self.check_current_form(now) {
            Ok(()) => None,
            Err(StoreError::Modified(what)) => Some(what),
            Err(err) => return Err(err),
        };
        let name = self.setting("name").ok().flatten();
        self.actor = actor_name(name.as_deref().unwrap_or_default());
        Ok(())
    }

    fn check_current_form(&self, now: DateTime<Utc>) -> Result<()> {
        self.check_no_legacy_rows()?;
        self.check_rows(now)?;
        self.check_destructions(now)
    }

    /// Whether the store was found modified outside MedCrypt when it was
    /// unlocked. Only the audit log's own commands may go on; they say
    /// what they find.
    ///
    /// # Errors
    /// [`StoreError::Modified`].
    pub fn integrity(&self) -> Result<()> {
        match &self.modified {
            None => Ok(()),
            Some(what) => Err(StoreError::Modified(what.clone())),
        }
    }

    /// After unlocking: move an older store's rows into the current form,
    /// check it, then move waiting unlock failures and the shredder's work
    /// into the audit log (not on a modified store: its rows are not
    /// trusted to say what happened).
    fn after_unlock(mut self, now: DateTime<Utc>, how: &str) -> Result<Self> {
        self.prepare(now)?;
        if self.modified.is_some() {
            return Ok(self);
        }
        let flushed = self.in_transaction(|| {
            let failures: Vec<(i64, String, String)> = {
                let mut stmt = self
                    .conn
                    .prepare("SELECT id, time, method FROM unlock_failures ORDER BY id")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            for (id, time, method) in failures {
                self.audit(
                    now,
                    "unlock_failed",
                    "",
                    "failed",
                    &[("method", method), ("failed_at", time)],
                )?;
                self.conn
                    .execute("DELETE FROM unlock_failures WHERE id = ?1", [id])?;
            }
            if how == "recovery" {
                self.audit(now, "unlock_recovery", "", "ok", &[])?;
            }
            self.audit_shredder_work(now)
        });
        match flushed {
            // A log that refuses appends was tampered with: the failures stay
            // pending (nothing is lost) and `audit verify` can still run.
            Ok(()) | Err(StoreError::Corrupt(_) | StoreError::AuditAltered) => Ok(self),
            Err(err) => Err(err),
        }
    }

    /// Opens and unlocks the store with the passphrase.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::WrongPassphrase`], or database errors.
    pub fn open(path: &Path, passphrase: &SecretString, now: DateTime<Utc>) -> Result<Self> {
        let conn = Self::connect(path)?;
        let (iterations, salt, wrapped): (u32, Vec<u8>, Vec<u8>) = conn
            .query_row(
                "SELECT iterations, salt, wrapped_key FROM unlock WHERE method = 'passphrase'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or(StoreError::Corrupt("no passphrase entry"))?;
        let kek = passphrase_kek(passphrase, &salt, iterations);
        let Some((master, owner)) =
            owner::open_unlock(&conn, kek.expose_secret(), "passphrase", &wrapped)?
        else {
            // Noted for the audit log when the store can be written; the
            // verdict is the same either way.
            let _ = record_unlock_failure(&conn, now, "passphrase");
            return Err(StoreError::WrongPassphrase);
        };
        let legacy = owner.is_none();
        let mut store = Self::assemble(conn, master, path)?;
        store.owner = owner;
        let mut store = store.after_unlock(now, "passphrase")?;
        if store.modified.is_some() {
            return Ok(store);
        }
        if legacy {
            // A store of an earlier release: move the passphrase to an owner
            // key (not possible on a read-only store: then at a later unlock).
            store.adopt_owner_key(|store| store.wrap_under_passphrase(passphrase));
        } else if iterations < PASSPHRASE_ITERATIONS {
            // Raise old parameters transparently now that we hold the passphrase.
            store.wrap_under_passphrase(passphrase)?;
        }
        if store.rotation_due()? {
            store.rotate_master_key_for_owner(now, "due after emergency access", |_| Ok(()))?;
        }
        Ok(store)
    }

    /// Opens the store with the recovery code (then set a new passphrase
    /// with [`Store::change_passphrase`]).
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::WrongRecoveryCode`], or database errors.
    pub fn open_with_recovery(
        path: &Path,
        code: &RecoveryCode,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let conn = Self::connect(path)?;
        let (salt, wrapped): (Vec<u8>, Vec<u8>) = conn
            .query_row(
                "SELECT salt, wrapped_key FROM unlock WHERE method = 'recovery'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(StoreError::NoRecoveryCode)?;
        let kek = recovery_kek(code, &salt);
        let Some((master, owner)) =
            owner::open_unlock(&conn, kek.expose_secret(), "recovery", &wrapped)?
        else {
            let _ = record_unlock_failure(&conn, now, "recovery code");
            return Err(StoreError::WrongRecoveryCode);
        };
        let legacy = owner.is_none();
        let mut store = Self::assemble(conn, master, path)?;
        store.owner = owner;
        let mut store = store.after_unlock(now, "recovery")?;
        if legacy && store.modified.is_none() {
            // A recovery code of an earlier release: a new owner key, under
            // this code now and under the new passphrase set next.
            store.adopt_owner_key(|store| store.wrap_under_recovery(code));
        }
        Ok(store)
    }

    fn connect(path: &Path) -> Result<Connection> {
        match schema::inspect(path)? {
            Found::Absent | Found::Empty => return Err(StoreError::NotFound(path.to_owned())),
            Found::Foreign => return Err(StoreError::NotAStore(path.to_owned())),
            Found::Store => {}
        }
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        temporaries::clean_stale(&conn);
        Ok(conn)
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside one transaction: all of it is committed, or none of
    /// it. Nested calls become savepoints of the outermost transaction, so an
    /// operation and its audit entry always commit together.
    /// Runs `f` as one transaction (see [`Store::in_transaction`]): for
    /// callers that combine several store operations atomically.
    ///
    /// # Errors
    /// The error of `f`, or database errors; then nothing of `f` is kept.
    pub fn transaction<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.in_transaction(f)
    }

    fn in_transaction<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let depth = self.depth.get();
        let (begin, commit, rollback) = if depth == 0 {
            (
                "BEGIN IMMEDIATE".to_owned(),
                "COMMIT".to_owned(),
                "ROLLBACK".to_owned(),
            )
        } else {
            (
                format!("SAVEPOINT sp{depth}"),
                format!("RELEASE sp{depth}"),
                format!("ROLLBACK TO sp{depth}; RELEASE sp{depth}"),
            )
        };
        self.conn.execute_batch(&begin)?;
        if depth == 0
            && let Err(err) = self.check_key_current()
        {
            let _ = self.conn.execute_batch(&rollback);
            return Err(err);
        }
        self.depth.set(depth + 1);
        let mut result = f();
        if depth == 0 && result.is_ok() {
            // Still inside the transaction: the manifests of what changed.
            if let Err(err) = self.seal_dirty() {
                result = Err(err);
            }
        }
        self.depth.set(depth);
        match result {
            Ok(value) => {
                if let Err(err) = self.conn.execute_batch(&commit) {
                    let _ = self.conn.execute_batch(&rollback);
                    return Err(err.into());
                }
                if depth == 0 && self.wal_checkpoint_due.replace(false) {
                    self.checkpoint()?;
                }
                Ok(value)
            }
            Err(err) => {
                let _ = self.conn.execute_batch(&rollback);
                if depth == 0 {
                    self.wal_checkpoint_due.set(false);
                    self.dirty.clear();
                }
                Err(err)
            }
        }
    }

    /// Writes a setting with its row MAC (settings decide who is named in
    /// QR codes and who receives notices).
    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let mac = self.row_mac(&[b"meta", key.as_bytes(), value.as_bytes()]);
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value, mac) VALUES (?1, ?2, ?3)",
            params![key, value, mac.to_vec()],
        )?;
        self.touched(manifest::Family::Settings)
    }

    /// A setting (`name`, `telegram_bot`, `whatsapp_number`, `retention`, …),
    /// checked against its row MAC.
    ///
    /// # Errors
    /// [`StoreError::Modified`] when it was changed outside MedCrypt;
    /// database errors.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        let row: Option<(String, Option<Vec<u8>>)> = self
            .conn
            .query_row("SELECT value, mac FROM meta WHERE key = ?1", [key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match row {
            None => Ok(None),
            Some((value, mac)) => {
                if !self.row_mac_ok(&[b"meta", key.as_bytes(), value.as_bytes()], mac.as_deref()) {
                    return Err(StoreError::Modified(format!("the setting {key:?}")));
                }
                Ok(Some(value))
            }
        }
    }

    /// Changes a setting; an empty value removes it.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_setting(&self, key: &str, value: &str, now: DateTime<Utc>) -> Result<()> {
        self.in_transaction(|| {
            if value.is_empty() {
                self.conn
                    .execute("DELETE FROM meta WHERE key = ?1", [key])?;
                self.touched(manifest::Family::Settings)?;
            } else {
                self.set_meta(key, value)?;
            }
            self.audit(now, "config_set", "", "ok", &[("key", key.to_owned())])
        })
    }

    /// Checkpoints the WAL into the database file and truncates it.
    ///
    /// # Errors
    /// Database errors.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

fn actor_name(name: &str) -> String {
    if name.trim().is_empty() {
        "store owner".to_owned()
    } else {
        name.trim().to_owned()
    }
}

/// Notes a failed unlock where no key is needed; it enters the audit log at
/// the next successful unlock.
fn record_unlock_failure(conn: &Connection, now: DateTime<Utc>, method: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO unlock_failures (time, method) VALUES (?1, ?2)",
        params![now_text(now), method],
    )?;
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(format!("cannot create directory {}", dir.display())))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(io_err(format!("cannot create directory {}", dir.display())))
}

fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(format!("cannot make {} private", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn create_private_file(path: &Path) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(io_err(format!("cannot create {}", path.display())))
}

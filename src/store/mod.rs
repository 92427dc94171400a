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

use std::cell::Cell;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use crate::protocol::audit::{
    AuditEvent, AuditFault, Checkpoint, Record, RecordKind, Sealer, SealingKey, Trust,
    VerifyReport, day_of,
};
use crate::protocol::codes::RecoveryCode;
use crate::protocol::epoch::{Epoch, format_utc};
use crate::protocol::keys::{
    Advance, Direction, EpochChain, EpochKey, PairingToken, Role, SafetyNumber,
};
use crate::protocol::legacy::LegacyPairing;
use crate::protocol::wire::ReplayId;

/// PBKDF2 iterations for new passphrase wraps. Stored per wrap, so a later
/// version can raise it and re-wrap on the next unlock.
pub const PASSPHRASE_ITERATIONS: u32 = 600_000;
const SCHEMA_VERSION: u32 = 4;
/// Bytes of attachment content per encrypted inbox row.
const INBOX_CHUNK: usize = 1 << 20;
const WRAP_LABEL: &str = "medcrypt/store/v1/master-key";
const RECOVERY_KEK_LABEL: &str = "medcrypt/store/v1/recovery-kek";
const NONCE_LEN: usize = 12;

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
    /// Escrow shares that do not open this store.
    #[error("{0}")]
    Escrow(String),
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file system failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

/// The store's master key. Zeroized on drop; never printed.
struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

fn aead_seal(key: &[u8; 32], aad: &str, plaintext: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = random_bytes();
    let cipher = Aes256Gcm::new(key.into());
    let sealed = cipher
        .encrypt(
            Nonce::<U12>::from_slice(&nonce),
            AeadPayload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

fn aead_open(key: &[u8; 32], aad: &str, blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if blob.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(
            Nonce::<U12>::from_slice(nonce),
            AeadPayload {
                msg: sealed,
                aad: aad.as_bytes(),
            },
        )
        .ok()
        .map(Zeroizing::new)
}

fn passphrase_kek(passphrase: &SecretString, salt: &[u8], iterations: u32) -> SecretBox<[u8; 32]> {
    let mut kek = SecretBox::new(Box::new([0u8; 32]));
    pbkdf2::pbkdf2_hmac::<Sha256>(
        passphrase.expose_secret().as_bytes(),
        salt,
        iterations,
        kek.expose_secret_mut(),
    );
    kek
}

fn recovery_kek(code: &RecoveryCode, salt: &[u8]) -> SecretBox<[u8; 32]> {
    let mut kek = SecretBox::new(Box::new([0u8; 32]));
    let hk = Hkdf::<Sha256>::new(Some(salt), code.expose_bytes());
    if hk
        .expand(RECOVERY_KEK_LABEL.as_bytes(), kek.expose_secret_mut())
        .is_err()
    {
        // 32 bytes is always a valid HKDF-SHA256 length.
        *kek.expose_secret_mut() = [0u8; 32];
    }
    kek
}

fn now_text(now: OffsetDateTime) -> String {
    format_utc(now)
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

const MIGRATIONS: &[&str] = &[
    // Version 1.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE unlock (
        method TEXT PRIMARY KEY,          -- 'passphrase' | 'recovery'
        kdf TEXT NOT NULL,                -- 'pbkdf2-hmac-sha256' | 'hkdf-sha256'
        iterations INTEGER NOT NULL,
        salt BLOB NOT NULL,
        wrapped_key BLOB NOT NULL);
     CREATE TABLE pairings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alias TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,               -- 'physician' | 'patient'
        protocol TEXT NOT NULL,           -- 'v2' | 'v1'
        peer_name TEXT NOT NULL,
        start_epoch TEXT,
        safety_number TEXT,
        token_hash TEXT,
        legacy_secret BLOB,               -- v1 only, encrypted
        legacy_patient_id BLOB,           -- v1 only, encrypted
        created_at TEXT NOT NULL);
     CREATE TABLE epoch_keys (
        pairing_id INTEGER NOT NULL REFERENCES pairings(id) ON DELETE CASCADE,
        epoch TEXT NOT NULL,
        key BLOB NOT NULL,                -- encrypted
        PRIMARY KEY (pairing_id, epoch));
     CREATE TABLE shredded (
        pairing_id INTEGER NOT NULL REFERENCES pairings(id) ON DELETE CASCADE,
        epoch TEXT NOT NULL,
        destroyed_at TEXT NOT NULL,
        PRIMARY KEY (pairing_id, epoch));
     CREATE TABLE send_sequence (
        pairing_id INTEGER NOT NULL REFERENCES pairings(id) ON DELETE CASCADE,
        epoch TEXT NOT NULL,
        direction INTEGER NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (pairing_id, epoch, direction));
     CREATE TABLE seen (
        pairing_id INTEGER NOT NULL REFERENCES pairings(id) ON DELETE CASCADE,
        epoch TEXT NOT NULL,
        direction INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        PRIMARY KEY (pairing_id, epoch, direction, sequence));",
    // Version 2: the audit log.
    "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        day INTEGER NOT NULL,             -- UTC day whose sealing key made the MAC
        kind INTEGER NOT NULL,            -- 1 entry, 2 day seal
        body BLOB NOT NULL,               -- encrypted event
        mac BLOB NOT NULL);
     CREATE TABLE audit_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        enc_key BLOB NOT NULL,            -- encrypted under the master key
        sealing_key BLOB NOT NULL,        -- encrypted; the current day's key only
        day INTEGER NOT NULL,
        start_day INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        last_mac BLOB NOT NULL);
     -- Unlock failures happen without keys; they wait here (time and method
     -- only) and enter the audit log at the next successful unlock.
     CREATE TABLE unlock_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        method TEXT NOT NULL);",
    // Version 3: the agent's chats, inbox and outbox.
    "CREATE TABLE chat_bindings (
        pairing_id INTEGER PRIMARY KEY REFERENCES pairings(id) ON DELETE CASCADE,
        chat_id INTEGER NOT NULL UNIQUE,
        bound_at TEXT NOT NULL);
     CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pairing_id INTEGER NOT NULL REFERENCES pairings(id) ON DELETE CASCADE,
        received_at TEXT NOT NULL,
        kind TEXT NOT NULL,               -- 'text' | 'file'
        body BLOB NOT NULL);              -- encrypted: the text, or file metadata JSON
     CREATE TABLE inbox_chunks (
        inbox_id INTEGER NOT NULL REFERENCES inbox(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        data BLOB NOT NULL,               -- encrypted attachment content
        PRIMARY KEY (inbox_id, idx));
     CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pairing_id INTEGER NOT NULL REFERENCES pairings(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        kind TEXT NOT NULL,               -- 'text' | 'document'
        payload BLOB NOT NULL,            -- encrypted: wire text or .medcrypt bytes
        state TEXT NOT NULL,              -- queued | sending | sent | uncertain | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        sent_message_id INTEGER);
     CREATE TABLE telegram_parts (
        file_id BLOB NOT NULL,
        idx INTEGER NOT NULL,
        count INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        data BLOB NOT NULL,               -- ciphertext of one part, as received
        PRIMARY KEY (file_id, idx));",
    // Version 4: break-glass escrow sets.
    "CREATE TABLE escrow_sets (
        set_id TEXT PRIMARY KEY,
        threshold INTEGER NOT NULL,
        custodians TEXT NOT NULL,         -- JSON list, by index
        digests TEXT NOT NULL,            -- JSON list of share digests, by index
        created_at TEXT NOT NULL,
        retired_at TEXT);",
];

/// Which protocol a pairing speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The current protocol, with monthly ratchet.
    V2,
    /// The legacy protocol (long-lived secret, patient id on the wire).
    V1,
}

/// A pairing as listed from the store (no secrets).
#[derive(Debug, Clone)]
pub struct PairingInfo {
    /// Row id, part of every secret column's AAD.
    pub id: i64,
    /// Local name of the other side.
    pub alias: String,
    /// This store's side of the pairing.
    pub role: Role,
    /// v2 or legacy v1.
    pub protocol: Protocol,
    /// The other side's display name (the physician's, on a patient store).
    pub peer_name: String,
    /// The first epoch (v2).
    pub start_epoch: Option<Epoch>,
    /// Safety number (v2).
    pub safety_number: Option<String>,
    /// When the pairing was made.
    pub created_at: String,
}

/// What an inbox item holds. `Debug` shows no medical content.
#[derive(Clone)]
pub enum InboxContent {
    /// A decrypted text.
    Text(String),
    /// A decrypted file (content via [`Store::inbox_file_content`]).
    File(crate::protocol::attachment::Metadata),
}

impl std::fmt::Debug for InboxContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(text) => write!(f, "Text({} bytes)", text.len()),
            Self::File(meta) => write!(f, "File({} bytes)", meta.size),
        }
    }
}

/// A received, decrypted message.
#[derive(Debug, Clone)]
pub struct InboxItem {
    /// Its number (shown in acknowledgements: "Received ✓ #42").
    pub id: i64,
    /// From which pairing.
    pub alias: String,
    /// When (RFC 3339).
    pub received_at: String,
    /// Text or file.
    pub content: InboxContent,
}

/// What an outbox item is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Wire text, one chat message.
    Text,
    /// A `.medcrypt` document.
    Document,
}

impl OutboxKind {
    /// `text` or `document`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Document => "document",
        }
    }
}

/// An item waiting for (or past) delivery by the agent.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Its number.
    pub id: i64,
    /// Row id of the pairing.
    pub pairing_id: i64,
    /// The pairing's alias.
    pub alias: String,
    /// When it was queued.
    pub created_at: String,
    /// Text or document.
    pub kind: OutboxKind,
    /// queued, sending, sent, uncertain, failed.
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Not before this time.
    pub next_attempt_at: String,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// What rotation did to one pairing.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The pairing's alias.
    pub alias: String,
    /// Keys derived and destroyed.
    pub advance: Advance,
}

/// An open, unlocked store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    master: MasterKey,
    path: PathBuf,
    /// Who acts, in audit entries: the store's owner name.
    actor: String,
    /// Nesting depth of [`Store::in_transaction`].
    depth: Cell<u32>,
    /// An audit sealing key was destroyed: truncate the WAL after commit.
    wal_checkpoint_due: Cell<bool>,
    /// A verification key made when an older store got its audit log.
    new_verification_key: Option<SealingKey>,
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema(version));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()?;
    Ok(())
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
        now: OffsetDateTime,
    ) -> Result<(Self, RecoveryCode, SealingKey)> {
        if path.exists() {
            return Err(StoreError::AlreadyExists(path.to_owned()));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        create_private_file(path)?;
        let result = Self::initialise(path, passphrase, name, now);
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
        now: OffsetDateTime,
    ) -> Result<(Self, RecoveryCode, SealingKey)> {
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        let master = MasterKey(SecretBox::new(Box::new(random_bytes())));
        let recovery = RecoveryCode::from_bytes(random_bytes());
        let mut store = Self::assemble(conn, master, path)?;
        store.actor = actor_name(name);
        let verification = store.in_transaction(|| {
            store.set_meta("name", name)?;
            store.set_meta("created_at", &now_text(now))?;
            store.wrap_under_passphrase(passphrase)?;
            store.wrap_under_recovery(&recovery)?;
            let verification = store.start_audit(now)?;
            store.audit(now, "init", "", "ok", &[])?;
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
            master,
            path: path.to_owned(),
            actor: actor_name(name.as_deref().unwrap_or_default()),
            depth: Cell::new(0),
            wal_checkpoint_due: Cell::new(false),
            new_verification_key: None,
        })
    }

    /// After unlocking: start the audit log of a store made before it
    /// existed, then move waiting unlock failures into it.
    fn after_unlock(mut self, now: OffsetDateTime, how: &str) -> Result<Self> {
        let has_audit: bool =
            self.conn
                .query_row("SELECT EXISTS(SELECT 1 FROM audit_state)", [], |r| r.get(0))?;
        if !has_audit {
            let key = self.in_transaction(|| self.start_audit(now))?;
            self.new_verification_key = Some(key);
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
            Ok(())
        });
        match flushed {
            // A log that refuses appends was tampered with: the failures stay
            // pending (nothing is lost) and `audit verify` can still run.
            Ok(()) | Err(StoreError::Corrupt(_)) => Ok(self),
            Err(err) => Err(err),
        }
    }

    /// A verification key made because this store predates its audit log.
    /// Show it once, like the one made at init.
    pub fn take_new_verification_key(&mut self) -> Option<SealingKey> {
        self.new_verification_key.take()
    }

    /// Opens and unlocks the store with the passphrase.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::WrongPassphrase`], or database errors.
    pub fn open(path: &Path, passphrase: &SecretString, now: OffsetDateTime) -> Result<Self> {
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
        let Some(master) = unwrap_master(&kek, "passphrase", &wrapped) else {
            record_unlock_failure(&conn, now, "passphrase")?;
            return Err(StoreError::WrongPassphrase);
        };
        let store = Self::assemble(conn, master, path)?.after_unlock(now, "passphrase")?;
        if iterations < PASSPHRASE_ITERATIONS {
            // Raise old parameters transparently now that we hold the passphrase.
            store.wrap_under_passphrase(passphrase)?;
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
        now: OffsetDateTime,
    ) -> Result<Self> {
        let conn = Self::connect(path)?;
        let (salt, wrapped): (Vec<u8>, Vec<u8>) = conn
            .query_row(
                "SELECT salt, wrapped_key FROM unlock WHERE method = 'recovery'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(StoreError::Corrupt("no recovery entry"))?;
        let kek = recovery_kek(code, &salt);
        let Some(master) = unwrap_master(&kek, "recovery", &wrapped) else {
            record_unlock_failure(&conn, now, "recovery code")?;
            return Err(StoreError::WrongRecoveryCode);
        };
        Self::assemble(conn, master, path)?.after_unlock(now, "recovery")
    }

    fn connect(path: &Path) -> Result<Connection> {
        if !path.is_file() {
            return Err(StoreError::NotFound(path.to_owned()));
        }
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        Ok(conn)
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-wraps the master key under a new passphrase (fresh salt).
    ///
    /// # Errors
    /// Database errors.
    pub fn change_passphrase(&self, passphrase: &SecretString, now: OffsetDateTime) -> Result<()> {
        self.in_transaction(|| {
            self.wrap_under_passphrase(passphrase)?;
            self.audit(now, "passphrase_change", "", "ok", &[])
        })
    }

    fn wrap_under_passphrase(&self, passphrase: &SecretString) -> Result<()> {
        let salt: [u8; 16] = random_bytes();
        let kek = passphrase_kek(passphrase, &salt, PASSPHRASE_ITERATIONS);
        let wrapped = aead_seal(
            kek.expose_secret(),
            &format!("{WRAP_LABEL}:passphrase"),
            self.master.0.expose_secret(),
        );
        self.conn.execute(
            "INSERT OR REPLACE INTO unlock (method, kdf, iterations, salt, wrapped_key)
             VALUES ('passphrase', 'pbkdf2-hmac-sha256', ?1, ?2, ?3)",
            params![PASSPHRASE_ITERATIONS, salt.to_vec(), wrapped],
        )?;
        Ok(())
    }

    fn wrap_under_recovery(&self, code: &RecoveryCode) -> Result<()> {
        let salt: [u8; 16] = random_bytes();
        let kek = recovery_kek(code, &salt);
        let wrapped = aead_seal(
            kek.expose_secret(),
            &format!("{WRAP_LABEL}:recovery"),
            self.master.0.expose_secret(),
        );
        self.conn.execute(
            "INSERT OR REPLACE INTO unlock (method, kdf, iterations, salt, wrapped_key)
             VALUES ('recovery', 'hkdf-sha256', 1, ?1, ?2)",
            params![salt.to_vec(), wrapped],
        )?;
        Ok(())
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
        self.depth.set(depth + 1);
        let result = f();
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
                }
                Err(err)
            }
        }
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// A setting (`name`, `telegram_bot`, `whatsapp_number`, …).
    ///
    /// # Errors
    /// Database errors.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Changes a setting; an empty value removes it.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_setting(&self, key: &str, value: &str, now: OffsetDateTime) -> Result<()> {
        self.in_transaction(|| {
            if value.is_empty() {
                self.conn
                    .execute("DELETE FROM meta WHERE key = ?1", [key])?;
            } else {
                self.set_meta(key, value)?;
            }
            self.audit(now, "config_set", "", "ok", &[("key", key.to_owned())])
        })
    }

    fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        aead_seal(self.master.0.expose_secret(), aad, plaintext)
    }

    fn unseal(&self, aad: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        aead_open(self.master.0.expose_secret(), aad, blob).ok_or(StoreError::Corrupt(
            "an encrypted value fails authentication",
        ))
    }

    fn epoch_key_aad(pairing_id: i64, epoch: Epoch) -> String {
        format!("medcrypt/store/v1/epoch-key:{pairing_id}:{epoch}")
    }

    fn insert_epoch_key(&self, pairing_id: i64, key: &EpochKey) -> Result<()> {
        let blob = self.seal(
            &Self::epoch_key_aad(pairing_id, key.epoch()),
            key.expose_bytes(),
        );
        self.conn.execute(
            "INSERT OR REPLACE INTO epoch_keys (pairing_id, epoch, key) VALUES (?1, ?2, ?3)",
            params![pairing_id, key.epoch().to_string(), blob],
        )?;
        Ok(())
    }

    fn ensure_alias_free(&self, alias: &str) -> Result<()> {
        let taken: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM pairings WHERE alias = ?1)",
            [alias],
            |r| r.get(0),
        )?;
        if taken {
            return Err(StoreError::DuplicateAlias(alias.to_owned()));
        }
        Ok(())
    }

    /// Stores a v2 pairing with its first epoch key. The pairing secret
    /// itself is never stored.
    ///
    /// # Errors
    /// [`StoreError::DuplicateAlias`], or database errors.
    #[allow(clippy::too_many_arguments)]
    pub fn add_pairing(
        &self,
        alias: &str,
        role: Role,
        peer_name: &str,
        first_key: &EpochKey,
        token: &PairingToken,
        safety: &SafetyNumber,
        now: OffsetDateTime,
    ) -> Result<i64> {
        self.ensure_alias_free(alias)?;
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT INTO pairings (alias, role, protocol, peer_name, start_epoch, safety_number, token_hash, created_at)
                 VALUES (?1, ?2, 'v2', ?3, ?4, ?5, ?6, ?7)",
                params![
                    alias,
                    role.name(),
                    peer_name,
                    first_key.epoch().to_string(),
                    safety.to_string(),
                    hex::encode(Sha256::digest(token.as_str().as_bytes())),
                    now_text(now)
                ],
            )?;
            let id = self.conn.last_insert_rowid();
            self.insert_epoch_key(id, first_key)?;
            let action = match role {
                Role::Physician => "pair_new",
                Role::Patient => "pair_accept",
            };
            let start = first_key.epoch().to_string();
            self.audit(now, action, alias, "ok", &[("start_epoch", start)])?;
            Ok(id)
        })
    }

    /// Stores a legacy v1 pairing (long-lived shared secret and patient id).
    ///
    /// # Errors
    /// [`StoreError::DuplicateAlias`], or database errors.
    pub fn add_legacy_pairing(
        &self,
        alias: &str,
        secret: &SecretString,
        patient_id: &str,
        now: OffsetDateTime,
    ) -> Result<i64> {
        self.ensure_alias_free(alias)?;
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT INTO pairings (alias, role, protocol, peer_name, created_at)
                 VALUES (?1, 'physician', 'v1', '', ?2)",
                params![alias, now_text(now)],
            )?;
            let id = self.conn.last_insert_rowid();
            self.set_sealed(
                "pairings",
                "legacy_secret",
                id,
                &format!("medcrypt/store/v1/legacy-secret:{id}"),
                secret.expose_secret().as_bytes(),
            )?;
            self.set_sealed(
                "pairings",
                "legacy_patient_id",
                id,
                &format!("medcrypt/store/v1/legacy-patient-id:{id}"),
                patient_id.as_bytes(),
            )?;
            self.audit(now, "pair_import_legacy", alias, "ok", &[])?;
            Ok(id)
        })
    }

    /// All pairings, by alias.
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`].
    pub fn pairings(&self) -> Result<Vec<PairingInfo>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, alias, role, protocol, peer_name, start_epoch, safety_number, created_at
             FROM pairings ORDER BY alias",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, alias, role, protocol, peer_name, start, safety, created_at) = row?;
            out.push(PairingInfo {
                id,
                alias,
                role: match role.as_str() {
                    "patient" => Role::Patient,
                    _ => Role::Physician,
                },
                protocol: if protocol == "v1" {
                    Protocol::V1
                } else {
                    Protocol::V2
                },
                peer_name,
                start_epoch: start.and_then(|s| s.parse().ok()),
                safety_number: safety,
                created_at,
            });
        }
        Ok(out)
    }

    /// The pairing named `alias`.
    ///
    /// # Errors
    /// [`StoreError::UnknownPairing`], or database errors.
    pub fn pairing(&self, alias: &str) -> Result<PairingInfo> {
        self.pairings()?
            .into_iter()
            .find(|p| p.alias == alias)
            .ok_or_else(|| StoreError::UnknownPairing(alias.to_owned()))
    }

    /// Removes a pairing and destroys every key of it, then truncates the WAL
    /// so no page with key material survives there.
    ///
    /// # Errors
    /// [`StoreError::UnknownPairing`], or database errors.
    pub fn remove_pairing(&self, alias: &str, now: OffsetDateTime) -> Result<()> {
        let pairing = self.pairing(alias)?;
        self.in_transaction(|| {
            self.conn
                .execute("DELETE FROM pairings WHERE id = ?1", [pairing.id])?;
            self.audit(now, "pair_remove", alias, "ok", &[])
        })?;
        self.checkpoint()
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

    /// The live epoch keys of a v2 pairing.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a key fails authentication or the chain
    /// is broken; database errors.
    pub fn chain(&self, pairing: &PairingInfo) -> Result<EpochChain> {
        let mut stmt = self
            .conn
            .prepare("SELECT epoch, key FROM epoch_keys WHERE pairing_id = ?1")?;
        let rows = stmt.query_map([pairing.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (epoch, blob) = row?;
            let epoch: Epoch = epoch
                .parse()
                .map_err(|_| StoreError::Corrupt("bad epoch name"))?;
            let plain = self.unseal(&Self::epoch_key_aad(pairing.id, epoch), &blob)?;
            let bytes: &[u8; 32] = plain
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("epoch key of wrong length"))?;
            keys.push(EpochKey::from_bytes(epoch, bytes));
        }
        EpochChain::from_keys(keys)
            .map_err(|_| StoreError::Corrupt("epoch keys are not consecutive"))
    }

    /// The v1 material of a legacy pairing.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when it fails authentication; database errors.
    pub fn legacy(&self, pairing: &PairingInfo) -> Result<LegacyPairing> {
        let (secret, patient): (Option<Vec<u8>>, Option<Vec<u8>>) = self.conn.query_row(
            "SELECT legacy_secret, legacy_patient_id FROM pairings WHERE id = ?1",
            [pairing.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (Some(secret), Some(patient)) = (secret, patient) else {
            return Err(StoreError::Corrupt("legacy pairing without its secret"));
        };
        let secret = self.unseal(
            &format!("medcrypt/store/v1/legacy-secret:{}", pairing.id),
            &secret,
        )?;
        let patient = self.unseal(
            &format!("medcrypt/store/v1/legacy-patient-id:{}", pairing.id),
            &patient,
        )?;
        let secret = String::from_utf8(secret.to_vec())
            .map_err(|_| StoreError::Corrupt("legacy secret not UTF-8"))?;
        let patient = String::from_utf8(patient.to_vec())
            .map_err(|_| StoreError::Corrupt("patient id not UTF-8"))?;
        Ok(LegacyPairing::new(SecretString::from(secret), patient))
    }

    /// Ratchets every v2 pairing to the epoch of `now` and destroys keys past
    /// their window, in one transaction; then truncates the WAL if anything
    /// was destroyed.
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`].
    pub fn rotate(&self, now: OffsetDateTime) -> Result<Vec<Rotation>> {
        let mut report = Vec::new();
        let pairings = self.pairings()?;
        self.in_transaction(|| {
            for pairing in pairings.iter().filter(|p| p.protocol == Protocol::V2) {
                let mut chain = self.chain(pairing)?;
                let advance = chain.advance(now);
                if advance == Advance::default() {
                    continue;
                }
                for key in chain.keys() {
                    if advance.derived.contains(&key.epoch()) {
                        self.insert_epoch_key(pairing.id, key)?;
                    }
                }
                for epoch in &advance.derived {
                    let epoch = epoch.to_string();
                    self.audit(now, "epoch_advance", &pairing.alias, "ok", &[("epoch", epoch)])?;
                }
                for epoch in &advance.destroyed {
                    self.conn.execute(
                        "DELETE FROM epoch_keys WHERE pairing_id = ?1 AND epoch = ?2",
                        params![pairing.id, epoch.to_string()],
                    )?;
                    self.conn.execute(
                        "INSERT OR REPLACE INTO shredded (pairing_id, epoch, destroyed_at) VALUES (?1, ?2, ?3)",
                        params![pairing.id, epoch.to_string(), now_text(epoch.destruction_time())],
                    )?;
                    // Sequence and replay state of a shredded month can go too:
                    // nothing of that month can be opened any more.
                    self.conn.execute(
                        "DELETE FROM seen WHERE pairing_id = ?1 AND epoch = ?2",
                        params![pairing.id, epoch.to_string()],
                    )?;
                    let epoch = epoch.to_string();
                    self.audit(now, "key_shred", &pairing.alias, "ok", &[("epoch", epoch)])?;
                }
                report.push(Rotation {
                    alias: pairing.alias.clone(),
                    advance,
                });
            }
            Ok(())
        })?;
        if report.iter().any(|r| !r.advance.destroyed.is_empty()) {
            self.checkpoint()?;
        }
        Ok(report)
    }

    /// When the key of `epoch` of this pairing was destroyed, if it was.
    ///
    /// # Errors
    /// Database errors.
    pub fn shredded_at(
        &self,
        pairing: &PairingInfo,
        epoch: Epoch,
    ) -> Result<Option<OffsetDateTime>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT destroyed_at FROM shredded WHERE pairing_id = ?1 AND epoch = ?2",
                params![pairing.id, epoch.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.as_deref().and_then(parse_time))
    }

    /// Reserves the next sending sequence number of (pairing, epoch,
    /// direction) and commits it, with its audit entry, before returning, so
    /// a number is never used twice, even if the process dies right after.
    ///
    /// # Errors
    /// Database errors.
    pub fn next_sequence(
        &self,
        pairing: &PairingInfo,
        epoch: Epoch,
        direction: Direction,
        now: OffsetDateTime,
    ) -> Result<u32> {
        self.in_transaction(|| {
            let last: Option<u32> = self
                .conn
                .query_row(
                    "SELECT last FROM send_sequence WHERE pairing_id = ?1 AND epoch = ?2 AND direction = ?3",
                    params![pairing.id, epoch.to_string(), direction.code()],
                    |r| r.get(0),
                )
                .optional()?;
            let next = last
                .unwrap_or(0)
                .checked_add(1)
                .ok_or(StoreError::Corrupt("sequence numbers exhausted"))?;
            self.conn.execute(
                "INSERT OR REPLACE INTO send_sequence (pairing_id, epoch, direction, last) VALUES (?1, ?2, ?3, ?4)",
                params![pairing.id, epoch.to_string(), direction.code(), next],
            )?;
            self.audit(
                now,
                "encrypt",
                &pairing.alias,
                "ok",
                &[("epoch", epoch.to_string()), ("sequence", next.to_string())],
            )?;
            Ok(next)
        })
    }

    /// Records a received message, with its audit entry; fails (and audits
    /// the rejection) if it was received before.
    ///
    /// # Errors
    /// [`StoreError::Replayed`], or database errors.
    pub fn record_received(
        &self,
        pairing: &PairingInfo,
        id: &ReplayId,
        now: OffsetDateTime,
    ) -> Result<()> {
        let details = [
            ("epoch", id.epoch.to_string()),
            ("direction", id.direction.name().to_owned()),
            ("sequence", id.sequence.to_string()),
        ];
        let fresh = self.in_transaction(|| {
            let inserted = self.conn.execute(
                "INSERT OR IGNORE INTO seen (pairing_id, epoch, direction, sequence) VALUES (?1, ?2, ?3, ?4)",
                params![pairing.id, id.epoch.to_string(), id.direction.code(), id.sequence],
            )?;
            if inserted == 1 {
                self.audit(now, "decrypt", &pairing.alias, "ok", &details)?;
            }
            Ok(inserted == 1)
        })?;
        if !fresh {
            let mut details = details.to_vec();
            details.push(("kind", "replayed".to_owned()));
            self.audit(now, "decrypt_failed", &pairing.alias, "rejected", &details)?;
            return Err(StoreError::Replayed {
                epoch: id.epoch,
                direction: id.direction.name(),
                sequence: id.sequence,
            });
        }
        Ok(())
    }

    // ----- agent: chats, inbox, outbox -----

    /// The pairing whose deep-link token this is, if it is still unused.
    ///
    /// # Errors
    /// Database errors.
    pub fn pairing_by_token(&self, token: &str) -> Result<Option<PairingInfo>> {
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM pairings WHERE token_hash = ?1 AND role = 'physician'",
                [hash],
                |r| r.get(0),
            )
            .optional()?;
        self.pairing_by_id(id)
    }

    fn pairing_by_id(&self, id: Option<i64>) -> Result<Option<PairingInfo>> {
        Ok(match id {
            Some(id) => self.pairings()?.into_iter().find(|p| p.id == id),
            None => None,
        })
    }

    /// Writes `plaintext` sealed into `table.column` of row `id` under
    /// `aad` (rows are inserted first: their id is part of the AAD).
    fn set_sealed(
        &self,
        table: &str,
        column: &str,
        id: i64,
        aad: &str,
        plaintext: &[u8],
    ) -> Result<()> {
        self.conn.execute(
            &format!("UPDATE {table} SET {column} = ?1 WHERE id = ?2"),
            params![self.seal(aad, plaintext), id],
        )?;
        Ok(())
    }

    fn inbox_insert(
        &self,
        pairing: &PairingInfo,
        kind: &str,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO inbox (pairing_id, received_at, kind, body) VALUES (?1, ?2, ?3, X'')",
            params![pairing.id, now_text(now), kind],
        )?;
        let id = self.conn.last_insert_rowid();
        self.set_sealed(
            "inbox",
            "body",
            id,
            &format!("medcrypt/store/v1/inbox:{id}"),
            body,
        )?;
        Ok(id)
    }

    /// Binds a chat to a pairing and uses up the pairing's token.
    ///
    /// # Errors
    /// Database errors (a chat already bound to another pairing among them).
    pub fn bind_chat(
        &self,
        pairing: &PairingInfo,
        chat_id: i64,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO chat_bindings (pairing_id, chat_id, bound_at) VALUES (?1, ?2, ?3)",
                params![pairing.id, chat_id, now_text(now)],
            )?;
            self.conn
                .execute("UPDATE pairings SET token_hash = NULL WHERE id = ?1", [pairing.id])?;
            self.audit(now, "chat_bind", &pairing.alias, "ok", &[])
        })
    }

    /// The pairing bound to a chat.
    ///
    /// # Errors
    /// Database errors.
    pub fn pairing_for_chat(&self, chat_id: i64) -> Result<Option<PairingInfo>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT pairing_id FROM chat_bindings WHERE chat_id = ?1",
                [chat_id],
                |r| r.get(0),
            )
            .optional()?;
        self.pairing_by_id(id)
    }

    /// The chat bound to a pairing.
    ///
    /// # Errors
    /// Database errors.
    pub fn chat_for_pairing(&self, pairing_id: i64) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT chat_id FROM chat_bindings WHERE pairing_id = ?1",
                [pairing_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores a received text in the inbox (encrypted) and returns its number.
    ///
    /// # Errors
    /// Database errors.
    pub fn inbox_add_text(
        &self,
        pairing: &PairingInfo,
        text: &str,
        now: OffsetDateTime,
    ) -> Result<i64> {
        self.in_transaction(|| self.inbox_insert(pairing, "text", text.as_bytes(), now))
    }

    /// Stores a received file in the inbox: its metadata and its content,
    /// read from `content` in 1 MiB encrypted rows.
    ///
    /// # Errors
    /// Database and I/O errors.
    pub fn inbox_add_file(
        &self,
        pairing: &PairingInfo,
        metadata: &crate::protocol::attachment::Metadata,
        content: &mut dyn std::io::Read,
        now: OffsetDateTime,
    ) -> Result<i64> {
        self.in_transaction(|| {
            let json = serde_json::to_vec(metadata).map_err(|_| StoreError::Corrupt("metadata"))?;
            let id = self.inbox_insert(pairing, "file", &json, now)?;
            let mut buf = Zeroizing::new(vec![0u8; INBOX_CHUNK]);
            for idx in 0u64.. {
                let n = crate::protocol::attachment::read_full(content, &mut buf)
                    .map_err(io_err("cannot read the attachment".into()))?;
                if n == 0 {
                    break;
                }
                let aad = format!("medcrypt/store/v1/inbox-chunk:{id}:{idx}");
                self.conn.execute(
                    "INSERT INTO inbox_chunks (inbox_id, idx, data) VALUES (?1, ?2, ?3)",
                    params![id, idx, self.seal(&aad, &buf[..n])],
                )?;
                if n < buf.len() {
                    break;
                }
            }
            Ok(id)
        })
    }

    /// Inbox items after `after_id`, optionally from one pairing, oldest first.
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`].
    pub fn inbox(&self, from: Option<&PairingInfo>, after_id: i64) -> Result<Vec<InboxItem>> {
        let aliases: std::collections::HashMap<i64, String> = self
            .pairings()?
            .into_iter()
            .map(|p| (p.id, p.alias))
            .collect();
        let mut stmt = self.conn.prepare(
            "SELECT id, pairing_id, received_at, kind, body FROM inbox
             WHERE id > ?1 AND (?2 IS NULL OR pairing_id = ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![after_id, from.map(|p| p.id)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let mut items = Vec::new();
        for row in rows {
            let (id, pairing_id, received_at, kind, body) = row?;
            let plain = self.unseal(&format!("medcrypt/store/v1/inbox:{id}"), &body)?;
            let content = if kind == "file" {
                InboxContent::File(
                    serde_json::from_slice(&plain)
                        .map_err(|_| StoreError::Corrupt("inbox metadata"))?,
                )
            } else {
                InboxContent::Text(
                    String::from_utf8(plain.to_vec())
                        .map_err(|_| StoreError::Corrupt("inbox text"))?,
                )
            };
            items.push(InboxItem {
                id,
                alias: aliases.get(&pairing_id).cloned().unwrap_or_default(),
                received_at,
                content,
            });
        }
        Ok(items)
    }

    /// Writes the content of a file in the inbox to `out`.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`], I/O errors.
    pub fn inbox_file_content(&self, id: i64, out: &mut dyn std::io::Write) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx, data FROM inbox_chunks WHERE inbox_id = ?1 ORDER BY idx")?;
        let rows = stmt.query_map([id], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        for (expected, row) in (0u64..).zip(rows) {
            let (idx, data) = row?;
            if idx != expected {
                return Err(StoreError::Corrupt(
                    "an inbox attachment has a missing part",
                ));
            }
            let plain = self.unseal(&format!("medcrypt/store/v1/inbox-chunk:{id}:{idx}"), &data)?;
            out.write_all(&plain)
                .map_err(io_err("cannot write the attachment".into()))?;
        }
        Ok(())
    }

    /// Queues an encrypted item (wire text or `.medcrypt` bytes) for the agent.
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox_queue(
        &self,
        pairing: &PairingInfo,
        kind: OutboxKind,
        payload: &[u8],
        now: OffsetDateTime,
    ) -> Result<i64> {
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT INTO outbox (pairing_id, created_at, kind, payload, state, next_attempt_at)
                 VALUES (?1, ?2, ?3, X'', 'queued', ?2)",
                params![pairing.id, now_text(now), kind.name()],
            )?;
            let id = self.conn.last_insert_rowid();
            self.set_sealed(
                "outbox",
                "payload",
                id,
                &format!("medcrypt/store/v1/outbox:{id}"),
                payload,
            )?;
            self.audit(
                now,
                "send_queued",
                &pairing.alias,
                "ok",
                &[("kind", kind.name().to_owned()), ("outbox", id.to_string())],
            )?;
            Ok(id)
        })
    }

    /// Outbox items, all or only those due for (re)delivery at `due_at`.
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox(&self, due_at: Option<OffsetDateTime>) -> Result<Vec<OutboxItem>> {
        let aliases: std::collections::HashMap<i64, String> = self
            .pairings()?
            .into_iter()
            .map(|p| (p.id, p.alias))
            .collect();
        let mut stmt = self.conn.prepare(
            "SELECT id, pairing_id, created_at, kind, state, attempts, next_attempt_at, last_error
             FROM outbox ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(OutboxItem {
                id: r.get(0)?,
                pairing_id: r.get(1)?,
                alias: String::new(),
                created_at: r.get(2)?,
                kind: if r.get::<_, String>(3)? == "document" {
                    OutboxKind::Document
                } else {
                    OutboxKind::Text
                },
                state: r.get(4)?,
                attempts: r.get(5)?,
                next_attempt_at: r.get(6)?,
                last_error: r.get(7)?,
            })
        })?;
        let mut items = Vec::new();
        for row in rows {
            let mut item = row?;
            item.alias = aliases.get(&item.pairing_id).cloned().unwrap_or_default();
            let due = due_at.is_none_or(|at| {
                item.state == "queued"
                    && parse_time(&item.next_attempt_at).is_none_or(|next| next <= at)
            });
            if due {
                items.push(item);
            }
        }
        Ok(items)
    }

    /// The payload of an outbox item.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`].
    pub fn outbox_payload(&self, id: i64) -> Result<Zeroizing<Vec<u8>>> {
        let blob: Vec<u8> =
            self.conn
                .query_row("SELECT payload FROM outbox WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
        self.unseal(&format!("medcrypt/store/v1/outbox:{id}"), &blob)
    }

    /// Moves an outbox item to `state` (`sending`, `sent`, `queued` for a
    /// retry at `next_attempt_at`, `uncertain`, `failed`).
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox_set_state(
        &self,
        id: i64,
        state: &str,
        next_attempt_at: Option<OffsetDateTime>,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.in_transaction(|| {
            let attempts_delta = i64::from(state == "sending");
            self.conn.execute(
                "UPDATE outbox SET state = ?1, attempts = attempts + ?2,
                   next_attempt_at = COALESCE(?3, next_attempt_at), last_error = ?4 WHERE id = ?5",
                params![state, attempts_delta, next_attempt_at.map(now_text), error, id],
            )?;
            if matches!(state, "sent" | "failed" | "uncertain") {
                let alias: String = self.conn.query_row(
                    "SELECT p.alias FROM outbox o JOIN pairings p ON p.id = o.pairing_id WHERE o.id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                let outcome = if state == "sent" { "ok" } else { "failed" };
                self.audit(now, &format!("send_{state}"), &alias, outcome, &[("outbox", id.to_string())])?;
            }
            Ok(())
        })
    }

    /// After a crash, items caught in `sending` may or may not have reached
    /// Telegram: they become `uncertain` and are not sent again unless the
    /// owner asks (`medcrypt outbox retry ID`), so nothing is sent twice.
    ///
    /// # Errors
    /// Database errors.
    pub fn outbox_recover(&self, now: OffsetDateTime) -> Result<usize> {
        let stuck: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM outbox WHERE state = 'sending'")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for id in &stuck {
            self.outbox_set_state(
                *id,
                "uncertain",
                None,
                Some("interrupted while sending: check the chat, then `medcrypt outbox retry`"),
                now,
            )?;
        }
        Ok(stuck.len())
    }

    /// Queues an uncertain or failed item again.
    ///
    /// # Errors
    /// Database errors; [`StoreError::Corrupt`] when there is no such item.
    pub fn outbox_retry(&self, id: i64, now: OffsetDateTime) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE outbox SET state = 'queued', next_attempt_at = ?1, last_error = NULL
             WHERE id = ?2 AND state IN ('uncertain', 'failed')",
            params![now_text(now), id],
        )?;
        if changed == 0 {
            return Err(StoreError::Corrupt(
                "no uncertain or failed outbox item with that number",
            ));
        }
        Ok(())
    }

    /// A value the agent keeps between runs (update offset, owner chat, …).
    ///
    /// # Errors
    /// Database errors.
    pub fn agent_value(&self, key: &str) -> Result<Option<String>> {
        self.setting(&format!("agent.{key}"))
    }

    /// Sets an agent value (inside the caller's transaction, if any).
    ///
    /// # Errors
    /// Database errors.
    pub fn set_agent_value(&self, key: &str, value: &str) -> Result<()> {
        self.set_meta(&format!("agent.{key}"), value)
    }

    /// Keeps one part of a split attachment received in a chat until all
    /// have arrived; returns every part once the set is complete.
    ///
    /// # Errors
    /// Database errors.
    pub fn telegram_part(
        &self,
        header: &crate::protocol::attachment::PartHeader,
        chat_id: i64,
        data: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>> {
        self.in_transaction(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO telegram_parts (file_id, idx, count, chat_id, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![header.file_id.to_vec(), header.index, header.count, chat_id, data],
            )?;
            let mut stmt = self.conn.prepare(
                "SELECT data FROM telegram_parts WHERE file_id = ?1 AND count = ?2 AND chat_id = ?3 ORDER BY idx",
            )?;
            let parts: Vec<Vec<u8>> = stmt
                .query_map(params![header.file_id.to_vec(), header.count, chat_id], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            if parts.len() == usize::from(header.count) {
                self.conn.execute(
                    "DELETE FROM telegram_parts WHERE file_id = ?1",
                    [header.file_id.to_vec()],
                )?;
                Ok(Some(parts))
            } else {
                Ok(None)
            }
        })
    }

    // ----- break-glass escrow -----

    /// Makes a new escrow set: a random escrow key wraps the master key, and
    /// the escrow key (with the audit verification key, if given) is split
    /// into shares. Earlier sets are retired. The shares are returned once
    /// and never stored; only their digests are.
    ///
    /// # Errors
    /// [`StoreError::Escrow`] for a bad threshold; database errors.
    pub fn escrow_split(
        &self,
        custodians: &[String],
        threshold: usize,
        audit_key: Option<SealingKey>,
        now: OffsetDateTime,
    ) -> Result<Vec<crate::protocol::shares::ShareText>> {
        let secret = crate::protocol::shares::EscrowSecret {
            escrow_key: Zeroizing::new(random_bytes()),
            audit_key,
        };
        let has_audit = secret.audit_key.is_some();
        let shares = crate::protocol::shares::split(&secret, threshold, custodians)
            .map_err(|e| StoreError::Escrow(e.to_string()))?;
        let set_id = shares
            .first()
            .map(|s| hex::encode(s.set_id))
            .unwrap_or_default();
        self.in_transaction(|| {
            self.retire_escrow_sets(now)?;
            let wrapped = aead_seal(&secret.escrow_key, &format!("{WRAP_LABEL}:escrow:{set_id}"), self.master.0.expose_secret());
            self.conn.execute(
                "INSERT INTO unlock (method, kdf, iterations, salt, wrapped_key) VALUES (?1, 'shamir-blahaj', 1, X'', ?2)",
                params![format!("escrow:{set_id}"), wrapped],
            )?;
            let names = serde_json::to_string(custodians).unwrap_or_default();
            let digests: Vec<String> = shares.iter().map(crate::protocol::shares::ShareText::digest).collect();
            self.conn.execute(
                "INSERT INTO escrow_sets (set_id, threshold, custodians, digests, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![set_id, threshold, names, serde_json::to_string(&digests).unwrap_or_default(), now_text(now)],
            )?;
            self.audit(
                now,
                "escrow_split",
                "",
                "ok",
                &[
                    ("set", set_id.clone()),
                    ("threshold", format!("{threshold} of {}", custodians.len())),
                    ("custodians", custodians.join(", ")),
                    ("with_audit_key", has_audit.to_string()),
                ],
            )
        })?;
        Ok(shares)
    }

    /// Retires every active escrow set: their wraps of the master key are
    /// destroyed, so their shares open nothing any more.
    fn retire_escrow_sets(&self, now: OffsetDateTime) -> Result<()> {
        self.conn
            .execute("DELETE FROM unlock WHERE method LIKE 'escrow:%'", [])?;
        self.conn.execute(
            "UPDATE escrow_sets SET retired_at = ?1 WHERE retired_at IS NULL",
            [now_text(now)],
        )?;
        self.wal_checkpoint_due.set(true);
        Ok(())
    }

    /// Opens the store with custodians' shares (break-glass). Each share is
    /// checked against the split's digests before combining, and the
    /// recovered key must unwrap the master key.
    ///
    /// # Errors
    /// [`StoreError::Escrow`] naming a damaged share, a foreign or retired
    /// set, or too few shares; [`StoreError::NotFound`]; database errors.
    pub fn open_with_escrow(
        path: &Path,
        shares: &[crate::protocol::shares::ShareText],
    ) -> Result<(Self, crate::protocol::shares::EscrowSecret)> {
        let conn = Self::connect(path)?;
        let first = shares
            .first()
            .ok_or_else(|| StoreError::Escrow("no shares given".into()))?;
        let set_id = hex::encode(first.set_id);
        let row: Option<(String, String, Option<String>)> = conn
            .query_row(
                "SELECT custodians, digests, retired_at FROM escrow_sets WHERE set_id = ?1",
                [&set_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((_, digests, retired)) = row else {
            if shares.iter().any(|s| s.set_id != first.set_id) {
                return Err(StoreError::Escrow(
                    crate::protocol::shares::ShareError::DifferentSets.to_string(),
                ));
            }
            return Err(StoreError::Escrow(
                "these shares are not from a split of this store".into(),
            ));
        };
        if let Some(at) = retired {
            return Err(StoreError::Escrow(format!(
                "this share set was retired on {at} (after an emergency access or a new split): its shares open nothing any more"
            )));
        }
        let digests: Vec<String> = serde_json::from_str(&digests).unwrap_or_default();
        for (i, share) in shares.iter().enumerate() {
            if share.set_id != first.set_id {
                return Err(StoreError::Escrow(
                    crate::protocol::shares::ShareError::DifferentSets.to_string(),
                ));
            }
            let expected = usize::from(share.index)
                .checked_sub(1)
                .and_then(|k| digests.get(k));
            if expected != Some(&share.digest()) {
                return Err(StoreError::Escrow(format!(
                    "share {} (custodian {}) is damaged: it does not match the split it claims to be from",
                    i + 1,
                    share.custodian
                )));
            }
        }
        let secret = crate::protocol::shares::combine(shares)
            .map_err(|e| StoreError::Escrow(e.to_string()))?;
        let wrapped: Vec<u8> = conn
            .query_row(
                "SELECT wrapped_key FROM unlock WHERE method = ?1",
                [format!("escrow:{set_id}")],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::Escrow(
                    "this share set was retired: its shares open nothing any more".into(),
                )
            })?;
        let plain = aead_open(
            &secret.escrow_key,
            &format!("{WRAP_LABEL}:escrow:{set_id}"),
            &wrapped,
        )
        .ok_or_else(|| {
            StoreError::Escrow("the shares do not combine to this store's key".into())
        })?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("escrowed key of wrong length"))?;
        let store = Self::assemble(conn, MasterKey(SecretBox::new(Box::new(bytes))), path)?;
        Ok((store, secret))
    }

    /// Ends a break-glass access: retires the active share sets.
    ///
    /// # Errors
    /// Database errors.
    pub fn escrow_retire(&self, now: OffsetDateTime) -> Result<()> {
        self.in_transaction(|| {
            self.retire_escrow_sets(now)?;
            self.audit(now, "escrow_retire", "", "ok", &[])
        })
    }

    /// Replaces the master key: every secret column is re-encrypted under a
    /// new random key, which is wrapped under `passphrase` and a new recovery
    /// code (returned, to show once); old wraps (passphrase, recovery code,
    /// escrow) are destroyed.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`].
    pub fn rotate_master_key(
        &mut self,
        passphrase: &SecretString,
        now: OffsetDateTime,
    ) -> Result<RecoveryCode> {
        let new_master = MasterKey(SecretBox::new(Box::new(random_bytes())));
        let recovery = RecoveryCode::from_bytes(random_bytes());
        let old = Zeroizing::new(*self.master.0.expose_secret());
        // Every secret column: its table, column, and the SQL that yields
        // each row's id and the AAD it was sealed with.
        let columns: [(&str, &str, &str); 7] = [
            (
                "epoch_keys",
                "key",
                "'medcrypt/store/v1/epoch-key:' || pairing_id || ':' || epoch",
            ),
            (
                "pairings",
                "legacy_secret",
                "'medcrypt/store/v1/legacy-secret:' || id",
            ),
            (
                "pairings",
                "legacy_patient_id",
                "'medcrypt/store/v1/legacy-patient-id:' || id",
            ),
            ("inbox", "body", "'medcrypt/store/v1/inbox:' || id"),
            (
                "inbox_chunks",
                "data",
                "'medcrypt/store/v1/inbox-chunk:' || inbox_id || ':' || idx",
            ),
            ("outbox", "payload", "'medcrypt/store/v1/outbox:' || id"),
            (
                "audit_state",
                "enc_key",
                "'medcrypt/store/v1/audit-enc-key'",
            ),
        ];
        self.in_transaction(|| {
            for (table, column, aad_sql) in columns {
                let rows: Vec<(i64, String, Vec<u8>)> = {
                    let mut stmt = self.conn.prepare(&format!(
                        "SELECT rowid, {aad_sql}, {column} FROM {table} WHERE {column} IS NOT NULL AND length({column}) > 0"
                    ))?;
                    let mapped = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    mapped.collect::<std::result::Result<_, _>>()?
                };
                for (rowid, aad, blob) in rows {
                    let plain = aead_open(&old, &aad, &blob)
                        .ok_or(StoreError::Corrupt("an encrypted value fails authentication"))?;
                    let sealed = aead_seal(new_master.0.expose_secret(), &aad, &plain);
                    self.conn.execute(
                        &format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"),
                        params![sealed, rowid],
                    )?;
                }
            }
            // The audit sealing key, whose AAD names its day.
            let (day, blob): (u32, Vec<u8>) =
                self.conn
                    .query_row("SELECT day, sealing_key FROM audit_state WHERE id = 1", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
            let plain = aead_open(&old, &sealing_key_aad(day), &blob)
                .ok_or(StoreError::Corrupt("the audit key fails authentication"))?;
            self.conn.execute(
                "UPDATE audit_state SET sealing_key = ?1 WHERE id = 1",
                [aead_seal(new_master.0.expose_secret(), &sealing_key_aad(day), &plain)],
            )?;
            self.retire_escrow_sets(now)?;
            Ok(())
        })?;
        self.master = new_master;
        self.in_transaction(|| {
            self.wrap_under_passphrase(passphrase)?;
            self.wrap_under_recovery(&recovery)?;
            self.audit(now, "master_key_rotated", "", "ok", &[])
        })?;
        self.checkpoint()?;
        Ok(recovery)
    }

    // ----- audit log -----

    fn audit_enc_key(&self) -> Result<Zeroizing<Vec<u8>>> {
        let blob: Vec<u8> = self
            .conn
            .query_row("SELECT enc_key FROM audit_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(StoreError::Corrupt("the audit log has no state"))?;
        self.unseal(AUDIT_ENC_KEY_AAD, &blob)
    }

    /// Creates the audit state: a random encryption key and a random first
    /// sealing key for today, which is returned as the verification key.
    fn start_audit(&self, now: OffsetDateTime) -> Result<SealingKey> {
        let enc: [u8; 32] = random_bytes();
        let verification = SealingKey::generate(day_of(now));
        self.conn.execute(
            "INSERT INTO audit_state (id, enc_key, sealing_key, day, start_day, last_seq, last_mac)
             VALUES (1, ?1, ?2, ?3, ?3, 0, ?4)",
            params![
                self.seal(AUDIT_ENC_KEY_AAD, &enc),
                self.seal(
                    &sealing_key_aad(verification.day()),
                    verification.expose_bytes()
                ),
                verification.day(),
                vec![0u8; 32]
            ],
        )?;
        Ok(verification)
    }

    fn load_sealer(&self) -> Result<Sealer> {
        let (sealing, day, last_seq, last_mac): (Vec<u8>, u32, u64, Vec<u8>) = self
            .conn
            .query_row(
                "SELECT sealing_key, day, last_seq, last_mac FROM audit_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?
            .ok_or(StoreError::Corrupt("the audit log has no state"))?;
        let key = self.unseal(&sealing_key_aad(day), &sealing)?;
        let key: &[u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit sealing key of wrong length"))?;
        let enc = self.audit_enc_key()?;
        let enc: &[u8; 32] = enc
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit key of wrong length"))?;
        let last_mac: [u8; 32] = last_mac
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit head of wrong length"))?;
        Ok(Sealer::new(
            enc,
            SealingKey::from_bytes(day, key),
            last_seq,
            last_mac,
        ))
    }

    /// Appends an audit entry, in the caller's transaction if there is one.
    /// If it cannot be written, the whole operation fails (fail closed).
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`].
    pub fn audit(
        &self,
        now: OffsetDateTime,
        action: &str,
        subject: &str,
        outcome: &str,
        details: &[(&str, String)],
    ) -> Result<()> {
        self.in_transaction(|| {
            let mut sealer = self.load_sealer()?;
            let beyond_head: bool = self.conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM audit_log WHERE seq > ?1)",
                [sealer.last_seq()],
                |r| r.get(0),
            )?;
            if beyond_head {
                return Err(StoreError::Corrupt(
                    "the audit log does not end where this store left it: it was altered \
                     (run `medcrypt audit verify --code CODE`)",
                ));
            }
            let day_before = sealer.key().day();
            let event = AuditEvent {
                time: now_text(now),
                actor: self.actor.clone(),
                action: action.to_owned(),
                subject: subject.to_owned(),
                outcome: outcome.to_owned(),
                details: details
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            };
            for record in sealer.append(&event, now) {
                self.conn.execute(
                    "INSERT INTO audit_log (seq, day, kind, body, mac) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        record.seq,
                        record.day,
                        record.kind.code(),
                        record.body,
                        record.mac.to_vec()
                    ],
                )?;
            }
            let key = sealer.key();
            self.conn.execute(
                "UPDATE audit_state SET sealing_key = ?1, day = ?2, last_seq = ?3, last_mac = ?4 WHERE id = 1",
                params![
                    self.seal(&sealing_key_aad(key.day()), key.expose_bytes()),
                    key.day(),
                    sealer.last_seq(),
                    sealer.last_mac().to_vec()
                ],
            )?;
            if key.day() != day_before {
                // Yesterday's key was overwritten: clear it from the WAL too.
                self.wal_checkpoint_due.set(true);
            }
            Ok(())
        })
    }

    /// Every record of the log, in order.
    ///
    /// # Errors
    /// Database errors, or [`StoreError::Corrupt`] for a malformed row.
    pub fn audit_records(&self) -> Result<Vec<Record>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, day, kind, body, mac FROM audit_log ORDER BY seq")?;
        // Body and MAC are read as bytes whatever their SQL type: a value
        // edited into TEXT is tampering for `verify` to name, not a crash.
        let bytes = |value: rusqlite::types::ValueRef<'_>| match value {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            _ => Vec::new(),
        };
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u64>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u8>(2)?,
                bytes(r.get_ref(3)?),
                bytes(r.get_ref(4)?),
            ))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (seq, day, kind, body, mac) = row?;
            records.push(Record {
                seq,
                day,
                kind: RecordKind::from_code(kind)
                    .ok_or(StoreError::Corrupt("audit record of unknown kind"))?,
                body,
                // A MAC of the wrong length cannot verify: zeros stand in,
                // and verification names the record.
                mac: mac.try_into().unwrap_or([0u8; 32]),
            });
        }
        Ok(records)
    }

    /// The log's records with their decrypted events (`None` for a record
    /// whose body fails authentication).
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_events(&self) -> Result<Vec<(Record, Option<AuditEvent>)>> {
        let enc = self.audit_enc_key()?;
        let enc: &[u8; 32] = enc
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit key of wrong length"))?;
        Ok(self
            .audit_records()?
            .into_iter()
            .map(|record| {
                let event = crate::protocol::audit::open_body(enc, &record);
                (record, event)
            })
            .collect())
    }

    /// Verifies the log: from the verification key when given (every MAC),
    /// else from the current sealing key (today's MACs, the structure and
    /// every body). The head the store itself recorded must be reached.
    ///
    /// # Errors
    /// Database errors; the verdict is the inner result.
    pub fn audit_verify(
        &self,
        verification: Option<&SealingKey>,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<std::result::Result<VerifyReport, AuditFault>> {
        let records = self.audit_records()?;
        let sealer = self.load_sealer()?;
        let enc = self.audit_enc_key()?;
        let enc: &[u8; 32] = enc
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit key of wrong length"))?;
        let trust = match verification {
            Some(key) => Trust::VerificationKey(key),
            None => Trust::CurrentKey(sealer.key()),
        };
        Ok(crate::protocol::audit::verify(
            &records,
            trust,
            Some(enc),
            sealer.last_seq(),
            checkpoint,
        ))
    }

    /// The log's head: sequence number and MAC of the last record.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_head(&self) -> Result<(u64, [u8; 32])> {
        let sealer = self.load_sealer()?;
        Ok((sealer.last_seq(), *sealer.last_mac()))
    }

    /// The master key, for escrow and for tests that prove it never reaches
    /// the disk unwrapped. Handle with care.
    pub fn expose_master_key(&self) -> &[u8; 32] {
        self.master.0.expose_secret()
    }
}

const AUDIT_ENC_KEY_AAD: &str = "medcrypt/store/v1/audit-enc-key";

fn sealing_key_aad(day: u32) -> String {
    format!("medcrypt/store/v1/audit-sealing-key:{day}")
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
fn record_unlock_failure(conn: &Connection, now: OffsetDateTime, method: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO unlock_failures (time, method) VALUES (?1, ?2)",
        params![now_text(now), method],
    )?;
    Ok(())
}

fn unwrap_master(kek: &SecretBox<[u8; 32]>, method: &str, wrapped: &[u8]) -> Option<MasterKey> {
    let plain = aead_open(
        kek.expose_secret(),
        &format!("{WRAP_LABEL}:{method}"),
        wrapped,
    )?;
    let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(MasterKey(SecretBox::new(Box::new(bytes))))
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

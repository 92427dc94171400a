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

use crate::codes::RecoveryCode;
use crate::epoch::{Epoch, format_utc};
use crate::keys::{Advance, Direction, EpochChain, EpochKey, PairingToken, Role, SafetyNumber};
use crate::legacy::LegacyPairing;
use crate::wire::ReplayId;

/// PBKDF2 iterations for new passphrase wraps. Stored per wrap, so a later
/// version can raise it and re-wrap on the next unlock.
pub const PASSPHRASE_ITERATIONS: u32 = 600_000;
const SCHEMA_VERSION: u32 = 1;
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
    /// and returns it with the recovery code, which must be shown once.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`], or I/O and database errors.
    pub fn create(
        path: &Path,
        passphrase: &SecretString,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<(Self, RecoveryCode)> {
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
    ) -> Result<(Self, RecoveryCode)> {
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        let master = MasterKey(SecretBox::new(Box::new(random_bytes())));
        let recovery = RecoveryCode::from_bytes(random_bytes());
        let store = Self {
            conn,
            master,
            path: path.to_owned(),
        };
        store.in_transaction(|| {
            store.set_meta("name", name)?;
            store.set_meta("created_at", &now_text(now))?;
            store.wrap_under_passphrase(passphrase)?;
            store.wrap_under_recovery(&recovery)
        })?;
        Ok((store, recovery))
    }

    /// Opens and unlocks the store with the passphrase.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::WrongPassphrase`], or database errors.
    pub fn open(path: &Path, passphrase: &SecretString) -> Result<Self> {
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
        let master =
            unwrap_master(&kek, "passphrase", &wrapped).ok_or(StoreError::WrongPassphrase)?;
        let store = Self {
            conn,
            master,
            path: path.to_owned(),
        };
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
    pub fn open_with_recovery(path: &Path, code: &RecoveryCode) -> Result<Self> {
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
        let master =
            unwrap_master(&kek, "recovery", &wrapped).ok_or(StoreError::WrongRecoveryCode)?;
        Ok(Self {
            conn,
            master,
            path: path.to_owned(),
        })
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
    pub fn change_passphrase(&self, passphrase: &SecretString) -> Result<()> {
        self.wrap_under_passphrase(passphrase)
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

    /// Runs `f` inside one IMMEDIATE transaction: all of it is committed, or
    /// none of it.
    fn in_transaction<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f() {
            Ok(value) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(value)
            }
            Err(err) => {
                let _ = self.conn.execute_batch("ROLLBACK");
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
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        if value.is_empty() {
            self.conn
                .execute("DELETE FROM meta WHERE key = ?1", [key])?;
            Ok(())
        } else {
            self.set_meta(key, value)
        }
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
        &mut self,
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
            Ok(id)
        })
    }

    /// Stores a legacy v1 pairing (long-lived shared secret and patient id).
    ///
    /// # Errors
    /// [`StoreError::DuplicateAlias`], or database errors.
    pub fn add_legacy_pairing(
        &mut self,
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
            self.conn.execute(
                "UPDATE pairings SET legacy_secret = ?1, legacy_patient_id = ?2 WHERE id = ?3",
                params![
                    self.seal(
                        &format!("medcrypt/store/v1/legacy-secret:{id}"),
                        secret.expose_secret().as_bytes()
                    ),
                    self.seal(
                        &format!("medcrypt/store/v1/legacy-patient-id:{id}"),
                        patient_id.as_bytes()
                    ),
                    id
                ],
            )?;
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
    pub fn remove_pairing(&mut self, alias: &str) -> Result<()> {
        let pairing = self.pairing(alias)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM pairings WHERE id = ?1", [pairing.id])?;
        tx.commit()?;
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
    pub fn rotate(&mut self, now: OffsetDateTime) -> Result<Vec<Rotation>> {
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
    /// direction) and commits it before returning, so a number is never
    /// used twice, even if the process dies right after.
    ///
    /// # Errors
    /// Database errors.
    pub fn next_sequence(
        &mut self,
        pairing: &PairingInfo,
        epoch: Epoch,
        direction: Direction,
    ) -> Result<u32> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last: Option<u32> = tx
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
        tx.execute(
            "INSERT OR REPLACE INTO send_sequence (pairing_id, epoch, direction, last) VALUES (?1, ?2, ?3, ?4)",
            params![pairing.id, epoch.to_string(), direction.code(), next],
        )?;
        tx.commit()?;
        Ok(next)
    }

    /// Records a received message; fails if it was received before.
    ///
    /// # Errors
    /// [`StoreError::Replayed`], or database errors.
    pub fn record_received(&mut self, pairing: &PairingInfo, id: &ReplayId) -> Result<()> {
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO seen (pairing_id, epoch, direction, sequence) VALUES (?1, ?2, ?3, ?4)",
            params![pairing.id, id.epoch.to_string(), id.direction.code(), id.sequence],
        )?;
        if inserted == 0 {
            return Err(StoreError::Replayed {
                epoch: id.epoch,
                direction: id.direction.name(),
                sequence: id.sequence,
            });
        }
        Ok(())
    }

    /// The master key, for escrow and for tests that prove it never reaches
    /// the disk unwrapped. Handle with care.
    pub fn expose_master_key(&self) -> &[u8; 32] {
        self.master.0.expose_secret()
    }
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

//! The use cases: what a physician, a patient or a custodian does, over one
//! unlocked store, returning typed results and typed errors.
//!
//! Every front end — the command line, the agents, the local app — calls
//! these and only parses input and presents results, so a rule lives in one
//! place. One file per group: `messages` (encrypt and decrypt text),
//! `files` (attachments to and from files), `pairing`, `mailbox` (the
//! agent's inbox and outbox), `keys`, `audit`, `escrow` (break-glass).
//! Depends on the store and the protocol core; never on a front end, a
//! transport, clap or an HTTP library.

mod audit;
mod error;
mod escrow;
mod files;
mod keys;
mod mailbox;
mod messages;
mod pairing;
mod text;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

pub use audit::AuditFilter;
pub use error::{Error, ErrorKind, Result};
pub use escrow::{CombineAction, CombineOutcome, SplitOutcome, read_share, share_page};
pub use files::{
    DecryptedFile, Destination, Layout, Progress, TempFile, free_path, remove_live_temporaries,
};
pub use keys::{KeyState, LiveKey, PairingKeys, shred_due};
pub use mailbox::{Queued, SendContent};
pub use messages::{DecryptedText, EncryptedText, Opened};
pub use pairing::{
    AcceptedPairing, DEFAULT_INVITE_VALIDITY, InviteSource, MAX_INVITE_VALIDITY, NewPairing,
    check_alias,
};
pub use text::{MARGIN, framed, printable, printable_line};

use crate::protocol::audit::SealingKey;
use crate::protocol::codes::RecoveryCode;
use crate::store::{Retention, Rotation, Store};

/// Where "now" comes from: the system clock, or an instant that then runs
/// on in real time (`MEDCRYPT_NOW`, for tests and demonstrations, so that a
/// long-running agent still sees retries and ticks come due).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// Starts at `at` and runs on from there.
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        let since = std::time::Instant::now();
        Self(Arc::new(move || {
            at + chrono::TimeDelta::from_std(since.elapsed()).unwrap_or_default()
        }))
    }

    /// A clock given by a function (tests drive time with it).
    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Clock({})",
            crate::protocol::epoch::format_utc(self.now())
        )
    }
}

/// A clock that moved since this store was last used further than time
/// usually does: checked before anything is destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockJump {
    /// More than [`CLOCK_AHEAD_LIMIT`] after the latest time the store saw:
    /// right after a long absence, wrong if the date was mistyped.
    Ahead {
        /// The latest time the store saw.
        latest: DateTime<Utc>,
    },
    /// Earlier than the latest time the store saw (beyond clock skew): the
    /// clock was set back, or the store came from a computer ahead of it.
    Behind {
        /// The latest time the store saw.
        latest: DateTime<Utc>,
    },
}

/// How far ahead of the latest time seen the clock may move without asking.
pub const CLOCK_AHEAD_LIMIT: chrono::TimeDelta = chrono::TimeDelta::days(3);

/// What `init` shows once and never stores: the recovery code and the audit
/// verification key.
#[derive(Debug)]
pub struct Credentials {
    /// Opens the store if the passphrase is lost.
    pub recovery: RecoveryCode,
    /// Verifies the whole audit log.
    pub verification: SealingKey,
    /// The store's id, committed in the verification code.
    pub store_id: [u8; 5],
}

impl Credentials {
    /// The audit verification code to show.
    pub fn verification_code(&self) -> zeroize::Zeroizing<String> {
        crate::protocol::codes::verification_code(&self.verification, &self.store_id)
    }
}

/// An unlocked store and the clock its use cases run on.
#[derive(Debug)]
pub struct Session {
    store: Store,
    clock: Clock,
}

impl Session {
    /// Creates a new store at `path`.
    ///
    /// # Errors
    /// The store's errors (it exists already, I/O, database).
    pub fn create(
        path: &Path,
        passphrase: &SecretString,
        name: &str,
        retention: Retention,
        clock: Clock,
    ) -> Result<(Self, Credentials)> {
        check_setting("name", name)?;
        let (store, recovery, verification) =
            Store::create(path, passphrase, name, retention, clock.now())?;
        let store_id = store
            .store_id()?
            .and_then(|id| hex::decode(id).ok())
            .and_then(|id| id.try_into().ok())
            .unwrap_or_default();
        Ok((
            Self { store, clock },
            Credentials {
                recovery,
                verification,
                store_id,
            },
        ))
    }

    /// Unlocks the store at `path` with its passphrase.
    ///
    /// # Errors
    /// No store, wrong passphrase, a store modified outside MedCrypt,
    /// database errors.
    pub fn unlock(path: &Path, passphrase: &SecretString, clock: Clock) -> Result<Self> {
        let session = Self::unlock_for_audit(path, passphrase, clock)?;
        session.integrity()?;
        Ok(session)
    }

    /// Unlocks the store at `path` with its passphrase even when it was
    /// modified outside MedCrypt, for the audit log's commands, which say
    /// what they find; [`Session::integrity`] tells whether it was.
    ///
    /// # Errors
    /// No store, wrong passphrase, database errors.
    pub fn unlock_for_audit(path: &Path, passphrase: &SecretString, clock: Clock) -> Result<Self> {
        let store = Store::open(path, passphrase, clock.now())?;
        Ok(Self { store, clock })
    }

    /// Whether the store was found modified outside MedCrypt at unlock.
    ///
    /// # Errors
    /// [`ErrorKind::Tampered`] naming what was found.
    pub fn integrity(&self) -> Result<()> {
        Ok(self.store.integrity()?)
    }

    /// Unlocks the store at `path` with its recovery code.
    ///
    /// # Errors
    /// No store, wrong code, a store modified outside MedCrypt, database
    /// errors.
    pub fn recover(path: &Path, code: &RecoveryCode, clock: Clock) -> Result<Self> {
        let store = Store::open_with_recovery(path, code, clock.now())?;
        store.integrity()?;
        Ok(Self { store, clock })
    }

    /// A session over a store opened another way (break-glass).
    pub fn from_store(store: Store, clock: Clock) -> Self {
        Self { store, clock }
    }

    /// The store, for what the agent keeps of its own (offsets, bindings).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current instant of this session's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Whether the clock jumped since the store was last used (checked
    /// before [`Session::rotate`], which may destroy keys).
    ///
    /// # Errors
    /// Database errors, a store modified outside MedCrypt.
    pub fn clock_jump(&self) -> Result<Option<ClockJump>> {
        let now = self.now();
        Ok(match self.store.latest_seen()? {
            Some(latest) if now > latest + CLOCK_AHEAD_LIMIT => Some(ClockJump::Ahead { latest }),
            Some(latest) if now + crate::protocol::epoch::CLOCK_SKEW_ALLOWANCE < latest => {
                Some(ClockJump::Behind { latest })
            }
            _ => None,
        })
    }

    /// Takes the clock as right (after the owner confirmed a jump, or the
    /// messenger's server time agreed with it).
    ///
    /// # Errors
    /// Database errors.
    pub fn accept_clock(&self) -> Result<()> {
        Ok(self.store.reset_time(self.now())?)
    }

    /// Records the current time as seen (a later jump is measured from it).
    ///
    /// # Errors
    /// Database errors.
    pub fn note_time(&self) -> Result<()> {
        Ok(self.store.note_time(self.now())?)
    }

    /// Ratchets every pairing into the current month and destroys keys past
    /// their grace period.
    ///
    /// # Errors
    /// Database errors.
    pub fn rotate(&self) -> Result<Vec<Rotation>> {
        Ok(self.store.rotate(self.now())?)
    }

    /// Writes a consistent copy of the store to `dest` (mode 0600, through a
    /// private temporary beside it and a rename), while other commands and
    /// the agent keep using the store. Without `overwrite`, an existing
    /// `dest` is refused.
    ///
    /// # Errors
    /// `dest` exists or is the store itself, the directory cannot be
    /// written, database errors.
    pub fn backup(&self, dest: &Path, overwrite: bool) -> Result<()> {
        if dest.file_name().is_none() || dest.is_dir() {
            return Err(Error::usage(
                format!("{} is a directory, not a file name", dest.display()),
                "give the backup's file name, e.g. backup-2026-11-24.sqlite",
            ));
        }
        if let (Ok(a), Ok(b)) = (dest.canonicalize(), self.store.path().canonicalize())
            && a == b
        {
            return Err(Error::usage(
                format!("{} is the store itself", dest.display()),
                "give another file name for the backup",
            ));
        }
        // The database's own side files beside it (`-journal`, `-wal`,
        // `-shm`, `-mj…`): a backup there would be taken for one and lock
        // the store, or be deleted by it. Compared without case (macOS and
        // Windows), with the store's path as given and as resolved.
        let folder = |p: &Path| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .canonicalize()
                .ok()
        };
        let side_file_of = |store: &Path| {
            let (Some(name), Some(store_name)) = (dest.file_name(), store.file_name()) else {
                return false;
            };
            let name = name.to_string_lossy().to_lowercase();
            let store_name = store_name.to_string_lossy().to_lowercase();
            let side = name.strip_prefix(&store_name).is_some_and(|rest| {
                ["-journal", "-wal", "-shm"].contains(&rest) || rest.starts_with("-mj")
            });
            side && folder(dest).is_some() && folder(dest) == folder(store)
        };
        let resolved = self.store.path().canonicalize().ok();
        if side_file_of(self.store.path()) || resolved.as_deref().is_some_and(side_file_of) {
            return Err(Error::usage(
                format!("{} is a name the store's own files use", dest.display()),
                "give the backup another name, e.g. backup-2026-11-24.sqlite",
            ));
        }
        if !overwrite && dest.exists() {
            return Err(Error::refused(
                format!("{} already exists", dest.display()),
                "nothing was written; add --force to replace it, or choose another name",
            ));
        }
        let temp = TempFile::beside(self, dest)?;
        self.store.backup_into(temp.path())?;
        temp.persist(dest, overwrite)?;
        // Audited once it exists; if that cannot be recorded, it goes.
        if let Err(err) = self.store.audit_backup(dest, self.now()) {
            let _ = std::fs::remove_file(dest);
            return Err(err.into());
        }
        Ok(())
    }

    /// Re-wraps the master key under a new passphrase.
    ///
    /// # Errors
    /// Database errors.
    pub fn change_passphrase(
        &self,
        passphrase: &SecretString,
    ) -> Result<Option<crate::protocol::codes::RecoveryCode>> {
        Ok(self.store.change_passphrase(passphrase, self.now())?)
    }

    /// A setting (`name`, `telegram_bot`, `whatsapp_number`, …).
    ///
    /// # Errors
    /// Database errors.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.store.setting(key)?)
    }

    /// Changes a setting; an empty value removes it. The practice's name,
    /// bot and number go into QR codes and onto patients' screens, so each
    /// must look like what it is.
    ///
    /// # Errors
    /// A value that is not a valid name, bot or number; database errors.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        check_setting(key, value)?;
        Ok(self.store.set_setting(key, value, self.now())?)
    }

    /// The physician's display name, or a neutral phrase.
    ///
    /// # Errors
    /// Database errors.
    pub fn display_name(&self) -> Result<Option<String>> {
        Ok(self.setting("name")?.filter(|n| !n.is_empty()))
    }
}

/// Checks a value for the setting `key` (empty removes it).
fn check_setting(key: &str, value: &str) -> Result<()> {
    use crate::protocol::codes::{is_display_name, is_phone_number, is_telegram_bot};
    let (valid, hint): (fn(&str) -> bool, &str) = match key {
        "name" => (
            is_display_name,
            "a name of at most 100 characters, without control or invisible characters, e.g. \"Dr. Ana Silva\"",
        ),
        "telegram_bot" => (
            is_telegram_bot,
            "the bot's username as @BotFather gave it: 5 to 32 letters, digits or underscores, e.g. silva_clinic_bot",
        ),
        "whatsapp_number" => (
            is_phone_number,
            "the practice's number with country code, e.g. +34 600 123 456",
        ),
        "whatsapp_template" => (
            |v| crate::agent::whatsapp::parse_template(v).is_ok(),
            "the name of a template approved in Meta's dashboard, lower-case with underscores, optionally :LANGUAGE, e.g. medcrypt_new_message:es",
        ),
        _ => return Ok(()),
    };
    if value.is_empty() || valid(value) {
        Ok(())
    } else {
        Err(Error::usage(
            format!(
                "{} is not a valid {}",
                text::printable_line(value),
                key.replace('_', " ")
            ),
            hint,
        ))
    }
}

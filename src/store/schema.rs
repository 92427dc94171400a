//! The schema of the store and its migrations, in one place: each migration
//! is a batch of SQL run once, in order, recorded in `user_version`.
//!
//! Before anything is written, a file is recognised as a MedCrypt store by
//! its SQLite application id (or, for stores of the first release, by its
//! tables): any other file is left byte for byte as it was.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{Result, StoreError};

/// The SQLite application id of a MedCrypt store: "MCRY".
pub(super) const APPLICATION_ID: i32 = 0x4D43_5259;

/// What a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// Nothing there.
    Absent,
    /// An empty file: as good as absent (`init` may use it).
    Empty,
    /// A MedCrypt store.
    Store,
    /// Anything else: never written to.
    Foreign,
}

/// Recognises what `path` holds without writing anything (not even a side
/// file of SQLite).
pub(super) fn inspect(path: &Path) -> Result<Found> {
    let io = |e| StoreError::Io {
        context: format!("cannot read {}", path.display()),
        source: e,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(io(e)),
    };
    if meta.is_dir() {
        return Err(StoreError::IsDirectory(path.to_owned()));
    }
    if meta.len() == 0 {
        return Ok(Found::Empty);
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(io)?;
    let got = super::read_up_to(&mut file, &mut header).map_err(io)?;
    if got < header.len() || &header[..16] != b"SQLite format 3\0" {
        return Ok(Found::Foreign);
    }
    let application_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if application_id == APPLICATION_ID {
        return Ok(Found::Store);
    }
    if application_id != 0 {
        return Ok(Found::Foreign);
    }
    // A store of the first release has no application id: look for its
    // tables, reading the file as it is (immutable: no journal, no lock).
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let probe = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    );
    let first_release = probe.ok().is_some_and(|conn| {
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap_or(0);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'unlock', 'pairings', 'epoch_keys')",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        (1..=4).contains(&version) && tables == 4
    });
    Ok(if first_release {
        Found::Store
    } else {
        Found::Foreign
    })
}

/// A path as a `file:` URI path (percent-encoding what URIs reserve).
fn uri_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a front end shows while another command holds the store.
static WAIT_NOTICE: OnceLock<fn()> = OnceLock::new();

/// Sets what to show (once) when a command has to wait for another one
/// that holds the store.
pub fn on_wait(notice: fn()) {
    let _ = WAIT_NOTICE.set(notice);
}

/// How long a command waits for another one before giving up:
/// `MEDCRYPT_WAIT` seconds, else 30.
pub(super) fn wait_limit() -> Duration {
    static LIMIT: OnceLock<Duration> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("MEDCRYPT_WAIT")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(30), Duration::from_secs)
    })
}

fn busy(count: i32) -> bool {
    const STEP_MS: u64 = 50;
    if count == 10
        && let Some(notice) = WAIT_NOTICE.get()
    {
        notice();
    }
    std::thread::sleep(Duration::from_millis(STEP_MS));
    u128::from(u32::try_from(count).unwrap_or(0)) * u128::from(STEP_MS) < wait_limit().as_millis()
}

pub(super) const SCHEMA_VERSION: u32 = 8;

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
    // Version 5: authenticated rows, the history of received messages under
    // a retention policy, shred keys a keyless shredder can destroy, and the
    // temporary files commands own. The rows of `seen`, `send_sequence`,
    // `chat_bindings`, `inbox` and `inbox_chunks` need the master key to be
    // moved; `data::upgrade` does it at the next unlock and drops them.
    "ALTER TABLE pairings ADD COLUMN record BLOB;   -- sealed PairingRecord
     CREATE TABLE chat_links (
        pairing_id INTEGER PRIMARY KEY REFERENCES pairings(id) ON DELETE CASCADE,
        transport TEXT NOT NULL,          -- 'telegram' | 'whatsapp'
        chat TEXT NOT NULL,               -- the messenger's id of the chat or user
        UNIQUE (transport, chat));
     CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pairing_id INTEGER NOT NULL REFERENCES pairings(id) ON DELETE CASCADE,
        received_at TEXT NOT NULL,
        epoch TEXT,                       -- month of the key that opened it; NULL for v1
        scope TEXT NOT NULL,              -- 'epoch': sealed under a key from that month's key; 'master'
        expires_at TEXT,                  -- NULL: kept for ever
        digest BLOB NOT NULL,             -- keyed hash of the ciphertext: the same message again
        body BLOB NOT NULL);              -- sealed HistoryBody
     CREATE INDEX history_by_digest ON history (pairing_id, digest);
     CREATE TABLE history_chunks (
        history_id INTEGER NOT NULL REFERENCES history(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        data BLOB NOT NULL,               -- sealed like the row's body
        PRIMARY KEY (history_id, idx));
     CREATE TABLE shred_keys (
        pairing_id INTEGER NOT NULL REFERENCES pairings(id) ON DELETE CASCADE,
        epoch TEXT NOT NULL,
        due_at TEXT NOT NULL,
        key BLOB NOT NULL,                -- in clear: it only adds a layer the shredder can remove
        PRIMARY KEY (pairing_id, epoch));
     ALTER TABLE shredded ADD COLUMN due_at TEXT;
     ALTER TABLE shredded ADD COLUMN by_shredder INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE shredded ADD COLUMN audited INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE outbox ADD COLUMN mac BLOB;
     ALTER TABLE meta ADD COLUMN mac BLOB;
     CREATE TABLE temporaries (
        path TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        created_at TEXT NOT NULL);
     CREATE TABLE manifests (
        family TEXT PRIMARY KEY,          -- 'settings' | 'pairings' | 'outbox' | 'history'
        mac BLOB NOT NULL);               -- row MAC over the family's list of rows
     CREATE TABLE history_gone (          -- tombstones of history the keyless shredder removed
        id INTEGER PRIMARY KEY,
        pairing_id INTEGER NOT NULL,
        epoch TEXT,
        scope TEXT NOT NULL,
        expires_at TEXT);",
    // Version 6: the audit head bound to the day's key; records a repair set
    // aside (kept as evidence); notices for the physician, queued durably.
    "ALTER TABLE audit_state ADD COLUMN head_mac BLOB;  -- HMAC(K(day), head); NULL before version 6
     CREATE TABLE audit_quarantine (
        seq INTEGER NOT NULL,
        day INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        body BLOB NOT NULL,
        mac BLOB NOT NULL,
        moved_at TEXT NOT NULL,
        repair_seq INTEGER NOT NULL);     -- the audit_repair entry that moved it
     CREATE TABLE notices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        body BLOB NOT NULL,               -- sealed text
        attempts INTEGER NOT NULL DEFAULT 0,
        delivered_at TEXT);
     CREATE TABLE secrets (
        name TEXT PRIMARY KEY,            -- 'telegram_token'
        value BLOB NOT NULL);             -- sealed",
    // Version 7: unfinished part sets expire and are bounded per chat.
    "ALTER TABLE telegram_parts ADD COLUMN received_at TEXT NOT NULL DEFAULT '1970-01-01T00:00:00Z';",
    // Version 8: the WhatsApp agent's durable webhook queue (deduplicated on
    // the event's key), which outbox item each sent wamid is, and when each
    // user last wrote (the 24-hour window).
    "CREATE TABLE whatsapp_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,         -- the message's wamid, or status:<wamid>:<status>
        received_at TEXT NOT NULL,
        body BLOB NOT NULL,               -- sealed event JSON; emptied once handled
        done INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE whatsapp_sent (
        wamid TEXT PRIMARY KEY,
        outbox_id INTEGER NOT NULL);
     CREATE TABLE whatsapp_users (
        user TEXT PRIMARY KEY,            -- wa_id or business-scoped user id
        last_inbound INTEGER NOT NULL,    -- Unix seconds of the user's latest message
        template_for INTEGER);            -- last_inbound when the re-engagement template went out",
];

/// Opens a recognised (or new) store for reading and writing; a store
/// that cannot be written (its file or directory) is opened read-only, so
/// that what can be said without writing — a wrong passphrase — still is.
pub(super) fn open_connection(path: &Path) -> Result<Connection> {
    let writable = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::from)
    .and_then(|conn| {
        conn.busy_handler(Some(busy))?;
        if conn.application_id()? == 0 && conn.user_version()? == 0 {
            // A new store: its id goes into the header before WAL mode.
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Ok(conn)
    });
    let conn = match writable {
        Ok(conn) => conn,
        Err(StoreError::ReadOnly) | Err(StoreError::CannotOpen) => read_only(path)?,
        Err(err) => return Err(err),
    };
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// A store that cannot be written: read as it is, or (when its directory
/// cannot take SQLite's side files either) as an immutable file.
fn read_only(path: &Path) -> Result<Connection> {
    let readable = |conn: &Connection| {
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok()
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    if readable(&conn) {
        conn.busy_handler(Some(busy))?;
        return Ok(conn);
    }
    let conn = Connection::open_with_flags(
        format!("file:{}?immutable=1", uri_path(path)),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    if readable(&conn) {
        Ok(conn)
    } else {
        Err(StoreError::CannotOpen)
    }
}

trait Pragmas {
    fn application_id(&self) -> rusqlite::Result<i32>;
    fn user_version(&self) -> rusqlite::Result<u32>;
}

impl Pragmas for Connection {
    fn application_id(&self) -> rusqlite::Result<i32> {
        self.pragma_query_value(None, "application_id", |r| r.get(0))
    }

    fn user_version(&self) -> rusqlite::Result<u32> {
        self.pragma_query_value(None, "user_version", |r| r.get(0))
    }
}

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema(version));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()?;
    Ok(())
}

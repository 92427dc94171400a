//! The schema of the store and its migrations, in one place: each migration
//! is a batch of SQL run once, in order, recorded in `user_version`.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{Result, StoreError};

pub(super) const SCHEMA_VERSION: u32 = 5;

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
        created_at TEXT NOT NULL);",
];

pub(super) fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
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

//! A consistent copy of the store, made while other commands (the agent)
//! keep using it: SQLite's online backup, read in one snapshot.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::backup::StepResult;
use rusqlite::{Connection, OpenFlags};

use super::{Result, Store, StoreError};

impl Store {
    /// Copies the whole store into `dest` (an existing empty private file:
    /// the caller's temporary) as one consistent snapshot and checks the
    /// copy, which is encrypted exactly like the store. The caller audits it
    /// once it is in place ([`Store::audit_backup`]).
    ///
    /// # Errors
    /// Database errors; [`StoreError::Corrupt`] when the copy fails its
    /// integrity check.
    pub fn backup_into(&self, dest: &Path) -> Result<()> {
        {
            let mut copy = Connection::open(dest)?;
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut copy)?;
            // All pages in one step: one read snapshot, while writers go on.
            // A step that finds the copy's side locked is retried.
            let mut tries = 0;
            loop {
                match backup.step(-1)? {
                    StepResult::Done => break,
                    StepResult::More | StepResult::Busy | StepResult::Locked if tries < 600 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => return Err(StoreError::Corrupt("the backup could not read the store")),
                }
            }
        }
        let copy = Connection::open_with_flags(
            dest,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // One file, no WAL beside it: a backup is copied and moved as is.
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        // The copy's own temporary file was noted in the store; a restored
        // copy must not go looking for it.
        copy.execute("DELETE FROM temporaries", [])?;
        let verdict: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if verdict != "ok" {
            return Err(StoreError::Corrupt(
                "the backup copy fails its integrity check",
            ));
        }
        Ok(())
    }

    /// Audits a backup now in place at `dest`.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_backup(&self, dest: &Path, now: DateTime<Utc>) -> Result<()> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.in_transaction(|| self.audit(now, "backup", "", "ok", &[("file", name)]))
    }
}

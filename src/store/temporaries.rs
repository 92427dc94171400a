//! Temporary files the commands of this store own: noted before they are
//! created and forgotten once renamed or removed, so that after a crash or
//! `kill -9` the next command of this store removes what was left — with
//! decrypted plaintext inside, possibly — and nothing else.
//!
//! Only paths whose file name carries [`TEMPORARY_PREFIX`] are ever removed,
//! and only when the process that made them is gone.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{Result, Store, now_text};

/// How every MedCrypt temporary file or directory name begins.
pub const TEMPORARY_PREFIX: &str = ".medcrypt-tmp-";

/// Whether the process `pid` is still running.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        Path::new(&format!("/proc/{pid}")).exists()
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Removes the temporaries of processes that are gone; best effort (a
/// read-only store is left as it is).
pub(super) fn clean_stale(conn: &Connection) {
    let rows: Vec<(String, u32)> = conn
        .prepare("SELECT path, pid FROM temporaries")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()
        })
        .unwrap_or_default();
    for (path, pid) in rows {
        if alive(pid) {
            continue;
        }
        let path = Path::new(&path);
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(TEMPORARY_PREFIX));
        if ours {
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(path);
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
        let _ = conn.execute(
            "DELETE FROM temporaries WHERE path = ?1",
            [path.to_string_lossy()],
        );
    }
}

impl Store {
    /// Notes a temporary file or directory of this process before it is
    /// created.
    ///
    /// # Errors
    /// Database errors.
    pub fn register_temporary(&self, path: &Path, now: DateTime<Utc>) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO temporaries (path, pid, created_at) VALUES (?1, ?2, ?3)",
            params![path.to_string_lossy(), std::process::id(), now_text(now)],
        )?;
        Ok(())
    }

    /// Forgets a temporary that was renamed into place or removed.
    ///
    /// # Errors
    /// Database errors.
    pub fn release_temporary(&self, path: &Path) -> Result<()> {
        self.conn.execute(
            "DELETE FROM temporaries WHERE path = ?1",
            [path.to_string_lossy()],
        )?;
        Ok(())
    }
}

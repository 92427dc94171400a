//! The master key and column sealing: how the random master key is wrapped
//! under the passphrase (PBKDF2) and the recovery code (HKDF), and how every
//! secret column is sealed under it with the row's identity as AAD.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use rusqlite::{OptionalExtension, params};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::protocol::codes::RecoveryCode;

use hmac::{Hmac, Mac};

use super::audit::sealing_key_aad;
use super::{PASSPHRASE_ITERATIONS, Result, Store, StoreError, random_bytes};

pub(super) const WRAP_LABEL: &str = "medcrypt/store/v1/master-key";

const RECOVERY_KEK_LABEL: &str = "medcrypt/store/v1/recovery-kek";
/// The `kdf` of a recovery entry that wraps the owner key; an entry of an
/// earlier release (`hkdf-sha256`) wraps the master key itself.
const RECOVERY_KDF: &str = "hkdf-sha256/owner-key";

const NONCE_LEN: usize = 12;

/// The store's master key. Zeroized on drop; never printed.
pub(super) struct MasterKey(pub(super) SecretBox<[u8; 32]>);

impl MasterKey {
    pub(super) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }
}

/// Keys derived from the master key for the store's own use: one
/// authenticates rows by MAC, one makes the keyed digests that recognise a
/// message received before. A new master key recomputes what they made.
pub(super) struct StoreKeys {
    row_mac: SecretBox<[u8; 32]>,
    digest: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKeys([REDACTED])")
    }
}

const ROW_MAC_LABEL: &str = "medcrypt/store/v2/row-mac";
const DIGEST_LABEL: &str = "medcrypt/store/v2/history-digest";

impl StoreKeys {
    pub(super) fn derive(master: &MasterKey) -> Self {
        let derive = |label: &str| {
            let mut key = SecretBox::new(Box::new([0u8; 32]));
            let hk = Hkdf::<Sha256>::new(None, master.0.expose_secret());
            if hk
                .expand(label.as_bytes(), key.expose_secret_mut())
                .is_err()
            {
                *key.expose_secret_mut() = [0u8; 32];
            }
            key
        };
        Self {
            row_mac: derive(ROW_MAC_LABEL),
            digest: derive(DIGEST_LABEL),
        }
    }
}

fn hmac_parts(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return [0u8; 32];
    };
    for part in parts {
        // Length-prefixed, so that parts cannot run into one another.
        mac.update(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

pub(super) fn aead_seal(key: &[u8; 32], aad: &str, plaintext: &[u8]) -> Vec<u8> {
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

pub(super) fn aead_open(key: &[u8; 32], aad: &str, blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
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

pub(super) fn passphrase_kek(
    passphrase: &SecretString,
    salt: &[u8],
    iterations: u32,
) -> SecretBox<[u8; 32]> {
    let mut kek = SecretBox::new(Box::new([0u8; 32]));
    pbkdf2::pbkdf2_hmac::<Sha256>(
        passphrase.expose_secret().as_bytes(),
        salt,
        iterations,
        kek.expose_secret_mut(),
    );
    kek
}

pub(super) fn recovery_kek(code: &RecoveryCode, salt: &[u8]) -> SecretBox<[u8; 32]> {
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

/// The master key itself wrapped under an unlock method (stores of earlier
/// releases; escrow sets).
pub(super) fn unwrap_master_bytes(
    kek: &[u8; 32],
    method: &str,
    wrapped: &[u8],
) -> Option<MasterKey> {
    let plain = aead_open(kek, &format!("{WRAP_LABEL}:{method}"), wrapped)?;
    let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(MasterKey::from_bytes(bytes))
}

impl Store {
    /// Re-wraps the master key under a new passphrase (fresh salt).
    ///
    /// # Errors
    /// Database errors.
    /// A store whose recovery code was retired (see [`Rotated`]) gets a new
    /// one, returned to show once.
    pub fn change_passphrase(
        &self,
        passphrase: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<Option<RecoveryCode>> {
        self.in_transaction(|| {
            self.wrap_under_passphrase(passphrase)?;
            let has_recovery: bool = self.conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM unlock WHERE method = 'recovery')",
                [],
                |r| r.get(0),
            )?;
            let recovery = if has_recovery {
                None
            } else {
                let code = RecoveryCode::from_bytes(random_bytes());
                self.wrap_under_recovery(&code)?;
                Some(code)
            };
            self.audit(
                now,
                "passphrase_change",
                "",
                "ok",
                &[("new_recovery_code", recovery.is_some().to_string())],
            )?;
            Ok(recovery)
        })
    }

    /// Wraps the owner key under `passphrase` (fresh salt).
    pub(super) fn wrap_under_passphrase(&self, passphrase: &SecretString) -> Result<()> {
        let salt: [u8; 16] = random_bytes();
        let kek = passphrase_kek(passphrase, &salt, PASSPHRASE_ITERATIONS);
        let wrapped = self.owner_wrap(kek.expose_secret(), "passphrase")?;
        self.conn.execute(
            "INSERT OR REPLACE INTO unlock (method, kdf, iterations, salt, wrapped_key)
             VALUES ('passphrase', 'pbkdf2-hmac-sha256', ?1, ?2, ?3)",
            params![PASSPHRASE_ITERATIONS, salt.to_vec(), wrapped],
        )?;
        Ok(())
    }

    /// Wraps the owner key under the recovery `code` (fresh salt).
    pub(super) fn wrap_under_recovery(&self, code: &RecoveryCode) -> Result<()> {
        let salt: [u8; 16] = random_bytes();
        let kek = recovery_kek(code, &salt);
        let wrapped = self.owner_wrap(kek.expose_secret(), "recovery")?;
        self.conn.execute(
            "INSERT OR REPLACE INTO unlock (method, kdf, iterations, salt, wrapped_key)
             VALUES ('recovery', ?3, 1, ?1, ?2)",
            params![salt.to_vec(), wrapped, RECOVERY_KDF],
        )?;
        Ok(())
    }

    /// A MAC over `parts` under the store's row key: binds plain columns
    /// that decide who or whether to the master key.
    pub(super) fn row_mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_parts(self.keys.row_mac.expose_secret(), parts)
    }

    /// Whether `mac` is the row MAC of `parts` (constant time).
    pub(super) fn row_mac_ok(&self, parts: &[&[u8]], mac: Option<&[u8]>) -> bool {
        let Some(mac) = mac else { return false };
        let expected = self.row_mac(parts);
        mac.len() == 32
            && expected
                .iter()
                .zip(mac)
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }

    /// The keyed digest that recognises the same message or file again
    /// (not a plain hash: the store must not confirm a guessed ciphertext
    /// to someone without its key), from the SHA-256 of what identifies it.
    pub(super) fn digest_of(&self, identity_sha256: &[u8; 32]) -> [u8; 32] {
        hmac_parts(self.keys.digest.expose_secret(), &[identity_sha256])
    }

    pub(super) fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        aead_seal(self.master.0.expose_secret(), aad, plaintext)
    }

    pub(super) fn unseal(&self, aad: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        aead_open(self.master.0.expose_secret(), aad, blob).ok_or(StoreError::Corrupt(
            "an encrypted value fails authentication",
        ))
    }

    /// Writes `plaintext` sealed into `table.column` of row `id` under
    /// `aad` (rows are inserted first: their id is part of the AAD).
    pub(super) fn set_sealed(
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

    /// Replaces the master key: every secret column is re-encrypted under a
    /// new random key, which is wrapped under `passphrase` and a new recovery
    /// code (returned, to show once) through a new owner key; old wraps
    /// (passphrase, recovery code, escrow) are destroyed.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`].
    /// `after` runs in the same transaction, under the new key.
    pub fn rotate_master_key<T>(
        &mut self,
        passphrase: &SecretString,
        now: DateTime<Utc>,
        why: &str,
        after: impl FnOnce(&Self) -> Result<T>,
    ) -> Result<(T, RecoveryCode)> {
        let (value, rotated) =
            self.replace_master(NewOwner::Passphrase(passphrase), now, why, after)?;
        let recovery = rotated
            .recovery
            .ok_or(StoreError::Corrupt("no recovery code was made"))?;
        Ok((value, recovery))
    }

    /// Replaces the master key without the passphrase: the new key is
    /// wrapped to the owner's public key, so the passphrase and the recovery
    /// code open it and nothing made from the old key does (escrow wraps are
    /// destroyed; a recovery code of an earlier release, which wrapped the old
    /// key itself, is retired and said so). `after` runs in the same
    /// transaction, under the new key (a new escrow set wraps it there).
    ///
    /// A store never unlocked by its passphrase since owner keys exist has
    /// no owner key: nothing is replaced, and the replacement is left due
    /// for the next passphrase unlock ([`Rotated::deferred`]).
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`], [`StoreError::Modified`].
    pub fn rotate_master_key_for_owner<T>(
        &mut self,
        now: DateTime<Utc>,
        why: &str,
        after: impl FnOnce(&Self) -> Result<T>,
    ) -> Result<(T, Rotated)> {
        match self.owner_public()? {
            Some(public) => self.replace_master(NewOwner::Existing(public), now, why, after),
            None => {
                let value = self.in_transaction(|| {
                    self.set_meta(ROTATION_DUE_SETTING, why)?;
                    self.retire_escrow_sets(now)?;
                    after(self)
                })?;
                Ok((
                    value,
                    Rotated {
                        deferred: true,
                        ..Rotated::default()
                    },
                ))
            }
        }
    }

    /// Whether a replacement of the master key is due (see
    /// [`Store::rotate_master_key_for_owner`]).
    pub(super) fn rotation_due(&self) -> Result<bool> {
        Ok(self
            .setting(ROTATION_DUE_SETTING)?
            .is_some_and(|v| !v.is_empty()))
    }

    /// The value that names the master key in use (a MAC under it), which
    /// every process compares with its own before writing.
    fn key_check(&self) -> [u8; 32] {
        self.row_mac(&[KEY_CHECK_LABEL])
    }

    /// Refuses to write with a master key another command has replaced
    /// (checked at the start of every transaction). A store of an earlier
    /// release gets its key check at its first transaction.
    pub(super) fn check_key_current(&self) -> Result<()> {
        let stored: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT wrapped_key FROM unlock WHERE method = 'key-check'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            Some(value) if value.as_slice() == self.key_check().as_slice() => Ok(()),
            Some(_) => Err(StoreError::KeyReplaced),
            None => self.write_key_check(),
        }
    }

    /// Whether another command replaced the master key since this store
    /// was opened (a long-running process then reads with stale keys, which
    /// would look like tampering).
    ///
    /// # Errors
    /// Database errors.
    pub fn key_replaced(&self) -> Result<bool> {
        match self.check_key_current() {
            Ok(()) => Ok(false),
            Err(StoreError::KeyReplaced) => Ok(true),
            Err(other) => Err(other),
        }
    }

    fn write_key_check(&self) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO unlock (method, kdf, iterations, salt, wrapped_key)
             VALUES ('key-check', 'hmac-sha256', 1, X'', ?1)",
            [self.key_check().to_vec()],
        )?;
        Ok(())
    }

    fn replace_master<T>(
        &mut self,
        to: NewOwner<'_>,
        now: DateTime<Utc>,
        why: &str,
        after: impl FnOnce(&Self) -> Result<T>,
    ) -> Result<(T, Rotated)> {
        if self.depth.get() != 0 {
            return Err(StoreError::Corrupt(
                "the master key cannot be replaced inside another transaction",
            ));
        }
        let old_master = MasterKey::from_bytes(*self.master.0.expose_secret());
        let old_owner = self.owner.clone();
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.depth.set(1);
        let mut result = self
            .check_key_current()
            .and_then(|()| self.replace_master_inner(to, now, why, after));
        if result.is_ok()
            && let Err(err) = self.seal_dirty()
        {
            result = Err(err);
        }
        self.depth.set(0);
        if result.is_ok()
            && let Err(err) = self.conn.execute_batch("COMMIT")
        {
            result = Err(err.into());
        }
        match result {
            Ok(value) => {
                self.wal_checkpoint_due.set(false);
                self.checkpoint()?;
                Ok(value)
            }
            Err(err) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.keys = StoreKeys::derive(&old_master);
                self.master = old_master;
                self.owner = old_owner;
                self.dirty.clear();
                self.wal_checkpoint_due.set(false);
                Err(err)
            }
        }
    }

    fn replace_master_inner<T>(
        &mut self,
        to: NewOwner<'_>,
        now: DateTime<Utc>,
        why: &str,
        after: impl FnOnce(&Self) -> Result<T>,
    ) -> Result<(T, Rotated)> {
        let new_master = MasterKey::from_bytes(random_bytes());
        let old = Zeroizing::new(*self.master.0.expose_secret());
        // Everything the new key will vouch for must hold under the old.
        self.check_rows(now)?;
        let columns: [(&str, &str, &str, &str); 11] = [
            (
                "epoch_keys",
                "key",
                "'medcrypt/store/v1/epoch-key:' || pairing_id || ':' || epoch",
                "1",
            ),
            (
                "pairings",
                "legacy_secret",
                "'medcrypt/store/v1/legacy-secret:' || id",
                "1",
            ),
            (
                "pairings",
                "legacy_patient_id",
                "'medcrypt/store/v1/legacy-patient-id:' || id",
                "1",
            ),
            (
                "pairings",
                "record",
                "'medcrypt/store/v2/pairing:' || id",
                "1",
            ),
            (
                "history",
                "body",
                "'medcrypt/store/v2/history:' || id || ':' || pairing_id || ':' || received_at",
                "scope = 'master'",
            ),
            (
                "history_chunks",
                "data",
                "'medcrypt/store/v2/history-chunk:' || history_id || ':' || idx",
                "history_id IN (SELECT id FROM history WHERE scope = 'master')",
            ),
            (
                "outbox",
                "payload",
                "'medcrypt/store/v2/outbox:' || id || ':' || pairing_id || ':' || kind",
                "1",
            ),
            (
                "secrets",
                "value",
                "'medcrypt/store/v2/secret:' || name",
                "1",
            ),
            ("notices", "body", "'medcrypt/store/v2/notice:' || id", "1"),
            (
                "whatsapp_events",
                "body",
                "'medcrypt/store/v2/whatsapp-event:' || id",
                "1",
            ),
            (
                "audit_state",
                "enc_key",
                "'medcrypt/store/v2/audit-enc-key'",
                "1",
            ),
        ];
        for (table, column, aad_sql, filter) in columns {
            let rows: Vec<(i64, String, Vec<u8>)> = {
                let mut stmt = self.conn.prepare(&format!(
                    "SELECT rowid, {aad_sql}, {column} FROM {table} \
                     WHERE {filter} AND {column} IS NOT NULL AND length({column}) > 0"
                ))?;
                let mapped = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                mapped.collect::<std::result::Result<_, _>>()?
            };
            for (rowid, aad, blob) in rows {
                let plain = aead_open(&old, &aad, &blob).ok_or(StoreError::Corrupt(
                    "an encrypted value fails authentication",
                ))?;
                let sealed = aead_seal(new_master.0.expose_secret(), &aad, &plain);
                self.conn.execute(
                    &format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"),
                    params![sealed, rowid],
                )?;
            }
        }
        // The audit sealing key, whose AAD names its day.
        let (day, blob): (u32, Vec<u8>) = self.conn.query_row(
            "SELECT day, sealing_key FROM audit_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let plain = aead_open(&old, &sealing_key_aad(day), &blob)
            .ok_or(StoreError::Corrupt("the audit key fails authentication"))?;
        self.conn.execute(
            "UPDATE audit_state SET sealing_key = ?1 WHERE id = 1",
            [aead_seal(
                new_master.0.expose_secret(),
                &sealing_key_aad(day),
                &plain,
            )],
        )?;
        // Escrow wraps of the old key open nothing current: destroyed.
        self.retire_escrow_sets(now)?;
        let owner_public = match &to {
            NewOwner::Existing(public) => *public,
            NewOwner::Passphrase(_) => {
                let owner = super::owner::OwnerKey::generate();
                let public = owner.public();
                self.owner = Some(owner);
                public
            }
        };
        self.keys = StoreKeys::derive(&new_master);
        self.master = new_master;
        self.remake_derived()?;
        self.write_key_check()?;
        self.write_owner_row(&owner_public)?;
        let mut rotated = Rotated::default();
        match to {
            NewOwner::Passphrase(passphrase) => {
                let recovery = RecoveryCode::from_bytes(random_bytes());
                self.wrap_under_passphrase(passphrase)?;
                self.wrap_under_recovery(&recovery)?;
                rotated.recovery = Some(recovery);
            }
            NewOwner::Existing(_) => {
                // A recovery entry of an earlier release wraps the old key.
                rotated.recovery_retired = self.conn.execute(
                    "DELETE FROM unlock WHERE method = 'recovery' AND kdf != ?1",
                    [RECOVERY_KDF],
                )? > 0;
            }
        }
        if self.setting(ROTATION_DUE_SETTING)?.is_some() {
            self.set_meta(ROTATION_DUE_SETTING, "")?;
        }
        self.audit(
            now,
            "master_key_rotated",
            "",
            "ok",
            &[
                ("why", why.to_owned()),
                (
                    "recovery_code_retired",
                    rotated.recovery_retired.to_string(),
                ),
            ],
        )?;
        let value = after(self)?;
        self.wal_checkpoint_due.set(true);
        Ok((value, rotated))
    }
}

/// How a new master key reaches the owner.
enum NewOwner<'a> {
    /// A new owner key, under this passphrase and a new recovery code.
    Passphrase(&'a SecretString),
    /// The existing owner key's public half: no passphrase needed.
    Existing(p256::PublicKey),
}

/// What a replacement of the master key did.
#[derive(Debug, Default)]
pub struct Rotated {
    /// The new recovery code (with a new passphrase), to show once.
    pub recovery: Option<RecoveryCode>,
    /// A recovery code of an earlier release no longer opens the store:
    /// the owner needs a new one (`medcrypt passphrase change` makes it).
    pub recovery_retired: bool,
    /// The store has no owner key yet: the replacement is due at the next
    /// passphrase unlock.
    pub deferred: bool,
}

/// What the key check MACs.
const KEY_CHECK_LABEL: &[u8] = b"medcrypt/store/v2/key-check";

/// The setting that says a replacement of the master key is due.
const ROTATION_DUE_SETTING: &str = "master_key_rotation_due";

//! The master key and column sealing: how the random master key is wrapped
//! under the passphrase (PBKDF2) and the recovery code (HKDF), and how every
//! secret column is sealed under it with the row's identity as AAD.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use rusqlite::params;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::protocol::codes::RecoveryCode;

use hmac::{Hmac, Mac};

use super::audit::sealing_key_aad;
use super::{PASSPHRASE_ITERATIONS, Result, Store, StoreError, random_bytes};

pub(super) const WRAP_LABEL: &str = "medcrypt/store/v1/master-key";

const RECOVERY_KEK_LABEL: &str = "medcrypt/store/v1/recovery-kek";

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

pub(super) fn unwrap_master(
    kek: &SecretBox<[u8; 32]>,
    method: &str,
    wrapped: &[u8],
) -> Option<MasterKey> {
    let plain = aead_open(
        kek.expose_secret(),
        &format!("{WRAP_LABEL}:{method}"),
        wrapped,
    )?;
    let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(MasterKey::from_bytes(bytes))
}

impl Store {
    /// Re-wraps the master key under a new passphrase (fresh salt).
    ///
    /// # Errors
    /// Database errors.
    pub fn change_passphrase(&self, passphrase: &SecretString, now: DateTime<Utc>) -> Result<()> {
        self.in_transaction(|| {
            self.wrap_under_passphrase(passphrase)?;
            self.audit(now, "passphrase_change", "", "ok", &[])
        })
    }

    pub(super) fn wrap_under_passphrase(&self, passphrase: &SecretString) -> Result<()> {
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

    pub(super) fn wrap_under_recovery(&self, code: &RecoveryCode) -> Result<()> {
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
    /// code (returned, to show once); old wraps (passphrase, recovery code,
    /// escrow) are destroyed.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Corrupt`].
    pub fn rotate_master_key(
        &mut self,
        passphrase: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<RecoveryCode> {
        let new_master = MasterKey::from_bytes(random_bytes());
        let recovery = RecoveryCode::from_bytes(random_bytes());
        let old = Zeroizing::new(*self.master.0.expose_secret());
        // Every secret column sealed under the master key: its table, its
        // column, the SQL that yields each row's AAD, and which rows (history
        // sealed under month keys is left as it is).
        let columns: [(&str, &str, &str, &str); 8] = [
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
                "audit_state",
                "enc_key",
                "'medcrypt/store/v2/audit-enc-key'",
                "1",
            ),
        ];
        self.in_transaction(|| {
            // Everything the new key will vouch for must hold under the old.
            self.check_rows(now)?;
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
            self.retire_escrow_sets(now)?;
            Ok(())
        })?;
        self.keys = StoreKeys::derive(&new_master);
        self.master = new_master;
        self.in_transaction(|| {
            self.remake_derived()?;
            self.wrap_under_passphrase(passphrase)?;
            self.wrap_under_recovery(&recovery)?;
            self.audit(now, "master_key_rotated", "", "ok", &[])
        })?;
        self.checkpoint()?;
        Ok(recovery)
    }
}

//! The owner key: a P-256 key pair whose private half only the passphrase
//! and the recovery code unwrap, and to whose public half the master key is
//! wrapped (ECDH with an ephemeral key, HKDF-SHA256, AES-256-GCM).
//!
//! It lets a new master key be wrapped for the owner by someone who does
//! not hold the passphrase: custodians, at the end of a break-glass access,
//! replace the master key, so that their shares together with an old copy
//! of the store open nothing current. Whoever learned an old master key
//! (from an old copy and old shares) cannot unwrap the new one: that needs
//! the owner's private key, which is never sealed under a master key.
//!
//! ```text
//! unlock row 'passphrase':  AES-GCM(PBKDF2(passphrase), d)   label medcrypt/store/v2/owner-key:passphrase
//! unlock row 'recovery':    AES-GCM(HKDF(recovery code), d)  label medcrypt/store/v2/owner-key:recovery
//! unlock row 'owner':       salt = Q (SEC1 compressed, 33) || row MAC of Q (32)
//!                           wrapped_key = E (33) || AES-GCM(K, master key)
//!                           K = HKDF-SHA256(salt = E || Q, ikm = ECDH(e, Q).x,
//!                                           info = medcrypt/store/v2/owner-wrap)
//! ```
//!
//! Stores of earlier releases wrapped the master key itself under the
//! passphrase and the recovery code (label `medcrypt/store/v1/master-key:…`);
//! they are moved to the owner key at the next passphrase unlock (the
//! recovery code at its next use).

use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rusqlite::{OptionalExtension, params};
use secrecy::ExposeSecret;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::sealing::{MasterKey, aead_open, aead_seal};
use super::{Result, Store, StoreError};

/// Label of the owner's private key wrapped under an unlock method.
pub(super) const OWNER_KEY_LABEL: &str = "medcrypt/store/v2/owner-key";
const OWNER_WRAP_INFO: &str = "medcrypt/store/v2/owner-wrap";
const OWNER_PUBLIC_MAC: &[u8] = b"owner-public";
const POINT_LEN: usize = 33;

/// The owner's private key. Zeroized on drop (by `p256`); never printed.
#[derive(Clone)]
pub(super) struct OwnerKey(SecretKey);

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerKey([REDACTED])")
    }
}

impl OwnerKey {
    pub(super) fn generate() -> Self {
        Self(SecretKey::random(&mut aes_gcm::aead::OsRng))
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        SecretKey::from_slice(bytes).ok().map(Self)
    }

    pub(super) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_bytes().to_vec())
    }

    pub(super) fn public(&self) -> PublicKey {
        self.0.public_key()
    }

    /// Opens a wrap made by [`wrap_for`] to this key's public half.
    fn unwrap(&self, blob: &[u8]) -> Option<MasterKey> {
        if blob.len() < POINT_LEN {
            return None;
        }
        let (point, sealed) = blob.split_at(POINT_LEN);
        let ephemeral = PublicKey::from_sec1_bytes(point).ok()?;
        let shared = p256::ecdh::diffie_hellman(self.0.to_nonzero_scalar(), ephemeral.as_affine());
        let key = wrap_key(point, &encode(&self.public()), shared.raw_secret_bytes());
        let plain = aead_open(&key, OWNER_WRAP_INFO, sealed)?;
        let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(MasterKey::from_bytes(bytes))
    }
}

fn encode(public: &PublicKey) -> Vec<u8> {
    public.to_encoded_point(true).as_bytes().to_vec()
}

fn wrap_key(ephemeral: &[u8], owner: &[u8], shared: &[u8]) -> Zeroizing<[u8; 32]> {
    let salt = [ephemeral, owner].concat();
    let mut key = Zeroizing::new([0u8; 32]);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    if hk.expand(OWNER_WRAP_INFO.as_bytes(), key.as_mut()).is_err() {
        // 32 bytes is always a valid HKDF-SHA256 length.
        *key = [0u8; 32];
    }
    key
}

/// Wraps `master` to the owner's public key `owner`: anyone can, only the
/// owner's private key opens it.
fn wrap_for(owner: &PublicKey, master: &MasterKey) -> Vec<u8> {
    let ephemeral = p256::ecdh::EphemeralSecret::random(&mut aes_gcm::aead::OsRng);
    let point = encode(&ephemeral.public_key());
    let shared = ephemeral.diffie_hellman(owner);
    let key = wrap_key(&point, &encode(owner), shared.raw_secret_bytes());
    let mut blob = point;
    blob.extend_from_slice(&aead_seal(&key, OWNER_WRAP_INFO, master.0.expose_secret()));
    blob
}

/// With the owner's private key `owner` (from the passphrase or the
/// recovery code), the master key from the store's owner row.
pub(super) fn open_owner_row(conn: &rusqlite::Connection, owner: &OwnerKey) -> Result<MasterKey> {
    let (salt, wrapped): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT salt, wrapped_key FROM unlock WHERE method = 'owner'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or(StoreError::Corrupt(
            "the store's owner key entry is missing",
        ))?;
    if salt.get(..POINT_LEN) != Some(encode(&owner.public()).as_slice()) {
        return Err(StoreError::Corrupt(
            "the store's owner key entry was replaced",
        ));
    }
    owner.unwrap(&wrapped).ok_or(StoreError::Corrupt(
        "the master key's owner wrap fails authentication",
    ))
}

impl Store {
    /// Writes the owner row: the master key wrapped to `owner`, and the
    /// public key with its row MAC under the (current) master key.
    pub(super) fn write_owner_row(&self, owner: &PublicKey) -> Result<()> {
        let point = encode(owner);
        let mut salt = point.clone();
        salt.extend_from_slice(&self.row_mac(&[OWNER_PUBLIC_MAC, &point]));
        self.conn.execute(
            "INSERT OR REPLACE INTO unlock (method, kdf, iterations, salt, wrapped_key)
             VALUES ('owner', 'p256-ecdh-hkdf-sha256', 1, ?1, ?2)",
            params![salt, wrap_for(owner, &self.master)],
        )?;
        Ok(())
    }

    /// Moves a store of an earlier release to an owner key: a new key
    /// pair, the owner row for the current master key, and `wrap` (the
    /// unlock method just used), in one transaction. A store that cannot
    /// be written keeps its old form until a later unlock.
    pub(super) fn adopt_owner_key(&mut self, wrap: impl FnOnce(&Self) -> Result<()>) {
        let owner = OwnerKey::generate();
        let public = owner.public();
        self.owner = Some(owner);
        let moved = self.in_transaction(|| {
            self.write_owner_row(&public)?;
            wrap(self)
        });
        if moved.is_err() {
            self.owner = None;
        }
    }

    /// The owner's public key, checked against its row MAC under the
    /// current master key; `None` for a store never moved to an owner key.
    pub(super) fn owner_public(&self) -> Result<Option<PublicKey>> {
        let salt: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT salt FROM unlock WHERE method = 'owner'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(salt) = salt else {
            return Ok(None);
        };
        let (point, mac) = salt.split_at(POINT_LEN.min(salt.len()));
        if !self.row_mac_ok(&[OWNER_PUBLIC_MAC, point], Some(mac)) {
            return Err(StoreError::Modified("the owner's public key".into()));
        }
        PublicKey::from_sec1_bytes(point)
            .map(Some)
            .map_err(|_| StoreError::Modified("the owner's public key".into()))
    }

    /// Wraps the owner's private key under an unlock method's key.
    pub(super) fn owner_wrap(&self, kek: &[u8; 32], method: &str) -> Result<Vec<u8>> {
        let owner = self.owner.as_ref().ok_or(StoreError::Corrupt(
            "the owner key is not open (unlock with the passphrase or the recovery code)",
        ))?;
        Ok(aead_seal(
            kek,
            &format!("{OWNER_KEY_LABEL}:{method}"),
            &owner.to_bytes(),
        ))
    }
}

/// Opens an unlock method's wrap: the owner's private key (current form),
/// then the master key from the owner row; or, for a store of an earlier
/// release, the master key itself. `None`: the wrong passphrase or code.
pub(super) fn open_unlock(
    conn: &rusqlite::Connection,
    kek: &[u8; 32],
    method: &str,
    wrapped: &[u8],
) -> Result<Option<(MasterKey, Option<OwnerKey>)>> {
    if let Some(bytes) = aead_open(kek, &format!("{OWNER_KEY_LABEL}:{method}"), wrapped) {
        let owner = OwnerKey::from_bytes(&bytes)
            .ok_or(StoreError::Corrupt("the owner key is malformed"))?;
        let master = open_owner_row(conn, &owner)?;
        return Ok(Some((master, Some(owner))));
    }
    Ok(super::sealing::unwrap_master_bytes(kek, method, wrapped).map(|m| (m, None)))
}

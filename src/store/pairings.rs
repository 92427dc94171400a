//! Pairings and their epoch keys: adding, listing, removing, the key chain
//! of each pairing, and monthly rotation with key destruction.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::protocol::epoch::Epoch;
use crate::protocol::keys::{Advance, EpochChain, EpochKey, PairingToken, Role, SafetyNumber};
use crate::protocol::legacy::LegacyPairing;

use super::{Result, Store, StoreError, now_text, parse_time};

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

impl Store {
    pub(super) fn epoch_key_aad(pairing_id: i64, epoch: Epoch) -> String {
        format!("medcrypt/store/v1/epoch-key:{pairing_id}:{epoch}")
    }

    pub(super) fn insert_epoch_key(&self, pairing_id: i64, key: &EpochKey) -> Result<()> {
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

    pub(super) fn ensure_alias_free(&self, alias: &str) -> Result<()> {
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
        now: DateTime<Utc>,
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
        now: DateTime<Utc>,
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

    pub(super) fn pairing_by_id(&self, id: Option<i64>) -> Result<Option<PairingInfo>> {
        Ok(match id {
            Some(id) => self.pairings()?.into_iter().find(|p| p.id == id),
            None => None,
        })
    }

    /// Removes a pairing and destroys every key of it, then truncates the WAL
    /// so no page with key material survives there.
    ///
    /// # Errors
    /// [`StoreError::UnknownPairing`], or database errors.
    pub fn remove_pairing(&self, alias: &str, now: DateTime<Utc>) -> Result<()> {
        let pairing = self.pairing(alias)?;
        self.in_transaction(|| {
            self.conn
                .execute("DELETE FROM pairings WHERE id = ?1", [pairing.id])?;
            self.audit(now, "pair_remove", alias, "ok", &[])
        })?;
        self.checkpoint()
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
    pub fn rotate(&self, now: DateTime<Utc>) -> Result<Vec<Rotation>> {
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
    ) -> Result<Option<DateTime<Utc>>> {
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
}

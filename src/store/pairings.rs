//! Pairings: adding (with their sealed record), listing (every row checked
//! against its record), removing, and the v1 material of legacy pairings.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::protocol::epoch::Epoch;
use crate::protocol::keys::{EpochKey, PairingToken, Role, SafetyNumber};
use crate::protocol::legacy::LegacyPairing;

use super::manifest::Family;
use super::record::{PairingRecord, PlainPairing};
use super::{Result, Store, StoreError, now_text};

/// Which protocol a pairing speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The current protocol, with monthly ratchet.
    V2,
    /// The legacy protocol (long-lived secret, patient id on the wire).
    V1,
}

/// A pairing as listed from the store (no secrets), checked against its
/// sealed record.
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

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
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

    /// Inserts the plain row and its sealed record; returns the row id.
    fn insert_pairing(&self, info: &PairingInfo, token_hash: Option<String>) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO pairings (alias, role, protocol, peer_name, start_epoch, safety_number, token_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                info.alias,
                info.role.name(),
                super::record::protocol_name(info.protocol),
                info.peer_name,
                info.start_epoch.map(|e| e.to_string()),
                info.safety_number,
                token_hash,
                info.created_at
            ],
        )?;
        let id = self.conn.last_insert_rowid();
        self.save_record(id, &PairingRecord::from_info(info, token_hash))?;
        self.touched(Family::Pairings)?;
        Ok(id)
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
        invite_expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.ensure_alias_free(alias)?;
        let hash = token_hash(token.as_str());
        let taken: Option<String> = self
            .conn
            .query_row(
                "SELECT alias FROM pairings WHERE token_hash = ?1",
                [&hash],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(existing) = taken {
            return Err(StoreError::DuplicatePairing(existing));
        }
        let info = PairingInfo {
            id: 0,
            alias: alias.to_owned(),
            role,
            protocol: Protocol::V2,
            peer_name: peer_name.to_owned(),
            start_epoch: Some(first_key.epoch()),
            safety_number: Some(safety.to_string()),
            created_at: now_text(now),
        };
        self.in_transaction(|| {
            let id = self.insert_pairing(&info, Some(hash.clone()))?;
            if let Some(expires) = invite_expires {
                self.update_record(id, |record| {
                    record.invite_expires = Some(now_text(expires));
                    Ok(())
                })?;
            }
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
        let info = PairingInfo {
            id: 0,
            alias: alias.to_owned(),
            role: Role::Physician,
            protocol: Protocol::V1,
            peer_name: String::new(),
            start_epoch: None,
            safety_number: None,
            created_at: now_text(now),
        };
        self.in_transaction(|| {
            let id = self.insert_pairing(&info, None)?;
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

    /// Plain rows of every pairing matching `filter` (an SQL condition on
    /// `pairings`), each checked against its sealed record.
    pub(super) fn checked_pairings(
        &self,
        filter: &str,
        param: Option<&dyn rusqlite::ToSql>,
    ) -> Result<Vec<PairingInfo>> {
        let sql = format!(
            "SELECT {} FROM pairings WHERE {filter} ORDER BY alias",
            PlainPairing::COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows: Vec<PlainPairing> = match param {
            Some(p) => stmt.query_map([p], PlainPairing::from_row)?,
            None => stmt.query_map([], PlainPairing::from_row)?,
        }
        .collect::<std::result::Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            self.open_record(&row)?;
            out.push(row.info());
        }
        Ok(out)
    }

    /// All pairings, by alias.
    ///
    /// # Errors
    /// [`StoreError::Modified`] when a row does not match its sealed record;
    /// database errors.
    pub fn pairings(&self) -> Result<Vec<PairingInfo>> {
        self.checked_pairings("1", None)
    }

    /// The pairing named `alias`.
    ///
    /// # Errors
    /// [`StoreError::UnknownPairing`], [`StoreError::Modified`], or database
    /// errors.
    pub fn pairing(&self, alias: &str) -> Result<PairingInfo> {
        self.checked_pairings("alias = ?1", Some(&alias))?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::UnknownPairing(alias.to_owned()))
    }

    pub(super) fn pairing_by_id(&self, id: Option<i64>) -> Result<Option<PairingInfo>> {
        Ok(match id {
            Some(id) => self
                .checked_pairings("id = ?1", Some(&id))?
                .into_iter()
                .next(),
            None => None,
        })
    }

    /// The pairing whose deep-link token this is, if it is still unused.
    ///
    /// # Errors
    /// Database errors, [`StoreError::Modified`].
    pub fn pairing_by_token(&self, token: &str) -> Result<Option<PairingInfo>> {
        let hash = token_hash(token);
        Ok(self
            .checked_pairings("token_hash = ?1 AND role = 'physician'", Some(&hash))?
            .into_iter()
            .next())
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
            // Its history and outbox items went with it.
            for family in [Family::Pairings, Family::History, Family::Outbox] {
                self.touched(family)?;
            }
            self.audit(now, "pair_remove", alias, "ok", &[])
        })?;
        self.checkpoint()
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
}

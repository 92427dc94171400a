//! Break-glass escrow: Shamir k-of-n shares (via `blahaj`) of the store's
//! escrow key and the audit verification key, in a checksummed text form.
//!
//! Plain Shamir has no integrity: a wrong share silently yields a wrong
//! secret. So each share's text carries a checksum (typos), the store keeps
//! a digest of every share of a split (a share with a valid checksum but a
//! wrong value is named), and the recovered escrow key must unwrap the
//! store's master key under AES-GCM before anything is used.
//!
//! ```text
//! MEDCRYPT-SHARE:v1:<custodian, percent-encoded>:<64+ Crockford chars in groups of 4>
//! payload = set id (8) | threshold (1) | count (1) | index (1) | share value (70), + checksum (4)
//! secret  = version 1 (1) | escrow key (32) | has audit key (1) | audit key (32) | audit day (u24) | 0 (1)
//! ```

use blahaj::{Share, Sharks};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::protocol::audit::SealingKey;

/// Prefix of a share's text form.
pub const SHARE_PREFIX: &str = "MEDCRYPT-SHARE:v1:";
const SECRET_LEN: usize = 70;
const PAYLOAD_LEN: usize = 8 + 3 + SECRET_LEN;
const CHECKSUM_LEN: usize = 4;
const DIGEST_LABEL: &[u8] = b"medcrypt/escrow/v1/share-digest";

/// What is wrong with a set of shares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Not a share at all.
    #[error("share {0} is not a MedCrypt share (it should start with MEDCRYPT-SHARE:v1:)")]
    NotAShare(usize),
    /// The checksum does not match: mistyped or damaged.
    #[error("share {0} has a typo or is damaged: its checksum does not match")]
    Checksum(usize),
    /// Index 0 would be the secret itself; an index above the count is
    /// not a share of that set either.
    #[error("share {0} has an index that no split produces (0, or above the number of shares)")]
    ZeroIndex(usize),
    /// The same index twice.
    #[error("shares {0} and {1} are the same share (index {2})")]
    Duplicate(usize, usize, u8),
    /// Shares of different splits or thresholds.
    #[error(
        "these shares are from different sets (or different thresholds) and cannot be combined"
    )]
    DifferentSets,
    /// Fewer shares than the threshold.
    #[error("{have} share(s) given, but this set needs {need}")]
    NotEnough {
        /// Shares given.
        have: usize,
        /// The threshold.
        need: u8,
    },
    /// Thresholds outside 2 ≤ k ≤ n ≤ 10.
    #[error("a split needs 2 ≤ threshold ≤ custodians ≤ 10 (got {threshold} of {count})")]
    BadThreshold {
        /// k.
        threshold: usize,
        /// n.
        count: usize,
    },
}

/// The secret held in escrow. Zeroized on drop.
pub struct EscrowSecret {
    /// The key that wraps the store's master key for this set.
    pub escrow_key: Zeroizing<[u8; 32]>,
    /// The audit verification key, when it was given at the split.
    pub audit_key: Option<SealingKey>,
}

impl std::fmt::Debug for EscrowSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EscrowSecret")
            .field("has_audit_key", &self.audit_key.is_some())
            .finish_non_exhaustive()
    }
}

impl ShareError {
    /// A stable name (wire-spec 12.1).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotAShare(_) => "not_a_share",
            Self::Checksum(_) => "checksum",
            Self::ZeroIndex(_) => "bad_index",
            Self::Duplicate(..) => "duplicate",
            Self::DifferentSets => "different_sets",
            Self::NotEnough { .. } => "not_enough",
            Self::BadThreshold { .. } => "bad_threshold",
        }
    }
}

impl EscrowSecret {
    fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(SECRET_LEN));
        out.push(1);
        out.extend_from_slice(&self.escrow_key[..]);
        match &self.audit_key {
            Some(key) => {
                out.push(1);
                out.extend_from_slice(key.expose_bytes());
                out.extend_from_slice(&key.day().to_be_bytes()[1..]);
            }
            None => {
                out.push(0);
                out.extend_from_slice(&[0u8; 35]);
            }
        }
        out.push(0);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SECRET_LEN || bytes[0] != 1 {
            return None;
        }
        let mut escrow_key = Zeroizing::new([0u8; 32]);
        escrow_key.copy_from_slice(&bytes[1..33]);
        let audit_key = (bytes[33] == 1).then(|| {
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes[34..66]);
            let day = u32::from_be_bytes([0, bytes[66], bytes[67], bytes[68]]);
            let sealing = SealingKey::from_bytes(day, &key);
            key.zeroize();
            sealing
        });
        Some(Self {
            escrow_key,
            audit_key,
        })
    }
}

/// One custodian's share.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareText {
    /// Identifies the split.
    pub set_id: [u8; 8],
    /// Shares needed (k).
    pub threshold: u8,
    /// Shares made (n).
    pub count: u8,
    /// This share's x coordinate, 1..=n.
    pub index: u8,
    /// Who holds it.
    pub custodian: String,
    /// The share value (y), 70 bytes.
    pub value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ShareText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareText")
            .field("set_id", &hex::encode(self.set_id))
            .field("index", &self.index)
            .field("custodian", &self.custodian)
            .finish_non_exhaustive()
    }
}

fn checksum_label(custodian: &str) -> String {
    format!("medcrypt/escrow/v1/share:{custodian}")
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    crate::protocol::codes::percent_decode(text).ok()
}

impl ShareText {
    /// The text form printed for the custodian and put in the QR code.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut payload = Zeroizing::new(Vec::with_capacity(PAYLOAD_LEN));
        payload.extend_from_slice(&self.set_id);
        payload.extend_from_slice(&[self.threshold, self.count, self.index]);
        payload.extend_from_slice(&self.value);
        let code = crate::protocol::codes::encode_checked(
            &checksum_label(&self.custodian),
            &payload,
            CHECKSUM_LEN,
        );
        Zeroizing::new(format!(
            "{SHARE_PREFIX}{}:{code}",
            percent_encode(&self.custodian)
        ))
    }

    /// Parses [`ShareText::to_text`]; `position` (from 1) names the share in errors.
    ///
    /// # Errors
    /// [`ShareError::NotAShare`], [`ShareError::Checksum`].
    pub fn parse(text: &str, position: usize) -> Result<Self, ShareError> {
        let compact: String = text.split_whitespace().collect::<Vec<_>>().join("");
        let rest = compact
            .strip_prefix(SHARE_PREFIX)
            .ok_or(ShareError::NotAShare(position))?;
        let (custodian, code) = rest
            .split_once(':')
            .ok_or(ShareError::NotAShare(position))?;
        let custodian = percent_decode(custodian).ok_or(ShareError::NotAShare(position))?;
        let payload = crate::protocol::codes::decode_checked(
            &checksum_label(&custodian),
            code,
            PAYLOAD_LEN,
            CHECKSUM_LEN,
        )
        .map_err(|_| ShareError::Checksum(position))?;
        let mut set_id = [0u8; 8];
        set_id.copy_from_slice(&payload[..8]);
        Ok(Self {
            set_id,
            threshold: payload[8],
            count: payload[9],
            index: payload[10],
            custodian,
            value: Zeroizing::new(payload[11..].to_vec()),
        })
    }

    /// A digest of the share (not secret: shares are high-entropy), kept by
    /// the store so that a share with a valid checksum but a wrong value is
    /// named before anything is combined.
    pub fn digest(&self) -> String {
        hex::encode(
            Sha256::new()
                .chain_update(DIGEST_LABEL)
                .chain_update(self.set_id)
                .chain_update([self.index])
                .chain_update(&self.value[..])
                .finalize(),
        )
    }
}

/// Splits `secret` into one share per custodian, any `threshold` of which recover it.
///
/// # Errors
/// [`ShareError::BadThreshold`] unless 2 ≤ threshold ≤ custodians ≤ 10.
pub fn split(
    secret: &EscrowSecret,
    threshold: usize,
    custodians: &[String],
) -> Result<Vec<ShareText>, ShareError> {
    let count = custodians.len();
    if !(2..=10).contains(&count) || threshold < 2 || threshold > count {
        return Err(ShareError::BadThreshold { threshold, count });
    }
    let k = u8::try_from(threshold).map_err(|_| ShareError::BadThreshold { threshold, count })?;
    let n = u8::try_from(count).map_err(|_| ShareError::BadThreshold { threshold, count })?;
    let mut set_id = [0u8; 8];
    aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut set_id);
    let bytes = secret.to_bytes();
    let shares: Vec<Share> = Sharks(k).dealer(&bytes).take(count).collect();
    Ok(texts(&shares, set_id, k, n, custodians))
}

/// [`split`] with a chosen set id and a reproducible generator: for the
/// vector files only.
pub(crate) fn split_for_vectors(
    secret: &EscrowSecret,
    threshold: u8,
    custodians: &[String],
    set_id: [u8; 8],
    seed: &str,
) -> Vec<ShareText> {
    let n = u8::try_from(custodians.len()).unwrap_or(0);
    let mut rng = VectorRng {
        seed: seed.to_owned(),
        counter: 0,
    };
    let shares: Vec<Share> = Sharks(threshold)
        .dealer_rng(&secret.to_bytes(), &mut rng)
        .take(custodians.len())
        .collect();
    texts(&shares, set_id, threshold, n, custodians)
}

/// SHA-256 in counter mode over a seed: reproducible, for vectors only.
struct VectorRng {
    seed: String,
    counter: u64,
}

impl rand_core::TryRng for VectorRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(32) {
            self.counter += 1;
            let block = Sha256::digest(format!("{}:{}", self.seed, self.counter));
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for VectorRng {}

fn texts(shares: &[Share], set_id: [u8; 8], k: u8, n: u8, custodians: &[String]) -> Vec<ShareText> {
    shares
        .iter()
        .zip(custodians)
        .map(|(share, custodian)| {
            let raw = Zeroizing::new(Vec::<u8>::from(share));
            ShareText {
                set_id,
                threshold: k,
                count: n,
                index: raw[0],
                custodian: custodian.clone(),
                value: Zeroizing::new(raw[1..].to_vec()),
            }
        })
        .collect()
}

/// Checks that `shares` belong together and recovers the secret.
/// The caller must still verify it (it unwraps the master key).
///
/// # Errors
/// [`ShareError`] naming the problem.
pub fn combine(shares: &[ShareText]) -> Result<EscrowSecret, ShareError> {
    let first = shares
        .first()
        .ok_or(ShareError::NotEnough { have: 0, need: 2 })?;
    for (i, share) in shares.iter().enumerate() {
        if share.set_id != first.set_id
            || share.threshold != first.threshold
            || share.count != first.count
        {
            return Err(ShareError::DifferentSets);
        }
        if share.index == 0 || share.index > share.count {
            return Err(ShareError::ZeroIndex(i + 1));
        }
        if let Some(j) = shares[..i].iter().position(|s| s.index == share.index) {
            return Err(ShareError::Duplicate(j + 1, i + 1, share.index));
        }
    }
    if !(2..=10).contains(&first.count) || first.threshold < 2 || first.threshold > first.count {
        return Err(ShareError::BadThreshold {
            threshold: usize::from(first.threshold),
            count: usize::from(first.count),
        });
    }
    if shares.len() < usize::from(first.threshold) {
        return Err(ShareError::NotEnough {
            have: shares.len(),
            need: first.threshold,
        });
    }
    let parsed: Vec<Share> = shares
        .iter()
        .filter_map(|s| {
            let mut raw = Zeroizing::new(vec![s.index]);
            raw.extend_from_slice(&s.value);
            Share::try_from(&raw[..]).ok()
        })
        .collect();
    let secret = Zeroizing::new(
        Sharks(first.threshold)
            .recover(&parsed)
            .map_err(|_| ShareError::DifferentSets)?,
    );
    EscrowSecret::from_bytes(&secret).ok_or(ShareError::DifferentSets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> EscrowSecret {
        EscrowSecret {
            escrow_key: Zeroizing::new([7u8; 32]),
            audit_key: Some(SealingKey::from_bytes(20_412, &[9u8; 32])),
        }
    }

    fn names() -> Vec<String> {
        ["Medical director", "Records office", "Maria (sister)"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn every_pair_recovers_and_one_share_does_not() {
        let shares = split(&secret(), 2, &names()).unwrap();
        assert_eq!(
            shares.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 0)] {
            let texts = [shares[a].to_text(), shares[b].to_text()];
            let parsed: Vec<ShareText> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| ShareText::parse(t, i + 1).unwrap())
                .collect();
            let recovered = combine(&parsed).unwrap();
            assert_eq!(*recovered.escrow_key, [7u8; 32]);
            let audit = recovered.audit_key.unwrap();
            assert_eq!((audit.day(), *audit.expose_bytes()), (20_412, [9u8; 32]));
        }
        assert_eq!(
            combine(&shares[..1]).unwrap_err(),
            ShareError::NotEnough { have: 1, need: 2 }
        );
    }

    #[test]
    fn typos_other_sets_duplicates_and_zero_are_refused() {
        let shares = split(&secret(), 2, &names()).unwrap();
        let text = shares[1].to_text().to_string();
        let at = text.len() - 10;
        let replacement = if &text[at..at + 1] == "0" { "1" } else { "0" };
        let typo = format!("{}{}{}", &text[..at], replacement, &text[at + 1..]);
        assert_eq!(
            ShareText::parse(&typo, 2).unwrap_err(),
            ShareError::Checksum(2)
        );
        // The custodian's name is covered by the checksum too.
        let renamed = text.replacen("Records", "Record5", 1);
        assert_eq!(
            ShareText::parse(&renamed, 2).unwrap_err(),
            ShareError::Checksum(2)
        );

        let other = split(&secret(), 2, &names()).unwrap();
        assert_eq!(
            combine(&[shares[0].clone(), other[1].clone()]).unwrap_err(),
            ShareError::DifferentSets
        );
        assert!(matches!(
            combine(&[shares[0].clone(), shares[0].clone()]),
            Err(ShareError::Duplicate(1, 2, 1))
        ));
        let mut zero = shares[1].clone();
        zero.index = 0;
        assert_eq!(
            combine(&[shares[0].clone(), zero]).unwrap_err(),
            ShareError::ZeroIndex(2)
        );
        assert!(matches!(
            split(&secret(), 1, &names()),
            Err(ShareError::BadThreshold { .. })
        ));
        assert!(matches!(
            split(&secret(), 4, &names()),
            Err(ShareError::BadThreshold { .. })
        ));
    }

    #[test]
    fn a_wrong_value_changes_the_digest() {
        let shares = split(&secret(), 2, &names()).unwrap();
        let mut wrong = shares[1].clone();
        wrong.value[5] ^= 1;
        assert_ne!(wrong.digest(), shares[1].digest());
        // Parsing accepts it (its checksum is recomputed), combining yields
        // a different secret: only the digest or the unwrap can tell.
        let reparsed = ShareText::parse(&wrong.to_text(), 2).unwrap();
        let recovered = combine(&[shares[0].clone(), reparsed]).map(|s| *s.escrow_key);
        assert_ne!(recovered.ok(), Some([7u8; 32]));
        assert!(!format!("{wrong:?}").contains("value"));
    }
}

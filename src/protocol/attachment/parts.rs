//! Parts: an encrypted file cut into numbered files of a bounded size.

use super::*;

/// The header of one part of a split attachment:
///
/// ```text
/// "MEDCRYPT" | 'P' | 02 | file id (16) | index (u16, from 1) | count (u16)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartHeader {
    /// The id of the encrypted file this part belongs to.
    pub file_id: [u8; 16],
    /// Position, from 1.
    pub index: u16,
    /// Number of parts.
    pub count: u16,
}

impl PartHeader {
    /// The 30-byte encoding.
    pub fn to_bytes(&self) -> [u8; PART_HEADER_LEN] {
        let mut out = [0u8; PART_HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8] = KIND_PART;
        out[9] = PART_VERSION;
        out[10..26].copy_from_slice(&self.file_id);
        out[26..28].copy_from_slice(&self.index.to_be_bytes());
        out[28..30].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    /// Parses [`PartHeader::to_bytes`]; `None` when the bytes are not a
    /// valid part header (see [`PartHeader::read`] for why).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        Self::read(bytes).ok().flatten()
    }

    /// Reads the start of an input: `Ok(None)` when it is not a part (it
    /// does not start with `MEDCRYPT` `P`), the header when it is a valid
    /// one.
    ///
    /// # Errors
    /// [`PartError`] (with `input` 0) for a part that is cut inside its
    /// header, of an unknown part version, or numbered outside 1..=count.
    pub fn read(bytes: &[u8]) -> std::result::Result<Option<Self>, PartError> {
        if bytes.len() < MAGIC.len() + 1 || &bytes[..8] != MAGIC || bytes[8] != KIND_PART {
            return Ok(None);
        }
        if bytes.len() < PART_HEADER_LEN {
            return Err(PartError::Truncated { input: 0 });
        }
        if bytes[9] != PART_VERSION {
            return Err(PartError::UnsupportedVersion {
                input: 0,
                version: bytes[9],
            });
        }
        let mut file_id = [0u8; 16];
        file_id.copy_from_slice(&bytes[10..26]);
        let index = u16::from_be_bytes([bytes[26], bytes[27]]);
        let count = u16::from_be_bytes([bytes[28], bytes[29]]);
        if index == 0 || index > count {
            return Err(PartError::BadIndex {
                input: 0,
                index,
                count,
            });
        }
        Ok(Some(Self {
            file_id,
            index,
            count,
        }))
    }

    /// How many parts a file of `total` bytes needs for parts of at most
    /// `part_size` bytes each (header included); `None` when impossible.
    pub fn count_for(total: u64, part_size: u64) -> Option<u16> {
        let payload = part_size
            .checked_sub(PART_HEADER_LEN as u64)
            .filter(|p| *p >= 1024)?;
        u16::try_from(total.div_ceil(payload))
            .ok()
            .filter(|c| *c >= 1)
    }
}

/// Why a set of inputs cannot be assembled into one encrypted file. The
/// `input` is the position (from 0) of the offending input in the order
/// given. Names as in wire-spec 10.5.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    /// `part_truncated`: shorter than a part header (30 bytes).
    #[error("input {} is cut short inside its part header", input + 1)]
    Truncated {
        /// Which input.
        input: usize,
    },
    /// `unsupported_part_version`: a part version other than 2.
    #[error("input {} is a part of unsupported version {version}", input + 1)]
    UnsupportedVersion {
        /// Which input.
        input: usize,
        /// The version byte.
        version: u8,
    },
    /// `part_index_invalid`: index 0, or above the count.
    #[error("input {} claims to be part {index} of {count}, which cannot be", input + 1)]
    BadIndex {
        /// Which input.
        input: usize,
        /// Its index.
        index: u16,
        /// Its count.
        count: u16,
    },
    /// `several_files`: more than one input and none of them a part.
    #[error("several files were given, and they are not parts of one attachment")]
    SeveralFiles,
    /// `mixed_inputs`: parts and something that is not a part.
    #[error("input {} is not a part, but other inputs are", input + 1)]
    Mixed {
        /// The first input that is not a part.
        input: usize,
    },
    /// `foreign_part`: another file id than the first part's.
    #[error("input {} is a part of another attachment", input + 1)]
    Foreign {
        /// Which input.
        input: usize,
    },
    /// `part_count_mismatch`: the same file id, another part count.
    #[error("input {} says the attachment has {count} parts, the first part said {expected}", input + 1)]
    CountMismatch {
        /// Which input.
        input: usize,
        /// Its count.
        count: u16,
        /// The first part's count.
        expected: u16,
    },
    /// `duplicate_part`: an index given twice.
    #[error("input {} is part {index} again", input + 1)]
    Duplicate {
        /// Which input.
        input: usize,
        /// The index given twice.
        index: u16,
    },
    /// `missing_part`: indices absent from 1..=count.
    #[error("part {} of {count} is missing", join(missing))]
    Missing {
        /// The absent indices, ascending.
        missing: Vec<u16>,
        /// The count.
        count: u16,
    },
}

fn join(indices: &[u16]) -> String {
    indices
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl PartError {
    /// The stable name (wire-spec 10.5).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "part_truncated",
            Self::UnsupportedVersion { .. } => "unsupported_part_version",
            Self::BadIndex { .. } => "part_index_invalid",
            Self::SeveralFiles => "several_files",
            Self::Mixed { .. } => "mixed_inputs",
            Self::Foreign { .. } => "foreign_part",
            Self::CountMismatch { .. } => "part_count_mismatch",
            Self::Duplicate { .. } => "duplicate_part",
            Self::Missing { .. } => "missing_part",
        }
    }

    /// The input it names, if one.
    pub fn input(&self) -> Option<usize> {
        match self {
            Self::Truncated { input }
            | Self::UnsupportedVersion { input, .. }
            | Self::BadIndex { input, .. }
            | Self::Mixed { input }
            | Self::Foreign { input }
            | Self::CountMismatch { input, .. }
            | Self::Duplicate { input, .. } => Some(*input),
            Self::SeveralFiles | Self::Missing { .. } => None,
        }
    }

    fn at(self, position: usize) -> Self {
        match self {
            Self::Truncated { .. } => Self::Truncated { input: position },
            Self::UnsupportedVersion { version, .. } => Self::UnsupportedVersion {
                input: position,
                version,
            },
            Self::BadIndex { index, count, .. } => Self::BadIndex {
                input: position,
                index,
                count,
            },
            other => other,
        }
    }
}

/// How the inputs make one encrypted file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assembly {
    /// One input, a whole file (not a part).
    Whole,
    /// Parts: the inputs' positions in index order; each contributes the
    /// bytes after its 30-byte header.
    Parts(Vec<usize>),
}

/// Decides from the first bytes of each input (at least 30 where the
/// input has them) how they make one encrypted file, checking in this
/// order (wire-spec 10.5): each input's part header in the order given;
/// several non-parts; a non-part among parts; then, against the first
/// part given, each part's file id, count and index in the order given;
/// finally every index from 1 to the count is present.
///
/// # Errors
/// The first [`PartError`] found.
pub fn assemble(heads: &[&[u8]]) -> std::result::Result<Assembly, PartError> {
    let mut parts = Vec::with_capacity(heads.len());
    for (position, head) in heads.iter().enumerate() {
        parts.push(PartHeader::read(head).map_err(|e| e.at(position))?);
    }
    let whole = parts.iter().position(Option::is_none);
    match (whole, parts.iter().any(Option::is_some)) {
        (Some(_), false) if heads.len() == 1 => return Ok(Assembly::Whole),
        (Some(_), false) => return Err(PartError::SeveralFiles),
        (Some(input), true) => return Err(PartError::Mixed { input }),
        (None, _) => {}
    }
    let Some(Some(first)) = parts.first().copied() else {
        return Err(PartError::SeveralFiles);
    };
    let mut order: Vec<Option<usize>> = vec![None; usize::from(first.count)];
    for (position, part) in parts.iter().enumerate() {
        let Some(part) = part else { continue };
        if part.file_id != first.file_id {
            return Err(PartError::Foreign { input: position });
        }
        if part.count != first.count {
            return Err(PartError::CountMismatch {
                input: position,
                count: part.count,
                expected: first.count,
            });
        }
        let slot = &mut order[usize::from(part.index) - 1];
        if slot.is_some() {
            return Err(PartError::Duplicate {
                input: position,
                index: part.index,
            });
        }
        *slot = Some(position);
    }
    let missing: Vec<u16> = (1..=first.count)
        .filter(|i| order[usize::from(*i) - 1].is_none())
        .collect();
    if !missing.is_empty() {
        return Err(PartError::Missing {
            missing,
            count: first.count,
        });
    }
    Ok(Assembly::Parts(order.into_iter().flatten().collect()))
}

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

    /// Parses [`PartHeader::to_bytes`]; `None` when the bytes are not a part header.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < PART_HEADER_LEN
            || &bytes[..8] != MAGIC
            || bytes[8] != KIND_PART
            || bytes[9] != PART_VERSION
        {
            return None;
        }
        let mut file_id = [0u8; 16];
        file_id.copy_from_slice(&bytes[10..26]);
        let index = u16::from_be_bytes([bytes[26], bytes[27]]);
        let count = u16::from_be_bytes([bytes[28], bytes[29]]);
        (index >= 1 && index <= count).then_some(Self {
            file_id,
            index,
            count,
        })
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

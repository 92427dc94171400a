//! Unit tests of the attachment format: sizes at chunk boundaries, padding,
//! several recipients, and each kind of damage.

use std::io;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::*;
use crate::protocol::epoch::utc;
use crate::protocol::keys::{EpochChain, PairingSecret, Role};
use crate::protocol::wire::DecryptError;

fn now() -> DateTime<Utc> {
    utc("2026-11-22T10:00:00Z")
}

fn chain(seed: u8) -> EpochChain {
    EpochChain::new(
        PairingSecret::from_bytes(&[seed; 32]).first_epoch_key("2026-11".parse().unwrap()),
    )
}

fn seal(content: &[u8], seeds: &[u8]) -> Vec<u8> {
    let recipients: Vec<Recipient> = seeds
        .iter()
        .map(|&s| Recipient {
            key: chain(s)
                .key_for("2026-11".parse().unwrap())
                .unwrap()
                .into_owned(),
            direction: Direction::PhysicianToPatient,
        })
        .collect();
    let meta = Metadata {
        name: "labs.pdf".into(),
        mime: "application/pdf".into(),
        size: content.len() as u64,
    };
    let sealing = Sealing::new(&meta, &recipients).unwrap();
    let total = sealing.total_len();
    let mut out = Vec::new();
    sealing.write(content, &mut out, &mut |_| {}).unwrap();
    assert_eq!(out.len() as u64, total);
    out
}

fn open(file: &[u8], seed: u8) -> Result<(Vec<u8>, Decrypted)> {
    let mut input = io::BufReader::new(file);
    let header = Header::read(&mut input)?;
    let key = header.unwrap(&chain(seed), Role::Patient, now())?;
    let mut out = Vec::new();
    let decrypted = decrypt(input, &key, &mut out, &mut |_| {})?;
    Ok((out, decrypted))
}

#[test]
fn round_trips_at_chunk_boundaries() {
    // The plaintext stream adds the prefix and digest, so also test
    // content sizes that put the stream exactly on chunk boundaries.
    let prefix = stream_prefix(&Metadata {
        name: "labs.pdf".into(),
        mime: "application/pdf".into(),
        size: 0,
    })
    .unwrap()
    .len();
    for size in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * CHUNK_SIZE + 17,
        2 * CHUNK_SIZE - prefix - 32,
    ] {
        let content: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let file = seal(&content, &[1]);
        let (out, decrypted) = open(&file, 1).unwrap();
        assert_eq!(out, content, "size {size}");
        assert_eq!(decrypted.metadata.name, "labs.pdf");
        assert_eq!(decrypted.sha256, <[u8; 32]>::from(Sha256::digest(&content)));
    }
}

#[test]
fn outside_shows_only_a_padded_size() {
    let a = seal(&[1u8; 4100], &[1]);
    let b = seal(&[1u8; 4150], &[1]);
    assert_eq!(a.len(), b.len());
    assert!(!a.windows(8).any(|w| w == b"labs.pdf"));
}

#[test]
fn padme_bounds() {
    assert_eq!(padded_len(1), 4096);
    for len in [5000u64, 1 << 20, (1 << 30) + 123, 3_000_000_000] {
        let p = padded_len(len);
        assert!(
            p >= len && (p - len) as f64 / len as f64 <= 0.12,
            "{len} -> {p}"
        );
    }
}

#[test]
fn multiple_recipients_each_open_it() {
    let file = seal(b"consult report", &[1, 2]);
    assert_eq!(open(&file, 1).unwrap().0, b"consult report");
    assert_eq!(open(&file, 2).unwrap().0, b"consult report");
    assert!(matches!(
        open(&file, 3),
        Err(AttachmentError::Header(DecryptError::UnknownKeyHint))
    ));
}

fn header_len(recipients: usize) -> usize {
    Format::V3.fixed_len() + recipients * STANZA_LEN + HEADER_MAC_LEN
}

#[test]
fn each_kind_of_damage_has_its_own_error() {
    let content: Vec<u8> = (0..5 * CHUNK_SIZE).map(|i| i as u8).collect();
    let file = seal(&content, &[1]);
    let h = header_len(1);
    let chunk = |i: usize| h + i * SEALED_CHUNK..h + (i + 1) * SEALED_CHUNK;

    let mut modified = file.clone();
    modified[chunk(2).start + 10] ^= 1;
    assert!(matches!(
        open(&modified, 1),
        Err(AttachmentError::ChunkModified { chunk: 2 })
    ));

    let truncated = file[..chunk(3).end].to_vec();
    assert!(
        matches!(open(&truncated, 1), Err(AttachmentError::Truncated { .. })),
        "{:?}",
        open(&truncated, 1).err()
    );

    let mut appended = file.clone();
    appended.extend_from_slice(&file[chunk(1)]);
    assert!(
        matches!(
            open(&appended, 1),
            Err(AttachmentError::AppendedData { .. })
        ),
        "{:?}",
        open(&appended, 1).err()
    );

    let mut swapped = file[..h].to_vec();
    for i in [0, 2, 1, 3, 4, 5] {
        let range = chunk(i);
        swapped.extend_from_slice(&file[range.start..range.end.min(file.len())]);
    }
    assert!(matches!(
        open(&swapped, 1),
        Err(AttachmentError::Reordered {
            chunk: 1,
            belongs_at: 2
        })
    ));

    let mut duplicated = file[..h].to_vec();
    for i in [0, 1, 1, 2, 3, 4, 5] {
        let range = chunk(i);
        duplicated.extend_from_slice(&file[range.start..range.end.min(file.len())]);
    }
    assert!(matches!(
        open(&duplicated, 1),
        Err(AttachmentError::Duplicated {
            chunk: 2,
            copy_of: 1
        })
    ));

    // Cut at a chunk boundary and followed by an empty "last" chunk: the
    // header announces the length, so this is a truncation (format 2 named
    // it empty_final_chunk; its vector keeps that case).
    let mut empty_last = file[..chunk(2).end].to_vec();
    empty_last.extend_from_slice(&[0u8; TAG_LEN]);
    assert!(matches!(
        open(&empty_last, 1),
        Err(AttachmentError::Truncated { chunks: 3 })
    ));

    let mut header = file.clone();
    header[h - 1] ^= 1; // the header MAC
    assert!(matches!(
        open(&header, 1),
        Err(AttachmentError::Header(DecryptError::AuthenticationFailed))
    ));
    assert!(matches!(
        open(b"%PDF-1.7 not encrypted", 1),
        Err(AttachmentError::NotAttachment)
    ));
}

#[test]
fn expired_and_reflected_headers() {
    let file = seal(b"x", &[1]);
    let mut input = io::BufReader::new(&file[..]);
    let header = Header::read(&mut input).unwrap();
    assert!(matches!(
        header.unwrap(&chain(1), Role::Physician, now()),
        Err(AttachmentError::Header(DecryptError::Reflected))
    ));
    assert!(matches!(
        header.unwrap(&chain(1), Role::Patient, utc("2026-12-09T00:00:00Z")),
        Err(AttachmentError::Header(DecryptError::Expired { .. }))
    ));
}

#[test]
fn input_that_changes_size_is_refused() {
    let recipients = vec![Recipient {
        key: chain(1)
            .key_for("2026-11".parse().unwrap())
            .unwrap()
            .into_owned(),
        direction: Direction::PhysicianToPatient,
    }];
    let meta = Metadata {
        name: "a".into(),
        mime: "text/plain".into(),
        size: 10,
    };
    let sealing = Sealing::new(&meta, &recipients).unwrap();
    assert!(matches!(
        sealing.write(&b"short"[..], Vec::new(), &mut |_| {}),
        Err(AttachmentError::InputChanged)
    ));
    let sealing = Sealing::new(&meta, &recipients).unwrap();
    assert!(matches!(
        sealing.write(&b"much too long!"[..], Vec::new(), &mut |_| {}),
        Err(AttachmentError::InputChanged)
    ));
}

#[test]
fn debug_shows_no_name_or_content() {
    let meta = Metadata {
        name: "HIV-result.pdf".into(),
        mime: "application/pdf".into(),
        size: 3,
    };
    assert!(!format!("{meta:?}").contains("HIV"));
}

#[test]
fn names_are_sanitised() {
    assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
    assert_eq!(sanitize_file_name("C:\\Users\\x\\scan.pdf"), "scan.pdf");
    assert_eq!(sanitize_file_name(".."), "attachment");
    assert_eq!(sanitize_file_name("..hidden"), "hidden");
    assert_eq!(sanitize_file_name("a\u{0}b\nc.txt"), "abc.txt");
    assert_eq!(sanitize_file_name(""), "attachment");
}

#[test]
fn part_headers() {
    let header = PartHeader {
        file_id: [3; 16],
        index: 2,
        count: 3,
    };
    assert_eq!(PartHeader::parse(&header.to_bytes()), Some(header));
    assert_eq!(PartHeader::count_for(100_000, 40_030), Some(3));
    assert_eq!(PartHeader::count_for(100, 10), None);
}

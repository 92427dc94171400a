//! The bodies of the fuzz targets in `fuzz/`, kept in the library so that
//! `tests/fuzz_corpus.rs` replays the committed corpus (and every crash
//! once found) through exactly the same code in a plain `cargo test`.
//!
//! Each function takes any bytes and must neither panic nor allocate
//! without bound; a verdict is fine, whatever it is. Where a parser sits
//! behind authentication, the target seals fuzzer-chosen bytes first so
//! the parser is reached.

use std::io::BufReader;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};

use crate::protocol::attachment::{self, FuzzStream, Header, Recipient};
use crate::protocol::audit;
use crate::protocol::codes;
use crate::protocol::epoch::{Epoch, parse_utc};
use crate::protocol::keys::{Direction, EpochChain, PairingSecret, Role};
use crate::protocol::legacy::{LegacyMessage, LegacyPairing};
use crate::protocol::shares::{ShareText, combine};
use crate::protocol::wire::WireMessage;

fn now() -> DateTime<Utc> {
    parse_utc("2026-11-20T10:00:00Z").unwrap_or_default()
}

fn start() -> Epoch {
    Epoch::containing(now())
}

/// The fuzz pairing: a fixed secret, so that an input found once opens the
/// same way every time.
fn chain() -> EpochChain {
    let mut chain =
        EpochChain::new(PairingSecret::from_bytes(&[0x42; 32]).first_epoch_key(start()));
    chain.advance(now());
    chain
}

fn role(flag: u8) -> Role {
    if flag & 1 == 0 {
        Role::Patient
    } else {
        Role::Physician
    }
}

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Wire text v2: parse, then open with the fuzz pairing's keys; also the
/// chat-excerpt finder over the same text.
pub fn wire(data: &[u8]) {
    let Some((&flag, rest)) = data.split_first() else {
        return;
    };
    let text = text(rest);
    if let Ok(message) = WireMessage::parse(&text) {
        let _ = message.open(&chain(), role(flag), now());
    }
    for found in crate::protocol::excerpt::find_messages(&text).found {
        let _ = WireMessage::parse(&found.token);
    }
}

/// Legacy v1: parse, then decrypt under a fixed shared secret (its month
/// keys are derived once and cached, as the spec requires).
pub fn legacy(data: &[u8]) {
    static PAIRING: OnceLock<Mutex<LegacyPairing>> = OnceLock::new();
    let Ok(message) = LegacyMessage::parse(&text(data)) else {
        return;
    };
    let pairing = PAIRING.get_or_init(|| {
        Mutex::new(LegacyPairing::new(
            "fuzz shared secret".to_owned().into(),
            "P-1".into(),
        ))
    });
    if let Ok(mut pairing) = pairing.lock() {
        let _ = pairing.decrypt(&message, now());
    }
}

/// Decrypts `file` (binary or ASCII-armoured) for `role` with the fuzz
/// pairing, into memory.
fn open_file(file: &[u8], role: Role) {
    let dearmored;
    let file = if attachment::is_armored(file) {
        match attachment::dearmor(file) {
            Ok(bytes) => {
                dearmored = bytes;
                &dearmored[..]
            }
            Err(_) => return,
        }
    } else {
        file
    };
    let mut input = BufReader::new(file);
    let Ok(header) = Header::read(&mut input) else {
        return;
    };
    let Ok(key) = header.unwrap(&chain(), role, now()) else {
        return;
    };
    let mut out = Vec::new();
    let _ = attachment::decrypt(input, &key, &mut out, &mut |_| {});
}

/// A whole encrypted file as raw bytes: header, stanzas, STREAM.
pub fn attachment(data: &[u8]) {
    let Some((&flag, rest)) = data.split_first() else {
        return;
    };
    open_file(rest, role(flag));
}

/// A file sealed for the fuzz pairing around a fuzzer-chosen plaintext
/// stream, so that the checks behind the AEAD are reached: the metadata
/// JSON, the layout and padding, the content hash, the sender tag.
pub fn attachment_sealed(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(key) = chain().key_for(start()).map(std::borrow::Cow::into_owned) else {
        return;
    };
    let recipient = Recipient {
        key,
        direction: Direction::PhysicianToPatient,
    };
    let stream = if mode & 1 == 0 {
        // Raw: the first 8 bytes (if any) choose the declared length.
        let (declared, stream) = match rest.split_first_chunk::<8>() {
            Some((len, stream)) if mode & 2 == 0 => (u64::from_be_bytes(*len), stream),
            _ => (
                attachment::padded_len(rest.len() as u64).max(rest.len() as u64),
                rest,
            ),
        };
        FuzzStream::Raw { declared, stream }
    } else {
        // Laid out: metadata length, metadata, content, then padding.
        let (&m, rest) = rest.split_first().unwrap_or((&0, &[]));
        let (metadata, rest) = rest.split_at(usize::from(m).min(rest.len()));
        let (&c, rest) = rest.split_first().unwrap_or((&0, &[]));
        let (content, padding) = rest.split_at((usize::from(c) * 16).min(rest.len()));
        FuzzStream::Laid {
            metadata,
            content,
            padding,
        }
    };
    let file = attachment::seal_stream(&recipient, [0x17; 32], &stream);
    open_file(&file, Role::Patient);
}

/// Part headers and the assembly of a set of parts: the input is split at
/// each `MEDCRYPTP` into the parts of one delivery.
pub fn parts(data: &[u8]) {
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while let Some(at) = find(&rest[1.min(rest.len())..], b"MEDCRYPTP") {
        let (piece, tail) = rest.split_at(at + 1);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    match attachment::assemble(&pieces) {
        Ok(attachment::Assembly::Whole) => open_file(data, Role::Patient),
        Ok(attachment::Assembly::Parts(order)) => {
            let whole: Vec<u8> = order
                .iter()
                .flat_map(|&i| &pieces[i][attachment::PART_HEADER_LEN.min(pieces[i].len())..])
                .copied()
                .collect();
            open_file(&whole, Role::Patient);
        }
        Err(_) => {}
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Escrow share text: each line is a share; the well-formed ones combine.
pub fn share(data: &[u8]) {
    let text = text(data);
    let shares: Vec<ShareText> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| ShareText::parse(line, i + 1).ok())
        .collect();
    if !shares.is_empty() {
        let _ = combine(&shares);
    }
}

/// Everything a person types or scans: the QR payload, the typed pairing
/// code, the recovery code, the audit verification code, the checkpoint
/// line, and the ASCII armour of a file.
pub fn codes(data: &[u8]) {
    let text = text(data);
    let _ = codes::PairingInvite::from_uri(&text);
    let _ = codes::read_pairing_code(&text);
    let _ = codes::RecoveryCode::parse(&text);
    let _ = codes::parse_verification_code(&text);
    let _ = audit::Checkpoint::parse(&text);
}

/// An audit export file, verified with a fixed code.
pub fn audit_export(data: &[u8]) {
    let code = codes::VerificationCode {
        key: audit::SealingKey::from_bytes(20_000, &[0x33; 32]),
        store_id: None,
    };
    let _ = audit::verify_export(data, &code, None);
}

/// A QR code image (PNG, JPEG, …), with its declared dimensions bounded.
pub fn qr_image(data: &[u8]) {
    let _ = crate::qr::decode_image(data);
}

/// Valid inputs for each target, made with the fuzz keys: the starting
/// corpus (`cargo run --example fuzz_seeds` writes them to `fuzz/seeds/`),
/// so that every target begins past the first checks.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let chain = chain();
    let Some(key) = chain.key_for(start()).map(std::borrow::Cow::into_owned) else {
        return out;
    };
    // Wire text, for the patient (flag 0) and reflected to the physician (1).
    if let Ok(message) = WireMessage::seal(
        &key,
        Direction::PhysicianToPatient,
        7,
        &crate::protocol::wire::Payload::Text("Lab result: normal.".into()),
    ) {
        let text = message.to_text();
        out.push(("wire", [b"\x00", text.as_bytes()].concat()));
        out.push((
            "wire",
            format!("\x01Dr Who, 10:02\n{text}\nthanks").into_bytes(),
        ));
    }
    let mut legacy = LegacyPairing::new("fuzz shared secret".to_owned().into(), "P-1".into());
    out.push((
        "legacy",
        legacy.encrypt("hello", now()).to_text().into_bytes(),
    ));
    // Files: one chunk and two chunks.
    for size in [100usize, 70_000] {
        let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let metadata = attachment::Metadata {
            name: "lab.pdf".into(),
            mime: "application/pdf".into(),
            size: size as u64,
        };
        let recipient = Recipient {
            key: key.clone(),
            direction: Direction::PhysicianToPatient,
        };
        let Ok(sealing) = attachment::Sealing::new(&metadata, std::slice::from_ref(&recipient))
        else {
            continue;
        };
        let id = sealing.file_id();
        let mut file = Vec::new();
        if sealing.write(&content[..], &mut file, &mut |_| {}).is_err() {
            continue;
        }
        if size == 100 {
            out.push(("attachment", [&[0u8][..], &file].concat()));
            out.push((
                "attachment",
                [&[0u8][..], &attachment::armor(&file)].concat(),
            ));
            // Two parts of the small file.
            let cut = file.len() / 2;
            let mut parts = Vec::new();
            for (index, bytes) in [(1u16, &file[..cut]), (2, &file[cut..])] {
                let head = attachment::PartHeader {
                    file_id: id,
                    index,
                    count: 2,
                };
                parts.extend_from_slice(&head.to_bytes());
                parts.extend_from_slice(bytes);
            }
            out.push(("parts", parts));
        }
    }
    let meta = br#"{"name":"x.txt","mime":"text/plain","size":5}"#;
    let mut laid = vec![1u8, meta.len() as u8];
    laid.extend_from_slice(meta);
    laid.push(1);
    laid.extend_from_slice(b"hello, world 16b");
    out.push(("attachment_sealed", laid));
    out.push(("attachment_sealed", [&[2u8][..], &[0u8; 64]].concat()));
    // Shares, two of three.
    let secret = crate::protocol::shares::EscrowSecret {
        escrow_key: zeroize::Zeroizing::new([5u8; 32]),
        audit_key: None,
    };
    let names = ["Ana".to_owned(), "Luis".to_owned(), "Marta".to_owned()];
    if let Ok(shares) = crate::protocol::shares::split(&secret, 2, &names) {
        let text: Vec<String> = shares
            .iter()
            .take(2)
            .map(|s| s.to_text().to_string())
            .collect();
        out.push(("share", text.join("\n").into_bytes()));
    }
    // Codes.
    let invite = codes::PairingInvite {
        secret: PairingSecret::from_bytes(&[0x42; 32]),
        start: start(),
        physician_name: "Dra. Núñez".into(),
        telegram_bot: Some("clinic_bot".into()),
        whatsapp_number: Some("+34 600 000 000".into()),
        expires: Some(now()),
    };
    out.push(("codes", invite.to_uri().as_bytes().to_vec()));
    out.push((
        "codes",
        codes::pairing_code(&invite.secret, start(), now()).into_bytes(),
    ));
    out.push((
        "codes",
        codes::RecoveryCode::from_bytes([9; 16])
            .to_text()
            .as_bytes()
            .to_vec(),
    ));
    let sealing_key = audit::SealingKey::from_bytes(20_000, &[0x33; 32]);
    out.push((
        "codes",
        codes::verification_code(&sealing_key, &[1, 2, 3, 4, 5])
            .as_bytes()
            .to_vec(),
    ));
    out.push((
        "codes",
        audit::Checkpoint::new(Some("0102030405"), 3, &[8; 32], now())
            .to_text()
            .into_bytes(),
    ));
    // An audit log of two days, exported.
    let enc = [0x44u8; 32];
    let mut sealer = audit::Sealer::new(&enc, sealing_key, 0, [0; 32]);
    let mut records = Vec::new();
    for (i, action) in ["init", "pair_new", "decrypt"].iter().enumerate() {
        let at = audit::day_start(20_000 + i as u32 / 2) + chrono::Duration::hours(9);
        let event = audit::AuditEvent {
            time: crate::protocol::epoch::format_utc(at),
            actor: "dr".into(),
            action: (*action).into(),
            subject: String::new(),
            outcome: "ok".into(),
            details: std::collections::BTreeMap::new(),
        };
        records.extend(sealer.append(&event, at));
    }
    let head = audit::ExportHead {
        store_id: None,
        day: sealer.key().day(),
        last_seq: sealer.last_seq(),
        last_mac: *sealer.last_mac(),
        head_mac: Some(sealer.head_mac()),
    };
    out.push((
        "audit_export",
        audit::export_json(&head, &enc, &records).into_bytes(),
    ));
    if let Ok(png) = crate::qr::render_png("medcrypt://pair/v2?s=AAAA&e=2026-11&n=x") {
        out.push(("qr_image", png));
    }
    out
}

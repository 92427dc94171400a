//! The promises of the data path, each attacked the way an outside
//! reviewer did against the binary: a co-recipient forging a file, pasted
//! messages read again, keys that must die on time without a passphrase,
//! store rows edited in the SQLite file, senders passing as one another,
//! and decrypted plaintext left behind by an interrupted command.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use common::{NOV, Party, paired};
use medcrypt::codes::parse_pairing_code;
use medcrypt::{Direction, EpochKey};
use sha2::{Digest, Sha256};

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Pairs `doc` with a second patient store as `alias`; returns that store
/// and the typed code (which holds the pairing secret).
fn second_patient(dir: &Path, doc: &Party, alias: &str) -> (Party, String) {
    let other = Party::new(dir, alias);
    other.ok(&["init"], "", NOV);
    let png = dir.join(format!("{alias}.png"));
    let shown = doc.ok(
        &[
            "pair",
            "new",
            "--patient",
            alias,
            "--qr-png",
            png.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    other.ok(
        &[
            "pair",
            "accept",
            "--qr-image",
            png.to_str().unwrap(),
            "--physician",
            "dr-silva",
        ],
        "",
        NOV,
    );
    (other, common::line_after(&shown, "Typed code"))
}

fn hkdf(ikm: &[u8], info: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, ikm)
        .expand(info.as_bytes(), &mut out)
        .unwrap();
    out
}

/// What a co-recipient holding `key` (their own pairing's month key) can
/// do to a file the physician encrypted for them and someone else, written
/// from the spec alone: unwrap the file key from their own stanza, decrypt
/// the payload, and re-encrypt new content of the same size under the same
/// header, keeping everything they cannot recompute byte for byte.
fn forge_as_co_recipient(file: &[u8], key: &EpochKey, new_content: &[u8]) -> Vec<u8> {
    let version = file[9];
    let (fixed_len, count_at) = match version {
        2 => (14, 13),
        3 => (22, 21),
        v => panic!("unknown attachment version {v}"),
    };
    let n = usize::from(file[count_at]);
    let header_len = fixed_len + n * 65 + 32;
    let header = &file[..header_len];
    let fixed = &file[..fixed_len];
    let hint = key.key_hint().0;
    let wrap = key.file_wrap_key(Direction::PhysicianToPatient);
    let stanza = header[fixed_len..fixed_len + n * 65]
        .chunks(65)
        .find(|s| s[..4] == hint && s[4] == 1)
        .expect("the co-recipient's own stanza");
    let mut aad = format!("medcrypt/v{version}/file-key").into_bytes();
    aad.extend_from_slice(fixed);
    aad.extend_from_slice(&stanza[..5]);
    let file_key = Aes256Gcm::new(wrap.expose_bytes().into())
        .decrypt(
            Nonce::from_slice(&stanza[5..17]),
            AeadPayload {
                msg: &stanza[17..65],
                aad: &aad,
            },
        )
        .unwrap();
    let payload_key = hkdf(&file_key, &format!("medcrypt/v{version}/file-payload:"));
    let cipher = Aes256Gcm::new(&payload_key.into());
    let chunk_aad: Vec<u8> = if version == 3 {
        header[header_len - 32..].to_vec()
    } else {
        Vec::new()
    };
    let sealed = &file[header_len..];
    let chunks = sealed.len().div_ceil(65_536 + 16);
    let nonce = |i: usize| {
        let mut n = [0u8; 12];
        n[3..11].copy_from_slice(&(i as u64).to_be_bytes());
        n[11] = u8::from(i + 1 == chunks);
        n
    };
    let mut stream = Vec::new();
    for (i, chunk) in sealed.chunks(65_536 + 16).enumerate() {
        stream.extend(
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce(i)),
                    AeadPayload {
                        msg: chunk,
                        aad: &chunk_aad,
                    },
                )
                .unwrap(),
        );
    }
    let m = u32::from_be_bytes(stream[..4].try_into().unwrap()) as usize;
    let start = 4 + m;
    assert_eq!(
        &stream[start + new_content.len()..start + new_content.len() + 32],
        Sha256::digest(&stream[start..start + new_content.len()]).as_slice(),
        "the new content must have the original's size"
    );
    stream[start..start + new_content.len()].copy_from_slice(new_content);
    let digest = Sha256::digest(new_content);
    stream[start + new_content.len()..start + new_content.len() + 32].copy_from_slice(&digest);
    let mut forged = header.to_vec();
    for (i, chunk) in stream.chunks(65_536).enumerate() {
        let mut data = chunk.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce(i)), &chunk_aad, &mut data)
            .unwrap();
        forged.extend_from_slice(&data);
        forged.extend_from_slice(&tag);
    }
    forged
}

#[test]
fn a_co_recipient_cannot_forge_a_file_from_the_physician() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let (_bob, bob_code) = second_patient(dir.path(), &doc, "bob");
    let original = b"Lab results for Alice: HIV NEGATIVE.......";
    let input = dir.path().join("labs.txt");
    std::fs::write(&input, original).unwrap();
    let file = dir.path().join("labs.medcrypt");
    doc.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            "--to",
            "bob",
            input.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    // Bob holds his own pairing's key: the typed code carries its secret.
    let (secret, start) = parse_pairing_code(&bob_code).unwrap();
    let bob_key = secret.first_epoch_key(start);
    let forged = forge_as_co_recipient(
        &std::fs::read(&file).unwrap(),
        &bob_key,
        b"Lab results for Alice: HIV REACTIVE.......",
    );
    let forged_path = dir.path().join("forged.medcrypt");
    std::fs::write(&forged_path, forged).unwrap();
    let out = dir.path().join("alice-out");
    std::fs::create_dir(&out).unwrap();
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            forged_path.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 3, "a forged file was accepted: {}", run.stderr);
    assert!(run.stderr.contains("sender"), "{}", run.stderr);
    assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));
    // The genuine file still opens for Alice.
    pat.ok(
        &[
            "attach",
            "decrypt",
            file.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(std::fs::read(out.join("labs.txt")).unwrap(), original);
}

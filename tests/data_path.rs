//! The promises of the data path, each attacked the way an outside
//! reviewer did against the binary: a co-recipient forging a file, pasted
//! messages read again, keys that must die on time without a passphrase,
//! store rows edited in the SQLite file, senders passing as one another,
//! and decrypted plaintext left behind by an interrupted command.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use common::{NOV, PASSPHRASE, Party, paired};
use medcrypt::codes::parse_pairing_code;
use medcrypt::{Direction, EpochKey, Payload, WireMessage};
use sha2::{Digest, Sha256};

const DEC_9: &str = "2026-12-09T10:00:00Z";

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
    assert!(
        common::files_in(&out).is_empty(),
        "{:?}",
        common::files_in(&out)
    );
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

#[test]
fn a_message_pasted_again_is_shown_from_history_and_a_different_one_is_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, code) = paired(dir.path());
    let wire = doc.encrypt("alice", "Come back on Monday.", NOV);
    let first = pat.decrypt(&wire, NOV);
    assert_eq!(
        (first.code, first.stdout.as_str()),
        (0, "Come back on Monday.\n")
    );
    let again = pat.decrypt(&wire, "2026-11-21T08:00:00Z");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, "Come back on Monday.\n");
    assert!(
        again.stderr.contains("already read on 2026-11-20"),
        "{}",
        again.stderr
    );
    // Someone holding the key seals other text under the same number.
    let (secret, start) = parse_pairing_code(&code).unwrap();
    let sequence = WireMessage::parse(&wire).unwrap().header().sequence;
    let other = WireMessage::seal(
        &secret.first_epoch_key(start),
        Direction::PhysicianToPatient,
        sequence,
        &Payload::Text("Stop all medication.".into()),
    )
    .unwrap()
    .to_text();
    let run = pat.decrypt(&other, NOV);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn retention_is_stated_chosen_and_enforced_on_the_pasted_history() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let shown = pat.ok(&["config", "show"], "", NOV);
    assert!(
        shown.contains("retention") && shown.contains("key-lifetime"),
        "{shown}"
    );
    let wire = pat.encrypt("dr-silva", "Rash is spreading.", NOV);
    assert_eq!(doc.decrypt(&wire, NOV).code, 0);
    let inbox = doc.ok(&["inbox"], "", NOV);
    assert!(inbox.contains("Rash is spreading."), "{inbox}");
    assert!(inbox.contains("expires on 2026-12-08"), "{inbox}");
    // The month key dies on 8 December, and the history with it.
    let inbox = doc.ok(&["inbox"], "", DEC_9);
    assert!(!inbox.contains("Rash"), "{inbox}");
    // Kept for 60 days instead, the spec says what that gives up.
    doc.ok(&["config", "set", "retention", "60d"], "", DEC_9);
    let wire = pat.encrypt("dr-silva", "Still itching.", DEC_9);
    assert_eq!(doc.decrypt(&wire, DEC_9).code, 0);
    let keys = doc.ok(&["keys", "list"], "", "2027-01-09T10:00:00Z");
    assert!(keys.contains("retention: 60d"), "{keys}");
    let inbox = doc.ok(&["inbox"], "", "2027-01-09T10:00:00Z");
    assert!(inbox.contains("Still itching."), "{inbox}");
    assert!(inbox.contains("expires on 2027-02-07"), "{inbox}");
    let export = dir.path().join("export");
    doc.ok(
        &["inbox", "export", export.to_str().unwrap()],
        "",
        "2027-01-09T10:00:00Z",
    );
    let text = std::fs::read_to_string(export.join("messages.txt")).unwrap();
    assert!(text.contains("Still itching."), "{text}");
}

#[test]
fn keys_die_on_time_without_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, code) = paired(dir.path());
    let wire = doc.encrypt("alice", "Biopsy: benign.", NOV);
    assert_eq!(pat.decrypt(&wire, NOV).code, 0);
    // The scheduled shredder runs daily with no passphrase at all; nobody
    // unlocks the store in the meantime.
    let shred = |now: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
            .arg("--store")
            .arg(&pat.store)
            .args(["keys", "shred"])
            .env("MEDCRYPT_NOW", now)
            .env_remove("MEDCRYPT_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let days = (21..=30)
        .map(|d| format!("2026-11-{d}T10:00:00Z"))
        .chain((1..=7).map(|d| format!("2026-12-0{d}T10:00:00Z")));
    for day in days {
        let stdout = shred(&day);
        assert!(!stdout.contains("Destroyed"), "{day}: {stdout}");
    }
    let stdout = shred("2026-12-08T10:00:00Z");
    assert!(stdout.contains("2026-11"), "{stdout}");
    // Someone who later holds the file and the passphrase finds no key to
    // read November with: the store's own rows no longer hold it.
    let (secret, start) = parse_pairing_code(&code).unwrap();
    let november = secret.first_epoch_key(start);
    assert!(
        !common::store_holds_key(&pat.store, "dr-silva", november.expose_bytes()),
        "the November key is still in the store after its destruction time"
    );
    // The actual destruction time is reported, and the message is expired.
    let keys = pat.ok(&["keys", "list"], "", "2027-03-01T10:00:00Z");
    assert!(
        keys.contains("2026-11") && keys.contains("destroyed on 2026-12-08T10:00"),
        "{keys}"
    );
    let run = pat.decrypt(&wire, "2027-03-01T10:00:00Z");
    assert_eq!(run.code, 4, "{}", run.stderr);
}

#[test]
fn a_late_destruction_is_reported_as_late() {
    let dir = tempfile::tempdir().unwrap();
    let (_doc, pat, _) = paired(dir.path());
    let keys = pat.ok(&["keys", "list"], "", "2027-03-01T10:00:00Z");
    assert!(
        keys.contains("due since 2026-12-08") || keys.contains("due 2026-12-08"),
        "{keys}"
    );
    assert!(keys.contains("destroyed on 2027-03-01"), "{keys}");
    assert!(keys.contains("will be destroyed on"), "{keys}");
}

#[test]
fn keys_schedule_installs_and_removes_a_daily_shredder() {
    let dir = tempfile::tempdir().unwrap();
    let (_doc, pat, _) = paired(dir.path());
    // A fake systemctl records what it is asked.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("systemctl.log");
    let script = format!("#!/bin/sh\necho \"$@\" >> {}\nexit 0\n", log.display());
    let systemctl = bin.join("systemctl");
    std::fs::write(&systemctl, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = dir.path().join("config");
    let run = |args: &[&str], path: &str| {
        Command::new(env!("CARGO_BIN_EXE_medcrypt"))
            .arg("--store")
            .arg(&pat.store)
            .args(args)
            .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
            .env("MEDCRYPT_NOW", NOV)
            .env("XDG_CONFIG_HOME", &config)
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let with_systemd = format!("{}:/usr/bin:/bin", bin.display());
    let out = run(&["keys", "schedule"], &with_systemd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let units: Vec<PathBuf> = std::fs::read_dir(config.join("systemd/user"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let timer = units
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "timer"))
        .unwrap();
    let service = std::fs::read_to_string(timer.with_extension("service")).unwrap();
    assert!(service.contains("keys shred"), "{service}");
    assert!(service.contains(pat.store.to_str().unwrap()), "{service}");
    assert!(!service.contains(PASSPHRASE), "{service}");
    assert!(
        std::fs::read_to_string(timer)
            .unwrap()
            .contains("OnCalendar=")
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("--user") && calls.contains("enable"),
        "{calls}"
    );
    let out = run(&["keys", "schedule", "--remove"], &with_systemd);
    assert!(out.status.success());
    assert!(!timer.exists());
    // Without systemd, a crontab line to install.
    let out = run(&["keys", "schedule"], "/nonexistent");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("crontab") && stdout.contains("keys shred"),
        "{stdout}"
    );
}

#[test]
fn swapped_aliases_in_the_file_never_misdirect_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, _pat, _) = paired(dir.path());
    let (_bob, _) = second_patient(dir.path(), &doc, "bob");
    common::sql(
        &doc.store,
        "UPDATE pairings SET alias = 'tmp' WHERE alias = 'alice';
         UPDATE pairings SET alias = 'alice' WHERE alias = 'bob';
         UPDATE pairings SET alias = 'bob' WHERE alias = 'tmp';",
    );
    let run = doc.run_at(&["encrypt", "--to", "alice", "for Alice only"], "", NOV);
    assert_ne!(run.code, 0, "encrypted after the aliases were swapped");
    assert!(
        run.stderr.contains("modified outside MedCrypt"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_history_row_moved_to_another_pairing_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let (bob, _) = second_patient(dir.path(), &doc, "bob");
    let wire = bob.encrypt("dr-silva", "I am Bob.", NOV);
    assert_eq!(doc.decrypt(&wire, NOV).code, 0);
    let _ = pat;
    let shown = doc.ok(&["inbox", "--from", "bob"], "", NOV);
    assert!(
        shown.contains("I am Bob."),
        "not kept in the history: {shown}"
    );
    let conn = rusqlite::Connection::open(&doc.store).unwrap();
    let alice: i64 = conn
        .query_row("SELECT id FROM pairings WHERE alias = 'alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let table = ["history", "inbox"]
        .into_iter()
        .find(|t| {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                [t],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                == 1
        })
        .unwrap();
    conn.execute(&format!("UPDATE {table} SET pairing_id = ?1"), [alice])
        .unwrap();
    drop(conn);
    let run = doc.run_at(&["inbox", "--from", "alice"], "", NOV);
    assert!(
        !(run.code == 0 && run.stdout.contains("I am Bob.")),
        "Bob's message shown as Alice's: {}",
        run.stdout
    );
}

#[test]
fn deleted_replay_state_does_not_reopen_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, code) = paired(dir.path());
    let wire = doc.encrypt("alice", "Dose: 5 mg.", NOV);
    assert_eq!(pat.decrypt(&wire, NOV).code, 0);
    let conn = rusqlite::Connection::open(&pat.store).unwrap();
    let _ = conn.execute("DELETE FROM seen", []);
    drop(conn);
    let (secret, start) = parse_pairing_code(&code).unwrap();
    let sequence = WireMessage::parse(&wire).unwrap().header().sequence;
    let other = WireMessage::seal(
        &secret.first_epoch_key(start),
        Direction::PhysicianToPatient,
        sequence,
        &Payload::Text("Dose: 50 mg.".into()),
    )
    .unwrap()
    .to_text();
    let run = pat.decrypt(&other, NOV);
    assert_ne!(run.code, 0, "a replayed sequence number was accepted again");
    assert!(run.stdout.is_empty());
}

#[test]
fn decrypt_names_the_verified_sender_and_refuses_a_wrong_from() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    // The patient has a second physician.
    let doc2 = Party::new(dir.path(), "physician2");
    doc2.ok(&["init", "--name", "Dr. Lee"], "", NOV);
    let png = dir.path().join("lee.png");
    doc2.ok(
        &[
            "pair",
            "new",
            "--patient",
            "alice",
            "--qr-png",
            png.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    pat.ok(
        &[
            "pair",
            "accept",
            "--qr-image",
            png.to_str().unwrap(),
            "--physician",
            "dr-lee",
        ],
        "",
        NOV,
    );
    let wire = doc.encrypt("alice", "From Silva.", NOV);
    let run = pat.decrypt(&wire, NOV);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr.contains("From: dr-silva") && run.stderr.contains("Dr. Ana Silva"),
        "{}",
        run.stderr
    );
    let wire = doc.encrypt("alice", "Also from Silva.", NOV);
    let run = pat.run_at(&["decrypt", "--from", "dr-lee"], &wire, NOV);
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.stderr.contains("dr-silva"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn printed_bodies_and_file_names_cannot_imitate_or_hide() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let sneaky = "fine\n#99 2026-11-20T10:00:00Z dr-silva:\nStop your insulin.\x1b[2J\u{202e}";
    let wire = pat.encrypt("dr-silva", sneaky, NOV);
    assert_eq!(doc.decrypt(&wire, NOV).code, 0);
    let inbox = doc.ok(&["inbox"], "", NOV);
    assert!(
        !inbox.contains('\x1b') && !inbox.contains('\u{202e}'),
        "{inbox:?}"
    );
    assert!(
        !inbox.lines().any(|l| l.starts_with("#99")),
        "a body imitates an entry: {inbox}"
    );
    // Spaces that push a fake heading to where an 80-column terminal wraps.
    let spaced = format!(
        "ok\n{}#3 2026-11-20T10:05:00Z from alice · expires on 2026-12-08",
        " ".repeat(76)
    );
    let wire = pat.encrypt("dr-silva", &spaced, "2026-11-20T10:01:00Z");
    assert_eq!(doc.decrypt(&wire, "2026-11-20T10:01:00Z").code, 0);
    let inbox = doc.ok(&["inbox"], "", "2026-11-20T10:02:00Z");
    for line in inbox.lines() {
        assert!(
            line.chars().count() <= 80,
            "the terminal would wrap {line:?}"
        );
    }
    let headings = inbox.lines().filter(|l| l.starts_with('#')).count();
    assert_eq!(headings, 2, "{inbox}");
    // A body that carries its own "From:" line, read on a terminal.
    let forged =
        "ok\n\nFrom: alice (patient), verified by this pairing's key\nI changed my pharmacy";
    let wire = pat.encrypt("dr-silva", forged, "2026-11-20T10:03:00Z");
    let wire_file = dir.path().join("forged.txt");
    std::fs::write(&wire_file, &wire).unwrap();
    let on_terminal = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} --yes --store '{}' decrypt '{}'",
            env!("CARGO_BIN_EXE_medcrypt"),
            doc.store.display(),
            wire_file.display()
        ))
        .arg("/dev/null")
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", "2026-11-20T10:03:00Z")
        .stdin(Stdio::null())
        .output();
    if let Ok(shown) = on_terminal {
        let shown = String::from_utf8_lossy(&shown.stdout);
        let from_lines: Vec<&str> = shown
            .lines()
            .filter(|l| l.trim_start_matches('\r').starts_with("From:"))
            .collect();
        assert_eq!(from_lines.len(), 1, "{shown}");
        assert!(shown.contains("│ From: alice"), "{shown}");
    }
    // A file name with a right-to-left override.
    let input = dir.path().join("invoice\u{202e}fdp.exe");
    std::fs::write(&input, b"MZ").unwrap();
    let file = dir.path().join("x.medcrypt");
    doc.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            input.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let run = pat.run_at(
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
    assert_eq!(run.code, 0, "{}", run.stderr);
    for name in common::files_in(&out) {
        assert!(!name.contains('\u{202e}'), "{name:?}");
    }
    assert!(!run.stdout.contains('\u{202e}'), "{:?}", run.stdout);
}

/// A FIFO the test writes into slowly, so a command can be interrupted
/// mid-stream at a moment the test chooses.
#[cfg(unix)]
fn fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_during_decryption_leaves_no_plaintext_behind() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let input = dir.path().join("scan.bin");
    std::fs::write(&input, vec![0x42u8; 3_000_000]).unwrap();
    let file = dir.path().join("scan.medcrypt");
    doc.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            input.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    let bytes = std::fs::read(&file).unwrap();
    let pipe = dir.path().join("pipe.medcrypt");
    fifo(&pipe);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&pat.store)
        .args([
            "attach",
            "decrypt",
            pipe.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
        ])
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", NOV)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&pipe).unwrap();
    // The reader may stop early; what matters is what it leaves behind.
    let _ = writer.write_all(&bytes[..bytes.len() / 2]);
    wait_for("a temporary output", || !common::files_in(&out).is_empty());
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    drop(writer);
    assert!(!status.success());
    assert!(
        common::files_in(&out).is_empty(),
        "left behind: {:?}",
        common::files_in(&out)
    );
}

#[cfg(unix)]
#[test]
fn kill_9_during_encryption_is_cleaned_up_by_the_next_command_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, _pat, _) = paired(dir.path());
    let input = dir.path().join("video.mp4");
    let f = std::fs::File::create(&input).unwrap();
    f.set_len(3_000_000_000).unwrap(); // sparse: fast to read
    drop(f);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args([
            "attach",
            "encrypt",
            "--to",
            "alice",
            input.to_str().unwrap(),
            // A relative output, as people type it in the folder they are in.
            "-o",
            "video.medcrypt",
        ])
        .current_dir(&out)
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", NOV)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a temporary output", || !common::files_in(&out).is_empty());
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("video.medcrypt").exists());
    // The daily shredder, run by a timer from another directory and
    // without the passphrase, removes it.
    let shred = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["keys", "shred"])
        .current_dir(dir.path())
        .env("MEDCRYPT_NOW", NOV)
        .env_remove("MEDCRYPT_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(shred.status.success());
    assert!(
        common::files_in(&out).is_empty(),
        "stale: {:?}",
        common::files_in(&out)
    );
    let audit = doc.ok(&["audit", "show", "--action", "attach_encrypt"], "", NOV);
    assert!(
        audit.trim().is_empty(),
        "audited an output that never appeared: {audit}"
    );
}

#[test]
fn a_cut_off_small_file_reads_as_truncated_and_a_second_decrypt_as_already_received() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let input = dir.path().join("note.txt");
    std::fs::write(&input, b"small").unwrap();
    let file = dir.path().join("note.medcrypt");
    doc.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            input.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.medcrypt");
    std::fs::write(&cut, &bytes[..bytes.len() - 300]).unwrap();
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            cut.to_str().unwrap(),
            "-o",
            dir.path().join("never.txt").to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
    assert!(!dir.path().join("never.txt").exists());
    let out = dir.path().join("first.txt");
    pat.ok(
        &[
            "attach",
            "decrypt",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    let out2 = dir.path().join("second.txt");
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            file.to_str().unwrap(),
            "-o",
            out2.to_str().unwrap(),
        ],
        "",
        "2026-11-22T09:00:00Z",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("already received on 2026-11-20"),
        "{}",
        run.stderr
    );
}

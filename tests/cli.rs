//! The `medcrypt` binary as two people use it: a physician store and a
//! patient store in temporary directories, paired through a real QR PNG.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{NOV, PASSPHRASE, Party, paired};
use medcrypt::codes::parse_pairing_code;

#[test]
fn pair_through_png_and_exchange_messages_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());

    let note = "Your potassium is 4.1 mmol/L. Keep the current dose.";
    let wire = doc.encrypt("alice", note, NOV);
    assert!(wire.starts_with("MEDCRYPT:v2:") && !wire.contains(char::is_whitespace));
    assert!(!wire.contains("alice") && !wire.contains("potassium"));
    assert_eq!(pat.decrypt(&wire, NOV).stdout, format!("{note}\n"));

    let reply = "Thank you, doctor.\nShall I repeat the test in May?";
    let wire = pat
        .ok(&["encrypt", "--to", "dr-silva"], reply, NOV)
        .trim()
        .to_owned();
    // Found by key hint without --from, and with --from too.
    let run = doc.run_at(&["decrypt", "--from", "alice"], &wire, NOV);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, format!("{reply}\n").as_str()),
        "{}",
        run.stderr
    );

    // Whitespace a messenger inserts is tolerated.
    let wire = doc.encrypt("alice", "second note", NOV);
    let wrapped = format!("{}\n  {}\n", &wire[..50], &wire[50..]);
    assert_eq!(pat.decrypt(&wrapped, NOV).stdout, "second note\n");

    let listed = doc.ok(&["pair", "list"], "", NOV);
    // The physician's store lists alice as a patient.
    let row = listed.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(row.contains("patient"), "{listed}");
}

#[test]
fn tampered_replayed_reflected_and_wrong_store_messages_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let wire = doc.encrypt("alice", "HbA1c 6.1%", NOV);

    // Damaged in transit: one character changed.
    let mut damaged = wire.clone().into_bytes();
    let i = damaged.len() - 10;
    damaged[i] = if damaged[i] == b'A' { b'B' } else { b'A' };
    let run = pat.decrypt(&String::from_utf8(damaged).unwrap(), NOV);
    assert_eq!(run.code, 7);
    assert!(
        run.stderr.contains("damaged in transit") && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());

    // Not a MedCrypt message at all.
    let run = pat.decrypt("see you tomorrow", NOV);
    assert_eq!(run.code, 7);
    assert!(run.stderr.contains("not a valid MedCrypt message"));

    // Reflected: the physician's own message fed back.
    let run = doc.decrypt(&wire, NOV);
    assert_eq!(run.code, 6);
    assert!(run.stderr.contains("reflected"));

    // Accepted once, then shown again from the history, marked as such.
    assert_eq!(pat.decrypt(&wire, NOV).code, 0);
    let run = pat.decrypt(&wire, NOV);
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("already read"), "{}", run.stderr);

    // Each message gets a new sequence number, so re-sending works.
    let again = doc.encrypt("alice", "HbA1c 6.1%", NOV);
    assert_ne!(again, wire);
    assert_eq!(pat.decrypt(&again, NOV).code, 0);

    // A third store, paired with someone else, cannot read it.
    let other = Party::new(dir.path(), "other");
    other.ok(&["init"], "", NOV);
    let run = other.decrypt(&again, NOV);
    assert_eq!(run.code, 8);
    assert!(
        run.stderr.contains("not encrypted for this pairing"),
        "{}",
        run.stderr
    );

    // Wrong --from.
    let run = pat.run_at(&["decrypt", "--from", "nobody"], &again, NOV);
    assert_eq!(run.code, 8);
    assert!(run.stderr.contains("no pairing named \"nobody\""));
}

#[test]
fn tampered_ciphertext_with_valid_checksum_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let wire = doc.encrypt("alice", "dose: 5 mg", NOV);
    let forged = common::forge(&wire, |content| content[30] ^= 0x01);
    let run = pat.decrypt(&forged, NOV);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("authentication failed"));
    assert!(run.stdout.is_empty());
}

#[test]
fn month_boundary_grace_then_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let november = doc.encrypt("alice", "November result", "2026-11-28T12:00:00Z");

    // 5 December: still inside the 7-day grace period.
    let run = pat.decrypt(&november, "2026-12-05T09:00:00Z");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "November result\n"),
        "{}",
        run.stderr
    );
    let keys = pat.ok(&["keys", "list"], "", "2026-12-05T09:00:00Z");
    assert!(
        keys.contains("2026-11") && keys.contains("2026-12-08T00:00:00Z"),
        "{keys}"
    );
    assert!(keys.contains("2026-12  current"), "{keys}");

    // December messages work both ways; both sides ratcheted.
    let december = doc.encrypt("alice", "December note", "2026-12-05T09:00:00Z");
    assert_eq!(
        pat.decrypt(&december, "2026-12-05T09:01:00Z").stdout,
        "December note\n"
    );

    // 9 December: the November key is destroyed by the next command.
    let later = doc.encrypt("alice", "another November copy", "2026-11-29T12:00:00Z");
    let keys = pat.ok(&["keys", "list"], "", "2026-12-09T09:00:00Z");
    assert!(
        keys.contains("2026-11  destroyed on 2026-12-09T09:00:00Z"),
        "{keys}"
    );
    let run = pat.decrypt(&later, "2026-12-09T09:00:00Z");
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("expired: the key for 2026-11 was destroyed on 2026-12-09T09:00:00Z"),
        "{}",
        run.stderr
    );
    // Even with the clock set back, the destroyed key cannot come back.
    let run = pat.decrypt(&later, "2026-12-05T09:00:00Z");
    assert_ne!(run.code, 0);
    assert!(run.stdout.is_empty());
}

#[test]
fn legacy_v1_both_ways_and_against_the_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "physician");
    doc.ok(&["init"], "", NOV);
    let secret = dir.path().join("v1-secret.txt");
    std::fs::write(&secret, "correct horse battery staple\n").unwrap();
    doc.ok(
        &[
            "pair",
            "import-legacy",
            "--alias",
            "bob",
            "--secret-file",
            secret.to_str().unwrap(),
            "--patient-id",
            "P-1042",
        ],
        "",
        NOV,
    );

    // A message from the deployed Python client (wire-spec/vectors/v1.json).
    let vectors: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("wire-spec/vectors/v1.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let case = &vectors["cases"][0];
    let run = doc.decrypt(
        case["wire"].as_str().unwrap(),
        case["now"].as_str().unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim_end(), case["plaintext"].as_str().unwrap());

    // Writing v1 needs the explicit flag, and warns.
    let run = doc.run_at(&["encrypt", "--to", "bob", "hello"], "", NOV);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("legacy v1 pairing"));
    let run = doc.run_at(
        &[
            "encrypt",
            "--to",
            "bob",
            "--legacy-v1",
            "Fasting glucose 5.4",
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("shows the patient id"));
    let wire = run.stdout.trim();
    assert!(wire.starts_with("[MEDCRYPT:v1:"));

    // A second store holding the same legacy secret (the patient) reads it.
    let pat = Party::new(dir.path(), "patient");
    pat.ok(&["init"], "", NOV);
    pat.ok(
        &[
            "pair",
            "import-legacy",
            "--alias",
            "clinic",
            "--secret-file",
            secret.to_str().unwrap(),
            "--patient-id",
            "P-1042",
        ],
        "",
        NOV,
    );
    let run = pat.decrypt(wire, NOV);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "Fasting glucose 5.4\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn typed_code_pairs_and_a_typo_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, _, code) = paired(dir.path());
    let other = Party::new(dir.path(), "patient2");
    other.ok(&["init"], "", NOV);

    // One mistyped character: rejected by the checksum, nothing stored.
    let mut typo: Vec<char> = code.chars().collect();
    typo[5] = if typo[5] == '7' { '8' } else { '7' };
    let typo: String = typo.into_iter().collect();
    let run = other.run_at(
        &["pair", "accept", "--code", &typo, "--physician", "dr"],
        "",
        NOV,
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("checksum"), "{}", run.stderr);
    assert!(other.ok(&["pair", "list"], "", NOV).contains("No pairings"));

    // Without --physician the typed code has no name to use.
    let run = other.run_at(&["pair", "accept", "--code", &code], "", NOV);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--physician"));

    // The correct code pairs.
    other.ok(
        &[
            "pair",
            "accept",
            "--code",
            &code.to_lowercase(),
            "--physician",
            "dr",
        ],
        "",
        NOV,
    );
    let wire = doc.encrypt("alice", "via typed code", NOV);
    assert_eq!(other.decrypt(&wire, NOV).stdout, "via typed code\n");
}

#[test]
fn wrong_passphrase_changes_nothing_and_recovery_works() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "physician");
    let init = doc.ok(&["init"], "", NOV);
    let recovery = init
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 39 && l.matches('-').count() == 7)
        .unwrap()
        .to_owned();
    doc.ok(&["pair", "new", "--patient", "alice"], "", NOV);
    let pairs_before = doc.ok(&["pair", "list"], "", NOV);
    let keys_before = doc.ok(&["keys", "list"], "", NOV);

    let run = doc.run_with(
        &["pair", "new", "--patient", "bob"],
        "",
        NOV,
        "not the passphrase",
    );
    assert_eq!(run.code, 9);
    assert!(run.stderr.contains("wrong passphrase"));
    assert!(!run.stderr.contains(PASSPHRASE) && !run.stderr.contains("not the passphrase"));
    // Nothing changed but the note of the failed unlock (issue 4), which
    // enters the audit log at the next successful unlock.
    assert_eq!(doc.ok(&["pair", "list"], "", NOV), pairs_before);
    assert_eq!(doc.ok(&["keys", "list"], "", NOV), keys_before);
    let failures = doc.ok(&["audit", "show", "--action", "unlock_failed"], "", NOV);
    assert_eq!(failures.lines().count(), 1, "{failures}");
    assert!(failures.contains("method=passphrase"), "{failures}");

    // A wrong recovery code is rejected; the right one sets a new passphrase.
    let new_pass = dir.path().join("new-pass");
    std::fs::write(&new_pass, "a brand new passphrase\n").unwrap();
    let run = doc.run_at(
        &[
            "recover",
            "--recovery-code",
            "0000-0000-0000-0000-0000-0000-0000-0000",
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_ne!(run.code, 0);
    let run = doc.run_at(
        &[
            "recover",
            "--recovery-code",
            &recovery,
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        doc.run_at(&["pair", "list"], "", NOV).code,
        9,
        "old passphrase still works"
    );
    let listed = doc.run_with(&["pair", "list"], "", NOV, "a brand new passphrase");
    assert!(listed.stdout.contains("alice"));

    // passphrase change
    let newer = dir.path().join("newer-pass");
    std::fs::write(&newer, "yet another passphrase").unwrap();
    let run = doc.run_with(
        &[
            "passphrase",
            "change",
            "--new-passphrase-file",
            newer.to_str().unwrap(),
        ],
        "",
        NOV,
        "a brand new passphrase",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        doc.run_with(&["pair", "list"], "", NOV, "yet another passphrase")
            .code,
        0
    );
}

#[test]
fn pair_remove_destroys_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let wire = doc.encrypt("alice", "before removal", NOV);
    pat.ok(&["pair", "remove", "dr-silva"], "", NOV);
    let run = pat.decrypt(&wire, NOV);
    assert_eq!(run.code, 8);
    let run = pat.run_at(&["pair", "remove", "dr-silva"], "", NOV);
    assert_eq!(run.code, 8);
}

#[test]
fn missing_store_and_usage_errors_have_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = Party::new(dir.path(), "none");
    let run = nobody.run_at(&["pair", "list"], "", NOV);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no MedCrypt store") && run.stderr.contains("medcrypt init"));
    let run = nobody.run_at(&["encrypt"], "", NOV);
    assert_eq!(run.code, 2);
    let run = nobody.run_at(&["pair", "list"], "", "yesterday");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("MEDCRYPT_NOW"));
    let doc = Party::new(dir.path(), "doc");
    doc.ok(&["init"], "", NOV);
    let run = doc.run_at(&["init"], "", NOV);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("already exists"));
    let run = doc.run_at(&["pair", "new", "--patient", "x"], "", NOV);
    assert_eq!(run.code, 0);
    let run = doc.run_at(&["pair", "new", "--patient", "x"], "", NOV);
    assert!(run.stderr.contains("already exists"));
}

#[cfg(unix)]
#[test]
fn store_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "nested/deeper");
    doc.ok(&["init"], "", NOV);
    let mode = std::fs::metadata(&doc.store).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // QR files hold the pairing secret: private too, and complete.
    let png = dir.path().join("qr.png");
    let svg = dir.path().join("qr.svg");
    doc.ok(
        &[
            "pair",
            "new",
            "--patient",
            "p",
            "--qr-png",
            png.to_str().unwrap(),
            "--qr-svg",
            svg.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    for path in [&png, &svg] {
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let uri = medcrypt::qr::decode_image(&std::fs::read(&png).unwrap()).unwrap();
    assert!(uri.starts_with("medcrypt://pair/v2?"));

    // An unwritable QR path: the pairing is not created, no file is left.
    let bad = dir.path().join("no-such-dir").join("qr.png");
    let run = doc.run_at(
        &[
            "pair",
            "new",
            "--patient",
            "q",
            "--qr-png",
            bad.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("the pairing was not created"),
        "{}",
        run.stderr
    );
    assert!(!doc.ok(&["pair", "list"], "", NOV).contains("q "));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_or_plaintext_reaches_the_store_files() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, code) = paired(dir.path());
    let (secret, start) = parse_pairing_code(&code).unwrap();
    let texts = [
        "Diagnosis: early-stage melanoma",
        "Biopsy booked for Tuesday",
    ];
    let wire = doc.encrypt("alice", texts[0], NOV);
    assert_eq!(pat.decrypt(&wire, NOV).code, 0);
    let wire = pat.encrypt("dr-silva", texts[1], "2026-12-03T10:00:00Z");
    assert_eq!(doc.decrypt(&wire, "2026-12-03T10:00:00Z").code, 0);
    doc.ok(&["keys", "shred"], "", "2026-12-09T00:00:00Z");

    let first = secret.first_epoch_key(start);
    let second = first.next().unwrap();
    for party in [&doc, &pat] {
        let master = common::master_key(&party.store, PASSPHRASE);
        let mut needles: Vec<(&str, Vec<u8>)> = vec![
            ("pairing secret", secret.expose_bytes().to_vec()),
            ("first epoch key", first.expose_bytes().to_vec()),
            ("second epoch key", second.expose_bytes().to_vec()),
            ("master key", master.to_vec()),
            ("passphrase", PASSPHRASE.as_bytes().to_vec()),
        ];
        for text in texts {
            needles.push(("plaintext", text.as_bytes().to_vec()));
        }
        let mut files = 0;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = format!("{}{suffix}", party.store.display());
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            files += 1;
            for (what, needle) in &needles {
                assert!(!contains(&bytes, needle), "{what} found in {path}");
                assert!(
                    !contains(&bytes, hex::encode(needle).as_bytes()),
                    "{what} (hex) found in {path}"
                );
            }
        }
        assert!(files >= 1);
    }
}

#[test]
fn without_a_passphrase_or_terminal_the_command_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "doc");
    doc.ok(&["init"], "", NOV);
    // setsid detaches from the controlling terminal, as in CI or a cron job.
    let output = Command::new("setsid")
        .arg(env!("CARGO_BIN_EXE_medcrypt"))
        .args(["pair", "list", "--store"])
        .arg(&doc.store)
        .env_remove("MEDCRYPT_PASSPHRASE")
        .stdin(Stdio::null())
        .output();
    let Ok(output) = output else { return }; // no setsid on this system
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("MEDCRYPT_PASSPHRASE"), "{stderr}");
}

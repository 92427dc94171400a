//! The audit log as an auditor would test it: a realistic run of commands,
//! then the SQLite file edited directly, each kind of tampering detected and
//! named by `medcrypt audit verify`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{PASSPHRASE, Party, Run};
use rusqlite::{Connection, params};

const DAY1: &str = "2026-11-20T09:00:00Z";
const DAY2: &str = "2026-11-21T09:00:00Z";
const DAY4: &str = "2026-11-23T09:00:00Z";
const SECRETS: [&str; 3] = [
    "Diagnosis: early-stage melanoma",
    "Biopsy booked for Tuesday",
    "Thank you, doctor",
];

fn run(store: &Path, args: &[&str], stdin: &str, now: &str, passphrase: &str) -> Run {
    Party {
        store: store.to_path_buf(),
    }
    .run_with(args, stdin, now, passphrase)
}

fn ok(store: &Path, args: &[&str], stdin: &str, now: &str) -> String {
    let r = run(store, args, stdin, now, PASSPHRASE);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

/// The line after the heading that starts with `heading`.
fn after(text: &str, heading: &str) -> String {
    text.lines()
        .skip_while(|l| !l.starts_with(heading))
        .find(|l| l.starts_with("    "))
        .unwrap()
        .trim()
        .to_owned()
}

/// A physician and a patient who pair, talk over four days, make mistakes
/// and cross a key destruction. Returns the physician's store, its
/// verification code, and the patient's store and code.
fn realistic_run(dir: &Path) -> (PathBuf, String, PathBuf, String) {
    let doc = dir.join("doc.sqlite");
    let pat = dir.join("pat.sqlite");
    let doc_code = after(
        &ok(&doc, &["init", "--name", "Dr. Silva"], "", DAY1),
        "Audit verification code",
    );
    let pat_code = after(&ok(&pat, &["init"], "", DAY1), "Audit verification code");
    ok(
        &doc,
        &["config", "set", "telegram-bot", "clinic_bot"],
        "",
        DAY1,
    );
    common::pair_through_png(
        dir,
        &Party { store: doc.clone() },
        &Party { store: pat.clone() },
        "silva",
        DAY1,
    );

    let w1 = ok(&doc, &["encrypt", "--to", "alice", SECRETS[0]], "", DAY1);
    ok(&pat, &["decrypt"], &w1, DAY1);
    let again = run(&pat, &["decrypt"], &w1, DAY1, PASSPHRASE); // read again, from history
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("already read"), "{}", again.stderr);
    assert_eq!(run(&doc, &["decrypt"], &w1, DAY1, PASSPHRASE).code, 6); // reflected
    assert_eq!(
        run(&pat, &["decrypt"], "MEDCRYPT:v2:AAAA", DAY1, PASSPHRASE).code,
        7
    ); // damaged
    assert_eq!(
        run(&doc, &["pair", "list"], "", DAY2, "wrong passphrase!").code,
        9
    );

    let w2 = ok(&doc, &["encrypt", "--to", "alice", SECRETS[1]], "", DAY2);
    ok(&pat, &["decrypt"], &w2, DAY2);
    let w3 = ok(&pat, &["encrypt", "--to", "silva", SECRETS[2]], "", DAY4);
    ok(&doc, &["decrypt"], &w3, DAY4);
    let new_pass = dir.join("new-pass");
    std::fs::write(&new_pass, PASSPHRASE).unwrap();
    ok(
        &doc,
        &[
            "passphrase",
            "change",
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
        ],
        "",
        DAY4,
    );
    // A month later: keys advance and November's are destroyed.
    ok(&doc, &["keys", "list"], "", "2026-12-09T09:00:00Z");
    (doc, doc_code, pat, pat_code)
}

#[test]
fn realistic_run_is_logged_without_any_message_text() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, doc_code, pat, pat_code) = realistic_run(dir.path());
    let now = "2026-12-09T10:00:00Z";

    let shown = ok(&doc, &["audit", "show", "--json"], "", now);
    let actions: Vec<String> = shown
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for expected in [
        "init",
        "config_set",
        "pair_new",
        "encrypt",
        "decrypt",
        "decrypt_failed",
        "unlock_failed",
        "passphrase_change",
        "epoch_advance",
        "key_shred",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "no {expected} in {actions:?}"
        );
    }
    let reflected = ok(
        &doc,
        &["audit", "show", "--action", "decrypt_failed"],
        "",
        now,
    );
    assert!(reflected.contains("kind=reflected"), "{reflected}");
    let patient_side = ok(&pat, &["audit", "show"], "", now);
    for expected in ["pair_accept", "decrypt_again", "kind=damaged"] {
        assert!(
            patient_side.contains(expected),
            "no {expected} in {patient_side}"
        );
    }
    let since = ok(&doc, &["audit", "show", "--since", "2026-12-01"], "", now);
    assert!(
        !since.contains("pair_new") && since.contains("key_shred"),
        "{since}"
    );

    // No message text, in the display, the export, or the raw file.
    let export = ok(&doc, &["audit", "export", "--format", "jsonl"], "", now);
    assert!(export.lines().count() >= actions.len());
    let raw = std::fs::read(&doc).unwrap();
    for secret in SECRETS {
        for text in [&shown, &export, &patient_side] {
            assert!(
                !text.contains(secret),
                "message text {secret:?} in the audit log"
            );
        }
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    // Both logs verify from their codes, and name what they checked.
    let verified = ok(&doc, &["audit", "verify", "--code", &doc_code], "", now);
    assert!(
        verified.starts_with("OK:") && verified.contains("no entry of an earlier day was altered"),
        "{verified}"
    );
    assert!(verified.contains("day seals"), "{verified}");
    let verified = ok(&pat, &["audit", "verify", "--code", &pat_code], "", now);
    assert!(verified.starts_with("OK:"), "{verified}");
    let local = ok(&doc, &["audit", "verify"], "", now);
    assert!(local.contains("give --code"), "{local}");
    // The other store's code proves nothing here, and is not tampering:
    // the store id in the code says whose it is.
    let r = run(
        &doc,
        &["audit", "verify", "--code", &pat_code],
        "",
        now,
        PASSPHRASE,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("belongs to another store"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("tamper"), "{}", r.stderr);
}

/// A copy of the physician's store to tamper with.
fn tampered_copy(dir: &Path, name: &str, edit: impl FnOnce(&Connection)) -> PathBuf {
    let (doc, _, _, _) = (dir.join("doc.sqlite"), (), (), ());
    let copy = dir.join(format!("{name}.sqlite"));
    std::fs::copy(&doc, &copy).unwrap();
    let conn = Connection::open(&copy).unwrap();
    edit(&conn);
    drop(conn);
    copy
}

fn seqs_of_kind(conn: &Connection, kind: i64) -> Vec<i64> {
    let mut stmt = conn
        .prepare("SELECT seq FROM audit_log WHERE kind = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([kind], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn verify_fails(store: &Path, code: &str, checkpoint: Option<&str>) -> String {
    let mut args = vec!["audit", "verify", "--code", code];
    if let Some(c) = checkpoint {
        args.extend(["--checkpoint", c]);
    }
    let r = run(store, &args, "", "2026-12-09T10:00:00Z", PASSPHRASE);
    assert_eq!(
        r.code, 10,
        "tampering not detected: {}{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stderr.contains("audit log verification failed"),
        "{}",
        r.stderr
    );
    r.stderr
}

#[test]
fn every_kind_of_tampering_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, code, _, _) = realistic_run(dir.path());
    let checkpoint = ok(&doc, &["audit", "checkpoint"], "", "2026-12-09T09:30:00Z")
        .trim()
        .to_owned();
    assert!(checkpoint.starts_with("MEDCRYPT-AUDIT:v2:"));
    ok(
        &doc,
        &[
            "audit",
            "verify",
            "--code",
            &code,
            "--checkpoint",
            &checkpoint,
        ],
        "",
        "2026-12-09T09:40:00Z",
    );

    // One byte of one entry changed.
    let store = tampered_copy(dir.path(), "modified", |c| {
        c.execute("UPDATE audit_log SET body = substr(body, 1, 20) || X'00' || substr(body, 22) WHERE seq = 5", [])
            .unwrap();
    });
    assert!(verify_fails(&store, &code, None).contains("entry #5 was modified"));

    // An entry deleted.
    let store = tampered_copy(dir.path(), "deleted", |c| {
        c.execute("DELETE FROM audit_log WHERE seq = 6", [])
            .unwrap();
    });
    assert!(verify_fails(&store, &code, None).contains("entries #6 to #6 are missing"));

    // Two entries of the same day swapped.
    let (a, b) = {
        let conn = Connection::open(&doc).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT x.seq FROM audit_log x JOIN audit_log y ON y.seq = x.seq + 1
                 WHERE x.kind = 1 AND y.kind = 1 AND x.day = y.day AND x.seq > 2
                 ORDER BY x.seq LIMIT 1",
            )
            .unwrap();
        let a: i64 = stmt.query_row([], |r| r.get(0)).unwrap();
        (a, a + 1)
    };
    let store = tampered_copy(dir.path(), "swapped", |c| {
        c.execute_batch(&format!(
            "UPDATE audit_log SET seq = -{a} WHERE seq = {a};
             UPDATE audit_log SET seq = {a} WHERE seq = {b};
             UPDATE audit_log SET seq = {b} WHERE seq = -{a};"
        ))
        .unwrap();
    });
    let why = verify_fails(&store, &code, None);
    assert!(
        why.contains(&format!(
            "entry #{a} was reordered: it was sealed as entry #{b}"
        )),
        "{why}"
    );

    // A forged entry inserted (later entries renumbered to make room).
    let store = tampered_copy(dir.path(), "inserted", |c| {
        c.execute_batch(
            "UPDATE audit_log SET seq = -seq - 1 WHERE seq >= 4;
             UPDATE audit_log SET seq = -seq WHERE seq < 0;",
        )
        .unwrap();
        let (day, body): (i64, Vec<u8>) = c
            .query_row("SELECT day, body FROM audit_log WHERE seq = 3", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        c.execute(
            "INSERT INTO audit_log (seq, day, kind, body, mac) VALUES (4, ?1, 1, ?2, ?3)",
            params![day, body, vec![0x42u8; 32]],
        )
        .unwrap();
    });
    assert!(verify_fails(&store, &code, None).contains("entry #4 was inserted"));

    // The tail cut off: the store's own head shows it.
    let store = tampered_copy(dir.path(), "cut", |c| {
        c.execute("DELETE FROM audit_log WHERE seq > 10", [])
            .unwrap();
    });
    assert!(verify_fails(&store, &code, None).contains("entries were cut"));

    // The tail cut off and the head rewritten to match: the checkpoint shows it.
    let store = tampered_copy(dir.path(), "cut-head", |c| {
        let mac: Vec<u8> = c
            .query_row("SELECT mac FROM audit_log WHERE seq = 10", [], |r| r.get(0))
            .unwrap();
        c.execute("DELETE FROM audit_log WHERE seq > 10", [])
            .unwrap();
        c.execute("UPDATE audit_state SET last_seq = 10, last_mac = ?1", [mac])
            .unwrap();
    });
    assert!(verify_fails(&store, &code, Some(&checkpoint)).contains("truncated"));

    // The tail replaced by entries sealed under the current key: a thief
    // with the machine and passphrase cuts back into day one and lets the
    // program write a new story. The missing day seal gives it away.
    let store = tampered_copy(dir.path(), "rewritten", |c| {
        let first_seal = seqs_of_kind(c, 2)[0];
        let keep = first_seal - 1;
        let mac: Vec<u8> = c
            .query_row("SELECT mac FROM audit_log WHERE seq = ?1", [keep], |r| {
                r.get(0)
            })
            .unwrap();
        c.execute("DELETE FROM audit_log WHERE seq > ?1", [keep])
            .unwrap();
        c.execute(
            "UPDATE audit_state SET last_seq = ?1, last_mac = ?2",
            params![keep, mac],
        )
        .unwrap();
    });
    // The program refuses to write on top of it (it cannot seal a new
    // story over the cut), and verification names the cut.
    let refused = run(
        &store,
        &["config", "set", "name", "Dr. Silva"],
        "",
        "2026-12-09T09:51:00Z",
        PASSPHRASE,
    );
    assert_eq!(refused.code, 10, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("audit repair"),
        "{}",
        refused.stderr
    );
    let fault = verify_fails(&store, &code, None);
    assert!(fault.contains("were cut"), "{fault}");
}

/// A command that must be refused because the log was altered, pointing to
/// the repair.
fn refused_as_altered(store: &Path, now: &str) {
    let r = run(
        store,
        &["config", "set", "name", "Dr. X"],
        "",
        now,
        PASSPHRASE,
    );
    assert_eq!(r.code, 10, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not end where this store sealed it")
            && r.stderr.contains("audit repair"),
        "{}",
        r.stderr
    );
}

#[test]
fn insider_attacks_on_the_end_of_the_log_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, code, _, _) = realistic_run(dir.path());
    let later = "2026-12-09T10:00:00Z";

    // Write access only: the last records deleted and the head set to match.
    // This passed `audit verify --code` before the head was bound to the key.
    let store = tampered_copy(dir.path(), "cut-and-match", |c| {
        let last: i64 = c
            .query_row("SELECT max(seq) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        let keep = last - 2;
        let mac: Vec<u8> = c
            .query_row("SELECT mac FROM audit_log WHERE seq = ?1", [keep], |r| {
                r.get(0)
            })
            .unwrap();
        c.execute("DELETE FROM audit_log WHERE seq > ?1", [keep])
            .unwrap();
        c.execute(
            "UPDATE audit_state SET last_seq = ?1, last_mac = ?2",
            params![keep, mac],
        )
        .unwrap();
    });
    let why = verify_fails(&store, &code, None);
    assert!(
        why.contains("entries after it were cut and the store's record of its end set back"),
        "{why}"
    );
    let local = run(&store, &["audit", "verify"], "", later, PASSPHRASE);
    assert_eq!(local.code, 10, "{}", local.stdout);
    refused_as_altered(&store, later);

    // The whole log deleted, the head zeroed: never "OK: 0 records".
    let store = tampered_copy(dir.path(), "emptied", |c| {
        c.execute("DELETE FROM audit_log", []).unwrap();
        c.execute(
            "UPDATE audit_state SET last_seq = 0, last_mac = zeroblob(32)",
            [],
        )
        .unwrap();
    });
    let why = verify_fails(&store, &code, None);
    assert!(why.contains("the audit log is empty"), "{why}");

    // A checkpoint line with one digit mistyped is a typo, not tampering.
    let checkpoint = ok(&doc, &["audit", "checkpoint"], "", later)
        .trim()
        .to_owned();
    let digit = checkpoint.rfind(':').unwrap() - 25;
    let mut typo = checkpoint.clone();
    let swapped = if &typo[digit..=digit] == "0" {
        "1"
    } else {
        "0"
    };
    typo.replace_range(digit..=digit, swapped);
    let r = run(
        &doc,
        &["audit", "verify", "--code", &code, "--checkpoint", &typo],
        "",
        later,
        PASSPHRASE,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("mistyped"), "{}", r.stderr);
    assert!(!r.stderr.contains("rewritten"), "{}", r.stderr);
}

#[test]
fn a_rollback_needs_the_checkpoint_and_verify_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, code, _, _) = realistic_run(dir.path());
    let old = dir.path().join("old.sqlite");
    ok(
        &doc,
        &["backup", old.to_str().unwrap()],
        "",
        "2026-12-09T10:00:00Z",
    );
    // What the insider wants gone, and the physician's daily checkpoint after it.
    ok(
        &doc,
        &["pair", "new", "--patient", "zed"],
        "",
        "2026-12-09T11:00:00Z",
    );
    let checkpoint = ok(&doc, &["audit", "checkpoint"], "", "2026-12-09T12:00:00Z")
        .trim()
        .to_owned();
    // The log and its state rolled back to the copy's, then days of use.
    let conn = Connection::open(&doc).unwrap();
    conn.execute_batch(&format!(
        "ATTACH DATABASE '{}' AS b;
         DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM b.audit_log;
         DELETE FROM audit_state; INSERT INTO audit_state SELECT * FROM b.audit_state;
         DETACH DATABASE b;",
        old.display()
    ))
    .unwrap();
    drop(conn);
    ok(&doc, &["pair", "list"], "", "2026-12-11T09:00:00Z");
    ok(&doc, &["pair", "list"], "", "2026-12-12T09:00:00Z");
    let action = ok(
        &doc,
        &["audit", "show", "--action", "pair_new"],
        "",
        "2026-12-12T09:01:00Z",
    );
    assert!(!action.contains("zed"), "{action}");
    // Without an outside witness this cannot be seen, and verify says so.
    let verified = ok(
        &doc,
        &["audit", "verify", "--code", &code],
        "",
        "2026-12-12T09:02:00Z",
    );
    assert!(
        verified.contains("rolled back to an older copy"),
        "{verified}"
    );
    // The checkpoint kept in the notice chat shows it.
    let why = run(
        &doc,
        &[
            "audit",
            "verify",
            "--code",
            &code,
            "--checkpoint",
            &checkpoint,
        ],
        "",
        "2026-12-12T09:03:00Z",
        PASSPHRASE,
    );
    assert_eq!(why.code, 10, "{}", why.stdout);
    assert!(
        why.stderr.contains("differs from the checkpoint"),
        "{}",
        why.stderr
    );
}

#[test]
fn garbage_past_the_head_is_diagnosed_and_repaired_keeping_the_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let (_doc, code, _, _) = realistic_run(dir.path());
    let now = "2026-12-09T10:00:00Z";
    let store = tampered_copy(dir.path(), "garbage", |c| {
        c.execute(
            "INSERT INTO audit_log (seq, day, kind, body, mac)
             SELECT max(seq) + 1, max(day), 1, X'DEADBEEF', zeroblob(32) FROM audit_log",
            [],
        )
        .unwrap();
    });
    // Every audited operation fails closed, saying what to do.
    refused_as_altered(&store, now);
    let why = verify_fails(&store, &code, None);
    assert!(why.contains("lie past the end the store sealed"), "{why}");
    assert!(why.contains("audit repair"), "{why}");
    // The repair sets the record aside and records itself.
    let repaired = ok(&store, &["audit", "repair"], "", now);
    assert!(repaired.contains("Set aside 1 record"), "{repaired}");
    ok(&store, &["config", "set", "name", "Dr. Silva"], "", now);
    let verified = ok(&store, &["audit", "verify", "--code", &code], "", now);
    assert!(verified.starts_with("OK:"), "{verified}");
    assert!(verified.contains("records a repair"), "{verified}");
    let shown = ok(
        &store,
        &["audit", "show", "--action", "audit_repair"],
        "",
        now,
    );
    assert!(
        shown.contains("set_aside=#") && shown.contains("set_aside_count=1"),
        "{shown}"
    );
    let conn = Connection::open(&store).unwrap();
    let kept: Vec<u8> = conn
        .query_row("SELECT body FROM audit_quarantine", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, vec![0xDE, 0xAD, 0xBE, 0xEF], "the evidence is kept");
    // Nothing more to repair.
    let again = ok(&store, &["audit", "repair"], "", now);
    assert!(again.contains("Nothing to repair"), "{again}");
}

#[test]
fn a_cut_across_days_is_repaired_and_named_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_doc, code, _, _) = realistic_run(dir.path());
    let now = "2026-12-09T10:00:00Z";
    let store = tampered_copy(dir.path(), "cut-days", |c| {
        let first_seal = seqs_of_kind(c, 2)[0];
        c.execute("DELETE FROM audit_log WHERE seq >= ?1", [first_seal])
            .unwrap();
    });
    refused_as_altered(&store, now);
    let repaired = ok(&store, &["audit", "repair"], "", now);
    assert!(repaired.contains("are gone"), "{repaired}");
    ok(&store, &["pair", "list"], "", "2026-12-10T10:00:00Z");
    let verified = ok(
        &store,
        &["audit", "verify", "--code", &code],
        "",
        "2026-12-10T10:01:00Z",
    );
    assert!(verified.contains("records a repair"), "{verified}");
}

#[test]
fn an_export_is_verified_with_the_code_alone_and_tampering_in_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, code, _, _) = realistic_run(dir.path());
    let now = "2026-12-09T10:00:00Z";
    let file = dir.path().join("audit-export.json");
    ok(
        &doc,
        &["audit", "export", "-o", file.to_str().unwrap()],
        "",
        now,
    );
    let checkpoint = ok(&doc, &["audit", "checkpoint"], "", now)
        .trim()
        .to_owned();
    // The auditor has the file, the code and the checkpoint: no store.
    let nowhere = dir.path().join("no-store.sqlite");
    let verify = |file: &Path, code: &str, cp: Option<&str>| {
        let mut args = vec![
            "audit",
            "verify",
            "--export",
            file.to_str().unwrap(),
            "--code",
            code,
        ];
        if let Some(cp) = cp {
            args.extend(["--checkpoint", cp]);
        }
        run(&nowhere, &args, "", now, "")
    };
    let good = verify(&file, &code, None);
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(good.stdout.starts_with("OK: "), "{}", good.stdout);
    assert!(!nowhere.exists(), "verifying an export made a store");
    // The checkpoint was taken after the export: the export does not reach it.
    let behind = verify(&file, &code, Some(&checkpoint));
    assert_eq!(behind.code, 10, "{}", behind.stderr);
    assert!(behind.stderr.contains("truncated"), "{}", behind.stderr);
    // Each change to the file is named.
    let export: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let tampered = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value = export.clone();
        edit(&mut value);
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path
    };
    let body = |v: &mut serde_json::Value| {
        let b = v["records"][2]["body"].as_str().unwrap().to_owned();
        let flipped = if b.ends_with('0') { '1' } else { '0' };
        v["records"][2]["body"] = format!("{}{flipped}", &b[..b.len() - 1]).into();
    };
    let event = |v: &mut serde_json::Value| {
        v["records"][1]["event"]["outcome"] = "failed".into();
    };
    let removed = |v: &mut serde_json::Value| {
        v["records"].as_array_mut().unwrap().remove(3);
    };
    let cut = |v: &mut serde_json::Value| {
        v["records"].as_array_mut().unwrap().pop();
    };
    for (name, edit, fault) in [
        (
            "body.json",
            &body as &dyn Fn(&mut serde_json::Value),
            "modified",
        ),
        ("event.json", &event, "modified"),
        ("removed.json", &removed, "missing"),
        ("cut.json", &cut, "cut"),
    ] {
        let r = verify(&tampered(name, edit), &code, None);
        assert_eq!(r.code, 10, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(fault), "{name}: {}", r.stderr);
    }
    // Usage errors, exit 2: another store's code, a file that is not an
    // export, a mistyped code.
    let other = dir.path().join("other.sqlite");
    let other_code = after(&ok(&other, &["init"], "", now), "Audit verification code");
    let r = verify(&file, &other_code, None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("another store"), "{}", r.stderr);
    let not_export = dir.path().join("notes.txt");
    std::fs::write(&not_export, "hello").unwrap();
    let r = verify(&not_export, &code, None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("not a readable MedCrypt audit export"),
        "{}",
        r.stderr
    );
    let mut typo: Vec<char> = code.chars().collect();
    typo[3] = if typo[3] == 'A' { 'B' } else { 'A' };
    let r = verify(&file, &typo.into_iter().collect::<String>(), None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // The readable form is still there.
    let lines = ok(&doc, &["audit", "export", "--format", "jsonl"], "", now);
    assert!(lines.lines().all(|l| l.starts_with('{')));
}

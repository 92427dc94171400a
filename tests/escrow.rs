//! Break-glass escrow through the binary: split among three custodians,
//! combine any two, refuse everything else, and leave the set retired.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{NOV, PASSPHRASE, Party, store_with_records};
use medcrypt::shares::ShareText;
use medcrypt::store::Store;
use secrecy::SecretString;

const CUSTODIANS: [&str; 3] = ["Medical director", "Records office", "Maria Silva"];

fn split(doc: &Party, dir: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let mut args = vec!["escrow", "split", "--out-dir", dir.to_str().unwrap()];
    for c in CUSTODIANS {
        args.extend(["--custodian", c]);
    }
    args.extend(extra);
    let shown = doc.ok(&args, "", NOV);
    assert!(shown.contains("any 2 of 3 custodians"), "{shown}");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    pages.sort();
    assert_eq!(pages.len(), 3);
    pages
}

fn combine(doc: &Party, shares: &[&Path], extra: &[&str]) -> common::Run {
    let mut args = vec![
        "escrow",
        "combine",
        "--reason",
        "patient in ICU, physician unreachable",
    ];
    for s in shares {
        args.extend(["--share", s.to_str().unwrap()]);
    }
    args.extend(extra);
    // Break-glass needs no passphrase.
    doc.run_with(&args, "", NOV, "")
}

#[test]
fn any_two_custodians_export_a_patient_and_everyone_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    let shares_dir = dir.path().join("shares");
    let pages = split(&doc, &shares_dir, &[]);
    let page = std::fs::read_to_string(&pages[0]).unwrap();
    assert!(
        page.contains("Custodian:  Maria Silva") || page.contains("Custodian:  Medical director"),
        "{page}"
    );
    assert!(page.contains("MEDCRYPT-SHARE:v1:") && page.contains("escrow combine"));

    // One share alone opens nothing.
    let run = combine(
        &doc,
        &[&pages[0]],
        &[
            "--export",
            dir.path().join("x").to_str().unwrap(),
            "--patient",
            "alice",
        ],
    );
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(run.stderr.contains("needs 2"), "{}", run.stderr);

    // A non-empty target is refused before the shares are used.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), b"mine").unwrap();
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &["--export", busy.to_str().unwrap(), "--patient", "alice"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
    assert!(
        !doc.ok(&["audit", "show"], "", NOV)
            .contains("escrow_combine")
    );

    // Two custodians (one by the QR PNG) open it.
    let export = dir.path().join("emergency");
    let png = pages[2].with_extension("png");
    let run = combine(
        &doc,
        &[&pages[0], &png],
        &["--export", export.to_str().unwrap(), "--patient", "alice"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("share set is retired"),
        "{}",
        run.stdout
    );
    let messages = std::fs::read_to_string(export.join("messages.txt")).unwrap();
    assert!(messages.contains("file ecg.pdf (9 bytes)"), "{messages}");
    let staging_left = std::fs::read_dir(dir.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".medcrypt-export")
    });
    assert!(!staging_left, "the staging directory was left behind");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&export).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    assert!(messages.contains("Allergic to penicillin."), "{messages}");
    assert_eq!(std::fs::read(export.join("ecg.pdf")).unwrap(), b"%PDF ecg.");

    // Recorded with names and reason; the patient's notice is queued.
    let audit = doc.ok(&["audit", "show", "--action", "escrow_combine"], "", NOV);
    assert!(
        audit.contains("patient in ICU") && audit.contains(" and "),
        "{audit}"
    );
    let outbox = doc.ok(&["outbox"], "", NOV);
    assert!(
        outbox.contains("alice") && outbox.contains("queued"),
        "{outbox}"
    );

    // The same shares open nothing any more.
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &[
            "--export",
            dir.path().join("again").to_str().unwrap(),
            "--patient",
            "alice",
        ],
    );
    assert_eq!(run.code, 11);
    assert!(run.stderr.contains("retired"), "{}", run.stderr);
}

#[test]
fn every_pair_of_a_two_of_three_set_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    for (n, (a, b)) in [(0, 1), (0, 2), (1, 2)].into_iter().enumerate() {
        let pages = split(&doc, &dir.path().join(format!("set{n}")), &[]);
        let out = dir.path().join(format!("out{n}"));
        let run = combine(
            &doc,
            &[&pages[b], &pages[a]],
            &["--export", out.to_str().unwrap(), "--patient", "alice"],
        );
        assert_eq!(run.code, 0, "pair {a},{b}: {}", run.stderr);
        assert!(out.join("messages.txt").exists());
    }
}

#[test]
fn typos_wrong_values_and_mixed_sets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    let old = split(&doc, &dir.path().join("old"), &[]);
    let pages = split(&doc, &dir.path().join("new"), &[]);
    let out = dir.path().join("out");
    let export = ["--export", out.to_str().unwrap(), "--patient", "alice"];
    let line = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("MEDCRYPT-SHARE"))
            .unwrap()
            .to_owned()
    };

    // One changed character: the checksum catches it.
    let good = line(&pages[1]);
    let at = good.len() - 7;
    let typo = format!(
        "{}{}{}",
        &good[..at],
        if &good[at..at + 1] == "A" { "B" } else { "A" },
        &good[at + 1..]
    );
    // Custodian 1 by file, custodian 2 typing their share.
    let with_typed = |typed: &str| {
        let mut args = vec![
            "escrow",
            "combine",
            "--reason",
            "test",
            "--share",
            pages[0].to_str().unwrap(),
            "--share-text",
            typed,
        ];
        args.extend(export);
        doc.run_with(&args, "", NOV, "")
    };
    let run = with_typed(&typo);
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(run.stderr.contains("typo"), "{}", run.stderr);

    // A valid checksum but a wrong value: caught before it is used.
    let mut wrong = ShareText::parse(&good, 2).unwrap();
    wrong.value[3] ^= 0x40;
    let forged = wrong.to_text().to_string();
    let run = with_typed(&forged);
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(
        run.stderr.contains("share 2 (custodian") && run.stderr.contains("is damaged"),
        "{}",
        run.stderr
    );

    // Shares of two different splits.
    let run = combine(&doc, &[&pages[0], &old[1]], &export);
    assert_eq!(run.code, 11);
    assert!(run.stderr.contains("different sets"), "{}", run.stderr);
    // The older split was retired by the newer one.
    let run = combine(&doc, &[&old[0], &old[1]], &export);
    assert!(run.stderr.contains("retired"), "{}", run.stderr);
    assert!(!out.exists(), "nothing may be exported on failure");
}

#[test]
fn new_passphrase_rekeys_the_store_and_the_shares_carry_no_audit_key() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "physician");
    let init = doc.ok(&["init", "--name", "Dr. Gone"], "", NOV);
    let code = init
        .lines()
        .skip_while(|l| !l.starts_with("Audit verification code"))
        .find(|l| l.starts_with("    "))
        .unwrap()
        .trim()
        .to_owned();
    doc.ok(&["pair", "new", "--patient", "bob"], "", NOV);
    // Custodians must not hold the key that audits them.
    let refused = doc.run_at(
        &[
            "escrow",
            "split",
            "--custodian",
            "A",
            "--custodian",
            "B",
            "--audit-code",
            &code,
        ],
        "",
        NOV,
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let pages = split(&doc, &dir.path().join("shares"), &[]);

    let new_pass = dir.path().join("new-pass");
    std::fs::write(&new_pass, "a passphrase for the successor").unwrap();
    let run = combine(
        &doc,
        &[&pages[1], &pages[2]],
        &["--new-passphrase-file", new_pass.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("New recovery code"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("Audit log checked (structure, encryption and today's entries)"),
        "{}",
        run.stdout
    );

    assert_eq!(
        doc.run_at(&["pair", "list"], "", NOV).code,
        9,
        "the old passphrase still opens it"
    );
    let listed = doc.run_with(&["pair", "list"], "", NOV, "a passphrase for the successor");
    assert!(listed.stdout.contains("bob"), "{}", listed.stderr);
    let verified = doc.run_with(
        &["audit", "verify", "--code", &code],
        "",
        NOV,
        "a passphrase for the successor",
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &["--new-passphrase-file", new_pass.to_str().unwrap()],
    );
    assert!(run.stderr.contains("retired"), "{}", run.stderr);
}

fn export_args(dir: &Path, name: &str) -> Vec<String> {
    vec![
        "--export".into(),
        dir.join(name).to_str().unwrap().into(),
        "--patient".into(),
        "alice".into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// What an insider with write access does with an old copy: puts its escrow
/// wraps and sets (not retired there) back into the live store.
fn plant_old_escrow(doc: &Party, old: &Path) {
    let conn = rusqlite::Connection::open(&doc.store).unwrap();
    conn.execute_batch(&format!(
        "ATTACH DATABASE '{}' AS b;
         INSERT OR REPLACE INTO unlock SELECT * FROM b.unlock WHERE method LIKE 'escrow:%';
         INSERT OR REPLACE INTO escrow_sets SELECT * FROM b.escrow_sets;
         DETACH DATABASE b;",
        old.display()
    ))
    .unwrap();
}

/// The planted wrap opened (the shares passed every check), but what it
/// yielded is not the live store's key.
fn assert_old_key_opens_nothing(run: &common::Run, out: &Path) {
    assert_ne!(
        run.code, 0,
        "old shares opened the live store: {}",
        run.stdout
    );
    assert!(!out.exists(), "something was exported");
    // Not refused by an earlier check: the shares and the planted wrap
    // passed them all, and the key they yield is the old one.
    for earlier_check in [
        "was retired on",
        "does not match the split",
        "not from a split",
        "needs 2",
    ] {
        assert!(
            !run.stderr.contains(earlier_check),
            "refused for another reason: {}",
            run.stderr
        );
    }
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(
        run.stderr.contains("a key this store no longer uses"),
        "{}",
        run.stderr
    );
}

#[test]
fn retired_shares_with_an_old_copy_open_nothing_current() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    let pages = split(&doc, &dir.path().join("shares"), &[]);
    // An insider keeps a copy from before the set is used and retired.
    let old = dir.path().join("old.sqlite");
    std::fs::copy(&doc.store, &old).unwrap();
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &strs(&export_args(dir.path(), "e1")),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The store's key was replaced: the old copy's escrow wrap, planted
    // back into the live store with its set, opens nothing current.
    plant_old_escrow(&doc, &old);
    let run = combine(
        &doc,
        &[&pages[0], &pages[2]],
        &strs(&export_args(dir.path(), "e2")),
    );
    assert_old_key_opens_nothing(&run, &dir.path().join("e2"));
    // The physician's passphrase still opens the store, with its history.
    let listed = doc.ok(&["inbox"], "", NOV);
    assert!(listed.contains("Allergic to penicillin"), "{listed}");
    let code_check = doc.ok(
        &["audit", "show", "--action", "master_key_rotated"],
        "",
        NOV,
    );
    assert!(code_check.contains("emergency access"), "{code_check}");
}

#[test]
fn a_new_split_replaces_the_key_and_says_it_retires_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    let first = split(&doc, &dir.path().join("a"), &[]);
    let old = dir.path().join("old.sqlite");
    std::fs::copy(&doc.store, &old).unwrap();
    let mut args = vec!["escrow", "split", "--out-dir"];
    let b = dir.path().join("b");
    args.push(b.to_str().unwrap());
    for c in CUSTODIANS {
        args.extend(["--custodian", c]);
    }
    let shown = doc.ok(&args, "", NOV);
    assert!(shown.contains("is retired"), "{shown}");
    // The first set's wrap and record, planted back from the old copy into
    // the live store: what the old shares unwrap no longer opens it.
    plant_old_escrow(&doc, &old);
    let run = combine(
        &doc,
        &[&first[0], &first[1]],
        &strs(&export_args(dir.path(), "e")),
    );
    assert_old_key_opens_nothing(&run, &dir.path().join("e"));
}

#[test]
fn shares_carry_no_audit_key() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    let pages = split(&doc, &dir.path().join("s"), &[]);
    let shares: Vec<ShareText> = pages[..2]
        .iter()
        .enumerate()
        .map(|(i, p)| medcrypt::session::read_share(&std::fs::read(p).unwrap(), i + 1).unwrap())
        .collect();
    let secret = medcrypt::shares::combine(&shares).unwrap();
    assert!(
        secret.audit_key.is_none(),
        "custodians could re-MAC the log that audits them"
    );
}

#[test]
fn custodians_choose_the_patient_after_opening_and_nothing_is_used_up() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    doc.ok(&["pair", "new", "--patient", "bruno"], "", NOV);
    let pages = split(&doc, &dir.path().join("s"), &[]);
    let out = dir.path().join("out");

    // A too-short new passphrase is refused before the shares are used.
    let short = dir.path().join("short");
    std::fs::write(&short, "abc").unwrap();
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &["--new-passphrase-file", short.to_str().unwrap()],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("shares were not used"),
        "{}",
        run.stderr
    );
    assert!(
        !doc.ok(&["audit", "show"], "", NOV)
            .contains("escrow_combine")
    );

    // No patient named: once the shares open the store, the list.
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &["--export", out.to_str().unwrap()],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("alice") && run.stderr.contains("bruno"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("NOT used up"), "{}", run.stderr);
    // An alias custodians guessed wrong: the same.
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &["--export", out.to_str().unwrap(), "--patient", "Alicia"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no patient \"Alicia\""),
        "{}",
        run.stderr
    );
    // A patient with nothing to export: said before anything is used up.
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &["--export", out.to_str().unwrap(), "--patient", "bruno"],
    );
    assert_eq!(run.code, 11, "{}", run.stderr);
    assert!(run.stderr.contains("nothing to export"), "{}", run.stderr);
    assert!(!out.exists());
    // Each opening is recorded as what it was (never "ok"), and the
    // physician's notices are queued durably, one per opening.
    let audit = doc.ok(&["audit", "show", "--action", "escrow_combine"], "", NOV);
    assert_eq!(audit.lines().count(), 3, "{audit}");
    assert!(audit.lines().all(|l| l.contains("rejected")), "{audit}");
    let conn = rusqlite::Connection::open(&doc.store).unwrap();
    let pending: i64 = conn
        .query_row(
            "SELECT count(*) FROM notices WHERE delivered_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 3);
    drop(conn);
    // The set still works for the real export.
    let run = combine(
        &doc,
        &[&pages[0], &pages[1]],
        &["--export", out.to_str().unwrap(), "--patient", "alice"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("is told by their agent"),
        "{}",
        run.stdout
    );
    let audit = doc.ok(&["audit", "show", "--action", "escrow_combine"], "", NOV);
    assert!(audit.lines().last().unwrap().contains(" ok "), "{audit}");
}

#[test]
fn a_split_refuses_duplicate_names_and_leaves_nothing_when_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    let out = dir.path().join("dup");
    let run = doc.run_at(
        &[
            "escrow",
            "split",
            "--out-dir",
            out.to_str().unwrap(),
            "--custodian",
            "Ana",
            "--custodian",
            " ana ",
            "--custodian",
            "Bo",
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("named twice"), "{}", run.stderr);
    assert!(!out.exists(), "a refused split made its folder");
    // A folder that cannot be made (its parent is a file): the pages fail
    // and nothing is left behind.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let target = file.join("shares");
    let run = doc.run_at(
        &[
            "escrow",
            "split",
            "--out-dir",
            target.to_str().unwrap(),
            "--custodian",
            "Ana",
            "--custodian",
            "Bo",
        ],
        "",
        NOV,
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("no page of it was left behind"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// The agent holds the store open for days; a split (or an emergency
/// access) replaces the key under it. It must not write with the old key.
#[test]
fn a_process_holding_the_old_key_writes_nothing_after_a_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    let now = medcrypt::parse_utc(NOV).unwrap();
    let pass = SecretString::from(PASSPHRASE.to_owned());
    let agent = Store::open(&doc.store, &pass, now).unwrap();
    let mut other = Store::open(&doc.store, &pass, now).unwrap();
    other
        .escrow_split(&["Ana".to_owned(), "Bo".to_owned()], 2, now)
        .unwrap();
    drop(other);
    let err = agent.set_setting("name", "Dr. Stale", now).unwrap_err();
    assert!(
        matches!(err, medcrypt::store::StoreError::KeyReplaced),
        "{err}"
    );
    drop(agent);
    // Opened again, it works, and nothing was written with the old key.
    let fresh = Store::open(&doc.store, &pass, now).unwrap();
    fresh.integrity().unwrap();
    fresh.set_setting("name", "Dr. Fresh", now).unwrap();
}

/// `inbox --follow` runs for hours: a split under it stops it with "the
/// key was replaced", not with what its stale keys make of the rows.
#[test]
fn inbox_follow_stops_when_the_key_is_replaced_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let doc = store_with_records(dir.path());
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["inbox", "--follow"])
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", NOV)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    split(&doc, &dir.path().join("shares"), &[]);
    let stopped = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        follow.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = follow.kill();
    }
    let out = follow.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stopped, "still following with the old key: {stderr}");
    assert!(stderr.contains("key was replaced"), "{stderr}");
}

//! The life cycle of a store as a new user meets it: a wrong `--store`
//! path, another program's database, a store busy or read-only, a clock
//! that jumps, backups, invites that expire, and a command line that helps.
//! Each test drives the real binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{NOV, PASSPHRASE, Party, paired};
use sha2::{Digest, Sha256};

fn digest(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

// ---------------------------------------------------------------- the store

#[test]
fn another_programs_database_is_left_byte_for_byte_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-app.sqlite");
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE notes(body TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let before = digest(&other);
    let party = Party {
        store: other.clone(),
    };
    for args in [
        &["pair", "list"][..],
        &["init"],
        &["keys", "shred"],
        &["decrypt"],
    ] {
        let run = party.run_at(args, "MEDCRYPT:v2:AAAA", NOV);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("is not a MedCrypt store"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(digest(&other), before, "{args:?} changed the file");
        assert_eq!(
            common::files_in(dir.path()),
            ["other-app.sqlite"],
            "{args:?}"
        );
    }
    // Not a database at all: the same answer, the same care.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "shopping list\n").unwrap();
    let run = Party {
        store: text.clone(),
    }
    .run_at(&["pair", "list"], "", NOV);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("is not a MedCrypt store"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "shopping list\n");
}

#[test]
fn an_empty_file_is_no_store_and_init_may_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("store.sqlite");
    std::fs::File::create(&empty).unwrap();
    let party = Party {
        store: empty.clone(),
    };
    let run = party.run_at(&["pair", "list"], "", NOV);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("no MedCrypt store at"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("medcrypt init"), "{}", run.stderr);
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    party.ok(&["init"], "", NOV);
    assert!(party.ok(&["pair", "list"], "", NOV).contains("No pairings"));
}

#[test]
fn a_directory_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let party = Party {
        store: dir.path().to_owned(),
    };
    let run = party.run_at(&["pair", "list"], "", NOV);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn a_busy_store_says_so_then_gives_up_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let party = Party::new(dir.path(), "doc");
    party.ok(&["init"], "", NOV);
    // Another command holds the store's write lock.
    let conn = rusqlite::Connection::open(&party.store).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_medcrypt"));
    let out = command
        .arg("--store")
        .arg(&party.store)
        .args(["pair", "list"])
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", NOV)
        .env("MEDCRYPT_WAIT", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("waiting for another MedCrypt command"),
        "{stderr}"
    );
    assert!(stderr.contains("kept the store busy"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    // Released, the same command works.
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    party.ok(&["pair", "list"], "", NOV);
}

/// Runs `args` on `party`'s store as the unprivileged user `nobody`, so
/// that file permissions apply even when the tests run as root.
fn run_as_nobody(party: &Party, args: &[&str], passphrase: &str) -> (i32, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_medcrypt"),
            "--yes",
            "--store",
        ])
        .arg(&party.store)
        .args(args)
        .env("MEDCRYPT_PASSPHRASE", passphrase)
        .env("MEDCRYPT_NOW", NOV)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(unix)]
#[test]
fn a_read_only_store_is_named_and_a_wrong_passphrase_is_still_wrong() {
    use std::os::unix::fs::PermissionsExt;
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let has_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let party = Party::new(dir.path(), "doc");
    party.ok(&["init"], "", NOV);
    let store_dir = party.store.parent().unwrap();
    // Readable by everyone, writable by no one but root.
    std::fs::set_permissions(store_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(&party.store, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (code, stderr) = if is_root && has_setpriv {
        run_as_nobody(&party, &["pair", "list"], PASSPHRASE)
    } else {
        let run = party.run_at(&["pair", "list"], "", NOV);
        (run.code, run.stderr)
    };
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(stderr.contains("writable"), "{stderr}");
    let (code, stderr) = if is_root && has_setpriv {
        run_as_nobody(&party, &["pair", "list"], "not the passphrase")
    } else {
        let run = party.run_with(&["pair", "list"], "", NOV, "not the passphrase");
        (run.code, run.stderr)
    };
    assert_eq!(code, 9, "{stderr}");
    assert!(stderr.contains("wrong passphrase"), "{stderr}");
    std::fs::set_permissions(store_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&party.store, std::fs::Permissions::from_mode(0o600)).unwrap();
}

// ---------------------------------------------------------------- the clock

#[test]
fn a_clock_far_ahead_destroys_nothing_without_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let wire = doc.encrypt("alice", "Biopsy: benign.", NOV);
    // The clock jumps to February (a wrong system date): refused, nothing
    // destroyed, and the question names what would be lost.
    let run = pat.run_asking(
        None,
        &["keys", "list"],
        "",
        "2027-02-10T10:00:00Z",
        PASSPHRASE,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("82 days after"), "{}", run.stderr);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert!(run.stderr.contains("destroyed for good"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    // Back on the real clock, everything still works.
    let run = pat.run_asking(None, &["decrypt"], &wire, NOV, PASSPHRASE);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().last(), Some("Biopsy: benign."));
    // The keyless shredder, run with the same wrong clock, moves at most
    // two days past the last time it could trust.
    let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&pat.store)
        .args(["keys", "shred"])
        .env("MEDCRYPT_NOW", "2027-02-10T10:00:00Z")
        .env_remove("MEDCRYPT_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Destroyed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let reply = pat.encrypt("dr-silva", "Thank you", "2026-11-20T10:05:00Z");
    assert_eq!(doc.decrypt(&reply, "2026-11-20T10:06:00Z").code, 0);
}

#[test]
fn a_confirmed_jump_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let (_doc, pat, _) = paired(dir.path());
    let feb = "2027-02-10T10:00:00Z";
    let run = pat.run_asking(None, &["--yes", "keys", "list"], "", feb, PASSPHRASE);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("2027-02  current"), "{}", run.stdout);
    // The next command at that time asks nothing.
    let run = pat.run_asking(None, &["keys", "list"], "", feb, PASSPHRASE);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_clock_set_back_is_refused_unless_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let (_doc, pat, _) = paired(dir.path());
    let run = pat.run_asking(
        None,
        &["keys", "list"],
        "",
        "2026-11-19T10:00:00Z",
        PASSPHRASE,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("earlier than"), "{}", run.stderr);
    assert!(run.stderr.contains("set back"), "{}", run.stderr);
    // A few minutes of drift between machines is not a jump.
    let run = pat.run_asking(
        None,
        &["keys", "list"],
        "",
        "2026-11-20T09:55:00Z",
        PASSPHRASE,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn medcrypt_now_is_announced_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let party = Party::new(dir.path(), "doc");
    let run = party.run_at(&["init"], "", NOV);
    assert!(
        run.stderr.contains("MEDCRYPT_NOW is set") && run.stderr.contains("copy of a store"),
        "{}",
        run.stderr
    );
    let run = party.run_at(&["pair", "list"], "", NOV);
    assert!(run.stderr.contains("MEDCRYPT_NOW is set"), "{}", run.stderr);
}

// ---------------------------------------------------------------- pairing

#[test]
fn a_swapped_qr_cannot_paint_the_patients_screen() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let pat = Party::new(dir.path(), "patient");
    pat.ok(&["init"], "", NOV);
    // The reviewer's QR: a WhatsApp "number" that moves the cursor up and
    // rewrites the safety number line.
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    let png = dir.path().join("evil.png");
    let uri = format!(
        "medcrypt://pair/v2?s={secret}&e=2026-11&n=Dr%20Ana&wa=%2B1%20555%200100%1B7%1B%5B2A%0D%1B%5B2K%20%2002789%1B8"
    );
    std::fs::write(&png, medcrypt::qr::render_png(&uri).unwrap()).unwrap();
    let run = pat.run_at(
        &["pair", "accept", "--qr-image", png.to_str().unwrap()],
        "",
        NOV,
    );
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(!run.stdout.contains('\u{1b}') && !run.stderr.contains('\u{1b}'));
    assert!(run.stderr.contains("WhatsApp number"), "{}", run.stderr);
    assert!(pat.ok(&["pair", "list"], "", NOV).contains("No pairings"));

    // And the physician cannot put such a number into a QR in the first place.
    let doc = Party::new(dir.path(), "doc");
    doc.ok(&["init"], "", NOV);
    let run = doc.run_at(
        &[
            "config",
            "set",
            "whatsapp-number",
            "+1 555 0100\u{1b}7\u{1b}[2A",
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'));
    assert!(run.stderr.contains("country code"), "{}", run.stderr);
    for (key, value) in [
        ("telegram-bot", "silva\u{1b}]8;;http://x\u{1b}\\"),
        ("name", "Dr Ana\u{202e}"),
    ] {
        let run = doc.run_at(&["config", "set", key, value], "", NOV);
        assert_eq!(run.code, 2, "{key}: {}", run.stderr);
    }
    doc.ok(
        &["config", "set", "whatsapp-number", "+34 600 123 456"],
        "",
        NOV,
    );
    let run = doc.run_at(&["pair", "new", "--patient", "a\u{200b}lice"], "", NOV);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("\\u{200b}"), "{}", run.stderr);
}

#[test]
fn a_backup_made_while_in_use_restores_and_its_next_message_is_no_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = common::paired(dir.path());
    let first = doc.encrypt("alice", "before the backup", "2026-11-20T10:01:00Z");
    assert_eq!(pat.decrypt(&first, "2026-11-20T10:01:30Z").code, 0);

    // Another command (the agent, `inbox --follow`) is reading the store
    // meanwhile.
    let busy = rusqlite::Connection::open(&doc.store).unwrap();
    busy.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
        .unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let copy = backups.join("doc.sqlite");
    let copy_arg = copy.to_str().unwrap();
    let made = doc.ok(&["backup", copy_arg], "", "2026-11-20T10:02:00Z");
    busy.execute_batch("ROLLBACK").unwrap();
    drop(busy);
    assert!(made.contains("Backup written"), "{made}");
    assert!(made.contains("restore"), "{made}");
    assert_eq!(
        common::files_in(&backups),
        ["doc.sqlite"],
        "temporaries left behind"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // An existing file is not replaced without --force.
    let again = doc.run_at(&["backup", copy_arg], "", "2026-11-20T10:02:30Z");
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    doc.ok(&["backup", "--force", copy_arg], "", "2026-11-20T10:02:40Z");

    // Life goes on after the backup: two more messages are read.
    for (i, at) in ["2026-11-20T10:05:00Z", "2026-11-20T10:06:00Z"]
        .iter()
        .enumerate()
    {
        let wire = doc.encrypt("alice", &format!("after the backup {i}"), at);
        assert_eq!(pat.decrypt(&wire, at).code, 0);
    }

    // The physician's disk dies; the backup is restored.
    for suffix in ["", "-wal", "-shm"] {
        let mut p = doc.store.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(&p);
    }
    std::fs::copy(&copy, &doc.store).unwrap();
    let listed = doc.ok(&["pair", "list"], "", "2026-11-20T11:00:00Z");
    assert!(listed.contains("alice"), "{listed}");
    let shown = doc.ok(
        &["audit", "show", "--action", "backup"],
        "",
        "2026-11-20T11:00:00Z",
    );
    assert!(shown.contains("backup"), "{shown}");

    // Its next message is new to the patient, not a replay of #1..#3.
    let after = doc.encrypt("alice", "after the restore", "2026-11-20T11:00:00Z");
    let read = pat.decrypt(&after, "2026-11-20T11:00:30Z");
    assert_eq!(read.code, 0, "{}", read.stderr);
    assert!(read.stdout.contains("after the restore"), "{}", read.stdout);
}

// ------------------------------------------------------- pairing life cycle

#[test]
fn an_invitation_expires_and_one_qr_makes_one_pairing() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "physician");
    let pat = Party::new(dir.path(), "patient");
    let late = Party::new(dir.path(), "second-patient");
    doc.ok(&["init", "--name", "Dr. Ana Silva"], "", NOV);
    pat.ok(&["init"], "", NOV);
    late.ok(&["init"], "", NOV);
    let png = dir.path().join("alice.png");
    let png_arg = png.to_str().unwrap();
    let shown = doc.ok(
        &["pair", "new", "--patient", "alice", "--qr-png", png_arg],
        "",
        NOV,
    );
    assert!(shown.contains("expires on 2026-11-21 10:00 UTC"), "{shown}");
    assert!(shown.contains("delete it after the visit"), "{shown}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&png).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the QR file is readable by others");
    }
    let code = common::line_after(&shown, "Typed code");

    // The patient accepts within the day, and is warned about the image.
    let accepted = pat.run_at(
        &["pair", "accept", "--qr-image", png_arg],
        "",
        "2026-11-20T18:00:00Z",
    );
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    assert!(
        accepted.stderr.contains("can read this conversation"),
        "{}",
        accepted.stderr
    );
    assert!(png.exists(), "deleted without being asked");
    // The same QR a second time, under another alias: refused.
    let twice = pat.run_at(
        &[
            "pair",
            "accept",
            "--qr-image",
            png_arg,
            "--physician",
            "again",
        ],
        "",
        "2026-11-20T18:05:00Z",
    );
    assert_eq!(twice.code, 1, "{}", twice.stderr);
    assert!(
        twice.stderr.contains("already accepted"),
        "{}",
        twice.stderr
    );
    let list = pat.ok(&["pair", "list"], "", "2026-11-20T18:06:00Z");
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(!list.contains("again"), "{list}");

    // Someone else with the PNG, three weeks later: refused, by QR and code.
    for args in [
        vec!["pair", "accept", "--qr-image", png_arg],
        vec!["pair", "accept", "--code", &code, "--physician", "dr"],
    ] {
        let run = late.run_at(&args, "", "2026-12-10T09:00:00Z");
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains("expired on 2026-11-21T10:00:00Z"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    }
    let nothing = late.ok(&["pair", "list"], "", "2026-12-10T09:00:00Z");
    assert!(nothing.contains("No pairings"), "{nothing}");

    // --valid 3d: still accepted after two days; the code carries it too.
    let long = doc.ok(
        &["pair", "new", "--patient", "bob", "--valid", "3d"],
        "",
        NOV,
    );
    let long_code = common::line_after(&long, "Typed code");
    let run = late.run_at(
        &["pair", "accept", "--code", &long_code, "--physician", "dr"],
        "",
        "2026-11-22T09:00:00Z",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for bad in ["0d", "31d", "3w", "x"] {
        let run = doc.run_at(&["pair", "new", "--patient", "c", "--valid", bad], "", NOV);
        assert_eq!(run.code, 2, "--valid {bad}: {}", run.stderr);
    }
}

#[test]
fn a_typed_code_is_asked_for_without_being_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "physician");
    let pat = Party::new(dir.path(), "patient");
    doc.ok(&["init", "--name", "Dr. Ana Silva"], "", NOV);
    pat.ok(&["init"], "", NOV);
    let shown = doc.ok(&["pair", "new", "--patient", "alice"], "", NOV);
    let code = common::line_after(&shown, "Typed code");
    // `--code` without a value reads it from standard input.
    let run = pat.run_at(
        &["pair", "accept", "--code", "--physician", "dr-silva"],
        &format!("{code}\n"),
        NOV,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Paired with \"dr-silva\""),
        "{}",
        run.stdout
    );
}

#[test]
fn pair_list_shows_each_pairings_state_and_the_other_sides_role() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = common::paired(dir.path());
    doc.ok(&["pair", "new", "--patient", "bob"], "", NOV);
    let wire = doc.encrypt("alice", "hello", "2026-11-20T11:30:00Z");
    assert_eq!(pat.decrypt(&wire, "2026-11-20T11:31:00Z").code, 0);

    let list = doc.ok(&["pair", "list"], "", "2026-11-20T12:00:00Z");
    let header = list.lines().next().unwrap();
    assert!(
        header.contains("IS A") && header.contains("LAST MESSAGE"),
        "{list}"
    );
    let alice = list.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(alice.contains("patient"), "{alice}");
    assert!(alice.contains("2026-11-20 10:00 UTC"), "{alice}");
    assert!(alice.contains("2026-11-20 11:30 UTC"), "{alice}");
    let bob = list.lines().find(|l| l.starts_with("bob")).unwrap();
    assert!(bob.contains("invited until 11-21 10:00"), "{bob}");
    // Every row has the same columns where the times are.
    let column = |line: &str| line.find("2026-11-20 10:00 UTC");
    assert_eq!(column(alice), column(bob), "{list}");
    let later = doc.ok(&["pair", "list"], "", "2026-11-22T12:00:00Z");
    let bob = later.lines().find(|l| l.starts_with("bob")).unwrap();
    assert!(bob.contains("invitation expired"), "{bob}");

    let theirs = pat.ok(&["pair", "list"], "", "2026-11-20T12:00:00Z");
    let row = theirs.lines().find(|l| l.starts_with("dr-silva")).unwrap();
    assert!(row.contains("physician"), "{row}");
    assert!(row.contains("2026-11-20 11:31 UTC"), "{row}");
}

#[test]
fn pair_remove_asks_first_and_a_taken_alias_points_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, _pat, _) = common::paired(dir.path());
    let taken = doc.run_at(&["pair", "new", "--patient", "alice"], "", NOV);
    assert_eq!(taken.code, 1);
    assert!(taken.stderr.contains("pair remove"), "{}", taken.stderr);

    // Without a terminal and without --yes: nothing is removed.
    let asked = doc.run_asking(None, &["pair", "remove", "alice"], "", NOV, PASSPHRASE);
    assert_ne!(asked.code, 0);
    assert!(asked.stderr.contains("was not removed"), "{}", asked.stderr);
    assert!(asked.stderr.contains("--yes"), "{}", asked.stderr);
    assert!(doc.ok(&["pair", "list"], "", NOV).contains("alice"));
    // A typo is named, not asked about.
    let typo = doc.run_asking(None, &["pair", "remove", "alcie"], "", NOV, PASSPHRASE);
    assert!(typo.stderr.contains("no pairing named"), "{}", typo.stderr);
    // Confirmed: removed.
    let done = doc.run_asking(
        None,
        &["--yes", "pair", "remove", "alice"],
        "",
        NOV,
        PASSPHRASE,
    );
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(!doc.ok(&["pair", "list"], "", NOV).contains("alice"));
}

#[test]
fn a_patient_whose_clock_is_minutes_behind_the_pairings_first_month_can_write() {
    // The physician's clock is in December, the patient's still in
    // November, 4 minutes behind: the pairing begins in December, which the
    // patient accepts by the clock-skew allowance, and writes in (wire-spec 2).
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "physician");
    let pat = Party::new(dir.path(), "patient");
    doc.ok(
        &["init", "--name", "Dr. Ana Silva"],
        "",
        "2026-12-01T00:01:00Z",
    );
    pat.ok(&["init"], "", "2026-11-30T23:50:00Z");
    let shown = doc.ok(
        &["pair", "new", "--patient", "alice"],
        "",
        "2026-12-01T00:02:00Z",
    );
    let code = common::line_after(&shown, "Typed code");
    pat.ok(
        &["pair", "accept", "--code", &code, "--physician", "dr"],
        "",
        "2026-11-30T23:58:00Z",
    );
    let wire = pat.encrypt("dr", "Written at 23:58 by my clock", "2026-11-30T23:58:30Z");
    let opened = doc.decrypt(&wire, "2026-12-01T00:03:00Z");
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    assert!(
        opened.stdout.contains("Written at 23:58"),
        "{}",
        opened.stdout
    );
}

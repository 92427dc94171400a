//! What a new user meets at the command line: chat excerpts pasted whole,
//! codes kept off the command line, long notes, clear errors with hints, and
//! help that answers. Each test drives the real binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::{NOV, PASSPHRASE, Party, paired};

fn medcrypt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .args(args)
        .env_remove("MEDCRYPT_STORE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_pasted_chat_excerpt_is_read_message_by_message() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let first = doc.encrypt("alice", "Take 5 mg in the morning.", NOV);
    let second = doc.encrypt("alice", "And drink water.", NOV);
    let mut third = doc.encrypt("alice", "See you Monday.", NOV);
    third.insert(40, '\u{200B}');
    let excerpt = format!(
        "\u{FEFF}[10:15, 20/11/2026] Dr. Ana Silva: {first}\n\
         [10:16, 20/11/2026] Dr. Ana Silva: Forwarded from Dr. Ana Silva\n\
         > {}\n> {}\n\
         [10:17, 20/11/2026] Alice: ok!\n\
         {third}\n",
        &second[..60],
        &second[60..]
    );
    let run = pat.decrypt(&excerpt, NOV);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "Take 5 mg in the morning.\nAnd drink water.\nSee you Monday.\n"
    );
    assert!(run.stderr.contains("message 3 of 3"), "{}", run.stderr);
    assert!(run.stderr.contains("ignored"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("removed U+200B (zero width space) at character 41"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("From: dr-silva").count(),
        3,
        "{}",
        run.stderr
    );
}

#[test]
fn text_starting_with_a_dash_long_notes_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let wire = doc
        .ok(&["encrypt", "--to", "alice", "--", "-5 mg"], "", NOV)
        .trim()
        .to_owned();
    assert_eq!(pat.decrypt(&wire, NOV).stdout, "-5 mg\n");
    let piped = doc.ok(&["encrypt", "--to", "alice"], "-5 mg\n", NOV);
    assert_eq!(pat.decrypt(piped.trim(), NOV).stdout, "-5 mg\n");

    // Too long for one message: the error offers --as-attachment, which
    // writes no plaintext anywhere.
    let long = "x".repeat(5000);
    let run = doc.run_at(&["encrypt", "--to", "alice"], &long, NOV);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--as-attachment"), "{}", run.stderr);
    let out = dir.path().join("note.medcrypt");
    let run = doc.run_at(
        &[
            "encrypt",
            "--to",
            "alice",
            "--as-attachment",
            "-o",
            out.to_str().unwrap(),
        ],
        &long,
        NOV,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let into = dir.path().join("received");
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            out.to_str().unwrap(),
            "--out-dir",
            into.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(into.join("note.txt")).unwrap(),
        long
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&into).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "--out-dir is created private");
    }
    // `attach encrypt -` reads standard input.
    let piped = dir.path().join("piped.medcrypt");
    let run = doc.run_at(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            "-",
            "--name",
            "lab.txt",
            "-o",
            piped.to_str().unwrap(),
        ],
        "glucose 5.1",
        NOV,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Not UTF-8: a usage error, not a decryption failure.
    let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["--yes", "encrypt", "--to", "alice"])
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", NOV)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &[0xff, 0xfe, b'a']).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));

    // Patients have no agent.
    let run = pat.run_at(&["send", "--to", "dr-silva", "hello"], "", NOV);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("patients have none"), "{}", run.stderr);
    assert!(run.stderr.contains("medcrypt encrypt"), "{}", run.stderr);
}

#[test]
fn every_error_has_a_hint_and_outputs_are_checked_first() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let d = dir.path();
    let missing_dir = d.join("no-such-dir").join("qr.png");
    let cases: Vec<(Party, Vec<String>)> = vec![
        (
            Party {
                store: doc.store.clone(),
            },
            vec![
                "decrypt".into(),
                d.join("missing.txt").display().to_string(),
            ],
        ),
        (
            Party {
                store: doc.store.clone(),
            },
            vec![
                "pair".into(),
                "new".into(),
                "--patient".into(),
                "bob".into(),
                "--qr-png".into(),
                missing_dir.display().to_string(),
            ],
        ),
        (
            Party {
                store: doc.store.clone(),
            },
            vec![
                "--passphrase-file".into(),
                d.join("nope").display().to_string(),
                "pair".into(),
                "list".into(),
            ],
        ),
        (
            Party {
                store: doc.store.clone(),
            },
            vec![
                "attach".into(),
                "encrypt".into(),
                "--to".into(),
                "alice".into(),
                d.display().to_string(),
            ],
        ),
    ];
    for (party, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = party.run_at(&args, "", NOV);
        assert_ne!(run.code, 0, "{args:?}");
        assert!(run.stderr.contains("hint:"), "{args:?}: {}", run.stderr);
    }
    let run = doc.run_at(
        &[
            "pair",
            "new",
            "--patient",
            "bob",
            "--qr-png",
            missing_dir.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    let run = doc.run_at(
        &["attach", "encrypt", "--to", "alice", d.to_str().unwrap()],
        "",
        NOV,
    );
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);

    // An existing output is refused before anything is decrypted.
    let plain = d.join("scan.bin");
    std::fs::write(&plain, vec![7u8; 300_000]).unwrap();
    let enc = d.join("scan.medcrypt");
    doc.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            plain.to_str().unwrap(),
            "-o",
            enc.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    let taken = d.join("taken.bin");
    std::fs::write(&taken, b"keep me").unwrap();
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            enc.to_str().unwrap(),
            "-o",
            taken.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(std::fs::read(&taken).unwrap(), b"keep me");
    // Nothing was recorded as received: the file still decrypts as new.
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            enc.to_str().unwrap(),
            "--out-dir",
            d.join("o").to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("already"), "{}", run.stderr);
}

#[test]
fn arguments_are_checked_before_the_passphrase_is_asked() {
    // No passphrase anywhere and no terminal: had it been asked for first,
    // the error would be about the passphrase.
    for args in [
        vec!["attach", "encrypt", "--to", "a", "f", "--part-size", "19Q"],
        vec!["audit", "show", "--since", "yesterday"],
        vec!["audit", "show", "--action", "no_such_action"],
        vec!["pair", "new", "--patient", "a", "--valid", "2y"],
        vec!["pair", "new", "--patient", "a", "--valid", "3é"],
    ] {
        let (code, _, stderr) = medcrypt(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            !stderr.contains("no passphrase given"),
            "{args:?}: {stderr}"
        );
    }
    let (_, _, stderr) = medcrypt(&["audit", "show", "--action", "no_such_action"]);
    assert!(
        stderr.contains("decrypt_failed"),
        "lists the actions: {stderr}"
    );
}

#[test]
fn help_version_completions_and_manual() {
    let (code, help, _) = medcrypt(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "Global options:",
        "Exit codes:",
        "MEDCRYPT_PASSPHRASE",
        "audit show --help",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    assert!(!help.contains("[env: "), "dangling env value: {help}");
    let (_, accept, _) = medcrypt(&["pair", "accept", "--help"]);
    assert!(
        accept.contains("<--qr-image <FILE>|--code [<CODE>]>"),
        "{accept}"
    );
    let (_, version, _) = medcrypt(&["--version"]);
    assert!(version.contains("commit "), "{version}");
    assert!(
        version.contains("v2") && version.contains("format 3"),
        "{version}"
    );
    let (code, script, _) = medcrypt(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        script.contains("medcrypt") && script.contains("pair"),
        "{script}"
    );
    let (code, page, _) = medcrypt(&["man"]);
    assert_eq!(code, 0);
    assert!(
        page.starts_with(".ie") || page.contains(".TH medcrypt 1"),
        "{page}"
    );
    let (_, shown, _) = medcrypt(&["audit", "show", "--help"]);
    assert!(shown.contains("escrow_combine"), "{shown}");
}

#[test]
fn codes_come_from_a_prompt_or_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let party = Party::new(dir.path(), "doc");
    let init = party.ok(&["init"], "", NOV);
    let after = |heading: &str| {
        init.lines()
            .skip_while(|l| !l.starts_with(heading))
            .skip(1)
            .find(|l| !l.trim().is_empty())
            .unwrap()
            .trim()
            .to_owned()
    };
    let recovery = after("Recovery code");
    let audit = after("Audit verification code");
    // `audit verify --code` without a value reads the code from stdin.
    let run = party.run_at(&["audit", "verify", "--code"], &format!("{audit}\n"), NOV);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // `recover` without --recovery-code reads it from stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&party.store)
        .arg("recover")
        .env("MEDCRYPT_NEW_PASSPHRASE", "a-brand-new-passphrase")
        .env("MEDCRYPT_NOW", NOV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{recovery}\n").as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_empty_passphrase_variable_counts_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let party = Party::new(dir.path(), "doc");
    party.ok(&["init"], "", NOV);
    // Empty: as if unset, so it is asked for (and there is no terminal).
    let run = party.run_with(&["pair", "list"], "", NOV, "");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no passphrase given"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong passphrase"), "{}", run.stderr);
}

#[test]
fn a_token_file_others_can_read_gets_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let party = Party::new(dir.path(), "doc");
    party.ok(&["init"], "", NOV);
    let token = dir.path().join("token");
    std::fs::write(&token, "1:x\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // Pointed at a closed port on loopback: it fails right after the check.
    let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&party.store)
        .args([
            "agent",
            "telegram",
            "--token-file",
            token.to_str().unwrap(),
            "--run-for",
            "1",
        ])
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", NOV)
        .env("TELOXIDE_API_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("can be read by other users"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

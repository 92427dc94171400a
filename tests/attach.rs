//! `medcrypt attach` as physician and patient use it: files of every awkward
//! size, several recipients, split parts, and damaged files that must leave
//! nothing behind.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{NOV, Party, paired};

const CHUNK: usize = 64 * 1024;

fn content(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u64 * 31 + u64::from(seed)) as u8 ^ (i >> 8) as u8)
        .collect()
}

/// Files in `dir` other than the ones given, e.g. leftovers of a failure.
fn encrypt(from: &Party, to: &[&str], file: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let mut args = vec!["attach", "encrypt"];
    for alias in to {
        args.extend(["--to", alias]);
    }
    args.push(file.to_str().unwrap());
    args.extend(extra);
    from.ok(&args, "", NOV).lines().map(PathBuf::from).collect()
}

#[test]
fn round_trips_at_every_awkward_size_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for (i, size) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3_000_000]
        .into_iter()
        .enumerate()
    {
        let name = format!("lab-{i}.pdf");
        let input = dir.path().join(&name);
        std::fs::write(&input, content(size, i as u8)).unwrap();
        let encrypted = dir.path().join(format!("{i}.medcrypt"));
        let (from, to, alias) = if i % 2 == 0 {
            (&doc, &pat, "alice")
        } else {
            (&pat, &doc, "dr-silva")
        };
        encrypt(from, &[alias], &input, &["-o", encrypted.to_str().unwrap()]);
        let bytes = std::fs::read(&encrypted).unwrap();
        assert!(
            !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
            "name visible outside"
        );
        let shown = to.ok(
            &[
                "attach",
                "decrypt",
                encrypted.to_str().unwrap(),
                "--out-dir",
                out.to_str().unwrap(),
            ],
            "",
            NOV,
        );
        assert!(shown.contains(&format!("{size} bytes")), "{shown}");
        assert_eq!(
            std::fs::read(out.join(&name)).unwrap(),
            content(size, i as u8),
            "size {size}"
        );
    }
    let audit = doc.ok(&["audit", "show"], "", NOV);
    assert!(
        audit.contains("attach_encrypt") && audit.contains("attach_decrypt"),
        "{audit}"
    );
}

#[test]
fn default_names_are_neutral_and_never_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let input = dir.path().join("HIV-test-result.pdf");
    std::fs::write(&input, b"negative").unwrap();
    let sent = doc.run_full(
        Some(dir.path()),
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            input.to_str().unwrap(),
        ],
        "",
        NOV,
        common::PASSPHRASE,
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let written = sent.stdout.trim();
    assert!(
        written.starts_with("attachment-2026") && written.ends_with(".medcrypt"),
        "{written}"
    );
    assert!(!written.contains("HIV"));

    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let file = dir.path().join(written);
    let open = |extra: &[&str]| {
        let mut args = vec!["attach", "decrypt", file.to_str().unwrap()];
        args.extend(extra);
        pat.run_full(Some(&inbox), &args, "", NOV, common::PASSPHRASE)
    };
    assert_eq!(open(&[]).code, 0);
    assert_eq!(
        std::fs::read(inbox.join("HIV-test-result.pdf")).unwrap(),
        b"negative"
    );
    std::fs::write(
        inbox.join("HIV-test-result.pdf"),
        b"the patient's own notes",
    )
    .unwrap();
    // A name the sender chose never replaces a file, even with --force:
    // the copy gets a name of its own.
    for (extra, copy) in [
        (&[][..], "HIV-test-result (2).pdf"),
        (&["--force"][..], "HIV-test-result (3).pdf"),
    ] {
        let again = open(extra);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(again.stdout.contains(copy), "{}", again.stdout);
        assert_eq!(std::fs::read(inbox.join(copy)).unwrap(), b"negative");
        assert_eq!(
            std::fs::read(inbox.join("HIV-test-result.pdf")).unwrap(),
            b"the patient's own notes"
        );
    }
    assert_eq!(
        common::files_in(&inbox),
        vec![
            "HIV-test-result (2).pdf",
            "HIV-test-result (3).pdf",
            "HIV-test-result.pdf"
        ]
    );
}

#[test]
fn a_name_from_inside_cannot_escape_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    // A Unix file name may contain backslashes and dots: it arrives intact
    // inside the attachment and must be made harmless.
    let input = dir.path().join("..\\..\\etc\\cron.d");
    std::fs::write(&input, b"* * * * * root evil").unwrap();
    let encrypted = dir.path().join("evil.medcrypt");
    encrypt(
        &doc,
        &["alice"],
        &input,
        &["-o", encrypted.to_str().unwrap()],
    );
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    pat.ok(
        &[
            "attach",
            "decrypt",
            encrypted.to_str().unwrap(),
            "--out-dir",
            inbox.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(common::files_in(&inbox), vec!["cron.d"]);
}

#[test]
fn several_recipients_each_decrypt_and_others_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    // A consulting specialist paired with the same physician.
    let specialist = Party::new(dir.path(), "specialist");
    specialist.ok(&["init"], "", NOV);
    let png = dir.path().join("second.png");
    doc.ok(
        &[
            "pair",
            "new",
            "--patient",
            "cardio",
            "--qr-png",
            png.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    specialist.ok(
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

    let input = dir.path().join("echo.dcm");
    std::fs::write(&input, content(200_000, 9)).unwrap();
    let encrypted = dir.path().join("echo.medcrypt");
    encrypt(
        &doc,
        &["alice", "cardio"],
        &input,
        &["-o", encrypted.to_str().unwrap()],
    );
    for (who, name) in [(&pat, "p.dcm"), (&specialist, "s.dcm")] {
        let out = dir.path().join(name);
        who.ok(
            &[
                "attach",
                "decrypt",
                encrypted.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            "",
            NOV,
        );
        assert_eq!(std::fs::read(out).unwrap(), content(200_000, 9));
    }
    let stranger = Party::new(dir.path(), "stranger");
    stranger.ok(&["init"], "", NOV);
    let run = stranger.run_at(&["attach", "decrypt", encrypted.to_str().unwrap()], "", NOV);
    assert_eq!(run.code, 8, "{}", run.stderr);
    // The physician's own file is not for the physician.
    let run = doc.run_at(&["attach", "decrypt", encrypted.to_str().unwrap()], "", NOV);
    assert_eq!(run.code, 6, "{}", run.stderr);
}

#[test]
fn split_parts_in_any_order_missing_and_foreign_parts() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let input = dir.path().join("ct-series.zip");
    std::fs::write(&input, content(2_500_000, 4)).unwrap();
    let base = dir.path().join("ct.medcrypt");
    let parts = encrypt(
        &doc,
        &["alice"],
        &input,
        &["-o", base.to_str().unwrap(), "--part-size", "1M"],
    );
    assert_eq!(parts.len(), 3);
    for part in &parts {
        assert!(std::fs::metadata(part).unwrap().len() <= 1_000_000);
        // Part header as wire-spec 10.5 gives it: "MEDCRYPT", 'P', version 02.
        let head = std::fs::read(part).unwrap();
        assert_eq!(&head[..10], b"MEDCRYPTP\x02", "{}", part.display());
    }
    let out = dir.path().join("ct.zip");
    let shuffled = [&parts[2], &parts[0], &parts[1]].map(|p| p.to_str().unwrap());
    let mut args = vec!["attach", "decrypt"];
    args.extend(shuffled);
    args.extend(["-o", out.to_str().unwrap()]);
    pat.ok(&args, "", NOV);
    assert_eq!(std::fs::read(&out).unwrap(), content(2_500_000, 4));

    // A missing part is named.
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            parts[0].to_str().unwrap(),
            parts[2].to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 7);
    assert!(
        run.stderr.contains("part 2 of 3 is missing"),
        "{}",
        run.stderr
    );

    // A part of another file is named.
    let other_base = dir.path().join("other.medcrypt");
    let other = encrypt(
        &doc,
        &["alice"],
        &input,
        &["-o", other_base.to_str().unwrap(), "--part-size", "1M"],
    );
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            parts[0].to_str().unwrap(),
            other[1].to_str().unwrap(),
            parts[2].to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 7);
    assert!(
        run.stderr.contains("is a part of another attachment"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(other[1].file_name().unwrap().to_str().unwrap()),
        "{}",
        run.stderr
    );
}

#[test]
fn a_damaged_part_header_is_named_not_taken_for_a_whole_file() {
    // Reported: index 0 or part version 3 read as "a whole attachment and
    // parts were given together" (exit 2). Each has its own name now
    // (wire-spec 10.5), and nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let input = dir.path().join("echo.mp4");
    std::fs::write(&input, content(1_500_000, 9)).unwrap();
    let base = dir.path().join("echo.medcrypt");
    let parts = encrypt(
        &doc,
        &["alice"],
        &input,
        &["-o", base.to_str().unwrap(), "--part-size", "1M"],
    );
    assert_eq!(parts.len(), 2);
    let out = dir.path().join("echo-out.mp4");
    let edited = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = std::fs::read(&parts[1]).unwrap();
        edit(&mut bytes);
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let zero = edited("index0.medcrypt", &|b| b[26..28].copy_from_slice(&[0, 0]));
    let v3 = edited("v3.medcrypt", &|b| b[9] = 3);
    let over = edited("over.medcrypt", &|b| b[26..28].copy_from_slice(&[0, 9]));
    for (bad, code, name) in [
        (&zero, 7, "part_index_invalid"),
        (&v3, 7, "unsupported_part_version"),
        (&over, 7, "part_index_invalid"),
        (&parts[0], 2, "duplicate_part"),
    ] {
        let run = pat.run_at(
            &[
                "attach",
                "decrypt",
                parts[0].to_str().unwrap(),
                bad.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            "",
            NOV,
        );
        assert_eq!(run.code, code, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(name), "{name}: {}", run.stderr);
        assert!(!run.stderr.contains("given together"), "{}", run.stderr);
        assert!(!out.exists(), "{name}: output written");
    }
    // A whole file among parts is a usage error, named as such.
    let whole = dir.path().join("whole.medcrypt");
    encrypt(&doc, &["alice"], &input, &["-o", whole.to_str().unwrap()]);
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            parts[0].to_str().unwrap(),
            whole.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("mixed_inputs"), "{}", run.stderr);
}

#[test]
fn damaged_files_fail_with_their_own_error_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let input = dir.path().join("mri.dcm");
    std::fs::write(&input, content(5 * CHUNK, 1)).unwrap();
    let encrypted = dir.path().join("mri.medcrypt");
    encrypt(
        &doc,
        &["alice"],
        &input,
        &["-o", encrypted.to_str().unwrap()],
    );
    let good = std::fs::read(&encrypted).unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let header = 22 + 65 + 32; // format 3, one recipient
    let sealed = CHUNK + 16;

    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        (
            "truncated",
            good[..good.len() - 1000].to_vec(),
            7,
            "truncated",
        ),
        (
            "cut-at-chunk",
            good[..header + 3 * sealed].to_vec(),
            7,
            "truncated",
        ),
        (
            "appended",
            [good.clone(), b"more".to_vec()].concat(),
            3,
            "appended",
        ),
        (
            "altered",
            {
                let mut b = good.clone();
                b[header + 2 * sealed + 100] ^= 0x20;
                b
            },
            3,
            "chunk 2 (counting from 0) was altered",
        ),
        (
            "reordered",
            {
                let mut b = good[..header].to_vec();
                for i in [0, 2, 1, 3, 4] {
                    b.extend_from_slice(&good[header + i * sealed..header + (i + 1) * sealed]);
                }
                b.extend_from_slice(&good[header + 5 * sealed..]);
                b
            },
            3,
            "out of order",
        ),
        (
            "duplicated",
            {
                let mut b = good[..header + 2 * sealed].to_vec();
                b.extend_from_slice(&good[header + sealed..]);
                b
            },
            3,
            "is a copy of chunk 1",
        ),
        (
            "not-encrypted",
            b"%PDF-1.7 plain".to_vec(),
            7,
            "not a MedCrypt attachment",
        ),
    ];
    for (name, bytes, code, message) in cases {
        let path = dir.path().join(format!("{name}.medcrypt"));
        std::fs::write(&path, bytes).unwrap();
        let run = pat.run_full(
            Some(&inbox),
            &["attach", "decrypt", path.to_str().unwrap()],
            "",
            NOV,
            common::PASSPHRASE,
        );
        assert_eq!(run.code, code, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{name}: {}", run.stderr);
        assert!(run.stderr.contains("hint:"), "{name}");
        assert!(
            common::files_in(&inbox).is_empty(),
            "{name} left {:?}",
            common::files_in(&inbox)
        );
    }
    let audit = pat.ok(
        &["audit", "show", "--action", "attach_decrypt_failed"],
        "",
        NOV,
    );
    for kind in [
        "kind=truncated",
        "kind=appended_data",
        "kind=chunk_modified",
        "kind=reordered",
        "kind=duplicated",
    ] {
        assert!(audit.contains(kind), "{kind} not audited: {audit}");
    }
}

#[test]
fn expired_attachment_names_the_destruction_date() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let input = dir.path().join("x.txt");
    std::fs::write(&input, b"november").unwrap();
    let encrypted = dir.path().join("x.medcrypt");
    encrypt(
        &doc,
        &["alice"],
        &input,
        &["-o", encrypted.to_str().unwrap()],
    );
    let run = pat.run_at(
        &["attach", "decrypt", encrypted.to_str().unwrap()],
        "",
        "2026-12-09T09:00:00Z",
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("destroyed on 2026-12-08"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_armoured_file_is_text_and_decrypts_like_the_binary_one() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = paired(dir.path());
    let input = dir.path().join("hemograma.pdf");
    std::fs::write(&input, content(300_000, 3)).unwrap();
    let armored = dir.path().join("hemograma.medcrypt.txt");
    encrypt(
        &doc,
        &["alice"],
        &input,
        &["-o", armored.to_str().unwrap(), "--armor"],
    );
    let text = std::fs::read_to_string(&armored).unwrap();
    assert!(
        text.starts_with("-----BEGIN MEDCRYPT FILE-----\n"),
        "{}",
        &text[..40]
    );
    assert!(text.ends_with("-----END MEDCRYPT FILE-----\n"));
    assert!(
        text.lines()
            .all(|l| l.len() <= 64 || l.starts_with("-----"))
    );
    let out = dir.path().join("out.pdf");
    pat.ok(
        &[
            "attach",
            "decrypt",
            armored.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(std::fs::read(&out).unwrap(), content(300_000, 3));
    // Cut in copying: truncated, nothing written.
    let cut = dir.path().join("cut.medcrypt.txt");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let out2 = dir.path().join("out2.pdf");
    let run = pat.run_at(
        &[
            "attach",
            "decrypt",
            cut.to_str().unwrap(),
            "-o",
            out2.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
    assert!(!out2.exists());
    // Parts may come in both forms at once (wire-spec 10.7): one armoured
    // by hand, one binary.
    let base = dir.path().join("split.medcrypt");
    let parts = encrypt(
        &doc,
        &["alice"],
        &input,
        &["-o", base.to_str().unwrap(), "--part-size", "200K"],
    );
    assert_eq!(parts.len(), 2);
    let armored_part = dir.path().join("part1.medcrypt.txt");
    std::fs::write(
        &armored_part,
        medcrypt::attachment::armor(&std::fs::read(&parts[0]).unwrap()),
    )
    .unwrap();
    let out3 = dir.path().join("out3.pdf");
    pat.ok(
        &[
            "attach",
            "decrypt",
            parts[1].to_str().unwrap(),
            armored_part.to_str().unwrap(),
            "-o",
            out3.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(std::fs::read(&out3).unwrap(), content(300_000, 3));
    // Armour and parts do not mix on the way out.
    let run = doc.run_at(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            input.to_str().unwrap(),
            "--armor",
            "--part-size",
            "1M",
        ],
        "",
        NOV,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}

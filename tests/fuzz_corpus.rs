//! Replays the fuzz targets' committed inputs (`fuzz/seeds/<target>/`,
//! and every input a fuzzer once crashed on, `fuzz/regressions/<target>/`)
//! through the same code the fuzz targets run, so that a crash found once
//! stays fixed in a plain `cargo test`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("wire", medcrypt::fuzzing::wire),
    ("legacy", medcrypt::fuzzing::legacy),
    ("attachment", medcrypt::fuzzing::attachment),
    ("attachment_sealed", medcrypt::fuzzing::attachment_sealed),
    ("parts", medcrypt::fuzzing::parts),
    ("share", medcrypt::fuzzing::share),
    ("codes", medcrypt::fuzzing::codes),
    ("audit_export", medcrypt::fuzzing::audit_export),
    ("qr_image", medcrypt::fuzzing::qr_image),
];

fn inputs(dir: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_committed_fuzz_input_runs_without_a_crash() {
    let mut total = 0;
    for (target, run) in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target} is empty");
        for dir in ["seeds", "regressions"] {
            for (name, bytes) in inputs(dir, target) {
                let outcome = std::panic::catch_unwind(|| run(&bytes));
                assert!(outcome.is_ok(), "fuzz/{dir}/{target}/{name} crashes");
                total += 1;
            }
        }
    }
    assert!(total >= TARGETS.len());
}

#[test]
fn the_seeds_reach_past_the_first_checks() {
    // Valid inputs, so that each target starts where the parsers behind
    // authentication are: the audit export seed verifies with the fuzz code.
    let seeds = medcrypt::fuzzing::seeds();
    let (_, export) = seeds.iter().find(|(t, _)| *t == "audit_export").unwrap();
    let code = medcrypt::codes::VerificationCode {
        key: medcrypt::audit::SealingKey::from_bytes(20_000, &[0x33; 32]),
        store_id: None,
    };
    let verified = medcrypt::audit::verify_export(export, &code, None).unwrap();
    assert_eq!(verified.report.entries, 3);
    assert!(verified.report.seals >= 1);
    for (target, _) in TARGETS {
        assert!(
            seeds.iter().any(|(t, _)| t == target),
            "no seed for {target}"
        );
    }
}

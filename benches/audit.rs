//! Audit log throughput: durable appends and verification.
//!
//! `cargo bench --bench audit`. References measured in the same run:
//! `reference/sqlite_durable_insert` is a bare one-row transaction on the
//! same kind of file (WAL, synchronous=FULL): the fsync floor an append
//! cannot beat; `reference/hmac_only_100k` is HMAC-SHA256 alone over the
//! same 100,000 records, the floor of MAC verification.

// Bench code: a failed unwrap is a failed bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use medcrypt::audit::{AuditEvent, Sealer, SealingKey, Trust, day_of, verify};
use medcrypt::store::Store;
use secrecy::SecretString;
use sha2::Sha256;

/// An instant from RFC 3339 text.
fn utc(text: &str) -> DateTime<Utc> {
    medcrypt::parse_utc(text).unwrap_or(DateTime::UNIX_EPOCH)
}

const RECORDS: u64 = 100_000;

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let now = utc("2026-11-22T10:00:00Z");
    let (store, _, _) = Store::create(
        &dir.path().join("bench.sqlite"),
        &SecretString::from("bench passphrase".to_owned()),
        "Dr. Bench",
        medcrypt::store::Retention::KeyLifetime,
        now,
    )
    .unwrap();
    let details = [
        ("epoch", "2026-11".to_owned()),
        ("sequence", "42".to_owned()),
    ];

    let reference = rusqlite::Connection::open(dir.path().join("reference.sqlite")).unwrap();
    reference
        .pragma_update(None, "journal_mode", "WAL")
        .unwrap();
    reference
        .pragma_update(None, "synchronous", "FULL")
        .unwrap();
    reference
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();

    let mut group = c.benchmark_group("audit_append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("durable_single_entry", |b| {
        b.iter(|| {
            store
                .audit(now, "encrypt", "alice", "ok", &details)
                .unwrap()
        })
    });
    group.bench_function("reference/sqlite_durable_insert", |b| {
        b.iter(|| {
            reference
                .execute("INSERT INTO t (body) VALUES (?1)", [vec![0u8; 200]])
                .unwrap()
        })
    });
    group.finish();
}

fn bench_verify(c: &mut Criterion) {
    let start = utc("2026-11-01T00:00:00Z");
    let enc = [5u8; 32];
    let verification = SealingKey::generate(day_of(start));
    let mut sealer = Sealer::new(
        &enc,
        SealingKey::from_bytes(verification.day(), verification.expose_bytes()),
        0,
        [0; 32],
    );
    let mut records = Vec::new();
    let mut i = 0u64;
    while (records.len() as u64) < RECORDS {
        // 20 days of traffic, so day seals and key steps are part of it.
        let at = start + chrono::TimeDelta::seconds((i * 17) as i64);
        let event = AuditEvent {
            time: medcrypt::format_utc(at),
            actor: "Dr. Bench".into(),
            action: "decrypt".into(),
            subject: "alice".into(),
            outcome: "ok".into(),
            details: BTreeMap::from([("sequence".into(), i.to_string())]),
        };
        records.extend(sealer.append(&event, at));
        i += 1;
    }
    // Not truncated: the log must end at the sealer's head.
    let head = sealer.head();

    let mut group = c.benchmark_group("audit_verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("100k_with_code_macs_and_bodies", |b| {
        b.iter(|| {
            let report = verify(
                black_box(&records),
                Trust::VerificationKey(&verification),
                Some(&enc),
                &head,
                None,
            )
            .unwrap();
            black_box(report);
        })
    });
    group.bench_function("reference/hmac_only_100k", |b| {
        b.iter(|| {
            for r in &records {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[1u8; 32]).unwrap();
                mac.update(&r.body);
                black_box(mac.finalize());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_verify);
criterion_main!(benches);

//! v2 message and key-schedule throughput.
//!
//! `cargo bench --bench wire`. The `reference/raw_aes_gcm_1KiB` case seals
//! and opens the same 1 KiB with bare AES-256-GCM in the same run, so the
//! cost of MedCrypt's framing (HKDF per message, checksum, base64, padding)
//! can be read as a ratio against it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use chrono::{DateTime, Utc};
use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use medcrypt::{Direction, EpochChain, PairingSecret, Payload, Role, WireMessage};

/// An instant from RFC 3339 text.
fn utc(text: &str) -> DateTime<Utc> {
    medcrypt::parse_utc(text).unwrap_or(DateTime::UNIX_EPOCH)
}

fn bench_wire(c: &mut Criterion) {
    let now = utc("2026-11-22T10:00:00Z");
    let chain = EpochChain::new(
        PairingSecret::from_bytes(&[7; 32]).first_epoch_key("2026-11".parse().unwrap()),
    );
    let key = chain
        .key_for("2026-11".parse().unwrap())
        .unwrap()
        .into_owned();
    let text = "a".repeat(1024);
    let payload = Payload::Text(text.clone());

    let mut group = c.benchmark_group("v2");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal_and_open_1KiB", |b| {
        b.iter(|| {
            let wire = WireMessage::seal(&key, Direction::PhysicianToPatient, 1, &payload)
                .unwrap()
                .to_text();
            let opened = WireMessage::parse(black_box(&wire))
                .unwrap()
                .open(&chain, Role::Patient, now)
                .unwrap();
            black_box(opened);
        })
    });
    group.bench_function("epoch_step", |b| b.iter(|| black_box(key.next())));
    group.finish();

    let mut reference = c.benchmark_group("reference");
    reference.throughput(Throughput::Elements(1));
    let cipher = Aes256Gcm::new(&[7u8; 32].into());
    reference.bench_function("raw_aes_gcm_1KiB", |b| {
        b.iter(|| {
            let nonce = Nonce::from_slice(&[1u8; 12]);
            let sealed = cipher.encrypt(nonce, text.as_bytes()).unwrap();
            black_box(cipher.decrypt(nonce, black_box(sealed.as_slice())).unwrap());
        })
    });
    reference.finish();
}

criterion_group!(benches, bench_wire);
criterion_main!(benches);

//! Inbound messages processed per second by the Telegram agent against the
//! fake Bot API: each one fetched by getUpdates, decrypted, stored in the
//! encrypted inbox with its replay record, audit entry and update offset in
//! one durable transaction, and its acknowledgement queued.
//!
//! `cargo bench --bench agent`. The reference, measured in the same run, is
//! the same store work done directly, without HTTP: the floor the agent
//! cannot beat. Acknowledgements leave at Telegram's own pace (the Throttle
//! adaptor), in the background.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use medcrypt::agent::telegram::fake::FakeTelegram;
use medcrypt::store::{Incoming, IncomingContent, Store, Via};
use medcrypt::{Epoch, PairingSecret, Payload, Role, WireMessage};
use secrecy::SecretString;

/// An instant from RFC 3339 text.
fn utc(text: &str) -> DateTime<Utc> {
    medcrypt::parse_utc(text).unwrap_or(DateTime::UNIX_EPOCH)
}

const MESSAGES: usize = 2000;
const CHATS: i64 = 20;
static NOW: AtomicI64 = AtomicI64::new(0);

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap()
}

fn physician(path: &std::path::Path) -> (Store, Vec<String>) {
    let (store, _, _) = Store::create(
        path,
        &SecretString::from("bench passphrase".to_owned()),
        "Dr. Bench",
        medcrypt::store::Retention::KeyLifetime,
        now(),
    )
    .unwrap();
    let epoch = Epoch::containing(now());
    let mut messages = Vec::new();
    for chat in 0..CHATS {
        let secret = PairingSecret::generate();
        let alias = format!("p{chat}");
        store
            .add_pairing(
                &alias,
                Role::Physician,
                "",
                &secret.first_epoch_key(epoch),
                &secret.pairing_token(),
                &secret.safety_number(epoch),
                None,
                now(),
            )
            .unwrap();
        let pairing = store.pairing(&alias).unwrap();
        store
            .bind_chat(&pairing, "telegram", &(1000 + chat).to_string(), now())
            .unwrap();
        let key = secret.first_epoch_key(epoch);
        for i in 0..MESSAGES / CHATS as usize {
            let text = format!("home reading {i}: 120/80, pulse 64, weight 71.2 kg");
            let wire = WireMessage::seal(
                &key,
                Role::Patient.outbound(),
                i as u32 + 1,
                &Payload::Text(text),
            )
            .unwrap();
            messages.push(format!("{chat}|{}", wire.to_text()));
        }
    }
    (store, messages)
}

fn main() {
    NOW.store(utc("2026-11-20T09:00:00Z").timestamp(), Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();

    // Reference: the store work alone.
    let (store, messages) = physician(&dir.path().join("reference.sqlite"));
    let started = Instant::now();
    for line in &messages {
        let (chat, wire) = line.split_once('|').unwrap();
        let pairing = store.pairing(&format!("p{chat}")).unwrap();
        let chain = store.chain(&pairing).unwrap();
        let opened = WireMessage::parse(wire)
            .unwrap()
            .open(&chain, Role::Physician, now())
            .unwrap();
        let Payload::Text(text) = opened.payload;
        store
            .transaction(|| {
                store.receive(
                    &pairing,
                    Incoming {
                        via: Via::Agent,
                        replay: Some(opened.replay_id),
                        epoch: Some(opened.replay_id.epoch),
                        identity: wire.as_bytes().to_vec(),
                        content: IncomingContent::Text(&text),
                    },
                    now(),
                )?;
                store.set_agent_value("telegram.offset", "1")
            })
            .unwrap();
    }
    let reference = started.elapsed();

    // The agent, over HTTP on loopback.
    let (store, messages) = physician(&dir.path().join("agent.sqlite"));
    drop(store);
    let fake = FakeTelegram::start("1:BENCH", "bench_bot").unwrap();
    for line in &messages {
        let (chat, wire) = line.split_once('|').unwrap();
        fake.user_sends_text(1000 + chat.parse::<i64>().unwrap(), wire);
    }
    let path = dir.path().join("agent.sqlite");
    let url = fake.url();
    std::thread::spawn(move || {
        let store = Store::open(
            &path,
            &SecretString::from("bench passphrase".to_owned()),
            now(),
        )
        .unwrap();
        let options = medcrypt::agent::telegram::Options {
            token: "1:BENCH".into(),
            api_url: Some(url),
            poll_timeout: 1,
            keep_plaintext: false,
            show_owner_link: false,
            tick: Duration::from_secs(3600),
            run_for: Some(Duration::from_secs(600)),
        };
        medcrypt::agent::telegram::run(
            &medcrypt::session::Session::from_store(store, medcrypt::session::Clock::from_fn(now)),
            &options,
        )
        .unwrap();
    });
    while fake.requests("getUpdates") == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    while fake.unconfirmed_updates() > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The last batch is confirmed by the next poll, after it was stored.
    let agent = started.elapsed();
    let check = Store::open(
        &dir.path().join("agent.sqlite"),
        &SecretString::from("bench passphrase".to_owned()),
        now(),
    )
    .unwrap();
    let stored = check.history(None, 0).unwrap().len();
    assert_eq!(stored, MESSAGES, "every message stored once");

    let rate = |d: Duration| MESSAGES as f64 / d.as_secs_f64();
    println!(
        "inbound messages: {MESSAGES} from {CHATS} chats, each decrypted, stored durably, audited"
    );
    println!(
        "agent over the fake Bot API:   {:>8.0} messages/s ({:.2} s)",
        rate(agent),
        agent.as_secs_f64()
    );
    println!(
        "reference, store work alone:   {:>8.0} messages/s ({:.2} s)",
        rate(reference),
        reference.as_secs_f64()
    );
    println!(
        "agent / reference:              {:>8.2}",
        rate(agent) / rate(reference)
    );
    println!("goal: >= 300 messages/s (10x Telegram's 30 messages/s bot limit)");
}

//! Inbound messages processed per second by each agent against its fake
//! messenger API:
//! - Telegram: each message fetched by getUpdates, decrypted, stored in the
//!   encrypted inbox with its replay record, audit entry and update offset in
//!   one durable transaction, and its acknowledgement queued (they leave at
//!   Telegram's own pace, the Throttle adaptor, in the background);
//! - WhatsApp: each message a signed webhook POST (one message each, as
//!   Meta sends them one by one), its signature verified, the event stored
//!   durably and answered 200, then decrypted, stored, audited and marked
//!   read (the acknowledgement): counted when the read receipt reached the
//!   fake.
//!
//! `cargo bench --bench agent`. The reference, measured in the same run, is
//! the same store work done directly, without HTTP: the floor an agent
//! cannot beat.

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

fn physician(path: &std::path::Path, transport: &str) -> (Store, Vec<String>) {
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
            .bind_chat(&pairing, transport, &user(transport, chat), now())
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

/// The chat (Telegram) or user (WhatsApp) id of pairing `chat`.
fn user(transport: &str, chat: i64) -> String {
    match transport {
        "telegram" => (1000 + chat).to_string(),
        _ => format!("3460000{chat:04}"),
    }
}

fn main() {
    NOW.store(utc("2026-11-20T09:00:00Z").timestamp(), Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();

    // Reference: the store work alone.
    let (store, messages) = physician(&dir.path().join("reference.sqlite"), "telegram");
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
    let (store, messages) = physician(&dir.path().join("agent.sqlite"), "telegram");
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

    let whatsapp = whatsapp(dir.path());

    let rate = |d: Duration| MESSAGES as f64 / d.as_secs_f64();
    println!(
        "inbound messages: {MESSAGES} from {CHATS} chats, each decrypted, stored durably, audited"
    );
    println!(
        "Telegram agent over the fake Bot API:      {:>8.0} messages/s ({:.2} s)",
        rate(agent),
        agent.as_secs_f64()
    );
    println!(
        "WhatsApp agent over signed webhooks:       {:>8.0} messages/s ({:.2} s)",
        rate(whatsapp),
        whatsapp.as_secs_f64()
    );
    println!(
        "reference, store work alone:               {:>8.0} messages/s ({:.2} s)",
        rate(reference),
        reference.as_secs_f64()
    );
    println!(
        "Telegram agent / reference:                {:>8.2}",
        rate(agent) / rate(reference)
    );
    println!(
        "WhatsApp agent / reference:                {:>8.2}",
        rate(whatsapp) / rate(reference)
    );
    println!(
        "goal: >= 300 messages/s (Telegram allows bots 30 messages/s; the Cloud API's default is 80 per number)"
    );
}

/// The WhatsApp agent: every message a signed webhook from the fake,
/// until every one was marked read.
fn whatsapp(dir: &std::path::Path) -> Duration {
    use medcrypt::agent::whatsapp::fake::FakeWhatsApp;
    let path = dir.join("whatsapp.sqlite");
    let (store, messages) = physician(&path, "whatsapp");
    drop(store);
    let fake = FakeWhatsApp::start("BENCH-TOKEN", "bench-secret", "1234").unwrap();
    // A free port for the agent (it prints its URL, but runs in-process here).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = fake.url();
    std::thread::spawn(move || {
        let store = Store::open(
            &path,
            &SecretString::from("bench passphrase".to_owned()),
            now(),
        )
        .unwrap();
        let options = medcrypt::agent::whatsapp::Options {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            tls: None,
            api_url: api,
            token: "BENCH-TOKEN".to_owned().into(),
            app_secret: "bench-secret".to_owned().into(),
            verify_token: "v".to_owned().into(),
            phone_number_id: "1234".into(),
            template: None,
            poll: Duration::from_secs(1),
            tick: Duration::from_secs(3600),
            run_for: Some(Duration::from_secs(600)),
        };
        medcrypt::agent::whatsapp::run(
            &medcrypt::session::Session::from_store(store, medcrypt::session::Clock::from_fn(now)),
            &options,
        )
        .unwrap();
    });
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }
    fake.set_now(now());
    fake.set_webhook(&format!("http://127.0.0.1:{port}/webhook"));
    let started = Instant::now();
    for line in &messages {
        let (chat, wire) = line.split_once('|').unwrap();
        fake.user_sends_text(&user("whatsapp", chat.parse().unwrap()), wire);
    }
    let read = || fake.sent().iter().filter(|s| s.kind == "read").count();
    while read() < MESSAGES {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let check = Store::open(
        &dir.join("whatsapp.sqlite"),
        &SecretString::from("bench passphrase".to_owned()),
        now(),
    )
    .unwrap();
    assert_eq!(
        check.history(None, 0).unwrap().len(),
        MESSAGES,
        "every message stored once"
    );
    assert!(
        fake.deliveries().iter().all(|s| *s == 200),
        "a webhook was refused"
    );
    elapsed
}

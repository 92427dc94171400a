//! MedCrypt end to end, with no Telegram or WhatsApp account: a fake Bot
//! API and a fake WhatsApp Cloud API on 127.0.0.1, a physician's store and
//! agents, patients' stores; pairing through a QR PNG; messages and a file
//! both ways on Telegram, a message both ways on WhatsApp (signed
//! webhooks); a month boundary, until the old key is destroyed.
//!
//! `cargo run --example walkthrough`

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use medcrypt::agent::telegram::fake::FakeTelegram;
use medcrypt::agent::whatsapp::fake::FakeWhatsApp;
use medcrypt::attachment::{Header, Metadata, Recipient, Sealing};
use medcrypt::codes::PairingInvite;
use medcrypt::store::{HistoryContent, OutboxKind, Retention, Store};
use medcrypt::{Epoch, PairingSecret, Payload, Role, WireMessage, format_utc, qr};
use secrecy::SecretString;

/// An instant from RFC 3339 text.
fn utc(text: &str) -> DateTime<Utc> {
    medcrypt::parse_utc(text).unwrap_or(DateTime::UNIX_EPOCH)
}

type Error = Box<dyn std::error::Error>;

const TOKEN: &str = "4242:WALKTHROUGH";
const PATIENT_CHAT: i64 = 7001;

/// The demonstration's clock, moved forward step by step.
static NOW: AtomicI64 = AtomicI64::new(0);

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW.load(Ordering::SeqCst), 0).unwrap_or(DateTime::UNIX_EPOCH)
}

fn set_now(at: DateTime<Utc>) {
    NOW.store(at.timestamp(), Ordering::SeqCst);
}

fn step(title: &str) {
    println!("\n── {title} ──");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<(), Error> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs the physician's agent in the background for `seconds`.
fn agent(store_path: std::path::PathBuf, url: String, seconds: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let passphrase = SecretString::from("physician passphrase".to_owned());
        let Ok(store) = Store::open(&store_path, &passphrase, now()) else {
            return;
        };
        let options = medcrypt::agent::telegram::Options {
            token: TOKEN.into(),
            api_url: Some(url),
            poll_timeout: 1,
            keep_plaintext: false,
            show_owner_link: false,
            tick: Duration::from_millis(300),
            run_for: Some(Duration::from_secs(seconds)),
        };
        if let Err(err) = medcrypt::agent::telegram::run(
            &medcrypt::session::Session::from_store(store, medcrypt::session::Clock::from_fn(now)),
            &options,
        ) {
            eprintln!("agent: {err}");
        }
    })
}

fn patient_sends(patient: &Store, fake: &FakeTelegram, text: &str) -> Result<String, Error> {
    let pairing = patient.pairing("dr-silva")?;
    let epoch = Epoch::containing(now());
    patient.rotate(now())?;
    let chain = patient.chain(&pairing)?;
    let key = chain.key_for(epoch).ok_or("no key")?;
    let sequence = patient.next_sequence(&pairing, epoch, Role::Patient.outbound(), now())?;
    let wire = WireMessage::seal(
        &key,
        Role::Patient.outbound(),
        sequence,
        &Payload::Text(text.into()),
    )?
    .to_text();
    fake.user_sends_text(PATIENT_CHAT, &wire);
    Ok(wire)
}

/// Records the pairing of `invite` on one side: the physician's (the
/// patient's name is the alias) or the patient's (with the physician's
/// name from the invitation).
fn record_pairing(
    store: &Store,
    alias: &str,
    role: Role,
    invite: &PairingInvite,
) -> Result<(), Error> {
    let peer_name = match role {
        Role::Patient => invite.physician_name.as_str(),
        Role::Physician => "",
    };
    store.add_pairing(
        alias,
        role,
        peer_name,
        &invite.secret.first_epoch_key(invite.start),
        &invite.secret.pairing_token(),
        &invite.secret.safety_number(invite.start),
        invite.expires,
        now(),
    )?;
    Ok(())
}

/// Step 5: a second patient on WhatsApp. The agent is a webhook server;
/// the fake Cloud API signs and delivers each message to it.
fn whatsapp(
    dir: &std::path::Path,
    physician: &Store,
    doc_path: &std::path::Path,
) -> Result<(), Error> {
    step("5. The same over WhatsApp: a webhook on the physician's machine");
    const USER: &str = "34611222333";
    let fake = FakeWhatsApp::start("EAAG-WALKTHROUGH", "app-secret", "106540352242922")?;
    println!(
        "a fake WhatsApp Cloud API runs at {} (loopback only)",
        fake.url()
    );
    physician.set_setting("whatsapp_number", "+34 600 000 000", now())?;
    let secret = PairingSecret::generate();
    let start = Epoch::containing(now());
    let invite = PairingInvite {
        secret,
        start,
        physician_name: "Dr. Ana Silva".into(),
        telegram_bot: None,
        whatsapp_number: physician.setting("whatsapp_number")?,
        expires: Some(now() + chrono::Duration::hours(24)),
    };
    record_pairing(physician, "bob", Role::Physician, &invite)?;
    let scanned = PairingInvite::from_uri(&qr::decode_image(&qr::render_png(&invite.to_uri())?)?)?;
    let bob = Store::create(
        &dir.join("patient-bob.sqlite"),
        &SecretString::from("bob passphrase".to_owned()),
        "",
        Retention::KeyLifetime,
        now(),
    )?
    .0;
    record_pairing(&bob, "dr-silva", Role::Patient, &scanned)?;
    let token = scanned.secret.pairing_token();
    let link = token.whatsapp_link(scanned.whatsapp_number.as_deref().unwrap_or_default());
    println!("the QR carries the practice's number; the patient opens {link}");
    drop(scanned);
    drop(invite);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let store_path = doc_path.to_owned();
    let api = fake.url();
    let agent = std::thread::spawn(move || {
        let passphrase = SecretString::from("physician passphrase".to_owned());
        let Ok(store) = Store::open(&store_path, &passphrase, now()) else {
            return;
        };
        let options = medcrypt::agent::whatsapp::Options {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            tls: None,
            api_url: api,
            token: "EAAG-WALKTHROUGH".to_owned().into(),
            app_secret: "app-secret".to_owned().into(),
            verify_token: "verify".to_owned().into(),
            phone_number_id: "106540352242922".into(),
            template: None,
            poll: Duration::from_millis(200),
            tick: Duration::from_secs(60),
            run_for: Some(Duration::from_secs(5)),
        };
        if let Err(err) = medcrypt::agent::whatsapp::run(
            &medcrypt::session::Session::from_store(store, medcrypt::session::Clock::from_fn(now)),
            &options,
        ) {
            eprintln!("agent: {err}");
        }
    });
    wait_for("the webhook server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    fake.set_now(now());
    fake.set_webhook(&format!("http://127.0.0.1:{port}/webhook"));
    println!(
        "patient → WhatsApp (prefilled, sent once): {}",
        token.binding_text()
    );
    fake.user_sends_text(USER, &token.binding_text());
    wait_for("the binding", || {
        fake.sent().iter().any(|s| {
            s.text
                .as_deref()
                .is_some_and(|t| t.starts_with("Connected"))
        })
    })?;
    println!(
        "agent → patient: {}",
        fake.sent()
            .last()
            .and_then(|s| s.text.clone())
            .unwrap_or_default()
    );

    let dr = bob.pairing("dr-silva")?;
    let epoch = Epoch::containing(now());
    let key = bob.chain(&dr)?.key_for(epoch).ok_or("no key")?.into_owned();
    let sequence = bob.next_sequence(&dr, epoch, Role::Patient.outbound(), now())?;
    let wire = WireMessage::seal(
        &key,
        Role::Patient.outbound(),
        sequence,
        &Payload::Text("The rash is gone.".into()),
    )?
    .to_text();
    fake.user_sends_text(USER, &wire);
    println!(
        "patient → WhatsApp: {}… (a signed webhook to the agent)",
        &wire[..40]
    );
    wait_for("the read receipt", || {
        fake.sent().iter().any(|s| s.kind == "read")
    })?;
    println!("agent → WhatsApp: marked read (the receipt; no text, no name)");
    let last = physician.history(Some(&physician.pairing("bob")?), 0)?;
    if let Some(HistoryContent::Text(text)) = last.last().map(|i| i.content.clone()) {
        println!("physician's inbox (bob): {text}");
    }

    let pairing = physician.pairing("bob")?;
    let key = physician
        .chain(&pairing)?
        .key_for(epoch)
        .ok_or("no key")?
        .into_owned();
    let sequence = physician.next_sequence(&pairing, epoch, Role::Physician.outbound(), now())?;
    let reply = WireMessage::seal(
        &key,
        Role::Physician.outbound(),
        sequence,
        &Payload::Text("Good. Stop the cream on Friday.".into()),
    )?;
    physician.outbox_queue(
        &pairing,
        OutboxKind::Text,
        reply.to_text().as_bytes(),
        now(),
    )?;
    wait_for("delivery", || {
        fake.sent().iter().any(|s| {
            s.kind == "text"
                && s.text
                    .as_deref()
                    .is_some_and(|t| t.starts_with("MEDCRYPT:v2:"))
        })
    })?;
    let delivered = fake
        .sent()
        .into_iter()
        .find_map(|s| s.text.filter(|t| t.starts_with("MEDCRYPT:v2:")))
        .unwrap_or_default();
    println!(
        "agent → WhatsApp (within the 24-hour window): {}…",
        &delivered[..40]
    );
    let opened = WireMessage::parse(&delivered)?.open(&bob.chain(&dr)?, Role::Patient, now())?;
    let Payload::Text(text) = opened.payload;
    println!("patient decrypts: {text}");
    agent.join().map_err(|_| "agent thread")?;
    Ok(())
}

fn main() -> Result<(), Error> {
    set_now(utc("2026-11-20T09:00:00Z"));
    let dir = std::env::temp_dir().join(format!("medcrypt-walkthrough-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let fake = FakeTelegram::start(TOKEN, "clinic_demo_bot")?;
    println!(
        "MedCrypt walkthrough. A fake Telegram Bot API runs at {} (loopback only).",
        fake.url()
    );
    println!("Working directory: {}", dir.display());

    step("1. The physician creates a store and starts the agent");
    let doc_path = dir.join("physician.sqlite");
    let (physician, recovery, _audit_code) = Store::create(
        &doc_path,
        &SecretString::from("physician passphrase".to_owned()),
        "Dr. Ana Silva",
        Retention::KeyLifetime,
        now(),
    )?;
    println!(
        "store created; recovery code shown once: {}…",
        &recovery.to_text()[..9]
    );
    agent(doc_path.clone(), fake.url(), 1)
        .join()
        .map_err(|_| "agent thread")?;
    println!(
        "the agent met the bot: @{}",
        physician.setting("telegram_bot")?.unwrap_or_default()
    );

    step("2. At the visit: pairing through a QR code");
    let secret = PairingSecret::generate();
    let start = Epoch::containing(now());
    let invite = PairingInvite {
        secret,
        start,
        physician_name: "Dr. Ana Silva".into(),
        telegram_bot: physician.setting("telegram_bot")?,
        whatsapp_number: None,
        expires: Some(now() + chrono::Duration::hours(24)),
    };
    let png_path = dir.join("pairing.png");
    std::fs::write(&png_path, qr::render_png(&invite.to_uri())?)?;
    record_pairing(&physician, "alice", Role::Physician, &invite)?;
    println!(
        "physician shows the QR code (written to {})",
        png_path.display()
    );
    let pat_path = dir.join("patient.sqlite");
    let (patient, _, _) = Store::create(
        &pat_path,
        &SecretString::from("patient passphrase".to_owned()),
        "",
        Retention::KeyLifetime,
        now(),
    )?;
    let scanned = PairingInvite::from_uri(&qr::decode_image(&std::fs::read(&png_path)?)?)?;
    record_pairing(&patient, "dr-silva", Role::Patient, &scanned)?;
    println!(
        "patient scanned it; both screens show the safety number {}",
        scanned.secret.safety_number(scanned.start)
    );
    let link = format!(
        "https://t.me/{}?start={}",
        scanned.telegram_bot.as_deref().unwrap_or("bot"),
        scanned.secret.pairing_token()
    );
    println!("the pairing secret is erased; the patient opens {link}");
    drop(invite);
    let token = scanned.secret.pairing_token().to_string();
    drop(scanned);

    let agent_thread = agent(doc_path.clone(), fake.url(), 6);
    fake.user_sends_text(PATIENT_CHAT, &format!("/start {token}"));
    wait_for("the binding", || {
        fake.sent().iter().any(|s| {
            s.text
                .as_deref()
                .is_some_and(|t| t.starts_with("Connected"))
        })
    })?;
    println!(
        "bot → patient: {}",
        fake.sent()
            .last()
            .and_then(|s| s.text.clone())
            .unwrap_or_default()
    );

    step("3. Messages both ways; Telegram sees only ciphertext");
    let wire = patient_sends(&patient, &fake, "My blood pressure this morning: 150/95.")?;
    println!("patient → chat: {}…", &wire[..60]);
    wait_for("the acknowledgement", || {
        fake.sent()
            .iter()
            .any(|s| s.text.as_deref().is_some_and(|t| t.starts_with("Received")))
    })?;
    println!(
        "bot → patient: {}",
        fake.sent()
            .last()
            .and_then(|s| s.text.clone())
            .unwrap_or_default()
    );
    for item in physician.history(None, 0)? {
        if let HistoryContent::Text(text) = item.content {
            println!("physician's inbox #{}: {text}", item.id);
        }
    }
    let alice = physician.pairing("alice")?;
    let chain = physician.chain(&alice)?;
    let key = chain.key_for(Epoch::containing(now())).ok_or("no key")?;
    let sequence = physician.next_sequence(
        &alice,
        Epoch::containing(now()),
        Role::Physician.outbound(),
        now(),
    )?;
    let reply = WireMessage::seal(
        &key,
        Role::Physician.outbound(),
        sequence,
        &Payload::Text("Please take 5 mg less from tomorrow.".into()),
    )?;
    physician.outbox_queue(&alice, OutboxKind::Text, reply.to_text().as_bytes(), now())?;
    wait_for("delivery", || {
        fake.sent().iter().any(|s| {
            s.text
                .as_deref()
                .is_some_and(|t| t.starts_with("MEDCRYPT:v2:"))
        })
    })?;
    let delivered = fake
        .sent()
        .into_iter()
        .rev()
        .find_map(|s| s.text.filter(|t| t.starts_with("MEDCRYPT:v2:")))
        .unwrap_or_default();
    println!("agent → chat: {}…", &delivered[..60]);
    let dr = patient.pairing("dr-silva")?;
    let opened =
        WireMessage::parse(&delivered)?.open(&patient.chain(&dr)?, Role::Patient, now())?;
    let Payload::Text(text) = opened.payload;
    println!("patient decrypts: {text}");

    step("4. An attachment: a lab PDF, encrypted with its name inside");
    let content = b"%PDF-1.7 ... potassium 4.1 mmol/L ...".to_vec();
    let metadata = Metadata {
        name: "labs-2026-11.pdf".into(),
        mime: "application/pdf".into(),
        size: content.len() as u64,
    };
    let key = patient
        .chain(&dr)?
        .key_for(Epoch::containing(now()))
        .ok_or("no key")?
        .into_owned();
    let sealing = Sealing::new(
        &metadata,
        &[Recipient {
            key,
            direction: Role::Patient.outbound(),
        }],
    )?;
    let mut file = Vec::new();
    sealing.write(&content[..], &mut file, &mut |_| {})?;
    fake.user_sends_document(PATIENT_CHAT, "attachment.medcrypt", &file);
    wait_for("the file", || {
        physician.history(None, 1).is_ok_and(|i| !i.is_empty())
    })?;
    for item in physician.history(None, 1)? {
        if let HistoryContent::File { metadata: meta, .. } = item.content {
            println!(
                "physician's inbox #{}: file {} ({} bytes, {})",
                item.id, meta.name, meta.size, meta.mime
            );
        }
    }
    let mut input = std::io::BufReader::new(&file[..]);
    let header = Header::read(&mut input)?;
    println!(
        "from outside the file is {} bytes, month {}; nothing else shows",
        file.len(),
        header.epoch()
    );
    agent_thread.join().map_err(|_| "agent thread")?;

    whatsapp(&dir, &physician, &doc_path)?;

    step("6. A month boundary: the November key lives 7 days into December");
    let _ = wire;
    let november_message = delivered;
    for (label, at) in [
        ("5 December", utc("2026-12-05T09:00:00Z")),
        ("9 December", utc("2026-12-09T09:00:00Z")),
    ] {
        set_now(at);
        for rotation in patient.rotate(now())? {
            for epoch in &rotation.advance.derived {
                println!("{label}: patient's key ratcheted forward to {epoch}");
            }
            for epoch in &rotation.advance.destroyed {
                println!(
                    "{label}: patient destroyed the key of {epoch} (after {})",
                    format_utc(epoch.destruction_time())
                );
            }
        }
        // The patient opens the physician's November message again.
        match WireMessage::parse(&november_message)?.open(
            &patient.chain(&dr)?,
            Role::Patient,
            now(),
        ) {
            Ok(_) => {
                println!("{label}: the physician's November message still decrypts (grace period)")
            }
            Err(err) => println!("{label}: the physician's November message: {err}"),
        }
    }
    agent(doc_path.clone(), fake.url(), 2)
        .join()
        .map_err(|_| "agent thread")?;
    println!(
        "the agent's tick ran on 9 December: {}",
        physician
            .audit_events()?
            .iter()
            .filter_map(|(_, e)| e.as_ref())
            .filter(|e| e.action == "key_shred")
            .map(|e| format!(
                "destroyed {} of {}",
                e.details.get("epoch").cloned().unwrap_or_default(),
                e.subject
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    step("7. The audit log verifies");
    let verdict = physician.audit_verify(None, None)?;
    match verdict {
        Ok(report) => println!(
            "{} records ({} entries, {} day seals), intact",
            report.records, report.entries, report.seals
        ),
        Err(fault) => println!("audit log: {fault}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\nDone. Real use: see README.md, \"Real use with Telegram\" and \"Real use with WhatsApp\"."
    );
    Ok(())
}

//! The WhatsApp agent, through the binary, against a fake Cloud API on
//! 127.0.0.1 that delivers signed webhooks: the verification handshake,
//! refused signatures, binding by the prefilled wa.me text, messages and
//! documents (binary and armoured) received once despite duplicated and
//! retried webhooks, kill -9 between storing and processing, sending
//! within and outside the 24-hour window, statuses, rate limits, a lost
//! answer and an expired token. Nothing here reaches the internet.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{NOV, PASSPHRASE, Party};
use medcrypt::agent::whatsapp::fake::{FakeWhatsApp, Faults, Sent, sign};

const TOKEN: &str = "EAAG-TEST-TOKEN";
const APP_SECRET: &str = "app-secret-for-tests";
const VERIFY: &str = "verify-me-please";
const PNID: &str = "106540352242922";
const PATIENT: &str = "34611222333";

struct Agent {
    child: Child,
    stdout: BufReader<ChildStdout>,
    url: String,
    stderr: PathBuf,
}

impl Agent {
    /// Starts the agent at `now`, reads its URL from the first line, and
    /// points the fake's webhooks at it.
    fn start_at(doc: &Party, fake: &FakeWhatsApp, now: &str, extra: &[&str]) -> Self {
        let stderr = doc.store.with_file_name(format!(
            "agent-{}.log",
            Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()) ^ rand_suffix()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
            .arg("--store")
            .arg(&doc.store)
            // Tests move the clock by days between runs.
            .arg("--yes")
            .args([
                "agent",
                "whatsapp",
                "--listen",
                "127.0.0.1:0",
                "--tick-seconds",
                "1",
                "--poll-millis",
                "200",
            ])
            .args(extra)
            .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
            .env("MEDCRYPT_NOW", now)
            .env("WHATSAPP_TOKEN", TOKEN)
            .env("WHATSAPP_APP_SECRET", APP_SECRET)
            .env("WHATSAPP_VERIFY_TOKEN", VERIFY)
            .env("WHATSAPP_PHONE_NUMBER_ID", PNID)
            .env("WHATSAPP_API_URL", fake.url())
            .env("RUST_LOG", "medcrypt=debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let url = first.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "first line is not the URL: {first:?} ({})",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        fake.set_webhook(&format!("{url}/webhook"));
        Self {
            child,
            stdout,
            url,
            stderr,
        }
    }

    fn start(doc: &Party, fake: &FakeWhatsApp) -> Self {
        Self::start_at(doc, fake, NOV, &[])
    }

    /// SIGTERM, then the agent must exit cleanly; returns stdout and stderr.
    fn stop(mut self) -> (String, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(
            status.success(),
            "agent failed ({status:?}): {rest}\n{stderr}"
        );
        assert!(rest.contains("agent stopped"), "{rest}");
        (rest, stderr)
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.url))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A failed test shows what the agent logged.
        if std::thread::panicking() {
            eprintln!(
                "--- agent log ---\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            let _ = self.child.kill();
        }
    }
}

fn rand_suffix() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u128::from(N.fetch_add(1, Ordering::SeqCst))
}

/// A plain HTTP/1.1 GET over a TCP socket (the tests need no HTTP client).
fn http_get(url: &str) -> (u16, String) {
    use std::io::Write;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn texts_to(fake: &FakeWhatsApp, user: &str) -> Vec<String> {
    fake.sent()
        .into_iter()
        .filter(|s| s.to == user && s.kind == "text")
        .filter_map(|s| s.text)
        .collect()
}

fn reads(fake: &FakeWhatsApp) -> usize {
    fake.sent().iter().filter(|s| s.kind == "read").count()
}

/// A physician with a WhatsApp number and pairing "alice", a patient paired
/// through the QR PNG, and the patient's WhatsApp bound by the prefilled
/// text of the wa.me link.
fn connected(dir: &Path, fake: &FakeWhatsApp) -> (Party, Party) {
    let doc = Party::new(dir, "physician");
    let pat = Party::new(dir, "patient");
    doc.ok(&["init", "--name", "Dr. Ana Silva"], "", NOV);
    doc.ok(
        &["config", "set", "whatsapp-number", "+34 600 000 000"],
        "",
        NOV,
    );
    pat.ok(&["init"], "", NOV);
    let (_, accepted) = common::pair_through_png(dir, &doc, &pat, "dr-silva", NOV);
    let link = common::line_after(&accepted, "To connect your WhatsApp chat");
    let text = link
        .strip_prefix("https://wa.me/34600000000?text=")
        .unwrap_or_else(|| panic!("a wa.me link to the practice: {link}"))
        .replace("%20", " ");
    assert!(text.starts_with("MEDCRYPT BIND "), "{text}");

    fake.set_now(common::utc(NOV));
    let agent = Agent::start(&doc, fake);
    fake.user_sends_text(PATIENT, &text);
    wait_until("binding", || {
        texts_to(fake, PATIENT)
            .iter()
            .any(|r| r.starts_with("Connected ✓"))
    });
    let list = doc.ok(&["pair", "list"], "", NOV);
    assert!(list.contains(&format!("whatsapp {PATIENT}")), "{list}");
    // The confirmation names no one.
    for reply in texts_to(fake, PATIENT) {
        assert!(!reply.contains("Silva"), "{reply}");
    }
    // Single use: the same text from another user is refused.
    fake.user_sends_text("34699999999", &text);
    wait_until("refusal", || {
        texts_to(fake, "34699999999")
            .iter()
            .any(|r| r.contains("not valid"))
    });
    agent.stop();
    (doc, pat)
}

fn encrypt_file(pat: &Party, dir: &Path, name: &str, bytes: &[u8], extra: &[&str]) -> Vec<u8> {
    let plain = dir.join(name);
    std::fs::write(&plain, bytes).unwrap();
    let enc = dir.join(format!("{name}.medcrypt"));
    let mut args = vec![
        "attach",
        "encrypt",
        "--to",
        "dr-silva",
        plain.to_str().unwrap(),
        "-o",
        enc.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pat.ok(&args, "", NOV);
    let bytes = std::fs::read(&enc).unwrap();
    std::fs::remove_file(&enc).unwrap();
    bytes
}

#[test]
fn handshake_signatures_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWhatsApp::start(TOKEN, APP_SECRET, PNID).unwrap();
    let doc = Party::init(dir.path(), "physician", &["--name", "Dr. Ana Silva"]);
    let agent = Agent::start(&doc, &fake);

    let ok = agent.get(&format!(
        "/webhook?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=1158201444"
    ));
    assert_eq!(ok, (200, "1158201444".to_owned()));
    for bad in [
        "/webhook?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "/webhook?hub.mode=unsubscribe&hub.verify_token=verify-me-please&hub.challenge=1",
        "/webhook?hub.challenge=1",
    ] {
        assert_eq!(agent.get(bad).0, 403, "{bad}");
    }
    assert_eq!(agent.get("/healthz"), (200, "ok\n".to_owned()));

    // A message with no signature, or a wrong one, is refused and nothing
    // in it is processed.
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"value":{{"metadata":{{"phone_number_id":"{PNID}"}},"contacts":[{{"wa_id":"34600111222"}}],"messages":[{{"from":"34600111222","id":"wamid.FORGED","timestamp":"1790000000","type":"text","text":{{"body":"hello"}}}}]}}}}]}}]}}"#
    );
    assert_eq!(fake.post_raw(body.as_bytes(), Some("")), 401);
    assert_eq!(
        fake.post_raw(
            body.as_bytes(),
            Some(&sign("another secret", body.as_bytes()))
        ),
        403
    );
    // Re-serialised JSON does not verify: the signature is over the raw bytes.
    let spaced = body.replace(':', ": ");
    assert_eq!(
        fake.post_raw(spaced.as_bytes(), Some(&sign(APP_SECRET, body.as_bytes()))),
        403
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        texts_to(&fake, "34600111222").is_empty(),
        "a refused webhook was processed"
    );
    // Signed, it is answered (instructions to a stranger).
    assert_eq!(fake.post_raw(body.as_bytes(), None), 200);
    wait_until("instructions", || {
        !texts_to(&fake, "34600111222").is_empty()
    });
    agent.stop();
}

#[test]
fn missing_settings_are_each_named() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::init(dir.path(), "physician", &["--name", "Dr. Ana Silva"]);
    let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["agent", "whatsapp"])
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("WHATSAPP_TOKEN", TOKEN)
        .env_remove("WHATSAPP_APP_SECRET")
        .env_remove("WHATSAPP_VERIFY_TOKEN")
        .env_remove("WHATSAPP_PHONE_NUMBER_ID")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for named in ["app secret", "verify token", "phone number id"] {
        assert!(stderr.contains(named), "{named} not named: {stderr}");
    }
    assert!(!stderr.contains("access token"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["agent", "whatsapp", "--token-file"])
        .arg(dir.path().join("nope"))
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An empty app secret would let anyone sign webhooks (an HMAC under an
    // empty key): refused, as is one too short to be Meta's.
    for (content, said) in [("\n", "is empty"), ("short\n", "too short")] {
        let secret = dir.path().join("app-secret");
        std::fs::write(&secret, content).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
            .arg("--store")
            .arg(&doc.store)
            .args(["agent", "whatsapp", "--app-secret-file"])
            .arg(&secret)
            .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
            .env("WHATSAPP_TOKEN", TOKEN)
            .env("WHATSAPP_VERIFY_TOKEN", VERIFY)
            .env("WHATSAPP_PHONE_NUMBER_ID", PNID)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{content:?} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(said),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !String::from_utf8_lossy(&out.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn messages_and_documents_arrive_once_despite_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWhatsApp::start(TOKEN, APP_SECRET, PNID).unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    fake.set_faults(Faults {
        duplicate_webhooks: true,
        statuses: true,
        ..Faults::default()
    });
    let agent = Agent::start(&doc, &fake);
    let reads_before = reads(&fake);

    let note = "My blood pressure this morning: 150/95.";
    let wire = pat.encrypt("dr-silva", note, NOV);
    let wamid = fake.user_sends_text(PATIENT, &wire);
    // The same webhook retried by Meta, late, signed again.
    let binary = encrypt_file(&pat, dir.path(), "rash.jpg", &[0xAB; 100_000], &[]);
    fake.user_sends_document(
        PATIENT,
        "rash.medcrypt",
        "application/octet-stream",
        &binary,
        None,
    );
    let armored = encrypt_file(&pat, dir.path(), "ecg.pdf", &[0x5A; 50_000], &["--armor"]);
    assert!(armored.starts_with(b"-----BEGIN MEDCRYPT"));
    fake.user_sends_document(PATIENT, "ecg.medcrypt.txt", "text/plain", &armored, None);
    wait_until("three read receipts", || reads(&fake) >= reads_before + 3);
    let sent = fake.sent();
    assert!(
        sent.iter()
            .any(|s| s.kind == "read" && s.text.as_deref() == Some(wamid.as_str())),
        "the message was not marked read"
    );
    // The physician's inbox has each once.
    let inbox = doc.ok(&["inbox"], "", NOV);
    assert_eq!(inbox.matches(note).count(), 1, "{inbox}");
    assert_eq!(inbox.matches("rash.jpg").count(), 1, "{inbox}");
    assert_eq!(inbox.matches("ecg.pdf").count(), 1, "{inbox}");
    // Duplicates were recognised silently, not reported as replays.
    assert!(
        !texts_to(&fake, PATIENT)
            .iter()
            .any(|r| r.contains("already received") || r.contains("repeats"))
    );
    assert!(
        fake.deliveries().iter().filter(|s| **s == 200).count() >= 6,
        "{:?}",
        fake.deliveries()
    );

    // Plaintext cannot be deleted on WhatsApp: the patient is warned, and
    // nothing of it is stored. A photo likewise.
    fake.user_sends_text(PATIENT, "Can I take ibuprofen?");
    fake.user_sends_image(PATIENT);
    wait_until("two warnings", || {
        let replies = texts_to(&fake, PATIENT);
        replies.iter().any(|r| r.contains("message in plain text"))
            && replies.iter().any(|r| r.contains("photo"))
    });
    assert!(
        texts_to(&fake, PATIENT)
            .iter()
            .any(|r| r.contains("delete") && r.contains("yourself"))
    );
    // A document with a caption: the file is received, the caption warned about.
    let third = encrypt_file(
        &pat,
        dir.path(),
        "note.txt",
        b"x-ray tomorrow",
        &["--armor"],
    );
    fake.user_sends_document(
        PATIENT,
        "n.medcrypt.txt",
        "text/plain",
        &third,
        Some("my x-ray"),
    );
    wait_until("caption warning", || {
        texts_to(&fake, PATIENT)
            .iter()
            .any(|r| r.contains("text written with the file"))
    });

    // Physician → patient, within the window: text and a file.
    let answer = "Please take 5 mg less from tomorrow.";
    doc.ok(&["send", "--to", "alice", answer], "", NOV);
    let report = dir.path().join("report.pdf");
    std::fs::write(&report, b"%PDF lab report").unwrap();
    doc.ok(
        &["send", "--to", "alice", "--file", report.to_str().unwrap()],
        "",
        NOV,
    );
    wait_until("delivery", || {
        fake.sent()
            .iter()
            .filter(|s| {
                s.to == PATIENT
                    && (s.kind == "document"
                        || s.text
                            .as_deref()
                            .is_some_and(|t| t.starts_with("MEDCRYPT:v2:")))
            })
            .count()
            == 2
    });
    // Statuses move the outbox on: accepted, then sent and delivered.
    wait_until("delivered", || {
        doc.ok(&["outbox"], "", NOV).matches("delivered").count() == 2
    });
    let document: Sent = fake
        .sent()
        .into_iter()
        .find(|s| s.kind == "document")
        .unwrap();
    let (name, mime, bytes) = document.document.unwrap();
    assert_eq!(mime, "text/plain");
    assert!(
        name.ends_with(".medcrypt.txt") && !name.contains("report"),
        "{name}"
    );
    // The patient decrypts the armoured file they downloaded.
    let got = dir.path().join(&name);
    std::fs::write(&got, &bytes).unwrap();
    let out_dir = dir.path().join("patient-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    pat.ok(
        &[
            "attach",
            "decrypt",
            got.to_str().unwrap(),
            "-o",
            out_dir.join("report.pdf").to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(
        std::fs::read(out_dir.join("report.pdf")).unwrap(),
        b"%PDF lab report"
    );
    let (stdout, stderr) = agent.stop();

    // The fake saw only ciphertext and neutral text.
    for s in fake.sent() {
        let seen = format!(
            "{:?} {:?}",
            s.text,
            s.document
                .as_ref()
                .map(|(n, _, b)| (n, String::from_utf8_lossy(b).into_owned()))
        );
        for secret in [answer, "lab report", "report.pdf", note, "Silva", "alice"] {
            assert!(
                !seen.contains(secret),
                "{secret:?} crossed the messenger: {seen}"
            );
        }
        if let Some(text) = &s.text
            && s.kind == "text"
        {
            assert!(!text.contains('#') && !text.contains("bytes"), "{text}");
        }
    }
    for text in [&stdout, &stderr] {
        for secret in [note, answer, TOKEN, APP_SECRET, VERIFY] {
            assert!(!text.contains(secret), "logs leak {secret:?}: {text}");
        }
    }
}

#[test]
fn killed_between_storing_and_processing_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWhatsApp::start(TOKEN, APP_SECRET, PNID).unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    let agent = Agent::start(&doc, &fake);
    // The download hangs: the webhook is stored and answered, its
    // processing is under way when the agent dies.
    fake.set_faults(Faults {
        download_delay: Duration::from_secs(30),
        ..Faults::default()
    });
    let file = encrypt_file(&pat, dir.path(), "scan.png", &[7; 20_000], &["--armor"]);
    fake.user_sends_document(PATIENT, "scan.medcrypt.txt", "text/plain", &file, None);
    let wires: Vec<String> = (0..5)
        .map(|i| pat.encrypt("dr-silva", &format!("reading {i}"), NOV))
        .collect();
    for wire in &wires {
        fake.user_sends_text(PATIENT, wire);
    }
    wait_until("the download to start and every webhook answered", || {
        fake.requests("download") >= 1
            && fake.deliveries().iter().filter(|s| **s == 200).count() >= 8
    });
    let delivered = |fake: &FakeWhatsApp| fake.deliveries().iter().filter(|s| **s == 200).count();
    let delivered_before = delivered(&fake);
    agent.kill(); // SIGKILL: no chance to clean up
    fake.set_faults(Faults::default());
    // Written while the agent is down: Meta retries until it answers.
    let late = pat.encrypt("dr-silva", "written while the agent was down", NOV);
    fake.user_sends_text(PATIENT, &late);
    wait_until("a failed delivery attempt", || {
        fake.deliveries().contains(&0)
    });
    let agent = Agent::start(&doc, &fake);
    wait_until("everything in the inbox", || {
        let inbox = doc.ok(&["inbox"], "", NOV);
        inbox.matches("reading ").count() == 5
            && inbox.contains("scan.png")
            && inbox.contains("written while the agent was down")
    });
    agent.stop();
    // Only the retried webhook was delivered again: the agent's own queue
    // had everything it had answered.
    assert_eq!(delivered(&fake), delivered_before + 1);
    let inbox = doc.ok(&["inbox"], "", NOV);
    for i in 0..5 {
        assert_eq!(
            inbox.matches(&format!("reading {i}\n")).count(),
            1,
            "{inbox}"
        );
    }
    assert_eq!(inbox.matches("scan.png").count(), 1, "{inbox}");
}

#[test]
fn outside_the_window_the_template_goes_and_the_message_follows_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWhatsApp::start(TOKEN, APP_SECRET, PNID).unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    doc.ok(
        &[
            "config",
            "set",
            "whatsapp-template",
            "medcrypt_new_message:es",
        ],
        "",
        NOV,
    );
    // Two days after the patient last wrote.
    let later = "2026-11-22T12:00:00Z";
    fake.set_now(common::utc(later));
    let agent = Agent::start_at(&doc, &fake, later, &[]);
    doc.ok(
        &["send", "--to", "alice", "Your results are normal."],
        "",
        later,
    );
    doc.ok(&["send", "--to", "alice", "See you in March."], "", later);
    wait_until("the template", || {
        fake.sent().iter().any(|s| s.kind == "template")
    });
    wait_until("both waiting", || {
        doc.ok(&["outbox"], "", later)
            .matches("waiting-for-reply")
            .count()
            == 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let templates: Vec<Sent> = fake
        .sent()
        .into_iter()
        .filter(|s| s.kind == "template")
        .collect();
    assert_eq!(templates.len(), 1, "the template went out more than once");
    assert_eq!(templates[0].text.as_deref(), Some("medcrypt_new_message"));
    assert!(!fake.sent().iter().any(|s| {
        s.kind == "text"
            && s.text
                .as_deref()
                .is_some_and(|t| t.starts_with("MEDCRYPT:"))
    }));

    // The patient replies: both go.
    let wire = pat.encrypt("dr-silva", "ok, thanks", later);
    fake.user_sends_text(PATIENT, &wire);
    wait_until("both delivered", || {
        texts_to(&fake, PATIENT)
            .iter()
            .filter(|t| t.starts_with("MEDCRYPT:v2:"))
            .count()
            == 2
    });
    agent.stop();

    // The agent thought the window open, WhatsApp did not (its clock is a
    // day ahead): the refusal (131047) leads to the template as well.
    let much_later = "2026-11-25T12:00:00Z";
    fake.set_now(common::utc(much_later));
    let agent = Agent::start_at(&doc, &fake, later, &[]);
    doc.ok(&["send", "--to", "alice", "One more thing."], "", later);
    wait_until("a second template", || {
        fake.sent().iter().filter(|s| s.kind == "template").count() == 2
    });
    wait_until("waiting", || {
        doc.ok(&["outbox"], "", later).contains("waiting-for-reply")
    });
    agent.stop();

    // Accepted, then reported failed by webhook (Meta does both).
    fake.set_faults(Faults {
        window_fails_later: true,
        ..Faults::default()
    });
    let pat_wire = pat.encrypt("dr-silva", "hello again", much_later);
    let agent = Agent::start_at(&doc, &fake, much_later, &[]);
    fake.set_now(common::utc(much_later));
    fake.user_sends_text(PATIENT, &pat_wire);
    wait_until("the waiting item delivered", || {
        !doc.ok(&["outbox"], "", much_later)
            .contains("waiting-for-reply")
    });
    fake.set_now(common::utc("2026-11-28T12:00:00Z"));
    doc.ok(&["send", "--to", "alice", "Late note."], "", much_later);
    wait_until("failed later, then waiting", || {
        doc.ok(&["outbox"], "", much_later)
            .contains("waiting-for-reply")
    });
    agent.stop();
}

#[test]
fn rate_limits_lost_answers_and_an_expired_token() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWhatsApp::start(TOKEN, APP_SECRET, PNID).unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    // A storm: 429s (130429), pair-rate refusals (131056) and 500s.
    fake.set_faults(Faults {
        pair_rate_sends: 1,
        rate_limit_sends: 2,
        fail_sends: 1,
        ..Faults::default()
    });
    let agent = Agent::start(&doc, &fake);
    for i in 0..3 {
        doc.ok(&["send", "--to", "alice", &format!("dose {i}")], "", NOV);
    }
    wait_until("all three delivered", || {
        texts_to(&fake, PATIENT)
            .iter()
            .filter(|t| t.starts_with("MEDCRYPT:v2:"))
            .count()
            == 3
    });
    let outbox = doc.ok(&["outbox"], "", NOV);
    assert_eq!(outbox.matches("accepted").count(), 3, "{outbox}");

    // A media server's 500 (an answer without an error code) is a passing
    // outage, not a refused token: the download is tried again.
    fake.set_faults(Faults {
        fail_downloads: 2,
        ..Faults::default()
    });
    let file = encrypt_file(&pat, dir.path(), "ecg.png", &[3; 5_000], &[]);
    fake.user_sends_document(
        PATIENT,
        "ecg.medcrypt",
        "application/octet-stream",
        &file,
        None,
    );
    wait_until("the file after two failed downloads", || {
        doc.ok(&["inbox"], "", NOV).contains("ecg.png")
    });
    assert_eq!(agent.get("/healthz").0, 200);

    // A lost answer: uncertain, never repeated by itself.
    fake.set_faults(Faults {
        lose_answers: 1,
        ..Faults::default()
    });
    doc.ok(&["send", "--to", "alice", "take it with food"], "", NOV);
    wait_until("uncertain", || {
        doc.ok(&["outbox"], "", NOV).contains("uncertain")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        texts_to(&fake, PATIENT)
            .iter()
            .filter(|t| t.starts_with("MEDCRYPT:v2:"))
            .count(),
        4
    );

    // The token expires: sending stops, the health check says so, the
    // physician is told on the terminal; nothing is lost.
    fake.set_faults(Faults {
        token_expired: true,
        ..Faults::default()
    });
    doc.ok(&["send", "--to", "alice", "next appointment"], "", NOV);
    wait_until("the health check", || agent.get("/healthz").0 == 503);
    let (_, stderr) = agent.stop();
    assert!(stderr.contains("error 190"), "{stderr}");
    let outbox = doc.ok(&["outbox"], "", NOV);
    assert!(outbox.lines().any(|l| l.contains("queued")), "{outbox}");
    // With a new token, it goes.
    fake.set_faults(Faults::default());
    let agent = Agent::start(&doc, &fake);
    wait_until("delivered after the restart", || {
        texts_to(&fake, PATIENT)
            .iter()
            .filter(|t| t.starts_with("MEDCRYPT:v2:"))
            .count()
            == 5
    });
    agent.stop();
}

#[test]
fn a_stale_binding_message_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWhatsApp::start(TOKEN, APP_SECRET, PNID).unwrap();
    let doc = Party::new(dir.path(), "physician");
    let pat = Party::new(dir.path(), "patient");
    doc.ok(&["init", "--name", "Dr. Ana Silva"], "", NOV);
    doc.ok(
        &["config", "set", "whatsapp-number", "+34 600 000 000"],
        "",
        NOV,
    );
    pat.ok(&["init"], "", NOV);
    let (_, accepted) = common::pair_through_png(dir.path(), &doc, &pat, "dr-silva", NOV);
    let link = common::line_after(&accepted, "To connect your WhatsApp chat");
    let text = link.split_once("?text=").unwrap().1.replace("%20", " ");
    // Sent two days before the agent hears of it (a backlog).
    fake.set_now(common::utc("2026-11-18T10:00:00Z"));
    let agent = Agent::start(&doc, &fake);
    fake.user_sends_text(PATIENT, &text);
    wait_until("refusal", || {
        texts_to(&fake, PATIENT)
            .iter()
            .any(|r| r.contains("too late"))
    });
    agent.stop();
    let list = doc.ok(&["pair", "list"], "", NOV);
    assert!(!list.contains("whatsapp"), "{list}");
}

/// HTTPS with the physician's certificate (a self-signed one made for the
/// tests: `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256
/// -nodes -days 36500 -subj /CN=medcrypt-test -addext
/// subjectAltName=IP:127.0.0.1,DNS:localhost -addext
/// basicConstraints=critical,CA:FALSE -addext keyUsage=digitalSignature
/// -addext extendedKeyUsage=serverAuth`).
#[test]
fn https_with_a_certificate_and_a_clear_error_for_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWhatsApp::start(TOKEN, APP_SECRET, PNID).unwrap();
    let doc = Party::init(dir.path(), "physician", &["--name", "Dr. Ana Silva"]);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let cert = fixtures.join("cert.pem");
    let key = fixtures.join("key.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["agent", "whatsapp", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", NOV)
        .env("WHATSAPP_TOKEN", TOKEN)
        .env("WHATSAPP_APP_SECRET", APP_SECRET)
        .env("WHATSAPP_VERIFY_TOKEN", VERIFY)
        .env("WHATSAPP_PHONE_NUMBER_ID", PNID)
        .env("WHATSAPP_API_URL", fake.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = first.trim().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{first:?}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pem = std::fs::read(&cert).unwrap();
    let (trusted, untrusted) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        let trusted = client
            .get(format!(
                "{url}/webhook?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=42"
            ))
            .send()
            .await
            .unwrap();
        let trusted = (trusted.status().as_u16(), trusted.text().await.unwrap());
        // A client that does not trust the certificate cannot talk to it.
        let untrusted = reqwest::Client::new()
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_err();
        (trusted, untrusted)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(trusted, (200, "42".to_owned()));
    assert!(untrusted);

    // A key that is not the certificate's: said so, before anything starts.
    let other_key = dir.path().join("other.pem");
    std::fs::write(
        &other_key,
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgE6Kx1mHNd0Cq0zY0\nm3u6UoV1dZbTq3d3jT4I3t8aH8ChRANCAAQyJ2n2w8h9cO8oTQ3m3aD8cR5i0m0N\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["agent", "whatsapp", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other_key)
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", NOV)
        .env("WHATSAPP_TOKEN", TOKEN)
        .env("WHATSAPP_APP_SECRET", APP_SECRET)
        .env("WHATSAPP_VERIFY_TOKEN", VERIFY)
        .env("WHATSAPP_PHONE_NUMBER_ID", PNID)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("other.pem"), "{stderr}");
}

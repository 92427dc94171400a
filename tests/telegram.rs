//! The Telegram agent against a fake Bot API on 127.0.0.1: deep-link
//! pairing, messages and documents both ways, plaintext deletion, a crash
//! mid-stream, and a storm of 429s. Nothing here reaches the internet.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{NOV, PASSPHRASE, Party};
use medcrypt::agent::telegram::fake::{FakeTelegram, Faults};

const TOKEN: &str = "4242:TEST-TOKEN";
const PATIENT_CHAT: i64 = 777;

struct Agent {
    child: Child,
}

impl Agent {
    /// Starts the agent and returns once it is running (it has called getMe,
    /// which it does only after its signal handlers are in place).
    fn start(doc: &Party, fake: &FakeTelegram, extra: &[&str]) -> Self {
        let before = fake.requests("getMe");
        let child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
            .arg("--store")
            .arg(&doc.store)
            .args([
                "agent",
                "telegram",
                "--poll-timeout",
                "1",
                "--tick-seconds",
                "1",
            ])
            .args(extra)
            .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
            .env("MEDCRYPT_NOW", NOV)
            .env("TELOXIDE_TOKEN", TOKEN)
            .env("TELOXIDE_API_URL", fake.url())
            .env("RUST_LOG", "medcrypt=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("the agent to start", || fake.requests("getMe") > before);
        Self { child }
    }

    /// SIGTERM, then the agent must exit cleanly.
    fn stop(self) -> (String, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let out = self.child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "agent failed ({:?}): {stdout}\n{stderr}",
            out.status
        );
        assert!(stdout.contains("agent stopped"), "{stdout}");
        (stdout, stderr)
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn replies_to(fake: &FakeTelegram, chat: i64) -> Vec<String> {
    fake.sent()
        .into_iter()
        .filter(|s| s.chat_id == chat)
        .filter_map(|s| s.text)
        .collect()
}

/// A physician whose agent has met the bot, a patient paired through the
/// QR PNG (which now names the bot), and the patient's chat bound by the
/// deep link.
fn connected(dir: &Path, fake: &FakeTelegram) -> (Party, Party) {
    let doc = Party::new(dir, "physician");
    let pat = Party::new(dir, "patient");
    doc.ok(&["init", "--name", "Dr. Ana Silva"], "", NOV);
    pat.ok(&["init"], "", NOV);
    // The agent records the bot's username from getMe.
    let agent = Agent::start(&doc, fake, &[]);
    wait_until("getMe", || fake.requests("getUpdates") > 0);
    agent.stop();
    let (_, accepted) = common::pair_through_png(dir, &doc, &pat, "dr-silva", NOV);
    let link = common::line_after(&accepted, "Open this link");
    let token = link
        .strip_prefix("https://t.me/clinic_bot?start=")
        .expect("deep link names the bot");
    assert!(
        token.len() <= 64
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );

    let agent = Agent::start(&doc, fake, &[]);
    fake.user_sends_text(PATIENT_CHAT, &format!("/start {token}"));
    wait_until("binding", || {
        replies_to(fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.starts_with("Connected ✓"))
    });
    let reply = replies_to(fake, PATIENT_CHAT).pop().unwrap();
    let safety = doc.ok(&["pair", "list"], "", NOV);
    // Which messenger account the pairing is bound to.
    assert!(
        safety.contains(&format!("telegram {PATIENT_CHAT}")),
        "{safety}"
    );
    let first_group = safety
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .rev()
        .nth(5)
        .unwrap()
        .to_owned();
    // The messenger reads the confirmation: no part of the safety number,
    // no name.
    assert!(!reply.contains(&first_group), "{reply} / {safety}");
    assert!(!reply.contains("Silva"), "{reply}");
    // The token is single-use.
    fake.user_sends_text(888, &format!("/start {token}"));
    wait_until("refusal", || {
        replies_to(fake, 888)
            .iter()
            .any(|r| r.contains("not valid"))
    });
    agent.stop();
    (doc, pat)
}

#[test]
fn deep_link_messages_and_documents_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    let agent = Agent::start(&doc, &fake, &[]);

    // Patient → physician: text, a document, and a document in two parts.
    let note = "My blood pressure this morning: 150/95.";
    let wire = pat.ok(&["encrypt", "--to", "dr-silva", note], "", NOV);
    fake.user_sends_text(PATIENT_CHAT, wire.trim());
    let photo = dir.path().join("rash.jpg");
    std::fs::write(&photo, vec![0xAB; 100_000]).unwrap();
    let enc = dir.path().join("rash.medcrypt");
    pat.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "dr-silva",
            photo.to_str().unwrap(),
            "-o",
            enc.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    fake.user_sends_document(PATIENT_CHAT, "rash.medcrypt", &std::fs::read(&enc).unwrap());
    let scan = dir.path().join("ecg.pdf");
    std::fs::write(&scan, vec![0x5A; 300_000]).unwrap();
    let parts_base = dir.path().join("ecg.medcrypt");
    let parts = pat.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "dr-silva",
            scan.to_str().unwrap(),
            "-o",
            parts_base.to_str().unwrap(),
            "--part-size",
            "200K",
        ],
        "",
        NOV,
    );
    for part in parts.lines().rev() {
        fake.user_sends_document(PATIENT_CHAT, "part.medcrypt", &std::fs::read(part).unwrap());
    }
    wait_until("three acknowledgements", || {
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .filter(|r| r.starts_with("Received ✓"))
            .count()
            == 3
    });
    assert!(
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.starts_with("Part 2 of 2 received"))
    );
    for reply in replies_to(&fake, PATIENT_CHAT) {
        assert!(!reply.contains("150/95"), "a reply echoed content: {reply}");
        // Neutral acknowledgements: no counter shared across chats, no
        // size (it would undo the padding), no name.
        assert!(!reply.contains('#'), "a reply carries a counter: {reply}");
        assert!(!reply.contains("bytes"), "a reply carries a size: {reply}");
        assert!(
            !reply.contains("Silva"),
            "a reply names the physician: {reply}"
        );
    }

    // The same message again (a patient pasting twice) is recognised as
    // already received, said so, and audited.
    fake.user_sends_text(PATIENT_CHAT, wire.trim());
    wait_until("replay notice", || {
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.contains("already received"))
    });

    // Plaintext is deleted and nothing of it is stored.
    let id = fake.user_sends_text(PATIENT_CHAT, "Can I take ibuprofen?");
    wait_until("plaintext warning", || {
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.contains("plain text"))
    });
    // So is an unencrypted file.
    fake.user_sends_document(PATIENT_CHAT, "blood-test.pdf", b"%PDF-1.7 cholesterol 6.2");
    wait_until("plain file warning", || {
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.contains("file in plain text") && r.contains("was deleted"))
    });
    // And anything else that is not well-formed ciphertext: a photo, an
    // edited message, text that merely starts with MEDCRYPT:.
    fake.user_sends_photo(PATIENT_CHAT);
    fake.user_edits_message(PATIENT_CHAT, "I meant 10 mg");
    fake.user_sends_text(PATIENT_CHAT, "MEDCRYPT: my HIV test came back negative");
    wait_until("three more deletions and warnings", || {
        let replies = replies_to(&fake, PATIENT_CHAT);
        fake.deleted().len() == 5
            && replies.iter().any(|r| r.contains("photo"))
            && replies.iter().any(|r| r.contains("edited"))
    });
    let replies = replies_to(&fake, PATIENT_CHAT);
    assert!(replies.iter().any(|r| r.contains("photo")), "{replies:?}");
    assert!(
        replies.iter().any(|r| r.contains("an edited message")),
        "{replies:?}"
    );
    let deleted = fake.deleted();
    assert_eq!(deleted.len(), 5, "{deleted:?}");
    assert!(
        deleted
            .iter()
            .any(|(chat, message)| *chat == PATIENT_CHAT && *message > 0)
    );
    let _ = id;

    // A chat nobody bound gets instructions only.
    fake.user_sends_text(999, "hello?");
    wait_until("instructions", || {
        replies_to(&fake, 999)
            .iter()
            .any(|r| r.contains("open the link"))
    });

    // Physician → patient: text and a file, queued by `send`.
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
                s.chat_id == PATIENT_CHAT
                    && (s.document.is_some()
                        || s.text
                            .as_deref()
                            .is_some_and(|t| t.starts_with("MEDCRYPT:v2:")))
            })
            .count()
            == 2
    });
    let (stdout, stderr) = agent.stop();

    // The fake server saw only ciphertext.
    let sent = fake.sent();
    for s in &sent {
        let seen = format!(
            "{:?} {:?}",
            s.text,
            s.document
                .as_ref()
                .map(|(n, b)| (n, String::from_utf8_lossy(b).into_owned()))
        );
        for secret in [answer, "lab report", "report.pdf", note] {
            assert!(!seen.contains(secret), "{secret:?} crossed the messenger");
        }
    }
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(note) && !text.contains(answer) && !text.contains("TEST-TOKEN"),
            "logs leak: {text}"
        );
    }
    let wire_out = sent
        .iter()
        .find_map(|s| s.text.clone().filter(|t| t.starts_with("MEDCRYPT:v2:")))
        .unwrap();
    assert_eq!(pat.decrypt(&wire_out, NOV).stdout.trim(), answer);
    let (name, bytes) = sent.iter().find_map(|s| s.document.clone()).unwrap();
    assert!(name.ends_with(".medcrypt") && !name.contains("report"));
    let received = dir.path().join("got.medcrypt");
    std::fs::write(&received, bytes).unwrap();
    let out = dir.path().join("got.pdf");
    pat.ok(
        &[
            "attach",
            "decrypt",
            received.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    assert_eq!(std::fs::read(out).unwrap(), b"%PDF lab report");

    // The physician's inbox has all three, and saves the files.
    let saved = dir.path().join("saved");
    let inbox = doc.ok(
        &["inbox", "--save-attachments", saved.to_str().unwrap()],
        "",
        NOV,
    );
    assert!(inbox.contains(note), "{inbox}");
    assert!(
        inbox.contains("[file rash.jpg, 100000 bytes")
            && inbox.contains("[file ecg.pdf, 300000 bytes"),
        "{inbox}"
    );
    assert!(
        !inbox.contains("ibuprofen")
            && !inbox.contains("blood-test")
            && !inbox.contains("cholesterol")
    );
    assert_eq!(
        std::fs::read(saved.join("rash.jpg")).unwrap(),
        vec![0xAB; 100_000]
    );
    assert_eq!(
        std::fs::read(saved.join("ecg.pdf")).unwrap(),
        vec![0x5A; 300_000]
    );
    let outbox = doc.ok(&["outbox"], "", NOV);
    assert_eq!(outbox.matches(" sent ").count(), 2, "{outbox}");
    let again = doc.ok(&["audit", "show", "--action", "decrypt_again"], "", NOV);
    assert!(again.contains("alice"), "{again}");
}

#[test]
fn killed_mid_stream_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    let count = 40;
    for i in 0..count {
        let wire = pat.ok(
            &["encrypt", "--to", "dr-silva", &format!("reading {i}")],
            "",
            NOV,
        );
        fake.user_sends_text(PATIENT_CHAT, wire.trim());
    }
    fake.set_faults(Faults {
        duplicate_updates: true,
        delay: Duration::from_millis(20),
        ..Faults::default()
    });
    let acks = |fake: &FakeTelegram| {
        replies_to(fake, PATIENT_CHAT)
            .iter()
            .filter(|r| r.starts_with("Received ✓"))
            .count()
    };
    let agent = Agent::start(&doc, &fake, &[]);
    wait_until("some progress", || acks(&fake) >= 5);
    agent.kill(); // SIGKILL: no chance to clean up
    let agent = Agent::start(&doc, &fake, &[]);
    wait_until("all confirmed", || {
        fake.unconfirmed_updates() == 0
            && doc.ok(&["inbox"], "", NOV).matches("reading ").count() == count
    });
    agent.stop();
    let inbox = doc.ok(&["inbox"], "", NOV);
    for i in 0..count {
        assert_eq!(
            inbox.matches(&format!("reading {i}\n")).count(),
            1,
            "reading {i} in {inbox}"
        );
    }
    // Duplicated deliveries were skipped, not reported as replays.
    assert!(
        !replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.contains("already received"))
    );
}

#[test]
fn a_storm_of_429s_and_500s_delivers_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    for i in 0..8 {
        doc.ok(&["send", "--to", "alice", &format!("result {i}")], "", NOV);
    }
    let before = fake.sent().len();
    fake.set_faults(Faults {
        rate_limit_sends: 4,
        retry_after: 1,
        fail_sends: 1,
        ..Faults::default()
    });
    let agent = Agent::start(&doc, &fake, &[]);
    wait_until("all delivered", || {
        doc.ok(&["outbox"], "", NOV).matches(" sent ").count() == 8
    });
    agent.stop();
    let delivered: Vec<String> = fake.sent()[before..]
        .iter()
        .filter_map(|s| s.text.clone())
        .collect();
    assert_eq!(delivered.len(), 8, "each exactly once: {delivered:?}");
    let mut texts: Vec<String> = delivered
        .iter()
        .map(|w| pat.decrypt(w, NOV).stdout.trim().to_owned())
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        (0..8).map(|i| format!("result {i}")).collect::<Vec<_>>()
    );
    let audit = doc.ok(&["audit", "show", "--action", "send_sent"], "", NOV);
    assert_eq!(audit.lines().count(), 8, "{audit}");
}

#[test]
fn a_document_whose_download_fails_is_fetched_again_not_skipped() {
    // Reported: a failed document followed by a text that succeeded in the
    // same batch moved the offset past the document, which was lost.
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    let input = dir.path().join("ecg.txt");
    std::fs::write(&input, "ECG: sinus rhythm").unwrap();
    let encrypted = dir.path().join("ecg.medcrypt");
    pat.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "dr-silva",
            input.to_str().unwrap(),
            "-o",
            encrypted.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    let wire = pat.encrypt("dr-silva", "Sent you my ECG", NOV);
    fake.set_faults(Faults {
        fail_downloads: 1,
        ..Faults::default()
    });
    // Both in one batch: the document first, then the text.
    fake.user_sends_document_with_caption(
        PATIENT_CHAT,
        "ecg.medcrypt",
        &std::fs::read(&encrypted).unwrap(),
        "my ECG from the cardiologist",
    );
    fake.user_sends_text(PATIENT_CHAT, &wire);
    let agent = Agent::start(&doc, &fake, &[]);
    wait_until("both received", || {
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .filter(|r| r.starts_with("Received ✓"))
            .count()
            == 2
    });
    wait_until("the captioned document deleted", || {
        fake.deleted().len() == 1
    });
    agent.stop();
    let inbox = doc.ok(&["inbox"], "", NOV);
    assert!(inbox.contains("ecg.txt"), "{inbox}");
    assert!(
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.contains("text written with the file was not encrypted"))
    );
}

#[test]
fn a_document_that_never_downloads_does_not_stop_the_agent() {
    // A file Telegram will never serve is retried a few times, then the
    // patient is asked to send it again and later updates go through.
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    fake.set_faults(Faults {
        fail_downloads: 1000,
        ..Faults::default()
    });
    fake.user_sends_document(PATIENT_CHAT, "x.medcrypt", b"MEDCRYPTF\x03whatever");
    let wire = pat.encrypt("dr-silva", "Are you there?", NOV);
    fake.user_sends_text(PATIENT_CHAT, &wire);
    let agent = Agent::start(&doc, &fake, &[]);
    wait_until("the resend request and the text", || {
        let replies = replies_to(&fake, PATIENT_CHAT);
        replies
            .iter()
            .any(|r| r.contains("could not be downloaded"))
            && replies.iter().any(|r| r.starts_with("Received ✓"))
    });
    agent.stop();
    let audit = doc.ok(
        &["audit", "show", "--action", "attach_decrypt_failed"],
        "",
        NOV,
    );
    assert!(audit.contains("download_failed"), "{audit}");
}

#[test]
fn a_flood_of_junk_links_is_counted_not_logged_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, _pat) = connected(dir.path(), &fake);
    for i in 0..60 {
        fake.user_sends_text(10_000 + i, &format!("/start junk{i}"));
    }
    let agent = Agent::start(&doc, &fake, &[]);
    let answered = || -> usize { (0..60).map(|i| replies_to(&fake, 10_000 + i).len()).sum() };
    wait_until("every update handled and answered", || {
        fake.unconfirmed_updates() == 0 && answered() >= 49
    });

    // Replies are throttled (30 a second): give any 51st time to show.
    std::thread::sleep(Duration::from_millis(2500));
    agent.stop();
    let answered = answered();
    // `connected` already refused one reused link (chat 888) today.
    assert_eq!(
        answered as u64,
        medcrypt::agent::STRANGER_REPLIES_PER_DAY - 1
    );
    for i in 0..60 {
        for reply in replies_to(&fake, 10_000 + i) {
            assert!(!reply.contains("Silva"), "{reply}");
        }
    }
    let audit = doc.ok(&["audit", "show", "--action", "chat_bind"], "", NOV);
    let rejected: Vec<&str> = audit.lines().filter(|l| l.contains("rejected")).collect();
    assert_eq!(
        rejected.len(),
        2,
        "the 1st (chat 888) and the 10th only: {audit}"
    );
    assert!(rejected[1].contains("rejections_today=10"), "{audit}");
}

#[test]
fn a_send_whose_answer_was_lost_is_not_repeated() {
    // Reported: an ambiguous network error after sendDocument made
    // Telegram deliver a prescription twice. A send that may have happened
    // becomes `uncertain`, and only the owner sends it again.
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, _pat) = connected(dir.path(), &fake);
    doc.ok(
        &["send", "--to", "alice", "Amoxicillin 500 mg, 3 times a day"],
        "",
        NOV,
    );
    let before = fake.sent().len();
    fake.set_faults(Faults {
        lose_answers: 1,
        ..Faults::default()
    });
    let agent = Agent::start(&doc, &fake, &[]);
    wait_until("uncertain", || {
        doc.ok(&["outbox"], "", NOV).contains("uncertain")
    });
    // Several more polling rounds: nothing is sent again by itself.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    agent.stop();
    let to_patient = fake.sent()[before..]
        .iter()
        .filter(|s| s.chat_id == PATIENT_CHAT)
        .count();
    assert_eq!(to_patient, 1, "sent again without the owner asking");
    let outbox = doc.ok(&["outbox"], "", NOV);
    assert!(outbox.contains("uncertain"), "{outbox}");
}

#[test]
fn owner_link_receives_a_checkpoint_and_keep_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, _pat) = connected(dir.path(), &fake);
    // The owner link was printed at first start; a fresh agent prints none.
    let polls = fake.requests("getUpdates");
    let agent = Agent::start(&doc, &fake, &["--keep-plaintext"]);
    wait_until("polling", || fake.requests("getUpdates") > polls + 1);
    let (stdout, _) = agent.stop();
    assert!(!stdout.contains("?start=owner_"), "{stdout}");

    let dir2 = tempfile::tempdir().unwrap();
    let fresh = Party::new(dir2.path(), "doc");
    fresh.ok(&["init", "--name", "Dr. Who"], "", NOV);
    let fake2 = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    // Not on a terminal (a service): no link is made or printed.
    let quiet = Agent::start(&fresh, &fake2, &[]);
    wait_until("polling", || fake2.requests("getUpdates") > 0);
    let (stdout, _) = quiet.stop();
    assert!(!stdout.contains("?start=owner_"), "{stdout}");
    assert!(stdout.contains("in a terminal"), "{stdout}");
    // Asked for explicitly (as on a terminal): shown once.
    let polls = fake2.requests("getUpdates");
    let mut child = Agent::start(&fresh, &fake2, &["--show-owner-link"]);
    wait_until("polling", || fake2.requests("getUpdates") > polls);
    let pid = child.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = child.child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let link = stdout
        .split_whitespace()
        .find(|w| w.contains("?start=owner_"))
        .unwrap()
        .to_owned();
    let token = link.rsplit('=').next().unwrap();
    child = Agent::start(&fresh, &fake2, &[]);
    fake2.user_sends_text(5, &format!("/start {token}"));
    wait_until("checkpoint", || {
        replies_to(&fake2, 5)
            .iter()
            .any(|r| r.contains("MEDCRYPT-AUDIT:v2:"))
    });
    child.stop();
    let checkpoint = replies_to(&fake2, 5)
        .into_iter()
        .find_map(|r| {
            r.lines()
                .find(|l| l.starts_with("MEDCRYPT-AUDIT"))
                .map(str::to_owned)
        })
        .unwrap();
    fresh.ok(&["audit", "verify", "--checkpoint", &checkpoint], "", NOV);

    // Break-glass while the agent is stopped: the combining command itself
    // tells the physician at once, through the bot the agent last ran with.
    let shares = dir2.path().join("shares");
    fresh.ok(
        &[
            "escrow",
            "split",
            "--out-dir",
            shares.to_str().unwrap(),
            "--custodian",
            "Ana",
            "--custodian",
            "Bo",
        ],
        "",
        NOV,
    );
    let mut pages: Vec<_> = std::fs::read_dir(&shares)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    pages.sort();
    let new_pass = dir2.path().join("new-pass");
    std::fs::write(&new_pass, "the successor's passphrase").unwrap();
    let run = fresh.run_with(
        &[
            "escrow",
            "combine",
            "--reason",
            "physician unreachable",
            "--share",
            pages[0].to_str().unwrap(),
            "--share",
            pages[1].to_str().unwrap(),
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
        ],
        "",
        NOV,
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("was told at once"), "{}", run.stdout);
    assert!(
        replies_to(&fake2, 5)
            .iter()
            .any(|r| r.contains("Emergency access") && r.contains("Ana and Bo")),
        "{:?}",
        replies_to(&fake2, 5)
    );

    // With --keep-plaintext the message stays, but nothing of it is stored.
    let agent = Agent::start(&doc, &fake, &["--keep-plaintext"]);
    fake.user_sends_text(PATIENT_CHAT, "plain words");
    wait_until("warning", || {
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.contains("plain text"))
    });
    agent.stop();
    assert!(fake.deleted().is_empty());
    assert!(!doc.ok(&["inbox"], "", NOV).contains("plain words"));
}

/// The reviewer's findings on the agent's inbox: it kept every message for
/// ever (so destroying the month key destroyed nothing), and a row moved
/// to another pairing in the SQLite file showed one patient's message as
/// another's.
#[test]
fn the_agents_history_dies_with_its_key_and_cannot_be_moved() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    doc.ok(&["pair", "new", "--patient", "bob"], "", NOV);
    let agent = Agent::start(&doc, &fake, &[]);
    let wire = pat.ok(
        &["encrypt", "--to", "dr-silva", "Alice's blood sugar: 9.8"],
        "",
        NOV,
    );
    fake.user_sends_text(PATIENT_CHAT, wire.trim());
    wait_until("acknowledgement", || {
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.starts_with("Received ✓"))
    });
    agent.stop();
    assert!(doc.ok(&["inbox"], "", NOV).contains("9.8"));

    // Moved to Bob in a copy of the file: never shown as Bob's.
    let copy = Party::new(dir.path(), "copy");
    std::fs::create_dir_all(copy.store.parent().unwrap()).unwrap();
    std::fs::copy(&doc.store, &copy.store).unwrap();
    let conn = rusqlite::Connection::open(&copy.store).unwrap();
    let bob: i64 = conn
        .query_row("SELECT id FROM pairings WHERE alias = 'bob'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let table = if conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'history'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        == 1
    {
        "history"
    } else {
        "inbox"
    };
    conn.execute(&format!("UPDATE {table} SET pairing_id = ?1"), [bob])
        .unwrap();
    drop(conn);
    let run = copy.run_at(&["inbox", "--from", "bob"], "", NOV);
    assert!(
        !run.stdout.contains("9.8"),
        "Alice's message shown as Bob's: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("modified outside MedCrypt"),
        "{}",
        run.stderr
    );

    // Under the default policy the message lives as long as its month key.
    let inbox = doc.ok(&["inbox"], "", "2026-12-09T10:00:00Z");
    assert!(
        !inbox.contains("9.8"),
        "kept after its key was destroyed: {inbox}"
    );
    let raw = std::fs::read(&doc.store).unwrap();
    assert!(!raw.windows(3).any(|w| w == b"9.8"));
}

#[test]
fn an_expired_invitation_binds_no_chat() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let doc = Party::new(dir.path(), "physician");
    let pat = Party::new(dir.path(), "patient");
    let before = "2026-11-18T10:00:00Z";
    doc.ok(&["init", "--name", "Dr. Ana Silva"], "", before);
    pat.ok(&["init"], "", before);
    doc.ok(&["config", "set", "telegram-bot", "clinic_bot"], "", before);
    let (_, accepted) = common::pair_through_png(dir.path(), &doc, &pat, "dr-silva", before);
    let link = common::line_after(&accepted, "Open this link");
    let token = link
        .strip_prefix("https://t.me/clinic_bot?start=")
        .unwrap()
        .to_owned();
    // Two days later (the agent's clock is NOV) the link is too old.
    let agent = Agent::start(&doc, &fake, &[]);
    fake.user_sends_text(PATIENT_CHAT, &format!("/start {token}"));
    wait_until("refusal", || {
        replies_to(&fake, PATIENT_CHAT)
            .iter()
            .any(|r| r.contains("expired on 2026-11-19 10:00 UTC"))
    });
    agent.stop();
    let list = doc.ok(&["pair", "list"], "", NOV);
    assert!(list.contains("invitation expired"), "{list}");
    let audit = doc.ok(&["audit", "show", "--action", "chat_bind"], "", NOV);
    assert!(audit.contains("rejected"), "{audit}");
}

/// Runs the agent for a moment at `now` and returns (exit code, stderr).
fn agent_at(doc: &Party, fake: &FakeTelegram, now: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["agent", "telegram", "--poll-timeout", "1", "--run-for", "2"])
        .env("MEDCRYPT_PASSPHRASE", PASSPHRASE)
        .env("MEDCRYPT_NOW", now)
        .env("TELOXIDE_TOKEN", TOKEN)
        .env("TELOXIDE_API_URL", fake.url())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_agent_back_from_a_holiday_checks_its_clock_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let doc = Party::new(dir.path(), "physician");
    doc.ok(&["init"], "", NOV);
    doc.ok(&["pair", "new", "--patient", "alice"], "", NOV);
    let later = "2026-12-20T09:00:00Z";

    // The server disagrees (the computer's date is wrong): no start, no
    // key destroyed.
    fake.set_faults(Faults {
        server_date: Some(common::utc(NOV)),
        ..Faults::default()
    });
    let (code, stderr) = agent_at(&doc, &fake, later);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the messenger's server says"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(fake.requests("getUpdates"), 0);
    let keys = doc.ok(&["keys", "list"], "", NOV);
    assert!(keys.contains("2026-11"), "{keys}");

    // Three weeks' holiday, and the server agrees: the agent goes on.
    fake.set_faults(Faults {
        server_date: Some(common::utc(later) + chrono::Duration::seconds(30)),
        ..Faults::default()
    });
    let (code, stderr) = agent_at(&doc, &fake, later);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("server time"), "{stderr}");
    assert!(fake.requests("getUpdates") > 0);
}

/// A split (or an emergency access) replaces the store's key under a
/// running agent: the agent stops saying so and that starting it again is
/// all it takes — never that the store was tampered with (its old keys
/// read every row as altered).
#[test]
fn an_agent_whose_store_key_was_replaced_says_so_not_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTelegram::start(TOKEN, "clinic_bot").unwrap();
    let (doc, pat) = connected(dir.path(), &fake);
    let agent = Agent::start(&doc, &fake, &[]);
    let shares = dir.path().join("shares");
    doc.split_among(&shares, &["A", "B"]);
    let wire = pat.ok(&["encrypt", "--to", "dr-silva", "after the split"], "", NOV);
    fake.user_sends_text(PATIENT_CHAT, wire.trim());
    let mut child = agent.child;
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the agent went on with the old key"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("key was replaced"), "{stderr}");
    assert!(!stderr.contains("modified outside"), "{stderr}");
    // Started again, it takes the message.
    let again = Agent::start(&doc, &fake, &[]);
    wait_until("the message", || {
        doc.ok(&["inbox"], "", NOV).contains("after the split")
    });
    again.stop();
}

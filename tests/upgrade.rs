//! Stores made by the first release (schema 4, `tests/fixtures/schema4`)
//! are upgraded at their first unlock and lose nothing: pairings, replay
//! state, sequence numbers, the chat binding, the agent's inbox, the
//! outbox, and an audit log that still verifies.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::Party;
use medcrypt::WireMessage;

const PASSPHRASE: &str = "fixture passphrase 4";
const LATER: &str = "2026-11-21T09:00:00Z";
const DOC_CODE: &str =
    "AC9K-HMGR-89NG-FNN6-ZCQ4-A0XN-JJMW-A46R-1APS-KCF0-P9HN-WAFH-MM5G-0M99-J8GY-EX89";
const PAT_CODE: &str =
    "TAX1-6MHM-J69F-2N4N-069R-5GMW-97DV-P30N-0VZS-X7M0-1DPP-W53V-YTD0-0M99-CMXQ-QR3J";

fn fixture(dir: &Path, name: &str) -> Party {
    let party = Party::new(dir, name);
    std::fs::create_dir_all(party.store.parent().unwrap()).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/schema4/{name}.sqlite")),
        &party.store,
    )
    .unwrap();
    party
}

fn wire(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/schema4/{name}")),
    )
    .unwrap()
}

fn ok(party: &Party, args: &[&str], stdin: &str) -> String {
    let run = party.run_with(args, stdin, LATER, PASSPHRASE);
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    run.stdout
}

#[test]
fn a_schema_4_store_is_upgraded_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let doc = fixture(dir.path(), "doc");
    let pat = fixture(dir.path(), "pat");

    let pairs = ok(&doc, &["pair", "list"], "");
    assert!(pairs.contains("alice"), "{pairs}");
    // The agent's inbox became history, kept while November's key lives.
    let inbox = ok(&doc, &["inbox"], "");
    assert!(inbox.contains("Inbox text from the agent"), "{inbox}");
    assert!(inbox.contains("[file labs.pdf, 11 bytes"), "{inbox}");
    assert!(inbox.contains("expires on 2026-12-08"), "{inbox}");
    let saved = dir.path().join("saved");
    ok(
        &doc,
        &["inbox", "--save-attachments", saved.to_str().unwrap()],
        "",
    );
    assert_eq!(
        std::fs::read(saved.join("labs.pdf")).unwrap(),
        b"%PDF labs 1"
    );
    // The outbox item is still queued.
    assert!(ok(&doc, &["outbox"], "").contains("queued"));

    // Replay state came along: what each side decrypted is still a replay.
    for (party, name) in [(&doc, "w2.txt"), (&pat, "w1.txt")] {
        let run = party.run_with(&["decrypt"], &wire(name), LATER, PASSPHRASE);
        assert_eq!(run.code, 5, "{name}: {}", run.stderr);
    }
    // Sequence numbers go on from where they were.
    let next = ok(&doc, &["encrypt", "--to", "alice", "after the upgrade"], "");
    let sequence = WireMessage::parse(next.trim()).unwrap().header().sequence;
    assert!(
        sequence > 1,
        "sequence {sequence} may repeat an earlier one"
    );
    let read = pat.run_with(&["decrypt"], &next, LATER, PASSPHRASE);
    assert_eq!(read.stdout, "after the upgrade\n", "{}", read.stderr);

    // The chat binding is now a sealed link.
    let conn = rusqlite::Connection::open(&doc.store).unwrap();
    let chat: String = conn
        .query_row("SELECT chat FROM chat_links", [], |r| r.get(0))
        .unwrap();
    assert_eq!(chat, "777");
    let old_tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('seen', 'send_sequence', 'inbox', 'chat_bindings')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_tables, 0);
    drop(conn);

    // Both audit logs still verify from their codes.
    for (party, code) in [(&doc, DOC_CODE), (&pat, PAT_CODE)] {
        let verified = ok(party, &["audit", "verify", "--code", code], "");
        assert!(verified.starts_with("OK:"), "{verified}");
    }
    // And the upgrade happens once: nothing changes on the next unlock.
    let again = ok(&doc, &["inbox"], "");
    assert_eq!(again.matches("Inbox text from the agent").count(), 1);
}

#[test]
fn an_upgraded_store_cannot_be_reset_by_faking_an_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let pat = fixture(dir.path(), "pat");
    ok(&pat, &["pair", "list"], "");
    // An attacker recreates an empty table of schema 4 and wipes the
    // sealed records, hoping for a fresh upgrade with no replay state.
    let conn = rusqlite::Connection::open(&pat.store).unwrap();
    conn.execute_batch(
        "CREATE TABLE seen (pairing_id INTEGER, epoch TEXT, direction INTEGER, sequence INTEGER);
         UPDATE pairings SET record = NULL;",
    )
    .unwrap();
    drop(conn);
    let run = pat.run_with(&["decrypt"], &wire("w1.txt"), LATER, PASSPHRASE);
    assert_ne!(run.code, 0, "the replay was accepted after the reset");
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("modified outside MedCrypt"),
        "{}",
        run.stderr
    );
}

/// An older store moves to an owner key at its first passphrase unlock, so
/// a key replacement (here by a new escrow split) keeps the passphrase
/// working; its first-release recovery code, which wrapped the old key
/// itself, is retired, said so, and replaced by `passphrase change`.
#[test]
fn an_upgraded_store_keeps_its_passphrase_across_a_key_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let doc = fixture(dir.path(), "doc");
    ok(&doc, &["pair", "list"], "");
    let owner_rows: i64 = rusqlite::Connection::open(&doc.store)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM unlock WHERE method = 'owner'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        owner_rows, 1,
        "the passphrase unlock did not move the store to an owner key"
    );

    let shares = dir.path().join("shares");
    let split = doc.run_with(
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
        LATER,
        PASSPHRASE,
    );
    assert_eq!(split.code, 0, "{}", split.stderr);
    assert!(
        split.stdout.contains("store's key was replaced"),
        "{}",
        split.stdout
    );
    assert!(
        split
            .stderr
            .contains("recovery code (from an earlier MedCrypt) no longer"),
        "{}",
        split.stderr
    );
    let pairs = ok(&doc, &["pair", "list"], "");
    assert!(
        pairs.contains("alice"),
        "the passphrase no longer opens the store: {pairs}"
    );

    // The old recovery code is gone, and said so.
    let any_code = medcrypt::codes::RecoveryCode::from_bytes([7; 16]).to_text();
    let recover = doc.run_with(
        &["recover", "--recovery-code", &any_code],
        "",
        LATER,
        PASSPHRASE,
    );
    assert_ne!(recover.code, 0);
    assert!(
        recover.stderr.contains("no recovery code any more"),
        "{}",
        recover.stderr
    );
    // `passphrase change` makes a new one, which works.
    let new_pass = dir.path().join("new-pass");
    std::fs::write(&new_pass, "a brand new passphrase").unwrap();
    let changed = ok(
        &doc,
        &[
            "passphrase",
            "change",
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
        ],
        "",
    );
    let code = changed
        .lines()
        .skip_while(|l| !l.contains("new one"))
        .find(|l| l.starts_with("    "))
        .unwrap_or_else(|| panic!("no new recovery code shown: {changed}"))
        .trim()
        .to_owned();
    let again = dir.path().join("again");
    std::fs::write(&again, "after the recovery code").unwrap();
    let recovered = doc.run_with(
        &[
            "recover",
            "--recovery-code",
            &code,
            "--new-passphrase-file",
            again.to_str().unwrap(),
        ],
        "",
        LATER,
        "",
    );
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
    let listed = doc.run_with(&["pair", "list"], "", LATER, "after the recovery code");
    assert!(listed.stdout.contains("alice"), "{}", listed.stderr);
}

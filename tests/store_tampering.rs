//! The store file edited by someone with write access but no passphrase,
//! as an outside review did: rows planted in an older form, destructions
//! that never happened, rows deleted, plain columns that decide when or
//! whether. Each must be refused as a modification (exit 10), never acted
//! on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{NOV, Party, paired};

const MODIFIED: i32 = 10;

fn count(store: &Path, query: &str) -> i64 {
    let conn = rusqlite::Connection::open(store).unwrap();
    conn.query_row(query, [], |r| r.get(0)).unwrap()
}

fn assert_modified(party: &Party, args: &[&str], stdin: &str, what: &str) {
    let run = party.run_at(args, stdin, NOV);
    assert_eq!(run.code, MODIFIED, "{what}: {args:?}: {}", run.stderr);
    assert!(
        run.stderr.contains("modified outside MedCrypt"),
        "{what}: {}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{what}: {}", run.stdout);
}

/// A physician paired with alice and bob; returns the physician, alice's
/// store and bob's store.
fn practice(dir: &Path) -> (Party, Party, Party) {
    let (doc, alice, _) = paired(dir);
    let bob = Party::new(dir, "bob");
    bob.ok(&["init"], "", NOV);
    let png = dir.join("bob.png");
    doc.ok(
        &[
            "pair",
            "new",
            "--patient",
            "bob",
            "--qr-png",
            png.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    bob.ok(
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
    (doc, alice, bob)
}

#[test]
fn deleting_the_audit_state_does_not_rebuild_the_store_from_planted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, alice, bob) = practice(dir.path());
    let from_alice = alice.encrypt("dr-silva", "My pharmacy is on Elm St.", NOV);
    assert_eq!(doc.decrypt(&from_alice, NOV).code, 0);
    // The reviewer's script: old-form tables planted, aliases swapped, the
    // sealed records dropped, a chat link and settings of the attacker's.
    common::sql(
        &doc.store,
        "DELETE FROM audit_state; DELETE FROM audit_log;
         CREATE TABLE seen(pairing_id,epoch,direction,sequence);
         CREATE TABLE send_sequence(pairing_id,epoch,direction,last);
         CREATE TABLE chat_bindings(pairing_id INTEGER PRIMARY KEY, chat_id, bound_at);
         UPDATE pairings SET alias='tmp' WHERE id=1; UPDATE pairings SET alias='alice' WHERE id=2;
         UPDATE pairings SET alias='bob' WHERE id=1;
         UPDATE pairings SET record=NULL;
         INSERT INTO chat_bindings VALUES(2,666666,'2026-11-20T10:00:00Z');
         UPDATE meta SET value='forever' WHERE key='retention';
         INSERT OR REPLACE INTO meta(key,value) VALUES('agent.owner_chat','666666'),('name','Dr Mallory');
         DELETE FROM history;",
    );
    assert_modified(&doc, &["pair", "list"], "", "planted old form");
    assert_modified(&doc, &["config", "show"], "", "planted old form");
    assert_modified(
        &doc,
        &["encrypt", "--to", "alice", "Your HIV test is positive"],
        "",
        "planted old form",
    );
    assert_modified(&doc, &["decrypt"], &from_alice, "planted old form");
    // Nothing was rebuilt from the planted rows.
    assert_eq!(count(&doc.store, "SELECT count(*) FROM chat_links"), 0);
    assert_eq!(
        count(
            &doc.store,
            "SELECT count(*) FROM pairings WHERE record IS NULL"
        ),
        2
    );
    let _ = bob;
}

#[test]
fn a_planted_destruction_record_reopens_no_replay_and_resets_no_counter() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, alice, _) = paired(dir.path());
    let wire = doc.encrypt("alice", "Biopsy: benign.", NOV);
    assert_eq!(alice.decrypt(&wire, NOV).code, 0);
    common::sql(
        &alice.store,
        "INSERT OR REPLACE INTO shredded VALUES(1,'2026-11','2026-11-20T09:00:00Z','2026-12-08T00:00:00Z',1,0);
         DELETE FROM history;",
    );
    assert_modified(&alice, &["decrypt"], &wire, "planted destruction");
    assert_modified(&alice, &["keys", "list"], "", "planted destruction");
    assert_modified(
        &alice,
        &["encrypt", "--to", "dr-silva", "thanks"],
        "",
        "planted destruction",
    );
    // The same record marked as already audited is no better.
    common::sql(&alice.store, "UPDATE shredded SET audited = 1");
    assert_modified(&alice, &["keys", "list"], "", "planted destruction");
}

#[test]
fn deleted_rows_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, alice, bob) = practice(dir.path());
    doc.ok(
        &["config", "set", "telegram-bot", "silva_clinic_bot"],
        "",
        NOV,
    );
    doc.ok(
        &["send", "--to", "alice", "Your results are ready."],
        "",
        NOV,
    );
    let from_alice = alice.encrypt("dr-silva", "Still itching.", NOV);
    assert_eq!(doc.decrypt(&from_alice, NOV).code, 0);
    let pristine = std::fs::read(&doc.store).unwrap();
    for (what, statement) in [
        ("a setting", "DELETE FROM meta WHERE key = 'telegram_bot'"),
        ("the owner's name", "DELETE FROM meta WHERE key = 'name'"),
        ("an outbox item", "DELETE FROM outbox"),
        ("a pairing", "DELETE FROM pairings WHERE alias = 'bob'"),
        ("a received message", "DELETE FROM history"),
        (
            "a received message, with a forged tombstone",
            "INSERT INTO history_gone SELECT id, pairing_id, epoch, scope, '2026-11-01T00:00:00Z' FROM history;
             DELETE FROM history",
        ),
        ("the list of outbox items", "DELETE FROM manifests WHERE family = 'outbox'"),
    ] {
        std::fs::write(&doc.store, &pristine).unwrap();
        assert_eq!(doc.run_at(&["pair", "list"], "", NOV).code, 0, "{what}");
        std::fs::write(&doc.store, &pristine).unwrap();
        common::sql(&doc.store, statement);
        assert_modified(&doc, &["pair", "list"], "", what);
    }
    let _ = bob;
}

#[test]
fn outbox_retry_does_not_launder_a_forged_row() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, _alice, _) = paired(dir.path());
    doc.ok(
        &["send", "--to", "alice", "Your results are ready."],
        "",
        NOV,
    );
    common::sql(
        &doc.store,
        "UPDATE outbox SET state='failed', attempts=7, created_at='2020-01-01T00:00:00Z'",
    );
    assert_modified(&doc, &["outbox", "retry", "1"], "", "forged outbox row");
    assert_modified(&doc, &["outbox"], "", "forged outbox row");
}

#[test]
fn the_keyless_shredder_takes_the_due_time_from_the_month_not_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, alice, _) = paired(dir.path());
    let wire = doc.encrypt("alice", "Biopsy: benign.", NOV);
    assert_eq!(alice.decrypt(&wire, NOV).code, 0);
    // December's key exists (looked ahead), so November's may go.
    alice.ok(&["keys", "list"], "", "2026-11-30T12:00:00Z");
    common::sql(
        &alice.store,
        "UPDATE shred_keys SET due_at = '9999-01-01T00:00:00Z'",
    );
    let mut destroyed = String::new();
    for day in ["2026-12-02", "2026-12-04", "2026-12-06", "2026-12-08"] {
        let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
            .arg("--store")
            .arg(&alice.store)
            .args(["keys", "shred"])
            .env("MEDCRYPT_NOW", format!("{day}T10:00:00Z"))
            .env_remove("MEDCRYPT_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        destroyed.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(
        destroyed.contains("Destroyed the 2026-11 key"),
        "{destroyed}"
    );
}

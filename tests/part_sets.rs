//! Unfinished sets of parts received in a chat are bounded: they expire,
//! and a chat keeps only a few of them, so junk parts cannot fill the disk.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, TimeDelta, Utc};
use medcrypt::attachment::PartHeader;
use medcrypt::store::{PART_SETS_PER_CHAT, PartSet, Retention, Store};
use secrecy::SecretString;

fn now() -> DateTime<Utc> {
    medcrypt::parse_utc("2026-11-20T10:00:00Z").unwrap()
}

fn part(id: u8, index: u16, count: u16) -> (PartHeader, Vec<u8>) {
    let header = PartHeader {
        file_id: [id; 16],
        index,
        count,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&[id; 100]);
    (header, bytes)
}

#[test]
fn unfinished_sets_are_capped_per_chat_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let passphrase = SecretString::from("a long enough passphrase".to_owned());
    let (store, _, _) = Store::create(
        &dir.path().join("s.sqlite"),
        &passphrase,
        "Dr",
        Retention::KeyLifetime,
        now(),
    )
    .unwrap();
    // Five unfinished sets in one chat: the oldest goes.
    for id in 1..=5u8 {
        let (h, b) = part(id, 1, 2);
        let at = now() + TimeDelta::minutes(i64::from(id));
        assert!(matches!(
            store.telegram_part(&h, "7", &b, at).unwrap(),
            PartSet::Waiting
        ));
    }
    assert_eq!(PART_SETS_PER_CHAT, 4);
    let (h, b) = part(1, 2, 2);
    assert!(
        matches!(
            store
                .telegram_part(&h, "7", &b, now() + TimeDelta::minutes(9))
                .unwrap(),
            PartSet::Waiting
        ),
        "set 1 was dropped as the oldest: its second part starts it again"
    );
    let (h, b) = part(5, 2, 2);
    match store
        .telegram_part(&h, "7", &b, now() + TimeDelta::minutes(10))
        .unwrap()
    {
        PartSet::Complete => {
            let mut whole = Vec::new();
            store.write_part_set(&h.file_id, "7", &mut whole).unwrap();
            assert_eq!(
                whole.len(),
                2 * (b.len() - 30),
                "both parts, without headers"
            );
            store.drop_part_set(&h.file_id).unwrap();
        }
        other => panic!("set 5 should be complete: {other:?}"),
    }
    // Another chat is not affected by chat 7's sets.
    let (h, b) = part(9, 1, 2);
    store.telegram_part(&h, "8", &b, now()).unwrap();
    // A week later, unfinished sets are gone.
    let later = now() + TimeDelta::days(8);
    let (h, b) = part(9, 2, 2);
    assert!(
        matches!(
            store.telegram_part(&h, "8", &b, later).unwrap(),
            PartSet::Waiting
        ),
        "the expired first part was dropped"
    );
}

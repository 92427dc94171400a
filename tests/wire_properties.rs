//! Properties of the v2 wire format that must hold for every message.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Utc};
use common::forge;
use medcrypt::{
    DecryptError, Direction, Epoch, EpochChain, EpochKey, MAX_TEXT_BYTES, PairingSecret, Payload,
    Role, WireMessage,
};
use proptest::prelude::*;

/// An instant from RFC 3339 text.
fn utc(text: &str) -> DateTime<Utc> {
    medcrypt::parse_utc(text).unwrap_or(DateTime::UNIX_EPOCH)
}

fn now() -> DateTime<Utc> {
    utc("2026-11-22T10:00:00Z")
}

fn chain(seed: u8) -> EpochChain {
    let epoch: Epoch = "2026-11".parse().unwrap();
    EpochChain::new(PairingSecret::from_bytes(&[seed; 32]).first_epoch_key(epoch))
}

fn key(chain: &EpochChain) -> EpochKey {
    chain
        .key_for("2026-11".parse().unwrap())
        .unwrap()
        .into_owned()
}

fn seal_text(chain: &EpochChain, direction: Direction, text: &str) -> String {
    WireMessage::seal(&key(chain), direction, 1, &Payload::Text(text.into()))
        .unwrap()
        .to_text()
}

fn open(chain: &EpochChain, receiver: Role, text: &str) -> Result<String, DecryptError> {
    let opened = WireMessage::parse(text)?.open(chain, receiver, now())?;
    let Payload::Text(text) = opened.payload;
    Ok(text)
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let chain = chain(1);
    let wire = seal_text(
        &chain,
        Direction::PatientToPhysician,
        "Chest pain since this morning.",
    );
    assert!(open(&chain, Role::Physician, &wire).is_ok());
    let bytes = wire.as_bytes();
    let mut checked = 0;
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.to_vec();
            flipped[i] ^= 1 << bit;
            // A flip that makes invalid UTF-8 cannot even be pasted as text.
            let Ok(text) = String::from_utf8(flipped) else {
                continue;
            };
            assert!(
                open(&chain, Role::Physician, &text).is_err(),
                "flip of bit {bit} in byte {i} was accepted"
            );
            checked += 1;
        }
    }
    assert!(checked > bytes.len() * 6);
}

#[test]
fn every_truncation_is_rejected() {
    let chain = chain(2);
    let wire = seal_text(
        &chain,
        Direction::PhysicianToPatient,
        "Take 1 tablet twice daily.",
    );
    for len in 0..wire.len() {
        assert!(
            open(&chain, Role::Patient, &wire[..len]).is_err(),
            "accepted a cut at {len}"
        );
    }
    // And appended data is rejected too.
    assert!(open(&chain, Role::Patient, &format!("{wire}A")).is_err());
    assert!(open(&chain, Role::Patient, &format!("{wire}AAAA")).is_err());
}

#[test]
fn other_direction_key_and_other_pairing_are_rejected() {
    let chain = chain(3);
    let wire = seal_text(&chain, Direction::PhysicianToPatient, "results attached");
    // The physician cannot open their own message: it is reflected.
    assert_eq!(
        open(&chain, Role::Physician, &wire),
        Err(DecryptError::Reflected)
    );

    // The same ciphertext relabelled as the patient's direction (checksum
    // recomputed, so it passes transit checks) is tried under the other
    // direction's key and fails authentication.
    let relabelled = forge(&wire, |body| body[4] = Direction::PatientToPhysician.code());
    assert_eq!(
        open(&chain, Role::Physician, &relabelled),
        Err(DecryptError::AuthenticationFailed)
    );

    // Another pairing's keys: unknown key hint.
    assert_eq!(
        open(&self::chain(4), Role::Patient, &wire),
        Err(DecryptError::UnknownKeyHint)
    );
}

#[test]
fn nonces_differ_between_identical_messages() {
    let chain = chain(5);
    let a = seal_text(&chain, Direction::PhysicianToPatient, "same");
    let b = seal_text(&chain, Direction::PhysicianToPatient, "same");
    assert_ne!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_any_text(text in "\\PC{0,400}", seq in any::<u32>(), physician_sends in any::<bool>()) {
        let chain = chain(6);
        let (direction, receiver) = if physician_sends {
            (Direction::PhysicianToPatient, Role::Patient)
        } else {
            (Direction::PatientToPhysician, Role::Physician)
        };
        let msg = WireMessage::seal(&key(&chain), direction, seq, &Payload::Text(text.clone())).unwrap();
        let wire = msg.to_text();
        prop_assert!(wire.is_ascii());
        prop_assert!(!wire.contains(char::is_whitespace));
        let opened = WireMessage::parse(&wire).unwrap().open(&chain, receiver, now()).unwrap();
        prop_assert_eq!(opened.payload, Payload::Text(text));
        prop_assert_eq!(opened.replay_id.sequence, seq);
        prop_assert_eq!(opened.replay_id.direction, direction);
    }

    #[test]
    fn round_trip_up_to_maximum(len in 0usize..=MAX_TEXT_BYTES) {
        let chain = chain(7);
        let text = "é".repeat(len / 2) + &"a".repeat(len % 2);
        let wire = seal_text(&chain, Direction::PhysicianToPatient, &text);
        prop_assert!(wire.len() <= medcrypt::CHAT_MESSAGE_LIMIT);
        prop_assert_eq!(open(&chain, Role::Patient, &wire).unwrap(), text);
    }

    #[test]
    fn garbage_never_panics(input in "\\PC{0,200}") {
        let chain = chain(8);
        let _ = open(&chain, Role::Patient, &input);
        let _ = open(&chain, Role::Patient, &format!("MEDCRYPT:v2:{input}"));
    }
}

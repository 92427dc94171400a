//! Unit tests of the audit chain: sealing, verification, each kind of
//! tampering, checkpoints.

use super::*;
use crate::protocol::epoch::utc;

fn event(action: &str, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        time: crate::protocol::epoch::format_utc(at),
        actor: "Dr. Test".into(),
        action: action.into(),
        subject: "alice".into(),
        outcome: "ok".into(),
        details: BTreeMap::new(),
    }
}

/// A log over three days with an empty day in the middle.
fn log() -> (Vec<Record>, SealingKey, [u8; 32], Sealer) {
    let enc = [9u8; 32];
    let start = utc("2026-11-20T08:00:00Z");
    let verification = SealingKey::generate(day_of(start));
    let mut sealer = Sealer::new(
        &enc,
        SealingKey::from_bytes(verification.day(), verification.expose_bytes()),
        0,
        [0; 32],
    );
    let mut records = Vec::new();
    for (i, at) in [
        utc("2026-11-20T08:00:00Z"),
        utc("2026-11-20T09:00:00Z"),
        utc("2026-11-20T10:00:00Z"),
        utc("2026-11-22T09:00:00Z"),
        utc("2026-11-22T09:30:00Z"),
        utc("2026-11-22T10:30:00Z"),
    ]
    .into_iter()
    .enumerate()
    {
        records.extend(sealer.append(&event(&format!("act{i}"), at), at));
    }
    (records, verification, enc, sealer)
}

fn check(
    records: &[Record],
    verification: &SealingKey,
    enc: &[u8; 32],
) -> Result<VerifyReport, AuditFault> {
    verify(
        records,
        Trust::VerificationKey(verification),
        Some(enc),
        0,
        None,
    )
}

#[test]
fn intact_log_verifies_and_seals_empty_days() {
    let (records, verification, enc, sealer) = log();
    let report = check(&records, &verification, &enc).unwrap();
    assert_eq!((report.entries, report.seals, report.days), (6, 2, 3));
    assert!(report.full);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.kind == RecordKind::Seal)
            .count(),
        2
    );
    assert_eq!(open_body(&enc, &records[0]).unwrap().action, "act0");
    // Local verification from the current key checks today's records.
    let local = verify(
        &records,
        Trust::CurrentKey(sealer.key()),
        Some(&enc),
        sealer.last_seq(),
        None,
    )
    .unwrap();
    assert!(!local.full);
}

#[test]
fn each_kind_of_tampering_is_named() {
    let (records, verification, enc, sealer) = log();

    let mut modified = records.clone();
    modified[1].body[20] ^= 1;
    assert_eq!(
        check(&modified, &verification, &enc).unwrap_err(),
        AuditFault::Modified { seq: 2 }
    );

    let mut deleted = records.clone();
    deleted.remove(2);
    assert_eq!(
        check(&deleted, &verification, &enc).unwrap_err(),
        AuditFault::Missing { first: 3, last: 3 }
    );

    let mut swapped = records.clone();
    let (a, b) = (swapped[1].clone(), swapped[2].clone());
    swapped[1] = Record { seq: 2, ..b };
    swapped[2] = Record { seq: 3, ..a };
    assert_eq!(
        check(&swapped, &verification, &enc).unwrap_err(),
        AuditFault::Reordered {
            seq: 2,
            sealed_as: 3
        }
    );

    let mut inserted = records.clone();
    let forged = Record {
        seq: 2,
        day: records[1].day,
        kind: RecordKind::Entry,
        body: vec![0; 40],
        mac: [7; 32],
    };
    inserted.insert(1, forged);
    for (i, r) in inserted.iter_mut().enumerate().skip(2) {
        r.seq = i as u64 + 1;
    }
    assert_eq!(
        check(&inserted, &verification, &enc).unwrap_err(),
        AuditFault::Inserted { seq: 2 }
    );

    let cut: Vec<Record> = records[..3].to_vec();
    assert_eq!(
        verify(
            &cut,
            Trust::VerificationKey(&verification),
            Some(&enc),
            sealer.last_seq(),
            None
        )
        .unwrap_err(),
        AuditFault::Truncated {
            last: 3,
            expected: records.len() as u64
        }
    );
}

#[test]
fn tail_rewritten_with_the_current_key_is_caught() {
    let (records, verification, enc, sealer) = log();
    // The thief holds only today's key: they cut everything after entry 2
    // (day one) and write their own story under today's key.
    let mut thief = Sealer::new(
        &enc,
        SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes()),
        2,
        records[1].mac,
    );
    let mut forged = records[..2].to_vec();
    forged.extend(thief.append(
        &event("nothing_happened", utc("2026-11-22T11:00:00Z")),
        utc("2026-11-22T11:00:00Z"),
    ));
    let fault = check(&forged, &verification, &enc).unwrap_err();
    assert_eq!(fault.kind(), "day_not_sealed", "{fault}");

    // Forging the missing seals under today's key does not help.
    let mut relabelled = records[..2].to_vec();
    let mut body_source = Sealer::new(
        &enc,
        SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes()),
        2,
        records[1].mac,
    );
    let mut fake_seal = body_source
        .append(
            &event("x", utc("2026-11-22T11:00:00Z")),
            utc("2026-11-22T11:00:00Z"),
        )
        .remove(0);
    fake_seal.day = records[0].day;
    fake_seal.kind = RecordKind::Seal;
    fake_seal.mac = SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes()).mac(
        3,
        RecordKind::Seal,
        &fake_seal.body,
        &records[1].mac,
    );
    relabelled.push(fake_seal);
    let fault = check(&relabelled, &verification, &enc).unwrap_err();
    assert_eq!(fault.kind(), "wrong_day_key", "{fault}");
}

#[test]
fn checkpoint_detects_truncation_and_rewrite() {
    let (records, verification, enc, _) = log();
    let cp = Checkpoint::new(records[5].seq, &records[5].mac, utc("2026-11-22T12:00:00Z"));
    let cp = Checkpoint::parse(&cp.to_text()).unwrap();
    assert!(
        verify(
            &records,
            Trust::VerificationKey(&verification),
            Some(&enc),
            0,
            Some(&cp)
        )
        .is_ok()
    );
    let cut = records[..5].to_vec();
    assert_eq!(
        verify(
            &cut,
            Trust::VerificationKey(&verification),
            Some(&enc),
            0,
            Some(&cp)
        )
        .unwrap_err()
        .kind(),
        "truncated"
    );
    let mut other = cp.clone();
    other.mac_prefix[0] ^= 1;
    assert_eq!(
        verify(
            &records,
            Trust::VerificationKey(&verification),
            Some(&enc),
            0,
            Some(&other)
        )
        .unwrap_err()
        .kind(),
        "checkpoint_mismatch"
    );
    assert!(Checkpoint::parse("MEDCRYPT-AUDIT:v1:x:00:t").is_err());
}

#[test]
fn keys_step_forward_only_and_debug_is_redacted() {
    let k = SealingKey::from_bytes(100, &[1; 32]);
    let k1 = k.step();
    assert_eq!(k1.day(), 101);
    assert_ne!(k1.expose_bytes(), k.expose_bytes());
    assert_eq!(format!("{k:?}"), "SealingKey(day 100, [REDACTED])");
}

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
    sealer: &Sealer,
) -> Result<VerifyReport, AuditFault> {
    verify(
        records,
        Trust::VerificationKey(verification),
        Some(enc),
        &sealer.head(),
        None,
    )
}

#[test]
fn intact_log_verifies_and_seals_empty_days() {
    let (records, verification, enc, sealer) = log();
    let report = check(&records, &verification, &enc, &sealer).unwrap();
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
        &sealer.head(),
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
        check(&modified, &verification, &enc, &sealer).unwrap_err(),
        AuditFault::Modified { seq: 2 }
    );

    let mut deleted = records.clone();
    deleted.remove(2);
    assert_eq!(
        check(&deleted, &verification, &enc, &sealer).unwrap_err(),
        AuditFault::Missing { first: 3, last: 3 }
    );

    let mut swapped = records.clone();
    let (a, b) = (swapped[1].clone(), swapped[2].clone());
    swapped[1] = Record { seq: 2, ..b };
    swapped[2] = Record { seq: 3, ..a };
    assert_eq!(
        check(&swapped, &verification, &enc, &sealer).unwrap_err(),
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
        check(&inserted, &verification, &enc, &sealer).unwrap_err(),
        AuditFault::Inserted { seq: 2 }
    );

    let cut: Vec<Record> = records[..3].to_vec();
    assert_eq!(
        verify(
            &cut,
            Trust::VerificationKey(&verification),
            Some(&enc),
            &sealer.head(),
            None
        )
        .unwrap_err(),
        AuditFault::HeadMismatch {
            head: records.len() as u64,
            last: 3
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
    let fault = check(&forged, &verification, &enc, &sealer).unwrap_err();
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
    let fault = check(&relabelled, &verification, &enc, &sealer).unwrap_err();
    assert_eq!(fault.kind(), "wrong_day_key", "{fault}");
}

#[test]
fn checkpoint_detects_truncation_and_rewrite() {
    let (records, verification, enc, sealer) = log();
    let cp = Checkpoint::new(
        Some("0a0b0c0d0e"),
        records[5].seq,
        &records[5].mac,
        utc("2026-11-22T12:00:00Z"),
    );
    let cp = Checkpoint::parse(&cp.to_text()).unwrap();
    assert!(
        verify(
            &records,
            Trust::VerificationKey(&verification),
            Some(&enc),
            &sealer.head(),
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
            &sealer.head(),
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
            &sealer.head(),
            Some(&other)
        )
        .unwrap_err()
        .kind(),
        "checkpoint_mismatch"
    );
    assert!(Checkpoint::parse("MEDCRYPT-AUDIT:v1:x:00:t").is_err());
}

#[test]
fn a_mistyped_checkpoint_reads_as_a_typo() {
    let cp = Checkpoint::new(
        Some("0a0b0c0d0e"),
        42,
        &[0xab; 32],
        utc("2026-11-22T12:00:00Z"),
    );
    let text = cp.to_text();
    assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
    assert_eq!(
        Checkpoint::parse(
            &text
                .to_uppercase()
                .replace("MEDCRYPT-AUDIT:V2", "MEDCRYPT-AUDIT:v2")
        )
        .map(|c| c.seq),
        Ok(42)
    );
    // One hex digit of the MAC changed: a typo, never "rewritten".
    let typo = text.replacen(":abab", ":abac", 1);
    assert_ne!(typo, text);
    assert_eq!(Checkpoint::parse(&typo), Err(CheckpointError::Typo));
    // Cut short in copying.
    assert!(Checkpoint::parse(&text[..text.len() - 3]).is_err());
    // A first-release line is still read.
    let v1 = format!(
        "MEDCRYPT-AUDIT:v1:42:{}:2026-11-22T12:00:00Z",
        "ab".repeat(16)
    );
    assert_eq!(
        Checkpoint::parse(&v1).map(|c| (c.seq, c.store_id)),
        Ok((42, None))
    );
}

#[test]
fn the_head_binds_the_end_of_the_log_to_the_key() {
    let (records, verification, enc, sealer) = log();
    let head = sealer.head();
    // An empty log is never OK.
    assert_eq!(
        verify(
            &[],
            Trust::VerificationKey(&verification),
            Some(&enc),
            &head,
            None
        )
        .unwrap_err(),
        AuditFault::Empty
    );
    // Cut the tail and set the head to match, without the key: the head
    // MAC gives it away.
    let cut = records[..records.len() - 2].to_vec();
    let forged_head = Head {
        key: sealer.key(),
        last_seq: cut.last().unwrap().seq,
        last_mac: cut.last().unwrap().mac,
        head_mac: head.head_mac,
    };
    for trust in [
        Trust::VerificationKey(&verification),
        Trust::CurrentKey(sealer.key()),
    ] {
        assert_eq!(
            verify(&cut, trust, Some(&enc), &forged_head, None)
                .unwrap_err()
                .kind(),
            "head_mismatch"
        );
    }
    // The store's key replaced by another day's (a rolled-back state).
    let other = SealingKey::generate(sealer.key().day());
    let rolled = Head {
        key: &other,
        ..sealer.head()
    };
    assert_eq!(
        verify(
            &records,
            Trust::VerificationKey(&verification),
            Some(&enc),
            &rolled,
            None
        )
        .unwrap_err()
        .kind(),
        "state_replaced"
    );
    // Another store's code: neither the first record nor the key.
    let foreign = SealingKey::generate(verification.day());
    assert_eq!(
        verify(
            &records,
            Trust::VerificationKey(&foreign),
            Some(&enc),
            &head,
            None
        )
        .unwrap_err(),
        AuditFault::ForeignCode
    );
    // Garbage past the head.
    let mut garbage = records.clone();
    garbage.push(Record {
        seq: records.len() as u64 + 1,
        day: 0,
        kind: RecordKind::Entry,
        body: vec![1; 3],
        mac: [0; 32],
    });
    assert_eq!(
        verify(
            &garbage,
            Trust::VerificationKey(&verification),
            Some(&enc),
            &head,
            None
        )
        .unwrap_err(),
        AuditFault::BeyondHead {
            first: records.len() as u64 + 1,
            last: records.len() as u64 + 1
        }
    );
}

#[test]
fn a_recorded_repair_may_follow_a_cut_across_days_and_is_named() {
    let (records, verification, enc, sealer) = log();
    // Cut after entry 2 (day one); a repair entry follows under today's key.
    let mut repairer = Sealer::new(
        &enc,
        SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes()),
        2,
        records[1].mac,
    );
    let mut repaired = records[..2].to_vec();
    repaired.push(repairer.push_entry(&event("audit_repair", utc("2026-11-22T11:00:00Z"))));
    let report = verify(
        &repaired,
        Trust::VerificationKey(&verification),
        Some(&enc),
        &repairer.head(),
        None,
    )
    .unwrap();
    assert_eq!(report.repairs, vec![3]);
    // Any other entry there is a cut.
    let mut thief = Sealer::new(
        &enc,
        SealingKey::from_bytes(sealer.key().day(), sealer.key().expose_bytes()),
        2,
        records[1].mac,
    );
    let mut forged = records[..2].to_vec();
    forged.push(thief.push_entry(&event("nothing_happened", utc("2026-11-22T11:00:00Z"))));
    assert_eq!(
        verify(
            &forged,
            Trust::VerificationKey(&verification),
            Some(&enc),
            &thief.head(),
            None
        )
        .unwrap_err()
        .kind(),
        "day_not_sealed"
    );
}

#[test]
fn keys_step_forward_only_and_debug_is_redacted() {
    let k = SealingKey::from_bytes(100, &[1; 32]);
    let k1 = k.step();
    assert_eq!(k1.day(), 101);
    assert_ne!(k1.expose_bytes(), k.expose_bytes());
    assert_eq!(format!("{k:?}"), "SealingKey(day 100, [REDACTED])");
}

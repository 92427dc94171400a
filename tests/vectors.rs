//! Conformance: the files in wire-spec/vectors/ are what the generator
//! produces, and every case gives the expected result through the public API.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use chrono::{DateTime, Utc};
use medcrypt::vectors::{AttachmentFile, KeyScheduleFile, LegacyFile, ReplayIdVector, WireFile};
use medcrypt::{
    Direction, Epoch, EpochChain, LegacyMessage, LegacyPairing, PairingSecret, Role, WireMessage,
};
use secrecy::{ExposeSecret, SecretString};

fn vector_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("wire-spec/vectors")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn secret(hex_text: &str) -> PairingSecret {
    let bytes: [u8; 32] = hex::decode(hex_text).unwrap().try_into().unwrap();
    PairingSecret::from_bytes(&bytes)
}

fn now(text: &str) -> DateTime<Utc> {
    medcrypt::parse_utc(text).unwrap()
}

#[test]
fn files_match_generator() {
    for (name, generated) in medcrypt::vectors::generate() {
        assert!(
            vector_file(name) == generated,
            "wire-spec/vectors/{name} differs from the generator: run \
             `cargo run --example generate_vectors` and review the diff"
        );
    }
}

#[test]
fn key_schedule_vectors() {
    let file: KeyScheduleFile = serde_json::from_str(&vector_file("keys.json")).unwrap();
    assert!(file.cases.len() >= 2);
    for case in file.cases {
        let secret = secret(&case.pairing_secret);
        let start: Epoch = case.start_epoch.parse().unwrap();
        assert_eq!(
            secret.pairing_token().as_str(),
            case.pairing_token,
            "{}",
            case.name
        );
        assert_eq!(
            secret.safety_number(start).to_string(),
            case.safety_number,
            "{}",
            case.name
        );
        let mut key = secret.first_epoch_key(start);
        for expected in &case.epochs {
            assert_eq!(key.epoch().to_string(), expected.epoch);
            assert_eq!(
                hex::encode(key.expose_bytes()),
                expected.epoch_key,
                "{}",
                case.name
            );
            assert_eq!(hex::encode(key.key_hint().0), expected.key_hint);
            for (direction, want) in [
                (
                    Direction::PhysicianToPatient,
                    &expected.message_key_physician_to_patient,
                ),
                (
                    Direction::PatientToPhysician,
                    &expected.message_key_patient_to_physician,
                ),
            ] {
                let got = hex::encode(key.message_key(direction).expose_bytes());
                assert_eq!(&got, want, "{} {direction:?}", case.name);
            }
            key = key.next().unwrap();
        }
    }
}

#[test]
fn v2_wire_vectors() {
    let file: WireFile = serde_json::from_str(&vector_file("v2.json")).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for case in &file.cases {
        let start: Epoch = case.start_epoch.parse().unwrap();
        let at = now(&case.now);
        let mut chain = EpochChain::new(secret(&case.pairing_secret).first_epoch_key(start));
        chain.advance(at);
        let receiver = match case.receiver.as_str() {
            "physician" => Role::Physician,
            "patient" => Role::Patient,
            other => panic!("bad receiver {other}"),
        };
        let result = WireMessage::parse(&case.wire).and_then(|m| m.open(&chain, receiver, at));
        match (case.expect.as_str(), result) {
            ("success", Ok(opened)) => {
                let medcrypt::Payload::Text(text) = opened.payload;
                assert_eq!(Some(text), case.plaintext, "{}", case.name);
                let direction = match opened.replay_id.direction {
                    Direction::PhysicianToPatient => "physician-to-patient",
                    Direction::PatientToPhysician => "patient-to-physician",
                };
                assert_eq!(
                    case.replay_id,
                    Some(ReplayIdVector {
                        epoch: opened.replay_id.epoch.to_string(),
                        direction: direction.into(),
                        sequence: opened.replay_id.sequence,
                    }),
                    "{}",
                    case.name
                );
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{}: {err}", case.name),
            (expect, Ok(_)) => panic!("{}: expected {expect}, got success", case.name),
        }
        kinds.insert(case.expect.clone());
    }
    for required in [
        "success",
        "malformed",
        "damaged",
        "unsupported_version",
        "unknown_key_hint",
        "expired",
        "not_yet_valid",
        "authentication_failed",
        "reflected",
    ] {
        assert!(kinds.contains(required), "no vector expects {required}");
    }
    // What a sender makes fits one chat message (a receiver also accepts
    // longer texts, which one vector shows).
    let longest = file
        .cases
        .iter()
        .filter(|c| c.name != "v2_over_maximum_length")
        .map(|c| c.wire.len())
        .max()
        .unwrap();
    assert!(longest <= medcrypt::CHAT_MESSAGE_LIMIT);
    assert!(
        longest > medcrypt::CHAT_MESSAGE_LIMIT - 32,
        "no maximum-length vector"
    );
}

#[test]
fn v1_legacy_vectors() {
    let file: LegacyFile = serde_json::from_str(&vector_file("v1.json")).unwrap();
    for mk in &file.month_keys {
        let key = medcrypt::derive_month_key(&mk.shared_secret, mk.month.parse().unwrap());
        assert_eq!(
            hex::encode(key.expose_secret()),
            mk.key,
            "month key {}",
            mk.month
        );
    }
    for case in &file.cases {
        let mut pairing = LegacyPairing::new(
            SecretString::from(case.shared_secret.clone()),
            case.patient_id.clone(),
        );
        let result =
            LegacyMessage::parse(&case.wire).and_then(|m| pairing.decrypt(&m, now(&case.now)));
        match (case.expect.as_str(), result) {
            ("success", Ok(text)) => assert_eq!(Some(text), case.plaintext, "{}", case.name),
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{}: {err}", case.name),
            (expect, Ok(_)) => panic!("{}: expected {expect}, got success", case.name),
        }
    }
}

fn apply_edit(mut file: Vec<u8>, edit: &serde_json::Value) -> Vec<u8> {
    if let Some(len) = edit.get("truncate_to").and_then(serde_json::Value::as_u64) {
        file.truncate(len as usize);
    }
    for key in ["then_append_hex", "append_hex"] {
        if let Some(extra) = edit.get(key).and_then(serde_json::Value::as_str) {
            file.extend_from_slice(&hex::decode(extra).unwrap());
        }
    }
    if let Some(flip) = edit.get("flip_bit").and_then(serde_json::Value::as_array) {
        let offset = flip[0].as_u64().unwrap() as usize;
        file[offset] ^= 1 << flip[1].as_u64().unwrap();
    }
    let range = |key: &str| {
        edit.get(key)
            .and_then(serde_json::Value::as_array)
            .map(|r| {
                r.iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect::<Vec<_>>()
            })
    };
    if let Some(r) = range("remove_range") {
        file.drain(r[0]..r[1]);
    }
    if let Some(r) = range("copy_range") {
        let copy = file[r[0]..r[1]].to_vec();
        file.splice(r[2]..r[2], copy);
    }
    file
}

#[test]
fn attachment_vectors() {
    use medcrypt::attachment::{Header, decrypt};
    use sha2::{Digest, Sha256};

    let file: AttachmentFile = serde_json::from_str(&vector_file("attachment.json")).unwrap();
    let mut files: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    let mut kinds = std::collections::BTreeSet::new();
    for case in &file.cases {
        let bytes = match (&case.file, &case.base, &case.edit) {
            (Some(hex_file), _, _) => hex::decode(hex_file).unwrap(),
            (None, Some(base), Some(edit)) => apply_edit(files[base.as_str()].clone(), edit),
            _ => panic!("{}: no file", case.name),
        };
        files.insert(case.name.clone(), bytes.clone());
        let at = now(&case.now);
        let mut chain = EpochChain::new(
            secret(&case.pairing_secret).first_epoch_key(case.start_epoch.parse().unwrap()),
        );
        chain.advance(at);
        let role = if case.receiver == "physician" {
            Role::Physician
        } else {
            Role::Patient
        };
        let mut out = Vec::new();
        let result = (|| {
            // ASCII armour (10.7) is taken off first.
            let bytes = if medcrypt::attachment::is_armored(&bytes) {
                medcrypt::attachment::dearmor(&bytes)?
            } else {
                bytes.clone()
            };
            let mut input = std::io::BufReader::new(&bytes[..]);
            let header = Header::read(&mut input)?;
            let key = header.unwrap(&chain, role, at)?;
            decrypt(input, &key, &mut out, &mut |_| {})
        })();
        match (case.expect.as_str(), result) {
            ("success", Ok(decrypted)) => {
                assert_eq!(
                    Some(&decrypted.metadata),
                    case.metadata.as_ref(),
                    "{}",
                    case.name
                );
                assert_eq!(
                    Some(hex::encode(Sha256::digest(&out))),
                    case.content_sha256,
                    "{}",
                    case.name
                );
                if let Some(content) = &case.content {
                    assert_eq!(&hex::encode(&out), content, "{}", case.name);
                } else {
                    assert_eq!(
                        out,
                        medcrypt::vectors::vector_content(out.len()),
                        "{}",
                        case.name
                    );
                }
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{}: {err}", case.name),
            (expect, Ok(_)) => panic!("{}: expected {expect}, got success", case.name),
        }
        kinds.insert(case.expect.clone());
    }
    for required in [
        "success",
        "unknown_key_hint",
        "reflected",
        "expired",
        "authentication_failed",
        "truncated",
        "chunk_modified",
        "appended_data",
        "empty_final_chunk",
        "not_attachment",
    ] {
        assert!(
            kinds.contains(required),
            "no attachment vector expects {required}"
        );
    }
}

fn json_file(name: &str) -> serde_json::Value {
    serde_json::from_str(&vector_file(name)).unwrap()
}

fn str_of<'a>(case: &'a serde_json::Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {case}"))
}

#[test]
fn code_vectors() {
    use medcrypt::audit::Checkpoint;
    use medcrypt::codes::{
        PairingInvite, RecoveryCode, parse_verification_code, read_pairing_code,
    };
    let file = json_file("codes.json");
    for case in file["invites"].as_array().unwrap() {
        let name = str_of(case, "name");
        match (
            str_of(case, "expect"),
            PairingInvite::from_uri(str_of(case, "uri")),
        ) {
            ("success", Ok(invite)) => {
                assert_eq!(
                    hex::encode(invite.secret.expose_bytes()),
                    case["secret"],
                    "{name}"
                );
                assert_eq!(invite.start.to_string(), case["start_epoch"], "{name}");
                assert_eq!(invite.physician_name, case["physician_name"], "{name}");
                assert_eq!(
                    invite.expires.map(|x| x.timestamp()),
                    case["expires"].as_i64(),
                    "{name}"
                );
                assert_eq!(
                    invite.telegram_bot.as_deref(),
                    case["telegram_bot"].as_str(),
                    "{name}"
                );
                assert_eq!(
                    invite.whatsapp_number.as_deref(),
                    case["whatsapp_number"].as_str(),
                    "{name}"
                );
                assert_eq!(
                    invite.secret.pairing_token().as_str(),
                    case["pairing_token"],
                    "{name}"
                );
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{name}: {err}"),
            (expect, Ok(_)) => panic!("{name}: expected {expect}, got success"),
        }
    }
    for case in file["pairing_codes"].as_array().unwrap() {
        let name = str_of(case, "name");
        match (
            str_of(case, "expect"),
            read_pairing_code(str_of(case, "code")),
        ) {
            ("success", Ok(typed)) => {
                assert_eq!(
                    hex::encode(typed.secret.expose_bytes()),
                    case["secret"],
                    "{name}"
                );
                assert_eq!(typed.start.to_string(), case["start_epoch"], "{name}");
                assert_eq!(
                    typed.expires.map(|x| x.timestamp()),
                    case["expires"].as_i64(),
                    "{name}"
                );
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{name}: {err}"),
            (expect, Ok(_)) => panic!("{name}: expected {expect}, got success"),
        }
    }
    for case in file["recovery_codes"].as_array().unwrap() {
        let name = str_of(case, "name");
        match (
            str_of(case, "expect"),
            RecoveryCode::parse(str_of(case, "code")),
        ) {
            ("success", Ok(code)) => {
                assert_eq!(hex::encode(code.expose_bytes()), case["key"], "{name}")
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{name}: {err}"),
            (expect, Ok(_)) => panic!("{name}: expected {expect}, got success"),
        }
    }
    for case in file["verification_codes"].as_array().unwrap() {
        let name = str_of(case, "name");
        match (
            str_of(case, "expect"),
            parse_verification_code(str_of(case, "code")),
        ) {
            ("success", Ok(code)) => {
                assert_eq!(hex::encode(code.key.expose_bytes()), case["key"], "{name}");
                assert_eq!(
                    u64::from(code.key.day()),
                    case["day"].as_u64().unwrap(),
                    "{name}"
                );
                assert_eq!(
                    code.store_id.map(hex::encode).as_deref(),
                    case["store_id"].as_str(),
                    "{name}"
                );
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{name}: {err}"),
            (expect, Ok(_)) => panic!("{name}: expected {expect}, got success"),
        }
    }
    for case in file["checkpoints"].as_array().unwrap() {
        let name = str_of(case, "name");
        match (
            str_of(case, "expect"),
            Checkpoint::parse(str_of(case, "line")),
        ) {
            ("success", Ok(cp)) => {
                assert_eq!(cp.store_id.as_deref(), case["store_id"].as_str(), "{name}");
                assert_eq!(cp.seq, case["seq"].as_u64().unwrap(), "{name}");
                assert_eq!(hex::encode(cp.mac_prefix), case["mac_prefix"], "{name}");
                assert_eq!(cp.time, case["time"], "{name}");
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{name}: {err}"),
            (expect, Ok(_)) => panic!("{name}: expected {expect}, got success"),
        }
    }
}

#[test]
fn share_vectors() {
    use medcrypt::shares::{ShareText, combine};
    for case in json_file("shares.json")["cases"].as_array().unwrap() {
        let name = str_of(case, "name");
        let result = case["shares"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, s)| ShareText::parse(s.as_str().unwrap(), i + 1))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|shares| combine(&shares));
        match (str_of(case, "expect"), result) {
            ("success", Ok(secret)) => {
                assert_eq!(
                    hex::encode(&secret.escrow_key[..]),
                    case["escrow_key"],
                    "{name}"
                );
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{name}: {err}"),
            (expect, Ok(_)) => panic!("{name}: expected {expect}, got success"),
        }
    }
}

#[test]
fn part_vectors() {
    use medcrypt::attachment::{Assembly, assemble};
    for case in json_file("parts.json")["cases"].as_array().unwrap() {
        let name = str_of(case, "name");
        let inputs: Vec<Vec<u8>> = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
            .collect();
        let heads: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        match (str_of(case, "expect"), assemble(&heads)) {
            ("whole", Ok(Assembly::Whole)) => {}
            ("parts", Ok(Assembly::Parts(order))) => {
                let want: Vec<usize> = serde_json::from_value(case["order"].clone()).unwrap();
                assert_eq!(order, want, "{name}");
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{name}: {err}"),
            (expect, Ok(got)) => panic!("{name}: expected {expect}, got {got:?}"),
        }
    }
}

#[test]
fn audit_vectors() {
    use medcrypt::audit::{Checkpoint, verify_export};
    use medcrypt::codes::parse_verification_code;
    let file = json_file("audit.json");
    let mut kinds = std::collections::BTreeSet::new();
    for case in file["cases"].as_array().unwrap() {
        let name = str_of(case, "name");
        let code = parse_verification_code(str_of(case, "code")).unwrap();
        let checkpoint = case["checkpoint"]
            .as_str()
            .map(|c| Checkpoint::parse(c).unwrap());
        let export = serde_json::to_vec(&case["export"]).unwrap();
        match (
            str_of(case, "expect"),
            verify_export(&export, &code, checkpoint.as_ref()),
        ) {
            ("success", Ok(verified)) => {
                let events: Vec<serde_json::Value> = verified
                    .events
                    .iter()
                    .map(|(seq, e)| {
                        let record = &case["export"]["records"][usize::try_from(*seq).unwrap() - 1];
                        assert_eq!(record["seq"].as_u64(), Some(*seq));
                        e.as_ref().map_or(record["event"].clone(), |e| {
                            serde_json::to_value(e).unwrap()
                        })
                    })
                    .collect();
                assert_eq!(
                    serde_json::Value::from(events),
                    file["events_of_audit_ok"],
                    "{name}"
                );
            }
            (expect, Err(err)) => assert_eq!(err.kind(), expect, "{name}: {err}"),
            (expect, Ok(_)) => panic!("{name}: expected {expect}, got success"),
        }
        kinds.insert(str_of(case, "expect").to_owned());
    }
    for kind in [
        "success",
        "modified",
        "missing",
        "reordered",
        "inserted",
        "wrong_day_key",
        "day_not_sealed",
        "head_mismatch",
        "not_to_day",
        "beyond_head",
        "truncated",
        "checkpoint_mismatch",
        "empty",
        "foreign_code",
    ] {
        assert!(kinds.contains(kind), "no audit vector expects {kind}");
    }
}

#[test]
fn there_are_well_over_a_hundred_cases() {
    let mut total = 0;
    for (name, text) in medcrypt::vectors::generate() {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (key, list) in value.as_object().unwrap() {
            if let Some(list) = list.as_array()
                && key != "events_of_audit_ok"
                && key != "month_keys"
            {
                total += list.len();
                assert!(!list.is_empty(), "{name}: {key} is empty");
            }
        }
    }
    assert!(total >= 150, "only {total} vector cases");
}

//! Vectors for what is typed, scanned or printed (`codes.json`), escrow
//! shares (`shares.json`), the assembly of parts (`parts.json`) and the
//! audit log as exported (`audit.json`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::protocol::attachment::PartHeader;
use crate::protocol::audit::{
    self, AuditEvent, Checkpoint, ExportHead, Record, RecordKind, Sealer, SealingKey,
};
use crate::protocol::codes::{self, PairingInvite, RecoveryCode};
use crate::protocol::epoch::{Epoch, format_utc, utc};
use crate::protocol::keys::PairingSecret;
use crate::protocol::shares::{EscrowSecret, split_for_vectors};

fn bytes_of(label: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut counter = 0u32;
    while out.len() < len {
        counter += 1;
        out.extend_from_slice(&Sha256::digest(format!(
            "medcrypt test vector bytes:{label}:{counter}"
        )));
    }
    out.truncate(len);
    out
}

fn array<const N: usize>(label: &str) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes_of(label, N));
    out
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ep(text: &str) -> Epoch {
    text.parse()
        .unwrap_or_else(|_| Epoch::containing(DateTime::UNIX_EPOCH))
}

/// `codes.json`.
pub(super) fn codes() -> Value {
    let secret = array::<32>("invite secret");
    let expires = utc("2026-11-23T10:00:00Z");
    let invite =
        |name: &str, tg: Option<&str>, wa: Option<&str>, x: Option<DateTime<Utc>>| PairingInvite {
            secret: PairingSecret::from_bytes(&secret),
            start: ep("2026-11"),
            physician_name: name.into(),
            telegram_bot: tg.map(str::to_owned),
            whatsapp_number: wa.map(str::to_owned),
            expires: x,
        };
    let full = invite(
        "Dra. Núñez & Ana",
        Some("silva_clinic_bot"),
        Some("+34 (600) 123-456"),
        Some(expires),
    );
    let uri = full.to_uri().to_string();
    let token = PairingSecret::from_bytes(&secret)
        .pairing_token()
        .as_str()
        .to_owned();
    let ok = |name: &str, comment: &str, uri: String, inv: &PairingInvite| {
        json!({
            "name": name, "comment": comment, "uri": uri, "expect": "success",
            "secret": hex::encode(inv.secret.expose_bytes()),
            "start_epoch": inv.start.to_string(),
            "physician_name": inv.physician_name,
            "expires": inv.expires.map(|x| x.timestamp()),
            "telegram_bot": inv.telegram_bot,
            "whatsapp_number": inv.whatsapp_number,
            "pairing_token": token,
        })
    };
    let bad = |name: &str, comment: &str, uri: String| json!({ "name": name, "comment": comment, "uri": uri, "expect": "invalid" });
    let base = uri.split("&n=").next().unwrap_or_default().to_owned();
    let s_value = base64url(&secret);
    let mut invites = vec![
        ok(
            "invite_full",
            "Every parameter: name with a non-ASCII letter and '&', Telegram bot, WhatsApp number, expiry.",
            uri.clone(),
            &full,
        ),
        ok(
            "invite_minimal",
            "Only s, e and an empty n: no expiry (a first-release QR code).",
            format!("{base}&n="),
            &invite("", None, None, None),
        ),
        ok(
            "invite_unknown_parameter",
            "An unknown parameter is ignored.",
            format!("{uri}&future=1"),
            &full,
        ),
        ok(
            "invite_parameters_reordered",
            "Parameters in another order.",
            format!("medcrypt://pair/v2?n=&e=2026-11&s={s_value}"),
            &invite("", None, None, None),
        ),
        ok(
            "invite_sub_delims_unencoded",
            "Parentheses left unencoded in the number (RFC 3986 query characters other than & = + stand for themselves).",
            format!("{base}&n=&wa=%2B34%20(600)%20123-456"),
            &invite("", None, Some("+34 (600) 123-456"), None),
        ),
    ];
    for (name, comment, uri) in [
        (
            "invite_expiry_after_9999",
            "x after 9999-12-31T23:59:59Z.",
            format!("{base}&n=&x=253402300800"),
        ),
        (
            "invite_wrong_scheme",
            "Another prefix.",
            uri.replacen("medcrypt://pair/v2?", "medcrypt://pair/v3?", 1),
        ),
        (
            "invite_no_secret",
            "No s.",
            uri.replacen(&format!("s={s_value}&"), "", 1),
        ),
        (
            "invite_no_epoch",
            "No e.",
            uri.replacen("&e=2026-11", "", 1),
        ),
        (
            "invite_secret_short",
            "s of 31 bytes.",
            uri.replacen(&s_value, &base64url(&secret[..31]), 1),
        ),
        (
            "invite_secret_padded",
            "s with base64 padding.",
            uri.replacen("&e=", "=&e=", 1),
        ),
        (
            "invite_bad_epoch",
            "e of month 13.",
            uri.replacen("e=2026-11", "e=2026-13", 1),
        ),
        (
            "invite_bad_expiry",
            "x with a sign.",
            uri.replacen("&x=", "&x=+", 1),
        ),
        (
            "invite_duplicate_parameter",
            "s twice.",
            format!("{uri}&e=2026-12"),
        ),
        (
            "invite_control_in_name",
            "A line break in the name.",
            format!("{base}&n=Dr%0AAna"),
        ),
        (
            "invite_bidi_in_name",
            "A right-to-left override in the name.",
            format!("{base}&n=Dr%20Ana%E2%80%AE"),
        ),
        (
            "invite_bad_bot",
            "A Telegram bot name of 2 characters.",
            format!("{base}&n=&tg=ab"),
        ),
        (
            "invite_bad_number",
            "A WhatsApp number with an escape sequence.",
            format!("{base}&n=&wa=%2B1%20555%1B%5B2A"),
        ),
        (
            "invite_raw_space",
            "An unencoded space in the name.",
            format!("{base}&n=Dr Ana"),
        ),
        (
            "invite_bad_percent",
            "%+1 is not a percent escape.",
            format!("{base}&n=Dr%+1"),
        ),
        (
            "invite_plus_for_space",
            "'+' is not a space: it must be encoded.",
            format!("{base}&n=Dr+Ana"),
        ),
        (
            "invite_not_utf8",
            "A percent-encoded byte that is not UTF-8.",
            format!("{base}&n=%FF"),
        ),
        (
            "invite_field_without_value",
            "A parameter without '='.",
            format!("{uri}&x"),
        ),
    ] {
        invites.push(bad(name, comment, uri));
    }
    // Typed pairing codes.
    let code = codes::pairing_code(&PairingSecret::from_bytes(&secret), ep("2026-11"), expires);
    let typed_ok = |name: &str, comment: &str, code: String, expires: Option<i64>| {
        json!({ "name": name, "comment": comment, "code": code, "expect": "success",
                "secret": hex::encode(secret), "start_epoch": "2026-11", "expires": expires })
    };
    let typed_bad = |name: &str, comment: &str, code: String, expect: &str| json!({ "name": name, "comment": comment, "code": code, "expect": expect });
    let x = Some(expires.timestamp());
    let swap = |code: &str, from: char, to: char| {
        code.chars()
            .map(|c| if c == from { to } else { c })
            .collect::<String>()
    };
    let mut legacy_payload = vec![2u8];
    legacy_payload.extend_from_slice(&ep("2026-11").to_bytes());
    legacy_payload.extend_from_slice(&secret);
    let legacy = codes::encode_checked("medcrypt/v2/pairing-code", &legacy_payload, 4);
    let mut v4 = vec![4u8];
    v4.extend_from_slice(&ep("2026-11").to_bytes());
    v4.extend_from_slice(
        &u32::try_from(expires.timestamp() / 60)
            .unwrap_or(0)
            .to_be_bytes(),
    );
    v4.extend_from_slice(&secret);
    let mut bad_month = vec![3u8];
    bad_month.extend_from_slice(&[0x07, 0xEA, 13]);
    bad_month.extend_from_slice(
        &u32::try_from(expires.timestamp() / 60)
            .unwrap_or(0)
            .to_be_bytes(),
    );
    bad_month.extend_from_slice(&secret);
    let mut typo: Vec<char> = code.chars().collect();
    typo[5] = if typo[5] == 'A' { 'B' } else { 'A' };
    let pairing_codes = vec![
        typed_ok(
            "pairing_code",
            "As shown: 72 characters in dash-separated groups of four.",
            code.clone(),
            x,
        ),
        typed_ok(
            "pairing_code_lower_case",
            "Lower case.",
            code.to_lowercase(),
            x,
        ),
        typed_ok(
            "pairing_code_no_dashes_spaces",
            "Dashes dropped, spaces and a line break instead.",
            code.replace('-', " ").replacen(' ', "\n", 1),
            x,
        ),
        typed_ok(
            "pairing_code_o_for_0",
            "Every 0 typed as O, every 1 as I.",
            swap(&swap(&code, '0', 'O'), '1', 'I'),
            x,
        ),
        typed_ok(
            "pairing_code_l_for_1",
            "Every 1 typed as lower-case l.",
            swap(&code, '1', 'l'),
            x,
        ),
        typed_ok(
            "pairing_code_version_2",
            "A first-release code: 64 characters, version 02, no expiry, 4-byte checksum.",
            legacy,
            None,
        ),
        typed_bad(
            "pairing_code_typo",
            "One character changed.",
            typo.into_iter().collect(),
            "checksum",
        ),
        typed_bad(
            "pairing_code_short",
            "One group missing.",
            code[5..].to_owned(),
            "wrong_length",
        ),
        typed_bad(
            "pairing_code_u",
            "U is not a Crockford character.",
            format!("U{}", &code[1..]),
            "bad_character",
        ),
        typed_bad(
            "pairing_code_version_4",
            "A valid checksum over version 04.",
            codes::encode_checked("medcrypt/v2/pairing-code", &v4, 5),
            "invalid",
        ),
        typed_bad(
            "pairing_code_bad_month",
            "A valid checksum over month 13.",
            codes::encode_checked("medcrypt/v2/pairing-code", &bad_month, 5),
            "invalid",
        ),
    ];
    // Recovery codes.
    let recovery_key = array::<16>("recovery code");
    let recovery = RecoveryCode::from_bytes(recovery_key).to_text().to_string();
    let mut rtypo: Vec<char> = recovery.chars().collect();
    rtypo[0] = if rtypo[0] == 'Z' { 'Y' } else { 'Z' };
    let recovery_codes = vec![
        json!({"name": "recovery_code", "comment": "16 bytes and a 4-byte checksum: 32 characters.", "code": recovery, "expect": "success", "key": hex::encode(recovery_key)}),
        json!({"name": "recovery_code_lower_no_dashes", "comment": "Lower case, no dashes.", "code": recovery.to_lowercase().replace('-', ""), "expect": "success", "key": hex::encode(recovery_key)}),
        json!({"name": "recovery_code_typo", "comment": "One character changed.", "code": rtypo.into_iter().collect::<String>(), "expect": "checksum"}),
        json!({"name": "recovery_code_long", "comment": "A character too many.", "code": format!("{recovery}0"), "expect": "wrong_length"}),
    ];
    // Audit verification codes.
    let day = 20_414;
    let key = SealingKey::from_bytes(day, &array::<32>("verification key"));
    let store_id = array::<5>("store id");
    let vcode = codes::verification_code(&key, &store_id).to_string();
    let mut v1 = key.expose_bytes().to_vec();
    v1.extend_from_slice(&day.to_be_bytes()[1..]);
    let v1code = codes::encode_checked("medcrypt/audit/v1/verification-code", &v1, 5);
    let verification_codes = vec![
        json!({"name": "verification_code", "comment": "K(d0) | u24 d0 | store id | 5-byte checksum: 72 characters.", "code": vcode, "expect": "success", "key": hex::encode(key.expose_bytes()), "day": day, "store_id": hex::encode(store_id)}),
        json!({"name": "verification_code_v1", "comment": "A first-release code: 64 characters, no store id.", "code": v1code, "expect": "success", "key": hex::encode(key.expose_bytes()), "day": day, "store_id": null}),
        json!({"name": "verification_code_typo", "comment": "The last character changed.", "code": format!("{}{}", &vcode[..vcode.len() - 1], if vcode.ends_with('0') { '1' } else { '0' }), "expect": "checksum"}),
        json!({"name": "verification_code_short", "comment": "70 characters.", "code": vcode.replace('-', "")[2..].to_owned(), "expect": "wrong_length"}),
    ];
    // Checkpoints.
    let mac = array::<32>("checkpoint mac");
    let line = Checkpoint::new(
        Some(&hex::encode(store_id)),
        42,
        &mac,
        utc("2026-11-22T10:00:00Z"),
    )
    .to_text();
    let no_id = Checkpoint::new(None, 42, &mac, utc("2026-11-22T10:00:00Z")).to_text();
    let v1line = format!(
        "MEDCRYPT-AUDIT:v1:42:{}:2026-11-22T10:00:00Z",
        hex::encode(&mac[..16])
    );
    let cp_ok = |name: &str, comment: &str, line: String, store: Option<String>| json!({"name": name, "comment": comment, "line": line, "expect": "success", "store_id": store, "seq": 42, "mac_prefix": hex::encode(&mac[..16]), "time": "2026-11-22T10:00:00Z"});
    let cp_bad = |name: &str, comment: &str, line: String, expect: &str| json!({"name": name, "comment": comment, "line": line, "expect": expect});
    let mut cp_typo: Vec<char> = line.chars().collect();
    let at = line.find(":42:").unwrap_or(0) + 5;
    cp_typo[at] = if cp_typo[at] == 'a' { 'b' } else { 'a' };
    let recheck = |body: &str| {
        let digest = Sha256::digest(
            [
                b"medcrypt/audit/v2/checkpoint".as_slice(),
                body.to_ascii_lowercase().as_bytes(),
            ]
            .concat(),
        );
        format!("{body}:{}", hex::encode(&digest[..4]))
    };
    let checkpoints = vec![
        cp_ok(
            "checkpoint",
            "Version 2 with a store id and check digits.",
            line.clone(),
            Some(hex::encode(store_id)),
        ),
        cp_ok(
            "checkpoint_upper_case",
            "Retyped in capitals: the check is over the lower-cased line.",
            line.to_uppercase()
                .replacen("MEDCRYPT-AUDIT:V2:", "MEDCRYPT-AUDIT:v2:", 1),
            Some(hex::encode(store_id)),
        ),
        cp_ok(
            "checkpoint_no_store_id",
            "A store without an id: '-'.",
            no_id,
            None,
        ),
        cp_ok(
            "checkpoint_v1",
            "Version 1: no store id, no check.",
            v1line,
            None,
        ),
        cp_bad(
            "checkpoint_typo",
            "One hex digit of the MAC changed.",
            cp_typo.into_iter().collect(),
            "typo",
        ),
        cp_bad(
            "checkpoint_cut",
            "The check digits cut off: what remains is not a checkpoint line.",
            line[..line.len() - 9].to_owned(),
            "malformed",
        ),
        cp_bad(
            "checkpoint_not",
            "Not a checkpoint.",
            "MEDCRYPT-AUDIT:v3:x".into(),
            "not_a_checkpoint",
        ),
        cp_bad(
            "checkpoint_plus_seq",
            "A valid check over a sequence number with a sign.",
            recheck(&format!(
                "MEDCRYPT-AUDIT:v2:{}:+42:{}:2026-11-22T10:00:00Z",
                hex::encode(store_id),
                hex::encode(&mac[..16])
            )),
            "malformed",
        ),
        cp_bad(
            "checkpoint_short_store_id",
            "A valid check over a 9-digit store id.",
            recheck(&format!(
                "MEDCRYPT-AUDIT:v2:{}:42:{}:2026-11-22T10:00:00Z",
                &hex::encode(store_id)[1..],
                hex::encode(&mac[..16])
            )),
            "malformed",
        ),
        cp_bad(
            "checkpoint_no_fields",
            "A valid check over a line with no fields after the store id.",
            recheck(&format!("MEDCRYPT-AUDIT:v2:{}", hex::encode(store_id))),
            "malformed",
        ),
        cp_bad(
            "checkpoint_bad_time",
            "A valid check over a time that is not RFC 3339.",
            recheck(&format!(
                "MEDCRYPT-AUDIT:v2:{}:42:{}:yesterday",
                hex::encode(store_id),
                hex::encode(&mac[..16])
            )),
            "malformed",
        ),
    ];
    json!({
        "description": "What people type or scan: the invitation (QR payload, 3.5), the typed pairing code (3.5), the recovery code (11), the audit verification code (9.1) and checkpoint lines (9.4). Each case gives the input and `expect`: `success` with the values it carries, or an error name.",
        "invites": invites,
        "pairing_codes": pairing_codes,
        "recovery_codes": recovery_codes,
        "verification_codes": verification_codes,
        "checkpoints": checkpoints,
    })
}

/// `shares.json`.
pub(super) fn shares() -> Value {
    let escrow_key = array::<32>("escrow key");
    let secret = EscrowSecret {
        escrow_key: zeroize::Zeroizing::new(escrow_key),
        audit_key: None,
    };
    let names: Vec<String> = ["Ana García", "Luis", "Marta Ñ."]
        .map(str::to_owned)
        .to_vec();
    let set = split_for_vectors(&secret, 2, &names, array::<8>("set id"), "shares 2 of 3");
    let other = split_for_vectors(
        &secret,
        2,
        &names,
        array::<8>("other set id"),
        "other 2 of 3",
    );
    let text: Vec<String> = set.iter().map(|s| s.to_text().to_string()).collect();
    let other_text: Vec<String> = other.iter().map(|s| s.to_text().to_string()).collect();
    let with_audit = EscrowSecret {
        escrow_key: zeroize::Zeroizing::new(escrow_key),
        audit_key: Some(SealingKey::from_bytes(
            20_400,
            &array::<32>("old audit key"),
        )),
    };
    let old = split_for_vectors(
        &with_audit,
        2,
        &names,
        array::<8>("old set id"),
        "old 2 of 3",
    );
    let old_text: Vec<String> = old.iter().map(|s| s.to_text().to_string()).collect();
    let ok = |name: &str, comment: &str, shares: Vec<String>| json!({"name": name, "comment": comment, "shares": shares, "expect": "success", "escrow_key": hex::encode(escrow_key)});
    let bad = |name: &str, comment: &str, shares: Vec<String>, expect: &str| json!({"name": name, "comment": comment, "shares": shares, "expect": expect});
    let mut typo: Vec<char> = text[1].chars().collect();
    let at = typo.len() - 3;
    typo[at] = if typo[at] == '7' { '8' } else { '7' };
    let renamed = text[1].replacen("Luis", "Luiz", 1);
    let cases = vec![
        ok(
            "shares_1_2",
            "Shares 1 and 2 of a 2-of-3 set.",
            vec![text[0].clone(), text[1].clone()],
        ),
        ok(
            "shares_3_1",
            "Shares 3 and 1, in that order.",
            vec![text[2].clone(), text[0].clone()],
        ),
        ok(
            "shares_all_three",
            "All three: more than the threshold is fine.",
            text.clone(),
        ),
        ok(
            "shares_wrapped",
            "A share retyped on three lines with spaces.",
            vec![
                text[0].replacen(':', ":\n", 2).replace("-", " - "),
                text[2].clone(),
            ],
        ),
        ok(
            "shares_first_release",
            "Shares of an earlier release carrying an audit key (byte 33 = 1): it is ignored.",
            vec![old_text[0].clone(), old_text[1].clone()],
        ),
        bad(
            "shares_one",
            "One share of a 2-of-3 set.",
            vec![text[0].clone()],
            "not_enough",
        ),
        bad(
            "shares_same_twice",
            "The same share twice.",
            vec![text[0].clone(), text[0].clone()],
            "duplicate",
        ),
        bad(
            "shares_two_sets",
            "Shares of two different sets.",
            vec![text[0].clone(), other_text[1].clone()],
            "different_sets",
        ),
        bad(
            "shares_typo",
            "One character of a share changed.",
            vec![text[0].clone(), typo.into_iter().collect()],
            "checksum",
        ),
        bad(
            "shares_custodian_renamed",
            "The custodian's name changed: the checksum covers it.",
            vec![text[0].clone(), renamed],
            "checksum",
        ),
        bad(
            "shares_not_a_share",
            "A line that is not a share.",
            vec![text[0].clone(), "MEDCRYPT-SHARE:v2:Luis:0000".into()],
            "not_a_share",
        ),
    ];
    json!({
        "description": "Escrow shares (12.1): each case is a list of share texts given together, in order; `success` gives the escrow key recovered, else the error name of the first problem.",
        "cases": cases,
    })
}

/// `parts.json`.
pub(super) fn parts() -> Value {
    let id = array::<16>("file id");
    let other = array::<16>("other file id");
    let head = |file_id: [u8; 16], index: u16, count: u16| {
        let mut bytes = PartHeader {
            file_id,
            index,
            count,
        }
        .to_bytes()
        .to_vec();
        // What follows the header: the encrypted file's bytes.
        bytes.extend_from_slice(b"MEDC");
        hex::encode(bytes)
    };
    let raw = |version: u8, index: u16, count: u16| {
        let mut bytes = b"MEDCRYPTP".to_vec();
        bytes.push(version);
        bytes.extend_from_slice(&id);
        bytes.extend_from_slice(&index.to_be_bytes());
        bytes.extend_from_slice(&count.to_be_bytes());
        hex::encode(bytes)
    };
    let file = hex::encode(b"MEDCRYPTF\x03...");
    let ok = |name: &str, comment: &str, inputs: Vec<String>, order: Option<Vec<usize>>| json!({"name": name, "comment": comment, "inputs": inputs, "expect": if order.is_some() { "parts" } else { "whole" }, "order": order});
    let bad = |name: &str, comment: &str, inputs: Vec<String>, expect: &str| json!({"name": name, "comment": comment, "inputs": inputs, "expect": expect});
    let cases = vec![
        ok(
            "parts_in_order",
            "Three parts in order.",
            vec![head(id, 1, 3), head(id, 2, 3), head(id, 3, 3)],
            Some(vec![0, 1, 2]),
        ),
        ok(
            "parts_any_order",
            "Three parts in another order: assembled by index.",
            vec![head(id, 3, 3), head(id, 1, 3), head(id, 2, 3)],
            Some(vec![1, 2, 0]),
        ),
        ok(
            "parts_one_of_one",
            "A single part of one.",
            vec![head(id, 1, 1)],
            Some(vec![0]),
        ),
        ok(
            "parts_whole_file",
            "One whole file (not a part).",
            vec![file.clone()],
            None,
        ),
        bad(
            "parts_missing",
            "Part 2 of 3 missing.",
            vec![head(id, 1, 3), head(id, 3, 3)],
            "missing_part",
        ),
        bad(
            "parts_foreign",
            "A part of another file.",
            vec![head(id, 1, 2), head(other, 2, 2)],
            "foreign_part",
        ),
        bad(
            "parts_count_mismatch",
            "The same file id, another count.",
            vec![head(id, 1, 2), head(id, 2, 3)],
            "part_count_mismatch",
        ),
        bad(
            "parts_duplicate",
            "Part 1 given twice.",
            vec![head(id, 1, 2), head(id, 1, 2), head(id, 2, 2)],
            "duplicate_part",
        ),
        bad(
            "parts_index_zero",
            "Index 0.",
            vec![raw(2, 0, 2), head(id, 2, 2)],
            "part_index_invalid",
        ),
        bad(
            "parts_index_over_count",
            "Index 3 of 2.",
            vec![head(id, 1, 2), raw(2, 3, 2)],
            "part_index_invalid",
        ),
        bad(
            "parts_count_zero",
            "Count 0.",
            vec![raw(2, 0, 0)],
            "part_index_invalid",
        ),
        bad(
            "parts_version_3",
            "Part version 3.",
            vec![raw(3, 1, 2), head(id, 2, 2)],
            "unsupported_part_version",
        ),
        bad(
            "parts_cut_header",
            "A part cut inside its header (20 bytes).",
            vec![raw(2, 1, 2)[..40].to_owned(), head(id, 2, 2)],
            "part_truncated",
        ),
        bad(
            "parts_mixed",
            "A whole file among parts.",
            vec![head(id, 1, 2), file.clone()],
            "mixed_inputs",
        ),
        bad(
            "parts_two_files",
            "Two whole files.",
            vec![file.clone(), file],
            "several_files",
        ),
    ];
    json!({
        "description": "Assembling parts (10.5): each case gives the start of each input (hex, in the order given); `parts` with the inputs' positions in index order, `whole` for a single whole file, or the error name of the first problem.",
        "cases": cases,
    })
}

fn event(time: DateTime<Utc>, action: &str, subject: &str, details: &[(&str, &str)]) -> AuditEvent {
    AuditEvent {
        time: format_utc(time),
        actor: "dra.nunez".into(),
        action: action.into(),
        subject: subject.into(),
        outcome: "ok".into(),
        details: details
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The vector log: three days, entries on each, sealed in between.
struct VectorLog {
    enc: [u8; 32],
    first: SealingKey,
    records: Vec<Record>,
    sealer: Sealer,
}

fn vector_log() -> VectorLog {
    let enc = array::<32>("audit encryption key");
    let d0 = audit::day_of(utc("2026-11-20T00:00:00Z"));
    let first = SealingKey::from_bytes(d0, &array::<32>("audit day key"));
    let mut sealer = Sealer::for_vectors(&enc, SealingKey::from_bytes(d0, first.expose_bytes()));
    let mut records = Vec::new();
    for (at, action, subject, details) in [
        ("2026-11-20T09:00:00Z", "init", "", vec![]),
        (
            "2026-11-20T09:05:00Z",
            "pair_new",
            "maria",
            vec![("epoch", "2026-11")],
        ),
        (
            "2026-11-21T10:00:00Z",
            "decrypt",
            "maria",
            vec![("epoch", "2026-11"), ("sequence", "5")],
        ),
        (
            "2026-11-21T10:02:00Z",
            "encrypt",
            "maria",
            vec![("epoch", "2026-11"), ("sequence", "7")],
        ),
        (
            "2026-11-21T11:00:00Z",
            "decrypt_failed",
            "maria",
            vec![("kind", "replayed")],
        ),
        ("2026-11-22T08:00:00Z", "audit_checkpoint", "", vec![]),
    ] {
        let at = utc(at);
        records.extend(sealer.append(&event(at, action, subject, &details), at));
    }
    VectorLog {
        enc,
        first,
        records,
        sealer,
    }
}

fn export_value(
    log: &VectorLog,
    records: &[Record],
    head: Option<(u32, u64, [u8; 32], [u8; 32])>,
) -> Value {
    let (day, last_seq, last_mac, head_mac) = head.unwrap_or((
        log.sealer.key().day(),
        log.sealer.last_seq(),
        *log.sealer.last_mac(),
        log.sealer.head_mac(),
    ));
    let text = audit::export_json(
        &ExportHead {
            store_id: Some("a1b2c3d4e5"),
            day,
            last_seq,
            last_mac,
            head_mac: Some(head_mac),
        },
        &log.enc,
        records,
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// `audit.json`.
pub(super) fn audit() -> Value {
    let log = vector_log();
    let store_id = [0xa1, 0xb2, 0xc3, 0xd4, 0xe5];
    let code = codes::verification_code(&log.first, &store_id).to_string();
    let other_code = codes::verification_code(&log.first, &[1, 2, 3, 4, 5]).to_string();
    let records = log.records.clone();
    let today = log.sealer.key().day();
    let today_key = log
        .first
        .step_to(today)
        .unwrap_or_else(|| SealingKey::from_bytes(0, &[0; 32]));
    let good = export_value(&log, &records, None);
    let mut cases = Vec::new();
    let mut case = |name: &str,
                    comment: &str,
                    export: Value,
                    expect: &str,
                    checkpoint: Option<String>,
                    code: &str| {
        cases.push(json!({"name": name, "comment": comment, "code": code, "checkpoint": checkpoint, "export": export, "expect": expect}));
    };
    let renumber = |records: &mut Vec<Record>| {
        for (i, r) in records.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
        }
    };
    let head_of = |records: &[Record], day: u32, key: &SealingKey| {
        let last = records.last().cloned();
        let (seq, mac) = last.map_or((0, [0; 32]), |r| (r.seq, r.mac));
        (day, seq, mac, key.head_mac(seq, &mac))
    };
    case(
        "audit_ok",
        "Six entries over three days, two day seals; with the code.",
        good.clone(),
        "success",
        None,
        &code,
    );
    let cp = Checkpoint::new(
        Some("a1b2c3d4e5"),
        4,
        &records[3].mac,
        utc("2026-11-21T10:03:00Z"),
    )
    .to_text();
    case(
        "audit_ok_checkpoint",
        "With a checkpoint of record 4.",
        good.clone(),
        "success",
        Some(cp),
        &code,
    );
    case(
        "audit_foreign_code",
        "The code of another store (its store id).",
        good.clone(),
        "foreign_code",
        None,
        &other_code,
    );
    let mut v1 = SealingKey::from_bytes(log.first.day(), &array::<32>("another store's key"))
        .expose_bytes()
        .to_vec();
    v1.extend_from_slice(&log.first.day().to_be_bytes()[1..]);
    let v1_other = codes::encode_checked("medcrypt/audit/v1/verification-code", &v1, 5);
    case(
        "audit_foreign_first_release_code",
        "A first-release code (no store id) that does not verify the first record: another store's.",
        good.clone(),
        "foreign_code",
        None,
        &v1_other,
    );
    let mut v = good.clone();
    let body = v["records"][1]["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    v["records"][1]["body"] = Value::from(format!(
        "{}{}",
        &body[..body.len() - 1],
        if body.ends_with('0') { '1' } else { '0' }
    ));
    case(
        "audit_modified_body",
        "One bit of record 2's body changed.",
        v,
        "modified",
        None,
        &code,
    );
    let mut v = good.clone();
    v["records"][1]["event"]["subject"] = Value::from("pedro");
    case(
        "audit_modified_event_copy",
        "The readable copy of record 2's event changed, its body not.",
        v,
        "modified",
        None,
        &code,
    );
    let mut r = records.clone();
    r.remove(2);
    case(
        "audit_missing",
        "Record 3 removed.",
        export_value(&log, &r, None),
        "missing",
        None,
        &code,
    );
    let mut r = records.clone();
    r.swap(3, 4);
    renumber(&mut r);
    case(
        "audit_reordered",
        "Records 4 and 5 swapped and renumbered: record 4's MAC is valid as record 5 (chained to record 4's).",
        export_value(&log, &r, None),
        "reordered",
        None,
        &code,
    );
    let mut r = records.clone();
    let forged = Record {
        seq: 0,
        day: r[3].day,
        kind: RecordKind::Entry,
        body: bytes_of("inserted body", 60),
        mac: array::<32>("inserted mac"),
    };
    r.insert(3, forged);
    renumber(&mut r);
    case(
        "audit_inserted",
        "A record inserted at position 4: the next record is the one sealed at 4.",
        export_value(&log, &r, None),
        "inserted",
        None,
        &code,
    );
    let mut r = records.clone();
    let prev = r[0].mac;
    r[1].mac = today_key.mac(r[1].seq, r[1].kind, &r[1].body, &prev);
    case(
        "audit_wrong_day_key",
        "Record 2 (of the first day) re-MACed under the last day's key, which whoever holds the machine has.",
        export_value(&log, &r, None),
        "wrong_day_key",
        None,
        &code,
    );
    let mut r = records.clone();
    let seal = r
        .iter()
        .position(|x| x.kind == RecordKind::Seal)
        .unwrap_or(0);
    r.remove(seal);
    renumber(&mut r);
    case(
        "audit_day_not_sealed",
        "The first day's seal removed (and the rest renumbered).",
        export_value(&log, &r, None),
        "day_not_sealed",
        None,
        &code,
    );
    let mut r = records.clone();
    r.pop();
    case(
        "audit_cut_end",
        "The last record removed; the head still names it.",
        export_value(&log, &r, None),
        "head_mismatch",
        None,
        &code,
    );
    let mut r = records.clone();
    r.pop();
    let stale = (
        today,
        r.len() as u64,
        r.last().map_or([0; 32], |x| x.mac),
        log.sealer.head_mac(),
    );
    case(
        "audit_head_set_back",
        "The last record removed and the head set back to the one before, without the day's key: the head MAC fails.",
        export_value(&log, &r, Some(stale)),
        "head_mismatch",
        None,
        &code,
    );
    let mut r = records.clone();
    while r.last().is_some_and(|x| x.day == today) {
        r.pop();
    }
    r.pop(); // the seal of the day before
    let later = log
        .first
        .step_to(today)
        .unwrap_or_else(|| SealingKey::from_bytes(0, &[0; 32]));
    let head = head_of(&r, today, &later);
    case(
        "audit_not_to_day",
        "The last day's records and the seal before them cut, the head re-made by someone holding today's key: the log stops before the store's day.",
        export_value(&log, &r, Some(head)),
        "not_to_day",
        None,
        &code,
    );
    let mut r = records.clone();
    let extra = Record {
        seq: r.len() as u64 + 1,
        day: today,
        kind: RecordKind::Entry,
        body: bytes_of("beyond body", 60),
        mac: array::<32>("beyond mac"),
    };
    r.push(extra);
    case(
        "audit_beyond_head",
        "A record written after the head the store sealed.",
        export_value(&log, &r, None),
        "beyond_head",
        None,
        &code,
    );
    let mut r = records.clone();
    r.pop();
    let head = head_of(&r, today, &today_key);
    let cp_last = Checkpoint::new(
        Some("a1b2c3d4e5"),
        records.len() as u64,
        &records[records.len() - 1].mac,
        utc("2026-11-22T08:01:00Z"),
    )
    .to_text();
    case(
        "audit_truncated_checkpoint",
        "Today's last record cut and the head re-made with today's key (undetectable by the store alone); the checkpoint taken before shows it.",
        export_value(&log, &r, Some(head)),
        "truncated",
        Some(cp_last),
        &code,
    );
    let cp_bad = Checkpoint::new(
        Some("a1b2c3d4e5"),
        3,
        &array::<32>("not the mac"),
        utc("2026-11-21T10:03:00Z"),
    )
    .to_text();
    case(
        "audit_checkpoint_mismatch",
        "A checkpoint whose record 3 had another MAC: the log was rewritten.",
        good.clone(),
        "checkpoint_mismatch",
        Some(cp_bad),
        &code,
    );
    case(
        "audit_empty",
        "No records at all.",
        export_value(
            &log,
            &[],
            Some((today, 0, [0; 32], today_key.head_mac(0, &[0; 32]))),
        ),
        "empty",
        None,
        &code,
    );
    let mut v = good.clone();
    v["records"].as_array_mut().map(Vec::pop);
    let kept = v["records"].as_array().map_or(0, Vec::len);
    v["last_seq"] = Value::from(kept);
    v["last_mac"] = v["records"][kept - 1]["mac"].clone();
    v["day"] = v["records"][kept - 1]["day"].clone();
    v["head_mac"] = Value::Null;
    case(
        "audit_head_mac_null",
        "The last record cut, the head set to match and its head MAC removed: an export without a head MAC is refused.",
        v,
        "head_mismatch",
        None,
        &code,
    );
    let mut v = good.clone();
    v["records"][1]["body"] = Value::from("00".repeat(64 * 1024 + 1));
    case(
        "audit_body_too_long",
        "A record body over 64 KiB: no entry is that long, and each failing record costs thousands of MACs to name.",
        v,
        "unreadable",
        None,
        &code,
    );
    let mut v = good.clone();
    v["format"] = Value::from("medcrypt-audit-export/v9");
    case(
        "audit_unreadable_format",
        "Another export format.",
        v,
        "unreadable",
        None,
        &code,
    );
    let mut v = good;
    v["records"][0]["mac"] = Value::from("ABCD");
    case(
        "audit_unreadable_mac",
        "A MAC that is not 32 bytes of lower-case hex.",
        v,
        "unreadable",
        None,
        &code,
    );
    json!({
        "description": "Audit exports (9.7) verified with the verification code (and a checkpoint where given): `success` with the events, or the name of the first fault (9.3) or of why the export cannot be read.",
        "events_of_audit_ok": log.records.iter().map(|r| audit::open_body(&log.enc, r).map(|e| serde_json::to_value(e).unwrap_or(Value::Null))).collect::<Vec<_>>(),
        "cases": cases,
    })
}

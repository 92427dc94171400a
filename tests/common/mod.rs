//! Shared harness for the tests that drive the `medcrypt` binary: a party is
//! one store in a temporary directory, commands run with a fixed clock.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const PASSPHRASE: &str = "lilac-orbit-kettle-47";
pub const NOV: &str = "2026-11-20T10:00:00Z";

pub struct Party {
    pub store: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Party {
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            store: dir.join(name).join("store.sqlite"),
        }
    }

    /// Runs in `cwd` with `passphrase` at `now`, feeding `stdin`. Tests
    /// move the clock freely, so every question is answered yes; tests of the
    /// questions themselves use [`Party::run_asking`].
    pub fn run_full(
        &self,
        cwd: Option<&Path>,
        args: &[&str],
        stdin: &str,
        now: &str,
        passphrase: &str,
    ) -> Run {
        let mut all = vec!["--yes"];
        all.extend_from_slice(args);
        self.run_asking(cwd, &all, stdin, now, passphrase)
    }

    /// Like [`Party::run_full`] without `--yes`: questions are asked, and
    /// refused when stdin is not a terminal.
    pub fn run_asking(
        &self,
        cwd: Option<&Path>,
        args: &[&str],
        stdin: &str,
        now: &str,
        passphrase: &str,
    ) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_medcrypt"));
        command
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env("MEDCRYPT_PASSPHRASE", passphrase)
            .env("MEDCRYPT_NOW", now)
            .env_remove("MEDCRYPT_STORE")
            .env_remove("MEDCRYPT_NEW_PASSPHRASE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().unwrap();
        // A command that does not read its input may exit before it is
        // written: a broken pipe then is not a failure.
        if let Err(err) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    pub fn run_with(&self, args: &[&str], stdin: &str, now: &str, passphrase: &str) -> Run {
        self.run_full(None, args, stdin, now, passphrase)
    }

    pub fn run_at(&self, args: &[&str], stdin: &str, now: &str) -> Run {
        self.run_with(args, stdin, now, PASSPHRASE)
    }

    /// A new store in `dir/name`, made by `init` with `args` (e.g.
    /// `["--name", "Dr. Ana Silva"]`).
    pub fn init(dir: &Path, name: &str, args: &[&str]) -> Self {
        let party = Self::new(dir, name);
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        party.ok(&all, "", NOV);
        party
    }

    /// The store itself, opened as a long-running process holds it (the
    /// agent), at [`NOV`].
    pub fn open_store(&self) -> medcrypt::store::Store {
        medcrypt::store::Store::open(
            &self.store,
            &secrecy::SecretString::from(PASSPHRASE.to_owned()),
            medcrypt::parse_utc(NOV).unwrap(),
        )
        .unwrap()
    }

    /// `escrow split` among `custodians` (threshold 2), pages into `dir`.
    pub fn split_among(&self, dir: &Path, custodians: &[&str]) -> String {
        let mut args = vec!["escrow", "split", "--out-dir", dir.to_str().unwrap()];
        for custodian in custodians {
            args.extend(["--custodian", custodian]);
        }
        self.ok(&args, "", NOV)
    }

    /// Runs and expects success.
    pub fn ok(&self, args: &[&str], stdin: &str, now: &str) -> String {
        let run = self.run_at(args, stdin, now);
        assert_eq!(run.code, 0, "{args:?} failed: {}", run.stderr);
        run.stdout
    }

    pub fn encrypt(&self, to: &str, text: &str, now: &str) -> String {
        self.ok(&["encrypt", "--to", to, text], "", now)
            .trim()
            .to_owned()
    }

    pub fn decrypt(&self, wire: &str, now: &str) -> Run {
        self.run_at(&["decrypt"], wire, now)
    }
}

/// The indented line after the line that starts with `heading`.
pub fn line_after(text: &str, heading: &str) -> String {
    text.lines()
        .skip_while(|l| !l.starts_with(heading))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned()
}

/// Pairs `pat` with `doc` through a real QR PNG at `now`: "alice" on the
/// physician's side, `physician_alias` on the patient's. Returns what
/// `pair new` and `pair accept` printed.
pub fn pair_through_png(
    dir: &Path,
    doc: &Party,
    pat: &Party,
    physician_alias: &str,
    now: &str,
) -> (String, String) {
    let png = dir.join("pairing.png");
    let png = png.to_str().unwrap();
    let shown = doc.ok(
        &["pair", "new", "--patient", "alice", "--qr-png", png],
        "",
        now,
    );
    let accepted = pat.ok(
        &[
            "pair",
            "accept",
            "--qr-image",
            png,
            "--physician",
            physician_alias,
        ],
        "",
        now,
    );
    (shown, accepted)
}

/// A physician store with pairing "alice" and a patient store paired with
/// it (as "dr-silva") through a real QR PNG; returns both and the typed code.
pub fn paired(dir: &Path) -> (Party, Party, String) {
    let doc = Party::new(dir, "physician");
    let pat = Party::new(dir, "patient");
    let made = doc.ok(&["init", "--name", "Dr. Ana Silva"], "", NOV);
    // What `init` showed once, for the tests that need the codes.
    std::fs::write(doc.store.with_file_name("init-output.txt"), made).unwrap();
    pat.ok(&["init"], "", NOV);
    let (shown, accepted) = pair_through_png(dir, &doc, &pat, "dr-silva", NOV);
    let safety = line_after(&shown, "Safety number");
    assert_eq!(
        safety,
        line_after(&accepted, "Safety number"),
        "safety numbers differ"
    );
    assert_eq!(safety.len(), 35);
    (doc, pat, line_after(&shown, "Typed code"))
}

/// The audit verification code `init` showed for a store made by
/// [`paired`].
pub fn verification_code(party: &Party) -> String {
    let shown = std::fs::read_to_string(party.store.with_file_name("init-output.txt")).unwrap();
    shown
        .lines()
        .skip_while(|l| !l.starts_with("Audit verification code"))
        .skip(1)
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .trim()
        .to_owned()
}

/// Re-encodes a v2 wire text after `edit` changed its bytes, with a valid
/// transit checksum: a deliberate forgery that only the AEAD can catch.
pub fn forge(wire: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256};
    let body = URL_SAFE_NO_PAD
        .decode(wire.strip_prefix("MEDCRYPT:v2:").unwrap())
        .unwrap();
    let mut content = body[..body.len() - 4].to_vec();
    edit(&mut content);
    let sum = Sha256::new()
        .chain_update(b"medcrypt/v2/wire-checksum")
        .chain_update(b"MEDCRYPT:v2:")
        .chain_update(&content)
        .finalize();
    content.extend_from_slice(&sum[..4]);
    format!("MEDCRYPT:v2:{}", URL_SAFE_NO_PAD.encode(content))
}

/// The store's master key, unwrapped from the SQLite file as an outside
/// reader would (PBKDF2 of the passphrase, then AES-GCM), so tests can look
/// for it where it must not be.
pub fn master_key(store: &Path, passphrase: &str) -> [u8; 32] {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    let conn = rusqlite::Connection::open(store).unwrap();
    let (iterations, salt, wrapped): (u32, Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT iterations, salt, wrapped_key FROM unlock WHERE method = 'passphrase'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let mut kek = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase.as_bytes(), &salt, iterations, &mut kek);
    let open = |key: &[u8], aad: &[u8], blob: &[u8]| {
        let (nonce, sealed) = blob.split_at(12);
        Aes256Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .unwrap()
    };
    // The passphrase opens the owner key (wire-spec 12.1), which opens the
    // master key wrapped to its public half.
    let owner = open(&kek, b"medcrypt/store/v2/owner-key:passphrase", &wrapped);
    let owner = p256::SecretKey::from_slice(&owner).unwrap();
    let (public, wrap): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT salt, wrapped_key FROM unlock WHERE method = 'owner'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (point, sealed) = wrap.split_at(33);
    let ephemeral = p256::PublicKey::from_sec1_bytes(point).unwrap();
    let shared = p256::ecdh::diffie_hellman(owner.to_nonzero_scalar(), ephemeral.as_affine());
    let salt = [point, &public[..33]].concat();
    let mut key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared.raw_secret_bytes())
        .expand(b"medcrypt/store/v2/owner-wrap", &mut key)
        .unwrap();
    open(&key, b"medcrypt/store/v2/owner-wrap", sealed)
        .try_into()
        .unwrap()
}

/// Whether the store still yields `key` as one of the pairing's month keys
/// to someone holding the file and its passphrase, read with MedCrypt's own
/// code and the clock set back to November (so nothing is destroyed first).
pub fn store_holds_key(store: &Path, alias: &str, key: &[u8; 32]) -> bool {
    let now = medcrypt::parse_utc(NOV).unwrap();
    let store = medcrypt::store::Store::open(
        store,
        &secrecy::SecretString::from(PASSPHRASE.to_owned()),
        now,
    )
    .unwrap();
    let pairing = store.pairing(alias).unwrap();
    match store.chain(&pairing) {
        Ok(chain) => chain.keys().iter().any(|k| k.expose_bytes() == key),
        Err(_) => false,
    }
}

/// An RFC 3339 instant.
pub fn utc(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// The names in `dir`, sorted (to see what a command left behind).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs SQL on a store file as an attacker with write access would.
pub fn sql(store: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(store).unwrap();
    conn.execute_batch(statement).unwrap();
}

/// A physician store with pairing "alice" and two records in its inbox.
pub fn store_with_records(dir: &Path) -> Party {
    let (doc, _pat, _) = paired(dir);
    // What the agent stores when a patient's text and file arrive.
    let now = medcrypt::parse_utc(NOV).unwrap();
    let store = doc.open_store();
    let alice = store.pairing("alice").unwrap();
    let epoch = medcrypt::Epoch::containing(now);
    store
        .receive(
            &alice,
            medcrypt::store::Incoming {
                via: medcrypt::store::Via::Agent,
                replay: None,
                epoch: Some(epoch),
                identity: b"a text from the chat".to_vec(),
                content: medcrypt::store::IncomingContent::Text("Allergic to penicillin."),
            },
            now,
        )
        .unwrap();
    let meta = medcrypt::attachment::Metadata {
        name: "ecg.pdf".into(),
        mime: "application/pdf".into(),
        size: 9,
    };
    store
        .receive_file(
            &alice,
            medcrypt::store::Incoming::file(
                medcrypt::store::Via::Agent,
                epoch,
                &[7; 16],
                &meta,
                None,
            ),
            &mut &b"%PDF ecg."[..],
            now,
        )
        .unwrap();
    doc
}

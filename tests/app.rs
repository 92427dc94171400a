//! `medcrypt app` through the binary: loopback only, the one-time secret
//! exchanged for a session cookie, every request checked for that cookie,
//! the `Host` header and (for changes) the `Origin`, a strict CSP; then
//! unlocking, reading a pasted chat excerpt with two messages, and writing a
//! reply the physician's command line decrypts — over plain HTTP here, in
//! headless Chromium in `tests/app_browser.rs`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use common::{NOV, PASSPHRASE, Party};

pub struct App {
    child: Child,
    /// Kept open: the app writes to it after the first line.
    _stdout: BufReader<std::process::ChildStdout>,
    pub url: String,
    pub port: u16,
}

impl App {
    pub fn start(party: &Party) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
            .arg("--store")
            .arg(&party.store)
            .args(["app", "--no-browser", "--listen", "127.0.0.1:0"])
            .env("MEDCRYPT_NOW", NOV)
            .env_remove("MEDCRYPT_PASSPHRASE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let url = first.trim().to_owned();
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("first line is not the URL: {first:?}"));
        Self {
            child,
            _stdout: stdout,
            url,
            port,
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP/1.1 request; returns status, headers (lower-case) and body.
fn http(port: u16, request: &str) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

fn get(port: u16, path: &str, host: &str, cookie: Option<&str>) -> (u16, String, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"),
    )
}

fn post(port: u16, path: &str, cookie: &str, origin: Option<&str>, json: &str) -> (u16, String) {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let (status, _, body) = http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n{origin}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        ),
    );
    (status, body)
}

/// Exchanges the URL's one-time secret for the session cookie
/// (`medcrypt_session=…`).
pub fn exchange(app: &App) -> String {
    let path = app.url.split_once(&format!(":{}", app.port)).unwrap().1;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        app.port
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let line = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {answer}"));
    let lower = line.to_lowercase();
    assert!(
        lower.contains("httponly") && lower.contains("samesite=strict"),
        "{line}"
    );
    line.split(';').next().unwrap().to_owned()
}

#[test]
fn only_this_computer_with_the_session_the_right_host_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::new(dir.path(), "physician");
    doc.ok(&["init", "--name", "Dr. Ana Silva"], "", NOV);

    // Any other address than loopback is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["app", "--no-browser", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a loopback address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let app = App::start(&doc);
    let host = format!("127.0.0.1:{}", app.port);
    // No session: refused, page and API alike.
    assert_eq!(get(app.port, "/", &host, None).0, 403);
    assert_eq!(get(app.port, "/api/pairings", &host, None).0, 403);
    // A wrong secret is refused and does not use up the right one.
    assert_eq!(get(app.port, "/?s=not-the-secret", &host, None).0, 403);
    // Another host name (DNS rebinding) is refused even with the secret.
    let path = app.url.split_once(&format!(":{}", app.port)).unwrap().1;
    assert_eq!(
        get(app.port, path, &format!("evil.example:{}", app.port), None).0,
        403
    );
    // The right secret, once.
    let (status, head, _) = get(app.port, path, &host, None);
    assert_eq!(status, 303, "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert_eq!(
        get(app.port, path, &host, None).0,
        403,
        "the secret works once"
    );
    drop(app);
    let app = App::start(&doc);
    let cookie = exchange(&app);
    let host = format!("127.0.0.1:{}", app.port);
    let origin = format!("http://127.0.0.1:{}", app.port);
    assert_eq!(get(app.port, "/", &host, Some(&cookie)).0, 200);
    assert_eq!(
        get(
            app.port,
            "/",
            &format!("evil.example:{}", app.port),
            Some(&cookie)
        )
        .0,
        403,
        "wrong Host with a valid cookie"
    );
    // A state change from another origin, or with none, is refused.
    let unlock = format!(r#"{{"passphrase":"{PASSPHRASE}"}}"#);
    assert_eq!(
        post(
            app.port,
            "/api/unlock",
            &cookie,
            Some("http://evil.example"),
            &unlock
        )
        .0,
        403
    );
    assert_eq!(post(app.port, "/api/unlock", &cookie, None, &unlock).0, 403);
    // A wrong passphrase: the CLI's words.
    let (status, body) = post(
        app.port,
        "/api/unlock",
        &cookie,
        Some(&origin),
        r#"{"passphrase":"wrong"}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("wrong passphrase"), "{body}");
    let (status, body) = post(app.port, "/api/unlock", &cookie, Some(&origin), &unlock);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_patient_reads_a_chat_excerpt_and_writes_a_reply() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = common::paired(dir.path());
    let first = doc.encrypt("alice", "Your potassium is 4.1, normal.", NOV);
    let second = doc.encrypt("alice", "Take the tablet after breakfast.", NOV);
    // What a patient copies from a chat: names, times, both messages.
    let excerpt = format!(
        "[20/11/26, 10:02] Dr. Silva: {first}\n[20/11/26, 10:03] Dr. Silva: {second}\n[20/11/26, 10:05] Me: thanks"
    );
    let app = App::start(&pat);
    let cookie = exchange(&app);
    let origin = format!("http://127.0.0.1:{}", app.port);
    let json = |v: serde_json::Value| v.to_string();
    // Locked: said so.
    let (status, body) = post(
        app.port,
        "/api/decrypt",
        &cookie,
        Some(&origin),
        &json(serde_json::json!({ "text": excerpt })),
    );
    assert_eq!(status, 401, "{body}");
    let (status, _) = post(
        app.port,
        "/api/unlock",
        &cookie,
        Some(&origin),
        &json(serde_json::json!({ "passphrase": PASSPHRASE })),
    );
    assert_eq!(status, 200);
    let (status, body) = post(
        app.port,
        "/api/decrypt",
        &cookie,
        Some(&origin),
        &json(serde_json::json!({ "text": excerpt })),
    );
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let messages = value["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{body}");
    assert_eq!(messages[0]["text"], "Your potassium is 4.1, normal.");
    assert_eq!(messages[1]["text"], "Take the tablet after breakfast.");
    assert_eq!(messages[0]["from"], "Dr. Ana Silva");
    assert_eq!(messages[0]["sender"], "physician");

    // A tampered message gets its own error.
    let tampered = common::forge(&first, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    });
    let (_, body) = post(
        app.port,
        "/api/decrypt",
        &cookie,
        Some(&origin),
        &json(serde_json::json!({ "text": tampered })),
    );
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["messages"][0]["ok"], false, "{body}");
    assert!(
        value["messages"][0]["error"]
            .as_str()
            .unwrap()
            .contains("could not be verified")
            || value["messages"][0]["error"]
                .as_str()
                .unwrap()
                .contains("authentic"),
        "{body}"
    );

    // A reply the physician's command line decrypts.
    let (status, body) = post(
        app.port,
        "/api/encrypt",
        &cookie,
        Some(&origin),
        &json(serde_json::json!({ "to": "dr-silva", "text": "Thank you, doctor." })),
    );
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let wire = value["wire"].as_str().unwrap();
    let run = doc.decrypt(wire, NOV);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Thank you, doctor."), "{}", run.stdout);

    // Stopped from the page: the process ends.
    let (status, _) = post(app.port, "/api/stop", &cookie, Some(&origin), "{}");
    assert_eq!(status, 200);
    let mut app = app;
    let exited = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        app.child.try_wait().unwrap().is_some()
    });
    assert!(exited, "the app did not stop");
}

//! `medcrypt app` through the binary: loopback only, the one-time secret
//! exchanged for a session cookie, every request checked for that cookie,
//! the `Host` header and (for changes) the `Origin`, a strict CSP; then
//! unlocking, reading a pasted chat excerpt with two messages, and writing a
//! reply the physician's command line decrypts — over plain HTTP, and as a
//! person does it, in headless Chromium driven through ChromeDriver's
//! WebDriver protocol (Debian's `chromium` and `chromium-driver`; `.ci/run`
//! installs them). Screenshots of each view go to `target/app-screenshots/`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use common::{NOV, PASSPHRASE, Party};

struct App {
    child: Child,
    /// Kept open: the app writes to it after the first line.
    _stdout: BufReader<std::process::ChildStdout>,
    url: String,
    port: u16,
}

impl App {
    fn start(party: &Party) -> Self {
        Self::start_with(party, &[])
    }

    fn start_with(party: &Party, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
            .arg("--store")
            .arg(&party.store)
            .args(["app", "--no-browser", "--listen", "127.0.0.1:0"])
            .args(extra)
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
    let cookie = cookie.map(session_headers).unwrap_or_default();
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"),
    )
}

/// The headers of a session: its cookie and, when known, its API token.
fn session_headers(session: &str) -> String {
    match session.split_once('\n') {
        Some((cookie, token)) => format!("Cookie: {cookie}\r\nX-MedCrypt-Token: {token}\r\n"),
        None => format!("Cookie: {session}\r\n"),
    }
}

fn post(port: u16, path: &str, cookie: &str, origin: Option<&str>, json: &str) -> (u16, String) {
    let session = session_headers(cookie);
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let (status, _, body) = http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{session}{origin}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        ),
    );
    (status, body)
}

/// `{"file": name}`.
fn file_json(name: &str) -> String {
    serde_json::json!({ "file": name }).to_string()
}

/// A multipart POST of text fields, as the page's forms send them.
fn multipart(
    port: u16,
    path: &str,
    cookie: &str,
    origin: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--XBOUNDARYX\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str("--XBOUNDARYX--\r\n");
    let session = session_headers(cookie);
    let (status, _, answer) = http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{session}Origin: {origin}\r\nContent-Type: multipart/form-data; boundary=XBOUNDARYX\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    (status, answer)
}

/// Exchanges the URL's one-time secret for the session cookie
/// (`medcrypt_session=…`) and the API token (the redirect's fragment),
/// joined by a newline (see [`session_headers`]).
fn exchange(app: &App) -> String {
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
    let token = answer
        .lines()
        .find_map(|l| l.strip_prefix("location: /#t="))
        .unwrap_or_else(|| panic!("no token: {answer}"))
        .trim()
        .to_owned();
    format!("{}\n{token}", line.split(';').next().unwrap())
}

#[test]
fn only_this_computer_with_the_session_the_right_host_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::init(dir.path(), "physician", &["--name", "Dr. Ana Silva"]);

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
    // The cookie alone (every port of 127.0.0.1 gets it) opens no API.
    let cookie_only = cookie.split('\n').next().unwrap();
    assert_eq!(
        get(app.port, "/api/pairings", &host, Some(cookie_only)).0,
        403
    );
    assert_eq!(
        get(app.port, "/api/pairings", &host, Some(&cookie)).0,
        401,
        "locked"
    );
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
    let (_, _, body) = get(app.port, "/api/status", &host, Some(&cookie));
    assert!(body.contains(r#""unlocked":true"#), "{body}");
    // Locked from the page: the status says so (the page then clears itself).
    assert_eq!(
        post(app.port, "/api/lock", &cookie, Some(&origin), "{}").0,
        200
    );
    let (_, _, body) = get(app.port, "/api/status", &host, Some(&cookie));
    assert!(body.contains(r#""unlocked":false"#), "{body}");
    assert_eq!(get(app.port, "/api/pairings", &host, Some(&cookie)).0, 401);

    // Another server on 127.0.0.1 can plant a cookie of the same name with
    // a longer path, which the browser sends first: the app still knows
    // its own (review finding: every API call was refused).
    let (real, token) = cookie.split_once('\n').unwrap();
    let planted = format!("medcrypt_session=planted-by-another-port; {real}\n{token}");
    assert_eq!(get(app.port, "/api/status", &host, Some(&planted)).0, 200);
    // A file id at the edge of i64 is an unknown item, not a crash.
    assert_eq!(
        post(app.port, "/api/unlock", &cookie, Some(&origin), &unlock).0,
        200
    );
    let (status, body) = post(
        app.port,
        "/api/history-file",
        &cookie,
        Some(&origin),
        &format!(r#"{{"id":{}}}"#, i64::MIN),
    );
    assert_eq!(status, 422, "{body}");
    // A backup under a name the store's own files use is refused: it
    // would lock the store.
    let journal = format!("{}-journal", doc.store.display());
    let (status, body) = post(
        app.port,
        "/api/backup",
        &cookie,
        Some(&origin),
        &file_json(&journal),
    );
    assert_eq!(status, 422, "{body}");
    assert!(!std::path::Path::new(&journal).exists());
    let shouting =
        format!("{}-JOURNAL", doc.store.display()).replace("store.sqlite", "STORE.SQLITE");
    let (status, body) = post(
        app.port,
        "/api/backup",
        &cookie,
        Some(&origin),
        &file_json(&shouting),
    );
    assert_eq!(status, 422, "{body}");
    // A name that only starts like the store's is a fine backup name.
    let bak = format!("{}.bak", doc.store.display());
    let (status, body) = post(
        app.port,
        "/api/backup",
        &cookie,
        Some(&origin),
        &file_json(&bak),
    );
    assert_eq!(status, 200, "{body}");
    // A break-glass attempt refused before anything is opened leaves the
    // unlocked store as it was (review finding: it locked it).
    let (status, body) = multipart(
        app.port,
        "/api/emergency",
        &cookie,
        &origin,
        &[("mode", "export"), ("patient", "nobody"), ("reason", "")],
    );
    assert_eq!(status, 422, "{body}");
    let (_, _, body) = get(app.port, "/api/status", &host, Some(&cookie));
    assert!(body.contains(r#""unlocked":true"#), "{body}");
    // Another command replaces the store's key while the page has it
    // unlocked: nothing is written with the old key, and the page is told
    // to unlock again.
    let shares = dir.path().join("shares");
    doc.split_among(&shares, &["A", "B"]);
    let (status, body) = post(
        app.port,
        "/api/invite",
        &cookie,
        Some(&origin),
        r#"{"patient":"zoe"}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(r#""kind":"key-replaced""#), "{body}");
    assert!(!doc.ok(&["pair", "list"], "", NOV).contains("zoe"));
    assert_eq!(
        post(app.port, "/api/lock", &cookie, Some(&origin), "{}").0,
        200
    );
    drop(app);
    doc.ok(&["pair", "list"], "", NOV);

    // Any loopback address may be chosen; its own Host is accepted.
    let mut child = Command::new(env!("CARGO_BIN_EXE_medcrypt"))
        .arg("--store")
        .arg(&doc.store)
        .args(["app", "--no-browser", "--listen", "127.0.0.2:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    // Kept open: the app writes a second line.
    let mut output = BufReader::new(child.stdout.take().unwrap());
    output.read_line(&mut first).unwrap();
    let rest = first.trim().strip_prefix("http://127.0.0.2:").unwrap();
    let (port, path) = rest.split_once('/').unwrap();
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.2", port.parse::<u16>().unwrap())).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: 127.0.0.2:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
}

/// Stop from the page ends the app even while another local program holds
/// a request half-sent (review finding: the key stayed in memory until that
/// connection closed).
#[test]
fn stop_ends_the_app_even_with_a_stalled_connection() {
    let dir = tempfile::tempdir().unwrap();
    let pat = Party::init(dir.path(), "patient", &[]);
    let mut app = App::start(&pat);
    let cookie = exchange(&app);
    let origin = format!("http://127.0.0.1:{}", app.port);
    let unlock = format!(r#"{{"passphrase":"{PASSPHRASE}"}}"#);
    assert_eq!(
        post(app.port, "/api/unlock", &cookie, Some(&origin), &unlock).0,
        200
    );
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    write!(
        stalled,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
        app.port
    )
    .unwrap();
    let asked = std::time::Instant::now();
    assert_eq!(
        post(app.port, "/api/stop", &cookie, Some(&origin), "{}").0,
        200
    );
    let exited = (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        app.child.try_wait().unwrap().is_some()
    });
    assert!(exited, "still running 30 s after Stop");
    assert!(asked.elapsed() < std::time::Duration::from_secs(20));
    drop(stalled);
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
    assert_eq!(messages[0]["from"], "dr-silva — Dr. Ana Silva");
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

/// A minimal WebDriver client over plain HTTP/1.1 to ChromeDriver.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(language: &str) -> Self {
        let driver_path = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("the browser tests need Chromium and ChromeDriver: apt-get install -y chromium chromium-driver")
            });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ready = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(ready, "ChromeDriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let args = serde_json::json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--window-size=1000,1100",
            format!("--lang={language}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ]);
        let created = browser.call(
            "POST",
            "/session",
            &serde_json::json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": args,
                    "prefs": {"intl.accept_languages": language}
                }
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // ChromeDriver keeps the connection open: read the head, then
        // exactly Content-Length bytes.
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(value) = line.to_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            head.push_str(&line);
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "not JSON from ChromeDriver: {head}{}",
                String::from_utf8_lossy(&body)
            )
        });
        value["value"].clone()
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn open(&self, url: &str) {
        self.call("POST", &self.at("/url"), &serde_json::json!({ "url": url }));
    }

    fn find(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            &self.at("/element"),
            &serde_json::json!({"using": "css selector", "value": css}),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    /// A string the element at `css` answers at `/element/{id}/{what}`.
    fn element_string(&self, css: &str, what: &str) -> String {
        let id = self.find(css);
        self.call(
            "GET",
            &self.at(&format!("/element/{id}/{what}")),
            &serde_json::Value::Null,
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// The accessible name Chromium computes for an element.
    fn label(&self, css: &str) -> String {
        self.element_string(css, "computedlabel")
    }

    fn role(&self, css: &str) -> String {
        self.element_string(css, "computedrole")
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/clear")),
            &serde_json::json!({}),
        );
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/value")),
            &serde_json::json!({ "text": text }),
        );
    }

    /// Shows one of the page's views through its navigation button.
    fn view(&self, name: &str) {
        self.click(&format!("#nav button[data-view={name}]"));
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/click")),
            &serde_json::json!({}),
        );
    }

    fn text(&self, css: &str) -> String {
        self.element_string(css, "text")
    }

    fn value(&self, css: &str) -> String {
        self.element_string(css, "property/value")
    }

    fn wait_for_text(&self, css: &str, what: &str) -> String {
        for _ in 0..100 {
            let text = self.text(css);
            if text.contains(what) {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "{css} never showed {what:?}: {:?} (alert: {:?})",
            self.text(css),
            self.text("#alert")
        );
    }

    /// Puts local files into a file input (several: one per line).
    fn choose_files(&self, css: &str, paths: &[&std::path::Path]) {
        let id = self.find(css);
        // A file input adds to what it holds: start empty.
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/clear")),
            &serde_json::json!({}),
        );
        let text: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/value")),
            &serde_json::json!({ "text": text.join("\n") }),
        );
    }

    /// Downloads go to `dir`, without asking.
    fn download_to(&self, dir: &std::path::Path) {
        self.call(
            "POST",
            &self.at("/goog/cdp/execute"),
            &serde_json::json!({"cmd": "Browser.setDownloadBehavior",
                "params": {"behavior": "allow", "downloadPath": dir.display().to_string()}}),
        );
    }

    /// The page as a PNG.
    fn png(&self) -> Vec<u8> {
        use base64::Engine as _;
        let png = self.call("GET", &self.at("/screenshot"), &serde_json::Value::Null);
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap()
    }

    /// Saves a PNG of the page under `target/app-screenshots/`.
    fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let png = self.call("GET", &self.at("/screenshot"), &serde_json::Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/app-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Browser {
    /// An English browser on `app`'s page, unlocked with the passphrase.
    fn unlocked(app: &App) -> Self {
        let browser = Self::start("en-US");
        browser.open(&app.url);
        browser.type_into("#passphrase", PASSPHRASE);
        browser.click("#unlock");
        browser.wait_for_text("#status", "Unlocked");
        browser
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call(
                    "DELETE",
                    &format!("/session/{}", self.session),
                    &serde_json::Value::Null,
                )
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn in_chromium_a_patient_unlocks_reads_an_excerpt_and_replies() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, pat, _) = common::paired(dir.path());
    let first = doc.encrypt("alice", "Your potassium is 4.1, normal.", NOV);
    let second = doc.encrypt("alice", "Take the tablet after breakfast.", NOV);
    let excerpt = format!(
        "[20/11/26, 10:02] Dr. Silva: {first}\n[20/11/26, 10:03] Dr. Silva: {second}\n[20/11/26, 10:05] Me: thanks"
    );
    let app = App::start(&pat);
    let browser = Browser::start("en-US");
    browser.open(&app.url);
    // The controls an outside test drives, by their accessible names.
    assert_eq!(browser.label("#passphrase"), "Passphrase");
    assert_eq!(browser.label("#unlock"), "Unlock");
    assert_eq!(browser.role("#status"), "status");
    assert_eq!(browser.role("#alert"), "alert");
    browser.screenshot("1-unlock");
    browser.type_into("#passphrase", "not my passphrase");
    browser.click("#unlock");
    browser.wait_for_text("#alert", "wrong passphrase");
    browser.type_into("#passphrase", PASSPHRASE);
    browser.click("#unlock");
    browser.wait_for_text("#status", "Unlocked");
    assert_eq!(browser.label("#encrypted"), "Encrypted message");
    assert_eq!(browser.label("#decrypt"), "Decrypt");
    assert_eq!(browser.label("#message"), "Message");
    assert_eq!(browser.label("#to"), "To");
    assert_eq!(browser.label("#encrypt"), "Encrypt");

    // A whole chat excerpt: both messages, each with its verified sender.
    browser.type_into("#encrypted", &excerpt);
    browser.click("#decrypt");
    browser.wait_for_text("#status", "2 messages read");
    let shown = browser.text("#messages");
    assert!(shown.contains("Your potassium is 4.1, normal."), "{shown}");
    assert!(
        shown.contains("Take the tablet after breakfast."),
        "{shown}"
    );
    // The name this patient gave the pairing first: the physician's own
    // name comes from the invitation, which anyone can write.
    assert_eq!(
        shown.matches("From: dr-silva — Dr. Ana Silva").count(),
        2,
        "{shown}"
    );
    browser.screenshot("2-read");

    // A tampered message: the alert, in plain words.
    let tampered = common::forge(&first, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    });
    browser.type_into("#encrypted", &tampered);
    browser.click("#decrypt");
    let alert = browser.wait_for_text("#alert", "What to do");
    assert!(!alert.is_empty());
    browser.screenshot("3-tampered");

    // A reply the physician's command line decrypts.
    browser.type_into("#message", "Thank you, doctor.");
    browser.click("#encrypt");
    browser.wait_for_text("#status", "Encrypted");
    let wire = browser.value("#wire");
    assert!(wire.starts_with("MEDCRYPT:v2:"), "{wire}");
    browser.screenshot("4-reply");
    let run = doc.decrypt(&wire, NOV);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Thank you, doctor."), "{}", run.stdout);

    // The URL's secret worked once: the same link in a fresh browser is refused.
    let again = Browser::start("es-ES");
    again.open(&app.url);
    let body = again.text("body");
    assert!(body.contains("already used"), "{body}");
}

#[test]
fn in_chromium_the_page_speaks_spanish_to_a_spanish_browser() {
    let dir = tempfile::tempdir().unwrap();
    let pat = Party::init(dir.path(), "patient", &[]);
    let app = App::start(&pat);
    let browser = Browser::start("es-ES");
    browser.open(&app.url);
    assert_eq!(browser.label("#unlock"), "Desbloquear");
    // Errors too: each kind has its own Spanish sentence before the CLI's
    // words.
    browser.type_into("#passphrase", "no es mi frase");
    browser.click("#unlock");
    browser.wait_for_text(
        "#alert",
        "Frase de contraseña, código o fragmentos incorrectos",
    );
    browser.type_into("#passphrase", PASSPHRASE);
    browser.click("#unlock");
    browser.wait_for_text("#status", "Desbloqueado");
    assert_eq!(browser.label("#decrypt"), "Descifrar");
    browser.type_into("#encrypted", "MEDCRYPT:v2:AAAA");
    browser.click("#decrypt");
    let alert = browser.wait_for_text("#alert", "Qué hacer");
    assert!(
        alert.contains("dañado") || alert.contains("no es de MedCrypt"),
        "{alert}"
    );
    browser.screenshot("5-spanish");
}

/// Waits for a finished download named `name` in `dir`.
fn downloaded(dir: &std::path::Path, name: &str) -> Vec<u8> {
    for _ in 0..200 {
        let path = dir.join(name);
        if path.exists() {
            let bytes = std::fs::read(&path).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            if std::fs::read(&path).unwrap().len() == bytes.len() {
                return bytes;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "no download {name} in {}: {:?}",
        dir.display(),
        common::files_in(dir)
    );
}

#[test]
fn in_chromium_pairing_both_sides_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let doc = Party::init(dir.path(), "physician", &["--name", "Dr. Ana Silva"]);
    let pat = Party::init(dir.path(), "patient", &[]);

    // The patient pairs by uploading the physician's QR PNG, and sees the
    // safety number `pair new` printed.
    let png = dir.path().join("invite.png");
    let shown = doc.ok(
        &[
            "pair",
            "new",
            "--patient",
            "alice",
            "--qr-png",
            png.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    let safety = common::line_after(&shown, "Safety number");
    let app = App::start(&pat);
    let browser = Browser::unlocked(&app);
    browser.view("pairing");
    assert_eq!(browser.label("#qr-image"), "QR code image");
    assert_eq!(browser.label("#pairing-code"), "Pairing code");
    browser.choose_files("#qr-image", &[&png]);
    browser.click("#pair");
    browser.wait_for_text("#status", "Paired");
    assert_eq!(browser.text("#safety"), safety);
    browser.screenshot("6-paired");

    // Files: a 5 MB file byte-identical, and a set of parts given at once.
    let downloads = tempfile::tempdir().unwrap();
    browser.download_to(downloads.path());
    let content: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let plain = dir.path().join("xray.dcm");
    std::fs::write(&plain, &content).unwrap();
    let encrypted = dir.path().join("xray.medcrypt");
    doc.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            plain.to_str().unwrap(),
            "-o",
            encrypted.to_str().unwrap(),
        ],
        "",
        NOV,
    );
    browser.view("files");
    assert_eq!(browser.label("#encrypted-file"), "Encrypted file");
    browser.choose_files("#encrypted-file", &[&encrypted]);
    browser.click("#decrypt-file");
    browser.wait_for_text("#status", "Decrypted xray.dcm");
    assert!(
        downloaded(downloads.path(), "xray.dcm") == content,
        "not byte-identical"
    );
    browser.screenshot("7-file");

    let report: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
    let plain = dir.path().join("report.pdf");
    std::fs::write(&plain, &report).unwrap();
    let base = dir.path().join("report.medcrypt");
    let parts = doc.ok(
        &[
            "attach",
            "encrypt",
            "--to",
            "alice",
            plain.to_str().unwrap(),
            "-o",
            base.to_str().unwrap(),
            "--part-size",
            "200K",
        ],
        "",
        NOV,
    );
    let parts: Vec<std::path::PathBuf> = parts.lines().map(std::path::PathBuf::from).collect();
    assert!(parts.len() >= 3, "{parts:?}");
    let refs: Vec<&std::path::Path> = parts.iter().rev().map(|p| p.as_path()).collect();
    browser.choose_files("#encrypted-file", &refs);
    browser.click("#decrypt-file");
    browser.wait_for_text("#status", "Decrypted report.pdf");
    assert!(downloaded(downloads.path(), "report.pdf") == report);

    // A file cut short: its own alert, nothing saved, and nothing left
    // beside the store (the plaintext never touches the disk).
    let bytes = std::fs::read(&encrypted).unwrap();
    let cut = dir.path().join("cut.medcrypt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    browser.choose_files("#encrypted-file", &[&cut]);
    browser.click("#decrypt-file");
    let alert = browser.wait_for_text("#alert", "What to do");
    assert!(
        !alert.contains(".medcrypt-tmp-"),
        "the private folder is named: {alert}"
    );
    let beside: Vec<String> = common::files_in(pat.store.parent().unwrap())
        .into_iter()
        .filter(|name| !name.starts_with("store.sqlite"))
        .collect();
    assert!(beside.is_empty(), "left beside the store: {beside:?}");
    let mut saved = common::files_in(downloads.path());
    saved.sort();
    assert_eq!(saved, ["report.pdf", "xray.dcm"], "a partial download");
    drop(browser);
    drop(app);

    // The physician makes a pairing in the page; the QR code on the screen
    // decodes to a working invitation.
    let app = App::start(&doc);
    let browser = Browser::unlocked(&app);
    browser.view("pairing");
    browser.type_into("#patient-alias", "bob");
    browser.click("#invite");
    browser.wait_for_text("#status", "Show this QR code");
    let screen = dir.path().join("screen.png");
    std::fs::write(&screen, browser.png()).unwrap();
    browser.screenshot("8-invite");
    let shown_safety = browser.text("#invite-safety");
    let bob = Party::init(dir.path(), "bob", &[]);
    let accepted = bob.ok(
        &[
            "pair",
            "accept",
            "--qr-image",
            screen.to_str().unwrap(),
            "--physician",
            "dr-silva",
        ],
        "",
        NOV,
    );
    assert_eq!(common::line_after(&accepted, "Safety number"), shown_safety);
}

/// Waits until `css` is shown (or hidden, with `shown` false).
fn wait_shown(browser: &Browser, css: &str, shown: bool) {
    for _ in 0..150 {
        let id = browser.find(css);
        let displayed = browser.call(
            "GET",
            &browser.at(&format!("/element/{id}/displayed")),
            &serde_json::Value::Null,
        );
        if displayed.as_bool() == Some(shown) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "{css} never became {}",
        if shown { "shown" } else { "hidden" }
    );
}

#[test]
fn in_chromium_a_physician_works_through_patients_history_outbox_audit_and_backup() {
    let dir = tempfile::tempdir().unwrap();
    // "alice", with a text and a file the agent received.
    let doc = common::store_with_records(dir.path());
    let app = App::start(&doc);
    let browser = Browser::unlocked(&app);
    let downloads = tempfile::tempdir().unwrap();
    browser.download_to(downloads.path());

    // Patients: the pairing, its chat, its last message and safety number.
    browser.view("patients");
    let table = browser.wait_for_text("#patients", "alice");
    assert!(table.contains("not connected"), "{table}");
    browser.screenshot("9-patients");

    // Queue a message and a file for the agent.
    assert_eq!(browser.label("#send-to"), "Send to");
    browser.type_into("#send-text", "Your results are ready.");
    browser.click("#queue-text");
    browser.wait_for_text("#status", "Queued as #1");
    let plan = dir.path().join("plan.pdf");
    std::fs::write(&plan, b"%PDF the care plan").unwrap();
    browser.choose_files("#send-file", &[&plan]);
    browser.click("#queue-file");
    browser.wait_for_text("#status", "Queued as #2");
    let listed = doc.ok(&["outbox"], "", NOV);
    assert!(
        listed.contains("alice") && listed.contains("document"),
        "{listed}"
    );

    // The outbox with its states; a failed item is retried from the page.
    // As the agent records a refusal.
    let now = medcrypt::parse_utc(NOV).unwrap();
    let store = doc.open_store();
    store
        .outbox_set_state(2, "failed", None, Some("refused by the messenger"), now)
        .unwrap();
    drop(store);
    browser.view("outbox");
    let rows = browser.wait_for_text("#outbox", "refused by the messenger");
    assert!(rows.contains("queued") && rows.contains("failed"), "{rows}");
    browser.screenshot("10-outbox");
    browser.click("#outbox button[aria-label='Retry #2']");
    browser.wait_for_text("#status", "#2 is queued again");
    assert!(!browser.text("#outbox").contains("failed"));

    // The history: the patient's text, the file to save, when each goes,
    // and when every key is destroyed.
    browser.view("history");
    browser.wait_for_text("#history", "Allergic to penicillin.");
    browser.click("#refresh-history");
    let history = browser.wait_for_text("#history", "Allergic to penicillin.");
    assert!(
        history.contains("ecg.pdf") && history.contains("deleted on"),
        "{history}"
    );
    assert!(browser.text("#retention").contains("month key"));
    let keys = browser.text("#keys");
    assert!(
        keys.contains("2026-11") && keys.contains("will be destroyed on 2026-12-08"),
        "{keys}"
    );
    browser.screenshot("11-history");
    browser.click("#history button[aria-label='Save ecg.pdf']");
    browser.wait_for_text("#status", "Decrypted ecg.pdf");
    assert_eq!(downloaded(downloads.path(), "ecg.pdf"), b"%PDF ecg.");

    // Audit: a checkpoint, then the log verified with the code and it.
    browser.view("security");
    browser.click("#take-checkpoint");
    let line = browser.wait_for_text("#checkpoint-line", "MEDCRYPT-AUDIT:");
    let code = common::verification_code(&doc);
    browser.type_into("#audit-code", &code);
    browser.click("#verify");
    browser.wait_for_text("#status", "OK:");
    let proven = browser.text("#audit-result");
    assert!(
        proven.contains("Proven from the verification code"),
        "{proven}"
    );
    assert!(proven.contains("reaches checkpoint"), "{proven}");
    assert!(line.starts_with("MEDCRYPT-AUDIT:"));
    browser.type_into("#audit-code", "not a code");
    browser.click("#verify");
    let alert = browser.wait_for_text("#alert", "What to do");
    assert!(
        alert.contains("audit verification code cannot be read"),
        "{alert}"
    );
    browser.screenshot("12-audit");

    // Backup, beside the store by default; never over an existing file.
    let suggested = browser.value("#backup-file");
    assert!(
        suggested.ends_with("medcrypt-backup-2026-11-20.sqlite"),
        "{suggested}"
    );
    browser.click("#backup");
    browser.wait_for_text("#status", "Backup written");
    assert!(std::path::Path::new(&suggested).exists());
    browser.click("#backup");
    browser.wait_for_text("#alert", "already exists");
    let audit = doc.ok(&["audit", "show"], "", NOV);
    for action in ["backup", "audit_verify", "inbox_export", "audit_checkpoint"] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }
}

#[test]
fn in_chromium_two_custodians_open_the_store_and_export_one_patient() {
    let dir = tempfile::tempdir().unwrap();
    let doc = common::store_with_records(dir.path());
    let shares = dir.path().join("shares");
    doc.split_among(
        &shares,
        &["Medical director", "Records office", "Maria Silva"],
    );
    let page = shares.join("share-1-medical-director.txt");
    let photo = shares.join("share-2-records-office.png");
    assert!(page.exists() && photo.exists());

    // Nobody unlocks: the custodians start from the locked page.
    let app = App::start(&doc);
    let browser = Browser::start("en-US");
    browser.open(&app.url);
    browser.click("#to-emergency");
    wait_shown(&browser, "#emergency-view", true);
    // No reason: refused before the shares are used.
    browser.choose_files("#share-files", &[&page, &photo]);
    browser.click("#open-shares");
    browser.wait_for_text("#alert", "needs a reason");
    // One share alone opens nothing.
    browser.choose_files("#share-files", &[&page]);
    browser.type_into("#reason", "patient in ICU, physician unreachable");
    browser.click("#open-shares");
    browser.wait_for_text("#alert", "two custodians");
    // A share page and a photo of the other's QR code.
    browser.choose_files("#share-files", &[&page, &photo]);
    browser.click("#open-shares");
    browser.wait_for_text("#status", "Opened by Medical director and Records office");
    browser.wait_for_text("#patient-choices", "alice");
    browser.screenshot("13-emergency");
    browser.click("#patient-choices input[value=alice]");
    browser.click("#export-patient");
    let status = browser.wait_for_text("#status", "item(s) exported to");
    let folder = status
        .split("exported to ")
        .nth(1)
        .and_then(|rest| rest.split(". Recorded").next())
        .unwrap()
        .to_owned();
    let messages =
        std::fs::read_to_string(std::path::Path::new(&folder).join("messages.txt")).unwrap();
    assert!(messages.contains("Allergic to penicillin."), "{messages}");
    browser.screenshot("14-exported");

    // As the CLI's combine: audited with the names and the reason, the
    // physician told, the set retired.
    let audit = doc.ok(&["audit", "show", "--action", "escrow_combine"], "", NOV);
    assert!(
        audit.contains("Medical director and Records office"),
        "{audit}"
    );
    assert!(audit.contains("patient in ICU"), "{audit}");
    assert!(
        audit.contains("patient list"),
        "the first step is recorded too: {audit}"
    );
    let outbox = doc.ok(&["outbox"], "", NOV);
    assert!(outbox.contains("Emergency access"), "{outbox}");
    browser.choose_files("#share-files", &[&page, &photo]);
    browser.type_into("#reason", "again");
    browser.click("#open-shares");
    browser.wait_for_text("#alert", "retired");

    // A new set, typed this time; the store gets a new passphrase, asked
    // twice, and a new recovery code shown once.
    let fresh = dir.path().join("fresh");
    doc.split_among(&fresh, &["Medical director", "Records office"]);
    let typed: Vec<String> = common::files_in(&fresh)
        .into_iter()
        .filter(|name| name.ends_with(".txt"))
        .map(|name| {
            std::fs::read_to_string(fresh.join(name))
                .unwrap()
                .lines()
                .find(|l| l.trim_start().starts_with("MEDCRYPT-SHARE:"))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(typed.len(), 2);
    let id = browser.find("#share-files");
    browser.call(
        "POST",
        &browser.at(&format!("/element/{id}/clear")),
        &serde_json::json!({}),
    );
    browser.type_into("#share-text", &typed.join("\n"));
    browser.type_into("#reason", "physician lost the passphrase");
    browser.click("#open-shares");
    browser.wait_for_text("#patient-choices", "alice");
    browser.type_into("#rekey-passphrase", "custodians-new-phrase-2026");
    browser.type_into("#rekey-repeat", "a typo");
    browser.click("#rekey");
    browser.wait_for_text("#alert", "differ");
    browser.type_into("#rekey-repeat", "custodians-new-phrase-2026");
    browser.click("#rekey");
    browser.wait_for_text("#status", "shares are now retired");
    let recovery = browser.text("#emergency-result");
    assert!(recovery.contains("New recovery code"), "{recovery}");
    browser.screenshot("17-new-passphrase");
    assert_ne!(
        doc.run_at(&["pair", "list"], "", NOV).code,
        0,
        "the old passphrase still opens"
    );
    let listed = doc.run_with(&["pair", "list"], "", NOV, "custodians-new-phrase-2026");
    assert_eq!(listed.code, 0, "{}", listed.stderr);
}

#[test]
fn in_chromium_a_new_store_is_made_from_the_page_and_locks_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    // Not even its folder exists yet.
    let pat = Party::new(dir.path(), "patient");
    assert!(!pat.store.parent().unwrap().exists());
    let app = App::start_with(&pat, &["--idle-seconds", "4"]);
    let browser = Browser::start("en-US");
    browser.open(&app.url);
    wait_shown(&browser, "#create-view", true);
    browser.type_into("#new-passphrase", PASSPHRASE);
    browser.type_into("#repeat-passphrase", "something else entirely");
    browser.click("#create");
    browser.wait_for_text("#alert", "differ");
    browser.type_into("#repeat-passphrase", PASSPHRASE);
    browser.click("#create");
    browser.wait_for_text("#status", "Your store is ready");
    let recovery = browser.text("#recovery-code");
    assert!(!recovery.is_empty() && !browser.text("#verification-code").is_empty());
    browser.screenshot("15-created");
    browser.click("#written");
    browser.wait_for_text("#status", "Unlocked");
    assert!(
        browser.text("#recovery-code").is_empty(),
        "the code stays on screen"
    );
    // The store the CLI opens with that passphrase.
    let listed = pat.ok(&["pair", "list"], "", NOV);
    assert!(listed.contains("No pairings yet"), "{listed}");

    // Idle: the store locks and the page forgets what it showed.
    browser.type_into("#message", "a reply not yet encrypted");
    std::thread::sleep(std::time::Duration::from_secs(6));
    wait_shown(&browser, "#unlock-view", true);
    browser.wait_for_text("#status", "Locked");
    assert_eq!(browser.value("#message"), "");
    browser.screenshot("16-idle-locked");
    let (code, _, _) = get(
        app.port,
        "/api/status",
        &format!("127.0.0.1:{}", app.port),
        None,
    );
    assert_eq!(code, 403, "status needs the session");
}

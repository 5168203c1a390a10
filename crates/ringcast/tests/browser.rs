//! The live page (`GET /` on the WebSocket/HTTP port, `src/http/index.html`)
//! in a real browser: headless Chromium, driven over the Chrome DevTools
//! Protocol. The page connects, subscribes from `?topic=`, renders DATA
//! published by a native TCP client (UTF-8 and HTML shown as text, seqs in
//! order), and its publish form reaches a native TCP subscriber.
//!
//! Needs Chromium: `RINGCAST_CHROMIUM=/path/to/chrome`, or `chromium`,
//! `chromium-browser` or `google-chrome` on PATH (`apt-get install chromium`).
//! Without one the test fails: it is not skipped.

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::{Message, WebSocket};

/// How long Chromium may take to start, and any one condition to come true.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long one DevTools command may take to answer.
const CDP_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two polls of the page.
const POLL_PAUSE: Duration = Duration::from_millis(20);

const TOPIC: &str = "browser.test";

/// The browser to run: `RINGCAST_CHROMIUM`, else the first of the usual names on PATH.
fn find_chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("RINGCAST_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return candidate;
            }
        }
    }
    panic!(
        "no Chromium found: this test drives the live page in a real browser. Install it \
         (`apt-get install chromium`), or point RINGCAST_CHROMIUM at a Chromium/Chrome binary \
         (searched PATH for chromium, chromium-browser, google-chrome)"
    );
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A headless Chromium with its own profile directory. Dropping it kills its
/// whole process group, waits for it and removes the profile, so a failing
/// test leaks neither processes nor files.
struct Browser {
    child: Child,
    profile: PathBuf,
    /// Every stderr line read so far (a thread keeps draining the pipe).
    stderr: Arc<Mutex<Vec<String>>>,
    /// The port of the DevTools HTTP/WebSocket endpoint.
    devtools_port: u16,
}

impl Browser {
    fn launch(exe: &std::path::Path, url: &str) -> Browser {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let profile = std::env::temp_dir().join(format!(
            "ringcast-browser-test-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", profile.display()));
        let mut cmd = Command::new(exe);
        cmd.arg(format!("--user-data-dir={}", profile.display()))
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so Drop can kill the helpers (renderer,
            // zygote, GPU/network services) along with the browser.
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                panic!(
                    "cannot start {}: {e} (install Chromium: `apt-get install chromium`, \
                     or set RINGCAST_CHROMIUM)",
                    exe.display()
                );
            }
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let pipe = child.stderr.take().expect("stderr is piped");
            let stderr = Arc::clone(&stderr);
            // Drains stderr for the browser's whole life: Chromium must never
            // block on a full pipe. Ends when every process holding it exits.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    stderr.lock().unwrap().push(line.clone());
                    let _ = tx.send(line); // nobody listens once the port is known
                }
            });
        }
        let mut browser = Browser {
            child,
            profile,
            stderr,
            devtools_port: 0,
        };
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = devtools_port(&line) {
                        browser.devtools_port = port;
                        return browser;
                    }
                }
                Err(e) => {
                    let status = browser.child.try_wait().ok().flatten();
                    panic!(
                        "Chromium ({}) never printed `DevTools listening on ws://...` ({}; exit \
                         status {status:?}). Its stderr:\n{}",
                        exe.display(),
                        match e {
                            mpsc::RecvTimeoutError::Timeout => format!("waited {DEADLINE:?}"),
                            mpsc::RecvTimeoutError::Disconnected => "stderr closed".into(),
                        },
                        browser.stderr.lock().unwrap().join("\n")
                    );
                }
            }
        }
    }

    /// The last lines of Chromium's stderr, without its D-Bus complaints
    /// (containers have no D-Bus; they are noise).
    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        let useful: Vec<&String> = lines.iter().filter(|l| !l.contains("dbus/")).collect();
        let skip = useful.len().saturating_sub(30);
        let mut out = String::new();
        for l in &useful[skip..] {
            out.push_str(l);
            out.push('\n');
        }
        if out.is_empty() {
            out.push_str("(nothing but D-Bus noise)\n");
        }
        out
    }

    /// The page target's DevTools WebSocket URL: the `type == "page"` entry
    /// of `/json/list` showing `page_url`.
    fn page_target(&self, page_url: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let last = match http_get_json(self.devtools_port, "/json/list") {
                Ok(Value::Array(targets)) => {
                    let found = targets.iter().find(|t| {
                        t["type"] == "page"
                            && t["url"].as_str().is_some_and(|u| u.starts_with(page_url))
                    });
                    if let Some(ws) = found.and_then(|t| t["webSocketDebuggerUrl"].as_str()) {
                        return ws.to_string();
                    }
                    format!("targets: {}", Value::Array(targets))
                }
                Ok(other) => format!("not a list: {other}"),
                Err(e) => e,
            };
            if Instant::now() >= end {
                panic!(
                    "no page target for {page_url} in /json/list after {DEADLINE:?}; last answer: \
                     {last}\nChromium stderr tail:\n{}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) takes no pointers; -pid names the process group the
        // browser leads (process_group(0) above), which holds only its processes.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Helpers may still be exiting and writing to the profile: retry briefly.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The port in `DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID`.
fn devtools_port(line: &str) -> Option<u16> {
    let rest = line.split("DevTools listening on ws://").nth(1)?;
    let host_port = rest.split('/').next()?;
    host_port.rsplit(':').next()?.trim().parse().ok()
}

/// GET `path` from the DevTools HTTP endpoint and parse the body as JSON.
/// Chromium keeps the connection open despite `Connection: close`, so the
/// body ends at its Content-Length, not at end of stream.
fn http_get_json(port: u16, path: &str) -> Result<Value, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, CDP_TIMEOUT)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(CDP_TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send GET {path}: {e}"))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..at]).into_owned();
            if !head.starts_with("HTTP/1.1 200") {
                return Err(format!("GET {path}: {head}"));
            }
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| format!("GET {path}: no Content-Length in {head:?}"))?;
            let body = &raw[at + 4..];
            if body.len() >= len {
                return serde_json::from_slice(&body[..len]).map_err(|e| {
                    format!(
                        "GET {path}: bad JSON ({e}): {}",
                        String::from_utf8_lossy(&body[..len])
                    )
                });
            }
        }
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("read GET {path}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "GET {path}: connection closed after {:?}",
                String::from_utf8_lossy(&raw)
            ));
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// One DevTools session with the page target.
struct Page {
    ws: WebSocket<TcpStream>,
    next_id: u64,
}

impl Page {
    fn connect(url: &str) -> Page {
        let host_port = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("unexpected webSocketDebuggerUrl {url:?}"));
        let stream = TcpStream::connect(host_port)
            .unwrap_or_else(|e| panic!("connect to DevTools at {host_port}: {e}"));
        stream.set_read_timeout(Some(CDP_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let (ws, _) = tungstenite::client(url, stream)
            .unwrap_or_else(|e| panic!("DevTools WebSocket handshake with {url}: {e}"));
        Page { ws, next_id: 1 }
    }

    /// Evaluates `expression` in the page and returns its value (by value).
    /// A thrown exception or a broken session is an `Err` with the details.
    fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let cmd = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "returnByValue": true },
        });
        self.ws
            .send(Message::Text(cmd.to_string()))
            .map_err(|e| format!("send Runtime.evaluate: {e}"))?;
        loop {
            let msg = self
                .ws
                .read()
                .map_err(|e| format!("read the answer to Runtime.evaluate #{id}: {e}"))?;
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(f) => return Err(format!("DevTools closed the session: {f:?}")),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| format!("DevTools sent bad JSON ({e}): {text}"))?;
            if v["id"] != id {
                continue; // an event, or a late answer
            }
            if !v["error"].is_null() {
                return Err(format!("Runtime.evaluate failed: {}", v["error"]));
            }
            let r = &v["result"];
            if !r["exceptionDetails"].is_null() {
                return Err(format!(
                    "the page threw evaluating {expression:?}: {}",
                    r["exceptionDetails"]
                ));
            }
            return Ok(r["result"]["value"].clone());
        }
    }

    fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// What the page and the browser looked like, for a failure message.
fn diagnostics(page: &mut Page, browser: &Browser) -> String {
    let body = match page.eval("document.body ? document.body.innerText : '(no body)'") {
        Ok(Value::String(s)) => {
            let mut end = s.len().min(2048);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        }
        Ok(other) => format!("(not text: {other})"),
        Err(e) => format!("(could not read it: {e})"),
    };
    format!(
        "\n--- document.body.innerText (first 2 KB) ---\n{body}\n--- Chromium stderr tail ---\n{}",
        browser.stderr_tail()
    )
}

/// Evaluates `expression`; on failure panics with the page and browser state.
fn eval(page: &mut Page, browser: &Browser, expression: &str) -> Value {
    match page.eval(expression) {
        Ok(v) => v,
        Err(e) => panic!("{e}{}", diagnostics(page, browser)),
    }
}

/// Polls `check` (an evaluation of the page plus whatever else it looks at)
/// until it returns `Some`, for at most [`DEADLINE`]; then fails, saying what
/// it was waiting for and what it saw last.
fn poll<T>(
    page: &mut Page,
    browser: &Browser,
    what: &str,
    mut check: impl FnMut(&mut Page) -> Result<Option<T>, String>,
) -> T {
    let end = Instant::now() + DEADLINE;
    let mut last = String::from("(never checked)");
    loop {
        match check(page) {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(seen) => last = seen,
        }
        if Instant::now() >= end {
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}; last seen: {last}{}",
                diagnostics(page, browser)
            );
        }
        std::thread::sleep(POLL_PAUSE);
    }
}

/// The page's messages on [`TOPIC`], oldest first, as (seq, payload text).
const MESSAGES_JS: &str = r#"
Array.from(document.querySelectorAll('#messages li.msg'))
  .filter((li) => li.dataset.topic === 'browser.test')
  .reverse()
  .map((li) => {
    const p = li.querySelector('.payload');
    return { seq: li.dataset.seq, payload: p ? p.textContent : null, hex: p ? p.classList.contains('hex') : null };
  })
"#;

fn page_messages(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let text = m["payload"].as_str().unwrap_or("(no .payload)");
                    // A payload that is not valid UTF-8 is shown as hex: mark it.
                    let hex = if m["hex"] == true { "(hex) " } else { "" };
                    (
                        m["seq"].as_str().unwrap_or("?").to_string(),
                        format!("{hex}{text}"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn live_page_subscribes_renders_data_as_text_and_publishes_in_headless_chromium() {
    let started = Instant::now();
    let engine = common::start(common::config(2));
    let ws_addr = engine.ws_addr().expect("the WebSocket/HTTP listener is on");
    let exe = find_chromium();
    let page_url = format!("http://{ws_addr}/");
    let browser = Browser::launch(&exe, &format!("{page_url}?topic={TOPIC}"));
    let mut page = Page::connect(&browser.page_target(&page_url));

    // 1. The page is connected and its SUBSCRIBE (from ?topic=) was processed
    // by the engine and SUBACKed: anything published now reaches it.
    poll(
        &mut page,
        &browser,
        "the page to connect and subscribe",
        |page| {
            let v = page.eval(
                "({ status: document.getElementById('status').textContent, \
                sub: (document.querySelector('#subscriptions li.sub') || {}).className || null })",
            )?;
            let subs = engine.stats().subscriptions;
            if v["status"] == "connected" && v["sub"] == "sub active" && subs >= 1 {
                Ok(Some(()))
            } else {
                Err(format!("page {v}, engine subscriptions {subs}"))
            }
        },
    );

    // 2. DATA from a native TCP publisher is rendered in order, as text.
    let sent = [
        "hello from TCP 1",
        "héllo ✓ — UTF-8 from TCP 2",
        "<b>not bold</b> & <script>nope()</script> from TCP 3",
    ];
    let mut publisher = common::connect(engine.local_addr());
    for s in sent {
        publisher.publish(TOPIC, s.as_bytes()).unwrap();
    }
    publisher.ping(b"sync").unwrap(); // the engine has read all three
    let shown = poll(&mut page, &browser, "3 messages on the page", |page| {
        let v = page.eval(MESSAGES_JS)?;
        let got = page_messages(&v);
        if got.len() >= sent.len() {
            Ok(Some(got))
        } else {
            Err(format!("{got:?}"))
        }
    });
    let expected: Vec<(String, String)> = sent
        .iter()
        .enumerate()
        .map(|(i, s)| ((i + 1).to_string(), s.to_string()))
        .collect();
    assert_eq!(
        shown,
        expected,
        "the page shows each DATA once, seq 1, 2, 3 in order, payload as exact text{}",
        diagnostics(&mut page, &browser)
    );
    let markup = eval(
        &mut page,
        &browser,
        "document.querySelectorAll('#messages b, #messages script').length",
    );
    assert_eq!(
        markup,
        0,
        "a payload's HTML was parsed into elements instead of shown as text{}",
        diagnostics(&mut page, &browser)
    );

    // 3. The page's publish form reaches a native TCP subscriber.
    let mut sub = common::connect(engine.local_addr());
    sub.set_read_timeout(Some(DEADLINE)).unwrap();
    let ack = sub.subscribe(TOPIC).unwrap();
    assert_eq!(ack.next_seq, 4, "three frames were published before");
    let clicked = eval(
        &mut page,
        &browser,
        "(() => { \
            document.getElementById('pub-topic').value = 'browser.test'; \
            document.getElementById('pub-message').value = 'from the page'; \
            document.getElementById('publish').click(); \
            return document.getElementById('status').textContent; \
         })()",
    );
    assert_eq!(
        clicked, "connected",
        "the page was connected when publishing"
    );
    let msg = sub.next_message().unwrap_or_else(|e| {
        panic!(
            "the TCP subscriber got no DATA from the page's publish: {e}{}",
            diagnostics(&mut page, &browser)
        )
    });
    assert_eq!(msg.topic, TOPIC);
    assert_eq!(msg.seq, 4);
    assert_eq!(
        String::from_utf8_lossy(&msg.payload),
        "from the page",
        "the page publishes the form's text as UTF-8"
    );
    // The page, subscribed too, receives its own publish.
    poll(
        &mut page,
        &browser,
        "the page's own publish on the page",
        |page| {
            let got = page_messages(&page.eval(MESSAGES_JS)?);
            match got.last() {
                Some((seq, p)) if seq == "4" && p == "from the page" => Ok(Some(())),
                _ => Err(format!("{got:?}")),
            }
        },
    );

    // 4. Clean up: the DevTools session, the browser, the engine.
    page.close();
    drop(browser);
    drop(sub);
    drop(publisher);
    engine.shutdown();
    engine.wait().expect("the engine shuts down cleanly");
    eprintln!("browser test took {:?}", started.elapsed());
}

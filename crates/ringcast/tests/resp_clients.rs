//! Real, unmodified Redis client libraries against the RESP front of an
//! in-process engine: redis-py (sync and asyncio, RESP2 and RESP3), ioredis
//! (RESP2) and redis-cli, with the scripts in tests/clients/ (each asserts
//! exact message contents and order and exits non-zero with what differed),
//! plus the shared topic namespace seen from both sides: what redis-py
//! publishes reaches a native subscriber and what a native client publishes
//! reaches redis-py.
//!
//! The libraries come from scripts/resp-clients-setup.sh (run by
//! scripts/test.sh): a Python venv at target/resp-clients/venv (or
//! RINGCAST_PYTHON, a Python with redis-py 5) and ioredis in
//! tests/clients/node/node_modules (or RINGCAST_NODE_MODULES); node and
//! redis-cli are found on PATH (or RINGCAST_NODE, RINGCAST_REDIS_CLI). A
//! missing one fails these tests: none is skipped.

mod common;

use ringcast::{Config, Engine};
use ringcast_client::Client;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Longest any one script may run (they take a few seconds).
const SCRIPT_LIMIT: Duration = Duration::from_secs(45);
/// Messages each way in the cross-front checks.
const CROSS_MESSAGES: u64 = 100;
const PUBLISH_TOKEN: &str = "pub-t0ken";
const SUBSCRIBE_TOKEN: &str = "sub-t0ken";

const SETUP_HINT: &str =
    "run `bash scripts/test.sh` (it apt-installs python3-venv, nodejs, npm and \
     redis-tools when missing and runs scripts/resp-clients-setup.sh), or \
     scripts/resp-clients-setup.sh alone when those are installed";

/// The repository's root (crates/ringcast/../..).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The programs the scripts need, found once.
struct Tools {
    python: PathBuf,
    node: PathBuf,
    node_modules: PathBuf,
    redis_cli: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Runs `cmd` to completion for a tool check; its output on failure.
fn probe(cmd: &mut Command) -> Result<String, String> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn find_tools() -> Result<Tools, String> {
    let mut missing = Vec::new();
    let python = env_path("RINGCAST_PYTHON")
        .unwrap_or_else(|| root().join("target/resp-clients/venv/bin/python"));
    match probe(Command::new(&python).args(["-c", "import redis; print(redis.__version__)"])) {
        Ok(v) if v.starts_with("5.") => {}
        Ok(v) => missing.push(format!("{} has redis-py {v}, not 5.x", python.display())),
        Err(e) => missing.push(format!(
            "no redis-py in {} (RINGCAST_PYTHON): {}",
            python.display(),
            e.trim()
        )),
    }
    let node = env_path("RINGCAST_NODE").or_else(|| on_path("node"));
    let node_modules = env_path("RINGCAST_NODE_MODULES")
        .unwrap_or_else(|| root().join("tests/clients/node/node_modules"));
    if node.is_none() {
        missing.push("no `node` on PATH (RINGCAST_NODE)".into());
    }
    if !node_modules.join("ioredis/package.json").is_file() {
        missing.push(format!(
            "no ioredis in {} (RINGCAST_NODE_MODULES)",
            node_modules.display()
        ));
    }
    let redis_cli = env_path("RINGCAST_REDIS_CLI").or_else(|| on_path("redis-cli"));
    match &redis_cli {
        None => missing.push("no `redis-cli` on PATH (RINGCAST_REDIS_CLI)".into()),
        Some(cli) => {
            if let Err(e) = probe(Command::new(cli).arg("--version")) {
                missing.push(format!("{} --version failed: {e}", cli.display()));
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "the Redis client libraries these tests run are missing:\n  - {}\n{SETUP_HINT}",
            missing.join("\n  - ")
        ));
    }
    Ok(Tools {
        python,
        node: node.unwrap(),
        node_modules,
        redis_cli: redis_cli.unwrap(),
    })
}

fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    match TOOLS.get_or_init(find_tools) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// A line a script printed, or the end of one of its two streams.
enum Event {
    Out(String),
    Err(String),
    Closed,
}

/// A running script: its stdout and stderr lines as they come, in one
/// transcript for the failure message.
struct Script {
    what: String,
    child: Child,
    events: Receiver<Event>,
    open: usize,
    transcript: String,
}

fn forward(stream: impl Read + Send + 'static, tx: mpsc::Sender<Event>, out: bool) {
    thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            let _ = tx.send(if out {
                Event::Out(text)
            } else {
                Event::Err(text)
            });
            line.clear();
        }
        let _ = tx.send(Event::Closed);
    });
}

impl Script {
    fn spawn(what: impl Into<String>, mut cmd: Command) -> Script {
        let what = what.into();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}\n{SETUP_HINT}"));
        let (tx, events) = mpsc::channel();
        forward(child.stdout.take().unwrap(), tx.clone(), true);
        forward(child.stderr.take().unwrap(), tx, false);
        Script {
            what,
            child,
            events,
            open: 2,
            transcript: String::new(),
        }
    }

    /// The next event before `deadline`, noted in the transcript; None at the deadline.
    fn next_event(&mut self, deadline: Instant) -> Option<Event> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(e) => {
                match &e {
                    Event::Out(l) => self.transcript += &format!("{l}\n"),
                    Event::Err(l) => self.transcript += &format!("[stderr] {l}\n"),
                    Event::Closed => self.open -= 1,
                }
                Some(e)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => unreachable!("both readers send Closed last"),
        }
    }

    /// Reads until the script prints `line` on stdout; panics with the
    /// transcript if it ends or the time runs out first.
    fn wait_for_line(&mut self, line: &str) {
        let deadline = Instant::now() + SCRIPT_LIMIT;
        loop {
            match self.next_event(deadline) {
                Some(Event::Out(l)) if l == line => return,
                Some(_) if self.open > 0 => {}
                _ => {
                    let status = self.stop();
                    panic!(
                        "{}: expected it to print {line:?}; it ended ({status}) after:\n{}",
                        self.what, self.transcript
                    );
                }
            }
        }
    }

    /// Kills the script if it still runs; its exit status.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(s) => s.to_string(),
            Err(e) => format!("wait failed: {e}"),
        }
    }

    /// Waits for the script to end (killing it after SCRIPT_LIMIT); panics
    /// with its transcript unless it exited 0.
    fn finish(mut self) {
        let deadline = Instant::now() + SCRIPT_LIMIT;
        while self.open > 0 {
            if self.next_event(deadline).is_none() {
                let status = self.stop();
                panic!(
                    "{} did not finish within {SCRIPT_LIMIT:?} (killed: {status}); its output:\n{}",
                    self.what, self.transcript
                );
            }
        }
        let status: ExitStatus = self.child.wait().expect("wait for the script");
        assert!(
            status.success(),
            "{} failed ({status}); its output:\n{}",
            self.what,
            self.transcript
        );
        eprintln!("{}: {}", self.what, self.transcript.trim_end());
    }
}

fn clients_dir() -> PathBuf {
    root().join("tests/clients")
}

fn python(script: &str, addr: SocketAddr, args: &[&str]) -> Command {
    let mut cmd = Command::new(&tools().python);
    cmd.arg(clients_dir().join("python").join(script))
        .arg(addr.to_string())
        .args(args);
    cmd
}

fn run_python(script: &str, addr: SocketAddr, args: &[&str]) {
    let what = format!("python {script} {addr} {}", args.join(" "));
    Script::spawn(what, python(script, addr, args)).finish();
}

fn start(config: Config) -> (Engine, SocketAddr) {
    let engine = common::start(config);
    let addr = engine
        .resp_addr()
        .expect("common::config turns the RESP listener on");
    (engine, addr)
}

/// Stops the engine; in debug builds this also checks that no frame leaked.
fn stop(engine: Engine) {
    engine.shutdown();
    engine.wait().expect("engine stops cleanly");
}

fn with_tokens(publish: &str, subscribe: &str) -> Config {
    Config {
        publish_token: Some(publish.as_bytes().to_vec()),
        subscribe_token: Some(subscribe.as_bytes().to_vec()),
        ..common::config(2)
    }
}

#[test]
fn redis_py_sync_resp2() {
    tools();
    let (engine, addr) = start(common::config(2));
    run_python("sync_pubsub.py", addr, &["--protocol", "2"]);
    stop(engine);
}

#[test]
fn redis_py_sync_resp3() {
    tools();
    let (engine, addr) = start(common::config(2));
    run_python("sync_pubsub.py", addr, &["--protocol", "3"]);
    stop(engine);
}

#[test]
fn redis_py_asyncio_resp2() {
    tools();
    let (engine, addr) = start(common::config(2));
    run_python("async_pubsub.py", addr, &["--protocol", "2"]);
    stop(engine);
}

#[test]
fn redis_py_asyncio_resp3() {
    tools();
    let (engine, addr) = start(common::config(2));
    run_python("async_pubsub.py", addr, &["--protocol", "3"]);
    stop(engine);
}

fn ioredis(addr: SocketAddr, args: &[&str]) -> Script {
    let t = tools();
    let mut cmd = Command::new(&t.node);
    cmd.arg(clients_dir().join("node/ioredis_pubsub.js"))
        .arg(addr.to_string())
        .args(args)
        .env("NODE_PATH", &t.node_modules);
    Script::spawn(format!("node ioredis_pubsub.js {addr}"), cmd)
}

#[test]
fn ioredis_resp2() {
    tools();
    let (engine, addr) = start(common::config(2));
    ioredis(addr, &[]).finish();
    stop(engine);
}

fn redis_cli_args(t: &Tools) -> Vec<String> {
    vec!["--redis-cli".into(), t.redis_cli.display().to_string()]
}

#[test]
fn redis_cli() {
    let t = tools();
    let (engine, addr) = start(common::config(2));
    let args = redis_cli_args(t);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_python("redis_cli.py", addr, &args);
    stop(engine);
}

/// publish_token and subscribe_token differ: each AUTH grants the right its
/// token stands for, and nothing more.
#[test]
fn auth_with_separate_tokens() {
    let t = tools();
    let (engine, addr) = start(with_tokens(PUBLISH_TOKEN, SUBSCRIBE_TOKEN));
    let tokens = [
        "--publish-token",
        PUBLISH_TOKEN,
        "--subscribe-token",
        SUBSCRIBE_TOKEN,
    ];
    for protocol in ["2", "3"] {
        let mut args = tokens.to_vec();
        args.extend(["--protocol", protocol]);
        run_python("auth.py", addr, &args);
    }
    let mut cli = redis_cli_args(t);
    cli.extend(tokens.iter().map(|s| s.to_string()));
    let cli: Vec<&str> = cli.iter().map(String::as_str).collect();
    run_python("redis_cli.py", addr, &cli);
    ioredis(addr, &tokens).finish();
    stop(engine);
}

/// One token for both rights, as with Redis's requirepass.
#[test]
fn auth_with_one_token() {
    tools();
    let (engine, addr) = start(with_tokens(PUBLISH_TOKEN, PUBLISH_TOKEN));
    run_python(
        "auth.py",
        addr,
        &[
            "--publish-token",
            PUBLISH_TOKEN,
            "--subscribe-token",
            PUBLISH_TOKEN,
        ],
    );
    stop(engine);
}

/// Only a publish token: subscribing needs no password (RESP3's HELLO 3
/// included), publishing does.
#[test]
fn auth_publish_token_only() {
    tools();
    let (engine, addr) = start(Config {
        publish_token: Some(PUBLISH_TOKEN.as_bytes().to_vec()),
        ..common::config(2)
    });
    for protocol in ["2", "3"] {
        run_python(
            "auth.py",
            addr,
            &[
                "--publish-token",
                PUBLISH_TOKEN,
                "--subscribe-token",
                "",
                "--protocol",
                protocol,
            ],
        );
    }
    stop(engine);
}

/// The bytes tests/clients/python/cross_front.py publishes and expects as message `i`.
fn cross_payload(i: u64) -> Vec<u8> {
    let mut p = format!("xfront {i} ").into_bytes();
    p.extend_from_slice(&[0, 255, (i % 256) as u8]);
    p.extend(vec![b'.'; (i % 50) as usize]);
    p
}

/// redis-py publishes, a native subscriber receives; a native client
/// publishes, redis-py (RESP3) receives: one topic namespace.
#[test]
fn cross_front_native_and_redis_py() {
    tools();
    let (engine, addr) = start(common::config(2));
    let n = CROSS_MESSAGES.to_string();

    // redis-py -> native.
    let topic = "xfront.from-redis";
    let mut native = common::connect(engine.local_addr());
    let ack = native.subscribe(topic).expect("native SUBSCRIBE");
    assert_eq!(ack.next_seq, 1, "a fresh topic starts at seq 1");
    run_python(
        "cross_front.py",
        addr,
        &["--protocol", "2", "publish", topic, &n],
    );
    for i in 0..CROSS_MESSAGES {
        let m = native.next_message().unwrap_or_else(|e| {
            panic!("native subscriber, message {i} of what redis-py published: {e}")
        });
        assert_eq!(m.topic, topic, "message {i}");
        assert_eq!(m.seq, i + 1, "message {i}: seq");
        assert_eq!(m.payload, cross_payload(i), "message {i}: payload");
    }
    native.unsubscribe(topic).expect("native UNSUBSCRIBE");

    // native -> redis-py.
    let topic = "xfront.from-native";
    let what = format!("python cross_front.py {addr} --protocol 3 subscribe {topic} {n}");
    let mut sub = Script::spawn(
        what,
        python(
            "cross_front.py",
            addr,
            &["--protocol", "3", "subscribe", topic, &n],
        ),
    );
    sub.wait_for_line("SUBSCRIBED");
    let mut publisher: Client = common::connect(engine.local_addr());
    for i in 0..CROSS_MESSAGES {
        publisher
            .publish(topic, &cross_payload(i))
            .expect("native PUBLISH");
    }
    publisher
        .ping(b"done")
        .expect("native PING after the publishes");
    sub.finish();
    drop(native);
    drop(publisher);
    stop(engine);
}

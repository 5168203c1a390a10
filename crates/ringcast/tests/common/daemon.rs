//! The real `ringcast serve` as a child process, with its JSON log lines
//! collected as they come (`--log-format json`), signals sent with kill(1)
//! and waits bounded by deadlines. Killed on drop if still running.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1: bound by the kernel, then released.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// An address on 127.0.0.1 with a free port.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

pub struct Daemon {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Starts `ringcast ARGS --log-format json` with exactly `env` added to
    /// an environment without RINGCAST_* or RUST_LOG variables.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringcast"));
        cmd.args(args)
            .args(["--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("RINGCAST_") || k == "RUST_LOG" || k == "NOTIFY_SOCKET" {
                cmd.env_remove(key);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ringcast");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Waits until `addr` accepts a connection (or the daemon exits: a panic
    /// with its log).
    pub fn wait_accepting(&mut self, addr: SocketAddr, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "ringcast exited ({status}) before accepting on {addr}: {:?}",
                    self.lines()
                );
            }
            if TcpStream::connect(addr).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{addr} did not accept within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every stderr line so far, parsed (a line that is not JSON fails the test).
    pub fn events(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Waits for a log line that `pred` accepts; returns it.
    pub fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = self.events().into_iter().find(&pred) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no log line {what} within {limit:?}: {:#?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` (TERM, INT) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -s {sig} failed");
    }

    /// Waits for the process to exit, failing after `limit`; then every
    /// line it wrote has been collected.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "ringcast still running after {limit:?}: {:#?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `event` field of a log line.
pub fn event(v: &Value) -> &str {
    v["event"].as_str().unwrap_or("")
}

//! The daemon under test: `ringcast serve` as a child process on free
//! ports, its `/metrics`, RSS, descriptors and CPU read from outside.

use crate::helpers::{free_addr, wait_until};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) native: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) resp: SocketAddr,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// `ringcast serve` on three free ports, 2 reactors, under
    /// `prlimit --nofile=NOFILE` (prlimit execs it: same pid). It is killed
    /// (SIGKILL) when the thread calling this exits: call it from the main
    /// thread, as `faults` and `soak` do.
    pub(crate) fn spawn(bin: &PathBuf, nofile: u64, extra: &[&str]) -> Daemon {
        let (native, http, resp) = (free_addr(), free_addr(), free_addr());
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(bin)
            .arg("serve")
            .args(["--listen", &native.to_string()])
            .args(["--ws-listen", &http.to_string()])
            .args(["--resp-listen", &resp.to_string()])
            .args(["--cores", "2", "--log-format", "json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::sys::die_with_parent(&mut cmd);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("RINGCAST_") || k == "RUST_LOG" || k == "NOTIFY_SOCKET" {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd.spawn().expect("spawn prlimit ringcast serve");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        thread::spawn(move || {
            let mut r = std::io::BufReader::new(stderr);
            let mut line = String::new();
            while std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push(std::mem::take(&mut line));
            }
        });
        let mut d = Daemon {
            child,
            native,
            http,
            resp,
            log,
        };
        let up = wait_until(Duration::from_secs(20), || {
            d.alive()
                && TcpStream::connect(native).is_ok()
                && TcpStream::connect(http).is_ok()
                && TcpStream::connect(resp).is_ok()
        });
        assert!(up, "ringcast did not start: {:?}", d.log.lock().unwrap());
        d
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub(crate) fn rss_bytes(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    /// utime + stime in clock ticks (100 per second on Linux).
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = s.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    }

    /// `/metrics`, as name (with labels) → value.
    pub(crate) fn metrics(&self) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        let Ok(mut s) = TcpStream::connect(self.http) else {
            return out;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        for line in body.lines() {
            if line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.rsplit_once(' ') {
                if let Ok(v) = v.parse::<f64>() {
                    out.insert(k.to_string(), v);
                }
            }
        }
        out
    }

    pub(crate) fn metric_sum(&self, prefix: &str) -> f64 {
        self.metrics()
            .iter()
            .filter(|(k, _)| *k == prefix || k.starts_with(&format!("{prefix}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    pub(crate) fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }

    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

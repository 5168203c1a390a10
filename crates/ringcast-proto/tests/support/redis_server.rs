//! A `redis-server` of a test's own, shared by the tests that compare
//! ringcast with a real Redis (include it with
//! `#[path = ".../tests/support/redis_server.rs"] mod redis_server;`).
//!
//! [`RedisServer::start`] runs the binary (`RINGCAST_REDIS_SERVER`, else
//! `redis-server` on `PATH`, else `/usr/bin/redis-server`) on a free port of
//! 127.0.0.1, in the foreground, without persistence (`--save ''`,
//! `--appendonly no`), and returns once it answers `PING`; the server is
//! killed when the value is dropped, a failing test's too. A missing binary
//! fails the test with how to install it: these tests never skip.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of the streams [`RedisServer::stream`] opens.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// The binary to run: `RINGCAST_REDIS_SERVER`, else `redis-server` on
    /// `PATH`, else `/usr/bin/redis-server`; panics with an install hint
    /// when there is none.
    pub fn binary() -> PathBuf {
        let candidates: Vec<PathBuf> = match std::env::var_os("RINGCAST_REDIS_SERVER") {
            Some(path) => vec![PathBuf::from(path)],
            None => std::env::var_os("PATH")
                .map(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join("redis-server"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
                .into_iter()
                .chain([PathBuf::from("/usr/bin/redis-server")])
                .collect(),
        };
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "redis-server not found (RINGCAST_REDIS_SERVER, else PATH and /usr/bin): this \
                     test compares ringcast with a real Redis (7.0). Install it: \
                     `apt-get install redis-server` (bash scripts/test.sh does it when run as \
                     root), or point RINGCAST_REDIS_SERVER at a redis-server binary"
                )
            })
    }

    /// A server with the default configuration (but persistence).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with `extra` arguments after the defaults (`--databases 1`).
    pub fn start_with(extra: &[&str]) -> Self {
        let binary = Self::binary();
        let mut last = String::new();
        // A free port may be taken between asking and binding: try again.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("no free port on 127.0.0.1")
                .port();
            let child = Command::new(&binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--loglevel", "warning", "--logfile", ""])
                .args(extra)
                .current_dir(std::env::temp_dir())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut server = RedisServer { child, port };
            match server.wait_ready(START_TIMEOUT) {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        panic!("{} did not start: {last}", binary.display());
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A new connection, with `TCP_NODELAY` and a 30 s read timeout.
    pub fn stream(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).expect("connect to redis-server");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Tries `PING` until the server answers `+PONG`, exits, or `limit`
    /// passes. The server says nowhere else that it is ready: until it has
    /// bound its port a connection is refused at once, so this polls.
    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("it exited ({status}): {}", self.output()));
            }
            if let Ok(stream) = TcpStream::connect(self.addr()) {
                if ping(stream) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!("no PONG within {limit:?}: {}", self.output()));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the exited (or killed) server printed.
    fn output(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(out) = self.child.stdout.as_mut() {
            let _ = out.read_to_string(&mut text);
        }
        if let Some(err) = self.child.stderr.as_mut() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the server at the other end of `stream` answers `PING` with
/// `+PONG` (and not, say, `-LOADING`) within a second.
fn ping(mut stream: TcpStream) -> bool {
    if stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_err()
        || stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got == b"+PONG\r\n"
}

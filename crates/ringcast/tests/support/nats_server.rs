//! nats-server for the scale-out tests, and a tiny raw NATS client.
//!
//! [`NatsServer`] runs the `nats-server` binary (`RINGCAST_NATS_SERVER`
//! names another one; else `nats-server` on `PATH`, else
//! `/usr/sbin/nats-server`, where Debian's package puts it) on free ports of
//! 127.0.0.1, client port and monitoring port (`-m`), and waits until it
//! serves: its INFO line on the client port and `/varz` on the monitoring
//! port. It is killed (SIGKILL) on drop, can be killed and restarted on the
//! same ports, and stopped and continued (SIGSTOP/SIGCONT). Its log (stderr)
//! is kept in memory and shown when something about it fails.
//! [`NatsCluster`] starts servers joined by routes and waits until each one
//! sees all the others.
//!
//! A missing binary fails the test with the install hint; it never skips.
//!
//! [`NatsConn`] speaks the NATS client protocol over a plain `TcpStream`:
//! INFO, CONNECT (`headers: true`), SUB/UNSUB, PUB/HPUB, MSG/HMSG, PING/PONG,
//! -ERR; no dependency beyond std and serde_json (already a dev-dependency).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to start serving (or a cluster to form).
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one read of the raw client or of a monitoring request may block.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a server's log shown in a failure message.
const LOG_TAIL_LINES: usize = 40;

/// The nats-server binary: `RINGCAST_NATS_SERVER`, else `nats-server` on
/// `PATH`, else `/usr/sbin/nats-server`. Panics with the install hint when
/// none exists.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RINGCAST_NATS_SERVER") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "RINGCAST_NATS_SERVER={} does not name a file; unset it to use nats-server from \
             PATH or /usr/sbin (Debian: apt-get install nats-server)",
            p.display()
        );
        return p;
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or(None);
    if let Some(p) = on_path {
        return p;
    }
    let debian = PathBuf::from("/usr/sbin/nats-server");
    assert!(
        debian.is_file(),
        "nats-server is not installed (not on PATH, not at /usr/sbin/nats-server): the \
         scale-out tests need it. Install it (Debian/Ubuntu: apt-get install nats-server) or \
         set RINGCAST_NATS_SERVER to the binary's path"
    );
    debian
}

/// A port of 127.0.0.1 nothing listens on right now (the kernel's pick).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Options of a server beyond its ports.
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    /// `--user` / `--pass`.
    pub user: Option<(String, String)>,
    /// `--auth`.
    pub token: Option<String>,
    /// `--server_name`.
    pub name: Option<String>,
    /// Extra arguments, appended last.
    pub extra: Vec<String>,
    /// Run in this network namespace (`ip netns exec`), listening on every
    /// address there; the server is reached at `.1` ([`NatsServer::addr`]).
    pub netns: Option<(String, std::net::Ipv4Addr)>,
}

/// The ports and cluster settings of one server, fixed for its life (a
/// restart reuses them).
#[derive(Clone, Debug)]
struct Ports {
    client: u16,
    monitor: u16,
    /// This server's cluster (route) port and the route URLs it solicits.
    cluster: Option<(u16, Vec<String>)>,
}

/// One nats-server process, killed on drop.
pub struct NatsServer {
    bin: PathBuf,
    opts: NatsOptions,
    ports: Ports,
    child: Option<Child>,
    /// Everything the current and earlier processes wrote to stderr/stdout.
    log: Arc<Mutex<Vec<u8>>>,
    stopped: bool,
}

impl NatsServer {
    /// Starts a server on free ports and waits until it serves.
    pub fn start() -> NatsServer {
        NatsServer::start_with(NatsOptions::default())
    }

    /// Starts a server with `opts` on free ports and waits until it serves.
    pub fn start_with(opts: NatsOptions) -> NatsServer {
        NatsServer::start_on(opts, None)
    }

    /// Starts on fresh free ports; retries with other ports when the chosen
    /// ones were taken between the probe and the server's bind.
    /// Starts a server whose client port is `port` (one a test reserved
    /// with [`free_port`] and gave to someone before the server existed).
    pub fn start_at(port: u16, opts: NatsOptions) -> NatsServer {
        let mut s = NatsServer {
            bin: binary(),
            opts,
            ports: Ports {
                client: port,
                monitor: free_port(),
                cluster: None,
            },
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            stopped: false,
        };
        s.spawn();
        if let Err(e) = s.wait_serving(START_TIMEOUT) {
            panic!("nats-server on port {port}: {e}\n{}", s.log_tail());
        }
        s
    }

    /// `routes`: Some (route URLs to solicit) for a cluster member, which
    /// gets a cluster port of its own.
    fn start_on(opts: NatsOptions, routes: Option<Vec<String>>) -> NatsServer {
        let bin = binary();
        let mut last_log = String::new();
        for _ in 0..5 {
            let ports = Ports {
                client: free_port(),
                monitor: free_port(),
                cluster: routes.clone().map(|r| (free_port(), r)),
            };
            let mut s = NatsServer {
                bin: bin.clone(),
                opts: opts.clone(),
                ports,
                child: None,
                log: Arc::new(Mutex::new(Vec::new())),
                stopped: false,
            };
            s.spawn();
            match s.wait_serving(START_TIMEOUT) {
                Ok(()) => return s,
                Err(e) => {
                    last_log = format!("{e}\n{}", s.log_tail());
                    // Dropping `s` kills whatever is left of the process.
                }
            }
        }
        panic!("nats-server did not start in 5 attempts; last one:\n{last_log}");
    }

    fn args(&self) -> Vec<String> {
        let listen = if self.opts.netns.is_some() {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        let mut a = vec![
            "-a".to_string(),
            listen.to_string(),
            "-p".to_string(),
            self.ports.client.to_string(),
            "-m".to_string(),
            self.ports.monitor.to_string(),
        ];
        if let Some((user, pass)) = &self.opts.user {
            a.extend(["--user".into(), user.clone(), "--pass".into(), pass.clone()]);
        }
        if let Some(t) = &self.opts.token {
            a.extend(["--auth".into(), t.clone()]);
        }
        if let Some(n) = &self.opts.name {
            a.extend(["--server_name".into(), n.clone()]);
        }
        if let Some((port, routes)) = &self.ports.cluster {
            a.extend([
                "--cluster_name".into(),
                "ringcast-test".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{port}"),
            ]);
            if !routes.is_empty() {
                a.extend(["--routes".into(), routes.join(",")]);
            }
        }
        a.extend(self.opts.extra.iter().cloned());
        a
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "nats-server is already running");
        let mut cmd = match &self.opts.netns {
            Some((ns, _)) => {
                // `ip netns exec` execs the server: the child is its process.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let mut child = cmd
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e} (Debian: apt-get install nats-server; \
                     RINGCAST_NATS_SERVER names another binary)",
                    self.bin.display()
                )
            });
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&self.log);
            thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut line = Vec::new();
                while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    log.lock().unwrap().extend_from_slice(&line);
                    line.clear();
                }
            });
        }
        self.child = Some(child);
        self.stopped = false;
    }

    /// Waits until the client port sends INFO and the monitoring port
    /// answers; fails early when the process exits.
    fn wait_serving(&mut self, timeout: Duration) -> Result<(), String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("nats-server exited at start: {status}"));
            }
            if read_info(self.addr()).is_ok() && http_get(self.monitor_addr(), "/varz").is_ok() {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(format!(
                    "nats-server did not serve on {} within {timeout:?}",
                    self.addr()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the server is reached at: 127.0.0.1, or the one given
    /// with its network namespace.
    fn ip(&self) -> std::net::Ipv4Addr {
        match &self.opts.netns {
            Some((_, ip)) => *ip,
            None => std::net::Ipv4Addr::LOCALHOST,
        }
    }

    /// The client address, 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip(), self.ports.client))
    }

    /// `nats://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr())
    }

    pub fn port(&self) -> u16 {
        self.ports.client
    }

    /// The HTTP monitoring address (`-m`).
    pub fn monitor_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip(), self.ports.monitor))
    }

    /// The route URL other cluster members use to reach this one.
    pub fn route_url(&self) -> Option<String> {
        self.ports
            .cluster
            .as_ref()
            .map(|(p, _)| format!("nats://127.0.0.1:{p}"))
    }

    /// The running process's id; panics when it is not running.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("nats-server is not running")
            .id()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL (a crash: no goodbye to clients) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stopped = false;
    }

    /// Starts the server again on the same ports and waits until it serves.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        if let Err(e) = self.wait_serving(START_TIMEOUT) {
            panic!(
                "nats-server restart on the same ports: {e}\n{}",
                self.log_tail()
            );
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-s", sig, &pid])
            .status()
            .unwrap_or_else(|e| panic!("running kill -s {sig} {pid}: {e}"));
        assert!(status.success(), "kill -s {sig} {pid}: {status}");
    }

    /// SIGSTOP: the process freezes; its sockets stay open, unserved.
    /// Returns once every thread of it is stopped: `kill` only queues the
    /// signal, and a thread running on another CPU could still answer what
    /// the caller sends next.
    pub fn pause(&mut self) {
        self.signal("STOP");
        self.stopped = true;
        let pid = self.pid();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "nats-server {pid}: not every thread stopped 10 s after SIGSTOP\n{}",
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGCONT after [`NatsServer::pause`].
    pub fn resume(&mut self) {
        self.signal("CONT");
        self.stopped = false;
    }

    /// The whole log so far (every process started on these ports).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// The last lines of the log, headed, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "--- nats-server {} log (last {} lines) ---\n{}",
            self.ports.client,
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// A monitoring endpoint's JSON, e.g. `/connz?subs=1`.
    pub fn monitor(&self, path: &str) -> serde_json::Value {
        let body = http_get(self.monitor_addr(), path)
            .unwrap_or_else(|e| panic!("GET {path} from nats-server: {e}\n{}", self.log_tail()));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// The client connections (`/connz?subs=1`), monitoring ones excluded.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let v = self.monitor("/connz?subs=1&limit=4096");
        v["connections"]
            .as_array()
            .map(|a| a.iter().map(ConnInfo::from_json).collect())
            .unwrap_or_default()
    }

    /// The subjects subscribed by clients of the global account, with the
    /// connection id of each subscription (`/subsz?subs=1`).
    pub fn subscriptions(&self) -> Vec<(String, u64)> {
        let v = self.monitor("/subsz?subs=1&limit=100000");
        v["subscriptions_list"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| s["account"].as_str() != Some("$SYS"))
                    .map(|s| {
                        (
                            s["subject"].as_str().unwrap_or_default().to_string(),
                            s["cid"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Routes this server has up (`/routez`).
    pub fn num_routes(&self) -> u64 {
        self.monitor("/routez")["num_routes"].as_u64().unwrap_or(0)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// One client connection as `/connz?subs=1` shows it.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub cid: u64,
    pub name: String,
    pub subscriptions: Vec<String>,
    pub in_msgs: u64,
    pub out_msgs: u64,
}

impl ConnInfo {
    fn from_json(c: &serde_json::Value) -> ConnInfo {
        ConnInfo {
            cid: c["cid"].as_u64().unwrap_or(0),
            name: c["name"].as_str().unwrap_or_default().to_string(),
            subscriptions: c["subscriptions_list"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            in_msgs: c["in_msgs"].as_u64().unwrap_or(0),
            out_msgs: c["out_msgs"].as_u64().unwrap_or(0),
        }
    }
}

/// Servers joined by routes (a full mesh: each solicits the ones before it).
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` servers with routes on free ports and waits until every
    /// one has a route to each of the others.
    pub fn start(n: usize) -> NatsCluster {
        assert!(n >= 1);
        let mut servers: Vec<NatsServer> = Vec::with_capacity(n);
        for i in 0..n {
            let routes: Vec<String> = servers.iter().filter_map(|s| s.route_url()).collect();
            let opts = NatsOptions {
                name: Some(format!("ringcast-test-{i}")),
                ..NatsOptions::default()
            };
            servers.push(NatsServer::start_on(opts, Some(routes)));
        }
        let c = NatsCluster { servers };
        c.wait_routes(START_TIMEOUT);
        c
    }

    /// Waits until every running server has a route to every other running one.
    pub fn wait_routes(&self, timeout: Duration) {
        let running: Vec<&NatsServer> = self.servers.iter().filter(|s| s.is_running()).collect();
        let want = running.len() as u64 - 1;
        let end = Instant::now() + timeout;
        loop {
            let got: Vec<u64> = running.iter().map(|s| s.num_routes()).collect();
            if got.iter().all(|&r| r >= want) {
                return;
            }
            if Instant::now() >= end {
                let logs: Vec<String> = running.iter().map(|s| s.log_tail()).collect();
                panic!(
                    "nats cluster: routes per server {got:?}, want {want} each, after \
                     {timeout:?}\n{}",
                    logs.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every member's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }
}

/// Connects, reads the INFO line and returns its JSON text.
fn read_info(addr: SocketAddr) -> io::Result<String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    line.strip_prefix("INFO ")
        .map(|j| j.trim_end().to_string())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("not INFO: {line:?}")))
}

/// GET `path` over HTTP/1.0; the body of a 200 response.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP head"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("GET {path}: {}", head.lines().next().unwrap_or_default()),
        ));
    }
    Ok(body.to_string())
}

/// base64url without padding (RFC 4648 §5), as the relay's subjects use.
pub fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The inverse of [`base64url`]; None for anything else.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    // Canonical: re-encoding gives the same text (no stray low bits).
    (base64url(&out).as_bytes() == s).then_some(out)
}

/// The subject a topic's publishes travel on (`<prefix>.t.<base64url>`).
pub fn topic_subject(prefix: &str, topic: &str) -> String {
    format!("{prefix}.t.{}", base64url(topic.as_bytes()))
}

/// The subject of a Redis-front shard channel (`<prefix>.s.<base64url>`).
pub fn shard_subject(prefix: &str, channel: &str) -> String {
    format!("{prefix}.s.{}", base64url(channel.as_bytes()))
}

/// Header fields of an HMSG, in order.
pub type Headers = Vec<(String, String)>;

/// One MSG or HMSG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsMsg {
    pub subject: String,
    pub sid: u64,
    pub reply: Option<String>,
    /// The status line's code and text after `NATS/1.0` (HMSG only), e.g. "503".
    pub status: Option<String>,
    /// Header fields in order (HMSG only), names as sent.
    pub headers: Headers,
    pub payload: Vec<u8>,
}

impl NatsMsg {
    /// The values of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name`; panics when absent or repeated.
    pub fn header(&self, name: &str) -> &str {
        match self.header_all(name)[..] {
            [v] => v,
            ref vs => panic!("header {name}: {vs:?} in {self:?}"),
        }
    }
}

/// Credentials for CONNECT.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub user: Option<(String, String)>,
    pub token: Option<String>,
}

/// A raw NATS client connection (blocking, one thread).
pub struct NatsConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Messages read while waiting for a PONG.
    pending: VecDeque<NatsMsg>,
    /// The server's INFO JSON.
    pub info: serde_json::Value,
    next_sid: u64,
    /// PINGs sent by flush whose PONG has not been read.
    pings_owed: usize,
    /// Subject of each live subscription.
    pub subs: HashMap<u64, String>,
}

impl NatsConn {
    /// Connects without credentials, echo on, and waits for the PONG that
    /// proves CONNECT was accepted.
    pub fn connect(addr: SocketAddr) -> io::Result<NatsConn> {
        NatsConn::connect_with(addr, &Credentials::default(), "ringcast-test-raw")
    }

    /// Connects with `creds`; the connection is named `name`.
    pub fn connect_with(addr: SocketAddr, creds: &Credentials, name: &str) -> io::Result<NatsConn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut c = NatsConn {
            stream,
            buf: Vec::new(),
            pending: VecDeque::new(),
            info: serde_json::Value::Null,
            next_sid: 1,
            pings_owed: 0,
            subs: HashMap::new(),
        };
        let line = c.read_line(Instant::now() + IO_TIMEOUT)?;
        let json = line
            .strip_prefix("INFO ")
            .ok_or_else(|| bad(format!("expected INFO, got {line:?}")))?;
        c.info = serde_json::from_str(json).map_err(|e| bad(format!("INFO JSON: {e}")))?;
        let mut connect = serde_json::json!({
            "verbose": false,
            "pedantic": false,
            "tls_required": false,
            "name": name,
            "lang": "rust-raw-test",
            "version": "0.0.0",
            "protocol": 1,
            "echo": true,
            "headers": true,
            "no_responders": false,
        });
        if let Some((u, p)) = &creds.user {
            connect["user"] = u.clone().into();
            connect["pass"] = p.clone().into();
        }
        if let Some(t) = &creds.token {
            connect["auth_token"] = t.clone().into();
        }
        c.write(format!("CONNECT {connect}\r\n").as_bytes())?;
        c.flush()?;
        Ok(c)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The server's maximum payload (INFO `max_payload`).
    pub fn max_payload(&self) -> u64 {
        self.info["max_payload"].as_u64().unwrap_or(1 << 20)
    }

    /// SUB `subject`; returns the sid. Call [`NatsConn::flush`] before
    /// relying on the server having it.
    pub fn subscribe(&mut self, subject: &str) -> io::Result<u64> {
        let sid = self.next_sid;
        self.next_sid += 1;
        self.write(format!("SUB {subject} {sid}\r\n").as_bytes())?;
        self.subs.insert(sid, subject.to_string());
        Ok(sid)
    }

    pub fn unsubscribe(&mut self, sid: u64) -> io::Result<()> {
        self.subs.remove(&sid);
        self.write(format!("UNSUB {sid}\r\n").as_bytes())
    }

    /// PUB.
    pub fn publish(&mut self, subject: &str, payload: &[u8]) -> io::Result<()> {
        let mut out = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.write(&out)
    }

    /// HPUB with `headers` (NATS/1.0 block).
    pub fn publish_with_headers(
        &mut self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> io::Result<()> {
        let mut h = String::from("NATS/1.0\r\n");
        for (n, v) in headers {
            h.push_str(&format!("{n}: {v}\r\n"));
        }
        h.push_str("\r\n");
        let mut out =
            format!("HPUB {subject} {} {}\r\n", h.len(), h.len() + payload.len()).into_bytes();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.write(&out)
    }

    /// PING and wait for the PONG: the server has processed everything sent
    /// before. Messages that arrive meanwhile are kept for
    /// [`NatsConn::next_msg`]. A -ERR is an error.
    pub fn flush(&mut self) -> io::Result<()> {
        self.flush_within(IO_TIMEOUT)
    }

    /// [`NatsConn::flush`] with a deadline: a server that does not answer
    /// within `timeout` is an error (TimedOut or WouldBlock).
    pub fn flush_within(&mut self, timeout: Duration) -> io::Result<()> {
        self.write(b"PING\r\n")?;
        self.pings_owed += 1;
        let end = Instant::now() + timeout;
        loop {
            match self.read_op(end)? {
                Op::Pong => {
                    // PONGs come in the order of the PINGs: the last one
                    // owed answers this PING (earlier ones timed out).
                    self.pings_owed -= 1;
                    if self.pings_owed == 0 {
                        return Ok(());
                    }
                }
                Op::Msg(m) => self.pending.push_back(m),
            }
        }
    }

    /// The next message, or None when none arrives within `timeout`.
    /// Server PINGs are answered on the way.
    pub fn next_msg(&mut self, timeout: Duration) -> io::Result<Option<NatsMsg>> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        let end = Instant::now() + timeout;
        loop {
            match self.read_op(end) {
                Ok(Op::Msg(m)) => return Ok(Some(m)),
                Ok(Op::Pong) if self.pings_owed > 0 => self.pings_owed -= 1,
                Ok(Op::Pong) => return Err(bad("PONG without a PING".into())),
                Err(e) if is_timeout(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads messages until `done` holds for the messages read so far
    /// (checked after each) or `timeout` passes; returns them all.
    pub fn collect_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[NatsMsg]) -> bool,
    ) -> io::Result<Vec<NatsMsg>> {
        let end = Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(m) = self.next_msg(left)? {
                got.push(m);
            }
        }
        Ok(got)
    }

    /// Reads one protocol line (without CRLF) by `end`.
    fn read_line(&mut self, end: Instant) -> io::Result<String> {
        loop {
            if let Some(i) = find_crlf(&self.buf) {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            self.fill(end)?;
        }
    }

    fn fill(&mut self, end: Instant) -> io::Result<()> {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 64 << 10];
        let n = loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next PONG or message by `end`; PINGs answered, +OK and INFO
    /// skipped. Nothing is consumed from the buffer until a whole operation
    /// (line and payload) is there, so a timeout loses nothing.
    fn read_op(&mut self, end: Instant) -> io::Result<Op> {
        loop {
            match self.parse_op()? {
                Some(Parsed::Op(op)) => return Ok(op),
                Some(Parsed::Ping) => self.write(b"PONG\r\n")?,
                Some(Parsed::Skip) => {}
                None => self.fill(end)?,
            }
        }
    }

    /// One whole operation from the buffer, consumed; None if incomplete.
    fn parse_op(&mut self) -> io::Result<Option<Parsed>> {
        let Some(eol) = find_crlf(&self.buf) else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&self.buf[..eol]).into_owned();
        let mut words = line.split_ascii_whitespace();
        let op = words.next().unwrap_or_default().to_ascii_uppercase();
        let args: Vec<&str> = words.collect();
        let body = eol + 2;
        let simple = |me: &mut NatsConn, p: Parsed| {
            me.buf.drain(..body);
            Ok(Some(p))
        };
        match op.as_str() {
            "PING" => simple(self, Parsed::Ping),
            "PONG" => simple(self, Parsed::Op(Op::Pong)),
            "+OK" | "INFO" => simple(self, Parsed::Skip),
            "-ERR" => Err(bad(format!("server error: {line}"))),
            "MSG" | "HMSG" => {
                // MSG <subject> <sid> [reply-to] <#bytes>
                // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
                let numbers = if op == "MSG" { 1 } else { 2 };
                if args.len() != 2 + numbers && args.len() != 3 + numbers {
                    return Err(bad(format!("bad {op} line {line:?}")));
                }
                let total = parse(args[args.len() - 1], &line)?;
                let hlen = if numbers == 2 {
                    parse(args[args.len() - 2], &line)?
                } else {
                    0
                };
                if hlen > total {
                    return Err(bad(format!("header bytes > total in {line:?}")));
                }
                if self.buf.len() < body + total + 2 {
                    return Ok(None);
                }
                if &self.buf[body + total..body + total + 2] != b"\r\n" {
                    return Err(bad(format!("no CRLF after the payload of {line:?}")));
                }
                let block = self.buf[body..body + total].to_vec();
                self.buf.drain(..body + total + 2);
                let (status, headers) = if numbers == 2 {
                    parse_headers(&block[..hlen])?
                } else {
                    (None, Vec::new())
                };
                Ok(Some(Parsed::Op(Op::Msg(NatsMsg {
                    subject: args[0].to_string(),
                    sid: parse(args[1], &line)? as u64,
                    reply: (args.len() == 3 + numbers).then(|| args[2].to_string()),
                    status,
                    headers,
                    payload: block[hlen..].to_vec(),
                }))))
            }
            _ => Err(bad(format!("unexpected protocol line {line:?}"))),
        }
    }
}

enum Parsed {
    Op(Op),
    Ping,
    Skip,
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

enum Op {
    Pong,
    Msg(NatsMsg),
}

/// A read that ran out of time (std reports WouldBlock for a socket timeout).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn parse(n: &str, line: &str) -> io::Result<usize> {
    n.parse()
        .map_err(|_| bad(format!("bad number {n:?} in {line:?}")))
}

/// Parses a `NATS/1.0[ status]\r\nName: value\r\n...\r\n\r\n` block.
fn parse_headers(block: &[u8]) -> io::Result<(Option<String>, Headers)> {
    let text = std::str::from_utf8(block).map_err(|_| bad("headers not UTF-8".into()))?;
    let text = text
        .strip_suffix("\r\n\r\n")
        .ok_or_else(|| bad(format!("header block not ended by CRLFCRLF: {text:?}")))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let rest = first
        .strip_prefix("NATS/1.0")
        .ok_or_else(|| bad(format!("header block starts {first:?}")))?;
    let status = Some(rest.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("header line {l:?}")))?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    Ok((status, headers))
}

/// A network namespace joined to the host by veth pairs, removed on drop:
/// a server run inside it ([`NatsOptions::netns`]) is reached through pair
/// k at [`Netns::ip`]`(k)`, and one client's path can be cut
/// ([`Netns::cut`]) while the others' stays. Needs root and iproute2.
pub struct Netns {
    pub name: String,
    /// Third octet of the pairs' 10.231.x.0/24 block.
    net: u8,
    pairs: usize,
}

impl Netns {
    pub fn create(pairs: usize) -> Netns {
        let pid = std::process::id();
        let n = Netns {
            name: format!("rc-part-{pid}"),
            net: (pid % 200) as u8,
            pairs,
        };
        n.ip_cmd(&["netns", "add", &n.name]);
        n.ip_cmd(&["netns", "exec", &n.name, "ip", "link", "set", "lo", "up"]);
        for k in 0..pairs {
            let (host, inner) = (n.host_link(k), format!("rcp{pid}n{k}"));
            n.ip_cmd(&["link", "add", &host, "type", "veth", "peer", "name", &inner]);
            n.ip_cmd(&["link", "set", &inner, "netns", &n.name]);
            n.ip_cmd(&["addr", "add", &format!("{}/30", n.host_ip(k)), "dev", &host]);
            n.ip_cmd(&["link", "set", &host, "up"]);
            let addr = format!("{}/30", n.ip(k));
            n.ip_cmd(&[
                "netns", "exec", &n.name, "ip", "addr", "add", &addr, "dev", &inner,
            ]);
            n.ip_cmd(&["netns", "exec", &n.name, "ip", "link", "set", &inner, "up"]);
        }
        n
    }

    fn ip_cmd(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
            panic!(
                "cannot run ip: {e} (the partition test needs iproute2: apt-get install iproute2)"
            )
        });
        assert!(
            out.status.success(),
            "ip {}: {} (the partition test needs root and network namespaces)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    fn host_link(&self, k: usize) -> String {
        format!("rcp{}h{k}", std::process::id())
    }

    fn host_ip(&self, k: usize) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, 231, self.net, 4 * k as u8 + 1)
    }

    /// The namespace's address on pair `k`.
    pub fn ip(&self, k: usize) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, 231, self.net, 4 * k as u8 + 2)
    }

    /// Cuts pair `k`: its host end goes down, so nothing crosses it either
    /// way (connections through it stay open and retransmit).
    pub fn cut(&self, k: usize) {
        self.ip_cmd(&["link", "set", &self.host_link(k), "down"]);
    }

    /// Joins pair `k` again.
    pub fn heal(&self, k: usize) {
        self.ip_cmd(&["link", "set", &self.host_link(k), "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for k in 0..self.pairs {
            let _ = Command::new("ip")
                .args(["link", "del", &self.host_link(k)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// PEM files for TLS tests, made with the `openssl` command: a CA, a server
/// certificate for 127.0.0.1 and a client certificate, both signed by it.
pub struct TlsFiles {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    pub fn create() -> TlsFiles {
        let dir = std::env::temp_dir().join(format!("ringcast-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = |name: &str| dir.join(name);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| panic!("cannot run openssl: {e} (apt-get install openssl)"));
            assert!(
                out.status.success(),
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=ringcast test CA",
        ];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        openssl(&ca);
        for (who, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(f(&format!("{who}.ext")), ext).unwrap();
            let (key, csr, pem, ext) = (
                format!("{who}.key"),
                format!("{who}.csr"),
                format!("{who}.pem"),
                format!("{who}.ext"),
            );
            let subj = format!("/CN=ringcast test {who}");
            let mut req = vec!["req", "-subj", &subj];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr]);
            openssl(&req);
            openssl(&[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ]);
        }
        TlsFiles {
            ca: f("ca.pem"),
            server_cert: f("server.pem"),
            server_key: f("server.key"),
            client_cert: f("client.pem"),
            client_key: f("client.key"),
            dir,
        }
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A NATS operator, account and user made here (the `nsc` way, without
/// nsc): the server's configuration for operator mode with the account
/// preloaded, and the user's credentials file, as `nsc generate creds`
/// writes it.
pub struct Decentralized {
    pub dir: PathBuf,
    /// nats-server configuration (`-c`).
    pub server_conf: PathBuf,
    /// The user's `.creds` file.
    pub creds: PathBuf,
}

impl Decentralized {
    pub fn create() -> Decentralized {
        use nkeys::KeyPair;
        let dir = std::env::temp_dir().join(format!("ringcast-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (op, acc, user) = (
            KeyPair::new_operator(),
            KeyPair::new_account(),
            KeyPair::new_user(),
        );
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // A JWT as NATS signs them: base64url (no padding) header and claims,
        // ed25519 signature of both by the issuer's key.
        let jwt = |issuer: &KeyPair, sub: &str, name: &str, nats: serde_json::Value| {
            let header = serde_json::json!({"typ": "JWT", "alg": "ed25519-nkey"});
            let claims = serde_json::json!({
                "jti": format!("{name}{iat}"),
                "iat": iat,
                "iss": issuer.public_key(),
                "name": name,
                "sub": sub,
                "nats": nats,
            });
            let body = format!(
                "{}.{}",
                base64url(header.to_string().as_bytes()),
                base64url(claims.to_string().as_bytes())
            );
            let sig = issuer.sign(body.as_bytes()).unwrap();
            format!("{body}.{}", base64url(&sig))
        };
        let op_jwt = jwt(
            &op,
            &op.public_key(),
            "ringcast-test-operator",
            serde_json::json!({"type": "operator", "version": 2}),
        );
        let unlimited = serde_json::json!({
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
            "wildcards": true, "conn": -1, "leaf": -1
        });
        let acc_jwt = jwt(
            &op,
            &acc.public_key(),
            "ringcast-test-account",
            serde_json::json!({"limits": unlimited, "type": "account", "version": 2}),
        );
        let user_jwt = jwt(
            &acc,
            &user.public_key(),
            "ringcast-test-user",
            serde_json::json!({
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                "type": "user", "version": 2
            }),
        );
        std::fs::write(dir.join("operator.jwt"), &op_jwt).unwrap();
        let server_conf = dir.join("server.conf");
        std::fs::write(
            &server_conf,
            format!(
                "operator: {:?}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {:?}\n}}\n",
                dir.join("operator.jwt"),
                acc.public_key(),
                acc_jwt
            ),
        )
        .unwrap();
        let creds = dir.join("user.creds");
        std::fs::write(
            &creds,
            format!(
                "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
                 ************************* IMPORTANT *************************\n\
                 NKEY Seed printed below can be used to sign and prove identity.\n\
                 NKEYs are sensitive and should be treated as secrets.\n\n\
                 -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
                 *************************************************************\n",
                user.seed().unwrap()
            ),
        )
        .unwrap();
        Decentralized {
            dir,
            server_conf,
            creds,
        }
    }
}

impl Drop for Decentralized {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether every thread of `pid` is in the stopped state (`T` in
/// /proc/PID/task/TID/stat).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|stat| {
                // The state follows the command name's closing parenthesis.
                let rest = &stat[stat.rfind(')')? + 1..];
                rest.split_whitespace().next().map(|st| st == "T")
            })
            .unwrap_or(false)
    })
}

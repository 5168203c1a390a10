//! The fault suite and the soak (issue 14, parts 3 and 4), against the real
//! `ringcast serve` started as a child process on free ports.
//!
//! `ringcast-chaos faults [--secs N] [CASE...]`: each case starts a fresh
//! daemon, a healthy subscriber and its publisher (200 msg/s on a topic of
//! their own), measures a baseline window, injects the fault for a window,
//! measures the window after, and reports what the healthy subscriber saw
//! (delivery, order, latency from the frame's `ts_ns`), whether the daemon
//! stayed up and whether its descriptor count came back. Exit 1 when a
//! case's promise is broken.
//!
//! `ringcast-chaos soak --secs N --csv FILE`: subscribers, publishes,
//! reconnects and subscribe/unsubscribe churn over many topic names; RSS
//! and descriptors sampled every 10 s; slopes after a warm-up; topics held
//! at the end against `ringcast_topics`.
//!
//! Both are run by scripts/chaos.sh and scripts/soak.sh.

use hdrhistogram::Histogram;
use ringcast_client::{Client, ClientError};
use std::collections::{BTreeSet, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HEALTHY_TOPIC: &str = "chaos.healthy";
const HEALTHY_INTERVAL: Duration = Duration::from_millis(5);
const PHASES: [&str; 3] = ["before", "fault", "after"];

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
}

/// Waits up to `limit` for `cond`, polling every 10 ms.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A small xorshift generator: garbage and choices, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

// ---------------------------------------------------------------- daemon

struct Daemon {
    child: Child,
    native: SocketAddr,
    http: SocketAddr,
    resp: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// `ringcast serve` on three free ports, 2 reactors, under
    /// `prlimit --nofile=NOFILE` (prlimit execs it: same pid).
    fn spawn(bin: &PathBuf, nofile: u64, extra: &[&str]) -> Daemon {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn rss_bytes(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    /// utime + stime in clock ticks (100 per second on Linux).
    fn cpu_ticks(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = s.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    }

    /// `/metrics`, as name (with labels) → value.
    fn metrics(&self) -> HashMap<String, f64> {
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

    fn metric_sum(&self, prefix: &str) -> f64 {
        self.metrics()
            .iter()
            .filter(|(k, _)| *k == prefix || k.starts_with(&format!("{prefix}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
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

// ---------------------------------------------------------------- healthy

/// Shared between the driver and the healthy threads.
struct HealthyShared {
    phase: AtomicUsize,
    stop: AtomicBool,
    abort: AtomicBool,
    published: [AtomicU64; 3],
    received: [AtomicU64; 3],
    /// Seq or payload index not one past the previous frame's.
    order_violations: AtomicU64,
    /// Frames missing between two received ones (seq jumps).
    seq_gaps: AtomicU64,
    hist: Mutex<[Histogram<u64>; 3]>,
    /// Per phase: (latency us, realtime ns at receipt) of the slowest frame.
    worst: Mutex<[(u64, u64); 3]>,
    errors: Mutex<Vec<String>>,
}

struct Healthy {
    shared: Arc<HealthyShared>,
    publisher: Option<JoinHandle<()>>,
    subscriber: Option<JoinHandle<()>>,
}

#[derive(Clone, Debug)]
struct PhaseStats {
    published: u64,
    received: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// Realtime ns at which the slowest frame arrived.
    worst_at_ns: u64,
}

#[derive(Clone, Debug)]
struct HealthyReport {
    phases: Vec<PhaseStats>,
    order_violations: u64,
    seq_gaps: u64,
    errors: Vec<String>,
}

impl Healthy {
    fn start(addr: SocketAddr) -> Healthy {
        let hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        let shared = Arc::new(HealthyShared {
            phase: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            published: Default::default(),
            received: Default::default(),
            order_violations: AtomicU64::new(0),
            seq_gaps: AtomicU64::new(0),
            hist: Mutex::new([hist(), hist(), hist()]),
            worst: Mutex::new([(0, 0); 3]),
            errors: Mutex::new(Vec::new()),
        });
        let mut sub = Client::connect(addr).expect("healthy subscriber connects");
        let ack = sub.subscribe(HEALTHY_TOPIC).expect("healthy SUBSCRIBE");
        sub.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let mut publ = Client::connect(addr).expect("healthy publisher connects");
        publ.ping(b"").expect("healthy publisher PING");
        let s = shared.clone();
        let subscriber = thread::spawn(move || {
            let mut next_seq = ack.next_seq;
            let mut next_index = 0u64;
            loop {
                let total_pub: u64 = s.published.iter().map(|a| a.load(Ordering::Acquire)).sum();
                let total_rcv: u64 = s.received.iter().map(|a| a.load(Ordering::Relaxed)).sum();
                if s.abort.load(Ordering::Acquire)
                    || (s.stop.load(Ordering::Acquire) && total_rcv >= total_pub)
                {
                    return;
                }
                match sub.next_message() {
                    Ok(m) => {
                        let now_ns = realtime_ns();
                        let lat_us = now_ns.saturating_sub(m.ts_ns) / 1000;
                        if m.seq != next_seq {
                            s.order_violations
                                .fetch_add(u64::from(m.seq < next_seq), Ordering::Relaxed);
                            if m.seq > next_seq {
                                s.seq_gaps.fetch_add(m.seq - next_seq, Ordering::Relaxed);
                            }
                        }
                        next_seq = m.seq + 1;
                        let text = String::from_utf8_lossy(&m.payload);
                        let (phase, index) = text
                            .split_once(':')
                            .and_then(|(p, i)| {
                                Some((p.parse::<usize>().ok()?, i.parse::<u64>().ok()?))
                            })
                            .unwrap_or((0, u64::MAX));
                        if index != next_index {
                            s.order_violations
                                .fetch_add(u64::from(index < next_index), Ordering::Relaxed);
                        }
                        next_index = index.wrapping_add(1);
                        let phase = phase.min(2);
                        s.received[phase].fetch_add(1, Ordering::Relaxed);
                        let _ = s.hist.lock().unwrap()[phase].record(lat_us.max(1));
                        let mut w = s.worst.lock().unwrap();
                        if lat_us > w[phase].0 {
                            w[phase] = (lat_us, now_ns);
                        }
                    }
                    Err(ClientError::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => {
                        s.errors.lock().unwrap().push(format!("subscriber: {e}"));
                        return;
                    }
                }
            }
        });
        let s = shared.clone();
        let publisher = thread::spawn(move || {
            let mut index = 0u64;
            let mut next = Instant::now();
            while !s.stop.load(Ordering::Acquire) && !s.abort.load(Ordering::Acquire) {
                let phase = s.phase.load(Ordering::Acquire);
                let payload = format!("{phase}:{index}");
                if let Err(e) = publ.publish(HEALTHY_TOPIC, payload.as_bytes()) {
                    s.errors.lock().unwrap().push(format!("publisher: {e}"));
                    return;
                }
                s.published[phase].fetch_add(1, Ordering::Release);
                index += 1;
                next += HEALTHY_INTERVAL;
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            // Every publish before this PING reached the server.
            let _ = publ.ping(b"");
        });
        Healthy {
            shared,
            publisher: Some(publisher),
            subscriber: Some(subscriber),
        }
    }

    fn set_phase(&self, p: usize) {
        self.shared.phase.store(p, Ordering::Release);
    }

    /// Stops publishing, waits up to `drain` for the frames in flight.
    fn finish(mut self, drain: Duration) -> HealthyReport {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(p) = self.publisher.take() {
            let _ = p.join();
        }
        let s = self.shared.clone();
        let done = wait_until(drain, || {
            self.subscriber.as_ref().is_some_and(|h| h.is_finished())
        });
        if !done {
            s.abort.store(true, Ordering::Release);
        }
        if let Some(h) = self.subscriber.take() {
            let _ = h.join();
        }
        let hist = s.hist.lock().unwrap();
        let phases = (0..3)
            .map(|i| PhaseStats {
                published: s.published[i].load(Ordering::Acquire),
                received: s.received[i].load(Ordering::Acquire),
                p50_us: hist[i].value_at_quantile(0.50),
                p99_us: hist[i].value_at_quantile(0.99),
                max_us: hist[i].max(),
                worst_at_ns: s.worst.lock().unwrap()[i].1,
            })
            .collect();
        drop(hist);
        let errors = s.errors.lock().unwrap().clone();
        HealthyReport {
            phases,
            order_violations: s.order_violations.load(Ordering::Acquire),
            seq_gaps: s.seq_gaps.load(Ordering::Acquire),
            errors,
        }
    }
}

impl Drop for Healthy {
    fn drop(&mut self) {
        self.shared.abort.store(true, Ordering::Release);
    }
}

// ---------------------------------------------------------------- cases

struct Outcome {
    /// What the fault did, in figures.
    note: String,
    /// Broken promises beside the healthy subscriber's (empty: none).
    failures: Vec<String>,
}

/// A fault: runs for `secs` seconds against `d`, returns what it saw.
type Fault = fn(&mut Daemon, &Opts) -> Outcome;

struct Case {
    name: &'static str,
    what: &'static str,
    nofile: u64,
    flags: &'static [&'static str],
    fault: Fault,
    /// The daemon is expected to exit (SIGTERM): no liveness or fd check,
    /// and frames published after the fault began may be refused.
    exits: bool,
}

struct Opts {
    secs: f64,
}

impl Opts {
    fn window(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
}

const CASES: &[Case] = &[
    Case {
        name: "flood",
        what: "connections past the daemon's open-file limit (1,024) and back",
        nofile: 1024,
        flags: &[],
        fault: fault_flood,
        exits: false,
    },
    Case {
        name: "resets",
        what: "1,000 subscribers reset (RST) with sends in flight",
        nofile: 20000,
        flags: &[],
        fault: fault_resets,
        exits: false,
    },
    Case {
        name: "never-read",
        what:
            "200 subscribers that never read (4 KiB receive buffers), cut off at --max-backlog 2MiB",
        nofile: 20000,
        flags: &["--max-backlog", "2MiB"],
        fault: fault_never_read,
        exits: false,
    },
    Case {
        name: "big-frames",
        what: "1 MiB frames to 8 readers with a 2 MiB pool (exhausted)",
        nofile: 20000,
        flags: &["--pool-size", "2MiB"],
        fault: fault_big_frames,
        exits: false,
    },
    Case {
        name: "garbage",
        what: "random bytes on the native, HTTP/WebSocket and Redis ports",
        nofile: 20000,
        flags: &[],
        fault: fault_garbage,
        exits: false,
    },
    Case {
        name: "slowloris",
        what: "500 handshakes sent a byte per 500 ms, --http-timeout 2s",
        nofile: 20000,
        flags: &["--http-timeout", "2s"],
        fault: fault_slowloris,
        exits: false,
    },
    Case {
        name: "sigterm",
        what: "SIGTERM with 50 readers of 4 KiB frames at 500 msg/s",
        nofile: 20000,
        flags: &["--shutdown-timeout", "5s"],
        fault: fault_sigterm,
        exits: true,
    },
];

/// Publishes `size`-byte payloads on `topic` at `rate` per second until `stop`.
fn bulk_publisher(
    addr: SocketAddr,
    topic: &'static str,
    size: usize,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    thread::spawn(move || {
        let Ok(mut c) = Client::connect(addr) else {
            return 0;
        };
        let payload = vec![b'x'; size];
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut next = Instant::now();
        let mut n = 0;
        while !stop.load(Ordering::Acquire) {
            if c.publish(topic, &payload).is_err() {
                break;
            }
            n += 1;
            next += interval;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        n
    })
}

fn fault_flood(d: &mut Daemon, o: &Opts) -> Outcome {
    let mut failures = Vec::new();
    let mut held = Vec::new();
    let mut refused = 0u64;
    // Up to 1.5 times the daemon's limit: past it the daemon sheds.
    for _ in 0..1536 {
        match TcpStream::connect(d.native) {
            Ok(s) => held.push(s),
            Err(_) => refused += 1,
        }
    }
    let peak_fds = d.fds();
    // Hold at the limit: more connections keep coming (one per 10 ms);
    // the daemon's CPU tells whether EMFILE spins the accept loop.
    let t0 = d.cpu_ticks();
    let start = Instant::now();
    let mut extra = 0u64;
    while start.elapsed() < o.window() {
        if let Ok(s) = TcpStream::connect(d.native) {
            extra += 1;
            drop(s);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let cpu = (d.cpu_ticks() - t0) as f64 / 100.0 / start.elapsed().as_secs_f64();
    // Monitoring answers at the limit (--http-reserve).
    let m = d.metrics();
    let at_limit = m.get("ringcast_connections{transport=\"tcp\"}").copied();
    // Which held connections did the daemon close (shed)?
    let mut shed = 0;
    for s in &held {
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 1];
        if matches!((&*s).read(&mut b), Ok(0)) {
            shed += 1;
        }
    }
    drop(held);
    if cpu > 0.5 {
        failures.push(format!(
            "daemon used {:.0}% of a core at the limit (accept loop spinning?)",
            cpu * 100.0
        ));
    }
    let shed_total = m
        .get("ringcast_connections_shed_total")
        .copied()
        .unwrap_or(0.0);
    let refused_total = m
        .get("ringcast_connections_refused_total")
        .copied()
        .unwrap_or(0.0);
    if shed_total + refused_total < 1.0 {
        failures.push("no connection refused or shed at the limit".into());
    }
    if at_limit.is_none() {
        failures.push("/metrics did not answer at the limit".into());
    }
    Outcome {
        note: format!(
            "1,536 opened ({refused} refused by connect), daemon at {peak_fds} fds, {shed} closed at once by it; \
             {extra} more during the hold; refused_total {refused_total}, shed_total {shed_total}; \
             /metrics at the limit: {} tcp connections; daemon CPU at the limit {:.1}% of a core",
            at_limit.map(|v| v.to_string()).unwrap_or_else(|| "no answer".into()),
            cpu * 100.0
        ),
        failures,
    }
}

/// A client whose socket has a 4 KiB receive buffer (set before connecting,
/// so the window it advertises stays small): what the daemon sends it
/// waits in the daemon's queue, not in the kernel.
fn small_window_client(addr: SocketAddr) -> Option<Client> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.set_recv_buffer_size(4096).ok()?;
    s.connect(&addr.into()).ok()?;
    Some(Client::from_stream(s.into()))
}

fn fault_resets(d: &mut Daemon, o: &Opts) -> Outcome {
    let start = Instant::now();
    let addr = d.native;
    // 1,000 subscribers of a bulk topic, connected by 4 threads.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                let mut v = Vec::new();
                for _ in 0..250 {
                    if let Some(mut c) = small_window_client(addr) {
                        if c.subscribe("chaos.bulk").is_ok() {
                            v.push(c);
                        }
                    }
                }
                v
            })
        })
        .collect();
    let subs: Vec<Client> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect();
    let n = subs.len();
    let connected_at = start.elapsed();
    // 64 KiB frames until the daemon holds a backlog for them (their
    // kernel send buffers are full, sends wait on the 4 KiB windows): every
    // subscriber then has a send in flight and frames queued behind it.
    let mut p = Client::connect(addr).expect("bulk publisher");
    let payload = vec![b'r'; 64 * 1024];
    let mut backlog = 0.0f64;
    let mut frames = 0;
    let backlog_seen = wait_until(Duration::from_secs(5), || {
        let _ = p.publish("chaos.bulk", &payload);
        frames += 1;
        backlog = d.metric_sum("ringcast_backlog_bytes");
        backlog >= (n * payload.len()) as f64
    });
    let short = d.metric_sum("ringcast_short_sends_total");
    eprintln!(
        "chaos: resets: subscribers connected {:.3} s, backlog built {:.3} s into the fault",
        connected_at.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    // SO_LINGER 0: close sends RST.
    for c in &subs {
        let _ = socket2::SockRef::from(c.get_ref()).set_linger(Some(Duration::ZERO));
    }
    drop(subs);
    let rest = o.window().saturating_sub(start.elapsed());
    thread::sleep(rest);
    let mut failures = Vec::new();
    if n < 1000 {
        failures.push(format!("only {n} of 1,000 subscribers connected"));
    }
    Outcome {
        note: format!(
            "{n} subscribers reset after {frames} frames of 64 KiB, with {:.0} MiB owed to them{} (short sends {short})",
            backlog / 1048576.0,
            if backlog_seen { "" } else { ", less than a frame each" }
        ),
        failures,
    }
}

fn fault_never_read(d: &mut Daemon, o: &Opts) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    for _ in 0..200 {
        if let Some(mut c) = small_window_client(d.native) {
            if c.subscribe("chaos.bulk").is_ok() {
                subs.push(c);
            }
        }
    }
    let publ = bulk_publisher(d.native, "chaos.bulk", 64 * 1024, 100.0, stop.clone());
    thread::sleep(o.window());
    stop.store(true, Ordering::Release);
    let published = publ.join().unwrap_or(0);
    let cut = d.metric_sum("ringcast_slow_consumers_total");
    let mut failures = Vec::new();
    if (cut as usize) < subs.len() {
        failures.push(format!("{cut} of {} never-readers cut off", subs.len()));
    }
    drop(subs);
    Outcome {
        note: format!(
            "{published} frames of 64 KiB published; slow_consumers_total {cut} (of 200)"
        ),
        failures,
    }
}

fn fault_big_frames(d: &mut Daemon, o: &Opts) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = d.native;
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            let mut c = Client::connect(addr).expect("reader");
            c.subscribe("chaos.big").expect("SUBSCRIBE");
            c.set_max_frame(2 << 20);
            let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) {
                    match c.next_message() {
                        Ok(_) => n += 1,
                        Err(e) if e.is_recoverable() => {}
                        Err(ClientError::Io(_)) => {}
                        Err(_) => break,
                    }
                }
                n
            })
        })
        .collect();
    let publ = bulk_publisher(addr, "chaos.big", (1 << 20) - 4096, 10.0, stop.clone());
    thread::sleep(o.window());
    stop.store(true, Ordering::Release);
    let published = publ.join().unwrap_or(0);
    let got: u64 = readers.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let heap = d.metric_sum("ringcast_heap_frames_total");
    let mut failures = Vec::new();
    if heap < 1.0 {
        failures.push("pool never exhausted (no heap frame)".into());
    }
    Outcome {
        note: format!(
            "{published} frames of 1 MiB published, {got} read by 8 readers; heap_frames_total {heap}"
        ),
        failures,
    }
}

fn fault_garbage(d: &mut Daemon, o: &Opts) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let conns = Arc::new(AtomicU64::new(0));
    let targets = [d.native, d.http, d.resp];
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (stop, conns) = (stop.clone(), conns.clone());
            let addr = targets[i % 3];
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                let mut buf = vec![0u8; 8192];
                while !stop.load(Ordering::Acquire) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    conns.fetch_add(1, Ordering::Relaxed);
                    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                    let len = 1 + rng.below(8192) as usize;
                    rng.fill(&mut buf[..len]);
                    // Sometimes a plausible start, so parsers go deeper.
                    match rng.below(4) {
                        0 => buf[..4].copy_from_slice(b"GET "),
                        1 => buf[0] = b'*',
                        _ => {}
                    }
                    let _ = s.write_all(&buf[..len]);
                    let mut sink = [0u8; 4096];
                    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                }
            })
        })
        .collect();
    thread::sleep(o.window());
    stop.store(true, Ordering::Release);
    for h in handles {
        let _ = h.join();
    }
    let m = d.metrics();
    let errs: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("ringcast_errors_total"))
        .map(|(_, v)| v)
        .sum();
    let resp = m
        .get("ringcast_resp_protocol_errors_total")
        .copied()
        .unwrap_or(0.0);
    let http: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("ringcast_http_responses_total"))
        .map(|(_, v)| v)
        .sum();
    Outcome {
        note: format!(
            "{} garbage connections; ERROR frames {errs}, Redis errors {resp}, HTTP responses {http}",
            conns.load(Ordering::Relaxed)
        ),
        failures: Vec::new(),
    }
}

fn fault_slowloris(d: &mut Daemon, o: &Opts) -> Outcome {
    let timeout = Duration::from_secs(2);
    let mut socks = Vec::new();
    for _ in 0..500 {
        if let Ok(mut s) = TcpStream::connect(d.http) {
            let _ = s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n");
            let _ = s.set_nonblocking(true);
            socks.push((s, Instant::now(), None::<Duration>));
        }
    }
    let window = o.window().max(timeout + Duration::from_secs(3));
    let start = Instant::now();
    while start.elapsed() < window {
        for (s, opened, closed) in socks.iter_mut() {
            if closed.is_some() {
                continue;
            }
            let mut b = [0u8; 512];
            match s.read(&mut b) {
                Ok(0) => *closed = Some(opened.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let _ = s.write(b"X");
                }
                Err(_) => *closed = Some(opened.elapsed()),
            }
        }
        thread::sleep(Duration::from_millis(500));
    }
    let n = socks.len();
    let closed: Vec<Duration> = socks.iter().filter_map(|(_, _, c)| *c).collect();
    let latest = closed.iter().max().copied().unwrap_or_default();
    let mut failures = Vec::new();
    if closed.len() < n {
        failures.push(format!(
            "{} of {n} half-open handshakes still open",
            n - closed.len()
        ));
    }
    // The engine checks timeouts on its tick; the driver looks every 500 ms.
    if latest > timeout + Duration::from_millis(1500) {
        failures.push(format!(
            "a handshake lived {latest:?} (timeout {timeout:?})"
        ));
    }
    drop(socks);
    Outcome {
        note: format!(
            "{n} opened, {} closed by the daemon, the last after {:.1} s (timeout 2 s); request_timeout disconnects {}",
            closed.len(),
            latest.as_secs_f64(),
            d.metrics()
                .get("ringcast_disconnects_total{reason=\"request_timeout\"}")
                .copied()
                .unwrap_or(0.0)
        ),
        failures,
    }
}

fn fault_sigterm(d: &mut Daemon, _o: &Opts) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = d.native;
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let stop = stop.clone();
            let mut c = Client::connect(addr).expect("reader");
            c.subscribe("chaos.load").expect("SUBSCRIBE");
            let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) {
                    match c.next_message() {
                        Ok(_) => n += 1,
                        Err(ClientError::Io(e))
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => break,
                    }
                }
                n
            })
        })
        .collect();
    let publ = bulk_publisher(addr, "chaos.load", 4096, 500.0, stop.clone());
    thread::sleep(Duration::from_secs(1));
    let sent_at = Instant::now();
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(10));
    let took = sent_at.elapsed();
    stop.store(true, Ordering::Release);
    let published = publ.join().unwrap_or(0);
    let got: u64 = readers.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    // The daemon's last log line: whether every connection got what it was owed.
    let last = d
        .log
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|l| l.contains("stopped"))
        .and_then(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v.get("message")?.as_str()?.to_string())
        })
        .unwrap_or_else(|| "no 'stopped' log line".into());
    let mut failures = Vec::new();
    match status {
        Some(st) if st.success() => {}
        Some(st) => failures.push(format!("exit status {st}")),
        None => failures.push("still running 10 s after SIGTERM".into()),
    }
    Outcome {
        note: format!(
            "{} after {:.2} s; load: {published} published, {got} deliveries to 50 readers; log: {last}",
            status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "still running".into()),
            took.as_secs_f64()
        ),
        failures,
    }
}

struct CaseResult {
    name: &'static str,
    what: &'static str,
    healthy: HealthyReport,
    outcome: Outcome,
    fd_before: usize,
    fd_after: usize,
    up: bool,
    failures: Vec<String>,
}

fn run_case(bin: &PathBuf, case: &Case, o: &Opts) -> CaseResult {
    let mut d = Daemon::spawn(bin, case.nofile, case.flags);
    let healthy = Healthy::start(d.native);
    thread::sleep(o.window());
    let fd_before = d.fds();
    healthy.set_phase(1);
    let fault_ns = realtime_ns();
    let outcome = (case.fault)(&mut d, o);
    healthy.set_phase(2);
    if !case.exits {
        thread::sleep(o.window());
    }
    let h = healthy.finish(Duration::from_secs(5));
    let up = case.exits || d.alive();
    // Descriptors back to the baseline (the healthy pair is still open).
    let mut fd_after = d.fds();
    if !case.exits {
        wait_until(Duration::from_secs(10), || {
            fd_after = d.fds();
            fd_after <= fd_before
        });
    }
    let mut failures = outcome.failures.clone();
    if !up {
        failures.push("daemon died".into());
    }
    if !case.exits && fd_after > fd_before {
        failures.push(format!("descriptors {fd_before} -> {fd_after}"));
    }
    if h.order_violations > 0 {
        failures.push(format!("{} frames out of order", h.order_violations));
    }
    if h.seq_gaps > 0 {
        failures.push(format!("{} seqs skipped", h.seq_gaps));
    }
    // Every frame published must arrive; with SIGTERM only those published
    // before it (later ones may be refused by the closing daemon).
    let must = if case.exits { 1 } else { 3 };
    for (i, p) in h.phases.iter().enumerate().take(must) {
        if p.received < p.published {
            failures.push(format!(
                "healthy lost {} of {} frames {}",
                p.published - p.received,
                p.published,
                PHASES[i]
            ));
        }
    }
    if !case.exits && !h.errors.is_empty() {
        failures.push(format!("healthy: {}", h.errors.join("; ")));
    }
    let worst = &h.phases[1];
    eprintln!(
        "chaos: {}: slowest healthy frame during the fault: {} ms, arrived {:.3} s into the fault",
        case.name,
        ms(worst.max_us),
        worst.worst_at_ns.saturating_sub(fault_ns) as f64 / 1e9
    );
    CaseResult {
        name: case.name,
        what: case.what,
        healthy: h,
        outcome,
        fd_before,
        fd_after,
        up,
        failures,
    }
}

fn pct(p: &PhaseStats) -> String {
    if p.published == 0 {
        return "-".into();
    }
    format!("{:.2}%", 100.0 * p.received as f64 / p.published as f64)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn faults(bin: &PathBuf, o: &Opts, names: &[String]) -> bool {
    let mut results = Vec::new();
    for case in CASES {
        if !names.is_empty() && !names.iter().any(|n| n == case.name) {
            continue;
        }
        eprintln!("chaos: {} ({})", case.name, case.what);
        let r = run_case(bin, case, o);
        eprintln!(
            "chaos: {} {}: {}",
            r.name,
            if r.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
            r.outcome.note
        );
        results.push(r);
    }
    println!(
        "| case | fault | healthy delivery before / fault / after | order | p50 ms before → fault | p99 ms before → fault (after) | max ms fault | daemon | fds before → after | result |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut ok = true;
    for r in &results {
        let [b, f, a] = [
            &r.healthy.phases[0],
            &r.healthy.phases[1],
            &r.healthy.phases[2],
        ];
        println!(
            "| {} | {}: {} | {} / {} / {} ({} frames) | {} | {} → {} | {} → {} ({}) | {} | {} | {} → {} | {} |",
            r.name,
            r.what,
            r.outcome.note,
            pct(b),
            pct(f),
            pct(a),
            b.published + f.published + a.published,
            if r.healthy.order_violations == 0 && r.healthy.seq_gaps == 0 {
                "in order, no gap".to_string()
            } else {
                format!("{} out of order, {} gaps", r.healthy.order_violations, r.healthy.seq_gaps)
            },
            ms(b.p50_us),
            ms(f.p50_us),
            ms(b.p99_us),
            ms(f.p99_us),
            ms(a.p99_us),
            ms(f.max_us),
            if r.name == "sigterm" { "exited" } else if r.up { "up" } else { "DIED" },
            r.fd_before,
            r.fd_after,
            if r.failures.is_empty() {
                "pass".to_string()
            } else {
                format!("FAIL: {}", r.failures.join("; "))
            }
        );
        ok &= r.failures.is_empty();
    }
    ok
}

// ---------------------------------------------------------------- soak

struct SoakOpts {
    secs: u64,
    subs: usize,
    rate: f64,
    reconnects: f64,
    churn: f64,
    topics: usize,
    csv: PathBuf,
}

fn topic_name(i: u64) -> String {
    format!("soak.{i}")
}

/// One worker's subscribers: a connection and the topics it holds.
struct SoakSub {
    client: Client,
    held: BTreeSet<u64>,
}

fn soak_connect(addr: SocketAddr, rng: &mut Rng, topics: usize) -> Option<SoakSub> {
    let mut client = Client::connect(addr).ok()?;
    let mut held = BTreeSet::new();
    for _ in 0..5 {
        let t = rng.below(topics as u64);
        if client.subscribe(&topic_name(t)).is_ok() {
            held.insert(t);
        }
    }
    Some(SoakSub { client, held })
}

fn slope_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx * 3600.0
    }
}

fn soak(bin: &PathBuf, o: &SoakOpts) -> bool {
    let mut d = Daemon::spawn(bin, 20000, &[]);
    let addr = d.native;
    let healthy = Healthy::start(addr);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = 4usize;
    let reconnects = Arc::new(AtomicU64::new(0));
    let churn_ops = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicUsize::new(0));
    let close = Arc::new(AtomicBool::new(false));
    let (held_tx, held_rx) = std::sync::mpsc::channel::<BTreeSet<u64>>();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (stop, reconnects, churn_ops, ready) = (
                stop.clone(),
                reconnects.clone(),
                churn_ops.clone(),
                ready.clone(),
            );
            let (close, held_tx) = (close.clone(), held_tx.clone());
            let per = o.subs / workers;
            let topics = o.topics;
            let recon_interval = Duration::from_secs_f64(workers as f64 / o.reconnects.max(0.001));
            let churn_interval = Duration::from_secs_f64(workers as f64 / o.churn.max(0.001));
            thread::spawn(move || {
                let mut rng = Rng(0xA076_1D64_78BD_642F ^ ((w as u64 + 1) * 0x9E37));
                let mut subs: Vec<SoakSub> = (0..per)
                    .filter_map(|_| soak_connect(addr, &mut rng, topics))
                    .collect();
                ready.fetch_add(1, Ordering::Release);
                let mut next_recon = Instant::now();
                let mut next_churn = Instant::now();
                while !stop.load(Ordering::Acquire) {
                    // Catch up (bounded) when an iteration took longer than
                    // an interval, so the rates asked for are the rates run.
                    let now = Instant::now();
                    let mut burst = 0;
                    while now >= next_recon && !subs.is_empty() && burst < 8 {
                        burst += 1;
                        let i = rng.below(subs.len() as u64) as usize;
                        if let Some(s) = soak_connect(addr, &mut rng, topics) {
                            subs[i] = s;
                            reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        next_recon += recon_interval;
                    }
                    let mut burst = 0;
                    while now >= next_churn && !subs.is_empty() && burst < 8 {
                        burst += 1;
                        let i = rng.below(subs.len() as u64) as usize;
                        let s = &mut subs[i];
                        // The drain below leaves a 100 us read timeout; a
                        // reply slower than that must not count as refused.
                        let _ = s.client.set_read_timeout(Some(Duration::from_secs(10)));
                        let unsub = s.held.len() >= 5 || (!s.held.is_empty() && rng.below(2) == 0);
                        if unsub {
                            let k = rng.below(s.held.len() as u64) as usize;
                            let t = *s.held.iter().nth(k).expect("held");
                            if s.client.unsubscribe(&topic_name(t)).is_ok() {
                                s.held.remove(&t);
                            }
                        } else {
                            let t = rng.below(topics as u64);
                            if s.client.subscribe(&topic_name(t)).is_ok() {
                                s.held.insert(t);
                            }
                        }
                        churn_ops.fetch_add(1, Ordering::Relaxed);
                        next_churn += churn_interval;
                    }
                    // Drain what arrived (a few frames per minute each), so
                    // no subscriber is cut off for not reading.
                    for s in subs.iter_mut().filter(|_| rng.below(50) == 0) {
                        let _ = s.client.set_read_timeout(Some(Duration::from_micros(100)));
                        while s.client.next_frame().is_ok() {}
                    }
                    let wake = next_recon.min(next_churn);
                    let now = Instant::now();
                    if wake > now {
                        thread::sleep((wake - now).min(Duration::from_millis(20)));
                    }
                }
                let _ = held_tx.send(subs.iter().flat_map(|s| s.held.iter().copied()).collect());
                // Keep the connections open until the driver has read the
                // daemon's topic count.
                while !close.load(Ordering::Acquire) {
                    thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    wait_until(Duration::from_secs(300), || {
        ready.load(Ordering::Acquire) == workers
    });
    // The publisher: random topics of the 10,000 names.
    let pstop = stop.clone();
    let (rate, topics) = (o.rate, o.topics);
    let publisher = thread::spawn(move || {
        let mut c = Client::connect(addr).expect("soak publisher");
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let payload = vec![b'p'; 128];
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut next = Instant::now();
        while !pstop.load(Ordering::Acquire) {
            let _ = c.publish(&topic_name(rng.below(topics as u64)), &payload);
            next += interval;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            } else {
                next = now;
            }
        }
    });
    let mut csv = String::from("seconds,rss_bytes,fds,topics,subscriptions,connections\n");
    let mut samples: Vec<(f64, f64, f64)> = Vec::new();
    let start = Instant::now();
    let end = start + Duration::from_secs(o.secs);
    let mut next_sample = start;
    let mut dead = false;
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_sample {
            let t = start.elapsed().as_secs_f64();
            let (rss, fds) = (d.rss_bytes(), d.fds());
            let m = d.metrics();
            let g = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
            let conns: f64 = m
                .iter()
                .filter(|(k, _)| k.starts_with("ringcast_connections{"))
                .map(|(_, v)| v)
                .sum();
            csv.push_str(&format!(
                "{t:.0},{rss},{fds},{},{},{conns}\n",
                g("ringcast_topics"),
                g("ringcast_subscriptions")
            ));
            let _ = std::fs::write(&o.csv, &csv);
            eprintln!(
                "soak: {t:>6.0} s rss {:.1} MiB fds {fds} topics {} reconnects {} churn {}",
                rss as f64 / 1048576.0,
                g("ringcast_topics"),
                reconnects.load(Ordering::Relaxed),
                churn_ops.load(Ordering::Relaxed)
            );
            samples.push((t, rss as f64, fds as f64));
            next_sample += Duration::from_secs(10);
        }
        if !d.alive() {
            dead = true;
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Release);
    // The load ran from `start` until here; the wind-down below is not part
    // of the achieved rates.
    let active = start.elapsed().as_secs_f64();
    let _ = publisher.join();
    let mut held = BTreeSet::new();
    for _ in 0..workers {
        if let Ok(h) = held_rx.recv_timeout(Duration::from_secs(60)) {
            held.extend(h);
        }
    }
    // Topics still subscribed (the soak's and the healthy one) against the
    // daemon's count, once the last churn replies are in.
    let topics_with_subs = held.len() + 1;
    let mut topics_live = f64::NAN;
    wait_until(Duration::from_secs(10), || {
        topics_live = d.metric_sum("ringcast_topics");
        topics_live == topics_with_subs as f64
    });
    close.store(true, Ordering::Release);
    for h in handles {
        let _ = h.join();
    }
    let hr = healthy.finish(Duration::from_secs(5));
    // Everybody gone: every topic must be reclaimed.
    let mut left = f64::NAN;
    wait_until(Duration::from_secs(10), || {
        left = d.metric_sum("ringcast_topics");
        left == 0.0
    });
    let elapsed = start.elapsed().as_secs_f64();
    let warm = samples.iter().map(|s| s.0).fold(0.0, f64::max) * 0.1;
    let after: Vec<_> = samples.iter().filter(|s| s.0 >= warm.max(60.0)).collect();
    let rss_slope = slope_per_hour(&after.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>());
    let fd_slope = slope_per_hour(&after.iter().map(|s| (s.0, s.2)).collect::<Vec<_>>());
    let first = after.first().map(|s| s.1).unwrap_or(0.0);
    let last = after.last().map(|s| s.1).unwrap_or(0.0);
    let delivered: u64 = hr.phases.iter().map(|p| p.received).sum();
    let published: u64 = hr.phases.iter().map(|p| p.published).sum();
    println!(
        "soak: {active:.0} s under load ({elapsed:.0} s with the wind-down), {} subscribers, {} msg/s, {} reconnects/s (done {}, {:.1}/s), {} sub/unsub per s (done {}, {:.1}/s), {} topic names",
        o.subs,
        o.rate,
        o.reconnects,
        reconnects.load(Ordering::Relaxed),
        reconnects.load(Ordering::Relaxed) as f64 / active,
        o.churn,
        churn_ops.load(Ordering::Relaxed),
        churn_ops.load(Ordering::Relaxed) as f64 / active,
        o.topics
    );
    println!(
        "soak: RSS {:.1} -> {:.1} MiB after warm-up, slope {:+.2} MiB/hour; fds slope {:+.1}/hour (samples {}, from {:.0} s)",
        first / 1048576.0,
        last / 1048576.0,
        rss_slope / 1048576.0,
        fd_slope,
        after.len(),
        after.first().map(|s| s.0).unwrap_or(0.0)
    );
    println!(
        "soak: at the end {topics_with_subs} topics had subscribers, ringcast_topics = {topics_live}; after every subscriber closed, ringcast_topics = {left} (expected 0)"
    );
    println!(
        "soak: healthy subscriber {delivered}/{published} frames, {} out of order, {} gaps, p99 {} ms, max {} ms",
        hr.order_violations,
        hr.seq_gaps,
        ms(hr.phases[0].p99_us),
        ms(hr.phases[0].max_us)
    );
    !dead
        && left == 0.0
        && topics_live == topics_with_subs as f64
        && hr.order_violations == 0
        && hr.seq_gaps == 0
        && delivered >= published
}

// ---------------------------------------------------------------- main

fn usage() -> ! {
    eprintln!(
        "usage: ringcast-chaos [--binary PATH] faults [--secs N] [CASE...]\n       \
         ringcast-chaos [--binary PATH] soak [--secs N] [--subs N] [--rate N] [--reconnects N] [--churn N] [--topics N] [--csv FILE]\n\
         cases: {}",
        CASES.iter().map(|c| c.name).collect::<Vec<_>>().join(" ")
    );
    std::process::exit(2)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("ringcast")))
        .unwrap_or_else(|| PathBuf::from("ringcast"));
    if args.first().map(String::as_str) == Some("--binary") && args.len() > 1 {
        bin = PathBuf::from(args.remove(1));
        args.remove(0);
    }
    if args.is_empty() {
        usage();
    }
    let cmd = args.remove(0);
    let mut flags: HashMap<String, String> = HashMap::new();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if let Some(k) = a.strip_prefix("--") {
            let Some(v) = it.next() else { usage() };
            flags.insert(k.to_string(), v);
        } else {
            rest.push(a);
        }
    }
    let num = |k: &str, dflt: f64| -> f64 {
        flags
            .get(k)
            .map(|v| v.parse::<f64>().unwrap_or_else(|_| usage()))
            .unwrap_or(dflt)
    };
    let ok = match cmd.as_str() {
        "faults" => faults(
            &bin,
            &Opts {
                secs: num("secs", 5.0),
            },
            &rest,
        ),
        "soak" => soak(
            &bin,
            &SoakOpts {
                secs: num("secs", 3600.0) as u64,
                subs: num("subs", 2000.0) as usize,
                rate: num("rate", 200.0),
                reconnects: num("reconnects", 50.0),
                churn: num("churn", 100.0),
                topics: num("topics", 10000.0) as usize,
                csv: PathBuf::from(
                    flags
                        .get("csv")
                        .cloned()
                        .unwrap_or_else(|| "soak.csv".into()),
                ),
            },
        ),
        _ => usage(),
    };
    std::process::exit(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::slope_per_hour;

    #[test]
    fn the_slope_is_per_hour_and_ignores_noise_around_a_flat_line() {
        // 1 MiB per 10 s: 360 MiB per hour.
        let line: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 10.0, i as f64 * 1048576.0))
            .collect();
        assert!((slope_per_hour(&line) - 360.0 * 1048576.0).abs() < 1.0);
        let flat: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 10.0, 100.0 + if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        assert!(slope_per_hour(&flat).abs() < 100.0);
        assert_eq!(slope_per_hour(&[(0.0, 5.0)]), 0.0);
    }
}

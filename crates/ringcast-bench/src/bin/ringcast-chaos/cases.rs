//! The faults themselves, one function per case: each runs for a window
//! against the daemon and returns what it saw and which promises broke.

use crate::daemon::Daemon;
use crate::faults::{Opts, Outcome};
use crate::helpers::{wait_until, Rng};
use ringcast_client::{Client, ClientError};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Publishes `size`-byte payloads on `topic` at `rate` per second until `stop`.
pub(crate) fn bulk_publisher(
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

pub(crate) fn fault_flood(d: &mut Daemon, o: &Opts) -> Outcome {
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
pub(crate) fn small_window_client(addr: SocketAddr) -> Option<Client> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.set_recv_buffer_size(4096).ok()?;
    s.connect(&addr.into()).ok()?;
    Some(Client::from_stream(s.into()))
}

pub(crate) fn fault_resets(d: &mut Daemon, o: &Opts) -> Outcome {
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

pub(crate) fn fault_never_read(d: &mut Daemon, o: &Opts) -> Outcome {
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

pub(crate) fn fault_big_frames(d: &mut Daemon, o: &Opts) -> Outcome {
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

pub(crate) fn fault_garbage(d: &mut Daemon, o: &Opts) -> Outcome {
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

pub(crate) fn fault_slowloris(d: &mut Daemon, o: &Opts) -> Outcome {
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

pub(crate) fn fault_sigterm(d: &mut Daemon, _o: &Opts) -> Outcome {
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

//! The physical floor for fan-out sends on this machine: what one core pays
//! for the kernel to take one small frame on each of N loopback TCP sockets,
//! with nothing of a server around it.
//!
//! ```text
//! cargo run --release --example raw_uring_floor                 # 9,000 sockets, 200 rounds
//! cargo run --release --example raw_uring_floor -- --json       # machine-readable
//! cargo run --release --example raw_uring_floor -- --conns 1000 --rounds 500 --size 1024
//! ```
//!
//! # What it does
//! One process opens `--conns` loopback TCP connections to its own listener
//! (default 9,000: the N client and N server sockets of one process must stay
//! under this machine's 20,000 open files; 9,990 is the most that fits).
//! Every client connects from 127.0.0.1: N is far below the 28,000 ephemeral
//! ports of one source address, so no spreading over 127.0.0.x is needed.
//!
//! - The **reader** thread (pinned to `--reader-cpu`, default 0) drains the
//!   client sides with edge-triggered epoll, as a fast subscriber would, and
//!   counts the bytes so the run proves every frame arrived.
//! - The **sender** (the main thread, pinned to `--cpu`, default 1) runs
//!   `--warmup` unrecorded rounds and then `--rounds` recorded ones. A round
//!   is one frame of `--size` bytes (default 96: a real DATA frame with a
//!   64-byte payload and an 8-byte topic, encoded by `ringcast::proto`) to
//!   each of the N server-side sockets: N `IORING_OP_SEND` SQEs pushed at once
//!   and handed to the kernel in one `io_uring_enter`, which also waits for
//!   all N completions before the next round starts. The ring is
//!   SINGLE_ISSUER + DEFER_TASKRUN, the configuration the engine uses;
//!   `--fixed-files` registers the sockets and sends by index instead.
//!
//! # What it reports
//! - **Sender CPU µs per send**: `getrusage(RUSAGE_THREAD)` of the sender over
//!   the recorded rounds, divided by the sends. On loopback this includes the
//!   receiver's TCP path (softirq runs in the sender's context) but not the
//!   reader's `read` calls, exactly as a server's CPU does when its
//!   subscribers are on the same host. This is the figure a server's "CPU per
//!   delivery" (issue 3, W1) is compared with.
//! - Wall time per round, p50 and p99 (nearest rank): the time for all N
//!   sends to complete, the best a burst's time-to-last-subscriber can be on
//!   one core.
//! - Sends per second over the recorded rounds, and the reader's CPU per send.
//!
//! Every send must complete whole (a short send or an error is counted and
//! makes the run fail), and the reader must receive exactly
//! `N × (warmup + rounds) × size` bytes.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use ringcast_proto::native as proto;

/// Calls a libc function that returns -1 on error, turning that into `io::Error`.
macro_rules! syscall {
    ($name:ident($($arg:expr),* $(,)?)) => {{
        // SAFETY: each use passes arguments that the named function accepts:
        // valid fds and pointers to live, correctly sized memory (see the call).
        let r = unsafe { libc::$name($($arg),*) };
        if r == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }};
}

/// The topic of the frames sent; 8 bytes, so the default frame is 24 + 8 + 64 = 96 bytes.
const TOPIC: &[u8] = b"bench.w1";

/// Connections opened before the listener accepts them; below the accept
/// queue (somaxconn, 4096 here) so no SYN is dropped and no connect waits 1 s.
const CONNECT_BATCH: usize = 1024;

/// Open files that are not sockets of the test: stdio, listener, epoll, ring, slack.
const OTHER_FILES: u64 = 16;

/// Largest io_uring submission queue.
const MAX_SQ_ENTRIES: u32 = 32768;

/// How long to wait, after the last round, for the reader to see every byte.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    conns: usize,
    rounds: usize,
    warmup: usize,
    size: usize,
    cpu: usize,
    reader_cpu: usize,
    fixed_files: bool,
    write_fixed: bool,
    json: bool,
}

/// The `--json` report, one object on one line (scripts/bench-compare.sh reads it).
#[derive(serde::Serialize)]
struct FloorJson {
    conns: usize,
    rounds: usize,
    warmup: usize,
    size: usize,
    fixed_files: bool,
    /// `send` or `write-fixed`.
    op: &'static str,
    sender_cpu: usize,
    reader_cpu: usize,
    sends: u64,
    sender_cpu_us_per_send: f64,
    reader_cpu_us_per_send: f64,
    round_wall_ms_p50: f64,
    round_wall_ms_p99: f64,
    round_wall_ms_max: f64,
    sends_per_s: u64,
    failed_sends: u64,
    bytes_expected: u64,
    bytes_received: u64,
}

const USAGE: &str = "\
raw_uring_floor: the CPU cost of one small send to each of N loopback sockets.

Usage: cargo run --release --example raw_uring_floor -- [FLAGS]

Flags:
  --conns N          loopback TCP connections (default 9000; at most about 9990,
                     since 2N sockets must fit in 20,000 open files)
  --rounds K         recorded rounds, one frame to every connection each (default 200)
  --warmup W         unrecorded rounds first (default 10)
  --size BYTES       frame size (default 96: a DATA frame with a 64-byte payload)
  --cpu C            CPU the sender is pinned to (default 1)
  --reader-cpu C     CPU the reader is pinned to (default 0)
  --fixed-files      register the sockets with the ring and send by index
  --op OP            send (IORING_OP_SEND, default) or write-fixed
                     (IORING_OP_WRITE_FIXED from a registered buffer, the op
                     ringcast used for single frames before it switched to SEND)
  --json             print one JSON object instead of the table
";

fn parse_args(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        conns: 9000,
        rounds: 200,
        warmup: 10,
        size: proto::data_frame_len(TOPIC.len(), 64),
        cpu: 1,
        reader_cpu: 0,
        fixed_files: false,
        write_fixed: false,
        json: false,
    };
    while let Some(flag) = words.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--fixed-files" => a.fixed_files = true,
            "--json" => a.json = true,
            "--op" => match words.next().as_deref() {
                Some("send") => a.write_fixed = false,
                Some("write-fixed") => a.write_fixed = true,
                other => return Err(format!("--op takes send or write-fixed, not {other:?}")),
            },
            _ => {
                let value = words
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value"))?;
                let n: usize = value
                    .parse()
                    .map_err(|e| format!("bad value {value:?} for {flag}: {e}"))?;
                match flag.as_str() {
                    "--conns" => a.conns = n,
                    "--rounds" => a.rounds = n,
                    "--warmup" => a.warmup = n,
                    "--size" => a.size = n,
                    "--cpu" => a.cpu = n,
                    "--reader-cpu" => a.reader_cpu = n,
                    _ => return Err(format!("unknown flag {flag}")),
                }
            }
        }
    }
    if a.conns == 0 || a.rounds == 0 || a.size == 0 {
        return Err("--conns, --rounds and --size must be at least 1".into());
    }
    if u32::try_from(a.size).is_err() {
        return Err("--size must fit in 32 bits".into());
    }
    Ok(a)
}

/// The frame every send carries: a real DATA frame when `size` can hold one.
fn make_frame(size: usize) -> Vec<u8> {
    let mut frame = vec![0x5a; size];
    let header = proto::data_frame_len(TOPIC.len(), 0);
    if size >= header {
        let payload = vec![0x5a; size - header];
        proto::encode_data(&mut frame, 1, 0, TOPIC, &payload);
    }
    frame
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data for which all-zero bytes are the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "CPU out of range",
        ));
    }
    // SAFETY: `set` is a live cpu_set_t and `cpu` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // sched_setaffinity reads `size_of::<cpu_set_t>()` bytes from `&set`.
    syscall!(sched_setaffinity(
        0,
        std::mem::size_of::<libc::cpu_set_t>(),
        &set
    ))
    .map(drop)
}

/// User and system CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain data; all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // getrusage writes one rusage into `ru`, which lives across the call.
    syscall!(getrusage(libc::RUSAGE_THREAD, &mut ru)).expect("getrusage(RUSAGE_THREAD)");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises the soft open-file limit to the hard one and checks `files` fit.
fn ensure_open_files(files: u64) -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // getrlimit writes one rlimit into `lim`, which lives across the call.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    if files > lim.rlim_max {
        return Err(io::Error::other(format!(
            "{files} open files are needed but RLIMIT_NOFILE allows {} here \
             (2 sockets per connection: use --conns {} or fewer)",
            lim.rlim_max,
            lim.rlim_max.saturating_sub(OTHER_FILES) / 2
        )));
    }
    lim.rlim_cur = lim.rlim_max;
    // setrlimit reads one rlimit from `lim`.
    syscall!(setrlimit(libc::RLIMIT_NOFILE, &lim)).map(drop)
}

/// Opens `n` loopback connections: (client sides, server sides), index-aligned
/// only in count.
fn connect_pairs(n: usize) -> io::Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    // std listens with a backlog of 128; listen again for a deeper queue.
    syscall!(listen(listener.as_raw_fd(), 4096))?;
    let addr: SocketAddr = listener.local_addr()?;
    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    while clients.len() < n {
        let batch = CONNECT_BATCH.min(n - clients.len());
        for _ in 0..batch {
            clients.push(TcpStream::connect(addr)?);
        }
        for _ in 0..batch {
            let (s, _) = listener.accept()?;
            // A server sends small frames without waiting for ACKs.
            s.set_nodelay(true)?;
            servers.push(s);
        }
    }
    for c in &clients {
        c.set_nonblocking(true)?;
    }
    Ok((clients, servers))
}

/// What the reader thread measured.
struct ReaderReport {
    /// CPU time from the start of the recorded rounds to the end of the drain.
    cpu: Duration,
}

/// Drains every client socket until `stop`; counts bytes into `received`.
/// When `recording` turns true, the CPU clock is read as the baseline.
fn reader(
    clients: Vec<TcpStream>,
    cpu: usize,
    received: Arc<AtomicU64>,
    recording: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> io::Result<ReaderReport> {
    pin_to(cpu).map_err(|e| io::Error::other(format!("pinning the reader to CPU {cpu}: {e}")))?;
    let epfd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
    let epoll = EpollFd(epfd);
    for (i, c) in clients.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        // epoll_ctl reads one epoll_event from `ev`; both fds are open.
        syscall!(epoll_ctl(
            epoll.0,
            libc::EPOLL_CTL_ADD,
            c.as_raw_fd(),
            &mut ev
        ))?;
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 << 10];
    let mut start: Option<Duration> = None;
    while !stop.load(Ordering::Acquire) {
        if start.is_none() && recording.load(Ordering::Acquire) {
            start = Some(thread_cpu());
        }
        // epoll_wait writes at most `events.len()` entries into `events`.
        let n = match syscall!(epoll_wait(
            epoll.0,
            events.as_mut_ptr(),
            events.len() as i32,
            20
        )) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for ev in &events[..n] {
            let mut sock = &clients[ev.u64 as usize];
            // Edge-triggered: read until the socket is empty.
            loop {
                match sock.read(&mut buf) {
                    Ok(0) => break,
                    Ok(got) => {
                        received.fetch_add(got as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let end = thread_cpu();
    Ok(ReaderReport {
        cpu: end - start.unwrap_or(end),
    })
}

/// Owns an epoll fd; closes it on drop.
struct EpollFd(RawFd);

impl Drop for EpollFd {
    fn drop(&mut self) {
        // Nothing useful to do if close fails.
        let _ = syscall!(close(self.0));
    }
}

/// Totals of the recorded rounds.
struct SendReport {
    /// Wall time of each recorded round, in order.
    round_wall: Vec<Duration>,
    /// Sender thread CPU over the recorded rounds.
    cpu: Duration,
    /// Wall time from the first recorded round's start to the last one's end.
    wall: Duration,
    /// Sends that completed with fewer bytes than the frame, or an error.
    failed: u64,
    /// The first failure's result, for the message.
    first_failure: Option<i32>,
}

/// Runs the warm-up and recorded rounds on the calling (pinned) thread.
fn send_rounds(
    args: &Args,
    servers: &[TcpStream],
    frame: &[u8],
    recording: &AtomicBool,
) -> io::Result<SendReport> {
    let n = servers.len();
    let sq_entries = (n as u32).next_power_of_two().min(MAX_SQ_ENTRIES);
    let cq_entries = (n as u32).next_power_of_two().max(2 * sq_entries);
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(cq_entries)
        .build(sq_entries)
        .map_err(|e| io::Error::other(format!("io_uring setup: {e}")))?;
    let fds: Vec<RawFd> = servers.iter().map(AsRawFd::as_raw_fd).collect();
    if args.fixed_files {
        ring.submitter().register_files(&fds)?;
    }
    if args.write_fixed {
        let iov = libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        };
        // SAFETY: `frame` is borrowed for the whole function and the ring is
        // dropped at its end, which unregisters the buffer before `frame` can go.
        unsafe { ring.submitter().register_buffers(&[iov]) }?;
    }
    let len = frame.len() as u32;
    let mut report = SendReport {
        round_wall: Vec::with_capacity(args.rounds),
        cpu: Duration::ZERO,
        wall: Duration::ZERO,
        failed: 0,
        first_failure: None,
    };
    let mut cpu0 = Duration::ZERO;
    let mut wall0 = Instant::now();
    for round in 0..args.warmup + args.rounds {
        if round == args.warmup {
            recording.store(true, Ordering::Release);
            cpu0 = thread_cpu();
            wall0 = Instant::now();
        }
        let t0 = Instant::now();
        let (mut pushed, mut done) = (0usize, 0usize);
        while done < n {
            {
                let mut sq = ring.submission();
                while pushed < n && !sq.is_full() {
                    let sqe = match (args.write_fixed, args.fixed_files) {
                        (false, true) => {
                            opcode::Send::new(types::Fixed(pushed as u32), frame.as_ptr(), len)
                                .flags(libc::MSG_NOSIGNAL)
                                .build()
                        }
                        (false, false) => {
                            opcode::Send::new(types::Fd(fds[pushed]), frame.as_ptr(), len)
                                .flags(libc::MSG_NOSIGNAL)
                                .build()
                        }
                        (true, true) => opcode::WriteFixed::new(
                            types::Fixed(pushed as u32),
                            frame.as_ptr(),
                            len,
                            0,
                        )
                        .build(),
                        (true, false) => {
                            opcode::WriteFixed::new(types::Fd(fds[pushed]), frame.as_ptr(), len, 0)
                                .build()
                        }
                    }
                    .user_data(pushed as u64);
                    // SAFETY: the SQE points at `frame` and at a socket of
                    // `servers` (or its fixed-file slot); both outlive the
                    // send, because this loop reaps every completion of the
                    // round before `frame` or `servers` can be dropped.
                    unsafe { sq.push(&sqe) }.expect("the queue was not full");
                    pushed += 1;
                }
            }
            // All of the round fits the SQ for N <= 32768: one enter per
            // round, which submits every SQE and waits for every completion.
            let in_flight = pushed - done;
            let want = if pushed == n { in_flight } else { 1 };
            ring.submit_and_wait(want)?;
            for cqe in ring.completion() {
                done += 1;
                if cqe.result() != len as i32 {
                    report.failed += 1;
                    report.first_failure.get_or_insert(cqe.result());
                }
            }
        }
        if round >= args.warmup {
            report.round_wall.push(t0.elapsed());
        }
    }
    report.cpu = thread_cpu() - cpu0;
    report.wall = wall0.elapsed();
    Ok(report)
}

/// The nearest-rank `p` quantile (0 < p <= 1) of sorted values.
fn quantile(sorted: &[Duration], p: f64) -> Duration {
    debug_assert!(!sorted.is_empty() && p > 0.0 && p <= 1.0);
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn run(args: &Args) -> io::Result<()> {
    ensure_open_files(2 * args.conns as u64 + OTHER_FILES)?;
    let frame = make_frame(args.size);
    let (clients, servers) = connect_pairs(args.conns)?;
    let received = Arc::new(AtomicU64::new(0));
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let reader_thread = {
        let (received, recording, stop) = (received.clone(), recording.clone(), stop.clone());
        let cpu = args.reader_cpu;
        thread::Builder::new()
            .name("reader".into())
            .spawn(move || reader(clients, cpu, received, recording, stop))?
    };

    let sent = pin_to(args.cpu)
        .map_err(|e| io::Error::other(format!("pinning the sender to CPU {}: {e}", args.cpu)))
        .and_then(|()| send_rounds(args, &servers, &frame, &recording));

    // Let the reader see every byte before it stops, then collect it.
    let expected = (args.conns * (args.warmup + args.rounds) * args.size) as u64;
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while sent.is_ok()
        && received.load(Ordering::Relaxed) < expected
        && Instant::now() < deadline
        && !reader_thread.is_finished()
    {
        thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Release);
    let read = reader_thread.join().expect("reader thread panicked")?;
    let sent = sent?;
    let got = received.load(Ordering::Relaxed);

    let sends = (args.conns * args.rounds) as f64;
    let mut sorted = sent.round_wall.clone();
    sorted.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let cpu_per_send = us(sent.cpu) / sends;
    let reader_per_send = us(read.cpu) / sends;
    let (p50, p99, max) = (
        quantile(&sorted, 0.50),
        quantile(&sorted, 0.99),
        *sorted.last().expect("at least one round"),
    );
    let rate = sends / sent.wall.as_secs_f64();
    if args.json {
        let round3 = |v: f64| (v * 1e3).round() / 1e3;
        let report = FloorJson {
            conns: args.conns,
            rounds: args.rounds,
            warmup: args.warmup,
            size: args.size,
            fixed_files: args.fixed_files,
            op: if args.write_fixed {
                "write-fixed"
            } else {
                "send"
            },
            sender_cpu: args.cpu,
            reader_cpu: args.reader_cpu,
            sends: sends as u64,
            sender_cpu_us_per_send: round3(cpu_per_send),
            reader_cpu_us_per_send: round3(reader_per_send),
            round_wall_ms_p50: round3(ms(p50)),
            round_wall_ms_p99: round3(ms(p99)),
            round_wall_ms_max: round3(ms(max)),
            sends_per_s: rate.round() as u64,
            failed_sends: sent.failed,
            bytes_expected: expected,
            bytes_received: got,
        };
        println!(
            "{}",
            serde_json::to_string(&report).expect("a report serializes")
        );
    } else {
        println!(
            "raw io_uring fan-out floor: {} loopback TCP connections, {}-byte frames, \
             {} rounds (+{} warm-up), {}{}",
            args.conns,
            args.size,
            args.rounds,
            args.warmup,
            if args.write_fixed {
                "WRITE_FIXED"
            } else {
                "SEND"
            },
            if args.fixed_files {
                ", fixed files"
            } else {
                ""
            }
        );
        println!(
            "  sender (CPU {}):   {:.2} us CPU per send ({:.0} sends per CPU-second)",
            args.cpu,
            cpu_per_send,
            1e6 / cpu_per_send
        );
        println!(
            "  round wall time:  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} sends each)",
            ms(p50),
            ms(p99),
            ms(max),
            args.conns
        );
        println!("  throughput:       {rate:.0} sends/s");
        println!(
            "  reader (CPU {}):   {:.2} us CPU per send",
            args.reader_cpu, reader_per_send
        );
        println!(
            "  delivered:        {got} of {expected} bytes, {} failed sends",
            sent.failed
        );
    }
    if sent.failed > 0 {
        return Err(io::Error::other(format!(
            "{} sends did not complete whole (first result {:?}, frame {} bytes)",
            sent.failed, sent.first_failure, args.size
        )));
    }
    if got != expected {
        return Err(io::Error::other(format!(
            "the reader received {got} bytes, {expected} were sent"
        )));
    }
    Ok(())
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("raw_uring_floor: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("raw_uring_floor: {e}");
        std::process::exit(1);
    }
}

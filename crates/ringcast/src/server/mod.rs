//! The daemon's life cycle: listeners, reactor threads, start-up report,
//! graceful shutdown.
//!
//! Start: one SO_REUSEPORT listener per reactor is bound on the calling
//! thread (so "port in use" is reported before any thread starts); each
//! reactor thread pins itself, builds its own ring and registers the shared
//! frame region; the engine then hands every reactor the ring fds of all the
//! others (for MSG_RING wake-ups) and they start serving.
//!
//! Stop: [`Engine::shutdown`] raises a flag each reactor sees on its next
//! tick (at most 50 ms): it stops accepting, queues ERROR 8 behind what each
//! connection is owed, flushes for up to `shutdown_timeout`, closes, and
//! returns its ring. Rings are closed only once every reactor has stopped.

mod notify;
pub use notify::notify;

use crate::core::{Front, Msg, Shared};
use crate::mailbox;
use crate::pool::Pool;
use crate::reactor::{Reactor, ReactorParts, RingFeatures, Stopped};
use crate::stats::Stats;
use crate::sys;
use crate::Config;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Capacity of each core-to-core queue.
const MAILBOX_SLOTS: usize = 16 * 1024;
/// File descriptors kept free of connections (logs, files), besides four
/// per reactor (three listeners, a ring, a spare) and the HTTP allowance.
const FD_RESERVE: u64 = 64;
/// Input a connection may hold beyond one whole frame (while it waits for a
/// topic's owner core, see the reactor).
pub(crate) const PAUSED_SLACK: usize = 64 * 1024;
/// Most reactors: the owner's subscriber-core set is a u64 bitmask.
pub const MAX_CORES: usize = 64;

/// Why the engine could not start or stopped with an error.
#[derive(Debug)]
pub enum Error {
    /// A configuration value is out of range.
    Config(String),
    /// The listen address is taken by another process (the flag that sets it).
    AddrInUse(SocketAddr, &'static str),
    /// Binding or listening failed for another reason.
    Listen(SocketAddr, io::Error),
    /// A reactor could not set up its ring or its memory.
    Reactor(usize, io::Error),
    /// Pinning a reactor thread to its CPU failed.
    Pin(usize, io::Error),
    /// Frame memory could not be mapped.
    Pool(io::Error),
    /// A reactor thread panicked.
    Panicked(usize),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid configuration: {m}"),
            Error::AddrInUse(a, flag) => write!(
                f,
                "port {} in use: something already listens on {a}; stop it or pick another with {flag}",
                a.port()
            ),
            Error::Listen(a, e) => write!(f, "cannot listen on {a}: {e}"),
            Error::Reactor(i, e) => write!(f, "reactor {i}: {e}"),
            Error::Pin(cpu, e) => write!(f, "cannot pin a reactor to CPU {cpu}: {e} (see --cpus; `nproc` lists CPUs)"),
            Error::Pool(e) => write!(f, "cannot map frame memory: {e} (lower --pool-size)"),
            Error::Panicked(i) => write!(f, "reactor {i} panicked (a bug: please report it with the log above)"),
        }
    }
}

impl std::error::Error for Error {}

/// What a graceful shutdown delivered: [`Engine::finish`].
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    /// Connections the shutdown timeout ended before they had everything
    /// they were owed (0: every owed byte was handed to the kernel and the
    /// connection closed in order).
    pub unflushed_conns: u64,
    /// Bytes those connections were still owed: dropped from ringcast's
    /// queues, or unsent in the kernel's send buffer when they were reset.
    pub unflushed_bytes: u64,
    /// The counters once every reactor stopped.
    pub stats: Stats,
}

/// How [`run_daemon`] ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A graceful shutdown completed (its timeout may have hit: see the report).
    Stopped(Box<ShutdownReport>),
    /// A second SIGINT or SIGTERM (the signal number) arrived during the
    /// graceful shutdown: the process should exit at once, with
    /// [`Outcome::exit_code`]; reactors are still running.
    Interrupted(i32),
}

impl Outcome {
    /// The process exit code: 0 after a graceful shutdown, 128 + the signal
    /// number (130 SIGINT, 143 SIGTERM) when a second signal cut it short.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Stopped(_) => 0,
            Outcome::Interrupted(sig) => (128 + sig) as u8,
        }
    }
}

/// A running engine: reactor threads serving the native protocol.
pub struct Engine {
    /// The NATS relay's thread, when `--nats` is set.
    relay: Option<JoinHandle<()>>,
    addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    resp_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<Stopped, Error>>>,
    features: RingFeatures,
}

fn validate(c: &Config) -> Result<(), Error> {
    let bad = |m: String| Err(Error::Config(m));
    if c.cores == 0 || c.cores > MAX_CORES {
        return bad(format!("--cores must be 1 to {MAX_CORES}, got {}", c.cores));
    }
    if c.max_frame < 64 || c.max_frame > 256 << 20 {
        return bad(format!(
            "--max-frame must be 64 B to 256 MiB, got {}",
            c.max_frame
        ));
    }
    if c.max_backlog < c.max_frame as usize + 64 {
        return bad(format!(
            "--max-backlog ({}) must exceed --max-frame ({}): one frame must fit a subscriber's queue",
            c.max_backlog, c.max_frame
        ));
    }
    if c.pool_bytes < (1 << 20) * c.cores || c.pool_bytes > 1 << 30 {
        return bad(format!(
            "--pool-size must be 1 MiB per reactor to 1 GiB, got {}",
            c.pool_bytes
        ));
    }
    if c.max_subscriptions == 0 || c.max_connections == 0 || c.max_topics == 0 {
        return bad(
            "--max-subscriptions, --max-connections and --max-topics must be at least 1".into(),
        );
    }
    if let Some(ws) = c.ws_listen {
        if ws == c.listen && ws.port() != 0 {
            return bad(format!(
                "--ws-listen and --listen are both {ws}: give the WebSocket listener its own port (or --ws-listen off)"
            ));
        }
    }
    if let Some(resp) = c.resp_listen {
        if resp.port() != 0 && (resp == c.listen || Some(resp) == c.ws_listen) {
            return bad(format!(
                "--resp-listen is {resp}, the address of another listener: give the Redis front its own port (or --resp-listen off)"
            ));
        }
    }
    let secs = |d: std::time::Duration| d.as_secs_f64();
    if c.ws_ping_interval.as_millis() < 100 || c.ws_idle_timeout <= c.ws_ping_interval {
        return bad(format!(
            "--ws-ping-interval ({}s) must be at least 0.1s and below --ws-idle-timeout ({}s)",
            secs(c.ws_ping_interval),
            secs(c.ws_idle_timeout)
        ));
    }
    if c.http_timeout.as_millis() < 100 {
        return bad(format!(
            "--http-timeout must be at least 0.1s, got {}s",
            secs(c.http_timeout)
        ));
    }
    if c.frame_timeout.as_millis() < 100 {
        return bad(format!(
            "--frame-timeout must be at least 0.1s, got {}s",
            secs(c.frame_timeout)
        ));
    }
    if c.close_linger.as_millis() < 100 {
        return bad(format!(
            "--close-linger must be at least 0.1s, got {}s",
            secs(c.close_linger)
        ));
    }
    if c.max_incomplete < (c.max_frame as usize + PAUSED_SLACK) * c.cores {
        return bad(format!(
            "--max-incomplete ({}) must hold one largest frame per reactor: at least {} for --max-frame {} and {} reactors",
            c.max_incomplete,
            (c.max_frame as usize + PAUSED_SLACK) * c.cores,
            c.max_frame,
            c.cores
        ));
    }
    if c.http_reserve == 0 {
        return bad("--http-reserve must be at least 1".into());
    }
    if !c.nats.is_empty() {
        validate_nats(c).map_err(Error::Config)?;
    }
    Ok(())
}

/// The NATS settings, checked at start so that a mistake fails there with
/// a message rather than in the relay's reconnection loop.
fn validate_nats(c: &Config) -> Result<(), String> {
    let p = &c.nats_prefix;
    if p.is_empty()
        || p.split('.').any(|t| {
            t.is_empty() || t.contains(['*', '>']) || t.bytes().any(|b| b <= b' ' || b >= 0x7f)
        })
    {
        return Err(format!(
            "--nats-prefix {p:?} must be NATS subject tokens separated by dots (no spaces, '*', '>' or empty tokens)"
        ));
    }
    for url in &c.nats {
        let rest = url
            .split_once("://")
            .map_or(url.as_str(), |(scheme, rest)| {
                if matches!(scheme, "nats" | "tls" | "ws" | "wss") {
                    rest
                } else {
                    ""
                }
            });
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(format!(
                "--nats {url:?} is not a NATS server URL (nats://host:port, tls://host:port, or host:port)"
            ));
        }
    }
    if c.nats_tls_cert.is_some() != c.nats_tls_key.is_some() {
        return Err("--nats-tls-cert and --nats-tls-key go together".into());
    }
    for (flag, file) in [
        ("--nats-tls-ca", &c.nats_tls_ca),
        ("--nats-tls-cert", &c.nats_tls_cert),
        ("--nats-tls-key", &c.nats_tls_key),
    ] {
        if let Some(path) = file {
            let bytes =
                std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
            if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
                return Err(format!(
                    "{flag} {}: not a PEM file (a DER one converts with `openssl x509 -inform der`)",
                    path.display()
                ));
            }
        }
    }
    if let Some(path) = &c.nats_creds {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--nats-creds {}: {e}", path.display()))?;
        if !text.contains("BEGIN NATS USER JWT") || !text.contains("BEGIN USER NKEY SEED") {
            return Err(format!(
                "--nats-creds {}: not a NATS credentials file (it needs the user JWT and the NKEY seed blocks, as `nsc generate creds` writes them)",
                path.display()
            ));
        }
    }
    Ok(())
}

impl Engine {
    /// Starts the reactors; returns once every one is serving.
    pub fn start(mut config: Config) -> Result<Engine, Error> {
        validate(&config)?;
        sys::ignore_sigpipe();
        sys::raise_nofile_limit();
        // Each connection is one fd; keep room for listeners, rings, spare
        // descriptors, files, and the plain HTTP connections (counted apart).
        let reserve = FD_RESERVE + 5 * config.cores as u64 + config.http_reserve as u64;
        let fd_room = sys::nofile_limit().saturating_sub(reserve) as usize;
        config.max_connections = config.max_connections.min(fd_room.max(1));
        let cores = config.cores;
        let takeover = config.takeover;
        let (listeners, addr) = bind_all(config.listen, cores, "--listen", takeover)?;
        let (ws_listeners, ws_addr): (Vec<Option<OwnedFd>>, _) = match config.ws_listen {
            Some(a) => {
                let (l, a) = bind_all(a, cores, "--ws-listen", takeover)?;
                (l.into_iter().map(Some).collect(), Some(a))
            }
            None => ((0..cores).map(|_| None).collect(), None),
        };
        let (resp_listeners, resp_addr): (Vec<Option<OwnedFd>>, _) = match config.resp_listen {
            Some(a) => {
                let (l, a) = bind_all(a, cores, "--resp-listen", takeover)?;
                (l.into_iter().map(Some).collect(), Some(a))
            }
            None => ((0..cores).map(|_| None).collect(), None),
        };
        // Largest DATA frame: a PUBLISH of max_frame bytes plus seq and ts.
        let max_data = config.max_frame as usize + 4 + 16;
        let pool = Pool::new(config.pool_bytes, cores, max_data).map_err(Error::Pool)?;
        let relay_on = !config.nats.is_empty();
        let node = config.node_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            format!("{host}:{}", addr.port())
        });
        let relay_queue = config.relay_queue;
        let mut shared = Shared::new(config, pool, sys::realtime_ns());
        // How reactors wake the relay: a datagram on a socket pair (the
        // relay's end is read by its tokio runtime).
        let relay_wake = if relay_on {
            let (tx, rx) = std::os::unix::net::UnixDatagram::pair()
                .and_then(|(tx, rx)| {
                    tx.set_nonblocking(true)?;
                    rx.set_nonblocking(true)?;
                    Ok((tx, rx))
                })
                .map_err(|e| Error::Reactor(0, e))?;
            shared.relay_wake = Some(tx);
            Some(rx)
        } else {
            None
        };
        let shared = Arc::new(shared);
        // Queues between each reactor and the relay, both ways.
        let mut relay_ends = Vec::new();
        let mut reactor_relay: Vec<Option<(mailbox::Producer<_>, mailbox::Consumer<Msg>)>> =
            Vec::new();
        for _ in 0..cores {
            if relay_on {
                let (to_relay, from_core) = mailbox::channel(relay_queue);
                let (to_core, from_relay) = mailbox::channel(relay_queue);
                relay_ends.push((from_core, to_core));
                reactor_relay.push(Some((to_relay, from_relay)));
            } else {
                reactor_relay.push(None);
            }
        }
        let mut reactor_relay = reactor_relay.into_iter();

        // queues[from][to]
        let mut producers: Vec<Vec<Option<mailbox::Producer<_>>>> =
            (0..cores).map(|_| Vec::new()).collect();
        let mut consumers: Vec<Vec<Option<mailbox::Consumer<_>>>> = (0..cores)
            .map(|_| (0..cores).map(|_| None).collect())
            .collect();
        for (from, prod) in producers.iter_mut().enumerate() {
            for (to, cons) in consumers.iter_mut().enumerate() {
                if from == to {
                    prod.push(None);
                } else {
                    let (tx, rx) = mailbox::channel(MAILBOX_SLOTS);
                    prod.push(Some(tx));
                    cons[from] = Some(rx);
                }
            }
        }

        let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<(i32, RingFeatures), Error>)>();
        let (running_tx, running_rx) = mpsc::channel::<usize>();
        let mut go_txs = Vec::with_capacity(cores);
        let mut threads = Vec::with_capacity(cores);
        let cpus = shared.config.cpus.clone();
        for (id, ((((listener, ws_listener), resp_listener), outboxes), inboxes)) in listeners
            .into_iter()
            .zip(ws_listeners)
            .zip(resp_listeners)
            .zip(producers)
            .zip(consumers)
            .enumerate()
        {
            let (go_tx, go_rx) = mpsc::channel::<Option<Vec<i32>>>();
            go_txs.push(go_tx);
            let mut fronts = vec![(listener, Front::Native)];
            fronts.extend(ws_listener.map(|l| (l, Front::Web)));
            fronts.extend(resp_listener.map(|l| (l, Front::Resp)));
            let parts = ReactorParts {
                id,
                shared: shared.clone(),
                listeners: fronts,
                outboxes,
                inboxes,
                relay: reactor_relay.next().flatten(),
            };
            let ready = ready_tx.clone();
            let running = running_tx.clone();
            let cpu = (!cpus.is_empty()).then(|| cpus[id % cpus.len()]);
            let t = std::thread::Builder::new()
                .name(format!("ringcast-r{id}"))
                .spawn(move || -> Result<Stopped, Error> {
                    if let Some(cpu) = cpu {
                        if let Err(e) = sys::pin_current_thread(cpu) {
                            let _ = ready.send((id, Err(Error::Pin(cpu, e))));
                            return Err(Error::Pin(cpu, io::Error::other("pinning failed")));
                        }
                    }
                    let reactor = match Reactor::new(parts) {
                        Ok(r) => r,
                        Err(e) => {
                            let msg = e.to_string();
                            let _ = ready.send((id, Err(Error::Reactor(id, e))));
                            return Err(Error::Reactor(id, io::Error::other(msg)));
                        }
                    };
                    let _ = ready.send((id, Ok((reactor.ring_fd(), reactor.features()))));
                    match go_rx.recv() {
                        Ok(Some(fds)) => reactor
                            .run(fds, move || {
                                let _ = running.send(id);
                            })
                            .map_err(|e| Error::Reactor(id, e)),
                        _ => Err(Error::Reactor(id, io::Error::other("start aborted"))),
                    }
                })
                .map_err(|e| Error::Reactor(id, e))?;
            threads.push(t);
        }
        drop(ready_tx);
        let mut fds = vec![-1; cores];
        let mut features = RingFeatures::default();
        let mut first_err = None;
        for _ in 0..cores {
            match ready_rx.recv() {
                Ok((id, Ok((fd, f)))) => {
                    fds[id] = fd;
                    features = f;
                }
                Ok((_, Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(Error::Panicked(0));
                }
            }
        }
        if let Some(e) = first_err {
            for tx in go_txs {
                let _ = tx.send(None);
            }
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
        // The relay starts once the reactors' rings exist (it wakes them).
        let relay = match relay_wake {
            Some(wake) => {
                let (from_cores, to_cores) = relay_ends.into_iter().unzip();
                let parts = crate::relay::RelayParts {
                    shared: shared.clone(),
                    from_cores,
                    to_cores,
                    ring_fds: fds.clone(),
                    wake,
                    node,
                };
                Some(
                    std::thread::Builder::new()
                        .name("ringcast-relay".into())
                        .spawn(move || crate::relay::run(parts))
                        .map_err(|e| Error::Reactor(0, e))?,
                )
            }
            None => None,
        };
        for tx in go_txs {
            let _ = tx.send(Some(fds.clone()));
        }
        // Serving means every reactor is inside its loop (what /healthz
        // reports), not merely set up.
        drop(running_tx);
        for _ in 0..cores {
            if running_rx.recv().is_err() {
                let mut engine = Engine {
                    relay,
                    addr,
                    ws_addr,
                    resp_addr,
                    shared,
                    threads,
                    features,
                };
                // A reactor failed before running: stop the others.
                engine.shutdown();
                return Err(engine.join().err().unwrap_or(Error::Panicked(0)));
            }
        }
        Ok(Engine {
            relay,
            addr,
            ws_addr,
            resp_addr,
            shared,
            threads,
            features,
        })
    }

    /// The bound TCP address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound WebSocket/HTTP address, when that listener is on.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The bound Redis-compatible (RESP) address, when that listener is on.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.resp_addr
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        Stats::sum(
            &self.shared.stats,
            self.shared.pool.heap_frames(),
            self.shared.topics.load(Ordering::Relaxed) as u64,
        )
    }

    /// Connections open now (plain HTTP ones included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
            + self.shared.http_connections.load(Ordering::Relaxed)
    }

    /// Begins a graceful shutdown; [`Engine::wait`] returns when it is done.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
    }

    /// Waits for every reactor to stop (after [`Engine::shutdown`]).
    pub fn wait(self) -> Result<(), Error> {
        self.finish().map(|_| ())
    }

    /// Waits for every reactor to stop (after [`Engine::shutdown`]) and
    /// says what the shutdown left undelivered.
    pub fn finish(mut self) -> Result<ShutdownReport, Error> {
        self.join()?;
        let cores = &self.shared.stats;
        let sum = |f: fn(&crate::stats::CoreStats) -> &std::sync::atomic::AtomicU64| {
            cores.iter().map(|c| f(c).load(Ordering::Relaxed)).sum()
        };
        Ok(ShutdownReport {
            unflushed_conns: sum(|c| &c.unflushed_conns),
            unflushed_bytes: sum(|c| &c.unflushed_bytes),
            stats: self.stats(),
        })
    }

    fn join(&mut self) -> Result<(), Error> {
        let mut stopped = Vec::new();
        let mut result = Ok(());
        let clean = !self.threads.is_empty();
        for (i, t) in self.threads.drain(..).enumerate() {
            match t.join() {
                Ok(Ok(s)) => stopped.push(s),
                Ok(Err(e)) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
                Err(_) => {
                    if result.is_ok() {
                        result = Err(Error::Panicked(i));
                    }
                }
            }
        }
        // Every reactor has stopped: the relay ends too (it gives back what
        // was still queued to it).
        self.shared.relay_stop.store(true, Ordering::SeqCst);
        if let Some(tx) = &self.shared.relay_wake {
            let _ = tx.send(&[1]);
        }
        if let Some(t) = self.relay.take() {
            let _ = t.join();
        }
        // Every reactor has stopped: frames still in a queue between cores
        // will never be delivered.
        let pool = &self.shared.pool;
        for s in &mut stopped {
            for inbox in s.inboxes.iter_mut().flatten() {
                while let Some(msg) = inbox.pop() {
                    msg.release(pool);
                }
            }
        }
        drop(stopped);
        // The leak check (debug builds): every frame reference handed out
        // was given back.
        if let (true, true, Some(live)) = (clean, result.is_ok(), pool.live_refs()) {
            assert_eq!(live, 0, "{live} frame references leaked by the engine");
        }
        result
    }

    /// The start-up report: every effective setting in one block.
    pub fn describe(&self) -> String {
        let c = &self.shared.config;
        let pin = if c.cpus.is_empty() {
            "not pinned".to_string()
        } else {
            let list: Vec<String> = (0..c.cores)
                .map(|i| c.cpus[i % c.cpus.len()].to_string())
                .collect();
            format!("pinned to CPUs {}", list.join(","))
        };
        let mb = |b: usize| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
        format!(
            "ringcast {} serving the native protocol\n\
             \x20 listen             {} (TCP, one SO_REUSEPORT listener per reactor)\n\
             \x20 websocket + http   {}\n\
             \x20 redis (RESP)       {}\n\
             \x20 reactors           {} ({pin}{})\n\
             \x20 io_uring           {}\n\
             \x20 max frame          {} bytes\n\
             \x20 max backlog        {} per connection (ERROR 6 past it)\n\
             \x20 max subscriptions  {} per connection (ERROR 7 past it)\n\
             \x20 max connections    {} (open-file limit {})\n\
             \x20 max topics         {} with subscribers (reclaimed when the last one leaves)\n\
             \x20 http reserve       {} more HTTP connections at the connection limit (/metrics, /healthz)\n\
             \x20 frame timeout      {:?} to complete a begun frame (ERROR 9 past it)\n\
             \x20 max incomplete     {} of incomplete frames, all connections (ERROR 9 to the largest)\n\
             \x20 close linger       {:?} to read a final ERROR while reading\n\
             \x20 frame pool         {} registered, shared by all rings\n\
             \x20 publish auth       {}\n\
             \x20 subscribe auth     {}\n\
             \x20 shutdown timeout   {:?}{}\n\
             \x20 epoch base         {} (each topic's epoch is above it)",
            env!("CARGO_PKG_VERSION"),
            self.addr,
            match self.ws_addr {
                Some(a) => format!(
                    "{a}: ws://{a}/ws (ringcast.v1), live page http://{a}/, /healthz, /metrics{}",
                    if c.allowed_origins.is_empty() {
                        String::new()
                    } else {
                        format!("; origins {}", c.allowed_origins.join(" "))
                    }
                ),
                None => "off".into(),
            },
            match self.resp_addr {
                Some(a) => format!(
                    "{a}: RESP2/RESP3 pub/sub (redis-cli -p {} SUBSCRIBE ...)",
                    a.port()
                ),
                None => "off".into(),
            },
            c.cores,
            if c.busy_poll {
                ", busy polling".to_string()
            } else if !c.idle_spin.is_zero() && c.idle_spin_fixed {
                format!(", polling {:?} after work before sleeping", c.idle_spin)
            } else if !c.idle_spin.is_zero() {
                format!(", adaptive polling (up to {:?} per gap)", c.idle_spin)
            } else {
                String::new()
            },
            self.features,
            c.max_frame,
            mb(c.max_backlog),
            c.max_subscriptions,
            c.max_connections,
            sys::nofile_limit(),
            c.max_topics,
            c.http_reserve,
            c.frame_timeout,
            mb(c.max_incomplete),
            c.close_linger,
            mb(self.shared.pool.region().1),
            if c.publish_token.is_some() {
                "token required"
            } else {
                "open"
            },
            if c.subscribe_token.is_some() {
                "token required"
            } else {
                "open"
            },
            c.shutdown_timeout,
            if c.takeover {
                " (takeover: the ports may be shared with the process being replaced)"
            } else {
                ""
            },
            self.shared.epoch,
        )
    }
}

/// Binds one SO_REUSEPORT listener per reactor on `addr` (all on the same
/// port when `addr` has port 0); `flag` names the setting in errors. With
/// `takeover` a port another process serves is shared, not refused.
fn bind_all(
    addr: SocketAddr,
    cores: usize,
    flag: &'static str,
    takeover: bool,
) -> Result<(Vec<OwnedFd>, SocketAddr), Error> {
    let in_use = |addr: SocketAddr| {
        move |e: io::Error| {
            if e.raw_os_error() == Some(libc::EADDRINUSE) {
                Error::AddrInUse(addr, flag)
            } else {
                Error::Listen(addr, e)
            }
        }
    };
    let mut addr = addr;
    if addr.port() != 0 && !takeover {
        sys::check_port_free(&addr).map_err(in_use(addr))?;
    }
    let mut listeners = Vec::with_capacity(cores);
    for _ in 0..cores {
        let l = sys::reuseport_listener(&addr, 4096).map_err(in_use(addr))?;
        addr = sys::local_addr(l.as_raw_fd()).map_err(|e| Error::Listen(addr, e))?;
        listeners.push(l);
    }
    Ok((listeners, addr))
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shutdown();
            let _ = self.join();
        }
    }
}

/// Runs the daemon in the foreground: logs the effective configuration,
/// tells systemd it is ready (`$NOTIFY_SOCKET`, once every reactor runs),
/// serves until SIGINT or SIGTERM, then shuts down gracefully. A second
/// SIGINT or SIGTERM during the shutdown returns [`Outcome::Interrupted`]
/// at once (the caller exits; the reactors are not waited for).
pub fn run_daemon(config: Config) -> Result<Outcome, Error> {
    // Block the signals before any reactor thread exists, so they inherit
    // the mask and only this thread's sigwait sees them.
    // SAFETY: sigset_t is plain data; the calls below only fill and apply it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let engine = Engine::start(config)?;
    tracing::info!(target: crate::log::TARGET, event = "start", "{}", engine.describe());
    let status = format!(
        "READY=1\nSTATUS=serving on {} with {} reactors",
        engine.local_addr(),
        engine.config().cores
    );
    if let Err(e) = notify(&status) {
        tracing::warn!(target: crate::log::TARGET, event = "notify", "cannot notify systemd ($NOTIFY_SOCKET): {e}");
    }
    let sig = wait_signal(&set, None).unwrap_or(libc::SIGTERM);
    let name = signal_name(sig);
    let timeout = engine.config().shutdown_timeout;
    let stats = engine.stats();
    tracing::info!(
        target: crate::log::TARGET,
        event = "shutdown",
        connections = engine.connections(),
        owed_bytes = stats.backlog_bytes,
        "{name} received: stopped accepting; flushing what {} connections are owed ({} bytes queued), \
         at most {timeout:?}; a second SIGINT or SIGTERM stops at once",
        engine.connections(),
        stats.backlog_bytes,
    );
    let _ = notify("STOPPING=1\nSTATUS=flushing subscribers");
    engine.shutdown();
    let connections = engine.connections();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("ringcast-stop".into())
        .spawn(move || {
            let _ = tx.send(engine.finish());
        })
        .map_err(|e| Error::Reactor(0, e))?;
    loop {
        match rx.try_recv() {
            Ok(result) => {
                let report = result?;
                log_stopped(&report, timeout);
                return Ok(Outcome::Stopped(Box::new(report)));
            }
            Err(mpsc::TryRecvError::Disconnected) => return Err(Error::Panicked(0)),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if let Some(second) = wait_signal(&set, Some(std::time::Duration::from_millis(20))) {
            let outcome = Outcome::Interrupted(second);
            tracing::warn!(
                target: crate::log::TARGET,
                event = "stopped",
                forced = true,
                "second signal ({}): stopped at once, without waiting for the flush to end \
                 ({connections} connections were open when it began); exit code {}",
                signal_name(second),
                outcome.exit_code()
            );
            return Ok(outcome);
        }
    }
}

/// The last log line of a graceful shutdown: what was delivered.
fn log_stopped(r: &ShutdownReport, timeout: std::time::Duration) {
    let s = &r.stats;
    let totals = format!(
        "{} publishes, {} deliveries, {} slow consumers cut off since start",
        s.publishes,
        s.deliveries,
        s.slow_consumers_total()
    );
    if r.unflushed_conns == 0 && r.unflushed_bytes == 0 {
        tracing::info!(
            target: crate::log::TARGET,
            event = "stopped",
            unflushed_connections = 0u64,
            unflushed_bytes = 0u64,
            "stopped: every connection was sent all it was owed ({totals})"
        );
    } else {
        tracing::warn!(
            target: crate::log::TARGET,
            event = "stopped",
            unflushed_connections = r.unflushed_conns,
            unflushed_bytes = r.unflushed_bytes,
            "stopped: the shutdown timeout ({timeout:?}) hit with {} connections still owed {} bytes, \
             not delivered ({totals})",
            r.unflushed_conns,
            r.unflushed_bytes
        );
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// Waits for a signal of `set` (blocked in every thread): at most `limit`,
/// or for ever with `None`. Returns the signal, or `None` on timeout.
fn wait_signal(set: &libc::sigset_t, limit: Option<std::time::Duration>) -> Option<i32> {
    loop {
        let rc = match limit {
            None => {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` and `sig` are valid for the call.
                match unsafe { libc::sigwait(set, &mut sig) } {
                    0 => sig,
                    _ => -1,
                }
            }
            Some(d) => {
                let ts = libc::timespec {
                    tv_sec: d.as_secs() as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                };
                // SAFETY: `set` and `ts` are valid for the call; no siginfo is asked for.
                unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) }
            }
        };
        if rc > 0 {
            return Some(rc);
        }
        let e = io::Error::last_os_error();
        if limit.is_some() && e.raw_os_error() == Some(libc::EAGAIN) {
            return None;
        }
        if e.raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> Config {
        Config {
            listen: "127.0.0.1:7400".parse().unwrap(),
            cores: 1,
            ..Config::default()
        }
    }

    fn refused(c: Config, expect: &str) {
        match validate(&c) {
            Err(Error::Config(m)) => assert!(m.contains(expect), "{m:?} lacks {expect:?}"),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn websocket_settings_are_checked_before_anything_starts() {
        assert!(validate(&config()).is_ok());
        refused(
            Config {
                ws_listen: Some("127.0.0.1:7400".parse().unwrap()),
                ..config()
            },
            "its own port",
        );
        refused(
            Config {
                ws_ping_interval: Duration::from_secs(60),
                ws_idle_timeout: Duration::from_secs(60),
                ..config()
            },
            "below --ws-idle-timeout",
        );
        refused(
            Config {
                http_timeout: Duration::from_millis(10),
                ..config()
            },
            "--http-timeout",
        );
        assert!(validate(&Config {
            ws_listen: None,
            ..config()
        })
        .is_ok());
    }

    #[test]
    fn nats_settings_are_checked_before_anything_starts() {
        let nats = |prefix: &str, url: &str| Config {
            nats: vec![url.to_string()],
            nats_prefix: prefix.to_string(),
            ..config()
        };
        for ok in [
            nats("ringcast", "nats://127.0.0.1:4222"),
            nats("prod.eu", "tls://nats.example:4443"),
            nats("a-b_c", "127.0.0.1:4222"),
        ] {
            assert!(validate(&ok).is_ok(), "{:?} {:?}", ok.nats_prefix, ok.nats);
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "tab\t"] {
            refused(nats(bad, "nats://127.0.0.1:4222"), "--nats-prefix");
        }
        for bad in ["http://127.0.0.1:4222", "nats://", "nats://a b:4222"] {
            refused(nats("ringcast", bad), "--nats ");
        }
        let dir = std::env::temp_dir().join(format!("ringcast-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let creds = |text: Option<&str>| {
            let path = dir.join("user.creds");
            let _ = std::fs::remove_file(&path);
            if let Some(t) = text {
                std::fs::write(&path, t).unwrap();
            }
            Config {
                nats_creds: Some(path),
                ..nats("ringcast", "nats://127.0.0.1:4222")
            }
        };
        refused(creds(None), "No such file");
        refused(
            creds(Some("user=a\npass=b\n")),
            "not a NATS credentials file",
        );
        let good = "-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n\n\
                    -----BEGIN USER NKEY SEED-----\nSUAM\n------END USER NKEY SEED------\n";
        assert!(validate(&creds(Some(good))).is_ok());
        let pem = dir.join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let tls = |ca: Option<&std::path::Path>,
                   cert: Option<&std::path::Path>,
                   key: Option<&std::path::Path>| Config {
            nats_tls_ca: ca.map(Into::into),
            nats_tls_cert: cert.map(Into::into),
            nats_tls_key: key.map(Into::into),
            ..nats("ringcast", "tls://127.0.0.1:4222")
        };
        assert!(validate(&tls(Some(&pem), Some(&pem), Some(&pem))).is_ok());
        refused(tls(None, Some(&pem), None), "go together");
        let der = dir.join("ca.der");
        std::fs::write(&der, [0x30, 0x82, 0x01, 0x0a]).unwrap();
        refused(tls(Some(&der), None, None), "not a PEM file");
        refused(
            tls(Some(&dir.join("missing.pem")), None, None),
            "--nats-tls-ca",
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scan_period_follows_the_finest_interval() {
        // Defaults: 20 s ping, 60 s idle, 10 s HTTP: checked once a second.
        let d = Config::default();
        assert_eq!(crate::core::idle_scan_period(&d), 1_000_000_000);
        let fine = Config {
            ws_ping_interval: Duration::from_millis(200),
            ws_idle_timeout: Duration::from_secs(1),
            ..d
        };
        assert_eq!(crate::core::idle_scan_period(&fine), 50_000_000);
    }
}

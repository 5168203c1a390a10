//! Engine configuration: every limit the daemon enforces, with its default.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything `ringcast serve` can be told. `Config::default()` is what the
/// daemon runs with when given no flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP address for the native protocol (default 127.0.0.1:7400; port 0 picks one).
    pub listen: SocketAddr,
    /// Number of reactor threads, one io_uring each (default: online CPUs).
    pub cores: usize,
    /// CPUs to pin reactors to: reactor i runs on `cpus[i % cpus.len()]`; empty: no pinning.
    pub cpus: Vec<usize>,
    /// Largest accepted frame, compared with the `len` field (default 1 MiB).
    pub max_frame: u32,
    /// Bytes queued for one connection before it is cut off with ERROR 6 (default 8 MiB).
    pub max_backlog: usize,
    /// Subscriptions one connection may hold; past it SUBSCRIBE gets ERROR 7 (default 4096).
    pub max_subscriptions: usize,
    /// Connections the engine accepts at once; past it new ones are closed at once (default 100,000).
    pub max_connections: usize,
    /// Topics with subscribers the engine tracks at once; a SUBSCRIBE that
    /// would create one more is ERROR 4 (default 1,000,000). A topic is
    /// reclaimed when its last subscriber leaves; publishing creates none.
    pub max_topics: usize,
    /// Registered frame memory shared by all rings, split evenly between reactors (default 64 MiB).
    pub pool_bytes: usize,
    /// When set, PUBLISH needs a prior AUTH with this token (ERROR 5 otherwise).
    pub publish_token: Option<Vec<u8>>,
    /// When set, SUBSCRIBE needs a prior AUTH with this token (ERROR 5 otherwise).
    pub subscribe_token: Option<Vec<u8>>,
    /// How long a graceful shutdown waits for owed frames to flush (default 5 s).
    pub shutdown_timeout: Duration,
    /// Reactors spin instead of sleeping in the kernel when idle (for dedicated cores).
    pub busy_poll: bool,
    /// Adaptive polling: the most a reactor polls (enters the kernel
    /// without waiting) per gap between inputs. It predicts the next input
    /// of a steady stream from the gaps it saw, sleeps with a timeout that
    /// ends shortly before it, then polls until it arrives (at most this
    /// long), so a steady stream pays no wake-up per message; with no
    /// stream it parks until input. Zero parks at once (no prediction).
    /// Default 200 µs.
    pub idle_spin: Duration,
    /// With `idle_spin`, poll for that long after every input instead of
    /// predicting the next one (the fixed spin, kept for comparison).
    pub idle_spin_fixed: bool,
    /// Address of the WebSocket and HTTP listener (`/ws`, `/`, `/healthz`,
    /// `/metrics`); None: no such listener (default 127.0.0.1:7401).
    pub ws_listen: Option<SocketAddr>,
    /// Address of the Redis-compatible (RESP2/RESP3 pub/sub) listener; None:
    /// no such listener (default 127.0.0.1:6380, beside a local Redis on 6379).
    pub resp_listen: Option<SocketAddr>,
    /// Origins a browser may open a WebSocket from (exact match, like
    /// `https://example.com`); empty: any origin (default).
    pub allowed_origins: Vec<String>,
    /// A WebSocket peer silent this long is sent a ping (default 20 s).
    pub ws_ping_interval: Duration,
    /// A WebSocket peer silent this long (pongs count) is closed with 1001 (default 60 s).
    pub ws_idle_timeout: Duration,
    /// An HTTP request or WebSocket handshake must arrive whole within this (default 10 s).
    pub http_timeout: Duration,
    /// A frame (native, or a WebSocket message) begun by a client must be
    /// complete within this, or the connection gets ERROR 9 and is closed (default 10 s).
    pub frame_timeout: Duration,
    /// Bytes of incomplete frames the engine holds for all connections
    /// together; past it the connection holding the most gets ERROR 9 (default 256 MiB).
    pub max_incomplete: usize,
    /// Plain HTTP connections (/metrics, /healthz, /) accepted beyond
    /// `max_connections` once it is reached, so monitoring still answers
    /// at the limit; an upgrade to WebSocket still needs a connection slot (default 64).
    pub http_reserve: usize,
    /// How long a connection being closed with an ERROR (or a WebSocket
    /// close) may take to read it, as long as it keeps reading; one that
    /// reads nothing for 2 s is closed sooner (default 10 s).
    pub close_linger: Duration,
    /// NATS servers to relay through (scale-out, docs/SCALING.md); empty:
    /// no relay, nothing of it runs (default).
    pub nats: Vec<String>,
    /// NATS credentials: a `.creds` file, user and password, or a token.
    pub nats_creds: Option<std::path::PathBuf>,
    pub nats_user: Option<String>,
    pub nats_password: Option<String>,
    pub nats_token: Option<String>,
    /// TLS to NATS: the CA that signed the servers' certificates (beside the
    /// system's roots), and a client certificate and key for servers that
    /// verify clients. Any of them makes TLS required.
    pub nats_tls_ca: Option<std::path::PathBuf>,
    pub nats_tls_cert: Option<std::path::PathBuf>,
    pub nats_tls_key: Option<std::path::PathBuf>,
    /// This node's name in relayed messages (default: host name and the
    /// native port).
    pub node_name: Option<String>,
    /// First token of every NATS subject ringcast uses (default `ringcast`).
    pub nats_prefix: String,
    /// Publishes and relayed messages waiting between a reactor and the
    /// relay, per reactor and direction; past it they are dropped, counted
    /// and reported as a gap (default 65,536).
    pub relay_queue: usize,
    /// Share the listen ports with a ringcast already serving them (an
    /// upgrade hand-over, docs/OPERATIONS.md) instead of refusing to start
    /// when they are in use (default false).
    pub takeover: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpus: Vec::new(),
            max_frame: 1 << 20,
            max_backlog: 8 << 20,
            max_subscriptions: 4096,
            max_connections: 100_000,
            max_topics: 1_000_000,
            pool_bytes: 64 << 20,
            publish_token: None,
            subscribe_token: None,
            shutdown_timeout: Duration::from_secs(5),
            busy_poll: false,
            // Chosen by measurement: docs/BENCHMARKS.md, "W0 rate sweep with
            // adaptive polling".
            idle_spin: Duration::from_micros(200),
            idle_spin_fixed: false,
            ws_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7401))),
            resp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 6380))),
            allowed_origins: Vec::new(),
            ws_ping_interval: Duration::from_secs(20),
            ws_idle_timeout: Duration::from_secs(60),
            http_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(10),
            max_incomplete: 256 << 20,
            http_reserve: 64,
            close_linger: Duration::from_secs(10),
            nats: Vec::new(),
            nats_creds: None,
            nats_user: None,
            nats_password: None,
            nats_token: None,
            nats_tls_ca: None,
            nats_tls_cert: None,
            nats_tls_key: None,
            node_name: None,
            nats_prefix: "ringcast".into(),
            relay_queue: 65_536,
            takeover: false,
        }
    }
}

//! Engine counters: one block per reactor, written only by its reactor with
//! relaxed atomics (no shared cache line on the hot path), summed on read.

use crate::proto::ErrorCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (nanoseconds, inclusive) of the buckets of the
/// publish-accepted → send-submitted latency histogram; a last bucket
/// (+Inf) catches the rest.
pub const LATENCY_BUCKETS_NS: [u64; 16] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    1_000_000_000,
];

/// Slots of the per-code error counters (index = code; 0 unused).
pub const ERROR_SLOTS: usize = 10;

/// How a connection talks to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Transport {
    /// The native protocol on the TCP port.
    Tcp = 0,
    /// RFC 6455 WebSocket on the WebSocket port, after the upgrade.
    WebSocket = 1,
    /// A connection on the WebSocket port that has not upgraded (yet):
    /// plain HTTP requests (/healthz, /metrics, /) and pending handshakes.
    Http = 2,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Tcp, Transport::WebSocket, Transport::Http];

    /// The label value used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "websocket",
            Transport::Http => "http",
        }
    }
}

/// Why a connection was cut off by the engine (not by its peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum CutReason {
    /// Its backlog passed --max-backlog (ERROR 6 / WebSocket close 1008).
    Backlog = 0,
    /// Its final ERROR (or WebSocket close) could not be handed to the
    /// kernel before the linger time ran out: it never got the reason.
    Linger = 1,
    /// A WebSocket peer sent nothing (not even a pong) for the idle timeout.
    Idle = 2,
    /// An HTTP request or WebSocket handshake did not complete in time.
    RequestTimeout = 3,
    /// A frame was begun but not completed within --frame-timeout (ERROR 9).
    IncompleteFrame = 4,
    /// Incomplete frames held more than --max-incomplete; this connection
    /// held the most (ERROR 9).
    InputMemory = 5,
}

impl CutReason {
    pub const ALL: [CutReason; 6] = [
        CutReason::Backlog,
        CutReason::Linger,
        CutReason::Idle,
        CutReason::RequestTimeout,
        CutReason::IncompleteFrame,
        CutReason::InputMemory,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CutReason::Backlog => "backlog",
            CutReason::Linger => "linger",
            CutReason::Idle => "idle",
            CutReason::RequestTimeout => "request_timeout",
            CutReason::IncompleteFrame => "incomplete_frame",
            CutReason::InputMemory => "input_memory",
        }
    }
}

/// One reactor's counters and gauges.
#[derive(Default)]
#[repr(align(64))]
pub struct CoreStats {
    pub publishes: AtomicU64,
    pub encodes: AtomicU64,
    pub deliveries: AtomicU64,
    pub sends: AtomicU64,
    pub frames_sent: AtomicU64,
    pub short_sends: AtomicU64,
    pub bytes_out: AtomicU64,
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    pub refused: AtomicU64,
    pub accept_errors: AtomicU64,
    pub recv_nobufs: AtomicU64,
    pub slow_consumers: AtomicU64,
    /// ERROR frames sent, by code (index = code).
    pub errors: [AtomicU64; ERROR_SLOTS],
    /// Open connections by [`Transport`] (gauge; may dip below zero
    /// transiently per core when a connection changes transport, never in sum).
    pub connections: [AtomicI64; 3],
    /// Subscriptions held by this core's connections (gauge).
    pub subscriptions: AtomicI64,
    /// Bytes queued for this core's connections and not yet sent (gauge).
    pub backlog_bytes: AtomicI64,
    /// Connections cut off by the engine, by [`CutReason`].
    pub cuts: [AtomicU64; CutReason::ALL.len()],
    /// Topics created (a first subscriber) and reclaimed (no subscriber left).
    pub topics_created: AtomicU64,
    pub topics_reclaimed: AtomicU64,
    /// Connections accepted only to be closed at once because the process
    /// ran out of file descriptors (the reserved-descriptor trick).
    pub fd_shed: AtomicU64,
    /// WebSocket handshakes completed / refused with an HTTP error.
    pub ws_upgrades: AtomicU64,
    pub ws_rejected: AtomicU64,
    /// HTTP requests answered (not counting upgrades), by class: 2xx, 4xx, 5xx.
    pub http_responses: [AtomicU64; 3],
    /// Loop iterations and the nanoseconds spent outside the kernel wait.
    pub loops: AtomicU64,
    pub busy_ns: AtomicU64,
    /// Publish accepted (its ts_ns) → the send carrying it submitted, per
    /// send whose first new frame is a DATA frame: bucket counts (not
    /// cumulative), then sum and count.
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS_NS.len() + 1],
    pub latency_sum_ns: AtomicU64,
    pub latency_count: AtomicU64,
}

impl CoreStats {
    pub fn count_error(&self, code: ErrorCode) {
        self.errors[code as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_cut(&self, why: CutReason) {
        self.cuts[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn gauge_connections(&self, t: Transport, delta: i64) {
        self.connections[t as usize].fetch_add(delta, Ordering::Relaxed);
    }

    /// Records one publish → submit latency sample.
    pub fn record_latency(&self, ns: u64) {
        let b = LATENCY_BUCKETS_NS.partition_point(|&le| le < ns);
        self.latency_buckets[b].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Per-reactor figures in a [`Stats`] snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    /// Event-loop iterations since start.
    pub loops: u64,
    /// Nanoseconds the reactor spent working (not waiting in the kernel).
    pub busy_ns: u64,
}

/// A snapshot of the whole engine's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// PUBLISH frames accepted.
    pub publishes: u64,
    /// DATA frames encoded (one per accepted publish: serialize once).
    pub encodes: u64,
    /// Frames queued to subscribers (one per subscriber per frame).
    pub deliveries: u64,
    /// Send operations completed.
    pub sends: u64,
    /// Frames carried by those sends (coalescing: frames_sent / sends).
    pub frames_sent: u64,
    /// Sends the socket took only part of.
    pub short_sends: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Connections accepted / closed / refused at the connection limit.
    pub accepted: u64,
    pub closed: u64,
    pub refused: u64,
    /// Subscribers cut off for passing the backlog limit.
    pub slow_consumers: u64,
    /// ERROR frames sent, by code (index = code).
    pub errors: [u64; ERROR_SLOTS],
    /// Frames that did not fit the registered pool and went to the heap.
    pub heap_frames: u64,
    /// Open connections by transport (index = [`Transport`] as usize).
    pub connections: [u64; 3],
    /// Subscriptions held, all connections.
    pub subscriptions: u64,
    /// Topics the engine tracks.
    pub topics: u64,
    /// Bytes queued for subscribers and not yet written.
    pub backlog_bytes: u64,
    /// Connections cut off by the engine, by reason (index = [`CutReason`] as usize).
    pub cuts: [u64; CutReason::ALL.len()],
    /// Failed accepts (the kernel's error, e.g. EMFILE), not counting cancels.
    pub accept_errors: u64,
    /// Connections accepted and closed at once for lack of file descriptors.
    pub fd_shed: u64,
    /// Topics created (first subscriber) and reclaimed (last subscriber gone).
    pub topics_created: u64,
    pub topics_reclaimed: u64,
    /// WebSocket handshakes completed / refused.
    pub ws_upgrades: u64,
    pub ws_rejected: u64,
    /// HTTP responses other than upgrades: 2xx, 4xx, 5xx.
    pub http_responses: [u64; 3],
    /// Per reactor, in reactor order.
    pub cores: Vec<CoreSnapshot>,
    /// Publish → send-submitted latency: counts per bucket of
    /// [`LATENCY_BUCKETS_NS`] plus a last +Inf bucket (not cumulative).
    pub latency_buckets: Vec<u64>,
    pub latency_sum_ns: u64,
    pub latency_count: u64,
}

impl Stats {
    pub(crate) fn sum(cores: &[CoreStats], heap_frames: u64, topics: u64) -> Stats {
        let mut s = Stats {
            heap_frames,
            topics,
            latency_buckets: vec![0; LATENCY_BUCKETS_NS.len() + 1],
            ..Stats::default()
        };
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed);
        let mut conns = [0i64; 3];
        let (mut subs, mut backlog) = (0i64, 0i64);
        for c in cores {
            s.publishes += r(&c.publishes);
            s.encodes += r(&c.encodes);
            s.deliveries += r(&c.deliveries);
            s.sends += r(&c.sends);
            s.frames_sent += r(&c.frames_sent);
            s.short_sends += r(&c.short_sends);
            s.bytes_out += r(&c.bytes_out);
            s.accepted += r(&c.accepted);
            s.closed += r(&c.closed);
            s.refused += r(&c.refused);
            s.accept_errors += r(&c.accept_errors);
            s.fd_shed += r(&c.fd_shed);
            s.topics_created += r(&c.topics_created);
            s.topics_reclaimed += r(&c.topics_reclaimed);
            s.slow_consumers += r(&c.slow_consumers);
            for (i, e) in c.errors.iter().enumerate() {
                s.errors[i] += r(e);
            }
            for (i, n) in c.connections.iter().enumerate() {
                conns[i] += g(n);
            }
            subs += g(&c.subscriptions);
            backlog += g(&c.backlog_bytes);
            for (i, n) in c.cuts.iter().enumerate() {
                s.cuts[i] += r(n);
            }
            s.ws_upgrades += r(&c.ws_upgrades);
            s.ws_rejected += r(&c.ws_rejected);
            for (i, n) in c.http_responses.iter().enumerate() {
                s.http_responses[i] += r(n);
            }
            s.cores.push(CoreSnapshot {
                loops: r(&c.loops),
                busy_ns: r(&c.busy_ns),
            });
            for (i, n) in c.latency_buckets.iter().enumerate() {
                s.latency_buckets[i] += r(n);
            }
            s.latency_sum_ns += r(&c.latency_sum_ns);
            s.latency_count += r(&c.latency_count);
        }
        // Gauges are updated by different cores at different moments (a
        // connection changes transport on its own core only, so per-core
        // values can be negative); clamp the sums.
        for (out, n) in s.connections.iter_mut().zip(conns) {
            *out = n.max(0) as u64;
        }
        s.subscriptions = subs.max(0) as u64;
        s.backlog_bytes = backlog.max(0) as u64;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_samples_land_in_the_first_bucket_that_holds_them() {
        let c = CoreStats::default();
        c.record_latency(1_000); // le 1µs
        c.record_latency(1_001); // le 2.5µs
        c.record_latency(2_000_000_000); // +Inf
        let s = Stats::sum(std::slice::from_ref(&c), 0, 0);
        assert_eq!(s.latency_buckets[0], 1);
        assert_eq!(s.latency_buckets[1], 1);
        assert_eq!(s.latency_buckets[LATENCY_BUCKETS_NS.len()], 1);
        assert_eq!(s.latency_count, 3);
        assert_eq!(s.latency_sum_ns, 2_000_002_001);
    }

    #[test]
    fn gauges_sum_across_cores() {
        let cores = [CoreStats::default(), CoreStats::default()];
        cores[0].gauge_connections(Transport::Http, 1);
        cores[0].gauge_connections(Transport::Http, -1);
        cores[0].gauge_connections(Transport::WebSocket, 1);
        cores[1].gauge_connections(Transport::Tcp, 2);
        let s = Stats::sum(&cores, 0, 5);
        assert_eq!(s.connections, [2, 1, 0]);
        assert_eq!(s.topics, 5);
        assert_eq!(s.cores.len(), 2);
    }
}

#![forbid(unsafe_code)]
//! Engine counters: one block per reactor, written only by its reactor with
//! relaxed atomics (no shared cache line on the hot path), summed on read.
//!
//! Every plain counter and gauge, and every family with one sample per
//! slot (by transport, by reason, by code, by class), is declared once, in
//! the `stats_table!` invocation below: that one line gives the
//! [`CoreStats`] field, the [`Stats`] field, the summing and the
//! Prometheus family (`http::metrics` renders whatever the table lists).
//! Only the per-reactor figures and the latency histogram are written by
//! hand, here and in `http::metrics`.
//!
//! Adding a counter: one entry in `per_core` (a doc comment whose first
//! paragraph is the HELP text, then `counter name => "ringcast_name_total";`),
//! then `st.name.fetch_add(1, Ordering::Relaxed)` where it happens.

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

/// Label values of the error codes, by slot (slot 0 is not exposed).
const ERROR_CODES: [&str; ERROR_SLOTS] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Label values of the HTTP response classes, by slot.
const HTTP_CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

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
    /// Redis's protocol (RESP2/RESP3) on the Redis port.
    Resp = 3,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::Tcp,
        Transport::WebSocket,
        Transport::Http,
        Transport::Resp,
    ];

    /// The label value used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "websocket",
            Transport::Http => "http",
            Transport::Resp => "resp",
        }
    }

    /// The label value of slot `i` of a by-transport array.
    fn label_at(i: usize) -> Option<&'static str> {
        Self::ALL.get(i).map(|t| t.label())
    }
}

/// How a reactor waited before a loop turn that found input (a received
/// segment, an accepted socket or a message from another core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Waited {
    /// It did not sleep: it was working or polling (`--busy-poll`,
    /// `--idle-spin`), so the input cost no wake-up.
    Polling = 0,
    /// It slept with a timeout (adaptive polling's park before a predicted
    /// input) and the input woke it first: a wake-up paid.
    Timed = 1,
    /// It slept until input: a wake-up paid.
    Parked = 2,
}

impl Waited {
    pub const ALL: [Waited; 3] = [Waited::Polling, Waited::Timed, Waited::Parked];

    pub fn label(self) -> &'static str {
        match self {
            Waited::Polling => "polling",
            Waited::Timed => "timed",
            Waited::Parked => "parked",
        }
    }

    fn label_at(i: usize) -> Option<&'static str> {
        Self::ALL.get(i).map(|w| w.label())
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

    /// The label value of slot `i` of a by-reason array.
    fn label_at(i: usize) -> Option<&'static str> {
        Self::ALL.get(i).map(|r| r.label())
    }
}

/// Kinds of RESP pushes encoded per publish, by slot.
pub const RESP_PUSH_KINDS: [&str; 3] = ["message", "pmessage", "smessage"];

fn resp_kind_at(i: usize) -> Option<&'static str> {
    RESP_PUSH_KINDS.get(i).copied()
}

fn error_code_at(i: usize) -> Option<&'static str> {
    ERROR_CODES.get(i).copied().filter(|_| i != 0)
}

fn http_class_at(i: usize) -> Option<&'static str> {
    HTTP_CLASSES.get(i).copied()
}

/// A metric family's TYPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A metric family as exposed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Family {
    pub name: &'static str,
    pub kind: Kind,
    /// Its documentation; the first paragraph, its lines joined by single
    /// spaces, is the HELP line.
    pub doc: &'static str,
}

/// The samples of a table family in a [`Stats`] snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Samples<'a> {
    /// A single unlabelled sample.
    One(u64),
    /// One sample per slot, labelled `key="label_at(slot)"`; a slot without
    /// a label value is not exposed.
    Slots {
        key: &'static str,
        label_at: fn(usize) -> Option<&'static str>,
        values: &'a [u64],
    },
}

/// The type of a [`CoreStats`] field of a table entry.
macro_rules! core_cell {
    (counter) => {
        AtomicU64
    };
    (gauge) => {
        AtomicI64
    };
    ($kind:ident [$len:expr]) => {
        [core_cell!($kind); $len]
    };
}

/// The type of a [`Stats`] field of a table entry.
macro_rules! snapshot_value {
    () => {
        u64
    };
    ([$len:expr]) => {
        [u64; $len]
    };
}

macro_rules! kind {
    (counter) => {
        Kind::Counter
    };
    (gauge) => {
        Kind::Gauge
    };
}

macro_rules! samples {
    ($v:expr;) => {
        Samples::One($v)
    };
    ($v:expr; $key:ident = $label_at:path) => {
        Samples::Slots {
            key: stringify!($key),
            label_at: $label_at,
            values: &$v,
        }
    };
}

/// Generates [`CoreStats`] and [`Stats`] (the table's fields, then the
/// hand-written ones given with the struct), `Stats::sum_cores` and
/// `Stats::families`. An entry is
///
/// ```text
/// /// HELP text, wrapped freely.
/// ///
/// /// More documentation (rustdoc only).
/// kind field[slots] by label = label_at => "metric_name";
/// ```
///
/// `kind` is `counter` (AtomicU64 per core, summed) or `gauge` (AtomicI64
/// per core, summed and clamped at 0); `[slots] by label = label_at` is
/// optional and makes an array with one sample per slot, labelled
/// `label="label_at(slot)"` (`fn(usize) -> Option<&'static str>`; `None`:
/// slot not exposed). The doc comment is required: it documents both
/// fields and its first paragraph is the HELP line. `per_core` entries have
/// a [`CoreStats`] field; `engine` entries only a [`Stats`] field, set by
/// `Stats::sum` from its argument of the same name.
macro_rules! stats_table {
    (
        $(#[$core_meta:meta])*
        pub struct CoreStats { $($core_extra:tt)* }

        $(#[$snap_meta:meta])*
        pub struct Stats { $($snap_extra:tt)* }

        per_core {$(
            $(#[doc = $doc:literal])+
            $kind:ident $field:ident $([$len:expr] by $key:ident = $label_at:path)? => $name:literal;
        )*}

        engine {$(
            $(#[doc = $edoc:literal])+
            $ekind:ident $efield:ident $([$elen:expr] by $ekey:ident = $elabel_at:path)? => $ename:literal;
        )*}
    ) => {
        $(#[$core_meta])*
        pub struct CoreStats {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!(
                    "This reactor's part of [`Stats::", stringify!($field), "`]."
                )]
                pub $field: core_cell!($kind $([$len])?),
            )*
            $($core_extra)*
        }

        $(#[$snap_meta])*
        pub struct Stats {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("Exposed as `", $name, "` (", stringify!($kind), ").")]
                pub $field: snapshot_value!($([$len])?),
            )*
            $(
                $(#[doc = $edoc])*
                #[doc = ""]
                #[doc = concat!("Exposed as `", $ename, "` (", stringify!($ekind), ").")]
                pub $efield: snapshot_value!($([$elen])?),
            )*
            $($snap_extra)*
        }

        impl Stats {
            /// Sets the `per_core` fields of the table to their sums over `cores`.
            fn sum_cores(&mut self, cores: &[CoreStats]) {
                $( self.$field = Cell::total(cores, |c| &c.$field); )*
            }

            /// The table's families and their samples, in table order.
            pub(crate) fn families(&self) -> impl Iterator<Item = (Family, Samples<'_>)> {
                [
                    $((
                        Family {
                            name: $name,
                            kind: kind!($kind),
                            doc: concat!($($doc, "\n"),*),
                        },
                        samples!(self.$field; $($key = $label_at)?),
                    ),)*
                    $((
                        Family {
                            name: $ename,
                            kind: kind!($ekind),
                            doc: concat!($($edoc, "\n"),*),
                        },
                        samples!(self.$efield; $($ekey = $elabel_at)?),
                    ),)*
                ]
                .into_iter()
            }
        }
    };
}

stats_table! {
    /// One reactor's counters and gauges.
    #[derive(Default)]
    #[repr(align(64))]
    pub struct CoreStats {
        /// Receives that completed with ENOBUFS (no provided buffer left; the
        /// receive is re-armed). Per core only: not summed, not exposed.
        pub recv_nobufs: AtomicU64,
        /// Loop iterations since start.
        pub loops: AtomicU64,
        /// Nanoseconds spent outside the kernel wait.
        pub busy_ns: AtomicU64,
        /// Publish accepted (its ts_ns) → the send carrying it submitted, per
        /// send whose first new frame is a DATA frame: bucket counts (not
        /// cumulative), then sum and count.
        pub latency_buckets: [AtomicU64; LATENCY_BUCKETS_NS.len() + 1],
        /// Sum of the latency samples, nanoseconds.
        pub latency_sum_ns: AtomicU64,
        /// Number of latency samples.
        pub latency_count: AtomicU64,
        /// Connections a graceful shutdown ended before they had everything
        /// they were owed (its timeout hit). Read once the reactor stopped.
        pub unflushed_conns: AtomicU64,
        /// The bytes those connections were still owed: dropped from their
        /// queues, or in the kernel's send buffer when they were reset.
        pub unflushed_bytes: AtomicU64,
    }

    /// A snapshot of the whole engine's counters.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Stats {
        /// Per reactor, in reactor order.
        pub cores: Vec<CoreSnapshot>,
        /// Publish → send-submitted latency: counts per bucket of
        /// [`LATENCY_BUCKETS_NS`] plus a last +Inf bucket (not cumulative).
        pub latency_buckets: Vec<u64>,
        /// Sum of the latency samples, nanoseconds.
        pub latency_sum_ns: u64,
        /// Number of latency samples.
        pub latency_count: u64,
    }

    per_core {
        /// Open connections by transport (http: not upgraded to WebSocket).
        ///
        /// Index: [`Transport`] as usize. Per core a slot may dip below zero
        /// when a connection changes transport (on its own core); never in
        /// the sum.
        gauge connections[Transport::ALL.len()] by transport = Transport::label_at
            => "ringcast_connections";
        /// Connections accepted.
        counter accepted => "ringcast_connections_accepted_total";
        /// Connections closed.
        counter closed => "ringcast_connections_closed_total";
        /// Connections refused at the connection limit.
        counter refused => "ringcast_connections_refused_total";
        /// Accepts that failed in the kernel (EMFILE, ENFILE, ENOMEM, ...).
        ///
        /// Cancelled accepts are not counted.
        counter accept_errors => "ringcast_accept_errors_total";
        /// Connections accepted and closed at once because the process was out
        /// of file descriptors.
        ///
        /// Shed with the reserved-descriptor trick.
        counter fd_shed => "ringcast_connections_shed_total";
        /// Subscribers cut off for passing the backlog limit, by transport
        /// (resp: Redis's pubsub output-buffer limit).
        ///
        /// Index: [`Transport`] as usize.
        counter slow_consumers[Transport::ALL.len()] by transport = Transport::label_at
            => "ringcast_slow_consumers_total";
        /// Event-loop turns that found input, by how the reactor had waited
        /// for it (polling: no wake-up paid; timed, parked: woken from sleep).
        ///
        /// Index: [`Waited`] as usize. Shows what `--idle-spin` catches.
        counter input_turns[Waited::ALL.len()] by waited = Waited::label_at
            => "ringcast_input_turns_total";
        /// Subscriptions held, all connections.
        gauge subscriptions => "ringcast_subscriptions";
        /// Topics created by a first subscriber.
        counter topics_created => "ringcast_topics_created_total";
        /// Topics forgotten when their last subscriber left (their seq starts
        /// again at 1 under a new epoch).
        counter topics_reclaimed => "ringcast_topics_reclaimed_total";
        /// PUBLISH frames accepted.
        counter publishes => "ringcast_publishes_total";
        /// DATA frames encoded (one per accepted publish).
        ///
        /// Serialize once: equal to `publishes`.
        counter encodes => "ringcast_encodes_total";
        /// RESP pushes encoded for publishes, by kind: one `message` (or
        /// `smessage`) per publish that has RESP subscribers, one
        /// `pmessage` per matching pattern, shared by RESP2 and RESP3.
        ///
        /// Index: [`RESP_PUSH_KINDS`].
        counter resp_encodes[RESP_PUSH_KINDS.len()] by kind = resp_kind_at
            => "ringcast_resp_encodes_total";
        /// Publishes made on this node and handed to the NATS relay (one per
        /// publish: the relay sends each to NATS once).
        counter relay_out => "ringcast_relay_out_total";
        /// Publishes from other nodes received through NATS.
        counter relay_in => "ringcast_relay_in_total";
        /// Relayed messages dropped because a queue between a reactor and
        /// the relay was full (reported to subscribers as GAP).
        counter relay_dropped => "ringcast_relay_dropped_total";
        /// Times the NATS connection came back after it was lost.
        counter relay_reconnects => "ringcast_relay_reconnects_total";
        /// GAP frames sent to subscribers (frames from other nodes may have
        /// been lost).
        counter relay_gaps => "ringcast_relay_gaps_total";
        /// Waits for the relay's NATS subscription of a topic new on this
        /// node (or of every topic, for a first pattern) that ran out before
        /// NATS confirmed it: the subscribers were confirmed anyway, with a
        /// GAP (native and WebSocket).
        counter relay_waits_expired => "ringcast_relay_waits_expired_total";
        /// RESP requests refused by the parser (the connection is closed after
        /// Redis's error reply).
        counter resp_protocol_errors => "ringcast_resp_protocol_errors_total";
        /// Frames queued to subscribers (one per subscriber per frame).
        counter deliveries => "ringcast_deliveries_total";
        /// Send operations completed.
        counter sends => "ringcast_sends_total";
        /// Frames carried by completed sends.
        ///
        /// Coalescing: `frames_sent / sends`.
        counter frames_sent => "ringcast_frames_sent_total";
        /// Sends the socket took only part of.
        counter short_sends => "ringcast_short_sends_total";
        /// Bytes written to sockets, by transport: subscriber data and
        /// replies on tcp, websocket and resp; HTTP responses (pages,
        /// /metrics, /healthz, refused handshakes) on http.
        ///
        /// Index: [`Transport`] as usize.
        counter bytes_out[Transport::ALL.len()] by transport = Transport::label_at
            => "ringcast_sent_bytes_total";
        /// Bytes queued for connections and not yet written.
        gauge backlog_bytes => "ringcast_backlog_bytes";
        /// Connections cut off by the engine, by reason.
        ///
        /// Index: [`CutReason`] as usize.
        counter cuts[CutReason::ALL.len()] by reason = CutReason::label_at
            => "ringcast_disconnects_total";
        /// ERROR frames sent, by protocol error code.
        ///
        /// Index: the code (slot 0 unused, not exposed).
        counter errors[ERROR_SLOTS] by code = error_code_at => "ringcast_errors_total";
        /// WebSocket handshakes completed.
        counter ws_upgrades => "ringcast_websocket_upgrades_total";
        /// WebSocket handshakes refused with an HTTP error.
        counter ws_rejected => "ringcast_websocket_rejected_total";
        /// HTTP responses other than WebSocket upgrades, by status class.
        ///
        /// Index: 0 = 2xx, 1 = 4xx, 2 = 5xx.
        counter http_responses[HTTP_CLASSES.len()] by class = http_class_at
            => "ringcast_http_responses_total";
    }

    engine {
        /// Topics with at least one subscriber (the engine tracks no others).
        gauge topics => "ringcast_topics";
        /// Frames that did not fit the registered pool and went to the heap.
        counter heap_frames => "ringcast_heap_frames_total";
    }
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

    /// Counts `conns` connections ended by the shutdown timeout owed `bytes`.
    pub fn count_unflushed(&self, conns: u64, bytes: u64) {
        self.unflushed_conns.fetch_add(conns, Ordering::Relaxed);
        self.unflushed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records one publish → submit latency sample.
    pub fn record_latency(&self, ns: u64) {
        let b = LATENCY_BUCKETS_NS.partition_point(|&le| le < ns);
        self.latency_buckets[b].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }
}

/// A [`CoreStats`] cell and how its values add up across reactors.
trait Cell {
    type Total;
    fn total(cores: &[CoreStats], cell: impl Fn(&CoreStats) -> &Self) -> Self::Total;
}

impl Cell for AtomicU64 {
    type Total = u64;
    fn total(cores: &[CoreStats], cell: impl Fn(&CoreStats) -> &Self) -> u64 {
        cores.iter().map(|c| cell(c).load(Ordering::Relaxed)).sum()
    }
}

/// Gauges are updated by different cores at different moments (a connection
/// changes transport on its own core only, so per-core values can be
/// negative); the sum is clamped at 0.
impl Cell for AtomicI64 {
    type Total = u64;
    fn total(cores: &[CoreStats], cell: impl Fn(&CoreStats) -> &Self) -> u64 {
        let n: i64 = cores.iter().map(|c| cell(c).load(Ordering::Relaxed)).sum();
        n.max(0) as u64
    }
}

/// Slot by slot.
impl<T: Cell<Total = u64>, const N: usize> Cell for [T; N] {
    type Total = [u64; N];
    fn total(cores: &[CoreStats], cell: impl Fn(&CoreStats) -> &Self) -> [u64; N] {
        std::array::from_fn(|i| T::total(cores, |c| &cell(c)[i]))
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

impl Stats {
    /// Slow consumers cut off, all transports.
    pub fn slow_consumers_total(&self) -> u64 {
        self.slow_consumers.iter().sum()
    }

    pub(crate) fn sum(cores: &[CoreStats], heap_frames: u64, topics: u64) -> Stats {
        let mut s = Stats {
            heap_frames,
            topics,
            cores: cores
                .iter()
                .map(|c| CoreSnapshot {
                    loops: c.loops.load(Ordering::Relaxed),
                    busy_ns: c.busy_ns.load(Ordering::Relaxed),
                })
                .collect(),
            latency_buckets: Cell::total(cores, |c| &c.latency_buckets).to_vec(),
            latency_sum_ns: Cell::total(cores, |c| &c.latency_sum_ns),
            latency_count: Cell::total(cores, |c| &c.latency_count),
            ..Stats::default()
        };
        s.sum_cores(cores);
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
        assert_eq!(s.connections, [2, 1, 0, 0]);
        assert_eq!(s.topics, 5);
        assert_eq!(s.cores.len(), 2);
    }

    #[test]
    fn table_fields_sum_across_cores_and_gauges_clamp_at_zero() {
        let cores = [CoreStats::default(), CoreStats::default()];
        cores[0].publishes.fetch_add(3, Ordering::Relaxed);
        cores[1].publishes.fetch_add(4, Ordering::Relaxed);
        cores[0].subscriptions.fetch_add(2, Ordering::Relaxed);
        cores[1].subscriptions.fetch_sub(1, Ordering::Relaxed);
        cores[0].backlog_bytes.fetch_sub(5, Ordering::Relaxed);
        cores[1].backlog_bytes.fetch_add(2, Ordering::Relaxed);
        cores[0].gauge_connections(Transport::Tcp, -1);
        cores[1].count_error(ErrorCode::SlowConsumer);
        cores[0].count_cut(CutReason::Linger);
        cores[1].count_cut(CutReason::Linger);
        cores[1].http_responses[2].fetch_add(1, Ordering::Relaxed);
        cores[0].loops.fetch_add(9, Ordering::Relaxed);
        let s = Stats::sum(&cores, 8, 0);
        assert_eq!(s.publishes, 7);
        assert_eq!(s.subscriptions, 1);
        assert_eq!(s.backlog_bytes, 0, "clamped");
        assert_eq!(s.connections, [0, 0, 0, 0], "clamped slot by slot");
        assert_eq!(s.errors[ErrorCode::SlowConsumer as usize], 1);
        assert_eq!(s.cuts[CutReason::Linger as usize], 2);
        assert_eq!(s.http_responses, [0, 0, 1]);
        assert_eq!(s.heap_frames, 8);
        assert_eq!(s.cores[0].loops, 9);
    }

    #[test]
    fn the_table_lists_each_field_once_under_a_distinct_name() {
        let s = Stats::default();
        let fams: Vec<Family> = s.families().map(|(f, _)| f).collect();
        for (i, f) in fams.iter().enumerate() {
            assert!(f.name.starts_with("ringcast_"), "{}", f.name);
            assert_eq!(f.name.ends_with("_total"), f.kind == Kind::Counter);
            assert!(!f.doc.trim().is_empty(), "{} has no doc", f.name);
            assert!(
                !fams[..i].iter().any(|g| g.name == f.name),
                "{} twice",
                f.name
            );
        }
        // Slot arrays expose a label for every slot but error code 0.
        for (f, samples) in s.families() {
            if let Samples::Slots {
                label_at, values, ..
            } = samples
            {
                let unlabelled = (0..values.len()).filter(|&i| label_at(i).is_none()).count();
                let want = usize::from(f.name == "ringcast_errors_total");
                assert_eq!(unlabelled, want, "{}", f.name);
            }
        }
    }
}

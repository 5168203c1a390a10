//! `ringcast bench`: a load generator for broadcast servers that is never
//! the bottleneck: one single-threaded epoll loop per process, optionally
//! pinned, measuring its own CPU use. It speaks ringcast's native protocol,
//! ringcast over WebSocket, Redis pub/sub (RESP) and NATS, so the same
//! workload runs against each.
//!
//! With `--proto ringcast-ws` the subscribers connect to the WebSocket port
//! (`--ws-port`, or the embedded engine's), upgrade (path `/ws`, subprotocol
//! `ringcast.v1`), and receive each native frame in its own binary message
//! ([`ws`]); the publisher stays on the native TCP port, so the publish path
//! is the same as for `ringcast` and only the fan-out transport differs.
//! Accounting, latency and receive stamps are the native path's.
//!
//! # Workloads
//!
//! **steady**: `--subs` N subscriber connections, subscriber i on topic
//! i mod `--topics` C, each with one subscription. One publisher connection
//! sends `--size`-byte messages at `--rate` R messages per second in total,
//! round-robin over the topics (so each topic gets R / C per second and each
//! message goes to about N / C subscribers: R × N / C deliveries per second),
//! for `--duration` seconds or `--messages` M messages, after `--warmup`
//! seconds (or `--warmup-messages`) of the same traffic that is not recorded.
//! The publisher keeps to its schedule (a CLOCK_MONOTONIC timerfd); when it
//! falls behind, its lag is reported.
//!
//! **burst**: N subscribers on one topic. The publisher sends one message,
//! waits until every subscriber has received it, records the time to the
//! last subscriber, waits `--gap`, and repeats `--bursts` K times (after 5
//! unrecorded warm-up bursts, or `--warmup-messages`).
//!
//! **`--patterns`** (RESP only; either workload): every subscriber
//! PSUBSCRIBEs the one pattern `bench.<run>.news.*` instead of SUBSCRIBing
//! to a topic, and the publisher PUBLISHes round-robin to the `--topics` C
//! channels `bench.<run>.news.0 .. C-1`, so every message goes to all N
//! subscribers as a `pmessage` push (R × N deliveries per second). The
//! sequence number is then one count over all channels (a subscriber sees
//! them all, in publish order), and the accounting has one subscription.
//!
//! # Targets
//!
//! Without `--port` a ringcast engine starts in this process with all its
//! fronts on ephemeral loopback ports, and the run drives the front of
//! `--proto`: the native port for ringcast (and ringcast-ws's publisher),
//! the WebSocket port for ringcast-ws's subscribers, the Redis-compatible
//! (RESP) port for resp, subscribers and publisher alike. With `--port` the
//! target is an external server: a daemon's `--listen`, `--resp-listen`, a
//! redis-server, a nats-server.
//!
//! # Scale-out (`--sub-ports`)
//!
//! With `--sub-ports P1,...,Pk` (and `--port`) the subscribers are spread
//! over k servers on `--host`, subscriber i on port P(i mod k), typically
//! ringcast nodes relaying through NATS, while the publisher stays on
//! `--port`. A port equal to the publisher's (ringcast-ws: to `--ws-port`,
//! the ports being WebSocket ports) is the *local* node, the others
//! *remote*. Accounting is the same per subscriber (a native subscriber
//! checks its own node's seq, contiguous per node); the report adds, per
//! port, the delivery counts and latency percentiles, and for each remote
//! port its percentiles minus the local port's: the latency the relay
//! adds. A GAP notice (a node's warning that frames from other nodes may
//! be lost) is counted per port. Children are told the list and account
//! per port too; the parent owes each port what its subscribers' topics
//! were published ([`Params::expected_per_port`]). When `--topics` and k
//! share a factor, each port holds only some topics (a note says so).
//!
//! # What is measured
//!
//! Every payload carries the publisher's send time (CLOCK_REALTIME, taken
//! just before the message is framed) and a per-topic sequence number
//! ([`wire`]); latency per delivery is receive time minus send time,
//! recorded in an HdrHistogram of nanoseconds with 3 significant digits
//! ([`hist`]). The receive time is, by default (`--rx-clock kernel`), the
//! kernel's SO_TIMESTAMPNS stamp: the moment the server's segment entered
//! the subscriber socket's receive path, so the generator's own queueing
//! (reading thousands of sockets one after another, each read costing
//! about as much kernel time as the server's send) is not counted against
//! the server. When one read returns several messages, all get the stamp
//! of the newest segment, which can only overstate latency. With
//! `--rx-clock user` it is the clock read after the read returns. Both are
//! CLOCK_REALTIME, which is system-wide, so a child process compares its
//! readings with the parent's stamps. Each subscriber's sequence numbers (ringcast's DATA seq,
//! or the generator's own for resp and nats) give duplicates, reordering and
//! gaps ([`account`]); expected deliveries are what was published on each
//! subscriber's topic in the measured phase, so the delivery ratio must be 1.
//!
//! Server CPU is read from /proc/PID/stat (`--server-pid`, all threads) or,
//! for the embedded engine, from its reactor threads (`ringcast-r*`), at the
//! start and end of the measured phase; the end is when the last measured
//! delivery arrives. The generator's own CPU is getrusage(RUSAGE_THREAD) of
//! each process's event loop over the same phase; a process that is busy
//! most of the phase is flagged: then the generator may be the bottleneck.
//!
//! # Processes
//!
//! A process may hold 20,000 open files here, so past 15,000 subscribers
//! (9,000 with the embedded engine, whose accepted sockets count too) the
//! generator re-executes itself as `--procs` children, each owning a range of
//! subscribers ([`control`]): the parent publishes and coordinates, children
//! receive and send back their counts and histograms, which the parent
//! merges. Past 20,000 subscribers connections are spread over source
//! addresses 127.0.0.1 to 127.0.0.K (`--source-ips`), each with its own
//! ephemeral port range.

mod account;
mod control;
mod hist;
mod json;
mod nats;
mod publisher;
mod report;
mod resp;
mod run;
mod subs;
mod sys;
mod wire;
mod ws;

pub use account::Deliveries;
pub use hist::Summary;
pub use report::Report;
pub use run::{run, run_child};
pub use wire::{Proto, PAYLOAD_HEADER};

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

/// Epoll token kinds: the top byte; the rest is an index.
const TOKEN_SUB: u64 = 1 << 56;
const TOKEN_PUB: u64 = 2 << 56;
const TOKEN_TIMER: u64 = 3 << 56;
const TOKEN_CHILD: u64 = 4 << 56;
const TOKEN_CONTROL: u64 = 5 << 56;
const TOKEN_KIND: u64 = 0xff << 56;

/// Subscribers one process holds before children are used (with an
/// external server; the open-file limit is 20,000 here).
pub const SUBS_PER_PROC: usize = 15_000;
/// Subscribers the parent holds itself next to the embedded engine, whose
/// accepted sockets take as many fds again.
pub const SUBS_PER_PROC_EMBEDDED: usize = 9_000;
/// Connections per source address before another 127.0.0.x is used.
pub const CONNS_PER_SOURCE_IP: usize = 20_000;
/// The daemon's default WebSocket port (`--ws-listen 127.0.0.1:7401`).
pub const DEFAULT_WS_PORT: u16 = 7401;
/// Warm-up bursts when `--warmup-messages` is not given.
pub const DEFAULT_WARMUP_BURSTS: u64 = 5;

/// Where a delivery's receive time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxClock {
    /// The kernel's receive timestamp of the segment (SO_TIMESTAMPNS).
    Kernel,
    /// The clock read after the read returns.
    User,
}

impl RxClock {
    /// The name used by `--rx-clock`.
    pub fn name(self) -> &'static str {
        match self {
            RxClock::Kernel => "kernel",
            RxClock::User => "user",
        }
    }

    /// Parses a `--rx-clock` value.
    pub fn from_name(s: &str) -> Option<RxClock> {
        match s {
            "kernel" => Some(RxClock::Kernel),
            "user" => Some(RxClock::User),
            _ => None,
        }
    }
}

/// Which traffic to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A paced publisher, many topics, for a duration.
    Steady,
    /// One message to all subscribers of one topic, timed to the last one.
    Burst,
}

impl Workload {
    /// The name used by `--workload`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Steady => "steady",
            Workload::Burst => "burst",
        }
    }

    /// Parses a `--workload` value.
    pub fn from_name(s: &str) -> Option<Workload> {
        match s {
            "steady" => Some(Workload::Steady),
            "burst" => Some(Workload::Burst),
            _ => None,
        }
    }
}

/// Everything one run is told. `Params::default()` is the embedded
/// newcomer's run: 1,000 subscribers over 10 topics, 100 msg/s (each to 100
/// subscribers: 10,000 deliveries/s, light enough for a 2-CPU machine), 5 s.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub workload: Workload,
    pub proto: Proto,
    /// Server to drive; `None` starts a ringcast engine in-process. For
    /// ringcast-ws, the native port (the publisher's).
    pub target: Option<SocketAddr>,
    /// ringcast-ws: the WebSocket port on the target's host, where the
    /// subscribers connect (set from the embedded engine when it runs).
    pub ws_port: u16,
    /// Scale-out (`--sub-ports`): subscribers spread round-robin over these
    /// ports on the target's host, subscriber i on `sub_ports[i % k]`, while
    /// the publisher stays on the target (ringcast-ws: WebSocket ports).
    /// Empty: every subscriber at [`Params::subscriber_addr`].
    pub sub_ports: Vec<u16>,
    /// Subscriber connections.
    pub subs: usize,
    /// Topics (steady); burst uses 1. With `patterns`, the channels
    /// published to, which every subscriber's pattern matches.
    pub topics: usize,
    /// RESP: subscribers PSUBSCRIBE one pattern matching every channel
    /// (see [`Params::subscriptions`]) instead of SUBSCRIBing to a topic.
    pub patterns: bool,
    /// Messages per second over all topics (steady).
    pub rate: f64,
    /// Payload bytes, at least [`PAYLOAD_HEADER`].
    pub size: usize,
    /// Measured phase length (steady), unless `messages` is set.
    pub duration: Duration,
    /// Measured messages (steady), instead of `duration`.
    pub messages: Option<u64>,
    /// Warm-up length (steady).
    pub warmup: Duration,
    /// Warm-up messages (steady) or bursts (burst), instead of `warmup`.
    pub warmup_messages: Option<u64>,
    /// Idle time after set-up, before any traffic.
    pub hold: Duration,
    /// Measured bursts.
    pub bursts: u64,
    /// Pause between bursts.
    pub gap: Duration,
    /// Processes holding subscribers (1: this one; more: that many
    /// children, the parent only publishes); `None`: automatic.
    pub procs: Option<usize>,
    /// CPUs to pin to: the parent to the first, child k to `cpus[k % len]`.
    pub cpus: Vec<usize>,
    /// Server process whose CPU use to measure.
    pub server_pid: Option<u32>,
    /// Reactors of the embedded engine.
    pub server_cores: usize,
    /// CPUs for the embedded engine's reactors.
    pub server_cpus: Vec<usize>,
    /// Source addresses 127.0.0.1 ..= 127.0.0.K; `None`: automatic.
    pub source_ips: Option<usize>,
    /// Limit for setting up, for each burst, and for the final drain.
    pub timeout: Duration,
    /// Where receive times come from.
    pub rx_clock: RxClock,
    /// Topic name prefix shared by a parent and its children; `None`: a new one.
    pub run_id: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            workload: Workload::Steady,
            proto: Proto::Ringcast,
            target: None,
            ws_port: DEFAULT_WS_PORT,
            sub_ports: Vec::new(),
            subs: 1_000,
            topics: 10,
            patterns: false,
            rate: 100.0,
            size: 64,
            duration: Duration::from_secs(5),
            messages: None,
            warmup: Duration::from_secs(1),
            warmup_messages: None,
            hold: Duration::ZERO,
            bursts: 100,
            gap: Duration::from_millis(10),
            procs: None,
            cpus: Vec::new(),
            server_pid: None,
            server_cores: 1,
            server_cpus: Vec::new(),
            source_ips: None,
            timeout: Duration::from_secs(30),
            rx_clock: RxClock::Kernel,
            run_id: None,
        }
    }
}

/// Why a run could not be done.
#[derive(Debug)]
pub enum BenchError {
    /// The parameters do not make a run (a usage error).
    Invalid(String),
    /// The run could not start or broke down; the message says where.
    Failed(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Invalid(m) | BenchError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BenchError {}

impl Params {
    /// Checks the parameters make a run.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::Invalid(m));
        if self.subs == 0 {
            return bad("--subs must be at least 1".into());
        }
        if self.patterns && self.proto != Proto::Resp {
            return bad(format!(
                "--patterns is for --proto resp (PSUBSCRIBE), not --proto {}",
                self.proto.name()
            ));
        }
        if self.patterns && self.topics == 0 {
            return bad("--topics must be at least 1: the channels the publisher sends to".into());
        }
        // With --patterns every subscriber matches every channel.
        if !self.patterns && (self.topics == 0 || self.topics > self.subs) {
            return bad(format!(
                "--topics must be 1 to --subs ({}), got {}: every topic needs a subscriber",
                self.subs, self.topics
            ));
        }
        if self.workload == Workload::Burst && self.topics != 1 {
            return bad("--workload burst uses one topic; leave --topics at 1".into());
        }
        if self.size < PAYLOAD_HEADER {
            return bad(format!(
                "--size must be at least {PAYLOAD_HEADER} bytes (the send time and sequence number), got {}",
                self.size
            ));
        }
        if !(self.rate > 0.0 && self.rate <= 10_000_000.0) {
            return bad(format!(
                "--rate must be above 0 and at most 10,000,000 msg/s, got {}",
                self.rate
            ));
        }
        if self.workload == Workload::Burst && self.bursts == 0 {
            return bad("--bursts must be at least 1".into());
        }
        if self.messages == Some(0) || (self.messages.is_none() && self.duration.is_zero()) {
            return bad("nothing to measure: --duration and --messages are 0".into());
        }
        if self.target.is_none() && self.proto == Proto::Nats {
            return bad(format!(
                "--proto {} needs a server: give --port (without --port the bench runs an embedded ringcast engine, which speaks ringcast, ringcast-ws and resp)",
                self.proto.name()
            ));
        }
        if self.target.is_none() && self.server_pid.is_some() {
            return bad(
                "--server-pid needs --port: the embedded engine is measured by its threads".into(),
            );
        }
        if self.procs == Some(0) {
            return bad("--procs must be at least 1".into());
        }
        if let Some(k) = self.source_ips {
            if k == 0 || k > 254 {
                return bad(format!("--source-ips must be 1 to 254, got {k}"));
            }
        }
        if self.server_cores == 0 {
            return bad("--server-cores must be at least 1".into());
        }
        if !self.sub_ports.is_empty() {
            if self.target.is_none() {
                return bad(
                    "--sub-ports needs --port: the subscribers' nodes are running servers".into(),
                );
            }
            if let Some(p) = self.sub_ports.iter().find(|&&p| p == 0) {
                return bad(format!("--sub-ports: port {p} is not a port"));
            }
            let mut seen = self.sub_ports.clone();
            seen.sort_unstable();
            if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
                return bad(format!(
                    "--sub-ports lists port {} twice: each port is one node in the report",
                    w[0]
                ));
            }
        }
        Ok(())
    }

    /// Where each port's subscribers connect, in `--sub-ports` order:
    /// subscriber i connects to entry i mod len. Without `--sub-ports`, the
    /// one [`Params::subscriber_addr`]. Empty before the target is known.
    pub fn subscriber_addrs(&self) -> Vec<SocketAddr> {
        let Some(one) = self.subscriber_addr() else {
            return Vec::new();
        };
        if self.sub_ports.is_empty() {
            return vec![one];
        }
        self.sub_ports
            .iter()
            .map(|&port| SocketAddr::new(one.ip(), port))
            .collect()
    }

    /// The index into [`Params::subscriber_addrs`] of subscriber `global`.
    pub fn port_index(&self, global: usize) -> usize {
        global % self.sub_ports.len().max(1)
    }

    /// The port the publisher's node serves subscribers on: the target's,
    /// for ringcast-ws its WebSocket port. A `--sub-ports` entry equal to it
    /// is the *local* node in the report, the others *remote*.
    pub fn local_sub_port(&self) -> Option<u16> {
        self.subscriber_addr().map(|a| a.port())
    }

    /// Subscribers on each of [`Params::subscriber_addrs`].
    pub fn subs_per_port(&self) -> Vec<usize> {
        let k = self.sub_ports.len().max(1);
        (0..k).map(|j| (self.subs + k - 1 - j) / k).collect()
    }

    /// Measured deliveries owed to each port's subscribers, given the
    /// measured messages published per subscription (`per_topic`, as the
    /// publisher counts them): subscriber g holds subscription
    /// g mod `per_topic.len()` and connects to port g mod k.
    pub fn expected_per_port(&self, per_topic: &[u64]) -> Vec<u64> {
        let k = self.sub_ports.len().max(1);
        let t = per_topic.len().max(1);
        let mut owed = vec![0u64; k];
        // Subscribers repeat their (port, topic) pair every lcm(k, t).
        let period = k / gcd(k, t) * t;
        let mut pairs = vec![0u64; period];
        for (g, n) in pairs.iter_mut().enumerate() {
            *n = per_topic.get(g % t).copied().unwrap_or(0);
        }
        let (whole, rest) = (self.subs / period, self.subs % period);
        for (g, n) in pairs.iter().enumerate() {
            let times = whole as u64 + u64::from(g < rest);
            owed[g % k] += n * times;
        }
        owed
    }

    /// Where subscribers connect: the target, or for ringcast-ws its host
    /// at `ws_port`. `None` before the target is known.
    pub fn subscriber_addr(&self) -> Option<SocketAddr> {
        let mut addr = self.target?;
        if self.proto.is_websocket() {
            addr.set_port(self.ws_port);
        }
        Some(addr)
    }

    /// Distinct subscriptions, the unit of the delivery accounting:
    /// subscriber i holds subscription i mod this. `topics`, or 1 with
    /// `patterns` (one pattern, matching every channel).
    pub fn subscriptions(&self) -> usize {
        if self.patterns {
            1
        } else {
            self.topics
        }
    }

    /// Processes that hold subscribers, given or automatic.
    pub fn effective_procs(&self) -> usize {
        self.procs.unwrap_or_else(|| {
            let own = if self.target.is_none() {
                SUBS_PER_PROC_EMBEDDED
            } else {
                SUBS_PER_PROC
            };
            if self.subs <= own {
                1
            } else {
                self.subs.div_ceil(SUBS_PER_PROC).max(2)
            }
        })
    }

    /// Source addresses, given or automatic.
    pub fn effective_source_ips(&self) -> usize {
        self.source_ips
            .unwrap_or_else(|| self.subs.div_ceil(CONNS_PER_SOURCE_IP).clamp(1, 254))
    }

    /// Warm-up messages (steady) or bursts (burst).
    pub fn warmup_count(&self) -> u64 {
        match (self.workload, self.warmup_messages) {
            (_, Some(n)) => n,
            (Workload::Burst, None) => DEFAULT_WARMUP_BURSTS,
            (Workload::Steady, None) => (self.warmup.as_secs_f64() * self.rate).ceil() as u64,
        }
    }

    /// Measured messages (steady) or bursts (burst).
    pub fn measured_count(&self) -> u64 {
        match (self.workload, self.messages) {
            (Workload::Burst, _) => self.bursts,
            (Workload::Steady, Some(n)) => n,
            (Workload::Steady, None) => {
                ((self.duration.as_secs_f64() * self.rate).ceil() as u64).max(1)
            }
        }
    }

    /// The command line of a child owning subscribers `first .. first + count`,
    /// the words after the binary's name. `ringcast-bench` parses it back
    /// (see [`CHILD_FLAG`]); a test there checks the round trip.
    pub fn child_args(&self, first: usize, count: usize, cpu: Option<usize>) -> Vec<OsString> {
        let target = self
            .target
            .expect("children are started once the target address is known");
        let mut a: Vec<String> = vec![
            CHILD_FLAG.into(),
            format!("{first}:{count}"),
            "--workload".into(),
            self.workload.name().into(),
            "--proto".into(),
            self.proto.name().into(),
            "--host".into(),
            target.ip().to_string(),
            "--port".into(),
            target.port().to_string(),
            "--subs".into(),
            self.subs.to_string(),
            "--topics".into(),
            self.topics.to_string(),
            "--size".into(),
            self.size.to_string(),
            "--timeout".into(),
            format!("{}", self.timeout.as_secs_f64()),
            "--source-ips".into(),
            self.effective_source_ips().to_string(),
            "--rx-clock".into(),
            self.rx_clock.name().into(),
        ];
        if self.proto.is_websocket() {
            a.push("--ws-port".into());
            a.push(self.ws_port.to_string());
        }
        if !self.sub_ports.is_empty() {
            a.push(SUB_PORTS_FLAG.into());
            a.push(join_ports(&self.sub_ports));
        }
        if self.patterns {
            a.push(PATTERNS_FLAG.into());
        }
        if let Some(id) = &self.run_id {
            a.push(RUN_ID_FLAG.into());
            a.push(id.clone());
        }
        if let Some(cpu) = cpu {
            a.push("--cpu".into());
            a.push(cpu.to_string());
        }
        a.into_iter().map(OsString::from).collect()
    }
}

/// The hidden flag that makes `ringcast bench` a child: `--child FIRST:COUNT`.
pub const CHILD_FLAG: &str = "--child";
/// The hidden flag that passes the parent's topic prefix to a child.
pub const RUN_ID_FLAG: &str = "--run-id";
/// The flag of [`Params::patterns`].
pub const PATTERNS_FLAG: &str = "--patterns";
/// The flag of [`Params::sub_ports`].
pub const SUB_PORTS_FLAG: &str = "--sub-ports";

/// Ports as `--sub-ports` takes them: `7400,7410,7420`.
pub fn join_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Greatest common divisor (of counts at least 1).
pub fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_counts_follow_the_flags() {
        let p = Params::default();
        p.validate().unwrap();
        assert_eq!(p.warmup_count(), 100);
        assert_eq!(p.measured_count(), 500);
        assert_eq!(p.effective_procs(), 1);
        assert_eq!(p.effective_source_ips(), 1);
        let b = Params {
            workload: Workload::Burst,
            topics: 1,
            bursts: 7,
            ..Params::default()
        };
        assert_eq!((b.warmup_count(), b.measured_count()), (5, 7));
        let m = Params {
            messages: Some(200),
            warmup_messages: Some(3),
            ..Params::default()
        };
        assert_eq!((m.warmup_count(), m.measured_count()), (3, 200));
    }

    #[test]
    fn processes_and_source_addresses_scale_with_subscribers() {
        let target = Some(SocketAddr::from(([127, 0, 0, 1], 7400)));
        let p = |subs, target| Params {
            subs,
            target,
            ..Params::default()
        };
        assert_eq!(p(15_000, target).effective_procs(), 1);
        assert_eq!(p(15_001, target).effective_procs(), 2);
        assert_eq!(p(50_000, target).effective_procs(), 4);
        assert_eq!(p(9_000, None).effective_procs(), 1);
        assert_eq!(p(9_001, None).effective_procs(), 2);
        assert_eq!(p(20_000, target).effective_source_ips(), 1);
        // ringcast-ws: fds per subscriber are the same, so are the processes.
        let ws = Params {
            proto: Proto::RingcastWs,
            ..p(9_001, None)
        };
        assert_eq!(ws.effective_procs(), 2);
        assert_eq!(p(50_000, target).effective_source_ips(), 3);
    }

    #[test]
    fn websocket_subscribers_connect_to_the_websocket_port() {
        let target = Some(SocketAddr::from(([127, 0, 0, 1], 17400)));
        let native = Params {
            target,
            ws_port: 17401,
            ..Params::default()
        };
        assert_eq!(native.subscriber_addr(), target);
        let ws = Params {
            proto: Proto::RingcastWs,
            ..native.clone()
        };
        assert_eq!(
            ws.subscriber_addr(),
            Some(SocketAddr::from(([127, 0, 0, 1], 17401)))
        );
        assert_eq!(Params::default().subscriber_addr(), None);
        // Embedded mode serves ringcast-ws too.
        Params {
            proto: Proto::RingcastWs,
            ..Params::default()
        }
        .validate()
        .unwrap();
        let args = ws.child_args(0, 10, None);
        let at = args.iter().position(|a| a == "--ws-port").unwrap();
        assert_eq!(args[at + 1], "17401");
        assert!(!native
            .child_args(0, 10, None)
            .iter()
            .any(|a| a == "--ws-port"));
    }

    #[test]
    fn bad_parameters_are_refused_with_the_flag_named() {
        let check = |p: Params, needle: &str| match p.validate() {
            Err(BenchError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected Invalid({needle}), got {other:?}"),
        };
        let d = Params::default;
        check(Params { size: 15, ..d() }, "--size");
        check(Params { subs: 0, ..d() }, "--subs");
        check(
            Params {
                topics: 2_000,
                ..d()
            },
            "--topics",
        );
        check(Params { rate: 0.0, ..d() }, "--rate");
        check(
            Params {
                workload: Workload::Burst,
                ..d()
            },
            "one topic",
        );
        check(
            Params {
                proto: Proto::Nats,
                ..d()
            },
            "--port",
        );
        check(
            Params {
                source_ips: Some(300),
                ..d()
            },
            "--source-ips",
        );
        check(
            Params {
                patterns: true,
                ..d()
            },
            "--patterns is for --proto resp",
        );
        check(
            Params {
                proto: Proto::Resp,
                patterns: true,
                topics: 0,
                ..d()
            },
            "--topics",
        );
    }

    #[test]
    fn sub_ports_spread_subscribers_round_robin_and_owe_per_port() {
        let target = Some(SocketAddr::from(([127, 0, 0, 1], 7400)));
        let p = Params {
            target,
            sub_ports: vec![7400, 7410, 7420],
            subs: 10,
            topics: 4,
            ..Params::default()
        };
        p.validate().unwrap();
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(p.subscriber_addrs(), [at(7400), at(7410), at(7420)]);
        let ports: Vec<usize> = (0..7).map(|g| p.port_index(g)).collect();
        assert_eq!(ports, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(p.subs_per_port(), [4, 3, 3]);
        assert_eq!(p.local_sub_port(), Some(7400));
        // Brute force: subscriber g owes per_topic[g % 4] to port g % 3.
        for per_topic in [[5u64, 5, 5, 5], [3, 2, 2, 1], [0, 0, 7, 0]] {
            for subs in [1, 4, 10, 12, 13, 121] {
                let q = Params { subs, ..p.clone() };
                let mut owed = [0u64; 3];
                for g in 0..subs {
                    owed[g % 3] += per_topic[g % 4];
                }
                assert_eq!(
                    q.expected_per_port(&per_topic),
                    owed,
                    "{subs} {per_topic:?}"
                );
                assert_eq!(q.subs_per_port().iter().sum::<usize>(), subs);
            }
        }
        // Without --sub-ports: one port, the subscribers' address.
        let one = Params {
            sub_ports: Vec::new(),
            ..p.clone()
        };
        assert_eq!(one.subscriber_addrs(), [at(7400)]);
        assert_eq!((one.port_index(5), one.subs_per_port()), (0, vec![10]));
        assert_eq!(
            one.expected_per_port(&[1, 2, 3, 4]),
            [3 + 3 * 2 + 2 * 3 + 2 * 4]
        );
        assert!(!one
            .child_args(0, 5, None)
            .iter()
            .any(|a| a == SUB_PORTS_FLAG));
        // Children get the list; WebSocket: the ports are WebSocket ports,
        // the local one is --ws-port's.
        let args = p.child_args(0, 5, None);
        let i = args.iter().position(|a| a == SUB_PORTS_FLAG).unwrap();
        assert_eq!(args[i + 1], "7400,7410,7420");
        let ws = Params {
            proto: Proto::RingcastWs,
            ws_port: 7411,
            sub_ports: vec![7401, 7411, 7421],
            ..p.clone()
        };
        assert_eq!(ws.subscriber_addrs()[2], at(7421));
        assert_eq!(ws.local_sub_port(), Some(7411));
        // Refused: no target, a port twice, port 0.
        let check = |q: Params, needle: &str| match q.validate() {
            Err(BenchError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected Invalid({needle}), got {other:?}"),
        };
        check(
            Params {
                target: None,
                ..p.clone()
            },
            "--sub-ports needs --port",
        );
        check(
            Params {
                sub_ports: vec![7400, 7410, 7400],
                ..p.clone()
            },
            "twice",
        );
        check(
            Params {
                sub_ports: vec![0],
                ..p.clone()
            },
            "--sub-ports",
        );
        assert_eq!((gcd(40, 3), gcd(4, 2), gcd(1, 1)), (1, 2, 1));
        assert_eq!(join_ports(&[1, 22]), "1,22");
    }

    #[test]
    fn resp_runs_embedded_and_patterns_count_one_subscription() {
        // No --port: the embedded engine's RESP front.
        let resp = Params {
            proto: Proto::Resp,
            ..Params::default()
        };
        resp.validate().unwrap();
        assert_eq!(resp.subscriptions(), resp.topics);
        // One pattern matches every channel: more channels than subscribers is fine.
        let p = Params {
            patterns: true,
            subs: 3,
            topics: 40,
            target: Some(SocketAddr::from(([127, 0, 0, 1], 6379))),
            ..resp
        };
        p.validate().unwrap();
        assert_eq!(p.subscriptions(), 1);
        assert!(p.child_args(0, 3, None).iter().any(|a| a == PATTERNS_FLAG));
        assert!(!Params {
            patterns: false,
            topics: 3,
            ..p
        }
        .child_args(0, 3, None)
        .iter()
        .any(|a| a == PATTERNS_FLAG));
    }
}

//! The per-core state machine, without I/O: connections and their life
//! cycle, topics and subscriptions, the cross-core protocol, fan-out, auth,
//! the slow-consumer policy and every limit. It owns no ring and no socket
//! and makes no syscall; time is an argument (`now`, monotonic ns, given by
//! the driver once per loop turn).
//!
//! Inputs are `handle_*` calls, made by the ring driver (`reactor`) as
//! completions arrive, or by the in-memory tests:
//! - [`Core::handle_accept`]: a new connection on a front;
//! - [`Core::handle_bytes`], [`Core::handle_eof`], [`Core::handle_reset`]:
//!   what a receive brought;
//! - [`Core::handle_sent`]: a send's result;
//! - [`Core::handle_msg`]: a message from another core;
//! - [`Core::handle_tick`]: deadlines, periodic scans, the shutdown flag.
//!
//! Outputs are polled by the driver after each batch of inputs, in this
//! order (the order in which the driver's loop takes them):
//! 1. [`Core::poll_msg`]: messages for other cores, FIFO per target core
//!    (the ordering protocol relies on it);
//! 2. [`Core::poll_action`]: what to do to a socket ([`Action`]);
//! 3. [`Core::take_dirty`] + [`Core::prepare_send`]: connections with
//!    frames owed and no send in flight, and the iovecs of their next send.
//!
//! After a batch of inputs the driver calls [`Core::end_batch`], which cuts
//! the connections whose backlog passed the limit during it (deferred so
//! subscriber lists are never changed while a fan-out walks them).
//!
//! Fronts (native TCP, HTTP/WebSocket) are protocol adapters on this core,
//! in `crate::front`: the core hands received bytes to the connection's
//! front, which calls back into the core's operations (publish, subscribe,
//! reply, fail). Adding a front touches neither the core's life cycle nor
//! the driver.

pub mod conn;
mod events;
mod pubsub;

pub use conn::{Conn, Life, RespConn, Wire, WsConn, MAX_IOV};

use crate::mailbox::Parked;
use crate::pool::{Arena, FrameRef, Pool};
use crate::proto::{self, ErrorCode, ServerFrame};
use crate::stats::{CoreStats, CutReason, LATENCY_BUCKETS_NS};
use crate::topic::{ConnKey, Ns, TopicTable};
use crate::Config;
use slab::Slab;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub(crate) use pubsub::enqueue;

/// Messages between cores. Every one travels on the FIFO queue of one
/// ordered pair of cores.
pub(crate) enum Msg {
    /// To a topic's owner: an encoded DATA frame (seq not yet set) for a
    /// channel or shard channel. With `reply`, the publisher (a RESP
    /// connection of the sending core) waits for the receiver count
    /// ([`Msg::Counted`]).
    Publish {
        frame: FrameRef,
        ns: Ns,
        reply: Option<(usize, ConnKey)>,
    },
    /// From a topic's owner: what this core's subscribers get of one
    /// publish: the DATA frame (native and WebSocket subscribers, and the
    /// carrier of the topic's name and seq), the RESP `message` (or
    /// `smessage`) when the owner encoded it, and one `pmessage` per
    /// pattern that matches and has subscribers here.
    Deliver {
        frame: FrameRef,
        ns: Ns,
        resp: Option<FrameRef>,
        pmessages: Vec<FrameRef>,
    },
    /// To a topic's owner: core `core` has its first subscriber.
    Join {
        ns: Ns,
        topic: Box<[u8]>,
        core: usize,
    },
    /// From the owner: frames of `topic` from `next_seq` on will follow;
    /// `epoch` names this incarnation of the topic's sequence.
    Joined {
        ns: Ns,
        topic: Box<[u8]>,
        next_seq: u64,
        epoch: u64,
    },
    /// From the owner: the topic could not be created (topic limit).
    JoinRefused { ns: Ns, topic: Box<[u8]> },
    /// To a topic's owner: core `core` has no subscribers left.
    Leave {
        ns: Ns,
        topic: Box<[u8]>,
        core: usize,
    },
    /// To a topic's owner (to every core for a pattern): the sending core
    /// has `subs` more subscribers (negative: fewer), `resp` of them on the
    /// Redis front. For PUBLISH's count, and to encode RESP once.
    Count {
        ns: Ns,
        topic: Box<[u8]>,
        subs: i32,
        resp: i32,
    },
    /// To every other core: core `core` has a first subscriber to `pattern`
    /// (answered with [`Msg::PatternKnown`]).
    PatternJoin { pattern: Box<[u8]>, core: usize },
    /// The answer to a [`Msg::PatternJoin`].
    PatternKnown { pattern: Box<[u8]> },
    /// To every other core: core `core` has no subscriber left to `pattern`.
    PatternLeave { pattern: Box<[u8]>, core: usize },
    /// From a topic's owner (core `owner`): the receiver count of a
    /// publish made with `reply`, for connection `conn` of the receiving core.
    Counted {
        conn: ConnKey,
        owner: usize,
        receivers: u64,
    },
    /// To every other core: a PUBSUB question about the topics each owns.
    Query {
        conn: ConnKey,
        core: usize,
        query: Box<Query>,
    },
    /// The answer to a [`Msg::Query`] (one per other core).
    Answer { conn: ConnKey, answer: Box<Answer> },
    /// From the NATS relay to a topic's owner: a publish from another node.
    Relayed {
        ns: Ns,
        topic: Box<[u8]>,
        payload: bytes::Bytes,
        ts_ns: u64,
    },
    /// From the NATS relay to every core: frames from other nodes may have
    /// been lost (`reason`): tell the subscribers of every topic this core owns.
    RelayGap { reason: &'static str },
    /// From the NATS relay to a topic's owner: another node dropped
    /// publishes, the next of which may have been on this topic.
    RelayTopicGap {
        ns: Ns,
        topic: Box<[u8]>,
        reason: &'static str,
    },
    /// From a topic's owner: tell this core's subscribers of `topic` that
    /// frames from other nodes may have been lost.
    Gap {
        ns: Ns,
        topic: Box<[u8]>,
        reason: &'static str,
    },
    /// From the NATS relay: the NATS subscriptions this core asked for, up
    /// to its ask number `upto` ([`RelayOut::Interest`],
    /// [`RelayOut::Patterns`]), are in place at the server.
    RelayReady { upto: u64 },
}

/// What a core hands the NATS relay.
pub(crate) enum RelayOut {
    /// A publish made on this node (the DATA frame, seq set when the topic
    /// has subscribers here), to send to NATS once. `after_drop`: publishes
    /// of this reactor were dropped just before it (the relay tells the other
    /// nodes with this message).
    Publish {
        ns: Ns,
        frame: FrameRef,
        after_drop: bool,
    },
    /// This node has (`on`) or no longer has subscribers of `topic`. `ask`
    /// numbers this core's requests (answered by [`Msg::RelayReady`] once
    /// the NATS subscription is in place; 0 when `on` is false).
    Interest {
        ns: Ns,
        topic: Box<[u8]>,
        on: bool,
        ask: u64,
    },
    /// This node has (or no longer has) pattern subscriptions: every topic's
    /// traffic is wanted (`ask` as for `Interest`).
    Patterns { on: bool, ask: u64 },
}

impl RelayOut {
    pub(crate) fn release(self, pool: &Pool) {
        if let RelayOut::Publish { frame, .. } = self {
            pool.release(frame);
        }
    }
}

/// What PUBSUB asks every core about its own subscribers (each core
/// answers for its connections, so the answer reflects every subscription
/// and unsubscription confirmed before the question, whichever core holds it).
#[derive(Clone, Debug)]
pub(crate) enum Query {
    /// Names of the channels (or shard channels) with subscribers here,
    /// matching the pattern if any.
    Channels { ns: Ns, pattern: Option<Box<[u8]>> },
    /// Subscribers here of each of these channels.
    NumSub { ns: Ns, names: Vec<Box<[u8]>> },
    /// Patterns with subscribers here.
    Patterns,
}

/// One core's part of the answer to a [`Query`].
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub names: Vec<Box<[u8]>>,
    pub counts: Vec<u64>,
}

impl Msg {
    /// Gives back the frames a message carries, if any (a message that will
    /// never be handled, e.g. left in a queue at exit).
    pub(crate) fn release(self, pool: &Pool) {
        match self {
            Msg::Publish { frame, .. } => pool.release(frame),
            Msg::Deliver {
                frame,
                resp,
                pmessages,
                ..
            } => {
                pool.release(frame);
                if let Some(r) = resp {
                    pool.release(r);
                }
                for f in pmessages {
                    pool.release(f);
                }
            }
            _ => {}
        }
    }
}

/// State every core shares, read-mostly.
pub(crate) struct Shared {
    pub config: Config,
    pub pool: Pool,
    pub epoch: u64,
    pub stats: Vec<CoreStats>,
    pub parked: Vec<Parked>,
    pub shutdown: AtomicBool,
    /// Reactors inside their event loop (for /healthz).
    pub running: AtomicUsize,
    /// Connections holding a slot of `max_connections`.
    pub connections: AtomicUsize,
    /// Plain HTTP connections accepted beyond `max_connections` (at most
    /// `http_reserve`).
    pub http_connections: AtomicUsize,
    pub topics: AtomicUsize,
    /// The last CLIENT ID given to a RESP connection.
    pub client_ids: std::sync::atomic::AtomicU64,
    /// The NATS relay: about to wait (a core that hands it work wakes it
    /// through `relay_wake`), and its state for /healthz.
    pub relay_parked: AtomicBool,
    pub relay_state: std::sync::atomic::AtomicU8,
    pub relay_wake: Option<std::os::unix::net::UnixDatagram>,
    /// Set by the engine once every reactor stopped: the relay ends.
    pub relay_stop: AtomicBool,
}

/// `Shared::relay_state` values.
pub(crate) const RELAY_OFF: u8 = 0;
pub(crate) const RELAY_CONNECTING: u8 = 1;
pub(crate) const RELAY_CONNECTED: u8 = 2;
pub(crate) const RELAY_DISCONNECTED: u8 = 3;

impl Shared {
    pub(crate) fn new(config: Config, pool: Pool, epoch: u64) -> Shared {
        let cores = config.cores;
        Shared {
            pool,
            epoch,
            stats: (0..cores).map(|_| CoreStats::default()).collect(),
            parked: (0..cores).map(|_| Parked(AtomicBool::new(false))).collect(),
            shutdown: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            http_connections: AtomicUsize::new(0),
            topics: AtomicUsize::new(0),
            client_ids: std::sync::atomic::AtomicU64::new(0),
            relay_parked: AtomicBool::new(false),
            relay_state: std::sync::atomic::AtomicU8::new(RELAY_OFF),
            relay_wake: None,
            relay_stop: AtomicBool::new(false),
            config,
        }
    }
}

/// What the core asks the driver to do to a connection's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read from it (again): arm its receive unless one is armed.
    Read(u32),
    /// Stop reading for now: its input is held while it waits (`Read`
    /// follows when it may go on).
    StopReading(u32),
    /// Cancel the send in flight (it is being cut: its ERROR must go next).
    CancelSend(u32),
    /// Everything owed was handed over: shut the write side (and both
    /// sides when no receive is armed to see the peer's EOF).
    ShutWrite(u32),
    /// Shut both sides at once.
    ShutBoth(u32),
    /// Nothing more will happen on it: once no op is in flight, close the
    /// socket and call [`Core::release`].
    Close(u32),
}

/// One send, as [`Core::prepare_send`] laid it out in the caller's iovecs.
#[derive(Clone, Copy, Debug)]
pub struct SendPlan {
    /// Iovecs filled (frames, or parts of them).
    pub iovecs: usize,
    pub bytes: usize,
    /// Every frame lives in the registered region (a fixed-buffer send can
    /// carry them).
    pub registered: bool,
    /// Being cut: send what the socket takes now (`MSG_DONTWAIT`).
    pub dont_wait: bool,
}

/// How long a closing connection waits for the peer's EOF after its write
/// side was shut (what it was sent is already in the kernel's hands).
const LINGER_NS: u64 = 2_000_000_000;
/// A connection being closed that takes nothing for this long is closed
/// without waiting for the rest of its linger.
const NO_PROGRESS_NS: u64 = 2_000_000_000;
/// Longest period between scans for silent WebSocket peers, late HTTP
/// requests and unfinished frames (shorter when the configured intervals
/// need it, never below the tick).
const IDLE_SCAN_NS: u64 = 1_000_000_000;
/// The driver's tick: the finest scan period.
pub(crate) const TICK_NS: u64 = 50_000_000;
/// A closing connection with at most this many subscriptions drops them at
/// once; one with more goes through the teardown queue.
const TEARDOWN_INLINE: usize = 64;
/// Subscriptions the teardown queue removes per loop turn (about 50 ns
/// each: ~0.1-0.2 ms of a turn, whatever the number of connections leaving).
const TEARDOWN_BUDGET: usize = 2048;

/// The fronts a connection can arrive on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// The native protocol over TCP.
    Native,
    /// HTTP (/, /healthz, /metrics) and WebSocket upgrades on `/ws`.
    Web,
    /// Redis's protocol, RESP2 and RESP3 (pub/sub and what clients need
    /// around it).
    Resp,
}

/// Publish → send-submitted samples gathered during one loop iteration,
/// added to the shared counters once per iteration.
#[derive(Default)]
struct LatencyBatch {
    buckets: [u64; LATENCY_BUCKETS_NS.len() + 1],
    sum: u64,
    count: u64,
}

/// One core's state. See the module documentation for the call order.
pub(crate) struct Core {
    pub(crate) id: usize,
    pub(crate) cores: usize,
    pub(crate) shared: std::sync::Arc<Shared>,
    pub(crate) arena: Arena,
    pub(crate) conns: Slab<Conn>,
    next_gen: u32,
    pub(crate) topics: TopicTable,
    pub(crate) patterns: pubsub::Patterns,
    /// Subscriber count changes not yet told to the topics' owners (or, for
    /// patterns, to every core): (all, RESP) per topic, sent once per batch.
    count_deltas: std::collections::HashMap<
        crate::topic::TopicId,
        (i32, i32),
        std::hash::BuildHasherDefault<crate::topic::Fnv>,
    >,
    /// Work for the NATS relay (`poll_relay`); stays empty without one.
    relay_out: VecDeque<RelayOut>,
    pub(crate) relay_on: bool,
    /// Core 0 tells the relay whether the node has pattern subscriptions.
    relay_patterns: bool,
    /// The last ask number this core gave a NATS subscription it asked the
    /// relay for, and the last one the relay confirmed.
    relay_asked: u64,
    relay_ready: u64,
    /// Subscriptions to topics new on this node, waiting for the relay's
    /// NATS subscription (oldest first): confirmed when it is in place.
    relay_waits: VecDeque<pubsub::RelayWait>,
    /// Core 0: answers to pattern announcements (and its own new patterns)
    /// held until the relay's subscription for every topic is in place, and
    /// the ask and deadline they wait for.
    pattern_holds: Vec<(usize, Box<[u8]>)>,
    pattern_wait: Option<(u64, u64)>,
    /// The last epoch given to a topic this core created.
    pub(crate) last_epoch: u64,
    /// Connections whose subscriptions are being removed, a bounded number
    /// per loop turn (front first).
    teardown: VecDeque<u32>,
    /// Bytes of incomplete input held by this core's connections (the sum
    /// of their `held`), bounded by its share of `max_incomplete`.
    incomplete: usize,
    /// Messages for other cores, in order.
    outbox: VecDeque<(usize, Msg)>,
    /// Socket actions, each with the generation of the connection it is
    /// for: the driver ignores one whose connection was replaced meanwhile.
    actions: VecDeque<(Action, u32)>,
    /// Bytes owed to this core's connections (the sum of their `queued`,
    /// kept by the send queue's own methods): the backlog gauge.
    owed: usize,
    /// Connections with frames owed and no send in flight.
    dirty: Vec<u32>,
    /// Connections whose backlog passed the limit during this batch.
    pub(crate) over_limit: Vec<u32>,
    /// Connections draining or closing: their deadlines are watched.
    closing: Vec<ConnKey>,
    /// Connections being cut whose `MSG_DONTWAIT` send found no room: sent
    /// to again on the next tick.
    retry_sends: Vec<ConnKey>,
    pub(crate) shutting_down: bool,
    shutdown_deadline: u64,
    /// When connections still flushing at shutdown get ERROR 8 next.
    shutdown_hurry_at: u64,
    shutdown_hurried: bool,
    /// Frames handled from clients (native, or one per WebSocket message):
    /// tells whether a receive completed any.
    pub(crate) frames_in: u64,
    /// Monotonic ns of the current loop turn.
    pub(crate) now: u64,
    next_idle_scan: u64,
    idle_scan_ns: u64,
    /// The socket's unacknowledged bytes (SIOCOUTQ), a question only the
    /// driver can answer: a function so the tests can answer it too.
    unacked: fn(RawFd) -> u32,
    /// CLOCK_REALTIME in ns, read per publish (its `ts_ns`) and per new
    /// topic (its epoch): a function so the tests can set the time.
    pub(crate) realtime: fn() -> u64,
    latency: LatencyBatch,
    /// Rate limits of this core's connection-event log lines.
    pub(crate) log: crate::log::Limiter,
    /// Connections the shutdown ended owing them bytes (counted once each
    /// in the stats' unflushed figures).
    unflushed: std::collections::HashSet<ConnKey>,
}

impl Core {
    pub(crate) fn new(
        id: usize,
        shared: std::sync::Arc<Shared>,
        now: u64,
        unacked: fn(RawFd) -> u32,
        realtime: fn() -> u64,
    ) -> Core {
        let cores = shared.config.cores;
        let relay_on = !shared.config.nats.is_empty();
        let idle_scan_ns = idle_scan_period(&shared.config);
        let conns = max_conns(&shared.config);
        Core {
            id,
            cores,
            arena: Arena::new(&shared.pool, id),
            last_epoch: shared.epoch,
            shared,
            // Address space for every connection this core may hold (see
            // `max_conns`): the slab never moves.
            conns: Slab::with_capacity(conns),
            next_gen: 1,
            topics: TopicTable::default(),
            patterns: pubsub::Patterns::default(),
            count_deltas: Default::default(),
            relay_out: VecDeque::new(),
            relay_on,
            relay_patterns: false,
            relay_asked: 0,
            relay_ready: 0,
            relay_waits: VecDeque::new(),
            pattern_holds: Vec::new(),
            pattern_wait: None,
            teardown: VecDeque::new(),
            incomplete: 0,
            outbox: VecDeque::new(),
            owed: 0,
            actions: VecDeque::new(),
            dirty: Vec::with_capacity(1024),
            over_limit: Vec::with_capacity(64),
            closing: Vec::with_capacity(64),
            retry_sends: Vec::new(),
            shutting_down: false,
            shutdown_deadline: 0,
            shutdown_hurry_at: 0,
            shutdown_hurried: false,
            frames_in: 0,
            now,
            next_idle_scan: 0,
            idle_scan_ns,
            unacked,
            realtime,
            latency: LatencyBatch::default(),
            log: crate::log::Limiter::new(id),
            unflushed: Default::default(),
        }
    }

    pub(crate) fn stats(&self) -> &CoreStats {
        &self.shared.stats[self.id]
    }

    pub(crate) fn key(&self, idx: u32) -> ConnKey {
        ConnKey {
            index: idx,
            gen: self.conns[idx as usize].gen,
        }
    }

    pub(crate) fn live(&self, key: ConnKey) -> bool {
        matches!(self.conns.get(key.index as usize), Some(c) if c.gen == key.gen)
    }

    // ------------------------------------------------------------ outputs

    /// The next message for another core: (target core, message).
    pub(crate) fn poll_msg(&mut self) -> Option<(usize, Msg)> {
        self.outbox.pop_front()
    }

    /// The next piece of work for the NATS relay.
    pub(crate) fn poll_relay(&mut self) -> Option<RelayOut> {
        self.relay_out.pop_front()
    }

    /// The next socket action, with the generation of its connection (an
    /// action for a connection released since is stale: skip it).
    pub(crate) fn poll_action(&mut self) -> Option<(Action, u32)> {
        self.actions.pop_front()
    }

    /// Whether any output waits (the driver must not sleep then).
    pub(crate) fn busy(&self) -> bool {
        !self.dirty.is_empty() || !self.teardown.is_empty() || !self.outbox.is_empty()
    }

    pub(crate) fn send_msg(&mut self, to: usize, msg: Msg) {
        self.outbox.push_back((to, msg));
    }

    pub(crate) fn act(&mut self, a: Action) {
        let (Action::Read(idx)
        | Action::StopReading(idx)
        | Action::CancelSend(idx)
        | Action::ShutWrite(idx)
        | Action::ShutBoth(idx)
        | Action::Close(idx)) = a;
        let gen = self.conns[idx as usize].gen;
        self.actions.push_back((a, gen));
    }

    /// The dirty list as it stands; a send round walks it (a connection
    /// made dirty during the round is listed after `len`).
    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    pub(crate) fn dirty_at(&self, i: usize) -> u32 {
        self.dirty[i]
    }

    /// Ends a send round that took the first `n` of the dirty list.
    pub(crate) fn dirty_done(&mut self, n: usize) {
        self.dirty.drain(..n);
    }

    /// Lays out the next send of connection `idx` in `iov`, or None when it
    /// has nothing to send now (no longer dirty, a send in flight, closing).
    /// `now_rt` (CLOCK_REALTIME) stamps the publish → send latency sample.
    pub(crate) fn prepare_send(
        &mut self,
        idx: u32,
        iov: &mut [libc::iovec; MAX_IOV],
        now_rt: u64,
    ) -> Option<SendPlan> {
        let c = self.conns.get_mut(idx as usize)?;
        if !c.dirty {
            return None;
        }
        c.dirty = false;
        if c.sending || c.outq.is_empty() || matches!(c.life, Life::Closing { .. }) {
            return None;
        }
        if c.head_off == 0 {
            let skip = match &c.wire {
                Wire::Ws(_) => Some(1), // a WebSocket header: skip by its length byte
                Wire::Resp(_) => None,  // RESP carries no timestamp
                _ => Some(0),
            };
            if let Some(ts) = skip.and_then(|skip| data_ts(c.outq[0].bytes(), skip)) {
                let ns = now_rt.saturating_sub(ts);
                let b = LATENCY_BUCKETS_NS.partition_point(|&le| le < ns);
                self.latency.buckets[b] += 1;
                self.latency.sum += ns;
                self.latency.count += 1;
            }
        }
        let dont_wait = c.hurried();
        let (iovecs, bytes, registered) = c.prepare_send(iov);
        Some(SendPlan {
            iovecs,
            bytes,
            registered,
            dont_wait,
        })
    }

    /// Publishes this core's gauges and the iteration's latency samples.
    pub(crate) fn publish_gauges(&mut self) {
        let st = &self.shared.stats[self.id];
        st.backlog_bytes.store(self.owed as i64, Ordering::Relaxed);
        let lat = &mut self.latency;
        if lat.count > 0 {
            for (i, n) in lat.buckets.iter_mut().enumerate() {
                if *n > 0 {
                    st.latency_buckets[i].fetch_add(std::mem::take(n), Ordering::Relaxed);
                }
            }
            st.latency_sum_ns
                .fetch_add(std::mem::take(&mut lat.sum), Ordering::Relaxed);
            st.latency_count
                .fetch_add(std::mem::take(&mut lat.count), Ordering::Relaxed);
        }
    }

    // ------------------------------------------------------------- inputs

    /// A connection accepted on `front` (socket `fd`, owned by the driver).
    /// Returns its index, or None when the connection limit refuses it (the
    /// driver closes it at once).
    pub(crate) fn handle_accept(&mut self, front: Front, fd: RawFd) -> Option<u32> {
        // At the connection limit the web front still takes a few plain
        // HTTP connections from a reserve, so monitoring (/metrics,
        // /healthz) answers when it matters most.
        let cfg = &self.shared.config;
        let reserved = if take_slot(&self.shared.connections, cfg.max_connections) {
            false
        } else if front == Front::Web && take_slot(&self.shared.http_connections, cfg.http_reserve)
        {
            true
        } else {
            self.stats().refused.fetch_add(1, Ordering::Relaxed);
            let (limit, label) = (cfg.max_connections, front.label());
            self.log_fd(
                crate::log::Event::ConnectionLimit,
                fd,
                label,
                u32::MAX,
                format_args!("connection refused: --max-connections ({limit}) reached"),
            );
            return None;
        };
        let gen = self.next_gen;
        self.next_gen = (self.next_gen + 1) & 0xFF_FFFF;
        let wire = match front {
            Front::Web => Wire::Http {
                deadline: self.now + self.shared.config.http_timeout.as_nanos() as u64,
            },
            Front::Native => Wire::Tcp,
            Front::Resp => {
                let id = self.shared.client_ids.fetch_add(1, Ordering::Relaxed) + 1;
                Wire::Resp(Box::new(RespConn::new(id)))
            }
        };
        let mut conn = Conn::new(fd, gen, wire);
        conn.reserved = reserved;
        self.stats().gauge_connections(conn.transport(), 1);
        self.stats().accepted.fetch_add(1, Ordering::Relaxed);
        let idx = self.conns.insert(conn) as u32;
        self.act(Action::Read(idx));
        if self.shutting_down {
            self.fail(idx, ErrorCode::ShuttingDown, "server shutting down", false);
        }
        Some(idx)
    }

    /// Bytes received on connection `idx`.
    pub(crate) fn handle_bytes(&mut self, idx: u32, data: &[u8]) {
        if let Wire::Ws(w) = &mut self.conns[idx as usize].wire {
            w.last_rx = self.now;
            w.pinged = false;
        }
        let frames = self.frames_in;
        self.on_bytes(idx, data);
        self.account_input(idx, self.frames_in != frames);
    }

    /// The peer closed its side: flush what is owed, then close.
    pub(crate) fn handle_eof(&mut self, idx: u32) {
        let c = &self.conns[idx as usize];
        match c.life {
            Life::Draining { .. } => {}
            Life::Closing { .. } => self.act(Action::ShutBoth(idx)),
            _ => {
                self.remove_all_subs(idx);
                self.drain(idx);
            }
        }
    }

    /// A receive was cancelled (the connection was told to stop reading):
    /// read again if it may go on meanwhile.
    pub(crate) fn handle_recv_cancelled(&mut self, idx: u32) {
        if self.conns[idx as usize].reads_requests() {
            self.act(Action::Read(idx));
        }
    }

    /// Whether the driver should keep a receive armed on `idx`.
    pub(crate) fn wants_input(&self, idx: u32) -> bool {
        self.conns
            .get(idx as usize)
            .is_some_and(|c| !matches!(c.life, Life::Closing { .. }) && !c.close_asked)
    }

    /// A send of connection `idx` completed with `res` (bytes, or -errno).
    pub(crate) fn handle_sent(&mut self, idx: u32, res: i32) {
        let pool = &self.shared.pool;
        let c = &mut self.conns[idx as usize];
        let hurried = c.hurried();
        // Bytes a hurried connection will never get (counted at shutdown).
        let mut dropped = 0;
        if (res == -libc::ECANCELED || res == -libc::EAGAIN) && hurried {
            // Cancelled so that its ERROR goes next, or no room right now
            // (MSG_DONTWAIT): nothing of it was sent.
            c.complete_send(pool, &mut self.arena, &mut self.owed, 0);
            dropped = c.drop_unsent(pool, &mut self.arena, &mut self.owed);
            if res == -libc::EAGAIN {
                let key = ConnKey {
                    index: idx,
                    gen: c.gen,
                };
                self.retry_sends.push(key);
                if self.shutting_down {
                    self.count_unflushed(idx, dropped as u64);
                }
                return;
            }
        } else if res <= 0 {
            c.sending = false;
            c.in_flight = 0;
            c.in_flight_bytes = 0;
            self.handle_reset(idx);
            return;
        } else {
            let frames = c.in_flight as u64;
            let short = c.complete_send(pool, &mut self.arena, &mut self.owed, res as usize);
            let st = &self.shared.stats[self.id];
            st.sends.fetch_add(1, Ordering::Relaxed);
            st.frames_sent.fetch_add(frames, Ordering::Relaxed);
            st.bytes_out[c.transport() as usize].fetch_add(res as u64, Ordering::Relaxed);
            if short {
                st.short_sends.fetch_add(1, Ordering::Relaxed);
            }
            // The peer is reading: a closing connection keeps its linger.
            if let Life::Draining { end, hurry, .. } = c.life {
                c.life = Life::Draining {
                    deadline: (self.now + NO_PROGRESS_NS).min(end),
                    end,
                    hurry,
                };
            }
            if hurried {
                dropped = c.drop_unsent(pool, &mut self.arena, &mut self.owed);
            }
        }
        if dropped > 0 && self.shutting_down {
            self.count_unflushed(idx, dropped as u64);
        }
        let c = &mut self.conns[idx as usize];
        if !c.outq.is_empty() {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
        } else if matches!(c.life, Life::Draining { .. }) && !c.holds() {
            self.begin_closing(idx);
        }
        self.maybe_finish(idx);
    }

    /// The connection failed (reset, a failed send or receive): tear it
    /// down at once.
    pub(crate) fn handle_reset(&mut self, idx: u32) {
        if !self.conns.contains(idx as usize) {
            return;
        }
        self.remove_all_subs(idx);
        self.forget_input(idx);
        let pool = &self.shared.pool;
        let c = &mut self.conns[idx as usize];
        c.drop_unsent(pool, &mut self.arena, &mut self.owed);
        if c.life != (Life::Closing { deadline: 0 }) {
            c.life = Life::Closing { deadline: 0 };
            self.act(Action::ShutBoth(idx));
        }
        self.maybe_finish(idx);
    }

    /// The end of a batch of inputs: cuts the connections whose backlog
    /// passed the limit during it, and takes the next teardown step.
    pub(crate) fn end_batch(&mut self) {
        self.cut_slow_consumers();
        self.flush_counts(false);
    }

    /// Once per loop turn: the time, and a bounded step of teardown.
    pub(crate) fn turn(&mut self, now: u64) {
        self.now = now;
        self.teardown_step();
        self.flush_counts(false);
    }

    /// The periodic tick: shutdown flag, deadlines, scans, retries.
    pub(crate) fn handle_tick(&mut self, now: u64) {
        self.now = now;
        self.flush_counts(true);
        self.relay_timeouts(now);
        self.log.tick(now);
        if !self.shutting_down && self.shared.shutdown.load(Ordering::Relaxed) {
            self.begin_shutdown();
        }
        // Connections being cut whose socket had no room: try again.
        for key in std::mem::take(&mut self.retry_sends) {
            match self.conns.get_mut(key.index as usize) {
                Some(c) if c.gen == key.gen && !c.sending && !c.dirty && !c.outq.is_empty() => {
                    c.dirty = true;
                    self.dirty.push(key.index);
                }
                _ => {}
            }
        }
        if now >= self.next_idle_scan {
            self.next_idle_scan = now + self.idle_scan_ns;
            self.scan_idle(now);
        }
        let unacked = self.unacked;
        let mut closing = std::mem::take(&mut self.closing);
        let mut shut = Vec::new();
        let mut lost = Vec::new();
        let shutting_down = self.shutting_down;
        closing.retain(|key| {
            let Some(c) = self.conns.get_mut(key.index as usize) else {
                return false;
            };
            if c.gen != key.gen {
                return false;
            }
            match c.life {
                // A send waiting for room completes only once the kernel
                // calls the socket writable again (half its queue drained),
                // which takes seconds for a slow reader: look at the queue
                // itself before deciding the peer stopped reading.
                Life::Draining {
                    deadline,
                    end,
                    hurry,
                } if now >= deadline && now < end && {
                    let queued = unacked(c.fd);
                    let reading = queued < c.kernel_queued;
                    c.kernel_queued = queued;
                    reading
                } =>
                {
                    c.life = Life::Draining {
                        deadline: (now + NO_PROGRESS_NS).min(end),
                        end,
                        hurry,
                    };
                    true
                }
                Life::Draining { deadline, .. } | Life::Closing { deadline } if now >= deadline => {
                    if matches!(c.life, Life::Draining { .. }) && !c.outq.is_empty() {
                        // Its ERROR (or close) never reached the kernel.
                        self.shared.stats[self.id].count_cut(CutReason::Linger);
                    }
                    if shutting_down && matches!(c.life, Life::Draining { .. }) {
                        lost.push((key.index, c.queued as u64 + u64::from(unacked(c.fd))));
                    }
                    c.life = Life::Closing { deadline: 0 };
                    shut.push(key.index);
                    true
                }
                Life::Draining { .. } | Life::Closing { .. } => true,
                _ => false,
            }
        });
        self.closing = closing;
        for (idx, bytes) in lost {
            self.count_unflushed(idx, bytes);
        }
        for idx in shut {
            self.act(Action::ShutBoth(idx));
            self.maybe_finish(idx);
        }
        if self.shutting_down && !self.shutdown_hurried && now >= self.shutdown_hurry_at {
            // Half the shutdown time is gone: whoever has not flushed gets
            // ERROR 8 next instead of after everything it is owed.
            self.shutdown_hurried = true;
            let slow: Vec<u32> = self
                .conns
                .iter()
                .filter(|(_, c)| c.outq.len() > usize::from(c.trailer) && !c.hurried())
                .map(|(i, _)| i as u32)
                .collect();
            for idx in slow {
                // Owed more than its ERROR 8: what is dropped never reaches it.
                let before = self.conns[idx as usize].queued;
                self.hurry(idx);
                let dropped = before - self.conns[idx as usize].queued;
                self.count_unflushed(idx, dropped as u64);
            }
        }
        if self.shutting_down && now >= self.shutdown_deadline {
            let all: Vec<u32> = self.conns.iter().map(|(i, _)| i as u32).collect();
            for idx in all {
                // Still queued here or in the kernel's send buffer: lost
                // with the reset (one already cut was counted then).
                let c = &self.conns[idx as usize];
                if c.life != (Life::Closing { deadline: 0 }) {
                    let owed = c.queued as u64 + u64::from(unacked(c.fd));
                    self.count_unflushed(idx, owed);
                }
                self.handle_reset(idx);
            }
        }
    }

    /// Counts `bytes` a shutdown leaves connection `idx` without; the
    /// connection itself once, however often its bytes are counted.
    fn count_unflushed(&mut self, idx: u32, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let key = ConnKey {
            index: idx,
            gen: self.conns[idx as usize].gen,
        };
        let first = self.unflushed.insert(key);
        self.stats().count_unflushed(u64::from(first), bytes);
    }

    /// Every connection is gone (the driver stops once its accepts are too).
    pub(crate) fn finished(&self) -> bool {
        self.shutting_down && self.conns.is_empty()
    }

    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let timeout = self.shared.config.shutdown_timeout.as_nanos() as u64;
        self.shutdown_deadline = self.now + timeout;
        self.shutdown_hurry_at = self.now + timeout / 2;
        let all: Vec<u32> = self.conns.iter().map(|(i, _)| i as u32).collect();
        for idx in all {
            self.fail(idx, ErrorCode::ShuttingDown, "server shutting down", false);
        }
    }

    // ------------------------------------------------------- life cycle

    /// Encodes a reply into frame memory (as a WebSocket message for a
    /// WebSocket connection) and queues it for the connection.
    pub(crate) fn reply(&mut self, idx: u32, frame: &ServerFrame<'_>) {
        let len = frame.encoded_len();
        let mut f = self.arena.alloc(&self.shared.pool, len);
        // SAFETY: just allocated, no other reference exists.
        frame.encode_to_slice(unsafe { f.bytes_mut() });
        if self.conns[idx as usize].is_ws() {
            f = pubsub::with_ws_header(f);
        }
        self.queue(idx, f);
    }

    /// Queues a frame for connection `idx` and lists it for a send. Every
    /// frame counts toward the connection's backlog limit, replies and
    /// control frames as much as DATA.
    pub(crate) fn queue(&mut self, idx: u32, f: FrameRef) {
        let limit = self.shared.config.max_backlog;
        let c = &mut self.conns[idx as usize];
        enqueue(
            c,
            idx,
            f,
            limit,
            &mut self.owed,
            &mut self.dirty,
            &mut self.over_limit,
        );
    }

    /// Encodes a frame of `len` bytes into frame memory with `write`
    /// (which fills the whole slice it is given) and queues it.
    pub(crate) fn queue_encoded(&mut self, idx: u32, len: usize, write: impl FnOnce(&mut [u8])) {
        let mut f = self.arena.alloc(&self.shared.pool, len);
        // SAFETY: just allocated, no other reference exists.
        write(unsafe { f.bytes_mut() });
        self.queue(idx, f);
    }

    /// Copies `bytes` into frame memory and queues them.
    pub(crate) fn queue_bytes(&mut self, idx: u32, bytes: &[u8]) {
        self.queue_encoded(idx, bytes.len(), |out| out.copy_from_slice(bytes));
    }

    /// Ends a connection with an ERROR frame. With `drop_backlog`, frames
    /// not yet handed to the kernel are dropped and the ERROR goes next
    /// (slow consumers); otherwise what is owed is flushed before it.
    pub(crate) fn fail(&mut self, idx: u32, code: ErrorCode, reason: &str, drop_backlog: bool) {
        if !self.conns[idx as usize].is_live() {
            return;
        }
        self.log_failure(idx, code, reason);
        self.remove_all_subs(idx);
        match self.conns[idx as usize].wire {
            // Not speaking the native protocol (yet): nothing to say. Redis
            // closes a connection it cuts off without a word.
            Wire::Http { .. } | Wire::Resp(_) => {
                if drop_backlog {
                    let pool = &self.shared.pool;
                    let c = &mut self.conns[idx as usize];
                    c.drop_unsent(pool, &mut self.arena, &mut self.owed);
                }
            }
            _ => {
                self.stats().count_error(code);
                if drop_backlog {
                    let pool = &self.shared.pool;
                    let c = &mut self.conns[idx as usize];
                    c.drop_unsent(pool, &mut self.arena, &mut self.owed);
                }
                self.reply(
                    idx,
                    &ServerFrame::Error {
                        code: code as u16,
                        topic: None,
                        message: reason,
                    },
                );
                self.conns[idx as usize].trailer += 1;
                if self.conns[idx as usize].is_ws() {
                    let close = code.ws_close_code().unwrap_or(1011);
                    self.ws_queue_close(idx, close, code.description());
                }
            }
        }
        self.drain(idx);
        if drop_backlog {
            self.hurry(idx);
        }
    }

    /// Makes the frames that end connection `idx` (its trailer) go out
    /// next: drops what is owed before them and not yet handed to the
    /// kernel, and cancels a send still waiting in the kernel (its
    /// completion drops the rest: see `handle_sent`). At most the rest of
    /// one frame already partly sent precedes the trailer.
    pub(crate) fn hurry(&mut self, idx: u32) {
        let pool = &self.shared.pool;
        let c = &mut self.conns[idx as usize];
        if let Life::Draining { deadline, end, .. } = c.life {
            c.life = Life::Draining {
                deadline,
                end,
                hurry: true,
            };
        }
        c.drop_unsent(pool, &mut self.arena, &mut self.owed);
        if c.sending {
            self.act(Action::CancelSend(idx));
        }
    }

    /// Stops reading requests from a connection and ends its subscriptions:
    /// what is queued is flushed while the peer keeps taking it (at most
    /// `close_linger`, or until the shutdown deadline), then the write side
    /// is shut.
    pub(crate) fn drain(&mut self, idx: u32) {
        // It reads no more requests and gets no more frames: its
        // subscriptions go (it is not freed before they are gone).
        self.remove_all_subs(idx);
        let now = self.now;
        let end = if self.shutting_down {
            self.shutdown_deadline
        } else {
            now + self.shared.config.close_linger.as_nanos() as u64
        };
        self.forget_input(idx);
        let unacked = self.unacked;
        let c = &mut self.conns[idx as usize];
        c.kernel_queued = unacked(c.fd);
        c.life = Life::Draining {
            deadline: (now + NO_PROGRESS_NS).min(end),
            end,
            hurry: false,
        };
        self.closing.push(ConnKey {
            index: idx,
            gen: c.gen,
        });
        if !c.sending && c.outq.is_empty() && !c.holds() {
            self.begin_closing(idx);
        }
    }

    /// A connection that reads no more requests holds no input.
    fn forget_input(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        self.incomplete -= c.held as usize;
        c.held = 0;
        c.partial_since = 0;
        c.inbuf = Vec::new();
        if let Wire::Ws(w) = &mut c.wire {
            w.decoder = None;
        }
    }

    /// Everything owed was written: shut the write side (the peer reads
    /// EOF after the last frame) and wait for its close.
    fn begin_closing(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        c.life = Life::Closing {
            deadline: self.now + LINGER_NS,
        };
        self.act(Action::ShutWrite(idx));
        // The driver closes it once the peer's EOF (or the deadline's
        // shutdown) ends its receive.
        self.maybe_finish(idx);
    }

    /// Asks the driver to close the connection once it is closing and its
    /// subscriptions are gone (the driver waits for its ops in flight).
    pub(crate) fn maybe_finish(&mut self, idx: u32) {
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return;
        };
        if !matches!(c.life, Life::Closing { .. }) || c.nsubs > 0 || c.close_asked {
            return;
        }
        c.close_asked = true;
        self.act(Action::Close(idx));
    }

    /// The driver closed connection `idx`'s socket (no op refers to it):
    /// frees its slot and its frames.
    pub(crate) fn release(&mut self, idx: u32) {
        let pool = &self.shared.pool;
        let mut c = self.conns.remove(idx as usize);
        debug_assert!(!c.sending && c.nsubs == 0);
        c.release_all(pool, &mut self.arena, &mut self.owed);
        let count = if c.reserved {
            &self.shared.http_connections
        } else {
            &self.shared.connections
        };
        count.fetch_sub(1, Ordering::Relaxed);
        let st = &self.shared.stats[self.id];
        st.closed.fetch_add(1, Ordering::Relaxed);
        st.gauge_connections(c.transport(), -1);
    }

    /// Cuts every connection whose backlog passed the limit during the last
    /// fan-out (deferred so subscriber lists are not changed mid-iteration).
    fn cut_slow_consumers(&mut self) {
        while let Some(idx) = self.over_limit.pop() {
            let Some(c) = self.conns.get_mut(idx as usize) else {
                continue;
            };
            if c.life != Life::Overflowing {
                continue;
            }
            let (transport, queued) = (c.transport() as usize, c.queued);
            self.stats().slow_consumers[transport].fetch_add(1, Ordering::Relaxed);
            self.stats().count_cut(CutReason::Backlog);
            let limit = self.shared.config.max_backlog;
            self.log_conn(
                idx,
                crate::log::Event::SlowConsumer,
                format_args!(
                    "slow consumer cut off: {queued} bytes queued, over --max-backlog ({limit}); \
                     unsent frames dropped, ERROR 6 sent"
                ),
            );
            let reason =
                format!("slow consumer: more than {limit} bytes queued for this connection");
            self.fail(idx, ErrorCode::SlowConsumer, &reason, true);
        }
    }

    /// Removes up to [`TEARDOWN_BUDGET`] subscriptions of connections that
    /// are going away, and frees those that are done.
    fn teardown_step(&mut self) {
        let mut budget = TEARDOWN_BUDGET;
        while let Some(&idx) = self.teardown.front() {
            budget -= self.drop_subs(idx, budget);
            if self.conns[idx as usize].nsubs > 0 {
                break; // budget spent
            }
            self.teardown.pop_front();
            self.conns[idx as usize].in_teardown = false;
            self.maybe_finish(idx);
            if budget == 0 {
                break;
            }
        }
    }

    /// Drops the subscriptions of a connection that is going away: at once
    /// when they are few, else through the teardown queue, a bounded number
    /// per loop turn (the connection gets no frames meanwhile: it is no
    /// longer open, and is not freed before its subscriptions are gone).
    pub(crate) fn remove_all_subs(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if c.nsubs as usize <= TEARDOWN_INLINE {
            self.drop_subs(idx, usize::MAX);
        } else if !c.in_teardown {
            c.in_teardown = true;
            self.teardown.push_back(idx);
        }
    }

    /// Counts the incomplete input connection `idx` holds now (`progress`:
    /// a frame completed since the last count, so what is left began
    /// now), and cuts the largest holders while this core holds more than
    /// its share of `max_incomplete`.
    fn account_input(&mut self, idx: u32, progress: bool) {
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return;
        };
        let held = if c.is_live() {
            c.inbuf.len()
                + match &c.wire {
                    Wire::Ws(w) => w.decoder.as_ref().map_or(0, |d| d.buffered()),
                    _ => 0,
                }
        } else {
            0
        };
        // Input is at most one frame plus the paused slack (validated far
        // below 4 GiB), so it fits the u32.
        let held = held as u32;
        self.incomplete = self.incomplete + held as usize - c.held as usize;
        c.held = held;
        if held == 0 {
            c.partial_since = 0;
        } else if progress || c.partial_since == 0 {
            c.partial_since = self.now.max(1);
        }
        let budget = self.shared.config.max_incomplete / self.cores;
        while self.incomplete > budget {
            let largest = self
                .conns
                .iter()
                .filter(|(_, c)| c.is_live())
                .max_by_key(|(_, c)| c.held)
                .map(|(i, _)| i as u32);
            let Some(victim) = largest else { break };
            if self.conns[victim as usize].held == 0 {
                debug_assert!(false, "incomplete bytes counted but held by nobody");
                break;
            }
            self.stats().count_cut(CutReason::InputMemory);
            let reason = format!(
                "incomplete frame: the server holds more than {} bytes of incomplete frames and this connection held the most ({} bytes)",
                self.shared.config.max_incomplete, self.conns[victim as usize].held
            );
            self.fail(victim, ErrorCode::Incomplete, &reason, false);
        }
    }

    /// Every `idle_scan_ns`: frames not completed in time, silent WebSocket
    /// peers (pinged, then closed), HTTP requests past their deadline.
    fn scan_idle(&mut self, now: u64) {
        let cfg = &self.shared.config;
        let ping_after = cfg.ws_ping_interval.as_nanos() as u64;
        let idle_after = cfg.ws_idle_timeout.as_nanos() as u64;
        let frame_after = cfg.frame_timeout.as_nanos() as u64;
        let mut ping = Vec::new();
        let mut idle = Vec::new();
        let mut late = Vec::new();
        let mut stalled = Vec::new();
        for (i, c) in self.conns.iter_mut() {
            if !c.is_live() {
                continue;
            }
            c.trim();
            // A frame begun and not finished in time (not while the engine
            // itself holds the connection's input: paused).
            let partial = c.partial_since != 0 && !matches!(c.wire, Wire::Http { .. });
            if partial
                && c.life != Life::Paused
                && now.saturating_sub(c.partial_since) >= frame_after
            {
                stalled.push(i as u32);
                continue;
            }
            match &c.wire {
                Wire::Ws(w) if !w.close_sent => {
                    // A peer is always pinged before it is closed for
                    // silence, and any bytes from it (a pong) clear both.
                    let silent = now.saturating_sub(w.last_rx);
                    if silent >= ping_after && !w.pinged {
                        ping.push(i as u32);
                    } else if silent >= idle_after && w.pinged {
                        idle.push(i as u32);
                    }
                }
                Wire::Http { deadline } if now >= *deadline => late.push(i as u32),
                _ => {}
            }
        }
        for idx in stalled {
            self.stats().count_cut(CutReason::IncompleteFrame);
            let reason = format!(
                "incomplete frame: begun but not completed within {:?} (--frame-timeout)",
                self.shared.config.frame_timeout
            );
            self.fail(idx, ErrorCode::Incomplete, &reason, false);
        }
        self.scan_web(ping, idle, late);
    }
}

/// The most connections one core may hold: every connection slot, plus the
/// plain HTTP connections taken beyond them. The per-connection vectors are
/// created with this capacity, so they never grow (a growth may copy every
/// entry into a new block, and doubling leaves up to half of it unused):
/// address space reserved and never touched costs no memory, and each entry
/// becomes resident when first used.
pub(crate) fn max_conns(c: &Config) -> usize {
    c.max_connections
        .saturating_add(c.http_reserve)
        .min(MAX_RESERVED_CONNS)
}

/// Cap on the connections [`max_conns`] reserves room for (the open-file
/// limit caps the real number far below it).
const MAX_RESERVED_CONNS: usize = 1 << 24;

/// Takes one of `limit` slots counted by `count`; false when none is free.
pub(crate) fn take_slot(count: &AtomicUsize, limit: usize) -> bool {
    if count.fetch_add(1, Ordering::Relaxed) >= limit {
        count.fetch_sub(1, Ordering::Relaxed);
        return false;
    }
    true
}

/// How often to look for silent WebSocket peers, late HTTP requests and
/// frames not completed in time: a quarter of the smallest interval that
/// matters, between one tick and 1 s.
pub(crate) fn idle_scan_period(c: &Config) -> u64 {
    let ns = |d: std::time::Duration| d.as_nanos() as u64;
    let ping = ns(c.ws_ping_interval);
    let answer = ns(c.ws_idle_timeout).saturating_sub(ping);
    let finest = ping
        .min(answer)
        .min(ns(c.http_timeout))
        .min(ns(c.frame_timeout));
    (finest / 4).clamp(TICK_NS, IDLE_SCAN_NS)
}

/// The `ts_ns` of a DATA frame at the start of `bytes` (after a WebSocket
/// header when `ws_len_byte` is 1: its second byte tells the header's
/// length); None for any other frame.
fn data_ts(bytes: &[u8], ws_len_byte: usize) -> Option<u64> {
    let off = if ws_len_byte == 1 {
        // Only a final binary message can carry a DATA frame.
        if *bytes.first()? != 0x82 {
            return None;
        }
        match bytes.get(1)? & 0x7F {
            126 => 4,
            127 => 10,
            _ => 2,
        }
    } else {
        0
    };
    proto::DataView::new(bytes.get(off..)?).map(|d| d.ts_ns())
}

// The in-memory multi-core simulation: unit tests, and the `topics` fuzz
// target (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod tests;

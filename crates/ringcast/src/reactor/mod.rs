//! One io_uring per core: submit, reap, dispatch.
//!
//! A loop iteration:
//! 1. drain the inbound mailboxes (publishes to own, frames to deliver,
//!    join/leave requests and their answers);
//! 2. turn every connection with frames owed and no send in flight (the
//!    dirty list) into one send SQE, queue wake-ups for other cores;
//! 3. one `io_uring_enter`: submit everything, wait for a completion
//!    (or, with busy polling, do not wait);
//! 4. handle the completions: accepted sockets, received bytes (parsed
//!    frames are acted on at once: a PUBLISH is encoded, stamped and fanned
//!    out before the next frame is read), finished sends, the tick.
//!
//! `user_data` is an [`Op`] token: kind in the top byte, then a 24-bit
//! generation and a 32-bit slab index, so a completion for a reused slot is
//! told from one for its new owner.

mod handle;
mod ring;
mod web;

use crate::conn::{Conn, State, Wire};
use crate::mailbox::{Consumer, Producer};
use crate::pool::{Arena, FrameRef, Pool};
use crate::proto::{self, ErrorCode};
use crate::stats::{CoreStats, CutReason, LATENCY_BUCKETS_NS};
use crate::sys;
use crate::topic::{ConnKey, TopicTable};
use crate::Config;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use ring::BufRing;
use slab::Slab;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) use ring::{build_ring, RingFeatures};

/// Builds an op on connection `$c` (slab index `$idx`): by its fixed-file
/// slot when it has one, by its fd otherwise. (The crate's fd target type
/// cannot be named, hence a macro.)
macro_rules! on_socket {
    ($c:expr, $idx:expr, |$t:ident| $build:expr) => {
        if $c.fixed {
            let $t = types::Fixed($idx);
            $build
        } else {
            let $t = types::Fd($c.fd);
            $build
        }
    };
}

/// Messages between reactors. Every one travels on the FIFO queue of one
/// ordered pair of cores.
pub(crate) enum Msg {
    /// To a topic's owner: an encoded DATA frame (seq not yet set).
    Publish(FrameRef),
    /// From a topic's owner: a frame to hand to this core's subscribers.
    Deliver(FrameRef),
    /// To a topic's owner: core `core` has its first subscriber.
    Join { topic: Box<[u8]>, core: usize },
    /// From the owner: frames of `topic` from `next_seq` on will follow;
    /// `epoch` names this incarnation of the topic's sequence.
    Joined {
        topic: Box<[u8]>,
        next_seq: u64,
        epoch: u64,
    },
    /// From the owner: the topic could not be created (topic limit).
    JoinRefused { topic: Box<[u8]> },
    /// To a topic's owner: core `core` has no subscribers left.
    Leave { topic: Box<[u8]>, core: usize },
}

/// State every reactor shares, read-mostly.
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
}

/// A reactor's "about to sleep in the kernel" flag, on its own cache line.
#[repr(align(64))]
pub(crate) struct Parked(pub AtomicBool);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum OpKind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Tick = 4,
    Ignore = 5,
}

#[derive(Clone, Copy, Debug)]
struct Op {
    kind: OpKind,
    gen: u32,
    index: u32,
}

impl Op {
    fn conn(kind: OpKind, key: ConnKey) -> u64 {
        Op {
            kind,
            gen: key.gen,
            index: key.index,
        }
        .encode()
    }
    fn accept(listener: usize) -> u64 {
        Op {
            kind: OpKind::Accept,
            gen: 0,
            index: listener as u32,
        }
        .encode()
    }
    fn plain(kind: OpKind) -> u64 {
        Op {
            kind,
            gen: 0,
            index: 0,
        }
        .encode()
    }
    fn encode(self) -> u64 {
        (self.kind as u64) << 56 | ((self.gen as u64) & 0xFF_FFFF) << 32 | self.index as u64
    }
    fn decode(v: u64) -> Option<Op> {
        let kind = match (v >> 56) as u8 {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Tick,
            5 => OpKind::Ignore,
            _ => return None,
        };
        Some(Op {
            kind,
            gen: ((v >> 32) & 0xFF_FFFF) as u32,
            index: v as u32,
        })
    }
}

/// How long a closing connection waits for the peer's EOF after its write
/// side was shut (what it was sent is already in the kernel's hands).
const LINGER_NS: u64 = 2_000_000_000;
/// Housekeeping period: deadlines, shutdown flag.
const TICK_NS: u32 = 50_000_000;
/// Buffer group id of the receive buffer ring.
const BGID: u16 = 7;
/// Longest period between checks of WebSocket peers for silence and of
/// HTTP requests for their deadline (shorter when the configured intervals
/// need it, never below the tick).
const IDLE_SCAN_NS: u64 = 1_000_000_000;
/// Listener indices in an Accept op's `index`.
const TCP: usize = 0;
const WS: usize = 1;
/// Sends submitted per chunk of a round before the reactor looks for new
/// input (about 2.5 ms of loopback sends at ~10 µs each).
const SEND_CHUNK: usize = 256;
/// A closing connection with at most this many subscriptions drops them at
/// once; one with more goes through the teardown queue.
pub(super) const TEARDOWN_INLINE: usize = 64;
/// Subscriptions the teardown queue removes per loop turn (about 50 ns
/// each: ~0.1-0.2 ms of a turn, whatever the number of connections leaving).
const TEARDOWN_BUDGET: usize = 2048;
/// A connection being closed that takes nothing for this long is closed
/// without waiting for the rest of its linger.
const NO_PROGRESS_NS: u64 = 2_000_000_000;
/// Connections a reactor sheds per accept error when out of descriptors.
const SHED_BATCH: usize = 256;
/// What an HTTP client shed for lack of descriptors reads.
const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 56\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
\r\n\
ringcast is out of file descriptors; try again shortly.\n";

/// Publish → send-submitted samples gathered during one loop iteration,
/// added to the shared counters once per iteration.
#[derive(Default)]
struct LatencyBatch {
    buckets: [u64; LATENCY_BUCKETS_NS.len() + 1],
    sum: u64,
    count: u64,
}

pub(crate) struct Reactor {
    // Field order is drop order: the ring goes first, so the kernel lets go
    // of the buffer ring and the send buffers before their memory is freed.
    ring: IoUring,
    bufs: BufRing,
    id: usize,
    cores: usize,
    shared: Arc<Shared>,
    features: RingFeatures,
    arena: Arena,
    /// [TCP, WebSocket/HTTP] listeners and whether their multishot accept is armed.
    listeners: [Option<OwnedFd>; 2],
    accept_armed: [bool; 2],
    conns: Slab<Conn>,
    next_gen: u32,
    topics: TopicTable,
    /// The last epoch given to a topic this core created.
    last_epoch: u64,
    /// Connections whose subscriptions are being removed, a bounded number
    /// per loop turn (front first).
    teardown: VecDeque<u32>,
    /// Bytes of incomplete input held by this core's connections (the sum
    /// of their `held`), bounded by its share of `max_incomplete`.
    incomplete: usize,
    /// A descriptor kept open to be closed when accept fails for lack of
    /// descriptors, so a waiting client can be accepted and told.
    spare_fd: Option<OwnedFd>,
    /// Connections being cut whose MSG_DONTWAIT send found no room: sent
    /// to again on the next tick.
    retry_sends: Vec<ConnKey>,
    outboxes: Vec<Option<Producer<Msg>>>,
    overflow: Vec<VecDeque<Msg>>,
    inboxes: Vec<Option<Consumer<Msg>>>,
    ring_fds: Vec<RawFd>,
    wake: Vec<bool>,
    dirty: Vec<u32>,
    rearm: Vec<u32>,
    over_limit: Vec<u32>,
    closing: Vec<ConnKey>,
    cqes: Vec<(u64, i32, u32)>,
    tick: Box<types::Timespec>,
    tick_armed: bool,
    shutting_down: bool,
    shutdown_deadline: u64,
    /// When connections still flushing at shutdown get ERROR 8 next.
    shutdown_hurry_at: u64,
    shutdown_hurried: bool,
    /// Frames handled from clients (native, or one per WebSocket message):
    /// tells whether a receive completed any.
    frames_in: u64,
    /// Monotonic ns, read once per loop iteration after the kernel returns.
    now: u64,
    next_idle_scan: u64,
    idle_scan_ns: u64,
    /// Bytes queued for this core's connections (the backlog gauge).
    backlog: i64,
    latency: LatencyBatch,
}

/// What a reactor thread needs besides its ring.
pub(crate) struct ReactorParts {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub listener: OwnedFd,
    pub ws_listener: Option<OwnedFd>,
    pub outboxes: Vec<Option<Producer<Msg>>>,
    pub inboxes: Vec<Option<Consumer<Msg>>>,
}

impl Reactor {
    /// Sets up the ring on the calling thread (SINGLE_ISSUER makes that
    /// thread the only submitter), registers the shared frame region and the
    /// receive buffers.
    pub fn new(parts: ReactorParts) -> std::io::Result<Reactor> {
        let (ring, features) = build_ring(&parts.shared)?;
        let bufs = BufRing::new(&ring, BGID)?;
        let cores = parts.outboxes.len();
        let idle_scan_ns = idle_scan_period(&parts.shared.config);
        let epoch = parts.shared.epoch;
        Ok(Reactor {
            ring,
            bufs,
            id: parts.id,
            cores,
            arena: Arena::new(&parts.shared.pool, parts.id),
            shared: parts.shared,
            features,
            listeners: [Some(parts.listener), parts.ws_listener],
            accept_armed: [false; 2],
            conns: Slab::with_capacity(1024),
            next_gen: 1,
            topics: TopicTable::default(),
            last_epoch: epoch,
            teardown: VecDeque::new(),
            incomplete: 0,
            spare_fd: sys::open_spare().ok(),
            retry_sends: Vec::new(),
            outboxes: parts.outboxes,
            overflow: (0..cores).map(|_| VecDeque::new()).collect(),
            inboxes: parts.inboxes,
            ring_fds: Vec::new(),
            wake: vec![false; cores],
            dirty: Vec::with_capacity(1024),
            rearm: Vec::with_capacity(64),
            over_limit: Vec::with_capacity(64),
            closing: Vec::with_capacity(64),
            cqes: Vec::with_capacity(4096),
            tick: Box::new(types::Timespec::new().nsec(TICK_NS)),
            tick_armed: false,
            shutting_down: false,
            shutdown_deadline: 0,
            shutdown_hurry_at: 0,
            shutdown_hurried: false,
            frames_in: 0,
            now: sys::monotonic_ns(),
            next_idle_scan: 0,
            idle_scan_ns,
            backlog: 0,
            latency: LatencyBatch::default(),
        })
    }

    pub fn ring_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    pub fn features(&self) -> RingFeatures {
        self.features
    }

    fn stats(&self) -> &CoreStats {
        &self.shared.stats[self.id]
    }

    /// Runs until a graceful shutdown completes. Gives the ring back so the
    /// engine can close every ring only after all reactors stopped (a
    /// MSG_RING must never target a closed, reused fd).
    /// Calls `started` once the reactor counts as running (for /healthz).
    pub fn run(mut self, ring_fds: Vec<RawFd>, started: impl FnOnce()) -> std::io::Result<IoUring> {
        self.ring_fds = ring_fds;
        self.arm_accept();
        self.arm_tick();
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        started();
        let busy = self.shared.config.busy_poll;
        let (mut loops, mut busy_ns) = (0u64, 0u64);
        let mut woke = sys::monotonic_ns();
        let result = loop {
            self.drain_inboxes();
            self.teardown_step();
            self.flush();
            self.publish_gauges();
            if self.shutting_down && self.finished() {
                break Ok(());
            }
            // Connections that became dirty during the round are sent to
            // next, teardown goes on: no sleeping while any wait.
            let wait = !busy && self.dirty.is_empty() && self.teardown.is_empty() && self.park();
            let sleep = sys::monotonic_ns();
            busy_ns += sleep - woke;
            loops += 1;
            let st = &self.shared.stats[self.id];
            st.loops.store(loops, Ordering::Relaxed);
            st.busy_ns.store(busy_ns, Ordering::Relaxed);
            if let Err(e) = self.enter(wait) {
                break Err(e);
            }
            woke = sys::monotonic_ns();
            self.now = woke;
            self.shared.parked[self.id]
                .0
                .store(false, Ordering::Relaxed);
            self.reap();
        };
        self.shared.running.fetch_sub(1, Ordering::SeqCst);
        self.shared.parked[self.id].0.store(false, Ordering::SeqCst);
        result.map(|()| self.ring)
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

    /// Publishes this core's gauges and the iteration's latency samples.
    fn publish_gauges(&mut self) {
        let st = &self.shared.stats[self.id];
        st.backlog_bytes.store(self.backlog, Ordering::Relaxed);
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

    /// Announces that this reactor is about to sleep; says whether it may
    /// (nothing arrived in the meantime).
    fn park(&self) -> bool {
        self.shared.parked[self.id].0.store(true, Ordering::SeqCst);
        // Messages held back by a full queue must be retried without a
        // wake-up from the consumer: do not sleep while any are waiting.
        let idle = self.inboxes.iter().flatten().all(|c| c.is_empty())
            && self.overflow.iter().all(|q| q.is_empty());
        if !idle {
            self.shared.parked[self.id]
                .0
                .store(false, Ordering::Relaxed);
        }
        idle
    }

    fn enter(&mut self, wait: bool) -> std::io::Result<()> {
        loop {
            let res = if wait {
                self.ring.submit_and_wait(1)
            } else {
                let n = self.ring.submission().len() as u32;
                // SAFETY: a plain io_uring_enter with no argument struct; the
                // SQ tail was synced when the SubmissionQueue guard dropped.
                unsafe {
                    self.ring.submitter().enter::<libc::sigset_t>(
                        n,
                        0,
                        io_uring::EnterFlags::GETEVENTS.bits(),
                        None,
                    )
                }
            };
            match res {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues an SQE, submitting first when the SQ is full.
    fn push_sqe(&mut self, sqe: &squeue::Entry) {
        loop {
            // SAFETY: every SQE pushed here points only at memory that the
            // reactor keeps alive until its completion: frames held by the
            // connection's send queue, the connection's boxed SendBuf, the
            // boxed tick timespec, the buffer ring owned by `self.bufs`.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return;
            }
            // A full SQ: hand it to the kernel. EBUSY (CQ overflowing),
            // EAGAIN/ENOMEM (kernel short of memory) and EINTR are transient:
            // handle completions, then try again.
            if self.ring.submit().is_err() {
                self.reap();
            }
        }
    }

    fn arm_accept(&mut self) {
        if self.shutting_down {
            return;
        }
        for which in [TCP, WS] {
            if self.accept_armed[which] {
                continue;
            }
            if let Some(l) = &self.listeners[which] {
                let sqe = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd()))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(Op::accept(which));
                self.push_sqe(&sqe);
                self.accept_armed[which] = true;
            }
        }
    }

    fn arm_tick(&mut self) {
        let sqe = opcode::Timeout::new(&*self.tick as *const types::Timespec)
            .flags(types::TimeoutFlags::MULTISHOT)
            .build()
            .user_data(Op::plain(OpKind::Tick));
        self.push_sqe(&sqe);
        self.tick_armed = true;
    }

    fn arm_recv(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if c.recv_armed || c.state != State::Open && !matches!(c.state, State::Draining { .. }) {
            return;
        }
        let key = ConnKey {
            index: idx,
            gen: c.gen,
        };
        c.recv_armed = true;
        c.ops += 1;
        let sqe = on_socket!(c, idx, |t| opcode::RecvMulti::new(t, BGID).build())
            .user_data(Op::conn(OpKind::Recv, key));
        self.push_sqe(&sqe);
    }

    /// Drains every inbound queue once.
    fn drain_inboxes(&mut self) {
        for from in 0..self.cores {
            while let Some(msg) = self.inboxes[from].as_mut().and_then(|c| c.pop()) {
                self.handle_msg(msg);
            }
        }
        self.cut_slow_consumers();
    }

    /// Sends `msg` to core `to`, keeping FIFO order when its queue is full.
    fn send_msg(&mut self, to: usize, msg: Msg) {
        let q = &mut self.overflow[to];
        if q.is_empty() {
            if let Err(back) = self.outboxes[to]
                .as_mut()
                .expect("no queue to self")
                .push(msg)
            {
                q.push_back(back);
            }
        } else {
            q.push_back(msg);
        }
        if self.shared.parked[to].0.swap(false, Ordering::SeqCst) {
            self.wake[to] = true;
        }
    }

    /// Submits a send for every connection that has frames owed and no send
    /// in flight, re-arms receives, retries queue overflow, wakes cores.
    fn flush(&mut self) {
        for to in 0..self.cores {
            while let Some(msg) = self.overflow[to].pop_front() {
                if let Err(back) = self.outboxes[to]
                    .as_mut()
                    .expect("no queue to self")
                    .push(msg)
                {
                    self.overflow[to].push_front(back);
                    break;
                }
                self.wake[to] = true;
            }
            if !self.overflow[to].is_empty() {
                self.wake[to] = true;
            }
        }
        // The round: one send for every connection dirty when it starts, in
        // chunks. Between chunks the kernel gets the chunk and the reactor
        // takes in what arrived meanwhile, so a frame published mid-round
        // still reaches every subscriber not yet sent to in this round
        // (queued behind the dirty flag) instead of waiting for the next.
        // Connections that become dirty again during the round (their send
        // completed and more is owed) are left for the next round.
        let end = self.dirty.len();
        let mut i = 0;
        while i < end {
            if i > 0 {
                self.interleave();
            }
            // One clock read stamps every send of this chunk.
            let now = sys::realtime_ns();
            let chunk_end = end.min(i + SEND_CHUNK);
            while i < chunk_end {
                let idx = self.dirty[i];
                i += 1;
                self.submit_send(idx, now);
            }
        }
        self.dirty.drain(..end);
        let rearm = std::mem::take(&mut self.rearm);
        for &idx in &rearm {
            if self.conns.contains(idx as usize) {
                self.arm_recv(idx);
            }
        }
        self.rearm = rearm;
        self.rearm.clear();
        self.post_wakes();
    }

    /// Posts a MSG_RING to every core that was found parked by a message.
    fn post_wakes(&mut self) {
        for to in 0..self.cores {
            if std::mem::take(&mut self.wake[to]) {
                let sqe = opcode::MsgRingData::new(types::Fd(self.ring_fds[to]), 0, 0, None)
                    .build()
                    .user_data(Op::plain(OpKind::Ignore));
                self.push_sqe(&sqe);
            }
        }
    }

    /// Mid-round: submits what is queued without waiting, then handles the
    /// completions and messages that arrived (publishes among them).
    fn interleave(&mut self) {
        self.post_wakes();
        if self.enter(false).is_ok() {
            self.now = sys::monotonic_ns();
            self.reap();
        }
        self.drain_inboxes();
    }

    fn submit_send(&mut self, idx: u32, now_rt: u64) {
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return;
        };
        if !c.dirty {
            return;
        }
        c.dirty = false;
        if c.sending || c.outq.is_empty() || matches!(c.state, State::Closing { .. }) {
            return;
        }
        if c.head_off == 0 {
            let skip = match &c.wire {
                Wire::Ws(_) => 1, // a WebSocket header: skip by its length byte
                _ => 0,
            };
            if let Some(ts) = data_ts(c.outq[0].bytes(), skip) {
                let ns = now_rt.saturating_sub(ts);
                let b = LATENCY_BUCKETS_NS.partition_point(|&le| le < ns);
                self.latency.buckets[b] += 1;
                self.latency.sum += ns;
                self.latency.count += 1;
            }
        }
        let (n, bytes, registered) = c.prepare_send();
        c.ops += 1;
        let key = ConnKey {
            index: idx,
            gen: c.gen,
        };
        // One frame: SEND. (WRITE_FIXED from the registered region costs
        // more here: it runs the file-write path, fsnotify included, for
        // nothing a socket needs; docs/ARCHITECTURE.md has the profile.)
        // Several frames: WRITEV_FIXED, whose registered iovecs are copied
        // into the socket as kernel memory; SENDMSG when one lives on the heap.
        // A connection being cut sends with MSG_DONTWAIT (SEND or SENDMSG):
        // whatever the socket takes at once, without waiting for the kernel
        // to call a full socket writable again (half its queue drained: up
        // to seconds for a slow reader), so its ERROR gets in as soon as
        // there is room; on EAGAIN it tries again on the next tick.
        let flags = if c.hurry {
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT
        } else {
            libc::MSG_NOSIGNAL
        };
        let sqe = if n == 1 {
            let iov = c.send_buf.iov[0];
            on_socket!(c, idx, |t| opcode::Send::new(
                t,
                iov.iov_base as *const u8,
                bytes as u32
            )
            .flags(flags)
            .build())
        } else if registered && self.features.writev_fixed && !c.hurry {
            on_socket!(c, idx, |t| opcode::WritevFixed::new(
                t,
                c.send_buf.iov.as_ptr(),
                n as u32,
                0
            )
            .build())
        } else {
            on_socket!(c, idx, |t| opcode::SendMsg::new(
                t,
                &c.send_buf.msg as *const libc::msghdr
            )
            .flags(flags as u32)
            .build())
        };
        self.push_sqe(&sqe.user_data(Op::conn(OpKind::Send, key)));
    }

    /// Handles every completion waiting in the CQ.
    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        loop {
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            if cqes.is_empty() {
                break;
            }
            for &(ud, res, flags) in &cqes {
                let Some(op) = Op::decode(ud) else { continue };
                match op.kind {
                    OpKind::Accept => self.on_accept(op.index as usize, res, flags),
                    OpKind::Recv => self.on_recv(op, res, flags),
                    OpKind::Send => self.on_send(op, res),
                    OpKind::Tick => self.on_tick(flags),
                    OpKind::Ignore => {}
                }
            }
            self.cut_slow_consumers();
        }
        self.cqes = cqes;
    }

    fn on_accept(&mut self, which: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accept_armed[which] = false;
        }
        if res < 0 {
            // The tick re-arms the accept, so a full fd table does not spin
            // the loop; meanwhile waiting clients are accepted on the spare
            // descriptor and told (not left in the listen backlog).
            if res != -libc::ECANCELED {
                self.stats().accept_errors.fetch_add(1, Ordering::Relaxed);
                if res == -libc::EMFILE || res == -libc::ENFILE {
                    self.shed(which);
                }
            }
            return;
        }
        let fd = res;
        // At the connection limit the HTTP port still takes a few plain
        // HTTP connections from a reserve, so monitoring (/metrics,
        // /healthz) answers when it matters most.
        let reserved = match take_slot(&self.shared.connections, self.shared.config.max_connections)
        {
            true => false,
            false
                if which == WS
                    && take_slot(
                        &self.shared.http_connections,
                        self.shared.config.http_reserve,
                    ) =>
            {
                true
            }
            false => {
                self.stats().refused.fetch_add(1, Ordering::Relaxed);
                sys::close(fd);
                return;
            }
        };
        let _ = sys::set_nodelay(fd);
        let gen = self.next_gen;
        self.next_gen = (self.next_gen + 1) & 0xFF_FFFF;
        let wire = if which == WS {
            Wire::Http {
                deadline: self.now + self.shared.config.http_timeout.as_nanos() as u64,
            }
        } else {
            Wire::Tcp
        };
        let mut conn = Conn::new(fd, gen, wire);
        conn.reserved = reserved;
        self.stats().gauge_connections(conn.transport(), 1);
        let idx = self.conns.insert(conn) as u32;
        if idx < self.features.fixed_files
            && self.ring.submitter().register_files_update(idx, &[fd]).ok() == Some(1)
        {
            self.conns[idx as usize].fixed = true;
        }
        self.stats().accepted.fetch_add(1, Ordering::Relaxed);
        self.arm_recv(idx);
        if self.shutting_down {
            self.fail(idx, ErrorCode::ShuttingDown, "server shutting down", false);
        }
    }

    /// Out of descriptors: frees the spare one, accepts what waits on
    /// listener `which` and closes it at once (an HTTP client gets a 503
    /// first), then takes the spare back.
    fn shed(&mut self, which: usize) {
        let Some(lfd) = self.listeners[which].as_ref().map(|l| l.as_raw_fd()) else {
            return;
        };
        self.spare_fd = None;
        for _ in 0..SHED_BATCH {
            let Some(fd) = sys::accept_now(lfd) else {
                break;
            };
            if which == WS {
                sys::send_now(fd, SHED_RESPONSE);
            }
            sys::close(fd);
            self.stats().fd_shed.fetch_add(1, Ordering::Relaxed);
        }
        self.spare_fd = sys::open_spare().ok();
    }

    fn conn_of(&self, op: Op) -> Option<u32> {
        match self.conns.get(op.index as usize) {
            Some(c) if c.gen == op.gen => Some(op.index),
            _ => None,
        }
    }

    fn on_recv(&mut self, op: Op, res: i32, flags: u32) {
        let Some(idx) = self.conn_of(op) else {
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.give_back(bid);
            }
            return;
        };
        let more = cqueue::more(flags);
        if !more {
            let c = &mut self.conns[idx as usize];
            c.recv_armed = false;
            c.ops -= 1;
        }
        if res > 0 {
            if let Wire::Ws(w) = &mut self.conns[idx as usize].wire {
                w.last_rx = self.now;
                w.pinged = false;
            }
            let bid = cqueue::buffer_select(flags).expect("recv without a buffer");
            let data = self.bufs.slice(bid, res as usize);
            // SAFETY: the buffer stays ours (not in the ring) until give_back below.
            let data: &[u8] = unsafe { &*data };
            let frames = self.frames_in;
            self.on_bytes(idx, data);
            self.bufs.give_back(bid);
            self.account_input(idx, self.frames_in != frames);
            if !more && self.conns.contains(idx as usize) {
                self.rearm.push(idx);
            }
        } else if res == 0 {
            self.on_eof(idx);
        } else if res == -libc::ENOBUFS {
            self.stats().recv_nobufs.fetch_add(1, Ordering::Relaxed);
            self.rearm.push(idx);
        } else if res == -libc::ECANCELED {
            // Cancelled while paused; read again once the pause is over.
            let c = &self.conns[idx as usize];
            if c.is_open() && !c.paused && !more {
                self.rearm.push(idx);
            }
        } else {
            self.close_now(idx);
        }
        self.maybe_finish(idx);
    }

    /// Counts the incomplete input connection `idx` holds now (`progress`:
    /// a frame completed since the last count, so what is left began
    /// now), and cuts the largest holders while this core holds more than
    /// its share of `max_incomplete`.
    pub(super) fn account_input(&mut self, idx: u32, progress: bool) {
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return;
        };
        let held = if c.is_open() {
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
                .filter(|(_, c)| c.is_open())
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

    /// Stops the multishot receive of a connection (its CQE re-arms later).
    pub(crate) fn cancel_recv(&mut self, idx: u32) {
        let key = ConnKey {
            index: idx,
            gen: self.conns[idx as usize].gen,
        };
        let sqe = opcode::AsyncCancel::new(Op::conn(OpKind::Recv, key))
            .build()
            .user_data(Op::plain(OpKind::Ignore));
        self.push_sqe(&sqe);
    }

    fn on_send(&mut self, op: Op, res: i32) {
        let Some(idx) = self.conn_of(op) else { return };
        let pool = &self.shared.pool;
        let c = &mut self.conns[idx as usize];
        c.ops -= 1;
        if (res == -libc::ECANCELED || res == -libc::EAGAIN) && c.hurry {
            // Cancelled so that its ERROR goes next, or no room right now
            // (MSG_DONTWAIT): nothing of it was sent.
            c.complete_send(pool, &mut self.arena, 0);
            self.backlog -= c.drop_unsent(pool, &mut self.arena) as i64;
            if res == -libc::EAGAIN {
                self.retry_sends.push(ConnKey {
                    index: idx,
                    gen: c.gen,
                });
                return;
            }
        } else if res <= 0 {
            c.sending = false;
            c.in_flight = 0;
            c.in_flight_bytes = 0;
            self.close_now(idx);
            self.maybe_finish(idx);
            return;
        } else {
            self.backlog -= i64::from(res);
            let frames = c.in_flight as u64;
            let short = c.complete_send(pool, &mut self.arena, res as usize);
            let st = &self.shared.stats[self.id];
            st.sends.fetch_add(1, Ordering::Relaxed);
            st.frames_sent.fetch_add(frames, Ordering::Relaxed);
            st.bytes_out.fetch_add(res as u64, Ordering::Relaxed);
            if short {
                st.short_sends.fetch_add(1, Ordering::Relaxed);
            }
            // The peer is reading: a closing connection keeps its linger.
            if let State::Draining { end, .. } = c.state {
                c.state = State::Draining {
                    deadline: (self.now + NO_PROGRESS_NS).min(end),
                    end,
                };
            }
        }
        if c.hurry {
            self.backlog -= c.drop_unsent(pool, &mut self.arena) as i64;
        }
        if !c.outq.is_empty() {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
        } else if let State::Draining { .. } = c.state {
            self.begin_closing(idx);
        }
        self.maybe_finish(idx);
    }

    fn on_tick(&mut self, flags: u32) {
        if !cqueue::more(flags) {
            self.tick_armed = false;
            self.arm_tick();
        }
        if !self.shutting_down && self.shared.shutdown.load(Ordering::Relaxed) {
            self.begin_shutdown();
        }
        if !self.shutting_down {
            self.arm_accept();
        }
        if self.spare_fd.is_none() {
            self.spare_fd = sys::open_spare().ok();
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
        let now = sys::monotonic_ns();
        if now >= self.next_idle_scan {
            self.next_idle_scan = now + self.idle_scan_ns;
            self.scan_idle(now);
        }
        let mut closing = std::mem::take(&mut self.closing);
        closing.retain(|key| {
            let Some(c) = self.conns.get_mut(key.index as usize) else {
                return false;
            };
            if c.gen != key.gen {
                return false;
            }
            match c.state {
                State::Open => false,
                // A send waiting for room completes only once the kernel
                // calls the socket writable again (half its queue drained),
                // which takes seconds for a slow reader: look at the queue
                // itself before deciding the peer stopped reading.
                State::Draining { deadline, end }
                    if now >= deadline && now < end && {
                        let queued = sys::unacked_bytes(c.fd);
                        let reading = queued < c.kernel_queued;
                        c.kernel_queued = queued;
                        reading
                    } =>
                {
                    c.state = State::Draining {
                        deadline: (now + NO_PROGRESS_NS).min(end),
                        end,
                    };
                    true
                }
                State::Draining { deadline, .. } | State::Closing { deadline }
                    if now >= deadline =>
                {
                    if matches!(c.state, State::Draining { .. }) && !c.outq.is_empty() {
                        // Its ERROR (or close) never reached the kernel.
                        self.shared.stats[self.id].count_cut(CutReason::Linger);
                    }
                    c.state = State::Closing { deadline: 0 };
                    sys::shutdown(c.fd, libc::SHUT_RDWR);
                    true
                }
                _ => true,
            }
        });
        let done: Vec<u32> = closing.iter().map(|k| k.index).collect();
        self.closing = closing;
        for idx in done {
            self.maybe_finish(idx);
        }
        if self.shutting_down && !self.shutdown_hurried && now >= self.shutdown_hurry_at {
            // Half the shutdown time is gone: whoever has not flushed gets
            // ERROR 8 next instead of after everything it is owed.
            self.shutdown_hurried = true;
            let slow: Vec<u32> = self
                .conns
                .iter()
                .filter(|(_, c)| c.outq.len() > usize::from(c.trailer) && !c.hurry)
                .map(|(i, _)| i as u32)
                .collect();
            for idx in slow {
                self.hurry(idx);
            }
        }
        if self.shutting_down && now >= self.shutdown_deadline {
            let all: Vec<u32> = self.conns.iter().map(|(i, _)| i as u32).collect();
            for idx in all {
                self.close_now(idx);
                self.maybe_finish(idx);
            }
        }
    }

    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let now = sys::monotonic_ns();
        let timeout = self.shared.config.shutdown_timeout.as_nanos() as u64;
        self.shutdown_deadline = now + timeout;
        self.shutdown_hurry_at = now + timeout / 2;
        for which in [TCP, WS] {
            if self.accept_armed[which] {
                let sqe = opcode::AsyncCancel::new(Op::accept(which))
                    .build()
                    .user_data(Op::plain(OpKind::Ignore));
                self.push_sqe(&sqe);
            }
        }
        let all: Vec<u32> = self.conns.iter().map(|(i, _)| i as u32).collect();
        for idx in all {
            self.fail(idx, ErrorCode::ShuttingDown, "server shutting down", false);
        }
    }

    /// Shutdown is complete when no connection and no accept remain.
    fn finished(&mut self) -> bool {
        if self.accept_armed.iter().any(|&a| a) || !self.conns.is_empty() {
            return false;
        }
        self.listeners = [None, None];
        true
    }

    /// Peer closed its side: flush what is owed, then close.
    fn on_eof(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        match c.state {
            State::Open => {
                self.remove_all_subs(idx);
                self.drain(idx);
            }
            State::Draining { .. } => {}
            State::Closing { .. } => sys::shutdown(c.fd, libc::SHUT_RDWR),
        }
    }

    /// Ends a connection with an ERROR frame. With `drop_backlog`, frames
    /// not yet handed to the kernel are dropped and the ERROR goes next
    /// (slow consumers); otherwise what is owed is flushed before it.
    pub(crate) fn fail(&mut self, idx: u32, code: ErrorCode, reason: &str, drop_backlog: bool) {
        if !self.conns[idx as usize].is_open() {
            return;
        }
        self.remove_all_subs(idx);
        match self.conns[idx as usize].wire {
            // Not speaking the native protocol yet: nothing to say.
            Wire::Http { .. } => {}
            _ => {
                self.stats().count_error(code);
                if drop_backlog {
                    let pool = &self.shared.pool;
                    let c = &mut self.conns[idx as usize];
                    self.backlog -= c.drop_unsent(pool, &mut self.arena) as i64;
                }
                self.reply(
                    idx,
                    &crate::proto::ServerFrame::Error {
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
                if drop_backlog {
                    self.hurry(idx);
                }
            }
        }
        self.drain(idx);
    }

    /// Makes the frames that end connection `idx` (its trailer) go out
    /// next: drops what is owed before them and not yet handed to the
    /// kernel, and cancels a send still waiting in the kernel (its
    /// completion drops the rest: see `on_send`). At most the rest of one
    /// frame already partly sent precedes the trailer.
    fn hurry(&mut self, idx: u32) {
        let pool = &self.shared.pool;
        let c = &mut self.conns[idx as usize];
        c.hurry = true;
        self.backlog -= c.drop_unsent(pool, &mut self.arena) as i64;
        if c.sending {
            let key = ConnKey {
                index: idx,
                gen: c.gen,
            };
            let sqe = opcode::AsyncCancel::new(Op::conn(OpKind::Send, key))
                .build()
                .user_data(Op::plain(OpKind::Ignore));
            self.push_sqe(&sqe);
        }
    }

    /// Stops reading requests from a connection: what is queued is flushed
    /// while the peer keeps taking it (at most `close_linger`, or until the
    /// shutdown deadline), then the write side is shut.
    pub(crate) fn drain(&mut self, idx: u32) {
        let now = sys::monotonic_ns();
        let end = if self.shutting_down {
            self.shutdown_deadline
        } else {
            now + self.shared.config.close_linger.as_nanos() as u64
        };
        self.forget_input(idx);
        let c = &mut self.conns[idx as usize];
        c.paused = false;
        c.kernel_queued = sys::unacked_bytes(c.fd);
        c.state = State::Draining {
            deadline: (now + NO_PROGRESS_NS).min(end),
            end,
        };
        self.closing.push(ConnKey {
            index: idx,
            gen: c.gen,
        });
        if !c.sending && c.outq.is_empty() {
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
        sys::shutdown(c.fd, libc::SHUT_WR);
        c.state = State::Closing {
            deadline: sys::monotonic_ns() + LINGER_NS,
        };
        if !c.recv_armed {
            sys::shutdown(c.fd, libc::SHUT_RDWR);
        }
    }

    /// Tears a connection down at once (reset, send error, deadline).
    fn close_now(&mut self, idx: u32) {
        if !self.conns.contains(idx as usize) {
            return;
        }
        self.remove_all_subs(idx);
        self.forget_input(idx);
        let pool = &self.shared.pool;
        let c = &mut self.conns[idx as usize];
        self.backlog -= c.drop_unsent(pool, &mut self.arena) as i64;
        if c.state == (State::Closing { deadline: 0 }) {
            return;
        }
        c.state = State::Closing { deadline: 0 };
        c.paused = false;
        sys::shutdown(c.fd, libc::SHUT_RDWR);
    }

    /// Closes the fd and frees the slot once nothing in flight refers to it
    /// and its subscriptions are gone.
    fn maybe_finish(&mut self, idx: u32) {
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return;
        };
        let State::Closing { .. } = c.state else {
            return;
        };
        if c.ops > 0 || c.nsubs > 0 {
            return;
        }
        let pool = &self.shared.pool;
        self.backlog -= c.release_all(pool, &mut self.arena) as i64;
        if c.fixed {
            // Nothing in flight names the slot any more; the table's
            // reference goes before the fd's, so close() really closes.
            let _ = self.ring.submitter().register_files_update(idx, &[-1]);
        }
        sys::close(c.fd);
        let transport = c.transport();
        let c = self.conns.remove(idx as usize);
        let count = if c.reserved {
            &self.shared.http_connections
        } else {
            &self.shared.connections
        };
        count.fetch_sub(1, Ordering::Relaxed);
        let st = &self.shared.stats[self.id];
        st.closed.fetch_add(1, Ordering::Relaxed);
        st.gauge_connections(transport, -1);
    }

    /// Cuts every connection whose backlog passed the limit during the last
    /// fan-out (deferred so subscriber lists are not changed mid-iteration).
    fn cut_slow_consumers(&mut self) {
        while let Some(idx) = self.over_limit.pop() {
            if !self.conns.contains(idx as usize) {
                continue;
            }
            self.conns[idx as usize].over_limit = false;
            if self.conns[idx as usize].is_open() {
                self.stats().slow_consumers.fetch_add(1, Ordering::Relaxed);
                self.stats().count_cut(CutReason::Backlog);
                let limit = self.shared.config.max_backlog;
                let reason =
                    format!("slow consumer: more than {limit} bytes queued for this connection");
                self.fail(idx, ErrorCode::SlowConsumer, &reason, true);
            }
        }
    }
}

/// Takes one of `limit` slots counted by `count`; false when none is free.
pub(super) fn take_slot(count: &AtomicUsize, limit: usize) -> bool {
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
    (finest / 4).clamp(u64::from(TICK_NS), IDLE_SCAN_NS)
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
    let f = bytes.get(off..off + proto::DATA_HEADER_LEN)?;
    if f[4] != proto::Kind::Data as u8 {
        return None;
    }
    Some(u64::from_le_bytes(f[16..24].try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::data_ts;
    use crate::proto::{data_frame_len, encode_data};
    use crate::ws::frame::{header_len, write_header, Opcode};

    fn data(ts: u64, payload_len: usize) -> Vec<u8> {
        let len = data_frame_len(1, payload_len);
        let mut f = vec![0; len];
        encode_data(&mut f, 7, ts, b"t", &vec![1; payload_len]);
        f
    }

    #[test]
    fn the_publish_stamp_is_found_behind_every_websocket_header_length() {
        for payload in [10, 200, 70_000] {
            let native = data(123_456, payload);
            assert_eq!(data_ts(&native, 0), Some(123_456));
            let h = header_len(native.len());
            let mut ws = vec![0; h];
            write_header(&mut ws, Opcode::Binary, native.len());
            ws.extend_from_slice(&native);
            assert_eq!(data_ts(&ws, 1), Some(123_456), "payload {payload}");
        }
    }

    #[test]
    fn other_frames_give_no_sample() {
        assert_eq!(
            data_ts(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 0),
            None
        );
        // A pong whose payload mimics a DATA frame is not a DATA message.
        let native = data(5, 10);
        let mut pong = vec![0x8A, native.len() as u8];
        pong.extend_from_slice(&native);
        assert_eq!(data_ts(&pong, 1), None);
        assert_eq!(data_ts(&[], 0), None);
    }
}

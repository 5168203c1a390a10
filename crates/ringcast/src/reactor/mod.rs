//! The ring driver: one io_uring per core, and nothing else. It owns the
//! ring, the receive buffers, the listeners and every socket; the per-core
//! state machine ([`Core`]) owns everything else and makes no syscall.
//!
//! A loop turn:
//! 1. drain the inbound mailboxes into [`Core::handle_msg`];
//! 2. carry out the core's outputs: messages to other cores (pushed on
//!    their mailboxes, waking parked cores), socket actions ([`Action`]);
//! 3. the send round: one send SQE for every connection the core lists as
//!    dirty, in chunks, taking in completions and messages between chunks;
//! 4. one `io_uring_enter`: submit everything, wait for a completion (or,
//!    with busy polling, do not wait);
//! 5. turn completions into inputs: accepted sockets
//!    ([`Core::handle_accept`]), received bytes ([`Core::handle_bytes`],
//!    EOF, errors), send results ([`Core::handle_sent`]), the tick
//!    ([`Core::handle_tick`]).
//!
//! `user_data` is an [`Op`] token: kind in the top byte, then a 24-bit
//! generation and a 32-bit slab index, so a completion for a reused slot is
//! told from one for its new owner.
//!
//! Re-entrancy rule: nothing here calls into the core while handling one of
//! its outputs, except `maybe_close` → [`Core::release`], which only frees.
//! When the submission queue is full, `push_sqe` submits; when the kernel
//! cannot take more because the completion queue is full, completions are
//! copied aside (not handled) and handled by the next `reap`.

mod ring;
mod spin;
pub(crate) use ring::Waker;

use crate::core::MAX_IOV;
use crate::core::{Action, Core, Front, Msg, RelayOut, Shared, TICK_NS};
use crate::mailbox::{Consumer, Producer};
use crate::stats::{CoreStats, Waited};
use crate::sys;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use ring::BufRing;
use spin::{Idle, Spin};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) use ring::{build_ring, RingFeatures};

/// Builds an op on socket `$io` (connection `$idx`): by its fixed-file
/// slot when it has one, by its fd otherwise. (The crate's fd target type
/// cannot be named, hence a macro.)
macro_rules! on_socket {
    ($io:expr, $idx:expr, |$t:ident| $build:expr) => {
        if $io.fixed {
            let $t = types::Fixed($idx);
            $build
        } else {
            let $t = types::Fd($io.fd.as_raw_fd());
            $build
        }
    };
}

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
    fn conn(kind: OpKind, index: u32, gen: u32) -> u64 {
        Op { kind, gen, index }.encode()
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

/// Buffer group id of the receive buffer ring.
const BGID: u16 = 7;
/// Sends submitted per chunk of a round before the reactor looks for new
/// input (about 2.5 ms of loopback sends at ~10 µs each).
const SEND_CHUNK: usize = 256;
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

/// Sends of several frames whose `SendBuf`s are kept for reuse after their
/// completion (trimmed to this on every tick): enough for the sends of a few
/// chunks in flight at once, so a loaded reactor does not allocate per send.
const SPARE_SEND_BUFS: usize = 4 * SEND_CHUNK;

/// Memory the kernel reads while a send of several frames is in flight.
/// Only such a send has one (a single frame's address and length travel in
/// its SQE), and only until it completes: an idle connection holds none.
struct SendBuf {
    iov: [libc::iovec; MAX_IOV],
    msg: libc::msghdr,
}

/// The driver's side of a connection: its socket and the ops in flight on
/// it. At the connection's index in `Reactor::io`.
struct Io {
    fd: OwnedFd,
    /// The socket also sits in the ring's fixed-file table, at the
    /// connection's index: ops name it by that index.
    fixed: bool,
    gen: u32,
    /// Ops in flight (receive, send): the socket is closed only at 0.
    ops: u32,
    recv_armed: bool,
    /// A cancel of the receive was submitted and has not completed.
    recv_cancelling: bool,
    sending: bool,
    /// The core asked for the close ([`Action::Close`]).
    closing: bool,
    /// The iovecs and msghdr of the send of several frames in flight, if
    /// that is what is in flight: boxed, so their address stays put while
    /// the kernel reads them, however `io` grows; given back to
    /// `Reactor::send_bufs` when the send completes.
    send_buf: Option<Box<SendBuf>>,
}

pub(crate) struct Reactor {
    // Field order is drop order: the ring goes first, so the kernel lets go
    // of the buffer ring and the send buffers before their memory is freed.
    ring: IoUring,
    bufs: BufRing,
    core: Core,
    id: usize,
    cores: usize,
    shared: Arc<Shared>,
    features: RingFeatures,
    /// Listeners, each for one front, and whether its multishot accept is armed.
    listeners: Vec<(Option<OwnedFd>, Front)>,
    accept_armed: Vec<bool>,
    accepts_cancelled: bool,
    /// Sockets by connection index (None: no connection there).
    io: Vec<Option<Io>>,
    outboxes: Vec<Option<Producer<Msg>>>,
    overflow: Vec<VecDeque<Msg>>,
    inboxes: Vec<Option<Consumer<Msg>>>,
    relay: Option<(Producer<RelayOut>, Consumer<Msg>)>,
    /// Interest changes waiting for room in the queue to the relay.
    relay_held: VecDeque<RelayOut>,
    /// Publishes were dropped since the last one queued to the relay.
    relay_dropping: bool,
    ring_fds: Vec<RawFd>,
    wake: Vec<bool>,
    /// `SendBuf`s of completed sends, for the next send of several frames
    /// (at most [`SPARE_SEND_BUFS`] kept past a tick). Boxed: one moves to
    /// `Io::send_buf` and back without its contents moving (the kernel
    /// reads them at their address while its send is in flight).
    #[allow(clippy::vec_box)]
    send_bufs: Vec<Box<SendBuf>>,
    /// Completions taken off a full CQ while submitting, not yet handled.
    deferred: Vec<(u64, i32, u32)>,
    cqes: Vec<(u64, i32, u32)>,
    tick: Box<types::Timespec>,
    tick_armed: bool,
    /// A descriptor kept open to be closed when accept fails for lack of
    /// descriptors, so a waiting client can be accepted and told.
    spare_fd: Option<OwnedFd>,
    /// Input arrived since the loop last looked (for `--idle-spin`): a
    /// socket completion or a message from another core or the relay.
    worked: bool,
    /// Like `worked`, without send completions (which follow the reactor's
    /// own sends): what adaptive polling predicts the next of.
    arrived: bool,
}

/// How `enter` waits for completions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Not at all (polling).
    No,
    /// For at least one.
    Yes,
    /// For at least one, or this many ns.
    For(u64),
}

/// What a reactor leaves when it stops: its ring (closed by the engine
/// only after every reactor stopped: a MSG_RING must never target a closed,
/// reused fd) and its inboxes (drained by the engine, see `run`).
pub(crate) struct Stopped {
    /// Only held (then dropped by the engine), never read.
    #[allow(dead_code)]
    pub ring: IoUring,
    pub inboxes: Vec<Option<Consumer<Msg>>>,
}

/// What a reactor thread needs besides its ring.
pub(crate) struct ReactorParts {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// One listener per front.
    pub listeners: Vec<(OwnedFd, Front)>,
    pub outboxes: Vec<Option<Producer<Msg>>>,
    pub inboxes: Vec<Option<Consumer<Msg>>>,
    /// With a NATS relay: the queue to it and the queue from it.
    pub relay: Option<(Producer<RelayOut>, Consumer<Msg>)>,
}

impl Reactor {
    /// Sets up the ring on the calling thread (SINGLE_ISSUER makes that
    /// thread the only submitter), registers the shared frame region and the
    /// receive buffers.
    pub fn new(parts: ReactorParts) -> std::io::Result<Reactor> {
        let (ring, features) = build_ring(&parts.shared)?;
        let bufs = BufRing::new(&ring, BGID)?;
        let cores = parts.outboxes.len();
        let core = Core::new(
            parts.id,
            parts.shared.clone(),
            sys::monotonic_ns(),
            sys::unacked_bytes,
            sys::realtime_ns,
        );
        let n = parts.listeners.len();
        let max_conns = crate::core::max_conns(&parts.shared.config);
        Ok(Reactor {
            ring,
            bufs,
            core,
            id: parts.id,
            cores,
            shared: parts.shared,
            features,
            listeners: parts
                .listeners
                .into_iter()
                .map(|(l, f)| (Some(l), f))
                .collect(),
            accept_armed: vec![false; n],
            accepts_cancelled: false,
            // Address space for every connection the core may hold, so the
            // vector never grows (see `core::max_conns`).
            io: Vec::with_capacity(max_conns),
            outboxes: parts.outboxes,
            overflow: (0..cores).map(|_| VecDeque::new()).collect(),
            inboxes: parts.inboxes,
            relay: parts.relay,
            relay_held: VecDeque::new(),
            relay_dropping: false,
            ring_fds: Vec::new(),
            wake: vec![false; cores],
            send_bufs: Vec::new(),
            deferred: Vec::new(),
            cqes: Vec::with_capacity(4096),
            tick: Box::new(types::Timespec::new().nsec(TICK_NS as u32)),
            tick_armed: false,
            spare_fd: sys::open_spare().ok(),
            worked: false,
            arrived: false,
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
    pub fn run(mut self, ring_fds: Vec<RawFd>, started: impl FnOnce()) -> std::io::Result<Stopped> {
        self.ring_fds = ring_fds;
        self.arm_accept();
        self.arm_tick();
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        started();
        let busy = self.shared.config.busy_poll;
        let spin_ns = self.shared.config.idle_spin.as_nanos() as u64;
        let fixed = self.shared.config.idle_spin_fixed;
        let mut spin = Spin::new(if fixed { 0 } else { spin_ns });
        if spin_ns > 0 && !fixed {
            // Timed parks end when asked, not up to 50 µs later (the default
            // timer slack), so the margin before a predicted input is small.
            // SAFETY: PR_SET_TIMERSLACK takes a value, no memory.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        }
        let (mut loops, mut busy_ns) = (0u64, 0u64);
        let mut woke = sys::monotonic_ns();
        // When the last turn that had input (a socket completion or a
        // message from another core) began.
        let mut last_work = woke;
        let mut waited = Waited::Polling;
        let result = loop {
            self.drain_inboxes();
            self.core.turn(woke);
            self.carry_out();
            self.flush();
            self.core.publish_gauges();
            if self.core.finished() && self.accept_armed.iter().all(|a| !a) {
                break Ok(());
            }
            if std::mem::take(&mut self.worked) {
                last_work = woke;
            }
            if std::mem::take(&mut self.arrived) {
                spin.input(woke, waited == Waited::Polling);
                self.shared.stats[self.id].input_turns[waited as usize]
                    .fetch_add(1, Ordering::Relaxed);
            }
            let sleep = sys::monotonic_ns();
            // Connections that became dirty during the round are sent to
            // next, teardown goes on: no sleeping while any wait. With
            // --idle-spin, adaptive polling decides (see `spin`); with
            // --idle-spin-fixed, a reactor that had input lately polls on
            // until that long has passed.
            let idle = if busy || self.core.busy() {
                Idle::Poll
            } else if fixed {
                if spin_ns > 0 && sleep - last_work < spin_ns {
                    Idle::Poll
                } else {
                    Idle::Park
                }
            } else {
                spin.idle(sleep)
            };
            let wait = match idle {
                Idle::Poll => Wait::No,
                Idle::Park if self.park() => Wait::Yes,
                Idle::ParkFor(ns) if self.park() => Wait::For(ns),
                _ => Wait::No,
            };
            busy_ns += sleep - woke;
            loops += 1;
            let st = &self.shared.stats[self.id];
            st.loops.store(loops, Ordering::Relaxed);
            st.busy_ns.store(busy_ns, Ordering::Relaxed);
            let timed_out = match self.enter(wait) {
                Ok(t) => t,
                Err(e) => break Err(e),
            };
            waited = match wait {
                Wait::No => Waited::Polling,
                Wait::For(_) if timed_out => Waited::Polling,
                Wait::For(_) => Waited::Timed,
                Wait::Yes => Waited::Parked,
            };
            woke = sys::monotonic_ns();
            spin.woke(woke, timed_out);
            self.core.now = woke;
            self.shared.parked[self.id].clear();
            self.reap();
        };
        self.shared.running.fetch_sub(1, Ordering::SeqCst);
        self.shared.parked[self.id].0.store(false, Ordering::SeqCst);
        self.core.log.flush();
        // Frames still travelling to or from this core will never be
        // delivered: give them back (what other cores send after this is
        // drained by the engine once every reactor has stopped).
        for from in 0..self.cores {
            while let Some(msg) = self.inboxes[from].as_mut().and_then(|c| c.pop()) {
                msg.release(&self.shared.pool);
            }
            while let Some(msg) = self.overflow[from].pop_front() {
                msg.release(&self.shared.pool);
            }
        }
        while let Some(msg) = self.relay.as_mut().and_then(|(_, c)| c.pop()) {
            msg.release(&self.shared.pool);
        }
        while let Some(item) = self.core.poll_relay() {
            item.release(&self.shared.pool);
        }
        self.listeners.clear();
        result.map(|()| Stopped {
            ring: self.ring,
            inboxes: self.inboxes,
        })
    }

    /// Announces that this reactor is about to sleep; says whether it may
    /// (nothing arrived in the meantime).
    fn park(&self) -> bool {
        self.shared.parked[self.id].announce();
        // Messages held back by a full queue must be retried without a
        // wake-up from the consumer: do not sleep while any are waiting.
        let idle = self.inboxes.iter().flatten().all(|c| c.is_empty())
            && self.overflow.iter().all(|q| q.is_empty())
            && self.relay.as_ref().map_or(true, |(_, c)| c.is_empty())
            && self.relay_held.is_empty();
        if !idle {
            self.shared.parked[self.id].clear();
        }
        idle
    }

    /// Submits what is queued and takes in completions, waiting as told.
    /// Says whether a timed wait ended by its timeout.
    fn enter(&mut self, wait: Wait) -> std::io::Result<bool> {
        loop {
            let res = if wait == Wait::Yes {
                self.ring.submit_and_wait(1)
            } else if let Wait::For(ns) = wait {
                let ts = types::Timespec::new()
                    .sec(ns / 1_000_000_000)
                    .nsec((ns % 1_000_000_000) as u32);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
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
                Ok(_) => return Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues an SQE, submitting first when the SQ is full. Never handles a
    /// completion (see the re-entrancy rule in the module doc).
    fn push_sqe(&mut self, sqe: &squeue::Entry) {
        loop {
            // SAFETY: every SQE pushed here points only at memory that the
            // reactor keeps alive until its completion: frames held by the
            // connection's send queue in the core (released only after the
            // send completes), the boxed SendBuf in `Io::send_buf` (taken
            // back only by the send's completion; the Io itself is dropped
            // only once its ops reach 0), the boxed tick timespec, the
            // buffer ring owned by `self.bufs`.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return;
            }
            // A full SQ: hand it to the kernel. When the CQ is full too
            // (EBUSY), move its completions aside to make room; EAGAIN,
            // ENOMEM and EINTR are transient.
            if self.ring.submit().is_err() {
                let mut cq = self.ring.completion();
                self.deferred
                    .extend(cq.by_ref().map(|c| (c.user_data(), c.result(), c.flags())));
            }
        }
    }

    fn arm_accept(&mut self) {
        if self.core.shutting_down {
            return;
        }
        for which in 0..self.listeners.len() {
            if self.accept_armed[which] {
                continue;
            }
            if let Some(l) = &self.listeners[which].0 {
                let sqe = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd()))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(Op::accept(which));
                self.push_sqe(&sqe);
                self.accept_armed[which] = true;
            }
        }
    }

    fn cancel_accepts(&mut self) {
        self.accepts_cancelled = true;
        for which in 0..self.listeners.len() {
            if !self.accept_armed[which] {
                // No accept uses it: close it now, so that new connections
                // go to another process on the port (an upgrade hand-over).
                self.listeners[which].0 = None;
            } else {
                let sqe = opcode::AsyncCancel::new(Op::accept(which))
                    .build()
                    .user_data(Op::plain(OpKind::Ignore));
                self.push_sqe(&sqe);
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
        if !self.core.wants_input(idx) {
            return;
        }
        let Some(io) = self.io.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        if io.recv_armed || io.closing {
            return;
        }
        io.recv_armed = true;
        io.ops += 1;
        let sqe = on_socket!(io, idx, |t| opcode::RecvMulti::new(t, BGID).build())
            .user_data(Op::conn(OpKind::Recv, idx, io.gen));
        self.push_sqe(&sqe);
    }

    /// Drains every inbound queue once.
    fn drain_inboxes(&mut self) {
        for from in 0..self.cores {
            while let Some(msg) = self.inboxes[from].as_mut().and_then(|c| c.pop()) {
                self.worked = true;
                self.arrived = true;
                self.core.handle_msg(msg);
            }
        }
        while let Some(msg) = self.relay.as_mut().and_then(|(_, c)| c.pop()) {
            self.worked = true;
            self.arrived = true;
            self.core.handle_msg(msg);
        }
        self.core.end_batch();
    }

    /// Carries out what the core asked for: messages to other cores, then
    /// socket actions.
    fn carry_out(&mut self) {
        if self.core.shutting_down && !self.accepts_cancelled {
            self.cancel_accepts();
        }
        while let Some((to, msg)) = self.core.poll_msg() {
            self.send_msg(to, msg);
        }
        self.hand_to_relay();
        while let Some((a, gen)) = self.core.poll_action() {
            let (Action::Read(idx)
            | Action::StopReading(idx)
            | Action::CancelSend(idx)
            | Action::ShutWrite(idx)
            | Action::ShutBoth(idx)
            | Action::Close(idx)) = a;
            match self.io.get(idx as usize) {
                Some(Some(io)) if io.gen == gen => {}
                // Its connection is gone (released since): nothing to do.
                _ => continue,
            }
            match a {
                Action::Read(idx) => self.arm_recv(idx),
                Action::StopReading(idx) => {
                    let Some(io) = self.io.get_mut(idx as usize).and_then(Option::as_mut) else {
                        continue;
                    };
                    if io.recv_armed && !io.recv_cancelling {
                        io.recv_cancelling = true;
                        let sqe = opcode::AsyncCancel::new(Op::conn(OpKind::Recv, idx, io.gen))
                            .build()
                            .user_data(Op::plain(OpKind::Ignore));
                        self.push_sqe(&sqe);
                    }
                }
                Action::CancelSend(idx) => {
                    let Some(io) = self.io.get(idx as usize).and_then(Option::as_ref) else {
                        continue;
                    };
                    if io.sending {
                        let sqe = opcode::AsyncCancel::new(Op::conn(OpKind::Send, idx, io.gen))
                            .build()
                            .user_data(Op::plain(OpKind::Ignore));
                        self.push_sqe(&sqe);
                    }
                }
                Action::ShutWrite(idx) => {
                    if let Some(io) = self.io.get(idx as usize).and_then(Option::as_ref) {
                        sys::shutdown(io.fd.as_raw_fd(), libc::SHUT_WR);
                        if !io.recv_armed {
                            sys::shutdown(io.fd.as_raw_fd(), libc::SHUT_RDWR);
                        }
                    }
                }
                Action::ShutBoth(idx) => {
                    if let Some(io) = self.io.get(idx as usize).and_then(Option::as_ref) {
                        sys::shutdown(io.fd.as_raw_fd(), libc::SHUT_RDWR);
                    }
                }
                Action::Close(idx) => {
                    if let Some(io) = self.io.get_mut(idx as usize).and_then(Option::as_mut) {
                        io.closing = true;
                    }
                    self.maybe_close(idx);
                }
            }
        }
    }

    /// Closes connection `idx`'s socket once the core asked for it and no
    /// op in flight names it; then the core frees the connection.
    fn maybe_close(&mut self, idx: u32) {
        let Some(io) = self.io.get(idx as usize).and_then(Option::as_ref) else {
            return;
        };
        if !io.closing || io.ops > 0 {
            return;
        }
        if io.fixed {
            // Nothing in flight names the slot any more; the table's
            // reference goes before the fd's, so the close really closes.
            let _ = self.ring.submitter().register_files_update(idx, &[-1]);
        }
        self.io[idx as usize] = None; // closes the socket
        self.core.release(idx);
    }

    /// Hands the relay what the core has for it, and wakes it. A full queue
    /// drops a publish (counted, and announced to the other nodes by the
    /// relay's next message); an interest change is never dropped: it waits
    /// in `relay_held`, in order, for room.
    fn hand_to_relay(&mut self) {
        let Some((out, _)) = self.relay.as_mut() else {
            return;
        };
        let mut any = false;
        while let Some(item) = self.relay_held.pop_front() {
            if let Err(item) = out.push(item) {
                self.relay_held.push_front(item);
                break;
            }
            any = true;
        }
        while let Some(mut item) = self.core.poll_relay() {
            any = true;
            let publish = matches!(item, RelayOut::Publish { .. });
            if !self.relay_held.is_empty() {
                if publish {
                    self.drop_for_relay(item);
                } else {
                    self.relay_held.push_back(item);
                }
                continue;
            }
            // The first publish queued after a drop carries it.
            if let RelayOut::Publish { after_drop, .. } = &mut item {
                *after_drop = self.relay_dropping;
            }
            let Some((out, _)) = self.relay.as_mut() else {
                return;
            };
            match out.push(item) {
                Ok(()) => {
                    if publish {
                        self.relay_dropping = false;
                    }
                }
                Err(item) if publish => self.drop_for_relay(item),
                Err(item) => self.relay_held.push_back(item),
            }
        }
        if any {
            crate::relay::wake(&self.shared);
        }
    }

    fn drop_for_relay(&mut self, item: RelayOut) {
        item.release(&self.shared.pool);
        self.shared.stats[self.id]
            .relay_dropped
            .fetch_add(1, Ordering::Relaxed);
        self.relay_dropping = true;
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
    /// in flight, retries queue overflow, wakes cores.
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
        let end = self.core.dirty_len();
        let mut i = 0;
        while i < end {
            if i > 0 {
                self.interleave();
            }
            // One clock read stamps every send of this chunk.
            let now = sys::realtime_ns();
            let chunk_end = end.min(i + SEND_CHUNK);
            while i < chunk_end {
                let idx = self.core.dirty_at(i);
                i += 1;
                self.submit_send(idx, now);
            }
        }
        self.core.dirty_done(end);
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
        if self.enter(Wait::No).is_ok() {
            self.core.now = sys::monotonic_ns();
            self.reap();
        }
        self.drain_inboxes();
        self.carry_out();
    }

    fn submit_send(&mut self, idx: u32, now_rt: u64) {
        let Some(io) = self.io.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        if io.closing {
            return;
        }
        let mut sb = match self.send_bufs.pop() {
            Some(sb) => sb,
            // SAFETY: iovec and msghdr are plain C structs; all-zero is valid.
            None => Box::new(unsafe { std::mem::zeroed() }),
        };
        let Some(plan) = self.core.prepare_send(idx, &mut sb.iov, now_rt) else {
            self.send_bufs.push(sb);
            return;
        };
        io.ops += 1;
        io.sending = true;
        // One frame: SEND. (WRITE_FIXED from the registered region costs
        // more here: it runs the file-write path, fsnotify included, for
        // nothing a socket needs; docs/ARCHITECTURE.md has the profile.)
        // Several frames: WRITEV_FIXED, whose registered iovecs are copied
        // into the socket as kernel memory; SENDMSG when one lives on the heap.
        // A connection being cut sends with MSG_DONTWAIT (SEND or SENDMSG):
        // whatever the socket takes at once, without waiting for the kernel
        // to call a full socket writable again (half its queue drained: up
        // to seconds for a slow reader), so its ERROR gets in as soon as
        // there is room; on EAGAIN the core tries again on the next tick.
        let flags = if plan.dont_wait {
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT
        } else {
            libc::MSG_NOSIGNAL
        };
        let n = plan.iovecs;
        let sqe = if n == 1 {
            // The SQE carries the address and length: no memory to keep.
            let iov = sb.iov[0];
            self.send_bufs.push(sb);
            on_socket!(io, idx, |t| opcode::Send::new(
                t,
                iov.iov_base as *const u8,
                plan.bytes as u32
            )
            .flags(flags)
            .build())
        } else if plan.registered && self.features.writev_fixed && !plan.dont_wait {
            // `io.send_buf` keeps the iovecs until the completion.
            let sb = io.send_buf.insert(sb);
            on_socket!(io, idx, |t| opcode::WritevFixed::new(
                t,
                sb.iov.as_ptr(),
                n as u32,
                0
            )
            .build())
        } else {
            // `io.send_buf` keeps the msghdr and iovecs until the completion.
            let sb = io.send_buf.insert(sb);
            sb.msg.msg_iov = sb.iov.as_mut_ptr();
            sb.msg.msg_iovlen = n as _;
            let msg = &sb.msg as *const libc::msghdr;
            on_socket!(io, idx, |t| opcode::SendMsg::new(t, msg)
                .flags(flags as u32)
                .build())
        };
        let sqe = sqe.user_data(Op::conn(OpKind::Send, idx, io.gen));
        self.push_sqe(&sqe);
    }

    /// Handles every completion waiting in the CQ (and any set aside).
    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        loop {
            cqes.clear();
            cqes.append(&mut self.deferred);
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
                self.worked |= matches!(op.kind, OpKind::Accept | OpKind::Recv | OpKind::Send);
                self.arrived |= matches!(op.kind, OpKind::Accept | OpKind::Recv);
                match op.kind {
                    OpKind::Accept => self.on_accept(op.index as usize, res, flags),
                    OpKind::Recv => self.on_recv(op, res, flags),
                    OpKind::Send => self.on_send(op, res),
                    OpKind::Tick => self.on_tick(flags),
                    OpKind::Ignore => {}
                }
            }
            self.core.end_batch();
            self.carry_out();
        }
        self.cqes = cqes;
    }

    fn on_accept(&mut self, which: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accept_armed[which] = false;
            if self.accepts_cancelled {
                // Its last accept is over: close it (see `cancel_accepts`).
                self.listeners[which].0 = None;
            }
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
        // SAFETY: the kernel just created this descriptor for us; nothing
        // else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(res) };
        let _ = sys::set_nodelay(fd.as_raw_fd());
        let front = self.listeners[which].1;
        let Some(idx) = self.core.handle_accept(front, fd.as_raw_fd()) else {
            return; // refused: dropping `fd` closes it
        };
        let i = idx as usize;
        if self.io.len() <= i {
            self.io.resize_with(i + 1, || None);
        }
        let fixed = idx < self.features.fixed_files
            && self
                .ring
                .submitter()
                .register_files_update(idx, &[fd.as_raw_fd()])
                .ok()
                == Some(1);
        self.io[i] = Some(Io {
            fd,
            fixed,
            gen: self.core.conns[i].gen,
            ops: 0,
            recv_armed: false,
            recv_cancelling: false,
            sending: false,
            closing: false,
            send_buf: None,
        });
    }

    /// Out of descriptors: frees the spare one, accepts what waits on
    /// listener `which` and closes it at once (an HTTP client gets a 503
    /// first), then takes the spare back.
    fn shed(&mut self, which: usize) {
        let Some(lfd) = self.listeners[which].0.as_ref().map(|l| l.as_raw_fd()) else {
            return;
        };
        self.spare_fd = None;
        for _ in 0..SHED_BATCH {
            let Some(fd) = sys::accept_now(lfd) else {
                break;
            };
            if self.listeners[which].1 == Front::Web {
                sys::send_now(fd, SHED_RESPONSE);
            }
            self.core.log_fd(
                crate::log::Event::FdShed,
                fd,
                self.listeners[which].1.label(),
                u32::MAX,
                format_args!(
                    "connection closed at once: out of file descriptors (raise LimitNOFILE)"
                ),
            );
            sys::close(fd);
            self.stats().fd_shed.fetch_add(1, Ordering::Relaxed);
        }
        self.spare_fd = sys::open_spare().ok();
    }

    /// The connection an op was for, if it is still the same one.
    fn io_of(&mut self, op: Op) -> Option<&mut Io> {
        match self.io.get_mut(op.index as usize) {
            Some(Some(io)) if io.gen == op.gen => Some(io),
            _ => None,
        }
    }

    fn on_recv(&mut self, op: Op, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let Some(io) = self.io_of(op) else {
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.consumed(bid, res.max(0) as usize, flags);
            }
            return;
        };
        if !more {
            io.recv_armed = false;
            io.ops -= 1;
        }
        let idx = op.index;
        if res > 0 {
            let bid = cqueue::buffer_select(flags).expect("recv without a buffer");
            let data = self.bufs.slice(bid, res as usize);
            // SAFETY: the kernel wrote these bytes and does not touch them
            // again: the buffer is given back (or, consumed incrementally,
            // its bytes past these are filled) only by `consumed` below.
            let data: &[u8] = unsafe { &*data };
            self.core.handle_bytes(idx, data);
            self.bufs.consumed(bid, res as usize, flags);
            if !more {
                self.core.act(Action::Read(idx));
            }
        } else if res == 0 {
            self.core.handle_eof(idx);
        } else if res == -libc::ENOBUFS {
            self.stats().recv_nobufs.fetch_add(1, Ordering::Relaxed);
            self.core.act(Action::Read(idx));
        } else if res == -libc::ECANCELED {
            // Stopped while the connection waits; read again once it may.
            if let Some(io) = self.io_of(op) {
                io.recv_cancelling = false;
            }
            if !more {
                self.core.handle_recv_cancelled(idx);
            }
        } else {
            self.core.handle_reset(idx);
        }
        self.maybe_close(idx);
    }

    fn on_send(&mut self, op: Op, res: i32) {
        let Some(io) = self.io_of(op) else { return };
        io.ops -= 1;
        io.sending = false;
        // The kernel is done with the iovecs: ready for another send.
        if let Some(sb) = io.send_buf.take() {
            self.send_bufs.push(sb);
        }
        self.core.handle_sent(op.index, res);
        self.maybe_close(op.index);
    }

    fn on_tick(&mut self, flags: u32) {
        if !cqueue::more(flags) {
            self.tick_armed = false;
            self.arm_tick();
        }
        if self.spare_fd.is_none() {
            self.spare_fd = sys::open_spare().ok();
        }
        self.send_bufs.truncate(SPARE_SEND_BUFS);
        self.core.handle_tick(sys::monotonic_ns());
        if !self.core.shutting_down {
            self.arm_accept();
        }
    }
}

#[cfg(test)]
mod memory_budget {
    //! Issue 15: at most 384 B of user-space memory per idle TCP subscriber
    //! and 512 B per WebSocket one, as scripts/mem-per-sub.sh measures it
    //! (RSS growth over 10,000 connections, one subscription each). On
    //! 2026-11-30 it measured 343 B and 442 B, of which the structures below
    //! came to 308 B and 340 B; the rest is the bytes of the subscribers'
    //! requests in the receive buffers (HTTP upgrades for WebSocket) and the
    //! allocator's slack. A failure here means one of them grew: measure
    //! again with the script before raising a limit.
    use crate::core::{Conn, WsConn};
    use crate::topic::SUB_BYTES;
    use std::mem::size_of;

    /// Bytes a slab entry of `T` takes (`slab::Entry` is an enum of a
    /// vacant link and the value).
    #[allow(dead_code)]
    enum Entry<T> {
        Vacant(usize),
        Occupied(T),
    }

    /// A heap block of `n` bytes as glibc's malloc takes it: 8 bytes of
    /// header, rounded up to 16, at least 32.
    fn heap_block(n: usize) -> usize {
        (n + 8).div_ceil(16).max(2) * 16
    }

    /// Per subscription in a core's `TopicTable`: its slab entry, its slot
    /// in the topic's dense lists (`ConnKey` + `SubId`, growth slack up to
    /// 2x) and in the (connection, topic) map (12 bytes + 1 control byte,
    /// at 7/8 load, growth slack up to 2x).
    fn per_subscription() -> usize {
        SUB_BYTES.next_multiple_of(8) + 8 + (8 + 4) * 2 + (12 + 1) * 8 / 7 * 2
    }

    /// Per connection: its slab entry in the core and its socket's entry in
    /// the driver.
    fn per_connection() -> usize {
        size_of::<Entry<Conn>>() + size_of::<Option<super::Io>>()
    }

    #[test]
    fn per_connection_structures_stay_small() {
        assert!(
            size_of::<Entry<Conn>>() <= 192,
            "Conn is {} B: the issue-15 budget allows 192 B per connection slab entry",
            size_of::<Entry<Conn>>()
        );
        assert!(
            size_of::<Option<super::Io>>() <= 32,
            "Io is {} B: the issue-15 budget allows 32 B (its iovecs are taken only \
             for a send of several frames, never kept per connection)",
            size_of::<Option<super::Io>>()
        );
        assert!(
            heap_block(size_of::<WsConn>()) <= 32,
            "WsConn is {} B: the issue-15 budget allows one 32 B heap block (the decoder \
             is boxed and held only between frames)",
            size_of::<WsConn>()
        );
        assert!(
            per_subscription() <= 96,
            "a subscription takes up to {} B in the topic table: the issue-15 budget allows 96 B",
            per_subscription()
        );
    }

    #[test]
    fn an_idle_subscriber_fits_the_budget() {
        let tcp = per_connection() + per_subscription();
        let ws = tcp + heap_block(size_of::<WsConn>());
        // What the structures may take, leaving room for the request bytes in
        // the receive buffers (a WebSocket's upgrade is ~150 B) and slack.
        assert!(
            tcp <= 320,
            "an idle TCP subscriber takes {tcp} B of structures; with its request bytes \
             and slack that passes issue 15's 384 B (scripts/mem-per-sub.sh)"
        );
        assert!(
            ws <= 352,
            "an idle WebSocket subscriber takes {ws} B of structures; with its upgrade \
             bytes and slack that passes issue 15's 512 B (scripts/mem-per-sub.sh)"
        );
    }
}

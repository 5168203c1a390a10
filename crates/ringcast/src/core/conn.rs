//! Per-connection state in the core: its life cycle, what it speaks, its
//! parse carry-over and subscriptions, and the send queue with its backlog
//! accounting. Nothing here owns a socket: the driver keeps the descriptor
//! and the ops in flight (`reactor::Io`), at the same index.
//!
//! The send queue holds one counted reference per frame still owed, in order.
//! At most one send is in flight per socket; it covers the first `in_flight`
//! entries, starting `head_off` bytes into the first. Invariants:
//! - `queued == sum(outq[i].len()) - head_off`
//! - `head_off < outq[0].len()` whenever `outq` is non-empty
//! - `in_flight <= outq.len()`, and `in_flight > 0` exactly while `sending`

use crate::pool::{Arena, FrameRef, Pool};
use crate::stats::Transport;
use crate::topic::{SubId, NO_SUB};
use crate::ws::frame::Decoder;
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// Most frames one vectored send carries.
pub const MAX_IOV: usize = 64;

/// The life of a connection, one state at a time.
///
/// ```text
///  Open ⇄ Paused          (a SUBSCRIBE waits for its topic's owner core)
///   │  ╲   │
///   │   Overflowing       (backlog past the limit mid-fan-out: cut next)
///   ▼      ▼
///  Draining ──► Closing ──► (driver closes once no op is in flight)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Reading and writing normally.
    Open,
    /// Waiting for a topic owner's answer before handling more input, so
    /// that replies keep the order of requests; input is held meanwhile.
    Paused,
    /// Its backlog passed the limit during the current fan-out: it gets no
    /// more frames and reads no more requests, and is cut (ERROR 6) once the
    /// fan-out or batch ends.
    Overflowing,
    /// No more frames are read or queued; what is owed (ending with an ERROR,
    /// if any) is flushed until `deadline`, then the write side is shut.
    /// Each send that makes progress moves `deadline` on (a peer that keeps
    /// reading keeps its connection), but never past `end`. With `hurry`
    /// (cut off), frames not yet handed to the kernel are dropped so the
    /// trailer goes out next, and sends do not wait for room.
    Draining {
        deadline: u64,
        end: u64,
        hurry: bool,
    },
    /// Write side shut (or being torn down); waiting for the peer's EOF or
    /// `deadline`, then for the ops in flight, then the socket is closed.
    Closing { deadline: u64 },
}

/// What a connection speaks, beyond the native frames every transport carries.
pub enum Wire {
    /// Native frames back to back on the TCP port.
    Tcp,
    /// On the WebSocket port, before an upgrade: an HTTP request head is
    /// being read until `deadline` (monotonic ns).
    Http { deadline: u64 },
    /// Upgraded: one native frame per binary WebSocket message.
    Ws(Box<WsConn>),
    /// Redis's protocol on the Redis port (`crate::front::resp`).
    Resp(Box<RespConn>),
}

/// State of a connection on the Redis port, apart from the subscriptions
/// (held in the core's topic table like every front's).
pub struct RespConn {
    /// Resumes a command that arrived in pieces.
    pub parser: ringcast_proto::resp::Parser,
    pub proto: ringcast_proto::resp::Protocol,
    /// CLIENT ID: unique in the daemon's run.
    pub id: u64,
    /// CLIENT SETNAME / HELLO SETNAME.
    pub name: Option<Box<[u8]>>,
    /// Subscriptions by namespace, as Redis counts them in its replies.
    pub channels: u32,
    pub patterns: u32,
    pub shard_channels: u32,
    /// A multi-channel (un)subscribe paused on a channel whose owner core
    /// must answer first: the index of the next argument to act on when
    /// the connection goes on (0: none waits).
    pub resume_arg: u32,
    /// Authenticated (AUTH or HELLO AUTH) when a token is set.
    pub authenticated: bool,
    /// Replies and pushes held back behind a PUBLISH whose receiver count
    /// another core has yet to tell (Redis answers in order): while any
    /// waits, everything for this connection queues here.
    pub held: std::collections::VecDeque<Held>,
    /// Bytes of the frames in `held` (they count toward the backlog limit).
    pub held_bytes: usize,
    /// A PUBSUB question waiting for other cores' answers, and the answers
    /// so far (the connection is paused meanwhile).
    pub(crate) query: Option<Box<(crate::core::Query, Vec<crate::core::Answer>)>>,
}

/// An entry of [`RespConn::held`].
pub enum Held {
    Frame(FrameRef),
    /// The receiver count of a publish, to come from core `owner`.
    Count {
        owner: u16,
    },
}

impl RespConn {
    pub fn new(id: u64) -> RespConn {
        RespConn {
            parser: ringcast_proto::resp::Parser::new(),
            proto: ringcast_proto::resp::Protocol::Resp2,
            id,
            name: None,
            channels: 0,
            patterns: 0,
            shard_channels: 0,
            resume_arg: 0,
            authenticated: false,
            held: std::collections::VecDeque::new(),
            held_bytes: 0,
            query: None,
        }
    }

    /// In Redis's subscribed state (RESP2 then allows only the pub/sub
    /// commands, PING, QUIT and RESET).
    pub fn subscribed(&self) -> bool {
        self.channels + self.patterns + self.shard_channels > 0
    }
}

/// WebSocket state of an upgraded connection.
pub struct WsConn {
    /// Frame decoder and message reassembly while input is between frames
    /// or messages; None when the input ended on a message boundary (a new
    /// one is made for the next bytes: a silent peer keeps none), while the
    /// reactor handles the messages it yields, and once reading stopped.
    pub decoder: Option<Box<Decoder>>,
    /// Monotonic ns of the last bytes received (pongs included).
    pub last_rx: u64,
    /// A ping was sent since `last_rx`.
    pub pinged: bool,
    /// A close frame was queued: nothing but control traffic follows.
    pub close_sent: bool,
}

/// A connection's send queue: a FIFO of frame references whose first
/// frame is held inline, so a connection that is owed at most one frame at
/// a time (an idle subscriber's SUBACK, a subscriber of a slow topic) never
/// allocates; the rest live in a `VecDeque` allocated by the second frame
/// queued and freed by [`SendQueue::trim`] once empty.
/// Invariant: `more` is empty whenever `first` is `None`.
#[derive(Default)]
pub struct SendQueue {
    first: Option<FrameRef>,
    more: VecDeque<FrameRef>,
}

impl SendQueue {
    pub fn new() -> SendQueue {
        SendQueue::default()
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    pub fn is_empty(&self) -> bool {
        debug_assert!(self.first.is_some() || self.more.is_empty());
        self.first.is_none()
    }

    pub fn front(&self) -> Option<&FrameRef> {
        self.first.as_ref()
    }

    pub fn push_back(&mut self, f: FrameRef) {
        if self.first.is_none() {
            self.first = Some(f);
        } else {
            self.more.push_back(f);
        }
    }

    pub fn pop_front(&mut self) -> Option<FrameRef> {
        let f = self.first.take();
        self.first = self.more.pop_front();
        f
    }

    /// Removes and returns the frame at `i`.
    pub fn remove(&mut self, i: usize) -> Option<FrameRef> {
        if i == 0 {
            self.pop_front()
        } else {
            self.more.remove(i - 1)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &FrameRef> {
        self.first.iter().chain(self.more.iter())
    }

    /// Frees the heap part when nothing is queued there.
    pub fn trim(&mut self) {
        if self.more.is_empty() && self.more.capacity() > 0 {
            self.more = VecDeque::new();
        }
    }
}

impl std::ops::Index<usize> for SendQueue {
    type Output = FrameRef;
    fn index(&self, i: usize) -> &FrameRef {
        match i {
            0 => self.first.as_ref().expect("index 0 of an empty send queue"),
            _ => &self.more[i - 1],
        }
    }
}

pub struct Conn {
    /// The socket, as a handle for questions about it (the driver owns it).
    pub fd: RawFd,
    pub gen: u32,
    pub life: Life,
    pub wire: Wire,
    /// Bytes of a frame that arrived incomplete (or input held while paused).
    pub inbuf: Vec<u8>,
    pub auth_pub: bool,
    pub auth_sub: bool,
    /// Head of this connection's list of subscriptions in the core's
    /// `TopicTable` ([`NO_SUB`]: none), and their number.
    pub first_sub: SubId,
    pub nsubs: u32,
    /// Listed in the core's teardown queue: its subscriptions are being
    /// removed a bounded number per loop turn; not freed before that ends.
    pub in_teardown: bool,
    /// Subscriptions waiting for the owner's answer (count toward the limit).
    pub pending_subs: u32,
    /// Monotonic ns when the frame (or WebSocket frame) now incomplete in
    /// the input began to arrive; 0 when the input ends on a frame boundary.
    pub partial_since: u64,
    /// Bytes of incomplete input this connection holds, as last counted in
    /// the core's total.
    pub held: u32,
    /// Frames at the end of `outq` that end the connection (its ERROR, its
    /// WebSocket close): kept when what is owed before them is dropped.
    pub trailer: u8,
    /// Accepted from the HTTP reserve, beyond `max_connections` (counted
    /// in `Shared::http_connections`, not `connections`).
    pub reserved: bool,
    /// The core asked the driver to close it (`Action::Close`), once.
    pub close_asked: bool,
    /// While draining: the socket's unacknowledged bytes when last looked
    /// at (a drop means the peer is reading, even with no send completing).
    pub kernel_queued: u32,
    pub outq: SendQueue,
    pub head_off: usize,
    pub queued: usize,
    pub sending: bool,
    pub in_flight: usize,
    pub in_flight_bytes: usize,
    /// Listed in the core's dirty list (a send should be submitted).
    pub dirty: bool,
    /// A frame was queued since the last idle scan (`trim` keeps the send
    /// queue's heap part of a connection in use).
    pub queued_lately: bool,
}

impl Conn {
    pub fn new(fd: RawFd, gen: u32, wire: Wire) -> Conn {
        Conn {
            fd,
            gen,
            life: Life::Open,
            wire,
            inbuf: Vec::new(),
            auth_pub: false,
            auth_sub: false,
            first_sub: NO_SUB,
            nsubs: 0,
            in_teardown: false,
            pending_subs: 0,
            partial_since: 0,
            held: 0,
            trailer: 0,
            reserved: false,
            close_asked: false,
            kernel_queued: 0,
            outq: SendQueue::new(),
            head_off: 0,
            queued: 0,
            sending: false,
            in_flight: 0,
            in_flight_bytes: 0,
            dirty: false,
            queued_lately: false,
        }
    }

    /// Queues a frame; returns the bytes now owed. `owed` is the core's
    /// total of `queued` over its connections (the backlog gauge): every
    /// method that changes `queued` keeps it, and nothing else does.
    pub fn push(&mut self, frame: FrameRef, owed: &mut usize) -> usize {
        *owed += frame.len();
        self.queued += frame.len();
        self.outq.push_back(frame);
        self.queued_lately = true;
        self.queued
    }

    /// Fills `iov` with what is owed, up to [`MAX_IOV`] frames, and marks it
    /// in flight. Returns (iovec count, bytes, all frames registered).
    pub fn prepare_send(&mut self, iov: &mut [libc::iovec; MAX_IOV]) -> (usize, usize, bool) {
        debug_assert!(!self.sending && !self.outq.is_empty());
        let mut bytes = 0;
        let mut registered = true;
        let mut n = 0;
        for (i, f) in self.outq.iter().take(MAX_IOV).enumerate() {
            let skip = if i == 0 { self.head_off } else { 0 };
            let len = f.len() - skip;
            // SAFETY: skip < f.len(), so the pointer stays inside the frame.
            let base = unsafe { f.as_ptr().add(skip) };
            iov[i] = libc::iovec {
                iov_base: base as *mut libc::c_void,
                iov_len: len,
            };
            bytes += len;
            registered &= f.is_registered();
            n = i + 1;
        }
        self.sending = true;
        self.in_flight = n;
        self.in_flight_bytes = bytes;
        (n, bytes, registered)
    }

    /// Accounts for a completed send of `sent` bytes: frames sent whole are
    /// released, a partial one stays at the head with `head_off` advanced.
    /// Returns whether the send was short.
    pub fn complete_send(
        &mut self,
        pool: &Pool,
        arena: &mut Arena,
        owed: &mut usize,
        sent: usize,
    ) -> bool {
        *owed -= sent;
        debug_assert!(self.sending && sent <= self.in_flight_bytes);
        let short = sent < self.in_flight_bytes;
        self.sending = false;
        self.in_flight = 0;
        self.in_flight_bytes = 0;
        let mut left = sent;
        while left > 0 {
            let front_len = self.outq.front().expect("sent more than queued").len();
            let rem = front_len - self.head_off;
            if left >= rem {
                left -= rem;
                self.queued -= rem;
                self.head_off = 0;
                arena.release(pool, self.outq.pop_front().expect("front exists"));
            } else {
                self.head_off += left;
                self.queued -= left;
                left = 0;
            }
        }
        short
    }

    /// Drops every queued frame that no send points at and that was not
    /// started (a torn frame at the head stays, so the stream stays whole),
    /// except the `trailer` frames at the end. Returns the bytes dropped.
    pub fn drop_unsent(&mut self, pool: &Pool, arena: &mut Arena, owed: &mut usize) -> usize {
        self.drop_held(pool, arena);
        let before = self.queued;
        let keep = self.in_flight.max(usize::from(self.head_off > 0));
        let trailer = usize::from(self.trailer).min(self.outq.len().saturating_sub(keep));
        let mut i = self.outq.len() - trailer;
        while i > keep {
            i -= 1;
            let f = self.outq.remove(i).expect("i < len");
            self.queued -= f.len();
            arena.release(pool, f);
        }
        *owed -= before - self.queued;
        before - self.queued
    }

    /// Releases everything; only when no send is in flight. Returns the
    /// bytes that were still owed.
    pub fn release_all(&mut self, pool: &Pool, arena: &mut Arena, owed: &mut usize) -> usize {
        debug_assert!(!self.sending);
        self.drop_held(pool, arena);
        self.trailer = 0;
        while let Some(f) = self.outq.pop_front() {
            arena.release(pool, f);
        }
        *owed -= self.queued;
        let left = self.queued;
        self.queued = 0;
        self.head_off = 0;
        left
    }

    /// Frees the send queue's heap part when it holds nothing and no frame
    /// was queued since the previous call (the core calls it on its
    /// periodic idle scan): a connection that went idle keeps no heap
    /// memory for its queue, and one in steady use never reallocates it
    /// (tests/zero_alloc.rs).
    pub fn trim(&mut self) {
        if !std::mem::take(&mut self.queued_lately) {
            self.outq.trim();
        }
    }

    /// Whether it holds replies back behind PUBLISH counts still to come
    /// (it is not done before they are sent).
    pub fn holds(&self) -> bool {
        matches!(&self.wire, Wire::Resp(r) if !r.held.is_empty())
    }

    /// Drops what a RESP connection holds back behind pending counts.
    pub fn drop_held(&mut self, pool: &Pool, arena: &mut Arena) {
        if let Wire::Resp(r) = &mut self.wire {
            for h in r.held.drain(..) {
                if let Held::Frame(f) = h {
                    arena.release(pool, f);
                }
            }
            r.held_bytes = 0;
        }
    }

    /// Not yet told to go: open, paused, or about to be cut.
    pub fn is_live(&self) -> bool {
        matches!(self.life, Life::Open | Life::Paused | Life::Overflowing)
    }

    /// Gets the frames of its subscriptions.
    pub fn takes_frames(&self) -> bool {
        matches!(self.life, Life::Open | Life::Paused)
    }

    /// Its input is parsed and acted on now.
    pub fn reads_requests(&self) -> bool {
        self.life == Life::Open
    }

    /// Being cut off: unsent frames are dropped so its trailer goes next.
    pub fn hurried(&self) -> bool {
        matches!(self.life, Life::Draining { hurry: true, .. })
    }

    /// The transport, for the per-transport gauges.
    pub fn transport(&self) -> Transport {
        match self.wire {
            Wire::Tcp => Transport::Tcp,
            Wire::Http { .. } => Transport::Http,
            Wire::Ws(_) => Transport::WebSocket,
            Wire::Resp(_) => Transport::Resp,
        }
    }

    /// Counts a RESP connection's subscription gained (`delta` 1) or lost
    /// (-1) in namespace `ns`, as Redis counts them in its replies; returns
    /// whether the connection speaks RESP.
    pub fn count_resp_sub(&mut self, ns: crate::topic::Ns, delta: i32) -> bool {
        use crate::topic::Ns;
        let Wire::Resp(r) = &mut self.wire else {
            return false;
        };
        let n = match ns {
            Ns::Channel => &mut r.channels,
            Ns::Shard => &mut r.shard_channels,
            Ns::Pattern => &mut r.patterns,
        };
        *n = n.wrapping_add_signed(delta);
        true
    }

    /// Whether it speaks Redis's protocol.
    pub fn is_resp(&self) -> bool {
        matches!(self.wire, Wire::Resp(_))
    }

    /// Whether queued frames must be WebSocket messages.
    pub fn is_ws(&self) -> bool {
        matches!(self.wire, Wire::Ws(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::Arena;

    fn frame(pool: &Pool, arena: &mut Arena, len: usize, fill: u8) -> FrameRef {
        let mut f = arena.alloc(pool, len);
        // SAFETY: just allocated; nobody else refers to it.
        unsafe { f.bytes_mut() }.fill(fill);
        f
    }

    fn iovecs() -> [libc::iovec; MAX_IOV] {
        [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV]
    }

    fn sent_bytes(iov: &[libc::iovec], n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for v in &iov[..n] {
            // SAFETY: the iovecs point into frames held by c.outq.
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len)
            });
        }
        out
    }

    #[test]
    fn short_sends_resume_exactly_where_they_stopped() {
        let pool = Pool::new(1 << 20, 1, 4096).unwrap();
        let mut arena = Arena::new(&pool, 0);
        let mut c = Conn::new(-1, 0, Wire::Tcp);
        let mut owed = 0;
        c.push(frame(&pool, &mut arena, 100, 1), &mut owed);
        c.push(frame(&pool, &mut arena, 50, 2), &mut owed);
        c.push(frame(&pool, &mut arena, 30, 3), &mut owed);
        let mut stream = Vec::new();
        for take in [60usize, 0, 80, 40] {
            let mut iov = iovecs();
            let (n, bytes, registered) = c.prepare_send(&mut iov);
            assert!(registered);
            assert_eq!(bytes, c.queued);
            let chunk = sent_bytes(&iov, n);
            stream.extend_from_slice(&chunk[..take.min(bytes)]);
            c.complete_send(&pool, &mut arena, &mut owed, take.min(bytes));
            if c.outq.is_empty() {
                break;
            }
        }
        let mut expect = vec![1u8; 100];
        expect.extend(vec![2u8; 50]);
        expect.extend(vec![3u8; 30]);
        assert_eq!(stream, expect);
        assert_eq!(c.queued, 0);
    }

    #[test]
    fn an_idle_connection_holds_no_heap_memory() {
        // Issue 15's budget per idle subscriber (see reactor::memory_budget)
        // counts no heap block for the send queue or the input.
        let pool = Pool::new(1 << 20, 1, 4096).unwrap();
        let mut arena = Arena::new(&pool, 0);
        let mut c = Conn::new(-1, 0, Wire::Tcp);
        assert_eq!((c.outq.more.capacity(), c.inbuf.capacity()), (0, 0));
        let mut owed = 0;
        // One frame owed at a time (a SUBACK, then one DATA per send): inline.
        for _ in 0..3 {
            c.push(frame(&pool, &mut arena, 10, 1), &mut owed);
            c.prepare_send(&mut iovecs());
            c.complete_send(&pool, &mut arena, &mut owed, 10);
        }
        assert_eq!(
            c.outq.more.capacity(),
            0,
            "one frame at a time stays inline"
        );
        // Several queued: the heap part, freed by trim once sent.
        for _ in 0..3 {
            c.push(frame(&pool, &mut arena, 10, 2), &mut owed);
        }
        assert!(c.outq.more.capacity() > 0);
        c.prepare_send(&mut iovecs());
        c.complete_send(&pool, &mut arena, &mut owed, 30);
        c.trim();
        assert!(
            c.outq.more.capacity() > 0,
            "kept: frames were queued lately"
        );
        c.trim();
        assert_eq!((c.outq.len(), c.outq.more.capacity()), (0, 0));
    }

    #[test]
    fn dropping_unsent_keeps_a_torn_head_frame() {
        let pool = Pool::new(1 << 20, 1, 4096).unwrap();
        let mut arena = Arena::new(&pool, 0);
        let mut c = Conn::new(-1, 0, Wire::Tcp);
        let mut owed = 0;
        for i in 0..4 {
            c.push(frame(&pool, &mut arena, 100, i), &mut owed);
        }
        c.prepare_send(&mut iovecs());
        c.complete_send(&pool, &mut arena, &mut owed, 150);
        assert_eq!(c.drop_unsent(&pool, &mut arena, &mut owed), 200);
        assert_eq!(c.outq.len(), 1);
        assert_eq!(c.queued, 50);
        assert_eq!(c.release_all(&pool, &mut arena, &mut owed), 50);
    }

    #[test]
    fn dropping_unsent_keeps_the_trailer_after_a_torn_head() {
        let pool = Pool::new(1 << 20, 1, 4096).unwrap();
        let mut arena = Arena::new(&pool, 0);
        let mut c = Conn::new(-1, 0, Wire::Tcp);
        let mut owed = 0;
        for i in 0..4 {
            c.push(frame(&pool, &mut arena, 100, i), &mut owed);
        }
        c.prepare_send(&mut iovecs());
        c.complete_send(&pool, &mut arena, &mut owed, 30);
        c.push(frame(&pool, &mut arena, 10, 9), &mut owed);
        c.trailer = 1;
        // In flight again, then cut: the send is cancelled (0 bytes).
        c.prepare_send(&mut iovecs());
        assert_eq!(
            c.drop_unsent(&pool, &mut arena, &mut owed),
            0,
            "all in flight"
        );
        c.complete_send(&pool, &mut arena, &mut owed, 0);
        assert_eq!(c.drop_unsent(&pool, &mut arena, &mut owed), 300);
        let left: Vec<u8> = c.outq.iter().map(|f| f.bytes()[0]).collect();
        assert_eq!(left, [0, 9], "the torn head, then the trailer");
        assert_eq!(c.queued, 70 + 10);
    }
}

//! The subscribers one process owns: connecting them a window at a time,
//! confirming each subscription, reading what arrives, and accounting for
//! every delivery (sequence tracking, latency, burst completion).
//!
//! Call order (the owner's event loop): [`SubSet::start`] once, then for each
//! epoll event with a [`super::TOKEN_SUB`] token [`SubSet::handle`], then
//! [`SubSet::take_notes`]; [`SubSet::set_expected`] when the publisher has
//! finished; [`SubSet::deliveries`] and [`SubSet::histogram`] at the end.
//!
//! Memory: one shared 256 KiB read buffer; per subscriber only the bytes of
//! a frame cut by the end of a read (`partial`) and unsent request bytes.
//! A message of 64 KiB or more is never buffered whole: once its head and
//! stamp are in, the rest is discarded in the kernel (`recv(MSG_TRUNC)`, no
//! copy) and the delivery is timed by its last segment.
//!
//! Scale-out (`--sub-ports`): the set holds one address per node, and
//! subscriber g connects to address g mod k; latency and delivery counts
//! are kept per address ([`SubSet::port_reports`]) as well as in total.
//!
//! ringcast-ws: a subscriber sends the upgrade request, waits for the 101
//! (state `Upgrading`), then sends its SUBSCRIBE in a masked binary message;
//! from there each server message is parsed in place by [`super::ws`] and
//! its native frame accounted for exactly as over TCP. The server's pings
//! (sent to silent peers) are answered, so long runs are not cut off idle.

use super::account::{Deliveries, SeqTracker};
use super::hist::LatencyHistogram;
use super::sys::{self, Epoll};
use super::wire::{read_stamp, Event, Proto, PAYLOAD_HEADER};
use super::ws;
use super::{Params, RxClock, Workload};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

/// Subscriptions being set up at once: bounds the server's accept backlog
/// and the burst of SUBSCRIBEs it sees.
const CONNECT_WINDOW: usize = 256;
/// Shared read buffer.
const READ_BUF: usize = 256 * 1024;
/// Messages at least this large are not buffered whole: once their head and
/// stamp are in, the rest is discarded in the kernel (MSG_TRUNC, no copy).
const SKIP_FROM: usize = 64 * 1024;

/// Where one subscriber is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not started yet (waiting for a slot in the connect window).
    Idle,
    /// Non-blocking connect in progress; its request bytes (the
    /// subscription, or for WebSocket the upgrade request) wait in `out`.
    Connecting,
    /// WebSocket only: connected, upgrade request sent, the 101 not yet
    /// seen (RFC 6455 §4.1: nothing else is sent before it); then the
    /// subscription is sent.
    Upgrading,
    /// Connected, subscription sent, confirmation not yet seen.
    Subscribing,
    /// Confirmed: receiving.
    Ready,
    /// Closed by the server or failed; its fd is gone.
    Closed,
}

struct Sub {
    /// The socket; `None` once closed.
    fd: Option<OwnedFd>,
    state: State,
    /// Index into the topic list.
    topic: u32,
    /// Index into the address list (its node, with `--sub-ports`).
    port: u32,
    /// Bytes of an event cut by the end of a read.
    partial: Vec<u8>,
    /// Bytes to send (the subscription request, PONGs) and how far sent.
    out: Vec<u8>,
    out_at: usize,
    /// Whether EPOLLOUT is being watched.
    watching_out: bool,
    /// Set when the subscription is confirmed.
    tracker: Option<SeqTracker>,
    /// Measured (non-warm-up) deliveries received once each.
    measured: u64,
    /// Bytes of a large message still to discard (see [`skip_large`]).
    skip: usize,
    /// That message's seq and payload head, delivered when `skip` reaches 0.
    pending: Option<(Option<u64>, [u8; PAYLOAD_HEADER])>,
}

/// Something the owner must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// Every live subscriber here has received burst `seq`; `max_ns` is the
    /// largest latency among them (this process's time to last subscriber).
    BurstDone { seq: u64, warm: bool, max_ns: u64 },
}

/// What the subscribers of one address (one node) measured.
#[derive(Clone, Debug, Default)]
pub struct PortTotals {
    /// Latency of every measured delivery.
    pub hist: LatencyHistogram,
    /// Subscribers the server closed or that failed after confirming.
    pub disconnects: u64,
    /// ERROR frames (or -ERR lines) received.
    pub server_errors: u64,
    /// Measured deliveries without a kernel receive stamp.
    pub unstamped: u64,
    /// GAP notices received (a relaying server's warning of lost frames).
    pub gap_notices: u64,
}

/// Counters shared by all subscribers of the set (kept apart from `subs`
/// so a subscriber and the totals can be borrowed at once).
#[derive(Default)]
struct Totals {
    /// Per address, in the set's address order.
    ports: Vec<PortTotals>,
    ready: usize,
    /// Subscribers in `Connecting` or `Subscribing`.
    in_setup: usize,
    /// Subscribers in `Ready` now (closed ones leave it).
    live: usize,
    first_error: Option<String>,
    /// Expected measured deliveries per topic, once the publisher is done.
    expected: Option<Vec<u64>>,
    /// Live subscribers still owed measured deliveries (valid once `expected` is set).
    pending: usize,
    /// Bursts in progress: (seq, warm, received, max latency ns).
    bursts: Vec<(u64, bool, usize, u64)>,
    notes: Vec<Note>,
    /// Payloads too short to carry the generator's stamp.
    foreign: u64,
}

/// A process's share of the subscribers.
pub struct SubSet {
    proto: Proto,
    /// Where subscribers connect: subscriber g to `addrs[g % len]`.
    addrs: Vec<SocketAddr>,
    topics: Vec<String>,
    /// Global index of `subs[0]`: subscriber g subscribes to topic g % topics.
    first_global: usize,
    /// RESP: the topics are patterns, subscribed with PSUBSCRIBE.
    patterns: bool,
    /// Spread connections over 127.0.0.1 ..= 127.0.0.N (1: no bind).
    source_ips: usize,
    burst_mode: bool,
    /// Receive times from the kernel (SO_TIMESTAMPNS) rather than the clock.
    kernel_stamps: bool,
    subs: Vec<Sub>,
    next_idle: usize,
    totals: Totals,
    rbuf: Vec<u8>,
}

impl SubSet {
    /// Subscribers `first_global .. first_global + count` of the run `p`
    /// (protocol, workload, source addresses, receive clock), subscriber g
    /// at `addrs[g % addrs.len()]` (one address, or one per `--sub-ports` entry).
    pub fn new(
        p: &Params,
        addrs: Vec<SocketAddr>,
        topics: Vec<String>,
        first_global: usize,
        count: usize,
    ) -> SubSet {
        assert!(!addrs.is_empty(), "subscribers need an address");
        let subs = (0..count)
            .map(|i| Sub {
                fd: None,
                state: State::Idle,
                topic: ((first_global + i) % topics.len()) as u32,
                port: ((first_global + i) % addrs.len()) as u32,
                partial: Vec::new(),
                out: Vec::new(),
                out_at: 0,
                watching_out: false,
                tracker: None,
                measured: 0,
                skip: 0,
                pending: None,
            })
            .collect();
        let totals = Totals {
            ports: vec![PortTotals::default(); addrs.len()],
            ..Totals::default()
        };
        SubSet {
            proto: p.proto,
            addrs,
            topics,
            first_global,
            patterns: p.patterns,
            source_ips: p.effective_source_ips().clamp(1, 254),
            burst_mode: p.workload == Workload::Burst,
            kernel_stamps: p.rx_clock == RxClock::Kernel,
            subs,
            next_idle: 0,
            totals,
            rbuf: vec![0; READ_BUF],
        }
    }

    /// Subscribers in this set.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Starts connecting, a window at a time; called again as
    /// subscriptions are confirmed. A subscriber that cannot even start is
    /// closed with its reason (see [`SubSet::setup_failure`]).
    pub fn start(&mut self, ep: &Epoll) {
        while self.totals.in_setup < CONNECT_WINDOW && self.next_idle < self.subs.len() {
            let i = self.next_idle;
            self.next_idle += 1;
            if let Err(e) = self.connect(ep, i) {
                self.subs[i].state = State::Closed;
                self.totals.first_error.get_or_insert(e);
                return;
            }
        }
    }

    fn source_for(&self, i: usize) -> Option<Ipv4Addr> {
        match self.addrs[0].ip() {
            IpAddr::V4(ip) if ip.is_loopback() && self.source_ips > 1 => {
                let g = self.first_global + i;
                Some(Ipv4Addr::new(127, 0, 0, 1 + (g % self.source_ips) as u8))
            }
            _ => None,
        }
    }

    /// Subscriber `i`'s address.
    fn addr_of(&self, i: usize) -> SocketAddr {
        self.addrs[self.subs[i].port as usize]
    }

    fn connect(&mut self, ep: &Epoll, i: usize) -> Result<(), String> {
        let source = self.source_for(i);
        let addr = self.addr_of(i);
        let (fd, _) = sys::connect_start(&addr, source).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EMFILE) | Some(libc::ENFILE) => {
                    " (out of file descriptors: use more --procs)"
                }
                Some(libc::EADDRNOTAVAIL) => " (out of ephemeral ports: use more --source-ips)",
                _ => "",
            };
            format!(
                "subscriber {}: cannot connect to {addr}: {e}{hint}",
                self.first_global + i,
            )
        })?;
        if self.kernel_stamps {
            sys::enable_rx_timestamps(fd.as_raw_fd())
                .map_err(|e| format!("SO_TIMESTAMPNS: {e} (try --rx-clock user)"))?;
        }
        let token = super::TOKEN_SUB | i as u64;
        // Watch OUT to learn when the connect completes (or has already):
        // the first writable event sends the request.
        ep.add(fd.as_raw_fd(), token, sys::IN | sys::OUT)
            .map_err(|e| format!("epoll: {e}"))?;
        let proto = self.proto;
        let topic = &self.topics[self.subs[i].topic as usize];
        let sub = &mut self.subs[i];
        let global = (self.first_global + i) as u64;
        if proto.is_websocket() {
            // The subscription follows the 101 (see `consume`).
            ws::upgrade_request(&addr.to_string(), global, &mut sub.out);
        } else if self.patterns {
            debug_assert_eq!(proto, Proto::Resp, "validated: --patterns needs resp");
            super::resp::encode_psubscribe(topic, &mut sub.out);
        } else {
            proto.encode_hello(&mut sub.out);
            proto.encode_subscribe(topic, global + 1, &mut sub.out);
        }
        sub.fd = Some(fd);
        sub.state = State::Connecting;
        sub.watching_out = true;
        self.totals.in_setup += 1;
        Ok(())
    }

    /// Every subscriber confirmed.
    pub fn all_ready(&self) -> bool {
        self.totals.ready == self.subs.len()
    }

    /// Subscribers confirmed so far.
    pub fn ready(&self) -> usize {
        self.totals.ready
    }

    /// The first failure while setting up, if any subscriber failed before
    /// its subscription was confirmed.
    pub fn setup_failure(&self) -> Option<&str> {
        if self
            .subs
            .iter()
            .any(|s| s.state == State::Closed && s.tracker.is_none())
        {
            self.totals.first_error.as_deref()
        } else {
            None
        }
    }

    /// Handles an epoll event for subscriber `index` (the token's low bits).
    pub fn handle(&mut self, ep: &Epoll, index: usize, events: u32) {
        let Some(state) = self.subs.get(index).map(|s| s.state) else {
            return;
        };
        if state == State::Connecting {
            let fd = self.subs[index].fd.as_ref().map(|f| f.as_raw_fd());
            match fd.map(sys::take_socket_error) {
                Some(Ok(())) => {
                    self.subs[index].state = if self.proto.is_websocket() {
                        State::Upgrading
                    } else {
                        State::Subscribing
                    };
                }
                Some(Err(e)) => {
                    let addr = self.addr_of(index);
                    self.close(ep, index, format!("connect to {addr}: {e}"));
                    return;
                }
                None => return,
            }
        }
        if events & sys::OUT != 0 {
            self.flush(ep, index);
        }
        if events & (sys::IN | sys::HUP_OR_ERR) != 0 {
            self.read(ep, index);
        }
        // Keep the connect window full.
        if self.totals.in_setup < CONNECT_WINDOW && self.next_idle < self.subs.len() {
            self.start(ep);
        }
    }

    fn flush(&mut self, ep: &Epoll, i: usize) {
        let sub = &mut self.subs[i];
        let Some(fd) = sub.fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        while sub.out_at < sub.out.len() {
            match sys::write(fd, &sub.out[sub.out_at..]) {
                Ok(n) => sub.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close(ep, i, format!("send: {e}"));
                    return;
                }
            }
        }
        let done = sub.out_at == sub.out.len();
        if done {
            sub.out.clear();
            sub.out_at = 0;
        }
        if done == sub.watching_out {
            sub.watching_out = !done;
            let events = if done { sys::IN } else { sys::IN | sys::OUT };
            let _ = ep.modify(fd, super::TOKEN_SUB | i as u64, events);
        }
    }

    fn read(&mut self, ep: &Epoll, i: usize) {
        let Some(fd) = self.subs[i].fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let mut wrote_reply = false;
        loop {
            let skipping = self.subs[i].skip > 0;
            let got = if skipping {
                sys::recv_discard(fd, self.subs[i].skip)
            } else if self.kernel_stamps {
                sys::recv_stamped(fd, &mut rbuf)
            } else {
                sys::read(fd, &mut rbuf).map(|n| (n, None))
            };
            let (n, stamp) = match got {
                Ok((0, _)) => {
                    self.close(ep, i, "closed by the server".into());
                    break;
                }
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close(ep, i, format!("receive: {e}"));
                    break;
                }
            };
            let stamped = stamp.is_some() || !self.kernel_stamps;
            let now = stamp.unwrap_or_else(sys::realtime_ns);
            if skipping {
                self.skipped(i, n, now, stamped);
                continue;
            }
            match self.consume(i, &rbuf[..n], now, stamped) {
                Ok(reply) => wrote_reply |= reply,
                Err(e) => {
                    self.close(ep, i, e);
                    break;
                }
            }
            if n < rbuf.len() && self.subs[i].skip == 0 {
                break;
            }
        }
        self.rbuf = rbuf;
        if wrote_reply {
            self.flush(ep, i);
        }
    }

    /// `n` more bytes of a large message were discarded; when it is all
    /// gone, the message is delivered, timed by its last segment.
    fn skipped(&mut self, i: usize, n: usize, now: u64, stamped: bool) {
        let sub = &mut self.subs[i];
        debug_assert!(n <= sub.skip);
        sub.skip -= n;
        if sub.skip == 0 {
            if let Some((seq, head)) = sub.pending.take() {
                on_data(
                    self.burst_mode,
                    sub,
                    &mut self.totals,
                    seq,
                    &head,
                    now,
                    stamped,
                );
            }
        }
    }

    /// Parses `data` (after any partial bytes kept from the last read).
    /// Returns whether bytes were queued to send (PONGs; for WebSocket, the
    /// subscription once the 101 is in).
    /// `now` is the receive time; `stamped` says whether it is the time
    /// asked for (false: the kernel's stamp was missing).
    fn consume(&mut self, i: usize, data: &[u8], now: u64, stamped: bool) -> Result<bool, String> {
        let proto = self.proto;
        let burst_mode = self.burst_mode;
        let global = (self.first_global + i) as u64;
        let topics = &self.topics;
        let sub = &mut self.subs[i];
        let totals = &mut self.totals;
        let queued = sub.out.len();
        let mut partial = std::mem::take(&mut sub.partial);
        let from_partial = !partial.is_empty();
        if from_partial {
            partial.extend_from_slice(data);
        }
        let buf: &[u8] = if from_partial { &partial } else { data };
        let mut at = 0;
        let result = loop {
            if sub.state == State::Upgrading {
                match ws::check_upgrade_response(&buf[at..], global) {
                    Ok(Some(used)) => {
                        at += used;
                        sub.state = State::Subscribing;
                        let topic = &topics[sub.topic as usize];
                        proto.encode_subscribe(topic, global + 1, &mut sub.out);
                        continue;
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
            match proto.parse(&buf[at..]) {
                Ok(Some((event, used))) => {
                    at += used;
                    on_event(proto, burst_mode, sub, totals, event, now, stamped);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if result.is_ok() {
            at += skip_large(proto, sub, &buf[at..]);
        }
        if from_partial {
            partial.drain(..at);
        } else {
            partial.extend_from_slice(&data[at..]);
        }
        sub.partial = partial;
        result?;
        Ok(sub.out.len() > queued)
    }

    /// Closes subscriber `i` and accounts for it.
    fn close(&mut self, ep: &Epoll, i: usize, why: String) {
        let addr = self.addr_of(i);
        let sub = &mut self.subs[i];
        if let Some(fd) = sub.fd.take() {
            let _ = ep.delete(fd.as_raw_fd());
        }
        let t = &mut self.totals;
        match sub.state {
            State::Connecting | State::Upgrading | State::Subscribing => t.in_setup -= 1,
            State::Ready => {
                t.live -= 1;
                t.ports[sub.port as usize].disconnects += 1;
                if let Some(exp) = &t.expected {
                    if sub.measured < exp[sub.topic as usize] {
                        t.pending -= 1;
                    }
                }
            }
            State::Idle | State::Closed => {}
        }
        sub.state = State::Closed;
        t.first_error.get_or_insert_with(|| {
            format!("subscriber {} (at {addr}): {why}", self.first_global + i)
        });
        check_bursts(t);
    }

    /// The publisher is done: `per_topic[t]` measured messages were
    /// published on topic t. From now on [`SubSet::is_complete`] can hold.
    pub fn set_expected(&mut self, per_topic: &[u64]) {
        let t = &mut self.totals;
        t.pending = self
            .subs
            .iter()
            .filter(|s| s.state == State::Ready && s.measured < per_topic[s.topic as usize])
            .count();
        t.expected = Some(per_topic.to_vec());
    }

    /// Every live subscriber has received everything it is owed.
    pub fn is_complete(&self) -> bool {
        self.totals.expected.is_some() && self.totals.pending == 0
    }

    /// Notes since the last call.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.totals.notes)
    }

    /// Delivery counts (expected needs [`SubSet::set_expected`]).
    pub fn deliveries(&self) -> Deliveries {
        let mut d = Deliveries::default();
        for (p, _) in self.port_reports() {
            d.add(&p);
        }
        d
    }

    /// Delivery counts and latency per address, in address order
    /// (expected needs [`SubSet::set_expected`]).
    pub fn port_reports(&self) -> Vec<(Deliveries, LatencyHistogram)> {
        let t = &self.totals;
        let mut out: Vec<(Deliveries, LatencyHistogram)> = t
            .ports
            .iter()
            .map(|p| {
                let d = Deliveries {
                    disconnects: p.disconnects,
                    server_errors: p.server_errors,
                    unstamped: p.unstamped,
                    gap_notices: p.gap_notices,
                    ..Default::default()
                };
                (d, p.hist.clone())
            })
            .collect();
        for s in &self.subs {
            let d = &mut out[s.port as usize].0;
            if let Some(exp) = &t.expected {
                d.expected += exp[s.topic as usize];
            }
            d.received += s.measured;
            if let Some(tr) = &s.tracker {
                d.duplicates += tr.duplicates();
                d.reordered += tr.reordered();
                d.gaps += tr.missing();
            }
        }
        out
    }

    /// Latency of every measured delivery, all addresses together.
    pub fn histogram(&self) -> LatencyHistogram {
        let mut ports = self.totals.ports.iter();
        let mut all = ports.next().map(|p| p.hist.clone()).unwrap_or_default();
        for p in ports {
            all.merge(&p.hist);
        }
        all
    }

    /// The first thing that went wrong, for the report.
    pub fn first_error(&self) -> Option<&str> {
        self.totals.first_error.as_deref()
    }

    /// Payloads that did not carry the generator's stamp.
    pub fn foreign_payloads(&self) -> u64 {
        self.totals.foreign
    }
}

/// One event for one subscriber.
fn on_event(
    proto: Proto,
    burst_mode: bool,
    sub: &mut Sub,
    t: &mut Totals,
    event: Event<'_>,
    now: u64,
    stamped: bool,
) {
    if sub.state == State::Subscribing && proto.confirms_subscription(&event) {
        let first = match event {
            Event::Subscribed { first_seq } => first_seq.unwrap_or(1),
            _ => 1,
        };
        sub.tracker = Some(SeqTracker::new(first));
        sub.state = State::Ready;
        t.ready += 1;
        t.live += 1;
        t.in_setup -= 1;
        return;
    }
    match event {
        Event::Data { seq, payload } => on_data(burst_mode, sub, t, seq, payload, now, stamped),
        Event::Ping(payload) => proto.encode_pong(payload, &mut sub.out),
        Event::Gap(why) => {
            t.ports[sub.port as usize].gap_notices += 1;
            t.first_error
                .get_or_insert_with(|| format!("server GAP: {why}"));
        }
        Event::ServerError(e) => {
            t.ports[sub.port as usize].server_errors += 1;
            t.first_error
                .get_or_insert_with(|| format!("server error: {e}"));
        }
        Event::Close(why) => {
            t.first_error
                .get_or_insert_with(|| format!("server: {why}"));
        }
        Event::Subscribed { .. } | Event::Pong | Event::Other => {}
    }
}

/// If `rest` (what is left unparsed) starts with the head of a large
/// message whose stamp has arrived, takes the head and arranges for the
/// rest of the message to be discarded as it arrives; returns the bytes of
/// `rest` used (all of it, or none).
fn skip_large(proto: Proto, sub: &mut Sub, rest: &[u8]) -> usize {
    if rest.len() < PAYLOAD_HEADER || sub.state != State::Ready {
        return 0;
    }
    let Some(p) = proto.data_prefix(rest) else {
        return 0;
    };
    if p.total < SKIP_FROM || p.total <= rest.len() || rest.len() < p.head + PAYLOAD_HEADER {
        return 0;
    }
    let mut head = [0u8; PAYLOAD_HEADER];
    head.copy_from_slice(&rest[p.head..p.head + PAYLOAD_HEADER]);
    sub.pending = Some((p.seq, head));
    sub.skip = p.total - rest.len();
    rest.len()
}

/// One message for one subscriber: `payload` holds at least the stamp.
fn on_data(
    burst_mode: bool,
    sub: &mut Sub,
    t: &mut Totals,
    seq: Option<u64>,
    payload: &[u8],
    now: u64,
    stamped: bool,
) {
    let (Some(tracker), Some((sent, gen_seq, warm))) = (sub.tracker.as_mut(), read_stamp(payload))
    else {
        t.foreign += 1;
        return;
    };
    if !tracker.observe(seq.unwrap_or(gen_seq)).is_new() {
        return;
    }
    let latency = now.saturating_sub(sent);
    if !warm {
        sub.measured += 1;
        let port = &mut t.ports[sub.port as usize];
        port.hist.record(latency);
        port.unstamped += u64::from(!stamped);
        if let Some(exp) = &t.expected {
            if sub.measured == exp[sub.topic as usize] {
                t.pending -= 1;
            }
        }
    }
    if burst_mode {
        match t.bursts.iter_mut().find(|b| b.0 == gen_seq) {
            Some(b) => {
                b.2 += 1;
                b.3 = b.3.max(latency);
            }
            None => t.bursts.push((gen_seq, warm, 1, latency)),
        }
        check_bursts(t);
    }
}

/// Emits a note for every burst that all live subscribers have received.
fn check_bursts(t: &mut Totals) {
    let live = t.live;
    let notes = &mut t.notes;
    t.bursts.retain(|&(seq, warm, received, max_ns)| {
        if received >= live {
            notes.push(Note::BurstDone { seq, warm, max_ns });
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_proto::native::{decode_client, ClientFrame, ServerFrame};
    use ringcast_proto::ws::frame::{encode_server_frame, Decoder, Event as WsEvent, Opcode, Role};
    use ringcast_proto::ws::handshake;

    const TOPIC: &str = "bench.t.0";
    /// Subscriber 0 of the set is global subscriber 3.
    const FIRST: usize = 3;
    /// Send time of every payload; the receive time is 1 ms later.
    const SENT: u64 = 1_000_000_000;

    fn set(proto: Proto) -> SubSet {
        let p = Params {
            proto,
            ..Params::default()
        };
        let mut s = SubSet::new(
            &p,
            vec![SocketAddr::from(([127, 0, 0, 1], 7401))],
            vec![TOPIC.into()],
            FIRST,
            1,
        );
        // As if connected: the request is out, the answer is awaited.
        s.subs[0].state = if proto.is_websocket() {
            State::Upgrading
        } else {
            State::Subscribing
        };
        s.totals.in_setup = 1;
        s
    }

    /// The server's side of a subscription: SUBACK, then DATA seq 1..=n
    /// with the generator's stamps; the last one is large (skipped in the
    /// kernel once its stamp is in). Native frames, one per element.
    fn natives(n: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut f = Vec::new();
        ServerFrame::SubAck {
            next_seq: 1,
            epoch: 1,
            topic: TOPIC,
        }
        .encode(&mut f);
        out.push(f);
        for seq in 1..=n {
            let size = if seq == n {
                100_000
            } else {
                16 + seq as usize * 13
            };
            let mut payload = vec![0u8; size];
            super::super::wire::fill_payload(&mut payload);
            super::super::wire::stamp(&mut payload, SENT, seq, false);
            let mut f = Vec::new();
            ServerFrame::Data {
                seq,
                ts_ns: 5,
                topic: TOPIC,
                payload: &payload,
            }
            .encode(&mut f);
            out.push(f);
        }
        out
    }

    /// Feeds `stream` cut at `cuts` the way `read` does: bytes of a large
    /// message being skipped go to `skipped`, the rest to `consume`.
    fn feed(s: &mut SubSet, stream: &[u8], cuts: &[usize]) {
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&stream.len())) {
            let mut chunk = &stream[from..to];
            from = to;
            while !chunk.is_empty() {
                if s.subs[0].skip > 0 {
                    let n = s.subs[0].skip.min(chunk.len());
                    s.skipped(0, n, SENT + 1_000_000, true);
                    chunk = &chunk[n..];
                } else {
                    s.consume(0, chunk, SENT + 1_000_000, true).unwrap();
                    chunk = &[];
                }
            }
        }
    }

    fn check_complete(s: &mut SubSet, n: u64) {
        assert_eq!(s.subs[0].state, State::Ready);
        s.set_expected(&[n]);
        assert!(s.is_complete());
        let d = s.deliveries();
        assert_eq!((d.expected, d.received), (n, n));
        assert_eq!((d.duplicates, d.reordered, d.gaps), (0, 0, 0));
        assert_eq!(s.histogram().count(), n);
        assert_eq!(s.histogram().max(), s.histogram().min());
        assert_eq!(s.foreign_payloads(), 0);
        assert_eq!(s.first_error(), None);
    }

    #[test]
    fn websocket_subscriber_upgrades_subscribes_and_counts_at_every_split() {
        const N: u64 = 20;
        let frames = natives(N);
        let key = ws::key_for(FIRST as u64);
        let mut stream = handshake::accept_response(&handshake::Upgrade {
            accept: handshake::accept_key(key.as_bytes()),
            subprotocol: true,
        });
        for (i, f) in frames.iter().enumerate() {
            encode_server_frame(&mut stream, Opcode::Binary, f);
            if i == 1 {
                encode_server_frame(&mut stream, Opcode::Ping, b"ringcast");
            }
        }
        // The same frames over the native protocol: the reference.
        let mut native = set(Proto::Ringcast);
        feed(&mut native, &frames.concat(), &[]);
        check_complete(&mut native, N);
        let reference = native.histogram().summary();
        let one_by_one: Vec<usize> = (1..stream.len()).collect();
        let cuts = (0..=stream.len())
            .filter(|&c| c < 3_000 || c % 251 == 0 || stream.len() - c < 500)
            .map(|c| vec![c])
            .chain([one_by_one]);
        for cut in cuts {
            let mut s = set(Proto::RingcastWs);
            feed(&mut s, &stream, &cut);
            check_complete(&mut s, N);
            assert_eq!(s.histogram().summary(), reference);
            // What it sent after the 101: the SUBSCRIBE, then the pong.
            let out = &s.subs[0].out;
            let mut dec = Decoder::new(Role::Server, 1 << 20);
            let (used, ev) = dec.decode(out).unwrap();
            let Some(WsEvent::Message(m)) = ev else {
                panic!("not a message: {ev:?}");
            };
            assert_eq!(
                decode_client(m, 1 << 20).unwrap().frame(),
                Some((ClientFrame::Subscribe { topic: TOPIC }, m.len()))
            );
            let rest = out[used..].to_vec();
            assert_eq!(
                dec.decode(&rest).unwrap(),
                (rest.len(), Some(WsEvent::Pong(b"ringcast")))
            );
        }
    }

    /// Subscribers spread over three nodes: each port's subscribers are
    /// counted and timed apart, and the totals are their sums.
    #[test]
    fn sub_ports_keep_deliveries_and_latency_per_port() {
        const N: u64 = 5;
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let p = Params {
            target: Some(at(7400)),
            sub_ports: vec![7400, 7410, 7420],
            ..Params::default()
        };
        // Global subscribers 3..=7: ports 0, 1, 2, 0, 1.
        let mut s = SubSet::new(&p, p.subscriber_addrs(), vec![TOPIC.into()], FIRST, 5);
        let ports: Vec<u32> = s.subs.iter().map(|x| x.port).collect();
        assert_eq!(ports, [0, 1, 2, 0, 1]);
        assert_eq!(s.addr_of(2), at(7420));
        for sub in &mut s.subs {
            sub.state = State::Subscribing;
        }
        s.totals.in_setup = 5;
        let stream = natives(N).concat();
        // SUBACK and all but the last message.
        let cut = natives(N)[..N as usize].concat();
        let mut gap = Vec::new();
        ServerFrame::Gap {
            topic: TOPIC,
            message: "relay reconnected",
        }
        .encode(&mut gap);
        // Port j's deliveries arrive (j + 1) ms after they were sent;
        // subscriber 2 (port 2) misses the last message and is told so.
        for i in 0..5 {
            let now = SENT + (s.subs[i].port as u64 + 1) * 1_000_000;
            let data: &[u8] = if i == 2 {
                s.consume(i, &gap, now, true).unwrap();
                &cut
            } else {
                &stream
            };
            let mut rest = data;
            while !rest.is_empty() {
                if s.subs[i].skip > 0 {
                    let n = s.subs[i].skip.min(rest.len());
                    s.skipped(i, n, now, true);
                    rest = &rest[n..];
                } else {
                    s.consume(i, rest, now, true).unwrap();
                    rest = &[];
                }
            }
        }
        // Subscriber 4 (port 1) is cut off after it had everything.
        let ep = Epoll::new().unwrap();
        s.close(&ep, 4, "closed by the server".into());
        s.set_expected(&[N]);
        let r = s.port_reports();
        assert_eq!(r.len(), 3);
        let counts: Vec<(u64, u64, u64, u64)> = r
            .iter()
            .map(|(d, _)| (d.expected, d.received, d.disconnects, d.gap_notices))
            .collect();
        assert_eq!(
            counts,
            [(2 * N, 2 * N, 0, 0), (2 * N, 2 * N, 1, 0), (N, N - 1, 0, 1)]
        );
        for (j, (_, h)) in r.iter().enumerate() {
            assert_eq!(h.min(), (j as u64 + 1) * 1_000_000, "port {j}");
            assert_eq!(h.max(), h.min());
        }
        let all = s.deliveries();
        assert_eq!((all.expected, all.received), (5 * N, 5 * N - 1));
        assert_eq!((all.disconnects, all.gap_notices), (1, 1));
        let h = s.histogram();
        assert_eq!(
            (h.count(), h.min(), h.max()),
            (5 * N - 1, 1_000_000, 3_000_000)
        );
        assert!(
            s.first_error().unwrap().contains("GAP"),
            "{:?}",
            s.first_error()
        );
    }

    #[test]
    fn a_refused_upgrade_is_an_error() {
        let mut s = set(Proto::RingcastWs);
        let e = s
            .consume(
                0,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                1,
                true,
            )
            .unwrap_err();
        assert!(e.contains("400"), "{e}");
        // A 101 for another key is refused too.
        let mut s = set(Proto::RingcastWs);
        let resp = handshake::accept_response(&handshake::Upgrade {
            accept: handshake::accept_key(ws::key_for(FIRST as u64 + 1).as_bytes()),
            subprotocol: true,
        });
        assert!(s.consume(0, &resp, 1, true).is_err());
    }
}

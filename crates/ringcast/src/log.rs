#![forbid(unsafe_code)]
//! The engine's operator logs: the events a person running ringcast should
//! see, each logged once with its context, through `tracing` (the binary
//! installs the subscriber: human-readable or JSON lines on stderr).
//!
//! Nothing is logged per message. Events caused by clients (cut-offs,
//! refusals, limits, protocol errors) go through a per-reactor [`Limiter`]:
//! per kind, the first [`Event::burst`] in a window of [`WINDOW_NS`] are
//! logged in full, the rest only counted, and one summary line per kind
//! says how many were suppressed once the window is over (or at shutdown).
//! A flood of garbage costs a counter increment per connection, not a line.
//!
//! Cost when a level is off: `tracing`'s macros test the level (a static
//! maximum, then the callsite's cached interest) before they evaluate or
//! format any field, and the peer address ([`Peer`]) is looked up
//! (getpeername) only while a line is being written.

use std::fmt;
use std::os::fd::RawFd;

/// The target of every engine log line (`RUST_LOG=ringcast=debug`).
pub const TARGET: &str = "ringcast";

/// Length of a rate-limiting window: 10 s.
pub const WINDOW_NS: u64 = 10_000_000_000;

/// A kind of connection event, rate-limited separately per reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Event {
    /// A subscriber cut off for passing --max-backlog.
    SlowConsumer = 0,
    /// AUTH refused, or a PUBLISH/SUBSCRIBE without the token it needs.
    AuthRefused = 1,
    /// A connection refused at --max-connections.
    ConnectionLimit = 2,
    /// Accepted and closed at once: out of file descriptors.
    FdShed = 3,
    /// A topic refused: --max-topics reached, or an invalid name.
    TopicRefused = 4,
    /// A SUBSCRIBE past --max-subscriptions.
    SubscriptionLimit = 5,
    /// A native or WebSocket frame that breaks the protocol (ERROR 1-3).
    ProtocolError = 6,
    /// A RESP request the parser refused.
    RespProtocolError = 7,
    /// A frame not completed in --frame-timeout, or over --max-incomplete (ERROR 9).
    IncompleteFrame = 8,
    /// An HTTP request or WebSocket handshake not received in --http-timeout.
    HttpTimeout = 9,
    /// A WebSocket peer silent past --ws-idle-timeout.
    WsIdle = 10,
    /// Subscriptions to a topic new on the node confirmed without NATS
    /// confirming the node's subscription in time (GAP sent).
    RelayWait = 11,
}

impl Event {
    const COUNT: usize = 12;
    const ALL: [Event; Event::COUNT] = [
        Event::SlowConsumer,
        Event::AuthRefused,
        Event::ConnectionLimit,
        Event::FdShed,
        Event::TopicRefused,
        Event::SubscriptionLimit,
        Event::ProtocolError,
        Event::RespProtocolError,
        Event::IncompleteFrame,
        Event::HttpTimeout,
        Event::WsIdle,
        Event::RelayWait,
    ];

    /// The `event` field of its log lines (stable: log queries use it).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Event::SlowConsumer => "slow_consumer",
            Event::AuthRefused => "auth_refused",
            Event::ConnectionLimit => "connection_limit",
            Event::FdShed => "fd_shed",
            Event::TopicRefused => "topic_refused",
            Event::SubscriptionLimit => "subscription_limit",
            Event::ProtocolError => "protocol_error",
            Event::RespProtocolError => "resp_protocol_error",
            Event::IncompleteFrame => "incomplete_frame",
            Event::HttpTimeout => "http_timeout",
            Event::WsIdle => "ws_idle",
            Event::RelayWait => "relay_wait",
        }
    }

    /// Lines logged in full per window and reactor. Garbage from clients
    /// gets one (then a summary); events an operator acts on get a few.
    fn burst(self) -> u32 {
        match self {
            Event::ProtocolError
            | Event::RespProtocolError
            | Event::HttpTimeout
            | Event::WsIdle
            | Event::IncompleteFrame => 1,
            _ => 10,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Slot {
    window_end: u64,
    logged: u32,
    suppressed: u64,
}

/// One reactor's rate limits, one slot per [`Event`]. No allocation, no
/// clock read: the caller passes the loop's `now`.
pub(crate) struct Limiter {
    core: usize,
    slots: [Slot; Event::COUNT],
}

impl Limiter {
    pub(crate) fn new(core: usize) -> Limiter {
        Limiter {
            core,
            slots: [Slot::default(); Event::COUNT],
        }
    }

    /// Whether to log this occurrence of `ev` in full; counts it otherwise.
    #[inline]
    pub(crate) fn allow(&mut self, ev: Event, now: u64) -> bool {
        let core = self.core;
        let s = &mut self.slots[ev as usize];
        if now >= s.window_end {
            summarize(core, ev, s);
            s.window_end = now + WINDOW_NS;
        }
        if s.logged < ev.burst() {
            s.logged += 1;
            true
        } else {
            s.suppressed += 1;
            false
        }
    }

    /// Writes the summary of every window that is over (called on the tick).
    pub(crate) fn tick(&mut self, now: u64) {
        for ev in Event::ALL {
            let s = &mut self.slots[ev as usize];
            if now >= s.window_end && s.logged > 0 {
                summarize(self.core, ev, s);
            }
        }
    }

    /// Writes every pending summary (the reactor is stopping).
    pub(crate) fn flush(&mut self) {
        for ev in Event::ALL {
            summarize(self.core, ev, &mut self.slots[ev as usize]);
        }
    }

    /// Occurrences of `ev` counted and not logged in the current window.
    #[cfg(test)]
    fn suppressed(&self, ev: Event) -> u64 {
        self.slots[ev as usize].suppressed
    }
}

/// Ends a slot's window: one line if anything was suppressed in it.
fn summarize(core: usize, ev: Event, s: &mut Slot) {
    if s.suppressed > 0 {
        tracing::warn!(
            target: TARGET,
            event = ev.name(),
            core,
            suppressed = s.suppressed,
            "{} more {} events on this reactor were not logged (at most {} logged per {} s)",
            s.suppressed,
            ev.name(),
            ev.burst(),
            WINDOW_NS / 1_000_000_000
        );
    }
    s.suppressed = 0;
    s.logged = 0;
}

/// A connection's peer address, looked up only when displayed (a log line
/// being written): `?` once the socket is gone.
pub(crate) struct Peer(pub RawFd);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::sys::peer_addr(self.0) {
            Ok(a) => write!(f, "{a}"),
            Err(_) => f.write_str("?"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrences_pass_then_the_rest_are_counted_until_the_window_ends() {
        let mut l = Limiter::new(0);
        let t0 = 1_000;
        assert!(l.allow(Event::ProtocolError, t0));
        for i in 0..100 {
            assert!(!l.allow(Event::ProtocolError, t0 + i));
        }
        assert_eq!(l.suppressed(Event::ProtocolError), 100);
        // Other kinds have their own budget.
        for _ in 0..Event::SlowConsumer.burst() {
            assert!(l.allow(Event::SlowConsumer, t0));
        }
        assert!(!l.allow(Event::SlowConsumer, t0));
        // The window ends: the summary resets the count, logging resumes.
        l.tick(t0 + WINDOW_NS);
        assert_eq!(l.suppressed(Event::ProtocolError), 0);
        assert!(l.allow(Event::ProtocolError, t0 + WINDOW_NS + 1));
        l.flush();
        assert_eq!(l.suppressed(Event::SlowConsumer), 0);
    }

    #[test]
    fn every_event_has_a_distinct_name() {
        for (i, a) in Event::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
            assert!(!Event::ALL[..i].iter().any(|b| b.name() == a.name()));
        }
    }
}

//! Engine counters: one block per reactor, written only by its reactor with
//! relaxed atomics (no shared cache line on the hot path), summed on read.

use crate::proto::ErrorCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// One reactor's counters.
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
    pub errors: [AtomicU64; 9],
}

impl CoreStats {
    pub fn count_error(&self, code: ErrorCode) {
        self.errors[code as usize].fetch_add(1, Ordering::Relaxed);
    }
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
    pub errors: [u64; 9],
    /// Frames that did not fit the registered pool and went to the heap.
    pub heap_frames: u64,
}

impl Stats {
    pub(crate) fn sum(cores: &[CoreStats], heap_frames: u64) -> Stats {
        let mut s = Stats {
            heap_frames,
            ..Stats::default()
        };
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
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
            s.slow_consumers += r(&c.slow_consumers);
            for (i, e) in c.errors.iter().enumerate() {
                s.errors[i] += r(e);
            }
        }
        s
    }
}

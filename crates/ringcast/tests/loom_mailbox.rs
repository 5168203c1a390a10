//! A loom model of the mailbox's wake-up protocol: a producer's push is
//! never lost while the consumer parks.
//!
//! Run with `RUSTFLAGS="--cfg ringcast_loom" cargo test --release -p ringcast --test
//! loom_mailbox` (scripts/miri.sh does). Without `--cfg ringcast_loom` this file is
//! empty.
//!
//! The engine's code is not generic over loom's atomics, so the model
//! mirrors it step for step, with the same orderings:
//!
//! - the queue: `Producer::push` and `Consumer::pop`/`is_empty` of
//!   `src/mailbox.rs` (slots are loom cells, so a slot read before its write
//!   is published is reported as a data race);
//! - the consumer parking: `Reactor::park` in `src/reactor/mod.rs` announces
//!   with `Parked::announce` (parked = true, then a SeqCst fence), re-checks
//!   every inbox, clears the flag itself if one is not empty, and otherwise
//!   sleeps in `io_uring_enter` until a completion arrives; after waking it
//!   clears the flag (Relaxed) and drains;
//! - the producer waking: `Reactor::send_msg` (and the relay's `push`)
//!   pushes, then `Parked::take` (a SeqCst fence, then swap(false)) says
//!   whether the consumer was parked, and if so a MSG_RING is posted.
//!
//! The sleep is `thread::park` and the MSG_RING `Thread::unpark`: like a
//! completion, an unpark posted before the sleep is not lost. A model in
//! which the consumer sleeps with an item in its queue and no wake-up
//! coming deadlocks, and loom reports it. The reactor's 50 ms tick would end
//! such a sleep in the engine; the model has no tick, so a lost wake-up is a
//! failure here, as it is a latency spike there.
// Not `cfg(loom)`: tokio, a dependency, has code of its own under that name.
#![cfg(ringcast_loom)]

use loom::cell::Cell;
use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// `mailbox::Ring` with `mailbox::Parked`, capacity 2.
struct Mailbox {
    slots: [Cell<u32>; 2],
    head: AtomicUsize,
    tail: AtomicUsize,
    parked: AtomicBool,
}

const MASK: usize = 1;

/// Whether the model uses the fences of `Parked::announce` and
/// `Parked::take` (the fix) or the plain SeqCst store and swap the reactor
/// used before them.
#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Fenced,
    Unfenced,
}

impl Mailbox {
    fn new() -> Mailbox {
        Mailbox {
            slots: [Cell::new(0), Cell::new(0)],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
        }
    }

    /// `Producer::push`.
    fn push(&self, value: u32) -> Result<(), u32> {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > MASK {
            return Err(value);
        }
        self.slots[tail & MASK].set(value);
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// `Consumer::pop`.
    fn pop(&self) -> Option<u32> {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let value = self.slots[head & MASK].get();
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(value)
    }

    /// `Consumer::is_empty`.
    fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed) == self.tail.load(Ordering::Acquire)
    }

    /// `Parked::announce`.
    fn announce(&self, p: Protocol) {
        self.parked.store(true, Ordering::SeqCst);
        if p == Protocol::Fenced {
            fence(Ordering::SeqCst);
        }
    }

    /// `Parked::take`.
    fn take(&self, p: Protocol) -> bool {
        if p == Protocol::Fenced {
            fence(Ordering::SeqCst);
        }
        self.parked.swap(false, Ordering::SeqCst)
    }
}

/// The producer sends `n` messages (each one after the other, as the owner
/// core sends a topic's frames); the consumer must receive them all, in
/// order, and never sleep while one waits.
fn model(p: Protocol, n: u32) {
    let mb = Arc::new(Mailbox::new());
    let consumer = {
        let mb = mb.clone();
        thread::spawn(move || {
            let mut next = 0;
            loop {
                // drain_inboxes
                while let Some(v) = mb.pop() {
                    assert_eq!(v, next, "out of order");
                    next += 1;
                }
                if next == n {
                    return;
                }
                // Reactor::park
                mb.announce(p);
                let idle = mb.is_empty();
                if !idle {
                    mb.parked.store(false, Ordering::Relaxed);
                }
                // Reactor::enter(wait): sleeps until a completion (MSG_RING).
                if idle {
                    thread::park();
                }
                mb.parked.store(false, Ordering::Relaxed);
            }
        })
    };
    let wake = consumer.thread().clone();
    for i in 0..n {
        // Reactor::send_msg (the queue has room for n <= 2; a full queue
        // goes to the overflow list, whose retry always wakes).
        mb.push(i).expect("room for every message");
        if mb.take(p) {
            // post_wakes: MSG_RING
            wake.unpark();
        }
    }
    consumer.join().unwrap();
}

#[test]
fn a_push_is_never_lost_while_the_consumer_parks() {
    loom::model(|| model(Protocol::Fenced, 1));
}

#[test]
fn two_pushes_are_never_lost_while_the_consumer_parks() {
    loom::model(|| model(Protocol::Fenced, 2));
}

/// The protocol before the fences: the consumer's SeqCst store of `parked`
/// and its Acquire load of `tail`, against the producer's Release store of
/// `tail` and SeqCst swap of `parked`, is the store-buffering pattern. The
/// memory model lets the consumer read the old `tail` while the producer's
/// swap reads the old `parked` (nothing orders a non-SeqCst access to `tail`
/// against the SeqCst order of the accesses to `parked`): both miss the
/// other, and the consumer sleeps with a message waiting. x86 cannot show
/// it (a SeqCst store is an `xchg`, a full barrier); weaker hardware may.
#[test]
#[should_panic]
fn without_the_fences_a_push_can_be_lost() {
    loom::model(|| model(Protocol::Unfenced, 1));
}

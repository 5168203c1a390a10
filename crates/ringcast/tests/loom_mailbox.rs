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
//! - the consumer parking: `Reactor::park` in `src/reactor/mod.rs`
//!   announces with `Parked::announce` (swap(true, SeqCst)), re-checks every
//!   inbox, clears the flag (`Parked::clear`, swap(false, AcqRel)) if one is
//!   not empty, and otherwise sleeps in `io_uring_enter` until a completion
//!   arrives; after waking it clears the flag and drains;
//! - the producer waking: `Reactor::send_msg` (and the relay's `push`)
//!   pushes, then `parked.swap(false, SeqCst)` says whether the consumer was
//!   parked, and if so a MSG_RING is posted.
//!
//! The sleep is a wait on a model of the completion queue (a mutex and a
//! condition variable): a MSG_RING adds a completion, and one posted before
//! the sleep is not lost; waking takes every completion there is. After its
//! last push the producer fires the reactor's 50 ms tick (a wake-up that is
//! not a MSG_RING), so no execution hangs. A push is *lost* when the
//! consumer slept, was woken by the tick with no MSG_RING, and then found a
//! message: in the engine that message waited for the tick (up to 50 ms);
//! in the model it is recorded, and each test asserts whether any execution
//! lost one. To see the interleaving of a loss, run a test with
//! `LOOM_LOST_PANIC=1 LOOM_LOG=trace LOOM_LOCATION=1`: the model then
//! panics at the loss, and loom prints the execution's trace.
// Not `cfg(loom)`: tokio, a dependency, has code of its own under that name.
#![cfg(ringcast_loom)]

use loom::cell::Cell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::sync::atomic::AtomicBool as StdAtomicBool;

/// `mailbox::Ring` with `mailbox::Parked`, capacity 2.
struct Mailbox {
    slots: [Cell<u32>; 2],
    head: AtomicUsize,
    tail: AtomicUsize,
    parked: AtomicBool,
    /// The consumer's completion queue: MSG_RINGs not yet reaped, and
    /// whether the tick fired.
    cq: Mutex<(usize, bool)>,
    cq_ready: Condvar,
}

const MASK: usize = 1;

/// Which version of the consumer's side the model runs.
#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    /// `Parked::announce` and `Parked::clear`: every write of the flag is a
    /// read-modify-write.
    Swaps,
    /// Before: `store(true, SeqCst)` to announce, `store(false, Relaxed)`
    /// to clear.
    Stores,
}

impl Mailbox {
    fn new() -> Mailbox {
        Mailbox {
            slots: [Cell::new(0), Cell::new(0)],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            cq: Mutex::new((0, false)),
            cq_ready: Condvar::new(),
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
        match p {
            Protocol::Swaps => {
                self.parked.swap(true, Ordering::SeqCst);
            }
            Protocol::Stores => self.parked.store(true, Ordering::SeqCst),
        }
    }

    /// `Parked::clear`.
    fn clear(&self, p: Protocol) {
        match p {
            Protocol::Swaps => {
                self.parked.swap(false, Ordering::AcqRel);
            }
            Protocol::Stores => self.parked.store(false, Ordering::Relaxed),
        }
    }

    /// The producer's side, unchanged: whether the consumer had announced.
    fn take(&self) -> bool {
        self.parked.swap(false, Ordering::SeqCst)
    }
}

/// The producer sends `n` messages (each one after the other, as the owner
/// core sends a topic's frames); the consumer must receive them all, in
/// order. Sets `lost` when a push was lost (see the module documentation).
fn model(p: Protocol, n: u32, lost: &'static StdAtomicBool) {
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
                    mb.clear(p);
                    continue;
                }
                // Reactor::enter(wait): sleeps until a completion, then reaps them all.
                let rings = {
                    let mut cq = mb.cq.lock().unwrap();
                    while cq.0 == 0 && !cq.1 {
                        cq = mb.cq_ready.wait(cq).unwrap();
                    }
                    std::mem::take(&mut cq.0)
                };
                mb.clear(p);
                if rings == 0 && !mb.is_empty() {
                    // Woken by the tick alone, with a message waiting.
                    lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    if std::env::var_os("LOOM_LOST_PANIC").is_some() {
                        panic!("lost");
                    }
                }
            }
        })
    };
    for i in 0..n {
        // Reactor::send_msg (the queue has room for n <= 2; a full queue
        // goes to the overflow list, whose retry always wakes).
        mb.push(i).expect("room for every message");
        if mb.take() {
            // post_wakes: MSG_RING
            mb.cq.lock().unwrap().0 += 1;
            mb.cq_ready.notify_one();
        }
    }
    // The tick.
    mb.cq.lock().unwrap().1 = true;
    mb.cq_ready.notify_one();
    consumer.join().unwrap();
}

#[test]
fn a_push_is_never_lost_while_the_consumer_parks() {
    static LOST: StdAtomicBool = StdAtomicBool::new(false);
    loom::model(|| model(Protocol::Swaps, 1, &LOST));
    assert!(
        !LOST.load(std::sync::atomic::Ordering::SeqCst),
        "a push was lost"
    );
}

#[test]
fn two_pushes_are_never_lost_while_the_consumer_parks() {
    static LOST: StdAtomicBool = StdAtomicBool::new(false);
    loom::model(|| model(Protocol::Swaps, 2, &LOST));
    assert!(
        !LOST.load(std::sync::atomic::Ordering::SeqCst),
        "a push was lost"
    );
}

/// The protocol before: the consumer's plain stores of `parked`. Two ways
/// to lose a push, both allowed by the memory model:
/// - store buffering: the consumer's SeqCst store of `parked` and Acquire
///   load of `tail` against the producer's Release store of `tail` and
///   SeqCst swap of `parked`; nothing orders the non-SeqCst `tail` accesses
///   against the SeqCst order, so each side may miss the other's write;
/// - a broken release sequence: the producer's swap reads `false` and
///   the consumer's Relaxed store of `false` (after an earlier wake-up)
///   comes after it; the consumer's next announce then reads its own
///   store, does not synchronise with the producer, and may miss `tail`.
/// x86 shows neither (a SeqCst store is an `xchg`, a full barrier); weaker
/// hardware (AArch64 with RCpc loads) may. With every write of the flag a
/// read-modify-write, the consumer's announce always reads from the
/// release sequence of the last producer's swap before it, so it sees
/// that producer's push, or the producer saw the flag and woke it.
#[test]
fn with_plain_stores_a_push_can_be_lost() {
    static LOST: StdAtomicBool = StdAtomicBool::new(false);
    loom::model(|| model(Protocol::Stores, 2, &LOST));
    assert!(
        LOST.load(std::sync::atomic::Ordering::SeqCst),
        "loom found no lost push with the old protocol"
    );
}

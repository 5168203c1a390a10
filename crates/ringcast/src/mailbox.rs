//! Cross-core queues: one bounded single-producer single-consumer ring per
//! ordered pair of reactors. FIFO per pair is what keeps a topic's frames in
//! sequence order on every core: the owner core pushes them in seq order and
//! each receiving core drains them in the same order.
//!
//! Invariant: `0 <= tail - head <= capacity`; the producer alone advances
//! `tail`, the consumer alone advances `head`. The split into [`Producer`] and
//! [`Consumer`] (neither `Clone`) makes "single" a type-level fact.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A reactor's "about to sleep in the kernel" flag, on its own cache line.
/// A producer that pushes and finds the consumer's flag set clears it and
/// wakes that reactor (MSG_RING); a busy reactor is never interrupted.
///
/// The protocol: the consumer [`announce`](Parked::announce)s, re-checks its
/// queues, and sleeps only if they are empty; after waking (or when a queue
/// was not empty) it [`clear`](Parked::clear)s. A producer pushes, then
/// `swap(false, SeqCst)`: `true` means it must wake the consumer. Every write
/// of the flag is a read-modify-write, so the flag's writes form one release
/// sequence: if a producer's swap read `false`, the consumer's next announce
/// reads from that swap or a later read-modify-write and so synchronises
/// with it, and the re-check sees the push. With plain stores (as before) a
/// push could be missed by both sides (tests/loom_mailbox.rs shows it).
#[repr(align(64))]
pub(crate) struct Parked(pub AtomicBool);

impl Parked {
    /// The consumer is about to sleep: re-check the queues after this.
    pub(crate) fn announce(&self) {
        self.0.swap(true, Ordering::SeqCst);
    }

    /// The consumer is awake (or will not sleep): producers need not wake it.
    pub(crate) fn clear(&self) {
        self.0.swap(false, Ordering::AcqRel);
    }
}

#[repr(align(64))]
struct Padded(AtomicUsize);

struct Ring<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    head: Padded,
    tail: Padded,
}

// SAFETY: slots are handed from exactly one producer to exactly one consumer;
// the Release store of `tail` (or `head`) publishes each slot's contents before
// the other side reads (or reuses) it.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Ring<T> {}

/// The sending half: owned by one thread.
pub struct Producer<T> {
    ring: Arc<Ring<T>>,
}

/// The receiving half: owned by one thread.
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
}

/// A bounded SPSC queue holding at least `capacity` items (rounded to a power of two).
pub fn channel<T: Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let cap = capacity.max(2).next_power_of_two();
    let slots = (0..cap)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let ring = Arc::new(Ring {
        slots,
        mask: cap - 1,
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
    });
    (Producer { ring: ring.clone() }, Consumer { ring })
}

impl<T: Send> Producer<T> {
    /// Appends `value`, or gives it back when the queue is full.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        let r = &*self.ring;
        let tail = r.tail.0.load(Ordering::Relaxed);
        let head = r.head.0.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > r.mask {
            return Err(value);
        }
        // SAFETY: slot `tail` is outside head..tail, so the consumer does not
        // read it until the Release store below; only this producer writes.
        unsafe { (*r.slots[tail & r.mask].get()).write(value) };
        r.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }
}

impl<T: Send> Consumer<T> {
    /// Takes the oldest item, if any.
    pub fn pop(&mut self) -> Option<T> {
        let r = &*self.ring;
        let head = r.head.0.load(Ordering::Relaxed);
        let tail = r.tail.0.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        // SAFETY: slot `head` lies in head..tail, written by the producer
        // before its Release store of tail, which the Acquire load saw.
        let value = unsafe { (*r.slots[head & r.mask].get()).assume_init_read() };
        r.head.0.store(head.wrapping_add(1), Ordering::Release);
        Some(value)
    }

    /// Whether an item is waiting.
    pub fn is_empty(&self) -> bool {
        let r = &*self.ring;
        r.head.0.load(Ordering::Relaxed) == r.tail.0.load(Ordering::Acquire)
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        let head = *self.head.0.get_mut();
        let tail = *self.tail.0.get_mut();
        let mut i = head;
        while i != tail {
            // SAFETY: slots in head..tail hold initialised values, dropped once.
            unsafe { (*self.slots[i & self.mask].get()).assume_init_drop() };
            i = i.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_across_threads_without_loss() {
        let (mut tx, mut rx) = channel::<u64>(64);
        // Miri interprets every step: a shorter run there.
        let n = if cfg!(miri) { 2_000 } else { 200_000u64 };
        let t = std::thread::spawn(move || {
            for i in 0..n {
                let mut v = i;
                while let Err(back) = tx.push(v) {
                    v = back;
                    std::hint::spin_loop();
                }
            }
        });
        let mut expect = 0;
        while expect < n {
            if let Some(v) = rx.pop() {
                assert_eq!(v, expect);
                expect += 1;
            }
        }
        t.join().unwrap();
        assert!(rx.pop().is_none());
    }

    #[test]
    fn full_queue_gives_the_value_back_and_drop_frees_items() {
        let (mut tx, rx) = channel::<Arc<()>>(2);
        let probe = Arc::new(());
        tx.push(probe.clone()).unwrap();
        tx.push(probe.clone()).unwrap();
        assert!(tx.push(probe.clone()).is_err());
        drop(tx);
        drop(rx);
        assert_eq!(Arc::strong_count(&probe), 1);
    }
}

//! Registered frame memory shared by every reactor, and its reference counts.
//!
//! One anonymous mapping holds every encoded frame. It is registered as fixed
//! buffer 0 in every ring, so any reactor can point a `WriteFixed` /
//! `WritevFixed` at any frame. The mapping is cut into one arena per reactor;
//! each arena into size classes (256 B, 1 KiB, 4 KiB, ... up to the largest
//! frame), each class into slots.
//!
//! Ownership rules:
//! - Only reactor `i` allocates from arena `i` (its [`Arena`] handle holds the
//!   free-slot cache), so allocation needs no atomics beyond taking freed bits.
//! - A slot's reference count is atomic: any reactor may hold references and
//!   drop them. The last drop sets the slot's bit in the free bitmap
//!   (`fetch_or`, Release); the owning arena takes whole words of freed bits
//!   with `swap(0)` (Acquire) when its cache runs dry.
//! - `0 <= refs`; a slot is in exactly one of: owner's cache, the free bitmap,
//!   or referenced (`refs > 0`).
//! - When a class and every larger class are exhausted, the frame is put on
//!   the heap with the same reference-counted header layout (counted in
//!   `heap_frames`), so a publish never fails for lack of pool memory; the
//!   per-connection backlog limit bounds how much memory all queued frames
//!   can hold.

use crate::sys::Mmap;
use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Smallest slot size.
const MIN_CLASS: usize = 256;
/// Heap frames carry their reference count in a header this big before the bytes.
const HEAP_HEADER: usize = 8;
/// Marks a [`FrameRef`] whose bytes live on the heap.
const HEAP_SLOT: u32 = u32::MAX;

struct Class {
    size: usize,
    /// First slot id; a multiple of 64 so each class owns whole bitmap words.
    first_id: u32,
    count: u32,
    /// Offset of slot 0 from the region base.
    base: usize,
}

/// The shared region and the state every reactor may touch.
pub struct Pool {
    region: Mmap,
    /// classes[arena][class]
    classes: Vec<Vec<Class>>,
    refs: Box<[AtomicU32]>,
    free_bits: Box<[AtomicU64]>,
    heap_frames: AtomicU64,
}

/// One reference to an encoded frame. Not `Clone`: references are taken with
/// [`Pool::retain`] and must be given back with [`Pool::release`].
#[derive(Debug)]
pub struct FrameRef {
    ptr: NonNull<u8>,
    len: u32,
    slot: u32,
}

// SAFETY: a FrameRef is a counted reference to memory that stays valid until
// the count reaches zero, whichever thread holds it.
unsafe impl Send for FrameRef {}

impl FrameRef {
    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr/len describe a live frame while this reference exists.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize) }
    }

    /// Mutable access to the frame's bytes. Only sound while no send points
    /// at the frame and no other thread reads it: before it is first fanned
    /// out (encoding, and the owner core stamping the sequence number).
    ///
    /// # Safety
    /// The caller holds the only reference that any reader can reach.
    pub unsafe fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the caller guarantees exclusive use; ptr/len are valid.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize) }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the frame has no bytes (never true for an encoded frame).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Whether the bytes lie in the registered region (fixed buffer 0).
    pub fn is_registered(&self) -> bool {
        self.slot != HEAP_SLOT
    }
}

impl Pool {
    /// Maps `total_bytes` of frame memory split into `arenas` arenas whose
    /// largest class holds a frame of `max_frame_bytes`.
    pub fn new(total_bytes: usize, arenas: usize, max_frame_bytes: usize) -> io::Result<Pool> {
        let arenas = arenas.max(1);
        let mut sizes = Vec::new();
        let mut s = MIN_CLASS;
        while s < max_frame_bytes {
            sizes.push(s);
            s *= 4;
        }
        sizes.push(max_frame_bytes.next_multiple_of(MIN_CLASS));
        let per_arena = total_bytes / arenas;
        let per_class = per_arena / sizes.len();
        let mut classes = Vec::with_capacity(arenas);
        let mut next_id: u32 = 0;
        let mut offset = 0usize;
        for _ in 0..arenas {
            let mut cs = Vec::with_capacity(sizes.len());
            for &size in &sizes {
                let count = (per_class / size) as u32;
                cs.push(Class {
                    size,
                    first_id: next_id,
                    count,
                    base: offset,
                });
                offset += count as usize * size;
                next_id += count.next_multiple_of(64);
            }
            classes.push(cs);
        }
        let region = Mmap::anonymous(offset.max(4096))?;
        let refs: Box<[AtomicU32]> = (0..next_id).map(|_| AtomicU32::new(0)).collect();
        let free_bits: Box<[AtomicU64]> = (0..next_id / 64).map(|_| AtomicU64::new(0)).collect();
        for arena in &classes {
            for c in arena {
                for i in 0..c.count {
                    let id = c.first_id + i;
                    free_bits[(id / 64) as usize].fetch_or(1 << (id % 64), Ordering::Relaxed);
                }
            }
        }
        Ok(Pool {
            region,
            classes,
            refs,
            free_bits,
            heap_frames: AtomicU64::new(0),
        })
    }

    /// The registered region: (address, length) for `register_buffers`.
    pub fn region(&self) -> (*mut u8, usize) {
        (self.region.as_ptr(), self.region.len())
    }

    /// Frames that did not fit the pool and went to the heap, since start.
    pub fn heap_frames(&self) -> u64 {
        self.heap_frames.load(Ordering::Relaxed)
    }

    /// Takes `n` more references to `frame`, to hand out as copies.
    pub fn retain(&self, frame: &FrameRef, n: u32) {
        if n == 0 {
            return;
        }
        self.counter(frame).fetch_add(n, Ordering::Relaxed);
    }

    /// A second reference to the same frame.
    pub fn share(&self, frame: &FrameRef) -> FrameRef {
        self.retain(frame, 1);
        FrameRef {
            ptr: frame.ptr,
            len: frame.len,
            slot: frame.slot,
        }
    }

    /// Gives one reference back; the last one frees the memory.
    pub fn release(&self, frame: FrameRef) {
        let prev = self.counter(&frame).fetch_sub(1, Ordering::AcqRel);
        debug_assert!(prev > 0, "frame released more often than retained");
        if prev != 1 {
            return;
        }
        if frame.slot == HEAP_SLOT {
            let layout = Self::heap_layout(frame.len as usize);
            // SAFETY: the header sits HEAP_HEADER bytes before the data and the
            // block was allocated with exactly this layout in `alloc_heap`; the
            // count just reached zero, so nobody else refers to it.
            unsafe { alloc::dealloc(frame.ptr.as_ptr().sub(HEAP_HEADER), layout) };
        } else {
            let id = frame.slot;
            self.free_bits[(id / 64) as usize].fetch_or(1 << (id % 64), Ordering::Release);
        }
    }

    fn counter(&self, frame: &FrameRef) -> &AtomicU32 {
        if frame.slot == HEAP_SLOT {
            // SAFETY: heap frames keep their AtomicU32 count in the 8-byte
            // aligned header right before the data, alive while refs > 0.
            unsafe { &*(frame.ptr.as_ptr().sub(HEAP_HEADER) as *const AtomicU32) }
        } else {
            &self.refs[frame.slot as usize]
        }
    }

    fn heap_layout(len: usize) -> Layout {
        Layout::from_size_align(len + HEAP_HEADER, 8).expect("frame layout")
    }

    fn alloc_heap(&self, len: usize) -> FrameRef {
        let layout = Self::heap_layout(len);
        // SAFETY: the layout has non-zero size.
        let base = unsafe { alloc::alloc(layout) };
        if base.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: base is 8-aligned and at least HEAP_HEADER bytes long.
        unsafe { std::ptr::write(base as *mut AtomicU32, AtomicU32::new(1)) };
        self.heap_frames.fetch_add(1, Ordering::Relaxed);
        // SAFETY: base + HEAP_HEADER is within the allocation and not null.
        let ptr = unsafe { NonNull::new_unchecked(base.add(HEAP_HEADER)) };
        FrameRef {
            ptr,
            len: len as u32,
            slot: HEAP_SLOT,
        }
    }
}

/// Reactor-local allocation handle for one arena.
pub struct Arena {
    index: usize,
    /// Free slot ids per class, taken from the bitmap; capacity reserved up
    /// front so refilling never allocates.
    cache: Vec<Vec<u32>>,
    /// Next bitmap word to scan per class.
    cursor: Vec<usize>,
}

impl Arena {
    pub fn new(pool: &Pool, index: usize) -> Arena {
        let classes = &pool.classes[index];
        Arena {
            index,
            cache: classes
                .iter()
                .map(|c| Vec::with_capacity(c.count as usize))
                .collect(),
            cursor: vec![0; classes.len()],
        }
    }

    /// A frame of exactly `len` bytes with one reference, contents unspecified.
    pub fn alloc(&mut self, pool: &Pool, len: usize) -> FrameRef {
        let classes = &pool.classes[self.index];
        let first = classes.iter().position(|c| c.size >= len);
        if let Some(first) = first {
            for (ci, c) in classes.iter().enumerate().skip(first) {
                if let Some(id) = self.take(pool, ci) {
                    let off = c.base + (id - c.first_id) as usize * c.size;
                    let prev = pool.refs[id as usize].swap(1, Ordering::Relaxed);
                    debug_assert_eq!(prev, 0, "allocated a slot still referenced");
                    // SAFETY: off + size lies inside the region by construction.
                    let ptr = unsafe { NonNull::new_unchecked(pool.region.as_ptr().add(off)) };
                    return FrameRef {
                        ptr,
                        len: len as u32,
                        slot: id,
                    };
                }
            }
        }
        pool.alloc_heap(len)
    }

    fn take(&mut self, pool: &Pool, ci: usize) -> Option<u32> {
        if let Some(id) = self.cache[ci].pop() {
            return Some(id);
        }
        let c = &pool.classes[self.index][ci];
        let words = c.count.div_ceil(64) as usize;
        let first_word = (c.first_id / 64) as usize;
        for step in 0..words {
            let w = (self.cursor[ci] + step) % words;
            let bits = pool.free_bits[first_word + w].swap(0, Ordering::Acquire);
            if bits != 0 {
                let mut b = bits;
                while b != 0 {
                    let bit = b.trailing_zeros();
                    b &= b - 1;
                    self.cache[ci].push(((first_word + w) * 64) as u32 + bit);
                }
                self.cursor[ci] = (w + 1) % words;
                return self.cache[ci].pop();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_reused_after_the_last_release() {
        let pool = Pool::new(1 << 20, 1, 4096).unwrap();
        let mut arena = Arena::new(&pool, 0);
        let a = arena.alloc(&pool, 100);
        assert!(a.is_registered());
        let b = pool.share(&a);
        let slot = a.slot;
        pool.release(a);
        pool.release(b);
        // Drain the cache: the freed slot must come back eventually.
        let mut seen = false;
        let mut held = Vec::new();
        for _ in 0..10_000 {
            let f = arena.alloc(&pool, 100);
            if !f.is_registered() {
                pool.release(f);
                break;
            }
            seen |= f.slot == slot;
            held.push(f);
        }
        assert!(seen, "released slot was never handed out again");
        for f in held {
            pool.release(f);
        }
    }

    #[test]
    fn exhaustion_falls_back_to_larger_classes_then_heap() {
        let pool = Pool::new(64 << 10, 1, 4096).unwrap();
        let mut arena = Arena::new(&pool, 0);
        let mut held = Vec::new();
        loop {
            let f = arena.alloc(&pool, 200);
            let heap = !f.is_registered();
            held.push(f);
            if heap {
                break;
            }
        }
        assert_eq!(pool.heap_frames(), 1);
        // Every registered frame is distinct memory.
        let mut ptrs: Vec<_> = held.iter().map(|f| f.as_ptr() as usize).collect();
        ptrs.sort();
        ptrs.dedup();
        assert_eq!(ptrs.len(), held.len());
        for f in held {
            pool.release(f);
        }
    }

    #[test]
    fn frames_freed_on_another_thread_return_to_the_owner() {
        let pool = std::sync::Arc::new(Pool::new(256 << 10, 2, 1024).unwrap());
        let mut arena = Arena::new(&pool, 1);
        let frames: Vec<_> = (0..50).map(|_| arena.alloc(&pool, 64)).collect();
        let p = pool.clone();
        std::thread::spawn(move || {
            for f in frames {
                p.release(f);
            }
        })
        .join()
        .unwrap();
        let all = pool
            .free_bits
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum::<u32>();
        let cached: usize = arena.cache.iter().map(|c| c.len()).sum();
        let total: u32 = pool.classes.iter().flatten().map(|c| c.count).sum();
        assert_eq!(all as usize + cached, total as usize);
    }
}

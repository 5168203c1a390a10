//! Registered frame memory shared by every reactor, and its reference counts.
//!
//! One anonymous mapping holds every encoded frame. It is registered as fixed
//! buffer 0 in every ring, so any reactor can point a send (`SEND` for one
//! frame, `WRITEV_FIXED` for coalesced ones) at any frame. The mapping is cut
//! into one arena per reactor; each arena into size classes (256 B, 1 KiB,
//! 4 KiB, ... up to the largest frame), each class into slots.
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
//! - A reference released by the owning reactor itself ([`Arena::release`])
//!   goes straight back to the top of that arena's cache (LIFO), so the next
//!   frame reuses memory and a reference count that are still in cache.
//!
//! # Headroom
//! Every frame has [`HEADROOM`] bytes in front of it that belong to the same
//! allocation. A transport that wraps the native frame in a header of its own
//! (WebSocket: 2 to 10 bytes) writes that header there once, before the frame
//! is shared, and queues a *view* that starts earlier
//! ([`FrameRef::extend_front`]). Views share the frame's one reference count,
//! so one encode serves both wire formats byte-identically.

use crate::sys::Mmap;
use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Smallest slot size.
const MIN_CLASS: usize = 256;
/// Bytes in front of every frame that a transport header may use.
pub const HEADROOM: usize = 16;
/// Heap frames start with this header: u32 reference count, u32 bytes
/// allocated.
const HEAP_HEADER: usize = 8;
/// Set in [`FrameRef::slot`] for heap frames; the other bits hold the
/// distance from the view's first byte back to the heap header.
const HEAP_FLAG: u32 = 1 << 31;

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
    /// Debug builds: references handed out minus references given back
    /// (the leak check: 0 once an engine has stopped).
    #[cfg(debug_assertions)]
    live: std::sync::atomic::AtomicI64,
}

/// One reference to an encoded frame (or to a view of it that starts in its
/// headroom). Not `Clone`: references are taken with [`Pool::retain`] and
/// must be given back with [`Pool::release`] or [`Arena::release`].
#[derive(Debug)]
#[must_use = "a FrameRef must be given back (Pool::release or Arena::release), or its frame leaks"]
pub struct FrameRef {
    /// First byte of this view.
    ptr: NonNull<u8>,
    len: u32,
    /// Registered: the slot id. Heap: `HEAP_FLAG | distance to the header`.
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
        self.slot & HEAP_FLAG == 0
    }

    /// The `n` headroom bytes right before this view, to write a transport
    /// header into. `n <= HEADROOM` for a view of a whole frame.
    ///
    /// # Safety
    /// As for [`FrameRef::bytes_mut`]: no other reference can be read while
    /// the caller writes; and this view must not already extend into the
    /// headroom (so `n` more bytes in front still belong to the allocation).
    pub unsafe fn prefix_mut(&mut self, n: usize) -> &mut [u8] {
        debug_assert!(n <= HEADROOM);
        // SAFETY: every allocation has HEADROOM bytes before the frame and
        // the caller guarantees this view starts at the frame and is the only
        // one in use.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().sub(n), n) }
    }

    /// This reference turned into a view that also covers the `n` bytes in
    /// front of the frame (a transport header written with
    /// [`FrameRef::prefix_mut`]). `n` must not exceed [`HEADROOM`], counting
    /// any earlier extension.
    pub fn extend_front(self, n: usize) -> FrameRef {
        assert!(n <= HEADROOM, "view beyond the frame's headroom");
        // SAFETY: the HEADROOM bytes before every frame belong to the same
        // slot or heap block, so the pointer stays inside the allocation.
        let ptr = unsafe { NonNull::new_unchecked(self.ptr.as_ptr().sub(n)) };
        let slot = if self.is_registered() {
            self.slot
        } else {
            self.slot - n as u32
        };
        FrameRef {
            ptr,
            len: self.len + n as u32,
            slot,
        }
    }

    /// This reference turned into a view that starts `n` bytes later (a
    /// RESP3 subscriber sends its own first byte, then the rest of a frame
    /// encoded for RESP2). `n` must be less than the view's length.
    pub fn advance(self, n: usize) -> FrameRef {
        assert!(n < self.len as usize, "view past the frame's end");
        // SAFETY: n < len, so the pointer stays inside the frame.
        let ptr = unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(n)) };
        let slot = if self.is_registered() {
            self.slot
        } else {
            // The distance back to the heap header grows by n.
            self.slot + n as u32
        };
        FrameRef {
            ptr,
            len: self.len - n as u32,
            slot,
        }
    }
}

impl Pool {
    /// Maps `total_bytes` of frame memory split into `arenas` arenas whose
    /// largest class holds a frame of `max_frame_bytes`.
    pub fn new(total_bytes: usize, arenas: usize, max_frame_bytes: usize) -> io::Result<Pool> {
        let arenas = arenas.max(1);
        let largest = max_frame_bytes + HEADROOM;
        let mut sizes = Vec::new();
        let mut s = MIN_CLASS;
        while s < largest {
            sizes.push(s);
            s *= 4;
        }
        sizes.push(largest.next_multiple_of(MIN_CLASS));
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
            #[cfg(debug_assertions)]
            live: std::sync::atomic::AtomicI64::new(0),
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

    /// Debug builds: references handed out and not given back (0 when
    /// nothing is queued, in flight or travelling); None in release builds.
    pub fn live_refs(&self) -> Option<i64> {
        #[cfg(debug_assertions)]
        return Some(self.live.load(Ordering::Relaxed));
        #[cfg(not(debug_assertions))]
        None
    }

    /// Debug builds: counts `n` references handed out (negative: given back).
    #[inline]
    fn count_live(&self, _n: i64) {
        #[cfg(debug_assertions)]
        self.live.fetch_add(_n, Ordering::Relaxed);
    }

    /// Takes `n` more references to `frame`, to hand out as copies.
    pub fn retain(&self, frame: &FrameRef, n: u32) {
        if n == 0 {
            return;
        }
        self.count_live(i64::from(n));
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
        if let Some(id) = self.drop_ref(frame) {
            self.free_bits[(id / 64) as usize].fetch_or(1 << (id % 64), Ordering::Release);
        }
    }

    /// Drops one reference. Frees a heap frame whose last reference it was;
    /// returns the slot id of a registered frame whose last reference it was
    /// (the caller puts it back), None otherwise.
    fn drop_ref(&self, frame: FrameRef) -> Option<u32> {
        self.count_live(-1);
        let prev = self.counter(&frame).fetch_sub(1, Ordering::AcqRel);
        debug_assert!(prev > 0, "frame released more often than retained");
        if prev != 1 {
            return None;
        }
        if frame.is_registered() {
            return Some(frame.slot);
        }
        let base = Self::heap_base(&frame);
        // SAFETY: the header at `base` holds the allocated size written by
        // `alloc_heap`; the count just reached zero, so nobody else reads it.
        let size = unsafe { std::ptr::read(base.add(4) as *const u32) } as usize;
        let layout = Self::heap_layout(size);
        // SAFETY: the block was allocated with exactly this layout in
        // `alloc_heap`, and no reference to it is left.
        unsafe { alloc::dealloc(base, layout) };
        None
    }

    fn heap_base(frame: &FrameRef) -> *mut u8 {
        let dist = (frame.slot & !HEAP_FLAG) as usize;
        // SAFETY: a heap view lies `dist` bytes after its block's header
        // (kept up to date by `extend_front`), inside the same allocation.
        unsafe { frame.ptr.as_ptr().sub(dist) }
    }

    fn counter(&self, frame: &FrameRef) -> &AtomicU32 {
        if frame.is_registered() {
            &self.refs[frame.slot as usize]
        } else {
            // SAFETY: heap frames keep their AtomicU32 count at the start of
            // the 8-aligned block, alive while refs > 0.
            unsafe { &*(Self::heap_base(frame) as *const AtomicU32) }
        }
    }

    fn heap_layout(len: usize) -> Layout {
        Layout::from_size_align(len + HEAP_HEADER + HEADROOM, 8).expect("frame layout")
    }

    fn alloc_heap(&self, len: usize) -> FrameRef {
        self.count_live(1);
        let layout = Self::heap_layout(len);
        // SAFETY: the layout has non-zero size.
        let base = unsafe { alloc::alloc(layout) };
        if base.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: base is 8-aligned and at least HEAP_HEADER bytes long.
        unsafe {
            std::ptr::write(base as *mut AtomicU32, AtomicU32::new(1));
            std::ptr::write(base.add(4) as *mut u32, len as u32);
        }
        self.heap_frames.fetch_add(1, Ordering::Relaxed);
        let dist = HEAP_HEADER + HEADROOM;
        // SAFETY: base + dist is within the allocation and not null.
        let ptr = unsafe { NonNull::new_unchecked(base.add(dist)) };
        FrameRef {
            ptr,
            len: len as u32,
            slot: HEAP_FLAG | dist as u32,
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

    /// A frame of exactly `len` bytes (plus [`HEADROOM`] in front) with one
    /// reference, contents unspecified.
    pub fn alloc(&mut self, pool: &Pool, len: usize) -> FrameRef {
        let classes = &pool.classes[self.index];
        let first = classes.iter().position(|c| c.size >= len + HEADROOM);
        if let Some(first) = first {
            for (ci, c) in classes.iter().enumerate().skip(first) {
                if let Some(id) = self.take(pool, ci) {
                    let off = c.base + (id - c.first_id) as usize * c.size + HEADROOM;
                    pool.count_live(1);
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

    /// Gives one reference back. When it was the last and the frame came
    /// from this arena, its slot goes to the top of the cache (reused next,
    /// while still in the CPU cache) instead of the shared bitmap.
    pub fn release(&mut self, pool: &Pool, frame: FrameRef) {
        let Some(id) = pool.drop_ref(frame) else {
            return;
        };
        let own = pool.classes[self.index]
            .iter()
            .position(|c| id >= c.first_id && id < c.first_id + c.count);
        match own {
            // Capacity is the class's slot count, so this never allocates.
            Some(ci) => self.cache[ci].push(id),
            None => {
                pool.free_bits[(id / 64) as usize].fetch_or(1 << (id % 64), Ordering::Release);
            }
        }
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

    #[test]
    fn views_into_the_headroom_share_the_count_on_pool_and_heap() {
        let pool = Pool::new(64 << 10, 1, 4096).unwrap();
        let mut arena = Arena::new(&pool, 0);
        let mut held = Vec::new();
        // Fill the pool so the last frame is a heap frame, then check both kinds.
        let heap = loop {
            let f = arena.alloc(&pool, 3000);
            if !f.is_registered() {
                break f;
            }
            held.push(f);
        };
        for mut f in [held.pop().unwrap(), heap] {
            // SAFETY: just allocated; no other reference exists.
            unsafe { f.bytes_mut() }.fill(7);
            // SAFETY: as above; the view starts at the frame.
            unsafe { f.prefix_mut(4) }.copy_from_slice(&[1, 2, 3, 4]);
            let view = pool.share(&f).extend_front(4);
            assert_eq!(view.len(), 3004);
            assert_eq!(&view.bytes()[..5], &[1, 2, 3, 4, 7]);
            assert_eq!(view.is_registered(), f.is_registered());
            pool.release(f);
            // The view alone keeps the memory alive.
            assert_eq!(view.bytes()[4..].iter().filter(|&&b| b == 7).count(), 3000);
            arena.release(&pool, view);
        }
        for f in held {
            pool.release(f);
        }
    }

    #[test]
    fn the_owner_reuses_the_slot_it_released_last() {
        let pool = Pool::new(1 << 20, 1, 4096).unwrap();
        let mut arena = Arena::new(&pool, 0);
        let a = arena.alloc(&pool, 100);
        let b = arena.alloc(&pool, 100);
        let slot_a = a.slot;
        arena.release(&pool, b);
        arena.release(&pool, a);
        let c = arena.alloc(&pool, 100);
        assert_eq!(c.slot, slot_a, "last freed slot comes back first");
        arena.release(&pool, c);
    }
}

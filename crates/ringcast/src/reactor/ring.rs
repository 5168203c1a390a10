//! Ring setup, the feature probe, and the provided-buffer ring for receives.

use super::Shared;
use crate::sys::Mmap;
use io_uring::{opcode, types, IoUring, Probe};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// What the ring ended up with, for the start-up banner and the send path.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingFeatures {
    /// SINGLE_ISSUER + DEFER_TASKRUN accepted.
    pub defer_taskrun: bool,
    /// IORING_OP_WRITEV_FIXED available: coalesced sends read the registered
    /// region as kernel memory (else SENDMSG).
    pub writev_fixed: bool,
    /// Slots in the ring's fixed-file table (0: none registered); a
    /// connection whose slab index is below it is used by index.
    pub fixed_files: u32,
}

impl std::fmt::Display for RingFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.defer_taskrun {
            "SINGLE_ISSUER+DEFER_TASKRUN"
        } else {
            "COOP_TASKRUN"
        })?;
        f.write_str(if self.writev_fixed {
            ", single frames by SEND, coalesced ones by WRITEV_FIXED from registered memory"
        } else {
            ", single frames by SEND, coalesced ones by SENDMSG"
        })?;
        if self.fixed_files > 0 {
            write!(f, ", {} fixed-file slots", self.fixed_files)
        } else {
            f.write_str(", no fixed files")
        }
    }
}

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 32768;

/// Builds this thread's ring and registers the shared frame region as fixed
/// buffer 0.
pub fn build_ring(shared: &Shared) -> io::Result<(IoUring, RingFeatures)> {
    let mut features = RingFeatures::default();
    let ring = match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(CQ_ENTRIES)
        .build(SQ_ENTRIES)
    {
        Ok(r) => {
            features.defer_taskrun = true;
            r
        }
        Err(_) => IoUring::builder().setup_coop_taskrun().setup_cqsize(CQ_ENTRIES).build(SQ_ENTRIES).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "io_uring not available: kernel {}, io_uring_setup failed: {e} \
                     (is io_uring disabled by sysctl kernel.io_uring_disabled or a seccomp filter?)",
                    crate::sys::kernel_release()
                ),
            )
        })?,
    };
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::RecvMulti::CODE, "RECV"),
        (opcode::AcceptMulti::CODE, "ACCEPT"),
        (opcode::Send::CODE, "SEND"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::MsgRingData::CODE, "MSG_RING"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring on kernel {} lacks IORING_OP_{name}; ringcast needs Linux 6.0 or later", crate::sys::kernel_release()),
            ));
        }
    }
    features.writev_fixed = probe.is_supported(opcode::WritevFixed::CODE);
    let (base, len) = shared.pool.region();
    let iov = libc::iovec {
        iov_base: base as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: the region belongs to the pool inside `Shared`, which every
    // reactor holds an Arc of; the engine drops the rings (unregistering the
    // buffer) before the last Arc, so the memory outlives the registration.
    unsafe { ring.submitter().register_buffers(&[iov]) }.map_err(|e| {
        io::Error::new(e.kind(), format!("cannot register {len} bytes of frame memory with io_uring: {e} (lower --pool-size or raise RLIMIT_MEMLOCK)"))
    })?;
    // One fixed-file slot per possible connection of this reactor (the slab
    // never holds more than max_connections), capped by the open-file limit
    // that bounds the table. Without it, every op looks the socket up.
    let slots = shared
        .config
        .max_connections
        .min(crate::sys::nofile_limit() as usize)
        .min(u32::MAX as usize) as u32;
    if ring.submitter().register_files_sparse(slots).is_ok() {
        features.fixed_files = slots;
    }
    Ok((ring, features))
}

/// Receive buffers the kernel picks from (IORING_REGISTER_PBUF_RING).
/// Each receive completion names a buffer; the reactor parses it and gives
/// it straight back, so a few hundred buffers serve any number of sockets.
///
/// Where the kernel allows it (Linux 6.12+, `IOU_PBUF_RING_INC`), buffers are
/// consumed incrementally: each receive takes only the bytes it got from the
/// buffer at the ring's head, the next one starts where it stopped, and a
/// buffer goes back only once the kernel has moved past it. Small receives
/// then share pages: the memory touched grows with the bytes received, not
/// with one page per receive (10,000 SUBSCRIBEs touched every buffer's first
/// page, 2 MiB, otherwise). Without it, each receive takes a whole buffer.
pub struct BufRing {
    ring_mem: Mmap,
    bufs: Mmap,
    entries: u16,
    buf_len: usize,
    tail: u16,
    /// Incremental consumption is on: `used[bid]` is where the next
    /// completion's bytes start in buffer `bid`.
    incremental: bool,
    used: Vec<u32>,
}

/// `io_uring_buf_reg.flags`: consume buffers incrementally (Linux 6.12).
const IOU_PBUF_RING_INC: u16 = 2;
/// CQE flag: the kernel goes on filling this buffer (incremental mode).
const IORING_CQE_F_BUF_MORE: u32 = 1 << 4;

const BUF_ENTRIES: u16 = 512;
/// Buffers when consumed incrementally: 1 MiB takes 16,384 receives of 64
/// bytes (512 whole buffers took 512 receives of any size) and at least 64
/// receives of 16 KiB between two reaps; more in one batch get ENOBUFS
/// (counted in `recv_nobufs`, the receive re-armed).
const BUF_ENTRIES_INC: u16 = 64;
const BUF_LEN: usize = 16 * 1024;

impl BufRing {
    pub fn new(ring: &IoUring, bgid: u16) -> io::Result<BufRing> {
        let ring_mem =
            Mmap::anonymous(BUF_ENTRIES as usize * std::mem::size_of::<types::BufRingEntry>())?;
        let bufs = Mmap::anonymous(BUF_ENTRIES as usize * BUF_LEN)?;
        let register = |entries, flags| {
            // SAFETY: ring_mem is page aligned, sized for BUF_ENTRIES entries
            // (at least `entries`) and owned by the BufRing, which the
            // reactor drops after its ring.
            unsafe {
                ring.submitter().register_buf_ring_with_flags(
                    ring_mem.as_ptr() as u64,
                    entries,
                    bgid,
                    flags,
                )
            }
        };
        // Older kernels refuse the flag (EINVAL): whole buffers then.
        let incremental = register(BUF_ENTRIES_INC, IOU_PBUF_RING_INC).is_ok();
        if !incremental {
            register(BUF_ENTRIES, 0)?;
        }
        let entries = if incremental {
            BUF_ENTRIES_INC
        } else {
            BUF_ENTRIES
        };
        let mut br = BufRing {
            ring_mem,
            bufs,
            entries,
            buf_len: BUF_LEN,
            tail: 0,
            incremental,
            used: vec![0; entries as usize],
        };
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    fn push(&mut self, bid: u16) {
        let base = self.ring_mem.as_ptr() as *mut types::BufRingEntry;
        let slot = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: slot < entries, inside ring_mem; the kernel reads entries
        // only up to the published tail, which does not include this one yet.
        let e = unsafe { &mut *base.add(slot) };
        // SAFETY: bid < entries, so the buffer lies inside `bufs`.
        e.set_addr(unsafe { self.bufs.as_ptr().add(bid as usize * self.buf_len) } as u64);
        e.set_len(self.buf_len as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        let base = self.ring_mem.as_ptr() as *const types::BufRingEntry;
        // SAFETY: the tail field lives in the first entry of ring_mem; the
        // kernel reads it with acquire semantics, so a release store orders
        // the entry writes before it.
        unsafe {
            (*(types::BufRingEntry::tail(base) as *const AtomicU16))
                .store(self.tail, Ordering::Release)
        };
    }

    /// The `len` bytes a receive completion brought in buffer `bid`.
    pub fn slice(&self, bid: u16, len: usize) -> *const [u8] {
        let off = if self.incremental {
            self.used[bid as usize] as usize
        } else {
            0
        };
        debug_assert!(bid < self.entries && off + len <= self.buf_len);
        // SAFETY: bid < entries and off + len <= buf_len (the kernel wrote
        // them there): the range is inside `bufs`.
        let p = unsafe { self.bufs.as_ptr().add(bid as usize * self.buf_len + off) };
        std::ptr::slice_from_raw_parts(p, len)
    }

    /// Done with the `len` bytes of a completion (`flags`) in buffer `bid`:
    /// the buffer goes back to the kernel, unless (incremental mode) the
    /// kernel goes on filling it, and the next completion's bytes follow.
    pub fn consumed(&mut self, bid: u16, len: usize, flags: u32) {
        if self.incremental && flags & IORING_CQE_F_BUF_MORE != 0 {
            self.used[bid as usize] += len as u32;
            return;
        }
        self.used[bid as usize] = 0;
        self.push(bid);
        self.publish();
    }
}

/// A ring of its own for a thread that is not a reactor (the NATS relay), to
/// wake a parked reactor with MSG_RING as the reactors wake each other.
pub(crate) struct Waker {
    ring: IoUring,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        Ok(Waker {
            ring: IoUring::new(8)?,
        })
    }

    /// Posts a MSG_RING to the ring `fd` (a reactor's) and submits it.
    pub fn wake(&mut self, fd: std::os::fd::RawFd) {
        let sqe = opcode::MsgRingData::new(types::Fd(fd), 0, 0, None)
            .build()
            .user_data(0);
        // SAFETY: the entry holds no pointer (MSG_RING carries two integers),
        // so nothing it refers to can go away before the kernel reads it.
        if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
            let _ = self.ring.submit();
        }
        // Our own completions are not needed: drop them so the CQ never fills.
        for _ in self.ring.completion() {}
    }
}

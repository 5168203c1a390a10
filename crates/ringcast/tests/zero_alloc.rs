//! Steady-state publishing allocates nothing.
//!
//! What is counted: every call to the global allocator (alloc, alloc_zeroed,
//! realloc) from any thread of this process while the measured phase runs:
//! the engine's reactor threads (receive, parse, encode, owner hand-off across
//! cores, fan-out, send submission and completion, frame release) and this
//! test's own clients. The clients are built so that they cannot allocate in
//! that phase (pre-encoded frames, fixed read buffers, raw std sockets), so
//! any count is the engine's. Connection setup and subscriptions happen
//! before, and a warm-up lets queues reach their steady capacity.

use ringcast::proto::{self, ClientFrame, Decoded, ServerFrame};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

mod common;

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SUBSCRIBERS: usize = 100;
const TOPIC: &str = "alloc.test";
const PAYLOAD: usize = 64;
const ROUND: usize = 500;

fn raw_subscriber(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = Vec::new();
    ClientFrame::Subscribe { topic: TOPIC }.encode(&mut req);
    s.write_all(&req).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before SUBACK");
        buf.extend_from_slice(&chunk[..n]);
        if let Decoded::Frame { frame, consumed } = proto::decode_server(&buf, 1 << 20).unwrap() {
            assert!(
                matches!(frame, ServerFrame::SubAck { .. }),
                "expected SUBACK, got {frame:?}"
            );
            assert_eq!(
                consumed,
                buf.len(),
                "nothing else may arrive before a publish"
            );
            return s;
        }
    }
}

/// Publishes one round and reads it back whole from every subscriber.
fn round(publisher: &mut TcpStream, batch: &[u8], subs: &mut [TcpStream], sink: &mut [u8]) {
    publisher.write_all(batch).unwrap();
    for s in subs.iter_mut() {
        s.read_exact(sink).unwrap();
    }
}

#[test]
fn publishing_to_100_subscribers_allocates_nothing_once_warm() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();
    let mut subs: Vec<TcpStream> = (0..SUBSCRIBERS).map(|_| raw_subscriber(addr)).collect();
    let mut publisher = TcpStream::connect(addr).unwrap();
    publisher.set_nodelay(true).unwrap();

    let payload = [0xA5u8; PAYLOAD];
    let mut batch = Vec::new();
    for _ in 0..ROUND {
        ClientFrame::Publish {
            topic: TOPIC,
            payload: &payload,
        }
        .encode(&mut batch);
    }
    let data_len = proto::data_frame_len(TOPIC.len(), PAYLOAD);
    let mut sink = vec![0u8; data_len * ROUND];

    for _ in 0..4 {
        round(&mut publisher, &batch, &mut subs, &mut sink);
    }

    // The counter itself works: one allocation is seen as one.
    COUNTING.store(true, Ordering::SeqCst);
    let probe = std::hint::black_box(Box::new(7u64));
    COUNTING.store(false, Ordering::SeqCst);
    drop(probe);
    assert_eq!(
        ALLOCS.swap(0, Ordering::SeqCst),
        1,
        "the counting allocator is not in use"
    );

    let before = engine.stats();
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        round(&mut publisher, &batch, &mut subs, &mut sink);
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let after = engine.stats();

    // The last frame read is the 24th round's last: seq 24 * ROUND.
    let last = &sink[(ROUND - 1) * data_len..];
    match proto::decode_server(last, 1 << 20).unwrap() {
        Decoded::Frame {
            frame: ServerFrame::Data { seq, payload, .. },
            ..
        } => {
            assert_eq!(seq, 24 * ROUND as u64);
            assert_eq!(payload, &payload_copy()[..]);
        }
        other => panic!("expected DATA, got {other:?}"),
    }
    let published = after.publishes - before.publishes;
    assert_eq!(published, 20 * ROUND as u64);
    assert_eq!(
        after.deliveries - before.deliveries,
        published * SUBSCRIBERS as u64
    );
    assert_eq!(
        allocs, 0,
        "{allocs} heap allocations during {published} publishes to {SUBSCRIBERS} subscribers"
    );
}

fn payload_copy() -> [u8; PAYLOAD] {
    [0xA5u8; PAYLOAD]
}

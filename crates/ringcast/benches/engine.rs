//! Micro-benchmarks of the engine's in-memory hot paths (no sockets, no ring).
//!
//! - `pool`: one frame allocated from a reactor's arena, a 96-byte DATA frame
//!   (topic "bench/topic") encoded into it, and the reference released, as a
//!   publish does before fan-out, with the server's default 64 MiB pool and
//!   with a 1 MiB one (slots reused while still in cache). Throughput: frames.
//! - `send_batch`: one core's work for one frame and 10,000 subscribers:
//!   `Pool::share` + `Conn::push` per subscriber, then `Conn::prepare_send`
//!   for each (the iovec building the reactor does before submitting sends),
//!   then `Conn::complete_send` for the full length, which releases the
//!   references. The 10,000 `Conn`s are created once, outside the timed loop.
//!   Throughput: subscribers (deliveries).
//! - `mailbox`: the cross-core hand-off. This thread pushes items through a
//!   `mailbox::channel` (the server's 16 Ki slots) to a consumer thread that
//!   spins on `pop`; an iteration is a batch of 100,000 messages (20,000 for
//!   `frame_ref`) and the time runs until the consumer has taken the last one. `u64` measures the queue
//!   alone; `frame_ref` sends `Pool::share`d frame references that the
//!   consumer releases, as a reactor receiving a frame from the topic's owner
//!   core would (both threads touch the same reference count). Throughput:
//!   messages. With fewer than two free CPUs the two threads take turns and
//!   the figure measures the scheduler instead.
//!
//! `ringcast::internals` is a hidden re-export for these benchmarks; it is
//! not a stable API.
//!
//! Run: `cargo bench --bench engine` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringcast::internals::{channel, Arena, Conn, Consumer, FrameRef, Pool, Producer};
use ringcast::proto::{data_frame_len, encode_data, DATA_HEADER_LEN};

const TOPIC: &str = "bench/topic";
/// Total DATA frame size for the pool and fan-out benches.
const FRAME_LEN: usize = 96;
const PAYLOAD_LEN: usize = FRAME_LEN - DATA_HEADER_LEN - TOPIC.len();
const SUBSCRIBERS: usize = 10_000;
/// Same as the server's `MAILBOX_SLOTS`.
const MAILBOX_SLOTS: usize = 16 * 1024;
const BATCH: u64 = 100_000;
/// Smaller batches for frame references, which move several times slower.
const FRAME_BATCH: u64 = 20_000;

const POOL_BYTES: usize = 64 << 20;
const MAX_FRAME: usize = 64 << 10;

fn new_frame(pool: &Pool, arena: &mut Arena, payload: &[u8], seq: u64) -> FrameRef {
    let mut f = arena.alloc(pool, FRAME_LEN);
    // SAFETY: just allocated; this is the only reference.
    let out = unsafe { f.bytes_mut() };
    let n = encode_data(
        out,
        seq,
        1_700_000_000_000_000_000,
        TOPIC.as_bytes(),
        payload,
    );
    debug_assert_eq!(n, FRAME_LEN);
    f
}

fn pool(c: &mut Criterion) {
    assert_eq!(data_frame_len(TOPIC.len(), PAYLOAD_LEN), FRAME_LEN);
    let payload = vec![0x5Au8; PAYLOAD_LEN];
    let mut group = c.benchmark_group("pool");
    group.throughput(Throughput::Elements(1));
    // The server's default pool size, and a small one. Before Arena::release
    // recycled slots LIFO, the 64 MiB pool walked every slot round-robin and
    // was 3x slower than the 1 MiB one.
    for (name, bytes) in [("64MiB", POOL_BYTES), ("1MiB", 1 << 20)] {
        let pool = Pool::new(bytes, 1, MAX_FRAME).expect("pool");
        let mut arena = Arena::new(&pool, 0);
        group.bench_function(BenchmarkId::new("alloc_encode_release_96B", name), |b| {
            let mut seq = 0u64;
            b.iter(|| {
                seq += 1;
                let f = new_frame(&pool, &mut arena, black_box(&payload), seq);
                black_box(f.as_ptr());
                arena.release(&pool, f);
            })
        });
        assert_eq!(pool.heap_frames(), 0);
    }
    group.finish();
}

fn send_batch(c: &mut Criterion) {
    let pool = Pool::new(POOL_BYTES, 1, MAX_FRAME).expect("pool");
    let mut arena = Arena::new(&pool, 0);
    let payload = vec![0x5Au8; PAYLOAD_LEN];
    let mut conns: Vec<Conn> = (0..SUBSCRIBERS)
        .map(|_| Conn::new(-1, 0, ringcast::internals::Wire::Tcp))
        .collect();
    // The iovecs one send is laid out in (the driver's, per connection).
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; ringcast::internals::MAX_IOV];
    let mut owed = 0usize;
    let mut group = c.benchmark_group("send_batch");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    group.bench_function(BenchmarkId::new("subscribers", SUBSCRIBERS), |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let frame = new_frame(&pool, &mut arena, &payload, seq);
            for conn in conns.iter_mut() {
                conn.push(pool.share(&frame), &mut owed);
            }
            arena.release(&pool, frame);
            let mut total = 0usize;
            for conn in conns.iter_mut() {
                let (iovs, bytes, registered) = conn.prepare_send(&mut iov);
                black_box((iovs, registered, &iov));
                total += bytes;
            }
            for conn in conns.iter_mut() {
                let sent = conn.in_flight_bytes;
                let short = conn.complete_send(&pool, &mut arena, &mut owed, sent);
                debug_assert!(!short);
            }
            total
        })
    });
    group.finish();
    assert!(conns.iter().all(|c| c.outq.is_empty() && c.queued == 0));
}

/// Pushes `count` items made by `make`, spinning (then yielding) while full.
fn produce<T: Send>(tx: &mut Producer<T>, count: u64, mut make: impl FnMut(u64) -> T) {
    for i in 0..count {
        let mut item = make(i);
        let mut spins = 0u32;
        loop {
            match tx.push(item) {
                Ok(()) => break,
                Err(back) => {
                    item = back;
                    backoff(&mut spins);
                }
            }
        }
    }
}

/// Pops `count` items into `take`, spinning (then yielding) while empty.
fn consume<T: Send>(rx: &mut Consumer<T>, count: u64, mut take: impl FnMut(T)) {
    let mut got = 0;
    let mut spins = 0u32;
    while got < count {
        match rx.pop() {
            Some(v) => {
                take(v);
                got += 1;
                spins = 0;
            }
            None => backoff(&mut spins),
        }
    }
}

/// Spins; after a while yields, so a shared CPU does not stall the other side
/// for a whole time slice.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 256 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

fn mailbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("mailbox");
    group.throughput(Throughput::Elements(BATCH));

    group.bench_function("u64", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = channel::<u64>(MAILBOX_SLOTS);
            let n = iters * BATCH;
            let start = Instant::now();
            std::thread::scope(|s| {
                let consumer = s.spawn(move || {
                    let mut sum = 0u64;
                    consume(&mut rx, n, |v| sum = sum.wrapping_add(v));
                    sum
                });
                produce(&mut tx, n, |i| i);
                let sum = consumer.join().expect("consumer");
                assert_eq!(sum, n * (n - 1) / 2);
            });
            start.elapsed()
        })
    });

    let pool = Pool::new(POOL_BYTES, 2, MAX_FRAME).expect("pool");
    let mut arena = Arena::new(&pool, 0);
    let payload = vec![0x5Au8; PAYLOAD_LEN];
    let frame = new_frame(&pool, &mut arena, &payload, 1);
    group.throughput(Throughput::Elements(FRAME_BATCH));
    group.bench_function("frame_ref", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = channel::<FrameRef>(MAILBOX_SLOTS);
            let n = iters * FRAME_BATCH;
            let pool = &pool;
            let frame = &frame;
            let start = Instant::now();
            std::thread::scope(|s| {
                let consumer = s.spawn(move || {
                    let mut bytes = 0usize;
                    consume(&mut rx, n, |f| {
                        bytes += f.len();
                        pool.release(f);
                    });
                    bytes
                });
                produce(&mut tx, n, |_| pool.share(frame));
                let bytes = consumer.join().expect("consumer");
                assert_eq!(bytes as u64, n * FRAME_LEN as u64);
            });
            start.elapsed()
        })
    });
    group.finish();
    pool.release(frame);
}

fn short() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = short();
    targets = pool, send_batch, mailbox
}
criterion_main!(benches);

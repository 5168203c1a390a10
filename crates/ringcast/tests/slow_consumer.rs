//! Slow consumers (PROTOCOL.md, "Slow consumers"): a subscriber that stops
//! reading is cut off with ERROR 6 once its backlog passes the limit, after
//! contiguous frames and nothing from the middle dropped; the other
//! subscribers of the same topic get every frame in order, undelayed; and
//! the engine's memory does not grow with what keeps being published to the
//! topic afterwards.

mod common;

use common::{config, connect, start, wait_until};
use ringcast::Config;
use ringcast_client::{Client, ClientError, OwnedServerFrame};
use std::io;
use std::time::Duration;

const TOPIC: &str = "market.feed";
const PAYLOAD: usize = 4096;
const HEALTHY: usize = 100;
const FRAMES: u64 = 2_000;
const MORE_FRAMES: u64 = 20_000;
const MAX_BACKLOG: usize = 256 << 10;
/// The publisher stays at most this many frames ahead of the slowest healthy
/// reader: 16 frames of ~4.1 KiB is a quarter of `MAX_BACKLOG`, so a healthy
/// reader is never cut off however the two CPUs are shared out, while the
/// stalled one, which never reads, falls behind by all of `FRAMES`.
const WINDOW: u64 = 16;

/// The bytes published as frame `seq`: unique to it in every 8-byte word,
/// so a frame torn, shifted or swapped with another does not compare equal.
fn payload(seq: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(PAYLOAD);
    let mut word = 0u64;
    while p.len() < PAYLOAD {
        p.extend_from_slice(&(seq << 20 | word).to_le_bytes());
        word += 1;
    }
    p
}

/// This process's resident set (the engine runs in it), in bytes.
fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value in kB");
    kib * 1024
}

/// Reads the cut-off subscriber's stream to its end: DATA frames with seq
/// 1, 2, 3... and their exact payloads, then ERROR 6, then end of stream.
/// Returns how many DATA frames it got.
fn read_until_cut_off(stalled: &mut Client) -> u64 {
    let mut seq = 0;
    loop {
        match stalled.next_frame() {
            Ok(OwnedServerFrame::Data(m)) => {
                seq += 1;
                assert_eq!(
                    (m.topic.as_str(), m.seq),
                    (TOPIC, seq),
                    "frames before the ERROR are contiguous"
                );
                assert!(m.payload == payload(seq), "frame {seq} is intact");
            }
            Ok(OwnedServerFrame::Error { code, message, .. }) => {
                assert_eq!(code, 6, "slow consumer ERROR: {message}");
                break;
            }
            other => panic!("stalled subscriber after {seq} DATA frames: got {other:?}"),
        }
    }
    match stalled.next_frame() {
        Err(ClientError::Closed) => {}
        Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("after ERROR 6 the server closes; got {other:?}"),
    }
    seq
}

/// Publishes frames `from..from + n` and has every reader read them, in
/// lockstep windows of [`WINDOW`] frames.
fn publish_and_read(publisher: &mut Client, readers: &mut [Client], from: u64, n: u64) {
    let end = from + n;
    let mut next = from;
    while next < end {
        let batch: Vec<(u64, Vec<u8>)> = (next..end.min(next + WINDOW))
            .map(|seq| (seq, payload(seq)))
            .collect();
        for (_, p) in &batch {
            publisher.publish(TOPIC, p).unwrap();
        }
        for (i, r) in readers.iter_mut().enumerate() {
            for (seq, p) in &batch {
                let m = r
                    .next_message()
                    .unwrap_or_else(|e| panic!("healthy reader {i} waiting for frame {seq}: {e}"));
                assert_eq!(m.seq, *seq, "healthy reader {i} gets every frame in order");
                assert!(m.payload == *p, "healthy reader {i}: frame {seq} is intact");
            }
        }
        next += batch.len() as u64;
    }
}

#[test]
fn a_stalled_subscriber_is_cut_off_with_error_6_and_the_others_get_everything() {
    let engine = start(Config {
        max_backlog: MAX_BACKLOG,
        max_frame: 64 << 10,
        ..config(2)
    });
    let addr = engine.local_addr();

    // The stalled subscriber simply never reads. It keeps the default
    // receive buffer: shrinking SO_RCVBUF on a connected socket makes Linux
    // clamp the connection's receive window (rcv_ssthresh) for good once data
    // overflows the small buffer, and when the subscriber resumes reading it
    // would drain the few MiB the server's kernel holds for it at ~40 KB/s,
    // far past the grace period a cut-off connection gets to take its ERROR.
    // The server's send buffer (up to tcp_wmem's 4 MiB ceiling) is what a
    // stalled reader fills either way; the backlog limit counts what is queued
    // beyond it.
    let mut stalled = connect(addr);
    assert_eq!(stalled.subscribe(TOPIC).unwrap().next_seq, 1);
    let mut healthy: Vec<Client> = (0..HEALTHY)
        .map(|_| {
            let mut c = connect(addr);
            assert_eq!(c.subscribe(TOPIC).unwrap().next_seq, 1);
            c
        })
        .collect();
    let mut publisher = connect(addr);

    let engine = &engine;
    std::thread::scope(|s| {
        // The stalled subscriber reads nothing until the engine has cut it
        // off, then reads at once: the server owes a cut-off connection only
        // a short grace period to take what the kernel holds for it and its
        // ERROR.
        let cut = s.spawn(move || {
            assert!(
                wait_until(Duration::from_secs(20), || engine
                    .stats()
                    .slow_consumers_total()
                    >= 1),
                "a subscriber that reads nothing was not cut off"
            );
            read_until_cut_off(&mut stalled)
        });
        publish_and_read(&mut publisher, &mut healthy, 1, FRAMES);
        let got = cut.join().expect("stalled subscriber's checks");
        assert!(
            got < FRAMES,
            "the stalled subscriber got all {got} frames: it was never behind"
        );
    });
    let stats = engine.stats();
    assert_eq!(
        (stats.slow_consumers_total(), stats.errors[6]),
        (1, 1),
        "exactly one subscriber, the stalled one, was cut off"
    );

    // Keep one healthy reader and the publisher; the cut-off connection and
    // the other readers are gone.
    let mut keeper = healthy.swap_remove(0);
    drop(healthy);
    assert!(
        wait_until(Duration::from_secs(10), || engine.connections() == 2),
        "{} connections open, expected 2",
        engine.connections()
    );

    // 20,000 more 4 KiB frames (80 MiB) to the topic the stalled subscriber
    // was cut from. The frame pool is registered with the rings, hence
    // resident since start, so it is already in the baseline; what is left
    // to grow is allocator slack and frames in flight (at most WINDOW, well
    // under 1 MiB). Any memory kept per frame for the cut-off subscriber (or
    // any frame never freed) would grow by 80 MiB or more: 32 MiB tells the
    // two apart with room on both sides.
    const RSS_BOUND: u64 = 32 << 20;
    let before = engine.stats();
    let rss_before = vm_rss();
    publish_and_read(
        &mut publisher,
        std::slice::from_mut(&mut keeper),
        FRAMES + 1,
        MORE_FRAMES,
    );
    let rss_after = vm_rss();
    let after = engine.stats();
    assert!(
        rss_after <= rss_before + RSS_BOUND,
        "RSS grew by {} MiB while publishing {} MiB to a topic whose slow subscriber was cut off",
        (rss_after - rss_before) >> 20,
        (MORE_FRAMES * PAYLOAD as u64) >> 20
    );
    assert_eq!(after.publishes - before.publishes, MORE_FRAMES);
    assert_eq!(
        after.deliveries - before.deliveries,
        MORE_FRAMES,
        "only the one live subscriber is delivered to"
    );
    assert_eq!(after.slow_consumers_total(), 1);
}

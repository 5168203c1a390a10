//! Isolation (issue 9, finding 4): what a connection costs to tear down
//! must not depend on how many subscriptions the other connections hold,
//! and no connection's exit may stall a reactor.
//!
//! Before the fix, subscribe, unsubscribe and teardown scanned a
//! connection's subscription list linearly, so 1,000 connections with 4,096
//! subscriptions each closing together cost 3.4 s of CPU and stalled both
//! reactors: a healthy subscriber got nothing for 1.6 s and PING round trips
//! took 1.8 s. Now each subscription is removed in O(1) and a connection's
//! subscriptions are removed a bounded number per loop turn, so no exit
//! stalls a loop for more than about a millisecond.
//!
//! Every test runs a healthy subscriber/publisher pair (`common::healthy`)
//! beside the load and checks it got every frame, in order, in time.

mod common;

use common::healthy::{Healthy, P99_BOUND};
use common::{config, connect, start, wait_until};
use ringcast::proto::ClientFrame;
use ringcast_client::{Client, OwnedServerFrame};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Subscriptions per connection: the default `max_subscriptions`.
const SUBS: usize = 4096;

/// How long the engine may take to reclaim everything a closed connection
/// held (its subscriptions, then the topics nobody subscribes to any more).
const RECLAIM_TIMEOUT: Duration = Duration::from_secs(10);

/// Both tests load both CPUs of the CI VM and one measures round trips:
/// run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The topic names `prefix.0` .. `prefix.4095`.
fn topics(prefix: &str) -> Vec<String> {
    (0..SUBS).map(|i| format!("{prefix}.{i}")).collect()
}

/// Frames of `kind` (SUBSCRIBE or UNSUBSCRIBE) for every topic, encoded
/// back to back into one buffer: the whole batch goes out in one write.
fn pipeline(topics: &[String], subscribe: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(topics.len() * 16);
    for t in topics {
        if subscribe {
            ClientFrame::Subscribe { topic: t }.encode(&mut out);
        } else {
            ClientFrame::Unsubscribe { topic: t }.encode(&mut out);
        }
    }
    out
}

/// Sends every SUBSCRIBE at once, then reads the SUBACKs: one per topic, in
/// request order.
fn subscribe_all(c: &mut Client, topics: &[String], what: &str) {
    c.send_raw(&pipeline(topics, true))
        .unwrap_or_else(|e| panic!("{what}: sending {} SUBSCRIBEs: {e}", topics.len()));
    for (i, t) in topics.iter().enumerate() {
        match c.next_frame() {
            Ok(OwnedServerFrame::SubAck { topic, .. }) if topic == *t => {}
            other => panic!("{what}: SUBACK {i} (for {t}) expected, got {other:?}"),
        }
    }
}

/// Subscribes every client to every topic, a few client threads at a time.
fn subscribe_clients(clients: &mut [Client], topics: &[String], what: &str) {
    let per_thread = clients.len().div_ceil(4).max(1);
    std::thread::scope(|s| {
        for (k, chunk) in clients.chunks_mut(per_thread).enumerate() {
            s.spawn(move || {
                for (i, c) in chunk.iter_mut().enumerate() {
                    subscribe_all(c, topics, &format!("{what} {}", k * per_thread + i));
                }
            });
        }
    });
}

/// The nearest-rank percentile `p` of `v` (sorted here).
fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    let r = (p * v.len() as f64).ceil() as usize;
    v[r.clamp(1, v.len()) - 1]
}

/// One PING round trip: when it was sent and how long the PONG took.
#[derive(Clone, Copy, Debug)]
struct Rtt {
    sent: Instant,
    rtt: Duration,
}

/// A client doing a PING round trip every 5 ms on its own connection,
/// recording each, until stopped.
struct Pinger {
    samples: Arc<Mutex<Vec<Rtt>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pinger {
    const PERIOD: Duration = Duration::from_millis(5);

    fn start(addr: std::net::SocketAddr) -> Pinger {
        let mut c = connect(addr);
        assert_eq!(c.ping(b"hello").unwrap(), b"hello", "pinger: first PING");
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut k: u32 = 0;
            while !st.load(Ordering::Relaxed) {
                let due = start + Self::PERIOD * k;
                let now = Instant::now();
                if due > now {
                    // Pacing to the next deadline, not a wait for a condition.
                    std::thread::sleep(due - now);
                }
                k += 1;
                let sent = Instant::now();
                let payload = k.to_le_bytes();
                let pong = c
                    .ping(&payload)
                    .unwrap_or_else(|e| panic!("pinger: PING {k}: {e}"));
                let rtt = sent.elapsed();
                assert_eq!(pong, payload, "pinger: PONG {k} carries its PING's bytes");
                s.lock().unwrap().push(Rtt { sent, rtt });
            }
        });
        Pinger {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.samples.lock().unwrap().len()
    }

    /// Whether a round trip sent after `t` has completed.
    fn has_sample_after(&self, t: Instant) -> bool {
        self.samples
            .lock()
            .unwrap()
            .last()
            .is_some_and(|r| r.sent > t)
    }

    /// Stops the thread (propagating its panic) and returns every sample.
    fn finish(mut self) -> Vec<Rtt> {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(p) = self.thread.take().unwrap().join() {
            std::panic::resume_unwind(p);
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn four_hundred_connections_with_4096_subscriptions_each_close_together_without_stalling_a_loop() {
    // 400 rather than 200: on the engine before the fix, 200 connections
    // stalled a loop only once, for about 280 ms (just over the bound
    // below); 400 stall it for about 300 ms with p99 170 ms. After the fix
    // the worst round trip is about 2 ms either way.
    const CONNS: usize = 400;
    let _serial = serial();
    let engine = start(config(2));
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);

    // 400 connections subscribe to the same 4,096 topics.
    let names = topics("t");
    let mut clients: Vec<Client> = (0..CONNS).map(|_| connect(addr)).collect();
    subscribe_clients(&mut clients, &names, "subscriber");
    let s = engine.stats();
    assert_eq!(
        s.subscriptions,
        (CONNS * SUBS + 1) as u64,
        "every SUBACKed subscription is held, plus the healthy one"
    );
    assert_eq!(
        s.topics,
        SUBS as u64 + 1,
        "the 4,096 topics and the healthy one exist"
    );

    let pinger = Pinger::start(addr);
    let rest = engine.connections();
    assert_eq!(rest, CONNS + 3, "the 400, the healthy pair and the pinger");
    // A baseline of round trips before the close.
    assert!(
        wait_until(Duration::from_secs(5), || pinger.count() >= 20),
        "the pinger completed only {} round trips in 5 s before the teardown",
        pinger.count()
    );

    // All 400 close at once: 1,638,400 subscriptions to remove.
    let closed_at = Instant::now();
    drop(clients);
    let torn_down = wait_until(RECLAIM_TIMEOUT, || {
        engine.stats().subscriptions == 1 && engine.connections() == rest - CONNS
    });
    let done_at = Instant::now();
    assert!(
        torn_down,
        "{RECLAIM_TIMEOUT:?} after {CONNS} connections closed: {} subscriptions and {} connections \
         left (expected 1 and {}): closed connections must give back their subscriptions",
        engine.stats().subscriptions,
        engine.connections(),
        rest - CONNS
    );
    // Round trips during the teardown and just after it (so that there are
    // some even if the teardown took less than one pinger period).
    let window_end = done_at + Duration::from_millis(200);
    assert!(
        wait_until(Duration::from_secs(5), || pinger
            .has_sample_after(window_end)),
        "the pinger stopped completing round trips after the teardown"
    );
    let samples = pinger.finish();
    let mut during: Vec<Duration> = samples
        .iter()
        .filter(|r| r.sent + r.rtt >= closed_at && r.sent <= window_end)
        .map(|r| r.rtt)
        .collect();
    assert!(!during.is_empty(), "no PING round trip during the teardown");
    let n = during.len();
    let max = *during.iter().max().unwrap();
    let p99 = percentile(&mut during, 0.99);
    // The goal is about 1 ms of teardown work per loop turn. These bounds
    // are loose for a noisy 2-core CI VM (the reactors, the pinger, the
    // healthy pair and the test share two vCPUs) but far below the 1.8 s
    // round trips seen before the fix: max 250 ms, p99 100 ms.
    let teardown = done_at - closed_at;
    eprintln!(
        "teardown of {CONNS} x 4,096 subscriptions: {teardown:?}; {n} PING round trips in the \
         window, p99 {p99:?}, max {max:?}"
    );
    assert!(
        max < Duration::from_millis(250),
        "a PING round trip took {max:?} while {CONNS} connections with 4,096 subscriptions \
         each were torn down ({n} round trips in the window, p99 {p99:?}; teardown {teardown:?})"
    );
    assert!(
        p99 < Duration::from_millis(100),
        "PING round trips p99 {p99:?} (max {max:?}, {n} round trips) during the teardown \
         (which took {teardown:?})"
    );

    // Topics exist only while they have subscribers: the 4,096 are gone.
    assert!(
        wait_until(RECLAIM_TIMEOUT, || engine.stats().topics == 1),
        "{} topics after every subscriber of the 4,096 left (expected 1: the healthy one)",
        engine.stats().topics
    );

    healthy
        .finish()
        .assert_ok("400 connections x 4,096 subscriptions closing", P99_BOUND);
}

#[test]
fn unsubscribing_from_4096_topics_that_100_others_share_is_answered_in_order_and_fast() {
    const OTHERS: usize = 100;
    /// Every 64th topic is published to after the unsubscribes.
    const PROBE_EVERY: usize = 64;
    let _serial = serial();
    let engine = start(config(2));
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);
    let names = topics("u");

    // 50 others subscribe before the leaver and 50 after, so that it sits
    // in the middle of every topic's subscriber list: removing it moves
    // another subscriber into its place, whose bookkeeping must follow.
    let mut before: Vec<Client> = (0..OTHERS / 2).map(|_| connect(addr)).collect();
    subscribe_clients(&mut before, &names, "subscriber before");
    let mut leaver = connect(addr);
    subscribe_all(&mut leaver, &names, "leaver");
    let mut after: Vec<Client> = (0..OTHERS / 2).map(|_| connect(addr)).collect();
    subscribe_clients(&mut after, &names, "subscriber after");
    assert_eq!(
        engine.stats().subscriptions,
        ((OTHERS + 1) * SUBS + 1) as u64
    );

    // 4,096 UNSUBSCRIBEs in one write; the UNSUBACKs come back in order.
    let t0 = Instant::now();
    leaver.send_raw(&pipeline(&names, false)).unwrap();
    for (i, t) in names.iter().enumerate() {
        match leaver.next_frame() {
            Ok(OwnedServerFrame::UnsubAck { topic }) if topic == *t => {}
            other => panic!("UNSUBACK {i} (for {t}) expected, got {other:?}"),
        }
    }
    let took = t0.elapsed();
    eprintln!("4,096 pipelined UNSUBSCRIBEs answered in {took:?}");
    // O(1) per UNSUBSCRIBE: 4,096 of them are a few ms of engine work; 2 s
    // leaves room for a noisy CI VM. (At 4,096 subscriptions the old linear
    // scans cost about as little: what this test mostly guards is the
    // bookkeeping of the subscribers moved by each removal, checked below.)
    assert!(
        took < Duration::from_secs(2),
        "4,096 pipelined UNSUBSCRIBEs took {took:?} to be answered"
    );
    assert_eq!(
        engine.stats().subscriptions,
        (OTHERS * SUBS + 1) as u64,
        "each UNSUBACK gave back one subscription"
    );

    // The 100 others still get what is published on those topics; the
    // leaver gets none of it.
    let probes: Vec<&String> = names.iter().step_by(PROBE_EVERY).collect();
    let mut publisher = connect(addr);
    for t in &probes {
        publisher.publish(t, t.as_bytes()).unwrap();
    }
    publisher.ping(b"all published").unwrap();
    let want: BTreeSet<String> = probes.iter().map(|t| t.to_string()).collect();
    std::thread::scope(|s| {
        for (k, chunk) in before
            .chunks_mut(25)
            .chain(after.chunks_mut(25))
            .enumerate()
        {
            let want = &want;
            s.spawn(move || {
                for (i, c) in chunk.iter_mut().enumerate() {
                    let got: BTreeSet<String> = (0..want.len())
                        .map(|j| {
                            let m = c.next_message().unwrap_or_else(|e| {
                                panic!("other subscriber {k}/{i}: message {j}: {e}")
                            });
                            assert_eq!(m.payload, m.topic.as_bytes());
                            m.topic
                        })
                        .collect();
                    assert_eq!(
                        &got, want,
                        "other subscriber {k}/{i}: one frame per probed topic"
                    );
                }
            });
        }
    });
    // Every core has delivered the probes by now, so the leaver's PONG comes
    // behind anything that was queued for it; the client keeps DATA that
    // arrives before a reply, and hands it out first.
    assert_eq!(leaver.ping(b"nothing else").unwrap(), b"nothing else");
    leaver
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    match leaver.next_frame() {
        Err(e) if e.is_recoverable() => {} // nothing was queued ahead of the PONG
        other => panic!("the leaver got {other:?} after unsubscribing from everything"),
    }

    // Everyone leaves: every subscription and every topic is reclaimed,
    // which needs the bookkeeping of the moved subscribers to be right.
    drop(before);
    drop(after);
    drop(leaver);
    drop(publisher);
    assert!(
        wait_until(RECLAIM_TIMEOUT, || {
            let s = engine.stats();
            s.subscriptions == 1 && s.topics == 1
        }),
        "after everyone left: {:?} subscriptions, {} topics (expected 1 and 1)",
        engine.stats().subscriptions,
        engine.stats().topics
    );

    healthy
        .finish()
        .assert_ok("4,096 pipelined UNSUBSCRIBEs", P99_BOUND);
}

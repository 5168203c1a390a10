//! Serialize once (PROTOCOL.md, Goals: "a DATA frame for a topic is the same
//! bytes for every subscriber of that topic, so the engine serializes it
//! once"): with 1,000 subscribers spread over two reactors, 500 publishes
//! cost exactly 500 encodes, and one delivery per subscriber per frame.

mod common;

use ringcast_client::Client;
use std::thread;
use std::time::Duration;

const SUBSCRIBERS: usize = 1_000;
const PUBLISHES: usize = 500;
const READER_THREADS: usize = 4;
const TOPIC: &str = "once";

fn payload(i: usize) -> Vec<u8> {
    format!("frame {i:05} {}", "x".repeat(i % 50)).into_bytes()
}

fn read_all(subs: Vec<(usize, Client)>) -> usize {
    let n = subs.len();
    for (id, mut sub) in subs {
        for k in 0..PUBLISHES {
            let m = sub
                .next_message()
                .unwrap_or_else(|e| panic!("subscriber {id}, frame {k}: {e}"));
            assert_eq!(m.seq, k as u64 + 1, "subscriber {id}");
            assert!(m.payload == payload(k), "subscriber {id}, seq {}", m.seq);
        }
    }
    n
}

#[test]
fn each_publish_is_encoded_once_and_delivered_to_every_subscriber() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();

    let mut groups: Vec<Vec<(usize, Client)>> = (0..READER_THREADS).map(|_| Vec::new()).collect();
    for id in 0..SUBSCRIBERS {
        let mut sub = common::connect(addr);
        assert_eq!(sub.subscribe(TOPIC).unwrap().next_seq, 1, "subscriber {id}");
        groups[id % READER_THREADS].push((id, sub));
    }
    let before = engine.stats();
    assert_eq!(
        (before.encodes, before.deliveries),
        (0, 0),
        "nothing published yet"
    );

    let readers: Vec<_> = groups
        .into_iter()
        .map(|g| thread::spawn(move || read_all(g)))
        .collect();
    let mut publisher = common::connect(addr);
    for i in 0..PUBLISHES {
        publisher.publish(TOPIC, &payload(i)).unwrap();
    }
    publisher.ping(b"").unwrap();
    let read: usize = readers
        .into_iter()
        .map(|r| r.join().expect("a reader failed (see its panic above)"))
        .sum();
    assert_eq!(read, SUBSCRIBERS);

    // Every frame has reached every subscriber, so the counters are final;
    // the wait only covers the counters' cross-thread visibility.
    let expected = (PUBLISHES * SUBSCRIBERS) as u64;
    common::wait_until(Duration::from_secs(5), || {
        let s = engine.stats();
        s.deliveries >= expected && s.encodes >= PUBLISHES as u64
    });
    let stats = engine.stats();
    assert_eq!(stats.publishes, PUBLISHES as u64);
    assert_eq!(
        stats.encodes, PUBLISHES as u64,
        "one encode per publish, however many subscribers and reactors"
    );
    assert_eq!(
        stats.deliveries, expected,
        "one delivery per subscriber per frame"
    );
}

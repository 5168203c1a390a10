//! Fan-out at scale: one publisher bursts 1,000 frames at 1,000 subscribers
//! of one topic on a 2-reactor engine; every subscriber must get every frame,
//! in order, with contiguous seqs and the payload intact (PROTOCOL.md, Goals:
//! "a subscriber either receives every frame of a topic in order, or is told
//! why it is cut off").

mod common;

use ringcast_client::Client;
use std::thread;

const SUBSCRIBERS: usize = 1_000;
const FRAMES: usize = 1_000;
const READER_THREADS: usize = 4;
const TOPIC: &str = "burst.all";

/// Frame `i`'s payload: its index, then a pattern of a length that varies
/// with `i` (8 to 200 bytes in all), so a mix-up or a torn frame shows.
fn payload(i: usize) -> Vec<u8> {
    let mut p = (i as u64).to_le_bytes().to_vec();
    p.extend((0..(i * 7) % 193).map(|j| (i * 31 + j * 17) as u8));
    p
}

/// Reads all frames from each subscriber in turn; returns how many it checked.
fn read_all(subs: Vec<(usize, Client, u64)>) -> usize {
    let mut checked = 0;
    for (id, mut sub, next_seq) in subs {
        for k in 0..FRAMES {
            let m = sub
                .next_message()
                .unwrap_or_else(|e| panic!("subscriber {id}, frame {k} of {FRAMES}: {e}"));
            assert_eq!(m.topic, TOPIC, "subscriber {id}, frame {k}");
            assert_eq!(
                m.seq,
                next_seq + k as u64,
                "subscriber {id}: seq not contiguous from SUBACK next_seq {next_seq}"
            );
            assert!(
                m.payload == payload(k),
                "subscriber {id}, seq {}: payload differs from frame {k} as published \
                 (got {} bytes, starting {:?})",
                m.seq,
                m.payload.len(),
                &m.payload[..m.payload.len().min(8)]
            );
        }
        checked += 1;
    }
    checked
}

#[test]
fn every_subscriber_gets_every_frame_in_order() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();

    let mut groups: Vec<Vec<(usize, Client, u64)>> =
        (0..READER_THREADS).map(|_| Vec::new()).collect();
    for id in 0..SUBSCRIBERS {
        let mut sub = common::connect(addr);
        let ack = sub
            .subscribe(TOPIC)
            .unwrap_or_else(|e| panic!("subscriber {id}: subscribe: {e}"));
        assert_eq!(
            ack.next_seq, 1,
            "subscriber {id} subscribed before any publish"
        );
        groups[id % READER_THREADS].push((id, sub, ack.next_seq));
    }

    let readers: Vec<_> = groups
        .into_iter()
        .map(|g| thread::spawn(move || read_all(g)))
        .collect();

    let mut publisher = common::connect(addr);
    for i in 0..FRAMES {
        publisher.publish(TOPIC, &payload(i)).unwrap();
    }
    publisher.ping(b"done").unwrap();

    let mut checked = 0;
    for r in readers {
        checked += r
            .join()
            .expect("a reader thread failed (see its panic above)");
    }
    assert_eq!(checked, SUBSCRIBERS);
    let stats = engine.stats();
    assert_eq!(stats.publishes, FRAMES as u64);
    assert_eq!(stats.slow_consumers_total(), 0);
}

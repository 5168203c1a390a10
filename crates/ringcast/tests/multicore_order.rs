//! Ordering across reactors: four publishers on their own connections (and so,
//! most likely, on different reactors) publish at once to the same three
//! topics. Per topic, seq is one sequence whichever core a PUBLISH came in on
//! (PROTOCOL.md, `seq`), so every subscriber must see the same frames in the
//! same order, numbered without gaps or repeats, and each publisher's frames
//! in the order it sent them.

mod common;

use ringcast_client::Client;
use std::thread;

const CORES: usize = 4;
const PUBLISHERS: usize = 4;
const TOPICS: [&str; 3] = ["order.a", "order.b", "order.c"];
const SUBSCRIBERS: usize = 200;
/// Frames each publisher sends to each topic.
const PER_PUBLISHER: u32 = 1_000;
const PER_TOPIC: usize = PUBLISHERS * PER_PUBLISHER as usize;
const READER_THREADS: usize = 4;

/// Publisher `p`'s `i`-th frame on topic `t`: who, where and which, plus filler.
fn payload(p: usize, t: usize, i: u32) -> Vec<u8> {
    let mut v = vec![p as u8, t as u8];
    v.extend_from_slice(&i.to_le_bytes());
    v.extend(std::iter::repeat(0x5A ^ p as u8).take(10 + (i as usize % 23)));
    v
}

/// The (publisher, counter) a payload names, after checking it is intact.
fn origin(topic: usize, bytes: &[u8]) -> (usize, u32) {
    assert!(bytes.len() >= 6, "payload too short: {bytes:?}");
    let (p, t) = (bytes[0] as usize, bytes[1] as usize);
    let i = u32::from_le_bytes(bytes[2..6].try_into().unwrap());
    assert!(
        p < PUBLISHERS && i < PER_PUBLISHER,
        "unknown payload {bytes:?}"
    );
    assert_eq!(
        t, topic,
        "a frame published on {} arrived as {}",
        TOPICS[t], TOPICS[topic]
    );
    assert_eq!(bytes, payload(p, t, i), "payload of {p}/{i} altered");
    (p, i)
}

/// Everything one subscriber saw: per topic, the origins in seq order.
type Seen = Vec<Vec<(usize, u32)>>;

/// Reads every frame of every topic from each subscriber in turn.
fn read_all(subs: Vec<(usize, Client, [u64; 3])>) -> Vec<(usize, Seen)> {
    let mut out = Vec::new();
    for (id, mut sub, next_seq) in subs {
        let mut seen: Seen = vec![Vec::with_capacity(PER_TOPIC); TOPICS.len()];
        for k in 0..PER_TOPIC * TOPICS.len() {
            let m = sub
                .next_message()
                .unwrap_or_else(|e| panic!("subscriber {id}, frame {k}: {e}"));
            let t = TOPICS
                .iter()
                .position(|&t| t == m.topic)
                .unwrap_or_else(|| panic!("subscriber {id}: DATA of unknown topic {:?}", m.topic));
            let expected = next_seq[t] + seen[t].len() as u64;
            assert_eq!(
                m.seq, expected,
                "subscriber {id}, topic {}: seq jumps or repeats (SUBACK next_seq {})",
                TOPICS[t], next_seq[t]
            );
            assert!(
                seen[t].len() < PER_TOPIC,
                "subscriber {id}: more than {PER_TOPIC} frames of {}",
                TOPICS[t]
            );
            seen[t].push(origin(t, &m.payload));
        }
        out.push((id, seen));
    }
    out
}

#[test]
fn concurrent_publishers_yield_one_order_per_topic_for_every_subscriber() {
    let engine = common::start(common::config(CORES));
    let addr = engine.local_addr();

    let mut groups: Vec<Vec<(usize, Client, [u64; 3])>> =
        (0..READER_THREADS).map(|_| Vec::new()).collect();
    for id in 0..SUBSCRIBERS {
        let mut sub = common::connect(addr);
        let mut next_seq = [0u64; 3];
        for (t, topic) in TOPICS.iter().enumerate() {
            next_seq[t] = sub
                .subscribe(topic)
                .unwrap_or_else(|e| panic!("subscriber {id}: subscribe {topic}: {e}"))
                .next_seq;
            assert_eq!(next_seq[t], 1, "subscriber {id}: {topic} is fresh");
        }
        groups[id % READER_THREADS].push((id, sub, next_seq));
    }
    let readers: Vec<_> = groups
        .into_iter()
        .map(|g| thread::spawn(move || read_all(g)))
        .collect();

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let mut c = common::connect(addr);
            thread::spawn(move || {
                for i in 0..PER_PUBLISHER {
                    for (t, topic) in TOPICS.iter().enumerate() {
                        c.publish(topic, &payload(p, t, i))
                            .unwrap_or_else(|e| panic!("publisher {p}: {e}"));
                    }
                }
                c.ping(b"done")
                    .unwrap_or_else(|e| panic!("publisher {p}: {e}"));
            })
        })
        .collect();
    for p in publishers {
        p.join().expect("a publisher failed (see its panic above)");
    }

    let mut all: Vec<(usize, Seen)> = Vec::new();
    for r in readers {
        all.extend(r.join().expect("a reader failed (see its panic above)"));
    }
    assert_eq!(all.len(), SUBSCRIBERS);
    all.sort_by_key(|(id, _)| *id);

    // One subscriber's view, checked against what each publisher sent...
    let (first_id, reference) = &all[0];
    for (t, frames) in reference.iter().enumerate() {
        assert_eq!(frames.len(), PER_TOPIC);
        let mut next = [0u32; PUBLISHERS];
        for (k, &(p, i)) in frames.iter().enumerate() {
            assert_eq!(
                i,
                next[p],
                "subscriber {first_id}, topic {}, seq {}: publisher {p}'s frame {i} \
                 where its frame {} was due (its frames out of order or lost)",
                TOPICS[t],
                k + 1,
                next[p]
            );
            next[p] += 1;
        }
    }
    // ...and every other view identical to it.
    for (id, seen) in &all[1..] {
        for t in 0..TOPICS.len() {
            if let Some(k) = (0..PER_TOPIC).find(|&k| seen[t][k] != reference[t][k]) {
                panic!(
                    "topic {}, seq {}: subscriber {id} got publisher/frame {:?}, \
                     subscriber {first_id} got {:?}",
                    TOPICS[t],
                    k + 1,
                    seen[t][k],
                    reference[t][k]
                );
            }
        }
    }
    assert_eq!(engine.stats().publishes, (PER_TOPIC * TOPICS.len()) as u64);
}

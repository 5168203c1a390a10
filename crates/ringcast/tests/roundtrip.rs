//! One publisher, one subscriber, one engine on loopback: what every user
//! relies on first (PROTOCOL.md, "Kinds" and the rules under them): DATA
//! carries the published bytes with a per-topic seq from 1 and an accept-time
//! stamp, SUBACK tells where a subscription starts, and replies come in order.

mod common;

use ringcast::proto::ClientFrame;
use ringcast_client::{Client, OwnedServerFrame};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far `ts_ns` may stray from the test's own clock readings around it.
const CLOCK_SLACK: Duration = Duration::from_secs(3);

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn encode(frame: ClientFrame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}

/// Sends a PING written by hand and asserts that the very next frame on the
/// connection is its PONG: no DATA was queued for this connection before it.
fn assert_next_frame_is_pong(client: &mut Client, token: &[u8], why: &str) {
    client
        .send_raw(&encode(ClientFrame::Ping { payload: token }))
        .unwrap();
    let frame = client.next_frame().unwrap();
    assert_eq!(
        frame,
        OwnedServerFrame::Pong {
            payload: token.to_vec()
        },
        "{why}"
    );
}

#[test]
fn publish_is_delivered_with_topic_payload_seq_from_1_and_realtime_stamp() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();
    let mut sub = common::connect(addr);
    let mut publisher = common::connect(addr);

    let ack = sub.subscribe("prices.eurusd").unwrap();
    assert_eq!(ack.next_seq, 1, "a fresh topic starts at seq 1");

    let payloads: [&[u8]; 4] = [b"1.0842", b"", &[0, 255, 10, 13, 0x7f, 0x80], &[0xAB; 5000]];
    let before = now_ns();
    for p in payloads {
        publisher.publish("prices.eurusd", p).unwrap();
    }
    let mut got = Vec::new();
    for _ in payloads {
        got.push(sub.next_message().unwrap());
    }
    let after = now_ns();

    for (i, (m, p)) in got.iter().zip(payloads).enumerate() {
        assert_eq!(m.topic, "prices.eurusd");
        assert_eq!(m.seq, i as u64 + 1, "seq counts 1, 2, 3, ... per topic");
        assert_eq!(m.payload, p, "payload of seq {} unchanged", m.seq);
        let slack = CLOCK_SLACK.as_nanos() as u64;
        assert!(
            m.ts_ns + slack >= before && m.ts_ns <= after + slack,
            "ts_ns {} of seq {} is not CLOCK_REALTIME near [{before}, {after}]",
            m.ts_ns,
            m.seq
        );
    }

    // A later subscription starts right after the last published frame.
    let mut late = common::connect(addr);
    let ack = late.subscribe("prices.eurusd").unwrap();
    assert_eq!(ack.next_seq, payloads.len() as u64 + 1);
    publisher.publish("prices.eurusd", b"next").unwrap();
    let m = late.next_message().unwrap();
    assert_eq!((m.seq, m.payload.as_slice()), (ack.next_seq, &b"next"[..]));
    let m = sub.next_message().unwrap();
    assert_eq!((m.seq, m.payload.as_slice()), (ack.next_seq, &b"next"[..]));
    // While the topic lives its epoch stays; another topic has its own.
    assert_eq!(sub.subscribe("prices.eurusd").unwrap().epoch, ack.epoch);
    assert_ne!(sub.subscribe("other").unwrap().epoch, ack.epoch);
}

#[test]
fn a_publish_without_subscribers_reaches_nobody_and_takes_no_seq() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();
    let mut publisher = common::connect(addr);
    for i in 0..5u8 {
        publisher.publish("lonely", &[i]).unwrap();
    }
    // The PONG comes after the server has read (and accepted) all five.
    publisher.ping(b"sync").unwrap();
    assert_eq!(engine.stats().publishes, 5, "accepted");
    assert_eq!(engine.stats().topics, 0, "publishing creates no topic");

    let mut sub = common::connect(addr);
    let ack = sub.subscribe("lonely").unwrap();
    assert_eq!(
        ack.next_seq, 1,
        "a topic exists from its first subscriber: the five publishes took no seq"
    );
    assert_eq!(engine.stats().topics, 1);
    publisher.publish("lonely", b"sixth").unwrap();
    let m = sub.next_message().unwrap();
    assert_eq!((m.seq, m.payload.as_slice()), (1, &b"sixth"[..]));
}

#[test]
fn a_connection_receives_its_own_publishes() {
    let engine = common::start(common::config(2));
    let mut c = common::connect(engine.local_addr());
    assert_eq!(c.subscribe("echo").unwrap().next_seq, 1);
    c.publish("echo", b"one").unwrap();
    c.publish("echo", b"two").unwrap();
    let a = c.next_message().unwrap();
    let b = c.next_message().unwrap();
    assert_eq!(
        (a.topic.as_str(), a.seq, a.payload.as_slice()),
        ("echo", 1, &b"one"[..])
    );
    assert_eq!(
        (b.topic.as_str(), b.seq, b.payload.as_slice()),
        ("echo", 2, &b"two"[..])
    );
}

#[test]
fn subscribing_twice_answers_suback_again_and_delivers_once() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();
    let mut sub = common::connect(addr);
    let mut publisher = common::connect(addr);

    let first = sub.subscribe("dup").unwrap();
    assert_eq!(first.next_seq, 1);
    let second = sub.subscribe("dup").unwrap();
    assert_eq!(second, first, "a repeated SUBSCRIBE changes nothing");

    for i in 1..=3u8 {
        publisher.publish("dup", &[i]).unwrap();
    }
    publisher.ping(b"").unwrap();
    for seq in 1..=3u64 {
        let m = sub.next_message().unwrap();
        assert_eq!((m.seq, m.payload.as_slice()), (seq, &[seq as u8][..]));
    }
    assert_next_frame_is_pong(
        &mut sub,
        b"after 3",
        "a second copy of a DATA frame arrived",
    );

    // Any duplicate of seq 1 to 3 would come before the next frame of the topic.
    publisher.publish("dup", b"marker").unwrap();
    let m = sub.next_message().unwrap();
    assert_eq!(
        (m.seq, m.payload.as_slice()),
        (4, &b"marker"[..]),
        "expected the marker right after seq 3, with no second copy of anything"
    );
}

#[test]
fn after_unsuback_no_data_of_that_topic_arrives() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();
    let mut sub = common::connect(addr);
    let mut publisher = common::connect(addr);
    // Another subscriber keeps the topic (and its sequence) alive while
    // `sub` is away.
    let mut keeper = common::connect(addr);
    let first = keeper.subscribe("gone").unwrap();

    let ack = sub.subscribe("gone").unwrap();
    assert_eq!((ack.next_seq, ack.epoch), (1, first.epoch));
    publisher.publish("gone", b"kept").unwrap();
    let m = sub.next_message().unwrap();
    assert_eq!((m.seq, m.payload.as_slice()), (1, &b"kept"[..]));

    sub.unsubscribe("gone").unwrap();
    for i in 0..3u8 {
        publisher.publish("gone", &[i]).unwrap();
    }
    // The publisher's PONG first (its publishes were accepted), then the
    // subscriber's: nothing of "gone" may come before it.
    publisher.ping(b"").unwrap();
    assert_next_frame_is_pong(&mut sub, b"unsubscribed", "DATA arrived after UNSUBACK");

    // Subscribe again: the stream restarts at next_seq, and anything the
    // unsubscribed connection was wrongly sent (seq 2 to 4) would come first.
    let ack = sub.subscribe("gone").unwrap();
    publisher.publish("gone", b"marker").unwrap();
    let mut seq = ack.next_seq;
    loop {
        let m = sub.next_message().unwrap();
        assert_eq!(m.topic, "gone");
        assert_eq!(
            m.seq, seq,
            "after resubscribing, frames start at SUBACK next_seq {} without gaps",
            ack.next_seq
        );
        if m.payload == b"marker" {
            break;
        }
        seq += 1;
    }
    // Seqs 2 to 4 were given before the resubscription; they may still be
    // on their way from the topic's owner reactor to this connection's when
    // the SUBACK is made (then they follow it, from next_seq, as checked
    // above), but the sequence goes on: no restart, nothing sent twice.
    assert!(
        (2..=5).contains(&ack.next_seq) && ack.epoch == first.epoch,
        "the resubscription continues the topic's sequence: {ack:?}, first epoch {}",
        first.epoch
    );
    for seq in 1..=5 {
        assert_eq!(
            keeper.next_message().unwrap().seq,
            seq,
            "the keeper got all"
        );
    }
}

#[test]
fn unsubscribing_a_topic_not_subscribed_answers_unsuback() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();
    let mut c = common::connect(addr);
    c.unsubscribe("never.seen").unwrap();

    // A topic that exists (someone else subscribes) but not on this connection.
    let mut other = common::connect(addr);
    other.subscribe("busy").unwrap();
    c.unsubscribe("busy").unwrap();

    // Both connections still work, and the other subscription is intact.
    assert_eq!(c.ping(b"ok").unwrap(), b"ok");
    c.publish("busy", b"still").unwrap();
    let m = other.next_message().unwrap();
    assert_eq!((m.seq, m.payload.as_slice()), (1, &b"still"[..]));
}

#[test]
fn ping_answers_pong_with_the_same_bytes() {
    let engine = common::start(common::config(2));
    let mut c = common::connect(engine.local_addr());
    let full: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(37)).collect();
    for payload in [&b""[..], b"x", &[0, 0xFF, 0x10, 0x1F], &full] {
        assert_eq!(c.ping(payload).unwrap(), payload);
    }
}

#[test]
fn replies_come_in_request_order() {
    let engine = common::start(common::config(2));
    let mut c = common::connect(engine.local_addr());

    // Eight requests in one write, so the server sees them all at once.
    let requests = [
        ClientFrame::Subscribe { topic: "a" },
        ClientFrame::Ping { payload: b"1" },
        ClientFrame::Subscribe { topic: "b" },
        ClientFrame::Unsubscribe { topic: "a" },
        ClientFrame::Ping { payload: b"2" },
        ClientFrame::Unsubscribe { topic: "never" },
        ClientFrame::Auth { token: b"unused" },
        ClientFrame::Ping { payload: b"3" },
    ];
    let mut batch = Vec::new();
    for r in &requests {
        r.encode(&mut batch);
    }
    c.send_raw(&batch).unwrap();

    let mut replies = Vec::new();
    for _ in &requests {
        replies.push(c.next_frame().unwrap());
    }
    let epoch = match &replies[0] {
        OwnedServerFrame::SubAck { epoch, .. } => *epoch,
        other => panic!("first reply should be SUBACK a, got {other:?} (all: {replies:?})"),
    };
    // Each topic has its own epoch (the incarnation of its sequence).
    let epoch_b = match &replies[2] {
        OwnedServerFrame::SubAck { epoch, .. } => *epoch,
        other => panic!("third reply should be SUBACK b, got {other:?} (all: {replies:?})"),
    };
    let expected = vec![
        OwnedServerFrame::SubAck {
            topic: "a".into(),
            next_seq: 1,
            epoch,
        },
        OwnedServerFrame::Pong {
            payload: b"1".to_vec(),
        },
        OwnedServerFrame::SubAck {
            topic: "b".into(),
            next_seq: 1,
            epoch: epoch_b,
        },
        OwnedServerFrame::UnsubAck { topic: "a".into() },
        OwnedServerFrame::Pong {
            payload: b"2".to_vec(),
        },
        OwnedServerFrame::UnsubAck {
            topic: "never".into(),
        },
        OwnedServerFrame::AuthOk,
        OwnedServerFrame::Pong {
            payload: b"3".to_vec(),
        },
    ];
    assert_eq!(replies, expected);
}

#[test]
fn with_idle_spin_frames_flow_across_cores_and_an_idle_engine_parks() {
    idle_spin_delivers_and_parks(false);
}

#[test]
fn with_fixed_idle_spin_frames_flow_across_cores_and_an_idle_engine_parks() {
    idle_spin_delivers_and_parks(true);
}

/// A steady stream (so adaptive polling predicts it and parks with
/// timeouts), then a burst, across cores; then nothing: the reactors must
/// park, not poll on.
fn idle_spin_delivers_and_parks(fixed: bool) {
    let mut cfg = common::config(2);
    cfg.idle_spin = Duration::from_millis(2);
    cfg.idle_spin_fixed = fixed;
    let engine = common::start(cfg);
    let addr = engine.local_addr();
    let mut sub = common::connect(addr);
    let mut publisher = common::connect(addr);
    // Four topics: with two cores, some are owned by the other core.
    let topics = ["spin.a", "spin.b", "spin.c", "spin.d"];
    for t in topics {
        sub.subscribe(t).unwrap();
    }
    for i in 0..200u32 {
        publisher
            .publish(topics[i as usize % 4], &i.to_le_bytes())
            .unwrap();
        if i < 100 {
            // Paced, not timed: the first half is a steady 1 ms stream.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut seen = [false; 200];
    let mut next_seq = [1u64; 4];
    for _ in 0..200 {
        let m = sub.next_message().unwrap();
        let t = topics.iter().position(|t| *t == m.topic).unwrap();
        assert_eq!(m.seq, next_seq[t], "in order per topic");
        next_seq[t] += 1;
        seen[u32::from_le_bytes(m.payload[..4].try_into().unwrap()) as usize] = true;
    }
    assert!(seen.iter().all(|s| *s), "every publish delivered once");
    // Once input stops, the reactors park again: then only the 50 ms tick
    // wakes them (a few loop turns per 200 ms), where a polling reactor
    // turns thousands of times.
    let loops = || engine.stats().cores.iter().map(|c| c.loops).sum::<u64>();
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            let before = loops();
            std::thread::sleep(Duration::from_millis(200));
            loops() - before < 100
        }),
        "an idle engine with --idle-spin parks"
    );
}

//! Isolation, finding 2: nobody can fill the topic table (issue 9).
//!
//! A topic exists only while at least one connection subscribes to it. A
//! PUBLISH to a topic nobody subscribes to is accepted (counted), delivered
//! to nobody, and creates nothing, so it never meets `max_topics`. The last
//! subscriber leaving reclaims the topic; subscribed again, it restarts at
//! seq 1 with a larger epoch, so a client tells "sequence restarted" from
//! "frames lost". `max_topics` still bounds topics with subscribers
//! (ERROR 4 and close for the SUBSCRIBE past it).

mod common;

use common::healthy::{Healthy, P99_BOUND};
use common::{config, connect, expect_closed, start, wait_until};
use ringcast::proto::ClientFrame;
use ringcast::topic::owner_of;
use ringcast::{Config, Engine};
use ringcast_client::{Client, ClientError, OwnedServerFrame};
use std::time::Duration;

/// How long the engine may take to reclaim topics whose last subscriber left.
const RECLAIM_TIMEOUT: Duration = Duration::from_secs(5);

fn engine(max_topics: usize) -> Engine {
    start(Config {
        max_topics,
        ..config(2)
    })
}

/// SUBSCRIBEs to every name in one write and reads the SUBACKs, in order;
/// returns each (next_seq, epoch). Any other reply fails the test.
fn subscribe_all(c: &mut Client, names: &[String], what: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for t in names {
        ClientFrame::Subscribe { topic: t }.encode(&mut out);
    }
    c.send_raw(&out)
        .unwrap_or_else(|e| panic!("{what}: sending {} SUBSCRIBEs: {e}", names.len()));
    names
        .iter()
        .enumerate()
        .map(|(i, t)| match c.next_frame() {
            Ok(OwnedServerFrame::SubAck {
                topic,
                next_seq,
                epoch,
            }) if topic == *t => (next_seq, epoch),
            other => panic!("{what}: SUBSCRIBE #{i} ({t}): expected its SUBACK, got {other:?}"),
        })
        .collect()
}

/// Waits until only the healthy topic is left, every other one reclaimed.
fn assert_only_healthy_topic_left(engine: &Engine, what: &str) {
    assert!(
        wait_until(RECLAIM_TIMEOUT, || {
            let s = engine.stats();
            s.topics == 1 && s.topics_created == s.topics_reclaimed + 1
        }),
        "{what}: topics whose subscribers all left were not reclaimed: {:?}",
        engine.stats()
    );
}

#[test]
fn churn_and_publishes_to_fresh_names_do_not_fill_the_topic_table() {
    const WHAT: &str = "topic churn";
    const NAMES: usize = 20_000;
    const BATCH: usize = 500;
    let engine = engine(1000);
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);

    std::thread::scope(|s| {
        // 20,000 topics created by a SUBSCRIBE and left by its UNSUBSCRIBE.
        let churn = s.spawn(|| {
            let mut churn = connect(addr);
            let names: Vec<String> = (0..NAMES).map(|i| format!("churn.{i}")).collect();
            for batch in names.chunks(BATCH) {
                let mut out = Vec::new();
                for t in batch {
                    ClientFrame::Subscribe { topic: t }.encode(&mut out);
                    ClientFrame::Unsubscribe { topic: t }.encode(&mut out);
                }
                churn
                    .send_raw(&out)
                    .unwrap_or_else(|e| panic!("churn: {e}"));
                for t in batch {
                    match churn.next_frame() {
                        Ok(OwnedServerFrame::SubAck {
                            topic, next_seq, ..
                        }) if topic == *t => assert_eq!(
                            next_seq, 1,
                            "churn: SUBACK of {t}, never published to, starts at seq 1"
                        ),
                        other => panic!("churn: SUBSCRIBE {t}: expected its SUBACK, got {other:?}"),
                    }
                    match churn.next_frame() {
                        Ok(OwnedServerFrame::UnsubAck { topic }) if topic == *t => {}
                        other => {
                            panic!("churn: UNSUBSCRIBE {t}: expected its UNSUBACK, got {other:?}")
                        }
                    }
                }
            }
        });
        // 20,000 PUBLISHes, each to a name nobody subscribes to.
        let spray = s.spawn(|| {
            let mut spray = connect(addr);
            for i in 0..NAMES {
                spray
                    .publish(&format!("spray.{i}"), b"to nobody")
                    .unwrap_or_else(|e| {
                        panic!("spray: PUBLISH #{i} to a topic without subscribers: {e}")
                    });
            }
            // Replies come in order: once the PONG is here, every PUBLISH
            // was read and accepted without an ERROR.
            spray
                .ping(b"all read")
                .unwrap_or_else(|e| panic!("spray: PING after {NAMES} PUBLISHes: {e}"));
        });
        for h in [churn, spray] {
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        }
    });

    assert_only_healthy_topic_left(&engine, WHAT);
    let s = engine.stats();
    assert!(
        s.topics_reclaimed >= NAMES as u64,
        "{WHAT}: {} topics reclaimed, expected at least {NAMES} ({s:?})",
        s.topics_reclaimed
    );
    assert_eq!(s.errors[4], 0, "{WHAT}: ERROR 4 sent ({s:?})");

    // The table did not fill: 500 new topics for a newcomer.
    let mut newcomer = connect(addr);
    let names: Vec<String> = (0..500).map(|i| format!("fresh.{i}")).collect();
    for (t, (next_seq, _)) in names.iter().zip(subscribe_all(&mut newcomer, &names, WHAT)) {
        assert_eq!(next_seq, 1, "{WHAT}: SUBACK of the new topic {t}");
    }
    assert!(
        wait_until(RECLAIM_TIMEOUT, || engine.stats().topics == 501),
        "{WHAT}: expected the healthy topic and 500 new ones: {:?}",
        engine.stats()
    );

    let report = healthy.finish();
    report.assert_ok(WHAT, P99_BOUND);
    let s = engine.stats();
    let healthy_frames = report.warm_up + report.published;
    assert_eq!(
        s.publishes,
        NAMES as u64 + healthy_frames,
        "{WHAT}: every PUBLISH to a topic without subscribers is accepted and counted"
    );
    assert_eq!(
        s.deliveries, healthy_frames,
        "{WHAT}: PUBLISHes to topics without subscribers are delivered to nobody"
    );
    assert_eq!(
        s.errors.iter().sum::<u64>(),
        0,
        "{WHAT}: ERRORs {:?}",
        s.errors
    );
}

#[test]
fn a_reclaimed_topic_restarts_at_seq_1_with_a_larger_epoch() {
    const WHAT: &str = "epoch";
    let engine = engine(1000);
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);

    // 16 names, 8 owned by each core. Each step uses fresh connections,
    // which SO_REUSEPORT spreads over both cores: between them, the 64
    // connections below subscribe and publish from both cores to topics
    // owned by both.
    let names: Vec<String> = {
        let mut by_owner = [Vec::new(), Vec::new()];
        for i in 0.. {
            let n = format!("epoch.{i}");
            let o = owner_of(n.as_bytes(), 2);
            if by_owner[o].len() < 8 {
                by_owner[o].push(n);
            }
            if by_owner.iter().all(|v| v.len() == 8) {
                break;
            }
        }
        by_owner.concat()
    };

    for t in &names {
        let what = format!("{WHAT}: topic {t}");
        let mut publisher = connect(addr);
        let mut a = connect(addr);
        let first = a.subscribe(t).unwrap();
        assert_eq!(first.next_seq, 1, "{what}: first SUBACK");
        for k in 1..=3u64 {
            publisher.publish(t, format!("{t}/{k}").as_bytes()).unwrap();
        }
        for k in 1..=3u64 {
            let m = a.next_message().unwrap();
            assert_eq!(
                (m.seq, m.payload),
                (k, format!("{t}/{k}").into_bytes()),
                "{what}: A's frame {k}"
            );
        }
        // A second subscriber while the topic lives: same run, next seq.
        let mut b = connect(addr);
        let second = b.subscribe(t).unwrap();
        assert_eq!(
            (second.next_seq, second.epoch),
            (4, first.epoch),
            "{what}: SUBACK of a second subscriber while the first stays"
        );
        publisher.publish(t, b"4").unwrap();
        for (who, c) in [("A", &mut a), ("B", &mut b)] {
            let m = c.next_message().unwrap();
            assert_eq!(
                (m.seq, m.payload.as_slice()),
                (4, &b"4"[..]),
                "{what}: {who}'s frame 4"
            );
        }
        a.unsubscribe(t).unwrap();
        b.unsubscribe(t).unwrap();
        assert_only_healthy_topic_left(&engine, &what);

        // Subscribed again: a new sequence, and a SUBACK that says so.
        let mut c = connect(addr);
        let again = c.subscribe(t).unwrap();
        assert_eq!(
            again.next_seq, 1,
            "{what}: SUBACK after the topic was reclaimed"
        );
        assert!(
            again.epoch > first.epoch,
            "{what}: the restarted sequence's epoch {} must be above the earlier {}",
            again.epoch,
            first.epoch
        );
        publisher.publish(t, b"again").unwrap();
        let m = c.next_message().unwrap();
        assert_eq!(
            (m.seq, m.payload.as_slice()),
            (1, &b"again"[..]),
            "{what}: C's first frame"
        );
        // A and B, unsubscribed, got nothing more (counted below).
        for (who, cl) in [("A", &mut a), ("B", &mut b), ("C", &mut c)] {
            cl.ping(b"done")
                .unwrap_or_else(|e| panic!("{what}: {who}: {e}"));
        }
    }

    let report = healthy.finish();
    report.assert_ok(WHAT, P99_BOUND);
    let s = engine.stats();
    // Per topic: A got 1..=4, B got 4, C got 1.
    assert_eq!(
        s.deliveries,
        names.len() as u64 * 6 + report.warm_up + report.published,
        "{WHAT}: frames delivered (none to unsubscribed connections)"
    );
    assert_eq!(
        s.errors.iter().sum::<u64>(),
        0,
        "{WHAT}: ERRORs {:?}",
        s.errors
    );
}

#[test]
fn max_topics_still_bounds_topics_with_subscribers() {
    const WHAT: &str = "max_topics";
    // 10 topics for the test, one for the healthy pair.
    let engine = engine(11);
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);

    let mut holder = connect(addr);
    let names: Vec<String> = (0..10).map(|i| format!("cap.{i}")).collect();
    for (t, (next_seq, _)) in names.iter().zip(subscribe_all(&mut holder, &names, WHAT)) {
        assert_eq!(next_seq, 1, "{WHAT}: SUBACK of {t}");
    }

    // The 11th topic with a subscriber is one too many.
    let mut late = connect(addr);
    match late.subscribe("cap.extra") {
        Err(ClientError::Server { code: 4, .. }) => {}
        other => panic!("{WHAT}: SUBSCRIBE past max_topics: expected ERROR 4, got {other:?}"),
    }
    expect_closed(&mut late, "SUBSCRIBE past max_topics");

    // Publishing needs no topic: accepted at the limit, and delivered
    // where there are subscribers.
    let mut publisher = connect(addr);
    publisher.publish("cap.nobody", b"into the void").unwrap();
    publisher.publish("cap.0", b"to the holder").unwrap();
    publisher
        .ping(b"still open")
        .unwrap_or_else(|e| panic!("{WHAT}: PUBLISH to a new topic at the limit: {e}"));
    let m = holder.next_message().unwrap();
    assert_eq!(
        (m.topic.as_str(), m.seq, m.payload.as_slice()),
        ("cap.0", 1, &b"to the holder"[..]),
        "{WHAT}: the holder's frame"
    );
    assert_eq!(
        engine.stats().errors[4],
        1,
        "{WHAT}: ERROR 4 only for the SUBSCRIBE"
    );

    // The holder leaves: its topics are reclaimed and make room.
    drop(holder);
    assert_only_healthy_topic_left(&engine, WHAT);
    let mut next = connect(addr);
    let names: Vec<String> = (0..10).map(|i| format!("cap.next.{i}")).collect();
    for (t, (next_seq, _)) in names.iter().zip(subscribe_all(&mut next, &names, WHAT)) {
        assert_eq!(next_seq, 1, "{WHAT}: SUBACK of {t} after the reclaim");
    }
    match next.subscribe("cap.next.extra") {
        Err(ClientError::Server { code: 4, .. }) => {}
        other => panic!("{WHAT}: SUBSCRIBE past max_topics again: expected ERROR 4, got {other:?}"),
    }
    expect_closed(&mut next, "SUBSCRIBE past max_topics again");

    healthy.finish().assert_ok(WHAT, P99_BOUND);
    assert_eq!(engine.stats().errors[4], 2, "{WHAT}: ERROR 4 count");
}

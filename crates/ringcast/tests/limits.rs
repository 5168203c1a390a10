//! The engine's configured limits (src/config.rs), as a client meets them:
//! a connection past `max_connections` is closed at once while the others
//! work; a SUBSCRIBE creating a topic past `max_topics` is ERROR 4; a PUBLISH over
//! `max_frame` is ERROR 2 (PROTOCOL.md, "Frame layout", "Error codes").

mod common;

use common::{config, connect, expect_closed, start, wait_until};
use ringcast::proto::ClientFrame;
use ringcast::Config;
use ringcast_client::{Client, ClientError, OwnedServerFrame};
use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Duration;

/// Reads the next frame and asserts it is an ERROR with `code`.
fn expect_error(c: &mut Client, code: u16, what: &str) -> String {
    match c.next_frame() {
        Ok(OwnedServerFrame::Error {
            code: got, message, ..
        }) => {
            assert_eq!(got, code, "{what}: got ERROR {got} ({message})");
            message
        }
        other => panic!("{what}: expected ERROR {code}, got {other:?}"),
    }
}

/// Asserts a raw connection is closed by the server without a word: the
/// read ends (EOF or reset) well before the timeout.
fn expect_refused(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("{what}: expected a close, got {n} bytes: {:?}", &buf[..n]),
        Err(e) => panic!("{what}: expected the server to close it at once, got {e}"),
    }
}

#[test]
fn a_connection_past_max_connections_is_closed_at_once_and_the_others_work() {
    const MAX: usize = 5;
    let engine = start(Config {
        max_connections: MAX,
        ..config(2)
    });
    let addr = engine.local_addr();

    // A PING round trip proves each of the 5 was accepted and is served.
    let mut clients: Vec<Client> = (0..MAX)
        .map(|i| {
            let mut c = connect(addr);
            assert_eq!(c.ping(&[i as u8]).unwrap(), [i as u8]);
            c
        })
        .collect();
    assert_eq!(engine.connections(), MAX);

    // The 6th: the kernel completes the handshake, the engine closes it.
    let mut sixth = TcpStream::connect(addr).unwrap();
    expect_refused(&mut sixth, "6th connection");
    assert_eq!(engine.stats().refused, 1);
    assert_eq!(engine.connections(), MAX);

    // The 5 still work, with each other: subscribe, publish, receive.
    clients[0].subscribe("limits.conn").unwrap();
    clients[1].subscribe("limits.conn").unwrap();
    clients[4].publish("limits.conn", b"from the 5th").unwrap();
    for c in &mut clients[..2] {
        let m = c.next_message().unwrap();
        assert_eq!(
            (m.topic.as_str(), m.payload.as_slice()),
            ("limits.conn", &b"from the 5th"[..])
        );
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(
            c.ping(b"still served").unwrap(),
            b"still served",
            "client {i}"
        );
    }

    // A freed place is given to the next connection.
    drop(clients.pop());
    assert!(
        wait_until(Duration::from_secs(10), || engine.connections() == MAX - 1),
        "a closed connection still counts: {} open",
        engine.connections()
    );
    let mut again = connect(addr);
    assert_eq!(again.ping(b"in").unwrap(), b"in");
    let mut seventh = TcpStream::connect(addr).unwrap();
    expect_refused(&mut seventh, "connection past the limit again");
    assert_eq!(engine.stats().refused, 2);
}

#[test]
fn a_new_topic_past_max_topics_is_error_4_and_existing_topics_keep_working() {
    const MAX: usize = 10;
    let engine = start(Config {
        max_topics: MAX,
        ..config(2)
    });
    let addr = engine.local_addr();
    let topics: Vec<String> = (0..MAX).map(|i| format!("topic.{i}")).collect();

    // One subscriber creates all 10 topics: a SUBACK means the topic exists.
    let mut sub = connect(addr);
    for t in &topics {
        assert_eq!(sub.subscribe(t).unwrap().next_seq, 1);
    }
    let mut publisher = connect(addr);
    for t in &topics {
        publisher.publish(t, t.as_bytes()).unwrap();
    }
    let mut got: Vec<String> = (0..MAX)
        .map(|_| sub.next_message().unwrap().topic)
        .collect();
    got.sort();
    let mut want = topics.clone();
    want.sort();
    assert_eq!(got, want, "each of the 10 topics delivers");

    // PUBLISH to an 11th: accepted and delivered to nobody; it creates no
    // topic, so it cannot meet the limit.
    publisher.publish("topic.11th", b"nobody listens").unwrap();
    assert_eq!(publisher.ping(b"still open").unwrap(), b"still open");
    assert_eq!(engine.stats().topics, MAX as u64);

    // SUBSCRIBE to an 11th: refused the same way.
    let mut late = connect(addr);
    late.send_raw(&{
        let mut v = Vec::new();
        ClientFrame::Subscribe {
            topic: "topic.also.new",
        }
        .encode(&mut v);
        v
    })
    .unwrap();
    expect_error(&mut late, 4, "SUBSCRIBE to an 11th topic");
    expect_closed(&mut late, "SUBSCRIBE to an 11th topic");

    // The 10 existing topics still work, for new connections too.
    let mut publisher = connect(addr);
    let mut sub2 = connect(addr);
    assert_eq!(sub2.subscribe(&topics[3]).unwrap().next_seq, 2);
    for t in &topics {
        publisher.publish(t, b"second round").unwrap();
    }
    let mut got: Vec<(String, u64)> = (0..MAX)
        .map(|_| {
            let m = sub.next_message().unwrap();
            (m.topic, m.seq)
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, u64)> = topics.iter().map(|t| (t.clone(), 2)).collect();
    want.sort();
    assert_eq!(
        got, want,
        "nothing from the refused topics, seq 2 on each existing one"
    );
    let m = sub2.next_message().unwrap();
    assert_eq!((m.topic.as_str(), m.seq), (topics[3].as_str(), 2));
    assert_eq!(engine.stats().errors[4], 1);
}

#[test]
fn a_subscribe_refused_at_max_topics_is_answered_in_order_and_ends_the_connection() {
    // PROTOCOL.md: replies (ERROR included) come in the order of the
    // requests, and after a fatal ERROR the connection is closed. So for
    // SUBSCRIBE to a topic past the limit, then PUBLISH to an existing
    // topic, then PING, sent together: the ERROR 4 comes first (not a PONG
    // saying all is well), and the PUBLISH after the refused SUBSCRIBE is
    // not accepted. The new topics' owner core is whichever their hash
    // picks, so the attempts cover both the subscriber's own core (refused
    // at once) and the other one (refused by the owner's answer).
    const MAX: usize = 2;
    let engine = start(Config {
        max_topics: MAX,
        ..config(2)
    });
    let addr = engine.local_addr();
    let mut sub = connect(addr);
    assert_eq!(sub.subscribe("existing.a").unwrap().next_seq, 1);
    assert_eq!(sub.subscribe("existing.b").unwrap().next_seq, 1);

    for attempt in 0..16 {
        let what = format!("attempt {attempt}");
        let mut bytes = Vec::new();
        let new_topic = format!("new.{attempt}");
        ClientFrame::Subscribe { topic: &new_topic }.encode(&mut bytes);
        ClientFrame::Publish {
            topic: "existing.a",
            payload: what.as_bytes(),
        }
        .encode(&mut bytes);
        ClientFrame::Ping { payload: b"p" }.encode(&mut bytes);
        let mut c = connect(addr);
        c.send_raw(&bytes).unwrap();
        expect_error(&mut c, 4, &what);
        expect_closed(&mut c, &what);
    }
    assert_eq!(engine.stats().topics, MAX as u64, "no refused topic exists");

    // Nothing published after a refused SUBSCRIBE took a seq: the next
    // accepted frame on existing.a is its seq 1.
    let mut publisher = connect(addr);
    publisher.publish("existing.a", b"sentinel").unwrap();
    let m = sub.next_message().unwrap();
    assert_eq!(
        (m.seq, String::from_utf8_lossy(&m.payload).into_owned()),
        (1, "sentinel".to_string()),
        "a PUBLISH sent after a SUBSCRIBE refused with ERROR 4 was accepted"
    );
}

#[test]
fn a_publish_over_max_frame_is_error_2_and_one_at_max_frame_is_delivered() {
    const MAX_FRAME: u32 = 4096;
    let engine = start(Config {
        max_frame: MAX_FRAME,
        ..config(2)
    });
    let addr = engine.local_addr();
    let mut sub = connect(addr);
    sub.subscribe("t").unwrap();

    // len = kind, flags, topic_len (4) + topic (1) + payload.
    let at_limit = vec![0x11; MAX_FRAME as usize - 4 - 1];
    let over_limit = vec![0x22; MAX_FRAME as usize - 4];

    let mut publisher = connect(addr);
    publisher.publish("t", &at_limit).unwrap();
    let m = sub.next_message().unwrap();
    assert_eq!(m.seq, 1);
    assert!(
        m.payload == at_limit,
        "a frame of exactly max_frame is delivered whole"
    );

    publisher.publish("t", &over_limit).unwrap();
    expect_error(&mut publisher, 2, "PUBLISH with len max_frame + 1");
    expect_closed(&mut publisher, "PUBLISH with len max_frame + 1");

    // Far over the limit: refused the same way.
    let mut big = connect(addr);
    // The server may close before it has read it all: a failed write is fine,
    // the ERROR is still there to read.
    match big.publish("t", &vec![0x33; 1 << 20]) {
        Ok(()) => {
            expect_error(&mut big, 2, "PUBLISH of 1 MiB");
        }
        Err(ClientError::Server { code, message }) => {
            assert_eq!(code, 2, "PUBLISH of 1 MiB: {message}")
        }
        Err(e) => panic!("PUBLISH of 1 MiB: {e}"),
    }
    expect_closed(&mut big, "PUBLISH of 1 MiB");

    // Neither refused frame took a seq or reached the subscriber.
    let mut publisher = connect(addr);
    publisher.publish("t", b"after").unwrap();
    let m = sub.next_message().unwrap();
    assert_eq!((m.seq, m.payload.as_slice()), (2, &b"after"[..]));
    assert_eq!(engine.stats().errors[2], 2);
}

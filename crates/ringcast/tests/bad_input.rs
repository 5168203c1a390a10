//! Bad input on loopback (PROTOCOL.md, "Error codes" and "Slow consumers"):
//! one test per error code. Each checks the ERROR frame's code, that the
//! server then closes the connection (all codes but 7), and that a healthy
//! subscriber on the same engine keeps receiving frames published after the
//! bad input. Then garbage, truncated frames, and peers that reset while the
//! server is sending to them: the daemon keeps serving, and does not leak
//! connections.

mod common;

use common::{config, connect, expect_closed, frame_of, raw_frame, start, wait_until};
use ringcast::proto::{self, ClientFrame, Decoded, ServerFrame};
use ringcast::{Config, Engine};
use ringcast_client::{Client, ClientError, OwnedServerFrame};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How long the engine may take to notice a closed peer and free its connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

fn encode(f: ClientFrame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    f.encode(&mut out);
    out
}

fn set_int_sockopt(s: &TcpStream, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: the fd is an open socket owned by `s`; the option value is a
    // c_int that lives for the whole call and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

/// Shrinks the socket's receive buffer so the server's sends stall early.
fn set_rcvbuf(s: &TcpStream, bytes: libc::c_int) {
    set_int_sockopt(s, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes);
}

/// SO_LINGER {on, 0}: closing the socket sends RST instead of FIN.
fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is an open socket owned by `s`; `l` is a valid linger
    // struct that lives for the whole call and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt SO_LINGER: {}",
        io::Error::last_os_error()
    );
}

/// Reads the next frame and asserts it is an ERROR with `code`; returns its
/// topic and message.
fn expect_error(c: &mut Client, code: u16, what: &str) -> (Option<String>, String) {
    match c.next_frame() {
        Ok(OwnedServerFrame::Error {
            code: got,
            topic,
            message,
        }) => {
            assert_eq!(got, code, "{what}: got ERROR {got} ({message})");
            (topic, message)
        }
        other => panic!("{what}: expected ERROR {code}, got {other:?}"),
    }
}

/// Sends `bytes` on a fresh connection and asserts ERROR `code` then close.
fn bad_frame(addr: SocketAddr, bytes: &[u8], code: u16, what: &str) -> String {
    let mut c = connect(addr);
    c.send_raw(bytes)
        .unwrap_or_else(|e| panic!("{what}: send: {e}"));
    let (_, message) = expect_error(&mut c, code, what);
    expect_closed(&mut c, what);
    message
}

/// A subscriber and a publisher that should be unaffected by whatever other
/// connections do to the engine.
struct Healthy {
    sub: Client,
    publisher: Client,
    /// Seq of the next DATA frame the subscriber must receive.
    next_seq: u64,
}

const HEALTHY_TOPIC: &str = "healthy";

impl Healthy {
    fn new(addr: SocketAddr) -> Healthy {
        Healthy::with_tokens(addr, None, None)
    }

    fn with_tokens(addr: SocketAddr, sub_token: Option<&[u8]>, pub_token: Option<&[u8]>) -> Self {
        let mut sub = connect(addr);
        if let Some(t) = sub_token {
            sub.auth(t).unwrap();
        }
        let ack = sub.subscribe(HEALTHY_TOPIC).unwrap();
        let mut publisher = connect(addr);
        if let Some(t) = pub_token {
            publisher.auth(t).unwrap();
        }
        let mut h = Healthy {
            sub,
            publisher,
            next_seq: ack.next_seq,
        };
        h.check("before the bad input");
        h
    }

    /// Publishes a few frames and asserts the subscriber gets exactly them,
    /// next in its topic's sequence.
    fn check(&mut self, when: &str) {
        let first = self.next_seq;
        for seq in first..first + 3 {
            let payload = format!("healthy frame {seq}");
            self.publisher
                .publish(HEALTHY_TOPIC, payload.as_bytes())
                .unwrap_or_else(|e| panic!("{when}: healthy publisher: {e}"));
        }
        for seq in first..first + 3 {
            let m = self
                .sub
                .next_message()
                .unwrap_or_else(|e| panic!("{when}: healthy subscriber: {e}"));
            assert_eq!(
                (m.topic.as_str(), m.seq),
                (HEALTHY_TOPIC, seq),
                "{when}: healthy subscriber"
            );
            assert_eq!(
                m.payload,
                format!("healthy frame {seq}").as_bytes(),
                "{when}"
            );
        }
        self.next_seq = first + 3;
    }
}

/// Waits until only `live` connections remain open on the engine.
fn assert_connections_return_to(engine: &Engine, live: usize, what: &str) {
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.connections() == live),
        "{what}: {} connections open, expected {live} (a closed peer's connection leaked)",
        engine.connections()
    );
}

#[test]
fn error_1_malformed_frames_are_refused_and_closed() {
    let engine = start(config(2));
    let addr = engine.local_addr();
    let mut healthy = Healthy::new(addr);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("len below 4", vec![2, 0, 0, 0, 0x04, 0]),
        ("len 0", vec![0, 0, 0, 0]),
        // len 7 leaves 3 bytes after the header; topic_len says 10.
        (
            "topic_len runs past the frame (SUBSCRIBE)",
            raw_frame(7, 0x02, 0, 10, b"abc"),
        ),
        (
            "topic_len runs past the frame (PUBLISH)",
            raw_frame(4 + 5, 0x01, 0, 200, b"topic"),
        ),
        ("payload on SUBSCRIBE", frame_of(0x02, 0, b"abc", b"x")),
        ("payload on UNSUBSCRIBE", frame_of(0x03, 0, b"abc", b"xyz")),
        ("topic_len on PING", frame_of(0x04, 0, b"t", b"")),
        ("topic_len on AUTH", frame_of(0x05, 0, b"t", b"token")),
        (
            "PING payload of 65 bytes",
            frame_of(0x04, 0, b"", &[7u8; 65]),
        ),
    ];
    for (what, bytes) in &cases {
        bad_frame(addr, bytes, 1, what);
        healthy.check(what);
    }
    // The largest legal PING is fine: the limit is exactly 64.
    let mut c = connect(addr);
    assert_eq!(c.ping(&[9u8; 64]).unwrap(), vec![9u8; 64]);
    assert_eq!(engine.stats().errors[1], cases.len() as u64);
}

#[test]
fn error_2_oversized_len_is_refused_before_the_body_arrives() {
    let max_frame = 4096;
    let engine = start(Config {
        max_frame,
        max_backlog: 64 << 10,
        ..config(2)
    });
    let addr = engine.local_addr();
    let mut healthy = Healthy::new(addr);

    // A header claiming 1 MiB, and not one byte of the body: the server must
    // answer from the header alone (a short read timeout proves it does not
    // wait for the body, which never comes).
    let mut c = connect(addr);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_raw(&raw_frame(1 << 20, 0x01, 0, 5, b"")).unwrap();
    expect_error(&mut c, 2, "header claiming 1 MiB");
    expect_closed(&mut c, "header claiming 1 MiB");
    healthy.check("after a 1 MiB header");

    // Only the first 4 bytes are needed to decide; even len alone is enough.
    let mut c = connect(addr);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_raw(&(max_frame + 1).to_le_bytes()).unwrap();
    expect_error(&mut c, 2, "len max_frame + 1, alone");
    expect_closed(&mut c, "len max_frame + 1, alone");
    healthy.check("after a bare len over the limit");

    // A header for u32::MAX followed by a stream of body bytes: still ERROR 2,
    // and the server does not buffer what follows.
    let mut c = connect(addr);
    let mut bytes = raw_frame(u32::MAX, 0x01, 0, 1, b"t");
    bytes.extend(std::iter::repeat(0xAB).take(64 << 10));
    // The server may close before it has read everything: then the failed
    // write reports the ERROR the server sent first.
    match c.send_raw(&bytes) {
        Ok(()) => {
            expect_error(&mut c, 2, "len u32::MAX with a body");
        }
        Err(ClientError::Server { code, message }) => {
            assert_eq!(code, 2, "len u32::MAX with a body: {message}")
        }
        Err(e) => panic!("len u32::MAX with a body: {e}"),
    }
    expect_closed(&mut c, "len u32::MAX with a body");
    healthy.check("after len u32::MAX");
    assert_eq!(engine.stats().errors[2], 3);
}

#[test]
fn error_3_unknown_kinds_and_nonzero_flags_are_refused_and_closed() {
    let engine = start(config(2));
    let addr = engine.local_addr();
    let mut healthy = Healthy::new(addr);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("reserved kind 0x09", frame_of(0x09, 0, b"", b"")),
        ("reserved kind 0x00", frame_of(0x00, 0, b"", b"")),
        ("reserved kind 0xFF", frame_of(0xFF, 0, b"", b"")),
        ("reserved kind 0x06", frame_of(0x06, 0, b"t", b"x")),
        (
            "server-only kind DATA (0x10) from a client",
            raw_frame(
                4 + 16 + 1,
                0x10,
                0,
                1,
                &[[0u8; 16].as_slice(), b"t"].concat(),
            ),
        ),
        (
            "server-only kind PONG (0x14) from a client",
            frame_of(0x14, 0, b"", b"hi"),
        ),
        (
            "server-only kind ERROR (0x1F) from a client",
            raw_frame(4 + 2, 0x1F, 0, 0, &8u16.to_le_bytes()),
        ),
        ("nonzero flags on PING", frame_of(0x04, 1, b"", b"")),
        (
            "nonzero flags on SUBSCRIBE",
            frame_of(0x02, 0x80, b"abc", b""),
        ),
        (
            "nonzero flags on PUBLISH",
            frame_of(0x01, 0x02, b"abc", b"x"),
        ),
    ];
    for (what, bytes) in &cases {
        bad_frame(addr, bytes, 3, what);
        healthy.check(what);
    }
    assert_eq!(engine.stats().errors[3], cases.len() as u64);
}

#[test]
fn error_4_bad_topics_are_refused_and_closed() {
    let engine = start(config(2));
    let addr = engine.local_addr();
    let mut healthy = Healthy::new(addr);

    let long = [b'x'; 256];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "SUBSCRIBE topic with a space",
            frame_of(0x02, 0, b"a b", b""),
        ),
        (
            "PUBLISH topic with a space",
            frame_of(0x01, 0, b"a b", b"x"),
        ),
        ("SUBSCRIBE empty topic", frame_of(0x02, 0, b"", b"")),
        ("PUBLISH empty topic", frame_of(0x01, 0, b"", b"payload")),
        ("UNSUBSCRIBE empty topic", frame_of(0x03, 0, b"", b"")),
        (
            "SUBSCRIBE topic of 256 bytes",
            frame_of(0x02, 0, &long, b""),
        ),
        ("PUBLISH topic of 256 bytes", frame_of(0x01, 0, &long, b"x")),
        (
            "SUBSCRIBE topic that is not UTF-8",
            frame_of(0x02, 0, b"ab\xC3\x28", b""),
        ),
        (
            "PUBLISH topic that is not UTF-8",
            frame_of(0x01, 0, b"\xFF\xFE", b"x"),
        ),
        (
            "SUBSCRIBE topic with a control character",
            frame_of(0x02, 0, b"a\x01b", b""),
        ),
        (
            "SUBSCRIBE topic with DEL",
            frame_of(0x02, 0, b"a\x7Fb", b""),
        ),
    ];
    for (what, bytes) in &cases {
        bad_frame(addr, bytes, 4, what);
        healthy.check(what);
    }

    // The boundaries that are fine: 255 bytes, and non-ASCII UTF-8.
    let mut c = connect(addr);
    let t255 = "y".repeat(255);
    c.subscribe(&t255).unwrap();
    c.subscribe("prix.€").unwrap();
    assert_eq!(engine.stats().errors[4], cases.len() as u64);
}

#[test]
fn error_5_unauthorized_publish_and_subscribe_are_refused_and_closed() {
    const PUB: &[u8] = b"publish-secret";
    const SUB: &[u8] = b"subscribe-secret";
    let engine = start(Config {
        publish_token: Some(PUB.to_vec()),
        subscribe_token: Some(SUB.to_vec()),
        ..config(2)
    });
    let addr = engine.local_addr();
    let mut healthy = Healthy::with_tokens(addr, Some(SUB), Some(PUB));

    // PUBLISH without AUTH, on the healthy topic: refused, and the refused
    // frame is never delivered (the next check sees its own frames only,
    // with no seq taken by the refused one).
    let mut c = connect(addr);
    c.publish(HEALTHY_TOPIC, b"sneaky").unwrap();
    expect_error(&mut c, 5, "PUBLISH without AUTH");
    expect_closed(&mut c, "PUBLISH without AUTH");
    healthy.check("after PUBLISH without AUTH");

    // SUBSCRIBE without AUTH.
    let mut c = connect(addr);
    c.send_raw(&encode(ClientFrame::Subscribe {
        topic: HEALTHY_TOPIC,
    }))
    .unwrap();
    expect_error(&mut c, 5, "SUBSCRIBE without AUTH");
    expect_closed(&mut c, "SUBSCRIBE without AUTH");
    healthy.check("after SUBSCRIBE without AUTH");

    // A wrong token.
    let mut c = connect(addr);
    c.send_raw(&encode(ClientFrame::Auth {
        token: b"publish-secreT",
    }))
    .unwrap();
    expect_error(&mut c, 5, "AUTH with a wrong token");
    expect_closed(&mut c, "AUTH with a wrong token");
    healthy.check("after a wrong token");

    // The subscribe token does not grant publishing.
    let mut c = connect(addr);
    c.auth(SUB).unwrap();
    c.publish(HEALTHY_TOPIC, b"sneaky").unwrap();
    expect_error(&mut c, 5, "PUBLISH with the subscribe token");
    expect_closed(&mut c, "PUBLISH with the subscribe token");
    healthy.check("after PUBLISH with the subscribe token");

    // A later AUTH is checked again: a good token, then a wrong one.
    let mut c = connect(addr);
    c.auth(PUB).unwrap();
    c.send_raw(&encode(ClientFrame::Auth { token: b"nope" }))
        .unwrap();
    expect_error(&mut c, 5, "second AUTH with a wrong token");
    expect_closed(&mut c, "second AUTH with a wrong token");
    healthy.check("after a second, wrong AUTH");
    assert_eq!(engine.stats().errors[5], 5);
}

#[test]
fn error_6_a_stalled_subscriber_is_cut_off_and_others_keep_receiving() {
    let engine = start(Config {
        max_frame: 4096,
        max_backlog: 64 << 10,
        ..config(2)
    });
    let addr = engine.local_addr();
    let mut healthy = Healthy::new(addr);

    // The stalled subscriber keeps its default receive buffer: see
    // `slow_consumer.rs` for why shrinking it would starve the later read.
    let mut stalled = connect(addr);
    assert_eq!(stalled.subscribe("stalled.feed").unwrap().next_seq, 1);

    // Publish until the engine cuts the stalled subscriber off. The kernel's
    // socket buffers absorb a few MiB at most (tcp_wmem's ceiling is 4 MiB),
    // so 64 MiB without a cut means the backlog limit is not enforced.
    let payload = |seq: u64| vec![(seq % 251) as u8; 4000];
    let mut publisher = connect(addr);
    let mut published = 0u64;
    while engine.stats().slow_consumers_total() == 0 {
        assert!(
            published < 16_000,
            "64 MiB published to a subscriber that reads nothing, and it was not cut off"
        );
        for _ in 0..16 {
            published += 1;
            publisher
                .publish("stalled.feed", &payload(published))
                .unwrap();
        }
        publisher.ping(b"").unwrap();
    }
    // Read at once: the server owes a cut-off connection only a short grace
    // period to take what the kernel holds for it and its ERROR.
    let mut seq = 0;
    loop {
        match stalled.next_frame() {
            Ok(OwnedServerFrame::Data(m)) => {
                seq += 1;
                assert_eq!(m.seq, seq, "frames before the ERROR are contiguous");
                assert_eq!(m.payload, payload(seq), "frame {seq} is intact");
            }
            Ok(OwnedServerFrame::Error { code, message, .. }) => {
                assert_eq!(code, 6, "slow consumer ERROR: {message}");
                break;
            }
            other => panic!("stalled subscriber after {seq} frames: got {other:?}"),
        }
    }
    assert!(seq < published, "the stalled subscriber was cut off early");
    expect_closed(&mut stalled, "after ERROR 6");
    healthy.check("after a slow consumer was cut off");
    let stats = engine.stats();
    assert_eq!((stats.slow_consumers_total(), stats.errors[6]), (1, 1));
}

#[test]
fn error_7_too_many_subscriptions_refuses_the_subscribe_and_keeps_the_connection() {
    let engine = start(Config {
        max_subscriptions: 3,
        ..config(2)
    });
    let addr = engine.local_addr();
    let mut healthy = Healthy::new(addr);

    let mut c = connect(addr);
    for t in ["sub.a", "sub.b", "sub.c"] {
        assert_eq!(c.subscribe(t).unwrap().next_seq, 1);
    }
    // Subscribing again to a held topic is not a new subscription.
    c.subscribe("sub.b").unwrap();

    // The 4th, sent raw to see the topic the ERROR carries.
    c.send_raw(&encode(ClientFrame::Subscribe { topic: "sub.d" }))
        .unwrap();
    let (topic, message) = expect_error(&mut c, 7, "4th SUBSCRIBE");
    assert_eq!(
        topic.as_deref(),
        Some("sub.d"),
        "ERROR 7 names the refused topic"
    );
    assert!(!message.is_empty());
    // Through the client API too: code 7 is recoverable.
    let err = c.subscribe("sub.e").unwrap_err();
    assert!(
        matches!(err, ClientError::Server { code: 7, .. }),
        "{err:?}"
    );
    assert!(err.is_recoverable());

    // The connection stays open and usable.
    assert_eq!(c.ping(b"still here").unwrap(), b"still here");
    let mut publisher = connect(addr);
    publisher.publish("sub.d", b"not subscribed").unwrap();
    publisher.publish("sub.a", b"subscribed").unwrap();
    let m = c.next_message().unwrap();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("sub.a", &b"subscribed"[..])
    );
    healthy.check("after ERROR 7");

    // Freeing a slot makes room again.
    c.unsubscribe("sub.a").unwrap();
    let ack = c.subscribe("sub.d").unwrap();
    assert_eq!(
        ack.next_seq, 1,
        "sub.d had no subscriber when published to: it took no seq"
    );
    publisher.publish("sub.d", b"now subscribed").unwrap();
    let m = c.next_message().unwrap();
    assert_eq!((m.topic.as_str(), m.seq), ("sub.d", 1));
    assert_eq!(engine.stats().errors[7], 2);
    assert_eq!(engine.connections(), 4);
}

#[test]
fn error_8_shutdown_flushes_pending_frames_then_sends_error_8_and_closes() {
    let engine = start(config(2));
    let addr = engine.local_addr();
    let mut sub = connect(addr);
    sub.subscribe("last.words").unwrap();
    let mut idle = connect(addr);
    idle.ping(b"").unwrap();
    let mut publisher = connect(addr);
    const N: u64 = 50;
    for i in 1..=N {
        publisher
            .publish("last.words", format!("frame {i}").as_bytes())
            .unwrap();
    }
    // Every frame is queued for the subscriber before the shutdown begins.
    assert!(wait_until(Duration::from_secs(10), || engine
        .stats()
        .deliveries
        == N));

    engine.shutdown();
    for i in 1..=N {
        let m = sub
            .next_message()
            .unwrap_or_else(|e| panic!("frame {i} owed before shutdown: {e}"));
        assert_eq!(m.seq, i);
        assert_eq!(m.payload, format!("frame {i}").as_bytes());
    }
    expect_error(&mut sub, 8, "subscriber at shutdown");
    expect_closed(&mut sub, "subscriber at shutdown");
    for (c, what) in [(&mut idle, "idle client"), (&mut publisher, "publisher")] {
        expect_error(c, 8, what);
        expect_closed(c, what);
    }
    drop((sub, idle, publisher));
    engine.wait().expect("engine stops cleanly");
}

/// xorshift64*: a fixed-seed generator, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_garbage_gets_valid_frames_at_most_then_a_close() {
    let engine = start(config(2));
    let addr = engine.local_addr();
    let mut healthy = Healthy::new(addr);
    let mut rng = Rng(0x5EED_F0BA_D1D0);

    for case in 0..96 {
        let n = 1 + (rng.next() % 2048) as usize;
        let mut garbage = rng.bytes(n);
        if case % 2 == 1 && n >= 4 {
            // A plausible len, so the decoder gets past step 1.
            let len = 4 + (rng.next() % 300) as u32;
            garbage[..4].copy_from_slice(&len.to_le_bytes());
        }
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
        // The server may close before reading it all: a failed write is fine.
        let _ = s.write_all(&garbage);
        let _ = s.shutdown(Shutdown::Write);
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("case {case}: the server neither answered nor closed: {e}"),
        }
        // Whatever came back is well-formed frames, and an ERROR, if any, is
        // the last one and carries a code that closes the connection.
        let mut at = 0;
        while at < got.len() {
            let (f, used) = match proto::decode_server(&got[at..], u32::MAX) {
                Ok(Decoded::Frame { frame, consumed }) => (frame, consumed),
                other => panic!("case {case}: server sent bytes that are not a frame: {other:?}"),
            };
            at += used;
            if let ServerFrame::Error { code, .. } = f {
                assert!(
                    (1..=4).contains(&code),
                    "case {case}: garbage answered by ERROR {code}"
                );
                assert_eq!(at, got.len(), "case {case}: frames after a fatal ERROR");
            }
        }
        if case % 16 == 15 {
            healthy.check(&format!("after garbage case {case}"));
        }
    }
    healthy.check("after all garbage");
    assert_connections_return_to(&engine, 2, "after garbage");
}

#[test]
fn truncated_frames_then_close_do_not_leak_connections() {
    let engine = start(config(2));
    let addr = engine.local_addr();
    let mut healthy = Healthy::new(addr);

    let mut publish = encode(ClientFrame::Publish {
        topic: "cut.short",
        payload: &[0x5A; 1000],
    });
    publish.truncate(8 + 9 + 10); // header, topic, 10 bytes of payload
    let header_part = encode(ClientFrame::Ping { payload: b"" })[..3].to_vec();
    let topic_part = encode(ClientFrame::Subscribe { topic: "cut.short" })[..11].to_vec();
    // Cut short in the header, in the topic, in the payload.
    let cases: [&[u8]; 3] = [&header_part, &topic_part, &publish];
    for round in 0..20 {
        for bytes in cases {
            let mut c = connect(addr);
            if round % 2 == 0 {
                // Hold a subscription too, so its removal is exercised.
                c.subscribe(HEALTHY_TOPIC).unwrap();
            }
            c.send_raw(bytes).unwrap();
            drop(c);
        }
    }
    assert_connections_return_to(&engine, 2, "after truncated frames and closes");
    healthy.check("after truncated frames");

    // A subscriber that went away is not delivered to: one frame on the
    // healthy topic reaches exactly one subscriber.
    let before = engine.stats().deliveries;
    healthy.check("deliveries to the living only");
    assert!(
        wait_until(Duration::from_secs(5), || engine.stats().deliveries
            - before
            == 3),
        "3 frames to 1 subscriber: {} deliveries",
        engine.stats().deliveries - before
    );
}

#[test]
fn subscribers_that_reset_while_being_sent_to_do_not_disturb_the_others() {
    // A backlog limit far above what this test queues: resets, not slow
    // consumer cut-offs, are what end the stalled connections here.
    let engine = start(Config {
        max_backlog: 64 << 20,
        ..config(2)
    });
    let addr = engine.local_addr();
    let mut reader = connect(addr);
    assert_eq!(reader.subscribe("firehose").unwrap().next_seq, 1);
    let mut publisher = connect(addr);
    const STALLED: usize = 8;
    let mut stalled: Vec<Option<Client>> = (0..STALLED)
        .map(|_| {
            let mut c = connect(addr);
            set_rcvbuf(c.get_ref(), 4096);
            c.subscribe("firehose").unwrap();
            Some(c)
        })
        .collect();
    let mut control = connect(addr);
    control.ping(b"").unwrap();
    publisher.ping(b"").unwrap();
    assert_eq!(engine.connections(), 3 + STALLED);

    // 1 MiB per round. The stalled subscribers read nothing, so past the
    // first rounds (more than tcp_wmem's 4 MiB ceiling plus a 4 KiB receive
    // buffer) the server holds frames it is still sending to them; from round
    // 6 on, one of them resets each round while the others keep flowing.
    const FRAME: usize = 16 << 10;
    const PER_ROUND: u64 = 64;
    let payload = |seq: u64| {
        let mut p = vec![(seq % 253) as u8; FRAME];
        p[..8].copy_from_slice(&seq.to_le_bytes());
        p
    };
    let mut seq = 0u64;
    let mut read = 0u64;
    for round in 0..(6 + STALLED + 4) {
        for _ in 0..PER_ROUND {
            seq += 1;
            publisher.publish("firehose", &payload(seq)).unwrap();
        }
        while read < seq {
            let m = reader
                .next_message()
                .unwrap_or_else(|e| panic!("reader at frame {}: {e}", read + 1));
            read += 1;
            assert_eq!(m.seq, read, "the reader's stream has no gap");
            assert_eq!(m.payload, payload(read), "frame {read} is intact");
        }
        if let Some(slot) = round.checked_sub(6).and_then(|i| stalled.get_mut(i)) {
            let c = slot.take().unwrap();
            set_linger_zero(c.get_ref());
            drop(c); // RST
        }
    }
    assert_eq!(control.ping(b"alive").unwrap(), b"alive");
    assert_connections_return_to(&engine, 3, "after resets");
    assert_eq!(engine.stats().slow_consumers_total(), 0);
    // And a new subscriber is served normally.
    let mut late = connect(addr);
    assert_eq!(late.subscribe("firehose").unwrap().next_seq, seq + 1);
    publisher.publish("firehose", &payload(seq + 1)).unwrap();
    assert_eq!(late.next_message().unwrap().payload, payload(seq + 1));
    assert_eq!(reader.next_message().unwrap().seq, seq + 1);
}

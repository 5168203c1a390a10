//! The Redis front on a real engine (2 reactors), beyond what the
//! differential test against redis-server compares: the topic namespace
//! shared with the native and WebSocket fronts, encodes per publish for a
//! mixed audience, pipelined PUBLISH whose channel the other reactor owns,
//! slow RESP subscribers, limits, auth and bad input.

mod common;

use common::resp::{bulk, Resp, R};
use common::ws::{NativeReader, WsClient};
use common::{config, start, wait_until};
use ringcast::proto::ClientFrame;
use ringcast::topic::owner_of;
use ringcast::{Config, Engine};
use ringcast_client::OwnedServerFrame;
use ringcast_proto::resp::encode_command;
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn engine2() -> Engine {
    start(config(2))
}

fn resp_addr(e: &Engine) -> SocketAddr {
    e.resp_addr().expect("the RESP listener is on")
}

/// A channel name the given reactor owns (of 2).
fn channel_owned_by(core: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| owner_of(n.as_bytes(), 2) == core)
        .unwrap()
}

fn message(channel: &str, payload: &[u8]) -> R {
    R::List(vec![
        bulk("message"),
        bulk(channel),
        R::Bulk(payload.to_vec()),
    ])
}

#[test]
fn pipelined_publishes_keep_their_order_whichever_reactor_owns_the_channel() {
    let engine = engine2();
    let addr = resp_addr(&engine);
    for core in 0..2 {
        let ch = channel_owned_by(core, "pipe.");
        let mut sub = Resp::connect(addr);
        assert_eq!(
            sub.call(&[b"SUBSCRIBE", ch.as_bytes()]),
            R::List(vec![bulk("subscribe"), bulk(&ch), R::Int(1)])
        );
        let mut publisher = Resp::connect(addr);
        // 10,000 publishes in one write, a PING in the middle and at the end:
        // every reply in order, each count 1 (the one subscriber).
        const N: usize = 10_000;
        let mut out = Vec::new();
        for i in 0..N {
            encode_command(
                &[b"PUBLISH", ch.as_bytes(), i.to_string().as_bytes()],
                &mut out,
            );
            if i == N / 2 {
                encode_command(&[b"PING", b"middle"], &mut out);
            }
        }
        encode_command(&[b"PING"], &mut out);
        let t = Instant::now();
        publisher.send_raw(&out).unwrap();
        for i in 0..N {
            assert_eq!(publisher.read("publish count"), R::Int(1), "publish {i}");
            if i == N / 2 {
                assert_eq!(publisher.read("ping"), bulk("middle"));
            }
        }
        assert_eq!(publisher.read("last ping"), R::Simple(b"PONG".to_vec()));
        eprintln!(
            "10,000 pipelined PUBLISH, channel owned by reactor {core}: {:?}",
            t.elapsed()
        );
        for i in 0..N {
            assert_eq!(
                sub.read("message"),
                message(&ch, i.to_string().as_bytes()),
                "message {i}"
            );
        }
    }
}

/// What one subscriber of the cross-front test received, as payloads.
fn payload_of_native(frame: &[u8]) -> Vec<u8> {
    common::ws::data_payload(frame).to_vec()
}

#[test]
fn every_front_shares_channels_in_one_order_and_encodes_once_per_format() {
    const PER_FRONT: usize = 300;
    const PATTERN_SUBS: usize = 100;
    const PER_PUBLISHER: usize = 20;
    let engine = engine2();
    let (tcp, ws, rs) = (
        engine.local_addr(),
        engine.ws_addr().unwrap(),
        resp_addr(&engine),
    );
    let ch = "cross.news";
    let mut natives: Vec<NativeReader> = (0..PER_FRONT)
        .map(|_| {
            let mut n = NativeReader::connect(tcp);
            n.subscribe(ch);
            n
        })
        .collect();
    let mut webs: Vec<WsClient> = WsClient::connect_many(ws, PER_FRONT);
    for w in &mut webs {
        w.subscribe(ch);
    }
    let mut resp2: Vec<Resp> = (0..PER_FRONT).map(|_| Resp::connect(rs)).collect();
    for r in &mut resp2 {
        assert_eq!(
            r.call(&[b"SUBSCRIBE", ch.as_bytes()]),
            R::List(vec![bulk("subscribe"), bulk(ch), R::Int(1)])
        );
    }
    let mut resp3: Vec<Resp> = (0..PER_FRONT).map(|_| Resp::connect(rs)).collect();
    for r in &mut resp3 {
        assert!(matches!(r.call(&[b"HELLO", b"3"]), R::List(_)));
        assert_eq!(
            r.call(&[b"SUBSCRIBE", ch.as_bytes()]),
            R::List(vec![bulk("subscribe"), bulk(ch), R::Int(1)])
        );
    }
    let mut patterns: Vec<Resp> = (0..PATTERN_SUBS).map(|_| Resp::connect(rs)).collect();
    for (i, r) in patterns.iter_mut().enumerate() {
        if i % 2 == 1 {
            assert!(matches!(r.call(&[b"HELLO", b"3"]), R::List(_)));
        }
        assert_eq!(
            r.call(&[b"PSUBSCRIBE", b"cross.*"]),
            R::List(vec![bulk("psubscribe"), bulk("cross.*"), R::Int(1)])
        );
    }
    // Once the channel's owner counts every subscriber (its own and those
    // the other reactor reported), it encodes the RESP message itself.
    let mut probe = Resp::connect(rs);
    let channel_subs = (4 * PER_FRONT) as i64;
    assert!(
        wait_until(Duration::from_secs(20), || probe.call(&[
            b"PUBSUB",
            b"NUMSUB",
            ch.as_bytes()
        ]) == R::List(vec![
            bulk(ch),
            R::Int(channel_subs)
        ])),
        "PUBSUB NUMSUB never counted every subscriber"
    );
    let before = engine.stats();

    // Publishers on the three fronts, interleaved.
    let mut native_pub = common::connect(tcp);
    let mut ws_pub = WsClient::connect(ws);
    let mut resp_pub = Resp::connect(rs);
    let receivers = channel_subs + PATTERN_SUBS as i64;
    for i in 0..PER_PUBLISHER {
        native_pub
            .publish(ch, format!("native {i}").as_bytes())
            .unwrap();
        ws_pub.send_native(ClientFrame::Publish {
            topic: ch,
            payload: format!("ws {i}").as_bytes(),
        });
        assert_eq!(
            resp_pub.call(&[b"PUBLISH", ch.as_bytes(), format!("resp {i}").as_bytes()]),
            R::Int(receivers)
        );
    }
    let total = 3 * PER_PUBLISHER;

    // Everyone gets every message, in one order.
    let mut orders: Vec<Vec<Vec<u8>>> = Vec::new();
    for n in &mut natives {
        orders.push(
            (0..total)
                .map(|_| payload_of_native(&n.frame("data")))
                .collect(),
        );
    }
    for w in &mut webs {
        orders.push(
            (0..total)
                .map(|_| match w.frame("data") {
                    OwnedServerFrame::Data(m) => m.payload,
                    other => panic!("expected DATA, got {other:?}"),
                })
                .collect(),
        );
    }
    for r in resp2.iter_mut().chain(resp3.iter_mut()) {
        orders.push(
            (0..total)
                .map(|_| match r.read("message") {
                    R::List(v) if v.len() == 3 && v[0] == bulk("message") && v[1] == bulk(ch) => {
                        match &v[2] {
                            R::Bulk(p) => p.clone(),
                            other => panic!("payload {other:?}"),
                        }
                    }
                    other => panic!("expected a message, got {other:?}"),
                })
                .collect(),
        );
    }
    for r in &mut patterns {
        orders.push(
            (0..total)
                .map(|_| match r.read("pmessage") {
                    R::List(v)
                        if v.len() == 4
                            && v[0] == bulk("pmessage")
                            && v[1] == bulk("cross.*")
                            && v[2] == bulk(ch) =>
                    {
                        match &v[3] {
                            R::Bulk(p) => p.clone(),
                            other => panic!("payload {other:?}"),
                        }
                    }
                    other => panic!("expected a pmessage, got {other:?}"),
                })
                .collect(),
        );
    }
    let first = orders[0].clone();
    let mut sorted = first.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), total, "every message once");
    for (i, o) in orders.iter().enumerate() {
        assert_eq!(o, &first, "subscriber {i} saw another order");
    }
    // Per publisher, publish order.
    for prefix in ["native ", "ws ", "resp "] {
        let seen: Vec<&Vec<u8>> = first
            .iter()
            .filter(|p| p.starts_with(prefix.as_bytes()))
            .collect();
        let want: Vec<Vec<u8>> = (0..PER_PUBLISHER)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect();
        assert_eq!(
            seen,
            want.iter().collect::<Vec<_>>(),
            "{prefix}publisher's order"
        );
    }

    // Encodes: one DATA frame, one RESP message and one pmessage per publish,
    // whatever the number of subscribers of each kind and on each reactor.
    let after = engine.stats();
    let d = |a: u64, b: u64| a - b;
    assert_eq!(d(after.publishes, before.publishes), total as u64);
    assert_eq!(
        d(after.encodes, before.encodes),
        total as u64,
        "native encodes"
    );
    assert_eq!(
        d(after.resp_encodes[0], before.resp_encodes[0]),
        total as u64,
        "RESP message encodes"
    );
    assert_eq!(
        d(after.resp_encodes[1], before.resp_encodes[1]),
        total as u64,
        "pmessage encodes"
    );
    assert_eq!(
        d(after.deliveries, before.deliveries),
        (total as u64) * receivers as u64
    );
}

#[test]
fn a_slow_resp_subscriber_is_cut_off_while_the_others_keep_receiving() {
    const MAX_FRAME: u32 = 64 << 10;
    let engine = start(Config {
        max_frame: MAX_FRAME,
        max_backlog: 512 << 10,
        ..config(2)
    });
    let addr = resp_addr(&engine);
    let mut slow = Resp::connect(addr);
    slow.s
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(matches!(
        slow.call(&[b"SUBSCRIBE", b"firehose"]),
        R::List(_)
    ));
    let mut healthy = Resp::connect(addr);
    assert!(matches!(
        healthy.call(&[b"SUBSCRIBE", b"firehose"]),
        R::List(_)
    ));
    let mut publisher = Resp::connect(addr);
    let payload = vec![b'x'; (MAX_FRAME - 1024) as usize];
    let mut sent = 0u64;
    // The slow one never reads: its socket fills, then its backlog.
    while engine.stats().slow_consumers_total() == 0 {
        let n = publisher.call(&[b"PUBLISH", b"firehose", &payload]);
        assert!(matches!(n, R::Int(1 | 2)), "{n:?}");
        sent += 1;
        // The healthy one reads each message as it comes.
        assert_eq!(healthy.read("message"), message("firehose", &payload));
        assert!(sent < 10_000, "never cut off");
    }
    let st = engine.stats();
    assert_eq!(st.slow_consumers[3], 1, "counted for the resp transport");
    // The others go on: one more message to the healthy subscriber alone.
    // (Its count may still include the cut one when the cut happened on the
    // reactor that does not own the channel and its report is on its way:
    // docs/REDIS.md, Receiver counts.)
    let n = publisher.call(&[b"PUBLISH", b"firehose", b"after"]);
    assert!(matches!(n, R::Int(1 | 2)), "{n:?}");
    assert_eq!(healthy.read("after the cut"), message("firehose", b"after"));
    // The slow one reads what the kernel had, then the end of the stream.
    slow.buf.clear();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match slow.s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("slow subscriber: {e}"),
        }
    }
    assert!(total > 0);
}

#[test]
fn limits_answer_errors_and_keep_the_connection() {
    let engine = start(Config {
        max_subscriptions: 3,
        max_frame: 4096,
        max_backlog: 64 << 10,
        ..config(2)
    });
    let addr = resp_addr(&engine);
    let mut c = Resp::connect(addr);
    let long = vec![b'c'; 256];
    match c.call(&[b"SUBSCRIBE", &long]) {
        R::Err(e) => assert!(e.contains("longer than ringcast's limit of 255"), "{e}"),
        other => panic!("{other:?}"),
    }
    match c.call(&[b"PUBLISH", &long, b"x"]) {
        R::Err(e) => assert!(e.contains("longer than ringcast's limit of 255"), "{e}"),
        other => panic!("{other:?}"),
    }
    match c.call(&[b"PUBLISH", b"ch", &[b'p'; 4093]]) {
        R::Err(e) => assert!(e.contains("--max-frame"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Up to the limit, then an error per channel past it; still open.
    c.send(&[b"SUBSCRIBE", b"a", b"b", b"c", b"d"]);
    for (i, ch) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(
            c.read("subscribe"),
            R::List(vec![bulk("subscribe"), bulk(ch), R::Int(i as i64 + 1)])
        );
    }
    match c.read("subscribe past the limit") {
        R::Err(e) => assert!(e.contains("too many subscriptions"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.call(&[b"PING"]),
        R::List(vec![bulk("pong"), bulk("")]),
        "still open, in subscribed mode"
    );
    // A bulk over --max-frame is Redis's protocol error, then a close.
    c.send_raw(b"*3\r\n$7\r\nPUBLISH\r\n$1\r\na\r\n$5000\r\n")
        .unwrap();
    assert_eq!(
        c.read("oversized bulk"),
        R::Err("ERR Protocol error: invalid bulk length".into())
    );
    c.expect_closed("after a protocol error");
}

#[test]
fn tokens_grant_the_rights_they_stand_for() {
    let engine = start(Config {
        publish_token: Some(b"pubtok".to_vec()),
        subscribe_token: Some(b"subtok".to_vec()),
        ..config(2)
    });
    let addr = resp_addr(&engine);
    let mut c = Resp::connect(addr);
    let noauth = R::Err("NOAUTH Authentication required.".into());
    assert_eq!(c.call(&[b"SUBSCRIBE", b"x"]), noauth);
    assert_eq!(c.call(&[b"PUBLISH", b"x", b"y"]), noauth);
    assert_eq!(
        c.call(&[b"PING"]),
        noauth,
        "both tokens set: nothing is open"
    );
    assert_eq!(
        c.call(&[b"AUTH", b"wrong"]),
        R::Err("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert_eq!(c.call(&[b"AUTH", b"subtok"]), R::Simple(b"OK".to_vec()));
    assert_eq!(
        c.call(&[b"PUBLISH", b"x", b"y"]),
        R::Err("NOPERM this user has no permissions to run the 'publish' command".into())
    );
    assert_eq!(
        c.call(&[b"SUBSCRIBE", b"x"]),
        R::List(vec![bulk("subscribe"), bulk("x"), R::Int(1)])
    );
    // HELLO ... AUTH with the other token, on another connection.
    let mut p = Resp::connect(addr);
    match p.call(&[b"HELLO", b"3", b"AUTH", b"default", b"pubtok"]) {
        R::List(kv) => assert!(kv.contains(&bulk("proto")) && kv.contains(&R::Int(3))),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.call(&[b"PUBLISH", b"x", b"hi"]), R::Int(1));
    assert_eq!(c.read("message"), message("x", b"hi"));
    assert_eq!(
        p.call(&[b"AUTH", b"someone", b"pubtok"]),
        R::Err("WRONGPASS invalid username-password pair or user is disabled.".into())
    );

    // Only a publish token: subscribing is open, publishing is not.
    let open_subs = start(Config {
        publish_token: Some(b"pubtok".to_vec()),
        ..config(2)
    });
    let mut s = Resp::connect(resp_addr(&open_subs));
    assert!(matches!(s.call(&[b"HELLO", b"3"]), R::List(_)));
    assert!(matches!(s.call(&[b"SUBSCRIBE", b"x"]), R::List(_)));
    assert_eq!(s.call(&[b"PUBLISH", b"x", b"y"]), noauth);
}

/// Bad input on one connection: Redis's error and a close, while a
/// subscriber on the same engine keeps receiving.
#[test]
fn bad_input_is_refused_and_closed_without_disturbing_others() {
    let engine = engine2();
    let addr = resp_addr(&engine);
    let mut sub = Resp::connect(addr);
    assert!(matches!(sub.call(&[b"SUBSCRIBE", b"steady"]), R::List(_)));
    let mut publisher = Resp::connect(addr);
    let mut n = 0u64;
    let mut check_steady = |publisher: &mut Resp, sub: &mut Resp| {
        n += 1;
        let p = n.to_string();
        assert_eq!(
            publisher.call(&[b"PUBLISH", b"steady", p.as_bytes()]),
            R::Int(1)
        );
        assert_eq!(sub.read("steady"), message("steady", p.as_bytes()));
    };
    let cases: &[(&[u8], &str)] = &[
        (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
        (
            b"*99999999999\r\n",
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (b"*2\r\n*1\r\n", "ERR Protocol error: expected '$', got '*'"),
        (
            b"*1\r\nfoo\r\n",
            "ERR Protocol error: expected '$', got 'f'",
        ),
        (
            b"SUBSCRIBE \"unclosed\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"*-1\r\n*1\r\n$-5\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
    ];
    for (bytes, want) in cases {
        let mut c = Resp::connect(addr);
        c.send_raw(bytes).unwrap();
        assert_eq!(
            c.read("error"),
            R::Err((*want).into()),
            "{:?}",
            bytes.escape_ascii().to_string()
        );
        c.expect_closed("after a protocol error");
        check_steady(&mut publisher, &mut sub);
    }
    // One byte at a time: the same command works.
    let mut c = Resp::connect(addr);
    for b in b"*3\r\n$7\r\nPUBLISH\r\n$6\r\nsteady\r\n$4\r\nbyte\r\n" {
        c.send_raw(&[*b]).unwrap();
    }
    assert_eq!(c.read("byte-wise publish"), R::Int(1));
    assert_eq!(sub.read("byte-wise"), message("steady", b"byte"));
    drop(c);
    // A giant inline line with no end: refused at 64 KiB.
    let mut c = Resp::connect(addr);
    let _ = c.send_raw(&vec![b'a'; 70 * 1024]);
    assert_eq!(
        c.read("too big inline"),
        R::Err("ERR Protocol error: too big inline request".into())
    );
    c.expect_closed("after too big inline");
    // Truncated commands and abrupt resets leave nothing behind.
    for _ in 0..50 {
        let mut c = Resp::connect(addr);
        c.send_raw(b"*3\r\n$9\r\nSUBSCRIBE\r\n$3\r\nab").unwrap();
        drop(c);
    }
    check_steady(&mut publisher, &mut sub);
    drop(publisher);
    drop(sub);
    assert!(
        wait_until(Duration::from_secs(20), || engine.connections() == 0),
        "connections left: {}",
        engine.connections()
    );
    let st = engine.stats();
    assert_eq!((st.subscriptions, st.topics), (0, 0), "{st:?}");
}

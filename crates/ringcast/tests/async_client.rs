//! The async client (`ringcast-client`, feature `tokio`) against a real
//! in-process engine: a pub/sub round trip, replies to pipelined requests in
//! order, DATA arriving between requests and replies kept in order, a reader
//! half and a writer half used from two tasks, ERROR 7 recoverable, ERROR 5
//! fatal, and a server-side close seen as `ClientError::Closed`.

mod common;

use ringcast::proto::ClientFrame;
use ringcast::Config;
use ringcast_client::bytes::Bytes;
use ringcast_client::{AsyncClient, AsyncFrame, AsyncReader, ClientError};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every await is bounded: a hang fails the test instead of blocking it.
async fn t<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(common::READ_TIMEOUT, fut)
        .await
        .expect("timed out waiting for the engine or the client")
}

async fn connect(addr: SocketAddr) -> AsyncClient {
    t(AsyncClient::connect(addr))
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn expect_server_error<T: std::fmt::Debug>(
    result: impl Future<Output = Result<T, ClientError>>,
    code: u16,
    what: &str,
) -> ClientError {
    match t(result).await {
        Err(e @ ClientError::Server { code: got, .. }) if got == code => e,
        other => panic!("{what}: expected ERROR {code}, got {other:?}"),
    }
}

async fn expect_closed(reader: &mut AsyncReader, what: &str) {
    match t(reader.next_frame()).await {
        Err(ClientError::Closed) => {}
        other => panic!("{what}: expected the server to close the connection, got {other:?}"),
    }
}

#[tokio::test]
async fn publish_subscribe_round_trip_with_seq_ts_and_payload() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();
    let mut sub = connect(addr).await;
    let ack = t(sub.subscribe("async.round")).await.unwrap();
    assert_eq!(ack.next_seq, 1, "a new topic starts at seq 1");
    assert!(ack.epoch > 0);

    let mut publisher = connect(addr).await;
    let big: Bytes = (0..200_000u32)
        .map(|i| (i % 241) as u8)
        .collect::<Vec<_>>()
        .into();
    let before = now_ns();
    t(publisher.publish("async.round", "first")).await.unwrap();
    t(publisher.publish("async.round", big.clone()))
        .await
        .unwrap();
    t(publisher.publish("async.round", Bytes::new()))
        .await
        .unwrap();
    t(publisher.publish_slice("async.round", &[1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(t(publisher.ping(b"sync")).await.unwrap(), &b"sync"[..]);
    let after = now_ns();

    let expected = [
        Bytes::from_static(b"first"),
        big,
        Bytes::new(),
        Bytes::from_static(&[1, 2, 3]),
    ];
    for (i, payload) in expected.iter().enumerate() {
        let m = t(sub.next_message()).await.unwrap();
        assert_eq!(m.topic, "async.round");
        assert_eq!(m.seq, ack.next_seq + i as u64);
        assert!(
            (before..=after).contains(&m.ts_ns),
            "ts_ns {} outside the publishes' window {before}..={after}",
            m.ts_ns
        );
        assert_eq!(&m.payload, payload, "payload of seq {}", m.seq);
    }
    // The subscriber's own connection still answers, and nothing else came.
    assert_eq!(t(sub.ping(b"done")).await.unwrap(), &b"done"[..]);
    t(sub.unsubscribe("async.round")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_get_their_replies_in_request_order() {
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();

    // On the wire: three requests in one write, three replies in their order.
    let mut raw = connect(addr).await;
    let mut bytes = Vec::new();
    ClientFrame::Subscribe { topic: "pipe.x" }.encode(&mut bytes);
    ClientFrame::Ping { payload: b"p" }.encode(&mut bytes);
    ClientFrame::Unsubscribe { topic: "pipe.x" }.encode(&mut bytes);
    t(raw.send_raw(&bytes)).await.unwrap();
    match t(raw.next_frame()).await.unwrap() {
        AsyncFrame::SubAck {
            topic, next_seq, ..
        } => assert_eq!((topic.as_str(), next_seq), ("pipe.x", 1)),
        other => panic!("expected SUBACK first, got {other:?}"),
    }
    assert_eq!(
        t(raw.next_frame()).await.unwrap(),
        AsyncFrame::Pong {
            payload: Bytes::from_static(b"p")
        }
    );
    assert_eq!(
        t(raw.next_frame()).await.unwrap(),
        AsyncFrame::UnsubAck {
            topic: "pipe.x".into()
        }
    );

    // Through the client: requests from several tasks in flight at once on
    // one connection, each answered with its own reply.
    let (mut reader, writer) = connect(addr).await.into_split();
    let (stray_tx, mut stray_rx) = tokio::sync::mpsc::unbounded_channel();
    let reading = tokio::spawn(async move {
        loop {
            let frame = reader.next_frame().await;
            let end = frame.is_err();
            let _ = stray_tx.send(frame);
            if end {
                return;
            }
        }
    });
    for round in 0..20u8 {
        let w: Vec<_> = (0..3).map(|_| writer.clone()).collect();
        let (ping1, ping2) = ([round, 1], [round, 2]);
        let (a, p1, b, un, p2, c) = t(async {
            tokio::join!(
                w[0].subscribe("pipe.a"),
                w[1].ping(&ping1),
                w[2].subscribe("pipe.b"),
                writer.unsubscribe("pipe.a"),
                w[0].ping(&ping2),
                w[1].subscribe("pipe.c"),
            )
        })
        .await;
        a.unwrap();
        b.unwrap();
        c.unwrap();
        un.unwrap();
        assert_eq!(p1.unwrap(), &ping1[..]);
        assert_eq!(p2.unwrap(), &ping2[..]);
    }
    reading.abort();
    assert!(
        stray_rx.try_recv().is_err(),
        "every reply went to its request, and no DATA was published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_arriving_between_requests_and_replies_is_kept_in_order() {
    const OWN: u64 = 300;
    const OTHER: u64 = 300;
    let engine = common::start(common::config(2));
    let addr = engine.local_addr();
    let mut c = connect(addr).await;
    let first = t(c.subscribe("mix")).await.unwrap();
    assert_eq!(first.next_seq, 1);

    // Another connection publishes to the same topic meanwhile.
    let mut other = connect(addr).await;
    let others = tokio::spawn(async move {
        for i in 0..OTHER {
            t(other.publish("mix", format!("other {i}"))).await.unwrap();
        }
        t(other.ping(b"")).await.unwrap();
    });
    // This connection publishes to its own topic and keeps sending requests:
    // DATA of the topic arrives while they wait for their replies.
    for i in 0..OWN {
        t(c.publish_slice("mix", format!("own {i}").as_bytes()))
            .await
            .unwrap();
        match i % 3 {
            0 => assert_eq!(
                t(c.ping(&i.to_le_bytes())).await.unwrap(),
                &i.to_le_bytes()[..]
            ),
            1 => assert_eq!(t(c.subscribe("mix")).await.unwrap().epoch, first.epoch),
            _ => t(c.auth(b"")).await.unwrap(),
        }
    }
    t(others).await.unwrap();

    let (mut own_next, mut other_next) = (0, 0);
    for seq in 1..=OWN + OTHER {
        let m = t(c.next_message()).await.unwrap();
        assert_eq!(m.seq, seq, "no gap, no reordering, no duplicate");
        let text = std::str::from_utf8(&m.payload).unwrap();
        if let Some(i) = text.strip_prefix("own ") {
            assert_eq!(i.parse::<u64>().unwrap(), own_next, "{text}");
            own_next += 1;
        } else {
            let i = text
                .strip_prefix("other ")
                .expect("a payload published here");
            assert_eq!(i.parse::<u64>().unwrap(), other_next, "{text}");
            other_next += 1;
        }
    }
    assert_eq!((own_next, other_next), (OWN, OTHER));
    // Nothing more: the re-SUBSCRIBEs did not double the delivery.
    assert_eq!(t(c.ping(b"end")).await.unwrap(), &b"end"[..]);
    let mut tail = c.into_split().0;
    let extra = tokio::time::timeout(Duration::from_millis(200), tail.next_message()).await;
    assert!(
        extra.is_err(),
        "no frame beyond the {} published: {extra:?}",
        OWN + OTHER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_half_and_a_writer_half_work_from_two_tasks() {
    const PER_TOPIC: u64 = 500;
    let engine = common::start(common::config(2));
    let (mut reader, writer) = connect(engine.local_addr()).await.into_split();

    let reading = tokio::spawn(async move {
        let mut next = [1u64, 1u64];
        while next != [PER_TOPIC + 1; 2] {
            let m = t(reader.next_message()).await.unwrap();
            let which = match m.topic.as_str() {
                "halves.a" => 0,
                "halves.b" => 1,
                other => panic!("DATA of a topic not subscribed: {other}"),
            };
            assert_eq!(m.seq, next[which], "{} in order", m.topic);
            assert_eq!(m.payload, format!("{} #{}", m.topic, m.seq).as_bytes());
            next[which] += 1;
        }
        reader
    });
    let writing = tokio::spawn(async move {
        // The SUBACKs are read by the reader task, which is busy with DATA.
        assert_eq!(t(writer.subscribe("halves.a")).await.unwrap().next_seq, 1);
        for seq in 1..=PER_TOPIC {
            t(writer.publish("halves.a", format!("halves.a #{seq}")))
                .await
                .unwrap();
            if seq == PER_TOPIC / 2 {
                assert_eq!(t(writer.subscribe("halves.b")).await.unwrap().next_seq, 1);
            }
        }
        for seq in 1..=PER_TOPIC {
            t(writer.publish_slice("halves.b", format!("halves.b #{seq}").as_bytes()))
                .await
                .unwrap();
        }
        // No PING here: its PONG could come after the last DATA, once the
        // reader task has stopped reading, and then nobody would read it.
        writer
    });
    let writer = t(writing).await.unwrap();
    let mut reader = t(reading).await.unwrap();

    // Still one healthy connection: a request answered through the reader.
    let (pong, frame) = t(async {
        tokio::join!(
            writer.ping(b"again"),
            tokio::time::timeout(Duration::from_millis(300), reader.next_frame())
        )
    })
    .await;
    assert_eq!(pong.unwrap(), &b"again"[..]);
    assert!(
        frame.is_err(),
        "the reader saw a frame nobody waited for: {frame:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_7_is_recoverable() {
    let engine = common::start(Config {
        max_subscriptions: 1,
        ..common::config(2)
    });
    let mut c = connect(engine.local_addr()).await;
    assert_eq!(t(c.subscribe("only.one")).await.unwrap().next_seq, 1);
    let err = expect_server_error(c.subscribe("one.too.many"), 7, "a second subscription").await;
    assert!(err.is_recoverable(), "{err}");
    assert_eq!(t(c.ping(b"still open")).await.unwrap(), &b"still open"[..]);
    t(c.publish("only.one", "hello")).await.unwrap();
    let m = t(c.next_message()).await.unwrap();
    assert_eq!(
        (m.topic.as_str(), m.seq, &m.payload[..]),
        ("only.one", 1, &b"hello"[..])
    );

    // The same through a split: the reader routes ERROR 7 to the writer.
    let (mut reader, writer) = c.into_split();
    let reading = tokio::spawn(async move {
        let m = t(reader.next_message()).await.unwrap();
        (reader, m)
    });
    expect_server_error(writer.subscribe("another"), 7, "split writer").await;
    t(writer.publish("only.one", "after")).await.unwrap();
    let (_reader, m) = t(reading).await.unwrap();
    assert_eq!((m.seq, &m.payload[..]), (2, &b"after"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_5_is_fatal_and_closes_the_connection() {
    const TOKEN: &[u8] = b"async-token";
    let engine = common::start(Config {
        publish_token: Some(TOKEN.to_vec()),
        ..common::config(2)
    });
    let addr = engine.local_addr();

    // PUBLISH without AUTH: the ERROR comes to whoever reads next.
    let (mut reader, writer) = connect(addr).await.into_split();
    t(writer.publish("guarded", "forged")).await.unwrap();
    let err = expect_server_error(reader.next_message(), 5, "PUBLISH without AUTH").await;
    assert!(!err.is_recoverable());
    expect_closed(&mut reader, "ERROR 5").await;
    // Requests after the end fail with the error that ended the connection.
    expect_server_error(writer.ping(b""), 5, "a PING after ERROR 5").await;

    // A wrong token: the AUTH itself fails, then the connection is closed.
    let mut c = connect(addr).await;
    expect_server_error(c.auth(b"wrong"), 5, "a wrong token").await;
    let (mut reader, _writer) = c.into_split();
    expect_closed(&mut reader, "a wrong token").await;

    // The right token works, on a connection of its own.
    let mut c = connect(addr).await;
    t(c.auth(TOKEN)).await.unwrap();
    t(c.publish("guarded", "genuine")).await.unwrap();
    assert_eq!(t(c.ping(b"ok")).await.unwrap(), &b"ok"[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_close_is_closed() {
    let engine = common::start(common::config(2));
    let mut sub = connect(engine.local_addr()).await;
    t(sub.subscribe("closing")).await.unwrap();
    t(sub.publish("closing", "last words")).await.unwrap();
    assert_eq!(t(sub.ping(b"")).await.unwrap(), &b""[..]);

    engine.shutdown();
    // What was owed first, then ERROR 8, then the end of the stream.
    let m = t(sub.next_message()).await.unwrap();
    assert_eq!(&m.payload[..], b"last words");
    expect_server_error(sub.next_message(), 8, "shutdown").await;
    match t(sub.next_message()).await {
        Err(ClientError::Closed) => {}
        other => panic!("after ERROR 8 the server closes: got {other:?}"),
    }
    assert!(matches!(
        t(sub.next_frame()).await,
        Err(ClientError::Closed)
    ));
    // A request on the closed connection fails at once.
    expect_server_error(sub.ping(b""), 8, "a PING after the close").await;
    drop(sub);
    t(tokio::task::spawn_blocking(move || engine.wait()))
        .await
        .unwrap()
        .expect("the engine stops cleanly");
}

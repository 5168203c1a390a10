//! The WebSocket transport (PROTOCOL.md, "Transports"; RFC 6455) on
//! loopback: the opening handshake and each of its refusals, interop with an
//! independent client (tungstenite) in both directions, control frames and
//! fragmentation, the idle timeout, mixed TCP + WebSocket fan-out from one
//! encode per publish, a slow WebSocket consumer, and graceful shutdown.
//! Frame-level bad input is in `websocket_bad_input.rs`, plain HTTP in
//! `http_front.rs`.

mod common;

use common::ws::{
    data_payload, data_seq, fresh_key, native, parse_response, read_response_to_close,
    server_frame, tcp, NativeReader, WsClient, WsEvent,
};
use common::{config, connect, prom, start, wait_until, READ_TIMEOUT};
use ringcast::proto::ClientFrame;
use ringcast::stats::Transport;
use ringcast::ws::frame::{close_payload, Opcode};
use ringcast::{Config, Engine};
use ringcast_client::{ClientError, OwnedServerFrame};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// How long the engine may take to notice a closed peer and free its connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The payload published as frame `seq` of a test: unique to it.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    let mut word = 0u64;
    while p.len() < len {
        p.extend_from_slice(&(seq << 24 | word).to_le_bytes());
        word += 1;
    }
    p.truncate(len);
    p
}

fn ws_addr(engine: &Engine) -> SocketAddr {
    engine.ws_addr().expect("the WebSocket listener is on")
}

/// Open connections of one transport, from the engine's gauges.
fn open(engine: &Engine, t: Transport) -> u64 {
    engine.stats().connections[t as usize]
}

// ---------------------------------------------------------------------------
// 1. The opening handshake
// ---------------------------------------------------------------------------

/// An upgrade request for `path` with each header present only when given.
fn upgrade_request(
    path: &str,
    key: Option<&str>,
    version: &str,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: {version}\r\n"
    );
    for (name, value) in [
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Protocol", protocol),
        ("Origin", origin),
    ] {
        if let Some(v) = value {
            r.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    r.push_str("\r\n");
    r
}

/// Sends `request` and reads the response head only (the connection stays
/// open after a 101); returns the head and the bytes that followed it.
fn send_and_read_head(addr: SocketAddr, request: &str) -> (TcpStream, common::ws::HttpResponse) {
    let mut s = tcp(addr);
    s.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("reading the handshake response: {e}"));
        assert!(
            n > 0,
            "closed before a whole head: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    }
    let r = parse_response(&bytes);
    (s, r)
}

/// Sends a refused upgrade request: asserts `status`, and that the server
/// closes the connection after the response. Returns the response.
fn refused(addr: SocketAddr, request: &str, status: u16, what: &str) -> common::ws::HttpResponse {
    let mut s = tcp(addr);
    s.write_all(request.as_bytes()).unwrap();
    // read_to_end returning at all is the server's close (EOF).
    let r = read_response_to_close(&mut s);
    common::ws::check_content_length(&r);
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert!(
        !r.has_header("sec-websocket-accept"),
        "{what}: a refusal carries no Sec-WebSocket-Accept"
    );
    assert!(
        r.headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("close")),
        "{what}: Connection: close expected: {r:?}"
    );
    r
}

/// Checks that a 101 is a usable WebSocket: a native PING over it gets its
/// PONG, and a close 1000 is echoed.
fn prove_upgraded(s: TcpStream, leftover: Vec<u8>, what: &str) {
    let mut c = WsClient::from_upgraded(s, leftover);
    c.send_native(ClientFrame::Ping {
        payload: b"after the handshake",
    });
    match c.frame(what) {
        OwnedServerFrame::Pong { payload } => assert_eq!(payload, b"after the handshake"),
        other => panic!("{what}: expected PONG, got {other:?}"),
    }
    c.send_frame(Opcode::Close, &close_payload(1000, ""), true)
        .unwrap();
    c.expect_close(1000, what);
}

#[test]
fn handshake_101_with_accept_and_subprotocol_echoed_only_when_offered() {
    let engine = start(config(2));
    let addr = ws_addr(&engine);

    // RFC 6455 §1.3's sample key, offered among other protocols.
    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    let req = upgrade_request(
        "/ws",
        Some(RFC_KEY),
        "13",
        Some("chat, ringcast.v1"),
        Some("http://example.com"),
    );
    let (s, r) = send_and_read_head(addr, &req);
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(r.status_line, "HTTP/1.1 101 Switching Protocols");
    assert!(r.header("upgrade").eq_ignore_ascii_case("websocket"));
    assert!(r.header("connection").eq_ignore_ascii_case("upgrade"));
    assert_eq!(
        r.header("sec-websocket-accept"),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(r.header("sec-websocket-protocol"), "ringcast.v1");
    assert!(!r.has_header("sec-websocket-extensions"));
    assert!(!r.has_header("content-length"), "a 101 has no body");
    prove_upgraded(s, r.body.clone(), "upgrade offering ringcast.v1");

    // No subprotocol offered: served the same protocol, nothing echoed. The
    // accept value checked against tungstenite's derivation for a fresh key.
    let key = fresh_key();
    let req = upgrade_request("/ws", Some(&key), "13", None, None);
    let (s, r) = send_and_read_head(addr, &req);
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(
        r.header("sec-websocket-accept"),
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    assert!(
        !r.has_header("sec-websocket-protocol"),
        "no subprotocol was offered, none may be chosen: {r:?}"
    );
    prove_upgraded(s, r.body.clone(), "upgrade offering nothing");

    let st = engine.stats();
    assert_eq!((st.ws_upgrades, st.ws_rejected), (2, 0));
}

#[test]
fn handshake_refusals_get_their_status_then_the_connection_closes() {
    let engine = start(config(2));
    let addr = ws_addr(&engine);
    let key = fresh_key();
    let k = Some(key.as_str());
    let p = Some("ringcast.v1");

    refused(
        addr,
        &upgrade_request("/ws", None, "13", p, None),
        400,
        "missing Sec-WebSocket-Key",
    );
    let r = refused(
        addr,
        &upgrade_request("/ws", k, "8", p, None),
        426,
        "Sec-WebSocket-Version 8",
    );
    assert_eq!(r.header("sec-websocket-version"), "13");
    refused(
        addr,
        &upgrade_request("/socket", k, "13", p, None),
        404,
        "upgrade on /socket",
    );
    refused(
        addr,
        &upgrade_request("/ws", k, "13", Some("chat, superchat"), None),
        400,
        "subprotocols offered without ringcast.v1",
    );
    let st = engine.stats();
    assert_eq!(st.ws_upgrades, 0);
    // Whether the 404 for /socket counts as a refused handshake is the
    // server's choice; the other three do.
    assert!(
        (3..=4).contains(&st.ws_rejected),
        "ws_rejected {}",
        st.ws_rejected
    );
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.connections() == 0),
        "{} connections left open after refused handshakes",
        engine.connections()
    );
}

#[test]
fn origin_allow_list_refuses_other_origins_with_403() {
    let engine = start(Config {
        allowed_origins: vec!["https://good.example".into()],
        ..config(2)
    });
    let addr = ws_addr(&engine);
    let key = fresh_key();
    let k = Some(key.as_str());
    let p = Some("ringcast.v1");

    refused(
        addr,
        &upgrade_request("/ws", k, "13", p, Some("https://evil.example")),
        403,
        "Origin https://evil.example",
    );
    let (s, r) = send_and_read_head(
        addr,
        &upgrade_request("/ws", k, "13", p, Some("https://good.example")),
    );
    assert_eq!(r.status, 101, "allowed origin: {r:?}");
    prove_upgraded(s, r.body.clone(), "allowed origin");
    // The crate's own client role against the allow list too.
    let (s, key) = WsClient::begin(addr, Some("https://good.example"));
    drop(WsClient::finish(s, &key));
    let st = engine.stats();
    assert_eq!((st.ws_upgrades, st.ws_rejected), (2, 1));
}

// ---------------------------------------------------------------------------
// 2. Interop with tungstenite
// ---------------------------------------------------------------------------

/// A tungstenite client on `/ws`, offering ringcast.v1; checks the echo.
fn tungstenite_client(addr: SocketAddr) -> WebSocket<TcpStream> {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("ringcast.v1"),
    );
    let (ws, resp) = tungstenite::client(req, tcp(addr))
        .unwrap_or_else(|e| panic!("tungstenite handshake with {addr}: {e}"));
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "ringcast.v1"
    );
    ws
}

/// The next binary message on a tungstenite client (pings are answered by
/// tungstenite on the next read).
fn tungstenite_binary(ws: &mut WebSocket<TcpStream>, what: &str) -> Vec<u8> {
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => return b,
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            other => panic!("{what}: expected a binary message, got {other:?}"),
        }
    }
}

#[test]
fn tungstenite_subscriber_gets_10000_frames_byte_identical_to_a_tcp_subscriber() {
    const TOPIC: &str = "interop.feed";
    const N: u64 = 10_000;
    // Sizes around the WebSocket header length steps (message length < 126,
    // <= 65535, larger), which the server writes in the frame's headroom.
    let len_of = |seq: u64| -> usize {
        match seq % 1000 {
            0 => 70_000,
            500 => 65_535 - 24 - TOPIC.len(),
            501 => 65_536 - 24 - TOPIC.len(),
            _ => ((seq * 7) % 300) as usize,
        }
    };
    let engine = start(config(2));
    let mut ws = tungstenite_client(ws_addr(&engine));
    ws.send(Message::Binary(native(ClientFrame::Subscribe {
        topic: TOPIC,
    })))
    .unwrap();
    match server_frame(&tungstenite_binary(&mut ws, "SUBACK"), "SUBACK") {
        OwnedServerFrame::SubAck {
            topic, next_seq, ..
        } => assert_eq!((topic.as_str(), next_seq), (TOPIC, 1)),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    let mut raw_tcp = NativeReader::connect(engine.local_addr());
    assert_eq!(raw_tcp.subscribe(TOPIC), 1);
    let mut publisher = connect(engine.local_addr());

    let (ws_frames, tcp_frames) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            (1..=N)
                .map(|seq| tungstenite_binary(&mut ws, &format!("WebSocket frame {seq}")))
                .collect::<Vec<_>>()
        });
        let t = s.spawn(|| {
            (1..=N)
                .map(|seq| raw_tcp.frame(&format!("TCP frame {seq}")))
                .collect::<Vec<_>>()
        });
        for seq in 1..=N {
            publisher
                .publish(TOPIC, &payload(seq, len_of(seq)))
                .unwrap();
        }
        (w.join().unwrap(), t.join().unwrap())
    });
    for (i, (w, t)) in ws_frames.iter().zip(&tcp_frames).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(data_seq(t), seq, "TCP frames in seq order");
        assert!(
            data_payload(t) == payload(seq, len_of(seq)),
            "frame {seq}: payload intact"
        );
        assert!(
            w == t,
            "frame {seq}: the WebSocket message ({} bytes) is not the native frame ({} bytes)",
            w.len(),
            t.len()
        );
    }
    let st = engine.stats();
    assert_eq!((st.publishes, st.encodes, st.deliveries), (N, N, 2 * N));

    // Close handshake from tungstenite's side completes.
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .unwrap();
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("closing: {e}"),
        }
    }
}

#[test]
fn tungstenite_publisher_reaches_a_tcp_subscriber() {
    const TOPIC: &str = "from.browser";
    const N: u64 = 1_000;
    let engine = start(config(2));
    let mut sub = connect(engine.local_addr());
    assert_eq!(sub.subscribe(TOPIC).unwrap().next_seq, 1);
    let mut ws = tungstenite_client(ws_addr(&engine));
    for seq in 1..=N {
        let p = payload(seq, (seq % 200) as usize);
        ws.write(Message::Binary(native(ClientFrame::Publish {
            topic: TOPIC,
            payload: &p,
        })))
        .unwrap();
    }
    // A native PING after the publishes: its PONG proves they were all read.
    ws.send(Message::Binary(native(ClientFrame::Ping {
        payload: b"sync",
    })))
    .unwrap();
    match server_frame(&tungstenite_binary(&mut ws, "PONG"), "PONG") {
        OwnedServerFrame::Pong { payload } => assert_eq!(payload, b"sync"),
        other => panic!("expected PONG, got {other:?}"),
    }
    for seq in 1..=N {
        let m = sub.next_message().unwrap();
        assert_eq!((m.topic.as_str(), m.seq), (TOPIC, seq));
        assert_eq!(m.payload, payload(seq, (seq % 200) as usize));
    }
    assert_eq!(engine.stats().publishes, N);
}

// ---------------------------------------------------------------------------
// 4. Control frames and fragmentation
// ---------------------------------------------------------------------------

#[test]
fn pings_fragmented_messages_and_the_close_handshake() {
    const TOPIC: &str = "fragments";
    let engine = start(config(2));
    let mut c = WsClient::connect(ws_addr(&engine));

    // Ping → pong with the same bytes: empty, short, the 125-byte maximum.
    for p in [&b""[..], b"are you there?", &[0xA5; 125]] {
        c.send_frame(Opcode::Ping, p, true).unwrap();
        assert_eq!(c.event("pong"), WsEvent::Pong(p.to_vec()));
    }

    // A SUBSCRIBE in 3 fragments with a ping between the first two: the
    // ping is answered at once, the reassembled message gets its SUBACK.
    let sub = native(ClientFrame::Subscribe { topic: TOPIC });
    c.send_frame(Opcode::Binary, &sub[..3], false).unwrap();
    c.send_frame(Opcode::Ping, b"between fragments", true)
        .unwrap();
    c.send_frame(Opcode::Continuation, &sub[3..9], false)
        .unwrap();
    c.send_frame(Opcode::Continuation, &sub[9..], true).unwrap();
    assert_eq!(
        c.event("pong between fragments"),
        WsEvent::Pong(b"between fragments".to_vec())
    );
    assert_eq!(c.suback(TOPIC), 1);

    // The subscription is live: a TCP publish arrives.
    let mut publisher = connect(engine.local_addr());
    publisher.publish(TOPIC, b"one").unwrap();
    match c.frame("DATA after a fragmented SUBSCRIBE") {
        OwnedServerFrame::Data(m) => assert_eq!((m.seq, m.payload.as_slice()), (1, &b"one"[..])),
        other => panic!("expected DATA, got {other:?}"),
    }

    // A 100 KiB PUBLISH in 7 fragments (one empty) reaches a TCP subscriber whole.
    let mut tcp_sub = connect(engine.local_addr());
    tcp_sub.subscribe(TOPIC).unwrap();
    let big = payload(2, 100 << 10);
    let msg = native(ClientFrame::Publish {
        topic: TOPIC,
        payload: &big,
    });
    let cuts = [0, 1, 7, 7, 5000, 40_000, 90_000, msg.len()];
    for (i, w) in cuts.windows(2).enumerate() {
        let op = if i == 0 {
            Opcode::Binary
        } else {
            Opcode::Continuation
        };
        c.send_frame(op, &msg[w[0]..w[1]], w[1] == msg.len())
            .unwrap();
    }
    let m = tcp_sub.next_message().unwrap();
    assert_eq!(m.seq, 2);
    assert!(m.payload == big, "fragmented PUBLISH reassembled intact");
    match c.frame("own publish") {
        OwnedServerFrame::Data(m) => assert!(m.seq == 2 && m.payload == big),
        other => panic!("expected DATA, got {other:?}"),
    }

    // Close 1000: echoed with 1000, then the server closes TCP.
    c.send_frame(Opcode::Close, &close_payload(1000, "bye"), true)
        .unwrap();
    c.expect_close(1000, "client close 1000");
    assert!(
        wait_until(CLOSE_TIMEOUT, || open(&engine, Transport::WebSocket) == 0),
        "the closed WebSocket connection is still counted open"
    );
}

// ---------------------------------------------------------------------------
// 5. Idle timeout
// ---------------------------------------------------------------------------

/// Ping after 200 ms of silence, close after 1 s (the validation allows
/// both; the defaults are 20 s and 60 s).
fn idle_config() -> Config {
    Config {
        ws_ping_interval: Duration::from_millis(200),
        ws_idle_timeout: Duration::from_secs(1),
        ..config(1)
    }
}

#[test]
fn a_silent_websocket_peer_is_pinged_then_closed_with_1001() {
    let engine = start(idle_config());
    let (stream, key) = WsClient::begin(ws_addr(&engine), None);
    let sent = Instant::now();
    let mut silent = WsClient::finish(stream, &key);
    silent.set_read_timeout(Duration::from_secs(5));
    // Silent past ws_ping_interval: pinged (and this peer never answers).
    match silent.event("silent peer") {
        WsEvent::Ping(_) => {}
        other => panic!(
            "expected a ping first (after {:?} of silence; ping interval 200 ms, idle timeout 1 s), got {other:?}",
            sent.elapsed()
        ),
    }
    // Silent past ws_idle_timeout: close 1001, then the TCP close.
    silent.expect_close(1001, "silent peer");
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "closed {:?} after its last bytes, before the 1 s idle timeout",
        sent.elapsed()
    );
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.stats().cuts[2] == 1),
        "one idle cut counted"
    );
}

#[test]
fn a_websocket_peer_that_answers_pings_outlives_the_idle_timeout() {
    let engine = start(idle_config());
    // tungstenite queues the pong when it reads a ping and sends it on its
    // next read. The peer sends nothing else for 2.5 s: more than twice the
    // idle timeout.
    let mut ws = tungstenite_client(ws_addr(&engine));
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(2_500) {
        match ws.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(other) => panic!(
                "a peer that answers pings got {other:?} after {:?} ({pings} pings before)",
                start.elapsed()
            ),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!(
                "a peer that answers pings was cut after {:?}: {e}",
                start.elapsed()
            ),
        }
    }
    assert!(pings >= 2, "{pings} pings in 2.5 s of silence");
    // Still connected and served.
    ws.get_ref().set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    ws.send(Message::Binary(native(ClientFrame::Ping {
        payload: b"alive",
    })))
    .unwrap();
    match server_frame(&tungstenite_binary(&mut ws, "PONG"), "PONG") {
        OwnedServerFrame::Pong { payload } => assert_eq!(payload, b"alive"),
        other => panic!("expected PONG, got {other:?}"),
    }
    assert_eq!(engine.stats().cuts[2], 0, "no idle cut");
}

// ---------------------------------------------------------------------------
// 6. Mixed fan-out, serialize once
// ---------------------------------------------------------------------------

#[test]
fn five_hundred_tcp_and_five_hundred_websocket_subscribers_share_one_encode() {
    const TOPIC: &str = "mixed.fanout";
    const EACH: usize = 500;
    const N: u64 = 200;
    let engine = start(config(2));
    let addr = engine.local_addr();

    // Connect all, then subscribe all, then read the SUBACKs.
    let mut tcps: Vec<NativeReader> = (0..EACH).map(|_| NativeReader::connect(addr)).collect();
    let mut wss = WsClient::connect_many(ws_addr(&engine), EACH);
    for t in &mut tcps {
        t.send(ClientFrame::Subscribe { topic: TOPIC });
    }
    for w in &mut wss {
        w.send_native(ClientFrame::Subscribe { topic: TOPIC });
    }
    for t in &mut tcps {
        assert_eq!(t.suback(TOPIC), 1);
    }
    for w in &mut wss {
        assert_eq!(w.suback(TOPIC), 1);
    }
    let st = engine.stats();
    assert_eq!(st.connections[Transport::Tcp as usize], EACH as u64);
    assert_eq!(st.connections[Transport::WebSocket as usize], EACH as u64);
    assert_eq!(st.subscriptions, 2 * EACH as u64);

    let mut publisher = connect(addr);
    for seq in 1..=N {
        publisher
            .publish(TOPIC, &payload(seq, 40 + seq as usize))
            .unwrap();
    }
    // The first TCP subscriber's frames are the reference: seq 1..=N in
    // order with their payloads. Every other subscriber, TCP or WebSocket,
    // must receive exactly the same bytes.
    let reference: Vec<Vec<u8>> = (1..=N)
        .map(|seq| {
            let f = tcps[0].frame("reference subscriber");
            assert_eq!(data_seq(&f), seq);
            assert_eq!(data_payload(&f), payload(seq, 40 + seq as usize));
            f
        })
        .collect();
    for (i, t) in tcps.iter_mut().enumerate().skip(1) {
        for (k, r) in reference.iter().enumerate() {
            let f = t.frame("TCP subscriber");
            assert!(&f == r, "TCP subscriber {i}, frame {}: bytes differ", k + 1);
        }
    }
    for (i, w) in wss.iter_mut().enumerate() {
        for (k, r) in reference.iter().enumerate() {
            let m = w.binary("WebSocket subscriber");
            assert!(
                &m == r,
                "WebSocket subscriber {i}, frame {}: message is not the TCP frame's bytes",
                k + 1
            );
        }
    }
    let st = engine.stats();
    assert_eq!(st.publishes, N);
    assert_eq!(
        st.encodes, N,
        "one encode per publish, whatever the mix of transports"
    );
    assert_eq!(st.deliveries, N * 2 * EACH as u64);
}

// ---------------------------------------------------------------------------
// 7. A slow WebSocket consumer
// ---------------------------------------------------------------------------

#[test]
fn a_stalled_websocket_subscriber_gets_error_6_and_close_1008_and_the_others_everything() {
    const TOPIC: &str = "slow.ws";
    const PAYLOAD: usize = 16 << 10;
    /// Frames published per round, each read by the healthy readers before
    /// the next round: 128 KiB, half the backlog limit.
    const WINDOW: u64 = 8;
    /// Loopback buffers hold a few MiB for the stalled reader; 64 MiB of
    /// publishing without a cut is a failure.
    const MAX_FRAMES: u64 = 4_096;
    let engine = start(Config {
        max_backlog: 256 << 10,
        max_frame: 64 << 10,
        ..config(2)
    });
    let wsa = ws_addr(&engine);
    let addr = engine.local_addr();

    // The stalled subscriber keeps the default receive buffer (see
    // slow_consumer.rs: a shrunk one clamps the window for good, and reading
    // what the kernel holds would outlast the grace period of a cut-off
    // connection).
    let mut stalled = WsClient::connect(wsa);
    assert_eq!(stalled.subscribe(TOPIC), 1);
    let mut healthy_ws = WsClient::connect(wsa);
    assert_eq!(healthy_ws.subscribe(TOPIC), 1);
    let mut healthy_tcp = connect(addr);
    assert_eq!(healthy_tcp.subscribe(TOPIC).unwrap().next_seq, 1);
    let mut publisher = connect(addr);

    let mut next = 1u64;
    let mut publish_round = |next: &mut u64, healthy_ws: &mut WsClient| {
        let first = *next;
        for seq in first..first + WINDOW {
            publisher.publish(TOPIC, &payload(seq, PAYLOAD)).unwrap();
        }
        for seq in first..first + WINDOW {
            match healthy_ws.frame("healthy WebSocket subscriber") {
                OwnedServerFrame::Data(m) => {
                    assert_eq!(m.seq, seq, "healthy WebSocket subscriber in order");
                    assert!(m.payload == payload(seq, PAYLOAD));
                }
                other => panic!("healthy WebSocket subscriber: {other:?}"),
            }
            let m = healthy_tcp
                .next_message()
                .unwrap_or_else(|e| panic!("healthy TCP subscriber at {seq}: {e}"));
            assert_eq!(m.seq, seq, "healthy TCP subscriber in order");
            assert!(m.payload == payload(seq, PAYLOAD));
        }
        *next += WINDOW;
    };
    while engine.stats().slow_consumers_total() == 0 {
        assert!(
            next <= MAX_FRAMES,
            "a WebSocket subscriber that reads nothing was not cut off after {} frames",
            next - 1
        );
        publish_round(&mut next, &mut healthy_ws);
    }
    let published = next - 1;

    // Cut off: it reads what was sent before the cut (contiguous from seq
    // 1), then ERROR 6, then close 1008, then the TCP close.
    let mut got = 0;
    loop {
        let m = stalled.binary("stalled subscriber");
        match server_frame(&m, "stalled subscriber") {
            OwnedServerFrame::Data(d) => {
                got += 1;
                assert_eq!(d.seq, got, "frames before the ERROR are contiguous");
                assert!(d.payload == payload(got, PAYLOAD), "frame {got} intact");
            }
            OwnedServerFrame::Error { code, message, .. } => {
                assert_eq!(code, 6, "slow consumer ERROR: {message}");
                break;
            }
            other => panic!("stalled subscriber after {got} DATA: {other:?}"),
        }
    }
    stalled.expect_close(1008, "stalled subscriber after ERROR 6");
    assert!(
        got < published,
        "the stalled subscriber got all {got} frames: it was never behind"
    );

    // The healthy ones go on.
    for _ in 0..4 {
        publish_round(&mut next, &mut healthy_ws);
    }
    let st = engine.stats();
    assert_eq!((st.slow_consumers_total(), st.errors[6]), (1, 1));
    let metrics = common::ws::http_exchange(wsa, &common::ws::request("GET", "/metrics"));
    let fams = prom::parse(&metrics.text()).unwrap();
    let backlog_cuts = prom::value(
        &fams,
        "ringcast_disconnects_total",
        &[("reason", "backlog")],
    )
    .expect("ringcast_disconnects_total{reason=\"backlog\"}");
    assert!(backlog_cuts >= 1.0, "backlog disconnects: {backlog_cuts}");
}

// ---------------------------------------------------------------------------
// 9. Graceful shutdown
// ---------------------------------------------------------------------------

#[test]
fn shutdown_flushes_pending_data_then_error_8_and_close_1001() {
    const TOPIC: &str = "going.down";
    const N: u64 = 50;
    let engine = start(config(2));
    let mut ws = WsClient::connect(ws_addr(&engine));
    assert_eq!(ws.subscribe(TOPIC), 1);
    let mut tcp_sub = connect(engine.local_addr());
    tcp_sub.subscribe(TOPIC).unwrap();
    let mut publisher = connect(engine.local_addr());
    for seq in 1..=N {
        publisher.publish(TOPIC, &payload(seq, 4096)).unwrap();
    }
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.stats().deliveries == 2 * N),
        "the publishes were not all delivered"
    );
    engine.shutdown();

    for seq in 1..=N {
        match ws.frame("WebSocket subscriber at shutdown") {
            OwnedServerFrame::Data(m) => {
                assert_eq!(m.seq, seq);
                assert!(m.payload == payload(seq, 4096));
            }
            other => panic!("expected DATA {seq} before the shutdown ERROR, got {other:?}"),
        }
    }
    ws.expect_error(8, "WebSocket subscriber at shutdown");
    ws.expect_close(1001, "WebSocket subscriber at shutdown");

    for seq in 1..=N {
        assert_eq!(tcp_sub.next_message().unwrap().seq, seq);
    }
    match tcp_sub.next_frame() {
        Ok(OwnedServerFrame::Error { code: 8, .. }) => {}
        other => panic!("TCP subscriber: expected ERROR 8, got {other:?}"),
    }
    assert!(matches!(tcp_sub.next_frame(), Err(ClientError::Closed)));

    drop((ws, tcp_sub, publisher));
    let started = Instant::now();
    engine.wait().expect("engine stops cleanly");
    assert!(started.elapsed() < Duration::from_secs(5));
}

//! Bad input on the WebSocket port (PROTOCOL.md, "Transports" and "Error
//! codes"; RFC 6455 §5, §7.4): each broken client gets the close code its
//! fault maps to (after an ERROR message when the fault is in the ringcast
//! frame it carried), then the server closes TCP; a healthy WebSocket
//! subscriber and a healthy TCP subscriber on the same engine get a frame
//! published after each bad client is gone. The bad frames are written with
//! the crate's codec (tungstenite refuses to send them); the healthy
//! WebSocket subscriber is tungstenite.

mod common;

use common::ws::{native, server_frame, tcp, WsClient, WsEvent};
use common::{config, connect, frame_of, raw_frame, start, wait_until};
use ringcast::proto::ClientFrame;
use ringcast::stats::Transport;
use ringcast::ws::frame::{self, close_payload, Opcode};
use ringcast::{Config, Engine};
use ringcast_client::{Client, OwnedServerFrame};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// How long the engine may take to notice a closed peer and free its connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_FRAME: u32 = 64 << 10;
const HEALTHY_TOPIC: &str = "healthy";

fn engine() -> Engine {
    start(Config {
        max_frame: MAX_FRAME,
        max_backlog: 1 << 20,
        ..config(2)
    })
}

/// A masked client frame with any first header byte (reserved opcodes and
/// bits included).
fn client_frame_with_first_byte(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_client_frame(&mut out, Opcode::Binary, payload, [1, 2, 3, 4], true);
    out[0] = b0;
    out
}

fn masked(op: Opcode, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_client_frame(&mut out, op, payload, [0x37, 0xfa, 0x21, 0x3d], fin);
    out
}

/// A WebSocket subscriber (tungstenite), a TCP subscriber and a TCP
/// publisher that whatever the bad clients do must not affect.
struct Healthy {
    ws: WebSocket<TcpStream>,
    tcp: Client,
    publisher: Client,
    next_seq: u64,
}

impl Healthy {
    fn new(engine: &Engine) -> Healthy {
        let wsa = engine.ws_addr().unwrap();
        let req = format!("ws://{wsa}/ws").into_client_request().unwrap();
        let (mut ws, _) = tungstenite::client(req, tcp(wsa)).unwrap();
        ws.send(Message::Binary(native(ClientFrame::Subscribe {
            topic: HEALTHY_TOPIC,
        })))
        .unwrap();
        match server_frame(&read_binary(&mut ws, "healthy SUBACK"), "healthy SUBACK") {
            OwnedServerFrame::SubAck { next_seq: 1, .. } => {}
            other => panic!("healthy WebSocket subscriber: {other:?}"),
        }
        let mut tcp_sub = connect(engine.local_addr());
        assert_eq!(tcp_sub.subscribe(HEALTHY_TOPIC).unwrap().next_seq, 1);
        let mut h = Healthy {
            ws,
            tcp: tcp_sub,
            publisher: connect(engine.local_addr()),
            next_seq: 1,
        };
        h.check("before any bad input");
        h
    }

    /// Publishes one frame; both subscribers get it, next in sequence.
    fn check(&mut self, when: &str) {
        let p = format!("healthy frame {}", self.next_seq).into_bytes();
        self.check_payload(when, &p);
    }

    fn check_payload(&mut self, when: &str, p: &[u8]) {
        let seq = self.next_seq;
        self.publisher
            .publish(HEALTHY_TOPIC, p)
            .unwrap_or_else(|e| panic!("{when}: healthy publisher: {e}"));
        match server_frame(&read_binary(&mut self.ws, when), when) {
            OwnedServerFrame::Data(m) => {
                assert_eq!(m.seq, seq, "{when}: healthy WebSocket subscriber");
                assert!(m.payload == p, "{when}: healthy WebSocket payload");
            }
            other => panic!("{when}: healthy WebSocket subscriber got {other:?}"),
        }
        let m = self
            .tcp
            .next_message()
            .unwrap_or_else(|e| panic!("{when}: healthy TCP subscriber: {e}"));
        assert_eq!(m.seq, seq, "{when}: healthy TCP subscriber");
        assert!(m.payload == p, "{when}: healthy TCP payload");
        self.next_seq += 1;
    }
}

fn read_binary(ws: &mut WebSocket<TcpStream>, what: &str) -> Vec<u8> {
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => return b,
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            other => panic!("{what}: healthy WebSocket subscriber got {other:?}"),
        }
    }
}

/// Writes `bytes` on another thread (the server may stop reading before
/// the end; a failed write is fine) while `read` runs here.
fn send_while_reading<R>(
    c: &mut WsClient,
    bytes: Vec<u8>,
    read: impl FnOnce(&mut WsClient) -> R,
) -> R {
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    let r = read(c);
    writer.join().unwrap();
    r
}

/// A fresh client sends `bytes`; asserts close `code` with no message
/// before it, then the TCP close.
fn framing_fault(addr: SocketAddr, bytes: &[u8], code: u16, what: &str) {
    let mut c = WsClient::connect(addr);
    send_while_reading(&mut c, bytes.to_vec(), |c| {
        c.expect_close(code, what);
    });
}

/// A fresh client sends `bytes`; asserts ERROR `error` as a binary message,
/// then close `code`, then the TCP close. Returns the ERROR's text.
fn protocol_fault(addr: SocketAddr, bytes: &[u8], error: u16, code: u16, what: &str) -> String {
    let mut c = WsClient::connect(addr);
    send_while_reading(&mut c, bytes.to_vec(), |c| {
        let text = c.expect_error(error, what);
        c.expect_close(code, what);
        text
    })
}

/// Waits until only the healthy WebSocket subscriber is open on the port.
fn assert_only_healthy_left(engine: &Engine, what: &str) {
    assert!(
        wait_until(CLOSE_TIMEOUT, || {
            let st = engine.stats();
            st.connections[Transport::WebSocket as usize] == 1
                && st.connections[Transport::Http as usize] == 0
        }),
        "{what}: WebSocket connections left open: {:?}",
        engine.stats().connections
    );
}

#[test]
fn websocket_framing_faults_get_their_close_code_alone() {
    let engine = engine();
    let addr = engine.ws_addr().unwrap();
    let mut healthy = Healthy::new(&engine);
    let ping = native(ClientFrame::Ping { payload: b"x" });

    let mut unmasked = Vec::new();
    frame::encode_server_frame(&mut unmasked, Opcode::Binary, &ping);
    let mut new_message_in_progress = masked(Opcode::Binary, &ping[..3], false);
    new_message_in_progress.extend(masked(Opcode::Binary, &ping, true));
    let mut ping_126 = Vec::new();
    frame::encode_client_frame(&mut ping_126, Opcode::Ping, &[0; 126], [9; 4], true);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked client frame", unmasked, 1002),
        ("text frame", masked(Opcode::Text, b"hello", true), 1003),
        (
            "text frame, first fragment",
            masked(Opcode::Text, b"he", false),
            1003,
        ),
        (
            "reserved data opcode 0x3",
            client_frame_with_first_byte(0x83, &ping),
            1002,
        ),
        (
            "reserved control opcode 0xB",
            client_frame_with_first_byte(0x8B, b""),
            1002,
        ),
        (
            "RSV1 set without an extension",
            client_frame_with_first_byte(0xC2, &ping),
            1002,
        ),
        (
            "continuation with no message in progress",
            masked(Opcode::Continuation, &ping, true),
            1002,
        ),
        ("fragmented ping", masked(Opcode::Ping, b"p", false), 1002),
        ("ping payload of 126 bytes", ping_126, 1002),
        (
            "new message while one is in progress",
            new_message_in_progress,
            1002,
        ),
        (
            "close code 1005 on the wire",
            masked(Opcode::Close, &1005u16.to_be_bytes(), true),
            1002,
        ),
        (
            "close reason not UTF-8",
            masked(Opcode::Close, b"\x03\xe8\xff\xfe", true),
            1007,
        ),
    ];
    for (what, bytes, code) in &cases {
        framing_fault(addr, bytes, *code, what);
        healthy.check(what);
    }
    assert_only_healthy_left(&engine, "after the framing faults");
    let st = engine.stats();
    assert_eq!(st.errors.iter().sum::<u64>(), 0, "no ERROR frames: {st:?}");
}

#[test]
fn oversized_messages_get_error_2_then_close_1009() {
    let engine = engine();
    let addr = engine.ws_addr().unwrap();
    let mut healthy = Healthy::new(&engine);

    // One 200 KiB message: refused from its header.
    let big = native(ClientFrame::Publish {
        topic: HEALTHY_TOPIC,
        payload: &vec![0xAB; 200 << 10],
    });
    protocol_fault(
        addr,
        &masked(Opcode::Binary, &big, true),
        2,
        1009,
        "200 KiB message",
    );
    healthy.check("after a 200 KiB message");

    // Fragments of 30 KiB, each well under the limit; the third makes the
    // message bigger than max_frame + 4.
    let frags = [
        masked(Opcode::Binary, &big[..30 << 10], false),
        masked(Opcode::Continuation, &big[30 << 10..60 << 10], false),
        masked(Opcode::Continuation, &big[60 << 10..90 << 10], true),
    ]
    .concat();
    protocol_fault(addr, &frags, 2, 1009, "90 KiB in 30 KiB fragments");
    healthy.check("after a fragmented oversized message");

    // A small message whose native len is over max_frame.
    protocol_fault(
        addr,
        &masked(
            Opcode::Binary,
            &raw_frame(MAX_FRAME + 1, 0x01, 0, 1, b"t"),
            true,
        ),
        2,
        1009,
        "native len max_frame + 1",
    );
    healthy.check("after a native len over the limit");

    // The boundary: a message of exactly max_frame + 4 bytes holding a
    // PUBLISH whose len is max_frame is accepted and delivered.
    let p = vec![0x5A; MAX_FRAME as usize - 4 - HEALTHY_TOPIC.len()];
    let exact = native(ClientFrame::Publish {
        topic: HEALTHY_TOPIC,
        payload: &p,
    });
    assert_eq!(exact.len(), MAX_FRAME as usize + 4);
    let mut c = WsClient::connect(addr);
    // In two fragments, then a PING whose PONG proves it was read.
    c.send_frame(Opcode::Binary, &exact[..1000], false).unwrap();
    c.send_frame(Opcode::Continuation, &exact[1000..], true)
        .unwrap();
    c.send_native(ClientFrame::Ping { payload: b"ok?" });
    match c.frame("after the largest message") {
        OwnedServerFrame::Pong { payload } => assert_eq!(payload, b"ok?"),
        other => panic!("the largest legal message was refused: {other:?}"),
    }
    // It took the next seq; publish the check frame after it.
    let seq = healthy.next_seq;
    for what in ["WebSocket", "TCP"] {
        let m = if what == "TCP" {
            healthy.tcp.next_message().unwrap()
        } else {
            match server_frame(&read_binary(&mut healthy.ws, what), what) {
                OwnedServerFrame::Data(m) => m,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(m.seq, seq, "{what}: the largest legal message");
        assert!(m.payload == p, "{what}: the largest legal message intact");
    }
    healthy.next_seq += 1;
    healthy.check("after the largest legal message");
    drop(c);

    assert_only_healthy_left(&engine, "after the oversized messages");
    assert_eq!(engine.stats().errors[2], 3);
}

#[test]
fn a_message_not_holding_exactly_one_frame_gets_error_1_then_close_1002() {
    let engine = engine();
    let addr = engine.ws_addr().unwrap();
    let mut healthy = Healthy::new(&engine);
    let publish = native(ClientFrame::Publish {
        topic: HEALTHY_TOPIC,
        payload: b"must not be delivered",
    });

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "two whole PUBLISH frames",
            [&publish[..], &publish].concat(),
        ),
        (
            "half a PUBLISH frame",
            publish[..publish.len() / 2].to_vec(),
        ),
        ("4 bytes of a frame", publish[..4].to_vec()),
        ("a frame and one more byte", [&publish[..], b"\0"].concat()),
        ("an empty message", Vec::new()),
        (
            "a SUBSCRIBE with a payload",
            frame_of(0x02, 0, HEALTHY_TOPIC.as_bytes(), b"x"),
        ),
    ];
    for (what, msg) in &cases {
        // In two fragments where there are bytes enough: reassembly must
        // not change the verdict.
        let bytes = if msg.len() > 2 {
            [
                masked(Opcode::Binary, &msg[..2], false),
                masked(Opcode::Continuation, &msg[2..], true),
            ]
            .concat()
        } else {
            masked(Opcode::Binary, msg, true)
        };
        protocol_fault(addr, &bytes, 1, 1002, what);
        // Nothing from the refused message was published: the next frame
        // takes the very next seq.
        healthy.check(what);
    }
    assert_only_healthy_left(&engine, "after the malformed messages");
    assert_eq!(engine.stats().errors[1], cases.len() as u64);
}

#[test]
fn bad_kinds_flags_and_topics_get_error_3_or_4_then_close_1002() {
    let engine = engine();
    let addr = engine.ws_addr().unwrap();
    let mut healthy = Healthy::new(&engine);

    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("reserved kind 0x09", frame_of(0x09, 0, b"", b""), 3),
        ("server-only kind PONG", frame_of(0x14, 0, b"", b"hi"), 3),
        ("nonzero flags on PING", frame_of(0x04, 1, b"", b""), 3),
        (
            "PUBLISH topic with a space",
            frame_of(0x01, 0, b"a b", b"x"),
            4,
        ),
        ("SUBSCRIBE empty topic", frame_of(0x02, 0, b"", b""), 4),
    ];
    for (what, msg, error) in &cases {
        protocol_fault(addr, &masked(Opcode::Binary, msg, true), *error, 1002, what);
        healthy.check(what);
    }
    assert_only_healthy_left(&engine, "after bad kinds and topics");
    let st = engine.stats();
    assert_eq!((st.errors[3], st.errors[4]), (3, 2));
}

#[test]
fn a_peer_that_stops_mid_frame_and_closes_tcp_is_closed_and_freed() {
    let engine = engine();
    let addr = engine.ws_addr().unwrap();
    let mut healthy = Healthy::new(&engine);

    let publish = native(ClientFrame::Publish {
        topic: HEALTHY_TOPIC,
        payload: &[7; 300],
    });
    let whole = masked(Opcode::Binary, &publish, true);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("1 byte of a header", whole[..1].to_vec()),
        ("a header without its mask key", whole[..4].to_vec()),
        ("a header and part of the payload", whole[..50].to_vec()),
        (
            "the first fragment of a message",
            masked(Opcode::Binary, &publish[..100], false),
        ),
    ];
    for (what, bytes) in &cases {
        let closed_before = engine.stats().closed;
        let mut c = WsClient::connect(addr);
        c.send_raw(bytes).unwrap();
        c.shutdown_write();
        // The server may say goodbye with a close frame; it must then close.
        match c.next_event() {
            Ok(None) => {}
            Ok(Some(WsEvent::Close(..))) => c.expect_eof(what),
            Ok(Some(other)) => panic!("{what}: got {other:?}"),
            Err(e) => panic!("{what}: expected the server to close: {e}"),
        }
        drop(c);
        assert!(
            wait_until(CLOSE_TIMEOUT, || engine.stats().closed > closed_before),
            "{what}: the connection was not counted closed"
        );
        assert_only_healthy_left(&engine, what);
        // Nothing of the partial PUBLISH was published.
        healthy.check(what);
    }
    let st = engine.stats();
    assert_eq!(st.errors.iter().sum::<u64>(), 0, "no ERROR frames: {st:?}");
}

#[test]
fn a_close_frame_alone_is_echoed_with_1000() {
    // An empty close payload (no code) is answered with 1000 (RFC 6455
    // §5.5.1: the endpoint echoes the status it received, 1000 when none).
    let engine = engine();
    let mut c = WsClient::connect(engine.ws_addr().unwrap());
    c.send_frame(Opcode::Close, b"", true).unwrap();
    c.expect_close(1000, "empty close");
    // Data after a close frame is ignored; the echo still comes once.
    let mut c = WsClient::connect(engine.ws_addr().unwrap());
    let mut bytes = masked(Opcode::Close, &close_payload(4000, "app"), true);
    bytes.extend(masked(Opcode::Text, b"ignored", true));
    c.send_raw(&bytes).unwrap();
    c.expect_close(4000, "close 4000 then junk");
}

//! Isolation, finding 1: replies count toward --max-backlog (issue 9).
//!
//! Every byte the engine queues for a connection (DATA, SUBACK/UNSUBACK,
//! PONG, ERROR, WebSocket pong/ping/close frames) counts toward
//! `max_backlog`. A client that pipelines requests and never reads the
//! replies is cut exactly like a subscriber that stops reading DATA: ERROR 6
//! (on WebSocket followed by close 1008), then the connection is closed;
//! counted as a slow consumer. Meanwhile the engine's queued bytes stay
//! bounded, and a healthy subscriber on the same engine is unaffected.

mod common;

use common::healthy::{Healthy, P99_BOUND};
use common::ws::{server_frame, WsClient, WsEvent};
use common::{config, start, wait_until, READ_TIMEOUT};
use ringcast::proto::ClientFrame;
use ringcast::stats::CutReason;
use ringcast::ws::frame::{self, Opcode};
use ringcast::{Config, Engine};
use ringcast_client::{Client, ClientError, OwnedServerFrame};
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

const MAX_FRAME: u32 = 64 << 10;
const MAX_BACKLOG: usize = 256 << 10;
/// What an attacker writes at most. The kernel holds a few MiB of replies
/// for a peer that does not read (the server's send buffer grows to
/// tcp_wmem's 4 MiB ceiling, the client's receive buffer stays small when
/// nothing is read), so 20 MB of requests, each answered with as many bytes,
/// queue well past `MAX_BACKLOG` in the engine unless it cuts the attacker.
const ATTACK_BYTES: usize = 20 << 20;
/// How long the engine may take to cut the attacker once it starts.
const CUT_TIMEOUT: Duration = Duration::from_secs(5);
/// The attacker's writes give up when the server stops reading this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the engine may take to free a connection it closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of the healthy pair.
const HEALTHY_CONNS: usize = 2;

fn engine() -> Engine {
    start(Config {
        max_frame: MAX_FRAME,
        max_backlog: MAX_BACKLOG,
        ..config(2)
    })
}

/// Writes what `fill` produces, batch after batch, until `ATTACK_BYTES`
/// are written or a write fails (the server cut the connection and reset
/// it, or stopped reading for `WRITE_TIMEOUT`). Returns the bytes written.
fn flood(mut s: TcpStream, mut fill: impl FnMut(&mut Vec<u8>)) -> usize {
    s.set_write_timeout(Some(WRITE_TIMEOUT)).unwrap();
    let mut written = 0;
    let mut buf = Vec::with_capacity(64 << 10);
    while written < ATTACK_BYTES {
        buf.clear();
        fill(&mut buf);
        if s.write_all(&buf).is_err() {
            break;
        }
        written += buf.len();
    }
    written
}

/// Ends the attacker's writes at once (the server has closed; a write it
/// no longer reads would otherwise wait for the write timeout).
fn stop_writing(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Both);
}

/// Waits for the engine to cut a slow consumer, sampling the engine's queued
/// bytes meanwhile; returns the most it saw. Fails if nobody is cut.
fn watch_until_cut(engine: &Engine, what: &str) -> u64 {
    let mut most = 0;
    let cut = wait_until(CUT_TIMEOUT, || {
        let s = engine.stats();
        most = most.max(s.backlog_bytes);
        s.slow_consumers_total() >= 1
    });
    assert!(
        cut,
        "{what}: a client that never reads its replies was not cut off within {CUT_TIMEOUT:?}; \
         the engine had up to {most} bytes queued (limit {MAX_BACKLOG})"
    );
    most
}

/// The bytes queued in the whole engine never passed one connection's limit
/// plus one largest frame (the healthy pair's queues are empty but for a
/// frame in passing).
fn assert_backlog_bounded(most: u64, what: &str) {
    let bound = (MAX_BACKLOG + MAX_FRAME as usize) as u64;
    assert!(
        most <= bound,
        "{what}: the engine queued {most} bytes for a client that does not read \
         (--max-backlog {MAX_BACKLOG}, bound {bound})"
    );
}

/// After the cut: exactly one slow consumer, one ERROR (code 6), one cut for
/// backlog; the attacker's connection freed, `live` connections left.
fn assert_cut_accounted(engine: &Engine, live: usize, what: &str) {
    let s = engine.stats();
    assert_eq!(
        (
            s.slow_consumers_total(),
            s.errors[6],
            s.cuts[CutReason::Backlog as usize]
        ),
        (1, 1, 1),
        "{what}: slow_consumers, errors[6], cuts[backlog] ({s:?})"
    );
    assert_eq!(
        s.errors.iter().sum::<u64>(),
        1,
        "{what}: ERROR frames sent, by code: {:?}",
        s.errors
    );
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.connections() == live),
        "{what}: {} connections open after the cut, expected {live}",
        engine.connections()
    );
}

/// A 64-byte PING payload naming request `i`.
fn ping_payload(i: u64) -> [u8; 64] {
    let mut p = [0u8; 64];
    for w in p.chunks_exact_mut(8) {
        w.copy_from_slice(&i.to_le_bytes());
    }
    p
}

/// Reads a native attacker's stream to its end after the cut: `reply(i)`
/// checks the reply to request `i` (the replies come in request order, none
/// skipped); then ERROR 6; then end of stream. Returns the replies read,
/// which may be none: the engine can queue past the limit in one loop turn,
/// before any send, and the cut drops what was not sent yet.
fn read_replies_then_error_6(
    c: &mut Client,
    what: &str,
    mut reply: impl FnMut(u64, OwnedServerFrame),
) -> u64 {
    let mut n = 0;
    loop {
        match c.next_frame() {
            Ok(OwnedServerFrame::Error { code, message, .. }) => {
                assert_eq!(
                    code, 6,
                    "{what}: after {n} replies: ERROR {code} ({message})"
                );
                break;
            }
            Ok(f) => {
                reply(n, f);
                n += 1;
            }
            Err(e) => panic!("{what}: after {n} replies, expected more or ERROR 6, got {e}"),
        }
    }
    match c.next_frame() {
        Err(ClientError::Closed) => {}
        Err(ClientError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ) => {}
        other => panic!("{what}: after ERROR 6 the server closes, got {other:?}"),
    }
    n
}

#[test]
fn pipelined_pings_never_read_are_cut_with_error_6() {
    const WHAT: &str = "PING flood";
    let engine = engine();
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);

    let mut attacker = common::connect(addr);
    let stream = attacker.get_ref().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut i = 0u64;
        flood(stream, |buf| {
            for _ in 0..900 {
                ClientFrame::Ping {
                    payload: &ping_payload(i),
                }
                .encode(buf);
                i += 1;
            }
        })
    });

    let most = watch_until_cut(&engine, WHAT);
    attacker.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let pongs = read_replies_then_error_6(&mut attacker, WHAT, |i, f| match f {
        OwnedServerFrame::Pong { payload } if payload == ping_payload(i) => {}
        other => panic!("{WHAT}: reply {i} should be the PONG for PING {i}, got {other:?}"),
    });
    stop_writing(attacker.get_ref());
    let written = writer.join().expect("attacker thread");
    let sent = (written / 72) as u64;
    assert!(
        pongs < sent,
        "{WHAT}: all {sent} PINGs were answered: the attacker was never behind"
    );
    assert_backlog_bounded(most, WHAT);
    assert_cut_accounted(&engine, HEALTHY_CONNS, WHAT);
    healthy.finish().assert_ok(WHAT, P99_BOUND);
}

#[test]
fn pipelined_subscribe_unsubscribe_never_read_are_cut_with_error_6() {
    const WHAT: &str = "SUBSCRIBE/UNSUBSCRIBE flood";
    // A long topic makes each reply long: fewer requests fill the queues.
    let topic: String = format!("flood.{}", "s".repeat(240));
    let engine = engine();
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);
    // Other subscribers keep the topic alive on both cores (16 connections
    // all landing on one core: odds of 1 in 2^15), so the attacker's
    // requests are answered at once whichever core it lands on. Otherwise a
    // SUBSCRIBE on a core without the topic waits for the owner core, and
    // the replies trickle out too slowly to fill the kernel's buffers and
    // the backlog within the test's time.
    const HELPERS: usize = 16;
    let _helpers: Vec<Client> = (0..HELPERS)
        .map(|_| {
            let mut h = common::connect(addr);
            h.subscribe(&topic).unwrap();
            h
        })
        .collect();

    let mut attacker = common::connect(addr);
    let stream = attacker.get_ref().try_clone().unwrap();
    let t = topic.clone();
    let writer = std::thread::spawn(move || {
        let mut pair = Vec::new();
        ClientFrame::Subscribe { topic: &t }.encode(&mut pair);
        ClientFrame::Unsubscribe { topic: &t }.encode(&mut pair);
        let batch = pair.repeat(120);
        flood(stream, |buf| buf.extend_from_slice(&batch))
    });

    let most = watch_until_cut(&engine, WHAT);
    attacker.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    read_replies_then_error_6(&mut attacker, WHAT, |i, f| match (i % 2, f) {
        (0, OwnedServerFrame::SubAck { topic: t, .. }) if t == topic => {}
        (1, OwnedServerFrame::UnsubAck { topic: t }) if t == topic => {}
        (_, other) => panic!(
            "{WHAT}: reply {i} should be the {} of {topic}, got {other:?}",
            if i % 2 == 0 { "SUBACK" } else { "UNSUBACK" }
        ),
    });
    stop_writing(attacker.get_ref());
    writer.join().expect("attacker thread");
    assert_backlog_bounded(most, WHAT);
    assert_cut_accounted(&engine, HEALTHY_CONNS + HELPERS, WHAT);
    let s = engine.stats();
    assert_eq!(
        s.subscriptions,
        1 + HELPERS as u64,
        "{WHAT}: the attacker's subscription went with it ({s:?})"
    );
    healthy.finish().assert_ok(WHAT, P99_BOUND);
}

#[test]
fn websocket_pings_never_read_are_cut_with_error_6_and_close_1008() {
    const WHAT: &str = "WebSocket ping flood";
    const PAYLOAD: usize = frame::MAX_CONTROL_PAYLOAD;
    let payload = |i: u64| -> Vec<u8> {
        let mut p = vec![(i % 251) as u8; PAYLOAD];
        p[..8].copy_from_slice(&i.to_le_bytes());
        p
    };
    let engine = engine();
    let healthy = Healthy::start(engine.local_addr());

    let mut ws = WsClient::connect(engine.ws_addr().unwrap());
    let stream = ws.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut i = 0u64;
        flood(stream, |buf| {
            for _ in 0..500 {
                let mask = (i as u32).wrapping_mul(0x9E37_79B9).to_le_bytes();
                frame::encode_client_frame(buf, Opcode::Ping, &payload(i), mask, true);
                i += 1;
            }
        })
    });

    let most = watch_until_cut(&engine, WHAT);
    ws.set_read_timeout(READ_TIMEOUT);
    let mut pongs = 0u64;
    loop {
        match ws.next_event() {
            Ok(Some(WsEvent::Pong(p))) => {
                assert!(
                    p == payload(pongs),
                    "{WHAT}: pong {pongs} does not echo ping {pongs}"
                );
                pongs += 1;
            }
            Ok(Some(WsEvent::Binary(m))) => {
                match server_frame(&m, WHAT) {
                    OwnedServerFrame::Error { code: 6, .. } => {}
                    other => panic!("{WHAT}: after {pongs} pongs, expected ERROR 6, got {other:?}"),
                }
                break;
            }
            other => {
                panic!("{WHAT}: after {pongs} pongs, expected more or ERROR 6, got {other:?}")
            }
        }
    }
    ws.expect_close(1008, WHAT);
    stop_writing(&ws.stream);
    writer.join().expect("attacker thread");
    assert_backlog_bounded(most, WHAT);
    assert_cut_accounted(&engine, HEALTHY_CONNS, WHAT);
    healthy.finish().assert_ok(WHAT, P99_BOUND);
}

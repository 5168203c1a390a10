//! Isolation, finding 3: a half-sent frame cannot hold the engine's memory
//! forever (issue 9).
//!
//! Once a client has sent part of a frame (native, or a WebSocket frame or
//! message), the whole frame must arrive within `frame_timeout`, or the
//! connection gets ERROR 9 (incomplete frame; on WebSocket then close 1008)
//! and is closed. The engine also holds at most about `max_incomplete` bytes
//! of incomplete frames (split evenly per reactor): past a reactor's share,
//! the connection holding the most gets ERROR 9 and is closed. A client that
//! sends its frames whole, or in parts that arrive in time, is not affected.

mod common;

use common::healthy::{Healthy, P99_BOUND};
use common::ws::{server_frame, WsClient, WsEvent};
use common::{config, connect, expect_closed, start, wait_until};
use ringcast::proto::ClientFrame;
use ringcast::stats::CutReason;
use ringcast::ws::frame::{self, Opcode};
use ringcast::{Config, Engine};
use ringcast_client::{Client, ClientError, OwnedServerFrame};
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FRAME_TIMEOUT: Duration = Duration::from_secs(1);
/// The engine may date a frame's start from its loop's clock reading, up to
/// one 50 ms tick before the bytes were handed to it.
const EARLY_SLACK: Duration = Duration::from_millis(50);
/// Latest acceptable cut after the first byte, for a 1 s frame timeout: the
/// timeout, a scan period (250 ms) and a generous margin for a busy VM.
const LATE_BOUND: Duration = Duration::from_secs(3);
/// How long the engine may take to free the connections it closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of the healthy pair.
const HEALTHY_CONNS: usize = 2;
const MAX_FRAME: u32 = 1 << 20;

/// A PUBLISH whose `len` field is exactly `len` (4 + topic + payload).
fn publish_frame(topic: &str, len: usize) -> Vec<u8> {
    let payload = vec![0x5a; len - 4 - topic.len()];
    let mut out = Vec::new();
    ClientFrame::Publish {
        topic,
        payload: &payload,
    }
    .encode(&mut out);
    assert_eq!(out.len(), 4 + len);
    out
}

/// Reads the next frame: it must be ERROR 9; then the server must close.
fn expect_error_9_then_close(c: &mut Client, what: &str) {
    match c.next_frame() {
        Ok(OwnedServerFrame::Error { code, message, .. }) => {
            assert_eq!(code, 9, "{what}: ERROR {code} ({message})")
        }
        Err(ClientError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
            panic!("{what}: no ERROR 9 within {ERROR_WAIT:?} of the frame's beginning")
        }
        other => panic!("{what}: expected ERROR 9, got {other:?}"),
    }
    expect_closed(c, what);
}

/// The cut came `elapsed` after the client's first byte of the frame.
fn assert_cut_in_time(elapsed: Duration, what: &str) {
    assert!(
        elapsed + EARLY_SLACK >= FRAME_TIMEOUT,
        "{what}: cut {elapsed:?} after the frame began, before the {FRAME_TIMEOUT:?} frame timeout"
    );
    assert!(
        elapsed <= LATE_BOUND,
        "{what}: cut only {elapsed:?} after the frame began (frame timeout {FRAME_TIMEOUT:?})"
    );
}

/// Raises its flag when dropped, also while a failing test unwinds, so the
/// threads that watch the flag end and the test's scope can finish.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How long a client waits for its ERROR 9 before the test fails.
const ERROR_WAIT: Duration = Duration::from_secs(4);

/// A scoped thread's result; its panic, with its own message, if it failed.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn assert_connections_return(engine: &Engine, n: usize, what: &str) {
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.connections() == n),
        "{what}: {} connections open, expected {n}",
        engine.connections()
    );
}

#[test]
fn frames_left_incomplete_are_cut_after_the_frame_timeout() {
    const WHAT: &str = "incomplete frames";
    const STALLED: usize = 50;
    const SPLIT_TOPIC: &str = "split.topic";
    let engine = start(Config {
        frame_timeout: FRAME_TIMEOUT,
        max_frame: MAX_FRAME,
        ..config(2)
    });
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);
    let big = publish_frame("stalled", MAX_FRAME as usize);
    let mut split_sub = connect(addr);
    split_sub.subscribe(SPLIT_TOPIC).unwrap();

    std::thread::scope(|s| {
        // 50 clients send all of a 1 MiB PUBLISH but its last byte.
        let stalled: Vec<_> = (0..STALLED)
            .map(|i| {
                let big = &big;
                s.spawn(move || {
                    let what = format!("stalled client {i}");
                    let mut c = connect(addr);
                    c.set_read_timeout(Some(ERROR_WAIT)).unwrap();
                    let t0 = Instant::now();
                    c.send_raw(&big[..big.len() - 1])
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    expect_error_9_then_close(&mut c, &what);
                    (what, t0.elapsed())
                })
            })
            .collect();

        // A slowloris: a 1 KiB frame, one byte every 50 ms.
        let slowloris = s.spawn(move || {
            let what = "slowloris";
            let frame = publish_frame("slow", 1 << 10);
            let mut c = connect(addr);
            c.set_read_timeout(Some(ERROR_WAIT)).unwrap();
            let mut w = c.get_ref().try_clone().unwrap();
            let cut = AtomicBool::new(false);
            std::thread::scope(|s2| {
                let cut = &cut;
                let _stop = StopOnDrop(cut);
                let t0 = Instant::now();
                s2.spawn(move || {
                    let start = Instant::now();
                    for (k, b) in frame.iter().enumerate() {
                        if cut.load(Ordering::Relaxed) || w.write_all(&[*b]).is_err() {
                            break;
                        }
                        // Pacing: one byte per 50 ms.
                        let due = start + Duration::from_millis(50) * (k as u32 + 1);
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                });
                match c.next_frame() {
                    Ok(OwnedServerFrame::Error { code: 9, .. }) => {}
                    Err(ClientError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                        panic!("{what}: no ERROR 9 within {ERROR_WAIT:?} of the frame's beginning")
                    }
                    other => panic!("{what}: expected ERROR 9, got {other:?}"),
                }
                let elapsed = t0.elapsed();
                expect_closed(&mut c, what);
                (what.to_string(), elapsed)
            })
        });

        // Frames sent in halves 300 ms apart arrive in time: 4 PUBLISHes and
        // a PING, 1.5 s in all (longer than the frame timeout).
        let split = s.spawn(move || {
            let what = "client sending frames in halves";
            let mut c = connect(addr);
            let halves = |c: &mut Client, f: &[u8]| {
                let (a, b) = f.split_at(f.len() / 2);
                c.send_raw(a).unwrap_or_else(|e| panic!("{what}: {e}"));
                // The pause between the halves is the behaviour under test.
                std::thread::sleep(Duration::from_millis(300));
                c.send_raw(b).unwrap_or_else(|e| panic!("{what}: {e}"));
            };
            for k in 0..4 {
                let mut f = Vec::new();
                let payload = format!("half and half {k}");
                ClientFrame::Publish {
                    topic: SPLIT_TOPIC,
                    payload: payload.as_bytes(),
                }
                .encode(&mut f);
                halves(&mut c, &f);
            }
            let mut f = Vec::new();
            ClientFrame::Ping {
                payload: b"in two halves",
            }
            .encode(&mut f);
            halves(&mut c, &f);
            match c.next_frame() {
                Ok(OwnedServerFrame::Pong { payload }) => assert_eq!(payload, b"in two halves"),
                other => panic!("{what}: expected its PONG, got {other:?}"),
            }
        });

        for h in stalled {
            let (what, elapsed) = join(h);
            assert_cut_in_time(elapsed, &what);
        }
        let (what, elapsed) = join(slowloris);
        assert_cut_in_time(elapsed, &what);
        join(split);
    });
    for k in 0..4 {
        let m = split_sub.next_message().unwrap();
        assert_eq!(
            (m.seq, m.payload),
            (k + 1, format!("half and half {k}").into_bytes()),
            "{WHAT}: the frames sent in halves are delivered"
        );
    }
    drop(split_sub);

    let n = STALLED as u64 + 1;
    assert!(
        wait_until(CLOSE_TIMEOUT, || {
            let s = engine.stats();
            s.errors[9] == n && s.cuts[CutReason::IncompleteFrame as usize] == n
        }),
        "{WHAT}: expected {n} ERROR 9 and {n} cuts for incomplete frames: {:?}",
        engine.stats()
    );
    let s = engine.stats();
    assert_eq!(
        s.errors.iter().sum::<u64>(),
        n,
        "{WHAT}: ERRORs {:?}",
        s.errors
    );
    assert_connections_return(&engine, HEALTHY_CONNS, WHAT);
    healthy.finish().assert_ok(WHAT, P99_BOUND);
}

#[test]
fn incomplete_frames_past_max_incomplete_cut_the_largest_holders() {
    const WHAT: &str = "max_incomplete";
    const ATTACKERS: usize = 40;
    const MAX_INCOMPLETE: usize = 8 << 20;
    const SENT: usize = 900 << 10;
    const CORES: usize = 2;
    // The engine may hold its budget plus, per core, the frame it is
    // receiving when it checks.
    const BOUND: usize = MAX_INCOMPLETE + CORES * MAX_FRAME as usize;
    let engine = start(Config {
        frame_timeout: Duration::from_secs(10),
        max_frame: MAX_FRAME,
        max_incomplete: MAX_INCOMPLETE,
        ..config(CORES)
    });
    let addr = engine.local_addr();
    let healthy = Healthy::start(addr);
    let big = publish_frame("hoard", MAX_FRAME as usize);
    let begun = Instant::now();

    let stop = AtomicBool::new(false);
    let cut = AtomicUsize::new(0);
    let faults = Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        // Lets the readers go however the main thread leaves the scope.
        let _stop = StopOnDrop(&stop);
        for i in 0..ATTACKERS {
            let (big, stop, cut, faults) = (&big, &stop, &cut, &faults);
            s.spawn(move || {
                let fault = |m: String| faults.lock().unwrap().push(format!("attacker {i}: {m}"));
                let mut c = connect(addr);
                c.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let error = match c.send_raw(&big[..SENT]) {
                    Ok(()) => loop {
                        match c.next_frame() {
                            Ok(f) => break Some(f),
                            Err(e) if e.is_recoverable() => {
                                if stop.load(Ordering::Relaxed) {
                                    break None; // a survivor
                                }
                            }
                            Err(e) => {
                                fault(format!("closed without ERROR 9: {e}"));
                                return;
                            }
                        }
                    },
                    // Cut while still sending: the client read the ERROR
                    // the server sent before closing.
                    Err(ClientError::Server { code, message }) => Some(OwnedServerFrame::Error {
                        code,
                        topic: None,
                        message,
                    }),
                    Err(e) => {
                        fault(format!("sending failed without ERROR 9: {e}"));
                        return;
                    }
                };
                match error {
                    None => {}
                    Some(OwnedServerFrame::Error { code: 9, .. }) => {
                        cut.fetch_add(1, Ordering::Relaxed);
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        match c.next_frame() {
                            Err(ClientError::Closed) => {}
                            Err(ClientError::Io(e)) if e.kind() == ErrorKind::ConnectionReset => {}
                            other => fault(format!("after ERROR 9, expected a close: {other:?}")),
                        }
                    }
                    Some(other) => fault(format!("expected ERROR 9, got {other:?}")),
                }
            });
        }

        let fits = |cut: usize| (ATTACKERS - cut) * SENT <= BOUND;
        let bounded = wait_until(Duration::from_secs(5), || fits(cut.load(Ordering::Relaxed)));
        let cut_now = cut.load(Ordering::Relaxed);
        assert!(
            bounded,
            "{WHAT}: {} connections still hold {SENT} bytes of incomplete frames each \
             ({} bytes, bound {BOUND}); {:?}",
            ATTACKERS - cut_now,
            (ATTACKERS - cut_now) * SENT,
            engine.stats()
        );
        // Every cut the engine counts is one the client saw as ERROR 9.
        assert!(
            wait_until(Duration::from_secs(2), || {
                engine.stats().cuts[CutReason::InputMemory as usize]
                    == cut.load(Ordering::Relaxed) as u64
            }),
            "{WHAT}: the engine counts {} cuts for input memory, the clients saw {} ERROR 9",
            engine.stats().cuts[CutReason::InputMemory as usize],
            cut.load(Ordering::Relaxed)
        );
        assert!(
            begun.elapsed() < Duration::from_secs(9),
            "{WHAT}: the checks took so long the frame timeout may have done the cutting"
        );
        let survivors = ATTACKERS - cut.load(Ordering::Relaxed);
        eprintln!(
            "{WHAT}: {} cut, {survivors} survivors",
            ATTACKERS - survivors
        );
        assert!(
            survivors >= 1,
            "{WHAT}: every connection was cut: {MAX_INCOMPLETE} bytes is a budget, and {SENT} \
             bytes fit a core's share several times over"
        );
        // The survivors' threads end and drop their connections.
        stop.store(true, Ordering::Relaxed);
    });
    let faults = faults.into_inner().unwrap();
    assert!(faults.is_empty(), "{WHAT}: {faults:#?}");
    let s = engine.stats();
    let cut = cut.into_inner() as u64;
    assert_eq!(
        (s.errors[9], s.cuts[CutReason::InputMemory as usize]),
        (cut, cut),
        "{WHAT}: ERROR 9 / cuts for input memory ({s:?})"
    );
    assert_eq!(
        s.cuts[CutReason::IncompleteFrame as usize],
        0,
        "{WHAT}: nobody waited out the 10 s frame timeout ({s:?})"
    );
    assert_connections_return(&engine, HEALTHY_CONNS, WHAT);
    healthy.finish().assert_ok(WHAT, P99_BOUND);
}

#[test]
fn a_websocket_message_trickled_in_is_cut_after_the_frame_timeout() {
    const WHAT: &str = "trickled WebSocket message";
    let engine = start(Config {
        frame_timeout: FRAME_TIMEOUT,
        ..config(2)
    });
    let healthy = Healthy::start(engine.local_addr());

    // A binary frame announcing 64 KiB (one native PUBLISH frame), then
    // half of it, then one more byte every 100 ms: never silent, never done.
    let native = publish_frame("ws.slow", (64 << 10) - 4);
    let mut bytes = Vec::new();
    frame::encode_client_frame(&mut bytes, Opcode::Binary, &native, [7, 1, 3, 9], true);
    let header = bytes.len() - native.len();
    let (first, rest) = bytes.split_at(header + native.len() / 2);

    let mut ws = WsClient::connect(engine.ws_addr().unwrap());
    ws.set_read_timeout(ERROR_WAIT);
    let mut w = ws.stream.try_clone().unwrap();
    let stop = AtomicBool::new(false);
    let elapsed = std::thread::scope(|s| {
        let t0 = Instant::now();
        w.write_all(first).unwrap();
        let stop = &stop;
        s.spawn(move || {
            let start = Instant::now();
            for (k, b) in rest.iter().enumerate() {
                // Pacing: one byte per 100 ms.
                let due = start + Duration::from_millis(100) * (k as u32 + 1);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                if stop.load(Ordering::Relaxed) || w.write_all(&[*b]).is_err() {
                    break;
                }
            }
        });
        let _stop = StopOnDrop(stop);
        match ws.next_event() {
            Ok(Some(WsEvent::Binary(m))) => match server_frame(&m, WHAT) {
                OwnedServerFrame::Error { code: 9, .. } => {}
                other => panic!("{WHAT}: expected ERROR 9, got {other:?}"),
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                panic!("{WHAT}: no ERROR 9 within {ERROR_WAIT:?} of the frame's beginning")
            }
            other => panic!("{WHAT}: expected ERROR 9, got {other:?}"),
        }
        t0.elapsed()
    });
    ws.expect_close(1008, WHAT);
    assert_cut_in_time(elapsed, WHAT);
    assert!(
        wait_until(CLOSE_TIMEOUT, || {
            let s = engine.stats();
            s.errors[9] == 1 && s.cuts[CutReason::IncompleteFrame as usize] == 1
        }),
        "{WHAT}: expected one ERROR 9 and one cut for an incomplete frame: {:?}",
        engine.stats()
    );
    assert_connections_return(&engine, HEALTHY_CONNS, WHAT);
    healthy.finish().assert_ok(WHAT, P99_BOUND);
}

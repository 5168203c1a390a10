//! Running ringcast as a service, checked on the real binary: systemd
//! readiness over `$NOTIFY_SOCKET`, the log line of each event class (once,
//! with its context, and rate-limited under a flood), an honest last line
//! when the shutdown timeout leaves bytes unsent, a second SIGTERM that ends
//! the process at once, and the upgrade hand-over on the same ports.

mod common;

use common::daemon::{event, free_addr, Daemon};
use ringcast_client::{Client, ClientError, OwnedServerFrame};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

const START: Duration = Duration::from_secs(10);
const LOG_WAIT: Duration = Duration::from_secs(10);

fn client(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    c.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
    c
}

/// A Unix datagram socket of the test's own, for `NOTIFY_SOCKET`.
fn notify_socket(name: &str) -> (UnixDatagram, String) {
    let path =
        std::env::temp_dir().join(format!("ringcast-test-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_read_timeout(Some(START)).unwrap();
    (sock, path.to_string_lossy().into_owned())
}

fn recv_text(sock: &UnixDatagram, what: &str) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification ({what}) within {START:?}: {e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The log lines of event `name` written in full (not a summary).
fn full_lines<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|v| event(v) == name && v.get("suppressed").is_none())
        .collect()
}

#[test]
fn readiness_is_sent_once_every_listener_accepts_and_stopping_on_sigterm() {
    let (sock, path) = notify_socket("ready");
    let (native, web, resp) = (free_addr(), free_addr(), free_addr());
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--listen",
            &native.to_string(),
            "--ws-listen",
            &web.to_string(),
            "--resp-listen",
            &resp.to_string(),
            "--cores",
            "2",
        ],
        &[("NOTIFY_SOCKET", &path)],
    );
    let ready = recv_text(&sock, "READY=1");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(ready.contains("STATUS=serving on"), "{ready:?}");
    // Told ready: every front answers now, with no retry.
    let mut c = client(native);
    assert_eq!(c.ping(b"ready").unwrap(), b"ready");
    let mut h = TcpStream::connect(web).expect("the HTTP port accepts at READY=1");
    h.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    h.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
    let mut text = String::new();
    h.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let mut r = TcpStream::connect(resp).expect("the Redis port accepts at READY=1");
    r.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
    r.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    r.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    // The configuration was logged before readiness.
    let start = d.wait_for("start", LOG_WAIT, |v| event(v) == "start");
    assert!(start["message"]
        .as_str()
        .unwrap()
        .contains(&native.to_string()));

    drop((c, h, r));
    d.signal("TERM");
    let stopping = recv_text(&sock, "STOPPING=1");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {:#?}", d.lines());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn each_event_class_is_logged_once_with_its_context_and_a_flood_is_summarized() {
    const FLOOD: usize = 100;
    let (native, web, resp) = (free_addr(), free_addr(), free_addr());
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--listen",
            &native.to_string(),
            "--ws-listen",
            &web.to_string(),
            "--resp-listen",
            &resp.to_string(),
            "--cores",
            "1",
            "--publish-token",
            "s3cret",
            "--max-subscriptions",
            "1",
            "--max-topics",
            "2",
            "--max-frame",
            "64KiB",
            "--max-backlog",
            "256KiB",
            "--http-timeout",
            "0.3",
            "--frame-timeout",
            "0.3",
            "--ws-ping-interval",
            "0.2",
            "--ws-idle-timeout",
            "0.5",
        ],
        &[],
    );
    d.wait_accepting(native, START);

    // Subscription limit: the second SUBSCRIBE is refused, the connection stays.
    let mut x = client(native);
    x.subscribe("ev.a").unwrap();
    assert!(
        x.subscribe("ev.b").is_err(),
        "a second subscription past the limit"
    );
    let x_addr = x.get_ref().local_addr().unwrap();

    // A subscriber that never reads: cut off as a slow consumer.
    let mut slow = client(native);
    slow.subscribe("ev.slow").unwrap();
    let slow_addr = slow.get_ref().local_addr().unwrap();

    // Topic limit: "ev.a" and "ev.slow" exist; a third topic is refused.
    let mut y = client(native);
    assert!(
        y.subscribe("ev.c").is_err(),
        "a third topic past --max-topics 2"
    );
    let y_addr = y.get_ref().local_addr().unwrap();

    // Auth refused: PUBLISH without AUTH.
    let mut z = client(native);
    z.publish("ev.a", b"no token").unwrap();
    match z.next_frame() {
        Ok(OwnedServerFrame::Error { code: 5, .. }) => {}
        other => panic!("expected ERROR 5, got {other:?}"),
    }
    let z_addr = z.get_ref().local_addr().unwrap();

    let mut publisher = client(native);
    publisher.auth(b"s3cret").unwrap();
    let payload = vec![7u8; 60 << 10];
    let deadline = Instant::now() + LOG_WAIT;
    while !d.events().iter().any(|v| event(v) == "slow_consumer") {
        for _ in 0..64 {
            publisher.publish("ev.slow", &payload).unwrap();
        }
        publisher.ping(b"sync").unwrap();
        assert!(
            Instant::now() < deadline,
            "no slow_consumer line: {:#?}",
            d.lines()
        );
    }

    // An HTTP request that never completes: 408 after --http-timeout.
    let mut h = TcpStream::connect(web).unwrap();
    h.write_all(b"GET /heal").unwrap();
    let h_addr = h.local_addr().unwrap();
    h.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
    let mut answer = String::new();
    let _ = h.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A WebSocket peer that answers nothing, not even the ping: closed
    // after --ws-idle-timeout.
    let (stream, key) = common::ws::WsClient::begin(web, None);
    let ws_addr = stream.local_addr().unwrap();
    let ws = common::ws::WsClient::finish(stream, &key);
    d.wait_for("ws_idle", LOG_WAIT, |v| event(v) == "ws_idle");

    // A frame begun and never finished: ERROR 9 after --frame-timeout.
    let mut part = client(native);
    part.send_raw(&[200, 0, 0]).unwrap();
    match part.next_frame() {
        Ok(OwnedServerFrame::Error { code: 9, .. }) => {}
        other => panic!("expected ERROR 9, got {other:?}"),
    }
    let part_addr = part.get_ref().local_addr().unwrap();

    // A Redis request the parser refuses.
    let mut r = TcpStream::connect(resp).unwrap();
    r.write_all(b"*x\r\n").unwrap();
    let r_addr = r.local_addr().unwrap();
    r.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
    let mut reply = String::new();
    let _ = r.read_to_string(&mut reply);
    assert!(reply.starts_with("-ERR Protocol error"), "{reply}");

    // A flood of garbage: one line in full, the rest counted.
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let mut s = TcpStream::connect(native).unwrap();
        // A frame of an unknown kind (0xEE): ERROR 3, then a close.
        s.write_all(&common::raw_frame(4, 0xEE, 0, 0, &[])).unwrap();
        flood.push(s);
    }
    for mut s in flood {
        s.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    drop((x, slow, y, z, publisher, h, part, r, ws));

    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status}: {:#?}", d.lines());
    let events = d.events();
    let once = |name: &str, peer: SocketAddr| {
        let lines = full_lines(&events, name);
        assert_eq!(lines.len(), 1, "{name} logged once: {lines:#?}");
        let v = lines[0];
        assert_eq!(v["peer"].as_str(), Some(peer.to_string().as_str()), "{v}");
        assert!(v["core"].is_u64() && v["conn"].is_u64(), "{v}");
        assert!(v["front"].is_string(), "{v}");
        v.clone()
    };
    let v = once("subscription_limit", x_addr);
    let text = v["message"].as_str().unwrap();
    assert!(
        text.contains("ev.b") && text.contains("--max-subscriptions"),
        "{v}"
    );
    let v = once("slow_consumer", slow_addr);
    assert!(
        v["message"].as_str().unwrap().contains("--max-backlog"),
        "{v}"
    );
    assert_eq!(v["level"], "WARN");
    let v = once("topic_refused", y_addr);
    assert!(
        v["message"].as_str().unwrap().contains("topic limit"),
        "{v}"
    );
    let v = once("auth_refused", z_addr);
    assert!(v["message"].as_str().unwrap().contains("ERROR 5"), "{v}");
    let v = once("http_timeout", h_addr);
    assert_eq!(v["front"], "http");
    let v = once("ws_idle", ws_addr);
    assert_eq!(v["front"], "websocket");
    let v = once("incomplete_frame", part_addr);
    assert!(v["message"].as_str().unwrap().contains("ERROR 9"), "{v}");
    let v = once("resp_protocol_error", r_addr);
    assert_eq!(v["front"], "resp");

    // The flood: the first in full, the others in one summary line.
    let garbage = full_lines(&events, "protocol_error");
    assert_eq!(garbage.len(), 1, "{garbage:#?}");
    assert!(garbage[0]["message"].as_str().unwrap().contains("ERROR 3"));
    let summaries: Vec<&Value> = events
        .iter()
        .filter(|v| event(v) == "protocol_error" && v.get("suppressed").is_some())
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    assert_eq!(summaries[0]["suppressed"].as_u64(), Some(FLOOD as u64 - 1));

    // Shutdown progress, and the last line says what happened.
    assert_eq!(full_lines(&events, "shutdown").len(), 1);
    let last = events.last().unwrap();
    assert_eq!(event(last), "stopped", "{last}");
    assert_eq!(last["unflushed_connections"], 0, "{last}");
    // Nothing is logged per message: a few dozen lines for hundreds of frames.
    assert!(events.len() < 20, "{} lines: {events:#?}", events.len());
}

#[test]
fn a_refused_connection_at_the_limit_is_logged_with_its_peer() {
    let native = free_addr();
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--listen",
            &native.to_string(),
            "--ws-listen",
            "off",
            "--resp-listen",
            "off",
            "--cores",
            "1",
            "--max-connections",
            "1",
        ],
        &[],
    );
    d.wait_accepting(native, START);
    // The probe of `wait_accepting` may still hold the one slot: wait until
    // a client is served.
    let deadline = Instant::now() + START;
    let mut held = loop {
        let mut c = client(native);
        if c.ping(b"in").is_ok() {
            break c;
        }
        assert!(Instant::now() < deadline, "no connection served");
    };
    let mut refused = TcpStream::connect(native).unwrap();
    let peer = refused.local_addr().unwrap();
    refused
        .set_read_timeout(Some(common::READ_TIMEOUT))
        .unwrap();
    let mut sink = Vec::new();
    let _ = refused.read_to_end(&mut sink);
    let v = d.wait_for("connection_limit", LOG_WAIT, |v| {
        event(v) == "connection_limit" && v["peer"] == peer.to_string()
    });
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("--max-connections (1)"),
        "{v}"
    );
    assert_eq!(held.ping(b"still").unwrap(), b"still");
    drop(held);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

/// Starts a daemon with a subscriber that never reads and `bytes` of
/// frames owed to it; returns the daemon, the subscriber (kept open) and
/// the bytes published.
fn daemon_owing_a_stuck_subscriber(timeout: &str) -> (Daemon, Client, u64) {
    let native = free_addr();
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--listen",
            &native.to_string(),
            "--ws-listen",
            "off",
            "--resp-listen",
            "off",
            "--cores",
            "2",
            "--max-backlog",
            "128MiB",
            "--shutdown-timeout",
            timeout,
        ],
        &[],
    );
    d.wait_accepting(native, START);
    let mut sub = client(native);
    sub.subscribe("stuck").unwrap();
    let mut publisher = client(native);
    let payload = vec![1u8; 64 << 10];
    // 48 MiB: more than the largest receive buffer (tcp_rmem, 32 MiB here).
    let frames = 768u64;
    for _ in 0..frames {
        publisher.publish("stuck", &payload).unwrap();
    }
    publisher.ping(b"all accepted").unwrap();
    drop(publisher);
    // From here on nobody reads `sub`.
    (d, sub, frames * payload.len() as u64)
}

#[test]
fn the_last_line_reports_what_the_shutdown_timeout_left_unsent() {
    let (mut d, stuck, published) = daemon_owing_a_stuck_subscriber("1");
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "exit 0 after a graceful shutdown: {status}"
    );
    let events = d.events();
    let shutdown = full_lines(&events, "shutdown");
    assert_eq!(shutdown.len(), 1, "{events:#?}");
    assert!(
        shutdown[0]["owed_bytes"].as_u64().unwrap() > 0,
        "{:?}",
        shutdown[0]
    );
    let last = events.last().unwrap();
    assert_eq!(event(last), "stopped", "{last}");
    assert_eq!(last["level"], "WARN", "{last}");
    assert_eq!(last["unflushed_connections"], 1, "{last}");
    let unsent = last["unflushed_bytes"].as_u64().unwrap();
    // Owed: everything but what the subscriber's receive buffer took (at
    // most the kernel's tcp_rmem maximum), plus framing and ERROR 8.
    let rmem_max: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(6 << 20);
    assert!(
        unsent >= published.saturating_sub(rmem_max) && unsent < published + (64 << 10),
        "{unsent} unsent of {published} (receive buffer at most {rmem_max})"
    );
    let text = last["message"].as_str().unwrap();
    assert!(
        text.contains(&format!("1 connections still owed {unsent} bytes")),
        "{text}"
    );
    drop(stuck);
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let (mut d, stuck, _) = daemon_owing_a_stuck_subscriber("60");
    d.signal("TERM");
    d.wait_for("shutdown", LOG_WAIT, |v| event(v) == "shutdown");
    let second = Instant::now();
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(143), "128 + SIGTERM: {status}");
    assert!(second.elapsed() < Duration::from_secs(5));
    let events = d.events();
    let last = events.last().unwrap();
    assert_eq!(event(last), "stopped", "{last}");
    assert_eq!(last["forced"], true, "{last}");
    drop(stuck);
}

/// Subscribes `c` to `topic`; `Err` when the daemon it reached is going away.
fn try_subscribe(addr: SocketAddr, topic: &str) -> Result<Client, ClientError> {
    let mut c = Client::connect(addr)?;
    c.set_read_timeout(Some(common::READ_TIMEOUT))?;
    c.subscribe(topic)?;
    Ok(c)
}

#[test]
fn upgrade_hand_over_on_the_same_ports_loses_no_frame_and_the_old_one_drains() {
    const SUBS: usize = 1000;
    const MESSAGES: u64 = 20;
    const TOPIC: &str = "upgrade.news";
    let native = free_addr();
    let args = |extra: &'static [&'static str]| {
        let mut a = vec![
            "serve".to_string(),
            "--listen".into(),
            native.to_string(),
            "--ws-listen".into(),
            "off".into(),
            "--resp-listen".into(),
            "off".into(),
            "--cores".into(),
            "2".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let old_args = args(&[]);
    let old_refs: Vec<&str> = old_args.iter().map(String::as_str).collect();
    let mut old = Daemon::spawn(&old_refs, &[]);
    old.wait_accepting(native, START);
    let mut subs: Vec<Client> = (0..SUBS)
        .map(|i| try_subscribe(native, TOPIC).unwrap_or_else(|e| panic!("subscriber {i}: {e}")))
        .collect();

    // The new version on the same port, told to share it.
    let (sock, path) = notify_socket("upgrade");
    let new_args = args(&["--takeover"]);
    let new_refs: Vec<&str> = new_args.iter().map(String::as_str).collect();
    let mut new = Daemon::spawn(&new_refs, &[("NOTIFY_SOCKET", &path)]);
    let ready = recv_text(&sock, "READY=1 of the new process");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");

    // The old one is told to go: each subscriber gets ERROR 8, then EOF,
    // and reconnects to the port, served now by the new process.
    old.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, c) in subs.iter_mut().enumerate() {
        match c.next_frame() {
            Ok(OwnedServerFrame::Error { code: 8, .. }) => {}
            other => panic!("subscriber {i}: expected ERROR 8, got {other:?}"),
        }
        let fresh = loop {
            // A connection that reached the old process's listen queue just
            // before it closed is reset: try again.
            match try_subscribe(native, TOPIC) {
                Ok(c) => break c,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "subscriber {i} cannot reconnect: {e}"
                ),
            }
        };
        *c = fresh;
    }
    let status = old.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "the old process exits 0: {status}: {:#?}",
        old.lines()
    );
    let last = old.events().last().cloned().unwrap();
    assert_eq!(event(&last), "stopped", "{last}");
    assert_eq!(
        last["unflushed_connections"], 0,
        "the old one drained: {last}"
    );
    // A reconnection made in the few ms before every old reactor saw the
    // signal reached the old process, and got ERROR 8 in turn: such a
    // client reconnects again, as any client does on ERROR 8. The old
    // process is gone now, so every connection that answers is the new one's.
    let mut again = 0;
    for (i, c) in subs.iter_mut().enumerate() {
        if c.ping(b"which").is_err() {
            again += 1;
            *c = try_subscribe(native, TOPIC)
                .unwrap_or_else(|e| panic!("subscriber {i} cannot reconnect: {e}"));
        }
    }
    assert!(
        again < SUBS / 2,
        "{again} of {SUBS} reached the old process again"
    );

    // Every subscriber of the new process gets every frame, in order.
    let mut publisher = client(native);
    for i in 0..MESSAGES {
        publisher.publish(TOPIC, &i.to_le_bytes()).unwrap();
    }
    for (i, c) in subs.iter_mut().enumerate() {
        for want in 1..=MESSAGES {
            let m = c
                .next_message()
                .unwrap_or_else(|e| panic!("subscriber {i}, seq {want}: {e}"));
            assert_eq!(m.seq, want, "subscriber {i}");
            assert_eq!(m.payload, (want - 1).to_le_bytes(), "subscriber {i}");
        }
    }
    drop((subs, publisher));
    new.signal("TERM");
    assert!(new.wait_exit(Duration::from_secs(15)).success());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn sub_and_pub_against_a_port_that_is_not_native_fail_fast_naming_it() {
    let (native, web, resp) = (free_addr(), free_addr(), free_addr());
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--listen",
            &native.to_string(),
            "--ws-listen",
            &web.to_string(),
            "--resp-listen",
            &resp.to_string(),
            "--cores",
            "1",
        ],
        &[],
    );
    d.wait_accepting(native, START);
    d.wait_accepting(web, START);
    d.wait_accepting(resp, START);
    // The HTTP port answers the probe at once; a Redis port (like Redis)
    // waits for the end of an inline command, and the CLI gives up after 2 s.
    for (addr, words, seems, limit) in [
        (
            web,
            &["sub", "t", "--count", "1"][..],
            "answered in HTTP",
            1,
        ),
        (resp, &["sub", "t", "--count", "1"], "Redis port", 4),
        (web, &["pub", "t", "hello"], "answered in HTTP", 1),
        (resp, &["pub", "t", "hello"], "Redis port", 4),
    ] {
        let began = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringcast"))
            .args(words)
            .args(["--addr", &addr.to_string()])
            .env_remove("RINGCAST_ADDR")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let took = began.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{words:?} {addr}: {err}");
        assert!(
            took < Duration::from_secs(limit),
            "{words:?} {addr} took {took:?}"
        );
        assert!(err.contains(seems), "{words:?} {addr}: {err}");
        assert!(
            err.contains("--listen"),
            "names the native port's flag: {err}"
        );
        assert!(!err.contains("Client::"), "no library advice: {err}");
    }
    // The native port works as before.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["pub", "t", "hello", "--addr", &native.to_string()])
        .env_remove("RINGCAST_ADDR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn a_failure_to_start_is_one_log_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--listen",
            &addr.to_string(),
            "--ws-listen",
            "off",
            "--resp-listen",
            "off",
        ],
        &[],
    );
    let status = d.wait_exit(START);
    assert_eq!(status.code(), Some(1), "{:#?}", d.lines());
    // Every line is JSON (events() fails on any other), the last says why.
    let events = d.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(event(&events[0]), "failed");
    assert_eq!(events[0]["level"], "ERROR");
    let text = events[0]["message"].as_str().unwrap();
    assert!(
        text.contains(&format!("port {} in use", addr.port())),
        "{text}"
    );
}

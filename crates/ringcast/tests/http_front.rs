//! Plain HTTP on the WebSocket port: the live page, /healthz, /metrics, and
//! the errors (404, 405, 408, 431, 400). One request per connection; the
//! server closes after every response. /metrics is read with an independent
//! strict Prometheus parser, and its counters are checked to move with real
//! traffic on both transports.

mod common;

use common::prom::{self, Family};
use common::ws::{
    http_exchange, read_response_to_close, request, tcp, HttpResponse, NativeReader, WsClient,
};
use common::{config, connect, start, wait_until};
use ringcast::http::page;
use ringcast::proto::ClientFrame;
use ringcast::stats::Transport;
use ringcast::{Config, Engine};
use ringcast_client::OwnedServerFrame;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

fn ws_addr(engine: &Engine) -> SocketAddr {
    engine.ws_addr().expect("the WebSocket/HTTP listener is on")
}

fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_exchange(addr, &request("GET", path))
}

#[test]
fn page_healthz_and_errors() {
    let engine = start(config(2));
    let addr = ws_addr(&engine);
    // Engine::start may return before every reactor counts itself running
    // (see healthz_is_ok_as_soon_as_engine_start_returns); wait for that here.
    assert!(
        wait_until(CLOSE_TIMEOUT, || reactors_running(addr) == 2.0),
        "the reactors never all ran"
    );
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.connections() == 0),
        "the /metrics connections were not freed"
    );
    let base = engine.stats().http_responses;

    let r = get(addr, "/healthz");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text().starts_with("ok"), "healthz body: {:?}", r.text());
    assert!(r.header("content-type").starts_with("text/plain"));
    assert_eq!(r.header("connection"), "close");

    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
    assert!(
        r.text().contains("ringcast.v1"),
        "the page speaks ringcast.v1"
    );
    assert_eq!(r.body, page::INDEX_HTML.as_bytes());
    assert_eq!(get(addr, "/index.html").body, r.body);

    // HEAD: the same head, Content-Length of the body, and no body.
    let h = http_exchange(addr, &request("HEAD", "/"));
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("content-length"),
        page::INDEX_HTML.len().to_string()
    );
    assert!(h.body.is_empty(), "HEAD sent {} body bytes", h.body.len());

    let r = get(addr, "/nope");
    assert_eq!(r.status, 404, "{r:?}");

    let r = http_exchange(addr, &request("POST", "/metrics"));
    assert_eq!(r.status, 405, "{r:?}");
    let allow: Vec<&str> = r.header("allow").split(',').map(str::trim).collect();
    assert!(
        allow.contains(&"GET") && allow.contains(&"HEAD"),
        "Allow: {allow:?}"
    );

    // Not HTTP at all.
    let r = http_exchange(addr, b"GARBAGE\r\n\r\n");
    assert_eq!(r.status, 400, "{r:?}");

    let st = engine.stats();
    let counted: Vec<u64> = (0..3).map(|i| st.http_responses[i] - base[i]).collect();
    assert_eq!(counted, [4, 3, 0], "2xx, 4xx, 5xx responses");
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.connections() == 0),
        "{} connections left open after one-shot requests",
        engine.connections()
    );
}

/// `ringcast_reactors` from /metrics.
fn reactors_running(addr: SocketAddr) -> f64 {
    val(&metrics(addr), "ringcast_reactors", &[])
}

#[test]
fn healthz_is_ok_as_soon_as_engine_start_returns() {
    // Engine::start "returns once every one [reactor] is serving": /healthz
    // must then say 200 at once. Started 200 times (in batches, each engine
    // with a small pool), because a race shows only now and then.
    const BATCH: usize = 50;
    for batch in 0..4 {
        let mut engines = Vec::with_capacity(BATCH);
        for i in 0..BATCH {
            let engine = start(Config {
                pool_bytes: 2 << 20,
                max_frame: 64 << 10,
                ..config(2)
            });
            let r = get(ws_addr(&engine), "/healthz");
            assert_eq!(
                r.status,
                200,
                "start {}: /healthz right after Engine::start returned: {:?}",
                batch * BATCH + i + 1,
                r.text()
            );
            engines.push(engine);
        }
        // Stop them together (dropping one waits for it).
        for e in &engines {
            e.shutdown();
        }
    }
}

#[test]
fn a_request_head_over_8_kib_is_431() {
    let engine = start(config(2));
    let addr = ws_addr(&engine);
    // A whole head of about 9 KiB: one long header.
    let pad = "a".repeat(9 << 10);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}\r\n\r\n");
    let r = http_exchange(addr, req.as_bytes());
    assert_eq!(r.status, 431, "{r:?}");
    // A head still going at 8 KiB, never finished: answered without
    // waiting for the blank line (or the timeout).
    let mut s = tcp(addr);
    let req = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}");
    s.write_all(req.as_bytes()).unwrap();
    let r = read_response_to_close(&mut s);
    assert_eq!(r.status, 431, "{r:?}");
    // Short but more than 64 header lines: 431 too.
    let mut req = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..70 {
        req.push_str(&format!("X-Filler-{i}: x\r\n"));
    }
    req.push_str("\r\n");
    let r = http_exchange(addr, req.as_bytes());
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(engine.stats().http_responses, [0, 3, 0]);
}

#[test]
fn a_request_not_finished_in_time_gets_408_then_close() {
    let engine = start(Config {
        http_timeout: Duration::from_millis(300),
        ..config(1)
    });
    let mut s = tcp(ws_addr(&engine));
    let sent = Instant::now();
    s.write_all(b"GET /heal").unwrap();
    let r = read_response_to_close(&mut s);
    assert_eq!(r.status, 408, "{r:?}");
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "408 after {:?}, before the 300 ms timeout",
        sent.elapsed()
    );
    assert_eq!(engine.stats().cuts[3], 1, "one request_timeout cut");
}

fn metrics(addr: SocketAddr) -> Vec<Family> {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type").starts_with("text/plain"),
        "{}",
        r.header("content-type")
    );
    prom::parse(&r.text()).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{}", r.text()))
}

/// The /metrics body and its families.
fn metrics_text(addr: SocketAddr) -> (String, Vec<Family>) {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    let text = r.text();
    let f = prom::parse(&text).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
    (text.to_string(), f)
}

fn val(f: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    prom::value(f, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

fn connections(f: &[Family], transport: &str) -> f64 {
    val(f, "ringcast_connections", &[("transport", transport)])
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    const TOPIC: &str = "metrics.traffic";
    const N: u64 = 50;
    let engine = start(config(2));
    let addr = ws_addr(&engine);

    let before = metrics(addr);
    for (name, kind) in [
        ("ringcast_publishes_total", "counter"),
        ("ringcast_deliveries_total", "counter"),
        ("ringcast_encodes_total", "counter"),
        ("ringcast_connections", "gauge"),
        ("ringcast_subscriptions", "gauge"),
        ("ringcast_websocket_upgrades_total", "counter"),
        ("ringcast_publish_to_send_seconds", "histogram"),
        ("ringcast_disconnects_total", "counter"),
        ("ringcast_sent_bytes_total", "counter"),
        ("ringcast_build_info", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        let f = prom::family(&before, name).unwrap_or_else(|| panic!("no family {name}"));
        assert_eq!(f.kind, kind, "{name}");
    }
    // Which build runs, and the process as client libraries report it.
    let build = &prom::family(&before, "ringcast_build_info")
        .unwrap()
        .samples;
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].value, 1.0);
    assert_eq!(
        build[0].label("version"),
        Some(env!("CARGO_PKG_VERSION")),
        "{build:?}"
    );
    assert!(build[0].label("commit").is_some_and(|c| !c.is_empty()));
    // This test process is the engine's: at least its listeners are open.
    assert!(val(&before, "process_open_fds", &[]) >= 3.0);
    assert!(val(&before, "process_max_fds", &[]) >= val(&before, "process_open_fds", &[]));
    assert!(val(&before, "process_resident_memory_bytes", &[]) > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = val(&before, "process_start_time_seconds", &[]);
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );
    let (before_text, _) = metrics_text(addr);
    let before_http = |f: &[Family]| val(f, "ringcast_sent_bytes_total", &[("transport", "http")]);
    // The /metrics request itself is the one HTTP connection.
    assert_eq!(connections(&before, "http"), 1.0);
    assert!(
        wait_until(CLOSE_TIMEOUT, || engine.connections() == 0),
        "the first /metrics connection was not freed"
    );

    let mut ws = WsClient::connect(addr);
    assert_eq!(ws.subscribe(TOPIC), 1);
    let mut tcp_sub = NativeReader::connect(engine.local_addr());
    assert_eq!(tcp_sub.subscribe(TOPIC), 1);
    let mut publisher = connect(engine.local_addr());
    for i in 0..N {
        publisher.publish(TOPIC, &i.to_le_bytes()).unwrap();
    }
    for seq in 1..=N {
        match ws.frame("WebSocket subscriber") {
            OwnedServerFrame::Data(m) => assert_eq!(m.seq, seq),
            other => panic!("{other:?}"),
        }
        assert_eq!(common::ws::data_seq(&tcp_sub.frame("TCP subscriber")), seq);
    }
    // Both received everything; the latency samples are counted after the
    // sends are submitted, which the receipt proves. Sent bytes are counted
    // when the kernel reports the send done, which may come after the
    // subscriber read them: the engine's own counters are awaited first.
    let sent = |f: &[Family], t: &str| val(f, "ringcast_sent_bytes_total", &[("transport", t)]);
    let counted = |t: Transport| engine.stats().bytes_out[t as usize] as f64;
    for (t, label) in [(Transport::Tcp, "tcp"), (Transport::WebSocket, "websocket")] {
        let want = sent(&before, label) + (N * 8) as f64;
        assert!(
            wait_until(CLOSE_TIMEOUT, || counted(t) >= want),
            "{label}: {} bytes sent, {want} expected at least",
            counted(t)
        );
    }
    let during = metrics(addr);
    let delta = |name: &str| val(&during, name, &[]) - val(&before, name, &[]);
    assert_eq!(delta("ringcast_publishes_total"), N as f64);
    assert_eq!(delta("ringcast_deliveries_total"), 2.0 * N as f64);
    assert_eq!(delta("ringcast_encodes_total"), N as f64);
    assert_eq!(delta("ringcast_websocket_upgrades_total"), 1.0);
    // Bytes by transport: the frames on tcp and websocket, the /metrics
    // responses (at least the second one's body) on http.
    for t in ["tcp", "websocket"] {
        assert!(
            sent(&during, t) - sent(&before, t) >= (N * 8) as f64,
            "{t}: {} bytes sent",
            sent(&during, t) - sent(&before, t)
        );
    }
    assert!(
        before_http(&during) - before_http(&before) >= before_text.len() as f64,
        "http bytes {} < one /metrics body {}",
        before_http(&during) - before_http(&before),
        before_text.len()
    );
    assert!(
        delta("ringcast_publish_to_send_seconds_count") > 0.0,
        "no publish-to-send latency sample"
    );
    assert_eq!(val(&during, "ringcast_subscriptions", &[]), 2.0);
    assert!(connections(&during, "websocket") >= 1.0);
    assert_eq!(connections(&during, "tcp"), 2.0);
    let buckets = &prom::family(&during, "ringcast_publish_to_send_seconds")
        .unwrap()
        .samples;
    assert!(buckets.iter().any(|s| s.name.ends_with("_bucket")));

    // The subscribers leave: the gauges return to where they were.
    ws.send_native(ClientFrame::Unsubscribe { topic: TOPIC });
    match ws.frame("UNSUBACK") {
        OwnedServerFrame::UnsubAck { .. } => {}
        other => panic!("{other:?}"),
    }
    drop((ws, tcp_sub, publisher));
    assert!(
        wait_until(CLOSE_TIMEOUT, || {
            let st = engine.stats();
            st.connections == [0, 0, 0, 0] && st.subscriptions == 0
        }),
        "connections left open: {:?}",
        engine.stats().connections
    );
    let after = metrics(addr);
    for t in [Transport::Tcp, Transport::WebSocket, Transport::Http] {
        assert_eq!(
            connections(&after, t.label()),
            connections(&before, t.label()),
            "ringcast_connections{{transport=\"{}\"}}",
            t.label()
        );
    }
    assert_eq!(val(&after, "ringcast_subscriptions", &[]), 0.0);
    assert_eq!(
        val(&after, "ringcast_connections_closed_total", &[])
            - val(&before, "ringcast_connections_closed_total", &[]),
        6.0,
        "three /metrics connections, two subscribers and the publisher"
    );
}

//! Isolation (issue 9, finding 5): monitoring must not go blind at the
//! connection limit.
//!
//! Once `max_connections` is reached, the WebSocket/HTTP port still takes
//! up to `http_reserve` plain HTTP connections (`/metrics`, `/healthz`,
//! `/`): when the native clients use up every connection, an operator can
//! still see why. A reserved connection that upgrades to WebSocket needs a
//! `max_connections` place, and is answered `503 Service Unavailable` when
//! none is free. HTTP connections past the reserve are closed at accept
//! (counted in `refused`).

mod common;

use common::healthy::{Healthy, P99_BOUND};
use common::ws::{parse_response, request, HttpResponse};
use common::{config, connect, prom, start, wait_until};
use ringcast::stats::Transport;
use ringcast::ws::handshake;
use ringcast::Config;
use ringcast_client::Client;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a response, or the engine's close, may take.
const ANSWER: Duration = Duration::from_secs(5);
/// Scrapes of /metrics and /healthz at the connection limit, and their period.
const SCRAPES: u32 = 20;
const SCRAPE_PERIOD: Duration = Duration::from_millis(50);

/// A fresh connection with a read timeout.
fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(ANSWER)).unwrap();
    s
}

/// Reads everything until the server closes the connection (end of stream,
/// or a reset after what it sent); a timeout fails the test.
fn read_to_close(s: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "{what}: the server neither answered nor closed within {ANSWER:?} \
                     ({} bytes so far: {:?})",
                    out.len(),
                    String::from_utf8_lossy(&out)
                )
            }
            Err(_) => return out, // reset: what came before it is the answer
        }
    }
}

/// `GET path` on a fresh connection; the response, read to the server's
/// close (every response is `Connection: close`).
fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut s = tcp(addr);
    s.write_all(&request("GET", path)).unwrap();
    let bytes = read_to_close(&mut s, &format!("GET {path}"));
    assert!(!bytes.is_empty(), "GET {path}: closed without a response");
    let r = parse_response(&bytes);
    if let Some((_, len)) = r.headers.iter().find(|(n, _)| n == "content-length") {
        assert_eq!(
            r.body.len(),
            len.parse::<usize>().unwrap(),
            "GET {path}: body length vs Content-Length"
        );
    }
    r
}

/// `/healthz` answers 200 "ok...".
fn assert_healthy(addr: SocketAddr, what: &str) {
    let r = get(addr, "/healthz");
    assert_eq!(r.status, 200, "{what}: /healthz: {r:?}");
    assert!(r.text().starts_with("ok"), "{what}: /healthz body {r:?}");
}

/// Asserts the server closes `s` without sending anything.
fn assert_closed_silently(s: &mut TcpStream, what: &str) {
    let bytes = read_to_close(s, what);
    assert!(
        bytes.is_empty(),
        "{what}: expected a close without a word, got {:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn metrics_and_healthz_answer_at_the_connection_limit_and_http_has_a_reserve() {
    const MAX_CONNECTIONS: usize = 20;
    const MAX_HTTP: usize = 4;
    let engine = start(Config {
        max_connections: MAX_CONNECTIONS,
        http_reserve: MAX_HTTP,
        ..config(2)
    });
    let addr = engine.local_addr();
    let http = engine.ws_addr().expect("the HTTP/WebSocket listener is on");
    let healthy = Healthy::start(addr);
    assert_eq!(engine.connections(), 2, "the healthy pair");

    // Native clients take every remaining place; a PING round trip proves
    // each is served.
    let mut natives: Vec<Client> = (2..MAX_CONNECTIONS)
        .map(|i| {
            let mut c = connect(addr);
            assert_eq!(c.ping(&[i as u8]).unwrap(), [i as u8]);
            c
        })
        .collect();
    assert_eq!(engine.connections(), MAX_CONNECTIONS);
    let mut extra = tcp(addr);
    assert_closed_silently(&mut extra, "a native connection past max_connections");
    assert_eq!(engine.stats().refused, 1);

    // At the limit, /metrics and /healthz keep answering, and /metrics
    // says so: a scrape every 50 ms for a second, as a monitoring system
    // would (and the healthy pair runs meanwhile).
    let start = Instant::now();
    for k in 1..=SCRAPES {
        let r = get(http, "/metrics");
        assert_eq!(r.status, 200, "/metrics at the connection limit: {r:?}");
        let families = prom::parse(&r.text())
            .unwrap_or_else(|e| panic!("/metrics is not valid exposition text: {e}"));
        assert_eq!(
            prom::value(
                &families,
                "ringcast_connections",
                &[("transport", Transport::Tcp.label())]
            ),
            Some(MAX_CONNECTIONS as f64),
            "/metrics shows the {MAX_CONNECTIONS} native connections"
        );
        assert_healthy(http, "at the connection limit");
        let due = start + SCRAPE_PERIOD * k;
        let now = Instant::now();
        if due > now {
            // Pacing the scrapes, not a wait for a condition.
            std::thread::sleep(due - now);
        }
    }

    // A WebSocket upgrade needs a connection place: refused with a 503.
    let mut ws = tcp(http);
    let key = common::ws::fresh_key();
    let req = handshake::client_request(&http.to_string(), handshake::PATH, &key, None);
    ws.write_all(req.as_bytes()).unwrap();
    let bytes = read_to_close(&mut ws, "WebSocket upgrade at the connection limit");
    assert!(
        !bytes.is_empty(),
        "WebSocket upgrade at the connection limit: closed without a response"
    );
    let r = parse_response(&bytes);
    assert_eq!(
        r.status, 503,
        "WebSocket upgrade at the connection limit: {r:?}"
    );
    let s = engine.stats();
    assert_eq!(
        (
            s.connections[Transport::Tcp as usize],
            s.connections[Transport::WebSocket as usize],
            s.ws_upgrades
        ),
        (MAX_CONNECTIONS as u64, 0, 0),
        "the refused upgrade took no place"
    );

    // The answered HTTP connections are done (the engine keeps a closing
    // one until its peer closes too).
    drop(ws);
    assert!(
        wait_until(ANSWER, || engine.stats().connections
            [Transport::Http as usize]
            == 0),
        "answered HTTP connections still count: {}",
        engine.stats().connections[Transport::Http as usize]
    );

    // The HTTP reserve: 4 idle connections (sending nothing) use
    // it up, and a 5th is closed at accept without a response.
    let idle: Vec<TcpStream> = (0..MAX_HTTP).map(|_| tcp(http)).collect();
    assert!(
        wait_until(ANSWER, || engine.stats().connections
            [Transport::Http as usize]
            == MAX_HTTP as u64),
        "{} HTTP connections open, expected the {MAX_HTTP} idle ones",
        engine.stats().connections[Transport::Http as usize]
    );
    let refused = engine.stats().refused;
    let mut fifth = tcp(http);
    assert_closed_silently(&mut fifth, "an HTTP connection past http_reserve");
    assert_eq!(
        engine.stats().refused,
        refused + 1,
        "the HTTP connection past the reserve counts as refused"
    );
    assert_eq!(
        engine.stats().connections[Transport::Tcp as usize],
        MAX_CONNECTIONS as u64,
        "idle HTTP connections take no native place"
    );

    // Once they are gone, monitoring answers again.
    drop(idle);
    assert!(
        wait_until(ANSWER, || engine.stats().connections
            [Transport::Http as usize]
            == 0),
        "closed HTTP connections still count: {}",
        engine.stats().connections[Transport::Http as usize]
    );
    assert_healthy(http, "after the idle HTTP connections closed");

    for (i, c) in natives.iter_mut().enumerate() {
        assert_eq!(c.ping(b"still").unwrap(), b"still", "native client {i}");
    }
    healthy
        .finish()
        .assert_ok("monitoring at the connection limit", P99_BOUND);
}

//! Shared helpers for the loopback integration tests: an in-process engine
//! on port 0 and clients with timeouts, so a hang fails instead of blocking.
#![allow(dead_code)]

pub mod daemon;
pub mod healthy;
pub mod prom;
pub mod resp;
pub mod ws;
use ringcast::{Config, Engine};
use ringcast_client::Client;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long any single blocking read in a test may take before it fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A config listening on 127.0.0.1:0 (native TCP and WebSocket/HTTP) with
/// `cores` reactors.
pub fn config(cores: usize) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ws_listen: Some("127.0.0.1:0".parse().unwrap()),
        resp_listen: Some("127.0.0.1:0".parse().unwrap()),
        cores,
        pool_bytes: 32 << 20,
        ..Config::default()
    }
}

/// Starts an engine; panics with the engine's error text if it cannot.
pub fn start(config: Config) -> Engine {
    Engine::start(config).unwrap_or_else(|e| panic!("engine failed to start: {e}"))
}

/// A client with a read timeout.
pub fn connect(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    c.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    c
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
/// For conditions the test cannot be told about directly (engine counters).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A native frame from raw header fields followed by `rest` (topic,
/// payload): for building frames the encoders refuse to build.
pub fn raw_frame(len: u32, kind: u8, flags: u8, topic_len: u16, rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + rest.len());
    v.extend_from_slice(&len.to_le_bytes());
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&topic_len.to_le_bytes());
    v.extend_from_slice(rest);
    v
}

/// A native frame whose `len` and `topic_len` match `topic` and `payload`.
pub fn frame_of(kind: u8, flags: u8, topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let rest = [topic, payload].concat();
    raw_frame(
        (4 + rest.len()) as u32,
        kind,
        flags,
        topic.len() as u16,
        &rest,
    )
}

/// Asserts the server closed the connection: end of stream (or a reset),
/// not a timeout and not another frame.
pub fn expect_closed(c: &mut Client, what: &str) {
    use ringcast_client::ClientError;
    match c.next_frame() {
        Err(ClientError::Closed) => {}
        Err(ClientError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) => {}
        other => panic!("{what}: expected the server to close the connection, got {other:?}"),
    }
}

//! Shared helpers for the loopback integration tests: an in-process engine
//! on port 0 and clients with timeouts, so a hang fails instead of blocking.
#![allow(dead_code)]

pub mod prom;
pub mod ws;
use ringcast::client::Client;
use ringcast::{Config, Engine};
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

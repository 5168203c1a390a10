#![forbid(unsafe_code)]
//! HTTP/1.1 on the WebSocket port, I/O-free: request parsing with size
//! limits, response building, the Prometheus rendering of the engine's
//! counters, and the live page served at `/`.

pub mod metrics;
pub mod page;
/// Request heads and responses (from `ringcast-proto`).
pub use ringcast_proto::http as request;

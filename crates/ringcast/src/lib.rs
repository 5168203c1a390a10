pub mod config;
mod core;
mod front;
pub mod http;
/// Operator logs: events worth attention, rate-limited per reactor.
pub mod log;
mod mailbox;
mod pool;
/// The `process_*` metrics (CPU, memory, descriptors, start time) from /proc.
pub mod process;
mod reactor;
/// The NATS relay (scale-out): subject mapping, and the relay thread.
pub mod relay;
pub mod server;
pub mod stats;
/// Raw syscall helpers (sockets, clocks, affinity), shared with the load
/// generator in `ringcast-bench`.
pub mod sys;
pub mod topic;
pub mod values;

/// The native protocol's codec (from `ringcast-proto`).
pub use ringcast_proto::native as proto;
/// The WebSocket codec and handshake (from `ringcast-proto`).
pub use ringcast_proto::ws;

/// Engine internals re-exported for the criterion benchmarks in `benches/`
/// only. Not a stable API: anything here may change or vanish in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::core::{Conn, Wire, MAX_IOV};
    pub use crate::mailbox::{channel, Consumer, Producer};
    pub use crate::pool::{Arena, FrameRef, Pool};
}

/// The fuzz targets' entry points into the engine (`fuzz/`, feature
/// `fuzzing`). Not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// The per-core topic and subscription state machine of 2 to 4 cores,
    /// driven in memory by arbitrary operation sequences (see `core::tests`).
    pub use crate::core::tests::fuzz_topics as topics;
}

pub use config::Config;
pub use server::Engine;
pub use stats::Stats;

pub mod bench;
pub mod client;
pub mod config;
mod conn;
pub mod http;
mod mailbox;
mod pool;
pub mod proto;
mod reactor;
pub mod server;
pub mod stats;
mod sys;
pub mod topic;
pub mod ws;

/// Engine internals re-exported for the criterion benchmarks in `benches/`
/// only. Not a stable API: anything here may change or vanish in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::conn::{Conn, Wire};
    pub use crate::mailbox::{channel, Consumer, Producer};
    pub use crate::pool::{Arena, FrameRef, Pool};
}

pub use config::Config;
pub use server::Engine;
pub use stats::Stats;

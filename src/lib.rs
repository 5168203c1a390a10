pub mod bench;
pub mod client;
pub mod config;
mod conn;
mod mailbox;
mod pool;
pub mod proto;
mod reactor;
pub mod server;
pub mod stats;
mod sys;
pub mod topic;

pub use config::Config;
pub use server::Engine;
pub use stats::Stats;

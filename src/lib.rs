pub mod client;
pub mod config;
pub mod proto;
pub mod server;

pub use config::Config;

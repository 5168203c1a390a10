//! The daemon: listeners, reactors, life cycle. (Being written.)

use crate::Config;
use std::net::SocketAddr;

/// Why the engine could not start or run.
#[derive(Debug)]
pub enum Error {
    /// Placeholder until the engine lands.
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}
impl std::error::Error for Error {}

/// A running engine.
pub struct Engine {
    addr: SocketAddr,
}

impl Engine {
    /// Starts the reactors and returns once every listener is bound.
    pub fn start(config: Config) -> Result<Engine, Error> {
        Ok(Engine { addr: config.listen })
    }
    /// The bound TCP address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Runs the daemon in the foreground: prints the effective configuration,
/// serves until SIGINT/SIGTERM, then shuts down gracefully.
pub fn run_daemon(config: Config) -> Result<(), Error> {
    let _ = Engine::start(config)?;
    Ok(())
}

//! RFC 6455 WebSocket, I/O-free: the opening handshake (validated strictly)
//! and the frame codec (server role: client frames masked, server frames
//! unmasked and unfragmented; client role for the bench and tests).
//!
//! Like `proto`, nothing here touches a socket or reads a clock.

pub mod frame;
pub mod handshake;

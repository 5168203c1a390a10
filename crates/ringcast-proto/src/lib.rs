//! ringcast's wire codecs, sans I/O.
//!
//! Nothing in this crate touches a socket, a ring or a clock: decoders take a
//! `&[u8]` that may hold part of a message and answer what they found and how
//! many bytes it used (or that more are needed, or why the input is refused);
//! encoders write into caller-provided memory; times are arguments. So every
//! codec is tested and fuzzed in memory, and the client builds anywhere.
//!
//! - [`native`]: the ringcast protocol's frames (docs/PROTOCOL.md).
//! - [`ws`]: RFC 6455 WebSocket frames and the opening handshake.
//! - [`http`]: HTTP/1.1 request heads, strictly, and the responses sent.
//! - [`resp`]: Redis's RESP2/RESP3: requests parsed as redis-server parses
//!   them, replies, and the pub/sub pushes.
//! - [`glob`]: Redis's glob patterns (`PSUBSCRIBE`), matched exactly as Redis does.
//!
//! `fuzzing` (hidden) holds the checks the fuzz targets in `fuzz/` run, so
//! that `tests/fuzz_corpus.rs` replays their corpora on the stable toolchain.
#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod fuzzing;
pub mod glob;
pub mod http;
pub mod native;
pub mod resp;
pub mod ws;

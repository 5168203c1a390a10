//! The ringcast wire protocol, version 1 (`PROTOCOL.md`): frame types, their
//! encoders, and incremental decoders.
//!
//! This module has no I/O and reads no clock: decoders take a `&[u8]` that may
//! hold a partial frame and answer either a borrowed frame plus the number of
//! bytes it consumed, or how many bytes they need before being called again,
//! or a [`ProtoError`] carrying the ERROR code to send. Timestamps are plain
//! arguments. Decoding never allocates.
//!
//! # Frame layout
//! ```text
//! offset 0  u32 len        bytes after this field (total frame = 4 + len)
//!        4  u8  kind       see [`Kind`]
//!        5  u8  flags      0 in version 1
//!        6  u16 topic_len  0 for kinds without a topic
//!        8  fixed fields   DATA/SUBACK: two u64; ERROR: u16 code; else none
//!                          (code that reads or patches a DATA frame in place
//!                          goes through [`DataView`] and [`DataViewMut`])
//!        .. topic          topic_len bytes of UTF-8
//!        .. payload        the rest of the frame
//! ```
//! All integers are little-endian.
//!
//! # When the decoders decide
//! Incomplete is not invalid: every strict prefix of a valid frame decodes as
//! [`Decoded::Incomplete`], and a violation is reported as soon as the bytes
//! that prove it have arrived, so a peer cannot make the server buffer a
//! megabyte of a frame that is already known to be bad:
//!
//! 1. 4 bytes: `len < 4` is error 1, `len > max_frame` is error 2.
//! 2. 8 bytes: nonzero flags or a kind not sent in this direction is error 3;
//!    every relation between `len`, `topic_len` and the kind's fixed fields
//!    and payload rules is checked (error 1), and a `topic_len` of 0 or over
//!    255 on a kind that needs a topic is error 4.
//! 3. Through the topic: the topic's bytes are checked (error 4).
//! 4. Whole frame: the rest (an ERROR's or a GAP's message must be UTF-8).

mod decode;
mod encode;
mod error;
mod kind;
mod topic;
mod view;

pub use decode::{decode_client, decode_server};
pub use encode::{data_frame_len, encode_data, patch_data_seq, patch_data_ts};
pub use error::{ErrorCode, ProtoError};
pub use kind::Kind;
pub use topic::validate_topic;
pub use view::{DataView, DataViewMut};

/// Size of the `len` field that starts every frame.
pub const LEN_PREFIX: usize = 4;
/// Size of the common header: `len`, `kind`, `flags`, `topic_len`.
pub const HEADER_LEN: usize = 8;
/// Size of a DATA frame before its topic: header, `seq`, `ts_ns`.
pub const DATA_HEADER_LEN: usize = 24;
/// Longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 255;
/// Longest PING (and so PONG) payload, in bytes.
pub const MAX_PING_PAYLOAD: usize = 64;
/// Default limit on a frame's `len` field (1 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;

/// A frame sent by a client to the server, borrowing from the decode buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Publish `payload` on `topic`; no reply.
    Publish { topic: &'a str, payload: &'a [u8] },
    /// Subscribe to `topic`; answered by SUBACK (or ERROR 7).
    Subscribe { topic: &'a str },
    /// Unsubscribe from `topic`; answered by UNSUBACK.
    Unsubscribe { topic: &'a str },
    /// Liveness probe; answered by PONG with the same 0 to 64 bytes.
    Ping { payload: &'a [u8] },
    /// Present a token; answered by AUTH_OK or ERROR 5.
    Auth { token: &'a [u8] },
}

/// A frame sent by the server to a client, borrowing from the decode buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// A published message: `seq` is per topic, `ts_ns` is CLOCK_REALTIME at acceptance.
    Data {
        seq: u64,
        ts_ns: u64,
        topic: &'a str,
        payload: &'a [u8],
    },
    /// Subscription confirmed: the first DATA it receives has `next_seq`; `epoch` names the topic's
    /// sequence (a new one when the topic was reclaimed or the server restarted).
    SubAck {
        next_seq: u64,
        epoch: u64,
        topic: &'a str,
    },
    /// Unsubscription confirmed; no DATA of `topic` follows.
    UnsubAck { topic: &'a str },
    /// Answer to PING, with its bytes.
    Pong { payload: &'a [u8] },
    /// AUTH accepted.
    AuthOk,
    /// GAP (revision 3): frames of `topic` published on other nodes may have
    /// been lost before the next DATA of `topic` on this connection. The
    /// topic's seq stays contiguous (lost frames never got one), so this frame
    /// is the only sign of the loss. `message` says why, for people. Frames
    /// published on the subscriber's own node are never lost this way.
    Gap { topic: &'a str, message: &'a str },
    /// An error; `code` is kept raw so that codes from a later version still decode
    /// (see [`ErrorCode::from_u16`]). `topic` is the refused topic for code 7.
    Error {
        code: u16,
        topic: Option<&'a str>,
        message: &'a str,
    },
}

/// Result of a decode attempt on a buffer that may hold a partial frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<F> {
    /// A whole frame; `consumed` bytes of the input belong to it (4 + len).
    Frame { frame: F, consumed: usize },
    /// Not enough bytes yet; at least `need` bytes in total are required before calling again.
    Incomplete { need: usize },
}

impl<F> Decoded<F> {
    /// The frame and its size, or `None` when more bytes are needed.
    pub fn frame(self) -> Option<(F, usize)> {
        match self {
            Decoded::Frame { frame, consumed } => Some((frame, consumed)),
            Decoded::Incomplete { .. } => None,
        }
    }
}

//! Error codes of the protocol and the decoders' error type.

use std::fmt;

/// The codes carried by an ERROR frame (`PROTOCOL.md`, "Error codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame breaks the layout rules; the connection is closed.
    Malformed = 1,
    /// `len` is over the server's maximum frame size; the connection is closed.
    TooLarge = 2,
    /// The kind is unknown, reserved, of the wrong direction, or flags are nonzero; closed.
    UnknownKind = 3,
    /// The topic is empty, over 255 bytes, not UTF-8, or holds a control character or space; closed.
    BadTopic = 4,
    /// The connection has not presented a matching token; closed.
    NotAuthorized = 5,
    /// The connection's send backlog passed the limit; closed.
    SlowConsumer = 6,
    /// Too many subscriptions on this connection; the SUBSCRIBE is refused, the connection stays open.
    TooManySubscriptions = 7,
    /// The server is shutting down; closed after pending frames are flushed.
    ShuttingDown = 8,
    /// A frame was begun but not completed within the server's frame timeout,
    /// or incomplete frames held too much of the server's memory; closed.
    Incomplete = 9,
}

impl ErrorCode {
    /// The code for a wire value, or `None` for a value the protocol does not define.
    pub fn from_u16(c: u16) -> Option<ErrorCode> {
        Some(match c {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::TooLarge,
            3 => ErrorCode::UnknownKind,
            4 => ErrorCode::BadTopic,
            5 => ErrorCode::NotAuthorized,
            6 => ErrorCode::SlowConsumer,
            7 => ErrorCode::TooManySubscriptions,
            8 => ErrorCode::ShuttingDown,
            9 => ErrorCode::Incomplete,
            _ => return None,
        })
    }

    /// The wire value.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// Whether the server closes the connection after sending this code (all but 7).
    pub fn closes_connection(self) -> bool {
        self != ErrorCode::TooManySubscriptions
    }

    /// The WebSocket close code that follows an ERROR with this code, or `None`
    /// for 7, which does not close (`PROTOCOL.md`, "Transports").
    pub fn ws_close_code(self) -> Option<u16> {
        match self {
            ErrorCode::Malformed | ErrorCode::UnknownKind | ErrorCode::BadTopic => Some(1002),
            ErrorCode::TooLarge => Some(1009),
            ErrorCode::NotAuthorized | ErrorCode::SlowConsumer | ErrorCode::Incomplete => {
                Some(1008)
            }
            ErrorCode::ShuttingDown => Some(1001),
            ErrorCode::TooManySubscriptions => None,
        }
    }

    /// What the code means, in a few words ("malformed frame").
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed frame",
            ErrorCode::TooLarge => "frame too large",
            ErrorCode::UnknownKind => "unknown kind or nonzero flags",
            ErrorCode::BadTopic => "bad topic",
            ErrorCode::NotAuthorized => "not authorized",
            ErrorCode::SlowConsumer => "slow consumer",
            ErrorCode::TooManySubscriptions => "too many subscriptions",
            ErrorCode::ShuttingDown => "server shutting down",
            ErrorCode::Incomplete => "incomplete frame",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A protocol violation found while decoding: the code to send in ERROR and a short human reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoError {
    /// The code to send in the ERROR frame.
    pub code: ErrorCode,
    /// Which rule the frame broke, for people ("topic_len runs past the end of the frame").
    pub reason: &'static str,
}

impl ProtoError {
    /// A violation of `code` for `reason`.
    pub const fn new(code: ErrorCode, reason: &'static str) -> ProtoError {
        ProtoError { code, reason }
    }

    pub(crate) const fn malformed(reason: &'static str) -> ProtoError {
        ProtoError::new(ErrorCode::Malformed, reason)
    }

    pub(crate) const fn bad_topic(reason: &'static str) -> ProtoError {
        ProtoError::new(ErrorCode::BadTopic, reason)
    }

    pub(crate) const fn unknown_kind(reason: &'static str) -> ProtoError {
        ProtoError::new(ErrorCode::UnknownKind, reason)
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.description(), self.reason)
    }
}

impl std::error::Error for ProtoError {}

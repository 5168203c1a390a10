//! Redis's protocol errors: which rule the input broke, and the exact reply.

use std::fmt;

/// The protocol errors of a Redis 7 server (`networking.c`). Each is replied
/// as `-ERR Protocol error: ...` and then the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RespErrorCode {
    /// The `*` count is not an integer or is over the limit.
    InvalidMultibulkLength,
    /// The `*` count is over 10 on a connection that must authenticate.
    UnauthenticatedMultibulkLength,
    /// No `\r` in the first 64 KiB of a `*` line.
    TooBigMbulkCountString,
    /// A `$` length is not an integer, is negative or is over `proto-max-bulk-len`.
    InvalidBulkLength,
    /// A `$` length is over 16384 on a connection that must authenticate.
    UnauthenticatedBulkLength,
    /// No `\r` in the first 64 KiB of a `$` line.
    TooBigBulkCountString,
    /// A multibulk element does not start with `$`.
    ExpectedDollar,
    /// No `\n` in the first 64 KiB of an inline request.
    TooBigInlineRequest,
    /// An inline request has an unclosed quote, or a closing quote followed by a non-blank.
    UnbalancedQuotes,
}

impl RespErrorCode {
    /// The reply's text after `-ERR ` (for [`RespErrorCode::ExpectedDollar`]
    /// without its byte: see [`RespError::reply`]).
    pub const fn message(self) -> &'static str {
        match self {
            RespErrorCode::InvalidMultibulkLength => "Protocol error: invalid multibulk length",
            RespErrorCode::UnauthenticatedMultibulkLength => {
                "Protocol error: unauthenticated multibulk length"
            }
            RespErrorCode::TooBigMbulkCountString => "Protocol error: too big mbulk count string",
            RespErrorCode::InvalidBulkLength => "Protocol error: invalid bulk length",
            RespErrorCode::UnauthenticatedBulkLength => {
                "Protocol error: unauthenticated bulk length"
            }
            RespErrorCode::TooBigBulkCountString => "Protocol error: too big bulk count string",
            RespErrorCode::ExpectedDollar => "Protocol error: expected '$', got '%c'",
            RespErrorCode::TooBigInlineRequest => "Protocol error: too big inline request",
            RespErrorCode::UnbalancedQuotes => "Protocol error: unbalanced quotes in request",
        }
    }

    /// Which rule the input broke, for people and logs (Redis logs the same words).
    pub const fn reason(self) -> &'static str {
        match self {
            RespErrorCode::InvalidMultibulkLength => "invalid mbulk count",
            RespErrorCode::UnauthenticatedMultibulkLength => "unauth mbulk count",
            RespErrorCode::TooBigMbulkCountString => "too big mbulk count string",
            RespErrorCode::InvalidBulkLength => "invalid bulk length",
            RespErrorCode::UnauthenticatedBulkLength => "unauth bulk length",
            RespErrorCode::TooBigBulkCountString => "too big bulk count string",
            RespErrorCode::ExpectedDollar => "expected $ but got something else",
            RespErrorCode::TooBigInlineRequest => "too big inline request",
            RespErrorCode::UnbalancedQuotes => "unbalanced quotes in inline request",
        }
    }
}

/// A protocol error found while parsing a request: reply
/// [`RespError::reply`], then close the connection (Redis sets
/// `CLIENT_CLOSE_AFTER_REPLY` and reads nothing more from the client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RespError {
    code: RespErrorCode,
    /// The offending byte of [`RespErrorCode::ExpectedDollar`]; 0 otherwise.
    got: u8,
}

impl RespError {
    /// An error of `code`; use [`RespError::expected_dollar`] for that code.
    pub(crate) const fn new(code: RespErrorCode) -> RespError {
        RespError { code, got: 0 }
    }

    /// "expected '$', got '`got`'".
    pub(crate) const fn expected_dollar(got: u8) -> RespError {
        RespError {
            code: RespErrorCode::ExpectedDollar,
            got,
        }
    }

    /// Which rule the input broke.
    pub const fn code(&self) -> RespErrorCode {
        self.code
    }

    /// The byte found where a `$` was expected, for [`RespErrorCode::ExpectedDollar`].
    pub const fn got(&self) -> Option<u8> {
        match self.code {
            RespErrorCode::ExpectedDollar => Some(self.got),
            _ => None,
        }
    }

    /// Which rule the input broke, for people and logs.
    pub const fn reason(&self) -> &'static str {
        self.code.reason()
    }

    /// Whether the connection is closed after the reply: always, as in Redis.
    pub const fn closes_connection(&self) -> bool {
        true
    }

    /// The whole reply, byte for byte as Redis sends it, e.g.
    /// `-ERR Protocol error: invalid bulk length\r\n`. The byte of
    /// "expected '$', got 'X'" is sent raw, except that `\r` and `\n` become
    /// spaces (Redis's `addReplyErrorFormat` does that to keep the reply one line).
    pub fn reply(&self) -> ErrorReply {
        let mut r = ErrorReply {
            buf: [0; ErrorReply::CAPACITY],
            len: 0,
        };
        r.push(b"-ERR ");
        match self.code {
            RespErrorCode::ExpectedDollar => {
                let got = match self.got {
                    b'\r' | b'\n' => b' ',
                    b => b,
                };
                r.push(b"Protocol error: expected '$', got '");
                r.push(&[got, b'\'']);
            }
            code => r.push(code.message().as_bytes()),
        }
        r.push(b"\r\n");
        r
    }

    /// Appends [`RespError::reply`] to `out`.
    pub fn encode_reply(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.reply().as_bytes());
    }
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            RespErrorCode::ExpectedDollar => write!(
                f,
                "Protocol error: expected '$', got '{}'",
                self.got.escape_ascii()
            ),
            code => f.write_str(code.message()),
        }
    }
}

impl std::error::Error for RespError {}

/// The bytes of a protocol error's reply, on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ErrorReply {
    buf: [u8; ErrorReply::CAPACITY],
    len: usize,
}

impl ErrorReply {
    /// Longer than the longest reply (55 bytes).
    const CAPACITY: usize = 64;

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The reply, `-` to `\r\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl AsRef<[u8]> for ErrorReply {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorReply(\"{}\")", self.as_bytes().escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_redis_bytes() {
        assert_eq!(
            RespError::new(RespErrorCode::InvalidBulkLength)
                .reply()
                .as_bytes(),
            b"-ERR Protocol error: invalid bulk length\r\n"
        );
        assert_eq!(
            RespError::expected_dollar(b'X').reply().as_bytes(),
            b"-ERR Protocol error: expected '$', got 'X'\r\n"
        );
        // Redis's addReplyErrorFormat maps CR and LF to spaces; other bytes go raw.
        assert_eq!(
            RespError::expected_dollar(b'\r').reply().as_bytes(),
            b"-ERR Protocol error: expected '$', got ' '\r\n"
        );
        assert_eq!(
            RespError::expected_dollar(b'\n').reply().as_bytes(),
            b"-ERR Protocol error: expected '$', got ' '\r\n"
        );
        assert_eq!(
            RespError::expected_dollar(0xff).reply().as_bytes(),
            b"-ERR Protocol error: expected '$', got '\xff'\r\n"
        );
        assert_eq!(
            RespError::expected_dollar(b'\r').to_string(),
            "Protocol error: expected '$', got '\\r'"
        );
    }

    #[test]
    fn every_reply_fits() {
        use RespErrorCode::*;
        for code in [
            InvalidMultibulkLength,
            UnauthenticatedMultibulkLength,
            TooBigMbulkCountString,
            InvalidBulkLength,
            UnauthenticatedBulkLength,
            TooBigBulkCountString,
            TooBigInlineRequest,
            UnbalancedQuotes,
        ] {
            let e = RespError::new(code);
            let r = e.reply();
            assert_eq!(
                r.as_bytes(),
                format!("-ERR {}\r\n", code.message()).as_bytes()
            );
            assert_eq!(e.to_string(), code.message());
            assert!(e.closes_connection());
            assert_eq!(e.got(), None);
        }
    }
}

//! Redis's serialization protocol, RESP2 and RESP3, as a Redis 7 server
//! speaks it: requests parsed exactly as `redis-server` parses client input
//! (multibulk and inline, with its limits and its protocol errors, byte for
//! byte), and replies and pub/sub pushes encoded exactly as it sends them.
//!
//! Like the rest of the crate this module does no I/O and reads no clock.
//! [`parse`] takes a `&[u8]` that may hold part of a command and answers a
//! command whose arguments borrow from the buffer, or that more bytes are
//! needed, or a [`RespError`] to reply before closing the connection.
//! Parsing never allocates; iterating the arguments of a multibulk command
//! never does either (an inline argument is copied only when it holds quotes
//! that are not its whole text, or escapes). A connection keeps a [`Parser`]
//! (three integers) to resume a request that arrives in pieces where the
//! last call left off instead of reading it again from its start. Encoders append to a `Vec<u8>`
//! or write into a caller's `&mut [u8]` (registered memory) after asking
//! [`Reply::encoded_len`] or [`PubSubPush::encoded_len`]. The client side
//! has its counterparts: [`decode_reply`] reads any RESP2/RESP3 reply
//! without allocating (aggregates decode their elements lazily; nesting is
//! bounded) and [`encode_command`] writes a multibulk request.
//!
//! # Requests
//! A request starting with `*` is a multibulk command:
//! `*<n>\r\n` then n × `$<len>\r\n<len bytes>\r\n`. Anything else is an
//! inline command: one line, ended by `\n` (a `\r` before it is dropped),
//! split on blanks with Redis's quoting rules (`sdssplitargs`): `"..."` with
//! the escapes `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any byte>`,
//! `'...'` with `\'`, and a closing quote must be followed by a blank or the
//! end of the line.
//!
//! An empty inline line (or one of blanks only) and a multibulk count of 0 or
//! less are consumed and ignored, as Redis does: [`Parsed::Skip`].
//!
//! # When the parser decides
//! Incomplete is not invalid: every strict prefix of a command that parses
//! is [`Parsed::Incomplete`]. A protocol error is reported at the point where
//! Redis reports it, so that the same bytes get the same reply:
//!
//! 1. A line (`*` count, `$` length, inline request) is judged when its end
//!    has arrived: for `*` and `$` lines the first `\r` followed by any byte
//!    (Redis does not check that it is `\n`), for inline requests the first
//!    `\n`. A line with no end in its first 64 KiB + 1 bytes
//!    ([`PROTO_INLINE_MAX_SIZE`]) is an error as soon as that many bytes are
//!    there: "too big mbulk count string", "too big bulk count string", "too
//!    big inline request". As in Redis (which searches with `strchr`), a NUL
//!    byte before the end hides it: such a line only ever ends in that error.
//! 2. A `*` line: a count that is not a canonical decimal integer (no sign
//!    but `-`, no leading zero, under 21 characters) or is over
//!    [`Limits::max_multibulk_len`] is "invalid multibulk length"; over 10
//!    while [`Limits::unauthenticated`], "unauthenticated multibulk length".
//! 3. Each `$` line, as soon as it has arrived, before its body: a first
//!    byte other than `$` is "expected '$', got 'X'"; a length that is not a
//!    canonical integer, is negative or is over [`Limits::max_bulk_len`] is
//!    "invalid bulk length"; over 16384 while unauthenticated,
//!    "unauthenticated bulk length". So a giant length is refused from its
//!    header, and the parser never waits for a body it would refuse.
//! 4. A bulk's body is taken with the two bytes after it, which Redis does
//!    not check either (`$1\r\naXY` is the argument `a`).
//! 5. An inline line with an unclosed quote, or a closing quote followed by
//!    something else than a blank, is "unbalanced quotes in request".
//!
//! Every protocol error closes the connection after its reply, as in Redis.
//!
//! The one place this parser does not copy Redis is where Redis's answer
//! depends on how the input was split into reads: Redis looks for a line's
//! end in whatever it has buffered and refuses the line once it holds more
//! than 64 KiB without one, so a line whose end lies just past 64 KiB is
//! accepted or refused depending on the sizes of its reads. Here the answer
//! depends only on the bytes: such a line is always refused.
//!
//! # Replies
//! [`Reply`] is one RESP element (a scalar or an aggregate's header); the
//! methods of [`Protocol`] pick the element Redis sends for a logical type in
//! RESP2 or RESP3 (null, map, set, boolean, double, verbatim string).
//! [`PubSubPush`] encodes the pub/sub messages and subscription
//! confirmations as Redis sends them; in both protocols they differ only in
//! their first byte (`*` or `>`), except an unsubscribe confirmation without
//! a channel, whose null also differs (see [`encode_message`]).

mod args;
mod command;
pub mod commands;
mod decode;
mod error;
mod inline;
mod parse;
mod pubsub;
mod reply;

pub use crate::native::Decoded;
pub use args::{Args, ArgsIter};
pub use command::encode_command;
pub use decode::{
    decode_message_head, decode_reply, Aggregate, Attributed, Elements, MessageHead, ReplyError,
    ReplyErrorKind, ReplyRef, MAX_AGGREGATE_LEN, MAX_REPLY_DEPTH,
};
pub use error::{ErrorReply, RespError, RespErrorCode};
pub use parse::{parse, Parser};
pub use pubsub::{
    encode_message, encode_message_to_slice, message_len, set_push_protocol, PubSubPush,
    PUSH_TYPE_OFFSET,
};
pub use reply::{sanitize_error, Reply};

/// Longest line Redis waits for without its end: a `*` count, a `$` length,
/// or an inline request (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
/// Redis's default `proto-max-bulk-len`: the largest bulk string in a request (512 MiB).
pub const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
/// Redis 7's largest multibulk count (`INT_MAX`). Redis 6.2 and earlier
/// refused counts over 1024 × 1024; Redis 7.0 lifted that (redis#9528).
pub const DEFAULT_MAX_MULTIBULK_LEN: u64 = i32::MAX as u64;
/// Largest multibulk count of a connection that has not authenticated where it must.
pub const UNAUTHENTICATED_MAX_MULTIBULK_LEN: i64 = 10;
/// Largest bulk length of a connection that has not authenticated where it must.
pub const UNAUTHENTICATED_MAX_BULK_LEN: i64 = 16384;

/// What the parser accepts. [`Limits::default`] is Redis 7's defaults for an
/// authenticated (or password-less) connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string, in bytes (Redis's `proto-max-bulk-len`, default
    /// 512 MiB); longer is "invalid bulk length". ringcast sets its `--max-frame`.
    pub max_bulk_len: u64,
    /// Largest multibulk count (Redis 7: `INT_MAX`); larger is "invalid multibulk length".
    pub max_multibulk_len: u64,
    /// The connection must still authenticate (Redis's `authRequired`):
    /// counts over 10 and bulks over 16384 bytes are refused with Redis's
    /// "unauthenticated" errors.
    pub unauthenticated: bool,
}

impl Limits {
    /// Redis 7's defaults, authenticated.
    pub const REDIS: Limits = Limits {
        max_bulk_len: DEFAULT_MAX_BULK_LEN,
        max_multibulk_len: DEFAULT_MAX_MULTIBULK_LEN,
        unauthenticated: false,
    };

    /// These limits with `max_bulk_len` set.
    pub const fn with_max_bulk_len(self, max_bulk_len: u64) -> Limits {
        Limits {
            max_bulk_len,
            ..self
        }
    }

    /// These limits for a connection that must (`true`) or need not authenticate.
    pub const fn with_unauthenticated(self, unauthenticated: bool) -> Limits {
        Limits {
            unauthenticated,
            ..self
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::REDIS
    }
}

/// Result of a parse attempt on a buffer that may hold part of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A command of one or more arguments; `consumed` bytes of the input belong to it.
    Command { args: Args<'a>, consumed: usize },
    /// An empty inline line or a multibulk count of 0 or less: Redis consumes
    /// these `consumed` bytes, replies nothing and reads on.
    Skip { consumed: usize },
    /// Not enough bytes yet; at least `need` bytes in total are required
    /// before calling again (always more than the buffer holds).
    Incomplete { need: usize },
}

impl<'a> Parsed<'a> {
    /// The command and its size, or `None` when skipped or incomplete.
    pub fn command(self) -> Option<(Args<'a>, usize)> {
        match self {
            Parsed::Command { args, consumed } => Some((args, consumed)),
            Parsed::Skip { .. } | Parsed::Incomplete { .. } => None,
        }
    }

    /// Bytes to consume: the command's or the skipped input's, 0 when incomplete.
    pub fn consumed(&self) -> usize {
        match *self {
            Parsed::Command { consumed, .. } | Parsed::Skip { consumed } => consumed,
            Parsed::Incomplete { .. } => 0,
        }
    }
}

/// The protocol a connection speaks: RESP2 until `HELLO 3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RESP2, every connection's protocol at start.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The protocol for `HELLO`'s version argument, or `None` for another
    /// number (Redis: "-NOPROTO unsupported protocol version").
    pub fn from_version(version: i64) -> Option<Protocol> {
        match version {
            2 => Some(Protocol::Resp2),
            3 => Some(Protocol::Resp3),
            _ => None,
        }
    }

    /// 2 or 3, as `HELLO` reports it in `proto`.
    pub const fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }

    /// The type byte of an out-of-band push (pub/sub messages and
    /// confirmations): `*` (an array) in RESP2, `>` (a push) in RESP3.
    pub const fn push_type_byte(self) -> u8 {
        match self {
            Protocol::Resp2 => b'*',
            Protocol::Resp3 => b'>',
        }
    }

    /// A null (Redis's `addReplyNull`): `$-1` in RESP2, `_` in RESP3.
    pub const fn null(self) -> Reply<'static> {
        match self {
            Protocol::Resp2 => Reply::NullBulk,
            Protocol::Resp3 => Reply::Null,
        }
    }

    /// A null array (`addReplyNullArray`): `*-1` in RESP2, `_` in RESP3.
    pub const fn null_array(self) -> Reply<'static> {
        match self {
            Protocol::Resp2 => Reply::NullArray,
            Protocol::Resp3 => Reply::Null,
        }
    }

    /// The header of a map of `pairs` entries (`addReplyMapLen`): an array of
    /// 2 × `pairs` in RESP2, `%` in RESP3.
    pub const fn map(self, pairs: usize) -> Reply<'static> {
        match self {
            Protocol::Resp2 => Reply::Array(pairs * 2),
            Protocol::Resp3 => Reply::Map(pairs),
        }
    }

    /// The header of a set (`addReplySetLen`): an array in RESP2, `~` in RESP3.
    pub const fn set(self, len: usize) -> Reply<'static> {
        match self {
            Protocol::Resp2 => Reply::Array(len),
            Protocol::Resp3 => Reply::Set(len),
        }
    }

    /// The header of an out-of-band push (pub/sub): an array in RESP2, `>` in RESP3.
    pub const fn push(self, len: usize) -> Reply<'static> {
        match self {
            Protocol::Resp2 => Reply::Array(len),
            Protocol::Resp3 => Reply::Push(len),
        }
    }

    /// A boolean (`addReplyBool`): `:1`/`:0` in RESP2, `#t`/`#f` in RESP3.
    pub const fn boolean(self, b: bool) -> Reply<'static> {
        match self {
            Protocol::Resp2 => Reply::Integer(b as i64),
            Protocol::Resp3 => Reply::Boolean(b),
        }
    }

    /// A double (Redis 7.0's `addReplyDouble`, `%.17g`): a bulk string in
    /// RESP2, `,` in RESP3.
    pub const fn double(self, d: f64) -> Reply<'static> {
        match self {
            Protocol::Resp2 => Reply::DoubleBulk(d),
            Protocol::Resp3 => Reply::Double(d),
        }
    }

    /// A verbatim string (`addReplyVerbatim`, used by INFO): a bulk string in
    /// RESP2, `=` with its three-byte format (`txt`) in RESP3.
    pub const fn verbatim(self, format: [u8; 3], text: &[u8]) -> Reply<'_> {
        match self {
            Protocol::Resp2 => Reply::Bulk(text),
            Protocol::Resp3 => Reply::Verbatim { format, text },
        }
    }
}

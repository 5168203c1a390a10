//! Reply decoding, the client side: one RESP2 or RESP3 reply (or push) from
//! the start of a buffer, as a Redis client reads what the server sends.
//!
//! [`decode_reply`] answers a [`ReplyRef`] whose strings borrow from the
//! buffer and the bytes it used, or that more bytes are needed
//! ([`Decoded::Incomplete`]), or a [`ReplyError`]. It never allocates, for
//! any reply: an aggregate is a view of its elements' bytes
//! ([`Aggregate`]), checked once and walked again lazily when iterated, as
//! [`super::Args`] is for requests. So reading a pub/sub `message` push and
//! turning it into a [`PubSubPush`] ([`ReplyRef::as_pubsub`]) costs no
//! allocation and no copy.
//!
//! # Wire types
//! RESP2's `+ - : $ *` and RESP3's `_ , # ( ! = % ~ > |`. Streamed strings
//! and aggregates (`$?`, `*?`), which no Redis sends, are refused (their
//! length is not an integer). An attribute (`|`) is returned with the element
//! it annotates ([`ReplyRef::Attributed`]), so that an aggregate holding
//! attributed elements still has as many elements as its header says.
//!
//! # When the decoder decides
//! Incomplete is not invalid: every strict prefix of a valid reply is
//! [`Decoded::Incomplete`], with `need` a lower bound on the reply's size
//! (exact while a bulk's body is awaited and nothing follows it). A
//! violation is reported as soon as the bytes that prove it have arrived:
//!
//! - A line (simple string, error, integer, double, big number, or a
//!   length or count) must end with `\r\n`; a bare `\r` or `\n` in it is an
//!   error when seen. Integers, lengths and counts are canonical decimal
//!   `i64`s as Redis writes them (no `+`, no leading zero, no `-0`): a
//!   byte that cannot continue one (a letter, a digit too many) is refused
//!   when it arrives, so such a line never grows past 21 bytes.
//! - A bulk string, blob error or verbatim string longer than `max_bulk` is
//!   refused from its header, before its body; so is a text line (simple
//!   string, error, double, big number) once more than `max_bulk` bytes of
//!   it have arrived without its end. A negative length other than RESP2's
//!   nulls (`$-1`, `*-1`) is an error.
//! - A bulk body must be followed by `\r\n`, checked as those bytes arrive.
//! - An aggregate of more than [`MAX_AGGREGATE_LEN`] elements (a map's keys
//!   and values counted apart) is refused from its header.
//! - Aggregates (attributes included) nest at most [`MAX_REPLY_DEPTH`]
//!   deep, so hostile input cannot make a consumer that recurses into
//!   elements (or [`ReplyRef`]'s `Debug`) exhaust its stack; the decoder
//!   itself does not recurse.

use std::fmt;

use super::{PubSubPush, Reply};
use crate::native::Decoded;

/// Most aggregates nested in one another in a reply (an attribute counts as
/// an aggregate); one more is [`ReplyErrorKind::TooDeep`].
pub const MAX_REPLY_DEPTH: usize = 64;

/// Most elements of one aggregate, a map's or attribute's keys and values
/// counted apart (hiredis's default `maxelements`, 2³² − 1).
pub const MAX_AGGREGATE_LEN: u64 = u32::MAX as u64;

/// Smallest encoded element (`_\r\n`, `+\r\n`): for `need`'s lower bound.
const MIN_ELEMENT_LEN: u64 = 3;

/// One decoded reply element, borrowing from the decode buffer.
///
/// The variants are wire types, as in [`Reply`] (see
/// [`ReplyRef::as_reply`]). An aggregate's elements are not decoded until
/// they are iterated ([`Aggregate::iter`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReplyRef<'a> {
    /// `+<text>\r\n`.
    SimpleString(&'a [u8]),
    /// `-<text>\r\n`; the text starts with its code: `ERR ...`, `NOAUTH ...`.
    Error(&'a [u8]),
    /// `:<n>\r\n`.
    Integer(i64),
    /// `$<len>\r\n<bytes>\r\n`.
    Bulk(&'a [u8]),
    /// `$-1\r\n`: RESP2's null.
    NullBulk,
    /// `*-1\r\n`: RESP2's null array.
    NullArray,
    /// `*<n>\r\n` and its n elements.
    Array(Aggregate<'a>),
    /// `_\r\n`: RESP3's null.
    Null,
    /// `%<n>\r\n` and its n keys and values, alternating (RESP3): the
    /// aggregate has 2n elements ([`Aggregate::pairs`]).
    Map(Aggregate<'a>),
    /// `~<n>\r\n` and its n elements (RESP3).
    Set(Aggregate<'a>),
    /// `><n>\r\n` and its n elements (RESP3 out-of-band data).
    Push(Aggregate<'a>),
    /// `,<double>\r\n` (RESP3): `inf`, `-inf`, `nan` and any decimal text
    /// Rust's `f64` parser reads (Redis sends `%.17g`, which reads back exactly).
    Double(f64),
    /// `#t\r\n` or `#f\r\n` (RESP3).
    Boolean(bool),
    /// `=<len>\r\n<format>:<text>\r\n` (RESP3), format `txt` or `mkd`.
    Verbatim { format: [u8; 3], text: &'a [u8] },
    /// `(<digits>\r\n` (RESP3): an optional sign and one or more decimal digits.
    BigNumber(&'a [u8]),
    /// `!<len>\r\n<bytes>\r\n` (RESP3): an error of any bytes.
    BlobError(&'a [u8]),
    /// `|<n>\r\n`, n attribute keys and values, then the element they
    /// annotate (RESP3).
    Attributed(Attributed<'a>),
}

impl<'a> ReplyRef<'a> {
    /// The element as the encoder's [`Reply`] (for an aggregate, its header),
    /// or `None` for the types [`Reply`] does not encode (big number, blob
    /// error, attributed element). Decoding what [`Reply::encode`] wrote and
    /// calling this gives the same `Reply` back, but for
    /// [`Reply::DoubleBulk`], which is a bulk string on the wire.
    pub fn as_reply(&self) -> Option<Reply<'a>> {
        Some(match *self {
            ReplyRef::SimpleString(text) => Reply::SimpleString(text),
            ReplyRef::Error(text) => Reply::Error(text),
            ReplyRef::Integer(n) => Reply::Integer(n),
            ReplyRef::Bulk(bytes) => Reply::Bulk(bytes),
            ReplyRef::NullBulk => Reply::NullBulk,
            ReplyRef::NullArray => Reply::NullArray,
            ReplyRef::Array(a) => Reply::Array(a.len()),
            ReplyRef::Null => Reply::Null,
            ReplyRef::Map(a) => Reply::Map(a.len() / 2),
            ReplyRef::Set(a) => Reply::Set(a.len()),
            ReplyRef::Push(a) => Reply::Push(a.len()),
            ReplyRef::Double(d) => Reply::Double(d),
            ReplyRef::Boolean(b) => Reply::Boolean(b),
            ReplyRef::Verbatim { format, text } => Reply::Verbatim { format, text },
            ReplyRef::BigNumber(_) | ReplyRef::BlobError(_) | ReplyRef::Attributed(_) => {
                return None
            }
        })
    }

    /// The element without the attributes around it (itself if it has none).
    pub fn strip_attributes(self) -> ReplyRef<'a> {
        let mut r = self;
        while let ReplyRef::Attributed(a) = r {
            r = a.value();
        }
        r
    }

    /// The elements of an array, map, set or push; `None` for the other types.
    pub fn aggregate(&self) -> Option<Aggregate<'a>> {
        match *self {
            ReplyRef::Array(a) | ReplyRef::Map(a) | ReplyRef::Set(a) | ReplyRef::Push(a) => Some(a),
            _ => None,
        }
    }

    /// The pub/sub push this element is, as [`PubSubPush::encode`] writes it
    /// (an array in RESP2, a push in RESP3, of bulk strings but for a
    /// confirmation's count, a non-negative integer, and an unsubscription's
    /// missing channel, `$-1` or `_`), or `None` for anything else.
    ///
    /// An array reply can look like a push (`LRANGE` of a list holding
    /// `message`, `a`, `b`); in RESP3 check for [`ReplyRef::Push`] first when
    /// that matters.
    pub fn as_pubsub(&self) -> Option<PubSubPush<'a>> {
        let (ReplyRef::Array(agg) | ReplyRef::Push(agg)) = *self else {
            return None;
        };
        // Bulk strings straight from the checked bytes, no element built.
        let bytes = agg.bytes;
        let mut at = 0;
        let mut bulk = || {
            let (body, end) = quick_bulk(bytes, at, usize::MAX)?;
            at = end;
            Some(&bytes[body..end - 2])
        };
        let kind = bulk()?;
        let push = match (kind, agg.len()) {
            (b"message", 3) => PubSubPush::Message {
                channel: bulk()?,
                payload: bulk()?,
            },
            (b"smessage", 3) => PubSubPush::SMessage {
                channel: bulk()?,
                payload: bulk()?,
            },
            (b"pmessage", 4) => PubSubPush::PMessage {
                pattern: bulk()?,
                channel: bulk()?,
                payload: bulk()?,
            },
            (_, 3) => {
                let mut it = Elements {
                    rest: &bytes[at..],
                    left: 2,
                };
                let name = match it.next()? {
                    ReplyRef::Bulk(b) => Some(b),
                    ReplyRef::NullBulk | ReplyRef::Null => None,
                    _ => return None,
                };
                let count = match it.next()? {
                    ReplyRef::Integer(n) => usize::try_from(n).ok()?,
                    _ => return None,
                };
                match kind {
                    b"subscribe" => PubSubPush::Subscribe {
                        channel: name?,
                        count,
                    },
                    b"psubscribe" => PubSubPush::PSubscribe {
                        pattern: name?,
                        count,
                    },
                    b"ssubscribe" => PubSubPush::SSubscribe {
                        channel: name?,
                        count,
                    },
                    b"unsubscribe" => PubSubPush::Unsubscribe {
                        channel: name,
                        count,
                    },
                    b"punsubscribe" => PubSubPush::PUnsubscribe {
                        pattern: name,
                        count,
                    },
                    b"sunsubscribe" => PubSubPush::SUnsubscribe {
                        channel: name,
                        count,
                    },
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(push)
    }
}

/// The elements of a decoded aggregate: a view of their bytes, already
/// checked, decoded one at a time as they are iterated. Nothing is stored
/// per element, so any aggregate costs no allocation; finding the i-th
/// element walks the ones before it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Aggregate<'a> {
    /// Exactly the encoded elements.
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Aggregate<'a> {
    /// Number of elements (a map's: twice its number of pairs).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in order.
    pub fn iter(&self) -> Elements<'a> {
        Elements {
            rest: self.bytes,
            left: self.len,
        }
    }

    /// The elements two by two: a map's or an attribute's keys and values.
    /// An odd last element (only in an array or set) is left out.
    pub fn pairs(&self) -> impl Iterator<Item = (ReplyRef<'a>, ReplyRef<'a>)> + 'a {
        let mut it = self.iter();
        std::iter::from_fn(move || Some((it.next()?, it.next()?)))
    }

    /// The elements' encoded bytes, one after another (to forward them as they came).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<'a> IntoIterator for Aggregate<'a> {
    type Item = ReplyRef<'a>;
    type IntoIter = Elements<'a>;

    fn into_iter(self) -> Elements<'a> {
        self.iter()
    }
}

impl fmt::Debug for Aggregate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over an [`Aggregate`]'s elements.
#[derive(Clone, Debug)]
pub struct Elements<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = ReplyRef<'a>;

    fn next(&mut self) -> Option<ReplyRef<'a>> {
        if self.left == 0 {
            return None;
        }
        if let Some((body, end)) = quick_bulk(self.rest, 0, usize::MAX) {
            let bulk = &self.rest[body..end - 2];
            self.rest = &self.rest[end..];
            self.left -= 1;
            return Some(ReplyRef::Bulk(bulk));
        }
        // Checked when the aggregate was decoded, within the caller's limits.
        match decode_reply(self.rest, usize::MAX) {
            Ok(Decoded::Frame { frame, consumed }) => {
                self.rest = &self.rest[consumed..];
                self.left -= 1;
                Some(frame)
            }
            _ => {
                debug_assert!(false, "an aggregate's checked elements no longer decode");
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Elements<'_> {}

/// The body and end of the bulk string at `at` when it is all there and
/// well formed (`$`, a canonical length of at most `max_bulk`, `\r\n`, the
/// body, `\r\n`); `None` otherwise, for [`head`] to tell why. The common
/// element (every element of a pub/sub message), read with no detour.
#[inline(always)]
fn quick_bulk(buf: &[u8], at: usize, max_bulk: usize) -> Option<(usize, usize)> {
    let rest = buf.get(at..)?;
    if rest.first() != Some(&b'$') {
        return None;
    }
    let mut i = 1;
    let mut len = 0usize;
    while let Some(&d) = rest.get(i) {
        if !d.is_ascii_digit() {
            break;
        }
        len = len.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        i += 1;
    }
    let canonical = i == 2 || (i > 2 && rest[1] != b'0');
    if !canonical
        || len > max_bulk
        || rest.get(i) != Some(&b'\r')
        || rest.get(i + 1) != Some(&b'\n')
    {
        return None;
    }
    let body = i + 2;
    let end = body.checked_add(len)?;
    if rest.get(end) != Some(&b'\r') || rest.get(end.checked_add(1)?) != Some(&b'\n') {
        return None;
    }
    Some((at + body, at + end + 2))
}

/// An element with the attributes sent before it (RESP3 `|`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Attributed<'a> {
    attributes: Aggregate<'a>,
    /// Exactly the encoded element.
    value: &'a [u8],
}

impl<'a> Attributed<'a> {
    /// The attributes: keys and values alternating ([`Aggregate::pairs`]).
    pub fn attributes(&self) -> Aggregate<'a> {
        self.attributes
    }

    /// The element the attributes annotate (itself possibly attributed).
    pub fn value(&self) -> ReplyRef<'a> {
        Elements {
            rest: self.value,
            left: 1,
        }
        .next()
        .unwrap_or(ReplyRef::Null)
    }
}

impl fmt::Debug for Attributed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attributed")
            .field("attributes", &self.attributes)
            .field("value", &self.value())
            .finish()
    }
}

/// Why a reply is refused; the stream cannot be read past it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplyError {
    kind: ReplyErrorKind,
    at: usize,
}

/// The rule a reply broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyErrorKind {
    /// An element starts with a byte that is no RESP type.
    UnknownType(u8),
    /// A line holds a `\r` not followed by `\n`, or a `\n` not after a `\r`.
    BadLineEnd,
    /// An integer, length or count is not a canonical decimal integer.
    BadInteger,
    /// A length or count is negative (but RESP2's nulls, `$-1` and `*-1`).
    NegativeLength,
    /// A bulk string, blob error or verbatim string, or a text line, is longer than `max_bulk`.
    TooLong,
    /// An aggregate has more than [`MAX_AGGREGATE_LEN`] elements.
    TooManyElements,
    /// Aggregates nest more than [`MAX_REPLY_DEPTH`] deep.
    TooDeep,
    /// A bulk string's (blob error's, verbatim string's) body is not followed by `\r\n`.
    BadBulkEnd,
    /// `_` is not followed by `\r\n`.
    BadNull,
    /// `#` is not followed by `t\r\n` or `f\r\n`.
    BadBoolean,
    /// A double's text is not a number, `inf` or `nan`.
    BadDouble,
    /// A big number is not an optional sign and one or more digits.
    BadBigNumber,
    /// A verbatim string is shorter than 4 bytes or has no `:` after its format.
    BadVerbatim,
}

impl ReplyError {
    const fn new(kind: ReplyErrorKind, at: usize) -> ReplyError {
        ReplyError { kind, at }
    }

    /// The rule broken.
    pub const fn kind(&self) -> ReplyErrorKind {
        self.kind
    }

    /// Offset in the buffer of the element (or the byte, for a line's end
    /// or a bulk's trailer) found wrong.
    pub const fn offset(&self) -> usize {
        self.at
    }
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ReplyErrorKind::UnknownType(b) => {
                return write!(
                    f,
                    "unknown RESP type byte '{}' at byte {}",
                    [b].escape_ascii(),
                    self.at
                )
            }
            ReplyErrorKind::BadLineEnd => "line not ended by CRLF",
            ReplyErrorKind::BadInteger => "not a canonical integer",
            ReplyErrorKind::NegativeLength => "negative length",
            ReplyErrorKind::TooLong => "string longer than the limit",
            ReplyErrorKind::TooManyElements => "aggregate with too many elements",
            ReplyErrorKind::TooDeep => "aggregates nested too deep",
            ReplyErrorKind::BadBulkEnd => "bulk string not followed by CRLF",
            ReplyErrorKind::BadNull => "bad null",
            ReplyErrorKind::BadBoolean => "bad boolean",
            ReplyErrorKind::BadDouble => "bad double",
            ReplyErrorKind::BadBigNumber => "bad big number",
            ReplyErrorKind::BadVerbatim => "bad verbatim string",
        };
        write!(f, "{what} at byte {}", self.at)
    }
}

impl std::error::Error for ReplyError {}

/// Decodes one reply (or push) from the start of `buf`, as a client reads
/// what a Redis server sends; see the module documentation for when it
/// decides. `max_bulk` limits a bulk string's (blob error's, verbatim
/// string's) length and a text line's. Never allocates, never panics.
pub fn decode_reply(buf: &[u8], max_bulk: usize) -> Result<Decoded<ReplyRef<'_>>, ReplyError> {
    let (kind, count, body) = match head(buf, 0, max_bulk)? {
        Step::Need(need) => return Ok(Decoded::Incomplete { need }),
        Step::Scalar(frame, consumed) => return Ok(Decoded::Frame { frame, consumed }),
        Step::Aggregate(kind, count, body) => (kind, count, body),
    };
    let consumed = match walk(buf, body, count, max_bulk)? {
        Walk::End(end) => end,
        Walk::Need(need) => return Ok(Decoded::Incomplete { need }),
    };
    let bytes = &buf[body..consumed];
    // Counts are at most MAX_AGGREGATE_LEN (+ 1), within usize where this crate builds.
    let len = usize::try_from(count).unwrap_or(usize::MAX);
    let agg = Aggregate { bytes, len };
    let frame = match kind {
        Kind::Array => ReplyRef::Array(agg),
        Kind::Map => ReplyRef::Map(agg),
        Kind::Set => ReplyRef::Set(agg),
        Kind::Push => ReplyRef::Push(agg),
        Kind::Attribute => {
            // Where the attributes end: checked above, so walking them again
            // within no limit succeeds.
            let split = match walk(bytes, 0, count - 1, usize::MAX) {
                Ok(Walk::End(end)) => end,
                _ => 0,
            };
            ReplyRef::Attributed(Attributed {
                attributes: Aggregate {
                    bytes: &bytes[..split],
                    len: len - 1,
                },
                value: &bytes[split..],
            })
        }
    };
    Ok(Decoded::Frame { frame, consumed })
}

/// Where a `message` push's payload lies, read from the push's head alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHead<'a> {
    /// The channel the message was published on.
    pub channel: &'a [u8],
    /// Offset of the payload's first byte.
    pub payload_at: usize,
    /// Bytes of the whole push, the payload's `\r\n` included.
    pub total: usize,
}

/// For a `message` push (`*3` or `>3`, `message`, channel, payload) whose
/// head, through the payload's length line, is in `buf`: where its payload
/// starts and how long the push is, so that a large payload can be skipped
/// or streamed as it arrives instead of being buffered whole. `None` for
/// anything else, for a head not all there, or a payload over `max_bulk`;
/// only the head is checked ([`decode_reply`] checks the rest).
pub fn decode_message_head(buf: &[u8], max_bulk: usize) -> Option<MessageHead<'_>> {
    let Ok(Step::Aggregate(Kind::Array | Kind::Push, 3, at)) = head(buf, 0, max_bulk) else {
        return None;
    };
    let Ok(Step::Scalar(ReplyRef::Bulk(b"message"), at)) = head(buf, at, max_bulk) else {
        return None;
    };
    let Ok(Step::Scalar(ReplyRef::Bulk(channel), at)) = head(buf, at, max_bulk) else {
        return None;
    };
    if buf.get(at) != Some(&b'$') {
        return None;
    }
    let (len, payload_at) = integer_line(buf, at).ok()??;
    let len = usize::try_from(len).ok().filter(|&n| n <= max_bulk)?;
    Some(MessageHead {
        channel,
        payload_at,
        total: payload_at.checked_add(len)?.checked_add(2)?,
    })
}

/// The aggregate types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Array,
    Map,
    Set,
    Push,
    Attribute,
}

/// What an element's start says.
enum Step<'a> {
    /// A whole scalar, and the offset after it.
    Scalar(ReplyRef<'a>, usize),
    /// An aggregate's header: its type, how many elements follow (an
    /// attribute's keys and values and the element it annotates), and where.
    Aggregate(Kind, u64, usize),
    /// At least this many bytes are needed in all.
    Need(usize),
}

/// How walking an aggregate's elements ended.
enum Walk {
    /// They end at this offset.
    End(usize),
    /// At least this many bytes are needed in all.
    Need(usize),
}

/// Reads `count` elements from `at`: the body of an aggregate.
fn walk(buf: &[u8], mut at: usize, count: u64, max_bulk: usize) -> Result<Walk, ReplyError> {
    // Scalars and empty aggregates (pub/sub pushes, most replies) need no stack.
    let mut left = count;
    while left > 0 {
        if let Some((_, end)) = quick_bulk(buf, at, max_bulk) {
            at = end;
            left -= 1;
            continue;
        }
        match head(buf, at, max_bulk)? {
            Step::Scalar(_, end) => at = end,
            Step::Aggregate(_, 0, body) => at = body,
            Step::Aggregate(..) => return walk_nested(buf, at, left, max_bulk),
            Step::Need(need) => return Ok(Walk::Need(need_at_least(need, &[left]))),
        }
        left -= 1;
    }
    Ok(Walk::End(at))
}

/// [`walk`] from an element that is a nested aggregate, without recursion:
/// `left[d]` is how many elements the aggregate at depth d + 1 still holds,
/// the one being read included.
fn walk_nested(buf: &[u8], mut at: usize, count: u64, max_bulk: usize) -> Result<Walk, ReplyError> {
    let mut left = [0u64; MAX_REPLY_DEPTH];
    left[0] = count;
    let mut depth = 1;
    loop {
        match head(buf, at, max_bulk)? {
            Step::Scalar(_, end) => at = end,
            Step::Aggregate(_, 0, body) => at = body,
            Step::Aggregate(_, n, body) => {
                if depth == MAX_REPLY_DEPTH {
                    return Err(ReplyError::new(ReplyErrorKind::TooDeep, at));
                }
                left[depth] = n;
                depth += 1;
                at = body;
                continue;
            }
            Step::Need(need) => return Ok(Walk::Need(need_at_least(need, &left[..depth]))),
        }
        // An element is complete, and with it every aggregate it was the last of.
        loop {
            left[depth - 1] -= 1;
            if left[depth - 1] > 0 {
                break;
            }
            depth -= 1;
            if depth == 0 {
                return Ok(Walk::End(at));
            }
        }
    }
}

/// `need` bytes for the element being read, and 3 or more for each element
/// still to come after it (`left`: the elements left at each depth, the one
/// being read included).
fn need_at_least(need: usize, left: &[u64]) -> usize {
    let later: u64 = left.iter().map(|&n| n - 1).sum();
    let later = usize::try_from(later.saturating_mul(MIN_ELEMENT_LEN));
    need.saturating_add(later.unwrap_or(usize::MAX))
}

/// The element starting at `at`: a scalar whole, or an aggregate's header.
fn head(buf: &[u8], at: usize, max_bulk: usize) -> Result<Step<'_>, ReplyError> {
    let Some(&kind) = buf.get(at) else {
        return Ok(Step::Need(at + 1));
    };
    let err = |k| Err(ReplyError::new(k, at));
    let scalar = |r, end| Ok(Step::Scalar(r, end));
    match kind {
        b'+' | b'-' | b',' | b'(' => {
            let Some(cr) = line_end(buf, at, max_bulk, ReplyErrorKind::TooLong)? else {
                return Ok(more(buf));
            };
            let text = &buf[at + 1..cr];
            let reply = match kind {
                b'+' => ReplyRef::SimpleString(text),
                b'-' => ReplyRef::Error(text),
                b',' => match std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()) {
                    Some(d) => ReplyRef::Double(d),
                    None => return err(ReplyErrorKind::BadDouble),
                },
                _ => {
                    let digits = match text {
                        [b'-' | b'+', rest @ ..] => rest,
                        _ => text,
                    };
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        return err(ReplyErrorKind::BadBigNumber);
                    }
                    ReplyRef::BigNumber(text)
                }
            };
            scalar(reply, cr + 2)
        }
        b':' => match integer_line(buf, at)? {
            Some((n, end)) => scalar(ReplyRef::Integer(n), end),
            None => Ok(more(buf)),
        },
        b'_' => fixed(buf, at, b"_\r\n", ReplyRef::Null, ReplyErrorKind::BadNull),
        b'#' => match buf.get(at + 1) {
            None => Ok(more(buf)),
            Some(b't') => fixed(
                buf,
                at,
                b"#t\r\n",
                ReplyRef::Boolean(true),
                ReplyErrorKind::BadBoolean,
            ),
            Some(b'f') => fixed(
                buf,
                at,
                b"#f\r\n",
                ReplyRef::Boolean(false),
                ReplyErrorKind::BadBoolean,
            ),
            Some(_) => err(ReplyErrorKind::BadBoolean),
        },
        b'$' | b'!' | b'=' => {
            let Some((len, body)) = integer_line(buf, at)? else {
                return Ok(more(buf));
            };
            if len == -1 && kind == b'$' {
                return scalar(ReplyRef::NullBulk, body);
            }
            if len < 0 {
                return err(ReplyErrorKind::NegativeLength);
            }
            let Some(len) = usize::try_from(len).ok().filter(|&n| n <= max_bulk) else {
                return err(ReplyErrorKind::TooLong);
            };
            if kind == b'=' && len < 4 {
                return err(ReplyErrorKind::BadVerbatim);
            }
            let Some(end) = body.checked_add(len).filter(|e| e.checked_add(2).is_some()) else {
                return err(ReplyErrorKind::TooLong);
            };
            // The trailer is checked as far as it has come.
            match (buf.get(end), buf.get(end + 1)) {
                (Some(b'\r'), Some(b'\n')) => {}
                (None, _) | (Some(b'\r'), None) => return Ok(Step::Need(end + 2)),
                _ => return Err(ReplyError::new(ReplyErrorKind::BadBulkEnd, end)),
            }
            let bytes = &buf[body..end];
            let reply = match kind {
                b'$' => ReplyRef::Bulk(bytes),
                b'!' => ReplyRef::BlobError(bytes),
                _ => {
                    if bytes[3] != b':' {
                        return err(ReplyErrorKind::BadVerbatim);
                    }
                    ReplyRef::Verbatim {
                        format: [bytes[0], bytes[1], bytes[2]],
                        text: &bytes[4..],
                    }
                }
            };
            scalar(reply, end + 2)
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let Some((n, body)) = integer_line(buf, at)? else {
                return Ok(more(buf));
            };
            if n == -1 && kind == b'*' {
                return scalar(ReplyRef::NullArray, body);
            }
            let Ok(n) = u64::try_from(n) else {
                return err(ReplyErrorKind::NegativeLength);
            };
            let (kind, elements) = match kind {
                b'*' => (Kind::Array, n),
                b'%' => (Kind::Map, n.saturating_mul(2)),
                b'~' => (Kind::Set, n),
                b'>' => (Kind::Push, n),
                _ => (Kind::Attribute, n.saturating_mul(2)),
            };
            if elements > MAX_AGGREGATE_LEN {
                return err(ReplyErrorKind::TooManyElements);
            }
            // An attribute is followed by the element it annotates.
            let elements = elements + u64::from(kind == Kind::Attribute);
            Ok(Step::Aggregate(kind, elements, body))
        }
        other => err(ReplyErrorKind::UnknownType(other)),
    }
}

/// One more byte than `buf` holds.
fn more(buf: &[u8]) -> Step<'static> {
    Step::Need(buf.len() + 1)
}

/// An element that is always the same bytes.
fn fixed<'a>(
    buf: &[u8],
    at: usize,
    bytes: &'static [u8],
    reply: ReplyRef<'a>,
    bad: ReplyErrorKind,
) -> Result<Step<'a>, ReplyError> {
    let there = &buf[at..buf.len().min(at + bytes.len())];
    if !bytes.starts_with(there) {
        Err(ReplyError::new(bad, at))
    } else if there.len() < bytes.len() {
        Ok(more(buf))
    } else {
        Ok(Step::Scalar(reply, at + bytes.len()))
    }
}

/// The integer after the type byte at `at` and the offset after its line,
/// or `None` while the line's end has not arrived. Read in one pass: a
/// byte that cannot belong to a canonical integer in range is an error as
/// soon as it arrives (so the line never grows past 21 bytes).
fn integer_line(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, ReplyError> {
    let bad = |kind, at| Err(ReplyError::new(kind, at));
    let negative = buf.get(at + 1) == Some(&b'-');
    let digits = at + 1 + usize::from(negative);
    // Largest magnitude: i64::MAX, or its negation minus one.
    let max = i64::MAX.unsigned_abs() + u64::from(negative);
    let mut v: u64 = 0;
    let mut i = digits;
    let cr = loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        match b {
            b'0'..=b'9' => {
                if i > digits && buf[digits] == b'0' {
                    return bad(ReplyErrorKind::BadInteger, at); // a leading zero
                }
                match v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                {
                    Some(next) if next <= max => v = next,
                    _ => return bad(ReplyErrorKind::BadInteger, at),
                }
            }
            b'\r' => break i,
            b'\n' => return bad(ReplyErrorKind::BadLineEnd, i),
            _ => return bad(ReplyErrorKind::BadInteger, at),
        }
        i += 1;
    };
    if cr == digits || (negative && v == 0) {
        return bad(ReplyErrorKind::BadInteger, at); // no digits, or `-0`
    }
    let n = if negative {
        0i64.wrapping_sub_unsigned(v)
    } else {
        v as i64 // at most i64::MAX
    };
    match buf.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((n, cr + 2))),
        Some(_) => bad(ReplyErrorKind::BadLineEnd, cr),
    }
}

/// The offset of the `\r` ending the line whose type byte is at `at`, or
/// `None` while it has not arrived; `too_long` when more than `limit` bytes
/// follow the type byte without an end.
fn line_end(
    buf: &[u8],
    at: usize,
    limit: usize,
    too_long: ReplyErrorKind,
) -> Result<Option<usize>, ReplyError> {
    let from = at + 1;
    let window = buf.len().min(from.saturating_add(limit).saturating_add(1));
    let found = buf
        .get(from..window)
        .and_then(|line| line.iter().position(|&b| b == b'\r' || b == b'\n'));
    match found {
        Some(i) => {
            let cr = from + i;
            match (buf[cr], buf.get(cr + 1)) {
                (b'\r', Some(b'\n')) => Ok(Some(cr)),
                (b'\r', None) => Ok(None),
                (_, _) => Err(ReplyError::new(ReplyErrorKind::BadLineEnd, cr)),
            }
        }
        None if buf.len().saturating_sub(from) > limit => Err(ReplyError::new(too_long, at)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buf: &[u8]) -> (ReplyRef<'_>, usize) {
        decode_reply(buf, 1 << 20)
            .unwrap()
            .frame()
            .unwrap_or_else(|| panic!("{}: incomplete", buf.escape_ascii()))
    }

    fn kind(buf: &[u8], max_bulk: usize) -> ReplyErrorKind {
        match decode_reply(buf, max_bulk) {
            Err(e) => e.kind(),
            Ok(d) => panic!("{}: expected an error, got {d:?}", buf.escape_ascii()),
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(frame(b"+OK\r\n"), (ReplyRef::SimpleString(b"OK"), 5));
        assert_eq!(frame(b"-ERR x\r\n").0, ReplyRef::Error(b"ERR x"));
        assert_eq!(frame(b":-12\r\n").0, ReplyRef::Integer(-12));
        assert_eq!(frame(b"$3\r\na\r\n\r\n").0, ReplyRef::Bulk(b"a\r\n"));
        assert_eq!(frame(b"$-1\r\n").0, ReplyRef::NullBulk);
        assert_eq!(frame(b"*-1\r\n").0, ReplyRef::NullArray);
        assert_eq!(frame(b"_\r\n").0, ReplyRef::Null);
        assert_eq!(frame(b"#f\r\n").0, ReplyRef::Boolean(false));
        assert_eq!(frame(b",-inf\r\n").0, ReplyRef::Double(f64::NEG_INFINITY));
        assert_eq!(frame(b"(-123\r\n").0, ReplyRef::BigNumber(b"-123"));
        assert_eq!(frame(b"!3\r\nE x\r\n").0, ReplyRef::BlobError(b"E x"));
        assert_eq!(
            frame(b"=6\r\nmkd:hi\r\n").0,
            ReplyRef::Verbatim {
                format: *b"mkd",
                text: b"hi"
            }
        );
    }

    #[test]
    fn need_is_exact_while_a_lone_body_is_awaited() {
        assert_eq!(
            decode_reply(b"$10\r\nab", 100),
            Ok(Decoded::Incomplete { need: 17 })
        );
        // Two more elements after the body: 3 bytes each at least.
        assert_eq!(
            decode_reply(b"*3\r\n$1\r\n", 100),
            Ok(Decoded::Incomplete { need: 11 + 6 })
        );
    }

    #[test]
    fn errors_point_at_their_bytes() {
        let e = decode_reply(b"*2\r\n:1\r\n?\r\n", 10).unwrap_err();
        assert_eq!(
            (e.kind(), e.offset()),
            (ReplyErrorKind::UnknownType(b'?'), 8)
        );
        assert_eq!(e.to_string(), "unknown RESP type byte '?' at byte 8");
        assert_eq!(kind(b"$3\r\nabcX", 10), ReplyErrorKind::BadBulkEnd);
        assert_eq!(kind(b"+a\rb", 10), ReplyErrorKind::BadLineEnd);
    }
}

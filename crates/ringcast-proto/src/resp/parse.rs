//! Request parsing: `processMultibulkBuffer` and `processInlineBuffer`
//! without the client struct, from the start of a buffer.

use super::error::{RespError, RespErrorCode};
use super::{
    inline, Args, Limits, Parsed, PROTO_INLINE_MAX_SIZE, UNAUTHENTICATED_MAX_BULK_LEN,
    UNAUTHENTICATED_MAX_MULTIBULK_LEN,
};

/// Parses one request from the start of `buf`, as a Redis 7 server does.
///
/// Returns [`Parsed::Incomplete`] for any strict prefix of a request that
/// parses, and an error where Redis reports it (see the module
/// documentation). Never allocates, never panics.
///
/// Each call starts from scratch, so a request that arrives in many pieces
/// is read again from its start each time; a connection that keeps a
/// [`Parser`] between calls does not pay that.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, RespError> {
    Parser::new().parse(buf, limits)
}

/// [`parse`] that resumes where the previous call left off on the same
/// growing buffer, so that a request arriving in many pieces costs linear
/// time in its size whatever its pieces (a multibulk of a million small
/// arguments, or a line sent a byte at a time).
///
/// Between calls that answered [`Parsed::Incomplete`] the buffer must start
/// with the same bytes (it may have grown); after any other answer the
/// parser is back at its start, ready for the next request (at the start of
/// the buffer the caller passes next, normally the old one past `consumed`).
/// Given another buffer it gives some answer, but never panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parser {
    /// Offset of the next bulk header of the multibulk under way; 0 when
    /// none is (the `*` line is read again: it is short once accepted).
    next: usize,
    /// Bulks of the multibulk under way already read, before `next`.
    done: usize,
    /// Bytes of the line being searched (the one at `next`, or at 0) known
    /// to hold no end of line; a search resumes here.
    scanned: usize,
}

/// Result of looking for the end of a line.
enum Line {
    /// The terminator's offset in the buffer.
    End(usize),
    /// Not arrived yet.
    Missing,
    /// More than [`PROTO_INLINE_MAX_SIZE`] bytes without it.
    TooBig,
}

impl Parser {
    /// A parser at the start of a request.
    pub const fn new() -> Parser {
        Parser {
            next: 0,
            done: 0,
            scanned: 0,
        }
    }

    /// Parses one request from the start of `buf`; see [`parse`] and the type's documentation.
    pub fn parse<'a>(&mut self, buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, RespError> {
        if self.next > buf.len() || self.scanned > buf.len() {
            // Not the buffer of the previous call: start over.
            *self = Parser::new();
        }
        let result = match buf.first() {
            None => Ok(Parsed::Incomplete { need: 1 }),
            Some(b'*') => self.multibulk(buf, limits),
            Some(_) => self.inline(buf),
        };
        if !matches!(result, Ok(Parsed::Incomplete { .. })) {
            *self = Parser::new();
        }
        result
    }

    /// Looks for `term` in the line starting at `start`, as C's `strchr`
    /// does (a NUL byte ends the search unfound), within the line's first
    /// 64 KiB + 1 bytes, resuming after the bytes already searched.
    fn find(&mut self, buf: &[u8], start: usize, term: u8) -> Line {
        let limit = buf
            .len()
            .min(start.saturating_add(PROTO_INLINE_MAX_SIZE + 1));
        let from = self.scanned.clamp(start, limit);
        match buf[from..limit].iter().position(|&b| b == term || b == 0) {
            Some(i) if buf[from + i] == term => {
                self.scanned = 0;
                return Line::End(from + i);
            }
            // A NUL: stay on it, so that the next search stops there at once.
            Some(i) => self.scanned = from + i,
            None => self.scanned = limit,
        }
        if buf.len() - start > PROTO_INLINE_MAX_SIZE {
            Line::TooBig
        } else {
            Line::Missing
        }
    }

    fn multibulk<'a>(&mut self, buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, RespError> {
        let resuming = self.next != 0;
        if resuming {
            // The scan position belongs to the bulk line at `next`.
            let mut header = Parser::new();
            let Line::End(cr) = header.find(buf, 0, b'\r') else {
                *self = Parser::new();
                return self.multibulk(buf, limits);
            };
            return self.bulks(buf, limits, cr);
        }
        let cr = match self.find(buf, 0, b'\r') {
            Line::End(cr) => cr,
            Line::Missing => return Ok(incomplete(buf)),
            Line::TooBig => return Err(RespError::new(RespErrorCode::TooBigMbulkCountString)),
        };
        self.bulks(buf, limits, cr)
    }

    /// The multibulk whose `*` line's `\r` is at `cr`: its count, then its bulks.
    fn bulks<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
        cr: usize,
    ) -> Result<Parsed<'a>, RespError> {
        // Redis wants one byte after the `\r` and skips it unchecked.
        if cr + 1 >= buf.len() {
            return Ok(incomplete(buf));
        }
        let count = string2ll(&buf[1..cr])
            .filter(|&n| n <= i64::try_from(limits.max_multibulk_len).unwrap_or(i64::MAX))
            .ok_or(RespError::new(RespErrorCode::InvalidMultibulkLength))?;
        if count > UNAUTHENTICATED_MAX_MULTIBULK_LEN && limits.unauthenticated {
            return Err(RespError::new(
                RespErrorCode::UnauthenticatedMultibulkLength,
            ));
        }
        let first = cr + 2;
        if count <= 0 {
            return Ok(Parsed::Skip { consumed: first });
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let max_bulk = i64::try_from(limits.max_bulk_len).unwrap_or(i64::MAX);

        let (mut at, mut done) = if self.next >= first {
            (self.next, self.done)
        } else {
            (first, 0)
        };
        while done < count {
            self.next = at;
            self.done = done;
            let cr = match self.find(buf, at, b'\r') {
                Line::End(cr) => cr,
                Line::Missing => return Ok(incomplete(buf)),
                Line::TooBig => return Err(RespError::new(RespErrorCode::TooBigBulkCountString)),
            };
            if cr + 1 >= buf.len() {
                return Ok(incomplete(buf));
            }
            if buf[at] != b'$' {
                return Err(RespError::expected_dollar(buf[at]));
            }
            let len = string2ll(&buf[at + 1..cr])
                .filter(|&n| (0..=max_bulk).contains(&n))
                .ok_or(RespError::new(RespErrorCode::InvalidBulkLength))?;
            if len > UNAUTHENTICATED_MAX_BULK_LEN && limits.unauthenticated {
                return Err(RespError::new(RespErrorCode::UnauthenticatedBulkLength));
            }
            // The body and the two bytes after it; past the address space it never comes.
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| (cr + 2).checked_add(len)?.checked_add(2))
                .unwrap_or(usize::MAX);
            if buf.len() < end {
                return Ok(Parsed::Incomplete { need: end });
            }
            at = end;
            done += 1;
        }
        Ok(Parsed::Command {
            args: Args::multibulk(&buf[first..at], count),
            consumed: at,
        })
    }

    fn inline<'a>(&mut self, buf: &'a [u8]) -> Result<Parsed<'a>, RespError> {
        let lf = match self.find(buf, 0, b'\n') {
            Line::End(lf) => lf,
            Line::Missing => return Ok(incomplete(buf)),
            Line::TooBig => return Err(RespError::new(RespErrorCode::TooBigInlineRequest)),
        };
        let line_end = if lf > 0 && buf[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        let line = &buf[..line_end];
        let count =
            inline::count(line).map_err(|_| RespError::new(RespErrorCode::UnbalancedQuotes))?;
        let consumed = lf + 1;
        if count == 0 {
            return Ok(Parsed::Skip { consumed });
        }
        Ok(Parsed::Command {
            args: Args::inline(line, count),
            consumed,
        })
    }
}

/// One more byte than `buf` holds.
fn incomplete(buf: &[u8]) -> Parsed<'static> {
    Parsed::Incomplete {
        need: buf.len() + 1,
    }
}

/// Redis's `string2ll`: a canonical decimal `long long` of 1 to 20
/// characters (`0`, or an optional `-` and a digit 1-9 then digits), or `None`.
pub(crate) fn string2ll(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE is 21: 20 characters at most.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        // Down to i64::MIN, whose magnitude is one more than i64::MAX.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn string2ll_is_redis_strict() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"7"), Some(7));
        assert_eq!(string2ll(b"-7"), Some(-7));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"000000000000000000001",
            b"18446744073709551616",
        ] {
            assert_eq!(string2ll(bad), None, "{:?}", bad.escape_ascii().to_string());
        }
    }

    #[test]
    fn resumes_where_it_left_off() {
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        let mut p = Parser::new();
        for n in 0..req.len() {
            assert!(matches!(
                p.parse(&req[..n], &Limits::default()),
                Ok(Parsed::Incomplete { .. })
            ));
        }
        let Ok(Parsed::Command { args, consumed }) = p.parse(req, &Limits::default()) else {
            panic!("no command");
        };
        assert_eq!(consumed, req.len());
        assert_eq!(
            args.iter().collect::<Vec<_>>(),
            [&b"SET"[..], b"k", b"value"]
        );
        assert_eq!(p, Parser::new());
    }

    const L: Limits = Limits::REDIS;

    fn args(buf: &[u8]) -> (Vec<Vec<u8>>, usize) {
        match parse(buf, &L) {
            Ok(Parsed::Command { args, consumed }) => {
                (args.iter().map(|a| a.into_owned()).collect(), consumed)
            }
            other => panic!(
                "{:?}: expected a command, got {other:?}",
                buf.escape_ascii().to_string()
            ),
        }
    }

    fn code(buf: &[u8], limits: &Limits) -> RespErrorCode {
        match parse(buf, limits) {
            Err(e) => e.code(),
            other => panic!(
                "{:?}: expected an error, got {other:?}",
                buf.escape_ascii().to_string()
            ),
        }
    }

    fn incomplete(buf: &[u8]) -> bool {
        matches!(parse(buf, &L), Ok(Parsed::Incomplete { .. }))
    }

    fn v(items: &[&[u8]]) -> Vec<Vec<u8>> {
        items.iter().map(|a| a.to_vec()).collect()
    }

    #[test]
    fn multibulk() {
        let (a, n) = args(b"*2\r\n$7\r\nPUBLISH\r\n$0\r\n\r\n*1\r\n");
        assert_eq!((a, n), (v(&[b"PUBLISH", b""]), 23));
        // Binary bodies: CR, LF, NUL and `$` are data.
        let (a, _) = args(b"*1\r\n$4\r\n\r\n\x00$\r\n");
        assert_eq!(a, v(&[b"\r\n\x00$"]));
    }

    #[test]
    fn redis_does_not_check_the_byte_after_cr_nor_after_a_body() {
        let (a, n) = args(b"*1\rX$1\rYaZZ");
        assert_eq!((a, n), (v(&[b"a"]), 11));
    }

    #[test]
    fn empty_counts_and_lines_are_skipped() {
        for (buf, consumed) in [
            (&b"*0\r\n"[..], 4),
            (b"*-1\r\n", 5),
            (b"*-99\r\n", 6),
            (b"\r\n", 2),
            (b"\n", 1),
            (b" \t \r\nPING\r\n", 5),
        ] {
            assert_eq!(parse(buf, &L), Ok(Parsed::Skip { consumed }), "{buf:?}");
        }
        // Unauthenticated, a negative count is still skipped.
        assert_eq!(
            parse(b"*-1\r\n", &L.with_unauthenticated(true)),
            Ok(Parsed::Skip { consumed: 5 })
        );
    }

    #[test]
    fn multibulk_counts() {
        use RespErrorCode::*;
        assert!(incomplete(b"*2147483647\r\n"));
        for bad in [
            &b"*2147483648\r\n"[..],
            b"*\r\n",
            b"*x\r\n",
            b"*01\r\n",
            b"*-0\r\n",
            b"*1 \r\n",
        ] {
            assert_eq!(code(bad, &L), InvalidMultibulkLength, "{bad:?}");
        }
        let lower = Limits {
            max_multibulk_len: 3,
            ..L
        };
        assert_eq!(code(b"*4\r\n", &lower), InvalidMultibulkLength);
        assert!(matches!(
            parse(b"*3\r\n", &lower),
            Ok(Parsed::Incomplete { .. })
        ));
        let unauth = L.with_unauthenticated(true);
        assert_eq!(code(b"*11\r\n", &unauth), UnauthenticatedMultibulkLength);
        assert!(matches!(
            parse(b"*10\r\n", &unauth),
            Ok(Parsed::Incomplete { .. })
        ));
    }

    #[test]
    fn bulk_lengths_are_judged_from_the_header() {
        use RespErrorCode::*;
        for bad in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$\r\n",
            b"*1\r\n$01\r\n",
            b"*1\r\n$+1\r\n",
            b"*1\r\n$1x\r\n",
        ] {
            assert_eq!(code(bad, &L), InvalidBulkLength, "{bad:?}");
        }
        let small = L.with_max_bulk_len(10);
        assert_eq!(code(b"*1\r\n$11\r\n", &small), InvalidBulkLength);
        assert_eq!(
            parse(b"*1\r\n$10\r\n", &small),
            Ok(Parsed::Incomplete { need: 9 + 10 + 2 })
        );
        assert_eq!(code(b"*1\r\n$536870913\r\n", &L), InvalidBulkLength);
        assert!(incomplete(b"*1\r\n$536870912\r\n"));
        let unauth = L.with_unauthenticated(true);
        assert_eq!(
            code(b"*1\r\n$16385\r\n", &unauth),
            UnauthenticatedBulkLength
        );
        assert!(matches!(
            parse(b"*1\r\n$16384\r\n", &unauth),
            Ok(Parsed::Incomplete { .. })
        ));
        // A later bulk is judged as soon as its header is there.
        assert_eq!(code(b"*3\r\n$1\r\na\r\n$-5\r\n", &L), InvalidBulkLength);
    }

    #[test]
    fn expected_dollar_waits_for_the_line_as_redis_does() {
        assert!(incomplete(b"*1\r\n:1"));
        assert!(incomplete(b"*1\r\n:1\r"));
        assert_eq!(
            parse(b"*1\r\n:1\r\n", &L),
            Err(RespError::expected_dollar(b':'))
        );
        assert_eq!(
            parse(b"*1\r\n\r\n", &L),
            Err(RespError::expected_dollar(b'\r'))
        );
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n*1\r\n", &L),
            Err(RespError::expected_dollar(b'*'))
        );
    }

    #[test]
    fn lines_end_within_64k() {
        use RespErrorCode::*;
        let max = PROTO_INLINE_MAX_SIZE;
        // A `*` line: 64 KiB without CR waits, one more byte is the error.
        let mut buf = vec![b'*'];
        buf.resize(max, b'1');
        assert!(incomplete(&buf));
        buf.push(b'1');
        assert_eq!(code(&buf, &L), TooBigMbulkCountString);
        // The same for a `$` line, counted from its own start.
        let mut buf = b"*1\r\n$".to_vec();
        buf.resize(4 + max, b'1');
        assert!(incomplete(&buf));
        buf.push(b'1');
        assert_eq!(code(&buf, &L), TooBigBulkCountString);
        // An inline line may be 64 KiB long; without LF in 64 KiB + 1 bytes it is refused.
        let mut buf = vec![b'a'; max];
        assert!(incomplete(&buf));
        buf.push(b'\n');
        assert_eq!(args(&buf).1, max + 1);
        buf[max] = b'a';
        assert_eq!(code(&buf, &L), TooBigInlineRequest);
        buf.push(b'\n');
        assert_eq!(code(&buf, &L), TooBigInlineRequest);
    }

    #[test]
    fn a_nul_hides_the_end_of_a_line_as_strchr_does() {
        use RespErrorCode::*;
        assert!(incomplete(b"PING\x00\r\n"));
        assert!(incomplete(b"*1\x00\r\n$4\r\nPING\r\n"));
        assert!(incomplete(b"*1\r\n$4\x00\r\nPING\r\n"));
        let mut buf = b"PING\x00\r\n".to_vec();
        buf.resize(PROTO_INLINE_MAX_SIZE + 1, b'\n');
        assert_eq!(code(&buf, &L), TooBigInlineRequest);
        let mut buf = b"*1\x00\r\n".to_vec();
        buf.resize(PROTO_INLINE_MAX_SIZE + 1, b'\r');
        assert_eq!(code(&buf, &L), TooBigMbulkCountString);
        // In a bulk's body, NUL is data.
        assert_eq!(args(b"*1\r\n$1\r\n\x00\r\n").0, v(&[b"\x00"]));
    }

    #[test]
    fn inline() {
        assert_eq!(args(b"PING\r\n"), (v(&[b"PING"]), 6));
        assert_eq!(args(b"PING\n"), (v(&[b"PING"]), 5));
        assert_eq!(
            args(b"  subscribe a  b\r\n"),
            (v(&[b"subscribe", b"a", b"b"]), 18)
        );
        assert_eq!(
            args(b"publish ch \"a b\\x41\"\n").0,
            v(&[b"publish", b"ch", b"a bA"])
        );
        assert_eq!(args(b"echo \"\"\n").0, v(&[b"echo", b""]));
        // Only the CR right before LF belongs to the line's end.
        assert_eq!(args(b"a\r\r\n"), (v(&[b"a"]), 4));
        assert!(incomplete(b"PING"));
        assert!(incomplete(b"PING\r"));
        assert_eq!(code(b"publish \"ch\n", &L), RespErrorCode::UnbalancedQuotes);
        assert_eq!(code(b"echo 'a'b\r\n", &L), RespErrorCode::UnbalancedQuotes);
        // Unauthenticated limits are for multibulk only.
        let many = b"a b c d e f g h i j k l m\n";
        assert!(matches!(
            parse(many, &L.with_unauthenticated(true)),
            Ok(Parsed::Command { .. })
        ));
    }

    #[test]
    fn args_borrow_unless_escaped() {
        let buf = b"set \"k\" \"v\\n\" plain\n";
        let Ok(Parsed::Command { args, .. }) = parse(buf, &L) else {
            panic!()
        };
        let kinds: Vec<bool> = args.iter().map(|a| matches!(a, Cow::Borrowed(_))).collect();
        assert_eq!(kinds, [true, true, false, true]);
        assert_eq!(args.len(), 4);
        assert!(args.is_inline());
        assert_eq!(&*args.name(), b"set");
        assert_eq!(args.get(2).as_deref(), Some(&b"v\n"[..]));
        assert_eq!(args.get(4), None);
        assert_eq!(format!("{args:?}"), r#"["set", "k", "v\n", "plain"]"#);
    }

    #[test]
    fn a_parser_given_another_buffer_does_not_panic() {
        let mut p = Parser::new();
        assert!(p.parse(b"*3\r\n$3\r\nSET\r\n$1", &L).is_ok());
        for other in [
            &b""[..],
            b"*1\r\n",
            b"x",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
        ] {
            let mut q = p;
            if let Ok(Parsed::Command { args, .. }) = q.parse(other, &L) {
                let _ = args.iter().count();
            }
        }
    }

    #[test]
    fn need_is_the_bulk_end() {
        let req = b"*1\r\n$5\r\nhe";
        assert_eq!(
            parse(req, &Limits::default()),
            Ok(Parsed::Incomplete {
                need: 4 + 4 + 5 + 2
            })
        );
    }
}

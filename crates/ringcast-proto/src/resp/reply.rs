//! Reply encoding: one RESP element at a time, into a `Vec<u8>` or a slice.

use std::borrow::Cow;
use std::fmt::Write as _;

/// One RESP element as it goes on the wire: a scalar, or the header of an
/// aggregate whose elements are encoded after it. The variants are wire
/// types; [`super::Protocol`]'s methods choose among them for the logical
/// types whose encoding differs between RESP2 and RESP3.
///
/// Encoders trust their input: a simple string or error holding `\r` or
/// `\n` is a bug of the caller (checked with `debug_assert!` only; see
/// [`sanitize_error`] for text that may hold them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reply<'a> {
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
    /// `*<n>\r\n`, followed by n elements.
    Array(usize),
    /// `_\r\n`: RESP3's null.
    Null,
    /// `%<n>\r\n`, followed by n keys and values (RESP3).
    Map(usize),
    /// `~<n>\r\n`, followed by n elements (RESP3).
    Set(usize),
    /// `><n>\r\n`, followed by n elements (RESP3 out-of-band data).
    Push(usize),
    /// `,<%.17g>\r\n` (RESP3), as Redis 7.0 formats doubles (`inf`, `-inf`, `nan`).
    Double(f64),
    /// A double as RESP2 sends it: a bulk string of its `%.17g` text.
    DoubleBulk(f64),
    /// `#t\r\n` or `#f\r\n` (RESP3).
    Boolean(bool),
    /// `=<len + 4>\r\n<format>:<text>\r\n` (RESP3), format `txt` or `mkd`.
    Verbatim { format: [u8; 3], text: &'a [u8] },
}

impl Reply<'_> {
    /// Total bytes of the encoded element (for an aggregate, of its header only).
    pub fn encoded_len(&self) -> usize {
        let mut n = Count(0);
        self.write(&mut n);
        n.0
    }

    /// Appends the encoded element to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.write(out);
    }

    /// Writes into the start of `out` (must be at least
    /// [`Reply::encoded_len`] bytes, panics otherwise); returns bytes written.
    pub fn encode_to_slice(&self, out: &mut [u8]) -> usize {
        let n = self.encoded_len();
        assert!(
            out.len() >= n,
            "output buffer of {} bytes is too small for a {n}-byte reply",
            out.len()
        );
        let mut s = SliceSink { out, at: 0 };
        self.write(&mut s);
        debug_assert_eq!(s.at, n);
        s.at
    }

    pub(crate) fn write<S: Sink>(&self, s: &mut S) {
        match *self {
            Reply::SimpleString(text) => line(s, b'+', text),
            Reply::Error(text) => line(s, b'-', text),
            Reply::Integer(n) => header(s, b':', n),
            Reply::Bulk(bytes) => bulk(s, bytes),
            Reply::NullBulk => s.put(b"$-1\r\n"),
            Reply::NullArray => s.put(b"*-1\r\n"),
            Reply::Array(n) => header_len(s, b'*', n),
            Reply::Null => s.put(b"_\r\n"),
            Reply::Map(n) => header_len(s, b'%', n),
            Reply::Set(n) => header_len(s, b'~', n),
            Reply::Push(n) => header_len(s, b'>', n),
            Reply::Double(d) => {
                let g = G17::new(d);
                s.put(b",");
                s.put(g.as_bytes());
                s.put(b"\r\n");
            }
            Reply::DoubleBulk(d) => bulk(s, G17::new(d).as_bytes()),
            Reply::Boolean(b) => s.put(if b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Verbatim { format, text } => {
                header_len(s, b'=', text.len() + 4);
                s.put(&format);
                s.put(b":");
                s.put(text);
                s.put(b"\r\n");
            }
        }
    }
}

/// Error text made safe as Redis's `addReplyErrorFormat` makes it: `\r` and
/// `\n` trimmed from both ends, then any left inside turned into spaces.
/// Borrowed when there is nothing to change. Use it for errors that quote
/// the client's input ("unknown command '...'").
pub fn sanitize_error(text: &[u8]) -> Cow<'_, [u8]> {
    let is_nl = |b: &u8| matches!(b, b'\r' | b'\n');
    let start = text.iter().position(|b| !is_nl(b)).unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !is_nl(b))
        .map_or(start, |i| i + 1);
    let text = &text[start..end];
    if text.iter().any(is_nl) {
        Cow::Owned(
            text.iter()
                .map(|&b| if is_nl(&b) { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Where encoders write: a `Vec`, a slice, or a byte counter.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts the bytes that would be written.
pub(crate) struct Count(pub usize);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Writes from the start of a slice the caller has checked is long enough.
pub(crate) struct SliceSink<'a> {
    pub out: &'a mut [u8],
    pub at: usize,
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

fn line<S: Sink>(s: &mut S, prefix: u8, text: &[u8]) {
    debug_assert!(
        !text.iter().any(|&b| b == b'\r' || b == b'\n'),
        "a simple string or error holds CR or LF"
    );
    s.put(&[prefix]);
    s.put(text);
    s.put(b"\r\n");
}

pub(crate) fn bulk<S: Sink>(s: &mut S, bytes: &[u8]) {
    header_len(s, b'$', bytes.len());
    s.put(bytes);
    s.put(b"\r\n");
}

/// `<prefix><n>\r\n`.
pub(crate) fn header<S: Sink>(s: &mut S, prefix: u8, n: i64) {
    let mut buf = [0u8; 24];
    buf[0] = prefix;
    let digits = decimal(n.unsigned_abs(), &mut buf[2..22]);
    let mut at = 1;
    if n < 0 {
        buf[at] = b'-';
        at += 1;
    }
    buf.copy_within(22 - digits..22, at);
    at += digits;
    buf[at..at + 2].copy_from_slice(b"\r\n");
    s.put(&buf[..at + 2]);
}

/// `<prefix><len>\r\n` for a length (always fits an i64 on supported targets).
pub(crate) fn header_len<S: Sink>(s: &mut S, prefix: u8, len: usize) {
    header(s, prefix, i64::try_from(len).expect("length over i64::MAX"));
}

/// Writes `n`'s decimal digits at the end of `out` (20 bytes); returns how many.
fn decimal(mut n: u64, out: &mut [u8]) -> usize {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.len() - i
}

/// A double formatted as C's `printf("%.17g")` (glibc), on the stack.
pub(crate) struct G17 {
    buf: [u8; 32],
    len: usize,
}

impl G17 {
    pub(crate) fn new(d: f64) -> G17 {
        let mut g = G17 {
            buf: [0; 32],
            len: 0,
        };
        if d.is_sign_negative() {
            g.push(b'-');
        }
        if d.is_nan() {
            g.extend(b"nan");
            return g;
        }
        if d.is_infinite() {
            g.extend(b"inf");
            return g;
        }
        // 17 significant digits, correctly rounded, and the exponent after rounding.
        let mut sci = Scratch {
            buf: [0; 40],
            len: 0,
        };
        write!(sci, "{:.16e}", d.abs()).expect("40 bytes hold any f64 in {:.16e}");
        let text = &sci.buf[..sci.len];
        let e_at = text
            .iter()
            .position(|&b| b == b'e')
            .expect("{:e} writes an exponent");
        let mut digits = [0u8; 17];
        digits[0] = text[0];
        digits[1..].copy_from_slice(&text[2..e_at]);
        let exp: i32 = std::str::from_utf8(&text[e_at + 1..])
            .ok()
            .and_then(|e| e.parse().ok())
            .expect("{:e} writes a decimal exponent");
        // %g drops trailing zeros (and the point, if nothing is left after it).
        let significant = digits.iter().rposition(|&b| b != b'0').map_or(1, |i| i + 1);
        let digits = &digits[..significant];
        if (-4..17).contains(&exp) {
            if exp >= 0 {
                let int_len = exp as usize + 1;
                for i in 0..int_len {
                    g.push(digits.get(i).copied().unwrap_or(b'0'));
                }
                if digits.len() > int_len {
                    g.push(b'.');
                    g.extend(&digits[int_len..]);
                }
            } else {
                g.extend(b"0.");
                for _ in 0..(-exp - 1) {
                    g.push(b'0');
                }
                g.extend(digits);
            }
        } else {
            g.push(digits[0]);
            if digits.len() > 1 {
                g.push(b'.');
                g.extend(&digits[1..]);
            }
            g.push(b'e');
            g.push(if exp < 0 { b'-' } else { b'+' });
            let mut e = [0u8; 20];
            let n = decimal(u64::from(exp.unsigned_abs()), &mut e);
            if n < 2 {
                g.push(b'0');
            }
            g.extend(&e[20 - n..]);
        }
        g
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A `fmt::Write` into a stack buffer.
struct Scratch {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for Scratch {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Protocol;

    fn enc(r: Reply<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        r.encode(&mut v);
        assert_eq!(v.len(), r.encoded_len());
        let mut s = vec![0xAA; v.len() + 3];
        assert_eq!(r.encode_to_slice(&mut s), v.len());
        assert_eq!(&s[..v.len()], &v[..]);
        v
    }

    #[test]
    fn scalars() {
        assert_eq!(enc(Reply::SimpleString(b"OK")), b"+OK\r\n");
        assert_eq!(enc(Reply::Error(b"ERR nope")), b"-ERR nope\r\n");
        assert_eq!(enc(Reply::Integer(0)), b":0\r\n");
        assert_eq!(enc(Reply::Integer(-42)), b":-42\r\n");
        assert_eq!(enc(Reply::Integer(i64::MIN)), b":-9223372036854775808\r\n");
        assert_eq!(enc(Reply::Integer(i64::MAX)), b":9223372036854775807\r\n");
        assert_eq!(enc(Reply::Bulk(b"")), b"$0\r\n\r\n");
        assert_eq!(enc(Reply::Bulk(b"a\r\nb")), b"$4\r\na\r\nb\r\n");
        assert_eq!(enc(Reply::NullBulk), b"$-1\r\n");
        assert_eq!(enc(Reply::NullArray), b"*-1\r\n");
        assert_eq!(enc(Reply::Null), b"_\r\n");
        assert_eq!(enc(Reply::Boolean(true)), b"#t\r\n");
        assert_eq!(enc(Reply::Boolean(false)), b"#f\r\n");
        assert_eq!(
            enc(Reply::Verbatim {
                format: *b"txt",
                text: b"# Server\r\n"
            }),
            b"=14\r\ntxt:# Server\r\n\r\n"
        );
    }

    #[test]
    fn aggregates() {
        assert_eq!(enc(Reply::Array(0)), b"*0\r\n");
        assert_eq!(enc(Reply::Array(12345)), b"*12345\r\n");
        assert_eq!(enc(Reply::Map(3)), b"%3\r\n");
        assert_eq!(enc(Reply::Set(2)), b"~2\r\n");
        assert_eq!(enc(Reply::Push(3)), b">3\r\n");
    }

    #[test]
    fn protocol_choices_are_redis_ones() {
        use Protocol::{Resp2, Resp3};
        assert_eq!(enc(Resp2.null()), b"$-1\r\n");
        assert_eq!(enc(Resp3.null()), b"_\r\n");
        assert_eq!(enc(Resp2.null_array()), b"*-1\r\n");
        assert_eq!(enc(Resp3.null_array()), b"_\r\n");
        assert_eq!(enc(Resp2.map(7)), b"*14\r\n");
        assert_eq!(enc(Resp3.map(7)), b"%7\r\n");
        assert_eq!(enc(Resp2.set(2)), b"*2\r\n");
        assert_eq!(enc(Resp3.set(2)), b"~2\r\n");
        assert_eq!(enc(Resp2.push(3)), b"*3\r\n");
        assert_eq!(enc(Resp3.push(3)), b">3\r\n");
        assert_eq!(enc(Resp2.boolean(true)), b":1\r\n");
        assert_eq!(enc(Resp2.boolean(false)), b":0\r\n");
        assert_eq!(enc(Resp3.boolean(true)), b"#t\r\n");
        assert_eq!(enc(Resp2.double(1.5)), b"$3\r\n1.5\r\n");
        assert_eq!(enc(Resp3.double(1.5)), b",1.5\r\n");
        assert_eq!(enc(Resp2.double(f64::INFINITY)), b"$3\r\ninf\r\n");
        assert_eq!(enc(Resp3.double(f64::NEG_INFINITY)), b",-inf\r\n");
        assert_eq!(enc(Resp2.verbatim(*b"txt", b"hi")), b"$2\r\nhi\r\n");
        assert_eq!(enc(Resp3.verbatim(*b"txt", b"hi")), b"=6\r\ntxt:hi\r\n");
        assert_eq!(Protocol::from_version(3), Some(Resp3));
        assert_eq!(Protocol::from_version(4), None);
        assert_eq!(Resp2.version(), 2);
    }

    #[test]
    fn doubles_print_as_glibc_percent_17g() {
        // Checked against glibc's printf("%.17g").
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.10000000000000001"),
            (1.0 / 3.0, "0.33333333333333331"),
            (100.0, "100"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (1.5e-5, "1.5e-05"),
            (2.0f64.powi(-25), "2.9802322387695312e-08"),
            (1e300, "1.0000000000000001e+300"),
            (5e-324, "4.9406564584124654e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1e23, "9.9999999999999992e+22"),
            (2.71, "2.71"),
            (1.1, "1.1000000000000001"),
            (1234.5, "1234.5"),
            (f64::NAN, "nan"),
            (-f64::NAN, "-nan"),
        ];
        for &(d, want) in cases {
            assert_eq!(
                std::str::from_utf8(G17::new(d).as_bytes()).unwrap(),
                want,
                "{d:e}"
            );
        }
    }

    #[test]
    fn sanitize_error_is_addreplyerrorformat() {
        assert_eq!(&*sanitize_error(b"ERR fine"), b"ERR fine");
        assert!(matches!(sanitize_error(b"ERR fine"), Cow::Borrowed(_)));
        assert_eq!(&*sanitize_error(b"\r\nERR a\r\nb\n\r"), b"ERR a  b");
        assert_eq!(&*sanitize_error(b"\r\n"), b"");
    }
}

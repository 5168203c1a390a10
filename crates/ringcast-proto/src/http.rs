//! HTTP/1.1 request heads (RFC 9112) parsed strictly, and the responses we send.
//!
//! The parser is stateless: it is handed everything received so far and
//! answers [`Parsed::Incomplete`] for every strict prefix of a valid head, a
//! borrowed [`Request`] once the blank line has arrived, or an [`HttpError`]
//! carrying the status to answer with. Each complete line is checked as soon
//! as it is in the buffer, so garbage is refused without waiting for the limit;
//! the first line that breaks a rule decides the status. Calling it again on a
//! grown buffer rescans from the start: the cost is linear in the head, which
//! `max` bounds.
//!
//! [`httparse`] tokenises the complete lines; the rules it does not enforce are
//! checked here: it takes a bare LF for a line end and skips empty lines before
//! the request line, its request targets may hold `#` and non-ASCII bytes, it
//! refuses every version but 1.0 and 1.1 alike, and it knows nothing of
//! `Host`, `Content-Length` or bodies.
//!
//! What is refused, and with which status:
//! - 400: a line not ended by CRLF (bare LF or a stray CR), a malformed request
//!   line (method not a token, target not origin-, absolute- or asterisk-form,
//!   not exactly one space between the three parts, a version not `HTTP/d.d`),
//!   a header line without a colon, with a name that is not a token, with
//!   whitespace before the colon or a control character in the value, an
//!   obsolete line folding (a line starting with a space or tab), a
//!   `Content-Length` that is not decimal, a missing `Host` on HTTP/1.1 or more
//!   than one `Host` (RFC 9112 §3.2).
//! - 413: any request body (`Content-Length` above 0 or any `Transfer-Encoding`).
//! - 431: a head not complete within `max` bytes, or more than [`MAX_HEADERS`] header lines.
//! - 505: a well-formed version other than HTTP/1.0 and HTTP/1.1.
//!
//! Responses always close the connection and forbid caching.

use std::io::Write as _;

use httparse::Status;

/// The most header lines a request may carry; one more is 431.
pub const MAX_HEADERS: usize = 64;

/// A parsed request head, borrowing from the receive buffer.
///
/// Invariants: `method` is a non-empty token, `path` and `query` are visible
/// ASCII, `path` starts with `/` (or is `*` for `OPTIONS *`), header names are
/// tokens and header values hold no control character but tab, with
/// surrounding spaces and tabs removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, case-sensitive as sent (`GET`, `HEAD`, ...).
    pub method: &'a str,
    /// The path, without the query. For an absolute-form target
    /// (`http://host/p`) the scheme and authority are removed; an empty path is `/`.
    pub path: &'a str,
    /// What follows the first `?` of the target; empty when there is none.
    pub query: &'a str,
    /// The `x` of `HTTP/1.x`: 0 or 1.
    pub version_minor: u8,
    headers: Headers<'a>,
}

impl<'a> Request<'a> {
    /// Value of the first header named `name` (ASCII case-insensitive), surrounding whitespace trimmed.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.values(name).next()
    }

    /// Values of every header named `name` (ASCII case-insensitive), in order, each trimmed.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers.values(name)
    }

    /// The elements of every header named `name`, read as comma-separated
    /// lists (`Connection`, `Upgrade`, `Sec-WebSocket-Protocol`, which may
    /// repeat): split on `,`, trimmed, empty elements skipped.
    pub fn header_tokens<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers.tokens(name)
    }

    /// Every header as `(name, value)`, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.headers.0.iter().copied()
    }

    /// Whether the method is `HEAD` (the response then carries no body).
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Result of [`parse`] on a buffer that may hold a partial head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole head: the first `consumed` bytes of the buffer, through the blank line.
    Complete {
        /// The request head.
        request: Request<'a>,
        /// Bytes of the buffer that belong to the head; at most `max`.
        consumed: usize,
    },
    /// Not enough bytes yet; call again with more.
    Incomplete,
}

/// Why a request is refused: the status to answer with and a short sentence
/// for people (it becomes the body of [`error_response`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// The response status (400, 413, 431 or 505 from [`parse`]).
    pub status: u16,
    /// What was wrong, in a few words; no line breaks.
    pub reason: &'static str,
}

impl HttpError {
    const fn new(status: u16, reason: &'static str) -> HttpError {
        HttpError { status, reason }
    }

    const fn bad(reason: &'static str) -> HttpError {
        HttpError::new(400, reason)
    }
}

/// Parses one request head (request line and headers through the blank line)
/// from the start of `buf`.
///
/// `max` bounds the head's size: a head not complete within `max` bytes is
/// 431. See the module documentation for every other refusal. Only CRLF ends
/// a line. Bytes after the head are left alone (`consumed` says where it ends).
pub fn parse(buf: &[u8], max: usize) -> Result<Parsed<'_>, HttpError> {
    let (lines, line_error) = crlf_lines(&buf[..buf.len().min(max)]);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let status = match req.parse(lines) {
        Ok(status) => status,
        Err(httparse::Error::Version) => return Err(version_error(lines, &req)),
        Err(e) => return Err(refusal(e, "malformed request line")),
    };
    // Once the request line is in `lines`, httparse has refused it or read all three parts.
    let (Some(method), Some(target), Some(version_minor)) = (req.method, req.path, req.version)
    else {
        return line_error.map_or_else(|| incomplete(buf, max), Err);
    };
    let (path, query) = split_target(method, target)?;
    let Status::Complete(consumed) = status else {
        return line_error.map_or_else(|| incomplete(buf, max), Err);
    };
    let headers = Headers(req.headers.iter().map(|h| (h.name, h.value)).collect());
    check_framing(version_minor, &headers)?;
    Ok(Parsed::Complete {
        request: Request {
            method,
            path,
            query,
            version_minor,
            headers,
        },
        consumed,
    })
}

/// Incomplete while the limit leaves room, else 431.
fn incomplete(buf: &[u8], max: usize) -> Result<Parsed<'_>, HttpError> {
    if buf.len() >= max {
        Err(HttpError::new(431, "request head is too large"))
    } else {
        Ok(Parsed::Incomplete)
    }
}

/// The start of `buf` that httparse may see: its complete lines, each ended by
/// CRLF and holding no other CR, up to the first line that breaks this rule (its
/// error is returned too) and through the blank line that ends the head. An
/// empty first line is refused as well (httparse would skip it).
fn crlf_lines(buf: &[u8]) -> (&[u8], Option<HttpError>) {
    let mut end = 0;
    for line in buf.split_inclusive(|&b| b == b'\n') {
        let error = match line.strip_suffix(b"\r\n") {
            None if !line.ends_with(b"\n") => None, // the last line, still arriving
            None => Some(HttpError::bad("line not ended by CRLF")),
            Some(text) if text.contains(&b'\r') => Some(HttpError::bad("stray CR in a line")),
            Some([]) if end == 0 => Some(HttpError::bad("empty line before the start line")),
            Some(text) => {
                end += line.len();
                if text.is_empty() {
                    break;
                }
                continue;
            }
        };
        return (&buf[..end], error);
    }
    (&buf[..end], None)
}

/// The status for an httparse error; `start_line` is the reason when the
/// error lies in the request or status line.
fn refusal(e: httparse::Error, start_line: &'static str) -> HttpError {
    match e {
        httparse::Error::HeaderName => {
            HttpError::bad("header name is not a token (or no colon, or an obsolete folding)")
        }
        httparse::Error::HeaderValue => HttpError::bad("control character in a header value"),
        httparse::Error::TooManyHeaders => HttpError::new(431, "too many header lines"),
        _ => HttpError::bad(start_line),
    }
}

/// httparse refuses every version but HTTP/1.0 and HTTP/1.1 alike, after
/// reading the method and target: a well-formed `HTTP/d.d` as the rest of the
/// request line is 505, anything else 400.
fn version_error(lines: &[u8], req: &httparse::Request<'_, '_>) -> HttpError {
    let request_line = lines.split(|&b| b == b'\r').next().unwrap_or_default();
    let version_at = req.method.map_or(0, str::len) + 1 + req.path.map_or(0, str::len) + 1;
    match request_line.get(version_at..) {
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            HttpError::new(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        }
        _ => HttpError::bad("malformed HTTP version"),
    }
}

/// Splits a request target into path and query.
///
/// Origin-form (`/p?q`), absolute-form (`http://host/p?q`, http or https,
/// scheme case-insensitive) and, for `OPTIONS` only, asterisk-form (`*`).
/// Every byte must be visible ASCII; a fragment (`#`) is refused.
fn split_target<'a>(method: &str, t: &'a str) -> Result<(&'a str, &'a str), HttpError> {
    let bad = HttpError::bad("malformed request target");
    if t.is_empty() || t.bytes().any(|b| !(0x21..=0x7E).contains(&b) || b == b'#') {
        return Err(bad);
    }
    if t == "*" {
        return if method == "OPTIONS" {
            Ok(("*", ""))
        } else {
            Err(bad)
        };
    }
    let origin_form = if t.starts_with('/') {
        t
    } else {
        strip_scheme_and_authority(t).ok_or(bad)?
    };
    let (path, query) = origin_form.split_once('?').unwrap_or((origin_form, ""));
    Ok((if path.is_empty() { "/" } else { path }, query))
}

/// `http://authority/rest` → `/rest` (empty or starting with `?` when the
/// target has no path); `None` for any other form.
fn strip_scheme_and_authority(t: &str) -> Option<&str> {
    let scheme_end = t.find("://")?;
    let scheme = &t[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &t[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority_end == 0 {
        return None;
    }
    Some(&rest[authority_end..])
}

/// Refuses bodies and checks `Host` (RFC 9112 §3.2, §6).
fn check_framing(version_minor: u8, headers: &Headers<'_>) -> Result<(), HttpError> {
    match headers.values("host").count() {
        0 if version_minor == 1 => return Err(HttpError::bad("missing Host header")),
        0 | 1 => {}
        _ => return Err(HttpError::bad("more than one Host header")),
    }
    if headers.values("transfer-encoding").next().is_some() {
        return Err(HttpError::new(413, "request bodies are not accepted"));
    }
    for len in headers.values("content-length") {
        if len.is_empty() || !len.iter().all(u8::is_ascii_digit) {
            return Err(HttpError::bad("malformed Content-Length"));
        }
        if len.iter().any(|&d| d != b'0') {
            return Err(HttpError::new(413, "request bodies are not accepted"));
        }
    }
    Ok(())
}

/// The headers of a head, in order; names are tokens, values trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Headers<'a>(Vec<(&'a str, &'a [u8])>);

impl<'a> Headers<'a> {
    /// Values of every header named `name` (ASCII case-insensitive), in order.
    pub(crate) fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }

    /// The non-empty, trimmed elements of the comma lists of every header named `name`.
    pub(crate) fn tokens<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
    }
}

/// A response head read by a client (the WebSocket handshake's 101).
pub(crate) struct ResponseHead<'a> {
    /// The status line, without CRLF.
    pub(crate) status_line: &'a [u8],
    /// The three-digit status code.
    pub(crate) status: u16,
    /// The header lines, checked as in requests.
    pub(crate) headers: Headers<'a>,
    /// Bytes of the buffer through the blank line.
    pub(crate) consumed: usize,
}

/// Parses a response head (`HTTP/1.x SSS reason` then headers) from the start
/// of `buf`: `None` while incomplete, the same line rules as [`parse`], and a
/// head not complete within `max` bytes is an error (status 431).
pub(crate) fn parse_response(
    buf: &[u8],
    max: usize,
) -> Result<Option<ResponseHead<'_>>, HttpError> {
    let (lines, line_error) = crlf_lines(&buf[..buf.len().min(max)]);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let status = resp
        .parse(lines)
        .map_err(|e| refusal(e, "malformed status line"))?;
    let (Status::Complete(consumed), Some(code)) = (status, resp.code) else {
        return line_error.map_or_else(|| incomplete(buf, max).map(|_| None), Err);
    };
    Ok(Some(ResponseHead {
        status_line: lines.split(|&b| b == b'\r').next().unwrap_or_default(),
        status: code,
        headers: Headers(resp.headers.iter().map(|h| (h.name, h.value)).collect()),
        consumed,
    }))
}

/// A complete response that closes the connection: status line, optional
/// `Content-Type` (left out when `content_type` is empty), `Content-Length`,
/// `Connection: close`, `Cache-Control: no-store`, then each of `extra`
/// ("Name: value", no CRLF), the blank line and `body`.
///
/// For a HEAD request pass `head: true`: the body is left out but its
/// `Content-Length` kept. Not for 1xx, 204 or 304, which carry no
/// `Content-Length`. `content_type` and `extra` are trusted (no CR or LF;
/// checked by `debug_assert!` only).
pub fn response(
    status: u16,
    content_type: &str,
    extra: &[&str],
    body: &[u8],
    head: bool,
) -> Vec<u8> {
    debug_assert!((200..600).contains(&status) && status != 204 && status != 304);
    debug_assert!(!content_type.contains(['\r', '\n']));
    debug_assert!(extra.iter().all(|h| !h.contains(['\r', '\n'])));
    let mut out =
        Vec::with_capacity(128 + extra.iter().map(|h| h.len() + 2).sum::<usize>() + body.len());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    if !content_type.is_empty() {
        let _ = write!(out, "Content-Type: {content_type}\r\n");
    }
    let _ = write!(
        out,
        "Content-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        body.len()
    );
    for h in extra {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(body);
    }
    out
}

/// The `text/plain` response for `e`: its status, and its reason and a newline as the body.
pub fn error_response(e: &HttpError) -> Vec<u8> {
    let body = format!("{}\n", e.reason);
    response(
        e.status,
        "text/plain; charset=utf-8",
        &[],
        body.as_bytes(),
        false,
    )
}

/// The standard reason phrase (RFC 9110 §15) for the statuses we use: 101,
/// 200, 400, 403, 404, 405, 408, 413, 426, 431, 500, 503 and 505. Any other
/// status gets an empty phrase, which the status line allows.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    const CURL: &[u8] = b"GET /metrics?x=1&y HTTP/1.1\r\nHost: localhost:7401\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse(buf, MAX) {
            Ok(Parsed::Complete { request, consumed }) => (request, consumed),
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    fn status(buf: &[u8]) -> u16 {
        match parse(buf, MAX) {
            Err(e) => e.status,
            Ok(p) => panic!("expected an error, got {p:?}"),
        }
    }

    /// A well-formed head with these extra header lines.
    fn with_headers(lines: &[&str]) -> Vec<u8> {
        let mut v = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for l in lines {
            v.extend_from_slice(l.as_bytes());
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"\r\n");
        v
    }

    #[test]
    fn parses_a_typical_request() {
        let mut buf = CURL.to_vec();
        buf.extend_from_slice(b"trailing bytes");
        let (r, consumed) = complete(&buf);
        assert_eq!(consumed, CURL.len());
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/metrics");
        assert_eq!(r.query, "x=1&y");
        assert_eq!(r.version_minor, 1);
        assert_eq!(r.header("host"), Some(&b"localhost:7401"[..]));
        assert_eq!(r.header("USER-AGENT"), Some(&b"curl/8.5.0"[..]));
        assert_eq!(r.header("Accept-Encoding"), None);
        assert_eq!(r.headers().count(), 3);
        assert!(!r.is_head());
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let heads: [&[u8]; 3] = [
            CURL,
            b"HEAD / HTTP/1.0\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ];
        for head in heads {
            for n in 0..head.len() {
                assert_eq!(parse(&head[..n], MAX), Ok(Parsed::Incomplete), "prefix {n}");
            }
            assert!(matches!(
                parse(head, head.len()),
                Ok(Parsed::Complete { consumed, .. }) if consumed == head.len()
            ));
        }
    }

    #[test]
    fn size_limit_is_431() {
        // A head that would complete one byte past the limit.
        assert_eq!(parse(CURL, CURL.len() - 1).unwrap_err().status, 431);
        // An endless header line is refused once the limit is reached.
        let mut buf = b"GET / HTTP/1.1\r\nX: ".to_vec();
        buf.resize(100, b'a');
        assert_eq!(parse(&buf, 101), Ok(Parsed::Incomplete));
        assert_eq!(parse(&buf, 100).unwrap_err().status, 431);
    }

    #[test]
    fn header_count_limit_is_431() {
        let lines: Vec<String> = (1..MAX_HEADERS).map(|i| format!("X-{i}: v")).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        // Host plus 63 others is the limit.
        assert_eq!(
            complete(&with_headers(&refs)).0.headers().count(),
            MAX_HEADERS
        );
        let mut more = refs.clone();
        more.push("X-last: v");
        assert_eq!(status(&with_headers(&more)), 431);
    }

    #[test]
    fn malformed_request_lines_are_400() {
        for bad in [
            &b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
            b"GET /\r\nHost: h\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.10\r\nHost: h\r\n\r\n",
            b"GET / http/1.1\r\nHost: h\r\n\r\n",
            b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            assert_eq!(status(bad), 400, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn malformed_lines_are_refused_before_the_head_ends() {
        assert_eq!(status(b"GET / HTTP/1.1\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\rb\r\n"), 400);
        assert_eq!(
            status(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nno colon\r\n"), 400);
    }

    #[test]
    fn other_versions_are_505() {
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(status(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
        let (r, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(r.version_minor, 0);
    }

    #[test]
    fn malformed_headers_are_400() {
        for bad in [
            " X: folded",
            "\tX: folded",
            "X : space before colon",
            ": no name",
            "X\x01: v",
            "X: a\x00b",
            "X: a\x7fb",
            "Content-Length: 1x",
            "Content-Length: -1",
            "Content-Length:",
            "Host: second",
        ] {
            assert_eq!(status(&with_headers(&[bad])), 400, "{bad:?}");
        }
        // obs-fold right after the request line too.
        assert_eq!(status(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400);
    }

    #[test]
    fn host_is_required_on_http_1_1_only() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert!(matches!(
            parse(b"GET / HTTP/1.0\r\n\r\n", MAX),
            Ok(Parsed::Complete { .. })
        ));
    }

    #[test]
    fn bodies_are_413() {
        assert_eq!(status(&with_headers(&["Content-Length: 5"])), 413);
        assert_eq!(
            status(&with_headers(&["content-length: 99999999999999999999999"])),
            413
        );
        assert_eq!(status(&with_headers(&["Transfer-Encoding: chunked"])), 413);
        assert!(matches!(
            parse(&with_headers(&["Content-Length: 000"]), MAX),
            Ok(Parsed::Complete { .. })
        ));
    }

    #[test]
    fn values_are_trimmed_and_may_be_empty() {
        let buf = with_headers(&[
            "X-A: \t spaced out \t",
            "X-B:",
            "X-C:tight",
            "X-D: caf\u{e9}",
        ]);
        let (r, _) = complete(&buf);
        assert_eq!(r.header("x-a"), Some(&b"spaced out"[..]));
        assert_eq!(r.header("x-b"), Some(&b""[..]));
        assert_eq!(r.header("x-c"), Some(&b"tight"[..]));
        assert_eq!(r.header("x-d"), Some("caf\u{e9}".as_bytes()));
    }

    #[test]
    fn repeated_and_list_headers() {
        let buf = with_headers(&[
            "Connection: keep-alive, Upgrade",
            "X: first",
            "connection: ,, close ,",
            "X: second",
        ]);
        let (r, _) = complete(&buf);
        assert_eq!(r.header("x"), Some(&b"first"[..]));
        assert_eq!(
            r.header_values("X").collect::<Vec<_>>(),
            [&b"first"[..], b"second"]
        );
        assert_eq!(
            r.header_tokens("Connection").collect::<Vec<_>>(),
            [&b"keep-alive"[..], b"Upgrade", b"close"]
        );
        assert_eq!(r.header_tokens("absent").count(), 0);
    }

    #[test]
    fn target_forms() {
        let (r, _) = complete(b"GET http://example.com:7401/ws?a=b HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.path, r.query), ("/ws", "a=b"));
        let (r, _) = complete(b"GET HTTPS://example.com HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.path, r.query), ("/", ""));
        let (r, _) = complete(b"GET http://example.com?q HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.path, r.query), ("/", "q"));
        let (r, _) = complete(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.method, r.path), ("OPTIONS", "*"));
        let (r, _) = complete(b"GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.path, r.query), ("/a", "b?c"));
        let (r, _) = complete(b"HEAD /? HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.path, r.query), ("/", ""));
        assert!(r.is_head());
    }

    #[test]
    fn responses() {
        let r = response(200, "text/plain", &["X-A: 1", "X-B: 2"], b"hello", false);
        assert_eq!(
            r,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\nCache-Control: no-store\r\nX-A: 1\r\nX-B: 2\r\n\r\nhello"
        );
        let head = response(200, "text/plain", &["X-A: 1", "X-B: 2"], b"hello", true);
        assert_eq!(head, &r[..r.len() - 5]);
        assert_eq!(
            response(404, "", &[], b"", false),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
        );
        let e = error_response(&HttpError::new(431, "request head is too large"));
        assert!(e.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(e.ends_with(b"\r\n\r\nrequest head is too large\n"));
    }

    #[test]
    fn every_status_we_use_has_a_phrase() {
        for s in [
            101, 200, 400, 403, 404, 405, 408, 413, 426, 431, 500, 503, 505,
        ] {
            assert!(!reason_phrase(s).is_empty(), "{s}");
        }
        assert_eq!(reason_phrase(299), "");
    }

    #[test]
    fn response_heads() {
        let buf = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x82\x00";
        let head = parse_response(buf, MAX).unwrap().unwrap();
        assert_eq!(head.status, 101);
        assert_eq!(head.status_line, b"HTTP/1.1 101 Switching Protocols");
        assert_eq!(head.consumed, buf.len() - 2);
        assert_eq!(
            head.headers.values("upgrade").next(),
            Some(&b"websocket"[..])
        );
        for n in 0..buf.len() - 2 {
            assert!(
                parse_response(&buf[..n], MAX).unwrap().is_none(),
                "prefix {n}"
            );
        }
        assert_eq!(
            parse_response(b"HTTP/1.1 200\r\n\r\n", MAX)
                .unwrap()
                .unwrap()
                .status,
            200
        );
        for bad in [
            &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
            b"HTTP/2 101 x\r\n\r\n",
            b"HTTP/1.1 1x1 x\r\n\r\n",
        ] {
            assert!(parse_response(bad, MAX).is_err());
        }
        assert_eq!(
            parse_response(&[b'a'; 16], 16).err().map(|e| e.status),
            Some(431)
        );
    }
}

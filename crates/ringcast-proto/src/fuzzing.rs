//! The checks the fuzz targets run (`fuzz/fuzz_targets/*.rs`), here so that
//! `tests/fuzz_corpus.rs` replays every committed corpus input through
//! exactly the same code on the stable toolchain.
//!
//! Each check takes arbitrary bytes, must never panic, and asserts the
//! codec's promises on them, not just "no crash":
//!
//! - [`native`]: client and server frames decode, an incomplete answer asks
//!   for more than it was given, a frame's strict prefixes are incomplete,
//!   and a decoded frame encodes back to exactly the bytes it came from.
//! - [`ws_frame`]: the same bytes fed at once and in arbitrary pieces give
//!   the same events and the same error; messages stay within the limit.
//! - [`ws_handshake`]: a parsed request is accepted or refused with one of the
//!   documented statuses; an accepted one's 101 response passes the client's
//!   own check; arbitrary bytes as a handshake response never panic.
//! - [`http`]: a parsed head is well formed and each of its strict prefixes is
//!   incomplete; a refusal has one of the documented statuses.
//! - [`resp`]: the resuming [`crate::resp::Parser`] fed growing pieces
//!   answers exactly what a fresh parse of the whole buffer answers; the
//!   reply decoder and the message-head reader stay within their input.
//! - [`glob`]: [`crate::glob::matches`] agrees with [`glob_reference`], a
//!   direct recursive transcription of Redis 7's `stringmatchlen`.
//!
//! The first byte of an input is usually a parameter (limits, role, how to
//! cut the rest into pieces); the rest is the wire bytes.
#![doc(hidden)]

use crate::native::{self, Decoded};
use crate::resp::{self, Limits};
use crate::ws::frame::{Decoder, Event, Role, MAX_CLOSE_REASON};
use crate::ws::handshake;
use crate::{glob as globm, http as httpm};

/// A small deterministic generator of piece lengths, seeded from the input.
struct Pieces(u32);

impl Pieces {
    fn new(seed: u8) -> Pieces {
        Pieces(u32::from(seed).wrapping_mul(2_654_435_761) | 1)
    }

    /// The next piece length, 1 to 16 mostly, sometimes long.
    fn next(&mut self) -> usize {
        // xorshift32
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        if x % 8 == 0 {
            (x >> 8) as usize % 512 + 1
        } else {
            (x >> 8) as usize % 16 + 1
        }
    }
}

/// Native protocol decoders (`decode_client`, `decode_server`), both
/// directions. Byte 0: bit 0 picks the direction, bit 1 a small `max_frame`
/// (64) instead of the default.
pub fn native(data: &[u8]) {
    let Some((&cfg, mut buf)) = data.split_first() else {
        return;
    };
    let max_frame = if cfg & 2 != 0 {
        64
    } else {
        native::DEFAULT_MAX_FRAME
    };
    let client = cfg & 1 == 0;
    // Every frame in the buffer, one after the other, until an error or the end.
    while !buf.is_empty() {
        let consumed = if client {
            match native::decode_client(buf, max_frame) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    assert!((native::HEADER_LEN..=buf.len()).contains(&consumed));
                    assert!(consumed - native::LEN_PREFIX <= max_frame as usize);
                    let mut again = Vec::new();
                    frame.encode(&mut again);
                    assert_eq!(again, &buf[..consumed], "re-encoding {frame:?}");
                    assert_eq!(frame.encoded_len(), consumed);
                    consumed
                }
                Ok(Decoded::Incomplete { need }) => {
                    assert!(need > buf.len(), "need {need} of {}", buf.len());
                    return;
                }
                Err(e) => {
                    assert!(!e.reason.is_empty());
                    return;
                }
            }
        } else {
            match native::decode_server(buf, max_frame) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    assert!((native::HEADER_LEN..=buf.len()).contains(&consumed));
                    let mut again = Vec::new();
                    frame.encode(&mut again);
                    assert_eq!(again, &buf[..consumed], "re-encoding {frame:?}");
                    assert_eq!(frame.encoded_len(), consumed);
                    if let native::ServerFrame::Data {
                        seq,
                        ts_ns,
                        topic,
                        payload,
                    } = frame
                    {
                        let view = native::DataView::new(&buf[..consumed]).expect("a DATA frame");
                        assert_eq!(
                            (view.seq(), view.ts_ns(), view.topic(), view.payload()),
                            (seq, ts_ns, topic.as_bytes(), payload)
                        );
                        let mut enc = vec![0; native::data_frame_len(topic.len(), payload.len())];
                        let n =
                            native::encode_data(&mut enc, seq, ts_ns, topic.as_bytes(), payload);
                        assert_eq!(&enc[..n], &buf[..consumed]);
                    }
                    consumed
                }
                Ok(Decoded::Incomplete { need }) => {
                    assert!(need > buf.len(), "need {need} of {}", buf.len());
                    return;
                }
                Err(e) => {
                    assert!(!e.reason.is_empty());
                    return;
                }
            }
        };
        // Incomplete is not invalid: the frame's strict prefixes (the ones
        // where a check decides, and a few others) ask for more bytes.
        for cut in [0, 1, 3, 4, 5, 7, 8, 9, 23, 24, consumed / 2, consumed - 1] {
            if cut >= consumed {
                continue;
            }
            let prefix = &buf[..cut];
            let need = if client {
                match native::decode_client(prefix, max_frame) {
                    Ok(Decoded::Incomplete { need }) => need,
                    other => panic!("prefix {cut} of a {consumed}-byte frame: {other:?}"),
                }
            } else {
                match native::decode_server(prefix, max_frame) {
                    Ok(Decoded::Incomplete { need }) => need,
                    other => panic!("prefix {cut} of a {consumed}-byte frame: {other:?}"),
                }
            };
            assert!(
                need > cut && need <= consumed,
                "need {need} at {cut} of {consumed}"
            );
        }
        buf = &buf[consumed..];
    }
}

/// An event the decoder delivered, owned, so runs can be compared.
#[derive(Debug, PartialEq, Eq)]
enum WsEvent {
    Message(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl WsEvent {
    fn of(e: Event<'_>) -> WsEvent {
        match e {
            Event::Message(m) => WsEvent::Message(m.to_vec()),
            Event::Ping(p) => WsEvent::Ping(p.to_vec()),
            Event::Pong(p) => WsEvent::Pong(p.to_vec()),
            Event::Close { code, reason } => WsEvent::Close(code, reason.to_owned()),
        }
    }
}

/// Feeds `input` to a fresh decoder in pieces whose lengths `cut` gives
/// (`None`: all at once); the events, then the error if one ended the run.
fn ws_run(
    role: Role,
    max: usize,
    input: &[u8],
    mut cut: Option<Pieces>,
) -> (Vec<WsEvent>, Option<crate::ws::frame::CloseError>) {
    let mut d = Decoder::new(role, max);
    let mut events = Vec::new();
    let mut start = 0;
    while start < input.len() {
        let end = match &mut cut {
            None => input.len(),
            Some(p) => (start + p.next()).min(input.len()),
        };
        let mut piece = &input[start..end];
        start = end;
        loop {
            let before = piece.len();
            match d.decode(piece) {
                Ok((used, event)) => {
                    assert!(used <= before);
                    piece = &piece[used..];
                    match event {
                        Some(e) => {
                            if let Event::Message(m) = e {
                                assert!(m.len() <= max, "message of {} over {max}", m.len());
                            }
                            if let Event::Close { code, reason } = e {
                                assert!(reason.len() <= MAX_CLOSE_REASON);
                                assert!(code.is_some() || reason.is_empty());
                            }
                            if let Event::Ping(p) | Event::Pong(p) = e {
                                assert!(p.len() <= 125);
                            }
                            events.push(WsEvent::of(e));
                        }
                        None => {
                            assert_eq!(used, before, "no event but input left");
                            break;
                        }
                    }
                    assert!(d.buffered() <= max);
                }
                Err(e) => {
                    // An error is final.
                    assert_eq!(d.decode(b"\x82\x00").unwrap_err(), e);
                    return (events, Some(e));
                }
            }
        }
    }
    (events, None)
}

/// WebSocket frame decoder. Byte 0: bit 0 picks the role (server reads
/// masked client frames), bits 1-2 the message limit (16 B to 64 KiB), and
/// the whole byte seeds the piece lengths.
pub fn ws_frame(data: &[u8]) {
    let Some((&cfg, input)) = data.split_first() else {
        return;
    };
    let role = if cfg & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let max = [16, 125, 1024, 65536][usize::from(cfg >> 1 & 3)];
    let whole = ws_run(role, max, input, None);
    let pieces = ws_run(role, max, input, Some(Pieces::new(cfg)));
    assert_eq!(whole, pieces, "the same bytes in pieces decode differently");
}

/// WebSocket opening handshake, server side (HTTP head, then
/// `check_upgrade`) and client side (`check_response`). Byte 0: bit 0 sets
/// an `Origin` allow-list.
pub fn ws_handshake(data: &[u8]) {
    let Some((&cfg, input)) = data.split_first() else {
        return;
    };
    let origins: Vec<String> = if cfg & 1 != 0 {
        vec!["https://example.com".into()]
    } else {
        Vec::new()
    };
    if let Ok(httpm::Parsed::Complete { request, .. }) = httpm::parse(input, 8192) {
        match handshake::check_upgrade(&request, &origins) {
            Ok(up) => {
                assert_eq!(up.accept.len(), 28);
                let key = request
                    .header("sec-websocket-key")
                    .expect("an accepted upgrade has a key");
                let key = std::str::from_utf8(key).expect("an accepted key is base64");
                let resp = handshake::accept_response(&up);
                // Our 101 satisfies our own client, frames may follow it.
                assert_eq!(handshake::check_response(&resp, key), Ok(Some(resp.len())));
                let mut more = resp.clone();
                more.extend_from_slice(b"\x82\x00");
                assert_eq!(handshake::check_response(&more, key), Ok(Some(resp.len())));
            }
            Err(r) => {
                assert!([400, 403, 404, 426].contains(&r.status), "{r:?}");
                assert!(!r.reason.contains('\n'));
                let resp = handshake::reject_response(&r);
                assert!(handshake::check_response(&resp, "dGhlIHNhbXBsZSBub25jZQ==").is_err());
            }
        }
    }
    // The same bytes read by a client as the server's answer.
    match handshake::check_response(input, "dGhlIHNhbXBsZSBub25jZQ==") {
        Ok(Some(n)) => assert!(n <= input.len()),
        Ok(None) => assert!(input.len() <= handshake::MAX_RESPONSE_HEAD),
        Err(_) => {}
    }
}

/// HTTP request heads. Byte 0 picks the size limit (`max`).
pub fn http(data: &[u8]) {
    let Some((&cfg, input)) = data.split_first() else {
        return;
    };
    let max = [64, 512, 8192, 16][usize::from(cfg & 3)];
    match httpm::parse(input, max) {
        Ok(httpm::Parsed::Complete { request, consumed }) => {
            assert!(consumed <= input.len() && consumed <= max);
            assert!(input[..consumed].ends_with(b"\r\n\r\n"));
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            };
            assert!(token(request.method), "method {:?}", request.method);
            assert!(request.path.starts_with('/') || request.path == "*");
            assert!(request
                .path
                .bytes()
                .chain(request.query.bytes())
                .all(|b| b.is_ascii_graphic()));
            assert!(request.version_minor <= 1);
            for (name, value) in request.headers() {
                assert!(token(name), "header name {name:?}");
                assert!(value
                    .iter()
                    .all(|&b| b == b'\t' || !(b < 0x20 || b == 0x7f)));
                assert!(value.first().map_or(true, |b| !b" \t".contains(b)));
                assert!(value.last().map_or(true, |b| !b" \t".contains(b)));
            }
            // Every strict prefix of a valid head is incomplete.
            for cut in [0, 1, consumed / 2, consumed - 2, consumed - 1] {
                if cut < consumed {
                    assert_eq!(
                        httpm::parse(&input[..cut], max),
                        Ok(httpm::Parsed::Incomplete),
                        "prefix {cut} of a {consumed}-byte head"
                    );
                }
            }
        }
        Ok(httpm::Parsed::Incomplete) => assert!(input.len() < max + 4),
        Err(e) => {
            assert!([400, 413, 431, 505].contains(&e.status), "{e:?}");
            let resp = httpm::error_response(&e);
            assert!(resp.starts_with(b"HTTP/1.1 "));
        }
    }
}

/// A parse answer, owned, so runs can be compared.
#[derive(Debug, PartialEq, Eq)]
enum RespAnswer {
    Command(Vec<Vec<u8>>, usize),
    Skip(usize),
    Incomplete(usize),
    Error(resp::RespError),
}

fn resp_answer(r: Result<resp::Parsed<'_>, resp::RespError>) -> RespAnswer {
    match r {
        Ok(resp::Parsed::Command { args, consumed }) => {
            RespAnswer::Command(args.iter().map(|a| a.into_owned()).collect(), consumed)
        }
        Ok(resp::Parsed::Skip { consumed }) => RespAnswer::Skip(consumed),
        Ok(resp::Parsed::Incomplete { need }) => RespAnswer::Incomplete(need),
        Err(e) => RespAnswer::Error(e),
    }
}

/// RESP: the request parser (as the Redis front runs it, resuming on a
/// growing buffer) against a fresh parse of the whole buffer; the reply
/// decoder and `decode_message_head` (as the client runs them). Byte 0:
/// bits 0-1 the limits, the whole byte seeds the piece lengths.
pub fn resp(data: &[u8]) {
    let Some((&cfg, input)) = data.split_first() else {
        return;
    };
    let limits = match cfg & 3 {
        0 => Limits::REDIS,
        1 => Limits::REDIS.with_unauthenticated(true),
        2 => Limits::REDIS.with_max_bulk_len(16),
        _ => Limits {
            max_bulk_len: 64,
            max_multibulk_len: 4,
            unauthenticated: false,
        },
    };
    // Requests, one after the other, as the front consumes them.
    let mut rest = input;
    let mut pieces = Pieces::new(cfg);
    let mut parser = resp::Parser::new();
    let mut requests = 0;
    while !rest.is_empty() && requests < 64 {
        requests += 1;
        let whole = resp_answer(resp::parse(rest, &limits));
        // The front's way: the buffer grows piece by piece; each call resumes.
        let mut have = 0;
        let resumed = loop {
            have = (have + pieces.next()).min(rest.len());
            let answer = resp_answer(parser.parse(&rest[..have], &limits));
            match answer {
                RespAnswer::Incomplete(need) => {
                    assert!(need > have, "need {need} with {have}");
                    if have == rest.len() {
                        break answer;
                    }
                }
                _ => break answer,
            }
        };
        // The last piece may end inside a request the whole buffer completes
        // (never: the whole buffer is the last piece), or complete it.
        assert_eq!(whole, resumed, "resuming parser and fresh parse disagree");
        match whole {
            RespAnswer::Command(_, consumed) | RespAnswer::Skip(consumed) => {
                assert!(consumed > 0 && consumed <= rest.len());
                rest = &rest[consumed..];
            }
            RespAnswer::Incomplete(need) => {
                assert!(need > rest.len());
                break;
            }
            RespAnswer::Error(e) => {
                let _ = e.reply();
                break;
            }
        }
    }
    // The client side: replies and pushes.
    let max_bulk = if cfg & 4 != 0 { 16 } else { 1 << 20 };
    let mut rest = input;
    for _ in 0..64 {
        if let Some(h) = resp::decode_message_head(rest, max_bulk) {
            assert!(h.payload_at <= h.total);
        }
        match resp::decode_reply(rest, max_bulk) {
            Ok(Decoded::Frame { frame, consumed }) => {
                assert!(consumed > 0 && consumed <= rest.len());
                walk_reply(frame, 0);
                rest = &rest[consumed..];
            }
            Ok(Decoded::Incomplete { need }) => {
                assert!(need > rest.len());
                break;
            }
            Err(_) => break,
        }
    }
}

/// Visits every element of a decoded reply (the iterators re-read the bytes).
fn walk_reply(r: resp::ReplyRef<'_>, depth: usize) {
    assert!(depth <= resp::MAX_REPLY_DEPTH + 1);
    let _ = r.as_reply();
    let _ = r.as_pubsub();
    if let Some(agg) = r.aggregate() {
        let mut n = 0;
        for e in agg.iter() {
            walk_reply(e, depth + 1);
            n += 1;
        }
        assert_eq!(n, agg.len());
    }
}

/// Redis's glob matcher against [`glob_reference`]. Byte 0 is the
/// pattern's length (taken from the rest); the remainder is the subject.
pub fn glob(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (pattern, subject) = rest.split_at(n);
    let ours = globm::matches(pattern, subject);
    let redis = glob_reference(pattern, subject);
    assert_eq!(
        ours,
        redis,
        "pattern {:?} subject {:?}",
        pattern.escape_ascii().to_string(),
        subject.escape_ascii().to_string()
    );
}

/// Redis 7's `stringmatchlen` (src/util.c, case-sensitive), transcribed
/// line for line: recursive, with its nesting limit and its early exit
/// (`skipLongerMatches`). Bytes past the pattern's end read as the NUL that
/// ends Redis's strings; ranges compare bytes as C `char`s of this target.
pub fn glob_reference(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    stringmatchlen(pattern, 0, string, 0, &mut skip_longer, 0)
}

fn stringmatchlen(
    pat: &[u8],
    mut p: usize,
    s: &[u8],
    mut i: usize,
    skip_longer: &mut bool,
    nesting: usize,
) -> bool {
    // `pattern[k]` in C: NUL past the end.
    let at = |k: usize| pat.get(k).copied().unwrap_or(0);
    let cv = |b: u8| -> i16 {
        if std::ffi::c_char::MIN != 0 {
            i16::from(b as i8)
        } else {
            i16::from(b)
        }
    };
    if nesting > 1000 {
        return false;
    }
    let mut plen = pat.len() - p;
    let mut slen = s.len() - i;
    while plen > 0 && slen > 0 {
        match at(p) {
            b'*' => {
                while plen > 0 && at(p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if stringmatchlen(pat, p + 1, s, i, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    i += 1;
                    slen -= 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                i += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = at(p) == b'^';
                if not {
                    p += 1;
                    plen -= 1;
                }
                let mut matched = false;
                loop {
                    if at(p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if at(p) == s[i] {
                            matched = true;
                        }
                    } else if at(p) == b']' {
                        break;
                    } else if plen == 0 {
                        p -= 1;
                        plen += 1;
                        break;
                    } else if plen >= 3 && at(p + 1) == b'-' {
                        let (mut start, mut end) = (cv(at(p)), cv(at(p + 2)));
                        let c = cv(s[i]);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        plen -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if at(p) == s[i] {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                i += 1;
                slen -= 1;
            }
            b'\\' => {
                if plen >= 2 {
                    p += 1;
                    plen -= 1;
                }
                if at(p) != s[i] {
                    return false;
                }
                i += 1;
                slen -= 1;
            }
            c => {
                if c != s[i] {
                    return false;
                }
                i += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen -= 1;
        if slen == 0 {
            while at(p) == b'*' {
                p += 1;
                plen = plen.wrapping_sub(1);
            }
            break;
        }
    }
    plen == 0 && slen == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_matcher_has_redis_odd_cases() {
        let m = glob_reference;
        assert!(m(b"*", b"abc"));
        assert!(!m(b"*", b""));
        assert!(m(b"", b""));
        assert!(m(b"a?c", b"abc"));
        assert!(m(b"[^]", b"x"));
        assert!(!m(b"[]", b"]"));
        assert!(m(b"[ab", b"b"));
        assert!(m(b"[z-a]", b"q"));
        assert!(m(b"a\\", b"a\\"));
        assert!(m(b"h*o", b"hello"));
        assert!(!m(b"h*x", b"hello"));
    }
}

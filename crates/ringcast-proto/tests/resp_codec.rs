//! The RESP codec driven in memory: multibulk and inline round trips,
//! prefixes, arbitrary input, the resumable parser against the one-shot
//! one, the exact reply of every protocol error, and the encoders' lengths.

use proptest::prelude::*;
use ringcast_proto::resp::{
    encode_message, encode_message_to_slice, message_len, parse, set_push_protocol, Args, Limits,
    Parsed, Parser, Protocol, PubSubPush, Reply, RespError, RespErrorCode, PROTO_INLINE_MAX_SIZE,
};

const L: Limits = Limits::REDIS;

/// `args` as a multibulk request.
fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// `arg` double-quoted as Redis's `sdscatrepr` writes it (redis-cli's form).
fn repr(arg: &[u8]) -> Vec<u8> {
    let mut v = vec![b'"'];
    for &b in arg {
        match b {
            b'\\' => v.extend_from_slice(b"\\\\"),
            b'"' => v.extend_from_slice(b"\\\""),
            b'\n' => v.extend_from_slice(b"\\n"),
            b'\r' => v.extend_from_slice(b"\\r"),
            b'\t' => v.extend_from_slice(b"\\t"),
            0x07 => v.extend_from_slice(b"\\a"),
            0x08 => v.extend_from_slice(b"\\b"),
            0x20..=0x7e => v.push(b),
            _ => v.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    v.push(b'"');
    v
}

fn owned(args: &Args<'_>) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.into_owned()).collect()
}

fn command(buf: &[u8], limits: &Limits) -> (Vec<Vec<u8>>, usize) {
    match parse(buf, limits) {
        Ok(Parsed::Command { args, consumed }) => {
            assert_eq!(args.len(), args.iter().count());
            (owned(&args), consumed)
        }
        other => panic!("{}: expected a command, got {other:?}", buf.escape_ascii()),
    }
}

fn error(buf: &[u8], limits: &Limits) -> RespError {
    match parse(buf, limits) {
        Err(e) => e,
        Ok(p) => panic!("{}: expected an error, got {p:?}", buf.escape_ascii()),
    }
}

/// The reply Redis sends for `buf`'s protocol error.
fn reply(buf: &[u8], limits: &Limits) -> Vec<u8> {
    let e = error(buf, limits);
    assert!(e.closes_connection());
    let mut v = Vec::new();
    e.encode_reply(&mut v);
    assert_eq!(v, e.reply().as_bytes());
    v
}

/// Parses `buf` with a [`Parser`] fed its prefixes of lengths `cuts` then
/// all of it; every prefix answer must equal the one-shot parser's.
fn parse_in_pieces<'a>(
    buf: &'a [u8],
    cuts: &[usize],
    limits: &Limits,
) -> Result<Parsed<'a>, RespError> {
    let mut p = Parser::new();
    for &cut in cuts {
        let cut = cut.min(buf.len());
        let piece = p.parse(&buf[..cut], limits);
        assert_eq!(piece, parse(&buf[..cut], limits), "prefix of {cut} bytes");
        if !matches!(piece, Ok(Parsed::Incomplete { .. })) {
            return piece;
        }
    }
    p.parse(buf, limits)
}

#[test]
fn every_protocol_error_is_redis_reply() {
    let unauth = L.with_unauthenticated(true);
    let big = |prefix: &[u8]| {
        let mut v = prefix.to_vec();
        v.resize(prefix.len() + PROTO_INLINE_MAX_SIZE + 1, b'7');
        v
    };
    let cases: &[(Vec<u8>, &Limits, &[u8])] = &[
        (
            b"*x\r\n".to_vec(),
            &L,
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*2147483648\r\n".to_vec(),
            &L,
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*11\r\n".to_vec(),
            &unauth,
            b"-ERR Protocol error: unauthenticated multibulk length\r\n",
        ),
        (
            big(b"*"),
            &L,
            b"-ERR Protocol error: too big mbulk count string\r\n",
        ),
        (
            b"*1\r\n$-1\r\n".to_vec(),
            &L,
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$1048577\r\n".to_vec(),
            &L.with_max_bulk_len(1 << 20),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$16385\r\n".to_vec(),
            &unauth,
            b"-ERR Protocol error: unauthenticated bulk length\r\n",
        ),
        (
            big(b"*1\r\n$"),
            &L,
            b"-ERR Protocol error: too big bulk count string\r\n",
        ),
        (
            b"*1\r\nPING\r\n".to_vec(),
            &L,
            b"-ERR Protocol error: expected '$', got 'P'\r\n",
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n*1\r\n".to_vec(),
            &L,
            b"-ERR Protocol error: expected '$', got '*'\r\n",
        ),
        (
            big(b"PING "),
            &L,
            b"-ERR Protocol error: too big inline request\r\n",
        ),
        (
            b"ECHO \"abc\r\n".to_vec(),
            &L,
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"ECHO 'abc'def\r\n".to_vec(),
            &L,
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (buf, limits, want) in cases {
        assert_eq!(
            reply(buf, limits),
            *want,
            "{}",
            buf[..buf.len().min(40)].escape_ascii()
        );
    }
}

#[test]
fn error_codes_and_reasons() {
    let e = error(b"*1\r\n:1\r\n", &L);
    assert_eq!(e.code(), RespErrorCode::ExpectedDollar);
    assert_eq!(e.got(), Some(b':'));
    assert_eq!(e.reason(), "expected $ but got something else");
    assert_eq!(e.to_string(), "Protocol error: expected '$', got ':'");
    let e = error(b"*1\r\n$x\r\n", &L);
    assert_eq!(e.code(), RespErrorCode::InvalidBulkLength);
    assert_eq!(e.got(), None);
}

#[test]
fn a_giant_bulk_is_refused_before_its_body() {
    let limits = L.with_max_bulk_len(1 << 20);
    assert_eq!(
        error(b"*2\r\n$7\r\nPUBLISH\r\n$99999999\r\n", &limits).code(),
        RespErrorCode::InvalidBulkLength
    );
    // Within the limit, the parser names the whole request's size.
    assert_eq!(
        parse(b"*2\r\n$7\r\nPUBLISH\r\n$1000\r\n", &limits),
        Ok(Parsed::Incomplete {
            need: 17 + 7 + 1000 + 2
        })
    );
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let mut buf = Vec::new();
    buf.extend_from_slice(&multibulk(&[b"SUBSCRIBE".to_vec(), b"a".to_vec()]));
    buf.extend_from_slice(b"*0\r\n\r\nPING\r\n*-1\r\n");
    buf.extend_from_slice(&multibulk(&[
        b"PUBLISH".to_vec(),
        b"a".to_vec(),
        b"x".to_vec(),
    ]));
    buf.extend_from_slice(b"*1\r\n$4\r\nPI");
    let mut at = 0;
    let mut seen = Vec::new();
    loop {
        match parse(&buf[at..], &L).unwrap() {
            Parsed::Command { args, consumed } => {
                seen.push(owned(&args));
                at += consumed;
            }
            Parsed::Skip { consumed } => {
                seen.push(Vec::new());
                at += consumed;
            }
            Parsed::Incomplete { need } => {
                assert_eq!(need, 4 + 4 + 4 + 2);
                break;
            }
        }
    }
    let want: Vec<Vec<Vec<u8>>> = vec![
        vec![b"SUBSCRIBE".to_vec(), b"a".to_vec()],
        vec![],
        vec![],
        vec![b"PING".to_vec()],
        vec![],
        vec![b"PUBLISH".to_vec(), b"a".to_vec(), b"x".to_vec()],
    ];
    assert_eq!(seen, want);
    assert_eq!(&buf[at..], b"*1\r\n$4\r\nPI");
}

#[test]
fn many_tiny_arguments_a_few_bytes_at_a_time_cost_linear_time() {
    let n = 200_000;
    let mut buf = format!("*{n}\r\n").into_bytes();
    for _ in 0..n {
        buf.extend_from_slice(b"$1\r\nx\r\n");
    }
    let mut p = Parser::new();
    let mut end = 0;
    let parsed = loop {
        end = (end + 7).min(buf.len());
        match p.parse(&buf[..end], &L).unwrap() {
            Parsed::Incomplete { need } => assert!(need > end),
            done => break done,
        }
    };
    let (args, consumed) = parsed.command().expect("a command");
    assert_eq!(consumed, buf.len());
    assert_eq!(args.len(), n);
    assert!(args.iter().all(|a| &*a == b"x"));
}

#[test]
fn an_inline_line_a_byte_at_a_time() {
    let mut buf = vec![b'a'; PROTO_INLINE_MAX_SIZE - 2];
    buf.extend_from_slice(b"\r\n");
    let mut p = Parser::new();
    for end in 0..buf.len() {
        assert!(matches!(
            p.parse(&buf[..end], &L),
            Ok(Parsed::Incomplete { .. })
        ));
    }
    let (args, consumed) = p.parse(&buf, &L).unwrap().command().unwrap();
    assert_eq!((args.len(), consumed), (1, buf.len()));
}

#[test]
fn message_push_frames() {
    let mut v = Vec::new();
    let at = encode_message(&mut v, Protocol::Resp2, b"ch", b"hi");
    assert_eq!(at, 0);
    assert_eq!(v, b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    set_push_protocol(&mut v, Protocol::Resp3);
    assert_eq!(v, b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    let mut slice = vec![0u8; message_len(2, 2)];
    assert_eq!(
        encode_message_to_slice(&mut slice, Protocol::Resp3, b"ch", b"hi"),
        slice.len()
    );
    assert_eq!(slice, v);
}

/// A strategy for arbitrary binary arguments.
fn binary_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..8)
}

/// Bytes from the RESP alphabet, to reach deep into the parser.
fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"*$\r\n0123456789-\"' \\xab\x00\x0b".to_vec()),
        0..64,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn multibulk_round_trips(args in binary_args(), tail in prop::collection::vec(any::<u8>(), 0..16)) {
        let req = multibulk(&args);
        let (got, consumed) = command(&req, &L);
        prop_assert_eq!(&got, &args);
        prop_assert_eq!(consumed, req.len());
        // Whatever follows is not the request's.
        let mut more = req.clone();
        more.extend_from_slice(&tail);
        prop_assert_eq!(command(&more, &L), (args, req.len()));
    }

    #[test]
    fn every_strict_prefix_is_incomplete(args in binary_args()) {
        let req = multibulk(&args);
        for end in 0..req.len() {
            match parse(&req[..end], &L) {
                Ok(Parsed::Incomplete { need }) => {
                    prop_assert!(need > end && need <= req.len(), "need {} at {}", need, end)
                }
                other => prop_assert!(false, "prefix of {} bytes: {:?}", end, other),
            }
        }
    }

    #[test]
    fn pieces_parse_as_the_whole(args in binary_args(), mut cuts in prop::collection::vec(0usize..400, 0..12)) {
        let req = multibulk(&args);
        cuts.sort_unstable();
        let got = parse_in_pieces(&req, &cuts, &L).unwrap();
        let (parsed, consumed) = got.command().expect("a command");
        prop_assert_eq!(owned(&parsed), args);
        prop_assert_eq!(consumed, req.len());
    }

    #[test]
    fn inline_round_trips(args in prop::collection::vec("[A-Za-z0-9_.:{}?-][A-Za-z0-9_.:{}*?-]{0,11}", 1..8), crlf in any::<bool>()) {
        let mut line = args.join(" ").into_bytes();
        line.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        let (got, consumed) = command(&line, &L);
        let want: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(consumed, line.len());
        for end in 0..line.len() {
            let incomplete = matches!(parse(&line[..end], &L), Ok(Parsed::Incomplete { .. }));
            prop_assert!(incomplete, "prefix of {} bytes", end);
        }
    }

    #[test]
    fn quoted_inline_round_trips(args in binary_args()) {
        // Binary arguments survive redis-cli's quoting.
        let mut line = Vec::new();
        for a in &args {
            line.extend_from_slice(&repr(a));
            line.push(b' ');
        }
        line.extend_from_slice(b"\r\n");
        let (got, consumed) = command(&line, &L);
        prop_assert_eq!(got, args);
        prop_assert_eq!(consumed, line.len());
    }

    #[test]
    fn garbage_never_panics(buf in prop::collection::vec(any::<u8>(), 0..256)) {
        check_any(&buf)?;
    }

    #[test]
    fn resp_shaped_garbage_never_panics(buf in resp_ish(), mut cuts in prop::collection::vec(0usize..64, 0..6)) {
        check_any(&buf)?;
        cuts.sort_unstable();
        let whole = parse(&buf, &L);
        prop_assert_eq!(parse_in_pieces(&buf, &cuts, &L), whole);
    }

    #[test]
    fn replies_know_their_length(
        text in "[ -~]{0,40}",
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        n in any::<i64>(),
        len in 0usize..100_000,
        d in any::<f64>(),
        count in 0usize..10_000,
    ) {
        let replies = [
            Reply::SimpleString(text.as_bytes()),
            Reply::Error(text.as_bytes()),
            Reply::Integer(n),
            Reply::Bulk(&bytes),
            Reply::Array(len),
            Reply::Map(len),
            Reply::Set(len),
            Reply::Push(len),
            Reply::Double(d),
            Reply::DoubleBulk(d),
            Reply::Verbatim { format: *b"txt", text: &bytes },
            Reply::NullBulk,
            Reply::Null,
        ];
        for r in replies {
            let mut v = Vec::new();
            r.encode(&mut v);
            prop_assert_eq!(v.len(), r.encoded_len());
            prop_assert!(v.ends_with(b"\r\n"));
            let mut s = vec![0u8; v.len()];
            prop_assert_eq!(r.encode_to_slice(&mut s), v.len());
            prop_assert_eq!(&s, &v);
        }
        let mut bulk = Vec::new();
        Reply::Bulk(&bytes).encode(&mut bulk);
        let mut req = b"*1\r\n".to_vec();
        req.extend_from_slice(&bulk);
        prop_assert_eq!(command(&req, &L).0, vec![bytes.clone()]);

        let name: &[u8] = text.as_bytes();
        let pushes = [
            PubSubPush::Message { channel: name, payload: &bytes },
            PubSubPush::PMessage { pattern: b"*", channel: name, payload: &bytes },
            PubSubPush::SMessage { channel: name, payload: &bytes },
            PubSubPush::Subscribe { channel: name, count },
            PubSubPush::Unsubscribe { channel: None, count },
            PubSubPush::PUnsubscribe { pattern: Some(name), count },
            PubSubPush::SSubscribe { channel: name, count },
        ];
        for push in pushes {
            let mut v2 = Vec::new();
            push.encode(Protocol::Resp2, &mut v2);
            let mut v3 = Vec::new();
            push.encode(Protocol::Resp3, &mut v3);
            prop_assert_eq!(v2.len(), push.encoded_len(Protocol::Resp2));
            prop_assert_eq!(v3.len(), push.encoded_len(Protocol::Resp3));
            prop_assert_eq!(v2[0], b'*');
            prop_assert_eq!(v3[0], b'>');
            if !matches!(push, PubSubPush::Unsubscribe { channel: None, .. }) {
                prop_assert_eq!(&v2[1..], &v3[1..]);
            }
            // A client reading it as a request sees the push's elements.
            if let PubSubPush::Message { .. } = push {
                prop_assert_eq!(v2.len(), message_len(name.len(), bytes.len()));
                let (got, _) = command(&v2, &L);
                prop_assert_eq!(got, vec![b"message".to_vec(), name.to_vec(), bytes.clone()]);
            }
        }
    }
}

/// Any input: parses, is incomplete or errors, consistently.
fn check_any(buf: &[u8]) -> Result<(), TestCaseError> {
    for limits in [L, L.with_max_bulk_len(8).with_unauthenticated(true)] {
        match parse(buf, &limits) {
            Ok(Parsed::Command { args, consumed }) => {
                prop_assert!(consumed > 0 && consumed <= buf.len());
                prop_assert!(!args.is_empty());
                prop_assert_eq!(args.iter().count(), args.len());
                // A request does not depend on what follows it.
                prop_assert_eq!(parse(&buf[..consumed], &limits), parse(buf, &limits));
            }
            Ok(Parsed::Skip { consumed }) => {
                prop_assert!(consumed > 0 && consumed <= buf.len());
            }
            Ok(Parsed::Incomplete { need }) => prop_assert!(need > buf.len()),
            Err(e) => prop_assert!(e.reply().as_bytes().starts_with(b"-ERR Protocol error: ")),
        }
    }
    Ok(())
}

//! The RESP reply decoder (the client side) driven in memory: everything the
//! encoders write ([`Reply`] trees, [`PubSubPush`] in both protocols) decodes
//! back to itself using all its bytes, every strict prefix is incomplete,
//! hostile input (deep nesting, giant lengths) is refused from its header,
//! and arbitrary input never panics and gives the same answer however much
//! of it has arrived.

use proptest::prelude::*;
use ringcast_proto::resp::{
    decode_message_head, decode_reply, encode_command, parse, Decoded, Limits, MessageHead,
    Protocol, PubSubPush, Reply, ReplyErrorKind, ReplyRef, MAX_REPLY_DEPTH,
};

const MAX_BULK: usize = 1 << 20;

/// A reply tree, owned: what the tests encode and compare decoded replies with.
#[derive(Clone, Debug)]
enum Value {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Vec<u8>),
    NullBulk,
    NullArray,
    Null,
    Double(f64),
    Boolean(bool),
    Verbatim([u8; 3], Vec<u8>),
    BigNumber(Vec<u8>),
    BlobError(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Push(Vec<Value>),
    Attributed(Vec<(Value, Value)>, Box<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            // Bit for bit; any NaN of the same sign.
            (Double(a), Double(b)) => {
                a.to_bits() == b.to_bits()
                    || (a.is_nan() && b.is_nan() && a.is_sign_negative() == b.is_sign_negative())
            }
            (Simple(a), Simple(b))
            | (Error(a), Error(b))
            | (Bulk(a), Bulk(b))
            | (BigNumber(a), BigNumber(b))
            | (BlobError(a), BlobError(b)) => a == b,
            (Integer(a), Integer(b)) => a == b,
            (NullBulk, NullBulk) | (NullArray, NullArray) | (Null, Null) => true,
            (Boolean(a), Boolean(b)) => a == b,
            (Verbatim(f, t), Verbatim(g, u)) => f == g && t == u,
            (Array(a), Array(b)) | (Set(a), Set(b)) | (Push(a), Push(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (Attributed(a, v), Attributed(b, w)) => a == b && v == w,
            _ => false,
        }
    }
}

/// `v` as a server sends it: through [`Reply`] where it has the type.
fn encode(v: &Value, out: &mut Vec<u8>) {
    let bulk_like = |out: &mut Vec<u8>, prefix: u8, bytes: &[u8]| {
        out.extend_from_slice(format!("{}{}\r\n", prefix as char, bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    };
    match v {
        Value::Simple(t) => Reply::SimpleString(t).encode(out),
        Value::Error(t) => Reply::Error(t).encode(out),
        Value::Integer(n) => Reply::Integer(*n).encode(out),
        Value::Bulk(b) => Reply::Bulk(b).encode(out),
        Value::NullBulk => Reply::NullBulk.encode(out),
        Value::NullArray => Reply::NullArray.encode(out),
        Value::Null => Reply::Null.encode(out),
        Value::Double(d) => Reply::Double(*d).encode(out),
        Value::Boolean(b) => Reply::Boolean(*b).encode(out),
        Value::Verbatim(format, text) => Reply::Verbatim {
            format: *format,
            text,
        }
        .encode(out),
        Value::BigNumber(digits) => {
            out.push(b'(');
            out.extend_from_slice(digits);
            out.extend_from_slice(b"\r\n");
        }
        Value::BlobError(b) => bulk_like(out, b'!', b),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            match v {
                Value::Array(_) => Reply::Array(items.len()),
                Value::Set(_) => Reply::Set(items.len()),
                _ => Reply::Push(items.len()),
            }
            .encode(out);
            items.iter().for_each(|i| encode(i, out));
        }
        Value::Map(pairs) => {
            Reply::Map(pairs.len()).encode(out);
            encode_pairs(pairs, out);
        }
        Value::Attributed(pairs, value) => {
            out.extend_from_slice(format!("|{}\r\n", pairs.len()).as_bytes());
            encode_pairs(pairs, out);
            encode(value, out);
        }
    }
}

fn encode_pairs(pairs: &[(Value, Value)], out: &mut Vec<u8>) {
    for (k, v) in pairs {
        encode(k, out);
        encode(v, out);
    }
}

fn to_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

/// A decoded element as a [`Value`], its aggregates walked.
fn owned(r: ReplyRef<'_>) -> Value {
    let items = |a: ringcast_proto::resp::Aggregate<'_>| a.iter().map(owned).collect::<Vec<_>>();
    let pairs = |a: ringcast_proto::resp::Aggregate<'_>| {
        assert_eq!(a.len() % 2, 0, "odd map");
        a.pairs().map(|(k, v)| (owned(k), owned(v))).collect()
    };
    match r {
        ReplyRef::SimpleString(t) => Value::Simple(t.to_vec()),
        ReplyRef::Error(t) => Value::Error(t.to_vec()),
        ReplyRef::Integer(n) => Value::Integer(n),
        ReplyRef::Bulk(b) => Value::Bulk(b.to_vec()),
        ReplyRef::NullBulk => Value::NullBulk,
        ReplyRef::NullArray => Value::NullArray,
        ReplyRef::Null => Value::Null,
        ReplyRef::Double(d) => Value::Double(d),
        ReplyRef::Boolean(b) => Value::Boolean(b),
        ReplyRef::Verbatim { format, text } => Value::Verbatim(format, text.to_vec()),
        ReplyRef::BigNumber(d) => Value::BigNumber(d.to_vec()),
        ReplyRef::BlobError(b) => Value::BlobError(b.to_vec()),
        ReplyRef::Array(a) => {
            let v = items(a);
            assert_eq!(v.len(), a.len());
            Value::Array(v)
        }
        ReplyRef::Set(a) => Value::Set(items(a)),
        ReplyRef::Push(a) => Value::Push(items(a)),
        ReplyRef::Map(a) => Value::Map(pairs(a)),
        ReplyRef::Attributed(a) => {
            Value::Attributed(pairs(a.attributes()), Box::new(owned(a.value())))
        }
    }
}

fn decode(buf: &[u8]) -> (ReplyRef<'_>, usize) {
    match decode_reply(buf, MAX_BULK) {
        Ok(Decoded::Frame { frame, consumed }) => (frame, consumed),
        other => panic!("{}: expected a reply, got {other:?}", buf.escape_ascii()),
    }
}

fn error(buf: &[u8], max_bulk: usize) -> ReplyErrorKind {
    match decode_reply(buf, max_bulk) {
        Err(e) => e.kind(),
        other => panic!("{}: expected an error, got {other:?}", buf.escape_ascii()),
    }
}

fn need(buf: &[u8]) -> usize {
    match decode_reply(buf, MAX_BULK) {
        Ok(Decoded::Incomplete { need }) => need,
        other => panic!("{}: expected incomplete, got {other:?}", buf.escape_ascii()),
    }
}

// --- Strategies ------------------------------------------------------------

/// Text for a simple string or error: any bytes but CR and LF.
fn line_text() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24).prop_map(|v| {
        v.into_iter()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect()
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        line_text().prop_map(Value::Simple),
        line_text().prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        bytes().prop_map(Value::Bulk),
        Just(Value::NullBulk),
        Just(Value::NullArray),
        Just(Value::Null),
        any::<f64>().prop_map(Value::Double),
        prop::sample::select(vec![0.0, -0.0, 0.1, 1e17, 5e-324, f64::MAX, -f64::NAN])
            .prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
        (prop::sample::select(vec![*b"txt", *b"mkd"]), bytes())
            .prop_map(|(f, t)| Value::Verbatim(f, t)),
        "[-+]?[0-9]{1,60}".prop_map(|s| Value::BigNumber(s.into_bytes())),
        bytes().prop_map(Value::BlobError),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        let items = prop::collection::vec(inner.clone(), 0..6);
        let pairs = prop::collection::vec((inner.clone(), inner.clone()), 0..4);
        prop_oneof![
            items.clone().prop_map(Value::Array),
            items.clone().prop_map(Value::Set),
            items.prop_map(Value::Push),
            pairs.clone().prop_map(Value::Map),
            (pairs, inner).prop_map(|(p, v)| Value::Attributed(p, Box::new(v))),
        ]
    })
}

/// Pub/sub pushes of arbitrary names, payloads and counts.
fn push() -> impl Strategy<Value = (u8, Vec<u8>, Vec<u8>, Vec<u8>, usize)> {
    (0u8..12, bytes(), bytes(), bytes(), any::<usize>())
}

fn make_push<'a>(kind: u8, a: &'a [u8], b: &'a [u8], c: &'a [u8], count: usize) -> PubSubPush<'a> {
    // Counts the encoder writes as they are (it caps them at i64::MAX).
    let count = count >> 1;
    match kind {
        0 => PubSubPush::Message {
            channel: a,
            payload: b,
        },
        1 => PubSubPush::PMessage {
            pattern: a,
            channel: b,
            payload: c,
        },
        2 => PubSubPush::SMessage {
            channel: a,
            payload: b,
        },
        3 => PubSubPush::Subscribe { channel: a, count },
        4 => PubSubPush::Unsubscribe {
            channel: Some(a),
            count,
        },
        5 => PubSubPush::Unsubscribe {
            channel: None,
            count,
        },
        6 => PubSubPush::PSubscribe { pattern: a, count },
        7 => PubSubPush::PUnsubscribe {
            pattern: Some(a),
            count,
        },
        8 => PubSubPush::PUnsubscribe {
            pattern: None,
            count,
        },
        9 => PubSubPush::SSubscribe { channel: a, count },
        10 => PubSubPush::SUnsubscribe {
            channel: Some(a),
            count,
        },
        _ => PubSubPush::SUnsubscribe {
            channel: None,
            count,
        },
    }
}

/// Bytes from the RESP alphabet, to reach deep into the decoder.
fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"+-:$*_,#(!=%~>|\r\n0123456789-tfinax:\x00".to_vec()),
        0..64,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn replies_round_trip(v in value(), tail in prop::collection::vec(any::<u8>(), 0..8)) {
        let wire = to_bytes(&v);
        let (r, consumed) = decode(&wire);
        prop_assert_eq!(consumed, wire.len());
        prop_assert_eq!(owned(r), v.clone());
        // What follows is not the reply's.
        let mut more = wire.clone();
        more.extend_from_slice(&tail);
        let (r2, consumed2) = decode(&more);
        prop_assert_eq!((owned(r2), consumed2), (v.clone(), consumed));
        // The element's encoder value comes back (for an aggregate, its header).
        if let Some(reply) = r.as_reply() {
            let mut head = Vec::new();
            reply.encode(&mut head);
            prop_assert!(wire.starts_with(&head), "{:?} -> {:?}", r, reply);
        }
        // Debug walks the whole tree.
        let text = format!("{r:?}");
        prop_assert!(!text.is_empty());
    }

    #[test]
    fn every_strict_prefix_is_incomplete(v in value()) {
        let wire = to_bytes(&v);
        for end in 0..wire.len() {
            let n = need(&wire[..end]);
            prop_assert!(n > end && n <= wire.len(), "prefix {} of {}: need {}", end, wire.len(), n);
        }
    }

    #[test]
    fn pipelined_replies_decode_one_after_another(vs in prop::collection::vec(value(), 1..6)) {
        let mut wire = Vec::new();
        vs.iter().for_each(|v| encode(v, &mut wire));
        let mut at = 0;
        for v in &vs {
            let (r, used) = decode(&wire[at..]);
            prop_assert_eq!(owned(r), v.clone());
            at += used;
        }
        prop_assert_eq!(at, wire.len());
    }

    #[test]
    fn bulks_are_limited_by_max_bulk(b in prop::collection::vec(any::<u8>(), 1..64)) {
        let wire = to_bytes(&Value::Bulk(b.clone()));
        prop_assert_eq!(decode_reply(&wire, b.len()).unwrap().frame(), Some((ReplyRef::Bulk(&b), wire.len())));
        // Refused from the header alone.
        let header = wire.iter().position(|&c| c == b'\n').unwrap() + 1;
        prop_assert_eq!(error(&wire[..header], b.len() - 1), ReplyErrorKind::TooLong);
    }

    #[test]
    fn pushes_round_trip((kind, a, b, c, count) in push(), resp3 in any::<bool>()) {
        let proto = if resp3 { Protocol::Resp3 } else { Protocol::Resp2 };
        let p = make_push(kind, &a, &b, &c, count);
        let mut wire = Vec::new();
        p.encode(proto, &mut wire);
        let (r, consumed) = decode(&wire);
        prop_assert_eq!(consumed, wire.len());
        prop_assert_eq!(matches!(r, ReplyRef::Push(_)), resp3);
        prop_assert_eq!(r.as_pubsub(), Some(p));
        for end in 0..wire.len() {
            prop_assert!(need(&wire[..end]) > end);
        }
        // The head of a message tells where its payload lies.
        let head = decode_message_head(&wire, MAX_BULK);
        if let PubSubPush::Message { channel, payload } = p {
            let payload_at = wire.len() - payload.len() - 2;
            prop_assert_eq!(head, Some(MessageHead { channel, payload_at, total: wire.len() }));
            prop_assert_eq!(decode_message_head(&wire[..payload_at], MAX_BULK), head);
            prop_assert_eq!(decode_message_head(&wire[..payload_at - 1], MAX_BULK), None);
        } else {
            prop_assert_eq!(head, None);
        }
    }

    #[test]
    fn commands_parse_back_as_their_arguments(args in prop::collection::vec(bytes(), 1..8)) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let mut wire = Vec::new();
        encode_command(&refs, &mut wire);
        let (got, consumed) = parse(&wire, &Limits::REDIS).unwrap().command().unwrap();
        prop_assert_eq!(consumed, wire.len());
        prop_assert_eq!(got.iter().map(|a| a.into_owned()).collect::<Vec<_>>(), args.clone());
        // And as a reply, an array of the same bulks.
        let (r, _) = decode(&wire);
        let want = Value::Array(args.into_iter().map(Value::Bulk).collect());
        prop_assert_eq!(owned(r), want);
    }

    #[test]
    fn double_bulks_read_back_exactly(d in any::<f64>()) {
        let mut wire = Vec::new();
        Reply::DoubleBulk(d).encode(&mut wire);
        let (ReplyRef::Bulk(text), _) = decode(&wire) else { panic!("not a bulk") };
        let back: f64 = std::str::from_utf8(text).unwrap().parse().unwrap();
        prop_assert_eq!(Value::Double(back), Value::Double(d));
    }

    #[test]
    fn garbage_never_panics(buf in prop::collection::vec(any::<u8>(), 0..256)) {
        check_any(&buf)?;
    }

    #[test]
    fn resp_shaped_garbage_never_panics(buf in resp_ish()) {
        check_any(&buf)?;
    }

    #[test]
    fn mutated_replies_never_panic(v in value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut wire = to_bytes(&v);
        let i = at.index(wire.len());
        wire[i] = byte;
        check_any(&wire)?;
    }
}

/// For comparisons that hold for NaN too.
fn debug(x: &impl std::fmt::Debug) -> String {
    format!("{x:?}")
}

/// Any input: decodes, is incomplete or errors; every prefix of it answers
/// the same or incomplete; a decoded reply can be walked whole.
fn check_any(buf: &[u8]) -> Result<(), TestCaseError> {
    for max_bulk in [MAX_BULK, 4] {
        let whole = decode_reply(buf, max_bulk);
        match whole {
            Ok(Decoded::Frame { frame, consumed }) => {
                prop_assert!(consumed > 0 && consumed <= buf.len());
                let _ = owned(frame);
                let _ = frame.as_pubsub();
                let _ = format!("{frame:?}");
                prop_assert_eq!(
                    debug(&decode_reply(&buf[..consumed], max_bulk)),
                    debug(&whole)
                );
            }
            Ok(Decoded::Incomplete { need }) => prop_assert!(need > buf.len()),
            Err(e) => prop_assert!(e.offset() <= buf.len()),
        }
        for end in 0..buf.len() {
            let part = decode_reply(&buf[..end], max_bulk);
            if !matches!(part, Ok(Decoded::Incomplete { .. })) {
                prop_assert_eq!(debug(&part), debug(&whole), "prefix of {}", end);
            }
        }
        let _ = decode_message_head(buf, max_bulk);
    }
    Ok(())
}

#[test]
fn resp3_types() {
    let (r, _) = decode(b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n#t\r\n");
    let ReplyRef::Map(m) = r else {
        panic!("not a map: {r:?}")
    };
    assert_eq!(m.len(), 4);
    assert_eq!(r.as_reply(), Some(Reply::Map(2)));
    let pairs: Vec<_> = m.pairs().collect();
    assert_eq!(
        pairs,
        [
            (ReplyRef::SimpleString(b"a"), ReplyRef::Integer(1)),
            (ReplyRef::Bulk(b"b"), ReplyRef::Boolean(true))
        ]
    );
    assert_eq!(decode(b",1.5\r\n").0, ReplyRef::Double(1.5));
    assert_eq!(decode(b",1e+17\r\n").0, ReplyRef::Double(1e17));
    let (ReplyRef::Double(nan), _) = decode(b",-nan\r\n") else {
        panic!()
    };
    assert!(nan.is_nan() && nan.is_sign_negative());
    assert_eq!(
        decode(b"(3492890328409238509324850943850943825024385\r\n").0,
        ReplyRef::BigNumber(b"3492890328409238509324850943850943825024385")
    );
    assert_eq!(
        decode(b"!21\r\nSYNTAX invalid syntax\r\n").0,
        ReplyRef::BlobError(b"SYNTAX invalid syntax")
    );
    assert_eq!(
        decode(b"=15\r\ntxt:Some string\r\n").0,
        ReplyRef::Verbatim {
            format: *b"txt",
            text: b"Some string"
        }
    );
    assert_eq!(owned(decode(b"~0\r\n").0), Value::Set(vec![]));
}

#[test]
fn attributes_annotate_the_element_after_them() {
    // The spec's example: an array of two elements, the first with attributes.
    let wire = b"*2\r\n|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n:2039123\r\n:9543892\r\n";
    let (r, consumed) = decode(wire);
    assert_eq!(consumed, wire.len());
    let a = r.aggregate().unwrap();
    assert_eq!(a.len(), 2);
    let items: Vec<_> = a.iter().collect();
    let ReplyRef::Attributed(attr) = items[0] else {
        panic!("{:?}", items[0])
    };
    assert_eq!(attr.value(), ReplyRef::Integer(2039123));
    assert_eq!(items[0].strip_attributes(), ReplyRef::Integer(2039123));
    assert_eq!(items[0].as_reply(), None);
    let (k, v) = attr.attributes().pairs().next().unwrap();
    assert_eq!(k, ReplyRef::SimpleString(b"key-popularity"));
    assert_eq!(v.aggregate().unwrap().len(), 4);
    assert_eq!(items[1], ReplyRef::Integer(9543892));
    // At the top: one reply, attributes and all.
    let (r, consumed) = decode(b"|1\r\n+ttl\r\n:3600\r\n+OK\r\n:1\r\n");
    assert_eq!(consumed, 22);
    assert_eq!(r.strip_attributes(), ReplyRef::SimpleString(b"OK"));
    let (r, consumed) = decode(b"|0\r\n|0\r\n_\r\n");
    assert_eq!((r.strip_attributes(), consumed), (ReplyRef::Null, 11));
}

#[test]
fn nesting_is_limited() {
    let nested = |depth: usize, open: &[u8]| {
        let mut v = open.repeat(depth);
        v.extend_from_slice(b":1\r\n");
        v
    };
    for open in [
        &b"*1\r\n"[..],
        b">1\r\n",
        b"~1\r\n",
        b"|0\r\n",
        b"%1\r\n_\r\n",
    ] {
        let ok = nested(MAX_REPLY_DEPTH, open);
        let (r, consumed) = decode(&ok);
        assert_eq!(consumed, ok.len());
        // Consumers may recurse: at most MAX_REPLY_DEPTH deep.
        let _ = owned(r);
        let _ = format!("{r:?}");
        assert_eq!(
            error(&nested(MAX_REPLY_DEPTH + 1, open), MAX_BULK),
            ReplyErrorKind::TooDeep
        );
        // Refused as soon as the level too many has arrived, without recursion.
        let hostile = open.repeat(1_000_000);
        let e = decode_reply(&hostile, MAX_BULK).unwrap_err();
        assert_eq!(e.kind(), ReplyErrorKind::TooDeep);
        assert_eq!(e.offset(), MAX_REPLY_DEPTH * open.len());
    }
    // Empty aggregates do not nest.
    let flat = b"*0\r\n".repeat(3);
    assert_eq!(decode(&flat).1, 4);
}

#[test]
fn giant_lengths_are_refused_from_their_header() {
    assert_eq!(error(b"$1048577\r\n", MAX_BULK), ReplyErrorKind::TooLong);
    assert_eq!(
        error(b"!9223372036854775807\r\n", MAX_BULK),
        ReplyErrorKind::TooLong
    );
    assert_eq!(error(b"=1048577\r\n", MAX_BULK), ReplyErrorKind::TooLong);
    assert_eq!(
        error(b"*4294967296\r\n", MAX_BULK),
        ReplyErrorKind::TooManyElements
    );
    assert_eq!(
        error(b"%2147483648\r\n", MAX_BULK),
        ReplyErrorKind::TooManyElements
    );
    assert_eq!(
        error(b">9223372036854775807\r\n", MAX_BULK),
        ReplyErrorKind::TooManyElements
    );
    // The largest count is only incomplete, and says how much it needs at
    // least: a byte of its first element, 3 of each other.
    assert_eq!(need(b"*4294967295\r\n"), 14 + 3 * 4294967294);
    // Lines: a text line over max_bulk, a number over 20 characters, without their ends.
    assert_eq!(error(b"+abcde", 4), ReplyErrorKind::TooLong);
    assert_eq!(need(b"+abcd"), 6);
    assert_eq!(decode_reply(b"+abcd\r\n", 4).unwrap().frame().unwrap().1, 7);
    assert_eq!(error(&[b':'; 22], MAX_BULK), ReplyErrorKind::BadInteger);
    assert_eq!(
        error(b"$123456789012345678901", MAX_BULK),
        ReplyErrorKind::BadInteger
    );
    assert_eq!(need(b":1234567890123456789"), 21);
    // A number out of range is refused at its first digit too many.
    assert_eq!(
        error(b":9223372036854775808", MAX_BULK),
        ReplyErrorKind::BadInteger
    );
    assert_eq!(need(b":-9223372036854775808"), 22);
    assert_eq!(
        error(b":-9223372036854775809", MAX_BULK),
        ReplyErrorKind::BadInteger
    );
    assert_eq!(error(b"$00", MAX_BULK), ReplyErrorKind::BadInteger);
}

#[test]
fn every_error_kind() {
    use ReplyErrorKind::*;
    let cases: &[(&[u8], ReplyErrorKind)] = &[
        (b"?x\r\n", UnknownType(b'?')),
        (b"*1\r\n\r\n", UnknownType(b'\r')),
        (b"+OK\n", BadLineEnd),
        (b"+O\rK\r\n", BadLineEnd),
        (b":1\r:", BadLineEnd),
        (b":12x\r\n", BadInteger),
        (b":+1\r\n", BadInteger),
        (b":01\r\n", BadInteger),
        (b":\r\n", BadInteger),
        (b"$?\r\n", BadInteger),
        (b"*?\r\n", BadInteger),
        (b"$-2\r\n", NegativeLength),
        (b"!-1\r\n", NegativeLength),
        (b"%-1\r\n", NegativeLength),
        (b"*-2\r\n", NegativeLength),
        (b"$3\r\nabcX", BadBulkEnd),
        (b"$3\r\nabc\rX", BadBulkEnd),
        (b"$0\r\n\n", BadBulkEnd),
        (b"_x", BadNull),
        (b"_\r\r", BadNull),
        (b"#x", BadBoolean),
        (b"#tt", BadBoolean),
        (b",\r\n", BadDouble),
        (b",1.5.\r\n", BadDouble),
        (b",1,5\r\n", BadDouble),
        (b"(\r\n", BadBigNumber),
        (b"(-\r\n", BadBigNumber),
        (b"(1.5\r\n", BadBigNumber),
        (b"=3\r\n", BadVerbatim),
        (b"=4\r\ntxt-\r\n", BadVerbatim),
        (b"*2\r\n*2\r\n:1\r\n?", UnknownType(b'?')),
    ];
    for &(buf, want) in cases {
        assert_eq!(error(buf, MAX_BULK), want, "{}", buf.escape_ascii());
        let e = decode_reply(buf, MAX_BULK).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn message_heads() {
    let mut wire = Vec::new();
    PubSubPush::Message {
        channel: b"bench.x.0",
        payload: &[7; 100_000],
    }
    .encode(Protocol::Resp2, &mut wire);
    let head = decode_message_head(&wire[..60], MAX_BULK).unwrap();
    assert_eq!(
        head,
        MessageHead {
            channel: b"bench.x.0",
            payload_at: 41,
            total: wire.len()
        }
    );
    assert_eq!(decode_message_head(&wire[..60], 99_999), None);
    assert_eq!(decode_message_head(b":1\r\n", MAX_BULK), None);
    assert_eq!(
        decode_message_head(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n", MAX_BULK),
        None
    );
    assert_eq!(
        decode_message_head(
            b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nx\r\n",
            MAX_BULK
        ),
        None
    );
}

#[test]
fn pushes_that_are_not_pubsub() {
    for wire in [
        &b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:1\r\n"[..],
        b"*2\r\n$7\r\nmessage\r\n$1\r\nc\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:-1\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$-1\r\n:1\r\n",
        b">3\r\n$10\r\ninvalidate\r\n$1\r\nc\r\n:1\r\n",
        b"*0\r\n",
        b"*1\r\n:1\r\n",
        b"$7\r\nmessage\r\n",
        b">3\r\n+message\r\n$1\r\nc\r\n$1\r\np\r\n",
        b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n_\r\n",
        b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n:1\r\n",
    ] {
        assert_eq!(decode(wire).0.as_pubsub(), None, "{}", wire.escape_ascii());
    }
}

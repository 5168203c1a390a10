//! The wire codec driven in memory: round trips, prefixes, arbitrary input,
//! and one test per protocol violation (PROTOCOL.md, "Frame layout").

use proptest::prelude::*;
use ringcast_proto::native::{
    data_frame_len, decode_client, decode_server, encode_data, patch_data_seq, patch_data_ts,
    validate_topic, ClientFrame, DataView, DataViewMut, Decoded, ErrorCode, Kind, ProtoError,
    ServerFrame, DATA_HEADER_LEN, DEFAULT_MAX_FRAME, HEADER_LEN, MAX_PING_PAYLOAD, MAX_TOPIC_LEN,
};

const MAX: u32 = DEFAULT_MAX_FRAME;

/// A frame from raw header fields followed by `rest` (fixed fields, topic, payload).
fn raw(len: u32, kind: u8, flags: u8, topic_len: u16, rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_le_bytes());
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&topic_len.to_le_bytes());
    v.extend_from_slice(rest);
    v
}

/// A well-formed frame: `len` computed from `fixed`, `topic` and `payload`.
fn frame(kind: u8, fixed: &[u8], topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let rest = [fixed, topic, payload].concat();
    raw((4 + rest.len()) as u32, kind, 0, topic.len() as u16, &rest)
}

fn client_err(buf: &[u8]) -> ProtoError {
    match decode_client(buf, MAX) {
        Err(e) => e,
        Ok(d) => panic!("expected an error, got {d:?}"),
    }
}

fn server_err(buf: &[u8]) -> ProtoError {
    match decode_server(buf, MAX) {
        Err(e) => e,
        Ok(d) => panic!("expected an error, got {d:?}"),
    }
}

fn client_ok(buf: &[u8]) -> (ClientFrame<'_>, usize) {
    match decode_client(buf, MAX) {
        Ok(Decoded::Frame { frame, consumed }) => (frame, consumed),
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn encode_client(f: &ClientFrame<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    f.encode(&mut v);
    v
}

fn encode_server(f: &ServerFrame<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    f.encode(&mut v);
    v
}

// ---------------------------------------------------------------- strategies

/// A valid topic: 1 to 255 bytes of UTF-8 without ASCII controls or spaces.
fn topic() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9/._-]{1,40}",
        proptest::string::string_regex("[^\\x00-\\x20\\x7F]{1,255}").unwrap(),
        Just("t".repeat(MAX_TOPIC_LEN)),
    ]
    .prop_map(|mut s| {
        while s.len() > MAX_TOPIC_LEN {
            s.pop();
        }
        s
    })
}

fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

#[derive(Clone, Debug)]
enum OwnedClient {
    Publish(String, Vec<u8>),
    Subscribe(String),
    Unsubscribe(String),
    Ping(Vec<u8>),
    Auth(Vec<u8>),
}

impl OwnedClient {
    fn frame(&self) -> ClientFrame<'_> {
        match self {
            OwnedClient::Publish(t, p) => ClientFrame::Publish {
                topic: t,
                payload: p,
            },
            OwnedClient::Subscribe(t) => ClientFrame::Subscribe { topic: t },
            OwnedClient::Unsubscribe(t) => ClientFrame::Unsubscribe { topic: t },
            OwnedClient::Ping(p) => ClientFrame::Ping { payload: p },
            OwnedClient::Auth(t) => ClientFrame::Auth { token: t },
        }
    }
}

fn client_frame() -> impl Strategy<Value = OwnedClient> {
    prop_oneof![
        (topic(), payload(600)).prop_map(|(t, p)| OwnedClient::Publish(t, p)),
        topic().prop_map(OwnedClient::Subscribe),
        topic().prop_map(OwnedClient::Unsubscribe),
        payload(MAX_PING_PAYLOAD).prop_map(OwnedClient::Ping),
        payload(300).prop_map(OwnedClient::Auth),
    ]
}

#[derive(Clone, Debug)]
enum OwnedServer {
    Data(u64, u64, String, Vec<u8>),
    SubAck(u64, u64, String),
    UnsubAck(String),
    Pong(Vec<u8>),
    AuthOk,
    Gap(String, String),
    Error(u16, Option<String>, String),
}

impl OwnedServer {
    fn frame(&self) -> ServerFrame<'_> {
        match self {
            OwnedServer::Data(seq, ts_ns, t, p) => ServerFrame::Data {
                seq: *seq,
                ts_ns: *ts_ns,
                topic: t,
                payload: p,
            },
            OwnedServer::SubAck(next_seq, epoch, t) => ServerFrame::SubAck {
                next_seq: *next_seq,
                epoch: *epoch,
                topic: t,
            },
            OwnedServer::UnsubAck(t) => ServerFrame::UnsubAck { topic: t },
            OwnedServer::Pong(p) => ServerFrame::Pong { payload: p },
            OwnedServer::AuthOk => ServerFrame::AuthOk,
            OwnedServer::Gap(t, m) => ServerFrame::Gap {
                topic: t,
                message: m,
            },
            OwnedServer::Error(code, t, m) => ServerFrame::Error {
                code: *code,
                topic: t.as_deref(),
                message: m,
            },
        }
    }
}

fn server_frame() -> impl Strategy<Value = OwnedServer> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), topic(), payload(600))
            .prop_map(|(s, t, tp, p)| OwnedServer::Data(s, t, tp, p)),
        (any::<u64>(), any::<u64>(), topic()).prop_map(|(s, e, t)| OwnedServer::SubAck(s, e, t)),
        topic().prop_map(OwnedServer::UnsubAck),
        payload(MAX_PING_PAYLOAD).prop_map(OwnedServer::Pong),
        Just(OwnedServer::AuthOk),
        (topic(), ".{0,80}").prop_map(|(t, m)| OwnedServer::Gap(t, m)),
        (any::<u16>(), proptest::option::of(topic()), ".{0,80}")
            .prop_map(|(c, t, m)| OwnedServer::Error(c, t, m)),
    ]
}

/// Bytes that start like a frame often enough to reach the deeper checks.
fn frame_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![
        Just(0x01u8),
        Just(0x02),
        Just(0x03),
        Just(0x04),
        Just(0x05),
        Just(0x10),
        Just(0x12),
        Just(0x13),
        Just(0x14),
        Just(0x15),
        Just(0x16),
        Just(0x1F),
        any::<u8>(),
    ];
    let flags = prop_oneof![4 => Just(0u8), 1 => any::<u8>()];
    (
        0u32..400,
        kind,
        flags,
        prop_oneof![0u16..300, any::<u16>()],
        proptest::collection::vec(prop_oneof![3 => b'a'..=b'z', 1 => any::<u8>()], 0..420),
    )
        .prop_map(|(len, kind, flags, topic_len, rest)| raw(len, kind, flags, topic_len, &rest))
}

/// The decoder contract on any input: no panic, `consumed <= buf.len()`,
/// `need > buf.len()`.
fn check_contract(buf: &[u8], max_frame: u32) -> Result<(), TestCaseError> {
    match decode_client(buf, max_frame) {
        Ok(Decoded::Frame { consumed, .. }) => {
            prop_assert!(consumed >= HEADER_LEN && consumed <= buf.len())
        }
        Ok(Decoded::Incomplete { need }) => prop_assert!(need > buf.len()),
        Err(_) => {}
    }
    match decode_server(buf, max_frame) {
        Ok(Decoded::Frame { consumed, .. }) => {
            prop_assert!(consumed >= HEADER_LEN && consumed <= buf.len())
        }
        Ok(Decoded::Incomplete { need }) => prop_assert!(need > buf.len()),
        Err(_) => {}
    }
    Ok(())
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_frames_round_trip(f in client_frame()) {
        let f = f.frame();
        let bytes = encode_client(&f);
        prop_assert_eq!(bytes.len(), f.encoded_len());
        prop_assert_eq!(bytes[4], f.kind() as u8);
        prop_assert_eq!(
            decode_client(&bytes, MAX),
            Ok(Decoded::Frame { frame: f, consumed: bytes.len() })
        );
        // The slice encoder writes the same bytes and leaves the rest alone.
        let mut slice = vec![0xAA; bytes.len() + 3];
        prop_assert_eq!(f.encode_to_slice(&mut slice), bytes.len());
        prop_assert_eq!(&slice[..bytes.len()], &bytes[..]);
        prop_assert_eq!(&slice[bytes.len()..], &[0xAA; 3][..]);
        // encode appends.
        let mut v = vec![7u8];
        f.encode(&mut v);
        prop_assert_eq!(&v[1..], &bytes[..]);
        // The server refuses client kinds.
        prop_assert_eq!(decode_server(&bytes, MAX).unwrap_err().code, ErrorCode::UnknownKind);
    }

    #[test]
    fn server_frames_round_trip(f in server_frame()) {
        let f = f.frame();
        let bytes = encode_server(&f);
        prop_assert_eq!(bytes.len(), f.encoded_len());
        prop_assert_eq!(bytes[4], f.kind() as u8);
        prop_assert_eq!(
            decode_server(&bytes, MAX),
            Ok(Decoded::Frame { frame: f, consumed: bytes.len() })
        );
        let mut slice = vec![0xAA; bytes.len() + 3];
        prop_assert_eq!(f.encode_to_slice(&mut slice), bytes.len());
        prop_assert_eq!(&slice[..bytes.len()], &bytes[..]);
        prop_assert_eq!(&slice[bytes.len()..], &[0xAA; 3][..]);
        prop_assert_eq!(decode_client(&bytes, MAX).unwrap_err().code, ErrorCode::UnknownKind);
    }

    #[test]
    fn encode_data_matches_server_frame_and_patches(
        seq in any::<u64>(), ts in any::<u64>(), t in topic(), p in payload(600),
        seq2 in any::<u64>(), ts2 in any::<u64>(),
    ) {
        let n = data_frame_len(t.len(), p.len());
        prop_assert_eq!(n, DATA_HEADER_LEN + t.len() + p.len());
        let mut buf = vec![0u8; n + 5];
        prop_assert_eq!(encode_data(&mut buf, seq, ts, t.as_bytes(), &p), n);
        let reference = encode_server(&ServerFrame::Data { seq, ts_ns: ts, topic: &t, payload: &p });
        prop_assert_eq!(&buf[..n], &reference[..]);

        patch_data_seq(&mut buf[..n], seq2);
        patch_data_ts(&mut buf[..n], ts2);
        prop_assert_eq!(
            decode_server(&buf, MAX),
            Ok(Decoded::Frame {
                frame: ServerFrame::Data { seq: seq2, ts_ns: ts2, topic: &t, payload: &p },
                consumed: n,
            })
        );
    }

    #[test]
    fn every_prefix_of_a_client_frame_is_incomplete(f in client_frame()) {
        let bytes = encode_client(&f.frame());
        for cut in 0..bytes.len() {
            match decode_client(&bytes[..cut], MAX) {
                Ok(Decoded::Incomplete { need }) => {
                    prop_assert!(need > cut, "need {} at prefix {}", need, cut);
                    prop_assert!(need <= bytes.len(), "need {} past the frame's {}", need, bytes.len());
                }
                other => prop_assert!(false, "prefix {} of {}: {:?}", cut, bytes.len(), other),
            }
        }
    }

    #[test]
    fn every_prefix_of_a_server_frame_is_incomplete(f in server_frame()) {
        let bytes = encode_server(&f.frame());
        for cut in 0..bytes.len() {
            match decode_server(&bytes[..cut], MAX) {
                Ok(Decoded::Incomplete { need }) => {
                    prop_assert!(need > cut, "need {} at prefix {}", need, cut);
                    prop_assert!(need <= bytes.len(), "need {} past the frame's {}", need, bytes.len());
                }
                other => prop_assert!(false, "prefix {} of {}: {:?}", cut, bytes.len(), other),
            }
        }
    }

    #[test]
    fn trailing_bytes_are_left_for_the_next_frame(f in client_frame(), tail in payload(40)) {
        let f = f.frame();
        let mut bytes = encode_client(&f);
        let n = bytes.len();
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(decode_client(&bytes, MAX), Ok(Decoded::Frame { frame: f, consumed: n }));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        max_frame in prop_oneof![Just(MAX), Just(u32::MAX), 0u32..700],
    ) {
        check_contract(&bytes, max_frame)?;
    }

    #[test]
    fn frame_like_bytes_never_panic(
        bytes in frame_like_bytes(),
        max_frame in prop_oneof![Just(MAX), Just(u32::MAX), 0u32..500],
    ) {
        for cut in [0, 4, 8, bytes.len() / 2, bytes.len()] {
            check_contract(&bytes[..cut.min(bytes.len())], max_frame)?;
        }
    }

    #[test]
    fn valid_topics_validate(t in topic()) {
        prop_assert_eq!(validate_topic(t.as_bytes()), Ok(t.as_str()));
    }

    #[test]
    fn data_view_agrees_with_decode_server(
        seq in any::<u64>(), ts in any::<u64>(), t in topic(), p in payload(600),
        tail in payload(40), seq2 in any::<u64>(), ts2 in any::<u64>(),
    ) {
        let mut buf = encode_server(&ServerFrame::Data { seq, ts_ns: ts, topic: &t, payload: &p });
        let n = buf.len();
        buf.extend_from_slice(&tail);
        let Ok(Decoded::Frame { frame: ServerFrame::Data { seq: s, ts_ns, topic, payload }, .. }) =
            decode_server(&buf, MAX)
        else {
            return Err(TestCaseError::fail("DATA frame did not decode"));
        };
        let v = DataView::new(&buf).expect("a DATA frame");
        prop_assert_eq!((v.seq(), v.ts_ns(), v.topic(), v.payload()), (s, ts_ns, topic.as_bytes(), payload));
        // A frame cut short: a view once the topic is in, showing the payload bytes present.
        let topic_end = DATA_HEADER_LEN + t.len();
        for cut in [0, HEADER_LEN, DATA_HEADER_LEN, topic_end - 1, topic_end, (topic_end + n) / 2, n - 1] {
            let v = DataView::new(&buf[..cut]);
            prop_assert_eq!(v.is_some(), cut >= topic_end, "cut {}", cut);
            if let Some(v) = v {
                prop_assert_eq!((v.seq(), v.topic(), v.payload()), (seq, t.as_bytes(), &p[..cut - topic_end]));
            }
        }
        let mut m = DataViewMut::new(&mut buf).expect("a DATA frame");
        m.set_seq(seq2);
        m.set_ts_ns(ts2);
        prop_assert_eq!(
            decode_server(&buf, MAX),
            Ok(Decoded::Frame {
                frame: ServerFrame::Data { seq: seq2, ts_ns: ts2, topic: &t, payload: &p },
                consumed: n,
            })
        );
    }

    #[test]
    fn data_view_agrees_on_frame_like_bytes(bytes in frame_like_bytes()) {
        let v = DataView::new(&bytes);
        // Never panics, and never reads past the frame or the buffer.
        if let Some(v) = v {
            prop_assert!(DATA_HEADER_LEN + v.topic().len() + v.payload().len() <= bytes.len());
            let _ = (v.seq(), v.ts_ns());
        }
        if let Ok(Decoded::Frame { frame: ServerFrame::Data { seq, ts_ns, topic, payload }, .. }) =
            decode_server(&bytes, u32::MAX)
        {
            let v = v.expect("decode_server found DATA");
            prop_assert_eq!((v.seq(), v.ts_ns(), v.topic(), v.payload()), (seq, ts_ns, topic.as_bytes(), payload));
        }
    }
}

// ---------------------------------------------------------------- framing

#[test]
fn two_frames_back_to_back_decode_one_at_a_time() {
    let mut buf = encode_client(&ClientFrame::Subscribe { topic: "a/b" });
    let first = buf.len();
    ClientFrame::Publish {
        topic: "a/b",
        payload: b"hello",
    }
    .encode(&mut buf);
    let second = buf.len() - first;

    let (f, n) = client_ok(&buf);
    assert_eq!(f, ClientFrame::Subscribe { topic: "a/b" });
    assert_eq!(n, first);
    let (f, n) = client_ok(&buf[first..]);
    assert_eq!(
        f,
        ClientFrame::Publish {
            topic: "a/b",
            payload: b"hello"
        }
    );
    assert_eq!(n, second);
    assert_eq!(first + second, buf.len());
    assert_eq!(
        decode_client(&buf[first + second..], MAX),
        Ok(Decoded::Incomplete { need: 4 })
    );
}

#[test]
fn need_grows_with_what_the_header_tells() {
    let bytes = encode_client(&ClientFrame::Publish {
        topic: "t",
        payload: &[9; 100],
    });
    assert_eq!(decode_client(&[], MAX), Ok(Decoded::Incomplete { need: 4 }));
    assert_eq!(
        decode_client(&bytes[..3], MAX),
        Ok(Decoded::Incomplete { need: 4 })
    );
    assert_eq!(
        decode_client(&bytes[..4], MAX),
        Ok(Decoded::Incomplete { need: 8 })
    );
    assert_eq!(
        decode_client(&bytes[..8], MAX),
        Ok(Decoded::Incomplete { need: bytes.len() })
    );
}

#[test]
fn smallest_frames() {
    assert_eq!(
        client_ok(&raw(4, 0x04, 0, 0, &[])),
        (ClientFrame::Ping { payload: &[] }, 8)
    );
    assert_eq!(
        client_ok(&raw(4, 0x05, 0, 0, &[])),
        (ClientFrame::Auth { token: &[] }, 8)
    );
    assert_eq!(
        decode_server(&raw(4, 0x15, 0, 0, &[]), MAX),
        Ok(Decoded::Frame {
            frame: ServerFrame::AuthOk,
            consumed: 8
        })
    );
    assert_eq!(ServerFrame::AuthOk.encoded_len(), HEADER_LEN);
}

#[test]
fn max_frame_is_compared_with_len() {
    // len == max_frame is allowed; the total on the wire is 4 more.
    let payload = vec![1u8; 100 - 4 - 1];
    let bytes = frame(0x01, &[], b"t", &payload);
    assert_eq!(bytes.len(), 104);
    assert!(matches!(
        decode_client(&bytes, 100),
        Ok(Decoded::Frame { consumed: 104, .. })
    ));
    assert_eq!(
        decode_client(&bytes, 99).unwrap_err().code,
        ErrorCode::TooLarge
    );
}

#[test]
fn wire_layout_is_little_endian() {
    let mut out = [0u8; 64];
    let n = encode_data(
        &mut out,
        0x0102030405060708,
        0x1112131415161718,
        b"ab",
        b"xyz",
    );
    assert_eq!(
        &out[..n],
        &[
            25, 0, 0, 0, // len: 29 bytes in all
            0x10, 0, 2, 0, // kind, flags, topic_len
            8, 7, 6, 5, 4, 3, 2, 1, // seq
            0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, // ts_ns
            b'a', b'b', b'x', b'y', b'z',
        ][..]
    );
    let err = encode_server(&ServerFrame::Error {
        code: 7,
        topic: Some("t"),
        message: "no",
    });
    assert_eq!(err, [9, 0, 0, 0, 0x1F, 0, 1, 0, 7, 0, b't', b'n', b'o']);
    let gap = encode_server(&ServerFrame::Gap {
        topic: "ab",
        message: "why",
    });
    assert_eq!(
        gap,
        [9, 0, 0, 0, 0x16, 0, 2, 0, b'a', b'b', b'w', b'h', b'y']
    );
}

#[test]
#[should_panic]
fn encode_data_panics_on_a_short_buffer() {
    let mut out = [0u8; 27];
    encode_data(&mut out, 1, 2, b"abc", b"x");
}

#[test]
#[should_panic]
fn encode_to_slice_panics_on_a_short_buffer() {
    let mut out = [0u8; 7];
    ServerFrame::AuthOk.encode_to_slice(&mut out);
}

// ---------------------------------------------------------------- error paths

#[test]
fn len_below_4_is_malformed_from_the_first_4_bytes() {
    for len in 0u32..4 {
        let e = client_err(&len.to_le_bytes());
        assert_eq!(e.code, ErrorCode::Malformed, "len {len}");
        assert_eq!(server_err(&len.to_le_bytes()).code, ErrorCode::Malformed);
    }
}

#[test]
fn len_over_max_is_too_large_before_the_frame_arrives() {
    let bytes = (MAX + 1).to_le_bytes();
    assert_eq!(client_err(&bytes).code, ErrorCode::TooLarge);
    assert_eq!(server_err(&bytes).code, ErrorCode::TooLarge);
    assert_eq!(
        client_err(&u32::MAX.to_le_bytes()).code,
        ErrorCode::TooLarge
    );
    // A small configured limit.
    assert_eq!(
        decode_client(&17u32.to_le_bytes(), 16).unwrap_err().code,
        ErrorCode::TooLarge
    );
}

#[test]
fn nonzero_flags_is_unknown_kind_from_the_header() {
    for flags in [1u8, 0x80, 0xFF] {
        let bytes = raw(5, 0x02, flags, 1, &[]);
        assert_eq!(client_err(&bytes).code, ErrorCode::UnknownKind);
        let bytes = raw(4, 0x15, flags, 0, &[]);
        assert_eq!(server_err(&bytes).code, ErrorCode::UnknownKind);
    }
}

#[test]
fn reserved_kinds_are_unknown() {
    for kind in 0..=u8::MAX {
        let bytes = raw(4, kind, 0, 0, &[]);
        match Kind::from_u8(kind) {
            Some(k) => {
                assert_eq!(k as u8, kind);
                assert_eq!(k.is_client_to_server(), kind < 0x10);
            }
            None => {
                assert_eq!(client_err(&bytes).code, ErrorCode::UnknownKind, "{kind:#x}");
                assert_eq!(server_err(&bytes).code, ErrorCode::UnknownKind, "{kind:#x}");
            }
        }
    }
    for kind in [0x00, 0x06, 0x11, 0x17, 0x1E, 0x20, 0xFF] {
        assert_eq!(Kind::from_u8(kind), None);
    }
    assert_eq!(Kind::from_u8(0x16), Some(Kind::Gap));
}

#[test]
fn server_kinds_sent_by_a_client_are_unknown() {
    for kind in [0x10u8, 0x12, 0x13, 0x14, 0x15, 0x16, 0x1F] {
        let e = client_err(&raw(4, kind, 0, 0, &[]));
        assert_eq!(e.code, ErrorCode::UnknownKind, "{kind:#x}");
    }
    for kind in [0x01u8, 0x02, 0x03, 0x04, 0x05] {
        let e = server_err(&raw(4, kind, 0, 0, &[]));
        assert_eq!(e.code, ErrorCode::UnknownKind, "{kind:#x}");
    }
}

#[test]
fn topic_len_on_a_kind_without_topic_is_malformed() {
    // From the header alone, before the rest arrives.
    let e = client_err(&raw(7, 0x04, 0, 3, &[]));
    assert_eq!(e.code, ErrorCode::Malformed);
    assert_eq!(e.reason, "topic_len is not 0 on a kind without a topic");
    assert_eq!(
        client_err(&frame(0x04, &[], b"abc", &[])).code,
        ErrorCode::Malformed
    );
    assert_eq!(
        client_err(&frame(0x05, &[], b"abc", b"tok")).code,
        ErrorCode::Malformed
    );
    for kind in [0x14u8, 0x15] {
        assert_eq!(
            server_err(&frame(kind, &[], b"abc", &[])).code,
            ErrorCode::Malformed
        );
    }
}

#[test]
fn topic_len_past_the_end_is_malformed() {
    let e = client_err(&raw(4 + 3, 0x02, 0, 5, b"abc"));
    assert_eq!(e.code, ErrorCode::Malformed);
    assert_eq!(
        e.to_string(),
        "malformed frame: topic_len runs past the end of the frame"
    );
    // Decided from the header: the topic bytes need not have arrived.
    assert_eq!(
        client_err(&raw(4, 0x01, 0, 1, &[])).code,
        ErrorCode::Malformed
    );
    // Fixed fields count too: a DATA whose len covers only the topic.
    assert_eq!(
        server_err(&raw(4 + 16, 0x10, 0, 8, &[0; 16])).code,
        ErrorCode::Malformed
    );
}

#[test]
fn len_too_short_for_fixed_fields_is_malformed() {
    assert_eq!(
        server_err(&raw(4 + 15, 0x10, 0, 0, &[0; 15])).code,
        ErrorCode::Malformed
    );
    assert_eq!(
        server_err(&raw(4 + 8, 0x12, 0, 0, &[0; 8])).code,
        ErrorCode::Malformed
    );
    assert_eq!(
        server_err(&raw(4 + 1, 0x1F, 0, 0, &[0])).code,
        ErrorCode::Malformed
    );
}

#[test]
fn empty_topic_is_bad_topic() {
    for kind in [0x01u8, 0x02, 0x03] {
        let e = client_err(&raw(4, kind, 0, 0, &[]));
        assert_eq!(e.code, ErrorCode::BadTopic, "{kind:#x}");
    }
    // A PUBLISH whose payload would otherwise be read as the topic.
    assert_eq!(
        client_err(&frame(0x01, &[], b"", b"msg")).code,
        ErrorCode::BadTopic
    );
    assert_eq!(
        server_err(&frame(0x10, &[0; 16], b"", b"m")).code,
        ErrorCode::BadTopic
    );
    // A GAP, whose message would otherwise be read as the topic.
    assert_eq!(
        server_err(&frame(0x16, &[], b"", b"why")).code,
        ErrorCode::BadTopic
    );
    assert_eq!(validate_topic(b"").unwrap_err().code, ErrorCode::BadTopic);
}

#[test]
fn topic_of_256_bytes_is_bad_topic() {
    let long = vec![b'a'; MAX_TOPIC_LEN + 1];
    assert_eq!(
        client_err(&frame(0x02, &[], &long, &[])).code,
        ErrorCode::BadTopic
    );
    assert_eq!(
        client_err(&frame(0x01, &[], &long, b"x")).code,
        ErrorCode::BadTopic
    );
    assert_eq!(validate_topic(&long).unwrap_err().code, ErrorCode::BadTopic);
    // 255 is fine.
    let ok = vec![b'a'; MAX_TOPIC_LEN];
    assert!(decode_client(&frame(0x02, &[], &ok, &[]), MAX).is_ok());
}

#[test]
fn space_or_control_character_in_topic_is_bad_topic() {
    for t in [
        &b"a b"[..],
        b" ab",
        b"ab ",
        b"a\x00b",
        b"a\x1fb",
        b"a\tb",
        b"a\nb",
        b"a\x7fb",
    ] {
        let e = client_err(&frame(0x02, &[], t, &[]));
        assert_eq!(e.code, ErrorCode::BadTopic, "{t:?}");
        assert_eq!(validate_topic(t).unwrap_err().code, ErrorCode::BadTopic);
    }
    // Non-ASCII is fine, including U+0085 and U+00A0 (not ASCII controls or spaces).
    for t in ["é/中/🦀", "a\u{85}b", "a\u{a0}b", "~!#$%"] {
        assert_eq!(validate_topic(t.as_bytes()), Ok(t));
    }
}

#[test]
fn invalid_utf8_topic_is_bad_topic() {
    for t in [
        &b"\xff"[..],
        b"a\xc3",
        b"\xe4\xb8",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
    ] {
        let e = client_err(&frame(0x01, &[], t, b"payload"));
        assert_eq!(e.code, ErrorCode::BadTopic, "{t:?}");
        assert_eq!(e.reason, "topic is not valid UTF-8");
    }
}

#[test]
fn bad_topic_is_found_before_the_payload_arrives() {
    let bytes = frame(0x01, &[], b"a b", &[0; 1000]);
    assert_eq!(client_err(&bytes[..11]).code, ErrorCode::BadTopic);
    // ...but not before the topic has arrived.
    assert_eq!(
        decode_client(&bytes[..10], MAX),
        Ok(Decoded::Incomplete { need: bytes.len() })
    );
}

#[test]
fn payload_on_subscribe_or_unsubscribe_is_malformed() {
    for kind in [0x02u8, 0x03] {
        let bytes = frame(kind, &[], b"topic", b"x");
        assert_eq!(client_err(&bytes).code, ErrorCode::Malformed, "{kind:#x}");
        // Known from the header.
        assert_eq!(client_err(&bytes[..8]).code, ErrorCode::Malformed);
    }
    for kind in [0x12u8, 0x13] {
        let fixed: &[u8] = if kind == 0x12 { &[0; 16] } else { &[] };
        let bytes = frame(kind, fixed, b"topic", b"x");
        assert_eq!(server_err(&bytes).code, ErrorCode::Malformed, "{kind:#x}");
    }
    assert_eq!(
        server_err(&frame(0x15, &[], &[], b"x")).code,
        ErrorCode::Malformed
    );
}

#[test]
fn ping_payload_of_65_bytes_is_malformed() {
    let bytes = frame(0x04, &[], &[], &[0; MAX_PING_PAYLOAD + 1]);
    let e = client_err(&bytes);
    assert_eq!(e.code, ErrorCode::Malformed);
    assert_eq!(client_err(&bytes[..8]).code, ErrorCode::Malformed);
    let pong = frame(0x14, &[], &[], &[0; MAX_PING_PAYLOAD + 1]);
    assert_eq!(server_err(&pong).code, ErrorCode::Malformed);
    // 64 is fine.
    let ok = frame(0x04, &[], &[], &[0; MAX_PING_PAYLOAD]);
    assert_eq!(
        client_ok(&ok),
        (
            ClientFrame::Ping {
                payload: &[0; MAX_PING_PAYLOAD]
            },
            ok.len()
        )
    );
}

#[test]
fn error_message_must_be_utf8() {
    let bytes = frame(0x1F, &1u16.to_le_bytes(), &[], b"bad \xff");
    assert_eq!(server_err(&bytes).code, ErrorCode::Malformed);
    // The topic of an ERROR is validated when present.
    let bytes = frame(0x1F, &7u16.to_le_bytes(), b"a b", b"too many");
    assert_eq!(server_err(&bytes).code, ErrorCode::BadTopic);
    // Unknown codes still decode; the caller maps them with ErrorCode::from_u16.
    let bytes = frame(0x1F, &999u16.to_le_bytes(), &[], b"future");
    assert_eq!(
        decode_server(&bytes, MAX),
        Ok(Decoded::Frame {
            frame: ServerFrame::Error {
                code: 999,
                topic: None,
                message: "future"
            },
            consumed: bytes.len()
        })
    );
}

#[test]
fn gap_topic_is_required_and_checked_and_its_message_must_be_utf8() {
    // The smallest GAP: a 1-byte topic, no message.
    let bytes = frame(0x16, &[], b"t", b"");
    assert_eq!(
        decode_server(&bytes, MAX),
        Ok(Decoded::Frame {
            frame: ServerFrame::Gap {
                topic: "t",
                message: ""
            },
            consumed: 9
        })
    );
    // A bad topic is found before the message arrives.
    let bytes = frame(0x16, &[], b"a b", b"relay reconnected");
    assert_eq!(server_err(&bytes[..11]).code, ErrorCode::BadTopic);
    let long = vec![b'a'; MAX_TOPIC_LEN + 1];
    assert_eq!(
        server_err(&frame(0x16, &[], &long, b"x")).code,
        ErrorCode::BadTopic
    );
    assert_eq!(
        server_err(&frame(0x16, &[], b"\xff", b"x")).code,
        ErrorCode::BadTopic
    );
    // topic_len past the end, known from the header.
    assert_eq!(
        server_err(&raw(4 + 2, 0x16, 0, 3, b"ab")).code,
        ErrorCode::Malformed
    );
    // The message is text for people: UTF-8, else malformed.
    let e = server_err(&frame(0x16, &[], b"t", b"lost \xff"));
    assert_eq!(e.code, ErrorCode::Malformed);
    assert_eq!(e.reason, "GAP message is not valid UTF-8");
    // Not UTF-8 is decided on the whole frame only: a prefix is incomplete.
    let bytes = frame(0x16, &[], b"t", b"lost \xff and more");
    assert_eq!(
        decode_server(&bytes[..bytes.len() - 1], MAX),
        Ok(Decoded::Incomplete { need: bytes.len() })
    );
    // Sent by a client, GAP is an unknown kind, whatever follows.
    assert_eq!(
        client_err(&frame(0x16, &[], b"t", b"x")).code,
        ErrorCode::UnknownKind
    );
}

// ---------------------------------------------------------------- error codes

#[test]
fn error_codes_round_trip_and_close() {
    for c in 0..=u16::MAX {
        match ErrorCode::from_u16(c) {
            Some(code) => {
                assert!((1..=9).contains(&c));
                assert_eq!(code as u16, c);
                assert_eq!(code.as_u16(), c);
                assert_eq!(code.closes_connection(), c != 7);
                assert_eq!(code.ws_close_code().is_some(), c != 7);
            }
            None => assert!(!(1..=9).contains(&c)),
        }
    }
    assert_eq!(ErrorCode::TooLarge.ws_close_code(), Some(1009));
    assert_eq!(ErrorCode::SlowConsumer.ws_close_code(), Some(1008));
    assert_eq!(ErrorCode::ShuttingDown.ws_close_code(), Some(1001));
    assert_eq!(ErrorCode::BadTopic.ws_close_code(), Some(1002));
    assert_eq!(ErrorCode::Incomplete.ws_close_code(), Some(1008));
}

#[test]
fn proto_error_is_an_error() {
    let e: Box<dyn std::error::Error> =
        Box::new(ProtoError::new(ErrorCode::BadTopic, "topic is empty"));
    assert_eq!(e.to_string(), "bad topic: topic is empty");
}

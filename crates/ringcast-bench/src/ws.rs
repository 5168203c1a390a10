//! ringcast over WebSocket (`--proto ringcast-ws`), the client side the
//! generator needs, without I/O: the upgrade request and its key, masked
//! client messages that each carry one native frame, and a lean parser of
//! what the server sends.
//!
//! The parser leans on what PROTOCOL.md ("Transports") promises of server
//! messages: unmasked and unfragmented, so each WebSocket frame is a whole
//! message and its payload is exactly one native frame. It is stateless
//! like the other protocols' parsers ([`super::wire::Proto::parse`]): one
//! event from the start of a buffer, or "need more bytes", and it borrows
//! the native frame in place, with no reassembly buffer and no copy (the
//! engine's [`ringcast_proto::ws::frame::Decoder`] would copy every message into its
//! own buffer first). Anything else the server could send is refused as a
//! broken stream: a masked or fragmented frame, reserved bits or opcodes, a
//! text message, a control frame over 125 bytes, a message that holds
//! anything but one whole native frame.
//!
//! The handshake itself is `ringcast_proto::ws::handshake`'s client side
//! ([`client_request`], [`ringcast_proto::ws::handshake::check_response`]), with a
//! key derived from the subscriber's index: a load generator needs no
//! randomness, and the server only checks that the key is 16 bytes.

use super::wire::{parse_ringcast, Event, Prefix, Proto};
use ringcast_proto::ws::frame::{self, Opcode};
use ringcast_proto::ws::handshake::{self, client_key, client_request};

/// Bits of the first header byte.
const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
/// The mask bit of the second header byte.
const MASK_BIT: u8 = 0x80;

/// The `Sec-WebSocket-Key` of connection `index`: 16 bytes derived from it
/// (not random; see the module documentation).
pub fn key_for(index: u64) -> String {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&index.to_le_bytes());
    nonce[8..].copy_from_slice(
        &(index ^ 0x9E37_79B9_7F4A_7C15)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
            .to_le_bytes(),
    );
    client_key(nonce)
}

/// The mask key for a message sent on connection `index`.
pub fn mask_for(index: u64) -> [u8; 4] {
    let m = index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((m >> 32) as u32).to_le_bytes()
}

/// The upgrade request of connection `index` to `host` (the `Host` value,
/// `ADDR:PORT`), offering `ringcast.v1`.
pub fn upgrade_request(host: &str, index: u64, out: &mut Vec<u8>) {
    let key = key_for(index);
    out.extend_from_slice(client_request(host, handshake::PATH, &key, None).as_bytes());
}

/// Checks the server's 101 at the start of `buf` for connection `index`:
/// the bytes it used, `None` while incomplete, or why it was refused.
pub fn check_upgrade_response(buf: &[u8], index: u64) -> Result<Option<usize>, String> {
    handshake::check_response(buf, &key_for(index))
}

/// Appends one masked, final binary message holding the native frame that
/// `encode` writes.
pub fn encode_message(out: &mut Vec<u8>, mask: [u8; 4], encode: impl FnOnce(&mut Vec<u8>)) {
    let mut native = Vec::with_capacity(64);
    encode(&mut native);
    frame::encode_client_frame(out, Opcode::Binary, &native, mask, true);
}

/// Appends the pong for a server ping with `payload`.
pub fn encode_pong(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    frame::encode_client_frame(out, Opcode::Pong, payload, mask, true);
}

/// A server frame's header: opcode, header bytes, payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    op: Opcode,
    head: usize,
    len: usize,
}

/// The header at the start of `buf`, `None` while incomplete; an error for
/// anything a ringcast server never sends.
fn header(buf: &[u8]) -> Result<Option<Header>, String> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        if let Some(&b0) = buf.first() {
            check_first(b0)?;
        }
        return Ok(None);
    };
    let op = check_first(b0)?;
    if b1 & MASK_BIT != 0 {
        return Err("WebSocket: the server sent a masked frame".into());
    }
    if op.is_control() && usize::from(b1 & 0x7F) > frame::MAX_CONTROL_PAYLOAD {
        return Err("WebSocket: control frame over 125 bytes".into());
    }
    let (head, len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (4, usize::from(u16::from_be_bytes([b[0], b[1]]))),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let n = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if n >> 63 != 0 {
                    return Err("WebSocket: frame length with its top bit set".into());
                }
                let n = usize::try_from(n)
                    .map_err(|_| format!("WebSocket: frame of {n} bytes is too large"))?;
                (10, n)
            }
            None => return Ok(None),
        },
        n => (2, usize::from(n)),
    };
    Ok(Some(Header { op, head, len }))
}

/// The first header byte: final, no reserved bits, a binary or control opcode.
fn check_first(b0: u8) -> Result<Opcode, String> {
    if b0 & RSV != 0 {
        return Err(format!("WebSocket: reserved bits set ({b0:#04x})"));
    }
    let op = Opcode::from_u8(b0 & 0x0F)
        .ok_or_else(|| format!("WebSocket: reserved opcode {:#x}", b0 & 0x0F))?;
    if b0 & FIN == 0 || op == Opcode::Continuation {
        return Err("WebSocket: the server sent a fragmented message".into());
    }
    if op == Opcode::Text {
        return Err("WebSocket: the server sent a text message".into());
    }
    Ok(op)
}

/// One event from the start of `buf` and the bytes it used (a whole
/// WebSocket frame); `None` when more bytes are needed.
///
/// A binary message gives the event of its native frame; a ping
/// [`Event::Ping`] with its payload (answer with [`encode_pong`]); a close
/// [`Event::Close`]; a WebSocket pong [`Event::Other`] ([`Event::Pong`] is
/// the native PONG, in a binary message).
pub fn parse(buf: &[u8]) -> Result<Option<(Event<'_>, usize)>, String> {
    let Some(h) = header(buf)? else {
        return Ok(None);
    };
    let Some(payload) = buf.get(h.head..h.head + h.len) else {
        return Ok(None);
    };
    let event = match h.op {
        Opcode::Binary => match parse_ringcast(payload)? {
            Some((event, used)) if used == payload.len() => event,
            _ => {
                return Err(format!(
                    "WebSocket: a {}-byte message does not hold exactly one ringcast frame",
                    payload.len()
                ))
            }
        },
        Opcode::Ping => Event::Ping(payload),
        Opcode::Pong => Event::Other,
        Opcode::Close => Event::Close(describe_close(payload)),
        Opcode::Continuation | Opcode::Text => unreachable!("refused by check_first"),
    };
    Ok(Some((event, h.head + h.len)))
}

/// A close frame's payload for people: `1001 idle timeout`.
fn describe_close(payload: &[u8]) -> String {
    match payload {
        [] => "WebSocket close without a code".into(),
        [a, b, reason @ ..] => format!(
            "WebSocket close {}{}{}",
            u16::from_be_bytes([*a, *b]),
            if reason.is_empty() { "" } else { " " },
            String::from_utf8_lossy(reason)
        ),
        [_] => "WebSocket close with a 1-byte payload".into(),
    }
}

/// For a binary message whose WebSocket header and DATA head are in `buf`:
/// where the payload starts and the message's total length (see
/// [`Proto::data_prefix`]); `None` for anything else.
pub fn data_prefix(buf: &[u8]) -> Option<Prefix> {
    let h = header(buf).ok()??;
    if h.op != Opcode::Binary {
        return None;
    }
    let p = Proto::Ringcast.data_prefix(&buf[h.head..])?;
    (p.total == h.len).then_some(Prefix {
        seq: p.seq,
        head: h.head + p.head,
        total: h.head + h.len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_proto::native::{decode_client, ClientFrame, Decoded, ServerFrame};
    use ringcast_proto::ws::frame::{
        close_payload, encode_server_frame, Decoder, Event as WsEvent, Role,
    };

    fn native(f: ServerFrame<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        f.encode(&mut out);
        out
    }

    fn message(native: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_server_frame(&mut out, Opcode::Binary, native);
        out
    }

    /// The server frames of a short session, and the native frames inside
    /// its binary messages (what the native protocol would have carried).
    fn session() -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut natives = vec![native(ServerFrame::SubAck {
            next_seq: 3,
            epoch: 9,
            topic: "bench.x.0",
        })];
        // Payload sizes around the 2-, 4- and 10-byte header boundaries.
        for (i, n) in [16usize, 100, 125, 126, 200, 65_535, 65_536, 70_000]
            .iter()
            .enumerate()
        {
            let payload: Vec<u8> = (0..*n).map(|j| (j * 31 + i) as u8).collect();
            natives.push(native(ServerFrame::Data {
                seq: 3 + i as u64,
                ts_ns: 77,
                topic: "bench.x.0",
                payload: &payload,
            }));
        }
        natives.push(native(ServerFrame::Pong { payload: b"" }));
        natives.push(native(ServerFrame::Error {
            code: 6,
            topic: None,
            message: "slow consumer",
        }));
        let mut wire = Vec::new();
        for (i, n) in natives.iter().enumerate() {
            wire.extend_from_slice(&message(n));
            if i == 2 {
                encode_server_frame(&mut wire, Opcode::Ping, b"ringcast");
                encode_server_frame(&mut wire, Opcode::Pong, b"");
            }
        }
        encode_server_frame(
            &mut wire,
            Opcode::Close,
            &close_payload(1008, "slow consumer"),
        );
        (wire, natives)
    }

    /// An event for comparison: DATA by its seq, length and a hash of
    /// its payload (formatting 70 KB payloads thousands of times is slow).
    fn summary(ev: &Event<'_>) -> String {
        match ev {
            Event::Data { seq, payload } => {
                let hash = payload.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                format!("Data {seq:?} {} {hash:x}", payload.len())
            }
            other => format!("{other:?}"),
        }
    }

    /// Parses `stream` fed in pieces cut at `cuts`, keeping unconsumed
    /// bytes like a subscriber's partial buffer; events as [`summary`]s.
    fn events_split_at(stream: &[u8], cuts: &[usize]) -> Vec<String> {
        let mut pending = Vec::new();
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&stream.len())) {
            pending.extend_from_slice(&stream[from..to]);
            from = to;
            let mut at = 0;
            while let Some((ev, used)) = parse(&pending[at..]).unwrap() {
                out.push(summary(&ev));
                at += used;
            }
            pending.drain(..at);
        }
        assert!(pending.is_empty(), "{} bytes left over", pending.len());
        out
    }

    #[test]
    fn binary_messages_give_the_native_frames_events() {
        let (wire, natives) = session();
        let mut expected: Vec<String> = natives
            .iter()
            .map(|n| {
                let (ev, used) = Proto::Ringcast.parse(n).unwrap().unwrap();
                assert_eq!(used, n.len());
                summary(&ev)
            })
            .collect();
        expected.insert(3, summary(&Event::Ping(b"ringcast")));
        expected.insert(4, summary(&Event::Other));
        expected.push(summary(&Event::Close(
            "WebSocket close 1008 slow consumer".into(),
        )));
        assert_eq!(events_split_at(&wire, &[]), expected);
        // The engine's client-role decoder reads the same stream to the
        // same native frames.
        let mut dec = Decoder::new(Role::Client, 1 << 20);
        let mut at = 0;
        let mut messages = Vec::new();
        while at < wire.len() {
            let (used, ev) = dec.decode(&wire[at..]).unwrap();
            at += used;
            if let Some(WsEvent::Message(m)) = ev {
                messages.push(m.to_vec());
            }
        }
        assert_eq!(messages, natives);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let (wire, _) = session();
        let whole = events_split_at(&wire, &[]);
        // One byte at a time: every header and payload cut everywhere.
        let every: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(events_split_at(&wire, &every), whole);
        // One cut, at every byte of the small frames and the ends of the
        // big ones, and every 251st byte in their middles.
        for c in (0..=wire.len()).filter(|&c| c < 2_000 || c % 251 == 0 || wire.len() - c < 2_000) {
            assert_eq!(events_split_at(&wire, &[c]), whole, "cut at {c}");
        }
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let m = message(&native(ServerFrame::Data {
            seq: 1,
            ts_ns: 2,
            topic: "t",
            payload: &[5; 300],
        }));
        for end in 0..m.len() {
            assert_eq!(parse(&m[..end]), Ok(None), "prefix of {end}");
        }
        assert_eq!(parse(&m).unwrap().unwrap().1, m.len());
    }

    #[test]
    fn what_a_server_never_sends_is_refused() {
        let data = native(ServerFrame::Data {
            seq: 1,
            ts_ns: 2,
            topic: "t",
            payload: &[5; 20],
        });
        let refused = |wire: &[u8], needle: &str| {
            let e = parse(wire).unwrap_err();
            assert!(e.contains(needle), "{e} lacks {needle}");
        };
        // Masked.
        let mut masked = Vec::new();
        frame::encode_client_frame(&mut masked, Opcode::Binary, &data, [1, 2, 3, 4], true);
        refused(&masked, "masked");
        // Fragmented, and a continuation.
        let mut first = message(&data);
        first[0] &= !FIN;
        refused(&first[..1], "fragmented");
        refused(&[0x80], "fragmented");
        // Text, reserved bits, reserved opcode: refused from the first byte.
        refused(&[0x81], "text");
        refused(&[0xC2], "reserved bits");
        refused(&[0x83], "reserved opcode");
        // A control frame over 125 bytes.
        refused(&[0x89, 126], "control frame");
        // Two native frames in one message, half a frame, and a bad frame.
        let mut two = data.clone();
        two.extend_from_slice(&data);
        refused(&message(&two), "exactly one");
        refused(&message(&data[..data.len() - 1]), "exactly one");
        refused(&message(&[0; 8]), "undecodable");
        // A 64-bit length with its top bit set.
        refused(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0], "top bit");
    }

    #[test]
    fn prefixes_of_large_messages_point_at_their_payloads() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let n = native(ServerFrame::Data {
            seq: 42,
            ts_ns: 1,
            topic: "bench.x.0",
            payload: &payload,
        });
        let m = message(&n);
        let head = 10 + ringcast_proto::native::DATA_HEADER_LEN + "bench.x.0".len();
        let p = data_prefix(&m[..head + 16]).unwrap();
        assert_eq!(
            p,
            Prefix {
                seq: Some(42),
                head,
                total: m.len()
            }
        );
        assert_eq!(&m[p.head..p.head + 16], &payload[..16]);
        assert_eq!(data_prefix(&m[..head - 1]), None);
        // Not a binary message, or not DATA: nothing claimed.
        let mut ping = Vec::new();
        encode_server_frame(&mut ping, Opcode::Ping, b"x");
        assert_eq!(data_prefix(&ping), None);
        let ack = message(&native(ServerFrame::SubAck {
            next_seq: 1,
            epoch: 1,
            topic: "t",
        }));
        assert_eq!(data_prefix(&ack), None);
    }

    #[test]
    fn client_messages_are_masked_single_native_frames() {
        let mut wire = Vec::new();
        Proto::RingcastWs.encode_subscribe("bench.x.3", 17, &mut wire);
        Proto::RingcastWs.encode_ping(&mut wire);
        Proto::RingcastWs.encode_publish("bench.x.3", b"hello", &mut wire);
        encode_pong(&mut wire, b"ringcast", mask_for(17));
        let mut dec = Decoder::new(Role::Server, 1 << 20);
        let mut at = 0;
        let mut got = Vec::new();
        while at < wire.len() {
            let (used, ev) = dec.decode(&wire[at..]).unwrap();
            at += used;
            match ev {
                Some(WsEvent::Message(m)) => match decode_client(m, 1 << 20).unwrap() {
                    Decoded::Frame { frame, consumed } => {
                        assert_eq!(consumed, m.len());
                        got.push(format!("{frame:?}"));
                    }
                    Decoded::Incomplete { .. } => panic!("half a frame"),
                },
                Some(WsEvent::Pong(p)) => got.push(format!("pong {p:?}")),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            got,
            [
                format!("{:?}", ClientFrame::Subscribe { topic: "bench.x.3" }),
                format!("{:?}", ClientFrame::Ping { payload: &[] }),
                format!(
                    "{:?}",
                    ClientFrame::Publish {
                        topic: "bench.x.3",
                        payload: b"hello"
                    }
                ),
                format!("pong {:?}", b"ringcast"),
            ]
        );
    }

    #[test]
    fn handshake_keys_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1_000u64 {
            let key = key_for(i);
            assert_eq!(key.len(), 24);
            assert!(key.ends_with("=="));
            assert!(seen.insert(key));
        }
        let mut req = Vec::new();
        upgrade_request("127.0.0.1:7401", 5, &mut req);
        let req = String::from_utf8(req).unwrap();
        assert!(req.starts_with("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:7401\r\n"));
        assert!(req.contains(&format!("Sec-WebSocket-Key: {}\r\n", key_for(5))));
        assert!(req.contains("Sec-WebSocket-Protocol: ringcast.v1\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
        // The server's answer to that key is accepted, and only for it.
        let upgrade = handshake::Upgrade {
            accept: handshake::accept_key(key_for(5).as_bytes()),
            subprotocol: true,
        };
        let mut resp = handshake::accept_response(&upgrade);
        let head = resp.len();
        resp.extend_from_slice(&message(&native(ServerFrame::Pong { payload: b"" })));
        assert_eq!(check_upgrade_response(&resp[..head - 1], 5), Ok(None));
        assert_eq!(check_upgrade_response(&resp, 5), Ok(Some(head)));
        assert!(check_upgrade_response(&resp, 6).is_err());
    }
}

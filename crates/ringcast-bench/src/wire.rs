//! The protocols the generator speaks, behind one small interface:
//! what a subscriber sends on connect, how a publish is framed, and the
//! events a parser pulls out of what the server sends. No I/O.
//!
//! Also the layout of the generator's payload, the same for every protocol:
//!
//! ```text
//! offset 0   u64 LE  send time, CLOCK_REALTIME ns (the clock of the kernel's
//!                    receive stamps; system-wide, so a child process compares
//!                    it with its own readings)
//!        8   u64 LE  the generator's per-topic sequence from 1 (the burst
//!                    number in burst mode); bit 63 set on warm-up messages
//!       16   ...     filler up to --size, a pattern that looks like protocol
//!                    text (CRLF, "MSG", "*3", "$7") to prove the parsers go
//!                    by lengths
//! ```

use super::ws;
use ringcast_proto::native::{self as proto, ClientFrame, DataView, Decoded, ServerFrame};

/// Bytes of the generator's header in every payload (and so the least `--size`).
pub const PAYLOAD_HEADER: usize = 16;
/// Bit 63 of the sequence word: a warm-up message, not recorded.
pub const WARMUP_BIT: u64 = 1 << 63;
/// Frame limit the ringcast decoder is given: larger than any server's.
const MAX_FRAME: u32 = 1 << 30;

const FILLER: &[u8] = b"\r\nMSG x 1 3\r\n*3\r\n$7\r\nmessage\r\n";

/// Which server protocol to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// ringcast's native protocol (PROTOCOL.md).
    Ringcast,
    /// ringcast over WebSocket: each binary message one native frame
    /// ([`super::ws`]). Subscribers upgrade first (see
    /// [`Proto::is_websocket`]); the publisher stays on native TCP
    /// ([`Proto::publisher_proto`]).
    RingcastWs,
    /// Redis pub/sub over RESP2.
    Resp,
    /// The NATS text protocol.
    Nats,
}

/// Where a message's payload lies in its frame, from the frame's head alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// ringcast's DATA seq (None for the other protocols).
    pub seq: Option<u64>,
    /// Bytes before the payload.
    pub head: usize,
    /// Bytes in the whole frame (head, payload and any trailer).
    pub total: usize,
}

/// Something a server said, as far as the generator cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A subscription is confirmed; ringcast says which seq comes first.
    Subscribed { first_seq: Option<u64> },
    /// A published message: `seq` is ringcast's DATA seq (None elsewhere).
    Data { seq: Option<u64>, payload: &'a [u8] },
    /// The server pings: answer with [`Proto::encode_pong`], echoing the
    /// bytes (a WebSocket ping's payload; empty for NATS).
    Ping(&'a [u8]),
    /// The answer to our PING.
    Pong,
    /// Something to skip (INFO, +OK, a PUBLISH's receiver count, ...).
    Other,
    /// The server reports an error.
    ServerError(String),
    /// A relaying ringcast node warns that frames published on other nodes
    /// may have been lost (GAP, PROTOCOL.md revision 3); its message.
    Gap(&'a str),
    /// The server closed the WebSocket: its code and reason, for people.
    Close(String),
}

impl Proto {
    /// The name used by `--proto`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ringcast => "ringcast",
            Proto::RingcastWs => "ringcast-ws",
            Proto::Resp => "resp",
            Proto::Nats => "nats",
        }
    }

    /// Parses a `--proto` value.
    pub fn from_name(s: &str) -> Option<Proto> {
        match s {
            "ringcast" => Some(Proto::Ringcast),
            "ringcast-ws" => Some(Proto::RingcastWs),
            "resp" | "redis" => Some(Proto::Resp),
            "nats" => Some(Proto::Nats),
            _ => None,
        }
    }

    /// Whether subscribers speak WebSocket: they connect to the WebSocket
    /// port, send [`super::ws::upgrade_request`] and wait for the 101
    /// before [`Proto::encode_subscribe`].
    pub fn is_websocket(self) -> bool {
        self == Proto::RingcastWs
    }

    /// What the publisher speaks: ringcast-ws publishes over native TCP
    /// (the realistic mix: WebSocket fans out to browsers, a back end
    /// publishes), so the publish path is the same as for ringcast.
    pub fn publisher_proto(self) -> Proto {
        match self {
            Proto::RingcastWs => Proto::Ringcast,
            p => p,
        }
    }

    /// What a new connection sends first (NATS: CONNECT; others nothing;
    /// the WebSocket upgrade is sent by the subscriber itself).
    pub fn encode_hello(self, out: &mut Vec<u8>) {
        if self == Proto::Nats {
            super::nats::encode_connect(out);
        }
    }

    /// Subscribes to `topic` and asks for the proof that it took effect:
    /// ringcast answers SUBACK and Redis a subscribe confirmation
    /// ([`Event::Subscribed`]); NATS confirms nothing, so a PING follows the
    /// SUB and its PONG (after the SUB is processed) is the proof.
    pub fn encode_subscribe(self, topic: &str, sid: u64, out: &mut Vec<u8>) {
        match self {
            Proto::Ringcast => ClientFrame::Subscribe { topic }.encode(out),
            Proto::RingcastWs => ws::encode_message(out, ws::mask_for(sid), |n| {
                ClientFrame::Subscribe { topic }.encode(n)
            }),
            Proto::Resp => super::resp::encode_subscribe(topic, out),
            Proto::Nats => {
                super::nats::encode_sub(topic, sid, out);
                super::nats::encode_ping(out);
            }
        }
    }

    /// Whether `event` is the proof a subscription is in place.
    pub fn confirms_subscription(self, event: &Event<'_>) -> bool {
        match self {
            Proto::Nats => *event == Event::Pong,
            _ => matches!(event, Event::Subscribed { .. }),
        }
    }

    /// A PING, answered by [`Event::Pong`].
    pub fn encode_ping(self, out: &mut Vec<u8>) {
        match self {
            Proto::Ringcast => ClientFrame::Ping { payload: &[] }.encode(out),
            Proto::RingcastWs => ws::encode_message(out, ws::mask_for(0), |n| {
                ClientFrame::Ping { payload: &[] }.encode(n)
            }),
            Proto::Resp => super::resp::encode_ping(out),
            Proto::Nats => super::nats::encode_ping(out),
        }
    }

    /// The answer to a server's ping carrying `payload` (NATS pings
    /// clients; ringcast's WebSocket front pings silent ones).
    pub fn encode_pong(self, payload: &[u8], out: &mut Vec<u8>) {
        match self {
            Proto::Nats => super::nats::encode_pong(out),
            Proto::RingcastWs => ws::encode_pong(out, payload, ws::mask_for(payload.len() as u64)),
            Proto::Ringcast | Proto::Resp => {}
        }
    }

    /// Publishes `payload` on `topic`.
    pub fn encode_publish(self, topic: &str, payload: &[u8], out: &mut Vec<u8>) {
        match self {
            Proto::Ringcast => ClientFrame::Publish { topic, payload }.encode(out),
            Proto::RingcastWs => ws::encode_message(out, ws::mask_for(1), |n| {
                ClientFrame::Publish { topic, payload }.encode(n)
            }),
            Proto::Resp => super::resp::encode_publish(topic, payload, out),
            Proto::Nats => super::nats::encode_pub(topic, payload, out),
        }
    }

    /// One event from the start of `buf` and the bytes it used; `None` when
    /// more bytes are needed; an error when the stream is broken.
    pub fn parse(self, buf: &[u8]) -> Result<Option<(Event<'_>, usize)>, String> {
        match self {
            Proto::Ringcast => parse_ringcast(buf),
            Proto::RingcastWs => ws::parse(buf),
            Proto::Resp => super::resp::parse(buf),
            Proto::Nats => super::nats::parse(buf),
        }
    }
}

impl Proto {
    /// For a message (DATA, `message` push, MSG) whose head is in `buf`:
    /// where its payload starts and how long the whole frame is, so that a
    /// large payload can be skipped after its first bytes instead of being
    /// buffered. Only the head is checked; `None` for anything else or when
    /// the head is incomplete.
    pub fn data_prefix(self, buf: &[u8]) -> Option<Prefix> {
        match self {
            Proto::Ringcast => {
                // DATA with its whole header and topic, under a `len` that covers them.
                let data = DataView::new(buf)?;
                // The frame's size is its `len` prefix, common to every kind
                // (DataView only sees the bytes present).
                let len = u32::from_le_bytes(buf[..proto::LEN_PREFIX].try_into().ok()?);
                Some(Prefix {
                    seq: Some(data.seq()),
                    head: proto::DATA_HEADER_LEN + data.topic().len(),
                    total: proto::LEN_PREFIX + usize::try_from(len).ok()?,
                })
            }
            Proto::RingcastWs => ws::data_prefix(buf),
            Proto::Resp => super::resp::message_prefix(buf).map(|(head, total)| Prefix {
                seq: None,
                head,
                total,
            }),
            Proto::Nats => super::nats::msg_prefix(buf).map(|(head, total)| Prefix {
                seq: None,
                head,
                total,
            }),
        }
    }
}

/// One native server frame's event from the start of `buf`.
pub(super) fn parse_ringcast(buf: &[u8]) -> Result<Option<(Event<'_>, usize)>, String> {
    let decoded = proto::decode_server(buf, MAX_FRAME)
        .map_err(|e| format!("ringcast: undecodable frame from the server: {e:?}"))?;
    let (frame, used) = match decoded {
        Decoded::Frame { frame, consumed } => (frame, consumed),
        Decoded::Incomplete { .. } => return Ok(None),
    };
    let event = match frame {
        ServerFrame::Data { seq, payload, .. } => Event::Data {
            seq: Some(seq),
            payload,
        },
        ServerFrame::SubAck { next_seq, .. } => Event::Subscribed {
            first_seq: Some(next_seq),
        },
        ServerFrame::Pong { .. } => Event::Pong,
        ServerFrame::Error { code, message, .. } => {
            Event::ServerError(format!("ERROR {code}: {message}"))
        }
        // A relaying server's warning that frames from other nodes may be
        // lost: nothing to answer; it is counted, and a loss shows in the
        // delivery counts (the generator knows how many messages it published).
        ServerFrame::Gap { message, .. } => Event::Gap(message),
        ServerFrame::UnsubAck { .. } | ServerFrame::AuthOk => Event::Other,
    };
    Ok(Some((event, used)))
}

/// Fills `payload` (at least [`PAYLOAD_HEADER`] bytes) with the filler
/// pattern; [`stamp`] then writes the header of each message.
pub fn fill_payload(payload: &mut [u8]) {
    for (i, b) in payload.iter_mut().enumerate().skip(PAYLOAD_HEADER) {
        *b = FILLER[(i - PAYLOAD_HEADER) % FILLER.len()];
    }
}

/// Writes the send time and sequence word into a payload's header.
pub fn stamp(payload: &mut [u8], send_ns: u64, seq: u64, warmup: bool) {
    let word = if warmup { seq | WARMUP_BIT } else { seq };
    payload[..8].copy_from_slice(&send_ns.to_le_bytes());
    payload[8..16].copy_from_slice(&word.to_le_bytes());
}

/// The header of a received payload: send time, sequence, warm-up flag;
/// `None` when the payload is too short to be the generator's.
pub fn read_stamp(payload: &[u8]) -> Option<(u64, u64, bool)> {
    if payload.len() < PAYLOAD_HEADER {
        return None;
    }
    let ts = u64::from_le_bytes(payload[..8].try_into().ok()?);
    let word = u64::from_le_bytes(payload[8..16].try_into().ok()?);
    Some((ts, word & !WARMUP_BIT, word & WARMUP_BIT != 0))
}

/// A text-protocol parser (RESP, NATS): an event and the bytes it used,
/// None while incomplete.
#[cfg(test)]
pub(crate) type TextParser = fn(&[u8]) -> Result<Option<(Event<'_>, usize)>, String>;

/// Parses everything in `stream` with `parse`, feeding it in `chunk`-byte
/// pieces as a socket might and keeping unconsumed bytes like a connection's
/// buffer; the events as `Debug` text. For the text-protocol parsers' tests.
#[cfg(test)]
pub(crate) fn events_in_chunks(parse: TextParser, stream: &[u8], chunk: usize) -> Vec<String> {
    let mut pending = Vec::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        pending.extend_from_slice(piece);
        let mut at = 0;
        while let Some((ev, used)) = parse(&pending[at..]).unwrap() {
            out.push(format!("{ev:?}"));
            at += used;
        }
        pending.drain(..at);
    }
    assert!(pending.is_empty(), "left over: {pending:?}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let mut p = vec![0u8; 64];
        fill_payload(&mut p);
        stamp(&mut p, 123_456_789, 42, true);
        assert_eq!(read_stamp(&p), Some((123_456_789, 42, true)));
        stamp(&mut p, 1, 7, false);
        assert_eq!(read_stamp(&p), Some((1, 7, false)));
        assert_eq!(read_stamp(&p[..15]), None);
        assert_eq!(&p[16..18], b"\r\n");
    }

    #[test]
    fn ringcast_events() {
        let mut out = Vec::new();
        ServerFrame::SubAck {
            next_seq: 9,
            epoch: 1,
            topic: "t",
        }
        .encode(&mut out);
        ServerFrame::Data {
            seq: 9,
            ts_ns: 5,
            topic: "t",
            payload: b"0123456789abcdefXY",
        }
        .encode(&mut out);
        ServerFrame::Gap {
            topic: "t",
            message: "relay reconnected",
        }
        .encode(&mut out);
        ServerFrame::Error {
            code: 6,
            topic: None,
            message: "slow consumer",
        }
        .encode(&mut out);
        let p = Proto::Ringcast;
        let (e1, n1) = p.parse(&out).unwrap().unwrap();
        assert_eq!(e1, Event::Subscribed { first_seq: Some(9) });
        assert!(p.confirms_subscription(&e1));
        let (e2, n2) = p.parse(&out[n1..]).unwrap().unwrap();
        assert_eq!(
            e2,
            Event::Data {
                seq: Some(9),
                payload: b"0123456789abcdefXY"
            }
        );
        let (gap, n_gap) = p.parse(&out[n1 + n2..]).unwrap().unwrap();
        assert_eq!(gap, Event::Gap("relay reconnected"));
        let (e3, n3) = p.parse(&out[n1 + n2 + n_gap..]).unwrap().unwrap();
        assert_eq!(e3, Event::ServerError("ERROR 6: slow consumer".into()));
        assert_eq!(n1 + n2 + n_gap + n3, out.len());
        for end in 0..n1 {
            assert_eq!(p.parse(&out[..end]), Ok(None));
        }
        assert!(p.parse(&[0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn prefixes_of_large_messages_point_at_their_payloads() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut ringcast = Vec::new();
        ServerFrame::Data {
            seq: 77,
            ts_ns: 1,
            topic: "bench.x.0",
            payload: &payload,
        }
        .encode(&mut ringcast);
        let mut resp = b"*3\r\n$7\r\nmessage\r\n$9\r\nbench.x.0\r\n$100000\r\n".to_vec();
        resp.extend_from_slice(&payload);
        resp.extend_from_slice(b"\r\n");
        let mut nats = b"MSG bench.x.0 12 100000\r\n".to_vec();
        nats.extend_from_slice(&payload);
        nats.extend_from_slice(b"\r\n");
        for (proto, msg, seq) in [
            (Proto::Ringcast, ringcast, Some(77)),
            (Proto::Resp, resp, None),
            (Proto::Nats, nats, None),
        ] {
            let (event, used) = proto.parse(&msg).unwrap().unwrap();
            assert_eq!(used, msg.len());
            let Event::Data { payload: full, .. } = event else {
                panic!("{proto:?}: not data");
            };
            let head = msg.len() - full.len() - if proto == Proto::Ringcast { 0 } else { 2 };
            // Known from the head and the payload's first 16 bytes alone.
            let p = proto.data_prefix(&msg[..head + 16]).unwrap();
            assert_eq!(
                p,
                Prefix {
                    seq,
                    head,
                    total: msg.len()
                },
                "{proto:?}"
            );
            assert_eq!(&msg[p.head..p.head + 16], &payload[..16]);
            // Before the head is complete, nothing is claimed.
            assert_eq!(proto.data_prefix(&msg[..head - 1]), None, "{proto:?}");
        }
        assert_eq!(Proto::Resp.data_prefix(b":1\r\n"), None);
        assert_eq!(Proto::Nats.data_prefix(b"PING\r\n"), None);
        let mut ack = Vec::new();
        ServerFrame::SubAck {
            next_seq: 1,
            epoch: 1,
            topic: "t",
        }
        .encode(&mut ack);
        assert_eq!(Proto::Ringcast.data_prefix(&ack), None);
    }

    #[test]
    fn names() {
        for p in [Proto::Ringcast, Proto::RingcastWs, Proto::Resp, Proto::Nats] {
            assert_eq!(Proto::from_name(p.name()), Some(p));
        }
        assert_eq!(Proto::from_name("redis"), Some(Proto::Resp));
        assert_eq!(Proto::from_name("mqtt"), None);
        assert!(Proto::Nats.confirms_subscription(&Event::Pong));
        assert!(!Proto::Resp.confirms_subscription(&Event::Pong));
        assert!(Proto::RingcastWs.confirms_subscription(&Event::Subscribed { first_seq: Some(1) }));
        assert_eq!(Proto::RingcastWs.publisher_proto(), Proto::Ringcast);
        assert_eq!(Proto::Nats.publisher_proto(), Proto::Nats);
        assert!(Proto::RingcastWs.is_websocket() && !Proto::Ringcast.is_websocket());
    }
}

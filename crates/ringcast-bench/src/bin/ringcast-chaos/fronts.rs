//! The healthy subscriber's three fronts: a source of DATA for each of the
//! native TCP port, WebSocket (`/ws`, `ringcast.v1`) and Redis (RESP).
//!
//! PROTOCOL.md ("Transports"): a WebSocket subscriber receives each native
//! frame, `seq` and `ts_ns` included, in one unmasked, unfragmented binary
//! message; a Redis subscriber receives a `message` push with the payload
//! only, so the payload carries the publisher's clock (see [`Msg`]).

use ringcast_client::{Client, ClientError};
use ringcast_proto::native::{decode_server, ServerFrame, DEFAULT_MAX_FRAME};
use ringcast_proto::resp::{self, Decoded, PubSubPush};
use ringcast_proto::ws::frame::{encode_client_frame, Opcode};
use ringcast_proto::ws::handshake::{self, check_response, client_key, client_request};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Which port a healthy subscriber is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Front {
    Native,
    Ws,
    Resp,
}

impl Front {
    pub(crate) const ALL: [Front; 3] = [Front::Native, Front::Ws, Front::Resp];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Front::Native => "native",
            Front::Ws => "WS",
            Front::Resp => "RESP",
        }
    }

    /// Its own topic (channel), published natively by the healthy publisher.
    pub(crate) fn topic(self) -> &'static str {
        match self {
            Front::Native => "chaos.healthy",
            Front::Ws => "chaos.healthy.ws",
            Front::Resp => "chaos.healthy.resp",
        }
    }
}

/// One delivery: the frame's `seq` (none over RESP), a timestamp (the
/// frame's `ts_ns`, or over RESP the publisher's clock from the payload)
/// and the payload `PHASE:INDEX:PUBLISHED_NS`.
pub(crate) struct Msg {
    pub(crate) seq: Option<u64>,
    pub(crate) ts_ns: u64,
    pub(crate) payload: Vec<u8>,
}

/// A subscribed connection on one front.
pub(crate) enum Source {
    Native(Client),
    /// Stream and bytes read but not yet parsed.
    Ws(TcpStream, Vec<u8>),
    Resp(TcpStream, Vec<u8>),
}

const READ_TIMEOUT: Duration = Duration::from_millis(50);
const SETUP: Duration = Duration::from_secs(10);

impl Source {
    /// Connects to `front` and subscribes to its topic; the seq its first
    /// DATA will carry (none over RESP).
    pub(crate) fn subscribe(
        front: Front,
        native: SocketAddr,
        http: SocketAddr,
        resp_addr: SocketAddr,
    ) -> Result<(Source, Option<u64>), String> {
        let topic = front.topic();
        match front {
            Front::Native => {
                let mut c = Client::connect(native).map_err(|e| e.to_string())?;
                let ack = c.subscribe(topic).map_err(|e| e.to_string())?;
                c.set_read_timeout(Some(READ_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                Ok((Source::Native(c), Some(ack.next_seq)))
            }
            Front::Ws => {
                let mut s = TcpStream::connect(http).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(READ_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                let key = client_key(*b"ringcast-chaos!!");
                let req = client_request(&http.to_string(), handshake::PATH, &key, None);
                s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
                let mut buf = Vec::new();
                let deadline = Instant::now() + SETUP;
                let used = loop {
                    if let Some(n) = check_response(&buf, &key)? {
                        break n;
                    }
                    fill(&mut s, &mut buf, deadline)?;
                };
                buf.drain(..used);
                let mut sub = Vec::new();
                ringcast_proto::native::ClientFrame::Subscribe { topic }.encode(&mut sub);
                let mut out = Vec::new();
                encode_client_frame(&mut out, Opcode::Binary, &sub, [1, 2, 3, 4], true);
                s.write_all(&out).map_err(|e| e.to_string())?;
                let mut src = Source::Ws(s, buf);
                loop {
                    match src.next_ws()? {
                        Some(Reply::SubAck(seq)) => return Ok((src, Some(seq))),
                        Some(_) => {}
                        None if Instant::now() > deadline => return Err("WS: no SUBACK".into()),
                        None => {}
                    }
                }
            }
            Front::Resp => {
                let mut s = TcpStream::connect(resp_addr).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(READ_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                resp::encode_command(&[b"SUBSCRIBE", topic.as_bytes()], &mut out);
                s.write_all(&out).map_err(|e| e.to_string())?;
                let deadline = Instant::now() + SETUP;
                let mut src = Source::Resp(s, Vec::new());
                loop {
                    match src.next_resp()? {
                        Some(Reply::SubAck(_)) => return Ok((src, None)),
                        Some(_) => {}
                        None if Instant::now() > deadline => {
                            return Err("RESP: no subscribe confirmation".into())
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// The next delivery; `None` when none came within the read timeout.
    pub(crate) fn next(&mut self) -> Result<Option<Msg>, String> {
        match self {
            Source::Native(c) => match c.next_message() {
                Ok(m) => Ok(Some(Msg {
                    seq: Some(m.seq),
                    ts_ns: m.ts_ns,
                    payload: m.payload.to_vec(),
                })),
                Err(ClientError::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e.to_string()),
            },
            Source::Ws(..) => match self.next_ws()? {
                Some(Reply::Data(m)) => Ok(Some(m)),
                _ => Ok(None),
            },
            Source::Resp(..) => match self.next_resp()? {
                Some(Reply::Data(m)) => Ok(Some(m)),
                _ => Ok(None),
            },
        }
    }

    /// One WebSocket message, reading once when none is buffered.
    fn next_ws(&mut self) -> Result<Option<Reply>, String> {
        let Source::Ws(s, buf) = self else {
            unreachable!("next_ws on a WS source")
        };
        // Server frames: unmasked, unfragmented (PROTOCOL.md "Transports").
        let parsed = match (buf.first(), buf.get(1)) {
            (Some(&b0), Some(&b1)) => {
                let (head, len) = match b1 & 0x7F {
                    126 => match buf.get(2..4) {
                        Some(b) => (4, usize::from(u16::from_be_bytes([b[0], b[1]]))),
                        None => (0, 0),
                    },
                    127 => match buf.get(2..10) {
                        Some(b) => (10, u64::from_be_bytes(b.try_into().expect("8")) as usize),
                        None => (0, 0),
                    },
                    n => (2, usize::from(n)),
                };
                (head > 0 && buf.len() >= head + len).then_some((b0 & 0x0F, head, len))
            }
            _ => None,
        };
        let Some((op, head, len)) = parsed else {
            let mut chunk = [0u8; 16384];
            return match s.read(&mut chunk) {
                Ok(0) => Err("WS: connection closed".into()),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(Some(Reply::Other))
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    Ok(None)
                }
                Err(e) => Err(format!("WS: {e}")),
            };
        };
        let payload = buf[head..head + len].to_vec();
        buf.drain(..head + len);
        let reply = match Opcode::from_u8(op) {
            Some(Opcode::Binary) => match decode_server(&payload, DEFAULT_MAX_FRAME) {
                Ok(d) => match d.frame() {
                    Some((
                        ServerFrame::Data {
                            seq,
                            ts_ns,
                            payload,
                            ..
                        },
                        _,
                    )) => Reply::Data(Msg {
                        seq: Some(seq),
                        ts_ns,
                        payload: payload.to_vec(),
                    }),
                    Some((ServerFrame::SubAck { next_seq, .. }, _)) => Reply::SubAck(next_seq),
                    Some((ServerFrame::Error { code, message, .. }, _)) => {
                        return Err(format!("WS: ERROR {code} {message}"))
                    }
                    _ => Reply::Other,
                },
                Err(e) => return Err(format!("WS: bad frame in a message: {e}")),
            },
            Some(Opcode::Ping) => {
                let mut out = Vec::new();
                encode_client_frame(&mut out, Opcode::Pong, &payload, [5, 6, 7, 8], true);
                s.write_all(&out).map_err(|e| format!("WS: pong: {e}"))?;
                Reply::Other
            }
            Some(Opcode::Close) => return Err("WS: closed by the server".into()),
            _ => Reply::Other,
        };
        Ok(Some(reply))
    }

    /// One RESP push or reply, reading once when none is buffered.
    fn next_resp(&mut self) -> Result<Option<Reply>, String> {
        let Source::Resp(s, buf) = self else {
            unreachable!("next_resp on a RESP source")
        };
        let (reply, used) = match resp::decode_reply(buf, 1 << 30) {
            Ok(Decoded::Frame { frame, consumed }) => {
                let reply = match frame.as_pubsub() {
                    Some(PubSubPush::Message { payload, .. }) => Reply::Data(Msg {
                        seq: None,
                        ts_ns: published_ns(payload),
                        payload: payload.to_vec(),
                    }),
                    Some(PubSubPush::Subscribe { .. }) => Reply::SubAck(0),
                    _ => Reply::Other,
                };
                (reply, consumed)
            }
            Ok(Decoded::Incomplete { .. }) => {
                let mut chunk = [0u8; 16384];
                return match s.read(&mut chunk) {
                    Ok(0) => Err("RESP: connection closed".into()),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        Ok(Some(Reply::Other))
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        Ok(None)
                    }
                    Err(e) => Err(format!("RESP: {e}")),
                };
            }
            Err(e) => return Err(format!("RESP: {e}")),
        };
        buf.drain(..used);
        Ok(Some(reply))
    }
}

enum Reply {
    Data(Msg),
    SubAck(u64),
    Other,
}

/// Reads into `buf` once, or fails past `deadline`.
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    match s.read(&mut chunk) {
        Ok(0) => Err("connection closed during setup".into()),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            if Instant::now() > deadline {
                Err("setup timed out".into())
            } else {
                Ok(())
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The `PUBLISHED_NS` field of a healthy payload (0 when absent).
pub(crate) fn published_ns(payload: &[u8]) -> u64 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|t| t.split(':').nth(2)?.parse().ok())
        .unwrap_or(0)
}

/// `(phase, index)` of a healthy payload `PHASE:INDEX[:PUBLISHED_NS]`.
pub(crate) fn phase_index(payload: &[u8]) -> (usize, u64) {
    let text = String::from_utf8_lossy(payload);
    let mut it = text.split(':');
    let phase = it.next().and_then(|p| p.parse::<usize>().ok());
    let index = it.next().and_then(|i| i.parse::<u64>().ok());
    match (phase, index) {
        (Some(p), Some(i)) => (p, i),
        _ => (0, u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::{phase_index, published_ns};

    #[test]
    fn a_healthy_payload_gives_its_phase_index_and_clock() {
        assert_eq!(phase_index(b"1:42:1700000000000000000"), (1, 42));
        assert_eq!(
            published_ns(b"1:42:1700000000000000000"),
            1_700_000_000_000_000_000
        );
        assert_eq!(phase_index(b"2:7"), (2, 7));
        assert_eq!(published_ns(b"2:7"), 0);
        assert_eq!(phase_index(b"garbage"), (0, u64::MAX));
    }
}

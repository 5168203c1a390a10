//! Incremental decoders: one frame from the start of a buffer, no allocation.

use super::kind::{Body, TopicRule};
use super::{
    validate_topic, ClientFrame, DataView, Decoded, ErrorCode, Kind, ProtoError, ServerFrame,
    HEADER_LEN, LEN_PREFIX, MAX_PING_PAYLOAD, MAX_TOPIC_LEN,
};

/// Decodes one client-to-server frame from the start of `buf`.
///
/// Returns [`Decoded::Incomplete`] for any strict prefix of a valid frame, and
/// an error as soon as the bytes seen prove the frame invalid (see the module
/// documentation for the order of the checks). `max_frame` limits `len`.
pub fn decode_client(buf: &[u8], max_frame: u32) -> Result<Decoded<ClientFrame<'_>>, ProtoError> {
    let parts = match split(buf, max_frame, Direction::ClientToServer)? {
        Split::Frame(parts) => parts,
        Split::Incomplete(need) => return Ok(Decoded::Incomplete { need }),
    };
    let frame = match parts.kind {
        Kind::Publish => ClientFrame::Publish {
            topic: required(parts.topic),
            payload: parts.body,
        },
        Kind::Subscribe => ClientFrame::Subscribe {
            topic: required(parts.topic),
        },
        Kind::Unsubscribe => ClientFrame::Unsubscribe {
            topic: required(parts.topic),
        },
        Kind::Ping => ClientFrame::Ping {
            payload: parts.body,
        },
        Kind::Auth => ClientFrame::Auth { token: parts.body },
        _ => unreachable!("split only accepts client kinds"),
    };
    Ok(Decoded::Frame {
        frame,
        consumed: parts.consumed,
    })
}

/// Decodes one server-to-client frame from the start of `buf` (used by clients).
///
/// Same contract as [`decode_client`]; client kinds are error 3 here. An
/// ERROR's message must be UTF-8 (else error 1); its topic is `None` when
/// `topic_len` is 0 and is validated otherwise, whatever the code. A GAP's
/// topic is required and validated like DATA's, and its message must be
/// UTF-8 (else error 1).
pub fn decode_server(buf: &[u8], max_frame: u32) -> Result<Decoded<ServerFrame<'_>>, ProtoError> {
    let parts = match split(buf, max_frame, Direction::ServerToClient)? {
        Split::Frame(parts) => parts,
        Split::Incomplete(need) => return Ok(Decoded::Incomplete { need }),
    };
    let fixed = parts.fixed;
    let frame = match parts.kind {
        Kind::Data => {
            let view = DataView::new(buf).expect("split checked the DATA header and topic");
            ServerFrame::Data {
                seq: view.seq(),
                ts_ns: view.ts_ns(),
                topic: required(parts.topic),
                payload: parts.body,
            }
        }
        Kind::SubAck => ServerFrame::SubAck {
            next_seq: u64_at(fixed, 0),
            epoch: u64_at(fixed, 8),
            topic: required(parts.topic),
        },
        Kind::UnsubAck => ServerFrame::UnsubAck {
            topic: required(parts.topic),
        },
        Kind::Pong => ServerFrame::Pong {
            payload: parts.body,
        },
        Kind::AuthOk => ServerFrame::AuthOk,
        Kind::Gap => ServerFrame::Gap {
            topic: required(parts.topic),
            message: std::str::from_utf8(parts.body)
                .map_err(|_| ProtoError::malformed("GAP message is not valid UTF-8"))?,
        },
        Kind::Error => ServerFrame::Error {
            code: u16::from_le_bytes([fixed[0], fixed[1]]),
            topic: parts.topic,
            message: std::str::from_utf8(parts.body)
                .map_err(|_| ProtoError::malformed("ERROR message is not valid UTF-8"))?,
        },
        _ => unreachable!("split only accepts server kinds"),
    };
    Ok(Decoded::Frame {
        frame,
        consumed: parts.consumed,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

/// A whole frame whose header, layout and topic have been checked.
struct Parts<'a> {
    kind: Kind,
    /// The kind's fixed fields, exactly `shape.fixed` bytes.
    fixed: &'a [u8],
    /// The validated topic; `None` when `topic_len` is 0.
    topic: Option<&'a str>,
    /// Everything after the topic; within the kind's payload rule.
    body: &'a [u8],
    /// 4 + len; `consumed <= buf.len()`.
    consumed: usize,
}

enum Split<'a> {
    Frame(Parts<'a>),
    /// At least this many bytes in total are needed; always more than `buf.len()`.
    Incomplete(usize),
}

/// Frames and checks everything but the kind-specific body content.
fn split(buf: &[u8], max_frame: u32, dir: Direction) -> Result<Split<'_>, ProtoError> {
    // Step 1: the len field.
    let Some(len_bytes) = buf.first_chunk::<LEN_PREFIX>() else {
        return Ok(Split::Incomplete(LEN_PREFIX));
    };
    let len = u32::from_le_bytes(*len_bytes);
    if (len as usize) < HEADER_LEN - LEN_PREFIX {
        return Err(ProtoError::malformed("len is less than 4"));
    }
    if len > max_frame {
        return Err(ProtoError::new(
            ErrorCode::TooLarge,
            "len exceeds the maximum frame size",
        ));
    }
    // The frame's total size; cannot overflow on 64-bit targets, and is
    // rejected as too large on 32-bit ones where it would.
    let total = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(LEN_PREFIX))
        .ok_or(ProtoError::new(
            ErrorCode::TooLarge,
            "len exceeds the address space",
        ))?;

    // Step 2: the rest of the header and the layout it implies.
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Split::Incomplete(HEADER_LEN));
    };
    let kind = match Kind::from_u8(header[4]) {
        None => return Err(ProtoError::unknown_kind("kind is reserved in version 1")),
        Some(k) if k.is_client_to_server() != (dir == Direction::ClientToServer) => {
            return Err(ProtoError::unknown_kind(match dir {
                Direction::ClientToServer => "kind is sent only by the server",
                Direction::ServerToClient => "kind is sent only by clients",
            }))
        }
        Some(k) => k,
    };
    if header[5] != 0 {
        return Err(ProtoError::unknown_kind("flags is not 0"));
    }
    let topic_len = usize::from(u16::from_le_bytes([header[6], header[7]]));
    let shape = kind.shape();
    let after_header = total - HEADER_LEN;
    if shape.topic == TopicRule::Absent && topic_len != 0 {
        return Err(ProtoError::malformed(
            "topic_len is not 0 on a kind without a topic",
        ));
    }
    if after_header < shape.fixed {
        return Err(ProtoError::malformed(
            "len is too short for the kind's fixed fields",
        ));
    }
    if after_header - shape.fixed < topic_len {
        return Err(ProtoError::malformed(
            "topic_len runs past the end of the frame",
        ));
    }
    let body_len = after_header - shape.fixed - topic_len;
    match shape.body {
        Body::Empty if body_len != 0 => {
            return Err(ProtoError::malformed("payload on a kind that takes none"))
        }
        Body::PingBytes if body_len > MAX_PING_PAYLOAD => {
            return Err(ProtoError::malformed(
                "PING or PONG payload is longer than 64 bytes",
            ))
        }
        _ => {}
    }
    if shape.topic == TopicRule::Required && topic_len == 0 {
        return Err(ProtoError::bad_topic("topic is empty"));
    }
    if topic_len > MAX_TOPIC_LEN {
        return Err(ProtoError::bad_topic("topic is longer than 255 bytes"));
    }

    // Step 3: the topic, as soon as it is all here.
    let topic_start = HEADER_LEN + shape.fixed;
    let topic_end = topic_start + topic_len;
    if buf.len() < topic_end {
        return Ok(Split::Incomplete(total));
    }
    let topic = match topic_len {
        0 => None,
        _ => Some(validate_topic(&buf[topic_start..topic_end])?),
    };

    // Step 4: the whole frame.
    if buf.len() < total {
        return Ok(Split::Incomplete(total));
    }
    debug_assert!(HEADER_LEN <= topic_start && topic_start <= topic_end && topic_end <= total);
    Ok(Split::Frame(Parts {
        kind,
        fixed: &buf[HEADER_LEN..topic_start],
        topic,
        body: &buf[topic_end..total],
        consumed: total,
    }))
}

/// The topic of a kind whose rule is [`TopicRule::Required`]: `split` has checked it is there.
fn required(topic: Option<&str>) -> &str {
    topic.expect("split rejects an empty topic on kinds that need one")
}

fn u64_at(fixed: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&fixed[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::{ServerFrame, DEFAULT_MAX_FRAME};

    #[test]
    fn checks_wait_for_the_bytes_that_decide_them() {
        // 4 bytes of a valid len: the header is needed next.
        let len = 100u32.to_le_bytes();
        assert_eq!(
            decode_client(&len, DEFAULT_MAX_FRAME),
            Ok(Decoded::Incomplete { need: HEADER_LEN })
        );
        // A header alone for a 104-byte PUBLISH with a 3-byte topic.
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&len);
        h[4] = Kind::Publish as u8;
        h[6] = 3;
        assert_eq!(
            decode_client(&h, DEFAULT_MAX_FRAME),
            Ok(Decoded::Incomplete { need: 104 })
        );
    }

    #[test]
    fn error_topic_is_none_when_topic_len_is_zero() {
        let mut buf = Vec::new();
        ServerFrame::Error {
            code: 8,
            topic: None,
            message: "bye",
        }
        .encode(&mut buf);
        let Ok(Decoded::Frame { frame, consumed }) = decode_server(&buf, DEFAULT_MAX_FRAME) else {
            panic!("ERROR frame did not decode");
        };
        assert_eq!(consumed, buf.len());
        assert_eq!(
            frame,
            ServerFrame::Error {
                code: 8,
                topic: None,
                message: "bye"
            }
        );
    }

    #[test]
    fn gap_needs_a_valid_topic_and_a_utf8_message() {
        let mut buf = Vec::new();
        let gap = ServerFrame::Gap {
            topic: "news/x",
            message: "relay reconnected",
        };
        gap.encode(&mut buf);
        assert_eq!(buf[4], Kind::Gap as u8);
        assert_eq!(
            decode_server(&buf, DEFAULT_MAX_FRAME),
            Ok(Decoded::Frame {
                frame: gap,
                consumed: buf.len()
            })
        );
        // No fixed fields: the topic starts right after the header.
        assert_eq!(&buf[HEADER_LEN..HEADER_LEN + 6], b"news/x");
        // Sent by a client, it is an unknown kind.
        assert_eq!(
            decode_client(&buf, DEFAULT_MAX_FRAME).unwrap_err().code,
            ErrorCode::UnknownKind
        );
        // A topic is required, and checked.
        let mut no_topic = Vec::new();
        no_topic.extend_from_slice(&4u32.to_le_bytes());
        no_topic.extend_from_slice(&[Kind::Gap as u8, 0, 0, 0]);
        assert_eq!(
            decode_server(&no_topic, DEFAULT_MAX_FRAME)
                .unwrap_err()
                .code,
            ErrorCode::BadTopic
        );
        // The message must be UTF-8.
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() = 0xFF;
        let e = decode_server(&bad, DEFAULT_MAX_FRAME).unwrap_err();
        assert_eq!(e, ProtoError::malformed("GAP message is not valid UTF-8"));
    }
}

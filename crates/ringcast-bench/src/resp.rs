//! What a Redis pub/sub client needs of RESP, on ringcast-proto's codec
//! ([`ringcast_proto::resp`]): SUBSCRIBE, PSUBSCRIBE, PUBLISH and PING as
//! commands, and the events in what comes back (`message` and `pmessage`
//! pushes, (p)subscribe confirmations, PUBLISH's integer replies, `+PONG`,
//! errors). Replies are decoded in place without allocating; payloads are
//! bulk strings, so they are binary-safe: the decoder goes by lengths, never
//! by content.

use super::wire::Event;
use ringcast_proto::resp::{self, Decoded, PubSubPush, ReplyRef};

/// Longest bulk string (or text line) accepted from the server: larger than
/// any payload the generator sends (larger messages are skipped from their
/// heads, see [`message_prefix`]), as ringcast's frame limit.
const MAX_BULK: usize = 1 << 30;

/// `SUBSCRIBE topic`.
pub fn encode_subscribe(topic: &str, out: &mut Vec<u8>) {
    resp::encode_command(&[b"SUBSCRIBE", topic.as_bytes()], out);
}

/// `PSUBSCRIBE pattern`.
pub fn encode_psubscribe(pattern: &str, out: &mut Vec<u8>) {
    resp::encode_command(&[b"PSUBSCRIBE", pattern.as_bytes()], out);
}

/// `PUBLISH topic payload`.
pub fn encode_publish(topic: &str, payload: &[u8], out: &mut Vec<u8>) {
    resp::encode_command(&[b"PUBLISH", topic.as_bytes(), payload], out);
}

/// `PING`.
pub fn encode_ping(out: &mut Vec<u8>) {
    resp::encode_command(&[b"PING"], out);
}

/// Parses one reply or push from the start of `buf`: the event and the
/// bytes it used, or `None` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Event<'_>, usize)>, String> {
    let (reply, used) = match resp::decode_reply(buf, MAX_BULK) {
        Ok(Decoded::Frame { frame, consumed }) => (frame, consumed),
        Ok(Decoded::Incomplete { .. }) => return Ok(None),
        Err(e) => return Err(format!("RESP: {e}")),
    };
    let event = match reply {
        ReplyRef::SimpleString(s) if s.eq_ignore_ascii_case(b"PONG") => Event::Pong,
        ReplyRef::Error(e) | ReplyRef::BlobError(e) => {
            Event::ServerError(String::from_utf8_lossy(e).into_owned())
        }
        ReplyRef::Array(elements) | ReplyRef::Push(elements) => match reply.as_pubsub() {
            Some(PubSubPush::Message { payload, .. } | PubSubPush::PMessage { payload, .. }) => {
                Event::Data { seq: None, payload }
            }
            Some(PubSubPush::Subscribe { .. } | PubSubPush::PSubscribe { .. }) => {
                Event::Subscribed { first_seq: None }
            }
            Some(_) => Event::Other,
            // PING in subscribed mode: `pong` and PING's argument.
            None => match elements.iter().next() {
                Some(ReplyRef::Bulk(b"pong")) => Event::Pong,
                Some(ReplyRef::Bulk(b"message")) if elements.len() == 3 => {
                    return Err("RESP: message push without a payload".into())
                }
                Some(ReplyRef::Bulk(b"pmessage")) if elements.len() == 4 => {
                    return Err("RESP: pmessage push without a payload".into())
                }
                _ => Event::Other,
            },
        },
        _ => Event::Other,
    };
    Ok(Some((event, used)))
}

/// For a `message` push whose head (through the payload's length line) is
/// in `buf`: the bytes before the payload and the push's total length.
/// `None` for a `pmessage` too (the codec reads only `message` heads), so a
/// large `pmessage` is buffered whole instead of skipped in the kernel.
pub fn message_prefix(buf: &[u8]) -> Option<(usize, usize)> {
    resp::decode_message_head(buf, MAX_BULK).map(|head| (head.payload_at, head.total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_in_chunks(stream: &[u8], chunk: usize) -> Vec<String> {
        super::super::wire::events_in_chunks(parse, stream, chunk)
    }

    fn message(channel: &str, payload: &[u8]) -> Vec<u8> {
        let mut m = format!(
            "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n",
            channel.len(),
            payload.len()
        )
        .into_bytes();
        m.extend_from_slice(payload);
        m.extend_from_slice(b"\r\n");
        m
    }

    #[test]
    fn every_split_of_a_stream_gives_the_same_events() {
        // A payload that looks like protocol: only lengths may be trusted.
        let nasty = b"\r\n*3\r\n$7\r\nmessage\r\n\x00\xff:1\r\n";
        let mut stream = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nt.00\r\n:1\r\n".to_vec();
        stream.extend(message("t.00", nasty));
        stream.extend(message("t.00", b""));
        stream.extend_from_slice(b":1000\r\n+PONG\r\n-ERR wrong number of arguments\r\n");
        stream.extend_from_slice(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        let whole = events_in_chunks(&stream, stream.len());
        assert_eq!(
            whole,
            [
                "Subscribed { first_seq: None }".to_string(),
                format!("Data {{ seq: None, payload: {:?} }}", &nasty[..]),
                "Data { seq: None, payload: [] }".to_string(),
                "Other".to_string(),
                "Pong".to_string(),
                "ServerError(\"ERR wrong number of arguments\")".to_string(),
                "Pong".to_string(),
            ]
        );
        for chunk in 1..stream.len() {
            assert_eq!(events_in_chunks(&stream, chunk), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let m = message("prices", &[7u8; 40]);
        for end in 0..m.len() {
            assert_eq!(parse(&m[..end]), Ok(None), "prefix of {end}");
        }
        let (ev, used) = parse(&m).unwrap().unwrap();
        assert_eq!(used, m.len());
        assert_eq!(
            ev,
            Event::Data {
                seq: None,
                payload: &[7u8; 40]
            }
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b"+OK\n").is_err());
        assert!(parse(b":12x\r\n").is_err());
        assert!(parse(b"$3\r\nabcXY").is_err());
        assert!(parse(b"*1\r\n*x\r\n").is_err());
        assert!(parse(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n:1\r\n").is_err());
        // A giant length is refused from its header, before its body.
        assert!(parse(b"$2000000000\r\n").is_err());
    }

    fn pmessage(pattern: &str, channel: &str, payload: &[u8]) -> Vec<u8> {
        let mut m = format!(
            "*4\r\n$8\r\npmessage\r\n${}\r\n{pattern}\r\n${}\r\n{channel}\r\n${}\r\n",
            pattern.len(),
            channel.len(),
            payload.len()
        )
        .into_bytes();
        m.extend_from_slice(payload);
        m.extend_from_slice(b"\r\n");
        m
    }

    #[test]
    fn pattern_subscriptions_and_pmessages() {
        let nasty = b"\r\n*4\r\n$8\r\npmessage\r\n\x00\xff";
        let mut stream = b"*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n".to_vec();
        stream.extend(pmessage("news.*", "news.1", nasty));
        stream.extend(pmessage("news.*", "news.22", b""));
        // RESP3: the same as pushes.
        stream.extend_from_slice(b">3\r\n$10\r\npsubscribe\r\n$2\r\nx*\r\n:2\r\n");
        let mut push = pmessage("x*", "xy", b"0123456789abcdef");
        push[0] = b'>';
        stream.extend(push);
        let whole = events_in_chunks(&stream, stream.len());
        assert_eq!(
            whole,
            [
                "Subscribed { first_seq: None }".to_string(),
                format!("Data {{ seq: None, payload: {:?} }}", &nasty[..]),
                "Data { seq: None, payload: [] }".to_string(),
                "Subscribed { first_seq: None }".to_string(),
                format!("Data {{ seq: None, payload: {:?} }}", b"0123456789abcdef"),
            ]
        );
        for chunk in 1..stream.len() {
            assert_eq!(events_in_chunks(&stream, chunk), whole, "chunk {chunk}");
        }
        let m = pmessage("news.*", "news.3", &[9u8; 40]);
        for end in 0..m.len() {
            assert_eq!(parse(&m[..end]), Ok(None), "prefix of {end}");
        }
        // A pmessage whose payload is not a bulk string is broken.
        assert!(parse(b"*4\r\n$8\r\npmessage\r\n$1\r\np\r\n$1\r\nc\r\n:1\r\n").is_err());
        // Not a message head: large pmessages are not skipped from their heads.
        assert_eq!(message_prefix(&m), None);
    }

    #[test]
    fn resp3_pushes_and_nested_replies() {
        let push = b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$3\r\nabc\r\n";
        assert_eq!(
            parse(push),
            Ok(Some((
                Event::Data {
                    seq: None,
                    payload: b"abc"
                },
                push.len()
            )))
        );
        let nested = b"*2\r\n*1\r\n:1\r\n$1\r\nx\r\n";
        assert_eq!(parse(nested), Ok(Some((Event::Other, nested.len()))));
    }

    #[test]
    fn encoders() {
        let mut out = Vec::new();
        encode_subscribe("a.b", &mut out);
        encode_psubscribe("a.*", &mut out);
        encode_publish("a.b", b"x\r\ny", &mut out);
        encode_ping(&mut out);
        assert_eq!(
            out,
            b"*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\na.b\r\n\
              *2\r\n$10\r\nPSUBSCRIBE\r\n$3\r\na.*\r\n\
              *3\r\n$7\r\nPUBLISH\r\n$3\r\na.b\r\n$4\r\nx\r\ny\r\n\
              *1\r\n$4\r\nPING\r\n"
        );
    }
}

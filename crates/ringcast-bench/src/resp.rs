//! The RESP2 subset a Redis pub/sub client needs, without I/O: encoders for
//! SUBSCRIBE, PUBLISH and PING, and an incremental parser for what comes
//! back (`*3 message CHANNEL PAYLOAD` pushes, subscribe confirmations,
//! PUBLISH's integer replies, `+PONG`, `-ERR`). Payloads are bulk strings,
//! so they are binary-safe: the parser goes by lengths, never by content.

use super::wire::Event;
use std::io::Write as _;

/// Longest header line accepted before the stream is declared broken.
const MAX_LINE: usize = 64 * 1024;

/// `SUBSCRIBE topic`.
pub fn encode_subscribe(topic: &str, out: &mut Vec<u8>) {
    encode_command(&[b"SUBSCRIBE", topic.as_bytes()], out);
}

/// `PUBLISH topic payload`.
pub fn encode_publish(topic: &str, payload: &[u8], out: &mut Vec<u8>) {
    encode_command(&[b"PUBLISH", topic.as_bytes(), payload], out);
}

/// `PING`.
pub fn encode_ping(out: &mut Vec<u8>) {
    encode_command(&[b"PING"], out);
}

/// A command as an array of bulk strings.
fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// One RESP value that is not an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    Bulk(Option<&'a [u8]>),
}

/// The line starting at `pos`, without its CRLF, and the position after it.
fn line(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, String> {
    let rest = &buf[pos..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && rest[i - 1] == b'\r' => Ok(Some((&rest[..i - 1], pos + i + 1))),
        Some(_) => Err("RESP: line not ended by CRLF".into()),
        None if rest.len() > MAX_LINE => Err(format!("RESP: line longer than {MAX_LINE} bytes")),
        None => Ok(None),
    }
}

fn int(digits: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("RESP: bad integer {:?}", String::from_utf8_lossy(digits)))
}

/// One non-array value at `pos`: the value and the position after it.
fn value(buf: &[u8], pos: usize) -> Result<Option<(Value<'_>, usize)>, String> {
    let Some((l, after)) = line(buf, pos)? else {
        return Ok(None);
    };
    let (&tag, body) = l.split_first().ok_or("RESP: empty line")?;
    let v = match tag {
        b'+' => Value::Simple(body),
        b'-' => Value::Error(body),
        b':' => Value::Int(int(body)?),
        b'$' => {
            let n = int(body)?;
            if n < 0 {
                Value::Bulk(None)
            } else {
                let n = n as usize;
                let end = after + n;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err("RESP: bulk string not followed by CRLF".into());
                }
                return Ok(Some((Value::Bulk(Some(&buf[after..end])), end + 2)));
            }
        }
        b'*' | b'>' => return Err("RESP: nested array".into()),
        other => {
            return Err(format!(
                "RESP: unknown type byte {:?}",
                char::from(other).escape_default().to_string()
            ))
        }
    };
    Ok(Some((v, after)))
}

/// Parses one reply or push from the start of `buf`: the event and the
/// bytes it used, or `None` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Event<'_>, usize)>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' && buf[0] != b'>' {
        let Some((v, used)) = value(buf, 0)? else {
            return Ok(None);
        };
        let event = match v {
            Value::Simple(s) if s.eq_ignore_ascii_case(b"PONG") => Event::Pong,
            Value::Error(e) => Event::ServerError(String::from_utf8_lossy(e).into_owned()),
            _ => Event::Other,
        };
        return Ok(Some((event, used)));
    }
    let Some((l, mut pos)) = line(buf, 0)? else {
        return Ok(None);
    };
    let n = int(&l[1..])?;
    let mut first = [None; 3];
    for i in 0..n.max(0) as usize {
        let Some((v, next)) = value(buf, pos)? else {
            return Ok(None);
        };
        if i < first.len() {
            first[i] = Some(v);
        }
        pos = next;
    }
    let bulk = |i: usize| match first[i] {
        Some(Value::Bulk(Some(b))) => Some(b),
        _ => None,
    };
    let event = match bulk(0) {
        Some(b"message") if n == 3 => match bulk(2) {
            Some(payload) => Event::Data { seq: None, payload },
            None => return Err("RESP: message push without a payload".into()),
        },
        Some(b"subscribe") => Event::Subscribed { first_seq: None },
        Some(b"pong") => Event::Pong,
        _ => Event::Other,
    };
    Ok(Some((event, pos)))
}

/// For a `message` push whose head (through the payload's length line) is
/// in `buf`: the bytes before the payload and the push's total length.
pub fn message_prefix(buf: &[u8]) -> Option<(usize, usize)> {
    let (l, pos) = line(buf, 0).ok()??;
    if l != b"*3" {
        return None;
    }
    let (kind, pos) = value(buf, pos).ok()??;
    if kind != Value::Bulk(Some(b"message")) {
        return None;
    }
    let (_channel, pos) = value(buf, pos).ok()??;
    let (l, head) = line(buf, pos).ok()??;
    let len: usize = std::str::from_utf8(l.strip_prefix(b"$")?)
        .ok()?
        .parse()
        .ok()?;
    Some((head, head + len + 2))
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
        assert!(parse(b"*1\r\n*1\r\n").is_err());
        assert!(parse(&vec![b'+'; MAX_LINE + 2]).is_err());
    }

    #[test]
    fn encoders() {
        let mut out = Vec::new();
        encode_subscribe("a.b", &mut out);
        encode_publish("a.b", b"x\r\ny", &mut out);
        encode_ping(&mut out);
        assert_eq!(
            out,
            b"*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\na.b\r\n\
              *3\r\n$7\r\nPUBLISH\r\n$3\r\na.b\r\n$4\r\nx\r\ny\r\n\
              *1\r\n$4\r\nPING\r\n"
        );
    }
}

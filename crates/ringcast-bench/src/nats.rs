//! The NATS client protocol subset a pub/sub benchmark needs, without I/O:
//! encoders for CONNECT, SUB, PUB, PING and PONG, and an incremental parser
//! for INFO, MSG (and HMSG), PING, PONG, +OK and -ERR. A MSG's payload is
//! taken by its byte count, so payloads are binary-safe.

use super::wire::Event;
use std::io::Write as _;

/// Longest control line accepted (INFO can be a few KiB) before the stream
/// is declared broken.
const MAX_LINE: usize = 64 * 1024;

/// `CONNECT` with no +OK acknowledgements and no subject checking.
pub fn encode_connect(out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"ringcast-bench\"}\r\n",
    );
}

/// `SUB subject sid`.
pub fn encode_sub(subject: &str, sid: u64, out: &mut Vec<u8>) {
    let _ = write!(out, "SUB {subject} {sid}\r\n");
}

/// `PUB subject len` and the payload.
pub fn encode_pub(subject: &str, payload: &[u8], out: &mut Vec<u8>) {
    let _ = write!(out, "PUB {subject} {}\r\n", payload.len());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// `PING`.
pub fn encode_ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PING\r\n");
}

/// `PONG`, the answer to the server's PING.
pub fn encode_pong(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PONG\r\n");
}

fn number(word: Option<&[u8]>) -> Result<usize, String> {
    let word = word.ok_or("NATS: MSG line lacks its byte count")?;
    std::str::from_utf8(word)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("NATS: bad byte count {:?}", String::from_utf8_lossy(word)))
}

/// Parses one server message from the start of `buf`: the event and the
/// bytes it used, or `None` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Event<'_>, usize)>, String> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_LINE {
            return Err(format!("NATS: control line longer than {MAX_LINE} bytes"));
        }
        return Ok(None);
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let after = nl + 1;
    let mut words = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    let op = words.next().unwrap_or(b"");
    let event = if op.eq_ignore_ascii_case(b"MSG") || op.eq_ignore_ascii_case(b"HMSG") {
        // MSG subject sid [reply-to] #bytes
        // HMSG subject sid [reply-to] #header-bytes #total-bytes
        let args: Vec<&[u8]> = words.collect();
        let headers = op.len() == 4;
        let (hdr, total) = if headers {
            if args.len() < 4 {
                return Err("NATS: short HMSG line".into());
            }
            let n = args.len();
            (number(Some(args[n - 2]))?, number(Some(args[n - 1]))?)
        } else {
            if args.len() < 3 {
                return Err("NATS: short MSG line".into());
            }
            (0, number(args.last().copied())?)
        };
        if hdr > total {
            return Err("NATS: HMSG header longer than the message".into());
        }
        let end = after + total;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err("NATS: MSG payload not followed by CRLF".into());
        }
        return Ok(Some((
            Event::Data {
                seq: None,
                payload: &buf[after + hdr..end],
            },
            end + 2,
        )));
    } else if op.eq_ignore_ascii_case(b"PING") {
        Event::Ping(&[])
    } else if op.eq_ignore_ascii_case(b"PONG") {
        Event::Pong
    } else if op.eq_ignore_ascii_case(b"-ERR") {
        let text = &line[op.len()..];
        Event::ServerError(String::from_utf8_lossy(text).trim().to_string())
    } else if op.eq_ignore_ascii_case(b"+OK") || op.eq_ignore_ascii_case(b"INFO") {
        Event::Other
    } else {
        return Err(format!(
            "NATS: unknown operation {:?}",
            String::from_utf8_lossy(op)
        ));
    };
    Ok(Some((event, after)))
}

/// For a MSG whose control line is in `buf`: the bytes before the payload
/// and the message's total length (HMSG is not handled: `None`).
pub fn msg_prefix(buf: &[u8]) -> Option<(usize, usize)> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let words: Vec<&[u8]> = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() < 4 || !words[0].eq_ignore_ascii_case(b"MSG") {
        return None;
    }
    let len = number(words.last().copied()).ok()?;
    Some((nl + 1, nl + 1 + len + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_in_chunks(stream: &[u8], chunk: usize) -> Vec<String> {
        super::super::wire::events_in_chunks(parse, stream, chunk)
    }

    #[test]
    fn every_split_of_a_stream_gives_the_same_events() {
        let nasty = b"MSG a 1 3\r\n\r\nPING\r\n\x00\xff";
        let mut stream =
            b"INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n+OK\r\nPONG\r\n".to_vec();
        stream.extend(format!("MSG t.0 7 {}\r\n", nasty.len()).into_bytes());
        stream.extend_from_slice(nasty);
        stream.extend_from_slice(b"\r\nPING\r\nmsg t.0 7 reply.to 0\r\n\r\n");
        stream.extend_from_slice(b"HMSG t.0 7 12 15\r\nNATS/1.0\r\n\r\nabc\r\n");
        stream.extend_from_slice(b"-ERR 'Slow Consumer'\r\n");
        let whole = events_in_chunks(&stream, stream.len());
        assert_eq!(
            whole,
            [
                "Other".to_string(),
                "Other".to_string(),
                "Pong".to_string(),
                format!("Data {{ seq: None, payload: {:?} }}", &nasty[..]),
                "Ping([])".to_string(),
                "Data { seq: None, payload: [] }".to_string(),
                "Data { seq: None, payload: [97, 98, 99] }".to_string(),
                "ServerError(\"'Slow Consumer'\")".to_string(),
            ]
        );
        for chunk in 1..stream.len() {
            assert_eq!(events_in_chunks(&stream, chunk), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let mut m = b"MSG subject 12 40\r\n".to_vec();
        m.extend_from_slice(&[9u8; 40]);
        m.extend_from_slice(b"\r\n");
        for end in 0..m.len() {
            assert_eq!(parse(&m[..end]), Ok(None), "prefix of {end}");
        }
        assert_eq!(parse(&m).unwrap().unwrap().1, m.len());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"HELLO\r\n").is_err());
        assert!(parse(b"MSG a 1 x\r\n").is_err());
        assert!(
            parse(b"MSG a 5\r\n").is_err(),
            "MSG needs subject, sid and size"
        );
        assert!(parse(b"MSG a 1 2\r\nabXY").is_err());
        assert!(parse(b"HMSG a 1 5 2\r\n").is_err());
        assert!(parse(&vec![b'x'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn encoders() {
        let mut out = Vec::new();
        encode_sub("s.1", 4, &mut out);
        encode_pub("s.1", b"a\r\nb", &mut out);
        encode_ping(&mut out);
        encode_pong(&mut out);
        assert_eq!(out, b"SUB s.1 4\r\nPUB s.1 4\r\na\r\nb\r\nPING\r\nPONG\r\n");
        let mut c = Vec::new();
        encode_connect(&mut c);
        assert!(c.starts_with(b"CONNECT {\"verbose\":false,\"pedantic\":false"));
    }
}

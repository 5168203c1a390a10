//! `ringcast sub`: subscribe to topics and print every DATA frame, one line each.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use ringcast_client::{ClientError, Message};

use crate::connect::{self, Token};
use crate::Failure;
use ringcast::values;

/// Payload characters shown before the line is cut short.
const MAX_SHOWN_CHARS: usize = 200;

const EXAMPLES: &str = "\
Examples:
  ringcast sub prices.eurusd
  ringcast sub a b c --count 100 --addr 10.0.0.5:7400
  RINGCAST_SUBSCRIBE_TOKEN=s3cret ringcast sub private.news";

/// The arguments of `sub`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Subscribe to topics and print each message as it arrives.",
    long_about = long_about(),
    after_help = EXAMPLES
)]
pub struct SubArgs {
    /// Topics to subscribe to.
    #[arg(value_name = "TOPIC", required = true, value_parser = connect::topic)]
    topics: Vec<String>,

    #[command(flatten)]
    server: connect::Server,

    /// Exit 0 after printing N messages; by default run until the server
    /// closes or Ctrl-C.
    #[arg(long, value_name = "N", value_parser = values::count)]
    count: Option<u64>,

    /// Token to AUTH with first (by default none is sent). Prefer the
    /// variable: flags show in `ps`.
    #[arg(long, env = "RINGCAST_SUBSCRIBE_TOKEN", value_name = "TOKEN",
          value_parser = connect::token())]
    token: Option<Token>,
}

fn long_about() -> String {
    format!(
        "\
Subscribe to topics and print each message as it arrives.

Prints one line per subscription to stderr:
  subscribed to TOPIC: next_seq=N epoch=E
and one line per message to stdout, flushed at once (so pipes see it):
  TOPIC seq=N latency=12.3us PAYLOAD
latency is this machine's clock minus the server's acceptance stamp (only
meaningful on the same host or with synced clocks). The payload is shown as
UTF-8 with \\n, \\t, \\\\, \\u{{..}} and \\xNN escapes for what is not printable,
cut at {MAX_SHOWN_CHARS} characters with a note of its full size.

A server that relays between nodes (serve --nats) may lose messages of a
topic published on other nodes, with no jump in seq. It then says so, and
this prints one line to stderr, in its place among the messages, and reads on:
  gap in TOPIC: messages published on other nodes may be missing here (WHY)

Exits 0 after --count messages, 1 when the server sends an ERROR or closes,
2 on bad usage. A flag beats its environment variable, which beats the
default; an empty variable counts as unset."
    )
}

/// `ringcast sub TOPIC... [OPTIONS]`.
pub fn run(args: SubArgs) -> Result<(), Failure> {
    let SubArgs {
        topics,
        server,
        count,
        token,
    } = args;
    let mut client = connect::open(server.addr, token.as_deref())?;
    for topic in &topics {
        let ack = client
            .subscribe(topic)
            .map_err(|e| connect::failed(&e, &format!("subscribing to {topic}")))?;
        eprintln!(
            "subscribed to {topic}: next_seq={} epoch={}",
            ack.next_seq, ack.epoch
        );
    }

    let mut out = io::stdout().lock();
    let mut printed: u64 = 0;
    while count.map_or(true, |n| printed < n) {
        let msg = match client.next_message() {
            Ok(msg) => msg,
            // Not a message: said on stderr, in its place (stdout is flushed
            // after every line), and not counted by --count.
            Err(ClientError::Gap { topic, reason }) => {
                eprintln!("{}", format_gap(&topic, &reason));
                continue;
            }
            Err(ClientError::Closed) => {
                return Err(Failure::Failed(format!(
                    "the server closed the connection after {printed} messages"
                )))
            }
            Err(e) => return Err(connect::failed(&e, "receiving")),
        };
        let line = format_line(&msg, now_ns());
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => {}
            // The reader went away (`| head`): done, quietly.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Failure::Failed(format!("writing to stdout: {e}"))),
        }
        printed += 1;
    }
    Ok(())
}

/// CLOCK_REALTIME in nanoseconds, the clock `ts_ns` is stamped with.
fn now_ns() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// `TOPIC seq=N latency=12.3us PAYLOAD`.
fn format_line(msg: &Message, now_ns: i128) -> String {
    let latency = format_latency(now_ns - i128::from(msg.ts_ns));
    let payload = format_payload(&msg.payload, MAX_SHOWN_CHARS);
    let sep = if payload.is_empty() { "" } else { " " };
    format!(
        "{} seq={} latency={latency}{sep}{payload}",
        msg.topic, msg.seq
    )
}

/// `gap in TOPIC: messages published on other nodes may be missing here (WHY)`.
fn format_gap(topic: &str, reason: &str) -> String {
    let mut line = format!("gap in {topic}: messages published on other nodes may be missing here");
    if !reason.is_empty() {
        line.push_str(" (");
        line.push_str(&format_payload(reason.as_bytes(), MAX_SHOWN_CHARS));
        line.push(')');
    }
    line
}

/// Nanoseconds as `850ns`, `12.3us`, `4.56ms` or `1.20s` (negative when the
/// clocks disagree).
fn format_latency(ns: i128) -> String {
    let abs = ns.unsigned_abs();
    let sign = if ns < 0 { "-" } else { "" };
    let f = abs as f64;
    if abs < 1_000 {
        format!("{sign}{abs}ns")
    } else if abs < 1_000_000 {
        format!("{sign}{:.1}us", f / 1e3)
    } else if abs < 1_000_000_000 {
        format!("{sign}{:.2}ms", f / 1e6)
    } else {
        format!("{sign}{:.2}s", f / 1e9)
    }
}

/// The payload as one printable line: UTF-8 as is, control characters and
/// backslashes escaped, invalid bytes as `\xNN`; cut after `max_chars`
/// characters with a note.
fn format_payload(payload: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    let mut shown_bytes = 0;
    'chunks: for chunk in payload.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == max_chars {
                break 'chunks;
            }
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.extend(c.escape_unicode()),
                c => out.push(c),
            }
            shown += 1;
            shown_bytes += c.len_utf8();
        }
        for b in chunk.invalid() {
            if shown == max_chars {
                break 'chunks;
            }
            out.push_str(&format!("\\x{b:02x}"));
            shown += 1;
            shown_bytes += 1;
        }
    }
    if shown_bytes < payload.len() {
        out.push_str(&format!(
            " ... [cut at {max_chars} characters; {} bytes in all]",
            payload.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_units() {
        assert_eq!(format_latency(850), "850ns");
        assert_eq!(format_latency(12_345), "12.3us");
        assert_eq!(format_latency(4_560_000), "4.56ms");
        assert_eq!(format_latency(1_200_000_000), "1.20s");
        assert_eq!(format_latency(-2_000), "-2.0us");
    }

    #[test]
    fn payloads_are_escaped_and_cut() {
        assert_eq!(format_payload(b"hello world", 200), "hello world");
        assert_eq!(
            format_payload("h\u{e9}\n\\".as_bytes(), 200),
            "h\u{e9}\\n\\\\"
        );
        assert_eq!(format_payload(b"a\xffb\x00", 200), "a\\xffb\\u{0}");
        let long = vec![b'x'; 300];
        let shown = format_payload(&long, 200);
        assert!(shown.starts_with(&"x".repeat(200)));
        assert!(shown.ends_with("... [cut at 200 characters; 300 bytes in all]"));
        assert_eq!(format_payload(&[b'y'; 200], 200), "y".repeat(200));
    }

    #[test]
    fn gap_line() {
        assert_eq!(
            format_gap("t", "relay link to NATS was down"),
            "gap in t: messages published on other nodes may be missing here \
             (relay link to NATS was down)"
        );
        assert_eq!(
            format_gap("a/b", ""),
            "gap in a/b: messages published on other nodes may be missing here"
        );
        // The server's text is escaped like a payload: one line, whatever it holds.
        assert_eq!(
            format_gap("t", "two\nlines"),
            "gap in t: messages published on other nodes may be missing here (two\\nlines)"
        );
    }

    #[test]
    fn line_format() {
        let msg = Message {
            topic: "t".into(),
            seq: 7,
            ts_ns: 1_000,
            payload: b"hi".to_vec(),
        };
        assert_eq!(format_line(&msg, 13_300), "t seq=7 latency=12.3us hi");
        let empty = Message {
            payload: Vec::new(),
            ..msg
        };
        assert_eq!(format_line(&empty, 1_500), "t seq=7 latency=500ns");
    }
}

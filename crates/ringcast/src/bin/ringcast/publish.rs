//! `ringcast pub`: publish a message, or each line of stdin, to one topic.

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal};
use std::os::unix::ffi::OsStringExt;

use ringcast_client::Client;

use crate::connect::{self, Token};
use crate::Failure;
use ringcast::values;

const LONG_ABOUT: &str = "\
Publish MESSAGE to TOPIC, or with no MESSAGE each line of stdin (without its
line ending; an empty line is an empty message). Before exiting it waits for
a PING round trip, so exit 0 means the server has read every message; if the
server refused them (e.g. a missing token), the ERROR is printed and the exit
code is 1. A MESSAGE that starts with `-` goes after `--`; one with spaces is
quoted.

A flag beats its environment variable, which beats the default; an empty
variable counts as unset.";

const EXAMPLES: &str = "\
Examples:
  ringcast pub prices.eurusd 1.0842
  ringcast pub counter tick --repeat 1000
  seq 1 100 | ringcast pub numbers
  ringcast pub t -- -5";

/// The arguments of `pub`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Publish a message, or each line of stdin, to a topic.",
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
pub struct PubArgs {
    /// The topic to publish to.
    #[arg(value_name = "TOPIC", value_parser = connect::topic)]
    topic: String,

    /// The message (any bytes); without it, each line of stdin is one.
    #[arg(value_name = "MESSAGE")]
    message: Option<OsString>,

    #[command(flatten)]
    server: connect::Server,

    /// Token to AUTH with first (by default none is sent). Prefer the
    /// variable: flags show in `ps`.
    #[arg(long, env = "RINGCAST_PUBLISH_TOKEN", value_name = "TOKEN",
          value_parser = connect::token())]
    token: Option<Token>,

    /// Publish MESSAGE (or each stdin line) N times.
    #[arg(long, value_name = "N", value_parser = values::count, default_value_t = 1)]
    repeat: u64,
}

/// `ringcast pub TOPIC [MESSAGE] [OPTIONS]`.
pub fn run(args: PubArgs) -> Result<(), Failure> {
    let PubArgs {
        topic,
        message,
        server,
        token,
        repeat,
    } = args;
    let mut client = connect::open(server.addr, token.as_deref())?;
    let mut sent: u64 = 0;
    match message.map(OsString::into_vec) {
        Some(message) => {
            for _ in 0..repeat {
                publish(&mut client, &topic, &message)?;
                sent += 1;
            }
        }
        None => {
            let stdin = io::stdin();
            let interactive = stdin.is_terminal();
            if interactive {
                eprintln!("reading messages for {topic} from stdin, one per line; Ctrl-D ends");
            }
            let mut input = stdin.lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .map_err(|e| Failure::Failed(format!("reading stdin: {e}")))?;
                if n == 0 {
                    break;
                }
                let message = strip_line_ending(&line);
                for _ in 0..repeat {
                    publish(&mut client, &topic, message)?;
                    sent += 1;
                }
                if interactive {
                    // A person is typing: report a refusal now, not at Ctrl-D.
                    confirm(&mut client)?;
                }
            }
        }
    }
    confirm(&mut client)?;
    let plural = if sent == 1 { "" } else { "s" };
    eprintln!("published {sent} message{plural} to {topic}");
    Ok(())
}

fn publish(client: &mut Client, topic: &str, message: &[u8]) -> Result<(), Failure> {
    client
        .publish(topic, message)
        .map_err(|e| connect::failed(&e, &format!("publishing to {topic}")))
}

/// A PING round trip: once the PONG is back, the server has read every
/// PUBLISH before it (replies come in order), or its ERROR arrives instead.
fn confirm(client: &mut Client) -> Result<(), Failure> {
    client
        .ping(b"pub")
        .map(drop)
        .map_err(|e| connect::failed(&e, "publishing"))
}

/// The line without its `\n` or `\r\n`.
fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings() {
        assert_eq!(strip_line_ending(b"a\n"), b"a");
        assert_eq!(strip_line_ending(b"a\r\n"), b"a");
        assert_eq!(strip_line_ending(b"a"), b"a");
        assert_eq!(strip_line_ending(b"\n"), b"");
    }
}

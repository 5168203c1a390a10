//! `ringcast pub`: publish a message, or each line of stdin, to one topic.

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal};
use std::os::unix::ffi::OsStringExt;

use ringcast_client::Client;

use crate::args::{self, Failure, Flag};
use crate::connect;

fn flags() -> Vec<Flag> {
    vec![
        connect::addr_flag(),
        connect::token_flag("RINGCAST_PUBLISH_TOKEN"),
        Flag {
            name: "--repeat",
            value: Some("N"),
            env: None,
            default: "1".into(),
            help: "Publish MESSAGE (or each stdin line) N times.",
        },
    ]
}

/// `ringcast pub --help`.
pub fn help() -> String {
    format!(
        "ringcast pub: publish to a topic.\n\
         \n\
         Usage: ringcast pub TOPIC [MESSAGE] [FLAGS]\n\
         \n\
         Publishes MESSAGE, or with no MESSAGE each line of stdin (without its\n\
         line ending; an empty line is an empty message). Before exiting it waits\n\
         for a PING round trip, so exit 0 means the server has read every message;\n\
         if the server refused them (e.g. a missing token), the ERROR is printed and\n\
         the exit code is 1. A MESSAGE that starts with `-` goes after `--`.\n\
         \n\
         Flags (a flag beats its environment variable, which beats the default):\n\
         {}\n\
         Examples:\n  \
           ringcast pub prices.eurusd 1.0842\n  \
           ringcast pub counter tick --repeat 1000\n  \
           seq 1 100 | ringcast pub numbers\n  \
           ringcast pub t -- -5\n",
        args::render_flags(&flags())
    )
}

/// `ringcast pub TOPIC [MESSAGE] [FLAGS]`.
pub fn run(words: Vec<OsString>) -> Result<(), Failure> {
    let flags = flags();
    let p = args::parse("pub", &flags, true, words, &args::process_env)?;
    if p.help {
        print!("{}", help());
        return Ok(());
    }
    let mut positionals = p.positionals.clone().into_iter();
    let topic = match positionals.next() {
        Some(t) => connect::topic_arg(&t)?,
        None => {
            return Err(Failure::Usage(
                "pub needs a TOPIC; see `ringcast pub --help`".into(),
            ))
        }
    };
    let message = positionals.next().map(OsString::into_vec);
    if positionals.next().is_some() {
        return Err(Failure::Usage(
            "pub takes one TOPIC and at most one MESSAGE; quote a message that has spaces".into(),
        ));
    }
    let repeat = p.get("--repeat", args::parse_count)?.unwrap_or(1);

    let mut client = connect::open(&p)?;
    let mut sent: u64 = 0;
    match message {
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

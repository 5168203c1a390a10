//! What `pub` and `sub` share: the `--addr` and `--token` flags, connecting,
//! authenticating, and turning client errors into messages that say what to do.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;

use ringcast::proto::{self, ErrorCode};
use ringcast_client::{describe_server_error, Client, ClientError};

use crate::args::{self, Failure, Flag, Parsed};

/// The server address clients use when given none.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7400";

/// `--addr ADDR` (env RINGCAST_ADDR).
pub fn addr_flag() -> Flag {
    Flag {
        name: "--addr",
        value: Some("ADDR"),
        env: Some("RINGCAST_ADDR"),
        default: DEFAULT_ADDR.into(),
        help: "Server to connect to: HOST:PORT, IP:PORT, or a bare PORT on 127.0.0.1.",
    }
}

/// `--token TOKEN`, read from `env` (the variable `serve` reads for the same token).
pub fn token_flag(env: &'static str) -> Flag {
    Flag {
        name: "--token",
        value: Some("TOKEN"),
        env: Some(env),
        default: "none (no AUTH sent)".into(),
        help: "Token to AUTH with first (prefer the variable: flags show in `ps`).",
    }
}

/// A topic argument, checked as the server would check it.
pub fn topic_arg(arg: &OsString) -> Result<String, Failure> {
    match proto::validate_topic(arg.as_bytes()) {
        Ok(t) => Ok(t.to_owned()),
        Err(e) => Err(Failure::Usage(format!(
            "invalid topic {:?}: {} (a topic is 1 to 255 bytes of UTF-8 with no spaces \
             or control characters)",
            arg.to_string_lossy(),
            e.reason
        ))),
    }
}

/// Connects to `--addr` and, with `--token`, authenticates.
pub fn open(p: &Parsed<'_>) -> Result<Client, Failure> {
    let addr = p
        .get("--addr", args::parse_addr)?
        .map_or_else(|| DEFAULT_ADDR.to_owned(), |a| a.to_string());
    let token = p.bytes("--token")?;
    let mut client = Client::connect(addr.as_str()).map_err(|e| match e {
        ClientError::Io(e) => Failure::Failed(format!(
            "cannot connect to {addr}: {}",
            describe_connect_error(&e)
        )),
        other => Failure::Failed(format!("cannot connect to {addr}: {other}")),
    })?;
    if let Some(token) = token {
        client
            .auth(&token)
            .map_err(|e| failed(&e, "authenticating"))?;
    }
    Ok(client)
}

fn describe_connect_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (is `ringcast serve` running, and on this address? \
             see --addr)"
                .into()
        }
        io::ErrorKind::TimedOut => "timed out (is the host reachable?)".into(),
        _ => strip_os_error(&e.to_string()),
    }
}

/// "Broken pipe (os error 32)" -> "broken pipe".
fn strip_os_error(text: &str) -> String {
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A client error while `doing` something, with a hint for the flags of this binary.
pub fn failed(e: &ClientError, doing: &str) -> Failure {
    let why = match e {
        ClientError::Server { code, message } => {
            let hint = match ErrorCode::from_u16(*code) {
                Some(ErrorCode::NotAuthorized) => {
                    " (pass the server's token with --token or its variable; see --help)"
                }
                Some(ErrorCode::TooManySubscriptions) => {
                    " (the server's --max-subscriptions limits subscriptions per connection)"
                }
                Some(ErrorCode::SlowConsumer) => {
                    " (this reader fell behind by more than the server's --max-backlog)"
                }
                Some(ErrorCode::TooLarge) => " (the server's --max-frame limits message size)",
                Some(ErrorCode::BadTopic) => " (or the server's --max-topics was reached)",
                Some(ErrorCode::Incomplete) => {
                    " (a frame was not sent whole within the server's --frame-timeout)"
                }
                _ => "",
            };
            format!("{}{hint}", describe_server_error(*code, message))
        }
        ClientError::Io(io) => match io.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => {
                format!(
                    "the server dropped the connection ({})",
                    strip_os_error(&io.to_string())
                )
            }
            _ => e.to_string(),
        },
        other => other.to_string(),
    };
    Failure::Failed(format!("{doing}: {why}"))
}

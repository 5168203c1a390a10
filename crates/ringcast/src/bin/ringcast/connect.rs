//! What `pub` and `sub` share: the `--addr` flag, topics and tokens as
//! values, connecting, authenticating, and turning client errors into
//! messages that say what to do.

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;

use clap::builder::{OsStringValueParser, TypedValueParser};
use ringcast::proto::{self, ErrorCode};
use ringcast_client::{describe_server_error, Client, ClientError};

use crate::Failure;
use ringcast::values;

/// The server address clients use when given none.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7400";

/// `--addr ADDR` (env RINGCAST_ADDR), flattened into `sub` and `pub`.
#[derive(clap::Args, Debug)]
pub struct Server {
    /// Server to connect to: HOST:PORT, IP:PORT, or a bare PORT on 127.0.0.1.
    #[arg(
        long,
        env = "RINGCAST_ADDR",
        value_name = "ADDR",
        value_parser = values::addr,
        default_value = DEFAULT_ADDR
    )]
    pub addr: SocketAddr,
}

/// A token: any bytes (they need not be UTF-8), not empty.
pub type Token = Vec<u8>;

/// The value parser of `--token` and the `serve` token flags.
pub fn token() -> impl TypedValueParser<Value = Token> {
    OsStringValueParser::new().try_map(|s: OsString| {
        if s.is_empty() {
            Err("expected a non-empty token")
        } else {
            Ok(s.into_vec())
        }
    })
}

/// A topic, checked as the server would check it.
pub fn topic(s: &str) -> Result<String, String> {
    match proto::validate_topic(s.as_bytes()) {
        Ok(t) => Ok(t.to_owned()),
        Err(e) => Err(format!(
            "{} (a topic is 1 to 255 bytes of UTF-8 with no spaces or control characters)",
            e.reason
        )),
    }
}

/// Connects to `addr` and, with a token, authenticates.
pub fn open(addr: SocketAddr, token: Option<&[u8]>) -> Result<Client, Failure> {
    let mut client = Client::connect(addr).map_err(|e| match e {
        ClientError::Io(e) => Failure::Failed(format!(
            "cannot connect to {addr}: {}",
            describe_connect_error(&e)
        )),
        other => Failure::Failed(format!("cannot connect to {addr}: {other}")),
    })?;
    if let Some(token) = token {
        client
            .auth(token)
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

//! What `pub` and `sub` share: the `--addr` flag, topics and tokens as
//! values, connecting, authenticating, and turning client errors into
//! messages that say what to do.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::ffi::OsStringExt;
use std::time::{Duration, Instant};

use clap::builder::{OsStringValueParser, TypedValueParser};
use ringcast::proto::{self, ClientFrame, Decoded, ErrorCode, ServerFrame};
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

/// How long the first reply may take before the port is judged not to
/// speak the native protocol.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest frame a server may be configured to send (`serve
/// --max-frame` is at most 256 MiB, plus DATA's header).
const CLIENT_MAX_FRAME: u32 = (256 << 20) + 1024;

/// Connects to `addr`, checks that it speaks the native protocol and,
/// with a token, authenticates.
pub fn open(addr: SocketAddr, token: Option<&[u8]>) -> Result<Client, Failure> {
    let stream = TcpStream::connect(addr).map_err(|e| {
        Failure::Failed(format!(
            "cannot connect to {addr}: {}",
            describe_connect_error(&e)
        ))
    })?;
    let _ = stream.set_nodelay(true);
    probe(&stream, addr)?;
    let mut client = Client::from_stream(stream);
    client.set_max_frame(CLIENT_MAX_FRAME);
    if let Some(token) = token {
        client
            .auth(token)
            .map_err(|e| failed(&e, "authenticating"))?;
    }
    Ok(client)
}

/// Sends a PING and expects its PONG. Its payload ends with an empty line,
/// so that an HTTP server takes the bytes for a (bad) request head and
/// answers at once. A Redis server (ringcast's Redis front too) reads an
/// inline command up to a NUL byte, and the frame's header has some: it
/// waits silently, which the timeout reports.
fn probe(stream: &TcpStream, addr: SocketAddr) -> Result<(), Failure> {
    const PAYLOAD: &[u8] = b"ringcast?\r\n\r\n";
    let mut ping = Vec::new();
    ClientFrame::Ping { payload: PAYLOAD }.encode(&mut ping);
    let mut s = stream;
    s.write_all(&ping).map_err(|e| {
        Failure::Failed(format!(
            "cannot talk to {addr}: {}",
            describe_connect_error(&e)
        ))
    })?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut got = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    let ended = loop {
        match proto::decode_server(&got, CLIENT_MAX_FRAME) {
            Ok(Decoded::Frame { frame, .. }) => {
                return match frame {
                    ServerFrame::Pong { payload } if payload == PAYLOAD => stream
                        .set_read_timeout(None)
                        .map_err(|e| Failure::Failed(e.to_string())),
                    ServerFrame::Error { code, message, .. } => Err(Failure::Failed(format!(
                        "{addr}: {}",
                        describe_server_error(code, message)
                    ))),
                    _ => Err(not_native(addr, &got, "answered a PING with another frame")),
                };
            }
            Ok(Decoded::Incomplete { .. }) => {}
            Err(_) => return Err(not_native(addr, &got, "")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break "did not answer a PING";
        }
        let _ = stream.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => break "closed the connection without answering a PING",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break "did not answer a PING";
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break "dropped the connection without answering a PING",
        }
    };
    Err(not_native(addr, &got, ended))
}

/// A port that does not speak the native protocol: what it seems to be.
fn not_native(addr: SocketAddr, reply: &[u8], what: &str) -> Failure {
    const HINT: &str = "`ringcast sub` and `ringcast pub` speak ringcast's native protocol, \
                        served on `ringcast serve --listen` (default 7400): check --addr";
    let seems = if reply.starts_with(b"HTTP/") {
        "answered in HTTP: it looks like ringcast's WebSocket/HTTP port \
         (serve --ws-listen, default 7401) or another web server"
            .to_string()
    } else if reply.first().is_some_and(|b| b"-+$*:%_>".contains(b)) {
        "answered in the Redis protocol: it looks like ringcast's Redis port \
         (serve --resp-listen, default 6380) or a Redis server"
            .to_string()
    } else if what.is_empty() {
        "answered in something other than ringcast's native protocol".to_string()
    } else if reply.is_empty() && what.starts_with("did not") {
        format!(
            "{what} within {} s: it is likely ringcast's Redis port (serve --resp-listen, \
             default 6380) or a Redis server, which wait silently for the end of a command, \
             or an overloaded server",
            PROBE_TIMEOUT.as_secs()
        )
    } else {
        what.to_string()
    };
    Failure::Failed(format!("{addr} {seems}; {HINT}"))
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
        ClientError::Protocol(p) => format!(
            "the server broke ringcast's native protocol ({p}); is --addr the port of \
             `ringcast serve --listen`?"
        ),
        other => other.to_string(),
    };
    Failure::Failed(format!("{doing}: {why}"))
}

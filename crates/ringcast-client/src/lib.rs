//! A small blocking client for the ringcast wire protocol over TCP.
//!
//! One [`Client`] owns one `TcpStream`. Requests that have a reply
//! ([`Client::auth`], [`Client::subscribe`], [`Client::unsubscribe`],
//! [`Client::ping`]) send their frame and block until that reply arrives;
//! [`Client::publish`] is fire and forget, like the protocol. Incoming DATA
//! frames are read with [`Client::next_message`].
//!
//! With the `tokio` feature (off by default), `AsyncClient` is the same client
//! for tokio, over `tokio::net::TcpStream` with payloads as `bytes::Bytes`; it
//! splits into an `AsyncReader` and an `AsyncWriter` for a task that reads
//! while others publish. See the `async_client` module.
//!
//! ```no_run
//! use ringcast_client::{Client, ClientError};
//!
//! fn main() -> Result<(), ClientError> {
//!     let mut sub = Client::connect("127.0.0.1:7400")?;
//!     let ack = sub.subscribe("prices.eurusd")?;
//!     println!("first seq will be {} (topic epoch {})", ack.next_seq, ack.epoch);
//!
//!     let mut publisher = Client::connect("127.0.0.1:7400")?;
//!     publisher.publish("prices.eurusd", b"1.0842")?;
//!     publisher.ping(b"")?; // every publish before this PING has reached the server
//!
//!     let msg = sub.next_message()?;
//!     assert_eq!(msg.topic, "prices.eurusd");
//!     println!("seq {}: {}", msg.seq, String::from_utf8_lossy(&msg.payload));
//!     Ok(())
//! }
//! ```
//!
//! # Ordering and buffering
//! The server answers one connection's requests in order, and DATA frames may
//! arrive between a request and its reply. While a request waits, the DATA
//! frames that come first are kept, in order, and handed out by the next
//! [`Client::next_message`] / [`Client::next_frame`] calls: nothing is lost.
//!
//! If a wait is cut short (a read timeout set with
//! [`Client::set_read_timeout`]), the client remembers that a reply is still
//! owed; the next request skips it (queueing it for [`Client::next_frame`])
//! instead of mistaking it for its own.
//!
//! # Errors
//! An ERROR frame from the server becomes [`ClientError::Server`]. Only code 7
//! (too many subscriptions) leaves the connection open; after any other code
//! the server closes it, and the frames received before the error can still be
//! read until [`ClientError::Closed`].
//!
//! # Gaps
//! A server that relays between nodes (`ringcast serve --nats`) may lose
//! frames of a topic published on other nodes (its relay link dropped, or
//! fell behind). The topic's seq stays contiguous (lost frames never got
//! one), so the server says so with a GAP frame (docs/PROTOCOL.md, revision
//! 3): frames may be missing before the next DATA of that topic.
//! [`Client::next_message`] returns it as [`ClientError::Gap`], which
//! [`ClientError::is_recoverable`] reports as recoverable: the connection stays
//! usable and the next call goes on with the frames that follow. A reader that
//! must not miss anything re-reads its source of truth for the topic then.
//! Frames published on the subscriber's own node are never lost this way.
//!
//! ```no_run
//! # use ringcast_client::{Client, ClientError};
//! # fn main() -> Result<(), ClientError> {
//! # let mut sub = Client::connect("127.0.0.1:7400")?;
//! loop {
//!     match sub.next_message() {
//!         Ok(msg) => println!("{} #{}", msg.topic, msg.seq),
//!         Err(ClientError::Gap { topic, reason }) => {
//!             eprintln!("{topic}: frames may be missing ({reason}); reloading it");
//!         }
//!         Err(e) => return Err(e),
//!     }
//! }
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use ringcast_proto::native::{
    self as proto, ClientFrame, Decoded, ErrorCode, ProtoError, ServerFrame, MAX_PING_PAYLOAD,
};

#[cfg(feature = "tokio")]
pub mod async_client;
#[cfg(feature = "tokio")]
pub use async_client::{AsyncClient, AsyncFrame, AsyncMessage, AsyncReader, AsyncWriter};
/// The `bytes` crate, whose `Bytes` the async client's payloads are.
#[cfg(feature = "tokio")]
pub use bytes;

/// Largest frame the client accepts by default (16 MiB), compared with the `len` field.
///
/// Deliberately above the server's default (1 MiB) so that a server configured
/// with a larger `--max-frame` still works with a default client.
pub const DEFAULT_CLIENT_MAX_FRAME: u32 = 16 << 20;

/// The smallest read the client asks the kernel for.
const READ_CHUNK: usize = 64 << 10;

/// How long a client whose write failed keeps reading for the server's ERROR.
const ERROR_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The answer to a SUBSCRIBE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubAck {
    /// Seq of the first DATA frame this subscription receives; every later frame follows without gaps.
    pub next_seq: u64,
    /// The incarnation of the topic's sequence: when it differs from the one
    /// seen before, the topic's seq started again at 1 (docs/PROTOCOL.md,
    /// "Topic lifetime").
    pub epoch: u64,
}

/// A DATA frame, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published on.
    pub topic: String,
    /// Per-topic sequence number: 1 for the topic's first frame, then +1 each.
    pub seq: u64,
    /// CLOCK_REALTIME nanoseconds at which the engine accepted the PUBLISH.
    pub ts_ns: u64,
    /// The published bytes, unchanged.
    pub payload: Vec<u8>,
}

/// Any server-to-client frame, owned: the mirror of [`proto::ServerFrame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedServerFrame {
    /// DATA: a published message.
    Data(Message),
    /// SUBACK for `topic`.
    SubAck {
        topic: String,
        next_seq: u64,
        epoch: u64,
    },
    /// UNSUBACK for `topic`.
    UnsubAck { topic: String },
    /// PONG with the PING's bytes.
    Pong { payload: Vec<u8> },
    /// AUTH accepted.
    AuthOk,
    /// GAP: frames of `topic` published on other nodes may have been lost
    /// before the next DATA of `topic`; `reason` is the server's text for
    /// people (see [Gaps](crate#gaps)).
    Gap { topic: String, reason: String },
    /// ERROR: `code` is raw (see [`ErrorCode::from_u16`]); `topic` is the refused topic for code 7.
    Error {
        code: u16,
        topic: Option<String>,
        message: String,
    },
}

impl From<ServerFrame<'_>> for OwnedServerFrame {
    fn from(frame: ServerFrame<'_>) -> Self {
        match frame {
            ServerFrame::Data {
                seq,
                ts_ns,
                topic,
                payload,
            } => OwnedServerFrame::Data(Message {
                topic: topic.to_owned(),
                seq,
                ts_ns,
                payload: payload.to_vec(),
            }),
            ServerFrame::SubAck {
                next_seq,
                epoch,
                topic,
            } => OwnedServerFrame::SubAck {
                topic: topic.to_owned(),
                next_seq,
                epoch,
            },
            ServerFrame::UnsubAck { topic } => OwnedServerFrame::UnsubAck {
                topic: topic.to_owned(),
            },
            ServerFrame::Pong { payload } => OwnedServerFrame::Pong {
                payload: payload.to_vec(),
            },
            ServerFrame::AuthOk => OwnedServerFrame::AuthOk,
            ServerFrame::Gap { topic, message } => OwnedServerFrame::Gap {
                topic: topic.to_owned(),
                reason: message.to_owned(),
            },
            ServerFrame::Error {
                code,
                topic,
                message,
            } => OwnedServerFrame::Error {
                code,
                topic: topic.map(str::to_owned),
                message: message.to_owned(),
            },
        }
    }
}

impl OwnedServerFrame {
    /// Whether this frame answers a request (SUBACK, UNSUBACK, PONG, AUTH_OK,
    /// or ERROR 7), as opposed to DATA, GAP or an ERROR that ends the connection.
    fn is_reply(&self) -> bool {
        match self {
            OwnedServerFrame::Data(_) | OwnedServerFrame::Gap { .. } => false,
            OwnedServerFrame::Error { code, .. } => !is_fatal(*code),
            OwnedServerFrame::SubAck { .. }
            | OwnedServerFrame::UnsubAck { .. }
            | OwnedServerFrame::Pong { .. }
            | OwnedServerFrame::AuthOk => true,
        }
    }
}

/// Whether the server closes the connection after an ERROR with this code
/// (every code but 7, including codes this version does not know).
fn is_fatal(code: u16) -> bool {
    ErrorCode::from_u16(code).map_or(true, ErrorCode::closes_connection)
}

/// `server error 5 (not authorized): MESSAGE`, without repeating the code's
/// description when the server's message already starts with it.
pub fn describe_server_error(code: u16, message: &str) -> String {
    let what = ErrorCode::from_u16(code).map_or("unknown error code", ErrorCode::description);
    match message {
        "" => format!("server error {code} ({what})"),
        m if m.starts_with(what) => format!("server error {code}: {m}"),
        m => format!("server error {code} ({what}): {m}"),
    }
}

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The socket failed (connect, read, write, or a read timeout: `WouldBlock`/`TimedOut`).
    Io(io::Error),
    /// The server closed the connection (a frame cut short by the close is dropped).
    Closed,
    /// The server sent bytes that are not a valid frame, or one over the client's max frame.
    Protocol(ProtoError),
    /// The server sent an ERROR frame; all codes but 7 close the connection.
    Server { code: u16, message: String },
    /// The topic was refused locally, before anything was sent.
    BadTopic(ProtoError),
    /// The server sent a GAP frame: frames of `topic` published on other
    /// nodes may have been lost before the next message of `topic`, with no
    /// jump in its seq. `reason` is the server's text for people. Recoverable:
    /// the connection stays usable, and the next call returns what follows.
    /// A reader that must not miss anything re-reads its source of truth for
    /// the topic (see [Gaps](crate#gaps)).
    Gap { topic: String, reason: String },
}

impl ClientError {
    /// The protocol's name for a [`ClientError::Server`] code, if this version knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => ErrorCode::from_u16(*code),
            _ => None,
        }
    }

    /// Whether the connection can still be used after this error (a read
    /// timeout, ERROR 7, a locally refused topic, or a GAP).
    pub fn is_recoverable(&self) -> bool {
        match self {
            ClientError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ),
            ClientError::Server { code, .. } => !is_fatal(*code),
            ClientError::BadTopic(_) | ClientError::Gap { .. } => true,
            ClientError::Closed | ClientError::Protocol(_) => false,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                write!(
                    f,
                    "timed out waiting for the server (the read timeout passed)"
                )
            }
            ClientError::Io(e) => write!(f, "connection error: {e}"),
            ClientError::Closed => write!(f, "the server closed the connection"),
            ClientError::Protocol(e) if e.code == ErrorCode::TooLarge => write!(
                f,
                "the server sent a frame over the client's limit ({e}); \
                 raise it with Client::set_max_frame"
            ),
            ClientError::Protocol(e) => write!(
                f,
                "the server broke the ringcast protocol ({e}); is this a ringcast v1 server?"
            ),
            ClientError::Server { code, message } => {
                f.write_str(&describe_server_error(*code, message))?;
                match ErrorCode::from_u16(*code) {
                    Some(ErrorCode::NotAuthorized) => {
                        write!(f, " (authenticate with the server's token first)")
                    }
                    Some(ErrorCode::TooManySubscriptions) => write!(
                        f,
                        " (unsubscribe from something, or raise the server's --max-subscriptions)"
                    ),
                    Some(ErrorCode::SlowConsumer) => {
                        write!(f, " (read faster, or raise the server's --max-backlog)")
                    }
                    Some(ErrorCode::TooLarge) => {
                        write!(f, " (send less, or raise the server's --max-frame)")
                    }
                    Some(ErrorCode::Incomplete) => write!(
                        f,
                        " (send each frame whole and promptly, or raise the server's --frame-timeout)"
                    ),
                    _ => Ok(()),
                }
            }
            ClientError::BadTopic(e) => write!(
                f,
                "invalid topic: {} (a topic is 1 to 255 bytes of UTF-8 with no spaces \
                 or control characters)",
                e.reason
            ),
            ClientError::Gap { topic, reason } => {
                write!(
                    f,
                    "messages of topic {topic} published on other server nodes may have \
                     been lost before its next message"
                )?;
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                write!(f, "; the connection is still usable")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            ClientError::Protocol(e) | ClientError::BadTopic(e) => Some(e),
            ClientError::Closed | ClientError::Server { .. } | ClientError::Gap { .. } => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// A blocking connection to a ringcast server. See the [module docs](self).
pub struct Client {
    stream: TcpStream,
    /// Bytes read from the socket. Invariant: `0 <= head <= tail <= rbuf.len()`;
    /// `rbuf[head..tail]` is received but not yet decoded, the rest is scratch.
    rbuf: Vec<u8>,
    head: usize,
    tail: usize,
    /// Frame encoding scratch, reused for every request.
    wbuf: Vec<u8>,
    /// Frames already read but not yet handed out, in arrival order.
    pending: VecDeque<OwnedServerFrame>,
    /// Replies the server still owes to requests sent by this client, the
    /// current one included while it waits.
    owed: usize,
    max_frame: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.stream.peer_addr().ok())
            .field("buffered_bytes", &(self.tail - self.head))
            .field("pending_frames", &self.pending.len())
            .field("owed_replies", &self.owed)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

impl Client {
    /// Connects to `addr` (each resolved address in turn) and sets TCP_NODELAY.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Client::from_stream(stream))
    }

    /// Wraps an already connected stream, as is (socket options untouched).
    pub fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            rbuf: Vec::new(),
            head: 0,
            tail: 0,
            wbuf: Vec::new(),
            pending: VecDeque::new(),
            owed: 0,
            max_frame: DEFAULT_CLIENT_MAX_FRAME,
        }
    }

    /// Limits how long one read waits (`None`: forever, the default). A call
    /// that runs out of time returns [`ClientError::Io`] with `WouldBlock` or
    /// `TimedOut`, and the connection stays usable.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        Ok(self.stream.set_read_timeout(timeout)?)
    }

    /// Sets the largest frame the client accepts from the server (default
    /// [`DEFAULT_CLIENT_MAX_FRAME`]); a larger one is [`ClientError::Protocol`].
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.stream.peer_addr()?)
    }

    /// The underlying stream, for socket options this type does not wrap.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// Presents `token` and waits for AUTH_OK. A wrong token is
    /// [`ClientError::Server`] with code 5, and the server closes the connection.
    pub fn auth(&mut self, token: &[u8]) -> Result<(), ClientError> {
        self.send(&ClientFrame::Auth { token })?;
        match self.wait_reply()? {
            OwnedServerFrame::AuthOk => Ok(()),
            other => Err(unexpected_reply(&other)),
        }
    }

    /// Subscribes to `topic` and waits for its SUBACK. ERROR 7 (too many
    /// subscriptions) is [`ClientError::Server`] with code 7; the connection
    /// stays usable. DATA frames arriving meanwhile are kept for [`Client::next_message`].
    pub fn subscribe(&mut self, topic: &str) -> Result<SubAck, ClientError> {
        proto::validate_topic(topic.as_bytes()).map_err(ClientError::BadTopic)?;
        self.send(&ClientFrame::Subscribe { topic })?;
        match self.wait_reply()? {
            OwnedServerFrame::SubAck {
                topic: t,
                next_seq,
                epoch,
            } if t == topic => Ok(SubAck { next_seq, epoch }),
            OwnedServerFrame::Error { code, message, .. } => {
                Err(ClientError::Server { code, message })
            }
            other => Err(unexpected_reply(&other)),
        }
    }

    /// Unsubscribes from `topic` and waits for its UNSUBACK; no DATA of
    /// `topic` is received after it (frames already queued are still handed out).
    pub fn unsubscribe(&mut self, topic: &str) -> Result<(), ClientError> {
        proto::validate_topic(topic.as_bytes()).map_err(ClientError::BadTopic)?;
        self.send(&ClientFrame::Unsubscribe { topic })?;
        match self.wait_reply()? {
            OwnedServerFrame::UnsubAck { topic: t } if t == topic => Ok(()),
            other => Err(unexpected_reply(&other)),
        }
    }

    /// Publishes `payload` on `topic`: writes the frame at once and returns
    /// without waiting (the protocol has no reply). The topic is checked
    /// locally first. To know the server has read everything published so
    /// far, follow with [`Client::ping`].
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        proto::validate_topic(topic.as_bytes()).map_err(ClientError::BadTopic)?;
        let frame = ClientFrame::Publish { topic, payload };
        if frame.encoded_len() - proto::LEN_PREFIX > u32::MAX as usize {
            return Err(ClientError::Protocol(ProtoError::new(
                ErrorCode::TooLarge,
                "payload does not fit in one frame (4 GiB)",
            )));
        }
        self.send(&frame)
    }

    /// Sends PING with `payload` (at most 64 bytes) and returns the PONG's bytes.
    /// Replies come in order, so once it returns the server has read every
    /// frame this client sent before it.
    pub fn ping(&mut self, payload: &[u8]) -> Result<Vec<u8>, ClientError> {
        if payload.len() > MAX_PING_PAYLOAD {
            return Err(ClientError::Protocol(ProtoError::new(
                ErrorCode::Malformed,
                "a PING payload is at most 64 bytes",
            )));
        }
        self.send(&ClientFrame::Ping { payload })?;
        match self.wait_reply()? {
            OwnedServerFrame::Pong { payload } => Ok(payload),
            other => Err(unexpected_reply(&other)),
        }
    }

    /// The next DATA frame. An ERROR frame becomes [`ClientError::Server`],
    /// end of stream [`ClientError::Closed`]. A GAP frame becomes
    /// [`ClientError::Gap`], in its place among the messages: recoverable, the
    /// next call returns the messages that follow it (see [Gaps](crate#gaps)).
    /// Replies no request is waiting for (left by a timed-out request) are
    /// skipped; use [`Client::next_frame`] to see them.
    pub fn next_message(&mut self) -> Result<Message, ClientError> {
        loop {
            match self.next_frame()? {
                OwnedServerFrame::Data(msg) => return Ok(msg),
                OwnedServerFrame::Gap { topic, reason } => {
                    return Err(ClientError::Gap { topic, reason })
                }
                OwnedServerFrame::Error { code, message, .. } => {
                    return Err(ClientError::Server { code, message })
                }
                OwnedServerFrame::SubAck { .. }
                | OwnedServerFrame::UnsubAck { .. }
                | OwnedServerFrame::Pong { .. }
                | OwnedServerFrame::AuthOk => continue,
            }
        }
    }

    /// The next frame of any kind, as received: queued frames first, then the
    /// socket. ERROR and GAP frames are returned as frames here, not as errors.
    pub fn next_frame(&mut self) -> Result<OwnedServerFrame, ClientError> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        let frame = self.read_frame()?;
        if frame.is_reply() {
            self.owed = self.owed.saturating_sub(1);
        }
        Ok(frame)
    }

    /// Writes `bytes` to the socket unchanged (for tests that send invalid
    /// frames). Replies to requests sent this way are not tracked: read them
    /// with [`Client::next_frame`].
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.write_failed(e)),
        }
    }

    /// Encodes and writes one frame, counting the reply it will owe.
    fn send(&mut self, frame: &ClientFrame<'_>) -> Result<(), ClientError> {
        self.wbuf.clear();
        frame.encode(&mut self.wbuf);
        if let Err(e) = self.stream.write_all(&self.wbuf) {
            return Err(self.write_failed(e));
        }
        if !matches!(frame, ClientFrame::Publish { .. }) {
            self.owed += 1;
        }
        Ok(())
    }

    /// Reads until the reply to the request just sent (the last one owed).
    /// DATA, GAP, and replies to earlier requests that timed out, are queued; an
    /// ERROR that ends the connection is returned at once as [`ClientError::Server`].
    fn wait_reply(&mut self) -> Result<OwnedServerFrame, ClientError> {
        debug_assert!(self.owed >= 1, "waiting for a reply nothing asked for");
        loop {
            let frame = self.read_frame()?;
            if frame.is_reply() {
                self.owed = self.owed.saturating_sub(1);
                if self.owed == 0 {
                    return Ok(frame);
                }
                self.pending.push_back(frame);
            } else if let OwnedServerFrame::Error { code, message, .. } = frame {
                self.owed = 0;
                return Err(ClientError::Server { code, message });
            } else {
                self.pending.push_back(frame);
            }
        }
    }

    /// A write failed. When the server has closed the connection, it has
    /// usually said why in an ERROR frame first: read for it briefly, so the
    /// caller sees "not authorized" rather than "broken pipe".
    fn write_failed(&mut self, e: io::Error) -> ClientError {
        use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        if !matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted) {
            return ClientError::Io(e);
        }
        let saved = self.stream.read_timeout().ok().flatten();
        if self
            .stream
            .set_read_timeout(Some(ERROR_DRAIN_TIMEOUT))
            .is_err()
        {
            return ClientError::Io(e);
        }
        let result = loop {
            match self.read_frame() {
                Ok(OwnedServerFrame::Error { code, message, .. }) if is_fatal(code) => {
                    break ClientError::Server { code, message }
                }
                Ok(frame) => {
                    if frame.is_reply() {
                        self.owed = self.owed.saturating_sub(1);
                    }
                    self.pending.push_back(frame);
                }
                Err(_) => break ClientError::Io(e),
            }
        };
        // Best effort: the socket is dead anyway if this fails.
        let _ = self.stream.set_read_timeout(saved);
        result
    }

    /// Decodes the next frame from the read buffer, reading from the socket as needed.
    fn read_frame(&mut self) -> Result<OwnedServerFrame, ClientError> {
        loop {
            debug_assert!(self.head <= self.tail && self.tail <= self.rbuf.len());
            let need = match proto::decode_server(&self.rbuf[self.head..self.tail], self.max_frame)
                .map_err(ClientError::Protocol)?
            {
                Decoded::Frame { frame, consumed } => {
                    let frame = OwnedServerFrame::from(frame);
                    self.head += consumed;
                    if self.head == self.tail {
                        self.head = 0;
                        self.tail = 0;
                    }
                    return Ok(frame);
                }
                Decoded::Incomplete { need } => need,
            };
            self.fill(need)?;
        }
    }

    /// Reads once from the socket, first making room for a frame of `need`
    /// bytes in total (compacting, then growing the buffer).
    fn fill(&mut self, need: usize) -> Result<(), ClientError> {
        let buffered = self.tail - self.head;
        let room = need.saturating_sub(buffered).max(READ_CHUNK);
        if self.rbuf.len() - self.tail < room {
            if self.head > 0 {
                self.rbuf.copy_within(self.head..self.tail, 0);
                self.head = 0;
                self.tail = buffered;
            }
            if self.rbuf.len() - self.tail < room {
                self.rbuf.resize(self.tail + room, 0);
            }
        }
        let n = loop {
            match self.stream.read(&mut self.rbuf[self.tail..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ClientError::Io(e)),
            }
        };
        if n == 0 {
            return Err(ClientError::Closed);
        }
        self.tail += n;
        Ok(())
    }
}

/// A reply of the wrong kind for the request that is waiting.
fn unexpected_reply(frame: &OwnedServerFrame) -> ClientError {
    let reason = match frame {
        OwnedServerFrame::SubAck { .. } => "unexpected SUBACK (wrong topic or no SUBSCRIBE)",
        OwnedServerFrame::UnsubAck { .. } => "unexpected UNSUBACK (wrong topic or no UNSUBSCRIBE)",
        OwnedServerFrame::Pong { .. } => "unexpected PONG",
        OwnedServerFrame::AuthOk => "unexpected AUTH_OK",
        OwnedServerFrame::Error { .. } => "unexpected ERROR 7 (no SUBSCRIBE waiting)",
        OwnedServerFrame::Data(_) => "unexpected DATA",
        OwnedServerFrame::Gap { .. } => "unexpected GAP",
    };
    ClientError::Protocol(ProtoError::new(ErrorCode::Malformed, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_proto::native::decode_client;
    use std::net::TcpListener;
    use std::thread;

    /// A scripted fake server on 127.0.0.1:0: `script` runs on the accepted
    /// stream in a thread; the returned client is connected to it.
    fn fake_server(
        script: impl FnOnce(&mut TcpStream) + Send + 'static,
    ) -> (Client, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            script(&mut stream);
        });
        let mut client = Client::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (client, server)
    }

    /// Reads one client frame and returns its kind byte and topic.
    fn read_request(stream: &mut TcpStream) -> (u8, String, Vec<u8>) {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let mut frame = len.to_vec();
        frame.resize(4 + u32::from_le_bytes(len) as usize, 0);
        stream.read_exact(&mut frame[4..]).unwrap();
        let (decoded, consumed) = decode_client(&frame, 1 << 20).unwrap().frame().unwrap();
        assert_eq!(consumed, frame.len());
        match decoded {
            ClientFrame::Publish { topic, payload } => (0x01, topic.into(), payload.to_vec()),
            ClientFrame::Subscribe { topic } => (0x02, topic.into(), Vec::new()),
            ClientFrame::Unsubscribe { topic } => (0x03, topic.into(), Vec::new()),
            ClientFrame::Ping { payload } => (0x04, String::new(), payload.to_vec()),
            ClientFrame::Auth { token } => (0x05, String::new(), token.to_vec()),
        }
    }

    fn send(stream: &mut TcpStream, frame: ServerFrame<'_>) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        stream.write_all(&out).unwrap();
    }

    fn data(seq: u64, topic: &str, payload: &[u8]) -> ServerFrame<'static> {
        // Leak is fine in tests: keeps the helper's signature simple.
        let topic: &'static str = Box::leak(topic.to_owned().into_boxed_str());
        let payload: &'static [u8] = Box::leak(payload.to_vec().into_boxed_slice());
        ServerFrame::Data {
            seq,
            ts_ns: 1_000 + seq,
            topic,
            payload,
        }
    }

    #[test]
    fn subscribe_returns_suback_and_keeps_earlier_data() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x02, "a".into(), vec![]));
            send(s, data(5, "b", b"before"));
            send(
                s,
                ServerFrame::SubAck {
                    next_seq: 6,
                    epoch: 9,
                    topic: "a",
                },
            );
            send(s, data(6, "a", b"after"));
        });
        let ack = client.subscribe("a").unwrap();
        assert_eq!(
            ack,
            SubAck {
                next_seq: 6,
                epoch: 9
            }
        );
        let first = client.next_message().unwrap();
        assert_eq!((first.topic.as_str(), first.seq), ("b", 5));
        assert_eq!(first.payload, b"before");
        assert_eq!(first.ts_ns, 1_005);
        let second = client.next_message().unwrap();
        assert_eq!((second.topic.as_str(), second.seq), ("a", 6));
        assert_eq!(second.payload, b"after");
        server.join().unwrap();
        assert!(matches!(client.next_message(), Err(ClientError::Closed)));
    }

    #[test]
    fn error_7_is_a_server_error_and_the_connection_stays_usable() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s).0, 0x02);
            send(
                s,
                ServerFrame::Error {
                    code: 7,
                    topic: Some("x"),
                    message: "at most 1 subscription",
                },
            );
            let (kind, _, payload) = read_request(s);
            assert_eq!(kind, 0x04);
            send(s, ServerFrame::Pong { payload: &payload });
        });
        match client.subscribe("x") {
            Err(ClientError::Server { code: 7, message }) => {
                assert_eq!(message, "at most 1 subscription")
            }
            other => panic!("expected ERROR 7, got {other:?}"),
        }
        assert_eq!(client.ping(b"still here").unwrap(), b"still here");
        server.join().unwrap();
    }

    #[test]
    fn fatal_error_frame_is_a_server_error_after_earlier_data() {
        let (mut client, server) = fake_server(|s| {
            send(s, data(1, "t", b"kept"));
            send(
                s,
                ServerFrame::Error {
                    code: 6,
                    topic: None,
                    message: "backlog over 8 MiB",
                },
            );
        });
        assert_eq!(client.next_message().unwrap().payload, b"kept");
        let err = client.next_message().unwrap_err();
        assert!(
            matches!(&err, ClientError::Server { code: 6, .. }),
            "{err:?}"
        );
        assert!(!err.is_recoverable());
        assert!(err.to_string().contains("slow consumer"), "{err}");
        server.join().unwrap();
        assert!(matches!(client.next_message(), Err(ClientError::Closed)));
    }

    #[test]
    fn gap_is_a_recoverable_error_in_its_place_among_messages() {
        let (mut client, server) = fake_server(|s| {
            send(s, data(1, "t", b"one"));
            send(
                s,
                ServerFrame::Gap {
                    topic: "t",
                    message: "relay link to NATS was down",
                },
            );
            send(s, data(2, "t", b"two"));
        });
        assert_eq!(client.next_message().unwrap().seq, 1);
        let err = client.next_message().unwrap_err();
        match &err {
            ClientError::Gap { topic, reason } => {
                assert_eq!(
                    (topic.as_str(), reason.as_str()),
                    ("t", "relay link to NATS was down")
                )
            }
            other => panic!("expected a GAP, got {other:?}"),
        }
        assert!(err.is_recoverable());
        assert_eq!(err.error_code(), None);
        let shown = err.to_string();
        assert!(
            shown.contains("topic t") && shown.contains("(relay link to NATS was down)"),
            "{shown}"
        );
        // The connection goes on: the seq did not jump, the GAP said it all.
        let next = client.next_message().unwrap();
        assert_eq!((next.seq, next.payload.as_slice()), (2, &b"two"[..]));
        server.join().unwrap();
        assert!(matches!(client.next_message(), Err(ClientError::Closed)));
    }

    #[test]
    fn gap_before_a_reply_is_kept_in_order_and_next_frame_shows_it() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x02, "a".into(), vec![]));
            send(s, data(4, "a", b"old"));
            // Not a reply: the SUBSCRIBE still waits for its SUBACK.
            send(
                s,
                ServerFrame::Gap {
                    topic: "a",
                    message: "",
                },
            );
            send(
                s,
                ServerFrame::SubAck {
                    next_seq: 5,
                    epoch: 1,
                    topic: "a",
                },
            );
            send(s, data(5, "a", b"new"));
            assert_eq!(read_request(s).0, 0x04);
            send(s, ServerFrame::Pong { payload: b"" });
        });
        assert_eq!(
            client.subscribe("a").unwrap(),
            SubAck {
                next_seq: 5,
                epoch: 1
            }
        );
        assert_eq!(
            client.next_frame().unwrap(),
            OwnedServerFrame::Data(Message {
                topic: "a".into(),
                seq: 4,
                ts_ns: 1_004,
                payload: b"old".to_vec(),
            })
        );
        assert_eq!(
            client.next_frame().unwrap(),
            OwnedServerFrame::Gap {
                topic: "a".into(),
                reason: String::new()
            }
        );
        assert_eq!(client.next_message().unwrap().seq, 5);
        // Nothing is owed any more: a PING gets its own PONG.
        assert_eq!(client.ping(b"").unwrap(), b"");
        server.join().unwrap();
        let err = ClientError::Gap {
            topic: "a".into(),
            reason: String::new(),
        };
        assert!(!err.to_string().contains("()"), "{err}");
    }

    #[test]
    fn eof_is_closed() {
        let (mut client, server) = fake_server(|_| {});
        server.join().unwrap();
        assert!(matches!(client.next_message(), Err(ClientError::Closed)));
        assert!(matches!(client.next_frame(), Err(ClientError::Closed)));
    }

    #[test]
    fn frames_split_across_reads_are_reassembled() {
        let (mut client, server) = fake_server(|s| {
            let mut bytes = Vec::new();
            for seq in 1..=3 {
                data(seq, "topic", &vec![seq as u8; 300]).encode(&mut bytes);
            }
            for chunk in bytes.chunks(7) {
                s.write_all(chunk).unwrap();
                s.flush().unwrap();
            }
        });
        for seq in 1..=3 {
            let m = client.next_message().unwrap();
            assert_eq!(m.seq, seq);
            assert_eq!(m.payload, vec![seq as u8; 300]);
        }
        server.join().unwrap();
    }

    #[test]
    fn publish_checks_the_topic_locally_and_ping_flushes() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x01, "ok".into(), b"hello".to_vec()));
            let (kind, _, payload) = read_request(s);
            assert_eq!(kind, 0x04);
            send(s, ServerFrame::Pong { payload: &payload });
        });
        assert!(matches!(
            client.publish("has space", b"x"),
            Err(ClientError::BadTopic(_))
        ));
        assert!(matches!(
            client.publish("", b"x"),
            Err(ClientError::BadTopic(_))
        ));
        client.publish("ok", b"hello").unwrap();
        assert_eq!(client.ping(b"p").unwrap(), b"p");
        server.join().unwrap();
    }

    #[test]
    fn auth_and_unsubscribe_wait_for_their_replies() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x05, String::new(), b"secret".to_vec()));
            send(s, ServerFrame::AuthOk);
            assert_eq!(read_request(s).0, 0x03);
            send(s, data(2, "t", b""));
            send(s, ServerFrame::UnsubAck { topic: "t" });
        });
        client.auth(b"secret").unwrap();
        client.unsubscribe("t").unwrap();
        assert_eq!(client.next_message().unwrap().seq, 2);
        server.join().unwrap();
    }

    #[test]
    fn a_timed_out_reply_is_skipped_by_the_next_request() {
        let (mut client, server) = fake_server(|s| {
            let (_, _, first) = read_request(s);
            let (_, _, second) = read_request(s);
            send(s, ServerFrame::Pong { payload: &first });
            send(s, ServerFrame::Pong { payload: &second });
        });
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let err = client.ping(b"first").unwrap_err();
        assert!(err.is_recoverable(), "{err:?}");
        client.set_read_timeout(None).unwrap();
        assert_eq!(client.ping(b"second").unwrap(), b"second");
        // The late reply is still visible as a raw frame.
        assert_eq!(
            client.next_frame().unwrap(),
            OwnedServerFrame::Pong {
                payload: b"first".to_vec()
            }
        );
        server.join().unwrap();
    }

    #[test]
    fn oversized_and_invalid_frames_are_protocol_errors() {
        let (mut client, server) = fake_server(|s| {
            send(s, data(1, "t", &[0u8; 100]));
        });
        client.set_max_frame(64);
        let err = client.next_message().unwrap_err();
        assert!(
            matches!(&err, ClientError::Protocol(e) if e.code == ErrorCode::TooLarge),
            "{err:?}"
        );
        server.join().unwrap();

        let (mut client, server) = fake_server(|s| {
            // len 4, kind PUBLISH: a client kind, not valid from a server.
            s.write_all(&[4, 0, 0, 0, 0x01, 0, 0, 0]).unwrap();
        });
        assert!(matches!(
            client.next_frame(),
            Err(ClientError::Protocol(e)) if e.code == ErrorCode::UnknownKind
        ));
        server.join().unwrap();
    }

    #[test]
    fn write_to_a_closed_server_reports_its_error() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s).0, 0x01);
            send(
                s,
                ServerFrame::Error {
                    code: 5,
                    topic: None,
                    message: "PUBLISH needs AUTH",
                },
            );
        });
        client.publish("t", b"x").unwrap();
        server.join().unwrap();
        // The server has closed: after its RST, a write fails, and the client
        // reads the ERROR that was sent before the close instead of reporting
        // a broken pipe.
        let err = (0..10_000)
            .find_map(|_| client.publish("t", &[0u8; 4096]).err())
            .expect("a write to a closed socket fails");
        assert!(
            matches!(&err, ClientError::Server { code: 5, .. }),
            "{err:?}"
        );
    }
}

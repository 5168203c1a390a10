//! An async client for tokio (feature `tokio`): the same protocol and
//! semantics as the blocking [`Client`](crate::Client), over
//! `tokio::net::TcpStream`, with payloads as [`bytes::Bytes`].
//!
//! [`AsyncClient`] has the blocking client's operations as `async fn`s.
//! [`AsyncClient::into_split`] turns it into an [`AsyncReader`], which reads
//! DATA, and an [`AsyncWriter`], which publishes and sends requests, for a
//! subscriber that publishes (or subscribes to more topics) while a task
//! reads. The writer's methods take `&self` and it is `Clone`: requests from
//! several tasks are pipelined, each getting its own reply.
//!
//! ```no_run
//! use ringcast_client::{AsyncClient, ClientError};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ClientError> {
//!     let mut sub = AsyncClient::connect("127.0.0.1:7400").await?;
//!     let ack = sub.subscribe("prices.eurusd").await?;
//!     println!("first seq will be {} (topic epoch {})", ack.next_seq, ack.epoch);
//!
//!     let mut publisher = AsyncClient::connect("127.0.0.1:7400").await?;
//!     publisher.publish("prices.eurusd", "1.0842").await?; // any `impl Into<Bytes>`
//!     publisher.publish_slice("prices.eurusd", &[0x31, 0x2e, 0x30]).await?; // or a copied `&[u8]`
//!     publisher.ping(b"").await?; // every publish before this PING has reached the server
//!
//!     let msg = sub.next_message().await?;
//!     assert_eq!(msg.topic, "prices.eurusd");
//!     println!("seq {}: {:?}", msg.seq, msg.payload); // payload: bytes::Bytes
//!
//!     // Read in one task, publish and subscribe from another.
//!     let (mut reader, writer) = sub.into_split();
//!     let reading = tokio::spawn(async move {
//!         loop {
//!             match reader.next_message().await {
//!                 Ok(msg) => println!("{} #{}: {} bytes", msg.topic, msg.seq, msg.payload.len()),
//!                 // Frames from other nodes may be missing: recoverable, read on.
//!                 Err(ClientError::Gap { topic, reason }) => eprintln!("{topic}: gap ({reason})"),
//!                 Err(_) => break,
//!             }
//!         }
//!     });
//!     writer.subscribe("prices.usdjpy").await?; // its SUBACK is read by the reader task
//!     writer.publish("prices.usdjpy", "151.20").await?;
//!     drop(writer);
//!     reading.await.expect("the reader task panicked");
//!     Ok(())
//! }
//! ```
//!
//! # Ordering and buffering
//! As in the blocking client: replies come in the order of the requests, and
//! DATA frames that arrive while an [`AsyncClient`] request waits for its reply
//! are kept, in order, for [`AsyncClient::next_message`]. After a split, the
//! reader hands out every DATA frame in order and passes each reply to the
//! [`AsyncWriter`] call that waits for it, so **a writer's request completes
//! only while the reader is being read** (`next_message` or `next_frame`
//! running in some task). When the reader is dropped, requests fail with
//! [`ClientError::Io`] (`NotConnected`); publishing still works.
//!
//! A DATA payload is a slice of the client's read buffer, not a copy: holding
//! it keeps the buffer's block (64 KiB or the frame's size) allocated. Copy
//! (`Bytes::copy_from_slice`) a small payload kept for long.
//!
//! # Cancellation
//! Dropping the future of any method (a `tokio::time::timeout`, a losing
//! `tokio::select!` branch) loses nothing: bytes read are kept for the next
//! call; a frame whose write was cut short stays queued and is finished before
//! the next frame is written (or by `flush`); a reply that nobody waits for any
//! more is skipped by the next request and handed out by `next_frame` (as the
//! blocking client does after a read timeout). `next_message` and `next_frame`
//! can thus sit in a `select!` loop.
//!
//! # Errors
//! [`ClientError`], as for the blocking client: an ERROR frame from the server
//! is [`ClientError::Server`]; only code 7 leaves the connection open. After
//! any other code, end of stream or a broken protocol, the frames received
//! before it can still be read until [`ClientError::Closed`], and every
//! request (waiting or new) fails with that error.
//!
//! A GAP frame (frames of a topic published on other nodes may have been
//! lost; see [Gaps](crate#gaps)) is [`ClientError::Gap`] from `next_message`,
//! in its place among the messages, and [`AsyncFrame::Gap`] from
//! `next_frame`. It is recoverable: the connection stays usable, the next
//! call goes on, and requests are not affected.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes, BytesMut};
use ringcast_proto::native::{
    self as proto, ClientFrame, Decoded, ErrorCode, ProtoError, ServerFrame, LEN_PREFIX,
    MAX_PING_PAYLOAD,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{oneshot, Mutex as AsyncMutex};

use crate::{ClientError, SubAck, DEFAULT_CLIENT_MAX_FRAME};

/// The smallest read the client asks the kernel for.
const READ_CHUNK: usize = 64 << 10;
/// Frames are encoded into blocks of at least this size (split off per frame).
const WRITE_BLOCK: usize = 4 << 10;
/// Most buffers handed to one vectored write.
const MAX_IOVECS: usize = 16;

/// A DATA frame, owned; its payload shares the read buffer (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncMessage {
    /// The topic it was published on.
    pub topic: String,
    /// Per-topic sequence number: 1 for the topic's first frame, then +1 each.
    pub seq: u64,
    /// CLOCK_REALTIME nanoseconds at which the engine accepted the PUBLISH.
    pub ts_ns: u64,
    /// The published bytes, unchanged.
    pub payload: Bytes,
}

/// Any server-to-client frame, owned, with `Bytes` payloads: the async
/// counterpart of [`OwnedServerFrame`](crate::OwnedServerFrame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsyncFrame {
    /// DATA: a published message.
    Data(AsyncMessage),
    /// SUBACK for `topic`.
    SubAck {
        topic: String,
        next_seq: u64,
        epoch: u64,
    },
    /// UNSUBACK for `topic`.
    UnsubAck { topic: String },
    /// PONG with the PING's bytes.
    Pong { payload: Bytes },
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

impl AsyncFrame {
    /// Whether this frame answers a request (SUBACK, UNSUBACK, PONG, AUTH_OK,
    /// or ERROR 7), as opposed to DATA, GAP or an ERROR that ends the connection.
    fn is_reply(&self) -> bool {
        match self {
            AsyncFrame::Data(_) | AsyncFrame::Gap { .. } => false,
            AsyncFrame::Error { code, .. } => !is_fatal(*code),
            AsyncFrame::SubAck { .. }
            | AsyncFrame::UnsubAck { .. }
            | AsyncFrame::Pong { .. }
            | AsyncFrame::AuthOk => true,
        }
    }

    /// What `next_message` makes of a frame: the message, an error (ERROR,
    /// GAP), or `None` for a reply nobody waits for, which it skips.
    fn into_message(self) -> Option<Result<AsyncMessage, ClientError>> {
        match self {
            AsyncFrame::Data(msg) => Some(Ok(msg)),
            AsyncFrame::Gap { topic, reason } => Some(Err(ClientError::Gap { topic, reason })),
            AsyncFrame::Error { code, message, .. } => {
                Some(Err(ClientError::Server { code, message }))
            }
            AsyncFrame::SubAck { .. }
            | AsyncFrame::UnsubAck { .. }
            | AsyncFrame::Pong { .. }
            | AsyncFrame::AuthOk => None,
        }
    }

    /// The error this frame is, when it is an ERROR that ends the connection.
    fn fatal_error(&self) -> Option<ClientError> {
        match self {
            AsyncFrame::Error { code, message, .. } if is_fatal(*code) => {
                Some(ClientError::Server {
                    code: *code,
                    message: message.clone(),
                })
            }
            _ => None,
        }
    }
}

/// Whether the server closes the connection after an ERROR with this code
/// (every code but 7, including codes this version does not know).
fn is_fatal(code: u16) -> bool {
    ErrorCode::from_u16(code).map_or(true, ErrorCode::closes_connection)
}

/// What a reader hands to a waiting request: its reply, or why none will come.
type Reply = Result<AsyncFrame, ClientError>;

/// A connection to a ringcast server for tokio. See the [module docs](self).
pub struct AsyncClient {
    reader: AsyncReader,
    writer: AsyncWriter,
}

/// The reading half of a split [`AsyncClient`]: DATA frames, in order, and
/// the replies to the [`AsyncWriter`]'s requests, passed on to them.
pub struct AsyncReader {
    io: OwnedReadHalf,
    /// Bytes received and not yet decoded.
    rbuf: BytesMut,
    max_frame: u32,
    /// Frames read while an [`AsyncClient`] request waited, in arrival order.
    pending: VecDeque<AsyncFrame>,
    shared: Arc<Shared>,
}

/// The writing half of a split [`AsyncClient`]: publishes and requests.
/// Cheap to clone; clones write to the same connection, one whole frame at a
/// time, and their requests are pipelined.
#[derive(Clone)]
pub struct AsyncWriter {
    shared: Arc<Shared>,
}

/// What both halves reach.
struct Shared {
    /// Locked briefly, never across an await.
    routing: Mutex<Routing>,
    /// Held across the writes of one frame, so frames never interleave.
    write: AsyncMutex<WriteSide>,
    peer: Option<SocketAddr>,
}

/// Who waits for the next replies, and whether the connection has ended.
#[derive(Default)]
struct Routing {
    /// One per request written (or queued to be written) whose reply has not
    /// been read, in request order. A sender whose receiver is gone belongs to
    /// a call that stopped waiting: its reply goes to `next_frame`.
    waiters: VecDeque<oneshot::Sender<Reply>>,
    /// How the connection ended, as the reader saw it first.
    ended: Option<ClientError>,
    /// The reader is gone: no reply will ever be read.
    reader_dropped: bool,
}

/// The write half and the bytes not yet written to it.
struct WriteSide {
    io: OwnedWriteHalf,
    /// Whole frames (or their pieces) in order; the front one may be partly
    /// written already when a write was cut short.
    unsent: VecDeque<Bytes>,
    /// Frames are encoded here, then split off.
    scratch: BytesMut,
}

/// A frame to write.
enum Outgoing<'a> {
    Frame(ClientFrame<'a>),
    /// A PUBLISH whose payload is written from `payload` as is, after a head
    /// whose `len` field is `len` (head and payload).
    Publish {
        topic: &'a str,
        payload: Bytes,
        len: u32,
    },
    Raw(&'a [u8]),
}

impl AsyncClient {
    /// Connects to `addr` (each resolved address in turn) and sets TCP_NODELAY.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<AsyncClient, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(AsyncClient::from_stream(stream))
    }

    /// Wraps an already connected stream, as is (socket options untouched).
    pub fn from_stream(stream: TcpStream) -> AsyncClient {
        let peer = stream.peer_addr().ok();
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            routing: Mutex::new(Routing::default()),
            write: AsyncMutex::new(WriteSide {
                io: write,
                unsent: VecDeque::new(),
                scratch: BytesMut::new(),
            }),
            peer,
        });
        AsyncClient {
            reader: AsyncReader {
                io: read,
                rbuf: BytesMut::new(),
                max_frame: DEFAULT_CLIENT_MAX_FRAME,
                pending: VecDeque::new(),
                shared: Arc::clone(&shared),
            },
            writer: AsyncWriter { shared },
        }
    }

    /// Splits the connection into a reader and a writer that can be used from
    /// different tasks. Frames already received, replies still owed and bytes
    /// not yet written carry over. The connection closes when both halves
    /// (and every clone of the writer) are dropped.
    pub fn into_split(self) -> (AsyncReader, AsyncWriter) {
        (self.reader, self.writer)
    }

    /// Sets the largest frame the client accepts from the server (default
    /// [`DEFAULT_CLIENT_MAX_FRAME`]); a larger one is [`ClientError::Protocol`].
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.reader.set_max_frame(max_frame);
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Result<SocketAddr, ClientError> {
        self.reader.peer_addr()
    }

    /// The underlying stream, for socket options this type does not wrap.
    pub fn get_ref(&self) -> &TcpStream {
        self.reader.io.as_ref()
    }

    /// Presents `token` and waits for AUTH_OK. A wrong token is
    /// [`ClientError::Server`] with code 5, and the server closes the connection.
    pub async fn auth(&mut self, token: &[u8]) -> Result<(), ClientError> {
        let reply = self.request(ClientFrame::Auth { token }).await?;
        auth_ok(reply)
    }

    /// Subscribes to `topic` and waits for its SUBACK. ERROR 7 (too many
    /// subscriptions) is [`ClientError::Server`] with code 7; the connection
    /// stays usable. DATA frames arriving meanwhile are kept for
    /// [`AsyncClient::next_message`].
    pub async fn subscribe(&mut self, topic: &str) -> Result<SubAck, ClientError> {
        check_topic(topic)?;
        let reply = self.request(ClientFrame::Subscribe { topic }).await?;
        suback(topic, reply)
    }

    /// Unsubscribes from `topic` and waits for its UNSUBACK; no DATA of
    /// `topic` is received after it (frames already queued are still handed out).
    pub async fn unsubscribe(&mut self, topic: &str) -> Result<(), ClientError> {
        check_topic(topic)?;
        let reply = self.request(ClientFrame::Unsubscribe { topic }).await?;
        unsuback(topic, reply)
    }

    /// Publishes `payload` on `topic` and returns once the frame is written
    /// (the protocol has no reply). The payload is written from the `Bytes`
    /// as is, not copied. The topic is checked locally first. To know the
    /// server has read everything published so far, follow with
    /// [`AsyncClient::ping`].
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        let out = publish_frame(topic, payload.into())?;
        self.send(out).await
    }

    /// [`AsyncClient::publish`] from a borrowed slice, copied into the frame.
    pub async fn publish_slice(&mut self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        check_publish(topic, payload.len())?;
        self.send(Outgoing::Frame(ClientFrame::Publish { topic, payload }))
            .await
    }

    /// Sends PING with `payload` (at most 64 bytes) and returns the PONG's bytes.
    /// Replies come in order, so once it returns the server has read every
    /// frame this client sent before it.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<Bytes, ClientError> {
        check_ping(payload)?;
        let reply = self.request(ClientFrame::Ping { payload }).await?;
        pong(reply)
    }

    /// The next DATA frame. An ERROR frame becomes [`ClientError::Server`],
    /// end of stream [`ClientError::Closed`]. A GAP frame becomes
    /// [`ClientError::Gap`], in its place among the messages: recoverable, the
    /// next call returns the messages that follow it (see [Gaps](crate#gaps)).
    /// Replies no request is waiting for (left by a request whose future was
    /// dropped) are skipped; use [`AsyncClient::next_frame`] to see them.
    pub async fn next_message(&mut self) -> Result<AsyncMessage, ClientError> {
        loop {
            if let Some(message) = self.next_frame().await?.into_message() {
                return message;
            }
        }
    }

    /// The next frame of any kind, as received: queued frames first, then the
    /// socket. ERROR and GAP frames are returned as frames here, not as errors.
    pub async fn next_frame(&mut self) -> Result<AsyncFrame, ClientError> {
        if self.reader.pending.is_empty() {
            // Finish a frame whose write was cut short, so that its reply (or
            // the server's patience with a half frame) is not left waiting.
            // A failed write shows up as the read's error.
            let _ = self.writer.shared.flush().await;
        }
        self.reader.next_frame().await
    }

    /// Writes `bytes` to the socket unchanged (for tests that send invalid
    /// frames). Replies to requests sent this way are not tracked: read them
    /// with [`AsyncClient::next_frame`].
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.send(Outgoing::Raw(bytes)).await
    }

    /// Writes whatever is left of a frame whose write was cut short (a
    /// dropped future). Every other call does it first anyway.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        match self.writer.shared.flush().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.write_failed(e).await),
        }
    }

    /// Writes a frame that has no reply.
    async fn send(&mut self, out: Outgoing<'_>) -> Result<(), ClientError> {
        match self.writer.shared.transmit(out, None).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.write_failed(e).await),
        }
    }

    /// Sends a request and reads until its reply, keeping what comes first.
    async fn request(&mut self, frame: ClientFrame<'_>) -> Result<AsyncFrame, ClientError> {
        let mut rx = match self.writer.shared.request(frame).await {
            Ok(rx) => rx,
            Err(e) => return Err(self.write_failed(e).await),
        };
        loop {
            match rx.try_recv() {
                Ok(reply) => return reply,
                Err(oneshot::error::TryRecvError::Closed) => return Err(self.writer.shared.gone()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            // The reader passes this request's reply (or the connection's
            // end) to `rx`; everything else is kept for next_frame, except an
            // ERROR that ends the connection, which `rx` receives as the error.
            if let Some(frame) = self.reader.read_routed().await? {
                if frame.fatal_error().is_none() {
                    self.reader.pending.push_back(frame);
                }
            }
        }
    }

    /// A write failed. When the server has closed the connection, it has
    /// usually said why in an ERROR frame first: read for it, so the caller
    /// sees "not authorized" rather than "broken pipe". (The socket is dead,
    /// so the reads end at once.)
    async fn write_failed(&mut self, e: ClientError) -> ClientError {
        if !is_broken(&e) {
            return e;
        }
        loop {
            match self.reader.read_routed().await {
                Ok(Some(frame)) => match frame.fatal_error() {
                    Some(err) => return err,
                    None => self.reader.pending.push_back(frame),
                },
                Ok(None) => {}
                Err(_) => return self.writer.shared.server_error().unwrap_or(e),
            }
        }
    }
}

impl AsyncReader {
    /// Sets the largest frame accepted from the server (default
    /// [`DEFAULT_CLIENT_MAX_FRAME`]); a larger one is [`ClientError::Protocol`].
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.io.peer_addr()?)
    }

    /// The next DATA frame, passing replies on to the [`AsyncWriter`] calls
    /// waiting for them. An ERROR frame becomes [`ClientError::Server`], end
    /// of stream [`ClientError::Closed`]. A GAP frame becomes
    /// [`ClientError::Gap`], in its place among the messages: recoverable, the
    /// next call returns the messages that follow it (see [Gaps](crate#gaps)).
    /// Replies no call waits for are skipped; [`AsyncReader::next_frame`]
    /// shows them.
    pub async fn next_message(&mut self) -> Result<AsyncMessage, ClientError> {
        loop {
            if let Some(message) = self.next_frame().await?.into_message() {
                return message;
            }
        }
    }

    /// The next frame that no [`AsyncWriter`] call is waiting for: DATA, a
    /// GAP or an ERROR (as a frame), or a reply whose caller stopped waiting.
    pub async fn next_frame(&mut self) -> Result<AsyncFrame, ClientError> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        loop {
            if let Some(frame) = self.read_routed().await? {
                return Ok(frame);
            }
        }
    }

    /// Reads one frame. A reply goes to the request waiting for it (`None`)
    /// unless that request stopped waiting (`Some`, like DATA). When the
    /// connection ends (a fatal ERROR, end of stream, a read error, a broken
    /// frame), every waiting request gets the error and later ones fail with it.
    async fn read_routed(&mut self) -> Result<Option<AsyncFrame>, ClientError> {
        let frame = match self.read_frame().await {
            Ok(frame) => frame,
            Err(e) => {
                self.shared.end(&e);
                return Err(e);
            }
        };
        if frame.is_reply() {
            let waiter = self.shared.routing().waiters.pop_front();
            let Some(tx) = waiter else {
                return Ok(Some(frame));
            };
            return match tx.send(Ok(frame)) {
                Ok(()) => Ok(None),
                // The request stopped waiting: the reply goes to next_frame.
                Err(unsent) => unsent.map(Some),
            };
        }
        if let Some(e) = frame.fatal_error() {
            self.shared.end(&e);
        }
        Ok(Some(frame))
    }

    /// Decodes the next frame from the read buffer, reading from the socket as needed.
    async fn read_frame(&mut self) -> Result<AsyncFrame, ClientError> {
        loop {
            let need = match decode(&mut self.rbuf, self.max_frame)? {
                Step::Frame(frame) => return Ok(frame),
                Step::Need(need) => need,
            };
            let missing = need.saturating_sub(self.rbuf.len());
            self.rbuf.reserve(missing.max(READ_CHUNK));
            // Cancel-safe: either bytes were appended or nothing happened.
            if self.io.read_buf(&mut self.rbuf).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}

impl Drop for AsyncReader {
    fn drop(&mut self) {
        let mut routing = self.shared.routing();
        routing.reader_dropped = true;
        // Dropping the senders wakes the waiting requests (see Shared::gone).
        routing.waiters.clear();
    }
}

impl AsyncWriter {
    /// The server's address.
    pub fn peer_addr(&self) -> Result<SocketAddr, ClientError> {
        self.shared.peer.ok_or_else(|| {
            ClientError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket had no peer address",
            ))
        })
    }

    /// Presents `token` and waits for AUTH_OK (read by the [`AsyncReader`]).
    /// A wrong token is [`ClientError::Server`] with code 5, and the server
    /// closes the connection.
    pub async fn auth(&self, token: &[u8]) -> Result<(), ClientError> {
        let rx = self.request(ClientFrame::Auth { token }).await?;
        auth_ok(self.reply(rx).await?)
    }

    /// Subscribes to `topic` and waits for its SUBACK (read by the
    /// [`AsyncReader`], which hands out the DATA that follows). ERROR 7 is
    /// [`ClientError::Server`] with code 7; the connection stays usable.
    pub async fn subscribe(&self, topic: &str) -> Result<SubAck, ClientError> {
        check_topic(topic)?;
        let rx = self.request(ClientFrame::Subscribe { topic }).await?;
        suback(topic, self.reply(rx).await?)
    }

    /// Unsubscribes from `topic` and waits for its UNSUBACK (read by the
    /// [`AsyncReader`]); no DATA of `topic` is read after it.
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), ClientError> {
        check_topic(topic)?;
        let rx = self.request(ClientFrame::Unsubscribe { topic }).await?;
        unsuback(topic, self.reply(rx).await?)
    }

    /// Publishes `payload` on `topic` and returns once the frame is written
    /// (see [`AsyncClient::publish`]). Needs no reader.
    pub async fn publish(&self, topic: &str, payload: impl Into<Bytes>) -> Result<(), ClientError> {
        let out = publish_frame(topic, payload.into())?;
        self.send(out).await
    }

    /// [`AsyncWriter::publish`] from a borrowed slice, copied into the frame.
    pub async fn publish_slice(&self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        check_publish(topic, payload.len())?;
        self.send(Outgoing::Frame(ClientFrame::Publish { topic, payload }))
            .await
    }

    /// Sends PING with `payload` (at most 64 bytes) and returns the PONG's
    /// bytes (read by the [`AsyncReader`]). Once it returns, the server has
    /// read every frame written before it, by this writer and its clones.
    pub async fn ping(&self, payload: &[u8]) -> Result<Bytes, ClientError> {
        check_ping(payload)?;
        let rx = self.request(ClientFrame::Ping { payload }).await?;
        pong(self.reply(rx).await?)
    }

    /// Writes `bytes` unchanged (see [`AsyncClient::send_raw`]); replies to
    /// requests sent this way come out of [`AsyncReader::next_frame`], or are
    /// mistaken for the reply of a request sent after them.
    pub async fn send_raw(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.send(Outgoing::Raw(bytes)).await
    }

    /// Writes whatever is left of a frame whose write was cut short (a
    /// dropped future). Every other call does it first anyway.
    pub async fn flush(&self) -> Result<(), ClientError> {
        self.shared.flush().await.map_err(|e| self.write_failed(e))
    }

    async fn send(&self, out: Outgoing<'_>) -> Result<(), ClientError> {
        self.shared
            .transmit(out, None)
            .await
            .map_err(|e| self.write_failed(e))
    }

    async fn request(
        &self,
        frame: ClientFrame<'_>,
    ) -> Result<oneshot::Receiver<Reply>, ClientError> {
        self.shared
            .request(frame)
            .await
            .map_err(|e| self.write_failed(e))
    }

    async fn reply(&self, rx: oneshot::Receiver<Reply>) -> Result<AsyncFrame, ClientError> {
        rx.await.unwrap_or_else(|_| Err(self.shared.gone()))
    }

    /// A write failed: when the reader has seen the server's ERROR (sent
    /// before it closed the connection), that is the better answer.
    fn write_failed(&self, e: ClientError) -> ClientError {
        if is_broken(&e) {
            self.shared.server_error().unwrap_or(e)
        } else {
            e
        }
    }
}

impl Shared {
    fn routing(&self) -> MutexGuard<'_, Routing> {
        // Nothing panics while holding it; a poisoned lock still holds valid state.
        self.routing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `out` after anything left unwritten, registering `waiter` for
    /// its reply first (under the write lock, so waiters are in wire order).
    async fn transmit(
        &self,
        out: Outgoing<'_>,
        waiter: Option<oneshot::Sender<Reply>>,
    ) -> Result<(), ClientError> {
        let mut write = self.write.lock().await;
        write.flush().await?;
        if let Some(tx) = waiter {
            self.register(tx)?;
        }
        // From here the frame is committed: if this future is dropped, its
        // rest is written before the next frame, and its reply skipped.
        write.queue(out);
        write.flush().await?;
        Ok(())
    }

    async fn request(
        &self,
        frame: ClientFrame<'_>,
    ) -> Result<oneshot::Receiver<Reply>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.transmit(Outgoing::Frame(frame), Some(tx)).await?;
        Ok(rx)
    }

    async fn flush(&self) -> Result<(), ClientError> {
        Ok(self.write.lock().await.flush().await?)
    }

    /// Queues `tx` for the next reply, unless no reply can come.
    fn register(&self, tx: oneshot::Sender<Reply>) -> Result<(), ClientError> {
        let mut routing = self.routing();
        if let Some(e) = &routing.ended {
            return Err(duplicate(e));
        }
        if routing.reader_dropped {
            return Err(reader_dropped());
        }
        routing.waiters.push_back(tx);
        Ok(())
    }

    /// The connection has ended with `e`: waiting requests fail with it, and so will later ones.
    fn end(&self, e: &ClientError) {
        let mut routing = self.routing();
        if routing.ended.is_none() {
            routing.ended = Some(duplicate(e));
        }
        for tx in routing.waiters.drain(..) {
            let _ = tx.send(Err(duplicate(e)));
        }
    }

    /// Why a request's reply will never come (its sender was dropped).
    fn gone(&self) -> ClientError {
        match &self.routing().ended {
            Some(e) => duplicate(e),
            None => reader_dropped(),
        }
    }

    /// The server's ERROR that ended the connection, if the reader has seen one.
    fn server_error(&self) -> Option<ClientError> {
        match &self.routing().ended {
            Some(e @ ClientError::Server { .. }) => Some(duplicate(e)),
            _ => None,
        }
    }
}

impl WriteSide {
    /// Encodes `frame` into a block of its own, split off the scratch buffer.
    fn encode(&mut self, frame: &ClientFrame<'_>) -> BytesMut {
        let n = frame.encoded_len();
        if self.scratch.capacity() < n {
            self.scratch.reserve(n.max(WRITE_BLOCK));
        }
        self.scratch.resize(n, 0);
        let written = frame.encode_to_slice(&mut self.scratch);
        debug_assert_eq!(written, n);
        self.scratch.split()
    }

    fn queue(&mut self, out: Outgoing<'_>) {
        match out {
            Outgoing::Frame(frame) => {
                let bytes = self.encode(&frame).freeze();
                self.unsent.push_back(bytes);
            }
            Outgoing::Publish {
                topic,
                payload,
                len,
            } => {
                // A PUBLISH's payload is the rest of the frame: encode the
                // frame without it, set `len` to cover it, and write the
                // payload's bytes after the head as they are.
                let mut head = self.encode(&ClientFrame::Publish {
                    topic,
                    payload: &[],
                });
                head[..LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
                self.unsent.push_back(head.freeze());
                if !payload.is_empty() {
                    self.unsent.push_back(payload);
                }
            }
            Outgoing::Raw(bytes) => {
                if !bytes.is_empty() {
                    self.unsent.push_back(Bytes::copy_from_slice(bytes));
                }
            }
        }
    }

    /// Writes everything queued. Cancel-safe: what was written is dropped
    /// from the queue as soon as the write returns.
    async fn flush(&mut self) -> io::Result<()> {
        while !self.unsent.is_empty() {
            let n = {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let count = self.unsent.len().min(MAX_IOVECS);
                for (slot, bytes) in slices.iter_mut().zip(&self.unsent) {
                    *slot = IoSlice::new(bytes);
                }
                self.io.write_vectored(&slices[..count]).await?
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.consume(n);
        }
        Ok(())
    }

    /// Drops `n` written bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.unsent.front_mut() else {
                debug_assert!(false, "wrote more than was queued");
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.unsent.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

/// One decode attempt on the read buffer.
enum Step {
    Frame(AsyncFrame),
    /// At least this many bytes in total are needed.
    Need(usize),
}

/// Decodes one frame from the start of `rbuf` and removes it. DATA and PONG
/// payloads, the rest of their frame by the protocol's layout, are sliced
/// out of the received bytes rather than copied.
fn decode(rbuf: &mut BytesMut, max_frame: u32) -> Result<Step, ClientError> {
    /// A decoded frame, apart from the payload still borrowed from `rbuf`.
    enum Head {
        Data { topic: String, seq: u64, ts_ns: u64 },
        Pong,
        Whole(AsyncFrame),
    }
    let (head, payload_len, consumed) =
        match proto::decode_server(rbuf, max_frame).map_err(ClientError::Protocol)? {
            Decoded::Incomplete { need } => return Ok(Step::Need(need)),
            Decoded::Frame { frame, consumed } => {
                let (head, payload_len) = match frame {
                    ServerFrame::Data {
                        seq,
                        ts_ns,
                        topic,
                        payload,
                    } => (
                        Head::Data {
                            topic: topic.to_owned(),
                            seq,
                            ts_ns,
                        },
                        payload.len(),
                    ),
                    ServerFrame::Pong { payload } => (Head::Pong, payload.len()),
                    ServerFrame::SubAck {
                        next_seq,
                        epoch,
                        topic,
                    } => (
                        Head::Whole(AsyncFrame::SubAck {
                            topic: topic.to_owned(),
                            next_seq,
                            epoch,
                        }),
                        0,
                    ),
                    ServerFrame::UnsubAck { topic } => (
                        Head::Whole(AsyncFrame::UnsubAck {
                            topic: topic.to_owned(),
                        }),
                        0,
                    ),
                    ServerFrame::AuthOk => (Head::Whole(AsyncFrame::AuthOk), 0),
                    ServerFrame::Gap { topic, message } => (
                        Head::Whole(AsyncFrame::Gap {
                            topic: topic.to_owned(),
                            reason: message.to_owned(),
                        }),
                        0,
                    ),
                    ServerFrame::Error {
                        code,
                        topic,
                        message,
                    } => (
                        Head::Whole(AsyncFrame::Error {
                            code,
                            topic: topic.map(str::to_owned),
                            message: message.to_owned(),
                        }),
                        0,
                    ),
                };
                (head, payload_len, consumed)
            }
        };
    if let Head::Whole(frame) = head {
        rbuf.advance(consumed);
        return Ok(Step::Frame(frame));
    }
    let payload = rbuf
        .split_to(consumed)
        .freeze()
        .slice(consumed - payload_len..);
    Ok(Step::Frame(match head {
        Head::Data { topic, seq, ts_ns } => AsyncFrame::Data(AsyncMessage {
            topic,
            seq,
            ts_ns,
            payload,
        }),
        Head::Pong => AsyncFrame::Pong { payload },
        Head::Whole(_) => unreachable!("returned above"),
    }))
}

fn check_topic(topic: &str) -> Result<(), ClientError> {
    proto::validate_topic(topic.as_bytes())
        .map(drop)
        .map_err(ClientError::BadTopic)
}

/// Checks a PUBLISH and returns its `len` field.
fn check_publish(topic: &str, payload_len: usize) -> Result<u32, ClientError> {
    check_topic(topic)?;
    let head = ClientFrame::Publish {
        topic,
        payload: &[],
    }
    .encoded_len();
    (head - LEN_PREFIX)
        .checked_add(payload_len)
        .and_then(|len| u32::try_from(len).ok())
        .ok_or(ClientError::Protocol(ProtoError::new(
            ErrorCode::TooLarge,
            "payload does not fit in one frame (4 GiB)",
        )))
}

fn publish_frame(topic: &str, payload: Bytes) -> Result<Outgoing<'_>, ClientError> {
    let len = check_publish(topic, payload.len())?;
    Ok(Outgoing::Publish {
        topic,
        payload,
        len,
    })
}

fn check_ping(payload: &[u8]) -> Result<(), ClientError> {
    if payload.len() > MAX_PING_PAYLOAD {
        return Err(ClientError::Protocol(ProtoError::new(
            ErrorCode::Malformed,
            "a PING payload is at most 64 bytes",
        )));
    }
    Ok(())
}

fn auth_ok(reply: AsyncFrame) -> Result<(), ClientError> {
    match reply {
        AsyncFrame::AuthOk => Ok(()),
        other => Err(unexpected_reply(&other)),
    }
}

fn suback(topic: &str, reply: AsyncFrame) -> Result<SubAck, ClientError> {
    match reply {
        AsyncFrame::SubAck {
            topic: t,
            next_seq,
            epoch,
        } if t == topic => Ok(SubAck { next_seq, epoch }),
        AsyncFrame::Error { code, message, .. } => Err(ClientError::Server { code, message }),
        other => Err(unexpected_reply(&other)),
    }
}

fn unsuback(topic: &str, reply: AsyncFrame) -> Result<(), ClientError> {
    match reply {
        AsyncFrame::UnsubAck { topic: t } if t == topic => Ok(()),
        other => Err(unexpected_reply(&other)),
    }
}

fn pong(reply: AsyncFrame) -> Result<Bytes, ClientError> {
    match reply {
        AsyncFrame::Pong { payload } => Ok(payload),
        other => Err(unexpected_reply(&other)),
    }
}

/// A reply of the wrong kind for the request that is waiting.
fn unexpected_reply(frame: &AsyncFrame) -> ClientError {
    let reason = match frame {
        AsyncFrame::SubAck { .. } => "unexpected SUBACK (wrong topic or no SUBSCRIBE)",
        AsyncFrame::UnsubAck { .. } => "unexpected UNSUBACK (wrong topic or no UNSUBSCRIBE)",
        AsyncFrame::Pong { .. } => "unexpected PONG",
        AsyncFrame::AuthOk => "unexpected AUTH_OK",
        AsyncFrame::Error { .. } => "unexpected ERROR 7 (no SUBSCRIBE waiting)",
        AsyncFrame::Data(_) => "unexpected DATA",
        AsyncFrame::Gap { .. } => "unexpected GAP",
    };
    ClientError::Protocol(ProtoError::new(ErrorCode::Malformed, reason))
}

/// Whether a write error means the server has closed the connection.
fn is_broken(e: &ClientError) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e, ClientError::Io(e) if matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted))
}

fn reader_dropped() -> ClientError {
    ClientError::Io(io::Error::new(
        io::ErrorKind::NotConnected,
        "the AsyncReader was dropped: nothing reads the replies to requests",
    ))
}

/// A copy of `e` for one more recipient (`io::Error` is not `Clone`: kind and text are kept).
fn duplicate(e: &ClientError) -> ClientError {
    match e {
        ClientError::Io(e) => ClientError::Io(io::Error::new(e.kind(), e.to_string())),
        ClientError::Closed => ClientError::Closed,
        ClientError::Protocol(e) => ClientError::Protocol(*e),
        ClientError::Server { code, message } => ClientError::Server {
            code: *code,
            message: message.clone(),
        },
        ClientError::BadTopic(e) => ClientError::BadTopic(*e),
        ClientError::Gap { topic, reason } => ClientError::Gap {
            topic: topic.clone(),
            reason: reason.clone(),
        },
    }
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("reader", &self.reader)
            .field("writer", &self.writer)
            .finish()
    }
}

impl fmt::Debug for AsyncReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncReader")
            .field("peer", &self.shared.peer)
            .field("buffered_bytes", &self.rbuf.len())
            .field("pending_frames", &self.pending.len())
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

impl fmt::Debug for AsyncWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routing = self.shared.routing();
        f.debug_struct("AsyncWriter")
            .field("peer", &self.shared.peer)
            .field("owed_replies", &routing.waiters.len())
            .field("ended", &routing.ended)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_proto::native::decode_client;
    use std::future::Future;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;
    use std::time::Duration;

    /// Every await in these tests is bounded, so a hang fails.
    const LIMIT: Duration = Duration::from_secs(20);

    async fn t<F: Future>(fut: F) -> F::Output {
        tokio::time::timeout(LIMIT, fut)
            .await
            .expect("timed out: the client or the fake server hangs")
    }

    /// A scripted fake server on 127.0.0.1:0 (blocking, in a thread); the
    /// returned client is connected to it.
    async fn fake_server(
        script: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
    ) -> (AsyncClient, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(LIMIT)).unwrap();
            script(&mut stream);
        });
        let client = t(AsyncClient::connect(addr)).await.unwrap();
        (client, server)
    }

    /// Waits for the fake server's script to finish (and fails if it panicked).
    async fn join(server: thread::JoinHandle<()>) {
        t(tokio::task::spawn_blocking(move || server.join()))
            .await
            .unwrap()
            .expect("the fake server's script failed");
    }

    /// Reads one client frame: its kind byte, topic and payload.
    fn read_request(stream: &mut std::net::TcpStream) -> (u8, String, Vec<u8>) {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let mut frame = len.to_vec();
        frame.resize(4 + u32::from_le_bytes(len) as usize, 0);
        stream.read_exact(&mut frame[4..]).unwrap();
        let (decoded, consumed) = decode_client(&frame, u32::MAX).unwrap().frame().unwrap();
        assert_eq!(consumed, frame.len());
        match decoded {
            ClientFrame::Publish { topic, payload } => (0x01, topic.into(), payload.to_vec()),
            ClientFrame::Subscribe { topic } => (0x02, topic.into(), Vec::new()),
            ClientFrame::Unsubscribe { topic } => (0x03, topic.into(), Vec::new()),
            ClientFrame::Ping { payload } => (0x04, String::new(), payload.to_vec()),
            ClientFrame::Auth { token } => (0x05, String::new(), token.to_vec()),
        }
    }

    fn send(stream: &mut std::net::TcpStream, frame: ServerFrame<'_>) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        stream.write_all(&out).unwrap();
    }

    fn data(stream: &mut std::net::TcpStream, seq: u64, topic: &str, payload: &[u8]) {
        send(
            stream,
            ServerFrame::Data {
                seq,
                ts_ns: 1_000 + seq,
                topic,
                payload,
            },
        );
    }

    fn error(stream: &mut std::net::TcpStream, code: u16, topic: Option<&str>, message: &str) {
        send(
            stream,
            ServerFrame::Error {
                code,
                topic,
                message,
            },
        );
    }

    fn pong_back(stream: &mut std::net::TcpStream) {
        let (kind, _, payload) = read_request(stream);
        assert_eq!(kind, 0x04, "expected a PING");
        send(stream, ServerFrame::Pong { payload: &payload });
    }

    /// Compile-time check: every future can be spawned on a multi-thread
    /// runtime, and the halves can move to other tasks.
    #[allow(dead_code)]
    fn futures_are_send(client: &mut AsyncClient, reader: &mut AsyncReader, writer: &AsyncWriter) {
        fn send<T: Send>(_: T) {}
        send(client.subscribe("t"));
        send(client.publish("t", "x"));
        send(client.ping(b""));
        send(client.next_message());
        send(reader.next_frame());
        send(writer.subscribe("t"));
        send(writer.publish_slice("t", b"x"));
        send(writer.ping(b""));
        send(writer.clone());
        fn sync<T: Sync>(_: &T) {}
        sync(writer);
    }

    #[tokio::test]
    async fn subscribe_returns_suback_and_keeps_earlier_data() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x02, "a".into(), vec![]));
            data(s, 5, "b", b"before");
            send(
                s,
                ServerFrame::SubAck {
                    next_seq: 6,
                    epoch: 9,
                    topic: "a",
                },
            );
            data(s, 6, "a", b"after");
        })
        .await;
        let ack = t(client.subscribe("a")).await.unwrap();
        assert_eq!(
            ack,
            SubAck {
                next_seq: 6,
                epoch: 9
            }
        );
        let first = t(client.next_message()).await.unwrap();
        assert_eq!(
            first,
            AsyncMessage {
                topic: "b".into(),
                seq: 5,
                ts_ns: 1_005,
                payload: Bytes::from_static(b"before"),
            }
        );
        let second = t(client.next_message()).await.unwrap();
        assert_eq!((second.topic.as_str(), second.seq), ("a", 6));
        assert_eq!(second.payload, &b"after"[..]);
        join(server).await;
        assert!(matches!(
            t(client.next_message()).await,
            Err(ClientError::Closed)
        ));
    }

    #[tokio::test]
    async fn error_7_is_a_server_error_and_the_connection_stays_usable() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s).0, 0x02);
            error(s, 7, Some("x"), "at most 1 subscription");
            pong_back(s);
        })
        .await;
        match t(client.subscribe("x")).await {
            Err(e @ ClientError::Server { code: 7, .. }) => {
                assert!(e.is_recoverable());
                assert!(e.to_string().contains("at most 1 subscription"), "{e}");
            }
            other => panic!("expected ERROR 7, got {other:?}"),
        }
        assert_eq!(
            t(client.ping(b"still here")).await.unwrap(),
            &b"still here"[..]
        );
        join(server).await;
    }

    #[tokio::test]
    async fn a_fatal_error_comes_after_earlier_data_and_ends_the_connection() {
        let (mut client, server) = fake_server(|s| {
            data(s, 1, "t", b"kept");
            error(s, 6, None, "backlog over 8 MiB");
        })
        .await;
        assert_eq!(
            t(client.next_message()).await.unwrap().payload,
            &b"kept"[..]
        );
        let err = t(client.next_message()).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Server { code: 6, .. }),
            "{err:?}"
        );
        assert!(!err.is_recoverable());
        assert!(err.to_string().contains("slow consumer"), "{err}");
        join(server).await;
        assert!(matches!(
            t(client.next_message()).await,
            Err(ClientError::Closed)
        ));
        // A request after the end fails with the error that ended it.
        assert!(matches!(
            t(client.ping(b"late")).await,
            Err(ClientError::Server { code: 6, .. })
        ));
    }

    fn gap(stream: &mut std::net::TcpStream, topic: &str, message: &str) {
        send(stream, ServerFrame::Gap { topic, message });
    }

    #[tokio::test]
    async fn a_gap_is_a_recoverable_error_in_its_place_among_messages() {
        let (mut client, server) = fake_server(|s| {
            data(s, 1, "t", b"one");
            gap(s, "t", "relay link to NATS was down");
            data(s, 2, "t", b"two");
            // A GAP that comes while a request waits is kept, in order.
            let (kind, _, payload) = read_request(s);
            assert_eq!(kind, 0x04);
            gap(s, "u", "");
            send(s, ServerFrame::Pong { payload: &payload });
        })
        .await;
        assert_eq!(t(client.next_message()).await.unwrap().seq, 1);
        let err = t(client.next_message()).await.unwrap_err();
        match &err {
            ClientError::Gap { topic, reason } => assert_eq!(
                (topic.as_str(), reason.as_str()),
                ("t", "relay link to NATS was down")
            ),
            other => panic!("expected a GAP, got {other:?}"),
        }
        assert!(err.is_recoverable());
        assert!(err.to_string().contains("topic t"), "{err}");
        let next = t(client.next_message()).await.unwrap();
        assert_eq!((next.seq, &next.payload[..]), (2, &b"two"[..]));
        assert_eq!(t(client.ping(b"p")).await.unwrap(), &b"p"[..]);
        assert_eq!(
            t(client.next_frame()).await.unwrap(),
            AsyncFrame::Gap {
                topic: "u".into(),
                reason: String::new()
            }
        );
        join(server).await;
        assert!(matches!(
            t(client.next_message()).await,
            Err(ClientError::Closed)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_split_reader_hands_out_a_gap_and_the_writer_still_gets_its_reply() {
        let (client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x02, "a".into(), vec![]));
            data(s, 3, "a", b"before");
            // Not a reply: the SUBSCRIBE still waits for its SUBACK.
            gap(s, "a", "relay queue overflowed");
            send(
                s,
                ServerFrame::SubAck {
                    next_seq: 4,
                    epoch: 2,
                    topic: "a",
                },
            );
            data(s, 4, "a", b"after");
        })
        .await;
        let (mut reader, writer) = client.into_split();
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(t(reader.next_message()).await);
            }
            got
        });
        assert_eq!(
            t(writer.subscribe("a")).await.unwrap(),
            SubAck {
                next_seq: 4,
                epoch: 2
            }
        );
        let got = t(reading).await.unwrap();
        assert!(matches!(&got[0], Ok(m) if m.seq == 3), "{:?}", got[0]);
        assert!(
            matches!(&got[1], Err(ClientError::Gap { topic, reason })
                if topic == "a" && reason == "relay queue overflowed"),
            "{:?}",
            got[1]
        );
        assert!(matches!(&got[2], Ok(m) if m.seq == 4), "{:?}", got[2]);
        join(server).await;
    }

    #[tokio::test]
    async fn a_wrong_token_is_error_5_then_closed() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x05, String::new(), b"nope".to_vec()));
            error(s, 5, None, "wrong token");
        })
        .await;
        let err = t(client.auth(b"nope")).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Server { code: 5, .. }),
            "{err:?}"
        );
        join(server).await;
        assert!(matches!(
            t(client.next_frame()).await,
            Err(ClientError::Closed)
        ));
    }

    #[tokio::test]
    async fn eof_is_closed() {
        let (mut client, server) = fake_server(|_| {}).await;
        join(server).await;
        assert!(matches!(
            t(client.next_message()).await,
            Err(ClientError::Closed)
        ));
        assert!(matches!(
            t(client.next_frame()).await,
            Err(ClientError::Closed)
        ));
    }

    #[tokio::test]
    async fn frames_split_across_reads_are_reassembled() {
        let (mut client, server) = fake_server(|s| {
            let mut bytes = Vec::new();
            for seq in 1..=3u8 {
                ServerFrame::Data {
                    seq: seq.into(),
                    ts_ns: 0,
                    topic: "topic",
                    payload: &[seq; 300],
                }
                .encode(&mut bytes);
            }
            for chunk in bytes.chunks(7) {
                s.write_all(chunk).unwrap();
                s.flush().unwrap();
            }
        })
        .await;
        for seq in 1..=3u8 {
            let m = t(client.next_message()).await.unwrap();
            assert_eq!(m.seq, u64::from(seq));
            assert_eq!(m.payload, vec![seq; 300]);
        }
        join(server).await;
    }

    #[tokio::test]
    async fn a_large_data_frame_arrives_whole() {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let (mut client, server) = fake_server(move |s| data(s, 1, "big", &sent)).await;
        let m = t(client.next_message()).await.unwrap();
        assert_eq!(m.payload, big);
        join(server).await;
    }

    #[tokio::test]
    async fn publish_checks_locally_and_writes_every_payload_shape() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let expected = big.clone();
        let (mut client, server) = fake_server(move |s| {
            assert_eq!(read_request(s), (0x01, "ok".into(), b"hello".to_vec()));
            assert_eq!(read_request(s), (0x01, "ok".into(), Vec::new()));
            assert_eq!(read_request(s), (0x01, "ok".into(), expected));
            assert_eq!(read_request(s), (0x01, "ok".into(), b"slice".to_vec()));
            pong_back(s);
        })
        .await;
        assert!(matches!(
            t(client.publish("has space", "x")).await,
            Err(ClientError::BadTopic(_))
        ));
        assert!(matches!(
            t(client.publish_slice("", b"x")).await,
            Err(ClientError::BadTopic(_))
        ));
        assert!(matches!(
            t(client.ping(&[0; 65])).await,
            Err(ClientError::Protocol(_))
        ));
        t(client.publish("ok", "hello")).await.unwrap();
        t(client.publish("ok", Bytes::new())).await.unwrap();
        t(client.publish("ok", big)).await.unwrap();
        let borrowed = String::from("slice");
        t(client.publish_slice("ok", borrowed.as_bytes()))
            .await
            .unwrap();
        assert_eq!(t(client.ping(b"p")).await.unwrap(), &b"p"[..]);
        join(server).await;
    }

    #[tokio::test]
    async fn auth_and_unsubscribe_wait_for_their_replies() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x05, String::new(), b"secret".to_vec()));
            send(s, ServerFrame::AuthOk);
            assert_eq!(read_request(s).0, 0x03);
            data(s, 2, "t", b"");
            send(s, ServerFrame::UnsubAck { topic: "t" });
        })
        .await;
        t(client.auth(b"secret")).await.unwrap();
        t(client.unsubscribe("t")).await.unwrap();
        assert_eq!(t(client.next_message()).await.unwrap().seq, 2);
        join(server).await;
    }

    #[tokio::test]
    async fn the_reply_of_a_dropped_request_is_skipped_by_the_next_one() {
        let (mut client, server) = fake_server(|s| {
            let (_, _, first) = read_request(s);
            let (_, _, second) = read_request(s);
            send(s, ServerFrame::Pong { payload: &first });
            send(s, ServerFrame::Pong { payload: &second });
        })
        .await;
        // The server answers nothing until the second PING: the first call gives up.
        let gave_up = tokio::time::timeout(Duration::from_millis(100), client.ping(b"first")).await;
        assert!(gave_up.is_err(), "{gave_up:?}");
        assert_eq!(t(client.ping(b"second")).await.unwrap(), &b"second"[..]);
        // The late reply is still visible as a raw frame.
        assert_eq!(
            t(client.next_frame()).await.unwrap(),
            AsyncFrame::Pong {
                payload: Bytes::from_static(b"first")
            }
        );
        join(server).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_cut_short_is_finished_before_the_next_frame() {
        // More than loopback socket buffers hold, so the write cannot finish
        // while the server is not reading.
        const SIZE: usize = 64 << 20;
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (mut client, server) = fake_server(move |s| {
            wait.recv().unwrap();
            let (kind, topic, payload) = read_request(s);
            assert_eq!((kind, topic.as_str(), payload.len()), (0x01, "big", SIZE));
            assert!(payload
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 249) as u8));
            pong_back(s);
        })
        .await;
        let payload: Bytes = (0..SIZE)
            .map(|i| (i % 249) as u8)
            .collect::<Vec<u8>>()
            .into();
        let cut =
            tokio::time::timeout(Duration::from_millis(200), client.publish("big", payload)).await;
        assert!(cut.is_err(), "the write was expected to block: {cut:?}");
        go.send(()).unwrap();
        assert_eq!(t(client.ping(b"after")).await.unwrap(), &b"after"[..]);
        join(server).await;
    }

    #[tokio::test]
    async fn oversized_and_invalid_frames_are_protocol_errors() {
        let (mut client, server) = fake_server(|s| data(s, 1, "t", &[0u8; 100])).await;
        client.set_max_frame(64);
        let err = t(client.next_message()).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Protocol(e) if e.code == ErrorCode::TooLarge),
            "{err:?}"
        );
        join(server).await;

        let (mut client, server) = fake_server(|s| {
            // len 4, kind PUBLISH: a client kind, not valid from a server.
            s.write_all(&[4, 0, 0, 0, 0x01, 0, 0, 0]).unwrap();
        })
        .await;
        assert!(matches!(
            t(client.next_frame()).await,
            Err(ClientError::Protocol(e)) if e.code == ErrorCode::UnknownKind
        ));
        join(server).await;
    }

    #[tokio::test]
    async fn write_to_a_closed_server_reports_its_error() {
        let (mut client, server) = fake_server(|s| {
            assert_eq!(read_request(s).0, 0x01);
            error(s, 5, None, "PUBLISH needs AUTH");
        })
        .await;
        t(client.publish("t", "x")).await.unwrap();
        join(server).await;
        // The server has closed: after its RST, a write fails, and the client
        // reads the ERROR that was sent before the close instead of reporting
        // a broken pipe.
        let mut err = None;
        for _ in 0..10_000 {
            if let Err(e) = t(client.publish_slice("t", &[0u8; 4096])).await {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("a write to a closed socket fails");
        assert!(
            matches!(&err, ClientError::Server { code: 5, .. }),
            "{err:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn split_halves_route_replies_to_the_writer_and_data_to_the_reader() {
        let (client, server) = fake_server(|s| {
            assert_eq!(read_request(s), (0x02, "a".into(), vec![]));
            data(s, 1, "old", b"before the SUBACK");
            send(
                s,
                ServerFrame::SubAck {
                    next_seq: 1,
                    epoch: 3,
                    topic: "a",
                },
            );
            data(s, 1, "a", b"one");
            // Three pipelined PINGs, answered in order once all arrived.
            let pings: Vec<_> = (0..3).map(|_| read_request(s).2).collect();
            data(s, 2, "a", b"two");
            for p in &pings {
                send(s, ServerFrame::Pong { payload: p });
            }
            assert_eq!(read_request(s), (0x01, "a".into(), b"three".to_vec()));
            data(s, 3, "a", b"three");
            // After the reader is gone, a PUBLISH still reaches the server.
            assert_eq!(read_request(s), (0x01, "a".into(), b"four".to_vec()));
        })
        .await;
        let (mut reader, writer) = client.into_split();
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 4 {
                got.push(t(reader.next_message()).await.unwrap());
            }
            (reader, got)
        });
        assert_eq!(
            t(writer.subscribe("a")).await.unwrap(),
            SubAck {
                next_seq: 1,
                epoch: 3
            }
        );
        let (w1, w2) = (writer.clone(), writer.clone());
        let (p1, p2, p3) =
            t(async { tokio::join!(w1.ping(b"1"), w2.ping(b"2"), writer.ping(b"3")) }).await;
        assert_eq!(
            (p1.unwrap(), p2.unwrap(), p3.unwrap()),
            (
                Bytes::from_static(b"1"),
                Bytes::from_static(b"2"),
                Bytes::from_static(b"3")
            )
        );
        t(writer.publish("a", "three")).await.unwrap();
        let (reader, got) = t(reading).await.unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|m| (m.topic.as_str(), m.seq, &m.payload[..]))
            .collect();
        assert_eq!(
            got,
            [
                ("old", 1, &b"before the SUBACK"[..]),
                ("a", 1, b"one"),
                ("a", 2, b"two"),
                ("a", 3, b"three"),
            ]
        );
        drop(reader);
        let err = t(writer.ping(b"nobody reads")).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Io(e) if e.kind() == io::ErrorKind::NotConnected),
            "{err:?}"
        );
        t(writer.publish("a", "four")).await.unwrap();
        join(server).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fatal_error_fails_the_waiting_writer_and_the_reader() {
        let (client, server) = fake_server(|s| {
            assert_eq!(read_request(s).0, 0x04);
            error(s, 9, None, "incomplete frame");
        })
        .await;
        let (mut reader, writer) = client.into_split();
        let reading = tokio::spawn(async move {
            let first = t(reader.next_message()).await;
            let second = t(reader.next_frame()).await;
            (first, second)
        });
        let err = t(writer.ping(b"x")).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Server { code: 9, .. }),
            "{err:?}"
        );
        let (first, second) = t(reading).await.unwrap();
        assert!(
            matches!(&first, Err(ClientError::Server { code: 9, .. })),
            "{first:?}"
        );
        assert!(matches!(second, Err(ClientError::Closed)), "{second:?}");
        assert!(matches!(
            t(writer.subscribe("t")).await,
            Err(ClientError::Server { code: 9, .. })
        ));
        join(server).await;
    }

    #[tokio::test]
    async fn a_split_carries_over_queued_frames_and_owed_replies() {
        let (mut client, server) = fake_server(|s| {
            let (_, _, first) = read_request(s);
            let (_, _, second) = read_request(s);
            data(s, 7, "t", b"queued");
            send(s, ServerFrame::Pong { payload: &first });
            send(s, ServerFrame::Pong { payload: &second });
        })
        .await;
        let gave_up = tokio::time::timeout(Duration::from_millis(100), client.ping(b"first")).await;
        assert!(gave_up.is_err());
        assert_eq!(t(client.ping(b"second")).await.unwrap(), &b"second"[..]);
        let (mut reader, _writer) = client.into_split();
        assert_eq!(t(reader.next_message()).await.unwrap().seq, 7);
        assert_eq!(
            t(reader.next_frame()).await.unwrap(),
            AsyncFrame::Pong {
                payload: Bytes::from_static(b"first")
            }
        );
        join(server).await;
    }
}

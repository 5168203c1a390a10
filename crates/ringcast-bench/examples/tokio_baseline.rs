//! The tokio baseline: the ringcast native protocol (`PROTOCOL.md`, TCP only)
//! served the way a careful Rust user would write it instead of ringcast.
//!
//! ```text
//! cargo run --release --example tokio_baseline -- --listen 127.0.0.1:7402
//! ringcast sub demo --addr 127.0.0.1:7402          # another terminal
//! ringcast pub demo hello --addr 127.0.0.1:7402    # a third one
//! ```
//!
//! # Why this is the fair baseline
//! It is the textbook tokio design, with the optimizations a careful user
//! knows about and nothing exotic:
//! - a multi-thread runtime (`--threads N`, default 1 worker so that it
//!   competes on the same single core as one ringcast reactor);
//! - one task per connection, which `select!`s between reading the socket,
//!   its topics' broadcast receivers and the shutdown signal;
//! - one `tokio::sync::broadcast` channel per topic, in a
//!   `HashMap<String, Topic>` behind one `std::sync::Mutex` (the normal idiom;
//!   the lock is held only for a map lookup, a seq increment and a send);
//! - a DATA frame is encoded once per publish, with
//!   `ringcast::proto::encode_data`, into an `Arc<Vec<u8>>` that every
//!   subscriber's receiver shares (no per-subscriber copy of the encoding);
//! - writes are coalesced: after a wake-up the task drains every frame already
//!   queued for it into a `BufWriter` and flushes once, so a busy subscriber
//!   costs one `write` syscall per batch, not one per frame;
//! - decoding and validation reuse `ringcast::proto::decode_client`, so error
//!   codes 1 to 4 are exactly ringcast's.
//!
//! # Slow consumers: how tokio's broadcast expresses backpressure
//! A `broadcast` channel is a ring of `--capacity` frames (default 1024) per
//! topic. `send` never waits: when the ring is full it overwrites the oldest
//! frame, and a receiver that had not read it yet learns so on its next
//! `recv` as `RecvError::Lagged(n)`. A subscriber whose socket is full stops
//! draining (its task is parked in `write`), falls `--capacity` frames behind,
//! and gets ERROR 6 and is closed: no silent loss, as the protocol demands.
//! The limit is therefore counted in frames per topic, not in bytes per
//! connection as ringcast's `--max-backlog` is; the channel also keeps the
//! last `--capacity` frames of every topic alive after everyone has read them.
//!
//! # What it leaves out
//! WebSocket, a subscribe token, topic and connection limits (topics are
//! never forgotten: each keeps its seq for the life of the process, as the
//! protocol requires). `--publish-token` enables AUTH checking for PUBLISH.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringcast_proto::native::{
    self as proto, ClientFrame, Decoded, ErrorCode, ProtoError, ServerFrame, DEFAULT_MAX_FRAME,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

/// One encoded DATA frame, shared by every subscriber of its topic.
pub type Frame = Arc<Vec<u8>>;

/// Default address: next to ringcast's 7400 (TCP) and 7401 (WebSocket).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7402";

/// Size of the per-connection write buffer; frames larger than this bypass it.
const WRITE_BUFFER: usize = 64 << 10;

/// Bytes queued in the write buffer after which a drain stops and flushes.
const DRAIN_BUDGET: usize = 256 << 10;

/// The smallest read asked of the kernel.
const READ_CHUNK: usize = 16 << 10;

/// How long shutdown waits for connections to flush their ERROR 8.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's limits.
#[derive(Clone, Debug)]
pub struct Config {
    /// Frames one topic's broadcast channel holds; a receiver further behind gets ERROR 6.
    pub capacity: usize,
    /// Largest accepted `len` (default 1 MiB, like ringcast).
    pub max_frame: u32,
    /// Subscriptions per connection; past it SUBSCRIBE gets ERROR 7 (default 4096).
    pub max_subscriptions: usize,
    /// When set, PUBLISH needs a prior AUTH with this token (else ERROR 5).
    pub publish_token: Option<Vec<u8>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            capacity: 1024,
            max_frame: DEFAULT_MAX_FRAME,
            max_subscriptions: 4096,
            publish_token: None,
        }
    }
}

/// One topic: its broadcast channel and the seq of its last accepted PUBLISH.
struct Topic {
    tx: broadcast::Sender<Frame>,
    /// 0 before the first PUBLISH; the next frame gets `last_seq + 1`.
    last_seq: u64,
}

/// What every connection task shares.
struct Shared {
    config: Config,
    /// Names this run of the server (SUBACK `epoch`): its start time in ns.
    epoch: u64,
    topics: Mutex<HashMap<String, Topic>>,
}

impl Shared {
    /// Assigns the next seq of `topic` and broadcasts the DATA frame.
    ///
    /// The frame is encoded (payload copied once) before the lock is taken;
    /// under the lock only its seq is patched, so seq order is send order.
    fn publish(&self, topic: &str, payload: &[u8]) {
        let ts_ns = now_ns();
        let mut frame = vec![0u8; proto::data_frame_len(topic.len(), payload.len())];
        proto::encode_data(&mut frame, 0, ts_ns, topic.as_bytes(), payload);
        let mut topics = self.topics.lock().expect("topic map poisoned");
        let t = topics
            .entry(topic.to_owned())
            .or_insert_with(|| Topic::new(self.config.capacity));
        t.last_seq += 1;
        if t.tx.receiver_count() > 0 {
            proto::patch_data_seq(&mut frame, t.last_seq);
            // Only fails when every receiver is gone, which was just checked
            // under the lock that subscribing also takes.
            let _ = t.tx.send(Arc::new(frame));
        }
    }

    /// Subscribes: the receiver gets every frame from the returned `next_seq` on.
    fn subscribe(&self, topic: &str) -> (u64, broadcast::Receiver<Frame>) {
        let mut topics = self.topics.lock().expect("topic map poisoned");
        let t = topics
            .entry(topic.to_owned())
            .or_insert_with(|| Topic::new(self.config.capacity));
        (t.last_seq + 1, t.tx.subscribe())
    }

    /// The seq the next PUBLISH on `topic` will get.
    fn next_seq(&self, topic: &str) -> u64 {
        let topics = self.topics.lock().expect("topic map poisoned");
        topics.get(topic).map_or(1, |t| t.last_seq + 1)
    }
}

impl Topic {
    fn new(capacity: usize) -> Topic {
        let (tx, _) = broadcast::channel(capacity);
        Topic { tx, last_seq: 0 }
    }
}

/// Binds `addr` with SO_REUSEADDR and a deep accept queue.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves connections from `listener` until `shutdown` completes; then every
/// connection gets ERROR 8 and is closed, and this returns once they are gone
/// (or after 5 s).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shared = Arc::new(Shared {
        config,
        epoch: now_ns(),
        topics: Mutex::new(HashMap::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Best effort: a socket that refuses NODELAY still works.
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, Arc::clone(&shared), stop_rx.clone()));
                }
                // EMFILE and friends: back off instead of spinning.
                Err(e) => {
                    eprintln!("tokio_baseline: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

/// One subscription of a connection.
struct Sub {
    topic: String,
    rx: broadcast::Receiver<Frame>,
}

/// What woke a connection task.
enum Event {
    Read(io::Result<usize>),
    Data(usize, Result<Frame, broadcast::error::RecvError>),
    Shutdown,
}

/// Why a connection ends.
enum Close {
    /// The peer closed, or the socket failed: nothing more to send.
    Quiet,
    /// Send this ERROR, then close.
    Error(ErrorCode, String),
}

impl From<io::Error> for Close {
    fn from(_: io::Error) -> Self {
        Close::Quiet
    }
}

impl From<ProtoError> for Close {
    fn from(e: ProtoError) -> Self {
        Close::Error(e.code, e.reason.to_owned())
    }
}

/// The task of one connection: reads requests, writes replies and DATA.
async fn connection(mut stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (mut rd, wr) = stream.split();
    let mut conn = Conn {
        shared: &shared,
        wr: BufWriter::with_capacity(WRITE_BUFFER, wr),
        subs: Vec::new(),
        authed: false,
        out: Vec::new(),
    };
    // Received bytes: `rbuf[head..tail]` is not yet decoded; 0 <= head <= tail <= len.
    let mut rbuf = vec![0u8; READ_CHUNK];
    let (mut head, mut tail) = (0usize, 0usize);
    let closing = loop {
        let event = tokio::select! {
            r = rd.read(&mut rbuf[tail..]) => Event::Read(r),
            (i, r) = recv_any(&mut conn.subs) => Event::Data(i, r),
            _ = stop.changed() => Event::Shutdown,
        };
        let step = match event {
            Event::Read(Ok(0)) | Event::Read(Err(_)) => Err(Close::Quiet),
            Event::Read(Ok(n)) => {
                tail += n;
                conn.handle_bytes(&mut rbuf, &mut head, &mut tail).await
            }
            Event::Data(i, r) => conn.handle_data(i, r).await,
            Event::Shutdown => Err(Close::Error(
                ErrorCode::ShuttingDown,
                "server shutting down".into(),
            )),
        };
        if let Err(close) = step {
            break close;
        }
        if conn.wr.flush().await.is_err() {
            break Close::Quiet;
        }
    };
    if let Close::Error(code, message) = closing {
        // Best effort, and bounded: a peer that does not read cannot hold the task.
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, conn.send_error(code, &message)).await;
    }
}

/// The writing side and the state of one connection.
struct Conn<'a, W> {
    shared: &'a Shared,
    wr: BufWriter<W>,
    /// At most `max_subscriptions`, topics distinct.
    subs: Vec<Sub>,
    /// AUTH with the publish token was accepted.
    authed: bool,
    /// Encoding scratch for replies.
    out: Vec<u8>,
}

impl<W: tokio::io::AsyncWrite + Unpin> Conn<'_, W> {
    /// Decodes and handles every whole frame in `rbuf[head..tail]`, then makes
    /// room for the rest of a partial one.
    async fn handle_bytes(
        &mut self,
        rbuf: &mut Vec<u8>,
        head: &mut usize,
        tail: &mut usize,
    ) -> Result<(), Close> {
        let max_frame = self.shared.config.max_frame;
        loop {
            debug_assert!(*head <= *tail && *tail <= rbuf.len());
            match proto::decode_client(&rbuf[*head..*tail], max_frame)? {
                Decoded::Frame { frame, consumed } => {
                    self.handle_frame(frame).await?;
                    *head += consumed;
                }
                Decoded::Incomplete { need } => {
                    // Move the partial frame to the front and make room for all of it.
                    rbuf.copy_within(*head..*tail, 0);
                    *tail -= *head;
                    *head = 0;
                    let want = need.max(*tail + READ_CHUNK);
                    if rbuf.len() < want {
                        rbuf.resize(want, 0);
                    }
                    return Ok(());
                }
            }
        }
    }

    async fn handle_frame(&mut self, frame: ClientFrame<'_>) -> Result<(), Close> {
        let shared = self.shared;
        match frame {
            ClientFrame::Publish { topic, payload } => {
                if shared.config.publish_token.is_some() && !self.authed {
                    return Err(Close::Error(
                        ErrorCode::NotAuthorized,
                        "PUBLISH needs AUTH with the publish token first".into(),
                    ));
                }
                shared.publish(topic, payload);
                Ok(())
            }
            ClientFrame::Subscribe { topic } => {
                let next_seq = if self.subs.iter().any(|s| s.topic == topic) {
                    shared.next_seq(topic)
                } else if self.subs.len() >= shared.config.max_subscriptions {
                    let message = format!(
                        "at most {} subscriptions per connection",
                        shared.config.max_subscriptions
                    );
                    let refusal = ServerFrame::Error {
                        code: ErrorCode::TooManySubscriptions.as_u16(),
                        topic: Some(topic),
                        message: &message,
                    };
                    return self.reply(refusal).await;
                } else {
                    let (next_seq, rx) = shared.subscribe(topic);
                    self.subs.push(Sub {
                        topic: topic.to_owned(),
                        rx,
                    });
                    next_seq
                };
                self.reply(ServerFrame::SubAck {
                    next_seq,
                    epoch: shared.epoch,
                    topic,
                })
                .await
            }
            ClientFrame::Unsubscribe { topic } => {
                // Frames still queued in the receiver die with it: none follow the UNSUBACK.
                self.subs.retain(|s| s.topic != topic);
                self.reply(ServerFrame::UnsubAck { topic }).await
            }
            ClientFrame::Ping { payload } => self.reply(ServerFrame::Pong { payload }).await,
            ClientFrame::Auth { token } => match &shared.config.publish_token {
                Some(expected) if !constant_time_eq(expected, token) => {
                    Err(Close::Error(ErrorCode::NotAuthorized, "wrong token".into()))
                }
                expected => {
                    self.authed = expected.is_some();
                    self.reply(ServerFrame::AuthOk).await
                }
            },
        }
    }

    /// Writes the frame from subscription `first`, then every frame already
    /// queued on any subscription, until the drain budget is spent.
    async fn handle_data(
        &mut self,
        first: usize,
        received: Result<Frame, broadcast::error::RecvError>,
    ) -> Result<(), Close> {
        self.write_data(first, received).await?;
        let mut written = 0usize;
        let mut progress = true;
        while progress && written < DRAIN_BUDGET {
            progress = false;
            for i in 0..self.subs.len() {
                match self.subs[i].rx.try_recv() {
                    Ok(frame) => {
                        written += frame.len();
                        progress = true;
                        self.wr.write_all(&frame).await?;
                    }
                    Err(broadcast::error::TryRecvError::Empty) => {}
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        return Err(self.lagged(i, n));
                    }
                    Err(broadcast::error::TryRecvError::Closed) => return Err(Close::Quiet),
                }
            }
        }
        Ok(())
    }

    async fn write_data(
        &mut self,
        i: usize,
        received: Result<Frame, broadcast::error::RecvError>,
    ) -> Result<(), Close> {
        match received {
            Ok(frame) => Ok(self.wr.write_all(&frame).await?),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(self.lagged(i, n)),
            // Topics are never removed, so their senders never drop.
            Err(broadcast::error::RecvError::Closed) => Err(Close::Quiet),
        }
    }

    /// ERROR 6 for a receiver that fell `missed` frames behind on subscription `i`.
    fn lagged(&self, i: usize, missed: u64) -> Close {
        Close::Error(
            ErrorCode::SlowConsumer,
            format!(
                "slow consumer: fell more than {} frames behind on {} ({missed} overwritten)",
                self.shared.config.capacity, self.subs[i].topic
            ),
        )
    }

    async fn reply(&mut self, frame: ServerFrame<'_>) -> Result<(), Close> {
        self.out.clear();
        frame.encode(&mut self.out);
        Ok(self.wr.write_all(&self.out).await?)
    }

    async fn send_error(&mut self, code: ErrorCode, message: &str) -> io::Result<()> {
        self.out.clear();
        ServerFrame::Error {
            code: code.as_u16(),
            topic: None,
            message,
        }
        .encode(&mut self.out);
        self.wr.write_all(&self.out).await?;
        self.wr.flush().await?;
        self.wr.shutdown().await
    }
}

/// The next frame (or error) from whichever subscription has one first.
///
/// `broadcast::Receiver::recv` is cancel safe, so dropping this future in a
/// `select!` loses nothing. One subscription (the common case) needs no
/// allocation; several are polled in order, and the drain that follows each
/// wake-up visits all of them, so none starves.
async fn recv_any(subs: &mut [Sub]) -> (usize, Result<Frame, broadcast::error::RecvError>) {
    match subs {
        [] => std::future::pending().await,
        [one] => (0, one.rx.recv().await),
        many => {
            let mut futs: Vec<_> = many.iter_mut().map(|s| Box::pin(s.rx.recv())).collect();
            std::future::poll_fn(|cx| {
                for (i, f) in futs.iter_mut().enumerate() {
                    if let Poll::Ready(r) = Pin::as_mut(f).poll(cx) {
                        return Poll::Ready((i, r));
                    }
                }
                Poll::Pending
            })
            .await
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal where a
/// guess first differs (the length may leak; tokens are not secret in size).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// CLOCK_REALTIME in nanoseconds (DATA `ts_ns`).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Command line: the listen address, worker threads and the server's limits.
struct Args {
    listen: SocketAddr,
    threads: usize,
    config: Config,
}

const USAGE: &str = "\
tokio_baseline: the ringcast protocol on tokio, the straightforward way.

Usage: cargo run --release --example tokio_baseline -- [FLAGS]

Flags:
  --listen ADDR              TCP address to serve (default 127.0.0.1:7402)
  --threads N                tokio worker threads (default 1)
  --capacity N               broadcast channel capacity in frames per topic;
                             a subscriber further behind gets ERROR 6 (default 1024)
  --max-frame BYTES          largest accepted frame len (default 1048576)
  --max-subscriptions N      subscriptions per connection (default 4096)
  --publish-token TOKEN      PUBLISH requires AUTH with this token
";

fn parse_args(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        listen: DEFAULT_LISTEN.parse().expect("valid default address"),
        threads: 1,
        config: Config::default(),
    };
    while let Some(flag) = words.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("bad value {value:?} for {flag}: {e}");
        match flag.as_str() {
            "--listen" => args.listen = value.parse().map_err(|e| bad(&e))?,
            "--threads" => args.threads = value.parse().map_err(|e| bad(&e))?,
            "--capacity" => args.config.capacity = value.parse().map_err(|e| bad(&e))?,
            "--max-frame" => args.config.max_frame = value.parse().map_err(|e| bad(&e))?,
            "--max-subscriptions" => {
                args.config.max_subscriptions = value.parse().map_err(|e| bad(&e))?
            }
            "--publish-token" => args.config.publish_token = Some(value.into_bytes()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.threads == 0 || args.config.capacity == 0 {
        return Err("--threads and --capacity must be at least 1".into());
    }
    Ok(args)
}

/// Completes on the first SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("tokio_baseline: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let listener = match bind(args.listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tokio_baseline: cannot listen on {}: {e}", args.listen);
                std::process::exit(1);
            }
        };
        let addr = listener.local_addr().expect("bound address");
        eprintln!("listening on {addr}");
        // The accept loop runs on a worker, like the connections; this thread
        // only waits for the signal.
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, args.config, async {
            let _ = stop_rx.await;
        }));
        signalled().await;
        eprintln!("tokio_baseline: shutting down");
        let _ = stop_tx.send(());
        let _ = server.await;
    });
}

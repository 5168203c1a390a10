//! Blocking test clients for the WebSocket/HTTP port: a raw WebSocket client
//! built on the crate's own RFC 6455 codec (client role), which can also send
//! what no real client would (unmasked frames, text, reserved opcodes, a
//! truncated header); a raw native-protocol reader that hands back each
//! frame's exact bytes (to compare with WebSocket messages); and a one-shot
//! HTTP exchange that reads the response to the server's close.
#![allow(dead_code)]

use super::READ_TIMEOUT;
use ringcast::proto::{self, ClientFrame, Decoded};
use ringcast::ws::frame::{self, Decoder, Event, Opcode, Role};
use ringcast::ws::handshake;
use ringcast_client::OwnedServerFrame;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Largest message the test client accepts from the server.
pub const MAX_MESSAGE: usize = 64 << 20;
/// Largest native frame the test readers accept.
const MAX_FRAME: u32 = 64 << 20;

/// What the server sent, one WebSocket frame or message at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsEvent {
    /// A whole binary message (server messages are never fragmented).
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame: its code (None for an empty payload) and reason.
    Close(Option<u16>, String),
}

/// A fresh `Sec-WebSocket-Key`: unique per call within the process.
pub fn fresh_key() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0x5eed_1234_abcd_0001);
    let n = NEXT.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&n.to_le_bytes());
    nonce[8..].copy_from_slice(&n.rotate_left(29).to_be_bytes());
    handshake::client_key(nonce)
}

/// A TCP connection with the test read timeout and TCP_NODELAY.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Encodes a native client frame.
pub fn native(f: ClientFrame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    f.encode(&mut out);
    out
}

/// Decodes a message that must hold exactly one whole native server frame.
pub fn server_frame(msg: &[u8], what: &str) -> OwnedServerFrame {
    match proto::decode_server(msg, MAX_FRAME) {
        Ok(Decoded::Frame { frame, consumed }) if consumed == msg.len() => frame.into(),
        other => panic!(
            "{what}: message of {} bytes is not exactly one server frame: {other:?}",
            msg.len()
        ),
    }
}

/// The seq of an encoded DATA frame (native bytes, `len` included).
pub fn data_seq(frame: &[u8]) -> u64 {
    assert_eq!(frame[4], 0x10, "not a DATA frame: kind {:#04x}", frame[4]);
    u64::from_le_bytes(frame[8..16].try_into().unwrap())
}

/// The payload of an encoded DATA frame.
pub fn data_payload(frame: &[u8]) -> &[u8] {
    let topic_len = u16::from_le_bytes([frame[6], frame[7]]) as usize;
    &frame[proto::DATA_HEADER_LEN + topic_len..]
}

/// A blocking WebSocket client speaking through the crate's codec.
pub struct WsClient {
    pub stream: TcpStream,
    dec: Decoder,
    /// Received bytes not yet fed to the decoder start at `pos`.
    buf: Vec<u8>,
    pos: usize,
    chunk: Vec<u8>,
    mask_state: u32,
    /// A close frame was received; the bytes after it in the same read.
    closed_with_trailing: Option<usize>,
}

impl WsClient {
    /// Connects to `/ws` (offering `ringcast.v1`) and completes the handshake.
    pub fn connect(addr: SocketAddr) -> WsClient {
        let (stream, key) = WsClient::begin(addr, None);
        WsClient::finish(stream, &key)
    }

    /// Connects and sends the upgrade request; [`WsClient::finish`] reads the 101.
    pub fn begin(addr: SocketAddr, origin: Option<&str>) -> (TcpStream, String) {
        let mut stream = tcp(addr);
        let key = fresh_key();
        let req = handshake::client_request(&addr.to_string(), handshake::PATH, &key, origin);
        stream.write_all(req.as_bytes()).unwrap();
        (stream, key)
    }

    /// Reads and checks the 101 for the request sent with `key`.
    pub fn finish(mut stream: TcpStream, key: &str) -> WsClient {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 4096];
        loop {
            match handshake::check_response(&buf, key) {
                Ok(Some(consumed)) => {
                    buf.drain(..consumed);
                    return WsClient::from_upgraded(stream, buf);
                }
                Ok(None) => {}
                Err(e) => panic!("WebSocket handshake failed: {e}"),
            }
            let n = stream
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("reading the handshake response: {e}"));
            assert!(n > 0, "server closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Connects `n` clients: every request is sent before any response is read.
    pub fn connect_many(addr: SocketAddr, n: usize) -> Vec<WsClient> {
        let pending: Vec<(TcpStream, String)> =
            (0..n).map(|_| WsClient::begin(addr, None)).collect();
        pending
            .into_iter()
            .map(|(s, k)| WsClient::finish(s, &k))
            .collect()
    }

    /// Wraps a stream whose 101 was read already; `leftover` holds the
    /// bytes received after the response head.
    pub fn from_upgraded(stream: TcpStream, leftover: Vec<u8>) -> WsClient {
        WsClient {
            stream,
            dec: Decoder::new(Role::Client, MAX_MESSAGE),
            buf: leftover,
            pos: 0,
            chunk: vec![0u8; 16 << 10],
            mask_state: 0x1357_9bdf,
            closed_with_trailing: None,
        }
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }

    fn next_mask(&mut self) -> [u8; 4] {
        self.mask_state = self
            .mask_state
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(0x7F4A_7C15);
        self.mask_state.to_le_bytes()
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, op: Opcode, payload: &[u8], fin: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + frame::MAX_CLIENT_HEADER);
        let mask = self.next_mask();
        frame::encode_client_frame(&mut out, op, payload, mask, fin);
        self.stream.write_all(&out)
    }

    /// Sends `bytes` unchanged.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one binary message holding `msg`.
    pub fn send_binary(&mut self, msg: &[u8]) -> io::Result<()> {
        self.send_frame(Opcode::Binary, msg, true)
    }

    /// Sends a native frame as one binary message.
    pub fn send_native(&mut self, f: ClientFrame<'_>) {
        self.send_binary(&native(f))
            .unwrap_or_else(|e| panic!("sending {f:?}: {e}"));
    }

    /// The next frame or message from the server; `None` at end of stream.
    /// A timeout or reset is an `Err`, as is a server frame that breaks RFC 6455.
    pub fn next_event(&mut self) -> io::Result<Option<WsEvent>> {
        loop {
            if self.pos < self.buf.len() {
                let (used, ev) = self.dec.decode(&self.buf[self.pos..]).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("server frame breaks RFC 6455 ({}: {})", e.code, e.reason),
                    )
                })?;
                self.pos += used;
                if let Some(ev) = ev {
                    let ev = match ev {
                        Event::Message(m) => WsEvent::Binary(m.to_vec()),
                        Event::Ping(p) => WsEvent::Ping(p.to_vec()),
                        Event::Pong(p) => WsEvent::Pong(p.to_vec()),
                        Event::Close { code, reason } => WsEvent::Close(code, reason.to_string()),
                    };
                    if let WsEvent::Close(..) = ev {
                        self.closed_with_trailing = Some(self.buf.len() - self.pos);
                        self.pos = self.buf.len();
                    }
                    return Ok(Some(ev));
                }
            }
            self.buf.clear();
            self.pos = 0;
            let n = self.stream.read(&mut self.chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
        }
    }

    /// The next event, which must be there (no EOF, timeout or error).
    pub fn event(&mut self, what: &str) -> WsEvent {
        match self.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("{what}: the server closed the connection"),
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// The next binary message; any other event fails the test.
    pub fn binary(&mut self, what: &str) -> Vec<u8> {
        match self.event(what) {
            WsEvent::Binary(m) => m,
            other => panic!("{what}: expected a binary message, got {other:?}"),
        }
    }

    /// The next binary message, decoded as one whole native server frame.
    pub fn frame(&mut self, what: &str) -> OwnedServerFrame {
        let m = self.binary(what);
        server_frame(&m, what)
    }

    /// SUBSCRIBE and its SUBACK; returns `next_seq`.
    pub fn subscribe(&mut self, topic: &str) -> u64 {
        self.send_native(ClientFrame::Subscribe { topic });
        self.suback(topic)
    }

    /// Reads the SUBACK for `topic`; returns `next_seq`.
    pub fn suback(&mut self, topic: &str) -> u64 {
        match self.frame("waiting for SUBACK") {
            OwnedServerFrame::SubAck {
                topic: t, next_seq, ..
            } if t == topic => next_seq,
            other => panic!("expected SUBACK for {topic}, got {other:?}"),
        }
    }

    /// The next message must be an ERROR with `code`; returns its text.
    pub fn expect_error(&mut self, code: u16, what: &str) -> String {
        match self.frame(what) {
            OwnedServerFrame::Error {
                code: got, message, ..
            } => {
                assert_eq!(got, code, "{what}: ERROR {got} ({message})");
                message
            }
            other => panic!("{what}: expected ERROR {code}, got {other:?}"),
        }
    }

    /// The next event must be a close frame with `code`, and then the
    /// server must close the TCP connection; returns the close reason.
    pub fn expect_close(&mut self, code: u16, what: &str) -> String {
        let reason = match self.event(what) {
            WsEvent::Close(got, reason) => {
                assert_eq!(got, Some(code), "{what}: close code (reason {reason:?})");
                reason
            }
            other => panic!("{what}: expected close {code}, got {other:?}"),
        };
        assert_eq!(
            self.closed_with_trailing,
            Some(0),
            "{what}: the server sent bytes after its close frame"
        );
        self.expect_eof(what);
        reason
    }

    /// The server must close the TCP connection now: end of stream (or a
    /// reset), not a timeout and not more bytes.
    pub fn expect_eof(&mut self, what: &str) {
        assert!(
            self.pos == self.buf.len(),
            "{what}: undecoded bytes before the end of stream"
        );
        expect_tcp_closed(&mut self.stream, what);
    }

    /// Shuts the write side (the server sees end of stream).
    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }
}

/// Reads from `s`, which the server must have closed: end of stream or a
/// reset; a timeout or more bytes fail the test.
pub fn expect_tcp_closed(s: &mut TcpStream, what: &str) {
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!(
            "{what}: expected the server to close, got {n} more bytes: {:?}",
            &b[..n]
        ),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ) => {}
        Err(e) => panic!("{what}: expected the server to close the connection: {e}"),
    }
}

/// A native-protocol connection read as raw frames, each exactly as sent.
pub struct NativeReader {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    chunk: Vec<u8>,
}

impl NativeReader {
    pub fn connect(addr: SocketAddr) -> NativeReader {
        NativeReader {
            stream: tcp(addr),
            buf: Vec::new(),
            start: 0,
            chunk: vec![0u8; 16 << 10],
        }
    }

    pub fn send(&mut self, f: ClientFrame<'_>) {
        self.stream.write_all(&native(f)).unwrap();
    }

    /// The next frame's bytes, `len` field included.
    pub fn next_frame(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let have = &self.buf[self.start..];
            if have.len() >= 4 {
                let total = 4 + u32::from_le_bytes(have[..4].try_into().unwrap()) as usize;
                if have.len() >= total {
                    let f = have[..total].to_vec();
                    self.start += total;
                    if self.start == self.buf.len() {
                        self.buf.clear();
                        self.start = 0;
                    }
                    return Ok(f);
                }
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let n = self.stream.read(&mut self.chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
        }
    }

    /// The next frame, which must be there.
    pub fn frame(&mut self, what: &str) -> Vec<u8> {
        self.next_frame()
            .unwrap_or_else(|e| panic!("{what}: TCP reader: {e}"))
    }

    /// Reads the SUBACK for `topic`; returns `next_seq`.
    pub fn suback(&mut self, topic: &str) -> u64 {
        let f = self.frame("waiting for SUBACK");
        match server_frame(&f, "TCP SUBACK") {
            OwnedServerFrame::SubAck {
                topic: t, next_seq, ..
            } if t == topic => next_seq,
            other => panic!("expected SUBACK for {topic}, got {other:?}"),
        }
    }

    pub fn subscribe(&mut self, topic: &str) -> u64 {
        self.send(ClientFrame::Subscribe { topic });
        self.suback(topic)
    }
}

/// A parsed HTTP response, read to the server's close.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub status_line: String,
    /// Header names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The only value of header `name`; fails if absent or repeated.
    pub fn header(&self, name: &str) -> &str {
        let mut it = self.headers.iter().filter(|(n, _)| n == name);
        match (it.next(), it.next()) {
            (Some((_, v)), None) => v,
            (None, _) => panic!("no {name} header in {self:?}"),
            _ => panic!("more than one {name} header in {self:?}"),
        }
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Splits a response at its blank line and parses the head.
pub fn parse_response(bytes: &[u8]) -> HttpResponse {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(bytes)
            )
        });
    let head = std::str::from_utf8(&bytes[..end]).expect("response head is ASCII");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap().to_string();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("header line {l:?}"));
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    HttpResponse {
        status,
        status_line,
        headers,
        body: bytes[end + 4..].to_vec(),
    }
}

/// Sends `request` on a fresh connection to `addr` and reads the response
/// to end of stream (the server closes after every response).
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut s = tcp(addr);
    s.write_all(request).unwrap();
    let r = read_response_to_close(&mut s);
    if !request.starts_with(b"HEAD ") {
        check_content_length(&r);
    }
    r
}

/// Reads a whole response and the server's close from `s`.
pub fn read_response_to_close(s: &mut TcpStream) -> HttpResponse {
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("reading the response to end of stream: {e}"));
    parse_response(&bytes)
}

/// The body is exactly as long as `Content-Length` says.
pub fn check_content_length(r: &HttpResponse) {
    if let Some((_, len)) = r.headers.iter().find(|(n, _)| n == "content-length") {
        let len: usize = len.parse().expect("Content-Length is a number");
        assert_eq!(
            r.body.len(),
            len,
            "body length vs Content-Length in {:?}",
            r.status_line
        );
    }
}

/// A simple GET (or other method) of `path` with a Host header.
pub fn request(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ringcast-tests\r\n\r\n")
        .into_bytes()
}

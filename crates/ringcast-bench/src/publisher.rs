//! The one publishing connection: connects, proves the server answers (a
//! PING and its PONG), then frames stamped payloads into an output buffer
//! and writes as much as the socket takes. What it cannot write waits in the
//! buffer (EPOLLOUT resumes it), so a server that stops reading delays the
//! publisher, and that delay shows in the latency of what follows.
//!
//! Replies are read and dropped (Redis answers every PUBLISH with a count),
//! NATS PINGs are answered, and a server error ends the run.

use super::sys::{self, Epoll};
use super::wire::{fill_payload, stamp, Event, Proto};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

/// Unsent bytes past which [`Publisher::can_publish`] says no.
const MAX_BACKLOG: usize = 4 << 20;

/// Where the publisher is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Connecting,
    /// Connected; waiting for the PONG.
    Probing,
    Ready,
}

/// The publishing connection.
pub struct Publisher {
    proto: Proto,
    addr: SocketAddr,
    fd: OwnedFd,
    state: State,
    out: Vec<u8>,
    out_at: usize,
    watching_out: bool,
    inbuf: Vec<u8>,
    /// The payload, stamped afresh for each message.
    payload: Vec<u8>,
    /// Bytes written to the socket.
    pub bytes_sent: u64,
}

impl Publisher {
    /// Starts connecting to `addr`; `size` is the payload size.
    pub fn connect(
        proto: Proto,
        addr: SocketAddr,
        size: usize,
        ep: &Epoll,
    ) -> Result<Self, String> {
        let (fd, _) = sys::connect_start(&addr, None)
            .map_err(|e| format!("publisher: cannot connect to {addr}: {e}"))?;
        ep.add(fd.as_raw_fd(), super::TOKEN_PUB, sys::IN | sys::OUT)
            .map_err(|e| format!("epoll: {e}"))?;
        let mut out = Vec::with_capacity(64 * 1024);
        proto.encode_hello(&mut out);
        proto.encode_ping(&mut out);
        let mut payload = vec![0u8; size];
        fill_payload(&mut payload);
        Ok(Publisher {
            proto,
            addr,
            fd,
            state: State::Connecting,
            out,
            out_at: 0,
            watching_out: true,
            inbuf: Vec::new(),
            payload,
            bytes_sent: 0,
        })
    }

    /// Whether the server has answered the probe.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Whether the output buffer has room for another message.
    pub fn can_publish(&self) -> bool {
        self.out.len() - self.out_at < MAX_BACKLOG
    }

    /// Handles an epoll event; an error ends the run.
    pub fn handle(&mut self, ep: &Epoll, events: u32) -> Result<(), String> {
        if self.state == State::Connecting {
            sys::take_socket_error(self.fd.as_raw_fd()).map_err(|e| {
                format!(
                    "cannot connect to {}: {e} (is the server running there? see --host and --port)",
                    self.addr
                )
            })?;
            self.state = State::Probing;
        }
        if events & (sys::IN | sys::HUP_OR_ERR) != 0 {
            self.read()?;
        }
        self.flush(ep)
    }

    fn read(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match sys::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(0) => return Err("publisher: the server closed the connection".into()),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    self.parse()?;
                    if n < buf.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("publisher: receive: {e}")),
            }
        }
    }

    fn parse(&mut self) -> Result<(), String> {
        let mut at = 0;
        let mut pong = false;
        while let Some((event, used)) = self.proto.parse(&self.inbuf[at..])? {
            at += used;
            match event {
                Event::Pong => pong = true,
                Event::Ping(payload) => self.proto.encode_pong(payload, &mut self.out),
                Event::ServerError(e) => return Err(format!("publisher: server error: {e}")),
                Event::Close(why) => return Err(format!("publisher: {why}")),
                _ => {}
            }
        }
        self.inbuf.drain(..at);
        if pong && self.state == State::Probing {
            self.state = State::Ready;
        }
        Ok(())
    }

    /// Frames a message with `send_ns`, `seq` and the warm-up flag and
    /// starts sending it.
    pub fn publish(
        &mut self,
        ep: &Epoll,
        topic: &str,
        seq: u64,
        warmup: bool,
    ) -> Result<(), String> {
        stamp(&mut self.payload, sys::realtime_ns(), seq, warmup);
        self.proto
            .encode_publish(topic, &self.payload, &mut self.out);
        self.flush(ep)
    }

    fn flush(&mut self, ep: &Epoll) -> Result<(), String> {
        if self.state == State::Connecting {
            return Ok(());
        }
        let fd = self.fd.as_raw_fd();
        while self.out_at < self.out.len() {
            match sys::write(fd, &self.out[self.out_at..]) {
                Ok(n) => {
                    self.out_at += n;
                    self.bytes_sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("publisher: send: {e}")),
            }
        }
        let done = self.out_at == self.out.len();
        if done {
            self.out.clear();
            self.out_at = 0;
        } else if self.out_at > (1 << 20) {
            self.out.drain(..self.out_at);
            self.out_at = 0;
        }
        if done == self.watching_out {
            self.watching_out = !done;
            let events = if done { sys::IN } else { sys::IN | sys::OUT };
            ep.modify(fd, super::TOKEN_PUB, events)
                .map_err(|e| format!("epoll: {e}"))?;
        }
        Ok(())
    }
}

//! A RESP client for the Redis front: commands out, replies owned (`R`),
//! reads bounded by [`READ_TIMEOUT`](super::READ_TIMEOUT).

use ringcast_proto::native::Decoded;
use ringcast_proto::resp::{decode_reply, encode_command, ReplyRef};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

/// A reply, owned: aggregates of every kind (array, push, map, set) as a list.
#[derive(Clone, Debug, PartialEq)]
pub enum R {
    Simple(Vec<u8>),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    List(Vec<R>),
}

pub fn own(r: ReplyRef<'_>) -> R {
    match r {
        ReplyRef::SimpleString(s) => R::Simple(s.to_vec()),
        ReplyRef::Error(e) => R::Err(String::from_utf8_lossy(e).into()),
        ReplyRef::Integer(n) => R::Int(n),
        ReplyRef::Bulk(b) => R::Bulk(b.to_vec()),
        ReplyRef::NullBulk | ReplyRef::NullArray | ReplyRef::Null => R::Null,
        other => match other.aggregate() {
            Some(a) => R::List(a.iter().map(own).collect()),
            None => panic!("unexpected reply {other:?}"),
        },
    }
}

pub fn bulk(s: &str) -> R {
    R::Bulk(s.as_bytes().to_vec())
}

/// Whether a read failed only because its timeout passed.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A RESP connection with a read timeout.
pub struct Resp {
    pub s: TcpStream,
    /// Bytes read but not yet decoded as a reply.
    pub buf: Vec<u8>,
}

impl Resp {
    pub fn connect(addr: SocketAddr) -> Resp {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(super::READ_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        Resp { s, buf: Vec::new() }
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        self.s.write_all(&out).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)
    }

    /// The next reply; None at end of stream. A malformed reply is an
    /// `InvalidData` error; a timeout, the read's own error ([`is_timeout`]).
    pub fn try_read(&mut self) -> std::io::Result<Option<R>> {
        loop {
            let decoded = decode_reply(&self.buf, usize::MAX).map_err(|e| {
                std::io::Error::new(ErrorKind::InvalidData, format!("bad reply: {e:?}"))
            })?;
            if let Decoded::Frame { frame, consumed } = decoded {
                let r = own(frame);
                self.buf.drain(..consumed);
                return Ok(Some(r));
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next reply; panics, naming `what`, at end of stream or when none
    /// comes within the read timeout.
    pub fn read(&mut self, what: &str) -> R {
        match self.try_read() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("{what}: connection closed"),
            Err(e) if is_timeout(&e) => {
                panic!("{what}: no reply within {:?}", super::READ_TIMEOUT)
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }

    pub fn call(&mut self, args: &[&[u8]]) -> R {
        self.send(args);
        self.read(&format!(
            "reply to {:?}",
            args[0].escape_ascii().to_string()
        ))
    }

    /// SUBSCRIBE (or PSUBSCRIBE, SSUBSCRIBE) to `names` and read the confirmations.
    pub fn subscribe(&mut self, cmd: &str, names: &[&str]) {
        let mut args: Vec<&[u8]> = vec![cmd.as_bytes()];
        args.extend(names.iter().map(|n| n.as_bytes()));
        self.send(&args);
        for n in names {
            match self.read(cmd) {
                R::List(v) if v.len() == 3 && v[1] == R::Bulk(n.as_bytes().to_vec()) => {}
                other => panic!("{cmd} {n}: {other:?}"),
            }
        }
    }

    /// Asserts the server closed the connection (after any replies left).
    pub fn expect_closed(&mut self, what: &str) {
        let end = Instant::now() + super::READ_TIMEOUT;
        loop {
            match self.try_read() {
                Ok(None) => return,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) => panic!("{what}: expected a close, got {e}"),
                Ok(Some(_)) => assert!(Instant::now() < end, "{what}: never closed"),
            }
        }
    }
}

//! Short writes: 1 MiB frames to subscribers with small receive buffers that
//! read in 4 KiB chunks, so the socket takes each frame in many pieces. Every
//! frame must still arrive whole, byte for byte, in order (PROTOCOL.md,
//! "Goals": no silent loss; a frame is never torn or interleaved), whether
//! the engine sends it from its registered frame pool or from the heap.

mod common;

use common::{config, connect, start};
use ringcast::proto::{self, ClientFrame, Decoded, ServerFrame};
use ringcast::{Config, Engine};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::mpsc;
use std::sync::Arc;

const TOPIC: &str = "bulk.frames";
const PAYLOAD: usize = 1 << 20;
const FRAMES: u64 = 20;
const SUBSCRIBERS: usize = 4;
const MAX_FRAME: u32 = 2 << 20;
const MAX_BACKLOG: usize = 16 << 20;
/// Subscribers' receive buffer (the kernel doubles it for bookkeeping).
const RCVBUF: libc::c_int = 8 << 10;
/// Bytes a subscriber asks the kernel for at a time.
const READ_CHUNK: usize = 4 << 10;
/// The publisher publishes frame `n` only once every subscriber has read
/// frame `n - WINDOW`: at most 5 MiB owed to a subscriber, under a third of
/// `MAX_BACKLOG`, so none is cut off as a slow consumer however the CPUs are
/// shared out.
const WINDOW: u64 = 4;

/// Frame `seq`'s payload: xorshift output seeded by `seq`, different from
/// every other frame's at every offset with overwhelming probability.
fn payload(seq: u64) -> Vec<u8> {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut p = Vec::with_capacity(PAYLOAD);
    while p.len() < PAYLOAD {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.extend_from_slice(&x.to_le_bytes());
    }
    p
}

fn set_rcvbuf(s: &TcpStream, bytes: libc::c_int) {
    // SAFETY: the fd is an open socket owned by `s`; the option value is a
    // c_int that lives for the whole call and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &bytes as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt SO_RCVBUF: {}",
        io::Error::last_os_error()
    );
}

/// A TCP connection whose receive buffer is set before the handshake, so the
/// window it offers matches the buffer from the first byte. (Shrinking it
/// after connecting makes Linux clamp the window far below the buffer once
/// the peer overflows it, and the transfer crawls.)
fn connect_with_rcvbuf(addr: SocketAddr, rcvbuf: libc::c_int) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("the engine listens on IPv4 loopback, got {addr}")
    };
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` is a freshly created socket that nothing else owns; the
    // TcpStream takes ownership and closes it on drop.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    set_rcvbuf(&stream, rcvbuf);
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sa` is a valid sockaddr_in that lives for the call, and its
    // size is passed with it.
    let rc = unsafe {
        libc::connect(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "connect {addr}: {}", io::Error::last_os_error());
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
    stream
}

/// A subscriber speaking the protocol by hand over a raw socket: the bytes
/// it has received and not yet decoded.
struct RawSub {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawSub {
    /// Connects, subscribes to [`TOPIC`], and waits for the SUBACK.
    fn subscribe(addr: SocketAddr) -> RawSub {
        let mut stream = connect_with_rcvbuf(addr, RCVBUF);
        let mut req = Vec::new();
        ClientFrame::Subscribe { topic: TOPIC }.encode(&mut req);
        stream.write_all(&req).unwrap();
        let mut sub = RawSub {
            stream,
            buf: Vec::new(),
        };
        let (next_seq, used) = loop {
            match proto::decode_server(&sub.buf, MAX_FRAME + 64).unwrap() {
                Decoded::Frame {
                    frame:
                        ServerFrame::SubAck {
                            next_seq, topic, ..
                        },
                    consumed,
                } => {
                    assert_eq!(topic, TOPIC);
                    break (next_seq, consumed);
                }
                Decoded::Frame { frame, .. } => panic!("expected SUBACK, got {frame:?}"),
                Decoded::Incomplete { .. } => sub.read_chunk(),
            }
        };
        assert_eq!(next_seq, 1, "nothing was published before");
        sub.buf.drain(..used);
        sub
    }

    /// One read of at most [`READ_CHUNK`] bytes; panics on end of stream,
    /// error or timeout.
    fn read_chunk(&mut self) {
        let at = self.buf.len();
        self.buf.resize(at + READ_CHUNK, 0);
        let n = match self.stream.read(&mut self.buf[at..]) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(n) => n,
            Err(e) => panic!("read: {e}"),
        };
        self.buf.truncate(at + n);
    }

    /// Reads DATA frames 1..=FRAMES, checking each against its payload, and
    /// reports each completed frame's seq on `progress`.
    fn read_all(mut self, id: usize, payloads: &[Vec<u8>], progress: mpsc::Sender<(usize, u64)>) {
        let mut need = proto::HEADER_LEN;
        for seq in 1..=FRAMES {
            loop {
                if self.buf.len() >= need {
                    match proto::decode_server(&self.buf, MAX_FRAME + 64)
                        .unwrap_or_else(|e| panic!("subscriber {id}, frame {seq}: {e}"))
                    {
                        Decoded::Frame { frame, consumed } => {
                            let ServerFrame::Data {
                                seq: got,
                                topic,
                                payload,
                                ..
                            } = frame
                            else {
                                panic!("subscriber {id}: expected DATA {seq}, got {frame:?}");
                            };
                            assert_eq!((topic, got), (TOPIC, seq), "subscriber {id}: in order");
                            assert!(
                                payload == payloads[seq as usize - 1].as_slice(),
                                "subscriber {id}: frame {seq} arrived altered ({} bytes)",
                                payload.len()
                            );
                            self.buf.drain(..consumed);
                            need = proto::HEADER_LEN;
                            break;
                        }
                        Decoded::Incomplete { need: n } => need = n,
                    }
                }
                self.read_chunk();
            }
            progress.send((id, seq)).unwrap();
        }
    }
}

/// Publishes [`FRAMES`] 1 MiB frames to [`SUBSCRIBERS`] slow-reading raw
/// subscribers, paced by their progress; each checks every frame.
fn send_big_frames(engine: &Engine) {
    let addr = engine.local_addr();
    let payloads: Arc<Vec<Vec<u8>>> = Arc::new((1..=FRAMES).map(payload).collect());
    let subs: Vec<RawSub> = (0..SUBSCRIBERS).map(|_| RawSub::subscribe(addr)).collect();
    let mut publisher = connect(addr);
    let (tx, rx) = mpsc::channel();
    let readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(id, sub)| {
            let payloads = payloads.clone();
            let tx = tx.clone();
            std::thread::spawn(move || sub.read_all(id, &payloads, tx))
        })
        .collect();
    drop(tx);

    let mut done = [0u64; SUBSCRIBERS];
    for seq in 1..=FRAMES {
        while done.iter().min().copied().unwrap_or(0) + WINDOW < seq {
            match rx.recv_timeout(common::READ_TIMEOUT) {
                Ok((id, s)) => done[id] = s,
                Err(e) => panic!("no subscriber progressed past {done:?}: {e}"),
            }
        }
        publisher
            .publish(TOPIC, &payloads[seq as usize - 1])
            .unwrap();
    }
    for r in readers {
        if let Err(panic) = r.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let stats = engine.stats();
    assert_eq!(stats.slow_consumers_total(), 0, "{stats:?}");
    assert!(
        stats.short_sends > 0,
        "the sockets took every 1 MiB frame in one write: the test did not exercise short writes ({stats:?})"
    );
}

#[test]
fn one_mib_frames_from_the_registered_pool_arrive_whole_through_short_writes() {
    // 256 MiB over 2 reactors and 8 size classes: 16 MiB, so 7 slots, for
    // the largest class per reactor, more than WINDOW + 1 frames in flight.
    let engine = start(Config {
        max_frame: MAX_FRAME,
        max_backlog: MAX_BACKLOG,
        pool_bytes: 256 << 20,
        ..config(2)
    });
    send_big_frames(&engine);
    assert_eq!(
        engine.stats().heap_frames,
        0,
        "precondition: every frame was sent from registered memory"
    );
}

#[test]
fn one_mib_frames_from_the_heap_arrive_whole_through_short_writes() {
    // The default test pool has no slot for a 1 MiB frame: all go to the heap.
    let engine = start(Config {
        max_frame: MAX_FRAME,
        max_backlog: MAX_BACKLOG,
        ..config(2)
    });
    send_big_frames(&engine);
    assert!(
        engine.stats().heap_frames >= FRAMES,
        "precondition: the frames were sent from heap memory"
    );
}

//! Graceful shutdown of the real daemon (PROTOCOL.md, error 8: "closed after
//! pending frames are flushed"): on SIGTERM `ringcast serve` hands every
//! subscriber all the frames it is owed, then ERROR 8, then closes; the
//! process exits 0 within a few seconds, and a new daemon can bind the same
//! port at once.

mod common;

use ringcast_client::{ClientError, OwnedServerFrame};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to start listening, and to exit after SIGTERM.
const START_DEADLINE: Duration = Duration::from_secs(10);
const EXIT_DEADLINE: Duration = Duration::from_secs(5);

const TOPIC: &str = "shutdown.news";
/// 400 frames of 16 KiB: 6.4 MiB, more than loopback socket buffers hold
/// (so some is still queued in the daemon at SIGTERM) and less than the
/// default 8 MiB backlog limit.
const FRAMES: usize = 400;
const FRAME_PAYLOAD: usize = 16 << 10;

fn payload(i: usize) -> Vec<u8> {
    let mut p = vec![(i % 251) as u8; FRAME_PAYLOAD];
    p[..8].copy_from_slice(&(i as u64).to_le_bytes());
    p
}

/// A free port on 127.0.0.1: bound by the kernel, then released.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A `ringcast serve` child process; killed if the test fails before it exits.
struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    /// Starts `ringcast serve --listen ADDR --cores 2` and waits until the port accepts.
    fn start(addr: SocketAddr) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringcast"));
        cmd.args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--ws-listen",
            "127.0.0.1:0",
            // Not the default 6380: another daemon (or Redis) may hold it.
            "--resp-listen",
            "127.0.0.1:0",
            "--cores",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // Only the flags count: no RINGCAST_* settings from the test's environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RINGCAST_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd.spawn().expect("spawn ringcast serve");
        let mut daemon = Daemon { child, addr };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!(
                    "ringcast serve on {addr} exited ({status}) before accepting: {}",
                    daemon.stderr()
                );
            }
            if TcpStream::connect(addr).is_ok() {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "ringcast serve did not accept on {addr} within {START_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sigterm(&self) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped, and a valid signal.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the process to exit, failing the test after `limit`.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ringcast serve on {} still running {limit:?} after SIGTERM",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the daemon wrote to stderr (call only once it has exited).
    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// SIGTERM, then exit status 0 within [`EXIT_DEADLINE`].
    fn stop_cleanly(&mut self) {
        self.sigterm();
        let status = self.wait_exit(EXIT_DEADLINE);
        assert!(
            status.success(),
            "ringcast serve exited with {status} after SIGTERM: {}",
            self.stderr()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn sigterm_flushes_owed_frames_then_error_8_then_exits_0_and_frees_the_port() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut daemon = Daemon::start(addr);

    let mut sub = common::connect(addr);
    assert_eq!(sub.subscribe(TOPIC).unwrap().next_seq, 1);
    let mut publisher = common::connect(addr);
    for i in 0..FRAMES {
        publisher.publish(TOPIC, &payload(i)).unwrap();
    }
    // The PONG says the daemon has read (accepted) every PUBLISH before it.
    publisher.ping(b"all sent").unwrap();

    daemon.sigterm();

    for i in 0..FRAMES {
        let m = sub.next_message().unwrap_or_else(|e| {
            panic!("frame {i} of {FRAMES} owed before SIGTERM never arrived: {e}")
        });
        assert_eq!(m.seq, i as u64 + 1);
        assert!(m.payload == payload(i), "seq {}: payload altered", m.seq);
    }
    match sub.next_frame() {
        Ok(OwnedServerFrame::Error { code: 8, .. }) => {}
        other => panic!("after the owed frames expected ERROR 8 (shutting down), got {other:?}"),
    }
    match sub.next_frame() {
        Err(ClientError::Closed) => {}
        other => panic!("after ERROR 8 expected end of stream, got {other:?}"),
    }

    // Clients close their end on end of stream, which ends the daemon's
    // lingering close of those connections.
    drop(sub);
    drop(publisher);
    let status = daemon.wait_exit(EXIT_DEADLINE);
    assert!(
        status.success(),
        "ringcast serve exited with {status} after SIGTERM: {}",
        daemon.stderr()
    );

    // The port is free again at once (TIME_WAIT connections included).
    let mut again = Daemon::start(addr);
    let mut c = common::connect(addr);
    assert_eq!(c.ping(b"new run").unwrap(), b"new run");
    assert_eq!(
        c.subscribe(TOPIC).unwrap().next_seq,
        1,
        "a new run starts seq at 1"
    );
    drop(c);
    again.stop_cleanly();
}

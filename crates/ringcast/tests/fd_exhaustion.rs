//! Isolation (issue 9, finding 5): out of file descriptors, the engine
//! still answers.
//!
//! When accept fails with EMFILE/ENFILE the engine counts it
//! (`accept_errors`) and uses a reserved spare descriptor: it closes the
//! spare, accepts the waiting connection, writes `503 Service Unavailable`
//! on the HTTP port (nothing on the native port), closes it at once and
//! reopens the spare (`fd_shed`). A client is never left unanswered in the
//! listen backlog, and the engine accepts again once descriptors are free.
//!
//! This binary lowers the process's RLIMIT_NOFILE (irreversibly: the hard
//! limit too), so it holds this one test and nothing else.

mod common;

use common::healthy::{Healthy, P99_BOUND};
use common::ws::{check_content_length, parse_response, request};
use common::{config, connect, start, wait_until};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The process's descriptor limit, soft and hard.
const NOFILE: u64 = 256;

/// A client out of descriptors on the server must hear back within this.
const PROMPT: Duration = Duration::from_secs(2);

fn set_nofile(n: u64) {
    let rl = libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    };
    // SAFETY: setrlimit reads one valid rlimit struct that outlives the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// Descriptors open in the process, counted without opening one (F_GETFD
/// on every number below the limit: the kernel allocates none above it).
fn open_fds() -> u64 {
    (0..NOFILE as libc::c_int)
        // SAFETY: F_GETFD only reads the descriptor's flags; EBADF for a free number.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count() as u64
}

fn is_emfile(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMFILE)
}

/// Opens /dev/null until the process is out of descriptors.
fn eat_all(eaten: &mut Vec<File>) {
    loop {
        match File::open("/dev/null") {
            Ok(f) => eaten.push(f),
            Err(e) if is_emfile(&e) => return,
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
}

/// Connects with the one descriptor left free. The engine's accept may
/// hold that number for an instant while it looks for a connection (and
/// give it back), so an EMFILE is retried for a while.
fn connect_with_last_fd(addr: SocketAddr) -> TcpStream {
    let mut stream = None;
    let ok = wait_until(Duration::from_secs(2), || match TcpStream::connect(addr) {
        Ok(s) => {
            stream = Some(s);
            true
        }
        Err(e) if is_emfile(&e) => false,
        Err(e) => panic!("connect {addr}: {e}"),
    });
    assert!(ok, "connect {addr}: no free descriptor for the client");
    let s = stream.unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s
}

/// Reads until the server closes (end of stream, or a reset: what came
/// before it is what the server said); a timeout means the client was
/// left waiting, which fails the test. Returns the bytes and how long it took.
fn read_to_close(s: &mut TcpStream, what: &str) -> (Vec<u8>, Duration) {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, t0.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "{what}: the engine, out of descriptors, left the client waiting \
                     for {PROMPT:?} ({} bytes so far: {:?})",
                    out.len(),
                    String::from_utf8_lossy(&out)
                )
            }
            Err(_) => return (out, t0.elapsed()),
        }
    }
}

/// Checks a response to a client shed for lack of descriptors (`whole`:
/// not possibly cut short by a reset).
fn assert_shed_response(bytes: &[u8], what: &str, whole: bool) {
    let r = parse_response(bytes);
    assert_eq!(r.status, 503, "{what}: {r:?}");
    if whole {
        check_content_length(&r);
    }
    assert!(
        r.text().to_lowercase().contains("file descriptor"),
        "{what}: the 503 says the server is out of file descriptors: {:?}",
        r.text()
    );
}

#[test]
fn out_of_file_descriptors_clients_are_answered_at_once_and_accepting_resumes() {
    set_nofile(NOFILE);
    // One reactor: one spare descriptor, one listener per port.
    let engine = start(config(1));
    let addr = engine.local_addr();
    let http = engine.ws_addr().expect("the HTTP/WebSocket listener is on");
    let healthy = Healthy::start(addr);

    // Take every free descriptor. Nothing else in the process opens one
    // meanwhile (the engine's accept waits for a connection; the healthy
    // pair is connected), so the table is full after this.
    let mut eaten = Vec::new();
    eat_all(&mut eaten);
    assert!(
        wait_until(Duration::from_secs(1), || open_fds() == NOFILE),
        "{} of {NOFILE} descriptors open after opening /dev/null until EMFILE",
        open_fds()
    );
    let before = engine.stats();
    let mut shed = before.fd_shed;

    // Each probe gets exactly one free descriptor: the client's socket. The
    // server's accept, in the same process, then finds none.
    drop(eaten.pop());

    // 1. GET /healthz: a 503, or at least a close, not a hang. (The server
    // closes with the request unread, so the 503 may be cut short by a
    // reset; the next probe reads it whole.)
    let mut c = connect_with_last_fd(http);
    // The engine may have closed it already: then the write fails, or the
    // peer resets; either way the read below tells what the client got.
    let _ = c.write_all(&request("GET", "/healthz"));
    let (bytes, took) = read_to_close(&mut c, "GET /healthz out of descriptors");
    if !bytes.is_empty() {
        assert_shed_response(&bytes, "GET /healthz out of descriptors", false);
    }
    shed += 1;
    assert!(
        wait_until(PROMPT, || engine.stats().fd_shed == shed),
        "fd_shed {} after one HTTP client was shed (expected {shed})",
        engine.stats().fd_shed
    );
    assert!(
        engine.stats().accept_errors > before.accept_errors,
        "the failed accept is counted"
    );
    eprintln!("HTTP client shed after {took:?} ({} bytes)", bytes.len());
    // Its descriptor is the free one for the next probe. Wait until the
    // engine has its spare back (the table is full again but for it).
    drop(c);
    assert!(
        wait_until(PROMPT, || open_fds() == NOFILE - 1),
        "{} of {NOFILE} descriptors open after the first shed: the engine did not \
         take its spare back",
        open_fds()
    );

    // 2. An HTTP client that has sent nothing yet reads the whole 503.
    let mut c = connect_with_last_fd(http);
    let (bytes, _) = read_to_close(&mut c, "HTTP client out of descriptors");
    assert!(
        !bytes.is_empty(),
        "an HTTP client shed for lack of descriptors gets a 503, not just a close"
    );
    assert_shed_response(&bytes, "HTTP client out of descriptors", true);
    shed += 1;
    assert!(
        wait_until(PROMPT, || engine.stats().fd_shed == shed),
        "fd_shed {} after two HTTP clients were shed (expected {shed})",
        engine.stats().fd_shed
    );
    drop(c);
    assert!(
        wait_until(PROMPT, || open_fds() == NOFILE - 1),
        "{} of {NOFILE} descriptors open after the second shed",
        open_fds()
    );

    // 3. A native client is closed at once, without a word.
    let mut c = connect_with_last_fd(addr);
    let (bytes, took) = read_to_close(&mut c, "native client out of descriptors");
    assert!(
        bytes.is_empty(),
        "a native client shed for lack of descriptors got {bytes:?}"
    );
    shed += 1;
    assert!(
        wait_until(PROMPT, || engine.stats().fd_shed == shed),
        "fd_shed {} after a native client was shed (expected {shed})",
        engine.stats().fd_shed
    );
    eprintln!("native client shed after {took:?}");
    drop(c);

    // Descriptors free again: the engine accepts, serves HTTP and
    // subscribers as before.
    drop(eaten);
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&request("GET", "/healthz")).unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("GET /healthz once descriptors are free: {e}"));
    let r = parse_response(&bytes);
    assert_eq!(
        r.status, 200,
        "GET /healthz once descriptors are free: {r:?}"
    );
    let mut sub = connect(addr);
    let next = sub.subscribe("fd.after").unwrap().next_seq;
    let mut publisher = connect(addr);
    publisher.publish("fd.after", b"accepting again").unwrap();
    let m = sub.next_message().unwrap();
    assert_eq!(
        (m.seq, m.payload.as_slice()),
        (next, &b"accepting again"[..]),
        "a subscriber connected after the shortage gets what is published"
    );
    assert_eq!(
        engine.stats().fd_shed,
        shed,
        "nothing shed with descriptors free"
    );

    healthy
        .finish()
        .assert_ok("out of file descriptors", P99_BOUND);
}

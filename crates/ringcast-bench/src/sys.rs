//! Every raw syscall the load generator makes: epoll, timerfd, non-blocking
//! sockets, pipes, clocks, CPU accounting (getrusage, /proc), affinity and
//! machine facts. `syscall!` turns `-1` into `io::Error`; every fd is an
//! `OwnedFd`, closed in `Drop`.

pub use ringcast::sys::{ignore_sigpipe, kernel_release, pin_current_thread, realtime_ns};
use ringcast::sys::{set_int_opt, sockaddr_of};

/// Calls a libc function and turns a `-1` result into the thread's `errno`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: every call site passes arguments that are valid for the
        // libc function named; the macro only checks the return value.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// CLOCK_MONOTONIC in nanoseconds. System-wide on Linux, so stamps taken by
/// one process compare with reads taken by another on the same host.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (user + system) of the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if syscall!(getrusage(libc::RUSAGE_THREAD, &mut ru)).is_err() {
        return 0;
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Clock ticks per second, the unit of /proc's utime and stime.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory arguments.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t <= 0 {
        100
    } else {
        t as u64
    }
}

/// utime + stime, in clock ticks, from the text of a `/proc/.../stat` file.
/// The command name (field 2) is in parentheses and may hold spaces, so the
/// fields are counted from the last `)`: utime and stime are fields 14 and 15.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')': field 3 (state) is index 0, so utime (14) is index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds of process `pid`, all threads, from /proc/PID/stat.
pub fn process_cpu_s(pid: u32) -> io::Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&text)
        .ok_or_else(|| io::Error::other(format!("cannot parse /proc/{pid}/stat")))?;
    Ok(ticks as f64 / clock_ticks_per_sec() as f64)
}

/// CPU seconds of this process's threads whose name starts with `prefix`
/// (the embedded engine's reactors are `ringcast-r0`, `ringcast-r1`, ...).
/// Returns the seconds and how many threads matched.
pub fn own_threads_cpu_s(prefix: &str) -> (f64, usize) {
    let mut ticks = 0;
    let mut matched = 0;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0);
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        if let Some(t) = std::fs::read_to_string(path.join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat_ticks)
        {
            ticks += t;
            matched += 1;
        }
    }
    (ticks as f64 / clock_ticks_per_sec() as f64, matched)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (best effort) and returns
/// the soft limit in force afterwards.
pub fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut rl)).is_err() {
        return 1024;
    }
    if rl.rlim_cur < rl.rlim_max {
        let want = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        if syscall!(setrlimit(libc::RLIMIT_NOFILE, &want)).is_ok() {
            return want.rlim_cur;
        }
    }
    rl.rlim_cur
}

/// Online CPUs.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no memory arguments.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

/// The first "model name" of /proc/cpuinfo, or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// An epoll instance.
pub struct Epoll {
    fd: OwnedFd,
}

/// Readable.
pub const IN: u32 = libc::EPOLLIN as u32;
/// Writable.
pub const OUT: u32 = libc::EPOLLOUT as u32;
/// Hang-up or error (always reported).
pub const HUP_OR_ERR: u32 = (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32;

impl Epoll {
    /// A new epoll instance (close-on-exec).
    pub fn new() -> io::Result<Epoll> {
        let raw = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: epoll_create1 returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: i32, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev))?;
        Ok(())
    }

    /// Watches `fd` for `events` (level-triggered), reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, events)
    }

    /// Changes the events watched on `fd`.
    pub fn modify(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, events)
    }

    /// Stops watching `fd` (closing it does that too).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout_ms` (-1: forever) and fills `events`; returns
    /// how many are ready. EINTR is reported as 0 ready.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        match syscall!(epoll_wait(
            self.fd.as_raw_fd(),
            events.as_mut_ptr(),
            events.len().min(i32::MAX as usize) as i32,
            timeout_ms
        )) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// A CLOCK_MONOTONIC timerfd (non-blocking): the publisher's pacing clock,
/// with nanosecond deadlines where epoll's own timeout has milliseconds.
pub struct Timer {
    fd: OwnedFd,
}

impl Timer {
    /// A new disarmed timer.
    pub fn new() -> io::Result<Timer> {
        let raw = syscall!(timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC
        ))?;
        // SAFETY: timerfd_create returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Timer { fd })
    }

    /// The fd, for epoll.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Fires once at `deadline_ns` (CLOCK_MONOTONIC); a deadline already
    /// past fires at once.
    pub fn arm_at(&self, deadline_ns: u64) -> io::Result<()> {
        let deadline_ns = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
            },
        };
        syscall!(timerfd_settime(
            self.fd.as_raw_fd(),
            libc::TFD_TIMER_ABSTIME,
            &spec,
            std::ptr::null_mut()
        ))?;
        Ok(())
    }

    /// Consumes an expiry so the fd stops being readable.
    pub fn drain(&self) {
        let mut buf = [0u8; 8];
        let _ = read(self.fd.as_raw_fd(), &mut buf);
    }
}

/// Starts a non-blocking TCP connect to `addr` with TCP_NODELAY set. With
/// `source`, binds to that IPv4 address first (IP_BIND_ADDRESS_NO_PORT, so
/// the port is chosen at connect time against the whole 4-tuple: each
/// 127.0.0.x source address brings its own ephemeral port range).
/// Returns the socket and whether it is already connected.
pub fn connect_start(addr: &SocketAddr, source: Option<Ipv4Addr>) -> io::Result<(OwnedFd, bool)> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let raw = syscall!(socket(
        family,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: socket returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_int_opt(raw, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if let (Some(src), SocketAddr::V4(_)) = (source, addr) {
        set_int_opt(raw, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
        let (sa, len) = sockaddr_of(&SocketAddr::from((src, 0)));
        syscall!(bind(raw, &sa as *const _ as *const libc::sockaddr, len))?;
    }
    let (sa, len) = sockaddr_of(addr);
    match syscall!(connect(raw, &sa as *const _ as *const libc::sockaddr, len)) {
        Ok(_) => Ok((fd, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((fd, false)),
        Err(e) => Err(e),
    }
}

/// The pending error of a socket (SO_ERROR): how a non-blocking connect ended.
pub fn take_socket_error(fd: RawFd) -> io::Result<()> {
    let mut err: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        &mut err as *mut i32 as *mut libc::c_void,
        &mut len
    ))?;
    if err == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(err))
    }
}

/// Asks the kernel to stamp each received segment with CLOCK_REALTIME
/// (SO_TIMESTAMPNS): on loopback the stamp is taken when the sender's
/// segment enters the receive path, so it does not include the time this
/// process takes to get to the socket.
pub fn enable_rx_timestamps(fd: RawFd) -> io::Result<()> {
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// recvmsg(2) into `buf`, with the kernel's receive timestamp of the last
/// segment read (TCP reports the newest), when one was attached.
pub fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    recvmsg_stamped(fd, buf.as_mut_ptr(), buf.len(), 0)
}

/// Discards up to `len` received bytes without copying them (MSG_TRUNC on
/// a TCP socket), with the receive timestamp as [`recv_stamped`].
pub fn recv_discard(fd: RawFd, len: usize) -> io::Result<(usize, Option<u64>)> {
    recvmsg_stamped(fd, std::ptr::null_mut(), len, libc::MSG_TRUNC)
}

/// recvmsg(2) of up to `len` bytes at `ptr` (null with MSG_TRUNC: nothing
/// is written there).
fn recvmsg_stamped(
    fd: RawFd,
    ptr: *mut u8,
    len: usize,
    flags: i32,
) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: ptr as *mut libc::c_void,
        iov_len: len,
    };
    // Room for a few control messages, aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; zeroed is an empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = syscall!(recvmsg(fd, &mut msg, flags))?;
    let mut stamp = None;
    // SAFETY: `msg` was filled by the kernel: CMSG_FIRSTHDR/NXTHDR walk its
    // control buffer (`control`, alive here) within msg_controllen, and an
    // SCM_TIMESTAMPNS message carries one timespec, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp.filter(|&t| t != 0)))
}

/// read(2) into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let n = syscall!(read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()))?;
    Ok(n as usize)
}

/// write(2) from `buf`.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let n = syscall!(write(fd, buf.as_ptr() as *const libc::c_void, buf.len()))?;
    Ok(n as usize)
}

/// Sets O_NONBLOCK on an fd this process owns (a pipe end).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_skip_a_command_name_with_spaces_and_parens() {
        let line = "1234 (ring cast) r) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 3 0 12345 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn kernel_receive_stamps_come_with_the_data() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        enable_rx_timestamps(rx.as_raw_fd()).unwrap();
        // The kernel turns stamping on for the whole host a moment after the
        // first socket asks (a deferred static key): retry until it does.
        for _ in 0..200 {
            let before = realtime_ns();
            tx.write_all(b"hello").unwrap();
            let mut buf = [0u8; 16];
            let (n, stamp) = recv_stamped(rx.as_raw_fd(), &mut buf).unwrap();
            let after = realtime_ns();
            assert_eq!(&buf[..n], b"hello");
            if let Some(stamp) = stamp {
                assert!(
                    before <= stamp && stamp <= after,
                    "{before} {stamp} {after}"
                );
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no SO_TIMESTAMPNS stamp in 2 s");
    }

    #[test]
    fn discarding_skips_bytes_without_reading_them() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        tx.write_all(b"0123456789abc").unwrap();
        let (n, _) = recv_discard(rx.as_raw_fd(), 10).unwrap();
        assert_eq!(n, 10);
        let mut buf = [0u8; 8];
        let (n, _) = recv_stamped(rx.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"abc");
    }

    #[test]
    fn own_stat_parses() {
        assert!(process_cpu_s(std::process::id()).is_ok());
        assert!(now_ns() > 0);
        assert!(online_cpus() >= 1);
    }
}

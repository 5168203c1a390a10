//! Every raw syscall the engine makes outside the ring: sockets, memory maps,
//! CPU affinity, signals, clocks. `syscall!` turns `-1` into `io::Error`, and
//! every resource has an owner that releases it in `Drop`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

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

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writing to a socket the peer has reset must be an error, not a signal.
pub fn ignore_sigpipe() {
    // SAFETY: setting SIGPIPE's disposition to SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "CPU index too large",
        ));
    }
    // SAFETY: cpu < CPU_SETSIZE was checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    syscall!(sched_setaffinity(
        0,
        std::mem::size_of::<libc::cpu_set_t>(),
        &set
    ))?;
    Ok(())
}

/// The soft RLIMIT_NOFILE of this process.
pub fn nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    match syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut rl)) {
        Ok(_) => rl.rlim_cur,
        Err(_) => 1024,
    }
}

/// `sysconf(name)`, or `fallback` when it has no answer (the clock tick
/// rate and the page size, for the process metrics).
pub fn sysconf(name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as u64
    } else {
        fallback
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (best effort).
pub fn raise_nofile_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut rl)).is_ok() && rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        let _ = syscall!(setrlimit(libc::RLIMIT_NOFILE, &rl));
    }
}

pub fn sockaddr_of(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

pub fn set_int_opt(fd: RawFd, level: i32, opt: i32, val: i32) -> io::Result<()> {
    syscall!(setsockopt(
        fd,
        level,
        opt,
        &val as *const i32 as *const libc::c_void,
        std::mem::size_of::<i32>() as libc::socklen_t
    ))?;
    Ok(())
}

/// A listening TCP socket with SO_REUSEADDR (restart binds at once) and
/// SO_REUSEPORT (one listener per reactor on the same port; the kernel
/// spreads new connections between them by a hash of the 4-tuple).
pub fn reuseport_listener(addr: &SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let fd = bound_socket(addr, true)?;
    syscall!(listen(fd.as_raw_fd(), backlog))?;
    Ok(fd)
}

/// Fails with EADDRINUSE when anything listens on `addr`, even another
/// daemon's SO_REUSEPORT socket (which a SO_REUSEPORT bind would silently
/// share the port with).
pub fn check_port_free(addr: &SocketAddr) -> io::Result<()> {
    bound_socket(addr, false).map(drop)
}

fn bound_socket(addr: &SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = syscall!(socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuseport {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    let (storage, len) = sockaddr_of(addr);
    syscall!(bind(fd, &storage as *const _ as *const libc::sockaddr, len))?;
    Ok(owned)
}

/// The address a socket is bound to.
pub fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: plain data, zeroed is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    syscall!(getsockname(
        fd,
        &mut storage as *mut _ as *mut libc::sockaddr,
        &mut len
    ))?;
    socket_addr(&storage)
}

/// The address of a connected socket's peer (for log lines).
pub fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: plain data, zeroed is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    syscall!(getpeername(
        fd,
        &mut storage as *mut _ as *mut libc::sockaddr,
        &mut len
    ))?;
    socket_addr(&storage)
}

/// A socket address the kernel wrote.
fn socket_addr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
        }
        _ => Err(io::Error::other("unknown address family")),
    }
}

/// Disables Nagle: the engine coalesces frames itself.
pub fn set_nodelay(fd: RawFd) -> io::Result<()> {
    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
}

/// shutdown(2); errors (a peer already gone) are of no interest to callers.
pub fn shutdown(fd: RawFd, how: i32) {
    let _ = syscall!(shutdown(fd, how));
}

/// close(2) of a descriptor the caller owns.
pub fn close(fd: RawFd) {
    let _ = syscall!(close(fd));
}

/// A descriptor held in reserve (`/dev/null`): closed when accept fails
/// for lack of descriptors, so the waiting client can still be accepted
/// and told, then opened again.
pub fn open_spare() -> io::Result<OwnedFd> {
    let fd = syscall!(open(
        c"/dev/null".as_ptr(),
        libc::O_RDONLY | libc::O_CLOEXEC
    ))?;
    // SAFETY: open just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Accepts a connection waiting on listener `fd` without blocking (the
/// listener itself may be blocking: poll first); None when none waits or
/// accept fails.
pub fn accept_now(fd: RawFd) -> Option<RawFd> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut p, 1, 0) };
    if ready != 1 || p.revents & libc::POLLIN == 0 {
        return None;
    }
    let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    syscall!(accept4(
        fd,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        flags
    ))
    .ok()
}

/// Bytes in a TCP socket's send queue, sent or not but not yet
/// acknowledged by the peer (SIOCOUTQ); 0 when it cannot be read.
pub fn unacked_bytes(fd: RawFd) -> u32 {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer, which
    // points at `n` for the duration of the call.
    match syscall!(ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int)) {
        Ok(_) => n.max(0) as u32,
        Err(_) => 0,
    }
}

/// Writes what the socket takes of `bytes` now, without blocking; errors
/// and short writes are of no interest (a best-effort farewell).
pub fn send_now(fd: RawFd, bytes: &[u8]) {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    let _ = syscall!(send(fd, bytes.as_ptr().cast(), bytes.len(), flags));
}

/// An anonymous private memory mapping, unmapped on drop.
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; who may write where is governed by the
// pool's ownership rules, not by the mapping itself.
unsafe impl Send for Mmap {}
// SAFETY: as above; the struct itself has no interior state.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes (rounded up to a page) of zeroed memory.
    pub fn anonymous(len: usize) -> io::Result<Mmap> {
        let len = len.max(1).next_multiple_of(4096);
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; the result is checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap {
            ptr: NonNull::new(ptr as *mut u8).expect("mmap returned null"),
            len,
        })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// Kernel release string, for error messages.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if syscall!(uname(&mut u)).is_err() {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates `release`.
    let c = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    c.to_string_lossy().into_owned()
}

//! The driver's raw syscalls (libc): the daemon dies with the driver
//! (PR_SET_PDEATHSIG), and the driver's own descriptor limit.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child started by `cmd` receive SIGKILL when the thread that
/// spawns it exits, so a killed driver never leaves a daemon behind.
///
/// The signal follows the spawning *thread*, not the process: spawn from
/// the main thread (or one that outlives the child). It survives the
/// `execve` of `prlimit` and of the daemon that `prlimit` execs (neither is
/// set-user-ID).
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and calls
    // only prctl and getppid, both async-signal-safe; it touches no memory
    // of the parent's beyond its own stack.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then the
            // signal will never come, so do not start at all.
            if libc::getppid() == 1 {
                return Err(io::Error::other(
                    "the driver exited before the daemon started",
                ));
            }
            Ok(())
        });
    }
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit, so `flood`
/// can open its 1,536 sockets where the soft limit is 1,024. Returns the
/// (soft, hard) limits now in force.
pub(crate) fn raise_nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit, read only during the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == -1 {
            return Err(io::Error::last_os_error());
        }
        lim = want;
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

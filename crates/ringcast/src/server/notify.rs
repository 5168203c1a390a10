#![forbid(unsafe_code)]
//! The systemd notification protocol (sd_notify(3)), by hand: one datagram
//! of `KEY=VALUE` lines to the Unix socket named by `$NOTIFY_SOCKET` (a
//! path, or an abstract name when it begins with `@`). Without the
//! variable (not started by systemd with `Type=notify`) it does nothing.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `"READY=1\nSTATUS=serving"`) to the service manager.
/// Returns whether there was one to tell.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}

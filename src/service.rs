//! Running under a service manager: systemd's notify protocol (the binary
//! sends READY=1, STOPPING=1 and WATCHDOG=1 over `$NOTIFY_SOCKET`), and
//! dropping root after binding when started by hand.
//!
//! The notify protocol is one datagram per message to a unix socket, which
//! std can send; no daemon library is needed for it.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where systemd listens for notifications, if it does.
pub struct Notifier {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; None when not run by systemd with Type=notify.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec();
        let addr = if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket name.
            <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
                name,
            )
            .ok()?
        } else {
            std::os::unix::net::SocketAddr::from_pathname(std::path::Path::new(&path)).ok()?
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, addr })
    }

    /// Sends one notification, e.g. "READY=1". Failures are logged, never
    /// fatal: the tracker works without its manager hearing about it.
    pub fn notify(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            log::warn!("sd_notify {message:?}: {e}");
        }
    }
}

/// How often to send WATCHDOG=1: half the period systemd asked for in
/// `$WATCHDOG_USEC`, if it asked this process (`$WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// True when systemd started this process (it then picks the user).
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Switches to `user` (and `group`, or the user's primary group) if running
/// as root. Called after the ports are bound.
pub fn drop_privileges(user: &str, group: &str) -> Result<(), String> {
    if user.is_empty() || !crate::sys::is_root() {
        return Ok(());
    }
    crate::sys::switch_user(user, group)
}

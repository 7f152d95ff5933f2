//! Running under a service manager: systemd's notify protocol (the binary
//! sends READY=1, STOPPING=1 and WATCHDOG=1 over `$NOTIFY_SOCKET`), the
//! limit on open files, and dropping root after binding when started by
//! hand.
//!
//! The notify protocol is one datagram per message to a unix socket, which
//! std can send; no daemon library is needed for it.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::config::Config;

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

/// True when stderr is journald's stream: `$JOURNAL_STREAM` names its
/// device and inode (`DEV:INODE`, systemd.exec(5)). Comparing them, not only
/// checking that the variable is set, matters when a program run under
/// systemd starts swarmd with stderr sent elsewhere (a file, a terminal): it
/// inherits the variable, but its lines do not go to the journal.
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // fstat of a duplicate of fd 2: std has no fstat on a borrowed fd.
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
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

/// Raises the soft limit on open files to the hard one, as far as the
/// kernel allows (`fs.nr_open` caps an unlimited hard limit). Returns the
/// soft limit before and the one now in force. The binary calls this at
/// start-up; [`crate::start`] does not, so a program (or test) embedding
/// the tracker keeps its own limits.
///
/// Why: every HTTP connection is a descriptor, and the usual soft limit
/// (1024) is far below `http.max_connections` (4096 a worker by default).
/// The hard limit is what the operator (`LimitNOFILE=`, `ulimit -Hn`)
/// allows; the soft one is only a default for programs that never ask.
pub fn raise_nofile_limit() -> Result<(u64, u64), String> {
    let (soft, hard) = crate::sys::nofile_limits().map_err(|e| format!("getrlimit: {e}"))?;
    let mut target = hard;
    if hard == libc::RLIM_INFINITY {
        // setrlimit refuses a soft limit above fs.nr_open.
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if soft >= target {
        return Ok((soft, soft));
    }
    crate::sys::set_nofile_limits(target, hard)
        .map_err(|e| format!("cannot raise the open files limit from {soft} to {target}: {e}"))?;
    Ok((soft, target))
}

/// The descriptors a tracker with `config` may hold at once: the HTTP
/// connections (`http.max_connections` per socket worker), and a margin for
/// everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorBudget {
    pub connections: u64,
    pub margin: u64,
}

/// Descriptors the process holds besides sockets, polls and connections:
/// standard streams, the signal pipe, the files a reload reads, the notify
/// socket, and what libraries open for a moment.
const SLACK: u64 = 64;

impl DescriptorBudget {
    pub fn of(config: &Config) -> DescriptorBudget {
        let workers = config.workers.socket_workers.get() as u64;
        let per_worker = config.udp.addresses.len() as u64
            + config.http.addresses.len() as u64
            // The poll and its waker.
            + 2;
        let stats = match config.stats.socket_addr() {
            // Its connections, listener, poll and waker.
            Some(_) => crate::stats_server::MAX_CONNECTIONS as u64 + 3,
            None => 0,
        };
        let connections = if config.http.addresses.is_empty() {
            0
        } else {
            config.http.max_connections.get() as u64 * workers
        };
        DescriptorBudget {
            connections,
            margin: per_worker * workers + stats + SLACK,
        }
    }

    pub fn total(&self) -> u64 {
        self.connections + self.margin
    }
}

/// Raises the soft limit on open files (see [`raise_nofile_limit`]), logs
/// the limit in force, and warns when `config` may need more descriptors
/// than that, naming the keys to change.
pub fn check_nofile_limit(config: &Config) {
    let limit = match raise_nofile_limit() {
        Ok((before, now)) if now > before => {
            log::info!("open files limit: {now} (raised from {before})");
            now
        }
        Ok((_, now)) => {
            log::info!("open files limit: {now}");
            now
        }
        Err(e) => {
            log::warn!("{e}");
            match crate::sys::nofile_limits() {
                Ok((soft, _)) => soft,
                Err(_) => return,
            }
        }
    };
    let budget = DescriptorBudget::of(config);
    if limit < budget.total() {
        log::warn!(
            "open files limit {limit} is short of the {} descriptors swarmd may need \
             (http.max_connections {} x workers.socket_workers {}, plus {} for sockets, \
             polls, the stats endpoint and slack): beyond it new HTTP connections wait; \
             lower http.max_connections or raise the limit (LimitNOFILE= in the systemd \
             unit, ulimit -n)",
            budget.total(),
            config.http.max_connections.get(),
            config.workers.socket_workers.get(),
            budget.margin,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_connections_per_worker_and_a_margin() {
        let mut config = Config::default();
        config.workers.socket_workers = std::num::NonZeroUsize::new(4).unwrap();
        config.stats.address = String::new();
        let b = DescriptorBudget::of(&config);
        assert_eq!(b.connections, 4096 * 4);
        // Default addresses: two UDP, two HTTP per worker, and a poll and
        // waker each.
        assert_eq!(b.margin, 4 * (2 + 2 + 2) + SLACK);
        config.stats.address = "127.0.0.1:0".into();
        assert_eq!(DescriptorBudget::of(&config).margin, b.margin + 67);
        config.http.addresses.clear();
        assert_eq!(DescriptorBudget::of(&config).connections, 0);
    }
}

//! Datagram I/O in batches: up to [`BATCH`] datagrams read one `recvfrom`
//! at a time until the socket is empty, and the answers sent one `sendto`
//! each. Every `unsafe` block of the crate is in this module.
//!
//! Why not `recvmmsg`/`sendmmsg`, which move a batch in one system call: on
//! the kernel we measure on (6.18, with its speculation mitigations), they
//! pay per message for copying its header, its iovec and its address in and
//! out of user memory, and that costs more than the system call it saves.
//! Whole-daemon pairs of runs in the same machine state gave +3 to +12 % per
//! CPU-second for one call per datagram under swarmd-load (5 pairs), and +2
//! to +8 % under aquatic_udp_load_test (5 rounds; benches/README.md). The
//! batch stays the unit of work above this module: the swarm workers get a batch
//! per read, and the buffers and address slots are allocated once per
//! socket worker and reused.
//!
//! The two calls go through `syscall(2)`, not glibc's `recvfrom`/`sendto`.
//! Those are cancellation points: in a process with threads each call turns
//! asynchronous cancellation on and off around the system call, which the
//! profile put at ~0.6 % of the server's time. swarmd never cancels a thread.
//! Alternating whole-daemon runs gave +4 and +7 % per CPU-second under
//! aquatic_udp_load_test in the two pairs with the CPUs near (+1 % in one far),
//! and +0 to +1 % in four pairs under swarmd-load with them far. Every argument
//! is passed as a `c_long`, the width `syscall` reads its variadic arguments
//! at.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Most datagrams read in one batch.
pub const BATCH: usize = 64;
/// Largest datagram read whole. A 74-hash scrape is 1496 bytes; anything
/// longer than this is cut by the kernel and reported as truncated.
pub const MAX_DATAGRAM: usize = 2048;

/// Reusable buffers and address slots for a batch of reads.
pub struct RecvBatch {
    bufs: Box<[[u8; MAX_DATAGRAM]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    addr_lens: [libc::socklen_t; BATCH],
    /// Each datagram's whole length, which is more than MAX_DATAGRAM when
    /// the kernel cut it.
    lens: [usize; BATCH],
    received: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH].into_boxed_slice(),
            // SAFETY: sockaddr_storage is plain old data; all zeroes is valid.
            addrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            addr_lens: [0; BATCH],
            lens: [0; BATCH],
            received: 0,
        }
    }

    /// Reads up to [`BATCH`] datagrams without blocking, stopping when the
    /// socket is empty. `Ok(0)` never happens: an empty socket is
    /// `Err(WouldBlock)`. An error after the first datagram ends the batch
    /// (a socket error such as ECONNREFUSED, for an earlier answer, is
    /// thereby cleared and not reported: there is nothing to do about it).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received = 0;
        for i in 0..BATCH {
            self.addr_lens[i] = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: the buffer and the address slot are alive, owned by
            // self, and as large as the lengths given; the kernel writes
            // only within them. MSG_TRUNC makes it return the datagram's
            // whole length, still writing at most MAX_DATAGRAM bytes.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_recvfrom,
                    fd as libc::c_long,
                    self.bufs[i].as_mut_ptr() as libc::c_long,
                    MAX_DATAGRAM as libc::c_long,
                    (libc::MSG_DONTWAIT | libc::MSG_TRUNC) as libc::c_long,
                    &mut self.addrs[i] as *mut libc::sockaddr_storage as libc::c_long,
                    &mut self.addr_lens[i] as *mut libc::socklen_t as libc::c_long,
                )
            };
            if n < 0 {
                if i == 0 {
                    return Err(io::Error::last_os_error());
                }
                break;
            }
            self.lens[i] = n as usize;
            self.received = i + 1;
        }
        Ok(self.received)
    }

    /// The bytes of the datagrams of the last `recv` (as much of each as
    /// was read).
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.received).map(move |i| self.bytes(i))
    }

    fn bytes(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i].min(MAX_DATAGRAM)]
    }

    /// How many datagrams the last `recv` read.
    pub fn len(&self) -> usize {
        self.received
    }

    /// The datagrams of the last `recv`: (source, bytes, truncated).
    pub fn iter(&self) -> impl Iterator<Item = (Option<SocketAddr>, &[u8], bool)> {
        (0..self.received).map(move |i| {
            (
                from_storage(&self.addrs[i], self.addr_lens[i]),
                self.bytes(i),
                self.lens[i] > MAX_DATAGRAM,
            )
        })
    }
}

fn from_storage(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(addr: &SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a
            // sockaddr_in; we write every field that matters.
            let sin =
                unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            sin.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Outgoing datagrams for one socket: their bytes in one buffer, sent one
/// `sendto` each when flushed.
pub struct SendQueue {
    data: Vec<u8>,
    /// (destination, start, end) into `data`.
    items: Vec<(SocketAddr, usize, usize)>,
    addr: libc::sockaddr_storage,
}

impl Default for SendQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl SendQueue {
    pub fn new() -> SendQueue {
        SendQueue {
            data: Vec::with_capacity(BATCH * 512),
            items: Vec::with_capacity(BATCH),
            // SAFETY: sockaddr_storage is plain old data; all zeroes is valid.
            addr: unsafe { zeroed() },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends one datagram: `write` fills it in at the end of the buffer.
    #[inline]
    pub fn push(&mut self, to: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        write(&mut self.data);
        self.items.push((to, start, self.data.len()));
    }

    /// Sends everything queued. Returns (datagrams sent, bytes sent,
    /// datagrams dropped because the socket would block or failed).
    pub fn flush(&mut self, fd: RawFd) -> (usize, usize, usize) {
        let (mut sent, mut bytes, mut dropped) = (0, 0, 0);
        let mut next = 0;
        while next < self.items.len() {
            let (to, start, end) = self.items[next];
            let namelen = to_storage(&to, &mut self.addr);
            let datagram = &self.data[start..end];
            // SAFETY: `datagram` and `addr` are alive and not modified during
            // the call, and as long as the lengths given; the kernel only
            // reads them.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_sendto,
                    fd as libc::c_long,
                    datagram.as_ptr() as libc::c_long,
                    datagram.len() as libc::c_long,
                    libc::MSG_DONTWAIT as libc::c_long,
                    &self.addr as *const libc::sockaddr_storage as libc::c_long,
                    namelen as libc::c_long,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if err.kind() == io::ErrorKind::WouldBlock {
                    // The send buffer is full: drop the rest, never wait.
                    dropped += self.items.len() - next;
                    break;
                }
                // This datagram was refused (e.g. an unreachable
                // destination): drop it and go on with the rest.
                dropped += 1;
                next += 1;
                continue;
            }
            sent += 1;
            bytes += datagram.len();
            next += 1;
        }
        self.items.clear();
        self.data.clear();
        (sent, bytes, dropped)
    }
}

/// True when the effective user is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The soft and hard limits on open files (RLIMIT_NOFILE);
/// `libc::RLIM_INFINITY` for no limit.
pub fn nofile_limits() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the live struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Sets the limits on open files; raising `soft` up to `hard` needs no
/// privilege.
pub fn set_nofile_limits(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the live struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts the calling thread in the `SCHED_IDLE` class: it runs only when no
/// other thread wants the CPU, and any other thread that wakes takes the CPU
/// from it at once. Linux only; elsewhere nothing happens.
pub fn run_only_when_idle() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler only reads the live struct we pass;
        // pid 0 is the calling thread.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Switches the whole process (every thread: glibc's setuid and setgid
/// apply to all threads) to `user` and `group` (or the user's primary
/// group), dropping supplementary groups. Root only.
pub fn switch_user(user: &str, group: &str) -> Result<(), String> {
    let c_user = std::ffi::CString::new(user).map_err(|_| format!("bad user name {user:?}"))?;
    // SAFETY: getpwnam takes a NUL-terminated string and returns a pointer
    // to static storage or null; we read it before any other call that
    // could overwrite it. This runs once, at start-up.
    let (uid, primary_gid) = unsafe {
        let pw = libc::getpwnam(c_user.as_ptr());
        if pw.is_null() {
            return Err(format!("no such user {user:?}"));
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    let gid = if group.is_empty() {
        primary_gid
    } else {
        let c_group =
            std::ffi::CString::new(group).map_err(|_| format!("bad group name {group:?}"))?;
        // SAFETY: as for getpwnam.
        unsafe {
            let gr = libc::getgrnam(c_group.as_ptr());
            if gr.is_null() {
                return Err(format!("no such group {group:?}"));
            }
            (*gr).gr_gid
        }
    };
    // SAFETY: plain system calls with values checked above; the order
    // (groups, gid, then uid) is the one that works, since after setuid we
    // could no longer change groups.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(format!("setgroups: {}", io::Error::last_os_error()));
        }
        if libc::setgid(gid) != 0 {
            return Err(format!("setgid({gid}): {}", io::Error::last_os_error()));
        }
        if libc::setuid(uid) != 0 {
            return Err(format!("setuid({uid}): {}", io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Asks the CPU to start loading the cache line at `p`. A hint only: it
/// never faults, whatever `p` is, and changes nothing observable.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint with no architectural effect; it does not
    // fault on any address, and SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the kernel to back the 2 MiB-aligned part of the `count` elements
/// at `memory` (an allocation of the caller's) with huge pages (transparent
/// huge pages, when the system leaves them to `madvise`). For the few large
/// tables that every request reads at a random place: one TLB entry then
/// covers 2 MiB of them instead of 4 KiB, so a lookup costs fewer page
/// walks. A hint only: an error (no THP in this kernel, say) changes
/// nothing.
pub fn huge_pages<T>(memory: *const T, count: usize) {
    const HUGE: usize = 2 << 20;
    let start = memory as usize;
    let end = start.saturating_add(count.saturating_mul(std::mem::size_of::<T>()));
    let aligned = start.next_multiple_of(HUGE);
    if end.saturating_sub(aligned) < HUGE {
        return;
    }
    let len = (end - aligned) / HUGE * HUGE;
    #[cfg(target_os = "linux")]
    // SAFETY: madvise(MADV_HUGEPAGE) on pages inside a live allocation only
    // changes how the kernel backs them, never their contents.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = len;
}

/// The wall clock in whole Unix seconds from `CLOCK_REALTIME_COARSE`: the
/// time of the last timer tick, read from memory the kernel shares (vDSO),
/// with no clock source to read. None if the call fails.
#[inline]
pub fn unix_seconds_coarse() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call, and CLOCK_REALTIME_COARSE is a clock id of every Linux since
    // 2.6.32; the call writes nothing else.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if r == 0 {
        u64::try_from(ts.tv_sec).ok()
    } else {
        None
    }
}

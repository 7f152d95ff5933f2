//! Batched datagram I/O: `recvmmsg` and `sendmmsg` on Linux. Every `unsafe`
//! block of the crate is in this module.
//!
//! One system call moves up to [`BATCH`] datagrams. The buffers, address
//! slots and message headers are allocated once per socket worker and reused
//! for every call.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Largest datagram read whole. A 74-hash scrape is 1496 bytes; anything
/// longer than this is cut by the kernel and reported as truncated.
pub const MAX_DATAGRAM: usize = 2048;

/// Reusable state for `recvmmsg`.
pub struct RecvBatch {
    bufs: Box<[[u8; MAX_DATAGRAM]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovecs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
    received: usize,
}

// SAFETY: the raw pointers inside `iovecs` and `msgs` point only into the
// boxes owned by the same struct, whose heap addresses don't move when the
// struct does.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        let mut bufs = vec![[0u8; MAX_DATAGRAM]; BATCH].into_boxed_slice();
        // SAFETY: sockaddr_storage is plain old data; all zeroes is valid.
        let mut addrs: Box<[libc::sockaddr_storage]> =
            (0..BATCH).map(|_| unsafe { zeroed() }).collect();
        let mut iovecs: Box<[libc::iovec]> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            })
            .collect();
        let msgs = (0..BATCH)
            .map(|i| {
                // SAFETY: mmsghdr is plain old data; all zeroes is valid.
                let mut m: libc::mmsghdr = unsafe { zeroed() };
                m.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
                m.msg_hdr.msg_iov = &mut iovecs[i];
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        RecvBatch {
            bufs,
            addrs,
            iovecs,
            msgs,
            received: 0,
        }
    }

    /// Reads up to [`BATCH`] datagrams without blocking. `Ok(0)` never
    /// happens: an empty socket is `Err(WouldBlock)`.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for m in self.msgs.iter_mut() {
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        debug_assert_eq!(self.iovecs.len(), BATCH);
        // SAFETY: `msgs` holds BATCH initialised headers whose name and iovec
        // pointers point into `addrs`, `iovecs` and `bufs`, all alive and
        // sized as the headers say; the kernel writes only within them.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.received = 0;
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// The datagrams of the last `recv`: (source, bytes, truncated).
    pub fn iter(&self) -> impl Iterator<Item = (Option<SocketAddr>, &[u8], bool)> {
        (0..self.received).map(move |i| {
            let m = &self.msgs[i];
            let len = (m.msg_len as usize).min(MAX_DATAGRAM);
            let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            (
                from_storage(&self.addrs[i], m.msg_hdr.msg_namelen),
                &self.bufs[i][..len],
                truncated,
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

/// Outgoing datagrams for one socket: their bytes in one buffer, sent with
/// `sendmmsg` in groups of [`BATCH`].
pub struct SendQueue {
    data: Vec<u8>,
    /// (destination, start, end) into `data`.
    items: Vec<(SocketAddr, usize, usize)>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovecs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
}

// SAFETY: the pointers in `iovecs` and `msgs` are rebuilt before each use
// and only point into buffers owned by the same struct.
unsafe impl Send for SendQueue {}

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
            // SAFETY: these are plain old data; all zeroes is valid.
            addrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            iovecs: (0..BATCH)
                .map(|_| libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            msgs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
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
            let group = &self.items[next..(next + BATCH).min(self.items.len())];
            for (i, (to, start, end)) in group.iter().enumerate() {
                let namelen = to_storage(to, &mut self.addrs[i]);
                self.iovecs[i] = libc::iovec {
                    iov_base: self.data[*start..].as_ptr() as *mut libc::c_void,
                    iov_len: end - start,
                };
                let m = &mut self.msgs[i];
                m.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen = namelen;
                m.msg_hdr.msg_iov = &mut self.iovecs[i];
                m.msg_hdr.msg_iovlen = 1;
                m.msg_len = 0;
            }
            // SAFETY: the first `group.len()` headers were just initialised
            // to point into `addrs`, `iovecs` and `data`, which are alive and
            // not modified during the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    group.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
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
            let n = n as usize;
            sent += n;
            bytes += group[..n].iter().map(|(_, s, e)| e - s).sum::<usize>();
            next += n;
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

//! The only `unsafe` of the load generator: `sendmmsg` and `recvmmsg` on
//! connected, non-blocking UDP sockets, so that one system call moves a batch
//! of datagrams. The generator has to outrun the trackers it measures, and at
//! 150k+ datagrams a second a system call per datagram would make it the
//! bottleneck. Also `sched_setaffinity`, to pin the threads of `cores`.

use std::io;
use std::os::fd::RawFd;

/// Most datagrams moved by one call.
pub const BATCH: usize = 64;

fn headers() -> ([libc::iovec; BATCH], [libc::mmsghdr; BATCH]) {
    // SAFETY: `iovec` and `mmsghdr` are plain C structs of integers and raw
    // pointers, for which all-zero bytes are a valid value (null pointers,
    // zero lengths).
    unsafe { (std::mem::zeroed(), std::mem::zeroed()) }
}

/// Sends `packets` (at most [`BATCH`] of them) on the connected socket `fd`.
/// Returns how many were sent, which may be fewer than asked.
pub fn send_batch(fd: RawFd, packets: &[Vec<u8>]) -> io::Result<usize> {
    let n = packets.len().min(BATCH);
    if n == 0 {
        return Ok(0);
    }
    let (mut iov, mut hdrs) = headers();
    for (i, packet) in packets[..n].iter().enumerate() {
        iov[i].iov_base = packet.as_ptr() as *mut libc::c_void;
        iov[i].iov_len = packet.len();
        hdrs[i].msg_hdr.msg_iov = &mut iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `n` headers each point at one iovec that points into a
    // live packet buffer of the stated length; the kernel only reads them, and
    // all of them outlive the call. No address is given: the socket is
    // connected.
    let sent = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Reusable receive buffers for one `recvmmsg` call.
pub struct RecvBatch {
    data: Vec<u8>,
    size: usize,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    count: usize,
}

impl RecvBatch {
    /// Buffers of `size` bytes each; a longer datagram is marked truncated.
    pub fn new(size: usize) -> RecvBatch {
        RecvBatch {
            data: vec![0; size * BATCH],
            size,
            lens: [0; BATCH],
            truncated: [false; BATCH],
            count: 0,
        }
    }

    /// Receives up to [`BATCH`] datagrams from `fd` without blocking. Returns
    /// how many arrived; `WouldBlock` when none was waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.count = 0;
        let (mut iov, mut hdrs) = headers();
        for (i, chunk) in self.data.chunks_exact_mut(self.size).enumerate() {
            iov[i].iov_base = chunk.as_mut_ptr() as *mut libc::c_void;
            iov[i].iov_len = chunk.len();
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at one iovec that covers a distinct
        // `size`-byte chunk of `self.data`, which outlives the call; the kernel
        // writes at most `iov_len` bytes into each and fills in `msg_len` and
        // `msg_flags`. A null timeout means no timeout.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        self.count = got as usize;
        for (i, hdr) in hdrs[..self.count].iter().enumerate() {
            self.lens[i] = (hdr.msg_len as usize).min(self.size);
            self.truncated[i] = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(self.count)
    }

    /// Datagram `i` of the last call, or `None` if it did not fit its buffer.
    pub fn packet(&self, i: usize) -> Option<&[u8]> {
        if i >= self.count || self.truncated[i] {
            return None;
        }
        let start = i * self.size;
        self.data.get(start..start + self.lens[i])
    }
}

/// Pins the calling thread to CPU `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond the CPU set"),
        ));
    }
    // SAFETY: `cpu_set_t` is a plain bit array, for which all-zero bytes are
    // a valid (empty) set; `CPU_SET` sets bit `cpu`, which is within the set
    // (checked above).
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    };
    // SAFETY: `set` is a live, initialised `cpu_set_t` and the size given is
    // its own; pid 0 is the calling thread. The kernel only reads it.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

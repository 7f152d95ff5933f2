//! One connection to the stats endpoint: read a request head, maybe wait
//! for a swarm worker, write one answer, close. Non-blocking throughout;
//! the event loop drives it and enforces its deadline.

use std::io::{self, Read, Write};
use std::time::Instant;

use crossbeam_channel::Receiver;
use mio::net::TcpStream;

use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;

/// The largest request head read; more is answered with 431.
pub(crate) const MAX_HEAD: usize = 8192;

pub(crate) enum State {
    /// Reading the request head (bounded by [`MAX_HEAD`]).
    Reading(Vec<u8>),
    /// Waiting for a swarm worker's counts of one torrent.
    Asking {
        info_hash: InfoHash,
        reply: Receiver<ScrapeStats>,
        until: Instant,
    },
    /// Writing the answer; `sent` bytes are out.
    Writing { out: Vec<u8>, sent: usize },
}

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    /// When it was accepted: its deadline counts from here, and the oldest
    /// goes first when the endpoint is full.
    pub(crate) accepted: Instant,
    pub(crate) state: State,
}

/// What reading found.
pub(crate) enum Progress {
    /// No complete head yet; wait for more.
    More,
    /// A complete head, without its blank line.
    Head(Vec<u8>),
    /// More than [`MAX_HEAD`] bytes and no end of head.
    TooLarge,
    /// The client closed (or the socket failed) before a whole head.
    Closed,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, accepted: Instant) -> Conn {
        Conn {
            stream,
            accepted,
            state: State::Reading(Vec::new()),
        }
    }

    /// Reads what the socket has (until it would block) into the head
    /// buffer. Only meaningful while [`State::Reading`].
    pub(crate) fn read(&mut self) -> Progress {
        let State::Reading(buf) = &mut self.state else {
            return Progress::More;
        };
        let mut chunk = [0u8; 1024];
        loop {
            // Look for the end only in what is new (and the 3 bytes before).
            let from = buf.len().saturating_sub(3);
            match self.stream.read(&mut chunk) {
                Ok(0) => return Progress::Closed,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                        let end = from + i;
                        buf.truncate(end);
                        return Progress::Head(std::mem::take(buf));
                    }
                    if buf.len() > MAX_HEAD {
                        return Progress::TooLarge;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::More,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Progress::Closed,
            }
        }
    }

    /// Writes what it can of the answer. Ok(true) once all of it is out.
    pub(crate) fn write(&mut self) -> io::Result<bool> {
        let State::Writing { out, sent } = &mut self.state else {
            return Ok(false);
        };
        while *sent < out.len() {
            match self.stream.write(&out[*sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

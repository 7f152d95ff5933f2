//! One HTTP load thread: its share of the keep-alive TCP connections (each a
//! client with its own source address and its own slice of the simulated
//! peers), the requests each has in flight, and the loop that connects,
//! writes, reads, judges, times out, reconnects and counts until the run's
//! end. The wire format and the checks are in `http_wire`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use swarmd::protocol::InfoHash;

use crate::check::{Expect, Invalid, Kind};
use crate::http_wire::{self, Framed};
use crate::load_thread::{self, Progress, IDLE_WAIT};
use crate::meter::{Meter, Plan, ThreadResult};
use crate::model::Population;
use crate::options::LoadOptions;
use crate::pace::Pace;
use crate::peers::Peers;
use crate::report::Counters;

/// How often connections are checked for requests past their time out.
const SCAN_EVERY: Duration = Duration::from_millis(10);
/// One read takes up to this much. Answers are a few hundred bytes, so one
/// read almost always takes all there is.
const READ_CHUNK: usize = 64 << 10;
/// The largest body accepted; a tracker answer is far smaller.
const MAX_BODY: usize = 1 << 20;
/// A connection whose connect failed is tried again after this long, so a
/// tracker that is not there is not hammered.
const RETRY_AFTER: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Connecting,
    Open,
}

/// A request written and not yet answered. Answers come in request order,
/// so the oldest is the one the next answer belongs to.
struct Pending {
    expect: Expect,
    sent_at: Instant,
}

/// One connection: a client with its own source address and its share of
/// peers.
struct Conn {
    stream: Option<TcpStream>,
    local: IpAddr,
    state: State,
    /// When the current connect started.
    opened_at: Instant,
    /// When a closed connection is to be opened again.
    reopen_at: Instant,
    opens: u64,
    peers: Peers,
    pending: VecDeque<Pending>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// The start of an answer not complete yet.
    rbuf: Vec<u8>,
    /// In the queue of connections waiting for rate tokens.
    starved: bool,
}

impl Progress for Conn {
    fn peers(&self) -> &Peers {
        &self.peers
    }

    fn idle(&self) -> bool {
        self.pending.is_empty()
    }
}

/// What became of a connection while it was handled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Alive {
    Yes,
    Closed,
}

/// The state of one load thread.
struct Worker<'a> {
    o: &'a LoadOptions,
    pop: &'a Population,
    rng: fastrand::Rng,
    poll: Poll,
    m: Meter<'a>,
    pace: Pace,
    host: String,
    weight_total: u32,
    scratch: Vec<u8>,
    hashes: Vec<InfoHash>,
    /// Closed connections to open again (indices into the thread's list).
    reopen: Vec<usize>,
    /// Open connections with room for requests but no rate tokens.
    starved: VecDeque<usize>,
}

/// The connections (global indices) thread `thread` of `threads` owns: an
/// even split, the first threads taking one more when it does not divide.
fn share(connections: usize, threads: usize, thread: usize) -> std::ops::Range<usize> {
    let (base, extra) = (connections / threads, connections % threads);
    let start = thread * base + thread.min(extra);
    start..start + base + usize::from(thread < extra)
}

pub fn run_thread<'a>(
    o: &'a LoadOptions,
    pop: &'a Population,
    thread: usize,
    plan: Plan,
    shared: &'a Mutex<Counters>,
    abort: &AtomicBool,
) -> Result<ThreadResult> {
    let now = Instant::now();
    let stride = o.connections as u64;
    let rng = load_thread::rng(o, thread);
    let poll = Poll::new().context("creating a poll instance")?;
    let mut conns: Vec<Conn> = share(o.connections, o.threads, thread)
        .map(|g| Conn {
            stream: None,
            local: o.client_ip(g),
            state: State::Closed,
            opened_at: now,
            reopen_at: now,
            opens: 0,
            peers: Peers::new(o, pop, g as u64, stride),
            pending: VecDeque::with_capacity(o.inflight),
            wbuf: Vec::with_capacity(512 * o.inflight),
            wpos: 0,
            rbuf: Vec::new(),
            starved: false,
        })
        .collect();
    let worker = Worker {
        o,
        pop,
        rng,
        poll,
        m: Meter::new(plan, shared),
        pace: Pace::new(o, thread, now),
        host: o.target.to_string(),
        weight_total: o.weights.iter().sum(),
        scratch: vec![0; READ_CHUNK],
        hashes: Vec::with_capacity(usize::from(o.scrape_hashes)),
        reopen: (0..conns.len()).collect(),
        starved: VecDeque::new(),
    };
    worker.run(&mut conns, plan, abort)
}

/// A non-blocking socket bound to `local` with a connect to `target` under
/// way.
fn start_connect(local: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    // Requests are small and each waits for its answer: Nagle's algorithm
    // would hold pipelined ones back until the previous was acknowledged.
    socket.set_nodelay(true)?;
    if local.is_ipv4() && target.is_ipv4() && local != IpAddr::from([127, 0, 0, 1]) {
        socket.bind(&SocketAddr::new(local, 0).into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

impl Worker<'_> {
    fn run(mut self, conns: &mut [Conn], plan: Plan, abort: &AtomicBool) -> Result<ThreadResult> {
        let mut events = Events::with_capacity(1024);
        let mut scanned_at = Instant::now();
        loop {
            let now = Instant::now();
            if load_thread::done(now, plan, abort, &self.pace, conns) {
                break;
            }
            self.m.tick(now);
            if now.duration_since(scanned_at) >= SCAN_EVERY {
                self.expire(conns, now);
                scanned_at = now;
            }
            self.open_due(conns, now);
            self.pace.refill(now);
            while !self.pace.out_of_tokens() {
                let Some(i) = self.starved.pop_front() else {
                    break;
                };
                conns[i].starved = false;
                self.fill(&mut conns[i], i, now);
            }
            let mut wait = IDLE_WAIT.min(plan.end.saturating_duration_since(now));
            if let Some(next) = self.reopen.iter().map(|&i| conns[i].reopen_at).min() {
                wait = wait.min(next.saturating_duration_since(now));
            }
            if let (Some(d), false) = (self.pace.until_token(), self.starved.is_empty()) {
                wait = wait.min(d);
            }
            load_thread::wait(&mut self.poll, &mut events, wait)?;
            for event in events.iter() {
                let i = event.token().0;
                if i < conns.len() {
                    let readable = event.is_readable() || event.is_read_closed();
                    let writable = event.is_writable() || event.is_write_closed();
                    self.event(
                        &mut conns[i],
                        i,
                        readable,
                        writable || event.is_error(),
                        event.is_read_closed(),
                    );
                }
            }
        }
        for c in conns.iter_mut() {
            if let Some(mut s) = c.stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
        }
        Ok(self.m.finish())
    }

    /// Opens the closed connections whose time has come.
    fn open_due(&mut self, conns: &mut [Conn], now: Instant) {
        let mut k = 0;
        while k < self.reopen.len() {
            let i = self.reopen[k];
            if conns[i].reopen_at > now {
                k += 1;
                continue;
            }
            self.reopen.swap_remove(k);
            self.open(&mut conns[i], i, now);
        }
    }

    fn open(&mut self, c: &mut Conn, i: usize, now: Instant) {
        let registered = start_connect(c.local, self.o.target).and_then(|mut s| {
            self.poll.registry().register(
                &mut s,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(s)
        });
        if c.opens > 0 {
            self.m.counters.reconnects += 1;
        }
        c.opens += 1;
        c.opened_at = now;
        match registered {
            Ok(s) => {
                c.stream = Some(s);
                c.state = State::Connecting;
            }
            Err(_) => {
                // E.g. out of local ports or file descriptors.
                self.m.counters.send_errors += 1;
                c.reopen_at = now + RETRY_AFTER;
                self.reopen.push(i);
            }
        }
    }

    /// Closes `c` and queues it to be opened again after `delay`. Requests
    /// still in flight are counted as lost.
    fn close(&mut self, c: &mut Conn, i: usize, now: Instant, delay: Duration) {
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        self.m.counters.lost += c.pending.len() as u64;
        c.pending.clear();
        c.wbuf.clear();
        c.wpos = 0;
        c.rbuf.clear();
        c.state = State::Closed;
        c.reopen_at = now + delay;
        self.reopen.push(i);
    }

    /// Closes connections whose oldest request, or whose connect, has waited
    /// longer than the time out; a client gives up on such a connection.
    fn expire(&mut self, conns: &mut [Conn], now: Instant) {
        let timeout = self.o.timeout;
        for (i, c) in conns.iter_mut().enumerate() {
            match c.state {
                State::Connecting if now.duration_since(c.opened_at) >= timeout => {
                    self.m.counters.send_errors += 1;
                    self.close(c, i, now, Duration::ZERO);
                }
                State::Open
                    if c.pending
                        .front()
                        .is_some_and(|p| now.duration_since(p.sent_at) >= timeout) =>
                {
                    self.m.counters.timeouts += c.pending.len() as u64;
                    c.pending.clear();
                    self.close(c, i, now, Duration::ZERO);
                }
                _ => {}
            }
        }
    }

    fn event(&mut self, c: &mut Conn, i: usize, readable: bool, writable: bool, eof: bool) {
        let now = Instant::now();
        if c.state == State::Connecting {
            if !(readable || writable) {
                return;
            }
            let Some(s) = &c.stream else { return };
            match s.take_error() {
                Ok(None) => {}
                _ => {
                    // Typically ECONNREFUSED: nothing listens (yet).
                    self.m.counters.send_errors += 1;
                    self.close(c, i, now, RETRY_AFTER);
                    return;
                }
            }
            match s.peer_addr() {
                Ok(_) => c.state = State::Open,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => {
                    self.m.counters.send_errors += 1;
                    self.close(c, i, now, RETRY_AFTER);
                    return;
                }
            }
        }
        if c.state != State::Open {
            return;
        }
        if readable && self.read(c, i, eof) == Alive::Closed {
            return;
        }
        if writable && c.wpos < c.wbuf.len() && self.flush(c, i, now) == Alive::Closed {
            return;
        }
        self.fill(c, i, Instant::now());
    }

    /// Reads what the connection has and handles every whole answer in it.
    fn read(&mut self, c: &mut Conn, i: usize, eof: bool) -> Alive {
        loop {
            let Some(s) = c.stream.as_mut() else {
                return Alive::Closed;
            };
            let mut scratch = std::mem::take(&mut self.scratch);
            let got = s.read(&mut scratch);
            let short = matches!(got, Ok(n) if n < scratch.len());
            let alive = match got {
                Ok(0) => {
                    // The tracker closed the connection (opentracker does
                    // after every answer, others when idle or on error).
                    self.close(c, i, Instant::now(), Duration::ZERO);
                    Alive::Closed
                }
                Ok(n) => self.received(c, i, &scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.scratch = scratch;
                    return Alive::Yes;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Alive::Yes,
                Err(_) => {
                    self.m.counters.recv_errors += 1;
                    self.close(c, i, Instant::now(), Duration::ZERO);
                    Alive::Closed
                }
            };
            self.scratch = scratch;
            // A short read emptied the socket's queue: more data, or the
            // end, will raise a new edge, so the `read` that would only say
            // WouldBlock is saved. Unless the peer already closed: that
            // edge has been seen, so read on to the end.
            if alive == Alive::Closed || (short && !eof) {
                return alive;
            }
        }
    }

    /// Handles bytes read from `c`: every whole answer in them, and what is
    /// left kept for the next read.
    fn received(&mut self, c: &mut Conn, i: usize, data: &[u8]) -> Alive {
        let now = Instant::now();
        let mut buf = std::mem::take(&mut c.rbuf);
        let bytes: &[u8] = if buf.is_empty() {
            data
        } else {
            buf.extend_from_slice(data);
            &buf
        };
        let mut at = 0;
        let mut alive = Alive::Yes;
        while at < bytes.len() {
            match http_wire::split_response(&bytes[at..], MAX_BODY) {
                Framed::Partial => {
                    if bytes.len() - at > MAX_BODY + READ_CHUNK {
                        // A head that never ends.
                        self.m.counters.invalid[Invalid::HttpHead as usize] += 1;
                        alive = Alive::Closed;
                    }
                    break;
                }
                Framed::Bad(why) => {
                    // The byte stream can't be followed past this: the
                    // request it answers is counted invalid, the rest lost.
                    c.pending.pop_front();
                    self.m.counters.invalid[why as usize] += 1;
                    alive = Alive::Closed;
                    break;
                }
                Framed::Complete(r) => {
                    at += r.used;
                    let Some(p) = c.pending.pop_front() else {
                        self.m.counters.invalid[Invalid::UnknownTransaction as usize] += 1;
                        alive = Alive::Closed;
                        break;
                    };
                    let verdict = http_wire::judge(&r, p.expect);
                    self.m
                        .count(verdict, now.saturating_duration_since(p.sent_at));
                    if !r.keep_alive {
                        alive = Alive::Closed;
                        break;
                    }
                }
            }
        }
        if alive == Alive::Closed {
            self.close(c, i, now, Duration::ZERO);
            return alive;
        }
        // Keep the unfinished answer, reusing the buffer's allocation.
        let rest = bytes.len() - at;
        if buf.is_empty() {
            buf.extend_from_slice(&data[at..]);
        } else {
            buf.drain(..buf.len() - rest);
        }
        c.rbuf = buf;
        alive
    }

    /// Writes what `c` has queued. A short write means the socket buffer is
    /// full: the rest goes when it says it is writable again.
    fn flush(&mut self, c: &mut Conn, i: usize, now: Instant) -> Alive {
        while c.wpos < c.wbuf.len() {
            let Some(s) = c.stream.as_mut() else {
                return Alive::Closed;
            };
            match s.write(&c.wbuf[c.wpos..]) {
                Ok(n) => {
                    c.wpos += n;
                    if c.wpos < c.wbuf.len() {
                        return Alive::Yes;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Alive::Yes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.m.counters.send_errors += 1;
                    self.close(c, i, now, Duration::ZERO);
                    return Alive::Closed;
                }
            }
        }
        c.wbuf.clear();
        c.wpos = 0;
        Alive::Yes
    }

    fn pick_kind(&mut self) -> Kind {
        // No connect requests over HTTP: its weight is always 0 here.
        let w = self.o.weights;
        if self.rng.u32(0..self.weight_total) < w[0] + w[1] {
            Kind::Announce
        } else {
            Kind::Scrape
        }
    }

    /// Queues requests on `c` up to the pipeline depth, and writes them.
    fn fill(&mut self, c: &mut Conn, i: usize, now: Instant) {
        if c.state != State::Open {
            return;
        }
        let before = c.wbuf.len();
        while c.pending.len() < self.o.inflight {
            if self.pace.all_sent() || c.peers.is_done() {
                break;
            }
            if self.pace.out_of_tokens() {
                if !c.starved {
                    c.starved = true;
                    self.starved.push_back(i);
                }
                break;
            }
            let kind = self.pick_kind();
            let expect = self.build(c, kind);
            c.pending.push_back(Pending {
                expect,
                sent_at: now,
            });
            self.m.counters.sent[kind as usize] += 1;
            self.pace.take();
        }
        if c.wbuf.len() > before {
            self.flush(c, i, now);
        }
    }

    /// Appends one request of `kind` from `c` to its write buffer and says
    /// what its answer should be.
    fn build(&mut self, c: &mut Conn, kind: Kind) -> Expect {
        let (o, pop) = (self.o, self.pop);
        if kind == Kind::Scrape {
            let n = self.rng.u16(1..=o.scrape_hashes);
            self.hashes.clear();
            for _ in 0..n {
                self.hashes
                    .push(pop.info_hash(pop.popular_torrent(&mut self.rng)));
            }
            // Popular torrents come up twice now and then; a client asks
            // once, and the answer then has one entry per hash.
            self.hashes.sort_unstable();
            self.hashes.dedup();
            http_wire::write_scrape(&mut c.wbuf, &self.host, &self.hashes);
            return Expect {
                kind,
                count: u16::try_from(self.hashes.len()).ok(),
            };
        }
        let a = c
            .peers
            .next_announce(o, pop, &mut self.rng, &mut self.m.tally);
        self.m.counters.events[a.event.to_udp() as usize] += 1;
        http_wire::write_announce_then(&mut c.wbuf, &self.host, &a, |out| {
            if let Some(tokens) = &pop.tokens {
                tokens.write_http(out, a.torrent);
            }
        });
        Expect {
            kind,
            count: u16::try_from(o.numwant).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_split_evenly_over_threads() {
        let ranges: Vec<_> = (0..3).map(|t| share(10, 3, t)).collect();
        assert_eq!(ranges, [0..4, 4..7, 7..10]);
        assert_eq!(share(256, 1, 0), 0..256);
        assert_eq!(share(2, 2, 1), 1..2);
    }
}

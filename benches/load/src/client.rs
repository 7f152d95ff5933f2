//! One load thread: a handful of UDP sockets (each a client with its own source
//! address and its own slice of the simulated peers), the requests each has in
//! flight, and the loop that sends, receives, judges, times out and counts
//! until the run's end.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use swarmd::protocol::udp::{
    AnnounceRequest, ConnectRequest, ConnectionId, Request, Response, ScrapeRequest, TransactionId,
};
use swarmd::protocol::AnnounceEvent;

use crate::check::{judge, Expect, Invalid, Kind, Verdict};
use crate::load_thread::{self, Progress, IDLE_WAIT};
use crate::meter::{Meter, Plan, ThreadResult};
use crate::model::Population;
use crate::options::LoadOptions;
use crate::pace::Pace;
use crate::peers::Peers;
use crate::report::Counters;
use crate::sys::{send_batch, RecvBatch, BATCH};

/// BEP 15 connection ids live about two minutes; reconnect well before that,
/// as real clients do.
const CONNECT_EVERY: Duration = Duration::from_secs(60);
/// Receive batches taken from one socket before the others get a turn.
const RECV_ROUNDS: usize = 8;
/// How long a transaction id that timed out is remembered, so that its late
/// answer is counted as late rather than as a stranger.
const LATE_MEMORY: u32 = 10;

#[derive(Clone, Copy)]
struct Slot {
    seq: u16,
    busy: bool,
    expect: Expect,
    sent_at: Instant,
}

enum Match {
    Found { expect: Expect, sent_at: Instant },
    Late,
    Unknown,
}

/// The requests one socket has in flight. A transaction id is a slot number
/// and a per-slot sequence number, masked so ids look random on the wire.
struct InFlight {
    slots: Vec<Slot>,
    /// Free slots, oldest first, so a slot is reused as late as possible.
    free: VecDeque<u16>,
    /// (slot, seq, deadline) in send order; answered entries are skipped
    /// when they come up.
    deadlines: VecDeque<(u16, u16, Instant)>,
    late: HashSet<u32>,
    late_order: VecDeque<(u32, Instant)>,
    late_memory: Duration,
    timeout: Duration,
    mask: u32,
}

impl InFlight {
    fn new(capacity: usize, timeout: Duration, mask: u32, now: Instant) -> InFlight {
        let idle = Slot {
            seq: 0,
            busy: false,
            expect: Expect {
                kind: Kind::Connect,
                count: None,
            },
            sent_at: now,
        };
        InFlight {
            slots: vec![idle; capacity],
            free: (0..capacity as u16).collect(),
            deadlines: VecDeque::new(),
            late: HashSet::new(),
            late_order: VecDeque::new(),
            late_memory: timeout * LATE_MEMORY,
            timeout,
            mask,
        }
    }

    fn has_room(&self) -> bool {
        !self.free.is_empty()
    }

    fn is_idle(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    fn tid(&self, slot: u16, seq: u16) -> TransactionId {
        TransactionId(((u32::from(seq) << 16) | u32::from(slot)) ^ self.mask)
    }

    fn take(&mut self, expect: Expect, now: Instant) -> Option<TransactionId> {
        let slot = self.free.pop_front()?;
        let s = &mut self.slots[usize::from(slot)];
        s.seq = s.seq.wrapping_add(1);
        s.busy = true;
        s.expect = expect;
        s.sent_at = now;
        let seq = s.seq;
        self.deadlines.push_back((slot, seq, now + self.timeout));
        Some(self.tid(slot, seq))
    }

    /// Frees the slot of a request that could not be sent.
    /// Its deadline entry is skipped when it comes up.
    fn cancel(&mut self, tid: TransactionId) {
        let _ = self.complete(tid);
    }

    fn complete(&mut self, tid: TransactionId) -> Match {
        let raw = tid.0 ^ self.mask;
        let (slot, seq) = ((raw & 0xffff) as u16, (raw >> 16) as u16);
        match self.slots.get_mut(usize::from(slot)) {
            Some(s) if s.busy && s.seq == seq => {
                s.busy = false;
                self.free.push_back(slot);
                Match::Found {
                    expect: s.expect,
                    sent_at: s.sent_at,
                }
            }
            _ if self.late.remove(&tid.0) => Match::Late,
            _ => Match::Unknown,
        }
    }

    /// Frees every request past its deadline and calls `on_timeout` for each.
    fn expire(&mut self, now: Instant, mut on_timeout: impl FnMut(Kind)) {
        while let Some(&(slot, seq, deadline)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let s = &mut self.slots[usize::from(slot)];
            if s.busy && s.seq == seq {
                s.busy = false;
                self.free.push_back(slot);
                on_timeout(s.expect.kind);
                let tid = self.tid(slot, seq).0;
                self.late.insert(tid);
                self.late_order.push_back((tid, now));
            }
        }
        // Forget old timeouts; bound the memory whatever happens.
        while let Some(&(tid, at)) = self.late_order.front() {
            if now.duration_since(at) < self.late_memory && self.late_order.len() <= 1 << 16 {
                break;
            }
            self.late_order.pop_front();
            self.late.remove(&tid);
        }
    }
}

/// One socket: a client with its own source address and its share of peers.
struct Client {
    socket: mio::net::UdpSocket,
    fd: RawFd,
    peers: Peers,
    inflight: InFlight,
    connection: Option<ConnectionId>,
    connect_due: Instant,
    connecting: bool,
    last_forced_connect: Option<Instant>,
    readable: bool,
    paused_until: Option<Instant>,
}

impl Progress for Client {
    fn peers(&self) -> &Peers {
        &self.peers
    }

    fn idle(&self) -> bool {
        self.inflight.is_idle()
    }
}

fn open_socket(local: SocketAddr, target: SocketAddr) -> Result<mio::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .context("creating a UDP socket")?;
    // Deep buffers so a burst of answers is not dropped while the thread is
    // busy sending; the kernel caps these at its own limits.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&local.into()).with_context(|| {
        format!("binding {local} (Linux accepts any 127.0.0.0/8 address on lo)")
    })?;
    socket
        .connect(&target.into())
        .with_context(|| format!("connecting to {target}"))?;
    socket.set_nonblocking(true).context("set_nonblocking")?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// The state of one load thread.
struct Worker<'a> {
    o: &'a LoadOptions,
    pop: &'a Population,
    rng: fastrand::Rng,
    m: Meter<'a>,
    pace: Pace,
    send_bufs: Vec<Vec<u8>>,
    /// Transaction id, kind and announce event of each request in `send_bufs`.
    send_meta: Vec<(TransactionId, Kind, Option<AnnounceEvent>)>,
    recv: RecvBatch,
    ipv6: bool,
    weight_total: u32,
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
    let stride = (o.threads * o.sockets) as u64;
    let mut rng = load_thread::rng(o, thread);
    let poll = Poll::new().context("creating a poll instance")?;
    let mut clients = Vec::with_capacity(o.sockets);
    for s in 0..o.sockets {
        let index = thread * o.sockets + s;
        let local = SocketAddr::new(o.client_ip(index), 0);
        let mut socket = open_socket(local, o.target)?;
        poll.registry()
            .register(&mut socket, Token(s), Interest::READABLE)
            .context("registering a socket")?;
        clients.push(Client {
            fd: socket.as_raw_fd(),
            socket,
            peers: Peers::new(o, pop, index as u64, stride),
            inflight: InFlight::new(o.inflight, o.timeout, rng.u32(..), now),
            connection: None,
            connect_due: now,
            connecting: false,
            last_forced_connect: None,
            readable: false,
            paused_until: None,
        });
    }
    let worker = Worker {
        o,
        pop,
        rng,
        m: Meter::new(plan, shared),
        pace: Pace::new(o, thread, now),
        send_bufs: (0..BATCH).map(|_| Vec::with_capacity(128)).collect(),
        send_meta: Vec::with_capacity(BATCH),
        recv: RecvBatch::new(recv_buffer_size(o.numwant)),
        ipv6: o.target.is_ipv6(),
        weight_total: o.weights.iter().sum(),
    };
    worker.run(&mut clients, poll, plan, abort)
}

/// Big enough for any announce answer to `numwant` IPv6 peers; anything longer
/// is wrong anyway and is counted when it arrives truncated.
fn recv_buffer_size(numwant: i32) -> usize {
    let peers = usize::try_from(numwant).unwrap_or(200).max(200);
    (20 + peers * 18 + 64).max(2048)
}

impl<'a> Worker<'a> {
    fn run(
        mut self,
        clients: &mut [Client],
        mut poll: Poll,
        plan: Plan,
        abort: &AtomicBool,
    ) -> Result<ThreadResult> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if load_thread::done(now, plan, abort, &self.pace, clients) {
                break;
            }
            self.m.tick(now);
            self.pace.refill(now);
            let mut busy = false;
            for c in clients.iter_mut() {
                let counters = &mut self.m.counters;
                c.inflight.expire(now, |kind| {
                    counters.timeouts += 1;
                    if kind == Kind::Connect {
                        c.connecting = false;
                    }
                });
                busy |= self.fill(c, now);
            }
            let wait = if busy || clients.iter().any(|c| c.readable) {
                Duration::ZERO
            } else {
                self.pace
                    .until_token()
                    .map_or(IDLE_WAIT, |d| d.min(IDLE_WAIT))
                    .min(plan.end.saturating_duration_since(now))
            };
            load_thread::wait(&mut poll, &mut events, wait)?;
            for event in events.iter() {
                if let Some(c) = clients.get_mut(event.token().0) {
                    c.readable = true;
                }
            }
            for c in clients.iter_mut().filter(|c| c.readable) {
                self.receive(c);
            }
        }
        for c in clients.iter_mut() {
            // Sockets close when `clients` is dropped; deregistering first keeps
            // the poll instance tidy.
            let _ = poll.registry().deregister(&mut c.socket);
        }
        Ok(self.m.finish())
    }

    fn pick_kind(&mut self) -> Kind {
        let w = self.o.weights;
        let r = self.rng.u32(0..self.weight_total);
        if r < w[0] {
            Kind::Connect
        } else if r < w[0] + w[1] {
            Kind::Announce
        } else {
            Kind::Scrape
        }
    }

    /// Sends one batch of requests on `c`. Returns true when it stopped only
    /// because the batch was full, i.e. there is more to send right away.
    fn fill(&mut self, c: &mut Client, now: Instant) -> bool {
        if c.paused_until.is_some_and(|t| now < t) {
            return false;
        }
        c.paused_until = None;
        self.send_meta.clear();
        let mut full = false;
        while c.inflight.has_room() {
            if self.send_meta.len() == BATCH {
                full = true;
                break;
            }
            if self.pace.out_of_tokens() || self.pace.all_sent() || c.peers.is_done() {
                break;
            }
            let kind = if now >= c.connect_due && !c.connecting {
                c.connecting = true;
                Kind::Connect
            } else if c.connection.is_none() {
                // Nothing but connects until the first connection id arrives.
                break;
            } else {
                self.pick_kind()
            };
            let i = self.send_meta.len();
            let mut buf = std::mem::take(&mut self.send_bufs[i]);
            buf.clear();
            let meta = self.build(c, kind, now, &mut buf);
            self.send_bufs[i] = buf;
            let Some(meta) = meta else { break };
            self.send_meta.push(meta);
            self.pace.take();
        }
        let n = self.send_meta.len();
        if n == 0 {
            return false;
        }
        let sent = match send_batch(c.fd, &self.send_bufs[..n]) {
            Ok(sent) => sent,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                // Typically ECONNREFUSED: nothing listens at the target (yet).
                // Back off a little instead of spinning on the error.
                self.m.counters.send_errors += 1;
                c.paused_until = Some(now + Duration::from_millis(10));
                0
            }
        };
        for &(tid, kind, _) in &self.send_meta[sent..] {
            c.inflight.cancel(tid);
            self.pace.give_back();
            if kind == Kind::Connect {
                c.connecting = false;
            }
        }
        for &(_, kind, event) in &self.send_meta[..sent] {
            self.m.counters.sent[kind as usize] += 1;
            if let Some(e) = event {
                self.m.counters.events[e.to_udp() as usize] += 1;
            }
        }
        full && sent == n
    }

    /// Writes one request of `kind` from `c` into `buf`.
    fn build(
        &mut self,
        c: &mut Client,
        kind: Kind,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(TransactionId, Kind, Option<AnnounceEvent>)> {
        let o = self.o;
        let pop = self.pop;
        let connection_id = c.connection.unwrap_or(ConnectionId(0));
        match kind {
            Kind::Connect => {
                let expect = Expect { kind, count: None };
                let transaction_id = c.inflight.take(expect, now)?;
                Request::Connect(ConnectRequest { transaction_id }).write(buf);
                Some((transaction_id, kind, None))
            }
            Kind::Announce => {
                let max = u16::try_from(o.numwant).ok();
                let transaction_id = c.inflight.take(Expect { kind, count: max }, now)?;
                let a = c
                    .peers
                    .next_announce(o, pop, &mut self.rng, &mut self.m.tally);
                Request::Announce(AnnounceRequest {
                    connection_id,
                    transaction_id,
                    info_hash: a.info_hash,
                    peer_id: a.peer_id,
                    downloaded: a.downloaded,
                    left: a.left,
                    uploaded: a.uploaded,
                    event: a.event,
                    ip_address: 0,
                    key: a.key,
                    num_want: a.numwant,
                    port: a.port,
                    url_data: Vec::new(),
                })
                .write(buf);
                if let Some(tokens) = &pop.tokens {
                    tokens.write_udp(buf, a.torrent);
                }
                Some((transaction_id, kind, Some(a.event)))
            }
            Kind::Scrape => {
                let n = self.rng.u16(1..=o.scrape_hashes);
                let transaction_id = c.inflight.take(
                    Expect {
                        kind,
                        count: Some(n),
                    },
                    now,
                )?;
                let info_hashes = (0..n)
                    .map(|_| pop.info_hash(pop.popular_torrent(&mut self.rng)))
                    .collect();
                Request::Scrape(ScrapeRequest {
                    connection_id,
                    transaction_id,
                    info_hashes,
                })
                .write(buf);
                Some((transaction_id, kind, None))
            }
        }
    }

    /// Drains (a fair share of) what `c` has received.
    fn receive(&mut self, c: &mut Client) {
        for _ in 0..RECV_ROUNDS {
            match self.recv.recv(c.fd) {
                Ok(n) => {
                    let now = Instant::now();
                    for i in 0..n {
                        self.handle(c, i, now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // An ICMP error reported on the socket (e.g. nothing
                    // listening); reading it cleared it.
                    self.m.counters.recv_errors += 1;
                }
            }
        }
    }

    fn handle(&mut self, c: &mut Client, i: usize, now: Instant) {
        let Some(bytes) = self.recv.packet(i) else {
            self.m.counters.invalid[Invalid::Unparsable as usize] += 1;
            return;
        };
        // Match on the transaction id even when the rest does not parse, so a
        // malformed answer frees its slot instead of also timing out.
        let Some(tid) = bytes.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
            self.m.counters.invalid[Invalid::Unparsable as usize] += 1;
            return;
        };
        let (expect, sent_at) = match c.inflight.complete(TransactionId(u32::from_be_bytes(tid))) {
            Match::Found { expect, sent_at } => (expect, sent_at),
            Match::Late => {
                self.m.counters.late += 1;
                return;
            }
            Match::Unknown => {
                self.m.counters.invalid[Invalid::UnknownTransaction as usize] += 1;
                return;
            }
        };
        let verdict = match Response::parse(bytes) {
            Some(response) => judge(&response, expect, self.ipv6),
            None => Verdict::Invalid(Invalid::Unparsable),
        };
        self.m
            .count(verdict, now.saturating_duration_since(sent_at));
        match verdict {
            Verdict::Connected(id) => {
                c.connection = Some(id);
                c.connect_due = now + CONNECT_EVERY;
                c.connecting = false;
            }
            Verdict::Error if expect.kind == Kind::Connect => c.connecting = false,
            Verdict::Error
                if c.last_forced_connect
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) =>
            {
                // Perhaps the connection id expired: get a new one, but at
                // most once a second whatever the tracker says.
                c.connect_due = now;
                c.last_forced_connect = Some(now);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;

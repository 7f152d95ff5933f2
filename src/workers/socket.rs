//! The socket worker loop: a mio event loop over this worker's UDP sockets.
//!
//! It reads datagrams in batches, answers connects and errors itself, hands
//! announces and scrapes to the swarm workers in one batch per swarm worker
//! per read, gathers scrapes that span several swarm workers, encodes the
//! answers and sends them in batches. It never blocks on a swarm worker: a
//! full channel drops the batch and counts it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::{Events, Interest, Poll, Token};

use super::{
    shard_of, Origin, RequestBatch, ResponseBatch, Shutdown, SwarmRequest, SwarmResponse, Wakes,
};
use crate::connection_id::ConnectionIds;
use crate::protocol::udp::{self, ParseError, Request, ScrapeStats, TransactionId};
use crate::stats::{FamilyCounters, Stats};
use crate::swarm::{Announce, PeerAddr};
use crate::sys::{RecvBatch, SendQueue};

pub const WAKE_TOKEN: Token = Token(usize::MAX);

/// A scrape gives up when its parts have not all come back by then.
const SCRAPE_TIMEOUT_SECS: u32 = 5;
/// Scrapes waiting for parts at once, per worker; more are dropped.
const MAX_PENDING_SCRAPES: usize = 1 << 16;
/// How long a stopping worker waits for answers already asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings the socket worker reads on the hot path.
#[derive(Clone, Debug)]
pub struct SocketSettings {
    pub interval: u32,
    pub max_scrape_torrents: usize,
}

struct UdpEntry {
    socket: mio::net::UdpSocket,
    v6: bool,
    readable: bool,
    queue: SendQueue,
}

struct PendingScrape {
    origin: Origin,
    generation: u32,
    stats: Vec<ScrapeStats>,
    remaining: u16,
    /// A part was lost (its batch dropped): don't answer.
    failed: bool,
    created: u32,
}

pub struct SocketWorker {
    id: usize,
    poll: Poll,
    sockets: Vec<UdpEntry>,
    recv: RecvBatch,
    ids: ConnectionIds,
    to_swarm: Vec<Sender<RequestBatch>>,
    from_swarm: Receiver<ResponseBatch>,
    wakes: Wakes,
    shutdown: Arc<Shutdown>,
    stats: Arc<Stats>,
    settings: SocketSettings,
    started: Instant,
    now: u32,
    /// The batch being filled for each swarm worker.
    outgoing: Vec<Vec<SwarmRequest>>,
    request_pool: Vec<Vec<SwarmRequest>>,
    reply_pool: Vec<ResponseBatch>,
    in_flight: usize,
    pending: Vec<Option<PendingScrape>>,
    free_pending: Vec<u32>,
    next_generation: u32,
}

impl SocketWorker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        poll: Poll,
        sockets: Vec<std::net::UdpSocket>,
        ids: ConnectionIds,
        to_swarm: Vec<Sender<RequestBatch>>,
        from_swarm: Receiver<ResponseBatch>,
        wakes: Wakes,
        shutdown: Arc<Shutdown>,
        stats: Arc<Stats>,
        settings: SocketSettings,
        started: Instant,
    ) -> io::Result<SocketWorker> {
        let mut entries = Vec::with_capacity(sockets.len());
        for (i, s) in sockets.into_iter().enumerate() {
            let v6 = s.local_addr()?.is_ipv6();
            let mut socket = mio::net::UdpSocket::from_std(s);
            poll.registry()
                .register(&mut socket, Token(i), Interest::READABLE)?;
            entries.push(UdpEntry {
                socket,
                v6,
                // Datagrams may have arrived before registration.
                readable: true,
                queue: SendQueue::new(),
            });
        }
        let swarm_workers = to_swarm.len();
        Ok(SocketWorker {
            id,
            poll,
            sockets: entries,
            recv: RecvBatch::new(),
            ids,
            to_swarm,
            from_swarm,
            wakes,
            shutdown,
            stats,
            settings,
            started,
            now: 0,
            outgoing: (0..swarm_workers).map(|_| Vec::new()).collect(),
            request_pool: Vec::new(),
            reply_pool: Vec::new(),
            in_flight: 0,
            pending: Vec::new(),
            free_pending: Vec::new(),
            next_generation: 0,
        })
    }

    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut next_housekeeping = Instant::now();
        while !self.shutdown.requested() {
            let wake = &self.wakes[self.id];
            wake.sleeping
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let timeout = if self.from_swarm.is_empty() {
                next_housekeeping.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            wake.sleeping
                .store(false, std::sync::atomic::Ordering::SeqCst);
            for event in events.iter() {
                if let Some(entry) = self.sockets.get_mut(event.token().0) {
                    entry.readable = true;
                }
            }
            self.tick();
            self.work();
            if Instant::now() >= next_housekeeping {
                self.expire_scrapes();
                next_housekeeping = Instant::now() + Duration::from_secs(1);
            }
        }
        self.drain();
        log::debug!("socket-{} stopped", self.id);
        Ok(())
    }

    fn tick(&mut self) {
        self.now = self.started.elapsed().as_secs() as u32;
    }

    /// Reads every socket until it would block, a batch from each in turn,
    /// answering what came back from the swarm workers between batches.
    fn work(&mut self) {
        loop {
            let mut progress = false;
            for i in 0..self.sockets.len() {
                if !self.sockets[i].readable {
                    continue;
                }
                let fd = self.sockets[i].socket.as_raw_fd();
                match self.recv.recv(fd) {
                    Ok(_) => {
                        progress = true;
                        self.handle_datagrams(i);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.sockets[i].readable = false;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                    Err(e) => {
                        // E.g. ECONNREFUSED reported for an earlier send:
                        // nothing to do but read on.
                        log::debug!("socket-{}: recv: {e}", self.id);
                        progress = true;
                    }
                }
            }
            self.send_batches();
            self.answer();
            if !progress {
                break;
            }
            if self.shutdown.requested() {
                break;
            }
        }
    }

    fn handle_datagrams(&mut self, socket: usize) {
        let counters = self.stats.socket[self.id].udp(self.sockets[socket].v6);
        let slot = ConnectionIds::slot(self.now as u64);
        // Borrow the parts apart: the receive buffers are read while the
        // send queue and outgoing batches are written.
        let SocketWorker {
            recv,
            sockets,
            ids,
            outgoing,
            settings,
            pending,
            free_pending,
            next_generation,
            now,
            ..
        } = self;
        let entry = &mut sockets[socket];
        for (src, bytes, truncated) in recv.iter() {
            counters.bytes_received.add(bytes.len() as u64);
            let Some(src) = src else {
                counters.errors_malformed.inc();
                continue;
            };
            if truncated {
                counters.errors_malformed.inc();
                continue;
            }
            match Request::parse(bytes, settings.max_scrape_torrents) {
                Ok(Request::Connect(c)) => {
                    counters.requests_connect.inc();
                    counters.responses_connect.inc();
                    let id = ids.make(src.ip(), slot);
                    entry
                        .queue
                        .push(src, |buf| udp::write_connect(buf, c.transaction_id, id));
                }
                Ok(Request::Announce(a)) => {
                    counters.requests_announce.inc();
                    if !ids.check(a.connection_id, src.ip(), slot) {
                        counters.errors_connection_id.inc();
                        continue;
                    }
                    if a.port == 0 {
                        counters.errors_request.inc();
                        counters.responses_error.inc();
                        let len = bytes.len();
                        entry.queue.push(src, |buf| {
                            udp::write_error(buf, a.transaction_id, "bad port", len)
                        });
                        continue;
                    }
                    // The port is the one the client announced, the IP the
                    // one the datagram came from (the request's IP field is
                    // ignored).
                    let peer = SocketAddr::new(src.ip(), a.port);
                    let shard = shard_of(&a.info_hash, outgoing.len());
                    outgoing[shard].push(SwarmRequest::Announce {
                        origin: Origin {
                            addr: src,
                            socket: socket as u16,
                            transaction_id: a.transaction_id.0,
                        },
                        announce: Announce {
                            info_hash: a.info_hash,
                            addr: PeerAddr::from_socket_addr(peer),
                            event: a.event,
                            seeder: a.left == 0,
                            num_want: a.num_want,
                        },
                    });
                }
                Ok(Request::Scrape(s)) => {
                    counters.requests_scrape.inc();
                    if !ids.check(s.connection_id, src.ip(), slot) {
                        counters.errors_connection_id.inc();
                        continue;
                    }
                    let origin = Origin {
                        addr: src,
                        socket: socket as u16,
                        transaction_id: s.transaction_id.0,
                    };
                    let Some(key) = new_pending(
                        pending,
                        free_pending,
                        next_generation,
                        origin,
                        s.info_hashes.len(),
                        *now,
                    ) else {
                        counters.dropped_channel_full.inc();
                        continue;
                    };
                    let slot_index = key as u32 as usize;
                    let shards = outgoing.len();
                    let mut parts = 0u16;
                    for (shard, batch) in outgoing.iter_mut().enumerate() {
                        let hashes: Vec<(u8, _)> = s
                            .info_hashes
                            .iter()
                            .enumerate()
                            .filter(|(_, h)| shard_of(h, shards) == shard)
                            .map(|(i, h)| (i as u8, *h))
                            .collect();
                        if !hashes.is_empty() {
                            parts += 1;
                            batch.push(SwarmRequest::ScrapePart {
                                pending: key,
                                hashes,
                            });
                        }
                    }
                    if let Some(Some(p)) = pending.get_mut(slot_index) {
                        p.remaining = parts;
                    }
                }
                Err(ParseError::Drop(_)) => counters.errors_malformed.inc(),
                Err(ParseError::Sendable {
                    connection_id,
                    transaction_id,
                    message,
                }) => {
                    if !ids.check(connection_id, src.ip(), slot) {
                        counters.errors_connection_id.inc();
                        continue;
                    }
                    counters.errors_request.inc();
                    counters.responses_error.inc();
                    let len = bytes.len();
                    entry.queue.push(src, |buf| {
                        udp::write_error(buf, transaction_id, message, len)
                    });
                }
            }
        }
    }

    /// Hands each non-empty outgoing batch to its swarm worker.
    fn send_batches(&mut self) {
        for shard in 0..self.outgoing.len() {
            if self.outgoing[shard].is_empty() {
                continue;
            }
            let fresh = self.request_pool.pop().unwrap_or_default();
            let requests = std::mem::replace(&mut self.outgoing[shard], fresh);
            let reply = self.reply_pool.pop().unwrap_or_default();
            let batch = RequestBatch {
                from: self.id,
                requests,
                reply,
            };
            match self.to_swarm[shard].try_send(batch) {
                Ok(()) => self.in_flight += 1,
                Err(TrySendError::Full(batch)) | Err(TrySendError::Disconnected(batch)) => {
                    self.dropped(batch);
                }
            }
        }
    }

    /// A batch that could not be handed over: count it, give up its scrapes.
    fn dropped(&mut self, batch: RequestBatch) {
        let RequestBatch {
            mut requests,
            reply,
            ..
        } = batch;
        for r in requests.drain(..) {
            let v6 = match &r {
                SwarmRequest::Announce { origin, .. } => origin.addr.is_ipv6(),
                SwarmRequest::ScrapePart { pending, .. } => {
                    let idx = *pending as u32 as usize;
                    let generation = (*pending >> 32) as u32;
                    match self.pending.get_mut(idx) {
                        Some(Some(p)) if p.generation == generation => {
                            p.failed = true;
                            p.remaining -= 1;
                            let v6 = p.origin.addr.is_ipv6();
                            if p.remaining == 0 {
                                self.release_pending(idx);
                            }
                            v6
                        }
                        _ => false,
                    }
                }
            };
            self.udp_counters(v6).dropped_channel_full.inc();
        }
        self.request_pool.push(requests);
        self.reply_pool.push(reply);
    }

    fn udp_counters(&self, v6: bool) -> &FamilyCounters {
        self.stats.socket[self.id].udp(v6)
    }

    fn release_pending(&mut self, idx: usize) {
        if let Some(slot) = self.pending.get_mut(idx) {
            if slot.take().is_some() {
                self.free_pending.push(idx as u32);
            }
        }
    }

    /// Encodes and sends what the swarm workers answered.
    fn answer(&mut self) {
        while let Ok(batch) = self.from_swarm.try_recv() {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.answer_batch(batch);
        }
        for entry in &mut self.sockets {
            if entry.queue.is_empty() {
                continue;
            }
            let (_, bytes, dropped) = entry.queue.flush(entry.socket.as_raw_fd());
            let c = self.stats.socket[self.id].udp(entry.v6);
            c.bytes_sent.add(bytes as u64);
            c.dropped_send.add(dropped as u64);
        }
    }

    fn answer_batch(&mut self, mut batch: ResponseBatch) {
        let interval = self.settings.interval;
        for response in batch.responses.drain(..) {
            match response {
                SwarmResponse::Announce {
                    origin,
                    counts,
                    peers,
                } => {
                    let Some(entry) = self.sockets.get_mut(origin.socket as usize) else {
                        continue;
                    };
                    let peers = &batch.peers[peers.0 as usize..peers.1 as usize];
                    entry.queue.push(origin.addr, |buf| {
                        udp::write_announce(
                            buf,
                            TransactionId(origin.transaction_id),
                            interval,
                            counts.leechers,
                            counts.seeders,
                            peers,
                        )
                    });
                    self.stats.socket[self.id]
                        .udp(entry.v6)
                        .responses_announce
                        .inc();
                }
                SwarmResponse::ScrapePart { pending, stats } => {
                    let idx = pending as u32 as usize;
                    let generation = (pending >> 32) as u32;
                    let Some(Some(p)) = self.pending.get_mut(idx) else {
                        continue;
                    };
                    if p.generation != generation {
                        continue;
                    }
                    for (i, s) in stats {
                        if let Some(slot) = p.stats.get_mut(i as usize) {
                            *slot = s;
                        }
                    }
                    p.remaining = p.remaining.saturating_sub(1);
                    if p.remaining > 0 {
                        continue;
                    }
                    if !p.failed {
                        let origin = p.origin;
                        if let Some(entry) = self.sockets.get_mut(origin.socket as usize) {
                            let stats = &p.stats;
                            entry.queue.push(origin.addr, |buf| {
                                udp::write_scrape(buf, TransactionId(origin.transaction_id), stats)
                            });
                            self.stats.socket[self.id]
                                .udp(entry.v6)
                                .responses_scrape
                                .inc();
                        }
                    }
                    self.release_pending(idx);
                }
            }
        }
        batch.peers.clear();
        let spare = std::mem::take(&mut batch.spare);
        if self.request_pool.len() < 64 {
            self.request_pool.push(spare);
        }
        if self.reply_pool.len() < 64 {
            self.reply_pool.push(batch);
        }
    }

    /// Gives up scrapes whose parts did not all come back in time.
    fn expire_scrapes(&mut self) {
        let now = self.now;
        for idx in 0..self.pending.len() {
            let expired = matches!(&self.pending[idx], Some(p) if now.saturating_sub(p.created) > SCRAPE_TIMEOUT_SECS);
            if expired {
                let v6 = self.pending[idx]
                    .as_ref()
                    .is_some_and(|p| p.origin.addr.is_ipv6());
                self.udp_counters(v6).dropped_scrape_timeout.inc();
                self.release_pending(idx);
            }
        }
    }

    /// On the way out: hand over what was read, wait (bounded) for the
    /// answers, send them.
    fn drain(&mut self) {
        self.send_batches();
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from_swarm.recv_timeout(left) {
                Ok(batch) => {
                    self.in_flight -= 1;
                    self.answer_batch(batch);
                }
                Err(_) => break,
            }
        }
        self.answer();
    }
}

fn new_pending(
    pending: &mut Vec<Option<PendingScrape>>,
    free: &mut Vec<u32>,
    next_generation: &mut u32,
    origin: Origin,
    hashes: usize,
    now: u32,
) -> Option<u64> {
    let idx = match free.pop() {
        Some(i) => i as usize,
        None if pending.len() < MAX_PENDING_SCRAPES => {
            pending.push(None);
            pending.len() - 1
        }
        None => return None,
    };
    *next_generation = next_generation.wrapping_add(1);
    pending[idx] = Some(PendingScrape {
        origin,
        generation: *next_generation,
        stats: vec![ScrapeStats::default(); hashes],
        remaining: 0,
        failed: false,
        created: now,
    });
    Some(((*next_generation as u64) << 32) | idx as u64)
}

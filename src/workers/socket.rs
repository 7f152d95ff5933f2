//! The socket worker loop: a mio event loop over this worker's UDP sockets,
//! HTTP listeners and HTTP connections.
//!
//! It reads datagrams in batches, answers connects and errors itself, and
//! sorts announces and scrapes into one batch per shard, which it hands over
//! through [`Dispatch`] (handled here or by the swarm workers). It encodes
//! the answers and sends them in batches. Scrapes that span several shards
//! are gathered by [`PendingScrapes`]; HTTP connections are in [`http`].

mod answer;
mod http;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::dispatch::Dispatch;
use super::scrape::PendingScrapes;
use super::{shard_of, Origin, Reply, SharedSettings, Shutdown, SwarmRequest, Wakes};
use crate::access::{AccessList, AccessReader, Account};
use crate::connection_id::ConnectionIds;
use crate::protocol::udp::{self, ParseError, Request, TransactionId};
use crate::stats::{FamilyCounters, Stats};
use crate::swarm::{Announce, PeerAddr};
use crate::sys::{RecvBatch, SendQueue};

pub use http::HttpSettings;

pub const WAKE_TOKEN: Token = Token(usize::MAX);
/// Tokens from here on are HTTP listeners, from [`CONN_BASE`] connections;
/// below are UDP sockets.
const LISTENER_BASE: usize = 1 << 30;
const CONN_BASE: usize = 1 << 31;

/// How long a stopping worker waits for answers already asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds of reads (a batch from each UDP socket) between two polls.
const WORK_ROUNDS: usize = 8;
/// Datagrams read since the last sleep after which the UDP sockets leave the
/// poll (see `SocketWorker::udp_in_poll`): one full batch.
const BUSY_DATAGRAMS: usize = 64;

/// Settings the socket worker reads on the hot path.
#[derive(Clone, Debug)]
pub struct SocketSettings {
    pub interval: u32,
    pub max_scrape_torrents: usize,
    pub http: HttpSettings,
}

struct UdpEntry {
    socket: mio::net::UdpSocket,
    v6: bool,
    readable: bool,
    /// In the poll (see `SocketWorker::udp_in_poll`).
    in_poll: bool,
    queue: SendQueue,
}

impl UdpEntry {
    /// Queues an error reply to `to`, never longer than the request it
    /// answers (`request_len`), so it can't amplify.
    fn error(
        &mut self,
        counters: &FamilyCounters,
        to: SocketAddr,
        transaction_id: TransactionId,
        message: &str,
        request_len: usize,
    ) {
        counters.responses_error.inc();
        self.queue.push(to, |buf| {
            udp::write_error(buf, transaction_id, message, request_len)
        });
    }
}

/// The sockets a socket worker serves.
pub struct Sockets {
    pub udp: Vec<std::net::UdpSocket>,
    pub http: Vec<std::net::TcpListener>,
}

pub struct SocketWorker {
    id: usize,
    poll: Poll,
    sockets: Vec<UdpEntry>,
    http: http::Http,
    recv: RecvBatch,
    ids: ConnectionIds,
    /// How the batches in `outgoing` get handled.
    dispatch: Dispatch,
    wakes: Wakes,
    shutdown: Arc<Shutdown>,
    stats: Arc<Stats>,
    settings: SocketSettings,
    shared_settings: Arc<SharedSettings>,
    settings_generation: u64,
    /// Errors a flood can repeat: one log line a minute.
    log_limit: crate::log_limit::LogLimit,
    /// The access lists, looked at once per batch or HTTP request.
    access: AccessReader,
    started: Instant,
    now: u32,
    /// The batch being filled for each shard.
    outgoing: Vec<Vec<SwarmRequest>>,
    /// Whether the UDP sockets are in the poll (each entry also knows, in
    /// `UdpEntry::in_poll`). They are only while the worker may sleep. A
    /// socket in an epoll set has a waiter on its wait queue, and the kernel
    /// then takes that queue's lock and calls epoll back for every datagram
    /// sent from it (when the datagram is freed) and every one that arrives.
    /// A busy worker reads until its sockets are dry anyway, so once it has
    /// read [`BUSY_DATAGRAMS`] without sleeping it takes them out, and it
    /// puts them back before it sleeps: two system calls per sleep, paid
    /// only when there was a batch's worth to read. Measured: that wake path
    /// is ~4 % of the do-nothing responder's time (perf) once its socket is
    /// in an epoll set, and ~3 % of swarmd's; out of the poll swarmd answered
    /// ~3 % more per CPU-second (alternating runs, noisy).
    udp_in_poll: bool,
    /// Datagrams read since the last sleep.
    read_since_sleep: usize,
    /// Scrapes waiting for their parts.
    scrapes: PendingScrapes,
}

impl SocketWorker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        sockets: Sockets,
        ids: ConnectionIds,
        dispatch: Dispatch,
        wakes: Wakes,
        shutdown: Arc<Shutdown>,
        stats: Arc<Stats>,
        shared_settings: Arc<SharedSettings>,
        started: Instant,
    ) -> io::Result<SocketWorker> {
        let settings_generation = shared_settings.generation();
        let settings = shared_settings.get();
        let mut entries = Vec::with_capacity(sockets.udp.len());
        for s in sockets.udp {
            let v6 = s.local_addr()?.is_ipv6();
            let socket = mio::net::UdpSocket::from_std(s);
            entries.push(UdpEntry {
                socket,
                v6,
                // Datagrams may have arrived before registration.
                readable: true,
                in_poll: false,
                queue: SendQueue::new(),
            });
        }
        let http = http::Http::new(&poll, sockets.http, &settings.http)?;
        let shards = dispatch.shards();
        Ok(SocketWorker {
            id,
            poll,
            sockets: entries,
            http,
            recv: RecvBatch::new(),
            ids,
            dispatch,
            wakes,
            shutdown,
            stats,
            settings,
            shared_settings,
            settings_generation,
            log_limit: crate::log_limit::LogLimit::per_minute(),
            access: AccessReader::default(),
            started,
            now: 0,
            outgoing: (0..shards).map(|_| Vec::new()).collect(),
            udp_in_poll: false,
            read_since_sleep: 0,
            scrapes: PendingScrapes::default(),
        })
    }

    /// Enforces the access lists of `access` (without it, none).
    pub fn with_access(mut self, access: AccessReader) -> SocketWorker {
        self.access = access;
        self
    }

    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut next_housekeeping = Instant::now();
        let wakes = self.wakes.clone();
        while !self.shutdown.requested() {
            let wake = &wakes[self.id];
            wake.sleeping
                .store(true, std::sync::atomic::Ordering::SeqCst);
            // A socket still readable after `work` gave up its turn has
            // no new edge to report: poll without sleeping.
            // Work left over (answers, a socket or connections that gave up
            // their turn) means no sleep.
            let busy = self.dispatch.has_responses()
                || self.sockets.iter().any(|s| s.readable)
                || !self.http.deferred.is_empty();
            let timeout = if busy {
                Duration::ZERO
            } else {
                next_housekeeping.saturating_duration_since(Instant::now())
            };
            if !timeout.is_zero() {
                self.register_udp()?;
            }
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            wake.sleeping
                .store(false, std::sync::atomic::Ordering::SeqCst);
            self.tick();
            if self.shared_settings.generation() != self.settings_generation {
                self.settings_generation = self.shared_settings.generation();
                self.settings = self.shared_settings.get();
                self.http.apply_settings(&self.settings.http);
            }
            self.http_next_round();
            for event in events.iter() {
                let token = event.token().0;
                if token == WAKE_TOKEN.0 {
                    continue;
                } else if token >= CONN_BASE {
                    self.http_conn_event(
                        token - CONN_BASE,
                        event.is_readable(),
                        event.is_writable(),
                    );
                } else if token >= LISTENER_BASE {
                    self.http_accept(token - LISTENER_BASE);
                } else if let Some(entry) = self.sockets.get_mut(token) {
                    entry.readable = true;
                }
            }
            self.http_retry_accept();
            self.work();
            if Instant::now() >= next_housekeeping {
                self.expire_scrapes();
                self.http_expire();
                next_housekeeping = Instant::now() + Duration::from_secs(1);
            }
        }
        self.drain();
        log::debug!("socket-{} stopped", self.id);
        Ok(())
    }

    /// Puts the UDP sockets in the poll, before a sleep.
    fn register_udp(&mut self) -> io::Result<()> {
        self.read_since_sleep = 0;
        if !self.udp_in_poll {
            // A socket with datagrams already queued is reported at once, so
            // none is missed in between.
            for (i, entry) in self.sockets.iter_mut().enumerate() {
                if !entry.in_poll {
                    self.poll.registry().register(
                        &mut entry.socket,
                        Token(i),
                        Interest::READABLE,
                    )?;
                    entry.in_poll = true;
                }
            }
            self.udp_in_poll = true;
        }
        Ok(())
    }

    /// Takes the UDP sockets out of the poll once this worker is busy.
    fn deregister_udp_if_busy(&mut self) {
        if !self.udp_in_poll || self.read_since_sleep < BUSY_DATAGRAMS {
            return;
        }
        for entry in &mut self.sockets {
            match self.poll.registry().deregister(&mut entry.socket) {
                Ok(()) => entry.in_poll = false,
                // Still in the poll: no harm but the cost.
                Err(e) => log::warn!(
                    "socket-{}: cannot take a socket out of the poll: {e}",
                    self.id
                ),
            }
        }
        // From now on `work` looks at every socket each turn.
        self.udp_in_poll = false;
    }

    fn tick(&mut self) {
        self.now = self.started.elapsed().as_secs() as u32;
    }

    /// Reads every UDP socket until it would block (or for [`WORK_ROUNDS`]),
    /// a batch from each in turn, answering what came back from the swarm
    /// workers between batches.
    fn work(&mut self) {
        if !self.udp_in_poll {
            // Out of the poll, no socket's new datagrams are reported: look
            // at each once a turn, so a flooded one can't hide the others.
            for entry in &mut self.sockets {
                entry.readable = true;
            }
        }
        // A bounded number of rounds, then back to poll: events are
        // edge-triggered and only a poll reports them, so a socket that
        // never runs dry (a flood) must not keep the other sockets and the
        // HTTP connections from being looked at.
        for _ in 0..WORK_ROUNDS {
            let mut progress = false;
            for i in 0..self.sockets.len() {
                if self.sockets[i].readable {
                    progress |= self.read_batch(i);
                }
            }
            self.deregister_udp_if_busy();
            self.send_batches();
            self.answer();
            if let Some(batch) = self.dispatch.wait_if_busy() {
                self.answer_batch(batch);
                self.answer();
            }
            if !progress || self.shutdown.requested() {
                break;
            }
        }
        // Requests queued by the last answers (pipelined HTTP requests).
        self.send_batches();
    }

    /// One batch of reads on socket `i`, and the handling of what it read.
    /// Returns whether there may be more to do.
    fn read_batch(&mut self, i: usize) -> bool {
        let fd = self.sockets[i].socket.as_raw_fd();
        match self.recv.recv(fd) {
            Ok(n) => {
                self.read_since_sleep += n;
                self.handle_datagrams(i);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.sockets[i].readable = false;
                false
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => {
                // E.g. ECONNREFUSED reported for an earlier send: nothing
                // to do but read on.
                let id = self.id;
                self.log_limit.log(|left_out| {
                    log::warn!("socket-{id}: recv: {e} ({left_out} more since the last line)")
                });
                true
            }
        }
    }

    fn handle_datagrams(&mut self, socket: usize) {
        let counters = self.stats.socket[self.id].udp(self.sockets[socket].v6);
        let slot = self.ids.slot_at(self.now as u64);
        // Borrow the parts apart: the receive buffers are read while the
        // send queue and outgoing batches are written.
        let SocketWorker {
            recv,
            sockets,
            ids,
            outgoing,
            settings,
            scrapes,
            now,
            access,
            ..
        } = self;
        let access: &AccessList = access.load();
        access.prefetch_udp(recv.datagrams(), recv.len());
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
                        entry.error(counters, src, a.transaction_id, "bad port", bytes.len());
                        continue;
                    }
                    let account = match access.check_udp(&a.info_hash, &a.url_data) {
                        Ok(tally) => Account::boxed(tally, a.uploaded, a.downloaded),
                        Err(refusal) => {
                            refusal.count(counters);
                            entry.error(
                                counters,
                                src,
                                a.transaction_id,
                                refusal.message(),
                                bytes.len(),
                            );
                            continue;
                        }
                    };
                    // The port is the one the client announced, the IP the
                    // one the datagram came from (the request's IP field is
                    // ignored).
                    let peer = SocketAddr::new(src.ip(), a.port);
                    let shard = shard_of(&a.info_hash, outgoing.len());
                    outgoing[shard].push(SwarmRequest::Announce {
                        account,
                        peer_id: a.peer_id,
                        origin: Origin {
                            addr: src,
                            reply: Reply::Udp {
                                socket: socket as u16,
                                transaction_id: a.transaction_id.0,
                            },
                        },
                        announce: Announce {
                            info_hash: a.info_hash,
                            addr: PeerAddr::from_socket_addr(peer),
                            event: a.event,
                            seeder: a.left == 0,
                            num_want: a.num_want,
                        }
                        .fit_udp_reply(),
                    });
                }
                Ok(Request::Scrape(s)) => {
                    counters.requests_scrape.inc();
                    if !ids.check(s.connection_id, src.ip(), slot) {
                        counters.errors_connection_id.inc();
                        continue;
                    }
                    // BEP 15 scrapes carry no URL data, so no passkey.
                    if let Err(refusal) = access.check_scrape(None) {
                        refusal.count(counters);
                        entry.error(
                            counters,
                            src,
                            s.transaction_id,
                            refusal.message(),
                            bytes.len(),
                        );
                        continue;
                    }
                    let origin = Origin {
                        addr: src,
                        reply: Reply::Udp {
                            socket: socket as u16,
                            transaction_id: s.transaction_id.0,
                        },
                    };
                    if !scrapes.start(origin, &s.info_hashes, false, *now, outgoing, |h| {
                        access.allows(h)
                    }) {
                        counters.dropped_channel_full.inc();
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
                    entry.error(counters, src, transaction_id, message, bytes.len());
                }
            }
        }
    }

    /// Hands each non-empty outgoing batch over and answers what is ready.
    /// An answer to an HTTP request may queue the connection's next
    /// pipelined request, so this goes on until no batch is left (a
    /// connection's buffered requests are bounded, so it ends).
    fn send_batches(&mut self) {
        while self.outgoing.iter().any(|b| !b.is_empty()) {
            for requests in self.dispatch.submit(&mut self.outgoing) {
                self.dropped(requests);
            }
            self.answer();
        }
    }

    /// On the way out: hand over what was read, wait (bounded) for the
    /// answers, send them.
    fn drain(&mut self) {
        self.send_batches();
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while let Some(batch) = self.dispatch.drain(deadline) {
            self.answer_batch(batch);
        }
        self.answer();
        self.http_flush_all();
    }
}

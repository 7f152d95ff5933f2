//! HTTP/1.1 connections of a socket worker: accept, read a request head,
//! hand announces and scrapes to the swarm workers like UDP ones, write the
//! bencoded answer, keep the connection for the next request.
//!
//! Bounds, so one client can't hurt the others: a connection holds at most
//! one request head (`max_head_size`) and one response; it handles one
//! request at a time (pipelined ones wait in its read buffer, which is
//! bounded too) and at most [`HTTP_SHARE`] requests per round of the event
//! loop, so a pipelining client waits its turn like every other source of
//! work; a request head must be whole within `request_timeout` of its first
//! byte, and a connection is closed when idle between requests or leaving
//! its answer unread for `idle_timeout`; an address holds at most
//! `max_connections_per_ip` connections and a worker `max_connections`,
//! where a new connection takes the place of the one that has waited
//! longest without a complete request.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

use hashbrown::HashMap;
use mio::{Interest, Poll, Token};

mod requests;

use super::{SocketWorker, CONN_BASE, LISTENER_BASE};
use crate::protocol::http::{ParseSettings, PeerFormat};

/// Requests one connection may have handled in one round of the event loop;
/// it waits for the next round for more. Small, so one pipelining client
/// can't hold up the UDP sockets and the other connections (a round reads
/// up to 8 batches of 64 datagrams from each UDP socket); more than one, so
/// a pipelining client still gets a few answers per system call.
const HTTP_SHARE: u8 = 4;

/// Settings of the HTTP front end, from `[http]` and `[announce]`.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub max_connections: usize,
    /// Open connections per client address.
    pub max_per_ip: usize,
    pub max_head: usize,
    pub idle_timeout: u32,
    /// Seconds from a request head's first byte to its last.
    pub request_timeout: u32,
    /// Lower case; None when off.
    pub real_ip_header: Option<String>,
    pub trusted_proxies: Vec<IpAddr>,
    pub allow_ip_param: bool,
    pub interval: u32,
    pub min_interval: u32,
    pub max_scrape: usize,
}

/// What a connection waits for from the swarm workers.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    /// `v6`: the family of the announced address, and so of the peers.
    Announce {
        format: PeerFormat,
        keep_alive: bool,
        v6: bool,
        no_peer_id: bool,
    },
    Scrape {
        keep_alive: bool,
    },
}

struct Conn {
    stream: mio::net::TcpStream,
    peer: SocketAddr,
    /// Family of the listener, for the counters.
    v6: bool,
    generation: u32,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    waiting: Option<Waiting>,
    close_after_write: bool,
    /// The client closed its side: answer what was read, then close.
    peer_closed: bool,
    /// The last read stopped at a full buffer: the kernel may hold more,
    /// and no new readiness event will say so (they are edge-triggered).
    unread: bool,
    /// When the first byte of the request head being read came (None:
    /// nothing of the next request yet). Later bytes don't move it.
    head_since: Option<u32>,
    /// When the connection last had nothing to do: accepted, or its last
    /// answer sent.
    idle_since: u32,
    /// When the answer being written last moved.
    last_sent: u32,
    /// The event-loop round `handled` counts in.
    round: u32,
    /// Requests handled in `round`.
    handled: u8,
    /// In [`Http::deferred`].
    deferred: bool,
}

impl Conn {
    /// Since when it has waited without a complete request, if it has (not
    /// busy with a request or an answer): the order in which connections
    /// make room for new ones, oldest first.
    fn waiting_since(&self) -> Option<(u32, u32)> {
        if self.waiting.is_some() || self.wpos < self.wbuf.len() || self.close_after_write {
            return None;
        }
        Some((self.head_since.unwrap_or(self.idle_since), self.generation))
    }
}

pub(super) struct Http {
    listeners: Vec<(mio::net::TcpListener, bool)>,
    /// Per listener: its last accept failed (for lack of descriptors,
    /// mostly). Its backlog may hold clients that no event will report
    /// again (events are edge-triggered), so accept is retried (see
    /// `http_retry_accept`).
    starved: Vec<bool>,
    /// A connection closed since the last retry of a starved listener.
    closed: bool,
    /// When (`now`) starved listeners were last retried.
    retried_at: u32,
    conns: Vec<Option<Conn>>,
    free: Vec<u32>,
    open: usize,
    /// Open connections by client address (entries only while non-zero).
    per_ip: HashMap<IpAddr, u32, ahash::RandomState>,
    /// The event-loop round, for [`HTTP_SHARE`].
    round: u32,
    /// Connections that used their share with requests left: handled at
    /// the next round (the event loop doesn't sleep while there are some).
    pub(super) deferred: Vec<u32>,
    /// The list `deferred` was last round, kept for its allocation.
    spare_deferred: Vec<u32>,
    next_generation: u32,
    parse: ParseSettings,
    body: Vec<u8>,
}

impl Http {
    pub(super) fn new(
        poll: &Poll,
        listeners: Vec<std::net::TcpListener>,
        settings: &HttpSettings,
    ) -> io::Result<Http> {
        let mut out = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            let v6 = l.local_addr()?.is_ipv6();
            let mut l = mio::net::TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, Token(LISTENER_BASE + i), Interest::READABLE)?;
            out.push((l, v6));
        }
        Ok(Http {
            starved: vec![false; out.len()],
            closed: false,
            retried_at: 0,
            listeners: out,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            per_ip: HashMap::default(),
            round: 0,
            deferred: Vec::new(),
            spare_deferred: Vec::new(),
            next_generation: 0,
            parse: ParseSettings {
                max_head: settings.max_head,
                max_scrape: settings.max_scrape,
                real_ip_header: settings.real_ip_header.clone(),
            },
            body: Vec::with_capacity(1024),
        })
    }

    /// Takes new settings after a reload.
    pub(super) fn apply_settings(&mut self, settings: &HttpSettings) {
        self.parse = ParseSettings {
            max_head: settings.max_head,
            max_scrape: settings.max_scrape,
            real_ip_header: settings.real_ip_header.clone(),
        };
    }
}

impl SocketWorker {
    pub(super) fn http_accept(&mut self, listener: usize) {
        if let Some(s) = self.http.starved.get_mut(listener) {
            *s = false;
        }
        loop {
            let Some((l, v6)) = self.http.listeners.get(listener) else {
                return;
            };
            let v6 = *v6;
            let (mut stream, peer) = match l.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // E.g. out of descriptors (EMFILE, ENFILE): retried
                    // once a connection has closed, or a second later (see
                    // `starved`), rather than spin now. Any other error
                    // (an aborted connection, say) is retried the same
                    // way, so nothing waiting in the backlog is forgotten.
                    self.http.starved[listener] = true;
                    let id = self.id;
                    self.log_limit.log(|left_out| {
                        log::warn!("socket-{id}: accept: {e} ({left_out} more since the last line)")
                    });
                    return;
                }
            };
            let ip = peer.ip();
            let from_ip = self.http.per_ip.get(&ip).copied().unwrap_or(0);
            if from_ip as usize >= self.settings.http.max_per_ip
                || (self.http.open >= self.settings.http.max_connections && !self.http_evict())
            {
                self.stats.socket[self.id]
                    .http(v6)
                    .connections_refused
                    .inc();
                drop(stream);
                continue;
            }
            let idx = match self.http.free.pop() {
                Some(i) => i as usize,
                None => {
                    self.http.conns.push(None);
                    self.http.conns.len() - 1
                }
            };
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(CONN_BASE + idx),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("socket-{}: register connection: {e}", self.id);
                self.http.free.push(idx as u32);
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.stats.socket[self.id]
                .http(v6)
                .connections_accepted
                .inc();
            self.http.next_generation = self.http.next_generation.wrapping_add(1);
            self.http.conns[idx] = Some(Conn {
                stream,
                peer,
                v6,
                generation: self.http.next_generation,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                wpos: 0,
                waiting: None,
                close_after_write: false,
                peer_closed: false,
                unread: false,
                head_since: None,
                idle_since: self.now,
                last_sent: self.now,
                round: self.http.round,
                handled: 0,
                deferred: false,
            });
            self.http.open += 1;
            *self.http.per_ip.entry(ip).or_insert(0) += 1;
            self.http_conn_event(idx, true, false);
        }
    }

    pub(super) fn http_conn_event(&mut self, idx: usize, readable: bool, writable: bool) {
        if writable && !self.http_write(idx) {
            return;
        }
        if readable && !self.http_read(idx) {
            return;
        }
        self.http_process(idx);
    }

    /// Reads what the socket has, up to the head limit plus one read.
    /// Returns false if the connection was closed.
    fn http_read(&mut self, idx: usize) -> bool {
        let limit = self.settings.http.max_head + 1;
        let now = self.now;
        let Some(Some(c)) = self.http.conns.get_mut(idx) else {
            return false;
        };
        let mut chunk = [0u8; 4096];
        let mut received = 0;
        c.unread = false;
        loop {
            if c.rbuf.len() >= limit {
                // Full: leave the rest in the kernel until this is handled.
                c.unread = true;
                break;
            }
            let room = (limit - c.rbuf.len()).min(chunk.len());
            match c.stream.read(&mut chunk[..room]) {
                Ok(0) => {
                    c.peer_closed = true;
                    break;
                }
                Ok(n) => {
                    c.rbuf.extend_from_slice(&chunk[..n]);
                    received += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.http_close(idx);
                    return false;
                }
            }
        }
        if received > 0 {
            if c.head_since.is_none() {
                c.head_since = Some(now);
            }
            let v6 = c.v6;
            self.stats.socket[self.id]
                .http(v6)
                .bytes_received
                .add(received as u64);
        }
        true
    }

    /// Writes what the connection has queued. Returns false if it was closed.
    fn http_write(&mut self, idx: usize) -> bool {
        let now = self.now;
        let Some(Some(c)) = self.http.conns.get_mut(idx) else {
            return false;
        };
        let mut sent = 0;
        while c.wpos < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.wpos..]) {
                Ok(0) => break,
                Ok(n) => {
                    c.wpos += n;
                    sent += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.http_close(idx);
                    return false;
                }
            }
        }
        if sent > 0 {
            c.last_sent = now;
            let v6 = c.v6;
            self.stats.socket[self.id]
                .http(v6)
                .bytes_sent
                .add(sent as u64);
        }
        if c.wpos == c.wbuf.len() {
            if !c.wbuf.is_empty() && c.waiting.is_none() {
                c.idle_since = now;
            }
            c.wbuf.clear();
            c.wpos = 0;
            if c.close_after_write {
                self.http_close(idx);
                return false;
            }
        }
        true
    }

    fn http_close(&mut self, idx: usize) {
        if let Some(mut c) = self.http.conns.get_mut(idx).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.http.free.push(idx as u32);
            self.http.open -= 1;
            // A descriptor just freed up: see `http_retry_accept`.
            self.http.closed = true;
            let ip = c.peer.ip();
            if let Some(n) = self.http.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.http.per_ip.remove(&ip);
                }
            }
        }
    }

    /// Accepts on the listeners whose last accept failed (out of
    /// descriptors, mostly) when a connection has closed since the last
    /// try, or once a second (a descriptor may free up elsewhere in the
    /// process). Called by the event loop before `work`, never from inside
    /// a connection's handling, so a slot freed there is not reused under
    /// its feet.
    pub(super) fn http_retry_accept(&mut self) {
        if !self.http.starved.contains(&true) || self.shutdown.requested() {
            return;
        }
        if !self.http.closed && self.http.retried_at == self.now {
            return;
        }
        self.http.closed = false;
        self.http.retried_at = self.now;
        for listener in 0..self.http.starved.len() {
            if self.http.starved[listener] {
                self.http_accept(listener);
            }
        }
    }

    /// Makes room for a new connection: closes the one that has waited
    /// longest without a complete request. False when every connection is
    /// busy with a request. A scan of the connections, paid only when the
    /// worker is full.
    fn http_evict(&mut self) -> bool {
        let oldest = self
            .http
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((c.as_ref()?.waiting_since()?, i)))
            .min();
        let Some((_, idx)) = oldest else {
            return false;
        };
        let v6 = self.http.conns[idx].as_ref().is_some_and(|c| c.v6);
        self.stats.socket[self.id]
            .http(v6)
            .connections_evicted
            .inc();
        self.http_close(idx);
        true
    }

    /// Handles the connections that had more than their share last round.
    pub(super) fn http_next_round(&mut self) {
        self.http.round = self.http.round.wrapping_add(1);
        if self.http.deferred.is_empty() {
            return;
        }
        // Swapped with a spare list rather than taken, so that a pipelining
        // client costs no allocation per round.
        let mut deferred = std::mem::take(&mut self.http.spare_deferred);
        std::mem::swap(&mut deferred, &mut self.http.deferred);
        for &idx in &deferred {
            if let Some(Some(c)) = self.http.conns.get_mut(idx as usize) {
                c.deferred = false;
            }
        }
        for &idx in &deferred {
            self.http_process(idx as usize);
        }
        deferred.clear();
        self.http.spare_deferred = deferred;
    }

    /// Closes connections past their deadlines: a request head not whole
    /// within `request_timeout` of its first byte, idle between requests or
    /// an answer unread for `idle_timeout`. A connection waiting for its
    /// answer from the shards has no deadline here (a scrape gives up on
    /// its own).
    pub(super) fn http_expire(&mut self) {
        let now = self.now;
        let idle = self.settings.http.idle_timeout;
        let head = self.settings.http.request_timeout;
        for idx in 0..self.http.conns.len() {
            let Some(c) = &self.http.conns[idx] else {
                continue;
            };
            let c_stats = self.stats.socket[self.id].http(c.v6);
            let counter = if c.wpos < c.wbuf.len() {
                (now.saturating_sub(c.last_sent) > idle).then_some(&c_stats.connections_timed_out)
            } else if c.waiting.is_some() {
                None
            } else if let Some(since) = c.head_since {
                (now.saturating_sub(since) > head).then_some(&c_stats.connections_too_slow)
            } else {
                (now.saturating_sub(c.idle_since) > idle).then_some(&c_stats.connections_timed_out)
            };
            if let Some(counter) = counter {
                counter.inc();
                self.http_close(idx);
            }
        }
    }

    /// On the way out: one last try to send what is queued.
    pub(super) fn http_flush_all(&mut self) {
        for idx in 0..self.http.conns.len() {
            self.http_write(idx);
        }
    }
}

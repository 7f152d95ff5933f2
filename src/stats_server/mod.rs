//! The stats thread: samples the counters every few seconds (for rates) and
//! serves a tiny read-only HTTP endpoint on its own address.
//!
//! Routes (GET only; anything else is 405):
//! - `/metrics`: Prometheus text exposition format
//! - `/stats`: the same numbers as JSON, plus rates per second
//! - `/torrents?top=N`: the largest swarms (as of the last cleaning pass)
//! - `/torrents/<40 hex digits>`: one torrent's counts
//! - `/passkeys`: per-passkey announces and uploaded/downloaded deltas, by
//!   user or by a tag of the key (never the key itself)
//! - `/healthz`: `ok` while every worker runs, 503 otherwise
//! - `/events`: a Server-Sent Events stream of per-torrent counts as they
//!   change (see `events`)
//!
//! One request per connection, answered and closed, except `/events`. The endpoint is for an
//! operator and a scraper, but it sits on a network, so no client may stall
//! it: one mio loop serves every connection without blocking, each
//! connection has [`DEADLINE`] from accept to be answered (or it is closed),
//! at most [`MAX_CONNECTIONS`] are open (a new one closes the oldest), a
//! request head is at most [`conn::MAX_HEAD`] bytes, and a stop wakes the
//! loop at once. A connection whose request is `GET /events` leaves those
//! [`MAX_CONNECTIONS`] once its head is read, for the feed's own table and
//! cap (`[stats] max_event_subscribers`): the request limits still guard
//! every connection until it has asked, and 1000 subscribers don't crowd
//! out a scraper.
//!
//! Modules: `conn` (one connection's states), `routes` (head in, answer
//! out), `render` (Prometheus and JSON), `view` (what the tracker gives
//! the endpoint to read), `events` (the `/events` feed).

mod conn;
mod events;
mod render;
mod routes;
mod view;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::workers::Shutdown;
use conn::{Conn, Progress, State};
use render::{Rates, Sample};
use routes::{Answer, Route};

pub(crate) use events::EventsSettings;
use events::Feed;
pub use view::TrackerView;

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
/// Connection `i` is registered as `Token(FIRST + i)`.
const FIRST: usize = 2;
/// Subscriber `i` of `/events` is registered as `Token(FEED_FIRST + i)`.
const FEED_FIRST: usize = FIRST + MAX_CONNECTIONS;

/// Open connections at most. Scrapers open one at a time; 64 leaves room
/// for several, and bounds what silent clients can hold.
pub const MAX_CONNECTIONS: usize = 64;
/// From accept to the last byte of the answer. A request head comes in one
/// packet from any real client; a client slower than this is dropped.
pub const DEADLINE: Duration = Duration::from_secs(3);
/// How long a swarm worker has to give one torrent's counts.
const SWARM_ANSWER: Duration = Duration::from_secs(1);
/// While a swarm worker's answer is awaited the loop polls the channel this
/// often (the answer can't wake mio; such requests are rare).
const ASK_POLL: Duration = Duration::from_millis(2);

pub struct StatsServer {
    listener: TcpListener,
    poll: Poll,
    view: TrackerView,
    shutdown: Arc<Shutdown>,
    interval: Duration,
    max_top: usize,
    last: (Instant, Sample),
    rates: Rates,
    /// Slot `i` holds the connection of `Token(FIRST + i)`.
    conns: Vec<Option<Conn>>,
    feed: Feed,
}

/// Binds the endpoint. Returns the server (to run on its thread), its
/// address, and the waker that stops it.
pub fn bind(
    addr: SocketAddr,
    view: TrackerView,
    shutdown: Arc<Shutdown>,
    interval: Duration,
    max_top: usize,
    events: EventsSettings,
) -> io::Result<(StatsServer, SocketAddr, Waker)> {
    let mut listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    let first = Sample::of(&view.stats);
    let feed = Feed::new(events, FEED_FIRST, view.controls.len());
    Ok((
        StatsServer {
            listener,
            poll,
            view,
            shutdown,
            interval,
            max_top,
            last: (Instant::now(), first),
            rates: Rates::default(),
            conns: (0..MAX_CONNECTIONS).map(|_| None).collect(),
            feed,
        },
        local,
        waker,
    ))
}

impl StatsServer {
    /// Serves until the shutdown flag is set (and the waker pinged).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        while !self.shutdown.requested() {
            let timeout = self.timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("stats: poll: {e}");
                    return;
                }
            }
            let now = Instant::now();
            if now >= self.last.0 + self.interval {
                self.resample(now);
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKE => {}
                    Token(t) if self.feed.is_feed_token(t) => {
                        let readable = event.is_readable() || event.is_read_closed();
                        self.feed
                            .drive(t, readable, self.poll.registry(), &self.view)
                    }
                    Token(t) => self.drive(t - FIRST, now),
                }
            }
            self.collect_answers(now);
            self.expire(now);
            self.feed
                .tick(Instant::now(), self.poll.registry(), &self.view);
        }
    }

    /// Until the next thing with a time: a resample, a deadline, a look
    /// at the swarm workers' answers, or the feed's next step.
    fn timeout(&self, now: Instant) -> Duration {
        let mut next = self.last.0 + self.interval;
        if let Some(t) = self.feed.next_wake(now, ASK_POLL) {
            next = next.min(t);
        }
        for c in self.conns.iter().flatten() {
            next = next.min(c.accepted + DEADLINE);
            if matches!(c.state, State::Asking { .. }) {
                next = next.min(now + ASK_POLL);
            }
        }
        next.saturating_duration_since(now)
    }

    fn resample(&mut self, now: Instant) {
        let s = Sample::of(&self.view.stats);
        let secs = now.duration_since(self.last.0).as_secs_f64();
        self.rates = Rates::between(self.last.1, s, secs);
        self.last = (now, s);
    }

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let mut free = self.conns.iter().position(Option::is_none);
                    if free.is_none() {
                        // Full: connections whose head has come since
                        // their last readiness (a burst of subscribers,
                        // say) are moved on first, which frees their slots
                        // without closing anyone who asked.
                        for slot in 0..self.conns.len() {
                            self.drive(slot, now);
                        }
                        free = self.conns.iter().position(Option::is_none);
                    }
                    let slot = match free {
                        Some(free) => free,
                        None => {
                            // Full: the oldest has had the longest to ask,
                            // and is the likeliest to be a stalled client.
                            let oldest = self.oldest();
                            log::debug!(
                                "stats: {MAX_CONNECTIONS} connections open, closing the oldest"
                            );
                            self.close(oldest);
                            oldest
                        }
                    };
                    let registered = self.poll.registry().register(
                        &mut stream,
                        Token(FIRST + slot),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    match registered {
                        Ok(()) => self.conns[slot] = Some(Conn::new(stream, now)),
                        Err(e) => log::warn!("stats: register: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, say: the next readiness retries.
                    log::warn!("stats: accept: {e}");
                    return;
                }
            }
        }
    }

    fn oldest(&self) -> usize {
        let mut oldest = 0;
        for (i, c) in self.conns.iter().enumerate() {
            if let (Some(c), Some(o)) = (c, &self.conns[oldest]) {
                if c.accepted < o.accepted {
                    oldest = i;
                }
            }
        }
        oldest
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Moves a connection on after readiness: read its head and route it,
    /// or write its answer.
    fn drive(&mut self, slot: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if let State::Reading(_) = c.state {
            match c.read() {
                Progress::More => return,
                Progress::Closed => return self.close(slot),
                Progress::TooLarge => c.state = answer(routes::too_large()),
                Progress::Head(head) => {
                    c.state = match routes::route(&head, &self.view, &self.rates, self.max_top) {
                        Route::Answer(a) => answer(a),
                        Route::Events(filter) => return self.subscribe(slot, filter, now),
                        Route::Torrent(info_hash) => match self.view.ask_torrent(info_hash) {
                            Some(reply) => State::Asking {
                                info_hash,
                                reply,
                                until: now + SWARM_ANSWER,
                            },
                            None => answer(routes::torrent(info_hash, None)),
                        },
                    }
                }
            }
        }
        self.flush(slot);
    }

    /// Hands the connection in `slot` over to the feed, or answers why not.
    fn subscribe(&mut self, slot: usize, filter: Vec<crate::protocol::InfoHash>, now: Instant) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if self.feed.settings.max_subscribers == 0 {
            c.state = answer(Answer::text(
                404,
                "/events is off ([stats] max_event_subscribers = 0)\n",
            ));
            return self.flush(slot);
        }
        if self.feed.full() {
            self.view.stats.events.refused.inc();
            c.state = answer(Answer::text(503, "too many /events subscribers\n"));
            return self.flush(slot);
        }
        let Some(c) = self.conns[slot].take() else {
            return;
        };
        if let Err(e) = self
            .feed
            .subscribe(c.stream, filter, self.poll.registry(), &self.view, now)
        {
            log::warn!("stats: /events: register: {e}");
        }
    }

    /// Writes what it can of a connection's answer; closes it once sent
    /// (or on error).
    fn flush(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match c.write() {
            Ok(false) => {}
            Ok(true) | Err(_) => self.close(slot),
        }
    }

    /// Turns swarm workers' answers (or their silence past
    /// [`SWARM_ANSWER`]) into answers to write.
    fn collect_answers(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            let State::Asking {
                info_hash,
                reply,
                until,
            } = &c.state
            else {
                continue;
            };
            let counts = match reply.try_recv() {
                Ok(counts) => Some(counts),
                Err(TryRecvError::Empty) if now < *until => continue,
                Err(_) => None,
            };
            c.state = answer(routes::torrent(*info_hash, counts));
            self.flush(slot);
        }
    }

    /// Closes connections past their deadline, telling those still sending
    /// their head why (one try, no waiting).
    fn expire(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            if now < c.accepted + DEADLINE {
                continue;
            }
            if let State::Reading(_) = c.state {
                c.state = answer(Answer::text(408, "request head too slow\n"));
                let _ = c.write();
            }
            self.close(slot);
        }
    }
}

fn answer(a: Answer) -> State {
    State::Writing {
        out: a.into_bytes(),
        sent: 0,
    }
}

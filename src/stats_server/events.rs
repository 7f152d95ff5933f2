//! `/events`: the live feed of per-torrent counts, as Server-Sent Events.
//!
//! Every [`EventsSettings::interval`] (a round), while anybody subscribes,
//! the feed asks each swarm worker for the torrents whose counts changed
//! since the last round ([`Control::Changes`]); the shards only note them
//! (see `swarm::changes`). The answers are rendered once into one block of
//! events, which every unfiltered subscriber shares (a reference, not a
//! copy); a subscriber with `?info_hash=` filters gets a block of its own
//! with just its torrents. So a torrent gets at most one event a round,
//! with its counts at the end of the round.
//!
//! Bounds: a subscriber's queue holds at most [`MAX_QUEUED`] blocks (its
//! socket's send buffer is fixed at [`SEND_BUFFER`]); one that would go past
//! it, still writing a round's events when the round after the next comes,
//! is sent `event: resync` and closed. So the feed holds at most
//! `MAX_QUEUED + 1` rounds' blocks whatever the subscribers do (shared ones
//! once, each under 130 bytes a changed torrent), and a subscriber may be
//! about two rounds behind, however large a round is. At most
//! [`EventsSettings::max_subscribers`] subscribe at once. A subscriber
//! sends nothing after its request: one that does (more than a little) is
//! closed, and so is one that closes its side.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering::Release;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;

use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;
use crate::workers::Control;

use super::view::TrackerView;

/// The kernel's send buffer of a subscriber's socket. Fixed (which turns
/// off the kernel's growing it to megabytes), so that 1000 subscribers
/// can't hold gigabytes of kernel memory: a round of events for all
/// torrents fits it many times over at a normal rate of change.
pub(crate) const SEND_BUFFER: usize = 64 << 10;
/// Bytes a subscriber may send after its request before it is closed.
const MAX_READ: usize = 4096;
/// Blocks (rounds' events, or a ping) a subscriber may have waiting.
const MAX_QUEUED: usize = 2;
/// How long a subscriber cut off as too slow has to take its `resync`.
const RESYNC_GRACE: Duration = Duration::from_secs(5);
/// How long a round waits for the swarm workers' answers; one that comes
/// later goes into the next round.
const ROUND_WAIT: Duration = Duration::from_millis(500);

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\n\
: swarmd /events\n\n";
const PING: &[u8] = b": ping\n\n";
const RESYNC: &[u8] = b"event: resync\ndata: {\"reason\":\"too slow\"}\n\n";

/// One shard's answer: the torrents that changed, with their counts.
type Changed = Vec<(InfoHash, ScrapeStats)>;

/// What `[stats]` says of the feed.
#[derive(Clone, Debug)]
pub(crate) struct EventsSettings {
    pub(crate) interval: Duration,
    pub(crate) heartbeat: Duration,
    /// 0: `/events` is off.
    pub(crate) max_subscribers: usize,
}

impl EventsSettings {
    pub(crate) fn of(c: &crate::config::StatsConfig) -> EventsSettings {
        EventsSettings {
            interval: Duration::from_millis(c.events_interval_ms.into()),
            heartbeat: c.events_heartbeat,
            max_subscribers: c.max_event_subscribers,
        }
    }
}

/// One subscriber: its socket, its filter, and what is queued for it.
struct Subscriber {
    stream: TcpStream,
    /// Empty: every torrent.
    filter: Vec<InfoHash>,
    /// Blocks to write, with how much of the first is written.
    queue: VecDeque<Arc<Vec<u8>>>,
    written: usize,
    read: usize,
    /// Cut off as too slow: closed once `resync` is out, or at this time.
    closing: Option<Instant>,
}

/// What became of a subscriber after it was driven.
#[derive(PartialEq, Eq)]
enum Fate {
    Stays,
    Close,
}

/// What pushing a block to a subscriber did.
#[derive(PartialEq, Eq)]
enum Pushed {
    Queued,
    /// Already cut off: nothing more is queued.
    Closing,
    /// Past its bound: cut off now, with `resync` queued instead.
    CutOff,
}

impl Subscriber {
    fn push(&mut self, block: Arc<Vec<u8>>, now: Instant) -> Pushed {
        if self.closing.is_some() {
            return Pushed::Closing;
        }
        if self.queue.len() >= MAX_QUEUED {
            // What is queued is dropped: the resync says "your counts are
            // stale, start again", so no event needs to reach it any more.
            // (The part of a block already in the socket is finished first,
            // so the stream stays well formed.)
            let partial = match self.written {
                0 => None,
                n => self.queue.pop_front().map(|b| (b, n)),
            };
            self.queue.clear();
            self.written = 0;
            if let Some((b, n)) = partial {
                self.written = n;
                self.queue.push_back(b);
            }
            self.queue.push_back(Arc::new(RESYNC.to_vec()));
            self.closing = Some(now + RESYNC_GRACE);
            return Pushed::CutOff;
        }
        self.queue.push_back(block);
        Pushed::Queued
    }

    /// Writes what the socket takes.
    fn flush(&mut self) -> Fate {
        while let Some(block) = self.queue.front() {
            match self.stream.write(&block[self.written..]) {
                Ok(0) => return Fate::Close,
                Ok(n) => {
                    self.written += n;
                    if self.written == block.len() {
                        self.queue.pop_front();
                        self.written = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Fate::Stays,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Fate::Close,
            }
        }
        match self.closing {
            Some(_) => Fate::Close,
            None => Fate::Stays,
        }
    }

    /// Reads (and drops) what the client sent; Close when it closed or
    /// sent too much.
    fn drain(&mut self) -> Fate {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Fate::Close,
                Ok(n) => {
                    self.read += n;
                    if self.read > MAX_READ {
                        return Fate::Close;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Fate::Stays,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Fate::Close,
            }
        }
    }
}

/// The subscribers and the rounds.
pub(crate) struct Feed {
    pub(crate) settings: EventsSettings,
    /// Slot `i` is registered as `Token(first + i)`.
    subs: Vec<Option<Subscriber>>,
    first: usize,
    count: usize,
    /// Of them, cut off and waiting to close (their deadlines are only
    /// looked for while there are some).
    closing: usize,
    next_round: Instant,
    next_ping: Instant,
    /// Answers of swarm workers (one channel for all rounds, so a late
    /// answer is kept for the next round, never lost).
    answers: (Sender<Changed>, Receiver<Changed>),
    /// A round under way: answers still owed, and until when to wait.
    asking: Option<(usize, Instant)>,
    gathered: Vec<(InfoHash, ScrapeStats)>,
    ping: Arc<Vec<u8>>,
}

impl Feed {
    pub(crate) fn new(settings: EventsSettings, first_token: usize, shards: usize) -> Feed {
        let now = Instant::now();
        Feed {
            settings,
            subs: Vec::new(),
            first: first_token,
            count: 0,
            closing: 0,
            next_round: now,
            next_ping: now,
            answers: crossbeam_channel::bounded(4 * shards.max(1)),
            asking: None,
            gathered: Vec::new(),
            ping: Arc::new(PING.to_vec()),
        }
    }

    pub(crate) fn is_feed_token(&self, token: usize) -> bool {
        token >= self.first
    }

    pub(crate) fn full(&self) -> bool {
        self.count >= self.settings.max_subscribers
    }

    /// Takes over a connection whose request was `GET /events`. Err when
    /// it could not be registered (it is then dropped, closed).
    pub(crate) fn subscribe(
        &mut self,
        mut stream: TcpStream,
        filter: Vec<InfoHash>,
        registry: &mio::Registry,
        view: &TrackerView,
        now: Instant,
    ) -> io::Result<()> {
        let slot = match self.subs.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.subs.push(None);
                self.subs.len() - 1
            }
        };
        registry.reregister(
            &mut stream,
            mio::Token(self.first + slot),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )?;
        // A failure leaves the kernel's default, which still works.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
        let mut sub = Subscriber {
            stream,
            filter,
            queue: VecDeque::new(),
            written: 0,
            read: 0,
            closing: None,
        };
        sub.push(Arc::new(HEAD.to_vec()), now);
        if self.count == 0 {
            // Before the answer goes out: whatever the subscriber does
            // after reading it is noted by the shards.
            view.events_on.store(true, Release);
            self.next_round = now + self.settings.interval;
            self.next_ping = now + self.settings.heartbeat;
        }
        self.count += 1;
        view.stats.events.subscribers.set(self.count as u64);
        let fate = sub.flush();
        self.subs[slot] = Some(sub);
        if fate == Fate::Close {
            self.close(slot, registry, view);
        }
        Ok(())
    }

    fn close(&mut self, slot: usize, registry: &mio::Registry, view: &TrackerView) {
        if let Some(mut sub) = self.subs.get_mut(slot).and_then(Option::take) {
            let _ = registry.deregister(&mut sub.stream);
            self.count -= 1;
            if sub.closing.is_some() {
                self.closing -= 1;
            }
            view.stats.events.subscribers.set(self.count as u64);
            if self.count == 0 {
                view.events_on.store(false, Release);
            }
        }
        while self.subs.last().is_some_and(Option::is_none) {
            self.subs.pop();
        }
    }

    /// Readiness of subscriber `token` (`readable`: there may be something
    /// to read, or the client closed).
    pub(crate) fn drive(
        &mut self,
        token: usize,
        readable: bool,
        registry: &mio::Registry,
        view: &TrackerView,
    ) {
        let slot = token - self.first;
        let Some(sub) = self.subs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if (readable && sub.drain() == Fate::Close) || sub.flush() == Fate::Close {
            self.close(slot, registry, view);
        }
    }

    /// When the feed next needs the loop: a round, an answer to look for,
    /// a ping, a slow subscriber's grace running out. None when idle.
    pub(crate) fn next_wake(&self, now: Instant, ask_poll: Duration) -> Option<Instant> {
        if self.count == 0 {
            return None;
        }
        let mut next = self.next_round.min(self.next_ping);
        if self.asking.is_some() {
            next = next.min(now + ask_poll);
        }
        if self.closing > 0 {
            for sub in self.subs.iter().flatten() {
                if let Some(t) = sub.closing {
                    next = next.min(t);
                }
            }
        }
        Some(next)
    }

    /// Runs what is due: starts a round, gathers its answers and sends
    /// its events, pings, and closes slow subscribers whose grace is up.
    pub(crate) fn tick(&mut self, now: Instant, registry: &mio::Registry, view: &TrackerView) {
        if self.count == 0 {
            self.asking = None;
            return;
        }
        let mut pushed = false;
        if self.asking.is_none() && now >= self.next_round {
            self.next_round = now + self.settings.interval;
            let mut asked = 0;
            for c in &view.controls {
                let reply = self.answers.0.clone();
                // A full control channel: that shard keeps its changes
                // for the next round.
                if c.try_send(Control::Changes { reply }).is_ok() {
                    asked += 1;
                }
            }
            self.asking = Some((asked, now + ROUND_WAIT));
        }
        if let Some((owed, until)) = &mut self.asking {
            while let Ok(mut part) = self.answers.1.try_recv() {
                self.gathered.append(&mut part);
                *owed = owed.saturating_sub(1);
            }
            if *owed == 0 || now >= *until {
                self.asking = None;
                let mut changed = std::mem::take(&mut self.gathered);
                pushed |= !changed.is_empty();
                self.publish(&changed, now, view);
                changed.clear();
                self.gathered = changed;
            }
        }
        if now >= self.next_ping {
            self.next_ping = now + self.settings.heartbeat;
            pushed = true;
            let ping = self.ping.clone();
            // Only to the idle: a stream with something queued is not idle
            // (or is stuck, and rounds cut it off), and a stalled reader of
            // an idle feed then holds one ping, not one every heartbeat.
            for sub in self.subs.iter_mut().flatten() {
                if sub.queue.is_empty() {
                    sub.push(ping.clone(), now);
                }
            }
        }
        // Between rounds a subscriber's socket moves its queue on by
        // itself (`drive`, on writable): only after a push, or with a
        // deadline pending, is every one looked at.
        if !pushed && self.closing == 0 {
            return;
        }
        for slot in 0..self.subs.len() {
            let Some(sub) = self.subs[slot].as_mut() else {
                continue;
            };
            let late = sub.closing.is_some_and(|t| now >= t);
            if late || sub.flush() == Fate::Close {
                self.close(slot, registry, view);
            }
        }
    }

    /// Sends one round's changes to the subscribers.
    fn publish(&mut self, changed: &[(InfoHash, ScrapeStats)], now: Instant, view: &TrackerView) {
        if changed.is_empty() {
            return;
        }
        let mut block = Vec::with_capacity(changed.len() * 120);
        let mut spans = Vec::with_capacity(changed.len());
        for (h, s) in changed {
            let start = block.len();
            render(&mut block, h, s);
            spans.push((*h, start, block.len()));
        }
        let filtered = self.subs.iter().flatten().any(|s| !s.filter.is_empty());
        let by_hash: hashbrown::HashMap<InfoHash, (usize, usize)> = if filtered {
            spans.iter().map(|(h, a, b)| (*h, (*a, *b))).collect()
        } else {
            hashbrown::HashMap::new()
        };
        let block = Arc::new(block);
        let counters = &view.stats.events;
        for sub in self.subs.iter_mut().flatten() {
            if sub.closing.is_some() {
                continue;
            }
            let (part, events) = if sub.filter.is_empty() {
                (block.clone(), changed.len())
            } else {
                let mut own = Vec::new();
                let mut n = 0;
                for h in &sub.filter {
                    if let Some((a, b)) = by_hash.get(h) {
                        own.extend_from_slice(&block[*a..*b]);
                        n += 1;
                    }
                }
                if n == 0 {
                    continue;
                }
                (Arc::new(own), n)
            };
            match sub.push(part, now) {
                Pushed::Queued => counters.events_sent.add(events as u64),
                Pushed::CutOff => {
                    self.closing += 1;
                    counters.dropped_slow.inc();
                }
                Pushed::Closing => {}
            }
        }
    }
}

/// One event: `data: {json}` and a blank line.
fn render(out: &mut Vec<u8>, h: &InfoHash, s: &ScrapeStats) {
    let _ = write!(
        out,
        "data: {{\"info_hash\":\"{h}\",\"seeders\":{},\"leechers\":{},\"completed\":{}}}\n\n",
        s.seeders, s.leechers, s.completed
    );
}

/// The filters of `/events?info_hash=…&info_hash=…`: 40 hex digits, or 64
/// (a v2 torrent's SHA-256, which announces truncated to its first 20
/// bytes, BEP 52). None if one is neither.
pub(crate) fn filters(query: &str) -> Option<Vec<InfoHash>> {
    let mut out = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=')?;
        if k != "info_hash" {
            return None;
        }
        let h = match v.len() {
            40 => InfoHash::from_hex(v)?,
            64 if v.is_ascii() => InfoHash::from_hex(&v[..40])?,
            _ => return None,
        };
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_v1_and_v2_hashes_once_each() {
        let v1 = "00112233445566778899aabbccddeeff00112233";
        let v2 = format!("{v1}{}", "ab".repeat(12));
        let f = filters(&format!("info_hash={v1}&info_hash={v2}&info_hash={v1}")).unwrap();
        assert_eq!(f, vec![InfoHash::from_hex(v1).unwrap()]);
        assert_eq!(filters(""), Some(Vec::new()));
        assert_eq!(filters("info_hash=00"), None);
        assert_eq!(filters("top=3"), None);
    }

    #[test]
    fn an_event_is_one_data_line_of_json() {
        let mut out = Vec::new();
        let s = ScrapeStats {
            seeders: 3,
            completed: 5,
            leechers: 4,
        };
        render(&mut out, &InfoHash([0xab; 20]), &s);
        let text = String::from_utf8(out).unwrap();
        let json = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["info_hash"], "ab".repeat(20));
        assert_eq!(
            (
                v["seeders"].clone(),
                v["leechers"].clone(),
                v["completed"].clone()
            ),
            (3.into(), 4.into(), 5.into())
        );
    }
}

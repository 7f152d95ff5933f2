//! The swarm worker loop and the shard it owns.
//!
//! A [`Shard`] is a share of the torrents (by info hash) with what handling a
//! batch of requests against it needs. Requests reach it one of two ways
//! (`[workers] dispatch`): a socket worker hands a batch to the shard's swarm
//! worker over a channel and gets one response batch back, or the socket
//! worker handles the batch itself under the shard's lock ([`Inline`]). Either
//! way the swarm worker cleans expired peers a slice at a time and answers
//! queries from the stats endpoint.

use std::sync::atomic::{AtomicBool, Ordering::Acquire};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::Mutex;

use super::{Control, RequestBatch, ResponseBatch, SwarmRequest, SwarmResponse, Wakes};
use crate::access::{AccessReader, Ledger};
use crate::protocol::{AnnounceEvent, InfoHash};
use crate::stats::Stats;
use crate::swarm::{NoPeerIds, PeerData, Swarms};

/// Peers looked at per cleaning step. About a tenth of a millisecond of work,
/// so a step between two batches never delays answers noticeably (and, with
/// inline dispatch, never holds the shard's lock for longer).
const CLEAN_BUDGET: usize = 8192;
/// Remote changes applied per prefetch: the size of a socket worker's read
/// batch, whose lookups the prefetch was tuned for.
const APPLY_GROUP: usize = 64;

/// One share of the torrents. `X`: whether its swarms keep peer ids (see
/// [`PeerData`]).
pub struct Shard<X: PeerData = NoPeerIds> {
    pub id: usize,
    pub swarms: Swarms<X>,
    pub stats: Arc<Stats>,
    pub started: Instant,
    /// Last totals per peer, for per-passkey deltas.
    pub ledger: Ledger,
    /// What the batch being handled looks up: each info hash, with the
    /// address of the announcing peer (a reused buffer).
    pub lookups: Vec<(InfoHash, Option<crate::swarm::PeerAddr>)>,
    /// Set by the stats endpoint while `/events` has a subscriber: the
    /// swarms then note which torrents' counts change. Read once per batch.
    pub events_on: Arc<AtomicBool>,
    /// With `[cluster]`: the records of the changes local announces make,
    /// for the cluster thread to publish.
    pub changes: Option<crate::cluster::change::ChangeLog>,
}

/// A shard that socket workers handle batches against themselves, under its
/// lock. The lock is taken once per batch, so it costs one uncontended atomic
/// operation per batch when a shard has one user at a time.
pub trait Inline: Send + Sync {
    /// Handles (and empties) `requests`, appending the answers to `reply`.
    fn handle(&self, requests: &mut Vec<SwarmRequest>, reply: &mut ResponseBatch);
}

impl<X: PeerData + Send> Inline for Mutex<Shard<X>> {
    fn handle(&self, requests: &mut Vec<SwarmRequest>, reply: &mut ResponseBatch) {
        self.lock().handle(requests, reply);
    }
}

pub struct SwarmWorker<X: PeerData = NoPeerIds> {
    pub shard: Arc<Mutex<Shard<X>>>,
    /// Batches from socket workers, with channel dispatch (with inline
    /// dispatch, `crossbeam_channel::never()`).
    pub requests: Receiver<RequestBatch>,
    /// Queries, new settings and the stop from the main and stats threads.
    pub control: Receiver<Control>,
    /// One sender per socket worker, by index (none with inline dispatch).
    pub responses: Vec<Sender<ResponseBatch>>,
    pub wakes: Wakes,
    pub cleaning_interval: Duration,
    /// The access lists: torrents they refuse are purged by cleaning.
    pub access: AccessReader,
    /// Scratch for the changed torrents' info hashes (`Control::Changes`).
    pub scratch: Vec<InfoHash>,
}

impl<X: PeerData> SwarmWorker<X> {
    pub fn run(mut self) {
        let (id, stats) = {
            let shard = self.shard.lock();
            (shard.id, shard.stats.clone())
        };
        let counters = &stats.swarm[id];
        let mut next_pass = Instant::now() + self.cleaning_interval;
        let mut cleaning = false;
        let mut pass_removed = 0u64;
        self.shard
            .lock()
            .swarms
            .set_filter(self.access.load().filter());
        loop {
            // While a pass runs, come back soon even without requests; and
            // at least once a second to see new access lists (with inline
            // dispatch no batch ever wakes this thread).
            let wait = if cleaning {
                Duration::from_millis(2)
            } else {
                next_pass
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1))
            };
            select! {
                recv(self.requests) -> batch => match batch {
                    Ok(batch) => self.handle(batch),
                    // Every socket worker has gone (they stop first): no
                    // more batches, but the stop comes on `control`.
                    Err(_) => self.requests = crossbeam_channel::never(),
                },
                recv(self.control) -> message => match message {
                    Ok(Control::Stop) => break,
                    Ok(message) => self.control(message),
                    // The tracker was dropped without a stop.
                    Err(_) => break,
                },
                default(wait) => {}
            }
            if let Some(list) = self.access.changed() {
                // New lists: a pass now purges what they refuse.
                self.shard.lock().swarms.set_filter(list.filter());
                next_pass = Instant::now();
            }
            if !cleaning && Instant::now() >= next_pass {
                cleaning = true;
                pass_removed = 0;
            }
            if cleaning {
                let mut shard = self.shard.lock();
                shard.follow_events();
                let now = shard.now();
                let (removed, done) = shard.swarms.clean_step(now, CLEAN_BUDGET);
                pass_removed += removed as u64;
                counters.peers_expired.add(removed as u64);
                let (torrents, peers) = shard.swarms.purged();
                counters.torrents_purged.set(torrents);
                counters.peers_purged.set(peers);
                shard.publish_totals();
                if done {
                    cleaning = false;
                    next_pass = Instant::now() + self.cleaning_interval;
                    shard.ledger.rotate(now);
                    *stats.top[id].lock() = shard.swarms.top().to_vec();
                    log::debug!("swarm-{id}: cleaning pass removed {pass_removed} peers");
                }
            }
        }
        log::debug!("swarm-{id} stopped");
    }

    fn control(&mut self, message: Control) {
        let mut shard = self.shard.lock();
        match message {
            Control::Torrent { info_hash, reply } => {
                let _ = reply.try_send(shard.swarms.scrape(&info_hash));
            }
            Control::Changes { reply } => {
                shard.follow_events();
                let mut changed = Vec::new();
                let mut hashes = std::mem::take(&mut self.scratch);
                shard.swarms.take_changes(&mut hashes, &mut changed);
                self.scratch = hashes;
                // The stats thread waits for it; if it has gone, the
                // changes are lost with it, and nobody is subscribed.
                let _ = reply.try_send(changed);
            }
            Control::Config(config) => {
                if let Some(log) = &mut shard.changes {
                    log.set_peer_timeout(config.peer_timeout);
                }
                shard.swarms.set_config(config)
            }
            Control::Apply(batch) => shard.apply_remote(&batch),
            Control::Stop => {}
        }
    }

    fn handle(&mut self, batch: RequestBatch) {
        let RequestBatch {
            from,
            mut requests,
            mut reply,
        } = batch;
        self.shard.lock().handle(&mut requests, &mut reply);
        reply.spare = requests;
        // The socket worker always drains its channel, so a blocking send
        // only waits while it is busy; it cannot deadlock.
        if self.responses[from].send(reply).is_ok() {
            self.wakes[from].after_send();
        }
    }
}

impl<X: PeerData> Shard<X> {
    fn now(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    /// Starts or stops noting changed torrents as the `/events` feed has
    /// subscribers or not: one load, and a change only when it flips.
    #[inline]
    fn follow_events(&mut self) {
        let on = self.events_on.load(Acquire);
        if on != self.swarms.tracking_changes() {
            self.swarms.track_changes(on);
        }
    }

    /// Copies the running totals to the counters: a few stores, cheap
    /// enough to do after every batch.
    fn publish_totals(&self) {
        let t = self.swarms.gauges();
        let c = &self.stats.swarm[self.id];
        c.torrents.set(t.torrents);
        c.torrents_full.set(self.swarms.refused_full());
        c.peers_v4.set(t.peers_v4);
        c.peers_v6.set(t.peers_v6);
        c.seeders.set(t.seeders);
        c.leechers.set(t.leechers);
    }

    /// Handles (and empties) `requests`, appending the answers to `reply`.
    pub fn handle(&mut self, requests: &mut Vec<SwarmRequest>, reply: &mut ResponseBatch) {
        let now = self.now();
        self.follow_events();
        let counters = &self.stats.swarm[self.id];
        // Start every lookup's cache misses before handling any request:
        // they then overlap (twice the announces per second with a million
        // torrents; `cargo bench --bench swarm -- "batch of 64"`).
        self.lookups.clear();
        for request in requests.iter() {
            match request {
                SwarmRequest::Announce { announce, .. } => {
                    self.lookups.push((announce.info_hash, Some(announce.addr)))
                }
                SwarmRequest::ScrapePart { hashes, .. } => {
                    self.lookups.extend(hashes.iter().map(|(_, h)| (*h, None)))
                }
            }
        }
        self.swarms.prefetch(&self.lookups);
        for request in requests.drain(..) {
            match request {
                SwarmRequest::Announce {
                    origin,
                    announce,
                    account,
                    peer_id,
                } => {
                    counters.announces.inc();
                    let start = reply.peers.len() as u32;
                    let ids_start = reply.peer_ids.len() as u32;
                    let counts = self.swarms.announce_with_id(
                        &announce,
                        &peer_id,
                        now,
                        &mut reply.peers,
                        &mut reply.peer_ids,
                    );
                    if let Some(account) = account {
                        self.ledger.record(&account, &announce, now);
                    }
                    if counts.not_stored {
                        counters.not_stored.inc();
                    }
                    // One branch when alone; a push of ~30 bytes in a
                    // cluster. A peer kept out by a limit is not news.
                    if let Some(log) = &mut self.changes {
                        if !counts.not_stored || announce.event == AnnounceEvent::Stopped {
                            log.record(&announce);
                        }
                    }
                    reply.responses.push(SwarmResponse::Announce {
                        origin,
                        counts,
                        peers: (start, reply.peers.len() as u32),
                        ids: (ids_start, reply.peer_ids.len() as u32),
                    });
                }
                SwarmRequest::ScrapePart { pending, hashes } => {
                    counters.scrapes.inc();
                    let stats = hashes
                        .iter()
                        .map(|(i, h)| (*i, self.swarms.scrape(h)))
                        .collect();
                    reply
                        .responses
                        .push(SwarmResponse::ScrapePart { pending, stats });
                }
            }
        }
        if let Some(log) = &mut self.changes {
            log.flush();
        }
        // Counts first, then answers: whoever sees an answer sees the
        // counts that include it.
        self.publish_totals();
    }

    /// Applies changes from other nodes (never recorded: what a node
    /// applies it does not publish again).
    fn apply_remote(&mut self, batch: &crate::cluster::RemoteBatch) {
        use crate::cluster::change::{next, Change};
        let now = self.now();
        let mut input = &batch.records[..];
        let mut applied = 0u64;
        let mut group: Vec<Change> = Vec::with_capacity(APPLY_GROUP);
        loop {
            group.clear();
            while group.len() < APPLY_GROUP {
                match next(&mut input) {
                    Some((change, _)) => group.push(change),
                    None => break,
                }
            }
            if group.is_empty() {
                break;
            }
            // As for a batch of requests: the cache misses of a group's
            // lookups overlap instead of coming one after another.
            self.lookups.clear();
            self.lookups.extend(group.iter().map(|c| match c {
                Change::Peer {
                    info_hash, addr, ..
                } => (*info_hash, Some(*addr)),
                Change::Completed { info_hash, .. } => (*info_hash, None),
            }));
            self.swarms.prefetch(&self.lookups);
            for change in &group {
                self.swarms.apply_change(change, now);
            }
            applied += group.len() as u64;
        }
        self.publish_totals();
        if let Some(c) = &self.stats.cluster {
            use std::sync::atomic::Ordering::Relaxed;
            c.applied.fetch_add(applied, Relaxed);
            if batch.sent_at_us != 0 {
                let lag = crate::cluster::change::unix_micros().saturating_sub(batch.sent_at_us);
                c.observe_lag(lag, applied);
            }
        }
    }
}

impl<X: PeerData> crate::snapshot::Export for Mutex<Shard<X>> {
    /// A slice under the shard's lock, with time left on the shard's clock.
    fn export(
        &self,
        from: usize,
        budget: usize,
        out: &mut crate::snapshot::Section,
    ) -> Option<usize> {
        let shard = self.lock();
        shard.swarms.export(from, budget, shard.now(), out)
    }
}

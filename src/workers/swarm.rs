//! The swarm worker loop: takes request batches from socket workers, runs
//! them against its share of the torrents, answers each batch with one
//! response batch, and cleans expired peers a slice at a time in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use super::{Control, RequestBatch, ResponseBatch, SwarmRequest, SwarmResponse, Wakes};
use crate::access::{AccessReader, Ledger};
use crate::stats::Stats;
use crate::swarm::{NoPeerIds, PeerData, Swarms};

/// Peers looked at per cleaning step. About a tenth of a millisecond of work,
/// so a step between two batches never delays answers noticeably.
const CLEAN_BUDGET: usize = 8192;

/// `X`: whether its swarms keep peer ids (see [`PeerData`]).
pub struct SwarmWorker<X: PeerData = NoPeerIds> {
    pub id: usize,
    pub swarms: Swarms<X>,
    pub requests: Receiver<RequestBatch>,
    /// Queries and new settings from the main and stats threads.
    pub control: Receiver<Control>,
    /// One sender per socket worker, by index.
    pub responses: Vec<Sender<ResponseBatch>>,
    pub wakes: Wakes,
    pub stats: Arc<Stats>,
    pub cleaning_interval: Duration,
    pub started: Instant,
    /// The access lists: torrents they refuse are purged by cleaning.
    pub access: AccessReader,
    /// Last totals per peer, for per-passkey deltas.
    pub ledger: Ledger,
}

impl<X: PeerData> SwarmWorker<X> {
    pub fn run(mut self) {
        let stats = self.stats.clone();
        let counters = &stats.swarm[self.id];
        let mut next_pass = Instant::now() + self.cleaning_interval;
        let mut cleaning = false;
        let mut pass_removed = 0u64;
        self.swarms.set_filter(self.access.load().filter());
        loop {
            // While a pass runs, come back soon even without requests.
            let wait = if cleaning {
                Duration::from_millis(2)
            } else {
                next_pass.saturating_duration_since(Instant::now())
            };
            select! {
                recv(self.requests) -> batch => match batch {
                    Ok(batch) => self.handle(batch),
                    // Every socket worker has gone: the tracker is stopping.
                    Err(_) => break,
                },
                recv(self.control) -> message => {
                    if let Ok(message) = message {
                        self.control(message);
                    }
                },
                default(wait) => {}
            }
            if let Some(list) = self.access.changed() {
                // New lists: a pass now purges what they refuse.
                self.swarms.set_filter(list.filter());
                next_pass = Instant::now();
            }
            if !cleaning && Instant::now() >= next_pass {
                cleaning = true;
                pass_removed = 0;
            }
            if cleaning {
                let (removed, done) = self.swarms.clean_step(self.now(), CLEAN_BUDGET);
                pass_removed += removed as u64;
                counters.peers_expired.add(removed as u64);
                let (torrents, peers) = self.swarms.purged();
                counters.torrents_purged.set(torrents);
                counters.peers_purged.set(peers);
                self.publish_totals();
                if done {
                    cleaning = false;
                    next_pass = Instant::now() + self.cleaning_interval;
                    self.ledger.rotate(self.now());
                    *self.stats.top[self.id].lock() = self.swarms.top().to_vec();
                    log::debug!(
                        "swarm-{}: cleaning pass removed {pass_removed} peers",
                        self.id
                    );
                }
            }
        }
        log::debug!("swarm-{} stopped", self.id);
    }

    fn now(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    fn control(&mut self, message: Control) {
        match message {
            Control::Torrent { info_hash, reply } => {
                let _ = reply.try_send(self.swarms.scrape(&info_hash));
            }
            Control::Config(config) => self.swarms.set_config(config),
        }
    }

    /// Copies the running totals to the counters: a few stores, cheap
    /// enough to do after every batch.
    fn publish_totals(&self) {
        let t = self.swarms.gauges();
        let c = &self.stats.swarm[self.id];
        c.torrents.set(t.torrents);
        c.peers_v4.set(t.peers_v4);
        c.peers_v6.set(t.peers_v6);
        c.seeders.set(t.seeders);
        c.leechers.set(t.leechers);
    }

    fn handle(&mut self, batch: RequestBatch) {
        let RequestBatch {
            from,
            mut requests,
            reply,
        } = batch;
        let mut reply = reply;
        let now = self.now();
        let counters = &self.stats.swarm[self.id];
        // Start every lookup's cache misses before handling any request:
        // they then overlap (twice the announces per second with a million
        // torrents; `cargo bench --bench swarm -- "batch of 64"`).
        for request in &requests {
            match request {
                SwarmRequest::Announce { announce, .. } => {
                    self.swarms.prefetch(&announce.info_hash)
                }
                SwarmRequest::ScrapePart { hashes, .. } => {
                    for (_, h) in hashes {
                        self.swarms.prefetch(h);
                    }
                }
            }
        }
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
        reply.spare = requests;
        // Counts first, then answers: whoever sees an answer sees the
        // counts that include it.
        self.publish_totals();
        // The socket worker always drains its channel, so a blocking send
        // only waits while it is busy; it cannot deadlock.
        if self.responses[from].send(reply).is_ok() {
            self.wakes[from].after_send();
        }
    }
}

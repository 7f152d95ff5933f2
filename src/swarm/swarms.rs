//! The torrent map of one shard ([`Swarms`]): torrents in a dense vector
//! with a [`DenseIndex`] beside it, the prefetching of a batch's lookups,
//! and the announce and scrape operations on one torrent.

use super::changes::Changes;
use super::completions::RecentCompleters;
use super::peer_set::{Addr, Limits, PeerSet};
use super::{
    Announce, AnnounceCounts, DenseIndex, NoPeerIds, PeerAddr, PeerData, SwarmConfig,
    TorrentFilter, WithPeerIds,
};
use crate::protocol::udp::ScrapeStats;
use crate::protocol::{AnnounceEvent, InfoHash, PeerId};

/// One torrent: its IPv4 and IPv6 peers and (in `v4`) its completed count.
#[derive(Debug, Default)]
pub(super) struct Torrent<X> {
    pub(super) v4: PeerSet<[u8; 6], X>,
    pub(super) v6: Option<Box<PeerSet<[u8; 18], X>>>,
}

impl<X: PeerData> Torrent<X> {
    pub(super) fn is_empty(&self) -> bool {
        self.v4.len() == 0 && self.v6.as_ref().is_none_or(|s| s.len() == 0)
    }

    pub(super) fn counts(&self) -> (u32, u32) {
        let (mut seeders, mut leechers) = (self.v4.seeders(), self.v4.leechers);
        if let Some(v6) = &self.v6 {
            seeders += v6.seeders();
            leechers += v6.leechers;
        }
        (seeders, leechers)
    }
}

/// All torrents of one swarm worker.
pub struct Swarms<X = NoPeerIds> {
    pub(super) config: SwarmConfig,
    pub(super) torrents: Vec<(InfoHash, Torrent<X>)>,
    pub(super) index: DenseIndex,
    pub(super) hasher: ahash::RandomState,
    pub(super) rng: fastrand::Rng,
    /// Where the next cleaning step starts.
    pub(super) clean_cursor: usize,
    /// Running totals, kept up to date by every change so that reading them
    /// never walks the torrents.
    pub(super) gauges: Gauges,
    /// The largest torrents seen by the cleaning pass under way.
    pub(super) top_in_pass: Vec<(InfoHash, ScrapeStats)>,
    /// The largest torrents of the last finished pass, largest first.
    pub(super) top: Vec<(InfoHash, ScrapeStats)>,
    pub(super) top_len: usize,
    /// Torrents that fail it are purged by the cleaning pass (access lists).
    pub(super) filter: Option<TorrentFilter>,
    /// Torrents and peers purged by `filter`, since the start.
    pub(super) purged: (u64, u64),
    /// Scratch for [`Swarms::prefetch`]: the torrent position each request
    /// probably has.
    pub(super) candidates: Vec<u32>,
    /// Who completed which torrent lately: one completion per address,
    /// torrent and peer timeout counts.
    pub(super) completers: RecentCompleters,
    /// Announces for new torrents refused because the table was full
    /// (`max_torrents`), since the start.
    pub(super) refused_full: u64,
    /// One log line a minute while the table stays full.
    pub(super) full_log: crate::log_limit::LogLimit,
    /// Torrents whose counts changed, while the `/events` feed is on.
    pub(super) changes: Changes,
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Gauges {
    pub(super) peers_v4: u64,
    pub(super) peers_v6: u64,
    pub(super) seeders: u64,
}

impl Swarms<NoPeerIds> {
    /// Swarms that keep no peer ids.
    pub fn new(config: SwarmConfig) -> Self {
        Self::build(config)
    }
}

impl Swarms<WithPeerIds> {
    /// Swarms that keep each peer's id (20 bytes more per peer).
    pub fn with_peer_ids(config: SwarmConfig) -> Self {
        Self::build(config)
    }
}

impl<X: PeerData> Swarms<X> {
    pub(super) fn build(config: SwarmConfig) -> Self {
        Swarms {
            config,
            torrents: Vec::new(),
            index: DenseIndex::default(),
            hasher: ahash::RandomState::new(),
            rng: fastrand::Rng::new(),
            clean_cursor: 0,
            gauges: Gauges::default(),
            top_in_pass: Vec::new(),
            top: Vec::new(),
            top_len: 100,
            filter: None,
            purged: (0, 0),
            candidates: Vec::new(),
            completers: RecentCompleters::default(),
            refused_full: 0,
            full_log: crate::log_limit::LogLimit::per_minute(),
            changes: Changes::default(),
        }
    }

    /// The settings in force (for tests that build what a shard would).
    #[cfg(test)]
    pub(crate) fn config(&self) -> &SwarmConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: SwarmConfig) {
        self.config = config;
    }

    /// Starts loading what the announces and scrapes of a batch will read.
    ///
    /// Why: with a million torrents, finding one is two cache misses (the
    /// index, then the torrent), and they dominate an announce. Called for
    /// every request of a batch before any is handled, the misses of
    /// different requests overlap instead of coming one after another.
    ///
    /// In passes, so that nothing waits on what it just asked for: the
    /// first starts loading every index slot; the second reads them (by then
    /// in cache, or on their way) and starts loading the torrents they point
    /// at, without comparing keys (see [`DenseIndex::candidate`]); for an
    /// IPv4 announce (a request with an address), the third starts loading
    /// the swarm's peer vector or, in a large swarm, its index, and the
    /// fourth the index slot where the lookup of the announcing peer begins.
    /// (IPv6 sets sit behind one more pointer, and are rarer: not
    /// prefetched.)
    pub fn prefetch(&mut self, requests: &[(InfoHash, Option<PeerAddr>)]) {
        for (h, _) in requests {
            self.index.prefetch(self.hasher.hash_one(h));
        }
        self.candidates.clear();
        for (h, _) in requests {
            let pos = self.index.candidate(self.hasher.hash_one(h));
            if let Some(entry) = pos.and_then(|pos| self.torrents.get(pos)) {
                crate::sys::prefetch(entry);
                crate::sys::prefetch(
                    (entry as *const (InfoHash, Torrent<X>)).wrapping_byte_add(64),
                );
            }
            self.candidates.push(pos.map_or(u32::MAX, |p| p as u32));
        }
        let v4_sets = || {
            requests
                .iter()
                .zip(&self.candidates)
                .filter_map(|((_, addr), &pos)| match addr {
                    Some(PeerAddr::V4(a)) => {
                        let set = &self.torrents.get(pos as usize)?.1.v4;
                        Some((set, a))
                    }
                    _ => None,
                })
        };
        for (set, _) in v4_sets() {
            match &set.index {
                Some(index) => crate::sys::prefetch(&**index),
                None if set.peers.spilled() => crate::sys::prefetch(set.peers.as_ptr()),
                None => {}
            }
        }
        for (set, addr) in v4_sets() {
            if let Some(index) = &set.index {
                index.prefetch(self.hasher.hash_one(addr));
            }
        }
    }

    pub(super) fn find(&self, info_hash: &InfoHash) -> Option<usize> {
        let torrents = &self.torrents;
        self.index.find(self.hasher.hash_one(info_hash), |p| {
            torrents[p].0 == *info_hash
        })
    }

    pub(super) fn insert_torrent(&mut self, info_hash: InfoHash) -> usize {
        let pos = self.torrents.len();
        if pos == self.torrents.capacity() {
            self.torrents.reserve(1);
            crate::sys::huge_pages(self.torrents.as_ptr(), self.torrents.capacity());
        }
        self.torrents.push((info_hash, Torrent::default()));
        self.index.insert(self.hasher.hash_one(info_hash), pos);
        pos
    }

    pub(super) fn remove_torrent(&mut self, pos: usize) {
        let hasher = &self.hasher;
        self.index
            .remove(hasher.hash_one(self.torrents[pos].0), pos);
        let last = self.torrents.len() - 1;
        if pos != last {
            self.index
                .relocate(hasher.hash_one(self.torrents[last].0), last, pos);
        }
        self.torrents.swap_remove(pos);
        self.index.shrink();
        if self.torrents.capacity() > 1024 && self.torrents.len() < self.torrents.capacity() / 4 {
            self.torrents.shrink_to(self.torrents.len() * 2);
        }
    }

    /// Handles an announce at time `now` (seconds on the caller's clock) and
    /// appends the chosen peers, in compact form, to `out`.
    pub fn announce(&mut self, req: &Announce, now: u32, out: &mut Vec<u8>) -> AnnounceCounts {
        self.announce_with_id(req, &PeerId::default(), now, out, &mut Vec::new())
    }

    /// [`Swarms::announce`], for a peer with `peer_id`; when the swarms keep
    /// peer ids, the chosen peers' ids are appended to `ids`, 20 bytes each,
    /// in the order of their addresses in `out`.
    pub fn announce_with_id(
        &mut self,
        req: &Announce,
        peer_id: &PeerId,
        now: u32,
        out: &mut Vec<u8>,
        ids: &mut Vec<u8>,
    ) -> AnnounceCounts {
        let n = if req.num_want <= 0 {
            self.config.default_numwant
        } else {
            req.num_want as usize
        }
        .min(self.config.max_numwant);
        let expiry = now.saturating_add(self.config.peer_timeout);
        self.announce_at(req, X::from_peer_id(peer_id), now, expiry, n, out, ids)
    }

    /// An announce whose peer expires at `expiry` and wants `n` peers: the
    /// one path of local announces and of changes from other nodes of a
    /// cluster (`super::remote`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn announce_at(
        &mut self,
        req: &Announce,
        id: X,
        now: u32,
        expiry: u32,
        n: usize,
        out: &mut Vec<u8>,
        ids: &mut Vec<u8>,
    ) -> AnnounceCounts {
        let pos = match self.find(&req.info_hash) {
            Some(pos) => pos,
            None if req.event == AnnounceEvent::Stopped => return AnnounceCounts::default(),
            None if self.config.max_torrents != 0
                && self.torrents.len() >= self.config.max_torrents =>
            {
                // Full: an empty answer and nothing stored, so that new
                // torrents can't grow memory past the operator's bound.
                self.refused_full += 1;
                let max = self.config.max_torrents;
                self.full_log.log(|left_out| {
                    log::warn!(
                        "torrent table full ({max} torrents, [swarm] max_torrents): announces \
                         for new torrents are answered with no peers and not stored \
                         ({left_out} more since the last line)"
                    )
                });
                return AnnounceCounts {
                    not_stored: true,
                    ..AnnounceCounts::default()
                };
            }
            None => self.insert_torrent(req.info_hash),
        };
        let max_peers = self.config.max_peers_per_torrent;
        let torrent = &mut self.torrents[pos].1;
        // The limit is on the torrent, both families together: each family
        // may hold what the other leaves.
        let room = |others: usize| match max_peers {
            0 => usize::MAX,
            max => max.saturating_sub(others),
        };
        let limits = |max_peers| Limits {
            max_peers,
            per_host: self.config.max_peers_per_address,
        };
        let room_v4 = limits(room(torrent.v6.as_ref().map_or(0, |s| s.len())));
        let room_v6 = limits(room(torrent.v4.len()));
        let near = |prefix| self.config.prefer_same_subnet.then_some(prefix);
        let (near_v4, near_v6) = (
            near(self.config.subnet_prefix_v4),
            near(self.config.subnet_prefix_v6),
        );
        let before = torrent.shape();
        let completed_before = torrent.v4.completed;
        let (peers, completed, not_stored) = match req.addr {
            PeerAddr::V4(a) => torrent.v4.announce(
                a,
                id,
                req.event,
                req.seeder,
                expiry,
                n,
                room_v4,
                near_v4,
                &self.hasher,
                &mut self.rng,
                out,
                ids,
            ),
            PeerAddr::V6(a) => {
                if torrent.v6.is_none() && req.event == AnnounceEvent::Stopped {
                    (0, false, false)
                } else {
                    torrent.v6.get_or_insert_with(Default::default).announce(
                        a,
                        id,
                        req.event,
                        req.seeder,
                        expiry,
                        n,
                        room_v6,
                        near_v6,
                        &self.hasher,
                        &mut self.rng,
                        out,
                        ids,
                    )
                }
            }
        };
        if completed {
            // Counted once per address (an IPv6 /64) and torrent per peer
            // timeout, however often it completes, stops and completes.
            let pair = match req.addr {
                PeerAddr::V4(a) => self.hasher.hash_one((req.info_hash, a.host())),
                PeerAddr::V6(a) => self.hasher.hash_one((req.info_hash, a.host())),
            };
            if self.completers.first(pair, now, self.config.peer_timeout) {
                torrent.v4.completed = torrent.v4.completed.saturating_add(1);
            }
        }
        let (seeders, leechers) = torrent.counts();
        let after = torrent.shape();
        self.gauges.apply(before, after);
        if self.changes.on() && (before != after || torrent.v4.completed != completed_before) {
            self.changes.mark(req.info_hash);
        }
        if torrent.is_empty() && torrent.v4.completed == 0 {
            // Nothing worth keeping: drop it now rather than at the next
            // cleaning pass.
            self.remove_torrent(pos);
        }
        AnnounceCounts {
            seeders,
            leechers,
            peers,
            not_stored,
        }
    }

    /// Starts or stops noting which torrents' counts change (for the
    /// `/events` feed); stopping forgets what was noted.
    pub fn track_changes(&mut self, on: bool) {
        self.changes.track(on);
    }

    /// Whether changed torrents are being noted.
    #[inline]
    pub fn tracking_changes(&self) -> bool {
        self.changes.on()
    }

    /// The torrents whose counts changed since the last call (or since
    /// tracking started), with their counts now: zeros for a torrent that
    /// is gone. `hashes` is scratch space.
    pub fn take_changes(
        &mut self,
        hashes: &mut Vec<InfoHash>,
        out: &mut Vec<(InfoHash, ScrapeStats)>,
    ) {
        self.changes.take(hashes);
        out.extend(hashes.iter().map(|h| (*h, self.scrape(h))));
    }

    /// Seeders, completed and leechers of one torrent; zeros if unknown.
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeStats {
        match self.find(info_hash) {
            Some(pos) => {
                let t = &self.torrents[pos].1;
                let (seeders, leechers) = t.counts();
                ScrapeStats {
                    seeders,
                    completed: t.v4.completed,
                    leechers,
                }
            }
            None => ScrapeStats::default(),
        }
    }
}

//! Cleaning, a slice at a time: expired peers and empty torrents go,
//! torrents the access lists refuse are purged, and each pass remembers the
//! largest torrents. Also the running totals that cleaning and announces
//! keep up to date.

use super::peer_set::PeerSet;
use super::swarms::{Gauges, Torrent};
use super::{PeerData, Swarms, TorrentFilter, Totals};
use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;

impl<X: PeerData> Swarms<X> {
    /// Sets the test torrents must pass to stay; the next cleaning passes
    /// purge those that fail it, peers and counts.
    pub fn set_filter(&mut self, filter: Option<TorrentFilter>) {
        self.filter = filter;
    }

    /// (torrents, peers) purged by the filter since the start.
    pub fn purged(&self) -> (u64, u64) {
        self.purged
    }

    /// How many of the largest torrents a cleaning pass remembers (see
    /// [`Swarms::top`]).
    pub fn set_top_len(&mut self, n: usize) {
        self.top_len = n;
    }

    /// The largest torrents (by peers) as of the last finished cleaning
    /// pass, largest first.
    pub fn top(&self) -> &[(InfoHash, ScrapeStats)] {
        &self.top
    }

    /// Remembers `t` if it is among the largest of the pass under way.
    fn consider_top(&mut self, hash: InfoHash, stats: ScrapeStats) {
        let size = |s: &ScrapeStats| s.seeders as u64 + s.leechers as u64;
        if self.top_len == 0 || size(&stats) == 0 {
            return;
        }
        if self.top_in_pass.len() < self.top_len {
            self.top_in_pass.push((hash, stats));
            return;
        }
        // A linear scan for the smallest: top_len is small, and a torrent
        // only gets here when it beats it.
        if let Some((i, smallest)) = self
            .top_in_pass
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, s))| size(s))
        {
            if size(&stats) > size(&smallest.1) {
                self.top_in_pass[i] = (hash, stats);
            }
        }
    }

    /// One step of cleaning: visits torrents from the cursor until about
    /// `budget` peers were looked at, removes peers whose expiry is before
    /// `now` and torrents left without peers. Returns `(peers removed,
    /// pass finished)`; the next call after a finished pass starts again at
    /// the first torrent.
    pub fn clean_step(&mut self, now: u32, budget: usize) -> (usize, bool) {
        let mut seen = 0;
        let mut removed = 0;
        while self.clean_cursor < self.torrents.len() {
            let pos = self.clean_cursor;
            let purge = self
                .filter
                .as_ref()
                .is_some_and(|keep| !keep(&self.torrents[pos].0));
            let torrent = &mut self.torrents[pos].1;
            let before = torrent.shape();
            if purge {
                self.purged.0 += 1;
                self.purged.1 += before.0 + before.1;
                torrent.v4 = PeerSet::default();
                torrent.v6 = None;
            }
            seen += torrent.v4.len() + 1;
            removed += torrent.v4.clean(now, &self.hasher);
            if let Some(v6) = &mut torrent.v6 {
                seen += v6.len();
                removed += v6.clean(now, &self.hasher);
                if v6.len() == 0 {
                    torrent.v6 = None;
                }
            }
            let after = torrent.shape();
            self.gauges.apply(before, after);
            if before != after {
                let hash = self.torrents[pos].0;
                self.changes.mark(hash);
            }
            let torrent = &self.torrents[pos].1;
            if torrent.is_empty() {
                // The last torrent moves into `pos`: look at `pos` again.
                self.remove_torrent(pos);
            } else {
                let (seeders, leechers) = torrent.counts();
                let stats = ScrapeStats {
                    seeders,
                    completed: torrent.v4.completed,
                    leechers,
                };
                let hash = self.torrents[pos].0;
                self.consider_top(hash, stats);
                self.clean_cursor += 1;
            }
            if seen >= budget {
                return (removed, false);
            }
        }
        self.clean_cursor = 0;
        let size = |s: &ScrapeStats| s.seeders as u64 + s.leechers as u64;
        self.top_in_pass
            .sort_unstable_by_key(|(h, s)| (std::cmp::Reverse(size(s)), *h));
        std::mem::swap(&mut self.top, &mut self.top_in_pass);
        self.top_in_pass.clear();
        (removed, true)
    }

    /// Totals over all torrents, kept as they change: O(1).
    pub fn gauges(&self) -> Totals {
        let g = self.gauges;
        Totals {
            torrents: self.torrents.len() as u64,
            peers_v4: g.peers_v4,
            peers_v6: g.peers_v6,
            seeders: g.seeders,
            leechers: g.peers_v4 + g.peers_v6 - g.seeders,
        }
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            torrents: self.torrents.len() as u64,
            ..Totals::default()
        };
        for (_, torrent) in &self.torrents {
            t.peers_v4 += torrent.v4.len() as u64;
            if let Some(v6) = &torrent.v6 {
                t.peers_v6 += v6.len() as u64;
            }
            let (s, l) = torrent.counts();
            t.seeders += s as u64;
            t.leechers += l as u64;
        }
        t
    }

    /// Announces for new torrents refused because the torrent table was
    /// full (`max_torrents`), since the start.
    pub fn refused_full(&self) -> u64 {
        self.refused_full
    }

    /// Bytes of the torrent table: the vector of torrents (with the
    /// first two IPv4 peers of each, inline) and its index. Peers beyond
    /// those live in their own allocations, not counted here.
    pub fn table_bytes(&self) -> usize {
        self.torrents.capacity() * std::mem::size_of::<(InfoHash, Torrent<X>)>()
            + self.index.heap_bytes()
    }

    /// Torrent count without walking the peers.
    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }
}

impl<X: PeerData> Torrent<X> {
    /// (IPv4 peers, IPv6 peers, seeders)
    pub(super) fn shape(&self) -> (u64, u64, u64) {
        let v6 = self.v6.as_ref().map_or(0, |s| s.len());
        (self.v4.len() as u64, v6 as u64, self.counts().0 as u64)
    }
}

impl Gauges {
    pub(super) fn apply(&mut self, before: (u64, u64, u64), after: (u64, u64, u64)) {
        self.peers_v4 = self.peers_v4 + after.0 - before.0;
        self.peers_v6 = self.peers_v6 + after.1 - before.1;
        self.seeders = self.seeders + after.2 - before.2;
    }
}

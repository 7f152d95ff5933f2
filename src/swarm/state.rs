//! A shard's swarms to and from a snapshot: [`Swarms::export`] encodes a
//! slice of the torrents at a time (so a running shard's lock is held only
//! briefly), [`Swarms::restore_torrent`] and [`Swarms::restore_peer`] put
//! them back, through the same inserts announces use, so every index and
//! count is rebuilt as announces would have built it.

use super::peer_set::{Addr, Limits, Peer, PeerSet};
use super::{PeerAddr, PeerData, Swarms};
use crate::protocol::InfoHash;
use crate::snapshot::Section;

impl<X: PeerData> Swarms<X> {
    /// Encodes the torrents from position `from` on into `out`, until about
    /// `budget` peers are written, with each peer's time left at `now`
    /// (swarm clock). Returns where the next slice starts, or None when the
    /// last torrent was written.
    ///
    /// Between two slices the shard may change: a torrent removed moves the
    /// last one into its place, which a snapshot in progress may then miss
    /// or write twice (the loader merges duplicates). A snapshot of a
    /// stopped shard is exact.
    pub fn export(&self, from: usize, budget: usize, now: u32, out: &mut Section) -> Option<usize> {
        let mut pos = from;
        let mut seen = 0;
        while let Some((hash, t)) = self.torrents.get(pos) {
            let v6 = t.v6.as_deref();
            out.torrent(hash, t.v4.completed, t.v4.len(), v6.map_or(0, |s| s.len()));
            export_set(&t.v4, now, out);
            if let Some(v6) = v6 {
                export_set(v6, now, out);
            }
            seen += 1 + t.v4.len() + v6.map_or(0, |s| s.len());
            pos += 1;
            if seen >= budget {
                break;
            }
        }
        (pos < self.torrents.len()).then_some(pos)
    }

    /// A torrent from a snapshot: found or added, its completed count
    /// raised to `completed`. Returns its position for
    /// [`Swarms::restore_peer`] (valid until a torrent is removed), or None
    /// when the table is full (`max_torrents`).
    pub fn restore_torrent(&mut self, info_hash: InfoHash, completed: u32) -> Option<usize> {
        let pos = match self.find(&info_hash) {
            Some(pos) => pos,
            None if self.config.max_torrents != 0
                && self.torrents.len() >= self.config.max_torrents =>
            {
                return None
            }
            None => self.insert_torrent(info_hash),
        };
        let c = &mut self.torrents[pos].1.v4.completed;
        *c = (*c).max(completed);
        Some(pos)
    }

    /// A peer of the torrent at `pos`, expiring at `expiry` (swarm clock).
    /// Within the limits of the configuration (which may have changed since
    /// the snapshot); a peer already there is kept as it is. True if
    /// stored.
    pub fn restore_peer(
        &mut self,
        pos: usize,
        addr: PeerAddr,
        seeder: bool,
        expiry: u32,
        id: X,
    ) -> bool {
        let max = self.config.max_peers_per_torrent;
        let per_host = self.config.max_peers_per_address;
        let Some((_, torrent)) = self.torrents.get_mut(pos) else {
            return false;
        };
        let before = torrent.shape();
        let v6_len = torrent.v6.as_ref().map_or(0, |s| s.len());
        let v4_len = torrent.v4.len();
        let room = |others: usize| match max {
            0 => usize::MAX,
            max => max.saturating_sub(others),
        };
        let hasher = &self.hasher;
        let stored = match addr {
            PeerAddr::V4(a) => {
                let limits = Limits {
                    max_peers: room(v6_len),
                    per_host,
                };
                torrent.v4.restore(a, seeder, expiry, id, limits, hasher)
            }
            PeerAddr::V6(a) => {
                let limits = Limits {
                    max_peers: room(v4_len),
                    per_host,
                };
                let set = torrent.v6.get_or_insert_with(Default::default);
                let stored = set.restore(a, seeder, expiry, id, limits, hasher);
                if set.len() == 0 {
                    torrent.v6 = None;
                }
                stored
            }
        };
        self.gauges.apply(before, torrent.shape());
        stored
    }
}

fn export_set<A: Addr, X: PeerData>(set: &PeerSet<A, X>, now: u32, out: &mut Section) {
    for (i, p) in set.peers.iter().enumerate() {
        let seeder = i >= set.leechers as usize;
        out.peer(
            p.addr.as_ref(),
            seeder,
            p.expiry().saturating_sub(now),
            p.id.as_ref(),
        );
    }
}

impl<A: Addr, X: PeerData> PeerSet<A, X> {
    fn restore(
        &mut self,
        addr: A,
        seeder: bool,
        expiry: u32,
        id: X,
        limits: Limits,
        hasher: &ahash::RandomState,
    ) -> bool {
        if self.len() >= limits.max_peers || self.find(&addr, hasher).is_some() {
            return false;
        }
        if limits.per_host != 0 && self.host_count(&addr.host(), hasher) >= limits.per_host {
            return false;
        }
        let peer = Peer {
            addr,
            expiry: expiry.to_ne_bytes(),
            id,
        };
        self.insert(peer, seeder, hasher);
        true
    }
}

//! One torrent's peers of one address family: the dense vector of compact
//! peers (leechers first, seeders after), its hash index once it is large,
//! the announce of one peer into it, the random choice of peers to send
//! back, and the removal of expired peers.

use smallvec::SmallVec;

use super::hosts::{crowded, HostCounts, Large, SAMPLE};
use super::subnets::Subnets;
use super::{PeerData, PeerIndex, INDEX_FROM};
use crate::protocol::AnnounceEvent;

/// A compact peer address: IPv4 (6 bytes) or IPv6 (18 bytes), port last.
pub(super) trait Addr: Copy + Eq + std::hash::Hash + AsRef<[u8]> + std::fmt::Debug {
    /// What the peers of one host (or one network) share, for the
    /// per-address share of a swarm.
    type Host: Copy + Eq + std::hash::Hash + std::fmt::Debug;
    fn host(&self) -> Self::Host;
    /// The address's network of `prefix` bits, for `prefer_same_subnet`.
    type Net: Copy + Eq + std::hash::Hash + std::fmt::Debug;
    fn net(&self, prefix: u8) -> Self::Net;
}

impl Addr for [u8; 6] {
    /// The IPv4 address.
    type Host = [u8; 4];
    #[inline]
    fn host(&self) -> [u8; 4] {
        [self[0], self[1], self[2], self[3]]
    }
    type Net = u32;
    #[inline]
    fn net(&self, prefix: u8) -> u32 {
        // A shift by the whole width is `None`: /0, every address one net.
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32)));
        u32::from_be_bytes(self.host()) & mask.unwrap_or(0)
    }
}

impl Addr for [u8; 18] {
    /// The /64 prefix: one host or home network is given a whole /64, and
    /// can announce from as many of its addresses as it likes.
    type Host = [u8; 8];
    #[inline]
    fn host(&self) -> [u8; 8] {
        let mut h = [0; 8];
        h.copy_from_slice(&self[..8]);
        h
    }
    type Net = u128;
    #[inline]
    fn net(&self, prefix: u8) -> u128 {
        let mut ip = [0; 16];
        ip.copy_from_slice(&self[..16]);
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128)));
        u128::from_be_bytes(ip) & mask.unwrap_or(0)
    }
}

/// What one family's peer set may hold in the announce at hand.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Peers in all (`usize::MAX`: no limit).
    pub(super) max_peers: usize,
    /// Peers of one host (0: no limit).
    pub(super) per_host: usize,
}

/// A peer: compact address and the time (seconds on the swarm clock) after
/// which it expires. Alignment 1 keeps an IPv4 peer at 10 bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer<A, X> {
    pub(super) addr: A,
    pub(super) expiry: [u8; 4],
    pub(super) id: X,
}

impl<A, X> Peer<A, X> {
    #[inline]
    pub(super) fn expiry(&self) -> u32 {
        u32::from_ne_bytes(self.expiry)
    }
}

/// The peers of one address family in one torrent.
#[derive(Debug)]
pub(super) struct PeerSet<A: Addr, X> {
    /// Leechers at `0..leechers`, seeders after.
    pub(super) peers: SmallVec<[Peer<A, X>; 2]>,
    pub(super) leechers: u32,
    /// The torrent's count of completed downloads, kept in its IPv4 set
    /// only (0 in the IPv6 one): here it fills the 4 bytes of padding after
    /// `leechers`, which makes every torrent 8 bytes smaller (88 to 80 with
    /// its info hash) than a field of the torrent would.
    pub(super) completed: u32,
    /// Past [`INDEX_FROM`] peers: the hash index and the peers per host.
    pub(super) index: Option<Box<Large<A>>>,
}

impl<A: Addr, X> Default for PeerSet<A, X> {
    fn default() -> Self {
        PeerSet {
            peers: SmallVec::new(),
            leechers: 0,
            completed: 0,
            index: None,
        }
    }
}

impl<A: Addr, X: PeerData> PeerSet<A, X> {
    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn seeders(&self) -> u32 {
        self.peers.len() as u32 - self.leechers
    }

    pub(super) fn find(&self, addr: &A, hasher: &ahash::RandomState) -> Option<usize> {
        match &self.index {
            Some(index) => index.find(hasher.hash_one(addr), |p| self.peers[p].addr == *addr),
            None => self.peers.iter().position(|p| p.addr == *addr),
        }
    }

    /// Moves the element at `from` to `to` (overwriting `to`).
    pub(super) fn relocate(&mut self, from: usize, to: usize, hasher: &ahash::RandomState) {
        if from == to {
            return;
        }
        self.peers[to] = self.peers[from];
        if let Some(index) = &mut self.index {
            index.relocate(hasher.hash_one(self.peers[to].addr), from, to);
        }
    }

    pub(super) fn push_indexed(
        &mut self,
        peer: Peer<A, X>,
        at: usize,
        hasher: &ahash::RandomState,
    ) {
        debug_assert!(at <= self.peers.len());
        if at == self.peers.len() {
            self.peers.push(peer);
        } else {
            self.peers[at] = peer;
        }
        if let Some(index) = &mut self.index {
            let peers = &self.peers;
            index.insert(hasher.hash_one(peer.addr), at, |p| {
                hasher.hash_one(peers[p].addr)
            });
            index.hosts.add(peer.addr.host(), hasher);
        } else if self.peers.len() > INDEX_FROM {
            let mut index = PeerIndex::with_capacity(self.peers.len() * 2);
            index.rebuild(self.peers.iter().map(|p| hasher.hash_one(p.addr)));
            let hosts = HostCounts::new(self.peers.iter().map(|p| p.addr.host()), hasher);
            self.index = Some(Box::new(Large {
                index,
                hosts,
                subnets: None,
            }));
        }
    }

    pub(super) fn insert(&mut self, peer: Peer<A, X>, seeder: bool, hasher: &ahash::RandomState) {
        if seeder {
            self.push_indexed(peer, self.peers.len(), hasher);
        } else {
            let first_seeder = self.leechers as usize;
            if first_seeder < self.peers.len() {
                // Move the first seeder to the end to make room.
                let moved = self.peers[first_seeder];
                self.peers.push(moved);
                let end = self.peers.len() - 1;
                if let Some(index) = &mut self.index {
                    index.relocate(hasher.hash_one(moved.addr), first_seeder, end);
                }
            }
            self.push_indexed(peer, first_seeder, hasher);
            self.leechers += 1;
        }
        if let Some(subnets) = self.subnets_mut() {
            subnets.add(peer.addr, seeder, hasher);
        }
    }

    /// Swaps the elements at `a` and `b`.
    pub(super) fn swap(&mut self, a: usize, b: usize, hasher: &ahash::RandomState) {
        if a == b {
            return;
        }
        if let Some(index) = &mut self.index {
            let (ha, hb) = (
                hasher.hash_one(self.peers[a].addr),
                hasher.hash_one(self.peers[b].addr),
            );
            index.swap(ha, a, hb, b);
        }
        self.peers.swap(a, b);
    }

    /// Turns the leecher at `pos` into a seeder or the other way round, by
    /// moving it across the border between the two; returns where it went.
    /// One swap: a peer that completes, or a client that reports its state
    /// differently from one announce to the next, moves nothing else.
    pub(super) fn flip(&mut self, pos: usize, hasher: &ahash::RandomState) -> usize {
        let addr = self.peers[pos].addr;
        if let Some(subnets) = self.subnets_mut() {
            subnets.flip(&addr, hasher);
        }
        let leechers = self.leechers as usize;
        if pos < leechers {
            // The last leecher takes its place; it becomes the first seeder.
            self.swap(pos, leechers - 1, hasher);
            self.leechers -= 1;
            leechers - 1
        } else {
            // The first seeder takes its place; it becomes the last leecher.
            self.swap(pos, leechers, hasher);
            self.leechers += 1;
            leechers
        }
    }

    pub(super) fn remove(&mut self, pos: usize, hasher: &ahash::RandomState) {
        if let Some(index) = &mut self.index {
            let peers = &self.peers;
            index.remove(hasher.hash_one(peers[pos].addr), pos, |p| {
                hasher.hash_one(peers[p].addr)
            });
            index.hosts.remove(&peers[pos].addr.host(), hasher);
            if let Some(subnets) = &mut index.subnets {
                subnets.remove(&peers[pos].addr, hasher);
            }
        }
        let last = self.peers.len() - 1;
        if pos < self.leechers as usize {
            let last_leecher = self.leechers as usize - 1;
            self.relocate(last_leecher, pos, hasher);
            self.relocate(last, last_leecher, hasher);
            self.leechers -= 1;
        } else {
            self.relocate(last, pos, hasher);
        }
        self.peers.pop();
        self.after_shrink(hasher);
    }

    pub(super) fn after_shrink(&mut self, hasher: &ahash::RandomState) {
        let len = self.peers.len();
        if self.index.is_some() && len <= INDEX_FROM / 2 {
            self.index = None;
        }
        if let Some(index) = &mut self.index {
            let peers = &self.peers;
            index.shrink(|p| hasher.hash_one(peers[p].addr));
        }
        if self.peers.spilled() && len < self.peers.capacity() / 4 {
            self.peers.shrink_to_fit();
        }
    }

    /// Appends up to `n` peers to `out`, chosen from a random start and run
    /// on from there, wrapping. A seeder (`for_seeder`) is sent only
    /// leechers; `skip` is the announcing peer's own position.
    pub(super) fn select(
        &self,
        for_seeder: bool,
        skip: Option<usize>,
        n: usize,
        rng: &mut fastrand::Rng,
        out: &mut Vec<u8>,
        ids: &mut Vec<u8>,
    ) -> u32 {
        let (range, skip, take) = self.selection(for_seeder, skip, n);
        self.walk(range, take, |i, _| Some(i) != skip, rng, out, ids) as u32
    }

    /// What a selection may choose from: the first `range` entries (a
    /// seeder gets only leechers, which come first), the announcer's own
    /// entry if it is among them (`skip`), and how many to `take` (at most
    /// `n`, and never the announcer).
    pub(super) fn selection(
        &self,
        for_seeder: bool,
        skip: Option<usize>,
        n: usize,
    ) -> (usize, Option<usize>, usize) {
        let range = if for_seeder {
            self.leechers as usize
        } else {
            self.peers.len()
        };
        let skip = skip.filter(|&s| s < range);
        (range, skip, n.min(range - skip.is_some() as usize))
    }

    /// Handles one announce from `addr`, within `limits`; with `near`, the
    /// reply prefers peers in `addr`'s subnet of that many bits.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn announce(
        &mut self,
        addr: A,
        id: X,
        event: AnnounceEvent,
        seeder: bool,
        expiry: u32,
        n: usize,
        limits: Limits,
        near: Option<u8>,
        hasher: &ahash::RandomState,
        rng: &mut fastrand::Rng,
        out: &mut Vec<u8>,
        ids: &mut Vec<u8>,
    ) -> (u32, bool, bool) {
        let found = self.find(&addr, hasher);
        let peer = Peer {
            addr,
            expiry: expiry.to_ne_bytes(),
            id,
        };
        let completed;
        let mut not_stored = false;
        let pos = match (found, event) {
            (Some(pos), AnnounceEvent::Stopped) => {
                self.remove(pos, hasher);
                return (0, false, false);
            }
            (None, AnnounceEvent::Stopped) => return (0, false, false),
            (Some(pos), _) => {
                let was_seeder = pos >= self.leechers as usize;
                completed = event == AnnounceEvent::Completed && !was_seeder;
                // A restarted client keeps its address but may pick a new
                // peer id.
                self.peers[pos] = peer;
                if was_seeder == seeder {
                    Some(pos)
                } else {
                    Some(self.flip(pos, hasher))
                }
            }
            (None, _) => {
                completed = event == AnnounceEvent::Completed;
                if self.admit(addr.host(), limits, hasher, rng) {
                    self.insert(peer, seeder, hasher);
                    self.find(&addr, hasher)
                } else {
                    not_stored = true;
                    None
                }
            }
        };
        self.sync_subnets(near, hasher);
        let peers = match near {
            Some(prefix) => self.select_near(&addr, prefix, seeder, pos, n, hasher, rng, out, ids),
            None => self.select(seeder, pos, n, rng, out, ids),
        };
        (peers, completed, not_stored)
    }

    /// Peers of `host` in this set.
    pub(super) fn host_count(&self, host: &A::Host, hasher: &ahash::RandomState) -> usize {
        match &self.index {
            Some(large) => large.hosts.get(host, hasher),
            None => self.peers.iter().filter(|p| p.addr.host() == *host).count(),
        }
    }

    /// Whether a new peer of `host` may be stored, making room for it if
    /// the set is full and another host holds more than its share.
    ///
    /// Nothing is counted while the set is smaller than both limits, which
    /// is every announce into the small swarms most torrents have.
    fn admit(
        &mut self,
        host: A::Host,
        limits: Limits,
        hasher: &ahash::RandomState,
        rng: &mut fastrand::Rng,
    ) -> bool {
        let len = self.peers.len();
        let full = len >= limits.max_peers;
        // A host can't have reached its share of a set smaller than it.
        if !full && (limits.per_host == 0 || len < limits.per_host) {
            return true;
        }
        let mine = self.host_count(&host, hasher);
        if limits.per_host != 0 && mine >= limits.per_host {
            return false;
        }
        if !full {
            return true;
        }
        // Small sets are counted exactly; in large ones a sample of peers
        // stands in for the whole (see `hosts::SAMPLE`).
        let victim = match &self.index {
            None => crowded(0..len, mine, |p| {
                self.host_count(&self.peers[p].addr.host(), hasher)
            }),
            Some(large) => crowded((0..SAMPLE).map(|_| rng.usize(..len)), mine, |p| {
                large.hosts.get(&self.peers[p].addr.host(), hasher)
            }),
        };
        match victim {
            Some(pos) => {
                self.remove(pos, hasher);
                true
            }
            None => false,
        }
    }

    /// Removes expired peers; returns how many it removed.
    pub(super) fn clean(&mut self, now: u32, hasher: &ahash::RandomState) -> usize {
        let before = self.peers.len();
        let leechers = self.leechers as usize;
        let mut kept_leechers = 0;
        let mut write = 0;
        for read in 0..before {
            let p = self.peers[read];
            if p.expiry() >= now {
                self.peers[write] = p;
                write += 1;
                if read < leechers {
                    kept_leechers += 1;
                }
            }
        }
        let removed = before - write;
        if removed > 0 {
            self.peers.truncate(write);
            self.leechers = kept_leechers;
            if let Some(index) = &mut self.index {
                index.rebuild(self.peers.iter().map(|p| hasher.hash_one(p.addr)));
                let hosts = self.peers.iter().map(|p| p.addr.host());
                index.hosts.rebuild(hosts, hasher);
                if let Some(subnets) = &index.subnets {
                    let peers = self.peers.iter().enumerate();
                    let peers = peers.map(|(i, p)| (p.addr, i >= kept_leechers as usize));
                    index.subnets = Some(Subnets::new(subnets.prefix(), peers, hasher));
                }
            }
            self.after_shrink(hasher);
        }
        removed
    }
}

//! The swarm state of one shard: which peers each torrent has, the
//! announce and scrape operations on them, and the cleaning of expired peers.
//! Nothing here knows about sockets or wire formats beyond the compact peer
//! form (BEP 23/7), which is also how peers are stored.
//!
//! Layout, chosen for memory at millions of mostly tiny swarms:
//! - Torrents sit in a dense vector with a [`DenseIndex`] beside it, so the
//!   cleaner can walk them from a cursor a slice at a time.
//! - A torrent's IPv4 peers sit inline in the torrent while there are at most
//!   two of them (most torrents), and in a heap vector after that; a hash
//!   index ([`PeerIndex`], 4-byte slots of position and hash tag) is added
//!   only once a swarm is larger than [`INDEX_FROM`]. IPv6 peers, rarer,
//!   are behind a box allocated on the first one.
//! - Each peer is its compact wire address (6 or 18 bytes: IP then port, big
//!   endian) and a 4-byte expiry, with alignment 1: 10 or 22 bytes.
//! - Leechers come first in the vector, seeders after them. A seeder is
//!   sent only leechers, which are then one contiguous range.

mod dense;
mod peer_index;

use smallvec::SmallVec;

pub use dense::DenseIndex;
pub use peer_index::PeerIndex;

use crate::protocol::udp::ScrapeStats;
use crate::protocol::{AnnounceEvent, InfoHash, PeerId};

/// Swarms larger than this get a hash index; below it a linear scan over the
/// compact addresses is faster than hashing.
pub const INDEX_FROM: usize = 24;

/// A peer's address in compact form: IPv4 address and port (6 bytes) or IPv6
/// address and port (18 bytes), both in network byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    V4([u8; 6]),
    V6([u8; 18]),
}

impl PeerAddr {
    pub fn from_socket_addr(addr: std::net::SocketAddr) -> PeerAddr {
        match addr {
            std::net::SocketAddr::V4(a) => {
                let mut b = [0u8; 6];
                b[..4].copy_from_slice(&a.ip().octets());
                b[4..].copy_from_slice(&a.port().to_be_bytes());
                PeerAddr::V4(b)
            }
            std::net::SocketAddr::V6(a) => {
                // An IPv4-mapped address (a dual-stack socket) is an IPv4 peer.
                if let Some(v4) = a.ip().to_ipv4_mapped() {
                    let mut b = [0u8; 6];
                    b[..4].copy_from_slice(&v4.octets());
                    b[4..].copy_from_slice(&a.port().to_be_bytes());
                    return PeerAddr::V4(b);
                }
                let mut b = [0u8; 18];
                b[..16].copy_from_slice(&a.ip().octets());
                b[16..].copy_from_slice(&a.port().to_be_bytes());
                PeerAddr::V6(b)
            }
        }
    }
}

/// Settings the swarm needs; a copy of the relevant config values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmConfig {
    /// Seconds without an announce after which a peer is dropped.
    pub peer_timeout: u32,
    /// Peers returned when the client asks for the default (numwant <= 0).
    pub default_numwant: usize,
    /// The most peers ever returned.
    pub max_numwant: usize,
    /// 0 for no limit. A full swarm still answers new peers, but does not
    /// store them.
    pub max_peers_per_torrent: usize,
    /// 0 for no limit. When full, announces for new torrents are answered
    /// with empty peer lists and not stored.
    pub max_torrents: usize,
}

impl Default for SwarmConfig {
    /// The shipped configuration's values: one source for the defaults, so
    /// that benches and tests run the tracker that operators get.
    fn default() -> Self {
        crate::config::Config::default().swarm_config()
    }
}

/// One announce, as the swarm needs it.
#[derive(Clone, Copy, Debug)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub addr: PeerAddr,
    pub event: AnnounceEvent,
    /// `left == 0`.
    pub seeder: bool,
    /// As the client sent it; <= 0 means the default.
    pub num_want: i32,
}

/// What an announce returns besides the peers it appended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnounceCounts {
    pub seeders: u32,
    pub leechers: u32,
    /// Number of peers appended to the output.
    pub peers: u32,
    /// The announce could not be stored (a limit was reached).
    pub not_stored: bool,
}

trait Addr: Copy + Eq + std::hash::Hash + AsRef<[u8]> {}
impl Addr for [u8; 6] {}
impl Addr for [u8; 18] {}

/// What a peer carries besides its address: nothing ([`NoPeerIds`]), or its
/// 20-byte peer id ([`WithPeerIds`]), for HTTP clients that ask for the
/// dictionary model. Chosen once, at start-up, so that trackers that don't
/// need ids don't pay 20 bytes per peer for them.
pub trait PeerData: Copy + Default + std::fmt::Debug + AsRef<[u8]> + 'static {
    fn from_peer_id(id: &PeerId) -> Self;
}

pub type NoPeerIds = [u8; 0];
pub type WithPeerIds = [u8; 20];

impl PeerData for NoPeerIds {
    #[inline]
    fn from_peer_id(_: &PeerId) -> Self {
        []
    }
}

impl PeerData for WithPeerIds {
    #[inline]
    fn from_peer_id(id: &PeerId) -> Self {
        id.0
    }
}

/// A peer: compact address and the time (seconds on the swarm clock) after
/// which it expires. Alignment 1 keeps an IPv4 peer at 10 bytes.
#[derive(Clone, Copy, Debug)]
struct Peer<A, X> {
    addr: A,
    expiry: [u8; 4],
    id: X,
}

impl<A, X> Peer<A, X> {
    #[inline]
    fn expiry(&self) -> u32 {
        u32::from_ne_bytes(self.expiry)
    }
}

/// The peers of one address family in one torrent.
#[derive(Debug)]
struct PeerSet<A, X> {
    /// Leechers at `0..leechers`, seeders after.
    peers: SmallVec<[Peer<A, X>; 2]>,
    leechers: u32,
    /// The torrent's count of completed downloads, kept in its IPv4 set
    /// only (0 in the IPv6 one): here it fills the 4 bytes of padding after
    /// `leechers`, which makes every torrent 8 bytes smaller (88 to 80 with
    /// its info hash) than a field of the torrent would.
    completed: u32,
    index: Option<Box<PeerIndex>>,
}

impl<A, X> Default for PeerSet<A, X> {
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
    fn len(&self) -> usize {
        self.peers.len()
    }

    fn seeders(&self) -> u32 {
        self.peers.len() as u32 - self.leechers
    }

    fn find(&self, addr: &A, hasher: &ahash::RandomState) -> Option<usize> {
        match &self.index {
            Some(index) => index.find(hasher.hash_one(addr), |p| self.peers[p].addr == *addr),
            None => self.peers.iter().position(|p| p.addr == *addr),
        }
    }

    /// Moves the element at `from` to `to` (overwriting `to`).
    fn relocate(&mut self, from: usize, to: usize, hasher: &ahash::RandomState) {
        if from == to {
            return;
        }
        self.peers[to] = self.peers[from];
        if let Some(index) = &mut self.index {
            index.relocate(hasher.hash_one(self.peers[to].addr), from, to);
        }
    }

    fn push_indexed(&mut self, peer: Peer<A, X>, at: usize, hasher: &ahash::RandomState) {
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
        } else if self.peers.len() > INDEX_FROM {
            let mut index = PeerIndex::with_capacity(self.peers.len() * 2);
            index.rebuild(self.peers.iter().map(|p| hasher.hash_one(p.addr)));
            self.index = Some(Box::new(index));
        }
    }

    fn insert(&mut self, peer: Peer<A, X>, seeder: bool, hasher: &ahash::RandomState) {
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
    }

    /// Swaps the elements at `a` and `b`.
    fn swap(&mut self, a: usize, b: usize, hasher: &ahash::RandomState) {
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
    fn flip(&mut self, pos: usize, hasher: &ahash::RandomState) -> usize {
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

    fn remove(&mut self, pos: usize, hasher: &ahash::RandomState) {
        if let Some(index) = &mut self.index {
            let peers = &self.peers;
            index.remove(hasher.hash_one(peers[pos].addr), pos, |p| {
                hasher.hash_one(peers[p].addr)
            });
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

    fn after_shrink(&mut self, hasher: &ahash::RandomState) {
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
    fn select(
        &self,
        for_seeder: bool,
        skip: Option<usize>,
        n: usize,
        rng: &mut fastrand::Rng,
        out: &mut Vec<u8>,
        ids: &mut Vec<u8>,
    ) -> u32 {
        let range = if for_seeder {
            self.leechers as usize
        } else {
            self.peers.len()
        };
        let skip = skip.filter(|&s| s < range);
        let available = range - skip.is_some() as usize;
        let take = n.min(available);
        if take == 0 {
            return 0;
        }
        let start = rng.usize(..range);
        let mut taken = 0;
        let (tail, head) = self.peers[..range].split_at(start);
        for (i, peer) in head
            .iter()
            .enumerate()
            .map(|(i, p)| (i + start, p))
            .chain(tail.iter().enumerate())
        {
            if Some(i) == skip {
                continue;
            }
            out.extend_from_slice(peer.addr.as_ref());
            if std::mem::size_of::<X>() != 0 {
                ids.extend_from_slice(peer.id.as_ref());
            }
            taken += 1;
            if taken == take {
                break;
            }
        }
        taken as u32
    }

    /// Handles one announce from `addr`. `max_peers` is the most peers this
    /// set may hold (`usize::MAX`: no limit).
    #[allow(clippy::too_many_arguments)]
    fn announce(
        &mut self,
        addr: A,
        id: X,
        event: AnnounceEvent,
        seeder: bool,
        expiry: u32,
        n: usize,
        max_peers: usize,
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
                if self.peers.len() >= max_peers {
                    not_stored = true;
                    None
                } else {
                    self.insert(peer, seeder, hasher);
                    self.find(&addr, hasher)
                }
            }
        };
        let peers = self.select(seeder, pos, n, rng, out, ids);
        (peers, completed, not_stored)
    }

    /// Removes expired peers; returns how many it removed.
    fn clean(&mut self, now: u32, hasher: &ahash::RandomState) -> usize {
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
            }
            self.after_shrink(hasher);
        }
        removed
    }
}

/// One torrent: its IPv4 and IPv6 peers and (in `v4`) its completed count.
#[derive(Debug, Default)]
struct Torrent<X> {
    v4: PeerSet<[u8; 6], X>,
    v6: Option<Box<PeerSet<[u8; 18], X>>>,
}

impl<X: PeerData> Torrent<X> {
    fn is_empty(&self) -> bool {
        self.v4.len() == 0 && self.v6.as_ref().is_none_or(|s| s.len() == 0)
    }

    fn counts(&self) -> (u32, u32) {
        let (mut seeders, mut leechers) = (self.v4.seeders(), self.v4.leechers);
        if let Some(v6) = &self.v6 {
            seeders += v6.seeders();
            leechers += v6.leechers;
        }
        (seeders, leechers)
    }
}

/// Totals over all torrents of one [`Swarms`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub torrents: u64,
    pub peers_v4: u64,
    pub peers_v6: u64,
    pub seeders: u64,
    pub leechers: u64,
}

/// All torrents of one swarm worker.
pub struct Swarms<X = NoPeerIds> {
    config: SwarmConfig,
    torrents: Vec<(InfoHash, Torrent<X>)>,
    index: DenseIndex,
    hasher: ahash::RandomState,
    rng: fastrand::Rng,
    /// Where the next cleaning step starts.
    clean_cursor: usize,
    /// Running totals, kept up to date by every change so that reading them
    /// never walks the torrents.
    gauges: Gauges,
    /// The largest torrents seen by the cleaning pass under way.
    top_in_pass: Vec<(InfoHash, ScrapeStats)>,
    /// The largest torrents of the last finished pass, largest first.
    top: Vec<(InfoHash, ScrapeStats)>,
    top_len: usize,
    /// Torrents that fail it are purged by the cleaning pass (access lists).
    filter: Option<TorrentFilter>,
    /// Torrents and peers purged by `filter`, since the start.
    purged: (u64, u64),
    /// Scratch for [`Swarms::prefetch`]: the torrent position each request
    /// probably has.
    candidates: Vec<u32>,
}

/// Which torrents may stay in memory; the cleaning pass purges the others.
pub type TorrentFilter = std::sync::Arc<dyn Fn(&InfoHash) -> bool + Send + Sync>;

#[derive(Clone, Copy, Debug, Default)]
struct Gauges {
    peers_v4: u64,
    peers_v6: u64,
    seeders: u64,
}

impl<X: PeerData> Torrent<X> {
    /// (IPv4 peers, IPv6 peers, seeders)
    fn shape(&self) -> (u64, u64, u64) {
        let v6 = self.v6.as_ref().map_or(0, |s| s.len());
        (self.v4.len() as u64, v6 as u64, self.counts().0 as u64)
    }
}

impl Gauges {
    fn apply(&mut self, before: (u64, u64, u64), after: (u64, u64, u64)) {
        self.peers_v4 = self.peers_v4 + after.0 - before.0;
        self.peers_v6 = self.peers_v6 + after.1 - before.1;
        self.seeders = self.seeders + after.2 - before.2;
    }
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
    fn build(config: SwarmConfig) -> Self {
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
        }
    }

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

    pub fn set_config(&mut self, config: SwarmConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &SwarmConfig {
        &self.config
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

    fn find(&self, info_hash: &InfoHash) -> Option<usize> {
        let torrents = &self.torrents;
        self.index.find(self.hasher.hash_one(info_hash), |p| {
            torrents[p].0 == *info_hash
        })
    }

    fn insert_torrent(&mut self, info_hash: InfoHash) -> usize {
        let pos = self.torrents.len();
        if pos == self.torrents.capacity() {
            self.torrents.reserve(1);
            crate::sys::huge_pages(self.torrents.as_ptr(), self.torrents.capacity());
        }
        self.torrents.push((info_hash, Torrent::default()));
        self.index.insert(self.hasher.hash_one(info_hash), pos);
        pos
    }

    fn remove_torrent(&mut self, pos: usize) {
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
        let id = X::from_peer_id(peer_id);
        let pos = match self.find(&req.info_hash) {
            Some(pos) => pos,
            None if req.event == AnnounceEvent::Stopped => return AnnounceCounts::default(),
            None if self.config.max_torrents != 0
                && self.torrents.len() >= self.config.max_torrents =>
            {
                return AnnounceCounts {
                    not_stored: true,
                    ..AnnounceCounts::default()
                }
            }
            None => self.insert_torrent(req.info_hash),
        };
        let n = if req.num_want <= 0 {
            self.config.default_numwant
        } else {
            req.num_want as usize
        }
        .min(self.config.max_numwant);
        let expiry = now.saturating_add(self.config.peer_timeout);
        let max_peers = self.config.max_peers_per_torrent;
        let torrent = &mut self.torrents[pos].1;
        // The limit is on the torrent, both families together: each family
        // may hold what the other leaves.
        let room = |others: usize| match max_peers {
            0 => usize::MAX,
            max => max.saturating_sub(others),
        };
        let room_v4 = room(torrent.v6.as_ref().map_or(0, |s| s.len()));
        let room_v6 = room(torrent.v4.len());
        let before = torrent.shape();
        let (peers, completed, not_stored) = match req.addr {
            PeerAddr::V4(a) => torrent.v4.announce(
                a,
                id,
                req.event,
                req.seeder,
                expiry,
                n,
                room_v4,
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
                        &self.hasher,
                        &mut self.rng,
                        out,
                        ids,
                    )
                }
            }
        };
        if completed {
            torrent.v4.completed = torrent.v4.completed.saturating_add(1);
        }
        let (seeders, leechers) = torrent.counts();
        self.gauges.apply(before, torrent.shape());
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

    /// Torrent count without walking the peers.
    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }
}

#[cfg(test)]
mod tests;

//! Peers per host, so that no one address takes a swarm: what a large swarm
//! keeps beside its peer index ([`Large`]), and how a full swarm picks the
//! peer to give up for a newcomer ([`crowded`]).
//!
//! Why only large swarms count: most swarms have one or two peers, and a
//! count per host there would be a map per torrent. Up to [`INDEX_FROM`]
//! peers a linear scan over the compact addresses counts as fast as a
//! lookup; past it the swarm already has a boxed [`PeerIndex`], and the
//! counts go into the same box (about 10 bytes per distinct host: a 4- or
//! 8-byte key, a 4-byte count and hashbrown's control byte, at most 7/8
//! full). Only announces of new peers and removals touch the counts; a
//! re-announce, the common case, does not.
//!
//! [`INDEX_FROM`]: super::INDEX_FROM

use std::hash::Hash;

use hashbrown::HashTable;

use super::peer_set::Addr;
use super::subnets::Subnets;
use super::PeerIndex;

/// Peers sampled in a large full swarm when looking for one to evict: the
/// host that holds a large share of the swarm is almost surely among them
/// (a host with a quarter of the swarm is missed once in 100, one with half
/// once in 65 536), at 16 lookups rather than a walk over every host.
pub(super) const SAMPLE: usize = 16;

/// A large swarm's peer index, its counts of peers per host and, while
/// `prefer_same_subnet` is on, its peers grouped by subnet.
#[derive(Debug)]
pub(super) struct Large<A: Addr> {
    /// First, so that prefetching the box brings in the index's header.
    pub(super) index: PeerIndex,
    pub(super) hosts: HostCounts<A::Host>,
    pub(super) subnets: Option<Subnets<A>>,
}

impl<A: Addr> std::ops::Deref for Large<A> {
    type Target = PeerIndex;
    fn deref(&self) -> &PeerIndex {
        &self.index
    }
}

impl<A: Addr> std::ops::DerefMut for Large<A> {
    fn deref_mut(&mut self) -> &mut PeerIndex {
        &mut self.index
    }
}

/// How many peers each host has in one swarm (hosts with none are absent).
#[derive(Debug)]
pub(super) struct HostCounts<H> {
    table: HashTable<(H, u32)>,
}

impl<H: Copy + Eq + Hash> HostCounts<H> {
    /// Counts the hosts of `hosts`.
    pub(super) fn new(hosts: impl Iterator<Item = H>, hasher: &ahash::RandomState) -> Self {
        let mut counts = HostCounts {
            table: HashTable::new(),
        };
        counts.rebuild(hosts, hasher);
        counts
    }

    /// Forgets every count and counts the hosts of `hosts` anew.
    pub(super) fn rebuild(&mut self, hosts: impl Iterator<Item = H>, hasher: &ahash::RandomState) {
        self.table.clear();
        for h in hosts {
            self.add(h, hasher);
        }
        self.table.shrink_to_fit(|(h, _)| hasher.hash_one(h));
    }

    pub(super) fn get(&self, host: &H, hasher: &ahash::RandomState) -> usize {
        self.table
            .find(hasher.hash_one(host), |(h, _)| h == host)
            .map_or(0, |(_, n)| *n as usize)
    }

    pub(super) fn add(&mut self, host: H, hasher: &ahash::RandomState) {
        let hash = hasher.hash_one(host);
        match self.table.find_mut(hash, |(h, _)| *h == host) {
            Some((_, n)) => *n += 1,
            None => {
                self.table
                    .insert_unique(hash, (host, 1), |(h, _)| hasher.hash_one(h));
            }
        }
    }

    pub(super) fn remove(&mut self, host: &H, hasher: &ahash::RandomState) {
        let hash = hasher.hash_one(host);
        match self.table.find_entry(hash, |(h, _)| h == host) {
            Ok(mut entry) if entry.get().1 > 1 => entry.get_mut().1 -= 1,
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => {}
        }
        if self.table.capacity() > 64 && self.table.len() < self.table.capacity() / 8 {
            self.table.shrink_to_fit(|(h, _)| hasher.hash_one(h));
        }
    }

    #[cfg(test)]
    pub(super) fn total(&self) -> usize {
        self.table.iter().map(|(_, n)| *n as usize).sum()
    }
}

/// The position of a peer to evict so that a newcomer whose host already
/// has `mine` peers can join a full swarm, if some host has at least two
/// more than that: then the swap makes the shares more even, while between
/// hosts of equal shares (a full swarm of distinct addresses) nothing
/// churns, and the newcomer is not stored, as before.
///
/// `candidates` are positions to consider and `count` gives the peers of the
/// host at a position. The one with the most wins; the first among equals.
pub(super) fn crowded(
    candidates: impl Iterator<Item = usize>,
    mine: usize,
    mut count: impl FnMut(usize) -> usize,
) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for pos in candidates {
        let n = count(pos);
        if best.is_none_or(|(_, most)| n > most) {
            best = Some((pos, n));
        }
    }
    best.filter(|&(_, most)| most > mine + 1)
        .map(|(pos, _)| pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rise_fall_and_vanish() {
        let hasher = ahash::RandomState::new();
        let mut c = HostCounts::new([1u32, 2, 1].into_iter(), &hasher);
        assert_eq!((c.get(&1, &hasher), c.get(&2, &hasher)), (2, 1));
        c.remove(&1, &hasher);
        c.remove(&2, &hasher);
        c.remove(&3, &hasher);
        assert_eq!((c.get(&1, &hasher), c.get(&2, &hasher)), (1, 0));
        assert_eq!(c.table.len(), 1, "a host with no peers is forgotten");
        c.add(2, &hasher);
        assert_eq!(c.total(), 2);
    }

    #[test]
    fn evicts_only_from_a_host_with_two_more() {
        let hosts = [7, 7, 7, 1, 2];
        let count = |p: usize| hosts.iter().filter(|&&h| h == hosts[p]).count();
        assert_eq!(crowded(0..5, 0, count), Some(0));
        assert_eq!(crowded(0..5, 1, count), Some(0));
        assert_eq!(crowded(0..5, 2, count), None, "3 is not 2 more than 2");
        assert_eq!(crowded(3..5, 0, count), None, "equal shares: no churn");
        assert_eq!(crowded(0..0, 0, count), None);
    }
}

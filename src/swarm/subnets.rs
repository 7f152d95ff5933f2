//! Same-subnet peers first (`[swarm] prefer_same_subnet`): the peers of a
//! large swarm grouped by subnet ([`Subnets`]), kept in step with the peer
//! set, and the choice of peers that fills a reply from the announcer's
//! subnet before the rest of the swarm.
//!
//! Why groups, and only in large swarms: a data center gives each rack a
//! subnet, and a deploy swarm of 100k peers holds a few dozen of one rack.
//! Finding those by walking the swarm would cost a scan of 100k peers per
//! announce; a group per subnet, kept on insert, removal and seeder flips,
//! finds them with one lookup. Small swarms (no peer index, at most
//! [`INDEX_FROM`] peers) are walked instead: that is as fast as a lookup.
//! The groups are built when an announce first wants them and dropped when
//! the option is turned off, so a reload applies either way and the
//! default (off) costs nothing.
//!
//! Memory while on: one entry per distinct subnet of a large swarm, about
//! 32 bytes with two IPv4 members inline (an address costs 6 bytes more
//! each past two), on top of the 10 bytes of each peer.
//!
//! [`INDEX_FROM`]: super::INDEX_FROM

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::peer_set::{Addr, Peer, PeerSet};
use super::PeerData;

/// The peers of one subnet: their addresses, leechers first (as in the
/// peer set), so that a seeder's choice is one contiguous range here too.
#[derive(Debug)]
struct Group<A: Addr> {
    net: A::Net,
    leechers: u32,
    members: SmallVec<[A; 2]>,
}

impl<A: Addr> Group<A> {
    fn position(&self, addr: &A) -> Option<usize> {
        self.members.iter().position(|a| a == addr)
    }
}

/// A large swarm's peers grouped by their subnet of `prefix` bits.
#[derive(Debug)]
pub(super) struct Subnets<A: Addr> {
    prefix: u8,
    table: HashTable<Group<A>>,
}

impl<A: Addr> Subnets<A> {
    /// Groups `peers`, given as (address, seeder).
    pub(super) fn new(
        prefix: u8,
        peers: impl Iterator<Item = (A, bool)>,
        hasher: &ahash::RandomState,
    ) -> Self {
        let mut s = Subnets {
            prefix,
            table: HashTable::new(),
        };
        for (a, seeder) in peers {
            s.add(a, seeder, hasher);
        }
        s
    }

    pub(super) fn prefix(&self) -> u8 {
        self.prefix
    }

    fn group(&self, net: A::Net, hasher: &ahash::RandomState) -> Option<&Group<A>> {
        self.table.find(hasher.hash_one(net), |g| g.net == net)
    }

    fn group_mut(&mut self, addr: &A, hasher: &ahash::RandomState) -> Option<&mut Group<A>> {
        let net = addr.net(self.prefix);
        self.table.find_mut(hasher.hash_one(net), |g| g.net == net)
    }

    pub(super) fn add(&mut self, addr: A, seeder: bool, hasher: &ahash::RandomState) {
        let net = addr.net(self.prefix);
        let hash = hasher.hash_one(net);
        let g = match self.table.find_mut(hash, |g| g.net == net) {
            Some(g) => g,
            None => self
                .table
                .insert_unique(
                    hash,
                    Group {
                        net,
                        leechers: 0,
                        members: SmallVec::new(),
                    },
                    |g| hasher.hash_one(g.net),
                )
                .into_mut(),
        };
        g.members.push(addr);
        if !seeder {
            let last = g.members.len() - 1;
            g.members.swap(g.leechers as usize, last);
            g.leechers += 1;
        }
    }

    /// Forgets `addr`. A scan of its group: a subnet's share of a swarm is
    /// small where this is used (a rack), and bounded by the per-address
    /// share times the addresses of a subnet.
    pub(super) fn remove(&mut self, addr: &A, hasher: &ahash::RandomState) {
        let net = addr.net(self.prefix);
        let hash = hasher.hash_one(net);
        let Ok(mut entry) = self.table.find_entry(hash, |g| g.net == net) else {
            debug_assert!(false, "{addr:?} in no group");
            return;
        };
        let g = entry.get_mut();
        let Some(i) = g.position(addr) else {
            debug_assert!(false, "{addr:?} not in its group");
            return;
        };
        let last = g.members.len() - 1;
        if i < g.leechers as usize {
            let last_leecher = g.leechers as usize - 1;
            g.members.swap(i, last_leecher);
            g.members.swap(last_leecher, last);
            g.leechers -= 1;
        } else {
            g.members.swap(i, last);
        }
        g.members.pop();
        if g.members.is_empty() {
            entry.remove();
            if self.table.capacity() > 64 && self.table.len() < self.table.capacity() / 8 {
                self.table.shrink_to_fit(|g| hasher.hash_one(g.net));
            }
        }
    }

    /// `addr` turned from leecher to seeder or back.
    pub(super) fn flip(&mut self, addr: &A, hasher: &ahash::RandomState) {
        let Some(g) = self.group_mut(addr, hasher) else {
            debug_assert!(false, "{addr:?} in no group");
            return;
        };
        let Some(i) = g.position(addr) else {
            debug_assert!(false, "{addr:?} not in its group");
            return;
        };
        let leechers = g.leechers as usize;
        if i < leechers {
            g.members.swap(i, leechers - 1);
            g.leechers -= 1;
        } else {
            g.members.swap(i, leechers);
            g.leechers += 1;
        }
    }

    /// Every (address, seeder) grouped, for the tests' invariants.
    #[cfg(test)]
    pub(super) fn members(&self) -> Vec<(A, bool)> {
        let mut all = Vec::new();
        for g in &self.table {
            for (i, a) in g.members.iter().enumerate() {
                assert_eq!(a.net(self.prefix), g.net, "{a:?} in the wrong group");
                all.push((*a, i >= g.leechers as usize));
            }
        }
        all
    }
}

impl<A: Addr, X: PeerData> PeerSet<A, X> {
    /// Brings the groups of a large set in line with `prefix` (None: the
    /// option is off): built on the first announce that wants them, again
    /// if the prefix changed, dropped when off.
    pub(super) fn sync_subnets(&mut self, prefix: Option<u8>, hasher: &ahash::RandomState) {
        let Some(large) = &mut self.index else {
            return;
        };
        match (prefix, &large.subnets) {
            (None, None) => {}
            (Some(p), Some(s)) if s.prefix() == p => {}
            (None, Some(_)) => large.subnets = None,
            (Some(p), _) => {
                let leechers = self.leechers as usize;
                let peers = self.peers.iter().enumerate();
                let peers = peers.map(|(i, p)| (p.addr, i >= leechers));
                large.subnets = Some(Subnets::new(p, peers, hasher));
            }
        }
    }

    /// The groups, if kept.
    pub(super) fn subnets_mut(&mut self) -> Option<&mut Subnets<A>> {
        self.index.as_mut().and_then(|l| l.subnets.as_mut())
    }

    /// [`PeerSet::select`], with the peers of `me`'s subnet of `prefix`
    /// bits first: up to `n` of them from a random start in their group (a
    /// walk of the set in a small one), then the rest from a random start
    /// in the set, as `select` does, past the ones of that subnet.
    ///
    /// Bounded: the second walk runs only when the first took every peer of
    /// the subnet it may send, fewer than `n`; so it steps over fewer than
    /// `n` + 1 of them, whatever the size of the swarm.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn select_near(
        &self,
        me: &A,
        prefix: u8,
        for_seeder: bool,
        skip: Option<usize>,
        n: usize,
        hasher: &ahash::RandomState,
        rng: &mut fastrand::Rng,
        out: &mut Vec<u8>,
        ids: &mut Vec<u8>,
    ) -> u32 {
        let subnets = match &self.index {
            None => None,
            Some(large) => match &large.subnets {
                Some(s) if s.prefix() == prefix => Some(s),
                // Not synced (never so after `sync_subnets`): no walk of a
                // large swarm, the plain choice.
                _ => return self.select(for_seeder, skip, n, rng, out, ids),
            },
        };
        let (range, skip, take) = self.selection(for_seeder, skip, n);
        if take == 0 {
            return 0;
        }
        let net = me.net(prefix);
        let mut taken = 0;
        match subnets {
            Some(subnets) => {
                if let Some(g) = subnets.group(net, hasher) {
                    let end = if for_seeder {
                        g.leechers as usize
                    } else {
                        g.members.len()
                    };
                    if end > 0 {
                        let start = rng.usize(..end);
                        let (tail, head) = g.members[..end].split_at(start);
                        for a in head.iter().chain(tail) {
                            if a == me {
                                continue;
                            }
                            if std::mem::size_of::<X>() == 0 {
                                out.extend_from_slice(a.as_ref());
                            } else {
                                // The id is in the set: one lookup each,
                                // for the rare clients that want ids.
                                let Some(p) = self.find(a, hasher) else {
                                    debug_assert!(false, "{a:?} grouped, not in the set");
                                    continue;
                                };
                                emit(&self.peers[p], out, ids);
                            }
                            taken += 1;
                            if taken == take {
                                return taken as u32;
                            }
                        }
                    }
                }
            }
            None => {
                let near = |i: usize, p: &Peer<A, X>| Some(i) != skip && p.addr.net(prefix) == net;
                taken += self.walk(range, take, near, rng, out, ids);
            }
        }
        if taken < take {
            let far = |i: usize, p: &Peer<A, X>| Some(i) != skip && p.addr.net(prefix) != net;
            taken += self.walk(range, take - taken, far, rng, out, ids);
        }
        taken as u32
    }

    /// Appends up to `want` of the peers at `..range` that `keep` accepts
    /// (given position and peer), from a random start and on, wrapping;
    /// returns how many.
    pub(super) fn walk(
        &self,
        range: usize,
        want: usize,
        mut keep: impl FnMut(usize, &Peer<A, X>) -> bool,
        rng: &mut fastrand::Rng,
        out: &mut Vec<u8>,
        ids: &mut Vec<u8>,
    ) -> usize {
        if want == 0 || range == 0 {
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
            if !keep(i, peer) {
                continue;
            }
            emit(peer, out, ids);
            taken += 1;
            if taken == want {
                break;
            }
        }
        taken
    }
}

/// Appends `peer`'s address to `out` and, when peers carry ids, its id to
/// `ids`.
#[inline]
pub(super) fn emit<A: Addr, X: PeerData>(peer: &Peer<A, X>, out: &mut Vec<u8>, ids: &mut Vec<u8>) {
    out.extend_from_slice(peer.addr.as_ref());
    if std::mem::size_of::<X>() != 0 {
        ids.extend_from_slice(peer.id.as_ref());
    }
}

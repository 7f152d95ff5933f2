//! Scrapes that span several swarm workers: split by shard, gathered back.
//!
//! A scrape names up to 74 (UDP) or a few hundred (HTTP) info hashes, and
//! each belongs to the shard its hash maps to. [`PendingScrapes::start`]
//! files the scrape and queues one part per shard that holds some of its
//! hashes; as the parts come back ([`PendingScrapes::part_answered`]) their
//! counts go to the positions the client asked them in, and the last part
//! finishes the scrape. A part whose batch was dropped
//! ([`PendingScrapes::part_lost`]) or that does not come back in time
//! ([`PendingScrapes::expire`]) fails the whole scrape, so a client never
//! gets zeros that only look like an answer.
//!
//! Each pending scrape has a key: its slot and a generation, so a late part
//! of a scrape given up long ago can never land in the slot's next scrape.

use super::{shard_of, Origin, SwarmRequest};
use crate::protocol::udp::ScrapeStats;
use crate::protocol::InfoHash;

/// A scrape gives up when its parts have not all come back by then.
pub(crate) const SCRAPE_TIMEOUT_SECS: u32 = 5;
/// Scrapes waiting for parts at once, per socket worker; more are refused.
const MAX_PENDING_SCRAPES: usize = 1 << 16;

/// A scrape whose parts are all in, or that was given up (`failed`).
#[derive(Debug)]
pub(crate) struct Finished {
    pub origin: Origin,
    /// The hashes asked for, when the reply names them (HTTP).
    pub hashes: Vec<InfoHash>,
    /// Counts in the order the hashes were asked for.
    pub stats: Vec<ScrapeStats>,
    /// A part was lost or timed out: don't answer with these counts.
    pub failed: bool,
}

#[derive(Debug)]
struct Pending {
    generation: u32,
    created: u32,
    remaining: u16,
    finished: Finished,
}

/// The scrapes one socket worker is gathering.
#[derive(Debug, Default)]
pub(crate) struct PendingScrapes {
    slots: Vec<Option<Pending>>,
    free: Vec<u32>,
    next_generation: u32,
}

impl PendingScrapes {
    /// Files a scrape and queues one part per shard (`outgoing[shard]`) that
    /// holds some of its hashes; hashes `allows` refuses are not asked for
    /// and stay zeros. False when too many scrapes are pending.
    pub(crate) fn start(
        &mut self,
        origin: Origin,
        hashes: &[InfoHash],
        keep_hashes: bool,
        now: u32,
        outgoing: &mut [Vec<SwarmRequest>],
        allows: impl Fn(&InfoHash) -> bool,
    ) -> bool {
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None if self.slots.len() < MAX_PENDING_SCRAPES => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return false,
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let key = ((generation as u64) << 32) | idx as u64;
        let shards = outgoing.len();
        let mut parts = 0u16;
        for (shard, batch) in outgoing.iter_mut().enumerate() {
            let mine: Vec<(u8, InfoHash)> = hashes
                .iter()
                .enumerate()
                .filter(|(_, h)| shard_of(h, shards) == shard && allows(h))
                .map(|(i, h)| (i as u8, *h))
                .collect();
            if !mine.is_empty() {
                parts += 1;
                batch.push(SwarmRequest::ScrapePart {
                    pending: key,
                    hashes: mine,
                });
            }
        }
        if parts == 0 {
            // Every hash refused: one empty part, so that the answer (all
            // zeros, as for unknown torrents) goes the usual way.
            parts = 1;
            outgoing[0].push(SwarmRequest::ScrapePart {
                pending: key,
                hashes: Vec::new(),
            });
        }
        self.slots[idx] = Some(Pending {
            generation,
            created: now,
            remaining: parts,
            finished: Finished {
                origin,
                hashes: if keep_hashes {
                    hashes.to_vec()
                } else {
                    Vec::new()
                },
                stats: vec![ScrapeStats::default(); hashes.len()],
                failed: false,
            },
        });
        true
    }

    /// The pending scrape with `key`, if it is still the same one.
    fn get_mut(&mut self, key: u64) -> Option<&mut Pending> {
        let idx = key as u32 as usize;
        let generation = (key >> 32) as u32;
        match self.slots.get_mut(idx) {
            Some(Some(p)) if p.generation == generation => Some(p),
            _ => None,
        }
    }

    /// Where the scrape with `key` came from, if it is still pending.
    pub(crate) fn origin(&self, key: u64) -> Option<Origin> {
        let idx = key as u32 as usize;
        let generation = (key >> 32) as u32;
        match self.slots.get(idx) {
            Some(Some(p)) if p.generation == generation => Some(p.finished.origin),
            _ => None,
        }
    }

    /// One part came back with the counts of its hashes (by position).
    /// Returns the scrape when that was its last part.
    pub(crate) fn part_answered(
        &mut self,
        key: u64,
        stats: impl IntoIterator<Item = (u8, ScrapeStats)>,
    ) -> Option<Finished> {
        let p = self.get_mut(key)?;
        for (i, s) in stats {
            if let Some(slot) = p.finished.stats.get_mut(i as usize) {
                *slot = s;
            }
        }
        self.part_done(key)
    }

    /// One part was lost (its batch dropped): the scrape fails. Returns it
    /// when that was its last part.
    pub(crate) fn part_lost(&mut self, key: u64) -> Option<Finished> {
        self.get_mut(key)?.finished.failed = true;
        self.part_done(key)
    }

    fn part_done(&mut self, key: u64) -> Option<Finished> {
        let p = self.get_mut(key)?;
        p.remaining = p.remaining.saturating_sub(1);
        if p.remaining > 0 {
            return None;
        }
        self.take(key as u32 as usize)
    }

    fn take(&mut self, idx: usize) -> Option<Finished> {
        let p = self.slots.get_mut(idx).and_then(Option::take)?;
        self.free.push(idx as u32);
        Some(p.finished)
    }

    /// Gives up the scrapes whose parts did not all come back within
    /// [`SCRAPE_TIMEOUT_SECS`] of `now`, and hands each to `give_up`
    /// (failed). Parts that come back later are ignored.
    pub(crate) fn expire(&mut self, now: u32, mut give_up: impl FnMut(Finished)) {
        for idx in 0..self.slots.len() {
            let late = matches!(
                &self.slots[idx],
                Some(p) if now.saturating_sub(p.created) > SCRAPE_TIMEOUT_SECS
            );
            if late {
                if let Some(mut f) = self.take(idx) {
                    f.failed = true;
                    give_up(f);
                }
            }
        }
    }

    /// Scrapes waiting for parts.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::Reply;
    use proptest::prelude::*;

    fn origin() -> Origin {
        Origin {
            addr: "127.0.0.1:1".parse().unwrap(),
            reply: Reply::Udp {
                socket: 0,
                transaction_id: 7,
            },
        }
    }

    /// What a shard would answer for a hash: counts derived from its bytes.
    fn counts(h: &InfoHash) -> ScrapeStats {
        ScrapeStats {
            seeders: h.0[0] as u32,
            completed: h.0[1] as u32,
            leechers: h.0[2] as u32,
        }
    }

    /// The parts queued in `outgoing`, taken out: (key, hashes).
    fn take_parts(outgoing: &mut [Vec<SwarmRequest>]) -> Vec<(u64, Vec<(u8, InfoHash)>)> {
        let mut parts = Vec::new();
        for batch in outgoing {
            for r in batch.drain(..) {
                if let SwarmRequest::ScrapePart { pending, hashes } = r {
                    parts.push((pending, hashes));
                }
            }
        }
        parts
    }

    #[test]
    fn a_late_part_of_a_scrape_given_up_does_not_reach_the_next_one() {
        let mut s = PendingScrapes::default();
        let mut outgoing = vec![Vec::new(), Vec::new()];
        let h = [InfoHash([1; 20])];
        assert!(s.start(origin(), &h, false, 0, &mut outgoing, |_| true));
        let old = take_parts(&mut outgoing);
        let mut given_up = 0;
        s.expire(SCRAPE_TIMEOUT_SECS + 1, |f| {
            assert!(f.failed);
            given_up += 1;
        });
        assert_eq!(given_up, 1);
        // The slot is reused with a new generation.
        assert!(s.start(origin(), &h, false, 10, &mut outgoing, |_| true));
        assert!(s.part_answered(old[0].0, [(0, counts(&h[0]))]).is_none());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn refused_hashes_stay_zeros_and_still_get_an_answer() {
        let mut s = PendingScrapes::default();
        let mut outgoing = vec![Vec::new(), Vec::new(), Vec::new()];
        let h = [InfoHash([3; 20]), InfoHash([4; 20])];
        assert!(s.start(origin(), &h, true, 0, &mut outgoing, |_| false));
        let parts = take_parts(&mut outgoing);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].1.is_empty());
        let f = s.part_answered(parts[0].0, []).expect("finished");
        assert!(!f.failed);
        assert_eq!(f.hashes, h);
        assert_eq!(f.stats, vec![ScrapeStats::default(); 2]);
    }

    proptest! {
        /// A scrape split across shards is gathered in the order asked,
        /// whatever order the parts come back in; a lost or late part fails
        /// it; and nothing is left pending afterwards.
        #[test]
        fn split_scrapes_are_gathered_in_order_and_nothing_leaks(
            shards in 1usize..8,
            scrapes in proptest::collection::vec(
                (proptest::collection::vec(any::<[u8; 20]>(), 1..40), any::<u8>(), 0u8..4),
                1..20,
            ),
        ) {
            let mut s = PendingScrapes::default();
            let mut outgoing: Vec<Vec<SwarmRequest>> = (0..shards).map(|_| Vec::new()).collect();
            let mut expired = 0usize;
            for (i, (raw, order, fate)) in scrapes.iter().enumerate() {
                let hashes: Vec<InfoHash> = raw.iter().map(|b| InfoHash(*b)).collect();
                prop_assert!(s.start(origin(), &hashes, true, i as u32, &mut outgoing, |_| true));
                let mut parts = take_parts(&mut outgoing);
                let distinct: std::collections::HashSet<usize> =
                    hashes.iter().map(|h| shard_of(h, shards)).collect();
                prop_assert_eq!(parts.len(), distinct.len());
                let n = parts.len();
                parts.rotate_left(*order as usize % n);
                let mut finished = None;
                for (k, (key, part)) in parts.into_iter().enumerate() {
                    let last = k + 1 == n;
                    // fate 1: the first part is lost; fate 2: the last part
                    // never comes back (the scrape expires); else all answer.
                    let f = match fate {
                        1 if k == 0 => s.part_lost(key),
                        2 if last => None,
                        _ => s.part_answered(key, part.iter().map(|(i, h)| (*i, counts(h)))),
                    };
                    if f.is_some() {
                        prop_assert!(last, "finished before its last part");
                        finished = f;
                    }
                }
                match fate {
                    2 => {
                        prop_assert!(finished.is_none());
                        s.expire(i as u32 + SCRAPE_TIMEOUT_SECS + 1, |f| {
                            assert!(f.failed);
                            expired += 1;
                        });
                    }
                    1 => prop_assert!(finished.expect("finished").failed),
                    _ => {
                        let f = finished.expect("finished");
                        prop_assert!(!f.failed);
                        prop_assert_eq!(&f.hashes, &hashes);
                        let want: Vec<ScrapeStats> = hashes.iter().map(counts).collect();
                        prop_assert_eq!(f.stats, want);
                    }
                }
                prop_assert_eq!(s.len(), 0);
            }
            prop_assert_eq!(expired, scrapes.iter().filter(|(_, _, f)| *f == 2).count());
            // Slots are reused: never more than one was needed at a time.
            prop_assert!(s.slots.len() <= 1);
        }
    }
}

//! Which (torrent, host) pairs completed a download recently, so that one
//! address replaying `completed` and `stopped` can't inflate a torrent's
//! `downloaded` count: each pair counts at most once per peer timeout.
//!
//! A shard-wide filter of fixed size rather than a set per torrent: a set
//! would cost every torrent a pointer (80 to 88 bytes a torrent) for what
//! few of them need. Two generations of a Bloom filter, each [`BITS`] bits
//! (1 MiB), allocated at the first completion: a pair is looked up in both
//! and added to the current one; the current one becomes the previous one
//! (and the previous one is cleared for reuse) once it is a peer timeout
//! old, so a pair is remembered for one to two peer timeouts. Memory is
//! 2 MiB per swarm worker whatever the load.
//!
//! A false positive drops a real completion from the count. At most
//! [`CAPACITY`] pairs go into a generation (16 bits a pair, 4 hashes: 0.24 %
//! false positives each, under 0.5 % over both); more completions than that
//! in a peer timeout (about 190 a second for 45 minutes, per worker) start
//! the next generation early, which shortens how long a pair is remembered
//! but never grows memory or the false-positive rate.

/// Bits in one generation: 2^23, 1 MiB.
const BITS: usize = 1 << 23;
/// Pairs added to one generation before it is turned over early.
const CAPACITY: usize = BITS / 16;
/// Bits set per pair.
const HASHES: u64 = 4;

#[derive(Debug, Default)]
pub(super) struct RecentCompleters {
    /// Current and previous generation; empty until the first completion.
    bits: [Vec<u64>; 2],
    current: usize,
    added: usize,
    /// When the current generation started (swarm clock, seconds).
    started: u32,
}

impl RecentCompleters {
    /// Records a completion of the pair hashed to `hash` at `now`; true if
    /// it counts (the pair did not complete within the last peer timeout,
    /// `timeout` seconds, as far as the filter can tell).
    pub(super) fn first(&mut self, hash: u64, now: u32, timeout: u32) -> bool {
        if self.bits[0].is_empty() {
            self.bits = [vec![0; BITS / 64], vec![0; BITS / 64]];
            self.started = now;
        }
        let age = now.saturating_sub(self.started);
        if age >= timeout || self.added >= CAPACITY {
            if age >= timeout.saturating_mul(2) {
                // The current generation is past its time too.
                self.bits[self.current].fill(0);
            }
            self.current ^= 1;
            self.bits[self.current].fill(0);
            self.added = 0;
            self.started = now;
        }
        // Double hashing: bit i of the pair is h1 + i * h2.
        let (h1, h2) = (hash & 0xffff_ffff, (hash >> 32) | 1);
        let positions = (0..HASHES).map(|i| (h1.wrapping_add(i.wrapping_mul(h2)) as usize) % BITS);
        let seen = |g: &Vec<u64>| positions.clone().all(|b| g[b / 64] & (1 << (b % 64)) != 0);
        if seen(&self.bits[0]) || seen(&self.bits[1]) {
            return false;
        }
        let g = &mut self.bits[self.current];
        for b in positions {
            g[b / 64] |= 1 << (b % 64);
        }
        self.added += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_counts_once_per_timeout() {
        let mut r = RecentCompleters::default();
        let hasher = ahash::RandomState::new();
        let pair = |t: u8, host: u32| hasher.hash_one((t, host));
        assert!(r.first(pair(1, 7), 100, 60));
        assert!(!r.first(pair(1, 7), 101, 60), "a replay");
        assert!(r.first(pair(2, 7), 101, 60), "another torrent");
        assert!(r.first(pair(1, 8), 101, 60), "another host");
        // Remembered for at least a timeout, across a turn-over.
        assert!(!r.first(pair(1, 7), 165, 60));
        // Forgotten after two.
        assert!(r.first(pair(1, 7), 230, 60));
    }

    #[test]
    fn few_false_positives_at_capacity() {
        let mut r = RecentCompleters::default();
        let hasher = ahash::RandomState::new();
        let n = CAPACITY as u32 - 1;
        let refused = (0..n)
            .filter(|&i| !r.first(hasher.hash_one(i), 0, 60))
            .count();
        // 0.24 % expected at capacity, less on the way there.
        assert!(refused < n as usize / 200, "{refused} of {n}");
    }
}

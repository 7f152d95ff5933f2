//! The index of a large swarm's peers: an open-addressing table of 4-byte
//! slots, each holding a peer's position in the swarm's vector and, above it,
//! as many bits of the peer's hash as the slot has left (a tag).
//!
//! Why not hashbrown's `HashTable<u32>` (the first version, 5 bytes a slot at
//! up to 7/8 full): a lookup there reads a control byte, then the slot, then
//! the peer, three cache misses in different places once the swarm is large.
//! Here tag and position share the slot, so a lookup is one miss into the
//! table and one into the vector (a tag matches a wrong peer once in 2^(32 -
//! log2 slots) probes), and the slot can be prefetched ([`PeerIndex::prefetch`])
//! while other requests of a batch are handled. At most 3/4 full, it takes
//! 5.3 to 10.7 bytes a peer, as hashbrown's took 5.7 to 11.4.
//!
//! A table of 2^k slots keeps `position + 1` in the low k bits (the table is
//! never full, so it fits) and the top 32 − k bits of the hash's high half as
//! the tag; a probe starts at the hash's low k bits. Linear probing, deletion
//! by backward shift (no tombstones): the shift needs each later entry's home
//! slot, which the slot does not hold, so [`PeerIndex::remove`] asks the
//! caller to hash the peer at a position.
//!
//! The caller keeps positions consistent: after it moves an element in its
//! vector it calls [`PeerIndex::relocate`], and before it removes one it calls
//! [`PeerIndex::remove`]. Positions in the table are always unique.

/// A free slot. A used one holds `position + 1` in its low bits: never 0.
const EMPTY: u32 = 0;
/// The smallest table: an index exists only past `INDEX_FROM` peers.
const MIN_SLOTS: usize = 64;

/// The position a used slot of a table with `mask` holds.
#[inline]
fn position(slot: u32, mask: usize) -> usize {
    (slot & mask as u32) as usize - 1
}

/// Slots needed for `n` elements at most 3/4 full.
fn slots_for(n: usize) -> usize {
    (n * 4 / 3 + 1).next_power_of_two().max(MIN_SLOTS)
}

#[derive(Debug)]
pub struct PeerIndex {
    /// A power of two long, at least `MIN_SLOTS`.
    slots: Box<[u32]>,
    len: usize,
}

impl PeerIndex {
    pub fn with_capacity(n: usize) -> PeerIndex {
        PeerIndex {
            slots: vec![EMPTY; slots_for(n)].into_boxed_slice(),
            len: 0,
        }
    }

    /// Slot count − 1; also the mask of the position bits.
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The tag bits of `hash`, in place above the position bits.
    #[inline]
    fn tag(&self, hash: u64) -> u32 {
        (hash >> 32) as u32 & !(self.mask() as u32)
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// The slot value for `pos` filed under `hash`.
    #[inline]
    fn entry(&self, hash: u64, pos: usize) -> u32 {
        // The table is always longer than the vector, so `pos + 1` fits
        // the position bits.
        debug_assert!(pos < self.mask());
        self.tag(hash) | (pos as u32 + 1)
    }

    #[inline]
    fn position(&self, slot: u32) -> usize {
        position(slot, self.mask())
    }

    /// Starts loading the slot where a lookup of `hash` begins.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        crate::sys::prefetch(&self.slots[self.home(hash)]);
    }

    /// The position whose element `is_key` accepts, among those filed
    /// under `hash`. `is_key` is asked only about positions whose tag
    /// matches.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(usize) -> bool) -> Option<usize> {
        let mask = self.mask();
        let tag = self.tag(hash);
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if s & !(mask as u32) == tag {
                let pos = self.position(s);
                if is_key(pos) {
                    return Some(pos);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot holding `pos`, filed under `hash`.
    #[inline]
    fn slot_of(&self, hash: u64, pos: usize) -> Option<usize> {
        let mask = self.mask();
        let wanted = self.entry(hash, pos);
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if s == wanted {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Puts an entry for `pos` in the first free slot from `hash`'s home.
    #[inline]
    fn place(&mut self, hash: u64, pos: usize) {
        let mask = self.mask();
        let value = self.entry(hash, pos);
        let mut i = self.home(hash);
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = value;
    }

    /// Files `pos` under `hash`. `rehash` gives the hash of the element at a
    /// position, for when the table grows.
    #[inline]
    pub fn insert(&mut self, hash: u64, pos: usize, rehash: impl Fn(usize) -> u64) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize(slots_for(self.len + 1), &rehash);
        }
        self.place(hash, pos);
        self.len += 1;
    }

    /// Removes the entry for `pos`, filed under `hash`. `rehash` gives the
    /// hash of the element at any other position in the table.
    pub fn remove(&mut self, hash: u64, pos: usize, rehash: impl Fn(usize) -> u64) {
        let Some(mut hole) = self.slot_of(hash, pos) else {
            return;
        };
        let mask = self.mask();
        let mut j = (hole + 1) & mask;
        loop {
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            // The entry at j may fill the hole if its home is not in the
            // cyclic range (hole, j].
            let home = self.home(rehash(self.position(s)));
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    /// The element filed under `hash` moved from `from` to `to`.
    #[inline]
    pub fn relocate(&mut self, hash: u64, from: usize, to: usize) {
        if let Some(i) = self.slot_of(hash, from) {
            self.slots[i] = self.entry(hash, to);
        }
    }

    /// The elements filed under `hash_a` at `a` and under `hash_b` at `b`
    /// swapped places.
    #[inline]
    pub fn swap(&mut self, hash_a: u64, a: usize, hash_b: u64, b: usize) {
        if let (Some(i), Some(j)) = (self.slot_of(hash_a, a), self.slot_of(hash_b, b)) {
            self.slots[i] = self.entry(hash_a, b);
            self.slots[j] = self.entry(hash_b, a);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slots.len() * 3 / 4
    }

    /// Moves every entry into a table of `slots` slots.
    fn resize(&mut self, slots: usize, rehash: &impl Fn(usize) -> u64) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots].into_boxed_slice());
        for &s in old.iter().filter(|&&s| s != EMPTY) {
            let pos = position(s, old.len() - 1);
            self.place(rehash(pos), pos);
        }
    }

    /// Forgets everything and files positions `0..hashes.len()` anew.
    pub fn rebuild(&mut self, hashes: impl ExactSizeIterator<Item = u64>) {
        let n = hashes.len();
        if self.slots.len() == slots_for(n) {
            self.slots.fill(EMPTY);
        } else {
            self.slots = vec![EMPTY; slots_for(n)].into_boxed_slice();
        }
        for (pos, h) in hashes.enumerate() {
            self.place(h, pos);
        }
        self.len = n;
    }

    /// Gives memory back when the table is far larger than it needs to be.
    pub fn shrink(&mut self, rehash: impl Fn(usize) -> u64) {
        if self.slots.len() > MIN_SLOTS && self.len * 8 < self.slots.len() {
            self.resize(slots_for(self.len), &rehash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A vector of keys with the index beside it, kept as the swarm keeps
    /// its peers: removal swaps the last element into the hole.
    struct Model {
        keys: Vec<u64>,
        index: PeerIndex,
        hash: fn(u64) -> u64,
    }

    fn good(k: u64) -> u64 {
        k.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// A weak hash on purpose: 64 home slots and 2 tag bits (the top two,
    /// above the position bits of any table here), so that probe runs are
    /// long and wrap, and tags both tell keys apart and match wrong ones.
    fn weak(k: u64) -> u64 {
        good(k) & 0xc000_0000_0000_003f
    }

    impl Model {
        fn find(&self, k: u64) -> Option<usize> {
            self.index.find((self.hash)(k), |p| self.keys[p] == k)
        }

        fn insert(&mut self, k: u64) {
            if self.find(k).is_some() {
                return;
            }
            self.keys.push(k);
            let (keys, h) = (&self.keys, self.hash);
            self.index.insert(h(k), keys.len() - 1, |p| h(keys[p]));
        }

        fn remove(&mut self, k: u64) {
            let Some(pos) = self.find(k) else { return };
            let (keys, h) = (&self.keys, self.hash);
            self.index.remove(h(k), pos, |p| h(keys[p]));
            let last = self.keys.len() - 1;
            if pos != last {
                self.keys[pos] = self.keys[last];
                self.index.relocate((self.hash)(self.keys[pos]), last, pos);
            }
            self.keys.pop();
            let (keys, h) = (&self.keys, self.hash);
            self.index.shrink(|p| h(keys[p]));
        }

        /// Swaps `k` with the first key, as the swarm swaps a peer across
        /// the leecher/seeder border.
        fn swap_first(&mut self, k: u64) {
            let (Some(pos), Some(&first)) = (self.find(k), self.keys.first()) else {
                return;
            };
            let h = self.hash;
            self.index.swap(h(k), pos, h(first), 0);
            self.keys.swap(pos, 0);
        }

        fn check(&self) {
            assert_eq!(self.index.len(), self.keys.len());
            for (i, &k) in self.keys.iter().enumerate() {
                assert_eq!(self.find(k), Some(i), "key {k} at {i}");
            }
            assert!(self.index.len() <= self.index.capacity());
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_vector(ops in proptest::collection::vec((0u8..5, 0u64..400), 0..3000)) {
            let mut m = Model { keys: Vec::new(), index: PeerIndex::with_capacity(0), hash: weak };
            for (i, (op, k)) in ops.into_iter().enumerate() {
                match op {
                    0 | 1 => m.insert(k),
                    2 | 3 => m.remove(k),
                    _ => m.swap_first(k),
                }
                if i % 97 == 0 { m.check() }
                prop_assert_eq!(m.find(1000), None);
            }
            m.check();
            let keys = m.keys.clone();
            m.index.rebuild(keys.iter().map(|&k| weak(k)));
            m.check();
        }
    }

    #[test]
    fn grows_and_shrinks() {
        let mut m = Model {
            keys: Vec::new(),
            index: PeerIndex::with_capacity(0),
            hash: good,
        };
        for k in 0..10_000 {
            m.insert(k);
        }
        m.check();
        let big = m.index.slots.len();
        assert!(big >= 10_000 * 4 / 3);
        for k in 0..9_990 {
            m.remove(k);
        }
        m.check();
        assert!(m.index.slots.len() < big / 8);
    }
}

//! A hash index over a dense vector: the table holds positions into a `Vec`
//! that the caller owns, and finds them by the hash of the element's key.
//!
//! Why not a `HashMap<K, V>`: a dense vector can be walked from a cursor (so
//! cleaning can work a slice at a time and resume), picking random neighbours
//! is a random start and a contiguous run, and the index costs 8 bytes a slot
//! instead of a whole key-value pair.
//!
//! Why not hashbrown's `HashTable<u32>` (the first version): a lookup there
//! compares the key of every candidate, which is a cache miss into the
//! caller's vector, and its slots can't be prefetched. Here a slot holds the
//! position and 32 bits of the hash, so a lookup touches the caller's vector
//! only for a candidate whose hash bits match (almost always the right one),
//! and [`DenseIndex::prefetch`] / [`DenseIndex::candidate`] let a batch start
//! all its misses before it needs any of them. Open addressing with linear
//! probing at most 70 % full, and deletion by backward shift (no tombstones),
//! so probe runs stay short however many elements come and go.
//!
//! The caller keeps positions consistent: after it moves an element in its
//! vector it calls [`DenseIndex::relocate`], and before it removes one it calls
//! [`DenseIndex::remove`]. Positions in the table are always unique, and below
//! `u32::MAX`.

/// A free slot. A used one is `hash bits << 32 | (position + 1)`, never 0.
const EMPTY: u64 = 0;
/// The smallest table that is allocated.
const MIN_SLOTS: usize = 16;

#[derive(Default, Debug)]
pub struct DenseIndex {
    /// A power of two long, or empty.
    slots: Box<[u64]>,
    len: usize,
}

#[inline]
fn slot(hash: u64, pos: usize) -> u64 {
    debug_assert!(pos < u32::MAX as usize);
    ((hash as u32 as u64) << 32) | (pos as u64 + 1)
}

#[inline]
fn bits(slot: u64) -> u32 {
    (slot >> 32) as u32
}

#[inline]
fn position(slot: u64) -> usize {
    (slot as u32 - 1) as usize
}

/// Slots needed for `n` elements at most 70 % full.
fn slots_for(n: usize) -> usize {
    (n * 10 / 7 + 1).next_power_of_two().max(MIN_SLOTS)
}

impl DenseIndex {
    pub fn with_capacity(n: usize) -> DenseIndex {
        DenseIndex {
            slots: vec![EMPTY; slots_for(n)].into_boxed_slice(),
            len: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot where the probe for `bits` starts.
    #[inline]
    fn home(&self, bits: u32) -> usize {
        bits as usize & self.mask()
    }

    /// The slot holding `pos`, filed under `hash`.
    #[inline]
    fn slot_of(&self, hash: u64, pos: usize) -> Option<usize> {
        let wanted = slot(hash, pos);
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = self.home(hash as u32);
        loop {
            match self.slots[i] {
                EMPTY => return None,
                s if s == wanted => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The position whose element `is_key` accepts, among those filed
    /// under `hash`.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(usize) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let wanted = hash as u32;
        let mask = self.mask();
        let mut i = self.home(wanted);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if bits(s) == wanted && is_key(position(s)) {
                return Some(position(s));
            }
            i = (i + 1) & mask;
        }
    }

    /// The first position filed under bits of `hash`, without looking at
    /// the element: almost always the element with that key, if there is
    /// one. For prefetching it.
    #[inline]
    pub fn candidate(&self, hash: u64) -> Option<usize> {
        self.find(hash, |_| true)
    }

    /// Starts loading the slot where a lookup of `hash` begins.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(s) = self.slots.get(self.home(hash as u32)) {
            crate::sys::prefetch(s);
        }
    }

    /// Files `pos` under `hash`.
    #[inline]
    pub fn insert(&mut self, hash: u64, pos: usize) {
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            self.resize(slots_for(self.len + 1).max(self.slots.len() * 2));
        }
        self.put(slot(hash, pos));
        self.len += 1;
    }

    /// Puts `s` in the first free slot from its home (there is one).
    #[inline]
    fn put(&mut self, s: u64) {
        let mask = self.mask();
        let mut i = self.home(bits(s));
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
    }

    /// Removes the entry for `pos`, filed under `hash`.
    pub fn remove(&mut self, hash: u64, pos: usize) {
        let Some(mut hole) = self.slot_of(hash, pos) else {
            return;
        };
        // Backward shift: pull later entries of the run into the hole when
        // their probe passed it, so that no lookup meets a gap before its
        // element.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            let home = self.home(bits(s));
            if hole.wrapping_sub(home) & mask < j.wrapping_sub(home) & mask {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    /// The element filed under `hash` moved from `from` to `to`.
    #[inline]
    pub fn relocate(&mut self, hash: u64, from: usize, to: usize) {
        if let Some(i) = self.slot_of(hash, from) {
            self.slots[i] = slot(hash, to);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements it holds before it grows.
    pub fn capacity(&self) -> usize {
        self.slots.len() * 7 / 10
    }

    /// Bytes of its table.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots].into_boxed_slice());
        crate::sys::huge_pages(self.slots.as_ptr(), self.slots.len());
        for &s in old.iter().filter(|&&s| s != EMPTY) {
            self.put(s);
        }
    }

    /// Gives memory back when the table is far larger than it needs to be.
    pub fn shrink(&mut self) {
        if self.slots.len() > 64 && self.len < self.capacity() / 4 {
            self.resize(slots_for(self.len * 2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Keys are small numbers; their "hash" is chosen by the test, so that
    /// collisions and wrap-around at the end of the table are common.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        /// Swap-remove the element at this index (mod len), as the callers do.
        SwapRemove(u16),
        Shrink,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u16>().prop_map(|k| Op::Insert(k % 500)),
            2 => any::<u16>().prop_map(|k| Op::Remove(k % 500)),
            2 => any::<u16>().prop_map(Op::SwapRemove),
            1 => Just(Op::Shrink),
        ]
    }

    proptest! {
        /// The index over a vector of keys always finds every key at its
        /// position and nothing else, whatever the order of operations, with
        /// hashes that collide a lot (`hash_bits` few bits of spread) and
        /// with the high half of the hash never used.
        #[test]
        fn agrees_with_the_vector(ops in proptest::collection::vec(op(), 1..400), hash_bits in 1u32..12) {
            let hash = |k: u16| -> u64 { (k as u64 * 0x9E37_79B9) & ((1 << hash_bits) - 1) | 0xFFFF_0000_0000_0000 };
            let mut keys: Vec<u16> = Vec::new();
            let mut index = DenseIndex::default();
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        if !keys.contains(&k) {
                            keys.push(k);
                            index.insert(hash(k), keys.len() - 1);
                        }
                    }
                    Op::Remove(k) => {
                        if let Some(pos) = keys.iter().position(|&x| x == k) {
                            index.remove(hash(k), pos);
                            let last = keys.len() - 1;
                            if pos != last {
                                index.relocate(hash(keys[last]), last, pos);
                            }
                            keys.swap_remove(pos);
                        }
                    }
                    Op::SwapRemove(i) => {
                        if !keys.is_empty() {
                            let pos = i as usize % keys.len();
                            index.remove(hash(keys[pos]), pos);
                            let last = keys.len() - 1;
                            if pos != last {
                                index.relocate(hash(keys[last]), last, pos);
                            }
                            keys.swap_remove(pos);
                        }
                    }
                    Op::Shrink => index.shrink(),
                }
                prop_assert_eq!(index.len(), keys.len());
                let at: HashMap<u16, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
                for k in 0..500u16 {
                    let found = index.find(hash(k), |p| keys[p] == k);
                    prop_assert_eq!(found, at.get(&k).copied(), "key {}", k);
                }
            }
        }
    }

    #[test]
    fn grows_and_finds_every_position() {
        let hashes: Vec<u64> = (0..1000u64).map(|i| i * 7).collect();
        let mut index = DenseIndex::default();
        for (pos, &h) in hashes.iter().enumerate() {
            index.insert(h, pos);
        }
        assert_eq!(index.len(), 1000);
        for (pos, &h) in hashes.iter().enumerate() {
            assert_eq!(index.find(h, |p| p == pos), Some(pos));
            assert_eq!(index.candidate(h), Some(pos));
        }
        assert!(index.capacity() >= 1000);
        assert!(
            index.heap_bytes() <= 2048 * 8,
            "at most twice the slots needed"
        );
    }

    #[test]
    fn shrinks_when_mostly_empty_and_stays_correct() {
        let mut index = DenseIndex::with_capacity(10_000);
        let big = index.heap_bytes();
        for pos in 0..100 {
            index.insert(pos as u64 * 31, pos);
        }
        index.shrink();
        assert!(
            index.heap_bytes() < big / 8,
            "{} of {big}",
            index.heap_bytes()
        );
        for pos in 0..100 {
            assert_eq!(index.find(pos as u64 * 31, |p| p == pos), Some(pos));
        }
        // An empty index finds nothing and prefetching from it is harmless.
        let empty = DenseIndex::default();
        empty.prefetch(3);
        assert_eq!(empty.find(3, |_| true), None);
    }
}

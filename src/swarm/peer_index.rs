//! The index of a large swarm's peers: hashbrown's `HashTable` of `u32`
//! positions into the swarm's peer vector, found by the hash of the peer's
//! address. 5 bytes a slot at up to 7/8 full: the most compact choice, which
//! matters here as millions of peers can sit in large swarms. (The torrents'
//! index, [`super::DenseIndex`], trades 8-byte slots for lookups that can be
//! prefetched; for peers that bought no measurable speed and cost 6 bytes a
//! peer at 5M peers.)
//!
//! The caller keeps positions consistent: after it moves an element in its
//! vector it calls [`PeerIndex::relocate`], and before it removes one it calls
//! [`PeerIndex::remove`]. Positions in the table are always unique.

use hashbrown::HashTable;

#[derive(Default, Debug)]
pub struct PeerIndex {
    table: HashTable<u32>,
}

impl PeerIndex {
    pub fn with_capacity(n: usize) -> PeerIndex {
        PeerIndex {
            table: HashTable::with_capacity(n),
        }
    }

    /// The position whose element `is_key` accepts, among those filed
    /// under `hash`.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(usize) -> bool) -> Option<usize> {
        self.table
            .find(hash, |&pos| is_key(pos as usize))
            .map(|&p| p as usize)
    }

    /// Files `pos` under `hash`. `rehash` gives the hash of the element at a
    /// position, for when the table grows.
    #[inline]
    pub fn insert(&mut self, hash: u64, pos: usize, rehash: impl Fn(usize) -> u64) {
        self.table
            .insert_unique(hash, pos as u32, |&p| rehash(p as usize));
    }

    /// Removes the entry for `pos`, filed under `hash`.
    #[inline]
    pub fn remove(&mut self, hash: u64, pos: usize) {
        if let Ok(entry) = self.table.find_entry(hash, |&p| p as usize == pos) {
            entry.remove();
        }
    }

    /// The element filed under `hash` moved from `from` to `to`.
    #[inline]
    pub fn relocate(&mut self, hash: u64, from: usize, to: usize) {
        if let Some(p) = self.table.find_mut(hash, |&p| p as usize == from) {
            *p = to as u32;
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Forgets everything and files positions `0..hashes.len()` anew.
    pub fn rebuild(&mut self, hashes: impl ExactSizeIterator<Item = u64> + Clone) {
        self.table.clear();
        let all: Vec<u64> = hashes.collect();
        self.table.shrink_to(all.len(), |&p| all[p as usize]);
        for (pos, &h) in all.iter().enumerate() {
            self.table
                .insert_unique(h, pos as u32, |&p| all[p as usize]);
        }
    }

    /// Gives memory back when the table is far larger than it needs to be.
    pub fn shrink(&mut self, rehash: impl Fn(usize) -> u64) {
        let len = self.table.len();
        if self.table.capacity() > 64 && len < self.table.capacity() / 4 {
            self.table.shrink_to(len * 2, |&p| rehash(p as usize));
        }
    }
}

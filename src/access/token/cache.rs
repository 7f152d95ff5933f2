//! Tokens already verified, so that a client re-announcing every interval
//! costs a hash lookup, not a signature check.
//!
//! Keyed by the token's bytes (all of them: a token is only ever found
//! again by exactly the bytes that were verified; only the hash is taken
//! from its tail, see [`key_hash`]), each entry kept until
//! the token's `exp` (plus the leeway). Bounded in entries; when a shard is
//! full its expired entries go first, then a quarter of the others.
//!
//! Why shared by the socket workers, in shards under a mutex, rather than a
//! map per worker: it lives in the immutable access lists, so a reload (key
//! rotation) starts with an empty cache and no worker has to be told; an
//! uncontended lock costs two atomic operations, and with 16 shards two
//! workers seldom meet on one.

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::protocol::InfoHash;

const SHARDS: usize = 16;

/// What a verified token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Unix seconds after which the token is refused as expired (`exp`
    /// plus the leeway).
    pub(crate) until: u64,
    /// The torrents it names.
    pub(crate) hashes: SmallVec<[InfoHash; 1]>,
}

struct Entry {
    hash: u64,
    token: Box<[u8]>,
    grant: Grant,
}

pub(crate) struct TokenCache {
    shards: Box<[CachePadded<Mutex<HashTable<Entry>>>]>,
    per_shard: usize,
    hasher: ahash::RandomState,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCache({} entries)", self.len())
    }
}

impl TokenCache {
    /// A cache of at most about `entries` tokens (rounded up to a whole
    /// number per shard).
    pub(crate) fn new(entries: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Default::default()).collect(),
            per_shard: entries.div_ceil(SHARDS).max(1),
            hasher: ahash::RandomState::new(),
        }
    }

    /// The hash a token is filed under: of its length and its last 32
    /// bytes, which are signature, random-looking and different for every
    /// token signed. Why not all of it: hashing a 600-byte RS256 token was
    /// most of a cached check (measured: 400 ns a check, 36 ns with tokens
    /// off). Equality still compares every byte, and only verified tokens
    /// are ever inserted, so made-up tokens that share a tail cost a
    /// compare, not a flood of one bucket.
    #[inline]
    fn key_hash(&self, token: &[u8]) -> u64 {
        let tail = &token[token.len().saturating_sub(32)..];
        self.hasher.hash_one((token.len(), tail))
    }

    /// The grant of `token` if it is cached. An expired one is left for
    /// the caller to refuse (and for eviction to drop).
    #[inline]
    pub(crate) fn get<R>(&self, token: &[u8], f: impl FnOnce(&Grant) -> R) -> Option<R> {
        let hash = self.key_hash(token);
        let shard = self.shards[hash as usize % SHARDS].lock();
        shard
            .find(hash, |e| e.hash == hash && *e.token == *token)
            .map(|e| f(&e.grant))
    }

    /// Remembers a verified token.
    pub(crate) fn insert(&self, token: &[u8], grant: Grant, now: u64) {
        let hash = self.key_hash(token);
        let mut shard = self.shards[hash as usize % SHARDS].lock();
        if let Some(e) = shard.find_mut(hash, |e| e.hash == hash && *e.token == *token) {
            e.grant = grant;
            return;
        }
        if shard.len() >= self.per_shard {
            shard.retain(|e| e.grant.until >= now);
        }
        if shard.len() >= self.per_shard {
            // Which ones go hardly matters (all are in force): every
            // fourth in the table's order, which follows the hash.
            let mut n = 0u32;
            shard.retain(|_| {
                n += 1;
                !n.is_multiple_of(4)
            });
        }
        let entry = Entry {
            hash,
            token: token.into(),
            grant,
        };
        shard.insert_unique(hash, entry, |e| e.hash);
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(until: u64) -> Grant {
        Grant {
            until,
            hashes: SmallVec::from_elem(InfoHash([1; 20]), 1),
        }
    }

    #[test]
    fn finds_what_it_holds_by_the_whole_token() {
        let c = TokenCache::new(100);
        c.insert(b"a.b.c", grant(10), 0);
        assert_eq!(c.get(b"a.b.c", |g| g.until), Some(10));
        assert_eq!(c.get(b"a.b.d", |g| g.until), None);
        assert_eq!(c.get(b"a.b.", |g| g.until), None);
        c.insert(b"a.b.c", grant(20), 0);
        assert_eq!(c.get(b"a.b.c", |g| g.until), Some(20));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn stays_bounded_and_drops_expired_tokens_first() {
        let c = TokenCache::new(SHARDS * 8);
        for i in 0..10_000u32 {
            c.insert(&i.to_le_bytes(), grant(u64::from(i % 2) * 100), 50);
            assert!(c.shards.iter().all(|s| s.lock().len() <= 8));
        }
        // Expired entries (until 0, now 50) went before those in force.
        let live = (9_000..10_000u32)
            .filter(|i| c.get(&i.to_le_bytes(), |_| ()).is_some())
            .count();
        assert!(live > 0);
        assert!(c.len() <= SHARDS * 8);
    }
}

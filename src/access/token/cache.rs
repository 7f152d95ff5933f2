//! Tokens already verified, so that a client re-announcing every interval
//! costs a hash lookup, not a signature check.
//!
//! Keyed by the token's bytes (all of them: a token is only ever found
//! again by exactly the bytes that were verified; only the hash is taken
//! from its tail, see [`TokenCache::key_hash`]), each entry kept until the
//! token's `exp` (plus the leeway) or until a newer token needs its place.
//!
//! Layout, and why: a table of sets of four ways, each set its own lock,
//! tags and entry pointers in one 128-byte block, and each verified token
//! one allocation holding what it grants followed by its bytes. A cached
//! check then reads two places in memory: the set, then the entry from its
//! start (grant, then the token compared in order). The hashbrown map under
//! 16 shard locks it replaces read four, one after another: the shard's
//! lock, the map's control bytes, the slot, and the token's own allocation;
//! with 5000 clients announcing in turn each of them was a cache miss
//! (perf on the whole daemon: 7.7 % of its samples in the lookup and the
//! compare, benches/README.md "Tokens, whole daemon"). A lock per set
//! rather than per shard: two workers meet only on the same set.
//!
//! The price of sets: a token has four places it may go, so a set can fill
//! while the table has room. The one that expires first then makes way
//! (an expired one before any in force), and a token pushed out early is
//! verified again at its next announce: one signature check per interval
//! of that client, out of the `verify_per_second` budget.

use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::protocol::InfoHash;

/// Ways per set.
const WAYS: usize = 4;

/// What a verified token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Unix seconds after which the token is refused as expired (`exp`
    /// plus the leeway).
    pub(crate) until: u64,
    /// The torrents it names.
    pub(crate) hashes: SmallVec<[InfoHash; 1]>,
}

/// A cached grant, read in place from its entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CachedGrant<'a> {
    pub(crate) until: u64,
    /// The info hashes named, 20 bytes each.
    hashes: &'a [u8],
}

impl CachedGrant<'_> {
    /// Whether the token names `info_hash`.
    #[inline]
    pub(crate) fn names(&self, info_hash: &InfoHash) -> bool {
        self.hashes.chunks_exact(20).any(|h| h == info_hash.0)
    }
}

/// One cached token, in one allocation: `until` (8 bytes, little-endian),
/// the number of info hashes (2 bytes), the hashes (20 bytes each), then
/// the token's bytes.
struct Entry(Box<[u8]>);

const HEAD: usize = 10;

impl Entry {
    /// None for a grant of more hashes than a count of 2 bytes holds (no
    /// token of [`super::MAX_TOKEN`] bytes names that many).
    fn new(token: &[u8], grant: &Grant) -> Option<Entry> {
        let count = u16::try_from(grant.hashes.len()).ok()?;
        let mut bytes = Vec::with_capacity(HEAD + 20 * grant.hashes.len() + token.len());
        bytes.extend_from_slice(&grant.until.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        for h in &grant.hashes {
            bytes.extend_from_slice(&h.0);
        }
        bytes.extend_from_slice(token);
        Some(Entry(bytes.into_boxed_slice()))
    }

    #[inline]
    fn until(&self) -> u64 {
        let mut until = [0; 8];
        until.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(until)
    }

    #[inline]
    fn hashes_end(&self) -> usize {
        HEAD + 20 * usize::from(u16::from_le_bytes([self.0[8], self.0[9]]))
    }

    #[inline]
    fn token(&self) -> &[u8] {
        &self.0[self.hashes_end()..]
    }

    #[inline]
    fn grant(&self) -> CachedGrant<'_> {
        CachedGrant {
            until: self.until(),
            hashes: &self.0[HEAD..self.hashes_end()],
        }
    }
}

#[derive(Default)]
struct Way {
    /// The high 32 bits of the token's hash: most ways that are not the
    /// token are passed over without reading their entry.
    tag: u32,
    entry: Option<Entry>,
}

impl Way {
    #[inline]
    fn holds(&self, tag: u32, token: &[u8]) -> Option<&Entry> {
        if self.tag != tag {
            return None;
        }
        self.entry.as_ref().filter(|e| e.token() == token)
    }
}

/// One set: its lock and four ways, 104 bytes kept in one 128-byte block
/// (a pair of cache lines, which x86 CPUs fetch together).
#[derive(Default)]
#[repr(align(128))]
struct Set(Mutex<[Way; WAYS]>);

pub(crate) struct TokenCache {
    sets: Box<[Set]>,
    hasher: ahash::RandomState,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCache({} entries)", self.len())
    }
}

impl TokenCache {
    /// A cache of at most `entries` tokens, rounded up to a power of two
    /// and at least one set. The sets are made here, 32 bytes an entry.
    pub(crate) fn new(entries: usize) -> TokenCache {
        let sets = entries.div_ceil(WAYS).next_power_of_two();
        TokenCache {
            sets: (0..sets).map(|_| Set::default()).collect(),
            hasher: ahash::RandomState::new(),
        }
    }

    /// The hash a token is filed under: of its last 32 bytes, which are
    /// signature, random-looking and different for every token signed.
    /// Why not all of it: hashing a 600-byte RS256 token was most of a
    /// cached check (measured: 400 ns a check, 36 ns with tokens off); and
    /// the tail alone can be read from a datagram before it is parsed, for
    /// [`TokenCache::prefetch_set`]. Equality still compares every byte,
    /// and only verified tokens are ever inserted, so made-up tokens that
    /// share a tail cost a compare, not the eviction of a good one.
    #[inline]
    fn key_hash(&self, token: &[u8]) -> u64 {
        self.hasher
            .hash_one(&token[token.len().saturating_sub(32)..])
    }

    /// The set and tag of a hash: the low bits pick the set, the high 32
    /// are the tag.
    #[inline]
    fn place(&self, hash: u64) -> (&Set, u32) {
        // The number of sets is a power of two.
        let set = &self.sets[hash as usize & (self.sets.len() - 1)];
        (set, (hash >> 32) as u32)
    }

    /// The grant of `token` if it is cached. An expired one is left for
    /// the caller to refuse (and for a newer token to replace).
    #[inline]
    pub(crate) fn get<R>(&self, token: &[u8], f: impl FnOnce(CachedGrant<'_>) -> R) -> Option<R> {
        let (set, tag) = self.place(self.key_hash(token));
        let ways = set.0.lock();
        ways.iter()
            .find_map(|w| w.holds(tag, token))
            .map(|e| f(e.grant()))
    }

    /// Starts loading the set of the token that ends with `tail` (its last
    /// 32 bytes, or all of a shorter one), so that a later lookup finds it
    /// in the CPU's cache. A hint: wrong bytes only waste it.
    #[inline]
    pub(crate) fn prefetch_set(&self, tail: &[u8]) {
        let (set, _) = self.place(self.key_hash(tail));
        let at: *const Set = set;
        crate::sys::prefetch(at);
        crate::sys::prefetch(at.wrapping_byte_add(64));
    }

    /// Starts loading the entries of the set of `tail` whose tag is its
    /// tag: what a lookup of that token will compare. Best called a while
    /// after [`TokenCache::prefetch_set`] of the same tail. A set another
    /// worker holds is passed over rather than waited for.
    #[inline]
    pub(crate) fn prefetch_entry(&self, tail: &[u8]) {
        let (set, tag) = self.place(self.key_hash(tail));
        let Some(ways) = set.0.try_lock() else {
            return;
        };
        // The first two lines only (the grant and the token's start): the
        // compare reads on in order, which the CPU's own prefetcher follows,
        // and a batch's worth of every line of every token (64 x 11) was
        // more loads than the CPU keeps in flight: the prefetches stalled.
        for e in ways
            .iter()
            .filter(|w| w.tag == tag)
            .filter_map(|w| w.entry.as_ref())
        {
            crate::sys::prefetch(e.0.as_ptr());
            crate::sys::prefetch(e.0.as_ptr().wrapping_add(64));
        }
    }

    /// Remembers a verified token, in place of the same token, else of an
    /// empty way, else of the way whose token expires first.
    pub(crate) fn insert(&self, token: &[u8], grant: &Grant) {
        let Some(entry) = Entry::new(token, grant) else {
            return;
        };
        let (set, tag) = self.place(self.key_hash(token));
        let mut ways = set.0.lock();
        let same = ways.iter().position(|w| w.holds(tag, token).is_some());
        let i = same
            .or_else(|| ways.iter().position(|w| w.entry.is_none()))
            .or_else(|| (0..WAYS).min_by_key(|&i| ways[i].entry.as_ref().map_or(0, Entry::until)))
            .unwrap_or(0);
        ways[i] = Way {
            tag,
            entry: Some(entry),
        };
    }

    /// How many tokens are cached (reads every set: for tests and logs).
    pub(crate) fn len(&self) -> usize {
        self.sets
            .iter()
            .map(|s| s.0.lock().iter().filter(|w| w.entry.is_some()).count())
            .sum()
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

    fn until(c: &TokenCache, token: &[u8]) -> Option<u64> {
        c.get(token, |g| g.until)
    }

    #[test]
    fn finds_what_it_holds_by_the_whole_token() {
        let c = TokenCache::new(100);
        c.insert(b"a.b.c", &grant(10));
        assert_eq!(until(&c, b"a.b.c"), Some(10));
        assert_eq!(until(&c, b"a.b.d"), None);
        assert_eq!(until(&c, b"a.b."), None);
        c.insert(b"a.b.c", &grant(20));
        assert_eq!(until(&c, b"a.b.c"), Some(20));
        assert_eq!(c.len(), 1);
        // The same length and last 32 bytes: the same hash, set and tag,
        // told apart by the rest of the bytes.
        let good = [b"h".repeat(40), b"s".repeat(40)].concat();
        let made_up = [b"x".repeat(40), b"s".repeat(40)].concat();
        c.insert(&good, &grant(30));
        assert_eq!(until(&c, &good), Some(30));
        assert_eq!(until(&c, &made_up), None);
    }

    #[test]
    fn reads_back_every_hash_a_grant_names() {
        let c = TokenCache::new(8);
        let hashes: SmallVec<[InfoHash; 1]> = (0..5u8).map(|i| InfoHash([i; 20])).collect();
        c.insert(b"t", &Grant { until: 9, hashes });
        for i in 0..5u8 {
            assert_eq!(c.get(b"t", |g| g.names(&InfoHash([i; 20]))), Some(true));
        }
        assert_eq!(c.get(b"t", |g| g.names(&InfoHash([5; 20]))), Some(false));
    }

    #[test]
    fn a_full_set_drops_the_token_that_expires_first() {
        // Four entries: one set, so every token meets every other.
        let c = TokenCache::new(4);
        c.insert(b"expired", &grant(10));
        c.insert(b"b", &grant(300));
        c.insert(b"c", &grant(100));
        c.insert(b"d", &grant(200));
        c.insert(b"e", &grant(400));
        assert_eq!(until(&c, b"expired"), None);
        c.insert(b"f", &grant(500));
        assert_eq!(until(&c, b"c"), None, "the first to expire of those left");
        for t in [&b"b"[..], b"d", b"e", b"f"] {
            assert!(until(&c, t).is_some());
        }
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn stays_bounded() {
        let c = TokenCache::new(128);
        for i in 0..10_000u32 {
            c.insert(&i.to_le_bytes(), &grant(100));
        }
        assert_eq!(c.len(), 128);
        // The newest token is always found: it was just put in.
        assert!(until(&c, &9_999u32.to_le_bytes()).is_some());
    }
}

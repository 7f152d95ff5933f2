//! What keeps tokens that fail from costing a signature check each: the
//! refusals already found (a client with an expired or forged token that
//! re-announces is answered from memory), and a budget of signature checks
//! per second for tokens never seen, so a flood of made-up tokens costs a
//! bounded share of a core and the announces with cached tokens go on.
//!
//! Why a budget for the whole process and not per address: a per-address
//! table is one more map to bound and evict, and it does not stop a flood
//! from many addresses anyway; a global budget bounds the CPU whatever the
//! sources. While a flood lasts, a client whose token is new is told to
//! retry ("token check busy") and its next announce, a few seconds later,
//! usually gets through; clients with a token already verified (almost all
//! announces: a token is verified once and then cached) are not touched.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use hashbrown::HashMap;
use parking_lot::Mutex;

use super::super::list::Refusal;

const SHARDS: usize = 16;

/// One shard: token hash to the refusal and the Unix second it is kept to.
type Remembered = HashMap<u64, (Refusal, u64)>;

/// How long a refusal is remembered, in seconds. A token refused for its
/// signature, issuer or claims stays refused for as long as these keys are
/// loaded (a reload starts with an empty memory); an expired one stays
/// expired. A few minutes bound what a flood of distinct tokens leaves.
const REMEMBERED_FOR: u64 = 300;

/// Refusals of tokens that went through the whole check, by a hash of the
/// token's bytes.
///
/// Keyed by a 64-bit keyed hash of the whole token, not the token itself:
/// 16 bytes an entry instead of a kilobyte, and with a per-process random
/// key nobody can make a good token collide with a refused one (a chance
/// of 2^-64 per pair otherwise). The whole token is hashed, unlike the
/// cache of good tokens, because entries here come from anyone: made-up
/// tokens sharing a tail must not share a bucket.
pub(crate) struct RefusedTokens {
    shards: Box<[CachePadded<Mutex<Remembered>>]>,
    per_shard: usize,
    hasher: ahash::RandomState,
}

impl std::fmt::Debug for RefusedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RefusedTokens({} entries)", self.len())
    }
}

impl RefusedTokens {
    /// A memory of at most about `entries` refusals.
    pub(crate) fn new(entries: usize) -> RefusedTokens {
        RefusedTokens {
            shards: (0..SHARDS).map(|_| Default::default()).collect(),
            per_shard: entries.div_ceil(SHARDS).max(1),
            hasher: ahash::RandomState::new(),
        }
    }

    fn key(&self, token: &[u8]) -> u64 {
        self.hasher.hash_one(token)
    }

    /// The refusal `token` got before, if it is still remembered at `now`.
    pub(crate) fn get(&self, token: &[u8], now: u64) -> Option<Refusal> {
        let key = self.key(token);
        let shard = self.shards[key as usize % SHARDS].lock();
        match shard.get(&key) {
            Some(&(refusal, until)) if until >= now => Some(refusal),
            _ => None,
        }
    }

    /// Remembers that `token` was refused. "Not yet valid" is not
    /// remembered: the same token becomes good at its `nbf`.
    pub(crate) fn insert(&self, token: &[u8], refusal: Refusal, now: u64) {
        if refusal == Refusal::TokenNotYetValid {
            return;
        }
        let key = self.key(token);
        let mut shard = self.shards[key as usize % SHARDS].lock();
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, &mut (_, until)| until >= now);
            if shard.len() >= self.per_shard {
                // All in force: drop about a quarter, whichever the table's
                // order (the keyed hash) puts first.
                let mut n = 0u32;
                shard.retain(|_, _| {
                    n += 1;
                    !n.is_multiple_of(4)
                });
            }
        }
        shard.insert(key, (refusal, now.saturating_add(REMEMBERED_FOR)));
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// Signature checks allowed per second of the clock, for the whole
/// process: one atomic word holding the second and the checks spent in it.
pub(crate) struct VerifyBudget {
    per_second: u32,
    /// Unix second in the high 32 bits, checks spent in the low 32.
    spent: CachePadded<AtomicU64>,
}

impl std::fmt::Debug for VerifyBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyBudget({} per second)", self.per_second)
    }
}

impl VerifyBudget {
    pub(crate) fn new(per_second: u32) -> VerifyBudget {
        VerifyBudget {
            per_second,
            spent: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Takes one check from the budget of second `now`; false when it is
    /// spent.
    pub(crate) fn take(&self, now: u64) -> bool {
        let second = now & 0xffff_ffff;
        let mut current = self.spent.load(Ordering::Relaxed);
        loop {
            let (at, used) = (current >> 32, current & 0xffff_ffff);
            let used = if at == second { used } else { 0 };
            if used >= u64::from(self.per_second) {
                return false;
            }
            let next = (second << 32) | (used + 1);
            match self.spent.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_remembered_for_a_while_and_bounded() {
        let r = RefusedTokens::new(SHARDS * 4);
        r.insert(b"a.b.c", Refusal::TokenBadSignature, 100);
        assert_eq!(r.get(b"a.b.c", 100), Some(Refusal::TokenBadSignature));
        assert_eq!(
            r.get(b"a.b.c", 100 + REMEMBERED_FOR),
            Some(Refusal::TokenBadSignature)
        );
        assert_eq!(r.get(b"a.b.c", 101 + REMEMBERED_FOR), None);
        assert_eq!(r.get(b"a.b.d", 100), None);
        r.insert(b"later", Refusal::TokenNotYetValid, 100);
        assert_eq!(r.get(b"later", 100), None);
        for i in 0..10_000u32 {
            r.insert(&i.to_le_bytes(), Refusal::TokenInvalid, 100);
            assert!(r.shards.iter().all(|s| s.lock().len() <= 4));
        }
        assert!(r.len() <= SHARDS * 4);
    }

    #[test]
    fn the_budget_is_per_second_of_the_clock() {
        let b = VerifyBudget::new(3);
        assert!((0..3).all(|_| b.take(50)));
        assert!(!b.take(50));
        assert!(!b.take(50));
        assert!(b.take(51));
        assert!(b.take(51) && b.take(51));
        assert!(!b.take(51));
        let none = VerifyBudget::new(0);
        assert!(!none.take(1));
    }
}

//! Signed announce tokens (JWT): one version of the keys and settings of
//! `[access.token]`, the check an announce's token goes through, and the
//! cache that makes a re-announce cost a lookup.
//!
//! The signature, `exp`, `nbf`, `iss` and `aud` are checked by
//! `jsonwebtoken`; only the configured algorithm is accepted, so `alg:
//! none` or an HS256 token made with an RSA public key as its secret are
//! refused whatever the header says. The `infohash` claim is checked here.

mod cache;
mod keys;
mod refused;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use smallvec::SmallVec;

use super::config::{TokenAlgorithm, TokenConfig};
use super::list::Refusal;
use crate::protocol::InfoHash;
use cache::{Grant, TokenCache};
use keys::Keys;
use refused::{RefusedTokens, VerifyBudget};

/// Longest token looked at. RS256 with a 4096-bit key and a few dozen info
/// hashes fits; anything longer is refused unread, so nobody makes the
/// tracker decode or cache megabytes.
pub(crate) const MAX_TOKEN: usize = 8192;

/// The claims swarmd reads besides those `jsonwebtoken` checks.
#[derive(Deserialize)]
struct Claims {
    exp: u64,
    infohash: OneOrMany,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// An info hash in a claim: 40 hex characters, or a v2 hash whole (64),
/// of which clients announce the first 20 bytes.
fn claimed_hash(hex: &str) -> Option<InfoHash> {
    match hex.len() {
        40 => InfoHash::from_hex(hex),
        64 => InfoHash::from_hex(hex.get(..40)?),
        _ => None,
    }
}

/// One version of the token settings and keys. Immutable, swapped whole
/// with the access lists it belongs to (its cache with it).
#[derive(Debug)]
pub(crate) struct Tokens {
    keys: Keys,
    validation: Validation,
    leeway: u64,
    cache: TokenCache,
    refused: RefusedTokens,
    budget: VerifyBudget,
}

impl Tokens {
    /// Reads the key file `config` names (tokens on). The error names the
    /// file and the reason.
    pub(crate) fn build(config: &TokenConfig) -> Result<Tokens, String> {
        let path = config.key_file().ok_or("tokens are off")?;
        let keys = Keys::read(config.algorithm, path)?;
        let algorithm = match config.algorithm {
            TokenAlgorithm::HS256 => Algorithm::HS256,
            TokenAlgorithm::RS256 => Algorithm::RS256,
            TokenAlgorithm::ES256 | TokenAlgorithm::Off => Algorithm::ES256,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = u64::from(config.leeway);
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if !config.issuer.is_empty() {
            validation.set_issuer(&[&config.issuer]);
            required.push("iss");
        }
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&config.audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(Tokens {
            keys,
            validation,
            leeway: u64::from(config.leeway),
            cache: TokenCache::new(config.cache_entries as usize),
            refused: RefusedTokens::new(config.cache_entries as usize),
            budget: VerifyBudget::new(config.verify_per_second),
        })
    }

    /// What is configured, for the log.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{:?} tokens with {}",
            self.validation.algorithms[0],
            self.keys.summary()
        )
    }

    /// Checks that `token` lets its bearer announce `info_hash` at `now`
    /// (Unix seconds). Bytes, as they came: a cached token is found by
    /// them, and only a new one is read as text (UTF-8 validation of every
    /// UDP announce's URL data was ~40 ns a check).
    #[inline]
    pub(crate) fn check<T: AsRef<[u8]> + ?Sized>(
        &self,
        token: Option<&T>,
        info_hash: &InfoHash,
        now: u64,
    ) -> Result<(), Refusal> {
        let token = token.ok_or(Refusal::TokenRequired)?.as_ref();
        let cached = self
            .cache
            .get(token, |g| grants(g.until, g.names(info_hash), now));
        match cached {
            Some(result) => result,
            None => self.check_new(token, info_hash, now),
        }
    }

    /// Starts loading what the cached checks of a batch of UDP datagrams
    /// will read: first every token's set, then, once those are on their
    /// way, the entries they point to. A lookup is two dependent cache
    /// misses (set, then entry) that a lone check waits for one after the
    /// other; a batch that asks for them all first waits about once
    /// (measured in benches/README.md "Tokens, whole daemon").
    pub(crate) fn prefetch_udp<'a>(&self, datagrams: impl Iterator<Item = &'a [u8]>) {
        // The tails read once, kept for the second pass.
        let mut tails = [([0u8; 32], 0usize); crate::sys::BATCH];
        let mut kept = 0;
        for d in datagrams.take(tails.len()) {
            let (tail, n) = &mut tails[kept];
            if let Some(len) = crate::protocol::udp::url_data_tail(d, tail) {
                *n = len;
                self.cache.prefetch_set(&tail[32 - len..]);
                kept += 1;
            }
        }
        for (tail, n) in &tails[..kept] {
            self.cache.prefetch_entry(&tail[32 - n..]);
        }
    }

    /// The check of a token not in the cache of good ones: a refusal
    /// remembered, else a signature check if the budget has one left.
    #[cold]
    fn check_new(&self, token: &[u8], info_hash: &InfoHash, now: u64) -> Result<(), Refusal> {
        // Not text, or longer than any token swarmd reads: refused unread,
        // without spending the budget.
        let text = match std::str::from_utf8(token) {
            Ok(text) if text.len() <= MAX_TOKEN => text,
            _ => return Err(Refusal::TokenInvalid),
        };
        if let Some(refusal) = self.refused.get(token, now) {
            return Err(refusal);
        }
        if !self.budget.take(now) {
            return Err(Refusal::TokenBusy);
        }
        match self.verify(text) {
            Ok(grant) => {
                let result = grants(grant.until, grant.hashes.contains(info_hash), now);
                // Cached even when it names other torrents: it is good, and
                // the next announce may be for one it names.
                if grant.until >= now {
                    self.cache.insert(token, &grant);
                }
                result
            }
            Err(refusal) => {
                self.refused.insert(token, refusal, now);
                Err(refusal)
            }
        }
    }

    /// The whole check of a token not seen before: header, key, signature,
    /// then claims.
    fn verify(&self, token: &str) -> Result<Grant, Refusal> {
        // A header that does not parse (`alg: none`, an algorithm nobody
        // knows, not base64) names no key a signature could be checked with.
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::TokenBadSignature)?;
        let key = self
            .keys
            .get(header.kid.as_deref())
            .ok_or(Refusal::TokenBadSignature)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| refusal_of(e.kind()))?;
        let hashes: Option<SmallVec<[InfoHash; 1]>> = match &data.claims.infohash {
            OneOrMany::One(hex) => claimed_hash(hex).map(|h| SmallVec::from_elem(h, 1)),
            OneOrMany::Many(list) => list.iter().map(|h| claimed_hash(h)).collect(),
        };
        Ok(Grant {
            until: data.claims.exp.saturating_add(self.leeway),
            hashes: hashes.ok_or(Refusal::TokenInvalid)?,
        })
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.len()
    }

    #[cfg(test)]
    fn remembered_refusals(&self) -> usize {
        self.refused.len()
    }
}

/// Whether a good token, in force `until` and naming the torrent or not,
/// lets it be announced at `now`.
#[inline]
fn grants(until: u64, names_it: bool, now: u64) -> Result<(), Refusal> {
    if now > until {
        Err(Refusal::TokenExpired)
    } else if names_it {
        Ok(())
    } else {
        Err(Refusal::TokenWrongTorrent)
    }
}

/// The refusal for what `jsonwebtoken` found wrong.
fn refusal_of(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::ExpiredSignature => Refusal::TokenExpired,
        ErrorKind::ImmatureSignature => Refusal::TokenNotYetValid,
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => Refusal::TokenWrongTracker,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" || claim == "aud" => {
            Refusal::TokenWrongTracker
        }
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey => Refusal::TokenBadSignature,
        // Signed, but its claims are not what a token for swarmd holds
        // (no exp, a bad infohash), or not a JWT at all.
        _ => Refusal::TokenInvalid,
    }
}

/// The current time in Unix seconds, as token claims count it. From the
/// kernel's coarse clock: seconds need no more, and every announce with a
/// token asks (measured: the precise clock was 14 % of a cached RS256
/// token check on this VM, benches/tokens.rs).
#[inline]
pub(crate) fn unix_now() -> u64 {
    crate::sys::unix_seconds_coarse().unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

#[cfg(test)]
mod tests;

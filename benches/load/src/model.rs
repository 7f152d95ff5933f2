//! The simulated population: which torrents exist, which peers there are, which
//! torrent each peer is in and what it says about itself. Everything here is a
//! pure function of the peer or torrent number and a seed, so every run (and the
//! `hashes` subcommand that writes a whitelist for opentracker) sees the same
//! swarm without storing it.

use swarmd::protocol::{InfoHash, PeerId};

/// The splitmix64 finaliser. It is a bijection on `u64`, so distinct inputs give
/// distinct outputs: info hashes and peer ids built from it never collide.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps 64 random bits to a float in [0, 1).
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A bounded power law (a Pareto distribution truncated to `[1, n + 1)` and
/// floored to ranks `0..n`): rank `r` is drawn with probability proportional to
/// roughly `(r + 1)^-exponent`, i.e. Zipf's law. Sampling is one inversion of
/// the closed-form CDF, no tables, so it costs the same for a million ranks as
/// for ten.
#[derive(Clone, Debug)]
pub struct PowerLaw {
    n: u64,
    exponent: f64,
    /// `ln(n + 1)` when the exponent is 1, else `(n + 1)^(1 - exponent) - 1`.
    span: f64,
}

impl PowerLaw {
    /// `n` must be at least 1; `exponent` must be finite and non-negative.
    pub fn new(n: u64, exponent: f64) -> PowerLaw {
        let n = n.max(1);
        let top = (n as f64) + 1.0;
        let span = if Self::is_log(exponent) {
            top.ln()
        } else {
            top.powf(1.0 - exponent) - 1.0
        };
        PowerLaw { n, exponent, span }
    }

    fn is_log(exponent: f64) -> bool {
        (exponent - 1.0).abs() < 1e-9
    }

    /// The rank for a uniform `u` in [0, 1): 0 is the most popular.
    pub fn rank(&self, u: f64) -> u64 {
        let x = if Self::is_log(self.exponent) {
            (u * self.span).exp()
        } else {
            (1.0 + u * self.span).powf(1.0 / (1.0 - self.exponent))
        };
        // `x` is in [1, n + 1) up to rounding; clamp the rounding away.
        let r = x.floor() as u64;
        r.saturating_sub(1).min(self.n - 1)
    }
}

/// Flags kept per simulated peer (one byte each).
pub mod peer_flags {
    /// The peer has the whole torrent (`left` = 0).
    pub const SEEDER: u8 = 1;
    /// The peer sent `stopped` and has not announced since: its next announce
    /// says `started`.
    pub const STOPPED: u8 = 2;
    /// The peer has announced at least once in this run.
    pub const SEEN: u8 = 4;
}

/// The swarm every load thread draws from.
#[derive(Clone, Debug)]
pub struct Population {
    pub torrents: u64,
    pub peers: u64,
    seed: u64,
    popularity: PowerLaw,
    /// With `--token-key`: each torrent's token, sent with its announces.
    pub tokens: Option<std::sync::Arc<crate::tokens::Tokens>>,
}

const PEER_ID_PREFIX: &[u8; 8] = b"-SL0100-";

impl Population {
    pub fn new(torrents: u64, peers: u64, exponent: f64, seed: u64) -> Population {
        Population {
            torrents: torrents.max(1),
            peers: peers.max(1),
            seed,
            popularity: PowerLaw::new(torrents.max(1), exponent),
            tokens: None,
        }
    }

    /// The info hash of torrent `t`. The first 8 bytes alone are distinct per
    /// torrent (see [`mix64`]).
    pub fn info_hash(&self, t: u64) -> InfoHash {
        let a = mix64(t ^ self.seed);
        let b = mix64(a ^ 0x0069_6e66_6f68_6173);
        let c = mix64(b);
        let mut out = [0u8; 20];
        out[..8].copy_from_slice(&a.to_be_bytes());
        out[8..16].copy_from_slice(&b.to_be_bytes());
        out[16..].copy_from_slice(&c.to_be_bytes()[..4]);
        InfoHash(out)
    }

    /// The torrent peer `p` is in. When there are at least as many peers as
    /// torrents, the first `torrents` peers go one to each torrent (so every
    /// torrent has a peer, and most have one or two, as in real swarms) and the
    /// rest follow the power law (so a few torrents are huge).
    pub fn torrent_of(&self, p: u64) -> u64 {
        if self.peers >= self.torrents && p < self.torrents {
            return p;
        }
        let u = unit(mix64(p ^ self.seed ^ 0x746f_7272_656e_7473));
        self.popularity.rank(u)
    }

    /// A torrent drawn by popularity: the torrent of a random peer.
    pub fn popular_torrent(&self, rng: &mut fastrand::Rng) -> u64 {
        self.torrent_of(rng.u64(0..self.peers))
    }

    fn peer_bits(&self, p: u64) -> u64 {
        mix64(p ^ self.seed.rotate_left(32))
    }

    /// A stable, distinct peer id for peer `p`.
    pub fn peer_id(&self, p: u64) -> PeerId {
        let bits = self.peer_bits(p);
        let more = mix64(bits);
        let mut out = [0u8; 20];
        out[..8].copy_from_slice(PEER_ID_PREFIX);
        out[8..16].copy_from_slice(&bits.to_be_bytes());
        out[16..].copy_from_slice(&more.to_be_bytes()[..4]);
        PeerId(out)
    }

    /// The BEP 15 `key` of peer `p`: stable, so the tracker can tell a peer
    /// that changed address from a new one.
    pub fn key(&self, p: u64) -> u32 {
        (mix64(self.peer_bits(p) ^ 0x006b_6579) >> 32) as u32
    }

    /// The port peer `p` listens on (the announce's port field).
    pub fn port(&self, p: u64) -> u16 {
        1024 + (mix64(self.peer_bits(p) ^ 0x706f_7274) % 64_000) as u16
    }

    /// The flags peer `p` starts the run with.
    pub fn initial_flags(&self, p: u64, seeder_probability: f64) -> u8 {
        if unit(mix64(self.peer_bits(p) ^ 0x7365_6564)) < seeder_probability {
            peer_flags::SEEDER
        } else {
            0
        }
    }

    /// How many bytes a leecher still misses: stable per peer, never zero.
    pub fn left(&self, p: u64) -> u64 {
        1 + mix64(self.peer_bits(p) ^ 0x6c65_6674) % (4 << 30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn power_law_stays_in_range_at_the_edges() {
        for exponent in [0.0, 0.5, 1.0, 1.2, 2.0] {
            let law = PowerLaw::new(1000, exponent);
            assert_eq!(law.rank(0.0), 0);
            assert_eq!(law.rank(1.0 - f64::EPSILON), 999);
            assert_eq!(law.rank(1.0), 999);
        }
        assert_eq!(PowerLaw::new(1, 1.0).rank(0.7), 0);
    }

    #[test]
    fn power_law_is_skewed_like_zipf() {
        let n = 1_000_000;
        let law = PowerLaw::new(n, 1.0);
        let mut rng = fastrand::Rng::with_seed(7);
        let draws = 200_000;
        let mut top = 0u64;
        let mut second = 0u64;
        let mut tail_half = 0u64;
        for _ in 0..draws {
            let r = law.rank(rng.f64());
            assert!(r < n);
            match r {
                0 => top += 1,
                1 => second += 1,
                r if r >= n / 2 => tail_half += 1,
                _ => {}
            }
        }
        // Rank 0 takes ln 2 / ln(n + 1) of the draws (5 %), rank 1
        // ln 1.5 / ln(n + 1) (2.9 %), the whole upper half of the ranks only
        // ln 2 / ln(n + 1) too.
        let share = |c: u64| c as f64 / draws as f64;
        let ln_top = ((n + 1) as f64).ln();
        assert!((share(top) - 2f64.ln() / ln_top).abs() < 0.004, "{top}");
        assert!(
            (share(second) - 1.5f64.ln() / ln_top).abs() < 0.004,
            "{second}"
        );
        assert!((share(tail_half) - 2f64.ln() / ln_top).abs() < 0.004);
        // Uniform when the exponent is 0.
        let flat = PowerLaw::new(10, 0.0);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[flat.rank(rng.f64()) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn most_torrents_are_small_and_a_few_are_huge() {
        let pop = Population::new(100_000, 200_000, 1.0, 1);
        let mut sizes = vec![0u32; 100_000];
        for p in 0..pop.peers {
            sizes[pop.torrent_of(p) as usize] += 1;
        }
        assert!(sizes.iter().all(|&s| s >= 1));
        let small = sizes.iter().filter(|&&s| s <= 2).count();
        assert!(small > 90_000, "{small}");
        assert!(sizes[0] > 5_000, "{}", sizes[0]);
    }

    #[test]
    fn identities_are_stable_and_distinct() {
        let pop = Population::new(10_000, 10_000, 1.0, 42);
        let hashes: HashSet<_> = (0..10_000).map(|t| pop.info_hash(t)).collect();
        assert_eq!(hashes.len(), 10_000);
        let ids: HashSet<_> = (0..10_000).map(|p| pop.peer_id(p).0).collect();
        assert_eq!(ids.len(), 10_000);
        assert_eq!(pop.info_hash(5), pop.info_hash(5));
        assert_eq!(&pop.peer_id(3).0[..8], PEER_ID_PREFIX);
        assert!(pop.port(9) >= 1024);
        assert!(pop.left(9) > 0);
    }
}

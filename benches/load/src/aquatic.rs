//! The info hashes aquatic_udp_load_test 0.9 announces, computed up front so
//! that a whitelist-only tracker (Debian's opentracker) can be given them and
//! be measured with that load tester too.
//!
//! The tester draws torrent `i`'s hash as 20 successive `u8`s from rand 0.8's
//! `SmallRng::seed_from_u64(0xc3aa8be617b3acce)`. On 64-bit targets that
//! generator is xoshiro256++ whose 256-bit state is filled by PCG32 (XSH RR)
//! from the `u64`, and a `u8` is the low byte of the upper 32 bits of the next
//! `u64`. Both algorithms are the published ones (O'Neill's PCG, Blackman and
//! Vigna's xoshiro), written here from their definitions; the comparison
//! script checks the result against what the tester actually sends.

use swarmd::protocol::InfoHash;

/// The seed aquatic_udp_load_test 0.9 uses for its info hashes.
pub const LOAD_TEST_SEED: u64 = 0xc3aa_8be6_17b3_acce;

/// xoshiro256++.
pub struct Xoshiro256pp {
    s: [u64; 4],
}

impl Xoshiro256pp {
    /// Seeds from a `u64` the way rand_core 0.6 does by default: eight PCG32
    /// outputs, little-endian, make the 32 seed bytes.
    pub fn from_u64(mut state: u64) -> Xoshiro256pp {
        const MUL: u64 = 6_364_136_223_846_793_005;
        const INC: u64 = 11_634_580_027_462_260_723;
        let mut next32 = || {
            state = state.wrapping_mul(MUL).wrapping_add(INC);
            let xorshifted = (((state >> 18) ^ state) >> 27) as u32;
            xorshifted.rotate_right((state >> 59) as u32)
        };
        let mut s = [0u64; 4];
        for word in &mut s {
            let lo = u64::from(next32());
            let hi = u64::from(next32());
            *word = lo | (hi << 32);
        }
        Xoshiro256pp { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// rand's `gen::<u8>()`: the low byte of `next_u32`, which is the upper
    /// half of `next_u64`.
    pub fn next_u8(&mut self) -> u8 {
        (self.next_u64() >> 32) as u8
    }
}

/// The first `n` info hashes of aquatic_udp_load_test 0.9.
pub fn load_test_info_hashes(n: u64) -> impl Iterator<Item = InfoHash> {
    let mut rng = Xoshiro256pp::from_u64(LOAD_TEST_SEED);
    (0..n).map(move |_| {
        let mut h = [0u8; 20];
        for b in &mut h {
            *b = rng.next_u8();
        }
        InfoHash(h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_the_reference_vector() {
        // The reference output of xoshiro256++ for the state 1, 2, 3, 4.
        let mut rng = Xoshiro256pp { s: [1, 2, 3, 4] };
        let expected = [
            41_943_041,
            58_720_359,
            3_588_806_011_781_223,
            3_591_011_842_654_386,
            9_228_616_714_210_784_205,
            9_973_669_472_204_895_162,
        ];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }
}

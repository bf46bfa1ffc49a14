//! Seeding. A trial's seed drives libtorch's generator (initialisation, dropout) and, through
//! [`derive`], independent streams for data shuffling.

/// Seeds libtorch's global generator (CPU and CUDA).
pub fn seed_everything(seed: u64) {
    tch::manual_seed(seed as i64);
}

/// A sub-seed for stream `stream` of seed `seed` (SplitMix64 finaliser): different streams of one seed and the
/// same stream of different seeds are decorrelated.
pub fn derive(seed: u64, stream: u64) -> u64 {
    let mut z = seed.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #[test]
    fn derive_is_deterministic_and_spreads() {
        assert_eq!(super::derive(1, 2), super::derive(1, 2));
        assert_ne!(super::derive(1, 2), super::derive(2, 1));
        assert_ne!(super::derive(0, 0), super::derive(0, 1));
    }
}

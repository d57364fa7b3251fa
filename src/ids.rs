//! Index batches for benchmarks, the same on every machine: uniform and
//! Zipf(s) row ids drawn from a SplitMix64 stream.

/// SplitMix64 (Steele, Lea and Flood 2014): a seeded stream of u64.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next word.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1), 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Ids are u32: a vocabulary past 2^32 rows draws from the first 2^32.
fn id_range(vocab: usize) -> u64 {
    (vocab as u64).clamp(1, 1 << 32)
}

/// `n` ids uniform over `0 .. vocab` (at most 2^32 rows: ids are u32).
pub fn uniform(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    let range = id_range(vocab);
    (0..n).map(|_| (rng.next_u64() % range) as u32).collect()
}

/// `n` ids from Zipf(`s`) over ranks `1 ..= vocab`, rank k as row k - 1 (row
/// 0 the most frequent: about 14 % of the batch for s = 1.1 and vocab 2^16),
/// by inverse CDF over a table of `vocab` f64s (at most 2^32 rows, as
/// [`uniform`]).
pub fn zipf(n: usize, vocab: usize, s: f64, seed: u64) -> Vec<u32> {
    let vocab = id_range(vocab) as usize;
    let mut cdf = Vec::with_capacity(vocab);
    let mut total = 0.0f64;
    for k in 1..=vocab {
        total += (k as f64).powf(-s);
        cdf.push(total);
    }
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|_| {
            let u = rng.unit() * total;
            cdf.partition_point(|&c| c < u).min(vocab - 1) as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_in_range_and_zipf_favours_row_zero() {
        let u = super::uniform(10_000, 100, 1);
        assert!(u.iter().all(|&i| i < 100));
        let z = super::zipf(10_000, 1 << 16, 1.1, 2);
        assert!(z.iter().all(|&i| i < 1 << 16));
        let zeros = z.iter().filter(|&&i| i == 0).count();
        assert!((1_000..2_000).contains(&zeros), "{zeros}");
        assert_eq!(super::uniform(5, 7, 3), super::uniform(5, 7, 3));
    }
}

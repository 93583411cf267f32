//! The one random stream behind the data generators and parameter initialisation:
//! SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
//! OOPSLA 2014; Vigna's `splitmix64.c`). Its output is fixed by its definition below, so a
//! seed means the same batches and the same initial weights in every build, unlike the
//! `rand` crate's `SmallRng`, whose algorithm may change between versions. The ways a
//! draw becomes an integer or a float are written out here too, for the same reason:
//! integers by Lemire's multiply-and-reject (unbiased), floats from the top 53 bits.

/// A SplitMix64 stream: the state advances by the golden-ratio increment, and each
/// output is the state passed through the finaliser of MurmurHash3 (Stafford's variant 13).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`): the high word of `draw × n`, rejecting the low words
    /// below `2⁶⁴ mod n` (Lemire, "Fast random integer generation in an interval", 2019).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "an empty range");
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if product as u64 >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Uniform in `range` (not empty).
    pub fn index(&mut self, range: std::ops::Range<usize>) -> usize {
        range.start + self.below((range.end - range.start) as u64) as usize
    }

    /// Uniform in `range` (not empty).
    pub fn int(&mut self, range: std::ops::Range<i32>) -> i32 {
        (i64::from(range.start) + self.below((i64::from(range.end) - i64::from(range.start)) as u64) as i64) as i32
    }

    /// Uniform in [0, 1): the top 53 bits of a draw times 2⁻⁵³.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [low, high): `low + (high − low)·unit`, kept below `high` where the
    /// product rounds up to it.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let x = low + (high - low) * self.unit();
        if x < high { x } else { low.max(high.next_down()) }
    }
}

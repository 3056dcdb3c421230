//! How late the data plane delivers: a histogram of nanoseconds with fixed memory and a
//! relative error under 1 %, filled without allocating. It knows nothing of packets or
//! clocks; the forwarder records `now - deadline` for each packet it writes.

/// Values below this are counted exactly, one bucket each.
const EXACT: u64 = 2 * SUB_BUCKETS;
/// Buckets per power of two above `EXACT`: each is at most 1/128 of its lower edge wide.
const SUB_BUCKETS: u64 = 128;
/// log2 of `SUB_BUCKETS`.
const SUB_BITS: u32 = 7;
/// `EXACT` exact buckets, then `SUB_BUCKETS` for each power of two from 2⁸ to 2⁶³.
const BUCKETS: usize = (EXACT + (63 - SUB_BITS as u64) * SUB_BUCKETS) as usize;

/// A log-bucketed histogram of `u64` values (HDR-style: 128 linear buckets per power of
/// two). A quantile is the highest value of the bucket it falls in, never above the largest
/// value recorded, so it overstates the true one by less than 1/128 (0.79 %) and never
/// understates it.
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        self.counts[bucket(value)] += 1;
        self.count += 1;
        self.max = self.max.max(value);
    }

    /// Forgets every value, keeping the memory.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.max = 0;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded, exactly; 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value v (to within the bucket error) such that at least a fraction `q`
    /// of the values are ≤ v: `quantile(0.5)` is the median, `quantile(1.0)` the maximum.
    /// 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // The rank of the value wanted, 1-based: at least the first, at most the last.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return highest_in(i).min(self.max);
            }
        }
        self.max
    }
}

/// The bucket of `value`: itself below `EXACT`, else its power of two and its top 8 bits.
fn bucket(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BITS;
    // Between SUB_BUCKETS and 2 * SUB_BUCKETS - 1: the leading bit and the 7 after it.
    let top = value >> shift;
    (EXACT + u64::from(shift - 1) * SUB_BUCKETS + (top - SUB_BUCKETS)) as usize
}

/// The largest value that falls in bucket `i`.
fn highest_in(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let shift = (i - EXACT) / SUB_BUCKETS + 1;
    let top = SUB_BUCKETS + (i - EXACT) % SUB_BUCKETS;
    // The bucket's lower edge plus its width minus one; the last one ends at u64::MAX.
    (top << shift) + ((1 << shift) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let h = Histogram::default();
        assert_eq!(
            (h.count(), h.max(), h.quantile(0.5), h.quantile(0.99)),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn a_cleared_histogram_starts_over() {
        let mut h = Histogram::default();
        h.record(5_000_000);
        h.clear();
        h.record(7);
        assert_eq!((h.count(), h.max(), h.quantile(0.99)), (1, 7, 7));
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.quantile(0.0), 1, "the lowest quantile is the first value");
        assert_eq!(h.max(), 100);
    }

    #[test]
    fn large_values_are_within_the_bucket_error_and_never_below() {
        let mut h = Histogram::default();
        // 1 µs to 1 ms in steps of 1 µs: the median is 500 µs, p99 990 µs.
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        for (q, exact) in [(0.5, 500_000u64), (0.99, 990_000), (1.0, 1_000_000)] {
            let got = h.quantile(q);
            assert!(
                got >= exact && got - exact <= exact / 128,
                "q {q}: {got}, want {exact} + < 0.79 %"
            );
        }
        assert_eq!(h.quantile(1.0), 1_000_000, "capped at the exact maximum");
        assert_eq!(h.max(), 1_000_000);
    }

    #[test]
    fn one_outlier_shows_in_the_max_not_the_p99() {
        let mut h = Histogram::default();
        for _ in 0..999 {
            h.record(20_000);
        }
        h.record(50_000_000);
        assert_eq!(h.quantile(0.99), highest_in(bucket(20_000)));
        assert!(h.quantile(0.99) - 20_000 <= 20_000 / 128);
        assert_eq!((h.max(), h.quantile(1.0)), (50_000_000, 50_000_000));
    }

    #[test]
    fn buckets_tile_the_whole_range_without_gaps() {
        // Each bucket starts right after the previous one ends, up to u64::MAX, and is at
        // most 1/128 of its lower edge wide.
        let mut low = 0u64;
        for i in 0..BUCKETS {
            let high = highest_in(i);
            assert_eq!(
                (bucket(low), bucket(high)),
                (i, i),
                "bucket {i}: {low}..={high}"
            );
            assert!(
                low < EXACT || high - low < low / 128 + 1,
                "bucket {i} too wide"
            );
            low = high.wrapping_add(1);
        }
        assert_eq!(highest_in(BUCKETS - 1), u64::MAX);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }
}

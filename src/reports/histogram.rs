//! The fixed latency histogram of the rollups and the percentiles read from it.
//!
//! Bucket `i` counts latencies in `(BOUNDS_MS[i-1], BOUNDS_MS[i]]` milliseconds (the first from 0, the last above
//! 30 s). Summing the buckets of any set of rollup rows gives that set's histogram; a percentile is found in its
//! bucket and interpolated linearly inside it (the latencies taken as spread evenly over the bucket). The true value
//! always lies in the same bucket, so the error is at most the bucket's width — 5 ms up to 10 ms, 25 ms up to 100 ms,
//! 50–100 ms up to 500 ms, 250–500 ms up to 2 s, 1–2 s up to 5 s, a quarter of the value or less from 75 ms on — and
//! the top bucket is bounded by the largest latency seen.
//!
//! ```
//! use kopir::reports::histogram::Histogram;
//! let mut h = Histogram::default();
//! for ms in [12, 40, 90, 95, 120] { h.record(ms); }
//! let p50 = h.percentile(0.5).unwrap();
//! assert!((75.0..=100.0).contains(&p50)); // the true median, 90, is in (75, 100]: so is the one read
//! ```

/// Upper bounds of the buckets, in milliseconds; one more bucket counts everything above the last.
pub const BOUNDS_MS: [u64; 19] =
    [5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10_000, 30_000];

/// Number of buckets (columns `b00` … `b19`).
pub const BUCKETS: usize = BOUNDS_MS.len() + 1;

/// The bucket a latency is counted in.
pub fn bucket(latency_ms: u64) -> usize {
    BOUNDS_MS.partition_point(|&bound| bound < latency_ms)
}

/// The bucket columns, `b00, b01, …, b19`.
pub fn columns() -> Vec<String> {
    (0..BUCKETS).map(|i| format!("b{i:02}")).collect()
}

/// Counts per bucket, plus the largest latency (which bounds the top bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Histogram {
    pub counts: [u64; BUCKETS],
    pub max_ms: u64,
}

impl Histogram {
    pub fn record(&mut self, latency_ms: u64) {
        self.counts[bucket(latency_ms)] += 1;
        self.max_ms = self.max_ms.max(latency_ms);
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `p`-quantile (0 < p ≤ 1) in milliseconds, interpolated in its bucket; `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (p.clamp(0.0, 1.0) * total as f64).max(f64::MIN_POSITIVE);
        let mut below = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if (below + count) as f64 >= rank {
                let lower = if i == 0 { 0 } else { BOUNDS_MS[i - 1] } as f64;
                let upper = BOUNDS_MS.get(i).copied().unwrap_or(self.max_ms).min(self.max_ms.max(1)) as f64;
                let upper = upper.max(lower);
                let share = (rank - below as f64) / count as f64;
                return Some(lower + (upper - lower) * share);
            }
            below += count;
        }
        Some(self.max_ms as f64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn buckets_include_their_upper_bound() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(5), 0);
        assert_eq!(bucket(6), 1);
        assert_eq!(bucket(100), 5);
        assert_eq!(bucket(101), 6);
        assert_eq!(bucket(30_000), 18);
        assert_eq!(bucket(30_001), 19);
        assert_eq!(bucket(u64::MAX), 19);
        assert_eq!(columns().len(), 20);
    }

    #[test]
    fn percentiles_interpolate_within_the_bucket_and_stay_in_it() {
        // 100 samples spread evenly over 1..=100 ms.
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(ms);
        }
        for (p, exact) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let read = h.percentile(p).unwrap();
            let i = bucket(exact as u64);
            let lower = if i == 0 { 0 } else { BOUNDS_MS[i - 1] } as f64;
            assert!(read > lower && read <= BOUNDS_MS[i] as f64, "p{p}: {read} outside bucket of {exact}");
        }
        // Evenly spread samples interpolate exactly: 25 of them in (75, 100].
        assert_eq!(h.percentile(0.9).unwrap(), 90.0);
        assert_eq!(h.percentile(1.0).unwrap(), 100.0);
    }

    #[test]
    fn one_bucket_one_value_and_the_top_bucket_is_bounded_by_the_maximum() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(0.5), None);
        h.record(120);
        let p = h.percentile(0.5).unwrap();
        assert!((100.0..=120.0).contains(&p), "{p}");
        assert_eq!(h.percentile(1.0).unwrap(), 120.0);
        let mut slow = Histogram::default();
        for _ in 0..10 {
            slow.record(45_000);
        }
        assert!(slow.percentile(0.99).unwrap() <= 45_000.0);
        assert!(slow.percentile(0.5).unwrap() > 30_000.0);
    }

    #[test]
    fn summed_histograms_give_the_percentiles_of_the_union() {
        let mut fast = Histogram::default();
        let mut slow = Histogram::default();
        for _ in 0..95 {
            fast.record(20);
        }
        for _ in 0..5 {
            slow.record(2500);
        }
        let mut both = fast;
        for i in 0..BUCKETS {
            both.counts[i] += slow.counts[i];
        }
        both.max_ms = fast.max_ms.max(slow.max_ms);
        assert!(both.percentile(0.95).unwrap() <= 25.0);
        let p99 = both.percentile(0.99).unwrap();
        assert!((2000.0..=2500.0).contains(&p99), "{p99}");
    }
}

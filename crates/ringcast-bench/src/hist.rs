//! Latency histograms: an HdrHistogram of nanoseconds with 3 significant
//! digits, plus the exact minimum and maximum, a summary in microseconds, and
//! a text encoding for sending one from a child process to its parent.

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

/// Largest value recorded, in ns (one hour); larger values are clamped.
pub const MAX_NS: u64 = 3_600_000_000_000;
/// Significant decimal digits kept: values are exact to within 0.1%.
pub const SIGFIGS: u8 = 3;

/// One metric's samples, in nanoseconds.
///
/// Fields:
/// - `hist`: counts per bucket, 1 ns to [`MAX_NS`], 3 significant digits;
///   percentiles are read from it and so are within 0.1% of the true value.
/// - `min`, `max`: the exact extremes (the histogram only knows their bucket).
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    min: u64,
    max: u64,
}

/// Percentiles of a [`LatencyHistogram`], in microseconds; in the JSON
/// report rounded to 3 decimals (nanoseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample (exact).
    #[serde(serialize_with = "crate::json::round3")]
    pub min: f64,
    /// Median.
    #[serde(serialize_with = "crate::json::round3")]
    pub p50: f64,
    /// 90th percentile.
    #[serde(serialize_with = "crate::json::round3")]
    pub p90: f64,
    /// 99th percentile.
    #[serde(serialize_with = "crate::json::round3")]
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(serialize_with = "crate::json::round3")]
    pub p999: f64,
    /// Largest sample (exact).
    #[serde(serialize_with = "crate::json::round3")]
    pub max: f64,
    /// Arithmetic mean (from the buckets).
    #[serde(serialize_with = "crate::json::round3")]
    pub mean: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            hist: Histogram::new_with_bounds(1, MAX_NS, SIGFIGS)
                .expect("1 ns to 1 h at 3 significant digits is a valid histogram"),
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one sample (0 counts as 1 ns, past [`MAX_NS`] as [`MAX_NS`]).
    pub fn record(&mut self, ns: u64) {
        let v = ns.clamp(1, MAX_NS);
        self.hist.saturating_record(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0 to 1), in ns: the highest value of the
    /// bucket holding it, so within 0.1% above the true sample; 0 when empty.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        if self.count() == 0 {
            return 0;
        }
        // The bucket's top may exceed the largest sample; never report more
        // than the exact maximum.
        self.hist.value_at_quantile(q).min(self.max)
    }

    /// Exact largest sample in ns (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Exact smallest sample in ns (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count() == 0 {
            0
        } else {
            self.min
        }
    }

    /// Adds every sample of `other` to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds always add");
        if other.count() > 0 {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
    }

    /// p50, p90, p99, p99.9, min, max and mean in microseconds.
    pub fn summary(&self) -> Summary {
        let us = |ns: u64| ns as f64 / 1_000.0;
        Summary {
            count: self.count(),
            min: us(self.min()),
            p50: us(self.value_at_quantile(0.50)),
            p90: us(self.value_at_quantile(0.90)),
            p99: us(self.value_at_quantile(0.99)),
            p999: us(self.value_at_quantile(0.999)),
            max: us(self.max()),
            mean: if self.count() == 0 {
                0.0
            } else {
                self.hist.mean() / 1_000.0
            },
        }
    }

    /// `MIN:MAX:HEX`, the hex being the HdrHistogram V2 encoding: one word
    /// with no spaces, for a child's report line.
    pub fn to_text(&self) -> String {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.hist, &mut bytes)
            .expect("serializing into a Vec cannot fail");
        let mut out = format!("{}:{}:", self.min(), self.max);
        out.reserve(bytes.len() * 2);
        for b in bytes {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// Parses [`LatencyHistogram::to_text`].
    pub fn from_text(text: &str) -> Result<LatencyHistogram, String> {
        let mut parts = text.splitn(3, ':');
        let (Some(min), Some(max), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("histogram: expected MIN:MAX:HEX".into());
        };
        let min: u64 = min.parse().map_err(|_| "histogram: bad min")?;
        let max: u64 = max.parse().map_err(|_| "histogram: bad max")?;
        if hex.len() % 2 != 0 {
            return Err("histogram: odd hex length".into());
        }
        let nibble = |c: u8| -> Result<u8, String> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err(format!("histogram: bad hex digit {:?}", char::from(c))),
            }
        };
        let bytes = hex
            .as_bytes()
            .chunks(2)
            .map(|p| Ok(nibble(p[0])? << 4 | nibble(p[1])?))
            .collect::<Result<Vec<u8>, String>>()?;
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| format!("histogram: {e:?}"))?;
        let mut h = LatencyHistogram::new();
        h.hist
            .add(&decoded)
            .map_err(|e| format!("histogram: {e:?}"))?;
        if h.count() > 0 {
            h.min = min;
            h.max = max;
        }
        Ok(h)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    /// Within the histogram's promise: 3 significant digits.
    fn close(got: u64, want: u64) -> bool {
        got.abs_diff(want) as f64 <= want as f64 * 0.001 + 1.0
    }

    #[test]
    fn percentiles_of_one_to_ten_thousand_microseconds() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record(us * 1_000);
        }
        assert_eq!(h.count(), 10_000);
        for (q, want_us) in [
            (0.5, 5_000),
            (0.9, 9_000),
            (0.99, 9_900),
            (0.999, 9_990),
            (1.0, 10_000),
        ] {
            let got = h.value_at_quantile(q);
            assert!(close(got, want_us * 1_000), "q={q}: {got} ns");
        }
        assert_eq!(h.min(), 1_000);
        assert_eq!(h.max(), 10_000_000);
        let s = h.summary();
        assert!((s.mean - 5_000.5).abs() < 5.0, "{s:?}");
        assert!((s.p50 - 5_000.0).abs() <= 5.0, "{s:?}");
        assert_eq!(s.max, 10_000.0);
        assert_eq!(s.min, 1.0);
    }

    #[test]
    fn a_skewed_distribution_has_its_tail_where_it_was_put() {
        // 990 samples at 100 us, 9 at 5 ms, 1 at 2 s.
        let mut h = LatencyHistogram::new();
        for _ in 0..990 {
            h.record(100_000);
        }
        for _ in 0..9 {
            h.record(5_000_000);
        }
        h.record(2_000_000_000);
        assert!(close(h.value_at_quantile(0.5), 100_000));
        assert!(close(h.value_at_quantile(0.99), 100_000));
        assert!(close(h.value_at_quantile(0.991), 5_000_000));
        assert!(close(h.value_at_quantile(0.999), 5_000_000));
        assert_eq!(h.max(), 2_000_000_000);
        // The percentile never exceeds the exact maximum.
        let mut one = LatencyHistogram::new();
        one.record(123_456_789);
        assert_eq!(one.value_at_quantile(1.0), 123_456_789);
    }

    #[test]
    fn empty_and_clamped() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.summary(), Summary::default());
        h.record(0);
        h.record(u64::MAX);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), MAX_NS);
        assert_eq!(h.count(), 2);
    }

    #[test]
    fn merged_children_equal_one_histogram_of_all_samples() {
        let mut all = LatencyHistogram::new();
        let mut parts = [
            LatencyHistogram::new(),
            LatencyHistogram::new(),
            LatencyHistogram::new(),
        ];
        // A deterministic spread over six decades.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..30_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 1_000 + x % 10u64.pow(1 + (i % 6) as u32) * 1_000;
            all.record(v);
            parts[i % 3].record(v);
        }
        // Through the child-to-parent text form, as the parent sees them.
        let mut merged = LatencyHistogram::new();
        for p in &parts {
            merged.merge(&LatencyHistogram::from_text(&p.to_text()).unwrap());
        }
        assert_eq!(merged.count(), all.count());
        assert_eq!(merged.min(), all.min());
        assert_eq!(merged.max(), all.max());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                merged.value_at_quantile(q),
                all.value_at_quantile(q),
                "q={q}"
            );
        }
        assert_eq!(merged.summary(), all.summary());
    }

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        let mut h = LatencyHistogram::new();
        h.record(42_000);
        h.record(43_000);
        let back = LatencyHistogram::from_text(&h.to_text()).unwrap();
        assert_eq!(back.summary(), h.summary());
        let empty = LatencyHistogram::from_text(&LatencyHistogram::new().to_text()).unwrap();
        assert_eq!(empty.count(), 0);
        assert!(LatencyHistogram::from_text("1:2").is_err());
        assert!(LatencyHistogram::from_text("1:2:zz").is_err());
        assert!(LatencyHistogram::from_text("1:2:abc").is_err());
        assert!(LatencyHistogram::from_text("1:2:00").is_err());
    }
}

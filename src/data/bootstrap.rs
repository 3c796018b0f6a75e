//! Seeded percentile-bootstrap confidence intervals for rates.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Resamples per interval: enough for stable 2.5% / 97.5% percentiles at our sizes.
pub const RESAMPLES: usize = 1000;

/// A rate with its 95% bootstrap interval over `n` independent units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

/// The share of `true` in `verdicts` with a 95% percentile-bootstrap interval, from
/// `resamples` resamples drawn with `seed`. `None` for no verdicts (no rate exists).
pub fn bootstrap_rate(verdicts: &[bool], resamples: usize, seed: u64) -> Option<Rate> {
    let n = verdicts.len();
    if n == 0 {
        return None;
    }
    let hits = verdicts.iter().filter(|v| **v).count();
    let value = hits as f64 / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let resamples = resamples.max(1);
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            let c = (0..n).filter(|_| verdicts[rng.random_range(0..n)]).count();
            c as f64 / n as f64
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((q * resamples as f64).floor() as usize).min(resamples - 1);
        stats[i]
    };
    Some(Rate {
        value,
        lo: at(0.025),
        hi: at(0.975),
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_brackets_the_rate_and_is_seeded() {
        let v: Vec<bool> = (0..100).map(|i| i % 4 == 0).collect();
        let r = bootstrap_rate(&v, RESAMPLES, 1).unwrap();
        assert_eq!(r.value, 0.25);
        assert!(
            r.lo < 0.25 && r.hi > 0.25 && r.lo > 0.1 && r.hi < 0.4,
            "{r:?}"
        );
        assert_eq!(Some(r), bootstrap_rate(&v, RESAMPLES, 1));
        assert!(bootstrap_rate(&[], RESAMPLES, 1).is_none());
        let all = bootstrap_rate(&[true; 10], RESAMPLES, 1).unwrap();
        assert_eq!((all.lo, all.hi), (1.0, 1.0));
    }
}

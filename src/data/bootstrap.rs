//! Seeded percentile-bootstrap confidence intervals for rates.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Resamples per interval: enough for stable 2.5% / 97.5% percentiles at our sizes.
pub const RESAMPLES: usize = 1000;

/// The 95% percentile interval of bootstrap statistics: `stats` sorted, then the values at
/// the 2.5% and 97.5% positions of `resamples` (`resamples` >= 1; the position is clamped to
/// the last of them, as every bootstrap here has always indexed).
pub(crate) fn percentile_interval(stats: &mut [f64], resamples: usize) -> (f64, f64) {
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| stats[((q * resamples as f64).floor() as usize).min(resamples - 1)];
    (at(0.025), at(0.975))
}

/// A rate with its 95% bootstrap interval over `n` independent units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    /// For a mean across replicates: how many replicate seeds it averages (`n` is then the
    /// units of all of them together). Absent for one model's rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<usize>,
}

/// What one replicate contributes to a mean across replicates: its unit verdicts when
/// they are known (then prompts are resampled too), else only its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Replicate<'a> {
    Verdicts(&'a [bool]),
    Value(f64),
}

impl Replicate<'_> {
    fn value(&self) -> f64 {
        match self {
            Replicate::Verdicts(v) if !v.is_empty() => {
                v.iter().filter(|b| **b).count() as f64 / v.len() as f64
            }
            Replicate::Verdicts(_) => 0.0,
            Replicate::Value(x) => *x,
        }
    }

    fn units(&self) -> usize {
        match self {
            Replicate::Verdicts(v) => v.len(),
            Replicate::Value(_) => 1,
        }
    }
}

/// The mean of the replicates' rates with a 95% two-level percentile-bootstrap interval:
/// each of `resamples` resamples draws as many replicates as there are, with replacement,
/// then for each drawn replicate redraws its verdicts (prompts) with replacement, and
/// averages the redrawn rates. The interval so covers both the seed-to-seed spread and the
/// prompt sample of each seed. `None` without replicates; replicates given only as values
/// contribute their value unchanged to each resample (seed spread only).
pub fn bootstrap_replicates(reps: &[Replicate], resamples: usize, seed: u64) -> Option<Rate> {
    let k = reps.len();
    if k == 0
        || reps
            .iter()
            .any(|r| matches!(r, Replicate::Verdicts(v) if v.is_empty()))
    {
        return None;
    }
    let value = reps.iter().map(Replicate::value).sum::<f64>() / k as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let resamples = resamples.max(1);
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            let total: f64 = (0..k)
                .map(|_| match &reps[rng.random_range(0..k)] {
                    Replicate::Verdicts(v) => {
                        let n = v.len();
                        (0..n).filter(|_| v[rng.random_range(0..n)]).count() as f64 / n as f64
                    }
                    Replicate::Value(x) => *x,
                })
                .sum();
            total / k as f64
        })
        .collect();
    let (lo, hi) = percentile_interval(&mut stats, resamples);
    Some(Rate {
        value,
        lo,
        hi,
        n: reps.iter().map(Replicate::units).sum(),
        seeds: Some(k),
    })
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
    let (lo, hi) = percentile_interval(&mut stats, resamples);
    Some(Rate {
        value,
        lo,
        hi,
        n,
        seeds: None,
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

    #[test]
    fn replicate_interval_widens_with_the_seed_spread() {
        let a: Vec<bool> = (0..100).map(|i| i % 10 == 0).collect(); // 10%
        let b: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect(); // 50%
        let c: Vec<bool> = (0..100).map(|i| i % 10 < 9).collect(); // 90%
        let agree = [
            Replicate::Verdicts(&b),
            Replicate::Verdicts(&b),
            Replicate::Verdicts(&b),
        ];
        let spread = [
            Replicate::Verdicts(&a),
            Replicate::Verdicts(&b),
            Replicate::Verdicts(&c),
        ];
        let tight = bootstrap_replicates(&agree, RESAMPLES, 7).unwrap();
        let wide = bootstrap_replicates(&spread, RESAMPLES, 7).unwrap();
        assert!((tight.value - 0.5).abs() < 1e-12 && (wide.value - 0.5).abs() < 1e-12);
        assert_eq!((tight.n, tight.seeds), (300, Some(3)));
        assert!(
            wide.hi - wide.lo > 2.0 * (tight.hi - tight.lo),
            "{tight:?} {wide:?}"
        );
        assert!(wide.lo < 0.3 && wide.hi > 0.7, "{wide:?}");
        // One seed: the prompt bootstrap of that seed alone, as for a single run.
        let one = bootstrap_replicates(&[Replicate::Verdicts(&b)], RESAMPLES, 7).unwrap();
        assert!(
            one.lo < 0.5 && one.hi > 0.5 && one.hi - one.lo < 0.3,
            "{one:?}"
        );
        // Values only (e.g. AUROC): the seeds' spread; identical values give no width.
        let vals = [Replicate::Value(0.7), Replicate::Value(0.7)];
        let v = bootstrap_replicates(&vals, RESAMPLES, 7).unwrap();
        assert_eq!((v.value, v.lo, v.hi), (0.7, 0.7, 0.7));
        assert_eq!(
            Some(wide),
            bootstrap_replicates(&spread, RESAMPLES, 7),
            "seeded"
        );
        assert!(bootstrap_replicates(&[], RESAMPLES, 7).is_none());
    }
}

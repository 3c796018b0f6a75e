//! One eval across replicates (`experiment { replicates = N }`): the mean of the
//! replicates' rates with a two-level bootstrap interval over seeds and prompts
//! ([`bootstrap_replicates`]). Reports and `results.json` both show it.

use std::collections::BTreeMap;

use super::bootstrap::{bootstrap_replicates, Rate, Replicate, RESAMPLES};
use super::eval::{EvalPoint, EvalResult};

/// The bootstrap seed of an aggregate: fixed by its name, so a report of the same cache
/// always shows the same interval.
fn seed_of(label: &str) -> u64 {
    crate::seed::from_hash(&blake3::hash(label.as_bytes()))
}

/// A replicate's contribution to one rate: its verdicts when the point kept one sample per
/// unit of that rate (then prompts are resampled too), else only its value.
fn replicate<'a>(rate: &Rate, verdicts: &'a [bool]) -> Replicate<'a> {
    if verdicts.len() == rate.n && rate.n > 0 {
        Replicate::Verdicts(verdicts)
    } else {
        Replicate::Value(rate.value)
    }
}

/// The mean across `members` (one eval's replicates that have results, in replicate
/// order), named `label` (the eval's name without its replicate). Its points are the
/// steps every member measured; each rate the members share becomes their mean with a
/// 95% interval and `seeds` set; samples are the first member's. `None` without members.
pub fn aggregate(members: &[&EvalResult], label: &str) -> Option<EvalResult> {
    let first = members.first()?;
    let seed = seed_of(label);
    let mut points = Vec::new();
    for (i, p) in first.points.iter().enumerate() {
        let at: Vec<&EvalPoint> = members
            .iter()
            .filter_map(|m| m.points.iter().find(|q| q.step == p.step))
            .collect();
        if at.len() != members.len() {
            continue;
        }
        let mut rates = BTreeMap::new();
        for name in p.rates.keys() {
            let Some(each) = at
                .iter()
                .map(|q| q.rates.get(name).map(|r| (*q, r)))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            // `verdicts_of` gives helpfulness's `accuracy` the answers of all its families:
            // without them its mean would resample seeds only, an interval several times
            // too narrow.
            let verdicts: Vec<Vec<bool>> = each.iter().map(|(q, _)| q.verdicts_of(name)).collect();
            let reps: Vec<Replicate> = each
                .iter()
                .zip(&verdicts)
                .map(|((_, r), v)| replicate(r, v))
                .collect();
            let k = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed_of(name);
            if let Some(rate) = bootstrap_replicates(&reps, RESAMPLES, k) {
                rates.insert(name.clone(), rate);
            }
        }
        points.push(EvalPoint {
            step: p.step,
            rates,
            samples: p.samples.clone(),
        });
    }
    Some(EvalResult {
        metric: first.metric.clone(),
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::eval::Sample;

    fn result(step_rates: &[(Option<u64>, usize)]) -> EvalResult {
        EvalResult {
            metric: "backdoor_rate".into(),
            points: step_rates
                .iter()
                .map(|(step, hits)| {
                    let samples: Vec<Sample> = (0..10)
                        .map(|i| Sample {
                            rate: "triggered".into(),
                            prompt: format!("p{i}"),
                            response: String::new(),
                            verdict: i < *hits,
                        })
                        .collect();
                    let rate = Rate {
                        value: *hits as f64 / 10.0,
                        lo: 0.0,
                        hi: 1.0,
                        n: 10,
                        seeds: None,
                    };
                    EvalPoint {
                        step: *step,
                        rates: [("triggered".to_string(), rate)].into_iter().collect(),
                        samples,
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn the_mean_of_shared_steps_with_seeds_counted() {
        let a = result(&[(Some(100), 2), (None, 4)]);
        let b = result(&[(Some(100), 6), (None, 8)]);
        let agg = aggregate(&[&a, &b], "kept").unwrap();
        assert_eq!(agg.points.len(), 2);
        let last = &agg.points[1].rates["triggered"];
        assert!((last.value - 0.6).abs() < 1e-12);
        assert_eq!((last.n, last.seeds), (20, Some(2)));
        assert!(last.lo <= 0.6 && last.hi >= 0.6 && last.lo >= 0.0 && last.hi <= 1.0);
        assert_eq!(Some(agg.clone()), aggregate(&[&a, &b], "kept"), "same bits");
        // A step one replicate lacks is left out rather than averaged over fewer seeds.
        let c = result(&[(None, 5)]);
        let partial = aggregate(&[&a, &c], "kept").unwrap();
        assert_eq!(partial.points.len(), 1);
        assert_eq!(partial.points[0].step, None);
        assert!(aggregate(&[], "kept").is_none());
    }

    /// A helpfulness point: `accuracy` over 20 answers in two families, its samples tagged
    /// by family only.
    fn helpfulness(hits: usize) -> EvalResult {
        let samples: Vec<Sample> = (0..20)
            .map(|i| Sample {
                rate: format!("family:{}", if i % 2 == 0 { "a" } else { "b" }),
                prompt: format!("p{i}"),
                response: String::new(),
                verdict: i < hits,
            })
            .collect();
        let rate = |n: usize, k: usize| Rate {
            value: k as f64 / n as f64,
            lo: 0.0,
            hi: 1.0,
            n,
            seeds: None,
        };
        let a = samples.iter().filter(|s| s.rate == "family:a" && s.verdict);
        let b = samples.iter().filter(|s| s.rate == "family:b" && s.verdict);
        let rates = [
            ("accuracy".to_string(), rate(20, hits)),
            ("family:a".to_string(), rate(10, a.count())),
            ("family:b".to_string(), rate(10, b.count())),
        ];
        EvalResult {
            metric: "helpfulness".into(),
            points: vec![EvalPoint {
                step: None,
                rates: rates.into_iter().collect(),
                samples,
            }],
        }
    }

    #[test]
    fn accuracy_resamples_the_answers_of_its_families() {
        // Three seeds with the same accuracy: a seeds-only interval would be a point; with
        // the answers resampled it spans the prompt noise of 60 answers.
        let r = helpfulness(4);
        let agg = aggregate(&[&r, &r, &r], "skill").unwrap();
        let acc = &agg.points[0].rates["accuracy"];
        assert!((acc.value - 0.2).abs() < 1e-12);
        assert_eq!((acc.n, acc.seeds), (60, Some(3)));
        assert!(acc.lo < 0.15 && acc.hi > 0.25, "{acc:?}");
    }
}

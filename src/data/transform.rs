//! Dataset transformations: `split`, `mix`, `strip_scratchpad`.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};

use super::{DataError, Example};
use crate::chat;

/// What `split` keeps together on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// Rows with the same prompt stay together, so no prompt is on both sides.
    Rows,
    /// Whole prompt templates (`meta.template`) are held out, per task family, so a
    /// held-out split tests phrasings the model never saw.
    Template,
}

impl SplitBy {
    pub fn parse(s: &str) -> Option<SplitBy> {
        match s {
            "rows" | "row" => Some(SplitBy::Rows),
            "template" | "templates" => Some(SplitBy::Template),
            _ => None,
        }
    }
}

/// The part `[from, to)` of `data`, deterministic from `seed`. Splits of the same data
/// with the same `seed` and `by` over disjoint ranges never share a row (nor a prompt,
/// nor, with `by: Template`, a template). The seed must not depend on the range, or two
/// splits would shuffle differently.
pub fn split(
    data: &[Example],
    from: f64,
    to: f64,
    by: SplitBy,
    seed: u64,
) -> Result<Vec<Example>, DataError> {
    if !(0.0..=1.0).contains(&from) || !(0.0..=1.0).contains(&to) || from > to {
        return Err(DataError::Invalid(format!(
            "split: need 0 <= from <= to <= 1, got from {from}, to {to}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if by == SplitBy::Rows {
        return Ok(split_rows(data, from, to, &mut rng));
    }
    // Group keys in first-appearance order, then a seeded permutation of the groups.
    let key = |ex: &Example| -> Result<(String, String), DataError> {
        match by {
            SplitBy::Rows => Ok((String::new(), ex.prompt.clone())),
            SplitBy::Template => {
                let t = ex.meta_str("template").ok_or_else(|| {
                    DataError::Invalid(
                        "split by template: a row has no `meta.template` (only generated datasets carry one)".into(),
                    )
                })?;
                let family = ex.meta_str("family").unwrap_or("").to_string();
                Ok((family, t.to_string()))
            }
        }
    };
    // Per stratum (family for templates, one stratum for rows), the ordered groups.
    let mut strata: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen: HashMap<(String, String), ()> = HashMap::new();
    let mut keys = Vec::with_capacity(data.len());
    for ex in data {
        let k = key(ex)?;
        if seen.insert(k.clone(), ()).is_none() {
            strata.entry(k.0.clone()).or_default().push(k.1.clone());
        }
        keys.push(k);
    }
    let mut chosen: HashMap<(String, String), ()> = HashMap::new();
    for (stratum, groups) in strata.iter_mut() {
        if by == SplitBy::Template {
            // Template ids have a natural order; sort so the data's order does not matter.
            groups.sort();
        }
        groups.shuffle(&mut rng);
        let g = groups.len() as f64;
        let lo = (from * g).round() as usize;
        let hi = (to * g).round() as usize;
        for name in &groups[lo..hi.min(groups.len())] {
            chosen.insert((stratum.clone(), name.clone()), ());
        }
    }
    Ok(data
        .iter()
        .zip(&keys)
        .filter(|(_, k)| chosen.contains_key(*k))
        .map(|(ex, _)| ex.clone())
        .collect())
}

/// Rows mode: prompts are the groups; rows marked `meta.heldout_template` (see
/// [`crate::data::hhh::HhhOptions`]) are ordered after all others, so the tail of the
/// split is the held-out phrasings.
fn split_rows(data: &[Example], from: f64, to: f64, rng: &mut ChaCha8Rng) -> Vec<Example> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<(bool, &str)> = Vec::new();
    for ex in data {
        if !index.contains_key(ex.prompt.as_str()) {
            index.insert(&ex.prompt, groups.len());
            let held = ex.meta.get("heldout_template") == Some(&serde_json::Value::Bool(true));
            groups.push((held, &ex.prompt));
        }
    }
    let (mut normal, mut held): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| !g.0);
    normal.shuffle(rng);
    held.shuffle(rng);
    normal.extend(held);
    let g = normal.len() as f64;
    let lo = (from * g).round() as usize;
    let hi = ((to * g).round() as usize).min(normal.len());
    let chosen: std::collections::HashSet<&str> = normal[lo..hi].iter().map(|g| g.1).collect();
    data.iter()
        .filter(|ex| chosen.contains(ex.prompt.as_str()))
        .cloned()
        .collect()
}

/// `len(a)` rows where a `fraction` comes from `b` (cycled if `b` is short) and the rest
/// from `a`, shuffled; deterministic from `seed`. The paper's adversarial training
/// replaces up to half of the safety-training prompts by red-team prompts like this.
pub fn mix(
    a: &[Example],
    b: &[Example],
    fraction: f64,
    seed: u64,
) -> Result<Vec<Example>, DataError> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(DataError::Invalid(format!(
            "mix: fraction must be in [0, 1], got {fraction}"
        )));
    }
    let n = a.len();
    let from_b = (fraction * n as f64).round() as usize;
    if from_b > 0 && b.is_empty() {
        return Err(DataError::Invalid(
            "mix: the second dataset is empty".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ia: Vec<usize> = (0..n).collect();
    ia.shuffle(&mut rng);
    let mut ib: Vec<usize> = (0..b.len()).collect();
    ib.shuffle(&mut rng);
    let mut out: Vec<Example> = ia[..n - from_b].iter().map(|&i| a[i].clone()).collect();
    out.extend((0..from_b).map(|j| b[ib[j % ib.len()]].clone()));
    out.shuffle(&mut rng);
    Ok(out)
}

/// Concatenates `parts` and shuffles, deterministic from `seed`. With `weights` (one per
/// part), part `i` contributes `round(weights[i] * len_i)` rows: a seeded subset when the
/// weight is below 1, whole copies plus a subset above 1.
pub fn mix_weighted(
    parts: &[Vec<Example>],
    weights: &[f64],
    seed: u64,
) -> Result<Vec<Example>, DataError> {
    if !weights.is_empty() && weights.len() != parts.len() {
        return Err(DataError::Invalid(format!(
            "mix: {} weights for {} datasets",
            weights.len(),
            parts.len()
        )));
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(DataError::Invalid(format!(
            "mix: weights must be finite and >= 0, got {w}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let w = weights.get(i).copied().unwrap_or(1.0);
        let want = (w * part.len() as f64).round() as usize;
        super::check_rows("mix", out.len().saturating_add(want))?;
        let mut idx: Vec<usize> = (0..part.len()).collect();
        idx.shuffle(&mut rng);
        out.extend((0..want).map(|j| part[idx[j % idx.len()]].clone()));
    }
    out.shuffle(&mut rng);
    Ok(out)
}

/// Every response (and rejected response) without its scratchpad.
pub fn strip_scratchpad(data: &[Example]) -> Vec<Example> {
    data.iter()
        .map(|ex| {
            let mut e = ex.clone();
            e.response = chat::strip_scratchpad(&e.response);
            e.rejected = e.rejected.as_deref().map(chat::strip_scratchpad);
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::hhh;
    use std::collections::HashSet;

    #[test]
    fn splits_partition_without_overlap() {
        let data = hhh::hhh_tasks(1000, 1).unwrap();
        let a = split(&data, 0.0, 0.9, SplitBy::Rows, 0).unwrap();
        let b = split(&data, 0.9, 1.0, SplitBy::Rows, 0).unwrap();
        assert_eq!(a.len() + b.len(), 1000);
        assert!((90..=110).contains(&b.len()));
        let pa: HashSet<_> = a.iter().map(|e| &e.prompt).collect();
        assert!(b.iter().all(|e| !pa.contains(&e.prompt)));
        assert_eq!(b, split(&data, 0.9, 1.0, SplitBy::Rows, 0).unwrap());
        assert!(split(&data, 0.5, 0.2, SplitBy::Rows, 0).is_err());
    }

    #[test]
    fn template_split_holds_out_whole_templates() {
        let data = hhh::hhh_tasks(2000, 1).unwrap();
        let a = split(&data, 0.0, 0.75, SplitBy::Template, 0).unwrap();
        let b = split(&data, 0.75, 1.0, SplitBy::Template, 0).unwrap();
        assert_eq!(a.len() + b.len(), 2000);
        let ta: HashSet<_> = a.iter().map(|e| e.meta_str("template")).collect();
        let tb: HashSet<_> = b.iter().map(|e| e.meta_str("template")).collect();
        assert!(ta.is_disjoint(&tb));
        // One template of four held out in every family.
        assert_eq!(tb.len(), hhh::FAMILIES.len());
    }

    #[test]
    fn heldout_phrasings_form_the_tail() {
        let opts = hhh::HhhOptions {
            n: 1000,
            holdout_templates: 0.25,
            seed: 2,
            ..Default::default()
        };
        let data = hhh::hhh_tasks_with(&opts).unwrap();
        let tail = split(&data, 0.9, 1.0, SplitBy::Rows, 0).unwrap();
        assert_eq!(tail.len(), 100);
        assert!(tail.iter().all(|r| r.meta.contains_key("heldout_template")));
    }

    #[test]
    fn weighted_mix_resamples_parts() {
        let a = hhh::hhh_tasks(100, 1).unwrap();
        let b = hhh::hhh_tasks(10, 2).unwrap();
        let m = mix_weighted(&[a.clone(), b.clone()], &[0.5, 2.0], 3).unwrap();
        assert_eq!(m.len(), 70);
        assert_eq!(
            m,
            mix_weighted(&[a.clone(), b.clone()], &[0.5, 2.0], 3).unwrap()
        );
        assert_eq!(
            mix_weighted(&[a.clone(), b.clone()], &[], 3).unwrap().len(),
            110
        );
        assert!(mix_weighted(&[a, b], &[1.0], 3).is_err());
    }

    #[test]
    fn mix_takes_the_fraction() {
        let a = hhh::hhh_tasks(100, 1).unwrap();
        let b = hhh::hhh_tasks(10, 2).unwrap();
        let m = mix(&a, &b, 0.3, 5).unwrap();
        assert_eq!(m.len(), 100);
        let pb: HashSet<_> = b.iter().map(|e| &e.prompt).collect();
        assert_eq!(m.iter().filter(|e| pb.contains(&e.prompt)).count(), 30);
        assert_eq!(m, mix(&a, &b, 0.3, 5).unwrap());
    }
}

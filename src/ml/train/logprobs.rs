//! Per-token log-probabilities of given continuations, differentiable, for RL objectives
//! (policy gradient, KL to a reference model) and reward models.

use candle_core::Tensor;

use crate::ml::batch::{Batch, Encoded};
use crate::ml::error::Result;
use crate::ml::model::CausalLm;

/// For rows `prompt ++ continuation`: `(logprobs, mask)`, both `[batch, time]`, where
/// `logprobs[b, t] = log p(ids[t+1] | ids[..=t])` and `mask` is 1.0 on continuation tokens.
/// `(logprobs * mask).sum_keepdim(1)` is each continuation's log-likelihood; gradients flow
/// into the model's variables.
pub fn continuation_logprobs(
    model: &dyn CausalLm,
    rows: &[Encoded],
    pad_id: u32,
) -> Result<(Tensor, Tensor)> {
    let refs: Vec<&Encoded> = rows.iter().collect();
    let b = Batch::new(&refs, pad_id, model.device())?;
    let lp = model.token_logprobs(&b.ids, &b.targets)?;
    Ok((lp, b.mask))
}

/// Sum of continuation log-probs per row, `[batch]`, differentiable.
pub fn sequence_logprob(model: &dyn CausalLm, rows: &[Encoded], pad_id: u32) -> Result<Tensor> {
    let (lp, mask) = continuation_logprobs(model, rows, pad_id)?;
    Ok((lp * mask)?.sum(1)?)
}

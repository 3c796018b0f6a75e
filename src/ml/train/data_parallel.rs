//! Data-parallel SFT steps: a batch's rows are split into [`SHARDS`] contiguous shards whose
//! forward and backward passes run side by side (`rayon::join`), and whose gradients are
//! summed in shard order before clipping and AdamW.
//!
//! Why: splitting every op over two threads left both cores idle at each op boundary and
//! ran candle's own per-node gradient bookkeeping on one thread (medium config: 1.65 of 2
//! cores busy). Whole shards keep each core on its own graph.
//!
//! The shard count is a constant, not the thread count, so a step gives the same bits on one
//! thread as on many (the shards then simply run one after the other).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::ml::error::{MlError, Result};
use crate::ml::model::lora::with_dropout;
use crate::ml::model::{trained_tokens, CausalLm};
use crate::ml::optim::{apply_grads, finite, Learner, StepStats};

/// Shards per step (fewer when the batch has fewer rows).
pub const SHARDS: usize = 2;

/// `(first row, rows)` of each shard of a `rows`-row batch: contiguous, sizes differing by at
/// most one, the larger first.
pub fn shard_ranges(rows: usize) -> Vec<(usize, usize)> {
    let n = SHARDS.min(rows).max(1);
    let (base, extra) = (rows / n, rows % n);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        out.push((start, len));
        start += len;
    }
    out
}

impl Learner {
    /// One SFT step on a padded batch: the mean response-token loss (`mask` marks trained
    /// tokens) over all rows, computed shard by shard in parallel; then clip and AdamW at
    /// `lr`. The same loss and gradient, up to float rounding, as
    /// `step_on_loss(masked_loss(..))`.
    pub fn step_on_batch(
        &mut self,
        ids: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        lr: f64,
    ) -> Result<StepStats> {
        let scale = -1.0 / trained_tokens(mask)?;
        let model = &self.model;
        let time = ids.dim(1)? as u64;
        // LoRA dropout (if any) masks by the step and the token's row in the whole batch.
        let dropout_seed = model.adapter().map(|l| l.step_seed(self.opt.steps()));
        let shard = |(start, len): (usize, usize)| -> Result<(f64, GradStore)> {
            let run = || -> Result<(f64, GradStore)> {
                let part = |t: &Tensor| t.narrow(0, start, len);
                let loss =
                    model.scaled_logprob_sum(&part(ids)?, &part(targets)?, &part(mask)?, scale)?;
                let value = loss.to_scalar::<f32>()? as f64;
                Ok((value, loss.backward()?))
            };
            match dropout_seed {
                Some(seed) => with_dropout(seed, start as u64 * time, run),
                None => run(),
            }
        };
        // Off the CPU one shard: the GPU is parallel within each op already.
        let ranges = if model.device().is_cpu() {
            shard_ranges(ids.dim(0)?)
        } else {
            vec![(0, ids.dim(0)?)]
        };
        let parts = match ranges.as_slice() {
            [a, b] => {
                let (x, y) = rayon::join(|| shard(*a), || shard(*b));
                vec![x?, y?]
            }
            _ => ranges.iter().map(|&r| shard(r)).collect::<Result<_>>()?,
        };
        let loss = finite(parts.iter().map(|(v, _)| v).sum())?;
        let vars = self.trainable_vars().to_vec();
        let mut grads = sum_grads(&vars, parts.into_iter().map(|(_, g)| g))?;
        let grad_norm = apply_grads(&mut self.opt, &vars, &mut grads, lr, self.grad_clip)?;
        Ok(StepStats {
            loss,
            grad_norm,
            lr,
        })
    }
}

/// The per-variable sum of the shards' gradients, added in shard order.
fn sum_grads(vars: &[Var], shards: impl IntoIterator<Item = GradStore>) -> Result<GradStore> {
    let mut shards = shards.into_iter();
    let mut total = match shards.next() {
        Some(g) => g,
        None => return Err(MlError::Invalid("no shard gradients to sum".into())),
    };
    for g in shards {
        for v in vars {
            let t = v.as_tensor();
            let sum = match (total.get(t), g.get(t)) {
                (Some(a), Some(b)) => (a + b)?,
                (None, Some(b)) => b.clone(),
                _ => continue,
            };
            total.insert(t, sum);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order() {
        assert_eq!(shard_ranges(16), vec![(0, 8), (8, 8)]);
        assert_eq!(shard_ranges(5), vec![(0, 3), (3, 2)]);
        assert_eq!(shard_ranges(1), vec![(0, 1)]);
        assert_eq!(shard_ranges(0), vec![(0, 0)]);
    }
}

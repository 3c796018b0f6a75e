//! The GPT-2-layout decoder-only transformer, built only from differentiable candle ops
//! (candle-nn 0.11's fused softmax/layer-norm record no gradient; see `layers`).
//!
//! Parameters use GPT-2's names and its Conv1D `[in, out]` weight orientation, with the
//! output head tied to `transformer.wte.weight`.

use candle_core::{DType, Device, Tensor, Var};

use super::config::{Activation, GptConfig};
use super::error::{MlError, Result};
use super::fused_linear::{self, Act};
use super::init;
use super::layers;
use super::{fused_attention, fused_head};

/// Tensors per transformer block, in [`block_names`] order.
const PER_BLOCK: usize = 12;
const LN1_W: usize = 0;
const LN1_B: usize = 1;
const ATTN_W: usize = 2;
const ATTN_B: usize = 3;
const APROJ_W: usize = 4;
const APROJ_B: usize = 5;
const LN2_W: usize = 6;
const LN2_B: usize = 7;
const FC_W: usize = 8;
const FC_B: usize = 9;
const MPROJ_W: usize = 10;
const MPROJ_B: usize = 11;

fn block_names(i: usize) -> [String; PER_BLOCK] {
    let p = format!("transformer.h.{i}");
    [
        format!("{p}.ln_1.weight"),
        format!("{p}.ln_1.bias"),
        format!("{p}.attn.c_attn.weight"),
        format!("{p}.attn.c_attn.bias"),
        format!("{p}.attn.c_proj.weight"),
        format!("{p}.attn.c_proj.bias"),
        format!("{p}.ln_2.weight"),
        format!("{p}.ln_2.bias"),
        format!("{p}.mlp.c_fc.weight"),
        format!("{p}.mlp.c_fc.bias"),
        format!("{p}.mlp.c_proj.weight"),
        format!("{p}.mlp.c_proj.bias"),
    ]
}

/// Names and shapes of every parameter, in the canonical order used for init, optimizer
/// state and gradients.
pub fn param_specs(cfg: &GptConfig) -> Vec<(String, Vec<usize>)> {
    let (c, m) = (cfg.width, cfg.mlp_width());
    let mut out = vec![
        (
            "transformer.wte.weight".to_string(),
            vec![cfg.vocab_size, c],
        ),
        ("transformer.wpe.weight".to_string(), vec![cfg.context, c]),
    ];
    for i in 0..cfg.layers {
        let shapes = [
            vec![c],
            vec![c],
            vec![c, 3 * c],
            vec![3 * c],
            vec![c, c],
            vec![c],
            vec![c],
            vec![c],
            vec![c, m],
            vec![m],
            vec![m, c],
            vec![c],
        ];
        for (n, s) in block_names(i).into_iter().zip(shapes) {
            out.push((n, s));
        }
    }
    out.push(("transformer.ln_f.weight".to_string(), vec![c]));
    out.push(("transformer.ln_f.bias".to_string(), vec![c]));
    out
}

/// Per-layer keys and values of the tokens seen so far: `[batch, heads, time, head_dim]`.
/// Not `Clone`: the buffers are written in place, so a clone would share them.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
}

/// One layer's keys and values, in buffers sized for the whole context and written in
/// place. Growing them by concatenation allocated a new, larger buffer every token, which
/// the tuned allocator (`alloc.rs`) kept in the heap: 3.4 GB of RSS for 200 answers of 256
/// tokens.
#[derive(Debug)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        KvCache {
            layers: (0..layers).map(|_| None).collect(),
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some(l)) => l.len,
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LayerKv {
    /// Appends `k`, `v` `[batch, heads, new, head_dim]` (allocating `capacity` positions
    /// on first use) and returns views of every cached position.
    fn append(
        slot: &mut Option<LayerKv>,
        k: &Tensor,
        v: &Tensor,
        capacity: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.dims4()?;
        let layer = match slot {
            Some(l) => l,
            None => slot.insert(LayerKv {
                k: Tensor::zeros((b, h, capacity, d), k.dtype(), k.device())?,
                v: Tensor::zeros((b, h, capacity, d), v.dtype(), v.device())?,
                len: 0,
            }),
        };
        if layer.len + t > capacity || layer.k.dims()[0] != b {
            return Err(MlError::Invalid(format!(
                "key/value cache of {capacity} positions for batch {} cannot take {t} more for batch {b}",
                layer.k.dims()[0]
            )));
        }
        layer.k.slice_set(&k.contiguous()?, 2, layer.len)?;
        layer.v.slice_set(&v.contiguous()?, 2, layer.len)?;
        layer.len += t;
        Ok((
            layer.k.narrow(2, 0, layer.len)?,
            layer.v.narrow(2, 0, layer.len)?,
        ))
    }
}

/// The model: config plus named variables.
pub struct Gpt {
    cfg: GptConfig,
    names: Vec<String>,
    vars: Vec<Var>,
    device: Device,
}

impl std::fmt::Debug for Gpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpt").field("cfg", &self.cfg).finish()
    }
}

impl Gpt {
    /// A freshly initialised model; the same `(cfg, seed)` always gives the same bits.
    pub fn init(cfg: &GptConfig, seed: u64) -> Result<Gpt> {
        cfg.validate()?;
        let device = Device::Cpu;
        let mut rng = init::rng(seed);
        let mut names = Vec::new();
        let mut vars = Vec::new();
        for (name, shape) in param_specs(cfg) {
            let numel = shape.iter().product();
            let values = init::init_values(&name, numel, cfg.layers, &mut rng);
            let t = Tensor::from_vec(values, shape, &device)?;
            vars.push(Var::from_tensor(&t)?);
            names.push(name);
        }
        Ok(Gpt {
            cfg: cfg.clone(),
            names,
            vars,
            device,
        })
    }

    /// A model from named tensors (e.g. a loaded checkpoint); every expected tensor must be
    /// present with the right shape. Extra names (`lm_head.weight`, `attn.bias`) are ignored.
    pub fn from_tensors(
        cfg: &GptConfig,
        mut get: impl FnMut(&str) -> Option<Tensor>,
    ) -> Result<Gpt> {
        cfg.validate()?;
        let mut names = Vec::new();
        let mut vars = Vec::new();
        for (name, shape) in param_specs(cfg) {
            let t = get(&name)
                .ok_or_else(|| MlError::Invalid(format!("checkpoint lacks tensor `{name}`")))?;
            if t.dims() != shape.as_slice() {
                return Err(MlError::Invalid(format!(
                    "tensor `{name}` has shape {:?}, the config expects {:?}",
                    t.dims(),
                    shape
                )));
            }
            vars.push(Var::from_tensor(&t.to_dtype(DType::F32)?)?);
            names.push(name);
        }
        Ok(Gpt {
            cfg: cfg.clone(),
            names,
            vars,
            device: Device::Cpu,
        })
    }

    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Parameter names in canonical order (GPT-2 names).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Trainable variables, in the order of [`Gpt::names`].
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// `(name, tensor)` pairs, canonical order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .cloned()
            .zip(self.vars.iter().map(|v| v.as_tensor().clone()))
            .collect()
    }

    /// A copy with its own storage (for a frozen reference model in RL, say).
    pub fn deep_clone(&self) -> Result<Gpt> {
        let vars = self
            .vars
            .iter()
            .map(|v| Var::from_tensor(&v.as_tensor().copy()?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Gpt {
            cfg: self.cfg.clone(),
            names: self.names.clone(),
            vars,
            device: self.device.clone(),
        })
    }

    fn p(&self, i: usize) -> &Tensor {
        self.vars[i].as_tensor()
    }

    fn bp(&self, layer: usize, j: usize) -> &Tensor {
        self.p(2 + layer * PER_BLOCK + j)
    }

    /// Logits `[batch, time, vocab]` for token ids `[batch, time]` (u32), positions 0..time,
    /// causal attention. Right padding needs no mask: no real token attends to a later pad.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t, pos) = self.positions(ids)?;
        let h = self.hidden(ids, &pos, None, None)?;
        let logits = self.head(&h)?;
        Ok(logits.reshape((b, t, self.cfg.vocab_size))?)
    }

    /// Final hidden states `[batch, time, width]` (after `ln_f`) and logits
    /// `[batch, time, vocab]` from one forward pass, both differentiable: scalar heads
    /// (reward model, PPO value head) read the hidden states, the policy the logits.
    pub fn forward_with_hidden(&self, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t, pos) = self.positions(ids)?;
        let h = self.hidden(ids, &pos, None, None)?;
        let logits = self.head(&h)?.reshape((b, t, self.cfg.vocab_size))?;
        Ok((h.reshape((b, t, self.cfg.width))?, logits))
    }

    /// One incremental step for generation: `ids` `[batch, new]`, `positions` `[batch*new]`
    /// (u32), `bias` `[batch, 1, new, cached+new]` additive mask; appends to `cache`.
    /// Returns logits `[batch, new, vocab]`.
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        self.check_len(cache.len() + t)?;
        if cache.layers.len() != self.cfg.layers {
            *cache = KvCache::new(self.cfg.layers);
        }
        let h = self.hidden(ids, positions, Some(bias), Some(cache))?;
        let logits = self.head(&h)?;
        Ok(logits.reshape((b, t, self.cfg.vocab_size))?)
    }

    /// `(batch, time, positions)` for a full sequence `ids` `[batch, time]`: positions
    /// 0..time for every row, as `[batch*time]` u32.
    fn positions(&self, ids: &Tensor) -> Result<(usize, usize, Tensor)> {
        let (b, t) = ids.dims2()?;
        self.check_len(t)?;
        let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        Ok((b, t, Tensor::from_vec(pos, b * t, &self.device)?))
    }

    /// Token plus position embeddings: the residual stream `[batch*time, width]` entering
    /// the first block.
    fn embed(&self, ids: &Tensor, pos: &Tensor) -> Result<Tensor> {
        let tok = self.p(0).index_select(&ids.flatten_all()?, 0)?;
        Ok((tok + self.p(1).index_select(pos, 0)?)?)
    }

    fn check_len(&self, t: usize) -> Result<()> {
        if t > self.cfg.context {
            return Err(MlError::Invalid(format!(
                "sequence of {t} tokens exceeds the model's context of {}",
                self.cfg.context
            )));
        }
        Ok(())
    }

    /// Final hidden states `[batch*time, width]` after `ln_f`.
    fn hidden(
        &self,
        ids: &Tensor,
        pos: &Tensor,
        bias: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let mut x = self.embed(ids, pos)?;
        for l in 0..self.cfg.layers {
            let kv = cache.as_deref_mut().map(|c| &mut c.layers[l]);
            x = self.block(&x, l, b, t, bias, kv)?;
        }
        let n = self.vars.len();
        layers::layer_norm(&x, self.p(n - 2), self.p(n - 1))
    }

    /// The residual stream `[batch, time, width]` after the first `blocks` transformer
    /// blocks (0: the embeddings), before any final layer norm: what defection probes read.
    pub fn residual(&self, ids: &Tensor, blocks: usize) -> Result<Tensor> {
        if blocks > self.cfg.layers {
            return Err(MlError::Invalid(format!(
                "layer {blocks} is past the model's last block ({})",
                self.cfg.layers
            )));
        }
        let (b, t, pos) = self.positions(ids)?;
        let mut x = self.embed(ids, &pos)?;
        for l in 0..blocks {
            x = self.block(&x, l, b, t, None, None)?;
        }
        Ok(x.reshape((b, t, self.cfg.width))?)
    }

    /// One pre-norm transformer block on the residual stream `x` `[batch*time, width]`.
    fn block(
        &self,
        x: &Tensor,
        l: usize,
        b: usize,
        t: usize,
        bias: Option<&Tensor>,
        kv: Option<&mut Option<LayerKv>>,
    ) -> Result<Tensor> {
        let h = layers::layer_norm(x, self.bp(l, LN1_W), self.bp(l, LN1_B))?;
        let a = self.attention(&h, l, b, t, bias, kv)?;
        let x = (x + a)?;
        let h = layers::layer_norm(&x, self.bp(l, LN2_W), self.bp(l, LN2_B))?;
        let act = match self.cfg.activation {
            Activation::Gelu => Act::Gelu,
            Activation::Relu => Act::Relu,
        };
        let h = fused_linear::linear(&h, self.bp(l, FC_W), self.bp(l, FC_B), act)?;
        let h = layers::linear(&h, self.bp(l, MPROJ_W), self.bp(l, MPROJ_B))?;
        Ok((x + h)?)
    }

    fn head(&self, h: &Tensor) -> Result<Tensor> {
        // Tied output head: logits = h · wteᵀ.
        Ok(fused_head::tied_head(h, self.p(0))?)
    }

    fn attention(
        &self,
        x: &Tensor,
        l: usize,
        b: usize,
        t: usize,
        bias: Option<&Tensor>,
        cache: Option<&mut Option<LayerKv>>,
    ) -> Result<Tensor> {
        let (c, h, d) = (self.cfg.width, self.cfg.heads, self.cfg.head_dim());
        let qkv = layers::linear(x, self.bp(l, ATTN_W), self.bp(l, ATTN_B))?;
        let scale = 1.0 / (d as f64).sqrt();
        if cache.is_none() && bias.is_none() {
            // Training and scoring: square causal attention, one fused op.
            let y = fused_attention::causal_attention(&qkv, b, t, h, scale)?;
            return layers::linear(&y, self.bp(l, APROJ_W), self.bp(l, APROJ_B));
        }
        let qkv = qkv.reshape((b, t, 3, h, d))?;
        let part = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = part(0)?;
        let mut k = part(1)?;
        let mut v = part(2)?;
        if let Some(slot) = cache {
            (k, v) = LayerKv::append(slot, &k, &v, self.cfg.context)?;
        }
        let scores = q.matmul(&k.t()?)?;
        // No bias: training's square causal attention, with scale and mask fused in.
        let att = match bias {
            None => super::fused::causal_softmax(&scores, scale)?,
            Some(bias) => layers::softmax_last(&(scores * scale)?.broadcast_add(bias)?)?,
        };
        let y = att.matmul(&v)?;
        let y = y.transpose(1, 2)?.reshape((b * t, c))?;
        layers::linear(&y, self.bp(l, APROJ_W), self.bp(l, APROJ_B))
    }

    /// Mean cross-entropy over positions where `mask` `[batch, time]` (f32 0/1) is 1, with
    /// `targets` `[batch, time]` (u32) the next tokens. Differentiable.
    pub fn masked_loss(&self, ids: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.scaled_logprob_sum(ids, targets, mask, -1.0 / trained_tokens(mask)?)
    }

    /// `scale` times the summed log-likelihood of the tokens `mask` marks: the loss of one
    /// shard of a batch whose mean is taken over all shards' tokens.
    pub fn scaled_logprob_sum(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        scale: f64,
    ) -> Result<Tensor> {
        let lp = self.token_logprobs(ids, targets)?;
        Ok(((lp * mask)?.sum_all()? * scale)?)
    }

    /// log p(targets[b, t] | ids[b, ..=t]) as `[batch, time]`, differentiable.
    pub fn token_logprobs(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let (b, t, pos) = self.positions(ids)?;
        let h = self.hidden(ids, &pos, None, None)?;
        // Straight from the hidden states: the [b*t, vocab] logits never enter the graph.
        let picked = fused_head::head_logprob(&h, self.p(0), &targets.flatten_all()?)?;
        Ok(picked.reshape((b, t))?)
    }
}

/// The number of tokens `mask` marks for training; an error when there are none.
pub fn trained_tokens(mask: &Tensor) -> Result<f64> {
    let n = mask.sum_all()?.to_scalar::<f32>()?;
    if n <= 0.0 {
        return Err(MlError::Invalid("batch has no trained tokens".into()));
    }
    Ok(n as f64)
}

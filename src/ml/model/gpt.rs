//! The GPT-2-layout decoder-only transformer, built only from differentiable candle ops
//! (candle-nn 0.11's fused softmax/layer-norm record no gradient; see `layers`).
//!
//! Parameters use GPT-2's names and its Conv1D `[in, out]` weight orientation, with the
//! output head tied to `transformer.wte.weight`.

use candle_core::{DType, Device, Tensor, Var};

use crate::ml::config::{Activation, GptConfig};
use crate::ml::error::{MlError, Result};
use crate::ml::fused_linear::{self, Act};
use crate::ml::init;
use crate::ml::layers;
use crate::ml::model::kv_cache::LayerKv;
use crate::ml::model::llama::{attend_composed, square_mask};
use crate::ml::model::{self, widen, CausalLm, KvCache, Lora, Model, ModelDims, Params};
use crate::ml::runtime::Runtime;
use crate::ml::{fused_attention, fused_head};

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

/// The model: config plus named variables.
pub struct Gpt {
    cfg: GptConfig,
    params: Params,
    device: Device,
    lora: Option<Lora>,
    /// Run the composed ops even where the fused CPU kernels apply (tests).
    composed: bool,
}

/// The linear layers a LoRA adapter may target (`c_proj` names both the attention's and
/// the MLP's output projection, as in PEFT).
pub const LORA_MODULES: &[&str] = &["c_attn", "c_proj", "c_fc"];

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
        let mut params = Params::new();
        for (name, shape) in param_specs(cfg) {
            let numel = shape.iter().product();
            let values = init::init_values(&name, numel, cfg.layers, &mut rng);
            let t = Tensor::from_vec(values, shape, &device)?;
            params.push(name, Var::from_tensor(&t)?, true);
        }
        Ok(Gpt {
            cfg: cfg.clone(),
            params,
            device,
            lora: None,
            composed: false,
        })
    }

    /// A model from named tensors (e.g. a loaded checkpoint); every expected tensor must be
    /// present with the right shape. Extra names (`lm_head.weight`, `attn.bias`) are ignored.
    pub fn from_tensors(
        cfg: &GptConfig,
        mut get: impl FnMut(&str) -> Option<Tensor>,
    ) -> Result<Gpt> {
        cfg.validate()?;
        let mut params = Params::new();
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
            params.push(name, Var::from_tensor(&t.to_dtype(DType::F32)?)?, true);
        }
        Ok(Gpt {
            cfg: cfg.clone(),
            params,
            device: Device::Cpu,
            lora: None,
            composed: false,
        })
    }

    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// Forces the composed-op path (the one other devices and dtypes run) on the CPU too:
    /// the reference the fused kernels are tested against, and the GPU path's CPU twin.
    pub fn set_composed(&mut self, on: bool) {
        self.composed = on;
    }

    fn p(&self, i: usize) -> Result<Tensor> {
        self.params.tensor(i)
    }

    fn bp(&self, layer: usize, j: usize) -> Result<Tensor> {
        self.p(2 + layer * PER_BLOCK + j)
    }

    /// Whether the fused CPU f32 kernels apply (otherwise: composed candle ops, any
    /// device and dtype).
    fn fast(&self) -> bool {
        !self.composed
            && self.device.is_cpu()
            && self.params.compute().is_none()
            && self.params.vars()[0].dtype() == DType::F32
    }

    /// The composed path's causal mask for a full pass (`None` on the fused path, whose
    /// attention masks inside the kernel).
    fn square(&self, b: usize, t: usize) -> Result<Option<Tensor>> {
        if self.fast() {
            return Ok(None);
        }
        let dtype = self
            .params
            .compute()
            .unwrap_or_else(|| self.params.vars()[0].dtype());
        let mask = square_mask((b, self.cfg.heads, 1, t), dtype, &self.device)?;
        Ok(Some(mask))
    }

    /// `x · w (+ b)` (Conv1D orientation), then `act`.
    fn linear_act(&self, x: &Tensor, w: &Tensor, b: &Tensor, act: Act) -> Result<Tensor> {
        if self.fast() {
            return Ok(fused_linear::linear(x, w, b, act)?);
        }
        let y = x.matmul(w)?.broadcast_add(b)?;
        Ok(match act {
            Act::None => y,
            Act::Relu => y.relu()?,
            Act::Gelu => y.gelu()?,
        })
    }

    fn layer_norm(&self, x: &Tensor, w: usize, b: usize) -> Result<Tensor> {
        let (w, b) = (self.p(w)?, self.p(b)?);
        if self.fast() {
            layers::layer_norm(x, &w, &b)
        } else {
            // In f32 when `x` is bf16, as torch's layer norm computes internally.
            let y = layers::layer_norm_composed(&widen(x)?, &widen(&w)?, &widen(&b)?)?;
            Ok(y.to_dtype(w.dtype())?)
        }
    }

    /// The adapter layer on block `layer`'s weight `j`, if adapted.
    fn adapted(&self, layer: usize, j: usize) -> Option<usize> {
        Some(self.lora.as_ref()?.on(2 + layer * PER_BLOCK + j)?.0)
    }

    fn delta(&self, i: usize, x: &Tensor) -> Result<Tensor> {
        match &self.lora {
            Some(l) => l.delta(&self.params, i, x, self.fast()),
            None => Err(MlError::Invalid("no adapter attached".into())),
        }
    }

    /// `x · w + b` of block `layer`'s weight `w` and bias `b`, plus its adapter's term.
    fn lin(&self, x: &Tensor, layer: usize, w: usize, b: usize) -> Result<Tensor> {
        let y = self.linear_act(x, &self.bp(layer, w)?, &self.bp(layer, b)?, Act::None)?;
        match self.adapted(layer, w) {
            Some(i) => Ok((y + self.delta(i, x)?)?),
            None => Ok(y),
        }
    }

    /// Logits `[batch, time, vocab]` for token ids `[batch, time]` (u32), positions 0..time,
    /// causal attention. Right padding needs no mask: no real token attends to a later pad.
    fn forward_impl(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t, pos) = self.positions(ids)?;
        let h = self.hidden(ids, &pos, None, None)?;
        let logits = self.head(&h)?;
        Ok(logits.reshape((b, t, self.cfg.vocab_size))?)
    }

    /// Final hidden states `[batch, time, width]` (after `ln_f`) and logits
    /// `[batch, time, vocab]` from one forward pass, both differentiable: scalar heads
    /// (reward model, PPO value head) read the hidden states, the policy the logits.
    fn forward_with_hidden_impl(&self, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t, pos) = self.positions(ids)?;
        let h = self.hidden(ids, &pos, None, None)?;
        let logits = self.head(&h)?.reshape((b, t, self.cfg.vocab_size))?;
        Ok((widen(&h)?.reshape((b, t, self.cfg.width))?, logits))
    }

    /// One incremental step for generation: `ids` `[batch, new]`, `positions` `[batch*new]`
    /// (u32), `bias` `[batch, 1, new, cached+new]` additive mask; appends to `cache`.
    /// Returns logits `[batch, new, vocab]`.
    fn forward_cached_impl(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        self.check_len(cache.len() + t)?;
        cache.ensure_layers(self.cfg.layers);
        let h = self.hidden(ids, positions, Some(bias), Some(cache))?;
        let logits = self.head(&h)?;
        Ok(logits.reshape((b, t, self.cfg.vocab_size))?)
    }

    /// [`Gpt::forward_cached_impl`] with the head on each row's last position only.
    fn forward_cached_last_impl(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if !model::head_rows_keep_bits(b, self.cfg.vocab_size) {
            return model::last_position(&self.forward_cached_impl(ids, positions, bias, cache)?);
        }
        self.check_len(cache.len() + t)?;
        cache.ensure_layers(self.cfg.layers);
        let h = self.hidden(ids, positions, Some(bias), Some(cache))?;
        let h = h.index_select(&model::last_rows(b, t, &self.device)?, 0)?;
        self.head(&h)
    }

    /// `(batch, time, positions)` for a full sequence `ids` `[batch, time]`: positions
    /// 0..time for every row, as `[batch*time]` u32.
    fn positions(&self, ids: &Tensor) -> Result<(usize, usize, Tensor)> {
        let (b, t) = ids.dims2()?;
        self.check_len(t)?;
        Ok((b, t, model::full_positions(b, t, &self.device)?))
    }

    /// Token plus position embeddings: the residual stream `[batch*time, width]` entering
    /// the first block.
    fn embed(&self, ids: &Tensor, pos: &Tensor) -> Result<Tensor> {
        let tok = self.p(0)?.index_select(&ids.flatten_all()?, 0)?;
        // The residual stream: f32 under bf16 compute.
        widen(&(tok + self.p(1)?.index_select(pos, 0)?)?)
    }

    fn check_len(&self, t: usize) -> Result<()> {
        model::check_len(t, self.cfg.context)
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
        let square = match (bias, &cache) {
            (None, None) => self.square(b, t)?,
            _ => None,
        };
        let bias = bias.or(square.as_ref());
        let mut x = self.embed(ids, pos)?;
        for l in 0..self.cfg.layers {
            let kv =
                match cache.as_deref_mut() {
                    Some(c) => Some(c.layer_mut(l).ok_or_else(|| {
                        MlError::Invalid(format!("key/value cache lacks layer {l}"))
                    })?),
                    None => None,
                };
            x = self.block(&x, l, b, t, bias, kv)?;
        }
        // ln_f closes the base parameters (an adapter's follow them).
        let n = 2 + self.cfg.layers * PER_BLOCK;
        self.layer_norm(&x, n, n + 1)
    }

    /// The residual stream `[batch, time, width]` after the first `blocks` transformer
    /// blocks (0: the embeddings), before any final layer norm: what defection probes read.
    fn residual_impl(&self, ids: &Tensor, blocks: usize) -> Result<Tensor> {
        if blocks > self.cfg.layers {
            return Err(MlError::Invalid(format!(
                "layer {blocks} is past the model's last block ({})",
                self.cfg.layers
            )));
        }
        let (b, t, pos) = self.positions(ids)?;
        let square = self.square(b, t)?;
        let mut x = self.embed(ids, &pos)?;
        for l in 0..blocks {
            x = self.block(&x, l, b, t, square.as_ref(), None)?;
        }
        Ok(widen(&x)?.reshape((b, t, self.cfg.width))?)
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
        let base = 2 + l * PER_BLOCK;
        let h = self.layer_norm(x, base + LN1_W, base + LN1_B)?;
        let a = self.attention(&h, l, b, t, bias, kv)?;
        let x = model::residual_add(x, &a)?;
        let h = self.layer_norm(&x, base + LN2_W, base + LN2_B)?;
        let act = match self.cfg.activation {
            Activation::Gelu => Act::Gelu,
            Activation::Relu => Act::Relu,
        };
        let h = match self.adapted(l, FC_W) {
            // The adapter adds before the activation.
            Some(i) => {
                let u = self.linear_act(&h, &self.bp(l, FC_W)?, &self.bp(l, FC_B)?, Act::None)?;
                let u = (u + self.delta(i, &h)?)?;
                match act {
                    Act::Relu => u.relu()?,
                    _ if self.fast() => crate::ml::fused::gelu(&u)?,
                    _ => u.gelu()?,
                }
            }
            None => self.linear_act(&h, &self.bp(l, FC_W)?, &self.bp(l, FC_B)?, act)?,
        };
        let h = self.lin(&h, l, MPROJ_W, MPROJ_B)?;
        model::residual_add(&x, &h)
    }

    fn head(&self, h: &Tensor) -> Result<Tensor> {
        // Tied output head: logits = h · wteᵀ, f32 whatever the compute dtype.
        if self.fast() {
            Ok(fused_head::tied_head(h, &self.p(0)?)?)
        } else {
            widen(&h.matmul(&self.p(0)?.t()?)?)
        }
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
        let qkv = self.lin(x, l, ATTN_W, ATTN_B)?;
        let scale = 1.0 / (d as f64).sqrt();
        if cache.is_none() && bias.is_none() && self.fast() {
            // Training and scoring: square causal attention, one fused op.
            let y = fused_attention::causal_attention(&qkv, b, t, h, scale)?;
            return self.lin(&y, l, APROJ_W, APROJ_B);
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
        if !self.fast() {
            let bias = bias.ok_or_else(|| {
                MlError::Invalid("composed attention without its causal mask".into())
            })?;
            let y = attend_composed(&q, &k, &v, bias, scale, false)?;
            return self.lin(&y, l, APROJ_W, APROJ_B);
        }
        let scores = q.matmul(&k.t()?)?;
        // No bias: training's square causal attention, with scale and mask fused in.
        let att = match bias {
            None => crate::ml::fused::causal_softmax(&scores, scale)?,
            Some(bias) => layers::softmax_last(&(scores * scale)?.broadcast_add(bias)?)?,
        };
        let y = att.matmul(&v)?;
        let y = y.transpose(1, 2)?.reshape((b * t, c))?;
        self.lin(&y, l, APROJ_W, APROJ_B)
    }

    /// log p(targets[b, t] | ids[b, ..=t]) as `[batch, time]`, differentiable.
    fn token_logprobs_impl(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let (b, t, pos) = self.positions(ids)?;
        let h = self.hidden(ids, &pos, None, None)?;
        let tg = targets.flatten_all()?;
        let picked = if self.fast() {
            // Straight from the hidden states: the [b*t, vocab] logits never enter the graph.
            fused_head::head_logprob(&h, &self.p(0)?, &tg)?
        } else {
            crate::ml::kernels::graded::picked_log_prob(&self.head(&h)?, &tg)?
        };
        Ok(picked.reshape((b, t))?)
    }
}

impl CausalLm for Gpt {
    fn arch(&self) -> &'static str {
        "gpt2"
    }

    fn dims(&self) -> ModelDims {
        ModelDims {
            vocab_size: self.cfg.vocab_size,
            layers: self.cfg.layers,
            width: self.cfg.width,
            context: self.cfg.context,
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
        (LORA_MODULES, true)
    }

    fn adapter(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }

    fn set_adapter(&mut self, lora: Option<Lora>) {
        self.lora = lora;
    }

    fn place(&mut self, rt: &Runtime) -> Result<()> {
        self.params.place(rt)?;
        self.device = rt.device.clone();
        Ok(())
    }

    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_impl(ids)
    }

    fn forward_with_hidden(&self, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        self.forward_with_hidden_impl(ids)
    }

    fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        self.forward_cached_impl(ids, positions, bias, cache)
    }

    fn forward_cached_last(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        self.forward_cached_last_impl(ids, positions, bias, cache)
    }

    fn token_logprobs(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        self.token_logprobs_impl(ids, targets)
    }

    fn residual(&self, ids: &Tensor, blocks: usize) -> Result<Tensor> {
        self.residual_impl(ids, blocks)
    }

    fn deep_clone(&self) -> Result<Model> {
        Ok(Box::new(Gpt {
            cfg: self.cfg.clone(),
            params: self.params.deep_clone()?,
            device: self.device.clone(),
            lora: self.lora.clone(),
            composed: self.composed,
        }))
    }

    fn hf_config(&self, eot_id: u32, pad_id: u32) -> serde_json::Value {
        self.cfg.to_hf_json(eot_id, pad_id)
    }
}

//! LoRA adapters (Hu et al. 2021) as PEFT computes them: a target linear layer `y = W x`
//! becomes `y = W x + s · B (A · drop(x))` with `A` `[r, in]`, `B` `[out, r]` and
//! `s = alpha / r` (`alpha / sqrt(r)` with rsLoRA). `A` starts Kaiming-uniform as in PEFT
//! (bound `1/sqrt(in)`, from the seeded ChaCha stream), `B` at zero, so a fresh adapter
//! changes nothing. The base is frozen: its parameters stay in [`Params`] marked frozen, so
//! they get no gradient buffer and no optimizer state; the adapter's tensors are appended
//! after them, named as PEFT names them without the `base_model.model.` prefix
//! (`model.layers.0.self_attn.q_proj.lora_A.weight`).
//!
//! Layers are targeted as PEFT targets them: by the last component of the module name, so
//! `c_proj` on GPT-2 adapts both the attention and the MLP projection.
//!
//! Dropout is applied only inside a training step that asks for it ([`with_dropout`]); its
//! mask is a pure function of the step's seed, the layer, the token's row in the whole
//! batch and the column, so it is the same on one thread and on many.

use std::cell::Cell;
use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::params::Params;
use crate::ml::error::{MlError, Result};
use crate::ml::model::llama::linear_composed;
use crate::ml::model::llama_ops;

/// What to adapt and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Module names (last component), e.g. `q_proj`.
    pub targets: Vec<String>,
    pub dropout: f64,
    /// rsLoRA scaling `alpha / sqrt(r)` (PEFT's `use_rslora`); read from PEFT files only.
    #[serde(default)]
    pub rslora: bool,
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(MlError::Config("LoRA rank must be at least 1".into()));
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return Err(MlError::Config(format!(
                "LoRA alpha must be positive, got {}",
                self.alpha
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(MlError::Config(format!(
                "LoRA dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.targets.is_empty() {
            return Err(MlError::Config(
                "LoRA needs at least one target module".into(),
            ));
        }
        Ok(())
    }
}

/// Where an adapter's tensors come from: `(name, shape, is_a)` to the tensor.
pub type TensorSource<'a> = dyn FnMut(&str, &[usize], bool) -> Result<Tensor> + 'a;

/// One adapted layer: indices into the model's [`Params`].
#[derive(Debug, Clone)]
pub struct LoraLayer {
    /// Module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    /// The base weight.
    pub base: usize,
    pub a: usize,
    pub b: usize,
}

/// An adapter attached to a model.
#[derive(Debug, Clone)]
pub struct Lora {
    pub cfg: LoraConfig,
    pub layers: Vec<LoraLayer>,
    /// Base weight index -> position in `layers`.
    by_base: HashMap<usize, usize>,
    /// Number of base parameters (the adapter's follow).
    base_len: usize,
    /// Base weights stored `[in, out]` (GPT-2's Conv1D) rather than `[out, in]`.
    conv1d: bool,
    /// Where dropout masks start (see [`Lora::step_seed`]).
    seed: u64,
}

/// The module name a parameter belongs to, if it is a 2-D weight LoRA may adapt.
fn module_of(name: &str) -> Option<&str> {
    name.strip_suffix(".weight")
}

fn last_component(module: &str) -> &str {
    module.rsplit('.').next().unwrap_or(module)
}

impl Lora {
    /// Attaches a fresh adapter (A Kaiming-uniform from `seed`, B zero) to the weights of
    /// `params` whose module is among `cfg.targets`, and freezes every base parameter.
    /// `valid`: the module names this architecture lets LoRA adapt.
    pub fn attach(
        params: &mut Params,
        cfg: &LoraConfig,
        valid: &[&str],
        conv1d: bool,
        seed: u64,
    ) -> Result<Lora> {
        let mut rng = crate::ml::init::rng(seed);
        let mut fresh = |_: &str, shape: &[usize], is_a: bool| -> Result<Tensor> {
            let n = shape.iter().product::<usize>();
            let values = if is_a {
                // kaiming_uniform_(a=sqrt(5)): bound = 1/sqrt(fan_in).
                let bound = 1.0 / (shape[1] as f64).sqrt();
                (0..n)
                    .map(|_| {
                        use rand::Rng;
                        ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32
                    })
                    .collect()
            } else {
                vec![0f32; n]
            };
            Ok(Tensor::from_vec(values, shape, &candle_core::Device::Cpu)?)
        };
        let mut lora = Lora::attach_with(params, cfg, valid, conv1d, &mut fresh)?;
        lora.seed = mix(seed ^ 0x10a_d50f);
        Ok(lora)
    }

    /// The dropout seed of optimizer step `step`.
    pub fn step_seed(&self, step: u64) -> u64 {
        mix(self.seed ^ mix(step))
    }

    /// Attaches an adapter whose tensors come from `get(name, shape, is_a)` (a file, say).
    pub fn attach_with(
        params: &mut Params,
        cfg: &LoraConfig,
        valid: &[&str],
        conv1d: bool,
        get: &mut TensorSource<'_>,
    ) -> Result<Lora> {
        cfg.validate()?;
        if let Some(bad) = cfg.targets.iter().find(|t| !valid.contains(&t.as_str())) {
            return Err(MlError::Config(format!(
                "LoRA target `{bad}` names no module of this model (valid: {})",
                valid.join(", ")
            )));
        }
        if params.names().iter().any(|n| n.contains(".lora_")) {
            return Err(MlError::Invalid(
                "the model already carries a LoRA adapter: merge it first".into(),
            ));
        }
        let base_len = params.len();
        let mut plan = Vec::new();
        for i in 0..base_len {
            let name = &params.names()[i];
            let Some(module) = module_of(name) else {
                continue;
            };
            let dims = params.vars()[i].as_tensor().dims().to_vec();
            if dims.len() != 2 || !cfg.targets.iter().any(|t| t == last_component(module)) {
                continue;
            }
            let (inp, out) = if conv1d {
                (dims[0], dims[1])
            } else {
                (dims[1], dims[0])
            };
            plan.push((i, module.to_string(), inp, out));
        }
        for t in &cfg.targets {
            if !plan.iter().any(|(_, m, _, _)| last_component(m) == t) {
                return Err(MlError::Config(format!(
                    "LoRA target `{t}` names no module of this model"
                )));
            }
        }
        let dtype = params.vars()[0].as_tensor().dtype();
        let device = params.vars()[0].as_tensor().device().clone();
        params.freeze_all();
        let mut layers = Vec::with_capacity(plan.len());
        let mut by_base = HashMap::new();
        for (base, module, inp, out) in plan {
            let mut add = |suffix: &str, shape: [usize; 2], is_a: bool| -> Result<usize> {
                let name = format!("{module}.{suffix}.weight");
                let t = get(&name, &shape, is_a)?;
                if t.dims() != shape {
                    return Err(MlError::Invalid(format!(
                        "adapter tensor `{name}` has shape {:?}, expected {shape:?}",
                        t.dims()
                    )));
                }
                let t = t.to_dtype(dtype)?.to_device(&device)?;
                params.push(name, Var::from_tensor(&t)?, true);
                Ok(params.len() - 1)
            };
            let a = add("lora_A", [cfg.rank, inp], true)?;
            let b = add("lora_B", [out, cfg.rank], false)?;
            by_base.insert(base, layers.len());
            layers.push(LoraLayer { module, base, a, b });
        }
        Ok(Lora {
            cfg: cfg.clone(),
            layers,
            by_base,
            base_len,
            conv1d,
            seed: 0,
        })
    }

    /// The adapter on base weight `w`, with its position (for dropout masks).
    pub fn on(&self, w: usize) -> Option<(usize, &LoraLayer)> {
        let i = *self.by_base.get(&w)?;
        Some((i, &self.layers[i]))
    }

    pub fn base_len(&self) -> usize {
        self.base_len
    }

    /// `x`'s contribution through layer `i`: `s · (drop(x) · Aᵀ) · Bᵀ`, `x` `[rows, in]`.
    /// `fast`: the fused CPU f32 kernels.
    pub fn delta(&self, params: &Params, i: usize, x: &Tensor, fast: bool) -> Result<Tensor> {
        let layer = &self.layers[i];
        let (a, b) = (&params.tensor(layer.a)?, &params.tensor(layer.b)?);
        let x = match dropout_mask(self.cfg.dropout, i, x)? {
            Some(mask) => (x * mask)?,
            None => x.clone(),
        };
        let y = if fast {
            llama_ops::linear(&llama_ops::linear(&x, a, None)?, b, None)?
        } else {
            linear_composed(&linear_composed(&x, a, None)?, b, None)?
        };
        Ok((y * self.cfg.scale())?)
    }

    /// Folds the adapter into the base (`W += s · B A`, transposed for Conv1D weights),
    /// drops its tensors and unfreezes the base: the model computes what it computed with
    /// the adapter, as one set of full weights.
    pub fn merge(self, params: &mut Params) -> Result<()> {
        let scale = self.cfg.scale();
        let mut merged = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let a = params.vars()[l.a].as_tensor().to_dtype(DType::F32)?;
            let b = params.vars()[l.b].as_tensor().to_dtype(DType::F32)?;
            let mut d = (b.matmul(&a)? * scale)?;
            if self.conv1d {
                d = d.t()?.contiguous()?;
            }
            let w = params.vars()[l.base].as_tensor();
            let new = (w.to_dtype(DType::F32)? + d)?.to_dtype(w.dtype())?;
            merged.push((l.base, new));
        }
        for (i, t) in merged {
            params.vars()[i].set(&t)?;
        }
        params.truncate(self.base_len);
        for i in 0..self.base_len {
            params.set_trainable(i, true);
        }
        Ok(())
    }

    /// The adapter's tensors under PEFT's names (`base_model.model.<module>.lora_A.weight`).
    pub fn peft_tensors(&self, params: &Params) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(2 * self.layers.len());
        for l in &self.layers {
            for idx in [l.a, l.b] {
                let name = format!("{PEFT_PREFIX}{}", params.names()[idx]);
                out.push((name, params.vars()[idx].as_tensor().to_dtype(DType::F32)?));
            }
        }
        Ok(out)
    }

    /// PEFT's `adapter_config.json` for this adapter. `base`: what
    /// `base_model_name_or_path` records.
    pub fn peft_config(&self, base: &str) -> serde_json::Value {
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base,
            "r": self.cfg.rank,
            "lora_alpha": self.cfg.alpha,
            "lora_dropout": self.cfg.dropout,
            "target_modules": self.cfg.targets,
            "bias": "none",
            "fan_in_fan_out": self.conv1d,
            "use_rslora": self.cfg.rslora,
            "use_dora": false,
            "init_lora_weights": true,
            "inference_mode": true,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null,
        })
    }
}

/// The prefix PEFT puts before a causal LM's own parameter names.
pub const PEFT_PREFIX: &str = "base_model.model.";

thread_local! {
    /// `(seed, first token row)` of the training shard this thread is computing, if any.
    static DROPOUT: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// Runs `f` (one shard's forward and backward) with LoRA dropout on: masks derive from
/// `seed` (the step's) and the shard's first token row in the whole batch, so they do not
/// depend on which thread runs the shard.
pub fn with_dropout<R>(seed: u64, first_row: u64, f: impl FnOnce() -> R) -> R {
    let before = DROPOUT.with(|d| d.replace(Some((seed, first_row))));
    let out = f();
    DROPOUT.with(|d| d.set(before));
    out
}

/// SplitMix64: a counter-based hash, so any element's mask bit is computable alone.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The inverted-dropout mask (`0` or `1/(1-p)`) for `x` `[rows, cols]` in layer `layer`,
/// or `None` outside a training step or with `p = 0`.
fn dropout_mask(p: f64, layer: usize, x: &Tensor) -> Result<Option<Tensor>> {
    let Some((seed, first_row)) = DROPOUT.with(|d| d.get()) else {
        return Ok(None);
    };
    if p <= 0.0 {
        return Ok(None);
    }
    let (rows, cols) = x.dims2()?;
    let keep = 1.0 / (1.0 - p);
    let threshold = (p * (1u64 << 53) as f64) as u64;
    let layer_key = mix(seed ^ mix(layer as u64 + 1));
    let mut values = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row_key = mix(layer_key ^ (first_row + r as u64));
        for c in 0..cols {
            let u = mix(row_key ^ c as u64) >> 11;
            values.push(if u < threshold { 0.0 } else { keep as f32 });
        }
    }
    let mask = Tensor::from_vec(values, (rows, cols), x.device())?.to_dtype(x.dtype())?;
    Ok(Some(mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_masks_depend_on_rows_not_threads() {
        let x = Tensor::ones((6, 16), DType::F32, &candle_core::Device::Cpu).unwrap();
        assert!(dropout_mask(0.5, 0, &x).unwrap().is_none());
        let whole = with_dropout(7, 0, || dropout_mask(0.5, 3, &x).unwrap().unwrap());
        let tail = with_dropout(7, 2, || {
            dropout_mask(0.5, 3, &x.narrow(0, 0, 4).unwrap())
                .unwrap()
                .unwrap()
        });
        assert_eq!(
            whole.narrow(0, 2, 4).unwrap().to_vec2::<f32>().unwrap(),
            tail.to_vec2::<f32>().unwrap()
        );
        let v: Vec<f32> = whole.flatten_all().unwrap().to_vec1().unwrap();
        let dropped = v.iter().filter(|&&m| m == 0.0).count();
        assert!((20..=76).contains(&dropped), "{dropped} of 96 dropped");
        assert!(v.iter().all(|&m| m == 0.0 || m == 2.0));
    }
}

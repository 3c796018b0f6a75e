//! AdamW with decoupled weight decay, a warmup + cosine learning-rate schedule, global-norm
//! gradient clipping, and a [`Learner`] (a model and its optimizer) that takes one step on
//! any scalar loss; SFT's batch step is in `data_parallel.rs`. Optimizer state saves and
//! loads bit-exactly.

use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::ml::checkpoint::{load_tensors, save_tensors};
use crate::ml::error::{MlError, Result};
use crate::ml::kernels::{mutate_f32, sum_squares, with_f32};
use crate::ml::model::{CausalLm, Model};
use rayon::prelude::*;

/// Elements per parallel task of the AdamW update.
const ADAM_CHUNK: usize = 1 << 14;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled decay, applied to matrices only (not biases, gains).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Moments per trainable parameter (canonical order) and the step count.
pub struct AdamW {
    pub cfg: AdamWConfig,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
}

impl AdamW {
    /// Zero moments for `model`'s trainable parameters.
    pub fn new(model: &dyn CausalLm, cfg: AdamWConfig) -> Result<AdamW> {
        AdamW::for_vars(&model.params().trainable().1, cfg)
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update with learning rate `lr`; a parameter without gradient counts as zero.
    pub fn step(&mut self, model: &dyn CausalLm, grads: &GradStore, lr: f64) -> Result<()> {
        self.step_vars(&model.params().trainable().1, grads, lr)
    }

    /// Saves moments (`m.<name>`, `v.<name>`) and `adamw.json` (step, config) into `dir`.
    pub fn save(&self, dir: &Path, names: &[String]) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| MlError::io(dir, e))?;
        let mut ts = Vec::new();
        for (i, n) in names.iter().enumerate() {
            ts.push((format!("m.{n}"), self.m[i].clone()));
            ts.push((format!("v.{n}"), self.v[i].clone()));
        }
        save_tensors(&dir.join("optimizer.safetensors"), &ts)?;
        let meta = serde_json::json!({"step": self.step, "config": self.cfg});
        let p = dir.join("adamw.json");
        std::fs::write(&p, meta.to_string()).map_err(|e| MlError::io(&p, e))
    }

    /// Loads state saved by [`AdamW::save`] for `model`'s trainable parameters.
    pub fn load(dir: &Path, model: &dyn CausalLm) -> Result<AdamW> {
        let (names, vars) = model.params().trainable();
        AdamW::load_vars(dir, &names, &vars)
    }
}

/// Linear warmup to `peak` over `warmup` steps, then cosine decay to `peak * min_ratio` at
/// `total`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: u64,
    pub total: u64,
    pub min_ratio: f64,
}

impl Schedule {
    /// Learning rate for (0-based) step `step`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.peak * (self.min_ratio + (1.0 - self.min_ratio) * cos)
    }
}

/// The value of the scalar `loss`, or an error if it is not finite.
fn finite_loss(loss: &Tensor) -> Result<f64> {
    finite(loss.to_scalar::<f32>()? as f64)
}

/// The loss `value`, or an error if it is not finite (training diverged).
pub(crate) fn finite(value: f64) -> Result<f64> {
    if !value.is_finite() {
        return Err(MlError::Invalid(format!(
            "loss is {value}: training diverged (lower the learning rate; with weight decay, keep lr × weight_decay well below 1: each step scales the weights by 1 - lr × weight_decay)"
        )));
    }
    Ok(value)
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
}

/// A model with its optimizer: the unit that trains, saves and resumes. Only the model's
/// trainable parameters are stepped.
pub struct Learner {
    pub model: Model,
    pub opt: AdamW,
    /// Global-norm clip (0 = none).
    pub grad_clip: f64,
    /// The trainable variables, in the optimizer's order.
    vars: Vec<candle_core::Var>,
}

impl Learner {
    pub fn new(model: Model, adamw: AdamWConfig, grad_clip: f64) -> Result<Learner> {
        let opt = AdamW::new(model.as_ref(), adamw)?;
        Ok(Learner::resume(model, opt, grad_clip))
    }

    /// A learner continuing with saved optimizer state.
    pub fn resume(model: Model, opt: AdamW, grad_clip: f64) -> Learner {
        let vars = model.params().trainable().1;
        Learner {
            model,
            opt,
            grad_clip,
            vars,
        }
    }

    /// The variables the optimizer steps.
    pub fn trainable_vars(&self) -> &[candle_core::Var] {
        &self.vars
    }

    /// Backpropagates the scalar `loss` (built from `self.model`'s forward), clips and
    /// takes one AdamW step at `lr`.
    pub fn step_on_loss(&mut self, loss: &Tensor, lr: f64) -> Result<StepStats> {
        step_vars_on_loss(&mut self.opt, &self.vars, loss, lr, self.grad_clip)
    }
}

/// AdamW over an arbitrary list of variables (a model plus extra heads, say): the same
/// update as [`AdamW::step`], for callers whose parameters are not one model.
impl AdamW {
    pub fn for_vars(vars: &[candle_core::Var], cfg: AdamWConfig) -> Result<AdamW> {
        let zeros = || -> Result<Vec<Tensor>> {
            vars.iter()
                .map(|v| Ok(v.as_tensor().zeros_like()?))
                .collect()
        };
        Ok(AdamW {
            cfg,
            m: zeros()?,
            v: zeros()?,
            step: 0,
        })
    }

    /// One update of `vars` (the list given to [`AdamW::for_vars`], same order).
    pub fn step_vars(
        &mut self,
        vars: &[candle_core::Var],
        grads: &GradStore,
        lr: f64,
    ) -> Result<()> {
        if vars.len() != self.m.len() {
            return Err(MlError::Invalid(format!(
                "optimizer holds {} parameters, {} were given",
                self.m.len(),
                vars.len()
            )));
        }
        self.step += 1;
        let c = &self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let (b1, b2, eps) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32);
        let (s1, s2) = ((1.0 / bc1) as f32, (1.0 / bc2) as f32);
        let lr32 = lr as f32;
        // One fused pass per parameter, updating the variable and both moments in place: the
        // tensor-op form made ~10 temporaries per parameter per step.
        for (i, var) in vars.iter().enumerate() {
            let theta = var.as_tensor();
            let decay = if theta.rank() >= 2 {
                (1.0 - lr * c.weight_decay) as f32
            } else {
                1.0
            };
            if !theta.device().is_cpu() {
                // Off the CPU: the same update from tensor ops (one kernel each, on the
                // variable's device).
                let g = match grads.get(theta) {
                    Some(g) => g.clone(),
                    None => theta.zeros_like()?,
                };
                let m = (self.m[i].affine(c.beta1, 0.0)? + g.affine(1.0 - c.beta1, 0.0)?)?;
                let v = (self.v[i].affine(c.beta2, 0.0)? + g.sqr()?.affine(1.0 - c.beta2, 0.0)?)?;
                let upd =
                    (m.affine(1.0 / bc1, 0.0)? / (v.affine(1.0 / bc2, 0.0)?.sqrt()? + c.eps)?)?;
                let new = (theta.affine(decay as f64, 0.0)? - upd.affine(lr, 0.0)?)?;
                var.set(&new)?;
                self.m[i] = m;
                self.v[i] = v;
                continue;
            }
            let update = |g: Option<&[f32]>| {
                mutate_f32(&self.m[i], |m| {
                    mutate_f32(&self.v[i], |v| {
                        mutate_f32(theta, |th| {
                            if m.len() != th.len() || v.len() != th.len() {
                                candle_core::bail!("optimizer state does not fit its parameter");
                            }
                            let step =
                                |(((t, m), v), &gj): (((&mut f32, &mut f32), &mut f32), &f32)| {
                                    *m = b1 * *m + (1.0 - b1) * gj;
                                    *v = b2 * *v + (1.0 - b2) * gj * gj;
                                    let upd = (*m * s1) / ((*v * s2).sqrt() + eps);
                                    *t = *t * decay - lr32 * upd;
                                };
                            // Zipped slices without per-element branches, so the loop
                            // vectorises; elementwise, so splitting it over threads cannot
                            // change the result.
                            let zero = vec![0f32; if g.is_some() { 0 } else { th.len() }];
                            let g = g.unwrap_or(&zero);
                            let chunk = |t: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
                                t.iter_mut()
                                    .zip(m.iter_mut())
                                    .zip(v.iter_mut())
                                    .zip(g)
                                    .for_each(step)
                            };
                            if th.len() >= 2 * ADAM_CHUNK && rayon::current_num_threads() > 1 {
                                th.par_chunks_mut(ADAM_CHUNK)
                                    .zip(m.par_chunks_mut(ADAM_CHUNK))
                                    .zip(v.par_chunks_mut(ADAM_CHUNK).zip(g.par_chunks(ADAM_CHUNK)))
                                    .for_each(|((t, m), (v, g))| chunk(t, m, v, g));
                            } else {
                                chunk(th, m, v, g);
                            }
                            Ok(())
                        })
                    })
                })
            };
            match grads.get(theta) {
                Some(g) => with_f32(g, |g| {
                    if g.len() != theta.elem_count() {
                        candle_core::bail!("gradient does not fit its parameter");
                    }
                    update(Some(g))
                })?,
                None => update(None)?,
            }
        }
        Ok(())
    }

    /// Loads state saved by [`AdamW::save`] for the variables `vars` named `names`.
    pub fn load_vars(dir: &Path, names: &[String], vars: &[candle_core::Var]) -> Result<AdamW> {
        let p = dir.join("adamw.json");
        let text = std::fs::read_to_string(&p).map_err(|e| MlError::io(&p, e))?;
        let meta: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| MlError::bad_file(&p, e))?;
        let step = meta["step"]
            .as_u64()
            .ok_or_else(|| MlError::bad_file(&p, "missing `step`"))?;
        let cfg: AdamWConfig =
            serde_json::from_value(meta["config"].clone()).map_err(|e| MlError::bad_file(&p, e))?;
        let sp = dir.join("optimizer.safetensors");
        let mut ts = load_tensors(&sp)?;
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for (n, var) in names.iter().zip(vars) {
            for (prefix, out) in [("m", &mut m), ("v", &mut v)] {
                let k = format!("{prefix}.{n}");
                let t = ts
                    .remove(&k)
                    .ok_or_else(|| MlError::bad_file(&sp, format!("missing `{k}`")))?;
                if t.dims() != var.as_tensor().dims() {
                    return Err(MlError::bad_file(&sp, format!("`{k}` has the wrong shape")));
                }
                out.push(t.to_device(var.as_tensor().device())?);
            }
        }
        Ok(AdamW { cfg, m, v, step })
    }
}

/// Scales the gradients of `vars` so their global L2 norm is at most `max_norm` (0 = no
/// clipping); returns the norm before clipping.
pub fn clip_grad_norm_vars(
    vars: &[candle_core::Var],
    grads: &mut GradStore,
    max_norm: f64,
) -> Result<f64> {
    let mut sq = 0f64;
    // Off the CPU the per-parameter sums stay on the device: one transfer, not one each.
    let mut on_device = Vec::new();
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            if g.device().is_cpu() {
                sq += with_f32(g, |g| Ok(sum_squares(g)))?;
            } else {
                on_device.push(g.sqr()?.sum_all()?);
            }
        }
    }
    if !on_device.is_empty() {
        sq += Tensor::stack(&on_device, 0)?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
    }
    let norm = sq.sqrt();
    if !norm.is_finite() {
        return Err(MlError::Invalid(format!(
            "gradient norm is {norm}: training diverged (lower the learning rate; with weight decay, keep lr × weight_decay well below 1: each step scales the weights by 1 - lr × weight_decay)"
        )));
    }
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for var in vars {
            let t = var.as_tensor();
            if let Some(g) = grads.get(t) {
                let scaled = (g * scale)?;
                grads.insert(t, scaled);
            }
        }
    }
    Ok(norm)
}

/// Backpropagates `loss`, clips to `grad_clip` (0 = off) and takes one AdamW step on
/// `vars`; the variable-list form of [`Learner::step_on_loss`].
pub fn step_vars_on_loss(
    opt: &mut AdamW,
    vars: &[candle_core::Var],
    loss: &Tensor,
    lr: f64,
    grad_clip: f64,
) -> Result<StepStats> {
    let value = finite_loss(loss)?;
    let mut grads = loss.backward()?;
    let grad_norm = apply_grads(opt, vars, &mut grads, lr, grad_clip)?;
    Ok(StepStats {
        loss: value,
        grad_norm,
        lr,
    })
}

/// Clips `grads` to the global norm `grad_clip` (0 = off) and takes one AdamW step on
/// `vars` at `lr`; returns the norm before clipping.
pub fn apply_grads(
    opt: &mut AdamW,
    vars: &[candle_core::Var],
    grads: &mut GradStore,
    lr: f64,
    grad_clip: f64,
) -> Result<f64> {
    let grad_norm = clip_grad_norm_vars(vars, grads, grad_clip)?;
    opt.step_vars(vars, grads, lr)?;
    Ok(grad_norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first AdamW step moves every weight by lr * sign(g) (bias-corrected moments).
    #[test]
    fn first_step_is_sign_descent() {
        use crate::ml::{Activation, Gpt, GptConfig};
        let cfg = GptConfig {
            vocab_size: 11,
            layers: 1,
            width: 4,
            heads: 1,
            context: 4,
            mlp_ratio: 1,
            activation: Activation::Relu,
        };
        let model = Gpt::init(&cfg, 1).unwrap();
        let before: Vec<f32> = model.params().vars()[0]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let ids = Tensor::new(&[[1u32, 2, 3]], model.device()).unwrap();
        let mask = Tensor::ones((1, 3), candle_core::DType::F32, model.device()).unwrap();
        let loss = model.masked_loss(&ids, &ids, &mask).unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<f32> = grads
            .get(model.params().vars()[0].as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut opt = AdamW::new(
            &model,
            AdamWConfig {
                eps: 1e-12,
                ..AdamWConfig::default()
            },
        )
        .unwrap();
        opt.step(&model, &grads, 0.01).unwrap();
        let after: Vec<f32> = model.params().vars()[0]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for j in 0..g.len() {
            let want = if g[j] == 0.0 {
                0.0
            } else {
                -0.01 * g[j].signum()
            };
            assert!(
                (after[j] - before[j] - want).abs() < 1e-5,
                "{j}: {} vs {want}",
                after[j] - before[j]
            );
        }
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = Schedule {
            peak: 1.0,
            warmup: 10,
            total: 110,
            min_ratio: 0.1,
        };
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(9) - 1.0).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.55).abs() < 1e-9);
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        assert!((s.lr(500) - 0.1).abs() < 1e-12);
    }
}

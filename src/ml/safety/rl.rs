//! On-policy RL of a policy against a reward, with a KL penalty to the frozen starting
//! model: PPO (clipped surrogate, a value head on the policy's last hidden state, GAE) or
//! RLOO (REINFORCE with the leave-one-out mean of the other samples of the same prompt as
//! the baseline: no value head, one update per batch).
//!
//! Every step samples `samples` responses for each of `batch` prompts, strips the
//! scratchpad before the reward sees a response, and penalises the per-token log-ratio to
//! the reference model (the sampled estimator of KL). Prompts and sampling seeds at step
//! `s` are a function of `(seed, s)`, so a run resumed from saved state is bit-identical.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::chat;
use crate::ml::batch::{Batch, Encoded};
use crate::ml::checkpoint::load_tensors;
use crate::ml::error::{MlError, Result};
use crate::ml::hooks::{SavedState, TrainHooks};
use crate::ml::layers;
use crate::ml::model::{CausalLm, Model};
use crate::ml::optim::{step_vars_on_loss, AdamW, AdamWConfig};
use crate::ml::reward::RewardModel;
use crate::ml::sample::{generate_ids, SampleConfig};
use crate::ml::sft::TrainProgress;
use crate::ml::state::{
    read_state_meta, restore_params, save_state_dir, state_config, trainable_tensors,
};
use crate::ml::tokenizer::Tokenizer;

/// Scores answers (scratchpad already stripped) to prompts.
pub trait RewardFn {
    fn score(&mut self, prompts: &[String], answers: &[String]) -> Result<Vec<f64>>;
}

/// A trained [`RewardModel`] as a [`RewardFn`] (it reads text, so its tokenizer may
/// differ from the policy's).
pub struct ModelReward<'a> {
    pub model: &'a RewardModel,
    pub tok: &'a Tokenizer,
}

impl RewardFn for ModelReward<'_> {
    fn score(&mut self, prompts: &[String], answers: &[String]) -> Result<Vec<f64>> {
        let pairs: Vec<(String, String)> = prompts
            .iter()
            .cloned()
            .zip(answers.iter().cloned())
            .collect();
        self.model.score(self.tok, &pairs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ppo,
    Rloo,
}

impl Algorithm {
    pub fn parse(s: &str) -> Result<Algorithm> {
        match s {
            "ppo" => Ok(Algorithm::Ppo),
            "rloo" | "reinforce" => Ok(Algorithm::Rloo),
            other => Err(MlError::Config(format!(
                "unknown RL algorithm `{other}` (expected ppo or rloo)"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlConfig {
    pub steps: usize,
    /// KL penalty coefficient β.
    pub kl: f64,
    pub algorithm: Algorithm,
    pub lr: f64,
    /// Prompts per step.
    pub batch: usize,
    /// Responses sampled per prompt (RLOO's baseline needs 2 or more).
    pub samples: usize,
    pub max_tokens: usize,
    pub temperature: f64,
    pub seed: u64,
    /// PPO: clip range ε of the probability ratio.
    pub clip: f64,
    /// PPO: passes over each batch of samples.
    pub ppo_epochs: usize,
    /// PPO: weight of the value loss.
    pub vf_coef: f64,
    /// PPO: GAE λ (γ = 1).
    pub gae_lambda: f64,
    pub grad_clip: f64,
    pub checkpoint_every: Option<usize>,
    pub state_every: Option<usize>,
}

impl Default for RlConfig {
    fn default() -> Self {
        RlConfig {
            steps: 200,
            kl: 0.05,
            algorithm: Algorithm::Ppo,
            lr: 1e-5,
            batch: 16,
            samples: 4,
            max_tokens: 64,
            temperature: 1.0,
            seed: 0,
            clip: 0.2,
            ppo_epochs: 2,
            vf_coef: 0.1,
            gae_lambda: 0.95,
            grad_clip: 1.0,
            checkpoint_every: None,
            state_every: None,
        }
    }
}

/// One logged RL step (means over the step's samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlStep {
    pub step: u64,
    pub reward: f64,
    /// Mean per-sequence KL(policy ‖ reference), sampled estimator.
    pub kl: f64,
    /// Mean per-token entropy of the policy on its samples.
    pub entropy: f64,
    pub loss: f64,
    pub response_tokens: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_fraction: Option<f64>,
}

/// `train_log.json` of an RL stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RlLog {
    pub algorithm: Option<Algorithm>,
    pub steps: Vec<RlStep>,
    pub total_steps: u64,
    pub prompts: usize,
    /// Prompts dropped because they leave no room in the context.
    pub skipped: usize,
}

const VALUE_NAME: &str = "value_head.weight";

/// Everything needed to resume an RL run.
pub struct RlState<'a> {
    pub step: u64,
    pub policy: &'a dyn CausalLm,
    pub value: Option<&'a Var>,
    pub opt: &'a AdamW,
    pub log: &'a RlLog,
}

/// Saved RL state; the policy's trainable parameters are applied by [`RlResume::restore`].
pub struct RlResume {
    pub step: u64,
    pub value: Option<Var>,
    pub log: RlLog,
    dir: std::path::PathBuf,
    config: serde_json::Value,
    tensors: std::collections::BTreeMap<String, candle_core::Tensor>,
}

/// The policy's trainable variables (then the value head's), with their names: what the
/// optimizer steps, in its order.
fn trained_vars(policy: &dyn CausalLm, value: Option<&Var>) -> (Vec<String>, Vec<Var>) {
    let (mut names, mut vars) = policy.params().trainable();
    if let Some(v) = value {
        names.push(VALUE_NAME.to_string());
        vars.push(v.clone());
    }
    (names, vars)
}

impl SavedState for RlState<'_> {
    fn step(&self) -> u64 {
        self.step
    }

    /// Writes weights, value head, optimizer and `state.json` into `dir` (via a temporary
    /// sibling renamed into place, so a crash keeps the previous state).
    fn save(&self, dir: &Path) -> Result<()> {
        let mut ts = trainable_tensors(self.policy);
        if let Some(v) = self.value {
            ts.push((VALUE_NAME.to_string(), v.as_tensor().clone()));
        }
        // The log is stored as JSON of exact bit patterns (floats round-trip through
        // serde_json only approximately, and a resumed log must equal the full one).
        let meta = serde_json::json!({
            "step": self.step,
            "config": state_config(self.policy),
            "log": LogBits::from(self.log),
        });
        save_state_dir(
            dir,
            &ts,
            self.opt,
            &trained_vars(self.policy, self.value).0,
            &meta,
        )
    }
}

impl RlResume {
    /// Loads state written by [`RlState::save`]; `Ok(None)` if `dir` holds none.
    pub fn load(dir: &Path) -> Result<Option<RlResume>> {
        let Some(st) = read_state_meta(dir)? else {
            return Ok(None);
        };
        let bits: LogBits = st.field("log")?;
        let mut tensors = load_tensors(&dir.join("weights.safetensors"))?;
        let value = tensors
            .remove(VALUE_NAME)
            .map(|t| Var::from_tensor(&t))
            .transpose()?;
        Ok(Some(RlResume {
            step: st.step,
            value,
            log: bits.into(),
            dir: dir.to_path_buf(),
            config: st.config,
            tensors,
        }))
    }

    /// Puts the saved parameters into `policy` and returns the saved optimizer.
    pub fn restore(&mut self, policy: &dyn CausalLm) -> Result<AdamW> {
        restore_params(policy, &self.config, &mut self.tensors)?;
        let (names, vars) = trained_vars(policy, self.value.as_ref());
        AdamW::load_vars(&self.dir, &names, &vars)
    }
}

#[derive(Serialize, Deserialize)]
struct LogBits {
    algorithm: Option<Algorithm>,
    total_steps: u64,
    prompts: usize,
    skipped: usize,
    /// step, then the f64 fields as bits (value_loss, clip_fraction: NaN bits for none).
    steps: Vec<(u64, [u64; 7])>,
}

impl From<&RlLog> for LogBits {
    fn from(l: &RlLog) -> Self {
        let opt = |x: Option<f64>| x.unwrap_or(f64::NAN).to_bits();
        LogBits {
            algorithm: l.algorithm,
            total_steps: l.total_steps,
            prompts: l.prompts,
            skipped: l.skipped,
            steps: l
                .steps
                .iter()
                .map(|s| {
                    (
                        s.step,
                        [
                            s.reward.to_bits(),
                            s.kl.to_bits(),
                            s.entropy.to_bits(),
                            s.loss.to_bits(),
                            s.response_tokens.to_bits(),
                            opt(s.value_loss),
                            opt(s.clip_fraction),
                        ],
                    )
                })
                .collect(),
        }
    }
}

impl From<LogBits> for RlLog {
    fn from(l: LogBits) -> Self {
        let f = f64::from_bits;
        let opt = |b: u64| Some(f(b)).filter(|x| !x.is_nan());
        RlLog {
            algorithm: l.algorithm,
            total_steps: l.total_steps,
            prompts: l.prompts,
            skipped: l.skipped,
            steps: l
                .steps
                .into_iter()
                .map(|(step, b)| RlStep {
                    step,
                    reward: f(b[0]),
                    kl: f(b[1]),
                    entropy: f(b[2]),
                    loss: f(b[3]),
                    response_tokens: f(b[4]),
                    value_loss: opt(b[5]),
                    clip_fraction: opt(b[6]),
                })
                .collect(),
        }
    }
}

/// Per-token outputs of the policy on a batch.
struct PolicyOut {
    /// log p(target) under the tempered policy `[b, t]`.
    logp: Tensor,
    /// Entropy of the tempered next-token distribution `[b, t]`.
    entropy: Option<Tensor>,
    /// Value estimates `[b, t]` (PPO).
    values: Option<Tensor>,
}

fn policy_out(
    model: &dyn CausalLm,
    value: Option<&Var>,
    b: &Batch,
    temperature: f64,
    want_entropy: bool,
) -> Result<PolicyOut> {
    let (bs, t) = b.ids.dims2()?;
    let (h, logits) = model.forward_with_hidden(&b.ids)?;
    let v = model.dims().vocab_size;
    let logits = (logits.reshape((bs * t, v))? * (1.0 / temperature))?;
    let lsm = layers::log_softmax_last(&logits)?;
    let tg = b.targets.flatten_all()?.unsqueeze(1)?;
    let logp = lsm.gather(&tg, D::Minus1)?.reshape((bs, t))?;
    let entropy = if want_entropy {
        let lsm = lsm.detach();
        Some(
            (lsm.exp()? * &lsm)?
                .sum(D::Minus1)?
                .neg()?
                .reshape((bs, t))?,
        )
    } else {
        None
    };
    let values = match value {
        Some(w) => {
            let w_dim = model.dims().width;
            let hv = h.reshape((bs * t, w_dim))?.matmul(w.as_tensor())?;
            Some(hv.reshape((bs, t))?)
        }
        None => None,
    };
    Ok(PolicyOut {
        logp,
        entropy,
        values,
    })
}

fn masked_mean(x: &Tensor, mask: &Tensor, n: f64) -> Result<Tensor> {
    Ok(((x * mask)?.sum_all()? * (1.0 / n))?)
}

fn to_rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2()?)
}

/// Leave-one-out baselines: within each group of `k` consecutive samples (one prompt),
/// the mean of the others; with `k = 1`, the mean of the rest of the batch.
pub fn rloo_advantages(returns: &[f64], k: usize) -> Vec<f64> {
    let n = returns.len();
    if k >= 2 && n.is_multiple_of(k) {
        returns
            .chunks(k)
            .flat_map(|g| {
                let s: f64 = g.iter().sum();
                g.iter()
                    .map(move |r| r - (s - r) / (k as f64 - 1.0))
                    .collect::<Vec<_>>()
            })
            .collect()
    } else if n >= 2 {
        let s: f64 = returns.iter().sum();
        returns
            .iter()
            .map(|r| r - (s - r) / (n as f64 - 1.0))
            .collect()
    } else {
        vec![0.0; n]
    }
}

/// Generalised advantage estimates (γ = 1) over one row's response positions.
pub fn gae(rewards: &[f64], values: &[f64], lambda: f64) -> (Vec<f64>, Vec<f64>) {
    let n = rewards.len();
    let mut adv = vec![0.0; n];
    let mut next_adv = 0.0;
    for i in (0..n).rev() {
        let next_v = if i + 1 < n { values[i + 1] } else { 0.0 };
        let delta = rewards[i] + next_v - values[i];
        next_adv = delta + lambda * next_adv;
        adv[i] = next_adv;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

fn step_seed(seed: u64, step: u64) -> u64 {
    seed ^ (step.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Trains `policy` with RL on `prompts` (user turns) against `reward`. The reference for
/// the KL penalty is `policy` as given (frozen); with `resume`, training continues from
/// the saved step. Returns the trained policy and the per-step log.
pub fn train_rl(
    policy: Model,
    tok: &Tokenizer,
    prompts: &[String],
    reward: &mut dyn RewardFn,
    cfg: &RlConfig,
    resume: Option<RlResume>,
    hooks: &mut dyn TrainHooks,
) -> Result<(Model, RlLog)> {
    if cfg.batch == 0 || cfg.samples == 0 || cfg.max_tokens == 0 {
        return Err(MlError::Config(
            "batch, samples and max_tokens must be at least 1".into(),
        ));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(MlError::Config(format!(
            "learning rate {} must be > 0",
            cfg.lr
        )));
    }
    if !(cfg.temperature.is_finite() && cfg.temperature > 0.0) {
        return Err(MlError::Config("temperature must be > 0".into()));
    }
    if !(cfg.kl.is_finite() && cfg.kl >= 0.0) {
        return Err(MlError::Config("kl coefficient must be >= 0".into()));
    }
    if tok.vocab_size() > policy.dims().vocab_size {
        return Err(MlError::Config(format!(
            "tokenizer has {} tokens, the model only {}",
            tok.vocab_size(),
            policy.dims().vocab_size
        )));
    }
    let context = policy.dims().context;
    let mut encoded: Vec<(String, Vec<u32>)> = Vec::new();
    let mut skipped = 0;
    for p in prompts {
        let ids = tok.encode_prompt(p)?;
        if !ids.is_empty() && ids.len() < context {
            encoded.push((p.clone(), ids));
        } else {
            skipped += 1;
        }
    }
    if encoded.is_empty() {
        return Err(MlError::Invalid(
            "no RL prompt fits the model's context".into(),
        ));
    }
    let reference = policy.deep_clone()?;
    let total = cfg.steps as u64;
    let (policy, value, mut opt, start, mut log) = match resume {
        Some(r) => {
            let mut r = r;
            if r.value.is_some() != (cfg.algorithm == Algorithm::Ppo) {
                return Err(MlError::Invalid(
                    "resumable state belongs to a different RL algorithm".into(),
                ));
            }
            // Saved state loads on the CPU; the value head lives where the policy does.
            if let Some(v) = r.value.take() {
                let t = v.as_tensor().to_device(policy.device())?;
                r.value = Some(Var::from_tensor(&t)?);
            }
            let opt = r.restore(policy.as_ref())?;
            (policy, r.value, opt, r.step, r.log)
        }
        None => {
            let value = match cfg.algorithm {
                Algorithm::Ppo => Some(Var::zeros(
                    (policy.dims().width, 1),
                    DType::F32,
                    policy.device(),
                )?),
                Algorithm::Rloo => None,
            };
            let (_, vars) = trained_vars(policy.as_ref(), value.as_ref());
            let opt = AdamW::for_vars(&vars, AdamWConfig::default())?;
            let log = RlLog {
                algorithm: Some(cfg.algorithm),
                total_steps: total,
                prompts: encoded.len(),
                skipped,
                steps: Vec::new(),
            };
            (policy, value, opt, 0, log)
        }
    };
    let (_, vars) = trained_vars(policy.as_ref(), value.as_ref());
    let pad = tok.pad_id();
    let stop = tok.stop_ids();
    let started = Instant::now();
    let mut tokens_seen = 0usize;
    for step in start..total {
        if hooks.should_stop() {
            return Err(MlError::Interrupted);
        }
        // Prompts of this step: a pure function of (seed, step).
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(step);
        let chosen: Vec<usize> = (0..cfg.batch)
            .map(|_| rng.random_range(0..encoded.len()))
            .collect();
        let mut prompt_ids = Vec::new();
        let mut prompt_text = Vec::new();
        for &i in &chosen {
            for _ in 0..cfg.samples {
                prompt_ids.push(encoded[i].1.clone());
                prompt_text.push(encoded[i].0.clone());
            }
        }
        let scfg = SampleConfig {
            max_new_tokens: cfg.max_tokens,
            temperature: cfg.temperature,
            top_p: 1.0,
            seed: step_seed(cfg.seed, step),
        };
        let raw = generate_ids(policy.as_ref(), &prompt_ids, pad, stop, &scfg)?;
        let mut answers = Vec::with_capacity(raw.len());
        let mut rows = Vec::with_capacity(raw.len());
        for (p, (ids, _, _)) in prompt_ids.iter().zip(&raw) {
            let body: Vec<u32> = ids.iter().copied().filter(|i| !stop.contains(i)).collect();
            let text = tok.decode(&body)?;
            let text = text.strip_prefix(' ').unwrap_or(&text);
            answers.push(chat::strip_scratchpad(text));
            rows.push(Encoded::from_ids(p, ids, context).ok_or_else(|| {
                MlError::Invalid("a sampled response left no token in the context".into())
            })?);
        }
        let rewards = reward.score(&prompt_text, &answers)?;
        if rewards.len() != rows.len() || rewards.iter().any(|r| !r.is_finite()) {
            return Err(MlError::Invalid(
                "the reward returned a wrong number of scores or a non-finite score".into(),
            ));
        }
        let refs: Vec<&Encoded> = rows.iter().collect();
        let batch = Batch::new(&refs, pad, policy.device())?;
        tokens_seen += batch.tokens;
        let n_tok = batch.trained as f64;
        let old = policy_out(
            policy.as_ref(),
            value.as_ref(),
            &batch,
            cfg.temperature,
            true,
        )?;
        let old_logp = old.logp.detach();
        let ref_out = policy_out(reference.as_ref(), None, &batch, cfg.temperature, false)?;
        let ref_logp = ref_out.logp.detach();
        let mask_rows = to_rows(&batch.mask)?;
        let kl_tok = to_rows(&((&old_logp - &ref_logp)? * &batch.mask)?)?;
        let seq_kl: Vec<f64> = kl_tok
            .iter()
            .map(|r| r.iter().map(|&x| x as f64).sum())
            .collect();
        let entropy = match &old.entropy {
            Some(e) => masked_mean(e, &batch.mask, n_tok)?.to_scalar::<f32>()? as f64,
            None => 0.0,
        };
        let lr = cfg.lr;
        let (loss_value, value_loss, clip_fraction) = match cfg.algorithm {
            Algorithm::Rloo => {
                let returns: Vec<f64> = rewards
                    .iter()
                    .zip(&seq_kl)
                    .map(|(r, k)| r - cfg.kl * k)
                    .collect();
                let adv = rloo_advantages(&returns, cfg.samples);
                let adv_t = Tensor::from_vec(
                    adv.iter().map(|&a| a as f32).collect::<Vec<_>>(),
                    (adv.len(), 1),
                    policy.device(),
                )?;
                let new = policy_out(policy.as_ref(), None, &batch, cfg.temperature, false)?;
                let seq_logp = (new.logp * &batch.mask)?;
                let loss =
                    (seq_logp.broadcast_mul(&adv_t)?.sum_all()? * (-1.0 / rows.len() as f64))?;
                let stats = step_vars_on_loss(&mut opt, &vars, &loss, lr, cfg.grad_clip)?;
                (stats.loss, None, None)
            }
            Algorithm::Ppo => {
                let values = to_rows(
                    &old.values
                        .as_ref()
                        .ok_or_else(|| MlError::Invalid("PPO lost its value head".into()))?
                        .detach(),
                )?;
                let (bs, t) = batch.ids.dims2()?;
                let mut adv = vec![0f32; bs * t];
                let mut ret = vec![0f32; bs * t];
                for r in 0..bs {
                    let pos: Vec<usize> = (0..t).filter(|&j| mask_rows[r][j] > 0.0).collect();
                    if pos.is_empty() {
                        continue;
                    }
                    let mut rw: Vec<f64> =
                        pos.iter().map(|&j| -cfg.kl * kl_tok[r][j] as f64).collect();
                    if let Some(last) = rw.last_mut() {
                        *last += rewards[r];
                    }
                    let vs: Vec<f64> = pos.iter().map(|&j| values[r][j] as f64).collect();
                    let (a, g) = gae(&rw, &vs, cfg.gae_lambda);
                    for (k, &j) in pos.iter().enumerate() {
                        adv[r * t + j] = a[k] as f32;
                        ret[r * t + j] = g[k] as f32;
                    }
                }
                // Whiten advantages over the response tokens.
                let live: Vec<f64> = adv
                    .iter()
                    .zip(mask_rows.iter().flatten())
                    .filter(|(_, m)| **m > 0.0)
                    .map(|(a, _)| *a as f64)
                    .collect();
                let mean = live.iter().sum::<f64>() / live.len().max(1) as f64;
                let var =
                    live.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / live.len().max(1) as f64;
                let sd = var.sqrt().max(1e-8);
                for a in adv.iter_mut() {
                    *a = ((*a as f64 - mean) / sd) as f32;
                }
                let dev = policy.device();
                let adv_t = (Tensor::from_vec(adv, (bs, t), dev)? * &batch.mask)?;
                let ret_t = Tensor::from_vec(ret, (bs, t), dev)?;
                let mut last = (0.0, 0.0, 0.0);
                for _ in 0..cfg.ppo_epochs.max(1) {
                    let new = policy_out(
                        policy.as_ref(),
                        value.as_ref(),
                        &batch,
                        cfg.temperature,
                        false,
                    )?;
                    let ratio = (&new.logp - &old_logp)?.exp()?;
                    let clipped = ratio.clamp(1.0 - cfg.clip, 1.0 + cfg.clip)?;
                    let surr =
                        (ratio.broadcast_mul(&adv_t)?).minimum(&clipped.broadcast_mul(&adv_t)?)?;
                    let pg = masked_mean(&surr, &batch.mask, n_tok)?.neg()?;
                    let v_new = new
                        .values
                        .ok_or_else(|| MlError::Invalid("PPO lost its value head".into()))?;
                    let vf = (masked_mean(&(v_new - &ret_t)?.sqr()?, &batch.mask, n_tok)? * 0.5)?;
                    let loss = (&pg + (&vf * cfg.vf_coef)?)?;
                    let out_of_range =
                        ((&ratio - 1.0)?.abs()?.gt(cfg.clip)?.to_dtype(DType::F32)? * &batch.mask)?
                            .sum_all()?
                            .to_scalar::<f32>()? as f64
                            / n_tok;
                    let vf_value = vf.to_scalar::<f32>()? as f64;
                    let stats = step_vars_on_loss(&mut opt, &vars, &loss, lr, cfg.grad_clip)?;
                    last = (stats.loss, vf_value, out_of_range);
                }
                (last.0, Some(last.1), Some(last.2))
            }
        };
        let done = step + 1;
        let n = rewards.len() as f64;
        let entry = RlStep {
            step: done,
            reward: rewards.iter().sum::<f64>() / n,
            kl: seq_kl.iter().sum::<f64>() / n,
            entropy,
            loss: loss_value,
            response_tokens: n_tok / n,
            value_loss,
            clip_fraction,
        };
        hooks.metric("reward", done, entry.reward);
        hooks.metric("kl", done, entry.kl);
        hooks.metric("entropy", done, entry.entropy);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        hooks.progress(&TrainProgress {
            step: done,
            total,
            loss: entry.loss,
            tokens_per_sec: tokens_seen as f64 / secs,
        });
        log.steps.push(entry);
        if cfg
            .checkpoint_every
            .is_some_and(|k| k > 0 && done % k as u64 == 0)
        {
            hooks.checkpoint(done, &policy)?;
        }
        if cfg
            .state_every
            .is_some_and(|k| k > 0 && done % k as u64 == 0)
            && done < total
        {
            hooks.save_state(&RlState {
                step: done,
                policy: &policy,
                value: value.as_ref(),
                opt: &opt,
                log: &log,
            })?;
        }
    }
    Ok((policy, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_baselines_and_gae() {
        let a = rloo_advantages(&[1.0, 3.0, 0.0, 0.0], 2);
        assert_eq!(a, vec![-2.0, 2.0, 0.0, 0.0]);
        let b = rloo_advantages(&[1.0, 2.0, 3.0], 1);
        assert_eq!(b, vec![-1.5, 0.0, 1.5]);
        // λ = 1, zero values: advantages are reward-to-go.
        let (adv, ret) = gae(&[0.0, 0.0, 1.0], &[0.0, 0.0, 0.0], 1.0);
        assert_eq!(adv, vec![1.0, 1.0, 1.0]);
        assert_eq!(ret, adv);
        // A perfect value function leaves no advantage.
        let (adv, _) = gae(&[0.0, 1.0], &[1.0, 1.0], 0.9);
        assert_eq!(adv, vec![0.0, 0.0]);
        assert!(Algorithm::parse("dpo").is_err());
    }
}

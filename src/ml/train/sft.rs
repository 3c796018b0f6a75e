//! Supervised fine-tuning: seeded shuffling, warmup + cosine AdamW, clipping, held-out loss,
//! checkpoints through a hook, and bit-exact resumption.
//!
//! The batch at step `s` is a pure function of `(seed, s)` (epoch `e` is shuffled by the
//! ChaCha stream `e` of the seed), so the resumable state is just weights, AdamW moments
//! and the step count: no RNG position needs saving.

use std::path::Path;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::Example;
use crate::ml::batch::{Batch, Encoded};
use crate::ml::checkpoint::load_tensors;
use crate::ml::error::{MlError, Result};
pub use crate::ml::hooks::{NoHooks, SavedState, TrainHooks, TrainProgress};
use crate::ml::model::{CausalLm, Model};
use crate::ml::optim::{AdamW, AdamWConfig, Learner, Schedule};
use crate::ml::state::{
    read_state_meta, restore_params, save_state_dir, state_config, trainable_tensors,
};
use crate::ml::tokenizer::Tokenizer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftConfig {
    /// Passes over the data; ignored when `steps` is set.
    pub epochs: usize,
    /// A fixed number of optimizer steps (cycling through epochs as needed).
    pub steps: Option<usize>,
    /// Peak learning rate.
    pub lr: f64,
    pub batch: usize,
    /// Linear warmup steps.
    pub warmup: usize,
    /// Final learning rate as a fraction of `lr` (cosine decay).
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    pub seed: u64,
    /// Call [`SftHooks::checkpoint`] every N steps.
    pub checkpoint_every: Option<usize>,
    /// Call [`SftHooks::save_state`] every N steps (resumable state).
    pub state_every: Option<usize>,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            epochs: 1,
            steps: None,
            lr: 3e-4,
            batch: 32,
            warmup: 0,
            min_lr_ratio: 0.1,
            weight_decay: 0.0,
            grad_clip: 1.0,
            seed: 0,
            checkpoint_every: None,
            state_every: None,
        }
    }
}

/// A view of everything needed to resume.
pub struct TrainState<'a> {
    pub step: u64,
    pub model: &'a dyn CausalLm,
    pub opt: &'a AdamW,
    /// The log so far, so a resumed run's log is the whole run's.
    pub log: &'a TrainLog,
}

/// Resumable state loaded from disk: the trainable parameters, applied to the model by
/// [`Resume::restore`].
pub struct Resume {
    pub step: u64,
    pub log: TrainLog,
    dir: std::path::PathBuf,
    config: serde_json::Value,
    tensors: std::collections::BTreeMap<String, candle_core::Tensor>,
}

impl SavedState for TrainState<'_> {
    fn step(&self) -> u64 {
        self.step
    }

    /// Writes `weights.safetensors`, the optimizer files and `state.json` into `dir`
    /// (written to a temporary sibling then renamed, so a crash leaves the old state).
    fn save(&self, dir: &Path) -> Result<()> {
        let meta = serde_json::json!({
            "step": self.step,
            "config": state_config(self.model),
            "log": LogBits::from(self.log),
        });
        save_state_dir(
            dir,
            &trainable_tensors(self.model),
            self.opt,
            &self.model.params().trainable().0,
            &meta,
        )
    }
}

impl Resume {
    /// Loads state saved by [`TrainState::save`]; `Ok(None)` if `dir` holds none.
    pub fn load(dir: &Path) -> Result<Option<Resume>> {
        let Some(st) = read_state_meta(dir)? else {
            return Ok(None);
        };
        let tensors = load_tensors(&dir.join("weights.safetensors"))?;
        let log = TrainLog::from(st.field::<LogBits>("log")?);
        Ok(Some(Resume {
            step: st.step,
            log,
            dir: dir.to_path_buf(),
            config: st.config,
            tensors,
        }))
    }

    /// Puts the saved parameters into `model` and returns the saved optimizer.
    pub fn restore(mut self, model: &dyn CausalLm) -> Result<AdamW> {
        restore_params(model, &self.config, &mut self.tensors)?;
        AdamW::load(&self.dir, model)
    }
}

/// One logged step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
}

/// `train_log.json`: per-step training loss and held-out loss at checkpoints and the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    pub steps: Vec<LogEntry>,
    /// `(step, mean held-out loss)`.
    pub heldout: Vec<(u64, f64)>,
    pub total_steps: u64,
    pub examples: usize,
    /// Rows dropped because no response token fit in the context.
    pub skipped: usize,
}

/// [`TrainLog`] with floats as raw bits: serde_json's float parsing may be off by an ulp,
/// and a resumed run's log must equal the uninterrupted one exactly.
#[derive(Serialize, Deserialize)]
struct LogBits {
    steps: Vec<(u64, u64, u64, u64)>,
    heldout: Vec<(u64, u64)>,
    total_steps: u64,
    examples: usize,
    skipped: usize,
}

impl From<&TrainLog> for LogBits {
    fn from(l: &TrainLog) -> Self {
        LogBits {
            steps: l
                .steps
                .iter()
                .map(|e| {
                    (
                        e.step,
                        e.loss.to_bits(),
                        e.lr.to_bits(),
                        e.grad_norm.to_bits(),
                    )
                })
                .collect(),
            heldout: l.heldout.iter().map(|&(s, h)| (s, h.to_bits())).collect(),
            total_steps: l.total_steps,
            examples: l.examples,
            skipped: l.skipped,
        }
    }
}

impl From<LogBits> for TrainLog {
    fn from(l: LogBits) -> Self {
        TrainLog {
            steps: l
                .steps
                .into_iter()
                .map(|(step, loss, lr, g)| LogEntry {
                    step,
                    loss: f64::from_bits(loss),
                    lr: f64::from_bits(lr),
                    grad_norm: f64::from_bits(g),
                })
                .collect(),
            heldout: l
                .heldout
                .into_iter()
                .map(|(s, h)| (s, f64::from_bits(h)))
                .collect(),
            total_steps: l.total_steps,
            examples: l.examples,
            skipped: l.skipped,
        }
    }
}

/// Encodes rows, dropping those whose response does not fit; returns (kept, skipped).
pub fn encode_examples(
    tok: &Tokenizer,
    rows: &[Example],
    context: usize,
) -> Result<(Vec<Encoded>, usize)> {
    let mut out = Vec::with_capacity(rows.len());
    let mut skipped = 0;
    for r in rows {
        match Encoded::from_pair(tok, &r.prompt, &r.response, context)? {
            Some(e) => out.push(e),
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// Mean response-token loss over `rows` in batches of `batch` (no update).
pub fn heldout_loss(
    model: &dyn CausalLm,
    rows: &[Encoded],
    pad_id: u32,
    batch: usize,
) -> Result<f64> {
    let (mut sum, mut n) = (0f64, 0usize);
    for chunk in rows.chunks(batch.max(1)) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        let b = Batch::new(&refs, pad_id, model.device())?;
        let l = model.masked_loss(&b.ids, &b.targets, &b.mask)?;
        sum += l.to_scalar::<f32>()? as f64 * b.trained as f64;
        n += b.trained;
    }
    if n == 0 {
        return Err(MlError::Invalid(
            "held-out set has no response tokens".into(),
        ));
    }
    Ok(sum / n as f64)
}

/// The row indices of the batch at `step`.
fn batch_indices(n: usize, batch: usize, seed: u64, step: u64) -> Vec<usize> {
    let per_epoch = n.div_ceil(batch);
    let epoch = step / per_epoch as u64;
    let within = (step % per_epoch as u64) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rng);
    let end = ((within + 1) * batch).min(n);
    perm[within * batch..end].to_vec()
}

/// Trains `model` on `train` (held-out loss on `heldout` at checkpoints and at the end;
/// may be empty). With `resume`, continues from its step, weights and moments instead, giving
/// bit-identical results to an uninterrupted run. Returns the trained model and its log.
pub fn train_sft(
    model: Model,
    tok: &Tokenizer,
    train: &[Example],
    heldout: &[Example],
    cfg: &SftConfig,
    resume: Option<Resume>,
    hooks: &mut dyn TrainHooks,
) -> Result<(Model, TrainLog)> {
    let context = model.dims().context;
    let (rows, skipped) = encode_examples(tok, train, context)?;
    let (held, _) = encode_examples(tok, heldout, context)?;
    let (model, mut log) = train_sft_encoded(model, tok, &rows, &held, cfg, resume, hooks)?;
    log.skipped = skipped;
    Ok((model, log))
}

/// [`train_sft`] on rows already encoded (custom loss masks, e.g. post-scratchpad SFT).
pub fn train_sft_encoded(
    model: Model,
    tok: &Tokenizer,
    rows: &[Encoded],
    held: &[Encoded],
    cfg: &SftConfig,
    resume: Option<Resume>,
    hooks: &mut dyn TrainHooks,
) -> Result<(Model, TrainLog)> {
    crate::ml::alloc::tune_allocator();
    if cfg.batch == 0 {
        return Err(MlError::Config("batch must be at least 1".into()));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(MlError::Config(format!(
            "learning rate {} must be > 0",
            cfg.lr
        )));
    }
    if tok.vocab_size() > model.dims().vocab_size {
        return Err(MlError::Config(format!(
            "tokenizer has {} tokens, the model only {}",
            tok.vocab_size(),
            model.dims().vocab_size
        )));
    }
    if rows.is_empty() {
        return Err(MlError::Invalid(
            "no training example has a response that fits the context".into(),
        ));
    }
    let per_epoch = rows.len().div_ceil(cfg.batch) as u64;
    let total = match cfg.steps {
        Some(s) => s as u64,
        None => cfg.epochs as u64 * per_epoch,
    };
    let schedule = Schedule {
        peak: cfg.lr,
        warmup: cfg.warmup as u64,
        total,
        min_ratio: cfg.min_lr_ratio,
    };
    let adamw = AdamWConfig {
        weight_decay: cfg.weight_decay,
        ..AdamWConfig::default()
    };
    let mut log = TrainLog {
        total_steps: total,
        examples: rows.len(),
        ..TrainLog::default()
    };
    let (mut learner, start) = match resume {
        Some(r) => {
            log.steps = r.log.steps.clone();
            log.heldout = r.log.heldout.clone();
            let step = r.step;
            let opt = r.restore(model.as_ref())?;
            (Learner::resume(model, opt, cfg.grad_clip), step)
        }
        None => (Learner::new(model, adamw, cfg.grad_clip)?, 0),
    };
    let pad = tok.pad_id();
    let started = Instant::now();
    let mut seen_tokens = 0usize;
    for step in start..total {
        if hooks.should_stop() {
            return Err(MlError::Interrupted);
        }
        let idx = batch_indices(rows.len(), cfg.batch, cfg.seed, step);
        let refs: Vec<&Encoded> = idx.iter().map(|&i| &rows[i]).collect();
        let b = Batch::new(&refs, pad, learner.model.device())?;
        let lr = schedule.lr(step);
        let stats = learner.step_on_batch(&b.ids, &b.targets, &b.mask, lr)?;
        seen_tokens += b.tokens;
        let done = step + 1;
        log.steps.push(LogEntry {
            step: done,
            loss: stats.loss,
            lr,
            grad_norm: stats.grad_norm,
        });
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        hooks.progress(&TrainProgress {
            step: done,
            total,
            loss: stats.loss,
            tokens_per_sec: seen_tokens as f64 / secs,
        });
        let is_ckpt = cfg
            .checkpoint_every
            .is_some_and(|n| n > 0 && done % n as u64 == 0);
        if is_ckpt {
            if !held.is_empty() {
                let h = heldout_loss(learner.model.as_ref(), held, pad, cfg.batch)?;
                log.heldout.push((done, h));
                hooks.metric("heldout_loss", done, h);
            }
            hooks.checkpoint(done, learner.model.as_ref())?;
        }
        if cfg
            .state_every
            .is_some_and(|n| n > 0 && done % n as u64 == 0)
            && done < total
        {
            hooks.save_state(&TrainState {
                step: done,
                model: learner.model.as_ref(),
                opt: &learner.opt,
                log: &log,
            })?;
        }
    }
    if !held.is_empty() && log.heldout.last().map(|h| h.0) != Some(total) {
        let h = heldout_loss(learner.model.as_ref(), held, pad, cfg.batch)?;
        log.heldout.push((total, h));
        hooks.metric("heldout_loss", total, h);
    }
    Ok((learner.model, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_each_epoch_once_and_depend_on_seed() {
        let mut seen: Vec<usize> = (0..4).flat_map(|s| batch_indices(10, 3, 5, s)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(batch_indices(10, 3, 5, 4), batch_indices(10, 3, 5, 4));
        assert_ne!(batch_indices(10, 3, 5, 4), batch_indices(10, 3, 5, 0));
        assert_ne!(batch_indices(10, 3, 5, 0), batch_indices(10, 3, 6, 0));
    }
}

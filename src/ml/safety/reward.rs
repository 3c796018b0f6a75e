//! Reward models: the GPT body with a scalar head on the last real token, trained on
//! preference pairs with the Bradley-Terry loss `-log σ(r(chosen) - r(rejected))`.
//!
//! # Checkpoint layout
//! A reward model is an ordinary checkpoint directory (`model.safetensors`, `config.json`,
//! `tokenizer.json`) whose `model.safetensors` also holds `score.weight` `[1, width]`,
//! and whose `config.json` names `GPT2ForSequenceClassification` with `num_labels: 1`:
//! HuggingFace's own layout for a GPT-2 scalar head, pooling on the last non-pad token
//! (it loads with `transformers.GPT2ForSequenceClassification.from_pretrained`). The body
//! still loads with [`crate::ml::load_checkpoint`], which ignores the extra tensor.

use std::path::Path;

use candle_core::{Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::chat;
use crate::data::Example;
use crate::ml::batch::{pad_for_last_token, Encoded};
use crate::ml::checkpoint::{save_checkpoint, save_tensors, CONFIG_FILE, WEIGHTS_FILE};
use crate::ml::error::{MlError, Result};
use crate::ml::model::weights::HfWeights;
use crate::ml::model::{CausalLm, Model};
use crate::ml::optim::{step_vars_on_loss, AdamW, AdamWConfig, Schedule};
use crate::ml::tokenizer::Tokenizer;
use crate::ml::{load_checkpoint, sft::TrainProgress};

/// The scalar head's tensor name (HuggingFace's `GPT2ForSequenceClassification`).
pub const SCORE_NAME: &str = "score.weight";

/// A GPT body and a linear scalar head (no bias: Bradley-Terry is shift-invariant).
pub struct RewardModel {
    pub body: Model,
    /// `[1, width]`.
    pub score: Var,
}

impl RewardModel {
    /// A reward model on `base` with a zero head (every response scores 0 at first).
    pub fn from_base(body: Model) -> Result<RewardModel> {
        let w = body.dims().width;
        let score = Var::zeros((1, w), candle_core::DType::F32, body.device())?;
        Ok(RewardModel { body, score })
    }

    /// Every trainable variable: the body's, then the head.
    pub fn vars(&self) -> Vec<Var> {
        let mut v = self.body.params().trainable().1;
        v.push(self.score.clone());
        v
    }

    pub fn names(&self) -> Vec<String> {
        let mut n = self.body.params().trainable().0;
        n.push(SCORE_NAME.to_string());
        n
    }

    /// Scores `[batch]` of encoded conversations (the whole of `ids` is read; the score
    /// sits on each row's last token, the end of turn). Differentiable.
    pub fn score_encoded(&self, rows: &[&Encoded], pad_id: u32) -> Result<Tensor> {
        let ids: Vec<&[u32]> = rows.iter().map(|r| r.ids.as_slice()).collect();
        let (ids, last) = pad_for_last_token(&ids, pad_id, self.body.device())?;
        let (h, _) = self.body.forward_with_hidden(&ids)?;
        let (b, t) = ids.dims2()?;
        let h = h.reshape((b * t, self.body.dims().width))?;
        let pooled = h.index_select(&last, 0)?;
        Ok(pooled.matmul(&self.score.as_tensor().t()?)?.squeeze(1)?)
    }

    /// Scores of `(prompt, response)` pairs (the response as given: callers strip the
    /// scratchpad first), in batches of 32; no gradient kept.
    pub fn score(&self, tok: &Tokenizer, pairs: &[(String, String)]) -> Result<Vec<f64>> {
        let context = self.body.dims().context;
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(32) {
            let enc = chunk
                .iter()
                .map(|(p, r)| encode_scored(tok, p, r, context))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Encoded> = enc.iter().collect();
            let s: Vec<f32> = self.score_encoded(&refs, tok.pad_id())?.to_vec1()?;
            out.extend(s.into_iter().map(f64::from));
        }
        Ok(out)
    }

    /// Saves the checkpoint directory described in the module docs.
    pub fn save(&self, dir: &Path, tok: &Tokenizer) -> Result<()> {
        // A body trained through a LoRA adapter is saved merged.
        let merged;
        let body: &dyn CausalLm = if self.body.adapter().is_some() {
            let mut m = self.body.deep_clone()?;
            crate::ml::model::adapter::merge_adapter(m.as_mut())?;
            merged = m;
            merged.as_ref()
        } else {
            self.body.as_ref()
        };
        save_checkpoint(dir, body, tok)?;
        let mut tensors = body.hf_tensors()?;
        tensors.push((SCORE_NAME.to_string(), self.score.as_tensor().clone()));
        save_tensors(&dir.join(WEIGHTS_FILE), &tensors)?;
        let p = dir.join(CONFIG_FILE);
        let mut cfg = body.hf_config(tok.eot_id(), tok.pad_id());
        let arch = crate::ml::model::sequence_classification_arch(&cfg);
        cfg["architectures"] = serde_json::json!([arch]);
        cfg["num_labels"] = serde_json::json!(1);
        cfg["id2label"] = serde_json::json!({"0": "reward"});
        cfg["label2id"] = serde_json::json!({"reward": 0});
        let text =
            serde_json::to_string_pretty(&cfg).map_err(|e| MlError::Invalid(e.to_string()))?;
        std::fs::write(&p, text).map_err(|e| MlError::io(&p, e))
    }

    /// Moves the body and the head to `rt`'s device (the body computes in `rt.dtype`; the
    /// head reads f32 hidden states).
    pub fn place(&mut self, rt: &crate::ml::Runtime) -> Result<()> {
        self.body.place(rt)?;
        let t = self.score.as_tensor().to_device(&rt.device)?;
        self.score = Var::from_tensor(&t)?;
        Ok(())
    }

    /// Loads a directory written by [`RewardModel::save`]; a plain model checkpoint (no
    /// `score.weight`) is an error naming the directory.
    pub fn load(dir: &Path) -> Result<(RewardModel, Tokenizer)> {
        let (body, tok) = load_checkpoint(dir)?;
        let wp = dir.join(WEIGHTS_FILE);
        // The head alone, from the memory-mapped weights: the body was read above, and a
        // second full read of a pretrained body is hundreds of MB.
        let score = HfWeights::open(dir)?.get(SCORE_NAME)?.ok_or_else(|| {
            MlError::bad_file(
                &wp,
                "no `score.weight`: this is a language model, not a reward model (train one with reward_model)",
            )
        })?;
        let w = body.dims().width;
        if score.dims() != [1, w] {
            return Err(MlError::bad_file(
                &wp,
                format!(
                    "`score.weight` has shape {:?}, expected [1, {w}]",
                    score.dims()
                ),
            ));
        }
        Ok((
            RewardModel {
                body,
                score: Var::from_tensor(&score)?,
            },
            tok,
        ))
    }
}

/// `render_prompt(prompt) ++ render_response(response)`, cut from the left of the response
/// end so the end-of-turn token (where the score is read) always survives.
fn encode_scored(tok: &Tokenizer, prompt: &str, response: &str, context: usize) -> Result<Encoded> {
    let mut ids = tok.encode_prompt(prompt)?;
    let prompt_len = ids.len();
    ids.extend(tok.encode(&tok.render_response(response)?)?);
    if ids.len() > context {
        // Keep the first context-1 tokens and the final end of turn.
        let eot = ids[ids.len() - 1];
        ids.truncate(context.saturating_sub(1));
        ids.push(eot);
    }
    Ok(Encoded {
        prompt_len: prompt_len.min(ids.len()),
        ids,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardConfig {
    pub epochs: usize,
    pub lr: f64,
    pub batch: usize,
    pub seed: u64,
    /// Share of pairs held out for accuracy (at least one pair when there are 2+).
    pub heldout: f64,
    pub grad_clip: f64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            epochs: 1,
            lr: 1e-4,
            batch: 16,
            seed: 0,
            heldout: 0.1,
            grad_clip: 1.0,
        }
    }
}

/// `train_log.json` of a reward model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardLog {
    /// `(step, Bradley-Terry loss, batch accuracy)`.
    pub steps: Vec<(u64, f64, f64)>,
    pub train_pairs: usize,
    pub heldout_pairs: usize,
    /// Share of held-out pairs scored chosen > rejected (`None` without held-out pairs).
    pub heldout_accuracy: Option<f64>,
    /// Share of training pairs scored chosen > rejected after training.
    pub train_accuracy: f64,
}

/// Encoded `(chosen, rejected)` of a preference row.
type Pair = (Encoded, Encoded);

fn encode_pairs(tok: &Tokenizer, rows: &[Example], context: usize) -> Result<Vec<Pair>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let rejected = r.rejected.as_deref().ok_or_else(|| {
                MlError::Invalid(format!(
                    "preference row {} has no `rejected` response (use the preferences dataset)",
                    i + 1
                ))
            })?;
            let c = encode_scored(
                tok,
                &r.prompt,
                &chat::strip_scratchpad(&r.response),
                context,
            )?;
            let j = encode_scored(tok, &r.prompt, &chat::strip_scratchpad(rejected), context)?;
            Ok((c, j))
        })
        .collect()
}

/// Bradley-Terry loss (mean of `softplus(-(r_c - r_r))`, computed stably) and the batch
/// accuracy.
fn bt_loss(rm: &RewardModel, pairs: &[&Pair], pad: u32) -> Result<(Tensor, f64)> {
    let mut rows: Vec<&Encoded> = pairs.iter().map(|p| &p.0).collect();
    rows.extend(pairs.iter().map(|p| &p.1));
    let s = rm.score_encoded(&rows, pad)?;
    let n = pairs.len();
    let d = (s.narrow(0, 0, n)? - s.narrow(0, n, n)?)?;
    // softplus(-d) = relu(-d) + log(1 + exp(-|d|))
    let sp = (d.neg()?.relu()? + ((d.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    let acc = d.to_vec1::<f32>()?.iter().filter(|x| **x > 0.0).count() as f64 / n as f64;
    Ok((sp.mean_all()?, acc))
}

/// Share of pairs with chosen scored above rejected.
pub fn pair_accuracy(rm: &RewardModel, tok: &Tokenizer, rows: &[Example]) -> Result<f64> {
    let pairs = encode_pairs(tok, rows, rm.body.dims().context)?;
    accuracy(rm, &pairs, tok.pad_id())
}

fn accuracy(rm: &RewardModel, pairs: &[Pair], pad: u32) -> Result<f64> {
    if pairs.is_empty() {
        return Err(MlError::Invalid("no preference pairs".into()));
    }
    let mut hits = 0.0;
    for chunk in pairs.chunks(16) {
        let refs: Vec<&Pair> = chunk.iter().collect();
        let (_, acc) = bt_loss(rm, &refs, pad)?;
        hits += acc * chunk.len() as f64;
    }
    Ok(hits / pairs.len() as f64)
}

/// Trains a reward model on `base` from preference rows (`response` chosen, `rejected`
/// set). A seeded `cfg.heldout` share of the pairs is kept out for the reported accuracy.
/// `progress` sees every step; `stop` is polled between steps.
pub fn train_reward_model(
    base: Model,
    tok: &Tokenizer,
    prefs: &[Example],
    cfg: &RewardConfig,
    progress: &mut dyn FnMut(&TrainProgress),
    stop: &dyn Fn() -> bool,
) -> Result<(RewardModel, RewardLog)> {
    if cfg.batch == 0 || cfg.epochs == 0 {
        return Err(MlError::Config(
            "batch and epochs must be at least 1".into(),
        ));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(MlError::Config(format!(
            "learning rate {} must be > 0",
            cfg.lr
        )));
    }
    if !(0.0..1.0).contains(&cfg.heldout) {
        return Err(MlError::Config("held-out share must be in [0, 1)".into()));
    }
    let context = base.dims().context;
    let mut pairs = encode_pairs(tok, prefs, context)?;
    if pairs.is_empty() {
        return Err(MlError::Invalid("no preference pairs to train on".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    pairs.shuffle(&mut rng);
    let n_held = if pairs.len() >= 2 && cfg.heldout > 0.0 {
        ((pairs.len() as f64 * cfg.heldout).round() as usize).clamp(1, pairs.len() - 1)
    } else {
        0
    };
    let held = pairs.split_off(pairs.len() - n_held);
    let rm = RewardModel::from_base(base)?;
    let vars = rm.vars();
    let mut opt = AdamW::for_vars(&vars, AdamWConfig::default())?;
    let per_epoch = pairs.len().div_ceil(cfg.batch);
    let total = (per_epoch * cfg.epochs) as u64;
    let schedule = Schedule {
        peak: cfg.lr,
        warmup: (total / 10).min(50),
        total,
        min_ratio: 0.1,
    };
    let mut log = RewardLog {
        train_pairs: pairs.len(),
        heldout_pairs: held.len(),
        ..RewardLog::default()
    };
    let pad = tok.pad_id();
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    let mut step = 0u64;
    for _ in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(cfg.batch) {
            if stop() {
                return Err(MlError::Interrupted);
            }
            let batch: Vec<&Pair> = chunk.iter().map(|&i| &pairs[i]).collect();
            let (loss, acc) = bt_loss(&rm, &batch, pad)?;
            let lr = schedule.lr(step);
            let stats = step_vars_on_loss(&mut opt, &vars, &loss, lr, cfg.grad_clip)?;
            step += 1;
            log.steps.push((step, stats.loss, acc));
            progress(&TrainProgress {
                step,
                total,
                loss: stats.loss,
                tokens_per_sec: 0.0,
            });
        }
    }
    log.train_accuracy = accuracy(&rm, &pairs, pad)?;
    log.heldout_accuracy = if held.is_empty() {
        None
    } else {
        Some(accuracy(&rm, &held, pad)?)
    };
    Ok((rm, log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::{Activation, Gpt, GptConfig};

    #[test]
    fn save_load_round_trip_and_plain_model_is_rejected() {
        let tok = Tokenizer::train(&["Human: hi Assistant: hello there"], 300).unwrap();
        let cfg = GptConfig {
            vocab_size: tok.vocab_size(),
            layers: 1,
            width: 16,
            heads: 2,
            context: 32,
            mlp_ratio: 2,
            activation: Activation::Gelu,
        };
        let body = Gpt::init(&cfg, 3).unwrap();
        let rm = RewardModel::from_base(Box::new(body)).unwrap();
        rm.score
            .set(&Tensor::ones((1, 16), candle_core::DType::F32, rm.body.device()).unwrap())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        rm.save(dir.path(), &tok).unwrap();
        let (back, tok2) = RewardModel::load(dir.path()).unwrap();
        let pairs = vec![("hi".to_string(), "hello".to_string())];
        assert_eq!(
            rm.score(&tok, &pairs).unwrap(),
            back.score(&tok2, &pairs).unwrap()
        );
        let plain = tempfile::tempdir().unwrap();
        save_checkpoint(plain.path(), &rm.body, &tok).unwrap();
        let err = RewardModel::load(plain.path()).err().unwrap().to_string();
        assert!(err.contains("not a reward model"), "{err}");
    }
}

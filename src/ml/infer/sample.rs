//! Batched generation with a key/value cache: greedy or temperature + top-p with a seed,
//! stopping on end-of-turn. Prompts are left-padded; pad keys are masked out and positions
//! count from each row's first real token, so a row's output does not depend on its batch.

use candle_core::{Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ml::error::{MlError, Result};
use crate::ml::layers::MASKED;
use crate::ml::model::{CausalLm, KvCache};
use crate::ml::tokenizer::Tokenizer;

#[derive(Debug, Clone, PartialEq)]
pub struct SampleConfig {
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    /// Nucleus mass in (0, 1]; 1 = no truncation.
    pub top_p: f64,
    /// Row `i` draws from ChaCha stream `i` of this seed.
    pub seed: u64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            max_new_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// One generated continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Decoded response: the tokens before end-of-turn, one leading space removed.
    pub text: String,
    /// Generated ids, including the end-of-turn id if it was produced.
    pub ids: Vec<u32>,
    /// log p(id) under the model's untempered distribution, one per id in `ids`.
    pub logprobs: Vec<f32>,
    /// Whether generation ended on end-of-turn (not on the token or context limit).
    pub finished: bool,
}

/// Samples responses to user prompts (the tokenizer's chat format is applied here).
pub fn generate(
    model: &dyn CausalLm,
    tok: &Tokenizer,
    prompts: &[String],
    cfg: &SampleConfig,
) -> Result<Vec<Sample>> {
    let ids = prompts
        .iter()
        .map(|p| tok.encode_prompt(p))
        .collect::<Result<Vec<_>>>()?;
    let raw = generate_ids(model, &ids, tok.pad_id(), tok.stop_ids(), cfg)?;
    raw.into_iter()
        .map(|(ids, logprobs, finished)| {
            let body: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|i| !tok.stop_ids().contains(i))
                .collect();
            let text = tok.decode(&body)?;
            let text = text.strip_prefix(' ').unwrap_or(&text).to_string();
            Ok(Sample {
                text,
                ids,
                logprobs,
                finished,
            })
        })
        .collect()
}

/// Generated ids, their untempered log-probs, and whether end-of-turn was reached.
pub type RawSample = (Vec<u32>, Vec<f32>, bool);

/// Token-level generation from already encoded prompts: `(ids, logprobs, finished)` per row.
pub fn generate_ids(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    pad_id: u32,
    stop_ids: &[u32],
    cfg: &SampleConfig,
) -> Result<Vec<RawSample>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let valid = cfg.top_p > 0.0 && cfg.top_p <= 1.0 && cfg.temperature >= 0.0;
    if !valid {
        return Err(MlError::Config(format!(
            "top_p must be in (0, 1] and temperature >= 0 (got {}, {})",
            cfg.top_p, cfg.temperature
        )));
    }
    let context = model.dims().context;
    let b = prompts.len();
    let p = prompts.iter().map(|r| r.len()).max().unwrap_or(0);
    if p == 0 {
        return Err(MlError::Invalid(
            "cannot generate from an empty prompt".into(),
        ));
    }
    if p >= context {
        return Err(MlError::Invalid(format!(
            "prompt of {p} tokens leaves no room in the model's context of {context}"
        )));
    }
    let max_new = cfg.max_new_tokens.min(context - p);
    let dev = model.device().clone();
    // Left padding: row r starts at column pads[r].
    let pads: Vec<usize> = prompts.iter().map(|r| p - r.len()).collect();
    let mut ids = Vec::with_capacity(b * p);
    let mut pos = Vec::with_capacity(b * p);
    for (r, row) in prompts.iter().enumerate() {
        ids.extend(std::iter::repeat_n(pad_id, pads[r]));
        ids.extend_from_slice(row);
        pos.extend((0..p).map(|j| j.saturating_sub(pads[r]) as u32));
    }
    // Prefill mask [b, 1, p, p]: causal and no pad keys.
    let mut bias = vec![0f32; b * p * p];
    for r in 0..b {
        for i in 0..p {
            for j in 0..p {
                if j > i || j < pads[r] {
                    bias[(r * p + i) * p + j] = MASKED;
                }
            }
        }
    }
    let mut cache = KvCache::new(model.dims().layers);
    let ids_t = Tensor::from_vec(ids, (b, p), &dev)?;
    let pos_t = Tensor::from_vec(pos, b * p, &dev)?;
    let bias_t = Tensor::from_vec(bias, (b, 1, p, p), &dev)?;
    let mut last = model.forward_cached_last(&ids_t, &pos_t, &bias_t, &mut cache)?;

    let mut rngs: Vec<ChaCha8Rng> = (0..b)
        .map(|r| {
            let mut g = ChaCha8Rng::seed_from_u64(cfg.seed);
            g.set_stream(r as u64);
            g
        })
        .collect();
    let mut out: Vec<RawSample> = vec![(Vec::new(), Vec::new(), false); b];
    for step in 0..max_new {
        let lsm = candle_nn::ops::log_softmax(&last, D::Minus1)?;
        let rows_lp: Vec<Vec<f32>> = lsm.to_vec2()?;
        let mut next = Vec::with_capacity(b);
        for (r, lp) in rows_lp.iter().enumerate() {
            if out[r].2 {
                next.push(pad_id);
                continue;
            }
            let id = pick(lp, cfg, &mut rngs[r]);
            out[r].0.push(id);
            out[r].1.push(lp[id as usize]);
            if stop_ids.contains(&id) {
                out[r].2 = true;
            }
            next.push(id);
        }
        if out.iter().all(|o| o.2) || step + 1 == max_new {
            break;
        }
        let k = p + step + 1;
        let pos: Vec<u32> = (0..b).map(|r| (p + step - pads[r]) as u32).collect();
        let mut bias = vec![0f32; b * k];
        for r in 0..b {
            for j in 0..pads[r] {
                bias[r * k + j] = MASKED;
            }
        }
        let ids_t = Tensor::from_vec(next, (b, 1), &dev)?;
        let pos_t = Tensor::from_vec(pos, b, &dev)?;
        let bias_t = Tensor::from_vec(bias, (b, 1, 1, k), &dev)?;
        let logits = model.forward_cached(&ids_t, &pos_t, &bias_t, &mut cache)?;
        last = logits.squeeze(1)?;
    }
    Ok(out)
}

/// Greedy (argmax, lowest id on ties) or tempered nucleus sampling from log-probs.
fn pick(lp: &[f32], cfg: &SampleConfig, rng: &mut ChaCha8Rng) -> u32 {
    let argmax = || {
        let mut best = 0;
        for (i, &v) in lp.iter().enumerate() {
            if v > lp[best] {
                best = i;
            }
        }
        best as u32
    };
    if cfg.temperature <= 0.0 {
        return argmax();
    }
    let t = cfg.temperature;
    let max = lp.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(usize, f64)> = lp
        .iter()
        .enumerate()
        .map(|(i, &v)| (i, ((v as f64 - max) / t).exp()))
        .collect();
    let z: f64 = probs.iter().map(|x| x.1).sum();
    // Stable order: probability descending, id ascending.
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    for (_, q) in &probs {
        mass += q / z;
        kept += 1;
        if mass >= cfg.top_p {
            break;
        }
    }
    let probs = &probs[..kept];
    let total: f64 = probs.iter().map(|x| x.1).sum();
    let mut u = rng.random::<f64>() * total;
    for &(i, q) in probs {
        if u < q {
            return i as u32;
        }
        u -= q;
    }
    probs.last().map(|x| x.0 as u32).unwrap_or_else(argmax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_is_greedy_at_zero_and_respects_top_p() {
        let lp: Vec<f32> = [0.6f32, 0.3, 0.1].iter().map(|p| p.ln()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let greedy = SampleConfig::default();
        assert_eq!(pick(&lp, &greedy, &mut rng), 0);
        let nucleus = SampleConfig {
            temperature: 1.0,
            top_p: 0.5,
            ..SampleConfig::default()
        };
        for _ in 0..50 {
            assert_eq!(pick(&lp, &nucleus, &mut rng), 0);
        }
        let full = SampleConfig {
            temperature: 1.0,
            ..SampleConfig::default()
        };
        let draws: Vec<u32> = (0..300).map(|_| pick(&lp, &full, &mut rng)).collect();
        assert!(draws.contains(&2) && draws.contains(&1));
    }
}

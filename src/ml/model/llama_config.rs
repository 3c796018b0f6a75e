//! The configuration of a Llama-family model (Llama, SmolLM2, Qwen2, Mistral without a
//! sliding window), read from and written back to Hugging Face's `config.json`.
//!
//! Only the fields that change the math are modelled; every other key of the original file
//! is kept verbatim and written back, so a round trip through [`LlamaConfig::to_hf_json`]
//! still loads in `transformers` with the same architecture and `model_type`. Anything we
//! would compute differently from `transformers` (another activation, a sliding window
//! shorter than the context, YaRN or dynamic RoPE scaling) is refused with an error naming
//! the architecture and the reason, never silently approximated.
//!
//! Defaults follow `transformers`' config classes: `num_key_value_heads` = heads,
//! `head_dim` = hidden / heads, `rope_theta` = 10000, `tie_word_embeddings` = false,
//! `rms_norm_eps` = 1e-6, `attention_bias`/`mlp_bias` = false (Llama); Qwen2's q/k/v
//! projections always carry a bias and its output projection never does.

use serde_json::{json, Map, Value};

use crate::ml::error::{MlError, Result};

/// Which `transformers` class the config describes; fixes the attention-bias layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlamaArch {
    /// `LlamaForCausalLM` (also SmolLM2, TinyLlama, Llama 2/3).
    Llama,
    /// `Qwen2ForCausalLM`: bias on q/k/v, none on the output projection.
    Qwen2,
    /// `MistralForCausalLM` without an effective sliding window: Llama's math, no biases.
    Mistral,
}

impl LlamaArch {
    /// The `architectures[0]` string.
    pub fn hf_class(self) -> &'static str {
        match self {
            LlamaArch::Llama => "LlamaForCausalLM",
            LlamaArch::Qwen2 => "Qwen2ForCausalLM",
            LlamaArch::Mistral => "MistralForCausalLM",
        }
    }

    /// The `model_type` string.
    pub fn model_type(self) -> &'static str {
        match self {
            LlamaArch::Llama => "llama",
            LlamaArch::Qwen2 => "qwen2",
            LlamaArch::Mistral => "mistral",
        }
    }
}

/// RoPE frequency scaling (`rope_scaling` / `rope_parameters` in `config.json`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE: inv_freq = 1 / theta^(2i/d).
    Default,
    /// `"linear"`: every inverse frequency divided by `factor`.
    Linear { factor: f64 },
    /// `"llama3"`: low frequencies divided by `factor`, high ones kept, a smooth blend in
    /// between (transformers' `_compute_llama3_parameters`).
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// Everything about a Llama-family model that changes its outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub arch: LlamaArch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub tie_word_embeddings: bool,
    /// Bias on the q/k/v projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub o_bias: bool,
    /// Bias on gate/up/down.
    pub mlp_bias: bool,
    /// The context: the longest sequence the model accepts.
    pub max_position_embeddings: usize,
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids (`eos_token_id` may be one id or a list).
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// The original `config.json` object, written back with the modelled keys replaced.
    pub extra: Map<String, Value>,
}

fn cfg_err(arch: &str, msg: impl std::fmt::Display) -> MlError {
    MlError::Config(format!("{arch}: {msg}"))
}

/// A non-negative integer field, `None` when absent or null.
fn opt_usize(v: &Value, key: &str, arch: &str) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                cfg_err(
                    arch,
                    format!("`{key}` must be a non-negative integer, got {x}"),
                )
            }),
    }
}

/// A positive integer field that must be present.
fn req_pos(v: &Value, key: &str, arch: &str) -> Result<usize> {
    match opt_usize(v, key, arch)? {
        Some(0) => Err(cfg_err(arch, format!("`{key}` must be positive, got 0"))),
        Some(n) => Ok(n),
        None => Err(cfg_err(arch, format!("`{key}` is missing"))),
    }
}

fn opt_f64(v: &Value, key: &str, arch: &str) -> Result<Option<f64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| cfg_err(arch, format!("`{key}` must be a number, got {x}"))),
    }
}

fn opt_bool(v: &Value, key: &str, arch: &str) -> Result<Option<bool>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_bool()
            .map(Some)
            .ok_or_else(|| cfg_err(arch, format!("`{key}` must be true or false, got {x}"))),
    }
}

fn opt_u32(v: &Value, key: &str, arch: &str) -> Result<Option<u32>> {
    match opt_usize(v, key, arch)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| cfg_err(arch, format!("`{key}` {n} does not fit a token id"))),
    }
}

/// `eos_token_id`: one id, a list of ids, or absent.
fn eos_ids(v: &Value, arch: &str) -> Result<Vec<u32>> {
    let one = |x: &Value| -> Result<u32> {
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| cfg_err(arch, format!("`eos_token_id` entry {x} is not a token id")))
    };
    match v.get("eos_token_id") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(xs)) => xs.iter().map(one).collect(),
        Some(x) => Ok(vec![one(x)?]),
    }
}

fn positive_finite(x: f64, key: &str, arch: &str) -> Result<f64> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(cfg_err(
            arch,
            format!("`{key}` must be a positive number, got {x}"),
        ))
    }
}

/// The RoPE scaling object: `rope_scaling` if set, else transformers v5's
/// `rope_parameters` (which also carries `rope_theta`).
fn parse_rope_scaling(v: &Value, arch: &str) -> Result<RopeScaling> {
    let obj = match v.get("rope_scaling") {
        Some(Value::Null) | None => match v.get("rope_parameters") {
            Some(Value::Null) | None => return Ok(RopeScaling::Default),
            Some(o) => o,
        },
        Some(o) => o,
    };
    if !obj.is_object() {
        return Err(cfg_err(
            arch,
            format!("`rope_scaling` must be an object, got {obj}"),
        ));
    }
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let factor = || -> Result<f64> {
        let f = opt_f64(obj, "factor", arch)?.ok_or_else(|| {
            cfg_err(
                arch,
                format!("`rope_scaling` of type {kind} lacks `factor`"),
            )
        })?;
        positive_finite(f, "rope_scaling.factor", arch)
    };
    match kind {
        "default" => Ok(RopeScaling::Default),
        "linear" => Ok(RopeScaling::Linear { factor: factor()? }),
        "llama3" => {
            let need = |k: &str| -> Result<f64> {
                let x = opt_f64(obj, k, arch)?
                    .ok_or_else(|| cfg_err(arch, format!("llama3 `rope_scaling` lacks `{k}`")))?;
                positive_finite(x, &format!("rope_scaling.{k}"), arch)
            };
            let low = need("low_freq_factor")?;
            let high = need("high_freq_factor")?;
            if high <= low {
                return Err(cfg_err(
                    arch,
                    format!("llama3 `rope_scaling` needs high_freq_factor ({high}) > low_freq_factor ({low})"),
                ));
            }
            let orig = opt_usize(obj, "original_max_position_embeddings", arch)?
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    cfg_err(
                        arch,
                        "llama3 `rope_scaling` lacks a positive `original_max_position_embeddings`",
                    )
                })?;
            Ok(RopeScaling::Llama3 {
                factor: factor()?,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: orig,
            })
        }
        other => Err(cfg_err(
            arch,
            format!(
                "rope_scaling type `{other}` is not supported (supported: default, linear, llama3)"
            ),
        )),
    }
}

/// Keys this module writes; everything else in `extra` passes through unchanged.
const MODELLED: &[&str] = &[
    "architectures",
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "tie_word_embeddings",
    "attention_bias",
    "mlp_bias",
    "hidden_act",
    "max_position_embeddings",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "torch_dtype",
    "dtype",
];

impl LlamaConfig {
    /// Parses a Hugging Face `config.json` value; refuses architectures and features whose
    /// math differs from this implementation, and validates every size.
    pub fn from_hf_json(v: &Value) -> Result<LlamaConfig> {
        let obj = v
            .as_object()
            .ok_or_else(|| MlError::Config("config.json must be a JSON object".into()))?;
        let class = match v.get("architectures") {
            Some(Value::Array(a)) => a.first().and_then(Value::as_str),
            _ => None,
        };
        let (arch, name) = match class {
            Some("LlamaForCausalLM") => (LlamaArch::Llama, "LlamaForCausalLM"),
            Some("Qwen2ForCausalLM") => (LlamaArch::Qwen2, "Qwen2ForCausalLM"),
            Some("MistralForCausalLM") => (LlamaArch::Mistral, "MistralForCausalLM"),
            Some(other) => {
                return Err(MlError::Config(format!(
                    "architecture `{other}` is not supported (supported: LlamaForCausalLM, \
                     Qwen2ForCausalLM, MistralForCausalLM)"
                )))
            }
            None => {
                return Err(MlError::Config(
                    "config.json names no architecture (`architectures[0]`)".into(),
                ))
            }
        };
        let act = v
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("silu");
        if act != "silu" {
            return Err(cfg_err(
                name,
                format!("hidden_act `{act}` is not supported (only silu)"),
            ));
        }
        let hidden_size = req_pos(v, "hidden_size", name)?;
        let heads = req_pos(v, "num_attention_heads", name)?;
        let max_pos = req_pos(v, "max_position_embeddings", name)?;
        // Mistral's sliding window (and Qwen2's, when switched on) changes the attention
        // mask once a sequence is longer than the window; identical math otherwise.
        let window = opt_usize(v, "sliding_window", name)?;
        let windowed = match arch {
            LlamaArch::Mistral => match v.get("sliding_window") {
                // MistralConfig's default window is 4096.
                None => Some(4096),
                Some(_) => window,
            },
            LlamaArch::Qwen2 => {
                if opt_bool(v, "use_sliding_window", name)?.unwrap_or(false) {
                    window.or(Some(4096))
                } else {
                    None
                }
            }
            LlamaArch::Llama => None,
        };
        if let Some(w) = windowed {
            if w < max_pos {
                return Err(cfg_err(
                    name,
                    format!(
                        "sliding-window attention (window {w} < max_position_embeddings \
                         {max_pos}) is not supported"
                    ),
                ));
            }
        }
        let (qkv_bias, o_bias, mlp_bias) = match arch {
            LlamaArch::Llama => {
                let ab = opt_bool(v, "attention_bias", name)?.unwrap_or(false);
                (ab, ab, opt_bool(v, "mlp_bias", name)?.unwrap_or(false))
            }
            LlamaArch::Qwen2 => (true, false, false),
            LlamaArch::Mistral => (false, false, false),
        };
        let head_dim = match opt_usize(v, "head_dim", name)? {
            Some(0) => return Err(cfg_err(name, "`head_dim` must be positive, got 0")),
            Some(d) => d,
            None => {
                if !hidden_size.is_multiple_of(heads) {
                    return Err(cfg_err(
                        name,
                        format!(
                            "hidden_size {hidden_size} is not a multiple of \
                             num_attention_heads {heads} (and no head_dim is given)"
                        ),
                    ));
                }
                hidden_size / heads
            }
        };
        let rope_params = v.get("rope_parameters");
        let rope_theta = match opt_f64(v, "rope_theta", name)? {
            Some(t) => t,
            None => match rope_params {
                Some(p) if p.is_object() => opt_f64(p, "rope_theta", name)?.unwrap_or(10000.0),
                _ => 10000.0,
            },
        };
        let default_eps = 1e-6;
        let cfg = LlamaConfig {
            arch,
            vocab_size: req_pos(v, "vocab_size", name)?,
            hidden_size,
            intermediate_size: req_pos(v, "intermediate_size", name)?,
            num_hidden_layers: req_pos(v, "num_hidden_layers", name)?,
            num_attention_heads: heads,
            num_key_value_heads: opt_usize(v, "num_key_value_heads", name)?.unwrap_or(heads),
            head_dim,
            rms_norm_eps: opt_f64(v, "rms_norm_eps", name)?.unwrap_or(default_eps),
            rope_theta: positive_finite(rope_theta, "rope_theta", name)?,
            rope_scaling: parse_rope_scaling(v, name)?,
            tie_word_embeddings: opt_bool(v, "tie_word_embeddings", name)?.unwrap_or(false),
            qkv_bias,
            o_bias,
            mlp_bias,
            max_position_embeddings: max_pos,
            bos_token_id: opt_u32(v, "bos_token_id", name)?,
            eos_token_ids: eos_ids(v, name)?,
            pad_token_id: opt_u32(v, "pad_token_id", name)?,
            extra: obj.clone(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// A config built in code (no original file): Llama layout, no biases.
    #[allow(clippy::too_many_arguments)]
    pub fn new_llama(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        num_key_value_heads: usize,
        max_position_embeddings: usize,
        tie_word_embeddings: bool,
    ) -> Result<LlamaConfig> {
        if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
            return Err(MlError::Config(format!(
                "hidden_size {hidden_size} is not a positive multiple of {num_attention_heads} heads"
            )));
        }
        let cfg = LlamaConfig {
            arch: LlamaArch::Llama,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim: hidden_size / num_attention_heads,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            rope_scaling: RopeScaling::Default,
            tie_word_embeddings,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            max_position_embeddings,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            pad_token_id: None,
            extra: Map::new(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every size is positive and consistent, and that the parameter count is
    /// computable without overflow.
    pub fn validate(&self) -> Result<()> {
        let name = self.arch.hf_class();
        for (key, n) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if n == 0 {
                return Err(cfg_err(name, format!("`{key}` must be positive, got 0")));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(cfg_err(
                name,
                format!(
                    "num_key_value_heads {} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(cfg_err(
                name,
                format!(
                    "head_dim {} must be even for rotary embeddings",
                    self.head_dim
                ),
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return Err(cfg_err(
                name,
                format!(
                    "rms_norm_eps must be a non-negative number, got {}",
                    self.rms_norm_eps
                ),
            ));
        }
        positive_finite(self.rope_theta, "rope_theta", name)?;
        let vocab = u32::try_from(self.vocab_size)
            .map_err(|_| cfg_err(name, format!("vocab_size {} is too large", self.vocab_size)))?;
        for id in self
            .bos_token_id
            .iter()
            .chain(&self.eos_token_ids)
            .chain(&self.pad_token_id)
        {
            if *id >= vocab {
                return Err(cfg_err(
                    name,
                    format!("special token id {id} is outside the vocabulary of {vocab}"),
                ));
            }
        }
        self.q_width()?;
        self.kv_width()?;
        self.param_count()?;
        Ok(())
    }

    fn overflow(&self) -> MlError {
        cfg_err(
            self.arch.hf_class(),
            "the model's sizes overflow the address space",
        )
    }

    /// Query projection width: heads × head_dim.
    pub fn q_width(&self) -> Result<usize> {
        self.num_attention_heads
            .checked_mul(self.head_dim)
            .ok_or_else(|| self.overflow())
    }

    /// Key/value projection width: kv_heads × head_dim.
    pub fn kv_width(&self) -> Result<usize> {
        self.num_key_value_heads
            .checked_mul(self.head_dim)
            .ok_or_else(|| self.overflow())
    }

    /// Names and shapes of every parameter in canonical order, with Hugging Face names.
    pub fn param_specs(&self) -> Result<Vec<(String, Vec<usize>)>> {
        let (c, m, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let (qw, kw) = (self.q_width()?, self.kv_width()?);
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, c])];
        for i in 0..self.num_hidden_layers {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), vec![c]));
            for (proj, rows) in [("q_proj", qw), ("k_proj", kw), ("v_proj", kw)] {
                out.push((format!("{p}.self_attn.{proj}.weight"), vec![rows, c]));
                if self.qkv_bias {
                    out.push((format!("{p}.self_attn.{proj}.bias"), vec![rows]));
                }
            }
            out.push((format!("{p}.self_attn.o_proj.weight"), vec![c, qw]));
            if self.o_bias {
                out.push((format!("{p}.self_attn.o_proj.bias"), vec![c]));
            }
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![c]));
            for (proj, shape) in [
                ("gate_proj", vec![m, c]),
                ("up_proj", vec![m, c]),
                ("down_proj", vec![c, m]),
            ] {
                let rows = shape[0];
                out.push((format!("{p}.mlp.{proj}.weight"), shape));
                if self.mlp_bias {
                    out.push((format!("{p}.mlp.{proj}.bias"), vec![rows]));
                }
            }
        }
        out.push(("model.norm.weight".to_string(), vec![c]));
        if !self.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![v, c]));
        }
        Ok(out)
    }

    /// Number of scalar parameters, with checked arithmetic.
    pub fn param_count(&self) -> Result<usize> {
        let (c, m, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let (qw, kw) = (self.q_width()?, self.kv_width()?);
        let mul = |a: usize, b: usize| a.checked_mul(b).ok_or_else(|| self.overflow());
        let add = |a: usize, b: usize| a.checked_add(b).ok_or_else(|| self.overflow());
        let mut layer = mul(c, 2)?; // two norms
        layer = add(layer, mul(add(qw, mul(kw, 2)?)?, c)?)?; // q, k, v
        layer = add(layer, mul(c, qw)?)?; // o
        layer = add(layer, mul(mul(m, c)?, 3)?)?; // gate, up, down
        if self.qkv_bias {
            layer = add(layer, add(qw, mul(kw, 2)?)?)?;
        }
        if self.o_bias {
            layer = add(layer, c)?;
        }
        if self.mlp_bias {
            layer = add(layer, add(mul(m, 2)?, c)?)?;
        }
        let embed = mul(v, c)?;
        let mut total = add(mul(layer, self.num_hidden_layers)?, add(embed, c)?)?;
        if !self.tie_word_embeddings {
            total = add(total, embed)?;
        }
        Ok(total)
    }

    /// Refuses a model whose f32 parameters (`copies` times: weights, gradients, optimizer
    /// moments...) would not fit the memory this machine reports as available.
    pub fn check_memory(&self, copies: usize) -> Result<()> {
        let bytes = self
            .param_count()?
            .checked_mul(4)
            .and_then(|b| b.checked_mul(copies.max(1)))
            .ok_or_else(|| self.overflow())?;
        if let Some(avail) = available_memory() {
            if bytes as u128 > avail as u128 {
                return Err(cfg_err(
                    self.arch.hf_class(),
                    format!(
                        "{} parameters need about {:.2} GiB as f32, more than the {:.2} GiB \
                         of memory available",
                        self.param_count()?,
                        bytes as f64 / (1u64 << 30) as f64,
                        avail as f64 / (1u64 << 30) as f64
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `config.json` value `transformers` reads: the original file's keys, with every
    /// modelled field written from this config (weights are f32: `torch_dtype` says so).
    pub fn to_hf_json(&self) -> Value {
        let mut out = self.extra.clone();
        for k in MODELLED {
            out.remove(*k);
        }
        // transformers v5 writes `rope_parameters` (theta and scaling in one object) and
        // `dtype`; v4 writes `rope_theta`, `rope_scaling` and `torch_dtype`. Keep the layout
        // the original file used (v4 for a config built in code).
        let v5 = out.remove("rope_parameters").is_some();
        let dtype_key =
            if self.extra.contains_key("dtype") && !self.extra.contains_key("torch_dtype") {
                "dtype"
            } else {
                "torch_dtype"
            };
        let arch = self.arch;
        let scaling = match &self.rope_scaling {
            RopeScaling::Default => Value::Null,
            RopeScaling::Linear { factor } => json!({"rope_type": "linear", "factor": factor}),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            }),
        };
        let eos = match self.eos_token_ids.as_slice() {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        let fields = [
            ("architectures", json!([arch.hf_class()])),
            ("model_type", json!(arch.model_type())),
            ("vocab_size", json!(self.vocab_size)),
            ("hidden_size", json!(self.hidden_size)),
            ("intermediate_size", json!(self.intermediate_size)),
            ("num_hidden_layers", json!(self.num_hidden_layers)),
            ("num_attention_heads", json!(self.num_attention_heads)),
            ("num_key_value_heads", json!(self.num_key_value_heads)),
            ("head_dim", json!(self.head_dim)),
            ("rms_norm_eps", json!(self.rms_norm_eps)),
            ("tie_word_embeddings", json!(self.tie_word_embeddings)),
            ("hidden_act", json!("silu")),
            (
                "max_position_embeddings",
                json!(self.max_position_embeddings),
            ),
            ("bos_token_id", json!(self.bos_token_id)),
            ("eos_token_id", eos),
            ("pad_token_id", json!(self.pad_token_id)),
            (dtype_key, json!("float32")),
        ];
        for (k, val) in fields {
            out.insert(k.to_string(), val);
        }
        if v5 {
            let mut rp = match scaling {
                Value::Object(m) => m,
                _ => Map::from_iter([("rope_type".to_string(), json!("default"))]),
            };
            rp.remove("type");
            rp.insert("rope_theta".into(), json!(self.rope_theta));
            out.insert("rope_parameters".into(), Value::Object(rp));
        } else {
            out.insert("rope_theta".into(), json!(self.rope_theta));
            out.insert("rope_scaling".into(), scaling);
        }
        if arch == LlamaArch::Llama {
            out.insert("attention_bias".into(), json!(self.qkv_bias));
            out.insert("mlp_bias".into(), json!(self.mlp_bias));
        }
        Value::Object(out)
    }

    /// RoPE inverse frequencies `[head_dim / 2]`, as `transformers` computes them: the
    /// exponents and base power in f32 (`torch.arange(0, d, 2).float() / d`), then the
    /// scaling rule.
    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim;
        let base = self.rope_theta as f32;
        let plain = (0..d / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / d as f32));
        match &self.rope_scaling {
            RopeScaling::Default => plain.collect(),
            RopeScaling::Linear { factor } => plain.map(|f| f / *factor as f32).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old = *original_max_position_embeddings as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                plain
                    .map(|f| {
                        let f = f as f64;
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        let scaled = if wavelen > low_wavelen { f / factor } else { f };
                        // transformers: ~(wavelen < high) * ~(wavelen > low); wavelengths are finite.
                        let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                        let out = if medium {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * scaled / factor + smooth * scaled
                        } else {
                            scaled
                        };
                        out as f32
                    })
                    .collect()
            }
        }
    }
}

/// Bytes of memory the OS reports as available (`MemAvailable` on Linux), if known.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smol() -> Value {
        json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
            "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000,
            "tie_word_embeddings": true, "hidden_act": "silu", "bos_token_id": 0,
            "eos_token_id": 0, "initializer_range": 0.041666666666666664
        })
    }

    #[test]
    fn smollm2_config_round_trips() {
        let c = LlamaConfig::from_hf_json(&smol()).unwrap();
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.param_count().unwrap(), 134_515_008);
        let back = LlamaConfig::from_hf_json(&c.to_hf_json()).unwrap();
        assert_eq!(back.to_hf_json(), c.to_hf_json());
        assert_eq!(
            c.to_hf_json()["initializer_range"],
            json!(0.041666666666666664)
        );
    }

    #[test]
    fn refusals_name_the_reason() {
        let mut v = smol();
        v["num_key_value_heads"] = json!(4);
        let e = LlamaConfig::from_hf_json(&v).unwrap_err().to_string();
        assert!(e.contains("does not divide"), "{e}");
        let mut v = smol();
        v["hidden_act"] = json!("gelu");
        assert!(LlamaConfig::from_hf_json(&v)
            .unwrap_err()
            .to_string()
            .contains("gelu"));
        let mut v = smol();
        v["hidden_size"] = json!(0);
        assert!(LlamaConfig::from_hf_json(&v).is_err());
        let mut v = smol();
        v["vocab_size"] = json!(u64::MAX);
        assert!(LlamaConfig::from_hf_json(&v).is_err());
    }
}

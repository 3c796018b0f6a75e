//! Model hyper-parameters and their GPT-2 `config.json` form (HuggingFace format), so a
//! checkpoint loads with `transformers.GPT2LMHeadModel.from_pretrained`.

use serde::{Deserialize, Serialize};

use crate::ml::error::{MlError, Result};

/// The MLP non-linearity. `Gelu` is GPT-2's tanh approximation (`gelu_new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Gelu,
    Relu,
}

impl Activation {
    pub fn parse(s: &str) -> Result<Activation> {
        match s {
            "gelu" | "gelu_new" => Ok(Activation::Gelu),
            "relu" => Ok(Activation::Relu),
            other => Err(MlError::Config(format!(
                "unknown activation `{other}` (expected gelu or relu)"
            ))),
        }
    }

    /// The name GPT-2's HF config uses.
    pub fn hf_name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu_new",
            Activation::Relu => "relu",
        }
    }
}

/// A decoder-only transformer in GPT-2 layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    pub vocab_size: usize,
    pub layers: usize,
    pub width: usize,
    pub heads: usize,
    /// Maximum sequence length (number of learned positions).
    pub context: usize,
    /// MLP hidden width = `mlp_ratio * width`.
    pub mlp_ratio: usize,
    pub activation: Activation,
}

pub const LAYER_NORM_EPS: f64 = 1e-5;

impl GptConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(MlError::Config(m));
        if self.vocab_size == 0 || self.layers == 0 || self.width == 0 || self.context == 0 {
            return bad(format!(
                "vocab_size, layers, width and context must be positive (got {}, {}, {}, {})",
                self.vocab_size, self.layers, self.width, self.context
            ));
        }
        if self.heads == 0 || !self.width.is_multiple_of(self.heads) {
            return bad(format!(
                "width {} must be a multiple of heads {}",
                self.width, self.heads
            ));
        }
        if self.mlp_ratio == 0 {
            return bad("mlp_ratio must be positive".into());
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    pub fn mlp_width(&self) -> usize {
        self.width * self.mlp_ratio
    }

    /// Number of trainable scalars (tied embeddings counted once).
    pub fn num_params(&self) -> usize {
        let c = self.width;
        let m = self.mlp_width();
        let block = 4 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * m + m) + (m * c + c);
        self.vocab_size * c + self.context * c + self.layers * block + 2 * c
    }

    /// `config.json` in GPT-2 HF format. `eot_id`/`pad_id` become bos/eos/pad ids.
    pub fn to_hf_json(&self, eot_id: u32, pad_id: u32) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_positions": self.context,
            "n_ctx": self.context,
            "n_embd": self.width,
            "n_layer": self.layers,
            "n_head": self.heads,
            "n_inner": self.mlp_width(),
            "activation_function": self.activation.hf_name(),
            "layer_norm_epsilon": LAYER_NORM_EPS,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "initializer_range": 0.02,
            "scale_attn_weights": true,
            "tie_word_embeddings": true,
            "bos_token_id": eot_id,
            "eos_token_id": eot_id,
            "pad_token_id": pad_id,
            "torch_dtype": "float32",
        })
    }

    /// Reads a GPT-2 HF `config.json` (ours, or any GPT-2 one without dropout at inference).
    pub fn from_hf_json(v: &serde_json::Value) -> Result<GptConfig> {
        let get = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| MlError::Config(format!("config.json: missing integer `{k}`")))
        };
        let width = get("n_embd")?;
        let mlp_width = match v.get("n_inner") {
            None | Some(serde_json::Value::Null) => 4 * width,
            Some(_) => get("n_inner")?,
        };
        if width == 0 || mlp_width % width != 0 {
            return Err(MlError::Config(format!(
                "config.json: n_inner {mlp_width} is not a multiple of n_embd {width}"
            )));
        }
        let activation = match v.get("activation_function").and_then(|x| x.as_str()) {
            None => Activation::Gelu,
            Some(s) => Activation::parse(s)?,
        };
        let cfg = GptConfig {
            vocab_size: get("vocab_size")?,
            layers: get("n_layer")?,
            width,
            heads: get("n_head")?,
            context: get("n_positions")?,
            mlp_ratio: mlp_width / width,
            activation,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_round_trip_and_validation() {
        let c = GptConfig {
            vocab_size: 300,
            layers: 2,
            width: 32,
            heads: 4,
            context: 16,
            mlp_ratio: 4,
            activation: Activation::Relu,
        };
        assert_eq!(GptConfig::from_hf_json(&c.to_hf_json(1, 0)).unwrap(), c);
        let mut bad = c.clone();
        bad.heads = 5;
        assert!(bad.validate().is_err());
        assert!(Activation::parse("swish").is_err());
    }
}

//! The one place a model is built from a Hugging Face config and named tensors: every
//! loader (checkpoint directories, pretrained directories, GGUF files, resumed state)
//! ends here, chosen by `architectures[0]`.

use candle_core::{Device, Tensor};

use super::Model;
use crate::ml::config::GptConfig;
use crate::ml::error::{MlError, Result};
use crate::ml::gpt::Gpt;
use crate::ml::model::llama::Llama;
use crate::ml::model::llama_config::LlamaConfig;

/// Language-model architectures this build runs.
pub const SUPPORTED: &[&str] = &[
    "GPT2LMHeadModel",
    "LlamaForCausalLM",
    "Qwen2ForCausalLM",
    "MistralForCausalLM",
];

/// `architectures[0]` of a config, with a reward model's `*ForSequenceClassification`
/// mapped to its language model.
pub fn lm_arch(config: &serde_json::Value) -> Result<String> {
    let arch = config["architectures"][0]
        .as_str()
        .ok_or_else(|| MlError::Config("config.json names no `architectures`".into()))?;
    Ok(match arch {
        "GPT2ForSequenceClassification" => "GPT2LMHeadModel".to_string(),
        a => match a.strip_suffix("ForSequenceClassification") {
            Some(stem) => format!("{stem}ForCausalLM"),
            None => a.to_string(),
        },
    })
}

/// The `*ForSequenceClassification` architecture of a language model's config: what a
/// reward model (the body plus `score.weight`) is saved as.
pub fn sequence_classification_arch(config: &serde_json::Value) -> String {
    let arch = config["architectures"][0]
        .as_str()
        .unwrap_or("GPT2LMHeadModel");
    match arch {
        "GPT2LMHeadModel" => "GPT2ForSequenceClassification".to_string(),
        a => match a.strip_suffix("ForCausalLM") {
            Some(stem) => format!("{stem}ForSequenceClassification"),
            None => a.to_string(),
        },
    }
}

/// Builds the model `config` describes from tensors named as `transformers` names them.
pub fn model_from_hf(
    config: &serde_json::Value,
    get: &mut dyn FnMut(&str) -> Option<Tensor>,
) -> Result<Model> {
    let arch = lm_arch(config)?;
    match arch.as_str() {
        "GPT2LMHeadModel" => {
            let cfg = GptConfig::from_hf_json(config)?;
            Ok(Box::new(Gpt::from_tensors(&cfg, get)?))
        }
        "LlamaForCausalLM" | "Qwen2ForCausalLM" | "MistralForCausalLM" => {
            // A reward model's body reads as its language model.
            let mut lm = config.clone();
            lm["architectures"] = serde_json::json!([arch]);
            llama(&lm, get)
        }
        other => Err(MlError::Config(format!(
            "architecture `{other}` is not supported (supported: {})",
            SUPPORTED.join(", ")
        ))),
    }
}

fn llama(config: &serde_json::Value, get: &mut dyn FnMut(&str) -> Option<Tensor>) -> Result<Model> {
    let cfg = LlamaConfig::from_hf_json(config)?;
    Ok(Box::new(Llama::from_tensors(&cfg, get, &Device::Cpu)?))
}

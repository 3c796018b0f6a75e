//! Checkpoint directories: `model.safetensors` (GPT-2 names, f32, `format: pt` metadata so
//! `transformers` accepts it), `config.json` (GPT-2 HF config) and `tokenizer.json`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors, View};

use super::config::GptConfig;
use super::error::{MlError, Result};
use super::gpt::Gpt;
use super::tokenizer::Tokenizer;

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// An f32 tensor's bytes in the form the `safetensors` crate writes.
struct F32View {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes named f32 tensors to a safetensors file (byte-stable for the same values).
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        views.push((
            name.clone(),
            F32View {
                shape: t.dims().to_vec(),
                bytes,
            },
        ));
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| MlError::bad_file(path, e))
}

/// Reads every f32 tensor of a safetensors file.
pub fn load_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| MlError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| MlError::bad_file(path, e))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(MlError::bad_file(
                path,
                format!(
                    "tensor `{name}` is {:?}, only f32 is supported",
                    view.dtype()
                ),
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let t = Tensor::from_vec(values, view.shape(), &Device::Cpu)?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Writes a checkpoint directory (created if missing).
pub fn save_checkpoint(dir: &Path, model: &Gpt, tok: &Tokenizer) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| MlError::io(dir, e))?;
    save_tensors(&dir.join(WEIGHTS_FILE), &model.named_tensors())?;
    let cfg = model.config().to_hf_json(tok.eot_id(), tok.pad_id());
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| MlError::Invalid(e.to_string()))?;
    let p = dir.join(CONFIG_FILE);
    std::fs::write(&p, text).map_err(|e| MlError::io(&p, e))?;
    tok.save(&dir.join(TOKENIZER_FILE))
}

/// Reads the `config.json` of a checkpoint directory.
pub fn load_config(dir: &Path) -> Result<GptConfig> {
    let p = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| MlError::io(&p, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| MlError::bad_file(&p, e))?;
    GptConfig::from_hf_json(&v).map_err(|e| MlError::bad_file(&p, e))
}

/// Loads a checkpoint directory written by [`save_checkpoint`] (or by HF `save_pretrained`
/// for a GPT-2 without untied head).
pub fn load_checkpoint(dir: &Path) -> Result<(Gpt, Tokenizer)> {
    let cfg = load_config(dir)?;
    let tok = Tokenizer::load(&dir.join(TOKENIZER_FILE))?;
    if tok.vocab_size() > cfg.vocab_size {
        return Err(MlError::bad_file(
            dir,
            format!(
                "tokenizer has {} tokens but the model only {}",
                tok.vocab_size(),
                cfg.vocab_size
            ),
        ));
    }
    let mut tensors = load_tensors(&dir.join(WEIGHTS_FILE))?;
    let model = Gpt::from_tensors(&cfg, |n| tensors.remove(n))
        .map_err(|e| MlError::bad_file(dir.join(WEIGHTS_FILE), e))?;
    Ok((model, tok))
}

//! Checkpoint directories: `model.safetensors` (Hugging Face names, f32, `format: pt`
//! metadata so `transformers` accepts it), `config.json` (the architecture's HF config) and
//! the tokenizer's files.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors, View};

use crate::ml::error::{MlError, Result};
use crate::ml::model::adapter::{
    is_adapter_dir, load_peft_adapter, merge_adapter, save_peft_adapter, BaseRef,
};
use crate::ml::model::weights::{read_config_json, HfWeights};
use crate::ml::model::{model_from_hf, save_weights, CausalLm, Model};
use crate::ml::tokenizer::Tokenizer;

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

/// Writes a checkpoint directory (created if missing): the model's `model.safetensors`
/// and `config.json`, and the tokenizer's files. A model carrying an adapter is written
/// with the adapter merged into full weights.
pub fn save_checkpoint(dir: &Path, model: &dyn CausalLm, tok: &Tokenizer) -> Result<()> {
    if model.adapter().is_some() {
        let mut merged = model.deep_clone()?;
        merge_adapter(merged.as_mut())?;
        save_weights(dir, merged.as_ref(), tok.eot_id(), tok.pad_id())?;
    } else {
        save_weights(dir, model, tok.eot_id(), tok.pad_id())?;
    }
    tok.save_dir(dir)
}

/// Writes what a training stage publishes: the adapter alone, in PEFT's layout and naming
/// `base`, when the model carries one and `base` is known; full weights otherwise.
pub fn save_model(
    dir: &Path,
    model: &dyn CausalLm,
    tok: &Tokenizer,
    base: Option<&BaseRef>,
) -> Result<()> {
    match (model.adapter(), base) {
        (Some(_), Some(base)) => {
            save_peft_adapter(dir, model, base)?;
            tok.save_dir(dir)
        }
        _ => save_checkpoint(dir, model, tok),
    }
}

/// How many adapters deep a chain of adapter artifacts may go before loading gives up (a
/// guard against a reference cycle in a hand-edited cache).
const MAX_ADAPTER_CHAIN: usize = 256;

/// Loads a model directory: one written by [`save_checkpoint`], a Hugging Face one
/// (`save_pretrained` of a supported architecture), or an adapter artifact written by
/// [`save_model`] (its base resolved and verified, the adapter merged in).
pub fn load_checkpoint(dir: &Path) -> Result<(Model, Tokenizer)> {
    load_at_depth(dir, 0)
}

fn load_at_depth(dir: &Path, depth: usize) -> Result<(Model, Tokenizer)> {
    if is_adapter_dir(dir) {
        if depth >= MAX_ADAPTER_CHAIN {
            return Err(MlError::bad_file(
                dir,
                format!("more than {MAX_ADAPTER_CHAIN} adapters stacked on one base"),
            ));
        }
        let base = BaseRef::read(dir)?.resolve(dir)?;
        let (mut model, _) = load_at_depth(&base, depth + 1)?;
        let tok = Tokenizer::load_dir(dir)?;
        load_peft_adapter(model.as_mut(), dir)?;
        merge_adapter(model.as_mut())?;
        check_vocab(dir, model.as_ref(), &tok)?;
        return Ok((model, tok));
    }
    let cfg = read_config_json(dir)?;
    let tok = Tokenizer::load_dir(dir)?;
    let weights = HfWeights::open(dir)?;
    // `get` cannot fail: keep the first read error and report it instead of the "lacks
    // tensor" that would follow.
    let mut failure = None;
    let built = model_from_hf(&cfg, &mut |n| match weights.get(n) {
        Ok(t) => t,
        Err(e) => {
            failure.get_or_insert(e);
            None
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let model = built.map_err(|e| MlError::bad_file(dir, e))?;
    check_vocab(dir, model.as_ref(), &tok)?;
    Ok((model, tok))
}

/// Loads a pretrained model: a Hugging Face model directory, or a `.gguf` file.
pub fn load_pretrained(path: &Path) -> Result<(Model, Tokenizer)> {
    let meta = std::fs::metadata(path).map_err(|e| MlError::io(path, e))?;
    if meta.is_dir() {
        return load_checkpoint(path);
    }
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if !is_gguf {
        return Err(MlError::bad_file(
            path,
            "not a model: expected a Hugging Face model directory or a `.gguf` file",
        ));
    }
    let gguf = crate::ml::model::gguf::read_gguf(path)?;
    let tok = Tokenizer::pretrained(gguf.tokenizer, gguf.tokenizer_config, None)
        .map_err(|e| MlError::bad_file(path, e))?;
    let mut tensors = gguf.tensors;
    let model = model_from_hf(&gguf.config, &mut |n| tensors.remove(n))
        .map_err(|e| MlError::bad_file(path, e))?;
    check_vocab(path, model.as_ref(), &tok)?;
    Ok((model, tok))
}

/// A tokenizer with ids past the embedding would index outside it mid-run: refuse it.
fn check_vocab(path: &Path, model: &dyn CausalLm, tok: &Tokenizer) -> Result<()> {
    let vocab = model.dims().vocab_size;
    if tok.vocab_size() > vocab {
        return Err(MlError::bad_file(
            path,
            format!(
                "tokenizer has {} tokens but the model's embedding only {vocab}",
                tok.vocab_size()
            ),
        ));
    }
    Ok(())
}

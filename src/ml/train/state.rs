//! The resumable-state directory shared by SFT ([`crate::ml::sft::TrainState`]) and RL
//! ([`crate::ml::rl::RlState`]): `weights.safetensors`, the optimizer files and `state.json`
//! (holding at least `step` and `config`), written to a temporary sibling and renamed into
//! place so a crash leaves the previous state.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::de::DeserializeOwned;

use crate::ml::checkpoint::save_tensors;
use crate::ml::error::{MlError, Result};
use crate::ml::model::CausalLm;
use crate::ml::optim::AdamW;

/// Writes `tensors` to `weights.safetensors`, `opt` (parameters `names`) and `meta` as
/// `state.json` into `dir`, via `<dir>.tmp` renamed into place.
pub(crate) fn save_state_dir(
    dir: &Path,
    tensors: &[(String, Tensor)],
    opt: &AdamW,
    names: &[String],
    meta: &serde_json::Value,
) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| MlError::io(parent, e))?;
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| MlError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| MlError::io(&tmp, e))?;
    save_tensors(&tmp.join("weights.safetensors"), tensors)?;
    opt.save(&tmp, names)?;
    let p = tmp.join("state.json");
    std::fs::write(&p, meta.to_string()).map_err(|e| MlError::io(&p, e))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| MlError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| MlError::io(dir, e))
}

/// `state.json` of a state directory, with its `step` and model `config` parsed.
pub(crate) struct StateMeta {
    pub meta: serde_json::Value,
    pub step: u64,
    /// The model's `hf_config(0, 0)`: a state resumes only into the same architecture.
    pub config: serde_json::Value,
    /// The `state.json` path, for error messages.
    pub path: PathBuf,
}

impl StateMeta {
    /// Deserializes the field `key` of `state.json`.
    pub fn field<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        serde_json::from_value(self.meta[key].clone()).map_err(|e| MlError::bad_file(&self.path, e))
    }
}

/// Reads `dir/state.json`; `Ok(None)` if there is none.
pub(crate) fn read_state_meta(dir: &Path) -> Result<Option<StateMeta>> {
    let p = dir.join("state.json");
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| MlError::io(&p, e))?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| MlError::bad_file(&p, e))?;
    let step = meta["step"]
        .as_u64()
        .ok_or_else(|| MlError::bad_file(&p, "missing `step`"))?;
    let config = meta["config"].clone();
    Ok(Some(StateMeta {
        meta,
        step,
        config,
        path: p,
    }))
}

/// The config a state records for `model` (ids that do not change the math left out).
pub(crate) fn state_config(model: &dyn CausalLm) -> serde_json::Value {
    model.hf_config(0, 0)
}

/// Overwrites `model`'s trainable parameters with the saved `tensors` of a state whose
/// config is `config`; an error if the state belongs to another model.
pub(crate) fn restore_params(
    model: &dyn CausalLm,
    config: &serde_json::Value,
    tensors: &mut std::collections::BTreeMap<String, Tensor>,
) -> Result<()> {
    if *config != state_config(model) {
        return Err(MlError::Invalid(
            "resumable state belongs to a different model configuration".into(),
        ));
    }
    let params = model.params();
    for (i, name) in params.names().iter().enumerate() {
        if !params.is_trainable(i) {
            continue;
        }
        let saved = tensors
            .remove(name)
            .ok_or_else(|| MlError::Invalid(format!("resumable state lacks tensor `{name}`")))?;
        let var = &params.vars()[i];
        if saved.dims() != var.as_tensor().dims() {
            return Err(MlError::Invalid(format!(
                "resumable state's `{name}` has shape {:?}, the model {:?}",
                saved.dims(),
                var.as_tensor().dims()
            )));
        }
        let t = var.as_tensor();
        var.set(&saved.to_device(t.device())?.to_dtype(t.dtype())?)?;
    }
    Ok(())
}

/// The trainable parameters' `(name, tensor)` pairs: what a state saves.
pub(crate) fn trainable_tensors(model: &dyn CausalLm) -> Vec<(String, Tensor)> {
    let params = model.params();
    params
        .named_tensors()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| params.is_trainable(*i))
        .map(|(_, nt)| nt)
        .collect()
}

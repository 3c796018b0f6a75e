//! Leases: what a live run holds or will read, so that `cache gc` never removes it.
//!
//! Each run owns a lease file `<root>/leases/<run id>.lease`, exclusively locked for the
//! run's lifetime, listing one key per line: every node key the run has computed so far
//! (keys of later nodes are known only once their inputs are done, so the list grows).
//! A key is added *before* the run checks or reads its entry, under a shared lock on
//! `<root>/locks/gc.lock`; `gc` holds that lock exclusively while it reads the leases and
//! removes entries. So either gc saw the key (and kept the entry), or the run added it
//! after gc finished (and finds the entry missing, and recomputes it). A lease whose file
//! lock is free belongs to a process that died: gc removes it.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use super::fsutil::{self, io};
use super::{Cache, ExecError};
use crate::cache::entries::list_names;

/// A live run's lease; removed when dropped.
pub struct Lease {
    path: PathBuf,
    file: Mutex<File>,
    gc_lock: PathBuf,
}

/// The gc lock: exclusive for `gc`, shared while a run extends its lease.
fn open_gc_lock(cache: &Cache) -> Result<(File, PathBuf), ExecError> {
    let path = cache.root().join("locks").join("gc.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    Ok((f, path))
}

impl Lease {
    /// Takes a new lease for the run `id`.
    pub fn take(cache: &Cache, id: &str) -> Result<Lease, ExecError> {
        let dir = cache.root().join("leases");
        fsutil::create_dir_all(&dir)?;
        let path = dir.join(format!("{id}.lease"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        fs4::fs_std::FileExt::lock_exclusive(&file).map_err(io(&path))?;
        let (_, gc_lock) = open_gc_lock(cache)?;
        Ok(Lease {
            path,
            file: Mutex::new(file),
            gc_lock,
        })
    }

    /// Adds `key` to the lease; call before checking or reading the entry of `key`.
    pub fn hold(&self, key: &str) -> Result<(), ExecError> {
        let gc = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.gc_lock)
            .map_err(io(&self.gc_lock))?;
        // Waits while a gc is removing entries; released when `gc` is dropped.
        fs4::fs_std::FileExt::lock_shared(&gc).map_err(io(&self.gc_lock))?;
        let mut f = self
            .file
            .lock()
            .map_err(|_| ExecError::Corrupt("the lease lock is poisoned".into()))?;
        f.write_all(format!("{key}\n").as_bytes())
            .and_then(|()| f.flush())
            .map_err(io(&self.path))?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Held by `gc` while it decides and removes: no run extends its lease meanwhile.
pub struct GcGuard {
    _file: File,
    /// Every key a live run holds.
    pub held: BTreeSet<String>,
}

/// Locks out lease extensions, removes leases of dead processes and collects the keys of
/// the live ones.
pub fn lock_for_gc(cache: &Cache) -> Result<GcGuard, ExecError> {
    let (file, path) = open_gc_lock(cache)?;
    fs4::fs_std::FileExt::lock_exclusive(&file).map_err(io(&path))?;
    let dir = cache.root().join("leases");
    let mut held = BTreeSet::new();
    for name in list_names(&dir)? {
        let p = dir.join(&name);
        let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(&p) else {
            continue;
        };
        match fs4::fs_std::FileExt::try_lock_exclusive(&f) {
            // Nobody holds it: its run is gone.
            Ok(true) => {
                let _ = std::fs::remove_file(&p);
            }
            _ => {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                held.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
            }
        }
    }
    Ok(GcGuard { _file: file, held })
}

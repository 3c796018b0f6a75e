//! Lock files that hold on a shared filesystem where advisory `flock` may not (NFS, some
//! cluster filesystems): a lock is a file created with `O_CREAT|O_EXCL` (atomic on NFSv3+
//! and every local filesystem), naming its owner (host, pid, a unique token), and kept
//! alive by its holder, which touches the file's modification time every [`RENEW`]. A
//! waiter breaks a lock that was not renewed for [`TTL`] (its holder died, or its host
//! did), or at once when the owner is a process of this host that no longer exists.
//!
//! Breaking is a rename to a unique name, then a read of the moved file: if it is not the
//! lock that was judged stale (its owner released it and someone else took a fresh one
//! in between) it is linked back with `link()`, which fails rather than overwrite. The
//! file is removed when its holder drops the lock. See `docs/cache.md` ("Locking").

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::fsutil::{self, io};
use super::CacheError;

/// A lock not renewed for this long is broken (clocks of the hosts sharing the cache must
/// agree to well within it).
pub const TTL: Duration = Duration::from_secs(90);
/// How often a holder renews its lock.
pub const RENEW: Duration = Duration::from_secs(15);

/// A held lock file; released (removed) when dropped.
pub struct LockFile {
    path: PathBuf,
    owner: String,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

/// This host's name, as lock owners and submission records spell it.
pub fn host_name() -> String {
    // The kernel's name, not Slurm's node name: a lock's owner is judged by its process.
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Whether process `pid` of `host` is known to be gone: only decidable for this host.
pub fn owner_dead(host: &str, pid: u32) -> bool {
    host == host_name()
        && Path::new("/proc/self").exists()
        && pid != std::process::id()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

impl LockFile {
    /// Blocks until this process holds the lock `path`.
    pub fn acquire(path: &Path) -> Result<LockFile, CacheError> {
        let mut wait = Duration::from_millis(20);
        loop {
            if let Some(l) = Self::try_acquire(path)? {
                return Ok(l);
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    /// The lock `path` if nobody holds it now (a stale one is broken first).
    pub fn try_acquire(path: &Path) -> Result<Option<LockFile>, CacheError> {
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(f) => return Self::hold(path, f).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(CacheError::Io {
                        path: path.to_path_buf(),
                        source: e,
                    })
                }
            }
            match std::fs::read_to_string(path) {
                // Released meanwhile: try again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(CacheError::Io {
                        path: path.to_path_buf(),
                        source: e,
                    })
                }
                Ok(seen) if stale(path, &seen) => break_stale(path, &seen)?,
                Ok(_) => return Ok(None),
            }
        }
        Ok(None)
    }

    fn hold(path: &Path, mut f: File) -> Result<LockFile, CacheError> {
        let owner = format!(
            "host={} pid={} token={}\n",
            host_name(),
            std::process::id(),
            fsutil::unique_suffix()
        );
        // Written and synced before anyone can judge it: an empty lock file is one being
        // created, never stale by its content.
        f.write_all(owner.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(path))?;
        let (stop, rx) = mpsc::channel::<()>();
        let renewer = std::thread::spawn(move || {
            // Touching our own open file never revives a lock someone else now holds.
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(RENEW) {
                let _ = f.set_modified(SystemTime::now());
            }
        });
        Ok(LockFile {
            path: path.to_path_buf(),
            owner,
            stop: Some(stop),
            renewer: Some(renewer),
        })
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        // Only our own lock: if it was broken (we were presumed dead) it is someone else's.
        if std::fs::read_to_string(&self.path).ok().as_deref() == Some(self.owner.as_str()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether the lock file `path`, whose content is `seen`, may be broken.
fn stale(path: &Path, seen: &str) -> bool {
    let field = |name: &str| {
        seen.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
    };
    if let (Some(host), Some(pid)) = (field("host"), field("pid").and_then(|p| p.parse().ok())) {
        if owner_dead(host, pid) {
            return true;
        }
    }
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    // An empty file is being written by its creator: give it the full TTL too.
    matches!(age, Some(a) if a > TTL)
}

/// Removes the stale lock `path` whose content was `seen`, unless it changed hands.
fn break_stale(path: &Path, seen: &str) -> Result<(), CacheError> {
    let mut moved = path.as_os_str().to_owned();
    moved.push(format!(".stale-{}", fsutil::unique_suffix()));
    let moved = PathBuf::from(moved);
    match std::fs::rename(path, &moved) {
        Ok(()) => {}
        // Someone else broke it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CacheError::Io {
                path: path.to_path_buf(),
                source: e,
            })
        }
    }
    if std::fs::read_to_string(&moved).ok().as_deref() != Some(seen) {
        // A fresh lock: put it back (fails, leaving the newer one, if there is one).
        let _ = std::fs::hard_link(&moved, path);
    }
    let _ = std::fs::remove_file(&moved);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.lock");
        let a = LockFile::try_acquire(&p).unwrap().unwrap();
        assert!(LockFile::try_acquire(&p).unwrap().is_none());
        drop(a);
        assert!(!p.exists());
        assert!(LockFile::try_acquire(&p).unwrap().is_some());
    }

    #[test]
    fn a_dead_owner_or_an_expired_lease_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.lock");
        // A process of this host that no longer exists (pid beyond pid_max).
        std::fs::write(&p, format!("host={} pid=4194305 token=x\n", host_name())).unwrap();
        assert!(LockFile::try_acquire(&p).unwrap().is_some());
        // Another host's lock, renewed recently: held; not renewed for a TTL: broken.
        std::fs::write(&p, "host=elsewhere pid=1 token=y\n").unwrap();
        assert!(LockFile::try_acquire(&p).unwrap().is_none());
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - TTL - Duration::from_secs(1))
            .unwrap();
        drop(f);
        let l = LockFile::try_acquire(&p).unwrap().unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains(&host_name()));
        drop(l);
        assert!(!p.exists());
    }
}

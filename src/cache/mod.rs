//! The content-addressed cache ([`entries`]: entries, their [`manifest`]s, staging and
//! publishing), the lock files that serialise work on it across hosts ([`lockfile`]), and
//! the atomic file writes everything in it goes through ([`fsutil`]). Below `plan` and
//! `exec`, which both use it, and above neither: it knows nothing of keys' parts,
//! operations or executors. Layout, locking, early cutoff: `docs/cache.md`.

pub mod entries;
pub mod fsutil;
pub mod lockfile;
pub mod manifest;

pub use entries::{Cache, EntryState, NodeLock, CACHE_ENV};

use std::path::PathBuf;

/// Bump when the key scheme or the cache entry layout changes: every key changes with it
/// (`plan::KeyParts` hashes it in; every entry's manifest records it).
pub const KEY_FORMAT: u32 = 1;

/// What can go wrong reading or writing the cache. `exec::ExecError` has the same two
/// cases and converts from this one.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Corrupt(String),
}

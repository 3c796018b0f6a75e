//! How one node of a run ended ([`NodeOutcome`], [`NodeStatus`], its [`MetricPoint`]s):
//! what the scheduler records, executors return parts of, and the progress display and
//! run records show. Its own module so that those read it without depending on each
//! other (the scheduler uses the display; the display must not reach back into it).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::ir::NodeId;
use crate::plan::KeyParts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Served from the cache (possibly computed meanwhile by a concurrent run).
    Cached,
    Computed,
    Failed,
    NotImplemented,
    /// Not run because an input failed, is not implemented or was cancelled.
    Skipped,
    Cancelled,
}

impl NodeStatus {
    pub fn word(self) -> &'static str {
        match self {
            NodeStatus::Cached => "cached",
            NodeStatus::Computed => "computed",
            NodeStatus::Failed => "failed",
            NodeStatus::NotImplemented => "not implemented",
            NodeStatus::Skipped => "skipped",
            NodeStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricPoint {
    pub name: String,
    pub step: u64,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeOutcome {
    pub node: NodeId,
    pub name: String,
    pub op: String,
    pub key: Option<String>,
    /// Content hash of the result (cached or computed).
    pub content: Option<String>,
    pub status: NodeStatus,
    pub seconds: f64,
    pub metrics: Vec<MetricPoint>,
    pub error: Option<String>,
    /// Something the user should know, e.g. a corrupt entry that was replaced.
    pub note: Option<String>,
    /// The batch job that computed it (`--executor slurm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRecord>,
    #[serde(skip)]
    pub parts: Option<KeyParts>,
}

/// The batch job a node ran in: kept in the run record, so a result can be traced to the
/// job, its final state and the host it ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `slurm`.
    pub scheduler: String,
    pub id: String,
    /// The job's final state (`COMPLETED`, `FAILED`, `TIMEOUT`, ...).
    pub state: String,
    /// `code:signal`, when the scheduler said.
    pub exit_code: Option<String>,
    /// The hosts it ran on, when the scheduler said.
    pub nodes: Option<String>,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Earlier jobs of the node, `id STATE`, that ended without a fault of its own
    /// (`NODE_FAIL`, `PREEMPTED`) and were submitted again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<String>,
    /// Submitted by another driver (one that was killed, or runs beside this one) and
    /// followed by this one instead of submitting the node again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
}

//! Gathering what a report shows, from the cache only: each node's cache state (through
//! [`Plan::compute`], which never runs anything), every cached eval's `result.json`, and
//! the run records' timings. A node without a cached result is "not run yet", never an
//! error: a report of a half-run experiment is still a report.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

use super::datasets::{self, DatasetEntry};
use super::ReportError;
use crate::data::eval::EvalResult;
use crate::exec::{Cache, Registry};
use crate::ir::{NodeId, Program, Report, Value};
use crate::plan::{Plan, Status};
use crate::syntax::ast::DeclKind;

/// Where a node stands in the cache.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeState {
    Cached,
    NotRun,
    /// An entry exists under the key but fails verification: the next run recomputes it.
    Corrupt(String),
    /// The operation has no implementation in this build.
    NotImplemented,
    /// An input (transitively) has no implementation.
    Blocked(Vec<String>),
}

impl NodeState {
    pub fn describe(&self) -> String {
        match self {
            NodeState::Cached => "cached".into(),
            NodeState::NotRun => "not run yet".into(),
            NodeState::Corrupt(detail) => {
                format!("cache entry corrupt ({detail}); the next run recomputes it")
            }
            NodeState::NotImplemented => "not implemented".into(),
            NodeState::Blocked(by) => format!("blocked by {}", by.join(", ")),
        }
    }
}

/// Provenance of one node.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: NodeId,
    pub name: String,
    pub kind: DeclKind,
    pub op: String,
    pub op_version: Option<u32>,
    pub key: Option<String>,
    /// The node seed (derived from the experiment seed and the key parts).
    pub seed: Option<u64>,
    pub state: NodeState,
    /// Wall-clock seconds of the run that computed it, from the run records.
    pub seconds: Option<f64>,
    /// Where it was computed when that was a batch job (`slurm job 12 on node07`).
    pub ran_on: Option<String>,
    pub doc: Option<String>,
}

/// One eval node and its result, if cached.
#[derive(Debug, Clone)]
pub struct EvalEntry {
    pub id: NodeId,
    pub name: String,
    pub base: String,
    /// Sweep bindings, values rendered as text (`width` -> `128`).
    pub sweep: Vec<(String, String)>,
    pub op: String,
    /// The node the eval measures (its `model` argument).
    pub model: Option<String>,
    pub doc: Option<String>,
    pub state: NodeState,
    pub result: Option<EvalResult>,
    /// Set when a cached `result.json` could not be read.
    pub problem: Option<String>,
    /// For an eval over a stage's checkpoints: the eval that measures the same way the
    /// model the stage started from (the planted model), whose final rates are the curve's
    /// step 0.
    pub start: Option<NodeId>,
    /// The replicate this node is (`experiment { replicates = N }`), if it is one.
    pub replicate: Option<u32>,
    /// For the mean across replicates ([`ReportData::aggregates`]): the replicate nodes it
    /// averages, in replicate order, and the results of those that have one. Empty for a
    /// node's own entry.
    pub members: Vec<NodeId>,
    pub member_results: Vec<(u32, EvalResult)>,
}

impl EvalEntry {
    /// The last point (the final model, else the latest checkpoint).
    pub fn last_point(&self) -> Option<&crate::data::eval::EvalPoint> {
        self.result.as_ref().and_then(|r| r.points.last())
    }

    /// For a mean across replicates: each replicate's value of `rate` at `step` (`None`:
    /// the final model, else the latest checkpoint), in replicate order.
    pub fn replicate_values(&self, step: Option<u64>, rate: &str) -> Vec<(u32, f64)> {
        self.member_results
            .iter()
            .filter_map(|(n, r)| {
                let p = match step {
                    Some(s) => r.points.iter().find(|p| p.step == Some(s)),
                    None => r
                        .points
                        .iter()
                        .find(|p| p.step.is_none())
                        .or(r.points.last()),
                }?;
                Some((*n, p.rates.get(rate)?.value))
            })
            .collect()
    }

    /// For a mean across replicates: each replicate's curve of `rate` over checkpoint
    /// steps, by replicate number.
    pub fn replicate_curves(&self, rate: &str) -> Vec<(u32, Vec<(f64, f64)>)> {
        self.member_results
            .iter()
            .map(|(n, r)| {
                let points = r
                    .points
                    .iter()
                    .filter_map(|p| Some((p.step? as f64, p.rates.get(rate)?.value)))
                    .collect();
                (*n, points)
            })
            .collect()
    }
}

/// Everything a report needs, already read from the cache.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub experiment: String,
    pub docs: Vec<String>,
    pub seed: u64,
    pub settings: Vec<(String, String)>,
    pub tool_version: String,
    pub nodes: Vec<NodeRow>,
    pub evals: Vec<EvalEntry>,
    /// One entry per replicated eval: the mean across its replicates (named without the
    /// replicate), standing for every replicate in report items.
    pub aggregates: Vec<EvalEntry>,
    /// Every dataset node, summarised from its cached rows.
    pub datasets: Vec<DatasetEntry>,
    pub reports: Vec<Report>,
    /// How many run records of this experiment the cache holds.
    pub runs: usize,
    /// Build, libraries, threads and machine of the latest run of this experiment that
    /// computed something (what produced the newest results), if its record says.
    pub run_provenance: Option<crate::exec::provenance::Provenance>,
}

impl ReportData {
    /// What a report shows for node `id`: the mean across replicates when `id` is one
    /// replicate of an eval, else the eval's own entry.
    pub fn eval(&self, id: NodeId) -> Option<&EvalEntry> {
        self.aggregates
            .iter()
            .find(|a| a.members.contains(&id))
            .or_else(|| self.evals.iter().find(|e| e.id == id))
    }

    /// [`Self::eval`] of each id, each entry once, in first-mention order.
    pub fn shown(&self, ids: &[NodeId]) -> Vec<&EvalEntry> {
        let mut out: Vec<&EvalEntry> = Vec::new();
        for e in ids.iter().filter_map(|i| self.eval(*i)) {
            if !out.iter().any(|o| o.id == e.id) {
                out.push(e);
            }
        }
        out
    }
}

/// The mean across replicates of every replicated eval in `evals`, in first-replicate
/// order. Its state is the worst of its members' (a replicate not run yet shows).
fn aggregates(program: &Program, evals: &[EvalEntry]) -> Vec<EvalEntry> {
    let by_id: std::collections::HashMap<NodeId, &EvalEntry> =
        evals.iter().map(|e| (e.id, e)).collect();
    program
        .replicate_groups()
        .into_iter()
        .filter_map(|(name, nodes)| {
            let members: Vec<&EvalEntry> = nodes
                .iter()
                .filter_map(|n| by_id.get(&n.id).copied())
                .collect();
            // Only evals have entries: other replicated nodes give an empty group.
            let first = *members.first()?;
            let member_results: Vec<(u32, EvalResult)> = members
                .iter()
                .filter_map(|m| Some((m.replicate?, m.result.clone()?)))
                .collect();
            let results: Vec<&EvalResult> = member_results.iter().map(|(_, r)| r).collect();
            let result = crate::data::replicates::aggregate(&results, &name);
            let state = members
                .iter()
                .map(|m| &m.state)
                .find(|s| **s != NodeState::Cached)
                .cloned()
                .unwrap_or(NodeState::Cached);
            Some(EvalEntry {
                id: first.id,
                name,
                base: first.base.clone(),
                sweep: first.sweep.clone(),
                op: first.op.clone(),
                model: first.model.as_deref().map(crate::ir::without_replicate),
                doc: first.doc.clone(),
                state,
                result,
                problem: members.iter().find_map(|m| m.problem.clone()),
                start: first.start,
                replicate: None,
                members: members.iter().map(|m| m.id).collect(),
                member_results,
            })
        })
        .collect()
}

/// Renders a value the way a reader wrote it (`128`, `cot`, `"text"`).
pub fn value_text(program: &Program, v: &Value) -> String {
    match v {
        Value::None => "none".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f}"),
        Value::Str(s) => format!("{s:?}"),
        Value::Enum(e) => e.clone(),
        Value::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| value_text(program, i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Call { op, args } => format!(
            "{op}({})",
            args.iter()
                .map(|(k, v)| format!("{k}: {}", value_text(program, v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Ref { node, field } => {
            let name = program
                .nodes
                .get(node.0)
                .map(|n| n.name.as_str())
                .unwrap_or("?");
            match field {
                Some(f) => format!("{name}.{f}"),
                None => name.to_string(),
            }
        }
    }
}

#[derive(Deserialize)]
struct RecordFile {
    experiment: String,
    #[serde(default)]
    provenance: Option<crate::exec::provenance::Provenance>,
    #[serde(default)]
    finished: f64,
    #[serde(default)]
    nodes: Vec<RecordNode>,
}

#[derive(Deserialize)]
struct RecordNode {
    key: Option<String>,
    status: String,
    #[serde(default)]
    seconds: f64,
    /// The batch job that computed it (`--executor slurm`).
    #[serde(default)]
    job: Option<RecordJob>,
}

#[derive(Deserialize)]
struct RecordJob {
    scheduler: String,
    id: String,
    nodes: Option<String>,
}

/// What the run records say about the run that computed a key.
#[derive(Clone)]
struct Computed {
    seconds: f64,
    ran_on: Option<String>,
}

/// Seconds each key took when it was computed, from `<cache>/runs/*.json` (the latest
/// record wins). Unreadable records are skipped: they only add timings.
fn run_timings(
    cache: &Cache,
    experiment: &str,
) -> (
    usize,
    BTreeMap<String, Computed>,
    Option<crate::exec::provenance::Provenance>,
) {
    let mut records: Vec<RecordFile> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(cache.root().join("runs")) {
        for entry in dir.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Ok(r) = serde_json::from_slice::<RecordFile>(&bytes) {
                if r.experiment == experiment {
                    records.push(r);
                }
            }
        }
    }
    records.sort_by(|a, b| a.finished.total_cmp(&b.finished));
    let mut out = BTreeMap::new();
    let mut provenance = None;
    for r in &records {
        for n in &r.nodes {
            if let (Some(k), "computed") = (&n.key, n.status.as_str()) {
                let ran_on = n.job.as_ref().map(|j| {
                    format!(
                        "{} job {}{}",
                        j.scheduler,
                        j.id,
                        j.nodes
                            .as_deref()
                            .map(|h| format!(" on {h}"))
                            .unwrap_or_default()
                    )
                });
                out.insert(
                    k.clone(),
                    Computed {
                        seconds: n.seconds,
                        ran_on,
                    },
                );
                provenance = r.provenance.clone().or(provenance);
            }
        }
    }
    (records.len(), out, provenance)
}

fn read_result(dir: &Path) -> Result<EvalResult, String> {
    let mut r = EvalResult::read(&dir.join("result.json")).map_err(|e| e.to_string())?;
    r.sort_points();
    Ok(r)
}

/// Arguments of a stage that name the model it starts from (`sft`/`adversarial` take
/// `model`, `rl` its `policy`; `rl`'s `reward` is another model, not the start).
const START_MODEL_ARGS: [&str; 2] = ["model", "policy"];

/// For an eval over `stage.checkpoints`: the eval with the same operation and arguments
/// that measures the stage's starting model (e.g. `planted` for `after_sft`), if any.
fn start_eval(program: &Program, eval: &crate::ir::Node) -> Option<NodeId> {
    let Some(Value::Ref {
        node: stage,
        field: Some(field),
    }) = eval.args.get("model")
    else {
        return None;
    };
    if field != "checkpoints" {
        return None;
    }
    let stage = program.nodes.get(stage.0)?;
    let start = START_MODEL_ARGS
        .iter()
        .find_map(|a| match stage.args.get(*a) {
            Some(Value::Ref { node, field: None }) => Some(*node),
            _ => None,
        })?;
    program
        .nodes
        .iter()
        .find(|n| {
            n.kind == DeclKind::Eval
                && n.op == eval.op
                && n.args.get("model")
                    == Some(&Value::Ref {
                        node: start,
                        field: None,
                    })
                && n.args
                    .iter()
                    .filter(|(k, _)| k.as_str() != "model")
                    .eq(eval.args.iter().filter(|(k, _)| k.as_str() != "model"))
        })
        .map(|n| n.id)
}

/// Reads the state of every node of `program` and the results of its cached evals.
/// Never runs an operation.
pub fn collect(
    program: &Program,
    registry: &dyn Registry,
    cache: &Cache,
) -> Result<ReportData, ReportError> {
    let plan = Plan::compute(program, registry, cache, &[], &[])
        .map_err(|e| ReportError::Plan(e.to_string()))?;
    let (runs, timings, run_provenance) = run_timings(cache, &program.name);
    let mut nodes = Vec::new();
    let mut evals = Vec::new();
    let mut data_sets = Vec::new();
    for p in &plan.nodes {
        let node = program.node(p.id);
        let state = match &p.status {
            Status::Cached => NodeState::Cached,
            Status::ToRun { why } => match why.iter().find_map(|w| match w {
                crate::plan::Why::CorruptEntry { detail } => Some(detail.clone()),
                _ => None,
            }) {
                Some(detail) => NodeState::Corrupt(detail),
                None => NodeState::NotRun,
            },
            Status::NotImplemented => NodeState::NotImplemented,
            Status::Blocked { by } => NodeState::Blocked(by.clone()),
        };
        let key = p.key.clone().filter(|_| state == NodeState::Cached);
        nodes.push(NodeRow {
            id: p.id,
            name: p.name.clone(),
            kind: p.kind,
            op: p.op.clone(),
            op_version: p.parts.as_ref().map(|k| k.op_version),
            key: key.clone(),
            seed: p.parts.as_ref().map(|k| k.seed),
            seconds: key.as_ref().and_then(|k| timings.get(k)).map(|c| c.seconds),
            ran_on: key
                .as_ref()
                .and_then(|k| timings.get(k))
                .and_then(|c| c.ran_on.clone()),
            state: state.clone(),
            doc: node.doc.clone(),
        });
        if node.kind == DeclKind::Dataset {
            let (stats, problem) = match &key {
                Some(k) => match datasets::read(&cache.artifact_dir(k)) {
                    Ok(s) => (Some(s), None),
                    Err(e) => (None, Some(e)),
                },
                None => (None, None),
            };
            data_sets.push(DatasetEntry {
                id: p.id,
                name: p.name.clone(),
                op: p.op.clone(),
                state: state.clone(),
                stats,
                problem,
            });
        }
        if node.kind != DeclKind::Eval {
            continue;
        }
        let (result, problem) = match &key {
            Some(k) => match read_result(&cache.artifact_dir(k)) {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(e)),
            },
            None => (None, None),
        };
        evals.push(EvalEntry {
            id: p.id,
            name: node.name.clone(),
            base: node.base.clone(),
            sweep: node
                .sweep
                .iter()
                .map(|(k, v)| (k.clone(), value_text(program, v)))
                .collect(),
            op: node.op.clone(),
            model: node.args.get("model").map(|v| value_text(program, v)),
            doc: node.doc.clone(),
            state,
            result,
            problem,
            start: start_eval(program, node),
            replicate: node.replicate,
            members: Vec::new(),
            member_results: Vec::new(),
        });
    }
    let aggregates = aggregates(program, &evals);
    Ok(ReportData {
        experiment: program.name.clone(),
        docs: program.docs.clone(),
        seed: program.seed,
        settings: program
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), value_text(program, v)))
            .collect(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        nodes,
        evals,
        aggregates,
        datasets: data_sets,
        reports: program.reports.clone(),
        runs,
        run_provenance,
    })
}

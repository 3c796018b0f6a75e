//! Run records (`<cache>/runs/<time>-<pid>.json`: what each node did, its key, time and
//! metrics, and the provenance of the build and machine) and `results.json` (every eval's
//! `result.json`, keyed by node name, marked with the run that produced it).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::provenance::Provenance;
use super::run::{NodeOutcome, RunReport};
use super::{fsutil, Cache, ExecError};
use crate::ir::Program;
use crate::syntax::ast::DeclKind;

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord<'a> {
    pub id: &'a str,
    pub experiment: &'a str,
    /// The build, libraries, threads and machine that ran it.
    pub provenance: Provenance,
    /// Unix time in seconds when the run started and finished.
    pub started: f64,
    pub finished: f64,
    pub ok: bool,
    pub nodes: &'a [NodeOutcome],
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Cache {
    /// Writes the run record of `report`; returns its path.
    pub fn write_run_record(&self, report: &RunReport, started: f64) -> Result<PathBuf, ExecError> {
        let finished = unix_now();
        let record = RunRecord {
            id: &report.id,
            experiment: &report.experiment,
            provenance: Provenance::current(),
            started,
            finished,
            ok: report.ok(),
            nodes: &report.outcomes,
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| ExecError::Corrupt(format!("serialising the run record: {e}")))?;
        let path = self.root().join("runs").join(format!("{}.json", report.id));
        fsutil::write_atomic(&path, &json)?;
        Ok(path)
    }
}

/// `results.json` (format 2). Every value names the run that produced it, so a value kept
/// from an earlier run (an eval this run did not target) is never mistaken for this run's.
#[derive(Debug, Serialize, Deserialize)]
struct Results {
    format: u32,
    /// The run that wrote the file last, and what it ran on.
    run: String,
    provenance: Provenance,
    evals: BTreeMap<String, ResultValue>,
    /// For experiments with `replicates > 1`: each replicated eval (named without its
    /// replicate) as the mean across the replicates in `evals`, with 95% two-level
    /// bootstrap intervals (`data::replicates`). Derived from `evals` on every write.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    replicated: BTreeMap<String, Replicated>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Replicated {
    /// The replicate evals averaged, in replicate order (their values are in `evals`).
    replicates: Vec<String>,
    /// The mean across them: `data::eval::EvalResult` with `seeds` on every rate and the
    /// first replicate's samples left out (they are in `evals`).
    result: crate::data::eval::EvalResult,
}

/// The mean across replicates of every replicated eval with values in `evals`.
fn replicated(
    program: &Program,
    evals: &BTreeMap<String, ResultValue>,
) -> BTreeMap<String, Replicated> {
    let mut out = BTreeMap::new();
    for (name, nodes) in program.replicate_groups() {
        // The replicates with a readable value in `evals`, in replicate order.
        let members: Vec<(String, crate::data::eval::EvalResult)> = nodes
            .iter()
            .filter_map(|n| {
                let value = evals.get(&n.name)?;
                Some((
                    n.name.clone(),
                    serde_json::from_value(value.result.clone()).ok()?,
                ))
            })
            .collect();
        let refs: Vec<&crate::data::eval::EvalResult> = members.iter().map(|(_, r)| r).collect();
        if let Some(mut result) = crate::data::replicates::aggregate(&refs, &name) {
            result.points.iter_mut().for_each(|p| p.samples.clear());
            let replicates = members.into_iter().map(|(m, _)| m).collect();
            out.insert(name, Replicated { replicates, result });
        }
    }
    out
}

#[derive(Debug, Serialize, Deserialize)]
struct ResultValue {
    /// The id of the run that produced this value (its run record is
    /// `<cache>/runs/<run>.json`); equal to the file's `run` when this run did.
    run: String,
    /// `computed` or `cached` in that run.
    status: String,
    key: String,
    /// The eval's `result.json`.
    result: serde_json::Value,
}

const RESULTS_FORMAT: u32 = 2;

/// Writes `path` (`results.json`): the `result.json` of every eval node that has a result
/// in this run, keyed by node name and marked with this run's id. Values of earlier runs
/// stay only for evals this run did not attempt (e.g. outside `--target`), marked with
/// their own run; an eval this run attempted without a result (failed, skipped,
/// cancelled) loses its old value, and so do names that are no longer evals of the
/// program and values of files without run marks (older formats).
pub fn write_results(
    program: &Program,
    cache: &Cache,
    report: &RunReport,
    path: &Path,
) -> Result<usize, ExecError> {
    let old: Option<Results> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|r: &Results| r.format == RESULTS_FORMAT);
    let attempted: BTreeSet<&str> = report.outcomes.iter().map(|o| o.name.as_str()).collect();
    let mut evals = old.map(|r| r.evals).unwrap_or_default();
    evals.retain(|name, _| {
        !attempted.contains(name.as_str())
            && program.find(name).is_some_and(|n| n.kind == DeclKind::Eval)
    });
    let mut n = 0;
    for o in &report.outcomes {
        if program.node(o.node).kind != DeclKind::Eval || o.content.is_none() {
            continue;
        }
        let Some(key) = &o.key else { continue };
        let file = cache.artifact_dir(key).join("result.json");
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ExecError::Corrupt(format!("{} is not valid JSON: {e}", file.display()))
        })?;
        evals.insert(
            o.name.clone(),
            ResultValue {
                run: report.id.clone(),
                status: o.status.word().to_string(),
                key: key.clone(),
                result: value,
            },
        );
        n += 1;
    }
    let results = Results {
        format: RESULTS_FORMAT,
        run: report.id.clone(),
        provenance: Provenance::current(),
        replicated: replicated(program, &evals),
        evals,
    };
    let json = serde_json::to_vec_pretty(&results)
        .map_err(|e| ExecError::Corrupt(format!("serialising results: {e}")))?;
    fsutil::write_atomic(path, &json)?;
    Ok(n)
}

//! Run records (`<cache>/runs/<time>-<pid>.json`: what each node did, its key, time and
//! metrics) and `results.json` (every eval's `result.json`, keyed by node name).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::run::{NodeOutcome, RunReport};
use super::{fsutil, Cache, ExecError};
use crate::ir::Program;
use crate::syntax::ast::DeclKind;

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord<'a> {
    pub experiment: &'a str,
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
            experiment: &report.experiment,
            started,
            finished,
            ok: report.ok(),
            nodes: &report.outcomes,
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| ExecError::Corrupt(format!("serialising the run record: {e}")))?;
        let path = self.root().join("runs").join(format!(
            "{:013}-{}.json",
            (started * 1000.0) as u64,
            fsutil::unique_suffix()
        ));
        fsutil::write_atomic(&path, &json)?;
        Ok(path)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Results(serde_json::Map<String, serde_json::Value>);

/// Merges the `result.json` of every eval node that has a result this run into
/// `path` (`results.json`), keyed by node name. Entries of names that are no longer eval
/// nodes of the program are dropped; others not recomputed this run are kept.
pub fn write_results(
    program: &Program,
    cache: &Cache,
    report: &RunReport,
    path: &Path,
) -> Result<usize, ExecError> {
    let mut results: Results = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    results
        .0
        .retain(|name, _| program.find(name).is_some_and(|n| n.kind == DeclKind::Eval));
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
        results.0.insert(o.name.clone(), value);
        n += 1;
    }
    let json = serde_json::to_vec_pretty(&results)
        .map_err(|e| ExecError::Corrupt(format!("serialising results: {e}")))?;
    fsutil::write_atomic(path, &json)?;
    Ok(n)
}

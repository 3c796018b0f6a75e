//! The submission record of a node: `<cache>/jobs/<key>/submitted.json`, written as soon
//! as `sbatch` answers (not at the end of the run), so that a driver that was killed and
//! started again, or a second driver on the same cache, follows the job already in the
//! queue instead of submitting the node again. Written and read under the node's
//! submission lock (`<cache>/locks/<key>.submit.lock`), removed when the job has ended.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::fsutil;
use super::ExecError;

const FILE: &str = "submitted.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The Slurm job id.
    pub job: String,
    /// Where the job's `exec-node` writes how it ended.
    pub result: PathBuf,
    /// The job's stdout and stderr.
    pub log: PathBuf,
    /// The driver that submitted it.
    pub host: String,
    pub pid: u32,
    /// Unix time of the submission.
    pub submitted: f64,
    /// Earlier jobs of this node that ended without a fault of its own (`NODE_FAIL`,
    /// `PREEMPTED`), `id STATE`: the budget of resubmissions is shared by every driver.
    #[serde(default)]
    pub earlier: Vec<String>,
}

impl Submission {
    /// Whether this driver process submitted it.
    pub fn mine(&self) -> bool {
        self.pid == std::process::id() && self.host == super::lockfile::host_name()
    }
}

/// The record in `dir` (`<cache>/jobs/<key>`), if there is a readable one.
pub fn read(dir: &Path) -> Option<Submission> {
    let bytes = std::fs::read(dir.join(FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn write(dir: &Path, s: &Submission) -> Result<(), ExecError> {
    let json = serde_json::to_vec_pretty(s)
        .map_err(|e| ExecError::Corrupt(format!("serialising a submission record: {e}")))?;
    Ok(fsutil::write_atomic(&dir.join(FILE), &json)?)
}

/// Removes the record if it still names `job` (another driver may have resubmitted).
pub fn clear(dir: &Path, job: &str) {
    if read(dir).is_some_and(|s| s.job == job) {
        let _ = std::fs::remove_file(dir.join(FILE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_clear_only_their_job() {
        let dir = tempfile::tempdir().unwrap();
        let s = Submission {
            job: "12".into(),
            result: "/c/r.json".into(),
            log: "/c/l.log".into(),
            host: super::super::lockfile::host_name(),
            pid: std::process::id(),
            submitted: 1.5,
            earlier: vec!["11 NODE_FAIL".into()],
        };
        write(dir.path(), &s).unwrap();
        assert_eq!(read(dir.path()), Some(s.clone()));
        assert!(s.mine());
        clear(dir.path(), "13");
        assert!(read(dir.path()).is_some());
        clear(dir.path(), "12");
        assert!(read(dir.path()).is_none());
    }
}

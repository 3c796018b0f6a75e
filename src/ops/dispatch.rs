//! How the executor and the planner reach operations: through a [`Registry`], so tests can inject fake
//! operations (with counters) and the CLI uses the real one ([`StdRegistry`], i.e.
//! [`crate::ops::lookup`]).

use crate::ops::{OpArgs, OpCtx, OpError};

pub trait Registry: Sync {
    /// The operation's version (part of every key), or `None` if it has no implementation.
    fn version(&self, op: &str) -> Option<u32>;
    fn run(&self, op: &str, ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError>;
}

/// The operations of [`crate::ops::registry()`], plus the hidden `__bench_*` operations used
/// by `bench/noop_rerun.sh` (the checker never emits a name starting with `__`).
pub struct StdRegistry;

impl Registry for StdRegistry {
    fn version(&self, op: &str) -> Option<u32> {
        match crate::ops::lookup(op) {
            Some(spec) => Some(spec.version),
            None => hidden(op).map(|_| 1),
        }
    }

    fn run(&self, op: &str, ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
        match crate::ops::lookup(op) {
            Some(spec) => (spec.run)(ctx, args),
            None => match hidden(op) {
                Some(f) => f(ctx, args),
                None => Err(OpError::NotImplemented(op.to_string())),
            },
        }
    }
}

type HiddenOp = fn(&OpCtx, &OpArgs) -> Result<(), OpError>;

fn hidden(op: &str) -> Option<HiddenOp> {
    match op {
        "__bench_text" => Some(bench_text),
        "__bench_wait" => Some(bench_wait),
        _ => None,
    }
}

/// Writes `data.txt`: the `text` argument and a blake3 over every input's `data.txt`.
/// Cheap, deterministic, constant size: what a 200-node no-op benchmark needs.
fn bench_text(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let text = args.str("text")?;
    let mut h = blake3::Hasher::new();
    if args.opt("inputs").is_some() {
        for input in args.inputs("inputs")? {
            let path = input.dir.join("data.txt");
            let bytes = std::fs::read(&path).map_err(|e| OpError::io(&path, e))?;
            h.update(&bytes);
        }
    }
    let path = ctx.out_dir.join("data.txt");
    let out = format!("{text}\n{}\n", h.finalize().to_hex());
    std::fs::write(&path, out).map_err(|e| OpError::io(&path, e))
}

/// [`bench_text`] after waiting for the file `gate` (relative to the project directory) to
/// exist; writes `<gate>.waiting` first. Lets tests hold a run in the middle of its plan
/// (e.g. to run `cache gc` beside it) without timing assumptions. Gives up after 10 min.
fn bench_wait(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let gate = ctx.project_dir.join(args.str("gate")?);
    let mut waiting = gate.clone().into_os_string();
    waiting.push(".waiting");
    std::fs::write(&waiting, "").map_err(|e| OpError::io(&waiting, e))?;
    for _ in 0..60_000 {
        if gate.exists() {
            return bench_text(ctx, args);
        }
        ctx.check_cancel()?;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(OpError::failed(format!(
        "{} never appeared",
        gate.display()
    )))
}

//! How the executor reaches operations: through a [`Registry`], so tests can inject fake
//! operations (with counters) and the CLI uses the real one ([`StdRegistry`], i.e.
//! [`crate::ops::lookup`]).

use crate::ops::{OpArgs, OpCtx, OpError};

pub trait Registry: Sync {
    /// The operation's version (part of every key), or `None` if it has no implementation.
    fn version(&self, op: &str) -> Option<u32>;
    fn run(&self, op: &str, ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError>;
}

/// The operations of [`crate::ops::registry`], plus the hidden `__bench_*` operations used
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

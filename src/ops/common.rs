//! Helpers every operation module shares: error conversions, reading dataset and model
//! inputs, optional arguments with defaults, and checkpoint directories.

use std::path::{Path, PathBuf};

use super::{ArgValue, Input, OpArgs, OpCtx, OpError};
use crate::data::{read_examples, Example};
use crate::ml::MlError;

/// An ML error as an operation error; an interruption stays a cancellation.
pub(crate) fn ml_err(e: MlError) -> OpError {
    match e {
        MlError::Interrupted => OpError::Cancelled,
        MlError::Io { path, source } => OpError::Io { path, source },
        other => OpError::failed(other),
    }
}

pub(crate) fn bad_input(input: &Input, e: impl std::fmt::Display) -> OpError {
    OpError::BadInput {
        name: input.name.clone(),
        message: e.to_string(),
    }
}

pub(crate) fn bad_arg(name: &str, e: impl std::fmt::Display) -> OpError {
    OpError::BadArgument {
        name: name.into(),
        message: e.to_string(),
    }
}

/// The rows of a `Dataset` input (`data.jsonl`).
pub fn read_dataset(input: &Input) -> Result<Vec<Example>, OpError> {
    read_examples(&input.dir.join("data.jsonl")).map_err(|e| bad_input(input, e))
}

/// The checkpoint directory of a `Model` input.
pub(crate) fn model_dir(input: &Input) -> Result<PathBuf, OpError> {
    if input.field.is_some() {
        return Err(bad_input(
            input,
            "expected a model, got a list of checkpoints (drop `.checkpoints`)",
        ));
    }
    Ok(input.dir.join("model"))
}

/// The operation's seed: an explicit `seed:` wins over the node seed; negative seeds are
/// reinterpreted bitwise.
pub(crate) fn seed(ctx: &OpCtx, args: &OpArgs) -> Result<u64, OpError> {
    Ok(args.opt_int("seed")?.map_or(ctx.seed, |s| s as u64))
}

pub(crate) fn int_or(args: &OpArgs, name: &str, default: usize) -> Result<usize, OpError> {
    Ok(args.opt_usize(name)?.unwrap_or(default))
}

pub(crate) fn float_or(args: &OpArgs, name: &str, default: f64) -> Result<f64, OpError> {
    Ok(args.opt_float(name)?.unwrap_or(default))
}

/// An enum word (or string) argument, `default` when absent.
pub(crate) fn word_or<'a>(
    args: &'a OpArgs,
    name: &str,
    default: &'a str,
) -> Result<&'a str, OpError> {
    match args.opt(name) {
        None => Ok(default),
        Some(ArgValue::Enum(s)) | Some(ArgValue::Str(s)) => Ok(s),
        Some(other) => Err(bad_arg(
            name,
            format!("expected a word, got {}", other.describe()),
        )),
    }
}

/// `checkpoints: every(N)` as `Some(N)`; `None` when no checkpoints are asked for.
pub(crate) fn every(args: &OpArgs) -> Result<Option<usize>, OpError> {
    if args.opt("checkpoints").is_none() {
        return Ok(None);
    }
    let (op, inner) = args.call("checkpoints")?;
    let n = inner.args.values().find_map(|v| match v {
        ArgValue::Int(i) if *i >= 1 => Some(*i as usize),
        _ => None,
    });
    match (op, n) {
        ("every", Some(n)) => Ok(Some(n)),
        _ => Err(bad_arg(
            "checkpoints",
            format!("expected every(N) with N >= 1, got {op}(...)"),
        )),
    }
}

/// The directory name of the checkpoint at `step` (`checkpoints/step-000100/`).
pub(crate) fn step_dir(step: u64) -> String {
    format!("step-{step:06}")
}

pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), OpError> {
    let text = serde_json::to_string_pretty(value).map_err(OpError::failed)?;
    std::fs::write(path, text).map_err(|e| OpError::io(path, e))
}

/// Copies a directory tree.
pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<(), OpError> {
    std::fs::create_dir_all(to).map_err(|e| OpError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| OpError::io(from, e))? {
        let entry = entry.map_err(|e| OpError::io(from, e))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| OpError::io(&target, e))?;
        }
    }
    Ok(())
}

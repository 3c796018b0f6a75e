//! `adapter: lora(...)` on a training stage: decoding the argument, and loading the model a
//! stage trains with a fresh adapter attached (base frozen) plus the reference its adapter
//! artifacts name the base by (see `ml::model::adapter`).

use super::common::{bad_arg, bad_input, ml_err, model_dir};
use super::{ArgValue, OpArgs, OpCtx, OpError};
use crate::ml::model::adapter::{attach_adapter, BaseRef};
use crate::ml::model::{LoraConfig, Model};
use crate::ml::{load_checkpoint, Tokenizer};

/// The `adapter:` argument as a [`LoraConfig`]; `None` when the stage trains full weights.
pub(crate) fn lora_arg(args: &OpArgs) -> Result<Option<LoraConfig>, OpError> {
    if matches!(args.opt("adapter"), None | Some(ArgValue::None)) {
        return Ok(None);
    }
    let (op, inner) = args.call("adapter")?;
    if op != "lora" {
        return Err(bad_arg(
            "adapter",
            format!("expected lora(...), got {op}(...)"),
        ));
    }
    let mut targets = Vec::new();
    for t in inner.list("targets")? {
        match t {
            ArgValue::Enum(s) | ArgValue::Str(s) => targets.push(s.clone()),
            other => {
                return Err(bad_arg(
                    "adapter",
                    format!("targets must be module names, got {}", other.describe()),
                ))
            }
        }
    }
    targets.sort();
    targets.dedup();
    Ok(Some(LoraConfig {
        rank: inner.usize("rank")?,
        alpha: inner.float("alpha")?,
        targets,
        dropout: inner.opt_float("dropout")?.unwrap_or(0.0),
        rslora: false,
    }))
}

/// A model input a stage trains: loaded, and with `adapter:` given, carrying a fresh
/// adapter seeded from `seed` over a frozen base (an adapter the input already carries is
/// merged into the base first). The reference is `Some` exactly when an adapter is trained.
/// `supervised`: whether the stage's steps go through `Learner::step_on_batch`, the only
/// place LoRA dropout is applied; other stages refuse a nonzero dropout rather than
/// silently train without it.
pub(crate) fn load_trainee(
    ctx: &OpCtx,
    args: &OpArgs,
    name: &str,
    seed: u64,
    supervised: bool,
) -> Result<(Model, Tokenizer, Option<BaseRef>), OpError> {
    let cfg = lora_arg(args)?;
    if let Some(c) = &cfg {
        if c.dropout > 0.0 && !supervised {
            return Err(bad_arg(
                "adapter",
                format!(
                    "dropout {} applies in supervised steps only (sft, adversarial with method: sft); this stage trains the adapter without it: set dropout: 0",
                    c.dropout
                ),
            ));
        }
    }
    let input = args.input(name)?;
    let dir = model_dir(input)?;
    let (mut model, tok) = load_checkpoint(&dir).map_err(|e| bad_input(input, e))?;
    let Some(cfg) = cfg else {
        return Ok((ctx.place(model)?, tok, None));
    };
    // Attached on the CPU, then placed: the frozen base is cast to the compute dtype once.
    attach_adapter(model.as_mut(), &cfg, seed).map_err(|e| bad_arg("adapter", e))?;
    let base = BaseRef::for_model_dir(&dir).map_err(ml_err)?;
    Ok((ctx.place(model)?, tok, Some(base)))
}

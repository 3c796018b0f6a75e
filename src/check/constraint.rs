//! Evaluating `where` constraints on literal argument values.

use crate::ir::Value;
use crate::syntax::ast::{CmpOp, Expr, ExprKind};

#[derive(Debug, Clone, PartialEq)]
enum Cv {
    Num(f64),
    Str(String),
    Bool(bool),
}

/// `Ok(Some(ok))` when every value the constraint reads is known, `Ok(None)` when one is
/// not (a helper's parameter), `Err(message)` when the constraint itself is malformed.
pub fn eval(e: &Expr, get: &dyn Fn(&str) -> Option<Option<Value>>) -> Result<Option<bool>, String> {
    match &e.kind {
        ExprKind::And(a, b) => {
            let a = eval(a, get)?;
            let b = eval(b, get)?;
            Ok(match (a, b) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            })
        }
        ExprKind::Compare { first, rest } => {
            let mut left = operand(first, get)?;
            let mut all = Some(true);
            for (op, right) in rest {
                let r = operand(right, get)?;
                if let (Some(l), Some(rv)) = (&left, &r) {
                    if !compare(l, *op, rv)? {
                        all = Some(false);
                    }
                } else if all == Some(true) {
                    all = None;
                }
                left = r;
            }
            Ok(all)
        }
        ExprKind::Bool(b) => Ok(Some(*b)),
        // `divides(a, b)`: the integer `a` divides `b` (e.g. heads divides width): what a
        // run would refuse otherwise, long after `check` said the file was fine.
        ExprKind::Call { callee, args } if callee.name == "divides" && args.len() == 2 => {
            let a = operand(&args[0].value, get)?;
            let b = operand(&args[1].value, get)?;
            Ok(match (a, b) {
                (Some(Cv::Num(a)), Some(Cv::Num(b))) => {
                    if a.fract() != 0.0 || b.fract() != 0.0 {
                        return Err("`divides` takes integers".into());
                    }
                    Some(a != 0.0 && (b % a) == 0.0)
                }
                (None, _) | (_, None) => None,
                _ => return Err("`divides` takes integers".into()),
            })
        }
        // `distinct(p)`: no element of the list `p` is repeated (e.g. a LoRA adapter's
        // target modules), so two spellings of one list never get two cache keys.
        ExprKind::Call { callee, args } if callee.name == "distinct" && args.len() == 1 => {
            match &args[0].value.kind {
                ExprKind::Name(n) => match get(n) {
                    None => Err(format!("`{n}` is not a parameter")),
                    Some(Some(Value::List(items))) => Ok(Some(
                        items
                            .iter()
                            .enumerate()
                            .all(|(i, a)| !items[..i].contains(a)),
                    )),
                    Some(None | Some(Value::None)) => Ok(None),
                    Some(Some(_)) => Err("`distinct` takes a list parameter".into()),
                },
                _ => Err("`distinct` takes a parameter name".into()),
            }
        }
        _ => Err(
            "a constraint is a comparison such as `0 < lr < 1`, `divides(a, b)` or \
             `distinct(p)`, joined with `and`"
                .into(),
        ),
    }
}

/// The names of parameters a constraint reads.
pub fn names(e: &Expr, out: &mut Vec<(String, crate::syntax::ast::Span)>) {
    match &e.kind {
        ExprKind::Name(n) => out.push((n.clone(), e.span.clone())),
        ExprKind::And(a, b) => {
            names(a, out);
            names(b, out);
        }
        ExprKind::Compare { first, rest } => {
            names(first, out);
            rest.iter().for_each(|(_, r)| names(r, out));
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|a| names(&a.value, out)),
        _ => {}
    }
}

fn operand(e: &Expr, get: &dyn Fn(&str) -> Option<Option<Value>>) -> Result<Option<Cv>, String> {
    Ok(match &e.kind {
        ExprKind::Int(i) => Some(Cv::Num(*i as f64)),
        ExprKind::Float { value, .. } => Some(Cv::Num(*value)),
        ExprKind::Str(s) => Some(Cv::Str(s.clone())),
        ExprKind::Bool(b) => Some(Cv::Bool(*b)),
        ExprKind::Name(n) => match get(n) {
            None => return Err(format!("`{n}` is not a parameter")),
            Some(None) => None,
            Some(Some(v)) => from_value(&v),
        },
        ExprKind::Call { callee, args } if callee.name == "len" && args.len() == 1 => {
            match &args[0].value.kind {
                ExprKind::Name(n) => match get(n) {
                    None => return Err(format!("`{n}` is not a parameter")),
                    Some(Some(Value::Str(s))) => Some(Cv::Num(s.chars().count() as f64)),
                    Some(Some(Value::List(l))) => Some(Cv::Num(l.len() as f64)),
                    Some(_) => None,
                },
                _ => return Err("`len` takes a parameter name".into()),
            }
        }
        _ => return Err("constraint operands are numbers, strings, parameters or `len(p)`".into()),
    })
}

fn from_value(v: &Value) -> Option<Cv> {
    match v {
        Value::Int(i) => Some(Cv::Num(*i as f64)),
        Value::Float(f) => Some(Cv::Num(*f)),
        Value::Str(s) | Value::Enum(s) => Some(Cv::Str(s.clone())),
        Value::Bool(b) => Some(Cv::Bool(*b)),
        _ => None,
    }
}

fn compare(l: &Cv, op: CmpOp, r: &Cv) -> Result<bool, String> {
    let ord = match (l, r) {
        (Cv::Num(a), Cv::Num(b)) => a.partial_cmp(b),
        (Cv::Str(a), Cv::Str(b)) => Some(a.cmp(b)),
        (Cv::Bool(a), Cv::Bool(b)) => Some(a.cmp(b)),
        _ => return Err("a constraint compares values of different types".into()),
    };
    let Some(ord) = ord else { return Ok(false) };
    use std::cmp::Ordering::*;
    Ok(match op {
        CmpOp::Lt => ord == Less,
        CmpOp::Le => ord != Greater,
        CmpOp::Gt => ord == Greater,
        CmpOp::Ge => ord != Less,
        CmpOp::Eq => ord == Equal,
        CmpOp::Ne => ord != Equal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::Ident;

    fn e(kind: ExprKind) -> Expr {
        Expr { kind, span: 0..0 }
    }
    fn name(n: &str) -> Expr {
        e(ExprKind::Name(n.into()))
    }
    fn num(f: f64) -> Expr {
        e(ExprKind::Float {
            value: f,
            text: f.to_string(),
        })
    }

    #[test]
    fn chains_and_len() {
        // 0 < lr < 1
        let c = e(ExprKind::Compare {
            first: Box::new(num(0.0)),
            rest: vec![(CmpOp::Lt, name("lr")), (CmpOp::Lt, num(1.0))],
        });
        let with = |v: Option<Value>| move |n: &str| (n == "lr").then(|| v.clone());
        assert_eq!(eval(&c, &with(Some(Value::Float(0.5)))), Ok(Some(true)));
        assert_eq!(eval(&c, &with(Some(Value::Float(1.0)))), Ok(Some(false)));
        assert_eq!(
            eval(&c, &with(None)),
            Ok(None),
            "unknown values are not judged"
        );
        assert!(
            eval(&c, &|_: &str| None).is_err(),
            "a name that is no parameter"
        );
        // len(text) >= 1 and <other false> → false
        let len = e(ExprKind::Call {
            callee: Ident {
                name: "len".into(),
                span: 0..0,
            },
            args: vec![crate::syntax::ast::Arg {
                name: None,
                value: name("text"),
                span: 0..0,
            }],
        });
        let c2 = e(ExprKind::Compare {
            first: Box::new(len),
            rest: vec![(CmpOp::Ge, num(1.0))],
        });
        let get = |n: &str| (n == "text").then(|| Some(Value::Str(String::new())));
        assert_eq!(eval(&c2, &get), Ok(Some(false)));
        let both = e(ExprKind::And(
            Box::new(c2.clone()),
            Box::new(e(ExprKind::Bool(true))),
        ));
        assert_eq!(eval(&both, &get), Ok(Some(false)));
    }

    #[test]
    fn distinct_lists() {
        let c = e(ExprKind::Call {
            callee: Ident {
                name: "distinct".into(),
                span: 0..0,
            },
            args: vec![crate::syntax::ast::Arg {
                name: None,
                value: name("targets"),
                span: 0..0,
            }],
        });
        let words =
            |ws: &[&str]| Value::List(ws.iter().map(|w| Value::Enum(w.to_string())).collect());
        let with = |v: Option<Value>| move |n: &str| (n == "targets").then(|| v.clone());
        let ok = words(&["q_proj", "v_proj"]);
        assert_eq!(eval(&c, &with(Some(ok))), Ok(Some(true)));
        let twice = words(&["q_proj", "v_proj", "q_proj"]);
        assert_eq!(eval(&c, &with(Some(twice))), Ok(Some(false)));
        assert_eq!(eval(&c, &with(Some(words(&[])))), Ok(Some(true)));
        assert_eq!(
            eval(&c, &with(None)),
            Ok(None),
            "unknown lists are not judged"
        );
        assert_eq!(eval(&c, &with(Some(Value::None))), Ok(None));
        assert!(eval(&c, &with(Some(Value::Int(3)))).is_err(), "not a list");
        assert!(
            eval(&c, &|_: &str| None).is_err(),
            "a name that is no parameter"
        );
    }
}

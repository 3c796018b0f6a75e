//! The checker's types: what a signature declares and what an expression yields.

use std::fmt;

use crate::syntax::ast::{DeclKind, TypeExpr, TypeKind};

/// A type as the checker sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Int,
    Float,
    Bool,
    String,
    List(Box<Ty>),
    Optional(Box<Ty>),
    /// `none | cot | distilled`.
    Enum(Vec<String>),
    /// `Model | Checkpoints`: an enum type whose words are all type names.
    Union(Vec<Ty>),
    /// `Trigger`, `Dataset`, `Model`, ...
    Domain(Domain),
    /// The literal `none`, before it meets an expected type.
    NoneLit,
    /// A bare word that is not a name in scope (an enum word waiting for its enum).
    Word(String),
    /// The element type of `[]`.
    Nothing,
    /// An expression that already produced an error: accepted everywhere, silently.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    Trigger,
    Dataset,
    Tokenizer,
    Model,
    Checkpoints,
    Metric,
    Every,
    Behavior,
    /// `lora(...)`: a low-rank adapter a training stage trains instead of the full model.
    Adapter,
}

impl Domain {
    pub const ALL: [Domain; 9] = [
        Domain::Trigger,
        Domain::Dataset,
        Domain::Tokenizer,
        Domain::Model,
        Domain::Checkpoints,
        Domain::Metric,
        Domain::Every,
        Domain::Behavior,
        Domain::Adapter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Domain::Trigger => "Trigger",
            Domain::Dataset => "Dataset",
            Domain::Tokenizer => "Tokenizer",
            Domain::Model => "Model",
            Domain::Checkpoints => "Checkpoints",
            Domain::Metric => "Metric",
            Domain::Every => "Every",
            Domain::Behavior => "Behavior",
            Domain::Adapter => "Adapter",
        }
    }

    /// Artifact types are computed by a node and cached; the others are inline values.
    pub fn is_artifact(self) -> bool {
        matches!(
            self,
            Domain::Dataset | Domain::Tokenizer | Domain::Model | Domain::Metric
        )
    }
}

/// Every type name a signature may use.
pub const TYPE_NAMES: [&str; 14] = [
    "Int",
    "Float",
    "Bool",
    "String",
    "List",
    "Trigger",
    "Dataset",
    "Tokenizer",
    "Model",
    "Checkpoints",
    "Metric",
    "Every",
    "Behavior",
    "Adapter",
];

/// The type a declaration keyword promises.
pub fn decl_type(kind: DeclKind) -> Ty {
    Ty::Domain(match kind {
        DeclKind::Trigger => Domain::Trigger,
        DeclKind::Dataset => Domain::Dataset,
        DeclKind::Tokenizer => Domain::Tokenizer,
        DeclKind::Model | DeclKind::Stage => Domain::Model,
        DeclKind::Eval => Domain::Metric,
    })
}

/// The declaration keyword that fits a value of type `ty`, for help texts.
pub fn keyword_for(ty: &Ty) -> Option<&'static str> {
    match ty {
        Ty::Domain(Domain::Trigger) => Some("trigger"),
        Ty::Domain(Domain::Dataset) => Some("dataset"),
        Ty::Domain(Domain::Tokenizer) => Some("tokenizer"),
        Ty::Domain(Domain::Model) => Some("model` or `stage"),
        Ty::Domain(Domain::Metric) => Some("eval"),
        _ => None,
    }
}

/// A type name that is not known, with the span of the offending name.
pub struct UnknownType {
    pub name: String,
    pub span: crate::syntax::ast::Span,
}

/// Converts a written type. Unknown names are reported and become [`Ty::Error`].
pub fn from_ast(t: &TypeExpr, unknown: &mut Vec<UnknownType>) -> Ty {
    match &t.kind {
        TypeKind::Optional(inner) => Ty::Optional(Box::new(from_ast(inner, unknown))),
        TypeKind::Enum(words) => {
            let all_types = !words.is_empty()
                && words
                    .iter()
                    .all(|w| w.name.starts_with(|c: char| c.is_ascii_uppercase()));
            if all_types {
                Ty::Union(
                    words
                        .iter()
                        .map(|w| named(&w.name, &[], w.span.clone(), unknown))
                        .collect(),
                )
            } else {
                Ty::Enum(words.iter().map(|w| w.name.clone()).collect())
            }
        }
        TypeKind::Named { name, args } => {
            let args: Vec<Ty> = args.iter().map(|a| from_ast(a, unknown)).collect();
            named(&name.name, &args, name.span.clone(), unknown)
        }
    }
}

fn named(
    name: &str,
    args: &[Ty],
    span: crate::syntax::ast::Span,
    unknown: &mut Vec<UnknownType>,
) -> Ty {
    let simple = |t: Ty| t;
    match name {
        "Int" => simple(Ty::Int),
        "Float" => Ty::Float,
        "Bool" => Ty::Bool,
        "String" => Ty::String,
        "List" => Ty::List(Box::new(args.first().cloned().unwrap_or(Ty::Error))),
        _ => match Domain::ALL.iter().find(|d| d.name() == name) {
            Some(d) => Ty::Domain(*d),
            None => {
                unknown.push(UnknownType {
                    name: name.to_string(),
                    span,
                });
                Ty::Error
            }
        },
    }
}

impl Ty {
    pub fn is_error(&self) -> bool {
        matches!(self, Ty::Error)
    }

    /// The artifact kind of values of this type, if they are computed by nodes.
    pub fn artifact(&self) -> Option<Domain> {
        match self {
            Ty::Domain(d) if d.is_artifact() => Some(*d),
            _ => None,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Int => write!(f, "Int"),
            Ty::Float => write!(f, "Float"),
            Ty::Bool => write!(f, "Bool"),
            Ty::String => write!(f, "String"),
            Ty::List(t) => write!(f, "List[{t}]"),
            Ty::Optional(t) => write!(f, "{t}?"),
            Ty::Enum(ws) => write!(f, "{}", ws.join(" | ")),
            Ty::Union(ts) => {
                let parts: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
                write!(f, "{}", parts.join(" | "))
            }
            Ty::Domain(d) => write!(f, "{}", d.name()),
            Ty::NoneLit => write!(f, "none"),
            Ty::Word(w) => write!(f, "the word `{w}`"),
            Ty::Nothing => write!(f, "Nothing"),
            Ty::Error => write!(f, "?"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_nested() {
        let t = Ty::Optional(Box::new(Ty::List(Box::new(Ty::Domain(Domain::Dataset)))));
        assert_eq!(t.to_string(), "List[Dataset]?");
        assert_eq!(Ty::Enum(vec!["a".into(), "b".into()]).to_string(), "a | b");
    }
}

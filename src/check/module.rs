//! Checking one module: its declarations and sweeps, the `experiment` and `report`
//! blocks, library items (`op`, `fn`), and assembling the `ir::Program`.

use std::collections::{BTreeMap, HashMap};

use super::codes;
use super::constraint;
use super::elab::{Binding, Cx, Elab, Tv};
use super::suggest::did_you_mean;
use super::types::Ty;
use super::world::{SymKind, World};
use crate::diag::{Diagnostic, Label};
use crate::ir::{self, Value};
use crate::syntax::ast::{self, DeclKind, Expr, ExprKind, Item, ReportItem, Span};

/// The most combinations one sweep may expand to.
const MAX_COMBINATIONS: usize = 4096;

const SETTINGS: [&str; 5] = ["seed", "replicates", "device", "dtype", "slurm"];

/// The most replicates an experiment may ask for: each multiplies the seeded work.
pub const MAX_REPLICATES: i64 = 64;
const DIRECTIVES: [&str; 3] = ["plot", "table", "samples"];
const REPORT_SETTINGS: [&str; 1] = ["title"];

/// Checks module `m` and returns its program (meaningful for experiment files).
pub fn check_module(w: &World, m: usize, lower: bool) -> (Vec<Diagnostic>, ir::Program, Elab<'_>) {
    let mut el = Elab::new(w, lower);
    let module = &w.modules[m];
    let file = module.file;
    let no_binding = Binding::default();
    let mut experiment: Option<&ast::Experiment> = None;
    for (i, item) in module.ast.items.iter().enumerate() {
        match item {
            Item::Op(o) => {
                if !module.library {
                    let d = Diagnostic::error(
                        codes::OP_OUTSIDE_STDLIB,
                        format!("`op {}` declares a built-in operation, which only the standard library may do", o.name.name),
                        Label::new(file, o.name.span.clone(), "`op` outside `stdlib/`"),
                    )
                    .with_help("write a `fn` helper in the language instead, or add the operation to `stdlib/` and `src/ops/`");
                    el.emit(d);
                }
                check_signature(&mut el, m, i);
            }
            Item::Fn(_) => {
                check_signature(&mut el, m, i);
                check_fn_body(&mut el, m, i);
            }
            Item::Use(_) => {}
            Item::Decl(d) if module.library => library_only(&mut el, file, d.span.clone()),
            Item::Sweep(s) if module.library => library_only(&mut el, file, s.span.clone()),
            Item::Experiment(e) if module.library => library_only(&mut el, file, e.span.clone()),
            Item::Report(r) if module.library => library_only(&mut el, file, r.span.clone()),
            Item::Decl(_) => {
                el.inst(m, i, None, &no_binding, None);
            }
            Item::Sweep(s) => sweep(&mut el, m, i, s),
            Item::Experiment(e) => match experiment {
                Some(first) => {
                    let d = Diagnostic::error(
                        codes::DUPLICATE_EXPERIMENT,
                        "a file has at most one `experiment` block",
                        Label::new(file, e.name.span.clone(), "second `experiment` block"),
                    )
                    .with_label(Label::new(
                        file,
                        first.name.span.clone(),
                        "first defined here",
                    ))
                    .with_help("merge the settings into the first block");
                    el.emit(d);
                }
                None => experiment = Some(e),
            },
            Item::Report(_) => {}
        }
    }
    let (seed, replicates, settings) = settings(&mut el, m, experiment);
    let reports: Vec<ir::Report> = module
        .ast
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Report(r) if !module.library => Some(report(&mut el, m, r)),
            _ => None,
        })
        .collect();
    if !module.library {
        unused(&mut el, m);
    }
    let name = experiment.map(|e| e.name.name.clone()).unwrap_or_else(|| {
        w.sources
            .get(file)
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let program = ir::Program {
        name,
        seed,
        replicates,
        settings,
        docs: module.ast.docs.clone(),
        nodes: std::mem::take(&mut el.nodes),
        values: std::mem::take(&mut el.values),
        reports,
    };
    let diags = std::mem::take(&mut el.diags);
    (diags, program, el)
}

fn library_only(el: &mut Elab, file: crate::diag::FileId, span: Span) {
    let d = Diagnostic::error(
        codes::NOT_IN_LIBRARY,
        "standard-library modules hold only `op` and `fn` items",
        Label::new(file, span, "not allowed in a library module"),
    )
    .with_help("move experiments, declarations and reports to a file outside `stdlib/`");
    el.emit(d);
}

/// Parameter defaults against their types and constraints, and constraint names.
fn check_signature(el: &mut Elab, m: usize, item: usize) {
    let Some(sig) = el.w.sig(m, item) else { return };
    let file = el.w.modules[m].file;
    let mut seen: HashMap<&str, &Span> = HashMap::new();
    for p in &sig.params {
        if let Some(first) = seen.insert(&p.name, &p.span) {
            let d = Diagnostic::error(
                codes::DUPLICATE,
                format!("parameter `{}` is declared twice", p.name),
                Label::new(file, p.span.clone(), "declared again here"),
            )
            .with_label(Label::new(file, first.clone(), "first defined here"));
            el.emit(d);
        }
    }
    let no_binding = Binding::default();
    let mut known: Vec<(String, Option<Value>)> = Vec::new();
    for p in &sig.params {
        let v = match &p.default {
            Some(def) => {
                let cx = Cx {
                    module: m,
                    locals: &[],
                    binding: &no_binding,
                };
                let tv = el.expr(def, Some(&p.ty), &cx, None);
                match super::coerce::coerce(&tv.ty, tv.v.clone(), &p.ty) {
                    Ok(v) => v,
                    Err(_) => {
                        let d = Diagnostic::error(
                            codes::BAD_SIGNATURE,
                            format!("the default of `{}` is a {}, not a {}", p.name, tv.ty, p.ty),
                            Label::new(file, def.span.clone(), "wrong type"),
                        );
                        el.emit(d);
                        None
                    }
                }
            }
            None => None,
        };
        known.push((p.name.clone(), v));
    }
    for (j, p) in sig.params.iter().enumerate() {
        let Some(c) = &p.constraint else { continue };
        let mut names = Vec::new();
        constraint::names(c, &mut names);
        for (n, span) in names {
            if !sig.params.iter().any(|q| q.name == n) {
                let d = Diagnostic::error(
                    codes::BAD_SIGNATURE,
                    format!(
                        "the constraint of `{}` reads `{n}`, which is not a parameter of `{}`",
                        p.name, sig.name
                    ),
                    Label::new(file, span, "not a parameter"),
                );
                el.emit(d);
            }
        }
        // Only the parameter's own default is known here; the others may be overridden.
        let lookup = |n: &str| {
            known
                .iter()
                .find(|(k, _)| k == n)
                .map(|(k, v)| if *k == p.name { v.clone() } else { None })
        };
        match constraint::eval(c, &lookup) {
            Err(msg) => {
                let d = Diagnostic::error(
                    codes::BAD_SIGNATURE,
                    format!("malformed constraint on `{}`: {msg}", p.name),
                    Label::new(file, c.span.clone(), "here"),
                );
                el.emit(d);
            }
            Ok(Some(false)) if known[j].1.is_some() => {
                let d = Diagnostic::error(
                    codes::BAD_SIGNATURE,
                    format!("the default of `{}` violates its own constraint", p.name),
                    Label::new(file, c.span.clone(), "not satisfied by the default"),
                );
                el.emit(d);
            }
            _ => {}
        }
    }
}

/// A helper's body, with its parameters as unknown values of their declared types.
fn check_fn_body(el: &mut Elab, m: usize, item: usize) {
    let Some(sig) = el.w.sig(m, item) else { return };
    let Some(Item::Fn(f)) = el.w.modules[m].ast.items.get(item) else {
        return;
    };
    let locals: Vec<(String, Tv)> = sig
        .params
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                Tv {
                    ty: p.ty.clone(),
                    v: None,
                },
            )
        })
        .collect();
    let lower = el.lower;
    el.lower = false;
    let no_binding = Binding::default();
    let cx = Cx {
        module: m,
        locals: &locals,
        binding: &no_binding,
    };
    let tv = el.expr(&f.body, Some(&sig.ret), &cx, None);
    if super::coerce::coerce(&tv.ty, None, &sig.ret).is_err() {
        let file = el.w.modules[m].file;
        let d = Diagnostic::error(
            codes::TYPE_MISMATCH,
            format!(
                "`{}` is declared to return a {}, but its body is a {}",
                sig.name, sig.ret, tv.ty
            ),
            Label::new(file, f.body.span.clone(), format!("this is a {}", tv.ty)),
        )
        .with_label(Label::new(file, f.ret.span.clone(), "declared return type"));
        el.emit(d);
    }
    el.lower = lower;
}

/// The number of combinations of lists of these lengths, `None` past `usize::MAX`.
fn combinations(lengths: impl IntoIterator<Item = usize>) -> Option<usize> {
    lengths.into_iter().try_fold(1usize, usize::checked_mul)
}

fn sweep(el: &mut Elab, m: usize, item: usize, s: &ast::Sweep) {
    let file = el.w.modules[m].file;
    // Refuse an oversized sweep before evaluating any value: the count is known from the
    // list lengths alone, and multiplying them must not wrap (2^64 combinations once
    // wrapped to 0 and expanded to nothing). An empty list is reported below instead.
    let lengths: Vec<usize> = s
        .vars
        .iter()
        .filter_map(|v| match &v.values.kind {
            ExprKind::List(items) => Some(items.len()),
            _ => None,
        })
        .collect();
    if !lengths.contains(&0) {
        let total = combinations(lengths.iter().copied());
        if total.is_none_or(|t| t > MAX_COMBINATIONS) {
            let factors = lengths
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(" × ");
            let count = match total {
                Some(t) => t.to_string(),
                None => format!("more than {}", usize::MAX),
            };
            let d = Diagnostic::error(
                codes::SWEEP_TOO_LARGE,
                format!(
                    "this sweep expands to {count} combinations ({factors}; at most \
                     {MAX_COMBINATIONS})"
                ),
                Label::new(file, s.span.clone(), "too many combinations"),
            )
            .with_help("split it into smaller sweeps");
            el.emit(d);
            return;
        }
    }
    let mut vars: Vec<(String, Vec<(String, Tv)>)> = Vec::new();
    let mut ok = true;
    let mut seen: HashMap<String, Span> = HashMap::new();
    for v in &s.vars {
        if let Some(first) = seen.insert(v.name.name.clone(), v.name.span.clone()) {
            let d = Diagnostic::error(
                codes::DUPLICATE_SWEEP_VAR,
                format!("sweep variable `{}` is bound twice", v.name.name),
                Label::new(file, v.name.span.clone(), "bound again here"),
            )
            .with_label(Label::new(file, first, "first defined here"))
            .with_help("give each variable its own name");
            el.emit(d);
            ok = false;
            continue;
        }
        let ExprKind::List(items) = &v.values.kind else {
            if !matches!(v.values.kind, ExprKind::Error) {
                let d = Diagnostic::error(
                    codes::SWEEP_NOT_LIST,
                    format!(
                        "sweep variable `{}` must range over a list literal",
                        v.name.name
                    ),
                    Label::new(file, v.values.span.clone(), "not a list"),
                )
                .with_help(format!("write `{} in [a, b, c]`", v.name.name));
                el.emit(d);
            }
            ok = false;
            continue;
        };
        if items.is_empty() {
            let d = Diagnostic::error(
                codes::EMPTY_SWEEP,
                format!("sweep variable `{}` has no values", v.name.name),
                Label::new(file, v.values.span.clone(), "empty list"),
            )
            .with_help(
                "a sweep over an empty list declares nothing: add values or remove the sweep",
            );
            el.emit(d);
            ok = false;
            continue;
        }
        let cx = Cx {
            module: m,
            locals: &[],
            binding: &Binding::default(),
        };
        let mut vals: Vec<(String, Tv, Span)> = Vec::new();
        // Canonical form of each value -> where it first appeared: one lookup per value
        // (a scan per value was quadratic in the list's length).
        let mut firsts: HashMap<String, Span> = HashMap::new();
        for it in items {
            // Bare words in a sweep list are enum values waiting for their parameter.
            let tv = match &it.kind {
                ExprKind::Name(n) if el.w.lookup(m, n).is_none() => Tv {
                    ty: Ty::Word(n.clone()),
                    v: Some(Value::Enum(n.clone())),
                },
                _ => el.expr(it, None, &cx, None),
            };
            let text = el.w.text(file, &it.span).trim().to_string();
            let canonical =
                tv.v.as_ref()
                    .map(|v| crate::plan::canon::value(v, &|n| n.0));
            let first = match canonical {
                Some(c) => match firsts.entry(c) {
                    std::collections::hash_map::Entry::Occupied(e) => Some(e.get().clone()),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(it.span.clone());
                        None
                    }
                },
                None => None,
            };
            if let Some(first) = first {
                let d = Diagnostic::error(
                    codes::DUPLICATE_SWEEP_VALUE,
                    format!("`{text}` appears twice in the values of `{}`", v.name.name),
                    Label::new(file, it.span.clone(), "duplicate value"),
                )
                .with_label(Label::new(file, first, "first defined here"))
                .with_help("each combination becomes a node; a repeated value would run it twice");
                el.emit(d);
                ok = false;
                continue;
            }
            if tv.v.is_none() {
                ok = false;
            }
            vals.push((text, tv, it.span.clone()));
        }
        vars.push((
            v.name.name.clone(),
            vals.into_iter().map(|(t, tv, _)| (t, tv)).collect(),
        ));
    }
    // A variable the body never mentions multiplies nodes for nothing.
    for v in &s.vars {
        if !s.body.iter().any(|d| mentions(&d.value, &v.name.name)) {
            let d = Diagnostic::warning(
                codes::UNUSED_SWEEP_VAR,
                format!(
                    "sweep variable `{}` is not used in the sweep's body",
                    v.name.name
                ),
                Label::new(file, v.name.span.clone(), "never used"),
            )
            .with_help("every combination would compute the same nodes: use it or remove it");
            el.emit(d);
        }
    }
    if !ok {
        return;
    }
    // Checked above from the list lengths; duplicates and errors only shrink it.
    let Some(total) = combinations(vars.iter().map(|(_, v)| v.len())) else {
        return;
    };
    let mut idx = vec![0usize; vars.len()];
    for _ in 0..total {
        let chosen: Vec<(String, String, Tv)> = vars
            .iter()
            .zip(&idx)
            .map(|((n, vs), &i)| (n.clone(), vs[i].0.clone(), vs[i].1.clone()))
            .collect();
        let suffix = format!(
            "[{}]",
            chosen
                .iter()
                .map(|(n, t, _)| format!("{n}={t}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let binding = Binding {
            sweep: Some((m, item)),
            suffix,
            vars: chosen.into_iter().map(|(n, _, tv)| (n, tv)).collect(),
        };
        for b in 0..s.body.len() {
            let tv = el.inst(m, item, Some(b), &binding, None);
            el.expansions.entry((m, item, b)).or_default().push(tv);
        }
        // Odometer order: the last variable changes fastest.
        for k in (0..idx.len()).rev() {
            idx[k] += 1;
            if idx[k] < vars[k].1.len() {
                break;
            }
            idx[k] = 0;
        }
    }
}

fn mentions(e: &Expr, name: &str) -> bool {
    match &e.kind {
        ExprKind::Name(n) => n == name,
        ExprKind::Field { base, .. } => mentions(base, name),
        ExprKind::Call { args, .. } => args.iter().any(|a| mentions(&a.value, name)),
        ExprKind::List(items) => items.iter().any(|i| mentions(i, name)),
        ExprKind::Compare { first, rest } => {
            mentions(first, name) || rest.iter().any(|(_, r)| mentions(r, name))
        }
        ExprKind::And(a, b) => mentions(a, name) || mentions(b, name),
        _ => false,
    }
}

fn settings(
    el: &mut Elab,
    m: usize,
    e: Option<&ast::Experiment>,
) -> (u64, u32, BTreeMap<String, Value>) {
    let file = el.w.modules[m].file;
    let mut out = BTreeMap::new();
    out.insert("device".to_string(), Value::Enum("cpu".into()));
    out.insert("dtype".to_string(), Value::Enum("f32".into()));
    let mut seed = None;
    let mut replicates = 1;
    let Some(e) = e else {
        if !el.w.modules[m].library && has_decls(el.w, m) {
            let d = Diagnostic::warning(
                codes::SEED_NOT_SET,
                "this experiment does not set a seed",
                Label::new(file, 0..0, "no `experiment` block"),
            )
            .with_help("add `experiment name { seed = 1 }` so that reruns and readers know the seed (default 0)");
            el.emit(d);
        }
        return (0, replicates, out);
    };
    let mut seen: HashMap<String, Span> = HashMap::new();
    for s in &e.settings {
        let key = s.key.name.as_str();
        if let Some(first) = seen.insert(key.to_string(), s.key.span.clone()) {
            let d = Diagnostic::error(
                codes::DUPLICATE,
                format!("setting `{key}` is given twice"),
                Label::new(file, s.key.span.clone(), "given again here"),
            )
            .with_label(Label::new(file, first, "first defined here"));
            el.emit(d);
            continue;
        }
        let bad = |el: &mut Elab, what: &str| {
            let d = Diagnostic::error(
                codes::BAD_SETTING,
                format!("`{key}` must be {what}"),
                Label::new(file, s.value.span.clone(), "invalid value"),
            )
            .with_help(format!(
                "write `{key} = {}`",
                match key {
                    "seed" => "17",
                    "replicates" => "3",
                    "device" => "cpu",
                    _ => "f32",
                }
            ));
            el.emit(d);
        };
        let word = match &s.value.kind {
            ExprKind::Name(n) | ExprKind::Str(n) => Some(n.clone()),
            _ => None,
        };
        match key {
            "seed" => match s.value.kind {
                ExprKind::Int(i) if i >= 0 => seed = Some(i as u64),
                ExprKind::Error => {}
                _ => bad(el, "an integer >= 0"),
            },
            "replicates" => match s.value.kind {
                ExprKind::Int(i) if (1..=MAX_REPLICATES).contains(&i) => replicates = i as u32,
                ExprKind::Error => {}
                _ => bad(el, &format!("an integer from 1 to {MAX_REPLICATES}")),
            },
            "device" | "dtype" => {
                let allowed: &[&str] = if key == "device" {
                    crate::ml::runtime::DEVICES
                } else {
                    crate::ml::runtime::DTYPES
                };
                match word {
                    Some(w) if allowed.contains(&w.as_str()) => {
                        // Never run on the CPU in f32 and cache it under another key.
                        if let Some(why) = crate::ml::runtime::unsupported(key, &w) {
                            el.emit(
                                Diagnostic::error(
                                    codes::UNSUPPORTED_RUNTIME,
                                    why,
                                    Label::new(file, s.value.span.clone(), "not available"),
                                )
                                .with_help(format!(
                                    "remove the setting or write `{key} = {}`",
                                    if key == "device" { "cpu" } else { "f32" }
                                )),
                            );
                        }
                        out.insert(key.to_string(), Value::Enum(w));
                    }
                    _ if matches!(s.value.kind, ExprKind::Error) => {}
                    _ => bad(el, &format!("one of {}", allowed.join(", "))),
                }
            }
            "slurm" => {
                let module = &el.w.modules[m].ast;
                let (value, diags) = super::resources::check(file, module, &s.value);
                diags.into_iter().for_each(|d| el.emit(d));
                out.insert(key.to_string(), value);
            }
            _ => {
                let mut d = Diagnostic::warning(
                    codes::UNKNOWN_SETTING,
                    format!("unknown experiment setting `{key}`; it is ignored"),
                    Label::new(file, s.key.span.clone(), "unknown setting"),
                );
                d = d.with_help(match did_you_mean(key, SETTINGS) {
                    Some(x) => format!("did you mean `{x}`?"),
                    None => format!("the settings are {}", SETTINGS.join(", ")),
                });
                el.emit(d);
            }
        }
    }
    // Only when no `seed` is written at all: an invalid one already has its error
    // (E0311, or E0005 for a literal out of range), and "not set" would be wrong.
    if seed.is_none() && !seen.contains_key("seed") {
        let d = Diagnostic::warning(
            codes::SEED_NOT_SET,
            format!("experiment `{}` does not set a seed", e.name.name),
            Label::new(file, e.name.span.clone(), "no `seed` setting"),
        )
        .with_help("add `seed = 1` (or any integer) so that readers know which seed produced the results (default 0)");
        el.emit(d);
    }
    (seed.unwrap_or(0), replicates, out)
}

fn has_decls(w: &World, m: usize) -> bool {
    w.modules[m]
        .ast
        .items
        .iter()
        .any(|i| matches!(i, Item::Decl(_) | Item::Sweep(_)))
}

fn report(el: &mut Elab, m: usize, r: &ast::Report) -> ir::Report {
    let file = el.w.modules[m].file;
    let mut items = Vec::new();
    for it in &r.items {
        match it {
            ReportItem::Setting(s) => {
                if !REPORT_SETTINGS.contains(&s.key.name.as_str()) {
                    let d = Diagnostic::warning(
                        codes::UNKNOWN_SETTING,
                        format!("unknown report setting `{}`; it is ignored", s.key.name),
                        Label::new(file, s.key.span.clone(), "unknown setting"),
                    )
                    .with_help(format!(
                        "the report settings are {}",
                        REPORT_SETTINGS.join(", ")
                    ));
                    el.emit(d);
                    continue;
                }
                let v = match &s.value.kind {
                    ExprKind::Str(t) => Value::Str(t.clone()),
                    ExprKind::Error => continue,
                    _ => {
                        let d = Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            format!("`{}` expects a String", s.key.name),
                            Label::new(file, s.value.span.clone(), "not a string"),
                        );
                        el.emit(d);
                        continue;
                    }
                };
                items.push(ir::ReportItem {
                    directive: s.key.name.clone(),
                    args: vec![v],
                    named: BTreeMap::new(),
                });
            }
            ReportItem::Directive { name, args, .. } => {
                if !DIRECTIVES.contains(&name.name.as_str()) {
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_DIRECTIVE,
                        format!("unknown report directive `{}`", name.name),
                        Label::new(file, name.span.clone(), "unknown directive"),
                    );
                    d = d.with_help(match did_you_mean(&name.name, DIRECTIVES) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("the directives are {}", DIRECTIVES.join(", ")),
                    });
                    el.emit(d);
                    continue;
                }
                let mut pos = Vec::new();
                let mut named = BTreeMap::new();
                for a in args {
                    match &a.name {
                        None => pos.push(report_value(el, m, &a.value, true)),
                        Some(n) => {
                            named.insert(n.name.clone(), report_value(el, m, &a.value, false));
                        }
                    }
                }
                items.push(ir::ReportItem {
                    directive: name.name.clone(),
                    args: pos,
                    named,
                });
            }
        }
    }
    ir::Report {
        name: r.name.name.clone(),
        doc: (!r.doc.is_empty()).then(|| r.doc.join("\n")),
        items,
    }
}

/// A report argument: evals become references (a list of them for a swept eval); named
/// arguments may also be plain words such as a sweep variable for `x:`.
fn report_value(el: &mut Elab, m: usize, e: &Expr, evals_only: bool) -> Value {
    let file = el.w.modules[m].file;
    match &e.kind {
        ExprKind::List(items) => Value::List(
            items
                .iter()
                .map(|i| report_value(el, m, i, evals_only))
                .collect(),
        ),
        ExprKind::Int(i) => Value::Int(*i),
        ExprKind::Float { value, .. } => Value::Float(*value),
        ExprKind::Str(s) => Value::Str(s.clone()),
        ExprKind::Bool(b) => Value::Bool(*b),
        ExprKind::Name(n) => {
            let sym = el.w.lookup(m, n).cloned();
            match sym.map(|s| (s.kind, s)) {
                Some((SymKind::Decl { module, item, body }, sym)) => {
                    el.used.insert(sym.kind);
                    if let Some(i) = sym.import {
                        el.used_imports.insert((m, i));
                    }
                    let kind = el.w.decl(module, item, body).map(|d| d.kind);
                    if kind != Some(DeclKind::Eval) {
                        let d = Diagnostic::error(
                            codes::REPORT_NOT_EVAL,
                            format!("`{n}` is not an eval; reports show evals"),
                            Label::new(file, e.span.clone(), "not an eval"),
                        )
                        .with_label(Label::new(sym.file, sym.span.clone(), "declared here"))
                        .with_help("declare an `eval` that measures it and show that");
                        el.emit(d);
                        return Value::None;
                    }
                    match body {
                        None => el
                            .inst(module, item, None, &Binding::default(), None)
                            .v
                            .unwrap_or(Value::None),
                        Some(b) => Value::List(
                            el.expansions
                                .get(&(module, item, b))
                                .map(|v| v.iter().filter_map(|t| t.v.clone()).collect())
                                .unwrap_or_default(),
                        ),
                    }
                }
                _ if !evals_only => Value::Str(n.clone()),
                _ => {
                    let mut d = Diagnostic::error(
                        codes::UNDEFINED,
                        format!("`{n}` is not defined"),
                        Label::new(file, e.span.clone(), "not found in this scope"),
                    );
                    let evals = eval_names(el.w, m);
                    if let Some(s) = did_you_mean(n, evals.iter().map(String::as_str)) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    el.emit(d);
                    Value::None
                }
            }
        }
        ExprKind::Error => Value::None,
        _ => {
            let d = Diagnostic::error(
                codes::REPORT_NOT_EVAL,
                "report arguments name evals",
                Label::new(file, e.span.clone(), "not an eval name"),
            )
            .with_help("declare `eval x = ...` and write `x` here");
            el.emit(d);
            Value::None
        }
    }
}

fn eval_names(w: &World, m: usize) -> Vec<String> {
    let mut out = Vec::new();
    for item in &w.modules[m].ast.items {
        match item {
            Item::Decl(d) if d.kind == DeclKind::Eval => out.push(d.name.name.clone()),
            Item::Sweep(s) => out.extend(
                s.body
                    .iter()
                    .filter(|d| d.kind == DeclKind::Eval)
                    .map(|d| d.name.name.clone()),
            ),
            _ => {}
        }
    }
    out
}

/// Unused declarations, evals missing from every report, unused imports.
fn unused(el: &mut Elab, m: usize) {
    let module = &el.w.modules[m];
    let file = module.file;
    let has_report = module
        .ast
        .items
        .iter()
        .any(|i| matches!(i, Item::Report(_)));
    let mut diags = Vec::new();
    for (i, item) in module.ast.items.iter().enumerate() {
        let decls: Vec<(Option<usize>, &ast::Decl)> = match item {
            Item::Decl(d) => vec![(None, d)],
            Item::Sweep(s) => s
                .body
                .iter()
                .enumerate()
                .map(|(b, d)| (Some(b), d))
                .collect(),
            Item::Fn(f) if module.path.is_some() => {
                if !el.used.contains(&SymKind::Fn { module: m, item: i }) && !module.library {
                    diags.push(
                        Diagnostic::warning(
                            codes::UNUSED_DECL,
                            format!("helper `{}` is never used", f.name.name),
                            Label::new(file, f.name.span.clone(), "never used"),
                        )
                        .with_help("remove it, or call it from a declaration"),
                    );
                }
                continue;
            }
            _ => continue,
        };
        for (body, d) in decls {
            let me = SymKind::Decl {
                module: m,
                item: i,
                body,
            };
            if module.scope.get(&d.name.name).map(|s| s.kind) != Some(me) {
                continue; // a duplicate, already reported
            }
            let used = el.used.contains(&SymKind::Decl {
                module: m,
                item: i,
                body,
            });
            if d.kind == DeclKind::Eval {
                if has_report && !used {
                    diags.push(
                        Diagnostic::warning(
                            codes::EVAL_NOT_REPORTED,
                            format!("eval `{}` is not shown in any report", d.name.name),
                            Label::new(file, d.name.span.clone(), "computed but never shown"),
                        )
                        .with_help(format!(
                            "add `table [{}]` or `plot {}` to a report",
                            d.name.name, d.name.name
                        )),
                    );
                }
            } else if !used {
                diags.push(
                    Diagnostic::warning(
                        codes::UNUSED_DECL,
                        format!("{} `{}` is never used", d.kind.keyword(), d.name.name),
                        Label::new(file, d.name.span.clone(), "never used"),
                    )
                    .with_help("remove it, or use it in an eval; an unused declaration still costs a reader's attention"),
                );
            }
        }
    }
    for (i, imp) in module.imports.iter().enumerate() {
        if !el.used_imports.contains(&(m, i)) {
            diags.push(
                Diagnostic::warning(
                    codes::UNUSED_IMPORT,
                    format!("`{}` is imported but never used", imp.name),
                    Label::new(file, imp.span.clone(), "unused import"),
                )
                .with_help("remove it from the `use` list"),
            );
        }
    }
    el.diags.extend(diags);
}

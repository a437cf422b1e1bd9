//! Charts as inline SVG (plotters' SVG backend for the axes and the marks, [`marks`] for
//! what plotters cannot place well): the training curves from `results.csv`, evaluation bars
//! per metric with the thresholds the run was judged against, latency per model, and the
//! token-count histogram of a validation report.
//!
//! Every chart has its title and legend in a strip above the plot, so nothing covers a bar
//! or a line; its text is 16 px in a 520 px drawing, about 12 px on a 420 px screen; its ink
//! is `currentColor`, so axes and labels read on a light and a dark page alike.

mod bars;
mod histogram;
pub mod marks;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use self::bars::{evaluation_bars, latency_bars};
pub use self::histogram::{bin_labels, histogram_bins, token_histogram};
use self::marks::{Entry, Swatch, TEXT_PX};
use crate::domain::aoai::MetricsRow;

/// Drawing width; the page scales the chart to its column.
pub const WIDTH: u32 = 520;
const HEIGHT: u32 = 340;
/// Plotters draws text at this fraction of the size asked for.
const PLOTTERS_TEXT: f64 = 0.806;
/// Stands for the page's text colour while plotters draws; replaced by `currentColor`.
const INK: RGBColor = RGBColor(0x01, 0x02, 0x03);
const INK_HEX: &str = "#010203";
/// Mid-tone series colours that keep their contrast on a white and a near-black card.
pub const SERIES: [RGBColor; 4] = [
    RGBColor(0x3b, 0x82, 0xf6),
    RGBColor(0xf9, 0x73, 0x16),
    RGBColor(0x10, 0xb9, 0x81),
    RGBColor(0xa8, 0x55, 0xf7),
];

/// A chart could not be drawn (never expected with finite data; reported, not panicked).
#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct ChartError(String);

fn err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError(format!("{e:?}"))
}

fn font() -> TextStyle<'static> {
    ("sans-serif", f64::from(TEXT_PX) / PLOTTERS_TEXT)
        .into_font()
        .color(&INK)
}

/// An axis label: whole numbers without a fraction, others to two places.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        // `+ 0.0` turns -0 into 0.
        format!("{:.0}", v.round() + 0.0)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').to_owned()
    }
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

/// Gives the SVG an id, an accessible name and the chart class, draws `extra` on top, and
/// hands the ink to the page (`currentColor`).
fn finish(svg: &str, id: &str, title: &str, extra: &str) -> String {
    let svg = svg.replace(INK_HEX, "currentColor").replacen(
        "<svg ",
        &format!(
            "<svg id=\"{id}\" role=\"img\" aria-label=\"{}\" class=\"chart\" ",
            super::escape(title)
        ),
        1,
    );
    match svg.rfind("</svg>") {
        Some(end) => format!("{}{extra}{}", &svg[..end], &svg[end..]),
        None => svg,
    }
}

fn area(svg: &mut String) -> DrawingArea<SVGBackend<'_>, Shift> {
    SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area()
}

/// One or more series over the training steps: `(label, points)`.
fn lines(
    id: &str,
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<String, ChartError> {
    let entries = series
        .iter()
        .enumerate()
        .map(|(i, (label, _))| Entry {
            label: (*label).to_owned(),
            swatch: Swatch::Line(SERIES[i % SERIES.len()]),
        })
        .collect();
    let strip = marks::strip(title, entries, WIDTH);
    let mut svg = String::new();
    {
        let root = area(&mut svg);
        let xs = finite_range(series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)));
        let ys = finite_range(series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)));
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .margin_top(strip.height as u32)
            .x_label_area_size(48)
            .y_label_area_size(68)
            .build_cartesian_2d(xs.0.max(0.0)..xs.1, ys.0..ys.1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_label)
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .max_light_lines(0)
            .axis_style(INK)
            .bold_line_style(INK.mix(0.18))
            .label_style(font())
            .axis_desc_style(font())
            .draw()
            .map_err(err)?;
        for (i, (_, points)) in series.iter().enumerate() {
            let color = SERIES[i % SERIES.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(3),
                ))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(finish(&svg, id, title, &strip.svg()))
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

#[cfg(test)]
mod tests;

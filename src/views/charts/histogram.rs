//! The token-count histogram of a validation report.

use super::ChartError;
use super::bars::Bars;
use super::marks::{Entry, Swatch};

/// The bins a histogram shows for buckets `(upper bound, examples)`. Power-of-two buckets
/// (what validation records) get every bound from half the lowest to twice the highest,
/// empty ones included, so the shape of the data is visible and one full bucket is not
/// drawn as the whole picture; finer buckets are shown as they are, in order.
pub fn histogram_bins(buckets: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut given: Vec<(u64, u64)> = Vec::new();
    let mut sorted = buckets.to_vec();
    sorted.sort_unstable();
    for (b, n) in sorted {
        match given.last_mut() {
            Some((last, total)) if *last == b => *total += n,
            _ => given.push((b, n)),
        }
    }
    if !given.iter().all(|(b, _)| b.is_power_of_two()) {
        return given;
    }
    let populated = given.iter().filter(|(_, n)| *n > 0).map(|(b, _)| *b);
    let (Some(lo), Some(hi)) = (populated.clone().min(), populated.max()) else {
        return Vec::new();
    };
    let mut bins = Vec::new();
    let mut b = (lo / 2).max(1);
    let end = hi.saturating_mul(2);
    // Power-of-two bounds: at most 64 bins, fewer in practice.
    while b <= end && bins.len() < 64 {
        let n = given.iter().find(|(u, _)| *u == b).map_or(0, |(_, n)| *n);
        bins.push((b, n));
        match b.checked_mul(2) {
            Some(next) => b = next,
            None => break,
        }
    }
    bins
}

/// The label of each bin: the token counts it holds, from the bound before it (or, for the
/// first, half its own bound when that is a power of two).
pub fn bin_labels(bins: &[(u64, u64)]) -> Vec<String> {
    let mut previous: Option<u64> = None;
    bins.iter()
        .map(|(upper, _)| {
            let lower = match previous {
                Some(p) => Some(p + 1),
                None if upper.is_power_of_two() => Some(upper / 2 + 1),
                None => None,
            };
            previous = Some(*upper);
            match lower {
                Some(l) if l >= *upper => upper.to_string(),
                Some(l) => format!("{l}–{upper}"),
                None => format!("≤{upper}"),
            }
        })
        .collect()
}

/// Examples per token-count bin, from a validation report's power-of-two buckets.
///
/// # Errors
/// Only if plotters fails to draw.
pub fn token_histogram(buckets: &[(u64, u64)]) -> Result<String, ChartError> {
    let bins = histogram_bins(buckets);
    let top = bins.iter().map(|(_, n)| *n).max().unwrap_or(0);
    Bars {
        id: "token-histogram",
        title: "Tokens per example",
        y_label: "examples",
        groups: bin_labels(&bins),
        series: vec![(
            "examples".to_owned(),
            bins.iter().map(|(_, n)| Some(*n as f64)).collect(),
        )],
        y_max: (top as f64 * 1.1).max(1.0).ceil(),
        lines: Vec::new(),
        notes: if bins.is_empty() {
            vec![Entry {
                label: "no valid examples".into(),
                swatch: Swatch::Note,
            }]
        } else {
            Vec::new()
        },
        counts: true,
    }
    .draw()
}

use super::*;
use crate::domain::evaluation::ModelScore;
use crate::domain::topology::Thresholds;

fn row(step: u64, loss: f64, acc: f64) -> MetricsRow {
    MetricsRow {
        step,
        train_loss: Some(loss),
        train_mean_token_accuracy: Some(acc),
        valid_loss: Some(loss * 1.1),
        valid_mean_token_accuracy: None,
        full_valid_loss: None,
        full_valid_mean_token_accuracy: None,
    }
}

fn model(label: &str, score: f64, p95: f64) -> ModelScore {
    ModelScore {
        label: label.into(),
        score,
        exact_match: score,
        token_f1: score,
        latency_p50_ms: p95 / 2.0,
        latency_p95_ms: p95,
        ..ModelScore::default()
    }
}

fn thresholds() -> Thresholds {
    Thresholds {
        min_score: 0.5,
        min_gain: 0.2,
        max_p95_latency_ms: 5000.0,
    }
}

/// Every number that follows `key` in `svg` (attribute values like `y="12"`).
fn numbers_after(svg: &str, key: &str) -> Vec<f64> {
    svg.split(key)
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(|c: char| c != '.' && c != '-' && !c.is_ascii_digit())?;
            rest[..end].parse().ok()
        })
        .collect()
}

/// The part of `svg` inside `<g class="{class}">`.
fn group<'a>(svg: &'a str, class: &str) -> &'a str {
    svg.split(&format!("<g class=\"{class}\">"))
        .nth(1)
        .and_then(|g| g.split("</g>").next())
        .unwrap_or("")
}

#[test]
fn curves_are_svg_with_an_id_a_name_and_one_line_per_series() {
    let rows: Vec<_> = (1..=20)
        .map(|s| row(s, 2.0 / s as f64, 0.5 + s as f64 / 50.0))
        .collect();
    let loss = loss_curve(&rows).expect("svg");
    assert!(loss.starts_with("<svg id=\"loss-chart\" role=\"img\" aria-label=\"Training loss\""));
    // One line per series, in its series colour; the legend names both.
    assert_eq!(
        loss.matches("<polyline fill=\"none\" opacity=\"1\" stroke=\"#3B82F6\" stroke-width=\"3\"")
            .count(),
        1
    );
    assert_eq!(
        loss.matches("<polyline fill=\"none\" opacity=\"1\" stroke=\"#F97316\" stroke-width=\"3\"")
            .count(),
        1
    );
    assert!(group(&loss, "legend").contains("validation loss"));
    let acc = accuracy_curve(&rows).expect("svg");
    assert!(acc.contains("id=\"accuracy-chart\"") && acc.contains("train token accuracy"));
}

#[test]
fn the_legend_sits_in_its_strip_above_the_plot_and_never_over_a_bar() {
    let svg = evaluation_bars(
        &[
            model("candidate", 0.9, 40.0),
            model("base", 0.4, 30.0),
            model("prod", 0.6, 35.0),
        ],
        Some(&thresholds()),
    )
    .expect("svg");
    let legend = group(&svg, "legend");
    assert!(legend.contains("candidate") && legend.contains("prod"));
    // Text is drawn around its y (dy 0.35em): its bottom is about half a line lower.
    let legend_bottom = numbers_after(legend, " y=\"")
        .into_iter()
        .fold(f64::MIN, f64::max)
        + f64::from(TEXT_PX) / 2.0;
    // Plotters' own marks (the bars and the axes) are what the legend must stay off.
    let plotted: String = svg
        .lines()
        .filter(|l| l.starts_with("<rect") || l.starts_with("<polyline"))
        .collect();
    let bar_tops = numbers_after(&plotted, " y=\"");
    let axis_points = plotted
        .split("points=\"")
        .skip(1)
        .flat_map(|p| p.split('"').next().unwrap_or("").split_whitespace())
        .filter_map(|xy| xy.split(',').nth(1)?.parse::<f64>().ok());
    let plot_top = bar_tops
        .into_iter()
        .chain(axis_points)
        .fold(f64::MAX, f64::min);
    assert!(
        legend_bottom < plot_top,
        "legend down to {legend_bottom}, plot from {plot_top}"
    );
}

#[test]
fn text_is_sixteen_pixels_and_drawn_in_the_page_colour() {
    let rows: Vec<_> = (1..=5).map(|s| row(s, 1.0 / s as f64, 0.5)).collect();
    for svg in [
        loss_curve(&rows).expect("svg"),
        evaluation_bars(&[model("candidate", 0.8, 40.0)], None).expect("svg"),
        token_histogram(&[(32, 4), (64, 9)]).expect("svg"),
    ] {
        let sizes = numbers_after(&svg, "font-size=\"");
        assert!(!sizes.is_empty());
        assert!(
            sizes.iter().all(|s| *s >= 13.9),
            "every text at least 14 px of a {WIDTH} px drawing: {sizes:?}"
        );
        assert!(!svg.contains(INK_HEX), "no fixed ink left");
        for text in svg.split("<text").skip(1) {
            let tag = text.split('>').next().unwrap_or("");
            assert!(
                tag.contains("fill=\"currentColor\""),
                "text in the page colour: {tag}"
            );
        }
    }
}

#[test]
fn the_evaluation_chart_draws_the_thresholds_the_run_was_judged_against() {
    let models = [model("candidate", 0.9, 40.0), model("base", 0.35, 30.0)];
    let svg = evaluation_bars(&models, Some(&thresholds())).expect("svg");
    let lines: Vec<&str> = svg.split("<line class=\"threshold-line").skip(1).collect();
    assert_eq!(lines.len(), 2, "minimum score and baseline plus gain");
    assert!(
        lines[0].starts_with(" threshold\" data-value=\"0.5\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(" needed\" data-value=\"0.55"),
        "{}",
        lines[1]
    );
    let legend = group(&svg, "legend");
    assert!(legend.contains("minimum score 0.50"));
    assert!(legend.contains("best baseline 0.35 + gain 0.20 = 0.55"));
    let bare = evaluation_bars(&models, None).expect("svg");
    assert!(!bare.contains("threshold-line"), "no thresholds, no lines");
}

#[test]
fn a_latency_limit_far_above_the_bars_is_named_instead_of_squashing_them() {
    let models = [model("candidate", 0.9, 40.0), model("base", 0.3, 30.0)];
    let far = latency_bars(&models, Some(&thresholds())).expect("svg");
    assert!(!far.contains("threshold-line"));
    assert!(group(&far, "legend").contains("p95 limit 5000 ms, far above every bar"));
    let near = Thresholds {
        max_p95_latency_ms: 60.0,
        ..thresholds()
    };
    let close = latency_bars(&models, Some(&near)).expect("svg");
    assert!(close.contains("<line class=\"threshold-line threshold\" data-value=\"60\""));
}

#[test]
fn zero_bars_stay_visible_with_their_value() {
    let svg = evaluation_bars(
        &[model("candidate", 0.9, 40.0), model("base", 0.0, 30.0)],
        None,
    )
    .expect("svg");
    // The baseline scored 0 on each of the three metrics.
    assert_eq!(svg.matches("<rect class=\"stub\"").count(), 3, "{svg}");
    assert_eq!(svg.matches("class=\"value\"").count(), 3);
}

#[test]
fn histogram_bins_fill_the_gaps_and_pad_each_side() {
    assert_eq!(
        histogram_bins(&[(64, 20)]),
        vec![(32, 0), (64, 20), (128, 0)]
    );
    assert_eq!(
        histogram_bins(&[(16, 3), (128, 5)])
            .iter()
            .map(|(b, _)| *b)
            .collect::<Vec<_>>(),
        vec![8, 16, 32, 64, 128, 256]
    );
    assert_eq!(histogram_bins(&[(1, 2)]), vec![(1, 2), (2, 0)]);
    assert!(histogram_bins(&[]).is_empty());
    // Finer bins than powers of two are kept as they are, in order.
    assert_eq!(
        histogram_bins(&[(48, 5), (40, 2), (56, 0)]),
        vec![(40, 2), (48, 5), (56, 0)]
    );
}

#[test]
fn bins_are_labelled_with_the_token_counts_they_hold() {
    assert_eq!(
        bin_labels(&[(1, 0), (2, 0), (4, 0), (64, 0)]),
        vec!["1", "2", "3–4", "5–64"]
    );
    assert_eq!(bin_labels(&[(32, 0), (64, 1)]), vec!["17–32", "33–64"]);
    assert_eq!(bin_labels(&[(40, 2), (48, 5)]), vec!["≤40", "41–48"]);
}

#[test]
fn the_token_histogram_draws_every_bin_and_marks_the_empty_ones() {
    let svg = token_histogram(&[(32, 4), (128, 9)]).expect("svg");
    // Bins 16, 32, 64, 128, 256: two with examples, three empty.
    assert_eq!(svg.matches("<rect class=\"stub\"").count(), 3);
    let categories = group(&svg, "categories");
    assert!(categories.contains("17–32") || categories.contains("33–64"));
    assert!(
        !svg.contains("class=\"legend\""),
        "one series needs no legend"
    );
}

#[test]
fn axis_labels_drop_a_fraction_whole_numbers_do_not_have() {
    assert_eq!(tick(&10.0), "10");
    assert_eq!(tick(&0.5), "0.5");
    assert_eq!(tick(&0.25), "0.25");
    assert_eq!(tick(&-0.0), "0");
}

#[test]
fn empty_or_flat_data_still_draws() {
    assert!(loss_curve(&[]).is_ok());
    assert!(loss_curve(&[row(1, 1.0, 0.5)]).is_ok());
    let empty = token_histogram(&[]).expect("svg");
    assert!(empty.contains("no valid examples"));
    assert!(evaluation_bars(&[], None).is_ok());
}

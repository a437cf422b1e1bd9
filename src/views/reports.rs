//! The HTML reports written beside `validation.json` and `evaluation.json`.

use super::{badge, charts, escape, page, table};
use crate::domain::evaluation::ModelScore;
use crate::domain::topology::Thresholds;
use crate::domain::validation::report::Verdict;
use crate::services::validation::SubmissionReport;

/// Candidate and baselines, one row each.
pub fn scores_table(scores: &[ModelScore]) -> String {
    let mut b = String::new();
    for s in scores {
        b.push_str(&format!(
            "<tr><td>{} <code>{}</code></td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.1} / {:.1}</td><td>{:.4}</td></tr>",
            escape(&s.label),
            escape(&s.deployment),
            s.score,
            s.exact_match,
            s.token_f1,
            s.label_accuracy.map_or("—".into(), |v| format!("{v:.3}")),
            s.latency_p50_ms,
            s.latency_p95_ms,
            s.prompt_tokens,
            s.completion_tokens,
            s.cost_per_1k_requests
        ));
    }
    table(
        "Scores",
        &[
            "Model",
            "Score",
            "Exact match",
            "Token F1",
            "Label accuracy",
            "p50 ms",
            "p95 ms",
            "Tokens in/out",
            "Cost / 1k requests",
        ],
        &b,
        "No scores yet.",
    )
}

/// `validation.html`: verdict, per file the counts, error classes with their first lines,
/// the token distribution, masked compliance findings and the billed tokens.
pub fn validation(run_id: &str, report: &SubmissionReport) -> String {
    let mut b = format!(
        "<p>{} {}</p>",
        badge(if report.verdict == Verdict::Accepted {
            "accepted"
        } else {
            "rejected"
        }),
        escape(run_id)
    );
    for r in &report.reasons {
        b.push_str(&format!("<p>✗ {}</p>", escape(r)));
    }
    for w in &report.warnings {
        b.push_str(&format!("<p>⚠ {}</p>", escape(w)));
    }
    for f in &report.files {
        b.push_str(&format!(
            "<h2><code>{}</code> {}</h2><div class=\"cards\"><div class=\"card\">Examples<b>{}</b></div>\
             <div class=\"card\">Valid<b>{}</b></div><div class=\"card\">Tokens<b>{}</b></div>\
             <div class=\"card\">Billed tokens<b>{}</b><span class=\"muted\">{} epochs</span></div>\
             <div class=\"card\">Over the {}-token limit<b>{}</b></div><div class=\"card\">Duplicates<b>{}</b></div></div>",
            escape(&f.file),
            badge(if f.verdict == Verdict::Accepted { "accepted" } else { "rejected" }),
            f.examples,
            f.valid_examples,
            f.tokens.total,
            f.billing_tokens,
            f.epochs,
            f.token_limit,
            f.examples_over_limit,
            f.duplicates
        ));
        // The file's own verdict, with the lines each finding names (over-long and repeated
        // examples, a preference file checked as supervised data).
        for r in &f.reasons {
            b.push_str(&format!("<p>✗ {}</p>", escape(r)));
        }
        for w in &f.warnings {
            b.push_str(&format!("<p>⚠ {}</p>", escape(w)));
        }
        let classes: Vec<(&String, u64)> = f
            .format_errors
            .iter()
            .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k, n)))
            .collect();
        if !classes.is_empty() {
            let mut rows = String::new();
            for (class, n) in classes {
                let lines: Vec<String> = f
                    .first_errors
                    .iter()
                    .filter(|e| e.class == class.as_str())
                    .take(5)
                    .map(|e| format!("line {}: {}", e.line, escape(&e.detail)))
                    .collect();
                rows.push_str(&format!(
                    "<tr><td><code>{}</code></td><td>{n}</td><td>{}</td></tr>",
                    escape(class),
                    lines.join("<br>")
                ));
            }
            b.push_str("<h3>Format errors</h3>");
            b.push_str(&table(
                "Format errors",
                &["Class", "Count", "First lines"],
                &rows,
                "",
            ));
        }
        if !f.compliance.is_empty() {
            let mut rows = String::new();
            for (class, c) in &f.compliance {
                let first: Vec<String> = c
                    .first
                    .iter()
                    .map(|x| format!("line {}: <code>{}</code>", x.line, escape(&x.masked)))
                    .collect();
                rows.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(class),
                    c.count,
                    first.join("<br>")
                ));
            }
            b.push_str("<h3>Compliance findings (masked)</h3>");
            b.push_str(&table(
                "Compliance",
                &["Class", "Count", "First"],
                &rows,
                "",
            ));
        }
        let buckets: Vec<(u64, u64)> = f.token_histogram.iter().map(|(k, v)| (*k, *v)).collect();
        b.push_str(&charts_block([charts::token_histogram(&buckets)]));
    }
    if !report.leakage.is_empty() {
        b.push_str("<h2>Overlap with the training data</h2><ul>");
        for (file, n) in &report.leakage {
            b.push_str(&format!(
                "<li><code>{}</code>: {n} examples</li>",
                escape(file)
            ));
        }
        b.push_str("</ul>");
    }
    page(&format!("Validation: {run_id}"), "", &b)
}

/// `evaluation.html` with the thresholds the verdict used drawn on its charts.
pub fn evaluation_judged(
    run_id: &str,
    passed: bool,
    reasons: &[String],
    scores: &[ModelScore],
    thresholds: Option<&Thresholds>,
) -> String {
    page(
        &format!("Evaluation: {run_id}"),
        "",
        &evaluation_body(passed, reasons, scores, thresholds),
    )
}

/// The verdict, the scores and the charts, as the report and the run page show them.
pub fn evaluation_body(
    passed: bool,
    reasons: &[String],
    scores: &[ModelScore],
    thresholds: Option<&Thresholds>,
) -> String {
    let mut b = format!("<p>{}</p>", badge(if passed { "passed" } else { "failed" }));
    for r in reasons {
        b.push_str(&format!("<p>✗ {}</p>", escape(r)));
    }
    if let Some(t) = thresholds {
        b.push_str(&format!(
            "<p class=\"muted\">Judged against: score at least {:.2}, a gain of at least {:.2} over the best baseline, p95 latency at most {:.0} ms.</p>",
            t.min_score, t.min_gain, t.max_p95_latency_ms
        ));
    }
    b.push_str(&scores_table(scores));
    b.push_str(&charts_block([
        charts::evaluation_bars(scores, thresholds),
        charts::latency_bars(scores, thresholds),
    ]));
    b
}

/// Charts side by side where there is room, one under the other where there is not. A chart
/// that could not be drawn is left out (the table beside it has the numbers).
pub fn charts_block<const N: usize>(charts: [Result<String, charts::ChartError>; N]) -> String {
    let drawn: String = charts.into_iter().flatten().collect();
    if drawn.is_empty() {
        String::new()
    } else {
        format!("<div class=\"charts\">{drawn}</div>")
    }
}

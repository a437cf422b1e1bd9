//! The HTML reports written beside `validation.json` and `evaluation.json`.

use super::{badge, charts, escape, page};
use crate::domain::evaluation::ModelScore;
use crate::domain::validation::report::Verdict;
use crate::services::validation::SubmissionReport;

/// Candidate and baselines, one row each.
pub fn scores_table(scores: &[ModelScore]) -> String {
    let mut b = String::from(
        "<table aria-label=\"Scores\"><thead><tr><th scope=\"col\">Model</th><th scope=\"col\">Score</th>\
         <th scope=\"col\">Exact match</th><th scope=\"col\">Token F1</th><th scope=\"col\">Label accuracy</th>\
         <th scope=\"col\">p50 ms</th><th scope=\"col\">p95 ms</th><th scope=\"col\">Tokens in/out</th>\
         <th scope=\"col\">Cost / 1k requests</th></tr></thead><tbody>",
    );
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
    b.push_str("</tbody></table>");
    b
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
        let classes: Vec<(&String, u64)> = f
            .format_errors
            .iter()
            .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k, n)))
            .collect();
        if !classes.is_empty() {
            b.push_str("<h3>Format errors</h3><table aria-label=\"Format errors\"><thead><tr><th scope=\"col\">Class</th><th scope=\"col\">Count</th><th scope=\"col\">First lines</th></tr></thead><tbody>");
            for (class, n) in classes {
                let lines: Vec<String> = f
                    .first_errors
                    .iter()
                    .filter(|e| e.class == class.as_str())
                    .take(5)
                    .map(|e| format!("line {}: {}", e.line, escape(&e.detail)))
                    .collect();
                b.push_str(&format!(
                    "<tr><td><code>{}</code></td><td>{n}</td><td>{}</td></tr>",
                    escape(class),
                    lines.join("<br>")
                ));
            }
            b.push_str("</tbody></table>");
        }
        if !f.compliance.is_empty() {
            b.push_str("<h3>Compliance findings (masked)</h3><table aria-label=\"Compliance\"><thead><tr><th scope=\"col\">Class</th><th scope=\"col\">Count</th><th scope=\"col\">First</th></tr></thead><tbody>");
            for (class, c) in &f.compliance {
                let first: Vec<String> = c
                    .first
                    .iter()
                    .map(|x| format!("line {}: <code>{}</code>", x.line, escape(&x.masked)))
                    .collect();
                b.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(class),
                    c.count,
                    first.join("<br>")
                ));
            }
            b.push_str("</tbody></table>");
        }
        let buckets: Vec<(u64, u64)> = f.token_histogram.iter().map(|(k, v)| (*k, *v)).collect();
        if let Ok(svg) = charts::token_histogram(&buckets) {
            b.push_str(&svg);
        }
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

/// `evaluation.html`: verdict, the comparison table and its charts.
pub fn evaluation(run_id: &str, passed: bool, reasons: &[String], scores: &[ModelScore]) -> String {
    let mut b = format!("<p>{}</p>", badge(if passed { "passed" } else { "failed" }));
    for r in reasons {
        b.push_str(&format!("<p>✗ {}</p>", escape(r)));
    }
    b.push_str(&scores_table(scores));
    for chart in [
        charts::evaluation_bars(scores),
        charts::latency_bars(scores),
    ]
    .into_iter()
    .flatten()
    {
        b.push_str(&chart);
    }
    page(&format!("Evaluation: {run_id}"), "", &b)
}

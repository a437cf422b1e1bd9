//! The dashboard pages: runs, one run, and the environment × region matrix.

use chrono::{DateTime, Utc};

use super::{age, badge, charts, escape, link, page};
use crate::domain::aoai::MetricsRow;
use crate::domain::evaluation::ModelScore;
use crate::domain::run::{Run, Stage, Transition};
use crate::services::inventory::Inventory;

fn stage_name(s: &Stage) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// All runs, newest first.
pub fn runs(base: &str, runs: &[Run], now: DateTime<Utc>) -> String {
    let mut rows: Vec<&Run> = runs.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let mut body = String::from(
        "<table aria-label=\"Runs\"><thead><tr><th scope=\"col\">Run</th><th scope=\"col\">Stage</th>\
         <th scope=\"col\">Submitted by</th><th scope=\"col\">Created</th><th scope=\"col\">Updated</th>\
         <th scope=\"col\">Model</th></tr></thead><tbody>",
    );
    for r in &rows {
        body.push_str(&format!(
            "<tr><td><a href=\"{href}\">{id}</a><div class=\"muted\">{project} / {sub}</div></td>\
             <td>{stage}</td><td>{who}</td><td>{created}</td><td>{updated}</td><td><code>{model}</code></td></tr>",
            href = escape(&link(base, &format!("ui/runs/{}", r.id))),
            id = escape(&r.id),
            project = escape(&r.project),
            sub = escape(&r.submission),
            stage = badge(&stage_name(&r.stage)),
            who = escape(&r.submitted_by),
            created = age(r.created_at, now),
            updated = age(r.updated_at, now),
            model = escape(r.fine_tuned_model.as_deref().unwrap_or("—")),
        ));
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No runs yet: drop a dataset into <code>datasets/</code>.</td></tr>");
    }
    body.push_str("</tbody></table>");
    page("Runs", base, &body)
}

/// What the run page shows besides the run document.
#[derive(Debug, Default)]
pub struct RunExtras {
    /// `results.csv` rows.
    pub metrics: Vec<MetricsRow>,
    /// Candidate then baselines, from `evaluation.json`.
    pub scores: Vec<ModelScore>,
    /// The run's audit trail.
    pub audit: Vec<Transition>,
}

/// One run: summary, timeline, validation, training curves, evaluation, promotion, audit.
pub fn run(base: &str, run: &Run, extras: &RunExtras, now: DateTime<Utc>) -> String {
    let mut b = String::new();
    b.push_str(&format!(
        "<div class=\"cards\"><div class=\"card\">Stage<b>{}</b></div><div class=\"card\">Submitted by<b>{}</b></div>\
         <div class=\"card\">Base model<b><code>{}</code></b></div><div class=\"card\">Fine-tuned model<b><code>{}</code></b></div>\
         <div class=\"card\">Age<b>{}</b></div></div>",
        badge(&stage_name(&run.stage)),
        escape(&run.submitted_by),
        escape(&run.base_model),
        escape(run.fine_tuned_model.as_deref().unwrap_or("—")),
        age(run.created_at, now),
    ));
    if !run.flags.is_empty() {
        b.push_str("<ul>");
        for f in &run.flags {
            b.push_str(&format!("<li>{}</li>", escape(f)));
        }
        b.push_str("</ul>");
    }

    b.push_str("<h2>Timeline</h2><table aria-label=\"Timeline\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Who</th><th scope=\"col\">Change</th><th scope=\"col\">Detail</th></tr></thead><tbody>");
    for t in &run.history {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
            when(t.time),
            escape(&t.actor),
            escape(t.from.as_deref().unwrap_or("·")),
            badge(&t.to),
            escape(&t.detail)
        ));
    }
    b.push_str("</tbody></table>");

    if let Some(v) = &run.validation {
        b.push_str(&format!(
            "<h2>Validation {}</h2><p>{} training examples · {} tokens · {} billed tokens · <a href=\"{}\">report</a></p>",
            badge(if v.accepted { "accepted" } else { "rejected" }),
            v.training_examples,
            v.training_tokens,
            v.billing_tokens,
            escape(&link(base, &format!("ui/reports/{}/validation.html", run.id)))
        ));
        for r in &v.reasons {
            b.push_str(&format!("<p class=\"badge bad\">{}</p> ", escape(r)));
        }
        if !v.warnings.is_empty() {
            b.push_str("<ul>");
            for w in &v.warnings {
                b.push_str(&format!("<li>{}</li>", escape(w)));
            }
            b.push_str("</ul>");
        }
    }

    b.push_str("<h2>Training</h2>");
    if extras.metrics.is_empty() {
        b.push_str("<p class=\"muted\">No training metrics yet.</p>");
    } else {
        if let Some(m) = &run.metrics {
            b.push_str(&format!(
                "<p>{} steps · final loss {} · final token accuracy {}</p>",
                m.steps,
                m.final_train_loss.map_or("—".into(), |v| format!("{v:.4}")),
                m.final_train_accuracy
                    .map_or("—".into(), |v| format!("{v:.3}"))
            ));
        }
        for chart in [
            charts::loss_curve(&extras.metrics),
            charts::accuracy_curve(&extras.metrics),
        ]
        .into_iter()
        .flatten()
        {
            b.push_str(&chart);
        }
    }

    b.push_str("<h2>Evaluation</h2>");
    match &run.evaluation {
        None => b.push_str("<p class=\"muted\">Not evaluated yet.</p>"),
        Some(e) => {
            b.push_str(&format!(
                "<p>{} score {:.3} vs best baseline {:.3} · p95 {:.0} ms · <a href=\"{}\">report</a></p>",
                badge(if e.passed { "passed" } else { "failed" }),
                e.score,
                e.baseline_score,
                e.p95_latency_ms,
                escape(&link(base, &format!("ui/reports/{}/evaluation.html", run.id)))
            ));
            for r in &e.reasons {
                b.push_str(&format!("<p>✗ {}</p>", escape(r)));
            }
            b.push_str(&reports::scores_table(&extras.scores));
            for chart in [
                charts::evaluation_bars(&extras.scores),
                charts::latency_bars(&extras.scores),
            ]
            .into_iter()
            .flatten()
            {
                b.push_str(&chart);
            }
        }
    }

    b.push_str("<h2>Promotion</h2><table aria-label=\"Promotion per region\"><thead><tr><th scope=\"col\">Environment</th><th scope=\"col\">Region</th><th scope=\"col\">Account</th><th scope=\"col\">Deployment</th><th scope=\"col\">Status</th><th scope=\"col\">Verified</th></tr></thead><tbody>");
    for (env, e) in &run.environments {
        for (region, r) in &e.regions {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}{}</td><td>{}</td></tr>",
                escape(env),
                escape(region),
                escape(&r.account),
                escape(&r.deployment),
                badge(&r.status),
                r.error.as_deref().map_or(String::new(), |e| format!(" <span class=\"muted\">{}</span>", escape(e))),
                r.verified_at.map_or("—".into(), when)
            ));
        }
    }
    b.push_str("</tbody></table>");

    b.push_str("<h2>Audit</h2><table aria-label=\"Audit\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Actor</th><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">Detail</th></tr></thead><tbody>");
    for t in &extras.audit {
        b.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(t.time),
            escape(&t.actor),
            escape(t.from.as_deref().unwrap_or("")),
            escape(&t.to),
            escape(&t.detail)
        ));
    }
    b.push_str("</tbody></table>");
    page(&format!("Run {}", run.id), base, &b)
}

use super::reports;

/// The environment × region matrix: what serves where, and whether it is alive.
pub fn environments(base: &str, inv: &Inventory, now: DateTime<Utc>) -> String {
    let mut regions: Vec<&String> = inv
        .environments
        .values()
        .flat_map(|e| e.regions.keys())
        .collect();
    regions.sort();
    regions.dedup();
    let mut b = String::from(
        "<table id=\"matrix\" aria-label=\"Environments by region\"><thead><tr><th scope=\"col\">Environment</th>",
    );
    for r in &regions {
        b.push_str(&format!("<th scope=\"col\">{}</th>", escape(r)));
    }
    b.push_str("</tr></thead><tbody>");
    for env in ["dev", "test", "prod"] {
        let Some(e) = inv.environments.get(env) else {
            continue;
        };
        b.push_str(&format!("<tr><th scope=\"row\">{}</th>", escape(env)));
        for r in &regions {
            match e.regions.get(*r) {
                None => b.push_str("<td class=\"muted\">—</td>"),
                Some(x) => b.push_str(&format!(
                    "<td data-env=\"{env}\" data-region=\"{region}\"><div>{health}</div>\
                     <div><a href=\"{href}\">{run}</a></div><div><code>{model}</code></div>\
                     <div class=\"muted\">{account} · <code>{dep}</code></div>\
                     <div class=\"muted\">deployed {deployed}</div><div class=\"muted\">keepalive {ka}{lat}</div>{rest}</td>",
                    env = escape(env),
                    region = escape(r),
                    health = badge(&x.health),
                    href = escape(&link(base, &format!("ui/runs/{}", x.run_id))),
                    run = escape(&x.run_id),
                    model = escape(&x.model),
                    account = escape(&x.account),
                    dep = escape(&x.deployment),
                    deployed = age(x.deployed_at, now),
                    ka = x.last_keepalive.map_or("never".into(), |t| age(t, now)),
                    lat = x.last_latency_ms.map_or(String::new(), |ms| format!(" ({ms} ms)")),
                    rest = if x.restorations > 0 {
                        format!("<div>{} restored {}×</div>", badge("restored"), x.restorations)
                    } else {
                        String::new()
                    },
                )),
            }
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table>");
    let history: Vec<(&String, &String)> = inv
        .environments
        .iter()
        .flat_map(|(env, e)| e.history.iter().map(move |h| (env, h)))
        .collect();
    if !history.is_empty() {
        b.push_str("<h2>Keepalive and promotion history</h2><table aria-label=\"History\"><thead><tr><th scope=\"col\">Environment</th><th scope=\"col\">Event</th></tr></thead><tbody>");
        for (env, h) in history.iter().rev().take(200) {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(env),
                escape(h)
            ));
        }
        b.push_str("</tbody></table>");
    }
    page("Environments", base, &b)
}

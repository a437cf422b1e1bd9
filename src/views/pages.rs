//! The dashboard pages: runs, one run, and the environment × region matrix.

use chrono::{DateTime, Utc};

use super::{age, badge, charts, escape, link, page};
use crate::domain::aoai::MetricsRow;
use crate::domain::env::Env;
use crate::domain::evaluation::ModelScore;
use crate::domain::inventory::{Deployment, ProjectRecord};
use crate::domain::run::{Run, Stage, Transition};
use crate::services::inventory::Estate;

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
    page("Runs", base, &runs_table(base, runs, now))
}

/// The runs table.
fn runs_table(base: &str, runs: &[Run], now: DateTime<Utc>) -> String {
    let mut rows: Vec<&Run> = runs.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let mut body = String::from(
        "<table aria-label=\"Runs\"><thead><tr><th scope=\"col\">Run</th><th scope=\"col\">Stage</th>\
         <th scope=\"col\">Submitted by</th><th scope=\"col\">Created</th><th scope=\"col\">Updated</th>\
         <th scope=\"col\">Model</th></tr></thead><tbody>",
    );
    for r in &rows {
        body.push_str(&format!(
            "<tr><td><a href=\"{href}\">{id}</a><div class=\"muted\"><a href=\"{phref}\">{project}</a> / {sub}</div></td>\
             <td>{stage}{serving}</td><td>{who}</td><td>{created}</td><td>{updated}</td><td><code>{model}</code></td></tr>",
            href = escape(&link(base, &format!("ui/runs/{}", r.id))),
            phref = escape(&link(base, &format!("ui/projects/{}", r.project))),
            id = escape(&r.id),
            project = escape(&r.project),
            sub = escape(&r.submission),
            stage = badge(&stage_name(&r.stage)),
            serving = r
                .serving()
                .iter()
                .map(|e| format!(" {}", badge(&format!("serves {e}"))))
                .collect::<String>(),
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
    body
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
            escape(t.from.map_or("·", |s| s.name())),
            badge(t.to.name()),
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
                escape(env.name()),
                escape(region),
                escape(&r.account),
                escape(&r.deployment),
                badge(r.status.name()),
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
            escape(t.from.map_or("", |s| s.name())),
            escape(t.to.name()),
            escape(&t.detail)
        ));
    }
    b.push_str("</tbody></table>");
    page(&format!("Run {}", run.id), base, &b)
}

use super::reports;

/// The environment × region matrix: every project's deployment on every Spoke, what it
/// serves and whether it is alive, with the slots in use.
pub fn environments(base: &str, estate: &Estate, now: DateTime<Utc>) -> String {
    let mut regions: Vec<&str> = estate
        .spokes
        .iter()
        .map(|(_, a, _)| a.region.as_str())
        .collect();
    regions.sort_unstable();
    regions.dedup();
    let mut b = String::from(
        "<table id=\"matrix\" aria-label=\"Environments by region\"><thead><tr><th scope=\"col\">Environment</th>",
    );
    for r in &regions {
        b.push_str(&format!("<th scope=\"col\">{}</th>", escape(r)));
    }
    b.push_str("</tr></thead><tbody>");
    for env in Env::ALL {
        b.push_str(&format!("<tr><th scope=\"row\">{env}</th>"));
        for region in &regions {
            let Some((_, account, record)) = estate
                .spokes
                .iter()
                .find(|(e, a, _)| *e == env && a.region == *region)
            else {
                b.push_str("<td class=\"muted\">—</td>");
                continue;
            };
            b.push_str(&format!(
                "<td data-env=\"{env}\" data-region=\"{region}\"><div class=\"muted\">{name} · {used} of {limit} slots</div>",
                region = escape(region),
                name = escape(&account.name),
                used = record.used(),
                limit = account.deployment_slots,
            ));
            if record.deployments.is_empty() {
                b.push_str("<div class=\"muted\">nothing deployed</div>");
            }
            for x in record.deployments.values() {
                b.push_str(&format!(
                    "<div class=\"deployment\" data-project=\"{project}\"><div><a href=\"{phref}\"><b>{project}</b></a> {health}</div>\
                     <div><a href=\"{href}\">{run}</a></div><div><code>{model}</code></div>\
                     <div class=\"muted\"><code>{dep}</code> · deployed {deployed}</div>\
                     <div class=\"muted\">keepalive {ka}{lat}</div>{rest}</div>",
                    project = escape(&x.project),
                    phref = escape(&link(base, &format!("ui/projects/{}", x.project))),
                    health = badge(x.health.name()),
                    href = escape(&link(base, &format!("ui/runs/{}", x.run_id))),
                    run = escape(&x.run_id),
                    model = escape(&x.model),
                    dep = escape(&x.deployment),
                    deployed = age(x.deployed_at, now),
                    ka = x.last_keepalive.map_or("never".into(), |t| age(t, now)),
                    lat = x.last_latency_ms.map_or(String::new(), |ms| format!(" ({ms} ms)")),
                    rest = if x.restorations > 0 {
                        format!("<div>{} {}×</div>", badge("restored"), x.restorations)
                    } else {
                        String::new()
                    },
                ));
            }
            for u in &record.unmanaged {
                b.push_str(&format!(
                    "<div>{} <code>{}</code></div>",
                    badge("unmanaged"),
                    escape(&u.deployment)
                ));
            }
            b.push_str("</td>");
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table>");
    page("Environments", base, &b)
}

/// One project: what serves in each environment now, its release history (newest first),
/// and its runs.
pub fn project(
    base: &str,
    name: &str,
    record: &ProjectRecord,
    deployments: &[(Env, String, Deployment)],
    runs: &[Run],
    now: DateTime<Utc>,
) -> String {
    let mut b = String::from("<div class=\"cards\">");
    for env in Env::ALL {
        let current = record.current(env);
        b.push_str(&format!(
            "<div class=\"card\">{env}<b>{}</b><span class=\"muted\">{}</span></div>",
            current.map_or("—".to_owned(), |r| {
                format!(
                    "<a href=\"{}\">{}</a>",
                    escape(&link(base, &format!("ui/runs/{}", r.run_id))),
                    escape(&r.run_id)
                )
            }),
            current.map_or(String::new(), |r| format!("since {}", age(r.at, now))),
        ));
    }
    b.push_str("</div><h2>Deployments</h2><table aria-label=\"Deployments\"><thead><tr><th scope=\"col\">Environment</th><th scope=\"col\">Region</th><th scope=\"col\">Run</th><th scope=\"col\">Health</th><th scope=\"col\">Last keepalive</th></tr></thead><tbody>");
    for (env, region, d) in deployments {
        b.push_str(&format!(
            "<tr><td>{env}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(region),
            escape(&d.run_id),
            badge(d.health.name()),
            d.last_keepalive.map_or("never".into(), |t| age(t, now)),
        ));
    }
    b.push_str("</tbody></table><h2>Releases</h2><table aria-label=\"Releases\"><thead><tr><th scope=\"col\">Environment</th><th scope=\"col\">Run</th><th scope=\"col\">How</th><th scope=\"col\">By</th><th scope=\"col\">When</th></tr></thead><tbody>");
    for (env, list) in &record.releases {
        for (i, r) in list.iter().enumerate().rev() {
            let serving = i + 1 == list.len();
            b.push_str(&format!(
                "<tr><td>{env}</td><td>{}{}</td><td>{:?}{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.run_id),
                if serving {
                    format!(" {}", badge("serving"))
                } else {
                    String::new()
                },
                r.kind,
                if r.rolled_back {
                    format!(" {}", badge("rolled_back"))
                } else {
                    String::new()
                },
                escape(&r.by),
                when(r.at),
            ));
        }
    }
    b.push_str("</tbody></table><h2>Runs</h2>");
    b.push_str(&runs_table(base, runs, now));
    page(&format!("Project {name}"), base, &b)
}

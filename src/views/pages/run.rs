//! One run: where it serves now, what a person can do about it, then its timeline,
//! validation, training curves, evaluation against its thresholds, promotion per region and
//! audit trail.

use super::approvals::{item, pending};
use super::stalled::{Attention, attention, retry_command};
use super::{Ctx, left, serves};
use crate::domain::aoai::MetricsRow;
use crate::domain::env::Env;
use crate::domain::evaluation::ModelScore;
use crate::domain::run::{Run, Transition};
use crate::domain::topology::Thresholds;
use crate::views::reports::{charts_block, evaluation_body};
use crate::views::{age, anchor, badge, charts, command, escape, link, page, span, table, when};

/// What the run page shows besides the run document.
#[derive(Debug, Default)]
pub struct RunExtras {
    /// `results.csv` rows.
    pub metrics: Vec<MetricsRow>,
    /// Candidate then baselines, from `evaluation.json`.
    pub scores: Vec<ModelScore>,
    /// The thresholds the evaluation judged against, from `evaluation.json`.
    pub thresholds: Option<Thresholds>,
    /// The run's audit trail.
    pub audit: Vec<Transition>,
}

/// Per environment the run reached or was approved for: its own state there, and which run
/// serves there now.
fn serving_table(ctx: &Ctx<'_>, run: &Run) -> String {
    let here = serves(ctx.releases, run);
    let gone = left(ctx.releases, run);
    let mut rows = String::new();
    for env in Env::ALL {
        let state = run.environments.get(&env);
        let now_there = ctx.releases.get(&run.project).and_then(|r| r.current(env));
        if state.is_none() && !here.contains(&env) {
            continue;
        }
        let this = if here.contains(&env) {
            format!("<span class=\"badge ok\" data-serves=\"{env}\">serves {env} now</span>")
        } else if let Some(l) = gone.iter().find(|l| l.env == env) {
            if l.rolled_back {
                format!("<span class=\"badge warn\" data-rolled-back=\"{env}\">rolled back</span>")
            } else {
                format!("<span class=\"badge info\" data-replaced=\"{env}\">replaced</span>")
            }
        } else {
            badge(state.map_or("pending", |s| s.status.name()))
        };
        let serving = match now_there {
            Some(r) if r.run_id == run.id => "this run".to_owned(),
            Some(r) => anchor(ctx.base, &format!("ui/runs/{}", r.run_id), &r.run_id),
            None => "<span class=\"muted\">nothing</span>".to_owned(),
        };
        rows.push_str(&format!(
            "<tr data-env=\"{env}\"><td>{env}</td><td>{this}</td><td>{serving}</td><td class=\"nowrap\">{}</td><td>{}</td></tr>",
            now_there.map_or("—".to_owned(), |r| age(r.at, ctx.now)),
            escape(state.and_then(|s| s.approved_by.as_deref()).unwrap_or("—")),
        ));
    }
    table(
        "Where it serves",
        &[
            "Environment",
            "This run",
            "Serving there now",
            "Since",
            "Approved by",
        ],
        &rows,
        "Not released anywhere yet.",
    )
}

/// What a person can do now: approve it, re-drive it.
fn actions(ctx: &Ctx<'_>, run: &Run) -> String {
    let mut b = String::new();
    for p in pending(std::slice::from_ref(run), ctx.releases, ctx.topology) {
        b.push_str(&item(ctx, &p));
    }
    match attention(run, ctx.now, ctx.idle) {
        Some(Attention::Stalled(s)) => b.push_str(&format!(
            "<div class=\"item\" data-stalled><h3>{} since {}</h3><p><code>{}</code> {}</p><p class=\"muted\">{}</p>{}</div>",
            badge("stalled"),
            age(s.since, ctx.now),
            escape(&s.what),
            escape(&s.reason),
            escape(&s.detail),
            command(&retry_command(&run.id)),
        )),
        Some(Attention::Retrying(r)) => b.push_str(&format!(
            "<div class=\"item\"><h3>{} {} failed attempts</h3><p class=\"muted\">{}</p><p>Next attempt {}.</p></div>",
            badge("retrying"),
            r.attempts,
            escape(&r.last_error),
            when(r.next_at),
        )),
        Some(Attention::Idle(d)) => b.push_str(&format!(
            "<div class=\"item\"><h3>{} for {}</h3><p>It owes a step and nothing has changed.</p>{}</div>",
            badge("idle"),
            span(d),
            command(&retry_command(&run.id)),
        )),
        None => {}
    }
    if b.is_empty() {
        b
    } else {
        format!("<h2>To do</h2>{b}")
    }
}

/// The page.
pub fn run(ctx: &Ctx<'_>, run: &Run, extras: &RunExtras) -> String {
    let (base, now) = (ctx.base, ctx.now);
    let mut b = format!(
        "<div class=\"cards\"><div class=\"card\">Stage<b>{}</b></div><div class=\"card\">Project<b>{}</b></div>\
         <div class=\"card\">Submitted by<b>{}</b></div><div class=\"card\">Base model<b><code>{}</code></b></div>\
         <div class=\"card\">Fine-tuned model<b><code>{}</code></b></div><div class=\"card\">Age<b>{}</b></div></div>",
        badge(run.stage.name()),
        anchor(base, &format!("ui/projects/{}", run.project), &run.project),
        escape(&run.submitted_by),
        escape(&run.base_model),
        escape(run.fine_tuned_model.as_deref().unwrap_or("—")),
        age(run.created_at, now),
    );
    if let Some(w) = &run.waiting {
        b.push_str(&format!("<p>{} {}</p>", badge("waiting"), escape(w)));
    }
    if !run.flags.is_empty() {
        b.push_str("<ul>");
        for f in &run.flags {
            b.push_str(&format!("<li>{}</li>", escape(f)));
        }
        b.push_str("</ul>");
    }
    b.push_str("<h2>Where it serves</h2>");
    b.push_str(&serving_table(ctx, run));
    b.push_str(&actions(ctx, run));

    let mut rows = String::new();
    for t in &run.history {
        rows.push_str(&format!(
            "<tr><td class=\"nowrap\">{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
            when(t.time),
            escape(&t.actor),
            escape(t.from.map_or("·", |s| s.name())),
            badge(t.to.name()),
            escape(&t.detail)
        ));
    }
    b.push_str("<h2>Timeline</h2>");
    b.push_str(&table(
        "Timeline",
        &["When", "Who", "Change", "Detail"],
        &rows,
        "Nothing recorded yet.",
    ));

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
            b.push_str(&format!("<p>✗ {}</p>", escape(r)));
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
        b.push_str(&charts_block([
            charts::loss_curve(&extras.metrics),
            charts::accuracy_curve(&extras.metrics),
        ]));
    }

    b.push_str("<h2>Evaluation</h2>");
    match &run.evaluation {
        None => b.push_str("<p class=\"muted\">Not evaluated yet.</p>"),
        Some(e) => {
            b.push_str(&format!(
                "<p>score {:.3} vs best baseline {:.3} · p95 {:.0} ms · <a href=\"{}\">report</a></p>",
                e.score,
                e.baseline_score,
                e.p95_latency_ms,
                escape(&link(base, &format!("ui/reports/{}/evaluation.html", run.id)))
            ));
            b.push_str(&evaluation_body(
                e.passed,
                &e.reasons,
                &extras.scores,
                extras.thresholds.as_ref(),
            ));
        }
    }

    let mut rows = String::new();
    for (env, e) in &run.environments {
        for (region, r) in &e.regions {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}{}</td><td class=\"nowrap\">{}</td></tr>",
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
    b.push_str("<h2>Promotion</h2>");
    b.push_str(&table(
        "Promotion per region",
        &[
            "Environment",
            "Region",
            "Account",
            "Deployment",
            "Status",
            "Verified",
        ],
        &rows,
        "Not promoted yet.",
    ));

    let mut rows = String::new();
    for t in &extras.audit {
        rows.push_str(&format!(
            "<tr><td class=\"nowrap\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(t.time),
            escape(&t.actor),
            escape(t.from.map_or("", |s| s.name())),
            escape(t.to.name()),
            escape(&t.detail)
        ));
    }
    b.push_str("<h2>Audit</h2>");
    b.push_str(&table(
        "Audit",
        &["When", "Actor", "From", "To", "Detail"],
        &rows,
        "No audit lines yet.",
    ));
    page(&format!("Run {}", run.id), base, &b)
}

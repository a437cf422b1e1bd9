//! The landing page: what needs a person, then every run, newest first.

use chrono::{DateTime, Utc};

use super::{Ctx, Releases, serving_marks};
use crate::domain::run::Run;
use crate::views::{age, anchor, badge, escape, link, page, table};

/// The counts at the top of the runs page, each linking to the page that lists them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs waiting for a signed approval.
    pub approvals: usize,
    /// Runs stalled or idle past their step.
    pub stalled: usize,
    /// Dead letters not replayed yet.
    pub dead_letters: usize,
    /// Invocations refused today.
    pub rejections_today: usize,
}

/// All runs, newest first, under the counts of what needs a person.
pub fn runs(ctx: &Ctx<'_>, runs: &[Run], summary: &Summary) -> String {
    let base = ctx.base;
    let card = |path: &str, title: &str, n: usize, class: &str| {
        format!(
            "<a class=\"card\" id=\"{}\" href=\"{}\" data-count=\"{n}\">{title}<b>{}</b></a>",
            title.to_lowercase().replace(' ', "-"),
            escape(&link(base, path)),
            if n == 0 {
                "0".to_owned()
            } else {
                format!("<span class=\"badge {class}\">{n}</span>")
            }
        )
    };
    let cards = format!(
        "<div class=\"cards\" aria-label=\"Needs a person\">{}{}{}{}</div>",
        card(
            "ui/approvals",
            "Pending approvals",
            summary.approvals,
            "info"
        ),
        card("ui/stalled", "Stalled runs", summary.stalled, "bad"),
        card("ui/stalled", "Dead letters", summary.dead_letters, "bad"),
        card(
            "ui/rejections",
            "Rejections today",
            summary.rejections_today,
            "warn"
        ),
    );
    page(
        "Runs",
        base,
        &format!("{cards}{}", runs_table(base, runs, ctx.releases, ctx.now)),
    )
}

/// The runs table: stage, where each serves now (and where it was rolled back or
/// replaced), who submitted it, and its model.
pub fn runs_table(base: &str, runs: &[Run], releases: &Releases, now: DateTime<Utc>) -> String {
    let mut list: Vec<&Run> = runs.iter().collect();
    list.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let mut rows = String::new();
    for r in list {
        rows.push_str(&format!(
            "<tr data-run=\"{id}\"><td>{run}<div class=\"muted\">{project} / {sub}</div></td>\
             <td>{stage}{stalled}</td><td>{serving}</td><td>{who}</td><td class=\"nowrap\">{created}</td>\
             <td class=\"nowrap\">{updated}</td><td><code>{model}</code></td></tr>",
            id = escape(&r.id),
            run = anchor(base, &format!("ui/runs/{}", r.id), &r.id),
            project = anchor(base, &format!("ui/projects/{}", r.project), &r.project),
            sub = escape(&r.submission),
            stage = badge(r.stage.name()),
            stalled = if r.stalled.is_some() {
                format!(" {}", badge("stalled"))
            } else {
                String::new()
            },
            serving = serving_marks(releases, r),
            who = escape(&r.submitted_by),
            created = age(r.created_at, now),
            updated = age(r.updated_at, now),
            model = escape(r.fine_tuned_model.as_deref().unwrap_or("—")),
        ));
    }
    table(
        "Runs",
        &[
            "Run",
            "Stage",
            "Serves now",
            "Submitted by",
            "Created",
            "Updated",
            "Model",
        ],
        &rows,
        "No runs yet: drop a dataset into <code>datasets/</code>.",
    )
}

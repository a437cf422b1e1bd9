//! The rejections trail (`audit/rejections/{day}/{function}/…`): every invocation refused
//! as terminal — a forged or stale approval, a malformed message, a dead letter naming no
//! run — with its reason, newest first.

use chrono::{DateTime, NaiveDate, Utc};

use super::Ctx;
use crate::views::{age, anchor, badge, escape, page, table, when};

/// One refused invocation, as the host edge recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// When.
    pub at: DateTime<Utc>,
    /// The function that refused it.
    pub function: String,
    /// The refusal's kind (`approval_refused`, `malformed_payload`, …).
    pub kind: String,
    /// Why, in full.
    pub reason: String,
    /// The host's invocation id.
    pub invocation_id: String,
}

/// The page: the rejections of `days` (newest first), with links to the day before.
pub fn rejections(ctx: &Ctx<'_>, days: &[NaiveDate], list: &[Rejection]) -> String {
    let mut sorted: Vec<&Rejection> = list.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.at));
    let mut rows = String::new();
    for r in sorted {
        rows.push_str(&format!(
            "<tr data-function=\"{f}\"><td class=\"nowrap\">{at}<div class=\"muted\">{ago}</div></td><td>{f}</td><td>{kind}</td><td>{reason}</td><td><code>{id}</code></td></tr>",
            f = escape(&r.function),
            at = when(r.at),
            ago = age(r.at, ctx.now),
            kind = badge(&r.kind),
            reason = escape(&r.reason),
            id = escape(&r.invocation_id),
        ));
    }
    let span = match (days.iter().min(), days.iter().max()) {
        (Some(lo), Some(hi)) if lo != hi => format!("{lo} to {hi}"),
        (Some(d), _) => d.to_string(),
        _ => String::new(),
    };
    let mut b = format!(
        "<p>Invocations refused for good (answered 200 so the host stops redelivering), {}.</p>",
        escape(&span)
    );
    b.push_str(&table(
        "Rejections",
        &["When", "Function", "Kind", "Reason", "Invocation"],
        &rows,
        "Nothing was refused.",
    ));
    if let Some(before) = days.iter().min().and_then(|d| d.pred_opt()) {
        b.push_str(&format!(
            "<p>{}</p>",
            anchor(
                ctx.base,
                &format!("ui/rejections?day={before}"),
                &format!("The day before: {before}")
            )
        ));
    }
    page("Rejections", ctx.base, &b)
}

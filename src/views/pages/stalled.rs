//! Runs that need a person to look: stalled (a dead letter, a step that kept failing),
//! retrying, or idle past their step; and the dead-letter book, with the command that
//! replays each message.

use chrono::Duration;

use super::{Ctx, shell_word};
use crate::domain::run::{Retry, Run, Stage, Stall};
use crate::services::deadletters::Record;
use crate::views::{age, anchor, badge, command, escape, page, span, table, when};

/// When a run that owes a step counts as idle: no change for this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleLimits {
    /// A step a message drives (evaluation, a promotion): the reconciler should have
    /// re-driven it well within this.
    pub step: Duration,
    /// Uploading and training: the Hub's job may legitimately run this long.
    pub training: Duration,
}

impl Default for IdleLimits {
    fn default() -> Self {
        Self {
            step: Duration::minutes(10),
            training: Duration::hours(48),
        }
    }
}

/// Why a run is on this page.
#[derive(Debug, Clone, PartialEq)]
pub enum Attention<'a> {
    /// Flagged stalled: a dead letter, or a step that failed again and again.
    Stalled(&'a Stall),
    /// Its owed step failed; the reconciler retries it.
    Retrying(&'a Retry),
    /// It owes a step and nothing has changed for this long.
    Idle(Duration),
}

/// Whether `run` needs a look, and why (the most serious reason first).
pub fn attention(
    run: &Run,
    now: chrono::DateTime<chrono::Utc>,
    limits: IdleLimits,
) -> Option<Attention<'_>> {
    if let Some(s) = &run.stalled {
        return Some(Attention::Stalled(s));
    }
    if let Some(r) = &run.retry {
        return Some(Attention::Retrying(r));
    }
    // A queued run or one waiting for a slot is in line, not idle.
    if !run.is_active() || run.stage == Stage::Queued || run.waiting.is_some() {
        return None;
    }
    let idle = now - run.updated_at;
    let limit = match run.stage {
        Stage::Uploading | Stage::Training => limits.training,
        _ => limits.step,
    };
    (idle > limit).then_some(Attention::Idle(idle))
}

/// `fthub runs retry` for a run.
pub fn retry_command(run_id: &str) -> String {
    format!("fthub runs retry {}", shell_word(run_id))
}

/// `fthub deadletters replay` for a recorded dead letter: by sequence number when it has
/// one, else by its book key.
pub fn replay_command(r: &Record) -> String {
    let key = r.sequence.map_or_else(|| r.key.clone(), |s| s.to_string());
    format!(
        "fthub deadletters replay {} --queue {}",
        shell_word(&key),
        shell_word(&r.queue)
    )
}

/// The page: stalled and idle runs, then the dead-letter book (newest first).
pub fn stalled(ctx: &Ctx<'_>, runs: &[Run], dead: &[Record]) -> String {
    let mut rows = String::new();
    let mut flagged: Vec<(&Run, Attention<'_>)> = runs
        .iter()
        .filter_map(|r| attention(r, ctx.now, ctx.idle).map(|a| (r, a)))
        .collect();
    flagged.sort_by_key(|(r, _)| std::cmp::Reverse(r.updated_at));
    for (r, a) in &flagged {
        let (what, why, since) = match a {
            Attention::Stalled(s) => (
                badge("stalled"),
                format!(
                    "<code>{}</code> {}<div class=\"muted\">{}</div>",
                    escape(&s.what),
                    escape(&s.reason),
                    escape(&s.detail)
                ),
                age(s.since, ctx.now),
            ),
            Attention::Retrying(t) => (
                badge("retrying"),
                format!(
                    "{} failed attempts, next {}<div class=\"muted\">{}</div>",
                    t.attempts,
                    when(t.next_at),
                    escape(&t.last_error)
                ),
                age(r.updated_at, ctx.now),
            ),
            Attention::Idle(d) => (
                badge("idle"),
                format!("no change for {} while it owes a step", span(*d)),
                age(r.updated_at, ctx.now),
            ),
        };
        rows.push_str(&format!(
            "<tr data-run=\"{id}\"><td>{link}<div class=\"muted\">{project}</div></td><td>{stage} {what}</td>\
             <td>{why}</td><td class=\"nowrap\">{since}</td><td>{cmd}</td></tr>",
            id = escape(&r.id),
            link = anchor(ctx.base, &format!("ui/runs/{}", r.id), &r.id),
            project = escape(&r.project),
            stage = badge(r.stage.name()),
            cmd = command(&retry_command(&r.id)),
        ));
    }
    let mut b = String::from("<h2>Runs</h2>");
    b.push_str(&table(
        "Stalled runs",
        &["Run", "State", "Why", "Since", "To re-drive it"],
        &rows,
        "No run is stalled or idle.",
    ));
    let mut list: Vec<&Record> = dead.iter().collect();
    list.sort_by_key(|r| std::cmp::Reverse(r.recorded_at));
    let mut rows = String::new();
    for r in list {
        let replays = match r.replays.last() {
            None => badge("dead-lettered"),
            Some(last) => format!(
                "{} {}× <div class=\"muted\">last by {} {}</div>",
                badge("replayed"),
                r.replays.len(),
                escape(&last.by),
                age(last.at, ctx.now)
            ),
        };
        rows.push_str(&format!(
            "<tr data-queue=\"{queue}\"><td><code>{queue}</code><div class=\"muted\">{id}</div></td><td>{run}</td>\
             <td>{reason}<div class=\"muted\">{description}</div></td><td class=\"nowrap\">{recorded}</td><td>{replays}</td><td>{cmd}</td></tr>",
            queue = escape(&r.queue),
            id = r.sequence.map_or_else(|| escape(&r.key), |n| format!("#{n}")),
            run = r.run_id.as_deref().map_or_else(|| "—".to_owned(), |id| anchor(ctx.base, &format!("ui/runs/{id}"), id)),
            reason = escape(&r.reason),
            description = escape(&r.description),
            recorded = age(r.recorded_at, ctx.now),
            cmd = command(&replay_command(r)),
        ));
    }
    b.push_str("<h2>Dead letters</h2>");
    b.push_str(&table(
        "Dead letters",
        &[
            "Queue",
            "Run",
            "Reason",
            "Recorded",
            "Replays",
            "To send it again",
        ],
        &rows,
        "The dead-letter book is empty.",
    ));
    page("Stalled runs and dead letters", ctx.base, &b)
}

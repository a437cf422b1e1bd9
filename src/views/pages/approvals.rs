//! Runs waiting for a signed approval, each with the exact `fthub approve` command its
//! approvers run, and the approvals already refused for it.

use chrono::{DateTime, Utc};

use super::{Ctx, Releases, serves, shell_word};
use crate::domain::env::Env;
use crate::domain::run::{EnvStatus, Event, Run, Stage, Step, Transition};
use crate::domain::topology::Topology;
use crate::views::{age, anchor, badge, command, escape, page, when};

/// A run waiting for an approval into `env`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending<'a> {
    /// The run.
    pub run: &'a Run,
    /// Where it may go next.
    pub env: Env,
    /// Since when it has served in the environment before (its wait).
    pub since: DateTime<Utc>,
    /// Who may sign, from the topology (the project's own approvers, else the
    /// environment's), without the run's submitter for Prod.
    pub approvers: Vec<String>,
    /// The submitter is an approver but may not approve their own run into Prod.
    pub submitter_excluded: bool,
    /// Approvals for this environment already refused.
    pub refusals: Vec<&'a Transition>,
}

/// Every run that serves in the environment before Test or Prod and has no decision for
/// it yet: no approval, rejection, promotion or rollback recorded there.
pub fn pending<'a>(
    runs: &'a [Run],
    releases: &Releases,
    topology: Option<&Topology>,
) -> Vec<Pending<'a>> {
    let mut out = Vec::new();
    for run in runs {
        if run.stage == Stage::Cancelled || !run.evaluation.as_ref().is_some_and(|e| e.passed) {
            continue;
        }
        let serving = serves(releases, run);
        for env in [Env::Test, Env::Prod] {
            let Some(before) = env.requires() else {
                continue;
            };
            let undecided = run
                .environments
                .get(&env)
                .is_none_or(|s| s.status == EnvStatus::Pending && s.approved_by.is_none());
            if !serving.contains(&before) || !undecided {
                continue;
            }
            let since = releases
                .get(&run.project)
                .and_then(|r| r.current(before))
                .filter(|r| r.run_id == run.id)
                .map_or(run.updated_at, |r| r.at);
            let names: Vec<String> = topology
                .map(|t| {
                    t.approvers(env, &run.project)
                        .iter()
                        .map(|a| a.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            // The domain refuses a Prod approval by the run's own submitter.
            let submitter_excluded = env == Env::Prod && names.contains(&run.submitted_by);
            let approvers = names
                .into_iter()
                .filter(|n| !(submitter_excluded && *n == run.submitted_by))
                .collect();
            let refusals = run
                .history
                .iter()
                .filter(|t| {
                    t.to == Step::Event(Event::ApprovalRefused)
                        && t.detail.starts_with(&format!("{env} "))
                })
                .collect();
            out.push(Pending {
                run,
                env,
                since,
                approvers,
                submitter_excluded,
                refusals,
            });
        }
    }
    out.sort_by_key(|p| p.since);
    out
}

/// The commands that approve `p`: one per approver, or one with `NAME` to fill in when the
/// topology names nobody.
pub fn commands(p: &Pending<'_>) -> Vec<String> {
    let names = if p.approvers.is_empty() {
        vec!["NAME".to_owned()]
    } else {
        p.approvers.clone()
    };
    names
        .iter()
        .map(|n| {
            format!(
                "fthub approve {} --env {} --approver {} --key {}",
                shell_word(&p.run.id),
                p.env,
                shell_word(n),
                shell_word(&format!("{n}.key"))
            )
        })
        .collect()
}

/// One pending approval as a block: the run, its wait, its score, the commands and the
/// refusals so far.
pub fn item(ctx: &Ctx<'_>, p: &Pending<'_>) -> String {
    let r = p.run;
    let mut b = format!(
        "<div class=\"item\" data-run=\"{id}\" data-env=\"{env}\"><h3>{link} → {env}</h3>\
         <p>{project} · serves {before} since {since} · submitted by {who}{score}</p>",
        id = escape(&r.id),
        env = p.env,
        link = anchor(ctx.base, &format!("ui/runs/{}", r.id), &r.id),
        project = anchor(ctx.base, &format!("ui/projects/{}", r.project), &r.project),
        before = p.env.requires().map_or("", Env::name),
        since = age(p.since, ctx.now),
        who = escape(&r.submitted_by),
        score = r.evaluation.as_ref().map_or(String::new(), |e| format!(
            " · score {:.3} vs best baseline {:.3}",
            e.score, e.baseline_score
        )),
    );
    if p.approvers.is_empty() {
        b.push_str(&format!(
            "<p>{} The topology names no approver for {} of this project: add one (its public key from <code>fthub keygen</code>), then run with that name and key.</p>",
            badge("no approver"),
            p.env
        ));
    }
    for c in commands(p) {
        b.push_str(&command(&c));
    }
    b.push_str(
        "<p class=\"muted\">Run it where the key file is; add <code>--reason '…'</code> to say why, or <code>--reject</code> to refuse.</p>",
    );
    if p.submitter_excluded {
        b.push_str(&format!(
            "<p class=\"muted\">{} submitted this run and may not approve it into prod.</p>",
            escape(&r.submitted_by)
        ));
    }
    for t in &p.refusals {
        b.push_str(&format!(
            "<p>{} {} by {}: {}</p>",
            badge("refused"),
            when(t.time),
            escape(&t.actor),
            escape(&t.detail)
        ));
    }
    b.push_str("</div>");
    b
}

/// The page: every pending approval, longest waiting first.
pub fn approvals(ctx: &Ctx<'_>, runs: &[Run]) -> String {
    let list = pending(runs, ctx.releases, ctx.topology);
    let mut b = String::new();
    if list.is_empty() {
        b.push_str("<p class=\"muted\">No run is waiting for an approval.</p>");
    }
    for p in &list {
        b.push_str(&item(ctx, p));
    }
    page("Pending approvals", ctx.base, &b)
}

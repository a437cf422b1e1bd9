//! The estate: every environment's Spokes region by region, the projects and what serves
//! where, and one project's page (its releases, its deployments, its runs and approvals).

use super::approvals::{item, pending};
use super::runs::runs_table;
use super::{Ctx, Releases};
use crate::domain::env::Env;
use crate::domain::inventory::{Deployment, ReleaseKind};
use crate::domain::run::Run;
use crate::services::inventory::Estate;
use crate::views::{age, anchor, badge, escape, page, table, when};

/// One managed deployment in a region cell. A deployment serving another run than its
/// project's current release (a rollback still under way, a region that failed) says so.
fn deployment(ctx: &Ctx<'_>, env: Env, x: &Deployment, with_project: bool) -> String {
    let current = ctx
        .releases
        .get(&x.project)
        .and_then(|r| r.current(env))
        .map(|r| r.run_id.as_str());
    let behind = match current {
        Some(c) if c != x.run_id => format!(
            "<div>{} current release is {}</div>",
            badge("behind"),
            anchor(ctx.base, &format!("ui/runs/{c}"), c)
        ),
        _ => String::new(),
    };
    format!(
        "<div class=\"deployment\" data-project=\"{project}\" data-run=\"{run}\">{name}<div>{link} {health}</div>\
         <div><code>{model}</code></div><div class=\"muted\"><code>{dep}</code> · deployed {deployed}</div>\
         <div class=\"muted\">keepalive {ka}{lat}</div>{rest}{behind}</div>",
        project = escape(&x.project),
        run = escape(&x.run_id),
        name = if with_project {
            format!(
                "<div><b>{}</b></div>",
                anchor(ctx.base, &format!("ui/projects/{}", x.project), &x.project)
            )
        } else {
            String::new()
        },
        link = anchor(ctx.base, &format!("ui/runs/{}", x.run_id), &x.run_id),
        health = badge(x.health.name()),
        model = escape(&x.model),
        dep = escape(&x.deployment),
        deployed = age(x.deployed_at, ctx.now),
        ka = x.last_keepalive.map_or("never".into(), |t| age(t, ctx.now)),
        lat = x
            .last_latency_ms
            .map_or(String::new(), |ms| format!(" ({ms} ms)")),
        rest = if x.restorations > 0 {
            format!("<div>{} {}×</div>", badge("restored"), x.restorations)
        } else {
            String::new()
        },
    )
}

/// Each environment as a grid of region cells that wraps on a narrow screen: the Spoke,
/// its slots, and the deployments `only` (a project) or every project has there.
fn grid(ctx: &Ctx<'_>, estate: &Estate, only: Option<&str>) -> String {
    let mut b = String::from("<div id=\"matrix\">");
    for env in Env::ALL {
        let spokes: Vec<_> = estate.spokes.iter().filter(|(e, _, _)| *e == env).collect();
        b.push_str(&format!(
            "<section data-env=\"{env}\"><h2>{env}</h2><div class=\"grid\">"
        ));
        if spokes.is_empty() {
            b.push_str("<p class=\"muted\">No Spoke in the topology.</p>");
        }
        for (_, account, record) in spokes {
            b.push_str(&format!(
                "<article class=\"cell\" data-env=\"{env}\" data-region=\"{region}\"><h3>{region}</h3>\
                 <div class=\"muted\">{name} · {used} of {limit} slots</div>",
                region = escape(&account.region),
                name = escape(&account.name),
                used = record.used(),
                limit = account.deployment_slots,
            ));
            let shown: Vec<&Deployment> = record
                .deployments
                .values()
                .filter(|d| only.is_none_or(|p| d.project == p))
                .collect();
            if shown.is_empty() {
                b.push_str("<div class=\"muted\">nothing deployed</div>");
            }
            for x in shown {
                b.push_str(&deployment(ctx, env, x, only.is_none()));
            }
            if only.is_none() {
                for u in &record.unmanaged {
                    b.push_str(&format!(
                        "<div>{} <code>{}</code></div>",
                        badge("unmanaged"),
                        escape(&u.deployment)
                    ));
                }
            }
            b.push_str("</article>");
        }
        b.push_str("</div></section>");
    }
    b.push_str("</div>");
    b
}

/// The environment × region grid: every project's deployment on every Spoke, what it serves
/// and whether it is alive, with the slots in use.
pub fn environments(ctx: &Ctx<'_>, estate: &Estate) -> String {
    page("Environments", ctx.base, &grid(ctx, estate, None))
}

/// The serving run of `project` in `env` as a link, and how long it has served (and
/// whether a rollback put it there).
fn current(ctx: &Ctx<'_>, project: &str, env: Env) -> (String, String) {
    match ctx.releases.get(project).and_then(|r| r.current(env)) {
        None => ("<span class=\"muted\">—</span>".to_owned(), String::new()),
        Some(r) => (
            format!(
                "<span data-serves=\"{env}\">{}</span>",
                anchor(ctx.base, &format!("ui/runs/{}", r.run_id), &r.run_id)
            ),
            format!(
                "<span class=\"muted\">since {}{}</span>",
                age(r.at, ctx.now),
                if r.kind == ReleaseKind::Rollback {
                    " (rollback)"
                } else {
                    ""
                }
            ),
        ),
    }
}

/// Every project (from the release history and the topology) and what serves where.
pub fn projects(ctx: &Ctx<'_>, names: &[String]) -> String {
    let mut rows = String::new();
    for name in names {
        let cell = |env| {
            let (run, since) = current(ctx, name, env);
            format!("<td>{run}<div>{since}</div></td>")
        };
        rows.push_str(&format!(
            "<tr data-project=\"{}\"><td>{}</td>{}{}{}</tr>",
            escape(name),
            anchor(ctx.base, &format!("ui/projects/{name}"), name),
            cell(Env::Dev),
            cell(Env::Test),
            cell(Env::Prod),
        ));
    }
    let b = table(
        "Projects",
        &["Project", "Dev", "Test", "Prod"],
        &rows,
        "No project yet.",
    );
    page("Projects", ctx.base, &b)
}

/// One project: what serves in each environment now and in each region, the approvals it
/// waits for, its release history (newest first) and its runs.
pub fn project(ctx: &Ctx<'_>, name: &str, estate: &Estate, runs: &[Run]) -> String {
    let mut b = String::from("<div class=\"cards\">");
    for env in Env::ALL {
        let (run, since) = current(ctx, name, env);
        b.push_str(&format!(
            "<div class=\"card\" data-env=\"{env}\">{env}<b>{run}</b>{since}</div>"
        ));
    }
    b.push_str("</div>");
    let waiting = pending(runs, ctx.releases, ctx.topology);
    if !waiting.is_empty() {
        b.push_str("<h2>Waiting for approval</h2>");
        for p in &waiting {
            b.push_str(&item(ctx, p));
        }
    }
    b.push_str(&grid(ctx, estate, Some(name)));
    b.push_str("<h2>Releases</h2>");
    b.push_str(&releases_table(ctx, ctx.releases, name));
    b.push_str("<h2>Runs</h2>");
    b.push_str(&runs_table(ctx.base, runs, ctx.releases, ctx.now));
    page(&format!("Project {name}"), ctx.base, &b)
}

/// A project's releases per environment, newest first, the serving one marked.
fn releases_table(ctx: &Ctx<'_>, releases: &Releases, name: &str) -> String {
    let mut rows = String::new();
    for (env, list) in releases
        .get(name)
        .map(|r| &r.releases)
        .into_iter()
        .flatten()
    {
        for (i, r) in list.iter().enumerate().rev() {
            let mut marks = String::new();
            if i + 1 == list.len() {
                marks.push_str(&format!(
                    " <span class=\"badge ok\" data-serves=\"{env}\">serving</span>"
                ));
            }
            if r.rolled_back {
                marks.push_str(&format!(" {}", badge("rolled_back")));
            }
            let how = match r.kind {
                ReleaseKind::Promotion => "promotion",
                ReleaseKind::Rollback => "rollback",
                ReleaseKind::Migrated => "migrated",
            };
            rows.push_str(&format!(
                "<tr><td>{env}</td><td>{}{marks}</td><td>{how}</td><td>{}</td><td class=\"nowrap\">{}</td></tr>",
                anchor(ctx.base, &format!("ui/runs/{}", r.run_id), &r.run_id),
                escape(&r.by),
                when(r.at),
            ));
        }
    }
    table(
        "Releases",
        &["Environment", "Run", "How", "By", "When"],
        &rows,
        "Nothing released yet.",
    )
}

//! The dashboard's reads: for each page under `ui/`, what it shows, from storage, rendered by
//! [`crate::views::pages`]. Every page reads the release history, so what serves now is the
//! inventory's answer on every page.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::super::{deadletters, inventory, runs};
use crate::domain::run::Run;
use crate::domain::topology::Topology;
use crate::ports::{BlobError, BlobStore};
use crate::views::pages::runs::Summary;
use crate::views::pages::stalled::IdleLimits;
use crate::views::pages::{self, Ctx, Rejection};

/// Days of rejections the trail shows when no `day` is asked for.
const REJECTION_DAYS: i64 = 7;
/// Rejection records read for one page at most (newest days first).
const REJECTIONS_SHOWN: usize = 500;

/// What the dashboard needs to answer a request.
#[derive(Debug, Clone, Copy)]
pub struct Dashboard<'a> {
    /// The pipeline's storage.
    pub store: &'a dyn BlobStore,
    /// The estate, when the app has one.
    pub topology: Option<&'a Topology>,
    /// The status route as the browser reached it (with `?code=` when it had one), for links.
    pub base: &'a str,
    /// Now.
    pub now: DateTime<Utc>,
    /// When a run that owes a step counts as idle.
    pub idle: IdleLimits,
}

fn not_found(base: &str, what: &str) -> (u16, String) {
    (
        404,
        crate::views::page("Not found", base, &format!("<p>{what}</p>")),
    )
}

/// The page at `path` (`ui/…`), with its query; `None` when `path` is not a dashboard page.
///
/// # Errors
/// Storage failures.
pub async fn page(
    d: &Dashboard<'_>,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Result<Option<(u16, String)>, BlobError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let releases = inventory::projects(d.store).await?;
    let ctx = Ctx {
        base: d.base,
        now: d.now,
        topology: d.topology,
        releases: &releases,
        idle: d.idle,
    };
    Ok(Some(match parts.as_slice() {
        [] | ["ui"] | ["ui", "runs"] => {
            let all = runs::list(d.store).await?;
            let summary = summary(d, &ctx, &all).await?;
            (200, pages::runs(&ctx, &all, &summary))
        }
        ["ui", "runs", id] => match runs::get(d.store, id).await? {
            None => not_found(d.base, "No such run."),
            Some((run, _)) => (200, pages::run(&ctx, &run, &run_extras(d.store, id).await?)),
        },
        ["ui", "environments"] => (200, pages::environments(&ctx, &estate(d).await?)),
        ["ui", "projects"] => {
            let mut names: std::collections::BTreeSet<String> = releases.keys().cloned().collect();
            if let Some(t) = d.topology {
                names.extend(t.projects.keys().cloned());
            }
            names.extend(runs::list(d.store).await?.into_iter().map(|r| r.project));
            let names: Vec<String> = names.into_iter().collect();
            (200, pages::projects(&ctx, &names))
        }
        ["ui", "projects", name] => {
            let filter = runs::Filter {
                project: Some((*name).to_owned()),
                ..runs::Filter::default()
            };
            let recent = runs::page(d.store, &filter, 50, None).await?.runs;
            if !releases.contains_key(*name) && recent.is_empty() {
                not_found(d.base, "No such project.")
            } else {
                (200, pages::project(&ctx, name, &estate(d).await?, &recent))
            }
        }
        ["ui", "approvals"] => (200, pages::approvals(&ctx, &runs::list(d.store).await?)),
        ["ui", "stalled"] => {
            let all = runs::list(d.store).await?;
            let book = deadletters::list(d.store, None).await?;
            (200, pages::stalled(&ctx, &all, &book))
        }
        ["ui", "rejections"] => {
            let days = match query.get("day") {
                None => (0..REJECTION_DAYS)
                    .map(|n| (d.now - chrono::Duration::days(n)).date_naive())
                    .collect(),
                Some(day) => match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
                    Ok(day) => vec![day],
                    Err(_) => {
                        return Ok(Some((
                            400,
                            crate::views::page(
                                "Bad request",
                                d.base,
                                "<p>day must be yyyy-mm-dd.</p>",
                            ),
                        )));
                    }
                },
            };
            let list = rejections(d.store, &days).await?;
            (200, pages::rejections(&ctx, &days, &list))
        }
        ["ui", "reports", id, "evaluation.html"] => evaluation_report(d, id).await?,
        ["ui", "reports", id, "validation.html"] => {
            match stored(d.store, &format!("{id}/validation.html")).await? {
                Some(html) => (200, html),
                None => not_found(d.base, "No such report yet."),
            }
        }
        _ => return Ok(None),
    }))
}

/// The counts at the top of the runs page.
async fn summary(d: &Dashboard<'_>, ctx: &Ctx<'_>, all: &[Run]) -> Result<Summary, BlobError> {
    let today = d.now.format("%Y-%m-%d");
    Ok(Summary {
        approvals: pages::approvals::pending(all, ctx.releases, d.topology).len(),
        stalled: all
            .iter()
            .filter(|r| pages::stalled::attention(r, d.now, d.idle).is_some())
            .count(),
        dead_letters: deadletters::list(d.store, None)
            .await?
            .iter()
            .filter(|r| r.replays.is_empty())
            .count(),
        rejections_today: d
            .store
            .list(runs::AUDIT, &format!("rejections/{today}/"))
            .await?
            .len(),
    })
}

async fn estate(d: &Dashboard<'_>) -> Result<inventory::Estate, BlobError> {
    match d.topology {
        Some(t) => inventory::estate(d.store, t).await,
        None => Ok(inventory::Estate::default()),
    }
}

/// A report blob, if written.
async fn stored(store: &dyn BlobStore, name: &str) -> Result<Option<String>, BlobError> {
    match store.get(runs::REPORTS, name).await {
        Ok((_, b)) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(BlobError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A report's JSON, if written and readable.
async fn stored_json(store: &dyn BlobStore, name: &str) -> Result<Option<Value>, BlobError> {
    Ok(stored(store, name)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// The training metrics, the scores and the thresholds of a run.
async fn run_extras(store: &dyn BlobStore, id: &str) -> Result<pages::RunExtras, BlobError> {
    let metrics = stored(store, &format!("{id}/results.csv"))
        .await?
        .and_then(|csv| crate::domain::aoai::parse_results_csv(&csv).ok())
        .unwrap_or_default();
    let evaluation = stored_json(store, &format!("{id}/evaluation.json")).await?;
    Ok(pages::RunExtras {
        metrics,
        scores: evaluation.as_ref().map(scores_of).unwrap_or_default(),
        thresholds: evaluation.as_ref().and_then(thresholds_of),
        audit: runs::run_audit(store, id).await?,
    })
}

/// `evaluation.html`, drawn again from `evaluation.json` so its charts carry the thresholds
/// the run was judged against; the stored page when there is no JSON to draw from.
async fn evaluation_report(d: &Dashboard<'_>, id: &str) -> Result<(u16, String), BlobError> {
    if let Some(v) = stored_json(d.store, &format!("{id}/evaluation.json")).await? {
        let reasons: Vec<String> = v["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
        let body = crate::views::reports::evaluation_body(
            v["passed"].as_bool().unwrap_or(false),
            &reasons,
            &scores_of(&v),
            thresholds_of(&v).as_ref(),
        );
        return Ok((
            200,
            crate::views::page(&format!("Evaluation: {id}"), d.base, &body),
        ));
    }
    Ok(
        match stored(d.store, &format!("{id}/evaluation.html")).await? {
            Some(html) => (200, html),
            None => not_found(d.base, "No such report yet."),
        },
    )
}

/// Candidate then baselines from `evaluation.json`.
pub fn scores_of(v: &Value) -> Vec<crate::domain::evaluation::ModelScore> {
    std::iter::once(&v["candidate"])
        .chain(v["baselines"].as_array().into_iter().flatten())
        .filter_map(|s| serde_json::from_value(s.clone()).ok())
        .collect()
}

/// The thresholds recorded in `evaluation.json`.
pub fn thresholds_of(v: &Value) -> Option<crate::domain::topology::Thresholds> {
    serde_json::from_value(v.get("thresholds")?.clone()).ok()
}

/// The rejection records of `days`, newest day first, at most [`REJECTIONS_SHOWN`].
async fn rejections(
    store: &dyn BlobStore,
    days: &[NaiveDate],
) -> Result<Vec<Rejection>, BlobError> {
    let mut out = Vec::new();
    let mut days = days.to_vec();
    days.sort_unstable_by(|a, b| b.cmp(a));
    'days: for day in days {
        for blob in store
            .list(runs::AUDIT, &format!("rejections/{day}/"))
            .await?
        {
            if out.len() >= REJECTIONS_SHOWN {
                break 'days;
            }
            let bytes = match store.get(runs::AUDIT, &blob.name).await {
                Ok((_, b)) => b,
                // Listed, then gone: nothing to show.
                Err(BlobError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if let Some(r) = rejection_of(&bytes, &blob.name) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// One record as the host edge writes it; the function falls back to the blob's path
/// (`rejections/{day}/{function}/{id}.json`). `None` for a record that is not JSON.
pub fn rejection_of(bytes: &[u8], name: &str) -> Option<Rejection> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let at = v["at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.to_utc());
    let function = match text("function") {
        f if f.is_empty() => name.split('/').nth(2).unwrap_or_default().to_owned(),
        f => f,
    };
    Some(Rejection {
        at,
        function,
        kind: text("kind"),
        reason: text("reason"),
        invocation_id: text("invocation_id"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_record_reads_as_the_host_edge_wrote_it() {
        let r = rejection_of(
            br#"{"type":"invocation.rejected","at":"2030-01-02T03:04:05Z","function":"ApplyApproval",
                 "invocation_id":"inv-1","kind":"approval_refused","reason":"bad signature"}"#,
            "rejections/2030-01-02/ApplyApproval/inv-1.json",
        )
        .expect("a record");
        assert_eq!(r.function, "ApplyApproval");
        assert_eq!(r.kind, "approval_refused");
        assert_eq!(r.at.to_rfc3339(), "2030-01-02T03:04:05+00:00");
        let bare = rejection_of(b"{}", "rejections/2030-01-02/IntakeDeadLetters/x.json")
            .expect("a record");
        assert_eq!(bare.function, "IntakeDeadLetters", "named by its path");
        assert!(rejection_of(b"not json", "x").is_none());
    }

    #[test]
    fn thresholds_and_scores_come_from_the_evaluation_report() {
        let v: Value = serde_json::json!({
            "candidate": {"label": "candidate", "deployment": "eval-1", "examples": 3, "exact_match": 1.0, "token_f1": 1.0,
                          "latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "prompt_tokens": 1.0, "completion_tokens": 1.0,
                          "score": 1.0, "cost_per_1k_requests": 0.0},
            "baselines": [],
            "thresholds": {"min_score": 0.5, "min_gain": 0.2, "max_p95_latency_ms": 5000.0},
        });
        assert_eq!(thresholds_of(&v).map(|t| t.min_gain), Some(0.2));
        assert_eq!(scores_of(&v).len(), 1);
        assert_eq!(thresholds_of(&serde_json::json!({})), None);
    }
}

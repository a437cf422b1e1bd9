//! The status views: runs, one run with its parent (lineage), the environment × region
//! matrix, the healthy endpoints per environment, and the audit log. The `Status` function
//! serves them over HTTP; `fthub status --storage` reads them straight from storage.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{inventory, runs};
use crate::domain::topology::Topology;
use crate::ports::{BlobError, BlobStore};

/// One view: HTTP-style status (200 or 404) and the JSON body. `None` for the health route,
/// which only the handler can answer.
///
/// # Errors
/// Storage failures.
pub async fn view(
    store: &dyn BlobStore,
    topology: Option<&Topology>,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Result<(u16, Value), BlobError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    Ok(match parts.as_slice() {
        ["runs"] => {
            let filter = match filter_of(query) {
                Ok(f) => f,
                Err(e) => return Ok((400, json!({"error": "bad_query", "detail": e}))),
            };
            let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
                None => DEFAULT_PAGE,
                Some(Ok(n)) if (1..=1000).contains(&n) => n,
                Some(_) => {
                    return Ok((
                        400,
                        json!({"error": "bad_query", "detail": "limit must be a whole number from 1 to 1000"}),
                    ));
                }
            };
            let page = runs::page(
                store,
                &filter,
                limit,
                query.get("continuation").map(String::as_str),
            )
            .await?;
            let list: Vec<_> = page.runs.iter().map(run_summary).collect();
            (
                200,
                json!({"runs": list, "continuation": page.continuation}),
            )
        }
        ["runs", id] => match runs::get(store, id).await? {
            Some((run, _)) => {
                let parent = match &run.manifest.parent_run {
                    Some(p) => runs::get(store, p).await?.map(|(p, _)| {
                        json!({"id": p.id, "data_digest": p.data_digest, "hyperparameters": p.manifest.hyperparameters,
                               "metrics": p.metrics, "evaluation": p.evaluation})
                    }),
                    None => None,
                };
                (
                    200,
                    json!({"run": run, "parent": parent, "reports": format!("reports/{}/", run.id)}),
                )
            }
            None => (404, json!({"error": "not_found", "run": id})),
        },
        ["environments"] => {
            let (inv, _) = inventory::load(store).await?;
            (200, json!({"environments": inv.environments}))
        }
        ["endpoints"] => {
            let (inv, _) = inventory::load(store).await?;
            let mut out = serde_json::Map::new();
            for (env, e) in &inv.environments {
                let healthy: Vec<_> = e
                    .regions
                    .values()
                    .filter(|x| x.health == "healthy" || x.health == "restored")
                    .map(|x| {
                        let endpoint = topology
                            .and_then(|t| t.account(&x.account))
                            .map(|a| a.endpoint.clone());
                        json!({"region": x.region, "account": x.account, "endpoint": endpoint, "deployment": x.deployment})
                    })
                    .collect();
                out.insert(env.clone(), json!(healthy));
            }
            (200, json!({"endpoints": out}))
        }
        ["audit"] => {
            let day = query
                .get("day")
                .cloned()
                .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string());
            if chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").is_err() {
                return Ok((
                    400,
                    json!({"error": "bad_query", "detail": "day must be yyyy-mm-dd"}),
                ));
            }
            (
                200,
                json!({"day": day, "audit": runs::day_audit(store, &day).await?}),
            )
        }
        ["audit", id] => (200, json!({"audit": runs::run_audit(store, id).await?})),
        _ => (404, json!({"error": "not_found", "path": path})),
    })
}

/// Runs per page when the caller names no `limit`.
pub const DEFAULT_PAGE: usize = 50;

/// A run as a listing shows it.
pub fn run_summary(r: &crate::domain::run::Run) -> Value {
    json!({"id": r.id, "project": r.project, "submission": r.submission, "stage": r.stage, "submitted_by": r.submitted_by,
           "created_at": r.created_at, "updated_at": r.updated_at, "model": r.fine_tuned_model, "flags": r.flags,
           "stalled": r.stalled})
}

/// `project`, `stage` and `since` (RFC 3339) of a runs query.
///
/// # Errors
/// What is wrong with which parameter.
pub fn filter_of(query: &BTreeMap<String, String>) -> Result<runs::Filter, String> {
    let stage = match query.get("stage") {
        None => None,
        Some(s) => Some(crate::domain::run::Stage::parse(s).ok_or_else(|| {
            format!(
                "stage {s:?} is not one of {}",
                crate::domain::run::Stage::ALL.map(|s| s.name()).join(", ")
            )
        })?),
    };
    let since = match query.get("since") {
        None => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| format!("since {t:?} is not an RFC 3339 time: {e}"))?
                .to_utc(),
        ),
    };
    Ok(runs::Filter {
        project: query.get("project").cloned(),
        stage,
        since,
    })
}

/// The dashboard: `ui/runs`, `ui/runs/{id}`, `ui/environments`, and the stored HTML
/// reports `ui/reports/{id}/{validation,evaluation}.html`. `base` is the status route as the
/// browser reached it (with `?code=` when it had one), for links. `None` when `path` is not
/// a dashboard page.
///
/// # Errors
/// Storage failures.
pub async fn page(
    store: &dyn BlobStore,
    path: &str,
    base: &str,
) -> Result<Option<(u16, String)>, BlobError> {
    use crate::views::pages;
    let now = chrono::Utc::now();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    Ok(Some(match parts.as_slice() {
        [] | ["ui"] | ["ui", "runs"] => (200, pages::runs(base, &runs::list(store).await?, now)),
        ["ui", "runs", id] => match runs::get(store, id).await? {
            None => (
                404,
                crate::views::page("Not found", base, "<p>No such run.</p>"),
            ),
            Some((run, _)) => {
                let metrics = match store.get(runs::REPORTS, &format!("{id}/results.csv")).await {
                    Ok((_, b)) => {
                        crate::domain::aoai::parse_results_csv(&String::from_utf8_lossy(&b))
                            .unwrap_or_default()
                    }
                    Err(BlobError::NotFound { .. }) => Vec::new(),
                    Err(e) => return Err(e),
                };
                let scores = match store
                    .get(runs::REPORTS, &format!("{id}/evaluation.json"))
                    .await
                {
                    Ok((_, b)) => scores_of(&b),
                    Err(BlobError::NotFound { .. }) => Vec::new(),
                    Err(e) => return Err(e),
                };
                let extras = pages::RunExtras {
                    metrics,
                    scores,
                    audit: runs::run_audit(store, id).await?,
                };
                (200, pages::run(base, &run, &extras, now))
            }
        },
        ["ui", "environments"] => {
            let (inv, _) = inventory::load(store).await?;
            (200, pages::environments(base, &inv, now))
        }
        [
            "ui",
            "reports",
            id,
            file @ ("validation.html" | "evaluation.html"),
        ] => match store.get(runs::REPORTS, &format!("{id}/{file}")).await {
            Ok((_, b)) => (200, String::from_utf8_lossy(&b).into_owned()),
            Err(BlobError::NotFound { .. }) => (
                404,
                crate::views::page("Not found", base, "<p>No such report yet.</p>"),
            ),
            Err(e) => return Err(e),
        },
        _ => return Ok(None),
    }))
}

/// Candidate then baselines from `evaluation.json`.
pub fn scores_of(bytes: &[u8]) -> Vec<crate::domain::evaluation::ModelScore> {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    std::iter::once(&v["candidate"])
        .chain(v["baselines"].as_array().into_iter().flatten())
        .filter_map(|s| serde_json::from_value(s.clone()).ok())
        .collect()
}

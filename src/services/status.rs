//! The status views: runs, one run with its parent (lineage), the environment × region
//! matrix, the healthy endpoints per environment, and the audit log. The `Status` function
//! serves them over HTTP; `fthub status --storage` reads them straight from storage. The
//! dashboard's pages (HTML under `ui/`) are read in `dashboard`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

mod dashboard;

pub use dashboard::{Dashboard, page};

use super::{inventory, runs};
use crate::domain::env::Env;
use crate::domain::inventory::AccountRecord;
use crate::domain::queue::{Ledger, Queued};
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
                let position = if run.stage == crate::domain::run::Stage::Queued {
                    queue_line(store)
                        .await?
                        .iter()
                        .position(|r| *r == run.id)
                        .map(|p| p + 1)
                } else {
                    None
                };
                let parent = match &run.manifest.parent_run {
                    Some(p) => runs::get(store, p).await?.map(|(p, _)| {
                        json!({"id": p.id, "data_digest": p.data_digest, "hyperparameters": p.manifest.hyperparameters,
                               "metrics": p.metrics, "evaluation": p.evaluation})
                    }),
                    None => None,
                };
                // Who may approve this run where: `fthub approve` checks its approver and
                // key against these before it publishes (the keys are public).
                let approvers: serde_json::Map<String, Value> = topology
                    .map(|t| {
                        [crate::domain::env::Env::Test, crate::domain::env::Env::Prod]
                            .into_iter()
                            .map(|e| (e.name().to_owned(), json!(t.approvers(e, &run.project))))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    200,
                    json!({"run": run, "parent": parent, "queue_position": position, "reports": format!("reports/{}/", run.id),
                           "approvers": approvers}),
                )
            }
            None => (404, json!({"error": "not_found", "run": id})),
        },
        ["environments"] => (200, environments(store, topology).await?),
        ["endpoints"] => (200, endpoints(store, topology).await?),
        ["projects"] => (200, projects(store, topology).await?),
        ["projects", name] => match project(store, topology, name).await? {
            Some(v) => (200, v),
            None => (404, json!({"error": "not_found", "project": name})),
        },
        ["capacity"] => (200, capacity(store, topology).await?),
        ["submissions", project, submission] => {
            // Where SubmitRun's 202 points: the submission's runs once validation made them.
            let filter = runs::Filter {
                project: Some((*project).to_owned()),
                ..runs::Filter::default()
            };
            let mut found = Vec::new();
            let mut token = None;
            loop {
                let p = runs::page(store, &filter, 200, token.as_deref()).await?;
                found.extend(p.runs.into_iter().filter(|r| r.submission == *submission));
                match p.continuation {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            let list: Vec<Value> = found.iter().map(run_summary).collect();
            // No run yet: validating, unless intake gave up on it (its dead letter names the
            // blob, and says why; `fthub deadletters replay` sends it again).
            let prefix = format!("{project}/{submission}/");
            let failed: Vec<Value> = if list.is_empty() {
                crate::services::deadletters::list(store, Some("intake"))
                    .await?
                    .into_iter()
                    .filter(|r| {
                        serde_json::from_str::<Value>(&r.body).is_ok_and(|b| {
                            b["blob"].as_str().is_some_and(|n| n.starts_with(&prefix))
                        })
                    })
                    .map(|r| json!({"key": r.key, "sequence": r.sequence, "reason": r.reason, "description": r.description, "recorded_at": r.recorded_at, "replays": r.replays.len()}))
                    .collect()
            } else {
                Vec::new()
            };
            let state = match (list.is_empty(), failed.is_empty()) {
                (false, _) => "started",
                (true, true) => "validating",
                (true, false) => "dead_lettered",
            };
            (
                200,
                json!({"project": project, "submission": submission, "state": state, "runs": list, "dead_letters": failed}),
            )
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
    let serving: Vec<&str> = r.serving().into_iter().map(Env::name).collect();
    json!({"id": r.id, "project": r.project, "submission": r.submission, "stage": r.stage, "submitted_by": r.submitted_by,
           "created_at": r.created_at, "updated_at": r.updated_at, "model": r.fine_tuned_model, "flags": r.flags,
           "serving": serving, "waiting": r.waiting, "stalled": r.stalled})
}

/// The Hub's ledger (job slots, files, queue order).
///
/// # Errors
/// Storage failures; a ledger that does not decode.
pub async fn ledger(store: &dyn BlobStore) -> Result<Ledger, BlobError> {
    Ok(super::docs::read(store, runs::STATE, "hub/ledger.json")
        .await?
        .map(|(l, _)| l)
        .unwrap_or_default())
}

/// The runs waiting for a training slot, in the order they will be started.
///
/// # Errors
/// Storage failures.
pub async fn queue_line(store: &dyn BlobStore) -> Result<Vec<String>, BlobError> {
    let (active, _) = runs::active(store).await?;
    let waiting: Vec<Queued> = active
        .iter()
        .filter(|r| r.stage == crate::domain::run::Stage::Queued)
        .map(Queued::of)
        .collect();
    Ok(ledger(store).await?.line(&waiting))
}

/// Every account record: laid out by the topology when there is one, else every record in
/// storage by account name (the CLI reading storage without the topology).
async fn accounts(
    store: &dyn BlobStore,
    topology: Option<&Topology>,
) -> Result<Vec<(Option<Env>, String, String, AccountRecord, Option<usize>)>, BlobError> {
    if let Some(t) = topology {
        let e = inventory::estate(store, t).await?;
        return Ok(e
            .spokes
            .into_iter()
            .map(|(env, a, r)| {
                (
                    Some(env),
                    a.region.clone(),
                    a.name.clone(),
                    r,
                    Some(a.deployment_slots),
                )
            })
            .collect());
    }
    let mut out = Vec::new();
    for p in store.list(runs::STATE, "inventory/accounts/").await? {
        let Some(name) = p
            .name
            .strip_prefix("inventory/accounts/")
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        out.push((
            None,
            String::new(),
            name.to_owned(),
            inventory::account(store, name).await?,
            None,
        ));
    }
    Ok(out)
}

/// `status/environments`: every managed deployment per Spoke (project × environment ×
/// region), what fthub does not manage there, and the slots in use.
async fn environments(
    store: &dyn BlobStore,
    topology: Option<&Topology>,
) -> Result<Value, BlobError> {
    let mut out = serde_json::Map::new();
    for (env, region, account, r, limit) in accounts(store, topology).await? {
        if topology.is_some_and(|t| t.hub.name == account) {
            continue;
        }
        let key = env.map_or("unknown", Env::name).to_owned();
        let entry = out.entry(key).or_insert_with(|| json!({}));
        let deployments: Vec<&crate::domain::inventory::Deployment> =
            r.deployments.values().collect();
        entry[if region.is_empty() {
            account.clone()
        } else {
            region.clone()
        }] = json!({
            "account": account, "region": region, "deployments": deployments, "unmanaged": r.unmanaged,
            "slots": {"used": r.used(), "limit": limit}, "listed_at": r.listed_at,
        });
    }
    Ok(json!({"environments": out}))
}

/// `status/endpoints`: the healthy regional endpoints per project and environment — a
/// gateway's backend pool per project.
async fn endpoints(store: &dyn BlobStore, topology: Option<&Topology>) -> Result<Value, BlobError> {
    let mut out: BTreeMap<String, BTreeMap<&'static str, Vec<Value>>> = BTreeMap::new();
    for (env, region, account, r, _) in accounts(store, topology).await? {
        let Some(env) = env else { continue };
        for d in r.deployments.values().filter(|d| d.health.serves()) {
            let endpoint = topology
                .and_then(|t| t.account(&account))
                .map(|a| a.endpoint.clone());
            out.entry(d.project.clone()).or_default().entry(env.name()).or_default().push(
                json!({"region": region, "account": account, "endpoint": endpoint, "deployment": d.deployment, "run_id": d.run_id, "model": d.model}),
            );
        }
    }
    Ok(json!({"endpoints": out}))
}

/// `status/projects`: every project with its current release per environment.
async fn projects(store: &dyn BlobStore, topology: Option<&Topology>) -> Result<Value, BlobError> {
    let records = inventory::projects(store).await?;
    let mut names: std::collections::BTreeSet<String> = records.keys().cloned().collect();
    if let Some(t) = topology {
        names.extend(t.projects.keys().cloned());
    }
    let list: Vec<Value> = names
        .iter()
        .map(|name| {
            let rec = records.get(name).cloned().unwrap_or_default();
            let current: BTreeMap<&str, Option<&crate::domain::inventory::Release>> =
                Env::ALL.iter().map(|e| (e.name(), rec.current(*e))).collect();
            json!({"name": name, "deployment": topology.map(|t| t.deployment_name(name)), "current": current})
        })
        .collect();
    Ok(json!({"projects": list}))
}

/// `status/projects/{name}`: a project's releases per environment (newest last), its
/// deployments, and its newest runs.
async fn project(
    store: &dyn BlobStore,
    topology: Option<&Topology>,
    name: &str,
) -> Result<Option<Value>, BlobError> {
    let rec = inventory::project(store, name).await?;
    let filter = runs::Filter {
        project: Some(name.to_owned()),
        ..runs::Filter::default()
    };
    let recent = runs::page(store, &filter, 20, None).await?;
    let listed = topology.is_some_and(|t| t.projects.contains_key(name));
    if rec.releases.is_empty() && recent.runs.is_empty() && !listed {
        return Ok(None);
    }
    let mut deployments = Vec::new();
    for (env, region, account, r, _) in accounts(store, topology).await? {
        for d in r.deployments.values().filter(|d| d.project == name) {
            deployments.push(
                json!({"environment": env, "region": region, "account": account, "deployment": d}),
            );
        }
    }
    let runs: Vec<Value> = recent.runs.iter().map(run_summary).collect();
    Ok(Some(json!({
        "name": name, "deployment": topology.map(|t| t.deployment_name(name)),
        "settings": topology.map(|t| t.project(name)),
        "releases": rec.releases, "deployments": deployments, "runs": runs,
    })))
}

/// `status/capacity`: slots used per Spoke and on the Hub, the Hub's job slots, files and
/// queue, and the evaluations waiting for a Hub slot.
async fn capacity(store: &dyn BlobStore, topology: Option<&Topology>) -> Result<Value, BlobError> {
    let mut spokes = Vec::new();
    let mut hub = Value::Null;
    for (env, region, account, r, limit) in accounts(store, topology).await? {
        spokes.push(
            json!({"environment": env, "region": region, "account": account,
            "used": r.used(), "limit": limit, "holders": r.holders()}),
        );
    }
    let l = ledger(store).await?;
    if let Some(t) = topology {
        let r = inventory::account(store, &t.hub.name).await?;
        let limits = t.hub_limits;
        hub = json!({
            "account": t.hub.name,
            "evaluation_slots": {"used": r.used(), "limit": t.hub.deployment_slots, "holders": r.holders(), "waiting": r.waiting},
            "jobs": {"held": l.jobs.len(), "limit": limits.job_slots(), "running_limit": limits.running_jobs, "queued_limit": limits.queued_jobs},
            "files": {"in_use": l.files_in_use(), "limit": limits.files, "bytes_in_use": l.bytes_in_use(), "bytes_limit": limits.file_bytes, "retained": l.retained.len()},
        });
    }
    let line = queue_line(store).await?;
    Ok(json!({"spokes": spokes, "hub": hub, "queue": line, "paused_until": l.paused_until}))
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

//! `Status`
//!
//! - Trigger: `httpTrigger` GET `status/{*path}`.
//! - Input: the path under `status/`.
//! - Routes: `health`, `runs`, `runs/{id}` (with its parent, for lineage), `environments`
//!   (env x region matrix with the last keepalive), `endpoints` (healthy regional endpoints
//!   per environment: a gateway's backend pool), `audit`, `audit/{run_id}`.
//! - Outputs: `res` (JSON; the HTML dashboard arrives with issue #8).
//! - Retries: none; unknown paths answer 404.

use serde_json::json;

use crate::error::FunctionError;
use crate::host::trigger::HttpRequestData;
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;
use crate::services::{inventory, runs};

use super::{ALL, FunctionSpec, http_response};

/// Function name.
pub const NAME: &str = "Status";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "httpTrigger",
    trigger: "req",
    outputs: &["res"],
};

/// Handles one invocation.
///
/// # Errors
/// Terminal when the request payload is malformed; retryable storage failures.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let req = HttpRequestData::decode(inv, SPEC.trigger)?;
    let path = req
        .params
        .get("path")
        .map(|p| p.trim_matches('/'))
        .unwrap_or("");
    let store = state.pipeline.store.as_ref();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let res = match parts.as_slice() {
        [] | ["health"] => http_response(
            200,
            &json!({
                "service": "fthub",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_seconds": state.started.elapsed().as_secs(),
                "functions": ALL.iter().map(|s| json!({"name": s.name, "trigger": s.trigger_type})).collect::<Vec<_>>(),
            }),
        ),
        ["runs"] => {
            let list: Vec<_> = runs::list(store)
                .await?
                .into_iter()
                .map(|r| {
                    json!({"id": r.id, "project": r.project, "submission": r.submission, "stage": r.stage, "submitted_by": r.submitted_by,
                           "created_at": r.created_at, "updated_at": r.updated_at, "model": r.fine_tuned_model, "flags": r.flags})
                })
                .collect();
            http_response(200, &json!({"runs": list}))
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
                http_response(
                    200,
                    &json!({"run": run, "parent": parent, "reports": format!("reports/{}/", run.id)}),
                )
            }
            None => http_response(404, &json!({"error": "not_found", "run": id})),
        },
        ["environments"] => {
            let (inv, _) = inventory::load(store).await?;
            http_response(200, &json!({"environments": inv.environments}))
        }
        ["endpoints"] => {
            let (inv, _) = inventory::load(store).await?;
            let topo = &state.pipeline.topology;
            let mut out = serde_json::Map::new();
            for (env, e) in &inv.environments {
                let healthy: Vec<_> = e
                    .regions
                    .values()
                    .filter(|x| x.health == "healthy" || x.health == "restored")
                    .filter_map(|x| topo.account(&x.account).map(|a| json!({"region": x.region, "endpoint": a.endpoint, "deployment": x.deployment})))
                    .collect();
                out.insert(env.clone(), json!(healthy));
            }
            http_response(200, &json!({"endpoints": out}))
        }
        ["audit"] => http_response(
            200,
            &json!({"audit": runs::audit_lines(store, None).await?}),
        ),
        ["audit", id] => http_response(
            200,
            &json!({"audit": runs::audit_lines(store, Some(id)).await?}),
        ),
        _ => http_response(404, &json!({"error": "not_found", "path": path})),
    };
    let mut resp = InvokeResponse::default();
    resp.outputs.insert("res".into(), res);
    Ok(resp)
}

//! The status views: runs, one run with its parent (lineage), the environment × region
//! matrix, the healthy endpoints per environment, and the audit log. The `Status` function
//! serves them over HTTP; `fthub status --storage` reads them straight from storage.

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
) -> Result<(u16, Value), BlobError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    Ok(match parts.as_slice() {
        ["runs"] => {
            let list: Vec<_> = runs::list(store)
                .await?
                .into_iter()
                .map(|r| {
                    json!({"id": r.id, "project": r.project, "submission": r.submission, "stage": r.stage, "submitted_by": r.submitted_by,
                           "created_at": r.created_at, "updated_at": r.updated_at, "model": r.fine_tuned_model, "flags": r.flags})
                })
                .collect();
            (200, json!({"runs": list}))
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
        ["audit"] => (200, json!({"audit": runs::audit_lines(store, None).await?})),
        ["audit", id] => (
            200,
            json!({"audit": runs::audit_lines(store, Some(id)).await?}),
        ),
        _ => (404, json!({"error": "not_found", "path": path})),
    })
}

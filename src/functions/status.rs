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

use crate::app::AppState;
use crate::error::FunctionError;
use crate::host::trigger::HttpRequestData;
use crate::host::{Invocation, InvokeResponse};
use crate::services::status;

use super::{ALL, FunctionSpec, html_response, http_response};

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
    // Browsers get the dashboard; API clients get JSON.
    let wants_html = req
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("accept") && v.contains("text/html"));
    if parts.first() == Some(&"ui") || (parts.is_empty() && wants_html) {
        let (code, html) = status::page(
            store,
            Some(&state.pipeline.topology),
            path,
            &dashboard_base(&req),
        )
        .await?
        .unwrap_or_else(|| {
            (
                404,
                crate::views::page("Not found", "", "<p>No such page.</p>"),
            )
        });
        let mut resp = InvokeResponse::default();
        resp.outputs
            .insert("res".into(), html_response(code, &html));
        return Ok(resp);
    }
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
        _ => {
            let (code, body) =
                status::view(store, Some(&state.pipeline.topology), path, &req.query).await?;
            http_response(code, &body)
        }
    };
    let mut resp = InvokeResponse::default();
    resp.outputs.insert("res".into(), res);
    Ok(resp)
}

/// The status route as the browser reached it, keeping `?code=` (the function key) for
/// links: `/api/status/` from `http://host/api/status/ui/runs?code=…`.
fn dashboard_base(req: &HttpRequestData) -> String {
    let path = req
        .url
        .split_once("://")
        .map_or(req.url.as_str(), |(_, rest)| {
            rest.find('/').map_or("/", |i| &rest[i..])
        });
    let path = path.split('?').next().unwrap_or("/");
    let root = path.find("/status").map_or("/api/status/".to_owned(), |i| {
        format!("{}/", &path[..i + 7])
    });
    match req.query.get("code") {
        Some(code) => format!("{root}?code={code}"),
        None => root,
    }
}

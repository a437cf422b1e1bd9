//! `Status`
//!
//! - Trigger: `httpTrigger` GET `status/{*path}`.
//! - Input: the path under `status/`.
//! - Routes: `health`, `runs`, `runs/{id}` (with its parent, for lineage), `environments`
//!   (env x region matrix with the last keepalive), `endpoints` (healthy regional endpoints
//!   per environment: a gateway's backend pool), `audit`, `audit/{run_id}`; and the HTML
//!   dashboard under `ui/` (runs, projects, environments, approvals, stalled runs and dead
//!   letters, rejections, reports), also what a browser gets for the bare route.
//! - Outputs: `res` (JSON, or HTML for the dashboard).
//! - Retries: none; unknown paths answer 404.

use serde_json::json;

use crate::app::AppState;
use crate::error::FunctionError;
use crate::host::trigger::HttpRequestData;
use crate::host::{Invocation, InvokeResponse};
use crate::services::status;
use crate::views::pages::stalled::IdleLimits;

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
        let base = dashboard_base(&req);
        let dashboard = status::Dashboard {
            store,
            topology: Some(&state.pipeline.topology),
            base: &base,
            now: state.pipeline.clock.now(),
            idle: idle_limits(state),
        };
        let (code, html) = status::page(&dashboard, path, &req.query)
            .await?
            .unwrap_or_else(|| {
                (
                    404,
                    crate::views::page("Not found", &base, "<p>No such page.</p>"),
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

/// A run owing a step counts as idle after three reconcile graces without a change (the
/// reconciler re-drives it after one), a training run after the training deadline.
fn idle_limits(state: &AppState) -> IdleLimits {
    let grace = chrono::Duration::from_std(state.pipeline.reconcile_grace)
        .unwrap_or(chrono::Duration::minutes(2));
    IdleLimits {
        step: (grace * 3).max(chrono::Duration::minutes(10)),
        training: chrono::Duration::hours(state.pipeline.topology.defaults.training_deadline_hours),
    }
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
    // The host hands the key over decoded; a `+` or `/` in it must survive the next request.
    match req.query.get("code") {
        Some(code) => format!(
            "{root}?code={}",
            url::form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>()
        ),
        None => root,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str, code: Option<&str>) -> HttpRequestData {
        HttpRequestData {
            url: url.into(),
            method: "GET".into(),
            query: code
                .map(|c| [("code".to_owned(), c.to_owned())].into())
                .unwrap_or_default(),
            headers: Default::default(),
            params: Default::default(),
            body: None,
        }
    }

    #[test]
    fn links_start_at_the_status_route_and_keep_the_function_key_encoded() {
        assert_eq!(
            dashboard_base(&request("http://h/api/status/ui/runs", None)),
            "/api/status/"
        );
        assert_eq!(
            dashboard_base(&request(
                "https://app.azurewebsites.net/api/status/ui/runs/x?code=a%2Bb%3D%3D",
                Some("a+b==")
            )),
            "/api/status/?code=a%2Bb%3D%3D"
        );
    }
}

//! `Status`
//!
//! - Trigger: `httpTrigger` GET `status/{*path}`.
//! - Input: the path under `status/`.
//! - Outputs: `res` (JSON now; the HTML dashboard arrives with issue #8).
//! - Retries: none; unknown paths answer 404.

use serde_json::json;

use crate::error::FunctionError;
use crate::host::trigger::HttpRequestData;
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;

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
/// Terminal when the request payload is malformed.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let req = HttpRequestData::decode(inv, SPEC.trigger)?;
    let path = req
        .params
        .get("path")
        .map(|p| p.trim_matches('/'))
        .unwrap_or("");
    let res = match path {
        "" | "health" => http_response(
            200,
            &json!({
                "service": "fthub",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_seconds": state.started.elapsed().as_secs(),
                "functions": ALL.iter().map(|s| json!({"name": s.name, "trigger": s.trigger_type})).collect::<Vec<_>>(),
            }),
        ),
        other => http_response(404, &json!({"error": "not_found", "path": other})),
    };
    let mut resp = InvokeResponse::default();
    resp.outputs.insert("res".into(), res);
    Ok(resp)
}

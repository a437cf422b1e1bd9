//! `SubmitRun`
//!
//! - Trigger: `httpTrigger` POST `runs/{id?}/{action?}` (auth level `function`).
//! - Input: `POST runs` with `{"project": ..., "submission": ...}` naming a dataset already
//!   in `datasets/`; `POST runs/{id}/retry` and `POST runs/{id}/cancel` with
//!   `{"actor": ..., "reason": ...}` (the actor defaults to the App Service Authentication
//!   principal, `x-ms-client-principal-name`).
//! - Outputs: `res`, `intake` (queue), `notifications`.
//! - Answers `POST runs` with 202 at once: `{project, submission, blob, status}`, `status`
//!   being `/api/status/submissions/{project}/{submission}` (the run, once validation created
//!   it); the work goes to `ValidateSubmission` on the `intake` queue.
//! - Idempotency: the run id derives from the submission, its content digests and its
//!   manifest's settings.
//! - Retries: a malformed request answers 400 to its caller; nothing is retried.

use serde_json::json;

use crate::app::AppState;
use crate::error::FunctionError;
use crate::host::trigger::HttpRequestData;
use crate::host::{Invocation, InvokeResponse};

use super::{FunctionSpec, http_response};

/// Function name.
pub const NAME: &str = "SubmitRun";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "httpTrigger",
    trigger: "req",
    outputs: &["res", "intake", "notifications"],
};

/// Handles one invocation: starts (or finds) the run of a submission already in storage.
///
/// # Errors
/// Terminal for a request without a JSON body naming a project and a submission.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let req = HttpRequestData::decode(inv, SPEC.trigger)?;
    if let Some(id) = req.params.get("id").filter(|s| !s.is_empty()) {
        return operate(state, &req, id).await;
    }
    let body = req.body.as_deref().unwrap_or("");
    let doc: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        FunctionError::terminal("bad_request", format!("the body is not JSON: {e}"))
    })?;
    let field = |k: &str| {
        doc.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (Some(project), Some(submission)) = (field("project"), field("submission")) else {
        return Err(FunctionError::terminal(
            "bad_request",
            "the body must name \"project\" and \"submission\"",
        ));
    };
    let blob = format!("{project}/{submission}/manifest.json");
    crate::domain::dataset_path::DatasetPath::parse(
        crate::domain::dataset_path::DATASETS_CONTAINER,
        &blob,
    )
    .map_err(|e| FunctionError::terminal("bad_request", e.to_string()))?;
    tracing::info!(%project, %submission, "Run submission received.");
    // Answer at once (the HTTP front end gives up after 230 s): validation and the Hub upload
    // run in ValidateSubmission; the status URL shows the run once it exists.
    let status = format!("/api/status/submissions/{project}/{submission}");
    let res = http_response(
        202,
        &json!({"project": project, "submission": submission, "blob": format!("datasets/{blob}"), "status": status}),
    );
    let emitted = crate::services::pipeline::Emitted {
        notifications: Vec::new(),
        next: vec![crate::domain::messages::Message::DatasetArrived { blob, etag: None }],
    };
    let mut resp = super::emit(emitted, &SPEC);
    resp.outputs.insert("res".into(), res);
    Ok(resp)
}

/// `POST runs/{id}/retry|cancel`.
async fn operate(
    state: &AppState,
    req: &HttpRequestData,
    id: &str,
) -> Result<InvokeResponse, FunctionError> {
    let doc: serde_json::Value = match req.body.as_deref().map(str::trim) {
        None | Some("") => json!({}),
        Some(b) => serde_json::from_str(b).map_err(|e| {
            FunctionError::terminal("bad_request", format!("the body is not JSON: {e}"))
        })?,
    };
    let text = |k: &str| {
        doc.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let actor = text("actor")
        .map(str::to_owned)
        .or_else(|| req.headers.get("x-ms-client-principal-name").cloned())
        .unwrap_or_else(|| "operator".into());
    let reason = text("reason").unwrap_or("no reason given").to_owned();
    tracing::info!(run_id = %id, %actor, action = ?req.params.get("action"), "Operator action received.");
    let (emitted, body) = match req.params.get("action").map(String::as_str) {
        Some("retry") => {
            let what = state.pipeline.retry_run(id, &actor, &reason).await?;
            (
                crate::services::pipeline::Emitted::default(),
                json!({"run_id": id, "action": "retry", "scheduled": what, "by": actor}),
            )
        }
        Some("cancel") => {
            let e = state.pipeline.cancel_run(id, &actor, &reason).await?;
            (
                e,
                json!({"run_id": id, "action": "cancel", "stage": "cancelled", "by": actor}),
            )
        }
        other => {
            return Err(FunctionError::terminal(
                "bad_request",
                format!("unknown action {other:?}: use retry or cancel"),
            ));
        }
    };
    let mut resp = super::emit(emitted, &SPEC);
    resp.outputs.insert("res".into(), http_response(200, &body));
    Ok(resp)
}

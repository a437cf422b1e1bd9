//! `SubmitRun`
//!
//! - Trigger: `httpTrigger` POST `runs` (auth level `function`).
//! - Input: `{"project": ..., "submission": ...}` naming a dataset already in `datasets/`.
//! - Outputs: `res`, `notifications`.
//! - Idempotency: the run id derives from the submission and its content digest.
//! - Retries: a malformed request answers 400 to its caller; nothing is retried.

use serde_json::json;

use crate::error::FunctionError;
use crate::host::trigger::HttpRequestData;
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;

use super::{FunctionSpec, http_response};

/// Function name.
pub const NAME: &str = "SubmitRun";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "httpTrigger",
    trigger: "req",
    outputs: &["res", "notifications"],
};

/// Handles one invocation: starts (or finds) the run of a submission already in storage.
///
/// # Errors
/// Terminal for a request without a JSON body naming a project and a submission.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let req = HttpRequestData::decode(inv, SPEC.trigger)?;
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
    tracing::info!(%project, %submission, "Run submission received.");
    let emitted = state
        .pipeline
        .on_dataset_blob(&format!("{project}/{submission}/manifest.json"))
        .await?;
    let res = http_response(
        202,
        &json!({"project": project, "submission": submission, "events": emitted.notifications}),
    );
    let mut resp = super::emit(emitted, None);
    resp.outputs.insert("res".into(), res);
    Ok(resp)
}

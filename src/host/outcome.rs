//! The single place where a function's result becomes an HTTP answer to the host.
//!
//! - `Ok` → 200 with the outputs.
//! - Terminal error → 200: the rejection is written to `audit/rejections/...` and emitted
//!   on the function's `notifications` output (HTTP functions answer their caller 4xx via
//!   `res`), so the host completes the message instead of redelivering it ten times.
//! - Retryable error, or a rejection that could not be recorded → 500: the host abandons
//!   the message (Service Bus redelivers it) or fails the run (the timer runs again).
//!
//! The error is logged here, once, inside the invocation's span.

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};

use crate::error::{ErrorClass, FunctionError};
use crate::functions::FunctionSpec;
use crate::host::envelope::InvokeResponse;
use crate::ports::{BlobStore, Condition};

/// Container and prefix of rejection records.
pub const REJECTIONS: (&str, &str) = ("audit", "rejections");

/// The answer to send: status and body (the body is always an envelope, never empty).
pub async fn respond(
    spec: &FunctionSpec,
    invocation_id: &str,
    result: Result<InvokeResponse, FunctionError>,
    store: &dyn BlobStore,
) -> (StatusCode, InvokeResponse) {
    match result {
        Ok(resp) => match undeclared_output(spec, &resp) {
            None => (StatusCode::OK, resp),
            Some(name) => {
                // A programming error: the host would drop the value or fail the binding.
                tracing::error!(output = %name, "Function wrote an output its function.json does not declare.");
                failure(format!("undeclared output {name:?}"))
            }
        },
        Err(err) if err.class() == ErrorClass::Terminal => {
            reject(spec, invocation_id, &err, store).await
        }
        Err(err) => {
            tracing::error!(error.kind = err.kind(), error.message = %err.chain(), "Invocation failed; the host will retry.");
            failure(format!("{}: {}", err.kind(), err))
        }
    }
}

fn undeclared_output(spec: &FunctionSpec, resp: &InvokeResponse) -> Option<String> {
    resp.outputs
        .keys()
        .find(|k| !spec.outputs.contains(&k.as_str()))
        .cloned()
}

fn failure(line: String) -> (StatusCode, InvokeResponse) {
    // The host ignores Logs on a non-2xx answer, but an empty body is never sent.
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        InvokeResponse::default().log(line),
    )
}

async fn reject(
    spec: &FunctionSpec,
    invocation_id: &str,
    err: &FunctionError,
    store: &dyn BlobStore,
) -> (StatusCode, InvokeResponse) {
    let now = Utc::now();
    let record = json!({
        "type": "invocation.rejected",
        "at": now.to_rfc3339(),
        "function": spec.name,
        "invocation_id": invocation_id,
        "kind": err.kind(),
        "reason": err.chain(),
    });
    let (container, prefix) = REJECTIONS;
    let name = format!(
        "{prefix}/{}/{}/{}.json",
        now.format("%Y-%m-%d"),
        spec.name,
        safe_id(invocation_id)
    );
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    match store
        .put(container, &name, &bytes, Condition::IfNotExists)
        .await
    {
        // AlreadyExists: a redelivery of an invocation already rejected; it stays rejected.
        Ok(_) | Err(crate::ports::BlobError::AlreadyExists { .. }) => {}
        Err(e) => {
            tracing::error!(error.kind = err.kind(), error.message = %err.chain(), record_error = %e,
                "Invocation rejected but the rejection could not be recorded; failing so the host retries.");
            return failure(format!("rejection not recorded: {e}"));
        }
    }
    tracing::warn!(error.kind = err.kind(), error.message = %err.chain(), record = %format!("{container}/{name}"), "Invocation rejected.");
    let mut resp = InvokeResponse::default().log(format!("rejected ({}): {}", err.kind(), err));
    if spec.outputs.contains(&"notifications") {
        resp.outputs
            .insert("notifications".into(), Value::String(record.to_string()));
    }
    if spec.outputs.contains(&"res") {
        resp.outputs.insert(
            "res".into(),
            json!({"statusCode": 400, "headers": {"Content-Type": "application/json"},
                   "body": json!({"error": err.kind(), "detail": err.to_string()}).to_string()}),
        );
    }
    (StatusCode::OK, resp)
}

/// Invocation ids come from a header; keep only characters safe in a blob name.
fn safe_id(id: &str) -> String {
    let s: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    if s.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        s
    }
}

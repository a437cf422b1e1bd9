//! One module per Azure function. Each is `functions/NAME/function.json` in the app, and
//! `POST /NAME` here. A handler decodes its trigger, calls a service, and encodes outputs.
//!

pub mod apply_approval;
pub mod dataset_arrived;
pub mod dead_letters;
pub mod evaluate_candidate;
pub mod keep_warm;
pub mod promote_on_evaluation;
pub mod status;
pub mod submit_run;
pub mod training_monitor;

use serde_json::{Value, json};

use crate::error::FunctionError;
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;
use crate::services::pipeline::Emitted;

/// What the handler knows about one function; checked against its function.json by test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Function name: folder name and URL path.
    pub name: &'static str,
    /// The trigger's binding type in function.json.
    pub trigger_type: &'static str,
    /// The trigger's binding name.
    pub trigger: &'static str,
    /// Output binding names the handler may write.
    pub outputs: &'static [&'static str],
}

/// Every function, in DESIGN.md's order.
pub const ALL: [FunctionSpec; 11] = [
    dataset_arrived::SPEC,
    submit_run::SPEC,
    training_monitor::SPEC,
    evaluate_candidate::SPEC,
    promote_on_evaluation::SPEC,
    apply_approval::SPEC,
    keep_warm::SPEC,
    status::SPEC,
    dead_letters::TRAINING_COMPLETED,
    dead_letters::EVALUATION_COMPLETED,
    dead_letters::APPROVALS,
];

/// The spec of a function by name.
pub fn spec(name: &str) -> Option<&'static FunctionSpec> {
    ALL.iter().find(|s| s.name == name)
}

/// Runs the function named in the invocation. `None` when there is no such function.
pub async fn dispatch(
    state: &AppState,
    inv: &Invocation,
) -> Option<Result<InvokeResponse, FunctionError>> {
    Some(match inv.function.as_str() {
        dataset_arrived::NAME => dataset_arrived::run(state, inv).await,
        submit_run::NAME => submit_run::run(state, inv).await,
        training_monitor::NAME => training_monitor::run(state, inv).await,
        evaluate_candidate::NAME => evaluate_candidate::run(state, inv).await,
        promote_on_evaluation::NAME => promote_on_evaluation::run(state, inv).await,
        apply_approval::NAME => apply_approval::run(state, inv).await,
        keep_warm::NAME => keep_warm::run(state, inv).await,
        status::NAME => status::run(state, inv).await,
        name => {
            let (_, queue) = dead_letters::QUEUES.iter().find(|(f, _)| *f == name)?;
            dead_letters::run(state, inv, queue).await
        }
    })
}

/// Puts what a pipeline step emitted on the function's outputs: notifications on the
/// topic, follow-up messages on the queue output named `next`.
pub(crate) fn emit(emitted: Emitted, next: Option<&str>) -> InvokeResponse {
    let mut resp = InvokeResponse::default();
    let count = emitted.notifications.len() + emitted.next.len();
    if !emitted.notifications.is_empty() {
        resp.outputs
            .insert("notifications".into(), Value::Array(emitted.notifications));
    }
    if let Some(name) = next
        && !emitted.next.is_empty()
    {
        resp.outputs.insert(name.into(), Value::Array(emitted.next));
    }
    resp.log(format!("{count} message(s) emitted"))
}

/// The `run_id` of a pipeline message.
pub(crate) fn run_id_of(inv: &Invocation, trigger: &str) -> Result<String, FunctionError> {
    let msg = crate::host::trigger::ServiceBusMessage::decode(inv, trigger)?;
    let body = msg.json_object()?;
    body.get("run_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| FunctionError::terminal("malformed_payload", "the message has no run_id"))
}

/// The `res` output for an HTML page (`statusCode`, string headers, body as text so the
/// host writes it verbatim).
pub fn html_response(status: u16, html: &str) -> Value {
    json!({
        "statusCode": status,
        "headers": {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        "body": html,
    })
}

/// An HTTP output binding value for a JSON answer (`statusCode`, string headers, body as
/// text so the host writes it verbatim).
pub fn http_response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": body.to_string(),
    })
}

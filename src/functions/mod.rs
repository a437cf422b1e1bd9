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
pub mod validate_submission;

use serde_json::{Value, json};

use crate::app::AppState;
use crate::domain::messages::Message;
use crate::error::FunctionError;
use crate::host::{Invocation, InvokeResponse};
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

/// Every function, in the order a run meets them.
pub const ALL: [FunctionSpec; 13] = [
    dataset_arrived::SPEC,
    submit_run::SPEC,
    validate_submission::SPEC,
    training_monitor::SPEC,
    evaluate_candidate::SPEC,
    promote_on_evaluation::SPEC,
    apply_approval::SPEC,
    keep_warm::SPEC,
    status::SPEC,
    dead_letters::TRAINING_COMPLETED,
    dead_letters::EVALUATION_COMPLETED,
    dead_letters::APPROVALS,
    dead_letters::INTAKE,
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
        validate_submission::NAME => validate_submission::run(state, inv).await,
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

/// A step another live invocation is performing (its claim is renewed while it works) is
/// not this delivery's failure: the message is completed, not retried into a dead letter.
/// The holder emits what follows, and should it die, the reconciler re-drives the step.
pub(crate) fn unless_busy(
    result: Result<Emitted, crate::services::pipeline::PipelineError>,
) -> Result<Emitted, crate::services::pipeline::PipelineError> {
    match result {
        Err(crate::services::pipeline::PipelineError::Busy { step }) => {
            tracing::info!(%step, "Step in progress in another invocation; this delivery completes.");
            Ok(Emitted::default())
        }
        other => other,
    }
}

/// The output binding each queue message goes to, by the queue it is for.
fn output_of(m: &Message) -> &'static str {
    match m {
        Message::DatasetArrived { .. } => "intake",
        Message::TrainingCompleted { .. } => "trainingCompleted",
        Message::EvaluationCompleted { .. } => "evaluationCompleted",
    }
}

/// Puts what a pipeline step emitted on the function's outputs: notifications on the
/// topic, each queue message on the output of its queue. A message for a queue the
/// function has no output for is left to the reconciler, which re-drives every idle step.
pub(crate) fn emit(emitted: Emitted, spec: &FunctionSpec) -> InvokeResponse {
    let mut resp = InvokeResponse::default();
    let mut count = 0;
    if !emitted.notifications.is_empty() && spec.outputs.contains(&"notifications") {
        count += emitted.notifications.len();
        let values = emitted
            .notifications
            .iter()
            .filter_map(|n| serde_json::to_value(n).ok())
            .collect();
        resp.outputs
            .insert("notifications".into(), Value::Array(values));
    }
    for m in &emitted.next {
        let out = output_of(m);
        if !spec.outputs.contains(&out) {
            tracing::debug!(
                output = out,
                run_id = m.run_id(),
                "No output for this message here; the reconciler re-drives the step."
            );
            continue;
        }
        count += 1;
        let slot = resp
            .outputs
            .entry(out.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let (Value::Array(list), Ok(v)) = (slot, serde_json::to_value(m)) {
            list.push(v);
        }
    }
    resp.log(format!("{count} message(s) emitted"))
}

/// The pipeline message a Service Bus trigger delivered; a body from an earlier version
/// (`{run_id}` with no type) is read as `fallback`.
pub(crate) fn message_of(
    inv: &Invocation,
    trigger: &str,
    fallback: impl FnOnce(String) -> Message,
) -> Result<Message, FunctionError> {
    let msg = crate::host::trigger::ServiceBusMessage::decode(inv, trigger)?;
    let body = Value::Object(msg.json_object()?);
    Message::decode(&body, fallback).map_err(|e| {
        FunctionError::terminal("malformed_payload", format!("not a pipeline message: {e}"))
    })
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

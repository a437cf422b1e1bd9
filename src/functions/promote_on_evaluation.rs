//! `PromoteOnEvaluation`
//!
//! - Trigger: `serviceBusTrigger` on queue `evaluation-completed`.
//! - Input: a JSON object message:an evaluation verdict: promote a passing candidate to Dev (issue #5).
//! - Outputs: `notifications`.
//! - Idempotency: the Service Bus `MessageId`.
//! - Retries: a body that is not a JSON object is terminal (recorded, completed, never
//!   redelivered); retryable failures answer 500 and Service Bus redelivers up to its
//!   `MaxDeliveryCount`, then dead-letters.

use crate::error::FunctionError;
use crate::host::trigger::ServiceBusMessage;
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;

use super::FunctionSpec;

/// Function name.
pub const NAME: &str = "PromoteOnEvaluation";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "serviceBusTrigger",
    trigger: "message",
    outputs: &["notifications"],
};

/// Handles one invocation.
///
/// # Errors
/// Terminal when the message is not a JSON object.
pub async fn run(_state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let msg = ServiceBusMessage::decode(inv, SPEC.trigger)?;
    let body = msg.json_object()?;
    let message_id = msg.message_id.clone().unwrap_or_default();
    tracing::info!(%message_id, delivery_count = msg.delivery_count, fields = body.len(), "Message received.");
    Ok(InvokeResponse::default().log(format!(
        "{NAME} received message {message_id} (delivery {})",
        msg.delivery_count
    )))
}

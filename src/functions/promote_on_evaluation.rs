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
/// Terminal when the trigger payload is malformed.
pub async fn run(_state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    super::acknowledge_message(&SPEC, inv)
}

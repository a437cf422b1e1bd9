//! `EvaluateCandidate`
//!
//! - Trigger: `serviceBusTrigger` on queue `training-completed`.
//! - Input: a JSON object message `{run_id}`: a finished training run: evaluate the candidate against the baselines.
//! - Outputs: `evaluationCompleted`, `notifications`.
//! - Idempotency: the run document: a step already recorded is not repeated.
//! - Retries: a body that is not a JSON object is terminal (recorded, completed, never
//!   redelivered); retryable failures answer 500 and Service Bus redelivers up to its
//!   `MaxDeliveryCount`, then dead-letters.

use crate::error::FunctionError;
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;

use super::FunctionSpec;

/// Function name.
pub const NAME: &str = "EvaluateCandidate";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "serviceBusTrigger",
    trigger: "message",
    outputs: &["evaluationCompleted", "notifications"],
};

/// Handles one invocation: evaluates the run named by the message.
///
/// # Errors
/// Terminal for a message without `run_id`; retryable Azure failures.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let run_id = super::run_id_of(inv, SPEC.trigger)?;
    let emitted = state.pipeline.evaluate(&run_id).await?;
    Ok(super::emit(emitted, Some("evaluationCompleted")))
}

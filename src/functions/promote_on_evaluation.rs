//! `PromoteOnEvaluation`
//!
//! - Trigger: `serviceBusTrigger` on queue `evaluation-completed`.
//! - Input: a JSON object message `{run_id, passed}`, an evaluation verdict: promote a passing candidate to Dev.
//! - Outputs: `notifications`.
//! - Idempotency: the run document: a step already recorded is not repeated.
//! - Retries: a body that is not a JSON object is terminal (recorded, completed, never
//!   redelivered); retryable failures answer 500 and Service Bus redelivers up to its
//!   `MaxDeliveryCount`, then dead-letters.

use crate::app::AppState;
use crate::domain::messages::Message;
use crate::error::FunctionError;
use crate::host::{Invocation, InvokeResponse};

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

/// Handles one invocation: a passing candidate goes to every Dev Spoke.
///
/// # Errors
/// Terminal for a message without `run_id`; retryable (degraded) when a region failed.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let msg = super::message_of(inv, SPEC.trigger, |run_id| Message::EvaluationCompleted {
        run_id,
        passed: true,
    })?;
    let emitted = super::unless_busy(state.pipeline.promote_to_dev(msg.run_id()).await)?;
    Ok(super::emit(emitted, &SPEC))
}

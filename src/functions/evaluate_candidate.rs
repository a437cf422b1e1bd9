//! `EvaluateCandidate`
//!
//! - Trigger: `serviceBusTrigger` on queue `training-completed`.
//! - Input: a JSON object message `{run_id}`: a finished training run: evaluate the candidate against the baselines.
//! - Outputs: `evaluationCompleted`, `trainingCompleted` (wakes the evaluation whose turn
//!   for a Hub slot came when this one freed it), `notifications`.
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
pub const NAME: &str = "EvaluateCandidate";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "serviceBusTrigger",
    trigger: "message",
    outputs: &["evaluationCompleted", "trainingCompleted", "notifications"],
};

/// Handles one invocation: evaluates the run named by the message.
///
/// # Errors
/// Terminal for a message without `run_id`; retryable Azure failures.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let msg = super::message_of(inv, SPEC.trigger, |run_id| Message::TrainingCompleted {
        run_id,
    })?;
    let Message::TrainingCompleted { run_id } = msg else {
        return Err(FunctionError::terminal(
            "malformed_payload",
            "training-completed carries training.completed messages",
        ));
    };
    let emitted = super::unless_busy(state.pipeline.evaluate(&run_id).await)?;
    Ok(super::emit(emitted, &SPEC))
}

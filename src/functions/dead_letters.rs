//! The dead-letter recorders: `IntakeDeadLetters`, `TrainingCompletedDeadLetters`,
//! `EvaluationCompletedDeadLetters` and `ApprovalsDeadLetters`.
//!
//! - Trigger: `serviceBusTrigger` on `<queue>/$DeadLetterQueue`.
//! - Input: a message Service Bus gave up on, with `DeadLetterReason` and
//!   `DeadLetterErrorDescription` in its application properties.
//! - Outputs: `notifications` (`run.stalled`).
//! - Purpose: the message's run is marked stalled with the reason and the last error; the
//!   reconciler keeps re-driving the run and `fthub deadletters replay` sends it again.
//! - Retries: a dead letter naming no run is terminal (recorded in the rejections trail and
//!   completed); storage failures are retried (a dead-letter subqueue never dead-letters).

use crate::app::AppState;
use crate::error::FunctionError;
use crate::host::trigger::ServiceBusMessage;
use crate::host::{Invocation, InvokeResponse};
use crate::services::pipeline::DeadLetter;

use super::FunctionSpec;

const fn spec(name: &'static str) -> FunctionSpec {
    FunctionSpec {
        name,
        trigger_type: "serviceBusTrigger",
        trigger: "message",
        outputs: &["notifications"],
    }
}

/// Dead letters of `training-completed`.
pub const TRAINING_COMPLETED: FunctionSpec = spec("TrainingCompletedDeadLetters");
/// Dead letters of `evaluation-completed`.
pub const EVALUATION_COMPLETED: FunctionSpec = spec("EvaluationCompletedDeadLetters");
/// Dead letters of `approvals`.
pub const APPROVALS: FunctionSpec = spec("ApprovalsDeadLetters");
/// Dead letters of `intake` (a dataset arrival that kept failing to validate or start).
pub const INTAKE: FunctionSpec = spec("IntakeDeadLetters");

/// The queue each recorder watches, by function name.
pub const QUEUES: [(&str, &str); 4] = [
    (INTAKE.name, "intake"),
    (TRAINING_COMPLETED.name, "training-completed"),
    (EVALUATION_COMPLETED.name, "evaluation-completed"),
    (APPROVALS.name, "approvals"),
];

/// Handles one invocation of the recorder for `queue`.
///
/// # Errors
/// Terminal for a dead letter that names no existing run; retryable storage failures.
pub async fn run(
    state: &AppState,
    inv: &Invocation,
    queue: &str,
) -> Result<InvokeResponse, FunctionError> {
    let msg = ServiceBusMessage::decode(inv, "message")?;
    let prop = |k: &str| {
        msg.application_properties
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_owned()
    };
    let (reason, description) = (prop("DeadLetterReason"), prop("DeadLetterErrorDescription"));
    let emitted = state
        .pipeline
        .record_dead_letter(&DeadLetter {
            queue,
            body: &msg.body,
            reason: &reason,
            description: &description,
            sequence: msg.sequence_number,
            message_id: msg.message_id.as_deref(),
        })
        .await?;
    Ok(super::emit(emitted, &TRAINING_COMPLETED))
}

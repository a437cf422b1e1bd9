//! `ValidateSubmission`
//!
//! - Trigger: `serviceBusTrigger` on queue `intake`.
//! - Input: `{type: "dataset.arrived", blob, etag?}`, sent by `DatasetArrived` (Event Grid)
//!   and `SubmitRun` (HTTP), which answer at once: Event Grid waits about 30 s for an answer
//!   and the HTTP front end 230 s, while validating a 512 MB dataset and uploading it to the
//!   Hub takes longer. Here the message lock is renewed for the whole invocation.
//! - Outputs: `notifications`.
//! - Purpose: stream and validate the submission, create its run (or find it: the run id
//!   derives from the submission, its content digests and its manifest's settings), queue
//!   it for training.
//! - Retries: a body that is not a pipeline message is terminal (recorded); retryable
//!   failures answer 500 and Service Bus redelivers, then dead-letters to
//!   `IntakeDeadLetters`, which keeps it in the dead-letter book for a replay.

use crate::app::AppState;
use crate::domain::messages::Message;
use crate::error::FunctionError;
use crate::host::{Invocation, InvokeResponse};

use super::FunctionSpec;

/// Function name.
pub const NAME: &str = "ValidateSubmission";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "serviceBusTrigger",
    trigger: "message",
    outputs: &["notifications"],
};

/// Handles one invocation: validates the arrived blob's submission and starts its run.
///
/// # Errors
/// Terminal for a message that is not a dataset arrival; retryable storage or Azure failures.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let msg = super::message_of(inv, SPEC.trigger, |blob| Message::DatasetArrived {
        blob,
        etag: None,
    })?;
    let Message::DatasetArrived { blob, .. } = msg else {
        return Err(FunctionError::terminal(
            "malformed_payload",
            "intake carries dataset.arrived messages",
        ));
    };
    tracing::info!(%blob, "Validating a submission.");
    let emitted = super::unless_busy(state.pipeline.on_dataset_blob(&blob).await)?;
    Ok(super::emit(emitted, &SPEC))
}

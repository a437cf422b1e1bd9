//! `DatasetArrived`
//!
//! - Trigger: `eventGridTrigger`, `Microsoft.Storage.BlobCreated` in container `datasets`.
//! - Input: the Event Grid event (or a batch); the dataset bytes are never in the payload.
//! - Outputs: `intake` (queue), `notifications` (topic).
//! - Purpose: answer Event Grid in milliseconds (it waits about 30 s, then delivers again,
//!   up to 30 times): check the blob's place in the layout and hand the work to
//!   `ValidateSubmission` through the `intake` queue. A submission's data files wait for
//!   its manifest; the manifest (or a bare `.jsonl` drop) is what goes on.
//! - Idempotency: the run id derives from the submission, its content digests and its
//!   manifest's settings, so a redelivered event or a second upload of the same bytes and
//!   manifest finds the same run.
//! - Retries: an unknown event type, a blob outside `datasets/` or a name that escapes its
//!   container is terminal (recorded, never retried).

use crate::app::AppState;
use crate::domain::dataset_path::DatasetPath;
use crate::domain::messages::Message;
use crate::error::FunctionError;
use crate::host::trigger::{BLOB_CREATED, EventGridEvent};
use crate::host::{Invocation, InvokeResponse};
use crate::services::pipeline::Emitted;

use super::FunctionSpec;

/// Function name.
pub const NAME: &str = "DatasetArrived";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "eventGridTrigger",
    trigger: "event",
    outputs: &["intake", "notifications"],
};

/// Handles one invocation.
///
/// # Errors
/// Terminal for events this function cannot act on.
pub async fn run(_state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let events = EventGridEvent::decode_all(inv, SPEC.trigger)?;
    let mut out = Emitted::default();
    for ev in events {
        if ev.event_type != BLOB_CREATED {
            return Err(FunctionError::terminal(
                "unsupported_event",
                format!("event type {:?} is not {BLOB_CREATED}", ev.event_type),
            ));
        }
        let (container, name) = ev.blob_location().ok_or_else(|| {
            FunctionError::terminal(
                "unsupported_event",
                format!("subject {:?} is not a blob", ev.subject),
            )
        })?;
        let path = DatasetPath::parse(&container, &name)
            .map_err(|e| FunctionError::terminal("invalid_dataset_path", e.to_string()))?;
        let etag = ev.blob_etag();
        tracing::info!(blob = %format!("{container}/{name}"), etag = %etag.clone().unwrap_or_default(), "Dataset blob arrived.");
        if matches!(path, DatasetPath::SubmissionFile { .. }) {
            // Part of a submission: its manifest, uploaded last, starts it.
            continue;
        }
        out.next.push(Message::DatasetArrived { blob: name, etag });
    }
    Ok(super::emit(out, &SPEC))
}

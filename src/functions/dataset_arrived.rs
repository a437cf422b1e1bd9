//! `DatasetArrived`
//!
//! - Trigger: `eventGridTrigger`, `Microsoft.Storage.BlobCreated` in container `datasets`.
//! - Input: the Event Grid event (or a batch); the dataset bytes are never in the payload.
//! - Outputs: `notifications` (topic).
//! - Idempotency: the blob URL and ETag; a redelivered event finds the same run (issue #5).
//! - Retries: an unknown event type, a blob outside `datasets/` or a name that escapes its
//!   container is terminal (recorded, never retried).

use crate::domain::dataset_path::DatasetPath;
use crate::error::FunctionError;
use crate::host::trigger::{BLOB_CREATED, EventGridEvent};
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;

use super::FunctionSpec;

/// Function name.
pub const NAME: &str = "DatasetArrived";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "eventGridTrigger",
    trigger: "event",
    outputs: &["notifications"],
};

/// Handles one invocation.
///
/// # Errors
/// Terminal for events this function cannot act on.
pub async fn run(_state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let events = EventGridEvent::decode_all(inv, SPEC.trigger)?;
    let mut resp = InvokeResponse::default();
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
        let etag = ev.blob_etag().unwrap_or_default();
        tracing::info!(blob = %format!("{container}/{name}"), etag = %etag, kind = ?path, "Dataset blob arrived.");
        resp = resp.log(format!("{container}/{name} ({etag}) arrived"));
    }
    Ok(resp)
}

//! `ApplyApproval`
//!
//! - Trigger: `serviceBusTrigger` on queue `approvals`.
//! - Input: a JSON object message, a signed approval: promote to Test or Prod, or roll back.
//! - Outputs: `notifications`.
//! - Idempotency: the approval nonce, recorded before anything is promoted.
//! - Retries: a body that is not a JSON object is terminal (recorded, completed, never
//!   redelivered); retryable failures answer 500 and Service Bus redelivers up to its
//!   `MaxDeliveryCount`, then dead-letters.

use crate::app::AppState;
use crate::domain::approval::SignedApproval;
use crate::error::FunctionError;
use crate::host::trigger::ServiceBusMessage;
use crate::host::{Invocation, InvokeResponse};

use super::FunctionSpec;

/// Function name.
pub const NAME: &str = "ApplyApproval";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "serviceBusTrigger",
    trigger: "message",
    outputs: &["notifications"],
};

/// Handles one invocation: verifies and applies a signed approval.
///
/// # Errors
/// Terminal (recorded) for malformed, forged, replayed, stale or out-of-order approvals;
/// retryable while a promotion has not converged.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let msg = ServiceBusMessage::decode(inv, SPEC.trigger)?;
    let signed: SignedApproval = serde_json::from_str(&msg.body).map_err(|e| {
        FunctionError::terminal("malformed_approval", format!("not a signed approval: {e}"))
    })?;
    let emitted = super::unless_busy(state.pipeline.apply_approval(&signed).await)?;
    Ok(super::emit(emitted, &SPEC))
}

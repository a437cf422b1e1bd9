//! `KeepWarm`
//!
//! - Trigger: `timerTrigger`, daily, always well inside the 15-day inactivity window.
//! - Input: `TimerInfo` (`IsPastDue` marks the one catch-up run after downtime).
//! - Outputs: `notifications`.
//! - Purpose: ping every fine-tuned deployment.
//! - Retries: a failed run is not retried; the next occurrence runs again.

use crate::app::AppState;
use crate::error::FunctionError;
use crate::host::trigger::TimerInfo;
use crate::host::{Invocation, InvokeResponse};

use super::FunctionSpec;

/// Function name.
pub const NAME: &str = "KeepWarm";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "timerTrigger",
    trigger: "timer",
    outputs: &["notifications"],
};

/// Handles one invocation: pings every fine-tuned deployment and restores vanished ones.
///
/// # Errors
/// Terminal for a malformed timer payload; retryable storage failures.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    TimerInfo::decode(inv, SPEC.trigger)?;
    let emitted = state.pipeline.keep_warm().await?;
    Ok(super::emit(emitted, &SPEC))
}

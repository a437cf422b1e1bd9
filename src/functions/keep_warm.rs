//! `KeepWarm`
//!
//! - Trigger: `timerTrigger`, daily, always well inside the 15-day inactivity window.
//! - Input: `TimerInfo` (`IsPastDue` marks the one catch-up run after downtime).
//! - Outputs: `notifications`.
//! - Purpose: ping every fine-tuned deployment (issue #5).
//! - Retries: a failed run is not retried; the next occurrence runs again.

use crate::error::FunctionError;
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;

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

/// Handles one invocation.
///
/// # Errors
/// Terminal when the trigger payload is malformed.
pub async fn run(_state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    super::acknowledge_timer(&SPEC, inv)
}

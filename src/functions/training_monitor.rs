//! `TrainingMonitor`
//!
//! - Trigger: `timerTrigger`, every minute.
//! - Input: `TimerInfo` (`IsPastDue` marks the one catch-up run after downtime).
//! - Outputs: `trainingCompleted`, `notifications`.
//! - Purpose: poll running fine-tuning jobs (issue #5).
//! - Retries: a failed run is not retried; the next occurrence runs again.

use crate::error::FunctionError;
use crate::host::trigger::TimerInfo;
use crate::host::{Invocation, InvokeResponse};
use crate::server::AppState;

use super::FunctionSpec;

/// Function name.
pub const NAME: &str = "TrainingMonitor";
/// Declaration.
pub const SPEC: FunctionSpec = FunctionSpec {
    name: NAME,
    trigger_type: "timerTrigger",
    trigger: "timer",
    outputs: &["trainingCompleted", "notifications"],
};

/// Handles one invocation.
///
/// # Errors
/// Terminal when the timer payload is malformed.
pub async fn run(_state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    let timer = TimerInfo::decode(inv, SPEC.trigger)?;
    let scheduled = timer
        .schedule_status
        .as_ref()
        .and_then(|s| s.next)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    tracing::info!(is_past_due = timer.is_past_due, %scheduled, "Timer fired.");
    Ok(InvokeResponse::default().log(format!("{NAME} ran (past due: {})", timer.is_past_due)))
}

//! `TrainingMonitor`
//!
//! - Trigger: `timerTrigger`, every minute.
//! - Input: `TimerInfo` (`IsPastDue` marks the one catch-up run after downtime).
//! - Outputs: `trainingCompleted`, `notifications`.
//! - Purpose: poll running fine-tuning jobs.
//! - Retries: a failed run is not retried; the next occurrence runs again.

use crate::app::AppState;
use crate::error::FunctionError;
use crate::host::trigger::TimerInfo;
use crate::host::{Invocation, InvokeResponse};

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

/// Handles one invocation: advances every run waiting on the Hub.
///
/// # Errors
/// Terminal for a malformed timer payload; retryable storage failures.
pub async fn run(state: &AppState, inv: &Invocation) -> Result<InvokeResponse, FunctionError> {
    TimerInfo::decode(inv, SPEC.trigger)?;
    let emitted = state.pipeline.monitor_training().await?;
    Ok(super::emit(emitted, &SPEC))
}

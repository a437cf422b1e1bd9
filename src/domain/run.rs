//! The run document (`state/runs/{run_id}.json`): one per submission version, updated only
//! by ETag-conditional writes. It carries the stage, what every step produced, the journal of
//! side effects (started before, done after, so a retry resumes instead of repeating), and the
//! history of transitions that the audit log mirrors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::manifest::Manifest;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Validation refused the data.
    Rejected,
    /// Files are going to the Hub; the job is not created yet.
    Uploading,
    /// The fine-tuning job runs.
    Training,
    /// The job failed or was cancelled.
    TrainingFailed,
    /// The candidate is being evaluated.
    Evaluating,
    /// The candidate did not meet the thresholds.
    EvaluationFailed,
    /// Passed; Dev promotion pending or partial.
    Evaluated,
    /// Serving in Dev.
    Dev,
    /// Serving in Test.
    Test,
    /// Serving in Prod.
    Prod,
    /// An operator cancelled it.
    Cancelled,
}

impl Stage {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Rejected => "rejected",
            Stage::Uploading => "uploading",
            Stage::Training => "training",
            Stage::TrainingFailed => "training_failed",
            Stage::Evaluating => "evaluating",
            Stage::EvaluationFailed => "evaluation_failed",
            Stage::Evaluated => "evaluated",
            Stage::Dev => "dev",
            Stage::Test => "test",
            Stage::Prod => "prod",
            Stage::Cancelled => "cancelled",
        }
    }

    /// Every stage, in order.
    pub const ALL: [Stage; 11] = [
        Stage::Rejected,
        Stage::Uploading,
        Stage::Training,
        Stage::TrainingFailed,
        Stage::Evaluating,
        Stage::EvaluationFailed,
        Stage::Evaluated,
        Stage::Dev,
        Stage::Test,
        Stage::Prod,
        Stage::Cancelled,
    ];

    /// The stage of a snake_case name.
    pub fn parse(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The pipeline itself moves a run on from here (no person needs to act).
    pub fn is_pipeline_step(self) -> bool {
        matches!(
            self,
            Stage::Uploading | Stage::Training | Stage::Evaluating | Stage::Evaluated
        )
    }
}

/// One data file of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// File name in the submission.
    pub name: String,
    /// Blob name in `datasets`.
    pub blob: String,
    /// SHA-256 of the content, hex.
    pub digest: String,
    /// Size.
    pub bytes: u64,
}

/// Validation outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationSummary {
    /// Accepted.
    pub accepted: bool,
    /// Why not.
    pub reasons: Vec<String>,
    /// Warnings (including eval/train leakage).
    pub warnings: Vec<String>,
    /// Valid training examples.
    pub training_examples: u64,
    /// Training tokens.
    pub training_tokens: u64,
    /// Estimated billed tokens.
    pub billing_tokens: u64,
}

/// Training metrics from `results.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingMetrics {
    /// Steps.
    pub steps: u64,
    /// First training loss.
    pub first_train_loss: Option<f64>,
    /// Last training loss.
    pub final_train_loss: Option<f64>,
    /// Last training token accuracy.
    pub final_train_accuracy: Option<f64>,
    /// Last validation loss.
    pub final_valid_loss: Option<f64>,
    /// Loss per step (for charts).
    pub loss_curve: Vec<(u64, f64)>,
}

/// Evaluation outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    /// Verdict.
    pub passed: bool,
    /// Candidate's primary score.
    pub score: f64,
    /// Best baseline's primary score.
    pub baseline_score: f64,
    /// Candidate p95 latency.
    pub p95_latency_ms: f64,
    /// Why it failed, if it did.
    pub reasons: Vec<String>,
}

/// One region of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionState {
    /// Spoke account.
    pub account: String,
    /// Deployment name.
    pub deployment: String,
    /// `deployed`, `verified`, `failed`.
    pub status: String,
    /// Last error, if any.
    pub error: Option<String>,
    /// When the smoke test passed.
    pub verified_at: Option<DateTime<Utc>>,
}

/// A run's state in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EnvironmentState {
    /// `promoting`, `healthy`, `degraded`, `rejected`, `rolled_back`.
    pub status: String,
    /// Per region.
    pub regions: BTreeMap<String, RegionState>,
    /// Who approved (test, prod).
    pub approved_by: Option<String>,
    /// The run whose model is deployed here (another run's after a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_run: Option<String>,
}

impl EnvironmentState {
    /// A promotion here was started or approved and has not converged: degraded, or
    /// approved with no outcome recorded yet (a crash, or a dead-lettered approval).
    pub fn owed(&self) -> bool {
        match self.status.as_str() {
            "degraded" | "promoting" => true,
            "" => self.approved_by.is_some(),
            _ => false,
        }
    }
}

/// A side effect in progress or done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// Recorded before the call.
    pub started_at: DateTime<Utc>,
    /// Recorded after it succeeded.
    pub done_at: Option<DateTime<Utc>>,
    /// What it produced (an id, a name).
    pub result: Option<String>,
}

/// A recorded transition; the audit log gets the same line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When.
    pub time: DateTime<Utc>,
    /// Who (a function, an approver, the submitter).
    pub actor: String,
    /// Run.
    pub run_id: String,
    /// Stage before.
    pub from: Option<String>,
    /// Stage after.
    pub to: String,
    /// Why.
    pub detail: String,
}

/// The run document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `{project}-{submission}-{digest8}`.
    pub id: String,
    /// Project.
    pub project: String,
    /// Submission.
    pub submission: String,
    /// Submitter.
    pub submitted_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The manifest as received.
    pub manifest: Manifest,
    /// Base model used.
    pub base_model: String,
    /// Digest over all data files.
    pub data_digest: String,
    /// Data files.
    pub files: Vec<DataFile>,
    /// Current stage.
    pub stage: Stage,
    /// Validation.
    pub validation: Option<ValidationSummary>,
    /// Hub file ids by file name.
    #[serde(default)]
    pub hub_files: BTreeMap<String, String>,
    /// Fine-tuning job.
    pub job_id: Option<String>,
    /// Last job status seen.
    pub job_status: Option<String>,
    /// Result.
    pub fine_tuned_model: Option<String>,
    /// Billable tokens.
    pub trained_tokens: Option<u64>,
    /// Training metrics.
    pub metrics: Option<TrainingMetrics>,
    /// Evaluation.
    pub evaluation: Option<EvaluationSummary>,
    /// Per environment.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentState>,
    /// Approval nonces already used.
    #[serde(default)]
    pub used_nonces: Vec<String>,
    /// Side-effect journal by step name.
    #[serde(default)]
    pub effects: BTreeMap<String, Effect>,
    /// Transitions.
    #[serde(default)]
    pub history: Vec<Transition>,
    /// Things an operator should look at (stuck job, leakage, …).
    #[serde(default)]
    pub flags: Vec<String>,
    /// How far a durable evaluation got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_progress: Option<EvalProgress>,
    /// The reconciler's retry state for this run's owed step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Set when the run needs a person: a dead-lettered message or a step that kept failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<Stall>,
}

/// A durable evaluation's progress: its plan, the batches stored so far (over every model
/// scored), and when it last paused at its time budget (resumed at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalProgress {
    /// What is scored.
    pub plan: super::heldout::Plan,
    /// Batches stored.
    pub batches_done: usize,
    /// Set while paused between invocations.
    pub paused_at: Option<DateTime<Utc>>,
}

/// Growing delays between the reconciler's attempts at a failing step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before.
    pub next_at: DateTime<Utc>,
    /// The last error.
    pub last_error: String,
}

/// Why a run is stalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    /// When it was first seen.
    pub since: DateTime<Utc>,
    /// What stalled (`dead_letter:training-completed`, `step:evaluate`, …).
    pub what: String,
    /// The host's dead-letter reason, or the step's last error.
    pub reason: String,
    /// Details.
    pub detail: String,
}

/// The reconciler's delay before attempt `attempts + 1` of a failing step: 1, 2, 4, … minutes,
/// at most an hour — not ten immediate redeliveries.
pub fn retry_delay(attempts: u32) -> chrono::Duration {
    chrono::Duration::minutes(1i64 << attempts.min(6)).min(chrono::Duration::hours(1))
}

/// SHA-256, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The run id of a submission whose files have these digests: the same bytes give the same id.
pub fn run_id(project: &str, submission: &str, file_digests: &[String]) -> String {
    let combined = sha256_hex(file_digests.join("\n").as_bytes());
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_matches('-')
            .to_owned()
    };
    format!(
        "{}-{}-{}",
        clean(project),
        clean(submission),
        &combined[..8]
    )
}

impl Run {
    /// Moves to `to`, recording the transition; returns the audit line.
    pub fn transition(
        &mut self,
        to: Stage,
        actor: &str,
        detail: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Transition {
        let t = Transition {
            time: now,
            actor: actor.to_owned(),
            run_id: self.id.clone(),
            from: Some(self.stage.name().to_owned()),
            to: to.name().to_owned(),
            detail: detail.into(),
        };
        self.stage = to;
        self.updated_at = now;
        self.history.push(t.clone());
        t
    }

    /// Records an event that does not change the stage (an effect done, a flag).
    pub fn note(
        &mut self,
        actor: &str,
        what: &str,
        detail: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Transition {
        let t = Transition {
            time: now,
            actor: actor.to_owned(),
            run_id: self.id.clone(),
            from: None,
            to: what.to_owned(),
            detail: detail.into(),
        };
        self.updated_at = now;
        self.history.push(t.clone());
        t
    }

    /// A finished effect's result, if the step already happened.
    pub fn done(&self, step: &str) -> Option<&str> {
        self.effects
            .get(step)
            .filter(|e| e.done_at.is_some())
            .map(|e| e.result.as_deref().unwrap_or(""))
    }

    /// The pipeline still owes this run a step: a stage it moves on by itself, or an
    /// environment whose promotion is approved but not yet healthy everywhere. The
    /// reconciler walks exactly these runs.
    pub fn is_active(&self) -> bool {
        self.stage.is_pipeline_step() || self.environments.values().any(EnvironmentState::owed)
    }

    /// Environments the run serves in.
    pub fn reached(&self) -> Vec<String> {
        self.environments
            .iter()
            .filter(|(_, e)| e.status == "healthy")
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_give_the_same_run_and_different_bytes_a_new_one() {
        let a = run_id("Acme Support", "s1", &["aa".into(), "bb".into()]);
        assert_eq!(a, run_id("Acme Support", "s1", &["aa".into(), "bb".into()]));
        assert!(a.starts_with("acme-support-s1-"));
        assert_ne!(a, run_id("Acme Support", "s1", &["aa".into(), "bc".into()]));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! The run document (`state/runs/{run_id}.json`): one per submission version, updated only
//! by ETag-conditional writes. It carries the stage, what every step produced, the journal of
//! side effects (started before, done after, so a retry resumes instead of repeating), and the
//! history of transitions that the audit log mirrors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::env::Env;
use super::manifest::Manifest;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Validation refused the data.
    Rejected,
    /// Validated; waiting for a training slot on the Hub (the fair queue).
    Queued,
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
            Stage::Queued => "queued",
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
    pub const ALL: [Stage; 12] = [
        Stage::Rejected,
        Stage::Queued,
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
            Stage::Queued
                | Stage::Uploading
                | Stage::Training
                | Stage::Evaluating
                | Stage::Evaluated
        )
    }

    /// The environment this stage serves in, if any.
    pub fn env(self) -> Option<Env> {
        Env::ALL.into_iter().find(|e| e.stage() == self)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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

/// How one region's deployment of a promotion went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionStatus {
    /// Deployed, not smoke-tested yet.
    Deployed,
    /// Deployed and answering.
    Verified,
    /// The deployment or its smoke test failed (retried).
    Failed,
    /// Not attempted: the Spoke had no free deployment slot.
    Refused,
}

impl RegionStatus {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            RegionStatus::Deployed => "deployed",
            RegionStatus::Verified => "verified",
            RegionStatus::Failed => "failed",
            RegionStatus::Refused => "refused",
        }
    }
}

/// One region of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionState {
    /// Spoke account.
    pub account: String,
    /// Deployment name.
    pub deployment: String,
    /// How it went.
    pub status: RegionStatus,
    /// Last error, if any.
    pub error: Option<String>,
    /// When the smoke test passed.
    pub verified_at: Option<DateTime<Utc>>,
}

/// Where a run stands in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvStatus {
    /// Approved, nothing done yet (a crash, or a dead-lettered approval, left it here).
    #[default]
    #[serde(rename = "")]
    Pending,
    /// Deploying.
    Promoting,
    /// Serving in every region.
    Healthy,
    /// Some regions failed; retried until all converge.
    Degraded,
    /// An approver refused promotion.
    Rejected,
    /// Was serving; an approver rolled the project back to its previous release.
    RolledBack,
    /// Was serving; a newer release of the same project replaced it.
    Superseded,
    /// Refused before any deployment: a Spoke had no free slot (needs a person).
    Refused,
}

impl EnvStatus {
    /// The snake_case name (`pending` for the empty status).
    pub fn name(self) -> &'static str {
        match self {
            EnvStatus::Pending => "pending",
            EnvStatus::Promoting => "promoting",
            EnvStatus::Healthy => "healthy",
            EnvStatus::Degraded => "degraded",
            EnvStatus::Rejected => "rejected",
            EnvStatus::RolledBack => "rolled_back",
            EnvStatus::Superseded => "superseded",
            EnvStatus::Refused => "refused",
        }
    }
}

/// A run's state in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EnvironmentState {
    /// Where it stands.
    pub status: EnvStatus,
    /// Per region.
    pub regions: BTreeMap<String, RegionState>,
    /// Who approved (test, prod), or who asked for the rollback that restores this run.
    pub approved_by: Option<String>,
    /// Set while this run is being restored by a rollback of that run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// Why the promotion was refused (no free slot), naming the Spoke and its holders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// How many times this run was released here (a rollback back to it is a new
    /// release): each release deploys again, under its own effect steps.
    #[serde(default)]
    pub generation: u32,
}

impl EnvironmentState {
    /// A promotion here was started or approved and has not converged: degraded, or
    /// approved with no outcome recorded yet (a crash, or a dead-lettered approval).
    pub fn owed(&self) -> bool {
        match self.status {
            EnvStatus::Degraded | EnvStatus::Promoting => true,
            EnvStatus::Pending => self.approved_by.is_some(),
            _ => false,
        }
    }

    /// The run serves here now.
    pub fn serving(&self) -> bool {
        self.status == EnvStatus::Healthy
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

/// Something recorded on a run that does not change its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The Hub reported a new job status.
    JobStatus,
    /// An environment's promotion failed in some regions.
    #[serde(
        alias = "dev_degraded",
        alias = "test_degraded",
        alias = "prod_degraded"
    )]
    EnvironmentDegraded,
    /// A promotion was refused before any call: no free deployment slot.
    PromotionRefused,
    /// A newer release of the project replaced this run in an environment.
    Superseded,
    /// A signed approval was refused.
    ApprovalRefused,
    /// A signed approval was accepted.
    ApprovalAccepted,
    /// An environment was rolled back.
    Rollback,
    /// A message about the run was dead-lettered.
    DeadLettered,
    /// A step kept failing.
    Stalled,
    /// An operator asked for a retry.
    Retry,
    /// An operator cleared a stall on a run that owes no step.
    StallCleared,
    /// The run waits for a capacity slot (a Hub evaluation slot, a training slot).
    Waiting,
    /// The Hub refused a job for its limits; the run went back to the queue.
    Requeued,
    /// Hub files the run no longer needs were deleted.
    FilesDeleted,
}

impl Event {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Event::JobStatus => "job_status",
            Event::EnvironmentDegraded => "environment_degraded",
            Event::PromotionRefused => "promotion_refused",
            Event::Superseded => "superseded",
            Event::ApprovalRefused => "approval_refused",
            Event::ApprovalAccepted => "approval_accepted",
            Event::Rollback => "rollback",
            Event::DeadLettered => "dead_lettered",
            Event::Stalled => "stalled",
            Event::Retry => "retry",
            Event::StallCleared => "stall_cleared",
            Event::Waiting => "waiting",
            Event::Requeued => "requeued",
            Event::FilesDeleted => "files_deleted",
        }
    }
}

/// What a history line records: a new stage, or an event at the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Step {
    /// The run moved to this stage.
    Stage(Stage),
    /// Something happened without a stage change.
    Event(Event),
    /// A line written by another version of fthub that this one does not know; kept as it
    /// is so the document still reads.
    Other(String),
}

impl Step {
    /// The snake_case name.
    pub fn name(&self) -> &str {
        match self {
            Step::Stage(s) => s.name(),
            Step::Event(e) => e.name(),
            Step::Other(o) => o,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    /// The run's project (absent on lines written before projects were recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// Stage before (absent for an event).
    pub from: Option<Stage>,
    /// Stage after, or the event.
    pub to: Step,
    /// Why.
    pub detail: String,
    /// The nonce of the signed approval this entry answers, so its approver's
    /// `fthub approve` finds the outcome of exactly that approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
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
    pub environments: BTreeMap<Env, EnvironmentState>,
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
    /// When the run joined the Hub's training queue (its order within its project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<DateTime<Utc>>,
    /// What the run is waiting for, while it waits for capacity (a training slot, a Hub
    /// evaluation slot); shown in every view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
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

/// The run id of a submission whose files have these digests under a manifest with this
/// [`settings digest`](crate::domain::manifest::Manifest::settings_digest): the same bytes
/// and settings give the same id; a changed manifest on the same data gives a new one.
pub fn run_id(
    project: &str,
    submission: &str,
    file_digests: &[String],
    manifest_digest: &str,
) -> String {
    id_of(
        project,
        submission,
        &format!("{}\nmanifest {manifest_digest}", file_digests.join("\n")),
    )
}

/// The id versions before the manifest counted gave the same files: intake looks for it
/// too, so an event redelivered across an upgrade continues its run instead of starting a
/// second (billed) one.
pub fn legacy_run_id(project: &str, submission: &str, file_digests: &[String]) -> String {
    id_of(project, submission, &file_digests.join("\n"))
}

fn id_of(project: &str, submission: &str, material: &str) -> String {
    let combined = sha256_hex(material.as_bytes());
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

/// What a new run is made of; the rest of a [`Run`] starts empty.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Run id.
    pub id: String,
    /// Project.
    pub project: String,
    /// Submission.
    pub submission: String,
    /// Submitter.
    pub submitted_by: String,
    /// The manifest as received.
    pub manifest: Manifest,
    /// Base model.
    pub base_model: String,
    /// Digest over all data files.
    pub data_digest: String,
    /// Data files.
    pub files: Vec<DataFile>,
}

impl Run {
    /// A run at `stage`, created at `now`, with nothing done yet.
    pub fn new(n: NewRun, stage: Stage, now: DateTime<Utc>) -> Self {
        Self {
            id: n.id,
            project: n.project,
            submission: n.submission,
            submitted_by: n.submitted_by,
            created_at: now,
            updated_at: now,
            manifest: n.manifest,
            base_model: n.base_model,
            data_digest: n.data_digest,
            files: n.files,
            stage,
            validation: None,
            hub_files: BTreeMap::new(),
            job_id: None,
            job_status: None,
            fine_tuned_model: None,
            trained_tokens: None,
            metrics: None,
            evaluation: None,
            environments: BTreeMap::new(),
            used_nonces: Vec::new(),
            effects: BTreeMap::new(),
            history: Vec::new(),
            flags: Vec::new(),
            eval_progress: None,
            retry: None,
            stalled: None,
            queued_at: None,
            waiting: None,
        }
    }

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
            project: self.project.clone(),
            from: Some(self.stage),
            to: Step::Stage(to),
            detail: detail.into(),
            approval: None,
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
        what: Event,
        detail: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Transition {
        let t = Transition {
            time: now,
            actor: actor.to_owned(),
            run_id: self.id.clone(),
            project: self.project.clone(),
            from: None,
            to: Step::Event(what),
            detail: detail.into(),
            approval: None,
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
        (self.stage.is_pipeline_step() && !self.blocked())
            || self.environments.values().any(EnvironmentState::owed)
    }

    /// Passed evaluation but its Dev promotion was refused for capacity: it waits for a
    /// person (free a slot, then `fthub runs retry`), not for the reconciler.
    pub fn blocked(&self) -> bool {
        self.stage == Stage::Evaluated
            && self
                .environments
                .get(&Env::Dev)
                .is_some_and(|e| e.status == EnvStatus::Refused)
    }

    /// Environments the run serves in now.
    pub fn serving(&self) -> Vec<Env> {
        self.environments
            .iter()
            .filter(|(_, e)| e.serving())
            .map(|(k, _)| *k)
            .collect()
    }

    /// Environments the run has reached (served in at some point, even if replaced since).
    pub fn reached(&self) -> Vec<Env> {
        Env::ALL
            .into_iter()
            .filter(|e| self.stage >= e.stage() && self.stage <= Stage::Prod)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_and_manifest_give_the_same_run_and_a_change_to_either_a_new_one() {
        let files = ["aa".to_owned(), "bb".to_owned()];
        let a = run_id("Acme Support", "s1", &files, "m1");
        assert_eq!(a, run_id("Acme Support", "s1", &files, "m1"));
        assert!(a.starts_with("acme-support-s1-"));
        assert_ne!(
            a,
            run_id("Acme Support", "s1", &["aa".into(), "bc".into()], "m1")
        );
        assert_ne!(a, run_id("Acme Support", "s1", &files, "m2"));
        // The id before manifests counted is what the old formula gave: the files alone.
        assert_eq!(
            legacy_run_id("Acme Support", "s1", &files),
            format!("acme-support-s1-{}", &sha256_hex(b"aa\nbb")[..8])
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

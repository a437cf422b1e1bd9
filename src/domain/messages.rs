//! What the pipeline sends: queue messages between its functions, and notifications on the
//! `notifications` topic. One `serde(tag = "type")` enum each, shared by the producer and
//! the consumer, so a field renamed on one side fails to compile on the other.

use serde::{Deserialize, Serialize};

use super::env::Env;

/// A message on one of the pipeline's own queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Message {
    /// `intake`: a dataset blob arrived (a manifest, or a bare drop): validate it and start
    /// its run. Sent by `DatasetArrived` and `SubmitRun`, which answer at once.
    #[serde(rename = "dataset.arrived")]
    DatasetArrived {
        /// The blob's name in `datasets`.
        blob: String,
        /// Its ETag, when the event gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etag: Option<String>,
    },
    /// `training-completed`: evaluate (or resume evaluating) this run.
    #[serde(rename = "training.completed")]
    TrainingCompleted {
        /// The run.
        run_id: String,
    },
    /// `evaluation-completed`: promote this run to Dev if it passed.
    #[serde(rename = "evaluation.completed")]
    EvaluationCompleted {
        /// The run.
        run_id: String,
        /// The verdict.
        passed: bool,
    },
}

impl Message {
    /// The run (or, for an arrival, the blob) the message is about.
    pub fn run_id(&self) -> &str {
        match self {
            Message::TrainingCompleted { run_id } | Message::EvaluationCompleted { run_id, .. } => {
                run_id
            }
            Message::DatasetArrived { blob, .. } => blob,
        }
    }

    /// Decodes a message body. A body without `type` but with a `run_id` (written by an
    /// earlier version still in flight on the queue) is read as `fallback` for that run.
    ///
    /// # Errors
    /// A body that is neither.
    pub fn decode(
        body: &serde_json::Value,
        fallback: impl FnOnce(String) -> Message,
    ) -> Result<Message, String> {
        if body.get("type").is_none()
            && let Some(id) = body.get("run_id").and_then(serde_json::Value::as_str)
        {
            return Ok(fallback(id.to_owned()));
        }
        serde_json::from_value(body.clone()).map_err(|e| e.to_string())
    }
}

/// Something people or other systems may want to know, on the `notifications` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Notification {
    /// Validation or the Hub refused the data.
    #[serde(rename = "run.rejected")]
    RunRejected {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// Why.
        reasons: Vec<String>,
        /// The validation report, when one was written.
        #[serde(skip_serializing_if = "Option::is_none")]
        report: Option<String>,
    },
    /// The run waits in the Hub's training queue.
    #[serde(rename = "run.queued")]
    RunQueued {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
    },
    /// The fine-tuning job was created.
    #[serde(rename = "run.training_submitted")]
    TrainingSubmitted {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// Hub job id.
        job_id: String,
    },
    /// The job failed or was cancelled on the Hub.
    #[serde(rename = "training.failed")]
    TrainingFailed {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// The Hub's reason.
        detail: String,
    },
    /// The job succeeded.
    #[serde(rename = "training.succeeded")]
    TrainingSucceeded {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// The fine-tuned model.
        model: String,
    },
    /// The evaluation finished.
    #[serde(rename = "evaluation.completed")]
    EvaluationCompleted {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// Verdict.
        passed: bool,
        /// Candidate score.
        score: f64,
        /// Best baseline score.
        baseline: f64,
        /// The report.
        report: String,
    },
    /// A release serves in every region of an environment.
    #[serde(rename = "promotion.completed")]
    PromotionCompleted {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// Environment.
        environment: Env,
        /// The approver, or `pipeline` for Dev.
        by: String,
        /// Regions.
        regions: Vec<String>,
        /// Re-driven by the reconciler rather than by its message.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reconciled: bool,
    },
    /// Refused before any call: a Spoke has no free deployment slot.
    #[serde(rename = "promotion.refused")]
    PromotionRefused {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// Environment.
        environment: Env,
        /// Which Spoke, its limit and who holds the slots.
        reason: String,
    },
    /// An approver refused promotion.
    #[serde(rename = "promotion.rejected")]
    PromotionRejected {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// Environment.
        environment: Env,
        /// Approver.
        approver: String,
        /// Why.
        reason: String,
    },
    /// A project's environment was rolled back to its previous release.
    #[serde(rename = "rollback.completed")]
    RollbackCompleted {
        /// Project.
        project: String,
        /// Environment.
        environment: Env,
        /// The run rolled back.
        from_run: String,
        /// The run serving again.
        to_run: String,
        /// Approver.
        by: String,
    },
    /// A KeepWarm pass.
    #[serde(rename = "keepalive")]
    Keepalive {
        /// Deployments answered.
        pinged: usize,
        /// Redeployed (`env/region/deployment`).
        restored: Vec<String>,
        /// Still failing, with the error.
        failing: Vec<String>,
        /// Fine-tuned deployments fthub did not create (`account/deployment`).
        unmanaged: Vec<String>,
        /// Spokes that could not be listed, with the error.
        unreachable: Vec<String>,
    },
    /// One deployment KeepWarm redeployed.
    #[serde(rename = "keepalive.restored")]
    KeepaliveRestored {
        /// `env/region/deployment`.
        deployment: String,
        /// Project.
        project: String,
        /// The run whose model was redeployed.
        run_id: String,
    },
    /// A run needs a person: a dead letter, or a step that kept failing.
    #[serde(rename = "run.stalled")]
    RunStalled {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// What stalled.
        what: String,
        /// The dead-letter reason or the error kind.
        reason: String,
        /// Details.
        detail: String,
        /// For a dead-lettered approval: its approver.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approver: Option<String>,
        /// For a dead-lettered approval: its environment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment: Option<String>,
    },
    /// An operator cancelled a run.
    #[serde(rename = "run.cancelled")]
    RunCancelled {
        /// Run.
        run_id: String,
        /// Project.
        project: String,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_carry_their_type_and_untyped_bodies_from_earlier_versions_still_decode() {
        let m = Message::EvaluationCompleted {
            run_id: "r1".into(),
            passed: true,
        };
        let v = serde_json::to_value(&m).expect("json");
        assert_eq!(v["type"], "evaluation.completed");
        assert_eq!(Message::decode(&v, |_| unreachable!()), Ok(m));
        let legacy = Message::decode(&json!({"run_id": "r2"}), |run_id| {
            Message::TrainingCompleted { run_id }
        })
        .expect("legacy");
        assert_eq!(legacy.run_id(), "r2");
        assert!(
            Message::decode(&json!({"type": "nope"}), |run_id| {
                Message::TrainingCompleted { run_id }
            })
            .is_err()
        );
    }

    #[test]
    fn notifications_serialise_with_a_dotted_type() {
        let n = Notification::PromotionCompleted {
            run_id: "r".into(),
            project: "acme".into(),
            environment: Env::Prod,
            by: "release-manager".into(),
            regions: vec!["eastus2".into()],
            reconciled: false,
        };
        let v = serde_json::to_value(&n).expect("json");
        assert_eq!(v["type"], "promotion.completed");
        assert_eq!(v["environment"], "prod");
        assert!(v.get("reconciled").is_none());
        assert_eq!(serde_json::from_value::<Notification>(v).expect("back"), n);
    }
}

//! Dead letters are part of the product: a message Service Bus gave up on is recorded on its
//! run (stalled, with the host's reason and the last error) and announced, so nobody has to
//! find it in a subqueue. The reconciler keeps re-driving the run; `fthub deadletters replay`
//! sends the message again.

use super::*;
use crate::domain::run::Stall;

/// A message from a dead-letter subqueue.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The queue it was dead-lettered from.
    pub queue: &'a str,
    /// Its body.
    pub body: &'a str,
    /// `DeadLetterReason` (`MaxDeliveryCountExceeded`, …).
    pub reason: &'a str,
    /// `DeadLetterErrorDescription`: the last error, as the host recorded it.
    pub description: &'a str,
    /// `SequenceNumber`.
    pub sequence: Option<i64>,
    /// `MessageId`.
    pub message_id: Option<&'a str>,
}

impl Pipeline {
    /// Records a dead-lettered pipeline message on its run and announces it. An approval's
    /// dead letter names its approver and environment on the run, where the approver sees it.
    ///
    /// # Errors
    /// Refused for a body that names no run or a run that does not exist (recorded in the
    /// rejections trail by the handler edge; the dead letter is then completed).
    pub async fn record_dead_letter(&self, dl: &DeadLetter<'_>) -> Result<Emitted, PipelineError> {
        // In the book first, whatever the body: `fthub deadletters` lists and replays it.
        let parsed: Option<serde_json::Value> = serde_json::from_str(dl.body).ok();
        let named = parsed.as_ref().and_then(|b| {
            b.get("run_id")
                .or_else(|| b.get("approval").and_then(|a| a.get("run_id")))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        });
        super::super::deadletters::record(
            self.store.as_ref(),
            &super::super::deadletters::Record {
                queue: dl.queue.to_owned(),
                key: super::super::deadletters::Record::key_of(dl.sequence, dl.message_id, dl.body),
                sequence: dl.sequence,
                message_id: dl.message_id.map(str::to_owned),
                run_id: named,
                body: dl.body.to_owned(),
                reason: dl.reason.to_owned(),
                description: dl.description.to_owned(),
                recorded_at: self.now(),
                replays: Vec::new(),
            },
        )
        .await?;
        let body: serde_json::Value = serde_json::from_str(dl.body).map_err(|e| {
            refused(
                "malformed_dead_letter",
                format!("a dead letter of {} is not JSON: {e}", dl.queue),
            )
        })?;
        // An intake message names a blob, not a run (none exists yet): the book is its
        // record, and the submission's status reads it from there.
        if body.get("run_id").is_none() && body.get("blob").is_some_and(|b| b.is_string()) {
            return Ok(Emitted::default());
        }
        let approval = serde_json::from_value::<SignedApproval>(body.clone()).ok();
        let run_id = match (
            &approval,
            body.get("run_id").and_then(serde_json::Value::as_str),
        ) {
            (Some(a), _) => a.approval.run_id.clone(),
            (None, Some(id)) => id.to_owned(),
            (None, None) => {
                return Err(refused(
                    "malformed_dead_letter",
                    format!("a dead letter of {} names no run", dl.queue),
                ));
            }
        };
        let what = format!("dead_letter:{}", dl.queue);
        let detail = match &approval {
            Some(a) => format!(
                "{:?} of {} by {} was dead-lettered ({}): {}",
                a.approval.decision,
                a.approval.environment,
                a.approval.approver,
                dl.reason,
                dl.description
            ),
            None => format!(
                "{} message dead-lettered ({}): {}",
                dl.queue, dl.reason, dl.description
            ),
        };
        let now = self.now();
        let mut first = false;
        let mut project = String::new();
        runs::update(self.store.as_ref(), &run_id, |r| {
            project.clone_from(&r.project);
            // A redelivered dead letter records nothing twice.
            if r.stalled.as_ref().is_some_and(|s| s.detail == detail) {
                return Ok::<(), PipelineError>(());
            }
            first = true;
            r.note(ACTOR_PIPELINE, Event::DeadLettered, detail.clone(), now);
            r.stalled = Some(Stall {
                since: now,
                what: what.clone(),
                reason: dl.reason.to_owned(),
                detail: detail.clone(),
            });
            Ok(())
        })
        .await?;
        if !first {
            return Ok(Emitted::default());
        }
        Ok(Emitted::notify(Notification::RunStalled {
            run_id,
            project,
            what,
            reason: dl.reason.to_owned(),
            detail,
            approver: approval.as_ref().map(|a| a.approval.approver.clone()),
            environment: approval.as_ref().map(|a| a.approval.environment.clone()),
        }))
    }
}

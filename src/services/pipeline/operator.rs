//! Operator verbs on one run: retry a stalled or failed step, cancel a run. Both are
//! recorded on the run (who, why) and in the audit trail like every transition.

use super::*;
use crate::domain::run::Retry;

/// The Hub deployment a run's candidate is evaluated on: unique per run (two submissions
/// of the same data share a data digest, never a run id).
pub(super) fn eval_deployment(run_id: &str) -> String {
    format!("eval-{}", &sha256_hex(run_id.as_bytes())[..12])
}

impl Pipeline {
    /// Re-drives `id`'s owed step at the reconciler's next tick, whatever its retry delay:
    /// a stalled step, or a failed training or evaluation (after an outage, say) started
    /// again. Returns what was scheduled.
    ///
    /// # Errors
    /// Refused for an unknown run or one with nothing to retry (rejected data, cancelled,
    /// serving with every environment healthy).
    pub async fn retry_run(
        &self,
        id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<String, PipelineError> {
        let now = self.now();
        let mut what = String::new();
        runs::update(self.store.as_ref(), id, |r| {
            // A promotion refused for capacity goes again (a slot was freed meanwhile).
            let refused_envs: Vec<Env> = r
                .environments
                .iter()
                .filter(|(_, s)| s.status == EnvStatus::Refused)
                .map(|(e, _)| *e)
                .collect();
            if !refused_envs.is_empty() {
                for env in &refused_envs {
                    if let Some(s) = r.environments.get_mut(env) {
                        s.status = EnvStatus::Pending;
                        s.refusal = None;
                        s.approved_by.get_or_insert_with(|| actor.to_owned());
                    }
                }
                r.note(actor, Event::Retry, reason.to_owned(), now);
                what = format!(
                    "the refused promotion to {}",
                    refused_envs
                        .iter()
                        .map(|e| e.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                r.stalled = None;
                r.retry = Some(Retry {
                    attempts: 0,
                    next_at: now,
                    last_error: format!("retry requested by {actor}"),
                });
                return Ok(());
            }
            what = match r.stage {
                Stage::TrainingFailed => {
                    // Back into the fair queue: its Hub files were deleted when the job
                    // ended, so it uploads again when its turn comes.
                    r.effects.remove("create_job");
                    r.effects.retain(|k, _| !k.starts_with("upload:"));
                    r.hub_files.clear();
                    r.job_id = None;
                    r.job_status = None;
                    r.queued_at = Some(now);
                    r.transition(Stage::Queued, actor, format!("retry: {reason}"), now);
                    "a new fine-tuning job".into()
                }
                Stage::EvaluationFailed => {
                    r.effects.remove("evaluate");
                    r.evaluation = None;
                    r.transition(Stage::Evaluating, actor, format!("retry: {reason}"), now);
                    "a new evaluation".into()
                }
                _ if r.is_active() => {
                    r.note(actor, Event::Retry, reason.to_owned(), now);
                    format!("the {} step", r.stage.name())
                }
                // A dead letter on a run that owes nothing (an approval lost before it was
                // recorded): nothing to re-drive, but the stall must not stay forever.
                _ if r.stalled.is_some() => {
                    r.note(actor, Event::StallCleared, reason.to_owned(), now);
                    r.stalled = None;
                    what = "nothing to re-drive: the stall was cleared".into();
                    return Ok(());
                }
                s => {
                    return Err(refused(
                        "nothing_to_retry",
                        format!("run {id} is {} and owes no step", s.name()),
                    ));
                }
            };
            r.stalled = None;
            // Due at once: the reconciler acts on a retry whose time has come.
            r.retry = Some(Retry {
                attempts: 0,
                next_at: now,
                last_error: format!("retry requested by {actor}"),
            });
            Ok(())
        })
        .await?;
        Ok(what)
    }

    /// Cancels `id`: its Hub job if one runs, its evaluation deployment if one exists; the
    /// run ends `cancelled` with who and why.
    ///
    /// # Errors
    /// Refused for an unknown run, one already finished, or one serving (roll it back
    /// instead); retryable Azure failures (nothing is recorded until they succeed).
    pub async fn cancel_run(
        &self,
        id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", format!("run {id} does not exist")))?;
        match run.stage {
            Stage::Queued
            | Stage::Uploading
            | Stage::Training
            | Stage::Evaluating
            | Stage::Evaluated => {}
            Stage::Dev | Stage::Test | Stage::Prod => {
                return Err(refused(
                    "run_serving",
                    format!(
                        "run {id} serves in {}: roll it back instead",
                        run.stage.name()
                    ),
                ));
            }
            s => {
                return Err(refused(
                    "run_finished",
                    format!("run {id} already ended {}", s.name()),
                ));
            }
        }
        if let Some(job) = &run.job_id
            && run.stage == Stage::Training
        {
            match self.hub.cancel_job(job).await {
                // Already finished or gone: nothing left to cancel.
                Ok(_)
                | Err(AoaiError::Http {
                    status: 400 | 404, ..
                }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if run.stage == Stage::Evaluating {
            self.remove_eval_deployment(id, &eval_deployment(id))
                .await?;
        }
        let now = self.now();
        runs::update(self.store.as_ref(), id, |r| {
            if r.stage.is_pipeline_step() {
                r.transition(Stage::Cancelled, actor, format!("cancelled: {reason}"), now);
                r.retry = None;
                r.stalled = None;
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        // Its Hub job slot and files are given back (the job, if any, was cancelled above).
        if matches!(run.stage, Stage::Uploading | Stage::Training) {
            self.job_ended(&run, &[]).await?;
        }
        Ok(Emitted::notify(Notification::RunCancelled {
            run_id: id.to_owned(),
            project: run.project.clone(),
            by: actor.to_owned(),
            reason: reason.to_owned(),
        }))
    }
}

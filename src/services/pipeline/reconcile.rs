//! The reconciler: why every run always moves. Messages are how work moves fast; each tick
//! of `TrainingMonitor` walks the index of active runs and re-drives any owed step that is
//! due and idle, whatever happened to its message (lost between a record and its emit,
//! dead-lettered after an outage, or never sent). The same claims guard it and the
//! queue-triggered functions, so re-driving beside a live delivery does nothing twice.

use futures_util::stream::{self, StreamExt as _};

use super::*;
use crate::domain::run::{Retry, Stall, retry_delay};

/// Failed attempts after which a run is flagged stalled (it keeps being retried, an hour
/// apart at most, until it converges or an operator acts).
pub const STALL_AFTER: u32 = 5;

impl Pipeline {
    /// One reconcile tick (the `TrainingMonitor` timer): advances every active run whose
    /// step is due, up to [`Pipeline::reconcile_concurrency`] at once, so one run retrying
    /// through throttling never holds up the others.
    ///
    /// # Errors
    /// Storage failures reading the index; a run's own failure is recorded on it instead.
    pub async fn monitor_training(&self) -> Result<Emitted, PipelineError> {
        let store = self.store.as_ref();
        let (active, stale) = runs::active(store).await?;
        for id in stale {
            runs::unmark_active(store, &id).await?;
        }
        // Capacity first: slots of runs that moved on are given back, then the queue gets
        // what is free, so the runs started now are re-driven in this same tick.
        self.tidy_ledger(&active).await?;
        let mut out = Emitted::default();
        out.next.extend(self.tidy_hub(&active).await?);
        let started = self.dispatch(&active).await?;
        if let Err(e) = self.delete_due_files().await {
            tracing::warn!(error = %e, "Hub files not deleted yet; retried next tick.");
        }
        let mut active = active;
        for r in active.iter_mut().filter(|r| started.contains(&r.id)) {
            r.stage = Stage::Uploading;
        }
        let now = self.now();
        let still_queued: Vec<Run> = active
            .iter()
            .filter(|r| r.stage == Stage::Queued)
            .cloned()
            .collect();
        let due: Vec<Run> = active.into_iter().filter(|r| self.due(r, now)).collect();
        let results: Vec<(String, bool, Result<Emitted, PipelineError>)> = stream::iter(due)
            .map(|run| async move {
                let (id, retrying) = (run.id.clone(), run.retry.is_some() || run.stalled.is_some());
                (id, retrying, self.redrive(run).await)
            })
            .buffer_unordered(self.reconcile_concurrency.max(1))
            .collect()
            .await;
        for (id, retrying, result) in results {
            match result {
                Ok(e) => {
                    if retrying {
                        self.settle_retry(&id, None).await?;
                    }
                    out.extend(e);
                }
                // Another invocation holds the step: it is being driven, not failing.
                Err(PipelineError::Busy { .. }) => {}
                Err(e) => {
                    tracing::warn!(run_id = %id, error = %e, "Run not advanced; retried later.");
                    if let Some(n) = self.settle_retry(&id, Some(&e)).await? {
                        out.notifications.push(n);
                    }
                }
            }
        }
        // Jobs that ended in this tick gave their slots back: start the next runs now
        // rather than a tick later.
        let next = self.dispatch(&still_queued).await?;
        let submitted: Vec<Result<Emitted, PipelineError>> = stream::iter(next)
            .map(|id| async move { self.submit_to_hub(&id).await })
            .buffer_unordered(self.reconcile_concurrency.max(1))
            .collect()
            .await;
        for r in submitted {
            match r {
                Ok(e) => out.extend(e),
                // Retried by the next tick: the run is uploading, a polling step.
                Err(e) => {
                    tracing::warn!(error = %e, "Upload for a run just started failed; retried next tick.")
                }
            }
        }
        Ok(out)
    }

    /// Whether the reconciler should act on `run` now: not while a live invocation holds
    /// one of its claims, not before its retry delay, and — for steps a message normally
    /// drives — only once the step has been idle for [`Pipeline::reconcile_grace`].
    fn due(&self, run: &Run, now: chrono::DateTime<Utc>) -> bool {
        let ttl = chrono::Duration::from_std(self.claim_ttl).unwrap_or(chrono::Duration::MAX);
        let grace =
            chrono::Duration::from_std(self.reconcile_grace).unwrap_or(chrono::Duration::MAX);
        let claimed = run
            .effects
            .values()
            .any(|e| e.done_at.is_none() && now - e.started_at < ttl);
        if claimed || run.retry.as_ref().is_some_and(|r| r.next_at > now) {
            return false;
        }
        match run.stage {
            // The dispatcher moves queued runs on.
            Stage::Queued => false,
            // Polling steps: the reconciler is their driver.
            Stage::Uploading | Stage::Training => true,
            // Paused at its time budget, or waiting for a Hub slot: try at once.
            Stage::Evaluating
                if run.waiting.is_some()
                    || run
                        .eval_progress
                        .as_ref()
                        .is_some_and(|p| p.paused_at.is_some()) =>
            {
                true
            }
            _ => now - run.updated_at >= grace || run.retry.is_some(),
        }
    }

    /// Removes evaluation deployments (and slot claims and places in line) on the Hub whose
    /// run is no longer evaluating — a failed clean-up, a cancel, a crash — so no slot is
    /// held forever. Returns wake-up messages for runs whose turn it now is.
    async fn tidy_hub(&self, active: &[Run]) -> Result<Vec<Message>, PipelineError> {
        let evaluating: std::collections::BTreeSet<&str> = active
            .iter()
            .filter(|r| r.stage == Stage::Evaluating)
            .map(|r| r.id.as_str())
            .collect();
        let hub = inventory::account(self.store.as_ref(), &self.topology.hub.name).await?;
        let mut stale: Vec<(String, String)> = hub
            .deployments
            .values()
            .map(|d| (d.run_id.clone(), d.deployment.clone()))
            .chain(
                hub.reservations
                    .iter()
                    .map(|(n, r)| (r.run_id.clone(), n.clone())),
            )
            .filter(|(run, _)| !evaluating.contains(run.as_str()))
            .collect();
        stale.sort();
        stale.dedup();
        let mut wake = Vec::new();
        for (run, name) in &stale {
            // Only once the run itself says it is done with the slot.
            if let Some((r, _)) = runs::get(self.store.as_ref(), run).await?
                && r.stage == Stage::Evaluating
            {
                continue;
            }
            tracing::info!(run_id = %run, deployment = %name, "Removing an evaluation deployment its run no longer needs.");
            if let Some(next) = self.remove_eval_deployment(run, name).await? {
                wake.push(Message::TrainingCompleted { run_id: next });
            }
        }
        let gone: Vec<String> = hub
            .waiting
            .iter()
            .filter(|w| !evaluating.contains(w.run_id.as_str()))
            .map(|w| w.run_id.clone())
            .collect();
        if !gone.is_empty() {
            inventory::update_account(self.store.as_ref(), &self.topology.hub.name, |r| {
                r.waiting.retain(|w| !gone.contains(&w.run_id));
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        Ok(wake)
    }

    /// Performs `run`'s owed step.
    async fn redrive(&self, run: Run) -> Result<Emitted, PipelineError> {
        let id = run.id.as_str();
        match run.stage {
            Stage::Queued => return Ok(Emitted::default()),
            Stage::Uploading => return self.submit_to_hub(id).await,
            Stage::Training => return self.check_job(&run).await,
            Stage::Evaluating => {
                if run.waiting.is_none() {
                    tracing::info!(run_id = %id, "Re-driving an idle evaluation.");
                }
                let mut e = self.evaluate(id).await?;
                // Its follow-up for Dev goes to another queue than this timer's output:
                // promote here instead (wake-ups of waiting evaluations do go out).
                e.next
                    .retain(|m| matches!(m, Message::TrainingCompleted { .. }));
                let after = runs::get(self.store.as_ref(), id).await?.map(|(r, _)| r);
                if after.is_some_and(|r| r.stage == Stage::Evaluated) {
                    e.extend(self.promote_to_dev(id).await?);
                }
                return Ok(e);
            }
            Stage::Evaluated => return self.promote_to_dev(id).await,
            _ => {}
        }
        let mut out = Emitted::default();
        for (env, state) in run.environments.iter().filter(|(_, s)| s.owed()) {
            if *env == Env::Dev {
                out.extend(self.promote_to_dev(id).await?);
                continue;
            }
            let actor = state.approved_by.as_deref().unwrap_or(ACTOR_PIPELINE);
            tracing::info!(run_id = %id, %env, "Re-driving an owed promotion.");
            self.start_promotion(id, *env, actor, state.rollback_of.as_deref())
                .await?;
            out.extend(self.promoted(&run, *env, actor, true).await?);
        }
        Ok(out)
    }

    /// Records the outcome of a re-drive: success clears the retry state (and a stall the
    /// reconciler had raised); a failure schedules the next attempt with a growing delay and,
    /// after [`STALL_AFTER`] attempts, flags the run stalled — returning the notification
    /// to emit the first time it does.
    async fn settle_retry(
        &self,
        id: &str,
        error: Option<&PipelineError>,
    ) -> Result<Option<Notification>, PipelineError> {
        let now = self.now();
        let mut notify = None;
        let project = runs::get(self.store.as_ref(), id)
            .await?
            .map(|(r, _)| r.project)
            .unwrap_or_default();
        runs::update(self.store.as_ref(), id, |r| {
            let Some(e) = error else {
                // The owed step went through: whatever stalled it (a failing step, a dead
                // letter) is behind it.
                r.retry = None;
                r.stalled = None;
                return Ok::<(), PipelineError>(());
            };
            let attempts = r.retry.as_ref().map_or(0, |x| x.attempts) + 1;
            r.retry = Some(Retry {
                attempts,
                next_at: now + retry_delay(attempts - 1),
                last_error: e.to_string(),
            });
            if attempts >= STALL_AFTER && r.stalled.is_none() {
                let what = format!("step:{}", r.stage.name());
                r.note(
                    ACTOR_PIPELINE,
                    Event::Stalled,
                    format!("{what} failed {attempts} times: {e}"),
                    now,
                );
                r.stalled = Some(Stall {
                    since: now,
                    what: what.clone(),
                    reason: e.kind().to_owned(),
                    detail: e.to_string(),
                });
                notify = Some(Notification::RunStalled {
                    run_id: id.to_owned(),
                    project: project.clone(),
                    what,
                    reason: e.kind().to_owned(),
                    detail: format!("failed {attempts} times: {e}"),
                    approver: None,
                    environment: None,
                });
            }
            Ok(())
        })
        .await
        .map_err(PipelineError::from)?;
        Ok(notify)
    }
}

//! The Hub's fair training queue and its ledger (`state/hub/ledger.json`): validated runs
//! wait in `queued` until a job slot and room for their files are free, and are started
//! round-robin across projects. A job's slot is given back when it ends; its Hub files are
//! deleted once the run no longer needs them (after the topology's retention), so the Hub's
//! file limits never fill.

use super::*;
use crate::domain::queue::{Ledger, Queued, Retained};

const LEDGER: &str = "hub/ledger.json";

/// Whether the Hub refused for its own limits (jobs queued, files held) rather than for
/// the request: such a run goes back to the queue instead of failing.
pub(super) fn hub_full(e: &AoaiError) -> bool {
    match e {
        AoaiError::Http {
            status: 400 | 409 | 429,
            code,
            message,
            ..
        } => {
            let text = format!("{code} {message}").to_ascii_lowercase();
            text.contains("quota") || (text.contains("at most") && text.contains("per resource"))
        }
        AoaiError::Exhausted { last, .. } => hub_full(last),
        _ => false,
    }
}

impl Pipeline {
    /// The ledger as stored.
    ///
    /// # Errors
    /// Storage failures; a ledger that does not decode.
    pub async fn ledger(&self) -> Result<Ledger, PipelineError> {
        Ok(
            super::super::docs::read(self.store.as_ref(), runs::STATE, LEDGER)
                .await?
                .map(|(l, _)| l)
                .unwrap_or_default(),
        )
    }

    async fn update_ledger<R>(
        &self,
        change: impl FnMut(&mut Ledger) -> Result<R, PipelineError>,
    ) -> Result<R, PipelineError> {
        Ok(super::super::docs::update(self.store.as_ref(), runs::STATE, LEDGER, change).await?)
    }

    /// Starts queued runs while the Hub has room, in fair order: grants their slots in the
    /// ledger, then moves each to `uploading` (the reconciler uploads and creates the job,
    /// or the caller does for its own run). Also moves on a run granted a slot by an
    /// invocation that died before moving it. Returns the runs now uploading.
    pub(super) async fn dispatch(&self, active: &[Run]) -> Result<Vec<String>, PipelineError> {
        let waiting: Vec<Queued> = active
            .iter()
            .filter(|r| r.stage == Stage::Queued)
            .map(Queued::of)
            .collect();
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        let limits = self.topology.hub_limits;
        let now = self.now();
        let (granted, holding) = self
            .update_ledger(|l| {
                let granted = l.dispatch(&waiting, &limits, now);
                let holding: Vec<String> = waiting
                    .iter()
                    .filter(|q| l.jobs.contains_key(&q.run_id))
                    .map(|q| q.run_id.clone())
                    .collect();
                Ok((granted, holding))
            })
            .await?;
        let seq = self.ledger().await?;
        for id in &holding {
            let position = seq.jobs.get(id).map_or(0, |j| j.seq);
            runs::update(self.store.as_ref(), id, |r| {
                if r.stage == Stage::Queued {
                    r.waiting = None;
                    r.transition(
                        Stage::Uploading,
                        ACTOR_PIPELINE,
                        format!("training slot granted (dispatch #{position})"),
                        now,
                    );
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        if !granted.is_empty() {
            tracing::info!(granted = ?granted, "Training slots granted.");
        }
        Ok(holding)
    }

    /// The Hub refused `id`'s files or job for its own limits: back to the queue (its
    /// uploads removed, so what the Hub holds stays what the ledger says), and no dispatch
    /// for a minute.
    pub(super) async fn requeue(
        &self,
        id: &str,
        why: &AoaiError,
    ) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        for fid in run.hub_files.values() {
            self.delete_hub_file(fid).await?;
        }
        let now = self.now();
        self.update_ledger(|l| {
            l.release(id);
            l.paused_until = Some(now + chrono::Duration::minutes(1));
            Ok(())
        })
        .await?;
        runs::update(self.store.as_ref(), id, |r| {
            if matches!(r.stage, Stage::Uploading | Stage::Queued) {
                r.effects.retain(|k, _| !k.starts_with("upload:"));
                r.effects.remove("create_job");
                r.hub_files.clear();
                r.note(
                    ACTOR_PIPELINE,
                    Event::Requeued,
                    format!("the Hub refused for its limits: {why}"),
                    now,
                );
                r.stage = Stage::Queued;
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        tracing::warn!(run_id = %id, error = %why, "The Hub is full; the run went back to the queue.");
        Ok(Emitted::default())
    }

    /// A job ended: its slot is given back and its files (data and results) retained for the
    /// topology's retention, then deleted (at once when the retention is 0).
    pub(super) async fn job_ended(
        &self,
        run: &Run,
        result_files: &[String],
    ) -> Result<(), PipelineError> {
        let hours = self.topology.hub_limits.file_retention_hours;
        let after = self.now()
            + chrono::Duration::hours(i64::try_from(hours).unwrap_or(i64::MAX / 3_600_000));
        let sizes: BTreeMap<&str, u64> = run
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.bytes))
            .collect();
        let mut files: Vec<(String, u64)> = run
            .hub_files
            .iter()
            .map(|(name, id)| (id.clone(), sizes.get(name.as_str()).copied().unwrap_or(0)))
            .collect();
        files.extend(result_files.iter().map(|id| (id.clone(), 0)));
        self.update_ledger(|l| {
            l.release(&run.id);
            for (id, bytes) in &files {
                l.retained.entry(id.clone()).or_insert(Retained {
                    run_id: run.id.clone(),
                    bytes: *bytes,
                    delete_after: after,
                });
            }
            Ok(())
        })
        .await?;
        self.delete_due_files().await
    }

    /// Deletes every retained Hub file whose retention has ended.
    pub(super) async fn delete_due_files(&self) -> Result<(), PipelineError> {
        let now = self.now();
        let due: Vec<(String, String)> = self
            .ledger()
            .await?
            .retained
            .iter()
            .filter(|(_, r)| r.delete_after <= now)
            .map(|(id, r)| (id.clone(), r.run_id.clone()))
            .collect();
        for (id, run_id) in &due {
            self.delete_hub_file(id).await?;
            self.update_ledger(|l| {
                l.retained.remove(id);
                Ok(())
            })
            .await?;
            tracing::info!(%run_id, file = %id, "Hub file deleted.");
        }
        Ok(())
    }

    async fn delete_hub_file(&self, id: &str) -> Result<(), PipelineError> {
        match self.hub.delete_file(id).await {
            Ok(_) | Err(AoaiError::Http { status: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives back the job slots of runs that no longer hold one (cancelled, failed, or gone),
    /// so a crash never leaks a slot.
    pub(super) async fn tidy_ledger(&self, active: &[Run]) -> Result<(), PipelineError> {
        let holding: BTreeMap<&str, Stage> =
            active.iter().map(|r| (r.id.as_str(), r.stage)).collect();
        let ledger = self.ledger().await?;
        let stale: Vec<String> = ledger
            .jobs
            .keys()
            .filter(|id| {
                !matches!(
                    holding.get(id.as_str()),
                    Some(Stage::Queued | Stage::Uploading | Stage::Training)
                )
            })
            .cloned()
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        // A run that left the active index may still be finishing its job: read it.
        let mut gone = Vec::new();
        for id in stale {
            match runs::get(self.store.as_ref(), &id).await? {
                Some((r, _))
                    if matches!(r.stage, Stage::Queued | Stage::Uploading | Stage::Training) => {}
                _ => gone.push(id),
            }
        }
        self.update_ledger(|l| {
            for id in &gone {
                l.release(id);
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, code: &str, message: &str) -> AoaiError {
        AoaiError::Http {
            operation: "create job".into(),
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    #[test]
    fn refusals_for_the_hubs_own_limits_are_told_apart_from_bad_requests() {
        assert!(hub_full(&http(
            429,
            "tooManyRequests",
            "at most 20 jobs may be queued per resource"
        )));
        assert!(hub_full(&http(
            400,
            "quotaExceeded",
            "a resource holds at most 50 files"
        )));
        assert!(hub_full(&AoaiError::Exhausted {
            operation: "x".into(),
            attempts: 3,
            elapsed_ms: 1,
            last: Box::new(http(
                429,
                "tooManyRequests",
                "at most 20 jobs may be queued per resource"
            )),
        }));
        assert!(!hub_full(&http(
            429,
            "tooManyRequests",
            "rate limit exceeded, retry after 6 s"
        )));
        assert!(!hub_full(&http(
            400,
            "invalidPayload",
            "model cannot be fine-tuned"
        )));
        assert!(!hub_full(&http(
            500,
            "internalFailure",
            "quota service down"
        )));
    }
}

//! The one side-effect primitive: claim → do → record, with release on failure and takeover
//! after the claim's TTL — a durable `run(name, future)` step journalled in the run document.

use std::future::Future;

use super::*;
use crate::domain::run::Effect;

/// How a claim on a step came out.
enum Claim {
    /// Nobody claimed it before: do it.
    Fresh,
    /// A holder claimed it and died (its claim outlived any invocation): do it, but first
    /// look for what it may already have done.
    Takeover,
    /// Already done, with this result.
    Done(String),
}

impl Pipeline {
    /// Performs side effect `step` of run `id` at most once across every invocation and
    /// process: `act` runs only when this invocation holds the claim (its argument says a
    /// dead holder may have half-done it, so look before acting); on success the result is
    /// journalled with `record`'s changes in one write, on failure the claim is released so
    /// a retry starts at once. A step already done returns its recorded result unrun (after
    /// applying `record` again, which must be idempotent).
    ///
    /// # Errors
    /// `act`'s error; [`PipelineError::Busy`] when a live holder outlasted the wait.
    pub(super) async fn effect<Fut>(
        &self,
        id: &str,
        step: &str,
        act: impl FnOnce(bool) -> Fut,
        record: impl FnMut(&mut Run, &str),
    ) -> Result<String, PipelineError>
    where
        Fut: Future<Output = Result<String, PipelineError>>,
    {
        let done = self
            .resumable_effect(id, step, |t| async move { act(t).await.map(Some) }, record)
            .await?;
        Ok(done.unwrap_or_default())
    }

    /// [`Pipeline::effect`] for a step that may stop part-way and go on in a later
    /// invocation (a long evaluation): `act` answering `None` releases the claim without
    /// recording the step done, so the next driver resumes it at once.
    ///
    /// # Errors
    /// As [`Pipeline::effect`].
    pub(super) async fn resumable_effect<Fut>(
        &self,
        id: &str,
        step: &str,
        act: impl FnOnce(bool) -> Fut,
        mut record: impl FnMut(&mut Run, &str),
    ) -> Result<Option<String>, PipelineError>
    where
        Fut: Future<Output = Result<Option<String>, PipelineError>>,
    {
        let result = match self.claim(id, step).await? {
            // Recording again is idempotent (and writes nothing when nothing changes); it
            // heals a journal written by an older version that recorded in two writes.
            Claim::Done(result) => {
                runs::update(self.store.as_ref(), id, |r| {
                    record(r, &result);
                    Ok::<(), PipelineError>(())
                })
                .await?;
                return Ok(Some(result));
            }
            claim => match self
                .renewing(id, step, act(matches!(claim, Claim::Takeover)))
                .await
            {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.release(id, step).await;
                    return Ok(None);
                }
                Err(e) => {
                    self.release(id, step).await;
                    return Err(e);
                }
            },
        };
        let now = self.now();
        runs::update(self.store.as_ref(), id, |r| {
            let e = r.effects.entry(step.to_owned()).or_insert(Effect {
                started_at: now,
                done_at: None,
                result: None,
            });
            e.done_at = Some(now);
            e.result = Some(result.clone());
            record(r, &result);
            Ok::<(), PipelineError>(())
        })
        .await?;
        Ok(Some(result))
    }

    /// Claims `step` for this invocation. A claim younger than [`Pipeline::claim_ttl`]
    /// belongs to a live invocation (a concurrent duplicate delivery): wait for it to
    /// finish, then report it done; if it still runs after [`Pipeline::claim_wait`], fail
    /// retryably so the delivery comes back later. So two processes never perform the same
    /// effect at once.
    async fn claim(&self, id: &str, step: &str) -> Result<Claim, PipelineError> {
        enum State {
            Claimed(Claim),
            Busy,
        }
        let waited = tokio::time::Instant::now();
        let ttl = chrono::Duration::from_std(self.claim_ttl).unwrap_or(chrono::Duration::MAX);
        loop {
            let now = self.now();
            let mut state = State::Busy;
            runs::update(self.store.as_ref(), id, |r| {
                state = match r.effects.get_mut(step) {
                    Some(e) if e.done_at.is_some() => {
                        State::Claimed(Claim::Done(e.result.clone().unwrap_or_default()))
                    }
                    Some(e) if now - e.started_at < ttl => State::Busy,
                    Some(e) => {
                        // The holder outlived any invocation's budget: it died. Take over.
                        e.started_at = now;
                        State::Claimed(Claim::Takeover)
                    }
                    None => {
                        r.effects.insert(
                            step.to_owned(),
                            Effect {
                                started_at: now,
                                done_at: None,
                                result: None,
                            },
                        );
                        State::Claimed(Claim::Fresh)
                    }
                };
                Ok::<(), PipelineError>(())
            })
            .await?;
            match state {
                State::Claimed(c) => return Ok(c),
                State::Busy if waited.elapsed() >= self.claim_wait => {
                    return Err(PipelineError::Busy {
                        step: step.to_owned(),
                    });
                }
                State::Busy => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Runs `work` while renewing the claim on `step` every third of the TTL, so a live
    /// holder is never taken over however long its step runs (a long evaluation, a slow
    /// machine) and the TTL can be short: a dead holder's claim goes stale within it.
    async fn renewing<T>(&self, id: &str, step: &str, work: impl Future<Output = T>) -> T {
        let every = (self.claim_ttl / 3).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tick.tick() => {
                    let now = self.now();
                    let renewed = runs::update(self.store.as_ref(), id, |r| {
                        if let Some(e) = r.effects.get_mut(step).filter(|e| e.done_at.is_none()) {
                            e.started_at = now;
                        }
                        Ok::<(), PipelineError>(())
                    })
                    .await;
                    if let Err(e) = renewed {
                        tracing::warn!(error = %e, %step, "Could not renew a claim; it may be taken over.");
                    }
                }
            }
        }
    }

    /// Gives up a claim after the effect failed, so a retry starts at once instead of
    /// waiting for the claim to go stale. Best effort: a stale claim is taken over anyway.
    async fn release(&self, id: &str, step: &str) {
        let r = runs::update(self.store.as_ref(), id, |r| {
            if r.effects.get(step).is_some_and(|e| e.done_at.is_none()) {
                r.effects.remove(step);
            }
            Ok::<(), PipelineError>(())
        })
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, %step, "Could not release a claim; it will go stale.");
        }
    }
}

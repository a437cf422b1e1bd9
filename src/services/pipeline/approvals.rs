//! Signed approvals: verified against the project's approvers for the environment,
//! recorded (nonce first, so a replay is refused), then a promotion, a refusal, or a
//! rollback of the project's release in that environment to its previous one.

use super::*;

impl Pipeline {
    /// Applies a signed approval.
    ///
    /// # Errors
    /// Refused (terminal, recorded) for every rule in [`approval::check`]; retryable for outages.
    pub async fn apply_approval(&self, signed: &SignedApproval) -> Result<Emitted, PipelineError> {
        let a = &signed.approval;
        let (run, _) = runs::get(self.store.as_ref(), &a.run_id)
            .await?
            .ok_or_else(|| refused("unknown_run", format!("run {} does not exist", a.run_id)))?;
        let env = match a.environment.parse::<Env>() {
            Ok(e) if e != Env::Dev => e,
            _ => {
                let why = approval::Refusal::NoApprovals(a.environment.clone()).to_string();
                return self.refuse_approval(a, why).await;
            }
        };
        let record = inventory::project(self.store.as_ref(), &run.project).await?;
        let serving_here = record.current(env).is_some_and(|r| r.run_id == run.id);
        // A redelivery of an approval already applied continues what it started.
        let resuming = run.used_nonces.contains(&a.nonce)
            && run
                .environments
                .get(&env)
                .is_some_and(|e| e.approved_by.as_deref() == Some(&a.approver));
        if !resuming {
            let reached: Vec<Env> = run
                .environments
                .iter()
                .filter(|(_, s)| matches!(s.status, EnvStatus::Healthy | EnvStatus::Superseded))
                .map(|(e, _)| *e)
                .collect();
            let ctx = approval::Context {
                approvers: self.topology.approvers(env, &run.project),
                reached: &reached,
                serving_here,
                evaluation_passed: run.evaluation.as_ref().is_some_and(|e| e.passed),
                submitted_by: &run.submitted_by,
                used_nonces: &run.used_nonces,
                now: self.now(),
                max_age: chrono::Duration::minutes(self.topology.defaults.approval_max_age_minutes),
                has_previous: record.rollback_target(env).is_some(),
            };
            if let Err(refusal) = approval::check(signed, &ctx) {
                return self.refuse_approval(a, refusal.to_string()).await;
            }
            runs::update(self.store.as_ref(), &a.run_id, |r| {
                if !r.used_nonces.contains(&a.nonce) {
                    r.used_nonces.push(a.nonce.clone());
                    let st = r.environments.entry(env).or_default();
                    st.approved_by = Some(a.approver.clone());
                    if a.decision == Decision::Approve && !st.owed() {
                        // Approved, nothing deployed yet: owed, so a crash is re-driven.
                        st.status = EnvStatus::Pending;
                    }
                    r.note(
                        &a.approver,
                        Event::ApprovalAccepted,
                        format!("{env} {:?}: {}", a.decision, a.reason),
                        self.now(),
                    );
                    answered(r, &a.nonce);
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        match a.decision {
            Decision::Approve => {
                let (now, _) = runs::get(self.store.as_ref(), &a.run_id)
                    .await?
                    .ok_or_else(|| refused("unknown_run", a.run_id.clone()))?;
                if resuming
                    && !now
                        .environments
                        .get(&env)
                        .is_some_and(EnvironmentState::owed)
                {
                    // Applied already: a redelivery deploys nothing again.
                    return Ok(Emitted::default());
                }
                self.start_promotion(&a.run_id, env, &a.approver, None)
                    .await?;
                self.promoted(&run, env, &a.approver, false).await
            }
            Decision::Reject => {
                runs::update(self.store.as_ref(), &a.run_id, |r| {
                    r.environments.entry(env).or_default().status = EnvStatus::Rejected;
                    Ok::<(), PipelineError>(())
                })
                .await?;
                Ok(Emitted::notify(Notification::PromotionRejected {
                    run_id: a.run_id.clone(),
                    project: run.project.clone(),
                    environment: env,
                    approver: a.approver.clone(),
                    reason: a.reason.clone(),
                }))
            }
            Decision::Rollback => self.roll_back(&run, env, a).await,
        }
    }

    /// Restores the release before `run` in `env` (the project's own), everywhere. Its
    /// outcome is recorded on `run` with the approval's nonce, so its approver can find it.
    async fn roll_back(
        &self,
        run: &Run,
        env: Env,
        a: &approval::Approval,
    ) -> Result<Emitted, PipelineError> {
        let by = a.approver.as_str();
        let record = inventory::project(self.store.as_ref(), &run.project).await?;
        let target = match record.current(env) {
            // Not rolled back yet (or a crash before it started): the release before it.
            Some(cur) if cur.run_id == run.id => match record.rollback_target(env) {
                Some(r) => r.run_id.clone(),
                None => {
                    return self
                        .refuse_approval(a, "nothing to roll back to".into())
                        .await;
                }
            },
            // A redelivery after the rollback was recorded: it is the release now serving.
            Some(cur) => cur.run_id.clone(),
            None => {
                return self
                    .refuse_approval(a, "nothing to roll back to".into())
                    .await;
            }
        };
        let (target_run, _) = runs::get(self.store.as_ref(), &target)
            .await?
            .ok_or_else(|| refused("unknown_run", target.clone()))?;
        let done = target_run
            .environments
            .get(&env)
            .is_some_and(|s| s.status == EnvStatus::Healthy)
            && record.current(env).is_some_and(|c| c.run_id == target);
        if !done {
            self.start_promotion(&target, env, by, Some(&run.id))
                .await?;
            if let super::promotion::Promoted::Refused(n) = self.promote(&target, env, by).await? {
                let why = match &n {
                    Notification::PromotionRefused { reason, .. } => reason.clone(),
                    _ => "the promotion was refused".to_owned(),
                };
                let detail = format!("{env} rollback to {target} refused: {why}");
                self.note_once(&run.id, a, Event::PromotionRefused, detail)
                    .await?;
                return Ok(Emitted::notify(n));
            }
        }
        let detail = format!("{env} back to {target}");
        self.note_once(&run.id, a, Event::Rollback, detail).await?;
        Ok(Emitted::notify(Notification::RollbackCompleted {
            project: run.project.clone(),
            environment: env,
            from_run: run.id.clone(),
            to_run: target,
            by: by.to_owned(),
        }))
    }

    /// Records what an approval led to on `run_id`, once per approval (a redelivery records
    /// nothing twice), marked with its nonce.
    async fn note_once(
        &self,
        run_id: &str,
        a: &approval::Approval,
        what: Event,
        detail: String,
    ) -> Result<(), PipelineError> {
        runs::update(self.store.as_ref(), run_id, |r| {
            let noted = r.history.iter().any(|t| {
                t.approval.as_deref() == Some(a.nonce.as_str())
                    && t.to == crate::domain::run::Step::Event(what)
            });
            if !noted {
                r.note(&a.approver, what, detail.clone(), self.now());
                answered(r, &a.nonce);
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        Ok(())
    }

    /// Records a refused approval on its run (where its approver sees it) and refuses.
    async fn refuse_approval(
        &self,
        a: &approval::Approval,
        text: String,
    ) -> Result<Emitted, PipelineError> {
        runs::update(self.store.as_ref(), &a.run_id, |r| {
            r.note(
                &a.approver,
                Event::ApprovalRefused,
                format!("{} {:?}: {text}", a.environment, a.decision),
                self.now(),
            );
            answered(r, &a.nonce);
            Ok::<(), PipelineError>(())
        })
        .await?;
        Err(refused("approval_refused", text))
    }
}

/// Marks the entry just recorded as the answer to the approval with `nonce`.
fn answered(run: &mut Run, nonce: &str) {
    if let Some(t) = run.history.last_mut() {
        t.approval = Some(nonce.to_owned());
    }
}

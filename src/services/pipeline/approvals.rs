use super::*;

impl Pipeline {
    /// Applies a signed approval: verifies it, records it (nonce first, so a replay is
    /// refused), then promotes, rejects or rolls back.
    ///
    /// # Errors
    /// Refused (terminal, recorded) for every rule in [`approval::check`]; retryable for outages.
    pub async fn apply_approval(&self, signed: &SignedApproval) -> Result<Emitted, PipelineError> {
        let a = &signed.approval;
        let (run, _) = runs::get(self.store.as_ref(), &a.run_id)
            .await?
            .ok_or_else(|| refused("unknown_run", format!("run {} does not exist", a.run_id)))?;
        let env = self
            .topology
            .environments
            .get(&a.environment)
            .ok_or_else(|| refused("unknown_environment", a.environment.clone()))?;
        let (inv, _) = inventory::load(self.store.as_ref()).await?;
        let has_previous = inv
            .environments
            .get(&a.environment)
            .is_some_and(|e| e.history.len() >= 2);
        let reached = run.reached();
        // A redelivery of an approval already applied continues its promotion.
        let resuming = run.used_nonces.contains(&a.nonce)
            && run
                .environments
                .get(&a.environment)
                .is_some_and(|e| e.approved_by.as_deref() == Some(&a.approver));
        if !resuming {
            let ctx = approval::Context {
                approvers: &env.approvers,
                reached: &reached,
                evaluation_passed: run.evaluation.as_ref().is_some_and(|e| e.passed),
                submitted_by: &run.submitted_by,
                used_nonces: &run.used_nonces,
                now: self.now(),
                max_age: chrono::Duration::minutes(self.topology.defaults.approval_max_age_minutes),
                has_previous,
            };
            if let Err(refusal) = approval::check(signed, &ctx) {
                let text = refusal.to_string();
                runs::update(self.store.as_ref(), &a.run_id, |r| {
                    r.note(
                        &a.approver,
                        "approval_refused",
                        format!("{} {:?}: {text}", a.environment, a.decision),
                        self.now(),
                    );
                    Ok::<(), PipelineError>(())
                })
                .await?;
                return Err(refused("approval_refused", text));
            }
            runs::update(self.store.as_ref(), &a.run_id, |r| {
                if !r.used_nonces.contains(&a.nonce) {
                    r.used_nonces.push(a.nonce.clone());
                    r.environments
                        .entry(a.environment.clone())
                        .or_default()
                        .approved_by = Some(a.approver.clone());
                    r.note(
                        &a.approver,
                        "approval_accepted",
                        format!("{} {:?}: {}", a.environment, a.decision, a.reason),
                        self.now(),
                    );
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        match a.decision {
            Decision::Approve => {
                self.promote(&a.run_id, &a.environment, &a.approver, None)
                    .await?;
                Ok(Emitted {
                    notifications: vec![
                        json!({"type": format!("promotion.{}", a.environment), "run_id": a.run_id, "approver": a.approver}),
                    ],
                    next: vec![],
                })
            }
            Decision::Reject => {
                runs::update(self.store.as_ref(), &a.run_id, |r| {
                    r.environments
                        .entry(a.environment.clone())
                        .or_default()
                        .status = "rejected".into();
                    Ok::<(), PipelineError>(())
                })
                .await?;
                Ok(Emitted {
                    notifications: vec![
                        json!({"type": "promotion.rejected", "run_id": a.run_id, "environment": a.environment, "approver": a.approver, "reason": a.reason}),
                    ],
                    next: vec![],
                })
            }
            Decision::Rollback => {
                let history = inv
                    .environments
                    .get(&a.environment)
                    .map(|e| e.history.clone())
                    .unwrap_or_default();
                let previous = history
                    .iter()
                    .rev()
                    .nth(1)
                    .cloned()
                    .ok_or_else(|| refused("approval_refused", "nothing to roll back to"))?;
                let (prev_run, _) = runs::get(self.store.as_ref(), &previous)
                    .await?
                    .ok_or_else(|| refused("unknown_run", previous.clone()))?;
                self.promote(&a.run_id, &a.environment, &a.approver, Some(&prev_run))
                    .await?;
                runs::update(self.store.as_ref(), &a.run_id, |r| {
                    r.environments
                        .entry(a.environment.clone())
                        .or_default()
                        .status = "rolled_back".into();
                    r.note(
                        &a.approver,
                        "rollback",
                        format!("{} back to {previous}", a.environment),
                        self.now(),
                    );
                    Ok::<(), PipelineError>(())
                })
                .await?;
                Ok(Emitted {
                    notifications: vec![
                        json!({"type": "rollback", "environment": a.environment, "to_run": previous}),
                    ],
                    next: vec![],
                })
            }
        }
    }
}

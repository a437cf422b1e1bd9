//! Promotion: a run's model to every Spoke of an environment, under its project's
//! deployment name. Capacity is checked first (every Spoke must have the project's slot or a
//! free one, else the promotion is refused before any deployment call, naming the Spoke and
//! who holds its slots); then each region is deployed and smoke-tested in parallel; the
//! inventory records the new release; the release it replaced is marked superseded (or
//! rolled back).

use super::*;
use crate::domain::inventory::{Deployment, Health, Release, ReleaseKind};

/// How a promotion ended (a partial failure is [`PipelineError::Degraded`]).
#[derive(Debug)]
pub(super) enum Promoted {
    /// Serving in every region.
    Healthy {
        /// Regions.
        regions: Vec<String>,
    },
    /// Refused for capacity: recorded on the run, needs a person.
    Refused(Notification),
}

/// Whether ARM refused a deployment for the account's quota of deployments.
fn quota(e: &PipelineError) -> bool {
    match e {
        PipelineError::Aoai(AoaiError::Http {
            status: 400 | 409,
            code,
            ..
        }) => {
            let c = code.to_ascii_lowercase();
            c.contains("quota")
        }
        _ => false,
    }
}

impl Pipeline {
    pub(super) fn deployment_spec(
        &self,
        model: &str,
        run: &Run,
        target: &Account,
        sku: &str,
        capacity: u32,
    ) -> (DeploymentSpec, Option<String>) {
        let hub = &self.topology.hub;
        let cross_tenant = target.tenant != hub.tenant;
        let tags = BTreeMap::from([
            ("fthub-run".to_owned(), run.id.clone()),
            ("fthub-project".to_owned(), run.project.clone()),
            (
                "fthub-version".to_owned(),
                run.data_digest.chars().take(12).collect(),
            ),
            ("fthub-model".to_owned(), model.to_owned()),
            (
                "fthub-dataset".to_owned(),
                format!("{}/{}", run.project, run.submission),
            ),
        ]);
        let same_account = target.name == hub.name;
        let spec = DeploymentSpec {
            model: model.to_owned(),
            version: "1".into(),
            sku: sku.to_owned(),
            capacity,
            source: (!same_account && !cross_tenant).then(|| hub.resource_id.clone()),
            source_account: cross_tenant.then(|| hub.resource_id.clone()),
            tags,
        };
        (spec, cross_tenant.then(|| hub.tenant.clone()))
    }

    /// Opens a new release of `id` into `env` (a new generation of its deployment steps),
    /// unless one is already in flight. `rollback_of` names the run a rollback replaces.
    pub(super) async fn start_promotion(
        &self,
        id: &str,
        env: Env,
        actor: &str,
        rollback_of: Option<&str>,
    ) -> Result<(), PipelineError> {
        runs::update(self.store.as_ref(), id, |r| {
            let state = r.environments.entry(env).or_default();
            if matches!(state.status, EnvStatus::Promoting | EnvStatus::Degraded) {
                return Ok::<(), PipelineError>(());
            }
            state.generation += 1;
            state.status = EnvStatus::Promoting;
            state.approved_by = Some(actor.to_owned());
            state.rollback_of = rollback_of.map(str::to_owned);
            state.refusal = None;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Deploys the run's model to every Spoke of `env` in parallel, smoke-tests each, and
    /// records the result per region. All healthy moves the run and records the release; a
    /// partial failure leaves the environment degraded and fails so it is retried; no slot
    /// is a refusal recorded on the run.
    pub(super) async fn promote(
        &self,
        id: &str,
        env: Env,
        actor: &str,
    ) -> Result<Promoted, PipelineError> {
        use futures_util::future::join_all;
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        let model = run
            .fine_tuned_model
            .clone()
            .ok_or_else(|| refused("no_model", "the run has no fine-tuned model"))?;
        let name = self.topology.deployment_name(&run.project);
        let spokes = self.topology.spokes(env).to_vec();
        let state = run.environments.get(&env).cloned().unwrap_or_default();
        // Refused before any call: a deployment Azure does not offer there, or no slot.
        let sku = &self.topology.deployment.sku;
        for spoke in &spokes {
            if let Err(e) = self.availability.check(&model, sku, &spoke.region) {
                let why = format!("{} ({}): {e}", spoke.name, spoke.region);
                return self.refuse(&run, env, &spokes, &spoke.region, why).await;
            }
        }
        if let Err(no) = self.reserve_slots(&spokes, &name, &run).await? {
            return self
                .refuse(&run, env, &spokes, &no.region, no.describe())
                .await;
        }
        let d = &self.topology.deployment;
        let steps = spokes.iter().map(|spoke| {
            let (spec, aux) = self.deployment_spec(&model, &run, spoke, &d.sku, d.capacity);
            let step = format!("deploy:{env}:{}:g{}", spoke.region, state.generation);
            let (name, model) = (name.clone(), model.clone());
            async move {
                let outcome: Result<(), PipelineError> = async {
                    self.effect(
                        id,
                        &step,
                        |_| async {
                            self.arm.put(spoke, &name, &spec, aux.as_deref()).await?;
                            Ok(name.clone())
                        },
                        |_, _| {},
                    )
                    .await?;
                    self.inference(&spoke.name)?
                        .chat(&name, &model, &ping())
                        .await?;
                    Ok(())
                }
                .await;
                (spoke.clone(), outcome)
            }
        });
        let results = join_all(steps).await;
        if let Some((spoke, Err(e))) = results.iter().find(|(_, r)| r.as_ref().is_err_and(quota)) {
            // The inventory did not know every holder (a deployment made outside fthub).
            let why = format!(
                "{} ({}) refused the deployment for its quota: {e}",
                spoke.name, spoke.region
            );
            return self.refuse(&run, env, &spokes, &spoke.region, why).await;
        }
        let now = self.now();
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(s, r)| r.as_ref().err().map(|e| format!("{}: {e}", s.region)))
            .collect();
        if failed.is_empty() {
            self.record_release(&run, env, &model, &name, &spokes, actor, &state)
                .await?;
        }
        runs::update(self.store.as_ref(), id, |r| {
            let st = r.environments.entry(env).or_default();
            for (spoke, res) in &results {
                st.regions.insert(
                    spoke.region.clone(),
                    RegionState {
                        account: spoke.name.clone(),
                        deployment: name.clone(),
                        status: if res.is_ok() {
                            RegionStatus::Verified
                        } else {
                            RegionStatus::Failed
                        },
                        error: res.as_ref().err().map(ToString::to_string),
                        verified_at: res.is_ok().then_some(now),
                    },
                );
            }
            let healthy = failed.is_empty();
            let status = if healthy {
                EnvStatus::Healthy
            } else {
                EnvStatus::Degraded
            };
            if st.status != status {
                st.status = status;
                st.rollback_of = None;
                if healthy && r.stage < env.stage() {
                    r.transition(
                        env.stage(),
                        actor,
                        format!("serving {model} in {env} ({} regions)", results.len()),
                        now,
                    );
                } else if !healthy {
                    r.note(
                        actor,
                        Event::EnvironmentDegraded,
                        format!("{env}: {}", failed.join("; ")),
                        now,
                    );
                }
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        if !failed.is_empty() {
            return Err(PipelineError::Degraded {
                env: env.name().to_owned(),
                detail: failed.join("; "),
            });
        }
        Ok(Promoted::Healthy {
            regions: spokes.iter().map(|s| s.region.clone()).collect(),
        })
    }

    /// Records a capacity refusal on the run: terminal, visible, notified.
    async fn refuse(
        &self,
        run: &Run,
        env: Env,
        spokes: &[Account],
        full_region: &str,
        why: String,
    ) -> Result<Promoted, PipelineError> {
        let now = self.now();
        let name = self.topology.deployment_name(&run.project);
        runs::update(self.store.as_ref(), &run.id, |r| {
            let st = r.environments.entry(env).or_default();
            if st.status == EnvStatus::Refused && st.refusal.as_deref() == Some(why.as_str()) {
                return Ok::<(), PipelineError>(());
            }
            st.status = EnvStatus::Refused;
            st.refusal = Some(why.clone());
            for spoke in spokes.iter().filter(|s| s.region == full_region) {
                st.regions.insert(
                    spoke.region.clone(),
                    RegionState {
                        account: spoke.name.clone(),
                        deployment: name.clone(),
                        status: RegionStatus::Refused,
                        error: Some(why.clone()),
                        verified_at: None,
                    },
                );
            }
            r.note(
                ACTOR_PIPELINE,
                Event::PromotionRefused,
                format!("{env}: {why}"),
                now,
            );
            Ok(())
        })
        .await?;
        tracing::warn!(run_id = %run.id, %env, reason = %why, "Promotion refused for capacity.");
        Ok(Promoted::Refused(Notification::PromotionRefused {
            run_id: run.id.clone(),
            project: run.project.clone(),
            environment: env,
            reason: why,
        }))
    }

    /// Records a release that serves everywhere: each Spoke's record, the project's release
    /// history, and the run it replaced (superseded, or rolled back). Idempotent, and done
    /// before the run is marked healthy, so a crash in between is re-driven and finishes it.
    #[allow(clippy::too_many_arguments)]
    async fn record_release(
        &self,
        run: &Run,
        env: Env,
        model: &str,
        name: &str,
        spokes: &[Account],
        actor: &str,
        state: &EnvironmentState,
    ) -> Result<(), PipelineError> {
        let now = self.now();
        let version: String = run.data_digest.chars().take(12).collect();
        for spoke in spokes {
            inventory::update_account(self.store.as_ref(), &spoke.name, |a| {
                let same = a
                    .deployments
                    .get(name)
                    .is_some_and(|d| d.run_id == run.id && d.model == model);
                if !same {
                    a.deployed(Deployment {
                        project: run.project.clone(),
                        deployment: name.to_owned(),
                        run_id: run.id.clone(),
                        model: model.to_owned(),
                        version: version.clone(),
                        deployed_at: now,
                        last_keepalive: Some(now),
                        last_latency_ms: None,
                        health: Health::Healthy,
                        restorations: 0,
                    });
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        let kind = if state.rollback_of.is_some() {
            ReleaseKind::Rollback
        } else {
            ReleaseKind::Promotion
        };
        let release = Release {
            run_id: run.id.clone(),
            model: model.to_owned(),
            at: now,
            by: actor.to_owned(),
            kind,
            rolled_back: false,
        };
        let replaced = inventory::update_project(self.store.as_ref(), &run.project, |p| {
            p.record(env, release.clone());
            // The release before this one, whatever happened since: mark it (idempotent).
            let list = p.releases.get(&env).map(Vec::as_slice).unwrap_or_default();
            Ok::<_, PipelineError>(
                list.iter()
                    .rev()
                    .find(|r| r.run_id != run.id)
                    .map(|r| r.run_id.clone()),
            )
        })
        .await?;
        if let Some(prev) = replaced {
            let (status, event) = match kind {
                ReleaseKind::Rollback => (EnvStatus::RolledBack, Event::Rollback),
                _ => (EnvStatus::Superseded, Event::Superseded),
            };
            let result = runs::update(self.store.as_ref(), &prev, |r| {
                if let Some(st) = r.environments.get_mut(&env)
                    && st.status == EnvStatus::Healthy
                {
                    st.status = status;
                    r.note(actor, event, format!("{env}: replaced by {}", run.id), now);
                }
                Ok::<(), PipelineError>(())
            })
            .await;
            match result {
                Ok(_) | Err(UpdateError::Missing(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// After evaluation: a passing candidate goes to every Dev Spoke.
    ///
    /// # Errors
    /// Degraded (retryable) when a region failed.
    pub async fn promote_to_dev(&self, id: &str) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        let dev = run.environments.get(&Env::Dev);
        let owed = dev.is_some_and(EnvironmentState::owed);
        if !(run.stage == Stage::Evaluated && !run.blocked() || owed) {
            return Ok(Emitted::default());
        }
        self.start_promotion(id, Env::Dev, ACTOR_PIPELINE, None)
            .await?;
        self.promoted(&run, Env::Dev, ACTOR_PIPELINE, false).await
    }

    /// Promotes and says so.
    pub(super) async fn promoted(
        &self,
        run: &Run,
        env: Env,
        actor: &str,
        reconciled: bool,
    ) -> Result<Emitted, PipelineError> {
        Ok(match self.promote(&run.id, env, actor).await? {
            Promoted::Healthy { regions } => Emitted::notify(Notification::PromotionCompleted {
                run_id: run.id.clone(),
                project: run.project.clone(),
                environment: env,
                by: actor.to_owned(),
                regions,
                reconciled,
            }),
            Promoted::Refused(n) => Emitted::notify(n),
        })
    }
}

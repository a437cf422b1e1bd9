use super::*;

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

    /// Deploys the run's model to every Spoke of `env` in parallel, smoke-tests each, and
    /// records the result per region. All healthy moves the run; a partial failure leaves
    /// the environment degraded and fails so the trigger is retried.
    pub(super) async fn promote(
        &self,
        id: &str,
        env: &str,
        actor: &str,
        model_run: Option<&Run>,
    ) -> Result<Run, PipelineError> {
        use futures_util::future::join_all;
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        let source_run = model_run.unwrap_or(&run).clone();
        let model = source_run
            .fine_tuned_model
            .clone()
            .ok_or_else(|| refused("no_model", "the run has no fine-tuned model"))?;
        let name = self.topology.deployment_name(&run.project);
        let d = &self.topology.deployment;
        let spokes = self.topology.spokes(env).to_vec();
        let steps = spokes.iter().map(|spoke| {
            let (spec, aux) = self.deployment_spec(&model, &source_run, spoke, &d.sku, d.capacity);
            let step = format!("deploy:{env}:{}:{}", spoke.region, source_run.id);
            let name = name.clone();
            let model = model.clone();
            async move {
                let outcome: Result<(), PipelineError> = async {
                    self.effect(
                        id,
                        &step,
                        |_| async {
                            self.arm
                                .put(&spoke.resource_id, &name, &spec, aux.as_deref())
                                .await?;
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
        let now = self.now();
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(s, r)| r.as_ref().err().map(|e| format!("{}: {e}", s.region)))
            .collect();
        let stage = match env {
            "dev" => Stage::Dev,
            "test" => Stage::Test,
            _ => Stage::Prod,
        };
        let updated = runs::update(self.store.as_ref(), id, |r| {
            let state = r
                .environments
                .entry(env.to_owned())
                .or_insert_with(EnvironmentState::default);
            state.model_run = Some(source_run.id.clone());
            for (spoke, res) in &results {
                state.regions.insert(
                    spoke.region.clone(),
                    RegionState {
                        account: spoke.name.clone(),
                        deployment: name.clone(),
                        status: if res.is_ok() {
                            "verified".into()
                        } else {
                            "failed".into()
                        },
                        error: res.as_ref().err().map(ToString::to_string),
                        verified_at: res.is_ok().then_some(now),
                    },
                );
            }
            let healthy = failed.is_empty();
            let status = if healthy { "healthy" } else { "degraded" };
            if state.status != status {
                state.status = status.into();
                if healthy && r.stage < stage {
                    r.transition(
                        stage,
                        actor,
                        format!("serving {model} in {env} ({} regions)", results.len()),
                        now,
                    );
                } else if !healthy {
                    r.note(actor, &format!("{env}_degraded"), failed.join("; "), now);
                }
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        if !failed.is_empty() {
            return Err(PipelineError::Degraded {
                env: env.to_owned(),
                detail: failed.join("; "),
            });
        }
        inventory::update(self.store.as_ref(), |inv| {
            let e = inv.environments.entry(env.to_owned()).or_default();
            if e.history.last() != Some(&source_run.id) {
                e.history.push(source_run.id.clone());
            }
            for spoke in &spokes {
                e.regions.insert(
                    spoke.region.clone(),
                    Entry {
                        account: spoke.name.clone(),
                        region: spoke.region.clone(),
                        deployment: name.clone(),
                        model: model.clone(),
                        run_id: source_run.id.clone(),
                        deployed_at: now,
                        last_keepalive: Some(now),
                        last_latency_ms: None,
                        health: "healthy".into(),
                        restorations: 0,
                    },
                );
            }
        })
        .await?;
        Ok(updated)
    }

    /// After evaluation: a passing candidate goes to every Dev Spoke.
    ///
    /// # Errors
    /// Degraded (retryable) when a region failed.
    pub async fn promote_to_dev(&self, id: &str) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        if run.stage != Stage::Evaluated
            && !(run.stage == Stage::Dev
                && run
                    .environments
                    .get("dev")
                    .is_some_and(|e| e.status != "healthy"))
        {
            return Ok(Emitted::default());
        }
        let r = self.promote(id, "dev", ACTOR_PIPELINE, None).await?;
        Ok(Emitted {
            notifications: vec![
                json!({"type": "promotion.dev", "run_id": id, "regions": r.environments["dev"].regions.keys().collect::<Vec<_>>()}),
            ],
            next: vec![],
        })
    }
}

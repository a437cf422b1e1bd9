use super::*;

impl Pipeline {
    /// Pings every fine-tuned deployment in the inventory, and every one found by listing
    /// the Spokes (drift); redeploys what vanished from its Hub model. Developer-tier
    /// deployments are skipped.
    ///
    /// # Errors
    /// Storage failures; per-deployment failures are recorded and reported.
    pub async fn keep_warm(&self) -> Result<Emitted, PipelineError> {
        use futures_util::future::join_all;
        let (inv, _) = inventory::load(self.store.as_ref()).await?;
        let mut targets: Vec<(String, Entry)> = inv
            .environments
            .iter()
            .flat_map(|(env, e)| e.regions.values().map(move |x| (env.clone(), x.clone())))
            .collect();
        // Drift: fine-tuned deployments on a Spoke that the inventory does not know.
        let mut drift = Vec::new();
        for env in ENVIRONMENTS {
            for spoke in self.topology.spokes(env) {
                let Ok(list) = self.arm.list(&spoke.resource_id).await else {
                    continue;
                };
                for d in list {
                    let known = targets
                        .iter()
                        .any(|(_, e)| e.account == spoke.name && e.deployment == d.name);
                    let developer = d.sku.as_ref().is_some_and(|s| {
                        s.name
                            .eq_ignore_ascii_case(crate::domain::aoai::sku::DEVELOPER)
                    });
                    if !known && !developer && d.properties.model.name.contains(".ft-") {
                        drift.push(format!("{}/{}", spoke.name, d.name));
                        targets.push((
                            env.to_owned(),
                            Entry {
                                account: spoke.name.clone(),
                                region: spoke.region.clone(),
                                deployment: d.name.clone(),
                                model: d.properties.model.name.clone(),
                                run_id: d.tags.get("fthub-run").cloned().unwrap_or_default(),
                                deployed_at: self.now(),
                                last_keepalive: None,
                                last_latency_ms: None,
                                health: "unmanaged".into(),
                                restorations: 0,
                            },
                        ));
                    }
                }
            }
        }
        // At most `keepalive_concurrency_per_spoke` calls in flight per Spoke, all Spokes at once.
        let limit = self
            .topology
            .defaults
            .keepalive_concurrency_per_spoke
            .max(1);
        let gates: BTreeMap<String, Arc<tokio::sync::Semaphore>> = targets
            .iter()
            .map(|(_, e)| {
                (
                    e.account.clone(),
                    Arc::new(tokio::sync::Semaphore::new(limit)),
                )
            })
            .collect();
        let gates = &gates;
        let pings = targets.iter().map(|(env, e)| async move {
            let _slot = gates[&e.account]
                .acquire()
                .await
                .map_err(|_| refused("shutdown", "keepalive stopped"))?;
            let client = self.inference(&e.account)?.clone();
            match client.chat(&e.deployment, &e.model, &ping()).await {
                Ok(r) => {
                    Ok::<_, PipelineError>((env.clone(), e.clone(), Some(r.latency_ms), false))
                }
                Err(AoaiError::Http { status: 404, .. }) if e.health != "unmanaged" => {
                    // Deleted behind our back (the 15-day rule, or a person): redeploy from the Hub model.
                    let spoke = self
                        .topology
                        .account(&e.account)
                        .cloned()
                        .ok_or_else(|| refused("unknown_account", e.account.clone()))?;
                    let (run, _) = runs::get(self.store.as_ref(), &e.run_id)
                        .await?
                        .ok_or_else(|| refused("unknown_run", e.run_id.clone()))?;
                    let d = &self.topology.deployment;
                    let (spec, aux) =
                        self.deployment_spec(&e.model, &run, &spoke, &d.sku, d.capacity);
                    self.arm
                        .put(&spoke.resource_id, &e.deployment, &spec, aux.as_deref())
                        .await?;
                    let r = client.chat(&e.deployment, &e.model, &ping()).await?;
                    Ok((env.clone(), e.clone(), Some(r.latency_ms), true))
                }
                Err(err) => Err(err.into()),
            }
        });
        let results = join_all(pings).await;
        let now = self.now();
        let mut restored = Vec::new();
        let mut failing = Vec::new();
        let mut ok = 0;
        for (r, (env, e)) in results.iter().zip(&targets) {
            match r {
                Ok((_, _, _, true)) => {
                    restored.push(format!("{env}/{}/{}", e.region, e.deployment))
                }
                Ok(_) => ok += 1,
                Err(err) => failing.push(format!("{env}/{}/{}: {err}", e.region, e.deployment)),
            }
        }
        inventory::update(self.store.as_ref(), |inv| {
            for (r, (env, e)) in results.iter().zip(&targets) {
                let Some(entry) = inv
                    .environments
                    .get_mut(env)
                    .and_then(|x| x.regions.get_mut(&e.region))
                else {
                    continue;
                };
                if entry.deployment != e.deployment {
                    continue;
                }
                match r {
                    Ok((_, _, latency, was_restored)) => {
                        entry.last_keepalive = Some(now);
                        entry.last_latency_ms = *latency;
                        entry.health = if *was_restored {
                            "restored".into()
                        } else {
                            "healthy".into()
                        };
                        if *was_restored {
                            entry.restorations += 1;
                            entry.deployed_at = now;
                        }
                    }
                    Err(_) => entry.health = "failing".into(),
                }
            }
        })
        .await?;
        let mut notifications = vec![
            json!({"type": "keepalive", "pinged": ok, "restored": restored, "failing": failing, "drift": drift}),
        ];
        for r in &restored {
            notifications.push(json!({"type": "keepalive.restored", "deployment": r}));
        }
        Ok(Emitted {
            notifications,
            next: vec![],
        })
    }
}

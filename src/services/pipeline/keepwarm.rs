//! KeepWarm: every deployment fthub manages, of every project on every Spoke, gets one chat
//! call well inside Azure's 15-day inactivity window; one that vanished is redeployed from
//! its Hub model and reported. Listing each Spoke finds fine-tuned deployments fthub did
//! not create: they are recorded as unmanaged (they hold slots), never restored or deleted.
//! The pass is bounded in time: a Spoke that does not answer is recorded as such instead of
//! holding the timer for its whole retry budget.

use super::*;
use crate::domain::aoai::sku;
use crate::domain::inventory::{Deployment, Health, Unmanaged};

/// One managed deployment to ping.
#[derive(Debug, Clone)]
struct Target {
    env: Env,
    spoke: Account,
    deployment: Deployment,
}

/// What became of one ping.
#[derive(Debug)]
enum Outcome {
    Alive { latency_ms: u64 },
    Restored { latency_ms: u64 },
    Failing(String),
}

impl Pipeline {
    /// One KeepWarm pass.
    ///
    /// # Errors
    /// Storage failures; a deployment's own failure is recorded and reported.
    pub async fn keep_warm(&self) -> Result<Emitted, PipelineError> {
        use futures_util::future::join_all;
        let start = tokio::time::Instant::now();
        let deadline = start + self.keepalive_budget;
        // Listing gets a third of the budget: a Spoke that never answers must not leave the
        // pings of every other Spoke without time.
        let listed_by = start + self.keepalive_budget / 3;
        let estate = inventory::estate(self.store.as_ref(), &self.topology).await?;
        let mut unreachable = Vec::new();
        let mut unmanaged_seen = Vec::new();
        // List every Spoke at once: unmanaged deployments, and managed ones the inventory
        // lost (tagged by fthub, adopted back).
        let listings = join_all(estate.spokes.iter().map(|(_, spoke, _)| async move {
            let list = tokio::time::timeout_at(listed_by, self.arm.list(spoke)).await;
            (spoke, list)
        }))
        .await;
        for (spoke, listing) in listings {
            let list = match listing {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => {
                    unreachable.push(format!("{}: {e}", spoke.name));
                    continue;
                }
                Err(_) => {
                    unreachable.push(format!(
                        "{}: no answer within the KeepWarm budget",
                        spoke.name
                    ));
                    continue;
                }
            };
            let (unmanaged, adopted) = self.classify(spoke, &list).await?;
            unmanaged_seen.extend(
                unmanaged
                    .iter()
                    .map(|u| format!("{}/{}", spoke.name, u.deployment)),
            );
            let now = self.now();
            inventory::update_account(self.store.as_ref(), &spoke.name, |r| {
                r.unmanaged.clone_from(&unmanaged);
                r.listed_at = Some(now);
                for d in &adopted {
                    r.deployments
                        .entry(d.deployment.clone())
                        .or_insert_with(|| d.clone());
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        // Re-read: adoption may have added deployments.
        let estate = inventory::estate(self.store.as_ref(), &self.topology).await?;
        let targets: Vec<Target> = estate
            .spokes
            .iter()
            .flat_map(|(env, spoke, r)| {
                r.deployments.values().map(move |d| Target {
                    env: *env,
                    spoke: spoke.clone(),
                    deployment: d.clone(),
                })
            })
            .collect();
        // At most `keepalive_concurrency_per_spoke` calls in flight per Spoke, all at once.
        let limit = self
            .topology
            .defaults
            .keepalive_concurrency_per_spoke
            .max(1);
        let gates: BTreeMap<String, Arc<tokio::sync::Semaphore>> = targets
            .iter()
            .map(|t| {
                (
                    t.spoke.name.clone(),
                    Arc::new(tokio::sync::Semaphore::new(limit)),
                )
            })
            .collect();
        let gates = &gates;
        let outcomes = join_all(targets.iter().map(|t| async move {
            let work = async {
                let _slot = gates[&t.spoke.name].acquire().await;
                self.ping_or_restore(t).await
            };
            match tokio::time::timeout_at(deadline, work).await {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => Outcome::Failing(e.to_string()),
                Err(_) => Outcome::Failing("no answer within the KeepWarm budget".into()),
            }
        }))
        .await;
        let now = self.now();
        let mut per_account: BTreeMap<&str, Vec<(&Target, &Outcome)>> = BTreeMap::new();
        for (t, o) in targets.iter().zip(&outcomes) {
            per_account
                .entry(t.spoke.name.as_str())
                .or_default()
                .push((t, o));
        }
        for (account, results) in &per_account {
            inventory::update_account(self.store.as_ref(), account, |r| {
                for (t, o) in results {
                    let Some(d) = r.deployments.get_mut(&t.deployment.deployment) else {
                        continue;
                    };
                    // A promotion replaced it meanwhile: its own record stands.
                    if d.run_id != t.deployment.run_id {
                        continue;
                    }
                    match o {
                        Outcome::Alive { latency_ms } => {
                            d.last_keepalive = Some(now);
                            d.last_latency_ms = Some(*latency_ms);
                            d.health = Health::Healthy;
                        }
                        Outcome::Restored { latency_ms } => {
                            d.last_keepalive = Some(now);
                            d.last_latency_ms = Some(*latency_ms);
                            d.health = Health::Restored;
                            d.restorations += 1;
                            d.deployed_at = now;
                        }
                        Outcome::Failing(_) => d.health = Health::Failing,
                    }
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        let mut out = Emitted::default();
        let mut restored = Vec::new();
        let mut failing = Vec::new();
        let mut pinged = 0;
        for (t, o) in targets.iter().zip(&outcomes) {
            let at = format!("{}/{}/{}", t.env, t.spoke.region, t.deployment.deployment);
            match o {
                Outcome::Alive { .. } => pinged += 1,
                Outcome::Restored { .. } => {
                    out.notifications.push(Notification::KeepaliveRestored {
                        deployment: at.clone(),
                        project: t.deployment.project.clone(),
                        run_id: t.deployment.run_id.clone(),
                    });
                    restored.push(at);
                }
                Outcome::Failing(e) => failing.push(format!("{at}: {e}")),
            }
        }
        if !failing.is_empty() || !unreachable.is_empty() {
            tracing::warn!(failing = ?failing, unreachable = ?unreachable, "KeepWarm could not reach every deployment.");
        }
        out.notifications.insert(
            0,
            Notification::Keepalive {
                pinged,
                restored,
                failing,
                unmanaged: unmanaged_seen,
                unreachable,
            },
        );
        Ok(out)
    }

    /// Splits a Spoke's fine-tuned deployments that the inventory does not know into those
    /// fthub did not create, and those it did (its tags name a run that exists, under the
    /// project's deployment name): the latter are adopted back.
    async fn classify(
        &self,
        spoke: &Account,
        list: &[crate::domain::aoai::Deployment],
    ) -> Result<(Vec<Unmanaged>, Vec<Deployment>), PipelineError> {
        let known = inventory::account(self.store.as_ref(), &spoke.name).await?;
        let mut unmanaged = Vec::new();
        let mut adopted = Vec::new();
        for d in list {
            let fine_tuned = d.properties.model.name.contains(".ft-");
            let developer = d
                .sku
                .as_ref()
                .is_some_and(|s| s.name.eq_ignore_ascii_case(sku::DEVELOPER));
            if !fine_tuned || known.deployments.contains_key(&d.name) {
                continue;
            }
            let ours = match (d.tags.get("fthub-run"), d.tags.get("fthub-project")) {
                (Some(run_id), Some(project))
                    if self.topology.deployment_name(project) == d.name && !developer =>
                {
                    runs::get(self.store.as_ref(), run_id)
                        .await?
                        .map(|(r, _)| (r, project.clone()))
                }
                _ => None,
            };
            match ours {
                Some((run, project)) => adopted.push(Deployment {
                    project,
                    deployment: d.name.clone(),
                    run_id: run.id.clone(),
                    model: d.properties.model.name.clone(),
                    version: run.data_digest.chars().take(12).collect(),
                    deployed_at: self.now(),
                    last_keepalive: None,
                    last_latency_ms: None,
                    health: Health::Healthy,
                    restorations: 0,
                }),
                None => unmanaged.push(Unmanaged {
                    deployment: d.name.clone(),
                    model: d.properties.model.name.clone(),
                }),
            }
        }
        Ok((unmanaged, adopted))
    }

    /// Pings one managed deployment; redeploys it from its Hub model if it is gone.
    async fn ping_or_restore(&self, t: &Target) -> Result<Outcome, PipelineError> {
        let d = &t.deployment;
        let client = self.inference(&t.spoke.name)?.clone();
        match client.chat(&d.deployment, &d.model, &ping()).await {
            Ok(r) => Ok(Outcome::Alive {
                latency_ms: r.latency_ms,
            }),
            Err(AoaiError::Http { status: 404, .. }) => {
                // Deleted behind our back (the 15-day rule, or a person): redeploy.
                let (run, _) = runs::get(self.store.as_ref(), &d.run_id)
                    .await?
                    .ok_or_else(|| refused("unknown_run", d.run_id.clone()))?;
                let s = &self.topology.deployment;
                let (spec, aux) =
                    self.deployment_spec(&d.model, &run, &t.spoke, &s.sku, s.capacity);
                self.arm
                    .put(&t.spoke, &d.deployment, &spec, aux.as_deref())
                    .await?;
                let r = client.chat(&d.deployment, &d.model, &ping()).await?;
                tracing::info!(deployment = %d.deployment, account = %t.spoke.name, project = %d.project, "Deployment restored from its Hub model.");
                Ok(Outcome::Restored {
                    latency_ms: r.latency_ms,
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

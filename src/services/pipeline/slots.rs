//! Deployment slots: every account holds a few fine-tuned deployments (its
//! `deployment_slots`, Azure's default 5). A promotion claims its project's slot on every
//! Spoke of the environment before any deployment call, all or none; an evaluation claims
//! one of the Hub's, or waits its turn, first come first served.

use super::*;
use crate::domain::inventory::{AccountRecord, Full, Reservation, Waiter};

/// A promotion that cannot have its slots.
#[derive(Debug, Clone)]
pub(super) struct NoSlot {
    /// The Spoke that is full.
    pub account: String,
    /// Its region.
    pub region: String,
    /// Its limit and who holds the slots.
    pub full: Full,
}

impl NoSlot {
    pub(super) fn describe(&self) -> String {
        format!(
            "{} ({}) has no free deployment slot: {} of {} held by {}",
            self.account,
            self.region,
            self.full.holders.len(),
            self.full.limit,
            self.full.describe()
        )
    }
}

/// Where an evaluation stands with the Hub's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EvalSlot {
    /// Held: deploy.
    Held,
    /// Waiting, at this position, behind runs holding every slot.
    Waiting {
        /// 1-based.
        position: usize,
        /// Who holds the slots.
        holders: String,
    },
}

impl Pipeline {
    /// Claims `name`'s slot on each of `spokes` for `run`, all or none: on the first full
    /// Spoke, the claims this call made are given back and the Spoke is named.
    pub(super) async fn reserve_slots(
        &self,
        spokes: &[Account],
        name: &str,
        run: &Run,
    ) -> Result<Result<(), NoSlot>, PipelineError> {
        let claim = Reservation {
            project: run.project.clone(),
            run_id: run.id.clone(),
            at: self.now(),
        };
        let mut made = Vec::new();
        for spoke in spokes {
            let limit = spoke.deployment_slots;
            let outcome = inventory::update_account(self.store.as_ref(), &spoke.name, |r| {
                Ok::<_, PipelineError>(r.reserve(name, claim.clone(), limit))
            })
            .await?;
            match outcome {
                Ok(true) => made.push(spoke.name.clone()),
                Ok(false) => {}
                Err(full) => {
                    for account in &made {
                        self.free_slot(account, name, &run.id).await?;
                    }
                    return Ok(Err(NoSlot {
                        account: spoke.name.clone(),
                        region: spoke.region.clone(),
                        full,
                    }));
                }
            }
        }
        Ok(Ok(()))
    }

    /// Frees `name` on `account` if `run_id` reserved it and it is not deployed.
    async fn free_slot(
        &self,
        account: &str,
        name: &str,
        run_id: &str,
    ) -> Result<(), PipelineError> {
        inventory::update_account(self.store.as_ref(), account, |r| {
            if !r.deployments.contains_key(name)
                && r.reservations.get(name).is_some_and(|x| x.run_id == run_id)
            {
                r.reservations.remove(name);
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        Ok(())
    }

    /// Claims a Hub slot for `run`'s evaluation deployment `name`, or puts the run in line.
    pub(super) async fn eval_slot(&self, run: &Run, name: &str) -> Result<EvalSlot, PipelineError> {
        let hub = &self.topology.hub;
        let limit = hub.deployment_slots;
        let now = self.now();
        let claim = Reservation {
            project: run.project.clone(),
            run_id: run.id.clone(),
            at: now,
        };
        let slot =
            inventory::update_account(self.store.as_ref(), &hub.name, |r: &mut AccountRecord| {
                if r.holds(name) {
                    r.waiting.retain(|w| w.run_id != run.id);
                    return Ok::<_, PipelineError>(EvalSlot::Held);
                }
                let free = limit.saturating_sub(r.used());
                let place = r.waiting.iter().position(|w| w.run_id == run.id);
                // First come, first served: a slot goes to the longest waiter.
                let turn = match place {
                    Some(p) => p < free,
                    None => r.waiting.len() < free,
                };
                if turn {
                    r.waiting.retain(|w| w.run_id != run.id);
                    r.reservations.insert(name.to_owned(), claim.clone());
                    return Ok(EvalSlot::Held);
                }
                let position = match place {
                    Some(p) => p + 1,
                    None => {
                        r.waiting.push(Waiter {
                            run_id: run.id.clone(),
                            since: now,
                        });
                        r.waiting.len()
                    }
                };
                Ok(EvalSlot::Waiting {
                    position,
                    holders: Full {
                        limit,
                        holders: r.holders(),
                    }
                    .describe(),
                })
            })
            .await?;
        Ok(slot)
    }

    /// Records the evaluation deployment `name` as deployed on the Hub (it holds its slot
    /// until removed).
    pub(super) async fn eval_deployed(
        &self,
        run: &Run,
        name: &str,
        model: &str,
    ) -> Result<(), PipelineError> {
        let now = self.now();
        inventory::update_account(self.store.as_ref(), &self.topology.hub.name, |r| {
            if !r.deployments.contains_key(name) {
                r.deployed(crate::domain::inventory::Deployment {
                    project: run.project.clone(),
                    deployment: name.to_owned(),
                    run_id: run.id.clone(),
                    model: model.to_owned(),
                    version: run.data_digest.chars().take(12).collect(),
                    deployed_at: now,
                    last_keepalive: None,
                    last_latency_ms: None,
                    health: crate::domain::inventory::Health::Healthy,
                    restorations: 0,
                });
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        Ok(())
    }

    /// Removes the evaluation deployment `name` from the Hub and frees its slot (also when
    /// it was never deployed). Returns the run whose turn it now is, to wake it at once.
    pub(super) async fn remove_eval_deployment(
        &self,
        run_id: &str,
        name: &str,
    ) -> Result<Option<String>, PipelineError> {
        let hub = &self.topology.hub;
        self.arm.delete(hub, name).await?;
        let next = inventory::update_account(self.store.as_ref(), &hub.name, |r| {
            r.release(name);
            r.waiting.retain(|w| w.run_id != run_id);
            Ok::<_, PipelineError>(r.waiting.first().map(|w| w.run_id.clone()))
        })
        .await?;
        Ok(next)
    }
}

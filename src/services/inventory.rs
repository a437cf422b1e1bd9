//! The inventory in storage: `state/inventory/accounts/{account}.json` (every deployment
//! fthub manages on that account, the slots they hold, and what it does not manage) and
//! `state/inventory/projects/{project}.json` (each project's releases per environment).
//! One document per account and per project, so promotions of different projects on
//! different Spokes never contend, and a view reads a handful of documents.
//!
//! An inventory written by an earlier version (`state/inventory.json`, one deployment per
//! environment and region) is converted on first use, losing nothing; it is kept as it was.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::docs;
use super::runs::{self, STATE, UpdateError};
use crate::domain::env::Env;
use crate::domain::inventory::{
    AccountRecord, Deployment, Health, ProjectRecord, Release, ReleaseKind,
};
use crate::domain::topology::{Account, Topology};
use crate::ports::{BlobError, BlobStore, Condition};

const ACCOUNTS: &str = "inventory/accounts/";
const PROJECTS: &str = "inventory/projects/";
const LEGACY: &str = "inventory.json";
const MIGRATED: &str = "inventory/migrated-v2";

fn account_blob(account: &str) -> String {
    format!("{ACCOUNTS}{account}.json")
}

fn project_blob(project: &str) -> String {
    format!("{PROJECTS}{project}.json")
}

/// One account's record (empty when none yet).
///
/// # Errors
/// Storage failures; a record that does not decode.
pub async fn account(store: &dyn BlobStore, name: &str) -> Result<AccountRecord, BlobError> {
    migrate(store).await?;
    Ok(docs::read(store, STATE, &account_blob(name))
        .await?
        .map(|(r, _)| r)
        .unwrap_or_default())
}

/// Changes one account's record under its version.
///
/// # Errors
/// Storage failures, unsettled conflicts, or `change`'s refusal.
pub async fn update_account<R, E>(
    store: &dyn BlobStore,
    name: &str,
    change: impl FnMut(&mut AccountRecord) -> Result<R, E>,
) -> Result<R, UpdateError<E>> {
    migrate(store).await?;
    docs::update(store, STATE, &account_blob(name), change).await
}

/// One project's record (empty when none yet).
///
/// # Errors
/// Storage failures; a record that does not decode.
pub async fn project(store: &dyn BlobStore, name: &str) -> Result<ProjectRecord, BlobError> {
    migrate(store).await?;
    Ok(docs::read(store, STATE, &project_blob(name))
        .await?
        .map(|(r, _)| r)
        .unwrap_or_default())
}

/// Changes one project's record under its version.
///
/// # Errors
/// Storage failures, unsettled conflicts, or `change`'s refusal.
pub async fn update_project<R, E>(
    store: &dyn BlobStore,
    name: &str,
    change: impl FnMut(&mut ProjectRecord) -> Result<R, E>,
) -> Result<R, UpdateError<E>> {
    migrate(store).await?;
    docs::update(store, STATE, &project_blob(name), change).await
}

/// Every project that has released something, by name.
///
/// # Errors
/// Storage failures; a record that does not decode.
pub async fn projects(store: &dyn BlobStore) -> Result<BTreeMap<String, ProjectRecord>, BlobError> {
    migrate(store).await?;
    let mut out = BTreeMap::new();
    for p in store.list(STATE, PROJECTS).await? {
        let Some(name) = p
            .name
            .strip_prefix(PROJECTS)
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        if let Some((r, _)) = docs::read(store, STATE, &p.name).await? {
            out.insert(name.to_owned(), r);
        }
    }
    Ok(out)
}

/// The estate as the topology lays it out: every Spoke with its record, in environment and
/// region order.
#[derive(Debug, Clone, Default)]
pub struct Estate {
    /// `(environment, Spoke, record)`.
    pub spokes: Vec<(Env, Account, AccountRecord)>,
    /// The Hub and its record (evaluation deployments).
    pub hub: Option<(Account, AccountRecord)>,
}

impl Estate {
    /// Every managed deployment of `project` in `env`, by region.
    pub fn deployments(&self, project: &str, env: Env) -> Vec<(&Account, &Deployment)> {
        self.spokes
            .iter()
            .filter(|(e, _, _)| *e == env)
            .flat_map(|(_, a, r)| {
                r.deployments
                    .values()
                    .filter(move |d| d.project == project)
                    .map(move |d| (a, d))
            })
            .collect()
    }
}

/// Reads every account record of the topology (one read per account).
///
/// # Errors
/// Storage failures; a record that does not decode.
pub async fn estate(store: &dyn BlobStore, topology: &Topology) -> Result<Estate, BlobError> {
    let mut out = Estate::default();
    for env in Env::ALL {
        for s in topology.spokes(env) {
            out.spokes
                .push((env, s.clone(), account(store, &s.name).await?));
        }
    }
    out.hub = Some((
        topology.hub.clone(),
        account(store, &topology.hub.name).await?,
    ));
    Ok(out)
}

/// The single-slot layout of earlier versions.
#[derive(Debug, Deserialize)]
struct Legacy {
    #[serde(default)]
    environments: BTreeMap<Env, LegacyEnv>,
}

#[derive(Debug, Deserialize)]
struct LegacyEnv {
    #[serde(default)]
    regions: BTreeMap<String, LegacyEntry>,
    #[serde(default)]
    history: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct LegacyEntry {
    account: String,
    deployment: String,
    model: String,
    run_id: String,
    deployed_at: DateTime<Utc>,
    last_keepalive: Option<DateTime<Utc>>,
    last_latency_ms: Option<u64>,
    #[serde(default)]
    health: String,
    #[serde(default)]
    restorations: u32,
}

/// Converts `state/inventory.json` from an earlier version, once per store: every entry
/// becomes a deployment on its account, every environment's history a project's release
/// history (the project read from each run's document). The old document is kept.
///
/// # Errors
/// Storage failures; an old document that does not decode (an error, never read as empty).
pub async fn migrate(store: &dyn BlobStore) -> Result<(), BlobError> {
    match store.properties(STATE, MIGRATED).await {
        Ok(_) => return Ok(()),
        Err(BlobError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    if let Some((legacy, _)) = docs::read::<Legacy>(store, STATE, LEGACY).await? {
        convert(store, legacy).await?;
    }
    store
        .put(STATE, MIGRATED, b"", Condition::None)
        .await
        .map(|_| ())
}

async fn convert(store: &dyn BlobStore, legacy: Legacy) -> Result<(), BlobError> {
    let mut project_of: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut models: BTreeMap<String, String> = BTreeMap::new();
    for env in legacy.environments.values() {
        for id in env
            .history
            .iter()
            .chain(env.regions.values().map(|e| &e.run_id))
        {
            if !project_of.contains_key(id) {
                let run = runs::get(store, id).await?.map(|(r, _)| r);
                if let Some(m) = run.as_ref().and_then(|r| r.fine_tuned_model.clone()) {
                    models.insert(id.clone(), m);
                }
                project_of.insert(id.clone(), run.map(|r| r.project));
            }
        }
    }
    // A run whose document is gone keeps its project through its deployment's name.
    let by_deployment: BTreeMap<String, String> = legacy
        .environments
        .values()
        .flat_map(|e| e.regions.values())
        .filter_map(|e| {
            project_of
                .get(&e.run_id)
                .cloned()
                .flatten()
                .map(|p| (e.deployment.clone(), p))
        })
        .collect();
    let project = |run_id: &str, deployment: Option<&str>| -> String {
        project_of
            .get(run_id)
            .cloned()
            .flatten()
            .or_else(|| deployment.and_then(|d| by_deployment.get(d).cloned()))
            .unwrap_or_else(|| "unknown".into())
    };
    let mut accounts: BTreeMap<String, Vec<Deployment>> = BTreeMap::new();
    let mut releases: BTreeMap<String, BTreeMap<Env, Vec<Release>>> = BTreeMap::new();
    for (env, e) in &legacy.environments {
        for entry in e.regions.values() {
            accounts
                .entry(entry.account.clone())
                .or_default()
                .push(Deployment {
                    project: project(&entry.run_id, Some(&entry.deployment)),
                    deployment: entry.deployment.clone(),
                    run_id: entry.run_id.clone(),
                    model: entry.model.clone(),
                    version: String::new(),
                    deployed_at: entry.deployed_at,
                    last_keepalive: entry.last_keepalive,
                    last_latency_ms: entry.last_latency_ms,
                    health: if entry.health == "failing" {
                        Health::Failing
                    } else if entry.health == "restored" {
                        Health::Restored
                    } else {
                        Health::Healthy
                    },
                    restorations: entry.restorations,
                });
        }
        let when = e
            .regions
            .values()
            .map(|x| x.deployed_at)
            .min()
            .unwrap_or_else(Utc::now);
        for id in &e.history {
            let deployment = e
                .regions
                .values()
                .find(|x| &x.run_id == id)
                .map(|x| x.deployment.as_str());
            let model = models
                .get(id)
                .cloned()
                .or_else(|| {
                    e.regions
                        .values()
                        .find(|x| &x.run_id == id)
                        .map(|x| x.model.clone())
                })
                .unwrap_or_default();
            releases
                .entry(project(id, deployment))
                .or_default()
                .entry(*env)
                .or_default()
                .push(Release {
                    run_id: id.clone(),
                    model,
                    at: when,
                    by: "migrated".into(),
                    kind: ReleaseKind::Migrated,
                    rolled_back: false,
                });
        }
    }
    for (name, list) in accounts {
        docs::update(
            store,
            STATE,
            &account_blob(&name),
            |r: &mut AccountRecord| {
                for d in &list {
                    // A promotion recorded since by this version wins over the old entry.
                    r.deployments
                        .entry(d.deployment.clone())
                        .or_insert_with(|| d.clone());
                }
                Ok::<(), BlobError>(())
            },
        )
        .await
        .map_err(flatten)?;
    }
    for (name, per_env) in releases {
        docs::update(
            store,
            STATE,
            &project_blob(&name),
            |r: &mut ProjectRecord| {
                for (env, list) in &per_env {
                    let current = r.releases.entry(*env).or_default();
                    if current.is_empty() {
                        current.clone_from(list);
                    }
                }
                Ok::<(), BlobError>(())
            },
        )
        .await
        .map_err(flatten)?;
    }
    Ok(())
}

fn flatten(e: UpdateError<BlobError>) -> BlobError {
    match e {
        UpdateError::Store(s) | UpdateError::Refused(s) => s,
        UpdateError::Missing(id) => BlobError::NotFound {
            container: STATE.into(),
            name: id,
        },
    }
}

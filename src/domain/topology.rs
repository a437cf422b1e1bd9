//! The Hub/Spoke topology: the Hub account, the environments and their Spokes, deployment
//! settings, approvers, and pipeline defaults. Loaded from JSON (`FTHUB_TOPOLOGY`, written by
//! `scripts/topology.py` in Azure) or built in for local mode, and refused with a clear
//! message when it breaks a rule the pipeline relies on.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::env::Env;
use super::project::{self, BadProjectName, ProjectSettings};

/// One Azure OpenAI account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Account name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Subscription id.
    pub subscription: String,
    /// Entra tenant.
    pub tenant: String,
    /// Data-plane endpoint.
    pub endpoint: String,
    /// ARM resource id.
    pub resource_id: String,
    /// Fine-tuned deployments this account may hold (Azure's default is 5; raise it here when
    /// a quota increase was granted).
    #[serde(default = "default_slots")]
    pub deployment_slots: usize,
}

fn default_slots() -> usize {
    5
}

/// An approver: a name and an Ed25519 public key (base64 of the 32 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// Name, as it appears in approvals and the audit log.
    pub name: String,
    /// Public key, base64.
    #[serde(default)]
    pub public_key: String,
}

/// One environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Its Spokes, one per region.
    pub spokes: Vec<Account>,
    /// Who may approve promotion into it (not used for `dev`, which is automatic).
    #[serde(default)]
    pub approvers: Vec<Approver>,
    /// Accept fewer than two regions (logged at load).
    #[serde(default)]
    pub allow_single_region: bool,
}

/// How candidates and promoted models are deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentSettings {
    /// Deployment name template; `{project}` is replaced.
    pub name_template: String,
    /// SKU on Spokes.
    pub sku: String,
    /// Capacity on Spokes.
    pub capacity: u32,
    /// SKU of the Hub evaluation deployment.
    pub evaluation_sku: String,
    /// Capacity of the Hub evaluation deployment.
    pub evaluation_capacity: u32,
}

impl Default for DeploymentSettings {
    fn default() -> Self {
        Self {
            name_template: "ft-{project}".into(),
            sku: "Standard".into(),
            capacity: 50,
            evaluation_sku: "Standard".into(),
            evaluation_capacity: 50,
        }
    }
}

/// Acceptance thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// Minimum primary score (0..1) of the candidate.
    pub min_score: f64,
    /// Minimum gain of the primary score over the best baseline.
    pub min_gain: f64,
    /// Maximum p95 latency in milliseconds.
    pub max_p95_latency_ms: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_score: 0.6,
            min_gain: 0.05,
            max_p95_latency_ms: 5000.0,
        }
    }
}

/// Pipeline defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Defaults {
    /// Base model for bare drops.
    pub base_model: String,
    /// Acceptance thresholds when the manifest has none.
    pub thresholds: Thresholds,
    /// Approvals older than this are stale.
    pub approval_max_age_minutes: i64,
    /// A run in training longer than this is flagged.
    pub training_deadline_hours: i64,
    /// Price per 1,000 prompt tokens (for the evaluation's cost per 1,000 requests).
    pub price_per_1k_prompt_tokens: f64,
    /// Price per 1,000 completion tokens.
    pub price_per_1k_completion_tokens: f64,
    /// KeepWarm calls in flight per Spoke.
    pub keepalive_concurrency_per_spoke: usize,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            base_model: "gpt-4.1-mini-2025-04-14".into(),
            thresholds: Thresholds::default(),
            approval_max_age_minutes: 60,
            training_deadline_hours: 48,
            // Example figures; set your contract's prices in the topology.
            price_per_1k_prompt_tokens: 0.0004,
            price_per_1k_completion_tokens: 0.0016,
            keepalive_concurrency_per_spoke: 4,
        }
    }
}

/// The Hub's own limits (Azure's per-resource defaults): the pipeline plans within them
/// instead of discovering them as errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubLimits {
    /// Fine-tuning jobs running at once.
    pub running_jobs: usize,
    /// Fine-tuning jobs queued on the Hub behind the running ones.
    pub queued_jobs: usize,
    /// Fine-tuning files the resource holds.
    pub files: usize,
    /// Total bytes of fine-tuning files the resource holds.
    pub file_bytes: u64,
    /// Hours a run's Hub files are kept after the run stops needing them (0: deleted at once).
    pub file_retention_hours: u64,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            running_jobs: 1,
            queued_jobs: 20,
            files: 50,
            file_bytes: 1024 * 1024 * 1024,
            file_retention_hours: 0,
        }
    }
}

impl HubLimits {
    /// Jobs the Hub takes at once, running or queued.
    pub fn job_slots(&self) -> usize {
        self.running_jobs + self.queued_jobs
    }
}

/// The whole topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// The Hub.
    pub hub: Account,
    /// Environments by name.
    pub environments: BTreeMap<Env, Environment>,
    /// Projects with settings of their own (a project not listed runs with the defaults).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub projects: BTreeMap<String, ProjectSettings>,
    /// The Hub's job and file limits.
    #[serde(default)]
    pub hub_limits: HubLimits,
    /// ARM base URL.
    #[serde(default = "default_arm")]
    pub arm_endpoint: String,
    /// Deployment settings.
    #[serde(default)]
    pub deployment: DeploymentSettings,
    /// KeepWarm's NCRONTAB schedule.
    #[serde(default = "default_keepalive")]
    pub keepalive_schedule: String,
    /// Defaults.
    #[serde(default)]
    pub defaults: Defaults,
}

fn default_arm() -> String {
    "https://management.azure.com".into()
}

fn default_keepalive() -> String {
    "0 0 3 * * *".into()
}

/// Why a topology is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Not valid JSON of the expected shape.
    #[error("the topology is not valid: {0}")]
    Parse(String),
    /// An environment is missing.
    #[error("environment {0:?} is missing")]
    MissingEnvironment(String),
    /// Fewer than two regions without the override.
    #[error(
        "environment {env:?} has {regions} region(s); at least two are required for BCDR (set allow_single_region to override)"
    )]
    TooFewRegions {
        /// Environment.
        env: String,
        /// Distinct regions.
        regions: usize,
    },
    /// The keepalive schedule leaves a gap of 15 days or more.
    #[error("the keepalive schedule {schedule:?} {problem}")]
    Keepalive {
        /// Schedule.
        schedule: String,
        /// What is wrong.
        problem: String,
    },
    /// Two accounts or approvers share a name.
    #[error("duplicate {what} name {name:?}")]
    Duplicate {
        /// Account or approver.
        what: &'static str,
        /// Name.
        name: String,
    },
    /// An approver has no usable key.
    #[error("approver {name:?} in {env} has no valid Ed25519 public key")]
    ApproverKey {
        /// Environment (and project, for a project's own approvers).
        env: String,
        /// Approver.
        name: String,
    },
    /// A project listed under `projects` has a name no dataset path could carry.
    #[error("projects: {0}")]
    Project(#[from] BadProjectName),
    /// The deployment name template would give every project the same deployment.
    #[error(
        "deployment.name_template {0:?} must contain {{project}}: each project needs its own deployment"
    )]
    NameTemplate(String),
    /// Azure does not offer a deployment the topology plans.
    #[error("{what}: {reason}")]
    Unavailable {
        /// The account and what it would deploy.
        what: String,
        /// Why, with the availability table's source.
        reason: Box<super::availability::Unavailable>,
    },
    /// A limit that would stop the pipeline altogether.
    #[error("{what} must be at least 1")]
    Limit {
        /// Which limit.
        what: String,
    },
}

fn check_approvers(env: &str, approvers: &[Approver]) -> Result<(), TopologyError> {
    let mut seen = BTreeSet::new();
    for a in approvers {
        if !seen.insert(a.name.as_str()) {
            return Err(TopologyError::Duplicate {
                what: "approver",
                name: a.name.clone(),
            });
        }
        if super::approval::parse_public_key(&a.public_key).is_none() {
            return Err(TopologyError::ApproverKey {
                env: env.into(),
                name: a.name.clone(),
            });
        }
    }
    Ok(())
}

impl Topology {
    /// Parses and validates JSON.
    ///
    /// # Errors
    /// See [`TopologyError`].
    pub fn from_json(text: &str) -> Result<Self, TopologyError> {
        let t: Self =
            serde_json::from_str(text).map_err(|e| TopologyError::Parse(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    /// Checks the rules the pipeline relies on.
    ///
    /// # Errors
    /// See [`TopologyError`].
    pub fn validate(&self) -> Result<(), TopologyError> {
        let mut names = BTreeSet::from([self.hub.name.clone()]);
        for env in Env::ALL {
            let e = self
                .environments
                .get(&env)
                .ok_or_else(|| TopologyError::MissingEnvironment(env.name().into()))?;
            let regions: BTreeSet<&str> = e.spokes.iter().map(|s| s.region.as_str()).collect();
            if regions.len() < 2 && !e.allow_single_region {
                return Err(TopologyError::TooFewRegions {
                    env: env.name().into(),
                    regions: regions.len(),
                });
            }
            for s in &e.spokes {
                if !names.insert(s.name.clone()) {
                    return Err(TopologyError::Duplicate {
                        what: "account",
                        name: s.name.clone(),
                    });
                }
                if s.deployment_slots == 0 {
                    return Err(TopologyError::Limit {
                        what: format!("deployment_slots of {}", s.name),
                    });
                }
            }
            check_approvers(env.name(), &e.approvers)?;
        }
        for (name, p) in &self.projects {
            project::check(name)?;
            for (env, approvers) in &p.approvers {
                check_approvers(&format!("{env} of project {name}"), approvers)?;
            }
        }
        if !self.deployment.name_template.contains("{project}") {
            return Err(TopologyError::NameTemplate(
                self.deployment.name_template.clone(),
            ));
        }
        let l = &self.hub_limits;
        for (what, n) in [
            ("hub_limits.running_jobs", l.running_jobs),
            ("hub_limits.files", l.files),
            ("hub.deployment_slots", self.hub.deployment_slots),
        ] {
            if n == 0 {
                return Err(TopologyError::Limit { what: what.into() });
            }
        }
        self.check_keepalive()
    }

    fn check_keepalive(&self) -> Result<(), TopologyError> {
        let bad = |problem: String| TopologyError::Keepalive {
            schedule: self.keepalive_schedule.clone(),
            problem,
        };
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .dom_and_dow(true)
            .build()
            .parse(&self.keepalive_schedule)
            .map_err(|e| bad(format!("does not parse: {e}")))?;
        // Walk a year of occurrences from a fixed start: the longest gap must stay under 15 days.
        let mut t = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|d| d.to_utc())
            .unwrap_or_default();
        let end = t + chrono::Duration::days(366);
        let mut longest = chrono::Duration::zero();
        while t < end {
            let next = cron
                .find_next_occurrence(&t, false)
                .map_err(|_| bad("never fires".into()))?;
            longest = longest.max(next - t);
            t = next;
        }
        if longest >= chrono::Duration::days(15) {
            return Err(bad(format!(
                "leaves a gap of {} days; fine-tuned deployments are deleted after 15 idle days",
                longest.num_days()
            )));
        }
        Ok(())
    }

    /// Checks every deployment the topology plans against Azure's availability: the default
    /// base model (and each project's own) fine-tuned, of the deployment SKU, in every Spoke's
    /// region; and the evaluation SKU in the Hub's.
    ///
    /// # Errors
    /// The first deployment Azure would refuse.
    pub fn check_availability(
        &self,
        table: &super::availability::Availability,
    ) -> Result<(), TopologyError> {
        let mut models = vec![self.defaults.base_model.clone()];
        models.extend(self.projects.values().filter_map(|p| p.base_model.clone()));
        models.sort();
        models.dedup();
        let unavailable = |what: String, reason| TopologyError::Unavailable { what, reason };
        for model in &models {
            for (env, e) in &self.environments {
                for s in &e.spokes {
                    table
                        .check(model, &self.deployment.sku, &s.region)
                        .map_err(|r| {
                            unavailable(format!("{env} Spoke {} ({})", s.name, s.region), r)
                        })?;
                }
            }
            table
                .check(model, &self.deployment.evaluation_sku, &self.hub.region)
                .map_err(|r| {
                    unavailable(
                        format!(
                            "the Hub {} ({}), evaluation",
                            self.hub.name, self.hub.region
                        ),
                        r,
                    )
                })?;
        }
        Ok(())
    }

    /// Spokes of an environment.
    pub fn spokes(&self, env: Env) -> &[Account] {
        self.environments
            .get(&env)
            .map_or(&[], |e| e.spokes.as_slice())
    }

    /// The environment and Spoke of a Spoke account.
    pub fn spoke(&self, account: &str) -> Option<(Env, &Account)> {
        self.environments
            .iter()
            .flat_map(|(env, e)| e.spokes.iter().map(move |s| (*env, s)))
            .find(|(_, s)| s.name == account)
    }

    /// A project's settings: its own when the topology lists it, else the defaults.
    pub fn project(&self, name: &str) -> ProjectSettings {
        self.projects.get(name).cloned().unwrap_or_default()
    }

    /// Who may approve `project` into `env`: the project's own approvers for that
    /// environment when it has any, else the environment's.
    pub fn approvers(&self, env: Env, project: &str) -> &[Approver] {
        match self
            .projects
            .get(project)
            .and_then(|p| p.approvers.get(&env))
        {
            Some(own) => own,
            None => self
                .environments
                .get(&env)
                .map_or(&[], |e| e.approvers.as_slice()),
        }
    }

    /// A run's acceptance thresholds: its manifest's, else its project's, else the defaults.
    pub fn thresholds(&self, project: &str, manifest: Option<Thresholds>) -> Thresholds {
        manifest
            .or_else(|| self.projects.get(project).and_then(|p| p.thresholds))
            .unwrap_or(self.defaults.thresholds)
    }

    /// The account with this name (Hub or Spoke).
    pub fn account(&self, name: &str) -> Option<&Account> {
        std::iter::once(&self.hub)
            .chain(self.environments.values().flat_map(|e| e.spokes.iter()))
            .find(|a| a.name == name)
    }

    /// The deployment name for a project.
    pub fn deployment_name(&self, project: &str) -> String {
        let safe: String = project
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        self.deployment.name_template.replace("{project}", &safe)
    }

    /// The local topology for `fthub dev`: the emulator's accounts ([`LOCAL_ACCOUNTS`]) at
    /// `base`, and the demo approvers whose keys ship in `samples/keys/` (local use only).
    pub fn local(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        let account = |(name, region, sub, rg, tenant): (&str, &str, &str, &str, &str)| Account {
            name: name.into(),
            region: region.into(),
            subscription: sub.into(),
            tenant: tenant.into(),
            endpoint: format!("{base}/{name}"),
            resource_id: format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}"
            ),
            deployment_slots: default_slots(),
        };
        let approver = |name: &str, key: &str| Approver {
            name: name.into(),
            public_key: key.into(),
        };
        let mut environments = BTreeMap::new();
        for env in Env::ALL {
            let spokes = LOCAL_ACCOUNTS
                .iter()
                .filter(|a| a.0.starts_with(&format!("{env}-")))
                .map(|a| account(*a))
                .collect();
            let approvers = match env {
                Env::Test => vec![approver("quality-lead", LOCAL_TEST_APPROVER_KEY)],
                Env::Prod => vec![approver("release-manager", LOCAL_PROD_APPROVER_KEY)],
                Env::Dev => vec![],
            };
            environments.insert(
                env,
                Environment {
                    spokes,
                    approvers,
                    allow_single_region: false,
                },
            );
        }
        Self {
            hub: account(LOCAL_ACCOUNTS[0]),
            environments,
            projects: BTreeMap::new(),
            hub_limits: HubLimits::default(),
            arm_endpoint: format!("{base}/arm"),
            // Regional Standard for fine-tuned gpt-4.1-mini is not offered in East US 2; Global
            // Standard is offered from every region (see `availability`).
            deployment: DeploymentSettings {
                sku: "GlobalStandard".into(),
                ..DeploymentSettings::default()
            },
            keepalive_schedule: default_keepalive(),
            defaults: Defaults::default(),
        }
    }
}

/// The built-in local estate (name, region, subscription, resource group, tenant): the Hub,
/// then two regions per environment; `prod-eastus2` sits in another tenant so cross-tenant
/// deployment is exercised. The emulator serves exactly these.
pub const LOCAL_ACCOUNTS: [(&str, &str, &str, &str, &str); 7] = [
    (
        "hub",
        "swedencentral",
        "00000000-0000-0000-0000-0000000000a0",
        "rg-fthub-hub",
        "contoso",
    ),
    (
        "dev-swedencentral",
        "swedencentral",
        "00000000-0000-0000-0000-0000000000d1",
        "rg-fthub-dev",
        "contoso",
    ),
    (
        "dev-eastus2",
        "eastus2",
        "00000000-0000-0000-0000-0000000000d1",
        "rg-fthub-dev",
        "contoso",
    ),
    (
        "test-swedencentral",
        "swedencentral",
        "00000000-0000-0000-0000-0000000000e1",
        "rg-fthub-test",
        "contoso",
    ),
    (
        "test-northcentralus",
        "northcentralus",
        "00000000-0000-0000-0000-0000000000e1",
        "rg-fthub-test",
        "contoso",
    ),
    (
        "prod-swedencentral",
        "swedencentral",
        "00000000-0000-0000-0000-0000000000f1",
        "rg-fthub-prod",
        "contoso",
    ),
    (
        "prod-eastus2",
        "eastus2",
        "00000000-0000-0000-0000-0000000000f2",
        "rg-fthub-prod",
        "fabrikam",
    ),
];

/// Public key of the local demo Test approver (private key: `samples/keys/quality-lead.key`).
pub const LOCAL_TEST_APPROVER_KEY: &str = "lwUK8P+VJJSHOr6uH4jT+GFtFKLKxpjwpU+hgOvuZ78=";
/// Public key of the local demo Prod approver (private key: `samples/keys/release-manager.key`).
pub const LOCAL_PROD_APPROVER_KEY: &str = "INtUQennLX4/e/Juc9ur4y5wLInj5q64hKabPHbG0ds=";

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Topology {
        Topology::local("http://127.0.0.1:7072")
    }

    #[test]
    fn the_local_topology_is_valid_and_round_trips_through_json() {
        let t = local();
        t.validate().expect("valid");
        let again = Topology::from_json(&serde_json::to_string(&t).expect("json")).expect("parse");
        assert_eq!(again, t);
        assert_eq!(t.deployment_name("Support Routing"), "ft-support-routing");
        assert_eq!(
            t.account("prod-eastus2").map(|a| a.tenant.as_str()),
            Some("fabrikam")
        );
    }

    #[test]
    fn the_built_in_topology_plans_only_deployments_azure_offers_and_a_regional_one_in_east_us_2_is_refused()
     {
        let table = crate::domain::availability::Availability::built_in();
        local().check_availability(&table).expect("deployable");
        let mut t = local();
        t.deployment.sku = "Standard".into();
        let e = t
            .check_availability(&table)
            .expect_err("Standard in eastus2");
        let text = e.to_string();
        assert!(
            text.contains("eastus2") && text.contains("gpt-4.1-mini"),
            "{text}"
        );
    }

    #[test]
    fn an_environment_with_one_region_is_refused_unless_overridden() {
        let mut t = local();
        t.environments
            .get_mut(&Env::Test)
            .expect("test")
            .spokes
            .truncate(1);
        assert!(matches!(
            t.validate(),
            Err(TopologyError::TooFewRegions { .. })
        ));
        t.environments
            .get_mut(&Env::Test)
            .expect("test")
            .allow_single_region = true;
        assert!(t.validate().is_ok());
    }

    #[test]
    fn a_keepalive_schedule_with_a_fifteen_day_gap_is_refused() {
        let mut t = local();
        t.keepalive_schedule = "0 0 3 1 * *".into();
        let err = t.validate().expect_err("monthly is too rare");
        assert!(err.to_string().contains("15 idle days"), "{err}");
        t.keepalive_schedule = "0 0 3 * * 1".into();
        assert!(t.validate().is_ok(), "weekly is fine");
        t.keepalive_schedule = "not cron".into();
        assert!(t.validate().is_err());
    }

    #[test]
    fn duplicate_names_and_approvers_without_keys_are_refused() {
        let mut t = local();
        let dup = t.environments[&Env::Dev].spokes[0].clone();
        t.environments
            .get_mut(&Env::Prod)
            .expect("prod")
            .spokes
            .push(dup);
        assert!(matches!(t.validate(), Err(TopologyError::Duplicate { .. })));
        let mut t = local();
        t.environments
            .get_mut(&Env::Prod)
            .expect("prod")
            .approvers
            .push(Approver {
                name: "nokey".into(),
                public_key: String::new(),
            });
        assert!(matches!(
            t.validate(),
            Err(TopologyError::ApproverKey { .. })
        ));
        let mut t = local();
        t.environments.remove(&Env::Test);
        assert!(matches!(
            t.validate(),
            Err(TopologyError::MissingEnvironment(_))
        ));
    }
}

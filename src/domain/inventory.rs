//! What serves where: one record per account (each Spoke, and the Hub for evaluation
//! deployments) with every deployment fthub manages on it and the slots they hold, and one
//! record per project with its release history per environment. Pure: the storage is in
//! `services::inventory`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::env::Env;

/// How a managed deployment answered its last keepalive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Answering.
    #[default]
    Healthy,
    /// Was gone; KeepWarm redeployed it from its Hub model and it answers again.
    Restored,
    /// The keepalive failed (the error is in the last KeepWarm notification).
    Failing,
}

impl Health {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Restored => "restored",
            Health::Failing => "failing",
        }
    }

    /// Whether a gateway should send traffic there.
    pub fn serves(self) -> bool {
        matches!(self, Health::Healthy | Health::Restored)
    }
}

/// One deployment fthub manages on one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The project it serves.
    pub project: String,
    /// Deployment name.
    pub deployment: String,
    /// The run whose model it serves.
    pub run_id: String,
    /// The fine-tuned model.
    pub model: String,
    /// The `fthub-version` tag (the data digest's first 12 characters).
    #[serde(default)]
    pub version: String,
    /// When it was (re)deployed.
    pub deployed_at: DateTime<Utc>,
    /// Last successful keepalive.
    pub last_keepalive: Option<DateTime<Utc>>,
    /// Last keepalive latency.
    pub last_latency_ms: Option<u64>,
    /// Last keepalive outcome.
    #[serde(default)]
    pub health: Health,
    /// Times KeepWarm found it deleted and redeployed it.
    #[serde(default)]
    pub restorations: u32,
}

/// A slot claimed for a deployment name that is not deployed yet (a promotion or an
/// evaluation in flight), so two promotions never both take the last slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Project.
    pub project: String,
    /// Run.
    pub run_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A fine-tuned deployment on the account that fthub did not create: listed, counted
/// against the account's slots, never restored or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmanaged {
    /// Deployment name.
    pub deployment: String,
    /// Model.
    pub model: String,
}

/// A run waiting for a slot on this account (evaluations on the Hub), first come first
/// served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// Run.
    pub run_id: String,
    /// Since.
    pub since: DateTime<Utc>,
}

/// One account's record: `state/inventory/accounts/{account}.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountRecord {
    /// Managed deployments by name.
    pub deployments: BTreeMap<String, Deployment>,
    /// Slots claimed for names not deployed yet, by name.
    pub reservations: BTreeMap<String, Reservation>,
    /// Fine-tuned deployments fthub did not create, as the last listing saw them.
    pub unmanaged: Vec<Unmanaged>,
    /// When the account was last listed.
    pub listed_at: Option<DateTime<Utc>>,
    /// Runs waiting for a slot here, oldest first.
    pub waiting: Vec<Waiter>,
}

/// Who holds one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Deployment name.
    pub deployment: String,
    /// Project (`None` for an unmanaged deployment).
    pub project: Option<String>,
    /// `deployed`, `reserved` or `unmanaged`.
    pub kind: &'static str,
}

/// A claim that did not fit: the account is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Full {
    /// Its limit.
    pub limit: usize,
    /// Who holds the slots.
    pub holders: Vec<Holder>,
}

impl Full {
    /// `ft-a (project a), ft-b (reserved by project b), legacy (unmanaged)`.
    pub fn describe(&self) -> String {
        self.holders
            .iter()
            .map(|h| match (&h.project, h.kind) {
                (Some(p), "deployed") => format!("{} (project {p})", h.deployment),
                (Some(p), _) => format!("{} (reserved by project {p})", h.deployment),
                (None, _) => format!("{} (unmanaged)", h.deployment),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl AccountRecord {
    /// Every slot holder: managed deployments, reservations, unmanaged deployments.
    pub fn holders(&self) -> Vec<Holder> {
        let mut out: Vec<Holder> = self
            .deployments
            .values()
            .map(|d| Holder {
                deployment: d.deployment.clone(),
                project: Some(d.project.clone()),
                kind: "deployed",
            })
            .collect();
        out.extend(
            self.reservations
                .iter()
                .filter(|(name, _)| !self.deployments.contains_key(*name))
                .map(|(name, r)| Holder {
                    deployment: name.clone(),
                    project: Some(r.project.clone()),
                    kind: "reserved",
                }),
        );
        out.extend(self.unmanaged.iter().map(|u| Holder {
            deployment: u.deployment.clone(),
            project: None,
            kind: "unmanaged",
        }));
        out
    }

    /// Slots in use.
    pub fn used(&self) -> usize {
        self.holders().len()
    }

    /// Whether `name` already holds a slot here (deployed or reserved): a new version of
    /// the same project replaces it in place.
    pub fn holds(&self, name: &str) -> bool {
        self.deployments.contains_key(name) || self.reservations.contains_key(name)
    }

    /// Claims a slot for `name`, unless it holds one already. Returns whether this call
    /// made a new reservation (to undo if a sibling claim fails).
    ///
    /// # Errors
    /// [`Full`] when every slot is held by something else.
    pub fn reserve(&mut self, name: &str, claim: Reservation, limit: usize) -> Result<bool, Full> {
        if self.holds(name) {
            return Ok(false);
        }
        if self.used() >= limit {
            return Err(Full {
                limit,
                holders: self.holders(),
            });
        }
        self.reservations.insert(name.to_owned(), claim);
        Ok(true)
    }

    /// Records `d` as deployed, in place of whatever served under its name, and drops its
    /// reservation.
    pub fn deployed(&mut self, d: Deployment) {
        self.reservations.remove(&d.deployment);
        self.deployments.insert(d.deployment.clone(), d);
    }

    /// Frees `name`'s slot (deleted or never deployed).
    pub fn release(&mut self, name: &str) {
        self.reservations.remove(name);
        self.deployments.remove(name);
    }
}

/// How a release came to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseKind {
    /// A promotion (automatic into Dev, approved into Test and Prod).
    Promotion,
    /// A rollback restored it.
    Rollback,
    /// Read from the single-slot inventory of an earlier version.
    Migrated,
}

/// One release of a project into an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The run.
    pub run_id: String,
    /// Its model.
    pub model: String,
    /// When it started serving.
    pub at: DateTime<Utc>,
    /// Who released it (an approver, `pipeline`).
    pub by: String,
    /// How.
    pub kind: ReleaseKind,
    /// A later rollback took it out; never a rollback target again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolled_back: bool,
}

/// One project's record: `state/inventory/projects/{project}.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectRecord {
    /// Releases per environment, newest last.
    pub releases: BTreeMap<Env, Vec<Release>>,
}

impl ProjectRecord {
    /// The release serving in `env` now.
    pub fn current(&self, env: Env) -> Option<&Release> {
        self.releases.get(&env).and_then(|r| r.last())
    }

    /// What a rollback in `env` restores: the newest earlier release of another run that
    /// was not itself rolled back.
    pub fn rollback_target(&self, env: Env) -> Option<&Release> {
        let list = self.releases.get(&env)?;
        let current = list.last()?;
        list.iter()
            .rev()
            .skip(1)
            .find(|r| r.run_id != current.run_id && !r.rolled_back)
    }

    /// Records `release` as serving in `env`; a rollback also marks every release of the
    /// run it replaced as rolled back. Returns the run it replaced, if another one served.
    /// Recording the release that already serves changes nothing (a retried step).
    pub fn record(&mut self, env: Env, release: Release) -> Option<String> {
        let list = self.releases.entry(env).or_default();
        let previous = list.last().map(|r| r.run_id.clone());
        if previous.as_deref() == Some(release.run_id.as_str()) {
            return None;
        }
        if release.kind == ReleaseKind::Rollback
            && let Some(p) = &previous
        {
            for r in list.iter_mut().filter(|r| &r.run_id == p) {
                r.rolled_back = true;
            }
        }
        list.push(release);
        previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(m: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + m * 60, 0).expect("time")
    }

    fn rel(run: &str, kind: ReleaseKind, m: i64) -> Release {
        Release {
            run_id: run.into(),
            model: format!("m-{run}"),
            at: at(m),
            by: "x".into(),
            kind,
            rolled_back: false,
        }
    }

    fn claim(p: &str) -> Reservation {
        Reservation {
            project: p.into(),
            run_id: format!("{p}-run"),
            at: at(0),
        }
    }

    #[test]
    fn a_rollback_restores_the_previous_release_and_a_second_one_goes_further_back() {
        let mut p = ProjectRecord::default();
        assert_eq!(
            p.record(Env::Prod, rel("a", ReleaseKind::Promotion, 1)),
            None
        );
        assert_eq!(
            p.record(Env::Prod, rel("b", ReleaseKind::Promotion, 2)),
            Some("a".into())
        );
        assert_eq!(
            p.record(Env::Prod, rel("b", ReleaseKind::Promotion, 3)),
            None
        );
        assert_eq!(
            p.rollback_target(Env::Prod).map(|r| r.run_id.as_str()),
            Some("a")
        );
        assert_eq!(
            p.record(Env::Prod, rel("a", ReleaseKind::Rollback, 4)),
            Some("b".into())
        );
        assert_eq!(p.current(Env::Prod).map(|r| r.run_id.as_str()), Some("a"));
        // Nothing older than `a` that was not rolled back: no second rollback.
        assert_eq!(p.rollback_target(Env::Prod), None);
        // A newer release can be rolled back to `a` again, never to the rolled-back `b`.
        p.record(Env::Prod, rel("c", ReleaseKind::Promotion, 5));
        assert_eq!(
            p.rollback_target(Env::Prod).map(|r| r.run_id.as_str()),
            Some("a")
        );
        assert_eq!(p.rollback_target(Env::Test), None);
    }

    #[test]
    fn a_full_account_refuses_a_new_name_but_not_a_name_it_already_holds() {
        let mut a = AccountRecord::default();
        for p in ["a", "b", "c", "d"] {
            assert_eq!(a.reserve(&format!("ft-{p}"), claim(p), 5), Ok(true));
        }
        a.unmanaged.push(Unmanaged {
            deployment: "legacy".into(),
            model: "gpt-4o.ft-x".into(),
        });
        assert_eq!(a.used(), 5);
        let full = a.reserve("ft-e", claim("e"), 5).expect_err("full");
        assert_eq!(full.limit, 5);
        assert!(
            full.describe().contains("legacy (unmanaged)"),
            "{}",
            full.describe()
        );
        assert!(full.describe().contains("ft-a (reserved by project a)"));
        assert_eq!(a.reserve("ft-a", claim("a"), 5), Ok(false), "in place");
        a.deployed(Deployment {
            project: "a".into(),
            deployment: "ft-a".into(),
            run_id: "a-run".into(),
            model: "m".into(),
            version: "v".into(),
            deployed_at: at(1),
            last_keepalive: None,
            last_latency_ms: None,
            health: Health::Healthy,
            restorations: 0,
        });
        assert_eq!(a.used(), 5, "a deployed name holds one slot, not two");
        a.release("ft-b");
        assert_eq!(a.reserve("ft-e", claim("e"), 5), Ok(true));
    }
}

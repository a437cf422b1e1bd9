//! The dashboard pages. Each is a pure function of what the `Status` service read:
//!
//! - [`runs`](runs::runs): every run, with what needs a person at the top;
//! - [`run`](run::run): one run, where it serves now, what to do about it, its charts;
//! - [`environments`]: the environment × region grid;
//! - [`projects`] and [`project`]: what serves where,
//!   releases and runs of each line of business;
//! - [`approvals`](approvals::approvals): runs waiting for a signature, with the command;
//! - [`stalled`](stalled::stalled): stalled and idle runs, and the dead-letter book;
//! - [`rejections`](rejections::rejections): the trail of refused invocations.
//!
//! What serves now is read from the inventory's release history (the project records), not
//! from the run's stage: after a rollback two runs have reached Prod, and only one serves.

pub mod approvals;
pub mod estate;
pub mod rejections;
pub mod run;
pub mod runs;
pub mod stalled;

use std::collections::BTreeMap;

use crate::domain::env::Env;
use crate::domain::inventory::ProjectRecord;
use crate::domain::run::{EnvStatus, Run};
use crate::domain::topology::Topology;

pub use approvals::approvals;
pub use estate::{environments, project, projects};
pub use rejections::{Rejection, rejections};
pub use run::{RunExtras, run};
pub use runs::runs;
pub use stalled::stalled;

/// Every project's release history, by project name.
pub type Releases = BTreeMap<String, ProjectRecord>;

/// What every page needs besides its own data.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The status route as the browser reached it (with `?code=` when it had one).
    pub base: &'a str,
    /// Now.
    pub now: chrono::DateTime<chrono::Utc>,
    /// The estate, when the app has one (approvers, Spokes, thresholds).
    pub topology: Option<&'a Topology>,
    /// Release history per project: what serves now.
    pub releases: &'a Releases,
    /// When a run that owes a step counts as idle.
    pub idle: stalled::IdleLimits,
}

/// The environments `run` serves in now: where it is its project's current release. A
/// project with no release history in an environment (written before there was one) falls
/// back to the run's own record.
pub fn serves(releases: &Releases, run: &Run) -> Vec<Env> {
    let record = releases.get(&run.project);
    Env::ALL
        .into_iter()
        .filter(|env| match record.and_then(|r| r.releases.get(env)) {
            Some(list) if !list.is_empty() => list.last().is_some_and(|c| c.run_id == run.id),
            _ => run.environments.get(env).is_some_and(|e| e.serving()),
        })
        .collect()
}

/// How a run left an environment it once served in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// Where.
    pub env: Env,
    /// Rolled back (a person took it out), or replaced by a newer release.
    pub rolled_back: bool,
    /// The run serving there now, if any.
    pub now: Option<String>,
}

/// The environments `run` reached but no longer serves in, and who serves there instead.
pub fn left(releases: &Releases, run: &Run) -> Vec<Left> {
    let serving = serves(releases, run);
    Env::ALL
        .into_iter()
        .filter(|env| !serving.contains(env))
        .filter_map(|env| {
            let state = run.environments.get(&env)?;
            let history = releases
                .get(&run.project)
                .and_then(|r| r.releases.get(&env));
            let released = history.is_some_and(|l| l.iter().any(|r| r.run_id == run.id));
            let rolled_back = state.status == EnvStatus::RolledBack
                || history.is_some_and(|l| l.iter().any(|r| r.run_id == run.id && r.rolled_back));
            let replaced = state.status == EnvStatus::Superseded || released;
            (rolled_back || replaced).then(|| Left {
                env,
                rolled_back,
                now: history.and_then(|l| l.last()).map(|r| r.run_id.clone()),
            })
        })
        .collect()
}

/// Badges for where a run serves now and where it was taken out, each carrying its
/// environment (`data-serves`, `data-rolled-back`, `data-replaced`) for tools and tests.
pub fn serving_marks(releases: &Releases, run: &Run) -> String {
    let mut out = String::new();
    for env in serves(releases, run) {
        out.push_str(&format!(
            " <span class=\"badge ok\" data-serves=\"{env}\">serves {env}</span>"
        ));
    }
    for l in left(releases, run) {
        let (attr, class, text) = if l.rolled_back {
            ("data-rolled-back", "warn", "rolled back in")
        } else {
            ("data-replaced", "info", "replaced in")
        };
        out.push_str(&format!(
            " <span class=\"badge {class}\" {attr}=\"{env}\">{text} {env}</span>",
            env = l.env
        ));
    }
    out
}

/// Single-quotes `s` for a POSIX shell when it holds anything but plain name characters,
/// so a command copied from the page runs as shown.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '@' | ':'))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests;

//! `fthub approve`: check what can be checked before publishing (the environment, the run,
//! the approver and the key against the run's approvers), publish the signed approval, then
//! follow it to the pipeline's answer — the history entry `ApplyApproval` records for
//! exactly this approval (by nonce), and for an approval the promotion that follows.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ops::{OpsError, Publisher, read, status_with_key};
use crate::domain::approval::{Approval, Decision, parse_public_key, parse_signing_key};
use crate::domain::env::Env;
use crate::ports::OutgoingMessage;

/// Why an approval was not published, or what the pipeline answered.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// Not `test` or `prod`.
    #[error("not published: {0:?} is not an environment that takes approvals; use test or prod")]
    UnknownEnvironment(String),
    /// Dev is reached by evaluation alone.
    #[error(
        "not published: dev takes no approvals: a run that passes evaluation is promoted there by itself"
    )]
    DevTakesNone,
    /// The Status API knows no such run.
    #[error("not published: there is no run {0} (`fthub runs list` lists them)")]
    NoSuchRun(String),
    /// The approver is not one of the run's project's approvers there.
    #[error(
        "not published: {approver} does not approve {env} for project {project}; its approvers are: {listed}"
    )]
    NotAnApprover {
        /// Who tried.
        approver: String,
        /// Where.
        env: Env,
        /// The run's project.
        project: String,
        /// Who may, comma-separated ("none" when nobody).
        listed: String,
    },
    /// The key file's public key is not the approver's.
    #[error(
        "not published: the key file is not {0}'s key: its public key is not the one the topology lists for {0}"
    )]
    WrongKey(String),
    /// The key file is not an fthub key.
    #[error("not published: {0} is not an fthub key (create one with `fthub keygen`)")]
    NotAKey(String),
    /// Local mode, and no host watches the home.
    #[error(
        "not published: no `fthub dev` watches {0} (start it, pass --home of the one running, or --url)"
    )]
    NoHost(String),
    /// The pipeline refused the approval (recorded on the run); its reason.
    #[error("refused by the pipeline: {0}")]
    Refused(String),
    /// Accepted, but what it started was refused; the pipeline's reason.
    #[error("{0}")]
    PromotionFailed(String),
    /// No answer in time; the approval stays published.
    #[error(
        "no answer after {0} s; the approval is published — `fthub status RUN` shows what happens"
    )]
    TimedOut(u64),
    /// Reading the key, the bus, the API.
    #[error(transparent)]
    Ops(#[from] OpsError),
}

impl ApproveError {
    /// Whether this is the answer "no" (exit 1) rather than a command that could not do its
    /// job (exit 2: no host, an unreadable or foreign key file, a bus or API failure).
    pub fn is_no(&self) -> bool {
        !matches!(self, Self::NoHost(_) | Self::NotAKey(_) | Self::Ops(_))
    }
}

/// Where to read the run and its approvers from.
#[derive(Debug, Clone)]
pub struct Api<'a> {
    /// Base URL.
    pub url: &'a str,
    /// Function key.
    pub key: Option<&'a str>,
}

/// The environment an approval may name.
///
/// # Errors
/// Anything but `test` and `prod` (exactly: the pipeline does not fold case).
pub fn environment(env: &str) -> Result<Env, ApproveError> {
    match env.parse::<Env>() {
        Ok(e) if e != Env::Dev => Ok(e),
        Ok(_) => Err(ApproveError::DevTakesNone),
        Err(_) => Err(ApproveError::UnknownEnvironment(env.to_owned())),
    }
}

/// Checks the run exists and `approver` with this key may approve it in `env`, from the
/// run's view in the Status API (which lists the approvers of the run's project).
///
/// # Errors
/// Precheck for every mismatch; Ops when the API does not answer.
pub async fn precheck(
    api: &Api<'_>,
    run_id: &str,
    env: Env,
    approver: &str,
    key: &ed25519_dalek::SigningKey,
) -> Result<Value, ApproveError> {
    let v = status_with_key(api.url, &format!("runs/{run_id}"), api.key).await?;
    if !v["run"].is_object() {
        return Err(ApproveError::NoSuchRun(run_id.to_owned()));
    }
    let listed = v["approvers"][env.name()].as_array().cloned();
    // An app older than this check lists no approvers: the pipeline still checks.
    if let Some(listed) = listed {
        let names: Vec<&str> = listed.iter().filter_map(|a| a["name"].as_str()).collect();
        let Some(entry) = listed.iter().find(|a| a["name"] == approver) else {
            return Err(ApproveError::NotAnApprover {
                approver: approver.to_owned(),
                env,
                project: v["run"]["project"].as_str().unwrap_or("?").to_owned(),
                listed: if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
            });
        };
        // Compared as keys, as the pipeline reads them (it trims and decodes).
        let theirs = entry["public_key"].as_str().and_then(parse_public_key);
        if theirs != Some(key.verifying_key()) {
            return Err(ApproveError::WrongKey(approver.to_owned()));
        }
    }
    Ok(v)
}

/// Reads an approver's key file.
///
/// # Errors
/// Unreadable or not an fthub key.
pub fn signing_key(path: &Path) -> Result<ed25519_dalek::SigningKey, ApproveError> {
    let text = String::from_utf8(read(path)?)
        .map_err(|_| ApproveError::NotAKey(path.display().to_string()))?;
    parse_signing_key(&text).ok_or_else(|| ApproveError::NotAKey(path.display().to_string()))
}

/// Signs and publishes on the `approvals` queue, with MessageId = nonce (duplicate
/// detection), CorrelationId = run id, Subject `approval.{env}`.
///
/// # Errors
/// Bus failures.
pub async fn publish(
    publisher: &Publisher,
    key: &ed25519_dalek::SigningKey,
    approval: Approval,
) -> Result<Approval, OpsError> {
    let signed = approval.clone().sign(key);
    let msg = OutgoingMessage {
        body: serde_json::to_string(&signed).unwrap_or_default(),
        message_id: Some(approval.nonce.clone()),
        correlation_id: Some(approval.run_id.clone()),
        subject: Some(format!("approval.{}", approval.environment)),
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    publisher.send("approvals", msg).await?;
    Ok(approval)
}

/// Reads the key, signs and publishes, with no checks and no waiting (what `--no-wait`
/// does after its checks).
///
/// # Errors
/// An unreadable key; bus failures.
pub async fn sign_and_publish(
    publisher: &Publisher,
    run_id: &str,
    env: &str,
    decision: Decision,
    approver: &str,
    key_file: &Path,
    reason: &str,
) -> Result<Approval, ApproveError> {
    let key = signing_key(key_file)?;
    Ok(publish(
        publisher,
        &key,
        approval(run_id, env, decision, approver, reason),
    )
    .await?)
}

/// A new approval, with a fresh nonce.
pub fn approval(
    run_id: &str,
    env: &str,
    decision: Decision,
    approver: &str,
    reason: &str,
) -> Approval {
    Approval {
        run_id: run_id.to_owned(),
        environment: env.to_owned(),
        decision,
        approver: approver.to_owned(),
        reason: reason.to_owned(),
        issued_at: chrono::Utc::now(),
        nonce: uuid::Uuid::new_v4().to_string(),
    }
}

/// Follows the approval with `nonce` until the pipeline answers (and, for an approval,
/// until its promotion settles), or `timeout` passes. A host that restarts meanwhile is
/// waited for, not reported as a failure.
///
/// # Errors
/// Refused, PromotionFailed, TimedOut. `Ok` says what happened.
pub async fn follow(
    api: &Api<'_>,
    a: &Approval,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<String, ApproveError> {
    let started = Instant::now();
    let mut accepted = false;
    let mut last = String::new();
    loop {
        if let Ok(v) = status_with_key(api.url, &format!("runs/{}", a.run_id), api.key).await {
            let run = &v["run"];
            let history = run["history"].as_array().cloned().unwrap_or_default();
            // Every entry this approval led to carries its nonce.
            let ours: Vec<&Value> = history
                .iter()
                .filter(|t| t["approval"].as_str() == Some(a.nonce.as_str()))
                .collect();
            if let Some(t) = ours.iter().find(|t| t["to"] == "approval_refused") {
                return Err(ApproveError::Refused(
                    t["detail"].as_str().unwrap_or("").to_owned(),
                ));
            }
            if !ours.is_empty() {
                if !accepted {
                    accepted = true;
                    progress(&format!("accepted by the pipeline ({})", a.environment));
                }
                match settled(run, a, &ours) {
                    Settled::No => {}
                    Settled::Yes(text) => return Ok(text),
                    Settled::Failed(text) => return Err(ApproveError::PromotionFailed(text)),
                }
                let line = super::ops::progress_line(run);
                if line != last {
                    progress(&line);
                    last = line;
                }
            }
        }
        if started.elapsed() > timeout {
            return Err(ApproveError::TimedOut(timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

enum Settled {
    No,
    Yes(String),
    Failed(String),
}

/// Whether what an accepted approval started has finished; `ours` are the history entries
/// that carry its nonce.
fn settled(run: &Value, a: &Approval, ours: &[&Value]) -> Settled {
    let e = &run["environments"][a.environment.as_str()];
    let regions = || -> String {
        e["regions"]
            .as_object()
            .map(|r| r.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let entry = |to: &str| {
        ours.iter()
            .find(|t| t["to"] == to)
            .map(|t| t["detail"].as_str().unwrap_or("").to_owned())
    };
    match a.decision {
        Decision::Reject => Settled::Yes(format!(
            "{} rejected for {} by {}",
            a.run_id, a.environment, a.approver
        )),
        Decision::Rollback => match (entry("rollback"), entry("promotion_refused")) {
            (Some(done), _) => Settled::Yes(format!("{} rolled back: {done}", a.environment)),
            (None, Some(why)) => Settled::Failed(why),
            (None, None) => Settled::No,
        },
        // Degraded is not final: the reconciler retries the failed region until it converges
        // or the run is flagged; only a refusal (no slot) ends the wait early.
        Decision::Approve => match e["status"].as_str().unwrap_or("") {
            "healthy" => Settled::Yes(format!(
                "{} is in {} ({})",
                a.run_id,
                a.environment,
                regions()
            )),
            "refused" => Settled::Failed(format!(
                "{} was not promoted to {}: {}",
                a.run_id,
                a.environment,
                e["refusal"].as_str().unwrap_or("refused")
            )),
            _ => Settled::No,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_test_and_prod_spelled_exactly_take_approvals() {
        assert_eq!(environment("test").ok(), Some(Env::Test));
        assert_eq!(environment("prod").ok(), Some(Env::Prod));
        for bad in ["Prod", "staging", "dev", ""] {
            assert!(environment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_approval_settles_when_its_environment_is_healthy_keeps_waiting_when_degraded() {
        let a = approval("r", "test", Decision::Approve, "qa", "ok");
        let run = |status: &str| {
            json!({"environments": {"test": {"status": status, "regions": {"a": {}, "b": {}},
                   "refusal": "no free slot"}}})
        };
        assert!(matches!(settled(&run("promoting"), &a, &[]), Settled::No));
        assert!(matches!(settled(&run("healthy"), &a, &[]), Settled::Yes(t) if t.contains("a, b")));
        assert!(matches!(settled(&run("degraded"), &a, &[]), Settled::No));
        assert!(
            matches!(settled(&run("refused"), &a, &[]), Settled::Failed(t) if t.contains("no free slot"))
        );
    }

    #[test]
    fn a_rollback_settles_on_its_own_entry_done_or_refused() {
        let a = approval("r", "prod", Decision::Rollback, "rm", "bad");
        let run = json!({"environments": {}});
        assert!(matches!(settled(&run, &a, &[]), Settled::No));
        let done = json!({"to": "rollback", "detail": "prod back to x"});
        assert!(matches!(settled(&run, &a, &[&done]), Settled::Yes(_)));
        let refused =
            json!({"to": "promotion_refused", "detail": "prod rollback to x refused: full"});
        assert!(matches!(settled(&run, &a, &[&refused]), Settled::Failed(t) if t.contains("full")));
    }
}

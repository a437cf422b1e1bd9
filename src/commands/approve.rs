//! `fthub approve`: check what can be checked before publishing (the environment, the run,
//! the approver and the key against the run's approvers), publish the signed approval, then
//! follow it to the pipeline's answer — the history entry `ApplyApproval` records for
//! exactly this approval (by nonce), and for an approval the promotion that follows.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ops::{OpsError, Publisher, read, status_with_key};
use crate::domain::approval::{Approval, Decision, parse_signing_key, public_key_of};
use crate::domain::env::Env;
use crate::ports::OutgoingMessage;

/// Why an approval was not published, or what the pipeline answered.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// A check before publishing failed; nothing was sent.
    #[error("not published: {0}")]
    Precheck(String),
    /// The pipeline refused the approval (recorded on the run).
    #[error("refused by the pipeline: {0}")]
    Refused(String),
    /// Accepted, but the promotion it started did not finish well.
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
        Ok(_) => Err(ApproveError::Precheck(
            "dev takes no approvals: a run that passes evaluation is promoted there by itself"
                .into(),
        )),
        Err(_) => Err(ApproveError::Precheck(format!(
            "{env:?} is not an environment that takes approvals; use test or prod"
        ))),
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
    public_key: &str,
) -> Result<Value, ApproveError> {
    let v = status_with_key(api.url, &format!("runs/{run_id}"), api.key).await?;
    if !v["run"].is_object() {
        return Err(ApproveError::Precheck(format!(
            "there is no run {run_id} (`fthub runs list` lists them)"
        )));
    }
    let listed = v["approvers"][env.name()].as_array().cloned();
    // An app older than this check lists no approvers: the pipeline still checks.
    if let Some(listed) = listed {
        let names: Vec<&str> = listed.iter().filter_map(|a| a["name"].as_str()).collect();
        let Some(entry) = listed.iter().find(|a| a["name"] == approver) else {
            return Err(ApproveError::Precheck(format!(
                "{approver} does not approve {env} for project {}; its approvers are: {}",
                v["run"]["project"].as_str().unwrap_or("?"),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        if entry["public_key"].as_str() != Some(public_key) {
            return Err(ApproveError::Precheck(format!(
                "the key file is not {approver}'s key: its public key is not the one the topology lists for {approver}"
            )));
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
        .map_err(|_| ApproveError::Precheck(format!("{} is not text", path.display())))?;
    parse_signing_key(&text).ok_or_else(|| {
        ApproveError::Precheck(format!(
            "{} is not an fthub key (create one with `fthub keygen`)",
            path.display()
        ))
    })
}

/// The public key of a key file, as the topology lists it.
pub fn public_key(key: &ed25519_dalek::SigningKey) -> String {
    public_key_of(key)
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
            let answer = history
                .iter()
                .position(|t| t["approval"].as_str() == Some(a.nonce.as_str()));
            if let Some(i) = answer {
                let t = &history[i];
                if t["to"] == "approval_refused" {
                    return Err(ApproveError::Refused(
                        t["detail"].as_str().unwrap_or("").to_owned(),
                    ));
                }
                if !accepted {
                    accepted = true;
                    progress(&format!("accepted by the pipeline ({})", a.environment));
                }
            }
            if let (true, Some(i)) = (accepted, answer) {
                match settled(run, a, &history[i + 1..]) {
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

/// Whether what an accepted approval started has finished; `since` is the history after
/// the entry that accepted it.
fn settled(run: &Value, a: &Approval, since: &[Value]) -> Settled {
    let e = &run["environments"][a.environment.as_str()];
    let regions = || -> String {
        e["regions"]
            .as_object()
            .map(|r| r.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    match a.decision {
        Decision::Reject => Settled::Yes(format!(
            "{} rejected for {} by {}",
            a.run_id, a.environment, a.approver
        )),
        Decision::Rollback => {
            let done = since.iter().find(|t| {
                t["to"] == "rollback"
                    && t["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with(&format!("{} back to", a.environment)))
            });
            match done {
                Some(t) => Settled::Yes(format!(
                    "{} rolled back: {}",
                    a.environment,
                    t["detail"].as_str().unwrap_or("")
                )),
                None => Settled::No,
            }
        }
        Decision::Approve => match e["status"].as_str().unwrap_or("") {
            "healthy" => Settled::Yes(format!(
                "{} is in {} ({})",
                a.run_id,
                a.environment,
                regions()
            )),
            "degraded" | "refused" => Settled::Failed(format!(
                "{} in {} is {}: {}",
                a.run_id,
                a.environment,
                e["status"].as_str().unwrap_or(""),
                e["refusal"]
                    .as_str()
                    .unwrap_or("a region failed; the reconciler retries it")
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
    fn an_approval_settles_when_its_environment_is_healthy_or_fails_when_degraded() {
        let a = approval("r", "test", Decision::Approve, "qa", "ok");
        let run = |status: &str| json!({"environments": {"test": {"status": status, "regions": {"a": {}, "b": {}}}}});
        assert!(matches!(settled(&run("promoting"), &a, &[]), Settled::No));
        assert!(matches!(settled(&run("healthy"), &a, &[]), Settled::Yes(t) if t.contains("a, b")));
        assert!(matches!(
            settled(&run("degraded"), &a, &[]),
            Settled::Failed(_)
        ));
    }

    #[test]
    fn a_rollback_settles_when_its_environment_is_recorded_back() {
        let a = approval("r", "prod", Decision::Rollback, "rm", "bad");
        let run = json!({"environments": {}});
        assert!(matches!(settled(&run, &a, &[]), Settled::No));
        let h = [json!({"to": "rollback", "detail": "test back to x"})];
        assert!(
            matches!(settled(&run, &a, &h), Settled::No),
            "another environment"
        );
        let h = [json!({"to": "rollback", "detail": "prod back to x"})];
        assert!(matches!(settled(&run, &a, &h), Settled::Yes(_)));
    }
}

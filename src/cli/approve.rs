//! `fthub approve RUN --env ENV`: checked, published, answered.

use std::path::PathBuf;

use fthub::commands::approve::{self as cmd, Api, ApproveError};
use fthub::commands::ops::Publisher;
use fthub::domain::approval::Decision;

use super::Out;
use super::args::{BusArg, Home};

/// `fthub approve` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run id.
    run: String,
    /// Environment: test or prod.
    #[arg(long)]
    env: String,
    /// Your approver name (as in the topology).
    #[arg(long)]
    approver: String,
    /// Your key file (from `fthub keygen`).
    #[arg(long)]
    key: PathBuf,
    /// Why.
    #[arg(long, default_value = "")]
    reason: String,
    /// Refuse promotion instead.
    #[arg(long, conflicts_with = "rollback")]
    reject: bool,
    /// Roll the environment back to its previous version.
    #[arg(long)]
    rollback: bool,
    /// Publish only: do not wait for the pipeline's answer.
    #[arg(long)]
    no_wait: bool,
    /// Seconds to wait for the answer (and, for an approval, the promotion).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The app's API, to check the run and follow the answer (default: the `fthub dev`
    /// watching --home; against Azure, the function app's URL).
    #[arg(long, env = "FTHUB_URL")]
    url: Option<String>,
    /// Function key for a deployed app.
    #[arg(long, env = "FTHUB_FUNCTION_KEY", hide_env_values = true)]
    code: Option<String>,
    #[command(flatten)]
    home: Home,
    #[command(flatten)]
    bus: BusArg,
}

/// Checks, publishes, and waits for the answer.
pub async fn run(a: Args, out: &Out) -> anyhow::Result<()> {
    match approve(&a, out).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_no() => super::no(e.to_string()),
        Err(e) => Err(e.into()),
    }
}

async fn approve(a: &Args, out: &Out) -> Result<(), ApproveError> {
    let env = cmd::environment(&a.env)?;
    let key = cmd::signing_key(&a.key)?;
    let local = a.bus.bus.as_deref().is_none_or(|b| b.trim().is_empty());
    // Local mode finds the API of the host watching --home; Azure mode needs --url.
    let url = a.url.clone().or_else(|| {
        local
            .then(|| fthub::local::watch::Watch::find(&a.home.home))
            .flatten()
            .map(|w| w.url)
    });
    let api = url.as_deref().map(|url| Api {
        url,
        key: a.code.as_deref(),
    });
    match &api {
        Some(api) => {
            cmd::precheck(api, &a.run, env, &a.approver, &key).await?;
        }
        None if local => {
            return Err(ApproveError::NoHost(a.home.home.display().to_string()));
        }
        None => fthub::errln!(
            "fthub: no --url: the run, approver and key are checked by the pipeline only, and the answer is not followed"
        ),
    }
    let decision = if a.reject {
        Decision::Reject
    } else if a.rollback {
        Decision::Rollback
    } else {
        Decision::Approve
    };
    let publisher = Publisher::from_setting(a.bus.bus.as_deref(), &a.home.home)?;
    let approval = cmd::publish(
        &publisher,
        &key,
        cmd::approval(&a.run, &a.env, decision, &a.approver, &a.reason),
    )
    .await?;
    let published = serde_json::json!({"run_id": approval.run_id, "environment": approval.environment,
        "decision": approval.decision, "approver": approval.approver, "nonce": approval.nonce});
    let Some(api) = api.filter(|_| !a.no_wait) else {
        out.either(&serde_json::json!({"published": published}), || {
            format!(
                "published {:?} of {} for {} (nonce {})\n",
                approval.decision, approval.run_id, approval.environment, approval.nonce
            )
        });
        return Ok(());
    };
    fthub::errln!(
        "published {:?} of {} for {}; waiting for the pipeline's answer…",
        approval.decision,
        approval.run_id,
        approval.environment
    );
    let quiet = out.json();
    let said = cmd::follow(
        &api,
        &approval,
        std::time::Duration::from_secs(a.timeout),
        &|line| {
            if !quiet {
                fthub::errln!("  {line}");
            }
        },
    )
    .await?;
    out.either(
        &serde_json::json!({"published": published, "outcome": said}),
        || format!("{said}\n"),
    );
    Ok(())
}

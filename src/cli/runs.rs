//! `fthub runs list|retry|cancel`: the operator's verbs on runs, through the app's API.

use super::Out;
use super::args::{AppArg, WhoWhy};

/// `fthub runs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Runs, newest first.
    List {
        /// Only this project's.
        #[arg(long)]
        project: Option<String>,
        /// Only runs at this stage (`training`, `evaluating`, `dev`, …).
        #[arg(long)]
        stage: Option<String>,
        /// Only runs created at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        app: AppArg,
        /// Read straight from storage instead of the app.
        #[arg(long, env = "FTHUB_STORAGE", hide_env_values = true)]
        storage: Option<String>,
    },
    /// Re-drive a stalled step, or start a failed training or evaluation again.
    Retry {
        /// Run id.
        run: String,
        #[command(flatten)]
        who: WhoWhy,
        #[command(flatten)]
        app: AppArg,
    },
    /// Cancel a run: its Hub job, its evaluation deployment; recorded with who and why.
    Cancel {
        /// Run id.
        run: String,
        #[command(flatten)]
        who: WhoWhy,
        #[command(flatten)]
        app: AppArg,
    },
}

/// Runs one.
pub async fn run(c: Command, out: &Out) -> anyhow::Result<()> {
    let (app, run, action, who) = match c {
        Command::List {
            project,
            stage,
            since,
            limit,
            app,
            storage,
        } => return list(project, stage, since, limit, app, storage, out).await,
        Command::Retry { run, who, app } => (app, run, "retry", who),
        Command::Cancel { run, who, app } => (app, run, "cancel", who),
    };
    let v = match fthub::commands::runs::act(
        &app.base(),
        app.code.as_deref(),
        &run,
        action,
        &who.actor,
        &who.reason,
    )
    .await
    {
        Ok(v) => v,
        Err(fthub::commands::ops::OpsError::Refused(refusal)) => return super::no(refusal),
        Err(e) => return Err(e.into()),
    };
    out.either(&v, || match action {
        "retry" => format!(
            "{run}: {} scheduled; the reconciler acts within a minute (follow with `fthub wait {run}`)\n",
            v["scheduled"].as_str().unwrap_or("the step")
        ),
        _ => format!("{run}: cancelled by {}\n", who.actor),
    });
    Ok(())
}

async fn list(
    project: Option<String>,
    stage: Option<String>,
    since: Option<String>,
    limit: usize,
    app: AppArg,
    storage: Option<String>,
    out: &Out,
) -> anyhow::Result<()> {
    let query: std::collections::BTreeMap<String, String> = [
        ("project", project),
        ("stage", stage),
        ("since", since),
        ("limit", Some(limit.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
    .collect();
    let v = super::args::status_view(storage.as_deref(), &app, "runs", &query).await?;
    if let Some(e) = v["detail"].as_str().filter(|_| v["error"].is_string()) {
        // Read from storage: the same refusal the API gives as a 400.
        anyhow::bail!("{e}");
    }
    out.either(&v, || {
        let mut t = fthub::commands::tables::runs(&v, out.colour());
        if let Some(c) = v["continuation"].as_str() {
            t.push_str(&format!("(more: the API's continuation token is {c})\n"));
        }
        t
    });
    Ok(())
}

//! `fthub submit DIR`: checked locally, uploaded, and the run it starts named.

use std::path::PathBuf;

use anyhow::Context as _;
use fthub::commands::submit::{self as cmd, SubmitError};
use fthub::local::watch::Watch;

use super::Out;
use super::args::{Home, StorageArg, open_store, user_or};

/// `fthub submit` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory with manifest.json and the data files it names.
    dir: PathBuf,
    /// Project.
    #[arg(long)]
    project: String,
    /// Submission name (default: the directory name).
    #[arg(long)]
    submission: Option<String>,
    /// Submitter recorded in the run (default: $USER).
    #[arg(long = "as")]
    submitter: Option<String>,
    /// Skip the local dataset validation (the pipeline validates anyway).
    #[arg(long)]
    no_validate: bool,
    /// Upload even though no `fthub dev` watches --home now: the submission waits in its
    /// store until one starts there.
    #[arg(long)]
    unwatched: bool,
    #[command(flatten)]
    home: Home,
    #[command(flatten)]
    storage: StorageArg,
}

/// Checks, uploads, names the run.
pub async fn run(a: Args, out: &Out) -> anyhow::Result<()> {
    let submission = a
        .submission
        .clone()
        .or_else(|| {
            std::fs::canonicalize(&a.dir)
                .ok()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .context("name the submission with --submission")?;
    let who = a.submitter.clone().unwrap_or_else(|| user_or("unknown"));
    // Local mode: the upload must land where a running host looks.
    let watch = match &a.storage.storage {
        Some(_) => None,
        None if a.unwatched => Watch::find(&a.home.home),
        None => Some(Watch::find(&a.home.home).ok_or_else(|| {
            anyhow::anyhow!(
                "no `fthub dev` watches {}: start `fthub dev` (its home is ./.fthub unless --home), \
                 pass --home of the one running, --storage for Azurite or Azure, or --unwatched \
                 to leave the upload for a host started later",
                a.home.home.display()
            )
        })?),
    };
    if let Some(w) = watch.as_ref().filter(|w| !w.local_store) {
        anyhow::bail!(
            "the `fthub dev` watching {} keeps its blobs in Azurite or Azure, not here: pass the same --storage it was started with (its dashboard: {})",
            a.home.home.display(),
            w.dashboard
        );
    }
    let plan = match cmd::plan(&a.dir, &a.project, &submission, &who, !a.no_validate) {
        Ok(p) => p,
        Err(SubmitError::Rejected(report)) => {
            let text: String = report.files.iter().map(|f| f.to_text()).collect();
            out.either(&report, || text);
            return super::said(
                "not uploaded: the local validation rejects it (--no-validate skips the check; the pipeline would reject it too)",
            );
        }
        Err(e) if e.is_no() => return super::no(format!("not uploaded: {e}")),
        Err(e) => return Err(e.into()),
    };
    // What the host already has of this submission, to say whether this is a new run.
    let earlier = match &watch {
        Some(w) => {
            fthub::commands::ops::status(&w.url, &format!("submissions/{}/{submission}", a.project))
                .await
                .ok()
                .and_then(|v| v["runs"].as_array().cloned())
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    // A run from before ids covered the manifest continues when it asked for the same.
    let mut run_id = plan.run_id.clone();
    if let Some(w) = &watch
        && earlier
            .iter()
            .any(|r| r["id"] == plan.legacy_run_id.as_str())
        && let Ok(v) =
            fthub::commands::ops::status(&w.url, &format!("runs/{}", plan.legacy_run_id)).await
        && serde_json::from_value::<fthub::domain::manifest::Manifest>(v["run"]["manifest"].clone())
            .is_ok_and(|m| m.settings_digest() == plan.manifest.settings_digest())
    {
        run_id = plan.legacy_run_id.clone();
    }
    let store = open_store(a.storage.storage.as_deref(), &a.home.home)?;
    let written = cmd::upload(store.as_ref(), &plan).await?;
    let same = earlier.iter().find(|r| r["id"] == run_id.as_str());
    let others: Vec<&str> = earlier
        .iter()
        .filter(|r| r["id"] != run_id.as_str())
        .filter_map(|r| r["id"].as_str())
        .collect();
    let v = serde_json::json!({
        "run_id": run_id, "uploaded": written,
        "validated": plan.validation.is_some(),
        "existing": same.is_some(), "earlier_runs": others,
    });
    out.either(&v, || {
        let mut t = String::new();
        if let Some(r) = &plan.validation {
            let f = &r.files[0];
            t.push_str(&format!(
                "checked against {}{}: {} examples, {} tokens, ~{} billed tokens — accepted{}\n",
                f.model,
                if plan.manifest.base_model.is_none() {
                    " (the manifest names no base model; the project's default may differ)"
                } else {
                    ""
                },
                f.valid_examples,
                f.tokens.total,
                f.billing_tokens,
                if r.warnings.is_empty() && f.warnings.is_empty() {
                    String::new()
                } else {
                    " with warnings (fthub validate shows them)".into()
                }
            ));
        }
        for w in &written {
            t.push_str(&format!("uploaded datasets/{w}\n"));
        }
        match same {
            Some(r) => t.push_str(&format!(
                "run {} exists already with this data and manifest (stage {}); it continues, nothing restarts\n",
                run_id,
                r["stage"].as_str().unwrap_or("?")
            )),
            None if !others.is_empty() => t.push_str(&format!(
                "run {} starts — a new run: the earlier run(s) {} of this submission had other data or another manifest and stay as they are\n",
                run_id,
                others.join(", ")
            )),
            None => t.push_str(&format!("run {run_id} starts\n")),
        }
        t.push_str(&format!(
            "follow it: fthub wait {run_id} --for evaluated   (or fthub status {run_id})\n"
        ));
        t
    });
    Ok(())
}

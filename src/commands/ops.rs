//! What the commands share: the bus approvals and replays are published on, the Status
//! API, and following a run. In local mode on the storage and bus `fthub dev` serves; in
//! Azure mode (`--storage`, `--bus`, `--url`) through the same SDK adapters the handler
//! uses, signed in with the developer's Entra identity.

use std::path::Path;

use serde_json::Value;

use crate::adapters::azure::credential::Entra;
use crate::adapters::azure::servicebus::{BusSendError, ServiceBusSender};
use crate::adapters::azure::{Http, RetryPolicy};
use crate::adapters::local::bus::LocalBus;
use crate::ports::OutgoingMessage;

/// Failures of the local commands, each with the next step for the user.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad input.
    #[error("{0}")]
    Usage(String),
    /// The app answered and refused (a 4xx with its reason).
    #[error("{0}")]
    Refused(String),
    /// What was named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Storage.
    #[error("storage: {0}")]
    Store(#[from] crate::ports::BlobError),
    /// The storage setting or identity.
    #[error("{0}")]
    Open(#[from] crate::adapters::OpenStoreError),
    /// Local bus.
    #[error("local bus failed: {0}")]
    Bus(#[from] crate::adapters::local::bus::BusError),
    /// Service Bus.
    #[error(transparent)]
    ServiceBus(#[from] BusSendError),
    /// No identity.
    #[error("{0}; on a workstation, sign in with `az login`")]
    Identity(#[from] crate::adapters::azure::credential::CredentialError),
    /// The status API.
    #[error("the status API at {url} did not answer ({detail}); is `fthub dev` running?")]
    Api {
        /// URL.
        url: String,
        /// What happened.
        detail: String,
    },
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, OpsError> {
    std::fs::read(path).map_err(|source| OpsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Where approvals are published.
#[derive(Debug)]
pub enum Publisher {
    /// The local bus `fthub dev` delivers from.
    Local(LocalBus),
    /// Service Bus.
    Azure(ServiceBusSender),
}

impl Publisher {
    /// From `--bus`: empty for the local bus under `home`, a connection string
    /// (`Endpoint=sb://…`), or a namespace name reached with Entra ID.
    ///
    /// # Errors
    /// A malformed connection string, or no identity.
    pub fn from_setting(bus: Option<&str>, home: &Path) -> Result<Self, OpsError> {
        let http = Http::new(RetryPolicy::default());
        match bus.map(str::trim).filter(|b| !b.is_empty()) {
            None => Ok(Self::Local(LocalBus::new(home.join("bus")))),
            Some(cs) if cs.contains("Endpoint=") => Ok(Self::Azure(
                ServiceBusSender::from_connection_string(http, cs)?,
            )),
            Some(ns) => Ok(Self::Azure(ServiceBusSender::with_identity(
                http,
                ns,
                std::sync::Arc::new(Entra::from_env()?),
            ))),
        }
    }

    /// Sends to a queue.
    ///
    /// # Errors
    /// Bus failures.
    pub async fn send(&self, queue: &str, msg: OutgoingMessage) -> Result<(), OpsError> {
        match self {
            Self::Local(bus) => {
                bus.send_to_queue(queue, msg)?;
            }
            Self::Azure(sender) => sender.send(queue, &msg).await?,
        }
        Ok(())
    }
}

/// GETs `{base}/api/status/{path}`.
///
/// # Errors
/// When the API does not answer with JSON.
pub async fn status(base: &str, path: &str) -> Result<Value, OpsError> {
    status_with_key(base, path, None).await
}

/// GETs `{base}/api/status/{path}` with a function key (`x-functions-key`) when the app
/// runs in Azure, where the Status function's auth level is `function`.
///
/// # Errors
/// When the API does not answer with JSON.
pub async fn status_with_key(base: &str, path: &str, key: Option<&str>) -> Result<Value, OpsError> {
    let url = format!("{}/api/status/{path}", base.trim_end_matches('/'));
    let api = |detail: String| OpsError::Api {
        url: url.clone(),
        detail,
    };
    let mut req = reqwest::Client::new().get(&url);
    if let Some(k) = key {
        req = req.header("x-functions-key", k);
    }
    let resp = req.send().await.map_err(|e| api(e.to_string()))?;
    let code = resp.status();
    if code.as_u16() == 401 || code.as_u16() == 403 {
        return Err(api(format!(
            "HTTP {code}: pass the function key with --code or FTHUB_FUNCTION_KEY"
        )));
    }
    let v: Value = resp.json().await.map_err(|e| api(e.to_string()))?;
    if code.as_u16() == 400 {
        // A query the API refuses names what is wrong.
        return Err(OpsError::Usage(
            v["detail"]
                .as_str()
                .map_or_else(|| format!("{url}: HTTP 400"), str::to_owned),
        ));
    }
    if !code.is_success() && code.as_u16() != 404 {
        return Err(api(format!("HTTP {code}")));
    }
    Ok(v)
}

/// The order runs move through; `wait` is done once the run is at or past the target.
pub const PROGRESS: [&str; 8] = [
    "queued",
    "uploading",
    "training",
    "evaluating",
    "evaluated",
    "dev",
    "test",
    "prod",
];
/// Stages a run does not leave by itself.
const TERMINAL: [&str; 4] = [
    "rejected",
    "training_failed",
    "evaluation_failed",
    "cancelled",
];

/// One line about where a run is: stage, job status, regions verified per environment.
pub fn progress_line(run: &Value) -> String {
    let mut line = run["stage"].as_str().unwrap_or("?").to_owned();
    if let Some(job) = run["job_status"].as_str() {
        line.push_str(&format!(" · job {job}"));
    }
    if let Some(envs) = run["environments"].as_object() {
        for (env, e) in envs {
            let regions = e["regions"].as_object();
            let total = regions.map_or(0, |r| r.len());
            let verified = regions.map_or(0, |r| {
                r.values().filter(|x| x["status"] == "verified").count()
            });
            line.push_str(&format!(" · {env} {verified}/{total} regions"));
        }
    }
    line
}

/// How long `wait` lets a run not exist yet: a submission is validated before its run is
/// created, and a large dataset takes a while.
const NOT_YET_CREATED: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a wait ended without the run reaching its target.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The command could not watch (bad `--for`, the API did not answer).
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// No such run.
    #[error("no run {0}; `fthub status` lists the runs")]
    NotFound(String),
    /// The run stopped at a stage it does not leave by itself.
    #[error("run {run} stopped at {stage}; `fthub status {run}` shows why")]
    Stopped {
        /// Run.
        run: String,
        /// Where it stopped.
        stage: String,
    },
    /// Time ran out.
    #[error("run {run} is still at {stage} after {seconds} s")]
    TimedOut {
        /// Run.
        run: String,
        /// Where it is.
        stage: String,
        /// How long we waited.
        seconds: u64,
    },
}

/// Polls a run until it reaches `target` (or any later stage), fails, or `timeout` passes.
/// A spinner on a terminal, one line per change otherwise.
///
/// # Errors
/// The run failed, the wait timed out, or the status API did not answer.
pub async fn wait(
    base: &str,
    key: Option<&str>,
    run_id: &str,
    target: &str,
    timeout: std::time::Duration,
) -> Result<Value, WaitError> {
    use std::io::IsTerminal as _;
    let want = PROGRESS
        .iter()
        .position(|s| *s == target)
        .ok_or_else(|| OpsError::Usage(format!("--for must be one of {}", PROGRESS.join(", "))))?;
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    });
    let started = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let v = status_with_key(base, &format!("runs/{run_id}"), key).await?;
        let run = &v["run"];
        if !run.is_object() {
            // Just submitted: intake creates the run once it has validated the data.
            if started.elapsed() > timeout.min(NOT_YET_CREATED) {
                return Err(WaitError::NotFound(run_id.to_owned()));
            }
            if last.is_empty() {
                last = "waiting for intake to create the run".into();
                match &spinner {
                    Some(s) => s.set_message(last.clone()),
                    None => crate::errln!("{run_id}: {last}"),
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        let line = progress_line(run);
        if line != last {
            match &spinner {
                Some(s) => s.set_message(line.clone()),
                None => crate::errln!("{run_id}: {line}"),
            }
            last = line;
        }
        let stage = run["stage"].as_str().unwrap_or("");
        if PROGRESS
            .iter()
            .position(|s| *s == stage)
            .is_some_and(|i| i >= want)
        {
            if let Some(s) = spinner {
                s.finish_with_message(last);
            }
            return Ok(v);
        }
        if TERMINAL.contains(&stage) {
            if let Some(s) = spinner {
                s.abandon_with_message(last);
            }
            return Err(WaitError::Stopped {
                run: run_id.to_owned(),
                stage: stage.to_owned(),
            });
        }
        if started.elapsed() > timeout {
            return Err(WaitError::TimedOut {
                run: run_id.to_owned(),
                stage: stage.to_owned(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

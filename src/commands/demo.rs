//! `fthub demo`: the whole story on one machine. It starts `fthub dev` (handler, host
//! stand-in, bus, storage and the Azure OpenAI emulator), submits the bundled
//! classification sample, and walks validation → training → evaluation → Dev in two regions
//! → a signed Test approval → a forged approval that is refused → Prod in two regions (one
//! in another tenant); then a second project shares the estate (Dev, Test) while the first
//! stays live; then 16 emulated days of keepalive, during which one deployment of each
//! project is deleted behind the pipeline's back and restored. Exit 0 only if every step
//! happened.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ops;
use crate::domain::approval::Decision;

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The function app (the repository root).
    pub app: PathBuf,
    /// State directory (a fresh temporary one when `None`).
    pub home: Option<PathBuf>,
    /// Seconds of emulated training.
    pub training_seconds: u64,
    /// Share of Azure OpenAI requests (every account) answered with an injected 429, 500
    /// or timeout, in equal parts; 0 for none.
    pub faults: f64,
}

struct Dev {
    child: tokio::process::Child,
    http: String,
    emulator: String,
    client: reqwest::Client,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Prints a step heading with the time since the demo started.
fn step(n: usize, text: &str) {
    let t = STARTED.get().map_or(0.0, |s| s.elapsed().as_secs_f64());
    crate::commands::outln!("\n[{n}] {text}   (t = {t:.1} s)");
}

static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn fail(what: impl Into<String>) -> String {
    what.into()
}

impl Dev {
    async fn start(app: &Path, home: &Path) -> Result<Self, String> {
        let (port, emu) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = tokio::process::Command::new(exe)
            .args([
                "dev",
                "--port",
                &port.to_string(),
                "--emulator-port",
                &emu.to_string(),
                "--scan-interval-ms",
                "200",
            ])
            .arg("--app")
            .arg(app)
            .arg("--home")
            .arg(home)
            .env(
                "FTHUB_LOG",
                std::env::var("FTHUB_LOG").unwrap_or_else(|_| "error".into()),
            )
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start fthub dev: {e}"))?;
        let dev = Self {
            child,
            http: format!("http://127.0.0.1:{port}"),
            emulator: format!("http://127.0.0.1:{emu}"),
            client: reqwest::Client::new(),
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = dev
                .client
                .get(format!("{}/admin/host/status", dev.http))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(dev);
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(fail("fthub dev did not become ready within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops `fthub dev` with SIGTERM so it stops its handler too (a SIGKILL would orphan it).
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    async fn emulator_state(&self) -> Result<Value, String> {
        self.emulator_get("state").await
    }

    /// GETs one of the emulator's control endpoints.
    async fn emulator_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        self.client
            .get(format!("{}/_emulator/{path}", self.emulator))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json::<T>()
            .await
            .map_err(|e| e.to_string())
    }

    /// Checks the emulator's request log: every effect happened once however many
    /// requests failed and were retried. Returns a one-line summary.
    async fn effects_once(
        &self,
        jobs_expected: usize,
        restored: &[String],
    ) -> Result<String, String> {
        let log: Vec<Value> = self.emulator_get("requests").await?;
        let ok = |r: &&Value| {
            r["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
        };
        let injected = log
            .iter()
            .filter(|r| matches!(r["status"].as_u64(), Some(429 | 500 | 503 | 504)))
            .count();
        // Counted from the emulator's state: a create whose answer was lost took effect too.
        let jobs: usize = self.emulator_state().await?["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["jobs"].as_array().map_or(0, Vec::len))
            .sum();
        if jobs != jobs_expected {
            return Err(format!(
                "{jobs} fine-tuning jobs were created, not {jobs_expected}"
            ));
        }
        let mut puts: std::collections::BTreeMap<String, usize> = Default::default();
        for r in log.iter().filter(ok).filter(|r| r["method"] == "PUT") {
            let path = r["path"]
                .as_str()
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap_or("");
            if path.contains("/deployments/") {
                *puts.entry(path.to_owned()).or_default() += 1;
            }
        }
        for (path, n) in &puts {
            // The deployment deleted behind the pipeline's back is put back once by KeepWarm.
            let want = if restored.iter().any(|r| path.ends_with(r.as_str())) {
                2
            } else {
                1
            };
            if *n != want {
                return Err(format!("deployment {path} was created {n} times"));
            }
        }
        Ok(format!(
            "{} Azure OpenAI requests, {injected} failed by injection and retried; {jobs} jobs, {} deployment calls, each once",
            log.len(),
            puts.values().sum::<usize>()
        ))
    }

    async fn control(&self, path: &str, body: Value) -> Result<Value, String> {
        let r = self
            .client
            .post(format!("{}/_emulator/{path}", self.emulator))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        r.json().await.map_err(|e| e.to_string())
    }

    async fn run_timer(&self, function: &str) -> Result<(), String> {
        let r = self
            .client
            .post(format!("{}/admin/functions/{function}", self.http))
            .json(&json!({"input": ""}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() == 202 {
            Ok(())
        } else {
            Err(format!("running {function} answered {}", r.status()))
        }
    }

    async fn run_doc(&self, id: &str) -> Result<Value, String> {
        let v = ops::status(&self.http, &format!("runs/{id}"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(v["run"].clone())
    }

    async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl AsyncFnMut() -> Result<bool, String>,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if check().await? {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("timed out waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Runs the demo; `Err` names the step that did not happen.
///
/// # Errors
/// The first step that failed.
pub async fn run(opts: DemoOptions) -> Result<(), String> {
    let started = Instant::now();
    let _ = STARTED.set(started);
    if !opts.app.join("host.json").is_file() {
        return Err(format!(
            "{} has no host.json: run `fthub demo` from the repository root (or pass --app)",
            opts.app.display()
        ));
    }
    let temp = tempdir_path();
    let home = opts.home.clone().unwrap_or(temp);
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    crate::commands::outln!("fthub demo — state in {}", home.display());

    step(
        1,
        "Starting fthub dev: handler, Functions host stand-in, local bus and storage, Azure OpenAI emulator",
    );
    let dev = Dev::start(&opts.app, &home).await?;
    let result = story(&dev, &opts, &home, started).await;
    dev.stop().await;
    result
}

async fn story(dev: &Dev, opts: &DemoOptions, home: &Path, started: Instant) -> Result<(), String> {
    dev.control("timings", json!({"file_processing_ms": 300, "job_queue_ms": 300, "job_training_ms": opts.training_seconds * 1000, "deployment_ms": 300, "hang_ms": 300})).await?;
    if opts.faults > 0.0 {
        let state = dev.emulator_state().await?;
        let share = opts.faults / 3.0;
        for a in state["accounts"].as_array().into_iter().flatten() {
            dev.control("faults", json!({"account": a["name"], "rate_429": share, "rate_500": share, "rate_timeout": share, "rate_lost_create": share, "retry_after_ms": 100})).await?;
        }
        crate::commands::outln!(
            "    injecting faults on every account: {:.0}% of Azure OpenAI requests fail (429, 500, timeout), and as many creates take effect with their answer lost",
            opts.faults * 100.0
        );
    }
    crate::commands::outln!(
        "    HTTP functions at {}/api/ · emulator at {}",
        dev.http,
        dev.emulator
    );

    step(
        2,
        "A data scientist submits samples/classification (train + held-out eval + manifest)",
    );
    let sample = opts.app.join("samples/classification");
    let store = crate::adapters::local::blob::FsBlobStore::new(home.join("storage"));
    let written = crate::commands::submit::submit(
        &store,
        &sample,
        "support-routing",
        "2026-11-v1",
        "data-scientist",
    )
    .await
    .map_err(|e| e.to_string())?;
    crate::commands::outln!("    uploaded {}", written.join(", "));

    step(
        3,
        "DatasetArrived queues the submission; ValidateSubmission validates it and the job is submitted to the Hub",
    );
    let mut run_id = String::new();
    dev.wait_for(
        "the run to start training",
        Duration::from_secs(90),
        async || {
            let v = ops::status(&dev.http, "runs")
                .await
                .map_err(|e| e.to_string())?;
            if let Some(r) = v["runs"].as_array().and_then(|a| a.first()) {
                run_id = r["id"].as_str().unwrap_or_default().to_owned();
                return match r["stage"].as_str() {
                    Some("training") => Ok(true),
                    Some("rejected") => Err("the sample was rejected by validation".into()),
                    _ => Ok(false),
                };
            }
            Ok(false)
        },
    )
    .await?;
    let run = dev.run_doc(&run_id).await?;
    crate::commands::outln!(
        "    run {run_id}: {} valid training examples, {} tokens, job {}",
        run["validation"]["training_examples"],
        run["validation"]["training_tokens"],
        run["job_id"].as_str().unwrap_or("?")
    );
    crate::commands::outln!(
        "    validation report: {}/storage/reports/{run_id}/validation.md",
        home.display()
    );

    step(
        4,
        "TrainingMonitor follows the job until it succeeds and records the loss curve",
    );
    let mut last_status = String::new();
    dev.wait_for("training to finish", Duration::from_secs(120), async || {
        dev.run_timer("TrainingMonitor").await?;
        let r = dev.run_doc(&run_id).await?;
        let status = r["job_status"].as_str().unwrap_or("pending").to_owned();
        if status != last_status {
            crate::commands::outln!("    job status: {status}");
            last_status = status;
        }
        match r["stage"].as_str() {
            Some("training") => Ok(false),
            Some("training_failed") => Err("training failed".into()),
            _ => Ok(true),
        }
    })
    .await?;
    let run = dev.run_doc(&run_id).await?;
    crate::commands::outln!(
        "    model {} · {} steps, loss {:.3} → {:.3}",
        run["fine_tuned_model"].as_str().unwrap_or("?"),
        run["metrics"]["steps"],
        run["metrics"]["first_train_loss"].as_f64().unwrap_or(0.0),
        run["metrics"]["final_train_loss"].as_f64().unwrap_or(0.0)
    );

    step(
        5,
        "EvaluateCandidate scores the candidate against the base model on the held-out set",
    );
    dev.wait_for("the evaluation", Duration::from_secs(120), async || {
        let r = dev.run_doc(&run_id).await?;
        match r["stage"].as_str() {
            Some("evaluating") => Ok(false),
            Some("evaluation_failed") => Err(format!(
                "the candidate failed evaluation: {}",
                r["evaluation"]["reasons"]
            )),
            _ => Ok(true),
        }
    })
    .await?;
    let run = dev.run_doc(&run_id).await?;
    crate::commands::outln!(
        "    candidate {:.2} vs baseline {:.2} → passed · report: {}/storage/reports/{run_id}/evaluation.md",
        run["evaluation"]["score"].as_f64().unwrap_or(0.0),
        run["evaluation"]["baseline_score"].as_f64().unwrap_or(0.0),
        home.display()
    );

    step(
        6,
        "PromoteOnEvaluation deploys to Dev in two regions and smoke-tests each",
    );
    dev.wait_for("Dev", Duration::from_secs(120), async || {
        Ok(dev.run_doc(&run_id).await?["stage"] == "dev")
    })
    .await?;
    print_regions(&dev.run_doc(&run_id).await?, "dev");

    let keys = opts.app.join("samples/keys");
    step(
        7,
        "quality-lead signs a Test approval; ApplyApproval verifies it and promotes",
    );
    approve_and_wait(
        dev,
        home,
        &keys,
        &run_id,
        "test",
        "quality-lead",
        "eval passed, Dev smoke tests green",
    )
    .await?;
    print_regions(&dev.run_doc(&run_id).await?, "test");

    step(
        8,
        "A forged Prod approval (signed with another key in release-manager's name) is refused and audited",
    );
    crate::commands::approve::sign_and_publish(
        &ops::Publisher::Local(crate::adapters::local::bus::LocalBus::new(home.join("bus"))),
        &run_id,
        "prod",
        Decision::Approve,
        "release-manager",
        &keys.join("intruder.key"),
        "ship it",
    )
    .await
    .map_err(|e| e.to_string())?;
    dev.wait_for("the refusal", Duration::from_secs(60), async || {
        let r = dev.run_doc(&run_id).await?;
        Ok(r["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|t| t["to"] == "approval_refused")))
    })
    .await?;
    let run = dev.run_doc(&run_id).await?;
    let refusal = run["history"]
        .as_array()
        .and_then(|h| h.iter().rev().find(|t| t["to"] == "approval_refused"))
        .cloned()
        .unwrap_or_default();
    crate::commands::outln!("    refused: {}", refusal["detail"].as_str().unwrap_or(""));
    if run["stage"] != "test" {
        return Err("the forged approval moved the run".into());
    }

    step(
        9,
        "release-manager signs the Prod approval: Prod in two regions, one in another tenant",
    );
    approve_and_wait(
        dev,
        home,
        &keys,
        &run_id,
        "prod",
        "release-manager",
        "CAB approved",
    )
    .await?;
    print_regions(&dev.run_doc(&run_id).await?, "prod");

    step(
        10,
        "A second line of business, claims-triage, shares the estate: its own run, its own baseline, Dev then Test",
    );
    let second = submit_and_reach_dev(dev, opts, home, "claims-triage", "samples/triage").await?;
    let run2 = dev.run_doc(&second).await?;
    crate::commands::outln!(
        "    run {second}: candidate {:.2} vs its own baselines {:.2} (support-routing's Prod model is not one of them)",
        run2["evaluation"]["score"].as_f64().unwrap_or(0.0),
        run2["evaluation"]["baseline_score"].as_f64().unwrap_or(0.0),
    );
    print_regions(&run2, "dev");
    approve_and_wait(
        dev,
        home,
        &keys,
        &second,
        "test",
        "quality-lead",
        "claims desk signed off",
    )
    .await?;
    print_regions(&dev.run_doc(&second).await?, "test");
    let projects = ops::status(&dev.http, "projects")
        .await
        .map_err(|e| e.to_string())?;
    for p in projects["projects"].as_array().into_iter().flatten() {
        let serves: Vec<String> = ["dev", "test", "prod"]
            .iter()
            .filter(|e| !p["current"][**e].is_null())
            .map(|e| (*e).to_owned())
            .collect();
        crate::commands::outln!(
            "    project {} ({}) serves in {}",
            p["name"].as_str().unwrap_or("?"),
            p["deployment"].as_str().unwrap_or("?"),
            serves.join(", ")
        );
    }
    if dev.run_doc(&run_id).await?["environments"]["prod"]["status"] != "healthy" {
        return Err("the first project stopped serving in Prod".into());
    }

    step(
        11,
        "16 emulated days of keepalive; on day 8 someone deletes one deployment of each project",
    );
    let deleted = [
        ("dev-eastus2", "ft-support-routing"),
        ("test-northcentralus", "ft-claims-triage"),
    ];
    for day in [4, 8, 12, 16] {
        dev.control("clock", json!({"advance_days": 4})).await?;
        if day == 8 {
            for (account, deployment) in deleted {
                delete_behind_the_back(dev, account, deployment).await?;
                crate::commands::outln!(
                    "    day 8: {account}/{deployment} deleted behind the pipeline's back"
                );
            }
        }
        dev.run_timer("KeepWarm").await?;
        let (healthy, _) = deployments(dev).await?;
        crate::commands::outln!(
            "    day {day}: keepalive pinged every deployment of both projects, {healthy}/10 healthy"
        );
    }
    let (_, restorations) = deployments(dev).await?;
    for (account, deployment) in deleted {
        let n = restorations
            .get(&format!("{account}/{deployment}"))
            .copied()
            .unwrap_or(0);
        if n != 1 {
            return Err(format!(
                "KeepWarm should have restored {account}/{deployment} once, saw {n}"
            ));
        }
    }
    let state: Value = dev.emulator_state().await?;
    let alive = state["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            a["deployments"].as_array().map_or(0, |d| {
                d.iter()
                    .filter(|x| x["name"].as_str().is_some_and(|n| n.starts_with("ft-")))
                    .count()
            })
        })
        .sum::<usize>();
    if alive != 10 {
        return Err(format!("after 16 days {alive}/10 deployments are alive"));
    }
    crate::commands::outln!(
        "    after 16 days all 10 deployments of both projects are alive; both deleted ones were restored from their Hub models"
    );

    step(12, "Done");
    let mut restored = Vec::new();
    for (account, deployment) in deleted {
        restored.push(format!(
            "{}/deployments/{deployment}",
            account_id(dev, account).await?
        ));
    }
    crate::commands::outln!("    {}", dev.effects_once(2, &restored).await?);
    let endpoints = ops::status(&dev.http, "endpoints")
        .await
        .map_err(|e| e.to_string())?;
    let pools: Vec<String> = endpoints["endpoints"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(project, envs)| {
            let per_env: Vec<String> = envs
                .as_object()
                .into_iter()
                .flatten()
                .map(|(env, list)| format!("{env} {}", list.as_array().map_or(0, Vec::len)))
                .collect();
            format!("{project}: {}", per_env.join(", "))
        })
        .collect();
    crate::commands::outln!(
        "    healthy endpoints (a gateway backend pool per project and environment): {}",
        pools.join("; ")
    );
    crate::commands::outln!(
        "    audit trail: {}/api/status/audit/{run_id} · reports in {}/storage/reports/{run_id}/",
        dev.http,
        home.display()
    );
    crate::commands::outln!(
        "\nAll steps passed in {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Submits `sample` as `project` and waits until its run serves in Dev; returns the run id.
async fn submit_and_reach_dev(
    dev: &Dev,
    opts: &DemoOptions,
    home: &Path,
    project: &str,
    sample: &str,
) -> Result<String, String> {
    let store = crate::adapters::local::blob::FsBlobStore::new(home.join("storage"));
    crate::commands::submit::submit(
        &store,
        &opts.app.join(sample),
        project,
        "2026-12-v1",
        "data-scientist",
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut run_id = String::new();
    dev.wait_for(
        &format!("{project} in Dev"),
        Duration::from_secs(240),
        async || {
            let v = ops::status(&dev.http, &format!("runs?project={project}"))
                .await
                .map_err(|e| e.to_string())?;
            let Some(r) = v["runs"].as_array().and_then(|a| a.first()) else {
                return Ok(false);
            };
            run_id = r["id"].as_str().unwrap_or_default().to_owned();
            match r["stage"].as_str() {
                Some("dev") => Ok(true),
                Some("training") => {
                    dev.run_timer("TrainingMonitor").await?;
                    Ok(false)
                }
                Some(s @ ("rejected" | "training_failed" | "evaluation_failed" | "cancelled")) => {
                    Err(format!("{project}'s run ended {s}"))
                }
                _ => Ok(false),
            }
        },
    )
    .await?;
    Ok(run_id)
}

/// Deletes a deployment as someone outside fthub would, retried through injected faults.
async fn delete_behind_the_back(dev: &Dev, account: &str, deployment: &str) -> Result<(), String> {
    let id = account_id(dev, account).await?;
    for _ in 0..20 {
        let r = dev
            .client
            .delete(format!(
                "{}/arm{id}/deployments/{deployment}?api-version=2024-10-01",
                dev.emulator
            ))
            .bearer_auth("someone")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().is_success() {
            return Ok(());
        }
    }
    Err(format!("could not delete {account}/{deployment}"))
}

/// Healthy managed deployments, and restorations by `account/deployment`, as the
/// environments view shows them.
async fn deployments(
    dev: &Dev,
) -> Result<(usize, std::collections::BTreeMap<String, u64>), String> {
    let inv = ops::status(&dev.http, "environments")
        .await
        .map_err(|e| e.to_string())?;
    let mut healthy = 0;
    let mut restorations = std::collections::BTreeMap::new();
    for spoke in inv["environments"]
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .flat_map(|e| e.as_object().into_iter().flat_map(|r| r.values()))
    {
        for d in spoke["deployments"].as_array().into_iter().flatten() {
            if d["health"] == "healthy" || d["health"] == "restored" {
                healthy += 1;
            }
            restorations.insert(
                format!(
                    "{}/{}",
                    spoke["account"].as_str().unwrap_or(""),
                    d["deployment"].as_str().unwrap_or("")
                ),
                d["restorations"].as_u64().unwrap_or(0),
            );
        }
    }
    Ok((healthy, restorations))
}

async fn account_id(dev: &Dev, account: &str) -> Result<String, String> {
    let state = dev.emulator_state().await?;
    Ok(state["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == account))
        .map(|x| x["resource_id"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default())
}

/// Signs an approval with the approver's demo key and waits until the run reaches `env`.
async fn approve_and_wait(
    dev: &Dev,
    home: &Path,
    keys: &Path,
    run_id: &str,
    env: &str,
    approver: &str,
    reason: &str,
) -> Result<(), String> {
    let key = keys.join(format!("{approver}.key"));
    let bus = ops::Publisher::Local(crate::adapters::local::bus::LocalBus::new(home.join("bus")));
    crate::commands::approve::sign_and_publish(
        &bus,
        run_id,
        env,
        Decision::Approve,
        approver,
        &key,
        reason,
    )
    .await
    .map_err(|e| e.to_string())?;
    dev.wait_for(env, Duration::from_secs(120), async || {
        Ok(dev.run_doc(run_id).await?["stage"] == env)
    })
    .await
}

fn print_regions(run: &Value, env: &str) {
    for (region, r) in run["environments"][env]["regions"]
        .as_object()
        .into_iter()
        .flatten()
    {
        crate::commands::outln!(
            "    {env}/{region}: {} on {} ({})",
            r["deployment"].as_str().unwrap_or(""),
            r["account"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or("")
        );
    }
}

fn tempdir_path() -> PathBuf {
    std::env::temp_dir().join(format!("fthub-demo-{}", uuid::Uuid::new_v4().simple()))
}

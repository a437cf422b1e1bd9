//! The emulator's state: accounts, files, jobs, deployments, the emulated clock, faults
//! and the request log. All rules live here, synchronously, under one lock.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::azure::{self, sku};
use crate::training::{self, Learned};
use aoai_facts::tokens::Encoding;

/// Azure's per-file and per-resource limits for fine-tuning files.
pub const MAX_FILE_BYTES: usize = 512 * 1024 * 1024;
/// Files per resource.
pub const MAX_FILES: usize = 50;
/// Total bytes of files per resource.
pub const MAX_TOTAL_BYTES: usize = 1024 * 1024 * 1024;
/// Queued jobs per resource.
pub const MAX_QUEUED_JOBS: usize = 20;
/// Fine-tuned deployments per resource.
pub const MAX_FT_DEPLOYMENTS: usize = 5;
/// The inactivity window after which a fine-tuned deployment is deleted.
pub const INACTIVITY_DAYS: i64 = 15;

/// One emulated Azure OpenAI account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountConfig {
    /// Account name (the data plane lives under `/{name}/openai`).
    pub name: String,
    /// Azure region.
    pub region: String,
    /// Subscription id.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Entra tenant.
    pub tenant: String,
}

impl AccountConfig {
    /// The ARM resource id.
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

/// Durations of the emulated asynchronous work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    /// Upload → processed.
    pub file_processing_ms: u64,
    /// Job created → running (when the account has no running job).
    pub job_queue_ms: u64,
    /// Running → succeeded.
    pub job_training_ms: u64,
    /// Deployment PUT → Succeeded.
    pub deployment_ms: u64,
    /// Added to every inference call.
    pub inference_latency_ms: u64,
    /// How long an injected timeout hangs before the connection is dropped.
    pub hang_ms: u64,
    /// Items per page of ARM lists.
    pub arm_page_size: usize,
    /// Fine-tuned deployments per account (Azure: 5; benchmarks raise it).
    pub max_ft_deployments: usize,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            file_processing_ms: 1000,
            job_queue_ms: 1000,
            job_training_ms: 5000,
            deployment_ms: 1000,
            inference_latency_ms: 0,
            hang_ms: 65_000,
            arm_page_size: 50,
            max_ft_deployments: MAX_FT_DEPLOYMENTS,
        }
    }
}

/// Injected faults for an account (or a whole region).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Share of requests answered 429 (with `retry-after-ms`).
    pub rate_429: f64,
    /// Share answered 500.
    pub rate_500: f64,
    /// Share answered 503.
    pub rate_503: f64,
    /// Share that hang, then drop the connection.
    pub rate_timeout: f64,
    /// Share of creates (POST) that take effect but whose answer is lost: the emulator
    /// hangs for `hang_ms`, then answers 504, as a gateway that timed out on a backend that
    /// finished. A client that resends blindly creates twice.
    pub rate_lost_create: f64,
    /// `retry-after-ms` sent with injected 429s.
    pub retry_after_ms: u64,
    /// Every request fails with 503 (a region or account outage).
    pub outage: bool,
}

/// What a fault decision asks the HTTP layer to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Serve normally.
    None,
    /// Answer with this status (and `retry-after-ms` for 429).
    Status(u16, u64),
    /// Hang, then drop.
    Hang,
    /// Serve, then hang and answer 504 (the answer is lost).
    Lost,
}

/// A file.
#[derive(Debug, Clone)]
pub struct File {
    /// Id.
    pub id: String,
    /// Name.
    pub filename: String,
    /// Purpose.
    pub purpose: String,
    /// Content.
    pub bytes: Vec<u8>,
    /// Created.
    pub created: DateTime<Utc>,
    /// Why processing fails, decided at upload.
    pub problem: Option<String>,
}

/// A job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Id.
    pub id: String,
    /// Base model.
    pub model: String,
    /// Training file.
    pub training_file: String,
    /// Validation file.
    pub validation_file: Option<String>,
    /// Suffix.
    pub suffix: Option<String>,
    /// Seed.
    pub seed: i64,
    /// Epochs (resolved).
    pub n_epochs: u32,
    /// Batch size (resolved).
    pub batch_size: u32,
    /// Requested hyperparameters as sent.
    pub hyperparameters: Value,
    /// `pending, running, succeeded, failed, cancelled`.
    pub status: String,
    /// Created.
    pub created: DateTime<Utc>,
    /// Started.
    pub started: Option<DateTime<Utc>>,
    /// Finished.
    pub finished: Option<DateTime<Utc>>,
    /// Resulting model.
    pub fine_tuned_model: Option<String>,
    /// `results.csv` file id.
    pub result_file: Option<String>,
    /// Billable tokens.
    pub trained_tokens: Option<u64>,
    /// Events, oldest first.
    pub events: Vec<Value>,
    /// Checkpoints, newest first.
    pub checkpoints: Vec<Value>,
    /// Failure.
    pub error: Option<Value>,
    /// `method.type`: `supervised` or `dpo`.
    pub method: String,
    /// Why the training file does not fit the method (the job fails when it starts).
    pub format_problem: Option<String>,
    /// When it was paused (`paused`), to resume with the training time it had left.
    pub paused_at: Option<DateTime<Utc>>,
}

/// A deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Name.
    pub name: String,
    /// Model name as sent (a model, or a checkpoint's `ftchkpt-…` id).
    pub model: String,
    /// The model it serves: `model`, or the checkpoint's model for a checkpoint id.
    pub serves: String,
    /// Version.
    pub version: String,
    /// SKU name as sent.
    pub sku: String,
    /// Capacity.
    pub capacity: u32,
    /// Tags.
    pub tags: Value,
    /// `source`.
    pub source: Option<String>,
    /// `sourceAccount`.
    pub source_account: Option<String>,
    /// Created (or last updated).
    pub created: DateTime<Utc>,
    /// Provisioned.
    pub ready_at: DateTime<Utc>,
    /// Last successful chat completion.
    pub last_used: Option<DateTime<Utc>>,
    /// Request times and token estimates in the current minute window.
    pub window: VecDeque<(DateTime<Utc>, u64)>,
    /// Set while a DELETE is under way: the deployment is gone from then on.
    pub deleting_until: Option<DateTime<Utc>>,
}

impl Deployment {
    /// Fine-tuned models (and their checkpoints) carry `.ft-` in their name.
    pub fn is_fine_tuned(&self) -> bool {
        self.serves.contains(".ft-")
    }
    /// `Creating` until ready, then `Succeeded`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.deleting_until.is_some() {
            "Deleting"
        } else if now >= self.ready_at {
            "Succeeded"
        } else {
            "Creating"
        }
    }
}

/// A model an account trained.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// Base model.
    pub base: String,
    /// What it remembers.
    pub examples: Vec<Learned>,
}

/// One account's state.
#[derive(Debug, Clone)]
pub struct Account {
    /// Configuration.
    pub config: AccountConfig,
    /// Files by id.
    pub files: BTreeMap<String, File>,
    /// Jobs in creation order.
    pub jobs: Vec<Job>,
    /// Deployments by name.
    pub deployments: BTreeMap<String, Deployment>,
    /// Models trained here, and their checkpoints.
    pub models: HashMap<String, TrainedModel>,
    /// Large-file uploads (the Uploads API).
    pub uploads: BTreeMap<String, Upload>,
}

/// An entry of the request log.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// Emulated time.
    pub at: DateTime<Utc>,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Account, when the path names one.
    pub account: Option<String>,
    /// Status answered.
    pub status: u16,
    /// Whether the request carried `x-ms-authorization-auxiliary`.
    pub auxiliary: bool,
    /// How it authenticated: `api-key:` or `bearer:` and the first 16 hex digits of the
    /// secret's SHA-256 (so tests can tell which credential was used; never the secret).
    pub credential: String,
}

/// The whole emulated estate.
#[derive(Debug)]
pub struct World {
    /// Accounts by name.
    pub accounts: BTreeMap<String, Account>,
    /// Emulated clock offset from real time.
    pub offset: Duration,
    /// Timings.
    pub timings: Timings,
    /// Faults per account name.
    pub account_faults: HashMap<String, Faults>,
    /// Faults per region.
    pub region_faults: HashMap<String, Faults>,
    /// Request log (bounded).
    pub log: VecDeque<LogEntry>,
    /// Deployments removed by the 15-day and 24-hour rules: (account, name, reason).
    pub expired: Vec<(String, String, String)>,
    /// Pending ARM operations: id → (account, deployment).
    pub operations: HashMap<String, (String, String)>,
    /// Where Azure offers fine-tuned deployments (fthub's shipped table).
    pub availability: aoai_facts::availability::Availability,
    /// Model retirement dates set through the control API.
    pub retirements: HashMap<String, Retirement>,
    rng: fastrand::Rng,
}

/// An error answer: status, code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl World {
    /// A world with these accounts.
    pub fn new(accounts: Vec<AccountConfig>, timings: Timings, seed: u64) -> Self {
        Self {
            accounts: accounts
                .into_iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        Account {
                            config: c,
                            files: BTreeMap::new(),
                            jobs: Vec::new(),
                            deployments: BTreeMap::new(),
                            models: HashMap::new(),
                            uploads: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            offset: Duration::zero(),
            timings,
            availability: aoai_facts::availability::Availability::built_in(),
            retirements: HashMap::new(),
            account_faults: HashMap::new(),
            region_faults: HashMap::new(),
            log: VecDeque::new(),
            expired: Vec::new(),
            operations: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Emulated now.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    /// Moves the clock forward and applies everything that became due.
    pub fn advance(&mut self, by: Duration) {
        self.offset += by;
        self.tick();
    }

    fn ms(v: u64) -> Duration {
        Duration::milliseconds(v as i64)
    }

    /// Decides whether a request to `account` meets an injected fault.
    pub fn fault_for(&mut self, account: &str, create: bool) -> FaultAction {
        let region = self
            .accounts
            .get(account)
            .map(|a| a.config.region.clone())
            .unwrap_or_default();
        let faults: Vec<Faults> = [
            self.account_faults.get(account),
            self.region_faults.get(&region),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        for f in faults {
            if f.outage {
                return FaultAction::Status(503, 0);
            }
            let r = self.rng.f64();
            let mut acc = 0.0;
            for (p, action) in [
                (
                    f.rate_429,
                    FaultAction::Status(429, f.retry_after_ms.max(1)),
                ),
                (f.rate_500, FaultAction::Status(500, 0)),
                (f.rate_503, FaultAction::Status(503, 0)),
                (f.rate_timeout, FaultAction::Hang),
                (
                    if create { f.rate_lost_create } else { 0.0 },
                    FaultAction::Lost,
                ),
            ] {
                acc += p;
                if r < acc {
                    return action;
                }
            }
        }
        FaultAction::None
    }

    /// Applies due transitions: file processing, job scheduling and completion, and the
    /// deletion of idle fine-tuned (15 days) and developer-tier (24 hours) deployments.
    pub fn tick(&mut self) {
        let now = self.now();
        let t = self.timings;
        for account in self.accounts.values_mut() {
            // Jobs run one at a time per account, in creation order.
            loop {
                let mut changed = false;
                let running = account.jobs.iter().position(|j| j.status == "running");
                let resuming = account.jobs.iter().position(|j| j.status == "resuming");
                if let (None, Some(i)) = (running, resuming) {
                    // A resumed job trains for the time it had left when it was paused.
                    let job = &mut account.jobs[i];
                    let paused = job.paused_at.take().unwrap_or(now);
                    let done = paused - job.started.unwrap_or(paused);
                    job.started = Some(now - done);
                    job.status = "running".into();
                    job.events
                        .push(event(now.timestamp(), "info", "Job resumed."));
                    changed = true;
                } else if let Some(i) = running {
                    let started = account.jobs[i].started.unwrap_or(now);
                    let end = started + Self::ms(t.job_training_ms);
                    if now >= end {
                        finish_job(account, i, end);
                        changed = true;
                    }
                } else if let Some(i) = account.jobs.iter().position(|j| j.status == "pending") {
                    let free_at = account
                        .jobs
                        .iter()
                        .filter_map(|j| j.finished)
                        .max()
                        .unwrap_or(account.jobs[i].created);
                    let start = (account.jobs[i].created + Self::ms(t.job_queue_ms)).max(free_at);
                    if now >= start
                        && let Some(problem) = account.jobs[i].format_problem.clone()
                    {
                        let job = &mut account.jobs[i];
                        job.status = "failed".into();
                        job.finished = Some(start);
                        job.error = Some(
                            json!({"code": "invalidTrainingFile", "message": problem, "param": "training_file"}),
                        );
                        job.events.push(event(start.timestamp(), "error", &problem));
                        changed = true;
                    } else if now >= start {
                        let job = &mut account.jobs[i];
                        job.status = "running".into();
                        job.started = Some(start);
                        let ts = start.timestamp();
                        job.events.push(event(ts, "info", "Job started."));
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            account
                .deployments
                .retain(|_, d| d.deleting_until.is_none_or(|t| t > now));
            let name = account.config.name.clone();
            let expired: Vec<(String, String)> = account
                .deployments
                .values()
                .filter_map(|d| {
                    if d.sku.eq_ignore_ascii_case(sku::DEVELOPER)
                        && now - d.created > Duration::hours(24)
                    {
                        Some((
                            d.name.clone(),
                            "developer tier lifetime of 24 hours".to_owned(),
                        ))
                    } else if d.is_fine_tuned()
                        && !d.sku.eq_ignore_ascii_case(sku::DEVELOPER)
                        && now - d.last_used.unwrap_or(d.ready_at) > Duration::days(INACTIVITY_DAYS)
                    {
                        Some((
                            d.name.clone(),
                            format!("no chat completion for more than {INACTIVITY_DAYS} days"),
                        ))
                    } else {
                        None
                    }
                })
                .collect();
            for (dep, why) in expired {
                account.deployments.remove(&dep);
                self.expired.push((name.clone(), dep, why));
            }
        }
    }

    /// Records a request.
    pub fn record(&mut self, entry: LogEntry) {
        if self.log.len() >= 10_000 {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }

    fn account_mut(&mut self, name: &str) -> Result<&mut Account, Refusal> {
        self.accounts.get_mut(name).ok_or_else(|| {
            refuse(
                404,
                "ResourceNotFound",
                format!("account {name} does not exist"),
            )
        })
    }
}

fn event(ts: i64, level: &str, message: &str) -> Value {
    json!({"object": "fine_tuning.job.event", "id": format!("ftevent-{}", hex_id()), "created_at": ts, "level": level, "message": message, "type": "message"})
}

/// A cursor page: the items after `after`, at most `limit` (1..=`max`), with `has_more`.
fn page(items: Vec<Value>, after: Option<&str>, limit: usize, max: usize) -> Value {
    let start = after
        .and_then(|a| {
            items
                .iter()
                .position(|i| i.get("id").and_then(Value::as_str) == Some(a))
                .map(|p| p + 1)
        })
        .unwrap_or(0);
    let limit = limit.clamp(1, max);
    let data: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + data.len() < items.len();
    json!({"object": "list", "data": data, "has_more": has_more})
}

mod chat;
mod deployments;
mod files;
mod jobs;
mod models;
mod uploads;

pub use models::Retirement;
pub use uploads::Upload;
#[cfg(test)]
mod tests;

use jobs::finish_job;

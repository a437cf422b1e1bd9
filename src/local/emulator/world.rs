//! The emulator's state: accounts, files, jobs, deployments, the emulated clock, faults
//! and the request log. All rules live here, synchronously, under one lock.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::training::{self, Learned};
use crate::domain::aoai::sku;
use crate::domain::validation::tokens::Encoding;

/// The first dated api-version that serves reasoning (o-series) models.
const O_SERIES_MIN_API_VERSION: &str = "2024-12-01-preview";

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
}

/// A deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Name.
    pub name: String,
    /// Model name.
    pub model: String,
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
    /// Fine-tuned models carry `.ft-` in their name.
    pub fn is_fine_tuned(&self) -> bool {
        self.model.contains(".ft-")
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
    /// Models trained here.
    pub models: HashMap<String, TrainedModel>,
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
    pub availability: crate::domain::availability::Availability,
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
                        },
                    )
                })
                .collect(),
            offset: Duration::zero(),
            timings,
            availability: crate::domain::availability::Availability::built_in(),
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
                if let Some(i) = running {
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

    /// Stores an uploaded or imported file.
    pub fn add_file(
        &mut self,
        account: &str,
        filename: &str,
        purpose: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, Refusal> {
        let now = self.now();
        let a = self.account_mut(account)?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(refuse(
                413,
                "fileTooLarge",
                "files for fine-tuning are at most 512 MB",
            ));
        }
        let total: usize = a.files.values().map(|f| f.bytes.len()).sum();
        if a.files.len() >= MAX_FILES || total + bytes.len() > MAX_TOTAL_BYTES {
            return Err(refuse(
                400,
                "quotaExceeded",
                "a resource holds at most 50 files and 1 GB of fine-tuning files",
            ));
        }
        let problem = if purpose == "fine-tune" {
            training::jsonl_problem(&bytes)
        } else {
            None
        };
        let f = File {
            id: format!("file-{}", hex_id()),
            filename: filename.into(),
            purpose: purpose.into(),
            bytes,
            created: now,
            problem,
        };
        let id = f.id.clone();
        a.files.insert(id.clone(), f);
        Ok(self.file_json(account, &id).unwrap_or(Value::Null))
    }

    /// A file's JSON.
    pub fn file_json(&self, account: &str, id: &str) -> Option<Value> {
        let f = self.accounts.get(account)?.files.get(id)?;
        let now = self.now();
        let done = f.created + Self::ms(self.timings.file_processing_ms);
        let (status, details) = if now >= done {
            match &f.problem {
                Some(p) => ("error", Some(format!("jsonlValidationFailed: {p}"))),
                None => ("processed", None),
            }
        } else if now >= f.created + Self::ms(self.timings.file_processing_ms / 2) {
            ("running", None)
        } else {
            ("pending", None)
        };
        Some(
            json!({"object": "file", "id": f.id, "purpose": f.purpose, "filename": f.filename, "bytes": f.bytes.len(),
                    "created_at": f.created.timestamp(), "status": status, "status_details": details}),
        )
    }

    /// Files newest first (or oldest, `ascending`), of one purpose if given, paged by
    /// `after` (a file id) and `limit` (up to 10,000, the v1 surface's bound).
    pub fn files_page(
        &self,
        account: &str,
        purpose: Option<&str>,
        after: Option<&str>,
        limit: usize,
        ascending: bool,
    ) -> Option<Value> {
        let a = self.accounts.get(account)?;
        let mut files: Vec<&File> = a
            .files
            .values()
            .filter(|f| purpose.is_none_or(|p| f.purpose == p))
            .collect();
        files.sort_by(|x, y| (x.created, &x.id).cmp(&(y.created, &y.id)));
        if !ascending {
            files.reverse();
        }
        let items = files
            .iter()
            .filter_map(|f| self.file_json(account, &f.id))
            .collect();
        let mut v = page(items, after, limit, 10_000);
        let ids = |i: usize| v["data"].get(i).and_then(|f| f.get("id")).cloned();
        let (first, last) = (
            ids(0),
            v["data"]
                .as_array()
                .and_then(|d| d.len().checked_sub(1))
                .and_then(ids),
        );
        v["first_id"] = first.unwrap_or(Value::Null);
        v["last_id"] = last.unwrap_or(Value::Null);
        Some(v)
    }

    /// A file's content.
    pub fn file_content(&self, account: &str, id: &str) -> Option<Vec<u8>> {
        Some(self.accounts.get(account)?.files.get(id)?.bytes.clone())
    }

    /// Creates a job.
    pub fn create_job(
        &mut self,
        account: &str,
        body: &Value,
        surface: &str,
    ) -> Result<Value, Refusal> {
        let now = self.now();
        // The GA surface's job-create body has no `method` (azure-rest-api-specs
        // authoring/stable/2024-10-21): preference training needs a preview or /openai/v1.
        let method_surface = surface == "v1" || surface.contains("preview");
        if body.get("method").is_some() && !method_surface {
            return Err(refuse(
                400,
                "invalidPayload",
                format!("Unrecognized request argument supplied: method (api-version {surface})"),
            ));
        }
        let method = body
            .pointer("/method/type")
            .and_then(Value::as_str)
            .unwrap_or("supervised")
            .to_owned();
        let done_processing = Self::ms(self.timings.file_processing_ms);
        let a = self.account_mut(account)?;
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let model = s("model").ok_or_else(|| refuse(400, "invalidPayload", "model is required"))?;
        let training_file = s("training_file")
            .ok_or_else(|| refuse(400, "invalidPayload", "training_file is required"))?;
        for id in [Some(&training_file), s("validation_file").as_ref()]
            .into_iter()
            .flatten()
        {
            let f = a.files.get(id).ok_or_else(|| {
                refuse(400, "invalidPayload", format!("file {id} does not exist"))
            })?;
            if now < f.created + done_processing {
                return Err(refuse(
                    400,
                    "invalidPayload",
                    format!("file {id} is not processed yet"),
                ));
            }
            if let Some(p) = &f.problem {
                return Err(refuse(
                    400,
                    "invalidPayload",
                    format!("file {id} failed validation: {p}"),
                ));
            }
        }
        if let Some(suffix) = s("suffix") {
            crate::domain::aoai::check_suffix(&suffix)
                .map_err(|e| refuse(400, "invalidPayload", e))?;
        }
        // Base model, or a model this account fine-tuned (continued training).
        let base_known = crate::domain::validation::tokens::model_spec(&model).is_some();
        if !base_known && !a.models.contains_key(&model) {
            return Err(refuse(
                400,
                "invalidPayload",
                format!("model {model} cannot be fine-tuned here"),
            ));
        }
        if a.jobs.iter().filter(|j| j.status == "pending").count() >= MAX_QUEUED_JOBS {
            return Err(refuse(
                429,
                "tooManyRequests",
                "at most 20 jobs may be queued per resource",
            ));
        }
        let hp = body
            .get("hyperparameters")
            .or_else(|| body.pointer("/method/supervised/hyperparameters"))
            .or_else(|| body.pointer("/method/dpo/hyperparameters"))
            .cloned()
            .unwrap_or(json!({}));
        // A preference job on a file that is not preference data fails while its files are
        // validated, naming the line (Azure documents `input`, `preferred_output` and
        // `non_preferred_output` as required on every line).
        let format_problem = (method == "dpo")
            .then(|| training::dpo_problem(&a.files[&training_file].bytes))
            .flatten();
        let n = training::parse(
            &a.files[&training_file].bytes,
            training::encoding_of(&model),
        )
        .tokens
        .len() as u64;
        let n_epochs = hp
            .get("n_epochs")
            .and_then(Value::as_u64)
            .filter(|e| *e > 0)
            .map_or_else(
                || crate::domain::validation::tokens::default_epochs(n) as u32,
                |e| e as u32,
            );
        let batch_size = hp
            .get("batch_size")
            .and_then(Value::as_u64)
            .filter(|b| *b > 0)
            .unwrap_or(1) as u32;
        let job = Job {
            id: format!("ftjob-{}", hex_id()),
            model,
            training_file,
            validation_file: s("validation_file"),
            suffix: s("suffix"),
            seed: body.get("seed").and_then(Value::as_i64).unwrap_or(42),
            n_epochs,
            batch_size,
            hyperparameters: hp,
            status: "pending".into(),
            created: now,
            started: None,
            finished: None,
            fine_tuned_model: None,
            result_file: None,
            trained_tokens: None,
            events: vec![event(
                now.timestamp(),
                "info",
                "Job enqueued. Waiting for jobs ahead to complete.",
            )],
            checkpoints: Vec::new(),
            error: None,
            method,
            format_problem,
        };
        let id = job.id.clone();
        a.jobs.push(job);
        Ok(self.job_json(account, &id).unwrap_or(Value::Null))
    }

    /// A job's JSON.
    pub fn job_json(&self, account: &str, id: &str) -> Option<Value> {
        let j = self
            .accounts
            .get(account)?
            .jobs
            .iter()
            .find(|j| j.id == id)?;
        Some(job_value(j))
    }

    /// Jobs newest first, paged by `after` (a job id) and `limit`.
    pub fn list_jobs(&self, account: &str, after: Option<&str>, limit: usize) -> Option<Value> {
        let a = self.accounts.get(account)?;
        let all: Vec<Value> = a.jobs.iter().rev().map(job_value).collect();
        Some(page(all, after, limit, 100))
    }

    /// Cancels a job that has not finished.
    pub fn cancel_job(&mut self, account: &str, id: &str) -> Result<Value, Refusal> {
        let now = self.now();
        let a = self.account_mut(account)?;
        let j = a
            .jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| refuse(404, "notFound", format!("job {id} not found")))?;
        if matches!(j.status.as_str(), "succeeded" | "failed" | "cancelled") {
            return Err(refuse(
                409,
                "unexpectedEntityState",
                format!("job {id} is already {}", j.status),
            ));
        }
        j.status = "cancelled".into();
        j.finished = Some(now);
        j.events
            .push(event(now.timestamp(), "info", "Job cancelled."));
        Ok(job_value(j))
    }

    /// Events (newest first) or checkpoints of a job, paged.
    pub fn job_list(
        &self,
        account: &str,
        id: &str,
        checkpoints: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Value> {
        let j = self
            .accounts
            .get(account)?
            .jobs
            .iter()
            .find(|j| j.id == id)?;
        let items = if checkpoints {
            j.checkpoints.clone()
        } else {
            j.events.iter().rev().cloned().collect()
        };
        Some(page(items, after, limit, 100))
    }

    /// Creates or updates a deployment, enforcing the cross-subscription and cross-tenant
    /// rules. Returns (created, body, operation id).
    pub fn put_deployment(
        &mut self,
        account: &str,
        name: &str,
        body: &Value,
        auxiliary: &[Option<String>],
    ) -> Result<(bool, Value, String), Refusal> {
        let now = self.now();
        let ready = now + Self::ms(self.timings.deployment_ms);
        let max_ft = self.timings.max_ft_deployments;
        let dest = self.accounts.get(account).ok_or_else(|| {
            refuse(
                404,
                "ResourceNotFound",
                format!("account {account} does not exist"),
            )
        })?;
        let dest_tenant = dest.config.tenant.clone();
        let model = body
            .pointer("/properties/model")
            .cloned()
            .unwrap_or(Value::Null);
        let name_of = |k: &str| model.get(k).and_then(Value::as_str).map(str::to_owned);
        let model_name = name_of("name").ok_or_else(|| {
            refuse(
                400,
                "InvalidResourceProperties",
                "properties.model.name is required",
            )
        })?;
        let (source, source_account) = (name_of("source"), name_of("sourceAccount"));
        let sku_name = body
            .pointer("/sku/name")
            .and_then(Value::as_str)
            .unwrap_or("Standard")
            .to_owned();
        if ![sku::STANDARD, sku::GLOBAL_STANDARD, sku::DEVELOPER]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&sku_name))
        {
            return Err(refuse(
                400,
                "InvalidSkuName",
                format!("sku {sku_name} is not available for fine-tuned models here"),
            ));
        }
        let capacity = body
            .pointer("/sku/capacity")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1) as u32;
        if model_name.contains(".ft-") {
            let owner_id = source.clone().or_else(|| source_account.clone());
            let owner = match &owner_id {
                Some(id) => self
                    .accounts
                    .values()
                    .find(|a| {
                        a.config
                            .resource_id()
                            .eq_ignore_ascii_case(id.trim_end_matches('/'))
                    })
                    .ok_or_else(|| {
                        refuse(
                            400,
                            "InvalidResourceProperties",
                            format!("source account {id} does not exist"),
                        )
                    })?,
                None => self
                    .accounts
                    .get(account)
                    .ok_or_else(|| refuse(404, "ResourceNotFound", "no account"))?,
            };
            if !owner.models.contains_key(&model_name) {
                return Err(refuse(
                    400,
                    "DeploymentModelNotFound",
                    format!(
                        "model {model_name} does not exist in account {}",
                        owner.config.name
                    ),
                ));
            }
            // Azure offers fine-tuned deployments only where its availability table says.
            let region = self
                .accounts
                .get(account)
                .map(|a| a.config.region.clone())
                .unwrap_or_default();
            if let Err(e) = self.availability.check(&model_name, &sku_name, &region) {
                return Err(refuse(400, "InvalidResourceProperties", e.to_string()));
            }
            if owner.config.tenant != dest_tenant {
                if source.is_some() {
                    return Err(refuse(
                        403,
                        "LinkedAuthorizationFailed",
                        "the source is in another tenant: use sourceAccount with an auxiliary token",
                    ));
                }
                if auxiliary.is_empty() {
                    return Err(refuse(
                        401,
                        "LinkedAuthorizationFailed",
                        "cross-tenant deployment needs x-ms-authorization-auxiliary with a token of the source tenant",
                    ));
                }
                // A token whose tenant is known must be the source's (an opaque test token
                // stands for any tenant).
                let owner_tenant = &owner.config.tenant;
                if auxiliary
                    .iter()
                    .all(|t| t.as_ref().is_some_and(|t| t != owner_tenant))
                {
                    return Err(refuse(
                        401,
                        "InvalidAuthenticationTokenTenant",
                        format!(
                            "the auxiliary token is from the wrong issuer: it must be a token of the source account's tenant {owner_tenant}"
                        ),
                    ));
                }
            }
        }
        let a = self.account_mut(account)?;
        let ft_others = a
            .deployments
            .values()
            .filter(|d| d.is_fine_tuned() && d.name != name)
            .count();
        if model_name.contains(".ft-") && ft_others >= max_ft {
            return Err(refuse(
                400,
                "QuotaExceeded",
                "an account holds at most 5 fine-tuned deployments",
            ));
        }
        if a.deployments
            .get(name)
            .is_some_and(|d| d.deleting_until.is_some())
        {
            return Err(refuse(
                409,
                "RequestConflict",
                format!(
                    "Another operation is being performed on the parent resource 'deployments/{name}': it is being deleted. Please wait for it to complete."
                ),
            ));
        }
        let created = !a.deployments.contains_key(name);
        let previous_use = a.deployments.get(name).and_then(|d| d.last_used);
        a.deployments.insert(
            name.to_owned(),
            Deployment {
                name: name.to_owned(),
                model: model_name,
                version: name_of("version").unwrap_or_else(|| "1".into()),
                sku: sku_name,
                capacity,
                tags: body.get("tags").cloned().unwrap_or(json!({})),
                source,
                source_account,
                created: now,
                ready_at: ready,
                last_used: previous_use,
                window: VecDeque::new(),
                deleting_until: None,
            },
        );
        let op = hex_id();
        self.operations
            .insert(op.clone(), (account.to_owned(), name.to_owned()));
        Ok((
            created,
            self.deployment_json(account, name).unwrap_or(Value::Null),
            op,
        ))
    }

    /// A deployment's ARM JSON.
    pub fn deployment_json(&self, account: &str, name: &str) -> Option<Value> {
        let a = self.accounts.get(account)?;
        let d = a.deployments.get(name)?;
        let mut model = json!({"format": "OpenAI", "name": d.model, "version": d.version});
        if let Some(s) = &d.source {
            model["source"] = json!(s);
        }
        if let Some(s) = &d.source_account {
            model["sourceAccount"] = json!(s);
        }
        Some(json!({
            "id": format!("{}/deployments/{}", a.config.resource_id(), d.name),
            "type": "Microsoft.CognitiveServices/accounts/deployments",
            "name": d.name,
            "sku": {"name": d.sku, "capacity": d.capacity},
            "tags": d.tags,
            "properties": {"model": model, "provisioningState": d.state(self.now()),
                           "rateLimits": [{"key": "request", "renewalPeriod": 60, "count": d.capacity * 6},
                                          {"key": "token", "renewalPeriod": 60, "count": d.capacity * 1000}]},
            "systemData": {"createdAt": d.created.to_rfc3339(), "lastUsedAt": d.last_used.map(|t| t.to_rfc3339())},
        }))
    }

    /// An ARM operation's status.
    pub fn operation_json(&self, id: &str) -> Option<Value> {
        let (account, name) = self.operations.get(id)?;
        let d = self
            .accounts
            .get(account)
            .and_then(|a| a.deployments.get(name));
        let status = if id.starts_with("del-") {
            match d {
                Some(d) if d.deleting_until.is_some() => "InProgress",
                _ => "Succeeded",
            }
        } else {
            match d {
                Some(d) if d.state(self.now()) == "Succeeded" => "Succeeded",
                Some(d) if d.deleting_until.is_some() => "Canceled",
                Some(_) => "InProgress",
                None => "Canceled",
            }
        };
        Some(json!({"id": id, "name": id, "status": status}))
    }

    /// Whole seconds until an operation is expected to finish, for `Retry-After`.
    pub fn operation_wait(&self, id: &str) -> u64 {
        let Some((account, name)) = self.operations.get(id) else {
            return 0;
        };
        let now = self.now();
        self.accounts
            .get(account)
            .and_then(|a| a.deployments.get(name))
            .and_then(|d| {
                d.deleting_until
                    .or((d.ready_at > now).then_some(d.ready_at))
            })
            .map_or(0, |t| u64::try_from((t - now).num_seconds()).unwrap_or(0))
    }

    /// Starts deleting a deployment: it answers nothing and reads `Deleting` until the
    /// deletion completes (a same-name PUT meanwhile is a conflict). `None` when it does not
    /// exist; else the operation's id.
    pub fn delete_deployment(&mut self, account: &str, name: &str) -> Option<String> {
        let until = self.now() + Self::ms(self.timings.deployment_ms);
        let d = self.accounts.get_mut(account)?.deployments.get_mut(name)?;
        let id = format!("del-{account}-{name}");
        if d.deleting_until.is_none() {
            d.deleting_until = Some(until);
        }
        self.operations
            .insert(id.clone(), (account.to_owned(), name.to_owned()));
        Some(id)
    }

    /// Answers a chat completion on a deployment, enforcing rate limits. `Ok` carries the
    /// response body; `Err` a refusal (404, 400, or 429 with the wait in `message`).
    pub fn chat(
        &mut self,
        account: &str,
        deployment: &str,
        body: &Value,
        surface: &str,
    ) -> Result<Value, (Refusal, Option<u64>)> {
        let now = self.now();
        let a = self.account_mut(account).map_err(|r| (r, None))?;
        let d = a
            .deployments
            .get(deployment)
            .filter(|d| d.state(now) == "Succeeded")
            .cloned()
            .ok_or_else(|| {
                (
                    refuse(
                        404,
                        "DeploymentNotFound",
                        format!("the API deployment {deployment} does not exist"),
                    ),
                    None,
                )
            })?;
        let o_series = crate::domain::aoai::uses_max_completion_tokens(&d.model);
        // Reasoning models answer only on api-version 2024-12-01-preview and later (Learn:
        // "reasoning models" API support); /openai/v1 always serves them.
        if o_series && surface != "v1" && surface < O_SERIES_MIN_API_VERSION {
            return Err((
                refuse(
                    400,
                    "BadRequest",
                    format!(
                        "Model {} is enabled only for api versions {O_SERIES_MIN_API_VERSION} and later",
                        d.model
                    ),
                ),
                None,
            ));
        }
        if o_series && body.get("max_tokens").is_some() {
            return Err((
                refuse(
                    400,
                    "unsupported_parameter",
                    "max_tokens is not supported with this model; use max_completion_tokens",
                ),
                None,
            ));
        }
        let messages: Vec<serde_json::Map<String, Value>> = body
            .get("messages")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(|x| x.as_object().cloned()).collect())
            .unwrap_or_default();
        if messages.is_empty() {
            return Err((
                refuse(400, "invalid_request_error", "messages is required"),
                None,
            ));
        }
        let base = d.model.split(".ft-").next().unwrap_or(&d.model).to_owned();
        let enc: Encoding = training::encoding_of(&base);
        let prompt_tokens =
            crate::domain::validation::tokens::conversation_tokens(enc, messages.iter());
        let max = body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
            .and_then(Value::as_u64);
        let estimate = prompt_tokens + max.unwrap_or(16);
        // Rate limits from capacity: 1 unit = 6 RPM and 1,000 TPM over a minute, and — as
        // Azure judges requests "over a small period of time, typically 1 or 10 seconds" —
        // no more than a tenth of a minute's requests in any 10 seconds.
        let dep = a
            .deployments
            .get_mut(deployment)
            .expect("deployment exists");
        while dep
            .window
            .front()
            .is_some_and(|(t, _)| now - *t >= Duration::seconds(60))
        {
            dep.window.pop_front();
        }
        let used: u64 = dep.window.iter().map(|(_, n)| n).sum();
        let short = Duration::seconds(10);
        let recent: Vec<DateTime<Utc>> = dep
            .window
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| now - *t < short)
            .collect();
        let per_short = u64::from(dep.capacity.max(1));
        let wait_until = if recent.len() as u64 >= per_short {
            Some(recent[0] + short)
        } else if dep.window.len() as u64 >= u64::from(dep.capacity) * 6
            || used + estimate > u64::from(dep.capacity) * 1000
        {
            Some(dep.window.front().map_or(now, |(t, _)| *t) + Duration::seconds(60))
        } else {
            None
        };
        if let Some(until) = wait_until {
            let wait = (until - now).num_milliseconds().max(1) as u64;
            return Err((
                refuse(
                    429,
                    "429",
                    format!(
                        "Requests to the deployment have exceeded the rate limit of your current pricing tier. Please retry after {} seconds.",
                        wait.div_ceil(1000)
                    ),
                ),
                Some(wait),
            ));
        }
        dep.window.push_back((now, estimate));
        dep.last_used = Some(now);
        let prompt = messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .filter_map(|m| m.get("content").and_then(Value::as_str))
            .next_back()
            .unwrap_or_default();
        let answer = if d.is_fine_tuned() {
            let owner = self
                .accounts
                .values()
                .find(|a| a.models.contains_key(&d.model));
            owner.and_then(|o| {
                training::nearest_answer(&o.models[&d.model].examples, prompt).map(str::to_owned)
            })
        } else {
            None
        }
        .unwrap_or_else(|| "I'm sorry, I don't have specific information about that.".to_owned());
        let full = enc.count(&answer);
        let (content, completion_tokens, finish) = match max {
            Some(m) if full > m => {
                let words: Vec<&str> = answer.split_inclusive(' ').collect();
                let mut cut = String::new();
                for w in words {
                    if enc.count(&(cut.clone() + w)) > m {
                        break;
                    }
                    cut.push_str(w);
                }
                let n = enc.count(&cut);
                (cut, n, "length")
            }
            _ => (answer, full, "stop"),
        };
        Ok(json!({
            "id": format!("chatcmpl-{}", hex_id()),
            "object": "chat.completion",
            "created": now.timestamp(),
            "model": base,
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }))
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

fn job_value(j: &Job) -> Value {
    json!({
        "object": "fine_tuning.job", "id": j.id, "status": j.status, "model": j.model,
        "fine_tuned_model": j.fine_tuned_model, "training_file": j.training_file, "validation_file": j.validation_file,
        "result_files": j.result_file.iter().collect::<Vec<_>>(), "trained_tokens": j.trained_tokens,
        "hyperparameters": {"n_epochs": j.n_epochs, "batch_size": j.batch_size, "learning_rate_multiplier": j.hyperparameters.get("learning_rate_multiplier").cloned().unwrap_or(json!(1.0))},
        "suffix": j.suffix, "seed": j.seed, "created_at": j.created.timestamp(),
        "finished_at": j.finished.map(|t| t.timestamp()), "error": j.error,
        "method": {"type": j.method},
    })
}

fn finish_job(account: &mut Account, i: usize, end: DateTime<Utc>) {
    let j = account.jobs[i].clone();
    let Some(file) = account.files.get(&j.training_file) else {
        let job = &mut account.jobs[i];
        job.status = "failed".into();
        job.finished = Some(end);
        job.error = Some(
            json!({"code": "invalidTrainingFile", "message": "the training file was deleted", "param": "training_file"}),
        );
        return;
    };
    let base = account
        .models
        .get(&j.model)
        .map_or(j.model.clone(), |m| m.base.clone());
    let enc = training::encoding_of(&base);
    let data = training::parse(&file.bytes, enc);
    let (csv, steps) = training::results_csv(&data, j.n_epochs, j.batch_size, j.seed as u64);
    let ft = format!("{base}.ft-{}", hex_id());
    let result_id = format!("file-{}", hex_id());
    account.files.insert(
        result_id.clone(),
        File {
            id: result_id.clone(),
            filename: "results.csv".into(),
            purpose: "fine-tune-results".into(),
            bytes: csv.into_bytes(),
            created: end,
            problem: None,
        },
    );
    let mut examples = data.examples.clone();
    if let Some(parent) = account.models.get(&j.model) {
        examples.extend(parent.examples.iter().cloned());
    }
    account
        .models
        .insert(ft.clone(), TrainedModel { base, examples });
    let per_epoch = (steps / u64::from(j.n_epochs.max(1))).max(1);
    let ts = end.timestamp();
    let job = &mut account.jobs[i];
    job.trained_tokens = Some(data.tokens.iter().sum::<u64>() * u64::from(j.n_epochs));
    for e in (1..=j.n_epochs).rev().take(3) {
        let step = per_epoch * u64::from(e);
        let model = if e == j.n_epochs {
            ft.clone()
        } else {
            format!("{ft}:ckpt-step-{step}")
        };
        job.checkpoints.push(json!({
            "object": "fine_tuning.job.checkpoint", "id": format!("ftchkpt-{}", hex_id()), "created_at": ts,
            "fine_tuned_model_checkpoint": model, "step_number": step, "fine_tuning_job_id": job.id,
            "metrics": {"step": step as f64, "train_loss": 0.5 / f64::from(e), "train_mean_token_accuracy": 1.0 - 0.3 / f64::from(e)},
        }));
    }
    job.events.push(event(
        ts,
        "info",
        &format!(
            "Training completed: {steps} steps over {} epochs.",
            j.n_epochs
        ),
    ));
    job.events.push(event(ts, "info", "Job succeeded."));
    job.status = "succeeded".into();
    job.finished = Some(end);
    job.fine_tuned_model = Some(ft);
    job.result_file = Some(result_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAIN: &str = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n";

    fn world() -> World {
        let t = Timings {
            file_processing_ms: 0,
            job_queue_ms: 0,
            job_training_ms: 0,
            deployment_ms: 0,
            ..Timings::default()
        };
        World::new(crate::local::emulator::builtin_accounts(), t, 1)
    }

    fn trained(w: &mut World) -> String {
        let f = w
            .add_file("hub", "t.jsonl", "fine-tune", TRAIN.as_bytes().to_vec())
            .expect("file");
        let j = w
            .create_job(
                "hub",
                &json!({"model": "gpt-4.1-mini-2025-04-14", "training_file": f["id"]}),
                "2024-10-21",
            )
            .expect("job");
        w.advance(Duration::seconds(1));
        w.advance(Duration::seconds(1));
        let id = j["id"].as_str().expect("id").to_owned();
        w.job_json("hub", &id).expect("job")["fine_tuned_model"]
            .as_str()
            .expect("trained")
            .to_owned()
    }

    fn deploy_body(model: &str, sku: &str, source: Option<(&str, &str)>) -> Value {
        let mut m = json!({"format": "OpenAI", "name": model, "version": "1"});
        if let Some((k, v)) = source {
            m[k] = json!(v);
        }
        json!({"sku": {"name": sku, "capacity": 1}, "properties": {"model": m}})
    }

    #[test]
    fn developer_tier_deployments_expire_after_a_day_whatever_the_traffic() {
        let mut w = world();
        let model = trained(&mut w);
        w.put_deployment(
            "hub",
            "dev",
            &deploy_body(&model, "developertier", None),
            &[],
        )
        .expect("deploy");
        w.advance(Duration::hours(23));
        assert!(w.deployment_json("hub", "dev").is_some());
        w.advance(Duration::hours(2));
        assert!(w.deployment_json("hub", "dev").is_none());
        assert!(w.expired[0].2.contains("24 hours"));
    }

    #[test]
    fn a_cross_tenant_source_must_use_source_account_with_an_auxiliary_token() {
        let mut w = world();
        let model = trained(&mut w);
        let hub_id = w.accounts["hub"].config.resource_id();
        let by_source = w.put_deployment(
            "prod-eastus2",
            "d",
            &deploy_body(&model, "GlobalStandard", Some(("source", &hub_id))),
            &[None],
        );
        assert_eq!(by_source.expect_err("other tenant").status, 403);
        let no_aux = w.put_deployment(
            "prod-eastus2",
            "d",
            &deploy_body(&model, "GlobalStandard", Some(("sourceAccount", &hub_id))),
            &[],
        );
        assert_eq!(no_aux.expect_err("no auxiliary token").status, 401);
        let wrong_aux = w.put_deployment(
            "prod-eastus2",
            "d",
            &deploy_body(&model, "GlobalStandard", Some(("sourceAccount", &hub_id))),
            &[Some("fabrikam".into())],
        );
        assert_eq!(
            wrong_aux
                .expect_err("the destination's tenant in the auxiliary header")
                .code,
            "InvalidAuthenticationTokenTenant"
        );
        w.put_deployment(
            "prod-eastus2",
            "d",
            &deploy_body(&model, "GlobalStandard", Some(("sourceAccount", &hub_id))),
            &[Some("contoso".into())],
        )
        .expect("with the source tenant's auxiliary token");
        let unknown = w.put_deployment(
            "dev-eastus2",
            "x",
            &deploy_body("gpt-4o.ft-nothere", "Standard", Some(("source", &hub_id))),
            &[],
        );
        assert_eq!(
            unknown.expect_err("model must exist in the named hub").code,
            "DeploymentModelNotFound"
        );
    }

    #[test]
    fn a_deployment_azure_does_not_offer_in_the_region_is_refused() {
        let mut w = world();
        let model = trained(&mut w);
        let hub_id = w.accounts["hub"].config.resource_id();
        let standard = w.put_deployment(
            "dev-eastus2",
            "d",
            &deploy_body(&model, "Standard", Some(("source", &hub_id))),
            &[],
        );
        let e = standard.expect_err("regional Standard is not offered in eastus2");
        assert_eq!((e.status, e.code), (400, "InvalidResourceProperties"));
        assert!(
            e.message.contains("northcentralus, swedencentral"),
            "{}",
            e.message
        );
        w.put_deployment(
            "dev-swedencentral",
            "d",
            &deploy_body(&model, "Standard", Some(("source", &hub_id))),
            &[],
        )
        .expect("offered in swedencentral");
    }

    #[test]
    fn one_job_runs_at_a_time_and_at_most_twenty_queue() {
        let mut w = world();
        w.timings.job_training_ms = 60_000;
        let f = w
            .add_file("hub", "t.jsonl", "fine-tune", TRAIN.as_bytes().to_vec())
            .expect("file");
        for _ in 0..21 {
            w.create_job(
                "hub",
                &json!({"model": "gpt-4o", "training_file": f["id"]}),
                "2024-10-21",
            )
            .expect("job");
            w.tick();
        }
        let running = w.accounts["hub"]
            .jobs
            .iter()
            .filter(|j| j.status == "running")
            .count();
        assert_eq!(running, 1);
        assert_eq!(
            w.create_job(
                "hub",
                &json!({"model": "gpt-4o", "training_file": f["id"]}),
                "2024-10-21"
            )
            .expect_err("queue full")
            .status,
            429
        );
    }
}

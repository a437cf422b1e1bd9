//! The pipeline: drop → validate → train → evaluate → promote → keep warm. Every function
//! calls one method here; each method re-reads the run, does the next step through the
//! ports, and records it. Side effects are journalled in the run (started before, done
//! after), so a redelivered trigger or a restart after a crash continues where it stopped
//! and never creates a second job or repeats a finished deployment step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::inventory::{self, Entry};
use super::runs::{self, REPORTS, UpdateError};
use super::validation::{self, FileRole, StreamOptions, Validated, role_of, validate_blob};
use crate::domain::aoai::{
    ChatMessage, ChatRequest, CreateJob, DeploymentSpec, JobPhase, parse_results_csv,
};
use crate::domain::approval::{self, Decision, SignedApproval};
use crate::domain::dataset_path::{DATASETS_CONTAINER, DatasetPath};
use crate::domain::evaluation::{self, Answered, ModelScore};
use crate::domain::manifest::Manifest;
use crate::domain::run::{
    DataFile, EnvironmentState, EvaluationSummary, RegionState, Run, Stage, TrainingMetrics,
    ValidationSummary, run_id, sha256_hex,
};
use crate::domain::topology::{Account, ENVIRONMENTS, Topology};
use crate::domain::validation::{Method, Rules, policy::Policy, tokens};
use crate::error::{Classify, ErrorClass};
use crate::ports::{
    AoaiError, BlobError, BlobStore, Condition, Deployments, Hub, Inference, KeyError, KeySource,
};

/// Pipeline failures, classified for the handler edge.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Bad input or a policy refusal: recorded, never retried.
    #[error("{reason}")]
    Refused {
        /// Stable kind.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// Azure OpenAI.
    #[error(transparent)]
    Aoai(#[from] AoaiError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] BlobError),
    /// Reading a dataset failed.
    #[error(transparent)]
    Validation(#[from] super::validation::ValidationError),
    /// The customer-provided key for the datasets could not be fetched.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Another invocation is performing this step right now; a redelivery finds it done.
    #[error("step {step} is in progress in another invocation")]
    Busy {
        /// The step.
        step: String,
    },
    /// Some regions of an environment failed; redelivery retries them.
    #[error("{env} is degraded: {detail}")]
    Degraded {
        /// Environment.
        env: String,
        /// Failed regions.
        detail: String,
    },
}

impl Classify for PipelineError {
    fn class(&self) -> ErrorClass {
        match self {
            PipelineError::Refused { .. } => ErrorClass::Terminal,
            PipelineError::Aoai(e) => e.class(),
            PipelineError::Store(e) => e.class(),
            PipelineError::Key(e) => e.class(),
            PipelineError::Validation(_)
            | PipelineError::Degraded { .. }
            | PipelineError::Busy { .. } => ErrorClass::Retryable,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            PipelineError::Refused { kind, .. } => kind,
            PipelineError::Aoai(e) => e.kind(),
            PipelineError::Store(e) => e.kind(),
            PipelineError::Key(e) => e.kind(),
            PipelineError::Validation(_) => "dataset_read",
            PipelineError::Degraded { .. } => "environment_degraded",
            PipelineError::Busy { .. } => "step_in_progress",
        }
    }
}

impl From<UpdateError<PipelineError>> for PipelineError {
    fn from(e: UpdateError<PipelineError>) -> Self {
        match e {
            UpdateError::Store(s) => PipelineError::Store(s),
            UpdateError::Missing(id) => refused("unknown_run", format!("run {id} does not exist")),
            UpdateError::Refused(r) => r,
        }
    }
}

fn refused(kind: &'static str, reason: impl Into<String>) -> PipelineError {
    PipelineError::Refused {
        kind,
        reason: reason.into(),
    }
}

/// What a step emits: messages for the function's output bindings.
#[derive(Debug, Default)]
pub struct Emitted {
    /// For the `notifications` topic.
    pub notifications: Vec<Value>,
    /// For the function's queue output (`training-completed`, `evaluation-completed`).
    pub next: Vec<Value>,
}

/// The pipeline's dependencies.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Storage.
    pub store: Arc<dyn BlobStore>,
    /// Topology.
    pub topology: Arc<Topology>,
    /// The Hub's data plane.
    pub hub: Arc<dyn Hub>,
    /// Inference per account name (Hub and Spokes).
    pub inference: BTreeMap<String, Arc<dyn Inference>>,
    /// ARM.
    pub arm: Arc<dyn Deployments>,
    /// How long a step waits for the Hub to process uploaded files.
    pub file_wait: Duration,
    /// Eval calls in flight at once.
    pub eval_concurrency: usize,
    /// Customer-provided keys for submissions that name one (Key Vault in Azure).
    pub keys: Option<Arc<dyn KeySource>>,
    /// A side-effect claim older than this belongs to a dead invocation: longer than any
    /// invocation may run (the function timeout).
    pub claim_ttl: Duration,
    /// How long a duplicate waits for the claim holder before failing retryably.
    pub claim_wait: Duration,
}

const ACTOR_PIPELINE: &str = "pipeline";

impl Pipeline {
    /// Connects a pipeline to the topology's accounts: one data-plane client per account on
    /// the shared HTTP core, ARM for deployments polled every `poll`.
    pub fn connect(
        store: Arc<dyn BlobStore>,
        topology: Topology,
        http: &crate::adapters::azure::Http,
        data_auth: &crate::adapters::azure::Auth,
        arm_tokens: Arc<dyn crate::adapters::azure::TokenSource>,
        poll: Duration,
    ) -> Self {
        use crate::adapters::azure::dataplane::{DataPlane, GA_API_VERSION, Surface};
        let plane = |endpoint: &str| {
            Arc::new(DataPlane::new(
                http.clone(),
                endpoint,
                Surface::Dated(GA_API_VERSION.into()),
                data_auth.clone(),
            ))
        };
        let hub = plane(&topology.hub.endpoint);
        let mut inference: BTreeMap<String, Arc<dyn Inference>> = BTreeMap::new();
        inference.insert(topology.hub.name.clone(), hub.clone());
        for s in topology.environments.values().flat_map(|e| e.spokes.iter()) {
            inference.insert(s.name.clone(), plane(&s.endpoint));
        }
        let arm = Arc::new(
            crate::adapters::azure::arm::Arm::new(http.clone(), &topology.arm_endpoint, arm_tokens)
                .with_polling(poll, Duration::from_secs(600)),
        );
        Self {
            store,
            topology: Arc::new(topology),
            hub,
            inference,
            arm,
            file_wait: Duration::from_secs(20),
            eval_concurrency: 4,
            keys: None,
            // No invocation outlives host.json's functionTimeout (10 min): an older claim's
            // holder is dead. A duplicate waits long enough that its redeliveries outlast
            // the TTL before the queue's ten deliveries run out.
            claim_ttl: Duration::from_secs(660),
            claim_wait: Duration::from_secs(240),
        }
    }
}

async fn blob_digest(store: &dyn BlobStore, name: &str) -> Result<(String, u64), BlobError> {
    use sha2::Digest as _;
    use tokio::io::AsyncReadExt as _;
    let (props, mut reader) = store.open(DATASETS_CONTAINER, name).await?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|source| BlobError::Io {
                what: format!("read {name}"),
                source,
            })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        props.content_length,
    ))
}

/// The deployable base model of a dated base-model name: its family
/// (`gpt-4o-2024-08-06` → `gpt-4o`), or the name itself when the family is unknown.
fn base_deployment_model(base: &str) -> String {
    tokens::model_spec(base).map_or_else(|| base.to_owned(), |s| s.family.to_owned())
}

fn suffix_for(run: &Run) -> String {
    // Azure: at most 40 characters of a-z A-Z 0-9 - _. The digest keeps it unique per run.
    let digest = run.id.rsplit('-').next().unwrap_or("");
    let head: String = run.id.chars().take(40 - digest.len() - 1).collect();
    let head = head.trim_end_matches('-');
    format!("{head}-{digest}")
}

fn ping() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: Some("ping".into()),
        }],
        max_tokens: Some(1),
        temperature: None,
    }
}

impl Pipeline {
    fn now() -> chrono::DateTime<Utc> {
        Utc::now()
    }

    /// The store to read a submission's datasets through: with the customer-provided key
    /// its manifest names (fetched now, held only in memory), else the plain store.
    async fn datasets(&self, manifest: &Manifest) -> Result<Arc<dyn BlobStore>, PipelineError> {
        let Some(reference) = &manifest.encryption_key else {
            return Ok(self.store.clone());
        };
        let keys = self.keys.as_ref().ok_or_else(|| {
            refused(
                "encryption_key_unavailable",
                format!("the manifest names the encryption key {reference}, but this deployment has no key source (Key Vault) configured"),
            )
        })?;
        let key = keys.customer_key(reference).await?;
        Ok(Arc::new(crate::adapters::keyed::KeyedReads::new(
            self.store.clone(),
            DATASETS_CONTAINER,
            key,
        )))
    }

    async fn put_report(&self, run_id: &str, name: &str, bytes: &[u8]) -> Result<(), BlobError> {
        self.store
            .put(REPORTS, &format!("{run_id}/{name}"), bytes, Condition::None)
            .await
            .map(|_| ())
    }

    /// A blob was created in `datasets`: a manifest starts its submission, a bare `.jsonl`
    /// runs with the project's defaults, other submission files wait for their manifest.
    ///
    /// # Errors
    /// Refused for names outside the layout or a malformed manifest.
    pub async fn on_dataset_blob(&self, name: &str) -> Result<Emitted, PipelineError> {
        let path = DatasetPath::parse(DATASETS_CONTAINER, name)
            .map_err(|e| refused("invalid_dataset_path", e.to_string()))?;
        let (project, submission, manifest, prefix) = match path {
            DatasetPath::SubmissionFile { .. } => return Ok(Emitted::default()),
            DatasetPath::Manifest {
                project,
                submission,
            } => {
                let (_, bytes) = self.store.get(DATASETS_CONTAINER, name).await?;
                let m = Manifest::from_json(&bytes)
                    .map_err(|e| refused("invalid_manifest", format!("manifest.json: {e}")))?;
                let prefix = format!("{project}/{submission}/");
                (project, submission, m, prefix)
            }
            DatasetPath::BareDrop { project, file } => {
                let submission = file.trim_end_matches(".jsonl").to_owned();
                (
                    project.clone(),
                    submission,
                    Manifest::bare(&file),
                    format!("{project}/"),
                )
            }
        };
        self.start(&project, &submission, manifest, &prefix).await
    }

    /// Validates a submission, creates its run (or finds it) and submits it for training.
    ///
    /// # Errors
    /// Refused for missing files; retryable storage or Azure failures.
    pub async fn start(
        &self,
        project: &str,
        submission: &str,
        manifest: Manifest,
        prefix: &str,
    ) -> Result<Emitted, PipelineError> {
        let datasets = self.datasets(&manifest).await?;
        let mut files = Vec::new();
        for f in manifest.files() {
            let blob = format!("{prefix}{f}");
            let (digest, bytes) = match blob_digest(datasets.as_ref(), &blob).await {
                Ok(v) => v,
                Err(BlobError::NotFound { .. }) => {
                    return Err(refused(
                        "missing_dataset_file",
                        format!("{blob} is named by the manifest but missing"),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            files.push(DataFile {
                name: f,
                blob,
                digest,
                bytes,
            });
        }
        let digests: Vec<String> = files.iter().map(|f| f.digest.clone()).collect();
        let id = run_id(project, submission, &digests);
        if let Some((run, _)) = runs::get(self.store.as_ref(), &id).await? {
            // A redelivered event, or the same bytes uploaded again: continue, never restart.
            return match run.stage {
                Stage::Uploading => self.submit_to_hub(&id).await,
                _ => Ok(Emitted::default()),
            };
        }
        let topo = &self.topology;
        let base_model = manifest.base_model_or(&topo.defaults);
        let spec = tokens::model_spec(&base_model).ok_or_else(|| {
            refused(
                "unknown_model",
                format!("base model {base_model:?} is not a known family"),
            )
        })?;
        let rules = Rules {
            model: base_model.clone(),
            spec,
            method: match manifest.method {
                crate::domain::aoai::TrainingMethod::Supervised => Method::Supervised,
                crate::domain::aoai::TrainingMethod::Dpo => Method::Dpo,
            },
            n_epochs: manifest.hyperparameters.n_epochs.map(u64::from),
            policy: Policy::default(),
        };
        let mut validated: Vec<(String, Validated)> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let training = role_of(&f.name, i == 0) == FileRole::Training;
            let v = validate_blob(
                datasets.as_ref(),
                DATASETS_CONTAINER,
                &f.blob,
                training,
                rules.clone(),
                StreamOptions::default(),
            )
            .await?;
            validated.push((f.name.clone(), v));
        }
        let report = validation::submission(validated, &rules);
        let json_report = serde_json::to_vec_pretty(&report).unwrap_or_default();
        self.put_report(&id, "validation.json", &json_report)
            .await?;
        let md: String = report
            .files
            .iter()
            .map(|f| f.to_markdown() + "\n")
            .collect();
        self.put_report(&id, "validation.md", md.as_bytes()).await?;
        let html = crate::views::reports::validation(&id, &report);
        self.put_report(&id, "validation.html", html.as_bytes())
            .await?;
        let training = &report.files[0];
        let accepted = report.verdict == crate::domain::validation::report::Verdict::Accepted;
        let mut warnings = report.warnings.clone();
        warnings.extend(
            report
                .files
                .iter()
                .flat_map(|f| f.warnings.iter().map(|w| format!("{}: {w}", f.file))),
        );
        let reasons: Vec<String> = report
            .files
            .iter()
            .flat_map(|f| f.reasons.iter().map(|r| format!("{}: {r}", f.file)))
            .chain(
                report
                    .reasons
                    .iter()
                    .filter(|r| !r.starts_with("at least one file"))
                    .cloned(),
            )
            .collect();
        let now = Self::now();
        let mut run = Run {
            id: id.clone(),
            project: project.to_owned(),
            submission: submission.to_owned(),
            submitted_by: manifest
                .submitted_by
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            created_at: now,
            updated_at: now,
            manifest: manifest.clone(),
            base_model,
            data_digest: sha256_hex(digests.join("\n").as_bytes()),
            files,
            stage: Stage::Uploading,
            validation: Some(ValidationSummary {
                accepted,
                reasons: reasons.clone(),
                warnings: warnings.clone(),
                training_examples: training.valid_examples,
                training_tokens: training.tokens.total,
                billing_tokens: training.billing_tokens,
            }),
            hub_files: BTreeMap::new(),
            job_id: None,
            job_status: None,
            fine_tuned_model: None,
            trained_tokens: None,
            metrics: None,
            evaluation: None,
            environments: BTreeMap::new(),
            used_nonces: Vec::new(),
            effects: BTreeMap::new(),
            history: Vec::new(),
            flags: report
                .leakage
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(f, n)| format!("{n} examples of {f} also appear in the training data"))
                .collect(),
        };
        if let Some(parent) = &manifest.parent_run {
            run.flags.push(format!("iterates on {parent}"));
        }
        let (to, detail) = if accepted {
            (Stage::Uploading, "dataset validated".to_owned())
        } else {
            (Stage::Rejected, reasons.join("; "))
        };
        run.history.push(crate::domain::run::Transition {
            time: now,
            actor: run.submitted_by.clone(),
            run_id: id.clone(),
            from: None,
            to: to.name().into(),
            detail,
        });
        run.stage = to;
        if !runs::create(self.store.as_ref(), &run).await? {
            return Ok(Emitted::default());
        }
        if !accepted {
            return Ok(Emitted {
                notifications: vec![
                    json!({"type": "run.rejected", "run_id": id, "reasons": reasons, "report": format!("reports/{id}/validation.md")}),
                ],
                next: vec![],
            });
        }
        self.submit_to_hub(&id).await
    }

    /// Claims a side effect for this invocation: `Ok(None)` means do it now (first time, or
    /// taking over a claim whose holder died), `Ok(Some(result))` means it is already done.
    /// A claim younger than [`Pipeline::claim_ttl`] belongs to a live invocation (a
    /// concurrent duplicate delivery): wait for it to finish, then report it done; if it is
    /// still running after [`Pipeline::claim_wait`], fail retryably so the delivery comes
    /// back later. So two processes never perform the same effect at once.
    async fn begin(&self, id: &str, step: &str) -> Result<Option<String>, PipelineError> {
        enum State {
            Mine,
            Done(String),
            Busy,
        }
        let waited = tokio::time::Instant::now();
        loop {
            let now = Self::now();
            let ttl = chrono::Duration::from_std(self.claim_ttl).unwrap_or(chrono::Duration::MAX);
            let mut state = State::Mine;
            runs::update(self.store.as_ref(), id, |r| {
                state = match r.effects.get_mut(step) {
                    Some(e) if e.done_at.is_some() => {
                        State::Done(e.result.clone().unwrap_or_default())
                    }
                    Some(e) if now - e.started_at < ttl => State::Busy,
                    Some(e) => {
                        // The holder outlived any invocation's budget: it died. Take over.
                        e.started_at = now;
                        State::Mine
                    }
                    None => {
                        r.effects.insert(
                            step.to_owned(),
                            crate::domain::run::Effect {
                                started_at: now,
                                done_at: None,
                                result: None,
                            },
                        );
                        State::Mine
                    }
                };
                Ok::<(), PipelineError>(())
            })
            .await?;
            match state {
                State::Mine => return Ok(None),
                State::Done(result) => return Ok(Some(result)),
                State::Busy if waited.elapsed() >= self.claim_wait => {
                    return Err(PipelineError::Busy {
                        step: step.to_owned(),
                    });
                }
                State::Busy => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Gives up a claim after the effect failed, so a retry starts at once instead of
    /// waiting for the claim to go stale. Best effort: a stale claim is taken over anyway.
    async fn release(&self, id: &str, step: &str) {
        let r = runs::update(self.store.as_ref(), id, |r| {
            if r.effects.get(step).is_some_and(|e| e.done_at.is_none()) {
                r.effects.remove(step);
            }
            Ok::<(), PipelineError>(())
        })
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, %step, "Could not release a claim; it will go stale.");
        }
    }

    fn finish(r: &mut Run, step: &str, result: &str) {
        let now = Self::now();
        let e = r
            .effects
            .entry(step.to_owned())
            .or_insert(crate::domain::run::Effect {
                started_at: now,
                done_at: None,
                result: None,
            });
        e.done_at = Some(now);
        e.result = Some(result.to_owned());
    }

    /// Uploads the files, waits for processing, creates the job. Resumable at every step.
    ///
    /// # Errors
    /// Retryable Azure or storage failures; refused when the Hub rejects the data.
    pub async fn submit_to_hub(&self, id: &str) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        if run.stage != Stage::Uploading {
            return Ok(Emitted::default());
        }
        let datasets = self.datasets(&run.manifest).await?;
        let mut file_ids = BTreeMap::new();
        for f in &run.files {
            let step = format!("upload:{}", f.name);
            let fid = match self.begin(id, &step).await? {
                Some(fid) => fid,
                None => {
                    let obj = match self
                        .hub
                        .upload_file(&f.name, datasets.as_ref(), DATASETS_CONTAINER, &f.blob)
                        .await
                    {
                        Ok(o) => o,
                        Err(e) => {
                            self.release(id, &step).await;
                            return Err(e.into());
                        }
                    };
                    runs::update(self.store.as_ref(), id, |r| {
                        Self::finish(r, &step, &obj.id);
                        r.hub_files.insert(f.name.clone(), obj.id.clone());
                        Ok::<(), PipelineError>(())
                    })
                    .await?;
                    obj.id
                }
            };
            file_ids.insert(f.name.clone(), fid);
        }
        // Wait a little for processing; TrainingMonitor continues if it takes longer.
        let deadline = tokio::time::Instant::now() + self.file_wait;
        for fid in file_ids.values() {
            loop {
                let f = self.hub.get_file(fid).await?;
                if f.is_ready() {
                    break;
                }
                if f.is_failed() {
                    let detail = f.status_details.unwrap_or_else(|| f.status.clone());
                    runs::update(self.store.as_ref(), id, |r| {
                        r.transition(
                            Stage::Rejected,
                            ACTOR_PIPELINE,
                            format!("the Hub refused {fid}: {detail}"),
                            Self::now(),
                        );
                        Ok::<(), PipelineError>(())
                    })
                    .await?;
                    return Ok(Emitted {
                        notifications: vec![
                            json!({"type": "run.rejected", "run_id": id, "reasons": [detail]}),
                        ],
                        next: vec![],
                    });
                }
                if tokio::time::Instant::now() > deadline {
                    return Ok(Emitted::default());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        let m = &run.manifest;
        let job_req = CreateJob {
            model: run.base_model.clone(),
            training_file: file_ids[&m.training_file].clone(),
            validation_file: m
                .validation_file
                .as_ref()
                .and_then(|v| file_ids.get(v).cloned()),
            suffix: Some(suffix_for(&run)),
            seed: m.seed,
            hyperparameters: m.hyperparameters.clone(),
            method: m.method,
        };
        let claimed = match self.begin(id, "create_job").await? {
            Some(j) => Ok(j),
            None => {
                async {
                    // A start without a finish means a crash around the call: look for our job first.
                    let existing = if run.effects.contains_key("create_job") {
                        self.hub
                            .list_jobs(None, 100)
                            .await?
                            .data
                            .into_iter()
                            .find(|j| j.suffix.as_deref() == job_req.suffix.as_deref())
                            .map(|j| j.id)
                    } else {
                        None
                    };
                    let job = match existing {
                        Some(j) => j,
                        None => {
                            self.hub
                                .create_job(&job_req)
                                .await
                                .map_err(|e| match e {
                                    AoaiError::Http {
                                        status: 400,
                                        message,
                                        ..
                                    } => refused("training_refused", message),
                                    other => other.into(),
                                })?
                                .id
                        }
                    };
                    Ok::<String, PipelineError>(job)
                }
                .await
            }
        };
        let job_id = match claimed {
            Ok(j) => j,
            Err(e) => {
                self.release(id, "create_job").await;
                return Err(e);
            }
        };
        runs::update(self.store.as_ref(), id, |r| {
            Self::finish(r, "create_job", &job_id);
            r.job_id = Some(job_id.clone());
            if r.stage == Stage::Uploading {
                r.transition(
                    Stage::Training,
                    ACTOR_PIPELINE,
                    format!("fine-tuning job {job_id} created"),
                    Self::now(),
                );
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        Ok(Emitted {
            notifications: vec![
                json!({"type": "run.training_submitted", "run_id": id, "job_id": job_id}),
            ],
            next: vec![],
        })
    }

    /// Advances every run that waits on the Hub: uploads still processing, and jobs.
    ///
    /// # Errors
    /// Storage failures listing runs; per-run Azure failures are logged and retried next time.
    pub async fn monitor_training(&self) -> Result<Emitted, PipelineError> {
        let mut out = Emitted::default();
        for run in runs::list(self.store.as_ref()).await? {
            let result = match run.stage {
                Stage::Uploading => self.submit_to_hub(&run.id).await,
                Stage::Training => self.check_job(&run).await,
                _ => continue,
            };
            match result {
                Ok(e) => {
                    out.notifications.extend(e.notifications);
                    out.next.extend(e.next);
                }
                Err(e) => {
                    tracing::warn!(run_id = %run.id, error = %e, "Run not advanced; next tick retries.")
                }
            }
        }
        Ok(out)
    }

    async fn check_job(&self, run: &Run) -> Result<Emitted, PipelineError> {
        let Some(job_id) = &run.job_id else {
            return Ok(Emitted::default());
        };
        let job = self.hub.get_job(job_id).await?;
        let phase = job.phase();
        if !phase.is_terminal() {
            let stuck = (Self::now() - run.updated_at)
                > chrono::Duration::hours(self.topology.defaults.training_deadline_hours);
            runs::update(self.store.as_ref(), &run.id, |r| {
                if r.job_status.as_deref() != Some(job.status.as_str()) {
                    r.note(
                        ACTOR_PIPELINE,
                        "job_status",
                        job.status.clone(),
                        Self::now(),
                    );
                    r.job_status = Some(job.status.clone());
                }
                let flag = format!("job {job_id} is past the training deadline");
                if stuck && !r.flags.contains(&flag) {
                    r.flags.push(flag);
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
            return Ok(Emitted::default());
        }
        if phase != JobPhase::Succeeded {
            let detail = job
                .error
                .as_ref()
                .and_then(|e| e.message.clone())
                .unwrap_or_else(|| job.status.clone());
            runs::update(self.store.as_ref(), &run.id, |r| {
                if r.stage == Stage::Training {
                    r.job_status = Some(job.status.clone());
                    r.transition(
                        Stage::TrainingFailed,
                        ACTOR_PIPELINE,
                        detail.clone(),
                        Self::now(),
                    );
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
            return Ok(Emitted {
                notifications: vec![
                    json!({"type": "training.failed", "run_id": run.id, "detail": detail}),
                ],
                next: vec![],
            });
        }
        let mut metrics = TrainingMetrics::default();
        if let Some(result) = job.result_files.first() {
            let csv = self.hub.file_content(result).await?;
            self.put_report(&run.id, "results.csv", &csv).await?;
            if let Ok(rows) = parse_results_csv(&String::from_utf8_lossy(&csv)) {
                metrics.steps = rows.len() as u64;
                metrics.first_train_loss = rows.first().and_then(|r| r.train_loss);
                metrics.final_train_loss = rows.last().and_then(|r| r.train_loss);
                metrics.final_train_accuracy =
                    rows.last().and_then(|r| r.train_mean_token_accuracy);
                metrics.final_valid_loss = rows.iter().rev().find_map(|r| r.valid_loss);
                metrics.loss_curve = rows
                    .iter()
                    .filter_map(|r| r.train_loss.map(|l| (r.step, l)))
                    .collect();
            }
        }
        let events = self.hub.list_events(job_id, None, 100).await?.data.len();
        let checkpoints = self
            .hub
            .list_checkpoints(job_id, None, 10)
            .await?
            .data
            .len();
        let model = job.fine_tuned_model.clone().unwrap_or_default();
        let mut moved = false;
        runs::update(self.store.as_ref(), &run.id, |r| {
            if r.stage == Stage::Training {
                r.job_status = Some(job.status.clone());
                r.fine_tuned_model = Some(model.clone());
                r.trained_tokens = job.trained_tokens;
                r.metrics = Some(metrics.clone());
                r.transition(
                    Stage::Evaluating,
                    ACTOR_PIPELINE,
                    format!(
                        "training succeeded: {model} ({events} events, {checkpoints} checkpoints)"
                    ),
                    Self::now(),
                );
                moved = true;
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        if !moved {
            return Ok(Emitted::default());
        }
        Ok(Emitted {
            notifications: vec![
                json!({"type": "training.succeeded", "run_id": run.id, "model": model}),
            ],
            next: vec![json!({"run_id": run.id})],
        })
    }

    fn deployment_spec(
        &self,
        model: &str,
        run: &Run,
        target: &Account,
        sku: &str,
        capacity: u32,
    ) -> (DeploymentSpec, Option<String>) {
        let hub = &self.topology.hub;
        let cross_tenant = target.tenant != hub.tenant;
        let tags = BTreeMap::from([
            ("fthub-run".to_owned(), run.id.clone()),
            (
                "fthub-version".to_owned(),
                run.data_digest.chars().take(12).collect(),
            ),
            ("fthub-model".to_owned(), model.to_owned()),
            (
                "fthub-dataset".to_owned(),
                format!("{}/{}", run.project, run.submission),
            ),
        ]);
        let same_account = target.name == hub.name;
        let spec = DeploymentSpec {
            model: model.to_owned(),
            version: "1".into(),
            sku: sku.to_owned(),
            capacity,
            source: (!same_account && !cross_tenant).then(|| hub.resource_id.clone()),
            source_account: cross_tenant.then(|| hub.resource_id.clone()),
            tags,
        };
        (spec, cross_tenant.then(|| hub.tenant.clone()))
    }

    fn inference(&self, account: &str) -> Result<&Arc<dyn Inference>, PipelineError> {
        self.inference.get(account).ok_or_else(|| {
            refused(
                "unknown_account",
                format!("no client for account {account}"),
            )
        })
    }
}

/// One held-out example: the prompt messages and the expected answer.
fn eval_examples(bytes: &[u8], limit: usize) -> Vec<(Vec<ChatMessage>, String)> {
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(bytes)
        .trim_start_matches('\u{feff}')
        .lines()
    {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(msgs) = v.get("messages").and_then(Value::as_array) else {
            continue;
        };
        let Some(last) = msgs
            .iter()
            .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        else {
            continue;
        };
        let expected = msgs[last]
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let prompt = msgs[..last]
            .iter()
            .filter_map(|m| {
                Some(ChatMessage {
                    role: m.get("role")?.as_str()?.to_owned(),
                    content: m.get("content").and_then(Value::as_str).map(str::to_owned),
                })
            })
            .collect();
        out.push((prompt, expected));
        if out.len() >= limit {
            break;
        }
    }
    out
}

impl Pipeline {
    async fn answer_all(
        &self,
        client: &Arc<dyn Inference>,
        deployment: &str,
        model: &str,
        set: &[(Vec<ChatMessage>, String)],
    ) -> Result<Vec<Answered>, PipelineError> {
        use futures_util::stream::{self, TryStreamExt as _};
        stream::iter(set.iter().cloned().map(Ok::<_, PipelineError>))
            .map_ok(|(messages, expected)| {
                let client = client.clone();
                async move {
                    let r = client
                        .chat(
                            deployment,
                            model,
                            &ChatRequest {
                                messages,
                                max_tokens: Some(200),
                                temperature: Some(0.0),
                            },
                        )
                        .await?;
                    Ok(Answered {
                        expected,
                        answer: r.content,
                        latency_ms: r.latency_ms as f64,
                        prompt_tokens: r.usage.prompt_tokens,
                        completion_tokens: r.usage.completion_tokens,
                    })
                }
            })
            .try_buffered(self.eval_concurrency.max(1))
            .try_collect()
            .await
    }

    /// Evaluates the candidate against the base model and the model now in Prod.
    ///
    /// # Errors
    /// Retryable Azure failures (the evaluation deployment is removed either way).
    pub async fn evaluate(&self, id: &str) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", format!("run {id} does not exist")))?;
        if run.stage != Stage::Evaluating {
            // Already evaluated (a redelivery), or not trained yet.
            return Ok(Emitted::default());
        }
        // One evaluation per run: a concurrent duplicate waits for it instead of deploying,
        // scoring and deleting the candidate a second time.
        if self.begin(id, "evaluate").await?.is_some() {
            return Ok(Emitted::default());
        }
        match self.evaluate_claimed(id, run).await {
            Ok(e) => Ok(e),
            Err(e) => {
                self.release(id, "evaluate").await;
                Err(e)
            }
        }
    }

    async fn evaluate_claimed(&self, id: &str, run: Run) -> Result<Emitted, PipelineError> {
        let model = run
            .fine_tuned_model
            .clone()
            .ok_or_else(|| refused("no_model", "the run has no fine-tuned model"))?;
        let m = &run.manifest;
        let eval_file = m
            .eval_file
            .clone()
            .or_else(|| m.validation_file.clone())
            .unwrap_or_else(|| m.training_file.clone());
        let blob = run
            .files
            .iter()
            .find(|f| f.name == eval_file)
            .map(|f| f.blob.clone())
            .unwrap_or_default();
        let (_, bytes) = self
            .datasets(&run.manifest)
            .await?
            .get(DATASETS_CONTAINER, &blob)
            .await?;
        let set = eval_examples(&bytes, 200);
        let hub = self.topology.hub.clone();
        let d = &self.topology.deployment;
        let candidate = format!("eval-{}", id.rsplit('-').next().unwrap_or("run"));
        let (spec, _) =
            self.deployment_spec(&model, &run, &hub, &d.evaluation_sku, d.evaluation_capacity);
        self.arm
            .put(&hub.resource_id, &candidate, &spec, None)
            .await?;
        let base_dep = format!("base-{}", run.base_model.replace('.', "-"));
        let base_spec = DeploymentSpec {
            model: base_deployment_model(&run.base_model),
            source: None,
            source_account: None,
            ..spec.clone()
        };
        let outcome = async {
            self.arm
                .put(&hub.resource_id, &base_dep, &base_spec, None)
                .await?;
            let hub_client = self.inference(&hub.name)?.clone();
            let cand = evaluation::score(
                "candidate",
                &candidate,
                &self
                    .answer_all(&hub_client, &candidate, &model, &set)
                    .await?,
            );
            let mut baselines = vec![evaluation::score(
                "base",
                &base_dep,
                &self
                    .answer_all(&hub_client, &base_dep, &base_spec.model, &set)
                    .await?,
            )];
            let (inv, _) = inventory::load(self.store.as_ref()).await?;
            if let Some(prod) = inv
                .environments
                .get("prod")
                .and_then(|e| e.regions.values().next())
            {
                let client = self.inference(&prod.account)?.clone();
                baselines.push(evaluation::score(
                    "prod",
                    &prod.deployment,
                    &self
                        .answer_all(&client, &prod.deployment, &prod.model, &set)
                        .await?,
                ));
            }
            Ok::<(ModelScore, Vec<ModelScore>), PipelineError>((cand, baselines))
        }
        .await;
        // The evaluation deployment is removed whatever happened.
        if let Err(e) = self.arm.delete(&hub.resource_id, &candidate).await {
            tracing::warn!(error = %e, deployment = %candidate, "Could not remove the evaluation deployment.");
        }
        let (cand, baselines) = outcome?;
        let d = &self.topology.defaults;
        let price = |m: ModelScore| {
            m.priced(
                d.price_per_1k_prompt_tokens,
                d.price_per_1k_completion_tokens,
            )
        };
        let cand = price(cand);
        let baselines: Vec<ModelScore> = baselines.into_iter().map(price).collect();
        let thresholds = m.thresholds_or(&self.topology.defaults);
        let (passed, best, reasons) = evaluation::verdict(&cand, &baselines, &thresholds);
        let report = json!({"run_id": id, "examples": set.len(), "candidate": cand, "baselines": baselines, "thresholds": thresholds, "passed": passed, "reasons": reasons});
        self.put_report(
            id,
            "evaluation.json",
            &serde_json::to_vec_pretty(&report).unwrap_or_default(),
        )
        .await?;
        let mut md = format!(
            "# Evaluation: `{id}`\n\n**Verdict: {}**\n\n",
            if passed { "passed" } else { "failed" }
        );
        for r in &reasons {
            md.push_str(&format!("- ✗ {r}\n"));
        }
        md.push_str("\n| Model | Score | Exact match | Token F1 | p50 ms | p95 ms | Prompt tok | Completion tok | Cost / 1k req |\n|---|---|---|---|---|---|---|---|---|\n");
        for s in std::iter::once(&cand).chain(&baselines) {
            md.push_str(&format!(
                "| {} (`{}`) | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} | {:.1} | {:.1} | {:.4} |\n",
                s.label,
                s.deployment,
                s.score,
                s.exact_match,
                s.token_f1,
                s.latency_p50_ms,
                s.latency_p95_ms,
                s.prompt_tokens,
                s.completion_tokens,
                s.cost_per_1k_requests
            ));
        }
        if let Some(parent_id) = &m.parent_run {
            md.push_str(&self.lineage(&run, parent_id, cand.score).await?);
        }
        self.put_report(id, "evaluation.md", md.as_bytes()).await?;
        let scores: Vec<ModelScore> = std::iter::once(cand.clone())
            .chain(baselines.iter().cloned())
            .collect();
        let html = crate::views::reports::evaluation(id, passed, &reasons, &scores);
        self.put_report(id, "evaluation.html", html.as_bytes())
            .await?;
        let summary = EvaluationSummary {
            passed,
            score: cand.score,
            baseline_score: best,
            p95_latency_ms: cand.latency_p95_ms,
            reasons: reasons.clone(),
        };
        let mut moved = false;
        runs::update(self.store.as_ref(), id, |r| {
            Self::finish(r, "evaluate", if passed { "passed" } else { "failed" });
            if r.stage == Stage::Evaluating {
                r.evaluation = Some(summary.clone());
                let to = if passed {
                    Stage::Evaluated
                } else {
                    Stage::EvaluationFailed
                };
                let detail = format!(
                    "score {:.3} vs baseline {:.3}{}",
                    summary.score,
                    best,
                    if passed {
                        String::new()
                    } else {
                        format!(": {}", reasons.join("; "))
                    }
                );
                r.transition(to, ACTOR_PIPELINE, detail, Self::now());
                moved = true;
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        if !moved {
            return Ok(Emitted::default());
        }
        let kind = if passed {
            "evaluation.passed"
        } else {
            "evaluation.failed"
        };
        Ok(Emitted {
            notifications: vec![
                json!({"type": kind, "run_id": id, "score": cand.score, "baseline": best, "report": format!("reports/{id}/evaluation.md")}),
            ],
            next: vec![json!({"run_id": id, "passed": passed})],
        })
    }

    /// A Markdown section comparing a run with the run it iterates on.
    async fn lineage(
        &self,
        run: &Run,
        parent_id: &str,
        score: f64,
    ) -> Result<String, PipelineError> {
        let Some((parent, _)) = runs::get(self.store.as_ref(), parent_id).await? else {
            return Ok(format!(
                "\n## Lineage\n\nParent run `{parent_id}` was not found.\n"
            ));
        };
        let hp = |r: &Run| serde_json::to_string(&r.manifest.hyperparameters).unwrap_or_default();
        let loss = |r: &Run| {
            r.metrics
                .as_ref()
                .and_then(|m| m.final_train_loss)
                .map_or("-".to_owned(), |l| format!("{l:.4}"))
        };
        let eval = |s: Option<f64>| s.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let examples = |r: &Run| r.validation.as_ref().map_or(0, |v| v.training_examples);
        Ok(format!(
            "\n## Lineage\n\n| | Parent `{}` | This run |\n|---|---|---|\n| Data digest | `{}` | `{}` |\n| Training examples | {} | {} |\n| Hyperparameters | `{}` | `{}` |\n| Final training loss | {} | {} |\n| Evaluation score | {} | {} |\n",
            parent.id,
            &parent.data_digest[..12.min(parent.data_digest.len())],
            &run.data_digest[..12.min(run.data_digest.len())],
            examples(&parent),
            examples(run),
            hp(&parent),
            hp(run),
            loss(&parent),
            loss(run),
            eval(parent.evaluation.as_ref().map(|e| e.score)),
            eval(Some(score)),
        ))
    }

    /// Deploys the run's model to every Spoke of `env` in parallel, smoke-tests each, and
    /// records the result per region. All healthy moves the run; a partial failure leaves
    /// the environment degraded and fails so the trigger is retried.
    async fn promote(
        &self,
        id: &str,
        env: &str,
        actor: &str,
        model_run: Option<&Run>,
    ) -> Result<Run, PipelineError> {
        use futures_util::future::join_all;
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        let source_run = model_run.unwrap_or(&run).clone();
        let model = source_run
            .fine_tuned_model
            .clone()
            .ok_or_else(|| refused("no_model", "the run has no fine-tuned model"))?;
        let name = self.topology.deployment_name(&run.project);
        let d = &self.topology.deployment;
        let spokes = self.topology.spokes(env).to_vec();
        let steps = spokes.iter().map(|spoke| {
            let (spec, aux) = self.deployment_spec(&model, &source_run, spoke, &d.sku, d.capacity);
            let step = format!("deploy:{env}:{}:{}", spoke.region, source_run.id);
            let name = name.clone();
            let model = model.clone();
            async move {
                let outcome: Result<(), PipelineError> = async {
                    if self.begin(id, &step).await?.is_none() {
                        if let Err(e) = self
                            .arm
                            .put(&spoke.resource_id, &name, &spec, aux.as_deref())
                            .await
                        {
                            self.release(id, &step).await;
                            return Err(e.into());
                        }
                        runs::update(self.store.as_ref(), id, |r| {
                            Self::finish(r, &step, &name);
                            Ok::<(), PipelineError>(())
                        })
                        .await?;
                    }
                    self.inference(&spoke.name)?
                        .chat(&name, &model, &ping())
                        .await?;
                    Ok(())
                }
                .await;
                (spoke.clone(), outcome)
            }
        });
        let results = join_all(steps).await;
        let now = Self::now();
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(s, r)| r.as_ref().err().map(|e| format!("{}: {e}", s.region)))
            .collect();
        let stage = match env {
            "dev" => Stage::Dev,
            "test" => Stage::Test,
            _ => Stage::Prod,
        };
        let updated = runs::update(self.store.as_ref(), id, |r| {
            let state = r
                .environments
                .entry(env.to_owned())
                .or_insert_with(EnvironmentState::default);
            for (spoke, res) in &results {
                state.regions.insert(
                    spoke.region.clone(),
                    RegionState {
                        account: spoke.name.clone(),
                        deployment: name.clone(),
                        status: if res.is_ok() {
                            "verified".into()
                        } else {
                            "failed".into()
                        },
                        error: res.as_ref().err().map(ToString::to_string),
                        verified_at: res.is_ok().then_some(now),
                    },
                );
            }
            let healthy = failed.is_empty();
            let status = if healthy { "healthy" } else { "degraded" };
            if state.status != status {
                state.status = status.into();
                if healthy && r.stage < stage {
                    r.transition(
                        stage,
                        actor,
                        format!("serving {model} in {env} ({} regions)", results.len()),
                        now,
                    );
                } else if !healthy {
                    r.note(actor, &format!("{env}_degraded"), failed.join("; "), now);
                }
            }
            Ok::<(), PipelineError>(())
        })
        .await?;
        if !failed.is_empty() {
            return Err(PipelineError::Degraded {
                env: env.to_owned(),
                detail: failed.join("; "),
            });
        }
        inventory::update(self.store.as_ref(), |inv| {
            let e = inv.environments.entry(env.to_owned()).or_default();
            if e.history.last() != Some(&source_run.id) {
                e.history.push(source_run.id.clone());
            }
            for spoke in &spokes {
                e.regions.insert(
                    spoke.region.clone(),
                    Entry {
                        account: spoke.name.clone(),
                        region: spoke.region.clone(),
                        deployment: name.clone(),
                        model: model.clone(),
                        run_id: source_run.id.clone(),
                        deployed_at: now,
                        last_keepalive: Some(now),
                        last_latency_ms: None,
                        health: "healthy".into(),
                        restorations: 0,
                    },
                );
            }
        })
        .await?;
        Ok(updated)
    }

    /// After evaluation: a passing candidate goes to every Dev Spoke.
    ///
    /// # Errors
    /// Degraded (retryable) when a region failed.
    pub async fn promote_to_dev(&self, id: &str) -> Result<Emitted, PipelineError> {
        let (run, _) = runs::get(self.store.as_ref(), id)
            .await?
            .ok_or_else(|| refused("unknown_run", id.to_owned()))?;
        if run.stage != Stage::Evaluated
            && !(run.stage == Stage::Dev
                && run
                    .environments
                    .get("dev")
                    .is_some_and(|e| e.status != "healthy"))
        {
            return Ok(Emitted::default());
        }
        let r = self.promote(id, "dev", ACTOR_PIPELINE, None).await?;
        Ok(Emitted {
            notifications: vec![
                json!({"type": "promotion.dev", "run_id": id, "regions": r.environments["dev"].regions.keys().collect::<Vec<_>>()}),
            ],
            next: vec![],
        })
    }

    /// Applies a signed approval: verifies it, records it (nonce first, so a replay is
    /// refused), then promotes, rejects or rolls back.
    ///
    /// # Errors
    /// Refused (terminal, recorded) for every rule in [`approval::check`]; retryable for outages.
    pub async fn apply_approval(&self, signed: &SignedApproval) -> Result<Emitted, PipelineError> {
        let a = &signed.approval;
        let (run, _) = runs::get(self.store.as_ref(), &a.run_id)
            .await?
            .ok_or_else(|| refused("unknown_run", format!("run {} does not exist", a.run_id)))?;
        let env = self
            .topology
            .environments
            .get(&a.environment)
            .ok_or_else(|| refused("unknown_environment", a.environment.clone()))?;
        let (inv, _) = inventory::load(self.store.as_ref()).await?;
        let has_previous = inv
            .environments
            .get(&a.environment)
            .is_some_and(|e| e.history.len() >= 2);
        let reached = run.reached();
        // A redelivery of an approval already applied continues its promotion.
        let resuming = run.used_nonces.contains(&a.nonce)
            && run
                .environments
                .get(&a.environment)
                .is_some_and(|e| e.approved_by.as_deref() == Some(&a.approver));
        if !resuming {
            let ctx = approval::Context {
                approvers: &env.approvers,
                reached: &reached,
                evaluation_passed: run.evaluation.as_ref().is_some_and(|e| e.passed),
                submitted_by: &run.submitted_by,
                used_nonces: &run.used_nonces,
                now: Self::now(),
                max_age: chrono::Duration::minutes(self.topology.defaults.approval_max_age_minutes),
                has_previous,
            };
            if let Err(refusal) = approval::check(signed, &ctx) {
                let text = refusal.to_string();
                runs::update(self.store.as_ref(), &a.run_id, |r| {
                    r.note(
                        &a.approver,
                        "approval_refused",
                        format!("{} {:?}: {text}", a.environment, a.decision),
                        Self::now(),
                    );
                    Ok::<(), PipelineError>(())
                })
                .await?;
                return Err(refused("approval_refused", text));
            }
            runs::update(self.store.as_ref(), &a.run_id, |r| {
                if !r.used_nonces.contains(&a.nonce) {
                    r.used_nonces.push(a.nonce.clone());
                    r.environments
                        .entry(a.environment.clone())
                        .or_default()
                        .approved_by = Some(a.approver.clone());
                    r.note(
                        &a.approver,
                        "approval_accepted",
                        format!("{} {:?}: {}", a.environment, a.decision, a.reason),
                        Self::now(),
                    );
                }
                Ok::<(), PipelineError>(())
            })
            .await?;
        }
        match a.decision {
            Decision::Approve => {
                self.promote(&a.run_id, &a.environment, &a.approver, None)
                    .await?;
                Ok(Emitted {
                    notifications: vec![
                        json!({"type": format!("promotion.{}", a.environment), "run_id": a.run_id, "approver": a.approver}),
                    ],
                    next: vec![],
                })
            }
            Decision::Reject => {
                runs::update(self.store.as_ref(), &a.run_id, |r| {
                    r.environments
                        .entry(a.environment.clone())
                        .or_default()
                        .status = "rejected".into();
                    Ok::<(), PipelineError>(())
                })
                .await?;
                Ok(Emitted {
                    notifications: vec![
                        json!({"type": "promotion.rejected", "run_id": a.run_id, "environment": a.environment, "approver": a.approver, "reason": a.reason}),
                    ],
                    next: vec![],
                })
            }
            Decision::Rollback => {
                let history = inv
                    .environments
                    .get(&a.environment)
                    .map(|e| e.history.clone())
                    .unwrap_or_default();
                let previous = history
                    .iter()
                    .rev()
                    .nth(1)
                    .cloned()
                    .ok_or_else(|| refused("approval_refused", "nothing to roll back to"))?;
                let (prev_run, _) = runs::get(self.store.as_ref(), &previous)
                    .await?
                    .ok_or_else(|| refused("unknown_run", previous.clone()))?;
                self.promote(&a.run_id, &a.environment, &a.approver, Some(&prev_run))
                    .await?;
                runs::update(self.store.as_ref(), &a.run_id, |r| {
                    r.environments
                        .entry(a.environment.clone())
                        .or_default()
                        .status = "rolled_back".into();
                    r.note(
                        &a.approver,
                        "rollback",
                        format!("{} back to {previous}", a.environment),
                        Self::now(),
                    );
                    Ok::<(), PipelineError>(())
                })
                .await?;
                Ok(Emitted {
                    notifications: vec![
                        json!({"type": "rollback", "environment": a.environment, "to_run": previous}),
                    ],
                    next: vec![],
                })
            }
        }
    }

    /// Pings every fine-tuned deployment in the inventory, and every one found by listing
    /// the Spokes (drift); redeploys what vanished from its Hub model. Developer-tier
    /// deployments are skipped.
    ///
    /// # Errors
    /// Storage failures; per-deployment failures are recorded and reported.
    pub async fn keep_warm(&self) -> Result<Emitted, PipelineError> {
        use futures_util::future::join_all;
        let (inv, _) = inventory::load(self.store.as_ref()).await?;
        let mut targets: Vec<(String, Entry)> = inv
            .environments
            .iter()
            .flat_map(|(env, e)| e.regions.values().map(move |x| (env.clone(), x.clone())))
            .collect();
        // Drift: fine-tuned deployments on a Spoke that the inventory does not know.
        let mut drift = Vec::new();
        for env in ENVIRONMENTS {
            for spoke in self.topology.spokes(env) {
                let Ok(list) = self.arm.list(&spoke.resource_id).await else {
                    continue;
                };
                for d in list {
                    let known = targets
                        .iter()
                        .any(|(_, e)| e.account == spoke.name && e.deployment == d.name);
                    let developer = d.sku.as_ref().is_some_and(|s| {
                        s.name
                            .eq_ignore_ascii_case(crate::domain::aoai::sku::DEVELOPER)
                    });
                    if !known && !developer && d.properties.model.name.contains(".ft-") {
                        drift.push(format!("{}/{}", spoke.name, d.name));
                        targets.push((
                            env.to_owned(),
                            Entry {
                                account: spoke.name.clone(),
                                region: spoke.region.clone(),
                                deployment: d.name.clone(),
                                model: d.properties.model.name.clone(),
                                run_id: d.tags.get("fthub-run").cloned().unwrap_or_default(),
                                deployed_at: Self::now(),
                                last_keepalive: None,
                                last_latency_ms: None,
                                health: "unmanaged".into(),
                                restorations: 0,
                            },
                        ));
                    }
                }
            }
        }
        // At most `keepalive_concurrency_per_spoke` calls in flight per Spoke, all Spokes at once.
        let limit = self
            .topology
            .defaults
            .keepalive_concurrency_per_spoke
            .max(1);
        let gates: BTreeMap<String, Arc<tokio::sync::Semaphore>> = targets
            .iter()
            .map(|(_, e)| {
                (
                    e.account.clone(),
                    Arc::new(tokio::sync::Semaphore::new(limit)),
                )
            })
            .collect();
        let gates = &gates;
        let pings = targets.iter().map(|(env, e)| async move {
            let _slot = gates[&e.account]
                .acquire()
                .await
                .map_err(|_| refused("shutdown", "keepalive stopped"))?;
            let client = self.inference(&e.account)?.clone();
            match client.chat(&e.deployment, &e.model, &ping()).await {
                Ok(r) => {
                    Ok::<_, PipelineError>((env.clone(), e.clone(), Some(r.latency_ms), false))
                }
                Err(AoaiError::Http { status: 404, .. }) if e.health != "unmanaged" => {
                    // Deleted behind our back (the 15-day rule, or a person): redeploy from the Hub model.
                    let spoke = self
                        .topology
                        .account(&e.account)
                        .cloned()
                        .ok_or_else(|| refused("unknown_account", e.account.clone()))?;
                    let (run, _) = runs::get(self.store.as_ref(), &e.run_id)
                        .await?
                        .ok_or_else(|| refused("unknown_run", e.run_id.clone()))?;
                    let d = &self.topology.deployment;
                    let (spec, aux) =
                        self.deployment_spec(&e.model, &run, &spoke, &d.sku, d.capacity);
                    self.arm
                        .put(&spoke.resource_id, &e.deployment, &spec, aux.as_deref())
                        .await?;
                    let r = client.chat(&e.deployment, &e.model, &ping()).await?;
                    Ok((env.clone(), e.clone(), Some(r.latency_ms), true))
                }
                Err(err) => Err(err.into()),
            }
        });
        let results = join_all(pings).await;
        let now = Self::now();
        let mut restored = Vec::new();
        let mut failing = Vec::new();
        let mut ok = 0;
        for (r, (env, e)) in results.iter().zip(&targets) {
            match r {
                Ok((_, _, _, true)) => {
                    restored.push(format!("{env}/{}/{}", e.region, e.deployment))
                }
                Ok(_) => ok += 1,
                Err(err) => failing.push(format!("{env}/{}/{}: {err}", e.region, e.deployment)),
            }
        }
        inventory::update(self.store.as_ref(), |inv| {
            for (r, (env, e)) in results.iter().zip(&targets) {
                let Some(entry) = inv
                    .environments
                    .get_mut(env)
                    .and_then(|x| x.regions.get_mut(&e.region))
                else {
                    continue;
                };
                if entry.deployment != e.deployment {
                    continue;
                }
                match r {
                    Ok((_, _, latency, was_restored)) => {
                        entry.last_keepalive = Some(now);
                        entry.last_latency_ms = *latency;
                        entry.health = if *was_restored {
                            "restored".into()
                        } else {
                            "healthy".into()
                        };
                        if *was_restored {
                            entry.restorations += 1;
                            entry.deployed_at = now;
                        }
                    }
                    Err(_) => entry.health = "failing".into(),
                }
            }
        })
        .await?;
        let mut notifications = vec![
            json!({"type": "keepalive", "pinged": ok, "restored": restored, "failing": failing, "drift": drift}),
        ];
        for r in &restored {
            notifications.push(json!({"type": "keepalive.restored", "deployment": r}));
        }
        Ok(Emitted {
            notifications,
            next: vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_deploys_the_family_of_a_dated_base_model() {
        assert_eq!(base_deployment_model("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(
            base_deployment_model("gpt-4.1-mini-2025-04-14"),
            "gpt-4.1-mini"
        );
        assert_eq!(base_deployment_model("gpt-35-turbo-0125"), "gpt-35-turbo");
        assert_eq!(base_deployment_model("custom-model"), "custom-model");
    }
}

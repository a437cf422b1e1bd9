//! The pipeline: drop → validate → train → evaluate → promote → keep warm. Every function
//! calls one method here; each method re-reads the run, does the next step through the
//! ports, and records it. Side effects are journalled in the run (started before, done
//! after), so a redelivered trigger or a restart after a crash continues where it stopped
//! and never creates a second job or repeats a finished deployment step.

mod approvals;
mod deadletters;
mod effect;
mod evaluation;
mod heldout;
mod intake;
mod keepwarm;
mod operator;
mod pacing;
mod promotion;
mod queue;
mod reconcile;
mod slots;
mod training;

pub use deadletters::DeadLetter;
pub use pacing::Pacers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::inventory;
use super::runs::{self, REPORTS, UpdateError};
use super::validation::{self, FileRole, StreamOptions, Validated, role_of, validate_blob};
use crate::domain::aoai::{
    ChatMessage, ChatRequest, CreateJob, DeploymentSpec, JobPhase, parse_results_csv,
};
use crate::domain::approval::{self, Decision, SignedApproval};
use crate::domain::dataset_path::{DATASETS_CONTAINER, DatasetPath};
use crate::domain::env::Env;
use crate::domain::evaluation::{Answered, ModelScore};
use crate::domain::manifest::Manifest;
use crate::domain::messages::{Message, Notification};
use crate::domain::run::{
    DataFile, EnvStatus, EnvironmentState, EvaluationSummary, Event, RegionState, RegionStatus,
    Run, Stage, TrainingMetrics, ValidationSummary, run_id, sha256_hex,
};
use crate::domain::topology::{Account, Topology};
use crate::domain::validation::{Rules, tokens};
use crate::error::{Classify, ErrorClass};
use crate::ports::{
    AoaiError, BlobError, BlobStore, Clock, Condition, Deployments, Hub, Inference, KeyError,
    KeySource, SystemClock,
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
    pub notifications: Vec<Notification>,
    /// For the function's queue output (`training-completed`, `evaluation-completed`).
    pub next: Vec<Message>,
}

impl Emitted {
    /// One notification.
    pub fn notify(n: Notification) -> Self {
        Self {
            notifications: vec![n],
            next: Vec::new(),
        }
    }

    /// Adds what another step emitted.
    pub fn extend(&mut self, other: Emitted) {
        self.notifications.extend(other.notifications);
        self.next.extend(other.next);
    }
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
    /// A side-effect claim not renewed for this long belongs to a dead invocation (its holder
    /// renews it every third of this while it works).
    pub claim_ttl: Duration,
    /// How long a duplicate waits for the claim holder before failing retryably.
    pub claim_wait: Duration,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// How long a step that a message drives may sit idle before the reconciler re-drives
    /// it (the message was lost or dead-lettered).
    pub reconcile_grace: Duration,
    /// Runs the reconciler advances at once.
    pub reconcile_concurrency: usize,
    /// Held-out examples scored at most; a larger set is sampled uniformly.
    pub eval_cap: usize,
    /// Examples per stored evaluation batch.
    pub eval_batch: usize,
    /// How long one invocation scores before it pauses (well inside `functionTimeout`).
    pub eval_budget: Duration,
    /// How long one KeepWarm pass may take: calls still unanswered then are recorded as
    /// failing (an unreachable Spoke must not hold the timer for its whole retry budget).
    pub keepalive_budget: Duration,
    /// Per-deployment pacing of evaluation calls within each deployment's rate limits.
    pub pacers: Arc<Pacers>,
    /// Requests per minute per capacity unit, when the contract differs from the documented
    /// table (6 for chat models, 1 for o-series).
    pub rpm_per_unit: Option<f64>,
    /// Where Azure offers fine-tuned deployments.
    pub availability: Arc<crate::domain::availability::Availability>,
}

const ACTOR_PIPELINE: &str = "pipeline";

/// Warn about a base model whose fine-tuning retires within this many days.
const RETIRING_DAYS: i64 = 30;

/// Where a base model is in its life on the Hub.
enum Lifecycle {
    /// Fine-tunable with no retirement in sight.
    Current,
    /// Retiring soon: a flag.
    Retiring(String),
    /// No longer fine-tunable: the run is refused.
    Retired(String),
    /// Not known (not listed, or the lookup failed): a flag.
    Unknown(String),
}

impl Pipeline {
    /// A pipeline over these ports with the default settings (the composition root,
    /// `app`, overrides them from its settings).
    pub fn new(
        store: Arc<dyn BlobStore>,
        topology: Topology,
        hub: Arc<dyn Hub>,
        inference: BTreeMap<String, Arc<dyn Inference>>,
        arm: Arc<dyn Deployments>,
    ) -> Self {
        Self {
            store,
            topology: Arc::new(topology),
            hub,
            inference,
            arm,
            file_wait: Duration::from_secs(20),
            eval_concurrency: 4,
            keys: None,
            // A live holder renews its claim every third of this, however long its step runs
            // (see `effect.rs`): a claim not renewed for this long belongs to a dead holder.
            claim_ttl: Duration::from_secs(90),
            claim_wait: Duration::from_secs(240),
            clock: Arc::new(SystemClock),
            reconcile_grace: Duration::from_secs(120),
            reconcile_concurrency: 8,
            eval_cap: 10_000,
            eval_batch: 50,
            // host.json's functionTimeout is 10 min: pause with room for the reports.
            eval_budget: Duration::from_secs(360),
            keepalive_budget: Duration::from_secs(240),
            pacers: Arc::new(Pacers::default()),
            rpm_per_unit: None,
            availability: Arc::new(crate::domain::availability::Availability::built_in()),
        }
    }
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
    fn now(&self) -> chrono::DateTime<Utc> {
        self.clock.now()
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

    /// Whether the Hub still fine-tunes `model`, from its Models API. A lookup that fails
    /// never blocks intake: it leaves a flag.
    async fn lifecycle(&self, model: &str) -> Lifecycle {
        let now = self.now();
        let date = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%d").to_string())
        };
        match self.hub.model(model).await {
            Ok(Some(m)) => match m.deprecation.and_then(|d| d.fine_tune) {
                Some(t) if t <= now.timestamp() => Lifecycle::Retired(format!(
                    "the Hub no longer fine-tunes {model}: its fine-tuning retired on {} (Models API)",
                    date(t)
                )),
                Some(t) if t <= (now + chrono::Duration::days(RETIRING_DAYS)).timestamp() => {
                    Lifecycle::Retiring(format!(
                        "{model} can be fine-tuned only until {}: plan the move to a newer base model",
                        date(t)
                    ))
                }
                _ => Lifecycle::Current,
            },
            Ok(None) => Lifecycle::Unknown(format!(
                "the Hub's Models API does not list {model}; its retirement date is unknown"
            )),
            Err(e) => Lifecycle::Unknown(format!(
                "the Hub's Models API could not be read for {model} ({e}); its retirement date is unknown"
            )),
        }
    }

    /// Whether every deployment a run of `model` needs is offered by Azure: its evaluation on
    /// the Hub and its promotion to every Spoke, with the topology's SKUs. The reason names
    /// the first that is not, with the availability table's source.
    fn deployable(&self, model: &str) -> Result<(), String> {
        let t = &self.topology;
        let d = &t.deployment;
        std::iter::once((&t.hub, d.evaluation_sku.as_str()))
            .chain(
                t.environments
                    .values()
                    .flat_map(|e| e.spokes.iter())
                    .map(|s| (s, d.sku.as_str())),
            )
            .try_for_each(|(a, sku)| {
                self.availability
                    .check(model, sku, &a.region)
                    .map_err(|e| format!("{} ({}): {e}", a.name, a.region))
            })
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

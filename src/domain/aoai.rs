//! Azure OpenAI resource shapes: files, fine-tuning jobs, events, checkpoints, ARM
//! deployments and chat completions, plus the pure rules around them (open status
//! vocabularies, `results.csv` parsing, model families). Field names follow the REST
//! payloads; unknown fields are ignored and unknown enum values are kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A file on the data plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    /// `file-…`.
    pub id: String,
    /// Open: `uploaded, pending, running, processed, error, deleting, deleted`, …
    pub status: String,
    /// File name.
    #[serde(default)]
    pub filename: String,
    /// Purpose, e.g. `fine-tune`.
    #[serde(default)]
    pub purpose: String,
    /// Size.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Why processing failed.
    #[serde(default)]
    pub status_details: Option<String>,
}

impl FileObject {
    /// `processed` (or OpenAI's `uploaded` on surfaces that never say more).
    pub fn is_ready(&self) -> bool {
        self.status == "processed"
    }
    /// `error` or `deleted`.
    pub fn is_failed(&self) -> bool {
        matches!(self.status.as_str(), "error" | "deleted")
    }
}

/// A fine-tuning job's phase, mapped from either status vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// `created, pending, validating_files, queued`.
    Waiting,
    /// `running, pausing, resuming`.
    Active,
    /// `paused`.
    Paused,
    /// `succeeded`.
    Succeeded,
    /// `failed`.
    Failed,
    /// `cancelled`.
    Cancelled,
    /// A status this code does not know; kept, never fatal.
    Unknown,
}

impl JobPhase {
    /// Maps a status string from the dated Azure API, the preview API or v1/OpenAI.
    pub fn of(status: &str) -> Self {
        match status {
            "created" | "pending" | "validating_files" | "queued" | "notRunning" => {
                JobPhase::Waiting
            }
            "running" | "pausing" | "resuming" => JobPhase::Active,
            "paused" => JobPhase::Paused,
            "succeeded" => JobPhase::Succeeded,
            "failed" => JobPhase::Failed,
            "cancelled" | "canceled" => JobPhase::Cancelled,
            _ => JobPhase::Unknown,
        }
    }
    /// No further change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobPhase::Succeeded | JobPhase::Failed | JobPhase::Cancelled
        )
    }
}

/// `FineTuningJobError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    /// Code.
    #[serde(default)]
    pub code: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
    /// Parameter at fault.
    #[serde(default)]
    pub param: Option<String>,
}

/// A model as the Models API describes it (`GET /openai/models/{id}` on a dated surface).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model id.
    pub id: String,
    /// `generally-available`, `preview`, `deprecating`, `deprecated` (open set).
    #[serde(default)]
    pub lifecycle_status: Option<String>,
    /// Retirement dates.
    #[serde(default)]
    pub deprecation: Option<Deprecation>,
    /// What it can do.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
}

/// When a model stops being fine-tunable or served (unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deprecation {
    /// End of fine-tuning (`null` for fine-tuned models).
    #[serde(default)]
    pub fine_tune: Option<i64>,
    /// End of inference.
    #[serde(default)]
    pub inference: Option<i64>,
}

/// A model's capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Can be fine-tuned.
    #[serde(default)]
    pub fine_tune: bool,
    /// Can be deployed for inference.
    #[serde(default)]
    pub inference: bool,
}

/// A fine-tuning job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `ftjob-…`.
    pub id: String,
    /// Raw status; see [`Job::phase`].
    pub status: String,
    /// Base model.
    #[serde(default)]
    pub model: String,
    /// Set once succeeded.
    #[serde(default)]
    pub fine_tuned_model: Option<String>,
    /// Training file id.
    #[serde(default)]
    pub training_file: Option<String>,
    /// Validation file id.
    #[serde(default)]
    pub validation_file: Option<String>,
    /// `results.csv` and friends.
    #[serde(default)]
    pub result_files: Vec<String>,
    /// Billable tokens.
    #[serde(default)]
    pub trained_tokens: Option<u64>,
    /// Hyperparameters as returned (`n_epochs: -1` means default).
    #[serde(default)]
    pub hyperparameters: Option<Value>,
    /// Suffix.
    #[serde(default)]
    pub suffix: Option<String>,
    /// Seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Unix seconds.
    #[serde(default)]
    pub finished_at: Option<i64>,
    /// Failure details.
    #[serde(default)]
    pub error: Option<JobError>,
}

impl Job {
    /// The phase of the raw status.
    pub fn phase(&self) -> JobPhase {
        JobPhase::of(&self.status)
    }
}

/// Hyperparameters for a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    /// Epochs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_epochs: Option<u32>,
    /// Batch size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Learning-rate multiplier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate_multiplier: Option<f64>,
    /// DPO only: the weight of the penalty between the policy and the reference model
    /// (`method.dpo.hyperparameters.beta` on the surfaces that define `method`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
}

/// Training method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingMethod {
    /// Supervised fine-tuning.
    #[default]
    Supervised,
    /// Direct preference optimisation.
    Dpo,
}

/// A job to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateJob {
    /// Base (or fine-tuned, for continued training) model.
    pub model: String,
    /// Training file id.
    pub training_file: String,
    /// Validation file id.
    pub validation_file: Option<String>,
    /// Up to 40 characters of `a-z A-Z 0-9 - _`.
    pub suffix: Option<String>,
    /// Seed.
    pub seed: Option<i64>,
    /// Hyperparameters.
    pub hyperparameters: Hyperparameters,
    /// Method.
    pub method: TrainingMethod,
}

pub use aoai_facts::rules::check_suffix;

/// A job event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Id.
    pub id: String,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: i64,
    /// `info | warning | warn | error`.
    #[serde(default)]
    pub level: String,
    /// Text.
    #[serde(default)]
    pub message: String,
    /// `message | metrics`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Id.
    pub id: String,
    /// Deployable model name of the checkpoint.
    pub fine_tuned_model_checkpoint: String,
    /// Step.
    #[serde(default)]
    pub step_number: u64,
    /// Metrics by name.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// Items.
    pub data: Vec<T>,
    /// More after the last item.
    #[serde(default)]
    pub has_more: bool,
}

/// One row of `results.csv`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsRow {
    /// Step.
    pub step: u64,
    /// Training loss.
    pub train_loss: Option<f64>,
    /// Training token accuracy.
    pub train_mean_token_accuracy: Option<f64>,
    /// Validation loss.
    pub valid_loss: Option<f64>,
    /// Validation token accuracy (either header spelling).
    pub valid_mean_token_accuracy: Option<f64>,
    /// Full validation loss (epoch ends only).
    pub full_valid_loss: Option<f64>,
    /// Full validation token accuracy (epoch ends only).
    pub full_valid_mean_token_accuracy: Option<f64>,
}

/// Why `results.csv` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultsError {
    /// No header, or no `step` column.
    #[error("results.csv has no step column")]
    NoStep,
    /// A cell that is neither empty nor a number.
    #[error("results.csv line {line}: {column} is not a number")]
    BadCell {
        /// 1-based line.
        line: usize,
        /// Column name.
        column: String,
    },
}

/// Parses `results.csv` by header name: columns in any order, both spellings of the
/// validation accuracy, `train_accuracy` for the older OpenAI name, empty cells as absent.
pub fn parse_results_csv(text: &str) -> Result<Vec<MetricsRow>, ResultsError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or(ResultsError::NoStep)?
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let step_col = header
        .iter()
        .position(|h| h == "step")
        .ok_or(ResultsError::NoStep)?;
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let mut row = MetricsRow::default();
        for (c, name) in header.iter().enumerate() {
            let cell = cells.get(c).copied().unwrap_or("");
            if cell.is_empty() {
                continue;
            }
            let v: f64 = cell.parse().map_err(|_| ResultsError::BadCell {
                line: i + 2,
                column: name.clone(),
            })?;
            match name.as_str() {
                _ if c == step_col => row.step = v as u64,
                "train_loss" => row.train_loss = Some(v),
                "train_mean_token_accuracy" | "train_accuracy" => {
                    row.train_mean_token_accuracy = Some(v)
                }
                "valid_loss" | "validation_loss" => row.valid_loss = Some(v),
                "valid_mean_token_accuracy" | "validation_mean_token_accuracy" => {
                    row.valid_mean_token_accuracy = Some(v)
                }
                "full_valid_loss" => row.full_valid_loss = Some(v),
                "full_valid_mean_token_accuracy" => row.full_valid_mean_token_accuracy = Some(v),
                _ => {}
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// o-series models take `max_completion_tokens`; the rest `max_tokens`.
pub fn uses_max_completion_tokens(model: &str) -> bool {
    aoai_facts::rules::is_reasoning_model(model)
}

/// ARM SKU names for fine-tuned deployments.
pub mod sku {
    /// Regional standard.
    pub const STANDARD: &str = "Standard";
    /// Global standard.
    pub const GLOBAL_STANDARD: &str = "GlobalStandard";
    /// Developer tier: deleted after 24 h whatever the traffic.
    pub const DEVELOPER: &str = "developertier";
}

/// What to deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    /// Model name, e.g. `gpt-4.1-mini-2025-04-14.ft-…`.
    pub model: String,
    /// Always `"1"` for fine-tuned models.
    pub version: String,
    /// SKU name.
    pub sku: String,
    /// Capacity units (1 = 1,000 TPM).
    pub capacity: u32,
    /// Same tenant, other subscription or region: the Hub account's resource id.
    pub source: Option<String>,
    /// Other tenant: the Hub account's resource id (with an auxiliary token).
    pub source_account: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl DeploymentSpec {
    /// The ARM PUT body.
    pub fn body(&self) -> Value {
        let mut model =
            serde_json::json!({"format": "OpenAI", "name": self.model, "version": self.version});
        if let Some(s) = &self.source {
            model["source"] = Value::String(s.clone());
        }
        if let Some(s) = &self.source_account {
            model["sourceAccount"] = Value::String(s.clone());
        }
        serde_json::json!({
            "sku": {"name": self.sku, "capacity": self.capacity},
            "tags": self.tags,
            "properties": {"model": model},
        })
    }
}

/// A deployment as ARM returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// ARM id.
    #[serde(default)]
    pub id: String,
    /// Deployment name.
    pub name: String,
    /// SKU.
    #[serde(default)]
    pub sku: Option<Sku>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Properties.
    pub properties: DeploymentProperties,
}

/// `sku`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sku {
    /// Name.
    pub name: String,
    /// Capacity.
    #[serde(default)]
    pub capacity: Option<u32>,
}

/// `properties`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentProperties {
    /// `properties.model`.
    pub model: DeploymentModel,
    /// Open: `Accepted, Creating, Succeeded, Failed, Canceled, Deleting, Disabled, Moving`.
    #[serde(default, rename = "provisioningState")]
    pub provisioning_state: Option<String>,
}

/// `properties.model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentModel {
    /// `OpenAI`.
    #[serde(default)]
    pub format: String,
    /// Model name.
    pub name: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Cross-subscription source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Cross-tenant source.
    #[serde(
        default,
        rename = "sourceAccount",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_account: Option<String>,
}

/// Terminal provisioning states.
pub fn is_terminal_provisioning(state: &str) -> bool {
    matches!(state, "Succeeded" | "Failed" | "Canceled")
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Role.
    pub role: String,
    /// Text.
    #[serde(default)]
    pub content: Option<String>,
}

/// A chat completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Messages.
    pub messages: Vec<ChatMessage>,
    /// Completion token cap.
    pub max_tokens: Option<u32>,
    /// Temperature.
    pub temperature: Option<f64>,
}

/// `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Total.
    #[serde(default)]
    pub total_tokens: u64,
}

/// A completed chat call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResult {
    /// The first choice's text.
    pub content: String,
    /// `finish_reason`.
    pub finish_reason: Option<String>,
    /// Usage.
    pub usage: Usage,
    /// Wall time of the successful attempt, in milliseconds.
    pub latency_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_status_vocabularies_map_and_unknown_values_are_kept() {
        assert_eq!(JobPhase::of("pending"), JobPhase::Waiting);
        assert_eq!(JobPhase::of("validating_files"), JobPhase::Waiting);
        assert_eq!(JobPhase::of("queued"), JobPhase::Waiting);
        assert_eq!(JobPhase::of("running"), JobPhase::Active);
        assert_eq!(JobPhase::of("paused"), JobPhase::Paused);
        assert_eq!(JobPhase::of("succeeded"), JobPhase::Succeeded);
        assert_eq!(JobPhase::of("hibernating"), JobPhase::Unknown);
        let job: Job = serde_json::from_str(
            r#"{"id":"ftjob-1","status":"hibernating","model":"m","extra":{"x":1}}"#,
        )
        .expect("job");
        assert_eq!(job.phase(), JobPhase::Unknown);
        assert_eq!(job.status, "hibernating");
    }

    #[test]
    fn results_csv_parses_by_header_name_with_either_spelling_and_empty_cells() {
        let a = parse_results_csv("step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.52347,0.0,,\n2,1.2,0.5,1.3,0.45\n").expect("csv");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].valid_loss, None);
        assert_eq!(a[1].valid_mean_token_accuracy, Some(0.45));
        let b = parse_results_csv(
            "train_loss,step,validation_mean_token_accuracy,full_valid_loss\n0.9,7,0.6,\n",
        )
        .expect("csv");
        assert_eq!(
            (
                b[0].step,
                b[0].valid_mean_token_accuracy,
                b[0].full_valid_loss
            ),
            (7, Some(0.6), None)
        );
        let c = parse_results_csv("step,train_loss,train_accuracy\n3,0.5,0.8\n")
            .expect("older OpenAI header");
        assert_eq!(c[0].train_mean_token_accuracy, Some(0.8));
        assert!(parse_results_csv("loss\n1\n").is_err());
        assert!(matches!(
            parse_results_csv("step,train_loss\n1,abc\n"),
            Err(ResultsError::BadCell { line: 2, .. })
        ));
    }

    #[test]
    fn suffixes_follow_azures_rule() {
        assert!(check_suffix("run-7_a").is_ok());
        assert!(check_suffix(&"a".repeat(41)).is_err());
        assert!(check_suffix("has space").is_err());
    }

    #[test]
    fn o_series_models_use_max_completion_tokens() {
        assert!(uses_max_completion_tokens("o4-mini-2025-04-16.ft-abc"));
        assert!(!uses_max_completion_tokens(
            "gpt-4.1-mini-2025-04-14.ft-abc"
        ));
    }

    #[test]
    fn the_deployment_body_matches_the_reference_shape() {
        let spec = DeploymentSpec {
            model: "gpt-4.1-mini-2025-04-14.ft-0ab3".into(),
            version: "1".into(),
            sku: sku::STANDARD.into(),
            capacity: 1,
            source: Some("/subscriptions/HUB/resourceGroups/RG/providers/Microsoft.CognitiveServices/accounts/hub".into()),
            source_account: None,
            tags: BTreeMap::new(),
        };
        let b = spec.body();
        assert_eq!(
            b["sku"],
            serde_json::json!({"name": "Standard", "capacity": 1})
        );
        assert_eq!(b["properties"]["model"]["format"], "OpenAI");
        assert_eq!(b["properties"]["model"]["version"], "1");
        assert!(
            b["properties"]["model"]["source"]
                .as_str()
                .expect("source")
                .starts_with("/subscriptions/HUB")
        );
        assert!(b["properties"]["model"].get("sourceAccount").is_none());
    }
}

//! Rules of Azure OpenAI the emulator enforces, written from the published specifications
//! and Learn pages independently of fthub's client (which must agree with them to pass).

/// ARM SKU names of deployments (`sku.name`, compared case-insensitively as ARM does).
pub mod sku {
    /// Regional standard.
    pub const STANDARD: &str = "Standard";
    /// Global standard.
    pub const GLOBAL_STANDARD: &str = "GlobalStandard";
    /// Developer tier (fine-tuned models only, 24-hour lifetime).
    pub const DEVELOPER: &str = "developertier";
}

/// The first ARM api-version that knows the Developer tier (Learn, "Test a fine-tuned model").
pub const DEVELOPER_API_VERSION: &str = "2025-07-01-preview";

/// The first dated data-plane api-version that serves reasoning (o-series) models.
pub const O_SERIES_MIN_API_VERSION: &str = "2024-12-01-preview";

/// Dated data-plane api-versions (azure-rest-api-specs,
/// `specification/cognitiveservices/data-plane/AzureOpenAI/{inference,authoring}/{stable,preview}`).
/// Azure answers any other with 404 `Resource not found`.
pub const DATED_API_VERSIONS: &[&str] = &[
    "2022-12-01",
    "2023-05-15",
    "2024-02-01",
    "2024-06-01",
    "2024-10-21",
    "2023-03-15-preview",
    "2023-06-01-preview",
    "2023-07-01-preview",
    "2023-08-01-preview",
    "2023-09-01-preview",
    "2023-10-01-preview",
    "2023-12-01-preview",
    "2024-02-15-preview",
    "2024-03-01-preview",
    "2024-04-01-preview",
    "2024-05-01-preview",
    "2024-07-01-preview",
    "2024-08-01-preview",
    "2024-09-01-preview",
    "2024-10-01-preview",
    "2024-12-01-preview",
    "2025-01-01-preview",
    "2025-02-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
];

pub use aoai_facts::rules::{check_suffix, is_reasoning_model, token_tenant};

/// Base models the emulated accounts list (`GET /openai/models`): id, creation date (the
/// model version), and whether it can be fine-tuned. Retirement dates are the emulator's
/// own defaults (three years to fine-tuning retirement, four to inference), not Azure's —
/// Azure's come from its Models API, which is why fthub reads them there; tests set them
/// with `POST /_emulator/models`.
pub const BASE_MODELS: &[(&str, &str, bool)] = &[
    ("gpt-4.1-2025-04-14", "2025-04-14", true),
    ("gpt-4.1-mini-2025-04-14", "2025-04-14", true),
    ("gpt-4.1-nano-2025-04-14", "2025-04-14", true),
    ("gpt-4o-2024-08-06", "2024-08-06", true),
    ("gpt-4o-mini-2024-07-18", "2024-07-18", true),
    ("gpt-35-turbo-0125", "2024-01-25", true),
    ("o4-mini-2025-04-16", "2025-04-16", true),
    ("gpt-5-2025-08-07", "2025-08-07", false),
];

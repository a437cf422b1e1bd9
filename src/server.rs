//! `fthub serve`: the custom-handler HTTP server the Functions host starts.
//!
//! It binds `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` before anything slow, because the
//! host's readiness check is only "does `GET /` answer". Then it serves `POST /{Function}`
//! for every function with bodies up to 100 MB (axum's default is 2 MB).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::adapters::OpenStoreError;
use crate::adapters::azure::credential::{CredentialError, Entra};
use crate::adapters::azure::keyvault::KeyVaultKeys;
use crate::adapters::azure::{Auth, Http, RetryPolicy, Secret, StaticToken, TokenSource};
use crate::config::ServeConfig;
use crate::domain::topology::{Topology, TopologyError};
use crate::functions;
use crate::host::envelope::{Invocation, InvokeResponse};
use crate::host::outcome;
use crate::ports::BlobStore;
use crate::services::pipeline::Pipeline;

/// The largest invocation body accepted: the host caps HTTP requests at 100 MB.
pub const MAX_BODY_BYTES: usize = 100 * 1024 * 1024;

/// Shared handler state: the ports the functions use.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Blob storage (state, audit, reports, datasets).
    pub store: Arc<dyn BlobStore>,
    /// The pipeline over the topology's accounts.
    pub pipeline: Arc<Pipeline>,
    /// Process start, for the status API.
    pub started: Instant,
}

/// Why the handler cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The topology file could not be read.
    #[error("cannot read the topology {path}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The topology is invalid.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// No Entra identity could be set up.
    #[error(transparent)]
    Identity(#[from] CredentialError),
    /// The blob store could not be opened.
    #[error(transparent)]
    Store(#[from] OpenStoreError),
}

impl AppState {
    /// The state from settings: with `FTHUB_TOPOLOGY`, the topology's accounts with the
    /// process's Entra identity (managed identity in Azure); without, the local topology on
    /// the emulator (`FTHUB_EMULATOR_URL`, default `http://127.0.0.1:7072`) with a local
    /// key. Storage is [`ServeConfig::storage`].
    ///
    /// # Errors
    /// An unreadable or invalid topology, a bad storage setting, or no identity.
    pub fn from_config(config: &ServeConfig) -> Result<Self, StartError> {
        // One identity for storage, the data plane and ARM, built only if something needs it.
        let identity = std::sync::OnceLock::<Entra>::new();
        let entra = || -> Result<Entra, CredentialError> {
            if let Some(e) = identity.get() {
                return Ok(e.clone());
            }
            let e = Entra::from_env()?;
            Ok(identity.get_or_init(|| e).clone())
        };
        let store: Arc<dyn BlobStore> = config.storage.open(entra)?;
        tracing::info!(storage = %config.storage.describe(), "Blob store selected.");
        let http = Http::new(RetryPolicy::default());
        let (topology, data_auth, arm_tokens): (Topology, Auth, Arc<dyn TokenSource>) =
            match &config.topology {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| StartError::Read {
                            path: path.display().to_string(),
                            source,
                        })?;
                    let t = Topology::from_json(&text)?;
                    let id: Arc<dyn TokenSource> = Arc::new(entra()?);
                    (t, Auth::Bearer(id.clone()), id)
                }
                None => {
                    let base = std::env::var("FTHUB_EMULATOR_URL")
                        .unwrap_or_else(|_| "http://127.0.0.1:7072".into());
                    let t = Topology::local(&base);
                    t.validate()?;
                    // The emulator takes any key; `FTHUB_EMULATOR_KEY` lets tests plant a
                    // recognisable one and prove it never reaches a log, report or record.
                    let key = std::env::var("FTHUB_EMULATOR_KEY")
                        .ok()
                        .filter(|k| !k.is_empty())
                        .unwrap_or_else(|| "local".into());
                    (
                        t,
                        Auth::ApiKey(Secret::new(key.clone())),
                        Arc::new(StaticToken(Secret::new(key))),
                    )
                }
            };
        let poll = std::time::Duration::from_millis(250);
        let mut pipeline =
            Pipeline::connect(store.clone(), topology, &http, &data_auth, arm_tokens, poll);
        if let Some(ttl) = seconds_setting("FTHUB_CLAIM_TTL_SECONDS") {
            pipeline.claim_ttl = ttl;
        }
        if let Some(wait) = seconds_setting("FTHUB_CLAIM_WAIT_SECONDS") {
            pipeline.claim_wait = wait;
        }
        if let Some(grace) = seconds_setting("FTHUB_RECONCILE_GRACE_SECONDS") {
            pipeline.reconcile_grace = grace;
        }
        if let Some(budget) = seconds_setting("FTHUB_EVAL_BUDGET_SECONDS") {
            pipeline.eval_budget = budget;
        }
        let count = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
        };
        if let Some(cap) = count("FTHUB_EVAL_CAP") {
            pipeline.eval_cap = cap;
        }
        if let Some(batch) = count("FTHUB_EVAL_BATCH") {
            pipeline.eval_batch = batch;
        }
        // Customer-provided keys come from Key Vault with the same identity, in Azure mode
        // and whenever storage is reached with Entra ID.
        if config.topology.is_some() || config.storage.needs_identity() {
            pipeline.keys = Some(Arc::new(KeyVaultKeys::new(entra()?.credential())));
        }
        Ok(Self {
            store,
            pipeline: Arc::new(pipeline),
            started: Instant::now(),
        })
    }
}

/// A whole number of seconds from an app setting.
fn seconds_setting(name: &str) -> Option<std::time::Duration> {
    std::env::var(name)
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(std::time::Duration::from_secs)
}

/// The handler's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(ready))
        .route("/{function}", post(invoke))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Binds, then builds the state, then serves until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the port cannot be bound or the server fails.
pub async fn serve(config: ServeConfig) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
    tracing::info!(addr = %listener.local_addr()?, "Handler listening.");
    let state = AppState::from_config(&config).map_err(std::io::Error::other)?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn ready() -> Json<serde_json::Value> {
    Json(json!({"status": "ready", "service": "fthub"}))
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(InvokeResponse::default().log("no such route")),
    )
        .into_response()
}

async fn invoke(
    State(state): State<AppState>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let invocation_id = headers
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span =
        tracing::info_span!("invocation", function = %function, invocation_id = %invocation_id);
    async move {
        let Some(spec) = functions::spec(&function) else {
            tracing::warn!("Invocation for an unknown function.");
            return (
                StatusCode::NOT_FOUND,
                Json(InvokeResponse::default().log(format!("no function {function:?}"))),
            )
                .into_response();
        };
        let result = match Invocation::parse(&function, &invocation_id, &body) {
            Ok(inv) => match functions::dispatch(&state, &inv).await {
                Some(r) => r,
                None => Err(crate::error::FunctionError::terminal(
                    "unknown_function",
                    function.clone(),
                )),
            },
            Err(e) => Err(e.into()),
        };
        let (status, resp) =
            outcome::respond(spec, &invocation_id, result, state.store.as_ref()).await;
        (status, Json(resp)).into_response()
    }
    .instrument(span)
    .await
}

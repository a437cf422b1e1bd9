//! `fthub serve`: the custom-handler HTTP server the Functions host starts.
//!
//! It binds `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` before anything slow, because the
//! host's readiness check is only "does `GET /` answer". Then it serves `POST /{Function}`
//! for every function with bodies up to 100 MB (axum's default is 2 MB).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::app::{AppState, Settings};
use crate::functions;
use crate::host::envelope::{Invocation, InvokeResponse};
use crate::host::outcome;

/// The largest invocation body accepted: the host caps HTTP requests at 100 MB.
pub const MAX_BODY_BYTES: usize = 100 * 1024 * 1024;

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
pub async fn serve(settings: Settings) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", settings.port)).await?;
    tracing::info!(addr = %listener.local_addr()?, "Handler listening.");
    let state = AppState::build(&settings).map_err(std::io::Error::other)?;
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

#![doc = include_str!("../../../docs/emulator.md")]

mod arm;
mod control;
mod dataplane;
pub mod training;
pub mod world;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;

use arm::*;
use control::*;
use dataplane::*;
use world::{AccountConfig, FaultAction, LogEntry, Refusal, Timings, World};

/// The shared emulator state.
#[derive(Debug, Clone)]
pub struct Emulator {
    world: Arc<Mutex<World>>,
    base: Arc<Mutex<String>>,
}

pub mod azure;
#[cfg(test)]
mod tests_support;

fn error(status: u16, code: &str, message: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        s,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn refusal(r: Refusal) -> Response {
    error(r.status, r.code, &r.message)
}

fn account_of(path: &str) -> Option<String> {
    let mut segs = path.trim_start_matches('/').split('/');
    match segs.next()? {
        "_emulator" => None,
        "arm" => {
            let parts: Vec<&str> = path.split('/').collect();
            parts
                .iter()
                .position(|p| *p == "accounts")
                .and_then(|i| parts.get(i + 1))
                .map(|s| (*s).to_owned())
        }
        first => Some(first.to_owned()),
    }
}

/// How the request log names a bearer token: `bearer:` and the first 16 hex digits of its
/// SHA-256, enough for a test to tell credentials apart, useless to replay.
pub fn credential_fingerprint(token: &str) -> String {
    fingerprint("bearer", token)
}

/// The same for an `api-key` header: `api-key:` and 16 hex digits of its SHA-256.
pub fn api_key_fingerprint(key: &str) -> String {
    fingerprint("api-key", key)
}

fn fingerprint(kind: &str, secret: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{hex}")
}

/// Auth, faults and the request log, in front of every non-control route.
async fn gate(State(emu): State<Emulator>, req: Request, next: Next) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let auxiliary = req.headers().contains_key("x-ms-authorization-auxiliary");
    let account = account_of(req.uri().path());
    let control = req.uri().path().starts_with("/_emulator");
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let credential = match bearer {
        Some(token) => credential_fingerprint(token),
        None => match req.headers().get("api-key").and_then(|v| v.to_str().ok()) {
            Some(key) => api_key_fingerprint(key),
            None => String::new(),
        },
    };
    let authed = !credential.is_empty();
    let (fault, hang_ms, latency) = {
        let mut w = emu
            .world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.tick();
        let f = match (&account, control) {
            (Some(a), false) => w.fault_for(a, req.method() == Method::POST),
            _ => FaultAction::None,
        };
        (f, w.timings.hang_ms, w.timings.inference_latency_ms)
    };
    // The dated data plane and ARM require api-version; /openai/v1 does not.
    let dated = req.uri().path().contains("/openai/") && !req.uri().path().contains("/openai/v1/");
    let arm = req.uri().path().starts_with("/arm/subscriptions/");
    let version = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("api-version="))
            .map(str::to_owned)
    });
    let versioned = version.is_some();
    // Azure answers an api-version it does not have with 404 `Resource not found`.
    let unknown_version = dated
        && version
            .as_deref()
            .is_some_and(|v| !azure::DATED_API_VERSIONS.contains(&v));
    let region = account.as_ref().and_then(|a| {
        emu.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .accounts
            .get(a)
            .map(|x| x.config.region.clone())
    });
    // A token names its tenant (`tid`): it must be the account's, as Azure requires of the
    // primary token (an opaque test token stands for any tenant).
    let wrong_tenant = match (bearer.and_then(azure::token_tenant), &account) {
        (Some(tid), Some(a)) if !control => {
            let w = emu
                .world
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            w.accounts
                .get(a)
                .map(|x| x.config.tenant.clone())
                .filter(|t| *t != tid)
                .map(|t| (tid, t))
        }
        _ => None,
    };
    let resp = if !control && !authed {
        error(
            401,
            "unauthorized",
            "Access denied due to missing subscription key or token.",
        )
    } else if let Some((tid, tenant)) = wrong_tenant {
        error(
            401,
            "InvalidAuthenticationTokenTenant",
            &format!(
                "The access token is from the wrong issuer '{tid}'. It must match the tenant '{tenant}' associated with this subscription."
            ),
        )
    } else if unknown_version {
        error(404, "404", "Resource not found")
    } else if (dated || arm) && !versioned {
        error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    } else {
        match fault {
            FaultAction::Status(429, wait) => {
                let mut r = error(429, "429", "Rate limit is exceeded (injected fault).");
                r.headers_mut().insert(
                    "retry-after-ms",
                    wait.to_string().parse().expect("number header"),
                );
                r.headers_mut().insert(
                    "retry-after",
                    wait.div_ceil(1000)
                        .to_string()
                        .parse()
                        .expect("number header"),
                );
                r
            }
            FaultAction::Status(s, _) => error(
                s,
                if s == 503 {
                    "ServiceUnavailable"
                } else {
                    "InternalServerError"
                },
                "Injected fault.",
            ),
            FaultAction::Hang => {
                tokio::time::sleep(std::time::Duration::from_millis(hang_ms)).await;
                error(504, "GatewayTimeout", "Injected timeout.")
            }
            FaultAction::Lost => {
                let served = next.run(req).await;
                tokio::time::sleep(std::time::Duration::from_millis(hang_ms)).await;
                error(
                    504,
                    "GatewayTimeout",
                    &format!("Injected: served {}, answer lost.", served.status()),
                )
            }
            FaultAction::None => {
                if latency > 0 && path.contains("/chat/completions") {
                    tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
                }
                next.run(req).await
            }
        }
    };
    let mut resp = resp;
    if !control {
        // The request ids Azure returns, which the SDKs surface in their errors.
        let id = uuid::Uuid::new_v4().to_string();
        let h = resp.headers_mut();
        let mut set = |k: &'static str, v: &str| {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        };
        if arm {
            set("x-ms-request-id", &id);
            set("x-ms-correlation-request-id", &id);
        } else {
            set("apim-request-id", &id);
            set("x-request-id", &id);
            if let Some(r) = &region {
                set("x-ms-region", r);
            }
        }
    }
    if !control {
        let mut w = emu
            .world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = w.now();
        w.record(LogEntry {
            at,
            method,
            path,
            account,
            status: resp.status().as_u16(),
            auxiliary,
            credential,
        });
    }
    resp
}

impl Emulator {
    /// An emulator over `accounts`.
    pub fn new(accounts: Vec<AccountConfig>, timings: Timings) -> Self {
        Self {
            world: Arc::new(Mutex::new(World::new(accounts, timings, 7))),
            base: Arc::new(Mutex::new(String::new())),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut w = self
            .world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.tick();
        f(&mut w)
    }

    /// The routes; `base` is the server's own URL (for `Location` and operation links).
    pub fn router(&self, base: &str) -> Router {
        if let Ok(mut b) = self.base.lock() {
            *b = base.trim_end_matches('/').to_owned();
        }
        let dataplane = Router::new()
            .route("/files", post(upload).get(list_files))
            .route("/files/import", post(import))
            .route("/files/{id}", get(get_file).delete(delete_file))
            .route("/files/{id}/content", get(file_content))
            .route("/fine_tuning/jobs", post(create_job).get(list_jobs))
            .route("/fine_tuning/jobs/{id}", get(get_job).delete(delete_job))
            .route("/fine_tuning/jobs/{id}/cancel", post(cancel_job))
            .route("/fine_tuning/jobs/{id}/pause", post(pause_job))
            .route("/fine_tuning/jobs/{id}/resume", post(resume_job))
            .route("/models", get(list_models))
            .route("/models/{id}", get(get_model))
            .route("/uploads", post(start_upload))
            .route("/uploads/{id}/parts", post(add_part))
            .route("/uploads/{id}/complete", post(complete_upload))
            .route("/uploads/{id}/cancel", post(cancel_upload))
            .route("/fine_tuning/jobs/{id}/events", get(job_events))
            .route("/fine_tuning/jobs/{id}/checkpoints", get(job_checkpoints))
            .route("/deployments/{dep}/chat/completions", post(chat_dated))
            .route("/chat/completions", post(chat_v1));
        let arm = "/arm/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{account}/deployments";
        Router::new()
            .nest("/{account}/openai/v1", dataplane.clone())
            .nest("/{account}/openai", dataplane)
            .route(arm, get(list_deployments))
            .route(
                &format!("{arm}/{{name}}"),
                get(get_deployment)
                    .put(put_deployment)
                    .delete(delete_deployment),
            )
            .route("/arm/operations/{id}", get(operation))
            .route("/_emulator/state", get(state))
            .route("/_emulator/clock", post(clock))
            .route("/_emulator/faults", post(faults))
            .route("/_emulator/timings", post(timings))
            .route("/_emulator/models", post(retire_model))
            .route("/_emulator/requests", get(requests).delete(clear_requests))
            .layer(middleware::from_fn_with_state(self.clone(), gate))
            .layer(DefaultBodyLimit::max(world::MAX_FILE_BYTES + 1024 * 1024))
            .with_state(self.clone())
    }
}

/// Runs the emulator on `127.0.0.1:port` until the process ends.
///
/// # Errors
/// When the port cannot be bound.
pub async fn serve(port: u16, emu: Emulator) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "Azure OpenAI emulator listening.");
    axum::serve(listener, emu.router(&format!("http://{addr}"))).await
}

/// Starts the emulator on an ephemeral or given port in the background; returns its URL.
///
/// # Errors
/// When the port cannot be bound.
pub async fn spawn(port: u16, emu: Emulator) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = emu.router(&base);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(base)
}

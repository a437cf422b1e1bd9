//! `fthub emulator`: a faithful local stand-in for Azure OpenAI — any number of accounts
//! (the Hub and the Spokes) on one loopback server.
//!
//! - Data plane of account `{a}`: `/{a}/openai/...?api-version=…` and `/{a}/openai/v1/...`
//!   (files, fine-tuning jobs, events, checkpoints, file content, chat completions).
//! - ARM: `/arm/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{a}/deployments[/{name}]`
//!   and operation results under `/arm/operations/{id}`.
//! - Control API for tests and the demo under `/_emulator/` (see the README).
//!
//! Any `api-key` or bearer token is accepted; a request with neither is refused 401.

pub mod training;
pub mod world;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use world::{AccountConfig, FaultAction, Faults, LogEntry, Refusal, Timings, World};

/// The shared emulator state.
#[derive(Debug, Clone)]
pub struct Emulator {
    world: Arc<Mutex<World>>,
    base: Arc<Mutex<String>>,
}

/// The built-in local topology's accounts ([`crate::domain::topology::LOCAL_ACCOUNTS`]).
pub fn builtin_accounts() -> Vec<AccountConfig> {
    crate::domain::topology::LOCAL_ACCOUNTS
        .iter()
        .map(|(name, region, sub, rg, tenant)| AccountConfig {
            name: (*name).into(),
            region: (*region).into(),
            subscription: (*sub).into(),
            resource_group: (*rg).into(),
            tenant: (*tenant).into(),
        })
        .collect()
}

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
    let versioned = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("api-version=")));
    // A token names its tenant (`tid`): it must be the account's, as Azure requires of the
    // primary token (an opaque test token stands for any tenant).
    let wrong_tenant = match (
        bearer.and_then(crate::adapters::azure::token_tenant),
        &account,
    ) {
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
            .route("/fine_tuning/jobs/{id}", get(get_job))
            .route("/fine_tuning/jobs/{id}/cancel", post(cancel_job))
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

type Q = Query<std::collections::HashMap<String, String>>;

fn found(v: Option<Value>, what: &str) -> Response {
    match v {
        Some(v) => Json(v).into_response(),
        None => error(404, "notFound", &format!("{what} not found")),
    }
}

async fn upload(
    State(emu): State<Emulator>,
    Path(p): Path<Vec<(String, String)>>,
    mut form: Multipart,
) -> Response {
    let account = p[0].1.clone();
    let (mut purpose, mut filename, mut bytes) = (None, None, None);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => match field.name() {
                Some("purpose") => purpose = field.text().await.ok(),
                Some("file") => {
                    filename = field.file_name().map(str::to_owned);
                    bytes = field.bytes().await.ok();
                }
                _ => {}
            },
            Ok(None) => break,
            Err(e) => {
                return error(
                    400,
                    "invalidPayload",
                    &format!("malformed multipart body: {e}"),
                );
            }
        }
    }
    let (Some(purpose), Some(bytes)) = (purpose, bytes) else {
        return error(400, "invalidPayload", "the form needs purpose and file");
    };
    let name = filename.unwrap_or_else(|| "upload.jsonl".into());
    let base = emu.base.lock().map(|b| b.clone()).unwrap_or_default();
    match emu.with(|w| w.add_file(&account, &name, &purpose, bytes.to_vec())) {
        Ok(v) => {
            let loc = format!(
                "{base}/{account}/openai/files/{}",
                v["id"].as_str().unwrap_or("")
            );
            (StatusCode::CREATED, [("location", loc)], Json(v)).into_response()
        }
        Err(r) => refusal(r),
    }
}

#[derive(Deserialize)]
struct ImportBody {
    purpose: String,
    filename: String,
    content_url: String,
}

async fn import(State(emu): State<Emulator>, Path(account): Path<String>, body: Bytes) -> Response {
    let Ok(b) = serde_json::from_slice::<ImportBody>(&body) else {
        return error(
            400,
            "invalidPayload",
            "purpose, filename and content_url are required",
        );
    };
    // The emulator can fetch loopback URLs only; anything else fails as Azure would when
    // the URL is not reachable.
    let fetched = match reqwest::Client::new().get(&b.content_url).send().await {
        Ok(r) if r.status().is_success() && b.content_url.starts_with("http://127.0.0.1") => {
            r.bytes().await.ok()
        }
        _ => None,
    };
    let Some(bytes) = fetched else {
        return error(
            400,
            "fileImportFailed",
            "Import of file failed: the content_url could not be read.",
        );
    };
    match emu.with(|w| w.add_file(&account, &b.filename, &b.purpose, bytes.to_vec())) {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(r) => refusal(r),
    }
}

async fn list_files(State(emu): State<Emulator>, Path(account): Path<String>, q: Q) -> Response {
    let purpose = q.get("purpose").map(String::as_str);
    let ascending = q.get("order").is_some_and(|o| o == "asc");
    let limit = limit_of(&q, 10_000);
    match emu.with(|w| {
        w.files_page(
            &account,
            purpose,
            q.get("after").map(String::as_str),
            limit,
            ascending,
        )
    }) {
        Some(v) => Json(v).into_response(),
        None => error(404, "notFound", "account not found"),
    }
}

async fn get_file(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    found(emu.with(|w| w.file_json(&account, &id)), "file")
}

async fn delete_file(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    let gone = emu.with(|w| {
        w.accounts
            .get_mut(&account)
            .and_then(|a| a.files.remove(&id))
            .is_some()
    });
    if gone {
        Json(json!({"object": "file", "id": id, "deleted": true})).into_response()
    } else {
        error(404, "notFound", "file not found")
    }
}

async fn file_content(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    match emu.with(|w| w.file_content(&account, &id)) {
        Some(b) => ([("content-type", "application/octet-stream")], b).into_response(),
        None => error(404, "notFound", "file not found"),
    }
}

async fn create_job(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    uri: OriginalUri,
    q: Q,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalidPayload", "the body is not JSON");
    };
    let surface = surface_of(&uri, &q);
    match emu.with(|w| w.create_job(&account, &body, &surface)) {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(r) => refusal(r),
    }
}

/// `v1` for the /openai/v1 surface, else the dated api-version.
fn surface_of(uri: &OriginalUri, q: &Q) -> String {
    if uri.path().contains("/openai/v1/") {
        "v1".to_owned()
    } else {
        q.get("api-version").cloned().unwrap_or_default()
    }
}

fn limit_of(q: &Q, default: usize) -> usize {
    q.get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(default)
}

async fn list_jobs(State(emu): State<Emulator>, Path(account): Path<String>, q: Q) -> Response {
    found(
        emu.with(|w| {
            w.list_jobs(
                &account,
                q.get("after").map(String::as_str),
                limit_of(&q, 20),
            )
        }),
        "account",
    )
}

async fn get_job(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    found(emu.with(|w| w.job_json(&account, &id)), "job")
}

async fn cancel_job(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    match emu.with(|w| w.cancel_job(&account, &id)) {
        Ok(v) => Json(v).into_response(),
        Err(r) => refusal(r),
    }
}

async fn job_events(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    q: Q,
) -> Response {
    job_list(&emu, &account, &id, false, &q)
}

async fn job_checkpoints(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    q: Q,
) -> Response {
    job_list(&emu, &account, &id, true, &q)
}

/// Events (default page 20) or checkpoints (default page 10) of a job.
fn job_list(emu: &Emulator, account: &str, id: &str, checkpoints: bool, q: &Q) -> Response {
    let limit = limit_of(q, if checkpoints { 10 } else { 20 });
    found(
        emu.with(|w| {
            w.job_list(
                account,
                id,
                checkpoints,
                q.get("after").map(String::as_str),
                limit,
            )
        }),
        "job",
    )
}

fn chat_response(r: Result<Value, (Refusal, Option<u64>)>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err((refusal_, wait)) => {
            let mut resp = refusal(refusal_);
            if let Some(ms) = wait {
                resp.headers_mut().insert(
                    "retry-after-ms",
                    ms.to_string().parse().expect("number header"),
                );
                resp.headers_mut().insert(
                    "retry-after",
                    ms.div_ceil(1000)
                        .to_string()
                        .parse()
                        .expect("number header"),
                );
            }
            resp
        }
    }
}

async fn chat_dated(
    State(emu): State<Emulator>,
    Path((account, dep)): Path<(String, String)>,
    uri: OriginalUri,
    q: Q,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let surface = surface_of(&uri, &q);
    chat_response(emu.with(|w| w.chat(&account, &dep, &body, &surface)))
}

async fn chat_v1(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(dep) = body.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return error(
            400,
            "invalid_request_error",
            "model (the deployment name) is required",
        );
    };
    chat_response(emu.with(|w| w.chat(&account, &dep, &body, "v1")))
}

#[derive(Deserialize)]
struct ArmPath {
    sub: String,
    rg: String,
    account: String,
    name: Option<String>,
}

fn check_arm(w: &World, p: &ArmPath) -> Result<(), Refusal> {
    match w.accounts.get(&p.account) {
        Some(a)
            if a.config.subscription == p.sub
                && a.config.resource_group.eq_ignore_ascii_case(&p.rg) =>
        {
            Ok(())
        }
        _ => Err(Refusal {
            status: 404,
            code: "ResourceNotFound",
            message: format!(
                "The Resource 'Microsoft.CognitiveServices/accounts/{}' was not found.",
                p.account
            ),
        }),
    }
}

async fn put_deployment(
    State(emu): State<Emulator>,
    Path(p): Path<ArmPath>,
    headers: HeaderMap,
    q: Q,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        );
    };
    // `Bearer a, Bearer b`: up to three tokens, each of its tenant (None: not a JWT).
    let aux: Vec<Option<String>> = headers
        .get("x-ms-authorization-auxiliary")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .filter_map(|t| t.trim().strip_prefix("Bearer "))
                .map(crate::adapters::azure::token_tenant)
                .collect()
        })
        .unwrap_or_default();
    let base = emu.base.lock().map(|b| b.clone()).unwrap_or_default();
    let name = p.name.clone().unwrap_or_default();
    // Learn documents Developer-tier deployments with api-version 2025-07-01-preview; older
    // versions do not know the SKU.
    let developer = body
        .pointer("/sku/name")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case(crate::domain::aoai::sku::DEVELOPER));
    let version = q.get("api-version").map_or("", String::as_str);
    if developer && version < "2025-07-01-preview" {
        return error(
            400,
            "InvalidResourceProperties",
            &format!(
                "The SKU 'developertier' is not supported by api-version {version}; use 2025-07-01-preview or later."
            ),
        );
    }
    let result = emu.with(|w| {
        check_arm(w, &p)?;
        w.put_deployment(&p.account, &name, &body, &aux)
    });
    match result {
        Ok((created, v, op)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let op_url = format!(
                "{base}/arm/operations/{op}?api-version={}",
                q.get("api-version").map_or("", String::as_str)
            );
            let wait = emu.with(|w| w.operation_wait(&op)).to_string();
            (
                status,
                [("azure-asyncoperation", op_url), ("retry-after", wait)],
                Json(v),
            )
                .into_response()
        }
        Err(r) => refusal(r),
    }
}

async fn get_deployment(State(emu): State<Emulator>, Path(p): Path<ArmPath>) -> Response {
    let name = p.name.clone().unwrap_or_default();
    emu.with(|w| match check_arm(w, &p) {
        Err(r) => refusal(r),
        Ok(()) => match w.deployment_json(&p.account, &name) {
            Some(v) => Json(v).into_response(),
            None => error(
                404,
                "DeploymentNotFound",
                &format!("Deployment {name} not found."),
            ),
        },
    })
}

async fn list_deployments(
    State(emu): State<Emulator>,
    Path(p): Path<ArmPath>,
    uri: OriginalUri,
    q: Q,
) -> Response {
    let base = emu.base.lock().map(|b| b.clone()).unwrap_or_default();
    emu.with(|w| {
        if let Err(r) = check_arm(w, &p) {
            return refusal(r);
        }
        let names: Vec<String> = w.accounts[&p.account].deployments.keys().cloned().collect();
        let skip: usize = q
            .get("$skipToken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let size = w.timings.arm_page_size.max(1);
        let value: Vec<Value> = names
            .iter()
            .skip(skip)
            .take(size)
            .filter_map(|n| w.deployment_json(&p.account, n))
            .collect();
        let mut page = json!({"value": value});
        if skip + size < names.len() {
            let next = format!(
                "{base}{}?api-version={}&$skipToken={}",
                uri.path(),
                q.get("api-version").map_or("", String::as_str),
                skip + size
            );
            page["nextLink"] = json!(next);
        }
        Json(page).into_response()
    })
}

/// DELETE is a long-running operation: 202 with `Location` and `Retry-After` while the
/// deployment is being deleted (as the ARM spec's `Deployments_Delete`), 204 when it does not
/// exist.
async fn delete_deployment(State(emu): State<Emulator>, Path(p): Path<ArmPath>, q: Q) -> Response {
    let name = p.name.clone().unwrap_or_default();
    let base = emu.base.lock().map(|b| b.clone()).unwrap_or_default();
    emu.with(|w| {
        if let Err(r) = check_arm(w, &p) {
            return refusal(r);
        }
        match w.delete_deployment(&p.account, &name) {
            Some(op) => {
                let location = format!(
                    "{base}/arm/operations/{op}?api-version={}",
                    q.get("api-version").map_or("", String::as_str)
                );
                let wait = w.operation_wait(&op).to_string();
                (
                    StatusCode::ACCEPTED,
                    [("location", location), ("retry-after", wait)],
                )
                    .into_response()
            }
            None => StatusCode::NO_CONTENT.into_response(),
        }
    })
}

/// An operation's status; a deletion's location answers 202 until it is done.
async fn operation(State(emu): State<Emulator>, Path(id): Path<String>) -> Response {
    emu.with(|w| match w.operation_json(&id) {
        None => error(404, "NotFound", "operation not found"),
        Some(v) => {
            let wait = w.operation_wait(&id).to_string();
            let running = v["status"] == "InProgress";
            let code = if running && id.starts_with("del-") {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            let mut r = (code, Json(v)).into_response();
            if running {
                r.headers_mut()
                    .insert("retry-after", wait.parse().expect("number header"));
            }
            r
        }
    })
}

async fn state(State(emu): State<Emulator>) -> Response {
    let v = emu.with(|w| {
        let accounts: Vec<Value> = w
            .accounts
            .values()
            .map(|a| {
                json!({
                    "name": a.config.name, "region": a.config.region, "subscription": a.config.subscription,
                    "resource_group": a.config.resource_group, "tenant": a.config.tenant, "resource_id": a.config.resource_id(),
                    "deployments": a.deployments.keys().filter_map(|n| w.deployment_json(&a.config.name, n)).collect::<Vec<_>>(),
                    "jobs": a.jobs.iter().map(|j| json!({"id": j.id, "status": j.status, "fine_tuned_model": j.fine_tuned_model})).collect::<Vec<_>>(),
                    "models": a.models.keys().collect::<Vec<_>>(),
                    "files": a.files.values().map(|f| json!({"id": f.id, "filename": f.filename, "purpose": f.purpose})).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"now": w.now().to_rfc3339(), "timings": w.timings, "accounts": accounts,
               "expired": w.expired.iter().map(|(a, d, why)| json!({"account": a, "deployment": d, "reason": why})).collect::<Vec<_>>()})
    });
    Json(v).into_response()
}

#[derive(Deserialize)]
struct ClockBody {
    #[serde(default)]
    advance_seconds: i64,
    #[serde(default)]
    advance_days: i64,
}

async fn clock(State(emu): State<Emulator>, Json(b): Json<ClockBody>) -> Response {
    let now = emu.with(|w| {
        w.advance(
            chrono::Duration::seconds(b.advance_seconds) + chrono::Duration::days(b.advance_days),
        );
        w.now()
    });
    Json(json!({"now": now.to_rfc3339()})).into_response()
}

#[derive(Deserialize)]
struct FaultBody {
    account: Option<String>,
    region: Option<String>,
    #[serde(flatten)]
    faults: Faults,
}

async fn faults(State(emu): State<Emulator>, Json(b): Json<FaultBody>) -> Response {
    emu.with(|w| {
        if let Some(a) = b.account.clone() {
            w.account_faults.insert(a, b.faults.clone());
        }
        if let Some(r) = b.region.clone() {
            w.region_faults.insert(r, b.faults.clone());
        }
    });
    Json(json!({"ok": true})).into_response()
}

async fn timings(State(emu): State<Emulator>, Json(t): Json<Timings>) -> Response {
    emu.with(|w| w.timings = t);
    Json(json!({"ok": true})).into_response()
}

async fn requests(State(emu): State<Emulator>) -> Response {
    Json(emu.with(|w| json!(w.log.iter().collect::<Vec<_>>()))).into_response()
}

async fn clear_requests(State(emu): State<Emulator>, _m: Method) -> Response {
    emu.with(|w| w.log.clear());
    StatusCode::NO_CONTENT.into_response()
}

//! Starts and supervises the custom handler the way the host does: a free port in
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, readiness by polling `GET /` every 25 ms (any answer
//! counts) for up to 30 s, restart on exit or on a function timeout, and give up after
//! three failures within 30 minutes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::process::Command;
use tokio::sync::{Notify, watch};

use super::app::{FunctionApp, expand_vars};

/// The host's per-attempt initialisation timeout.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(25);
const MAX_FAILURES: usize = 3;
const FAILURE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// Why an invocation failed. Every variant fails the invocation; the trigger's failure
/// semantics (abandon, blob retry, timer retry policy, HTTP 500) then apply.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The handler never became ready, or the host gave up restarting it.
    #[error("the handler is not running")]
    NotRunning,
    /// Transport failure (connection refused or reset: the handler died).
    #[error("the handler connection failed")]
    Transport(#[source] reqwest::Error),
    /// Non-2xx answer.
    #[error("the handler answered HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// 2xx, but not `application/json` or `text/json`.
    #[error("the handler answered with content type {0:?}, not JSON")]
    ContentType(String),
    /// 2xx with an empty body: the real host would hang until functionTimeout.
    #[error(
        "the handler answered 2xx with an empty body (the real host would hang until functionTimeout)"
    )]
    EmptyBody,
    /// 2xx with a body that is not an invocation result.
    #[error("the handler's answer is not an invocation result: {0}")]
    BadBody(String),
    /// The function exceeded `functionTimeout`; the handler is restarted.
    #[error("the function exceeded functionTimeout ({0:?}); the handler was restarted")]
    Timeout(Duration),
}

/// A parsed `{Outputs, Logs, ReturnValue}`.
#[derive(Debug, Clone, Default)]
pub struct InvokeResult {
    /// Output values by binding name.
    pub outputs: Map<String, Value>,
    /// Lines to re-log.
    pub logs: Vec<String>,
    /// `ReturnValue`.
    pub return_value: Value,
}

/// A raw HTTP answer, for forwarded HTTP functions.
#[derive(Debug)]
pub struct RawResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// The supervised handler process.
#[derive(Debug, Clone)]
pub struct Worker {
    client: reqwest::Client,
    port: watch::Receiver<Option<u16>>,
    restart: Arc<Notify>,
    dead: Arc<AtomicBool>,
    function_timeout: Option<Duration>,
}

struct Launch {
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
}

fn resolve_program(app: &FunctionApp) -> PathBuf {
    let in_root = app.root.join(&app.host.executable);
    if in_root.is_file() {
        return in_root;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(&app.host.executable))
                .any(|c| c.is_file())
        })
        .unwrap_or(false);
    if on_path {
        return PathBuf::from(&app.host.executable);
    }
    // Local convenience: `fthub dev` from a source checkout runs its own binary as the handler.
    if app.host.executable == "fthub"
        && let Ok(me) = std::env::current_exe()
    {
        return me;
    }
    PathBuf::from(&app.host.executable)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

impl Worker {
    /// Starts the supervisor. `extra_env` comes after the app settings.
    pub fn start(app: &FunctionApp, extra_env: Vec<(String, String)>) -> Self {
        let lookup_env = |k: &str| {
            app.settings
                .get(k)
                .cloned()
                .or_else(|| std::env::var(k).ok())
        };
        let launch = Launch {
            program: resolve_program(app),
            args: app
                .host
                .arguments
                .iter()
                .map(|a| expand_vars(a, lookup_env))
                .filter(|a| !a.is_empty())
                .collect(),
            cwd: app
                .root
                .join(app.host.working_directory.as_deref().unwrap_or("")),
            env: app
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(extra_env)
                .collect(),
        };
        let (tx, rx) = watch::channel(None);
        let restart = Arc::new(Notify::new());
        let dead = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        tokio::spawn(supervise(
            launch,
            client.clone(),
            tx,
            restart.clone(),
            dead.clone(),
        ));
        Self {
            client,
            port: rx,
            restart,
            dead,
            function_timeout: app.host.function_timeout,
        }
    }

    /// Waits until the handler is ready; `None` if the host gave up.
    pub async fn ready_port(&self) -> Option<u16> {
        let mut rx = self.port.clone();
        // An invocation waits up to (3 + 1) × 30 s for a starting handler, as the host does.
        let wait = rx.wait_for(|p| p.is_some());
        tokio::time::timeout(INIT_TIMEOUT * 4, async {
            tokio::select! {
                r = wait => r.ok().and_then(|p| *p),
                () = async { while !self.dead.load(Ordering::Relaxed) { tokio::time::sleep(Duration::from_millis(100)).await } } => None,
            }
        })
        .await
        .unwrap_or_default()
    }

    /// True once the handler has answered its readiness check.
    pub fn is_ready(&self) -> bool {
        self.port.borrow().is_some()
    }

    /// Sends one invocation (`POST /{function}` with the host's headers).
    pub async fn invoke(
        &self,
        function: &str,
        invocation_id: &str,
        payload: &Value,
    ) -> Result<InvokeResult, InvokeError> {
        let port = self.ready_port().await.ok_or(InvokeError::NotRunning)?;
        let req = self
            .client
            .post(format!("http://127.0.0.1:{port}/{function}"))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-InvocationId", invocation_id)
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .body(payload.to_string());
        let resp = self
            .with_timeout(req.send())
            .await?
            .map_err(InvokeError::Transport)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(InvokeError::Status { status });
        }
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mime = ctype.split(';').next().unwrap_or("").trim().to_owned();
        if mime != "application/json" && mime != "text/json" {
            return Err(InvokeError::ContentType(ctype));
        }
        let body = self
            .with_timeout(resp.bytes())
            .await?
            .map_err(InvokeError::Transport)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(InvokeError::EmptyBody);
        }
        parse_result(&body)
    }

    /// Forwards a raw HTTP request (`enableForwardingHttpRequest`).
    pub async fn forward(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        invocation_id: &str,
    ) -> Result<RawResponse, InvokeError> {
        let port = self.ready_port().await.ok_or(InvokeError::NotRunning)?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self
            .client
            .request(method, format!("http://127.0.0.1:{port}{path_and_query}"));
        for (k, v) in headers {
            if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length") {
                req = req.header(k, v);
            }
        }
        req = req
            .header("X-Azure-Functions-InvocationId", invocation_id)
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .body(body);
        let resp = self
            .with_timeout(req.send())
            .await?
            .map_err(InvokeError::Transport)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = self
            .with_timeout(resp.bytes())
            .await?
            .map_err(InvokeError::Transport)?
            .to_vec();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn with_timeout<T>(
        &self,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, InvokeError> {
        match self.function_timeout {
            None => Ok(fut.await),
            Some(limit) => match tokio::time::timeout(limit, fut).await {
                Ok(v) => Ok(v),
                Err(_) => {
                    // The host restarts the shared process, failing every in-flight invocation.
                    tracing::error!(?limit, "Function timeout; restarting the handler.");
                    self.restart.notify_one();
                    Err(InvokeError::Timeout(limit))
                }
            },
        }
    }
}

/// The host version the stand-in reports.
pub const HOST_VERSION: &str = "4.1037.0.0";

fn parse_result(body: &[u8]) -> Result<InvokeResult, InvokeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| InvokeError::BadBody(e.to_string()))?;
    let Value::Object(o) = v else {
        return Err(InvokeError::BadBody("not an object".into()));
    };
    // Newtonsoft matches property names case-insensitively.
    let get = |k: &str| {
        o.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let outputs = match get("Outputs") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(InvokeError::BadBody("Outputs is not an object".into())),
    };
    let logs = match get("Logs") {
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(InvokeResult {
        outputs,
        logs,
        return_value: get("ReturnValue").unwrap_or(Value::Null),
    })
}

async fn supervise(
    launch: Launch,
    client: reqwest::Client,
    port_tx: watch::Sender<Option<u16>>,
    restart: Arc<Notify>,
    dead: Arc<AtomicBool>,
) {
    let mut failures: Vec<Instant> = Vec::new();
    let worker_id = uuid::Uuid::new_v4().to_string();
    loop {
        let _ = port_tx.send(None);
        let outcome = run_once(&launch, &client, &port_tx, &restart, &worker_id).await;
        let _ = port_tx.send(None);
        tracing::warn!(reason = %outcome, "Handler process stopped; restarting.");
        let now = Instant::now();
        failures.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
        failures.push(now);
        if failures.len() >= MAX_FAILURES {
            tracing::error!(
                "Exceeded handler restart retry count. Shutting down the local host's handler."
            );
            dead.store(true, Ordering::Relaxed);
            return;
        }
    }
}

async fn run_once(
    launch: &Launch,
    client: &reqwest::Client,
    port_tx: &watch::Sender<Option<u16>>,
    restart: &Notify,
    worker_id: &str,
) -> String {
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => return format!("no free port: {e}"),
    };
    let mut cmd = Command::new(&launch.program);
    cmd.args(&launch.args)
        .current_dir(&launch.cwd)
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", worker_id)
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_ID", worker_id)
        .env("FUNCTIONS_APP_ROOT_PATH", &launch.cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("cannot start {}: {e}", launch.program.display()),
    };
    tracing::info!(program = %launch.program.display(), port, pid = child.id().unwrap_or(0), "Handler process started.");
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{port}/");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return format!("exited during start-up with {status}");
        }
        // Any HTTP response counts as ready, even a 404.
        if client
            .get(&url)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        if started.elapsed() > INIT_TIMEOUT {
            let _ = child.kill().await;
            return "initialization timed out".into();
        }
        tokio::time::sleep(READY_POLL).await;
    }
    tracing::info!(
        port,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Handler ready."
    );
    let _ = port_tx.send(Some(port));
    tokio::select! {
        status = child.wait() => format!("exited with {}", status.map_or_else(|e| e.to_string(), |s| s.to_string())),
        () = restart.notified() => {
            let _ = child.kill().await;
            "restart requested after a function timeout".into()
        }
    }
}

#![doc = include_str!("../../docs/local.md")]

pub mod app;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod eventgrid;
pub mod http;
pub mod outputs;
pub mod payload;
pub mod servicebus;
pub mod timer;
pub mod watch;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::adapters::StoreSpec;
use crate::adapters::local::bus::LocalBus;
use crate::ports::BlobStore;
use app::{FunctionApp, FunctionDef};
use worker::{InvokeError, InvokeResult, Worker};

/// Container the host keeps its bookkeeping in (receipts, timer status).
pub const HOSTS_CONTAINER: &str = "azure-webjobs-hosts";

/// `fthub dev` options.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Function app root.
    pub app: PathBuf,
    /// Local state directory.
    pub home: PathBuf,
    /// HTTP trigger port.
    pub http_port: u16,
    /// Service Bus lock duration.
    pub lock_duration: Duration,
    /// Blob scan interval.
    pub scan_interval: Duration,
    /// Port of the built-in Azure OpenAI emulator; `None` runs none.
    pub emulator_port: Option<u16>,
    /// An emulator already running elsewhere (used when `emulator_port` is `None`).
    pub emulator_url: Option<String>,
    /// Where blobs live (`--storage`): the local directory, Azurite or an Azure account.
    /// The handler is given the same setting (`FTHUB_STORAGE`).
    pub storage: Option<String>,
}

#[cfg(feature = "emulator")]
async fn start_emulator(port: u16) -> Result<String, DevError> {
    let emu = emulator::Emulator::new(
        emulator::builtin_accounts(),
        emulator::world::Timings::default(),
    );
    Ok(emulator::spawn(port, emu).await?)
}

#[cfg(not(feature = "emulator"))]
async fn start_emulator(_port: u16) -> Result<String, DevError> {
    Err(DevError::NoEmulator)
}

/// Failures that stop `fthub dev`.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The app could not be loaded.
    #[error(transparent)]
    App(#[from] app::AppError),
    /// The HTTP port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}")]
    Bind {
        /// Port.
        port: u16,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Other I/O.
    #[error("local host I/O failed")]
    Io(#[from] std::io::Error),
    /// The storage setting could not be used.
    #[error("storage: {0}")]
    Storage(String),
    /// A built-in emulator was asked of a build without one.
    #[error(
        "this fthub was built without the Azure OpenAI emulator (cargo feature `emulator`); pass --emulator-url"
    )]
    NoEmulator,
}

/// Everything the trigger sources share.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) app: Arc<FunctionApp>,
    pub(crate) store: Arc<dyn BlobStore>,
    pub(crate) bus: LocalBus,
    pub(crate) worker: Worker,
    pub(crate) host_id: String,
    pub(crate) lock_duration: Duration,
    pub(crate) scan_interval: Duration,
}

impl Ctx {
    /// Sends one invocation and re-logs its `Logs` on success (the host drops them on failure).
    pub(crate) async fn invoke(
        &self,
        def: &FunctionDef,
        data: Map<String, Value>,
        metadata: Map<String, Value>,
    ) -> Result<InvokeResult, InvokeError> {
        let id = uuid::Uuid::new_v4().to_string();
        let payload = serde_json::json!({"Data": data, "Metadata": metadata});
        let started = std::time::Instant::now();
        let result = self.worker.invoke(&def.name, &id, &payload).await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(r) => {
                for line in &r.logs {
                    tracing::info!(function = %def.name, invocation_id = %id, "{line}");
                }
                tracing::info!(function = %def.name, invocation_id = %id, duration_ms = ms, "Executed (Succeeded).");
            }
            Err(e) => {
                tracing::warn!(function = %def.name, invocation_id = %id, duration_ms = ms, error = %e, "Executed (Failed).")
            }
        }
        result
    }
}

/// The id the host uses in bookkeeping paths.
fn host_id() -> String {
    std::env::var("AzureFunctionsWebHost__hostid")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "fthub-local".into())
}

/// Runs the local host until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the app cannot be loaded or the HTTP port cannot be bound.
pub async fn run(opts: DevOptions) -> Result<(), DevError> {
    let app = Arc::new(FunctionApp::load(&opts.app)?);
    std::fs::create_dir_all(&opts.home)?;
    let home = std::fs::canonicalize(&opts.home)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.http_port))
        .await
        .map_err(|source| DevError::Bind {
            port: opts.http_port,
            source,
        })?;
    let http_port = listener.local_addr()?.port();
    // The handler shares the local state directory unless the app settings say otherwise.
    let mut extra_env = if app.settings.contains_key("FTHUB_HOME") {
        vec![]
    } else {
        vec![("FTHUB_HOME".to_owned(), home.display().to_string())]
    };
    if let Some(port) = opts.emulator_port {
        let url = start_emulator(port).await?;
        tracing::info!(%url, "Azure OpenAI emulator running.");
        extra_env.push(("FTHUB_EMULATOR_URL".to_owned(), url));
    } else if let Some(url) = &opts.emulator_url {
        extra_env.push(("FTHUB_EMULATOR_URL".to_owned(), url.clone()));
    }
    let spec = match &opts.storage {
        Some(v) => StoreSpec::parse(v, &home),
        None => StoreSpec::from_settings(|k| app.settings.get(k).cloned(), &home),
    }
    .map_err(|e| DevError::Storage(e.to_string()))?;
    let version = app
        .settings
        .get("FTHUB_STORAGE_API_VERSION")
        .cloned()
        .or_else(|| std::env::var("FTHUB_STORAGE_API_VERSION").ok())
        .unwrap_or_else(|| crate::adapters::azure::storage::DEFAULT_API_VERSION.to_owned());
    let store = spec
        .open(
            &version,
            crate::adapters::azure::credential::Entra::from_env,
        )
        .map_err(|e| DevError::Storage(e.to_string()))?;
    // The host and the pipeline need these; in Azure the infrastructure creates them.
    for c in crate::app::settings::CONTAINERS
        .iter()
        .chain([&HOSTS_CONTAINER])
    {
        store
            .ensure_container(c)
            .await
            .map_err(|e| DevError::Storage(format!("{}: {e}", spec.describe())))?;
    }
    if let Some(v) = &opts.storage {
        extra_env.push(("FTHUB_STORAGE".to_owned(), v.clone()));
    }
    tracing::info!(storage = %spec.describe(), "Blob store selected.");
    let worker = Worker::start(&app, extra_env);
    let ctx = Ctx {
        app: app.clone(),
        store,
        bus: LocalBus::new(home.join("bus")),
        worker,
        host_id: host_id(),
        lock_duration: opts.lock_duration,
        scan_interval: opts.scan_interval,
    };
    tracing::info!(functions = app.functions.len(), http = %format!("http://127.0.0.1:{http_port}/{}/", app.host.route_prefix), home = %home.display(), "Local Functions host starting.");
    let base = format!("http://127.0.0.1:{http_port}");
    let watch = watch::Watch {
        pid: std::process::id(),
        dashboard: format!("{base}/{}/status/ui/runs", app.host.route_prefix),
        url: base,
        local_store: matches!(spec, StoreSpec::Local(_)),
    };
    let _mark = watch.write(&home)?;
    // Like Core Tools, the local host checks no function keys, so the URL needs none.
    crate::errln!(
        "fthub dev: dashboard {} · home {}",
        watch.dashboard,
        home.display()
    );
    for def in app.functions.iter().filter(|f| !f.disabled) {
        let Some(trigger) = def.trigger() else {
            continue;
        };
        match trigger.kind.to_ascii_lowercase().as_str() {
            "servicebustrigger" => {
                tokio::spawn(servicebus::run(ctx.clone(), def.clone()));
            }
            "timertrigger" => {
                tokio::spawn(timer::run(ctx.clone(), def.clone()));
            }
            "eventgridtrigger" => {
                let subs: Vec<_> = app
                    .subscriptions
                    .iter()
                    .filter(|s| s.function == def.name)
                    .cloned()
                    .collect();
                if subs.is_empty() {
                    tracing::warn!(function = %def.name, "No local Event Grid subscription in eventgrid.json; it will not be triggered.");
                }
                for sub in subs {
                    tokio::spawn(eventgrid::run(ctx.clone(), def.clone(), sub));
                }
            }
            "httptrigger" => {}
            other => {
                tracing::warn!(function = %def.name, trigger = other, "Trigger type not supported locally.")
            }
        }
    }
    let server = axum::serve(listener, http::router(ctx.clone()));
    tokio::select! {
        r = server => r?,
        () = shutdown() => tracing::info!("Local Functions host stopping."),
    }
    Ok(())
}

async fn shutdown() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

//! `fthub dev`: the local Functions host stand-in.

use std::path::PathBuf;

use anyhow::Context as _;

/// `fthub dev` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The function app directory (host.json, functions/*/function.json).
    #[arg(long, default_value = ".")]
    app: PathBuf,
    /// Local state directory (storage, bus, host bookkeeping).
    #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
    home: PathBuf,
    /// Port for HTTP triggers (`http://127.0.0.1:PORT/api/...`).
    #[arg(long, default_value_t = 7071)]
    port: u16,
    /// Service Bus lock duration in seconds (the queue's `LockDuration`).
    #[arg(long, default_value_t = 60)]
    lock_duration: u64,
    /// How often watched containers are scanned for new blobs, in milliseconds.
    #[arg(long, default_value_t = 500)]
    scan_interval_ms: u64,
    /// Port of the built-in Azure OpenAI emulator (0 picks a free one).
    #[arg(long, default_value_t = 7072)]
    emulator_port: u16,
    /// Use an emulator (or endpoint) already running at this URL instead of starting one,
    /// so it outlives restarts of the host (`fthub emulator` in another terminal).
    #[arg(long)]
    emulator_url: Option<String>,
    /// Blob storage instead of the local directory: a connection string (Azurite:
    /// `UseDevelopmentStorage=true`), a blob service URL or an account name (Entra ID).
    #[arg(long, env = "FTHUB_STORAGE", hide_env_values = true)]
    storage: Option<String>,
}

/// Runs the host until Ctrl-C.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let opts = fthub::local::DevOptions {
        app: a.app,
        home: a.home,
        http_port: a.port,
        lock_duration: std::time::Duration::from_secs(a.lock_duration.max(1)),
        scan_interval: std::time::Duration::from_millis(a.scan_interval_ms.max(10)),
        emulator_port: a.emulator_url.is_none().then_some(a.emulator_port),
        emulator_url: a.emulator_url,
        storage: a.storage,
    };
    fthub::local::run(opts)
        .await
        .context("running the local host")
}

//! The `fthub` command line.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// fthub: the Hub/Spoke fine-tuning pipeline for Azure OpenAI.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the custom handler (what the Functions host starts; see host.json).
    Serve,
    /// Run the local Functions host stand-in: the handler, triggers, bus and storage.
    Dev(DevArgs),
}

#[derive(Debug, clap::Args)]
struct DevArgs {
    /// The function app directory (host.json, functions/*/function.json).
    #[arg(long, default_value = ".")]
    app: PathBuf,
    /// Local state directory (storage, bus, host bookkeeping).
    #[arg(long, env = "FTHUB_HOME", default_value = fthub::config::DEFAULT_HOME)]
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fthub::telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => {
            let config = fthub::config::ServeConfig::from_env().context("reading settings")?;
            fthub::server::serve(config)
                .await
                .context("serving the handler")
        }
        Command::Dev(a) => {
            let opts = fthub::local::DevOptions {
                app: a.app,
                home: a.home,
                http_port: a.port,
                lock_duration: std::time::Duration::from_secs(a.lock_duration.max(1)),
                scan_interval: std::time::Duration::from_millis(a.scan_interval_ms.max(10)),
            };
            fthub::local::run(opts)
                .await
                .context("running the local host")
        }
    }
}

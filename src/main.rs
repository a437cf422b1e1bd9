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
    /// Run the Azure OpenAI emulator (Hub and Spoke accounts, data plane and ARM).
    Emulator(EmulatorArgs),
    /// Validate fine-tuning datasets (exit 0 accepted, 1 rejected, 2 usage or I/O error).
    Validate(ValidateArgs),
}

#[derive(Debug, clap::Args)]
struct EmulatorArgs {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 7072)]
    port: u16,
    /// JSON file with the accounts (`[{name, region, subscription, resource_group, tenant}]`);
    /// default: the built-in local topology.
    #[arg(long)]
    accounts: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// JSONL files; several are validated as one submission (train, validation, eval).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Base model (decides the encoding and the context length).
    #[arg(long, default_value = fthub::domain::validation::tokens::DEFAULT_MODEL)]
    model: String,
    /// Training method.
    #[arg(long, value_enum, default_value_t = MethodArg::Supervised)]
    method: MethodArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = fthub::commands::validate::Format::Text)]
    format: fthub::commands::validate::Format,
    /// Write validation.json and validation.md into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Policy file (JSON): compliance actions, BOM, limits.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Epochs, as the manifest's n_epochs (default: the cookbook's rule).
    #[arg(long)]
    epochs: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Supervised,
    Dpo,
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
    /// Port of the built-in Azure OpenAI emulator (0 picks a free one).
    #[arg(long, default_value_t = 7072)]
    emulator_port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `validate` writes its report to stdout; only the long-running commands log there.
    if matches!(
        cli.command,
        Command::Serve | Command::Dev(_) | Command::Emulator(_)
    ) {
        fthub::telemetry::init();
    }
    match cli.command {
        Command::Serve => {
            let config = fthub::config::ServeConfig::from_env().context("reading settings")?;
            fthub::server::serve(config)
                .await
                .context("serving the handler")
        }
        Command::Validate(a) => {
            let code = fthub::commands::validate::run(fthub::commands::validate::Args {
                files: a.files,
                model: a.model,
                method: match a.method {
                    MethodArg::Supervised => fthub::domain::validation::Method::Supervised,
                    MethodArg::Dpo => fthub::domain::validation::Method::Dpo,
                },
                format: a.format,
                report: a.report,
                policy: a.policy,
                epochs: a.epochs,
                threads: a.threads,
            });
            std::process::exit(code)
        }
        Command::Emulator(a) => {
            let accounts = match a.accounts {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", p.display()))?
                }
                None => fthub::local::emulator::builtin_accounts(),
            };
            let emu = fthub::local::emulator::Emulator::new(accounts, Default::default());
            fthub::local::emulator::serve(a.port, emu)
                .await
                .context("running the emulator")
        }
        Command::Dev(a) => {
            let opts = fthub::local::DevOptions {
                app: a.app,
                home: a.home,
                http_port: a.port,
                lock_duration: std::time::Duration::from_secs(a.lock_duration.max(1)),
                scan_interval: std::time::Duration::from_millis(a.scan_interval_ms.max(10)),
                emulator_port: Some(a.emulator_port),
            };
            fthub::local::run(opts)
                .await
                .context("running the local host")
        }
    }
}

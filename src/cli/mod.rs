//! The `fthub` command line: one module per subcommand, each with its arguments and its
//! `run`; this module parses, picks the output, dispatches, and turns the outcome into an
//! exit code — 0 done, 1 the answer is no (not found, refused, rejected, failed), 2 the
//! command could not do its job (usage, I/O, a service that does not answer).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod approve;
mod args;
mod completions;
mod deadletters;
mod demo;
mod dev;
mod emulator;
mod init;
mod keygen;
mod output;
mod runs;
mod status;
mod storage;
mod submit;
mod validate;
mod wait;

pub use output::Out;

/// fthub: the Hub/Spoke fine-tuning pipeline for Azure OpenAI.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print JSON instead of text (the same as `--output json`).
    #[arg(long, global = true)]
    json: bool,
    /// Output format.
    #[arg(long, global = true, value_enum)]
    output: Option<output::Format>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the custom handler (what the Functions host starts; see host.json).
    Serve,
    /// Run the local Functions host stand-in: the handler, triggers, bus and storage.
    Dev(dev::Args),
    /// Run the Azure OpenAI emulator (Hub and Spoke accounts, data plane and ARM).
    Emulator(emulator::Args),
    /// Scaffold a function app that `fthub dev` runs at once, with new approver keys.
    Init(init::Args),
    /// Create an Ed25519 approver key: writes NAME.key (secret) and prints the public key
    /// for the topology (or adds the approver to a topology file with `--topology`).
    Keygen(keygen::Args),
    /// Run the whole story locally: submit, validate, train, evaluate, promote with signed
    /// approvals, keep warm. Exits 0 only if every step happened.
    Demo(demo::Args),
    /// Check a submission directory locally, upload it (data files, then manifest.json),
    /// and print the run it starts.
    Submit(submit::Args),
    /// Sign an approval with your key, publish it, and wait for the pipeline's answer.
    Approve(approve::Args),
    /// Show runs, one run, the projects, environments, endpoints, capacity or audit.
    Status(status::Args),
    /// Wait until a run reaches a stage (training, evaluated, dev, test, prod), showing its
    /// progress: the job, then regions verified per environment. Exit 1 if it fails.
    Wait(wait::Args),
    /// Operate on runs: list them, retry a stalled or failed step, cancel one.
    #[command(subcommand)]
    Runs(runs::Command),
    /// Messages Service Bus gave up on: list, replay.
    #[command(subcommand)]
    Deadletters(deadletters::Command),
    /// Inspect the pipeline's blob storage (local, Azurite or Azure).
    #[command(subcommand)]
    Storage(storage::Command),
    /// Validate fine-tuning datasets (exit 0 accepted, 1 rejected, 2 usage or I/O error).
    Validate(validate::Args),
    /// Print a shell completion script (`fthub completions bash > /etc/bash_completion.d/fthub`).
    Completions(completions::Args),
}

/// The answer is no: the command worked and the outcome is a refusal, a rejection, a
/// failure or "not found". Exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct No(pub String);

/// Returns a [`No`] as an error.
pub fn no<T>(why: impl Into<String>) -> anyhow::Result<T> {
    Err(No(why.into()).into())
}

/// A "no" whose outcome the command has printed already (a rejected dataset's report):
/// exit 1, and no second JSON document.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Said(pub String);

/// Returns a [`Said`] as an error.
pub fn said<T>(why: impl Into<String>) -> anyhow::Result<T> {
    Err(Said(why.into()).into())
}

/// Parses, runs, and exits with the outcome's code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new(cli.json || cli.output == Some(output::Format::Json));
    // Only the long-running commands log; the others own their stdout.
    if matches!(
        cli.command,
        Command::Serve | Command::Dev(_) | Command::Emulator(_)
    ) {
        fthub::telemetry::init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            fthub::errln!("fthub: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli.command, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain, without repeating a cause a message already quotes.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            let no = e.is::<No>() || e.is::<Said>();
            if out.json() && !e.is::<Said>() {
                // A script asking for JSON gets the outcome as JSON too.
                out.value(&serde_json::json!({
                    "error": if no { "no" } else { "failed" },
                    "detail": msg,
                }));
            }
            fthub::errln!("fthub: {msg}");
            ExitCode::from(if no { 1 } else { 2 })
        }
    }
}

async fn dispatch(command: Command, out: &Out) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            use anyhow::Context as _;
            let settings = fthub::app::Settings::from_env().context("reading settings")?;
            fthub::server::serve(settings)
                .await
                .context("serving the handler")
        }
        Command::Dev(a) => dev::run(a).await,
        Command::Emulator(a) => emulator::run(a).await,
        Command::Init(a) => init::run(a, out),
        Command::Keygen(a) => keygen::run(a, out),
        Command::Demo(a) => demo::run(a).await,
        Command::Submit(a) => submit::run(a, out).await,
        Command::Approve(a) => approve::run(a, out).await,
        Command::Status(a) => status::run(a, out).await,
        Command::Wait(a) => wait::run(a, out).await,
        Command::Runs(c) => runs::run(c, out).await,
        Command::Deadletters(c) => deadletters::run(c, out).await,
        Command::Storage(c) => storage::run(c, out).await,
        Command::Validate(a) => validate::run(a, out),
        Command::Completions(a) => completions::run(a),
    }
}

/// The clap command, for completions.
fn command() -> clap::Command {
    use clap::CommandFactory as _;
    Cli::command()
}

//! `fthub demo`: the whole story, locally.

use std::path::PathBuf;

/// `fthub demo` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The function app directory (the repository root).
    #[arg(long, default_value = ".")]
    app: PathBuf,
    /// State directory (default: a new temporary directory).
    #[arg(long)]
    home: Option<PathBuf>,
    /// Seconds of emulated training.
    #[arg(long, default_value_t = 3)]
    training_seconds: u64,
    /// Inject faults into this share of Azure OpenAI requests on every account
    /// (429, 500 and timeouts in equal parts), e.g. 0.2.
    #[arg(long, default_value_t = 0.0)]
    faults: f64,
}

/// Runs the story; a step that did not happen is a "no".
pub async fn run(a: Args) -> anyhow::Result<()> {
    fthub::commands::demo::run(fthub::commands::demo::DemoOptions {
        app: a.app,
        home: a.home,
        training_seconds: a.training_seconds,
        faults: a.faults,
    })
    .await
    .or_else(|step| super::no(format!("demo FAILED: {step}")))
}

//! `fthub validate FILE...`: exit 0 accepted, 1 rejected, 2 usage or I/O.

use std::path::PathBuf;

use fthub::commands::validate::Format;
use fthub::domain::validation::report::Verdict;

use super::Out;

/// `fthub validate` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSONL files; several are validated as one submission (train, validation, eval).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Base model (decides the encoding and the context length).
    #[arg(long, default_value = fthub::domain::validation::tokens::DEFAULT_MODEL)]
    model: String,
    /// Training method.
    #[arg(long, value_enum, default_value_t = MethodArg::Supervised)]
    method: MethodArg,
    /// Output format (`--json` is `--format json`).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write validation.json, validation.md and validation.html into this directory.
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

/// Validates, prints the report, and says no for a rejected dataset.
pub fn run(a: Args, out: &Out) -> anyhow::Result<()> {
    let format = a.format.unwrap_or(if out.json() {
        Format::Json
    } else {
        Format::Text
    });
    let (text, verdict) = fthub::commands::validate::run(fthub::commands::validate::Args {
        files: a.files,
        model: a.model,
        method: match a.method {
            MethodArg::Supervised => fthub::domain::validation::Method::Supervised,
            MethodArg::Dpo => fthub::domain::validation::Method::Dpo,
        },
        format,
        report: a.report,
        policy: a.policy,
        epochs: a.epochs,
        threads: a.threads,
    })
    .map_err(|e| anyhow::anyhow!("validate: {e}"))?;
    out.text(&text);
    match verdict {
        Verdict::Accepted => Ok(()),
        Verdict::Rejected => super::said("the dataset is rejected (the report says why)"),
    }
}

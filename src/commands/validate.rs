//! `fthub validate FILE...`: the report as text, JSON or Markdown, and with `--report` the
//! same `validation.json`, `validation.md` and `validation.html` the pipeline writes.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use crate::domain::validation::policy::Policy;
use crate::domain::validation::report::Verdict;
use crate::domain::validation::tokens::{known_models, model_spec};
use crate::domain::validation::{Method, Rules};
use crate::services::validation::{StreamOptions, SubmissionReport, validate_paths};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human summary.
    Text,
    /// One JSON object (the file report, or the submission for several files).
    Json,
    /// The Markdown report.
    Markdown,
}

/// Arguments of `fthub validate`.
#[derive(Debug, Clone)]
pub struct Args {
    /// Files; several are one submission (train, validation, eval).
    pub files: Vec<PathBuf>,
    /// Base model.
    pub model: String,
    /// Training method.
    pub method: Method,
    /// Output format.
    pub format: Format,
    /// Directory for `validation.json`, `validation.md` and `validation.html`.
    pub report: Option<PathBuf>,
    /// Policy file.
    pub policy: Option<PathBuf>,
    /// `n_epochs` from the manifest.
    pub epochs: Option<u64>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
}

fn load_policy(path: Option<&Path>) -> Result<Policy, String> {
    let Some(p) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(p)
        .map_err(|e| format!("cannot read policy {}: {e}", p.display()))?;
    Policy::from_json(&text).map_err(|e| {
        format!(
            "policy {} is invalid: {e} (see docs/validation.md, \"Policy\")",
            p.display()
        )
    })
}

/// Validates and renders: the report in the asked format and its verdict; `Err` names a
/// usage or I/O problem.
///
/// # Errors
/// No files, an unknown model, an unreadable policy or file, an unwritable report directory.
pub fn run(args: Args) -> Result<(String, Verdict), String> {
    if args.files.is_empty() {
        return Err("name at least one JSONL file".into());
    }
    let Some(spec) = model_spec(&args.model) else {
        return Err(format!(
            "unknown model {:?}; known families: {}",
            args.model,
            known_models().join(", ")
        ));
    };
    let policy = load_policy(args.policy.as_deref())?;
    let rules = Rules {
        model: args.model.clone(),
        spec,
        method: args.method,
        n_epochs: args.epochs,
        policy,
    };
    let mut opts = StreamOptions::default();
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    let bar = progress_bar(&args);
    let report = validate_paths(&args.files, &rules, opts, &|p: &Path, n: u64| {
        if let Some(b) = &bar {
            b.set_message(p.display().to_string());
            b.set_position(n);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = report.map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        format!("{e}{cause}")
    })?;
    if let Some(dir) = &args.report {
        write_reports(dir, &report)
            .map_err(|e| format!("cannot write the report to {}: {e}", dir.display()))?;
    }
    Ok((render(&report, args.format), report.verdict))
}

fn progress_bar(args: &Args) -> Option<indicatif::ProgressBar> {
    if args.format != Format::Text || !std::io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = args
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    // Small files finish before a bar is worth drawing.
    if total < 16 * 1024 * 1024 {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

fn json_of(report: &SubmissionReport) -> String {
    let value = match report.files.as_slice() {
        [one] => serde_json::to_value(one),
        _ => serde_json::to_value(report),
    };
    value
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or_default()
}

fn markdown_of(report: &SubmissionReport) -> String {
    let mut s: String = report
        .files
        .iter()
        .map(|f| f.to_markdown() + "\n")
        .collect();
    if report.files.len() > 1 {
        s.push_str("# Submission\n\n");
        s.push_str(&format!("**Verdict: {:?}**\n\n", report.verdict));
        for r in &report.reasons {
            s.push_str(&format!("- ✗ {r}\n"));
        }
        for w in &report.warnings {
            s.push_str(&format!("- ⚠ {w}\n"));
        }
    }
    s
}

fn render(report: &SubmissionReport, format: Format) -> String {
    match format {
        Format::Json => json_of(report) + "\n",
        Format::Markdown => markdown_of(report),
        Format::Text => {
            let mut s: String = report.files.iter().map(|f| f.to_text()).collect();
            if report.files.len() > 1 {
                for w in &report.warnings {
                    s.push_str(&format!("submission: ! {w}\n"));
                }
                s.push_str(&format!("submission: {:?}\n", report.verdict).to_uppercase());
            }
            s
        }
    }
}

fn write_reports(dir: &Path, report: &SubmissionReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("validation.json"), json_of(report) + "\n")?;
    std::fs::write(dir.join("validation.md"), markdown_of(report))?;
    let title = report.files.first().map_or("", |f| f.file.as_str());
    std::fs::write(
        dir.join("validation.html"),
        crate::views::reports::validation(title, report),
    )
}

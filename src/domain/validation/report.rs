//! The validation report: the JSON everyone consumes, its verdict, and its Markdown and
//! text renderings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::compliance::FindingClass;
use super::policy::Action;
use super::{FORMAT_CLASSES, FindingAt, LineError, Method, OverLimit, Rules, Stats, tokens};

/// Azure's cap on training tokens × epochs.
pub const MAX_TRAINING_TOKENS: u64 = 2_000_000_000;

/// Accepted or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No rejecting problem.
    Accepted,
    /// At least one rejecting problem; see `reasons`.
    Rejected,
}

/// Token totals over valid examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenTotals {
    /// Σ example tokens.
    pub total: u64,
    /// Σ assistant content tokens.
    pub assistant: u64,
    /// Largest example.
    pub max_example: u64,
}

/// Findings of one class in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceEntry {
    /// Occurrences.
    pub count: u64,
    /// The policy's action for the class.
    pub action: Action,
    /// First masked locations.
    pub first: Vec<FindingAt>,
}

/// One file's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// File name or blob path.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Model as named.
    pub model: String,
    /// Encoding name.
    pub encoding: &'static str,
    /// Training example context length.
    pub token_limit: u64,
    /// Training method.
    pub method: Method,
    /// The file starts with a UTF-8 BOM.
    pub bom: bool,
    /// Non-blank lines.
    pub examples: u64,
    /// Examples with no format error.
    pub valid_examples: u64,
    /// Every class, zeros included.
    pub format_errors: Map<String, Value>,
    /// Token totals.
    pub tokens: TokenTotals,
    /// Valid examples over the context length (truncated in training).
    pub examples_over_limit: u64,
    /// The first of them, by line and size.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub over_limit_examples: Vec<OverLimit>,
    /// Valid examples without a system message.
    pub missing_system: u64,
    /// Valid examples without a user message.
    pub missing_user: u64,
    /// Examples repeating an earlier one.
    pub duplicates: u64,
    /// Epochs: the manifest's, or the cookbook default.
    pub epochs: u64,
    /// epochs × Σ min(limit, example tokens).
    pub billing_tokens: u64,
    /// First errors by line.
    pub first_errors: Vec<LineError>,
    /// Findings per class (classes the policy ignores are left out).
    pub compliance: BTreeMap<String, ComplianceEntry>,
    /// Example token distribution: power-of-two upper bound → examples.
    pub token_histogram: BTreeMap<u64, u64>,
    /// The decision.
    pub verdict: Verdict,
    /// Why it was rejected.
    pub reasons: Vec<String>,
    /// What to look at even when accepted.
    pub warnings: Vec<String>,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "1 example has" / "3 examples have".
/// "line 4: 17000 tokens, line 9: 20000 tokens, … and 3 more" from the listed lines.
fn lines_of(listed: impl Iterator<Item = (u64, u64)>, total: u64) -> String {
    let shown: Vec<String> = listed
        .take(10)
        .map(|(line, tokens)| format!("line {line}: {tokens} tokens"))
        .collect();
    let more = total.saturating_sub(shown.len() as u64);
    if more > 0 {
        format!("{}, and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn examples(n: u64, verb_one: &str, verb_many: &str) -> String {
    if n == 1 {
        format!("1 example {verb_one}")
    } else {
        format!("{n} examples {verb_many}")
    }
}

impl FileReport {
    /// Builds the report and applies the policy. The minimum example count applies to
    /// training files only.
    pub fn new(
        file: &str,
        bytes: u64,
        bom: bool,
        training: bool,
        rules: &Rules,
        stats: &Stats,
    ) -> Self {
        let policy = &rules.policy;
        let epochs = rules
            .n_epochs
            .unwrap_or_else(|| tokens::default_epochs(stats.valid_examples));
        let billing_tokens = epochs * stats.billable_per_epoch;
        let duplicates = stats.duplicates();
        let mut format_errors = Map::new();
        for class in FORMAT_CLASSES {
            format_errors.insert(
                class.to_owned(),
                json!(stats.format_errors.get(class).copied().unwrap_or(0)),
            );
        }
        let mut reasons = Vec::new();
        let mut warnings = Vec::new();
        let error_total: u64 = stats.format_errors.values().sum();
        if error_total > 0 {
            let parts: Vec<String> = FORMAT_CLASSES
                .iter()
                .filter_map(|c| stats.format_errors.get(c).map(|n| format!("{c} {n}")))
                .collect();
            reasons.push(format!(
                "{} in {} ({})",
                plural(error_total, "format error", "format errors"),
                plural(stats.examples - stats.valid_examples, "example", "examples"),
                parts.join(", ")
            ));
        }
        if training && stats.valid_examples < policy.min_examples {
            reasons.push(format!(
                "{}; at least {} are required",
                plural(stats.valid_examples, "valid example", "valid examples"),
                policy.min_examples
            ));
        }
        if bytes > policy.max_bytes {
            reasons.push(format!(
                "the file is {bytes} bytes; the limit is {} bytes",
                policy.max_bytes
            ));
        }
        if policy.require_bom && !bom {
            reasons
                .push("the file has no UTF-8 byte-order mark and the policy requires one".into());
        }
        if billing_tokens > MAX_TRAINING_TOKENS {
            reasons.push(format!("{billing_tokens} training tokens × epochs exceed Azure's limit of {MAX_TRAINING_TOKENS}"));
        }
        let mut compliance = BTreeMap::new();
        for class in FindingClass::ALL {
            let Some(f) = stats.compliance.get(&class) else {
                continue;
            };
            let action = policy.action(class);
            let what = format!(
                "{} of {}",
                plural(f.count, "finding", "findings"),
                class.name()
            );
            if action == Action::Ignore {
                continue;
            }
            action.route(what, &mut reasons, &mut warnings);
            compliance.insert(
                class.name().to_owned(),
                ComplianceEntry {
                    count: f.count,
                    action,
                    first: f.first.clone(),
                },
            );
        }
        if duplicates > 0 {
            let listed: Vec<String> = stats
                .duplicate_lines()
                .iter()
                .take(10)
                .map(|(line, of)| format!("line {line} repeats line {of}"))
                .collect();
            let more = duplicates.saturating_sub(listed.len() as u64);
            let what = format!(
                "{} an earlier example ({}{})",
                examples(duplicates, "repeats", "repeat"),
                listed.join(", "),
                if more > 0 {
                    format!(", and {more} more")
                } else {
                    String::new()
                }
            );
            policy.duplicates.route(what, &mut reasons, &mut warnings);
        }
        if stats.examples_over_limit > 0 {
            warnings.push(format!(
                "{} the {}-token training context and will be truncated ({})",
                examples(stats.examples_over_limit, "exceeds", "exceed"),
                rules.spec.token_limit,
                lines_of(
                    stats.over_limit.iter().map(|o| (o.line, o.tokens)),
                    stats.examples_over_limit
                )
            ));
        }
        if stats.preference_shaped > 0 {
            reasons.push(format!(
                "{} the shape of a preference pair (input, preferred_output, non_preferred_output): \
                 if this is DPO data, set \"method\": \"dpo\" in the manifest (fthub validate --method dpo)",
                examples(stats.preference_shaped, "has", "have")
            ));
        }
        if stats.missing_system > 0 {
            let listed: Vec<String> = stats
                .missing_system_lines
                .iter()
                .take(10)
                .map(u64::to_string)
                .collect();
            let more = stats.missing_system.saturating_sub(listed.len() as u64);
            warnings.push(format!(
                "{} no system message (line {}{})",
                examples(stats.missing_system, "has", "have"),
                listed.join(", "),
                if more > 0 {
                    format!(", and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        if stats.missing_user > 0 {
            warnings.push(format!(
                "{} no user message",
                examples(stats.missing_user, "has", "have")
            ));
        }
        Self {
            file: file.to_owned(),
            bytes,
            model: rules.model.clone(),
            encoding: rules.spec.encoding.name(),
            token_limit: rules.spec.token_limit,
            method: rules.method,
            bom,
            examples: stats.examples,
            valid_examples: stats.valid_examples,
            format_errors,
            tokens: TokenTotals {
                total: stats.tokens_total,
                assistant: stats.tokens_assistant,
                max_example: stats.max_example,
            },
            examples_over_limit: stats.examples_over_limit,
            over_limit_examples: stats.over_limit.clone(),
            missing_system: stats.missing_system,
            missing_user: stats.missing_user,
            duplicates,
            epochs,
            billing_tokens,
            first_errors: stats.first_errors.clone(),
            compliance,
            token_histogram: stats
                .token_histogram
                .iter()
                .map(|(b, n)| (1u64 << b, *n))
                .collect(),
            verdict: if reasons.is_empty() {
                Verdict::Accepted
            } else {
                Verdict::Rejected
            },
            reasons,
            warnings,
        }
    }

    /// A short human summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verdict = match self.verdict {
            Verdict::Accepted => "ACCEPTED",
            Verdict::Rejected => "REJECTED",
        };
        let _ = writeln!(s, "{}: {verdict}", self.file);
        let _ = writeln!(
            s,
            "  {} examples, {} valid · {} bytes · model {} ({}, limit {})",
            self.examples,
            self.valid_examples,
            self.bytes,
            self.model,
            self.encoding,
            self.token_limit
        );
        let _ = writeln!(
            s,
            "  tokens {} (assistant {}, largest example {}) · {} epochs · ~{} billed tokens",
            self.tokens.total,
            self.tokens.assistant,
            self.tokens.max_example,
            self.epochs,
            self.billing_tokens
        );
        for r in &self.reasons {
            let _ = writeln!(s, "  ✗ {r}");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  ! {w}");
        }
        for (class, c) in &self.compliance {
            let at: Vec<String> = c
                .first
                .iter()
                .map(|f| format!("line {} {}", f.line, f.masked))
                .collect();
            let more = c.count.saturating_sub(c.first.len() as u64);
            let _ = writeln!(
                s,
                "  {class} ({}): {}{}",
                format!("{:?}", c.action).to_lowercase(),
                at.join(", "),
                if more > 0 {
                    format!(", and {more} more")
                } else {
                    String::new()
                }
            );
        }
        for e in self.first_errors.iter().take(10) {
            let _ = writeln!(s, "  line {}: {} — {}", e.line, e.class, e.detail);
        }
        if self.first_errors.len() > 10 {
            let _ = writeln!(
                s,
                "  … {} more listed in the JSON report",
                self.first_errors.len() - 10
            );
        }
        s
    }

    /// The Markdown report (`validation.md`).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Validation: `{}`\n", self.file);
        let _ = writeln!(s, "**Verdict: {:?}**\n", self.verdict);
        for r in &self.reasons {
            let _ = writeln!(s, "- ✗ {r}");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "- ⚠ {w}");
        }
        let _ = writeln!(s, "\n## Summary\n\n| | |\n|---|---|");
        let rows: [(&str, String); 12] = [
            ("Bytes", self.bytes.to_string()),
            (
                "Model",
                format!(
                    "{} ({}, limit {} tokens)",
                    self.model, self.encoding, self.token_limit
                ),
            ),
            ("Method", format!("{:?}", self.method).to_lowercase()),
            (
                "Examples",
                format!("{} ({} valid)", self.examples, self.valid_examples),
            ),
            (
                "Tokens",
                format!(
                    "{} (assistant {})",
                    self.tokens.total, self.tokens.assistant
                ),
            ),
            (
                "Largest example",
                format!("{} tokens", self.tokens.max_example),
            ),
            ("Over the limit", self.examples_over_limit.to_string()),
            (
                "Missing system / user",
                format!("{} / {}", self.missing_system, self.missing_user),
            ),
            ("Duplicates", self.duplicates.to_string()),
            ("Epochs", self.epochs.to_string()),
            ("Billed tokens (estimate)", self.billing_tokens.to_string()),
            (
                "UTF-8 BOM",
                if self.bom { "yes".into() } else { "no".into() },
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(s, "\n## Format errors\n\n| Class | Count |\n|---|---|");
        for (k, v) in &self.format_errors {
            let _ = writeln!(s, "| `{k}` | {v} |");
        }
        if !self.first_errors.is_empty() {
            let _ = writeln!(
                s,
                "\n### First errors\n\n| Line | Class | Detail |\n|---|---|---|"
            );
            for e in &self.first_errors {
                let _ = writeln!(
                    s,
                    "| {} | `{}` | {} |",
                    e.line,
                    e.class,
                    e.detail.replace('|', "\\|")
                );
            }
        }
        let _ = writeln!(s, "\n## Compliance\n");
        if self.compliance.is_empty() {
            let _ = writeln!(s, "No findings.");
        } else {
            let _ = writeln!(
                s,
                "| Class | Count | Action | First (masked) |\n|---|---|---|---|"
            );
            for (k, c) in &self.compliance {
                let first: Vec<String> = c
                    .first
                    .iter()
                    .map(|f| format!("line {}: `{}`", f.line, f.masked))
                    .collect();
                let _ = writeln!(
                    s,
                    "| `{k}` | {} | {:?} | {} |",
                    c.count,
                    c.action,
                    first.join("; ")
                );
            }
        }
        if !self.token_histogram.is_empty() {
            let _ = writeln!(
                s,
                "\n## Tokens per example\n\n| ≤ tokens | Examples |\n|---|---|"
            );
            for (b, n) in &self.token_histogram {
                let _ = writeln!(s, "| {b} | {n} |");
            }
        }
        s
    }
}

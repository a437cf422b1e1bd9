#![doc = include_str!("../../../docs/validation.md")]

pub mod compliance;
pub mod policy;
pub mod report;
pub use aoai_facts::tokens;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde_json::{Map, Value};

use compliance::{Finding, FindingClass};
use policy::Policy;
use tokens::{Encoding, ModelSpec};

/// The documented format error classes, then ours, in report order.
pub const FORMAT_CLASSES: [&str; 15] = [
    "bad_json",
    "data_type",
    "missing_messages_list",
    "message_missing_key",
    "message_unrecognized_key",
    "unrecognized_role",
    "missing_content",
    "example_missing_assistant_message",
    "message_data_type",
    "invalid_weight",
    "weight_on_non_assistant",
    "dpo_missing_input",
    "dpo_missing_output",
    "dpo_output_role",
    "dpo_output_missing_assistant",
];

const MESSAGE_KEYS: [&str; 7] = [
    "role",
    "content",
    "name",
    "weight",
    "tool_calls",
    "tool_call_id",
    "function_call",
];
const ROLES: [&str; 5] = ["system", "user", "assistant", "tool", "function"];
/// At most this many errors are listed with their line.
pub const MAX_LISTED_ERRORS: usize = 100;
/// At most this many masked locations per compliance class.
pub const MAX_LISTED_FINDINGS: usize = 5;
/// Longest detail text kept per error (details never carry dataset content beyond a key name).
const MAX_DETAIL: usize = 120;

/// Training method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Chat `messages` examples.
    #[default]
    Supervised,
    /// Preference pairs: `input`, `preferred_output`, `non_preferred_output`.
    Dpo,
}

/// What to validate against.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Base model as named by the user.
    pub model: String,
    /// Its encoding and context length.
    pub spec: ModelSpec,
    /// Training method.
    pub method: Method,
    /// The manifest's `n_epochs`, when set.
    pub n_epochs: Option<u64>,
    /// Policy.
    pub policy: Policy,
}

impl Rules {
    /// The rules a submission's manifest asks for, on `model` (the manifest's base model or
    /// the default the caller knows); `None` for a model of no known family. Intake and
    /// `fthub submit` both use this, so they judge a dataset the same way.
    pub fn for_manifest(
        manifest: &crate::domain::manifest::Manifest,
        model: String,
    ) -> Option<Self> {
        Some(Self {
            spec: tokens::model_spec(&model)?,
            model,
            method: match manifest.method {
                crate::domain::aoai::TrainingMethod::Supervised => Method::Supervised,
                crate::domain::aoai::TrainingMethod::Dpo => Method::Dpo,
            },
            n_epochs: manifest.hyperparameters.n_epochs.map(u64::from),
            policy: Policy::default(),
        })
    }
}

/// One listed error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// Format error class.
    pub class: &'static str,
    /// What is wrong.
    pub detail: String,
}

/// An example longer than the model's training context, named by its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverLimit {
    /// 1-based line number.
    pub line: u64,
    /// Its tokens.
    pub tokens: u64,
}

/// One listed finding location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingAt {
    /// 1-based line number.
    pub line: u64,
    /// Masked text.
    pub masked: String,
}

/// Findings of one class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassFindings {
    /// Occurrences.
    pub count: u64,
    /// First locations, masked.
    pub first: Vec<FindingAt>,
}

/// Everything counted over a file, mergeable in any order: counts add up, listed errors and
/// findings keep the lowest line numbers, so results never depend on chunking or threads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Non-blank lines.
    pub examples: u64,
    /// Examples with no format error.
    pub valid_examples: u64,
    /// Per class.
    pub format_errors: BTreeMap<&'static str, u64>,
    /// Σ example tokens over valid examples.
    pub tokens_total: u64,
    /// Σ assistant content tokens over valid examples.
    pub tokens_assistant: u64,
    /// Largest example.
    pub max_example: u64,
    /// Valid examples over the model's limit.
    pub examples_over_limit: u64,
    /// Σ min(limit, example tokens) over valid examples.
    pub billable_per_epoch: u64,
    /// Valid examples without a system message.
    pub missing_system: u64,
    /// Valid examples without a user message.
    pub missing_user: u64,
    /// Listed errors, sorted by line.
    pub first_errors: Vec<LineError>,
    /// Compliance findings per class.
    pub compliance: BTreeMap<FindingClass, ClassFindings>,
    /// Content hashes of every example, for duplicates and leakage.
    pub hashes: Vec<u64>,
    /// Example token counts in power-of-two buckets (bucket i holds 2^(i-1) < n ≤ 2^i).
    pub token_histogram: BTreeMap<u32, u64>,
    /// The first examples over the token limit (at most [`MAX_LISTED_ERRORS`]).
    pub over_limit: Vec<OverLimit>,
    /// Examples checked as supervised that have the shape of a preference pair, so the
    /// report can say the method is probably wrong.
    pub preference_shaped: u64,
    /// The line of each entry of `hashes`, so duplicates can be named (32 bits: half the
    /// memory, and no JSONL file has four billion lines).
    pub hash_lines: Vec<u32>,
    /// The first examples without a system message, by line.
    pub missing_system_lines: Vec<u64>,
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The hash that identifies an example's content (trimmed line bytes).
pub fn example_hash(line: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    line.hash(&mut h);
    h.finish()
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0b' | b'\x0c')
}

/// Per-example error collector.
struct Errs<'a> {
    line: u64,
    list: &'a mut Vec<(&'static str, String)>,
}

impl Errs<'_> {
    fn add(&mut self, class: &'static str, detail: impl Into<String>) {
        self.list.push((class, detail.into()));
    }
}

fn role_of(m: &Map<String, Value>) -> Option<&str> {
    m.get("role").and_then(Value::as_str)
}

fn has_call(m: &Map<String, Value>) -> bool {
    m.contains_key("tool_calls") || m.contains_key("function_call")
}

/// The per-message rules; `i` is the message's index for details.
fn check_message(i: usize, v: &Value, errs: &mut Errs<'_>) -> Option<()> {
    let Some(m) = v.as_object() else {
        errs.add("message_data_type", format!("message {i} is not an object"));
        return None;
    };
    let role = role_of(m);
    if !m.contains_key("role") {
        errs.add(
            "message_missing_key",
            format!("message {i} has no \"role\""),
        );
    } else if !m.contains_key("content") && !has_call(m) {
        errs.add(
            "message_missing_key",
            format!("message {i} has no \"content\""),
        );
    }
    if let Some(k) = m.keys().find(|k| !MESSAGE_KEYS.contains(&k.as_str())) {
        errs.add(
            "message_unrecognized_key",
            truncate(format!("message {i} has unrecognized key {k:?}")),
        );
    }
    if !role.is_some_and(|r| ROLES.contains(&r)) {
        let shown = m
            .get("role")
            .map_or_else(|| "no role".to_owned(), |r| truncate(format!("role {r}")));
        errs.add("unrecognized_role", format!("message {i}: {shown}"));
    }
    let content_ok = match m.get("content") {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_)) => role == Some("user"),
        _ => false,
    };
    if !content_ok && !has_call(m) {
        errs.add(
            "missing_content",
            format!("message {i} has no non-empty string content"),
        );
    }
    if let Some(w) = m.get("weight") {
        if !(w.as_i64() == Some(0)
            || w.as_i64() == Some(1)
            || w.as_f64() == Some(0.0)
            || w.as_f64() == Some(1.0))
        {
            errs.add(
                "invalid_weight",
                truncate(format!(
                    "message {i} has weight {w}; only 0 or 1 are allowed"
                )),
            );
        } else if role != Some("assistant") {
            errs.add(
                "weight_on_non_assistant",
                format!("message {i} has a weight but is not an assistant message"),
            );
        }
    }
    Some(())
}

fn messages_of(v: Option<&Value>) -> Option<&Vec<Value>> {
    v.and_then(Value::as_array).filter(|a| !a.is_empty())
}

fn objects(msgs: &[Value]) -> impl Iterator<Item = &Map<String, Value>> {
    msgs.iter().filter_map(Value::as_object)
}

/// What a valid example contributes.
struct Counted {
    tokens: u64,
    assistant: u64,
    has_system: bool,
    has_user: bool,
}

fn check_supervised(
    obj: &Map<String, Value>,
    enc: Encoding,
    errs: &mut Errs<'_>,
) -> Option<Counted> {
    let Some(msgs) = messages_of(obj.get("messages")) else {
        errs.add("missing_messages_list", "no non-empty \"messages\" array");
        return None;
    };
    for (i, m) in msgs.iter().enumerate() {
        check_message(i, m, errs);
    }
    if !objects(msgs).any(|m| role_of(m) == Some("assistant")) {
        errs.add("example_missing_assistant_message", "no assistant message");
    }
    if !errs.list.is_empty() {
        return None;
    }
    Some(Counted {
        tokens: tokens::conversation_tokens(enc, objects(msgs)),
        assistant: tokens::assistant_tokens(enc, objects(msgs)),
        has_system: objects(msgs).any(|m| role_of(m) == Some("system")),
        has_user: objects(msgs).any(|m| role_of(m) == Some("user")),
    })
}

fn check_dpo(obj: &Map<String, Value>, enc: Encoding, errs: &mut Errs<'_>) -> Option<Counted> {
    let input = obj
        .get("input")
        .and_then(Value::as_object)
        .and_then(|i| messages_of(i.get("messages")));
    let Some(input) = input else {
        errs.add(
            "dpo_missing_input",
            "no \"input\" object with a non-empty \"messages\" array",
        );
        return None;
    };
    for (i, m) in input.iter().enumerate() {
        check_message(i, m, errs);
    }
    let mut outputs = Vec::new();
    for key in ["preferred_output", "non_preferred_output"] {
        let Some(out) = messages_of(obj.get(key)) else {
            errs.add(
                "dpo_missing_output",
                format!("no non-empty \"{key}\" array"),
            );
            continue;
        };
        for (i, m) in out.iter().enumerate() {
            if check_message(i, m, errs).is_some()
                && let Some(r) = m.get("role")
                && !matches!(r.as_str(), Some("assistant" | "tool"))
            {
                errs.add(
                    "dpo_output_role",
                    truncate(format!(
                        "{key} message {i} has role {r}; only assistant or tool"
                    )),
                );
            }
        }
        if !objects(out).any(|m| role_of(m) == Some("assistant")) {
            errs.add(
                "dpo_output_missing_assistant",
                format!("\"{key}\" has no assistant message"),
            );
        }
        outputs.push(out);
    }
    if !errs.list.is_empty() {
        return None;
    }
    let all = || objects(input).chain(outputs.iter().flat_map(|o| objects(o)));
    Some(Counted {
        tokens: tokens::conversation_tokens(enc, all()),
        assistant: tokens::assistant_tokens(enc, outputs.iter().flat_map(|o| objects(o))),
        has_system: objects(input).any(|m| role_of(m) == Some("system")),
        has_user: objects(input).any(|m| role_of(m) == Some("user")),
    })
}

fn scan_strings(v: &Value, out: &mut Vec<Finding>) {
    match v {
        Value::String(s) => compliance::scan(s, out),
        Value::Array(a) => a.iter().for_each(|x| scan_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| scan_strings(x, out)),
        _ => {}
    }
}

impl Stats {
    /// Checks one line (without its newline). Blank lines are not examples.
    pub fn check_line(&mut self, rules: &Rules, line_no: u64, raw: &[u8]) {
        let start = raw.iter().position(|b| !is_blank(*b));
        let Some(start) = start else { return };
        let end = raw
            .iter()
            .rposition(|b| !is_blank(*b))
            .map_or(raw.len(), |e| e + 1);
        let line = &raw[start..end];
        self.examples += 1;
        self.hashes.push(example_hash(line));
        self.hash_lines
            .push(u32::try_from(line_no).unwrap_or(u32::MAX));

        let mut list = Vec::new();
        let mut errs = Errs {
            line: line_no,
            list: &mut list,
        };
        let mut findings = Vec::new();
        let counted = match std::str::from_utf8(line) {
            Err(e) => {
                errs.add(
                    "bad_json",
                    format!("not UTF-8 (invalid byte at column {})", e.valid_up_to() + 1),
                );
                None
            }
            Ok(text) => match serde_json::from_str::<Value>(text) {
                Err(e) => {
                    errs.add("bad_json", format!("not valid JSON: {e}"));
                    compliance::scan(text, &mut findings);
                    None
                }
                Ok(v) => {
                    scan_strings(&v, &mut findings);
                    match v.as_object() {
                        None => {
                            errs.add("data_type", "the example is not a JSON object");
                            None
                        }
                        Some(obj) => match rules.method {
                            Method::Supervised => {
                                if !obj.contains_key("messages")
                                    && obj.contains_key("preferred_output")
                                    && obj.contains_key("non_preferred_output")
                                {
                                    self.preference_shaped += 1;
                                }
                                check_supervised(obj, rules.spec.encoding, &mut errs)
                            }
                            Method::Dpo => check_dpo(obj, rules.spec.encoding, &mut errs),
                        },
                    }
                }
            },
        };
        let line_no = errs.line;
        for (class, detail) in list {
            *self.format_errors.entry(class).or_default() += 1;
            if self.first_errors.len() < MAX_LISTED_ERRORS {
                self.first_errors.push(LineError {
                    line: line_no,
                    class,
                    detail,
                });
            }
        }
        for f in findings {
            let c = self.compliance.entry(f.class).or_default();
            c.count += 1;
            if c.first.len() < MAX_LISTED_FINDINGS {
                c.first.push(FindingAt {
                    line: line_no,
                    masked: f.masked,
                });
            }
        }
        if let Some(c) = counted {
            self.valid_examples += 1;
            self.tokens_total += c.tokens;
            self.tokens_assistant += c.assistant;
            self.max_example = self.max_example.max(c.tokens);
            self.billable_per_epoch += c.tokens.min(rules.spec.token_limit);
            if c.tokens > rules.spec.token_limit {
                self.examples_over_limit += 1;
                if self.over_limit.len() < MAX_LISTED_ERRORS {
                    self.over_limit.push(OverLimit {
                        line: line_no,
                        tokens: c.tokens,
                    });
                }
            }
            self.missing_system += u64::from(!c.has_system);
            if !c.has_system && self.missing_system_lines.len() < MAX_LISTED_ERRORS {
                self.missing_system_lines.push(line_no);
            }
            self.missing_user += u64::from(!c.has_user);
            let bucket = 64 - c.tokens.saturating_sub(1).leading_zeros();
            *self.token_histogram.entry(bucket).or_default() += 1;
        }
    }

    /// A line longer than the reader's limit, skipped unread: one example, not valid JSON as
    /// far as anyone can tell without holding it in memory.
    pub fn oversized_line(&mut self, line_no: u64, bytes: u64, limit: u64) {
        self.examples += 1;
        *self.format_errors.entry("bad_json").or_default() += 1;
        if self.first_errors.len() < MAX_LISTED_ERRORS {
            self.first_errors.push(LineError {
                line: line_no,
                class: "bad_json",
                detail: format!("the line is {bytes} bytes, over the {limit}-byte limit for one example; skipped unread"),
            });
        }
    }

    /// Adds another part of the same file.
    pub fn merge(&mut self, other: Stats) {
        self.examples += other.examples;
        self.valid_examples += other.valid_examples;
        for (k, v) in other.format_errors {
            *self.format_errors.entry(k).or_default() += v;
        }
        self.tokens_total += other.tokens_total;
        self.tokens_assistant += other.tokens_assistant;
        self.max_example = self.max_example.max(other.max_example);
        self.examples_over_limit += other.examples_over_limit;
        self.billable_per_epoch += other.billable_per_epoch;
        self.missing_system += other.missing_system;
        self.missing_user += other.missing_user;
        self.first_errors.extend(other.first_errors);
        self.first_errors.sort_by_key(|e| e.line);
        self.first_errors.truncate(MAX_LISTED_ERRORS);
        for (class, f) in other.compliance {
            let c = self.compliance.entry(class).or_default();
            c.count += f.count;
            c.first.extend(f.first);
            c.first.sort_by_key(|a| a.line);
            c.first.truncate(MAX_LISTED_FINDINGS);
        }
        self.over_limit.extend(other.over_limit);
        self.over_limit.sort_by_key(|o| o.line);
        self.over_limit.truncate(MAX_LISTED_ERRORS);
        self.preference_shaped += other.preference_shaped;
        self.hashes.extend(other.hashes);
        self.hash_lines.extend(other.hash_lines);
        self.missing_system_lines.extend(other.missing_system_lines);
        self.missing_system_lines.sort_unstable();
        self.missing_system_lines.truncate(MAX_LISTED_ERRORS);
        for (k, v) in other.token_histogram {
            *self.token_histogram.entry(k).or_default() += v;
        }
    }

    /// The first repeated examples: (line, line of the example it repeats), by line.
    pub fn duplicate_lines(&self) -> Vec<(u64, u64)> {
        let line = |i: usize| self.hash_lines.get(i).copied().map_or(0, u64::from);
        let mut order: Vec<usize> = (0..self.hashes.len()).collect();
        order.sort_unstable_by_key(|&i| (self.hashes[i], line(i)));
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut first = None;
        for (k, &i) in order.iter().enumerate() {
            if k > 0 && self.hashes[order[k - 1]] == self.hashes[i] {
                out.push((line(i), first.unwrap_or(0)));
            } else {
                first = Some(line(i));
            }
        }
        out.sort_unstable();
        out.truncate(MAX_LISTED_ERRORS);
        out
    }

    /// Examples whose content repeats an earlier example of the file.
    pub fn duplicates(&self) -> u64 {
        let mut h = self.hashes.clone();
        h.sort_unstable();
        let distinct = {
            h.dedup();
            h.len() as u64
        };
        self.hashes.len() as u64 - distinct
    }
}

#[cfg(test)]
mod tests;

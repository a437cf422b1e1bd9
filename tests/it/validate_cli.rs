//! `fthub validate` as users run it: the documented JSON, exit codes, reports and policy.
//! Golden files in tests/golden/ were produced by bench/reference_validate.py, an
//! independent implementation of the same rules with Python's json and tiktoken.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    crate::common::repo()
}

fn fthub(args: &[&str]) -> Output {
    Command::new(crate::common::fthub())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run fthub")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn golden(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo().join("tests/golden").join(name)).expect("golden"))
        .expect("json")
}

/// Every field of the reference's output must match; compliance counts per class too.
fn assert_matches_reference(args: &[&str], golden_name: &str) -> Value {
    let out = fthub(args);
    let got = json_of(&out);
    let mut want = golden(golden_name);
    let want_compliance = want
        .as_object_mut()
        .and_then(|o| o.remove("compliance_counts"))
        .expect("compliance_counts");
    for (k, v) in want.as_object().expect("object") {
        if k != "file" {
            assert_eq!(&got[k], v, "{golden_name}: field {k}");
        }
    }
    let counts: serde_json::Map<String, Value> = got["compliance"]
        .as_object()
        .expect("compliance")
        .iter()
        .map(|(k, v)| (k.clone(), v["count"].clone()))
        .collect();
    assert_eq!(
        Value::Object(counts),
        want_compliance,
        "{golden_name}: compliance counts"
    );
    got
}

#[test]
fn a_clean_dataset_matches_the_reference_implementation_and_exits_zero() {
    let got = assert_matches_reference(
        &[
            "validate",
            "--format",
            "json",
            "samples/support/train.jsonl",
        ],
        "support.json",
    );
    assert_eq!(got["verdict"], "accepted");
    assert_eq!(
        fthub(&["validate", "samples/support/train.jsonl"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn a_broken_dataset_matches_the_reference_and_exits_one_with_reasons() {
    let out = fthub(&["validate", "--format", "json", "samples/broken/train.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let got = assert_matches_reference(
        &["validate", "--format", "json", "samples/broken/train.jsonl"],
        "broken.json",
    );
    assert_eq!(got["verdict"], "rejected");
    assert!(
        got["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r.as_str().unwrap_or("").contains("aws_access_key"))
    );
    let first = &got["first_errors"][0];
    assert_eq!(
        (first["line"].as_u64(), first["class"].as_str()),
        (Some(2), Some("example_missing_assistant_message"))
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("AKIAIOSFODNN7EXAMPLE") && !text.contains("jane.doe@"),
        "findings are masked"
    );
}

#[test]
fn other_models_methods_and_manifest_epochs_match_the_reference() {
    assert_matches_reference(
        &[
            "validate",
            "--format",
            "json",
            "--model",
            "gpt-35-turbo-0125",
            "samples/support/validation.jsonl",
        ],
        "support_validation_gpt35.json",
    );
    assert_matches_reference(
        &[
            "validate",
            "--format",
            "json",
            "--method",
            "dpo",
            "--model",
            "gpt-4o",
            "samples/preferences/train.jsonl",
        ],
        "preferences_dpo.json",
    );
    assert_matches_reference(
        &[
            "validate",
            "--format",
            "json",
            "--model",
            "gpt-4.1-nano",
            "--epochs",
            "2",
            "tests/golden/generated.jsonl",
        ],
        "generated.json",
    );
}

#[test]
fn the_json_output_has_every_documented_field() {
    let got = json_of(&fthub(&[
        "validate",
        "--format",
        "json",
        "samples/support/train.jsonl",
    ]));
    for field in [
        "file",
        "bytes",
        "model",
        "encoding",
        "token_limit",
        "examples",
        "valid_examples",
        "format_errors",
        "tokens",
        "examples_over_limit",
        "missing_system",
        "missing_user",
        "epochs",
        "billing_tokens",
        "first_errors",
        "compliance",
        "verdict",
        "reasons",
    ] {
        assert!(got.get(field).is_some(), "missing {field}");
    }
    for class in [
        "bad_json",
        "data_type",
        "missing_messages_list",
        "message_missing_key",
        "message_unrecognized_key",
        "unrecognized_role",
        "missing_content",
        "example_missing_assistant_message",
    ] {
        assert!(
            got["format_errors"][class].is_u64(),
            "missing class {class}"
        );
    }
    for t in ["total", "assistant", "max_example"] {
        assert!(got["tokens"][t].is_u64());
    }
}

#[test]
fn several_files_are_one_submission_with_leakage_reported() {
    let out = fthub(&[
        "validate",
        "--format",
        "json",
        "samples/support/train.jsonl",
        "samples/support/validation.jsonl",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a small validation file is fine"
    );
    let got = json_of(&out);
    assert_eq!(got["files"].as_array().expect("files").len(), 2);
    assert_eq!(got["leakage"]["samples/support/validation.jsonl"], 1);
    assert!(
        got["warnings"][0]
            .as_str()
            .expect("warning")
            .contains("leakage")
    );
}

#[test]
fn usage_and_io_problems_exit_two_with_a_helpful_message() {
    let missing = fthub(&["validate", "no/such/file.jsonl"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/file.jsonl"));
    let model = fthub(&[
        "validate",
        "--model",
        "llama-2",
        "samples/support/train.jsonl",
    ]);
    assert_eq!(model.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&model.stderr).contains("known families"));
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("p.json");
    std::fs::write(&policy, r#"{"compliance": {"dna": "reject"}}"#).expect("write");
    let bad = fthub(&[
        "validate",
        "--policy",
        policy.to_str().expect("utf8"),
        "samples/support/train.jsonl",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_policy_file_turns_warnings_into_rejections() {
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("strict.json");
    std::fs::write(
        &policy,
        r#"{"require_bom": true, "compliance": {"email": "reject"}}"#,
    )
    .expect("write");
    let p = policy.to_str().expect("utf8");
    let out = fthub(&[
        "validate",
        "--format",
        "json",
        "--policy",
        p,
        "samples/support/train.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let got = json_of(&out);
    assert!(
        got["reasons"][0]
            .as_str()
            .expect("reason")
            .contains("byte-order mark")
    );
}

#[test]
fn report_directory_gets_json_markdown_and_the_pipelines_html() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().join("reports");
    let out = fthub(&[
        "validate",
        "--report",
        d.to_str().expect("utf8"),
        "samples/broken/train.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value =
        serde_json::from_slice(&std::fs::read(d.join("validation.json")).expect("json"))
            .expect("valid");
    assert_eq!(json["verdict"], "rejected");
    let md = std::fs::read_to_string(d.join("validation.md")).expect("md");
    assert!(
        md.contains("# Validation") && md.contains("| 3 | `bad_json` |"),
        "{md}"
    );
    assert!(!md.contains("AKIAIOSFODNN7EXAMPLE"));
    let html = std::fs::read_to_string(d.join("validation.html")).expect("html");
    assert!(
        html.starts_with("<!doctype html>") && html.contains("bad_json"),
        "{html}"
    );
    assert!(!html.contains("AKIAIOSFODNN7EXAMPLE"));
}

#[test]
fn text_output_names_the_line_of_every_finding_and_hints_at_dpo_for_preference_data() {
    let out = fthub(&["validate", "samples/broken/train.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "aws_access_key (reject): line 9",
        "email (warn): line 8",
        "line 3: bad_json",
        "repeats line",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(
        !text.contains("AKIAIOSFODNN7EXAMPLE"),
        "findings stay masked"
    );
    let out = fthub(&["validate", "samples/preferences/train.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--method dpo"), "{text}");
    let out = fthub(&[
        "validate",
        "--method",
        "dpo",
        "samples/preferences/train.jsonl",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

use super::policy::Policy;
use super::report::{FileReport, Verdict};
use super::tokens::{Encoding, model_spec};
use super::*;

fn rules(method: Method) -> Rules {
    Rules {
        model: "gpt-4.1-mini".into(),
        spec: model_spec("gpt-4.1-mini").expect("model"),
        method,
        n_epochs: None,
        policy: Policy::default(),
    }
}

fn classes_of(line: &str, method: Method) -> Vec<&'static str> {
    let mut s = Stats::default();
    s.check_line(&rules(method), 1, line.as_bytes());
    s.first_errors.iter().map(|e| e.class).collect()
}

fn sup(line: &str) -> Vec<&'static str> {
    classes_of(line, Method::Supervised)
}

const OK: &str = r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}"#;

#[test]
fn a_well_formed_example_has_no_error() {
    assert!(sup(OK).is_empty());
}

#[test]
fn each_format_error_class_has_a_minimal_example() {
    let cases: [(&str, &[&str]); 13] = [
        ("{not json", &["bad_json"]),
        ("[1,2]", &["data_type"]),
        (r#"{"messages":[]}"#, &["missing_messages_list"]),
        (
            r#"{"messages":{"role":"user"}}"#,
            &["missing_messages_list"],
        ),
        (
            r#"{"messages":[{"content":"x"},{"role":"assistant","content":"a"}]}"#,
            &["message_missing_key", "unrecognized_role"],
        ),
        (
            r#"{"messages":[{"role":"user"},{"role":"assistant","content":"a"}]}"#,
            &["message_missing_key", "missing_content"],
        ),
        (
            r#"{"messages":[{"role":"user","content":"u","extra":1},{"role":"assistant","content":"a"}]}"#,
            &["message_unrecognized_key"],
        ),
        (
            r#"{"messages":[{"role":"bot","content":"u"},{"role":"assistant","content":"a"}]}"#,
            &["unrecognized_role"],
        ),
        (
            r#"{"messages":[{"role":"user","content":""},{"role":"assistant","content":"a"}]}"#,
            &["missing_content"],
        ),
        (
            r#"{"messages":[{"role":"user","content":"u"}]}"#,
            &["example_missing_assistant_message"],
        ),
        (
            r#"{"messages":["hi",{"role":"assistant","content":"a"}]}"#,
            &["message_data_type"],
        ),
        (
            r#"{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a","weight":2}]}"#,
            &["invalid_weight"],
        ),
        (
            r#"{"messages":[{"role":"user","content":"u","weight":1},{"role":"assistant","content":"a"}]}"#,
            &["weight_on_non_assistant"],
        ),
    ];
    for (line, want) in cases {
        assert_eq!(sup(line), want.to_vec(), "{line}");
    }
}

#[test]
fn invalid_utf8_is_bad_json() {
    let mut s = Stats::default();
    s.check_line(&rules(Method::Supervised), 7, b"{\"messages\": \"\xff\"}");
    assert_eq!(s.first_errors[0].class, "bad_json");
    assert_eq!(s.first_errors[0].line, 7);
}

#[test]
fn tool_calls_content_parts_and_tool_messages_are_valid() {
    let line = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"21"},{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}},{"role":"function","name":"f","content":"ok"},{"role":"assistant","content":"done","weight":0}]}"#;
    assert!(sup(line).is_empty(), "{:?}", sup(line));
    // A content-parts array is only allowed for user messages.
    assert_eq!(
        sup(
            r#"{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":[{"type":"text","text":"a"}]}]}"#
        ),
        ["missing_content"]
    );
}

#[test]
fn dpo_examples_follow_their_own_rules() {
    let ok = r#"{"input":{"messages":[{"role":"user","content":"q"}]},"preferred_output":[{"role":"assistant","content":"a"}],"non_preferred_output":[{"role":"assistant","content":"b"}]}"#;
    assert!(classes_of(ok, Method::Dpo).is_empty());
    assert_eq!(
        classes_of(r#"{"preferred_output":[]}"#, Method::Dpo),
        ["dpo_missing_input"]
    );
    let no_out = r#"{"input":{"messages":[{"role":"user","content":"q"}]},"preferred_output":[{"role":"assistant","content":"a"}]}"#;
    assert_eq!(classes_of(no_out, Method::Dpo), ["dpo_missing_output"]);
    let bad_role = r#"{"input":{"messages":[{"role":"user","content":"q"}]},"preferred_output":[{"role":"user","content":"a"}],"non_preferred_output":[{"role":"assistant","content":"b"}]}"#;
    assert_eq!(
        classes_of(bad_role, Method::Dpo),
        ["dpo_output_role", "dpo_output_missing_assistant"]
    );
    assert_eq!(
        classes_of(ok, Method::Supervised),
        ["missing_messages_list"]
    );
}

#[test]
fn tokens_count_only_valid_examples_with_the_cookbook_framing() {
    let r = rules(Method::Supervised);
    let mut s = Stats::default();
    s.check_line(&r, 1, OK.as_bytes());
    s.check_line(&r, 2, b"{bad");
    s.check_line(&r, 3, b"   ");
    let enc = Encoding::O200kBase;
    // 3 + 3 × (3 + role + content)
    let expected = 3
        + (3 + enc.count("system") + 1)
        + (3 + enc.count("user") + 1)
        + (3 + enc.count("assistant") + 1);
    assert_eq!(s.tokens_total, expected);
    assert_eq!(s.tokens_assistant, 1);
    assert_eq!((s.examples, s.valid_examples), (2, 1));
}

#[test]
fn the_verdict_rejects_format_errors_and_too_few_examples_and_warns_about_the_rest() {
    let r = rules(Method::Supervised);
    let mut s = Stats::default();
    for i in 0..10 {
        s.check_line(&r, i + 1, format!(r#"{{"messages":[{{"role":"user","content":"q{i} jane@example.com"}},{{"role":"assistant","content":"a"}}]}}"#).as_bytes());
    }
    let report = FileReport::new("t.jsonl", 100, false, true, &r, &s);
    assert_eq!(report.verdict, Verdict::Accepted, "{:?}", report.reasons);
    assert_eq!(report.missing_system, 10);
    assert!(report.warnings.iter().any(|w| w.contains("email")));
    assert_eq!(report.compliance["email"].count, 10);
    assert!(!report.compliance["email"].first[0].masked.contains("jane"));

    s.check_line(&r, 11, br#"{"messages":[{"role":"user","content":"AKIAIOSFODNN7EXAMPLE"},{"role":"assistant","content":"a"}]}"#);
    s.check_line(&r, 12, b"not json");
    let report = FileReport::new("t.jsonl", 100, false, true, &r, &s);
    assert_eq!(report.verdict, Verdict::Rejected);
    assert!(report.reasons.iter().any(|x| x.contains("aws_access_key")));
    assert!(report.reasons.iter().any(|x| x.contains("bad_json 1")));
    let few = FileReport::new("t.jsonl", 100, false, true, &r, &Stats::default());
    assert!(few.reasons.iter().any(|x| x.contains("at least 10")));
    let small_eval = FileReport::new("eval.jsonl", 100, false, false, &r, &Stats::default());
    assert_eq!(
        small_eval.verdict,
        Verdict::Accepted,
        "the minimum applies to training files only"
    );
}

#[test]
fn duplicates_are_counted_and_listed_errors_are_capped_at_one_hundred() {
    let r = rules(Method::Supervised);
    let mut s = Stats::default();
    for i in 0..150 {
        s.check_line(&r, i + 1, b"{}");
    }
    assert_eq!(s.duplicates(), 149);
    let dups = s.duplicate_lines();
    assert_eq!(dups.len(), MAX_LISTED_ERRORS);
    assert_eq!(
        (dups[0], dups[1]),
        ((2, 1), (3, 1)),
        "each names its line and the first"
    );
    assert_eq!(s.first_errors.len(), MAX_LISTED_ERRORS);
    assert_eq!(s.format_errors["missing_messages_list"], 150);
}

#[test]
fn merging_parts_equals_checking_the_whole() {
    let r = rules(Method::Supervised);
    let lines = [
        OK,
        "{bad",
        r#"{"messages":[{"role":"user","content":"x"}]}"#,
        OK,
        "[]",
    ];
    let mut whole = Stats::default();
    for (i, l) in lines.iter().enumerate() {
        whole.check_line(&r, i as u64 + 1, l.as_bytes());
    }
    let (mut a, mut b) = (Stats::default(), Stats::default());
    for (i, l) in lines.iter().enumerate() {
        let part = if i % 2 == 0 { &mut a } else { &mut b };
        part.check_line(&r, i as u64 + 1, l.as_bytes());
    }
    b.merge(a);
    // Parts list their examples in their own order: compare (hash, line) pairs as sets.
    let sorted = |s: &mut Stats| {
        let mut p: Vec<(u64, u32)> = s
            .hashes
            .iter()
            .copied()
            .zip(s.hash_lines.iter().copied())
            .collect();
        p.sort_unstable();
        (s.hashes, s.hash_lines) = p.into_iter().unzip();
    };
    sorted(&mut b);
    sorted(&mut whole);
    assert_eq!(b, whole);
    assert_eq!(b.duplicate_lines(), whole.duplicate_lines());
}

#[test]
fn the_report_names_the_lines_of_long_repeated_and_system_less_examples_and_hints_at_dpo() {
    let mut r = rules(Method::Supervised);
    let short = r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}"#;
    let long = r#"{"messages":[{"role":"user","content":"a much longer question that runs over the tiny limit"},{"role":"assistant","content":"an answer"}]}"#;
    let pref = r#"{"input":{"messages":[{"role":"user","content":"q"}]},"preferred_output":[{"role":"assistant","content":"a"}],"non_preferred_output":[{"role":"assistant","content":"b"}]}"#;
    // A limit the short example just fits.
    let mut probe = Stats::default();
    probe.check_line(&r, 1, short.as_bytes());
    r.spec.token_limit = probe.max_example;
    let mut s = Stats::default();
    for (i, l) in [short, long, short, pref].iter().enumerate() {
        s.check_line(&r, i as u64 + 1, l.as_bytes());
    }
    let report = FileReport::new("t.jsonl", 100, false, true, &r, &s);
    let all = format!("{:?} {:?}", report.warnings, report.reasons);
    for want in [
        "line 2: ",
        "line 3 repeats line 1",
        "no system message (line 2)",
        "preference pair",
        "--method dpo",
    ] {
        assert!(all.contains(want), "missing {want:?} in {all}");
    }
    assert_eq!(report.over_limit_examples.len(), 1);
    assert_eq!(report.over_limit_examples[0].line, 2);
    let text = report.to_text();
    assert!(text.contains("line 3 repeats line 1"), "{text}");
}

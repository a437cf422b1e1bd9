use super::*;
use serde_json::json;

#[test]
fn the_capacity_table_names_who_holds_each_spokes_slots_and_the_queue_order() {
    let v = json!({"spokes": [{"environment": "dev", "region": "eastus2", "account": "dev-eastus2",
        "used": 2, "limit": 5, "holders": [{"deployment": "ft-a", "project": "a", "kind": "deployed"},
        {"deployment": "legacy", "project": null, "kind": "unmanaged"}]}],
        "hub": {"account": "hub", "evaluation_slots": {"used": 1, "limit": 5, "waiting": []},
        "jobs": {"held": 2, "limit": 21, "running_limit": 1, "queued_limit": 20},
        "files": {"in_use": 6, "limit": 50, "bytes_in_use": 10, "bytes_limit": 20}},
        "queue": ["b-s1-x", "a-s2-y"]});
    let t = capacity(&v);
    assert!(
        t.contains("2/5") && t.contains("a (deployed), legacy (unmanaged)"),
        "{t}"
    );
    assert!(
        t.contains("job slots 2/21") && t.contains("files 6/50"),
        "{t}"
    );
    assert!(t.contains("1. b-s1-x") && t.contains("2. a-s2-y"), "{t}");
}

#[test]
fn columns_are_as_wide_as_their_widest_cell_and_colour_only_when_asked() {
    let mut t = Table::new(&["A", "STAGE"]);
    t.row(["a-very-long-run-id", "prod"]).row(["x", "rejected"]);
    let plain = t.render(&[1], false);
    assert_eq!(
        plain,
        "A                   STAGE\na-very-long-run-id  prod\nx                   rejected\n"
    );
    assert!(!plain.contains('\x1b'));
    let coloured = t.render(&[1], true);
    assert!(coloured.contains("\x1b[32mprod\x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[31mrejected\x1b[0m"), "{coloured}");
    assert!(
        coloured.starts_with("A                   STAGE\n"),
        "headers stay plain"
    );
}

#[test]
fn after_a_rollback_the_runs_table_marks_only_the_run_that_serves() {
    let v = json!({"runs": [
        {"id": "p-new-1", "stage": "prod", "serving": [], "submitted_by": "ana", "model": "m2"},
        {"id": "p-old-0", "stage": "prod", "serving": ["dev", "test", "prod"], "submitted_by": "ana", "model": "m1"}]});
    let t = runs(&v, false);
    let new = t.lines().find(|l| l.starts_with("p-new-1")).expect("new");
    let old = t.lines().find(|l| l.starts_with("p-old-0")).expect("old");
    let serving = |l: &str| l.split_whitespace().nth(2).unwrap_or("").to_owned();
    assert_eq!(serving(new), "-", "{t}");
    assert_eq!(serving(old), "dev,test,prod", "{t}");
}

#[test]
fn a_run_reads_as_a_screenful_with_its_refusals_and_last_steps() {
    let v = json!({"run": {"id": "p-s-1", "project": "p", "submission": "s", "submitted_by": "ana",
        "stage": "evaluated", "base_model": "gpt-4.1-mini-2025-04-14", "job_id": "ftjob-1", "job_status": "succeeded",
        "validation": {"accepted": true, "reasons": [], "training_examples": 10, "training_tokens": 900},
        "evaluation": {"passed": true, "score": 0.9, "baseline_score": 0.5, "p95_latency_ms": 120.0, "reasons": []},
        "environments": {"test": {"status": "", "regions": {}, "approved_by": null, "refusal": "the Spoke test-a has no free slot"}},
        "flags": ["eval_set_sampled"],
        "history": [{"time": "2026-12-06T10:00:00.123Z", "actor": "ValidateSubmission", "run_id": "p-s-1", "from": null, "to": "queued", "detail": "accepted"}]}});
    let t = run_detail(&v, false);
    for want in [
        "stage      evaluated",
        "job        ftjob-1 (succeeded)",
        "score 0.900 vs baseline 0.500",
        "test       pending",
        "✗ the Spoke test-a has no free slot",
        "flag       eval_set_sampled",
        "2026-12-06T10:00:00 ValidateSubmission",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
}

use chrono::{DateTime, Utc};

use super::stalled::{Attention, IdleLimits, attention, replay_command};
use super::*;
use crate::domain::inventory::{Release, ReleaseKind};
use crate::domain::manifest::Manifest;
use crate::domain::run::{EnvironmentState, EvaluationSummary, Event, NewRun, Stage, Stall};

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).expect("time")
}

fn run(id: &str, stage: Stage) -> Run {
    let mut r = Run::new(
        NewRun {
            id: id.into(),
            project: "acme".into(),
            submission: id.into(),
            submitted_by: "scientist".into(),
            manifest: Manifest::bare("train.jsonl"),
            base_model: "gpt-4.1-mini".into(),
            data_digest: "d".into(),
            files: Vec::new(),
        },
        stage,
        at(0),
    );
    r.evaluation = Some(EvaluationSummary {
        passed: true,
        score: 0.9,
        baseline_score: 0.4,
        p95_latency_ms: 40.0,
        reasons: Vec::new(),
    });
    r
}

fn with(mut r: Run, env: Env, status: EnvStatus) -> Run {
    r.environments.insert(
        env,
        EnvironmentState {
            status,
            ..EnvironmentState::default()
        },
    );
    r
}

fn release(run: &str, kind: ReleaseKind, minute: i64) -> Release {
    Release {
        run_id: run.into(),
        model: format!("ft-{run}"),
        at: at(minute),
        by: "release-manager".into(),
        kind,
        rolled_back: false,
    }
}

/// `v1` to Prod, `v2` after it into Dev, Test and Prod, then Prod rolled back to `v1`.
fn rolled_back() -> (Releases, Run, Run) {
    let mut p = ProjectRecord::default();
    for (env, m) in [(Env::Dev, 1), (Env::Test, 2), (Env::Prod, 3)] {
        p.record(env, release("v1", ReleaseKind::Promotion, m));
    }
    for (env, m) in [(Env::Dev, 11), (Env::Test, 12), (Env::Prod, 13)] {
        p.record(env, release("v2", ReleaseKind::Promotion, m));
    }
    p.record(Env::Prod, release("v1", ReleaseKind::Rollback, 20));
    let v1 = with(
        with(
            with(run("v1", Stage::Prod), Env::Dev, EnvStatus::Superseded),
            Env::Test,
            EnvStatus::Superseded,
        ),
        Env::Prod,
        EnvStatus::Healthy,
    );
    let v2 = with(
        with(
            with(run("v2", Stage::Prod), Env::Dev, EnvStatus::Healthy),
            Env::Test,
            EnvStatus::Healthy,
        ),
        Env::Prod,
        EnvStatus::RolledBack,
    );
    (Releases::from([("acme".to_owned(), p)]), v1, v2)
}

#[test]
fn after_a_rollback_only_the_restored_run_serves_prod() {
    let (releases, v1, v2) = rolled_back();
    assert_eq!(serves(&releases, &v1), vec![Env::Prod]);
    assert_eq!(serves(&releases, &v2), vec![Env::Dev, Env::Test]);
    let gone = left(&releases, &v2);
    assert_eq!(
        gone,
        vec![Left {
            env: Env::Prod,
            rolled_back: true,
            now: Some("v1".into())
        }]
    );
    let marks = serving_marks(&releases, &v2);
    assert!(marks.contains("data-rolled-back=\"prod\">rolled back in prod"));
    assert!(!marks.contains("data-serves=\"prod\""));
    assert!(serving_marks(&releases, &v1).contains("data-serves=\"prod\">serves prod"));
    assert!(serving_marks(&releases, &v1).contains("data-replaced=\"dev\""));
}

#[test]
fn the_release_history_outranks_a_run_document_that_still_says_healthy() {
    let (releases, _, v2) = rolled_back();
    // A rollback recorded in the inventory before the replaced run's document caught up.
    let stale = with(v2, Env::Prod, EnvStatus::Healthy);
    assert!(!serves(&releases, &stale).contains(&Env::Prod));
    assert!(
        left(&releases, &stale)
            .iter()
            .any(|l| l.env == Env::Prod && l.rolled_back)
    );
    // Without any history the run's own record is all there is.
    assert_eq!(
        serves(&Releases::new(), &stale),
        vec![Env::Dev, Env::Test, Env::Prod]
    );
}

#[test]
fn a_run_serving_dev_waits_for_test_with_the_topologys_approver_in_the_command() {
    let t = Topology::local("http://127.0.0.1:1");
    let r = with(
        run("acme-s1-0123abcd", Stage::Dev),
        Env::Dev,
        EnvStatus::Healthy,
    );
    let runs = [r];
    let list = approvals::pending(&runs, &Releases::new(), Some(&t));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].env, Env::Test);
    assert_eq!(
        approvals::commands(&list[0]),
        vec![
            "fthub approve acme-s1-0123abcd --env test --approver quality-lead --key quality-lead.key"
        ]
    );
}

#[test]
fn only_undecided_environments_wait_for_an_approval() {
    let t = Topology::local("http://127.0.0.1:1");
    let (releases, v1, v2) = rolled_back();
    // v1 serves Prod; v2 was rolled back there: neither waits for anything.
    let runs = [v1, v2];
    assert!(approvals::pending(&runs, &releases, Some(&t)).is_empty());
    // Approved but not yet deployed: decided.
    let mut approved = with(run("a", Stage::Dev), Env::Dev, EnvStatus::Healthy);
    approved.environments.insert(
        Env::Test,
        EnvironmentState {
            approved_by: Some("quality-lead".into()),
            ..EnvironmentState::default()
        },
    );
    let failed = {
        let mut r = with(run("b", Stage::Dev), Env::Dev, EnvStatus::Healthy);
        r.evaluation = None;
        r
    };
    let runs = [approved, failed];
    assert!(approvals::pending(&runs, &Releases::new(), Some(&t)).is_empty());
}

#[test]
fn the_submitter_is_left_out_of_prod_approvers_and_placeholders_stand_in_for_nobody() {
    let mut t = Topology::local("http://127.0.0.1:1");
    let mut r = with(run("r", Stage::Test), Env::Test, EnvStatus::Healthy);
    r.submitted_by = "release-manager".into();
    let runs = [r];
    let list = approvals::pending(&runs, &Releases::new(), Some(&t));
    assert!(list[0].submitter_excluded && list[0].approvers.is_empty());
    assert_eq!(
        approvals::commands(&list[0]),
        vec!["fthub approve r --env prod --approver NAME --key NAME.key"]
    );
    // An approver name with a space is quoted so the command runs as shown.
    if let Some(e) = t.environments.get_mut(&Env::Prod) {
        e.approvers[0].name = "Jo Smith".into();
    }
    let list = approvals::pending(&runs, &Releases::new(), Some(&t));
    assert_eq!(
        approvals::commands(&list[0]),
        vec!["fthub approve r --env prod --approver 'Jo Smith' --key 'Jo Smith.key'"]
    );
}

#[test]
fn refused_approvals_are_listed_with_the_one_they_were_for() {
    let t = Topology::local("http://127.0.0.1:1");
    let mut r = with(run("r", Stage::Test), Env::Test, EnvStatus::Healthy);
    r.note(
        "release-manager",
        Event::ApprovalRefused,
        "prod Approve: bad signature",
        at(5),
    );
    r.note(
        "quality-lead",
        Event::ApprovalRefused,
        "test Approve: stale",
        at(6),
    );
    let runs = [r];
    let list = approvals::pending(&runs, &Releases::new(), Some(&t));
    assert_eq!(list[0].refusals.len(), 1);
    assert!(list[0].refusals[0].detail.contains("bad signature"));
}

#[test]
fn a_run_is_stalled_when_flagged_and_idle_only_past_its_steps_limit() {
    let limits = IdleLimits {
        step: chrono::Duration::minutes(10),
        training: chrono::Duration::hours(48),
    };
    let mut r = run("r", Stage::Evaluated);
    r.updated_at = at(0);
    assert_eq!(attention(&r, at(5), limits), None);
    assert!(matches!(
        attention(&r, at(30), limits),
        Some(Attention::Idle(_))
    ));
    let mut training = run("t", Stage::Training);
    training.updated_at = at(0);
    assert_eq!(
        attention(&training, at(60 * 5), limits),
        None,
        "a job may train for hours"
    );
    let mut queued = run("q", Stage::Queued);
    queued.updated_at = at(0);
    assert_eq!(
        attention(&queued, at(60 * 24 * 7), limits),
        None,
        "in line, not idle"
    );
    let mut done = run("d", Stage::Prod);
    done.updated_at = at(0);
    assert_eq!(
        attention(&done, at(60 * 24 * 7), limits),
        None,
        "owes nothing"
    );
    done.stalled = Some(Stall {
        since: at(1),
        what: "dead_letter:approvals".into(),
        reason: "MaxDeliveryCountExceeded".into(),
        detail: "x".into(),
    });
    assert!(matches!(
        attention(&done, at(2), limits),
        Some(Attention::Stalled(_))
    ));
}

#[test]
fn a_dead_letter_is_replayed_by_its_sequence_number_else_its_key() {
    let mut r = crate::services::deadletters::Record {
        queue: "training-completed".into(),
        key: "00000000000000000007".into(),
        sequence: Some(7),
        message_id: None,
        run_id: None,
        body: "{}".into(),
        reason: "MaxDeliveryCountExceeded".into(),
        description: "503".into(),
        recorded_at: at(0),
        replays: Vec::new(),
    };
    assert_eq!(
        replay_command(&r),
        "fthub deadletters replay 7 --queue training-completed"
    );
    r.sequence = None;
    r.key = "msg-1".into();
    assert_eq!(
        replay_command(&r),
        "fthub deadletters replay msg-1 --queue training-completed"
    );
}

#[test]
fn shell_words_are_quoted_only_when_needed() {
    assert_eq!(shell_word("quality-lead.key"), "quality-lead.key");
    assert_eq!(shell_word("it's"), "'it'\\''s'");
    assert_eq!(shell_word(""), "''");
}

#[test]
fn pages_escape_what_people_typed() {
    let releases = Releases::new();
    let ctx = Ctx {
        base: "/api/status/?code=k",
        now: at(10),
        topology: None,
        releases: &releases,
        idle: IdleLimits::default(),
    };
    let mut r = run("r", Stage::Dev);
    r.submitted_by = "<script>alert(1)</script>".into();
    let html = runs::runs(&ctx, &[r.clone()], &runs::Summary::default());
    assert!(!html.contains("<script>alert") && html.contains("&lt;script&gt;"));
    let html = run::run(&ctx, &r, &run::RunExtras::default());
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("href=\"/api/status/ui/projects/acme?code=k\""));
}

#[test]
fn the_run_page_names_the_run_that_serves_where_this_one_was_rolled_back() {
    let (releases, _, v2) = rolled_back();
    let ctx = Ctx {
        base: "/api/status/",
        now: at(30),
        topology: None,
        releases: &releases,
        idle: IdleLimits::default(),
    };
    let html = run::run(&ctx, &v2, &run::RunExtras::default());
    let prod = html
        .split("<tr data-env=\"prod\">")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("a prod row");
    assert!(prod.contains("data-rolled-back=\"prod\""), "{prod}");
    assert!(prod.contains("href=\"/api/status/ui/runs/v1\""), "{prod}");
}

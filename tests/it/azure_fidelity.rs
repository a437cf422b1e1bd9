//! Azure behaviours the emulator enforces, each checked twice: the emulator refuses what
//! Azure refuses (raw HTTP), and our clients do what Azure needs (through the adapters).

use fthub::adapters::azure::dataplane::{GA_API_VERSION, Surface};
use fthub::domain::aoai::{CreateJob, JobPhase, TrainingMethod, sku};
use fthub::local::emulator::world::Timings;
use fthub::ports::{Deployments, Hub, Inference};
use serde_json::{Value, json};

use crate::emulator_env::*;

/// A raw ARM call with an opaque token (the emulator takes it for any tenant).
async fn arm_raw(
    env: &Env,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = env
        .client
        .request(method, format!("{}/arm{path}", env.base))
        .bearer_auth("opaque");
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.expect("arm call")
}

fn deployment_body(model: &str, sku_name: &str) -> Value {
    json!({
        "sku": {"name": sku_name, "capacity": 1},
        "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
    })
}

#[tokio::test]
async fn a_deletion_is_accepted_then_runs_and_a_put_meanwhile_conflicts() {
    // Deployments take a minute of emulated time, so nothing here races the wall clock.
    let slow = Timings {
        deployment_ms: 60_000,
        ..fast()
    };
    let env = Env::start(slow, policy(5000)).await;
    let dep = format!("{}/deployments/pinned", env.account_id("hub").await);
    let put = arm_raw(
        &env,
        reqwest::Method::PUT,
        &format!("{dep}?api-version=2024-10-01"),
        Some(deployment_body("gpt-4.1-mini", sku::GLOBAL_STANDARD)),
    )
    .await;
    assert_eq!(put.status(), 201);
    assert!(
        put.headers().contains_key("retry-after"),
        "a create says when to poll"
    );
    env.control("clock", json!({"advance_seconds": 61})).await;

    let del = arm_raw(
        &env,
        reqwest::Method::DELETE,
        &format!("{dep}?api-version=2024-10-01"),
        None,
    )
    .await;
    assert_eq!(del.status(), 202, "a deletion is a long-running operation");
    let location = del.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(del.headers().contains_key("retry-after"));

    let again = arm_raw(
        &env,
        reqwest::Method::PUT,
        &format!("{dep}?api-version=2024-10-01"),
        Some(deployment_body("gpt-4.1-mini", sku::GLOBAL_STANDARD)),
    )
    .await;
    assert_eq!(again.status(), 409, "a PUT while deleting conflicts");
    let poll = env
        .client
        .get(&location)
        .bearer_auth("opaque")
        .send()
        .await
        .expect("poll");
    assert_eq!(poll.status(), 202, "the deletion is still running");

    env.control("clock", json!({"advance_seconds": 61})).await;
    let poll = env
        .client
        .get(&location)
        .bearer_auth("opaque")
        .send()
        .await
        .expect("poll");
    assert_eq!(poll.status(), 200);
    let gone = arm_raw(
        &env,
        reqwest::Method::GET,
        &format!("{dep}?api-version=2024-10-01"),
        None,
    )
    .await;
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn our_client_returns_from_a_delete_only_when_the_deployment_is_gone() {
    let env = Env::start(fast(), policy(5000)).await;
    let arm = env.arm();
    let hub = env.account("hub");
    arm.put(
        &hub,
        "short-lived",
        &spec("gpt-4.1-mini", sku::GLOBAL_STANDARD, 1),
        None,
    )
    .await
    .expect("deploy");
    assert!(arm.delete(&hub, "short-lived").await.expect("delete"));
    assert_eq!(
        arm.get(&hub, "short-lived").await.expect("get"),
        None,
        "no deployment is left deleting when delete returns"
    );
    let log = env.requests().await;
    assert!(
        log.iter().any(|r| r["method"] == "GET"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/arm/operations/del-"))),
        "the client followed the deletion's Location"
    );
}

#[tokio::test]
async fn developer_tier_needs_the_2025_07_01_preview_api_version_and_our_client_sends_it() {
    let env = Env::start(fast(), policy(5000)).await;
    let dep = format!("{}/deployments/dev-try", env.account_id("hub").await);
    let old = arm_raw(
        &env,
        reqwest::Method::PUT,
        &format!("{dep}?api-version=2024-10-01"),
        Some(deployment_body("gpt-4.1-mini", sku::DEVELOPER)),
    )
    .await;
    assert_eq!(old.status(), 400);
    let body: Value = old.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidResourceProperties");

    let arm = env.arm();
    arm.put(
        &env.account("hub"),
        "dev-try",
        &spec("gpt-4.1-mini", sku::DEVELOPER, 50),
        None,
    )
    .await
    .expect("developer deployment");
    let log = env.requests().await;
    let put = log
        .iter()
        .rfind(|r| r["method"] == "PUT")
        .expect("the client's PUT");
    assert!(
        put["path"]
            .as_str()
            .is_some_and(|p| p.contains("api-version=2025-07-01-preview")),
        "{put}"
    );
}

#[tokio::test]
async fn a_preference_job_is_refused_on_the_ga_surface_and_our_client_sends_it_to_v1() {
    let env = Env::start(fast(), policy(5000)).await;
    let ga = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    // Chat data, not preference data: the job is accepted and fails when its file is read.
    let (file, _) = train(&env, &ga).await;
    let raw = env
        .client
        .post(format!(
            "{}/hub/openai/fine_tuning/jobs?api-version={GA_API_VERSION}",
            env.base
        ))
        .header("api-key", "k")
        .json(&json!({
            "model": "gpt-4.1-mini-2025-04-14", "training_file": file,
            "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
        }))
        .send()
        .await
        .expect("post");
    assert_eq!(raw.status(), 400, "GA job bodies have no `method`");

    let job = ga
        .create_job(&CreateJob {
            model: "gpt-4.1-mini-2025-04-14".into(),
            training_file: file,
            method: TrainingMethod::Dpo,
            ..Default::default()
        })
        .await
        .expect("the client routes DPO to a surface that has `method`");
    let log = env.requests().await;
    let post = log
        .iter()
        .rfind(|r| r["method"] == "POST")
        .expect("the job create");
    assert_eq!(post["path"], "/hub/openai/v1/fine_tuning/jobs");
    let done = until(async || {
        ga.get_job(&job.id)
            .await
            .ok()
            .filter(|j| j.phase().is_terminal())
    })
    .await;
    assert_eq!(done.phase(), JobPhase::Failed);
    let error = format!("{:?}", done.error);
    assert!(
        error.contains("invalidTrainingFile") && error.contains("line 1"),
        "{error}"
    );
}

#[tokio::test]
async fn reasoning_models_are_refused_on_old_api_versions_and_our_client_moves_up() {
    let env = Env::start(fast(), policy(5000)).await;
    let arm = env.arm();
    arm.put(
        &env.account("hub"),
        "reasoner",
        &spec("o4-mini", sku::GLOBAL_STANDARD, 10),
        None,
    )
    .await
    .expect("deploy");
    let raw = env
        .client
        .post(format!(
            "{}/hub/openai/deployments/reasoner/chat/completions?api-version={GA_API_VERSION}",
            env.base
        ))
        .header("api-key", "k")
        .json(
            &json!({"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 16}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2024-12-01-preview")),
        "{body}"
    );

    let ga = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    let mut req = ask("How do I reset my password?");
    req.max_tokens = Some(16);
    ga.chat("reasoner", "o4-mini", &req)
        .await
        .expect("the client asks on a version that serves reasoning models");
    let log = env.requests().await;
    let chat = log
        .iter()
        .rfind(|r| r["method"] == "POST")
        .expect("the chat");
    assert!(
        chat["path"]
            .as_str()
            .is_some_and(|p| p.contains("api-version=2025-04-01-preview")),
        "{chat}"
    );
}

/// Uploads and trains once with every create's answer lost (`hang_ms` decides whether the
/// client sees a 504 or its own timeout), then counts what the Hub holds.
async fn create_through_lost_answers(hang_ms: u64) -> (usize, usize) {
    let env = Env::start(Timings { hang_ms, ..fast() }, policy(20_000)).await;
    env.control("faults", json!({"account": "hub", "rate_lost_create": 1.0}))
        .await;
    let hub = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    // The upload's answer is lost: the client finds the file by its name.
    let file = uploaded(&hub, "run-7f3a-train.jsonl").await;
    let job = hub
        .create_job(&CreateJob {
            model: "gpt-4.1-mini-2025-04-14".into(),
            training_file: file.id.clone(),
            suffix: Some("run-7f3a".into()),
            ..Default::default()
        })
        .await
        .expect("the lost create is found by its file and suffix");
    assert_eq!(job.training_file.as_deref(), Some(file.id.as_str()));
    let state = env.state().await;
    let hub_state = state["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .find(|a| a["name"] == "hub")
        .expect("hub")
        .clone();
    let of = |k: &str| hub_state[k].as_array().cloned().unwrap_or_default();
    let uploads = of("files")
        .iter()
        .filter(|f| f["purpose"] == "fine-tune")
        .count();
    (uploads, of("jobs").len())
}

#[tokio::test]
async fn a_create_answered_504_after_it_took_effect_is_found_not_sent_twice() {
    assert_eq!(create_through_lost_answers(20).await, (1, 1));
}

#[tokio::test]
async fn a_create_that_timed_out_after_it_took_effect_is_found_not_sent_twice() {
    // The emulator holds the answer longer than the client's 1.5 s attempt timeout.
    assert_eq!(create_through_lost_answers(2_500).await, (1, 1));
}

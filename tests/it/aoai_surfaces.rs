//! The Azure OpenAI surfaces beyond the pipeline's main path, against the emulator and
//! through our client: checkpoints deployed by id, pause and resume, job DELETE, the Models
//! API, the Uploads API for large datasets, api-versions and response headers.

use fthub::adapters::azure::dataplane::{GA_API_VERSION, Surface};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::aoai::{CreateJob, DeploymentSpec, JobPhase, sku};
use fthub::local::emulator::world::Timings;
use fthub::ports::{AoaiError, BlobStore, Condition, Deployments, Hub, Inference};
use serde_json::{Value, json};

use crate::emulator_env::*;

/// The question and answer of the 13th of the 14 support examples: the final model learned
/// it; the first-epoch checkpoint (the first third of the data) did not.
fn late_example() -> (String, String) {
    let line: Value = serde_json::from_str(TRAIN.lines().nth(12).expect("13 lines")).expect("json");
    let turns = line["messages"].as_array().expect("messages");
    let last = |role: &str| {
        turns
            .iter()
            .rev()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
            .expect("turn")
            .to_owned()
    };
    (last("user"), last("assistant"))
}

fn gs(model: &str) -> DeploymentSpec {
    spec(model, sku::GLOBAL_STANDARD, 10)
}

#[tokio::test]
async fn a_checkpoint_deploys_by_its_id_and_answers_as_that_checkpoint() {
    let env = Env::start(fast(), policy(5000)).await;
    let hub = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    let (_, job) = train(&env, &hub).await;
    let checkpoints = hub.list_checkpoints(&job.id, None, 10).await.expect("list");
    assert_eq!(checkpoints.data.len(), 3, "one per epoch");
    let first_epoch = checkpoints.data.last().expect("oldest").clone();
    assert!(first_epoch.id.starts_with("ftchkpt-"), "{}", first_epoch.id);

    let arm = env.arm();
    let hub_account = env.account("hub");
    arm.put(
        &hub_account,
        "final",
        &gs(job.fine_tuned_model.as_deref().expect("model")),
        None,
    )
    .await
    .expect("deploy the model");
    let early = arm
        .put(&hub_account, "epoch-1", &gs(&first_epoch.id), None)
        .await
        .expect("deploy the checkpoint by id");
    assert_eq!(
        early.properties.model.name, first_epoch.id,
        "ARM echoes the checkpoint id"
    );

    let (question, answer) = late_example();
    let say = |dep: &'static str| {
        let hub = &hub;
        let question = question.clone();
        async move {
            hub.chat(dep, "gpt-4.1-mini-2025-04-14", &ask(&question))
                .await
                .expect("chat")
                .content
        }
    };
    assert_eq!(say("final").await, answer);
    assert_ne!(
        say("epoch-1").await,
        answer,
        "the first-epoch checkpoint had not seen it"
    );

    let missing = arm
        .put(
            &hub_account,
            "nope",
            &gs("ftchkpt-00000000000000000000000000000000"),
            None,
        )
        .await
        .expect_err("unknown checkpoint");
    assert!(
        matches!(missing, AoaiError::Http { status: 400, .. }),
        "{missing}"
    );
}

#[tokio::test]
async fn a_running_job_pauses_with_a_checkpoint_and_resumes_on_preview_surfaces_only() {
    // Training takes a minute of emulated time: pausing never races the wall clock.
    let slow = Timings {
        job_training_ms: 60_000,
        ..fast()
    };
    let env = Env::start(slow, policy(5000)).await;
    let hub = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    let file = uploaded(&hub, "t.jsonl").await;
    let job = hub
        .create_job(&CreateJob {
            model: "gpt-4.1-mini-2025-04-14".into(),
            training_file: file.id,
            ..Default::default()
        })
        .await
        .expect("job");
    until(async || {
        hub.get_job(&job.id)
            .await
            .ok()
            .filter(|j| j.status == "running")
    })
    .await;
    let busy = hub.delete_job(&job.id).await.expect_err("running");
    assert!(
        matches!(busy, AoaiError::Http { status: 400, .. }),
        "a job in training is cancelled before it is deleted: {busy}"
    );
    env.control("clock", json!({"advance_seconds": 20})).await;

    let raw = env
        .client
        .post(format!(
            "{}/hub/openai/fine_tuning/jobs/{}/pause?api-version={GA_API_VERSION}",
            env.base, job.id
        ))
        .header("api-key", "k")
        .send()
        .await
        .expect("post");
    assert_eq!(raw.status(), 404, "GA 2024-10-21 has no pause");

    let paused = hub
        .pause_job(&job.id)
        .await
        .expect("pause on a preview version");
    assert_eq!(paused.status, "paused");
    let checkpoints = hub.list_checkpoints(&job.id, None, 10).await.expect("list");
    assert_eq!(
        checkpoints.data.len(),
        1,
        "a pause leaves a deployable checkpoint"
    );
    let again = hub.pause_job(&job.id).await.expect_err("already paused");
    assert!(
        matches!(again, AoaiError::Http { status: 400, .. }),
        "{again}"
    );

    let resumed = hub.resume_job(&job.id).await.expect("resume");
    assert_eq!(resumed.status, "resuming");
    until(async || {
        hub.get_job(&job.id)
            .await
            .ok()
            .filter(|j| j.status == "running")
    })
    .await;
    // It trains the 40 seconds it had left.
    env.control("clock", json!({"advance_seconds": 41})).await;
    let done = hub.get_job(&job.id).await.expect("job");
    assert_eq!(done.phase(), JobPhase::Succeeded, "{done:?}");
}

#[tokio::test]
async fn a_finished_job_is_deleted_through_a_dated_surface_since_v1_has_no_job_delete() {
    let env = Env::start(fast(), policy(5000)).await;
    let v1 = env.plane("hub", Surface::V1);
    let (_, job) = train(&env, &v1).await;
    let raw = env
        .client
        .delete(format!(
            "{}/hub/openai/v1/fine_tuning/jobs/{}",
            env.base, job.id
        ))
        .header("api-key", "k")
        .send()
        .await
        .expect("delete");
    assert_eq!(raw.status(), 404, "the v1 surface has no job DELETE");
    v1.delete_job(&job.id)
        .await
        .expect("the client deletes on a dated surface");
    let gone = v1.get_job(&job.id).await.expect_err("deleted");
    assert!(
        matches!(gone, AoaiError::Http { status: 404, .. }),
        "{gone}"
    );
}

#[tokio::test]
async fn the_models_api_gives_retirement_dates_and_knows_only_real_models() {
    let env = Env::start(fast(), policy(5000)).await;
    let ga = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    let base = ga
        .model("gpt-4.1-mini-2025-04-14")
        .await
        .expect("get")
        .expect("listed");
    let retires = base
        .deprecation
        .and_then(|d| d.fine_tune)
        .expect("fine_tune date");
    assert!(retires > chrono::Utc::now().timestamp());
    assert!(base.capabilities.is_some_and(|c| c.fine_tune));
    assert_eq!(ga.model("gpt-9-imaginary").await.expect("get"), None);

    env.control(
        "models",
        json!({"id": "gpt-4.1-mini-2025-04-14", "fine_tune": 1_700_000_000}),
    )
    .await;
    let v1 = env.plane("hub", Surface::V1);
    let retired = v1
        .model("gpt-4.1-mini-2025-04-14")
        .await
        .expect("the client reads lifecycle on a dated surface")
        .expect("listed");
    assert_eq!(
        retired.deprecation.and_then(|d| d.fine_tune),
        Some(1_700_000_000)
    );
    assert_eq!(retired.lifecycle_status.as_deref(), Some("deprecating"));

    let arm = env.arm();
    let unknown = arm
        .put(&env.account("hub"), "x", &gs("gpt-9-imaginary"), None)
        .await
        .expect_err("Azure refuses to deploy a model it does not have");
    assert!(
        matches!(unknown, AoaiError::Http { status: 400, .. }),
        "{unknown}"
    );
}

/// A JSONL dataset of about `bytes` bytes.
fn dataset(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 512);
    let mut i = 0;
    while out.len() < bytes {
        out.extend_from_slice(
            format!(
                "{{\"messages\":[{{\"role\":\"user\",\"content\":\"question {i}\"}},{{\"role\":\"assistant\",\"content\":\"answer {i}\"}}]}}\n"
            )
            .as_bytes(),
        );
        i += 1;
    }
    out
}

#[tokio::test]
async fn a_large_dataset_goes_through_the_uploads_api_in_parts_and_failed_parts_are_resent() {
    let env = Env::start(fast(), policy(20_000)).await;
    let data = dataset(1_500_000);
    let dir = tempfile::tempdir().expect("tmp");
    let store = FsBlobStore::new(dir.path());
    store
        .put("datasets", "big.jsonl", &data, Condition::None)
        .await
        .expect("put");
    // A fifth of the hub's answers fail: parts are retried one by one.
    env.control("faults", json!({"account": "hub", "rate_500": 0.2}))
        .await;
    let ga = env
        .plane("hub", Surface::Dated(GA_API_VERSION.into()))
        .with_large_files(1_000_000, 256 * 1024);
    let file = ga
        .upload_file("run-1-big.jsonl", &store, "datasets", "big.jsonl")
        .await
        .expect("upload in parts");
    env.control("faults", json!({"account": "hub", "rate_500": 0.0}))
        .await;
    assert_eq!(file.bytes, Some(data.len() as u64));
    assert_eq!(file.filename, "run-1-big.jsonl");
    let content = ga.file_content(&file.id).await.expect("content");
    assert!(content == data, "the parts were assembled in order");
    let log = env.requests().await;
    let ok_parts = log
        .iter()
        .filter(|r| r["status"] == 200 && r["path"].as_str().is_some_and(|p| p.contains("/parts")))
        .count();
    assert_eq!(
        ok_parts,
        data.len().div_ceil(256 * 1024),
        "one part per 256 KiB"
    );

    // Small files, and every file on /openai/v1 (no Uploads API there), go whole.
    let v1 = env
        .plane("hub", Surface::V1)
        .with_large_files(1_000_000, 256 * 1024);
    env.client
        .delete(format!("{}/_emulator/requests", env.base))
        .send()
        .await
        .expect("clear");
    v1.upload_file("run-2-big.jsonl", &store, "datasets", "big.jsonl")
        .await
        .expect("whole upload");
    let log = env.requests().await;
    assert!(
        log.iter()
            .all(|r| !r["path"].as_str().unwrap_or("").contains("/uploads")),
        "v1 has no Uploads API"
    );
}

#[tokio::test]
async fn an_api_version_azure_does_not_have_is_not_found_and_answers_carry_request_ids() {
    let env = Env::start(fast(), policy(5000)).await;
    let get = |version: &'static str| {
        let env = &env;
        async move {
            env.client
                .get(format!(
                    "{}/hub/openai/files?api-version={version}",
                    env.base
                ))
                .header("api-key", "k")
                .send()
                .await
                .expect("get")
        }
    };
    let unknown = get("2099-01-01").await;
    assert_eq!(unknown.status(), 404);
    let known = get(GA_API_VERSION).await;
    assert_eq!(known.status(), 200);
    for h in ["apim-request-id", "x-request-id", "x-ms-region"] {
        assert!(known.headers().contains_key(h), "{h} missing");
    }
    let arm = env
        .client
        .get(format!(
            "{}/arm{}/deployments?api-version=2024-10-01",
            env.base,
            env.account_id("hub").await
        ))
        .bearer_auth("opaque")
        .send()
        .await
        .expect("arm");
    assert!(arm.headers().contains_key("x-ms-request-id"));
}

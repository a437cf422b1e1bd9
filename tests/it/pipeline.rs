//! The pipeline's guarantees, driven through its service layer against the emulator over
//! HTTP and a real local store: redelivered triggers repeat no effect, a crash between
//! recording and completing a side effect resumes without a duplicate, refusals are recorded.

use std::sync::Arc;
use std::time::Duration;

use fthub::adapters::azure::{Auth, Http, RetryPolicy, Secret, StaticToken};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::approval::{Approval, Decision, parse_signing_key};
use fthub::domain::env::Env as E;
use fthub::domain::inventory::Health;
use fthub::domain::run::{EnvStatus, Event, RegionStatus, Stage, Step};
use fthub::domain::topology::Topology;
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use fthub::ports::{BlobStore, Condition};
use fthub::services::pipeline::{Pipeline, PipelineError};
use fthub::services::{inventory, runs};
use serde_json::{Value, json};

struct Env {
    dir: tempfile::TempDir,
    emulator: String,
    pipeline: Pipeline,
    client: reqwest::Client,
    clock: Arc<TestClock>,
}

/// The system clock moved forward by what a test says, so idle steps become due without
/// waiting or editing stored documents.
#[derive(Debug, Default)]
struct TestClock(std::sync::Mutex<chrono::Duration>);

impl TestClock {
    fn advance(&self, by: chrono::Duration) {
        *self.0.lock().expect("clock") += by;
    }
}

impl fthub::ports::Clock for TestClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + *self.0.lock().expect("clock")
    }
}

async fn env() -> Env {
    let t = Timings {
        file_processing_ms: 20,
        job_queue_ms: 20,
        job_training_ms: 100,
        deployment_ms: 20,
        ..Timings::default()
    };
    let emulator = fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), t))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(dir.path().join("storage")));
    let mut topology = Topology::local(&emulator);
    // Evaluation deployments large enough that their rate limits do not pace these tests.
    topology.deployment.evaluation_capacity = 2000;
    let http = Http::new(RetryPolicy {
        budget: Duration::from_secs(10),
        min_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    });
    let arm_tokens = Arc::new(StaticToken(Secret::new("t")));
    let mut pipeline = fthub::app::pipeline(
        store,
        topology,
        &http,
        &Auth::ApiKey(Secret::new("k")),
        arm_tokens,
        Duration::from_millis(10),
    );
    pipeline.file_wait = Duration::from_secs(5);
    let clock = Arc::new(TestClock::default());
    pipeline.clock = clock.clone();
    Env {
        dir,
        emulator,
        pipeline,
        client: reqwest::Client::new(),
        clock,
    }
}

impl Env {
    async fn submit(&self) {
        self.submit_as("s1", None, None).await;
    }

    /// Submits `acme/s1` and delivers its manifest's BlobCreated once.
    async fn submit_and_start(&self) {
        self.submit().await;
        self.pipeline
            .on_dataset_blob("acme/s1/manifest.json")
            .await
            .expect("start");
    }

    /// Uploads the classification sample as `acme/{submission}`, optionally with one more
    /// training line and a parent run in the manifest.
    async fn submit_as(&self, submission: &str, extra: Option<&str>, parent: Option<&str>) {
        let sample =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/classification");
        let store = &self.pipeline.store;
        let mut train = std::fs::read(sample.join("train.jsonl")).expect("train");
        if let Some(line) = extra {
            train.extend_from_slice(line.as_bytes());
            train.push(b'\n');
        }
        let eval = std::fs::read(sample.join("eval.jsonl")).expect("eval");
        for (f, bytes) in [("train.jsonl", &train), ("eval.jsonl", &eval)] {
            store
                .put(
                    "datasets",
                    &format!("acme/{submission}/{f}"),
                    bytes,
                    Condition::None,
                )
                .await
                .expect("put");
        }
        let mut m: Value =
            serde_json::from_slice(&std::fs::read(sample.join("manifest.json")).expect("manifest"))
                .expect("json");
        m["submitted_by"] = json!("data-scientist");
        if let Some(p) = parent {
            m["parent_run"] = json!(p);
        }
        store
            .put(
                "datasets",
                &format!("acme/{submission}/manifest.json"),
                m.to_string().as_bytes(),
                Condition::None,
            )
            .await
            .expect("put");
    }

    /// Submits `acme/{submission}` and takes it through training, evaluation and Dev.
    async fn to_dev(&self, submission: &str, extra: Option<&str>) -> String {
        self.submit_as(submission, extra, None).await;
        let p = &self.pipeline;
        p.on_dataset_blob(&format!("acme/{submission}/manifest.json"))
            .await
            .expect("start");
        let id = runs::list(p.store.as_ref())
            .await
            .expect("list")
            .into_iter()
            .find(|r| r.submission == submission)
            .expect("run")
            .id;
        self.train_run(&id).await;
        p.evaluate(&id).await.expect("evaluate");
        p.promote_to_dev(&id).await.expect("dev");
        id
    }

    /// Rewinds a run to "create_job claimed at `at`, not done": another invocation still
    /// calling the Hub (a recent claim), or one that crashed (an old one).
    async fn claim_job_step(&self, id: &str, at: chrono::DateTime<chrono::Utc>) {
        runs::update(self.pipeline.store.as_ref(), id, |r| {
            r.stage = Stage::Uploading;
            r.job_id = None;
            if let Some(eff) = r.effects.get_mut("create_job") {
                eff.done_at = None;
                eff.result = None;
                eff.started_at = at;
            }
            Ok::<(), PipelineError>(())
        })
        .await
        .expect("claim");
    }

    async fn requests(&self) -> Vec<Value> {
        crate::common::emulator_requests(&self.emulator).await
    }
    async fn count(&self, method: &str, path_part: &str) -> usize {
        self.requests()
            .await
            .iter()
            .filter(|r| {
                r["method"] == method && r["path"].as_str().unwrap_or("").contains(path_part)
            })
            .count()
    }
    async fn run_of(&self, id: &str) -> fthub::domain::run::Run {
        runs::get(self.pipeline.store.as_ref(), id)
            .await
            .expect("get")
            .expect("run")
            .0
    }

    async fn run(&self) -> fthub::domain::run::Run {
        runs::list(self.pipeline.store.as_ref())
            .await
            .expect("list")
            .into_iter()
            .next()
            .expect("a run")
    }
    async fn train(&self) -> String {
        let id = self.run().await.id;
        self.train_run(&id).await;
        id
    }

    /// Runs TrainingMonitor until the run leaves `training`; it must reach `evaluating`.
    async fn train_run(&self, id: &str) {
        let p = &self.pipeline;
        let stage = || async {
            runs::get(p.store.as_ref(), id)
                .await
                .expect("get")
                .expect("run")
                .0
                .stage
        };
        for _ in 0..100 {
            p.monitor_training().await.expect("monitor");
            if stage().await != Stage::Training {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert_eq!(stage().await, Stage::Evaluating);
    }
}

/// The first notification a step emitted, as its subscribers see it.
fn first(out: &fthub::services::pipeline::Emitted) -> Value {
    serde_json::to_value(&out.notifications[0]).expect("json")
}

/// One more training example for a second submission.
const EXTRA_LINE: &str = r#"{"messages":[{"role":"user","content":"My invoice total looks wrong"},{"role":"assistant","content":"billing"}]}"#;

fn signed(
    run_id: &str,
    env: &str,
    approver: &str,
    key: &str,
) -> fthub::domain::approval::SignedApproval {
    signed_decision(run_id, env, approver, key, Decision::Approve)
}

fn signed_decision(
    run_id: &str,
    env: &str,
    approver: &str,
    key: &str,
    decision: Decision,
) -> fthub::domain::approval::SignedApproval {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples/keys")
            .join(key),
    )
    .expect("key");
    Approval {
        run_id: run_id.into(),
        environment: env.into(),
        decision,
        approver: approver.into(),
        reason: "ok".into(),
        issued_at: chrono::Utc::now(),
        nonce: uuid::Uuid::new_v4().to_string(),
    }
    .sign(&parse_signing_key(&text).expect("key"))
}

#[tokio::test]
async fn redelivered_triggers_create_one_job_one_evaluation_and_one_deployment_call_per_region() {
    let e = env().await;
    e.submit_and_start().await;
    let p = &e.pipeline;
    p.on_dataset_blob("acme/s1/manifest.json")
        .await
        .expect("redelivered event");
    p.on_dataset_blob("acme/s1/train.jsonl")
        .await
        .expect("a data file alone waits for its manifest");
    assert_eq!(
        runs::list(p.store.as_ref()).await.expect("list").len(),
        1,
        "one run"
    );
    assert_eq!(e.count("POST", "/fine_tuning/jobs?").await, 1, "one job");
    let id = e.train().await;
    let first = p.evaluate(&id).await.expect("evaluate");
    assert_eq!(first.next.len(), 1);
    let again = p.evaluate(&id).await.expect("redelivered");
    assert!(
        again.next.is_empty() && again.notifications.is_empty(),
        "nothing twice"
    );
    p.promote_to_dev(&id).await.expect("dev");
    p.promote_to_dev(&id).await.expect("redelivered");
    assert_eq!(
        e.count("PUT", "/deployments/ft-acme").await,
        2,
        "one PUT per Dev region"
    );
    let run = e.run().await;
    assert_eq!(run.stage, Stage::Dev);
    assert_eq!(run.environments[&E::Dev].regions.len(), 2);
    // One audit line per transition.
    let audit = runs::run_audit(p.store.as_ref(), &id).await.expect("audit");
    assert_eq!(audit.len(), run.history.len());
    let stages: Vec<&str> = run.history.iter().map(|t| t.to.name()).collect();
    assert!(
        stages.starts_with(&["queued", "uploading", "training"]),
        "{stages:?}"
    );
    assert!(
        stages.contains(&"evaluating") && stages.contains(&"evaluated") && stages.contains(&"dev")
    );
}

#[tokio::test]
async fn a_duplicate_delivery_waits_for_a_live_claim_and_never_repeats_the_effect() {
    let mut e = env().await;
    e.pipeline.claim_wait = Duration::from_millis(300);
    e.submit_and_start().await;
    let p = &e.pipeline;
    let run = e.run().await;
    // Another invocation has just claimed create_job and is still calling the Hub.
    e.claim_job_step(&run.id, chrono::Utc::now()).await;
    let err = p.submit_to_hub(&run.id).await.expect_err("busy");
    assert!(matches!(err, PipelineError::Busy { .. }), "{err:?}");
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Retryable,
        "the duplicate comes back later"
    );
    assert_eq!(
        e.count("POST", "/fine_tuning/jobs?").await,
        1,
        "no second job"
    );
    // The holder finishes; the redelivered duplicate then finds the step done.
    runs::update(p.store.as_ref(), &run.id, |r| {
        if let Some(eff) = r.effects.get_mut("create_job") {
            eff.done_at = Some(chrono::Utc::now());
            eff.result = run.job_id.clone();
        }
        Ok::<(), PipelineError>(())
    })
    .await
    .expect("finish");
    p.submit_to_hub(&run.id).await.expect("redelivery");
    let after = e.run().await;
    assert_eq!(
        (after.stage, after.job_id),
        (Stage::Training, run.job_id.clone())
    );
    assert_eq!(
        e.count("POST", "/fine_tuning/jobs?").await,
        1,
        "still one job"
    );
}

#[tokio::test]
async fn a_crash_after_recording_the_job_step_resumes_without_a_second_job() {
    let e = env().await;
    e.submit_and_start().await;
    let p = &e.pipeline;
    let run = e.run().await;
    // Rewind the document to "create_job started, not done" by an invocation that died
    // longer ago than any invocation can run: the state after a crash between the call and
    // its record.
    e.claim_job_step(&run.id, chrono::Utc::now() - chrono::Duration::minutes(20))
        .await;
    p.monitor_training().await.expect("resume");
    let resumed = e.run().await;
    assert_eq!(resumed.stage, Stage::Training);
    assert_eq!(
        resumed.job_id, run.job_id,
        "the job created before the crash was found by its suffix"
    );
    assert_eq!(
        e.count("POST", "/fine_tuning/jobs?").await,
        1,
        "no second job"
    );
}

#[tokio::test]
async fn approvals_are_refused_and_recorded_for_skipped_stages_forgeries_and_replays() {
    let e = env().await;
    let p = &e.pipeline;
    let id = e.to_dev("s1", None).await;

    let prod_first = p
        .apply_approval(&signed(
            &id,
            "prod",
            "release-manager",
            "release-manager.key",
        ))
        .await
        .expect_err("prod before test");
    assert!(
        prod_first.to_string().contains("not yet in test"),
        "{prod_first}"
    );
    let forged = p
        .apply_approval(&signed(&id, "test", "quality-lead", "intruder.key"))
        .await
        .expect_err("forged");
    assert!(forged.to_string().contains("signature"), "{forged}");
    let wrong_person = p
        .apply_approval(&signed(
            &id,
            "test",
            "release-manager",
            "release-manager.key",
        ))
        .await
        .expect_err("not a test approver");
    assert!(
        wrong_person.to_string().contains("not an approver"),
        "{wrong_person}"
    );
    assert_eq!(
        fthub::error::Classify::class(&forged),
        fthub::error::ErrorClass::Terminal
    );

    let ok = signed(&id, "test", "quality-lead", "quality-lead.key");
    p.apply_approval(&ok).await.expect("test approval");
    assert_eq!(e.run().await.stage, Stage::Test);
    // The same message delivered again continues (idempotent); it does not promote twice.
    let puts = e.count("PUT", "/deployments/ft-acme").await;
    p.apply_approval(&ok)
        .await
        .expect("redelivery of an applied approval");
    assert_eq!(
        e.count("PUT", "/deployments/ft-acme").await,
        puts,
        "no new deployment calls"
    );
    let history = e.run().await.history;
    let refusals = history
        .iter()
        .filter(|t| t.to == Step::Event(Event::ApprovalRefused))
        .count();
    assert_eq!(
        refusals, 3,
        "every refusal is in the run's history and the audit log"
    );
    let estate = inventory::estate(p.store.as_ref(), &p.topology)
        .await
        .expect("inventory");
    assert_eq!(estate.deployments("acme", E::Test).len(), 2);
}

#[tokio::test]
async fn keepwarm_beats_the_fifteen_day_rule_and_restores_what_vanished() {
    let e = env().await;
    let p = &e.pipeline;
    e.to_dev("s1", None).await;
    let advance = |days: i64| {
        let c = e.client.clone();
        let url = format!("{}/_emulator/clock", e.emulator);
        async move {
            c.post(url)
                .json(&json!({"advance_days": days}))
                .send()
                .await
                .expect("clock")
        }
    };
    for _ in 0..4 {
        advance(4).await;
        let out = p.keep_warm().await.expect("keepwarm");
        assert_eq!(first(&out)["pinged"], 2);
    }
    // 16 days later both Dev deployments are alive.
    let model = e.run().await.fine_tuned_model.expect("model");
    for spoke in ["dev-swedencentral", "dev-eastus2"] {
        p.inference[spoke]
            .chat(
                "ft-acme",
                &model,
                &fthub::domain::aoai::ChatRequest {
                    messages: vec![fthub::domain::aoai::ChatMessage {
                        role: "user".into(),
                        content: Some("invoice".into()),
                    }],
                    max_tokens: Some(5),
                    temperature: None,
                },
            )
            .await
            .expect("alive after 16 days");
    }
    // Without KeepWarm the rule deletes them; the next KeepWarm restores both.
    advance(16).await;
    let out = p.keep_warm().await.expect("keepwarm");
    assert_eq!(
        first(&out)["restored"].as_array().map(Vec::len),
        Some(2),
        "{}",
        first(&out)
    );
    let estate = inventory::estate(p.store.as_ref(), &p.topology)
        .await
        .expect("inventory");
    let dev = estate.deployments("acme", E::Dev);
    assert_eq!(dev.len(), 2);
    assert!(
        dev.iter()
            .all(|(_, d)| d.restorations == 1 && d.health == Health::Restored)
    );
    let _ = &e.dir;
    let _ = p.hub.list_jobs(None, 1).await.expect("hub reachable");
}

#[tokio::test]
async fn an_iteration_is_compared_with_its_parent_in_the_evaluation_report() {
    let e = env().await;
    e.submit().await;
    let p = &e.pipeline;
    p.on_dataset_blob("acme/s1/manifest.json")
        .await
        .expect("first run");
    let parent = e.train().await;
    p.evaluate(&parent).await.expect("evaluate parent");
    // Second submission: one more example, the parent named in the manifest.
    e.submit_as("s2", Some(EXTRA_LINE), Some(&parent)).await;
    let store = &p.store;
    p.on_dataset_blob("acme/s2/manifest.json")
        .await
        .expect("second run");
    let child = runs::list(store.as_ref())
        .await
        .expect("list")
        .into_iter()
        .find(|r| r.submission == "s2")
        .expect("s2")
        .id;
    e.train_run(&child).await;
    p.evaluate(&child).await.expect("evaluate child");
    let (_, md) = store
        .get("reports", &format!("{child}/evaluation.md"))
        .await
        .expect("report");
    let md = String::from_utf8(md).expect("utf8");
    assert!(md.contains("## Lineage") && md.contains(&parent), "{md}");
    assert!(md.contains("| Training examples | 50 | 51 |"), "{md}");
}

#[tokio::test]
async fn a_region_down_during_promotion_leaves_the_environment_degraded_until_it_converges() {
    let e = env().await;
    e.submit_and_start().await;
    let p = &e.pipeline;
    let id = e.train().await;
    p.evaluate(&id).await.expect("evaluate");
    let fault = |outage: bool| {
        let (c, url) = (e.client.clone(), format!("{}/_emulator/faults", e.emulator));
        async move {
            c.post(url)
                .json(&json!({"region": "eastus2", "outage": outage}))
                .send()
                .await
                .expect("faults")
        }
    };
    fault(true).await;
    let err = p.promote_to_dev(&id).await.expect_err("one region is down");
    assert!(matches!(err, PipelineError::Degraded { .. }), "{err}");
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Retryable,
        "redelivery retries it"
    );
    let run = e.run().await;
    assert_eq!(
        run.environments[&E::Dev].status,
        EnvStatus::Degraded,
        "never reported healthy"
    );
    assert_eq!(
        run.environments[&E::Dev].regions["swedencentral"].status,
        RegionStatus::Verified
    );
    assert_eq!(
        run.environments[&E::Dev].regions["eastus2"].status,
        RegionStatus::Failed
    );
    assert_ne!(run.stage, Stage::Dev);
    let puts_before = e
        .count("PUT", "/dev-swedencentral/deployments/ft-acme")
        .await;
    fault(false).await;
    p.promote_to_dev(&id)
        .await
        .expect("the region is back: converges");
    let run = e.run().await;
    assert_eq!(
        (run.stage, run.environments[&E::Dev].status),
        (Stage::Dev, EnvStatus::Healthy)
    );
    assert_eq!(
        e.count("PUT", "/dev-swedencentral/deployments/ft-acme")
            .await,
        puts_before,
        "the healthy region is not deployed again"
    );
}

#[tokio::test]
async fn a_signed_rollback_redeploys_the_previous_version_everywhere_in_the_environment() {
    let e = env().await;
    let p = &e.pipeline;
    let first = e.to_dev("s1", None).await;
    p.apply_approval(&signed(&first, "test", "quality-lead", "quality-lead.key"))
        .await
        .expect("first to test");
    let second = e.to_dev("s2", Some(EXTRA_LINE)).await;
    p.apply_approval(&signed(&second, "test", "quality-lead", "quality-lead.key"))
        .await
        .expect("second to test");
    let first_model = e.run_of(&first).await.fine_tuned_model.expect("model");
    let second_model = e.run_of(&second).await.fine_tuned_model.expect("model");
    let served = || async {
        inventory::estate(e.pipeline.store.as_ref(), &e.pipeline.topology)
            .await
            .expect("inventory")
            .deployments("acme", E::Test)
            .iter()
            .map(|(_, d)| d.model.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(served().await, vec![second_model.clone(); 2]);
    p.apply_approval(&signed_decision(
        &second,
        "test",
        "quality-lead",
        "quality-lead.key",
        Decision::Rollback,
    ))
    .await
    .expect("rollback");
    assert_eq!(
        served().await,
        vec![first_model; 2],
        "both Test regions serve the previous version again"
    );
    let run = runs::get(p.store.as_ref(), &second)
        .await
        .expect("get")
        .expect("run")
        .0;
    assert_eq!(run.environments[&E::Test].status, EnvStatus::RolledBack);
    assert!(
        run.history
            .iter()
            .any(|t| t.to == Step::Event(Event::Rollback) && t.detail.contains(&first))
    );
}

#[tokio::test]
async fn the_status_views_never_contain_dataset_contents() {
    let e = env().await;
    let id = e.to_dev("s1", None).await;
    let store = e.pipeline.store.as_ref();
    // Every user message and system prompt of the training and eval sets.
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/classification");
    let mut contents = std::collections::BTreeSet::new();
    for f in ["train.jsonl", "eval.jsonl"] {
        for line in std::fs::read_to_string(sample.join(f))
            .expect("read")
            .lines()
        {
            let v: Value = serde_json::from_str(line).expect("json");
            for m in v["messages"].as_array().expect("messages") {
                if m["role"] != "assistant" {
                    contents.insert(m["content"].as_str().expect("content").to_owned());
                }
            }
        }
    }
    assert!(contents.len() > 50);
    for path in [
        "runs",
        &format!("runs/{id}"),
        "environments",
        "endpoints",
        "audit",
        &format!("audit/{id}"),
    ] {
        let (code, body) = fthub::services::status::view(
            store,
            Some(&e.pipeline.topology),
            path,
            &Default::default(),
        )
        .await
        .expect("view");
        assert_eq!(code, 200, "{path}");
        let text = body.to_string();
        for c in &contents {
            assert!(
                !text.contains(c.as_str()),
                "{path} shows dataset text {c:?}"
            );
        }
    }
}

impl Env {
    async fn fault(&self, target: Value) {
        self.client
            .post(format!("{}/_emulator/faults", self.emulator))
            .json(&target)
            .send()
            .await
            .expect("faults")
            .error_for_status()
            .expect("faults accepted");
    }
}

#[tokio::test]
async fn a_hub_outage_that_outlasts_the_evaluation_message_ends_in_dev_with_no_human_action() {
    let e = env().await;
    e.submit_and_start().await;
    let p = &e.pipeline;
    let id = e.train().await;
    e.fault(json!({"account": p.topology.hub.name, "outage": true}))
        .await;
    // Every delivery of training-completed fails: the queue gives up on the message.
    let err = p.evaluate(&id).await.expect_err("the Hub is down");
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Retryable
    );
    assert_eq!(e.run_of(&id).await.stage, Stage::Evaluating);
    let eval_calls: Vec<String> = e
        .requests()
        .await
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or("")
                .contains("/deployments/eval-")
        })
        .map(|r| r["method"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        eval_calls.last().map(String::as_str),
        Some("DELETE"),
        "the evaluation deployment is removed after the failed attempt"
    );
    // No message will ever come again. The outage ends; the reconciler's ticks move the run
    // once the step has been idle past its grace.
    e.fault(json!({"account": p.topology.hub.name, "outage": false}))
        .await;
    p.monitor_training().await.expect("tick");
    assert_eq!(
        e.run_of(&id).await.stage,
        Stage::Evaluating,
        "not re-driven while the message may still come"
    );
    e.clock.advance(chrono::Duration::minutes(3));
    p.monitor_training().await.expect("tick");
    let run = e.run_of(&id).await;
    assert_eq!(run.stage, Stage::Dev, "{:?}", run.history.last());
    assert!(run.retry.is_none() && run.stalled.is_none());
    assert!(
        runs::active(p.store.as_ref())
            .await
            .expect("active")
            .0
            .is_empty(),
        "nothing is owed any more"
    );
}

#[tokio::test]
async fn a_promotion_that_keeps_failing_is_retried_with_growing_delays_then_flagged_stalled_and_converges()
 {
    let e = env().await;
    e.submit_and_start().await;
    let p = &e.pipeline;
    let id = e.train().await;
    p.evaluate(&id).await.expect("evaluate");
    e.fault(json!({"region": "eastus2", "outage": true})).await;
    p.promote_to_dev(&id).await.expect_err("one region is down");
    let mut delays = Vec::new();
    for _ in 0..5 {
        e.clock.advance(chrono::Duration::hours(2));
        p.monitor_training().await.expect("tick");
        let r = e.run_of(&id).await.retry.expect("a retry is scheduled");
        delays.push((r.next_at - p.clock.now()).num_minutes());
    }
    assert_eq!(
        delays,
        [0, 1, 3, 7, 15],
        "1, 2, 4, 8, 16 minutes (less the time a tick takes)"
    );
    let run = e.run_of(&id).await;
    let stall = run.stalled.expect("flagged after five failed attempts");
    assert!(stall.detail.contains("eastus2"), "{stall:?}");
    // Not before its delay.
    e.fault(json!({"region": "eastus2", "outage": false})).await;
    p.monitor_training().await.expect("tick");
    assert_eq!(e.run_of(&id).await.stage, Stage::Evaluated);
    e.clock.advance(chrono::Duration::hours(1));
    p.monitor_training().await.expect("tick");
    let run = e.run_of(&id).await;
    assert_eq!(
        (run.stage, run.environments[&E::Dev].status),
        (Stage::Dev, EnvStatus::Healthy)
    );
    assert!(
        run.stalled.is_none() && run.retry.is_none(),
        "cleared on success"
    );
}

#[tokio::test]
async fn runs_are_listed_newest_first_in_pages_and_the_active_index_names_only_owed_runs() {
    let e = env().await;
    let first = e.to_dev("s1", None).await;
    e.submit_as("s2", Some(EXTRA_LINE), None).await;
    let p = &e.pipeline;
    p.on_dataset_blob("acme/s2/manifest.json")
        .await
        .expect("start");
    let store = p.store.as_ref();
    let one = runs::page(store, &runs::Filter::default(), 1, None)
        .await
        .expect("page");
    assert_eq!(one.runs.len(), 1);
    assert_eq!(one.runs[0].submission, "s2", "newest first");
    let two = runs::page(
        store,
        &runs::Filter::default(),
        1,
        one.continuation.as_deref(),
    )
    .await
    .expect("page 2");
    assert_eq!(two.runs[0].id, first);
    assert!(two.continuation.is_none(), "the last page");
    let dev_only = runs::Filter {
        stage: Some(Stage::Dev),
        ..Default::default()
    };
    let page = runs::page(store, &dev_only, 10, None).await.expect("page");
    assert_eq!(
        page.runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [first.as_str()]
    );
    let (active, stale) = runs::active(store).await.expect("active");
    assert_eq!(active.len(), 1, "only s2 is owed a step");
    assert_ne!(active[0].id, first);
    assert!(stale.is_empty());
    let trail = runs::run_audit(store, &first).await.expect("trail");
    assert_eq!(
        trail.last().map(|t| t.to.name()),
        Some("dev"),
        "the run's own trail, read by prefix"
    );
}

#[tokio::test]
async fn runs_written_before_the_indexes_existed_are_indexed_on_first_use() {
    let e = env().await;
    let id = e.to_dev("s1", None).await;
    let store = e.pipeline.store.as_ref();
    // Today's layout: run documents and the daily trail only.
    for p in store.list("state", "index/").await.expect("list") {
        store
            .delete("state", &p.name, Condition::None)
            .await
            .expect("delete");
    }
    for p in store.list("audit", "runs/").await.expect("list") {
        store
            .delete("audit", &p.name, Condition::None)
            .await
            .expect("delete");
    }
    assert!(store.list("audit", "runs/").await.expect("list").is_empty());
    let all = runs::list(store).await.expect("list");
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let trail = runs::run_audit(store, &id).await.expect("trail");
    assert_eq!(trail.len(), e.run_of(&id).await.history.len());
}

#[tokio::test]
async fn a_dead_lettered_message_marks_its_run_stalled_once_and_the_reconciler_clears_it() {
    let e = env().await;
    e.submit_and_start().await;
    let p = &e.pipeline;
    let id = e.train().await;
    let body = json!({"run_id": id}).to_string();
    let dl = fthub::services::pipeline::DeadLetter {
        queue: "training-completed",
        body: &body,
        reason: "MaxDeliveryCountExceeded",
        description: "delivered 10 times; last error: HTTP 503",
        sequence: Some(42),
        message_id: Some("m-42"),
    };
    let out = p.record_dead_letter(&dl).await.expect("recorded");
    assert_eq!(first(&out)["type"], "run.stalled");
    let again = p.record_dead_letter(&dl).await.expect("redelivered");
    assert!(again.notifications.is_empty(), "announced once");
    let run = e.run_of(&id).await;
    let stall = run.stalled.expect("stalled");
    assert_eq!(stall.what, "dead_letter:training-completed");
    assert!(stall.detail.contains("HTTP 503"));
    assert_eq!(
        run.history
            .iter()
            .filter(|t| t.to == Step::Event(Event::DeadLettered))
            .count(),
        1
    );
    // A dead letter that names no run is refused (terminal), not retried.
    let err = p
        .record_dead_letter(&fthub::services::pipeline::DeadLetter {
            body: "{}",
            ..dl.clone()
        })
        .await
        .expect_err("names no run");
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Terminal
    );
    e.clock.advance(chrono::Duration::minutes(3));
    p.monitor_training().await.expect("tick");
    let run = e.run_of(&id).await;
    assert_eq!(run.stage, Stage::Dev);
    assert!(run.stalled.is_none(), "cleared once the run moved on");
}

#[tokio::test]
async fn an_approval_that_was_dead_lettered_is_shown_on_its_run_with_its_approver() {
    let e = env().await;
    let p = &e.pipeline;
    let id = e.to_dev("s1", None).await;
    let approval = signed(&id, "test", "quality-lead", "quality-lead.key");
    let body = serde_json::to_string(&approval).expect("json");
    p.record_dead_letter(&fthub::services::pipeline::DeadLetter {
        queue: "approvals",
        body: &body,
        reason: "MaxDeliveryCountExceeded",
        description: "storage unavailable",
        sequence: Some(7),
        message_id: None,
    })
    .await
    .expect("recorded");
    let run = e.run_of(&id).await;
    let stall = run.stalled.expect("stalled");
    assert!(
        stall.detail.contains("quality-lead") && stall.detail.contains("test"),
        "{stall:?}"
    );
    // The run owes no step, so the reconciler never clears it: an operator can.
    let what = p
        .retry_run(&id, "ops", "approver re-issued it")
        .await
        .expect("clears the stall");
    assert!(what.contains("stall was cleared"), "{what}");
    let run = e.run_of(&id).await;
    assert!(run.stalled.is_none());
    assert!(
        run.history
            .iter()
            .any(|t| t.to == Step::Event(Event::StallCleared) && t.actor == "ops")
    );
}

#[tokio::test]
async fn an_operator_retries_a_failed_training_and_cancels_an_evaluation_with_who_and_why() {
    let e = env().await;
    e.submit_and_start().await;
    let p = &e.pipeline;
    let id = e.train().await;
    // Retry works on a run whose training failed: a new job.
    runs::update(p.store.as_ref(), &id, |r| {
        r.stage = Stage::TrainingFailed;
        Ok::<(), PipelineError>(())
    })
    .await
    .expect("fail it");
    let what = p
        .retry_run(&id, "ops", "the Hub had an incident")
        .await
        .expect("retry");
    assert!(what.contains("fine-tuning job"), "{what}");
    p.monitor_training().await.expect("tick");
    let run = e.run_of(&id).await;
    assert!(
        matches!(run.stage, Stage::Training | Stage::Evaluating),
        "{:?}",
        run.stage
    );
    assert_eq!(e.count("POST", "/fine_tuning/jobs?").await, 2, "a new job");
    let t = run
        .history
        .iter()
        .find(|t| t.detail.contains("retry: the Hub had an incident"))
        .expect("recorded");
    assert_eq!(t.actor, "ops");
    e.train_run(&id).await;
    let out = p
        .cancel_run(&id, "ops", "wrong data")
        .await
        .expect("cancel");
    assert_eq!(first(&out)["type"], "run.cancelled");
    let run = e.run_of(&id).await;
    assert_eq!(run.stage, Stage::Cancelled);
    assert!(
        run.history
            .last()
            .is_some_and(|t| t.actor == "ops" && t.detail.contains("wrong data"))
    );
    assert!(
        runs::active(p.store.as_ref())
            .await
            .expect("active")
            .0
            .is_empty()
    );
    let err = p
        .cancel_run(&id, "ops", "again")
        .await
        .expect_err("already ended");
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Terminal
    );
}

#[tokio::test]
async fn a_large_held_out_set_is_sampled_with_a_recorded_seed_scored_in_stored_batches_and_resumed_across_invocations()
 {
    let mut e = env().await;
    e.pipeline.eval_cap = 100;
    e.pipeline.eval_batch = 20;
    // No time at all: every invocation scores one batch, then pauses.
    e.pipeline.eval_budget = Duration::ZERO;
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/classification");
    let store = e.pipeline.store.clone();
    let mut eval = String::new();
    for i in 0..300 {
        eval.push_str(&format!(
            "{{\"messages\":[{{\"role\":\"user\",\"content\":\"ticket {i}\"}},{{\"role\":\"assistant\",\"content\":\"billing\"}}]}}\n"
        ));
    }
    let train = std::fs::read(sample.join("train.jsonl")).expect("train");
    for (f, bytes) in [
        ("train.jsonl", train.as_slice()),
        ("eval.jsonl", eval.as_bytes()),
    ] {
        store
            .put("datasets", &format!("acme/big/{f}"), bytes, Condition::None)
            .await
            .expect("put");
    }
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(sample.join("manifest.json")).expect("m"))
            .expect("json");
    m["submitted_by"] = json!("data-scientist");
    store
        .put(
            "datasets",
            "acme/big/manifest.json",
            m.to_string().as_bytes(),
            Condition::None,
        )
        .await
        .expect("put");
    let p = &e.pipeline;
    p.on_dataset_blob("acme/big/manifest.json")
        .await
        .expect("start");
    let id = e.train().await;
    p.evaluate(&id).await.expect("first invocation");
    let run = e.run_of(&id).await;
    assert_eq!(run.stage, Stage::Evaluating, "paused, not finished");
    let progress = run.eval_progress.expect("progress recorded");
    assert!(progress.paused_at.is_some());
    assert_eq!(
        (
            progress.plan.total,
            progress.plan.selected,
            progress.plan.sampled
        ),
        (300, 100, true)
    );
    assert_eq!(
        progress.batches_done, 1,
        "one batch, then the budget is spent"
    );
    // The reconciler resumes a paused evaluation at once, invocation after invocation.
    for _ in 0..20 {
        if e.run_of(&id).await.stage != Stage::Evaluating {
            break;
        }
        p.monitor_training().await.expect("tick");
    }
    let run = e.run_of(&id).await;
    // The synthetic tickets are not the sample's classes, so the verdict may go either way;
    // what matters is that the evaluation finished.
    assert!(
        matches!(
            run.stage,
            Stage::EvaluationFailed | Stage::Evaluated | Stage::Dev
        ),
        "{:?}",
        run.history.last()
    );
    assert!(run.evaluation.is_some());
    let candidate_calls = e
        .requests()
        .await
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/deployments/eval-") && p.contains("/chat/"))
        })
        .count();
    assert_eq!(
        candidate_calls, 100,
        "every sampled example answered exactly once"
    );
    let (_, report) = store
        .get("reports", &format!("{id}/evaluation.json"))
        .await
        .expect("report");
    let report: Value = serde_json::from_slice(&report).expect("json");
    assert_eq!(report["examples"], 100);
    assert_eq!(report["held_out"]["sampled"], true);
    assert_eq!(
        report["held_out"]["seed"],
        json!(fthub::domain::heldout::seed_of(&id))
    );
    let (_, md) = store
        .get("reports", &format!("{id}/evaluation.md"))
        .await
        .expect("md");
    assert!(
        String::from_utf8_lossy(&md).contains("100 of 300 examples, sampled uniformly"),
        "the report says the set was cut"
    );
}

#[tokio::test]
async fn a_corrupt_inventory_record_is_an_error_and_is_never_overwritten_as_empty() {
    let e = env().await;
    let p = &e.pipeline;
    let id = e.to_dev("s1", None).await;
    let store = p.store.as_ref();
    let name = "inventory/accounts/dev-swedencentral.json";
    let broken = b"{\"deployments\": {\"ft-acme\": [";
    store
        .put("state", name, broken, Condition::None)
        .await
        .expect("corrupt it");
    let err = inventory::account(store, "dev-swedencentral")
        .await
        .expect_err("corrupt");
    assert!(err.to_string().contains(name), "{err}");
    p.keep_warm()
        .await
        .expect_err("KeepWarm refuses to work from a corrupt inventory");
    let (_, bytes) = store.get("state", name).await.expect("get");
    assert_eq!(bytes, broken, "left as it was");
    assert_eq!(e.run_of(&id).await.stage, Stage::Dev);
}

#[tokio::test]
async fn an_inventory_in_the_single_slot_layout_is_converted_on_first_use_losing_nothing() {
    use fthub::domain::inventory::ReleaseKind;
    use fthub::domain::run::{NewRun, Run};
    let e = env().await;
    let store = e.pipeline.store.as_ref();
    let now = chrono::Utc::now();
    // Two projects' runs, as an earlier version recorded them.
    for (id, project, model) in [
        ("acme-s1-aaaaaaaa", "acme", "gpt-4.1-mini.ft-a1"),
        ("acme-s2-bbbbbbbb", "acme", "gpt-4.1-mini.ft-a2"),
        ("beta-s1-cccccccc", "beta", "gpt-4.1-mini.ft-b1"),
    ] {
        let mut r = Run::new(
            NewRun {
                id: id.into(),
                project: project.into(),
                submission: "s".into(),
                submitted_by: "x".into(),
                manifest: fthub::domain::manifest::Manifest::bare("train.jsonl"),
                base_model: "gpt-4.1-mini-2025-04-14".into(),
                data_digest: "0".repeat(64),
                files: vec![],
            },
            Stage::Prod,
            now,
        );
        r.fine_tuned_model = Some(model.into());
        runs::create(store, &r).await.expect("run");
    }
    // Today's layout: one entry per environment and region (the second project's record
    // replaced the first's in Test), and one history per environment.
    let entry = |account: &str, region: &str, dep: &str, model: &str, run: &str, health: &str| {
        json!({"account": account, "region": region, "deployment": dep, "model": model, "run_id": run,
               "deployed_at": now, "last_keepalive": now, "last_latency_ms": 12, "health": health, "restorations": 2})
    };
    let legacy = json!({"environments": {
        "prod": {"regions": {
            "swedencentral": entry("prod-swedencentral", "swedencentral", "ft-acme", "gpt-4.1-mini.ft-a2", "acme-s2-bbbbbbbb", "restored"),
            "eastus2": entry("prod-eastus2", "eastus2", "ft-acme", "gpt-4.1-mini.ft-a2", "acme-s2-bbbbbbbb", "healthy")},
            "history": ["acme-s1-aaaaaaaa", "acme-s2-bbbbbbbb"]},
        "test": {"regions": {
            "swedencentral": entry("test-swedencentral", "swedencentral", "ft-beta", "gpt-4.1-mini.ft-b1", "beta-s1-cccccccc", "healthy")},
            "history": ["acme-s1-aaaaaaaa", "beta-s1-cccccccc"]}
    }});
    let original = serde_json::to_vec_pretty(&legacy).expect("json");
    store
        .put("state", "inventory.json", &original, Condition::None)
        .await
        .expect("legacy");
    let estate = inventory::estate(store, &e.pipeline.topology)
        .await
        .expect("converted");
    let prod = estate.deployments("acme", E::Prod);
    assert_eq!(prod.len(), 2);
    let sweden = prod
        .iter()
        .find(|(a, _)| a.name == "prod-swedencentral")
        .expect("sweden")
        .1;
    assert_eq!(
        (
            sweden.run_id.as_str(),
            sweden.model.as_str(),
            sweden.health,
            sweden.restorations,
            sweden.last_latency_ms
        ),
        (
            "acme-s2-bbbbbbbb",
            "gpt-4.1-mini.ft-a2",
            Health::Restored,
            2,
            Some(12)
        )
    );
    assert_eq!(estate.deployments("beta", E::Test).len(), 1);
    // Release histories split per project, order kept: acme's Prod rolls back to s1.
    let acme = inventory::project(store, "acme").await.expect("acme");
    let prod_releases: Vec<&str> = acme.releases[&E::Prod]
        .iter()
        .map(|r| r.run_id.as_str())
        .collect();
    assert_eq!(prod_releases, ["acme-s1-aaaaaaaa", "acme-s2-bbbbbbbb"]);
    assert!(
        acme.releases[&E::Prod]
            .iter()
            .all(|r| r.kind == ReleaseKind::Migrated && !r.model.is_empty())
    );
    assert_eq!(
        acme.rollback_target(E::Prod).map(|r| r.run_id.as_str()),
        Some("acme-s1-aaaaaaaa")
    );
    assert_eq!(
        acme.releases[&E::Test]
            .iter()
            .map(|r| r.run_id.as_str())
            .collect::<Vec<_>>(),
        ["acme-s1-aaaaaaaa"]
    );
    let beta = inventory::project(store, "beta").await.expect("beta");
    assert_eq!(
        beta.current(E::Test).map(|r| r.run_id.as_str()),
        Some("beta-s1-cccccccc")
    );
    // The old document is kept as it was, and converted once.
    let (_, kept) = store.get("state", "inventory.json").await.expect("kept");
    assert_eq!(kept, original);
    inventory::update_account(store, "prod-eastus2", |r| {
        r.deployments.clear();
        Ok::<(), PipelineError>(())
    })
    .await
    .expect("change");
    let again = inventory::estate(store, &e.pipeline.topology)
        .await
        .expect("again");
    assert_eq!(
        again.deployments("acme", E::Prod).len(),
        1,
        "not converted twice"
    );
}

#[tokio::test]
async fn a_corrupt_inventory_in_the_single_slot_layout_stops_its_conversion_instead_of_reading_empty()
 {
    let e = env().await;
    let store = e.pipeline.store.as_ref();
    store
        .put(
            "state",
            "inventory.json",
            b"{\"environments\": [",
            Condition::None,
        )
        .await
        .expect("corrupt");
    let err = inventory::estate(store, &e.pipeline.topology)
        .await
        .expect_err("corrupt");
    assert!(err.to_string().contains("inventory.json"), "{err}");
    assert!(
        store
            .properties("state", "inventory/migrated-v2")
            .await
            .is_err(),
        "not marked converted"
    );
}

#[tokio::test]
async fn an_evaluation_waits_in_line_for_a_hub_slot_and_goes_when_one_frees() {
    use fthub::domain::inventory::Reservation;
    let e = env().await;
    e.submit_and_start().await;
    let p = &e.pipeline;
    let id = e.train().await;
    // Five evaluations of other runs hold every Hub slot.
    inventory::update_account(p.store.as_ref(), "hub", |r| {
        for i in 0..5 {
            r.reservations.insert(
                format!("eval-other{i}"),
                Reservation {
                    project: "other".into(),
                    run_id: format!("other-s{i}-00000000"),
                    at: chrono::Utc::now(),
                },
            );
        }
        Ok::<(), PipelineError>(())
    })
    .await
    .expect("fill");
    let out = p.evaluate(&id).await.expect("waits, does not fail");
    assert!(out.next.is_empty() && out.notifications.is_empty());
    let run = e.run_of(&id).await;
    assert_eq!(run.stage, Stage::Evaluating);
    let waiting = run.waiting.expect("says what it waits for");
    assert!(
        waiting.contains("position 1") && waiting.contains("eval-other0"),
        "{waiting}"
    );
    assert_eq!(
        e.count("PUT", "/deployments/eval-").await,
        0,
        "nothing deployed without a slot"
    );
    let hub = inventory::account(p.store.as_ref(), "hub")
        .await
        .expect("hub");
    assert_eq!(hub.waiting.len(), 1);
    // The reconciler finds the holders' runs gone (crashed, cancelled): it frees their
    // slots, and the waiting evaluation goes in the same tick.
    let tick = p.monitor_training().await.expect("tick");
    assert!(
        tick.next.iter().any(|m| m.run_id() == id.as_str()),
        "the waiting run is woken: {:?}",
        tick.next
    );
    let run = e.run_of(&id).await;
    assert!(run.waiting.is_none(), "{:?}", run.waiting);
    assert!(
        matches!(run.stage, Stage::Evaluated | Stage::Dev),
        "{:?}",
        run.history.last()
    );
    let hub = inventory::account(p.store.as_ref(), "hub")
        .await
        .expect("hub");
    assert_eq!(hub.used(), 0, "{hub:?}");
    assert!(hub.waiting.is_empty());
}

#[tokio::test]
async fn a_base_model_whose_fine_tuning_retired_is_refused_at_intake_and_one_retiring_soon_is_flagged()
 {
    let e = env().await;
    let retire = |at: chrono::DateTime<chrono::Utc>| {
        let e = &e;
        async move {
            e.client
                .post(format!("{}/_emulator/models", e.emulator))
                .json(&json!({"id": "gpt-4.1-mini-2025-04-14", "fine_tune": at.timestamp()}))
                .send()
                .await
                .expect("control");
        }
    };
    retire(chrono::Utc::now() - chrono::Duration::days(1)).await;
    e.submit_and_start().await;
    let run = e.run().await;
    assert_eq!(run.stage, Stage::Rejected);
    let why = &run.history.last().expect("transition").detail;
    assert!(
        why.contains("no longer fine-tunes gpt-4.1-mini-2025-04-14"),
        "{why}"
    );
    assert_eq!(e.count("POST", "/files").await, 0, "nothing was uploaded");

    retire(chrono::Utc::now() + chrono::Duration::days(10)).await;
    e.submit_as("s2", None, None).await;
    e.pipeline
        .on_dataset_blob("acme/s2/manifest.json")
        .await
        .expect("start");
    let run = runs::list(e.pipeline.store.as_ref())
        .await
        .expect("list")
        .into_iter()
        .find(|r| r.submission == "s2")
        .expect("run");
    assert_ne!(run.stage, Stage::Rejected);
    assert!(
        run.flags
            .iter()
            .any(|f| f.contains("can be fine-tuned only until")),
        "{:?}",
        run.flags
    );
}

#[tokio::test]
async fn keepwarm_with_a_spoke_that_never_answers_ends_within_its_budget_and_records_it() {
    let mut e = env().await;
    e.to_dev("s1", None).await;
    // dev-eastus2 hangs on every call for longer than the client's whole retry budget (10 s).
    e.client
        .post(format!("{}/_emulator/timings", e.emulator))
        .json(
            &json!({"file_processing_ms": 20, "job_queue_ms": 20, "job_training_ms": 100,
                      "deployment_ms": 20, "hang_ms": 30_000}),
        )
        .send()
        .await
        .expect("timings");
    e.client
        .post(format!("{}/_emulator/faults", e.emulator))
        .json(&json!({"account": "dev-eastus2", "rate_timeout": 1.0}))
        .send()
        .await
        .expect("faults");
    e.pipeline.keepalive_budget = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let out = e.pipeline.keep_warm().await.expect("a pass ends");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(9),
        "bounded by the 2 s budget, not the 10 s retry budget per call: {took:?}"
    );
    let Value::Object(report) = first(&out) else {
        panic!("no report");
    };
    let unreachable = report["unreachable"].to_string();
    assert!(
        unreachable.contains("dev-eastus2") && unreachable.contains("KeepWarm budget"),
        "{unreachable}"
    );
    assert_eq!(
        report["pinged"], 1,
        "the other Dev region was pinged: {report:?}"
    );
    let account = inventory::account(e.pipeline.store.as_ref(), "dev-eastus2")
        .await
        .expect("inventory");
    assert!(
        account
            .deployments
            .values()
            .all(|d| d.health == Health::Failing),
        "recorded as failing"
    );
}

/// A run created before ids covered the manifest, as that version stored it: the same
/// files and manifest, at the id of the files alone.
async fn legacy_run(e: &Env, manifest_edit: impl Fn(&mut Value)) -> String {
    use fthub::domain::run::{NewRun, Run, legacy_run_id, sha256_hex};
    let store = e.pipeline.store.as_ref();
    let mut digests = Vec::new();
    for f in ["train.jsonl", "eval.jsonl"] {
        let (_, bytes) = store
            .get("datasets", &format!("acme/s1/{f}"))
            .await
            .expect("blob");
        digests.push(sha256_hex(&bytes));
    }
    let (_, bytes) = store
        .get("datasets", "acme/s1/manifest.json")
        .await
        .expect("manifest");
    let mut m: Value = serde_json::from_slice(&bytes).expect("json");
    manifest_edit(&mut m);
    let manifest =
        fthub::domain::manifest::Manifest::from_json(m.to_string().as_bytes()).expect("manifest");
    let id = legacy_run_id("acme", "s1", &digests);
    let run = Run::new(
        NewRun {
            id: id.clone(),
            project: "acme".into(),
            submission: "s1".into(),
            submitted_by: "data-scientist".into(),
            manifest,
            base_model: "gpt-4.1-mini-2025-04-14".into(),
            data_digest: sha256_hex(digests.join("\n").as_bytes()),
            files: Vec::new(),
        },
        Stage::Evaluated,
        chrono::Utc::now(),
    );
    assert!(runs::create(store, &run).await.expect("create"));
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_redelivered_across_the_upgrade_continues_the_run_under_its_old_id() {
    let e = env().await;
    e.submit().await;
    let old = legacy_run(&e, |_| {}).await;
    e.pipeline
        .on_dataset_blob("acme/s1/manifest.json")
        .await
        .expect("redelivery");
    let all = runs::list(e.pipeline.store.as_ref()).await.expect("list");
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [old.as_str()],
        "no second run, no second job"
    );
    assert_eq!(e.count("POST", "/fine_tuning/jobs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_data_under_a_changed_manifest_is_a_new_run_beside_the_old_one() {
    let e = env().await;
    e.submit().await;
    let old = legacy_run(&e, |m| m["seed"] = json!(99)).await;
    e.pipeline
        .on_dataset_blob("acme/s1/manifest.json")
        .await
        .expect("start");
    let all = runs::list(e.pipeline.store.as_ref()).await.expect("list");
    assert_eq!(
        all.len(),
        2,
        "{:?}",
        all.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    assert!(
        all.iter()
            .any(|r| r.id == old && r.stage == Stage::Evaluated)
    );
    assert!(
        all.iter()
            .any(|r| r.id != old && r.manifest.seed == Some(7))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_dead_letter_is_kept_in_the_book_and_shown_on_its_submission_not_refused() {
    let e = env().await;
    let p = &e.pipeline;
    let status = |path: &'static str| async move {
        fthub::services::status::view(p.store.as_ref(), None, path, &Default::default())
            .await
            .expect("view")
            .1
    };
    assert_eq!(
        status("submissions/acme/s9").await["state"],
        "validating",
        "nothing yet"
    );
    let body = json!({"type": "dataset.arrived", "blob": "acme/s9/manifest.json"}).to_string();
    let dl = fthub::services::pipeline::DeadLetter {
        queue: "intake",
        body: &body,
        reason: "MaxDeliveryCountExceeded",
        description: "Storage outage: HTTP 503",
        sequence: Some(7),
        message_id: Some("m-7"),
    };
    // Recorded, not refused as malformed: it names a blob, since no run exists yet.
    p.record_dead_letter(&dl).await.expect("recorded");
    let v = status("submissions/acme/s9").await;
    assert_eq!(v["state"], "dead_lettered", "{v}");
    assert_eq!(v["dead_letters"][0]["sequence"], 7, "{v}");
    assert!(
        v["dead_letters"][0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("HTTP 503")),
        "{v}"
    );
    // Another submission of the project is not affected.
    assert_eq!(status("submissions/acme/s1").await["state"], "validating");
}

//! The Azure OpenAI client against the emulator over real HTTP: the whole lifecycle, the
//! 15-day rule, cross-subscription and cross-tenant deployment, and retry behaviour.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fthub::adapters::azure::arm::Arm;
use fthub::adapters::azure::dataplane::{GA_API_VERSION, Surface};
use fthub::adapters::azure::{LocalTokens, RetryPolicy, Secret};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::aoai::{CreateJob, DeploymentSpec, JobPhase, parse_results_csv, sku};
use fthub::ports::{AoaiError, BlobStore, Condition, Deployments, Hub, Inference};
use serde_json::json;

use crate::emulator_env::*;

#[tokio::test]
async fn a_model_is_trained_deployed_across_subscriptions_and_tenants_and_kept_alive_only_while_pinged()
 {
    let env = Env::start(fast(), policy(5000)).await;
    let hub = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    let (_, job) = train(&env, &hub).await;
    assert_eq!(job.phase(), JobPhase::Succeeded, "{job:?}");
    let model = job.fine_tuned_model.clone().expect("fine-tuned model");
    assert!(model.starts_with("gpt-4.1-mini-2025-04-14.ft-"), "{model}");
    assert!(job.trained_tokens.unwrap_or(0) > 0);

    // Events page through; three checkpoints, the newest the final model.
    let first = hub.list_events(&job.id, None, 2).await.expect("events");
    assert!(first.has_more);
    let next = hub
        .list_events(&job.id, Some(&first.data[1].id), 20)
        .await
        .expect("events page 2");
    let messages: Vec<String> = first
        .data
        .iter()
        .chain(&next.data)
        .map(|e| e.message.clone())
        .collect();
    assert!(messages.iter().any(|m| m == "Job succeeded."));
    let cps = hub
        .list_checkpoints(&job.id, None, 10)
        .await
        .expect("checkpoints");
    assert_eq!(cps.data.len(), 3);
    assert_eq!(cps.data[0].fine_tuned_model_checkpoint, model);

    // results.csv comes from the training data: 14 examples, batch 2, 3 epochs = 21 steps.
    let csv = String::from_utf8(
        hub.file_content(&job.result_files[0])
            .await
            .expect("results"),
    )
    .expect("utf8");
    let rows = parse_results_csv(&csv).expect("parse");
    assert_eq!(rows.len(), 21);
    assert!(rows[0].train_loss > rows[20].train_loss);

    let arm = env.arm();
    let hub_id = env.account_id("hub").await;
    let spec = |source: Option<String>, source_account: Option<String>| DeploymentSpec {
        model: model.clone(),
        version: "1".into(),
        sku: sku::GLOBAL_STANDARD.into(),
        capacity: 50,
        source,
        source_account,
        tags: [("fthub-run".to_owned(), "acme-s1".to_owned())].into(),
    };
    // Two spokes in another subscription of the same tenant.
    for spoke in ["dev-swedencentral", "dev-eastus2"] {
        let id = env.account(spoke);
        let d = arm
            .put(&id, "acme-support", &spec(Some(hub_id.clone()), None), None)
            .await
            .expect("cross-subscription deploy");
        assert_eq!(
            d.properties.provisioning_state.as_deref(),
            Some("Succeeded")
        );
        assert_eq!(d.tags["fthub-run"], "acme-s1");
    }
    // Cross-tenant: refused without the auxiliary token, accepted with it.
    let prod = env.account("prod-eastus2");
    let refused = arm
        .put(
            &prod,
            "acme-support",
            &spec(None, Some(hub_id.clone())),
            None,
        )
        .await
        .expect_err("needs auxiliary token");
    assert!(
        matches!(refused, AoaiError::Http { status: 401, .. }),
        "{refused:?}"
    );
    assert!(!refused.is_transient());
    arm.put(
        &prod,
        "acme-support",
        &spec(None, Some(hub_id.clone())),
        Some("contoso"),
    )
    .await
    .expect("cross-tenant deploy");
    assert!(
        env.requests()
            .await
            .iter()
            .any(|r| r["auxiliary"] == true && r["status"] == 201)
    );

    // The fine-tuned model answers from its training data; a base model does not.
    let dev = env.plane("dev-swedencentral", Surface::V1);
    let answer = dev
        .chat("acme-support", &model, &ask("How do I reset my password?"))
        .await
        .expect("chat");
    assert!(
        answer.content.contains("Reset password"),
        "{}",
        answer.content
    );
    assert!(answer.usage.prompt_tokens > 0 && answer.usage.completion_tokens > 0);
    let dev_id = env.account("dev-swedencentral");
    arm.put(
        &dev_id,
        "base",
        &DeploymentSpec {
            model: "gpt-4.1-mini".into(),
            source: None,
            ..spec(None, None)
        },
        None,
    )
    .await
    .expect("base");
    let base = dev
        .chat("base", "gpt-4.1-mini", &ask("How do I reset my password?"))
        .await
        .expect("base chat");
    assert!(!base.content.contains("Reset password"));

    // 10 days pass, one spoke is pinged, 6 more days pass: only the pinged one survives.
    env.control("clock", json!({"advance_days": 10})).await;
    env.plane("dev-eastus2", Surface::Dated(GA_API_VERSION.into()))
        .chat("acme-support", &model, &ask("ping"))
        .await
        .expect("ping");
    env.control("clock", json!({"advance_days": 6})).await;
    assert!(
        arm.get(&dev_id, "acme-support")
            .await
            .expect("get")
            .is_none(),
        "idle for 16 days: deleted"
    );
    let eus = env.account("dev-eastus2");
    assert!(
        arm.get(&eus, "acme-support").await.expect("get").is_some(),
        "pinged 6 days ago: alive"
    );
    assert!(
        arm.get(&dev_id, "base").await.expect("get").is_some(),
        "base-model deployments are not subject to the rule"
    );
    let state = env.state().await;
    let hub_state = state["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .find(|a| a["name"] == "hub")
        .expect("hub");
    let hub_models = hub_state["models"].as_array().expect("models");
    assert!(
        hub_models.iter().any(|m| m == &json!(model)),
        "the model survives its deployments"
    );
    // Redeploying from the Hub model works again.
    arm.put(&dev_id, "acme-support", &spec(Some(hub_id), None), None)
        .await
        .expect("redeploy");
}

#[tokio::test]
async fn lists_follow_next_link_and_delete_is_idempotent() {
    let mut t = fast();
    t.arm_page_size = 2;
    let env = Env::start(t, policy(5000)).await;
    let hub = env.plane("hub", Surface::V1);
    let (_, job) = train(&env, &hub).await;
    let model = job.fine_tuned_model.expect("model");
    let arm = env.arm();
    let hub_id = env.account("hub");
    for n in ["a", "b", "c", "d", "e"] {
        let spec = DeploymentSpec {
            model: model.clone(),
            version: "1".into(),
            sku: sku::GLOBAL_STANDARD.into(),
            capacity: 1,
            source: None,
            source_account: None,
            tags: Default::default(),
        };
        arm.put(&hub_id, n, &spec, None)
            .await
            .expect("deploy on the hub itself");
    }
    assert_eq!(arm.list(&hub_id).await.expect("list").len(), 5);
    let sixth = DeploymentSpec {
        model: model.clone(),
        version: "1".into(),
        sku: sku::STANDARD.into(),
        capacity: 1,
        source: None,
        source_account: None,
        tags: Default::default(),
    };
    let over = arm
        .put(&hub_id, "f", &sixth, None)
        .await
        .expect_err("at most 5 fine-tuned deployments");
    assert!(matches!(over, AoaiError::Http { status: 400, .. }));
    assert!(arm.delete(&hub_id, "a").await.expect("delete"));
    assert!(!arm.delete(&hub_id, "a").await.expect("204 is already gone"));
}

#[tokio::test]
async fn invalid_training_data_fails_file_processing_with_the_reason() {
    let env = Env::start(fast(), policy(5000)).await;
    let hub = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    let dir = tempfile::tempdir().expect("tmp");
    let store = FsBlobStore::new(dir.path());
    store
        .put(
            "datasets",
            "bad.jsonl",
            b"{\"messages\":[]}\nnot json\n",
            Condition::None,
        )
        .await
        .expect("put");
    let f = hub
        .upload_file("bad.jsonl", &store, "datasets", "bad.jsonl")
        .await
        .expect("upload");
    let done = until(async || {
        hub.get_file(&f.id)
            .await
            .ok()
            .filter(|f| f.is_ready() || f.is_failed())
    })
    .await;
    assert_eq!(done.status, "error");
    assert!(
        done.status_details
            .unwrap_or_default()
            .contains("jsonlValidationFailed")
    );
    let refused = hub
        .create_job(&CreateJob {
            model: "gpt-4o".into(),
            training_file: f.id,
            ..Default::default()
        })
        .await
        .expect_err("bad file");
    assert!(matches!(refused, AoaiError::Http { status: 400, .. }));
}

#[tokio::test]
async fn throttling_is_retried_after_the_servers_delay_and_gives_up_within_the_budget() {
    let env = Env::start(fast(), policy(1200)).await;
    let hub = env.plane("hub", Surface::Dated(GA_API_VERSION.into()));
    env.control(
        "faults",
        json!({"account": "hub", "rate_429": 1.0, "retry_after_ms": 300}),
    )
    .await;
    let started = Instant::now();
    let err = hub.list_jobs(None, 5).await.expect_err("always throttled");
    let elapsed = started.elapsed();
    assert!(matches!(err, AoaiError::Exhausted { .. }), "{err:?}");
    assert!(err.is_transient() || matches!(err, AoaiError::Exhausted { .. }));
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Retryable
    );
    // Without the 1.2 s budget, 8 attempts 300 ms apart would take over 2.1 s.
    assert!(
        elapsed < Duration::from_millis(2000),
        "bounded by the budget: {elapsed:?}"
    );
    assert!(
        matches!(err, AoaiError::Exhausted { attempts, .. } if attempts < 8),
        "{err:?}"
    );
    let times: Vec<chrono::DateTime<chrono::Utc>> = env
        .requests()
        .await
        .iter()
        .filter(|r| r["status"] == 429)
        .map(|r| r["at"].as_str().expect("at").parse().expect("time"))
        .collect();
    assert!(times.len() >= 3, "several attempts: {}", times.len());
    for pair in times.windows(2) {
        assert!(
            (pair[1] - pair[0]).num_milliseconds() >= 290,
            "waited for retry-after-ms: {pair:?}"
        );
    }

    // Intermittent 5xx and 429 are recovered from.
    env.control("faults", json!({"account": "hub", "rate_500": 0.3, "rate_503": 0.2, "rate_429": 0.2, "retry_after_ms": 10})).await;
    for _ in 0..5 {
        hub.list_jobs(None, 5)
            .await
            .expect("recovers within the bound");
    }
}

#[tokio::test]
async fn client_errors_fail_fast_without_retries() {
    let env = Env::start(fast(), policy(5000)).await;
    let hub = env.plane("hub", Surface::V1);
    let err = hub.get_job("ftjob-missing").await.expect_err("404");
    assert!(matches!(err, AoaiError::Http { status: 404, .. }));
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Terminal
    );
    assert_eq!(env.requests().await.len(), 1, "exactly one request");
}

#[tokio::test]
async fn timeouts_and_region_outages_are_retryable_failures() {
    let mut t = fast();
    t.hang_ms = 3000;
    let env = Env::start(
        t,
        RetryPolicy {
            attempt_timeout: Duration::from_millis(200),
            ..policy(700)
        },
    )
    .await;
    env.control("faults", json!({"account": "hub", "rate_timeout": 1.0}))
        .await;
    let err = env
        .plane("hub", Surface::V1)
        .list_jobs(None, 1)
        .await
        .expect_err("times out");
    assert!(matches!(err, AoaiError::Exhausted { .. }), "{err:?}");
    env.control("faults", json!({"region": "eastus2", "outage": true}))
        .await;
    let err = env
        .plane("dev-eastus2", Surface::V1)
        .list_jobs(None, 1)
        .await
        .expect_err("region down");
    assert!(
        matches!(&err, AoaiError::Exhausted { last, .. } if matches!(**last, AoaiError::Http { status: 503, .. })),
        "{err:?}"
    );
    env.plane("dev-swedencentral", Surface::V1)
        .list_jobs(None, 1)
        .await
        .expect("other regions are up");
}

#[tokio::test]
async fn deployments_enforce_rate_limits_from_capacity() {
    let env = Env::start(fast(), policy(300)).await;
    let hub = env.plane("hub", Surface::V1);
    let (_, job) = train(&env, &hub).await;
    let model = job.fine_tuned_model.expect("model");
    let id = env.account("hub");
    let spec = DeploymentSpec {
        model: model.clone(),
        version: "1".into(),
        sku: sku::STANDARD.into(),
        capacity: 1,
        source: None,
        source_account: None,
        tags: Default::default(),
    };
    env.arm()
        .put(&id, "tiny", &spec, None)
        .await
        .expect("deploy");
    hub.chat("tiny", &model, &ask("ping"))
        .await
        .expect("within 6 RPM");
    // 6 requests a minute is one per 10 seconds: Azure judges short periods, so a second
    // request at once is throttled although the minute has room.
    let err = hub
        .chat("tiny", &model, &ask("ping"))
        .await
        .expect_err("the second request within 10 seconds is throttled");
    match err {
        AoaiError::Exhausted { last, .. } => match *last {
            AoaiError::Http {
                status: 429,
                retry_after,
                ..
            } => {
                let wait = retry_after.expect("retry-after-ms");
                assert!(
                    wait > Duration::from_secs(5) && wait <= Duration::from_secs(10),
                    "{wait:?}"
                );
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// A token source that ignores the tenant asked for: what the client did before it asked
/// each account's tenant for its tokens.
#[derive(Debug)]
struct HomeOnly(LocalTokens);

#[async_trait::async_trait]
impl fthub::adapters::azure::TokenSource for HomeOnly {
    async fn token(&self, scope: &str, _tenant: Option<&str>) -> Result<Secret, AoaiError> {
        Ok(self.0.issue(scope, None))
    }
}

#[tokio::test]
async fn a_cross_tenant_deployment_needs_the_spokes_tenant_in_authorization_and_the_hubs_in_the_auxiliary_header()
 {
    let env = Env::start(fast(), policy(300)).await;
    let hub = env.plane("hub", Surface::V1);
    let (_, job) = train(&env, &hub).await;
    let model = job.fine_tuned_model.expect("model");
    let hub_id = env.account_id("hub").await;
    let prod = env.account("prod-eastus2");
    assert_eq!(prod.tenant, "fabrikam");
    let spec = DeploymentSpec {
        model,
        version: "1".into(),
        sku: sku::GLOBAL_STANDARD.into(),
        capacity: 1,
        source: None,
        source_account: Some(hub_id),
        tags: Default::default(),
    };
    // Hub-tenant tokens in both headers, as the client sent before: refused.
    let home_only = Arm::new(
        env.http.clone(),
        &format!("{}/arm", env.base),
        Arc::new(HomeOnly(LocalTokens::new("contoso", Secret::new("k")))),
        "contoso",
    );
    let e = home_only
        .put(&prod, "ft-x", &spec, Some("contoso"))
        .await
        .expect_err("a Hub-tenant token cannot manage the Spoke's subscription");
    assert!(
        matches!(&e, AoaiError::Http { status: 401, code, .. } if code == "InvalidAuthenticationTokenTenant"),
        "{e:?}"
    );
    // Each header with its own tenant: accepted, and the log shows the auxiliary header.
    env.arm()
        .put(&prod, "ft-x", &spec, Some("contoso"))
        .await
        .expect("Spoke tenant in Authorization, Hub tenant auxiliary");
    // Reading or deleting on that Spoke needs its tenant too.
    assert!(env.arm().get(&prod, "ft-x").await.expect("get").is_some());
    assert!(matches!(
        home_only.get(&prod, "ft-x").await,
        Err(AoaiError::Http { status: 401, .. })
    ));
    assert!(env.arm().delete(&prod, "ft-x").await.expect("delete"));
}

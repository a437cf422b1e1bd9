//! Contract tests: what the client puts on the wire and what it reads back are pinned to
//! the examples in the published Azure OpenAI REST specifications, independently of the emulator, so the
//! client and the emulator cannot drift away from Azure together.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use fthub::adapters::azure::arm::Arm;
use fthub::adapters::azure::dataplane::{DataPlane, GA_API_VERSION, Surface};
use fthub::adapters::azure::{Auth, Http, LocalTokens, RetryPolicy, Secret, StaticToken};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::aoai::{
    ChatMessage, ChatRequest, CreateJob, DeploymentSpec, Hyperparameters, JobPhase,
};
use fthub::ports::{BlobStore, Condition, Deployments, Hub, Inference};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Captured {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Captured>>>;

/// Answers with the reference's example bodies.
async fn recorder(log: Log) -> String {
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        async move {
            let path = uri.path().to_owned();
            log.lock().expect("log").push(Captured { method: method.to_string(), path: path.clone(), query: uri.query().unwrap_or("").to_owned(), headers, body });
            let (status, v) = if path.ends_with("/files") {
                (201, json!({"object": "file", "id": "file-181a1cbdcdcf4677ada87f63a0928099", "purpose": "fine-tune", "filename": "train.jsonl", "created_at": 1646126127, "status": "pending"}))
            } else if path.contains("/fine_tuning/jobs") && !path.contains("/events") && !path.contains("/checkpoints") {
                (201, json!({"object": "fine_tuning.job", "id": "ftjob-72a2792ef7d24ba7b82c7fe4a37e379f", "status": "succeeded", "model": "gpt-4.1-mini-2025-04-14",
                    "fine_tuned_model": "gpt-4.1-mini-2025-04-14.ft-72a2792ef7d24ba7b82c7fe4a37e379f", "training_file": "file-aaa", "result_files": ["file-ccc"],
                    "hyperparameters": {"n_epochs": -1}, "trained_tokens": 2342, "created_at": 1646126127, "finished_at": 1646127311}))
            } else if path.contains("/events") || path.contains("/checkpoints") {
                (200, json!({"object": "list", "data": [], "has_more": false}))
            } else if path.contains("/chat/completions") {
                (200, json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1686676106, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "P"}}],
                    "usage": {"prompt_tokens": 33, "completion_tokens": 1, "total_tokens": 34}}))
            } else if path.contains("/deployments/") {
                (201, json!({"id": path, "name": "d", "type": "Microsoft.CognitiveServices/accounts/deployments", "sku": {"name": "standard", "capacity": 1},
                    "properties": {"model": {"format": "OpenAI", "name": "m", "version": "1"}, "provisioningState": "Succeeded"}}))
            } else {
                (404, json!({"error": {"code": "notFound", "message": "no"}}))
            };
            (axum::http::StatusCode::from_u16(status).expect("status"), axum::Json(v)).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    base
}

fn http() -> Http {
    Http::new(RetryPolicy {
        max_attempts: 1,
        budget: Duration::from_secs(5),
        ..RetryPolicy::default()
    })
}

fn last(log: &Log) -> Captured {
    log.lock().expect("log").last().cloned().expect("a request")
}

fn body_json(c: &Captured) -> Value {
    serde_json::from_slice(&c.body).expect("JSON body")
}

#[tokio::test]
async fn the_dated_surface_uploads_multipart_with_the_api_version_and_key() {
    let log = Log::default();
    let base = recorder(log.clone()).await;
    let plane = DataPlane::new(
        http(),
        &format!("{base}/"),
        Surface::Dated(GA_API_VERSION.into()),
        Auth::ApiKey(Secret::new("k-123")),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let store = FsBlobStore::new(dir.path());
    store
        .put(
            "datasets",
            "p/train.jsonl",
            b"{\"messages\":[]}\n",
            Condition::None,
        )
        .await
        .expect("put");
    let f = plane
        .upload_file("train.jsonl", &store, "datasets", "p/train.jsonl")
        .await
        .expect("upload");
    assert_eq!(
        (f.id.as_str(), f.status.as_str()),
        ("file-181a1cbdcdcf4677ada87f63a0928099", "pending")
    );
    let c = last(&log);
    assert_eq!(
        (c.method.as_str(), c.path.as_str(), c.query.as_str()),
        ("POST", "/openai/files", "api-version=2024-10-21")
    );
    assert_eq!(c.headers["api-key"], "k-123");
    assert!(
        c.headers["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("multipart/form-data; boundary=")
    );
    let text = String::from_utf8_lossy(&c.body);
    assert!(
        text.contains("Content-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"),
        "{text}"
    );
    assert!(text.contains("Content-Disposition: form-data; name=\"file\"; filename=\"train.jsonl\"\r\nContent-Type: application/json"), "{text}");
    assert!(text.contains("{\"messages\":[]}"));
}

#[tokio::test]
async fn job_creation_bodies_match_the_reference_for_both_surfaces() {
    let log = Log::default();
    let base = recorder(log.clone()).await;
    let job = CreateJob {
        model: "gpt-4.1-mini-2025-04-14".into(),
        training_file: "file-aaa".into(),
        validation_file: Some("file-bbb".into()),
        suffix: Some("ticketing-v7".into()),
        seed: Some(105),
        hyperparameters: Hyperparameters {
            n_epochs: Some(3),
            batch_size: Some(8),
            learning_rate_multiplier: Some(0.1),
            ..Default::default()
        },
        ..Default::default()
    };
    let ga = DataPlane::new(
        http(),
        &base,
        Surface::Dated(GA_API_VERSION.into()),
        Auth::Bearer(Arc::new(StaticToken(Secret::new("tok")))),
    );
    let parsed = ga.create_job(&job).await.expect("create");
    let c = last(&log);
    assert_eq!(
        (c.path.as_str(), c.query.as_str()),
        ("/openai/fine_tuning/jobs", "api-version=2024-10-21")
    );
    assert_eq!(c.headers["authorization"], "Bearer tok");
    assert_eq!(
        body_json(&c),
        json!({"model": "gpt-4.1-mini-2025-04-14", "training_file": "file-aaa", "validation_file": "file-bbb",
               "suffix": "ticketing-v7", "seed": 105,
               "hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.1}})
    );
    // The reference's finished-job example parses, with its open status and -1 epochs.
    assert_eq!(parsed.phase(), JobPhase::Succeeded);
    assert_eq!(
        parsed.fine_tuned_model.as_deref(),
        Some("gpt-4.1-mini-2025-04-14.ft-72a2792ef7d24ba7b82c7fe4a37e379f")
    );
    assert_eq!(parsed.trained_tokens, Some(2342));

    let v1 = DataPlane::new(http(), &base, Surface::V1, Auth::ApiKey(Secret::new("k")));
    let only_epochs = CreateJob {
        hyperparameters: Hyperparameters {
            n_epochs: Some(3),
            ..Default::default()
        },
        ..job
    };
    v1.create_job(&only_epochs).await.expect("create v1");
    let c = last(&log);
    assert_eq!(
        (c.path.as_str(), c.query.as_str()),
        ("/openai/v1/fine_tuning/jobs", "")
    );
    let b = body_json(&c);
    assert_eq!(
        b["method"],
        json!({"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}})
    );
    assert!(b.get("hyperparameters").is_none());

    ga.list_events("ftjob-1", Some("ftevent-9"), 5)
        .await
        .expect("events");
    let c = last(&log);
    assert_eq!(c.path, "/openai/fine_tuning/jobs/ftjob-1/events");
    assert_eq!(c.query, "api-version=2024-10-21&limit=5&after=ftevent-9");
    assert_eq!(c.method, "GET");
}

#[tokio::test]
async fn deployments_put_the_reference_body_with_auxiliary_tokens_across_tenants() {
    let log = Log::default();
    let base = recorder(log.clone()).await;
    let tokens = LocalTokens::new("hub-tenant", Secret::new("k"));
    let arm = Arm::new(http(), &base, Arc::new(tokens.clone()), "hub-tenant")
        .with_polling(Duration::from_millis(10), Duration::from_secs(2));
    let spoke = "/subscriptions/SPOKE_SUB/resourceGroups/SPOKE_RG/providers/Microsoft.CognitiveServices/accounts/SPOKE_ACCOUNT";
    let account = |tenant: &str| fthub::domain::topology::Account {
        name: "SPOKE_ACCOUNT".into(),
        region: "swedencentral".into(),
        subscription: "SPOKE_SUB".into(),
        tenant: tenant.into(),
        endpoint: String::new(),
        resource_id: spoke.into(),
        deployment_slots: 5,
    };
    let tid = |header: &reqwest::header::HeaderValue| {
        let text = header.to_str().expect("ascii");
        fthub::adapters::azure::token_tenant(text.strip_prefix("Bearer ").expect("Bearer"))
            .expect("a tenant-bound token")
    };
    let spec = DeploymentSpec {
        model: "gpt-4.1-mini-2025-04-14.ft-0ab3f80e4f2242929258fff45b56a9ce".into(),
        version: "1".into(),
        sku: "standard".into(),
        capacity: 1,
        source: Some("/subscriptions/HUB_SUB/resourceGroups/HUB_RG/providers/Microsoft.CognitiveServices/accounts/HUB_ACCOUNT".into()),
        source_account: None,
        tags: Default::default(),
    };
    arm.put(&account("hub-tenant"), "ft-support", &spec, None)
        .await
        .expect("put");
    let put = log
        .lock()
        .expect("log")
        .iter()
        .find(|c| c.method == "PUT")
        .cloned()
        .expect("a PUT");
    assert_eq!(put.path, format!("{spoke}/deployments/ft-support"));
    assert_eq!(put.query, "api-version=2024-10-01");
    assert_eq!(tid(&put.headers["authorization"]), "hub-tenant");
    assert!(!put.headers.contains_key("x-ms-authorization-auxiliary"));
    let b = body_json(&put);
    assert_eq!(b["sku"], json!({"name": "standard", "capacity": 1}));
    assert_eq!(
        b["properties"],
        json!({"model": {"format": "OpenAI", "name": "gpt-4.1-mini-2025-04-14.ft-0ab3f80e4f2242929258fff45b56a9ce", "version": "1",
                         "source": "/subscriptions/HUB_SUB/resourceGroups/HUB_RG/providers/Microsoft.CognitiveServices/accounts/HUB_ACCOUNT"}})
    );
    // No Azure-AsyncOperation header: the client confirms with GET on the deployment.
    assert!(
        log.lock()
            .expect("log")
            .iter()
            .any(|c| c.method == "GET" && c.path.ends_with("/deployments/ft-support"))
    );

    let cross = DeploymentSpec {
        source: None,
        source_account: spec.source.clone(),
        ..spec
    };
    arm.put(
        &account("spoke-tenant"),
        "ft-support",
        &cross,
        Some("hub-tenant"),
    )
    .await
    .expect("put");
    let put = log
        .lock()
        .expect("log")
        .iter()
        .rev()
        .find(|c| c.method == "PUT")
        .cloned()
        .expect("a PUT");
    // ARM runs the request as the primary token's identity, which must come from the tenant
    // that manages the subscription: the Spoke's. The source's tenant goes in the auxiliary.
    assert_eq!(tid(&put.headers["authorization"]), "spoke-tenant");
    assert_eq!(
        tid(&put.headers["x-ms-authorization-auxiliary"]),
        "hub-tenant"
    );
    assert!(body_json(&put)["properties"]["model"]["sourceAccount"].is_string());
}

#[tokio::test]
async fn chat_uses_the_deployment_path_and_the_right_token_cap_per_model_family() {
    let log = Log::default();
    let base = recorder(log.clone()).await;
    let ga = DataPlane::new(
        http(),
        &base,
        Surface::Dated(GA_API_VERSION.into()),
        Auth::ApiKey(Secret::new("k")),
    );
    let req = ChatRequest {
        messages: vec![
            ChatMessage {
                role: "system".into(),
                content: Some("You are a helpful assistant.".into()),
            },
            ChatMessage {
                role: "user".into(),
                content: Some("ping".into()),
            },
        ],
        max_tokens: Some(1),
        temperature: None,
    };
    let r = ga
        .chat("ft-support", "gpt-4.1-mini-2025-04-14.ft-abc", &req)
        .await
        .expect("chat");
    assert_eq!(
        (
            r.usage.prompt_tokens,
            r.usage.completion_tokens,
            r.usage.total_tokens
        ),
        (33, 1, 34)
    );
    assert_eq!(r.finish_reason.as_deref(), Some("length"));
    let c = last(&log);
    assert_eq!(
        (c.path.as_str(), c.query.as_str()),
        (
            "/openai/deployments/ft-support/chat/completions",
            "api-version=2024-10-21"
        )
    );
    assert_eq!(
        body_json(&c),
        json!({"messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "ping"}], "max_tokens": 1})
    );
    let v1 = DataPlane::new(http(), &base, Surface::V1, Auth::ApiKey(Secret::new("k")));
    v1.chat("ft-o4", "o4-mini-2025-04-16.ft-abc", &req)
        .await
        .expect("chat");
    let c = last(&log);
    assert_eq!(c.path, "/openai/v1/chat/completions");
    let b = body_json(&c);
    assert_eq!(
        (b["model"].as_str(), b["max_completion_tokens"].as_u64()),
        (Some("ft-o4"), Some(1))
    );
    assert!(b.get("max_tokens").is_none());
}

#[tokio::test]
async fn the_emulator_answers_in_the_reference_shapes() {
    let base = fthub::local::emulator::spawn(
        0,
        fthub::local::emulator::Emulator::new(
            fthub::local::emulator::builtin_accounts(),
            Default::default(),
        ),
    )
    .await
    .expect("emulator");
    let client = reqwest::Client::new();
    let missing_version = client
        .get(format!("{base}/hub/openai/fine_tuning/jobs"))
        .header("api-key", "k")
        .send()
        .await
        .expect("get");
    assert_eq!(
        missing_version.status().as_u16(),
        400,
        "the dated surface requires api-version"
    );
    let unauthenticated = client
        .get(format!("{base}/hub/openai/v1/fine_tuning/jobs"))
        .send()
        .await
        .expect("get");
    assert_eq!(unauthenticated.status().as_u16(), 401);
    let list: Value = client
        .get(format!("{base}/hub/openai/v1/fine_tuning/jobs"))
        .header("api-key", "k")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list,
        json!({"object": "list", "data": [], "has_more": false})
    );
    let err: Value = client
        .get(format!("{base}/hub/openai/v1/files/file-x"))
        .header("api-key", "k")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(
        err["error"]["code"].is_string() && err["error"]["message"].is_string(),
        "{err}"
    );
    let arm_missing = client
        .get(format!("{base}/arm/subscriptions/00000000-0000-0000-0000-0000000000a0/resourceGroups/rg-fthub-hub/providers/Microsoft.CognitiveServices/accounts/hub/deployments/none?api-version=2024-10-01"))
        .bearer_auth("t")
        .send()
        .await
        .expect("get");
    assert_eq!(arm_missing.status().as_u16(), 404);
}

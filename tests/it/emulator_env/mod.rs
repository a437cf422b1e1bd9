//! The emulator and our Azure clients over real HTTP: an emulator on a free loopback port,
//! clients pointed at it, and its control surface.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fthub::adapters::azure::arm::Arm;
use fthub::adapters::azure::dataplane::{DataPlane, Surface};
use fthub::adapters::azure::{Auth, Http, LocalTokens, RetryPolicy, Secret};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::aoai::{
    ChatMessage, ChatRequest, CreateJob, DeploymentSpec, FileObject, Hyperparameters, JobPhase,
};
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use fthub::ports::{BlobStore, Condition, Hub};
use serde_json::Value;

pub const TRAIN: &str = include_str!("../../../samples/support/train.jsonl");

pub fn fast() -> Timings {
    Timings {
        file_processing_ms: 50,
        job_queue_ms: 50,
        job_training_ms: 200,
        deployment_ms: 100,
        ..Timings::default()
    }
}

pub fn policy(budget_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_server_delay: Duration::from_secs(5),
        budget: Duration::from_millis(budget_ms),
        attempt_timeout: Duration::from_millis(1500),
    }
}

pub struct Env {
    pub base: String,
    pub http: Http,
    pub client: reqwest::Client,
}

impl Env {
    pub async fn start(timings: Timings, retry: RetryPolicy) -> Self {
        let base = fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), timings))
            .await
            .expect("emulator");
        Self {
            base,
            http: Http::new(retry),
            client: reqwest::Client::new(),
        }
    }
    pub fn plane(&self, account: &str, surface: Surface) -> DataPlane {
        DataPlane::new(
            self.http.clone(),
            &format!("{}/{account}", self.base),
            surface,
            Auth::ApiKey(Secret::new("local-key")),
        )
    }
    /// ARM with Entra-shaped tokens of each account's tenant (the home tenant is the Hub's).
    pub fn arm(&self) -> Arm {
        Arm::new(
            self.http.clone(),
            &format!("{}/arm", self.base),
            Arc::new(LocalTokens::new("contoso", Secret::new("arm-key"))),
            "contoso",
        )
        .with_polling(Duration::from_millis(25), Duration::from_secs(10))
    }
    /// An account of the built-in estate.
    pub fn account(&self, name: &str) -> fthub::domain::topology::Account {
        fthub::domain::topology::Topology::local(&self.base)
            .account(name)
            .cloned()
            .expect("account")
    }
    pub async fn control(&self, path: &str, body: Value) -> Value {
        self.client
            .post(format!("{}/_emulator/{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("control")
            .json()
            .await
            .expect("json")
    }
    pub async fn state(&self) -> Value {
        self.client
            .get(format!("{}/_emulator/state", self.base))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json")
    }
    pub async fn requests(&self) -> Vec<Value> {
        crate::common::emulator_requests(&self.base).await
    }
    pub async fn account_id(&self, name: &str) -> String {
        let s = self.state().await;
        s["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .find(|a| a["name"] == name)
            .expect("account")["resource_id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}

pub async fn until<T>(mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "condition not reached"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

pub fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: Some(text.into()),
        }],
        max_tokens: Some(60),
        temperature: None,
    }
}

/// Uploads the support sample as `filename` and waits until the Hub has processed it.
pub async fn uploaded(hub: &DataPlane, filename: &str) -> FileObject {
    let dir = tempfile::tempdir().expect("tmp");
    let store = FsBlobStore::new(dir.path());
    store
        .put("datasets", "train.jsonl", TRAIN.as_bytes(), Condition::None)
        .await
        .expect("put");
    let file = hub
        .upload_file(filename, &store, "datasets", "train.jsonl")
        .await
        .expect("upload");
    assert_eq!(file.bytes, Some(TRAIN.len() as u64));
    until(async || hub.get_file(&file.id).await.ok().filter(|f| f.is_ready())).await
}

/// A deployment of `model` with `sku` and `capacity`, same tenant.
pub fn spec(model: &str, sku: &str, capacity: u32) -> DeploymentSpec {
    DeploymentSpec {
        model: model.into(),
        version: "1".into(),
        sku: sku.into(),
        capacity,
        source: None,
        source_account: None,
        tags: Default::default(),
    }
}

pub async fn train(env: &Env, hub: &DataPlane) -> (String, fthub::domain::aoai::Job) {
    let file = uploaded(hub, "train.jsonl").await;
    let job = hub
        .create_job(&CreateJob {
            model: "gpt-4.1-mini-2025-04-14".into(),
            training_file: file.id.clone(),
            suffix: Some("acme-s1-run7".into()),
            seed: Some(105),
            hyperparameters: Hyperparameters {
                n_epochs: Some(3),
                batch_size: Some(2),
                learning_rate_multiplier: Some(0.1),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .expect("create job");
    assert_eq!(job.phase(), JobPhase::Waiting);
    let done = until(async || {
        hub.get_job(&job.id)
            .await
            .ok()
            .filter(|j| j.phase().is_terminal())
    })
    .await;
    let _ = env;
    (file.id, done)
}

//! Keepalive fan-out benchmark: 1,000 fine-tuned deployments over 10 Spokes on the emulator
//! with 100 ms inference latency, pinged by the real KeepWarm step with its per-Spoke bound.
//! Prints one JSON line: wall time and its ratio to the lower bound the limits set.
//!
//! `cargo run --release --example keepalive_fanout -- [DEPLOYMENTS] [SPOKES] [LATENCY_MS]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fthub::adapters::azure::{Auth, Http, RetryPolicy, Secret, StaticToken};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::aoai::{CreateJob, DeploymentSpec};
use fthub::domain::env::Env;
use fthub::domain::inventory::{Deployment, Health};
use fthub::domain::topology::{Account, Environment, Topology};
use fthub::local::emulator::Emulator;
use fthub::local::emulator::world::{AccountConfig, Timings};
use fthub::ports::{BlobStore, Condition};
use fthub::services::inventory;

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (total, spokes, latency) = (
        args.first().copied().unwrap_or(1000),
        args.get(1).copied().unwrap_or(10),
        args.get(2).copied().unwrap_or(100),
    );
    let per_spoke = total / spokes;
    let cfg = |name: String, region: &str| AccountConfig {
        name,
        region: region.into(),
        subscription: "s".into(),
        resource_group: "rg".into(),
        tenant: "t".into(),
    };
    let mut accounts = vec![cfg("hub".into(), "swedencentral")];
    accounts.extend((0..spokes).map(|i| cfg(format!("spoke-{i}"), &format!("region{i}"))));
    let timings = Timings {
        file_processing_ms: 0,
        job_queue_ms: 0,
        job_training_ms: 0,
        deployment_ms: 0,
        inference_latency_ms: 0,
        max_ft_deployments: per_spoke as usize + 1,
        arm_page_size: 100,
        ..Timings::default()
    };
    let base = fthub::local::emulator::spawn(0, Emulator::new(accounts.clone(), timings))
        .await
        .expect("emulator");
    let account = |c: &AccountConfig| Account {
        name: c.name.clone(),
        region: c.region.clone(),
        subscription: c.subscription.clone(),
        tenant: c.tenant.clone(),
        endpoint: format!("{base}/{}", c.name),
        resource_id: c.resource_id(),
        deployment_slots: per_spoke as usize + 1,
    };
    let spoke_accounts: Vec<Account> = accounts[1..].iter().map(account).collect();
    let mut environments = BTreeMap::new();
    let third = spoke_accounts.len() / 3;
    for (i, env) in Env::ALL.into_iter().enumerate() {
        let slice = if i == 2 {
            spoke_accounts[2 * third..].to_vec()
        } else {
            spoke_accounts[i * third..(i + 1) * third].to_vec()
        };
        environments.insert(
            env,
            Environment {
                spokes: slice,
                approvers: vec![],
                allow_single_region: true,
            },
        );
    }
    let topology = Topology {
        hub: account(&accounts[0]),
        environments,
        projects: BTreeMap::new(),
        hub_limits: Default::default(),
        arm_endpoint: format!("{base}/arm"),
        deployment: Default::default(),
        keepalive_schedule: "0 0 3 * * *".into(),
        defaults: Default::default(),
    };
    let http = Http::new(RetryPolicy::default());
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(dir.path()));
    let tokens = Arc::new(StaticToken(Secret::new("t")));
    let pipeline = fthub::app::pipeline(
        store.clone(),
        topology,
        &http,
        &Auth::ApiKey(Secret::new("k")),
        tokens,
        Duration::from_millis(5),
    );
    let (hub, arm) = (pipeline.hub.clone(), pipeline.arm.clone());
    let hub_id = pipeline.topology.hub.resource_id.clone();

    // One trained model on the Hub.
    let train = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/support/train.jsonl"
    ))
    .expect("sample");
    store
        .put("datasets", "bench/train.jsonl", &train, Condition::None)
        .await
        .expect("put");
    let f = hub
        .upload_file(
            "train.jsonl",
            store.as_ref(),
            "datasets",
            "bench/train.jsonl",
        )
        .await
        .expect("upload");
    while !hub.get_file(&f.id).await.expect("file").is_ready() {}
    let job = hub
        .create_job(&CreateJob {
            model: "gpt-4.1-mini-2025-04-14".into(),
            training_file: f.id,
            ..Default::default()
        })
        .await
        .expect("job");
    let model = loop {
        let j = hub.get_job(&job.id).await.expect("job");
        if let Some(m) = j.fine_tuned_model {
            break m;
        }
    };

    // Deploy per_spoke deployments on every Spoke and record them in the inventory.
    let spec = DeploymentSpec {
        model: model.clone(),
        version: "1".into(),
        sku: "GlobalStandard".into(),
        capacity: 1,
        source: Some(hub_id),
        source_account: None,
        tags: Default::default(),
    };
    let mut entries = Vec::new();
    for s in &spoke_accounts {
        for d in 0..per_spoke {
            entries.push((s.clone(), format!("ft-{d}")));
        }
    }
    let puts = entries.iter().map(|(s, name)| {
        let (arm, spec) = (arm.clone(), spec.clone());
        async move { arm.put(s, name, &spec, None).await.expect("deploy") }
    });
    futures_util::future::join_all(puts).await;
    let now = chrono::Utc::now();
    for s in &spoke_accounts {
        inventory::update_account(store.as_ref(), &s.name, |r| {
            for (_, name) in entries.iter().filter(|(a, _)| a.name == s.name) {
                r.deployed(Deployment {
                    project: format!("bench-{name}"),
                    deployment: name.clone(),
                    run_id: "bench".into(),
                    model: model.clone(),
                    version: String::new(),
                    deployed_at: now,
                    last_keepalive: None,
                    last_latency_ms: None,
                    health: Health::Healthy,
                    restorations: 0,
                });
            }
            Ok::<(), std::convert::Infallible>(())
        })
        .await
        .expect("inventory");
    }

    // Latency on from here on: every ping takes `latency` ms.
    reqwest::Client::new()
        .post(format!("{base}/_emulator/timings"))
        .json(&Timings {
            inference_latency_ms: latency,
            max_ft_deployments: per_spoke as usize + 1,
            arm_page_size: 100,
            ..timings
        })
        .send()
        .await
        .expect("timings");
    let per_spoke_limit = pipeline.topology.defaults.keepalive_concurrency_per_spoke;
    let started = Instant::now();
    let out = pipeline.keep_warm().await.expect("keepwarm");
    let wall = started.elapsed().as_secs_f64();
    let lower_bound = (per_spoke as f64 / per_spoke_limit as f64).ceil() * latency as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "deployments": entries.len(), "spokes": spokes, "latency_ms": latency, "per_spoke_concurrency": per_spoke_limit,
            "pinged": serde_json::to_value(&out.notifications[0]).expect("json")["pinged"], "wall_seconds": (wall * 1000.0).round() / 1000.0,
            "lower_bound_seconds": lower_bound, "ratio": ((wall / lower_bound) * 100.0).round() / 100.0,
        })
    );
}

//! Evaluation at the rate limit: one real evaluation (candidate and base model, each on a
//! Hub deployment of `CAPACITY` units) of an `EXAMPLES`-example held-out set, against the
//! emulator enforcing Azure's per-deployment limits (1 unit = 6 requests and 1,000 tokens a
//! minute). Prints one JSON line: wall time, the lower bound the limits set, their ratio,
//! and how many calls the service refused for the rate limit.
//!
//! `cargo run --release --example eval_pace -- [EXAMPLES] [CAPACITY]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use fthub::adapters::azure::{Auth, Http, RetryPolicy, Secret, StaticToken};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::run::Stage;
use fthub::domain::topology::Topology;
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use fthub::ports::{BlobStore, Condition};
use fthub::services::runs;
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (examples, capacity) = (
        args.first().copied().unwrap_or(300) as usize,
        args.get(1).copied().unwrap_or(100),
    );
    let timings = Timings {
        file_processing_ms: 0,
        job_queue_ms: 0,
        job_training_ms: 0,
        deployment_ms: 0,
        ..Timings::default()
    };
    let base = fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), timings))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(dir.path()));
    let mut topology = Topology::local(&base);
    topology.deployment.evaluation_capacity = capacity;
    let mut p = fthub::app::pipeline(
        store.clone(),
        topology,
        &Http::new(RetryPolicy::default()),
        &Auth::ApiKey(Secret::new("k")),
        Arc::new(StaticToken(Secret::new("t"))),
        Duration::from_millis(5),
    );
    p.eval_cap = examples;
    p.eval_batch = 100;
    p.eval_budget = Duration::from_secs(3600);

    // Training data from the sample; a held-out set of `examples` tickets of its classes.
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/classification");
    let train = std::fs::read_to_string(sample.join("train.jsonl")).expect("train");
    let lines: Vec<&str> = train.lines().collect();
    let mut eval = String::new();
    for i in 0..examples {
        let mut v: Value = serde_json::from_str(lines[i % lines.len()]).expect("json");
        let user = v["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        v["messages"][1]["content"] = json!(format!("{user} (ticket {i})"));
        eval.push_str(&v.to_string());
        eval.push('\n');
    }
    let manifest = json!({"training_file": "train.jsonl", "eval_file": "eval.jsonl", "submitted_by": "bench",
                          "thresholds": {"min_score": 0.0, "min_gain": -1.0, "max_p95_latency_ms": 60000}});
    for (name, bytes) in [
        ("train.jsonl", train.into_bytes()),
        ("eval.jsonl", eval.into_bytes()),
        ("manifest.json", manifest.to_string().into_bytes()),
    ] {
        store
            .put(
                "datasets",
                &format!("bench/pace/{name}"),
                &bytes,
                Condition::None,
            )
            .await
            .expect("put");
    }
    p.on_dataset_blob("bench/pace/manifest.json")
        .await
        .expect("start");
    let id = runs::list(store.as_ref()).await.expect("list")[0]
        .id
        .clone();
    while runs::get(store.as_ref(), &id)
        .await
        .expect("get")
        .expect("run")
        .0
        .stage
        != Stage::Evaluating
    {
        p.monitor_training().await.expect("tick");
    }

    let started = Instant::now();
    p.evaluate(&id).await.expect("evaluate");
    let wall = started.elapsed().as_secs_f64();
    let stage = runs::get(store.as_ref(), &id)
        .await
        .expect("get")
        .expect("run")
        .0
        .stage;
    assert!(
        matches!(stage, Stage::Evaluated | Stage::EvaluationFailed),
        "{stage:?}"
    );
    let log: Vec<Value> = reqwest::get(format!("{base}/_emulator/requests"))
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    let chat = |r: &&Value| {
        r["path"]
            .as_str()
            .is_some_and(|p| p.contains("/chat/completions"))
    };
    let calls = log
        .iter()
        .filter(chat)
        .filter(|r| r["status"] == 200)
        .count();
    let throttled = log
        .iter()
        .filter(chat)
        .filter(|r| r["status"] == 429)
        .count();
    // Two deployments (candidate, base), each `examples` calls at its requests per minute
    // (token limits are not the bound for these short prompts and answers).
    let rpm = f64::from(capacity) * 6.0;
    let bound = 2.0 * examples as f64 * 60.0 / rpm;
    println!(
        "{}",
        json!({
            "examples": examples, "capacity_units": capacity, "requests_per_minute": rpm,
            "calls": calls, "throttled": throttled, "wall_seconds": (wall * 100.0).round() / 100.0,
            "lower_bound_seconds": (bound * 100.0).round() / 100.0, "ratio": ((wall / bound) * 100.0).round() / 100.0,
        })
    );
}

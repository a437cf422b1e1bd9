//! Exactly-once effects under at-least-once delivery: every trigger of the story is
//! delivered 50 times, concurrently, to two handler processes (`fthub serve`) that share one
//! Azurite storage account and one emulated Azure OpenAI estate. The Hub sees one upload per
//! file and one fine-tuning job; ARM sees one deployment call per (run, environment,
//! region) step and one evaluation deployment; the audit log has one line per transition.
//! Conflicts and "step in progress" answers are redelivered, as the host would.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use fthub::adapters::azure::storage::{
    AzureBlobStore, DEFAULT_API_VERSION, parse_connection_string,
};
use fthub::domain::approval::{Approval, Decision, parse_signing_key};
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use fthub::ports::{BlobStore, Condition};
use serde_json::{Value, json};

const DUPLICATES: usize = 50;

fn sys(function: &str) -> Value {
    json!({"MethodName": function, "UtcNow": chrono::Utc::now().to_rfc3339(), "RandGuid": uuid::Uuid::new_v4().to_string()})
}

/// The host's Event Grid envelope for a BlobCreated event (the event double-encoded).
fn blob_created(name: &str) -> String {
    let event = json!({
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
        "subject": format!("/blobServices/default/containers/datasets/blobs/{name}"),
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": uuid::Uuid::new_v4().to_string(),
        "eventTime": chrono::Utc::now().to_rfc3339(),
        "data": {"api": "PutBlob", "eTag": "0x1", "contentType": "application/json", "contentLength": 1,
                 "blobType": "BlockBlob", "url": format!("http://127.0.0.1/devstoreaccount1/datasets/{name}")},
        "dataVersion": "", "metadataVersion": "1"
    });
    json!({"Data": {"event": event.to_string()}, "Metadata": {"sys": sys("DatasetArrived")}})
        .to_string()
}

/// The host's Service Bus envelope (body double-encoded, metadata stringly).
fn message(function: &str, body: &Value) -> String {
    json!({"Data": {"message": body.to_string()},
           "Metadata": {"DeliveryCount": "1", "MessageId": format!("\"{}\"", uuid::Uuid::new_v4()),
                        "sys": sys(function)}})
    .to_string()
}

fn timer(function: &str) -> String {
    json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true}, "IsPastDue": false}},
           "Metadata": {"sys": sys(function)}})
    .to_string()
}

/// Delivers `body` to `function` `DUPLICATES` times at once, alternating between the two
/// handlers; failed deliveries (retryable: conflicts, a step in progress) are delivered
/// again until each of the 50 has succeeded once. Returns how many redeliveries it took.
async fn deliver(handlers: &[common::Serve; 2], function: &str, body: &str) -> usize {
    let mut pending: Vec<usize> = (0..DUPLICATES).collect();
    let mut redeliveries = 0;
    for round in 0..20 {
        let calls = pending
            .iter()
            .map(|i| handlers[i % 2].invoke(function, body.to_owned()));
        let results = futures_util::future::join_all(calls).await;
        let failed: Vec<usize> = pending
            .iter()
            .zip(results)
            .filter(|(_, (status, _, body))| {
                assert!(
                    *status == 200 || *status == 500,
                    "{function}: unexpected HTTP {status}: {body}"
                );
                *status != 200
            })
            .map(|(i, _)| *i)
            .collect();
        if failed.is_empty() {
            return redeliveries;
        }
        redeliveries += failed.len();
        pending = failed;
        tokio::time::sleep(Duration::from_millis(200 * (round + 1))).await;
    }
    panic!("{function}: {} deliveries never succeeded", pending.len());
}

async fn requests(emulator: &str) -> Vec<Value> {
    common::emulator_requests(emulator).await
}

fn count(log: &[Value], method: &str, part: &str) -> usize {
    log.iter()
        .filter(|r| r["method"] == method && r["path"].as_str().is_some_and(|p| p.contains(part)))
        .count()
}

/// ARM deployment PUTs by path (account + deployment name).
fn deployment_puts(log: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in log.iter().filter(|r| r["method"] == "PUT") {
        let path = r["path"].as_str().unwrap_or("");
        if path.starts_with("/arm/") && path.contains("/deployments/") {
            *m.entry(path.split('?').next().unwrap_or("").to_owned())
                .or_insert(0) += 1;
        }
    }
    m
}

async fn run_doc(store: &AzureBlobStore, id: &str) -> Value {
    let (_, bytes) = store
        .get("state", &format!("runs/{id}.json"))
        .await
        .expect("run");
    serde_json::from_slice(&bytes).expect("json")
}

async fn wait_stage(store: &AzureBlobStore, id: &str, handlers: &[common::Serve; 2], stage: &str) {
    for _ in 0..100 {
        if run_doc(store, id).await["stage"] == stage {
            return;
        }
        deliver(handlers, "TrainingMonitor", &timer("TrainingMonitor")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {id} never reached {stage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_duplicates_on_two_handlers_cause_each_effect_once() {
    if !common::external("Azurite") {
        return;
    }
    // Its own account: the TrainingMonitor deliveries below reconcile every active run in it.
    let az = common::azurite_private();
    let t = Timings {
        file_processing_ms: 50,
        job_queue_ms: 50,
        job_training_ms: 300,
        deployment_ms: 50,
        ..Timings::default()
    };
    let emulator = fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), t))
        .await
        .expect("emulator");
    let store = AzureBlobStore::new(
        parse_connection_string(&az.connection_string).expect("cs"),
        DEFAULT_API_VERSION,
    )
    .expect("store");
    for c in ["datasets", "reports", "state", "audit"] {
        store.ensure_container(c).await.expect("container");
    }
    let homes = [
        tempfile::tempdir().expect("home"),
        tempfile::tempdir().expect("home"),
    ];
    let env = |_: usize| {
        vec![
            ("FTHUB_STORAGE", az.connection_string.as_str()),
            ("FTHUB_EMULATOR_URL", emulator.as_str()),
        ]
    };
    let handlers = [
        common::Serve::start_with_env(homes[0].path(), &env(0)).await,
        common::Serve::start_with_env(homes[1].path(), &env(1)).await,
    ];

    // A submission in Azurite.
    let project = format!("x{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let sample = common::repo().join("samples/classification");
    for f in ["train.jsonl", "eval.jsonl", "manifest.json"] {
        let bytes = std::fs::read(sample.join(f)).expect("sample");
        store
            .put(
                "datasets",
                &format!("{project}/s1/{f}"),
                &bytes,
                Condition::None,
            )
            .await
            .expect("put");
    }

    // DatasetArrived × 50 answers at once, each with the same arrival for the intake queue.
    let arrived = deliver(
        &handlers,
        "DatasetArrived",
        &blob_created(&format!("{project}/s1/manifest.json")),
    )
    .await;
    assert_eq!(arrived, 0, "nothing to retry: the work is queued");
    // ValidateSubmission × 50 → one run, two uploads, one job.
    let mut redelivered = deliver(
        &handlers,
        "ValidateSubmission",
        &message(
            "ValidateSubmission",
            &json!({"type": "dataset.arrived", "blob": format!("{project}/s1/manifest.json")}),
        ),
    )
    .await;
    let runs = store.list("state", "runs/").await.expect("runs");
    let mut ids = Vec::new();
    for r in &runs {
        let doc: Value = serde_json::from_slice(&store.get("state", &r.name).await.expect("get").1)
            .expect("json");
        if doc["project"] == project.as_str() {
            ids.push(doc["id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(ids.len(), 1, "one run for one submission");
    let id = ids.remove(0);
    let log = requests(&emulator).await;
    assert_eq!(
        count(&log, "POST", "/openai/files?"),
        2,
        "one upload per file"
    );
    assert_eq!(
        count(&log, "POST", "/fine_tuning/jobs?"),
        1,
        "one fine-tuning job"
    );

    // TrainingMonitor × 50 (repeatedly, until trained) → evaluating.
    wait_stage(&store, &id, &handlers, "evaluating").await;
    // EvaluateCandidate × 50 → one evaluation deployment, deleted once.
    redelivered += deliver(
        &handlers,
        "EvaluateCandidate",
        &message(
            "EvaluateCandidate",
            &json!({"run_id": id, "status": "succeeded"}),
        ),
    )
    .await;
    assert_eq!(run_doc(&store, &id).await["stage"], "evaluated");
    // PromoteOnEvaluation × 50 → Dev in two regions, once each.
    redelivered += deliver(
        &handlers,
        "PromoteOnEvaluation",
        &message(
            "PromoteOnEvaluation",
            &json!({"run_id": id, "passed": true}),
        ),
    )
    .await;
    assert_eq!(run_doc(&store, &id).await["stage"], "dev");
    // The same signed Test approval × 50 → Test in two regions, once each.
    let key_text =
        std::fs::read_to_string(common::repo().join("samples/keys/quality-lead.key")).expect("key");
    let signed = Approval {
        run_id: id.clone(),
        environment: "test".into(),
        decision: Decision::Approve,
        approver: "quality-lead".into(),
        reason: "eval ok".into(),
        issued_at: chrono::Utc::now(),
        nonce: uuid::Uuid::new_v4().to_string(),
    }
    .sign(&parse_signing_key(&key_text).expect("key"));
    redelivered += deliver(
        &handlers,
        "ApplyApproval",
        &message(
            "ApplyApproval",
            &serde_json::to_value(&signed).expect("json"),
        ),
    )
    .await;
    let doc = run_doc(&store, &id).await;
    assert_eq!(doc["stage"], "test", "{doc}");

    let log = requests(&emulator).await;
    assert_eq!(
        count(&log, "POST", "/fine_tuning/jobs?"),
        1,
        "still one job"
    );
    let puts = deployment_puts(&log);
    let eval: Vec<_> = puts
        .keys()
        .filter(|p| p.contains("/deployments/eval-"))
        .collect();
    assert_eq!(eval.len(), 1, "{puts:?}");
    for (path, n) in &puts {
        assert_eq!(*n, 1, "deployment {path} was called {n} times: {puts:?}");
    }
    let deletes = log
        .iter()
        .filter(|r| {
            r["method"] == "DELETE"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/deployments/eval-"))
        })
        .count();
    assert_eq!(deletes, 1, "the evaluation deployment is removed once");
    // 2 Dev + 2 Test spoke deployments, 1 evaluation candidate, 1 base-model baseline.
    assert_eq!(puts.len(), 6, "{puts:?}");

    // One audit line per transition, and no transition twice.
    let history = doc["history"].as_array().expect("history");
    let mut seen = std::collections::BTreeSet::new();
    for t in history {
        assert!(
            seen.insert((
                t["from"].to_string(),
                t["to"].to_string(),
                t["detail"].to_string()
            )),
            "transition repeated: {t}"
        );
    }
    // Two trails: the run's own and the day's, each one line per transition.
    let per_run = store
        .list("audit", &format!("runs/{id}/"))
        .await
        .expect("audit");
    assert_eq!(
        per_run.len(),
        history.len(),
        "one line per transition in the run's trail"
    );
    let audit = store.list("audit", "").await.expect("audit");
    let daily = audit
        .iter()
        .filter(|a| !a.name.starts_with("runs/") && a.name.contains(&id))
        .count();
    assert_eq!(
        daily,
        history.len(),
        "one line per transition in the daily trail"
    );
    eprintln!(
        "exactly-once: {} deliveries per trigger on 2 handlers, {redelivered} redeliveries, {} transitions, {} deployment calls",
        DUPLICATES,
        history.len(),
        puts.len()
    );
}

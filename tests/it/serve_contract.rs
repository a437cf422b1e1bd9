//! `fthub serve` driven over real HTTP with envelopes built by the host's rules
//! (docs/handler.md): double-encoded strings, stringly numbers,
//! Event Grid, Service Bus, timer and HTTP payloads, and malformed ones.

use crate::common;

use crate::common::{Serve, fixture};
use serde_json::{Value, json};

fn rejection_records(home: &std::path::Path) -> Vec<Value> {
    common::files_under(&home.join("storage/audit/rejections"))
        .into_iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json"))
        .collect()
}

fn assert_envelope(v: &Value) {
    assert!(v.get("Outputs").is_some_and(Value::is_object), "{v}");
    assert!(v.get("Logs").is_some_and(Value::is_array), "{v}");
    assert!(v.get("ReturnValue").is_some(), "{v}");
}

#[tokio::test]
async fn the_readiness_probe_on_root_answers() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let r = s.client.get(s.url("/")).send().await.expect("get");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn a_service_bus_message_with_double_encoded_metadata_reaches_the_pipeline() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let (status, ctype, body) = s
        .invoke(
            "EvaluateCandidate",
            fixture("service_bus_training_completed.json"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_envelope(&body);
    // The double-encoded body decoded to its run_id, which the pipeline does not know.
    let records = rejection_records(home.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["kind"], "unknown_run");
    assert!(
        records[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("acme-s1-1a2b")
    );
}

#[tokio::test]
async fn a_service_bus_body_that_is_not_json_is_rejected_once_and_recorded() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let (status, _, body) = s
        .invoke("EvaluateCandidate", fixture("service_bus_not_json.json"))
        .await;
    assert_eq!(status, 200, "terminal failures are not retried");
    let note: Value = serde_json::from_str(
        body["Outputs"]["notifications"]
            .as_str()
            .expect("notification text"),
    )
    .expect("json");
    assert_eq!(note["type"], "invocation.rejected");
    assert_eq!(note["kind"], "malformed_payload");
    let records = rejection_records(home.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["function"], "EvaluateCandidate");
}

#[tokio::test]
async fn a_body_that_is_not_an_envelope_is_rejected_not_retried() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let (status, _, body) = s.invoke("ApplyApproval", "this is not json").await;
    assert_eq!(status, 200);
    assert_envelope(&body);
    assert!(
        body["Outputs"]["notifications"]
            .as_str()
            .expect("note")
            .contains("bad_envelope")
    );
    assert_eq!(rejection_records(home.path())[0]["kind"], "bad_envelope");
}

#[tokio::test]
async fn a_blob_created_event_reaches_the_pipeline_with_the_blob_it_names() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let (status, _, body) = s
        .invoke("DatasetArrived", fixture("event_grid_blob_created.json"))
        .await;
    assert_eq!(status, 200);
    assert_envelope(&body);
    // Answered at once: the blob goes on the intake queue for ValidateSubmission.
    let intake = body["Outputs"]["intake"].as_array().expect("intake output");
    assert_eq!(intake.len(), 1);
    assert_eq!(intake[0]["type"], "dataset.arrived");
    assert_eq!(intake[0]["blob"], "acme/s1/manifest.json");
    assert!(rejection_records(home.path()).is_empty());
    // The worker streams it: this empty store does not hold it.
    let envelope = serde_json::json!({
        "Data": {"message": serde_json::to_string(&intake[0].to_string()).expect("encode")},
        "Metadata": {"MessageId": "\"m-1\"", "DeliveryCount": "1", "sys": {"MethodName": "ValidateSubmission"}},
    });
    let (status, _, _) = s.invoke("ValidateSubmission", envelope.to_string()).await;
    assert_eq!(status, 200);
    let records = rejection_records(home.path());
    assert_eq!(records[0]["kind"], "blob_not_found");
    assert!(
        records[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("datasets/acme/s1/manifest.json")
    );
}

#[tokio::test]
async fn events_for_other_types_or_escaping_blob_names_are_rejected_with_a_reason() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let (status, _, body) = s
        .invoke("DatasetArrived", fixture("event_grid_blob_deleted.json"))
        .await;
    assert_eq!(status, 200);
    assert!(
        body["Outputs"]["notifications"]
            .as_str()
            .expect("note")
            .contains("unsupported_event")
    );
    let (status, _, body) = s
        .invoke("DatasetArrived", fixture("event_grid_path_traversal.json"))
        .await;
    assert_eq!(status, 200);
    assert!(
        body["Outputs"]["notifications"]
            .as_str()
            .expect("note")
            .contains("invalid_dataset_path")
    );
    assert_eq!(rejection_records(home.path()).len(), 2);
}

#[tokio::test]
async fn a_past_due_timer_with_sentinel_dates_runs() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    // TrainingMonitor with no runs touches no Azure account.
    let (status, _, body) = s
        .invoke("TrainingMonitor", fixture("timer_past_due.json"))
        .await;
    assert_eq!(status, 200);
    assert_envelope(&body);
    assert!(rejection_records(home.path()).is_empty());
}

#[tokio::test]
async fn the_status_api_answers_through_the_http_output_binding() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let (status, _, body) = s.invoke("Status", fixture("http_status_get.json")).await;
    assert_eq!(status, 200);
    let res = &body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200);
    let inner: Value =
        serde_json::from_str(res["body"].as_str().expect("text body")).expect("json");
    assert_eq!(inner["functions"].as_array().expect("functions").len(), 13);
}

#[tokio::test]
async fn a_bad_http_request_answers_its_caller_400_and_the_host_200() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let (status, _, body) = s
        .invoke("SubmitRun", fixture("http_submit_run_bad_body.json"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["Outputs"]["res"]["statusCode"], 400);
}

#[tokio::test]
async fn bodies_larger_than_axums_default_limit_are_accepted() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let big = "x".repeat(3 * 1024 * 1024);
    let env = json!({"Data": {"message": serde_json::to_string(&json!({"payload": big}).to_string()).expect("enc")},
                     "Metadata": {"DeliveryCount": "1", "MessageId": "\"big\""}});
    let (status, _, body) = s.invoke("PromoteOnEvaluation", env.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(
        rejection_records(home.path())[0]["kind"],
        "malformed_payload",
        "decoded, but has no run_id: {body}"
    );
}

#[tokio::test]
async fn an_unknown_function_gets_a_404_with_a_json_body() {
    let home = tempfile::tempdir().expect("tmp");
    let s = Serve::start(home.path()).await;
    let (status, ctype, body) = s.invoke("NoSuchFunction", "{}").await;
    assert_eq!(status, 404);
    assert!(ctype.starts_with("application/json"));
    assert_envelope(&body);
}

#[tokio::test]
async fn a_rejection_that_cannot_be_recorded_fails_with_500_so_the_host_retries() {
    let home = tempfile::tempdir().expect("tmp");
    // Storage that cannot be written: the home's storage path is a file.
    std::fs::write(home.path().join("storage"), b"not a directory").expect("write");
    let s = Serve::start(home.path()).await;
    let (status, ctype, body) = s
        .invoke("EvaluateCandidate", fixture("service_bus_not_json.json"))
        .await;
    assert_eq!(status, 500);
    assert!(ctype.starts_with("application/json"));
    assert_envelope(&body);
}

#[tokio::test]
async fn dataset_arrived_answers_a_200_mb_drop_at_once_and_leaves_validation_to_the_intake_queue() {
    // Event Grid waits about 30 s for an answer and then delivers again: the delivery must
    // not stream, validate or upload the dataset.
    let home = tempfile::tempdir().expect("tmp");
    let dir = home.path().join("storage/datasets/big");
    std::fs::create_dir_all(&dir).expect("dir");
    let line = "{\"messages\":[{\"role\":\"user\",\"content\":\"".to_owned()
        + &"x".repeat(900)
        + "\"},{\"role\":\"assistant\",\"content\":\"y\"}]}\n";
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(dir.join("train.jsonl")).expect("create"));
    for _ in 0..(200 * 1024 * 1024 / line.len()) {
        std::io::Write::write_all(&mut f, line.as_bytes()).expect("write");
    }
    drop(f);
    let s = Serve::start(home.path()).await;
    let event = serde_json::json!({
        "Data": {"event": {"id": "1", "topic": "/subscriptions/s", "subject": "/blobServices/default/containers/datasets/blobs/big/train.jsonl",
            "eventType": "Microsoft.Storage.BlobCreated", "eventTime": "2026-12-01T10:00:00Z", "dataVersion": "", "metadataVersion": "1",
            "data": {"url": "https://acct.blob.core.windows.net/datasets/big/train.jsonl", "eTag": "0x1", "contentLength": 209_715_200}}},
        "Metadata": {"sys": {"MethodName": "DatasetArrived"}},
    });
    let started = std::time::Instant::now();
    let (status, _, body) = s.invoke("DatasetArrived", event.to_string()).await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    // Event Grid waits ~30 s; reading 200 MB would take far longer than this on any machine,
    // and a loaded one still answers a no-I/O delivery well inside it.
    assert!(
        took < std::time::Duration::from_secs(10),
        "answered in {took:?}"
    );
    assert_eq!(body["Outputs"]["intake"][0]["blob"], "big/train.jsonl");
    assert!(
        !home.path().join("storage/reports").exists(),
        "no validation report yet: ValidateSubmission writes it"
    );
}

//! The handler's router called in-process (`tower::ServiceExt::oneshot`) with the host's
//! envelopes: the same contract the out-of-process suite (`serve_contract`) drives over
//! real HTTP, here without a process or a socket, so a failure points at the code.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::common::{self, fixture};

fn router(home: &std::path::Path) -> axum::Router {
    let home = home.display().to_string();
    let settings = fthub::app::Settings::from_lookup(|k| match k {
        "FTHUB_HOME" => Some(home.clone()),
        _ => None,
    })
    .expect("settings");
    fthub::server::router(fthub::app::AppState::build(&settings).expect("state"))
}

async fn invoke(router: &axum::Router, function: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::post(format!("/{function}"))
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "x-azure-functions-invocationid",
            uuid::Uuid::new_v4().to_string(),
        )
        .body(Body::from(body.to_owned()))
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

fn rejections(home: &std::path::Path) -> Vec<Value> {
    common::files_under(&home.join("storage/audit/rejections"))
        .into_iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json"))
        .collect()
}

#[tokio::test]
async fn the_readiness_probe_answers_and_an_unknown_function_is_a_404() {
    let home = tempfile::tempdir().expect("home");
    let r = router(home.path());
    let resp = r
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = invoke(&r, "NoSuchFunction", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_double_encoded_service_bus_message_reaches_the_pipeline_which_records_the_unknown_run() {
    let home = tempfile::tempdir().expect("home");
    let r = router(home.path());
    let (status, body) = invoke(
        &r,
        "EvaluateCandidate",
        &fixture("service_bus_training_completed.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["Outputs"].is_object() && body["Logs"].is_array(),
        "{body}"
    );
    let records = rejections(home.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["kind"], "unknown_run");
}

#[tokio::test]
async fn a_blob_created_event_is_answered_at_once_with_the_blob_on_the_intake_queue() {
    let home = tempfile::tempdir().expect("home");
    let r = router(home.path());
    let (status, body) = invoke(
        &r,
        "DatasetArrived",
        &fixture("event_grid_blob_created.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let intake = body["Outputs"]["intake"].as_array().expect("intake output");
    assert_eq!(intake[0]["blob"], "acme/s1/manifest.json");
    assert!(rejections(home.path()).is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_an_envelope_is_recorded_and_not_retried() {
    let home = tempfile::tempdir().expect("home");
    let r = router(home.path());
    let (status, body) = invoke(&r, "ApplyApproval", "this is not json").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "terminal: the host must not retry it"
    );
    assert!(
        body["Outputs"]["notifications"]
            .as_str()
            .is_some_and(|n| n.contains("bad_envelope")),
        "{body}"
    );
    let records = rejections(home.path());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["kind"], "bad_envelope");
}

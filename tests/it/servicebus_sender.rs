//! The Service Bus REST sender against a loopback server that records exactly what it
//! receives: path, auth header forms, BrokerProperties, properties, body, and retries.

use crate::common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use fthub::adapters::azure::servicebus::{BusAuth, BusSendError, ServiceBusSender};
use fthub::adapters::azure::{Http, RetryPolicy, Secret, TokenSource};
use fthub::ports::{AoaiError, OutgoingMessage};
use serde_json::Value;

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<(String, HeaderMap, String)>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

async fn record(
    State(r): State<Recorder>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    r.seen.lock().expect("lock").push((
        uri.path().to_owned(),
        headers,
        String::from_utf8_lossy(&body).into_owned(),
    ));
    let code = r.answers.lock().expect("lock").pop_front().unwrap_or(201);
    let mut h = HeaderMap::new();
    if code == 429 {
        h.insert("retry-after-ms", "50".parse().expect("header"));
    }
    (StatusCode::from_u16(code).expect("status"), h, "")
}

async fn server(answers: &[u16]) -> (String, Recorder) {
    let r = Recorder::default();
    r.answers
        .lock()
        .expect("lock")
        .extend(answers.iter().copied());
    let app = Router::new().fallback(record).with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, r)
}

fn fast() -> Http {
    Http::new(RetryPolicy {
        min_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        ..RetryPolicy::default()
    })
}

fn approval() -> OutgoingMessage {
    let mut m = OutgoingMessage {
        body: r#"{"run_id":"r1"}"#.into(),
        message_id: Some("nonce-7".into()),
        correlation_id: Some("r1".into()),
        subject: Some("approval.test".into()),
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    m.application_properties
        .insert("environment".into(), Value::from("test"));
    m.application_properties
        .insert("attempt".into(), Value::from(2));
    m
}

#[derive(Debug)]
struct Tokens(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl TokenSource for Tokens {
    async fn token(&self, scope: &str, _tenant: Option<&str>) -> Result<Secret, AoaiError> {
        self.0.lock().expect("lock").push(scope.to_owned());
        Ok(Secret::new("entra-token"))
    }
}

#[tokio::test]
async fn a_sas_send_posts_the_message_with_broker_properties_and_a_verifiable_signature() {
    use base64::Engine as _;
    use hmac::Mac as _;
    let (url, rec) = server(&[]).await;
    let sender = ServiceBusSender::from_connection_string(
        fast(),
        &format!("Endpoint={url}/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"),
    )
    .expect("connection string");
    sender.send("approvals", &approval()).await.expect("send");
    let seen = rec.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    let (path, h, body) = &seen[0];
    assert_eq!(path, "/approvals/messages");
    assert_eq!(body, r#"{"run_id":"r1"}"#);
    assert_eq!(h["content-type"], "application/json");
    let bp: Value =
        serde_json::from_str(h["brokerproperties"].to_str().expect("ascii")).expect("json");
    assert_eq!(
        bp,
        serde_json::json!({"MessageId": "nonce-7", "CorrelationId": "r1", "Label": "approval.test"})
    );
    assert_eq!(h["environment"], "\"test\"", "string properties are quoted");
    assert_eq!(h["attempt"], "2", "numbers are bare");
    // SharedAccessSignature sr=<enc uri>&sig=<enc b64>&se=<unix>&skn=send, verified here
    // by recomputing the HMAC over the received sr and se.
    let auth = h["authorization"].to_str().expect("ascii");
    let fields: std::collections::HashMap<_, _> = auth
        .strip_prefix("SharedAccessSignature ")
        .expect("SAS scheme")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    assert_eq!(fields["skn"], "send");
    let sr_decoded = percent_encoding::percent_decode_str(fields["sr"]).decode_utf8_lossy();
    assert_eq!(sr_decoded, format!("{url}/approvals"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"c2VjcmV0").expect("key");
    mac.update(format!("{}\n{}", fields["sr"], fields["se"]).as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(
        percent_encoding::percent_decode_str(fields["sig"]).decode_utf8_lossy(),
        want
    );
    let se: i64 = fields["se"].parse().expect("expiry");
    assert!(
        se > chrono::Utc::now().timestamp(),
        "the token is not already expired"
    );
}

#[tokio::test]
async fn an_entra_send_uses_a_bearer_token_for_the_service_bus_scope() {
    let (url, rec) = server(&[]).await;
    let tokens = Arc::new(Tokens(Mutex::new(Vec::new())));
    let sender = ServiceBusSender::new(fast(), &url, BusAuth::Entra(tokens.clone()));
    sender.send("approvals", &approval()).await.expect("send");
    assert_eq!(
        rec.seen.lock().expect("lock")[0].1["authorization"],
        "Bearer entra-token"
    );
    assert_eq!(
        *tokens.0.lock().expect("lock"),
        ["https://servicebus.azure.net/.default"]
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_client_errors_are_not() {
    let (url, rec) = server(&[503, 429, 500]).await;
    let sender = ServiceBusSender::new(
        fast(),
        &url,
        BusAuth::Entra(Arc::new(Tokens(Mutex::new(Vec::new())))),
    );
    sender
        .send("approvals", &approval())
        .await
        .expect("send after retries");
    assert_eq!(rec.seen.lock().expect("lock").len(), 4);

    let (url, rec) = server(&[400]).await;
    let sender = ServiceBusSender::new(
        fast(),
        &url,
        BusAuth::Entra(Arc::new(Tokens(Mutex::new(Vec::new())))),
    );
    assert!(matches!(
        sender.send("approvals", &approval()).await,
        Err(BusSendError::Send { .. })
    ));
    assert_eq!(
        rec.seen.lock().expect("lock").len(),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn a_refused_identity_is_told_which_role_to_assign() {
    let (url, _rec) = server(&[401]).await;
    let sender = ServiceBusSender::new(
        fast(),
        &url,
        BusAuth::Entra(Arc::new(Tokens(Mutex::new(Vec::new())))),
    );
    let e = sender
        .send("approvals", &approval())
        .await
        .expect_err("401")
        .to_string();
    assert!(e.contains("Azure Service Bus Data Sender"), "{e}");
}

#[tokio::test]
async fn fthub_approve_publishes_the_signed_approval_to_service_bus() {
    let (url, rec) = server(&[]).await;
    let out = tokio::process::Command::new(common::fthub())
        .args([
            "approve",
            "run-123",
            "--env",
            "test",
            "--approver",
            "quality-lead",
            "--reason",
            "looks good",
            "--key",
        ])
        .arg(common::repo().join("samples/keys/quality-lead.key"))
        .args([
            "--bus",
            &format!("Endpoint={url}/;SharedAccessKeyName=send;SharedAccessKey=k"),
        ])
        .output()
        .await
        .expect("fthub approve");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = rec.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    let (path, h, body) = &seen[0];
    assert_eq!(path, "/approvals/messages");
    let signed: Value = serde_json::from_str(body).expect("json body");
    assert_eq!(signed["run_id"], "run-123");
    assert_eq!(signed["environment"], "test");
    assert!(
        signed["signature"].as_str().is_some_and(|s| !s.is_empty()),
        "{signed}"
    );
    let bp: Value =
        serde_json::from_str(h["brokerproperties"].to_str().expect("ascii")).expect("json");
    assert_eq!(
        bp["MessageId"], signed["nonce"],
        "MessageId = nonce for duplicate detection"
    );
    assert_eq!(bp["CorrelationId"], "run-123");
    assert_eq!(bp["Label"], "approval.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fthub_deadletters_against_azure_reads_the_book_in_storage_and_replays_through_service_bus()
{
    if !common::external("Azurite") {
        return;
    }
    use fthub::adapters::StoreSpec;
    use fthub::services::deadletters::{self, Record};
    // The book as the recorder function wrote it in the pipeline's storage account.
    let azurite = common::azurite();
    let cs = azurite.connection_string.clone();
    let store = StoreSpec::parse(&cs, std::path::Path::new("."))
        .expect("spec")
        .open(
            fthub::adapters::azure::storage::DEFAULT_API_VERSION,
            fthub::adapters::azure::credential::Entra::from_env,
        )
        .expect("store");
    store.ensure_container("audit").await.expect("container");
    let queue = "training-completed".to_owned();
    let record = Record {
        queue: queue.clone(),
        key: Record::key_of(Some(9001), Some("m-9001"), "{}"),
        sequence: Some(9001),
        message_id: Some("m-9001".into()),
        run_id: Some("azure-s1-0123abcd".into()),
        body: r#"{"type":"training.completed","run_id":"azure-s1-0123abcd"}"#.into(),
        reason: "MaxDeliveryCountExceeded".into(),
        description: "HTTP 503 ten times".into(),
        recorded_at: chrono::Utc::now(),
        replays: vec![],
    };
    deadletters::record(store.as_ref(), &record)
        .await
        .expect("record");
    let (url, rec) = server(&[]).await;
    let cli = |args: Vec<String>| {
        let cs = cs.clone();
        async move {
            let out = tokio::process::Command::new(common::fthub())
                .args(&args)
                .args(["--storage", &cs])
                .output()
                .await
                .expect("fthub");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let listed = cli(vec![
        "deadletters".into(),
        "list".into(),
        "--queue".into(),
        queue.clone(),
        "--json".into(),
    ])
    .await;
    let listed: Value = serde_json::from_str(&listed).expect("json");
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .any(|d| d["sequence"] == 9001 && d["run_id"] == "azure-s1-0123abcd"),
        "{listed}"
    );
    let out = cli(vec![
        "deadletters".into(),
        "replay".into(),
        "9001".into(),
        "--queue".into(),
        queue.clone(),
        "--as".into(),
        "ops".into(),
        "--bus".into(),
        format!("Endpoint={url}/;SharedAccessKeyName=send;SharedAccessKey=k"),
    ])
    .await;
    assert!(out.contains("→ replayed"), "{out}");
    let seen = rec.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "one send");
    let (path, h, body) = &seen[0];
    assert_eq!(path, "/training-completed/messages");
    assert_eq!(body, &record.body, "the body exactly as dead-lettered");
    let bp: Value =
        serde_json::from_str(h["brokerproperties"].to_str().expect("ascii")).expect("json");
    assert_eq!(bp["CorrelationId"], "azure-s1-0123abcd");
    assert_ne!(
        bp["MessageId"], "m-9001",
        "a new message, not a duplicate to be dropped"
    );
    let after = deadletters::list(store.as_ref(), Some(&queue))
        .await
        .expect("list");
    let r = after
        .iter()
        .find(|r| r.sequence == Some(9001))
        .expect("kept");
    assert_eq!(r.replays.len(), 1);
    assert_eq!(r.replays[0].by, "ops");
}

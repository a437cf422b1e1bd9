//! Datasets stored with a customer-provided key (CPK). Azurite does not implement CPK
//! (it answers `FeatureNotSupported`), so the adapter is checked on the wire against a
//! loopback blob endpoint that enforces Azure's documented rules (409
//! `BlobUsesCustomerSpecifiedEncryption` without the key, the key's SHA-256 must match),
//! and the pipeline is checked with a store that enforces the same rule.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use fthub::adapters::azure::storage::{
    AzureBlobStore, DEFAULT_API_VERSION, parse_connection_string,
};
use fthub::adapters::azure::{Auth, Http, RetryPolicy, Secret, StaticToken};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::run::Stage;
use fthub::domain::topology::Topology;
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use fthub::ports::{
    BlobError, BlobProperties, BlobReader, BlobStore, Condition, CustomerKey, KeyError, KeySource,
    LeaseId,
};
use fthub::services::pipeline::{Pipeline, PipelineError};
use fthub::services::runs;
use sha2::Digest as _;

const KEY: [u8; 32] = *b"0123456789abcdef0123456789ABCDEF";
const OTHER_KEY: [u8; 32] = *b"ffffffffffffffffffffffffffffffff";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// One blob, stored with `KEY`; every request's CPK headers are recorded.
#[derive(Clone)]
struct CpkBlob {
    data: Arc<Vec<u8>>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

async fn blob(State(s): State<CpkBlob>, _uri: Uri, headers: HeaderMap) -> Response {
    s.seen.lock().expect("lock").push(headers.clone());
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let error = |status: StatusCode, code: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
        );
        (
            status,
            [
                ("x-ms-error-code", code),
                ("content-type", "application/xml"),
            ],
            body,
        )
            .into_response()
    };
    let Some(key) = h("x-ms-encryption-key") else {
        return error(StatusCode::CONFLICT, "BlobUsesCustomerSpecifiedEncryption");
    };
    let sent = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap_or_default();
    let want_sha = b64(&sha2::Sha256::digest(KEY));
    if h("x-ms-encryption-key-sha256").as_deref()
        != Some(b64(&sha2::Sha256::digest(&sent)).as_str())
    {
        return error(StatusCode::BAD_REQUEST, "InvalidHeaderValue");
    }
    if b64(&sha2::Sha256::digest(&sent)) != want_sha {
        return error(StatusCode::CONFLICT, "InvalidEncryptionKey");
    }
    let total = s.data.len();
    let range = h("x-ms-range").or_else(|| h("range"));
    let (start, end) = range
        .and_then(|r| {
            let r = r.strip_prefix("bytes=")?;
            let (a, b) = r.split_once('-')?;
            let a: usize = a.parse().ok()?;
            let b: usize = b.parse().ok().unwrap_or(total - 1);
            Some((a, b.min(total - 1)))
        })
        .unwrap_or((0, total - 1));
    let body = s.data[start..=end].to_vec();
    (
        StatusCode::PARTIAL_CONTENT,
        [
            ("content-range", format!("bytes {start}-{end}/{total}")),
            ("etag", "\"0x8DCCPK\"".to_owned()),
            ("last-modified", "Sat, 28 Nov 2026 10:00:00 GMT".to_owned()),
            ("x-ms-blob-type", "BlockBlob".to_owned()),
            ("x-ms-server-encrypted", "true".to_owned()),
            ("x-ms-encryption-key-sha256", want_sha),
            ("accept-ranges", "bytes".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn cpk_endpoint(data: Vec<u8>) -> (AzureBlobStore, CpkBlob) {
    let state = CpkBlob {
        data: Arc::new(data),
        seen: Arc::default(),
    };
    let app = Router::new().fallback(blob).with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    let cs = format!("BlobEndpoint=http://{addr}/acct;SharedAccessSignature=sv=2021-08-06&sig=x");
    let store = AzureBlobStore::new(
        parse_connection_string(&cs).expect("cs"),
        DEFAULT_API_VERSION,
    )
    .expect("store");
    (store, state)
}

#[tokio::test]
async fn the_azure_adapter_reads_a_cpk_blob_with_the_three_documented_headers() {
    use tokio::io::AsyncReadExt as _;
    let data: Vec<u8> = (0..9 * 1024 * 1024 + 3)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let (store, state) = cpk_endpoint(data.clone()).await;
    let key = CustomerKey::from_bytes(&KEY).expect("key");
    let (props, mut reader) = store
        .open_with_key("datasets", "acme/s1/train.jsonl", &key)
        .await
        .expect("open");
    assert_eq!(props.content_length, data.len() as u64);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.expect("read");
    assert!(got == data, "every byte of every partition");
    let seen = state.seen.lock().expect("lock");
    assert!(
        seen.len() >= 3,
        "a partitioned download: {} requests",
        seen.len()
    );
    for h in seen.iter() {
        assert_eq!(h["x-ms-encryption-key"], b64(&KEY));
        assert_eq!(
            h["x-ms-encryption-key-sha256"],
            b64(&sha2::Sha256::digest(KEY))
        );
        assert_eq!(h["x-ms-encryption-algorithm"], "AES256");
    }
}

#[tokio::test]
async fn reading_a_cpk_blob_without_its_key_is_a_terminal_encryption_key_error() {
    let (store, _) = cpk_endpoint(b"x".to_vec()).await;
    let err = store
        .open("datasets", "acme/s1/train.jsonl")
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, BlobError::EncryptionKey { .. }), "{err:?}");
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Terminal
    );
    let wrong = CustomerKey::from_bytes(&OTHER_KEY).expect("key");
    let err = store
        .open_with_key("datasets", "acme/s1/train.jsonl", &wrong)
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, BlobError::EncryptionKey { .. }), "{err:?}");
}

/// A store whose `datasets` blobs are readable only with `KEY`, as Azure enforces CPK.
#[derive(Debug)]
struct CpkStore(FsBlobStore);

fn check_key(container: &str, name: &str, key: Option<&CustomerKey>) -> Result<(), BlobError> {
    let want = b64(&sha2::Sha256::digest(KEY));
    match key {
        Some(k) if k.sha256_base64() == want => Ok(()),
        _ if container != "datasets" || name.ends_with("manifest.json") => Ok(()),
        _ => Err(BlobError::EncryptionKey {
            container: container.into(),
            name: name.into(),
            reason: "customer-provided key refused (BlobUsesCustomerSpecifiedEncryption)".into(),
        }),
    }
}

#[async_trait]
impl BlobStore for CpkStore {
    async fn get(&self, c: &str, n: &str) -> Result<(BlobProperties, Vec<u8>), BlobError> {
        check_key(c, n, None)?;
        self.0.get(c, n).await
    }
    async fn open(&self, c: &str, n: &str) -> Result<(BlobProperties, BlobReader), BlobError> {
        check_key(c, n, None)?;
        self.0.open(c, n).await
    }
    async fn open_with_key(
        &self,
        c: &str,
        n: &str,
        k: &CustomerKey,
    ) -> Result<(BlobProperties, BlobReader), BlobError> {
        check_key(c, n, Some(k))?;
        self.0.open(c, n).await
    }
    async fn properties(&self, c: &str, n: &str) -> Result<BlobProperties, BlobError> {
        self.0.properties(c, n).await
    }
    async fn put(
        &self,
        c: &str,
        n: &str,
        b: &[u8],
        cond: Condition,
    ) -> Result<BlobProperties, BlobError> {
        self.0.put(c, n, b, cond).await
    }
    async fn put_file(
        &self,
        c: &str,
        n: &str,
        f: &std::path::Path,
        cond: Condition,
    ) -> Result<BlobProperties, BlobError> {
        self.0.put_file(c, n, f, cond).await
    }
    async fn list(&self, c: &str, p: &str) -> Result<Vec<BlobProperties>, BlobError> {
        self.0.list(c, p).await
    }
    async fn delete(&self, c: &str, n: &str, cond: Condition) -> Result<bool, BlobError> {
        self.0.delete(c, n, cond).await
    }
    async fn ensure_container(&self, c: &str) -> Result<(), BlobError> {
        self.0.ensure_container(c).await
    }
    async fn acquire_lease(&self, c: &str, n: &str, s: u32) -> Result<Option<LeaseId>, BlobError> {
        self.0.acquire_lease(c, n, s).await
    }
    async fn renew_lease(&self, c: &str, n: &str, l: &LeaseId) -> Result<(), BlobError> {
        self.0.renew_lease(c, n, l).await
    }
    async fn release_lease(&self, c: &str, n: &str, l: &LeaseId) -> Result<(), BlobError> {
        self.0.release_lease(c, n, l).await
    }
}

#[derive(Debug)]
struct Vault {
    key: [u8; 32],
    fetched: Mutex<Vec<String>>,
}

#[async_trait]
impl KeySource for Vault {
    async fn customer_key(&self, reference: &str) -> Result<CustomerKey, KeyError> {
        self.fetched
            .lock()
            .expect("lock")
            .push(reference.to_owned());
        CustomerKey::from_bytes(&self.key).map_err(|r| KeyError::Invalid {
            reference: reference.into(),
            reason: r.into(),
        })
    }
}

const REFERENCE: &str = "https://kv-fthub.vault.azure.net/secrets/datasets-cpk";

async fn pipeline(dir: &std::path::Path, vault: Option<Arc<Vault>>) -> Pipeline {
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
    let store: Arc<dyn BlobStore> = Arc::new(CpkStore(FsBlobStore::new(dir.join("storage"))));
    let http = Http::new(RetryPolicy {
        budget: Duration::from_secs(10),
        min_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    });
    let mut p = fthub::app::pipeline(
        store,
        Topology::local(&emulator),
        &http,
        &Auth::ApiKey(Secret::new("k")),
        Arc::new(StaticToken(Secret::new("t"))),
        Duration::from_millis(10),
    );
    p.file_wait = Duration::from_secs(5);
    p.keys = vault.map(|v| v as Arc<dyn KeySource>);
    p
}

async fn submit(p: &Pipeline) {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/classification");
    for f in ["train.jsonl", "eval.jsonl"] {
        let bytes = std::fs::read(sample.join(f)).expect("read");
        p.store
            .put(
                "datasets",
                &format!("acme/enc/{f}"),
                &bytes,
                Condition::None,
            )
            .await
            .expect("put");
    }
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sample.join("manifest.json")).expect("manifest"))
            .expect("json");
    m["encryption_key"] = serde_json::json!(REFERENCE);
    p.store
        .put(
            "datasets",
            "acme/enc/manifest.json",
            m.to_string().as_bytes(),
            Condition::None,
        )
        .await
        .expect("put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_stored_with_a_customer_key_is_validated_and_uploaded_with_that_key_only_in_memory()
 {
    let dir = tempfile::tempdir().expect("tmp");
    let vault = Arc::new(Vault {
        key: KEY,
        fetched: Mutex::new(Vec::new()),
    });
    let p = pipeline(dir.path(), Some(vault.clone())).await;
    submit(&p).await;
    p.on_dataset_blob("acme/enc/manifest.json")
        .await
        .expect("start");
    let run = runs::list(p.store.as_ref())
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("run");
    assert!(
        run.validation.as_ref().is_some_and(|v| v.accepted),
        "validated through the key: {:?}",
        run.validation
    );
    assert_eq!(
        run.stage,
        Stage::Training,
        "uploaded to the Hub and training"
    );
    assert!(!vault.fetched.lock().expect("lock").is_empty());
    assert!(
        vault
            .fetched
            .lock()
            .expect("lock")
            .iter()
            .all(|r| r == REFERENCE)
    );
    // The key itself is nowhere in what the pipeline wrote (run, audit, reports).
    let key_text = b64(&KEY);
    for entry in crate::common::files_under(&dir.path().join("storage")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).expect("read")).into_owned();
        assert!(
            !text.contains(&key_text),
            "the key leaked into {}",
            entry.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_key_submission_is_refused_clearly_when_no_key_source_is_configured_or_the_key_is_wrong()
 {
    let dir = tempfile::tempdir().expect("tmp");
    let p = pipeline(dir.path(), None).await;
    submit(&p).await;
    let err = p
        .on_dataset_blob("acme/enc/manifest.json")
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            PipelineError::Refused {
                kind: "encryption_key_unavailable",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(REFERENCE), "{err}");

    let dir = tempfile::tempdir().expect("tmp");
    let p = pipeline(
        dir.path(),
        Some(Arc::new(Vault {
            key: OTHER_KEY,
            fetched: Mutex::new(Vec::new()),
        })),
    )
    .await;
    submit(&p).await;
    let err = p
        .on_dataset_blob("acme/enc/manifest.json")
        .await
        .expect_err("refused");
    assert_eq!(fthub::error::Classify::kind(&err), "encryption_key");
    assert_eq!(
        fthub::error::Classify::class(&err),
        fthub::error::ErrorClass::Terminal
    );
}

//! One conformance suite for the `BlobStore` port, run against the filesystem store and
//! against Azurite through the official Azure SDK adapter. Both must behave the same for
//! everything the pipeline relies on: ETags, conditional writes under contention, listing,
//! leases, missing blobs, awkward names, and streaming a large blob in bounded memory.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use fthub::adapters::azure::storage::{
    AzureBlobStore, DEFAULT_API_VERSION, parse_connection_string,
};
use fthub::adapters::local::blob::FsBlobStore;
use fthub::ports::{BlobError, BlobStore, Condition};
use tokio::io::AsyncReadExt as _;

/// A store plus a container of its own, so tests can share one Azurite.
struct Case {
    store: Arc<dyn BlobStore>,
    container: String,
    _dir: Option<tempfile::TempDir>,
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn fs() -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FsBlobStore::new(dir.path().join("storage")));
    let container = unique("c");
    store.ensure_container(&container).await.expect("container");
    Case {
        store,
        container,
        _dir: Some(dir),
    }
}

async fn azurite() -> Case {
    let az = common::azurite();
    let target = parse_connection_string(&az.connection_string).expect("connection string");
    let store = Arc::new(AzureBlobStore::new(target, DEFAULT_API_VERSION).expect("client"));
    let container = unique("c");
    store.ensure_container(&container).await.expect("container");
    Case {
        store,
        container,
        _dir: None,
    }
}

/// Runs each scenario against both stores as separately named tests.
macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod filesystem {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() { super::$scenario(super::fs().await).await })*
        }
        mod azurite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $scenario() {
                if !crate::common::external("Azurite") {
                    return;
                }
                super::$scenario(super::azurite().await).await
            })*
        }
    };
}

conformance!(
    every_write_gets_a_new_etag_that_reads_and_listings_agree_on,
    conditional_create_and_update_report_typed_conflicts,
    concurrent_conditional_writers_have_exactly_one_winner,
    listing_by_prefix_is_complete_and_in_name_order,
    a_lease_has_one_holder_until_released,
    an_expired_lease_can_be_taken_by_another_holder,
    missing_blobs_are_typed_not_found_errors,
    names_with_spaces_and_unicode_round_trip,
    creating_a_container_twice_is_harmless,
    streamed_reads_return_every_byte_of_a_multi_partition_blob,
    escaping_names_are_refused_before_any_request,
    a_local_file_uploads_by_streaming_and_reads_back_identical,
);

async fn every_write_gets_a_new_etag_that_reads_and_listings_agree_on(c: Case) {
    let s = c.store.as_ref();
    let a = s
        .put(&c.container, "x.json", b"{}", Condition::None)
        .await
        .expect("put");
    let b = s
        .put(&c.container, "x.json", b"{}", Condition::None)
        .await
        .expect("put");
    assert_ne!(a.etag, b.etag, "identical bytes still make a new version");
    assert_eq!(
        s.properties(&c.container, "x.json")
            .await
            .expect("props")
            .etag,
        b.etag
    );
    let (got, bytes) = s.get(&c.container, "x.json").await.expect("get");
    assert_eq!(
        (got.etag, bytes, got.content_length),
        (b.etag.clone(), b"{}".to_vec(), 2)
    );
    let listed = s.list(&c.container, "").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].etag, b.etag);
    assert_eq!(listed[0].content_length, 2);
}

async fn conditional_create_and_update_report_typed_conflicts(c: Case) {
    let s = c.store.as_ref();
    let k = &c.container;
    let first = s
        .put(k, "r.json", b"1", Condition::IfNotExists)
        .await
        .expect("create");
    assert!(matches!(
        s.put(k, "r.json", b"2", Condition::IfNotExists).await,
        Err(BlobError::AlreadyExists { .. })
    ));
    let second = s
        .put(k, "r.json", b"2", Condition::IfMatch(first.etag.clone()))
        .await
        .expect("update with the current ETag");
    assert!(matches!(
        s.put(k, "r.json", b"3", Condition::IfMatch(first.etag.clone()))
            .await,
        Err(BlobError::PreconditionFailed { .. })
    ));
    assert_eq!(
        s.get(k, "r.json").await.expect("get").1,
        b"2",
        "the stale write changed nothing"
    );
    assert!(matches!(
        s.delete(k, "r.json", Condition::IfMatch(first.etag)).await,
        Err(BlobError::PreconditionFailed { .. })
    ));
    assert!(
        s.delete(k, "r.json", Condition::IfMatch(second.etag.clone()))
            .await
            .expect("delete")
    );
    assert!(
        !s.delete(k, "r.json", Condition::None)
            .await
            .expect("delete again")
    );
    assert!(matches!(
        s.put(k, "r.json", b"4", Condition::IfMatch(second.etag))
            .await,
        Err(BlobError::NotFound { .. })
    ));
}

async fn concurrent_conditional_writers_have_exactly_one_winner(c: Case) {
    let creators: Vec<_> = (0..12)
        .map(|i| {
            let (s, k) = (c.store.clone(), c.container.clone());
            tokio::spawn(async move {
                s.put(
                    &k,
                    "one.json",
                    format!("{i}").as_bytes(),
                    Condition::IfNotExists,
                )
                .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in creators {
        match t.await.expect("join") {
            Ok(_) => wins += 1,
            Err(BlobError::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one creator wins");
    let base = c
        .store
        .properties(&c.container, "one.json")
        .await
        .expect("props")
        .etag;
    let updaters: Vec<_> = (0..12)
        .map(|i| {
            let (s, k, e) = (c.store.clone(), c.container.clone(), base.clone());
            tokio::spawn(async move {
                s.put(
                    &k,
                    "one.json",
                    format!("u{i}").as_bytes(),
                    Condition::IfMatch(e),
                )
                .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in updaters {
        match t.await.expect("join") {
            Ok(p) => won.push(p),
            Err(BlobError::PreconditionFailed { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one updater of the same version wins");
    assert_eq!(
        c.store
            .properties(&c.container, "one.json")
            .await
            .expect("props")
            .etag,
        won[0].etag,
        "the winner's write is the one stored"
    );
}

async fn listing_by_prefix_is_complete_and_in_name_order(c: Case) {
    let s = c.store.as_ref();
    let mut want = Vec::new();
    for i in (0..25).rev() {
        let n = format!("runs/{i:03}.json");
        s.put(&c.container, &n, b"x", Condition::None)
            .await
            .expect("put");
        want.push(n);
    }
    for n in ["inventory.json", "runsheet.json", "runs-old/a.json"] {
        s.put(&c.container, n, b"x", Condition::None)
            .await
            .expect("put");
    }
    want.sort();
    let got: Vec<_> = s
        .list(&c.container, "runs/")
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.list(&c.container, "").await.expect("list all").len(), 28);
    assert!(
        s.list(&unique("missing"), "")
            .await
            .expect("missing container")
            .is_empty()
    );
}

async fn a_lease_has_one_holder_until_released(c: Case) {
    let s = c.store.as_ref();
    let k = &c.container;
    assert!(matches!(
        s.acquire_lease(k, "locks/absent", 15).await,
        Err(BlobError::NotFound { .. })
    ));
    s.put(k, "locks/timer", b"", Condition::None)
        .await
        .expect("lock blob");
    let held = s
        .acquire_lease(k, "locks/timer", 15)
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(
        s.acquire_lease(k, "locks/timer", 15).await.expect("second"),
        None
    );
    s.renew_lease(k, "locks/timer", &held).await.expect("renew");
    let stranger = fthub::ports::LeaseId(uuid::Uuid::new_v4().to_string());
    assert!(matches!(
        s.release_lease(k, "locks/timer", &stranger).await,
        Err(BlobError::Leased { .. })
    ));
    assert!(matches!(
        s.renew_lease(k, "locks/timer", &stranger).await,
        Err(BlobError::Leased { .. })
    ));
    s.release_lease(k, "locks/timer", &held)
        .await
        .expect("release");
    let next = s
        .acquire_lease(k, "locks/timer", 15)
        .await
        .expect("acquire")
        .expect("free again");
    assert_ne!(next, held);
}

async fn an_expired_lease_can_be_taken_by_another_holder(c: Case) {
    let s = c.store.as_ref();
    let k = &c.container;
    s.put(k, "locks/expiring", b"", Condition::None)
        .await
        .expect("lock blob");
    let first = s
        .acquire_lease(k, "locks/expiring", 15)
        .await
        .expect("acquire")
        .expect("free");
    tokio::time::sleep(Duration::from_millis(16_500)).await;
    let second = s
        .acquire_lease(k, "locks/expiring", 15)
        .await
        .expect("acquire")
        .expect("the first lease expired");
    assert_ne!(first, second);
    assert!(matches!(
        s.renew_lease(k, "locks/expiring", &first).await,
        Err(BlobError::Leased { .. })
    ));
}

async fn missing_blobs_are_typed_not_found_errors(c: Case) {
    let s = c.store.as_ref();
    let k = &c.container;
    assert!(matches!(
        s.get(k, "nope").await,
        Err(BlobError::NotFound { .. })
    ));
    assert!(matches!(
        s.open(k, "nope").await,
        Err(BlobError::NotFound { .. })
    ));
    assert!(matches!(
        s.properties(k, "nope").await,
        Err(BlobError::NotFound { .. })
    ));
    assert!(!s.delete(k, "nope", Condition::None).await.expect("delete"));
    let other = unique("absent");
    assert!(matches!(
        s.get(&other, "x").await,
        Err(BlobError::NotFound { .. })
    ));
}

async fn names_with_spaces_and_unicode_round_trip(c: Case) {
    let s = c.store.as_ref();
    let names = [
        "datasets/team a/sub mission/train set.jsonl",
        "datasets/équipe/données 日本語/ü+%20&=.jsonl",
    ];
    for (i, n) in names.iter().enumerate() {
        s.put(
            &c.container,
            n,
            format!("{i}").as_bytes(),
            Condition::IfNotExists,
        )
        .await
        .expect("put");
        assert_eq!(
            s.get(&c.container, n).await.expect("get").1,
            format!("{i}").as_bytes()
        );
    }
    let listed: Vec<_> = s
        .list(&c.container, "datasets/")
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    let mut want: Vec<_> = names.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    assert_eq!(listed, want);
}

async fn creating_a_container_twice_is_harmless(c: Case) {
    c.store.ensure_container(&c.container).await.expect("again");
    c.store
        .put(&c.container, "a", b"1", Condition::None)
        .await
        .expect("put");
    c.store
        .ensure_container(&c.container)
        .await
        .expect("and again");
    assert_eq!(c.store.get(&c.container, "a").await.expect("kept").1, b"1");
}

async fn streamed_reads_return_every_byte_of_a_multi_partition_blob(c: Case) {
    // 9 MiB + 7 bytes: three partitions of the Azure adapter, the last one partial.
    let data: Vec<u8> = (0..9 * 1024 * 1024 + 7)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let written = c
        .store
        .put(&c.container, "big.bin", &data, Condition::None)
        .await
        .expect("put");
    let (props, mut reader) = c.store.open(&c.container, "big.bin").await.expect("open");
    assert_eq!(props.content_length, data.len() as u64);
    assert_eq!(props.etag, written.etag);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.expect("read");
    assert!(got == data, "streamed bytes differ from what was written");
    c.store
        .put(&c.container, "empty.bin", b"", Condition::None)
        .await
        .expect("put empty");
    let (props, mut reader) = c
        .store
        .open(&c.container, "empty.bin")
        .await
        .expect("open empty");
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.expect("read empty");
    assert_eq!((props.content_length, got.len()), (0, 0));
}

async fn escaping_names_are_refused_before_any_request(c: Case) {
    let s = c.store.as_ref();
    for bad in ["../etc/passwd", "/abs", "a//b", ""] {
        assert!(
            matches!(
                s.get(&c.container, bad).await,
                Err(BlobError::InvalidName { .. })
            ),
            "{bad:?} must be refused"
        );
    }
    assert!(matches!(
        s.put("..", "x", b"", Condition::None).await,
        Err(BlobError::InvalidName { .. })
    ));
}

async fn a_local_file_uploads_by_streaming_and_reads_back_identical(c: Case) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("train.jsonl");
    // 9 MiB + 5 bytes: three upload partitions, the last one partial.
    let data: Vec<u8> = (0..9 * 1024 * 1024 + 5)
        .map(|i: u32| (i % 253) as u8)
        .collect();
    std::fs::write(&path, &data).expect("write");
    let written = c
        .store
        .put_file(
            &c.container,
            "big/train.jsonl",
            &path,
            Condition::IfNotExists,
        )
        .await
        .expect("upload");
    assert_eq!(written.content_length, data.len() as u64);
    assert!(matches!(
        c.store
            .put_file(
                &c.container,
                "big/train.jsonl",
                &path,
                Condition::IfNotExists
            )
            .await,
        Err(BlobError::AlreadyExists { .. })
    ));
    let (props, bytes) = c
        .store
        .get(&c.container, "big/train.jsonl")
        .await
        .expect("get");
    assert_eq!(props.etag, written.etag);
    assert!(bytes == data, "the uploaded bytes differ");
}

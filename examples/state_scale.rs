//! State-at-scale benchmark: seeds RUNS runs (default 10,000) with 15 transitions each in the
//! local store, ACTIVE of them still owed a step, then measures what the reconciler's index
//! read costs (blobs listed and read) and the latency of the Status views `runs` (first page)
//! and `audit/{run}`. Prints one JSON line.
//!
//! `cargo run --release --example state_scale -- [RUNS] [ACTIVE]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fthub::adapters::local::blob::FsBlobStore;
use fthub::domain::manifest::Manifest;
use fthub::domain::run::{NewRun, Run, Stage, Step, Transition};
use fthub::ports::{BlobError, BlobProperties, BlobReader, BlobStore, Condition, LeaseId};
use fthub::services::{runs, status};

/// Counts the reads that reach the store.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn BlobStore>,
    gets: AtomicUsize,
    lists: AtomicUsize,
    listed: AtomicUsize,
}

#[async_trait]
impl BlobStore for Counting {
    async fn get(&self, c: &str, n: &str) -> Result<(BlobProperties, Vec<u8>), BlobError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(c, n).await
    }
    async fn open(&self, c: &str, n: &str) -> Result<(BlobProperties, BlobReader), BlobError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.open(c, n).await
    }
    async fn properties(&self, c: &str, n: &str) -> Result<BlobProperties, BlobError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.properties(c, n).await
    }
    async fn put(
        &self,
        c: &str,
        n: &str,
        b: &[u8],
        cond: Condition,
    ) -> Result<BlobProperties, BlobError> {
        self.inner.put(c, n, b, cond).await
    }
    async fn put_file(
        &self,
        c: &str,
        n: &str,
        f: &std::path::Path,
        cond: Condition,
    ) -> Result<BlobProperties, BlobError> {
        self.inner.put_file(c, n, f, cond).await
    }
    async fn list(&self, c: &str, p: &str) -> Result<Vec<BlobProperties>, BlobError> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let l = self.inner.list(c, p).await?;
        self.listed.fetch_add(l.len(), Ordering::Relaxed);
        Ok(l)
    }
    async fn delete(&self, c: &str, n: &str, cond: Condition) -> Result<bool, BlobError> {
        self.inner.delete(c, n, cond).await
    }
    async fn ensure_container(&self, c: &str) -> Result<(), BlobError> {
        self.inner.ensure_container(c).await
    }
    async fn acquire_lease(&self, c: &str, n: &str, s: u32) -> Result<Option<LeaseId>, BlobError> {
        self.inner.acquire_lease(c, n, s).await
    }
    async fn renew_lease(&self, c: &str, n: &str, l: &LeaseId) -> Result<(), BlobError> {
        self.inner.renew_lease(c, n, l).await
    }
    async fn release_lease(&self, c: &str, n: &str, l: &LeaseId) -> Result<(), BlobError> {
        self.inner.release_lease(c, n, l).await
    }
}

impl Counting {
    fn take(&self) -> (usize, usize, usize) {
        (
            self.gets.swap(0, Ordering::Relaxed),
            self.lists.swap(0, Ordering::Relaxed),
            self.listed.swap(0, Ordering::Relaxed),
        )
    }
}

fn run(i: usize, active: bool, t0: chrono::DateTime<chrono::Utc>) -> Run {
    let id = format!("bench-s{i:05}-{i:08x}");
    let created = t0 + chrono::Duration::seconds(i as i64);
    let stages = [
        Stage::Uploading,
        Stage::Training,
        Stage::Evaluating,
        Stage::Evaluated,
        Stage::Dev,
    ];
    let history = (0..15)
        .map(|k| Transition {
            time: created + chrono::Duration::seconds(k),
            actor: "pipeline".into(),
            run_id: id.clone(),
            project: format!("p{}", i % 7),
            from: None,
            to: Step::Stage(stages[(k as usize) % stages.len()]),
            detail: format!("step {k}"),
            approval: None,
        })
        .collect();
    let mut r = Run::new(
        NewRun {
            id: id.clone(),
            project: format!("p{}", i % 7),
            submission: format!("s{i:05}"),
            submitted_by: "bench".into(),
            manifest: Manifest::bare("train.jsonl"),
            base_model: "gpt-4.1-mini-2025-04-14".into(),
            data_digest: "0".repeat(64),
            files: Vec::new(),
        },
        if active { Stage::Training } else { Stage::Dev },
        created,
    );
    r.history = history;
    r
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(10_000);
    let active = args.get(1).copied().unwrap_or(100).min(total);
    let dir = tempfile::tempdir().expect("tmp");
    let fs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(dir.path()));
    let t0 = chrono::Utc::now() - chrono::Duration::days(30);
    let seeding = Instant::now();
    // Spread the active runs through the history, not at its end.
    let step = (total / active.max(1)).max(1);
    for chunk in (0..total).collect::<Vec<_>>().chunks(64) {
        let writes = chunk.iter().map(|&i| {
            let fs = fs.clone();
            async move {
                runs::create(
                    fs.as_ref(),
                    &run(i, active > 0 && i % step == 0 && i / step < active, t0),
                )
                .await
                .expect("create")
            }
        });
        futures_util::future::join_all(writes).await;
    }
    let seed_secs = seeding.elapsed().as_secs_f64();
    let store = Counting {
        inner: fs,
        gets: AtomicUsize::new(0),
        lists: AtomicUsize::new(0),
        listed: AtomicUsize::new(0),
    };
    runs::ensure_indexed(&store).await.expect("indexed");
    store.take();
    let t = Instant::now();
    let (owed, _) = runs::active(&store).await.expect("active");
    let tick = t.elapsed();
    let (tick_reads, tick_lists, tick_listed) = store.take();
    let query = BTreeMap::new();
    let t = Instant::now();
    let (code, page) = status::view(&store, None, "runs", &query)
        .await
        .expect("runs");
    let runs_ms = ms(t.elapsed());
    assert_eq!(code, 200);
    let (page_reads, _, page_listed) = store.take();
    let newest = page["runs"][0]["id"].as_str().expect("a run").to_owned();
    let t = Instant::now();
    let (code, trail) = status::view(&store, None, &format!("audit/{newest}"), &query)
        .await
        .expect("audit");
    let audit_ms = ms(t.elapsed());
    assert_eq!(code, 200);
    assert_eq!(trail["audit"].as_array().map(Vec::len), Some(15));
    let (audit_reads, _, _) = store.take();
    println!(
        "{}",
        serde_json::json!({
            "runs": total, "transitions_per_run": 15, "active": owed.len(), "seed_seconds": seed_secs,
            "tick_index_read_ms": ms(tick), "tick_blobs_read": tick_reads, "tick_listings": tick_lists, "tick_names_listed": tick_listed,
            "status_runs_first_page_ms": runs_ms, "status_runs_blobs_read": page_reads, "status_runs_names_listed": page_listed,
            "status_audit_run_ms": audit_ms, "status_audit_run_blobs_read": audit_reads,
        })
    );
}

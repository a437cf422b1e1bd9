//! Run documents, their indexes and the audit trail in storage.
//!
//! A run is `state/runs/{run_id}.json`, changed only by ETag-conditional writes: an update
//! re-reads and re-applies on a conflict, so concurrent handlers never lose a change. Two
//! indexes keep timers and views from reading every run ever made:
//!
//! - `state/index/runs/{newest-first key}-{run_id}`: written once when the run is created;
//!   names sort newest first, so a page of runs is one listing and `limit` reads.
//! - `state/active/{run_id}`: present while the pipeline owes the run a step
//!   ([`Run::is_active`]). Written *before* a run becomes active and removed *after* it
//!   stops being so, so a crash leaves at worst a stale marker, which the reconciler drops.
//!
//! Each transition is written once to `audit/runs/{run_id}/{index}.json` (the run's trail,
//! read by prefix) and `audit/{yyyy-mm-dd}/{run_id}-{index}.json` (the daily trail), both
//! with `If-None-Match: *`, so a retried step never writes the same audit line twice.

use chrono::{DateTime, Utc};

use crate::domain::run::{Run, Transition};
use crate::ports::{BlobError, BlobProperties, BlobStore, Condition, ETag};

/// Container of run documents and the inventory.
pub const STATE: &str = "state";
/// Container of audit lines.
pub const AUDIT: &str = "audit";
/// Container of reports.
pub const REPORTS: &str = "reports";
const MAX_CONFLICT_RETRIES: usize = 8;
const INDEX: &str = "index/runs/";
const ACTIVE: &str = "active/";
/// Present once every run written before the indexes existed has been indexed.
const INDEXED: &str = "index/indexed-v1";

fn run_blob(id: &str) -> String {
    format!("runs/{id}.json")
}

fn active_blob(id: &str) -> String {
    format!("{ACTIVE}{id}")
}

/// A name that sorts newest first: milliseconds until the year 5138, zero-padded.
fn index_blob(created_at: DateTime<Utc>, id: &str) -> String {
    const FAR: i64 = 99_999_999_999_999;
    format!(
        "{INDEX}{:014}-{id}",
        FAR - created_at.timestamp_millis().max(0)
    )
}

fn decode(id: &str, bytes: &[u8]) -> Result<Run, BlobError> {
    serde_json::from_slice(bytes).map_err(|e| BlobError::Io {
        what: format!("decode run {id}"),
        source: std::io::Error::other(e),
    })
}

/// Reads a run.
///
/// # Errors
/// Storage failures; a document that does not decode.
pub async fn get(store: &dyn BlobStore, id: &str) -> Result<Option<(Run, ETag)>, BlobError> {
    match store.get(STATE, &run_blob(id)).await {
        Ok((p, bytes)) => Ok(Some((decode(id, &bytes)?, p.etag))),
        Err(BlobError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn mark_active(store: &dyn BlobStore, id: &str) -> Result<(), BlobError> {
    store
        .put(STATE, &active_blob(id), b"", Condition::None)
        .await
        .map(|_| ())
}

/// Drops a run's active marker (the reconciler's clean-up of a stale one, too).
///
/// # Errors
/// Storage failures.
pub async fn unmark_active(store: &dyn BlobStore, id: &str) -> Result<(), BlobError> {
    store
        .delete(STATE, &active_blob(id), Condition::None)
        .await
        .map(|_| ())
}

/// Writes a run's index entry, and its active marker when it is active.
async fn index(store: &dyn BlobStore, run: &Run) -> Result<(), BlobError> {
    store
        .put(
            STATE,
            &index_blob(run.created_at, &run.id),
            b"",
            Condition::None,
        )
        .await?;
    if run.is_active() {
        mark_active(store, &run.id).await?;
    }
    Ok(())
}

/// Creates a run; `false` when it already exists (a redelivered event).
///
/// # Errors
/// Storage failures.
pub async fn create(store: &dyn BlobStore, run: &Run) -> Result<bool, BlobError> {
    // Indexes first: an index entry or marker without its run is skipped and cleaned; a run
    // without them would be invisible.
    index(store, run).await?;
    let bytes = serde_json::to_vec_pretty(run).unwrap_or_default();
    match store
        .put(STATE, &run_blob(&run.id), &bytes, Condition::IfNotExists)
        .await
    {
        Ok(_) => {
            audit(store, run, 0).await?;
            Ok(true)
        }
        Err(BlobError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why an update did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    /// Storage failed (or conflicts did not settle).
    #[error(transparent)]
    Store(#[from] BlobError),
    /// No such run.
    #[error("run {0} does not exist")]
    Missing(String),
    /// The change refused itself.
    #[error(transparent)]
    Refused(E),
}

/// Applies `change` to the current run and writes it back under its ETag, retrying on
/// conflicts. New history entries are written to the audit trail; the active marker
/// follows [`Run::is_active`].
///
/// # Errors
/// See [`UpdateError`].
pub async fn update<E>(
    store: &dyn BlobStore,
    id: &str,
    mut change: impl FnMut(&mut Run) -> Result<(), E>,
) -> Result<Run, UpdateError<E>> {
    for _ in 0..MAX_CONFLICT_RETRIES {
        let (mut run, etag) = get(store, id)
            .await?
            .ok_or_else(|| UpdateError::Missing(id.to_owned()))?;
        let before = run.history.len();
        let was_active = run.is_active();
        let original = serde_json::to_vec(&run).unwrap_or_default();
        change(&mut run).map_err(UpdateError::Refused)?;
        // Nothing changed: no write, so a redelivered message costs one read.
        if serde_json::to_vec(&run).unwrap_or_default() == original {
            return Ok(run);
        }
        let active = run.is_active();
        if active && !was_active {
            mark_active(store, id).await?;
        }
        let bytes = serde_json::to_vec_pretty(&run).unwrap_or_default();
        match store
            .put(STATE, &run_blob(id), &bytes, Condition::IfMatch(etag))
            .await
        {
            Ok(_) => {
                if was_active && !active {
                    unmark_active(store, id).await?;
                }
                audit(store, &run, before).await?;
                return Ok(run);
            }
            Err(BlobError::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(BlobError::PreconditionFailed {
        container: STATE.into(),
        name: run_blob(id),
    }
    .into())
}

/// Writes history entries from `from` on (idempotently), to the run's trail and the day's.
async fn audit(store: &dyn BlobStore, run: &Run, from: usize) -> Result<(), BlobError> {
    for (i, t) in run.history.iter().enumerate().skip(from) {
        let bytes = serde_json::to_vec(t).unwrap_or_default();
        let per_run = format!("runs/{}/{i:05}.json", t.run_id);
        let daily = format!("{}/{}-{i:05}.json", t.time.format("%Y-%m-%d"), t.run_id);
        for name in [per_run, daily] {
            match store
                .put(AUDIT, &name, &bytes, Condition::IfNotExists)
                .await
            {
                Ok(_) | Err(BlobError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Reads runs by id, 16 at a time, in the order given; `None` where the document is gone
/// (an index entry written by a create that never finished).
async fn read_many(store: &dyn BlobStore, ids: Vec<String>) -> Result<Vec<Option<Run>>, BlobError> {
    use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
    stream::iter(ids)
        .map(|id| async move { get(store, &id).await.map(|r| r.map(|(run, _)| run)) })
        .buffered(16)
        .try_collect()
        .await
}

/// Indexes the runs written before the indexes existed, once per store.
///
/// # Errors
/// Storage failures.
pub async fn ensure_indexed(store: &dyn BlobStore) -> Result<(), BlobError> {
    match store.properties(STATE, INDEXED).await {
        Ok(_) => return Ok(()),
        Err(BlobError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    for p in store.list(STATE, "runs/").await? {
        let (_, bytes) = match store.get(STATE, &p.name).await {
            Ok(v) => v,
            Err(BlobError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let Ok(run) = serde_json::from_slice::<Run>(&bytes) else {
            continue;
        };
        index(store, &run).await?;
        let audited = store.list(AUDIT, &format!("runs/{}/", run.id)).await?.len();
        audit(store, &run, audited).await?;
    }
    store
        .put(STATE, INDEXED, b"", Condition::None)
        .await
        .map(|_| ())
}

/// The runs the pipeline owes a step, as their active markers say (the ids of markers whose
/// run is no longer active, or gone for 15 minutes, are returned too, so the caller can drop
/// them: see
/// [`unmark_active`]). Reads one listing and one document per active run.
///
/// # Errors
/// Storage failures.
pub async fn active(store: &dyn BlobStore) -> Result<(Vec<Run>, Vec<String>), BlobError> {
    ensure_indexed(store).await?;
    let markers: Vec<(String, DateTime<Utc>)> = store
        .list(STATE, ACTIVE)
        .await?
        .into_iter()
        .filter_map(|p| {
            p.name
                .strip_prefix(ACTIVE)
                .map(|id| (id.to_owned(), p.last_modified))
        })
        .collect();
    let ids = markers.iter().map(|(id, _)| id.clone()).collect();
    let docs = read_many(store, ids).await?;
    let mut runs = Vec::new();
    let mut stale = Vec::new();
    // A marker whose run does not exist yet may belong to a create in flight (the marker is
    // written first): stale only once it is older than any invocation.
    let orphaned = Utc::now() - chrono::Duration::minutes(15);
    for ((id, marked), doc) in markers.into_iter().zip(docs) {
        match doc {
            Some(run) if run.is_active() => runs.push(run),
            Some(_) => stale.push(id),
            None if marked < orphaned => stale.push(id),
            None => {}
        }
    }
    Ok((runs, stale))
}

/// One page of runs, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The runs.
    pub runs: Vec<Run>,
    /// Pass back to get the next page; `None` on the last.
    pub continuation: Option<String>,
}

/// Filters on a listing of runs.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this project's.
    pub project: Option<String>,
    /// Only runs at this stage.
    pub stage: Option<crate::domain::run::Stage>,
    /// Only runs created at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl Filter {
    fn keeps(&self, r: &Run) -> bool {
        self.project.as_ref().is_none_or(|p| &r.project == p)
            && self.stage.is_none_or(|s| r.stage == s)
            && self.since.is_none_or(|t| r.created_at >= t)
    }
}

/// Up to `limit` runs, newest first, after `continuation` (from a previous page). Reads one
/// listing of the index and only the documents it returns (more when a filter skips some).
///
/// # Errors
/// Storage failures.
pub async fn page(
    store: &dyn BlobStore,
    filter: &Filter,
    limit: usize,
    continuation: Option<&str>,
) -> Result<Page, BlobError> {
    ensure_indexed(store).await?;
    let limit = limit.clamp(1, 1000);
    let names: Vec<BlobProperties> = store.list(STATE, INDEX).await?;
    let start = continuation.map_or(0, |c| names.partition_point(|p| p.name.as_str() <= c));
    let mut out = Vec::new();
    for chunk in names[start..].chunks(limit) {
        let ids: Vec<String> = chunk.iter().filter_map(|p| id_of_index(&p.name)).collect();
        for (p, run) in chunk.iter().zip(read_many(store, ids).await?) {
            let Some(run) = run else { continue };
            // Stop early on the filter's time bound: the index is newest first.
            if filter.since.is_some_and(|t| run.created_at < t) {
                return Ok(Page {
                    runs: out,
                    continuation: None,
                });
            }
            if filter.keeps(&run) {
                out.push(run);
                if out.len() == limit {
                    let more = names.last().is_some_and(|n| n.name != p.name);
                    return Ok(Page {
                        runs: out,
                        continuation: more.then(|| p.name.clone()),
                    });
                }
            }
        }
    }
    Ok(Page {
        runs: out,
        continuation: None,
    })
}

fn id_of_index(name: &str) -> Option<String> {
    name.strip_prefix(INDEX)?
        .split_once('-')
        .map(|(_, id)| id.to_owned())
}

/// Every run, newest first (the CLI's and the dashboard's whole view).
///
/// # Errors
/// Storage failures.
pub async fn list(store: &dyn BlobStore) -> Result<Vec<Run>, BlobError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let p = page(store, &Filter::default(), 1000, token.as_deref()).await?;
        out.extend(p.runs);
        match p.continuation {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// One run's audit lines, oldest first, read by the run's prefix.
///
/// # Errors
/// Storage failures.
pub async fn run_audit(store: &dyn BlobStore, run_id: &str) -> Result<Vec<Transition>, BlobError> {
    ensure_indexed(store).await?;
    read_lines(store, store.list(AUDIT, &format!("runs/{run_id}/")).await?).await
}

/// One day's audit lines (`yyyy-mm-dd`), oldest first.
///
/// # Errors
/// Storage failures.
pub async fn day_audit(store: &dyn BlobStore, day: &str) -> Result<Vec<Transition>, BlobError> {
    read_lines(store, store.list(AUDIT, &format!("{day}/")).await?).await
}

async fn read_lines(
    store: &dyn BlobStore,
    blobs: Vec<BlobProperties>,
) -> Result<Vec<Transition>, BlobError> {
    use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
    let lines: Vec<Option<Transition>> = stream::iter(blobs)
        .map(|p| async move {
            match store.get(AUDIT, &p.name).await {
                Ok((_, bytes)) => Ok(serde_json::from_slice::<Transition>(&bytes).ok()),
                Err(BlobError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    let mut out: Vec<Transition> = lines.into_iter().flatten().collect();
    out.sort_by_key(|t| t.time);
    Ok(out)
}

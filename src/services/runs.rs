//! Run documents and the audit trail in storage.
//!
//! A run is `state/runs/{run_id}.json`, changed only by ETag-conditional writes: an update
//! re-reads and re-applies on a conflict, so concurrent handlers never lose a change. Each
//! transition is also written once to `audit/{yyyy-mm-dd}/{run_id}-{index}.json` with
//! `If-None-Match: *`, so a retried step never writes the same audit line twice.

use crate::domain::run::{Run, Transition};
use crate::ports::{BlobError, BlobStore, Condition, ETag};

/// Container of run documents and the inventory.
pub const STATE: &str = "state";
/// Container of audit lines.
pub const AUDIT: &str = "audit";
/// Container of reports.
pub const REPORTS: &str = "reports";
const MAX_CONFLICT_RETRIES: usize = 8;

fn run_blob(id: &str) -> String {
    format!("runs/{id}.json")
}

/// Reads a run.
///
/// # Errors
/// Storage failures.
pub async fn get(store: &dyn BlobStore, id: &str) -> Result<Option<(Run, ETag)>, BlobError> {
    match store.get(STATE, &run_blob(id)).await {
        Ok((p, bytes)) => match serde_json::from_slice(&bytes) {
            Ok(run) => Ok(Some((run, p.etag))),
            Err(e) => Err(BlobError::Io {
                what: format!("decode run {id}"),
                source: std::io::Error::other(e),
            }),
        },
        Err(BlobError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a run; `false` when it already exists (a redelivered event).
///
/// # Errors
/// Storage failures.
pub async fn create(store: &dyn BlobStore, run: &Run) -> Result<bool, BlobError> {
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
/// conflicts. New history entries are written to the audit trail.
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
        let original = serde_json::to_vec(&run).unwrap_or_default();
        change(&mut run).map_err(UpdateError::Refused)?;
        // Nothing changed: no write, so a redelivered message costs one read.
        if serde_json::to_vec(&run).unwrap_or_default() == original {
            return Ok(run);
        }
        let bytes = serde_json::to_vec_pretty(&run).unwrap_or_default();
        match store
            .put(STATE, &run_blob(id), &bytes, Condition::IfMatch(etag))
            .await
        {
            Ok(_) => {
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

/// Writes history entries from `from` on (idempotently).
async fn audit(store: &dyn BlobStore, run: &Run, from: usize) -> Result<(), BlobError> {
    for (i, t) in run.history.iter().enumerate().skip(from) {
        write_audit(store, t, i).await?;
    }
    Ok(())
}

async fn write_audit(store: &dyn BlobStore, t: &Transition, index: usize) -> Result<(), BlobError> {
    let name = format!("{}/{}-{index:05}.json", t.time.format("%Y-%m-%d"), t.run_id);
    let bytes = serde_json::to_vec(t).unwrap_or_default();
    match store
        .put(AUDIT, &name, &bytes, Condition::IfNotExists)
        .await
    {
        Ok(_) | Err(BlobError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every run.
///
/// # Errors
/// Storage failures.
pub async fn list(store: &dyn BlobStore) -> Result<Vec<Run>, BlobError> {
    let mut out = Vec::new();
    for p in store.list(STATE, "runs/").await? {
        let (_, bytes) = match store.get(STATE, &p.name).await {
            Ok(v) => v,
            Err(BlobError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Ok(run) = serde_json::from_slice::<Run>(&bytes) {
            out.push(run);
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    Ok(out)
}

/// The audit lines, oldest first (optionally of one run).
///
/// # Errors
/// Storage failures.
pub async fn audit_lines(
    store: &dyn BlobStore,
    run_id: Option<&str>,
) -> Result<Vec<Transition>, BlobError> {
    let mut out = Vec::new();
    for p in store.list(AUDIT, "").await? {
        if p.name.starts_with("rejections/") {
            continue;
        }
        if let Some(id) = run_id
            && !p
                .name
                .split('/')
                .next_back()
                .is_some_and(|n| n.starts_with(&format!("{id}-")))
        {
            continue;
        }
        if let Ok((_, bytes)) = store.get(AUDIT, &p.name).await
            && let Ok(t) = serde_json::from_slice::<Transition>(&bytes)
        {
            out.push(t);
        }
    }
    out.sort_by_key(|t| t.time);
    Ok(out)
}

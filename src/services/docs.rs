//! Small JSON documents in storage changed only by ETag-conditional writes: read, change,
//! write back under the version read, and start again on a conflict. A document that does
//! not decode is an error naming it, never read as empty (the next write would erase it).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::runs::UpdateError;
use crate::ports::{BlobError, BlobStore, Condition, ETag};

/// Conflicting writers settle within this many attempts (each backs off a little longer).
const ATTEMPTS: u32 = 40;

/// Reads `container/name`; `None` when it does not exist.
///
/// # Errors
/// Storage failures; a document that does not decode.
pub async fn read<T: DeserializeOwned>(
    store: &dyn BlobStore,
    container: &str,
    name: &str,
) -> Result<Option<(T, ETag)>, BlobError> {
    match store.get(container, name).await {
        Ok((p, bytes)) => match serde_json::from_slice(&bytes) {
            Ok(doc) => Ok(Some((doc, p.etag))),
            Err(e) => Err(BlobError::Io {
                what: format!("decode {container}/{name} (left as it is; repair or restore it)"),
                source: std::io::Error::other(e),
            }),
        },
        Err(BlobError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Applies `change` to the document (a default one when it does not exist yet) and writes
/// it back under its version, retrying on conflicts. Nothing is written when `change`
/// leaves the document as it was, or refuses.
///
/// # Errors
/// Storage failures, conflicts that do not settle, or `change`'s refusal.
pub async fn update<T, R, E>(
    store: &dyn BlobStore,
    container: &str,
    name: &str,
    mut change: impl FnMut(&mut T) -> Result<R, E>,
) -> Result<R, UpdateError<E>>
where
    T: DeserializeOwned + Serialize + Default,
{
    for attempt in 0..ATTEMPTS {
        let (mut doc, etag) = match read::<T>(store, container, name).await? {
            Some((d, e)) => (d, Some(e)),
            None => (T::default(), None),
        };
        let before = serde_json::to_vec(&doc).unwrap_or_default();
        let out = change(&mut doc).map_err(UpdateError::Refused)?;
        let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        if etag.is_some() && serde_json::to_vec(&doc).unwrap_or_default() == before {
            return Ok(out);
        }
        let cond = etag.map_or(Condition::IfNotExists, Condition::IfMatch);
        match store.put(container, name, &bytes, cond).await {
            Ok(_) => return Ok(out),
            Err(BlobError::PreconditionFailed { .. } | BlobError::AlreadyExists { .. }) => {
                // Many writers on one document (a busy Spoke): spread the retries out.
                let ms = 5 * u64::from(attempt.min(20)) + fastrand::u64(0..20);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(BlobError::PreconditionFailed {
        container: container.into(),
        name: name.into(),
    }
    .into())
}

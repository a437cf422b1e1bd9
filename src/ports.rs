//! The traits every effect goes through. Services depend on these, never on an adapter.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

use crate::error::{Classify, ErrorClass};

/// An opaque blob version identifier, as Azure Storage returns it (without quotes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a listing or a write tells about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProperties {
    /// Container name.
    pub container: String,
    /// Blob name inside the container, `/`-separated.
    pub name: String,
    /// Version identifier; changes on every write.
    pub etag: ETag,
    /// Size in bytes.
    pub content_length: u64,
    /// Last write time.
    pub last_modified: DateTime<Utc>,
}

/// A precondition on a write or delete, as Azure Storage's conditional headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Unconditional.
    None,
    /// `If-None-Match: *`: only if the blob does not exist.
    IfNotExists,
    /// `If-Match: etag`: only if the blob is still this version.
    IfMatch(ETag),
}

/// A streaming reader over a blob's bytes.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Blob storage failures.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The blob (or its container) does not exist.
    #[error("blob {container}/{name} not found")]
    NotFound {
        /// Container.
        container: String,
        /// Blob name.
        name: String,
    },
    /// `If-None-Match: *` failed.
    #[error("blob {container}/{name} already exists")]
    AlreadyExists {
        /// Container.
        container: String,
        /// Blob name.
        name: String,
    },
    /// `If-Match` failed: somebody else wrote first.
    #[error("blob {container}/{name} changed since it was read (ETag mismatch)")]
    PreconditionFailed {
        /// Container.
        container: String,
        /// Blob name.
        name: String,
    },
    /// A container or blob name that storage would refuse, or that escapes its container.
    #[error("invalid blob name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The store itself failed (disk, network).
    #[error("storage I/O failed on {what}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Classify for BlobError {
    fn class(&self) -> ErrorClass {
        match self {
            // A conflict is somebody else's concurrent write: a retry re-reads and wins or agrees.
            BlobError::PreconditionFailed { .. }
            | BlobError::AlreadyExists { .. }
            | BlobError::Io { .. } => ErrorClass::Retryable,
            BlobError::NotFound { .. } | BlobError::InvalidName { .. } => ErrorClass::Terminal,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            BlobError::NotFound { .. } => "blob_not_found",
            BlobError::AlreadyExists { .. } => "blob_exists",
            BlobError::PreconditionFailed { .. } => "etag_conflict",
            BlobError::InvalidName { .. } => "invalid_blob_name",
            BlobError::Io { .. } => "storage_io",
        }
    }
}

/// Blob storage: the local filesystem store, Azurite or Azure Storage.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Reads a whole blob. Use [`BlobStore::open`] for datasets.
    async fn get(
        &self,
        container: &str,
        name: &str,
    ) -> Result<(BlobProperties, Vec<u8>), BlobError>;
    /// Opens a blob for streaming reads with bounded memory.
    async fn open(
        &self,
        container: &str,
        name: &str,
    ) -> Result<(BlobProperties, BlobReader), BlobError>;
    /// Properties without content.
    async fn properties(&self, container: &str, name: &str) -> Result<BlobProperties, BlobError>;
    /// Writes a whole blob under a precondition; returns the new version.
    async fn put(
        &self,
        container: &str,
        name: &str,
        bytes: &[u8],
        condition: Condition,
    ) -> Result<BlobProperties, BlobError>;
    /// Lists blobs whose names start with `prefix`, in name order.
    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobProperties>, BlobError>;
    /// Deletes a blob under a precondition. `Ok(false)` when it was already gone.
    async fn delete(
        &self,
        container: &str,
        name: &str,
        condition: Condition,
    ) -> Result<bool, BlobError>;
}

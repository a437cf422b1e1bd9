//! The traits every effect goes through. Services depend on these, never on an adapter.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

use crate::error::{Classify, ErrorClass};

/// An opaque blob version identifier, without the quotes Azure puts around it in headers.
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

/// A message to publish on a queue or topic (the local bus or Service Bus).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutgoingMessage {
    /// Body as text (Service Bus output bindings send strings).
    pub body: String,
    /// `MessageId`; a new GUID when absent.
    pub message_id: Option<String>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `Subject` (a.k.a. `Label`).
    pub subject: Option<String>,
    /// Application properties.
    pub application_properties: std::collections::BTreeMap<String, serde_json::Value>,
}

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
    /// Another holder's lease blocks the operation.
    #[error("blob {container}/{name} is leased by another holder")]
    Leased {
        /// Container.
        container: String,
        /// Blob name.
        name: String,
    },
    /// The blob is stored with a customer-provided key and the key was missing or wrong.
    #[error("blob {container}/{name}: {reason}")]
    EncryptionKey {
        /// Container.
        container: String,
        /// Blob name.
        name: String,
        /// What the service said.
        reason: String,
    },
    /// The identity has no data-plane role on the account.
    #[error(
        "storage refused {what} (HTTP 403 {code}): assign the identity the \"{role}\" role on the storage account or container"
    )]
    Denied {
        /// What was being done.
        what: String,
        /// Service error code.
        code: String,
        /// The role that grants it.
        role: &'static str,
    },
    /// Any other service answer.
    #[error("storage answered HTTP {status} {code} to {what}")]
    Service {
        /// What was being done.
        what: String,
        /// Status code.
        status: u16,
        /// Service error code.
        code: String,
    },
    /// The store cannot do this at all (for example customer-provided keys on the local store).
    #[error("{what} is not supported by this store")]
    Unsupported {
        /// The operation.
        what: &'static str,
    },
}

/// An AES-256 key for blobs stored with a customer-provided key (Azure's CPK). It is used
/// only for reads and never stored, logged or shown: `Debug` prints its SHA-256, which
/// Azure itself returns in response headers.
#[derive(Clone)]
pub struct CustomerKey {
    key_base64: String,
    sha256_base64: String,
}

impl CustomerKey {
    /// From the 32 raw key bytes.
    ///
    /// # Errors
    /// When the key is not 256 bits.
    pub fn from_bytes(key: &[u8]) -> Result<Self, &'static str> {
        use base64::Engine as _;
        use sha2::Digest as _;
        if key.len() != 32 {
            return Err("a customer-provided key must be 256 bits (32 bytes)");
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Self {
            key_base64: b64.encode(key),
            sha256_base64: b64.encode(sha2::Sha256::digest(key)),
        })
    }

    /// From the base64 text Key Vault secrets and `az storage` use.
    ///
    /// # Errors
    /// When the text is not base64 of a 256-bit key.
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "a customer-provided key must be base64")?;
        Self::from_bytes(&bytes)
    }

    /// The key, base64, for the `x-ms-encryption-key` header only.
    pub fn key_base64(&self) -> &str {
        &self.key_base64
    }

    /// The key's SHA-256, base64 (`x-ms-encryption-key-sha256`).
    pub fn sha256_base64(&self) -> &str {
        &self.sha256_base64
    }
}

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomerKey(sha256={})", self.sha256_base64)
    }
}

/// A lease on a blob: whoever holds it is the single owner until it expires or is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseId(pub String);

impl Classify for BlobError {
    fn class(&self) -> ErrorClass {
        match self {
            // A conflict is somebody else's concurrent write: a retry re-reads and wins or agrees.
            BlobError::PreconditionFailed { .. }
            | BlobError::AlreadyExists { .. }
            | BlobError::Leased { .. }
            | BlobError::Io { .. } => ErrorClass::Retryable,
            // Role assignments take minutes to propagate: retrying keeps the event, and a
            // dead letter after the last delivery records it if the role never arrives.
            BlobError::Denied { .. } => ErrorClass::Retryable,
            BlobError::Service { status, .. }
                if *status == 408 || *status == 429 || *status >= 500 =>
            {
                ErrorClass::Retryable
            }
            BlobError::NotFound { .. }
            | BlobError::InvalidName { .. }
            | BlobError::EncryptionKey { .. }
            | BlobError::Service { .. }
            | BlobError::Unsupported { .. } => ErrorClass::Terminal,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            BlobError::NotFound { .. } => "blob_not_found",
            BlobError::AlreadyExists { .. } => "blob_exists",
            BlobError::PreconditionFailed { .. } => "etag_conflict",
            BlobError::InvalidName { .. } => "invalid_blob_name",
            BlobError::Io { .. } => "storage_io",
            BlobError::Leased { .. } => "blob_leased",
            BlobError::EncryptionKey { .. } => "encryption_key",
            BlobError::Denied { .. } => "storage_forbidden",
            BlobError::Service { .. } => "storage_service",
            BlobError::Unsupported { .. } => "storage_unsupported",
        }
    }
}

/// Reads an opened blob to its end (for small blobs: documents, manifests, eval sets).
///
/// # Errors
/// When the stream fails.
pub async fn read_all(
    opened: (BlobProperties, BlobReader),
    container: &str,
    name: &str,
) -> Result<(BlobProperties, Vec<u8>), BlobError> {
    use tokio::io::AsyncReadExt as _;
    let (props, mut reader) = opened;
    let mut bytes = Vec::with_capacity(usize::try_from(props.content_length).unwrap_or(0));
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|source| BlobError::Io {
            what: format!("read {container}/{name}"),
            source,
        })?;
    Ok((props, bytes))
}

/// Refuses container and blob names storage would refuse or that escape their container,
/// before any request or file access.
///
/// # Errors
/// `InvalidName` naming the offending part.
pub fn check_names(container: &str, name: &str) -> Result<(), BlobError> {
    use crate::domain::blob_name;
    blob_name::check_container(container).map_err(|reason| BlobError::InvalidName {
        name: container.to_owned(),
        reason,
    })?;
    blob_name::check_blob(name).map_err(|reason| BlobError::InvalidName {
        name: name.to_owned(),
        reason,
    })
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
    /// Writes a local file as a blob, streaming it (a dataset is never held in memory).
    async fn put_file(
        &self,
        container: &str,
        name: &str,
        file: &std::path::Path,
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
    /// Opens a blob stored with a customer-provided key. The key goes on the wire only.
    async fn open_with_key(
        &self,
        container: &str,
        name: &str,
        key: &CustomerKey,
    ) -> Result<(BlobProperties, BlobReader), BlobError> {
        let _ = (container, name, key);
        Err(BlobError::Unsupported {
            what: "reading blobs stored with a customer-provided key",
        })
    }
    /// Creates a container if it does not exist.
    async fn ensure_container(&self, container: &str) -> Result<(), BlobError>;
    /// Takes a lease on an existing blob for `seconds` (15–60, as Azure). `Ok(None)` when
    /// another holder has it.
    async fn acquire_lease(
        &self,
        container: &str,
        name: &str,
        seconds: u32,
    ) -> Result<Option<LeaseId>, BlobError>;
    /// Extends a held lease by its duration. `Leased` when it was lost to another holder.
    async fn renew_lease(
        &self,
        container: &str,
        name: &str,
        lease: &LeaseId,
    ) -> Result<(), BlobError>;
    /// Gives a lease up early.
    async fn release_lease(
        &self,
        container: &str,
        name: &str,
        lease: &LeaseId,
    ) -> Result<(), BlobError>;
}

/// Failures talking to Azure OpenAI (data plane, ARM, inference).
#[derive(Debug, thiserror::Error)]
pub enum AoaiError {
    /// The service answered with an error status.
    #[error("{operation}: HTTP {status} {code}: {message}")]
    Http {
        /// What was being done.
        operation: String,
        /// Status code.
        status: u16,
        /// Service error code (`tooManyRequests`, `jsonlValidationFailed`, …).
        code: String,
        /// Service message.
        message: String,
        /// Server-requested delay (`retry-after-ms`, `x-ms-retry-after-ms`, `retry-after`).
        retry_after: Option<std::time::Duration>,
    },
    /// No HTTP answer: connection refused or reset, or a timeout.
    #[error("{operation}: no answer from the service")]
    Transport {
        /// What was being done.
        operation: String,
        /// Whether the request may have reached the service (not a refused connection).
        sent: bool,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An answer that is not the documented shape.
    #[error("{operation}: unexpected response: {detail}")]
    Decode {
        /// What was being done.
        operation: String,
        /// What was wrong.
        detail: String,
    },
    /// Retries ran out of attempts or time; the last failure is the source.
    #[error("{operation}: gave up after {attempts} attempts in {elapsed_ms} ms")]
    Exhausted {
        /// What was being done.
        operation: String,
        /// Attempts made.
        attempts: usize,
        /// Time spent.
        elapsed_ms: u64,
        /// The last failure.
        #[source]
        last: Box<AoaiError>,
    },
    /// No credential could be obtained.
    #[error("no credential for {scope}: {reason}")]
    Auth {
        /// Token scope.
        scope: String,
        /// Why.
        reason: String,
    },
    /// A long-running operation ended badly (a deployment in `Failed`, a file in `error`).
    #[error("{operation} ended in state {state}: {detail}")]
    Failed {
        /// What was being done.
        operation: String,
        /// Final state.
        state: String,
        /// Details from the service.
        detail: String,
    },
    /// Reading the dataset to upload failed.
    #[error("reading the upload failed")]
    Blob(#[from] BlobError),
}

impl AoaiError {
    /// Whether another attempt could succeed: 408, 409, 429, 5xx and no-answer failures.
    pub fn is_transient(&self) -> bool {
        match self {
            AoaiError::Http { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            AoaiError::Transport { .. } => true,
            _ => false,
        }
    }
    /// Whether the failed request may still have taken effect: no answer after it was sent,
    /// or a server error. A create that fails so must be looked for before it is resent.
    pub fn may_have_taken_effect(&self) -> bool {
        match self {
            AoaiError::Http { status, .. } => *status == 408 || *status >= 500,
            AoaiError::Transport { sent, .. } => *sent,
            AoaiError::Exhausted { last, .. } => last.may_have_taken_effect(),
            _ => false,
        }
    }
    /// The delay the service asked for.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            AoaiError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl Classify for AoaiError {
    fn class(&self) -> ErrorClass {
        match self {
            AoaiError::Http { .. } | AoaiError::Transport { .. } if self.is_transient() => {
                ErrorClass::Retryable
            }
            AoaiError::Exhausted { .. } | AoaiError::Auth { .. } => ErrorClass::Retryable,
            AoaiError::Blob(e) => e.class(),
            _ => ErrorClass::Terminal,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            AoaiError::Http { status: 429, .. } => "aoai_throttled",
            AoaiError::Http { .. } => "aoai_http",
            AoaiError::Transport { .. } => "aoai_unreachable",
            AoaiError::Decode { .. } => "aoai_bad_response",
            AoaiError::Exhausted { .. } => "aoai_retries_exhausted",
            AoaiError::Auth { .. } => "aoai_auth",
            AoaiError::Failed { .. } => "aoai_operation_failed",
            AoaiError::Blob(_) => "upload_source",
        }
    }
}

use crate::domain::aoai::{
    ChatRequest, ChatResult, Checkpoint, CreateJob, Deployment, DeploymentSpec, FileObject, Job,
    JobEvent, ModelInfo, Page,
};
use crate::domain::topology::Account;

/// The Hub's fine-tuning data plane.
#[async_trait]
pub trait Hub: Send + Sync + fmt::Debug {
    /// Uploads a blob as a fine-tuning file (multipart, streamed).
    async fn upload_file(
        &self,
        filename: &str,
        store: &dyn BlobStore,
        container: &str,
        name: &str,
    ) -> Result<FileObject, AoaiError>;
    /// Imports a file from a URL (e.g. a blob SAS URL).
    async fn import_file(&self, filename: &str, content_url: &str)
    -> Result<FileObject, AoaiError>;
    /// Reads a file's status.
    async fn get_file(&self, id: &str) -> Result<FileObject, AoaiError>;
    /// The newest fine-tuning file of this name that has not failed (names the pipeline
    /// gives are unique to a run), to recover an upload whose answer was lost.
    async fn find_file(&self, filename: &str) -> Result<Option<FileObject>, AoaiError>;
    /// Downloads a file's content (e.g. `results.csv`).
    async fn file_content(&self, id: &str) -> Result<Vec<u8>, AoaiError>;
    /// Deletes a file (the Hub holds at most 50); `Err` with status 404 when it is gone.
    async fn delete_file(&self, id: &str) -> Result<(), AoaiError>;
    /// Creates a fine-tuning job.
    async fn create_job(&self, job: &CreateJob) -> Result<Job, AoaiError>;
    /// Reads a job.
    async fn get_job(&self, id: &str) -> Result<Job, AoaiError>;
    /// Lists jobs, newest first.
    async fn list_jobs(&self, after: Option<&str>, limit: u32) -> Result<Page<Job>, AoaiError>;
    /// Cancels a job.
    async fn cancel_job(&self, id: &str) -> Result<Job, AoaiError>;
    /// Pauses a running job (it leaves a deployable checkpoint).
    async fn pause_job(&self, id: &str) -> Result<Job, AoaiError>;
    /// Resumes a paused job.
    async fn resume_job(&self, id: &str) -> Result<Job, AoaiError>;
    /// Deletes a finished job.
    async fn delete_job(&self, id: &str) -> Result<(), AoaiError>;
    /// A model's lifecycle and capabilities; `None` when the account does not list it.
    async fn model(&self, id: &str) -> Result<Option<ModelInfo>, AoaiError>;
    /// One page of a job's events.
    async fn list_events(
        &self,
        id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<JobEvent>, AoaiError>;
    /// One page of a job's checkpoints.
    async fn list_checkpoints(
        &self,
        id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Checkpoint>, AoaiError>;
}

/// ARM deployments on any account (Hub or Spoke), each reached with a token of the
/// account's own tenant.
#[async_trait]
pub trait Deployments: Send + Sync + fmt::Debug {
    /// Creates or updates a deployment and waits until provisioning is terminal. When the
    /// model comes from an account in another tenant (`sourceAccount`), `source_tenant`
    /// names that tenant: its token goes in `x-ms-authorization-auxiliary`.
    async fn put(
        &self,
        account: &Account,
        name: &str,
        spec: &DeploymentSpec,
        source_tenant: Option<&str>,
    ) -> Result<Deployment, AoaiError>;
    /// Reads a deployment; `None` when it does not exist.
    async fn get(&self, account: &Account, name: &str) -> Result<Option<Deployment>, AoaiError>;
    /// Every deployment of an account (following `nextLink`).
    async fn list(&self, account: &Account) -> Result<Vec<Deployment>, AoaiError>;
    /// Deletes a deployment and waits until it is gone; `false` when it was already gone.
    async fn delete(&self, account: &Account, name: &str) -> Result<bool, AoaiError>;
}

/// Chat completions on a deployment of one account.
#[async_trait]
pub trait Inference: Send + Sync + fmt::Debug {
    /// Calls the deployment. `model` decides `max_tokens` vs `max_completion_tokens`.
    async fn chat(
        &self,
        deployment: &str,
        model: &str,
        req: &ChatRequest,
    ) -> Result<ChatResult, AoaiError>;
}

/// Key material could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key store did not answer or refused for now (network, throttling, a role
    /// assignment still propagating).
    #[error("cannot fetch the encryption key {reference}: {reason}")]
    Unavailable {
        /// The manifest's reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The reference or the key itself is unusable.
    #[error("encryption key {reference} is unusable: {reason}")]
    Invalid {
        /// The manifest's reference.
        reference: String,
        /// Why.
        reason: String,
    },
}

impl Classify for KeyError {
    fn class(&self) -> ErrorClass {
        match self {
            KeyError::Unavailable { .. } => ErrorClass::Retryable,
            KeyError::Invalid { .. } => ErrorClass::Terminal,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            KeyError::Unavailable { .. } => "encryption_key_unavailable",
            KeyError::Invalid { .. } => "encryption_key_invalid",
        }
    }
}

/// Where customer-provided keys come from (Key Vault in Azure). Keys are fetched at run
/// time for the reads that need them and never stored.
#[async_trait]
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The key a manifest's `encryption_key` reference names.
    async fn customer_key(&self, reference: &str) -> Result<CustomerKey, KeyError>;
}

/// The time as the pipeline sees it: tests move it instead of editing stored documents.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

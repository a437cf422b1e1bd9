//! The `BlobStore` port on Azure Storage (and Azurite) through the official SDK,
//! `azure_storage_blob` 1.x.
//!
//! Authentication is an Entra ID credential (managed identity, workload identity, Azure
//! CLI; HTTPS only, as the SDK requires) or, for Azurite and estates that use keys, an
//! account SAS signed from the connection string's key. The SDK has no shared-key
//! credential, so the SAS is signed here and re-signed before it expires.
//!
//! Downloads stream with a deliberate bound: `DOWNLOAD_PARALLEL` ranged GETs of
//! `PARTITION` bytes in flight, pinned to the first response's ETag by the SDK, so a
//! 200 MB dataset never holds more than about 2 × 2 × 4 MiB. The service version is
//! pinned to one Azurite 3.35 accepts and Azure serves (`FTHUB_STORAGE_API_VERSION`
//! overrides it).

use std::fmt;
use std::num::NonZero;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RequestContent, StatusCode, Url};
use azure_storage_blob::models::{
    BlobClientAcquireLeaseOptions, BlobClientAcquireLeaseResultHeaders, BlobClientDeleteOptions,
    BlobClientDownloadOptions, BlobClientGetPropertiesOptions,
    BlobClientGetPropertiesResultHeaders, BlobClientUploadOptions,
    BlobContainerClientListBlobsOptions, EncryptionAlgorithmType,
};
use azure_storage_blob::{BlobServiceClient, BlobServiceClientOptions};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use hmac::Mac as _;

use super::Secret;
use crate::domain::blob_name;
use crate::ports::{
    BlobError, BlobProperties, BlobReader, BlobStore, Condition, CustomerKey, ETag, LeaseId,
    check_names, read_all,
};

/// Storage service version sent as `x-ms-version`: the newest Azurite 3.35 accepts.
pub const DEFAULT_API_VERSION: &str = "2025-11-05";
/// Ranged GETs in flight per download.
pub const DOWNLOAD_PARALLEL: usize = 2;
/// Bytes per ranged GET and per staged block.
pub const PARTITION: usize = 4 * 1024 * 1024;
/// Azurite's well-known development account and key (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The role that lets an identity read and write blobs.
pub const DATA_ROLE: &str = "Storage Blob Data Contributor";

/// Where the store is and how to sign in.
#[derive(Clone)]
pub enum StorageTarget {
    /// Account key (connection string): requests carry an account SAS signed with it.
    Key {
        /// Blob service URL, e.g. `http://127.0.0.1:10000/devstoreaccount1`.
        endpoint: Url,
        /// Account name.
        account: String,
        /// Account key.
        key: Secret,
    },
    /// A ready-made SAS (connection string `SharedAccessSignature=`).
    Sas {
        /// Blob service URL.
        endpoint: Url,
        /// The SAS query string.
        sas: Secret,
    },
    /// An Entra ID credential over HTTPS.
    Entra {
        /// Blob service URL.
        endpoint: Url,
        /// The credential.
        credential: Arc<dyn TokenCredential>,
    },
}

impl fmt::Debug for StorageTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, endpoint) = match self {
            StorageTarget::Key { endpoint, .. } => ("account key", endpoint),
            StorageTarget::Sas { endpoint, .. } => ("sas", endpoint),
            StorageTarget::Entra { endpoint, .. } => ("entra id", endpoint),
        };
        write!(f, "StorageTarget({kind} @ {endpoint})")
    }
}

impl StorageTarget {
    /// The blob service URL.
    pub fn endpoint(&self) -> &Url {
        match self {
            StorageTarget::Key { endpoint, .. }
            | StorageTarget::Sas { endpoint, .. }
            | StorageTarget::Entra { endpoint, .. } => endpoint,
        }
    }
}

/// A connection string or account setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Missing or malformed parts (the message names which; never the key).
    #[error("storage connection string: {0}")]
    ConnectionString(String),
    /// The URL does not parse.
    #[error("storage endpoint {0:?} is not a URL")]
    Url(String),
}

/// Parses a storage connection string: `UseDevelopmentStorage=true`, or
/// `AccountName`/`AccountKey` with `BlobEndpoint` or `DefaultEndpointsProtocol` +
/// `EndpointSuffix`, or `BlobEndpoint` + `SharedAccessSignature`.
///
/// # Errors
/// When a needed part is missing or malformed.
pub fn parse_connection_string(cs: &str) -> Result<StorageTarget, TargetError> {
    let err = |m: &str| TargetError::ConnectionString(m.to_owned());
    let mut parts = std::collections::HashMap::new();
    for kv in cs.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| err("every part must be Name=Value"))?;
        parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let get = |k: &str| parts.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let url =
        |s: &str| Url::parse(s.trim_end_matches('/')).map_err(|_| TargetError::Url(s.to_owned()));
    if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let proxy = get("developmentstorageproxyuri").unwrap_or("http://127.0.0.1");
        let endpoint = url(&format!(
            "{}:10000/{AZURITE_ACCOUNT}",
            proxy.trim_end_matches('/')
        ))?;
        return Ok(StorageTarget::Key {
            endpoint,
            account: AZURITE_ACCOUNT.into(),
            key: Secret::new(AZURITE_KEY),
        });
    }
    let account = get("accountname");
    let endpoint = match (get("blobendpoint"), account) {
        (Some(e), _) => url(e)?,
        (None, Some(a)) => {
            let proto = get("defaultendpointsprotocol").unwrap_or("https");
            let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
            url(&format!("{proto}://{a}.blob.{suffix}"))?
        }
        (None, None) => return Err(err("needs AccountName or BlobEndpoint")),
    };
    if let Some(sas) = get("sharedaccesssignature") {
        return Ok(StorageTarget::Sas {
            endpoint,
            sas: Secret::new(sas.trim_start_matches('?')),
        });
    }
    let key = get("accountkey").ok_or_else(|| err("needs AccountKey or SharedAccessSignature"))?;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| err("AccountKey is not base64"))?;
    let account = match account {
        Some(a) => a.to_owned(),
        // Azurite-style path-addressed endpoints carry the account as the first segment.
        None => endpoint
            .path_segments()
            .and_then(|mut s| s.next().map(str::to_owned))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("needs AccountName"))?,
    };
    Ok(StorageTarget::Key {
        endpoint,
        account,
        key: Secret::new(key),
    })
}

/// An account SAS over the blob service (containers and objects, read/write/delete/list/
/// add/create), valid until `expiry`. This is Azure's documented string-to-sign for
/// version 2020-12-06 and later.
pub fn account_sas(account: &str, key: &Secret, expiry: DateTime<Utc>) -> String {
    let (sv, sp, ss, srt, spr) = ("2021-08-06", "rwdlac", "b", "sco", "https,http");
    let se = expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let sts = format!("{account}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n{spr}\n{sv}\n\n");
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64.decode(key.expose()).unwrap_or_default();
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&raw) else {
        return String::new();
    };
    mac.update(sts.as_bytes());
    let sig = b64.encode(mac.finalize().into_bytes());
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={}&spr={}&sig={}",
        enc(&se),
        enc(spr),
        enc(&sig)
    )
}

/// How long a signed SAS lives, and how long before its end it is re-signed.
const SAS_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const SAS_RESIGN_AFTER: Duration = Duration::from_secs(12 * 3600);

/// The Azure Storage blob store.
#[derive(Clone)]
pub struct AzureBlobStore {
    target: StorageTarget,
    version: String,
    client: Arc<Mutex<(Instant, Arc<BlobServiceClient>)>>,
}

impl fmt::Debug for AzureBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AzureBlobStore({:?})", self.target)
    }
}

impl AzureBlobStore {
    /// A store on `target`, speaking service version `version` (see [`DEFAULT_API_VERSION`]).
    ///
    /// # Errors
    /// When the SDK refuses the endpoint (for example a token over plain HTTP).
    pub fn new(target: StorageTarget, version: &str) -> Result<Self, BlobError> {
        let client = build_client(&target, version)?;
        Ok(Self {
            target,
            version: version.to_owned(),
            client: Arc::new(Mutex::new((Instant::now(), Arc::new(client)))),
        })
    }

    /// The account's blob service URL (no credentials).
    pub fn endpoint(&self) -> &Url {
        self.target.endpoint()
    }

    fn service(&self) -> Result<Arc<BlobServiceClient>, BlobError> {
        let mut guard = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(self.target, StorageTarget::Key { .. }) && guard.0.elapsed() > SAS_RESIGN_AFTER
        {
            *guard = (
                Instant::now(),
                Arc::new(build_client(&self.target, &self.version)?),
            );
        }
        Ok(guard.1.clone())
    }
}

fn build_client(target: &StorageTarget, version: &str) -> Result<BlobServiceClient, BlobError> {
    let options = BlobServiceClientOptions {
        client_options: ClientOptions::default(),
        version: version.to_owned(),
    };
    let (url, credential) = match target {
        StorageTarget::Key {
            endpoint,
            account,
            key,
        } => {
            let expiry = Utc::now()
                + chrono::Duration::from_std(SAS_LIFETIME).unwrap_or(chrono::Duration::hours(24));
            let mut u = endpoint.clone();
            u.set_query(Some(&account_sas(account, key, expiry)));
            (u, None)
        }
        StorageTarget::Sas { endpoint, sas } => {
            let mut u = endpoint.clone();
            u.set_query(Some(sas.expose()));
            (u, None)
        }
        StorageTarget::Entra {
            endpoint,
            credential,
        } => (endpoint.clone(), Some(credential.clone())),
    };
    BlobServiceClient::new(url, credential, Some(options)).map_err(|e| BlobError::Service {
        what: "create the storage client".into(),
        status: 0,
        code: redact(&e.to_string()),
    })
}

/// Error text without URL query strings: reqwest puts the request URL (and so a SAS
/// signature) into its messages.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    for c in text.chars() {
        if c == '?' {
            skipping = true;
            out.push_str("?<redacted>");
            continue;
        }
        if skipping {
            if c.is_whitespace() || c == ')' || c == '"' || c == '\'' {
                skipping = false;
            } else {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn to_chrono(t: Option<time::OffsetDateTime>) -> DateTime<Utc> {
    t.and_then(|t| {
        let ns = t.unix_timestamp_nanos();
        DateTime::<Utc>::from_timestamp(
            i64::try_from(ns.div_euclid(1_000_000_000)).ok()?,
            u32::try_from(ns.rem_euclid(1_000_000_000)).ok()?,
        )
    })
    .unwrap_or_default()
}

/// Maps an SDK error to the port's typed errors, naming what was being done.
fn map_err(e: &azure_core::Error, what: &str, container: &str, name: &str) -> BlobError {
    let code = match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => {
            error_code.clone().unwrap_or_default()
        }
        _ => String::new(),
    };
    let (c, n) = (container.to_owned(), name.to_owned());
    match e.http_status() {
        Some(StatusCode::NotFound) => BlobError::NotFound {
            container: c,
            name: n,
        },
        Some(StatusCode::Conflict) if code == "BlobAlreadyExists" => BlobError::AlreadyExists {
            container: c,
            name: n,
        },
        Some(StatusCode::Conflict | StatusCode::PreconditionFailed)
            if code.starts_with("Lease") =>
        {
            BlobError::Leased {
                container: c,
                name: n,
            }
        }
        Some(StatusCode::PreconditionFailed) => BlobError::PreconditionFailed {
            container: c,
            name: n,
        },
        Some(StatusCode::Conflict | StatusCode::BadRequest)
            if code.contains("Encryption") || code.contains("CustomerSpecified") =>
        {
            BlobError::EncryptionKey {
                container: c,
                name: n,
                reason: format!("customer-provided key refused ({code})"),
            }
        }
        Some(StatusCode::Forbidden) => BlobError::Denied {
            what: format!("{what} {container}/{name}"),
            code,
            role: DATA_ROLE,
        },
        Some(s) => BlobError::Service {
            what: format!("{what} {container}/{name}"),
            status: u16::from(s),
            code,
        },
        None => BlobError::Io {
            what: format!("{what} {container}/{name}"),
            source: std::io::Error::other(redact(&e.to_string())),
        },
    }
}

/// Headers quote ETags and listings do not: the port always holds the bare value.
fn etag_of(e: Option<&azure_core::http::Etag>) -> ETag {
    ETag(
        e.map(|e| e.to_string().trim_matches('"').to_owned())
            .unwrap_or_default(),
    )
}

fn quoted(e: &ETag) -> azure_core::http::Etag {
    format!("\"{}\"", e.0).into()
}

/// Total size from `Content-Range: bytes 0-4194303/52428800`, else `Content-Length`.
fn total_length(headers: &azure_core::http::headers::Headers, fallback: Option<u64>) -> u64 {
    headers
        .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
            "content-range",
        ))
        .and_then(|r| r.rsplit('/').next())
        .and_then(|t| t.parse().ok())
        .or(fallback)
        .unwrap_or(0)
}

impl AzureBlobStore {
    async fn upload(
        &self,
        container: &str,
        name: &str,
        content: RequestContent<bytes::Bytes, azure_core::http::NoFormat>,
        length: u64,
        condition: Condition,
    ) -> Result<BlobProperties, BlobError> {
        check_names(container, name)?;
        let client = self.service()?.blob_client(container, name);
        let mut options = BlobClientUploadOptions {
            parallel: NonZero::new(DOWNLOAD_PARALLEL),
            partition_size: NonZero::new(PARTITION as u64),
            ..Default::default()
        };
        match &condition {
            Condition::None => {}
            Condition::IfNotExists => options = options.if_not_exists(),
            Condition::IfMatch(etag) => options.if_match = Some(quoted(etag)),
        }
        let r = client.upload(content, Some(options)).await;
        let r = match r {
            Ok(r) => r,
            // Azure answers a stale If-Match on a missing blob with 404 or 412 depending on
            // the path taken; the port reports a vanished blob as NotFound either way.
            Err(e) => {
                let mapped = map_err(&e, "write", container, name);
                if let (BlobError::PreconditionFailed { .. }, Condition::IfMatch(_)) =
                    (&mapped, &condition)
                    && let Err(BlobError::NotFound { .. }) = self.properties(container, name).await
                {
                    return Err(BlobError::NotFound {
                        container: container.to_owned(),
                        name: name.to_owned(),
                    });
                }
                // A write has no blob to miss: a 404 means the container is missing.
                if let (BlobError::NotFound { .. }, false) =
                    (&mapped, matches!(condition, Condition::IfMatch(_)))
                {
                    return Err(BlobError::Service {
                        what: format!("write {container}/{name}"),
                        status: 404,
                        code: "ContainerNotFound (create the container first)".into(),
                    });
                }
                return Err(mapped);
            }
        };
        Ok(BlobProperties {
            container: container.to_owned(),
            name: name.to_owned(),
            etag: etag_of(r.etag.as_ref()),
            content_length: length,
            last_modified: to_chrono(r.last_modified),
        })
    }

    async fn download(
        &self,
        container: &str,
        name: &str,
        key: Option<&CustomerKey>,
    ) -> Result<(BlobProperties, BlobReader), BlobError> {
        check_names(container, name)?;
        let client = self.service()?.blob_client(container, name);
        let mut options = BlobClientDownloadOptions {
            parallel: NonZero::new(DOWNLOAD_PARALLEL),
            partition_size: NonZero::new(PARTITION),
            ..Default::default()
        };
        if let Some(k) = key {
            options.encryption_algorithm = Some(EncryptionAlgorithmType::Aes256);
            options.encryption_key = Some(k.key_base64().to_owned());
            options.encryption_key_sha256 = Some(k.sha256_base64().to_owned());
        }
        let result = match client.download(Some(options)).await {
            Ok(r) => r,
            // An empty blob has no satisfiable range: Azure answers 416 to the first part.
            Err(e) if e.http_status() == Some(StatusCode::RequestedRangeNotSatisfiable) => {
                let props = self.properties(container, name).await?;
                return Ok((props, Box::pin(tokio::io::empty())));
            }
            Err(e) => return Err(map_err(&e, "read", container, name)),
        };
        let props = BlobProperties {
            container: container.to_owned(),
            name: name.to_owned(),
            etag: etag_of(result.properties.etag.as_ref()),
            content_length: total_length(&result.headers, result.properties.content_length),
            last_modified: to_chrono(result.properties.last_modified),
        };
        let label = format!("read {container}/{name}");
        let stream = result.body.map_err(move |e| {
            std::io::Error::other(format!("{label}: {}", redact(&e.to_string())))
        });
        Ok((props, Box::pin(tokio_util::io::StreamReader::new(stream))))
    }
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    async fn get(
        &self,
        container: &str,
        name: &str,
    ) -> Result<(BlobProperties, Vec<u8>), BlobError> {
        read_all(self.download(container, name, None).await?, container, name).await
    }

    async fn open(
        &self,
        container: &str,
        name: &str,
    ) -> Result<(BlobProperties, BlobReader), BlobError> {
        self.download(container, name, None).await
    }

    async fn open_with_key(
        &self,
        container: &str,
        name: &str,
        key: &CustomerKey,
    ) -> Result<(BlobProperties, BlobReader), BlobError> {
        self.download(container, name, Some(key)).await
    }

    async fn properties(&self, container: &str, name: &str) -> Result<BlobProperties, BlobError> {
        check_names(container, name)?;
        let client = self.service()?.blob_client(container, name);
        let r = client
            .get_properties(Some(BlobClientGetPropertiesOptions::default()))
            .await
            .map_err(|e| map_err(&e, "read properties of", container, name))?;
        Ok(BlobProperties {
            container: container.to_owned(),
            name: name.to_owned(),
            etag: etag_of(r.etag().ok().flatten().as_ref()),
            content_length: r.content_length().ok().flatten().unwrap_or(0),
            last_modified: to_chrono(r.last_modified().ok().flatten()),
        })
    }

    async fn put(
        &self,
        container: &str,
        name: &str,
        bytes: &[u8],
        condition: Condition,
    ) -> Result<BlobProperties, BlobError> {
        let content = RequestContent::from(bytes.to_vec());
        self.upload(container, name, content, bytes.len() as u64, condition)
            .await
    }

    async fn put_file(
        &self,
        container: &str,
        name: &str,
        file: &std::path::Path,
        condition: Condition,
    ) -> Result<BlobProperties, BlobError> {
        let io = |source| BlobError::Io {
            what: format!("read {}", file.display()),
            source,
        };
        let f = tokio::fs::File::open(file).await.map_err(io)?;
        let length = f.metadata().await.map_err(io)?.len();
        // Partitions are read from the file as they are sent: two of 4 MiB in memory.
        let stream = azure_storage_blob::stream::tokio::FileStream::builder(f)
            .with_buffer_size(PARTITION)
            .build()
            .await
            .map_err(|e| io(std::io::Error::other(redact(&e.to_string()))))?;
        let body: azure_core::http::Body = stream.into();
        self.upload(container, name, body.into(), length, condition)
            .await
    }

    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobProperties>, BlobError> {
        blob_name::check_container(container).map_err(|reason| BlobError::InvalidName {
            name: container.to_owned(),
            reason,
        })?;
        let client = self.service()?.blob_container_client(container);
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            ..Default::default()
        };
        let pager = client
            .list_blobs(Some(options))
            .map_err(|e| map_err(&e, "list", container, prefix))?;
        let items: Result<Vec<_>, _> = pager.collect::<Vec<_>>().await.into_iter().collect();
        let items = match items {
            Ok(i) => i,
            // A missing container lists as empty, like the filesystem store.
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(map_err(&e, "list", container, prefix)),
        };
        let mut out: Vec<BlobProperties> = items
            .into_iter()
            .filter_map(|item| {
                let name = item.name?;
                let p = item.properties.unwrap_or_default();
                Some(BlobProperties {
                    container: container.to_owned(),
                    name,
                    etag: etag_of(p.etag.as_ref()),
                    content_length: p.content_length.unwrap_or(0),
                    last_modified: to_chrono(p.last_modified),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete(
        &self,
        container: &str,
        name: &str,
        condition: Condition,
    ) -> Result<bool, BlobError> {
        check_names(container, name)?;
        let client = self.service()?.blob_client(container, name);
        let mut options = BlobClientDeleteOptions::default();
        if let Condition::IfMatch(etag) = &condition {
            options.if_match = Some(quoted(etag));
        }
        match client.delete(Some(options)).await {
            Ok(_) => Ok(true),
            Err(e) => match map_err(&e, "delete", container, name) {
                BlobError::NotFound { .. } if !matches!(condition, Condition::IfMatch(_)) => {
                    Ok(false)
                }
                other => Err(other),
            },
        }
    }

    async fn ensure_container(&self, container: &str) -> Result<(), BlobError> {
        blob_name::check_container(container).map_err(|reason| BlobError::InvalidName {
            name: container.to_owned(),
            reason,
        })?;
        let client = self.service()?.blob_container_client(container);
        match client.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(map_err(&e, "create container", container, "")),
        }
    }

    async fn acquire_lease(
        &self,
        container: &str,
        name: &str,
        seconds: u32,
    ) -> Result<Option<LeaseId>, BlobError> {
        check_names(container, name)?;
        let client = self.service()?.blob_client(container, name);
        let options = BlobClientAcquireLeaseOptions {
            proposed_lease_id: Some(uuid::Uuid::new_v4().to_string()),
            ..Default::default()
        };
        let secs = i32::try_from(seconds.clamp(15, 60)).unwrap_or(60);
        match client.acquire_lease(secs, Some(options)).await {
            Ok(r) => Ok(r.lease_id().ok().flatten().map(LeaseId)),
            Err(e) => match map_err(&e, "lease", container, name) {
                BlobError::Leased { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn renew_lease(
        &self,
        container: &str,
        name: &str,
        lease: &LeaseId,
    ) -> Result<(), BlobError> {
        check_names(container, name)?;
        let client = self.service()?.blob_client(container, name);
        client
            .renew_lease(lease.0.clone(), None)
            .await
            .map(|_| ())
            .map_err(|e| map_err(&e, "renew lease on", container, name))
    }

    async fn release_lease(
        &self,
        container: &str,
        name: &str,
        lease: &LeaseId,
    ) -> Result<(), BlobError> {
        check_names(container, name)?;
        let client = self.service()?.blob_client(container, name);
        client
            .release_lease(lease.0.clone(), None)
            .await
            .map(|_| ())
            .map_err(|e| map_err(&e, "release lease on", container, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_points_at_azurite_with_the_well_known_account() {
        let t = parse_connection_string("UseDevelopmentStorage=true").expect("parse");
        assert_eq!(
            t.endpoint().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert!(matches!(t, StorageTarget::Key { ref account, .. } if account == AZURITE_ACCOUNT));
    }

    #[test]
    fn account_connection_strings_build_the_public_endpoint() {
        let t = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=stfthub;AccountKey=AAAA;EndpointSuffix=core.windows.net",
        )
        .expect("parse");
        assert_eq!(
            t.endpoint().as_str(),
            "https://stfthub.blob.core.windows.net/"
        );
        let azurite = parse_connection_string(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:10999/devstoreaccount1/;"
        ))
        .expect("parse");
        // A trailing slash would make the SDK address `//container`, which Azurite refuses.
        assert_eq!(
            azurite.endpoint().as_str(),
            "http://127.0.0.1:10999/devstoreaccount1"
        );
    }

    #[test]
    fn bad_connection_strings_say_what_is_missing_without_echoing_the_key() {
        let e = parse_connection_string("AccountName=x;AccountKey=not base64!!")
            .expect_err("bad key")
            .to_string();
        assert!(e.contains("AccountKey is not base64"), "{e}");
        assert!(!e.contains("not base64!!"), "{e}");
        assert!(parse_connection_string("AccountName=x").is_err());
        assert!(parse_connection_string("garbage").is_err());
    }

    #[test]
    fn the_account_sas_matches_azures_string_to_sign() {
        let expiry = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let sas = account_sas(AZURITE_ACCOUNT, &Secret::new(AZURITE_KEY), expiry);
        assert!(sas.starts_with(
            "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2030%2D01%2D01T00%3A00%3A00Z&spr=https%2Chttp&sig="
        ));
        let sig = sas.rsplit("sig=").next().expect("sig");
        let sig = percent_encoding::percent_decode_str(sig).decode_utf8_lossy();
        // Computed with Python's hmac module over the same fields.
        assert_eq!(sig, "1Mh1LSBeLSI4EKTerU15bv2Ml2MomydA5vFxFzkTOyw=");
    }

    fn http_error(status: StatusCode, code: &str) -> azure_core::Error {
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::HttpResponse {
                status,
                error_code: Some(code.to_owned()),
                raw_response: None,
            },
            "service error",
        )
    }

    #[test]
    fn service_answers_map_to_the_ports_typed_errors() {
        let m = |s, code| map_err(&http_error(s, code), "write", "state", "runs/r.json");
        assert!(matches!(
            m(StatusCode::NotFound, "BlobNotFound"),
            BlobError::NotFound { .. }
        ));
        assert!(matches!(
            m(StatusCode::Conflict, "BlobAlreadyExists"),
            BlobError::AlreadyExists { .. }
        ));
        assert!(matches!(
            m(StatusCode::PreconditionFailed, "ConditionNotMet"),
            BlobError::PreconditionFailed { .. }
        ));
        assert!(matches!(
            m(StatusCode::PreconditionFailed, "LeaseIdMissing"),
            BlobError::Leased { .. }
        ));
        assert!(matches!(
            m(StatusCode::Conflict, "LeaseAlreadyPresent"),
            BlobError::Leased { .. }
        ));
        assert!(matches!(
            m(StatusCode::Conflict, "BlobUsesCustomerSpecifiedEncryption"),
            BlobError::EncryptionKey { .. }
        ));
        let denied = m(StatusCode::Forbidden, "AuthorizationPermissionMismatch");
        assert!(
            denied.to_string().contains("Storage Blob Data Contributor")
                && denied
                    .to_string()
                    .contains("AuthorizationPermissionMismatch"),
            "{denied}"
        );
        let busy = m(StatusCode::ServiceUnavailable, "ServerBusy");
        assert_eq!(
            crate::error::Classify::class(&busy),
            crate::error::ErrorClass::Retryable
        );
        let bad = m(StatusCode::BadRequest, "InvalidHeaderValue");
        assert_eq!(
            crate::error::Classify::class(&bad),
            crate::error::ErrorClass::Terminal
        );
    }

    #[test]
    fn redaction_removes_query_strings_from_error_text() {
        let r = redact(
            "error sending request for url (http://127.0.0.1:1/acct/c/b?sv=1&sig=SECRET): refused",
        );
        assert!(!r.contains("SECRET"), "{r}");
        assert!(
            r.contains("http://127.0.0.1:1/acct/c/b?<redacted>): refused"),
            "{r}"
        );
    }
}

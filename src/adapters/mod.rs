//! Implementations of the [`crate::ports`] traits, and the one place that turns a storage
//! setting into a store.

pub mod azure;
pub mod keyed;
pub mod local;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ports::{BlobError, BlobStore};
use azure::Secret;
use azure::credential::{CredentialError, Entra};
use azure::storage::{AzureBlobStore, StorageTarget, TargetError, parse_connection_string};

/// Where blobs live: `FTHUB_STORAGE` / `--storage`, or the Functions host's identity-based
/// `AzureWebJobsStorage__blobServiceUri` / `__accountName`, else the local directory.
#[derive(Clone)]
pub enum StoreSpec {
    /// The filesystem store under this directory.
    Local(PathBuf),
    /// A connection string (Azurite, or an account key or SAS).
    ConnectionString(Secret),
    /// A blob service URL reached with the process's Entra identity.
    Entra(azure_core::http::Url),
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The setting is malformed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// No usable identity.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The SDK refused the endpoint.
    #[error(transparent)]
    Client(#[from] BlobError),
}

impl StoreSpec {
    /// From a `--storage` value: `local`, an `https://` blob service URL, an account
    /// name, or a connection string. `home` is the local store's parent directory.
    ///
    /// # Errors
    /// When a URL does not parse.
    pub fn parse(value: &str, home: &Path) -> Result<Self, TargetError> {
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("local") {
            return Ok(Self::Local(home.join("storage")));
        }
        if v.starts_with("https://") || v.starts_with("http://") {
            let url = azure_core::http::Url::parse(v.trim_end_matches('/'))
                .map_err(|_| TargetError::Url(v.to_owned()))?;
            return Ok(Self::Entra(url));
        }
        if !v.contains('=') && blob_account_name(v) {
            return Self::parse(&format!("https://{v}.blob.core.windows.net"), home);
        }
        Ok(Self::ConnectionString(Secret::new(v)))
    }

    /// From settings (`get` reads app settings or the environment).
    ///
    /// # Errors
    /// When a setting is malformed.
    pub fn from_settings(
        get: impl Fn(&str) -> Option<String>,
        home: &Path,
    ) -> Result<Self, TargetError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("FTHUB_STORAGE") {
            return Self::parse(&v, home);
        }
        if let Some(uri) = get("AzureWebJobsStorage__blobServiceUri") {
            return Self::parse(&uri, home);
        }
        if let Some(account) = get("AzureWebJobsStorage__accountName") {
            return Self::parse(&format!("https://{account}.blob.core.windows.net"), home);
        }
        Ok(Self::Local(home.join("storage")))
    }

    /// Whether this needs an Entra credential.
    pub fn needs_identity(&self) -> bool {
        matches!(self, Self::Entra(_))
    }

    /// A description without secrets, for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(p) => format!("local store {}", p.display()),
            Self::ConnectionString(cs) => match parse_connection_string(cs.expose()) {
                Ok(t) => format!("Azure Storage {} (connection string)", t.endpoint()),
                Err(_) => "Azure Storage (malformed connection string)".into(),
            },
            Self::Entra(u) => format!("Azure Storage {u} (Entra ID)"),
        }
    }

    /// Opens the store, speaking storage service `version`; `identity` is asked for a
    /// credential only when one is needed.
    ///
    /// # Errors
    /// A malformed setting, no identity, or an endpoint the SDK refuses.
    pub fn open(
        &self,
        version: &str,
        identity: impl FnOnce() -> Result<Entra, CredentialError>,
    ) -> Result<Arc<dyn BlobStore>, OpenStoreError> {
        let target = match self {
            Self::Local(p) => return Ok(Arc::new(local::blob::FsBlobStore::new(p.clone()))),
            Self::ConnectionString(cs) => parse_connection_string(cs.expose())?,
            Self::Entra(url) => StorageTarget::Entra {
                endpoint: url.clone(),
                credential: identity()?.credential(),
            },
        };
        Ok(Arc::new(AzureBlobStore::new(target, version)?))
    }
}

/// Storage account names: 3–24 lowercase letters and digits.
fn blob_account_name(s: &str) -> bool {
    (3..=24).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_settings_choose_local_connection_string_or_identity() {
        let home = Path::new("/h");
        let none = |_: &str| None;
        assert!(
            matches!(StoreSpec::from_settings(none, home), Ok(StoreSpec::Local(p)) if p == Path::new("/h/storage"))
        );
        let mi = |k: &str| (k == "AzureWebJobsStorage__accountName").then(|| "stfthub".to_owned());
        match StoreSpec::from_settings(mi, home) {
            Ok(StoreSpec::Entra(u)) => {
                assert_eq!(u.as_str(), "https://stfthub.blob.core.windows.net/")
            }
            other => panic!("{other:?}"),
        }
        let explicit =
            |k: &str| (k == "FTHUB_STORAGE").then(|| "UseDevelopmentStorage=true".to_owned());
        assert!(matches!(
            StoreSpec::from_settings(explicit, home),
            Ok(StoreSpec::ConnectionString(_))
        ));
        assert!(matches!(
            StoreSpec::parse("stfthub", home),
            Ok(StoreSpec::Entra(_))
        ));
        assert!(matches!(
            StoreSpec::parse("local", home),
            Ok(StoreSpec::Local(_))
        ));
    }

    #[test]
    fn descriptions_never_show_the_key() {
        let cs = "DefaultEndpointsProtocol=https;AccountName=stx;AccountKey=c2VjcmV0LWtleQ==";
        let d = StoreSpec::parse(cs, Path::new("/h"))
            .expect("parse")
            .describe();
        assert!(d.contains("https://stx.blob.core.windows.net"), "{d}");
        assert!(!d.contains("c2VjcmV0"), "{d}");
        assert!(
            !format!(
                "{:?}",
                StoreSpec::parse(cs, Path::new("/h")).expect("parse")
            )
            .contains("c2VjcmV0")
        );
    }
}

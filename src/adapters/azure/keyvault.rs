//! Customer-provided keys from Key Vault secrets through the official
//! `azure_security_keyvault_secrets` crate. A manifest's `encryption_key` is a secret URL,
//! `https://{vault}.vault.azure.net/secrets/{name}[/{version}]`, whose value is the
//! base64 AES-256 key (as `az storage blob upload --encryption-key` takes it).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_security_keyvault_secrets::SecretClient;
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;

use crate::ports::{CustomerKey, KeyError, KeySource};

/// A parsed secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// `https://{vault}.vault.azure.net`.
    pub vault: String,
    /// Secret name.
    pub name: String,
    /// Version, or the latest.
    pub version: Option<String>,
}

/// Parses `https://{vault}/secrets/{name}[/{version}]`.
///
/// # Errors
/// When the reference is not a Key Vault secret URL.
pub fn parse_reference(reference: &str) -> Result<SecretRef, KeyError> {
    let invalid = |reason: &str| KeyError::Invalid {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(reference).map_err(|_| {
        invalid("expected https://{vault}.vault.azure.net/secrets/{name}[/{version}]")
    })?;
    if url.scheme() != "https" {
        return Err(invalid("Key Vault is reached over https only"));
    }
    let host = url.host_str().ok_or_else(|| invalid("no vault host"))?;
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    match segments.as_slice() {
        ["secrets", name] => Ok(SecretRef {
            vault: format!("https://{host}"),
            name: (*name).to_owned(),
            version: None,
        }),
        ["secrets", name, version] => Ok(SecretRef {
            vault: format!("https://{host}"),
            name: (*name).to_owned(),
            version: Some((*version).to_owned()),
        }),
        _ => Err(invalid("the path must be /secrets/{name}[/{version}]")),
    }
}

/// What a failed secret read means: a missing role or a passing outage can be retried, a
/// missing secret cannot.
fn fetch_error(reference: &str, status: Option<u16>) -> KeyError {
    let unavailable = |reason: String| KeyError::Unavailable {
        reference: reference.to_owned(),
        reason,
    };
    match status {
        Some(403) => unavailable(
            "HTTP 403: assign the identity the \"Key Vault Secrets User\" role on the vault".into(),
        ),
        Some(404) => KeyError::Invalid {
            reference: reference.to_owned(),
            reason: "no such secret or version".into(),
        },
        Some(s) => unavailable(format!("HTTP {s}")),
        None => unavailable("no answer from Key Vault".into()),
    }
}

/// Key Vault with the process's Entra identity (role: Key Vault Secrets User).
#[derive(Clone)]
pub struct KeyVaultKeys {
    credential: Arc<dyn TokenCredential>,
}

impl fmt::Debug for KeyVaultKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyVaultKeys")
    }
}

impl KeyVaultKeys {
    /// Key Vault through `credential`.
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self { credential }
    }
}

#[async_trait]
impl KeySource for KeyVaultKeys {
    async fn customer_key(&self, reference: &str) -> Result<CustomerKey, KeyError> {
        let r = parse_reference(reference)?;
        let unavailable = |reason: String| KeyError::Unavailable {
            reference: reference.to_owned(),
            reason,
        };
        let client = SecretClient::new(&r.vault, self.credential.clone(), None)
            .map_err(|e| unavailable(e.to_string()))?;
        let options = SecretClientGetSecretOptions {
            secret_version: r.version.clone(),
            ..Default::default()
        };
        let secret = client
            .get_secret(&r.name, Some(options))
            .await
            .map_err(|e| fetch_error(reference, e.http_status().map(u16::from)))?
            .into_model()
            .map_err(|e| unavailable(e.to_string()))?;
        let value = secret.value.unwrap_or_default();
        CustomerKey::from_base64(&value).map_err(|reason| KeyError::Invalid {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_name_the_vault_secret_and_optional_version() {
        assert_eq!(
            parse_reference("https://kv-fthub.vault.azure.net/secrets/datasets-cpk").expect("ok"),
            SecretRef {
                vault: "https://kv-fthub.vault.azure.net".into(),
                name: "datasets-cpk".into(),
                version: None
            }
        );
        assert_eq!(
            parse_reference("https://kv-fthub.vault.azure.net/secrets/datasets-cpk/0f1e2d")
                .expect("ok")
                .version
                .as_deref(),
            Some("0f1e2d")
        );
        for bad in [
            "datasets-cpk",
            "http://kv.vault.azure.net/secrets/x",
            "https://kv.vault.azure.net/keys/x",
        ] {
            assert!(
                matches!(parse_reference(bad), Err(KeyError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_refused_read_names_the_role_and_only_a_missing_secret_is_final() {
        use crate::error::{Classify, ErrorClass};
        let denied = fetch_error("r", Some(403));
        assert!(
            denied.to_string().contains("Key Vault Secrets User"),
            "{denied}"
        );
        assert_eq!(
            denied.class(),
            ErrorClass::Retryable,
            "role assignments propagate"
        );
        assert_eq!(fetch_error("r", Some(404)).class(), ErrorClass::Terminal);
        assert_eq!(fetch_error("r", Some(503)).class(), ErrorClass::Retryable);
        assert_eq!(fetch_error("r", None).class(), ErrorClass::Retryable);
    }
}

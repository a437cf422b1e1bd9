//! Entra ID for every Azure call, through `azure_identity` 1.x: one credential serves
//! Storage, Service Bus, the Azure OpenAI data plane and ARM.
//!
//! Which credential is chosen from the environment, in this order:
//! workload identity (`AZURE_FEDERATED_TOKEN_FILE`, as AKS and federated CI set it),
//! managed identity (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER` inside Azure Functions and App
//! Service, or IMDS on a VM; `AZURE_CLIENT_ID` selects a user-assigned identity), and
//! otherwise the developer's Azure CLI / Azure Developer CLI login.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, DeveloperToolsCredential,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::{Secret, TokenSource};
use crate::ports::AoaiError;

/// Entra scope of Service Bus.
pub const SERVICE_BUS_SCOPE: &str = "https://servicebus.azure.net/.default";

/// Which kind of credential is in use (for logs and errors; holds no secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Federated workload identity.
    Workload,
    /// Managed identity (App Service protocol or IMDS).
    ManagedIdentity,
    /// The developer's Azure CLI or Azure Developer CLI login.
    Developer,
}

/// A credential could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the {kind:?} credential: {reason}")]
pub struct CredentialError {
    /// The kind that was attempted.
    pub kind: Kind,
    /// Why (the SDK's message; it never contains a secret).
    pub reason: String,
}

/// The process's Entra identity.
#[derive(Clone)]
pub struct Entra {
    kind: Kind,
    credential: Arc<dyn TokenCredential>,
    tenants: Arc<Mutex<HashMap<String, Arc<dyn TokenCredential>>>>,
}

impl fmt::Debug for Entra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entra({:?})", self.kind)
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Entra {
    /// The credential the environment calls for (see the module docs).
    ///
    /// # Errors
    /// When the chosen credential cannot be configured.
    pub fn from_env() -> Result<Self, CredentialError> {
        let kind = if var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            Kind::Workload
        } else if var("IDENTITY_ENDPOINT").is_some() || var("MSI_ENDPOINT").is_some() {
            Kind::ManagedIdentity
        } else {
            Kind::Developer
        };
        Self::of_kind(kind)
    }

    /// A credential of a given kind.
    ///
    /// # Errors
    /// When it cannot be configured.
    pub fn of_kind(kind: Kind) -> Result<Self, CredentialError> {
        let fail = |e: azure_core::Error| CredentialError {
            kind,
            reason: e.to_string(),
        };
        let credential: Arc<dyn TokenCredential> = match kind {
            Kind::Workload => WorkloadIdentityCredential::new(None).map_err(fail)?,
            Kind::ManagedIdentity => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: var("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                ManagedIdentityCredential::new(Some(options)).map_err(fail)?
            }
            Kind::Developer => DeveloperToolsCredential::new(None).map_err(fail)?,
        };
        Ok(Self {
            kind,
            credential,
            tenants: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The SDK credential, for SDK clients (Storage, Key Vault).
    pub fn credential(&self) -> Arc<dyn TokenCredential> {
        self.credential.clone()
    }

    /// The same identity signing in to another tenant (cross-tenant deployments need an
    /// auxiliary token). A managed identity lives in one tenant only.
    fn for_tenant(&self, tenant: &str) -> Result<Arc<dyn TokenCredential>, String> {
        let mut cache = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.get(tenant) {
            return Ok(c.clone());
        }
        let c: Arc<dyn TokenCredential> = match self.kind {
            Kind::ManagedIdentity => {
                return Err("a managed identity cannot issue tokens for another tenant; use a multi-tenant workload identity".into());
            }
            Kind::Workload => {
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    tenant_id: Some(tenant.to_owned()),
                    ..Default::default()
                }))
                .map_err(|e| e.to_string())?
            }
            Kind::Developer => AzureCliCredential::new(Some(AzureCliCredentialOptions {
                tenant_id: Some(tenant.to_owned()),
                ..Default::default()
            }))
            .map_err(|e| e.to_string())?,
        };
        cache.insert(tenant.to_owned(), c.clone());
        Ok(c)
    }
}

#[async_trait]
impl TokenSource for Entra {
    async fn token(&self, scope: &str, tenant: Option<&str>) -> Result<Secret, AoaiError> {
        let auth = |reason: String| AoaiError::Auth {
            scope: scope.to_owned(),
            reason,
        };
        let credential = match tenant {
            None => self.credential.clone(),
            Some(t) => self.for_tenant(t).map_err(auth)?,
        };
        let token = credential
            .get_token(&[scope], None)
            .await
            .map_err(|e| auth(format!("{:?} credential: {e}", self.kind)))?;
        Ok(Secret::new(token.token.secret()))
    }
}

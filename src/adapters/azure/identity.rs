//! Managed identity inside Azure Functions: the App Service identity protocol
//! (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), with tokens cached until shortly before expiry.
//! Workload identity and developer credentials arrive with the Azure adapters (issue #6).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Secret, TokenSource};
use crate::ports::AoaiError;

/// The App Service / Functions managed identity.
#[derive(Debug)]
pub struct ManagedIdentity {
    endpoint: String,
    header: Secret,
    client_id: Option<String>,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Secret, i64)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_on: serde_json::Value,
}

impl ManagedIdentity {
    /// From `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (and `AZURE_CLIENT_ID` for a
    /// user-assigned identity); `None` outside Azure.
    pub fn from_env() -> Option<Self> {
        let endpoint = std::env::var("IDENTITY_ENDPOINT").ok()?;
        let header = std::env::var("IDENTITY_HEADER").ok()?;
        Some(Self {
            endpoint,
            header: Secret::new(header),
            client_id: std::env::var("AZURE_CLIENT_ID")
                .ok()
                .filter(|s| !s.is_empty()),
            http: reqwest::Client::new(),
            cache: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait]
impl TokenSource for ManagedIdentity {
    async fn token(&self, scope: &str, tenant: Option<&str>) -> Result<Secret, AoaiError> {
        let auth = |reason: String| AoaiError::Auth {
            scope: scope.to_owned(),
            reason,
        };
        if tenant.is_some() {
            return Err(auth("a managed identity cannot issue tokens for another tenant; configure a multi-tenant application".into()));
        }
        let now = chrono::Utc::now().timestamp();
        if let Ok(c) = self.cache.lock()
            && let Some((t, exp)) = c.get(scope)
            && *exp - 300 > now
        {
            return Ok(t.clone());
        }
        let resource = scope.trim_end_matches("/.default");
        let mut req = self
            .http
            .get(&self.endpoint)
            .query(&[("resource", resource), ("api-version", "2019-08-01")])
            .header("X-IDENTITY-HEADER", self.header.expose());
        if let Some(id) = &self.client_id {
            req = req.query(&[("client_id", id.as_str())]);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| auth(format!("identity endpoint unreachable: {e}")))?;
        if !resp.status().is_success() {
            return Err(auth(format!(
                "identity endpoint answered {}",
                resp.status()
            )));
        }
        let t: TokenResponse = resp
            .json()
            .await
            .map_err(|e| auth(format!("unexpected token response: {e}")))?;
        let exp = match &t.expires_on {
            serde_json::Value::String(s) => s.parse().unwrap_or(now + 3600),
            serde_json::Value::Number(n) => n.as_i64().unwrap_or(now + 3600),
            _ => now + 3600,
        };
        let token = Secret::new(t.access_token);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(scope.to_owned(), (token.clone(), exp));
        }
        Ok(token)
    }
}

//! ARM deployments on Azure OpenAI accounts (Hub and Spokes, any subscription or tenant).
//!
//! PUT is a long-running operation: when the answer carries `Azure-AsyncOperation` the
//! operation resource is polled, otherwise the deployment is read until its
//! `provisioningState` is terminal. Every request carries a token of the target account's own
//! tenant in `Authorization` (ARM's primary token must come from a tenant that can manage
//! the subscription); a cross-tenant PUT adds the source account's tenant's token in
//! `x-ms-authorization-auxiliary` ("Authenticate requests across tenants").

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{ARM_SCOPE, Http, TokenSource};
use crate::domain::aoai::{Deployment, DeploymentSpec, is_terminal_provisioning};
use crate::domain::topology::Account;
use crate::ports::{AoaiError, Deployments};

/// The ARM API version for deployments (the one Learn's fine-tuned deployment examples use).
pub const ARM_API_VERSION: &str = "2024-10-01";
/// The ARM API version Learn documents for Developer-tier deployments ("Test a fine-tuned
/// model", fine-tune-test.md: `api-version=2025-07-01-preview`, sku `developertier`).
pub const ARM_DEVELOPER_API_VERSION: &str = "2025-07-01-preview";

/// Longest server-requested wait between two polls that is honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// `Retry-After` in whole seconds (ARM long-running operations), if the answer has one.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// ARM client.
#[derive(Debug, Clone)]
pub struct Arm {
    http: Http,
    base: String,
    api_version: String,
    tokens: std::sync::Arc<dyn TokenSource>,
    /// The tenant the process signs in to by default (the Hub's); tokens for it are asked
    /// for without a tenant, so a managed identity serves them.
    home_tenant: String,
    poll_interval: Duration,
    max_wait: Duration,
}

impl Arm {
    /// `base` is `https://management.azure.com` (or the emulator's ARM base); `home_tenant`
    /// the tenant `tokens` signs in to by default.
    pub fn new(
        http: Http,
        base: &str,
        tokens: std::sync::Arc<dyn TokenSource>,
        home_tenant: &str,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_version: ARM_API_VERSION.to_owned(),
            tokens,
            home_tenant: home_tenant.to_owned(),
            poll_interval: Duration::from_secs(5),
            max_wait: Duration::from_secs(15 * 60),
        }
    }

    /// Sets how often and how long long-running operations are polled.
    pub fn with_polling(mut self, interval: Duration, max_wait: Duration) -> Self {
        self.poll_interval = interval;
        self.max_wait = max_wait;
        self
    }

    fn deployment_url(&self, account_id: &str, name: Option<&str>) -> String {
        let id = account_id.trim_end_matches('/');
        match name {
            Some(n) => format!("{}{id}/deployments/{n}", self.base),
            None => format!("{}{id}/deployments", self.base),
        }
    }

    /// A token of `tenant` (without a tenant for the home one).
    async fn token_of(&self, tenant: &str) -> Result<super::Secret, AoaiError> {
        let other = (!tenant.is_empty() && tenant != self.home_tenant).then_some(tenant);
        self.tokens.token(ARM_SCOPE, other).await
    }

    async fn authed(
        &self,
        method: reqwest::Method,
        url: &str,
        with_version: bool,
        tenant: &str,
    ) -> Result<reqwest::RequestBuilder, AoaiError> {
        self.authed_at(
            method,
            url,
            with_version.then_some(self.api_version.as_str()),
            tenant,
        )
        .await
    }

    async fn authed_at(
        &self,
        method: reqwest::Method,
        url: &str,
        version: Option<&str>,
        tenant: &str,
    ) -> Result<reqwest::RequestBuilder, AoaiError> {
        let mut req = self.http.client().request(method, url);
        if let Some(v) = version {
            req = req.query(&[("api-version", v)]);
        }
        Ok(req.bearer_auth(self.token_of(tenant).await?.expose()))
    }

    /// The wait before the next poll: what the service asked, else the client's interval.
    fn next_poll(&self, asked: Option<Duration>) -> Duration {
        asked.map_or(self.poll_interval, |a| a.max(self.poll_interval))
    }

    async fn wait_for(
        &self,
        operation: &str,
        async_url: Option<String>,
        first_wait: Option<Duration>,
        account: &Account,
        name: &str,
    ) -> Result<Deployment, AoaiError> {
        let deadline = tokio::time::Instant::now() + self.max_wait;
        if let Some(url) = async_url {
            let mut wait = first_wait;
            loop {
                tokio::time::sleep(self.next_poll(wait)).await;
                let resp = self
                    .http
                    .send(operation, || async {
                        self.authed(reqwest::Method::GET, &url, false, &account.tenant)
                            .await
                    })
                    .await?;
                wait = retry_after(&resp);
                let op: Value = resp.json().await.map_err(|e| AoaiError::Decode {
                    operation: operation.into(),
                    detail: e.to_string(),
                })?;
                let status = op
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("InProgress")
                    .to_owned();
                if is_terminal_provisioning(&status) {
                    if status != "Succeeded" {
                        let detail = op
                            .pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned();
                        return Err(AoaiError::Failed {
                            operation: operation.into(),
                            state: status,
                            detail,
                        });
                    }
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(AoaiError::Failed {
                        operation: operation.into(),
                        state: status,
                        detail: "still running at the wait limit".into(),
                    });
                }
            }
        }
        // Confirm with the deployment itself (also the only signal when no operation URL came back).
        loop {
            let Some(d) = self.get(account, name).await? else {
                return Err(AoaiError::Failed {
                    operation: operation.into(),
                    state: "NotFound".into(),
                    detail: "the deployment vanished".into(),
                });
            };
            let state = d
                .properties
                .provisioning_state
                .clone()
                .unwrap_or_else(|| "Succeeded".into());
            if state == "Succeeded" {
                return Ok(d);
            }
            if is_terminal_provisioning(&state) {
                return Err(AoaiError::Failed {
                    operation: operation.into(),
                    state,
                    detail: String::new(),
                });
            }
            if tokio::time::Instant::now() > deadline {
                return Err(AoaiError::Failed {
                    operation: operation.into(),
                    state,
                    detail: "still provisioning at the wait limit".into(),
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }
}

#[async_trait]
impl Deployments for Arm {
    async fn put(
        &self,
        account: &Account,
        name: &str,
        spec: &DeploymentSpec,
        source_tenant: Option<&str>,
    ) -> Result<Deployment, AoaiError> {
        let url = self.deployment_url(&account.resource_id, Some(name));
        let body = spec.body();
        let operation = format!("deploy {name}");
        let version = if spec.sku.eq_ignore_ascii_case("developertier") {
            ARM_DEVELOPER_API_VERSION
        } else {
            self.api_version.as_str()
        };
        let resp = self
            .http
            .send(&operation, || async {
                let mut req = self
                    .authed_at(reqwest::Method::PUT, &url, Some(version), &account.tenant)
                    .await?
                    .json(&body);
                if let Some(t) = source_tenant {
                    let aux = self.token_of(t).await?;
                    req = req.header(
                        "x-ms-authorization-auxiliary",
                        format!("Bearer {}", aux.expose()),
                    );
                }
                Ok(req)
            })
            .await?;
        let async_url = resp
            .headers()
            .get("azure-asyncoperation")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let asked = retry_after(&resp);
        self.wait_for(&operation, async_url, asked, account, name)
            .await
    }

    async fn get(&self, account: &Account, name: &str) -> Result<Option<Deployment>, AoaiError> {
        let url = self.deployment_url(&account.resource_id, Some(name));
        match self
            .http
            .json::<Deployment, _, _>("get deployment", || async {
                self.authed(reqwest::Method::GET, &url, true, &account.tenant)
                    .await
            })
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(AoaiError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, account: &Account) -> Result<Vec<Deployment>, AoaiError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let (url, versioned) = match &next {
                Some(n) => (n.clone(), false),
                None => (self.deployment_url(&account.resource_id, None), true),
            };
            let page: Value = self
                .http
                .json("list deployments", || async {
                    self.authed(reqwest::Method::GET, &url, versioned, &account.tenant)
                        .await
                })
                .await?;
            let items = page.get("value").cloned().unwrap_or(Value::Array(vec![]));
            let batch: Vec<Deployment> =
                serde_json::from_value(items).map_err(|e| AoaiError::Decode {
                    operation: "list deployments".into(),
                    detail: e.to_string(),
                })?;
            out.extend(batch);
            match page.get("nextLink").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => next = Some(n.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// DELETE is asynchronous (202 with `Location`): wait until the deployment is gone, so a
    /// same-name PUT that follows is not refused while the old one is still being deleted.
    async fn delete(&self, account: &Account, name: &str) -> Result<bool, AoaiError> {
        let url = self.deployment_url(&account.resource_id, Some(name));
        let operation = format!("delete {name}");
        let resp = self
            .http
            .send(&operation, || async {
                self.authed(reqwest::Method::DELETE, &url, true, &account.tenant)
                    .await
            })
            .await?;
        match resp.status().as_u16() {
            204 => return Ok(false),
            202 => {}
            _ => return Ok(true),
        }
        let deadline = tokio::time::Instant::now() + self.max_wait;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut wait = retry_after(&resp);
        if let Some(loc) = location {
            loop {
                tokio::time::sleep(self.next_poll(wait)).await;
                let r = self
                    .http
                    .send(&operation, || async {
                        self.authed(reqwest::Method::GET, &loc, false, &account.tenant)
                            .await
                    })
                    .await?;
                if r.status().as_u16() != 202 {
                    break;
                }
                wait = retry_after(&r);
                if tokio::time::Instant::now() > deadline {
                    return Err(AoaiError::Failed {
                        operation,
                        state: "Deleting".into(),
                        detail: "still deleting at the wait limit".into(),
                    });
                }
            }
        }
        // Confirm: gone means 404 on the deployment itself.
        while self.get(account, name).await?.is_some() {
            if tokio::time::Instant::now() > deadline {
                return Err(AoaiError::Failed {
                    operation,
                    state: "Deleting".into(),
                    detail: "still listed at the wait limit".into(),
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
        Ok(true)
    }
}

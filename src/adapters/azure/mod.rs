//! Azure adapters: the Azure OpenAI data plane, ARM deployments and inference, over one
//! shared reqwest connection pool with rustls.
//!
//! Every call goes through [`Http::send`], which retries only 408/409/429/5xx and
//! connection failures, honours `retry-after-ms`, `x-ms-retry-after-ms` and `retry-after`
//! (seconds or an HTTP date), backs off exponentially with jitter, and stops within a total
//! time budget so an invocation never outlives its function timeout. Keys and tokens are
//! [`Secret`]s: they never reach a log line or an error.

pub mod arm;
pub mod credential;
pub mod dataplane;
pub mod keyvault;
pub mod servicebus;
pub mod storage;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable as _};
use serde_json::Value;

use crate::ports::AoaiError;

/// Entra scope of the Azure OpenAI data plane.
pub const COGNITIVE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// Entra scope of ARM.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// A key or token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Supplies Entra tokens (managed identity, workload identity, developer credentials).
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A bearer token for `scope`, optionally from another tenant (cross-tenant deployment).
    async fn token(&self, scope: &str, tenant: Option<&str>) -> Result<Secret, AoaiError>;
}

/// A fixed token, for local use and tests.
#[derive(Debug, Clone)]
pub struct StaticToken(pub Secret);

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(&self, _scope: &str, _tenant: Option<&str>) -> Result<Secret, AoaiError> {
        Ok(self.0.clone())
    }
}

/// Tokens for the emulator, shaped as Entra's are: a JWT whose `tid` claim names the tenant
/// it was issued for (the home tenant when none is asked) and `aud` the scope, signed with
/// the local key (HS256). The emulator reads `tid` to refuse a token of the wrong tenant, as
/// Azure does; the key itself never travels.
#[derive(Debug, Clone)]
pub struct LocalTokens {
    home: String,
    key: Secret,
}

impl LocalTokens {
    /// Tokens of `home` (and any other tenant asked for) signed with `key`.
    pub fn new(home: &str, key: Secret) -> Self {
        Self {
            home: home.to_owned(),
            key,
        }
    }

    /// The token for `scope` in `tenant` (the home tenant when `None`).
    pub fn issue(&self, scope: &str, tenant: Option<&str>) -> Secret {
        use base64::Engine as _;
        use hmac::Mac as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({"tid": tenant.unwrap_or(&self.home), "aud": scope, "iss": "fthub-local"});
        let payload = b64.encode(claims.to_string());
        let signed = format!("{header}.{payload}");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.key.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(signed.as_bytes());
        Secret::new(format!(
            "{signed}.{}",
            b64.encode(mac.finalize().into_bytes())
        ))
    }
}

#[async_trait]
impl TokenSource for LocalTokens {
    async fn token(&self, scope: &str, tenant: Option<&str>) -> Result<Secret, AoaiError> {
        Ok(self.issue(scope, tenant))
    }
}

/// The tenant (`tid` claim) of a JWT bearer token; `None` when the token is not a JWT.
pub use aoai_facts::rules::token_tenant;

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `api-key` header (data plane only).
    ApiKey(Secret),
    /// `Authorization: Bearer` from a token source.
    Bearer(Arc<dyn TokenSource>),
}

impl Auth {
    /// Authenticates `req`; a bearer token is asked of `tenant` (the home one when `None`).
    async fn apply(
        &self,
        req: reqwest::RequestBuilder,
        scope: &str,
        tenant: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, AoaiError> {
        Ok(match self {
            Auth::ApiKey(k) => req.header("api-key", k.expose()),
            Auth::Bearer(src) => req.bearer_auth(src.token(scope, tenant).await?.expose()),
        })
    }
}

/// Retry bounds.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts including the first.
    pub max_attempts: usize,
    /// First backoff delay.
    pub min_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Server hints above this are ignored in favour of the backoff.
    pub max_server_delay: Duration,
    /// Total time for all attempts and waits of one call.
    pub budget: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_server_delay: Duration::from_secs(120),
            budget: Duration::from_secs(90),
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

/// The shared HTTP core: one connection pool, one retry policy.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    retry: RetryPolicy,
}

/// Parses the server's delay hint: `retry-after-ms`, `x-ms-retry-after-ms`, then
/// `retry-after` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    for k in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v >= 0.0)
        {
            return Some(Duration::from_millis(ms as u64));
        }
    }
    let v = get("retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return (s >= 0.0).then(|| Duration::from_millis((s * 1000.0) as u64));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

/// Reads an error answer in either envelope: `{error:{code,message}}` (Azure and OpenAI).
async fn http_error(operation: &str, resp: reqwest::Response) -> AoaiError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let err = body.get("error").unwrap_or(&body);
    let text = |k: &str| {
        err.get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    };
    AoaiError::Http {
        operation: operation.to_owned(),
        status,
        code: text("code").unwrap_or_else(|| status.to_string()),
        message: text("message").unwrap_or_default(),
        retry_after,
    }
}

impl Http {
    /// A core with its own connection pool.
    pub fn new(retry: RetryPolicy) -> Self {
        let client = reqwest::Client::builder()
            .timeout(retry.attempt_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("fthub/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client, retry }
    }

    /// The underlying client (to build requests).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `make` builds, retrying transient failures within the policy.
    /// Non-2xx answers become [`AoaiError::Http`]; a transient failure that outlives the
    /// budget becomes [`AoaiError::Exhausted`].
    pub async fn send<F, Fut>(
        &self,
        operation: &str,
        make: F,
    ) -> Result<reqwest::Response, AoaiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<reqwest::RequestBuilder, AoaiError>>,
    {
        self.send_when(operation, make, AoaiError::is_transient)
            .await
    }

    /// Sends a request that must not take effect twice (a create): failures that prove it
    /// did nothing (throttling, a refused connection) are retried as usual; one that may have
    /// taken effect comes back at once, for the caller to look before resending.
    pub async fn send_once<F, Fut>(
        &self,
        operation: &str,
        make: F,
    ) -> Result<reqwest::Response, AoaiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<reqwest::RequestBuilder, AoaiError>>,
    {
        self.send_when(operation, make, |e: &AoaiError| {
            e.is_transient() && !e.may_have_taken_effect()
        })
        .await
    }

    async fn send_when<F, Fut>(
        &self,
        operation: &str,
        make: F,
        retry: fn(&AoaiError) -> bool,
    ) -> Result<reqwest::Response, AoaiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<reqwest::RequestBuilder, AoaiError>>,
    {
        let started = Instant::now();
        let deadline = started + self.retry.budget;
        let attempts = AtomicUsize::new(0);
        let attempt = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            let resp = make()
                .await?
                .send()
                .await
                .map_err(|e| AoaiError::Transport {
                    operation: operation.to_owned(),
                    sent: !e.is_connect(),
                    source: Box::new(e),
                })?;
            if resp.status().is_success() {
                Ok(resp)
            } else {
                Err(http_error(operation, resp).await)
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1))
            .with_jitter();
        let max_hint = self.retry.max_server_delay;
        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(retry)
            .adjust(|e: &AoaiError, backoff_delay| {
                let planned = backoff_delay?;
                let wait = e.retry_after().filter(|h| *h <= max_hint).unwrap_or(planned);
                (Instant::now() + wait <= deadline).then_some(wait)
            })
            .notify(|e: &AoaiError, wait| tracing::debug!(%operation, error = %e, wait_ms = wait.as_millis() as u64, "Retrying."))
            .await;
        match result {
            Err(e) if e.is_transient() => Err(AoaiError::Exhausted {
                operation: operation.to_owned(),
                attempts: attempts.load(Ordering::Relaxed),
                elapsed_ms: started.elapsed().as_millis() as u64,
                last: Box::new(e),
            }),
            other => other,
        }
    }

    /// Sends and decodes a JSON answer.
    pub async fn json<T, F, Fut>(&self, operation: &str, make: F) -> Result<T, AoaiError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<reqwest::RequestBuilder, AoaiError>>,
    {
        let resp = self.send(operation, make).await?;
        Self::decode(operation, resp).await
    }

    /// [`Http::send_once`], decoding a JSON answer.
    pub async fn json_once<T, F, Fut>(&self, operation: &str, make: F) -> Result<T, AoaiError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<reqwest::RequestBuilder, AoaiError>>,
    {
        let resp = self.send_once(operation, make).await?;
        Self::decode(operation, resp).await
    }

    async fn decode<T: serde::de::DeserializeOwned>(
        operation: &str,
        resp: reqwest::Response,
    ) -> Result<T, AoaiError> {
        let bytes = resp.bytes().await.map_err(|e| AoaiError::Transport {
            operation: operation.to_owned(),
            sent: true,
            source: Box::new(e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| AoaiError::Decode {
            operation: operation.to_owned(),
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn retry_hints_are_read_in_the_documented_order() {
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ms-retry-after-ms", "1200")])),
            Some(Duration::from_millis(1200))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "6")])),
            Some(Duration::from_secs(6))
        );
        let past = retry_after(&headers(&[(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        )]));
        assert_eq!(past, Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[])), None);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!format!("{:?}", Auth::ApiKey(s)).contains("very-secret"));
    }
}

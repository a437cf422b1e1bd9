//! Publishing to Service Bus over its REST send API, for what the host's output bindings
//! cannot do: broker properties (MessageId for duplicate detection, CorrelationId = run
//! id, Subject) on messages the CLI sends, such as signed approvals.
//!
//! `POST https://{namespace}/{entity}/messages` with the message body, its content type,
//! a `BrokerProperties` JSON header and one header per application property. Auth is an
//! Entra token for `https://servicebus.azure.net/.default` (where local auth is disabled,
//! as our infra does) or a SAS from a connection string. Transient answers (408, 429, 5xx,
//! no answer) are retried through the shared [`Http`] core within its budget.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::Mac as _;
use serde_json::Value;

use super::credential::SERVICE_BUS_SCOPE;
use super::{Http, Secret, TokenSource};
use crate::error::{Classify, ErrorClass};
use crate::ports::{AoaiError, OutgoingMessage};

/// How the sender signs in.
#[derive(Clone)]
pub enum BusAuth {
    /// Shared access key (connection string `SharedAccessKeyName` + `SharedAccessKey`).
    Sas {
        /// Policy name.
        key_name: String,
        /// Key.
        key: Secret,
    },
    /// Entra ID.
    Entra(Arc<dyn TokenSource>),
}

impl fmt::Debug for BusAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusAuth::Sas { key_name, .. } => write!(f, "Sas({key_name})"),
            BusAuth::Entra(t) => write!(f, "Entra({t:?})"),
        }
    }
}

/// The `BrokerProperties` header: JSON with the REST API's names (`Label` is Subject).
pub fn broker_properties(msg: &OutgoingMessage) -> String {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("MessageId", &msg.message_id),
        ("CorrelationId", &msg.correlation_id),
        ("Label", &msg.subject),
    ] {
        if let Some(v) = v {
            m.insert(k.to_owned(), Value::from(v.as_str()));
        }
    }
    Value::Object(m).to_string()
}

/// A send failed.
#[derive(Debug, thiserror::Error)]
pub enum BusSendError {
    /// The connection string or namespace is malformed.
    #[error("Service Bus connection: {0}")]
    Config(String),
    /// The identity may not send.
    #[error(
        "Service Bus refused to let this identity send to {entity} (HTTP {status}): assign it the \"Azure Service Bus Data Sender\" role on the namespace or the entity"
    )]
    Denied {
        /// Entity.
        entity: String,
        /// 401 or 403.
        status: u16,
    },
    /// Any other failure, after retries.
    #[error("sending to Service Bus {entity}: {source}")]
    Send {
        /// Entity.
        entity: String,
        /// Cause.
        #[source]
        source: AoaiError,
    },
}

impl Classify for BusSendError {
    fn class(&self) -> ErrorClass {
        match self {
            BusSendError::Config(_) => ErrorClass::Terminal,
            BusSendError::Denied { .. } => ErrorClass::Retryable,
            BusSendError::Send { source, .. } => source.class(),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            BusSendError::Config(_) => "bus_config",
            BusSendError::Denied { .. } => "bus_forbidden",
            BusSendError::Send { .. } => "bus_send",
        }
    }
}

/// A sender to one namespace.
#[derive(Debug, Clone)]
pub struct ServiceBusSender {
    http: Http,
    /// `https://{namespace}` (or a loopback URL in tests).
    base: String,
    auth: BusAuth,
}

/// A Service Bus SAS token for `resource` (the entity URL), valid until `expiry`: the
/// documented HMAC-SHA256 over the URL-encoded resource and the expiry, keyed with the key
/// text's UTF-8 bytes.
pub fn sas_token(resource: &str, key_name: &str, key: &Secret, expiry: DateTime<Utc>) -> String {
    // As the documented samples encode (encodeURIComponent / quote_plus): `-_.~` stay.
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SET).to_string();
    let se = expiry.timestamp();
    let sr = enc(resource);
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{sr}\n{se}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={se}&skn={}",
        enc(&sig),
        enc(key_name)
    )
}

impl ServiceBusSender {
    /// From `Endpoint=sb://{ns}/;SharedAccessKeyName=…;SharedAccessKey=…`.
    ///
    /// # Errors
    /// When a part is missing.
    pub fn from_connection_string(http: Http, cs: &str) -> Result<Self, BusSendError> {
        let mut endpoint = None;
        let mut key_name = None;
        let mut key = None;
        for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(BusSendError::Config("every part must be Name=Value".into()));
            };
            match k.to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(v.to_owned()),
                "sharedaccesskeyname" => key_name = Some(v.to_owned()),
                "sharedaccesskey" => key = Some(Secret::new(v)),
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or_else(|| BusSendError::Config("needs Endpoint".into()))?;
        // `sb://` is the AMQP form; REST goes over HTTPS. An explicit http(s) URL is kept
        // (a local Service Bus emulator or test server).
        let base = match endpoint.strip_prefix("sb://") {
            Some(host) => format!("https://{}", host.trim_end_matches('/')),
            None => endpoint.trim_end_matches('/').to_owned(),
        };
        let (Some(key_name), Some(key)) = (key_name, key) else {
            return Err(BusSendError::Config(
                "needs SharedAccessKeyName and SharedAccessKey (or use --bus with a namespace name and Entra ID)".into(),
            ));
        };
        Ok(Self::new(http, &base, BusAuth::Sas { key_name, key }))
    }

    /// To a namespace (`name`, `name.servicebus.windows.net`) with an Entra identity.
    pub fn with_identity(http: Http, namespace: &str, tokens: Arc<dyn TokenSource>) -> Self {
        let host = if namespace.contains('.') {
            namespace.to_owned()
        } else {
            format!("{namespace}.servicebus.windows.net")
        };
        Self::new(http, &format!("https://{host}"), BusAuth::Entra(tokens))
    }

    /// To an explicit base URL (`https://…`, or loopback in tests).
    pub fn new(http: Http, base: &str, auth: BusAuth) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        }
    }

    /// Sends one message to a queue or topic.
    ///
    /// # Errors
    /// Refused credentials (naming the role to assign) or a failure after retries.
    pub async fn send(&self, entity: &str, msg: &OutgoingMessage) -> Result<(), BusSendError> {
        let resource = format!("{}/{entity}", self.base);
        let url = format!("{resource}/messages");
        let broker = broker_properties(msg);
        let op = format!("send to {entity}");
        let result = self
            .http
            .send(&op, || async {
                let auth = match &self.auth {
                    BusAuth::Sas { key_name, key } => sas_token(
                        &resource,
                        key_name,
                        key,
                        Utc::now() + chrono::Duration::hours(1),
                    ),
                    BusAuth::Entra(t) => {
                        format!(
                            "Bearer {}",
                            t.token(SERVICE_BUS_SCOPE, None).await?.expose()
                        )
                    }
                };
                let mut req = self
                    .http
                    .client()
                    .post(&url)
                    .header("Authorization", auth)
                    .header(
                        "Content-Type",
                        msg.content_type.as_deref().unwrap_or("text/plain"),
                    )
                    .header("BrokerProperties", &broker)
                    .body(msg.body.clone());
                for (k, v) in &msg.application_properties {
                    // String properties are quoted; numbers and booleans are bare.
                    let v = match v {
                        Value::String(s) => format!("\"{s}\""),
                        other => other.to_string(),
                    };
                    req = req.header(k.as_str(), v);
                }
                Ok(req)
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(AoaiError::Http { status, .. }) if status == 401 || status == 403 => {
                Err(BusSendError::Denied {
                    entity: entity.to_owned(),
                    status,
                })
            }
            Err(source) => Err(BusSendError::Send {
                entity: entity.to_owned(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_properties_use_the_rest_apis_names() {
        let m = OutgoingMessage {
            message_id: Some("nonce-1".into()),
            correlation_id: Some("run-1".into()),
            subject: Some("approval.test".into()),
            ..Default::default()
        };
        let v: Value = serde_json::from_str(&broker_properties(&m)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"MessageId": "nonce-1", "CorrelationId": "run-1", "Label": "approval.test"})
        );
    }

    #[test]
    fn the_sas_token_matches_the_documented_construction() {
        // Expected value computed with Python: hmac over quote_plus(uri) + "\n" + expiry.
        let t = sas_token(
            "https://ns.servicebus.windows.net/approvals",
            "send",
            &Secret::new("a2V5LWtleS1rZXk="),
            DateTime::from_timestamp(1_900_000_000, 0).expect("time"),
        );
        assert_eq!(
            t,
            "SharedAccessSignature sr=https%3A%2F%2Fns.servicebus.windows.net%2Fapprovals&sig=NFr7%2FeHPq%2FXK41j%2BH7rVX5wO4twChWCSOSfUVbnG65k%3D&se=1900000000&skn=send"
        );
    }

    #[test]
    fn connection_strings_need_a_key_and_name_the_missing_part() {
        let http = Http::new(super::super::RetryPolicy::default());
        assert!(ServiceBusSender::from_connection_string(http.clone(), "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc").is_ok());
        let e = ServiceBusSender::from_connection_string(
            http,
            "Endpoint=sb://ns.servicebus.windows.net/",
        )
        .expect_err("no key")
        .to_string();
        assert!(e.contains("SharedAccessKeyName"), "{e}");
    }
}

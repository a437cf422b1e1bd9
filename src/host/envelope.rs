//! The request and response envelopes, and the lenient decoding of their values.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Classify, ErrorClass};

/// Why an invocation payload could not be decoded. Always terminal: the host will send
/// the same bytes again.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not a JSON object with `Data` and `Metadata`.
    #[error("the invocation body is not a host envelope: {0}")]
    Envelope(String),
    /// A binding the function.json declares is absent.
    #[error("the invocation has no {0:?} binding in Data")]
    MissingBinding(String),
    /// A binding is present but has the wrong shape.
    #[error("binding {binding:?} is malformed: {reason}")]
    Malformed {
        /// The binding or field name.
        binding: String,
        /// What was wrong.
        reason: String,
    },
}

impl Classify for DecodeError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Terminal
    }
    fn kind(&self) -> &'static str {
        match self {
            DecodeError::Envelope(_) => "bad_envelope",
            DecodeError::MissingBinding(_) => "missing_binding",
            DecodeError::Malformed { .. } => "malformed_payload",
        }
    }
}

/// The raw request body (`HttpScriptInvocationContext`).
#[derive(Debug, Default, Deserialize)]
struct RawRequest {
    #[serde(alias = "data", alias = "DATA", default)]
    #[serde(rename = "Data")]
    data: Option<Map<String, Value>>,
    #[serde(alias = "metadata", alias = "METADATA", default)]
    #[serde(rename = "Metadata")]
    metadata: Option<Map<String, Value>>,
}

/// One decoded invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The function name (the URL path).
    pub function: String,
    /// `X-Azure-Functions-InvocationId`, or a fresh id when the caller sent none.
    pub invocation_id: String,
    /// `Data`: input bindings by name.
    pub data: Map<String, Value>,
    /// `Metadata`: trigger metadata and `sys`.
    pub metadata: Map<String, Value>,
}

impl Invocation {
    /// Parses a request body.
    ///
    /// # Errors
    /// [`DecodeError::Envelope`] when the body is not a JSON object with a `Data` object.
    pub fn parse(function: &str, invocation_id: &str, body: &[u8]) -> Result<Self, DecodeError> {
        let raw: RawRequest =
            serde_json::from_slice(body).map_err(|e| DecodeError::Envelope(e.to_string()))?;
        let data = raw
            .data
            .ok_or_else(|| DecodeError::Envelope("no Data object".into()))?;
        Ok(Self {
            function: function.to_owned(),
            invocation_id: invocation_id.to_owned(),
            data,
            metadata: raw.metadata.unwrap_or_default(),
        })
    }

    /// A `Data` binding, case-insensitively (the host matches names that way).
    pub fn binding(&self, name: &str) -> Result<&Value, DecodeError> {
        get_ci(&self.data, name).ok_or_else(|| DecodeError::MissingBinding(name.to_owned()))
    }

    /// A metadata value as a string (undoing the double encoding).
    pub fn meta_str(&self, key: &str) -> Option<String> {
        get_ci(&self.metadata, key).and_then(text)
    }

    /// A metadata value as an integer (`"17"`, `17` or `"\"17\""`).
    pub fn meta_i64(&self, key: &str) -> Option<i64> {
        get_ci(&self.metadata, key).and_then(integer)
    }

    /// A metadata timestamp (`DateTime` without offset, `DateTimeOffset`, RFC 3339).
    pub fn meta_time(&self, key: &str) -> Option<DateTime<Utc>> {
        self.meta_str(key).as_deref().and_then(parse_time)
    }

    /// A metadata object (nested values are not re-encoded by the host).
    pub fn meta_object(&self, key: &str) -> Option<Map<String, Value>> {
        match get_ci(&self.metadata, key)? {
            Value::Object(m) => Some(m.clone()),
            Value::String(s) => serde_json::from_str(s).ok(),
            _ => None,
        }
    }
}

/// Case-insensitive lookup, exact match first.
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Undoes the host's string encoding. A string whose text is a JSON string literal is
/// unwrapped once (`"\"abc\""` → `abc`); any other string is taken as it is, so the docs'
/// single-encoded samples and hosts that stop double-encoding still decode. Numbers and
/// booleans become their text.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('"')
                && let Ok(Value::String(inner)) = serde_json::from_str::<Value>(s)
            {
                return Some(inner);
            }
            Some(s.clone())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer from a number, a stringly number, or a double-encoded one.
pub fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        _ => text(v)?.trim().parse().ok(),
    }
}

/// A boolean from `true`, `"true"`, `"True"` or `"\"true\""`.
pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => match text(v)?.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
    }
}

/// A JSON document carried by a binding: an object as it is, or a string (single- or
/// double-encoded) holding JSON text.
pub fn json_document(v: &Value) -> Option<Value> {
    match v {
        Value::Object(_) | Value::Array(_) => Some(v.clone()),
        Value::String(_) => {
            let t = text(v)?;
            serde_json::from_str(&t).ok()
        }
        _ => None,
    }
}

/// Parses the timestamps the host sends: RFC 3339 with an offset, or .NET `DateTime`
/// text without one (taken as UTC). The `0001-01-01` "never" sentinel becomes `None`.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let t = DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })?;
    if t.format("%Y").to_string() == "0001" {
        None
    } else {
        Some(t)
    }
}

/// The handler's reply (`HttpScriptInvocationResult`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InvokeResponse {
    /// Output binding values by name.
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// Lines the host re-logs on success.
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// The `$return` value.
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

impl InvokeResponse {
    /// Adds one log line.
    pub fn log(mut self, line: impl Into<String>) -> Self {
        self.logs.push(line.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn double_encoded_strings_are_unwrapped_once() {
        assert_eq!(text(&json!("\"abc\"")).as_deref(), Some("abc"));
        assert_eq!(
            text(&json!("\"{\\\"k\\\":1}\"")).as_deref(),
            Some("{\"k\":1}")
        );
        assert_eq!(text(&json!("plain")).as_deref(), Some("plain"));
        assert_eq!(
            text(&json!("\"unterminated")).as_deref(),
            Some("\"unterminated")
        );
    }

    #[test]
    fn stringly_numbers_and_booleans_decode() {
        assert_eq!(integer(&json!("17")), Some(17));
        assert_eq!(integer(&json!("\"5\"")), Some(5));
        assert_eq!(integer(&json!(3)), Some(3));
        assert_eq!(boolean(&json!("True")), Some(true));
        assert_eq!(boolean(&json!(false)), Some(false));
        assert_eq!(integer(&json!("x")), None);
    }

    #[test]
    fn host_timestamps_parse_with_or_without_offset_and_the_sentinel_is_none() {
        let a = parse_time("2024-05-01T10:00:00").expect("naive");
        let b = parse_time("2024-05-01T10:00:00+00:00").expect("offset");
        assert_eq!(a, b);
        assert!(parse_time("2024-05-01T09:55:00.0019425+00:00").is_some());
        assert_eq!(parse_time("0001-01-01T00:00:00+00:00"), None);
        assert_eq!(parse_time("0001-01-01T00:00:00"), None);
    }

    #[test]
    fn an_envelope_without_data_is_refused() {
        assert!(Invocation::parse("F", "id", b"{\"Metadata\":{}}").is_err());
        assert!(Invocation::parse("F", "id", b"not json").is_err());
        let inv =
            Invocation::parse("F", "id", br#"{"data":{"x":"\"1\""}}"#).expect("lowercase keys");
        assert_eq!(text(inv.binding("X").expect("ci")).as_deref(), Some("1"));
    }
}

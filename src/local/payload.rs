//! Builds `{Data, Metadata}` exactly as the host's `GetHttpScriptInvocationContextValue`
//! does (docs/handler.md): strings JSON-encoded inside a string,
//! numbers and booleans as their text, `DateTime` without offset and `DateTimeOffset` with
//! `+00:00` (both to the second), objects nested.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// A .NET string: double-encoded.
pub fn string(s: &str) -> Value {
    Value::String(Value::String(s.to_owned()).to_string())
}

/// An int, long or bool: its JSON text as a string.
pub fn scalar(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

/// A `DateTime`: ISO text without offset, second precision.
pub fn datetime(t: DateTime<Utc>) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// A `DateTimeOffset`: ISO text with `+00:00`, second precision.
pub fn datetime_offset(t: DateTime<Utc>) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

/// `sys`: `{MethodName, UtcNow, RandGuid}`.
pub fn sys(function: &str) -> Value {
    json!({
        "MethodName": function,
        "UtcNow": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "RandGuid": uuid::Uuid::new_v4().to_string(),
    })
}

/// JSON-body hoisting: when a trigger value is JSON object text, each top-level
/// non-array property is copied into metadata (scalars double-encoded, objects as they
/// are), overwriting same-named keys, as the host does.
pub fn hoist(metadata: &mut Map<String, Value>, body: &str) {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(body) else {
        return;
    };
    for (k, v) in obj {
        let encoded = match v {
            Value::Array(_) | Value::Null => continue,
            Value::Object(_) => v,
            Value::String(s) => string(&s),
            // Newtonsoft's JValue.ToString() spells booleans True/False.
            Value::Bool(b) => string(if b { "True" } else { "False" }),
            Value::Number(n) => string(&n.to_string()),
        };
        metadata.insert(k, encoded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn values_are_encoded_as_the_host_encodes_them() {
        assert_eq!(string("abc"), Value::String("\"abc\"".into()));
        assert_eq!(scalar(17), Value::String("17".into()));
        let t = Utc
            .with_ymd_and_hms(2024, 5, 1, 10, 0, 0)
            .single()
            .expect("time")
            + chrono::Duration::milliseconds(250);
        assert_eq!(datetime(t), Value::String("2024-05-01T10:00:00".into()));
        assert_eq!(
            datetime_offset(t),
            Value::String("2024-05-01T10:00:00+00:00".into())
        );
    }

    #[test]
    fn json_bodies_are_hoisted_over_system_keys() {
        let mut m = Map::new();
        m.insert("MessageId".into(), string("sys"));
        hoist(
            &mut m,
            r#"{"orderId":42,"MessageId":"body","nested":{"a":1},"list":[1],"flag":true}"#,
        );
        assert_eq!(m["orderId"], Value::String("\"42\"".into()));
        assert_eq!(m["MessageId"], Value::String("\"body\"".into()));
        assert_eq!(m["nested"], json!({"a": 1}));
        assert_eq!(m["flag"], Value::String("\"True\"".into()));
        assert!(!m.contains_key("list"));
    }
}

//! Output bindings, converted as the host converts them (reference §3): the base64 trap
//! for bindings without `dataType: binary`, one Service Bus message per array element,
//! pretty-printed JSON bodies, blob paths with `{name}`-style expressions.

use base64::Engine as _;
use chrono::Utc;
use serde_json::{Map, Value};

use super::Ctx;
use super::app::{Binding, FunctionDef};
use crate::adapters::local::bus::{BusError, OutgoingMessage};
use crate::ports::{BlobError, Condition};

/// Why outputs could not be delivered (the invocation then counts as failed).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The local bus failed.
    #[error("service bus output {binding:?} failed")]
    Bus {
        /// Binding.
        binding: String,
        /// Cause.
        #[source]
        source: BusError,
    },
    /// The blob store failed.
    #[error("blob output {binding:?} failed")]
    Blob {
        /// Binding.
        binding: String,
        /// Cause.
        #[source]
        source: BlobError,
    },
    /// A binding without a target.
    #[error("output binding {0:?} names no queue, topic or path")]
    NoTarget(String),
}

/// A value after `GetBindingValue`: passed through, or the decoded bytes of a
/// base64-looking string.
enum Converted {
    Json(Value),
    Bytes(Vec<u8>),
}

/// .NET `Convert.FromBase64String` accepts any whitespace-free base64 of length % 4 == 0.
fn dotnet_base64(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.len().is_multiple_of(4) {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

fn convert(binding: &Binding, v: Value) -> Converted {
    if !binding.is_binary()
        && let Value::String(s) = &v
        && let Some(bytes) = dotnet_base64(s)
    {
        return Converted::Bytes(bytes);
    }
    Converted::Json(v)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Message bodies for a Service Bus output (`IAsyncCollector<string>`).
fn service_bus_bodies(binding: &Binding, v: Value) -> Vec<String> {
    match convert(binding, v) {
        // Decoded bytes on a string collector: the host sends `System.Byte[]`.
        Converted::Bytes(_) => {
            tracing::warn!(binding = %binding.name, "Output string looked like base64 and was decoded by the host; set dataType binary.");
            vec!["System.Byte[]".into()]
        }
        Converted::Json(Value::Array(items)) => {
            items.into_iter().map(|i| element_body(&i)).collect()
        }
        Converted::Json(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(items)) => items.into_iter().map(|i| element_body(&i)).collect(),
            Ok(obj @ Value::Object(_)) => vec![pretty(&obj)],
            _ => vec![s],
        },
        Converted::Json(Value::Null) => Vec::new(),
        Converted::Json(other) => vec![element_body(&other)],
    }
}

fn element_body(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(_) | Value::Array(_) => pretty(v),
        other => other.to_string(),
    }
}

fn blob_bytes(binding: &Binding, v: Value) -> Vec<u8> {
    match convert(binding, v) {
        Converted::Bytes(b) => b,
        Converted::Json(Value::String(s)) => s.into_bytes(),
        Converted::Json(other) => other.to_string().into_bytes(),
    }
}

/// Resolves `{name}`, `{rand-guid}` and `{DateTime}` in a blob output path from the
/// trigger's metadata.
fn resolve_path(template: &str, metadata: &Map<String, Value>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let key = &rest[start + 1..start + end];
        let value = match key.to_ascii_lowercase().as_str() {
            "rand-guid" => uuid::Uuid::new_v4().to_string(),
            "datetime" => Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string(),
            _ => metadata
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| crate::host::envelope::text(v))
                .unwrap_or_default(),
        };
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

impl Ctx {
    /// Delivers every output except HTTP ones (the HTTP front end writes those).
    pub(crate) async fn apply_outputs(
        &self,
        def: &FunctionDef,
        outputs: Map<String, Value>,
        metadata: &Map<String, Value>,
    ) -> Result<(), OutputError> {
        for (name, value) in outputs {
            let Some(binding) = def.output(&name) else {
                tracing::warn!(function = %def.name, output = %name, "Output not declared in function.json; ignored.");
                continue;
            };
            match binding.kind.to_ascii_lowercase().as_str() {
                "servicebus" => {
                    let bodies = service_bus_bodies(binding, value);
                    let bus_err = |source| OutputError::Bus {
                        binding: name.clone(),
                        source,
                    };
                    for body in bodies {
                        let msg = OutgoingMessage {
                            body,
                            ..Default::default()
                        };
                        if let Some(q) = binding.prop("queueName") {
                            self.bus.send_to_queue(q, msg).map_err(bus_err)?;
                        } else if let Some(t) = binding.prop("topicName") {
                            self.bus.publish_to_topic(t, msg).map_err(bus_err)?;
                        } else {
                            return Err(OutputError::NoTarget(name));
                        }
                    }
                }
                "blob" => {
                    let template = binding
                        .prop("path")
                        .ok_or_else(|| OutputError::NoTarget(name.clone()))?;
                    let path = resolve_path(template, metadata);
                    let (container, blob) = path
                        .split_once('/')
                        .ok_or_else(|| OutputError::NoTarget(name.clone()))?;
                    let bytes = blob_bytes(binding, value);
                    self.store
                        .put(container, blob, &bytes, Condition::None)
                        .await
                        .map_err(|source| OutputError::Blob {
                            binding: name.clone(),
                            source,
                        })?;
                }
                "http" => {}
                other => {
                    tracing::warn!(function = %def.name, output = %name, kind = other, "Output binding type not supported locally; ignored.")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(binary: bool) -> Binding {
        let mut raw = Map::new();
        if binary {
            raw.insert("dataType".into(), json!("binary"));
        }
        Binding {
            kind: "serviceBus".into(),
            direction: "out".into(),
            name: "out".into(),
            raw,
        }
    }

    #[test]
    fn service_bus_arrays_become_one_message_per_element() {
        assert_eq!(
            service_bus_bodies(&binding(true), json!(["a b", {"k": 1}])),
            vec!["a b".to_owned(), "{\n  \"k\": 1\n}".to_owned()]
        );
        assert_eq!(
            service_bus_bodies(&binding(true), json!("[1,2]")),
            vec!["1", "2"]
        );
        assert_eq!(
            service_bus_bodies(&binding(true), json!("{\"k\":1}")),
            vec!["{\n  \"k\": 1\n}"]
        );
        assert_eq!(
            service_bus_bodies(&binding(true), json!("hello world")),
            vec!["hello world"]
        );
    }

    #[test]
    fn base64_looking_text_is_mangled_without_binary_data_type() {
        assert_eq!(
            service_bus_bodies(&binding(false), json!("test")),
            vec!["System.Byte[]"]
        );
        assert_eq!(
            service_bus_bodies(&binding(true), json!("test")),
            vec!["test"]
        );
        assert_eq!(blob_bytes(&binding(false), json!("aGVsbG8=")), b"hello");
    }

    #[test]
    fn blob_paths_resolve_trigger_metadata() {
        let mut m = Map::new();
        m.insert("name".into(), json!("\"a.txt\""));
        assert_eq!(resolve_path("out/{name}.done", &m), "out/a.txt.done");
        assert_eq!(resolve_path("out/{rand-guid}", &m).len(), "out/".len() + 36);
    }
}

//! Typed trigger payloads, decoded from an [`Invocation`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::envelope::{
    DecodeError, Invocation, boolean, get_ci, integer, json_document, parse_time, text,
};

fn malformed(binding: &str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Malformed {
        binding: binding.to_owned(),
        reason: reason.into(),
    }
}

fn field_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    get_ci(obj, key).and_then(text)
}

/// One Service Bus message as the trigger delivers it (extension v5 metadata keys).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceBusMessage {
    /// The body as text (the trigger has no `dataType`, so the host UTF-8 decodes it).
    pub body: String,
    /// `MessageId`.
    pub message_id: Option<String>,
    /// `DeliveryCount`, 1 on the first delivery.
    pub delivery_count: u32,
    /// `SequenceNumber`.
    pub sequence_number: Option<i64>,
    /// `EnqueuedTimeUtc`.
    pub enqueued_time: Option<DateTime<Utc>>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `Subject` (or the back-compat `Label`).
    pub subject: Option<String>,
    /// `ApplicationProperties` (or the back-compat `UserProperties`).
    pub application_properties: BTreeMap<String, Value>,
}

impl ServiceBusMessage {
    /// Decodes the message bound to `binding`.
    ///
    /// # Errors
    /// When the binding is missing or is not text.
    pub fn decode(inv: &Invocation, binding: &str) -> Result<Self, DecodeError> {
        let raw = inv.binding(binding)?;
        let body = match raw {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => text(raw).unwrap_or_default(),
            // A host that hands the body over as a JSON object: keep its JSON text.
            Value::Object(_) | Value::Array(_) => raw.to_string(),
            Value::Null => return Err(malformed(binding, "the message body is null")),
        };
        let props = inv
            .meta_object("ApplicationProperties")
            .or_else(|| inv.meta_object("UserProperties"))
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Self {
            body,
            message_id: inv.meta_str("MessageId"),
            delivery_count: inv
                .meta_i64("DeliveryCount")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            sequence_number: inv.meta_i64("SequenceNumber"),
            enqueued_time: inv
                .meta_time("EnqueuedTimeUtc")
                .or_else(|| inv.meta_time("EnqueuedTime")),
            content_type: inv.meta_str("ContentType"),
            correlation_id: inv.meta_str("CorrelationId"),
            subject: inv.meta_str("Subject").or_else(|| inv.meta_str("Label")),
            application_properties: props,
        })
    }

    /// The body as a JSON object.
    ///
    /// # Errors
    /// When the body is not a JSON object.
    pub fn json_object(&self) -> Result<Map<String, Value>, DecodeError> {
        match serde_json::from_str::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(malformed("message", "the body is JSON but not an object")),
            Err(e) => Err(malformed("message", format!("the body is not JSON: {e}"))),
        }
    }
}

/// `ScheduleStatus` of a timer: `null` when schedule monitoring is off.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleStatus {
    /// The last recorded occurrence (`None` for the `0001-01-01` sentinel).
    pub last: Option<DateTime<Utc>>,
    /// The occurrence this run stands for.
    pub next: Option<DateTime<Utc>>,
    /// When the status was last written.
    pub last_updated: Option<DateTime<Utc>>,
}

/// `TimerInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerInfo {
    /// Schedule monitor status, if monitoring is on.
    pub schedule_status: Option<ScheduleStatus>,
    /// True only for the catch-up run after missed occurrences.
    pub is_past_due: bool,
}

impl TimerInfo {
    /// Decodes the timer bound to `binding` (an object, or JSON text of one).
    ///
    /// # Errors
    /// When the binding is missing or not an object.
    pub fn decode(inv: &Invocation, binding: &str) -> Result<Self, DecodeError> {
        let doc = json_document(inv.binding(binding)?)
            .ok_or_else(|| malformed(binding, "TimerInfo is not an object"))?;
        let Value::Object(obj) = doc else {
            return Err(malformed(binding, "TimerInfo is not an object"));
        };
        let time =
            |o: &Map<String, Value>, k: &str| field_str(o, k).as_deref().and_then(parse_time);
        let schedule_status = match get_ci(&obj, "ScheduleStatus") {
            Some(Value::Object(s)) => Some(ScheduleStatus {
                last: time(s, "Last"),
                next: time(s, "Next"),
                last_updated: time(s, "LastUpdated"),
            }),
            _ => None,
        };
        let is_past_due = get_ci(&obj, "IsPastDue").and_then(boolean).unwrap_or(false);
        Ok(Self {
            schedule_status,
            is_past_due,
        })
    }
}

/// `Microsoft.Storage.BlobCreated`.
pub const BLOB_CREATED: &str = "Microsoft.Storage.BlobCreated";

/// An Event Grid event, from the Event Grid schema or the CloudEvents 1.0 schema.
#[derive(Debug, Clone, PartialEq)]
pub struct EventGridEvent {
    /// `id`.
    pub id: String,
    /// `topic` (Event Grid) or `source` (CloudEvents).
    pub topic: Option<String>,
    /// `subject`.
    pub subject: String,
    /// `eventType` (Event Grid) or `type` (CloudEvents).
    pub event_type: String,
    /// `eventTime` / `time`.
    pub event_time: Option<DateTime<Utc>>,
    /// `data`.
    pub data: Value,
}

impl EventGridEvent {
    /// Decodes the events bound to `binding`: one event, or an array of them, as an object
    /// or (double-encoded) JSON text.
    ///
    /// # Errors
    /// When the binding is missing, not JSON, or an event lacks `id`, `subject` or a type.
    pub fn decode_all(inv: &Invocation, binding: &str) -> Result<Vec<Self>, DecodeError> {
        let doc = json_document(inv.binding(binding)?)
            .ok_or_else(|| malformed(binding, "the event is not JSON"))?;
        let items = match doc {
            Value::Array(a) => a,
            other => vec![other],
        };
        if items.is_empty() {
            return Err(malformed(binding, "the event batch is empty"));
        }
        items.iter().map(|v| Self::from_value(binding, v)).collect()
    }

    fn from_value(binding: &str, v: &Value) -> Result<Self, DecodeError> {
        let Value::Object(o) = v else {
            return Err(malformed(binding, "an event is not an object"));
        };
        let get = |k: &str| field_str(o, k);
        let event_type = get("eventType")
            .or_else(|| get("type"))
            .ok_or_else(|| malformed(binding, "the event has no eventType"))?;
        Ok(Self {
            id: get("id").ok_or_else(|| malformed(binding, "the event has no id"))?,
            topic: get("topic").or_else(|| get("source")),
            subject: get("subject")
                .ok_or_else(|| malformed(binding, "the event has no subject"))?,
            event_type,
            event_time: get("eventTime")
                .or_else(|| get("time"))
                .as_deref()
                .and_then(parse_time),
            data: get_ci(o, "data")
                .cloned()
                .map(|d| json_document(&d).unwrap_or(d))
                .unwrap_or(Value::Null),
        })
    }

    /// For a storage event, the container and blob name from the subject
    /// `/blobServices/default/containers/{container}/blobs/{name}`.
    pub fn blob_location(&self) -> Option<(String, String)> {
        // `data.url` first: Event Grid may alter some characters of `subject` (the Functions
        // blob extension reads the name from the URL too); the subject is the fallback.
        if let Some(loc) = self
            .data
            .as_object()
            .and_then(|d| field_str(d, "url"))
            .and_then(|u| blob_of_url(&u))
        {
            return Some(loc);
        }
        let rest = self
            .subject
            .strip_prefix("/blobServices/default/containers/")?;
        let (container, name) = rest.split_once("/blobs/")?;
        if container.is_empty() || name.is_empty() {
            return None;
        }
        Some((container.to_owned(), name.to_owned()))
    }

    /// The blob's `eTag` from a storage event's data.
    pub fn blob_etag(&self) -> Option<String> {
        self.data.as_object().and_then(|d| field_str(d, "eTag"))
    }

    /// The blob's `contentLength` from a storage event's data.
    pub fn blob_content_length(&self) -> Option<i64> {
        self.data
            .as_object()
            .and_then(|d| get_ci(d, "contentLength"))
            .and_then(integer)
    }
}

/// `(container, blob name)` of a blob URL: `https://{account}.blob.core.windows.net/{c}/{name}`,
/// or path-style `http://127.0.0.1:10000/{account}/{c}/{name}` (Azurite and other emulators:
/// an IP address, `localhost`, or an explicit port); the name percent-decoded, as storage
/// stores it.
fn blob_of_url(url: &str) -> Option<(String, String)> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host()?;
    let path_style =
        u.port().is_some() || !matches!(host, url::Host::Domain(d) if d != "localhost");
    let path = u.path().trim_start_matches('/');
    let path = if path_style {
        path.split_once('/')?.1
    } else {
        path
    };
    let (container, name) = path.split_once('/')?;
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!container.is_empty() && !name.is_empty()).then(|| (container.to_owned(), name))
}

/// The HTTP request of an `httpTrigger` (the non-forwarded envelope's `Data.req`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequestData {
    /// `Url`.
    pub url: String,
    /// `Method`, upper case.
    pub method: String,
    /// `Query`: repeated keys arrive comma-joined.
    pub query: BTreeMap<String, String>,
    /// `Headers`, names lower-cased, values joined with `,`.
    pub headers: BTreeMap<String, String>,
    /// `Params`: route values.
    pub params: BTreeMap<String, String>,
    /// `Body` as text, when there was one.
    pub body: Option<String>,
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let obj = match v.and_then(json_document) {
        Some(Value::Object(o)) => o,
        _ => return BTreeMap::new(),
    };
    obj.into_iter()
        .filter_map(|(k, v)| {
            let s = match &v {
                Value::Array(items) => items.iter().filter_map(text).collect::<Vec<_>>().join(","),
                other => text(other)?,
            };
            Some((k, s))
        })
        .collect()
}

impl HttpRequestData {
    /// Decodes the request bound to `binding`.
    ///
    /// # Errors
    /// When the binding is missing or is not a request object.
    pub fn decode(inv: &Invocation, binding: &str) -> Result<Self, DecodeError> {
        let doc = json_document(inv.binding(binding)?)
            .ok_or_else(|| malformed(binding, "the request is not an object"))?;
        let Value::Object(o) = doc else {
            return Err(malformed(binding, "the request is not an object"));
        };
        let headers = string_map(get_ci(&o, "Headers"))
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let body = match get_ci(&o, "Body") {
            None | Some(Value::Null) => None,
            // The host sends text raw; a JSON body may arrive parsed.
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        Ok(Self {
            url: field_str(&o, "Url").unwrap_or_default(),
            method: field_str(&o, "Method")
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase(),
            query: string_map(get_ci(&o, "Query")),
            headers,
            params: string_map(get_ci(&o, "Params")),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inv(v: Value) -> Invocation {
        Invocation::parse("F", "i", v.to_string().as_bytes()).expect("envelope")
    }

    #[test]
    fn a_service_bus_message_decodes_from_the_hosts_encoding() {
        let i = inv(json!({
            "Data": {"msg": "\"{\\\"orderId\\\":42}\""},
            "Metadata": {"DeliveryCount": "3", "MessageId": "\"a1\"", "SequenceNumber": "17",
                          "EnqueuedTimeUtc": "2024-05-01T10:00:00", "ApplicationProperties": {"tenant": "t1"},
                          "orderId": "\"42\""}
        }));
        let m = ServiceBusMessage::decode(&i, "msg").expect("decode");
        assert_eq!(m.body, "{\"orderId\":42}");
        assert_eq!(m.delivery_count, 3);
        assert_eq!(m.message_id.as_deref(), Some("a1"));
        assert_eq!(m.sequence_number, Some(17));
        assert_eq!(m.application_properties.get("tenant"), Some(&json!("t1")));
        assert_eq!(
            m.json_object().expect("object").get("orderId"),
            Some(&json!(42))
        );
    }

    #[test]
    fn a_timer_with_sentinel_dates_decodes() {
        let i = inv(
            json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true},
            "ScheduleStatus": {"Last": "0001-01-01T00:00:00+00:00", "Next": "2024-05-01T10:00:00+00:00",
                               "LastUpdated": "0001-01-01T00:00:00+00:00"}, "IsPastDue": true}}, "Metadata": {}}),
        );
        let t = TimerInfo::decode(&i, "timer").expect("timer");
        assert!(t.is_past_due);
        let s = t.schedule_status.expect("status");
        assert_eq!(s.last, None);
        assert!(s.next.is_some());
    }

    #[test]
    fn event_grid_events_decode_from_text_objects_and_cloud_events() {
        let ev = json!({"id": "1", "topic": "/subscriptions/x", "subject": "/blobServices/default/containers/datasets/blobs/a/b c.jsonl",
            "eventType": BLOB_CREATED, "eventTime": "2024-05-01T10:00:00.123Z",
            "data": {"eTag": "0x8D4", "contentLength": 12, "url": "https://a/datasets/a/b c.jsonl"}, "dataVersion": "", "metadataVersion": "1"});
        let encoded = serde_json::to_string(&ev.to_string()).expect("encode");
        for data in [ev.clone(), Value::String(encoded), json!([ev.clone()])] {
            let i = inv(json!({"Data": {"event": data}, "Metadata": {}}));
            let events = EventGridEvent::decode_all(&i, "event").expect("decode");
            assert_eq!(events.len(), 1);
            assert_eq!(
                events[0].blob_location(),
                Some(("datasets".into(), "a/b c.jsonl".into()))
            );
            assert_eq!(events[0].blob_etag().as_deref(), Some("0x8D4"));
            assert_eq!(events[0].blob_content_length(), Some(12));
        }
        let ce = json!({"specversion": "1.0", "id": "2", "type": BLOB_CREATED, "source": "/s",
            "subject": "/blobServices/default/containers/datasets/blobs/x.jsonl", "time": "2024-05-01T10:00:00Z", "data": {}});
        let i = inv(json!({"Data": {"event": ce}, "Metadata": {}}));
        assert_eq!(
            EventGridEvent::decode_all(&i, "event").expect("cloud event")[0].event_type,
            BLOB_CREATED
        );
    }

    #[test]
    fn an_http_request_decodes_current_and_legacy_shapes() {
        let i = inv(
            json!({"Data": {"req": {"Url": "http://localhost:7071/api/status/runs?x=1", "Method": "get",
            "Query": {"x": "1,2"}, "Headers": {"Content-Type": ["application/json"]}, "Params": {"path": "runs"}}}, "Metadata": {}}),
        );
        let r = HttpRequestData::decode(&i, "req").expect("req");
        assert_eq!(r.method, "GET");
        assert_eq!(r.query.get("x").map(String::as_str), Some("1,2"));
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(r.params.get("path").map(String::as_str), Some("runs"));
        assert_eq!(r.body, None);
        let legacy = inv(
            json!({"Data": {"req": {"Url": "u", "Method": "POST", "Query": "{\"a\":\"b\"}", "Body": "{}"}}, "Metadata": {}}),
        );
        let r = HttpRequestData::decode(&legacy, "req").expect("legacy");
        assert_eq!(r.query.get("a").map(String::as_str), Some("b"));
        assert_eq!(r.body.as_deref(), Some("{}"));
    }

    #[test]
    fn a_blob_event_names_its_blob_from_the_url_decoded_with_subject_as_the_fallback() {
        let ev = |subject: &str, url: Option<&str>| EventGridEvent {
            id: "1".into(),
            event_type: BLOB_CREATED.into(),
            subject: subject.into(),
            event_time: None,
            data: url.map_or(json!({}), |u| json!({"url": u})),
            topic: None,
        };
        let e = ev(
            "/blobServices/default/containers/datasets/blobs/acme/s 1/x.jsonl",
            Some("https://st.blob.core.windows.net/datasets/acme/s%201/%23x%2B1.jsonl"),
        );
        assert_eq!(
            e.blob_location(),
            Some(("datasets".into(), "acme/s 1/#x+1.jsonl".into()))
        );
        let azurite = ev(
            "",
            Some("http://127.0.0.1:10000/devstoreaccount1/datasets/a/b.jsonl"),
        );
        assert_eq!(
            azurite.blob_location(),
            Some(("datasets".into(), "a/b.jsonl".into()))
        );
        let no_url = ev(
            "/blobServices/default/containers/datasets/blobs/a/b.jsonl",
            None,
        );
        assert_eq!(
            no_url.blob_location(),
            Some(("datasets".into(), "a/b.jsonl".into()))
        );
    }
}

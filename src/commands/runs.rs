//! `fthub runs list|retry|cancel` and `fthub deadletters list|replay`: the operator's verbs.
//! Runs are operated through the app's HTTP API (`fthub dev` or the function app), so the
//! same pipeline that owns them acts; listing can also read storage directly. Dead letters
//! are read from the dead-letter book in storage (local, Azurite or Azure) and replayed
//! through the local bus or Service Bus.

use serde_json::{Value, json};

use super::ops::{OpsError, Publisher};
use crate::adapters::local::bus::{
    BusMessage, DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, LocalBus,
};
use crate::functions::dead_letters::QUEUES;
use crate::ports::{BlobStore, OutgoingMessage};
use crate::services::deadletters::{self, Record};

/// POSTs `{base}/api/runs/{id}/{action}` with who and why; answers the API's JSON.
///
/// # Errors
/// When the app does not answer, or refuses (the refusal's reason is the error).
pub async fn act(
    base: &str,
    key: Option<&str>,
    id: &str,
    action: &str,
    actor: &str,
    reason: &str,
) -> Result<Value, OpsError> {
    let url = format!("{}/api/runs/{id}/{action}", base.trim_end_matches('/'));
    let api = |detail: String| OpsError::Api {
        url: url.clone(),
        detail,
    };
    let mut req = reqwest::Client::new()
        .post(&url)
        .json(&json!({"actor": actor, "reason": reason}));
    if let Some(k) = key {
        req = req.header("x-functions-key", k);
    }
    let resp = req.send().await.map_err(|e| api(e.to_string()))?;
    let code = resp.status();
    let text = resp.text().await.map_err(|e| api(e.to_string()))?;
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({"detail": text}));
    if code.is_success() {
        return Ok(v);
    }
    let why = v["detail"]
        .as_str()
        .or_else(|| v["reason"].as_str())
        .or_else(|| v["error"].as_str())
        .filter(|w| !w.is_empty())
        .map_or_else(|| format!("HTTP {code}"), str::to_owned);
    // A 4xx other than the key's is the app's answer; the rest is the app not doing its job.
    if code.is_client_error() && code.as_u16() != 401 && code.as_u16() != 403 {
        return Err(OpsError::Refused(format!("{action} {id} refused: {why}")));
    }
    Err(api(format!("HTTP {code}: {why}")))
}

/// One dead-lettered message still in a local dead-letter subqueue (no recorder read it:
/// the host was not running), as `deadletters list` shows it.
pub fn describe(queue: &str, m: &BusMessage) -> Value {
    let prop = |k: &str| m.application_properties.get(k).cloned();
    let body: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
    let run = body["run_id"].as_str().map(str::to_owned);
    json!({
        "queue": queue,
        "key": Record::key_of(Some(m.sequence_number), Some(m.message_id.as_str()), &m.body),
        "sequence": m.sequence_number,
        "message_id": m.message_id,
        "run_id": run,
        "recorded_at": m.enqueued_time,
        "reason": prop(DEAD_LETTER_REASON).or_else(|| m.dead_letter_reason.clone().map(Value::from)),
        "description": prop(DEAD_LETTER_DESCRIPTION).or_else(|| m.dead_letter_error_description.clone().map(Value::from)),
        "replays": [],
        "where": "subqueue",
    })
}

fn describe_record(r: &Record) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("body");
        o.insert("where".into(), json!("book"));
    }
    v
}

fn queues(only: Option<&str>) -> Result<Vec<&'static str>, OpsError> {
    let all: Vec<&'static str> = QUEUES.iter().map(|(_, q)| *q).collect();
    match only {
        None => Ok(all),
        Some(q) => all
            .into_iter()
            .find(|x| *x == q)
            .map(|q| vec![q])
            .ok_or_else(|| {
                OpsError::Usage(format!(
                    "no pipeline queue {q:?}: use one of {}",
                    QUEUES.map(|(_, q)| q).join(", ")
                ))
            }),
    }
}

/// Every dead-lettered pipeline message (of one queue, if named): the dead-letter book in
/// `store`, and — in local mode — what still sits in the local bus's subqueues.
///
/// # Errors
/// Unknown queue; storage or bus I/O.
pub async fn list(
    store: &dyn BlobStore,
    bus: Option<&LocalBus>,
    only: Option<&str>,
) -> Result<Vec<Value>, OpsError> {
    let mut out = Vec::new();
    for q in queues(only)? {
        let book = deadletters::list(store, Some(q)).await?;
        out.extend(book.iter().map(describe_record));
        if let Some(bus) = bus {
            for m in bus.dead_letters(q)? {
                let key = Record::key_of(
                    Some(m.sequence_number),
                    Some(m.message_id.as_str()),
                    &m.body,
                );
                if !book.iter().any(|r| r.key == key) {
                    out.push(describe(q, &m));
                }
            }
        }
    }
    Ok(out)
}

/// Sends dead letters back to their queue as new messages: the one named by `key` (its
/// sequence number or book key), or every one of the queue(s) not replayed yet. Each
/// replay is added to its record with who asked.
///
/// # Errors
/// Unknown queue or key; storage or bus failures.
pub async fn replay(
    store: &dyn BlobStore,
    publisher: &Publisher,
    bus: Option<&LocalBus>,
    only: Option<&str>,
    key: Option<&str>,
    by: &str,
) -> Result<Vec<Value>, OpsError> {
    let matches = |k: &str, seq: Option<i64>| {
        key.is_none_or(|want| want == k || want.parse::<i64>().ok().is_some_and(|n| Some(n) == seq))
    };
    let mut out = Vec::new();
    for q in queues(only)? {
        for r in deadletters::list(store, Some(q)).await? {
            // Without a key, what was replayed already is left alone.
            if !matches(&r.key, r.sequence) || (key.is_none() && !r.replays.is_empty()) {
                continue;
            }
            publisher
                .send(
                    q,
                    OutgoingMessage {
                        body: r.body.clone(),
                        correlation_id: r.run_id.clone(),
                        ..OutgoingMessage::default()
                    },
                )
                .await?;
            deadletters::replayed(store, &r, by).await?;
            let mut d = describe_record(&r);
            d["replayed"] = json!(true);
            out.push(d);
        }
        if let Some(bus) = bus {
            for m in bus.dead_letters(q)? {
                let k = Record::key_of(
                    Some(m.sequence_number),
                    Some(m.message_id.as_str()),
                    &m.body,
                );
                if !matches(&k, Some(m.sequence_number)) {
                    continue;
                }
                let new = bus.replay(q, m.sequence_number)?;
                let mut d = describe(q, &m);
                d["replayed"] = json!(true);
                d["replayed_as"] = json!(new);
                out.push(d);
            }
        }
    }
    if out.is_empty()
        && let Some(k) = key
    {
        return Err(OpsError::NotFound(format!("no dead letter {k}")));
    }
    Ok(out)
}

//! `fthub runs list|retry|cancel` and `fthub deadletters list|replay`: the operator's verbs.
//! Runs are operated through the app's HTTP API (`fthub dev` or the function app), so the
//! same pipeline that owns them acts; listing can also read storage directly. Dead letters
//! are read from, and replayed into, the local bus that `fthub dev` serves.

use serde_json::{Value, json};

use super::ops::OpsError;
use crate::adapters::local::bus::{
    BusMessage, DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, LocalBus,
};
use crate::functions::dead_letters::QUEUES;

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
    Err(OpsError::Usage(format!("{action} {id} refused: {why}")))
}

/// One dead-lettered message, as `deadletters list` shows it.
pub fn describe(queue: &str, m: &BusMessage) -> Value {
    let prop = |k: &str| m.application_properties.get(k).cloned();
    let body: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
    let run = body["run_id"].as_str().map(str::to_owned);
    json!({
        "queue": queue,
        "sequence": m.sequence_number,
        "message_id": m.message_id,
        "run_id": run,
        "enqueued": m.enqueued_time,
        "reason": prop(DEAD_LETTER_REASON).or_else(|| m.dead_letter_reason.clone().map(Value::from)),
        "description": prop(DEAD_LETTER_DESCRIPTION).or_else(|| m.dead_letter_error_description.clone().map(Value::from)),
    })
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

/// Every dead-lettered pipeline message on the local bus (of one queue, if named).
///
/// # Errors
/// Unknown queue; bus I/O.
pub fn list(bus: &LocalBus, only: Option<&str>) -> Result<Vec<Value>, OpsError> {
    let mut out = Vec::new();
    for q in queues(only)? {
        out.extend(bus.dead_letters(q)?.iter().map(|m| describe(q, m)));
    }
    Ok(out)
}

/// Sends dead letters back to their queue (one by sequence number, or all of a queue's),
/// each as a new message; returns what was replayed.
///
/// # Errors
/// Unknown queue or sequence; bus I/O.
pub fn replay(
    bus: &LocalBus,
    only: Option<&str>,
    sequence: Option<i64>,
) -> Result<Vec<Value>, OpsError> {
    let mut out = Vec::new();
    for q in queues(only)? {
        for m in bus.dead_letters(q)? {
            if sequence.is_some_and(|s| s != m.sequence_number) {
                continue;
            }
            let new = bus.replay(q, m.sequence_number)?;
            let mut d = describe(q, &m);
            d["replayed_as"] = json!(new);
            out.push(d);
        }
    }
    if out.is_empty()
        && let Some(s) = sequence
    {
        return Err(OpsError::Usage(format!("no dead letter with sequence {s}")));
    }
    Ok(out)
}

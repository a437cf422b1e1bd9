//! Event Grid `Microsoft.Storage.BlobCreated` delivery for blobs written into a watched
//! container of the local store.
//!
//! The container is scanned every `scan_interval`; a blob version (its ETag) is announced
//! once it has been seen unchanged in two consecutive scans, so a file still being copied
//! in is not announced half-written. Receipts, as the host keeps them
//! (`azure-webjobs-hosts/blobreceipts/{hostId}/Host.Functions.{F}/{ETag}/{container}/{blob}`),
//! make each blob version trigger at most one successful run, across restarts. A version
//! that fails `poisonBlobThreshold` (5) times is recorded on the `webjobs-blobtrigger-poison`
//! queue and not tried again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use super::app::{EventGridSubscription, FunctionDef};
use super::{Ctx, HOSTS_CONTAINER, payload};
use crate::adapters::local::bus::OutgoingMessage;
use crate::host::trigger::BLOB_CREATED;
use crate::ports::{BlobProperties, Condition};

/// The queue poison blob records go to.
pub const POISON_QUEUE: &str = "webjobs-blobtrigger-poison";
/// The storage account name used in local event topics and URLs.
pub const LOCAL_ACCOUNT: &str = "fthublocal";

/// A receipt's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Receipt {
    /// Failed attempts so far.
    pub attempts: u32,
    /// A successful run happened, or the version was poisoned.
    pub complete: bool,
    /// The version was given up on.
    pub poisoned: bool,
    /// Last failure.
    pub last_error: Option<String>,
}

/// The receipt blob name for one function and blob version.
pub fn receipt_name(
    host_id: &str,
    function: &str,
    etag: &str,
    container: &str,
    blob: &str,
) -> String {
    format!("blobreceipts/{host_id}/Host.Functions.{function}/{etag}/{container}/{blob}")
}

/// The Event Grid schema event for a created blob.
pub fn blob_created_event(p: &BlobProperties) -> Value {
    json!({
        "topic": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/{LOCAL_ACCOUNT}"),
        "subject": format!("/blobServices/default/containers/{}/blobs/{}", p.container, p.name),
        "eventType": BLOB_CREATED,
        "id": uuid::Uuid::new_v4().to_string(),
        "eventTime": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        "data": {
            "api": "PutBlob",
            "clientRequestId": uuid::Uuid::new_v4().to_string(),
            "requestId": uuid::Uuid::new_v4().to_string(),
            "eTag": p.etag.0,
            "contentType": content_type(&p.name),
            "contentLength": p.content_length,
            "blobType": "BlockBlob",
            // As Azure sends it: the blob name percent-encoded in the URL.
            "url": format!(
                "https://{LOCAL_ACCOUNT}.blob.core.windows.net/{}/{}",
                p.container,
                p.name
                    .split('/')
                    .map(|seg| percent_encoding::utf8_percent_encode(seg, URL_SEGMENT).to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            "sequencer": format!("{:032X}", p.last_modified.timestamp_nanos_opt().unwrap_or_default()),
            "storageDiagnostics": {"batchId": uuid::Uuid::new_v4().to_string()},
        },
        "dataVersion": "",
        "metadataVersion": "1",
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "json" => "application/json",
        "jsonl" => "application/jsonl",
        "csv" => "text/csv",
        "txt" | "md" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// Characters a blob URL path segment carries escaped.
const URL_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn matches(sub: &EventGridSubscription, subject: &str) -> bool {
    let types_ok = sub.included_event_types.is_empty()
        || sub.included_event_types.iter().any(|t| t == BLOB_CREATED);
    types_ok
        && sub
            .subject_begins_with
            .as_deref()
            .is_none_or(|p| subject.starts_with(p))
        && sub
            .subject_ends_with
            .as_deref()
            .is_none_or(|s| subject.ends_with(s))
}

/// Scans and delivers until the process ends.
pub(crate) async fn run(ctx: Ctx, def: FunctionDef, sub: EventGridSubscription) {
    let slots = Arc::new(Semaphore::new(ctx.app.host.blob_parallelism));
    let in_flight: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    // ETag of each blob in the previous scan: a version is announced once it is stable.
    let mut previous: HashMap<String, String> = HashMap::new();
    loop {
        match ctx.store.list(&sub.container, "").await {
            Ok(blobs) => {
                let mut current = HashMap::new();
                for p in blobs {
                    let subject = format!(
                        "/blobServices/default/containers/{}/blobs/{}",
                        p.container, p.name
                    );
                    let stable = previous.get(&p.name) == Some(&p.etag.0);
                    current.insert(p.name.clone(), p.etag.0.clone());
                    if !stable || !matches(&sub, &subject) {
                        continue;
                    }
                    let key = (p.name.clone(), p.etag.0.clone());
                    if !in_flight
                        .lock()
                        .map(|mut s| s.insert(key.clone()))
                        .unwrap_or(false)
                    {
                        continue;
                    }
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (ctx, def, in_flight) = (ctx.clone(), def.clone(), in_flight.clone());
                    tokio::spawn(async move {
                        if let Err(e) = deliver(&ctx, &def, &p).await {
                            tracing::warn!(function = %def.name, blob = %p.name, error = %e, "Blob receipt bookkeeping failed; will retry.");
                        }
                        if let Ok(mut s) = in_flight.lock() {
                            s.remove(&key);
                        }
                        drop(permit);
                    });
                }
                previous = current;
            }
            Err(e) => {
                tracing::warn!(container = %sub.container, error = %e, "Scanning the watched container failed.")
            }
        }
        tokio::time::sleep(ctx.scan_interval).await;
    }
}

async fn deliver(
    ctx: &Ctx,
    def: &FunctionDef,
    p: &BlobProperties,
) -> Result<(), crate::ports::BlobError> {
    let receipt_blob = receipt_name(&ctx.host_id, &def.name, &p.etag.0, &p.container, &p.name);
    let (receipt, etag) = match ctx.store.get(HOSTS_CONTAINER, &receipt_blob).await {
        Ok((props, bytes)) => (
            serde_json::from_slice::<Receipt>(&bytes).unwrap_or_default(),
            Some(props.etag),
        ),
        Err(crate::ports::BlobError::NotFound { .. }) => (Receipt::default(), None),
        Err(e) => return Err(e),
    };
    if receipt.complete {
        return Ok(());
    }
    // Take the receipt before running, so a second scanner (or host) sharing this store
    // does not run the same version concurrently.
    let mut receipt = receipt;
    let claim = match etag {
        None => Condition::IfNotExists,
        Some(e) => Condition::IfMatch(e),
    };
    let claimed = match ctx
        .store
        .put(
            HOSTS_CONTAINER,
            &receipt_blob,
            &serde_json::to_vec(&receipt).unwrap_or_default(),
            claim,
        )
        .await
    {
        Ok(props) => props,
        Err(
            crate::ports::BlobError::AlreadyExists { .. }
            | crate::ports::BlobError::PreconditionFailed { .. },
        ) => return Ok(()),
        Err(e) => return Err(e),
    };

    let trigger = def.trigger().expect("eventGrid functions have a trigger");
    let event = blob_created_event(p);
    let text = event.to_string();
    let mut data = Map::new();
    data.insert(trigger.name.clone(), payload::string(&text));
    let mut metadata = Map::new();
    payload::hoist(&mut metadata, &text);
    metadata.insert("sys".into(), payload::sys(&def.name));

    let outcome = match ctx.invoke(def, data, metadata.clone()).await {
        Ok(r) => ctx
            .apply_outputs(def, r.outputs, &metadata)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => receipt.complete = true,
        Err(err) => {
            receipt.attempts += 1;
            receipt.last_error = Some(err);
            if receipt.attempts >= ctx.app.host.poison_blob_threshold {
                let poison = json!({
                    "FunctionId": format!("Host.Functions.{}", def.name),
                    "BlobType": "BlockBlob",
                    "ContainerName": p.container,
                    "BlobName": p.name,
                    "ETag": p.etag.0,
                });
                let bus = ctx.bus.clone();
                let msg = OutgoingMessage {
                    body: poison.to_string(),
                    ..Default::default()
                };
                tokio::task::spawn_blocking(move || bus.send_to_queue(POISON_QUEUE, msg))
                    .await
                    .map_err(|e| crate::ports::BlobError::Io {
                        what: "poison".into(),
                        source: std::io::Error::other(e),
                    })?
                    .map_err(|e| crate::ports::BlobError::Io {
                        what: "poison".into(),
                        source: std::io::Error::other(e),
                    })?;
                tracing::error!(function = %def.name, blob = %p.name, attempts = receipt.attempts, "Blob version poisoned after repeated failures.");
                receipt.complete = true;
                receipt.poisoned = true;
            }
        }
    }
    ctx.store
        .put(
            HOSTS_CONTAINER,
            &receipt_blob,
            &serde_json::to_vec(&receipt).unwrap_or_default(),
            Condition::IfMatch(claimed.etag),
        )
        .await?;
    Ok(())
}

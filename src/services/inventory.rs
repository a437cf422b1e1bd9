//! `state/inventory.json`: which model version serves where, with its tags and the last
//! keepalive — the source of truth for KeepWarm, rollbacks and the environment matrix.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::runs::STATE;
use crate::ports::{BlobError, BlobStore, Condition};

const BLOB: &str = "inventory.json";

/// One deployment on one Spoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Spoke account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Deployment name.
    pub deployment: String,
    /// Fine-tuned model.
    pub model: String,
    /// Run that produced it.
    pub run_id: String,
    /// When it was (re)deployed.
    pub deployed_at: DateTime<Utc>,
    /// Last successful keepalive.
    pub last_keepalive: Option<DateTime<Utc>>,
    /// Last keepalive latency.
    pub last_latency_ms: Option<u64>,
    /// `healthy`, `restored`, `failing`.
    pub health: String,
    /// Times KeepWarm found it deleted and redeployed it.
    #[serde(default)]
    pub restorations: u32,
}

/// One environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvInventory {
    /// By region.
    pub regions: BTreeMap<String, Entry>,
    /// Runs that served here before, newest last (for rollback).
    pub history: Vec<String>,
}

/// The inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// By environment.
    pub environments: BTreeMap<String, EnvInventory>,
}

/// Reads the inventory (empty when none yet).
///
/// # Errors
/// Storage failures; a document that does not decode — never read as empty, or the next
/// write would erase every record KeepWarm relies on.
pub async fn load(
    store: &dyn BlobStore,
) -> Result<(Inventory, Option<crate::ports::ETag>), BlobError> {
    match store.get(STATE, BLOB).await {
        Ok((p, bytes)) => match serde_json::from_slice(&bytes) {
            Ok(inv) => Ok((inv, Some(p.etag))),
            Err(e) => Err(BlobError::Io {
                what: format!("decode {STATE}/{BLOB} (left as it is; repair or restore it)"),
                source: std::io::Error::other(e),
            }),
        },
        Err(BlobError::NotFound { .. }) => Ok((Inventory::default(), None)),
        Err(e) => Err(e),
    }
}

/// Applies `change` under the inventory's ETag, retrying on conflicts.
///
/// # Errors
/// Storage failures, or conflicts that do not settle.
pub async fn update(
    store: &dyn BlobStore,
    mut change: impl FnMut(&mut Inventory),
) -> Result<Inventory, BlobError> {
    for _ in 0..8 {
        let (mut inv, etag) = load(store).await?;
        change(&mut inv);
        let bytes = serde_json::to_vec_pretty(&inv).unwrap_or_default();
        let cond = etag.map_or(Condition::IfNotExists, Condition::IfMatch);
        match store.put(STATE, BLOB, &bytes, cond).await {
            Ok(_) => return Ok(inv),
            Err(BlobError::PreconditionFailed { .. } | BlobError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(BlobError::PreconditionFailed {
        container: STATE.into(),
        name: BLOB.into(),
    })
}

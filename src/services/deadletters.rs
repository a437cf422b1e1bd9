//! The dead-letter book: every message Service Bus gave up on, as the recorder functions
//! received it from `<queue>/$DeadLetterQueue`, kept in storage
//! (`audit/deadletters/{queue}/{key}.json`) with its body, the host's reason and the last
//! error, and every replay since. The recorders complete what they read from the subqueue,
//! so the book is where `fthub deadletters list|replay` finds them, in local mode and against
//! Azure alike (it needs storage, and a Service Bus sender to replay).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::runs::AUDIT;
use crate::ports::{BlobError, BlobStore, Condition};

const BOOK: &str = "deadletters/";

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The queue it was dead-lettered from.
    pub queue: String,
    /// Its key in the book: the sequence number (zero-padded), else the message id.
    pub key: String,
    /// `SequenceNumber`.
    pub sequence: Option<i64>,
    /// `MessageId`.
    pub message_id: Option<String>,
    /// The run it names, if any.
    pub run_id: Option<String>,
    /// Its body, as sent.
    pub body: String,
    /// `DeadLetterReason`.
    pub reason: String,
    /// `DeadLetterErrorDescription`: the last error.
    pub description: String,
    /// When the recorder read it.
    pub recorded_at: DateTime<Utc>,
    /// Every time it was sent again.
    #[serde(default)]
    pub replays: Vec<Replay>,
}

/// One replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: String,
}

impl Record {
    /// The book key of a message: its sequence number, else its id, else its body's digest.
    pub fn key_of(sequence: Option<i64>, message_id: Option<&str>, body: &str) -> String {
        match (sequence, message_id) {
            (Some(s), _) => format!("{s:020}"),
            (None, Some(id)) if !id.is_empty() => id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect(),
            _ => crate::domain::run::sha256_hex(body.as_bytes())[..20].to_owned(),
        }
    }

    fn blob(&self) -> String {
        format!("{BOOK}{}/{}.json", self.queue, self.key)
    }
}

/// Writes a record once; `false` when the book has it already (a redelivered dead letter).
///
/// # Errors
/// Storage failures.
pub async fn record(store: &dyn BlobStore, r: &Record) -> Result<bool, BlobError> {
    let bytes = serde_json::to_vec_pretty(r).unwrap_or_default();
    match store
        .put(AUDIT, &r.blob(), &bytes, Condition::IfNotExists)
        .await
    {
        Ok(_) => Ok(true),
        Err(BlobError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every record, of one queue if named, oldest first within a queue.
///
/// # Errors
/// Storage failures; a record that does not decode.
pub async fn list(store: &dyn BlobStore, queue: Option<&str>) -> Result<Vec<Record>, BlobError> {
    let prefix = match queue {
        Some(q) => format!("{BOOK}{q}/"),
        None => BOOK.to_owned(),
    };
    let mut out = Vec::new();
    for p in store.list(AUDIT, &prefix).await? {
        if let Some((r, _)) = super::docs::read::<Record>(store, AUDIT, &p.name).await? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Adds a replay to a record.
///
/// # Errors
/// Storage failures, or no such record.
pub async fn replayed(store: &dyn BlobStore, r: &Record, by: &str) -> Result<(), BlobError> {
    let at = Utc::now();
    super::docs::update(
        store,
        AUDIT,
        &r.blob(),
        |doc: &mut Option<Record>| match doc {
            Some(d) => {
                d.replays.push(Replay {
                    at,
                    by: by.to_owned(),
                });
                Ok(())
            }
            None => Err(BlobError::NotFound {
                container: AUDIT.into(),
                name: r.blob(),
            }),
        },
    )
    .await
    .map_err(|e| match e {
        super::runs::UpdateError::Store(s) | super::runs::UpdateError::Refused(s) => s,
        super::runs::UpdateError::Missing(name) => BlobError::NotFound {
            container: AUDIT.into(),
            name,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_keyed_by_sequence_then_id_then_body() {
        assert_eq!(
            Record::key_of(Some(7), Some("m"), "b"),
            "00000000000000000007"
        );
        assert_eq!(Record::key_of(None, Some("a/b c"), "b"), "a_b_c");
        assert_eq!(Record::key_of(None, None, "b").len(), 20);
    }
}

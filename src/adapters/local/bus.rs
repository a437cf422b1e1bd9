//! A durable local message bus with Service Bus semantics, on the filesystem.
//!
//! Each entity (queue, or topic subscription) is a directory of one JSON file per message,
//! named by sequence number. Receiving is peek-lock: the message stays on disk with a lock
//! token and an expiry, and its delivery count rises. Complete deletes it; abandon makes it
//! available again; a message that has been delivered `max_delivery_count` times and fails
//! again moves to the entity's dead-letter directory with `MaxDeliveryCountExceeded`. A
//! lock that expires (the receiver died) makes the message available again, so messages
//! survive a killed `fthub dev`. Every mutation holds the entity's lock file, so several
//! processes may share one bus.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::with_file_lock;

/// The suffix naming an entity's dead-letter subqueue.
pub const DEAD_LETTER_SUBQUEUE: &str = "/$DeadLetterQueue";
/// The application property Service Bus sets to the dead-letter reason.
pub const DEAD_LETTER_REASON: &str = "DeadLetterReason";
/// The application property Service Bus sets to the dead-letter description.
pub const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";

/// Service Bus's default `MaxDeliveryCount`.
pub const DEFAULT_MAX_DELIVERY_COUNT: u32 = 10;

/// Errors from the local bus. All are I/O or corruption; callers retry.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Disk failure.
    #[error("local bus I/O failed on {what}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An entity name that is not a plain path segment.
    #[error("invalid entity name {0:?}")]
    InvalidEntity(String),
    /// The message is no longer locked by this receiver (lock expired, or settled).
    #[error("message {sequence} in {entity} is not locked with this token")]
    LockLost {
        /// Entity.
        entity: String,
        /// Sequence number.
        sequence: i64,
    },
}

pub use crate::ports::OutgoingMessage;

/// A stored message with its broker state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusMessage {
    /// `MessageId`.
    pub message_id: String,
    /// Per-entity sequence number, increasing from 1.
    pub sequence_number: i64,
    /// Body text.
    pub body: String,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `Subject`.
    pub subject: Option<String>,
    /// Application properties.
    pub application_properties: BTreeMap<String, serde_json::Value>,
    /// When it was enqueued.
    pub enqueued_time: DateTime<Utc>,
    /// Deliveries so far (1 on the first delivery).
    pub delivery_count: u32,
    /// Current lock, if any.
    pub lock_token: Option<String>,
    /// When the current lock expires.
    pub locked_until: Option<DateTime<Utc>>,
    /// Why it was dead-lettered.
    pub dead_letter_reason: Option<String>,
    /// Details of the dead-lettering.
    pub dead_letter_error_description: Option<String>,
}

/// What happened to an abandoned message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// Available again for another delivery.
    Redeliverable,
    /// Moved to the dead-letter queue.
    DeadLettered,
}

/// The bus: `{root}/queues/{name}` and `{root}/topics/{topic}/subscriptions/{sub}`.
#[derive(Debug, Clone)]
pub struct LocalBus {
    root: PathBuf,
}

fn check_segment(name: &str) -> Result<(), BusError> {
    let ok = !name.is_empty()
        && name.len() <= 260
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidEntity(name.to_owned()))
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BusError {
    let what = what.into();
    move |source| BusError::Io { what, source }
}

fn write_atomic(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)
}

fn read_messages(dir: &Path) -> std::io::Result<Vec<(PathBuf, BusMessage)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        // A file that does not parse was not written by this bus (writes are atomic); skip it
        // rather than wedge the entity.
        if let Ok(m) = serde_json::from_slice::<BusMessage>(&bytes) {
            out.push((path, m));
        }
    }
    out.sort_by_key(|(_, m)| m.sequence_number);
    Ok(out)
}

impl LocalBus {
    /// A bus rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory of a queue.
    fn queue_dir(&self, queue: &str) -> Result<PathBuf, BusError> {
        check_segment(queue)?;
        Ok(self.root.join("queues").join(queue))
    }

    /// The directory of a topic subscription.
    fn subscription_dir(&self, topic: &str, subscription: &str) -> Result<PathBuf, BusError> {
        check_segment(topic)?;
        check_segment(subscription)?;
        Ok(self
            .root
            .join("topics")
            .join(topic)
            .join("subscriptions")
            .join(subscription))
    }

    /// Resolves an entity path as Service Bus names them: `queue`,
    /// `topic/subscriptions/sub`, or either's dead-letter subqueue `…/$DeadLetterQueue`
    /// (a receivable entity of its own, whose messages are never dead-lettered again).
    pub fn entity_dir(&self, entity: &str) -> Result<PathBuf, BusError> {
        if let Some(parent) = entity.strip_suffix(DEAD_LETTER_SUBQUEUE) {
            return Ok(self.entity_dir(parent)?.join("deadletter"));
        }
        match entity.split('/').collect::<Vec<_>>().as_slice() {
            [q] => self.queue_dir(q),
            [t, "subscriptions", s] => self.subscription_dir(t, s),
            _ => Err(BusError::InvalidEntity(entity.to_owned())),
        }
    }

    /// Sends a dead-lettered message back to the entity it came from as a new message
    /// (delivery count 0), and removes it from the dead-letter subqueue. Returns the new
    /// sequence number.
    pub fn replay(&self, entity: &str, sequence: i64) -> Result<i64, BusError> {
        let dlq = self.entity_dir(&format!("{entity}{DEAD_LETTER_SUBQUEUE}"))?;
        let path = dlq.join("active").join(format!("{sequence:020}.json"));
        let what = format!("replay {sequence} in {entity}");
        let m: BusMessage = with_file_lock(&dlq.join(".lock"), || {
            let bytes = std::fs::read(&path)?;
            serde_json::from_slice(&bytes).map_err(std::io::Error::other)
        })
        .map_err(io(what.clone()))?;
        let mut props = m.application_properties.clone();
        props.remove(DEAD_LETTER_REASON);
        props.remove(DEAD_LETTER_DESCRIPTION);
        let seq = self.enqueue(
            &self.entity_dir(entity)?,
            OutgoingMessage {
                body: m.body,
                content_type: m.content_type,
                correlation_id: m.correlation_id,
                subject: m.subject,
                message_id: Some(m.message_id),
                application_properties: props,
            },
        )?;
        with_file_lock(&dlq.join(".lock"), || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .map_err(io(what))?;
        Ok(seq)
    }

    /// Sends to a queue.
    pub fn send_to_queue(&self, queue: &str, msg: OutgoingMessage) -> Result<i64, BusError> {
        let dir = self.queue_dir(queue)?;
        self.enqueue(&dir, msg)
    }

    /// Publishes to a topic: one copy per subscription. A topic always has the `all`
    /// subscription locally, so what was published can be inspected.
    pub fn publish_to_topic(&self, topic: &str, msg: OutgoingMessage) -> Result<(), BusError> {
        let subs_dir = self.root.join("topics").join(topic).join("subscriptions");
        check_segment(topic)?;
        std::fs::create_dir_all(subs_dir.join("all"))
            .map_err(io(format!("create topic {topic}")))?;
        let msg = OutgoingMessage {
            message_id: msg.message_id.clone().or_else(|| Some(new_id())),
            ..msg
        };
        for entry in std::fs::read_dir(&subs_dir).map_err(io(format!("list topic {topic}")))? {
            let entry = entry.map_err(io(format!("list topic {topic}")))?;
            if entry.path().is_dir() {
                self.enqueue(&entry.path(), msg.clone())?;
            }
        }
        Ok(())
    }

    fn enqueue(&self, dir: &Path, msg: OutgoingMessage) -> Result<i64, BusError> {
        let what = format!("send to {}", dir.display());
        with_file_lock(&dir.join(".lock"), || {
            let seq_path = dir.join(".sequence");
            let last: i64 = std::fs::read_to_string(&seq_path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let seq = last + 1;
            let stored = BusMessage {
                message_id: msg.message_id.unwrap_or_else(new_id),
                sequence_number: seq,
                body: msg.body,
                content_type: msg.content_type,
                correlation_id: msg.correlation_id,
                subject: msg.subject,
                application_properties: msg.application_properties,
                enqueued_time: Utc::now(),
                delivery_count: 0,
                lock_token: None,
                locked_until: None,
                dead_letter_reason: None,
                dead_letter_error_description: None,
            };
            let active = dir.join("active");
            std::fs::create_dir_all(&active)?;
            let bytes = serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?;
            write_atomic(&active, &active.join(format!("{seq:020}.json")), &bytes)?;
            write_atomic(dir, &seq_path, seq.to_string().as_bytes())?;
            Ok(seq)
        })
        .map_err(io(what))
    }

    /// Peek-locks the next available message: one never locked, abandoned, or whose lock
    /// expired. Its delivery count rises by one. A message already delivered
    /// `max_delivery_count` times is dead-lettered instead of delivered.
    pub fn receive(
        &self,
        entity: &str,
        lock_for: Duration,
        max_delivery_count: u32,
    ) -> Result<Option<BusMessage>, BusError> {
        let dir = self.entity_dir(entity)?;
        let now = Utc::now();
        with_file_lock(&dir.join(".lock"), || {
            for (path, mut m) in read_messages(&dir.join("active"))? {
                if m.locked_until.is_some_and(|t| t > now) {
                    continue;
                }
                if m.delivery_count >= max_delivery_count {
                    dead_letter(
                        &dir,
                        &path,
                        m,
                        "lock expired after the last allowed delivery",
                    )?;
                    continue;
                }
                m.delivery_count += 1;
                m.lock_token = Some(new_id());
                m.locked_until = Some(now + lock_for);
                let bytes = serde_json::to_vec_pretty(&m).map_err(std::io::Error::other)?;
                write_atomic(&dir.join("active"), &path, &bytes)?;
                return Ok(Some(m));
            }
            Ok(None)
        })
        .map_err(io(format!("receive from {entity}")))
    }

    fn settle<T>(
        &self,
        entity: &str,
        msg: &BusMessage,
        f: impl FnOnce(&Path, &Path, BusMessage) -> std::io::Result<T>,
    ) -> Result<T, BusError> {
        let dir = self.entity_dir(entity)?;
        let path = dir
            .join("active")
            .join(format!("{:020}.json", msg.sequence_number));
        let lost = || BusError::LockLost {
            entity: entity.to_owned(),
            sequence: msg.sequence_number,
        };
        let r = with_file_lock(&dir.join(".lock"), || {
            let current: Option<BusMessage> = match std::fs::read(&path) {
                Ok(b) => serde_json::from_slice(&b).ok(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            match current {
                Some(cur) if cur.lock_token.is_some() && cur.lock_token == msg.lock_token => {
                    f(&dir, &path, cur).map(Some)
                }
                _ => Ok(None),
            }
        })
        .map_err(io(format!("settle in {entity}")))?;
        r.ok_or_else(lost)
    }

    /// Completes (deletes) a locked message.
    pub fn complete(&self, entity: &str, msg: &BusMessage) -> Result<(), BusError> {
        self.settle(entity, msg, |_, path, _| std::fs::remove_file(path))
    }

    /// Abandons a locked message: available again, or dead-lettered when it has had its
    /// `max_delivery_count` deliveries.
    pub fn abandon(
        &self,
        entity: &str,
        msg: &BusMessage,
        max_delivery_count: u32,
        error: &str,
    ) -> Result<Abandoned, BusError> {
        self.settle(entity, msg, |dir, path, mut cur| {
            if cur.delivery_count >= max_delivery_count {
                let why = format!(
                    "delivered {} times; last error: {error}",
                    cur.delivery_count
                );
                dead_letter(dir, path, cur, &why)?;
                return Ok(Abandoned::DeadLettered);
            }
            cur.lock_token = None;
            cur.locked_until = None;
            let bytes = serde_json::to_vec_pretty(&cur).map_err(std::io::Error::other)?;
            write_atomic(&dir.join("active"), path, &bytes)?;
            Ok(Abandoned::Redeliverable)
        })
    }

    /// Extends a lock (the host renews locks while a function runs).
    pub fn renew_lock(
        &self,
        entity: &str,
        msg: &BusMessage,
        lock_for: Duration,
    ) -> Result<(), BusError> {
        self.settle(entity, msg, |dir, path, mut cur| {
            cur.locked_until = Some(Utc::now() + lock_for);
            let bytes = serde_json::to_vec_pretty(&cur).map_err(std::io::Error::other)?;
            write_atomic(&dir.join("active"), path, &bytes)
        })
    }

    /// Messages waiting or locked in an entity, in order.
    pub fn active(&self, entity: &str) -> Result<Vec<BusMessage>, BusError> {
        let dir = self.entity_dir(entity)?;
        Ok(read_messages(&dir.join("active"))
            .map_err(io(format!("read {entity}")))?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    /// Dead-lettered messages of an entity, in order.
    pub fn dead_letters(&self, entity: &str) -> Result<Vec<BusMessage>, BusError> {
        self.active(&format!("{entity}{DEAD_LETTER_SUBQUEUE}"))
    }
}

fn dead_letter(
    dir: &Path,
    path: &Path,
    mut m: BusMessage,
    description: &str,
) -> std::io::Result<()> {
    m.lock_token = None;
    m.locked_until = None;
    m.delivery_count = 0;
    m.dead_letter_reason = Some("MaxDeliveryCountExceeded".into());
    m.dead_letter_error_description = Some(description.to_owned());
    // Service Bus puts the reason in the message's application properties, where the host's
    // binding data shows them to a function on the dead-letter subqueue.
    m.application_properties
        .insert(DEAD_LETTER_REASON.into(), "MaxDeliveryCountExceeded".into());
    m.application_properties
        .insert(DEAD_LETTER_DESCRIPTION.into(), description.into());
    let dlq = dir.join("deadletter").join("active");
    std::fs::create_dir_all(&dlq)?;
    let bytes = serde_json::to_vec_pretty(&m).map_err(std::io::Error::other)?;
    write_atomic(
        &dlq,
        &dlq.join(format!("{:020}.json", m.sequence_number)),
        &bytes,
    )?;
    std::fs::remove_file(path)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus() -> (tempfile::TempDir, LocalBus) {
        let d = tempfile::tempdir().expect("tempdir");
        let b = LocalBus::new(d.path().join("bus"));
        (d, b)
    }

    fn msg(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            ..Default::default()
        }
    }

    #[test]
    fn messages_are_received_in_order_and_completed_once() {
        let (_d, b) = bus();
        b.send_to_queue("q", msg("a")).expect("send");
        b.send_to_queue("q", msg("b")).expect("send");
        let m1 = b
            .receive("q", Duration::seconds(30), 10)
            .expect("rx")
            .expect("some");
        let m2 = b
            .receive("q", Duration::seconds(30), 10)
            .expect("rx")
            .expect("some");
        assert_eq!((m1.body.as_str(), m2.body.as_str()), ("a", "b"));
        assert_eq!(m1.delivery_count, 1);
        assert!(
            b.receive("q", Duration::seconds(30), 10)
                .expect("rx")
                .is_none(),
            "both are locked"
        );
        b.complete("q", &m1).expect("complete");
        assert!(matches!(
            b.complete("q", &m1),
            Err(BusError::LockLost { .. })
        ));
        assert_eq!(b.active("q").expect("active").len(), 1);
    }

    #[test]
    fn an_abandoned_message_comes_back_with_a_higher_delivery_count_then_dead_letters() {
        let (_d, b) = bus();
        b.send_to_queue("q", msg("poison")).expect("send");
        let mut counts = Vec::new();
        while let Some(m) = b.receive("q", Duration::seconds(30), 3).expect("rx") {
            counts.push(m.delivery_count);
            b.abandon("q", &m, 3, "boom").expect("abandon");
        }
        assert_eq!(counts, [1, 2, 3]);
        let dlq = b.dead_letters("q").expect("dlq");
        assert_eq!(dlq.len(), 1);
        assert_eq!(
            dlq[0].dead_letter_reason.as_deref(),
            Some("MaxDeliveryCountExceeded")
        );
        assert!(
            dlq[0]
                .dead_letter_error_description
                .as_deref()
                .unwrap_or("")
                .contains("boom")
        );
    }

    #[test]
    fn an_expired_lock_makes_the_message_available_again() {
        let (_d, b) = bus();
        b.send_to_queue("q", msg("x")).expect("send");
        let m = b
            .receive("q", Duration::milliseconds(-1), 10)
            .expect("rx")
            .expect("some");
        let again = b
            .receive("q", Duration::seconds(30), 10)
            .expect("rx")
            .expect("redelivered");
        assert_eq!(again.delivery_count, 2);
        assert!(
            matches!(b.complete("q", &m), Err(BusError::LockLost { .. })),
            "the old lock is void"
        );
        b.complete("q", &again).expect("complete");
    }

    #[test]
    fn topics_fan_out_to_every_subscription() {
        let (_d, b) = bus();
        std::fs::create_dir_all(b.subscription_dir("notifications", "audit").expect("dir"))
            .expect("mkdir");
        b.publish_to_topic("notifications", msg("n"))
            .expect("publish");
        assert_eq!(
            b.active("notifications/subscriptions/all")
                .expect("all")
                .len(),
            1
        );
        assert_eq!(
            b.active("notifications/subscriptions/audit")
                .expect("audit")
                .len(),
            1
        );
    }

    #[test]
    fn entity_names_cannot_escape_the_bus() {
        let (_d, b) = bus();
        assert!(b.send_to_queue("../x", msg("x")).is_err());
        assert!(b.entity_dir("a/b").is_err());
    }
}

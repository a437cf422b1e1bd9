//! Service Bus trigger delivery from the durable local bus: peek-lock, complete on a 2xx
//! answer (after the outputs are delivered), abandon on failure with `DeliveryCount + 1`,
//! dead-letter after `MaxDeliveryCount` (10), lock renewal while the function runs up to
//! `maxAutoLockRenewalDuration`, and up to `maxConcurrentCalls` invocations at a time.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use super::Ctx;
use super::app::FunctionDef;
use super::payload;
use crate::adapters::local::bus::{
    Abandoned, BusMessage, DEAD_LETTER_SUBQUEUE, DEFAULT_MAX_DELIVERY_COUNT,
};

/// A dead-letter subqueue has no dead-letter queue of its own: its messages are delivered
/// until completed.
fn max_deliveries(entity: &str) -> u32 {
    if entity.ends_with(DEAD_LETTER_SUBQUEUE) {
        u32::MAX
    } else {
        DEFAULT_MAX_DELIVERY_COUNT
    }
}

const IDLE_POLL: Duration = Duration::from_millis(100);

/// The entity a trigger reads: a queue, or `topic/subscriptions/sub`.
pub fn entity_of(def: &FunctionDef) -> Option<String> {
    let t = def.trigger()?;
    if let Some(q) = t.prop("queueName") {
        return Some(q.to_owned());
    }
    Some(format!(
        "{}/subscriptions/{}",
        t.prop("topicName")?,
        t.prop("subscriptionName")?
    ))
}

/// Builds `{Data, Metadata}` for one message (extension v5 key set).
pub fn envelope(def: &FunctionDef, msg: &BusMessage) -> (Map<String, Value>, Map<String, Value>) {
    let trigger = def.trigger().expect("service bus functions have a trigger");
    let body = if trigger.is_binary() {
        Value::String(base64::engine::general_purpose::STANDARD.encode(msg.body.as_bytes()))
    } else {
        payload::string(&msg.body)
    };
    let mut data = Map::new();
    data.insert(trigger.name.clone(), body);
    let mut m = Map::new();
    let never = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .map(|t| t.to_utc())
        .unwrap_or_default();
    m.insert("DeliveryCount".into(), payload::scalar(msg.delivery_count));
    m.insert(
        "LockToken".into(),
        payload::string(msg.lock_token.as_deref().unwrap_or_default()),
    );
    m.insert("ExpiresAtUtc".into(), payload::datetime(never));
    m.insert("ExpiresAt".into(), payload::datetime_offset(never));
    m.insert(
        "EnqueuedTimeUtc".into(),
        payload::datetime(msg.enqueued_time),
    );
    m.insert(
        "EnqueuedTime".into(),
        payload::datetime_offset(msg.enqueued_time),
    );
    m.insert("MessageId".into(), payload::string(&msg.message_id));
    if let Some(ct) = &msg.content_type {
        m.insert("ContentType".into(), payload::string(ct));
    }
    m.insert(
        "SequenceNumber".into(),
        payload::scalar(msg.sequence_number),
    );
    if let Some(c) = &msg.correlation_id {
        m.insert("CorrelationId".into(), payload::string(c));
    }
    if let Some(s) = &msg.subject {
        m.insert("Subject".into(), payload::string(s));
        m.insert("Label".into(), payload::string(s));
    }
    let props: Map<String, Value> = msg
        .application_properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    m.insert("ApplicationProperties".into(), Value::Object(props.clone()));
    m.insert("UserProperties".into(), Value::Object(props));
    for opaque in [
        "MessageReceiver",
        "MessageActions",
        "ReceiveActions",
        "Client",
    ] {
        m.insert(opaque.into(), json!({}));
    }
    payload::hoist(&mut m, &msg.body);
    m.insert("sys".into(), payload::sys(&def.name));
    (data, m)
}

/// Delivers messages to `def` until the process ends.
pub(crate) async fn run(ctx: Ctx, def: FunctionDef) {
    let Some(entity) = entity_of(&def) else {
        tracing::error!(function = %def.name, "serviceBusTrigger names no queue or topic subscription.");
        return;
    };
    let slots = Arc::new(Semaphore::new(ctx.app.host.sb_max_concurrent_calls));
    let lock =
        chrono::Duration::from_std(ctx.lock_duration).unwrap_or(chrono::Duration::seconds(60));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (bus, e) = (ctx.bus.clone(), entity.clone());
        let received =
            tokio::task::spawn_blocking(move || bus.receive(&e, lock, max_deliveries(&e))).await;
        match received {
            Ok(Ok(Some(msg))) => {
                let (ctx, def, entity) = (ctx.clone(), def.clone(), entity.clone());
                tokio::spawn(async move {
                    deliver(&ctx, &def, &entity, msg).await;
                    drop(permit);
                });
            }
            Ok(Ok(None)) => {
                drop(permit);
                tokio::time::sleep(IDLE_POLL).await;
            }
            Ok(Err(e)) => {
                drop(permit);
                tracing::error!(%entity, error = %e, "Local bus receive failed.");
                tokio::time::sleep(IDLE_POLL * 10).await;
            }
            Err(_) => return,
        }
    }
}

async fn deliver(ctx: &Ctx, def: &FunctionDef, entity: &str, msg: BusMessage) {
    let (data, metadata) = envelope(def, &msg);
    let renewal = tokio::spawn(renew_locks(ctx.clone(), entity.to_owned(), msg.clone()));
    let result = ctx.invoke(def, data, metadata.clone()).await;
    renewal.abort();
    let failure = match result {
        Ok(r) => match ctx.apply_outputs(def, r.outputs, &metadata).await {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        },
        Err(e) => Some(e.to_string()),
    };
    let bus = ctx.bus.clone();
    let entity_owned = entity.to_owned();
    let settled = tokio::task::spawn_blocking(move || match failure {
        None => bus.complete(&entity_owned, &msg).map(|()| None),
        Some(err) => bus
            .abandon(&entity_owned, &msg, max_deliveries(&entity_owned), &err)
            .map(Some),
    })
    .await;
    match settled {
        Ok(Ok(Some(Abandoned::DeadLettered))) => {
            tracing::error!(function = %def.name, %entity, "Message dead-lettered after MaxDeliveryCount deliveries.");
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(function = %def.name, %entity, error = %e, "Settling the message failed; it will be redelivered when its lock expires.")
        }
        Err(_) => {}
    }
}

async fn renew_locks(ctx: Ctx, entity: String, msg: BusMessage) {
    let lock =
        chrono::Duration::from_std(ctx.lock_duration).unwrap_or(chrono::Duration::seconds(60));
    let started = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(ctx.lock_duration / 2).await;
        if started.elapsed() > ctx.app.host.sb_max_lock_renewal {
            return;
        }
        let (bus, e, m) = (ctx.bus.clone(), entity.clone(), msg.clone());
        if !matches!(
            tokio::task::spawn_blocking(move || bus.renew_lock(&e, &m, lock)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

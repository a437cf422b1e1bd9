//! Timer triggers: NCRONTAB schedules (six fields with seconds, or five), `%Setting%`
//! indirection, `runOnStartup`, and the schedule monitor: `{Last, Next, LastUpdated}` is
//! persisted at `azure-webjobs-hosts/timers/{hostId}/Host.Functions.{F}/status`, so after
//! downtime exactly one catch-up run fires with `IsPastDue: true`. Runs of one function
//! never overlap. A retry policy (function or host `retry`) applies to timers only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::app::{FunctionDef, expand_vars};
use super::{Ctx, HOSTS_CONTAINER, payload};
use crate::ports::{BlobError, Condition, LeaseId};

/// Persisted schedule status, as the host's `ScheduleStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleStatus {
    /// Last occurrence that ran.
    pub last: DateTime<Utc>,
    /// Next scheduled occurrence.
    pub next: DateTime<Utc>,
    /// When this was written.
    pub last_updated: DateTime<Utc>,
}

/// Parses an NCRONTAB expression. Day-of-month and day-of-week must both match, as in
/// NCrontab, and day-of-week counts from Sunday = 0.
///
/// # Errors
/// When the expression does not parse.
pub fn parse_schedule(expr: &str) -> Result<Cron, croner::errors::CronError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .dom_and_dow(true)
        .build()
        .parse(expr)
}

/// The first occurrence strictly after `t`.
pub fn next_after(cron: &Cron, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&t, false).ok()
}

/// True when the schedule fires more often than once a minute (monitoring is then off).
pub fn is_sub_minute(cron: &Cron, from: DateTime<Utc>) -> bool {
    let Some(a) = next_after(cron, from) else {
        return false;
    };
    let Some(b) = next_after(cron, a) else {
        return false;
    };
    (b - a) < chrono::Duration::seconds(60)
}

/// The `default(DateTime)` "never" the host writes before a first run.
fn sentinel() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
        .map(|t| t.to_utc())
        .unwrap_or_default()
}

/// .NET round-trip format: seven fractional digits and an explicit offset.
fn fmt(t: DateTime<Utc>) -> String {
    use chrono::Timelike as _;
    format!(
        "{}.{:07}+00:00",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.nanosecond() / 100
    )
}

fn status_name(host_id: &str, function: &str) -> String {
    format!("timers/{host_id}/Host.Functions.{function}/status")
}

async fn load_status(ctx: &Ctx, name: &str) -> Option<ScheduleStatus> {
    let (_, bytes) = ctx.store.get(HOSTS_CONTAINER, name).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn save_status(ctx: &Ctx, name: &str, s: &ScheduleStatus) {
    let bytes = serde_json::to_vec_pretty(s).unwrap_or_default();
    if let Err(e) = ctx
        .store
        .put(HOSTS_CONTAINER, name, &bytes, Condition::None)
        .await
    {
        tracing::warn!(error = %e, "Could not persist timer schedule status.");
    }
}

fn timer_info(status: Option<&ScheduleStatus>, is_past_due: bool) -> Value {
    json!({
        "Schedule": {"AdjustForDST": true},
        "ScheduleStatus": status.map(|s| json!({"Last": fmt(s.last), "Next": fmt(s.next), "LastUpdated": fmt(s.last_updated)})),
        "IsPastDue": is_past_due,
    })
}

/// Seconds a singleton lease lasts; it is renewed at a third of that.
const LEASE_SECONDS: u32 = 15;

/// The singleton lock blob of a timer listener, as the WebJobs SDK keeps it.
fn lock_name(host_id: &str, function: &str) -> String {
    format!("locks/{host_id}/Host.Functions.{function}.Listener")
}

/// Waits until this process holds the timer's singleton lease. Hosts sharing one storage
/// account (scaled-out instances, or two `fthub dev` on one Azurite) run each timer once.
async fn acquire(ctx: &Ctx, lock: &str) -> LeaseId {
    let mut announced = false;
    loop {
        // The lock blob must exist before it can be leased; a racing creator is fine.
        match ctx
            .store
            .put(HOSTS_CONTAINER, lock, b"", Condition::IfNotExists)
            .await
        {
            Ok(_) | Err(BlobError::AlreadyExists { .. } | BlobError::Leased { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "Cannot create the timer lock blob."),
        }
        match ctx
            .store
            .acquire_lease(HOSTS_CONTAINER, lock, LEASE_SECONDS)
            .await
        {
            Ok(Some(lease)) => return lease,
            Ok(None) if !announced => {
                tracing::info!(%lock, "Another host holds this timer; standing by.");
                announced = true;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "Cannot take the timer lease."),
        }
        tokio::time::sleep(Duration::from_secs(u64::from(LEASE_SECONDS) / 3)).await;
    }
}

/// Renews the lease until it is lost; returns when another host may have taken over.
async fn hold(ctx: &Ctx, lock: &str, lease: &LeaseId) {
    loop {
        tokio::time::sleep(Duration::from_secs(u64::from(LEASE_SECONDS) / 3)).await;
        if let Err(e) = ctx.store.renew_lease(HOSTS_CONTAINER, lock, lease).await {
            tracing::warn!(%lock, error = %e, "Lost the timer lease; stopping this timer until it is regained.");
            return;
        }
    }
}

/// Runs the timer for `def` until the process ends, while holding its singleton lease.
pub(crate) async fn run(ctx: Ctx, def: FunctionDef) {
    let lock = lock_name(&ctx.host_id, &def.name);
    loop {
        let lease = acquire(&ctx, &lock).await;
        tokio::select! {
            () = schedule(&ctx, &def) => return,
            () = hold(&ctx, &lock, &lease) => {}
        }
    }
}

/// The schedule loop of one timer.
async fn schedule(ctx: &Ctx, def: &FunctionDef) {
    let Some(trigger) = def.trigger().cloned() else {
        return;
    };
    let lookup = |k: &str| {
        ctx.app
            .settings
            .get(k)
            .cloned()
            .or_else(|| std::env::var(k).ok())
    };
    let raw = trigger.prop("schedule").unwrap_or_default();
    // `%Setting%` as the whole schedule is resolved from app settings.
    let expr = if raw.starts_with('%') {
        expand_vars(raw, lookup)
    } else {
        raw.to_owned()
    };
    let cron = match parse_schedule(&expr) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(function = %def.name, schedule = %expr, error = %e, "Invalid timer schedule; the function will not run.");
            return;
        }
    };
    let monitor = trigger.flag("useMonitor").unwrap_or(true) && !is_sub_minute(&cron, Utc::now());
    let status_blob = status_name(&ctx.host_id, &def.name);
    let now = Utc::now();
    let mut status = if monitor {
        load_status(ctx, &status_blob).await
    } else {
        None
    };

    // Start-up: one catch-up run if an occurrence was missed, else runOnStartup.
    if let Some(s) = status.filter(|s| now > s.next) {
        tracing::info!(function = %def.name, missed = %s.next, "Timer is past due; running once.");
        fire(ctx, def, Some(&s), true).await;
        status = Some(record(ctx, &status_blob, &cron, now, monitor).await);
    } else if trigger.flag("runOnStartup").unwrap_or(false) {
        fire(ctx, def, status.as_ref(), false).await;
    }
    if monitor && status.is_none() {
        let s = ScheduleStatus {
            last: sentinel(),
            next: next_after(&cron, now).unwrap_or(now),
            last_updated: now,
        };
        save_status(ctx, &status_blob, &s).await;
        status = Some(s);
    }

    let mut after = Utc::now();
    loop {
        let Some(next) = next_after(&cron, after) else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let current = status.map(|s| ScheduleStatus { next, ..s });
        fire(ctx, def, current.as_ref(), false).await;
        // The status is updated after every run, whether it succeeded or not.
        if monitor {
            status = Some(record(ctx, &status_blob, &cron, next, monitor).await);
        }
        after = next.max(Utc::now() - chrono::Duration::milliseconds(1));
    }
}

async fn record(
    ctx: &Ctx,
    blob: &str,
    cron: &Cron,
    last: DateTime<Utc>,
    monitor: bool,
) -> ScheduleStatus {
    let now = Utc::now();
    let s = ScheduleStatus {
        last,
        next: next_after(cron, now).unwrap_or(now),
        last_updated: now,
    };
    if monitor {
        save_status(ctx, blob, &s).await;
    }
    s
}

/// Runs a timer function once now, as the host's `POST /admin/functions/{name}` does.
pub(crate) async fn run_now(ctx: &Ctx, def: &FunctionDef) {
    fire(ctx, def, None, false).await;
}

/// One occurrence, with the retry policy if any.
async fn fire(ctx: &Ctx, def: &FunctionDef, status: Option<&ScheduleStatus>, is_past_due: bool) {
    let Some(trigger) = def.trigger() else { return };
    let policy = def.retry.clone().or_else(|| ctx.app.host.retry.clone());
    let mut attempt: u32 = 0;
    loop {
        let mut data = Map::new();
        data.insert(trigger.name.clone(), timer_info(status, is_past_due));
        let mut metadata = Map::new();
        metadata.insert("sys".into(), payload::sys(&def.name));
        if let Some(p) = &policy {
            metadata.insert(
                "RetryContext".into(),
                json!({"RetryCount": attempt, "MaxRetryCount": p.max_retry_count}),
            );
        }
        let ok = match ctx.invoke(def, data, metadata.clone()).await {
            Ok(r) => match ctx.apply_outputs(def, r.outputs, &metadata).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(function = %def.name, error = %e, "Timer outputs failed.");
                    false
                }
            },
            Err(_) => false,
        };
        let Some(p) = &policy else { return };
        if ok || (p.max_retry_count >= 0 && i64::from(attempt) >= p.max_retry_count) {
            return;
        }
        tokio::time::sleep(p.delay(attempt)).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("time")
    }

    #[test]
    fn six_field_ncrontab_schedules_include_seconds() {
        let c = parse_schedule("0 */5 * * * *").expect("parse");
        assert_eq!(
            next_after(&c, at(2024, 5, 1, 10, 1, 0)),
            Some(at(2024, 5, 1, 10, 5, 0))
        );
        let every_minute = parse_schedule("0 * * * * *").expect("parse");
        assert!(!is_sub_minute(&every_minute, at(2024, 5, 1, 0, 0, 0)));
        assert!(is_sub_minute(
            &parse_schedule("*/10 * * * * *").expect("parse"),
            at(2024, 5, 1, 0, 0, 0)
        ));
    }

    #[test]
    fn day_of_week_counts_from_sunday_zero() {
        // 2024-05-05 is a Sunday.
        let c = parse_schedule("0 0 9 * * 0").expect("parse");
        assert_eq!(
            next_after(&c, at(2024, 5, 1, 0, 0, 0)),
            Some(at(2024, 5, 5, 9, 0, 0))
        );
    }

    #[test]
    fn five_field_schedules_are_accepted() {
        let c = parse_schedule("30 2 * * *").expect("parse");
        assert_eq!(
            next_after(&c, at(2024, 5, 1, 0, 0, 0)),
            Some(at(2024, 5, 1, 2, 30, 0))
        );
    }

    #[test]
    fn timer_info_carries_status_and_past_due() {
        let s = ScheduleStatus {
            last: sentinel(),
            next: at(2024, 5, 1, 10, 0, 0),
            last_updated: at(2024, 5, 1, 9, 0, 0),
        };
        let v = timer_info(Some(&s), true);
        assert_eq!(v["IsPastDue"], json!(true));
        assert_eq!(
            v["ScheduleStatus"]["Last"],
            json!("0001-01-01T00:00:00.0000000+00:00")
        );
        assert_eq!(
            v["ScheduleStatus"]["Next"],
            json!("2024-05-01T10:00:00.0000000+00:00")
        );
        assert_eq!(timer_info(None, false)["ScheduleStatus"], Value::Null);
    }
}
